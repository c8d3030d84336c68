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

/// `c = a · b` for row-major `a: m × k`, `b: k × n`, `c: m × n`, every element of `c` written.
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

/// [`matmul_body`] in AVX-512 register tiles: up to 4 rows × 4 vectors of 16 columns (the last
/// one masked) summed in zmm registers over each K block, then stored (first block) or added to
/// the output (later blocks), as the row kernel does. The attention products are small (m 2–16,
/// k 10–80, n 10–96): the row kernel loaded and stored its sums for every `kk` and ran the
/// columns past the last whole vector one by one (~8 GMAC/s).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn matmul_avx512(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    assert_eq!(c.len(), m * n);
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let stride_k = mlas_stride_k(k, n);
    for i0 in (0..m).step_by(4) {
        for j0 in (0..n).step_by(64) {
            let vectors = (n - j0).min(64).div_ceil(16);
            for (blk, k0) in (0..k).step_by(stride_k).enumerate() {
                let kk = k0..(k0 + stride_k).min(k);
                let first = blk == 0;
                match ((m - i0).min(4), vectors) {
                    (1, 1) => avx512::tile::<1, 1>(a, b, c, k, n, i0, j0, kk, first),
                    (1, 2) => avx512::tile::<1, 2>(a, b, c, k, n, i0, j0, kk, first),
                    (1, 3) => avx512::tile::<1, 3>(a, b, c, k, n, i0, j0, kk, first),
                    (1, _) => avx512::tile::<1, 4>(a, b, c, k, n, i0, j0, kk, first),
                    (2, 1) => avx512::tile::<2, 1>(a, b, c, k, n, i0, j0, kk, first),
                    (2, 2) => avx512::tile::<2, 2>(a, b, c, k, n, i0, j0, kk, first),
                    (2, 3) => avx512::tile::<2, 3>(a, b, c, k, n, i0, j0, kk, first),
                    (2, _) => avx512::tile::<2, 4>(a, b, c, k, n, i0, j0, kk, first),
                    (3, 1) => avx512::tile::<3, 1>(a, b, c, k, n, i0, j0, kk, first),
                    (3, 2) => avx512::tile::<3, 2>(a, b, c, k, n, i0, j0, kk, first),
                    (3, 3) => avx512::tile::<3, 3>(a, b, c, k, n, i0, j0, kk, first),
                    (3, _) => avx512::tile::<3, 4>(a, b, c, k, n, i0, j0, kk, first),
                    (_, 1) => avx512::tile::<4, 1>(a, b, c, k, n, i0, j0, kk, first),
                    (_, 2) => avx512::tile::<4, 2>(a, b, c, k, n, i0, j0, kk, first),
                    (_, 3) => avx512::tile::<4, 3>(a, b, c, k, n, i0, j0, kk, first),
                    (_, _) => avx512::tile::<4, 4>(a, b, c, k, n, i0, j0, kk, first),
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// Rows `i0..i0+R`, columns `j0..j0+16·V` (those below `n`) of `c = a·b` over the K block
    /// `kk`: per output one chain of fused multiply-adds from zero, stored when `first`, else
    /// added to the output (the order of `matmul_body`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tile<const R: usize, const V: usize>(a: &[f32], b: &[f32], c: &mut [f32], k: usize, n: usize, i0: usize, j0: usize, kk: Range<usize>, first: bool) {
        assert!(i0 + R <= c.len() / n && kk.end <= k && j0 < n && a.len() == c.len() / n * k && b.len() == k * n);
        // Lanes of each vector that lie below n.
        let masks: [__mmask16; V] = std::array::from_fn(|v| {
            let left = n.saturating_sub(j0 + 16 * v).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        let mut acc = [[_mm512_setzero_ps(); V]; R];
        let (ap, bp, cp) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        for q in kk {
            let bv: [__m512; V] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(masks[v], bp.add(q * n + j0 + 16 * v)));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add((i0 + r) * k + q));
                for (v, s) in row.iter_mut().enumerate() {
                    *s = _mm512_fmadd_ps(av, bv[v], *s);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, s) in row.iter().enumerate() {
                let at = cp.add((i0 + r) * n + j0 + 16 * v);
                let out = if first { *s } else { _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], at), *s) };
                _mm512_mask_storeu_ps(at, masks[v], out);
            }
        }
    }
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
        for (m, k, n) in [(16, 80, 12), (16, 32, 80), (3, 300, 5), (2, 0, 3), (5, 1300, 7), (7, 20, 96), (2, 10, 12), (9, 40, 65), (1, 129, 130)] {
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
