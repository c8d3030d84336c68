//! `Conv2d`: ONNX `Conv` with one group, 2-D, constant weights (and bias), any stride and
//! explicit padding, dilation 1 (`kernels::conv2d`): Zipformer2's convolutional front end, in
//! onnxruntime's summation order so that the streams stay bit-identical to sherpa-onnx's.

use crate::kernels::conv2d::{conv2d, mlas_block, Conv2dGeometry, PackedConv2d};
use std::cell::RefCell;
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{check_output_arity, Expansion, InferenceResult, Solver, TensorProxy};

#[derive(Debug, Clone)]
pub struct Conv2d {
    /// Packed for the input's spatial size (fixed by the plan).
    pub packed: Arc<PackedConv2d>,
    pub bias: Option<Arc<Vec<f32>>>,
}

impl PartialEq for Conv2d {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.packed, &o.packed)
    }
}
impl Eq for Conv2d {}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's scratch buffer (see [`super::release_thread_scratch`]).
pub(super) fn release_scratch() {
    SCRATCH.with(|s| *s.borrow_mut() = Vec::new());
}

impl Op for Conv2d {
    fn name(&self) -> StaticName {
        "ZipvoxConv2d".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.packed.geometry;
        Ok(vec![format!(
            "{}→{} kernel={}x{} stride={:?} pad={:?} channel block={}",
            g.in_channels, g.out_channels, g.k_h, g.k_w, g.stride, g.pad, self.packed.block
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for Conv2d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let g = &self.packed.geometry;
        let shape = x.shape();
        if shape.len() != 4 || shape[1..] != [g.in_channels, g.in_h, g.in_w] {
            bail!("ZipvoxConv2d: input {:?}, packed for [N, {}, {}, {}]", shape, g.in_channels, g.in_h, g.in_w);
        }
        let per_in = g.in_channels * g.in_h * g.in_w;
        let per_out = g.out_channels * g.out_h() * g.out_w();
        // SAFETY: f32 has no invalid bit patterns, and `conv2d` writes every output element.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&[shape[0], g.out_channels, g.out_h(), g.out_w()])? };
        {
            let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
            let mut view = out.try_as_plain_ram_mut()?;
            let os = view.as_slice_mut::<f32>()?;
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                for n in 0..shape[0] {
                    conv2d(
                        &self.packed,
                        &xs[n * per_in..(n + 1) * per_in],
                        self.bias.as_deref().map(|b| b.as_slice()),
                        &mut os[n * per_out..(n + 1) * per_out],
                        &mut s,
                    );
                }
            });
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for Conv2d {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let g = &self.packed.geometry;
        let s = &inputs[0].shape;
        if s.rank() != 4 {
            bail!("ZipvoxConv2d: input rank {}", s.rank());
        }
        Ok(tvec!(f32::fact([s[0].clone(), g.out_channels.into(), g.out_h().into(), g.out_w().into()])))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.packed.geometry;
        let out = self.output_facts(inputs)?;
        Ok(tvec!((Cost::FMA(f32::datum_type()), out[0].shape.volume() * (g.in_channels * g.k_h * g.k_w))))
    }

    as_op!();
}

/// Inference-level form for the node type `rewrite::conv2d` emits: inputs `x, W[O,I,kh,kw],
/// [B[O]]`, attributes `pads` (ONNX order) and `strides`.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct Conv2dExpansion {
    pub pads: [usize; 4],
    pub strides: [usize; 2],
}

impl Conv2dExpansion {
    fn out_dim(&self, size: i64, k: i64, axis: usize) -> TractResult<i64> {
        let padded = size + self.pads[axis] as i64 + self.pads[axis + 2] as i64;
        if padded < k {
            bail!("ZipvoxConv2d: input size {size} smaller than kernel {k}");
        }
        Ok((padded - k) / self.strides[axis] as i64 + 1)
    }
}

impl Expansion for Conv2dExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxConv2d".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, 4)?;
        s.equals(&outputs[0].rank, 4)?;
        s.equals(&inputs[0].shape[0], &outputs[0].shape[0])?;
        s.equals(&inputs[1].shape[0], &outputs[0].shape[1])?;
        let this = self.clone();
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, w| {
            for axis in 0..2 {
                let size = x[axis + 2].to_i64()?;
                let k = w[axis + 2].to_i64()?;
                s.equals(&outputs[0].shape[axis + 2], TDim::from(this.out_dim(size, k, axis)?))?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let w = model.outlet_fact(inputs[1])?.konst.clone().with_context(|| format!("{prefix}: weights not constant"))?;
        let ws = w.shape().to_vec();
        let xs = model.outlet_fact(inputs[0])?.shape.as_concrete().map(|s| s.to_vec()).with_context(|| format!("{prefix}: input shape not fixed"))?;
        if ws.len() != 4 || xs.len() != 4 || xs[1] != ws[1] {
            bail!("{prefix}: unsupported conv weights {ws:?} for input {xs:?}");
        }
        let geometry = Conv2dGeometry {
            in_channels: ws[1],
            in_h: xs[2],
            in_w: xs[3],
            out_channels: ws[0],
            k_h: ws[2],
            k_w: ws[3],
            stride: self.strides,
            pad: self.pads,
        };
        let weights = w.cast_to::<f32>()?;
        let packed = PackedConv2d::new(geometry, weights.try_as_plain_ram()?.as_slice::<f32>()?, mlas_block(&geometry));
        let bias = match inputs.get(2) {
            Some(b) => {
                let b = model.outlet_fact(*b)?.konst.clone().with_context(|| format!("{prefix}: bias not constant"))?;
                Some(Arc::new(b.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
            }
            None => None,
        };
        model.wire_node(prefix, Conv2d { packed: Arc::new(packed), bias }, &inputs[..1])
    }
}
