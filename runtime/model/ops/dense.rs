//! The decoder's dense ops in onnxruntime's summation order (`kernels::gemm`): `Gemm` with
//! constant weights and a grouped 1-D `Conv`. Their output feeds the joiner's int8 quantizer.

use crate::kernels::gemm::{gemm, grouped_conv1d, pack_k_by_n};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{Expansion, InferenceResult, Solver, TensorProxy};

/// `y = x · W(ᵀ) + b` for 2-D `x`, constant `W` (packed `k × n`) and `b`.
#[derive(Debug, Clone)]
pub struct ConstGemm {
    pub w_kn: Arc<Vec<f32>>,
    pub k: usize,
    pub n: usize,
    pub bias: Option<Arc<Vec<f32>>>,
}

impl PartialEq for ConstGemm {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.w_kn, &o.w_kn)
    }
}
impl Eq for ConstGemm {}

impl ConstGemm {
    fn kn(&self) -> (usize, usize) {
        (self.k, self.n)
    }
}

impl Op for ConstGemm {
    fn name(&self) -> StaticName {
        "ZipvoxGemm".into()
    }
    op_as_typed_op!();
}

impl EvalOp for ConstGemm {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let (k, n) = self.kn();
        let s = x.shape();
        if s.len() != 2 || s[1] != k {
            bail!("ZipvoxGemm: input {s:?} for k={k}");
        }
        let mut out = Tensor::zero::<f32>(&[s[0], n])?;
        {
            let xs = x.try_as_plain_ram()?;
            let mut ov = out.try_as_plain_ram_mut()?;
            let bias = self.bias.as_deref().map(|b| b.as_slice());
            gemm(xs.as_slice::<f32>()?, &self.w_kn, bias, s[0], k, n, ov.as_slice_mut::<f32>()?);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for ConstGemm {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact([inputs[0].shape[0].clone(), self.kn().1.into()])))
    }
    as_op!();
}

/// Inference form of `ZipvoxGemm` (ONNX `Gemm` with `transA = 0`, `alpha = beta = 1`, constant
/// `B` and `C`, as the rewrite checked).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct ConstGemmExpansion {
    pub trans_b: bool,
}

impl Expansion for ConstGemmExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxGemm".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&inputs[0].shape[0], &outputs[0].shape[0])?;
        let n_axis = if self.trans_b { 0 } else { 1 };
        s.equals(&inputs[1].shape[n_axis], &outputs[0].shape[1])
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let konst = |i: usize| -> TractResult<Arc<Tensor>> {
            model.outlet_fact(inputs[i])?.konst.clone().map(|t| t.into_arc_tensor()).with_context(|| format!("{prefix}: input {i} not constant"))
        };
        let w = konst(1)?;
        let ws = w.shape().to_vec();
        if ws.len() != 2 {
            bail!("{prefix}: Gemm weights {ws:?} are not a matrix");
        }
        let (k, n) = if self.trans_b { (ws[1], ws[0]) } else { (ws[0], ws[1]) };
        let w_kn = Arc::new(pack_k_by_n(w.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?, self.trans_b, k, n));
        let bias = if inputs.len() > 2 {
            let b = konst(2)?;
            let v = b.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            if v.len() != n {
                bail!("{prefix}: only a per-output bias of {n} values is supported, found {:?}", b.shape());
            }
            Some(Arc::new(v))
        } else {
            None
        };
        model.wire_node(prefix, ConstGemm { w_kn, k, n, bias }, &inputs[..1])
    }
}

/// Grouped 1-D convolution, constant weights, no bias, padding or stride.
#[derive(Debug, Clone)]
pub struct GroupedConv1d {
    pub w: Arc<Vec<f32>>,
    pub groups: usize,
    pub filters: usize,
    pub taps: usize,
}

impl PartialEq for GroupedConv1d {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.w, &o.w)
    }
}
impl Eq for GroupedConv1d {}

impl Op for GroupedConv1d {
    fn name(&self) -> StaticName {
        "ZipvoxGroupedConv1d".into()
    }
    op_as_typed_op!();
}

impl EvalOp for GroupedConv1d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let s = x.shape();
        if s.len() != 3 || s[2] < self.taps {
            bail!("ZipvoxGroupedConv1d: input {s:?}");
        }
        let (channels, len) = (s[1], s[2]);
        let out_len = len + 1 - self.taps;
        let mut out = Tensor::zero::<f32>(&[s[0], self.filters, out_len])?;
        {
            let xv = x.try_as_plain_ram()?;
            let xs = xv.as_slice::<f32>()?;
            let mut ov = out.try_as_plain_ram_mut()?;
            let os = ov.as_slice_mut::<f32>()?;
            for b in 0..s[0] {
                grouped_conv1d(
                    &xs[b * channels * len..(b + 1) * channels * len],
                    &self.w,
                    self.groups,
                    channels,
                    len,
                    self.filters,
                    self.taps,
                    &mut os[b * self.filters * out_len..(b + 1) * self.filters * out_len],
                );
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for GroupedConv1d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        Ok(tvec!(f32::fact([s[0].clone(), self.filters.into(), s[2].clone() + 1 - self.taps])))
    }
    as_op!();
}

/// Inference form of `ZipvoxGroupedConv1d` (ONNX `Conv`, 1-D, `group > 1` with several
/// channels per group, constant weights, no bias, no padding, stride and dilation 1).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct GroupedConv1dExpansion {
    pub groups: usize,
}

impl Expansion for GroupedConv1dExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxGroupedConv1d".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        s.equals(&inputs[0].datum_type, &outputs[0].datum_type)?;
        s.equals(&inputs[0].rank, 3)?;
        s.equals(&outputs[0].rank, 3)?;
        s.equals(&inputs[0].shape[0], &outputs[0].shape[0])?;
        s.equals(&inputs[1].shape[0], &outputs[0].shape[1])?;
        s.given_2(&inputs[0].shape[2], &inputs[1].shape[2], move |s, len, k| s.equals(&outputs[0].shape[2], len - k + 1))
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let w = model.outlet_fact(inputs[1])?.konst.clone().with_context(|| format!("{prefix}: weights not constant"))?;
        let ws = w.shape().to_vec();
        if ws.len() != 3 || ws[0] % self.groups != 0 {
            bail!("{prefix}: unsupported grouped conv weights {ws:?}");
        }
        let v = w.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        model.wire_node(prefix, GroupedConv1d { w: Arc::new(v), groups: self.groups, filters: ws[0], taps: ws[2] }, &inputs[..1])
    }
}
