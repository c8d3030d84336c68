//! The event protocol: one JSON object per line (NDJSON), as documented in README.

use serde::Serialize;

/// One message to clients. Serialized with a `type` tag:
/// `{"type":"partial","segment":3,"text":"HELLO"}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// First line every socket client receives.
    Hello { version: String, model: String, model_type: String, sample_rate: u32, decoding: String },
    /// The current segment's text changed.
    Partial { segment: usize, text: String },
    /// A segment ended (endpoint, or shutdown): its final text and token detail.
    Final {
        segment: usize,
        text: String,
        /// Seconds since the daemon started listening.
        start: f32,
        end: f32,
        tokens: Vec<String>,
        timestamps: Vec<f32>,
    },
    /// A keyword was spotted (keyword-spotting mode).
    Keyword { keyword: String, start: f32, end: f32 },
    /// Reply to a `{"cmd":"stats"}` request.
    Stats(serde_json::Value),
    /// Something went wrong (bad request, or a problem the daemon reports).
    Error { message: String },
    /// The daemon is stopping or dropping this client.
    Bye { reason: String },
}

impl Event {
    /// The NDJSON line (with trailing newline).
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| "{\"type\":\"error\",\"message\":\"unserializable event\"}".into());
        s.push('\n');
        s
    }

    /// Finals, keywords, errors and byes must not be silently dropped; partials may be.
    pub fn is_droppable(&self) -> bool {
        matches!(self, Event::Partial { .. } | Event::Stats(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_type_tag() {
        let e = Event::Partial { segment: 2, text: "HI".into() };
        assert_eq!(e.to_line(), "{\"type\":\"partial\",\"segment\":2,\"text\":\"HI\"}\n");
        let f = Event::Final { segment: 0, text: "A".into(), start: 0.5, end: 1.0, tokens: vec![" A".into()], timestamps: vec![0.6] };
        let v: serde_json::Value = serde_json::from_str(&f.to_line()).unwrap();
        assert_eq!(v["type"], "final");
        assert_eq!(v["tokens"][0], " A");
        let s = Event::Stats(serde_json::json!({"uptime_s": 1.5}));
        let v: serde_json::Value = serde_json::from_str(&s.to_line()).unwrap();
        assert_eq!(v["type"], "stats");
        assert_eq!(v["uptime_s"], 1.5);
    }
}
