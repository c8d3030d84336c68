//! `zipvox listen`: the daemon's main loop.
//!
//! Threads: the capture thread (ALSA → ring, `audio::alsa_source`), the socket sink's I/O thread,
//! the serial sink's writer and the MQTT sink's client (`sink`), and this one, the recognizer: it pops 16 kHz samples
//! from the ring, runs the stream (`recognizer`), applies the endpoint rules, and publishes
//! partial/final events. It also owns systemd readiness (READY=1 once the model is loaded and
//! the device is open), the watchdog (pinged only while audio flows through the recognizer) and
//! shutdown (SIGTERM/SIGINT: the current segment is flushed as a final, clients get `bye`,
//! exit 0).

use super::config::ListenConfig;
use super::notify::Notifier;
use super::signals;
use super::stats::ServiceStats;
use crate::audio::alsa_source::{spawn_capture, CaptureConfig};
use crate::audio::ring::ring;
use crate::model::Transducer;
use crate::recognizer::{Recognizer, Transcript};
use crate::search::context_graph::load_hotwords;
use crate::search::keyword::{load_keywords, KeywordConfig, KeywordSpotter};
use crate::search::{DecodingConfig, DecodingMethod};
use crate::sink::mqtt::MqttSink;
use crate::sink::serial::{SerialConfig, SerialFormat, SerialSink};
use crate::sink::socket::{SocketConfig, SocketSink};
use crate::sink::Event;
use anyhow::{Context, Result};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Samples handed to the recognizer at most per step (0.1 s).
const STEP_SAMPLES: usize = 1600;

/// Everything events go to.
struct Sinks {
    socket: Option<SocketSink>,
    serial: Option<SerialSink>,
    mqtt: Option<MqttSink>,
    stats: Arc<ServiceStats>,
}

impl Sinks {
    fn publish(&self, event: Event) {
        match &event {
            Event::Partial { .. } => {
                self.stats.partials.fetch_add(1, Relaxed);
            }
            Event::Final { segment, text, .. } => {
                self.stats.finals.fetch_add(1, Relaxed);
                log::info!("final {segment}: {text}");
            }
            Event::Keyword { keyword, start, .. } => log::info!("keyword at {start:.2}s: {keyword}"),
            _ => {}
        }
        if let Some(s) = &self.socket {
            s.publish(&event);
        }
        if let Some(s) = &self.serial {
            s.publish(&event);
        }
        if let Some(m) = &self.mqtt {
            m.publish(&event);
        }
    }

    fn shutdown(&self, reason: &str) {
        if let Some(s) = &self.socket {
            s.shutdown(reason);
        }
        if let Some(s) = &self.serial {
            s.shutdown();
        }
        if let Some(m) = &self.mqtt {
            m.shutdown();
        }
    }
}

/// What the recognizer thread runs: transcription with endpointing, or keyword spotting.
enum Engine {
    Transcribe(Recognizer),
    Spot(KeywordSpotter),
}

/// The model's language as far as its tokens tell: `zh` for CJK characters or pinyin units,
/// `en` for plain ASCII pieces, `""` when unsure (set `[mqtt] language`).
fn guess_language(tokens: &crate::model::tokens::TokenTable) -> &'static str {
    let symbols = || (0..tokens.len()).filter_map(|i| tokens.symbol(i));
    if symbols().any(|s| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || "āáǎàōóǒòēéěèīíǐìūúǔùǖǘǚǜ".contains(c))) {
        "zh"
    } else if symbols().all(|s| s.chars().all(|c| c.is_ascii() || c == '\u{2581}')) {
        "en"
    } else {
        ""
    }
}

fn final_event(t: Transcript) -> Event {
    Event::Final { segment: t.segment, text: t.text, start: t.start, end: t.end, tokens: t.tokens, timestamps: t.timestamps }
}

/// A WAV file of the samples the recognizer consumed (32-bit float: exact for any source).
struct Recording(hound::WavWriter<std::io::BufWriter<std::fs::File>>);

