//! Reading one ONNX part and turning it into a tract plan with concrete (batch 1) shapes.

use super::meta::Metadata;
use super::ops::{depthwise_conv::DepthwiseConvExpansion, quant_matmul::QuantMatMulExpansion, range::OnnxRange, swoosh::SwooshExpansion};
use super::rewrite;
use tract_onnx::tract_hir::internal::expand;
use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

/// A tract plan ready to run.
pub type Plan = Arc<TypedSimplePlan>;

/// One ONNX file, parsed into protobuf, with its metadata.
pub struct OnnxFile {
    pub path: PathBuf,
    pub proto: ModelProto,
    pub metadata: Metadata,
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
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let proto = onnx_framework().proto_model_for_read(&mut &bytes[..]).map_err(|e| {
            anyhow!(
                "{}: not an ONNX model ({e}); expected a .onnx file exported for sherpa-onnx",
                path.display()
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
        Ok(OnnxFile { path: path.to_path_buf(), proto, metadata })
    }

    fn inference_model(&self) -> Result<InferenceModel> {
        let dir = self.path.parent().and_then(|p| p.to_str());
        let onnx = onnx_framework().with_ignore_output_shapes(true).with_ignore_value_info(true);
        let parsed = onnx
            .parse(&self.proto, dir)
            .with_context(|| format!("{}: tract cannot read this ONNX graph", self.path.display()))?;
        if !parsed.unresolved_inputs.is_empty() {
            bail!("{}: graph refers to undefined inputs {:?}", self.path.display(), parsed.unresolved_inputs);
        }
        Ok(parsed.model)
    }

    /// Graph inputs in declaration order.
    pub fn declared_inputs(&self) -> Result<Vec<DeclaredInput>> {
        let model = self.inference_model()?;
        let mut out = vec![];
        for outlet in model.input_outlets()? {
            let fact = model.outlet_fact(*outlet)?;
            let name = model.node(outlet.node).name.clone();
            let datum_type = fact
                .datum_type
                .concretize()
                .with_context(|| format!("{}: input {name} has no declared element type", self.path.display()))?;
            let dims = fact
                .shape
                .dims()
                .map(|d| d.concretize().and_then(|d| d.to_i64().ok()).map(|v| v as usize))
                .collect();
            out.push(DeclaredInput { name, datum_type, dims });
        }
        Ok(out)
    }

    /// Builds the optimized plan for the given concrete input shapes (in declaration order).
    /// Returns the plan and the ONNX names of its outputs, in order.
    pub fn plan(&self, inputs: &[(DatumType, Vec<usize>)]) -> Result<(Plan, Vec<String>)> {
        let what = self.path.display();
        let mut model = self.inference_model()?;
        for (ix, (dt, shape)) in inputs.iter().enumerate() {
            model.set_input_fact(ix, InferenceFact::dt_shape(*dt, shape.clone()))?;
        }
        let typed = model.into_typed().with_context(|| format!("{what}: shape analysis failed"))?;
        let names = typed
            .output_outlets()?
            .iter()
            .map(|o| typed.outlet_label(*o).map(|s| s.to_string()).unwrap_or_else(|| typed.node(o.node).name.clone()))
            .collect();
        let optimized = typed.into_optimized().with_context(|| format!("{what}: tract could not optimize the graph"))?;
        let plan = TypedSimplePlan::new(optimized).with_context(|| format!("{what}: cannot build an execution plan"))?;
        Ok((plan, names))
    }
}

/// The ONNX framework with zipvox's corrections and fused ops registered.
pub fn onnx_framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("Range", |_, _| Ok((expand(OnnxRange), vec![])));
    onnx.op_register.insert(rewrite::int8_matmul::FUSED_OP, |_, _| Ok((expand(QuantMatMulExpansion), vec![])));
    onnx.op_register.insert(rewrite::depthwise_conv::FUSED_OP, |_, node| {
        let pads: Vec<usize> = node.get_attr_opt_vec::<isize>("pads")?.unwrap_or_default().iter().map(|&p| p.max(0) as usize).collect();
        Ok((expand(DepthwiseConvExpansion { pads }), vec![]))
    });
    onnx.op_register.insert(rewrite::swoosh::FUSED_OP, |_, node| {
        let offset: f32 = node.get_attr("offset")?;
        let slope: f32 = node.get_attr("slope")?;
        let bias: f32 = node.get_attr("bias")?;
        Ok((expand(SwooshExpansion { offset, slope, bias }), vec![]))
    });
    onnx
}
