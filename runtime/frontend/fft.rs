//! Real FFT of the padded window, in `f32`, computed in exactly the order of operations of the
//! FFT inside the reference front end.
//!
//! Why our own FFT instead of realfft/rustfft: sherpa-onnx's features come from
//! kaldi-native-fbank, whose FFT is a float KISS FFT (mixed radix 4/2, recursive decimation in
//! time, then the real-input post-processing). kissfft's build adds `-ffast-math`, so the
//! compiler reassociated the butterflies: in the x86-64 release that sherpa-onnx ships (GCC 10,
//! read from its machine code) `F + Fm2·tw2`, whose real part is `F.r + (a·b - c·d)` in the source,
//! is computed as `(F.r + a·b) - c·d`, and so on. Any other FFT (a double one, or the source's
//! order) differs in the last bits of most bins, the log-mel features then differ by up to ~1e-3,
//! and that is enough to flip dynamic int8 quantization steps in the encoder and, now and then,
//! a word of beam search or hotword output. Every expression below is written in that compiled
//! order; `tests::matches_the_reference_build` checks the bits against kaldi-native-fbank's own
//! output, and `tests::is_a_dft` checks it is an FFT at all.
//!
//! Supported sizes: powers of two ≥ 4 (the reference front end's `round_to_power_of_two`).

/// One complex value, `re` then `im`, as kissfft's `kiss_fft_cpx`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpx {
    pub re: f32,
    pub im: f32,
}

/// Forward real FFT plan for one size (twiddles, input order and the complex work buffers).
///
/// The half-size complex FFT runs iteratively, innermost stage first, on split real/imaginary
/// buffers: the butterflies of one stage are independent, so the order in which they run does not
/// change a bit, and with split buffers LLVM vectorizes each stage's loop over `k` (same
/// operations per element, so still the same bits).
#[derive(Clone, Debug)]
pub struct RealFft {
    /// Real input length (the padded window).
    len: usize,
    /// Complex input sample (pair `2t, 2t+1` of the real input) that kissfft's recursion copies
    /// to each position of the work buffer before the first butterflies.
    gather: Vec<u32>,
    /// Butterfly stages in execution order (innermost first).
    stages: Vec<Stage>,
    /// `exp(-πi ((k+1)/(len/2) + 1/2))`: the real-input post-processing's twiddles.
    super_twiddles: Vec<Cpx>,
    /// The half-size complex FFT, split into real and imaginary parts.
    work_re: Vec<f32>,
    work_im: Vec<f32>,
}

/// One stage of the complex FFT: butterflies of `radix` points spaced `m` apart, in groups of
/// `radix · m` consecutive positions.
#[derive(Clone, Debug)]
struct Stage {
    radix: usize,
    m: usize,
    /// Twiddles for `k in 0..m`, split: `[w1.re; m] [w1.im; m] [w2.re; m] …` with
    /// `wj = exp(-2πi j·k·stride / (len/2))` (radix 4: w1, w2, w3; radix 2: w1).
    twiddles: Vec<f32>,
}

impl RealFft {
    /// A plan for `len`-point real input; `len` must be a power of two, at least 4.
    pub fn new(len: usize) -> Result<Self, String> {
        if len < 4 || !len.is_power_of_two() {
            return Err(format!(
                "FFT size must be a power of two of at least 4, got {len} \
                 (set round_to_power_of_two, as sherpa-onnx does)"
            ));
        }
        let half = len / 2;
        // kissfft's factorisation, outermost stage first: fours, then a two.
        let mut factors = Vec::new();
        let mut rest = half;
        while rest > 1 {
            let radix = if rest.is_multiple_of(4) { 4 } else { 2 };
            rest /= radix;
            factors.push((radix, rest));
        }
        let cexp = |phase: f64| Cpx { re: phase.cos() as f32, im: phase.sin() as f32 };
        // The same f64 expressions as kissfft's, so the f32 roundings agree.
        let pi = std::f64::consts::PI;
        let twiddle: Vec<Cpx> = (0..half).map(|i| cexp(-2.0 * pi * i as f64 / half as f64)).collect();
        let mut stages = Vec::new();
        let mut stride = 1;
        for &(radix, m) in &factors {
            let mut twiddles = Vec::with_capacity(2 * (radix - 1) * m);
            for j in 1..radix {
                twiddles.extend((0..m).map(|k| twiddle[j * k * stride].re));
                twiddles.extend((0..m).map(|k| twiddle[j * k * stride].im));
            }
            stages.push(Stage { radix, m, twiddles });
            stride *= radix;
        }
        stages.reverse();
        let mut gather = vec![0u32; half];
        kiss_input_order(&factors, &mut gather, 0, 1);
        let super_twiddles = (0..half / 2)
            .map(|i| cexp(-pi * ((i + 1) as f64 / half as f64 + 0.5)))
            .collect();
        Ok(Self {
            len,
            gather,
            stages,
            super_twiddles,
            work_re: vec![0.0; half],
            work_im: vec![0.0; half],
        })
    }

