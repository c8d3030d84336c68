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

/// Forward real FFT plan for one size (twiddles and the complex work buffer).
#[derive(Clone, Debug)]
pub struct RealFft {
    /// Real input length (the padded window).
    len: usize,
    /// `(radix, remaining length)` for each recursion level of the half-size complex FFT.
    stages: Vec<(usize, usize)>,
    /// `exp(-2πi k / (len/2))`, rounded from `f64` to `f32`.
    twiddles: Vec<Cpx>,
    /// `exp(-πi ((k+1)/(len/2) + 1/2))`: the real-input post-processing's twiddles.
    super_twiddles: Vec<Cpx>,
    /// Output of the half-size complex FFT.
    work: Vec<Cpx>,
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
        // kissfft's factorisation: fours first, then a two.
        let mut stages = Vec::new();
        let mut rest = half;
        while rest > 1 {
            let radix = if rest.is_multiple_of(4) { 4 } else { 2 };
            rest /= radix;
            stages.push((radix, rest));
        }
        let cexp = |phase: f64| Cpx { re: phase.cos() as f32, im: phase.sin() as f32 };
        // The same f64 expressions as kissfft's, so the f32 roundings agree.
        let pi = std::f64::consts::PI;
        let twiddles = (0..half).map(|i| cexp(-2.0 * pi * i as f64 / half as f64)).collect();
        let super_twiddles = (0..half / 2)
            .map(|i| cexp(-pi * ((i + 1) as f64 / half as f64 + 0.5)))
            .collect();
        Ok(Self { len, stages, twiddles, super_twiddles, work: vec![Cpx::default(); half] })
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
        let mut work = std::mem::take(&mut self.work);
        self.complex_fft(input, &mut work, 0, 1, 0);
        self.split_real(&work, out);
        self.work = work;
    }

    /// Half-size complex FFT of the input read as pairs `(input[2t], input[2t+1])`: the
    /// recursive decimation in time of kissfft's `kf_work`. Fills `out` (length `p·m` of this
    /// stage) from the complex samples `first`, `first + stride`, ….
    fn complex_fft(&self, input: &[f32], out: &mut [Cpx], first: usize, stride: usize, stage: usize) {
        let (radix, m) = self.stages[stage];
        if m == 1 {
            for (j, o) in out.iter_mut().enumerate().take(radix) {
                let t = first + j * stride;
                *o = Cpx { re: input[2 * t], im: input[2 * t + 1] };
            }
        } else {
            for (j, chunk) in out.chunks_exact_mut(m).enumerate().take(radix) {
                self.complex_fft(input, chunk, first + j * stride, stride * radix, stage + 1);
            }
        }
        match radix {
            4 => self.butterfly4(out, stride, m),
            _ => self.butterfly2(out, stride, m),
        }
    }

    /// Radix-4 butterflies (kissfft's `kf_bfly4`, forward), in the compiled order.
    fn butterfly4(&self, out: &mut [Cpx], stride: usize, m: usize) {
        let tw = &self.twiddles;
        for k in 0..m {
            let (t1, t2, t3) = (tw[k * stride], tw[2 * k * stride], tw[3 * k * stride]);
            let (f0, f1, f2, f3) = (out[k], out[k + m], out[k + 2 * m], out[k + 3 * m]);
            // s0 = f1·t1 as written; of f2·t2 and f3·t3 the real parts are never formed: their
            // two products are added and subtracted separately below.
            let s0_re = f1.re * t1.re - f1.im * t1.im;
            let s0_im = f1.im * t1.re + f1.re * t1.im;
            let (p2_rr, p2_ii) = (f2.re * t2.re, f2.im * t2.im);
            let s1_im = f2.im * t2.re + f2.re * t2.im;
            let (p3_rr, p3_ii) = (f3.re * t3.re, f3.im * t3.im);
            let s2_im = f3.im * t3.re + f3.re * t3.im;
            // f0 ± s1
            let sum_re = (f0.re + p2_rr) - p2_ii;
            let sum_im = f0.im + s1_im;
            let diff_re = (f0.re + p2_ii) - p2_rr;
            let diff_im = f0.im - s1_im;
            // s3 = s0 + s2, s4 = s0 - s2 (real part only is used of s4)
            let s3_re = (s0_re - p3_ii) + p3_rr;
            let s3_im = s0_im + s2_im;
            let s4_re = (s0_re - p3_rr) + p3_ii;
            out[k] = Cpx { re: sum_re + s3_re, im: sum_im + s3_im };
            out[k + 2 * m] = Cpx { re: sum_re - s3_re, im: sum_im - s3_im };
            out[k + m] = Cpx { re: (diff_re + s0_im) - s2_im, im: diff_im - s4_re };
            out[k + 3 * m] = Cpx { re: (diff_re + s2_im) - s0_im, im: diff_im + s4_re };
        }
    }

    /// Radix-2 butterflies (kissfft's `kf_bfly2`). For power-of-two sizes the radix 2 is only
    /// ever the innermost stage (`m == 1`, twiddle 1), where every order gives the same bits.
    fn butterfly2(&self, out: &mut [Cpx], stride: usize, m: usize) {
        for k in 0..m {
            let t = self.twiddles[k * stride];
            let (f0, f1) = (out[k], out[k + m]);
            let p_rr = f1.re * t.re;
            let p_ii = f1.im * t.im;
            let p_im = f1.im * t.re + f1.re * t.im;
            out[k + m] = Cpx { re: (f0.re + p_ii) - p_rr, im: f0.im - p_im };
            out[k] = Cpx { re: (f0.re + p_rr) - p_ii, im: f0.im + p_im };
        }
    }

    /// The real-input post-processing (kissfft's `kiss_fftr` after the complex FFT), in the
    /// compiled order: bins `k` and `n - k` from the half-size spectrum's `k` and `n - k`.
    fn split_real(&self, z: &[Cpx], out: &mut [Cpx]) {
        let n = z.len();
        out[0] = Cpx { re: z[0].re + z[0].im, im: 0.0 };
        out[n] = Cpx { re: z[0].re - z[0].im, im: 0.0 };
        for k in 1..=n / 2 {
            let (p, q, st) = (z[k], z[n - k], self.super_twiddles[k - 1]);
            let f1_re = p.re + q.re;
            let f2_re = p.re - q.re;
            let f2_im = p.im + q.im;
            let (a, b) = (f2_re * st.re, f2_im * st.im);
            let tw_im = st.re * f2_im + f2_re * st.im;
            out[k] = Cpx { re: ((f1_re + a) - b) * 0.5, im: ((p.im - q.im) + tw_im) * 0.5 };
            out[n - k] = Cpx { re: ((f1_re + b) - a) * 0.5, im: ((q.im - p.im) + tw_im) * 0.5 };
        }
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

    /// Bits of kaldi-native-fbank 1.23's `Rfft(512).compute` (the x86-64 wheel, the same
    /// compiler and kissfft as sherpa-onnx 2.0.1's) on four frames, written by
    /// `scripts/knf_fft_reference.py`: the first is a real speech frame (windowed), the others
    /// pseudo-random.
    #[test]
    fn matches_the_reference_build() {
        let bytes = include_bytes!("../../tests/fixtures/fbank/knf_rfft_512.bin");
        let floats: Vec<f32> =
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let mut fft = RealFft::new(512).unwrap();
        let mut out = vec![Cpx::default(); 257];
        let mut frames = 0;
        for case in floats.chunks_exact(1024) {
            let (input, expected) = case.split_at(512);
            fft.process(input, &mut out);
            // knf packs [re0, re256, re1, im1, re2, im2, ...].
            assert_eq!(out[0].re.to_bits(), expected[0].to_bits(), "frame {frames} DC");
            assert_eq!(out[256].re.to_bits(), expected[1].to_bits(), "frame {frames} Nyquist");
            for k in 1..256 {
                let (re, im) = (expected[2 * k], expected[2 * k + 1]);
                assert_eq!(
                    (out[k].re.to_bits(), out[k].im.to_bits()),
                    (re.to_bits(), im.to_bits()),
                    "frame {frames} bin {k}: {:?} vs ({re}, {im})",
                    out[k]
                );
            }
            frames += 1;
        }
        assert_eq!(frames, 4);
    }
}
