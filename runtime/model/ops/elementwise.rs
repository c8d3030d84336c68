//! `Tanh` and `Sigmoid` as onnxruntime computes them on x86-64 (`kernels::activation`), in
//! place: they gate values that are quantized next (see `rewrite::ort_order`).

use crate::kernels::activation::{unary, UnaryFn};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{Expansion, InferenceResult, Solver, TensorProxy};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unary(pub UnaryFn);

impl Op for Unary {
    fn name(&self) -> StaticName {
        format!("Zipvox{:?}", self.0).into()
    }
    op_as_typed_op!();
}

impl EvalOp for Unary {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut t = inputs.remove(0).into_tensor();
        {
            let mut view = t.try_as_plain_ram_mut()?;
            unary(view.as_slice_mut::<f32>()?, self.0);
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for Unary {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(&self, inputs: &[&TypedFact], outputs: &[&TypedFact]) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    as_op!();
}

/// Inference-level form of `ZipvoxTanh` / `ZipvoxSigmoid` nodes; other types than f32 go to
/// tract's own ops.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct UnaryExpansion(pub UnaryFn);

impl Expansion for UnaryExpansion {
    fn name(&self) -> StaticName {
        format!("Zipvox{:?}", self.0).into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].shape, &outputs[0].shape)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        if model.outlet_fact(inputs[0])?.datum_type == f32::datum_type() {
            return model.wire_node(prefix, Unary(self.0), inputs);
        }
        let op: Box<dyn TypedOp> = match self.0 {
            UnaryFn::Tanh => Box::new(tract_onnx::tract_core::ops::math::tanh()),
            UnaryFn::Sigmoid => Box::new(tract_onnx::tract_core::ops::nn::sigmoid()),
        };
        model.wire_node(prefix, op, inputs)
    }
}
