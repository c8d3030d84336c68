//! The stateless decoder (prediction network): last `context_size` tokens → `decoder_out`.
//!
//! A context token of -1 means "nothing yet" (icefall's decoder embeds it as zeros); a fresh
//! stream starts from `[-1, …, -1, 0]`, as sherpa-onnx does.

use super::meta::DecoderMeta;
use super::onnx::{OnnxFile, Plan};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct DecoderModel {
    pub meta: DecoderMeta,
    plan: Plan,
    pub out_dim: usize,
}

impl DecoderModel {
    pub fn load(path: &Path) -> Result<Self> {
        let file = OnnxFile::read(path)?;
        let meta = DecoderMeta::parse(&file.metadata, path)?;
        let declared = file.declared_inputs()?;
        if declared.len() != 1 || declared[0].dims.len() != 2 {
            bail!("{}: decoder should have one input y [N, context_size]", path.display());
        }
        let (plan, _) = file.plan(&[(i64::datum_type(), vec![1, meta.context_size])])?;
        let out = plan.model().output_fact(0)?.shape.as_concrete().map(|s| s.to_vec());
        let out_dim = match out.as_deref() {
            Some([1, d]) => *d,
            other => bail!("{}: decoder_out should be [1, dim], found {:?}", path.display(), other),
        };
        Ok(DecoderModel { meta, plan, out_dim })
    }
}

/// Decoder outputs kept per context (the decoder is stateless: same context, same output).
/// Bounded: cleared when full, which costs little as contexts repeat within an utterance.
const CACHE_CAPACITY: usize = 4096;

pub struct DecoderRunner {
    model: Arc<DecoderModel>,
    state: TypedSimpleState,
    cache: HashMap<Vec<i64>, Vec<f32>>,
    pub cache_hits: usize,
}

impl DecoderRunner {
    pub fn new(model: Arc<DecoderModel>) -> Result<Self> {
        let state = model.plan.spawn()?;
        Ok(DecoderRunner { model, state, cache: HashMap::new(), cache_hits: 0 })
    }

    pub fn model(&self) -> &DecoderModel {
        &self.model
    }

    /// Runs the decoder on the last `context_size` tokens; writes `decoder_out` into `out`.
    pub fn run(&mut self, context: &[i64], out: &mut Vec<f32>) -> Result<()> {
        let c = self.model.meta.context_size;
        debug_assert_eq!(context.len(), c);
        out.clear();
        if let Some(hit) = self.cache.get(context) {
            out.extend_from_slice(hit);
            self.cache_hits += 1;
            return Ok(());
        }
        let y = Tensor::from_shape(&[1, c], context)?;
        let result = self.state.run(tvec!(y.into_tvalue())).context("decoder failed")?;
        out.extend_from_slice(result[0].try_as_plain_ram()?.as_slice::<f32>()?);
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(context.to_vec(), out.clone());
        Ok(())
    }
}
