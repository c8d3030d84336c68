//! The Wyoming event framing (wyoming 1.10.2, `wyoming/event.py`), both directions.
//!
//! An event is one UTF-8 JSON header line `{"type": …, "data": {…}?, "data_length": N?,
//! "payload_length": M?, "version": …?}\n`, then `data_length` bytes of JSON object (merged over
//! the header's `data`), then `payload_length` bytes of binary payload (PCM for audio chunks).
//!
//! Reading is bounded: the header line, `data_length` and `payload_length` each have a limit
//! ([`Limits`]); past it, or on a malformed header, [`read_event`] returns a [`FrameError`] and
//! the caller answers `error` and closes (the stream cannot be resynchronised). Nothing is
//! allocated from a length before it has been checked. `null` and missing fields are accepted
//! wherever the Python package accepts them; blank lines between events are skipped.
//!
//! Writing produces the same bytes as the Python package's `write_event` (its `json.dumps`
//! separators `", "` and `": "`, `ensure_ascii=False`, `version`, `data_length` and
//! `payload_length` in its key order): the unit tests compare against frames it wrote.

use serde::Serialize;
use serde_json::{Map, Value};
use std::io::{self, BufRead, Write};

/// The protocol version written into every event header.
pub const PROTOCOL_VERSION: &str = "1.10.2";

/// Size limits for incoming frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Longest header line, newline included.
    pub header_line: usize,
    pub data_length: usize,
    pub payload_length: usize,
}

impl Default for Limits {
    /// 64 KiB of header, 1 MiB of data, 4 MiB of payload (2 minutes of 16 kHz 16-bit mono in
    /// one chunk; clients send 1024-sample chunks of 2–8 KiB).
    fn default() -> Self {
        Limits { header_line: 64 << 10, data_length: 1 << 20, payload_length: 4 << 20 }
    }
}

/// An event as read from a client.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub kind: String,
    /// The header's `data` with the data block merged over it.
    pub data: Map<String, Value>,
    pub payload: Vec<u8>,
}

impl Event {
    /// Deserializes `data` into a typed request (missing and `null` fields as `Option`s).
    pub fn parse_data<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(Value::Object(self.data.clone()))
    }
}

/// Why a frame could not be read. Every variant but [`FrameError::Io`] means the client sent
/// something that is not a Wyoming frame within the limits.
#[derive(Debug)]
pub enum FrameError {
    HeaderTooLong(usize),
    NotJson(String),
    BadHeader(String),
    DataTooLong(u64, usize),
    PayloadTooLong(u64, usize),
    BadData(String),
    /// The connection ended inside a frame.
    Truncated,
    Io(io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::HeaderTooLong(max) => write!(f, "header line longer than {max} bytes; send one JSON header line per event"),
            FrameError::NotJson(e) => write!(f, "header line is not JSON ({e}); each event starts with a JSON line"),
            FrameError::BadHeader(e) => write!(f, "bad event header: {e}"),
            FrameError::DataTooLong(n, max) => write!(f, "data_length {n} is over the limit of {max} bytes"),
            FrameError::PayloadTooLong(n, max) => {
                write!(f, "payload_length {n} is over the limit of {max} bytes; send audio in smaller chunks")
            }
            FrameError::BadData(e) => write!(f, "event data is not a JSON object: {e}"),
            FrameError::Truncated => write!(f, "connection closed inside an event"),
            FrameError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    }
}

/// Reads one line of at most `max` bytes (newline included) into `buf`, without the newline.
/// Returns false at end of stream before any byte.
fn read_line_limited(r: &mut impl BufRead, max: usize, buf: &mut Vec<u8>) -> Result<bool, FrameError> {
    buf.clear();
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if available.is_empty() {
            return if buf.is_empty() { Ok(false) } else { Err(FrameError::Truncated) };
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if buf.len() + take > max {
            return Err(FrameError::HeaderTooLong(max));
        }
        buf.extend_from_slice(&available[..take]);
        r.consume(take);
        if done {
            buf.pop();
            return Ok(true);
        }
    }
}

