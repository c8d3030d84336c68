//! zipvox: streaming speech recognition for small Linux boards.
//!
//! The crate is laid out as the stages of the data flow (see README's architecture section):
//! `audio` (sources, ring, resampling) → `frontend` (fbank) → `model` (tract encoder, decoder,
//! joiner) → `search` (greedy, beam, endpoint) → `sink` (socket, serial, stdout), wired together by
//! `recognizer` (one stream) and `service` (the daemon). `cli` holds the subcommands.

pub mod audio;
pub mod cli;
pub mod frontend;
pub mod kernels;
pub mod model;
pub mod recognizer;
pub mod search;
pub mod service;
pub mod sink;
pub mod wyoming;
pub mod textfile;
