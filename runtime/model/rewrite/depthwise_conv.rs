//! Hands depthwise `Conv` nodes to `ZipvoxDepthwiseConv` (`ops::depthwise_conv`): `group`
//! equal to the channel count, one input channel per group, constant weights (and bias),
//! stride 1, dilation 1, explicit (or no) padding, 1-D or 2-D.

use super::{apply, attr_int as int, attr_ints as ints, Rewrite};
use tract_onnx::pb::{GraphProto, ModelProto, NodeProto, TensorProto};

pub const FUSED_OP: &str = "ZipvoxDepthwiseConv";

pub fn fuse_depthwise_convs(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let graph: &mut GraphProto = graph;
    let init = |name: &str| -> Option<&TensorProto> { graph.initializer.iter().find(|t| t.name == name) };
    let mut rewrites = Vec::new();
    for (i, n) in graph.node.iter().enumerate() {
        if n.op_type != "Conv" || n.input.len() < 2 {
            continue;
        }
        let Some(w) = init(&n.input[1]) else { continue };
        let rank = w.dims.len().saturating_sub(2);
        let group = int(n, "group").unwrap_or(1);
        if !(1..=2).contains(&rank) || w.dims[1] != 1 || group != w.dims[0] || group < 2 || w.data_type != 1 {
            continue;
        }
        if let Some(b) = n.input.get(2).filter(|b| !b.is_empty()) {
            if init(b).is_none() {
                continue;
            }
        }
        let ones = |v: Option<Vec<i64>>| v.is_none_or(|v| v.iter().all(|&x| x == 1));
        if !ones(ints(n, "strides")) || !ones(ints(n, "dilations")) {
            continue;
        }
        if node_auto_pad(n).is_some_and(|p| p != "NOTSET") {
            continue;
        }
        let pads = ints(n, "pads").unwrap_or_else(|| vec![0; 2 * rank]);
        if pads.len() != 2 * rank || pads.iter().any(|&p| p < 0) {
            continue;
        }
        let node = NodeProto {
            name: format!("{}.zipvox_depthwise", n.name),
            op_type: FUSED_OP.into(),
            input: n.input.iter().filter(|s| !s.is_empty()).cloned().collect(),
            output: n.output.clone(),
            attribute: n.attribute.iter().filter(|a| a.name == "pads").cloned().collect(),
            ..Default::default()
        };
        rewrites.push(Rewrite { at: i, removed: vec![i], node });
    }
    apply(graph, rewrites)
}

fn node_auto_pad(n: &NodeProto) -> Option<String> {
    n.attribute.iter().find(|a| a.name == "auto_pad").map(|a| String::from_utf8_lossy(&a.s).into_owned())
}
