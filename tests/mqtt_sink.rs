//! The MQTT sink end to end with real parts: Debian's `mosquitto` started by each test on a free
//! loopback port (generated config, persistence in a temp dir), `mosquitto_sub` as the observer
//! (a persistent session where the test needs one), the real `zipvox listen` binary with the real
//! model, the PulseAudio test microphone or the ALSA `file` plugin as audio, real UNIX-socket
//! clients to compare with, openssl-made certificates for TLS, `mosquitto_passwd` for auth.

mod common;
#[path = "common/live.rs"]
mod live;
use common::*;
use live::{collect, connect, Daemon, Pulse};
use nix::sys::signal::Signal;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn tool(name: &str) -> Command {
    let c = Command::new(name);
    assert!(
        Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().unwrap().status.success(),
        "{name} not found: install mosquitto, mosquitto-clients and openssl (scripts/setup.sh does)"
    );
    c
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A mosquitto on 127.0.0.1:`port`, its config and persistence in `dir`.
struct Broker {
    dir: PathBuf,
    port: u16,
    conf: PathBuf,
    child: Option<Child>,
}

impl Broker {
    /// `extra`: more config lines (TLS, auth). Anonymous access unless `extra` says otherwise.
    fn start(dir: &Path, extra: &str) -> Broker {
        let port = free_port();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        let user = if nix::unistd::geteuid().is_root() { "user root\n" } else { "" };
        let anon = if extra.contains("allow_anonymous") { "" } else { "allow_anonymous true\n" };
        std::fs::write(
            &conf,
            format!(
                "{user}listener {port} 127.0.0.1\n{anon}persistence true\npersistence_location {}/\nlog_dest stderr\n{extra}\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut b = Broker { dir: dir.to_path_buf(), port, conf, child: None };
        b.restart();
        b
    }

    /// (Re)starts it on the same port with the same config and persistence.
    fn restart(&mut self) {
        assert!(self.child.is_none());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("broker-{}.log", self.port))).unwrap();
        self.child = Some(tool("mosquitto").arg("-c").arg(&self.conf).stdout(Stdio::null()).stderr(log).spawn().unwrap());
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(10), "mosquitto did not listen on {}:\n{}", self.port, self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (mosquitto saves its persistent sessions), then waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), Signal::SIGTERM).unwrap();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("broker-{}.log", self.port))).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One message as `mosquitto_sub -F '%r|%q|%t|%p'` prints it.
#[derive(Debug, Clone)]
struct Msg {
    retained: bool,
    qos: u8,
    topic: String,
    payload: String,
}

