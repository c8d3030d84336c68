//! Kaldi mel filterbank: triangular filters equally spaced on the mel scale
//! `mel(f) = 1127 ln(1 + f / 700)`, applied to the power spectrum, then the log with a floor.
//!
//! The table is built in `f32` with the same operation order as Kaldi's `MelBanks`, so which FFT
//! bins fall inside a triangle (a strict comparison on rounded mel values) matches the reference
//! bit for bit. Only each filter's non-zero range is stored, packed in one array.

/// Kaldi's mel scale.
#[inline]
pub fn mel_scale(freq: f32) -> f32 {
    1127.0f32 * (1.0f32 + freq / 700.0f32).ln()
}

/// Triangular mel filters over the non-Nyquist bins of a real FFT.
#[derive(Clone, Debug)]
pub struct MelBanks {
    /// First FFT bin of each filter.
    first_bin: Vec<usize>,
    /// Filter `i`'s weights are `weights[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<usize>,
    weights: Vec<f32>,
    /// Number of power-spectrum bins the filters read (FFT size / 2; the Nyquist bin is unused).
    num_fft_bins: usize,
}

impl MelBanks {
    /// Builds `num_bins` filters for an FFT of `padded_length` samples at `sample_rate` Hz,
    /// spanning `low_freq`..`high_freq` Hz; `high_freq <= 0` means Nyquist + `high_freq`.
    pub fn new(
        num_bins: usize,
        sample_rate: f32,
        padded_length: usize,
        low_freq: f32,
        high_freq: f32,
    ) -> Result<Self, String> {
        if num_bins < 3 {
            return Err(format!("need at least 3 mel bins, got {num_bins}"));
        }
        if padded_length < 2 || !padded_length.is_multiple_of(2) {
            return Err(format!("FFT size must be even, got {padded_length}"));
        }
        let num_fft_bins = padded_length / 2;
        let nyquist = 0.5f32 * sample_rate;
        let high_freq = if high_freq > 0.0 {
            high_freq
        } else {
            nyquist + high_freq
        };
        if !(low_freq >= 0.0 && low_freq < nyquist && high_freq > 0.0 && high_freq <= nyquist)
            || high_freq <= low_freq
        {
            return Err(format!(
                "bad mel range: low_freq {low_freq} Hz, high_freq {high_freq} Hz, nyquist {nyquist} Hz"
            ));
        }

        let fft_bin_width = sample_rate / padded_length as f32;
        let mel_low = mel_scale(low_freq);
        let mel_high = mel_scale(high_freq);
        // num_bins + 1 intervals: the outer filters' skirts reach the range ends.
        let mel_delta = (mel_high - mel_low) / (num_bins + 1) as f32;

        let mut first_bin = Vec::with_capacity(num_bins);
        let mut offsets = Vec::with_capacity(num_bins + 1);
        let mut weights = Vec::new();
        offsets.push(0);
        for bin in 0..num_bins {
            let left = mel_low + bin as f32 * mel_delta;
            let center = mel_low + (bin + 1) as f32 * mel_delta;
            let right = mel_low + (bin + 2) as f32 * mel_delta;
            let mut first = None;
            for k in 0..num_fft_bins {
                let mel = mel_scale(fft_bin_width * k as f32);
                if mel > left && mel < right {
                    let w = if mel <= center {
                        (mel - left) / (center - left)
                    } else {
                        (right - mel) / (right - center)
                    };
                    // A triangle covers a contiguous bin range, so pushing in order packs it.
                    first.get_or_insert(k);
                    weights.push(w);
                }
            }
            match first {
                Some(k) => first_bin.push(k),
                None => {
                    return Err(format!(
                        "mel bin {bin} covers no FFT bin: too many mel bins for this FFT size"
                    ))
                }
            }
            offsets.push(weights.len());
        }
        Ok(Self {
            first_bin,
            offsets,
            weights,
            num_fft_bins,
        })
    }

    /// Number of filters (feature dimension).
    pub fn num_bins(&self) -> usize {
        self.first_bin.len()
    }

    /// Power-spectrum bins read by [`compute`](Self::compute): FFT size / 2.
    pub fn num_fft_bins(&self) -> usize {
        self.num_fft_bins
    }

    /// Filter `i`: its first FFT bin and its non-zero weights.
    pub fn bin(&self, i: usize) -> (usize, &[f32]) {
        (
            self.first_bin[i],
            &self.weights[self.offsets[i]..self.offsets[i + 1]],
        )
    }

