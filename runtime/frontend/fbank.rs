//! Streaming Kaldi log-mel filterbank, compatible with kaldi-native-fbank's `OnlineFbank` as
//! configured by sherpa-onnx.
//!
//! [`OnlineFbank`] accepts audio in pieces of any size and computes each frame as soon as its
//! whole window has arrived; [`OnlineFbank::input_finished`] flushes the trailing frames, whose
//! windows are completed by reflection. Every frame is computed by one function from its own
//! window samples only, so any split of the same audio yields bit-identical frames. Only the
//! samples that future frames still need are kept, and the consumer drops frames it has used
//! with [`OnlineFbank::discard_frames_before`], so memory stays bounded on an endless stream.

use std::fmt;

use super::fft::{Cpx, RealFft};
use super::frames::FrameStore;
use super::geometry::FrameGeometry;
use super::mel::{log_with_floor, MelBanks};
use super::spectrum::{magnitude_spectrum, pad, power_spectrum};
use super::window::{
    apply_window, extract_window, preemphasize, remove_dc_offset, window_coefficients, WindowType,
};

/// Filterbank configuration. [`Default`] is exactly what sherpa-onnx uses for its Zipformer
/// transducers.
///
/// Fixed, not configurable: dither 0 (features are deterministic), no energy coefficient
/// (`use_energy = false`, so `htk_compat` is moot), no VTLN, samples taken as given (sherpa-onnx
/// feeds floats in [-1, 1]).
#[derive(Clone, Debug, PartialEq)]
pub struct FbankOptions {
    /// Sample rate of the input, Hz. 16000.
    pub sample_rate: f32,
    /// Analysis window length, ms. 25.
    pub frame_length_ms: f32,
    /// Hop between frames, ms. 10.
    pub frame_shift_ms: f32,
    /// Zero-pad the window to the next power of two for the FFT (400 -> 512). true.
    pub round_to_power_of_two: bool,
    /// Number of mel filters = feature dimension. 80.
    pub num_mel_bins: usize,
    /// Lowest filter edge, Hz. 20.
    pub low_freq: f32,
    /// Highest filter edge, Hz; `<= 0` means Nyquist + this. -400 (i.e. 7600 Hz at 16 kHz).
    pub high_freq: f32,
    /// Pre-emphasis coefficient, in [0, 1]. 0.97.
    pub preemph_coeff: f32,
    /// Subtract each frame's mean before pre-emphasis. true.
    pub remove_dc_offset: bool,
    /// Analysis window. Povey.
    pub window_type: WindowType,
    /// Kaldi `snip_edges`. false: frames centred on `i * shift + shift / 2`, edges reflected.
    pub snip_edges: bool,
    /// Power (true) or magnitude (false) spectrum into the filters. true.
    pub use_power: bool,
    /// Output `ln(max(energy, log_floor))` (true) or raw filter energies. true.
    pub use_log_fbank: bool,
    /// Floor applied before the log. `f32::EPSILON`.
    pub log_floor: f32,
}

impl Default for FbankOptions {
    fn default() -> Self {
        Self {
            sample_rate: 16000.0,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            round_to_power_of_two: true,
            num_mel_bins: 80,
            low_freq: 20.0,
            high_freq: -400.0,
            preemph_coeff: 0.97,
            remove_dc_offset: true,
            window_type: WindowType::Povey,
            snip_edges: false,
            use_power: true,
            use_log_fbank: true,
            log_floor: f32::EPSILON,
        }
    }
}

impl FbankOptions {
    /// Window length and shift in samples, and FFT size.
    ///
    /// Computed like Kaldi (`f32` product, truncated) so odd rates round the same way.
    pub fn geometry(&self) -> FrameGeometry {
        let samples = |ms: f32| (self.sample_rate * 0.001f32 * ms) as usize;
        let frame_length = samples(self.frame_length_ms);
        let padded_length = if self.round_to_power_of_two {
            frame_length.next_power_of_two()
        } else {
            frame_length
        };
        FrameGeometry {
            frame_length,
            frame_shift: samples(self.frame_shift_ms),
            padded_length,
            snip_edges: self.snip_edges,
        }
    }

