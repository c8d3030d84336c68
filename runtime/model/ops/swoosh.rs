//! `Swoosh`: Zipformer2's SwooshL / SwooshR activation as one elementwise op.
//!
//! `swoosh(x) = softplus(x - offset) - slope·x - bias` (SwooshL: offset 4, slope 0.08,
//! bias 0.035; SwooshR: offset 1, slope 0.08, bias 0.313261687), exported by icefall as eight to
//! twelve ONNX nodes (an `Equal(·, inf)`/`Where` overflow guard, or a `logaddexp` form).
//! Evaluated node by node, each allocates and walks the tensor; here it is one vectorized pass,
//! in place (`kernels::activation`).

use crate::kernels::activation::SoftplusForm;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{
    check_input_arity, check_output_arity, Expansion, InferenceResult, Solver, TensorProxy,
};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Swoosh {
    pub offset: f32,
    pub slope: f32,
    pub bias: f32,
    /// Which exported softplus form to mirror (rounding follows that graph).
    pub form: SoftplusForm,
}

impl Eq for Swoosh {}

impl Swoosh {
    pub fn apply_slice(&self, xs: &mut [f32]) {
        crate::kernels::activation::swoosh(xs, self.offset, self.slope, self.bias, self.form)
    }
}

impl Op for Swoosh {
    fn name(&self) -> StaticName {
        "ZipvoxSwoosh".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("offset={} slope={} bias={} {:?}", self.offset, self.slope, self.bias, self.form)])
    }

    op_as_typed_op!();
}

impl EvalOp for Swoosh {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // Reuses the input's buffer when nothing else holds it.
        let mut t = inputs.remove(0).into_tensor();
        {
            let mut view = t.try_as_plain_ram_mut()?;
            self.apply_slice(view.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for Swoosh {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        if inputs[0].datum_type != f32::datum_type() {
            bail!("ZipvoxSwoosh expects f32, got {:?}", inputs[0].datum_type);
        }
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(&self, inputs: &[&TypedFact], outputs: &[&TypedFact]) -> TractResult<AxesMapping> {
        AxesMapping::natural(inputs, outputs)
    }

    as_op!();
}

/// Inference-level form registered for the node type `rewrite::swoosh` emits.
#[derive(Debug, Clone, PartialEq)]
pub struct SwooshExpansion {
    pub offset: f32,
    pub slope: f32,
    pub bias: f32,
    pub form: SoftplusForm,
}

impl std::hash::Hash for SwooshExpansion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.offset.to_bits().hash(state);
        self.slope.to_bits().hash(state);
        self.bias.to_bits().hash(state);
        self.form.hash(state);
    }
}

impl Expansion for SwooshExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxSwoosh".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        check_output_arity(outputs, 1)?;
        s.equals(&inputs[0].datum_type, f32::datum_type())?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].shape, &outputs[0].shape)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let op = Swoosh { offset: self.offset, slope: self.slope, bias: self.bias, form: self.form };
        model.wire_node(prefix, op, inputs)
    }
}
