//! The UNIX socket sink with real sockets: protocol, slow and misbehaving clients, the socket
//! file's life cycle. No mocks; each test binds its own socket in its own temporary directory.
//!
//! Tests run as root in CI, where permission bits do not stop `bind(2)`: the "unwritable
//! directory" cases therefore use a parent that is a regular file and a parent that does not
//! exist, which fail for root too.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zipvox::service::ServiceStats;
use zipvox::sink::{Event, SocketConfig, SocketSink};

fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

fn hello() -> Event {
    Event::Hello {
        version: "test".into(),
        model: "tiny".into(),
        model_type: "zipformer2".into(),
        sample_rate: 16000,
        decoding: "greedy".into(),
    }
}

fn partial(segment: usize, text: &str) -> Event {
    Event::Partial { segment, text: text.into() }
}

fn final_(segment: usize, text: &str) -> Event {
    Event::Final {
        segment,
        text: text.into(),
        start: 0.5,
        end: 1.25,
        tokens: text.split(' ').map(|w| format!(" {w}")).collect(),
        timestamps: vec![0.75; text.split(' ').count()],
    }
}

fn config(dir: &Path) -> SocketConfig {
    SocketConfig { path: dir.join("zipvox.sock"), ..SocketConfig::default() }
}

fn bind(cfg: SocketConfig) -> (SocketSink, Arc<ServiceStats>) {
    init_log();
    let stats = Arc::new(ServiceStats::default());
    let sink = SocketSink::bind(cfg, hello(), stats.clone()).expect("bind");
    (sink, stats)
}

/// A test client: reads NDJSON lines with a generous timeout (a hang fails, never a slowness).
struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client { writer: s.try_clone().unwrap(), reader: BufReader::new(s) }
    }

    /// Connects and checks the hello line.
    fn connect_hello(path: &Path) -> Client {
        let mut c = Client::connect(path);
        let h = c.next().expect("hello line");
        assert_eq!(h["type"], "hello", "{h}");
        assert_eq!(h["version"], "test");
        assert_eq!(h["decoding"], "greedy");
        c
    }

    /// The next line as JSON; `None` at EOF.
    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => {
                assert!(line.ends_with('\n'), "incomplete line {line:?}");
                Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON {line:?}: {e}")))
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("read: {e}"),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn request(&mut self, bytes: &[u8]) -> Value {
        self.send(bytes);
        self.next().expect("a reply")
    }
}

/// Waits (up to 30 s) for `cond`; panics with `what` otherwise.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(30), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn hello_then_events_in_order_to_every_client() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, stats) = bind(config(dir.path()));
    let mut a = Client::connect_hello(sink.path());
    let mut b = Client::connect_hello(sink.path());
    assert_eq!(stats.clients.load(Relaxed), 2);
    assert_eq!(stats.clients_total.load(Relaxed), 2);

    // Each partial is read before the next event: no coalescing can apply.
    sink.publish(&partial(0, "HE"));
    for c in [&mut a, &mut b] {
        let v = c.next().unwrap();
        assert_eq!((v["type"].as_str(), v["segment"].as_u64(), v["text"].as_str()), (Some("partial"), Some(0), Some("HE")));
    }
    sink.publish(&final_(0, "HELLO WORLD"));
    sink.publish(&Event::Keyword { keyword: "HEY ZIPVOX".into(), start: 1.0, end: 1.5 });
    sink.publish(&final_(1, "AGAIN"));
    for c in [&mut a, &mut b] {
        let v = c.next().unwrap();
        assert_eq!(v["type"], "final");
        assert_eq!(v["segment"], 0);
        assert_eq!(v["text"], "HELLO WORLD");
        assert_eq!(v["tokens"][1], " WORLD");
        assert_eq!(c.next().unwrap()["keyword"], "HEY ZIPVOX");
        let v = c.next().unwrap();
        assert_eq!((v["type"].as_str(), v["segment"].as_u64()), (Some("final"), Some(1)));
    }
}

