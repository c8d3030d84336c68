//! Load-time rewrite of onnxruntime dynamic-quantization chains into one `ZipvoxQuantMatMul`
//! node each (see `quant_matmul`), done on the ONNX protobuf before tract parses it.
//!
//! The chain, as `onnxruntime.quantization.quantize_dynamic` writes it for every MatMul:
//! ```text
//! x ─ DynamicQuantizeLinear ─(q, a_scale, a_zp)─ MatMulInteger(q, W:int8 const, a_zp, 0)
//!   ─ Cast(float) ─ Mul(·, Mul(a_scale, w_scale:const)) [─ Add(·, bias:const[n])]
//! ```
//! Each match becomes `ZipvoxQuantMatMul(x, w_scale[, bias])` with attribute `zipvox_weights`:
//! the int8 weights are packed for the kernel in use right here and the initializer removed,
//! so the model's largest tensors are never copied into tract (peak memory at load ≈ one copy).
//! Nodes left without consumers are dropped by tract's analysis.

use std::collections::HashMap;
use super::{apply, attr_int, GraphIndex, Rewrite};
use crate::kernels::qgemm::PackedI8Weights;
use crate::model::ops::quant_matmul::register_packed;
use tract_onnx::pb::{attribute_proto::AttributeType, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

pub const FUSED_OP: &str = "ZipvoxQuantMatMul";

/// Float, int8 ONNX element types.
const ONNX_FLOAT: i32 = 1;
const ONNX_INT8: i32 = 3;

fn is_all_zero(t: &TensorProto) -> bool {
    // Only scalars / tiny tensors are ever zero points.
    t.raw_data.iter().all(|&b| b == 0) && t.int32_data.iter().all(|&v| v == 0)
}

/// The int8 values of an initializer (raw_data, or int32_data as some writers use).
fn int8_values(t: &TensorProto) -> Vec<i8> {
    if !t.raw_data.is_empty() {
        t.raw_data.iter().map(|&b| b as i8).collect()
    } else {
        t.int32_data.iter().map(|&v| v as i8).collect()
    }
}

/// Rewrites every matching chain; returns how many were fused and the registry ids of the
/// packed weights (see `ops::quant_matmul::register_packed`).
pub fn fuse_dynamic_quant_matmuls(model: &mut ModelProto) -> (usize, Vec<u64>) {
    let Some(graph) = model.graph.as_mut() else { return (0, vec![]) };
    let graph: &mut GraphProto = graph;
    let inits: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let index = GraphIndex::new(graph);
    let producer = &index.producer;
    let sole = |name: &str| index.sole_consumer(name);

    let mut rewrites: Vec<(Rewrite, String, usize, usize)> = Vec::new();
    for (mi, mm) in graph.node.iter().enumerate() {
        if mm.op_type != "MatMulInteger" || mm.input.len() < 3 {
            continue;
        }
        let Some(&di) = producer.get(mm.input[0].as_str()) else { continue };
        let dq = &graph.node[di];
        if dq.op_type != "DynamicQuantizeLinear" || dq.output.len() != 3 || mm.input[2] != dq.output[2] {
            continue;
        }
        let Some(w) = inits.get(mm.input[1].as_str()) else { continue };
        if w.data_type != ONNX_INT8 || w.dims.len() != 2 {
            continue;
        }
        if let Some(bzp) = mm.input.get(3).filter(|s| !s.is_empty()) {
            match inits.get(bzp.as_str()) {
                Some(t) if is_all_zero(t) => {}
                _ => continue,
            }
        }
        let n = w.dims[1];
        let Some(ci) = sole(&mm.output[0]) else { continue };
        let cast = &graph.node[ci];
        if cast.op_type != "Cast" || attr_int(cast, "to") != Some(ONNX_FLOAT as i64) {
            continue;
        }
        let Some(ui) = sole(&cast.output[0]) else { continue };
        let mul = &graph.node[ui];
        if mul.op_type != "Mul" || mul.input.len() != 2 {
            continue;
        }
        let scales = if mul.input[0] == cast.output[0] { &mul.input[1] } else { &mul.input[0] };
        let Some(&si) = producer.get(scales.as_str()) else { continue };
        let smul = &graph.node[si];
        if smul.op_type != "Mul" || smul.input.len() != 2 {
            continue;
        }
        let w_scale = if smul.input[0] == dq.output[1] {
            &smul.input[1]
        } else if smul.input[1] == dq.output[1] {
            &smul.input[0]
        } else {
            continue;
        };
        match inits.get(w_scale.as_str()) {
            Some(t) if t.data_type == ONNX_FLOAT && t.dims.iter().product::<i64>() == 1 => {}
            _ => continue,
        }
        let mut removed = vec![mi, ci, ui];
        let mut output = mul.output[0].clone();
        let mut name = mul.name.clone();
        let mut inputs = vec![dq.input[0].clone(), w_scale.clone()];
        // Fold a following bias Add when the bias is a constant vector of length n.
        if let Some(ai) = sole(&mul.output[0]) {
            let add = &graph.node[ai];
            if add.op_type == "Add" && add.input.len() == 2 {
                let other = if add.input[0] == mul.output[0] { &add.input[1] } else { &add.input[0] };
                if let Some(b) = inits.get(other.as_str()) {
                    if b.data_type == ONNX_FLOAT && b.dims == vec![n] {
                        inputs.push(other.clone());
                        output = add.output[0].clone();
                        name = add.name.clone();
                        removed.push(ai);
                    }
                }
            }
        }
        let fused = NodeProto {
            name: format!("{name}.zipvox_fused"),
            op_type: FUSED_OP.to_string(),
            input: inputs,
            output: vec![output],
            ..Default::default()
        };
        rewrites.push((Rewrite { at: mi, removed, node: fused }, mm.input[1].clone(), w.dims[0] as usize, n as usize));
    }
    // Pack each weight once (a weight may be shared), then drop it from the protobuf unless a
    // node that was not fused still reads it.
    let mut fused_uses: HashMap<&str, usize> = HashMap::new();
    for (_, w, _, _) in &rewrites {
        *fused_uses.entry(w.as_str()).or_default() += 1;
    }
    let exclusive: std::collections::HashSet<String> = fused_uses
        .iter()
        .filter(|(w, n)| index.consumers.get(*w).map_or(0, |c| c.len()) == **n && !index.outputs.contains(w))
        .map(|(w, _)| w.to_string())
        .collect();
    let mut packed: HashMap<String, u64> = HashMap::new();
    let mut ids = Vec::new();
    let mut done = Vec::new();
    for (mut rewrite, w_name, k, n) in rewrites {
        let id = match packed.get(&w_name) {
            Some(id) => *id,
            None => {
                let Some(t) = graph.initializer.iter_mut().find(|t| t.name == w_name) else { continue };
                let values = int8_values(t);
                if values.len() != k * n {
                    continue;
                }
                if exclusive.contains(&w_name) {
                    // Free the protobuf's copy now, not at the end: keeps the load's peak low.
                    t.raw_data = Vec::new();
                    t.int32_data = Vec::new();
                }
                let id = register_packed(PackedI8Weights::new(&values, k, n));
                packed.insert(w_name.clone(), id);
                ids.push(id);
                id
            }
        };
        rewrite.node.attribute.push(AttributeProto {
            name: "zipvox_weights".into(),
            i: id as i64,
            r#type: AttributeType::Int as i32,
            ..Default::default()
        });
        done.push(rewrite);
    }
    let count = apply(graph, done);
    let still_used: std::collections::HashSet<String> =
        graph.node.iter().flat_map(|n| n.input.iter().cloned()).collect();
    graph.initializer.retain(|t| !packed.contains_key(&t.name) || still_used.contains(&t.name));
    (count, ids)
}

pub const BATCHED_OP: &str = "ZipvoxQuantBatchMatMul";

/// Rewrites each onnxruntime dynamic-quantization chain whose constant int8 operand has batch
/// axes (`[…, k, n]`, rank above 2: the zipformer2 exports' relative-position projections,
/// quantized once at export), which `fuse_dynamic_quant_matmuls` leaves alone:
/// ```text
/// x ─ DynamicQuantizeLinear ─(q, a_scale, a_zp)─ MatMulInteger(q, B:int8 const, a_zp, 0)
///   ─ Cast(float) ─ Mul(·, Mul(a_scale, b_scale:const))
/// ```
/// into `ZipvoxQuantBatchMatMul(x, B, b_scale)` (`ops::quant_matmul::QuantBatchMatMul`): one op
/// instead of tract's quantizer, packing, i32 matmul, zero-point and scaling nodes. Returns how
/// many were fused.
pub fn fuse_batched_quant_matmuls(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let graph: &mut GraphProto = graph;
    let inits: HashMap<&str, &TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let index = GraphIndex::new(graph);
    let mut rewrites = Vec::new();
    for (mi, mm) in graph.node.iter().enumerate() {
        if mm.op_type != "MatMulInteger" || mm.input.len() < 3 || mm.output.len() != 1 {
            continue;
        }
        let Some(di) = index.producer_of(graph, &mm.input[0], "DynamicQuantizeLinear") else { continue };
        let dq = &graph.node[di];
        if dq.output.len() != 3 || mm.input[2] != dq.output[2] {
            continue;
        }
        let Some(b) = inits.get(mm.input[1].as_str()) else { continue };
        if b.data_type != ONNX_INT8 || b.dims.len() <= 2 {
            continue;
        }
        if let Some(bzp) = mm.input.get(3).filter(|s| !s.is_empty()) {
            match inits.get(bzp.as_str()) {
                Some(t) if is_all_zero(t) => {}
                _ => continue,
            }
        }
        let Some(ci) = index.sole_consumer(&mm.output[0]) else { continue };
        let cast = &graph.node[ci];
        if cast.op_type != "Cast" || attr_int(cast, "to") != Some(ONNX_FLOAT as i64) {
            continue;
        }
        let Some(ui) = index.sole_consumer(&cast.output[0]) else { continue };
        let mul = &graph.node[ui];
        if mul.op_type != "Mul" || mul.input.len() != 2 {
            continue;
        }
        let scales = if mul.input[0] == cast.output[0] { &mul.input[1] } else { &mul.input[0] };
        let Some(si) = index.producer_of(graph, scales, "Mul") else { continue };
        let smul = &graph.node[si];
        if smul.input.len() != 2 {
            continue;
        }
        let b_scale = if smul.input[0] == dq.output[1] {
            &smul.input[1]
        } else if smul.input[1] == dq.output[1] {
            &smul.input[0]
        } else {
            continue;
        };
        if !index.scalars.contains_key(b_scale.as_str()) {
            continue;
        }
        // The quantizer's outputs and the scale product feed this chain only.
        let chain = [mi, si];
        if !(dq.output.iter().all(|o| index.only_used_by(o, &chain)) && index.only_used_by(&smul.output[0], &[ui])) {
            continue;
        }
        let fused = NodeProto {
            name: format!("{}.zipvox_fused", mul.name),
            op_type: BATCHED_OP.to_string(),
            input: vec![dq.input[0].clone(), mm.input[1].clone(), b_scale.clone()],
            output: vec![mul.output[0].clone()],
            ..Default::default()
        };
        rewrites.push(Rewrite { at: mi, removed: vec![di, mi, ci, ui, si], node: fused });
    }
    apply(graph, rewrites)
}
