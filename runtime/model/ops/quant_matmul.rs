//! `QuantMatMul`: onnxruntime's dynamic-quantization matmul chain as one tract op.
//!
//! `DynamicQuantizeLinear(x) → MatMulInteger(·, W) → Cast → Mul(a_scale · w_scale) [→ Add(bias)]`
//! becomes: quantize `x` per tensor to u8 (`kernels::quantize`), multiply with the int8 weights
//! packed once at load (`kernels::qgemm`), scale and add the bias in the same pass. Numerics
//! follow onnxruntime's (exact integer accumulation, same rounding rules); tract's own lowering
//! of the chain costs a quantize node, a packing node, an i32 matmul and three elementwise nodes.

use crate::kernels::qgemm::{qgemm_u8i8_batch, PackedI8Weights, QRows};
use crate::kernels::quantize::quantize_u8;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{
    check_input_arity, check_output_arity, Expansion, InferenceResult, Solver, TensorProxy,
};

/// The fused op in the typed (executable) graph. Its only input is the f32 activation.
#[derive(Debug, Clone)]
pub struct QuantMatMul {
    pub weights: Arc<PackedI8Weights>,
    /// Scale of the int8 weights (per tensor).
    pub weight_scale: f32,
    pub bias: Option<Arc<Vec<f32>>>,
}

impl PartialEq for QuantMatMul {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &other.weights)
            && self.weight_scale.to_bits() == other.weight_scale.to_bits()
            && match (&self.bias, &other.bias) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}
impl Eq for QuantMatMul {}

