//! `Conv2d`: ONNX `Conv` with one group, 2-D, constant weights (and bias), any stride and
//! explicit padding, dilation 1 (`kernels::conv2d`): Zipformer2's convolutional front end, in
//! onnxruntime's summation order so that the streams stay bit-identical to sherpa-onnx's.
//!
//! The front end's 3×3 convolutions see each feature frame in several chunks: a chunk is 45
//! frames and the next starts 32 later, so conv.0, conv.4 and conv.7 recompute 11 of 43, 5 of
//! 21 and 3 of 19 output rows (time) that the previous chunk already produced. Each stream's
//! node keeps a [`RowMemo`] (a tract op state, one per stream's plan state): when the input's
//! first rows are bit for bit the previous input's last rows, the output rows that read only
//! those are copied from the previous output instead of computed. The equality is checked on
//! every call, so the memo can never change a value, whatever the caller feeds.

use crate::kernels::conv2d::{conv2d_rows, mlas_block, Conv2dGeometry, PackedConv2d};
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

impl Conv2d {
    /// Whether a stream's calls may share rows (see the module docs): kernels taller than one
    /// row and no padding along the rows (time), so that output row `y` reads input rows
    /// `y·stride .. y·stride + k_h` and nothing else.
    fn memoizes(&self) -> bool {
        let g = &self.packed.geometry;
        g.k_h > 1 && g.pad[0] == 0 && g.pad[2] == 0
    }

    /// The convolution of every item of `x`, output rows `0..reuse` of item 0 left unwritten.
    fn compute(&self, x: &TValue, reuse: usize) -> TractResult<Tensor> {
        let g = &self.packed.geometry;
        let shape = x.shape();
        if shape.len() != 4 || shape[1..] != [g.in_channels, g.in_h, g.in_w] {
            bail!("ZipvoxConv2d: input {:?}, packed for [N, {}, {}, {}]", shape, g.in_channels, g.in_h, g.in_w);
        }
        let per_in = g.in_channels * g.in_h * g.in_w;
        let per_out = g.out_channels * g.out_h() * g.out_w();
        // SAFETY: f32 has no invalid bit patterns; `conv2d` writes every output element, and
        // the caller of `reuse > 0` writes the rows left out.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&[shape[0], g.out_channels, g.out_h(), g.out_w()])? };
        {
            let xs = x.try_as_plain_ram()?.as_slice::<f32>()?;
            let mut view = out.try_as_plain_ram_mut()?;
            let os = view.as_slice_mut::<f32>()?;
            SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                for n in 0..shape[0] {
                    conv2d_rows(
                        &self.packed,
                        &xs[n * per_in..(n + 1) * per_in],
                        self.bias.as_deref().map(|b| b.as_slice()),
                        &mut os[n * per_out..(n + 1) * per_out],
                        &mut s,
                        if n == 0 { reuse } else { 0 },
                    );
                }
            });
        }
        Ok(out)
    }
}

impl EvalOp for Conv2d {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        Ok(tvec!(self.compute(&inputs[0], 0)?.into_tvalue()))
    }

    fn state(&self, _ctx: &EvalContext) -> TractResult<Option<Box<dyn OpState>>> {
        Ok(self.memoizes().then(|| Box::new(RowMemo::default()) as Box<dyn OpState>))
    }
}

/// One stream's memory of its last call to a [`Conv2d`] (see the module docs): copies of the
/// rows a next call can use (~80 KB for the 3.3M front end's three), not the tensors
/// themselves, so that no tract buffer stays alive from one chunk to the next.
#[derive(Debug, Clone, Default)]
pub struct RowMemo {
    /// Input rows `in_from..in_h` of the previous call, `[in_channels][rows][in_w]`; empty
    /// before the first call.
    in_rows: Vec<f32>,
    in_from: usize,
    /// Output rows `from..out_h` of the previous call, `[out_channels][rows][out_w]`.
    out_rows: Vec<f32>,
    from: usize,
    /// Input rows the stream advanced by between two calls, once seen.
    shift: Option<usize>,
    /// Output rows copied instead of computed, over all calls (for tests).
    reused: usize,
}

