//! Serial sink: transcripts on a serial line (a UART such as the Raspberry Pi's `/dev/serial0`,
//! or a USB serial adapter), for microcontrollers and terminals.
//!
//! # Line format
//! `format = "text"` (default), one line per event, `\r\n`-terminated, UTF-8, any `\r`/`\n` or
//! other control character inside a text replaced by a space:
//!
//! | event | line |
//! |---|---|
//! | final | `<segment> <text>` e.g. `0 HELLO WORLD` (finals with empty text are skipped) |
//! | partial (only with `partials = true`) | `PARTIAL <segment> <text>` |
//! | keyword | `KEYWORD <keyword>` |
//! | error | `ERROR <message>` |
//! | bye | `BYE <reason>` |
//! | hello | `HELLO <version> <model>` (only if the daemon publishes one) |
//!
//! So a line starting with a digit is a final; anything else starts with an upper-case tag.
//! `format = "ndjson"`: the socket protocol's lines ([`Event::to_line`], `\n`-terminated), with
//! partials only when enabled; stats/pong replies are never sent.
//!
//! # Never blocking the recognizer
//! [`SerialSink::publish`] formats the line and pushes it onto a bounded queue under a short
//! lock; a writer thread drains the queue into the (non-blocking) tty. Partials are coalesced
//! (only the newest pending one is kept; a final drops it). At most `max_queued_lines`
//! finals/keywords/other lines wait; when the line is slower than speech (a low baud rate, a
//! peer holding CTS) or the device is gone, the *oldest* are dropped (counted, and logged once
//! per episode).
//!
//! # Device coming and going
//! When a write fails (EIO/ENXIO/ENODEV: USB adapter unplugged, pty master closed, …) or the
//! device cannot be opened, the writer logs it, drops pending partials, keeps the finals (within
//! the bound; a line cut by the failure is re-sent whole) and reopens with backoff (0.5 s
//! doubling to 10 s) until the device is back — a udev symlink such as `/dev/zipvox-serial` that
//! appears when the adapter is plugged works naturally. While the device is away, partials are
//! not queued at all. [`SerialSink::open`] succeeds when the device is absent (it warns and
//! keeps trying) but fails for what retrying cannot fix: an unsupported baud rate, a path that is
//! not a terminal, a permission problem.
//!
//! # tty settings
//! Opened `O_RDWR | O_NOCTTY | O_NONBLOCK`; raw mode (`cfmakeraw`: no echo, no line editing, no
//! output processing), 8N1, `CLOCAL | CREAD`, no software flow control, hardware flow control
//! (`CRTSCTS`) only with `flow_control = true`, input and output at `baud`.

use super::event::Event;
use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{
    cfgetospeed, cfmakeraw, cfsetspeed, tcgetattr, tcsetattr, BaudRate, ControlFlags, InputFlags, SetArg,
    SpecialCharacterIndices,
};
use serde::Deserialize;
use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The Raspberry Pi's primary UART alias.
pub const DEFAULT_SERIAL_DEVICE: &str = "/dev/serial0";
/// First reopen delay after the device went away; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_START: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How long [`SerialSink::shutdown`] spends, at most, writing what is still queued.
pub const SERIAL_FLUSH: Duration = Duration::from_millis(500);

/// What goes on the line: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SerialFormat {
    #[default]
    Text,
    Ndjson,
}

/// `[serial]` in the daemon config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialConfig {
    /// The tty (a udev symlink is fine; it may appear later).
    pub device: PathBuf,
    /// 1200 … 4000000; see [`baud_rate`].
    pub baud: u32,
    pub format: SerialFormat,
    /// Also send partial results (coalesced, dropped first when the line is slow).
    pub partials: bool,
    /// RTS/CTS hardware flow control.
    pub flow_control: bool,
    /// Finals (and other non-partial lines) kept while the line is slow or the device is away;
    /// beyond that the oldest are dropped.
    pub max_queued_lines: usize,
}

impl Default for SerialConfig {
    fn default() -> Self {
        SerialConfig {
            device: PathBuf::from(DEFAULT_SERIAL_DEVICE),
            baud: 115_200,
            format: SerialFormat::Text,
            partials: false,
            flow_control: false,
            max_queued_lines: 256,
        }
    }
}