impl Msg {
    fn json(&self) -> Value {
        serde_json::from_str(&self.payload).unwrap_or_else(|e| panic!("{} payload is not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// A `mosquitto_sub` observer collecting every message it prints.
struct Sub {
    child: Child,
    seen: Arc<Mutex<Vec<Msg>>>,
}

impl Sub {
    /// `extra`: e.g. `-c -i ID` for a persistent session, TLS and auth options.
    fn start(port: u16, topic: &str, extra: &[&str]) -> Sub {
        let mut child = tool("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-F", "%r|%q|%t|%p"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut f = line.splitn(4, '|');
                let (Some(r), Some(q), Some(t), Some(p)) = (f.next(), f.next(), f.next(), f.next()) else { continue };
                s2.lock().unwrap().push(Msg { retained: r == "1", qos: q.parse().unwrap_or(9), topic: t.into(), payload: p.into() });
            }
        });
        Sub { child, seen }
    }

    fn messages(&self) -> Vec<Msg> {
        self.seen.lock().unwrap().clone()
    }

    fn on(&self, leaf: &str) -> Vec<Msg> {
        self.messages().into_iter().filter(|m| m.topic.ends_with(leaf)).collect()
    }

    /// Waits until `pred` holds for the messages seen so far.
    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&[Msg]) -> bool) -> Vec<Msg> {
        let t = Instant::now();
        loop {
            let m = self.messages();
            if pred(&m) {
                return m;
            }
            assert!(t.elapsed() < timeout, "timed out waiting for {what}; saw {m:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(m: &Msg, leaf: &str, payload: &str) -> bool {
    m.topic.ends_with(leaf) && m.payload == payload
}

/// `{"cmd":"stats"}` on a fresh connection.
fn socket_stats(sock: &Path) -> Value {
    let mut c = connect(sock);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"{\"cmd\":\"stats\"}\n").unwrap();
    for line in BufReader::new(c).lines() {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if v["type"] == "stats" {
            return v;
        }
    }
    panic!("no stats reply");
}

fn finals(events: &[Value]) -> Vec<Value> {
    events.iter().filter(|e| e["type"] == "final").cloned().collect()
}

fn model_arg() -> String {
    test_model_dir().display().to_string()
}

fn dev_wav(id: &str) -> PathBuf {
    shared_dir().join("audio/dev/wav").join(format!("{id}.wav"))
}

/// Clips with `gap_s` of silence after each, as one 16 kHz mono 16-bit WAV.
fn clips_with_gaps(path: &Path, clips: &[PathBuf], gap_s: f32) {
    let spec = hound::WavSpec { channels: 1, sample_rate: 16000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for c in clips {
        let samples = zipvox::audio::read_wav(c).unwrap();
        for s in samples.samples.iter().copied().chain(std::iter::repeat_n(0.0, (gap_s * 16000.0) as usize)) {
            w.write_sample((s * 32767.0).round() as i16).unwrap();
        }
    }
    w.finalize().unwrap();
}

fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn live_finals_match_the_socket_and_sigterm_leaves_offline_retained() {
    let pulse = Pulse::start();
    let dir = &pulse.dir;
    let broker = Broker::start(dir, "");
    let sock = dir.join("zv.sock");
    let live = Sub::start(broker.port, "zipvox/t1/#", &[]);
    let mut daemon = Daemon::spawn(dir, &["--model", &model_arg(), "--device", "zvmic", "--socket", sock.to_str().unwrap(), "--mqtt", &broker.url(), "--device-id", "t1", "--mqtt-partials"], None);
    live.wait("online", Duration::from_secs(60), |m| m.iter().any(|m| is(m, "/availability", "online")));
    // A subscriber that comes later gets the retained availability and status.
    let late = Sub::start(broker.port, "zipvox/t1/#", &[]);
    let seen = late.wait("retained online + status", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.retained && is(m, "/availability", "online")) && m.iter().any(|m| m.retained && m.topic.ends_with("/status"))
    });
    let status = seen.iter().find(|m| m.topic.ends_with("/status")).unwrap().json();
    assert_eq!(status["type"], "stats");
    assert_eq!(status["device_id"], "t1");
    assert_eq!(status["language"], "en");
    assert!(status["version"].is_string() && status["model"].as_str().unwrap().contains("gigaspeech"), "{status}");
    assert!(status["uptime_s"].is_number() && status["mqtt_dropped"] == 0, "{status}");

    let client = collect(connect(&sock));
    let mut player = pulse.play(&test_wav("0.wav"));
    assert!(player.wait().unwrap().success());
    live.wait("the final", Duration::from_secs(15), |m| m.iter().any(|m| m.topic.ends_with("/transcript")));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.terminate(), 0, "log:\n{}", daemon.log());
    let socket_finals = finals(&client.join().unwrap());
    let mqtt_finals: Vec<Value> = live.on("/transcript").iter().map(|m| m.json()).collect();
    println!("mqtt finals: {mqtt_finals:?}");
    assert!(!socket_finals.is_empty());
    assert_eq!(mqtt_finals, socket_finals, "the MQTT transcript payloads are the socket's final events");
    assert!(live.on("/transcript").iter().all(|m| m.qos == 1 && !m.retained));
    // Partials (asked for with --mqtt-partials; off by default): QoS 0, the socket's partial
    // objects, of the segment whose final follows.
    let partials = live.on("/partial");
    assert!(!partials.is_empty(), "partials arrive");
    assert!(partials.iter().all(|m| m.qos == 0 && m.json()["type"] == "partial" && m.json()["segment"] == socket_finals[0]["segment"]));

