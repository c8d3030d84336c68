//! Load-time fusion of Zipformer2's exported SwooshL/SwooshR subgraphs into `ZipvoxSwoosh`
//! (`ops::swoosh`). Two exported forms compute softplus (icefall `SwooshLOnnx`/`SwooshROnnx`
//! in the encoder layers, `logaddexp_onnx` in the ConvNeXt embedding):
//! ```text
//! guarded:   s = Sub(x, offset); l = Log(Add(Exp(s), 1)) [→ Cast]; g = Where(Equal(l, inf), s, l)
//! logaddexp: s = Sub(x, offset); g = Add(Max(0, s), Log(Add(1, Exp(Neg(Abs(Sub(0, s)))))))
//! both:      y = Sub(Sub(g, Mul(x, slope)), bias)
//! ```
//! Constants are scalar initializers or `Constant` nodes; intermediates must have no other
//! consumers.

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

    // The shared tail: `y = Sub(Sub(g, Mul(x, slope)), bias)`; returns (nodes, output, slope, bias).
    let tail = |g_out: &str, x: &str| -> Option<(Vec<usize>, String, String, f32, f32)> {
        let s1i = index.sole_consumer(g_out)?;
        let s1 = node(s1i);
        if s1.op_type != "Sub" || s1.input[0] != g_out {
            return None;
        }
        let mi = op_of(&s1.input[1], "Mul")?;
        let (mul_x, slope) = with_const(node(mi))?;
        if mul_x != x || !only_used_by(&node(mi).output[0], &[s1i]) {
            return None;
        }
        let s2i = index.sole_consumer(&s1.output[0])?;
        let s2 = node(s2i);
        if s2.op_type != "Sub" || s2.input[0] != s1.output[0] {
            return None;
        }
        let bias = *consts.get(s2.input[1].as_str())?;
        Some((vec![mi, s1i, s2i], s2.output[0].clone(), s2.name.clone(), slope, bias))
    };
    let is = |name: &str, v: f32| consts.get(name) == Some(&v);

    let mut rewrites = Vec::new();
    for (gi, g) in graph.node.iter().enumerate() {
        // Returns (x, offset, nodes of the softplus part, guarded form?) for either form ending at `g`.
        let head = (|| -> Option<(String, f32, Vec<usize>, bool)> {
            if g.op_type == "Where" && g.input.len() == 3 {
                let w = g;
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
                let xi = op_of(&exp_out, "Exp")?;
                if one != 1.0 || node(xi).input[0] != w.input[1] {
                    return None;
                }
                let s = node(si);
                let offset = *consts.get(s.input[1].as_str())?;
                let log_users: Vec<usize> = match cast {
                    Some(ci) => vec![ci],
                    None => vec![ei, gi],
                };
                let ok = only_used_by(&s.output[0], &[xi, gi])
                    && only_used_by(&node(xi).output[0], &[ai])
                    && only_used_by(&node(ai).output[0], &[li])
                    && only_used_by(&node(li).output[0], &log_users)
                    && cast.is_none_or(|ci| only_used_by(&node(ci).output[0], &[ei, gi]))
                    && only_used_by(&node(ei).output[0], &[gi]);
                if !ok {
                    return None;
                }
                let mut nodes = vec![si, xi, ai, li, ei, gi];
                nodes.extend(cast);
                Some((s.input[0].clone(), offset, nodes, true))
            } else if g.op_type == "Add" && g.input.len() == 2 {
                let (maxi, logi) = match (op_of(&g.input[0], "Max"), op_of(&g.input[1], "Log")) {
                    (Some(m), Some(l)) => (m, l),
                    _ => (op_of(&g.input[1], "Max")?, op_of(&g.input[0], "Log")?),
                };
                let (s_out, zero) = with_const(node(maxi))?;
                let si = op_of(&s_out, "Sub")?;
                let s = node(si);
                let offset = *consts.get(s.input[1].as_str())?;
                let ai = op_of(&node(logi).input[0], "Add")?;
                let (exp_out, one) = with_const(node(ai))?;
                let ei = op_of(&exp_out, "Exp")?;
                let ni = op_of(&node(ei).input[0], "Neg")?;
                let bi = op_of(&node(ni).input[0], "Abs")?;
                let zi = op_of(&node(bi).input[0], "Sub")?;
                let z = node(zi);
                if zero != 0.0 || one != 1.0 || !is(&z.input[0], 0.0) || z.input[1] != s_out {
                    return None;
                }
                let ok = only_used_by(&s_out, &[maxi, zi])
                    && only_used_by(&z.output[0], &[bi])
                    && only_used_by(&node(bi).output[0], &[ni])
                    && only_used_by(&node(ni).output[0], &[ei])
                    && only_used_by(&node(ei).output[0], &[ai])
                    && only_used_by(&node(ai).output[0], &[logi])
                    && only_used_by(&node(logi).output[0], &[gi])
                    && only_used_by(&node(maxi).output[0], &[gi]);
                if !ok {
                    return None;
                }
                Some((s.input[0].clone(), offset, vec![si, maxi, zi, bi, ni, ei, ai, logi, gi], false))
            } else {
                None
            }
        })();
        let Some((x, offset, mut removed, guarded)) = head else { continue };
        let Some((tail_nodes, output, name, slope, bias)) = tail(&g.output[0], &x) else { continue };
        removed.extend(&tail_nodes);
        let fused = NodeProto {
            name: format!("{name}.zipvox_swoosh"),
            op_type: FUSED_OP.into(),
            input: vec![x],
            output: vec![output],
            attribute: vec![
                float_attr("offset", offset),
                float_attr("slope", slope),
                float_attr("bias", bias),
                AttributeProto { name: "guarded".into(), i: guarded as i64, r#type: AttributeType::Int as i32, ..Default::default() },
            ],
            ..Default::default()
        };
        rewrites.push(Rewrite { at: *tail_nodes.last().unwrap(), removed, node: fused });
    }
    apply(graph, rewrites)
}
