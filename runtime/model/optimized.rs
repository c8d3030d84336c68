//! Passes over tract's optimized graph, run before the plan is built: patterns that tract's own
//! optimizer leaves behind and that cost time every chunk. Each keeps every value bit for bit.
//!
//! - [`select_masks`]: mask selects (`Where(mask, c, x)`) as `ops::select::SelectConst`.
//! - [`moves_as_reshapes`]: axis moves that move no data (the moved axis, or every axis it
//!   jumps over, has length 1) as reshapes: tract copies the tensor for every `MoveAxis`.
//! - [`moves_as_copies`]: the other f32 axis moves as `ops::move_axis::MoveAxisF32` (blocked
//!   transposes instead of tract's value-by-value copy).

use super::ops::move_axis::MoveAxisF32;
use super::ops::select::SelectConst;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::{AxisOp, IntoShape};

/// Runs every pass; returns (mask selects, moves made reshapes, moves made [`MoveAxisF32`]).
pub fn run(model: &mut TypedModel) -> TractResult<(usize, usize, usize)> {
    Ok((select_masks(model)?, moves_as_reshapes(model)?, moves_as_copies(model)?))
}

/// Every `Iff` that selects a scalar constant into an f32 tensor of its own shape (the encoders'
/// masks) becomes [`SelectConst`] (after tract's optimizations, which is when an expanded
/// constant is known to be one value everywhere); returns how many.
pub fn select_masks(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        if !node.op_is::<tract_onnx::tract_core::ops::logic::Iff>() || node.inputs.len() != 3 {
            continue;
        }
        let (mask, value, x) = (model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?, model.outlet_fact(node.inputs[2])?);
        // A constant, or a value tract knows to be the same everywhere (an expanded constant).
        let scalar = value
            .konst
            .as_ref()
            .or(value.uniform.as_ref())
            .filter(|k| k.datum_type() == f32::datum_type() && k.len() == 1)
            .and_then(|k| k.try_as_plain_ram().ok().and_then(|v| v.as_slice::<f32>().ok().map(|s| s[0])));
        let out = &node.outputs[0].fact;
        let fits = mask.datum_type == bool::datum_type()
            && x.datum_type == f32::datum_type()
            && out.datum_type == f32::datum_type()
            && x.shape == out.shape
            && mask.rank() == x.rank()
            && mask.shape.iter().zip(x.shape.iter()).all(|(m, d)| m.is_one() || m == d);
        let Some(value) = scalar.filter(|_| fits) else { continue };
        // A mask broadcast by an `Expand` is read before it: the select broadcasts it itself.
        let mut mask_in = node.inputs[0];
        let src = model.node(mask_in.node);
        if src.op_is::<tract_onnx::tract_core::ops::array::MultiBroadcastTo>() {
            let pre = model.outlet_fact(src.inputs[0])?;
            if pre.rank() == x.rank() && pre.shape.iter().zip(x.shape.iter()).all(|(m, d)| m.is_one() || m == d) {
                mask_in = src.inputs[0];
            }
        }
        let inputs = [mask_in, node.inputs[2]];
        let patch = TypedModelPatch::replace_single_op(model, node, &inputs, SelectConst { value })?;
        patch.apply(model)?;
        count += 1;
    }
    Ok(count)
}

/// Every `MoveAxis` whose move leaves the elements in place (the moved axis has length 1, or
/// every axis between its old and new place does) becomes an `IntoShape`, which only relabels
/// the buffer; returns how many.
pub fn moves_as_reshapes(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(&AxisOp::Move(from, to)) = node.op_as::<AxisOp>() else { continue };
        let Some(shape) = model.outlet_fact(node.inputs[0])?.shape.as_concrete().map(|s| s.to_vec()) else { continue };
        let (lo, hi) = (from.min(to), from.max(to));
        if !(shape[from] == 1 || (lo..=hi).filter(|&a| a != from).all(|a| shape[a] == 1)) {
            continue;
        }
        let out: TVec<usize> = node.outputs[0].fact.shape.as_concrete().context("concrete input, concrete output")?.into();
        let mapping = {
            let (inputs, outputs) = model.node_facts(id)?;
            AxisOp::Move(from, to).axes_mapping(&inputs, &outputs)?
        };
        let op = IntoShape { mapping, len: out.iter().product(), strides: Tensor::natural_strides(&out), dims: out };
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
        patch.apply(model)?;
        count += 1;
    }
    Ok(count)
}

/// Every f32 `MoveAxis` left (after [`moves_as_reshapes`]) becomes [`MoveAxisF32`]; returns
/// how many.
pub fn moves_as_copies(model: &mut TypedModel) -> TractResult<usize> {
    let mut count = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(&AxisOp::Move(from, to)) = node.op_as::<AxisOp>() else { continue };
        if model.outlet_fact(node.inputs[0])?.datum_type != f32::datum_type() || from == to {
            continue;
        }
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, MoveAxisF32 { from, to })?;
        patch.apply(model)?;
        count += 1;
    }
    Ok(count)
}
