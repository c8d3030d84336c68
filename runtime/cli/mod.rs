//! Command-line interface: argument definitions and one module per subcommand.
//!
//! Errors from any subcommand print as one line on stderr (`zipvox: error: …`, the whole context
//! chain joined) and exit with status 2, like clap's own usage errors.

pub mod bench;
pub mod listen;
pub mod info;
pub mod spot;
pub mod text2token;
pub mod transcribe;
pub mod wyoming;

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
    /// Version, target, CPU features detected and the kernels chosen for this CPU.
    Info(info::InfoArgs),
    /// Run the daemon: capture from ALSA, send transcripts to a UNIX socket and/or serial line.
    Listen(listen::ListenArgs),
    /// List ALSA capture devices (names usable as `listen --device`).
    Devices,
    /// Spot keywords in WAV files (sherpa-onnx's keyword spotter).
    Spot(spot::SpotArgs),
    /// Show the model's tokens for keyword/hotword lines (sherpa-onnx's text2token).
    Text2token(text2token::Text2TokenArgs),
    /// Serve speech-to-text and wake words over the Wyoming protocol (Home Assistant).
    Wyoming(wyoming::WyomingArgs),
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
    /// Cores the encoder may use (1: one core per stream). Transcripts do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 1, env = "ZIPVOX_THREADS")]
    pub threads: usize,
    /// Modelling units of the model, for plain-text keywords and hotwords (default: detected
    /// from tokens.txt and bpe.model).
    #[arg(long, value_name = "TYPE", value_parser = crate::model::units::TOKENS_TYPES)]
    pub tokens_type: Option<String>,
    /// Do not check the model files against the directory's SHA256SUMS.
    #[arg(long)]
    pub no_verify: bool,
}

impl ModelArgs {
    /// Sets up the thread pool (`--threads`) and loads the model.
    pub fn load(&self) -> anyhow::Result<crate::model::Transducer> {
        crate::kernels::threads::set_threads(self.threads)?;
        crate::model::Transducer::load(&self.config())
    }

    pub fn config(&self) -> crate::model::ModelConfig {
        crate::model::ModelConfig {
            dir: self.model.clone(),
            precision: self.precision.parse().unwrap_or_default(),
            overrides: crate::model::FileOverrides {
                encoder: self.encoder.clone(),
                decoder: self.decoder.clone(),
                joiner: self.joiner.clone(),
            },
            options: crate::model::LoadOptions { fuse: !self.no_fuse, verify: !self.no_verify },
            tokens_type: self.tokens_type.as_deref().and_then(|t| t.parse().ok()),
        }
    }
}

/// Where `transcribe` and `spot` read audio from: WAV files, or raw PCM on stdin for `-`.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Sample rate of raw 16-bit little-endian PCM read from stdin (`-`).
    #[arg(long, default_value_t = 16000)]
    pub rate: u32,
    /// Channels of raw PCM read from stdin (`-`).
    #[arg(long, default_value_t = 1)]
    pub channels: u16,
}

impl InputArgs {
    /// Reads one input: `-` is raw 16-bit little-endian PCM from stdin, anything else a WAV file.
    pub fn read(&self, path: &std::path::Path) -> anyhow::Result<crate::audio::Audio> {
        if path.as_os_str() == "-" {
            crate::audio::read_raw_s16le(std::io::stdin().lock(), self.rate, self.channels, "stdin")
        } else {
            crate::audio::read_wav(path)
        }
    }

    /// Streams one input through `sink` in blocks of mono 16 kHz samples, keeping nothing (see
    /// [`crate::audio::stream_wav`]). An error of the input comes back as `Ok(Err(e))`, to be
    /// reported and skipped; an error of `sink` as `Err`, to stop the run.
    pub fn stream(
        &self,
        path: &std::path::Path,
        sink: &mut dyn FnMut(&[f32]) -> anyhow::Result<()>,
    ) -> anyhow::Result<anyhow::Result<()>> {
        let mut sink_error = None;
        let mut guarded = |block: &[f32]| -> anyhow::Result<()> {
            sink(block).map_err(|e| {
                sink_error = Some(e);
                anyhow::anyhow!("stopped")
            })
        };
        let input = if path.as_os_str() == "-" {
            let stdin = crate::audio::pcm::StallAsSilence::new(std::io::stdin().lock(), self.rate, self.channels);
            crate::audio::stream_raw_s16le(stdin, self.rate, self.channels, "stdin", &mut guarded)
        } else {
            crate::audio::stream_wav(path, &mut guarded).map(|_| ())
        };
        match sink_error {
            Some(e) => Err(e),
            None => Ok(input),
        }
    }

