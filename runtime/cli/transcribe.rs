//! `zipvox transcribe`: files (or stdin) in, transcripts out.
//!
//! Every input is streamed through one [`Recognizer`] in 0.1 s steps, so memory stays flat
//! however long the input is (no samples, features or whole-input buffers are kept):
//! - `-` (raw PCM on stdin) is endpointed like `listen` (`search::endpoint`, sherpa-onnx's
//!   default rules): each segment's final is printed, and stdout flushed, as its endpoint fires
//!   (`--json`: one object per segment). Segments without text print nothing.
//! - A WAV file prints one transcript. Internally a long file is cut at endpoints
//!   ([`EndpointConfig::for_files`]: only past 30 s of segment, a hard cut at 120 s), which
//!   bounds the search's per-hypothesis token vectors; the transcript joins the segments. A
//!   file under 30 s is one segment, decoded exactly as before.

use super::{DecodingArgs, InputArgs, ModelArgs};
use crate::audio;
use crate::recognizer::{Recognizer, Transcript};
use crate::search::{DecodingConfig, EndpointConfig};
use crate::model::Transducer;
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Samples fed to the recognizer per step, as `listen` does (0.1 s): endpoints are checked
/// after each step.
const STEP_SAMPLES: usize = 1600;

#[derive(Debug, Args)]
pub struct TranscribeArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// Print one JSON object per file (file, text, tokens, timestamps, duration_s, rtf), or per
    /// segment for stdin (file, segment, text, tokens, timestamps, start, end).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub input: InputArgs,
    /// WAV files to transcribe; `-` reads raw S16_LE PCM from stdin and prints each segment
    /// as its endpoint fires.
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

#[derive(Serialize)]
struct JsonSegment<'a> {
    file: &'a str,
    segment: usize,
    text: &'a str,
    tokens: &'a [String],
    timestamps: Vec<f64>,
    start: f64,
    end: f64,
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

fn rounded_times(t: &[f32]) -> Vec<f64> {
    t.iter().map(|&t| round(t as f64, 3)).collect()
}

/// Appends segment `s` to the file's transcript `all`.
fn append_segment(all: &mut Transcript, s: Transcript) {
    if s.text.is_empty() {
        return;
    }
    if !all.text.is_empty() {
        all.text.push(' ');
    }
    all.text.push_str(&s.text);
    all.tokens.extend(s.tokens);
    all.token_ids.extend(s.token_ids);
    all.timestamps.extend(s.timestamps);
}

/// Decodes one input through `rec`, calling `on_final` for every segment the `rules` cut
/// (the last one at end of input included). Returns the 16 kHz samples read, or the input's
/// own error as `Ok(Err(_))`.
fn decode_stream(
    input: &InputArgs,
    path: &std::path::Path,
    model: &Arc<Transducer>,
    decoding: &DecodingConfig,
    rules: &EndpointConfig,
    on_final: &mut dyn FnMut(Transcript) -> Result<()>,
) -> Result<Result<usize>> {
    let mut rec = Recognizer::with_decoding(model.clone(), decoding)?;
    let mut samples = 0usize;
    let read = input.stream(path, &mut |block| {
        samples += block.len();
        for step in block.chunks(STEP_SAMPLES) {
            rec.accept_waveform(step)?;
            if rec.is_endpoint(rules) {
                on_final(rec.finish_segment())?;
            }
        }
        Ok(())
    })?;
    if let Err(e) = read {
        return Ok(Err(e));
    }
    rec.input_finished()?;
    on_final(rec.result())?;
    Ok(Ok(samples))
}

pub fn run(args: &TranscribeArgs) -> Result<i32> {
    let model = Arc::new(args.model.load()?);
    log::info!("model loaded in {:.2?}", model.load_time);
    let decoding = args.decoding.config(&model)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut status = 0;
    let many = args.files.len() > 1;
    for path in &args.files {
        let name = path.display().to_string();
        let t0 = Instant::now();
        let read = if path.as_os_str() == "-" {
            // Live: every final goes out (and is flushed) as its endpoint fires.
            let out = &mut out;
            decode_stream(&args.input, path, &model, &decoding, &EndpointConfig::default(), &mut |t| {
                if t.text.is_empty() {
                    return Ok(());
                }
                if args.json {
                    let line = JsonSegment {
                        file: &name,
                        segment: t.segment,
                        text: &t.text,
                        tokens: &t.tokens,
                        timestamps: rounded_times(&t.timestamps),
                        start: round(t.start as f64, 3),
                        end: round(t.end as f64, 3),
                    };
                    writeln!(out, "{}", serde_json::to_string(&line)?)?;
                } else if many {
                    writeln!(out, "{name}\t{}", t.text)?;
                } else {
                    writeln!(out, "{}", t.text)?;
                }
                out.flush()?;
                Ok(())
            })?
            .map(|_| ())
        } else {
            let mut all = Transcript::default();
            let read = decode_stream(&args.input, path, &model, &decoding, &EndpointConfig::for_files(), &mut |t| {
                append_segment(&mut all, t);
                Ok(())
            })?;
            if let Ok(samples) = read {
                let elapsed = t0.elapsed().as_secs_f64();
                let duration = samples as f64 / audio::MODEL_SAMPLE_RATE as f64;
                if args.json {
                    let line = JsonLine {
                        file: &name,
                        text: &all.text,
                        tokens: &all.tokens,
                        timestamps: rounded_times(&all.timestamps),
                        duration_s: round(duration, 3),
                        rtf: round(if duration > 0.0 { elapsed / duration } else { 0.0 }, 5),
                    };
                    writeln!(out, "{}", serde_json::to_string(&line)?)?;
                } else if many {
                    writeln!(out, "{name}\t{}", all.text)?;
                } else {
                    writeln!(out, "{}", all.text)?;
                }
                out.flush()?;
            }
            read.map(|_| ())
        };
        if let Err(e) = read {
            eprintln!("zipvox: error: {}", super::one_line(&e));
            status = 2;
        }
    }
    Ok(status)
}
