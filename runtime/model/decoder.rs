//! The stateless decoder (prediction network): last `context_size` tokens → `decoder_out`.
//!
//! A context token of -1 means "nothing yet" (icefall's decoder embeds it as zeros); a fresh
//! stream starts from `[-1, …, -1, 0]`, as sherpa-onnx does.

use super::meta::DecoderMeta;
use super::onnx::{OnnxFile, Plan};
use anyhow::{bail, Context, Result};
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

pub struct DecoderRunner {
    model: Arc<DecoderModel>,
    state: TypedSimpleState,
}

impl DecoderRunner {
    pub fn new(model: Arc<DecoderModel>) -> Result<Self> {
        let state = model.plan.spawn()?;
        Ok(DecoderRunner { model, state })
    }

    pub fn model(&self) -> &DecoderModel {
        &self.model
    }

    /// Runs the decoder on the last `context_size` tokens; writes `decoder_out` into `out`.
    pub fn run(&mut self, context: &[i64], out: &mut Vec<f32>) -> Result<()> {
        let c = self.model.meta.context_size;
        debug_assert_eq!(context.len(), c);
        let y = Tensor::from_shape(&[1, c], context)?;
        let result = self.state.run(tvec!(y.into_tvalue())).context("decoder failed")?;
        out.clear();
        out.extend_from_slice(result[0].try_as_plain_ram()?.as_slice::<f32>()?);
        Ok(())
    }
}