impl Recording {
    fn create(path: &std::path::Path) -> Result<Self> {
        let spec = hound::WavSpec { channels: 1, sample_rate: 16000, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
        let w = hound::WavWriter::create(path, spec).with_context(|| format!("cannot create recording {}", path.display()))?;
        Ok(Recording(w))
    }

    fn write(&mut self, samples: &[f32]) {
        for &s in samples {
            if let Err(e) = self.0.write_sample(s) {
                log::warn!("recording: {e}");
                return;
            }
        }
    }

    fn finish(self) {
        if let Err(e) = self.0.finalize() {
            log::warn!("recording: {e}");
        }
    }
}

pub fn run(config: ListenConfig) -> Result<i32> {
    config.validate()?;
    signals::install()?;
    let notifier = Notifier::from_env();
    let stats = Arc::new(ServiceStats::default());

    // 1. The model: any problem here exits (status 2) before READY.
    let model_dir = config.model.dir.clone().expect("validated");
    crate::kernels::threads::set_threads(config.model.threads)?;
    let model = Arc::new(Transducer::load(&config.model.model_config(model_dir.clone())?)?);
    log::info!("model {} loaded in {:.2?} ({})", model_dir.display(), model.load_time, model.encoder.meta.describe());
    let method = DecodingMethod::from_name(&config.recognizer.decoding, config.recognizer.beam)?;
    let hotwords = match &config.recognizer.hotwords {
        Some(path) => Some(Arc::new(load_hotwords(path, &model, config.recognizer.hotwords_score)?)),
        None => None,
    };
    let decoding = DecodingConfig { method, hotwords };
    // Keyword-spotting mode replaces transcription.
    let keywords = match &config.recognizer.keywords {
        Some(path) => Some(Arc::new(load_keywords(path, &model, &KeywordConfig::default())?)),
        None => None,
    };

    // 2. Sinks: a socket that cannot be bound (directory missing or read-only, another daemon
    //    on it) is fatal before READY; a serial device that is absent is retried in the sink.
    let hello = Event::Hello {
        version: env!("CARGO_PKG_VERSION").into(),
        model: model_dir.display().to_string(),
        model_type: model.encoder.meta.model_type().into(),
        sample_rate: 16000,
        decoding: if keywords.is_some() { "keyword-spotting".into() } else { decoding.method.name().into() },
    };
    let socket = match &config.socket.path {
        Some(path) => Some(SocketSink::bind(
            SocketConfig {
                path: path.clone(),
                mode: config.socket_mode(),
                group: config.socket.group.clone(),
                max_clients: config.socket.max_clients,
                ..Default::default()
            },
            hello,
            stats.clone(),
        )?),
        None => None,
    };
    let serial = match &config.serial {
        Some(s) => Some(SerialSink::open(SerialConfig {
            device: s.device.clone(),
            baud: s.baud,
            format: if s.format == "ndjson" { SerialFormat::Ndjson } else { SerialFormat::Text },
            partials: s.partials,
            ..Default::default()
        })?),
        None => None,
    };
    // An unreachable broker is retried in the sink; a bad URL or password file failed in validate().
    let mqtt = match &config.mqtt {
        Some(m) => {
            let mut cfg = m.resolve()?;
            cfg.model = model_dir.display().to_string();
            if cfg.language.is_empty() {
                cfg.language = guess_language(&model.tokens).into();
            }
            Some(MqttSink::start(cfg, stats.clone())?)
        }
        None => None,
    };
    let sinks = Sinks { socket, serial, mqtt, stats: stats.clone() };
    let mut recording = config.recognizer.record.as_deref().map(Recording::create).transpose()?;

    // 3. Capture: the thread keeps retrying a missing device; READY waits for the first open.
    let capacity = (config.audio.ring_seconds * 16000.0) as usize;
    let (producer, mut consumer) = ring(capacity);
    let stop_capture = Arc::new(AtomicBool::new(false));
    let capture_cfg = CaptureConfig {
        device: config.audio.device.clone(),
        rate: config.audio.rate,
        channels: config.audio.channels,
        period_ms: config.audio.period_ms,
        buffer_ms: config.audio.buffer_ms,
    };
    let capture = spawn_capture(capture_cfg, producer, stats.clone(), stop_capture.clone());
    let mut ready = false;

    // 4. Recognize (or spot keywords).
    let mut engine = match &keywords {
        Some(k) => Engine::Spot(KeywordSpotter::new(model.clone(), k.clone(), &KeywordConfig::default())?),
        None => Engine::Transcribe(Recognizer::with_decoding(model.clone(), &decoding)?),
    };
    let mut buf = vec![0.0f32; STEP_SAMPLES];
    let mut last_partial = String::new();
    let mut last_audio: Option<Instant> = None;
    let mut last_ping = Instant::now();
    let mut overflow_report = (Instant::now(), 0u64);
    while !signals::stop_requested() {
        if !ready && capture.is_open() {
            ready = true;
            notifier.notify("READY=1");
            log::info!("ready: capturing from '{}'", config.audio.device);
        }
        consumer.wait_for(STEP_SAMPLES, Duration::from_millis(100));
        let n = consumer.pop_slice(&mut buf);
        if n > 0 {
            let samples = &buf[..n];
            if let Some(r) = recording.as_mut() {
                r.write(samples);
            }
            let t0 = Instant::now();
            match &mut engine {
                Engine::Transcribe(rec) => {
                    rec.accept_waveform(samples)?;
                    let current = rec.result();
                    if config.recognizer.partials && !current.text.is_empty() && current.text != last_partial {
                        last_partial = current.text.clone();
                        sinks.publish(Event::Partial { segment: current.segment, text: current.text });
                    }
                    if rec.is_endpoint(&config.endpoint) {
                        let done = rec.finish_segment();
                        last_partial.clear();
                        if !done.text.is_empty() {
                            sinks.publish(final_event(done));
                        }
                    }
                }
                Engine::Spot(spotter) => {
                    for d in spotter.accept_waveform(samples)? {
                        sinks.publish(Event::Keyword { keyword: d.keyword, start: d.start, end: d.end });
                    }
                }
            }
            stats.decode_ns.fetch_add(t0.elapsed().as_nanos() as u64, Relaxed);
            stats.samples_decoded.fetch_add(n as u64, Relaxed);
            last_audio = Some(Instant::now());
        }
        // Ring overflow (the recognizer fell behind the device): logged at most every 10 s.
        if overflow_report.0.elapsed() >= Duration::from_secs(10) || overflow_report.1 == 0 {
            let dropped = stats.dropped_samples.load(Relaxed);
            if dropped > overflow_report.1 {
                log::warn!(
                    "ring overflow: {} samples ({:.1} s of audio) dropped since the last report ({dropped} in all): the recognizer is slower than the capture",
                    dropped - overflow_report.1,
                    (dropped - overflow_report.1) as f64 / 16000.0
                );
                overflow_report = (Instant::now(), dropped);
            }
        }
        if let Some(interval) = notifier.watchdog_interval {
            let flowing = last_audio.is_some_and(|t| t.elapsed() < interval);
            if ready && flowing && last_ping.elapsed() >= interval {
                notifier.notify("WATCHDOG=1");
                last_ping = Instant::now();
            }
        }
    }

    // 5. Shutdown: flush the current segment (tail padding decodes the last words).
    log::info!("stopping");
    notifier.notify("STOPPING=1");
    stop_capture.store(true, Relaxed);
    let n = consumer.pop_slice(&mut buf);
    if let Some(r) = recording.as_mut() {
        r.write(&buf[..n]);
    }
    match &mut engine {
        Engine::Transcribe(rec) => {
            rec.accept_waveform(&buf[..n])?;
            rec.input_finished()?;
            let last = rec.result();
            if !last.text.is_empty() {
                sinks.publish(final_event(last));
            }
        }
        Engine::Spot(spotter) => {
            let mut found = spotter.accept_waveform(&buf[..n])?;
            found.extend(spotter.input_finished()?);
            for d in found {
                sinks.publish(Event::Keyword { keyword: d.keyword, start: d.start, end: d.end });
            }
        }
    }
    sinks.shutdown("shutdown");
    if let Some(r) = recording {
        r.finish();
    }
    // A frozen sound server can block libasound's close: do not let that hang the exit.
    if !capture.join_timeout(Duration::from_secs(2)) {
        log::warn!("capture thread did not stop within 2 s; exiting anyway");
    }
    Ok(0)
}
