//! The streaming encoder: one tract plan, run once per chunk, with its caches carried over.
//!
//! Every graph input other than the features `x` is a state: it starts at zero (as sherpa-onnx
//! initialises them) and is replaced after each chunk by the output named `new_<input>`. The
//! outputs are moved, not copied, into the next chunk's inputs.

use super::meta::{EncoderMeta, ExpectedState};
use super::onnx::{OnnxFile, Plan};
use super::rewrite::swoosh::fuse_swoosh;
use super::rewrite::conv2d::fuse_conv2d;
use super::rewrite::ort_order::use_onnxruntime_order;
use super::rewrite::depthwise_conv::fuse_depthwise_convs;
use super::rewrite::downsample_padding::repair_downsample_padding;
use super::LoadOptions;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tract_onnx::prelude::*;

/// How one state input maps onto the plan.
#[derive(Debug, Clone)]
struct StateSlot {
    name: String,
    input: usize,
    output: usize,
    initial: TValue,
    /// tract types some integer outputs (e.g. `new_processed_lens`) as symbolic dims (TDim);
    /// they are cast back to the input's type before being fed in again.
    cast_to: Option<DatumType>,
}

/// The loaded encoder (immutable, shareable between streams).
pub struct EncoderModel {
    pub meta: EncoderMeta,
    plan: Plan,
    x_input: usize,
    feature_dim: usize,
    out_index: usize,
    /// Encoder frames per chunk and their dimension (e.g. 8 × 320).
    pub out_frames: usize,
    pub out_dim: usize,
    states: Vec<StateSlot>,
    /// Names of downsample Concat nodes repaired at load (see `repair`).
    pub repaired: Vec<String>,
    /// Dynamic-quantization matmul chains replaced by the fused int8 op.
    pub fused_matmuls: usize,
    /// How to run several streams' chunks node by node ([`run_chunks`]); `None` when the plan
    /// needs tract's own run loop (symbolic shapes, stateful ops): streams then run one by one.
    lockstep: Option<Lockstep>,
}

/// The plan's evaluation order with, per step, the values no later step reads (freed as
/// tract's own loop frees them) and whether the node is a fused int8 matmul (batched).
struct Lockstep {
    order: Vec<usize>,
    flush: Vec<Vec<usize>>,
    batched: Vec<bool>,
}

impl Lockstep {
    fn new(plan: &Plan) -> Option<Lockstep> {
        let model = plan.model();
        // Lockstep evaluation skips tract's symbol resolution and stateful-op hooks: only for
        // plans that need neither (the batch-1 plans zipvox builds have concrete shapes). The
        // one state it knows is zipvox's own convolution memo, which needs no hook: each
        // stream's state evaluates it (`compute_one_with_inputs` passes the node's state).
        let concrete = model.nodes().iter().all(|n| n.outputs.iter().all(|o| o.fact.shape.is_concrete()));
        let stateless = model.nodes().iter().all(|n| {
            let ctx = tract_onnx::tract_core::plan::EvalContext::out_of_plan();
            n.op_is::<crate::model::ops::conv2d::Conv2d>() || matches!(n.op.state(&ctx), Ok(None))
        });
        if !concrete || !stateless {
            return None;
        }
        let order = plan.order_without_consts().to_vec();
        let outputs: std::collections::HashSet<usize> = model.outputs.iter().map(|o| o.node).collect();
        let in_order: std::collections::HashSet<usize> = order.iter().copied().collect();
        let mut last_use = std::collections::HashMap::new();
        for (step, &n) in order.iter().enumerate() {
            for i in &model.node(n).inputs {
                last_use.insert(i.node, step);
            }
        }
        let mut flush = vec![vec![]; order.len()];
        for (node, step) in last_use {
            // Constants stay for every turn; outputs are taken after the last step.
            if in_order.contains(&node) && !outputs.contains(&node) {
                flush[step].push(node);
            }
        }
        let batched = order.iter().map(|&n| model.node(n).op_is::<crate::model::ops::quant_matmul::QuantMatMul>()).collect();
        Some(Lockstep { order, flush, batched })
    }
}

