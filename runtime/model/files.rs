//! Model directory discovery: which `encoder*/decoder*/joiner*.onnx` and `tokens.txt` to load.
//!
//! The layout is sherpa-onnx's: one directory holding the three ONNX parts (fp32 and/or
//! `.int8.onnx`), `tokens.txt` and optionally `bpe.model`. The int8 encoder and joiner are
//! preferred when present (that is what the model is shipped for); the decoder defaults to fp32,
//! as sherpa-onnx users run it (it is tiny, and its int8 form loses accuracy for no speed).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Numeric precision of the encoder and joiner files to pick from a model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    #[default]
    Int8,
    Fp32,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "int8" => Ok(Precision::Int8),
            "fp32" | "float" | "f32" => Ok(Precision::Fp32),
            other => Err(format!("unknown precision '{other}' (expected int8 or fp32)")),
        }
    }
}

/// Where each part of a model lives on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub encoder: PathBuf,
    pub decoder: PathBuf,
    pub joiner: PathBuf,
    pub tokens: PathBuf,
    /// SentencePiece model, used to tokenize hotwords and keywords given as plain words.
    pub bpe_model: Option<PathBuf>,
}

/// Explicit per-part overrides (`--encoder`, `--decoder`, `--joiner`).
#[derive(Debug, Clone, Default)]
pub struct FileOverrides {
    pub encoder: Option<PathBuf>,
    pub decoder: Option<PathBuf>,
    pub joiner: Option<PathBuf>,
}

impl ModelFiles {
    /// Finds the parts of the model in `dir`, honouring `precision` and explicit overrides.
    pub fn discover(dir: &Path, precision: Precision, overrides: &FileOverrides) -> Result<Self> {
        let meta = std::fs::metadata(dir).with_context(|| {
            format!("cannot open model directory {}: give --model DIR (or set ZIPVOX_MODEL) to a sherpa-onnx model directory", dir.display())
        })?;
        if !meta.is_dir() {
            bail!(
                "model path {} is not a directory: --model expects the directory holding encoder*.onnx, decoder*.onnx, joiner*.onnx and tokens.txt",
                dir.display()
            );
        }
        let mut onnx = Vec::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list model directory {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list model directory {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".onnx") {
                onnx.push(name);
            }
        }
        onnx.sort();
        let pick = |kind: &str, want_int8: bool, explicit: &Option<PathBuf>| -> Result<PathBuf> {
            if let Some(p) = explicit {
                if !p.is_file() {
                    bail!("--{kind} {}: no such file", p.display());
                }
                return Ok(p.clone());
            }
            let of_kind: Vec<&String> =
                onnx.iter().filter(|n| n.starts_with(kind)).collect();
            let (q, f): (Vec<&String>, Vec<&String>) =
                of_kind.iter().partition(|n| n.ends_with(".int8.onnx"));
            let chosen = if want_int8 { q.first().or(f.first()) } else { f.first().or(q.first()) };
            match chosen {
                Some(n) => Ok(dir.join(n)),
                None => bail!(
                    "model directory {} has no {kind}*.onnx: a sherpa-onnx transducer directory holds encoder*.onnx, decoder*.onnx, joiner*.onnx and tokens.txt",
                    dir.display()
                ),
            }
        };
        let int8 = precision == Precision::Int8;
        let encoder = pick("encoder", int8, &overrides.encoder)?;
        let joiner = pick("joiner", int8, &overrides.joiner)?;
        let decoder = pick("decoder", false, &overrides.decoder)?;
        let tokens = dir.join("tokens.txt");
        if !tokens.is_file() {
            bail!(
                "model directory {} has no tokens.txt: copy the model's tokens.txt beside its ONNX files",
                dir.display()
            );
        }
        let bpe = dir.join("bpe.model");
        Ok(ModelFiles {
            dir: dir.to_path_buf(),
            encoder,
            decoder,
            joiner,
            tokens,
            bpe_model: bpe.is_file().then_some(bpe),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, names: &[&str]) {
        for n in names {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
    }

    #[test]
    fn prefers_int8_encoder_and_joiner_but_fp32_decoder() {
        let d = tempfile::tempdir().unwrap();
        touch(
            d.path(),
            &[
                "encoder-e.onnx", "encoder-e.int8.onnx", "decoder-e.onnx", "decoder-e.int8.onnx",
                "joiner-e.onnx", "joiner-e.int8.onnx", "tokens.txt",
            ],
        );
        let f = ModelFiles::discover(d.path(), Precision::Int8, &Default::default()).unwrap();
        assert!(f.encoder.ends_with("encoder-e.int8.onnx"));
        assert!(f.joiner.ends_with("joiner-e.int8.onnx"));
        assert!(f.decoder.ends_with("decoder-e.onnx"));
        let f = ModelFiles::discover(d.path(), Precision::Fp32, &Default::default()).unwrap();
        assert!(f.encoder.ends_with("encoder-e.onnx"));
        assert!(f.joiner.ends_with("joiner-e.onnx"));
    }

    #[test]
    fn falls_back_to_what_exists_and_reports_missing_parts() {
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), &["encoder-e.onnx", "decoder-e.int8.onnx", "tokens.txt"]);
        let err = ModelFiles::discover(d.path(), Precision::Int8, &Default::default()).unwrap_err();
        assert!(format!("{err:#}").contains("no joiner*.onnx"), "{err:#}");
        touch(d.path(), &["joiner-e.onnx"]);
        let f = ModelFiles::discover(d.path(), Precision::Int8, &Default::default()).unwrap();
        assert!(f.encoder.ends_with("encoder-e.onnx"));
        assert!(f.decoder.ends_with("decoder-e.int8.onnx"));
    }

    #[test]
    fn missing_directory_and_tokens_are_explained() {
        let err = ModelFiles::discover(Path::new("/nonexistent/zipvox"), Precision::Int8, &Default::default())
            .unwrap_err();
        assert!(format!("{err:#}").contains("cannot open model directory"));
        let d = tempfile::tempdir().unwrap();
        touch(d.path(), &["encoder.onnx", "decoder.onnx", "joiner.onnx"]);
        let err = ModelFiles::discover(d.path(), Precision::Int8, &Default::default()).unwrap_err();
        assert!(format!("{err:#}").contains("no tokens.txt"));
    }
}
