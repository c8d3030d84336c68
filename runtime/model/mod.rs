//! The transducer model: discovery of its files, ONNX metadata, and the tract plans of its three
//! parts (encoder, decoder, joiner), plus the token table.
//!
//! Everything here is immutable once loaded and shared between streams through `Arc`; the
//! per-stream mutable parts are the `*Runner` types.

pub mod bpe;
pub mod checksums;
pub mod decoder;
pub mod encoder;
pub mod files;
pub mod joiner;
pub mod meta;
pub mod onnx;
pub mod optimized;
pub mod pinyin;
pub mod ops;
pub mod rewrite;
pub mod tokens;
pub mod units;

pub use decoder::{DecoderModel, DecoderRunner};
pub use encoder::{run_chunks, EncoderModel, EncoderRunner, OpProfile};
pub use files::{FileOverrides, ModelFiles, Precision};

pub use joiner::{JoinerModel, JoinerRunner};
pub use tokens::TokenTable;
pub use units::TokensType;

use crate::search;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to load.
#[derive(Debug, Clone, Default)]
pub struct ModelConfig {
    pub dir: PathBuf,
    pub precision: Precision,
    pub overrides: FileOverrides,
    pub options: LoadOptions,
    /// The modelling units (`--tokens-type`); `None`: detected from the directory.
    pub tokens_type: Option<TokensType>,
}

/// How to prepare the graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    /// Hand subgraphs to zipvox's fused ops (`ops`): onnxruntime's dynamic-quantization matmul
    /// chains, Swoosh activations. Off = tract's own lowering of the plain ONNX graph, for
    /// comparison.
    pub fuse: bool,
    /// Check the files against the directory's `SHA256SUMS`, when it has one
    /// (`checksums`; off with `--no-verify`).
    pub verify: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { fuse: true, verify: true }
    }
}

/// A loaded streaming transducer.
pub struct Transducer {
    pub files: ModelFiles,
    pub encoder: Arc<EncoderModel>,
    pub decoder: Arc<DecoderModel>,
    pub joiner: Arc<JoinerModel>,
    pub tokens: Arc<TokenTable>,
    /// What the tokens are (given, or detected by [`TokensType::detect`]).
    pub tokens_type: TokensType,
    /// Wall time spent loading (parse, analyse, optimize all three parts).
    pub load_time: Duration,
}

impl Transducer {
    pub fn load(config: &ModelConfig) -> Result<Self> {
        let t0 = Instant::now();
        let files = ModelFiles::discover(&config.dir, config.precision, &config.overrides)?;
        if config.options.verify {
            if let Some(sums) = checksums::Sums::load(&files.dir)? {
                let t = Instant::now();
                let mut n = 0;
                for f in [Some(&files.tokens), Some(&files.decoder), Some(&files.joiner), Some(&files.encoder), files.bpe_model.as_ref()]
                    .into_iter()
                    .flatten()
                {
                    n += usize::from(sums.verify(&files.dir, f)?);
                }
                log::debug!("verified {n} files against {} in {:.2?}", checksums::SUMS_FILE, t.elapsed());
            }
        }
        let mut tokens = TokenTable::load(&files.tokens)?;
        let decoder = DecoderModel::load(&files.decoder)?;
        // The zoo ships some tokens.txt files with disambiguation symbols (`#0`, `#1`, …) after
        // the model's vocabulary (the Chinese KWS model has 30); the model never emits them.
        let dropped = tokens.drop_disambiguation_tail(decoder.meta.vocab_size);
        if dropped > 0 {
            log::debug!("{}: ignoring {dropped} disambiguation symbols past vocab_size", files.tokens.display());
        }
        if tokens.len() != decoder.meta.vocab_size {
            bail!(
                "{} has {} tokens but the decoder's vocab_size is {}: tokens.txt does not belong to this model",
                files.tokens.display(),
                tokens.len(),
                decoder.meta.vocab_size
            );
        }
        let has_bpe_file = files.bpe_model.is_some() || config.dir.join("bpe.vocab").is_file();
        let tokens_type = match config.tokens_type {
            Some(t) => t,
            None => {
                let t = TokensType::detect(&tokens, has_bpe_file);
                log::debug!("{}: modelling units detected as {t}", files.tokens.display());
                t
            }
        };
        let joiner = JoinerModel::load(&files.joiner, &config.options)?;
        if joiner.vocab_size != decoder.meta.vocab_size {
            bail!(
                "{} outputs {} logits but the decoder's vocab_size is {}: the parts come from different models",
                files.joiner.display(),
                joiner.vocab_size,
                decoder.meta.vocab_size
            );
        }
        if decoder.out_dim != joiner.dim {
            bail!(
                "{} outputs dim {} but the joiner takes {}: the parts come from different models",
                files.decoder.display(),
                decoder.out_dim,
                joiner.dim
            );
        }
        let encoder = EncoderModel::load(&files.encoder, &config.options)?;
        if encoder.out_dim != joiner.dim {
            bail!(
                "{} outputs dim {} but the joiner takes {}: the parts come from different models",
                files.encoder.display(),
                encoder.out_dim,
                joiner.dim
            );
        }
        let model = Transducer {
            files,
            encoder: Arc::new(encoder),
            decoder: Arc::new(decoder),
            joiner: Arc::new(joiner),
            tokens: Arc::new(tokens),
            tokens_type,
            load_time: Duration::ZERO,
        };
        model.trial_run()?;
        ops::release_thread_scratch();
        crate::service::malloc::release_freed("model loaded");
        Ok(Transducer { load_time: t0.elapsed(), ..model })
    }

