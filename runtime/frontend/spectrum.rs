//! Frequency-domain part of the per-frame pipeline: the FFT input and the power (or magnitude)
//! spectrum of its output.
//!
//! The FFT itself runs in `f64` so its rounding noise does not drown the quietest bins;
//! everything around it is `f32`, and the spectrum is rounded to `f32` before squaring, as
//! kaldi-native-fbank does.

use realfft::num_complex::Complex;

/// Copies the `f32` frame into the start of the `f64` FFT buffer and zeroes the padding.
#[inline]
pub fn widen_and_pad(frame: &[f32], fft_in: &mut [f64]) {
    let (head, padding) = fft_in.split_at_mut(frame.len());
    for (d, &s) in head.iter_mut().zip(frame) {
        *d = s as f64;
    }
    padding.fill(0.0);
}

/// `out[k] = |spec[k]|^2` for the first `out.len()` bins.
#[inline]
pub fn power_spectrum(spec: &[Complex<f64>], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(spec) {
        let (re, im) = (c.re as f32, c.im as f32);
        *o = re * re + im * im;
    }
}

/// `out[k] = |spec[k]|`, for `use_power == false`. Square root of the `f32` power, as Kaldi.
#[inline]
pub fn magnitude_spectrum(spec: &[Complex<f64>], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(spec) {
        let (re, im) = (c.re as f32, c.im as f32);
        *o = (re * re + im * im).sqrt();
    }
}
