//! `DepthwiseConv`: ONNX `Conv` with one group per channel, stride 1, dilation 1 and constant
//! weights, in 1-D or 2-D (`kernels::depthwise`). tract's generic depthwise path costs ~10× more
//! on Zipformer's shapes (a 7×7 ConvNeXt conv over 128 channels, and 31-tap convs over chunks of
//! 8–16 frames).

use crate::kernels::depthwise::{depthwise_conv_with, pack_weights, reads_channels_last, DepthwiseGeometry, SumOrder};
use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{
    check_output_arity, Expansion, InferenceResult, Solver, TensorProxy,
};

#[derive(Debug, Clone)]
pub struct DepthwiseConv {
    /// `[channels, k_h, k_w]` (k_h = 1 for 1-D).
    pub weights: Arc<Vec<f32>>,
    /// The weights as the kernel reads them (`pack_weights`: channels-last for 1-D, in blocks
    /// of 16 channels for 2-D), packed on the first call that reads them (every 2-D conv, 1-D
    /// over at most 16 positions; convs that never do keep no copy).
    pub weights_channels_last: Arc<OnceLock<Vec<f32>>>,
    pub bias: Option<Arc<Vec<f32>>>,
    pub channels: usize,
    pub kernel: [usize; 2],
    /// (top, bottom, left, right); 1-D uses left/right.
    pub pad: [usize; 4],
    /// Spatial rank of the input: 1 or 2.
    pub rank: usize,
}

impl PartialEq for DepthwiseConv {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &o.weights) && self.kernel == o.kernel && self.pad == o.pad && self.rank == o.rank
    }
}
impl Eq for DepthwiseConv {}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's scratch buffer (see [`super::release_thread_scratch`]).
pub(super) fn release_scratch() {
    SCRATCH.with(|s| *s.borrow_mut() = Vec::new());
}

impl DepthwiseConv {
    fn geometry(&self, spatial: &[usize]) -> DepthwiseGeometry {
        let (in_h, in_w) = if self.rank == 1 { (1, spatial[0]) } else { (spatial[0], spatial[1]) };
        DepthwiseGeometry {
            channels: self.channels,
            in_h,
            in_w,
            k_h: self.kernel[0],
            k_w: self.kernel[1],
            pad: self.pad,
            order: SumOrder::for_onnxruntime(self.rank, self.channels),
        }
    }

    fn out_spatial(&self, spatial: &[TDim]) -> TVec<TDim> {
        if self.rank == 1 {
            tvec!(spatial[0].clone() + self.pad[2] + self.pad[3] - (self.kernel[1] - 1))
        } else {
            tvec!(
                spatial[0].clone() + self.pad[0] + self.pad[1] - (self.kernel[0] - 1),
                spatial[1].clone() + self.pad[2] + self.pad[3] - (self.kernel[1] - 1)
            )
        }
    }
}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "ZipvoxDepthwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("channels={} kernel={:?} pad={:?}", self.channels, self.kernel, self.pad)])
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape();
        if shape.len() != self.rank + 2 || shape[1] != self.channels {
            bail!("ZipvoxDepthwiseConv: input {:?} for {} channels, rank {}", shape, self.channels, self.rank);
        }
        let g = self.geometry(&shape[2..]);
        let per_item_in = g.channels * g.in_h * g.in_w;
        let per_item_out = g.channels * g.out_h() * g.out_w();
        let mut out_shape: TVec<usize> = tvec!(shape[0], self.channels);
        if self.rank == 2 {
            out_shape.push(g.out_h());
        }
        out_shape.push(g.out_w());
        // SAFETY: f32 has no invalid bit patterns, and `depthwise_conv_with` writes every output
        // (kernels of at least one tap: `wire` refuses empty ones).
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        {
            let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
            let mut view = out.try_as_plain_ram_mut()?;
            let os = view.as_slice_mut::<f32>()?;
            let packed = reads_channels_last(&g)
                .then(|| self.weights_channels_last.get_or_init(|| pack_weights(&g, &self.weights)).as_slice());
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                for n in 0..shape[0] {
                    depthwise_conv_with(
                        &g,
                        &xs[n * per_item_in..(n + 1) * per_item_in],
                        &self.weights,
                        packed,
                        self.bias.as_deref().map(|b| b.as_slice()),
                        &mut os[n * per_item_out..(n + 1) * per_item_out],
                        &mut s,
                    );
                }
            });
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for DepthwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let s = &inputs[0].shape;
        if s.rank() != self.rank + 2 {
            bail!("ZipvoxDepthwiseConv: input rank {} for a {}-D conv", s.rank(), self.rank);
        }
        let mut shape: TVec<TDim> = tvec!(s[0].clone(), s[1].clone());
        shape.extend(self.out_spatial(&s.to_tvec()[2..]));
        Ok(tvec!(f32::fact(shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        let taps = self.kernel[0] * self.kernel[1];
        Ok(tvec!((Cost::FMA(f32::datum_type()), out[0].shape.volume() * taps)))
    }

    as_op!();
}

/// Inference-level form for the node type `rewrite::depthwise_conv` emits: inputs
/// `x, W[C,1,k…], [B[C]]`, attributes `pads`, `kernel_shape` as in ONNX Conv.
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct DepthwiseConvExpansion {
    pub pads: Vec<usize>,
}

impl Expansion for DepthwiseConvExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxDepthwiseConv".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, &outputs[0].rank)?;
        s.equals(&inputs[0].rank, &inputs[1].rank)?;
        s.equals(&inputs[0].shape[0], &outputs[0].shape[0])?;
        s.equals(&inputs[0].shape[1], &outputs[0].shape[1])?;
        s.equals(&inputs[1].shape[0], &outputs[0].shape[1])?;
        let pads = self.pads.clone();
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, x, w| {
            let rank = x.len() - 2;
            for i in 0..rank {
                let (b, e) = (pads.get(i).copied().unwrap_or(0), pads.get(i + rank).copied().unwrap_or(0));
                let k = w[i + 2].to_i64()?;
                if k < 1 {
                    bail!("depthwise convolution kernel {w:?} has an empty dimension");
                }
                s.equals(&outputs[0].shape[i + 2], x[i + 2].clone() + b + e - (k as usize - 1))?;
            }
            Ok(())
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let w = model.outlet_fact(inputs[1])?.konst.clone().with_context(|| format!("{prefix}: weights not constant"))?;
        let ws = w.shape().to_vec();
        let rank = ws.len() - 2;
        if !(1..=2).contains(&rank) || ws[1] != 1 {
            bail!("{prefix}: unsupported depthwise weight shape {ws:?}");
        }
        let channels = ws[0];
        let kernel = if rank == 1 { [1, ws[2]] } else { [ws[2], ws[3]] };
        if kernel.contains(&0) {
            bail!("{prefix}: depthwise weight shape {ws:?} has an empty kernel dimension");
        }
        let p = |i: usize| self.pads.get(i).copied().unwrap_or(0);
        let pad = if rank == 1 { [0, 0, p(0), p(1)] } else { [p(0), p(2), p(1), p(3)] };
        let weights = Arc::new(w.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec());
        let bias = match inputs.get(2) {
            Some(b) => {
                let b = model.outlet_fact(*b)?.konst.clone().with_context(|| format!("{prefix}: bias not constant"))?;
                Some(Arc::new(b.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()))
            }
            None => None,
        };
        let op = DepthwiseConv { weights, weights_channels_last: Arc::default(), bias, channels, kernel, pad, rank };
        model.wire_node(prefix, op, &inputs[..1])
    }
}
