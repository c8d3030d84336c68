//! systemd notification protocol (`sd_notify`): a datagram to `$NOTIFY_SOCKET`.
//!
//! Written out rather than linked (libsystemd) because it is one `sendto` and the daemon must
//! also run where systemd is absent: without `NOTIFY_SOCKET` every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
    /// Half of `WATCHDOG_USEC`, when systemd asked for watchdog pings.
    pub watchdog_interval: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            let sock = UnixDatagram::unbound().ok()?;
            // Never let a slow or stuck receiver block the recognizer loop.
            sock.set_nonblocking(true).ok()?;
            Some((sock, path))
        });
        let watchdog_interval = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&us| us > 0)
            .filter(|_| {
                // WATCHDOG_PID, when set, must be us.
                std::env::var("WATCHDOG_PID").map_or(true, |p| p.parse::<u32>().ok() == Some(std::process::id()))
            })
            .map(|us| Duration::from_micros(us / 2));
        Notifier { socket, watchdog_interval }
    }

    /// Sends a state string such as `READY=1` or `WATCHDOG=1`; errors are logged, not fatal.
    pub fn notify(&self, state: &str) {
        let Some((sock, path)) = &self.socket else { return };
        let result = if let Some(abstract_name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
                .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
        } else {
            sock.send_to(state.as_bytes(), path)
        };
        if let Err(e) = result {
            log::warn!("sd_notify {state:?} to {path}: {e}");
        }
    }

    pub fn enabled(&self) -> bool {
        self.socket.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_datagrams_to_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier { socket: Some((UnixDatagram::unbound().unwrap(), path.display().to_string())), watchdog_interval: None };
        n.notify("READY=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
    }

    #[test]
    fn silent_without_systemd() {
        let n = Notifier { socket: None, watchdog_interval: None };
        n.notify("READY=1");
        assert!(!n.enabled());
    }
}
