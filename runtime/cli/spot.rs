//! `zipvox spot`: keyword spotting in files, with sherpa-onnx's `KeywordSpotter` semantics.
//!
//! Each file is fed whole, then 0.66 s of silence; the spotter resets after every detection.
//! Output: one line per detection, `FILE<TAB>START<TAB>END<TAB>KEYWORD` (seconds), or with
//! `--json` one object per detection: `{"file","keyword","start","end"}`.

use super::{InputArgs, ModelArgs};
use crate::search::keyword::load_keywords;
use crate::search::{KeywordConfig, KeywordSpotter};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct SpotArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Keywords, one per line: the model's tokens (▁HE LL O ▁WORLD, x iǎo ài t óng x ué) or
    /// plain text (HELLO WORLD, 小爱同学), each optionally followed by :BOOST, #THRESHOLD and
    /// @DISPLAY_TEXT (`zipvox text2token` shows the tokens).
    #[arg(long, value_name = "FILE")]
    pub keywords: PathBuf,
    /// Print one JSON object per detection: file, keyword, start, end.
    #[arg(long)]
    pub json: bool,
    /// Active paths of the keyword search.
    #[arg(long, visible_alias = "max-active-paths", default_value_t = 4, value_name = "N", value_parser = super::parse_beam)]
    pub beam: usize,
    /// Bonus per keyword token for lines without :BOOST.
    #[arg(long, default_value_t = 1.0, value_parser = super::parse_context_score)]
    pub keywords_score: f32,
    /// Mean token probability a detection needs, for lines without #THRESHOLD.
    #[arg(long, default_value_t = 0.25, value_parser = super::parse_probability)]
    pub keywords_threshold: f32,
    /// Blank frames that must follow a keyword before it counts.
    #[arg(long, default_value_t = 1)]
    pub num_trailing_blanks: usize,
    #[command(flatten)]
    pub input: InputArgs,
    /// WAV files to search; `-` reads raw S16_LE PCM from stdin.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

impl SpotArgs {
    pub fn keyword_config(&self) -> KeywordConfig {
        KeywordConfig {
            max_active_paths: self.beam,
            keywords_score: self.keywords_score,
            keywords_threshold: self.keywords_threshold,
            num_trailing_blanks: self.num_trailing_blanks,
        }
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    file: &'a str,
    keyword: &'a str,
    start: f64,
    end: f64,
}

fn round2(x: f32) -> f64 {
    (x as f64 * 100.0).round() / 100.0
}

pub fn run(args: &SpotArgs) -> Result<i32> {
    if args.beam == 0 {
        anyhow::bail!("--beam must be at least 1");
    }
    let model = Arc::new(args.model.load()?);
    let config = args.keyword_config();
    let keywords = Arc::new(load_keywords(&args.keywords, &model, &config)?);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    args.input.for_each(&args.files, |name, audio| {
        let mut spotter = KeywordSpotter::new(model.clone(), keywords.clone(), &config)?;
        let mut found = spotter.accept_waveform(&audio.samples)?;
        found.extend(spotter.input_finished()?);
        for d in &found {
            if args.json {
                let line = JsonLine { file: name, keyword: &d.keyword, start: round2(d.start), end: round2(d.end) };
                writeln!(out, "{}", serde_json::to_string(&line)?)?;
            } else {
                writeln!(out, "{name}\t{:.2}\t{:.2}\t{}", d.start, d.end, d.keyword)?;
            }
        }
        out.flush()?;
        Ok(())
    })
}
