//! Sinks: where recognition events go (UNIX socket clients, a serial line, an MQTT broker,
//! stdout).
//!
//! Every sink takes events without blocking the recognizer: each has bounded queues, and a slow
//! or dead consumer is dropped or skipped, never waited for.

pub mod event;
pub mod mqtt;
pub mod serial;
pub mod socket;

pub use event::{Event, Request};
pub use mqtt::{MqttConfig, MqttSink};
pub use serial::{SerialConfig, SerialFormat, SerialSink};
pub use socket::{SocketConfig, SocketSink};