/// A non-negative integer length field; `null` or absent is 0.
fn length(header: &Map<String, Value>, key: &str) -> Result<u64, FrameError> {
    match header.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| FrameError::BadHeader(format!("{key} must be a non-negative integer, not {v}"))),
    }
}

/// Reads the next event. `Ok(None)` at a clean end of stream (between events).
pub fn read_event(r: &mut impl BufRead, limits: &Limits) -> Result<Option<Event>, FrameError> {
    let mut line = Vec::new();
    loop {
        if !read_line_limited(r, limits.header_line, &mut line)? {
            return Ok(None);
        }
        if !line.iter().all(|b| b.is_ascii_whitespace()) {
            break;
        }
    }
    let header: Value = serde_json::from_slice(&line).map_err(|e| FrameError::NotJson(e.to_string()))?;
    let Value::Object(mut header) = header else {
        return Err(FrameError::BadHeader("the header is not a JSON object".into()));
    };
    let kind = match header.get("type") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(FrameError::BadHeader("no \"type\" string".into())),
    };
    let data_length = length(&header, "data_length")?;
    if data_length > limits.data_length as u64 {
        return Err(FrameError::DataTooLong(data_length, limits.data_length));
    }
    let payload_length = length(&header, "payload_length")?;
    if payload_length > limits.payload_length as u64 {
        return Err(FrameError::PayloadTooLong(payload_length, limits.payload_length));
    }
    let mut data = match header.remove("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(FrameError::BadHeader("\"data\" must be an object".into())),
    };
    if data_length > 0 {
        let mut bytes = vec![0u8; data_length as usize];
        r.read_exact(&mut bytes)?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(extra)) => data.extend(extra),
            Ok(_) => return Err(FrameError::BadData("not an object".into())),
            Err(e) => return Err(FrameError::BadData(e.to_string())),
        }
    }
    let mut payload = vec![0u8; payload_length as usize];
    r.read_exact(&mut payload)?;
    Ok(Some(Event { kind, data, payload }))
}

/// serde_json formatting with Python's `json.dumps` separators (`", "`, `": "`).
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// JSON text in Python's `json.dumps(..., ensure_ascii=False)` layout.
pub fn to_python_json(value: &impl Serialize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    // Serializing our own plain structs cannot fail.
    value.serialize(&mut ser).expect("event data serializes");
    out
}

#[derive(Serialize)]
struct Header<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_length: Option<usize>,
}

/// Encodes an event as the Python package does: `data` (a struct, serialized in field order)
/// goes into a data block unless it is empty.
pub fn encode_event(kind: &str, data: &impl Serialize, payload: &[u8]) -> Vec<u8> {
    let data = to_python_json(data);
    let data = if data == b"{}" || data == b"null" { Vec::new() } else { data };
    let header = Header {
        kind,
        version: PROTOCOL_VERSION,
        data_length: (!data.is_empty()).then_some(data.len()),
        payload_length: (!payload.is_empty()).then_some(payload.len()),
    };
    let mut out = to_python_json(&header);
    out.push(b'\n');
    out.extend_from_slice(&data);
    out.extend_from_slice(payload);
    out
}

/// An event with no data (`transcript-stop`, `not-detected`).
#[derive(Serialize)]
pub struct NoData {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn read_all(bytes: &[u8]) -> Vec<Event> {
        let mut r = Cursor::new(bytes);
        let mut out = vec![];
        while let Some(e) = read_event(&mut r, &Limits::default()).unwrap() {
            out.push(e);
        }
        out
    }

    fn read_one(bytes: &[u8], limits: &Limits) -> Result<Option<Event>, FrameError> {
        read_event(&mut Cursor::new(bytes), limits)
    }

