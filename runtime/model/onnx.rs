//! Reading one ONNX part and turning it into a tract plan with concrete (batch 1) shapes.

use super::meta::Metadata;
use super::ops::elementwise::UnaryExpansion;
use super::ops::matmul::ActivationMatMulExpansion;
use super::ops::dense::{ConstGemmExpansion, GroupedConv1dExpansion};
use super::ops::reductions::{ReduceExpansion, SoftmaxExpansion};
use crate::kernels::activation::UnaryFn;
use super::ops::{conv2d::Conv2dExpansion, depthwise_conv::DepthwiseConvExpansion, quant_matmul::QuantMatMulExpansion, range::OnnxRange, swoosh::SwooshExpansion};
use super::rewrite;
use crate::kernels::activation::SoftplusForm;
use tract_onnx::tract_hir::internal::expand;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

/// A tract plan ready to run.
pub type Plan = Arc<TypedSimplePlan>;

/// Plans of one graph for batch sizes above 1 (beam search: the decoder's and joiner's batch
/// axis is dynamic, tract plans take concrete shapes), each built once on first request and
/// shared by every runner of the model.
#[derive(Default)]
pub struct BatchPlans(std::sync::Mutex<std::collections::HashMap<usize, Plan>>);

impl BatchPlans {
    /// The plan for batch `n`, from `build(n)` the first time.
    pub fn get_or_build(&self, n: usize, build: impl FnOnce(usize) -> anyhow::Result<Plan>) -> anyhow::Result<Plan> {
        let mut plans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = plans.get(&n) {
            return Ok(p.clone());
        }
        let plan = build(n)?;
        plans.insert(n, plan.clone());
        Ok(plan)
    }
}

/// One ONNX file, parsed into protobuf, with its metadata.
pub struct OnnxFile {
    pub path: PathBuf,
    pub proto: ModelProto,
    pub metadata: Metadata,
    /// Ids of weights packed by `fuse_int8_matmuls`, held in `ops::quant_matmul`'s registry
    /// until the plan is built.
    packed_ids: Vec<u64>,
}

/// An input of the graph as the file declares it; `None` dims are symbolic (the batch axis).
#[derive(Debug, Clone)]
pub struct DeclaredInput {
    pub name: String,
    pub datum_type: DatumType,
    pub dims: Vec<Option<usize>>,
}

impl DeclaredInput {
    /// The declared shape with every symbolic dimension fixed to 1 (batch 1).
    pub fn batch1_shape(&self) -> Vec<usize> {
        self.dims.iter().map(|d| d.unwrap_or(1)).collect()
    }
}

impl OnnxFile {
    pub fn read(path: &Path) -> Result<Self> {
        // Open first for a plain error message; tract then maps the file (no heap copy of it).
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
        let proto = onnx_framework().proto_model_for_path(path).map_err(|e| {
            anyhow!(
                "{}: not an ONNX model ({}); expected a .onnx file exported for sherpa-onnx",
                path.display(),
                e.root_cause()
            )
        })?;
        match &proto.graph {
            Some(g) if !g.node.is_empty() => {}
            _ => bail!(
                "{}: not an ONNX model (no graph inside); expected a .onnx file exported for sherpa-onnx",
                path.display()
            ),
        }
        let metadata = proto.metadata_props.iter().map(|p| (p.key.clone(), p.value.clone())).collect();
        Ok(OnnxFile { path: path.to_path_buf(), proto, metadata, packed_ids: vec![] })
    }

    /// Fuses the int8 matmul chains (`rewrite::int8_matmul`); their weights move from the
    /// protobuf into packed form right away, so tract never holds a copy of them.
    pub fn fuse_int8_matmuls(&mut self) -> usize {
        let (n, ids) = rewrite::int8_matmul::fuse_dynamic_quant_matmuls(&mut self.proto);
        self.packed_ids.extend(ids);
        n + rewrite::int8_matmul::fuse_batched_quant_matmuls(&mut self.proto)
    }

