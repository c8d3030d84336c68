//! Acoustic frontend: turns 16 kHz float samples into the 80-dim log-mel filterbank frames the
//! Zipformer encoder was trained on.
//!
//! The features must match what sherpa-onnx feeds its models, i.e. kaldi-native-fbank's
//! `OnlineFbank` with sherpa-onnx's settings (see [`FbankOptions::default`]). Anything else, even a
//! slightly different mel table or frame placement, silently costs accuracy.
//!
//! Layout, following the per-frame data flow (each step a small function so a SIMD variant can
//! later sit beside the scalar one):
//! - [`geometry`]: where frame `i` sits in the sample stream and how many frames are ready;
//! - [`window`]: window extraction (with Kaldi's edge reflection), DC removal, pre-emphasis,
//!   window function;
//! - `fft`: the real FFT, in `f32` and in the exact operation order of kaldi-native-fbank's
//!   compiled kissfft, so the features match sherpa-onnx's bit for bit;
//! - `spectrum`: power spectrum of the FFT output;
//! - [`mel`]: Kaldi mel banks, mel energies and the log floor;
//! - `frames`: bounded storage of computed frames addressed by absolute index;
//! - [`fbank`]: the options and the streaming [`OnlineFbank`] that ties it all together.

pub mod fbank;
mod fft;
mod frames;
pub mod geometry;
pub mod mel;
mod spectrum;
pub mod window;

pub use fbank::*;
pub use geometry::FrameGeometry;
pub use mel::MelBanks;
pub use window::WindowType;
