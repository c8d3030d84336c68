//! Sinks: where recognition events go (UNIX socket clients, a serial line, stdout).
//!
//! Every sink takes events without blocking the recognizer: each has bounded queues, and a slow
//! or dead consumer is dropped or skipped, never waited for.

pub mod event;

pub use event::Event;
