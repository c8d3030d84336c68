//! Load-time repair of a known defect in upstream's fixed-shape ("-mobile") Zipformer2 exports.
//!
//! In `SimpleDownsample`, PyTorch pads the chunk to a multiple of the downsampling factor by
//! repeating its last frame `pad` times. Tracing a 16-frame chunk gives `pad = 0`, but the
//! constant-folded export kept one repeated frame: `Concat(x, Slice(x, [len-1:]))` followed by
//! a `Reshape` to `[len/ds, ds, …]`, which then fails (`Input shape {17,1,128}, requested shape
//! {8,2,1,128}`) in onnxruntime and tract alike. The repair drops the spurious Concat input, but
//! only when the Reshape right after proves it spurious (its leading dims multiply to `len`).

use anyhow::Result;
use super::attr_int;
use tract_onnx::pb::ModelProto;

/// Reads a small integer constant (an initializer or a `Constant` node output) as i64 values.
fn int_constant(model: &ModelProto, name: &str) -> Option<Vec<i64>> {
    let graph = model.graph.as_ref()?;
    let proto = graph.initializer.iter().find(|t| t.name == name).cloned().or_else(|| {
        graph
            .node
            .iter()
            .find(|n| n.op_type == "Constant" && n.output.iter().any(|o| o == name))
            .and_then(|n| n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.clone()))
    })?;
    let onnx = tract_onnx::onnx();
    let t = tract_onnx::tensor::load_tensor(&*onnx.provider, &proto, None).ok()?;
    let t = t.cast_to::<i64>().ok()?.into_owned();
    let v = t.try_as_plain_ram().ok()?.as_slice::<i64>().ok()?.to_vec();
    Some(v)
}

/// Finds `Concat(x, Slice(x, [s..], axis 0))` nodes whose consumer `Reshape` wants exactly `s+1`
/// rows, and removes the spurious second input. Returns the names of the repaired nodes.
pub fn repair_downsample_padding(model: &mut ModelProto) -> Result<Vec<String>> {
    let Some(graph) = model.graph.as_ref() else { return Ok(vec![]) };
    let mut fixes: Vec<(usize, String)> = Vec::new();
    for (ix, concat) in graph.node.iter().enumerate() {
        if concat.op_type != "Concat" || concat.input.len() != 2 || attr_int(concat, "axis") != Some(0) {
            continue;
        }
        let (x, tail) = (&concat.input[0], &concat.input[1]);
        let Some(slice) = graph.node.iter().find(|n| n.op_type == "Slice" && n.output.first() == Some(tail))
        else {
            continue;
        };
        if slice.input.len() < 3 || &slice.input[0] != x {
            continue;
        }
        let starts = int_constant(model, &slice.input[1]);
        let ends = int_constant(model, &slice.input[2]);
        let axes = slice.input.get(3).and_then(|a| int_constant(model, a)).unwrap_or(vec![0]);
        let (Some(starts), Some(ends)) = (starts, ends) else { continue };
        if starts.len() != 1 || axes != vec![0] || ends != vec![i64::MAX] || starts[0] <= 0 {
            continue;
        }
        let x_len = starts[0] + 1; // `x[len-1:]`: the slice repeats exactly the last frame
        let Some(reshape) = graph
            .node
            .iter()
            .find(|n| n.op_type == "Reshape" && n.input.first() == concat.output.first())
        else {
            continue;
        };
        let Some(shape) = reshape.input.get(1).and_then(|s| int_constant(model, s)) else { continue };
        if shape.len() >= 2 && shape[0] > 0 && shape[1] > 0 && shape[0] * shape[1] == x_len {
            fixes.push((ix, concat.name.clone()));
        }
    }
    if let Some(graph) = model.graph.as_mut() {
        for (ix, _) in &fixes {
            graph.node[*ix].input.truncate(1);
        }
        // Stale shape annotations of the repaired tensors would contradict the new shapes.
        if !fixes.is_empty() {
            graph.value_info.clear();
        }
    }
    Ok(fixes.into_iter().map(|(_, n)| n).collect())
}
