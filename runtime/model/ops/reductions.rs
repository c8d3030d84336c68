//! `Softmax` over the last axis, `ReduceSum` over one axis and `ReduceMean` over the last axis,
//! in onnxruntime's summation order (`kernels::softmax`, `kernels::reduce`): attention weights,
//! downsampling sums and BiasNorm scales feed dynamic quantizers, where one ulp can flip an int8
//! rounding. Anything else falls back to tract's own lowering (same results up to rounding).

use crate::kernels::reduce::sum_axis;
use crate::kernels::softmax::softmax_rows;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{Expansion, InferenceResult, Solver, TensorProxy};
use tract_onnx::tract_hir::ops::nn::{Reduce, Reducer, Softmax};

/// Softmax over the last axis of an f32 tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LastAxisSoftmax;

impl Op for LastAxisSoftmax {
    fn name(&self) -> StaticName {
        "ZipvoxSoftmax".into()
    }
    op_as_typed_op!();
}

impl EvalOp for LastAxisSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut t = inputs.remove(0).into_tensor();
        let row = t.shape().last().copied().unwrap_or(1);
        {
            let mut view = t.try_as_plain_ram_mut()?;
            softmax_rows(view.as_slice_mut::<f32>()?, row);
        }
        Ok(tvec!(t.into_tvalue()))
    }
}

impl TypedOp for LastAxisSoftmax {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    fn axes_mapping(&self, inputs: &[&TypedFact], outputs: &[&TypedFact]) -> TractResult<AxesMapping> {
        // The last axis is reduced over: only the others map one to one.
        let rank = inputs[0].rank();
        let mut mapping = AxesMapping::disconnected(inputs, outputs)?;
        for a in 0..rank.saturating_sub(1) {
            let repr = mapping.axis((InOut::In(0), a))?.repr;
            mapping = mapping.linking(repr, (InOut::Out(0), a))?;
        }
        Ok(mapping)
    }

    as_op!();
}

/// Inference-level form of `ZipvoxSoftmax` nodes (renamed ONNX `Softmax`, opset >= 13).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct SoftmaxExpansion {
    pub axis: isize,
}

impl Expansion for SoftmaxExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxSoftmax".into()
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
        let fact = model.outlet_fact(inputs[0])?.clone();
        let last = self.axis == -1 || self.axis == fact.rank() as isize - 1;
        if last && fact.datum_type == f32::datum_type() {
            model.wire_node(prefix, LastAxisSoftmax, inputs)
        } else {
            Softmax::new(self.axis).wire(prefix, model, inputs)
        }
    }
}

/// Sum (or mean: the sum divided by the axis length, as onnxruntime's `ReduceMean` does) over
/// one axis of an f32 tensor, the axis kept (size 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AxisReduce {
    pub axis: usize,
    pub mean: bool,
}

impl Op for AxisReduce {
    fn name(&self) -> StaticName {
        if self.mean { "ZipvoxMean" } else { "ZipvoxSum" }.into()
    }
    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("axis {}", self.axis)])
    }
    op_as_typed_op!();
}

impl EvalOp for AxisReduce {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        let len = shape[self.axis];
        let outer: usize = shape[..self.axis].iter().product();
        let inner: usize = shape[self.axis + 1..].iter().product();
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[self.axis] = 1;
        let mut out = Tensor::zero::<f32>(&out_shape)?;
        {
            let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
            let mut view = out.try_as_plain_ram_mut()?;
            let os = view.as_slice_mut::<f32>()?;
            sum_axis(xs, outer, len, inner, os);
            if self.mean {
                os.iter_mut().for_each(|v| *v /= len as f32);
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for AxisReduce {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        shape[self.axis] = 1.into();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// Inference-level form of `ZipvoxReduceSum` / `ZipvoxReduceMean` nodes (ONNX `ReduceSum` whose
/// constant axes the rewrite moved into an attribute; `ReduceMean` with an `axes` attribute,
/// opset < 18). Shape rules are tract's `Reduce`'s; anything but one axis of a fixed-shape f32
/// tensor (for the mean: the last axis, the only one whose order is checked against
/// onnxruntime) is wired as tract's `Reduce`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ReduceExpansion(pub Reduce);

impl ReduceExpansion {
    pub fn new(axes: Vec<i64>, keep_dims: bool, mean: bool) -> Self {
        ReduceExpansion(Reduce::new(Some(axes), keep_dims, if mean { Reducer::Mean } else { Reducer::Sum }))
    }
}

impl Expansion for ReduceExpansion {
    fn name(&self) -> StaticName {
        format!("Zipvox{}", self.0.name()).into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        self.0.rules(s, inputs, outputs)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let rank = fact.rank() as i64;
        let mean = self.0.reducer == Reducer::Mean;
        let axis = match self.0.axes.as_deref() {
            Some([a]) if (-rank..rank).contains(a) => a.rem_euclid(rank) as usize,
            _ => return self.0.wire(prefix, model, inputs),
        };
        let ours = fact.datum_type == f32::datum_type()
            && fact.shape.as_concrete().is_some()
            && (!mean || axis as i64 == rank - 1);
        if !ours {
            return self.0.wire(prefix, model, inputs);
        }
        let reduced = model.wire_node(prefix, AxisReduce { axis, mean }, inputs)?;
        if self.0.keep_dims {
            Ok(reduced)
        } else {
            model.wire_node(format!("{prefix}.squeeze"), AxisOp::Rm(axis), &reduced)
        }
    }
}
