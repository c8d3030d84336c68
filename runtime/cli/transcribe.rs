//! `zipvox transcribe`: files in, transcripts out.

use super::{DecodingArgs, InputArgs, ModelArgs};
use crate::audio;
use crate::recognizer::transcribe_samples_with;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// Print one JSON object per file: file, text, tokens, timestamps, duration_s, rtf.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub input: InputArgs,
    /// WAV files to transcribe; `-` reads raw S16_LE PCM from stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    file: &'a str,
    text: &'a str,
    tokens: &'a [String],
    timestamps: Vec<f64>,
    duration_s: f64,
    rtf: f64,
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

pub fn run(args: &TranscribeArgs) -> Result<i32> {
    let model = Arc::new(args.model.load()?);
    log::info!("model loaded in {:.2?}", model.load_time);
    let decoding = args.decoding.config(&model)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    args.input.for_each(&args.files, |name, audio| {
        let t0 = Instant::now();
        let transcript = transcribe_samples_with(&model, &audio.samples, 0, &decoding)?;
        let elapsed = t0.elapsed().as_secs_f64();
        let duration = audio.samples.len() as f64 / audio::MODEL_SAMPLE_RATE as f64;
        if args.json {
            let line = JsonLine {
                file: name,
                text: &transcript.text,
                tokens: &transcript.tokens,
                timestamps: transcript.timestamps.iter().map(|&t| round(t as f64, 3)).collect(),
                duration_s: round(duration, 3),
                rtf: round(if duration > 0.0 { elapsed / duration } else { 0.0 }, 5),
            };
            writeln!(out, "{}", serde_json::to_string(&line)?)?;
        } else if args.files.len() == 1 {
            writeln!(out, "{}", transcript.text)?;
        } else {
            writeln!(out, "{name}\t{}", transcript.text)?;
        }
        out.flush()?;
        Ok(())
    })
}
