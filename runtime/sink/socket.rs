//! UNIX socket sink: local programs connect to a stream socket and receive the event protocol
//! (NDJSON, see [`Event`]); they may send requests (`{"cmd":"stats"}`, `{"cmd":"ping"}`).
//!
//! # What it guarantees
//! - Every client first receives the `hello` event, then every event published after it
//!   connected, in order — except partials, which are coalesced: a client that is behind only
//!   gets the newest pending partial, and a final drops the pending partial it supersedes.
//! - Finals, keywords and other non-partial events are never silently lost: each client's queue
//!   holds up to `max_queued_finals` of them; one more and the client is disconnected with a
//!   `{"type":"bye","reason":"too far behind: …"}` (written if its socket has room within
//!   [`DROP_LINGER`]), a warning in the log and `stats.clients_dropped` + 1.
//! - [`SocketSink::publish`] never blocks on, or waits for, any client.
//! - Memory is bounded: at most `max_clients` clients, each with at most `max_queued_finals`
//!   queued events + one partial, and a write buffer that is refilled from that queue only while
//!   under 16 KiB and takes replies only while under [`REPLY_BACKLOG`]; a client's unparsed
//!   request bytes stay under `max_line_bytes` + 4 KiB (one read).
//!
//! # Concurrency design
//! One I/O thread owns the listening socket and every client socket (all non-blocking) and is
//! driven by `poll(2)` plus a wakeup pipe. The publisher (the recognizer thread) serializes the
//! event once into an `Arc<str>`, takes a mutex for the few microseconds it needs to push that
//! pointer onto each client's bounded queue (the I/O thread only ever holds that mutex to move
//! pointers, never across a system call), and writes one byte to the non-blocking wakeup pipe
//! if no wakeup is pending already. The I/O thread moves queued lines into each client's write
//! buffer and writes as much as the socket takes. After every wakeup it repeats "answer the
//! requests read, move queued events, write" until nothing changes, so no work is ever left
//! waiting for an event that will not come (see `IoThread::pump` and `drain_wakeups`).
//!
//! Why one poll thread rather than a writer thread per client: the number of threads (and their
//! stacks) does not grow with clients, a client that never reads costs nothing but its bounded
//! queue, reading requests and writing events for a client happen in one place (no locks around
//! a socket), and the "is this client too far behind" decision is a plain length check made by
//! the publisher. On a 2-core board an extra thread per `socat` would also compete with the
//! recognizer.
//!
//! # Requests
//! One JSON object per line (see [`Request`]). `{"cmd":"stats"}` is answered with
//! `{"type":"stats",…}` ([`ServiceStats::snapshot`]), `{"cmd":"ping"}` with `{"type":"pong"}`.
//! Anything else gets `{"type":"error","message":…}` and the client stays connected. A line
//! longer than `max_line_bytes` gets an error and the client is closed. Replies are written
//! before further requests are read once [`REPLY_BACKLOG`] bytes are unwritten, so a client
//! that sends requests without reading the replies only stalls itself.
//!
//! # The socket file
//! [`SocketSink::bind`] replaces a stale socket file (left by a crash: connecting to it is
//! refused) but refuses to start when another process is listening on it, and never deletes
//! anything that is not a socket. Mode and group are applied after `bind(2)`; until then the
//! file has the umask's mode (with the usual umask 022, only the owner can connect during that
//! instant). The file is removed on shutdown (only if it is still the one this sink created).

use super::event::{Event, Request};
use crate::service::ServiceStats;
use anyhow::{anyhow, bail, Context, Result};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{send, MsgFlags};
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where the daemon listens by default (systemd: `RuntimeDirectory=zipvox`).
pub const DEFAULT_SOCKET_PATH: &str = "/run/zipvox/zipvox.sock";
/// How long a client being disconnected (too far behind, over-long request) is given to take
/// the rest of its current line and the bye/error line before its socket is closed.
pub const DROP_LINGER: Duration = Duration::from_secs(2);
/// How long [`SocketSink::shutdown`] spends, at most, flushing pending events and byes.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_millis(200);
/// Unwritten bytes in a client's write buffer above which its requests are not read (replies
/// back-pressure the client's own requests).
pub const REPLY_BACKLOG: usize = 16 * 1024;
/// Queued events are moved into a client's write buffer only while less than this is unwritten.
const PULL_BELOW: usize = 16 * 1024;
/// Bytes read from a client per readiness event.
const READ_CHUNK: usize = 4096;

