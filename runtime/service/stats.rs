//! Counters shared by the daemon's threads (atomics: updated without locks from the capture
//! and recognizer threads, read by the `stats` command).

use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

#[derive(Debug)]
pub struct ServiceStats {
    pub started: Instant,
    /// 16 kHz samples the recognizer consumed.
    pub samples_decoded: AtomicU64,
    /// Wall time the recognizer spent decoding them (ns).
    pub decode_ns: AtomicU64,
    /// Samples captured from the device (after conversion to 16 kHz mono).
    pub samples_captured: AtomicU64,
    /// ALSA overruns / suspends recovered.
    pub overruns: AtomicU64,
    /// Samples dropped because the ring was full.
    pub dropped_samples: AtomicU64,
    /// Times the capture device was (re)opened after a failure.
    pub device_reopens: AtomicU64,
    pub partials: AtomicU64,
    pub finals: AtomicU64,
    /// Socket clients connected now / ever / disconnected for lagging.
    pub clients: AtomicU64,
    pub clients_total: AtomicU64,
    pub clients_dropped: AtomicU64,
    /// MQTT sink: connected now (0/1), finals/keywords waiting for the broker now, dropped
    /// because that queue was full, failed connection attempts.
    pub mqtt_connected: AtomicU64,
    pub mqtt_queued: AtomicU64,
    pub mqtt_dropped: AtomicU64,
    pub mqtt_reconnects: AtomicU64,
}

impl Default for ServiceStats {
    fn default() -> Self {
        ServiceStats {
            started: Instant::now(),
            samples_decoded: AtomicU64::new(0),
            decode_ns: AtomicU64::new(0),
            samples_captured: AtomicU64::new(0),
            overruns: AtomicU64::new(0),
            dropped_samples: AtomicU64::new(0),
            device_reopens: AtomicU64::new(0),
            partials: AtomicU64::new(0),
            finals: AtomicU64::new(0),
            clients: AtomicU64::new(0),
            clients_total: AtomicU64::new(0),
            clients_dropped: AtomicU64::new(0),
            mqtt_connected: AtomicU64::new(0),
            mqtt_queued: AtomicU64::new(0),
            mqtt_dropped: AtomicU64::new(0),
            mqtt_reconnects: AtomicU64::new(0),
        }
    }
}

impl ServiceStats {
    /// The `{"cmd":"stats"}` answer.
    pub fn snapshot(&self) -> serde_json::Value {
        let audio_s = self.samples_decoded.load(Relaxed) as f64 / 16000.0;
        let decode_s = self.decode_ns.load(Relaxed) as f64 / 1e9;
        json!({
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "audio_s": audio_s,
            "rtf": if audio_s > 0.0 { decode_s / audio_s } else { 0.0 },
            "samples_captured": self.samples_captured.load(Relaxed),
            "overruns": self.overruns.load(Relaxed),
            "dropped_samples": self.dropped_samples.load(Relaxed),
            "device_reopens": self.device_reopens.load(Relaxed),
            "partials": self.partials.load(Relaxed),
            "finals": self.finals.load(Relaxed),
            "clients": self.clients.load(Relaxed),
            "clients_total": self.clients_total.load(Relaxed),
            "clients_dropped": self.clients_dropped.load(Relaxed),
            "mqtt_connected": self.mqtt_connected.load(Relaxed),
            "mqtt_queued": self.mqtt_queued.load(Relaxed),
            "mqtt_dropped": self.mqtt_dropped.load(Relaxed),
            "mqtt_reconnects": self.mqtt_reconnects.load(Relaxed),
        })
    }
}
