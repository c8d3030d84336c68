//! Hands dense 2-D `Conv` nodes (one group, constant f32 weights and bias, dilation 1,
//! explicit padding) to `ZipvoxConv2d` (`ops::conv2d`), which sums in onnxruntime's order.

use super::{apply, attr, attr_ints as ints, ints_attr, Rewrite};
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};

pub const FUSED_OP: &str = "ZipvoxConv2d";

pub fn fuse_conv2d(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let graph: &mut GraphProto = graph;
    let init = |name: &str| -> Option<&TensorProto> { graph.initializer.iter().find(|t| t.name == name) };
    let mut rewrites = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        if n.op_type != "Conv" || n.input.len() < 2 {
            continue;
        }
        let Some(w) = init(&n.input[1]) else { continue };
        let group = attr(n, "group").map_or(1, |a| a.i);
        if w.dims.len() != 4 || group != 1 || w.data_type != 1 {
            continue;
        }
        if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
            if init(b).is_none() {
                continue;
            }
        }
        if ints(n, "dilations").is_some_and(|d| d.iter().any(|&x| x != 1)) {
            continue;
        }
        if attr(n, "auto_pad").is_some_and(|a| !a.s.is_empty() && a.s != b"NOTSET") {
            continue;
        }
        let pads = ints(n, "pads").unwrap_or_else(|| vec![0; 4]);
        let strides = ints(n, "strides").unwrap_or_else(|| vec![1; 2]);
        if pads.len() != 4 || pads.iter().any(|&p| p < 0) || strides.len() != 2 || strides.iter().any(|&s| s < 1) {
            continue;
        }
        let node = NodeProto {
            name: format!("{}.zipvox_conv2d", n.name),
            op_type: FUSED_OP.into(),
            input: n.input.iter().filter(|s| !s.is_empty()).cloned().collect(),
            output: n.output.clone(),
            attribute: vec![ints_attr("pads", pads), ints_attr("strides", strides)],
            ..Default::default()
        };
        rewrites.push(Rewrite { at: i, removed: vec![i], node });
    }
    apply(graph, rewrites)
}
