//! `zipvox wyoming` end to end with real clients: the `wyoming` 1.10.2 package's AsyncTcpClient
//! (`tests/wyoming/client.py`), `wyoming-bench`, the package's HTTP gateway
//! (`python -m wyoming.http.asr_server`), python-zeroconf browsing, sherpa-onnx's
//! KeywordSpotter as the wake-word reference, and raw TCP sockets for the garbage. The server
//! is the real binary on 127.0.0.1 (port 0: it prints the one it got) with the real models.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn client_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/wyoming/client.py")
}

/// A running `zipvox wyoming`; killed on drop.
struct Server {
    child: Child,
    uri: String,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(model: &Path, args: &[&str]) -> Server {
        Self::start_at(model, "tcp://127.0.0.1:0", args)
    }

    fn start_at(model: &Path, uri: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.log");
        let mut child = Command::new(zipvox_bin())
            .arg("wyoming")
            .arg("--model")
            .arg(model)
            .arg("--uri")
            .arg(uri)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("ZIPVOX_MODEL")
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zipvox wyoming");
        // The first stderr line names the bound address; the rest goes to the log file.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut bound = None;
        let mut seen = String::new();
        while bound.is_none() && Instant::now() < deadline {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("zipvox wyoming: listening on ") {
                bound = Some(rest.to_string());
            }
        }
        let bound = bound.unwrap_or_else(|| panic!("server did not start: {seen}"));
        let log2 = log.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::create(&log2).unwrap();
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 || f.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let port = bound.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Server { child, uri: bound, port, log, _dir: dir }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `python3 tests/wyoming/client.py ARGS`; its JSON lines.
fn client(args: &[&str]) -> Vec<Value> {
    let out = Command::new("python3").arg(client_py()).args(args).output().expect("python3");
    assert!(
        out.status.success(),
        "client.py {args:?} failed (pip install wyoming==1.10.2: scripts/setup.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// `zipvox transcribe` of each file (the reference the server must equal).
fn transcribe(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let out = Command::new(zipvox_bin()).arg("transcribe").arg("--model").arg(test_model_dir()).arg(f).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect()
}

/// The first `n` dev-set clips with their reference texts (manifest order).
fn dev_clips(n: usize) -> Vec<(PathBuf, String)> {
    let manifest = shared_dir().join("audio/dev/manifest.tsv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split('\t').collect();
    let wav = header.iter().position(|c| *c == "wav").unwrap();
    let reference = header.iter().position(|c| *c == "reference" || *c == "text").unwrap_or(wav);
    text.lines()
        .skip(1)
        .take(n)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (manifest.parent().unwrap().join(cols[wav]), cols[reference].to_string())
        })
        .collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap_or("").to_string()).collect()
}

fn check_transcript(r: &Value, expected: &str) {
    let types = strs(&r["types"]);
    assert_eq!(types.first().map(String::as_str), Some("transcript-start"), "{r}");
    assert_eq!(types.last().map(String::as_str), Some("transcript-stop"), "{r}");
    assert_eq!(types.iter().filter(|t| *t == "transcript").count(), 1, "{r}");
    assert_eq!(r["text"], expected, "{r}");
    assert_eq!(strs(&r["deltas"]).concat(), expected, "deltas must add up to the transcript: {r}");
}

#[test]
fn describe_is_answered_at_once_and_parses_as_home_assistant_does() {
    let s = Server::start(&test_model_dir(), &["--keywords", test_wav("test_keywords.txt").to_str().unwrap()]);
    // Asked right after the listener is up, while the model is still loading.
    let r = &client(&["describe", &s.uri])[0];
    assert!(r["seconds"].as_f64().unwrap() < 1.0, "{r}");
    assert_eq!(r["type"], "info");
    assert_eq!(strs(&r["asr_models"]), ["zipformer2-en-gigaspeech-3.3m"]);
    assert_eq!(r["streaming"][0], true);
    assert_eq!(strs(&r["wake_models"]), ["LIGHT UP", "LOVELY CHILD", "FOREVER"]);
    assert_eq!(r["info"]["asr"][0]["models"][0]["languages"][0], "en");
    // Home Assistant's own probe: data in the header, no version.
    let mut raw = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    raw.write_all(b"{ \"type\": \"describe\" }\n").unwrap();
    let mut line = String::new();
    BufReader::new(&raw).read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"type\": \"info\", \"version\": \"1.10.2\", \"data_length\": "), "{line}");
}

