//! Command-line interface: argument definitions and one module per subcommand.
//!
//! Errors from any subcommand print as one line on stderr (`zipvox: error: …`, the whole context
//! chain joined) and exit with status 2, like clap's own usage errors.

pub mod bench;
pub mod transcribe;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "zipvox", version, about = "On-device streaming speech recognition (int8 Zipformer transducers through tract)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Transcribe WAV files (or raw 16-bit PCM from stdin with `-`).
    Transcribe(transcribe::TranscribeArgs),
    /// Time the real pipeline on a WAV: load, encoder/joiner/decoder, RTF, peak RSS, GMAC/s.
    Bench(bench::BenchArgs),
}

/// Which model to load: shared by every subcommand that runs one.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model directory in the sherpa-onnx layout (encoder*/decoder*/joiner*.onnx, tokens.txt).
    #[arg(long, env = "ZIPVOX_MODEL", value_name = "DIR")]
    pub model: PathBuf,
    /// Encoder/joiner precision to pick from the directory.
    #[arg(long, default_value = "int8", value_parser = ["int8", "fp32"])]
    pub precision: String,
    /// Use this encoder file instead of the one found in the directory.
    #[arg(long, value_name = "FILE")]
    pub encoder: Option<PathBuf>,
    /// Use this decoder file instead of the one found in the directory.
    #[arg(long, value_name = "FILE")]
    pub decoder: Option<PathBuf>,
    /// Use this joiner file instead of the one found in the directory.
    #[arg(long, value_name = "FILE")]
    pub joiner: Option<PathBuf>,
    /// Run the plain ONNX graph through tract, without zipvox's fused ops
    /// (for comparison).
    #[arg(long)]
    pub no_fuse: bool,
}

impl ModelArgs {
    pub fn config(&self) -> crate::model::ModelConfig {
        crate::model::ModelConfig {
            dir: self.model.clone(),
            precision: self.precision.parse().unwrap_or_default(),
            overrides: crate::model::FileOverrides {
                encoder: self.encoder.clone(),
                decoder: self.decoder.clone(),
                joiner: self.joiner.clone(),
            },
            options: crate::model::LoadOptions { fuse: !self.no_fuse },
        }
    }
}

/// Runs the parsed command; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Transcribe(args) => transcribe::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zipvox: error: {}", one_line(&e));
            2
        }
    }
}

/// The error with its context chain on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}
