//! Renames ONNX nodes whose arithmetic zipvox computes in onnxruntime's order to zipvox's forms
//! (`ops::reductions`, `ops::elementwise`, `ops::matmul`, `ops::dense`): `Softmax` (opset >= 13), `ReduceMean` with an
//! `axes` attribute (opset < 18), `ReduceSum` with constant axes (opset >= 13), `Tanh`,
//! `Sigmoid`, `MatMul` of two activations, `Gemm` with constant weights and the decoder's
//! grouped `Conv`. The forms fall back to tract's own lowering where the order is not modelled
//! (another axis, another type).
//!
//! Why: these nodes feed onnxruntime's dynamic quantizers in the exported encoders, where a
//! one-ulp difference can flip an int8 rounding that the streaming caches then carry on;
//! computed in the reference peer's order, the encoder output stays bit-identical to it.

use super::{attr, ints_attr};
use tract_onnx::pb::{ModelProto, TensorProto};

pub const SOFTMAX_OP: &str = "ZipvoxSoftmax";
pub const REDUCE_MEAN_OP: &str = "ZipvoxReduceMean";
pub const REDUCE_SUM_OP: &str = "ZipvoxReduceSum";
pub const TANH_OP: &str = "ZipvoxTanh";
pub const SIGMOID_OP: &str = "ZipvoxSigmoid";
pub const MATMUL_OP: &str = "ZipvoxMatMul";
pub const GEMM_OP: &str = "ZipvoxGemm";
pub const GROUPED_CONV_OP: &str = "ZipvoxGroupedConv1d";

/// The default-domain opset the model imports.
fn opset(model: &ModelProto) -> i64 {
    model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(1, |o| o.version)
}

/// The values of a constant int64 initializer.
fn int64s(t: &TensorProto) -> Option<Vec<i64>> {
    if t.data_type != 7 {
        return None;
    }
    if !t.int64_data.is_empty() {
        return Some(t.int64_data.clone());
    }
    t.raw_data.len().is_multiple_of(8).then(|| t.raw_data.chunks(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// `Gemm` as `kernels::gemm` computes it: `transA = 0`, `alpha = beta = 1`.
fn gemm_is_plain(n: &tract_onnx::pb::NodeProto) -> bool {
    attr(n, "transA").is_none_or(|a| a.i == 0) && attr(n, "alpha").is_none_or(|a| a.f == 1.0) && attr(n, "beta").is_none_or(|a| a.f == 1.0)
}

/// A grouped `Conv` without padding, stride or dilation (the decoder's).
fn grouped_conv_is_plain(n: &tract_onnx::pb::NodeProto) -> bool {
    let all = |name: &str, v: i64| attr(n, name).is_none_or(|a| a.ints.iter().all(|&x| x == v));
    attr(n, "group").is_some_and(|a| a.i > 1)
        && all("pads", 0)
        && all("strides", 1)
        && all("dilations", 1)
        && attr(n, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET")
}

/// Returns how many nodes were renamed.
pub fn use_onnxruntime_order(model: &mut ModelProto) -> usize {
    let opset = opset(model);
    let Some(graph) = model.graph.as_mut() else { return 0 };
    // Constant int64 tensors: initializers and `Constant` nodes (exports use both).
    let mut axes_of: std::collections::HashMap<String, Vec<i64>> =
        graph.initializer.iter().filter_map(|t| int64s(t).map(|v| (t.name.clone(), v))).collect();
    for n in graph.node.iter().filter(|n| n.op_type == "Constant" && n.output.len() == 1) {
        if let Some(v) = n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref()).and_then(int64s) {
            axes_of.insert(n.output[0].clone(), v);
        }
    }
    let constants: std::collections::HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    let graph_dims: std::collections::HashMap<String, Vec<i64>> = graph.initializer.iter().map(|t| (t.name.clone(), t.dims.clone())).collect();
    let mut count = 0;
    for n in graph.node.iter_mut() {
        let renamed = match n.op_type.as_str() {
            "Softmax" if opset >= 13 => SOFTMAX_OP,
            "ReduceMean" if opset < 18 && attr(n, "axes").is_some() => REDUCE_MEAN_OP,
            "ReduceSum" if opset >= 13 && n.input.len() == 2 => {
                // Constant, non-empty axes become an attribute (the form's only input is x).
                let Some(axes) = axes_of.get(&n.input[1]).filter(|a| !a.is_empty()) else { continue };
                n.attribute.push(ints_attr("axes", axes.clone()));
                n.input.truncate(1);
                REDUCE_SUM_OP
            }
            "MatMul" if n.input.len() == 2 && n.input.iter().all(|i| !constants.contains(i)) => MATMUL_OP,
            "Gemm" if gemm_is_plain(n) && n.input.len() >= 2 && n.input[1..].iter().all(|i| constants.contains(i)) => GEMM_OP,
            "Conv" if grouped_conv_is_plain(n) && n.input.len() == 2 && constants.contains(&n.input[1]) => {
                let w = graph_dims.get(&n.input[1]);
                match w {
                    Some(d) if d.len() == 3 && d[1] > 1 => GROUPED_CONV_OP,
                    _ => continue,
                }
            }
            "Tanh" => TANH_OP,
            "Sigmoid" => SIGMOID_OP,
            _ => continue,
        };
        n.op_type = renamed.into();
        count += 1;
    }
    count
}