    /// Checks the options and builds the mel table and FFT plan (the parts that can fail).
    fn validate(&self) -> Result<(MelBanks, RealFft), FbankConfigError> {
        let err = |msg: String| Err(FbankConfigError(msg));
        if self.sample_rate.is_nan() || self.sample_rate <= 0.0 {
            return err(format!(
                "sample_rate must be positive, got {}",
                self.sample_rate
            ));
        }
        let g = self.geometry();
        if g.frame_length < 2 || g.frame_shift == 0 {
            return err(format!(
                "frame of {} samples with shift {} is too small (frame_length_ms {}, frame_shift_ms {})",
                g.frame_length, g.frame_shift, self.frame_length_ms, self.frame_shift_ms
            ));
        }
        if !(0.0..=1.0).contains(&self.preemph_coeff) {
            return err(format!(
                "preemph_coeff must be in [0, 1], got {}",
                self.preemph_coeff
            ));
        }
        if self.use_log_fbank && (self.log_floor.is_nan() || self.log_floor <= 0.0) {
            return err(format!(
                "log_floor must be positive, got {}",
                self.log_floor
            ));
        }
        let mel = MelBanks::new(
            self.num_mel_bins,
            self.sample_rate,
            g.padded_length,
            self.low_freq,
            self.high_freq,
        )
        .map_err(FbankConfigError)?;
        let fft = RealFft::new(g.padded_length).map_err(FbankConfigError)?;
        Ok((mel, fft))
    }
}

/// Invalid [`FbankOptions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FbankConfigError(pub String);

impl fmt::Display for FbankConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid fbank options: {}", self.0)
    }
}

impl std::error::Error for FbankConfigError {}

/// The per-frame pipeline with its tables, FFT plan and scratch buffers (reused for every
/// frame, so computing a frame does not allocate).
struct FrameComputer {
    geometry: FrameGeometry,
    window: Vec<f32>,
    preemph_coeff: f32,
    remove_dc_offset: bool,
    use_power: bool,
    use_log_fbank: bool,
    log_floor: f32,
    mel: MelBanks,
    /// The extracted window, shaped in `f32` like Kaldi.
    frame: Vec<f32>,
    /// `f32` FFT in the reference build's exact order (see `fft.rs` for why not realfft).
    fft: RealFft,
    /// Zero-padded window.
    fft_in: Vec<f32>,
    fft_out: Vec<Cpx>,
    /// Power spectrum without the Nyquist bin, which no Kaldi mel filter reaches.
    spectrum: Vec<f32>,
}

impl FrameComputer {
    fn new(opts: &FbankOptions, mel: MelBanks, fft: RealFft) -> Self {
        let geometry = opts.geometry();
        Self {
            geometry,
            window: window_coefficients(opts.window_type, geometry.frame_length),
            frame: vec![0.0; geometry.frame_length],
            preemph_coeff: opts.preemph_coeff,
            remove_dc_offset: opts.remove_dc_offset,
            use_power: opts.use_power,
            use_log_fbank: opts.use_log_fbank,
            log_floor: opts.log_floor,
            fft_in: vec![0.0; fft.len()],
            fft_out: vec![Cpx::default(); fft.num_bins()],
            spectrum: vec![0.0; mel.num_fft_bins()],
            mel,
            fft,
        }
    }

    /// Computes frame `index` into `out` (`num_mel_bins` floats). `samples[0]` is absolute
    /// sample `samples_start`; `total` samples have been received. The result depends only on
    /// the frame's window samples (and, for flushed frames, on where the signal ends).
    fn compute(
        &mut self,
        samples: &[f32],
        samples_start: u64,
        total: u64,
        index: usize,
        out: &mut [f32],
    ) {
        extract_window(
            samples,
            samples_start,
            total,
            self.geometry.first_sample(index),
            &mut self.frame,
        );
        self.shape_window();
        pad(&self.frame, &mut self.fft_in);
        self.fft.process(&self.fft_in, &mut self.fft_out);
        if self.use_power {
            power_spectrum(&self.fft_out, &mut self.spectrum);
        } else {
            magnitude_spectrum(&self.fft_out, &mut self.spectrum);
        }
        self.mel.compute(&self.spectrum, out);
        if self.use_log_fbank {
            log_with_floor(out, self.log_floor);
        }
    }

    /// DC removal, pre-emphasis and window function on the extracted window, in Kaldi's order.
    fn shape_window(&mut self) {
        let frame = &mut self.frame;
        if self.remove_dc_offset {
            remove_dc_offset(frame);
        }
        preemphasize(frame, self.preemph_coeff);
        apply_window(frame, &self.window);
    }
}

/// Largest piece appended to the sample buffer before frames are computed and used samples
/// dropped: bounds memory when a caller hands over a whole file at once.
const MAX_PIECE: usize = 8192;

