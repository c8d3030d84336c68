//! `zipvox listen` (the daemon) and `zipvox devices` (capture devices).

use crate::service::config::{ListenConfig, MqttSection, SerialSection};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// TOML configuration file (see board/zipvox.toml for every key and its default).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model directory (overrides [model] dir; env ZIPVOX_MODEL).
    #[arg(long, env = "ZIPVOX_MODEL", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Do not check the model against its SHA256SUMS (overrides [model] verify).
    #[arg(long)]
    pub no_verify: bool,
    /// Cores the encoder may use (overrides [model] threads; default 1).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// ALSA capture device: default, hw:1,0, plughw:CARD=…, or a name from an ALSA config.
    #[arg(long, value_name = "PCM")]
    pub device: Option<String>,
    /// UNIX socket for NDJSON events.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Socket file mode, octal (default 0660).
    #[arg(long, value_name = "MODE")]
    pub socket_mode: Option<String>,
    /// Group owning the socket file.
    #[arg(long, value_name = "GROUP")]
    pub socket_group: Option<String>,
    /// Modelling units (bpe, cjkchar, cjkchar+bpe, ppinyin, fpinyin; default: detected).
    #[arg(long, value_name = "TYPE", value_parser = crate::model::units::TOKENS_TYPES)]
    pub tokens_type: Option<String>,
    /// Serial device for finals (e.g. /dev/ttyUSB0).
    #[arg(long, value_name = "DEV")]
    pub serial: Option<PathBuf>,
    /// Serial baud rate (default 115200).
    #[arg(long, value_name = "N")]
    pub baud: Option<u32>,
    /// Serial line format: text (`<segment> <text>\r\n`) or ndjson.
    #[arg(long, value_name = "FORMAT")]
    pub serial_format: Option<String>,
    /// Also send partial results on the serial line.
    #[arg(long)]
    pub serial_partials: bool,
    /// Publish to an MQTT broker: mqtt://[user@]host[:port] or mqtts://… (overrides [mqtt] broker).
    #[arg(long, value_name = "URL")]
    pub mqtt: Option<String>,
    /// MQTT device id in the topics, [A-Za-z0-9_-] (default: the host name).
    #[arg(long, value_name = "ID")]
    pub device_id: Option<String>,
    /// File whose first line is the MQTT password (for the user in the URL).
    #[arg(long, value_name = "FILE")]
    pub mqtt_password_file: Option<PathBuf>,
    /// CA certificates (PEM) for mqtts:// (default: the system's CA store).
    #[arg(long, value_name = "FILE")]
    pub mqtt_ca_file: Option<PathBuf>,
    /// Also publish partial results over MQTT (QoS 0).
    #[arg(long)]
    pub mqtt_partials: bool,
    /// Publish a Home Assistant MQTT discovery config.
    #[arg(long)]
    pub ha_discovery: bool,
    /// Keep the 16 kHz audio the recognizer consumed in this WAV file.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Do not send partial results.
    #[arg(long)]
    pub no_partials: bool,
    /// Search method: greedy-search (default) or modified-beam-search.
    #[arg(long, value_name = "METHOD")]
    pub decoding: Option<String>,
    /// Active paths of modified beam search (default 4, at most 64).
    #[arg(long, value_name = "N", value_parser = super::parse_beam)]
    pub beam: Option<usize>,
    /// Hotwords file for modified beam search (phrases, optional :SCORE).
    #[arg(long, value_name = "FILE")]
    pub hotwords: Option<PathBuf>,
    /// Default hotword bonus (1.5; 0..=20).
    #[arg(long, value_name = "SCORE", value_parser = super::parse_context_score)]
    pub hotwords_score: Option<f32>,
    /// Keyword spotting instead of transcription: keywords file (the model's tokens or plain
    /// text, with optional :boost #threshold @display).
    #[arg(long, value_name = "FILE")]
    pub keywords: Option<PathBuf>,
    /// Endpoint rule 1: trailing silence (s) that ends a segment even without speech.
    #[arg(long, value_name = "S")]
    pub rule1_min_trailing_silence: Option<f32>,
    /// Endpoint rule 2: trailing silence (s) after speech that ends a segment.
    #[arg(long, value_name = "S")]
    pub rule2_min_trailing_silence: Option<f32>,
    /// Endpoint rule 3: maximum segment length (s).
    #[arg(long, value_name = "S")]
    pub rule3_min_utterance_length: Option<f32>,
}

