//! One Wyoming connection: a source of audio (its `audio-*` events) and the sink of its replies.
//!
//! The connection reads events one at a time and answers on the same thread:
//! - `describe` → `info` (also while the model loads).
//! - `transcribe{language?, name?}` makes the following audio a transcription (the default),
//!   `detect{names?}` a wake-word detection. Both stay in force for later streams on the same
//!   connection until the other one is sent.
//! - `audio-start{rate, width, channels}` starts a stream (an `audio-chunk` without it starts
//!   one in the chunk's format); the PCM is converted to 16 kHz mono (`audio::pcm`). A stream
//!   takes one of the server's `--max-streams` slots (none free → `error{code:"busy"}`).
//! - Transcription: `transcript-start` at the start, then a `transcript-chunk` delta whenever
//!   the stable part of the hypothesis grows ([`Recognizer::stable_text`]: text no later
//!   hypothesis can retract, so the deltas always add up to the final text); at `audio-stop`
//!   0.66 s of silence is decoded, then the last delta, `transcript{text, language}` and
//!   `transcript-stop`. With `--endpointing` the same three are sent at zipvox's endpoint and
//!   the rest of the stream is ignored.
//! - Wake: each keyword hit → `detection{name, timestamp}` (ms of audio received), the spotter
//!   resets itself and keeps listening; at `audio-stop`, `not-detected` if nothing was found.
//! - `ping` → `pong`; every other type is ignored.
//!
//! Errors: a frame that breaks the framing (see [`codec`]) gets `error` and the connection is
//! closed; a bad audio format (`bad-audio`), no free slot (`busy`) or a failed stream get an
//! `error` and the rest of that stream is skipped, the connection stays usable.

use super::codec::{self, encode_event, FrameError, NoData};
use super::info::ServiceDescription;
use super::WyomingConfig;
use crate::audio::pcm::le_pcm_to_f32;
use crate::audio::MonoConverter;
use crate::model::Transducer;
use crate::recognizer::Recognizer;
use crate::search::{ContextGraph, DecodingConfig, KeywordSpotter};
use serde::{Deserialize, Serialize};
use std::io::{self, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Most channels accepted in an audio format (more is surely garbage).
const MAX_CHANNELS: u64 = 32;

/// The loaded model and everything built from it, shared by all streams.
pub struct Engine {
    pub model: Arc<Transducer>,
    pub decoding: DecodingConfig,
    pub keywords: Option<Arc<ContextGraph>>,
}

enum LoadState {
    Loading,
    Ready(Arc<Engine>),
    Failed(String),
}

/// The model, loaded in the background while the server already answers `describe`.
pub struct ModelSlot {
    state: Mutex<LoadState>,
    changed: Condvar,
}

impl Default for ModelSlot {
    fn default() -> Self {
        ModelSlot { state: Mutex::new(LoadState::Loading), changed: Condvar::new() }
    }
}

impl ModelSlot {
    pub fn set(&self, result: Result<Engine, String>) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        *s = match result {
            Ok(e) => LoadState::Ready(Arc::new(e)),
            Err(e) => LoadState::Failed(e),
        };
        self.changed.notify_all();
    }

    /// The engine, waiting up to `timeout` while it loads.
    pub fn wait(&self, timeout: Duration) -> Result<Arc<Engine>, String> {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*s {
                LoadState::Ready(e) => return Ok(e.clone()),
                LoadState::Failed(e) => return Err(format!("the model failed to load: {e}")),
                LoadState::Loading => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("the model is still loading after {:.0} s; try again", timeout.as_secs_f32()));
            }
            s = self.changed.wait_timeout(s, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    pub fn is_ready(&self) -> bool {
        matches!(*self.state.lock().unwrap_or_else(|e| e.into_inner()), LoadState::Ready(_))
    }
}

/// What all connections share.
pub struct Shared {
    pub config: WyomingConfig,
    pub description: ServiceDescription,
    pub model: ModelSlot,
    /// Streams decoding now (at most `config.max_streams`).
    pub streams: AtomicUsize,
    /// Connections open now (at most `config.max_connections()`).
    pub connections: AtomicUsize,
}

/// Takes one unit of `counter` if it is below `max`; the guard gives it back.
pub struct Slot {
    shared: Arc<Shared>,
    streams: bool,
}

impl Slot {
    fn try_take(shared: &Arc<Shared>, streams: bool) -> Option<Slot> {
        let (counter, max) = if streams {
            (&shared.streams, shared.config.max_streams)
        } else {
            (&shared.connections, shared.config.max_connections())
        };
        counter.fetch_update(SeqCst, SeqCst, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Slot { shared: shared.clone(), streams })
    }

    pub fn stream(shared: &Arc<Shared>) -> Option<Slot> {
        Self::try_take(shared, true)
    }

    pub fn connection(shared: &Arc<Shared>) -> Option<Slot> {
        Self::try_take(shared, false)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let counter = if self.streams { &self.shared.streams } else { &self.shared.connections };
        counter.fetch_sub(1, SeqCst);
    }
}

// ---- event data ----------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
struct AudioFormat {
    rate: Option<serde_json::Value>,
    width: Option<serde_json::Value>,
    channels: Option<serde_json::Value>,
}

/// A validated stream format.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Format {
    rate: u32,
    width: usize,
    channels: u16,
}