    /// Graph inputs in declaration order (read from the protobuf, without parsing the graph).
    pub fn declared_inputs(&self) -> Result<Vec<DeclaredInput>> {
        use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
        use tract_onnx::pb::type_proto::Value as Type;
        let graph = self.proto.graph.as_ref().context("no graph")?;
        let mut out = vec![];
        for input in &graph.input {
            if graph.initializer.iter().any(|t| t.name == input.name) {
                continue;
            }
            let name = input.name.clone();
            let Some(Type::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
                bail!("{}: input {name} is not a tensor", self.path.display());
            };
            let datum_type: DatumType = tract_onnx::pb::tensor_proto::DataType::try_from(t.elem_type)
                .ok()
                .and_then(|d| d.try_into().ok())
                .with_context(|| format!("{}: input {name} has unsupported element type {}", self.path.display(), t.elem_type))?;
            let dims = t
                .shape
                .as_ref()
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(Dim::DimValue(v)) if v > 0 => Some(v as usize),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(DeclaredInput { name, datum_type, dims });
        }
        Ok(out)
    }

    /// Builds the optimized plan for the given concrete input shapes (in declaration order).
    /// Returns the plan and the ONNX names of its outputs, in order. Consumes the file: the
    /// protobuf is dropped as soon as tract has parsed it.
    pub fn plan(mut self, inputs: &[(DatumType, Vec<usize>)]) -> Result<(Plan, Vec<String>)> {
        let what = self.path.display().to_string();
        let proto = std::mem::take(&mut self.proto);
        let dir = self.path.parent().and_then(|p| p.to_str()).map(|s| s.to_string());
        let onnx = onnx_framework().with_ignore_output_shapes(true).with_ignore_value_info(true);
        let parsed = onnx.parse(&proto, dir.as_deref()).with_context(|| format!("{what}: tract cannot read this ONNX graph"))?;
        drop(proto);
        // Each stage below frees most of what the one before built; returning those pages
        // before the next stage allocates keeps the load's peak RSS down (service::malloc).
        crate::service::malloc::release_freed(&format!("{what} (parsed)"));
        if !parsed.unresolved_inputs.is_empty() {
            bail!("{what}: graph refers to undefined inputs {:?}", parsed.unresolved_inputs);
        }
        let mut model = parsed.model;
        for (ix, (dt, shape)) in inputs.iter().enumerate() {
            model.set_input_fact(ix, InferenceFact::dt_shape(*dt, shape.clone()))?;
        }
        let typed = model.into_typed().with_context(|| format!("{what}: shape analysis failed"))?;
        crate::service::malloc::release_freed(&format!("{what} (typed)"));
        let names = typed
            .output_outlets()?
            .iter()
            .map(|o| typed.outlet_label(*o).map(|s| s.to_string()).unwrap_or_else(|| typed.node(o.node).name.clone()))
            .collect();
        let mut optimized = typed.into_optimized().with_context(|| format!("{what}: tract could not optimize the graph"))?;
        let (selects, reshapes, copies) = super::optimized::run(&mut optimized).with_context(|| format!("{what}: rewriting the optimized graph"))?;
        log::debug!("{what}: {selects} mask selects as ZipvoxSelectConst, {reshapes} axis moves as reshapes, {copies} as ZipvoxMoveAxis");
        // Every patch above and in tract's optimizer leaves the replaced nodes behind in the node
        // vector (and their constants with them); the plan keeps the model for the whole run, so
        // drop the dead ones now (3.3M encoder: ~3 MB of heap).
        optimized.compact().with_context(|| format!("{what}: compacting the optimized graph"))?;
        crate::service::malloc::release_freed(&format!("{what} (optimized)"));
        let plan = TypedSimplePlan::new(optimized).with_context(|| format!("{what}: cannot build an execution plan"))?;
        Ok((plan, names))
    }
}

impl Drop for OnnxFile {
    fn drop(&mut self) {
        // Packed weights not claimed by a plan (e.g. the load failed) are released here.
        for id in &self.packed_ids {
            super::ops::quant_matmul::release_packed(*id);
        }
    }
}

