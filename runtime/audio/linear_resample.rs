//! Kaldi's `LinearResample` (what sherpa-onnx applies to input at any rate other than its
//! feature rate): a windowed-sinc filter with fixed weights per output phase. The weights are
//! computed in sherpa-onnx's precision (bit for bit its weights) and each output is the same
//! f32 sum, so zipvox's features see the samples sherpa-onnx's see.
//!
//! Why this filter for *upsampling* (8 kHz telephony, 11.025 kHz cheap USB microphones): a
//! steep band-limiting filter (rubato's Blackman-Harris² FFT resampler, which zipvox used
//! before) leaves (almost) nothing above the input's Nyquist frequency, so every mel bin above
//! 4 kHz of an 8 kHz input sits at the log floor. The Zipformer models never saw such features
//! (they are trained on 16 kHz audio) and decode garbage: sherpa-onnx itself transcribes
//! `sox -r 8000 … -r 16000` (an ideal band-limited upsampling) of test clip 0 as `HERE`. Kaldi's
//! short Hann-windowed sinc (6 zero crossings, cutoff at 99 % of the lower Nyquist frequency)
//! keeps a little energy above the cutoff, which is what the models cope with. For
//! *downsampling* the same filter keeps zipvox's transcripts equal to sherpa-onnx's (see
//! [`super::resample`]).
//!
//! The filter is symmetric around each output instant, so output sample `k` is time
//! `k / out_rate` of the input with no delay, at the cost of `window` seconds of look-ahead.
//! Each output is one f32 dot product in tap order, as sherpa-onnx's `DotProduct` (a
//! vectorised sum would reorder it and lose the bit-exactness).

/// Zero crossings of the sinc on each side (Kaldi's `lowpass_filter_width`, sherpa-onnx's 6).
const FILTER_ZEROS: i32 = 6;
/// Cutoff as a fraction of the lower rate's Nyquist frequency (sherpa-onnx's 0.99).
const CUTOFF_FRACTION: f64 = 0.99;

/// A streaming windowed-sinc resampler with fixed weights per output phase.
#[derive(Debug)]
pub struct LinearResampler {
    /// Input and output samples in one repeating unit (rates divided by their gcd).
    in_unit: u64,
    out_unit: u64,
    /// Per output phase: the first input index (relative to the unit's start) and the weights.
    first: Vec<i64>,
    weights: Vec<Vec<f32>>,
    /// Input samples kept, starting at absolute input index `history_start`.
    history: Vec<f32>,
    history_start: u64,
    /// Input samples received and output samples produced since the stream started.
    frames_in: u64,
    frames_out: u64,
}

/// Kaldi's filter: a sinc with `cutoff` Hz under a Hann window `zeros / (2 cutoff)` s wide on
/// each side, divided by the input rate; evaluated in the precision of sherpa-onnx's
/// `LinearResample` (`t` and the result in f32, the trigonometry in f64, the window and the
/// sinc each rounded to f32 before their product), so the weights, and with them the
/// upsampled audio, are bit for bit sherpa-onnx's. With every step in f64 the weights differ in
/// the last bit, and 2 of the 20 dev utterances at 8 kHz decoded one word differently.
fn filter_weight(t: f32, cutoff: f32, in_rate: u32) -> f32 {
    let (t64, c64, zeros) = (f64::from(t), f64::from(cutoff), f64::from(FILTER_ZEROS));
    let tau = std::f64::consts::TAU;
    let window = if f64::from(t.abs()) < zeros / (2.0 * c64) { (0.5 * (1.0 + (tau * c64 / zeros * t64).cos())) as f32 } else { 0.0 };
    let sinc = if t != 0.0 { ((tau * c64 * t64).sin() / (std::f64::consts::PI * t64)) as f32 } else { 2.0 * cutoff };
    sinc * window / in_rate as f32
}

impl LinearResampler {
    /// A resampler from `in_rate` to `out_rate` Hz (both positive; meant for `in_rate <
    /// out_rate`, though the filter is valid either way).
    pub fn new(in_rate: u32, out_rate: u32) -> Self {
        let (i, o) = (u64::from(in_rate), u64::from(out_rate));
        let g = gcd(i, o);
        let (in_unit, out_unit) = (i / g, o / g);
        let (fi, fo) = (f64::from(in_rate), f64::from(out_rate));
        let cutoff = cutoff_hz(in_rate, out_rate);
        let window = f64::from(FILTER_ZEROS) / (2.0 * f64::from(cutoff));
        let mut first = Vec::with_capacity(out_unit as usize);
        let mut weights = Vec::with_capacity(out_unit as usize);
        for phase in 0..out_unit {
            let t = phase as f64 / fo;
            let lo = ((t - window) * fi).ceil() as i64;
            let hi = ((t + window) * fi).floor() as i64;
            first.push(lo);
            weights.push((lo..=hi).map(|j| filter_weight((j as f64 / fi - t) as f32, cutoff, in_rate)).collect());
        }
        LinearResampler { in_unit, out_unit, first, weights, history: Vec::new(), history_start: 0, frames_in: 0, frames_out: 0 }
    }

