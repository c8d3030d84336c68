//! Zipformer2's Swoosh activations, `swoosh(x) = softplus(x - offset) - slope·x - bias`
//! (SwooshL: 4, 0.08, 0.035; SwooshR: 1, 0.08, 0.313261687), over a slice in place.
//!
//! The exported graph evaluates softplus one ONNX node at a time. A dynamic quantizer follows
//! most Swoosh outputs, and one ulp there can move an activation by a whole int8 step, which
//! the streaming caches then carry on: so the arithmetic here is onnxruntime's, operation for
//! operation (the reference peer, sherpa-onnx, runs the model through it on x86-64):
//! - `Exp` is MLAS's `MlasComputeExpVector` (range reduction by 2^m, degree-6 polynomial, two
//!   scale factors), with fused multiply-adds as its AVX2/AVX-512 kernels evaluate it;
//! - `Log` is Eigen's SSE `plog_float` (frexp, rational (3,3) approximation, multiply and add
//!   rounded separately) on groups of four, and libm `logf` on the last `len % 4` elements,
//!   which Eigen leaves to the scalar path;
//! - every other node (`Sub`, `Mul`, `Add`, `Max`, the overflow guard) is one rounded f32 op in
//!   graph order.
//!
//! Both are plain arithmetic, so the loop vectorizes: the scalar function is the reference, and
//! on x86_64 the same code is compiled for AVX2+FMA / AVX-512 and chosen at run time (NEON on
//! aarch64 comes from the baseline target). `tests/encoder_parity.rs` checks whole chunks
//! bit for bit against onnxruntime.

/// onnxruntime's `Exp` for f32 (MLAS `MlasComputeExpVector`): `x = m·ln2 + r`, `exp(r)` by a
/// degree-6 polynomial, `2^m` applied as two factors so that results reach the subnormals.
#[inline(always)]
#[allow(clippy::excessive_precision, clippy::manual_clamp)] // max/min: SSE maxps/minps NaN rules
fn exp_ort(x: f32) -> f32 {
    const ROUNDING_BIAS: f32 = 12_582_912.0; // 1.5·2^23: rounds to an integer in the low bits
    const MIN_EXPONENT: i32 = 0xC100_0000_u32 as i32;
    const MAX_EXPONENT: i32 = 0x3F80_0000;
    let x = x.max(-103.972_084_045_4).min(88.776_262_664_795_0);
    let biased = x.mul_add(std::f32::consts::LOG2_E, ROUNDING_BIAS);
    let m = biased - ROUNDING_BIAS;
    let r = m.mul_add(-6.931_457_52e-1, x);
    let r = m.mul_add(-1.428_606_77e-6, r);
    // 2^m = overflow · normal, each a valid float exponent.
    let shifted = (biased.to_bits() << 23) as i32;
    let normal = shifted.clamp(MIN_EXPONENT, MAX_EXPONENT);
    let overflow = f32::from_bits(shifted.wrapping_sub(normal).wrapping_add(MAX_EXPONENT) as u32);
    let normal = f32::from_bits(normal.wrapping_add(MAX_EXPONENT) as u32);
    let mut p = f32::from_bits(0x3ab4_a000); // 0x1.694p-10
    p = p.mul_add(r, f32::from_bits(0x3c09_2f6e)); // 0x1.125edcp-7
    p = p.mul_add(r, f32::from_bits(0x3d2a_adad)); // 0x1.555b5ap-5
    p = p.mul_add(r, f32::from_bits(0x3e2a_aa28)); // 0x1.55545p-3
    p = p.mul_add(r, f32::from_bits(0x3eff_fffb)); // 0x1.fffff6p-2
    p = p.mul_add(r, 1.0);
    // The polynomial's last term (1) is folded into the overflow factor (as MLAS does).
    p = p.mul_add(r * overflow, overflow);
    p * normal
}

