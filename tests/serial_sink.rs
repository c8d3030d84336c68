//! The serial sink on a real pseudo-terminal pair: the sink writes to the slave (as it would to
//! /dev/ttyUSB0), the test reads the master side (the wire). No mocks.

use nix::pty::{openpty, OpenptyResult};
use nix::sys::termios::{cfgetispeed, cfgetospeed, tcgetattr, BaudRate, ControlFlags, InputFlags, LocalFlags, OutputFlags};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use zipvox::sink::{Event, SerialConfig, SerialFormat, SerialSink};

fn init_log() {
    let _ = env_logger::builder().is_test(true).try_init();
}

fn final_(segment: usize, text: &str) -> Event {
    Event::Final { segment, text: text.into(), start: 0.0, end: 1.0, tokens: vec![format!(" {text}")], timestamps: vec![0.5] }
}

fn pty() -> (OpenptyResult, PathBuf) {
    let p = openpty(None, None).expect("openpty");
    let path = nix::unistd::ttyname(p.slave.as_fd()).expect("ttyname");
    (p, path)
}

/// Reads one `\n`-terminated line from the master side, waiting up to `timeout`.
fn read_line(master: &OwnedFd, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no complete line within {timeout:?}; got {:?}", String::from_utf8_lossy(&line));
        let mut fds = [nix::poll::PollFd::new(master.as_fd(), nix::poll::PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis().min(1000)).unwrap();
        if nix::poll::poll(&mut fds, ms).unwrap() == 0 {
            continue;
        }
        // One byte at a time: never read past the line.
        let mut b = [0u8; 1];
        match nix::unistd::read(master, &mut b) {
            Ok(1) => {
                line.push(b[0]);
                if b[0] == b'\n' {
                    return String::from_utf8(line).unwrap();
                }
            }
            Ok(_) => panic!("EOF on the master"),
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(e) => panic!("read master: {e}"),
        }
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

const T: Duration = Duration::from_secs(10);

#[test]
fn finals_as_text_lines_on_a_raw_8n1_line() {
    init_log();
    let (p, path) = pty();
    let sink = SerialSink::open(SerialConfig { device: path.clone(), baud: 57_600, ..SerialConfig::default() }).unwrap();
    assert!(sink.is_connected());

    // The tty is configured: raw, 8N1, CLOCAL|CREAD, no flow control, 57600 baud both ways.
    let t = tcgetattr(p.slave.as_fd()).unwrap();
    assert_eq!(cfgetospeed(&t), BaudRate::B57600);
    assert_eq!(cfgetispeed(&t), BaudRate::B57600);
    assert!(t.control_flags.contains(ControlFlags::CS8 | ControlFlags::CLOCAL | ControlFlags::CREAD));
    assert!(!t.control_flags.intersects(ControlFlags::PARENB | ControlFlags::CSTOPB | ControlFlags::CRTSCTS));
    assert!(!t.local_flags.intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG | LocalFlags::IEXTEN));
    assert!(!t.output_flags.contains(OutputFlags::OPOST), "no \\n → \\r\\n translation");
    assert!(!t.input_flags.intersects(InputFlags::IXON | InputFlags::IXOFF | InputFlags::ICRNL));

    sink.publish(&final_(0, "HELLO WORLD"));
    assert_eq!(read_line(&p.master, T), "0 HELLO WORLD\r\n");
    // Partials are off by default; keywords have their own tag; stats/pong never go out.
    sink.publish(&Event::Partial { segment: 1, text: "NOT SENT".into() });
    sink.publish(&Event::Pong);
    sink.publish(&Event::Keyword { keyword: "HEY ZIPVOX".into(), start: 1.0, end: 1.5 });
    sink.publish(&final_(1, "ÇA VA\nBIEN"));
    assert_eq!(read_line(&p.master, T), "KEYWORD HEY ZIPVOX\r\n");
    assert_eq!(read_line(&p.master, T), "1 ÇA VA BIEN\r\n", "UTF-8 kept, newline inside the text flattened");
    sink.shutdown();
}

#[test]
fn ndjson_with_partials_and_flow_control() {
    init_log();
    let (p, path) = pty();
    let sink = SerialSink::open(SerialConfig {
        device: path,
        baud: 921_600,
        format: SerialFormat::Ndjson,
        partials: true,
        flow_control: true,
        ..SerialConfig::default()
    })
    .unwrap();
    let t = tcgetattr(p.slave.as_fd()).unwrap();
    assert_eq!(cfgetospeed(&t), BaudRate::B921600);
    assert!(t.control_flags.contains(ControlFlags::CRTSCTS), "RTS/CTS on request");

    sink.publish(&Event::Partial { segment: 0, text: "HEL".into() });
    let v: serde_json::Value = serde_json::from_str(&read_line(&p.master, T)).unwrap();
    assert_eq!((v["type"].as_str(), v["text"].as_str()), (Some("partial"), Some("HEL")));
    sink.publish(&final_(0, "HELLO"));
    let line = read_line(&p.master, T);
    assert!(line.ends_with("}\n") && !line.ends_with("\r\n"), "{line:?}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!((v["type"].as_str(), v["segment"].as_u64(), v["text"].as_str()), (Some("final"), Some(0), Some("HELLO")));
    assert_eq!(v["tokens"][0], " HELLO");
}

#[test]
fn bad_configurations_are_clear_errors() {
    init_log();
    let (_p, path) = pty();
    let err = SerialSink::open(SerialConfig { device: path, baud: 12_345, ..SerialConfig::default() }).err().unwrap();
    assert!(err.to_string().contains("unsupported serial baud rate 12345"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-tty");
    std::fs::write(&file, "").unwrap();
    let err = SerialSink::open(SerialConfig { device: file, ..SerialConfig::default() }).err().unwrap();
    assert!(format!("{err:#}").contains("is not a terminal"), "{err:#}");
}

#[test]
fn survives_the_device_going_away() {
    init_log();
    let (p, path) = pty();
    let sink = SerialSink::open(SerialConfig { device: path, ..SerialConfig::default() }).unwrap();
    sink.publish(&final_(0, "BEFORE"));
    assert_eq!(read_line(&p.master, T), "0 BEFORE\r\n");
    // The "USB adapter" is unplugged: the slave's writes now fail with EIO.
    drop(p.master);
    for i in 1..20 {
        sink.publish(&final_(i, "INTO THE VOID"));
    }
    wait_for("the sink to notice", T, || !sink.is_connected());
    sink.publish(&final_(20, "STILL ALIVE")); // queued, no panic, no block
    let t = Instant::now();
    sink.shutdown();
    println!("shutdown with the device away took {:?}", t.elapsed());
    assert!(t.elapsed() < T);
}

#[test]
fn reopens_when_the_device_appears() {
    init_log();
    // A udev symlink such as /dev/zipvox-serial that appears when the adapter is plugged in.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("zipvox-serial");
    let sink = SerialSink::open(SerialConfig { device: link.clone(), partials: true, ..SerialConfig::default() })
        .expect("an absent device is retried, not an error");
    assert!(!sink.is_connected());
    sink.publish(&final_(0, "EARLY BIRD")); // kept until the device is there
    sink.publish(&Event::Partial { segment: 1, text: "STALE".into() }); // not kept

    let (p, pts) = pty();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let t = Instant::now();
    assert_eq!(read_line(&p.master, Duration::from_secs(30)), "0 EARLY BIRD\r\n");
    println!("device picked up after {:?}", t.elapsed());
    wait_for("connected", T, || sink.is_connected());
    let tt = tcgetattr(p.slave.as_fd()).unwrap();
    assert_eq!(cfgetospeed(&tt), BaudRate::B115200, "the reopened device is configured too");
    sink.publish(&final_(1, "ON TIME"));
    assert_eq!(read_line(&p.master, T), "1 ON TIME\r\n", "the partial from the absent period never arrives");
    sink.publish(&Event::Partial { segment: 2, text: "NOW".into() });
    assert_eq!(read_line(&p.master, T), "PARTIAL 2 NOW\r\n");
    assert_eq!(sink.lines_dropped(), 0);
}
