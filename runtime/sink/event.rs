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
    /// Reply to a `{"cmd":"ping"}` request: `{"type":"pong"}`.
    Pong,
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

/// A request a socket client may send: one JSON object per line, `{"cmd":"stats"}` or
/// `{"cmd":"ping"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Answered with [`Event::Stats`].
    Stats,
    /// Answered with [`Event::Pong`].
    Ping,
}

impl Request {
    /// Parses one request line (without or with its trailing `\n` / `\r\n`).
    /// `Ok(None)` for a blank line (ignored); `Err(message)` for anything that is not a known
    /// request: the message is meant for an [`Event::Error`] reply. Never panics on any input.
    pub fn parse(line: &[u8]) -> Result<Option<Request>, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(None);
        }
        let text = std::str::from_utf8(line).map_err(|_| "request is not valid UTF-8".to_string())?;
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!("request is not JSON ({e}); send one object per line, e.g. {{\"cmd\":\"stats\"}}")
        })?;
        match value.get("cmd") {
            Some(serde_json::Value::String(cmd)) => match cmd.as_str() {
                "stats" => Ok(Some(Request::Stats)),
                "ping" => Ok(Some(Request::Ping)),
                other => Err(format!("unknown command {other:?} (known: stats, ping)")),
            },
            _ => Err("expected an object with a \"cmd\" string, e.g. {\"cmd\":\"stats\"}".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests() {
        assert_eq!(Request::parse(b"{\"cmd\":\"stats\"}\n"), Ok(Some(Request::Stats)));
        assert_eq!(Request::parse(b" {\"cmd\": \"ping\"} \r\n"), Ok(Some(Request::Ping)));
        assert_eq!(Request::parse(b"  \r\n"), Ok(None));
        assert!(Request::parse(b"{\"cmd\":\"reboot\"}").unwrap_err().contains("unknown command"));
        assert!(Request::parse(b"hello").unwrap_err().contains("not JSON"));
        assert!(Request::parse(b"[1,2]").unwrap_err().contains("\"cmd\""));
        assert!(Request::parse(b"{\"cmd\":\"\xff\"}").unwrap_err().contains("UTF-8"));
        assert_eq!(Event::Pong.to_line(), "{\"type\":\"pong\"}\n");
    }

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
