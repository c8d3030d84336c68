//! `MoveAxis` of an f32 tensor (after tract's optimizations, see `optimized::moves_as_copies`)
//! through `kernels::transpose`: the encoders move axes 73 (3.3M model) to 177 (medium) times
//! a chunk, and tract's generic move copies value by value through an ndarray iterator.

use crate::kernels::transpose::{move_axis_as_transpose, transpose};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// Moves axis `from` to position `to` (the other axes keep their order), as tract's
/// `AxisOp::Move`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MoveAxisF32 {
    pub from: usize,
    pub to: usize,
}

impl MoveAxisF32 {
    fn out_shape<D: Clone>(&self, shape: &[D]) -> TVec<D> {
        let mut s: TVec<D> = shape.into();
        let moved = s.remove(self.from);
        s.insert(self.to, moved);
        s
    }
}

impl Op for MoveAxisF32 {
    fn name(&self) -> StaticName {
        "ZipvoxMoveAxis".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("axis {} to {}", self.from, self.to)])
    }

    op_as_typed_op!();
}

impl EvalOp for MoveAxisF32 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        if self.from >= shape.len() || self.to >= shape.len() {
            bail!("ZipvoxMoveAxis: axis {} to {} of a rank-{} input", self.from, self.to, shape.len());
        }
        let (outer, rows, cols, inner) = move_axis_as_transpose(shape, self.from, self.to);
        // SAFETY: f32 has no invalid bit patterns, and `transpose` writes every element.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.out_shape(shape))? };
        {
            let src = x.try_as_plain_ram()?;
            let mut dst = out.try_as_plain_ram_mut()?;
            transpose(src.as_slice::<f32>()?, dst.as_slice_mut::<f32>()?, outer, rows, cols, inner);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for MoveAxisF32 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        if inputs[0].datum_type != f32::datum_type() || self.from >= s.rank() || self.to >= s.rank() {
            bail!("ZipvoxMoveAxis: axis {} to {} of {:?}", self.from, self.to, inputs[0]);
        }
        Ok(tvec!(f32::fact(self.out_shape(&s.to_tvec()))))
    }

    as_op!();
}