/// Copies rows `from..rows` of every `[rows][width]` channel of `src` into `dst`.
fn keep_rows(dst: &mut Vec<f32>, src: &[f32], channels: usize, rows: usize, width: usize, from: usize) {
    let kept = (rows - from) * width;
    dst.resize(channels * kept, 0.0);
    for c in 0..channels {
        dst[c * kept..(c + 1) * kept].copy_from_slice(&src[(c * rows + from) * width..(c + 1) * rows * width]);
    }
}

impl RowMemo {
    /// Whether the kept input rows from `d` on equal rows `0..h - d` of `x`, bit for bit, in
    /// every channel.
    fn follows(&self, x: &[f32], g: &Conv2dGeometry, d: usize) -> bool {
        let (h, w) = (g.in_h, g.in_w);
        let kept = (h - self.in_from) * w;
        (0..g.in_channels).all(|c| {
            let prev = &self.in_rows[c * kept + (d - self.in_from) * w..(c + 1) * kept];
            prev.iter().zip(&x[c * h * w..(c * h + h - d) * w]).all(|(p, q)| p.to_bits() == q.to_bits())
        })
    }

    /// Output rows of this call (from row 0) equal to the previous call's rows `first..`: returns
    /// `(rows, first)`, or `(0, 0)`.
    fn reusable(&mut self, g: &Conv2dGeometry, x: &[f32]) -> (usize, usize) {
        if self.in_rows.is_empty() {
            return (0, 0);
        }
        // The shift seen before, else the first that fits (a new stream, or a stretch of
        // identical frames that fitted a smaller one). Only whole output rows can be shared,
        // so only shifts the row stride divides are tried.
        let (h, sh) = (g.in_h, g.stride[0]);
        let Some(d) = self
            .shift
            .filter(|&d| d >= self.in_from && self.follows(x, g, d))
            .or_else(|| (self.in_from.max(1)..h).filter(|d| d % sh == 0).find(|&d| self.follows(x, g, d)))
        else {
            return (0, 0);
        };
        self.shift = Some(d);
        if h < d + g.k_h {
            return (0, 0);
        }
        let (rows, first) = (((h - d - g.k_h) / sh + 1).min(g.out_h()), d / sh);
        if first < self.from || first + rows > g.out_h() {
            return (0, 0);
        }
        (rows, first)
    }
}

