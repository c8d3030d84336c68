//! The joiner: one encoder frame + the decoder output → logits over the vocabulary.

use super::onnx::{OnnxFile, Plan};
use super::LoadOptions;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct JoinerModel {
    plan: Plan,
    pub dim: usize,
    pub vocab_size: usize,
}

impl JoinerModel {
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let mut file = OnnxFile::read(path)?;
        if options.fuse {
            file.fuse_int8_matmuls();
        }
        let declared = file.declared_inputs()?;
        if declared.len() != 2 || declared.iter().any(|d| d.dims.len() != 2) {
            bail!("{}: joiner should have two inputs encoder_out [N, dim] and decoder_out [N, dim]", path.display());
        }
        let dim = match (declared[0].dims[1], declared[1].dims[1]) {
            (Some(a), Some(b)) if a == b => a,
            (a, b) => bail!("{}: joiner inputs have dims {:?} and {:?}; expected equal fixed dims", path.display(), a, b),
        };
        if let Some(meta_dim) = file.metadata.get("joiner_dim") {
            if meta_dim.trim() != dim.to_string() {
                bail!("{}: metadata joiner_dim={meta_dim} but the inputs have dim {dim}", path.display());
            }
        }
        let (plan, _) = file.plan(&[(f32::datum_type(), vec![1, dim]), (f32::datum_type(), vec![1, dim])])?;
        let out = plan.model().output_fact(0)?.shape.as_concrete().map(|s| s.to_vec());
        let vocab_size = match out.as_deref() {
            Some([1, v]) => *v,
            other => bail!("{}: joiner logit should be [1, vocab], found {:?}", path.display(), other),
        };
        Ok(JoinerModel { plan, dim, vocab_size })
    }
}

pub struct JoinerRunner {
    model: Arc<JoinerModel>,
    state: TypedSimpleState,
}

impl JoinerRunner {
    pub fn new(model: Arc<JoinerModel>) -> Result<Self> {
        let state = model.plan.spawn()?;
        Ok(JoinerRunner { model, state })
    }

    /// Logits for one encoder frame and one decoder output, written into `logits`.
    pub fn run(&mut self, encoder_frame: &[f32], decoder_out: &[f32], logits: &mut Vec<f32>) -> Result<()> {
        let d = self.model.dim;
        let e = Tensor::from_shape(&[1, d], encoder_frame)?;
        let p = Tensor::from_shape(&[1, d], decoder_out)?;
        let out = self.state.run(tvec!(e.into_tvalue(), p.into_tvalue())).context("joiner failed")?;
        logits.clear();
        logits.extend_from_slice(out[0].try_as_plain_ram()?.as_slice::<f32>()?);
        Ok(())
    }
}
