//! `zipvox wyoming`: a Wyoming protocol server (speech-to-text and wake words) for Home
//! Assistant's voice pipeline and Wyoming satellites.
//!
//! The pipeline stays the one of `zipvox listen` (see DESIGN.md, "Network front doors"): a
//! connection is a *source* (PCM arrives in `audio-chunk` events instead of from ALSA, is
//! converted to 16 kHz mono by `audio::pcm`'s converter and `audio::resample`) paired with its
//! own reply *sink* (`transcript-*`, `detection` events on the same connection). The model is
//! loaded once and shared (`Arc<Transducer>`); each stream owns a
//! [`Recognizer`](crate::recognizer::Recognizer) or a
//! [`KeywordSpotter`](crate::search::KeywordSpotter).
//!
//! - [`codec`]: the event framing, bounded (header line, `data_length`, `payload_length`).
//! - [`info`]: the `info` answer to `describe`.
//! - [`session`]: one connection: the protocol state machine, audio conversion, transcript
//!   deltas, detections.
//! - [`server`]: the listener (TCP or UNIX), the connection and stream caps, the background
//!   model load, systemd readiness, the idle timeout.
//! - [`zeroconf`]: the `_wyoming._tcp` mDNS advertisement.
//!
//! **Threads, not async.** A board has 1–4 cores and the work per connection is CPU-bound
//! decoding (one encoder chunk every 320 ms of audio, ~3–30 ms of CPU); the number of streams
//! worth running at once is about the core count (`--max-streams`, default the core count), and
//! Home Assistant opens one short connection per request. A thread per connection is then the
//! simplest design that cannot stall: a stream's decoding never waits behind another's I/O in a
//! shared event loop, blocking reads with a timeout give the idle timeout for free, and the
//! total is bounded (at most `4 × max-streams + 4` connections, each with bounded frames). An
//! async runtime would add a dependency and a second scheduling layer without saving anything
//! at this scale: the decoding would still need its own threads.

pub mod codec;
pub mod info;
pub mod server;
pub mod session;
pub mod zeroconf;

use crate::model::ModelConfig;
use crate::search::{EndpointConfig, KeywordConfig};
use std::path::PathBuf;
use std::time::Duration;

pub use server::run;

/// Everything `zipvox wyoming` runs with (flags over the `[wyoming]` config section).
#[derive(Debug, Clone)]
pub struct WyomingConfig {
    /// `tcp://HOST:PORT` or `unix:///path/to.sock`.
    pub uri: String,
    pub model: ModelConfig,
    pub threads: usize,
    /// `greedy-search` or `modified-beam-search`.
    pub decoding: String,
    pub beam: usize,
    pub hotwords: Option<PathBuf>,
    pub hotwords_score: f32,
    /// Wake words: a keywords file for the keyword spotter.
    pub keywords: Option<PathBuf>,
    pub keyword_config: KeywordConfig,
    /// ISO 639-1 language of the model, reported in `info` and `transcript`.
    pub language: String,
    /// Streams (transcriptions and wake-word detections) decoded at once.
    pub max_streams: usize,
    /// `Some(instance name)`: advertise over mDNS.
    pub zeroconf: Option<String>,
    /// Send the final transcript at zipvox's own endpoint.
    pub endpointing: bool,
    pub endpoint: EndpointConfig,
    /// A connection that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    pub limits: codec::Limits,
}

impl WyomingConfig {
    /// Connections accepted at once (streams plus clients that only ask `describe` or sit idle
    /// between requests); more are answered `error{code:"busy"}` and closed.
    pub fn max_connections(&self) -> usize {
        4 * self.max_streams + 4
    }
}

/// The default `--max-streams`: the cores this process may run on.
pub fn default_max_streams() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The default mDNS instance name: `zipvox-<hostname>`.
pub fn default_instance_name() -> String {
    // The kernel's hostname (what gethostname(2) returns).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim().split('.').next().filter(|h| !h.is_empty()).unwrap_or("host").to_string();
    format!("zipvox-{host}")
}

/// How long a stream waits for the model at `audio-start` while it loads.
pub const MODEL_WAIT: Duration = Duration::from_secs(60);
