//! mDNS (zeroconf) advertisement of the server as `_wyoming._tcp.local.`, the service type
//! Home Assistant's Wyoming integration discovers (the `wyoming` package's
//! `HomeAssistantZeroconf` registers the same), with a stable instance name (default
//! `zipvox-<hostname>`, `--zeroconf NAME` to choose).
//!
//! Through the `mdns-sd` crate (pure Rust, its own thread, no async runtime). It binds UDP 5353
//! only on the interfaces the server is reachable on: a server on 127.0.0.1 advertises on the
//! loopback interface alone, one on a specific address on that address's interface, one on
//! 0.0.0.0 on every IPv4 interface (with the addresses filled in, and followed when they
//! change). IPv6 is not advertised (the listener is IPv4 in all three cases).

use anyhow::{anyhow, Result};
use mdns_sd::{IfKind, ServiceDaemon, ServiceInfo};
use std::net::{IpAddr, SocketAddr};

pub const SERVICE_TYPE: &str = "_wyoming._tcp.local.";

/// A running advertisement; dropping it withdraws the service.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Advertisement {
    /// Advertises `instance` for the TCP listener at `addr`.
    pub fn start(instance: &str, addr: SocketAddr) -> Result<Self> {
        let err = |e: mdns_sd::Error| anyhow!("zeroconf: {e}");
        let daemon = ServiceDaemon::new().map_err(err)?;
        daemon.disable_interface(IfKind::All).map_err(err)?;
        let host = super::default_instance_name().trim_start_matches("zipvox-").to_string();
        let host_name = format!("{host}.local.");
        let ip = addr.ip();
        let info = match ip {
            IpAddr::V4(v4) if v4.is_unspecified() => {
                daemon.enable_interface(IfKind::IPv4).map_err(err)?;
                ServiceInfo::new(SERVICE_TYPE, instance, &host_name, "", addr.port(), None).map_err(err)?.enable_addr_auto()
            }
            IpAddr::V4(v4) if v4.is_loopback() => {
                daemon.enable_interface(IfKind::LoopbackV4).map_err(err)?;
                ServiceInfo::new(SERVICE_TYPE, instance, &host_name, ip, addr.port(), None).map_err(err)?
            }
            IpAddr::V4(_) => {
                daemon.enable_interface(IfKind::Addr(ip)).map_err(err)?;
                ServiceInfo::new(SERVICE_TYPE, instance, &host_name, ip, addr.port(), None).map_err(err)?
            }
            IpAddr::V6(_) => anyhow::bail!("--zeroconf needs an IPv4 listener (e.g. tcp://0.0.0.0:10300), not {addr}"),
        };
        let fullname = info.get_fullname().to_string();
        daemon.register(info).map_err(err)?;
        log::info!("zeroconf: advertising {fullname} on port {}", addr.port());
        Ok(Advertisement { daemon, fullname })
    }

    pub fn fullname(&self) -> &str {
        &self.fullname
    }
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        // Goodbye packets, then the daemon thread ends; neither may hold up the exit.
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(std::time::Duration::from_millis(500));
        }
        let _ = self.daemon.shutdown();
    }
}
