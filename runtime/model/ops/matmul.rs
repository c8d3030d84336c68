//! `MatMul` of two activations (attention scores and weighted values) in MLAS's summation
//! order (`kernels::matmul`), with numpy broadcasting over the batch axes. tract's own plan
//! may split or fuse these products differently depending on the surrounding graph, which
//! moves results by an ulp; the attention output is quantized next (see `rewrite::ort_order`).

use crate::kernels::matmul::matmul;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_hir::internal::{Expansion, InferenceResult, Solver, TensorProxy};
use tract_onnx::tract_hir::ops::matmul::MatMulInference;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActivationMatMul;

/// Output shape of `a · b` with numpy broadcasting of the batch axes (both rank >= 2).
pub(crate) fn out_shape<D: DimLike>(a: &[D], b: &[D]) -> TractResult<TVec<D>> {
    let (ra, rb) = (a.len(), b.len());
    let batch = ra.max(rb) - 2;
    let mut shape = tvec![];
    for i in 0..batch {
        let da = if i + ra >= batch + 2 { a[i + ra - batch - 2].clone() } else { D::one() };
        let db = if i + rb >= batch + 2 { b[i + rb - batch - 2].clone() } else { D::one() };
        shape.push(if da == D::one() { db } else if db == D::one() || da == db { da } else { bail!("MatMul batch axes {a:?} and {b:?} do not broadcast") });
    }
    shape.push(a[ra - 2].clone());
    shape.push(b[rb - 1].clone());
    Ok(shape)
}

/// Calls `f(j, ia, ib)` for each batch position `j` of the output shape `shape` (from
/// [`out_shape`]) with the matrix index it reads in `a` (shape `sa`) and `b` (`sb`), size-1
/// batch axes broadcast.
pub(crate) fn for_each_batch(sa: &[usize], sb: &[usize], shape: &[usize], mut f: impl FnMut(usize, usize, usize)) {
    let batch = &shape[..shape.len() - 2];
    let index_of = |s: &[usize], pos: &[usize]| -> usize {
        let own = &s[..s.len() - 2];
        let skip = pos.len() - own.len();
        own.iter().zip(&pos[skip..]).fold(0, |acc, (&d, &p)| acc * d + if d == 1 { 0 } else { p })
    };
    let mut pos = vec![0usize; batch.len()];
    for j in 0..batch.iter().product::<usize>() {
        f(j, index_of(sa, &pos), index_of(sb, &pos));
        for d in (0..pos.len()).rev() {
            pos[d] += 1;
            if pos[d] < batch[d] {
                break;
            }
            pos[d] = 0;
        }
    }
}

impl Op for ActivationMatMul {
    fn name(&self) -> StaticName {
        "ZipvoxMatMul".into()
    }
    op_as_typed_op!();
}

impl EvalOp for ActivationMatMul {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (a, b) = (&inputs[0], &inputs[1]);
        let (sa, sb) = (a.shape(), b.shape());
        let shape = out_shape(sa, sb)?;
        let (m, k, n) = (sa[sa.len() - 2], sa[sa.len() - 1], sb[sb.len() - 1]);
        if sb[sb.len() - 2] != k {
            bail!("ZipvoxMatMul: {sa:?} · {sb:?}");
        }
        // SAFETY: f32 has no invalid bit patterns, and `matmul` writes every output.
        let mut c = unsafe { Tensor::uninitialized::<f32>(&shape)? };
        {
            let av = a.try_as_plain_ram()?;
            let bv = b.try_as_plain_ram()?;
            let (xa, xb) = (av.as_slice::<f32>()?, bv.as_slice::<f32>()?);
            let mut cv = c.try_as_plain_ram_mut()?;
            let xc = cv.as_slice_mut::<f32>()?;
            for_each_batch(sa, sb, &shape, |j, ia, ib| {
                matmul(&xa[ia * m * k..(ia + 1) * m * k], &xb[ib * k * n..(ib + 1) * k * n], &mut xc[j * m * n..(j + 1) * m * n], m, k, n);
            });
        }
        Ok(tvec!(c.into_tvalue()))
    }
}

impl TypedOp for ActivationMatMul {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(out_shape(&inputs[0].shape.to_tvec(), &inputs[1].shape.to_tvec())?)))
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let out = self.output_facts(inputs)?;
        let a = &inputs[0].shape;
        Ok(tvec!((Cost::FMA(f32::datum_type()), out[0].shape.volume() * a[a.rank() - 1].clone())))
    }

    as_op!();
}

/// Inference-level form of `ZipvoxMatMul` nodes (ONNX `MatMul` with no constant input);
/// anything but two f32 operands of rank >= 2 goes to tract's own matmul.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct ActivationMatMulExpansion(pub MatMulInference);

impl Expansion for ActivationMatMulExpansion {
    fn name(&self) -> StaticName {
        "ZipvoxMatMul".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        // Same rules as ONNX MatMul.
        self.0.rules(s, inputs, outputs)
    }

    fn wire(&self, prefix: &str, model: &mut TypedModel, inputs: &[OutletId]) -> TractResult<TVec<OutletId>> {
        let (fa, fb) = (model.outlet_fact(inputs[0])?.clone(), model.outlet_fact(inputs[1])?.clone());
        let ours = fa.datum_type == f32::datum_type()
            && fb.datum_type == f32::datum_type()
            && fa.rank() >= 2
            && fb.rank() >= 2
            && fa.konst.is_none()
            && fb.konst.is_none();
        if ours {
            model.wire_node(prefix, ActivationMatMul, inputs)
        } else {
            self.0.wire(prefix, model, inputs)
        }
    }
}
