//! Band-limited sample-rate conversion for streams: [`StreamResampler`].
//!
//! One implementation serves the offline readers and the live sources. It wraps rubato's
//! synchronous FFT resampler (`rubato::Fft`, overlap-add with a Blackman-Harris² windowed sinc
//! anti-aliasing filter, i.e. exact linear filtering, no block artifacts) behind a push API that
//! accepts input pieces of any length, trims the resampler's startup delay and, on
//! [`flush`](StreamResampler::flush), drains the tail so the whole stream comes out as exactly
//! `round(frames_in * out_rate / in_rate)` samples, time-aligned with the input.
//!
//! Equal rates are a pass-through (bit-exact, no delay). *Upsampling* (input below the output
//! rate: 8 kHz telephony, 11.025 kHz microphones) uses instead Kaldi's windowed-sinc filter
//! ([`super::linear_resample`], what sherpa-onnx uses): rubato's much steeper filter empties
//! the mel bins above the input's Nyquist frequency and the models then decode garbage (see
//! that module).
//!
//! The FFT block is chosen to span about [`TARGET_BLOCK_OUT`] output samples (32 ms at 16 kHz),
//! which puts the filter's cutoff at ~97 % of the lower Nyquist frequency (≈7.8 kHz for 16 kHz
//! output) and the delay at half a block (~16 ms). Rate pairs with a small common divisor force a
//! larger block (e.g. 44 100 → 16 000 uses 1764 → 640), and a pathological pair such as
//! 44 101 → 16 000 uses two-second blocks: still correct, just more latency (1 s) and memory.
//! Rates are limited to [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`], which bounds that cost.

use anyhow::{anyhow, bail, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Fft, FixedSync, Resampler, WindowFunction};

use super::linear_resample::LinearResampler;

/// Lowest sample rate accepted (input or output).
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest sample rate accepted (input or output). Bounds the FFT size for any rate pair: the
/// worst case (a prime-ish rate near the cap, as a corrupt header might declare) costs ~0.15 s
/// and ~70 MB to set up on a desktop core.
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// Output samples per FFT block that the block size is chosen to reach (at least).
pub const TARGET_BLOCK_OUT: usize = 512;

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

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Streaming mono resampler with fixed internal buffers.
///
/// ```
/// use zipvox::audio::StreamResampler;
///
/// let mut rs = StreamResampler::new(48_000, 16_000)?;
/// let mut out = Vec::new();
/// let capture = vec![[0.0f32; 480]; 10]; // e.g. 10 ms ALSA periods
/// for period in &capture {
///     rs.process(period, &mut out); // any lengths; output appears block by block
/// }
/// rs.flush(&mut out); // end of stream: the tail comes out
/// assert_eq!(out.len(), 1_600); // round(4800 * 16000 / 48000)
/// # Ok::<(), anyhow::Error>(())
/// ```
///
/// Output lags input by [`delay`](Self::delay) samples while streaming (the startup delay is
/// trimmed, so sample `k` of the output corresponds to time `k / out_rate` of the input);
/// [`flush`](Self::flush) releases the rest. After a flush the resampler is reset and can start
/// a new stream.
#[derive(Debug)]
pub struct StreamResampler {
    in_rate: u32,
    out_rate: u32,
    /// `None` when the rates are equal (pass-through) or when upsampling (`linear`).
    engine: Option<Engine>,
    /// The upsampling filter, when `in_rate < out_rate`.
    linear: Option<LinearResampler>,
    frames_in: u64,
    frames_out: u64,
}

#[derive(Debug)]
struct Engine {
    fft: Fft<f32>,
    /// Input frames per FFT call (fixed).
    chunk_in: usize,
    /// Output frames per FFT call (fixed).
    chunk_out: usize,
    /// Startup delay in output frames.
    delay: usize,
    /// Input collected towards the next call; never longer than `chunk_in`.
    pending: Vec<f32>,
    /// Output of one call.
    scratch: Vec<f32>,
    /// Output frames still to drop at the start of the stream.
    skip: usize,
}

