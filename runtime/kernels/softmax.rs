//! Softmax over contiguous rows, computed as onnxruntime computes it on x86-64 with AVX-512
//! (MLAS `MlasComputeSoftmax` with `MlasComputeSumExpF32KernelAvx512F`), so that attention
//! weights, and everything quantized after them, stay bit-identical to the reference peer:
//! - the row maximum is subtracted (`x + (-max)`), the result clamped at -88.376;
//! - `exp` by MLAS's range reduction and degree-6 polynomial in fused multiply-adds, scaled
//!   by `2^m` exactly (`vscalefps`); results below the normal range are flushed to zero, as
//!   onnxruntime's process does (its output has exact zeros where the mask was);
//! - the sum over sixteen lanes (element `i` into lane `i % 16`, in order), the lanes reduced
//!   as the kernel's epilogue does (`hi8 + lo8`, then pairwise within each half, then halves);
//! - every output multiplied by `1 / sum`.
//!
//! Verified bit for bit against onnxruntime's `Softmax` on rows of 10 to 100 elements.

const LANES: usize = 16;

/// MLAS's `exp` for softmax (`MlasComputeSumExpVector`'s AVX-512 form), for `v <= 0`.
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn exp_for_softmax(v: f32) -> f32 {
    const ROUNDING_BIAS: f32 = 12_582_912.0;
    let v = v.max(-88.376_262_664_794_9);
    let biased = v.mul_add(std::f32::consts::LOG2_E, ROUNDING_BIAS);
    let m = biased - ROUNDING_BIAS;
    let r = m.mul_add(-6.931_457_52e-1, v);
    let r = m.mul_add(-1.428_606_77e-6, r);
    let mut p = f32::from_bits(0x3ab4_a000);
    p = p.mul_add(r, f32::from_bits(0x3c09_2f6e));
    p = p.mul_add(r, f32::from_bits(0x3d2a_adad));
    p = p.mul_add(r, f32::from_bits(0x3e2a_aa28));
    p = p.mul_add(r, f32::from_bits(0x3eff_fffb));
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    // p · 2^m with one rounding, as vscalefps: m is in [-128, 0] after the clamp, and 2^m is
    // exact in f32 (subnormal below -126).
    let m = m as i32;
    let scale = if m >= -126 { f32::from_bits(((m + 127) as u32) << 23) } else { f32::from_bits(1u32 << (m + 149)) };
    let e = p * scale;
    if e < f32::MIN_POSITIVE { 0.0 } else { e }
}

/// Softmax of one row in place (scalar reference of the dispatched variants).
pub fn softmax_row(row: &mut [f32]) {
    softmax_row_body(row)
}

#[inline(always)]
fn softmax_row_body(row: &mut [f32]) {
    if row.is_empty() {
        return;
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let neg_max = -max;
    let mut lanes = [0.0f32; LANES];
    for chunk in row.chunks_mut(LANES) {
        for (lane, x) in lanes.iter_mut().zip(chunk.iter_mut()) {
            *x = exp_for_softmax(*x + neg_max);
            *lane += *x;
        }
    }
    let b: [f32; 8] = std::array::from_fn(|i| lanes[i + 8] + lanes[i]);
    let sum = ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));
    let scale = 1.0 / sum;
    for x in row.iter_mut() {
        let y = *x * scale;
        *x = if y < f32::MIN_POSITIVE { 0.0 } else { y };
    }
}

#[inline(always)]
fn rows_body(data: &mut [f32], row_len: usize) {
    for row in data.chunks_mut(row_len) {
        softmax_row_body(row);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn rows_avx512(data: &mut [f32], row_len: usize) {
    rows_body(data, row_len)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2(data: &mut [f32], row_len: usize) {
    rows_body(data, row_len)
}

/// Softmax over the last axis of a tensor stored as `rows × row_len`, in place, with the best
/// variant for this CPU (same arithmetic in each).
pub fn softmax_rows(data: &mut [f32], row_len: usize) {
    if row_len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { rows_avx512(data, row_len) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { rows_avx2(data, row_len) };
        }
    }
    rows_body(data, row_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_the_exact_softmax_and_sums_to_one() {
        for n in [1usize, 7, 10, 16, 17, 48, 80, 100] {
            let mut row: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.9).collect();
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let exps: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
            let total: f64 = exps.iter().sum();
            softmax_row(&mut row);
            for (y, e) in row.iter().zip(&exps) {
                assert!((*y as f64 - e / total).abs() < 2e-7, "n={n}: {y} vs {}", e / total);
            }
            let s: f64 = row.iter().map(|&y| y as f64).sum();
            assert!((s - 1.0).abs() < 1e-5, "n={n}: sum {s}");
        }
    }

    #[test]
    fn dispatched_variant_matches_scalar() {
        let data: Vec<f32> = (0..37 * 11).map(|i| ((i * 7919 % 97) as f32 - 48.0) * 0.21).collect();
        let mut a = data.clone();
        softmax_rows(&mut a, 37);
        for (r, row) in data.chunks(37).enumerate() {
            let mut b = row.to_vec();
            softmax_row(&mut b);
            for (x, y) in a[r * 37..(r + 1) * 37].iter().zip(&b) {
                assert_eq!(x.to_bits(), y.to_bits());
            }
        }
    }

    #[test]
    fn masked_entries_become_exact_zeros() {
        let mut row = vec![-1000.0, 0.5, -1000.0, 2.0];
        softmax_row(&mut row);
        assert_eq!(row[0], 0.0);
        assert_eq!(row[2], 0.0);
        assert!(row[1] > 0.0 && row[3] > row[1]);
    }
}
