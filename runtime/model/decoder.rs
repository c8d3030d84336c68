//! The stateless decoder (prediction network): last `context_size` tokens → `decoder_out`.
//!
//! A context token of -1 means "nothing yet" (icefall's decoder embeds it as zeros); a fresh
//! stream starts from `[-1, …, -1, 0]`, as sherpa-onnx does.

use super::meta::DecoderMeta;
use super::onnx::{BatchPlans, OnnxFile, Plan};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::prelude::*;

pub struct DecoderModel {
    pub meta: DecoderMeta,
    plan: Plan,
    pub out_dim: usize,
    path: PathBuf,
    /// Plans for batches of more than one context (beam search).
    batch_plans: BatchPlans,
}

impl DecoderModel {
    pub fn load(path: &Path) -> Result<Self> {
        let mut file = OnnxFile::read(path)?;
        super::rewrite::ort_order::use_onnxruntime_order(&mut file.proto);
        let meta = DecoderMeta::parse(&file.metadata, path)?;
        let declared = file.declared_inputs()?;
        if declared.len() != 1 || declared[0].dims.len() != 2 {
            bail!("{}: decoder should have one input y [N, context_size]", path.display());
        }
        if let Some(declared_context) = declared[0].dims[1] {
            if declared_context != meta.context_size {
                bail!(
                    "{}: metadata says context_size = {} but the graph's input y takes {} tokens: \
                     the file's metadata is wrong (re-export it, or fix context_size)",
                    path.display(),
                    meta.context_size,
                    declared_context
                );
            }
        }
        let (plan, _) = file.plan(&[(i64::datum_type(), vec![1, meta.context_size])]).map_err(|e| {
            // Typically a contradicting context_size: tract's shape analysis text alone names
            // neither the file nor the likely cause.
            anyhow::anyhow!(
                "{}: the decoder graph cannot run with context_size = {} from its metadata \
                 (wrong metadata or a damaged file): {}",
                path.display(),
                meta.context_size,
                e.root_cause().to_string().lines().next().unwrap_or("")
            )
        })?;
        let out = plan.model().output_fact(0)?.shape.as_concrete().map(|s| s.to_vec());
        let out_dim = match out.as_deref() {
            Some([1, d]) => *d,
            other => bail!("{}: decoder_out should be [1, dim], found {:?}", path.display(), other),
        };
        Ok(DecoderModel { meta, plan, out_dim, path: path.to_path_buf(), batch_plans: BatchPlans::default() })
    }

    /// The plan for a batch of `n` contexts.
    pub fn plan_for_batch(&self, n: usize) -> Result<Plan> {
        if n == 1 {
            return Ok(self.plan.clone());
        }
        self.batch_plans.get_or_build(n, |n| {
            let mut file = OnnxFile::read(&self.path)?;
            super::rewrite::ort_order::use_onnxruntime_order(&mut file.proto);
            let (plan, _) = file
                .plan(&[(i64::datum_type(), vec![n, self.meta.context_size])])
                .with_context(|| format!("{}: decoder plan for batch {n}", self.path.display()))?;
            Ok(plan)
        })
    }
}

/// Decoder outputs kept per context (the decoder is stateless: same context, same output).
/// Bounded: cleared when full, which costs little as contexts repeat within an utterance.
const CACHE_CAPACITY: usize = 4096;

pub struct DecoderRunner {
    model: Arc<DecoderModel>,
    state: TypedSimpleState,
    /// States of the batch plans, by batch size.
    batch_states: HashMap<usize, TypedSimpleState>,
    /// Graph runs (cache misses), for the stats.
    pub runs: usize,
    cache: HashMap<Vec<i64>, Vec<f32>>,
    pub cache_hits: usize,
}

impl DecoderRunner {
    pub fn new(model: Arc<DecoderModel>) -> Result<Self> {
        let state = model.plan.spawn()?;
        Ok(DecoderRunner { model, state, batch_states: HashMap::new(), runs: 0, cache: HashMap::new(), cache_hits: 0 })
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
        self.runs += 1;
        out.extend_from_slice(result[0].try_as_plain_ram()?.as_slice::<f32>()?);
        if self.cache.len() >= CACHE_CAPACITY {
            self.cache.clear();
        }
        self.cache.insert(context.to_vec(), out.clone());
        Ok(())
    }

    /// Runs the decoder on `contexts` (`n × context_size`, row-major); writes `n × out_dim`
    /// into `out`. Cached contexts are copied; the others (each once) run as one batch.
    pub fn run_batch(&mut self, contexts: &[i64], out: &mut Vec<f32>) -> Result<()> {
        let c = self.model.meta.context_size;
        let dim = self.model.out_dim;
        if self.cache.len() + contexts.len() / c > CACHE_CAPACITY {
            self.cache.clear();
        }
        let mut missing: Vec<&[i64]> = Vec::new();
        for ctx in contexts.chunks_exact(c) {
            if self.cache.contains_key(ctx) {
                self.cache_hits += 1;
            } else if !missing.contains(&ctx) {
                missing.push(ctx);
            }
        }
        if !missing.is_empty() {
            let m = missing.len();
            let y = Tensor::from_shape(&[m, c], &missing.concat())?;
            let result = self.batch_state(m)?.run(tvec!(y.into_tvalue())).context("decoder failed")?;
            self.runs += 1;
            let rows = result[0].try_as_plain_ram()?.as_slice::<f32>()?;
            for (ctx, row) in missing.iter().zip(rows.chunks_exact(dim)) {
                self.cache.insert(ctx.to_vec(), row.to_vec());
            }
        }
        out.clear();
        for ctx in contexts.chunks_exact(c) {
            out.extend_from_slice(&self.cache[ctx]);
        }
        Ok(())
    }

    fn batch_state(&mut self, m: usize) -> Result<&mut TypedSimpleState> {
        if m == 1 {
            return Ok(&mut self.state);
        }
        if !self.batch_states.contains_key(&m) {
            let state = self.model.plan_for_batch(m)?.spawn()?;
            self.batch_states.insert(m, state);
        }
        Ok(self.batch_states.get_mut(&m).expect("inserted above"))
    }
}
