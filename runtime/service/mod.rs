//! The daemon (`zipvox listen`): configuration, threads (capture → recognizer → sinks),
//! signals, systemd readiness and watchdog.

pub mod config;
pub mod daemon;
pub mod malloc;
pub mod notify;
pub mod signals;
pub mod stats;

pub use stats::ServiceStats;
