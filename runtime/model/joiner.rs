//! The joiner: one encoder frame + the decoder output → logits over the vocabulary.

use super::onnx::{BatchPlans, OnnxFile, Plan};
use super::LoadOptions;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct JoinerModel {
    plan: Plan,
    pub dim: usize,
    pub vocab_size: usize,
    path: PathBuf,
    options: LoadOptions,
    /// Plans for batches of more than one row (beam search), built on first use.
    batch_plans: BatchPlans,
}

impl JoinerModel {
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let mut file = OnnxFile::read(path)?;
        if options.fuse {
            file.fuse_int8_matmuls();
            super::rewrite::ort_order::use_onnxruntime_order(&mut file.proto);
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
        Ok(JoinerModel {
            plan,
            dim,
            vocab_size,
            path: path.to_path_buf(),
            options: *options,
            batch_plans: BatchPlans::default(),
        })
    }

    /// The plan for a batch of `n` rows (the graph's batch axis is dynamic; tract plans take
    /// concrete shapes, so each batch size gets its own plan, built once and shared). With an
    /// int8 joiner the activations are quantized per tensor, so a row's logits depend on the
    /// other rows of its batch: beam search batches its hypotheses as sherpa-onnx does.
    pub fn plan_for_batch(&self, n: usize) -> Result<Plan> {
        if n == 1 {
            return Ok(self.plan.clone());
        }
        self.batch_plans.get_or_build(n, |n| {
            let mut file = OnnxFile::read(&self.path)?;
            if self.options.fuse {
                file.fuse_int8_matmuls();
            super::rewrite::ort_order::use_onnxruntime_order(&mut file.proto);
            }
            let shape = vec![n, self.dim];
            let (plan, _) = file
                .plan(&[(f32::datum_type(), shape.clone()), (f32::datum_type(), shape)])
                .with_context(|| format!("{}: joiner plan for batch {n}", self.path.display()))?;
            Ok(plan)
        })
    }
}

pub struct JoinerRunner {
    model: Arc<JoinerModel>,
    state: TypedSimpleState,
    /// States of the batch plans, by batch size.
    batch_states: HashMap<usize, TypedSimpleState>,
}

impl JoinerRunner {
    pub fn new(model: Arc<JoinerModel>) -> Result<Self> {
        let state = model.plan.spawn()?;
        Ok(JoinerRunner { model, state, batch_states: HashMap::new() })
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

    /// Logits for `n` rows at once: `encoder_rows` and `decoder_rows` are `n × dim`
    /// (row-major); `logits` receives `n × vocab_size`.
    pub fn run_batch(&mut self, encoder_rows: &[f32], decoder_rows: &[f32], logits: &mut Vec<f32>) -> Result<()> {
        let d = self.model.dim;
        let n = encoder_rows.len() / d;
        debug_assert_eq!(decoder_rows.len(), n * d);
        if n == 1 {
            return self.run(encoder_rows, decoder_rows, logits);
        }
        if !self.batch_states.contains_key(&n) {
            let state = self.model.plan_for_batch(n)?.spawn()?;
            self.batch_states.insert(n, state);
        }
        let state = self.batch_states.get_mut(&n).expect("inserted above");
        let e = Tensor::from_shape(&[n, d], encoder_rows)?;
        let p = Tensor::from_shape(&[n, d], decoder_rows)?;
        let out = state.run(tvec!(e.into_tvalue(), p.into_tvalue())).context("joiner failed")?;
        logits.clear();
        logits.extend_from_slice(out[0].try_as_plain_ram()?.as_slice::<f32>()?);
        Ok(())
    }
}