#[test]
fn partials_are_coalesced_for_a_client_that_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, _stats) = bind(config(dir.path()));
    let mut c = Client::connect_hello(sink.path());
    // 40 finals of ~8 KB fill the client's socket buffer (~200 KB) and its write buffer while
    // it does not read; then 1000 partials pile up behind them.
    let big = "X".repeat(8000);
    for seg in 0..40 {
        sink.publish(&final_(seg, &big));
    }
    for i in 0..1000 {
        sink.publish(&partial(40, &format!("P{i}")));
    }
    let mut finals = 0;
    let mut partials = Vec::new();
    while partials.last().map(String::as_str) != Some("P999") {
        let v = c.next().expect("events");
        match v["type"].as_str().unwrap() {
            "final" => {
                assert_eq!(v["segment"], finals, "finals in order");
                assert!(partials.is_empty(), "partials of segment 40 come after the finals");
                finals += 1;
            }
            "partial" => partials.push(v["text"].as_str().unwrap().to_string()),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(finals, 40);
    println!("partials received: {} of 1000 ({:?})", partials.len(), partials);
    assert!(partials.len() <= 3, "a client behind on partials gets the newest only: {partials:?}");
    sink.publish(&final_(40, "DONE"));
    assert_eq!(c.next().unwrap()["text"], "DONE");
}

#[test]
fn a_client_that_never_reads_is_dropped_and_delays_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let max_queued = 64;
    let (sink, stats) = bind(SocketConfig { max_queued_finals: max_queued, ..config(dir.path()) });
    let sink = Arc::new(sink);

    // Two readers in threads, counting finals (and checking their order).
    let progress: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let readers: Vec<_> = progress
        .iter()
        .map(|p| {
            let p = p.clone();
            let mut c = Client::connect_hello(sink.path());
            std::thread::spawn(move || {
                let mut finals = 0usize;
                let mut partials = 0usize;
                while let Some(v) = c.next() {
                    match v["type"].as_str().unwrap() {
                        "final" => {
                            assert_eq!(v["segment"].as_u64().unwrap() as usize, finals, "every final, in order");
                            finals += 1;
                            p.store(finals, Relaxed);
                        }
                        "partial" => partials += 1,
                        "bye" => break,
                        other => panic!("unexpected {other}"),
                    }
                }
                (finals, partials)
            })
        })
        .collect();
    // The third one never reads until it has been dropped; then it drains to EOF.
    let mut lazy = Client::connect_hello(sink.path());
    let stats2 = stats.clone();
    let lazy_thread = std::thread::spawn(move || {
        wait_for("the lazy client to be dropped", || stats2.clients_dropped.load(Relaxed) == 1);
        let mut lines = Vec::new();
        while let Some(v) = lazy.next() {
            lines.push(v);
        }
        lines
    });

    // 100 bursts of 1000 events (990 partials, 10 finals): the recognizer's output, much
    // faster. Between bursts the readers catch up (as they would at speech rate); the lazy
    // client falls behind for good.
    let rss_before = rss_kib();
    let text = "THE SQUALID QUARTER OF THE BRAFFLES ".repeat(5);
    let mut publish_time = Duration::ZERO;
    let mut seg = 0;
    for _burst in 0..100 {
        let t = Instant::now();
        for i in 0..1000 {
            if i % 100 == 99 {
                sink.publish(&final_(seg, &text));
                seg += 1;
            } else {
                sink.publish(&partial(seg, &text[..i % text.len()]));
            }
        }
        publish_time += t.elapsed();
        wait_for("the readers to catch up", || progress.iter().all(|p| p.load(Relaxed) == seg));
    }
    println!(
        "published 100000 events (1000 finals) in {:?} ({:.2} µs/event); RSS {} → {} KiB; queue high water {}",
        publish_time,
        publish_time.as_secs_f64() * 1e6 / 100_000.0,
        rss_before,
        rss_kib(),
        sink.queue_high_water()
    );
    assert!(sink.queue_high_water() <= max_queued, "per-client queue stays bounded");

    let lazy_lines = lazy_thread.join().unwrap();
    let last = lazy_lines.last().unwrap();
    assert_eq!(last["type"], "bye", "last line of the dropped client: {last}");
    assert!(last["reason"].as_str().unwrap().starts_with("too far behind"), "{last}");
    let lazy_finals = lazy_lines.iter().filter(|v| v["type"] == "final").count();
    println!("the lazy client got {} lines ({lazy_finals} finals) before its bye", lazy_lines.len());
    assert!(lazy_finals < 1000);
    assert_eq!(stats.clients_dropped.load(Relaxed), 1);
    wait_for("the lazy client to be closed", || stats.clients.load(Relaxed) == 2);
    assert_eq!(stats.clients_total.load(Relaxed), 3);

    sink.shutdown("test over");
    for r in readers {
        let (finals, partials) = r.join().unwrap();
        assert_eq!(finals, 1000, "the reading clients got every final");
        println!("reader: 1000 finals, {partials} partials (of 99000; the rest coalesced)");
    }
}