impl AudioFormat {
    fn is_empty(&self) -> bool {
        [&self.rate, &self.width, &self.channels].iter().all(|v| v.as_ref().is_none_or(|v| v.is_null()))
    }

    fn validate(&self) -> Result<Format, String> {
        let get = |name: &str, v: &Option<serde_json::Value>| -> Result<u64, String> {
            match v {
                None | Some(serde_json::Value::Null) => Err(format!("{name} is missing")),
                Some(v) => v.as_u64().ok_or_else(|| format!("{name} must be a positive integer, not {v}")),
            }
        };
        let rate = get("rate", &self.rate)?;
        let width = get("width", &self.width)?;
        let channels = get("channels", &self.channels)?;
        let (lo, hi) = (crate::audio::resample::MIN_SAMPLE_RATE, crate::audio::resample::MAX_SAMPLE_RATE);
        if !(lo as u64..=hi as u64).contains(&rate) {
            return Err(format!("rate {rate} Hz is not supported (zipvox takes {lo}..={hi} Hz)"));
        }
        if !(1..=4).contains(&width) {
            return Err(format!("width {width} is not supported (bytes per sample: 1, 2, 3 or 4)"));
        }
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(format!("channels {channels} is not supported (1..={MAX_CHANNELS})"));
        }
        Ok(Format { rate: rate as u32, width: width as usize, channels: channels as u16 })
    }
}

#[derive(Debug, Default, Deserialize)]
struct DetectData {
    names: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct PingData {
    text: Option<String>,
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
}

#[derive(Serialize)]
struct TranscriptData<'a> {
    text: &'a str,
    language: &'a str,
}

#[derive(Serialize)]
struct Language<'a> {
    language: &'a str,
}

#[derive(Serialize)]
struct DetectionData<'a> {
    name: &'a str,
    timestamp: u64,
    speaker: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorData<'a> {
    text: &'a str,
    code: &'a str,
}

#[derive(Serialize)]
struct PongData<'a> {
    text: Option<&'a str>,
}

// ---- audio in --------------------------------------------------------------------------------

/// Client PCM (any width, rate, channels) → 16 kHz mono, in pieces of any length.
struct PcmInput {
    format: Format,
    /// Bytes of a sample split across two chunks (fewer than `width`).
    carry: Vec<u8>,
    interleaved: Vec<f32>,
    converter: MonoConverter,
    out: Vec<f32>,
    /// Frames received (at the client's rate).
    frames_in: u64,
    bytes_in: u64,
}

impl PcmInput {
    fn new(format: Format) -> Result<Self, String> {
        let converter = MonoConverter::new(format.rate, format.channels).map_err(|e| e.to_string())?;
        Ok(PcmInput {
            format,
            carry: Vec::with_capacity(4),
            interleaved: Vec::new(),
            converter,
            out: Vec::new(),
            frames_in: 0,
            bytes_in: 0,
        })
    }

    /// Converts `bytes`; the 16 kHz samples are in `self.out` until the next call.
    fn push(&mut self, mut bytes: &[u8]) {
        let w = self.format.width;
        self.bytes_in += bytes.len() as u64;
        self.frames_in = self.bytes_in / (w as u64 * self.format.channels as u64);
        self.interleaved.clear();
        self.out.clear();
        if !self.carry.is_empty() {
            let need = (w - self.carry.len()).min(bytes.len());
            self.carry.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if self.carry.len() == w {
                le_pcm_to_f32(&self.carry, w, &mut self.interleaved);
                self.carry.clear();
            }
        }
        let whole = bytes.len() / w * w;
        le_pcm_to_f32(&bytes[..whole], w, &mut self.interleaved);
        self.carry.extend_from_slice(&bytes[whole..]);
        self.converter.push(&self.interleaved, &mut self.out);
    }

