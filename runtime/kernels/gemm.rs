//! ONNX `Gemm` with constant weights (`y = x · Wᵀ + b`, the decoder's projection) in the order
//! onnxruntime sums it on x86-64: it packs constant weights once, and MLAS's packed SGEMM
//! starts each output from the bias (`beta = 1`), then adds one chain of fused multiply-adds
//! per block of 256 along `k` (each from zero). The decoder output feeds the joiner's
//! quantizer, where one ulp can flip an int8 rounding.

/// MLAS's K stride for packed B.
pub const PACKED_STRIDE_K: usize = 256;

/// Packs ONNX `Gemm` weights (`n × k` with `transB = 1`, else `k × n`) as `k × n` rows, the
/// layout `gemm` runs along.
pub fn pack_k_by_n(w: &[f32], trans_b: bool, k: usize, n: usize) -> Vec<f32> {
    assert_eq!(w.len(), k * n);
    if !trans_b {
        return w.to_vec();
    }
    let mut out = vec![0.0; k * n];
    for j in 0..n {
        for kk in 0..k {
            out[kk * n + j] = w[j * k + kk];
        }
    }
    out
}

/// `out (m × n) = x (m × k) · w + bias` with `w` packed `k × n` (`pack_k_by_n`); every output
/// starts from its bias and adds one fused chain per block of `PACKED_STRIDE_K`.
pub fn gemm(x: &[f32], w_kn: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { gemm_avx512(x, w_kn, bias, m, k, n, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { gemm_avx2(x, w_kn, bias, m, k, n, out) };
        }
    }
    gemm_scalar(x, w_kn, bias, m, k, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gemm_avx512(x: &[f32], w_kn: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize, out: &mut [f32]) {
    gemm_body(x, w_kn, bias, m, k, n, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_avx2(x: &[f32], w_kn: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize, out: &mut [f32]) {
    gemm_body(x, w_kn, bias, m, k, n, out)
}

/// Scalar reference of the vectorized variants (same code, baseline target features).
pub fn gemm_scalar(x: &[f32], w_kn: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize, out: &mut [f32]) {
    gemm_body(x, w_kn, bias, m, k, n, out)
}

#[inline(always)]
fn gemm_body(x: &[f32], w_kn: &[f32], bias: Option<&[f32]>, m: usize, k: usize, n: usize, out: &mut [f32]) {
    assert_eq!(x.len(), m * k);
    assert_eq!(w_kn.len(), n * k);
    assert_eq!(out.len(), m * n);
    let mut part = vec![0.0f32; n];
    for i in 0..m {
        let row = &mut out[i * n..(i + 1) * n];
        match bias {
            Some(b) => row.copy_from_slice(&b[..n]),
            None => row.fill(0.0),
        }
        for k0 in (0..k).step_by(PACKED_STRIDE_K) {
            part.fill(0.0);
            for kk in k0..(k0 + PACKED_STRIDE_K).min(k) {
                let xv = x[i * k + kk];
                for (p, &w) in part.iter_mut().zip(&w_kn[kk * n..(kk + 1) * n]) {
                    *p = xv.mul_add(w, *p);
                }
            }
            for (c, &p) in row.iter_mut().zip(&part) {
                *c += p;
            }
        }
    }
}

/// ONNX `Conv` over one spatial axis with groups, no padding, stride and dilation 1, as
/// onnxruntime computes it: im2col per group (channel-major, then tap), then SGEMM with
/// `M` = filters per group, `N` = output positions, `K` = channels per group × taps. With one
/// output position (the decoder's case) MLAS takes its `N = 1` path, dot products through the
/// `M1TransposeB` kernel: eight lanes of products added per lane (`vmulps`/`vaddps`), reduced
/// across lanes in the order of the kernel's 4-, 2- and 1-row epilogues; otherwise each output
/// is a chain of fused multiply-adds from zero.
#[allow(clippy::too_many_arguments)]
pub fn grouped_conv1d(x: &[f32], w: &[f32], groups: usize, channels: usize, len: usize, filters: usize, taps: usize, out: &mut [f32]) {
    let cpg = channels / groups;
    let fpg = filters / groups;
    let out_len = len + 1 - taps;
    let k = cpg * taps;
    assert_eq!(x.len(), channels * len);
    assert_eq!(w.len(), filters * k);
    assert_eq!(out.len(), filters * out_len);
    let mut col = vec![0.0f32; k];
    for g in 0..groups {
        for p in 0..out_len {
            for c in 0..cpg {
                for t in 0..taps {
                    col[c * taps + t] = x[(g * cpg + c) * len + p + t];
                }
            }
            let row = |f: usize| &w[(g * fpg + f) * k..(g * fpg + f + 1) * k];
            if out_len == 1 {
                let lanes = |f: usize| -> [f32; 8] {
                    let mut acc = [0.0f32; 8];
                    for (chunk, wchunk) in col.chunks(8).zip(row(f).chunks(8)) {
                        for l in 0..chunk.len() {
                            acc[l] += chunk[l] * wchunk[l];
                        }
                    }
                    acc
                };
                let mut f = 0;
                while f < fpg {
                    if fpg - f >= 4 {
                        for r in 0..4 {
                            let a = lanes(f + r);
                            let lo = ((a[0] + a[1]) + a[2]) + a[3];
                            let hi = ((a[4] + a[5]) + a[6]) + a[7];
                            out[(g * fpg + f + r) * out_len + p] = lo + hi;
                        }
                        f += 4;
                    } else if fpg - f >= 2 {
                        for r in 0..2 {
                            let a = lanes(f + r);
                            let even = (a[2] + a[0]) + (a[6] + a[4]);
                            let odd = (a[3] + a[1]) + (a[7] + a[5]);
                            out[(g * fpg + f + r) * out_len + p] = even + odd;
                        }
                        f += 2;
                    } else {
                        let a = lanes(f);
                        let lo = (a[0] + a[1]) + (a[2] + a[3]);
                        let hi = (a[4] + a[5]) + (a[6] + a[7]);
                        out[(g * fpg + f) * out_len + p] = lo + hi;
                        f += 1;
                    }
                }
            } else {
                for f in 0..fpg {
                    let acc = row(f).iter().zip(&col).fold(0.0f32, |acc, (wv, xv)| wv.mul_add(*xv, acc));
                    out[(g * fpg + f) * out_len + p] = acc;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_is_close_to_exact_and_starts_from_the_bias() {
        let (m, k, n) = (3, 300, 5);
        let x: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
        let w: Vec<f32> = (0..n * k).map(|i| ((i * 53 % 97) as f32 - 48.0) * 0.02).collect();
        let b = vec![0.5f32; n];
        let mut out = vec![0.0; m * n];
        let packed = pack_k_by_n(&w, true, k, n);
        gemm(&x, &packed, Some(&b), m, k, n, &mut out);
        let mut scalar = vec![0.0; m * n];
        gemm_scalar(&x, &packed, Some(&b), m, k, n, &mut scalar);
        assert_eq!(out, scalar);
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = 0.5 + (0..k).map(|kk| x[i * k + kk] as f64 * w[j * k + kk] as f64).sum::<f64>();
                assert!((out[i * n + j] as f64 - exact).abs() < 1e-4);
            }
        }
        // The order: start from the bias, add each 256-long block's own sum. With a bias of
        // 2^24 (f32 spacing 2 above it) a lone +1 rounds away:
        let b = [16_777_216.0f32];
        let ones = vec![1.0f32; 259];
        let mut out = vec![0.0; 1];
        // 259 ones: bias + 256 (exact), + 3 → 16777476; one chain from the bias would stay at 2^24.
        gemm(&ones, &ones, Some(&b), 1, 259, 1, &mut out);
        assert_eq!(out[0], 16_777_476.0);
        // 1, 255 zeros, 1: bias + 1 → 2^24, + 1 → 2^24; summing first, bias last, gives 2^24 + 2.
        let mut x = vec![0.0f32; 257];
        x[0] = 1.0;
        x[256] = 1.0;
        gemm(&x, &vec![1.0f32; 257], Some(&b), 1, 257, 1, &mut out);
        assert_eq!(out[0], 16_777_216.0);
    }

    #[test]
    fn grouped_conv_is_close_to_exact() {
        let (groups, channels, len, filters, taps) = (3, 12, 2, 12, 2);
        let x: Vec<f32> = (0..channels * len).map(|i| (i as f32 - 10.0) * 0.13).collect();
        let w: Vec<f32> = (0..filters * 4 * taps).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.21).collect();
        let mut out = vec![0.0; filters];
        grouped_conv1d(&x, &w, groups, channels, len, filters, taps, &mut out);
        for f in 0..filters {
            let g = f / 4;
            let exact: f64 = (0..4)
                .flat_map(|c| (0..taps).map(move |t| (c, t)))
                .map(|(c, t)| w[f * 8 + c * taps + t] as f64 * x[(g * 4 + c) * len + t] as f64)
                .sum();
            assert!((out[f] as f64 - exact).abs() < 1e-5, "filter {f}: {} vs {exact}", out[f]);
        }
    }
}