    // SIGTERM: `offline` published (retained) before the clean disconnect.
    live.wait("offline", Duration::from_secs(5), |m| m.last().is_some_and(|m| is(m, "/availability", "offline")));
    let after = Sub::start(broker.port, "zipvox/t1/availability", &[]);
    let m = after.wait("retained offline", Duration::from_secs(5), |m| !m.is_empty());
    assert!(m[0].retained && m[0].payload == "offline", "{m:?}");
}

#[test]
fn finals_spoken_while_the_broker_is_down_arrive_once_in_order_after_it_returns() {
    let pulse = Pulse::start();
    let dir = &pulse.dir;
    let mut broker = Broker::start(dir, "");
    let sock = dir.join("zv.sock");
    let cfg = write_config(dir, "zv.toml", "[mqtt]\nreconnect_min_s = 0.2\nreconnect_max_s = 1.0\n");
    // The observer: a persistent session (clean session off, QoS 1), which mosquitto keeps across
    // its restart (persistence on) and which reconnects by itself.
    let observer = Sub::start(broker.port, "zipvox/t2/#", &["-c", "-i", &format!("obs-t2-{}", std::process::id())]);
    let mut daemon = Daemon::spawn(
        dir,
        &[
            "--config", cfg.to_str().unwrap(), "--model", &model_arg(), "--device", "zvmic",
            "--socket", sock.to_str().unwrap(), "--mqtt", &broker.url(), "--device-id", "t2",
        ],
        None,
    );
    observer.wait("online", Duration::from_secs(60), |m| m.iter().any(|m| is(m, "/availability", "online")));
    let client = collect(connect(&sock));

    broker.stop();
    assert!(daemon.wait_log("connection lost", Duration::from_secs(10)), "log:\n{}", daemon.log());
    let clip = dir.join("two.wav");
    clips_with_gaps(&clip, &[dev_wav("ls-1089-134691-0000"), dev_wav("ls-1089-134686-0001")], 2.5);
    let mut player = pulse.play(&clip);
    assert!(player.wait().unwrap().success());
    let t = Instant::now();
    while daemon.log().matches(" final ").count() < 2 {
        assert!(t.elapsed() < Duration::from_secs(10), "two finals while the broker is away; log:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = socket_stats(&sock);
    assert_eq!((stats["mqtt_connected"].as_u64(), stats["mqtt_queued"].as_u64()), (Some(0), Some(2)), "{stats}");

    broker.restart();
    let seen = observer.wait("both finals after the reconnect", Duration::from_secs(20), |m| {
        m.iter().filter(|m| m.topic.ends_with("/transcript")).count() >= 2
    });
    std::thread::sleep(Duration::from_secs(2)); // would a duplicate follow?
    let delivered: Vec<Value> = observer.on("/transcript").iter().map(|m| m.json()).collect();
    assert_eq!(daemon.terminate(), 0, "log:\n{}", daemon.log());
    let socket_finals = finals(&client.join().unwrap());
    println!("delivered after the outage: {:?}", delivered.iter().map(|f| f["text"].clone()).collect::<Vec<_>>());
    assert_eq!(delivered, socket_finals, "each final exactly once, in order");
    let online = seen.iter().filter(|m| is(m, "/availability", "online")).count();
    assert!(online >= 2, "availability online again after the reconnect: {seen:#?}");
    assert!(daemon.log().contains("connected to"), "{}", daemon.log());
}

#[test]
fn queue_overflow_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // Register the observer's persistent session, then take the broker away before zipvox starts:
    // an unreachable broker is not an error.
    let mut broker = Broker::start(dir, "");
    let obs_id = format!("obs-t4-{}", std::process::id());
    let out = tool("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string(), "-c", "-i", &obs_id, "-q", "1", "-t", "zipvox/t4/#", "-E"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    broker.stop();

    // Six short utterances with pauses, delivered unpaced by the ALSA file plugin.
    const N: usize = 6;
    let clip = dir.join("six.wav");
    clips_with_gaps(&clip, &vec![dev_wav("ls-1089-134691-0000"); N], 2.5);
    let raw = dir.join("six.raw");
    let pcm: Vec<u8> = read_wav(&clip).iter().flat_map(|&s| ((s * 32768.0).round() as i16).to_le_bytes()).collect();
    std::fs::write(&raw, pcm).unwrap();
    std::fs::write(
        dir.join(".asoundrc"),
        format!(
            "pcm.zvfile {{ type file; slave.pcm \"null\"; file \"/dev/null\"; infile \"{}\"; format \"raw\" }}\n\
             pcm.zvplug {{ type plug; slave {{ pcm \"zvfile\"; format S16_LE; rate 16000; channels 1 }} }}\n",
            raw.display()
        ),
    )
    .unwrap();
    let cfg = write_config(
        dir,
        "zv.toml",
        &format!(
            "[audio]\ndevice = \"zvplug\"\nring_seconds = 120\n[mqtt]\nbroker = \"{}\"\ndevice_id = \"t4\"\nqueue_size = 3\n\
             reconnect_min_s = 0.2\nreconnect_max_s = 0.5\nstatus_interval_s = 0.5\n",
            broker.url()
        ),
    );
    let sock = dir.join("zv.sock");
    let mut daemon = Daemon::spawn(dir, &["--config", cfg.to_str().unwrap(), "--model", &model_arg(), "--socket", sock.to_str().unwrap()], None);
    let client = collect(connect(&sock));
    let t = Instant::now();
    let stats = loop {
        let s = socket_stats(&sock);
        if s["finals"].as_u64() == Some(N as u64) {
            break s;
        }
        assert!(daemon.alive(), "log:\n{}", daemon.log());
        assert!(t.elapsed() < Duration::from_secs(60), "{N} finals expected: {s}\nlog:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    println!("stats with the broker away: {stats}");
    assert_eq!(stats["mqtt_queued"], 3, "{stats}");
    assert_eq!(stats["mqtt_dropped"], N as u64 - 3, "{stats}");
    assert!(stats["mqtt_reconnects"].as_u64().unwrap() >= 1, "{stats}");
    let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap()))
        .unwrap();
    println!("daemon VmRSS with the broker away: {rss_kib} KiB");
    assert!(rss_kib < 400 * 1024, "memory stays bounded: {rss_kib} KiB");
    assert!(daemon.log().contains("dropping the oldest"), "the overflow is logged:\n{}", daemon.log());

    broker.restart();
    let observer = Sub::start(broker.port, "zipvox/t4/#", &["-c", "-i", &obs_id]);
    observer.wait("the three newest finals", Duration::from_secs(20), |m| m.iter().filter(|m| m.topic.ends_with("/transcript")).count() >= 3);
    let seen = observer.wait("a status after the reconnect", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic.ends_with("/status") && m.json()["mqtt_queued"] == 0)
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.terminate(), 0, "log:\n{}", daemon.log());
    let socket_finals = finals(&client.join().unwrap());
    // The input is unpaced (the file plugin), so the socket client may connect after the first
    // finals were already sent; the newest three are what matters here.
    assert!(socket_finals.len() >= 3, "{socket_finals:?}");
    let delivered: Vec<Value> = observer.on("/transcript").iter().map(|m| m.json()).collect();
    assert_eq!(delivered, socket_finals[socket_finals.len() - 3..], "the newest three, in order; the oldest dropped");
    let status = seen.iter().rev().find(|m| m.topic.ends_with("/status")).unwrap().json();
    assert_eq!(status["mqtt_dropped"], N as u64 - 3, "{status}");
}

/// A test CA and a server certificate for `localhost`, made with openssl.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_key, ca, key, csr, cert) =
        (dir.join("ca.key"), dir.join("ca.pem"), dir.join("server.key"), dir.join("server.csr"), dir.join("server.pem"));
    let ext = dir.join("san.ext");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let run = |args: &[&str]| {
        let out = tool("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let p = |p: &Path| p.to_str().unwrap().to_string();
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=zipvox test CA", "-keyout", &p(&ca_key), "-out", &p(&ca)]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", &p(&key), "-out", &p(&csr)]);
    run(&[
        "x509", "-req", "-in", &p(&csr), "-CA", &p(&ca), "-CAkey", &p(&ca_key), "-CAcreateserial", "-days", "2",
        "-extfile", &p(&ext), "-out", &p(&cert),
    ]);
    (ca, cert, key)
}