/// onnxruntime's `Log` for f32 on x86-64 in whole groups of four (Eigen's `plog_float`), for
/// `x >= 1` (all softplus needs; +inf stays +inf).
#[inline(always)]
#[allow(clippy::excessive_precision)]
fn log_ort(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    // frexp: x = f · 2^e with f in [0.5, 1).
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 126;
    let f = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    // Shift f into [sqrt(1/2), sqrt(2)) and centre on 0.
    let small = f < SQRT_HALF;
    let t = f - 1.0;
    let t = if small { t + f } else { t };
    let e = e as f32 - if small { 1.0 } else { 0.0 };
    // Rational (3,3) approximation of log(1 + t); every multiply and add rounds on its own.
    let p = t * 0.182_562_963_498_492_54 + 1.000_000_019_028_106_3;
    let p = t * p + 1.000_000_019_028_113_6;
    let p = t * p;
    let q = t * 0.049_616_247_954_120_038 + 0.599_232_495_908_235_2;
    let q = t * q + 1.499_999_999_999_992_7;
    let q = t * q + 1.0;
    let y = e * std::f32::consts::LN_2 + p / q;
    if x == f32::INFINITY { f32::INFINITY } else { y }
}

/// Numerically stable softplus `log(1 + exp(s))`, as `max(s, 0) + log(1 + exp(-|s|))`.
/// `LIBM_LOG`: the element lies in the scalar tail of onnxruntime's `Log` (see module docs).
#[inline(always)]
pub fn softplus_with<const LIBM_LOG: bool>(s: f32) -> f32 {
    let z = 1.0 + exp_ort(-s.abs());
    s.max(0.0) + if LIBM_LOG { z.ln() } else { log_ort(z) }
}

/// Softplus as the encoder layers' export writes it: `log(exp(s) + 1)`, and `s` where that
/// overflows (the `Equal(·, inf)`/`Where` guard).
#[inline(always)]
pub fn softplus_guarded_with<const LIBM_LOG: bool>(s: f32) -> f32 {
    let z = exp_ort(s) + 1.0;
    let l = if LIBM_LOG { z.ln() } else { log_ort(z) };
    if l == f32::INFINITY { s } else { l }
}

pub fn softplus(s: f32) -> f32 {
    softplus_with::<false>(s)
}

pub fn softplus_guarded(s: f32) -> f32 {
    softplus_guarded_with::<false>(s)
}

/// onnxruntime's `Tanh` on x86-64 (MLAS `MlasTanhKernelFma3`, Eigen's rational approximation
/// on [-9, 9] in fused multiply-adds).
#[inline(always)]
#[allow(clippy::excessive_precision, clippy::manual_clamp)]
pub fn tanh_ort(x: f32) -> f32 {
    let v = x.max(-9.0).min(9.0);
    let v2 = v * v;
    let mut p = v2.mul_add(-2.760_768_477_423_55e-16, 2.000_187_904_824_77e-13);
    p = p.mul_add(v2, -8.604_671_522_137_35e-11);
    p = p.mul_add(v2, 5.122_297_090_371_14e-08);
    p = p.mul_add(v2, 1.485_722_357_179_79e-05);
    p = p.mul_add(v2, 6.372_619_288_754_36e-04);
    p = p.mul_add(v2, 4.893_524_558_917_86e-03);
    p *= v;
    let mut q = v2.mul_add(1.198_258_394_667_02e-06, 1.185_347_056_866_54e-04);
    q = q.mul_add(v2, 2.268_434_632_439_00e-03);
    q = q.mul_add(v2, 4.893_525_185_543_85e-03);
    p / q
}

/// onnxruntime's `Sigmoid` on x86-64 (MLAS `MlasLogisticKernelFma3`: rational approximation on
/// [-18, 18] in fused multiply-adds, plus one half).
#[inline(always)]
#[allow(clippy::excessive_precision, clippy::manual_clamp)]
pub fn sigmoid_ort(x: f32) -> f32 {
    let v = x.max(-18.0).min(18.0);
    let v2 = v * v;
    let mut p = v2.mul_add(4.370_310_125_798_01e-11, 1.156_273_244_599_42e-07);
    p = p.mul_add(v2, 6.085_748_646_001_43e-05);
    p = p.mul_add(v2, 8.513_771_333_047_01e-03);
    p = p.mul_add(v2, 2.482_879_470_615_29e-01);
    p *= v;
    let mut q = v2.mul_add(6.102_473_897_556_81e-13, 5.761_021_369_934_27e-09);
    q = q.mul_add(v2, 6.291_067_850_170_40e-06);
    q = q.mul_add(v2, 1.701_988_173_740_94e-03);
    q = q.mul_add(v2, 1.168_176_569_044_53e-01);
    q = q.mul_add(v2, 9.931_519_210_231_80e-01);
    p / q + 0.5
}