    /// Ends the stream: the resampler's tail into `self.out`.
    fn finish(&mut self) {
        self.out.clear();
        self.converter.finish(&mut self.out);
    }

    /// Milliseconds of audio received.
    fn received_ms(&self) -> u64 {
        self.frames_in * 1000 / self.format.rate as u64
    }
}

struct SttStream {
    pcm: PcmInput,
    recognizer: Recognizer,
    /// Text sent as `transcript-chunk` deltas so far.
    sent: String,
    _slot: Slot,
}

struct WakeStream {
    pcm: PcmInput,
    spotter: KeywordSpotter,
    /// Only these names are reported (`detect{names}`); `None`: all.
    names: Option<Vec<String>>,
    reported: usize,
    _slot: Slot,
}

enum Active {
    Idle,
    Stt(Box<SttStream>),
    Wake(Box<WakeStream>),
    /// The stream was refused or failed (already answered with `error`), or its transcript was
    /// sent at an endpoint: its chunks are skipped until `audio-stop`.
    Skipping,
}

#[derive(Clone)]
enum Request {
    Transcribe,
    Detect(Option<Vec<String>>),
}

/// Why a connection ended.
#[derive(Debug)]
pub enum End {
    /// The client closed between events.
    Closed,
    /// No event for the idle timeout.
    Idle,
    /// The client broke the framing (answered with `error`).
    BadFrame(String),
    /// Reading or writing failed (the client went away mid-frame, a write timed out).
    Io(String),
}

/// The reply side of a connection.
struct Replies<W: Write> {
    writer: W,
    language: String,
}

impl<W: Write> Replies<W> {
    fn send(&mut self, kind: &str, data: &impl Serialize) -> io::Result<()> {
        self.writer.write_all(&encode_event(kind, data, &[]))?;
        self.writer.flush()
    }

    fn error(&mut self, code: &str, text: &str) -> io::Result<()> {
        log::info!("wyoming: error to client ({code}): {text}");
        self.send("error", &ErrorData { text, code })
    }

    fn transcript_start(&mut self) -> io::Result<()> {
        let language = self.language.clone();
        self.send("transcript-start", &Language { language: &language })
    }

    /// Sends the part of `text` past what was sent, if `text` extends it.
    fn delta(&mut self, sent: &mut String, text: &str) -> io::Result<()> {
        if text.len() > sent.len() && text.starts_with(sent.as_str()) {
            self.send("transcript-chunk", &Text { text: &text[sent.len()..] })?;
            *sent = text.to_string();
        }
        Ok(())
    }

    /// The last delta, `transcript` and `transcript-stop`.
    fn transcript(&mut self, sent: &mut String, text: &str) -> io::Result<()> {
        if !text.starts_with(sent.as_str()) {
            log::warn!("wyoming: final text '{text}' does not extend the streamed '{sent}'");
        }
        self.delta(sent, text)?;
        log::info!("wyoming: transcript: {text}");
        let language = self.language.clone();
        self.send("transcript", &TranscriptData { text, language: &language })?;
        self.send("transcript-stop", &NoData {})
    }

    fn detection(&mut self, name: &str, timestamp: u64) -> io::Result<()> {
        log::info!("wyoming: wake word '{name}' at {timestamp} ms");
        self.send("detection", &DetectionData { name, timestamp, speaker: None })
    }
}

/// A failure while handling an event: the connection's I/O (ends it) or the stream's decoding
/// (answered with `error`, the connection goes on).
enum Failure {
    Io(io::Error),
    Decode(anyhow::Error),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Decode(e)
    }
}

impl SttStream {
    /// Decodes a chunk and sends what became stable. Returns true when, with endpointing, an
    /// endpoint ended the transcript (already sent).
    fn feed<W: Write>(&mut self, payload: &[u8], out: &mut Replies<W>, cfg: &WyomingConfig) -> Result<bool, Failure> {
        self.pcm.push(payload);
        self.recognizer.accept_waveform(&self.pcm.out)?;
        if cfg.endpointing && self.recognizer.is_endpoint(&cfg.endpoint) {
            let text = self.recognizer.result().text;
            out.transcript(&mut self.sent, &text)?;
            return Ok(true);
        }
        let stable = self.recognizer.stable_text();
        out.delta(&mut self.sent, &stable)?;
        Ok(false)
    }