/// The ONNX framework with zipvox's corrections and fused ops registered.
pub fn onnx_framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("Range", |_, _| Ok((expand(OnnxRange), vec![])));
    onnx.op_register.insert(rewrite::int8_matmul::BATCHED_OP, |_, _| Ok((expand(super::ops::quant_matmul::QuantBatchMatMulExpansion), vec![])));
    onnx.op_register.insert(rewrite::int8_matmul::FUSED_OP, |_, node| {
        let id: i64 = node.get_attr("zipvox_weights")?;
        Ok((expand(QuantMatMulExpansion::from_registry(id as u64)?), vec![]))
    });
    onnx.op_register.insert(rewrite::depthwise_conv::FUSED_OP, |_, node| {
        let pads: Vec<usize> = node.get_attr_opt_vec::<isize>("pads")?.unwrap_or_default().iter().map(|&p| p.max(0) as usize).collect();
        Ok((expand(DepthwiseConvExpansion { pads }), vec![]))
    });
    onnx.op_register.insert(rewrite::conv2d::FUSED_OP, |_, node| {
        let v = |name: &str, n: usize, default: usize| -> TractResult<Vec<usize>> {
            let v: Vec<usize> = node.get_attr_opt_vec::<isize>(name)?.map_or(vec![default; n], |v| v.iter().map(|&p| p.max(0) as usize).collect());
            if v.len() != n {
                bail!("{name}: expected {n} values");
            }
            Ok(v)
        };
        let (p, s) = (v("pads", 4, 0)?, v("strides", 2, 1)?);
        Ok((expand(Conv2dExpansion { pads: [p[0], p[1], p[2], p[3]], strides: [s[0], s[1]] }), vec![]))
    });
    onnx.op_register.insert(rewrite::ort_order::SOFTMAX_OP, |_, node| {
        let axis: isize = node.get_attr_opt("axis")?.unwrap_or(-1);
        Ok((expand(SoftmaxExpansion { axis }), vec![]))
    });
    onnx.op_register.insert(rewrite::ort_order::REDUCE_MEAN_OP, |_, node| {
        let axes: Vec<i64> = node.get_attr_vec("axes")?;
        let keep_dims = node.get_attr_opt("keepdims")?.unwrap_or(1i64) == 1;
        Ok((expand(ReduceExpansion::new(axes, keep_dims, true)), vec![]))
    });
    onnx.op_register.insert(rewrite::ort_order::REDUCE_SUM_OP, |_, node| {
        let axes: Vec<i64> = node.get_attr_vec("axes")?;
        let keep_dims = node.get_attr_opt("keepdims")?.unwrap_or(1i64) == 1;
        Ok((expand(ReduceExpansion::new(axes, keep_dims, false)), vec![]))
    });
    onnx.op_register.insert(rewrite::ort_order::MATMUL_OP, |_, _| Ok((expand(ActivationMatMulExpansion::default()), vec![])));
    onnx.op_register.insert(rewrite::ort_order::GEMM_OP, |_, node| {
        let trans_b = node.get_attr_opt::<i64>("transB")?.unwrap_or(0) == 1;
        Ok((expand(ConstGemmExpansion { trans_b }), vec![]))
    });
    onnx.op_register.insert(rewrite::ort_order::GROUPED_CONV_OP, |_, node| {
        let groups = node.get_attr::<i64>("group")? as usize;
        Ok((expand(GroupedConv1dExpansion { groups }), vec![]))
    });
    onnx.op_register.insert(rewrite::ort_order::TANH_OP, |_, _| Ok((expand(UnaryExpansion(UnaryFn::Tanh)), vec![])));
    onnx.op_register.insert(rewrite::ort_order::SIGMOID_OP, |_, _| Ok((expand(UnaryExpansion(UnaryFn::Sigmoid)), vec![])));
    onnx.op_register.insert(rewrite::swoosh::FUSED_OP, |_, node| {
        let offset: f32 = node.get_attr("offset")?;
        let slope: f32 = node.get_attr("slope")?;
        let bias: f32 = node.get_attr("bias")?;
        let guarded: i64 = node.get_attr("guarded")?;
        let form = if guarded != 0 { SoftplusForm::Guarded } else { SoftplusForm::LogAddExp };
        Ok((expand(SwooshExpansion { offset, slope, bias, form }), vec![]))
    });
    onnx
}
