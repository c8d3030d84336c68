//! Frequency-domain part of the per-frame pipeline: the FFT input and the power (or magnitude)
//! spectrum of its output, in `f32` as kaldi-native-fbank computes them.

use super::fft::Cpx;

/// Copies the frame into the start of the FFT input and zeroes the padding.
#[inline]
pub fn pad(frame: &[f32], fft_in: &mut [f32]) {
    let (head, padding) = fft_in.split_at_mut(frame.len());
    head.copy_from_slice(frame);
    padding.fill(0.0);
}

/// `out[k] = |spec[k]|^2` for the first `out.len()` bins.
#[inline]
pub fn power_spectrum(spec: &[Cpx], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(spec) {
        *o = c.re * c.re + c.im * c.im;
    }
}

/// `out[k] = |spec[k]|`, for `use_power == false`. Square root of the `f32` power, as Kaldi.
#[inline]
pub fn magnitude_spectrum(spec: &[Cpx], out: &mut [f32]) {
    for (o, c) in out.iter_mut().zip(spec) {
        *o = (c.re * c.re + c.im * c.im).sqrt();
    }
}