/// Streaming filterbank: audio in, frames out, addressed by absolute frame index.
///
/// Frame `i` is centred on sample `i * 160 + 80` (with the default options) and is ready as soon
/// as its 400-sample window has been received; the first frame reflects the start of the signal.
/// After [`input_finished`](Self::input_finished) the total is `round(samples / 160)` frames,
/// the last ones reflected at the end, exactly as kaldi-native-fbank.
pub struct OnlineFbank {
    opts: FbankOptions,
    geometry: FrameGeometry,
    computer: FrameComputer,
    /// Retained samples: the ones future frames still need.
    samples: Vec<f32>,
    /// Absolute index of `samples[0]`.
    samples_start: u64,
    /// Samples received since the start of the stream.
    num_samples: u64,
    finished: bool,
    frames: FrameStore,
}

impl OnlineFbank {
    /// Creates a filterbank; panics on invalid options (see [`try_new`](Self::try_new)).
    pub fn new(opts: FbankOptions) -> Self {
        Self::try_new(opts).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a filterbank, or explains what is wrong with `opts`.
    pub fn try_new(opts: FbankOptions) -> Result<Self, FbankConfigError> {
        let (mel, fft) = opts.validate()?;
        let geometry = opts.geometry();
        let computer = FrameComputer::new(&opts, mel, fft);
        Ok(Self {
            geometry,
            computer,
            samples: Vec::with_capacity(MAX_PIECE + geometry.frame_length),
            samples_start: 0,
            num_samples: 0,
            finished: false,
            frames: FrameStore::new(opts.num_mel_bins),
            opts,
        })
    }

    /// The options this filterbank was built with.
    pub fn options(&self) -> &FbankOptions {
        &self.opts
    }

    /// Frame layout in samples (window length, shift, FFT size).
    pub fn geometry(&self) -> FrameGeometry {
        self.geometry
    }

    /// Feature dimension (number of mel bins, 80).
    pub fn dim(&self) -> usize {
        self.opts.num_mel_bins
    }

    /// Samples between consecutive frames (160).
    pub fn frame_shift_samples(&self) -> usize {
        self.geometry.frame_shift
    }

    /// Samples received since the start of the stream (or the last [`reset`](Self::reset)).
    pub fn num_samples_received(&self) -> u64 {
        self.num_samples
    }

    /// Appends audio (at `options().sample_rate`, floats in [-1, 1]) and computes every frame
    /// whose window is now complete.
    ///
    /// Panics if called after [`input_finished`](Self::input_finished) without a
    /// [`reset`](Self::reset) (the stream's end was already reflected into its last frames).
    pub fn accept_waveform(&mut self, samples: &[f32]) {
        assert!(
            !self.finished,
            "OnlineFbank::accept_waveform called after input_finished"
        );
        for piece in samples.chunks(MAX_PIECE) {
            self.samples.extend_from_slice(piece);
            self.num_samples += piece.len() as u64;
            self.compute_frames();
        }
    }

    /// Marks the end of input and computes the remaining frames, reflecting at the end of the
    /// signal. Further calls are no-ops.
    pub fn input_finished(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.compute_frames();
    }

    /// Whether [`input_finished`](Self::input_finished) has been called (then
    /// [`num_frames_ready`](Self::num_frames_ready) is final).
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Absolute number of frames computed so far, including discarded ones.
    pub fn num_frames_ready(&self) -> usize {
        self.frames.end()
    }

    /// Absolute index of the oldest frame still stored.
    pub fn first_available_frame(&self) -> usize {
        self.frames.first()
    }

    /// Frame `index` (absolute). Panics if it was discarded or is not ready yet.
    pub fn frame(&self, index: usize) -> &[f32] {
        self.frames.rows(index, 1)
    }

    /// Frames `start..start + n` as one row-major slice of `n * dim()` floats. Panics if any of
    /// them was discarded or is not ready yet.
    pub fn frames(&self, start: usize, n: usize) -> &[f32] {
        self.frames.rows(start, n)
    }

    /// Copies frames `start..start + n` into `out`, which must hold exactly `n * dim()` floats
    /// (row-major). Panics if any of them was discarded or is not ready yet.
    pub fn copy_frames(&self, start: usize, n: usize, out: &mut [f32]) {
        assert_eq!(out.len(), n * self.dim(), "copy_frames: output buffer size");
        out.copy_from_slice(self.frames.rows(start, n));
    }

    /// Frees the frames before absolute index `index`; later indices stay valid. Indices past
    /// [`num_frames_ready`](Self::num_frames_ready) are clamped to it.
    pub fn discard_frames_before(&mut self, index: usize) {
        self.frames.discard_before(index);
    }

    /// Starts a new stream (frame and sample numbering restart at 0), keeping the FFT plan,
    /// tables and buffers.
    pub fn reset(&mut self) {
        self.samples.clear();
        self.samples_start = 0;
        self.num_samples = 0;
        self.finished = false;
        self.frames.clear();
    }

    /// Computes all frames that are ready, then drops the samples no future frame needs.
    fn compute_frames(&mut self) {
        let target = self.geometry.num_frames(self.num_samples, self.finished);
        while self.frames.end() < target {
            let index = self.frames.end();
            let out = self.frames.push();
            self.computer.compute(
                &self.samples,
                self.samples_start,
                self.num_samples,
                index,
                out,
            );
        }
        if self.finished {
            self.samples_start = self.num_samples;
            self.samples.clear();
            return;
        }
        // The next frame starts at `first_sample(target)`; every sample before it is done with
        // (for the first frame, samples reflected from before 0 come from at or after 0).
        let keep_from = self.geometry.first_sample(target).max(0) as u64;
        if keep_from > self.samples_start {
            let drop = ((keep_from - self.samples_start) as usize).min(self.samples.len());
            self.samples.drain(..drop);
            self.samples_start += drop as u64;
        }
    }
}

impl fmt::Debug for OnlineFbank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnlineFbank")
            .field("geometry", &self.geometry)
            .field("num_samples", &self.num_samples)
            .field("retained_samples", &self.samples.len())
            .field("frames", &(self.frames.first()..self.frames.end()))
            .field("finished", &self.finished)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_geometry_is_sherpa() {
        let g = FbankOptions::default().geometry();
        assert_eq!(
            (g.frame_length, g.frame_shift, g.padded_length, g.snip_edges),
            (400, 160, 512, false)
        );
    }

