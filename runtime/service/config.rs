//! `zipvox listen` configuration: a TOML file (`--config`) with documented defaults, and flags
//! that override it. Unknown keys are errors (a typo must not silently fall back to a default).

use crate::search::EndpointConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Longest ALSA period accepted, in milliseconds.
pub const MAX_PERIOD_MS: u32 = 1_000;
/// Longest ALSA buffer accepted, in milliseconds.
pub const MAX_BUFFER_MS: u32 = 10_000;
/// Most capture channels accepted (they are averaged to mono).
pub const MAX_CHANNELS: u16 = 32;
/// Most socket clients `[socket] max_clients` may allow (each has a bounded outbox).
pub const MAX_SOCKET_CLIENTS: usize = 1_024;
/// Largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    pub model: ModelSection,
    pub audio: AudioSection,
    pub recognizer: RecognizerSection,
    pub endpoint: EndpointConfig,
    pub socket: SocketSection,
    pub serial: Option<SerialSection>,
    pub mqtt: Option<MqttSection>,
    /// `zipvox wyoming` (the other sections apply too: [model], [recognizer] decoding, beam
    /// and hotwords, [endpoint]).
    pub wyoming: WyomingSection,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WyomingSection {
    /// `tcp://HOST:PORT` or `unix:///PATH`.
    pub uri: String,
    /// Wake words: a keywords file (as `zipvox spot --keywords`).
    pub keywords: Option<PathBuf>,
    /// ISO 639-1 language of the model, reported to clients.
    pub language: String,
    /// Streams decoded at once; 0 = the number of cores.
    pub max_streams: usize,
    /// Advertise over mDNS as `_wyoming._tcp`.
    pub zeroconf: bool,
    /// mDNS instance name (default `zipvox-<hostname>`).
    pub zeroconf_name: Option<String>,
    /// Send the final transcript at zipvox's endpoint (no external VAD needed).
    pub endpointing: bool,
    /// Seconds without an event after which a connection is closed.
    pub idle_timeout: f32,
}