impl OpState for RowMemo {
    fn eval(&mut self, _ctx: &EvalContext, op: &dyn Op, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let op = op.downcast_ref::<Conv2d>().context("RowMemo belongs to ZipvoxConv2d")?;
        let g = &op.packed.geometry;
        let x = &inputs[0];
        // One item of the packed shape (the plans zipvox builds); anything else is computed
        // whole and forgets the memo.
        if x.shape() != [1, g.in_channels, g.in_h, g.in_w] {
            *self = RowMemo { reused: self.reused, ..RowMemo::default() };
            return op.eval(&EvalContext::out_of_plan(), inputs);
        }
        let (oh, ow, co) = (g.out_h(), g.out_w(), g.out_channels);
        let xs = x.try_as_plain_ram()?;
        let xs = xs.as_slice::<f32>()?;
        let (rows, first) = self.reusable(g, xs);
        let mut out = op.compute(x, rows)?;
        self.reused += rows;
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let os = view.as_slice_mut::<f32>()?;
            if rows > 0 {
                let kept = oh - self.from;
                for o in 0..co {
                    let from = (o * kept + first - self.from) * ow;
                    os[o * oh * ow..(o * oh + rows) * ow].copy_from_slice(&self.out_rows[from..from + rows * ow]);
                }
            }
            // Keep what the next call can use: the rows from the shift on (before one is seen,
            // every input row a shift could start at, and every output row).
            self.in_from = self.shift.unwrap_or(1).min(g.in_h);
            self.from = self.shift.map_or(0, |d| (d / g.stride[0]).min(oh));
            keep_rows(&mut self.in_rows, xs, g.in_channels, g.in_h, g.in_w, self.in_from);
            keep_rows(&mut self.out_rows, os, co, oh, ow, self.from);
        }
        Ok(tvec!(out.into_tvalue()))
    }

    fn reset_lanes(&mut self, _lanes: &[LaneId]) -> TractResult<()> {
        *self = RowMemo { reused: self.reused, ..RowMemo::default() };
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(rows: usize, w: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..rows * w)
            .map(|_| {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// `[1, channels, h, w]` from rows `r0..r0 + h` of each channel's `[rows][w]` signal.
    fn window(sig: &[Vec<f32>], r0: usize, h: usize, w: usize) -> TValue {
        let data: Vec<f32> = sig.iter().flat_map(|c| c[r0 * w..(r0 + h) * w].iter().copied()).collect();
        Tensor::from_shape(&[1, sig.len(), h, w], &data).unwrap().into_tvalue()
    }

    fn conv(g: Conv2dGeometry) -> Conv2d {
        let w = signal(g.out_channels * g.in_channels, g.k_h * g.k_w, 7);
        let b = signal(1, g.out_channels, 8);
        Conv2d { packed: Arc::new(PackedConv2d::new(g, &w, mlas_block(&g))), bias: Some(Arc::new(b)) }
    }

    /// Feeds `inputs` through one memo; every output must equal the plain convolution's, bit
    /// for bit. Returns the rows the memo reused.
    fn run(op: &Conv2d, inputs: &[TValue]) -> usize {
        let mut memo = RowMemo::default();
        let ctx = EvalContext::out_of_plan();
        for (i, x) in inputs.iter().enumerate() {
            let got = memo.eval(&ctx, op, tvec!(x.clone())).unwrap().remove(0);
            let want = op.compute(x, 0).unwrap();
            let (a, b) = (got.try_as_plain_ram().unwrap(), want.try_as_plain_ram().unwrap());
            let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
            assert!(a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits()), "call {i}: memoized output differs");
        }
        memo.reused
    }

    #[test]
    fn memo_reuses_overlapping_rows_and_never_changes_a_value() {
        // The 3.3M front end: 45-frame chunks 32 apart into conv.0; conv.0's rows 32 apart into
        // the stride-2 conv.4; conv.4's rows 16 apart into conv.7.
        let cases = [
            (Conv2dGeometry { in_channels: 1, in_h: 45, in_w: 20, out_channels: 8, k_h: 3, k_w: 3, stride: [1, 1], pad: [0, 1, 0, 1] }, 32, 11),
            (Conv2dGeometry { in_channels: 8, in_h: 43, in_w: 20, out_channels: 32, k_h: 3, k_w: 3, stride: [2, 2], pad: [0; 4] }, 32, 5),
            (Conv2dGeometry { in_channels: 32, in_h: 21, in_w: 9, out_channels: 16, k_h: 3, k_w: 3, stride: [1, 2], pad: [0; 4] }, 16, 3),
        ];
        for (g, shift, rows_per_call) in cases {
            let op = conv(g);
            let (h, w) = (g.in_h, g.in_w);
            let sig: Vec<Vec<f32>> = (0..g.in_channels).map(|c| signal(40 * shift + h, w, c as u32)).collect();
            let other: Vec<Vec<f32>> = (0..g.in_channels).map(|c| signal(h, w, 100 + c as u32)).collect();
            // A stream: eight chunks, an unrelated one (a new stream), then the stream again.
            let mut inputs: Vec<TValue> = (0..8).map(|k| window(&sig, k * shift, h, w)).collect();
            inputs.push(window(&other, 0, h, w));
            inputs.extend((8..12).map(|k| window(&sig, k * shift, h, w)));
            let reused = run(&op, &inputs);
            // Calls 1..8 and 10..12 follow the call before: 7 + 3.
            assert_eq!(reused, 10 * rows_per_call, "{g:?}");
            // A shift the stride does not divide (stride 2): nothing reused, still exact.
            if g.stride[0] == 2 {
                let odd: Vec<TValue> = (0..5).map(|k| window(&sig, k * (shift - 1), h, w)).collect();
                assert_eq!(run(&op, &odd), 0);
            }
        }
    }

    #[test]
    fn memo_survives_identical_frames_that_fit_any_shift() {
        // Silence (identical rows) fits every shift: the memo takes the smallest, then speech
        // breaks it and the real one is found again.
        let g = Conv2dGeometry { in_channels: 1, in_h: 45, in_w: 12, out_channels: 4, k_h: 3, k_w: 3, stride: [1, 1], pad: [0, 1, 0, 1] };
        let op = conv(g);
        let mut sig = vec![0.25f32; 4 * 32 * 12];
        sig.extend(signal(8 * 32 + 45, 12, 3));
        let sig = vec![sig];
        let inputs: Vec<TValue> = (0..11).map(|k| window(&sig, k * 32, 45, 12)).collect();
        assert!(run(&op, &inputs) > 0);
    }
}
