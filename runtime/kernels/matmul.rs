//! f32 matrix products of two activations (attention scores and weighted values) in the order
//! MLAS's SGEMM sums them on x86-64, so that they stay bit-identical to onnxruntime's: each
//! output is one chain of fused multiply-adds over `k` from zero, per block of `stride_k` (the
//! blocks' sums added to the output in order); `stride_k` follows MLAS's rule, which widens it
//! for narrow outputs. (A one-row product takes MLAS's `M1` kernel instead; Zipformer's have
//! at least one row per frame of the chunk.)

/// MLAS's K stride for an `m × k · k × n` product (`MlasSgemmOperation`): 128, halved while
/// `n >= k` lets the N stride double, doubled while the N stride can halve for a narrow `n`.
pub fn mlas_stride_k(k: usize, n: usize) -> usize {
    if k == 0 {
        return 1;
    }
    let (mut stride_n, mut stride_k) = (128usize, 128usize);
    if n >= k {
        // (MLAS doubles the N stride here too; only K matters for the order.)
        while stride_k / 2 >= k {
            stride_k /= 2;
        }
    } else {
        while stride_n > 16 && stride_n / 2 >= n {
            stride_k *= 2;
            stride_n /= 2;
        }
    }
    stride_k.max(1)
}

/// `c = a · b` for row-major `a: m × k`, `b: k × n`, `c: m × n`; `part` is scratch of `n`.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { matmul_avx512(a, b, c, m, k, n) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { matmul_avx2(a, b, c, m, k, n) };
        }
    }
    matmul_scalar(a, b, c, m, k, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn matmul_avx512(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul_body(a, b, c, m, k, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn matmul_avx2(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul_body(a, b, c, m, k, n)
}

/// Scalar reference of the vectorized variants (same code, baseline target features).
pub fn matmul_scalar(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    matmul_body(a, b, c, m, k, n)
}

#[inline(always)]
fn matmul_body(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    assert_eq!(c.len(), m * n);
    let stride_k = mlas_stride_k(k, n);
    // Scratch for the sums of the second and later K blocks (none when K fits one block).
    let mut part = if k > stride_k { vec![0.0f32; n] } else { Vec::new() };
    for i in 0..m {
        let row = &mut c[i * n..(i + 1) * n];
        if k == 0 {
            row.fill(0.0);
        }
        for (blk, k0) in (0..k).step_by(stride_k).enumerate() {
            let acc: &mut [f32] = if blk == 0 { &mut *row } else { &mut part };
            acc.fill(0.0);
            for kk in k0..(k0 + stride_k).min(k) {
                let av = a[i * k + kk];
                for (p, &bv) in acc.iter_mut().zip(&b[kk * n..(kk + 1) * n]) {
                    *p = av.mul_add(bv, *p);
                }
            }
            if blk > 0 {
                for (r, p) in row.iter_mut().zip(&part) {
                    *r += *p;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::lcg;

    #[test]
    fn strides_follow_mlas() {
        assert_eq!(mlas_stride_k(80, 12), 1024); // weighted values: narrow n
        assert_eq!(mlas_stride_k(32, 80), 32); // scores: n >= k
        assert_eq!(mlas_stride_k(300, 300), 128);
    }

    #[test]
    fn matches_the_documented_order_and_is_close_to_exact() {
        for (m, k, n) in [(16, 80, 12), (16, 32, 80), (3, 300, 5), (2, 0, 3), (5, 1300, 7)] {
            let a = lcg(m * k, 1);
            let b = lcg(k * n, 2);
            let mut c = vec![0.0; m * n];
            matmul(&a, &b, &mut c, m, k, n);
            let mut s = vec![0.0; m * n];
            matmul_scalar(&a, &b, &mut s, m, k, n);
            let stride = mlas_stride_k(k, n);
            for i in 0..m {
                for j in 0..n {
                    let mut total = 0.0f32;
                    for (blk, k0) in (0..k).step_by(stride).enumerate() {
                        let part = (k0..(k0 + stride).min(k)).fold(0.0f32, |p, kk| a[i * k + kk].mul_add(b[kk * n + j], p));
                        total = if blk == 0 { part } else { part + total };
                    }
                    let exact: f64 = (0..k).map(|kk| a[i * k + kk] as f64 * b[kk * n + j] as f64).sum();
                    assert_eq!(c[i * n + j].to_bits(), total.to_bits(), "({m},{k},{n}) [{i},{j}]");
                    assert_eq!(s[i * n + j].to_bits(), total.to_bits(), "scalar ({m},{k},{n}) [{i},{j}]");
                    assert!((c[i * n + j] as f64 - exact).abs() < 1e-4, "({m},{k},{n}) [{i},{j}]");
                }
            }
        }
    }
}