impl Default for WyomingSection {
    fn default() -> Self {
        WyomingSection {
            uri: "tcp://0.0.0.0:10300".into(),
            keywords: None,
            language: "en".into(),
            max_streams: 0,
            zeroconf: false,
            zeroconf_name: None,
            endpointing: false,
            idle_timeout: 120.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// Model directory (sherpa-onnx layout). Required (here, `--model` or `ZIPVOX_MODEL`).
    pub dir: Option<PathBuf>,
    /// `int8` (default) or `fp32` encoder/joiner.
    pub precision: String,
    /// Cores the encoder may use (1 = one core per stream; see `kernels::threads`).
    pub threads: usize,
    /// Modelling units (`bpe`, `cjkchar`, `cjkchar+bpe`, `ppinyin`, `fpinyin`); unset: detected.
    pub tokens_type: Option<String>,
    /// Check the model files against the directory's `SHA256SUMS` when it has one.
    pub verify: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AudioSection {
    /// ALSA PCM name: `default`, `hw:1,0`, `plughw:CARD=Device,DEV=0`, or one from asound.conf.
    pub device: String,
    /// Preferred capture rate; other rates the device insists on are resampled to 16 kHz.
    pub rate: u32,
    /// Preferred channel count; several channels are averaged to mono.
    pub channels: u16,
    pub period_ms: u32,
    pub buffer_ms: u32,
    /// Capacity of the ring between capture and recognizer, in seconds of 16 kHz audio.
    pub ring_seconds: f32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RecognizerSection {
    /// Send partial results when the text changes.
    pub partials: bool,
    /// Keep the 16 kHz samples the recognizer consumed in this WAV file (32-bit float).
    pub record: Option<PathBuf>,
    /// `greedy` (default) or `modified-beam-search`.
    pub decoding: String,
    /// Active paths for beam search.
    pub beam: usize,
    /// Hotwords file for beam search.
    pub hotwords: Option<PathBuf>,
    pub hotwords_score: f32,
    /// Keyword-spotting mode: keywords file (then no transcripts, keyword events only).
    pub keywords: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SocketSection {
    /// UNIX socket path; empty = no socket sink.
    pub path: Option<PathBuf>,
    /// File mode, octal string (e.g. "0660").
    pub mode: String,
    /// Group owning the socket file (e.g. a group of the programs allowed to read).
    pub group: Option<String>,
    /// Clients connected at once (1..=[`MAX_SOCKET_CLIENTS`]); more are told `bye` and closed.
    pub max_clients: usize,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SerialSection {
    pub device: PathBuf,
    pub baud: u32,
    /// `text` (`<segment> <text>\r\n`) or `ndjson`.
    pub format: String,
    pub partials: bool,
}

/// `[mqtt]`: fleet output to an MQTT broker (see `sink::mqtt` and README "MQTT").
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://[user@]host[:port]` or `mqtts://[user@]host[:port]` (TLS). Required.
    pub broker: String,
    /// `[A-Za-z0-9_-]`; default: the host name (up to its first dot, other characters as `-`).
    pub device_id: Option<String>,
    pub base_topic: String,
    /// The broker password, on the file's first line (read at start, never logged).
    pub password_file: Option<PathBuf>,
    /// PEM CA certificates to trust for `mqtts://`; default: the system's CA store.
    pub ca_file: Option<PathBuf>,
    pub keepalive_s: u64,
    /// Finals/keywords kept while the broker is away; beyond that the oldest are dropped.
    pub queue_size: usize,
    /// Also publish partials (QoS 0, coalesced).
    pub partials: bool,
    pub status_interval_s: f64,
    /// Reconnect back-off: first delay, doubling up to the maximum.
    pub reconnect_min_s: f64,
    pub reconnect_max_s: f64,
    /// Home Assistant MQTT discovery.
    pub ha_discovery: bool,
    pub ha_prefix: String,
    /// Put in the status messages; default: guessed from the model's tokens (`zh`, `en`).
    pub language: Option<String>,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            broker: String::new(),
            device_id: None,
            base_topic: "zipvox".into(),
            password_file: None,
            ca_file: None,
            keepalive_s: 30,
            queue_size: 1000,
            partials: false,
            status_interval_s: 60.0,
            reconnect_min_s: 0.5,
            reconnect_max_s: 30.0,
            ha_discovery: false,
            ha_prefix: "homeassistant".into(),
            language: None,
        }
    }
}

impl MqttSection {
    /// The sink's settings, checked: URL, device id, password file, topics, numbers. `version`,
    /// `model`, `language` are left for the daemon to fill in.
    pub fn resolve(&self) -> Result<crate::sink::mqtt::MqttConfig> {
        use crate::sink::mqtt::{check_device_id, default_device_id, read_password_file, BrokerUrl, MqttConfig};
        use std::time::Duration;
        if self.broker.is_empty() {
            bail!("[mqtt] needs broker = \"mqtt://host\" (or --mqtt URL)");
        }
        let broker = BrokerUrl::parse(&self.broker)?;
        let device_id = self.device_id.clone().unwrap_or_else(default_device_id);
        check_device_id(&device_id)?;
        let password = self.password_file.as_deref().map(read_password_file).transpose()?;
        if password.is_some() && broker.user.is_none() {
            bail!("[mqtt] password_file is set but the broker URL names no user: use mqtt://USER@host");
        }
        if let Some(ca) = &self.ca_file {
            if !broker.tls {
                bail!("[mqtt] ca_file is only used with mqtts:// (the broker URL is mqtt://)");
            }
            std::fs::metadata(ca).with_context(|| format!("cannot read the MQTT CA file {}", ca.display()))?;
        }
        for (key, topic) in [("base_topic", &self.base_topic), ("ha_prefix", &self.ha_prefix)] {
            if topic.is_empty() || topic.contains(['+', '#', '\0']) || topic.starts_with('/') || topic.ends_with('/') {
                bail!("[mqtt] {key} '{topic}' is not a valid topic prefix (no + # or leading/trailing /)");
            }
        }
        if !(5..=3600).contains(&self.keepalive_s) {
            bail!("[mqtt] keepalive_s must be between 5 and 3600, not {}", self.keepalive_s);
        }
        if !(1..=1_000_000).contains(&self.queue_size) {
            bail!("[mqtt] queue_size must be between 1 and 1000000, not {}", self.queue_size);
        }
        let secs = |key: &str, v: f64, lo: f64, hi: f64| -> Result<Duration> {
            if !(lo..=hi).contains(&v) {
                bail!("[mqtt] {key} must be between {lo} and {hi} seconds, not {v}");
            }
            Ok(Duration::from_secs_f64(v))
        };
        let reconnect_min = secs("reconnect_min_s", self.reconnect_min_s, 0.05, 3600.0)?;
        let reconnect_max = secs("reconnect_max_s", self.reconnect_max_s, self.reconnect_min_s, 3600.0)?;
        Ok(MqttConfig {
            broker,
            password,
            ca_file: self.ca_file.clone(),
            device_id,
            base_topic: self.base_topic.clone(),
            keepalive: Duration::from_secs(self.keepalive_s),
            queue_size: self.queue_size,
            partials: self.partials,
            status_interval: secs("status_interval_s", self.status_interval_s, 0.1, 86400.0)?,
            reconnect_min,
            reconnect_max,
            ha_discovery: self.ha_discovery,
            ha_prefix: self.ha_prefix.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: String::new(),
            language: self.language.clone().unwrap_or_default(),
        })
    }
}

impl ModelSection {
    /// What to load for this section, with the model directory `dir` (shared by `listen` and
    /// `wyoming`, so both honour every `[model]` key).
    pub fn model_config(&self, dir: PathBuf) -> Result<crate::model::ModelConfig> {
        Ok(crate::model::ModelConfig {
            dir,
            precision: self.precision.parse().unwrap_or_default(),
            tokens_type: self.tokens_type.as_deref().map(str::parse).transpose()?,
            options: crate::model::LoadOptions { verify: self.verify, ..Default::default() },
            ..Default::default()
        })
    }
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection { dir: None, precision: "int8".into(), threads: 1, tokens_type: None, verify: true }
    }
}

impl Default for AudioSection {
    fn default() -> Self {
        AudioSection { device: "default".into(), rate: 16000, channels: 1, period_ms: 20, buffer_ms: 200, ring_seconds: 10.0 }
    }
}

impl Default for RecognizerSection {
    fn default() -> Self {
        RecognizerSection {
            partials: true,
            record: None,
            decoding: "greedy".into(),
            beam: 4,
            hotwords: None,
            hotwords_score: 1.5,
            keywords: None,
        }
    }
}

impl Default for SocketSection {
    fn default() -> Self {
        SocketSection { path: None, mode: "0660".into(), group: None, max_clients: 64 }
    }
}

impl Default for SerialSection {
    fn default() -> Self {
        SerialSection { device: PathBuf::new(), baud: 115_200, format: "text".into(), partials: false }
    }
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            model: Default::default(),
            audio: Default::default(),
            recognizer: Default::default(),
            endpoint: Default::default(),
            socket: Default::default(),
            serial: None,
            mqtt: None,
            wyoming: Default::default(),
        }
    }
}

