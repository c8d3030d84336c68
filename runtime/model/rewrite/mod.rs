//! Load-time rewrites of the ONNX protobuf, before tract parses it: repairs of known export
//! defects and the fusions that hand subgraphs to zipvox's own ops (`super::ops`).

pub mod conv2d;
pub mod depthwise_conv;
pub mod downsample_padding;
pub mod int8_matmul;
pub mod ort_order;
pub mod swoosh;

use std::collections::HashMap;
use tract_onnx::pb::{AttributeProto, GraphProto, NodeProto, TensorProto};

/// Who produces and who consumes each tensor name of a graph, and its scalar float constants.
pub(crate) struct GraphIndex<'a> {
    pub producer: HashMap<&'a str, usize>,
    pub consumers: HashMap<&'a str, Vec<usize>>,
    pub outputs: Vec<&'a str>,
    /// Scalar f32 constants, from initializers or `Constant` nodes (exports use both).
    pub scalars: HashMap<&'a str, f32>,
}

/// The value of a one-element float tensor.
pub(crate) fn scalar_f32(t: &TensorProto) -> Option<f32> {
    if t.data_type != 1 || t.dims.iter().product::<i64>() != 1 {
        return None;
    }
    if let Some(v) = t.float_data.first() {
        return Some(*v);
    }
    t.raw_data.get(..4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl<'a> GraphIndex<'a> {
    pub fn new(graph: &'a GraphProto) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for input in &n.input {
                consumers.entry(input.as_str()).or_default().push(i);
            }
        }
        let outputs = graph.output.iter().map(|o| o.name.as_str()).collect();
        let mut scalars: HashMap<&str, f32> =
            graph.initializer.iter().filter_map(|t| scalar_f32(t).map(|v| (t.name.as_str(), v))).collect();
        for n in graph.node.iter().filter(|n| n.op_type == "Constant" && n.output.len() == 1) {
            if let Some(v) = n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref()).and_then(scalar_f32) {
                scalars.insert(n.output[0].as_str(), v);
            }
        }
        GraphIndex { producer, consumers, outputs, scalars }
    }

    /// The node producing `name` if its op type is `op`.
    pub fn producer_of(&self, graph: &GraphProto, name: &str, op: &str) -> Option<usize> {
        self.producer.get(name).copied().filter(|&i| graph.node[i].op_type == op)
    }

    /// The single consumer of `name`, when it has exactly one and is not a graph output.
    pub fn sole_consumer(&self, name: &str) -> Option<usize> {
        if self.outputs.contains(&name) {
            return None;
        }
        match self.consumers.get(name).map(|v| v.as_slice()) {
            Some([one]) => Some(*one),
            _ => None,
        }
    }

    /// True when every consumer of `name` is in `users` (and it is not a graph output).
    pub fn only_used_by(&self, name: &str, users: &[usize]) -> bool {
        !self.outputs.contains(&name)
            && self.consumers.get(name).is_some_and(|c| c.iter().all(|u| users.contains(u)))
    }
}

/// Attribute `name` of `node`.
pub(crate) fn attr<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Integer attribute `name` of `node`.
pub(crate) fn attr_int(node: &NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

/// Integer-list attribute `name` of `node`.
pub(crate) fn attr_ints(node: &NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

/// A new integer-list attribute.
pub(crate) fn ints_attr(name: &str, v: Vec<i64>) -> AttributeProto {
    use tract_onnx::pb::attribute_proto::AttributeType;
    AttributeProto { name: name.into(), ints: v, r#type: AttributeType::Ints as i32, ..Default::default() }
}

/// One rewrite: `node` takes the place of node `at`; the nodes in `removed` go away.
pub(crate) struct Rewrite {
    pub at: usize,
    pub removed: Vec<usize>,
    pub node: NodeProto,
}

/// Applies the rewrites (which must not overlap) keeping the node order, and drops the value
/// annotations (tract re-infers every shape; stale ones would only contradict it).
pub(crate) fn apply(graph: &mut GraphProto, rewrites: Vec<Rewrite>) -> usize {
    let count = rewrites.len();
    if count == 0 {
        return 0;
    }
    let mut drop = vec![false; graph.node.len()];
    let mut replace: HashMap<usize, NodeProto> = HashMap::new();
    for r in rewrites {
        for i in r.removed {
            drop[i] = true;
        }
        replace.insert(r.at, r.node);
    }
    let old = std::mem::take(&mut graph.node);
    for (i, node) in old.into_iter().enumerate() {
        if let Some(f) = replace.remove(&i) {
            graph.node.push(f);
        } else if !drop[i] {
            graph.node.push(node);
        }
    }
    graph.value_info.clear();
    count
}