    /// Runs one chunk of silence through encoder, decoder and joiner, so that a model that
    /// parses but cannot run (a damaged weight shape, a wrong export) fails here, at start-up
    /// and with the file named, rather than at the first audio (`listen` would have said READY).
    /// Outputs must be finite: NaN weights give NaN logits and a silently empty transcript.
    fn trial_run(&self) -> Result<()> {
        fn finite(what: &Path, xs: &[f32]) -> Result<()> {
            if let Some(i) = xs.iter().position(|x| !x.is_finite()) {
                bail!("{}: trial run gives a non-finite output ({} at index {i}): the file is damaged", what.display(), xs[i]);
            }
            Ok(())
        }
        let enc = &self.encoder;
        let features = vec![0.0f32; enc.meta.chunk_frames * enc.feature_dim()];
        let mut runner = EncoderRunner::new(self.encoder.clone())
            .with_context(|| format!("{}: cannot set up the encoder", self.files.encoder.display()))?;
        let out = runner
            .run_chunk(&features)
            .with_context(|| format!("{}: trial run of the encoder failed (damaged or not a streaming Zipformer)", self.files.encoder.display()))?;
        let enc_out = out.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        finite(&self.files.encoder, &enc_out)?;
        if enc_out.len() < enc.out_dim {
            bail!("{}: trial run gives {} values, less than one frame of {}", self.files.encoder.display(), enc_out.len(), enc.out_dim);
        }
        let mut decoder = DecoderRunner::new(self.decoder.clone())?;
        let context = search::DecoderResult::new(self.decoder.meta.context_size);
        let mut dec_out = Vec::new();
        decoder
            .run(context.context(), &mut dec_out)
            .with_context(|| format!("{}: trial run of the decoder failed", self.files.decoder.display()))?;
        finite(&self.files.decoder, &dec_out)?;
        let mut joiner = JoinerRunner::new(self.joiner.clone())?;
        let mut logits = Vec::new();
        joiner
            .run(&enc_out[..enc.out_dim], &dec_out, &mut logits)
            .with_context(|| format!("{}: trial run of the joiner failed", self.files.joiner.display()))?;
        finite(&self.files.joiner, &logits)?;
        Ok(())
    }

    /// Seconds of audio per encoder output frame (frame shift 10 ms × subsampling).
    pub fn seconds_per_output_frame(&self) -> f32 {
        0.01 * self.encoder.subsampling_factor() as f32
    }
}
