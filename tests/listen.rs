//! The daemon end to end with real parts: a private PulseAudio as the microphone (paced in real
//! time: `scripts/pulse-mic.sh`), the ALSA `file` plugin (unpaced, for overflow), real UNIX
//! socket clients, a pty pair as the serial line, a real `NOTIFY_SOCKET` datagram socket, and
//! signals to the real process.

mod common;
#[path = "common/live.rs"]
mod live;
use common::*;
use live::{collect, connect, Daemon, Pulse};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// Waits for a datagram equal to `what` on the notify socket.
fn wait_notify(sock: &UnixDatagram, what: &str, timeout: Duration) -> bool {
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let t = Instant::now();
    let mut buf = [0u8; 256];
    while t.elapsed() < timeout {
        if let Ok(n) = sock.recv(&mut buf) {
            if std::str::from_utf8(&buf[..n]).unwrap_or("").lines().any(|l| l == what) {
                return true;
            }
        }
    }
    false
}

fn finals_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["type"] == "final")
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn wer(reference: &str, hyp: &str) -> f64 {
    let r: Vec<&str> = reference.split_whitespace().collect();
    let h: Vec<&str> = hyp.split_whitespace().collect();
    let mut d: Vec<usize> = (0..=h.len()).collect();
    for i in 1..=r.len() {
        let mut prev = d[0];
        d[0] = i;
        for j in 1..=h.len() {
            let cur = (d[j] + 1).min(d[j - 1] + 1).min(prev + usize::from(r[i - 1] != h[j - 1]));
            prev = d[j];
            d[j] = cur;
        }
    }
    d[h.len()] as f64 / r.len().max(1) as f64
}

fn reference_text(id: &str) -> String {
    let trans = std::fs::read_to_string(test_model_dir().join("test_wavs/trans.txt")).unwrap();
    trans
        .lines()
        .find(|l| l.starts_with(id))
        .map(|l| l[id.len()..].trim().to_uppercase())
        .unwrap_or_else(|| panic!("{id} not in trans.txt:\n{trans}"))
}

fn model_arg() -> String {
    test_model_dir().display().to_string()
}

/// Reads `\n`-terminated lines from the pty master until `timeout`.
fn read_serial(master: &std::os::fd::OwnedFd, timeout: Duration) -> String {
    let mut out = Vec::new();
    let t = Instant::now();
    while t.elapsed() < timeout {
        let mut fds = [nix::poll::PollFd::new(master.as_fd(), nix::poll::PollFlags::POLLIN)];
        if nix::poll::poll(&mut fds, 100u16).unwrap_or(0) == 0 {
            continue;
        }
        let mut b = [0u8; 256];
        match nix::unistd::read(master, &mut b) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn live_microphone_to_socket_clients_serial_and_recording() {
    let pulse = Pulse::start();
    let dir = &pulse.dir;
    let sock = dir.join("zv.sock");
    let rec = dir.join("rec.wav");
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = nix::unistd::ttyname(pty.slave.as_fd()).unwrap();
    let mut daemon = Daemon::spawn(
        dir,
        &[
            "--model", &model_arg(), "--device", "zvmic",
            "--socket", sock.to_str().unwrap(),
            "--record", rec.to_str().unwrap(),
            "--serial", slave.to_str().unwrap(),
        ],
        Some(&notify_path),
    );
    assert!(wait_notify(&notify, "READY=1", Duration::from_secs(60)), "no READY=1; log:\n{}", daemon.log());
    assert!(wait_notify(&notify, "WATCHDOG=1", Duration::from_secs(5)), "no watchdog ping while audio flows");

    let a = collect(connect(&sock));
    let b = collect(connect(&sock));
    // A client that never reads, and one that goes away mid-stream.
    let mut silent = connect(&sock);
    let mut quitter = connect(&sock);
    let mut hello = String::new();
    BufReader::new(&mut quitter).read_line(&mut hello).unwrap();
    assert!(hello.contains("\"hello\""), "{hello}");

    let mut player = pulse.play(&test_wav("0.wav"));
    std::thread::sleep(Duration::from_secs(2));
    quitter.write_all(b"{\"cmd\":\"st").unwrap(); // half a line, then gone
    drop(quitter);
    assert!(player.wait().unwrap().success());
    // Rule 2 (1.2 s of silence after speech) ends the segment.
    let serial = read_serial(&pty.master, Duration::from_secs(6));
    assert_eq!(daemon.terminate(), 0, "log:\n{}", daemon.log());
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let mut _unread = Vec::new();
    let _ = silent.read_to_end(&mut _unread);

    for events in [&a, &b] {
        assert_eq!(events[0]["type"], "hello");
        assert_eq!(events.last().unwrap()["type"], "bye", "{events:?}");
        assert!(events.iter().any(|e| e["type"] == "partial"), "partials arrive");
    }
    let text = finals_text(&a);
    assert_eq!(text, finals_text(&b), "both clients get the same finals");
    let w = wer(&reference_text("0"), &text);
    println!("live finals: {text:?} (WER {:.1}% vs LibriSpeech reference)", 100.0 * w);
    assert!(w <= 0.25, "WER {w} for {text:?}");

    // Live and offline agree on the same samples.
    let out = Command::new(zipvox_bin()).arg("transcribe").arg("--model").arg(model_arg()).arg(&rec).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), text, "transcribe of the recording");

    // Serial: `<segment> <text>\r\n` lines carrying the same text.
    assert!(serial.ends_with("\r\n"), "{serial:?}");
    let serial_text: Vec<String> =
        serial.split("\r\n").filter(|l| !l.is_empty()).map(|l| l.split_once(' ').unwrap().1.to_string()).collect();
    assert_eq!(serial_text.join(" "), text, "serial line: {serial:?}");
}

