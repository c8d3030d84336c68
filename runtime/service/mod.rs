//! The daemon (`zipvox listen`): configuration, threads (capture → recognizer → sinks),
//! signals, systemd readiness and watchdog.

pub mod stats;

pub use stats::ServiceStats;