    // Frames written by the `wyoming` 1.10.2 package's `write_event` (captured with
    // `python3 -c "import io; from wyoming.event import write_event; …"`).
    const PY_AUDIO_CHUNK: &[u8] = b"{\"type\": \"audio-chunk\", \"version\": \"1.10.2\", \"data_length\": 61, \"payload_length\": 4}\n{\"rate\": 16000, \"width\": 2, \"channels\": 1, \"timestamp\": null}\x01\x00\xff\x7f";
    const PY_DESCRIBE: &[u8] = b"{\"type\": \"describe\", \"version\": \"1.10.2\"}\n";
    const PY_TRANSCRIBE: &[u8] = b"{\"type\": \"transcribe\", \"version\": \"1.10.2\", \"data_length\": 18}\n{\"language\": \"en\"}";
    const PY_AUDIO_START: &[u8] = b"{\"type\": \"audio-start\", \"version\": \"1.10.2\", \"data_length\": 58}\n{\"rate\": 16000, \"width\": 2, \"channels\": 1, \"timestamp\": 0}";
    const PY_AUDIO_STOP: &[u8] = b"{\"type\": \"audio-stop\", \"version\": \"1.10.2\", \"data_length\": 19}\n{\"timestamp\": null}";
    const PY_DETECT: &[u8] = b"{\"type\": \"detect\", \"version\": \"1.10.2\", \"data_length\": 15}\n{\"names\": null}";
    const PY_TRANSCRIPT_START: &[u8] = b"{\"type\": \"transcript-start\", \"version\": \"1.10.2\", \"data_length\": 18}\n{\"language\": \"en\"}";
    const PY_TRANSCRIPT_CHUNK: &[u8] = b"{\"type\": \"transcript-chunk\", \"version\": \"1.10.2\", \"data_length\": 18}\n{\"text\": \" WORLD\"}";
    const PY_TRANSCRIPT: &[u8] = b"{\"type\": \"transcript\", \"version\": \"1.10.2\", \"data_length\": 41}\n{\"text\": \"HELLO WORLD\", \"language\": \"en\"}";
    const PY_TRANSCRIPT_STOP: &[u8] = b"{\"type\": \"transcript-stop\", \"version\": \"1.10.2\"}\n";
    const PY_DETECTION: &[u8] = b"{\"type\": \"detection\", \"version\": \"1.10.2\", \"data_length\": 63}\n{\"name\": \"\xe6\x96\x87\xe6\xa3\xae\xe7\x89\xb9\xe5\x8d\xa1\xe7\xb4\xa2\", \"timestamp\": 1234, \"speaker\": null}";
    const PY_NOT_DETECTED: &[u8] = b"{\"type\": \"not-detected\", \"version\": \"1.10.2\"}\n";
    const PY_ERROR: &[u8] = b"{\"type\": \"error\", \"version\": \"1.10.2\", \"data_length\": 36}\n{\"text\": \"too busy\", \"code\": \"busy\"}";