/// Which of onnxruntime's elementwise functions (`tanh_ort`, `sigmoid_ort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryFn {
    Tanh,
    Sigmoid,
}

#[inline(always)]
fn unary_body(xs: &mut [f32], f: UnaryFn) {
    match f {
        UnaryFn::Tanh => xs.iter_mut().for_each(|x| *x = tanh_ort(*x)),
        UnaryFn::Sigmoid => xs.iter_mut().for_each(|x| *x = sigmoid_ort(*x)),
    }
}

/// Scalar reference of `unary`.
pub fn unary_scalar(xs: &mut [f32], f: UnaryFn) {
    unary_body(xs, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn unary_avx2(xs: &mut [f32], f: UnaryFn) {
    unary_body(xs, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn unary_avx512(xs: &mut [f32], f: UnaryFn) {
    unary_body(xs, f)
}

/// Applies `f` in place with the best variant for this CPU.
pub fn unary(xs: &mut [f32], f: UnaryFn) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked above).
        return unsafe { unary_avx512(xs, f) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { unary_avx2(xs, f) };
    }
    unary_scalar(xs, f)
}

/// Which exported form of softplus to mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoftplusForm {
    /// `max(s, 0) + log(1 + exp(-|s|))` (icefall's `logaddexp_onnx`, ConvNeXt embedding).
    LogAddExp,
    /// `where(isinf(l), s, l)` with `l = log(exp(s) + 1)` (SwooshL/R in the encoder layers).
    Guarded,
}

#[inline(always)]
fn swoosh_run<const GUARDED: bool, const LIBM_LOG: bool>(xs: &mut [f32], offset: f32, slope: f32, bias: f32) {
    for x in xs.iter_mut() {
        let v = *x;
        let s = v - offset;
        let sp = if GUARDED { softplus_guarded_with::<LIBM_LOG>(s) } else { softplus_with::<LIBM_LOG>(s) };
        *x = sp - v * slope - bias;
    }
}

#[inline(always)]
fn swoosh_body<const GUARDED: bool>(xs: &mut [f32], offset: f32, slope: f32, bias: f32) {
    // onnxruntime's Log: Eigen packets of four, then scalar logf on the remainder.
    let split = xs.len() - xs.len() % 4;
    let (packets, tail) = xs.split_at_mut(split);
    swoosh_run::<GUARDED, false>(packets, offset, slope, bias);
    swoosh_run::<GUARDED, true>(tail, offset, slope, bias);
}

/// Scalar reference.
pub fn swoosh_scalar(xs: &mut [f32], offset: f32, slope: f32, bias: f32, form: SoftplusForm) {
    match form {
        SoftplusForm::LogAddExp => swoosh_body::<false>(xs, offset, slope, bias),
        SoftplusForm::Guarded => swoosh_body::<true>(xs, offset, slope, bias),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn swoosh_avx2(xs: &mut [f32], offset: f32, slope: f32, bias: f32, form: SoftplusForm) {
    match form {
        SoftplusForm::LogAddExp => swoosh_body::<false>(xs, offset, slope, bias),
        SoftplusForm::Guarded => swoosh_body::<true>(xs, offset, slope, bias),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn swoosh_avx512(xs: &mut [f32], offset: f32, slope: f32, bias: f32, form: SoftplusForm) {
    match form {
        SoftplusForm::LogAddExp => swoosh_body::<false>(xs, offset, slope, bias),
        SoftplusForm::Guarded => swoosh_body::<true>(xs, offset, slope, bias),
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && has_avx2_fma()
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Applies the activation in place with the best variant for this CPU.
pub fn swoosh(xs: &mut [f32], offset: f32, slope: f32, bias: f32, form: SoftplusForm) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU supports AVX-512F, AVX2 and FMA (checked above).
        return unsafe { swoosh_avx512(xs, offset, slope, bias, form) };
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked above).
        return unsafe { swoosh_avx2(xs, offset, slope, bias, form) };
    }
    swoosh_scalar(xs, offset, slope, bias, form)
}

/// Name of the variant `swoosh` uses (for `zipvox info`).
pub fn swoosh_variant() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        return "avx512";
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        return "avx2";
    }
    #[cfg(target_arch = "aarch64")]
    return "neon";
    #[allow(unreachable_code)]
    "scalar"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: f32, offset: f32, slope: f32, bias: f32) -> f64 {
        let s = x as f64 - offset as f64;
        let sp = s.max(0.0) + (-s.abs()).exp().ln_1p();
        sp - x as f64 * slope as f64 - bias as f64
    }

    #[test]
    fn softplus_is_accurate_everywhere() {
        // Relative to max(softplus, 1): for very negative inputs softplus underflows to the
        // rounding of 1 + exp(s), as the exported graph's log(1 + exp(s)) does.
        let mut worst = 0.0f64;
        let mut x = -100.0f32;
        while x < 100.0 {
            let want = (x as f64).max(0.0) + (-(x as f64).abs()).exp().ln_1p();
            let got = softplus(x) as f64;
            let err = (got - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst error {worst}");
        assert_eq!(softplus(1e30), 1e30);
        assert!(softplus(-1e30) >= 0.0);
        assert_eq!(softplus_guarded(1e30), 1e30);
        assert_eq!(softplus_guarded(200.0), 200.0, "overflow guard");
        assert!(softplus_guarded(-1e30) >= 0.0);
    }

    #[test]
    fn tanh_and_sigmoid_are_accurate_and_simd_matches_scalar() {
        let xs: Vec<f32> = (0..4099).map(|i| (i as f32 - 2000.0) * 0.0137).collect();
        for f in [UnaryFn::Tanh, UnaryFn::Sigmoid] {
            let mut a = xs.clone();
            unary_scalar(&mut a, f);
            let mut b = xs.clone();
            unary(&mut b, f);
            for (i, x) in xs.iter().enumerate() {
                let want = match f {
                    UnaryFn::Tanh => (*x as f64).tanh(),
                    UnaryFn::Sigmoid => 1.0 / (1.0 + (-*x as f64).exp()),
                };
                assert!((a[i] as f64 - want).abs() < 3e-7, "{f:?}({x}) = {} vs {want}", a[i]);
                assert_eq!(a[i].to_bits(), b[i].to_bits(), "{f:?}({x}): dispatched differs from scalar");
            }
        }
        assert_eq!(tanh_ort(100.0), tanh_ort(9.0));
        assert!(sigmoid_ort(-100.0).abs() < 1e-6 && (sigmoid_ort(100.0) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn simd_variant_matches_scalar_and_reference() {
        let xs: Vec<f32> = (0..4099).map(|i| (i as f32 - 2000.0) * 0.0173).collect();
        for ((offset, slope, bias), form) in [(4.0f32, 0.08f32, 0.035f32), (1.0, 0.08, 0.313_261_7)]
            .into_iter()
            .flat_map(|p| [(p, SoftplusForm::LogAddExp), (p, SoftplusForm::Guarded)])
        {
            let mut a = xs.clone();
            swoosh_scalar(&mut a, offset, slope, bias, form);
            let mut variants: Vec<(&str, Vec<f32>)> = vec![];
            let mut b = xs.clone();
            swoosh(&mut b, offset, slope, bias, form);
            variants.push((swoosh_variant(), b));
            #[cfg(target_arch = "x86_64")]
            {
                if has_avx2_fma() {
                    let mut b = xs.clone();
                    unsafe { swoosh_avx2(&mut b, offset, slope, bias, form) };
                    variants.push(("avx2", b));
                }
                if has_avx512() {
                    let mut b = xs.clone();
                    unsafe { swoosh_avx512(&mut b, offset, slope, bias, form) };
                    variants.push(("avx512", b));
                }
            }
            for (i, x) in xs.iter().enumerate() {
                let want = reference(*x, offset, slope, bias);
                let tol = 1e-6 * want.abs().max(1.0);
                assert!((a[i] as f64 - want).abs() <= tol, "scalar {form:?} x={x}: {} vs {want}", a[i]);
                for (name, v) in &variants {
                    assert!((v[i] as f64 - want).abs() <= tol, "{name} x={x}: {} vs {want}", v[i]);
                }
            }
        }
    }
}

#[cfg(test)]
mod bench {
    #[test]
    #[ignore]
    fn swoosh_speed() {
        let mut xs: Vec<f32> = (0..116_736).map(|i| (i % 1000) as f32 * 0.01 - 5.0).collect();
        let t = std::time::Instant::now();
        for _ in 0..100 {
            super::swoosh(&mut xs, 4.0, 0.08, 0.035, super::SoftplusForm::Guarded);
        }
        println!("swoosh ({}): {:?} per 116736 elements", super::swoosh_variant(), t.elapsed() / 100);
    }
}
