//! Zipformer2's Swoosh activations, `swoosh(x) = softplus(x - offset) - slope·x - bias`
//! (SwooshL: 4, 0.08, 0.035; SwooshR: 1, 0.08, 0.313261687), over a slice in place.
//!
//! The exported graph evaluates softplus with libm `exp`/`log` one node at a time; here it is
//! `max(s, 0) + log(1 + exp(-|s|))` with polynomial `exp`/`log` (Cephes-style, a few ulp)
//! written as plain arithmetic, so the loop vectorizes: the scalar function is the reference,
//! and on x86_64 the same code is compiled for AVX2+FMA and chosen at run time (NEON on aarch64
//! comes from the baseline target). Results differ from the libm form by a few ulp of softplus.

const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
const LOG2E: f32 = std::f32::consts::LOG2_E;

/// Cephes `expf` without the final scaling: `(e^r, n)` with `x = n·ln2 + r`, r in
/// [-ln2/2, ln2/2], `n` as the raw low bits of the rounding trick (callers clamp `x` first).
#[inline(always)]
fn exp_parts(x: f32) -> (f32, u32) {
    // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick: the integer lands in the
    // low mantissa bits, readable without a float→int conversion (which would not vectorize).
    const MAGIC: f32 = 12_582_912.0;
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let n_int = t.to_bits().wrapping_sub(MAGIC.to_bits());
    let r = x - n * LN2_HI - n * LN2_LO;
    // Cephes expf polynomial on [-ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    (p * r * r + r + 1.0, n_int)
}

/// `exp(x)` for `x <= 0` (what softplus needs), ~1 ulp.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let (e, n_int) = exp_parts(x.max(-87.0));
    // 2^n by building the exponent bits (n in [-126, 0]).
    e * f32::from_bits(n_int.wrapping_add(127) << 23)
}

/// `log(z)` for `z` in [1, 2], ~1 ulp.
#[inline(always)]
fn log_1_to_2(z: f32) -> f32 {
    // Reduce to m in [sqrt(1/2), sqrt(2)): z > sqrt(2) → z/2, exponent 1.
    let big = z > std::f32::consts::SQRT_2;
    let m = if big { z * 0.5 } else { z };
    let e = if big { 1.0f32 } else { 0.0 };
    let t = m - 1.0;
    // Cephes logf polynomial.
    let mut p = 7.037_683_6e-2f32;
    p = p * t - 1.151_461e-1;
    p = p * t + 1.167_699_9e-1;
    p = p * t - 1.242_014_1e-1;
    p = p * t + 1.424_932_3e-1;
    p = p * t - 1.666_805_8e-1;
    p = p * t + 2.000_071_5e-1;
    p = p * t - 2.499_999_4e-1;
    p = p * t + 3.333_333e-1;
    let t2 = t * t;
    let y = p * t * t2 - 0.5 * t2 + t;
    y + e * std::f32::consts::LN_2
}

/// `exp(x)` over the whole range (+inf above ~88.7), ~1 ulp.
#[inline(always)]
fn exp_any(x: f32) -> f32 {
    let (e, n_int) = exp_parts(x.clamp(-87.0, 89.0));
    // n ≤ 128: 2^128 has the exponent bits of +inf, which is the right answer there.
    let scale = f32::from_bits(n_int.wrapping_add(127).min(255) << 23);
    if n_int as i32 >= 128 { f32::INFINITY } else { e * scale }
}

/// `log(z)` for `z >= 1` (+inf stays +inf), ~1 ulp.
#[inline(always)]
fn log_ge_1(z: f32) -> f32 {
    let bits = z.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    let l = log_1_to_2(m) + e as f32 * std::f32::consts::LN_2;
    if z == f32::INFINITY { f32::INFINITY } else { l }
}

/// Numerically stable softplus `log(1 + exp(s))`.
#[inline(always)]
pub fn softplus(s: f32) -> f32 {
    s.max(0.0) + log_1_to_2(1.0 + exp_nonpositive(-s.abs()))
}

/// Softplus as the encoder layers' export writes it: `log(exp(s) + 1)`, and `s` where that
/// overflows (the `Equal(·, inf)`/`Where` guard). Same values as `softplus` up to rounding, but
/// rounded like the exported graph (two rounded ops), which keeps results closer to what
/// onnxruntime computes for that graph.
#[inline(always)]
pub fn softplus_guarded(s: f32) -> f32 {
    let l = log_ge_1(exp_any(s) + 1.0);
    if l == f32::INFINITY { s } else { l }
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
fn swoosh_body<const GUARDED: bool>(xs: &mut [f32], offset: f32, slope: f32, bias: f32) {
    for x in xs.iter_mut() {
        let v = *x;
        let sp = if GUARDED { softplus_guarded(v - offset) } else { softplus(v - offset) };
        *x = sp - v * slope - bias;
    }
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
