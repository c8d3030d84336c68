//! `Softmax` and `ReduceMean` over the last axis in onnxruntime's summation order
//! (`kernels::softmax`, `kernels::reduce`): attention weights and BiasNorm scales feed dynamic
//! quantizers, where one ulp can flip an int8 rounding. Any other axis falls back to tract's
//! own lowering (same results up to rounding).

use crate::kernels::reduce::{mean_rows, sum_axis};
use crate::kernels::softmax::softmax_rows;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::infer::rules::expr::IntoExp;
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

/// Mean over the last axis of an f32 tensor, the axis kept (size 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LastAxisMean;

impl Op for LastAxisMean {
    fn name(&self) -> StaticName {
        "ZipvoxMean".into()
    }
    op_as_typed_op!();
}

impl EvalOp for LastAxisMean {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let mut shape: TVec<usize> = x.shape().into();
        let row = shape.last().copied().unwrap_or(1);
        if let Some(last) = shape.last_mut() {
            *last = 1;
        }
        let mut out = Tensor::zero::<f32>(&shape)?;
        {
            let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
            let mut view = out.try_as_plain_ram_mut()?;
            mean_rows(xs, row, view.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for LastAxisMean {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        if let Some(last) = shape.last_mut() {
            *last = 1.into();
        }
        Ok(tvec!(f32::fact(shape)))
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

/// Inference-level form of `ZipvoxReduceMean` nodes (renamed ONNX `ReduceMean` with an `axes`
/// attribute, opset < 18).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ReduceMeanExpansion {
    pub axes: Vec<i64>,
    pub keep_dims: bool,
}

impl ReduceMeanExpansion {
    fn tract(&self) -> Reduce {
        Reduce::new(Some(self.axes.clone()), self.keep_dims, Reducer::Mean)
    }
}

impl Expansion for ReduceMeanExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxReduceMean".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        if self.keep_dims {
            s.equals(&inputs[0].rank, &outputs[0].rank)?;
        } else {
            s.equals(inputs[0].rank.bex() - self.axes.len() as i64, &outputs[0].rank)?;
        }
        let this = self.clone();
        s.given(&inputs[0].shape, move |s, shape| s.equals(&outputs[0].shape, this.tract().output_shape(&shape)))
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let rank = fact.rank() as i64;
        let last = matches!(self.axes.as_slice(), [a] if *a == -1 || *a == rank - 1);
        if !last || fact.datum_type != f32::datum_type() || rank == 0 {
            return self.tract().wire(prefix, model, inputs);
        }
        let mean = model.wire_node(prefix, LastAxisMean, inputs)?;
        if self.keep_dims {
            Ok(mean)
        } else {
            model.wire_node(format!("{prefix}.squeeze"), AxisOp::Rm(rank as usize - 1), &mean)
        }
    }
}

/// Sum over one axis of an f32 tensor, the axis kept (size 1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AxisSum {
    pub axis: usize,
}

impl Op for AxisSum {
    fn name(&self) -> StaticName {
        "ZipvoxSum".into()
    }
    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("axis {}", self.axis)])
    }
    op_as_typed_op!();
}

impl EvalOp for AxisSum {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        // onnxruntime drops size-1 axes before choosing its reduction kernel.
        let outer: usize = shape[..self.axis].iter().product();
        let inner: usize = shape[self.axis + 1..].iter().product();
        let mut out_shape: TVec<usize> = shape.into();
        out_shape[self.axis] = 1;
        let mut out = Tensor::zero::<f32>(&out_shape)?;
        {
            let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
            let mut view = out.try_as_plain_ram_mut()?;
            sum_axis(xs, outer, shape[self.axis], inner, view.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for AxisSum {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        shape[self.axis] = 1.into();
        Ok(tvec!(f32::fact(shape)))
    }

    as_op!();
}

/// Inference-level form of `ZipvoxReduceSum` nodes (ONNX `ReduceSum` whose constant axes the
/// rewrite moved into an attribute).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ReduceSumExpansion {
    pub axes: Vec<i64>,
    pub keep_dims: bool,
}

impl ReduceSumExpansion {
    fn tract(&self) -> Reduce {
        Reduce::new(Some(self.axes.clone()), self.keep_dims, Reducer::Sum)
    }
}

impl Expansion for ReduceSumExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxReduceSum".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        if self.keep_dims {
            s.equals(&inputs[0].rank, &outputs[0].rank)?;
        } else {
            s.equals(inputs[0].rank.bex() - self.axes.len() as i64, &outputs[0].rank)?;
        }
        let this = self.clone();
        s.given(&inputs[0].shape, move |s, shape| s.equals(&outputs[0].shape, this.tract().output_shape(&shape)))
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let fact = model.outlet_fact(inputs[0])?.clone();
        let rank = fact.rank() as i64;
        let axis = match self.axes.as_slice() {
            [a] if (-rank..rank).contains(a) => a.rem_euclid(rank.max(1)) as usize,
            _ => return self.tract().wire(prefix, model, inputs),
        };
        if fact.datum_type != f32::datum_type() || fact.shape.as_concrete().is_none() {
            return self.tract().wire(prefix, model, inputs);
        }
        let sum = model.wire_node(prefix, AxisSum { axis }, inputs)?;
        if self.keep_dims {
            Ok(sum)
        } else {
            model.wire_node(format!("{prefix}.squeeze"), AxisOp::Rm(axis), &sum)
        }
    }
}