/// `[socket]` in the daemon config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketConfig {
    /// The socket file.
    pub path: PathBuf,
    /// File mode of the socket (connecting needs write permission). `None`: leave what
    /// `bind(2)` created (the umask decides). Default `0o660`.
    pub mode: Option<u32>,
    /// Group to give the socket file to (by name, or a numeric gid), e.g. the group of the
    /// programs that read transcripts. Default: unchanged (the service's group).
    pub group: Option<String>,
    /// Finals/keywords (and other non-partial events) queued for one client before it is
    /// disconnected as too far behind.
    pub max_queued_finals: usize,
    /// Longest request line a client may send.
    pub max_line_bytes: usize,
    /// Clients connected at once; more are told `bye` ("too many clients") and closed.
    pub max_clients: usize,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            path: PathBuf::from(DEFAULT_SOCKET_PATH),
            mode: Some(0o660),
            group: None,
            max_queued_finals: 256,
            max_line_bytes: 4096,
            max_clients: 64,
        }
    }
}

/// The socket sink: see the module docs. `Send + Sync`; share it (e.g. in an `Arc`) between the
/// recognizer thread (publishing) and the thread that stops the daemon.
pub struct SocketSink {
    shared: Arc<Shared>,
    path: PathBuf,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    hub: Mutex<Hub>,
    wake_w: OwnedFd,
    wake_pending: AtomicBool,
    stats: Arc<ServiceStats>,
    max_queued: usize,
    high_water: AtomicUsize,
}

#[derive(Default)]
struct Hub {
    outboxes: HashMap<u64, Outbox>,
    shutdown: Option<String>,
}

/// Events waiting for one client. `partial` comes logically after `queue`.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Arc<str>>,
    partial: Option<Arc<str>>,
    /// Set by the publisher when `queue` would exceed the bound; the I/O thread disconnects.
    overflow: bool,
}

impl Shared {
    fn hub(&self) -> MutexGuard<'_, Hub> {
        // Nothing is left half-updated under this lock, so a poisoned one is still consistent.
        self.hub.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            // EAGAIN: the pipe is full, so the I/O thread has wakeups pending anyway.
            let _ = nix::unistd::write(&self.wake_w, &[1u8]);
        }
    }
}

impl SocketSink {
    /// Creates the socket file (replacing a stale one), applies mode and group, and starts the
    /// I/O thread. `hello` is sent first to every client.
    pub fn bind(config: SocketConfig, hello: Event, stats: Arc<ServiceStats>) -> Result<SocketSink> {
        if config.max_queued_finals == 0 || config.max_line_bytes == 0 || config.max_clients == 0 {
            bail!("socket config: max_queued_finals, max_line_bytes and max_clients must be at least 1");
        }
        let (listener, file) = bind_listener(&config)?;
        listener.set_nonblocking(true).context("setting the listening socket non-blocking")?;
        let (wake_r, wake_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC)
            .context("creating the socket sink's wakeup pipe")?;
        let shared = Arc::new(Shared {
            hub: Mutex::new(Hub::default()),
            wake_w,
            wake_pending: AtomicBool::new(false),
            stats,
            max_queued: config.max_queued_finals,
            high_water: AtomicUsize::new(0),
        });
        let path = config.path.clone();
        let io = IoThread {
            shared: shared.clone(),
            listener: Some(listener),
            file: Some(file),
            wake_r,
            conns: Vec::new(),
            next_id: 0,
            hello: hello.to_line().into_bytes(),
            cfg: config,
            accept_paused_until: None,
            shutdown_deadline: None,
            again: false,
        };
        let thread = std::thread::Builder::new()
            .name("zipvox-socket".into())
            .spawn(move || io.run())
            .context("starting the socket sink thread")?;
        log::info!("listening on {}", path.display());
        Ok(SocketSink { shared, path, thread: Mutex::new(Some(thread)) })
    }