    /// Real input length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of output bins, `len / 2 + 1` (DC to Nyquist).
    pub fn num_bins(&self) -> usize {
        self.len / 2 + 1
    }

    /// `out[k] = Σ_t input[t] e^{-2πi tk/len}` for `k` in `0..=len/2`.
    pub fn process(&mut self, input: &[f32], out: &mut [Cpx]) {
        assert_eq!(input.len(), self.len, "FFT input length");
        assert_eq!(out.len(), self.num_bins(), "FFT output length");
        let (re, im) = (&mut self.work_re, &mut self.work_im);
        for ((r, i), &t) in re.iter_mut().zip(im.iter_mut()).zip(&self.gather) {
            let t = t as usize;
            (*r, *i) = (input[2 * t], input[2 * t + 1]);
        }
        for stage in &self.stages {
            let group = stage.radix * stage.m;
            for (gr, gi) in re.chunks_exact_mut(group).zip(im.chunks_exact_mut(group)) {
                match (stage.radix, stage.m) {
                    // The innermost stage: one butterfly per group, no loop worth splitting.
                    (4, 1) => butterfly4(gr, gi, 1, &stage.twiddles),
                    (4, m) => butterfly4(gr, gi, m, &stage.twiddles),
                    _ => butterfly2(gr, gi, stage.m, &stage.twiddles),
                }
            }
        }
        split_real(re, im, &self.super_twiddles, out);
    }
}

/// Where kissfft's recursive decimation in time (`kf_work`) puts each complex input sample:
/// `order[i]` is the sample copied to position `i` of `order`'s range.
fn kiss_input_order(factors: &[(usize, usize)], order: &mut [u32], first: usize, stride: usize) {
    let (radix, m) = factors[0];
    for (j, chunk) in order.chunks_exact_mut(m).enumerate() {
        if m == 1 {
            chunk[0] = (first + j * stride) as u32;
        } else {
            kiss_input_order(&factors[1..], chunk, first + j * stride, stride * radix);
        }
    }
}

/// One group of radix-4 butterflies (kissfft's `kf_bfly4`, forward), in the compiled order.
/// `re`/`im` hold the group's `4m` values, `tw` the stage's split twiddles.
#[inline(always)]
fn butterfly4(re: &mut [f32], im: &mut [f32], m: usize, tw: &[f32]) {
    let (r0, rest) = re.split_at_mut(m);
    let (r1, rest) = rest.split_at_mut(m);
    let (r2, r3) = rest.split_at_mut(m);
    let (i0, rest) = im.split_at_mut(m);
    let (i1, rest) = rest.split_at_mut(m);
    let (i2, i3) = rest.split_at_mut(m);
    let (w1r, rest) = tw.split_at(m);
    let (w1i, rest) = rest.split_at(m);
    let (w2r, rest) = rest.split_at(m);
    let (w2i, rest) = rest.split_at(m);
    let (w3r, w3i) = rest.split_at(m);
    let (r3, i3, w3i) = (&mut r3[..m], &mut i3[..m], &w3i[..m]);
    for k in 0..m {
        let (f0r, f0i, f1r, f1i) = (r0[k], i0[k], r1[k], i1[k]);
        let (f2r, f2i, f3r, f3i) = (r2[k], i2[k], r3[k], i3[k]);
        // s0 = f1·w1 as written; of f2·w2 and f3·w3 the real parts are never formed: their
        // two products are added and subtracted separately below.
        let s0_re = f1r * w1r[k] - f1i * w1i[k];
        let s0_im = f1i * w1r[k] + f1r * w1i[k];
        let (p2_rr, p2_ii) = (f2r * w2r[k], f2i * w2i[k]);
        let s1_im = f2i * w2r[k] + f2r * w2i[k];
        let (p3_rr, p3_ii) = (f3r * w3r[k], f3i * w3i[k]);
        let s2_im = f3i * w3r[k] + f3r * w3i[k];
        // f0 ± s1
        let sum_re = (f0r + p2_rr) - p2_ii;
        let sum_im = f0i + s1_im;
        let diff_re = (f0r + p2_ii) - p2_rr;
        let diff_im = f0i - s1_im;
        // s3 = s0 + s2; of s4 = s0 - s2 only the real part is formed.
        let s3_re = (s0_re - p3_ii) + p3_rr;
        let s3_im = s0_im + s2_im;
        let s4_re = (s0_re - p3_rr) + p3_ii;
        (r0[k], i0[k]) = (sum_re + s3_re, sum_im + s3_im);
        (r2[k], i2[k]) = (sum_re - s3_re, sum_im - s3_im);
        (r1[k], i1[k]) = ((diff_re + s0_im) - s2_im, diff_im - s4_re);
        (r3[k], i3[k]) = ((diff_re + s2_im) - s0_im, diff_im + s4_re);
    }
}