#[test]
fn transcripts_equal_zipvox_transcribe_and_stream_as_deltas() {
    let s = Server::start(&test_model_dir(), &[]);
    let mut files: Vec<PathBuf> = dev_clips(3).into_iter().map(|(p, _)| p).collect();
    files.push(test_wav("0.wav"));
    // 22.05 kHz stereo 16-bit, from the same clip (sox).
    let dir = tempfile::tempdir().unwrap();
    let stereo = dir.path().join("stereo-22050.wav");
    let st = Command::new("sox").arg("-D").arg(test_wav("1.wav")).args(["-r", "22050", "-c", "2", "-b", "16"]).arg(&stereo).status();
    assert!(st.is_ok_and(|s| s.success()), "sox (scripts/setup.sh installs it)");
    files.push(stereo);
    let expected = transcribe(&files);
    let mut args = vec!["transcribe".to_string(), s.uri.clone()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let results = client(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(results.len(), files.len());
    for (r, e) in results.iter().zip(&expected) {
        check_transcript(r, e);
        assert!(strs(&r["deltas"]).len() > 1, "the transcript is streamed, not sent at the end: {r}");
    }
    assert!(!expected[4].is_empty());
    // Without a transcribe event first, and with odd chunk sizes (samples split across chunks).
    let r = &client(&["transcribe", &s.uri, files[3].to_str().unwrap(), "--transcribe-first", "0", "--chunk", "333"])[0];
    check_transcript(r, &expected[3]);
    assert!(s.log().contains("transcript: "), "{}", s.log());
}

#[test]
fn four_clients_at_once_each_get_their_own_text() {
    let s = Server::start(&test_model_dir(), &["--max-streams", "4"]);
    let files: Vec<PathBuf> = dev_clips(4).into_iter().map(|(p, _)| p).collect();
    let expected = transcribe(&files);
    let mut args = vec!["transcribe".to_string(), s.uri.clone()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    args.push("--concurrent".into());
    let results = client(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for (r, e) in results.iter().zip(&expected) {
        check_transcript(r, e);
    }
    assert!(expected.iter().collect::<std::collections::HashSet<_>>().len() == 4);
}

/// Raw frames on a fresh connection; what came back until the server closed it (or 5 s).
fn exchange(port: u16, bytes: &[u8]) -> (String, bool) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = c.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let closed = loop {
        match c.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn garbage_round(port: u16) {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..100_000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let (out, closed) = exchange(port, &random);
    assert!(closed || out.contains("\"error\""), "random bytes: {out}");
    for frame in [
        format!("{{\"type\":\"audio-chunk\",\"data_length\":{}}}\n", 1u64 << 31),
        "{\"type\":\"audio-chunk\",\"payload_length\":-1}\n".to_string(),
        "{\"type\":\"audio-chunk\",\"data_length\":-20}\n".to_string(),
        "this is not json\n".to_string(),
        "{\"type\":\"audio-chunk\",\"payload_length\":99999999999}\n".to_string(),
    ] {
        let (out, closed) = exchange(port, frame.as_bytes());
        assert!(closed && out.contains("\"error\""), "{frame}: {out}");
    }
    let mut long = vec![b'{'; 3 << 20];
    long.push(b'\n');
    let (out, closed) = exchange(port, &long);
    assert!(closed && out.contains("header line longer"), "3 MB header: closed={closed}, got {out:?}");
    // Zero formats: an error, and the connection stays usable (describe still answered).
    for fmt in ["\"rate\":0,\"width\":2,\"channels\":1", "\"rate\":16000,\"width\":0,\"channels\":1", "\"rate\":16000,\"width\":2,\"channels\":0"] {
        let frames = format!(
            "{{\"type\":\"audio-start\",\"data\":{{{fmt}}}}}\n{{\"type\":\"audio-chunk\",\"data\":{{{fmt}}},\"payload_length\":4}}\n\x01\x02\x03\x04{{\"type\":\"audio-stop\"}}\n{{\"type\":\"describe\"}}\n"
        );
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(frames.as_bytes()).unwrap();
        let mut r = BufReader::new(c);
        let mut seen = String::new();
        while !seen.contains("\"info\"") {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
        }
        assert!(seen.contains("bad-audio") && seen.contains("\"info\""), "{fmt}: {seen}");
    }
}

#[test]
fn garbage_gets_an_error_or_a_close_and_the_server_keeps_serving() {
    let mut s = Server::start(&test_model_dir(), &[]);
    let wav = test_wav("0.wav");
    let expected = transcribe(std::slice::from_ref(&wav));
    // Warm-up (allocator arenas, thread stacks, the first stream's buffers), then 18 rounds
    // more (180 connections, 54 MB of oversized header lines): a leak of any frame buffer
    // (64 KiB header buffer, 3 MB line, 100 KB of random bytes) per connection would add tens of
    // MB. So would one malloc arena per connection thread (glibc's default, up to 16 on 2 cores:
    // ~3.5 MiB per transcription under load before `service::malloc` capped arenas at 2).
    let mut rss = vec![];
    for _ in 0..4 {
        for _ in 0..6 {
            garbage_round(s.port);
        }
        check_transcript(&client(&["transcribe", &s.uri, wav.to_str().unwrap()])[0], &expected[0]);
        rss.push(s.rss_kib());
    }
    println!("RSS after 6, 12, 18, 24 garbage rounds (and a transcription each): {rss:?} KiB");
    assert!(s.alive());
    assert!(rss[3] < rss[0] + 8192, "RSS grew under garbage: {rss:?} KiB");
}

#[test]
fn a_busy_server_says_busy_and_frees_the_stream_afterwards() {
    let s = Server::start(&test_model_dir(), &["--max-streams", "1"]);
    let wav = test_wav("0.wav");
    let expected = transcribe(std::slice::from_ref(&wav));
    // Hold the only stream open.
    let mut holder = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    holder.write_all(b"{\"type\":\"audio-start\",\"data\":{\"rate\":16000,\"width\":2,\"channels\":1}}\n").unwrap();
    let mut line = String::new();
    BufReader::new(holder.try_clone().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("transcript-start"), "{line}");
    let r = &client(&["transcribe", &s.uri, wav.to_str().unwrap()])[0];
    assert_eq!(r["error"], "busy", "{r}");
    holder.write_all(b"{\"type\":\"audio-stop\"}\n").unwrap();
    drop(holder);
    std::thread::sleep(Duration::from_millis(300));
    check_transcript(&client(&["transcribe", &s.uri, wav.to_str().unwrap()])[0], &expected[0]);
    // No audio at all: an empty transcript.
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"{\"type\":\"transcribe\"}\n{\"type\":\"audio-stop\"}\n").unwrap();
    let mut r = BufReader::new(c);
    let mut seen = String::new();
    while !seen.contains("transcript-stop") {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "{seen}");
        seen.push_str(&line);
    }
    assert!(seen.contains("{\"text\": \"\", \"language\": \"en\"}"), "{seen}");
}

#[test]
fn wake_words_equal_sherpa_onnx_keyword_spotter() {
    let model = model_dir("kws-zipformer-zh-wenetspeech-3.3m");
    let keywords = model.join("test_wavs/test_keywords.txt");
    let s = Server::start(&model, &["--keywords", keywords.to_str().unwrap(), "--language", "zh"]);
    let wavs: Vec<String> = (0..7).map(|i| model.join(format!("test_wavs/{i}.wav")).display().to_string()).collect();
    let mut args = vec!["kws-reference", model.to_str().unwrap(), keywords.to_str().unwrap()];
    args.extend(wavs.iter().map(String::as_str));
    let reference = client(&args);
    let mut args = vec!["detect", s.uri.as_str()];
    args.extend(wavs.iter().map(String::as_str));
    let ours = client(&args);
    let mut total = 0;
    for (r, o) in reference.iter().zip(&ours) {
        let expected = strs(&r["detections"]);
        println!("{}: sherpa-onnx {:?}, zipvox {:?} at {} ms", o["file"], expected, strs(&o["detections"]), o["timestamps"]);
        assert_eq!(strs(&o["detections"]), expected, "{o}");
        assert_eq!(o["not_detected"], expected.is_empty(), "not-detected exactly where nothing was found: {o}");
        assert!(strs(&o["errors"]).is_empty(), "{o}");
        total += expected.len();
    }
    // The model README: 3.wav → 文森特卡索, 法国; 4 → 蒋友伯, 女儿; 5 → 周望军, 落实; 6 → 朱丽楠, 见面会.
    assert_eq!(total, 8);
}

#[test]
fn wyoming_bench_passes_streaming_and_not() {
    let s = Server::start(&test_model_dir(), &[]);
    let corpus = tempfile::tempdir().unwrap();
    for (wav, reference) in dev_clips(4) {
        let name = wav.file_stem().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&wav, corpus.path().join(format!("{name}.wav"))).unwrap();
        std::fs::write(corpus.path().join(format!("{name}.txt")), reference).unwrap();
    }
    let target = format!("127.0.0.1:{}", s.port);
    let out = Command::new("wyoming-bench")
        .args(["stt", &target, "--corpus"])
        .arg(corpus.path())
        .args(["--rounds", "1"])
        .output()
        .expect("wyoming-bench (pip install wyoming-bench: scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("NOT SUPPORTED") && !text.contains("FAIL"), "{text}");
    // Paced as a microphone (1024 samples every 64 ms): the finalisation latency, audio-stop to
    // transcript, as the client sees it.
    let clip = dev_clips(1).remove(0).0;
    let r = &client(&["transcribe", &s.uri, clip.to_str().unwrap(), "--delay", "0.064"])[0];
    println!("finalisation latency (audio-stop → transcript), real-time pacing: {} ms", r["final_latency_ms"]);
    check_transcript(r, &transcribe(&[clip])[0]);
}

#[test]
fn the_packages_http_gateway_works_against_it() {
    let s = Server::start(&test_model_dir(), &[]);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut gw = Command::new("python3")
        .args(["-m", "wyoming.http.asr_server", "--uri", &s.uri, "--host", "127.0.0.1", "--port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline && gw.try_wait().unwrap().is_none(), "the gateway did not start (pip install swagger-ui-py asgiref)");
        std::thread::sleep(Duration::from_millis(100));
    }
    let wav = test_wav("1.wav");
    let post = format!(
        "import json,sys,urllib.request as u; r=u.urlopen(u.Request('http://127.0.0.1:{port}/api/speech-to-text', data=open(sys.argv[1],'rb').read(), headers={{'Content-Type':'audio/wav'}}), timeout=60); print(json.load(r)['text'])"
    );
    let out = Command::new("python3").args(["-c", &post]).arg(&wav).output().unwrap();
    let _ = gw.kill();
    let _ = gw.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), transcribe(&[wav])[0]);
}

#[test]
fn zeroconf_advertises_wyoming_tcp_to_python_zeroconf() {
    let s = Server::start(&test_model_dir(), &["--zeroconf"]);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let instance = format!("zipvox-{}", host.split('.').next().unwrap());
    let browse = r#"
import sys, time
from zeroconf import Zeroconf, ServiceBrowser, ServiceListener
zc = Zeroconf(interfaces=["127.0.0.1"])
found = {}
class L(ServiceListener):
    def add_service(self, zc, t, name): found[name] = zc.get_service_info(t, name, 3000)
    def update_service(self, zc, t, name): pass
    def remove_service(self, zc, t, name): pass
b = ServiceBrowser(zc, "_wyoming._tcp.local.", L())
deadline = time.time() + 10
while time.time() < deadline and not found: time.sleep(0.1)
for name, info in found.items():
    print(name, info.port if info else None, info.parsed_addresses() if info else None)
zc.close()
"#;
    let out = Command::new("python3").args(["-c", browse]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = format!("{instance}._wyoming._tcp.local. {} ['127.0.0.1']", s.port);
    assert!(text.lines().any(|l| l == expected), "browsing found {text:?}, expected {expected:?}; server log: {}", s.log());
}

#[test]
fn endpointing_sends_the_transcript_before_audio_stop_and_unix_sockets_work() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("wyoming.sock");
    let uri = format!("unix://{}", sock.display());
    let s = Server::start_at(&test_model_dir(), &uri, &["--endpointing"]);
    assert_eq!(s.uri, uri);
    let r = &client(&["describe", &s.uri])[0];
    assert_eq!(r["info"]["asr"][0]["requires_external_vad"], false);
    // The clip, then 3 s of silence, sent faster than real time but paced.
    let padded = dir.path().join("padded.wav");
    let st = Command::new("sox").arg("-D").arg(test_wav("0.wav")).arg(&padded).args(["pad", "0", "3"]).status().unwrap();
    assert!(st.success());
    let r = &client(&["transcribe", &s.uri, padded.to_str().unwrap(), "--delay", "0.01"])[0];
    check_transcript(r, REF_0);
    let latency = r["final_latency_ms"].as_f64().unwrap();
    assert!(latency < 0.0, "with --endpointing the transcript arrives before audio-stop is sent: {r}");
}

#[test]
fn beam_search_streams_only_what_no_path_retracts() {
    let s = Server::start(&test_model_dir(), &["--decoding", "modified-beam-search"]);
    let wavs = [test_wav("0.wav"), test_wav("1.wav")];
    for wav in &wavs {
        let out = Command::new(zipvox_bin())
            .args(["transcribe", "--decoding", "modified-beam-search", "--model"])
            .arg(test_model_dir())
            .arg(wav)
            .output()
            .unwrap();
        let expected = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let r = &client(&["transcribe", &s.uri, wav.to_str().unwrap()])[0];
        // The deltas add up to the beam-search result: nothing sent was taken back.
        check_transcript(r, &expected);
        assert!(strs(&r["deltas"]).len() > 3, "{r}");
    }
}

#[test]
fn describe_is_answered_while_a_large_model_loads_and_transcribe_waits_for_it() {
    // The 66M benchmark model takes seconds to load in the test build.
    let s = Server::start(&model_dir("bench-zipformer2-medium-random"), &[]);
    let r = &client(&["describe", &s.uri])[0];
    let loading = !s.log().contains("ready after");
    println!("describe answered in {:.1} ms, model still loading: {loading}", r["seconds"].as_f64().unwrap() * 1000.0);
    assert!(r["seconds"].as_f64().unwrap() < 1.0, "{r}");
    assert!(loading, "the model had loaded before describe was answered; the check proves nothing: {}", s.log());
    // A transcription asked for now waits for the model instead of failing.
    let r = &client(&["transcribe", &s.uri, test_wav("0.wav").to_str().unwrap()])[0];
    let types = strs(&r["types"]);
    assert_eq!((types.first().map(String::as_str), types.last().map(String::as_str)), (Some("transcript-start"), Some("transcript-stop")), "{r}");
    assert!(s.log().contains("ready after"));
}