impl ListenConfig {
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        toml::from_str(text).map_err(|e| {
            anyhow::anyhow!("{}: invalid configuration: {}", path.display(), e.to_string().replace('\n', " "))
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = crate::textfile::read_text_capped(path, MAX_CONFIG_BYTES, "config")?;
        Self::from_toml(&text, path)
    }

    /// Checks what cannot be checked by types alone: every limit, before any model, device or
    /// socket is opened. Errors name the section and key.
    pub fn validate(&self) -> Result<()> {
        if self.model.dir.is_none() {
            bail!("no model: give --model DIR, set ZIPVOX_MODEL, or [model] dir in the config file");
        }
        if !["int8", "fp32"].contains(&self.model.precision.as_str()) {
            bail!("[model] precision must be int8 or fp32, not '{}'", self.model.precision);
        }
        if !(1..=crate::kernels::threads::MAX_THREADS).contains(&self.model.threads) {
            bail!("[model] threads must be between 1 and {}, not {}", crate::kernels::threads::MAX_THREADS, self.model.threads);
        }
        if let Some(t) = &self.model.tokens_type {
            t.parse::<crate::model::TokensType>().map_err(|e| anyhow::anyhow!("[model] tokens_type: {e}"))?;
        }
        crate::search::check_beam(self.recognizer.beam).map_err(|e| anyhow::anyhow!("[recognizer] {e}"))?;
        crate::search::DecodingMethod::from_name(&self.recognizer.decoding, self.recognizer.beam)
            .map_err(|e| anyhow::anyhow!("[recognizer] decoding: {e}"))?;
        crate::search::check_context_score("[recognizer] hotwords_score", self.recognizer.hotwords_score)?;
        let a = &self.audio;
        let (lo, hi) = (crate::audio::resample::MIN_SAMPLE_RATE, crate::audio::resample::MAX_SAMPLE_RATE);
        if !(lo..=hi).contains(&a.rate) {
            bail!("[audio] rate must be between {lo} and {hi} Hz, not {}", a.rate);
        }
        if !(1..=MAX_CHANNELS).contains(&a.channels) {
            bail!("[audio] channels must be between 1 and {MAX_CHANNELS}, not {}", a.channels);
        }
        if !(1..=MAX_PERIOD_MS).contains(&a.period_ms) {
            bail!("[audio] period_ms must be between 1 and {MAX_PERIOD_MS}, not {}", a.period_ms);
        }
        if !(1..=MAX_BUFFER_MS).contains(&a.buffer_ms) {
            bail!("[audio] buffer_ms must be between 1 and {MAX_BUFFER_MS}, not {}", a.buffer_ms);
        }
        if a.buffer_ms < 2 * a.period_ms {
            bail!(
                "[audio] buffer_ms ({}) must hold at least two periods of period_ms ({}): raise buffer_ms or lower period_ms",
                a.buffer_ms,
                a.period_ms
            );
        }
        self.endpoint.validate()?;
        if !(1..=MAX_SOCKET_CLIENTS).contains(&self.socket.max_clients) {
            bail!("[socket] max_clients must be between 1 and {MAX_SOCKET_CLIENTS}, not {}", self.socket.max_clients);
        }
        if self.recognizer.hotwords.is_some() && self.recognizer.decoding.starts_with("greedy") {
            bail!("[recognizer] hotwords need decoding = \"modified-beam-search\"");
        }
        if self.socket_mode().is_none() {
            bail!("[socket] mode must be an octal file mode such as \"0660\", not '{}'", self.socket.mode);
        }
        if !(0.5..=600.0).contains(&self.audio.ring_seconds) || !self.audio.ring_seconds.is_finite() {
            bail!("[audio] ring_seconds must be between 0.5 and 600");
        }
        if let Some(s) = &self.serial {
            if s.device.as_os_str().is_empty() {
                bail!("[serial] needs a device, e.g. device = \"/dev/ttyUSB0\" (or --serial DEV); remove [serial] for no serial line");
            }
            if !(50..=4_000_000).contains(&s.baud) {
                bail!("[serial] baud must be between 50 and 4000000, not {}", s.baud);
            }
            if !["text", "ndjson"].contains(&s.format.as_str()) {
                bail!("[serial] format must be text or ndjson, not '{}'", s.format);
            }
        }
        if let Some(m) = &self.mqtt {
            m.resolve()?;
        }
        if self.socket.path.is_none() && self.serial.is_none() && self.mqtt.is_none() {
            log::warn!("no socket, serial line or MQTT broker configured: transcripts go to the log only");
        }
        Ok(())
    }

    pub fn socket_mode(&self) -> Option<u32> {
        u32::from_str_radix(self.socket.mode.trim_start_matches("0o"), 8).ok().filter(|m| *m <= 0o777)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_documentation() {
        let c = ListenConfig::from_toml("", Path::new("x.toml")).unwrap();
        assert_eq!(c.audio.device, "default");
        assert_eq!(c.endpoint, EndpointConfig::default());
        assert!(c.recognizer.partials);
        assert_eq!(c.socket_mode(), Some(0o660));
    }

    #[test]
    fn full_file_parses() {
        let text = r#"
[model]
dir = "/var/lib/zipvox/models/m"
precision = "int8"
[audio]
device = "plughw:CARD=Device,DEV=0"
rate = 48000
channels = 2
[recognizer]
partials = false
record = "/tmp/rec.wav"
[endpoint.rule2]
must_contain_nonsilence = true
min_trailing_silence = 0.8
min_utterance_length = 0.0
[socket]
path = "/run/zipvox/zipvox.sock"
mode = "0666"
group = "audio"
[serial]
device = "/dev/ttyUSB0"
baud = 9600
format = "ndjson"
"#;
        let c = ListenConfig::from_toml(text, Path::new("x.toml")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.audio.rate, 48000);
        assert_eq!(c.endpoint.rule2.min_trailing_silence, 0.8);
        assert_eq!(c.endpoint.rule1, EndpointConfig::default().rule1);
        assert_eq!(c.serial.as_ref().unwrap().baud, 9600);
        assert_eq!(c.socket_mode(), Some(0o666));
    }

    fn invalid(text: &str) -> String {
        let text = format!("[model]\ndir = \"/m\"\n{text}");
        let c = ListenConfig::from_toml(&text, Path::new("z.toml")).unwrap();
        format!("{:#}", c.validate().unwrap_err())
    }

    #[test]
    fn limits_are_checked_and_named() {
        for (text, want) in [
            ("[audio]\nrate = 0\n", "[audio] rate"),
            ("[audio]\nrate = 4000000000\n", "[audio] rate"),
            ("[audio]\nchannels = 0\n", "[audio] channels"),
            ("[audio]\nperiod_ms = 0\n", "[audio] period_ms"),
            ("[audio]\nperiod_ms = 500\nbuffer_ms = 200\n", "[audio] buffer_ms"),
            ("[endpoint.rule1]\nmin_trailing_silence = -1\n", "[endpoint.rule1] min_trailing_silence"),
            ("[endpoint.rule1]\nmin_trailing_silence = nan\n", "[endpoint.rule1] min_trailing_silence"),
            ("[endpoint.rule2]\nmin_utterance_length = inf\n", "[endpoint.rule2] min_utterance_length"),
            ("[recognizer]\nhotwords_score = nan\n", "hotwords_score"),
            ("[recognizer]\nbeam = 100000\n", "beam"),
            ("[recognizer]\nbeam = 0\n", "beam"),
            ("[serial]\nbaud = 9600\n", "[serial] needs a device"),
            ("[socket]\nmax_clients = 0\n", "[socket] max_clients"),
        ] {
            let e = invalid(text);
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn partial_tables_take_defaults() {
        let c = ListenConfig::from_toml("[endpoint.rule1]\nmin_trailing_silence = 3.0\n[endpoint.rule2]\nmin_utterance_length = 1.0\n", Path::new("x.toml")).unwrap();
        let d = EndpointConfig::default();
        assert_eq!(c.endpoint.rule1.min_trailing_silence, 3.0);
        assert_eq!(c.endpoint.rule1.must_contain_nonsilence, d.rule1.must_contain_nonsilence);
        assert_eq!(c.endpoint.rule2.must_contain_nonsilence, true);
        assert_eq!(c.endpoint.rule2.min_trailing_silence, d.rule2.min_trailing_silence);
        assert_eq!(c.endpoint.rule3, d.rule3);
        let c = ListenConfig::from_toml("[socket]\nmax_clients = 8\n", Path::new("x.toml")).unwrap();
        assert_eq!(c.socket.max_clients, 8);
        let e = ListenConfig::from_toml("[endpoint.rule1]\nmin_silence = 3.0\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("min_silence"), "{e}");
    }

    #[test]
    fn mqtt_section() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "hunter2\n").unwrap();
        let text = format!(
            "[model]\ndir = \"/m\"\n[mqtt]\nbroker = \"mqtt://zv@broker.lan\"\ndevice_id = \"kitchen\"\npassword_file = \"{}\"\nqueue_size = 5\n",
            pw.display()
        );
        let c = ListenConfig::from_toml(&text, Path::new("x.toml")).unwrap();
        c.validate().unwrap();
        let m = c.mqtt.as_ref().unwrap().resolve().unwrap();
        assert_eq!((m.broker.port, m.device_id.as_str(), m.queue_size), (1883, "kitchen", 5));
        assert_eq!(m.password.as_ref().unwrap().0, "hunter2");
        assert_eq!(MqttSection::default().queue_size, 1000);
        let bad = |extra: &str| {
            let c = ListenConfig::from_toml(&format!("[model]\ndir = \"/m\"\n[mqtt]\n{extra}\n"), Path::new("x.toml")).unwrap();
            c.validate().unwrap_err().to_string()
        };
        assert!(bad("broker = \"mqtt:/h\"").contains("malformed"));
        assert!(bad("broker = \"amqp://h\"").contains("unknown scheme"));
        assert!(bad("broker = \"mqtt://u@h\"\npassword_file = \"/nonexistent/pw\"").contains("/nonexistent/pw"));
        assert!(bad("broker = \"mqtt://h\"\ndevice_id = \"a/b\"").contains("device id"));
        assert!(bad("broker = \"mqtt://h\"\nqueue_size = 0").contains("queue_size"));
        assert!(bad("").contains("broker"));
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        let e = ListenConfig::from_toml("[audio]\ndevise = \"hw:0\"\n", Path::new("z.toml")).unwrap_err();
        assert!(format!("{e}").contains("z.toml") && format!("{e}").contains("devise"), "{e}");
        let c = ListenConfig::from_toml("[socket]\nmode = \"rw\"\n[model]\ndir = \"/m\"\n", Path::new("z.toml")).unwrap();
        assert!(c.validate().is_err());
        let c = ListenConfig::from_toml("", Path::new("z.toml")).unwrap();
        assert!(format!("{}", c.validate().unwrap_err()).contains("--model"));
    }
}
