//! The files shipped for boards: every config preset parses and validates, and the systemd unit
//! passes `systemd-analyze verify`.

use std::path::{Path, PathBuf};
use std::process::Command;
use zipvox::service::config::ListenConfig;

fn board() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("board")
}

#[test]
fn every_config_preset_is_valid() {
    let mut found = 0;
    for dir in [board(), board().join("rpi4"), board().join("rpi5"), board().join("jetson")] {
        let path = dir.join("zipvox.toml");
        let c = ListenConfig::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
        c.validate().unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
        assert_eq!(c.socket.path.as_deref(), Some(Path::new("/run/zipvox/zipvox.sock")), "{}", path.display());
        found += 1;
    }
    assert_eq!(found, 4);
}

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(board().join("zipvox.service")).unwrap();
    for key in ["Type=notify", "WatchdogSec=", "RuntimeDirectory=zipvox", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "SupplementaryGroups=audio"] {
        assert!(unit.contains(key), "unit lacks {key}");
    }
    verify_unit("zipvox.service", &unit);
}

#[test]
fn wyoming_unit_verifies() {
    let unit = std::fs::read_to_string(board().join("zipvox-wyoming.service")).unwrap();
    for key in ["Type=notify", "WatchdogSec=", "ExecStart=/usr/bin/zipvox wyoming --config /etc/zipvox/zipvox.toml", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "AF_INET"] {
        assert!(unit.contains(key), "unit lacks {key}");
    }
    verify_unit("zipvox-wyoming.service", &unit);
}

fn verify_unit(name: &str, unit: &str) {
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, unit.replace("/usr/bin/zipvox", env!("CARGO_BIN_EXE_zipvox"))).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd) is needed for this test");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{stderr}");
    assert!(!stderr.contains(&format!("{name}:")), "warnings about the unit:\n{stderr}");
}