impl EncoderModel {
    pub fn load(path: &Path, options: &LoadOptions) -> Result<Self> {
        let mut file = OnnxFile::read(path)?;
        let meta = EncoderMeta::parse(&file.metadata, path)?;
        let repaired = match meta.kind {
            super::meta::EncoderKind::Zipformer2 { .. } => repair_downsample_padding(&mut file.proto)?,
            _ => vec![],
        };
        if !repaired.is_empty() {
            log::warn!(
                "{}: repaired upstream export defect: dropped the spurious padding frame in {} downsample Concat nodes ({})",
                path.display(),
                repaired.len(),
                repaired.join(", ")
            );
        }
        let (fused, swooshes, convs, dense_convs, reductions) = if options.fuse {
            (
                file.fuse_int8_matmuls(),
                fuse_swoosh(&mut file.proto),
                fuse_depthwise_convs(&mut file.proto),
                fuse_conv2d(&mut file.proto),
                use_onnxruntime_order(&mut file.proto),
            )
        } else {
            (0, 0, 0, 0, 0)
        };
        log::debug!(
            "{}: fused {fused} int8 matmul chains, {swooshes} swoosh activations, {convs} depthwise and {dense_convs} dense convs; {reductions} more nodes in onnxruntime's order",
            path.display()
        );
        let declared = file.declared_inputs()?;
        let expected: Vec<ExpectedState> = meta.expected_states();
        let Some(x_input) = declared.iter().position(|d| d.name == "x") else {
            bail!("{}: encoder has no input named 'x': not a sherpa-onnx streaming encoder", path.display());
        };
        let x_decl = &declared[x_input];
        if x_decl.dims.len() != 3 {
            bail!("{}: encoder input x should be [N, T, feature_dim], found rank {}", path.display(), x_decl.dims.len());
        }
        let feature_dim = x_decl.dims[2].with_context(|| format!("{}: encoder input x has no fixed feature dimension", path.display()))?;
        if let Some(t) = x_decl.dims[1] {
            if t != meta.chunk_frames {
                bail!("{}: encoder input x has {t} frames but metadata T={}", path.display(), meta.chunk_frames);
            }
        }
        let mut shapes = Vec::with_capacity(declared.len());
        for (ix, d) in declared.iter().enumerate() {
            let shape = if ix == x_input {
                vec![1, meta.chunk_frames, feature_dim]
            } else {
                let s = d.batch1_shape();
                if let Some(e) = expected.iter().find(|e| e.name == d.name) {
                    if e.shape != s {
                        bail!(
                            "{}: state input {} is declared {:?} but the metadata ({}) implies {:?}: the metadata does not describe this graph",
                            path.display(), d.name, s, meta.describe(), e.shape
                        );
                    }
                }
                s
            };
            shapes.push((d.datum_type, shape));
        }
        for e in &expected {
            if !declared.iter().any(|d| d.name == e.name) {
                bail!(
                    "{}: the metadata ({}) implies a state input {} that the graph does not have",
                    path.display(),
                    meta.model_type(),
                    e.name
                );
            }
        }
        let (plan, out_names) = file.plan(&shapes)?;
        let Some(out_index) = out_names.iter().position(|n| n == "encoder_out") else {
            bail!("{}: encoder has no output named encoder_out", path.display());
        };
        let out_fact = plan.model().output_fact(out_index)?.clone();
        let out_shape: Vec<usize> = out_fact
            .shape
            .as_concrete()
            .with_context(|| format!("{}: encoder_out shape is not fixed", path.display()))?
            .to_vec();
        if out_shape.len() != 3 || out_shape[0] != 1 {
            bail!("{}: encoder_out should be [1, frames, dim], found {:?}", path.display(), out_shape);
        }
        let mut states = Vec::new();
        for (ix, d) in declared.iter().enumerate() {
            if ix == x_input {
                continue;
            }
            let new_name = format!("new_{}", d.name);
            let Some(output) = out_names.iter().position(|n| *n == new_name) else {
                bail!("{}: state input {} has no matching output {new_name}", path.display(), d.name);
            };
            let (dt, shape) = &shapes[ix];
            let initial = Tensor::zero_dt(*dt, shape)?.into_tvalue();
            let out_dt = plan.model().output_fact(output)?.datum_type;
            let cast_to = (out_dt != *dt).then_some(*dt);
            states.push(StateSlot { name: d.name.clone(), input: ix, output, initial, cast_to });
        }
        let lockstep = Lockstep::new(&plan);
        Ok(EncoderModel {
            lockstep,
            meta,
            plan,
            x_input,
            feature_dim,
            out_index,
            out_frames: out_shape[1],
            out_dim: out_shape[2],
            states,
            repaired,
            fused_matmuls: fused,
        })
    }

    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// Whether [`run_chunks`] batches streams through one weight pass for this plan (else it
    /// runs them one after another).
    pub fn batches_streams(&self) -> bool {
        self.lockstep.is_some()
    }

    /// Feature frames per encoder output frame (4 for these models; sherpa-onnx hard-codes it).
    pub fn subsampling_factor(&self) -> usize {
        (self.meta.chunk_shift / self.out_frames.max(1)).max(1)
    }

