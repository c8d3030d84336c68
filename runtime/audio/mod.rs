//! Audio input: everything that turns outside audio into mono 16 kHz `f32` samples for the
//! frontend.
//!
//! - [`wav`]: WAV files (8/16/24/32-bit integer PCM, 32-bit float, any channel count and rate).
//! - [`pcm`]: sample conversions shared by every source (int16 / 32768 exactly like
//!   sherpa-onnx), channel downmix, the [`pcm::MonoConverter`] pipeline, and raw s16le input
//!   (stdin).
//! - [`resample`]: [`resample::StreamResampler`], the one streaming resampler
//!   ([`linear_resample`]'s Kaldi/sherpa-onnx filter, up and down), used by the offline readers,
//!   the live sources and the Wyoming server alike.
//! - [`ring`]: the lock-free SPSC ring of samples between the capture thread and the
//!   recognizer.
//! - [`alsa_source`]: live capture from an ALSA device (negotiation, the capture thread with
//!   recovery and reopening); [`devices`]: listing capture devices.
//!
//! Every offline reader returns an [`Audio`] whose `samples` are mono, at
//! [`MODEL_SAMPLE_RATE`], nominally in [-1, 1]. Errors are one-line `anyhow` messages that name
//! the input, the problem and what to do about it.

pub mod alsa_source;
pub mod devices;
pub mod linear_resample;
pub mod pcm;
pub mod resample;
pub mod ring;
pub mod wav;

pub use pcm::{downmix_interleaved, read_raw_s16le, stream_raw_s16le, Audio, MonoConverter, MODEL_SAMPLE_RATE};
pub use resample::StreamResampler;
pub use wav::{read_wav, read_wav_from, stream_wav, stream_wav_from};
