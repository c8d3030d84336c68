//! Sample-rate conversion for streams: [`StreamResampler`].
//!
//! One implementation serves the offline readers, stdin, the live sources and the Wyoming
//! server. Equal rates are a pass-through (bit-exact, no delay); any other pair goes through
//! [`super::linear_resample`]: Kaldi's windowed-sinc filter in sherpa-onnx's arithmetic, so
//! 8, 11.025, 22.05, 44.1 or 48 kHz input reaches the model as the very samples sherpa-onnx
//! feeds it, and transcripts agree token for token at every rate (`scripts/eval-8k.sh RATE`:
//! 20/20 dev utterances at each rate tried). Why not a steeper resampler (rubato's FFT
//! resampler was used until 2026-12): for upsampling, its filter empties the mel bins above the
//! input's Nyquist frequency and the models decode garbage (that module's doc); for
//! downsampling, it decoded 2–3 of the 20 dev utterances at 22.05/44.1 kHz one word differently
//! from sherpa-onnx. Kaldi's short filter (6 zero crossings, cutoff at 99 % of the lower Nyquist
//! frequency) is also what torchaudio's default resampling, and so the training data
//! preparation of icefall's recipes, uses. Its price: a 12 kHz tone in 48 kHz input leaks
//! into the 4 kHz alias at −55 dB (rms 6.2e-4 for a 0.5 sine; `tests/audio_input.rs`).
//!
//! The push API accepts input pieces of any length, puts output sample `k` at time
//! `k / out_rate` of the input (no delay to trim), and on [`flush`](StreamResampler::flush)
//! emits the tail so that the whole stream comes out as exactly
//! `round(frames_in * out_rate / in_rate)` samples. Rates are limited to
//! [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`], which bounds the filter tables: the worst pair
//! (a rate near the cap with no common divisor with 16 kHz, as a corrupt header might declare)
//! has 16,000 phases of ~290 taps (18.6 MB); common rates need a few KB.

use anyhow::{bail, Result};

use super::linear_resample::LinearResampler;