thread_local! {
    /// Quantized activations of the op being evaluated, one buffer per stream (reused: no
    /// allocation per call).
    static SCRATCH: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Frees this thread's scratch buffers (see [`super::release_thread_scratch`]).
pub(super) fn release_scratch() {
    SCRATCH.with(|s| *s.borrow_mut() = Vec::new());
}

impl QuantMatMul {
    /// Runs the op on a row-major `[m, k]` activation into `out` (`[m, n]`).
    pub fn compute(&self, x: &[f32], out: &mut [f32]) {
        self.compute_batch(&[x], &mut [out]);
    }

    /// Runs the op for several streams' activations in one pass over the weights
    /// ([`qgemm_u8i8_batch`]). Each stream is quantized on its own, as its own graph does, so
    /// its output is bit-identical to [`QuantMatMul::compute`] of it alone.
    pub fn compute_batch(&self, xs: &[&[f32]], outs: &mut [&mut [f32]]) {
        assert_eq!(xs.len(), outs.len());
        let (k, n) = (self.weights.k(), self.weights.n());
        // Rows of each stream (from the input, or from the output when k is 0).
        let rows = |x: &[f32], out: &[f32]| if k > 0 { x.len() / k } else { out.len() / n.max(1) };
        SCRATCH.with(|s| {
            let mut q = s.borrow_mut();
            if q.len() < xs.len() {
                q.resize_with(xs.len(), Vec::new);
            }
            let mut params: TVec<(u8, f32)> = TVec::with_capacity(xs.len());
            for (x, buf) in xs.iter().zip(q.iter_mut()) {
                buf.resize(x.len(), 0);
                let p = quantize_u8(x, buf);
                // onnxruntime multiplies the two scales first (`a_scale * w_scale`), then the
                // converted accumulator by that product.
                params.push((p.zero_point, p.scale * self.weight_scale));
            }
            let mut groups: TVec<QRows> = q
                .iter()
                .zip(outs.iter_mut())
                .zip(&params)
                .zip(xs)
                .map(|(((a, out), &(zp, scale)), x)| QRows { a: &a[..], m: rows(x, out), zp, scale, out: &mut **out })
                .collect();
            qgemm_u8i8_batch(&mut groups, &self.weights, self.bias.as_deref().map(|b| b.as_slice()));
        })
    }

    /// The output tensor for input `x` (`[…, k]` → `[…, n]`), not yet written.
    fn output_for(&self, x: &TValue) -> TractResult<Tensor> {
        let k = self.weights.k();
        let shape = x.shape();
        if shape.last() != Some(&k) {
            bail!("ZipvoxQuantMatMul: input shape {:?} does not end in k={}", shape, k);
        }
        let mut out_shape: TVec<usize> = shape.into();
        *out_shape.last_mut().unwrap() = self.weights.n();
        // SAFETY: f32 has no invalid bit patterns, and `compute_batch` writes every element
        // (every row, every column) before the tensor is read; no memset per call.
        unsafe { Tensor::uninitialized::<f32>(&out_shape) }
    }

    /// [`EvalOp::eval`] for the same node of several streams at once: `inputs[s]` is stream
    /// `s`'s input list; returns each stream's outputs.
    pub fn eval_batch(&self, inputs: &[TVec<TValue>]) -> TractResult<Vec<TVec<TValue>>> {
        let mut outs = inputs.iter().map(|i| self.output_for(&i[0])).collect::<TractResult<Vec<_>>>()?;
        {
            let xs = inputs.iter().map(|i| i[0].try_as_plain_ram()?.as_slice::<f32>()).collect::<TractResult<Vec<_>>>()?;
            let mut views = outs.iter_mut().map(|o| o.try_as_plain_ram_mut()).collect::<TractResult<Vec<_>>>()?;
            let mut slices = views.iter_mut().map(|v| v.as_slice_mut::<f32>()).collect::<TractResult<Vec<_>>>()?;
            self.compute_batch(&xs, &mut slices);
        }
        Ok(outs.into_iter().map(|o| tvec!(o.into_tvalue())).collect())
    }
}

impl Op for QuantMatMul {
    fn name(&self) -> StaticName {
        "ZipvoxQuantMatMul".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "k={} n={} bias={} kernel={}",
            self.weights.k(),
            self.weights.n(),
            self.bias.is_some(),
            self.weights.kernel_name()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for QuantMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        // One stream: `eval_batch`'s work without its per-stream lists (104 calls per chunk).
        let mut out = self.output_for(&inputs[0])?;
        {
            let x = inputs[0].try_as_plain_ram()?.as_slice::<f32>()?;
            let mut view = out.try_as_plain_ram_mut()?;
            self.compute_batch(&[x], &mut [view.as_slice_mut::<f32>()?]);
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QuantMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        let last = shape.last_mut().context("ZipvoxQuantMatMul needs rank >= 1")?;
        *last = self.weights.n().into();
        Ok(tvec!(f32::fact(shape)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let rows: TDim = inputs[0].shape.iter().rev().skip(1).product();
        Ok(tvec!((Cost::FMA(i32::datum_type()), rows * (self.weights.k() * self.weights.n()))))
    }

    as_op!();
}

/// Weights packed by the load-time rewrite, waiting for the op builder to claim them (the
/// ONNX op builder is a plain function, so they travel by id). Entries are released when the
/// `OnnxFile` that registered them is dropped.
static PACKED: Mutex<Option<HashMap<u64, Arc<PackedI8Weights>>>> = Mutex::new(None);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub fn register_packed(w: PackedI8Weights) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    PACKED.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(id, Arc::new(w));
    id
}

pub fn release_packed(id: u64) {
    if let Some(map) = PACKED.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        map.remove(&id);
    }
}

/// Inference-level form registered in tract-onnx under the node type the load-time rewrite
/// emits (`rewrite::int8_matmul`). Inputs: activation, weight scale, optional bias; the packed
/// weights come from the registry.
#[derive(Debug, Clone)]
pub struct QuantMatMulExpansion {
    weights: Arc<PackedI8Weights>,
}

impl QuantMatMulExpansion {
    pub fn from_registry(id: u64) -> TractResult<Self> {
        let weights = PACKED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|m| m.get(&id).cloned())
            .with_context(|| format!("packed weights #{id} not registered"))?;
        Ok(QuantMatMulExpansion { weights })
    }
}

impl std::hash::Hash for QuantMatMulExpansion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.weights) as usize).hash(state)
    }
}

impl PartialEq for QuantMatMulExpansion {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.weights, &other.weights)
    }
}
impl Eq for QuantMatMulExpansion {}