/// One group of radix-2 butterflies (kissfft's `kf_bfly2`). For power-of-two sizes radix 2 is
/// only ever the innermost stage (`m == 1`, twiddle 1), where every order gives the same bits.
#[inline]
fn butterfly2(re: &mut [f32], im: &mut [f32], m: usize, tw: &[f32]) {
    let (r0, r1) = re.split_at_mut(m);
    let (i0, i1) = im.split_at_mut(m);
    let (wr, wi) = tw.split_at(m);
    for k in 0..m {
        let (f0r, f0i, f1r, f1i) = (r0[k], i0[k], r1[k], i1[k]);
        let p_rr = f1r * wr[k];
        let p_ii = f1i * wi[k];
        let p_im = f1i * wr[k] + f1r * wi[k];
        (r1[k], i1[k]) = ((f0r + p_ii) - p_rr, f0i - p_im);
        (r0[k], i0[k]) = ((f0r + p_rr) - p_ii, f0i + p_im);
    }
}

/// The real-input post-processing (kissfft's `kiss_fftr` after the complex FFT), in the
/// compiled order: bins `k` and `n - k` from the half-size spectrum's `k` and `n - k`.
fn split_real(re: &[f32], im: &[f32], super_twiddles: &[Cpx], out: &mut [Cpx]) {
    let n = re.len();
    out[0] = Cpx { re: re[0] + im[0], im: 0.0 };
    out[n] = Cpx { re: re[0] - im[0], im: 0.0 };
    for k in 1..=n / 2 {
        let (pr, pi, qr, qi) = (re[k], im[k], re[n - k], im[n - k]);
        let st = super_twiddles[k - 1];
        let f1_re = pr + qr;
        let f2_re = pr - qr;
        let f2_im = pi + qi;
        let (a, b) = (f2_re * st.re, f2_im * st.im);
        let tw_im = st.re * f2_im + f2_re * st.im;
        out[k] = Cpx { re: ((f1_re + a) - b) * 0.5, im: ((pi - qi) + tw_im) * 0.5 };
        out[n - k] = Cpx { re: ((f1_re + b) - a) * 0.5, im: ((qi - pi) + tw_im) * 0.5 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference DFT in f64.
    fn dft(x: &[f32]) -> Vec<(f64, f64)> {
        let n = x.len();
        (0..=n / 2)
            .map(|k| {
                x.iter().enumerate().fold((0.0, 0.0), |(re, im), (t, &v)| {
                    let ph = -2.0 * std::f64::consts::PI * (t * k % n) as f64 / n as f64;
                    (re + v as f64 * ph.cos(), im + v as f64 * ph.sin())
                })
            })
            .collect()
    }

    #[test]
    fn is_a_dft() {
        for n in [4usize, 8, 16, 32, 64, 128, 256, 512, 1024] {
            let x = crate::kernels::test_data::lcg(n, n as u32);
            let mut fft = RealFft::new(n).unwrap();
            let mut out = vec![Cpx::default(); fft.num_bins()];
            fft.process(&x, &mut out);
            let scale = x.iter().map(|v| v.abs() as f64).sum::<f64>();
            for (k, (o, r)) in out.iter().zip(dft(&x)).enumerate() {
                let err = ((o.re as f64 - r.0).powi(2) + (o.im as f64 - r.1).powi(2)).sqrt();
                assert!(err <= 1e-6 * scale, "n={n} bin {k}: {o:?} vs {r:?}");
            }
        }
    }

    #[test]
    fn rejects_sizes_that_are_not_powers_of_two() {
        for n in [0usize, 2, 6, 400] {
            let err = RealFft::new(n).unwrap_err();
            assert!(err.contains("power of two"), "{err}");
        }
    }

    /// kaldi-native-fbank's `Rfft(512).compute` on `frames` (512 f32 each), computed in this test
    /// run by the PyPI wheel (`scripts/setup.sh` pins kaldi-native-fbank 1.23.0: the x86-64
    /// build by the same GCC 10.2.1 as sherpa-onnx 2.0.1's, whose transcripts zipvox matches).
    /// `None` (the caller skips) where python3 with it is missing, except on x86-64 under CI
    /// (`$CI` set), where that is an error.
    fn knf_rfft_512(frames: &[Vec<f32>]) -> Option<Vec<f32>> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        const SCRIPT: &str = "import sys, numpy as np, kaldi_native_fbank as knf\n\
            x = np.frombuffer(sys.stdin.buffer.read(), dtype='<f4').reshape(-1, 512)\n\
            r = knf.Rfft(512)\n\
            sys.stdout.buffer.write(b''.join(np.array(r.compute(f.tolist()), dtype='<f4').tobytes() for f in x))\n";
        let input: Vec<u8> = frames.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        let run = || -> Option<Vec<u8>> {
            let mut child = Command::new("python3").args(["-c", SCRIPT]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
            child.stdin.take()?.write_all(&input).ok()?;
            let out = child.wait_with_output().ok()?;
            out.status.success().then_some(out.stdout)
        };
        let Some(bytes) = run() else {
            assert!(
                !(cfg!(target_arch = "x86_64") && std::env::var_os("CI").is_some()),
                "python3 with kaldi_native_fbank 1.23.0 is required under CI (scripts/setup.sh installs it)"
            );
            eprintln!("SKIPPED matches_the_reference_build: python3 cannot run kaldi_native_fbank (tests/fbank_parity.rs still compares whole frames)");
            return None;
        };
        Some(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect())
    }

    /// Every bit of the FFT against kaldi-native-fbank's on four frames: pseudo-random noise, the
    /// first shaped as the fbank shapes a frame (DC removed, pre-emphasised, Povey window, zero
    /// padding) by the frontend's own window functions. Real speech through the same FFT is
    /// checked bit for bit in `tests/fbank_parity.rs` (whole frames of the WAV clips in
    /// ../shared), which also runs under qemu for aarch64.
    #[test]
    fn matches_the_reference_build() {
        use super::super::window::{apply_window, preemphasize, remove_dc_offset, window_coefficients, WindowType};
        let lcg = crate::kernels::test_data::lcg;
        let mut shaped: Vec<f32> = lcg(400, 5).iter().map(|v| v * 0.2).collect();
        remove_dc_offset(&mut shaped);
        preemphasize(&mut shaped, 0.97);
        apply_window(&mut shaped, &window_coefficients(WindowType::Povey, 400));
        let padded = |mut v: Vec<f32>| {
            v.resize(512, 0.0);
            v
        };
        let frames = vec![padded(shaped), padded(lcg(400, 1)), padded(lcg(400, 2)), lcg(512, 3).iter().map(|v| v * 2000.0).collect()];
        let Some(expected) = knf_rfft_512(&frames) else { return };
        assert_eq!(expected.len(), 512 * frames.len(), "kaldi_native_fbank's output");
        let mut fft = RealFft::new(512).unwrap();
        let mut out = vec![Cpx::default(); 257];
        for (f, (input, expected)) in frames.iter().zip(expected.chunks_exact(512)).enumerate() {
            fft.process(input, &mut out);
            // knf packs [re0, re256, re1, im1, re2, im2, ...].
            assert_eq!(out[0].re.to_bits(), expected[0].to_bits(), "frame {f} DC");
            assert_eq!(out[256].re.to_bits(), expected[1].to_bits(), "frame {f} Nyquist");
            for k in 1..256 {
                let (re, im) = (expected[2 * k], expected[2 * k + 1]);
                assert_eq!(
                    (out[k].re.to_bits(), out[k].im.to_bits()),
                    (re.to_bits(), im.to_bits()),
                    "frame {f} bin {k}: {:?} vs ({re}, {im})",
                    out[k]
                );
            }
        }
    }
}