impl Engine {
    /// Resamples `pending` (exactly `chunk_in` frames) and appends the output, minus any
    /// startup delay still to skip and capped at `limit` frames, to `out`. Returns how many
    /// frames were appended.
    fn run(&mut self, limit: u64, out: &mut Vec<f32>) -> Result<usize> {
        let input = InterleavedSlice::new(&self.pending[..], 1, self.chunk_in)
            .map_err(|e| anyhow!("resampler input buffer: {e:?}"))?;
        let mut output = InterleavedSlice::new_mut(&mut self.scratch[..], 1, self.chunk_out)
            .map_err(|e| anyhow!("resampler output buffer: {e:?}"))?;
        let (_, produced) = self
            .fft
            .process_into_buffer(&input, &mut output, None)
            .map_err(|e| anyhow!("resampler: {e}"))?;
        let produced = &self.scratch[..produced.min(self.scratch.len())];
        let skip = self.skip.min(produced.len());
        self.skip -= skip;
        let ready = &produced[skip..];
        let n = ready
            .len()
            .min(usize::try_from(limit).unwrap_or(usize::MAX));
        out.extend_from_slice(&ready[..n]);
        Ok(n)
    }
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
        let linear = (in_rate < out_rate).then(|| LinearResampler::new(in_rate, out_rate));
        let engine = if in_rate == out_rate || linear.is_some() {
            None
        } else {
            let (i, o) = (in_rate as usize, out_rate as usize);
            let g = gcd(i, o);
            let (min_in, min_out) = (i / g, o / g);
            // Blocks are a whole number of minimal blocks, enough for TARGET_BLOCK_OUT output
            // frames. Both block lengths must be even: rubato centres its sinc at `len / 2`
            // (rounded down) and reports the delay as `fft_size_out / 2`, which is only exact
            // for even lengths (an odd 441-frame block shifts 11 025 Hz input by 0.7 samples).
            let mut blocks = TARGET_BLOCK_OUT.div_ceil(min_out).max(1);
            if blocks % 2 == 1 && (min_in % 2 == 1 || min_out % 2 == 1) {
                blocks += 1;
            }
            let fft = Fft::<f32>::new_custom(
                i,
                o,
                blocks * min_in,
                1,
                1,
                WindowFunction::BlackmanHarris2,
                FixedSync::Both,
            )
            .map_err(|e| anyhow!("cannot resample {in_rate} Hz to {out_rate} Hz: {e}"))?;
            let chunk_in = fft.input_frames_next();
            let chunk_out = fft.output_frames_next();
            let delay = fft.output_delay();
            let scratch = vec![0.0; fft.output_frames_max().max(chunk_out)];
            log::debug!(
                "resampler {in_rate} -> {out_rate} Hz: blocks {chunk_in} -> {chunk_out}, \
                 delay {delay}, cutoff {:.3}",
                fft.cutoff()
            );
            Some(Engine {
                fft,
                chunk_in,
                chunk_out,
                delay,
                pending: Vec::with_capacity(chunk_in),
                scratch,
                skip: delay,
            })
        };
        Ok(Self {
            in_rate,
            out_rate,
            engine,
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
        self.engine.is_none() && self.linear.is_none()
    }

    /// Delay of the filter in output samples (0 for pass-through). While streaming, output lags
    /// input by up to `delay` plus one block.
    pub fn delay(&self) -> usize {
        if let Some(l) = &self.linear {
            return l.delay();
        }
        self.engine.as_ref().map_or(0, |e| e.delay)
    }

    /// Input frames per internal FFT block (1 for pass-through): the granularity at which
    /// output appears.
    pub fn block_len(&self) -> usize {
        self.engine.as_ref().map_or(1, |e| e.chunk_in)
    }

    /// Resamples `input` (mono, any length), appending every output sample that is ready to
    /// `out`.
    pub fn process(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
        self.frames_in += input.len() as u64;
        if let Some(l) = self.linear.as_mut() {
            l.process(input, out);
            self.frames_out = l.frames_out();
            return;
        }
        let Some(e) = self.engine.as_mut() else {
            out.extend_from_slice(input);
            self.frames_out += input.len() as u64;
            return;
        };
        while !input.is_empty() {
            let take = (e.chunk_in - e.pending.len()).min(input.len());
            e.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if e.pending.len() == e.chunk_in {
                match e.run(u64::MAX, out) {
                    Ok(n) => self.frames_out += n as u64,
                    Err(err) => {
                        // Buffers are sized from rubato's own figures, so this cannot happen.
                        debug_assert!(false, "{err}");
                        log::error!("{err}");
                    }
                }
                e.pending.clear();
            }
        }
    }

    /// Ends the stream: pads with silence and drains the filter so that the stream's output
    /// totals exactly `round(frames_in * out_rate / in_rate)` samples, then resets.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        let target = resampled_len(self.frames_in, self.in_rate, self.out_rate);
        if let Some(l) = self.linear.as_mut() {
            l.flush(target, out);
        }
        if let Some(e) = self.engine.as_mut() {
            // The pending partial block plus enough silent blocks to push the delay out.
            let max_blocks = e.delay / e.chunk_out.max(1) + 3;
            for _ in 0..max_blocks {
                if self.frames_out >= target {
                    break;
                }
                e.pending.resize(e.chunk_in, 0.0);
                let result = e.run(target - self.frames_out, out);
                e.pending.clear();
                match result {
                    Ok(n) => self.frames_out += n as u64,
                    Err(err) => {
                        debug_assert!(false, "{err}");
                        log::error!("{err}");
                        break;
                    }
                }
            }
            if self.frames_out < target {
                // Not reachable with rubato's block arithmetic; keep the length contract anyway.
                debug_assert!(false, "resampler drained short of {target}");
                let missing = usize::try_from(target - self.frames_out).unwrap_or(0);
                out.resize(out.len() + missing, 0.0);
            }
        }
        self.reset();
    }

    /// Drops all buffered input and filter state, ready for a new stream.
    pub fn reset(&mut self) {
        if let Some(l) = self.linear.as_mut() {
            l.reset();
        }
        if let Some(e) = self.engine.as_mut() {
            e.fft.reset();
            e.pending.clear();
            e.skip = e.delay;
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