impl Expansion for QuantMatMulExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxQuantMatMul".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        if inputs.len() != 2 {
            check_input_arity(inputs, 3)?;
        }
        check_output_arity(outputs, 1)?;
        let (k, n) = (self.weights.k() as i64, self.weights.n() as i64);
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.equals(&inputs[0].rank, &outputs[0].rank)?;
        s.given(&inputs[0].rank, move |s, rank| {
            let rank = rank as usize;
            for i in 0..rank - 1 {
                s.equals(&inputs[0].shape[i], &outputs[0].shape[i])?;
            }
            s.equals(&inputs[0].shape[rank - 1], TDim::from(k))?;
            s.equals(&outputs[0].shape[rank - 1], TDim::from(n))
        })
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let konst = |o: OutletId, what: &str| -> TractResult<Arc<Tensor>> {
            model.outlet_fact(o)?.konst.clone().with_context(|| format!("{prefix}: {what} is not a constant"))
        };
        let n = self.weights.n();
        let ws = konst(inputs[1], "weight scale")?;
        let weight_scale = *ws.cast_to::<f32>()?.try_as_plain_ram()?.to_scalar::<f32>()?;
        let bias = match inputs.get(2) {
            Some(b) => {
                let b = konst(*b, "bias")?;
                let v = b.cast_to::<f32>()?.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
                if v.len() != n {
                    bail!("{prefix}: bias has {} values for n={n}", v.len());
                }
                Some(Arc::new(v))
            }
            None => None,
        };
        let op = QuantMatMul { weights: self.weights.clone(), weight_scale, bias };
        model.wire_node(prefix, op, &inputs[..1])
    }
}

/// `QuantBatchMatMul(a, b, b_scale)`: onnxruntime's dynamic-quantization chain for a matmul
/// whose constant int8 operand `b` (`[…, k, n]`, zero point 0) has batch axes
/// (`rewrite::int8_matmul::fuse_batched_quant_matmuls`; zipformer2's relative-position
/// projections): `a` (`[…, m, k]`) quantized per tensor to u8 (`kernels::quantize`,
/// onnxruntime's rounding), the exact i32 sums of `(a_q - a_zp) · b`, converted to f32 and
/// multiplied by `a_scale · b_scale`. Integer sums are exact, so the result is onnxruntime's bit
/// for bit. Leading axes broadcast as in ONNX MatMul.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuantBatchMatMul;

/// Output shape of `a · b` (ranks 2 and up, batch axes broadcast).
fn matmul_shape<D: DimLike>(a: &[D], b: &[D]) -> TractResult<TVec<D>> {
    if a.len() < 2 || b.len() < 2 {
        bail!("ZipvoxQuantBatchMatMul needs operands of rank 2 or more, got {a:?} and {b:?}");
    }
    super::matmul::out_shape(a, b)
}

impl Op for QuantBatchMatMul {
    fn name(&self) -> StaticName {
        "ZipvoxQuantBatchMatMul".into()
    }
    op_as_typed_op!();
}

impl EvalOp for QuantBatchMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let b_scale = *inputs[2].cast_to::<f32>()?.try_as_plain_ram()?.to_scalar::<f32>()?;
        let (sa, sb) = (a.shape(), b.shape());
        let out_shape = matmul_shape(sa, sb)?;
        let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
        if sb[sb.len() - 2] != k {
            bail!("ZipvoxQuantBatchMatMul: cannot multiply {sa:?} by {sb:?}");
        }
        let xa = a.try_as_plain_ram()?;
        let xa = xa.as_slice::<f32>()?;
        let wb = b.try_as_plain_ram()?;
        let wb = wb.as_slice::<i8>()?;
        let mut qa = vec![0u8; xa.len()];
        let pa = crate::kernels::quantize::quantize_u8(xa, &mut qa);
        // onnxruntime's graph multiplies the two scales first, then the converted sums by that.
        let scale = pa.scale * b_scale;
        let za = pa.zero_point as i32;
        // SAFETY: f32 has no invalid bit patterns; every element is written below.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&out_shape)? };
        {
            let mut view = out.try_as_plain_ram_mut()?;
            let o = view.as_slice_mut::<f32>()?;
            let mut acc = vec![0i32; n];
            super::matmul::for_each_batch(sa, sb, &out_shape, |bi, ia, ib| {
                let (ao, bo) = (ia * m * k, ib * k * n);
                for r in 0..m {
                    acc.fill(0);
                    for kk in 0..k {
                        let av = qa[ao + r * k + kk] as i32 - za;
                        for (c, &bv) in acc.iter_mut().zip(&wb[bo + kk * n..bo + (kk + 1) * n]) {
                            *c += av * bv as i32;
                        }
                    }
                    for (dst, &c) in o[(bi * m + r) * n..(bi * m + r + 1) * n].iter_mut().zip(&acc) {
                        *dst = c as f32 * scale;
                    }
                }
            });
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QuantBatchMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(matmul_shape(&inputs[0].shape, &inputs[1].shape)?)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out: TDim = matmul_shape(&inputs[0].shape, &inputs[1].shape)?.iter().product();
        let k = inputs[0].shape[inputs[0].rank() - 1].clone();
        Ok(tvec!((Cost::FMA(i32::datum_type()), out * k)))
    }

    as_op!();
}

