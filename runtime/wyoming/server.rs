//! The Wyoming listener: binds `tcp://HOST:PORT` or `unix:///PATH`, loads the model in the
//! background (so `describe` is answered at once), runs one thread per connection (see the
//! module doc of [`super`] for why), and owns the process: signals, systemd readiness
//! (`READY=1` once listening with the model loaded) and watchdog, the mDNS advertisement.
//!
//! Caps: at most [`WyomingConfig::max_connections`] connections (more get
//! `error{code:"busy"}` and are closed) and `max_streams` streams decoding at once
//! (`session::Slot`). A connection that sends nothing for `idle_timeout` is closed; a reply
//! that cannot be written within [`WRITE_TIMEOUT`] closes the connection.

use super::info::{keyword_names, ServiceDescription};
use super::session::{Engine, End, Session, Shared, Slot};
use super::WyomingConfig;
use crate::model::Transducer;
use crate::search::context_graph::load_hotwords;
use crate::search::keyword::load_keywords;
use crate::search::{DecodingConfig, DecodingMethod};
use crate::service::notify::Notifier;
use crate::service::signals;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A reply that cannot be written for this long ends the connection.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server listens.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// One accepted connection's two halves, and a handle for closing it.
type Halves = (Box<dyn Read + Send>, Box<dyn Write + Send>, Closer);

/// Closes a connection after a bad frame so that the `error` reaches the client: shut down the
/// sending side, then read and drop what the client still sends (at most [`LINGER_BYTES`], for
/// at most [`LINGER_TIME`]) before the socket is closed; closing with unread input would make
/// the kernel send a reset, which can destroy the `error` before the client reads it.
pub enum Closer {
    Tcp(TcpStream),
    Unix(UnixStream),
}

const LINGER_BYTES: usize = 8 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

impl Closer {
    fn linger(&self) {
        let start = Instant::now();
        let mut buf = [0u8; 16384];
        let mut drained = 0;
        let mut read = |f: &mut dyn FnMut(&mut [u8]) -> std::io::Result<usize>| {
            while drained < LINGER_BYTES && start.elapsed() < LINGER_TIME {
                match f(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        };
        match self {
            Closer::Tcp(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut s = s;
                read(&mut |b| s.read(b));
            }
            Closer::Unix(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut s = s;
                read(&mut |b| s.read(b));
            }
        }
    }
}

impl Listener {
    /// Binds `tcp://HOST:PORT` (port 0: any free port) or `unix:///PATH` (a stale socket file
    /// from a previous run is replaced; a live one is an error).
    pub fn bind(uri: &str) -> Result<Listener> {
        if let Some(addr) = uri.strip_prefix("tcp://") {
            let addrs: Vec<SocketAddr> = addr
                .to_socket_addrs()
                .with_context(|| format!("--uri {uri}: cannot resolve '{addr}' (expected tcp://HOST:PORT, e.g. tcp://0.0.0.0:10300)"))?
                .collect();
            let listener = TcpListener::bind(&addrs[..]).with_context(|| format!("cannot listen on {uri}"))?;
            Ok(Listener::Tcp(listener))
        } else if let Some(path) = uri.strip_prefix("unix://") {
            if path.is_empty() {
                bail!("--uri {uri}: no socket path (expected unix:///run/zipvox/wyoming.sock)");
            }
            let path = PathBuf::from(path);
            if let Ok(meta) = std::fs::symlink_metadata(&path) {
                if !meta.file_type().is_socket() {
                    bail!("cannot listen on {uri}: {} exists and is not a socket", path.display());
                }
                if UnixStream::connect(&path).is_ok() {
                    bail!("cannot listen on {uri}: another server is listening there");
                }
                std::fs::remove_file(&path).with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
            }
            let listener = UnixListener::bind(&path).with_context(|| format!("cannot listen on {uri}"))?;
            Ok(Listener::Unix(listener, path))
        } else {
            bail!("--uri {uri}: unsupported URI; use tcp://HOST:PORT (e.g. tcp://0.0.0.0:10300) or unix:///PATH")
        }
    }

    /// The bound address as a URI (with the real port when 0 was asked for).
    pub fn uri(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l, _) => l.set_nonblocking(true),
        }
    }

    /// Waits up to `timeout` for a connection.
    fn accept(&self, timeout: Duration, idle: Duration) -> Option<std::io::Result<Halves>> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let fd = match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        };
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::NONE);
        match poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], ms) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        let halves = |r: std::io::Result<Halves>| r;
        Some(match self {
            Listener::Tcp(l) => match l.accept() {
                Ok((s, _)) => halves(tcp_halves(s, idle)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) => Err(e),
            },
            Listener::Unix(l, _) => match l.accept() {
                Ok((s, _)) => halves(unix_halves(s, idle)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(e) => Err(e),
            },
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn tcp_halves(s: TcpStream, idle: Duration) -> std::io::Result<Halves> {
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(idle))?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    Ok((Box::new(s.try_clone()?), Box::new(s.try_clone()?), Closer::Tcp(s)))
}

fn unix_halves(s: UnixStream, idle: Duration) -> std::io::Result<Halves> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(idle))?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    Ok((Box::new(s.try_clone()?), Box::new(s.try_clone()?), Closer::Unix(s)))
}