    /// Queues `event` for every connected client. Never blocks on clients: it serializes the
    /// event, pushes a pointer per client under a short lock and pokes the I/O thread.
    pub fn publish(&self, event: &Event) {
        let line: Arc<str> = event.to_line().into();
        let is_partial = matches!(event, Event::Partial { .. });
        let is_final = matches!(event, Event::Final { .. });
        let max = self.shared.max_queued;
        let mut high = 0;
        let mut wake = false;
        {
            let mut hub = self.shared.hub();
            if hub.shutdown.is_some() {
                return;
            }
            for ob in hub.outboxes.values_mut() {
                if ob.overflow {
                    continue;
                }
                wake = true;
                if is_partial {
                    ob.partial = Some(line.clone());
                    continue;
                }
                if is_final {
                    // Segments are published in order: a pending partial is of this segment.
                    ob.partial = None;
                } else if let Some(p) = ob.partial.take() {
                    ob.queue.push_back(p);
                }
                if ob.queue.len() >= max {
                    ob.overflow = true;
                    ob.queue = VecDeque::new();
                    ob.partial = None;
                    continue;
                }
                ob.queue.push_back(line.clone());
                high = high.max(ob.queue.len());
            }
        }
        self.shared.high_water.fetch_max(high, Ordering::Relaxed);
        if wake {
            self.shared.wake();
        }
    }

    /// Sends `{"type":"bye","reason":reason}` to every client after their pending events
    /// (within [`SHUTDOWN_FLUSH`]), closes them, removes the socket file and stops the I/O
    /// thread. Idempotent; later `publish` calls are ignored. Also done on drop.
    pub fn shutdown(&self, reason: &str) {
        {
            let mut hub = self.shared.hub();
            if hub.shutdown.is_none() {
                hub.shutdown = Some(reason.to_string());
            }
        }
        self.shared.wake();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                log::error!("the socket sink thread panicked");
            }
        }
    }

    /// The socket file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The most non-partial events ever queued for one client (≤ `max_queued_finals`): how
    /// close a client came to being dropped.
    pub fn queue_high_water(&self) -> usize {
        self.shared.high_water.load(Ordering::Relaxed)
    }
}

impl Drop for SocketSink {
    fn drop(&mut self) {
        self.shutdown("daemon stopping");
    }
}

// ---------------------------------------------------------------------------------------------
// Binding

/// The socket file this sink created: removed on drop if it is still that file.
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(md) = std::fs::symlink_metadata(&self.path) {
            if md.dev() == self.dev && md.ino() == self.ino {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    log::warn!("cannot remove socket {}: {e}", self.path.display());
                }
            }
        }
    }
}

fn bind_listener(cfg: &SocketConfig) -> Result<(UnixListener, SocketFile)> {
    let path = &cfg.path;
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match std::fs::symlink_metadata(path) {
        Ok(md) if !md.file_type().is_socket() => {
            bail!("{shown} exists and is not a socket; refusing to replace it (remove it, or choose another socket path)")
        }
        Ok(_) => match probe_listening(path) {
            Ok(true) => bail!(
                "another zipvox is already listening on {shown} (stop it first, or give this one another socket path)"
            ),
            Ok(false) => {
                log::info!("removing stale socket {shown} (left by a previous run)");
                std::fs::remove_file(path).with_context(|| format!("cannot remove stale socket {shown}"))?;
            }
            Err(e) => return Err(anyhow!("cannot tell whether another process listens on {shown}: {e}")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(explain_bind_error(e, path, dir)),
    }
    let listener = UnixListener::bind(path).map_err(|e| explain_bind_error(e, path, dir))?;
    let md = std::fs::symlink_metadata(path).with_context(|| format!("cannot stat the new socket {shown}"))?;
    let file = SocketFile { path: path.clone(), dev: md.dev(), ino: md.ino() };
    if let Some(mode) = cfg.mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set mode {mode:o} on socket {shown}"))?;
    }
    if let Some(group) = &cfg.group {
        let gid = match nix::unistd::Group::from_name(group) {
            Ok(Some(g)) => g.gid,
            Ok(None) => match group.parse::<u32>() {
                Ok(n) => nix::unistd::Gid::from_raw(n),
                Err(_) => bail!(
                    "socket group {group:?} does not exist (create it with `groupadd {group}`, or change `group` in the socket config)"
                ),
            },
            Err(e) => bail!("cannot look up socket group {group:?}: {e}"),
        };
        nix::unistd::chown(path.as_path(), None, Some(gid)).map_err(|e| {
            anyhow!("cannot give socket {shown} to group {group:?}: {e} (the service must run as root or as a member of that group)")
        })?;
    }
    Ok((listener, file))
}

/// Whether a process accepts connections on the socket at `path` (non-blocking connect, so a
/// live daemon with a full backlog cannot hang us: EAGAIN counts as listening).
fn probe_listening(path: &Path) -> std::result::Result<bool, Errno> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    let addr = UnixAddr::new(path)?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(Errno::EAGAIN) | Err(Errno::EINPROGRESS) => Ok(true),
        Err(Errno::ECONNREFUSED) => Ok(false),
        Err(e) => Err(e),
    }
}

