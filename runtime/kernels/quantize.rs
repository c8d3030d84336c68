//! Dynamic activation quantization (f32 → u8, per tensor), numerically as onnxruntime's
//! `DynamicQuantizeLinear`: the range always includes 0, `scale = (max - min) / 255`,
//! `zero_point = round_half_away(clamp(-min / scale, 0, 255))` (std::round), and each value is
//! `clamp(round_half_even(x / scale) + zero_point, 0, 255)` (a true division, as MLAS does).
//!
//! Exact semantics shared by the scalar reference and every SIMD variant (bit-identical):
//! - min/max: NaN inputs are ignored; the range starts at [0, 0]; a zero result is always +0.0
//!   (the sign of a zero minimum/maximum is otherwise left to the compiler and the instruction
//!   set: LLVM turns `if v < lo { lo = v }` into `fminnm` on aarch64, which orders -0 below +0).
//! - quantize: `q = round_half_even(x / scale) + zp` in f32, then `clamp(q, 0, 255)` where a NaN
//!   `q` (NaN input) gives 0, +inf gives 255 and -inf gives 0.

use super::detect::{selected_kernel, KernelKind};

/// Scale and zero point of one quantized tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: u8,
}

/// Scalar reference: min/max of `x` (0 included; NaN ignored, zero results are +0, see the
/// module documentation).
pub fn min_max_scalar(x: &[f32]) -> (f32, f32) {
    let mut lo = 0.0f32;
    let mut hi = 0.0f32;
    for &v in x {
        if v.is_nan() {
            continue;
        }
        lo = lo.min(v);
        hi = hi.max(v);
    }
    canonical_zero(lo, hi)
}

/// `(lo, hi)` with -0.0 replaced by +0.0 (`x + 0.0` changes only -0.0).
#[inline(always)]
pub(crate) fn canonical_zero(lo: f32, hi: f32) -> (f32, f32) {
    (lo + 0.0, hi + 0.0)
}