/// The termios speed for `baud`, or an error listing the supported rates.
pub fn baud_rate(baud: u32) -> Result<BaudRate> {
    use BaudRate::*;
    Ok(match baud {
        1200 => B1200,
        2400 => B2400,
        4800 => B4800,
        9600 => B9600,
        19_200 => B19200,
        38_400 => B38400,
        57_600 => B57600,
        115_200 => B115200,
        230_400 => B230400,
        460_800 => B460800,
        500_000 => B500000,
        576_000 => B576000,
        921_600 => B921600,
        1_000_000 => B1000000,
        1_152_000 => B1152000,
        1_500_000 => B1500000,
        2_000_000 => B2000000,
        2_500_000 => B2500000,
        3_000_000 => B3000000,
        3_500_000 => B3500000,
        4_000_000 => B4000000,
        other => bail!(
            "unsupported serial baud rate {other} (supported: 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, \
             230400, 460800, 500000, 576000, 921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, \
             3500000, 4000000)"
        ),
    })
}

/// The serial sink: see the module docs. `Send + Sync`.
pub struct SerialSink {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    cfg: SerialConfig,
    rate: BaudRate,
    pending: Mutex<Pending>,
    cv: Condvar,
    connected: AtomicBool,
    dropped: AtomicU64,
}

#[derive(Default)]
struct Pending {
    lines: VecDeque<Vec<u8>>,
    /// Comes logically after `lines`.
    partial: Option<Vec<u8>>,
    /// Set by `shutdown`: write what is queued until then, then stop.
    stop: Option<Instant>,
    /// Dropping lines was logged (reset once the queue drains).
    warned_full: bool,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push_bounded(&self, p: &mut Pending, line: Vec<u8>) {
        if p.lines.len() >= self.cfg.max_queued_lines {
            p.lines.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !p.warned_full {
                p.warned_full = true;
                log::warn!(
                    "serial: {} is not taking data (gone, or flow-controlled): dropping the oldest lines, keeping {}",
                    self.cfg.device.display(),
                    self.cfg.max_queued_lines
                );
            }
        }
        p.lines.push_back(line);
    }
}

/// An open failure, with the errno to tell "not there (yet)" from "misconfigured".
struct PortError {
    errno: Option<Errno>,
    error: anyhow::Error,
}