/// Lowest sample rate accepted (input or output).
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest sample rate accepted (input or output). Bounds the filter tables (see the module
/// doc).
pub const MAX_SAMPLE_RATE: u32 = 384_000;

/// Number of output samples a stream of `frames_in` input frames resamples to:
/// `round(frames_in * out_rate / in_rate)` (halves round up), computed exactly.
pub fn resampled_len(frames_in: u64, in_rate: u32, out_rate: u32) -> u64 {
    if in_rate == 0 {
        return 0;
    }
    let (n, i, o) = (
        u128::from(frames_in),
        u128::from(in_rate),
        u128::from(out_rate),
    );
    u64::try_from((n * o + i / 2) / i).unwrap_or(u64::MAX)
}

/// Streaming mono resampler with bounded internal buffers.
///
/// ```
/// use zipvox::audio::StreamResampler;
///
/// let mut rs = StreamResampler::new(48_000, 16_000)?;
/// let mut out = Vec::new();
/// let capture = vec![[0.0f32; 480]; 10]; // e.g. 10 ms ALSA periods
/// for period in &capture {
///     rs.process(period, &mut out); // any lengths; output follows input, `delay()` behind
/// }
/// rs.flush(&mut out); // end of stream: the tail comes out
/// assert_eq!(out.len(), 1_600); // round(4800 * 16000 / 48000)
/// # Ok::<(), anyhow::Error>(())
/// ```
///
/// Output lags input by [`delay`](Self::delay) samples while streaming (the filter's
/// look-ahead; sample `k` of the output corresponds to time `k / out_rate` of the input);
/// [`flush`](Self::flush) releases the rest. After a flush the resampler is reset and can start
/// a new stream.
#[derive(Debug)]
pub struct StreamResampler {
    in_rate: u32,
    out_rate: u32,
    /// The filter; `None` when the rates are equal (pass-through).
    linear: Option<LinearResampler>,
    frames_in: u64,
    frames_out: u64,
}

impl StreamResampler {
    /// A resampler from `in_rate` to `out_rate` Hz (both within
    /// [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`]).
    pub fn new(in_rate: u32, out_rate: u32) -> Result<Self> {
        for (what, rate) in [("sample rate", in_rate), ("output sample rate", out_rate)] {
            if rate == 0 {
                bail!("invalid {what} 0 Hz");
            }
            if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
                bail!(
                    "unsupported {what} {rate} Hz (zipvox handles {MIN_SAMPLE_RATE}..={MAX_SAMPLE_RATE} Hz)"
                );
            }
        }
        let linear = (in_rate != out_rate).then(|| LinearResampler::new(in_rate, out_rate));
        Ok(Self {
            in_rate,
            out_rate,
            linear,
            frames_in: 0,
            frames_out: 0,
        })
    }

    /// Input sample rate.
    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output sample rate.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// True when the rates are equal and samples are copied unchanged.
    pub fn is_passthrough(&self) -> bool {
        self.linear.is_none()
    }

    /// Delay of the filter in output samples (0 for pass-through): how far output lags input
    /// while streaming.
    pub fn delay(&self) -> usize {
        self.linear.as_ref().map_or(0, LinearResampler::delay)
    }

    /// Resamples `input` (mono, any length), appending every output sample that is ready to
    /// `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.frames_in += input.len() as u64;
        match self.linear.as_mut() {
            Some(l) => {
                l.process(input, out);
                self.frames_out = l.frames_out();
            }
            None => {
                out.extend_from_slice(input);
                self.frames_out += input.len() as u64;
            }
        }
    }

    /// Ends the stream: takes the input past its end as silence so that the stream's output
    /// totals exactly `round(frames_in * out_rate / in_rate)` samples, then resets.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let target = resampled_len(self.frames_in, self.in_rate, self.out_rate);
        if let Some(l) = self.linear.as_mut() {
            l.flush(target, out);
        }
        self.reset();
    }

    /// Drops all buffered input and filter state, ready for a new stream.
    pub fn reset(&mut self) {
        if let Some(l) = self.linear.as_mut() {
            l.reset();
        }
        self.frames_in = 0;
        self.frames_out = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_exact_for_any_split() {
        for &(rin, rout) in &[
            (8_000, 16_000),
            (44_100, 16_000),
            (48_000, 16_000),
            (22_050, 16_000),
            (16_000, 44_100),
        ] {
            for &n in &[0usize, 1, 2, 100, 1_763, 1_764, 1_765, 10_000, 44_100] {
                let input: Vec<f32> = (0..n).map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5).collect();
                let mut rs = StreamResampler::new(rin, rout).unwrap();
                let mut a = Vec::new();
                rs.process(&input, &mut a);
                rs.flush(&mut a);
                assert_eq!(
                    a.len() as u64,
                    resampled_len(n as u64, rin, rout),
                    "{rin}->{rout} n={n}"
                );
                // Reused after flush, fed in odd pieces: same result.
                let mut b = Vec::new();
                for piece in input.chunks(333) {
                    rs.process(piece, &mut b);
                }
                rs.flush(&mut b);
                assert_eq!(a, b, "{rin}->{rout} n={n}");
            }
        }
    }

    /// Amplitude and phase of a 1 kHz sine resampled from `rin` to `rout`, measured away from
    /// the ends.
    fn sine_through(rin: u32, rout: u32) -> (f64, f64) {
        use std::f64::consts::PI;
        let n = rin as usize;
        let x: Vec<f32> = (0..n)
            .map(|k| (0.5 * (2.0 * PI * 1000.0 * k as f64 / f64::from(rin)).sin()) as f32)
            .collect();
        let mut rs = StreamResampler::new(rin, rout).unwrap();
        let mut y = Vec::new();
        rs.process(&x, &mut y);
        rs.flush(&mut y);
        let m = y.len() / 8;
        let (mut s, mut c) = (0.0, 0.0);
        for (k, &v) in y.iter().enumerate().take(y.len() - m).skip(m) {
            let w = 2.0 * PI * 1000.0 * k as f64 / f64::from(rout);
            s += f64::from(v) * w.sin();
            c += f64::from(v) * w.cos();
        }
        let len = (y.len() - 2 * m) as f64;
        let (s, c) = (2.0 * s / len, 2.0 * c / len);
        ((s * s + c * c).sqrt(), c.atan2(s))
    }

    #[test]
    fn output_is_time_aligned_for_odd_block_rates() {
        for &(rin, rout) in &[
            (11_025, 16_000),
            (16_000, 11_025),
            (16_000, 44_100),
            (44_100, 16_000),
            (8_000, 16_000),
            (12_345, 16_000),
        ] {
            let (amp, phase) = sine_through(rin, rout);
            assert!((amp - 0.5).abs() < 0.003, "{rin}->{rout}: amplitude {amp}");
            assert!(phase.abs() < 0.003, "{rin}->{rout}: phase {phase} rad");
        }
    }

    #[test]
    fn passthrough_is_exact() {
        let mut rs = StreamResampler::new(16_000, 16_000).unwrap();
        assert!(rs.is_passthrough());
        let input = [0.1f32, -0.2, 0.3];
        let mut out = Vec::new();
        rs.process(&input, &mut out);
        rs.flush(&mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn rejects_bad_rates() {
        assert!(StreamResampler::new(0, 16_000)
            .unwrap_err()
            .to_string()
            .contains("0 Hz"));
        assert!(StreamResampler::new(16_000, 0).is_err());
        assert!(StreamResampler::new(u32::MAX, 16_000)
            .unwrap_err()
            .to_string()
            .contains("unsupported"));
        assert!(StreamResampler::new(999, 16_000).is_err());
        assert!(StreamResampler::new(MAX_SAMPLE_RATE + 1, 16_000).is_err());
        assert!(StreamResampler::new(MAX_SAMPLE_RATE, 16_000).is_ok());
        assert!(StreamResampler::new(MIN_SAMPLE_RATE, 16_000).is_ok());
    }

    /// The worst rate pair the limits admit: a rate near the cap with no common divisor with
    /// 16 kHz (16,000 filter phases). It must still build and run.
    #[test]
    fn worst_rate_pair_builds() {
        let t = std::time::Instant::now();
        let mut rs = StreamResampler::new(383_999, 16_000).unwrap();
        let built = t.elapsed();
        let mut out = Vec::new();
        rs.process(&vec![0.25f32; 383_999], &mut out);
        rs.flush(&mut out);
        assert_eq!(out.len(), 16_000);
        assert!(out[8_000..8_010].iter().all(|&v| (v - 0.25).abs() < 1e-3), "{:?}", &out[8_000..8_010]);
        eprintln!("383999 -> 16000 Hz: tables built in {built:?}, 1 s resampled in {:?}", t.elapsed() - built);
    }

    #[test]
    fn rounding() {
        assert_eq!(resampled_len(3, 48_000, 16_000), 1);
        assert_eq!(resampled_len(2, 48_000, 16_000), 1); // 0.667
        assert_eq!(resampled_len(1, 48_000, 16_000), 0); // 0.333
        assert_eq!(resampled_len(441, 44_100, 16_000), 160);
        assert_eq!(resampled_len(5, 8_000, 16_000), 10);
        assert_eq!(resampled_len(7, 32_000, 16_000), 4); // 3.5 rounds up
    }
}
