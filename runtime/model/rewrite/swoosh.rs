//! Load-time fusion of Zipformer2's exported SwooshL/SwooshR subgraphs into `ZipvoxSwoosh`
//! (`ops::swoosh`). The exported pattern (icefall `SwooshLOnnx`/`SwooshROnnx`):
//! ```text
//! s = Sub(x, offset); l = Log(Add(Exp(s), 1)); g = Where(Equal(l, inf), s, l)
//! y = Sub(Sub(g, Mul(x, slope)), bias)
//! ```
//! with scalar constant initializers. Intermediates must have no other consumers.

use super::{apply, GraphIndex, Rewrite};
use tract_onnx::pb::{attribute_proto::AttributeType, AttributeProto, ModelProto, NodeProto};

pub const FUSED_OP: &str = "ZipvoxSwoosh";

fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: v, r#type: AttributeType::Float as i32, ..Default::default() }
}

/// Rewrites every Swoosh subgraph; returns how many were fused.
pub fn fuse_swoosh(model: &mut ModelProto) -> usize {
    let Some(graph) = model.graph.as_mut() else { return 0 };
    let index = GraphIndex::new(graph);
    let consts = &index.scalars;
    let consumers = &index.consumers;
    let only_used_by = |name: &str, users: &[usize]| index.only_used_by(name, users);
    let node = |i: usize| &graph.node[i];
    let op_of = |name: &str, op: &str| index.producer_of(graph, name, op);
    // `(a, b)` of a binary node where one side is a scalar constant: (other input, constant).
    let with_const = |n: &NodeProto| -> Option<(String, f32)> {
        match (consts.get(n.input[0].as_str()), consts.get(n.input[1].as_str())) {
            (None, Some(c)) => Some((n.input[0].clone(), *c)),
            (Some(c), None) => Some((n.input[1].clone(), *c)),
            _ => None,
        }
    };

    let mut rewrites = Vec::new();
    for (wi, w) in graph.node.iter().enumerate() {
        if w.op_type != "Where" || w.input.len() != 3 {
            continue;
        }
        let found = (|| -> Option<(Vec<usize>, NodeProto)> {
            let ei = op_of(&w.input[0], "Equal")?;
            // Some exports put a float→float Cast between Log and its users.
            let (li, cast) = match op_of(&w.input[2], "Cast") {
                Some(ci) if node(ci).attribute.iter().any(|a| a.name == "to" && a.i == 1) => {
                    (op_of(&node(ci).input[0], "Log")?, Some(ci))
                }
                _ => (op_of(&w.input[2], "Log")?, None),
            };
            let si = op_of(&w.input[1], "Sub")?;
            let (eq_in, inf) = with_const(node(ei))?;
            if eq_in != w.input[2] || inf != f32::INFINITY {
                return None;
            }
            let ai = op_of(&node(li).input[0], "Add")?;
            let (exp_out, one) = with_const(node(ai))?;
            if one != 1.0 {
                return None;
            }
            let xi = op_of(&exp_out, "Exp")?;
            if node(xi).input[0] != w.input[1] {
                return None;
            }
            let s = node(si);
            let x = s.input[0].clone();
            let offset = *consts.get(s.input[1].as_str())?;
            // Forward: Sub(g, Mul(x, slope)) then Sub(·, bias).
            let c1 = consumers.get(w.output[0].as_str())?;
            let [s1i] = c1.as_slice() else { return None };
            let s1 = node(*s1i);
            if s1.op_type != "Sub" || s1.input[0] != w.output[0] {
                return None;
            }
            let mi = op_of(&s1.input[1], "Mul")?;
            let (mul_x, slope) = with_const(node(mi))?;
            if mul_x != x {
                return None;
            }
            let c2 = consumers.get(s1.output[0].as_str())?;
            let [s2i] = c2.as_slice() else { return None };
            let s2 = node(*s2i);
            if s2.op_type != "Sub" || s2.input[0] != s1.output[0] {
                return None;
            }
            let bias = *consts.get(s2.input[1].as_str())?;
            // Intermediates used only inside the pattern.
            let log_users: Vec<usize> = match cast {
                Some(ci) => vec![ci],
                None => vec![ei, wi],
            };
            let ok = only_used_by(&s.output[0], &[xi, wi])
                && only_used_by(&node(xi).output[0], &[ai])
                && only_used_by(&node(ai).output[0], &[li])
                && only_used_by(&node(li).output[0], &log_users)
                && cast.is_none_or(|ci| only_used_by(&node(ci).output[0], &[ei, wi]))
                && only_used_by(&node(ei).output[0], &[wi])
                && only_used_by(&node(mi).output[0], &[*s1i])
                && only_used_by(&s1.output[0], &[*s2i]);
            if !ok {
                return None;
            }
            let fused = NodeProto {
                name: format!("{}.zipvox_swoosh", s2.name),
                op_type: FUSED_OP.into(),
                input: vec![x],
                output: vec![s2.output[0].clone()],
                attribute: vec![float_attr("offset", offset), float_attr("slope", slope), float_attr("bias", bias)],
                ..Default::default()
            };
            let mut removed = vec![si, xi, ai, li, ei, wi, mi, *s1i];
            removed.extend(cast);
            removed.push(*s2i);
            Some((removed, fused))
        })();
        if let Some((removed, fused)) = found {
            rewrites.push(Rewrite { at: *removed.last().unwrap(), removed, node: fused });
        }
    }
    apply(graph, rewrites)
}