    /// `audio-stop`: tail padding, the last words, the transcript.
    fn finish<W: Write>(&mut self, out: &mut Replies<W>) -> Result<(), Failure> {
        self.pcm.finish();
        self.recognizer.accept_waveform(&self.pcm.out)?;
        self.recognizer.input_finished()?;
        let text = self.recognizer.result().text;
        out.transcript(&mut self.sent, &text)?;
        Ok(())
    }
}

impl WakeStream {
    fn report<W: Write>(&mut self, found: Vec<crate::search::Detection>, out: &mut Replies<W>) -> io::Result<()> {
        let at = self.pcm.received_ms();
        for d in found {
            if self.names.as_ref().is_none_or(|n| n.contains(&d.keyword)) {
                self.reported += 1;
                out.detection(&d.keyword, at)?;
            }
        }
        Ok(())
    }

    fn feed<W: Write>(&mut self, payload: &[u8], out: &mut Replies<W>) -> Result<(), Failure> {
        self.pcm.push(payload);
        let found = self.spotter.accept_waveform(&self.pcm.out)?;
        self.report(found, out)?;
        Ok(())
    }

    fn finish<W: Write>(&mut self, out: &mut Replies<W>) -> Result<(), Failure> {
        self.pcm.finish();
        let mut found = self.spotter.accept_waveform(&self.pcm.out)?;
        found.extend(self.spotter.input_finished()?);
        self.report(found, out)?;
        if self.reported == 0 {
            out.send("not-detected", &NoData {})?;
        }
        Ok(())
    }
}

/// One connection's protocol state.
pub struct Session<R: Read, W: Write> {
    shared: Arc<Shared>,
    reader: BufReader<R>,
    out: Replies<W>,
    request: Request,
    active: Active,
}

impl<R: Read, W: Write> Session<R, W> {
    pub fn new(shared: Arc<Shared>, reader: R, writer: W) -> Self {
        let language = shared.config.language.clone();
        Session {
            shared,
            reader: BufReader::with_capacity(64 << 10, reader),
            out: Replies { writer, language },
            request: Request::Transcribe,
            active: Active::Idle,
        }
    }

