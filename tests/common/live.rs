//! Real parts for the live-service tests: a private PulseAudio whose null sink `zvmic` is the
//! microphone (`scripts/pulse-mic.sh`, paced in real time), a `zipvox listen` child with its
//! log in a file, and socket clients. Included with `#[path = "common/live.rs"] mod live;` beside `mod common;`.
#![allow(dead_code)]

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private PulseAudio whose null sink `zvmic` is the microphone.
pub struct Pulse {
    pub dir: PathBuf,
}

impl Pulse {
    pub fn start() -> Pulse {
        // Unix socket paths are short: keep the dir directly under /tmp.
        let dir = PathBuf::from(format!("/tmp/zvm-{}-{}", std::process::id(), unique()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pulse-mic.sh");
        let out = Command::new("bash").arg(&script).arg("start").arg(&dir).output().expect("run pulse-mic.sh");
        assert!(
            out.status.success(),
            "could not start a private PulseAudio (install pulseaudio, pulseaudio-utils, libasound2-plugins): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Pulse { dir }
    }

    /// Plays a WAV into the microphone (returns the paplay process).
    pub fn play(&self, wav: &Path) -> Child {
        Command::new("paplay")
            .arg("-d")
            .arg("zvmic")
            .arg(wav)
            .env("PULSE_SERVER", format!("unix:{}/pulse/native", self.dir.display()))
            .env("HOME", &self.dir)
            .env("XDG_RUNTIME_DIR", &self.dir)
            .spawn()
            .expect("paplay")
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pulse-mic.sh");
        let _ = Command::new("bash").arg(script).arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A number unique within this test process.
pub fn unique() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A running `zipvox listen` with its stderr captured in a file.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// `notify`: a `NOTIFY_SOCKET` for the daemon (with a 0.4 s watchdog), or none.
    pub fn spawn(home: &Path, args: &[&str], notify: Option<&Path>) -> Daemon {
        let log = home.join(format!("daemon-{}.log", unique()));
        let mut cmd = Command::new(crate::common::zipvox_bin());
        cmd.arg("listen")
            .args(args)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", home)
            .env("RUST_LOG", "info")
            .env_remove("ZIPVOX_MODEL")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(n) = notify {
            cmd.env("NOTIFY_SOCKET", n).env("WATCHDOG_USEC", "400000");
        }
        Daemon { child: cmd.spawn().expect("spawn zipvox listen"), log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> i32 {
        self.signal(Signal::SIGTERM);
        self.wait(Duration::from_secs(20))
    }

    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(t.elapsed() < timeout, "daemon did not exit; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits until the log contains `what` (true) or `timeout` passes (false).
    pub fn wait_log(&self, what: &str, timeout: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if self.log().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects to the daemon's socket, waiting for it to appear.
pub fn connect(path: &Path) -> UnixStream {
    let t = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            return s;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "socket {} never accepted", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads socket events until `bye` or EOF, in a thread.
pub fn collect(stream: UnixStream) -> std::thread::JoinHandle<Vec<Value>> {
    std::thread::spawn(move || {
        let mut events = vec![];
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).expect("each line is JSON");
            let bye = v["type"] == "bye";
            events.push(v);
            if bye {
                break;
            }
        }
        events
    })
}
