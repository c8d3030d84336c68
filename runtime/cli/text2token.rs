//! `zipvox text2token`: shows how keyword and hotword lines become the model's tokens, the same
//! text as sherpa-onnx's `sherpa-onnx-cli text2token` (tokens separated by single spaces, the
//! `:boost #threshold @display` fields carried through), one output line per input line.
//!
//! Reads only the model directory's `tokens.txt` and `bpe.model` (no ONNX files), with the
//! conversion keyword and hotword files get (`search::phrases`).

use crate::model::bpe::SentencePiece;
use crate::model::{TokenTable, TokensType};
use crate::search::phrases::{read_phrase_file, PhraseEncoder, MAX_FILE_BYTES};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Args)]
pub struct Text2TokenArgs {
    /// Model directory (its tokens.txt, and bpe.model for BPE units).
    #[arg(long, env = "ZIPVOX_MODEL", value_name = "DIR")]
    pub model: PathBuf,
    /// Modelling units (default: detected from tokens.txt and bpe.model).
    #[arg(long, value_name = "TYPE", value_parser = crate::model::units::TOKENS_TYPES)]
    pub tokens_type: Option<String>,
    /// Phrases, one per line (`-`: stdin).
    #[arg(value_name = "FILE")]
    pub input: PathBuf,
}

pub fn run(args: &Text2TokenArgs) -> Result<i32> {
    let tokens_path = args.model.join("tokens.txt");
    let mut tokens = TokenTable::load(&tokens_path)?;
    // The zoo's disambiguation tail (`#0`…) is not part of the vocabulary.
    let vocab = (0..tokens.len()).rev().find(|&i| !is_disambiguation(tokens.symbol(i).unwrap_or(""))).map_or(0, |i| i + 1);
    tokens.drop_disambiguation_tail(vocab);
    let bpe_path = args.model.join("bpe.model");
    let has_bpe_file = bpe_path.is_file() || args.model.join("bpe.vocab").is_file();
    let tokens_type = match &args.tokens_type {
        Some(t) => t.parse()?,
        None => TokensType::detect(&tokens, has_bpe_file),
    };
    let bpe = if tokens_type.uses_bpe() && bpe_path.is_file() { Some(SentencePiece::load(&bpe_path)?) } else { None };
    let encoder = PhraseEncoder::new(Arc::new(tokens), tokens_type, bpe);
    let text = if args.input.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin().lock().take(MAX_FILE_BYTES + 1).read_to_end(&mut buf).context("cannot read stdin")?;
        if buf.len() as u64 > MAX_FILE_BYTES {
            bail!("stdin: more than {MAX_FILE_BYTES} bytes; at most {MAX_FILE_BYTES} are allowed");
        }
        String::from_utf8(buf).context("stdin is not UTF-8 text")?
    } else {
        read_phrase_file(&args.input, "phrases")?
    };
    let lines = encoder.text2token(&text).with_context(|| format!("{}", args.input.display()))?;
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}")?;
    }
    Ok(0)
}

fn is_disambiguation(s: &str) -> bool {
    s.len() > 1 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_digit())
}