#[test]
fn sigterm_mid_utterance_flushes_it_as_a_final_and_exits_0() {
    let pulse = Pulse::start();
    let dir = &pulse.dir;
    let sock = dir.join("zv.sock");
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let mut daemon = Daemon::spawn(dir, &["--model", &model_arg(), "--device", "zvmic", "--socket", sock.to_str().unwrap()], Some(&notify_path));
    assert!(wait_notify(&notify, "READY=1", Duration::from_secs(60)), "log:\n{}", daemon.log());
    let client = collect(connect(&sock));
    let mut player = pulse.play(&test_wav("1.wav"));
    std::thread::sleep(Duration::from_secs(5)); // mid-sentence: no pause long enough for an endpoint
    assert_eq!(daemon.terminate(), 0, "log:\n{}", daemon.log());
    let _ = player.kill();
    let events = client.join().unwrap();
    let finals: Vec<&Value> = events.iter().filter(|e| e["type"] == "final").collect();
    assert_eq!(finals.len(), 1, "{events:?}");
    let text = finals[0]["text"].as_str().unwrap();
    println!("flushed final: {text:?}");
    assert!(text.starts_with("GOD AS A DIRECT CONSEQUENCE"), "{text}");
    assert_eq!(events.last().unwrap()["type"], "bye");
    assert_eq!(events.last().unwrap()["reason"], "shutdown");
    assert!(!sock.exists(), "socket file removed on exit");
}

fn stderr_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains(" INFO ") && !l.contains(" WARN ")).map(|l| l.to_string()).collect()
}