/// Loads the model and what is built from it (hotwords, keywords).
fn load_engine(config: &WyomingConfig) -> Result<Engine> {
    crate::kernels::threads::set_threads(config.threads)?;
    let model = Arc::new(Transducer::load(&config.model)?);
    log::info!("model {} loaded in {:.2?} ({})", config.model.dir.display(), model.load_time, model.encoder.meta.describe());
    let method = DecodingMethod::from_name(&config.decoding, config.beam)?;
    let hotwords = match &config.hotwords {
        Some(path) => Some(Arc::new(load_hotwords(path, &model, config.hotwords_score)?)),
        None => None,
    };
    let decoding = DecodingConfig { method, hotwords };
    crate::search::make_search(&model, &decoding)?;
    let keywords = match &config.keywords {
        Some(path) => Some(Arc::new(load_keywords(path, &model, &config.keyword_config)?)),
        None => None,
    };
    Ok(Engine { model, decoding, keywords })
}

/// Runs the server until SIGTERM/SIGINT; returns the exit status.
pub fn run(config: WyomingConfig) -> Result<i32> {
    if config.max_streams == 0 {
        bail!("--max-streams must be at least 1");
    }
    if config.idle_timeout.is_zero() {
        bail!("--idle-timeout must be more than 0 s");
    }
    signals::install()?;
    let notifier = Notifier::from_env();
    // What `info` says is known before the model loads.
    let wake_words = match &config.keywords {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read keywords file {}", path.display()))?;
            let names = keyword_names(&text);
            if names.is_empty() {
                bail!("keywords file {}: no keywords in it", path.display());
            }
            names
        }
        None => vec![],
    };
    if !config.model.dir.is_dir() {
        bail!("model directory {} does not exist (give --model DIR)", config.model.dir.display());
    }
    let model_name = config.model.dir.canonicalize().unwrap_or(config.model.dir.clone());
    let model_name = model_name.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    let description = ServiceDescription {
        model_name,
        language: config.language.clone(),
        wake_words,
        endpointing: config.endpointing,
    };
    let listener = Listener::bind(&config.uri)?;
    listener.set_nonblocking()?;
    // Tests and scripts read the real address (port 0 picks one) from this line.
    eprintln!("zipvox wyoming: listening on {}", listener.uri());
    log::info!("listening on {} (at most {} streams)", listener.uri(), config.max_streams);
    let advert = match (&config.zeroconf, listener.tcp_addr()) {
        (None, _) => None,
        (Some(_), None) => bail!("--zeroconf needs a tcp:// URI (mDNS advertises a TCP port)"),
        (Some(name), Some(addr)) => Some(super::zeroconf::Advertisement::start(name, addr)?),
    };
    let shared = Arc::new(Shared {
        config,
        description,
        model: Default::default(),
        streams: Default::default(),
        connections: Default::default(),
    });
    {
        let shared = shared.clone();
        std::thread::Builder::new().name("model-load".into()).spawn(move || {
            let t0 = Instant::now();
            let result = load_engine(&shared.config).map_err(|e| crate::cli::one_line(&e));
            if result.is_ok() {
                log::info!("ready after {:.2?}", t0.elapsed());
            }
            shared.model.set(result);
        })?;
    }

    let mut ready = false;
    let mut last_ping = Instant::now();
    let idle = shared.config.idle_timeout;
    while !signals::stop_requested() {
        if !ready {
            match shared.model.wait(Duration::ZERO) {
                Ok(_) => {
                    ready = true;
                    notifier.notify("READY=1");
                }
                Err(e) if e.starts_with("the model failed") => bail!("{}", e.trim_start_matches("the model failed to load: ")),
                Err(_) => {}
            }
        }
        if let Some(interval) = notifier.watchdog_interval {
            if last_ping.elapsed() >= interval {
                notifier.notify("WATCHDOG=1");
                last_ping = Instant::now();
            }
        }
        let wait = if ready { Duration::from_millis(500) } else { Duration::from_millis(20) };
        let (reader, mut writer, closer) = match listener.accept(wait, idle) {
            None => continue,
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let Some(slot) = Slot::connection(&shared) else {
            let max = shared.config.max_connections();
            log::warn!("refusing a connection: {max} are open");
            #[derive(serde::Serialize)]
            struct Busy<'a> {
                text: &'a str,
                code: &'a str,
            }
            let text = format!("this server has {max} connections open; try again later");
            let _ = writer.write_all(&super::codec::encode_event("error", &Busy { text: &text, code: "busy" }, &[]));
            // No linger here: it would hold up the accept loop.
            drop(closer);
            continue;
        };
        let conn = shared.clone();
        let spawned = std::thread::Builder::new().name("wyoming-conn".into()).spawn(move || {
            let _slot = slot;
            let n = conn.connections.load(SeqCst);
            log::debug!("connection opened ({n} open)");
            let end = Session::new(conn, reader, writer).run();
            match end {
                End::Closed => log::debug!("connection closed by the client"),
                End::Idle => log::info!("closing an idle connection"),
                End::BadFrame(e) => {
                    log::info!("closing a connection after a bad frame: {e}");
                    closer.linger();
                }
                End::Io(e) => log::info!("connection ended: {e}"),
            }
        });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
        }
    }
    log::info!("stopping");
    notifier.notify("STOPPING=1");
    drop(advert);
    drop(listener);
    Ok(0)
}