impl ListenArgs {
    /// Defaults, then the config file, then flags.
    pub fn resolve(&self) -> Result<ListenConfig> {
        let mut c = match &self.config {
            Some(p) => ListenConfig::load(p)?,
            None => ListenConfig::default(),
        };
        if let Some(m) = &self.model {
            c.model.dir = Some(m.clone());
        }
        if let Some(t) = self.threads {
            c.model.threads = t;
        }
        if let Some(t) = &self.tokens_type {
            c.model.tokens_type = Some(t.clone());
        }
        if self.no_verify {
            c.model.verify = false;
        }
        if let Some(d) = &self.device {
            c.audio.device = d.clone();
        }
        if let Some(s) = &self.socket {
            c.socket.path = Some(s.clone());
        }
        if let Some(m) = &self.socket_mode {
            c.socket.mode = m.clone();
        }
        if let Some(g) = &self.socket_group {
            c.socket.group = Some(g.clone());
        }
        if let Some(dev) = &self.serial {
            let s = c.serial.get_or_insert_with(SerialSection::default);
            s.device = dev.clone();
        }
        if let Some(s) = c.serial.as_mut() {
            if let Some(b) = self.baud {
                s.baud = b;
            }
            if let Some(f) = &self.serial_format {
                s.format = f.clone();
            }
            if self.serial_partials {
                s.partials = true;
            }
        }
        if let Some(url) = &self.mqtt {
            c.mqtt.get_or_insert_with(MqttSection::default).broker = url.clone();
        }
        let mqtt_flag_without_broker = self.device_id.is_some()
            || self.mqtt_password_file.is_some()
            || self.mqtt_ca_file.is_some()
            || self.mqtt_partials
            || self.ha_discovery;
        match c.mqtt.as_mut() {
            Some(m) => {
                if let Some(id) = &self.device_id {
                    m.device_id = Some(id.clone());
                }
                if let Some(p) = &self.mqtt_password_file {
                    m.password_file = Some(p.clone());
                }
                if let Some(p) = &self.mqtt_ca_file {
                    m.ca_file = Some(p.clone());
                }
                m.partials |= self.mqtt_partials;
                m.ha_discovery |= self.ha_discovery;
            }
            None if mqtt_flag_without_broker => {
                anyhow::bail!("--device-id, --mqtt-password-file, --mqtt-ca-file, --mqtt-partials and --ha-discovery need --mqtt URL (or [mqtt] broker)")
            }
            None => {}
        }
        if let Some(r) = &self.record {
            c.recognizer.record = Some(r.clone());
        }
        if self.no_partials {
            c.recognizer.partials = false;
        }
        if let Some(d) = &self.decoding {
            c.recognizer.decoding = d.clone();
        }
        if let Some(b) = self.beam {
            c.recognizer.beam = b;
        }
        if let Some(h) = &self.hotwords {
            c.recognizer.hotwords = Some(h.clone());
        }
        if let Some(h) = self.hotwords_score {
            c.recognizer.hotwords_score = h;
        }
        if let Some(k) = &self.keywords {
            c.recognizer.keywords = Some(k.clone());
        }
        if let Some(v) = self.rule1_min_trailing_silence {
            c.endpoint.rule1.min_trailing_silence = v;
        }
        if let Some(v) = self.rule2_min_trailing_silence {
            c.endpoint.rule2.min_trailing_silence = v;
        }
        if let Some(v) = self.rule3_min_utterance_length {
            c.endpoint.rule3.min_utterance_length = v;
        }
        Ok(c)
    }
}

pub fn run(args: &ListenArgs) -> Result<i32> {
    let config = args.resolve()?;
    crate::service::daemon::run(config)
}

pub fn devices() -> Result<i32> {
    let devices = crate::audio::alsa_source::list_capture_devices()?;
    if devices.is_empty() {
        println!("no capture devices found (is the user in group 'audio'? is a microphone plugged in?)");
    }
    for d in devices {
        println!("{}\t{}", d.name, d.description.replace('\n', " "));
    }
    Ok(0)
}