    /// Runs `f(name, audio)` for each input in order. An input that cannot be read is reported
    /// on stderr (one line) and skipped, and the status becomes 2; errors from `f` stop the run.
    pub fn for_each(
        &self,
        files: &[PathBuf],
        mut f: impl FnMut(&str, crate::audio::Audio) -> anyhow::Result<()>,
    ) -> anyhow::Result<i32> {
        let mut status = 0;
        for path in files {
            match self.read(path) {
                Ok(audio) => f(&path.display().to_string(), audio)?,
                Err(e) => {
                    eprintln!("zipvox: error: {}", one_line(&e));
                    status = 2;
                }
            }
        }
        Ok(status)
    }
}

/// How to search: shared by the subcommands that transcribe.
#[derive(Debug, Clone, Args)]
pub struct DecodingArgs {
    /// Search method: greedy-search, or modified-beam-search (sherpa-onnx's).
    #[arg(long, default_value = "greedy-search", value_name = "METHOD", value_parser = [
        "greedy-search", "greedy", "greedy_search", "modified-beam-search", "modified_beam_search",
    ])]
    pub decoding: String,
    /// Active paths of modified beam search (1..=64).
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = parse_beam)]
    pub beam: usize,
    /// Contextual biasing: one phrase per line, plain text (converted for the model's units)
    /// or the model's tokens, each optionally followed by :SCORE. Needs modified-beam-search.
    #[arg(long, value_name = "FILE")]
    pub hotwords: Option<PathBuf>,
    /// Bonus per hotword token for lines without their own :SCORE (0..=20).
    #[arg(long, default_value_t = 1.5, value_name = "SCORE", value_parser = parse_context_score)]
    pub hotwords_score: f32,
}

impl DecodingArgs {
    /// The decoding config for `model` (reads and tokenizes the hotwords file).
    pub fn config(&self, model: &crate::model::Transducer) -> anyhow::Result<crate::search::DecodingConfig> {
        use crate::search::{context_graph, DecodingMethod};
        let method = DecodingMethod::from_name(&self.decoding, self.beam)?;
        let hotwords = match &self.hotwords {
            None => None,
            Some(_) if method == DecodingMethod::Greedy => {
                anyhow::bail!("--hotwords needs --decoding modified-beam-search")
            }
            Some(path) => Some(std::sync::Arc::new(context_graph::load_hotwords(path, model, self.hotwords_score)?)),
        };
        Ok(crate::search::DecodingConfig { method, hotwords })
    }
}

/// `--beam`: an integer in 1..=[`MAX_ACTIVE_PATHS`](crate::search::MAX_ACTIVE_PATHS).
pub fn parse_beam(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("'{s}' is not a whole number of active paths"))?;
    crate::search::check_beam(n).map_err(|e| e.to_string())?;
    Ok(n)
}

/// `--hotwords-score`, `--keywords-score`: finite, 0..=[`MAX_CONTEXT_SCORE`](crate::search::MAX_CONTEXT_SCORE).
pub fn parse_context_score(s: &str) -> Result<f32, String> {
    let v: f32 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    crate::search::check_context_score("the score", v).map_err(|e| e.to_string())?;
    Ok(v)
}

/// `--keywords-threshold`: a probability in (0, 1].
pub fn parse_probability(s: &str) -> Result<f32, String> {
    let v: f32 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    crate::search::check_probability("the threshold", v).map_err(|e| e.to_string())?;
    Ok(v)
}

/// Runs the parsed command; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Transcribe(args) => transcribe::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Listen(args) => listen::run(&args),
        Command::Devices => listen::devices(),
        Command::Spot(args) => spot::run(&args),
        Command::Text2token(args) => text2token::run(&args),
        Command::Wyoming(args) => wyoming::run(&args),
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