    #[test]
    fn rejects_bad_options() {
        let bad = [
            FbankOptions {
                num_mel_bins: 2,
                ..Default::default()
            },
            FbankOptions {
                sample_rate: 0.0,
                ..Default::default()
            },
            FbankOptions {
                frame_shift_ms: 0.0,
                ..Default::default()
            },
            FbankOptions {
                preemph_coeff: 1.5,
                ..Default::default()
            },
            FbankOptions {
                log_floor: 0.0,
                ..Default::default()
            },
            FbankOptions {
                high_freq: 9000.0,
                ..Default::default()
            },
        ];
        for opts in bad {
            assert!(OnlineFbank::try_new(opts.clone()).is_err(), "{opts:?}");
        }
    }

    #[test]
    fn frame_counts_follow_kaldi() {
        let mut fb = OnlineFbank::new(FbankOptions::default());
        fb.accept_waveform(&[0.1; 279]);
        assert_eq!(fb.num_frames_ready(), 0);
        fb.accept_waveform(&[0.1]);
        assert_eq!(fb.num_frames_ready(), 1);
        fb.accept_waveform(&[0.1; 160]);
        assert_eq!(fb.num_frames_ready(), 2);
        fb.input_finished();
        // 440 samples -> round(440 / 160) = 3 frames.
        assert_eq!(fb.num_frames_ready(), 3);
        assert!(fb.is_finished());

        fb.reset();
        assert_eq!(fb.num_frames_ready(), 0);
        fb.accept_waveform(&[0.1; 79]);
        fb.input_finished();
        assert_eq!(fb.num_frames_ready(), 0);
        fb.reset();
        fb.input_finished();
        assert_eq!(fb.num_frames_ready(), 0);
    }

    #[test]
    fn retained_samples_stay_bounded() {
        let mut fb = OnlineFbank::new(FbankOptions::default());
        let chunk: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        for _ in 0..200 {
            fb.accept_waveform(&chunk);
            let ready = fb.num_frames_ready();
            fb.discard_frames_before(ready.saturating_sub(2));
            assert!(fb.samples.len() < 400 + chunk.len(), "{}", fb.samples.len());
        }
        assert_eq!(
            fb.num_frames_ready(),
            fb.geometry().num_frames(200_000, false)
        );
        // The last ready frame is still there, the old ones are gone.
        let last = fb.num_frames_ready() - 1;
        assert_eq!(fb.frame(last).len(), 80);
        assert_eq!(fb.first_available_frame(), last - 1);
    }

    #[test]
    #[should_panic(expected = "after input_finished")]
    fn accept_after_finish_panics() {
        let mut fb = OnlineFbank::new(FbankOptions::default());
        fb.input_finished();
        fb.accept_waveform(&[0.0]);
    }
}
