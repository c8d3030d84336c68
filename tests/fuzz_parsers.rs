//! Property-based fuzzing (proptest, bounded case counts so the run takes seconds) of the
//! parsers that read untrusted bytes: the WAV header/stream reader (`audio::wav`) and the socket
//! request parser (`sink::event::Request`). Properties: no panic; an error is one line that
//! names the input; an accepted WAV gives finite samples in [-1, 1] whose count fits the bytes
//! given (no sample invented from a header field); a request is accepted only when it is one.

use proptest::prelude::*;
use zipvox::audio::read_wav_from;
use zipvox::sink::event::{Event, Request};

/// A small valid WAV: `frames` frames of a ramp, in the given format.
fn wav_bytes(rate: u32, channels: u16, bits: u16, float: bool, frames: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
        for i in 0..frames * usize::from(channels) {
            let x = ((i * 37) % 200) as f32 / 100.0 - 1.0;
            if float {
                w.write_sample(x).unwrap();
            } else {
                let max = (1i64 << (bits - 1)) - 1;
                w.write_sample((x as f64 * max as f64) as i32).unwrap();
            }
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

fn formats() -> impl Strategy<Value = (u32, u16, u16, bool)> {
    (
        prop::sample::select(vec![8_000u32, 16_000, 22_050, 44_100, 48_000]),
        1u16..=3,
        prop::sample::select(vec![(8u16, false), (16, false), (24, false), (32, false), (32, true)]),
    )
        .prop_map(|(r, c, (b, f))| (r, c, b, f))
}

/// Byte edits of a WAV: (offset, new byte) pairs, mostly in the 44-byte header.
fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec((prop_oneof![3 => 0usize..44, 1 => 44usize..400], any::<u8>()), 0..6)
}

fn check_wav(bytes: &[u8]) -> Result<(), TestCaseError> {
    match read_wav_from(bytes, "fuzz.wav") {
        Ok(a) => {
            // No more samples than the bytes can hold (8-bit mono resampled up to 16 kHz from
            // the lowest rate accepted, 1 kHz, is the most: 16 per byte), all finite, bounded.
            prop_assert!(a.samples.len() <= bytes.len() * 16 + 16, "{} samples from {} bytes", a.samples.len(), bytes.len());
            prop_assert!(a.samples.iter().all(|x| x.is_finite() && x.abs() <= 1.5));
        }
        Err(e) => {
            let m = format!("{e:#}");
            prop_assert!(m.starts_with("fuzz.wav") && !m.contains('\n'), "{m}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn wav_with_edited_header_never_panics(fmt in formats(), frames in 0usize..300, edits in edits(), cut in any::<prop::sample::Index>()) {
        let (rate, channels, bits, float) = fmt;
        let mut b = wav_bytes(rate, channels, bits, float, frames);
        // Keep the rate field mostly valid (other rates are fuzzed below): a random 32-bit rate
        // mostly falls outside 1 kHz..384 kHz and is rejected, which tests little.
        for (at, v) in edits {
            if at < b.len() && !(24..28).contains(&at) {
                b[at] = v;
            }
        }
        check_wav(&b)?;
        // And truncated anywhere.
        let n = cut.index(b.len() + 1);
        check_wav(&b[..n])?;
    }

    #[test]
    fn wav_with_any_rate_and_sizes_never_panics(rate in any::<u32>(), data_len in any::<u32>(), riff_len in any::<u32>(), channels in any::<u16>()) {
        let mut b = wav_bytes(16_000, 1, 16, false, 64);
        // Rates the resampler accepts cost a filter setup each; keep most of them cheap.
        let rate = if rate % 4 == 0 { rate } else { [8_000, 11_025, 16_000, 48_000][(rate % 4) as usize] };
        b[24..28].copy_from_slice(&rate.to_le_bytes());
        b[40..44].copy_from_slice(&data_len.to_le_bytes());
        b[4..8].copy_from_slice(&riff_len.to_le_bytes());
        b[22..24].copy_from_slice(&channels.to_le_bytes());
        check_wav(&b)?;
    }

    #[test]
    fn arbitrary_bytes_are_not_a_wav(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_wav(&bytes)?;
    }
}

fn check_request(line: &[u8]) -> Result<(), TestCaseError> {
    match Request::parse(line) {
        Ok(Some(r)) => {
            let text = String::from_utf8_lossy(line);
            let want = if r == Request::Stats { "stats" } else { "ping" };
            prop_assert!(text.contains(want), "{text:?} parsed as {r:?}");
        }
        Ok(None) => prop_assert!(line.iter().all(|b| b.is_ascii_whitespace())),
        Err(message) => {
            // The reply is one NDJSON line that parses back.
            let reply = Event::Error { message }.to_line();
            prop_assert!(reply.ends_with('\n') && !reply[..reply.len() - 1].contains('\n'));
            prop_assert!(serde_json::from_str::<serde_json::Value>(&reply).is_ok());
        }
    }
    Ok(())
}

/// JSON-ish request lines: objects with a cmd, nesting, odd values, broken syntax.
fn request_lines() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("\"stats\"".to_string()),
        Just("\"ping\"".to_string()),
        Just("null".to_string()),
        Just("1e999".to_string()),
        "\"[a-z\\\\\"\u{0}-\u{7f}]{0,12}\"".prop_map(|s| s),
        any::<i64>().prop_map(|i| i.to_string()),
    ];
    let value = leaf.prop_recursive(6, 40, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("\"(cmd|x|\u{0})\"", inner), 0..4)
                .prop_map(|v| format!("{{{}}}", v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(","))),
        ]
    });
    (value, prop::sample::select(vec!["", "\n", "\r\n", "}", "\n\n"])).prop_map(|(v, end)| format!("{v}{end}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn request_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        check_request(&bytes)?;
    }

    #[test]
    fn request_parser_never_panics_on_json(line in request_lines()) {
        check_request(line.as_bytes())?;
    }
}

#[test]
fn deeply_nested_requests_are_refused_not_overflowed() {
    // serde_json's recursion limit turns 100k brackets into an error, not a stack overflow.
    for open in ["[", "{\"cmd\":"] {
        let line = open.repeat(100_000);
        assert!(Request::parse(line.as_bytes()).is_err());
    }
}