    /// Output samples of look-ahead: how far output lags input while streaming.
    pub fn delay(&self) -> usize {
        let max_ahead = self.first.iter().zip(&self.weights).map(|(&f, w)| f + w.len() as i64).max().unwrap_or(0);
        (max_ahead.max(0) as u64 * self.out_unit).div_ceil(self.in_unit) as usize
    }

    /// The input index range output sample `k` reads: (absolute first index, weights).
    fn taps(&self, k: u64) -> (i64, &[f32]) {
        let (unit, phase) = (k / self.out_unit, (k % self.out_unit) as usize);
        (self.first[phase] + (unit * self.in_unit) as i64, &self.weights[phase])
    }

    /// Computes output sample `k`; inputs outside the history (before the stream, or past its
    /// end when flushing) count as zeros.
    fn output(&self, k: u64) -> f32 {
        let (start, w) = self.taps(k);
        let offset = start - self.history_start as i64;
        if offset >= 0 {
            if let Some(x) = self.history.get(offset as usize..offset as usize + w.len()) {
                // All taps inside the history: the common case, one plain sum in tap order.
                return w.iter().zip(x).fold(0.0f32, |acc, (&wj, &xj)| acc + wj * xj);
            }
        }
        let mut acc = 0.0f32;
        for (j, &wj) in w.iter().enumerate() {
            let idx = start + j as i64;
            if idx < self.history_start as i64 {
                continue;
            }
            if let Some(&x) = self.history.get((idx - self.history_start as i64) as usize) {
                acc += wj * x;
            }
        }
        acc
    }

    /// Appends `input` and every output sample whose taps are all available to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.history.extend_from_slice(input);
        self.frames_in += input.len() as u64;
        loop {
            let (start, w) = self.taps(self.frames_out);
            if start + w.len() as i64 > self.frames_in as i64 {
                break;
            }
            out.push(self.output(self.frames_out));
            self.frames_out += 1;
        }
        self.trim();
    }

    /// Drops history no future output reads (keeps the buffer at about one filter length).
    fn trim(&mut self) {
        let (start, _) = self.taps(self.frames_out);
        let keep_from = start.max(0) as u64;
        if keep_from > self.history_start {
            let drop = ((keep_from - self.history_start) as usize).min(self.history.len());
            self.history.drain(..drop);
            self.history_start += drop as u64;
        }
    }

    /// Ends the stream: produces outputs up to `total` samples in all (the input past its end
    /// taken as silence), then resets.
    pub fn flush(&mut self, total: u64, out: &mut Vec<f32>) {
        while self.frames_out < total {
            out.push(self.output(self.frames_out));
            self.frames_out += 1;
        }
        self.reset();
    }

    /// Forgets the stream.
    pub fn reset(&mut self) {
        self.history.clear();
        self.history_start = 0;
        self.frames_in = 0;
        self.frames_out = 0;
    }

    /// Output samples produced since the stream started.
    pub fn frames_out(&self) -> u64 {
        self.frames_out
    }
}

/// The filter's cutoff: sherpa-onnx's `0.99 * 0.5 * min_freq`, computed in f64 and stored in f32.
fn cutoff_hz(in_rate: u32, out_rate: u32) -> f32 {
    (CUTOFF_FRACTION * 0.5 * f64::from(in_rate.min(out_rate) as f32)) as f32
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct evaluation of the filter sum over the whole input, for comparison.
    fn reference(x: &[f32], rin: u32, rout: u32, n_out: usize) -> Vec<f32> {
        let (fi, fo) = (f64::from(rin), f64::from(rout));
        let cutoff = cutoff_hz(rin, rout);
        (0..n_out)
            .map(|k| {
                let t = k as f64 / fo;
                x.iter().enumerate().map(|(j, &v)| f64::from(v) * f64::from(filter_weight((j as f64 / fi - t) as f32, cutoff, rin))).sum::<f64>() as f32
            })
            .collect()
    }

    #[test]
    fn streaming_matches_the_direct_sum_for_any_split() {
        for &(rin, rout) in &[(8_000u32, 16_000u32), (11_025, 16_000), (12_345, 16_000)] {
            let x: Vec<f32> = (0..3_000).map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * 0.5).collect();
            let total = (x.len() as u64 * u64::from(rout) + u64::from(rin) / 2) / u64::from(rin);
            let want = reference(&x, rin, rout, total as usize);
            for piece in [1usize, 7, 160, 3_000] {
                let mut r = LinearResampler::new(rin, rout);
                let mut y = Vec::new();
                for p in x.chunks(piece) {
                    r.process(p, &mut y);
                }
                r.flush(total, &mut y);
                assert_eq!(y.len(), want.len());
                for (k, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!((a - b).abs() < 1e-5, "{rin}->{rout} piece {piece} k {k}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn history_stays_bounded() {
        let mut r = LinearResampler::new(8_000, 16_000);
        let mut y = Vec::new();
        for _ in 0..1_000 {
            r.process(&[0.25; 800], &mut y);
            y.clear();
        }
        assert!(r.history.len() < 800 + 64, "history {}", r.history.len());
    }
}