#[test]
fn stats_ping_and_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, stats) = bind(config(dir.path()));
    stats.finals.store(7, Relaxed);
    stats.partials.store(42, Relaxed);
    let mut c = Client::connect_hello(sink.path());

    let v = c.request(b"{\"cmd\":\"stats\"}\n");
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["finals"], 7);
    assert_eq!(v["partials"], 42);
    assert_eq!(v["clients"], 1);
    assert_eq!(v["clients_total"], 1);
    assert_eq!(v["clients_dropped"], 0);
    assert!(v["uptime_s"].as_f64().unwrap() >= 0.0);

    assert_eq!(c.request(b"{\"cmd\":\"ping\"}\r\n")["type"], "pong");
    for (bad, expect) in [
        (&b"hello there\n"[..], "not JSON"),
        (b"{\"cmd\":\"reboot\"}\n", "unknown command"),
        (b"[1,2,3]\n", "\"cmd\""),
        (b"{\"cmd\":\"st\xffats\"}\n", "UTF-8"),
        (b"\x00\x01\x02\n", "not JSON"),
    ] {
        let v = c.request(bad);
        assert_eq!(v["type"], "error", "{v}");
        assert!(v["message"].as_str().unwrap().contains(expect), "{v}");
    }
    // Blank lines are ignored; several requests in one write are each answered.
    c.send(b"\n\n{\"cmd\":\"ping\"}\n{\"cmd\":\"ping\"}\n");
    assert_eq!(c.next().unwrap()["type"], "pong");
    assert_eq!(c.next().unwrap()["type"], "pong");
    // Still a working client.
    sink.publish(&final_(0, "STILL HERE"));
    assert_eq!(c.next().unwrap()["text"], "STILL HERE");
    assert_eq!(stats.clients.load(Relaxed), 1);
}

#[test]
fn pipelined_requests_are_all_answered() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, _stats) = bind(config(dir.path()));
    // 2000 stats requests in one go, replies (~400 KB) read only afterwards: the sink stops
    // answering (and reading) requests while REPLY_BACKLOG bytes of replies are unwritten, and
    // resumes once they drain — also for the lines of its last read, with no more input to come.
    let mut c = Client::connect_hello(sink.path());
    c.send("{\"cmd\":\"stats\"}\n".repeat(2000).as_bytes());
    for i in 0..2000 {
        assert_eq!(c.next().unwrap_or_else(|| panic!("reply {i}"))["type"], "stats");
    }
    // A client that sends its request and shuts down its sending side (`socat`, `nc -N`) still
    // gets the answer, and events after it.
    let mut d = Client::connect_hello(sink.path());
    d.send(b"{\"cmd\":\"ping\"}\n{\"cmd\":\"pi");
    d.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(d.next().unwrap()["type"], "pong");
    sink.publish(&final_(0, "AFTER EOF"));
    assert_eq!(d.next().unwrap()["text"], "AFTER EOF");
}

#[test]
fn an_over_long_request_closes_only_that_client() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, stats) = bind(SocketConfig { max_line_bytes: 1000, ..config(dir.path()) });
    let mut bad = Client::connect_hello(sink.path());
    let mut good = Client::connect_hello(sink.path());
    bad.send(&[b'a'; 5000]);
    let v = bad.next().expect("an error before the close");
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["message"].as_str().unwrap().contains("longer than 1000 bytes"), "{v}");
    assert!(bad.next().is_none(), "closed after the error");
    wait_for("the over-long client to be gone", || stats.clients.load(Relaxed) == 1);

    sink.publish(&final_(0, "FOR THE GOOD ONE"));
    assert_eq!(good.next().unwrap()["text"], "FOR THE GOOD ONE");
    assert_eq!(good.request(b"{\"cmd\":\"ping\"}\n")["type"], "pong");
    assert_eq!(stats.clients_dropped.load(Relaxed), 0, "not a lagging client");
}

#[test]
fn a_client_killed_mid_line_changes_nothing_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, stats) = bind(config(dir.path()));
    let mut good = Client::connect_hello(sink.path());
    {
        let mut dying = Client::connect_hello(sink.path());
        dying.send(b"{\"cmd\":\"sta");
    } // closed here, mid-line
    wait_for("the dead client to be cleaned up", || stats.clients.load(Relaxed) == 1);
    // And one that half-closes after half a line (EOF on its side only) is kept.
    let half = Client::connect_hello(sink.path());
    let mut half_writer = half.writer.try_clone().unwrap();
    half_writer.write_all(b"{\"cmd\":").unwrap();
    half_writer.shutdown(std::net::Shutdown::Write).unwrap();
    let mut half = half;

    sink.publish(&final_(0, "UNDISTURBED"));
    assert_eq!(good.next().unwrap()["text"], "UNDISTURBED");
    assert_eq!(half.next().unwrap()["text"], "UNDISTURBED");
    let v = good.request(b"{\"cmd\":\"stats\"}\n");
    assert_eq!(v["clients"], 2);
    assert_eq!(v["clients_total"], 3);
}