#[test]
fn tls_with_user_and_password_and_a_wrong_password_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let (ca, cert, key) = make_certs(dir);
    let passwd = dir.join("passwd");
    let out = tool("mosquitto_passwd").args(["-b", "-c", passwd.to_str().unwrap(), "zipvox", "right-horse"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let broker = Broker::start(
        dir,
        &format!(
            "allow_anonymous false\npassword_file {}\ncafile {}\ncertfile {}\nkeyfile {}\n",
            passwd.display(),
            ca.display(),
            cert.display(),
            key.display()
        ),
    );
    let good = write_config(dir, "good.pw", "right-horse\n");
    let bad = write_config(dir, "bad.pw", "wrong-horse\n");
    let tls_sub = ["--cafile", ca.to_str().unwrap(), "-u", "zipvox", "-P", "right-horse", "-h", "localhost"];
    let observer = Sub::start(broker.port, "zipvox/#", &tls_sub);
    let url = format!("mqtts://zipvox@localhost:{}", broker.port);
    let cfg = write_config(dir, "zv.toml", "[mqtt]\nreconnect_min_s = 0.2\nreconnect_max_s = 0.5\nstatus_interval_s = 0.5\n");
    let common = ["--config", cfg.to_str().unwrap(), "--model", &model_arg(), "--device", "nosuchdevice", "--mqtt", &url, "--mqtt-ca-file", ca.to_str().unwrap()];
    let sock = dir.join("wrong.sock");
    let mut wrong = Daemon::spawn(dir, &[&common[..], &["--device-id", "wrong", "--mqtt-password-file", bad.to_str().unwrap(), "--socket", sock.to_str().unwrap()]].concat(), None);
    let mut right =
        Daemon::spawn(dir, &[&common[..], &["--device-id", "tls", "--mqtt-password-file", good.to_str().unwrap()]].concat(), None);
    observer.wait("online and status over TLS", Duration::from_secs(60), |m| {
        m.iter().any(|m| is(m, "tls/availability", "online")) && m.iter().any(|m| m.topic == "zipvox/tls/status")
    });

    // The wrong password: a clear log line, retries, and the daemon keeps running.
    assert!(wrong.wait_log("refused the connection", Duration::from_secs(30)), "log:\n{}", wrong.log());
    let t = Instant::now();
    while socket_stats(&sock)["mqtt_reconnects"].as_u64().unwrap() < 3 {
        assert!(t.elapsed() < Duration::from_secs(20), "retries: log:\n{}", wrong.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(wrong.alive(), "log:\n{}", wrong.log());
    let line = wrong.log().lines().find(|l| l.contains("refused the connection")).unwrap().to_string();
    println!("wrong password: {line}");
    assert!(line.contains("password") || line.contains("not authorized"), "{line}");
    assert!(!wrong.log().contains("wrong-horse"), "the password is never logged");
    assert!(observer.messages().iter().all(|m| !m.topic.starts_with("zipvox/wrong/")));
    assert_eq!(wrong.terminate(), 0, "log:\n{}", wrong.log());
    assert_eq!(right.terminate(), 0, "log:\n{}", right.log());
    observer.wait("offline over TLS", Duration::from_secs(5), |m| m.iter().any(|m| is(m, "tls/availability", "offline")));
}

#[test]
fn home_assistant_discovery_and_the_last_will_on_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let broker = Broker::start(dir, "");
    let observer = Sub::start(broker.port, "#", &[]);
    let mut daemon =
        Daemon::spawn(dir, &["--model", &model_arg(), "--device", "nosuchdevice", "--mqtt", &broker.url(), "--device-id", "t6", "--ha-discovery"], None);
    let topic = "homeassistant/device/zipvox_t6/config";
    let seen = observer.wait("the discovery config", Duration::from_secs(60), |m| m.iter().any(|m| m.topic == topic));
    let config = seen.iter().find(|m| m.topic == topic).unwrap().json();
    assert_eq!(config["avty_t"], "zipvox/t6/availability");
    let cmps = config["cmps"].as_object().unwrap();
    let platforms: Vec<&str> = cmps.values().map(|c| c["p"].as_str().unwrap()).collect();
    assert_eq!(platforms.iter().filter(|p| **p == "event").count(), 2, "{config}");
    assert!(platforms.contains(&"sensor"), "{config}");
    assert!(cmps.values().any(|c| c["stat_t"] == "zipvox/t6/transcript"), "{config}");
    let late = Sub::start(broker.port, topic, &[]);
    late.wait("the retained discovery config", Duration::from_secs(5), |m| m.iter().any(|m| m.retained));

    // Home Assistant restarted: it says `online`, the config comes again.
    let out = tool("mosquitto_pub").args(["-p", &broker.port.to_string(), "-h", "127.0.0.1", "-t", "homeassistant/status", "-m", "online"]).output().unwrap();
    assert!(out.status.success());
    observer.wait("the discovery config re-sent", Duration::from_secs(10), |m| m.iter().filter(|m| m.topic == topic).count() >= 2);

    // SIGKILL: nobody says goodbye, the broker publishes the last will.
    daemon.signal(Signal::SIGKILL);
    let _ = daemon.wait(Duration::from_secs(5));
    observer.wait("the last will", Duration::from_secs(10), |m| m.last().is_some_and(|m| is(m, "t6/availability", "offline")));
}

#[test]
fn bad_mqtt_configuration_is_one_line_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(zipvox_bin())
            .args(["listen", "--model", &model_arg(), "--device", "null"])
            .args(args)
            .env_remove("ZIPVOX_MODEL")
            .output()
            .unwrap();
        let err: Vec<String> = String::from_utf8_lossy(&out.stderr).lines().filter(|l| !l.contains(" WARN ")).map(String::from).collect();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err:?}");
        assert_eq!(err.len(), 1, "{args:?}: {err:?}");
        err[0].clone()
    };
    assert!(run(&["--mqtt", "broker.lan:1883"]).contains("malformed"));
    assert!(run(&["--mqtt", "http://broker.lan"]).contains("unknown scheme"));
    assert!(run(&["--mqtt", "mqtt://zv@broker.lan", "--mqtt-password-file", "/nonexistent/pw"]).contains("/nonexistent/pw"));
    assert!(run(&["--mqtt", "mqtt://broker.lan", "--device-id", "kitchen/1"]).contains("device id"));
    assert!(run(&["--mqtt", "mqtt://zv:secret@broker.lan"]).contains("password_file"));
    assert!(run(&["--device-id", "x"]).contains("--mqtt"));
    let cfg = write_config(dir.path(), "zv.toml", "[mqtt]\nbroker = \"mqtt://h\"\nqueu_size = 5\n");
    assert!(run(&["--config", cfg.to_str().unwrap()]).contains("queu_size"));
}