fn explain_bind_error(e: io::Error, path: &Path, dir: &Path) -> anyhow::Error {
    let (p, d) = (path.display(), dir.display());
    let hint = "e.g. with systemd `RuntimeDirectory=zipvox` and the socket at /run/zipvox/zipvox.sock";
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT) => anyhow!("cannot create socket {p}: directory {d} does not exist (create it, {hint})"),
        Some(Errno::ENOTDIR) => anyhow!("cannot create socket {p}: {d} (or one of its parents) is not a directory"),
        Some(Errno::EACCES) | Some(Errno::EPERM) | Some(Errno::EROFS) => {
            anyhow!("cannot create socket {p}: directory {d} is not writable by this user ({e}); use a writable directory, {hint}")
        }
        Some(Errno::EADDRINUSE) => anyhow!("cannot create socket {p}: it appeared while binding (is another zipvox starting?)"),
        _ if e.kind() == io::ErrorKind::InvalidInput => {
            anyhow!("cannot create socket {p}: {e} (UNIX socket paths are limited to 107 bytes)")
        }
        _ => anyhow!("cannot create socket {p}: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The I/O thread

struct Conn {
    id: u64,
    stream: UnixStream,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    /// The client shut down its sending side (EOF): keep writing to it.
    read_closed: bool,
    /// Being disconnected: write what is in `wbuf` until then, read nothing.
    closing: Option<Instant>,
    dead: bool,
    /// The bytes sent so far end with a complete line (`wbuf` may start mid-line after a
    /// compaction, so `wpos == 0` does not tell).
    at_line_start: bool,
}

impl Conn {
    fn unwritten(&self) -> usize {
        self.wbuf.len() - self.wpos
    }

    fn wants_read(&self) -> bool {
        !self.read_closed && self.closing.is_none() && !self.dead && self.unwritten() < REPLY_BACKLOG
    }

    fn push_line(&mut self, line: &[u8]) {
        if self.wpos > 0 && self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        }
        self.wbuf.extend_from_slice(line);
    }

    /// Writes as much as the socket takes without blocking; the number of bytes written.
    fn flush(&mut self) -> usize {
        let mut written = 0;
        while self.wpos < self.wbuf.len() && !self.dead {
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match send(self.stream.as_raw_fd(), &self.wbuf[self.wpos..], flags) {
                Ok(n) => {
                    self.wpos += n;
                    written += n;
                    if n > 0 {
                        self.at_line_start = self.wbuf[self.wpos - 1] == b'\n';
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => {
                    log::debug!("socket client {}: write failed: {e}", self.id);
                    self.dead = true;
                }
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos >= PULL_BELOW {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        written
    }

    /// Starts disconnecting: keeps only the rest of the line being written, then `last`.
    fn close_with(&mut self, last: &Event, deadline: Instant) {
        let keep = if self.at_line_start {
            self.wpos
        } else {
            match self.wbuf[self.wpos..].iter().position(|&b| b == b'\n') {
                Some(i) => self.wpos + i + 1,
                None => self.wbuf.len(),
            }
        };
        self.wbuf.truncate(keep);
        self.push_line(last.to_line().as_bytes());
        self.closing = Some(deadline);
        self.rbuf = Vec::new();
    }
}

struct IoThread {
    shared: Arc<Shared>,
    listener: Option<UnixListener>,
    file: Option<SocketFile>,
    wake_r: OwnedFd,
    conns: Vec<Conn>,
    next_id: u64,
    hello: Vec<u8>,
    cfg: SocketConfig,
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    /// Work was left over: poll without sleeping.
    again: bool,
}

impl IoThread {
    fn run(mut self) {
        loop {
            if self.shutdown_deadline.is_none() {
                let reason = self.shared.hub().shutdown.clone();
                if let Some(reason) = reason {
                    self.begin_shutdown(&reason);
                }
            }
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || Instant::now() >= deadline {
                    break;
                }
            }
            let revents = self.wait();
            // revents[0]: wakeup pipe, [1]: listener (if polled), then one per conn.
            let Some(revents) = revents else { continue };
            if revents[0].contains(PollFlags::POLLIN) {
                self.drain_wakeups();
            }
            let listener_ready = self.listener_polled() && revents[1].intersects(PollFlags::POLLIN | PollFlags::POLLERR);
            let first_conn = if self.listener_polled() { 2 } else { 1 };
            let n_polled = revents.len() - first_conn;
            for i in 0..n_polled.min(self.conns.len()) {
                let ev = revents[first_conn + i];
                self.on_ready(i, ev);
            }
            if listener_ready {
                self.accept_all();
            }
            // Answer requests, move queued events into write buffers and write, until nothing
            // changes. Stopping earlier could strand work with nothing left to wake us: a flush
            // that brings a write buffer under PULL_BELOW must be followed by a pull (the
            // events' wakeup is spent), and replies that drained by the requests held back
            // behind them (their input was read long ago). Still busy after 8 rounds (a client
            // reading as fast as we write): poll without sleeping and come back.
            self.again = true;
            for _ in 0..8 {
                if !self.pump() {
                    self.again = false;
                    break;
                }
            }
            self.reap();
        }
        // Stopping: whatever is left is closed now.
        let stats = self.shared.stats.clone();
        for c in self.conns.drain(..) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            stats.clients.fetch_sub(1, Ordering::Relaxed);
        }
        self.listener = None;
        self.file = None;
    }

    /// One round of work that needs no readiness event; whether anything changed.
    fn pump(&mut self) -> bool {
        let mut progress = false;
        let max_line = self.cfg.max_line_bytes;
        for c in &mut self.conns {
            if !c.dead && c.closing.is_none() && c.unwritten() < REPLY_BACKLOG && !c.rbuf.is_empty() {
                let before = c.rbuf.len();
                handle_requests(c, max_line, &self.shared.stats);
                progress |= c.rbuf.len() != before || c.closing.is_some();
            }
        }
        progress |= self.sync_outboxes();
        for c in &mut self.conns {
            progress |= c.flush() > 0;
        }
        progress
    }

    fn listener_polled(&self) -> bool {
        self.listener.is_some() && self.accept_paused_until.is_none_or(|t| Instant::now() >= t)
    }

    /// One `poll(2)`; `None` if interrupted.
    fn wait(&mut self) -> Option<Vec<PollFlags>> {
        let now = Instant::now();
        let mut deadline: Option<Instant> = self.shutdown_deadline;
        if let Some(t) = self.accept_paused_until {
            if t > now {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            } else {
                self.accept_paused_until = None;
            }
        }
        for c in &self.conns {
            if let Some(t) = c.closing {
                deadline = Some(deadline.map_or(t, |d| d.min(t)));
            }
        }
        let timeout = match deadline {
            _ if self.again => PollTimeout::ZERO,
            None => PollTimeout::NONE,
            Some(d) => {
                let ms = d.saturating_duration_since(now).as_millis() + 1;
                PollTimeout::try_from(ms.min(60_000) as u32).unwrap_or(PollTimeout::MAX)
            }
        };
        let listener_polled = self.listener_polled();
        let mut fds = Vec::with_capacity(2 + self.conns.len());
        fds.push(PollFd::new(self.wake_r.as_fd(), PollFlags::POLLIN));
        if listener_polled {
            if let Some(l) = &self.listener {
                fds.push(PollFd::new(l.as_fd(), PollFlags::POLLIN));
            }
        }
        for c in &self.conns {
            let mut flags = PollFlags::empty();
            if c.wants_read() {
                flags |= PollFlags::POLLIN;
            }
            if c.unwritten() > 0 {
                flags |= PollFlags::POLLOUT;
            }
            // POLLHUP / POLLERR are reported even with no flags: a vanished client is noticed.
            fds.push(PollFd::new(c.stream.as_fd(), flags));
        }
        match poll(&mut fds, timeout) {
            Ok(_) => Some(fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect()),
            Err(Errno::EINTR) => None,
            Err(e) => {
                log::error!("socket sink: poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                None
            }
        }
    }

    /// Empties the wakeup pipe, then re-arms wakeups. In this order: a publisher that still
    /// saw a wakeup pending pushed its event before this `swap`, so the outboxes are looked at
    /// after it; one that sees it cleared writes a new byte, which the pipe keeps for the next
    /// `poll`. (Clearing first would let a byte be drained while the flag stays set: every
    /// later publish would skip the wakeup and the thread would sleep forever.)
    fn drain_wakeups(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(n) = nix::unistd::read(&self.wake_r, &mut buf) {
            if n < buf.len() {
                break;
            }
        }
        self.shared.wake_pending.swap(false, Ordering::SeqCst);
    }

    fn on_ready(&mut self, i: usize, ev: PollFlags) {
        let max_line = self.cfg.max_line_bytes;
        let stats = self.shared.stats.clone();
        let c = &mut self.conns[i];
        if c.dead {
            return;
        }
        if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            // The client closed (both directions) or the socket failed: nothing can reach it.
            log::debug!("socket client {} disconnected", c.id);
            c.dead = true;
            return;
        }
        if ev.contains(PollFlags::POLLIN) && c.wants_read() {
            let mut buf = [0u8; READ_CHUNK];
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    // EOF on its sending side; a half line left over is discarded.
                    c.read_closed = true;
                    let complete = c.rbuf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                    c.rbuf.truncate(complete);
                }
                Ok(n) => c.rbuf.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(e) => {
                    log::debug!("socket client {}: read failed: {e}", c.id);
                    c.dead = true;
                    return;
                }
            }
            handle_requests(c, max_line, &stats);
        }
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, _)) => self.add_client(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: retry in a second rather than spinning on poll.
                    log::warn!("socket sink: cannot accept a client: {e}");
                    self.accept_paused_until = Some(Instant::now() + Duration::from_secs(1));
                    return;
                }
            }
        }
    }

    fn add_client(&mut self, stream: UnixStream) {
        if let Err(e) = stream.set_nonblocking(true) {
            log::warn!("socket sink: cannot make a client socket non-blocking: {e}");
            return;
        }
        let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
            .map(|c| format!("pid {} uid {}", c.pid(), c.uid()))
            .unwrap_or_else(|_| "unknown peer".into());
        if self.conns.len() >= self.cfg.max_clients {
            log::warn!("socket sink: refusing a client ({peer}): {} clients already connected", self.conns.len());
            let bye = Event::Bye { reason: format!("too many clients (max {})", self.cfg.max_clients) };
            let _ = send(stream.as_raw_fd(), bye.to_line().as_bytes(), MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL);
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        log::info!("socket client {id} connected ({peer})");
        let conn = Conn {
            id,
            stream,
            wbuf: self.hello.clone(),
            wpos: 0,
            rbuf: Vec::new(),
            read_closed: false,
            closing: None,
            dead: false,
            at_line_start: true,
        };
        self.shared.hub().outboxes.insert(id, Outbox::default());
        self.shared.stats.clients.fetch_add(1, Ordering::Relaxed);
        self.shared.stats.clients_total.fetch_add(1, Ordering::Relaxed);
        self.conns.push(conn);
    }

    /// Moves queued events into write buffers; disconnects clients that fell too far behind.
    /// Whether anything moved.
    fn sync_outboxes(&mut self) -> bool {
        let max = self.shared.max_queued;
        let mut moved = false;
        let mut hub = self.shared.hub();
        for c in &mut self.conns {
            if c.dead || c.closing.is_some() {
                continue;
            }
            let Some(ob) = hub.outboxes.get_mut(&c.id) else { continue };
            if ob.overflow {
                hub.outboxes.remove(&c.id);
                self.shared.stats.clients_dropped.fetch_add(1, Ordering::Relaxed);
                log::warn!("socket client {} is too far behind (more than {max} finals unread): disconnecting it", c.id);
                let bye = Event::Bye {
                    reason: format!("too far behind: more than {max} finals/keywords queued unread"),
                };
                c.close_with(&bye, Instant::now() + DROP_LINGER);
                moved = true;
                continue;
            }
            if c.unwritten() < PULL_BELOW {
                for line in ob.queue.drain(..) {
                    c.push_line(line.as_bytes());
                    moved = true;
                }
                if let Some(p) = ob.partial.take() {
                    c.push_line(p.as_bytes());
                    moved = true;
                }
            }
        }
        moved
    }

    /// Removes dead clients and closing ones that are flushed or out of time.
    fn reap(&mut self) {
        let now = Instant::now();
        let mut hub = None;
        let stats = &self.shared.stats;
        self.conns.retain(|c| {
            let gone = c.dead || c.closing.is_some_and(|t| c.unwritten() == 0 || now >= t);
            if gone {
                if !c.dead {
                    // Unread requests left in our receive queue would turn the client's EOF
                    // into ECONNRESET: discard them (bounded) before closing.
                    let mut buf = [0u8; READ_CHUNK];
                    for _ in 0..16 {
                        match (&c.stream).read(&mut buf) {
                            Ok(n) if n > 0 => {}
                            _ => break,
                        }
                    }
                }
                let _ = c.stream.shutdown(std::net::Shutdown::Both);
                hub.get_or_insert_with(|| self.shared.hub()).outboxes.remove(&c.id);
                stats.clients.fetch_sub(1, Ordering::Relaxed);
                log::debug!("socket client {} closed", c.id);
            }
            !gone
        });
    }

    fn begin_shutdown(&mut self, reason: &str) {
        let deadline = Instant::now() + SHUTDOWN_FLUSH;
        self.shutdown_deadline = Some(deadline);
        // No new clients; the file goes first so nobody connects to a dying daemon.
        self.listener = None;
        self.file = None;
        let bye = Event::Bye { reason: reason.to_string() }.to_line();
        let mut hub = self.shared.hub();
        for c in &mut self.conns {
            match c.closing {
                Some(t) => c.closing = Some(t.min(deadline)),
                None if !c.dead => {
                    if let Some(mut ob) = hub.outboxes.remove(&c.id) {
                        if !ob.overflow {
                            for line in ob.queue.drain(..) {
                                c.push_line(line.as_bytes());
                            }
                            if let Some(p) = ob.partial.take() {
                                c.push_line(p.as_bytes());
                            }
                        }
                    }
                    c.push_line(bye.as_bytes());
                    c.closing = Some(deadline);
                }
                None => {}
            }
        }
        hub.outboxes.clear();
        drop(hub);
        for c in &mut self.conns {
            c.flush();
        }
        log::info!("socket sink stopping ({reason}): {} clients told", self.conns.len());
    }
}

/// Answers every complete request line in `c.rbuf` (until replies back up).
fn handle_requests(c: &mut Conn, max_line: usize, stats: &ServiceStats) {
    while c.unwritten() < REPLY_BACKLOG && c.closing.is_none() {
        let Some(nl) = c.rbuf.iter().position(|&b| b == b'\n') else {
            if c.rbuf.len() > max_line {
                too_long(c, max_line);
            }
            return;
        };
        if nl > max_line {
            too_long(c, max_line);
            return;
        }
        let line: Vec<u8> = c.rbuf.drain(..=nl).collect();
        let reply = match Request::parse(&line) {
            Ok(None) => continue,
            Ok(Some(Request::Stats)) => Event::Stats(stats.snapshot()),
            Ok(Some(Request::Ping)) => Event::Pong,
            Err(message) => Event::Error { message },
        };
        c.push_line(reply.to_line().as_bytes());
    }
}

fn too_long(c: &mut Conn, max_line: usize) {
    log::warn!("socket client {} sent a request line longer than {max_line} bytes: closing it", c.id);
    let err = Event::Error { message: format!("request line longer than {max_line} bytes; closing the connection") };
    c.close_with(&err, Instant::now() + DROP_LINGER);
}