#[test]
fn too_many_clients_are_told_so() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, stats) = bind(SocketConfig { max_clients: 1, ..config(dir.path()) });
    let _first = Client::connect_hello(sink.path());
    let mut second = Client::connect(sink.path());
    let v = second.next().unwrap();
    assert_eq!(v["type"], "bye");
    assert!(v["reason"].as_str().unwrap().contains("too many clients"), "{v}");
    assert!(second.next().is_none());
    assert_eq!(stats.clients.load(Relaxed), 1);
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    drop(UnixListener::bind(&cfg.path).unwrap()); // a crashed daemon's leftover
    assert!(cfg.path.exists());
    let (sink, _stats) = bind(cfg);
    let _c = Client::connect_hello(sink.path());
}

#[test]
fn a_live_socket_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _stats) = bind(config(dir.path()));
    let err = SocketSink::bind(config(dir.path()), hello(), Arc::new(ServiceStats::default())).err().expect("must fail");
    let msg = format!("{err:#}");
    println!("{msg}");
    assert!(msg.contains("already listening on") && msg.contains("zipvox.sock"), "{msg}");
    // The first one is untouched and still serving.
    let _c = Client::connect_hello(first.path());
}

#[test]
fn something_that_is_not_a_socket_is_not_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    std::fs::write(&cfg.path, "precious").unwrap();
    let msg = format!("{:#}", SocketSink::bind(cfg.clone(), hello(), Arc::new(ServiceStats::default())).err().unwrap());
    assert!(msg.contains("is not a socket"), "{msg}");
    assert_eq!(std::fs::read_to_string(&cfg.path).unwrap(), "precious");
}

#[test]
fn an_unusable_directory_is_a_clear_error() {
    // Root ignores permission bits, so use failures root cannot bypass (see the file's docs).
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir/zipvox.sock");
    let cfg = SocketConfig { path: missing.clone(), ..SocketConfig::default() };
    let msg = format!("{:#}", SocketSink::bind(cfg, hello(), Arc::new(ServiceStats::default())).err().unwrap());
    println!("{msg}");
    assert!(msg.contains(&missing.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist") && msg.contains("RuntimeDirectory="), "{msg}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let under_file = file.join("zipvox.sock");
    let cfg = SocketConfig { path: under_file.clone(), ..SocketConfig::default() };
    let msg = format!("{:#}", SocketSink::bind(cfg, hello(), Arc::new(ServiceStats::default())).err().unwrap());
    println!("{msg}");
    assert!(msg.contains(&under_file.display().to_string()) && msg.contains("not a directory"), "{msg}");
}

#[test]
fn mode_and_group_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mode_of = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    {
        let (sink, _) = bind(config(dir.path()));
        assert_eq!(mode_of(sink.path()), 0o660, "default mode");
    }
    {
        let (sink, _) = bind(SocketConfig { mode: Some(0o600), group: Some("root".into()), ..config(dir.path()) });
        assert_eq!(mode_of(sink.path()), 0o600);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(sink.path()).unwrap().gid(), 0);
    }
    let cfg = SocketConfig { group: Some("no-such-group-zipvox".into()), ..config(dir.path()) };
    let msg = format!("{:#}", SocketSink::bind(cfg.clone(), hello(), Arc::new(ServiceStats::default())).err().unwrap());
    assert!(msg.contains("\"no-such-group-zipvox\" does not exist"), "{msg}");
    assert!(!cfg.path.exists(), "a failed bind leaves no socket file behind");
}

#[test]
fn shutdown_says_bye_and_removes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (sink, stats) = bind(config(dir.path()));
    let path: PathBuf = sink.path().to_path_buf();
    let mut a = Client::connect_hello(&path);
    let mut b = Client::connect_hello(&path);
    sink.publish(&final_(0, "LAST WORDS"));
    let t = Instant::now();
    sink.shutdown("daemon stopping");
    println!("shutdown took {:?}", t.elapsed());
    for c in [&mut a, &mut b] {
        assert_eq!(c.next().unwrap()["text"], "LAST WORDS", "pending finals are flushed first");
        let v = c.next().unwrap();
        assert_eq!((v["type"].as_str(), v["reason"].as_str()), (Some("bye"), Some("daemon stopping")));
        assert!(c.next().is_none());
    }
    assert!(!path.exists(), "socket file removed");
    assert_eq!(stats.clients.load(Relaxed), 0);
    sink.publish(&final_(1, "IGNORED")); // no panic, no effect
    sink.shutdown("again"); // idempotent
    assert!(UnixStream::connect(&path).is_err());

    // Dropping cleans up too.
    let (sink, _) = bind(config(dir.path()));
    let mut c = Client::connect_hello(sink.path());
    drop(sink);
    assert_eq!(c.next().unwrap()["type"], "bye");
    assert!(!path.exists());
    let mut rest = Vec::new();
    let _ = c.reader.read_to_end(&mut rest);
}