/// Quantization parameters for a range that includes 0.
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(scale > 0.0)` is true for NaN, on purpose.
pub fn params_for_range(lo: f32, hi: f32) -> QuantParams {
    let scale = (hi - lo) / 255.0;
    if !(scale > 0.0) || !scale.is_finite() {
        // All zeros (or non-finite input): everything maps to 0 with zero point 0.
        return QuantParams { scale: if scale.is_finite() { scale } else { 0.0 }, zero_point: 0 };
    }
    let zp = (0.0 - lo / scale).clamp(0.0, 255.0).round();
    QuantParams { scale, zero_point: zp as u8 }
}

/// Scalar reference: quantizes `x` into `out` (same length) with the given parameters.
pub fn quantize_with_scalar(x: &[f32], p: QuantParams, out: &mut [u8]) {
    assert_eq!(x.len(), out.len());
    if p.scale == 0.0 {
        out.fill(p.zero_point);
        return;
    }
    let zp = p.zero_point as f32;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_one(v, p.scale, zp);
    }
}

/// One value, as [`quantize_with_scalar`] (SIMD variants use it for their tails).
#[inline(always)]
pub(crate) fn quantize_one(v: f32, scale: f32, zp: f32) -> u8 {
    let q = (v / scale).round_ties_even() + zp;
    // `clamp` keeps NaN, and `NaN as u8` is 0.
    q.clamp(0.0, 255.0) as u8
}

/// Quantizes `x` per tensor; returns the parameters used.
pub fn quantize_u8(x: &[f32], out: &mut [u8]) -> QuantParams {
    quantize_u8_for(selected_kernel(), x, out)
}

/// min/max of `x` (0 included) with the selected kernel's implementation.
pub fn min_max(x: &[f32]) -> (f32, f32) {
    min_max_for(selected_kernel(), x)
}

/// Quantizes with given parameters with the selected kernel's implementation.
pub fn quantize_with(x: &[f32], p: QuantParams, out: &mut [u8]) {
    quantize_with_for(selected_kernel(), x, p, out)
}

/// [`quantize_u8`] with the implementation that goes with `kind` (see
/// [`KernelKind::quantize_name`]). Panics if this CPU does not support `kind`.
pub fn quantize_u8_for(kind: KernelKind, x: &[f32], out: &mut [u8]) -> QuantParams {
    let (lo, hi) = min_max_for(kind, x);
    let p = params_for_range(lo, hi);
    quantize_with_for(kind, x, p, out);
    p
}

/// [`min_max_scalar`] with the implementation that goes with `kind`. Panics if unsupported.
pub fn min_max_for(kind: KernelKind, x: &[f32]) -> (f32, f32) {
    assert!(kind.is_supported(), "kernel {} is not supported by this CPU", kind.name());
    match kind {
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 | KernelKind::Avx512Vnni => super::x86_64::min_max_avx2(x),
        #[cfg(target_arch = "aarch64")]
        KernelKind::Neon | KernelKind::NeonDotprod => super::aarch64::min_max_neon(x),
        _ => min_max_scalar(x),
    }
}

/// [`quantize_with_scalar`] with the implementation that goes with `kind`. Panics if unsupported.
pub fn quantize_with_for(kind: KernelKind, x: &[f32], p: QuantParams, out: &mut [u8]) {
    assert!(kind.is_supported(), "kernel {} is not supported by this CPU", kind.name());
    assert_eq!(x.len(), out.len());
    if p.scale == 0.0 {
        out.fill(p.zero_point);
        return;
    }
    match kind {
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 | KernelKind::Avx512Vnni => super::x86_64::quantize_avx2(x, p, out),
        #[cfg(target_arch = "aarch64")]
        KernelKind::Neon | KernelKind::NeonDotprod => super::aarch64::quantize_neon(x, p, out),
        _ => quantize_with_scalar(x, p, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_onnx_reference_example() {
        // ONNX DynamicQuantizeLinear doc example. 0.5 / scale is exactly 25.5 in f32, which rounds
        // (half to even) to 26: onnxruntime 1.32 gives 179 for the last value, as numpy does.
        let x = [0.0f32, 2.0, -3.0, -2.5, 1.34, 0.5];
        for kind in super::super::detect::available_kernel_kinds() {
            let mut q = [0u8; 6];
            let p = quantize_u8_for(kind, &x, &mut q);
            assert!((p.scale - 0.019607844).abs() < 1e-9);
            assert_eq!(p.zero_point, 153);
            assert_eq!(q, [153, 255, 0, 26, 221, 179], "{kind}");
        }
    }

    #[test]
    fn all_zero_and_all_positive() {
        let mut q = [9u8; 3];
        let p = quantize_u8(&[0.0, 0.0, 0.0], &mut q);
        assert_eq!((p.zero_point, q), (0, [0, 0, 0]));
        let p = quantize_u8(&[1.0, 2.0, 3.0], &mut q);
        assert_eq!(p.zero_point, 0);
        assert_eq!(q, [85, 170, 255]);
    }

    #[test]
    fn nan_and_signed_zero_rules() {
        let x = [f32::NAN, -0.0, 2.0, f32::NAN, -1.0];
        let (lo, hi) = min_max_scalar(&x);
        assert_eq!((lo, hi), (-1.0, 2.0));
        let (lo, hi) = min_max_scalar(&[-0.0, f32::NAN]);
        assert_eq!((lo.to_bits(), hi.to_bits()), (0, 0));
        let snan = f32::from_bits(0x7fa0_0001);
        for kind in super::super::detect::available_kernel_kinds() {
            for x in [&[-0.0f32, 0.0][..], &[0.0, -0.0], &[-0.0; 9], &[snan, -0.5, snan, 3.0], &[-0.0; 21]] {
                let (lo, hi) = min_max_for(kind, x);
                let want = min_max_scalar(x);
                assert_eq!((lo.to_bits(), hi.to_bits()), (want.0.to_bits(), want.1.to_bits()), "{kind} {x:?}");
                assert!(lo.to_bits() != 0x8000_0000 && hi.to_bits() != 0x8000_0000);
            }
        }
        let mut q = [7u8; 5];
        quantize_with_scalar(&x, QuantParams { scale: 0.5, zero_point: 3 }, &mut q);
        assert_eq!(q, [0, 3, 7, 0, 1]);
    }
}