    pub fn state_names(&self) -> impl Iterator<Item = &str> {
        self.states.iter().map(|s| s.name.as_str())
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Multiply-accumulates per chunk, counted from the optimized graph (every op's FMA cost:
    /// matmuls, the fused int8 op, convolutions).
    pub fn macs_per_chunk(&self) -> Result<u64> {
        let model = self.plan.model();
        let mut total = 0u64;
        for node in model.nodes() {
            let inputs = model.node_input_facts(node.id)?;
            for (cost, n) in node.op.cost(&inputs)? {
                if let tract_onnx::tract_core::ops::Cost::FMA(_) = cost {
                    total += n.to_i64().unwrap_or(0).max(0) as u64;
                }
            }
        }
        Ok(total)
    }
}

/// Per-stream encoder execution state: the tract state plus the carried caches.
pub struct EncoderRunner {
    model: std::sync::Arc<EncoderModel>,
    state: TypedSimpleState,
    carried: Vec<TValue>,
}

impl EncoderRunner {
    pub fn new(model: std::sync::Arc<EncoderModel>) -> Result<Self> {
        let state = model.plan.spawn()?;
        let carried = model.states.iter().map(|s| s.initial.clone()).collect();
        Ok(EncoderRunner { model, state, carried })
    }

    /// Back to the initial (all-zero) caches.
    pub fn reset(&mut self) {
        for (c, s) in self.carried.iter_mut().zip(&self.model.states) {
            *c = s.initial.clone();
        }
    }

    /// Runs one chunk of `T × feature_dim` features; returns `encoder_out` `[1, frames, dim]`.
    pub fn run_chunk(&mut self, features: &[f32]) -> Result<TValue> {
        self.run_chunk_with(features, None)
    }

    /// As `run_chunk`, adding each node's wall time to `profile` (by op name).
    pub fn run_chunk_profiled(&mut self, features: &[f32], profile: &mut OpProfile) -> Result<TValue> {
        self.run_chunk_with(features, Some(profile))
    }

    fn run_chunk_with(&mut self, features: &[f32], profile: Option<&mut OpProfile>) -> Result<TValue> {
        let inputs = self.take_inputs(features)?;
        let outputs = match profile {
            None => self.state.run(inputs),
            Some(p) => self.state.run_plan_with_eval(inputs, |ctx, op_state, node, input| {
                let t0 = std::time::Instant::now();
                let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, input);
                p.add(node, t0.elapsed());
                r
            }),
        }
        .context("encoder chunk failed")?;
        self.keep_outputs(outputs)
    }

    /// The plan's inputs for one chunk: the features and the carried states (moved out).
    fn take_inputs(&mut self, features: &[f32]) -> Result<TVec<TValue>> {
        let m = &self.model;
        let x = Tensor::from_shape(&[1, m.meta.chunk_frames, m.feature_dim], features)?;
        let n_inputs = m.states.len() + 1;
        let mut inputs: TVec<Option<TValue>> = (0..n_inputs).map(|_| None).collect();
        inputs[m.x_input] = Some(x.into_tvalue());
        for (slot, value) in m.states.iter().zip(self.carried.iter_mut()) {
            // Move the state in; it is replaced by the new one in `keep_outputs`.
            inputs[slot.input] = Some(std::mem::replace(value, slot.initial.clone()));
        }
        Ok(inputs.into_iter().map(|v| v.expect("every input is set")).collect())
    }

    /// Keeps the new states of a chunk's outputs for the next chunk; returns `encoder_out`.
    fn keep_outputs(&mut self, mut outputs: TVec<TValue>) -> Result<TValue> {
        let m = &self.model;
        for (slot, value) in m.states.iter().zip(self.carried.iter_mut()) {
            let new = std::mem::replace(&mut outputs[slot.output], slot.initial.clone());
            *value = match slot.cast_to {
                None => new,
                Some(dt) => new.cast_to_dt(dt)?.into_owned().into_tvalue(),
            };
        }
        Ok(outputs.swap_remove(m.out_index))
    }
}

/// Runs one chunk for each of several streams of the same model: `features[s]` for
/// `runners[s]`; returns each stream's `encoder_out`. The streams advance through the plan
/// together from one fused int8 matmul to the next, so that each matmul reads its weights once
/// for all of them ([`QuantMatMul::eval_batch`]); every other node runs for each stream as in
/// [`EncoderRunner::run_chunk`]. Each stream's result is bit-identical to its own
/// `run_chunk` (its activations are quantized on their own), so batching never changes a
/// transcript. What it saves is memory traffic: a large model at a few rows per chunk is
/// bound by reading its weights (66 MB per chunk for the medium model), once per stream alone.
///
/// [`QuantMatMul::eval_batch`]: crate::model::ops::quant_matmul::QuantMatMul::eval_batch
pub fn run_chunks(runners: &mut [&mut EncoderRunner], features: &[&[f32]]) -> Result<Vec<TValue>> {
    assert_eq!(runners.len(), features.len());
    let Some(first) = runners.first() else { return Ok(vec![]) };
    let model = first.model.clone();
    if let Some(r) = runners.iter().find(|r| !std::sync::Arc::ptr_eq(&r.model, &model)) {
        bail!("streams of different models cannot run together ({} and {})", model.meta.model_type(), r.model.meta.model_type());
    }
    let Some(lock) = model.lockstep.as_ref().filter(|_| runners.len() > 1) else {
        return runners.iter_mut().zip(features).map(|(r, f)| r.run_chunk(f)).collect();
    };
    let graph = model.plan.model();
    for (r, f) in runners.iter_mut().zip(features) {
        let inputs = r.take_inputs(f)?;
        r.state.set_inputs(inputs)?;
    }
    let flush = |r: &mut EncoderRunner, step: usize| {
        for &f in &lock.flush[step] {
            r.state.turn_state.values[f] = None;
        }
    };
    let run = |runners: &mut [&mut EncoderRunner]| -> TractResult<()> {
        let steps = lock.order.len();
        let mut step = 0;
        while step < steps {
            // The nodes up to the next fused int8 matmul, one stream after the other, so that
            // each stream's activations stay in cache from node to node.
            let end = lock.batched[step..].iter().position(|&b| b).map_or(steps, |p| step + p);
            for r in runners.iter_mut() {
                for s in step..end {
                    // Inputs taken, then the values no later node reads dropped, then the node
                    // run (tract's order): an op that works in place on its input then holds
                    // the only reference and need not copy it.
                    let n = lock.order[s];
                    let inputs = r.state.prepare_inputs(n)?;
                    flush(r, s);
                    r.state.compute_one_with_inputs(n, inputs)?;
                }
            }
            if end < steps {
                // The matmul for every stream in one pass over its weights.
                let n = lock.order[end];
                let op = graph.node(n).op_as::<crate::model::ops::quant_matmul::QuantMatMul>().expect("a fused int8 matmul");
                let inputs = runners.iter().map(|r| r.state.prepare_inputs(n)).collect::<TractResult<Vec<_>>>()?;
                for r in runners.iter_mut() {
                    flush(r, end);
                }
                let outputs = op.eval_batch(&inputs).with_context(|| format!("Evaluating {}", graph.node(n)))?;
                for (r, o) in runners.iter_mut().zip(outputs) {
                    r.state.set_values(n, o)?;
                }
            }
            step = end + 1;
        }
        Ok(())
    };
    let ran = run(runners);
    let mut results = Vec::with_capacity(runners.len());
    for r in runners.iter_mut() {
        let outputs = if ran.is_ok() { Some(r.state.outputs()) } else { None };
        // Always leave the states ready for the next chunk, as `run` does.
        r.state.reset_turn()?;
        if let Some(outputs) = outputs {
            results.push(r.keep_outputs(outputs.context("encoder chunk failed")?)?);
        }
    }
    ran.context("encoder chunk failed")?;
    Ok(results)
}

/// Accumulated wall time and call count per op name and per node (for `zipvox bench --profile`).
#[derive(Debug, Default, Clone)]
pub struct OpProfile {
    pub by_op: std::collections::BTreeMap<String, (std::time::Duration, usize)>,
    /// Per node id: (description, time, calls).
    pub by_node: std::collections::BTreeMap<usize, (String, std::time::Duration, usize)>,
}

impl OpProfile {
    pub fn add(&mut self, node: &TypedNode, d: std::time::Duration) {
        let e = self.by_op.entry(node.op().name().to_string()).or_default();
        e.0 += d;
        e.1 += 1;
        let n = self.by_node.entry(node.id).or_insert_with(|| {
            let info = node.op().info().unwrap_or_default().join(" ");
            (format!("{} {} [{}]", node.op().name(), node.name, info), Default::default(), 0)
        });
        n.1 += d;
        n.2 += 1;
    }

    /// The `n` slowest nodes: (description, time, calls).
    pub fn top_nodes(&self, n: usize) -> Vec<(&str, std::time::Duration, usize)> {
        let mut v: Vec<_> = self.by_node.values().map(|(s, d, c)| (s.as_str(), *d, *c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1));
        v.truncate(n);
        v
    }

    /// Entries sorted by descending time.
    pub fn sorted(&self) -> Vec<(&str, std::time::Duration, usize)> {
        let mut v: Vec<_> = self.by_op.iter().map(|(k, (d, n))| (k.as_str(), *d, *n)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1));
        v
    }
}
