//! Time-domain part of the per-frame pipeline: copying a frame's window out of the sample stream
//! (reflecting at the signal edges as Kaldi does), DC removal, pre-emphasis and the window
//! function.
//!
//! Each step is a separate scalar function over a plain slice so a SIMD variant can be dropped
//! in beside it. Arithmetic order matches kaldi-native-fbank (sequential `f32` sums), which keeps
//! near-silent frames, whose log energies hinge on rounding residue, close to the reference.

/// Shape of the analysis window (Kaldi's `window_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowType {
    /// Kaldi's default: a Hann window raised to the power 0.85, zero at both ends.
    Povey,
    /// Symmetric Hamming, `0.54 - 0.46 cos`.
    Hamming,
    /// Symmetric Hann (Kaldi's "hanning"), `0.5 - 0.5 cos`.
    Hanning,
    /// No tapering.
    Rectangular,
    /// Blackman with Kaldi's default coefficient 0.42.
    Blackman,
}

/// Kaldi's default `blackman_coeff`.
const BLACKMAN_COEFF: f32 = 0.42;

/// Coefficients of `kind` for a window of `length` samples.
///
/// Evaluated in `f64` and rounded once to `f32`, as Kaldi does, so the table is the same bits
/// as the reference.
pub fn window_coefficients(kind: WindowType, length: usize) -> Vec<f32> {
    // A 1-sample window would divide by zero below; it is rejected by option validation, but
    // give a sane answer anyway.
    if length < 2 {
        return vec![1.0; length];
    }
    let a = 2.0 * std::f64::consts::PI / (length - 1) as f64;
    (0..length)
        .map(|i| {
            let x = a * i as f64;
            let w = match kind {
                WindowType::Povey => (0.5 - 0.5 * x.cos()).powf(0.85),
                WindowType::Hamming => 0.54 - 0.46 * x.cos(),
                WindowType::Hanning => 0.5 - 0.5 * x.cos(),
                WindowType::Rectangular => 1.0,
                WindowType::Blackman => {
                    // Kaldi keeps the coefficient as an f32 option.
                    let c = BLACKMAN_COEFF as f64;
                    c - 0.5 * x.cos() + (0.5 - c) * (2.0 * x).cos()
                }
            };
            w as f32
        })
        .collect()
}

/// Maps an absolute sample index outside `[0, total)` back inside by mirroring around the
/// signal edges: `-1 -> 0`, `-2 -> 1`, `total -> total - 1`. Repeats for windows longer than
/// the whole signal. `total` must be positive.
#[inline]
fn reflect(mut index: i64, total: i64) -> i64 {
    while index < 0 || index >= total {
        index = if index < 0 {
            -index - 1
        } else {
            2 * total - 1 - index
        };
    }
    index
}

/// Copies the window starting at absolute sample `start` into `out` (`out.len()` samples).
///
/// `buf` holds the retained samples, `buf[0]` being absolute sample `buf_start`; `total` is the
/// number of samples received so far. Samples before 0 or at/after `total` are taken by
/// reflection, which only happens for the first frame and for frames flushed at end of input;
/// the caller guarantees that every sample touched is still in `buf`.
pub fn extract_window(buf: &[f32], buf_start: u64, total: u64, start: i64, out: &mut [f32]) {
    let len = out.len() as i64;
    let buf_start = buf_start as i64;
    let rel = start - buf_start;
    if start >= 0 && rel >= 0 && start + len <= total as i64 {
        // The common case: the window lies inside the signal.
        let rel = rel as usize;
        out.copy_from_slice(&buf[rel..rel + out.len()]);
        return;
    }
    if total == 0 {
        out.fill(0.0);
        return;
    }
    for (k, o) in out.iter_mut().enumerate() {
        let abs = reflect(start + k as i64, total as i64);
        *o = buf[(abs - buf_start) as usize];
    }
}

/// Subtracts the frame mean (sequential `f32` sum, as Kaldi).
#[inline]
pub fn remove_dc_offset(frame: &mut [f32]) {
    if frame.is_empty() {
        return;
    }
    let mut sum = 0.0f32;
    for &x in frame.iter() {
        sum += x;
    }
    let mean = sum / frame.len() as f32;
    for x in frame.iter_mut() {
        *x -= mean;
    }
}

/// First-order high-pass `y[i] = x[i] - c x[i-1]`, with `x[-1] = x[0]` as Kaldi does.
#[inline]
pub fn preemphasize(frame: &mut [f32], coeff: f32) {
    if coeff == 0.0 || frame.is_empty() {
        return;
    }
    // Walk backwards so each step still sees the unmodified previous sample.
    for i in (1..frame.len()).rev() {
        frame[i] -= coeff * frame[i - 1];
    }
    frame[0] -= coeff * frame[0];
}

/// Multiplies the frame by the window coefficients (same length).
#[inline]
pub fn apply_window(frame: &mut [f32], window: &[f32]) {
    debug_assert_eq!(frame.len(), window.len());
    for (x, &w) in frame.iter_mut().zip(window) {
        *x *= w;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_mirrors_edges() {
        assert_eq!(reflect(-1, 10), 0);
        assert_eq!(reflect(-3, 10), 2);
        assert_eq!(reflect(10, 10), 9);
        assert_eq!(reflect(12, 10), 7);
        // Window longer than the signal: repeated reflections.
        assert_eq!(reflect(-5, 1), 0);
        assert_eq!(reflect(7, 3), 1);
    }

    #[test]
    fn extract_reflects_at_start_and_end() {
        let signal: Vec<f32> = (0..10).map(|x| x as f32).collect();
        let mut out = [0.0f32; 6];
        extract_window(&signal, 0, 10, -3, &mut out);
        assert_eq!(out, [2.0, 1.0, 0.0, 0.0, 1.0, 2.0]);
        extract_window(&signal, 0, 10, 7, &mut out);
        assert_eq!(out, [7.0, 8.0, 9.0, 9.0, 8.0, 7.0]);
        // Retained buffer starting at an offset.
        extract_window(&signal[4..], 4, 10, 7, &mut out);
        assert_eq!(out, [7.0, 8.0, 9.0, 9.0, 8.0, 7.0]);
        extract_window(&signal[4..], 4, 10, 4, &mut out);
        assert_eq!(out, [4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    }

    #[test]
    fn povey_window_shape() {
        let w = window_coefficients(WindowType::Povey, 400);
        assert_eq!(w[0], 0.0);
        assert!(w[399].abs() < 1e-6);
        assert!((w[200] - 1.0).abs() < 1e-4);
        // Symmetric.
        for i in 0..200 {
            assert!((w[i] - w[399 - i]).abs() < 1e-6);
        }
    }

    #[test]
    fn dc_and_preemphasis() {
        let mut f = [1.0f32, 2.0, 3.0];
        remove_dc_offset(&mut f);
        assert_eq!(f, [-1.0, 0.0, 1.0]);
        let mut f = [1.0f32, 2.0, 4.0];
        preemphasize(&mut f, 0.5);
        assert_eq!(f, [0.5, 1.5, 3.0]);
    }
}