    #[test]
    fn reads_the_packages_client_frames() {
        let stream = [PY_DESCRIBE, PY_TRANSCRIBE, PY_AUDIO_START, PY_AUDIO_CHUNK, PY_AUDIO_STOP, PY_DETECT].concat();
        let events = read_all(&stream);
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["describe", "transcribe", "audio-start", "audio-chunk", "audio-stop", "detect"]);
        assert_eq!(events[1].data["language"], "en");
        assert_eq!(events[3].data["rate"], 16000);
        assert_eq!(events[3].data["timestamp"], Value::Null);
        assert_eq!(events[3].payload, [1, 0, 0xff, 0x7f]);
        assert_eq!(events[5].data["names"], Value::Null);
    }

    #[test]
    fn writes_the_packages_server_frames_byte_for_byte() {
        #[derive(Serialize)]
        struct Lang<'a> {
            language: &'a str,
        }
        #[derive(Serialize)]
        struct Text<'a> {
            text: &'a str,
        }
        #[derive(Serialize)]
        struct Transcript<'a> {
            text: &'a str,
            language: &'a str,
        }
        #[derive(Serialize)]
        struct Detection<'a> {
            name: &'a str,
            timestamp: u64,
            speaker: Option<&'a str>,
        }
        #[derive(Serialize)]
        struct Error<'a> {
            text: &'a str,
            code: &'a str,
        }
        assert_eq!(encode_event("transcript-start", &Lang { language: "en" }, &[]), PY_TRANSCRIPT_START);
        assert_eq!(encode_event("transcript-chunk", &Text { text: " WORLD" }, &[]), PY_TRANSCRIPT_CHUNK);
        assert_eq!(encode_event("transcript", &Transcript { text: "HELLO WORLD", language: "en" }, &[]), PY_TRANSCRIPT);
        assert_eq!(encode_event("transcript-stop", &NoData {}, &[]), PY_TRANSCRIPT_STOP);
        let d = Detection { name: "文森特卡索", timestamp: 1234, speaker: None };
        assert_eq!(encode_event("detection", &d, &[]), PY_DETECTION);
        assert_eq!(encode_event("not-detected", &NoData {}, &[]), PY_NOT_DETECTED);
        assert_eq!(encode_event("error", &Error { text: "too busy", code: "busy" }, &[]), PY_ERROR);
        // And back: what we write, we read.
        let e = read_all(&encode_event("audio-chunk", &Text { text: "x" }, &[9, 8, 7]));
        assert_eq!((e[0].kind.as_str(), e[0].payload.as_slice()), ("audio-chunk", &[9u8, 8, 7][..]));
    }

    #[test]
    fn accepts_data_in_the_header_no_version_and_blank_lines() {
        // Home Assistant's probe; a hand-written client with data inline and a data block
        // that overrides one key.
        let bytes = b"{ \"type\": \"describe\" }\n\n{\"type\":\"transcribe\",\"data\":{\"language\":\"de\",\"name\":null},\"data_length\":17}\n{\"language\":\"en\"}";
        let e = read_all(bytes);
        assert_eq!(e[0].kind, "describe");
        assert_eq!(e[1].data["language"], "en");
        assert_eq!(e[1].data["name"], Value::Null);
        // data_length counts UTF-8 bytes.
        let text = "{\"text\":\"語\"}";
        let frame = format!("{{\"type\":\"x\",\"data_length\":{}}}\n{text}", text.len());
        assert_eq!(read_all(frame.as_bytes())[0].data["text"], "語");
    }

    #[test]
    fn bad_frames_are_errors_before_any_allocation() {
        let l = Limits::default();
        let huge = format!("{{\"type\":\"audio-chunk\",\"data_length\":{}}}\n", 1u64 << 31);
        assert!(matches!(read_one(huge.as_bytes(), &l), Err(FrameError::DataTooLong(..))));
        let huge = format!("{{\"type\":\"audio-chunk\",\"payload_length\":{}}}\n", u64::MAX);
        assert!(matches!(read_one(huge.as_bytes(), &l), Err(FrameError::PayloadTooLong(..))));
        let neg = b"{\"type\":\"audio-chunk\",\"payload_length\":-5}\n";
        assert!(matches!(read_one(neg, &l), Err(FrameError::BadHeader(..))));
        let frac = b"{\"type\":\"audio-chunk\",\"data_length\":1.5}\n";
        assert!(matches!(read_one(frac, &l), Err(FrameError::BadHeader(..))));
        let long = vec![b'{'; l.header_line + 1];
        assert!(matches!(read_one(&long, &l), Err(FrameError::HeaderTooLong(..))));
        assert!(matches!(read_one(b"hello\n", &l), Err(FrameError::NotJson(..))));
        assert!(matches!(read_one(b"[1,2]\n", &l), Err(FrameError::BadHeader(..))));
        assert!(matches!(read_one(b"{\"data\":{}}\n", &l), Err(FrameError::BadHeader(..))));
        assert!(matches!(read_one(b"{\"type\":\"x\",\"data_length\":3}\n[1]", &l), Err(FrameError::BadData(..))));
        assert!(matches!(read_one(b"{\"type\":\"x\",\"payload_length\":10}\n123", &l), Err(FrameError::Truncated)));
        assert!(matches!(read_one(b"{\"type\":", &l), Err(FrameError::Truncated)));
        assert!(read_one(b"", &l).unwrap().is_none());
    }
}