#[test]
fn fatal_configuration_errors_exit_2_before_ready() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let run = |args: &[&str]| {
        Command::new(zipvox_bin())
            .arg("listen")
            .args(args)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("ZIPVOX_MODEL")
            .output()
            .unwrap()
    };
    // Wrong model directory.
    let out = run(&["--model", "/nonexistent/model", "--device", "null", "--socket", dir.path().join("a.sock").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains("cannot open model directory"), "{err:?}");
    // Socket in a directory that does not exist.
    let out = run(&["--model", &model_arg(), "--device", "null", "--socket", "/nonexistent/run/zipvox.sock"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_lines(&out);
    assert!(err.len() == 1 && err[0].contains("/nonexistent/run"), "{err:?}");
    // A bad config file.
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[audio]\ndevise = \"hw:0\"\n").unwrap();
    let out = run(&["--config", cfg.to_str().unwrap(), "--model", &model_arg()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("devise"));
    assert!(!wait_notify(&notify, "READY=1", Duration::from_millis(300)), "no READY for failed starts");
}

/// Sends a request line and returns the reply.
fn request(stream: &mut UnixStream, reader: &mut BufReader<UnixStream>, line: &[u8]) -> Value {
    stream.write_all(line).unwrap();
    let mut reply = String::new();
    loop {
        reply.clear();
        reader.read_line(&mut reply).unwrap();
        let v: Value = serde_json::from_str(&reply).unwrap();
        if !["partial", "final", "hello"].contains(&v["type"].as_str().unwrap_or("")) {
            return v;
        }
    }
}

#[test]
fn keeps_serving_through_a_missing_device_a_rival_and_bad_clients() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("zv.sock");
    let mut daemon =
        Daemon::spawn(dir.path(), &["--model", &model_arg(), "--device", "nosuchdevice", "--socket", sock.to_str().unwrap()], None);
    let mut c = connect(&sock);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut hello = String::new();
    reader.read_line(&mut hello).unwrap();
    assert!(hello.contains("hello"));
    // The unknown device is retried, logged, and the daemon stays up.
    std::thread::sleep(Duration::from_secs(2));
    assert!(daemon.alive(), "log:\n{}", daemon.log());
    assert!(daemon.log().contains("nosuchdevice"), "log names the device:\n{}", daemon.log());
    // Garbage gets an error reply; the client keeps working.
    let e = request(&mut c, &mut reader, b"this is not json\n");
    assert_eq!(e["type"], "error");
    let e = request(&mut c, &mut reader, b"{\"cmd\":\"reboot\"}\n");
    assert_eq!(e["type"], "error");
    let s = request(&mut c, &mut reader, b"{\"cmd\":\"stats\"}\n");
    assert_eq!(s["type"], "stats");
    assert!(s["device_reopens"].as_u64().unwrap() >= 1 || s["uptime_s"].as_f64().unwrap() > 0.0, "{s}");
    // A second daemon on the same socket refuses to start and leaves the first alone.
    let out = Command::new(zipvox_bin())
        .args(["listen", "--model", &model_arg(), "--device", "null", "--socket", sock.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already"), "{}", String::from_utf8_lossy(&out.stderr));
    let s = request(&mut c, &mut reader, b"{\"cmd\":\"stats\"}\n");
    assert_eq!(s["type"], "stats", "first daemon still serves");
    // An over-long line closes only that client.
    let mut big = connect(&sock);
    big.write_all(&vec![b'x'; 10_000]).unwrap();
    let mut rest = Vec::new();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = big.read_to_end(&mut rest);
    let s = request(&mut c, &mut reader, b"{\"cmd\":\"stats\"}\n");
    assert_eq!(s["type"], "stats");
    assert_eq!(daemon.terminate(), 0);
}

#[test]
fn ring_overflow_from_an_unpaced_source_is_counted_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    // 30 s of audio delivered at once by the ALSA file plugin, then endless silence, into a
    // 0.5 s ring: far faster than the recognizer.
    let raw = dir.path().join("clip.raw");
    let clip: Vec<u8> = read_wav(&test_wav("1.wav"))
        .iter()
        .flat_map(|&s| ((s * 32768.0) as i16).to_le_bytes())
        .collect();
    std::fs::write(&raw, clip.repeat(2)).unwrap();
    std::fs::write(
        dir.path().join(".asoundrc"),
        format!(
            "pcm.zvfile {{ type file; slave.pcm \"null\"; file \"/dev/null\"; infile \"{}\"; format \"raw\" }}\n\
             pcm.zvplug {{ type plug; slave {{ pcm \"zvfile\"; format S16_LE; rate 16000; channels 1 }} }}\n",
            raw.display()
        ),
    )
    .unwrap();
    let cfg = dir.path().join("zipvox.toml");
    std::fs::write(&cfg, "[audio]\ndevice = \"zvplug\"\nring_seconds = 0.5\n").unwrap();
    let sock = dir.path().join("zv.sock");
    let mut daemon =
        Daemon::spawn(dir.path(), &["--config", cfg.to_str().unwrap(), "--model", &model_arg(), "--socket", sock.to_str().unwrap()], None);
    let mut c = connect(&sock);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(c.try_clone().unwrap());
    std::thread::sleep(Duration::from_secs(3));
    let s = request(&mut c, &mut reader, b"{\"cmd\":\"stats\"}\n");
    println!("stats after overflow: {s}");
    assert!(s["dropped_samples"].as_u64().unwrap() > 0, "{s}");
    assert!(s["audio_s"].as_f64().unwrap() > 1.0, "the recognizer keeps working: {s}");
    assert!(daemon.alive());
    assert_eq!(daemon.terminate(), 0);
    let log = daemon.log();
    assert!(log.to_lowercase().contains("drop") || log.to_lowercase().contains("overflow"), "overflow is logged:\n{log}");
}

#[test]
fn keyword_spotting_mode_sends_keyword_events_and_serial_lines() {
    let pulse = Pulse::start();
    let dir = &pulse.dir;
    let sock = dir.join("zv.sock");
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = nix::unistd::ttyname(pty.slave.as_fd()).unwrap();
    let keywords = test_model_dir().join("test_wavs/test_keywords.txt");
    let mut daemon = Daemon::spawn(
        dir,
        &[
            "--model", &model_arg(), "--device", "zvmic", "--socket", sock.to_str().unwrap(),
            "--keywords", keywords.to_str().unwrap(), "--serial", slave.to_str().unwrap(),
        ],
        Some(&notify_path),
    );
    assert!(wait_notify(&notify, "READY=1", Duration::from_secs(60)), "log:\n{}", daemon.log());
    let client = collect(connect(&sock));
    let mut player = pulse.play(&test_wav("0.wav"));
    assert!(player.wait().unwrap().success());
    let serial = read_serial(&pty.master, Duration::from_secs(3));
    assert_eq!(daemon.terminate(), 0, "log:\n{}", daemon.log());
    let events = client.join().unwrap();
    assert_eq!(events[0]["decoding"], "keyword-spotting");
    let spotted: Vec<&str> = events.iter().filter(|e| e["type"] == "keyword").map(|e| e["keyword"].as_str().unwrap()).collect();
    assert_eq!(spotted, vec!["LIGHT UP"], "{events:?}");
    assert!(events.iter().all(|e| e["type"] != "final"), "no transcripts in keyword mode");
    assert!(serial.contains("KEYWORD LIGHT UP\r\n"), "{serial:?}");
}

#[test]
fn keyword_spotting_with_the_chinese_pinyin_model() {
    let pulse = Pulse::start();
    let dir = &pulse.dir;
    let sock = dir.join("zv.sock");
    let notify_path = dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let model = model_dir("kws-zipformer-zh-wenetspeech-3.3m");
    let keywords = model.join("test_wavs/test_keywords.txt");
    let mut daemon = Daemon::spawn(
        dir,
        &[
            "--model", model.to_str().unwrap(), "--device", "zvmic", "--socket", sock.to_str().unwrap(),
            "--keywords", keywords.to_str().unwrap(),
        ],
        Some(&notify_path),
    );
    assert!(wait_notify(&notify, "READY=1", Duration::from_secs(60)), "log:\n{}", daemon.log());
    let client = collect(connect(&sock));
    let mut player = pulse.play(&model.join("test_wavs/5.wav"));
    assert!(player.wait().unwrap().success());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(daemon.terminate(), 0, "log:\n{}", daemon.log());
    let events = client.join().unwrap();
    let spotted: Vec<&str> = events.iter().filter(|e| e["type"] == "keyword").map(|e| e["keyword"].as_str().unwrap()).collect();
    // sherpa-onnx's KeywordSpotter on this clip (tests/chinese_model.rs compares the file path).
    assert_eq!(spotted, vec!["周望军", "落实"], "{events:?}");
}