    /// Serves the connection until it ends.
    pub fn run(&mut self) -> End {
        let limits = self.shared.config.limits;
        loop {
            let event = match codec::read_event(&mut self.reader, &limits) {
                Ok(Some(e)) => e,
                Ok(None) => return End::Closed,
                Err(FrameError::Io(e)) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return End::Idle;
                }
                Err(FrameError::Io(e)) => return End::Io(e.to_string()),
                Err(FrameError::Truncated) => return End::Io("connection closed inside an event".into()),
                Err(e) => {
                    let text = e.to_string();
                    let _ = self.out.error("bad-frame", &text);
                    return End::BadFrame(text);
                }
            };
            let result = match self.handle(event) {
                Err(Failure::Decode(e)) => {
                    self.active = Active::Skipping;
                    self.out.error("internal", &format!("decoding failed: {e:#}"))
                }
                Err(Failure::Io(e)) => Err(e),
                Ok(()) => Ok(()),
            };
            if let Err(e) = result {
                return End::Io(e.to_string());
            }
        }
    }

    fn handle(&mut self, event: codec::Event) -> Result<(), Failure> {
        match event.kind.as_str() {
            "describe" => {
                let info = self.shared.description.info();
                self.out.send("info", &info)?;
            }
            "transcribe" => {
                self.active = Active::Idle;
                self.request = Request::Transcribe;
            }
            "detect" => {
                self.active = Active::Idle;
                let names = event.parse_data::<DetectData>().unwrap_or_default().names;
                self.request = Request::Detect(names);
            }
            "audio-start" => {
                let format = event.parse_data::<AudioFormat>().unwrap_or_default();
                self.start(&format)?;
            }
            "audio-chunk" => self.chunk(&event)?,
            "audio-stop" => match std::mem::replace(&mut self.active, Active::Idle) {
                Active::Skipping => {}
                Active::Stt(mut s) => s.finish(&mut self.out)?,
                Active::Wake(mut s) => s.finish(&mut self.out)?,
                // No audio at all: an empty transcript (or nothing detected).
                Active::Idle => match self.request {
                    Request::Transcribe => {
                        self.out.transcript_start()?;
                        self.out.transcript(&mut String::new(), "")?;
                    }
                    Request::Detect(_) => self.out.send("not-detected", &NoData {})?,
                },
            },
            "ping" => {
                let text = event.parse_data::<PingData>().unwrap_or_default().text;
                self.out.send("pong", &PongData { text: text.as_deref() })?;
            }
            other => log::debug!("wyoming: ignoring event type '{other}'"),
        }
        Ok(())
    }

    /// Refuses the stream: `error`, then its chunks are skipped until `audio-stop`.
    fn refuse(&mut self, code: &str, text: &str) -> io::Result<()> {
        self.active = Active::Skipping;
        self.out.error(code, text)
    }

    /// `audio-start`: a new stream (any stream still open is dropped).
    fn start(&mut self, format: &AudioFormat) -> io::Result<()> {
        self.active = Active::Idle;
        let format = match format.validate() {
            Ok(f) => f,
            Err(e) => return self.refuse("bad-audio", &format!("audio-start: {e}")),
        };
        let Some(slot) = Slot::stream(&self.shared) else {
            let max = self.shared.config.max_streams;
            return self.refuse("busy", &format!("all {max} streams of this server are in use; try again later"));
        };
        let engine = match self.shared.model.wait(super::MODEL_WAIT) {
            Ok(e) => e,
            Err(e) => return self.refuse("not-ready", &e),
        };
        let pcm = match PcmInput::new(format) {
            Ok(p) => p,
            Err(e) => return self.refuse("bad-audio", &format!("audio-start: {e}")),
        };
        match self.request.clone() {
            Request::Transcribe => match Recognizer::with_decoding(engine.model.clone(), &engine.decoding) {
                Ok(recognizer) => {
                    self.active = Active::Stt(Box::new(SttStream { pcm, recognizer, sent: String::new(), _slot: slot }));
                    self.out.transcript_start()
                }
                Err(e) => self.refuse("internal", &format!("cannot start a recognizer: {e:#}")),
            },
            Request::Detect(names) => {
                let Some(graph) = engine.keywords.clone() else {
                    return self.refuse("no-wake-words", "this server has no wake words; start it with --keywords FILE");
                };
                match KeywordSpotter::new(engine.model.clone(), graph, &self.shared.config.keyword_config) {
                    Ok(spotter) => {
                        // Names this server does not know are ignored; none known: all.
                        let known = &self.shared.description.wake_words;
                        let names = names
                            .map(|n| n.into_iter().filter(|x| known.contains(x)).collect::<Vec<_>>())
                            .filter(|n| !n.is_empty());
                        self.active = Active::Wake(Box::new(WakeStream { pcm, spotter, names, reported: 0, _slot: slot }));
                        Ok(())
                    }
                    Err(e) => self.refuse("internal", &format!("cannot start the keyword spotter: {e:#}")),
                }
            }
        }
    }

    fn chunk(&mut self, event: &codec::Event) -> Result<(), Failure> {
        let format = event.parse_data::<AudioFormat>().unwrap_or_default();
        if matches!(self.active, Active::Idle) {
            // A chunk without audio-start starts a stream in its own format.
            self.start(&format)?;
        }
        let stream_format = match &self.active {
            Active::Stt(s) => s.pcm.format,
            Active::Wake(s) => s.pcm.format,
            Active::Idle | Active::Skipping => return Ok(()),
        };
        if !format.is_empty() {
            match format.validate() {
                Ok(f) if f == stream_format => {}
                Ok(f) => {
                    let text = format!(
                        "audio-chunk format ({} Hz, width {}, {} channels) differs from the stream's ({} Hz, width {}, {} channels); send a new audio-start",
                        f.rate, f.width, f.channels, stream_format.rate, stream_format.width, stream_format.channels
                    );
                    return Ok(self.refuse("bad-audio", &text)?);
                }
                Err(e) => return Ok(self.refuse("bad-audio", &format!("audio-chunk: {e}"))?),
            }
        }
        match &mut self.active {
            Active::Stt(s) => {
                if s.feed(&event.payload, &mut self.out, &self.shared.config)? {
                    self.active = Active::Skipping;
                }
            }
            Active::Wake(s) => s.feed(&event.payload, &mut self.out)?,
            Active::Idle | Active::Skipping => {}
        }
        Ok(())
    }
}