/// Inference-level form of `ZipvoxQuantBatchMatMul` nodes (inputs: activation, int8 constant,
/// its scale).
#[derive(Debug, Clone, Hash, PartialEq, Eq)]
pub struct QuantBatchMatMulExpansion;

impl Expansion for QuantBatchMatMulExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxQuantBatchMatMul".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.equals(&outputs[0].datum_type, f32::datum_type())?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, a, b| s.equals(&outputs[0].shape, matmul_shape(&a, &b)?))
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, QuantBatchMatMul, inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quantize::quantize_u8;

    /// Against the definition written out per output, with broadcast batch axes.
    #[test]
    fn quant_batch_matmul_is_the_quantized_product() {
        let lcg = |n: usize, seed: u64| -> Vec<f32> {
            let mut s = seed;
            (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((s >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 1.5
                })
                .collect()
        };
        for (sa, sb) in [(vec![2, 1, 3, 4], vec![2, 1, 4, 5]), (vec![1, 3, 4], vec![2, 4, 5]), (vec![2, 3, 4], vec![1, 4, 5]), (vec![3, 4], vec![4, 5])] {
            let xa = lcg(sa.iter().product(), 1);
            let wb: Vec<i8> = lcg(sb.iter().product(), 2).iter().map(|v| (v * 60.0) as i8).collect();
            let a = Tensor::from_shape(&sa, &xa).unwrap();
            let b = Tensor::from_shape(&sb, &wb).unwrap();
            let out = QuantBatchMatMul.eval(&EvalContext::out_of_plan(), tvec!(a.into_tvalue(), b.into_tvalue(), tensor0(0.03f32).into_tvalue())).unwrap();
            let out = out[0].try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            let mut q = vec![0u8; xa.len()];
            let p = quantize_u8(&xa, &mut q);
            let shape = matmul_shape(&sa, &sb).unwrap();
            let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
            let batches = out.len() / (m * n);
            // Batch index → each operand's batch index (size-1 axes broadcast).
            let index_in = |s: &[usize], bi: usize| -> usize {
                let lead = &shape[..shape.len() - 2];
                let mut coords = vec![0; lead.len()];
                let mut rest = bi;
                for a in (0..lead.len()).rev() {
                    coords[a] = rest % lead[a];
                    rest /= lead[a];
                }
                let own = &s[..s.len() - 2];
                let skip = lead.len() - own.len();
                own.iter().zip(&coords[skip..]).fold(0, |acc, (&d, &c)| acc * d + if d == 1 { 0 } else { c })
            };
            for bi in 0..batches {
                let (ia, ib) = (index_in(&sa, bi), index_in(&sb, bi));
                for r in 0..m {
                    for c in 0..n {
                        let sum: i32 = (0..k).map(|kk| (q[(ia * m + r) * k + kk] as i32 - p.zero_point as i32) * wb[(ib * k + kk) * n + c] as i32).sum();
                        let want = sum as f32 * (p.scale * 0.03);
                        assert_eq!(out[(bi * m + r) * n + c].to_bits(), want.to_bits(), "{sa:?} x {sb:?} at {bi},{r},{c}");
                    }
                }
            }
        }
    }
}