impl SerialSink {
    /// Validates the config, opens and configures the device if it is there (if not: warns and
    /// keeps trying in the background) and starts the writer thread.
    pub fn open(config: SerialConfig) -> Result<SerialSink> {
        let rate = baud_rate(config.baud)?;
        if config.max_queued_lines == 0 {
            bail!("serial config: max_queued_lines must be at least 1");
        }
        let port = match open_port(&config, rate) {
            Ok(f) => {
                log::info!("serial: {} open at {} baud", config.device.display(), config.baud);
                Some(f)
            }
            Err(PortError { errno, error }) => match errno {
                Some(Errno::ENOENT | Errno::ENXIO | Errno::ENODEV | Errno::EIO | Errno::EBUSY | Errno::EAGAIN | Errno::EINTR) => {
                    log::warn!("serial: {error:#}; will keep trying until it appears");
                    None
                }
                _ => return Err(error),
            },
        };
        let shared = Arc::new(Shared {
            connected: AtomicBool::new(port.is_some()),
            cfg: config,
            rate,
            pending: Mutex::new(Pending::default()),
            cv: Condvar::new(),
            dropped: AtomicU64::new(0),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("zipvox-serial".into())
            .spawn(move || writer(s2, port))
            .map_err(|e| anyhow!("starting the serial writer thread: {e}"))?;
        Ok(SerialSink { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Queues the event's line (if this format sends it). Never blocks on the device.
    pub fn publish(&self, event: &Event) {
        let Some(line) = format_line(&self.shared.cfg, event) else { return };
        {
            let mut p = self.shared.pending();
            if p.stop.is_some() {
                return;
            }
            match event {
                Event::Partial { .. } => {
                    if !self.shared.connected.load(Ordering::Relaxed) {
                        return; // stale by the time the device is back
                    }
                    p.partial = Some(line);
                }
                Event::Final { .. } => {
                    p.partial = None; // superseded
                    self.shared.push_bounded(&mut p, line);
                }
                _ => {
                    if let Some(partial) = p.partial.take() {
                        self.shared.push_bounded(&mut p, partial);
                    }
                    self.shared.push_bounded(&mut p, line);
                }
            }
        }
        self.shared.cv.notify_one();
    }

    /// Writes what is queued (for at most [`SERIAL_FLUSH`]), closes the device and stops the
    /// writer. Idempotent; later `publish` calls are ignored. Also done on drop.
    pub fn shutdown(&self) {
        {
            let mut p = self.shared.pending();
            if p.stop.is_none() {
                p.stop = Some(Instant::now() + SERIAL_FLUSH);
            }
        }
        self.shared.cv.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                log::error!("the serial writer thread panicked");
            }
        }
    }

    /// Whether the device is open right now (false while it is away and being retried).
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Lines dropped because the queue was full (the device was away or too slow).
    pub fn lines_dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for SerialSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The bytes sent for `event`, or `None` if this configuration does not send it.
fn format_line(cfg: &SerialConfig, event: &Event) -> Option<Vec<u8>> {
    if matches!(event, Event::Partial { .. }) && !cfg.partials {
        return None;
    }
    if matches!(event, Event::Stats(_) | Event::Pong) {
        return None;
    }
    if cfg.format == SerialFormat::Ndjson {
        return Some(event.to_line().into_bytes());
    }
    let line = match event {
        Event::Final { segment, text, .. } => {
            if text.trim().is_empty() {
                return None;
            }
            format!("{segment} {}", clean(text))
        }
        Event::Partial { segment, text } => format!("PARTIAL {segment} {}", clean(text)),
        Event::Keyword { keyword, .. } => format!("KEYWORD {}", clean(keyword)),
        Event::Error { message } => format!("ERROR {}", clean(message)),
        Event::Bye { reason } => format!("BYE {}", clean(reason)),
        Event::Hello { version, model, .. } => format!("HELLO {} {}", clean(version), clean(model)),
        Event::Stats(_) | Event::Pong => return None,
    };
    let mut bytes = line.into_bytes();
    bytes.extend_from_slice(b"\r\n");
    Some(bytes)
}

/// One line's worth of text: control characters become spaces.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Opens the device and puts it in raw 8N1 mode at the configured speed.
fn open_port(cfg: &SerialConfig, rate: BaudRate) -> std::result::Result<File, PortError> {
    let dev = cfg.device.display();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(&cfg.device)
        .map_err(|e| {
            let errno = e.raw_os_error().map(Errno::from_raw);
            let hint = match errno {
                Some(Errno::EACCES | Errno::EPERM) => {
                    " (give the service user access to the device, e.g. group dialout: systemd SupplementaryGroups=dialout)"
                }
                _ => "",
            };
            PortError { errno, error: anyhow!("cannot open serial device {dev}: {e}{hint}") }
        })?;
    let fail = |what: &str, e: Errno| {
        let error = if e == Errno::ENOTTY {
            anyhow!("{dev} is not a terminal (a serial device such as /dev/ttyUSB0 or /dev/serial0 is expected)")
        } else {
            anyhow!("cannot {what} serial device {dev}: {e}")
        };
        PortError { errno: Some(e), error }
    };
    let mut t = tcgetattr(file.as_fd()).map_err(|e| fail("read the settings of", e))?;
    cfmakeraw(&mut t);
    t.control_flags.remove(ControlFlags::CSIZE | ControlFlags::PARENB | ControlFlags::CSTOPB | ControlFlags::CRTSCTS);
    t.control_flags.insert(ControlFlags::CS8 | ControlFlags::CLOCAL | ControlFlags::CREAD);
    if cfg.flow_control {
        t.control_flags.insert(ControlFlags::CRTSCTS);
    }
    t.input_flags.remove(InputFlags::IXON | InputFlags::IXOFF | InputFlags::IXANY);
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    cfsetspeed(&mut t, rate).map_err(|e| fail("set the speed of", e))?;
    tcsetattr(file.as_fd(), SetArg::TCSANOW, &t).map_err(|e| fail("configure", e))?;
    match tcgetattr(file.as_fd()) {
        Ok(back) if cfgetospeed(&back) != rate => {
            log::warn!("serial: {dev} did not accept {} baud (the driver kept another speed)", cfg.baud)
        }
        _ => {}
    }
    Ok(file)
}

/// The writer thread: keeps the device open and the queue drained.
fn writer(shared: Arc<Shared>, mut port: Option<File>) {
    let cfg = &shared.cfg;
    let dev = cfg.device.display();
    let mut backoff = BACKOFF_START;
    let mut next_try = Instant::now() + BACKOFF_START;
    // The first open failure was already reported by `open`.
    let mut failure_logged = port.is_none();
    // The line being written: bytes, bytes already written, whether it is a partial.
    let mut current: Option<(Vec<u8>, usize, bool)> = None;
    loop {
        if port.is_none() {
            // Away: wait for the next attempt (or a shutdown, which has nothing to flush to).
            {
                let mut p = shared.pending();
                p.partial = None;
                if current.as_ref().is_some_and(|c| c.2) {
                    current = None;
                }
                loop {
                    if p.stop.is_some() {
                        return;
                    }
                    let now = Instant::now();
                    if now >= next_try {
                        break;
                    }
                    p = shared.cv.wait_timeout(p, next_try - now).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
            match open_port(cfg, shared.rate) {
                Ok(f) => {
                    log::info!("serial: {dev} open at {} baud", cfg.baud);
                    port = Some(f);
                    shared.connected.store(true, Ordering::Relaxed);
                    backoff = BACKOFF_START;
                    failure_logged = false;
                }
                Err(PortError { error, .. }) => {
                    if failure_logged {
                        log::debug!("serial: {error:#}; retrying in {backoff:?}");
                    } else {
                        log::warn!("serial: {error:#}; retrying (every {BACKOFF_MAX:?} at most)");
                        failure_logged = true;
                    }
                    next_try = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        if current.is_none() {
            let mut p = shared.pending();
            loop {
                if let Some(line) = p.lines.pop_front() {
                    current = Some((line, 0, false));
                    break;
                }
                p.warned_full = false;
                if let Some(line) = p.partial.take() {
                    current = Some((line, 0, true));
                    break;
                }
                if p.stop.is_some() {
                    return; // all written
                }
                p = shared.cv.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.stop.is_some_and(|t| Instant::now() >= t) {
                return;
            }
        } else if shared.pending().stop.is_some_and(|t| Instant::now() >= t) {
            return;
        }
        let (Some(f), Some((buf, off, is_partial))) = (port.as_ref(), current.as_mut()) else { continue };
        match nix::unistd::write(f, &buf[*off..]) {
            Ok(n) => {
                *off += n;
                if *off >= buf.len() {
                    current = None;
                }
            }
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(100u8));
            }
            Err(e) => {
                log::warn!("serial: writing to {dev} failed ({e}): the device went away? reopening it");
                if *is_partial {
                    current = None;
                } else {
                    *off = 0; // re-sent whole after the reopen
                }
                port = None;
                shared.connected.store(false, Ordering::Relaxed);
                failure_logged = true;
                next_try = Instant::now() + BACKOFF_START;
                backoff = (BACKOFF_START * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines() {
        let cfg = SerialConfig { partials: true, ..SerialConfig::default() };
        let fin = Event::Final { segment: 3, text: "HI\nTHERE".into(), start: 0.0, end: 1.0, tokens: vec![], timestamps: vec![] };
        assert_eq!(format_line(&cfg, &fin).unwrap(), b"3 HI THERE\r\n");
        let part = Event::Partial { segment: 4, text: "HE".into() };
        assert_eq!(format_line(&cfg, &part).unwrap(), b"PARTIAL 4 HE\r\n");
        let kw = Event::Keyword { keyword: "HEY ZIPVOX".into(), start: 0.0, end: 1.0 };
        assert_eq!(format_line(&cfg, &kw).unwrap(), b"KEYWORD HEY ZIPVOX\r\n");
        let empty = Event::Final { segment: 5, text: " ".into(), start: 0.0, end: 1.0, tokens: vec![], timestamps: vec![] };
        assert!(format_line(&cfg, &empty).is_none());
        assert!(format_line(&SerialConfig::default(), &part).is_none());
        assert!(format_line(&cfg, &Event::Pong).is_none());
    }

    #[test]
    fn baud_rates() {
        assert!(baud_rate(115_200).is_ok());
        assert!(baud_rate(4_000_000).is_ok());
        assert!(baud_rate(12_345).unwrap_err().to_string().contains("unsupported serial baud rate 12345"));
    }
}