    /// Filter energies: `out[i] = sum_k w_i[k] power[first_i + k]` (sequential `f32` sum).
    #[inline]
    pub fn compute(&self, power: &[f32], out: &mut [f32]) {
        debug_assert!(power.len() >= self.num_fft_bins);
        debug_assert_eq!(out.len(), self.num_bins());
        for (i, o) in out.iter_mut().enumerate() {
            let (first, w) = self.bin(i);
            let p = &power[first..first + w.len()];
            let mut energy = 0.0f32;
            for (&a, &b) in w.iter().zip(p) {
                energy += a * b;
            }
            *o = energy;
        }
    }
}

/// Natural log with a floor, in place: `x = ln(max(x, floor))` (Kaldi floors at `f32::EPSILON`
/// so silence gives a finite value).
#[inline]
pub fn log_with_floor(energies: &mut [f32], floor: f32) {
    for e in energies.iter_mut() {
        *e = e.max(floor).ln();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sherpa_banks() -> MelBanks {
        MelBanks::new(80, 16000.0, 512, 20.0, -400.0).unwrap()
    }

    #[test]
    fn mel_scale_values() {
        assert_eq!(mel_scale(0.0), 0.0);
        assert!((mel_scale(700.0) - 1127.0 * 2f32.ln()).abs() < 1e-3);
    }

    /// First/last non-zero FFT bin and edge weights, as printed by kaldi-native-fbank 1.23's
    /// `MelBanks(...).get_matrix()` for the sherpa-onnx options.
    #[test]
    fn edges_match_kaldi_native_fbank() {
        let banks = sherpa_banks();
        assert_eq!(banks.num_bins(), 80);
        assert_eq!(banks.num_fft_bins(), 256);
        let expected: [(usize, usize, usize, f32, f32); 6] = [
            (0, 1, 2, 0.513_682_66, 0.099_832_88),
            (1, 2, 2, 0.900_167_1, 0.900_167_1),
            (2, 3, 3, 0.769_049_5, 0.769_049_5),
            (40, 55, 59, 0.147_979_21, 0.182_548_97),
            (78, 221, 235, 0.108_055_15, 0.039_023_586),
            (79, 228, 243, 0.047_464_22, 0.024_948_502),
        ];
        for (bin, first, last, w_first, w_last) in expected {
            let (f, w) = banks.bin(bin);
            assert_eq!(f, first, "bin {bin} first");
            assert_eq!(f + w.len() - 1, last, "bin {bin} last");
            assert!(
                (w[0] - w_first).abs() < 1e-6,
                "bin {bin}: {} vs {w_first}",
                w[0]
            );
            assert!(
                (w[w.len() - 1] - w_last).abs() < 1e-6,
                "bin {bin}: {} vs {w_last}",
                w[w.len() - 1]
            );
        }
    }

    #[test]
    fn filters_are_triangles_within_range() {
        let banks = sherpa_banks();
        let mut prev_first = 0;
        for i in 0..banks.num_bins() {
            let (first, w) = banks.bin(i);
            assert!(first >= prev_first, "filters move up in frequency");
            prev_first = first;
            // Never DC (20 Hz low edge) nor beyond 7600 Hz (bin 243.2).
            assert!(first >= 1 && first + w.len() <= 244);
            assert!(w.iter().all(|&x| x > 0.0 && x <= 1.0));
            // Rises then falls.
            let peak = w.iter().cloned().fold(0.0f32, f32::max);
            let top = w.iter().position(|&x| x == peak).unwrap();
            assert!(w[..=top].windows(2).all(|p| p[0] <= p[1]));
            assert!(w[top..].windows(2).all(|p| p[0] >= p[1]));
        }
    }

    #[test]
    fn bad_options_are_rejected() {
        assert!(MelBanks::new(2, 16000.0, 512, 20.0, -400.0).is_err());
        assert!(MelBanks::new(80, 16000.0, 512, 9000.0, 0.0).is_err());
        assert!(MelBanks::new(80, 16000.0, 512, 20.0, 9000.0).is_err());
        // Far too many bins for a 512-point FFT: some filters would be empty.
        assert!(MelBanks::new(400, 16000.0, 512, 20.0, -400.0).is_err());
    }

    #[test]
    fn compute_and_log() {
        let banks = sherpa_banks();
        let power = vec![1.0f32; 257];
        let mut out = vec![0.0f32; 80];
        banks.compute(&power, &mut out);
        for (i, &e) in out.iter().enumerate() {
            let sum: f32 = banks.bin(i).1.iter().sum();
            assert_eq!(e, sum);
        }
        let mut e = [0.0f32, 1.0];
        log_with_floor(&mut e, f32::EPSILON);
        assert_eq!(e, [f32::EPSILON.ln(), 0.0]);
    }
}
