//! ONNX `Where(mask, c, x)` with a constant scalar `c` and an f32 `x` already of the output's
//! shape, as the zipformer encoders use it for their masks (`Where(key_padding_mask, -1000,
//! scores)` before each attention softmax, `Where(mask, 0, x)` around the convolution modules):
//! `x` with the masked elements replaced by `c`, written in place.
//!
//! Why: tract's general `Iff` broadcasts all three inputs element by element through ndarray
//! (about 7 µs for a 9,216-element `[4, 1, 16, 144]` select on Zen 4; the medium model runs 48
//! of them per chunk). A select computes no new value, so the output is the same bit for bit.
//! Every other `Where` (a non-constant or non-scalar `c`, another type, `x` broadcast by the
//! mask) stays tract's op. The replacement runs on the optimized graph
//! (`model::optimized::select_masks`).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

/// `out = x` with `out[i] = value` where the (broadcast) mask is true. Inputs: mask (bool, the
/// rank of `x`, each axis 1 or `x`'s), `x` (f32).
#[derive(Debug, Clone, PartialEq)]
pub struct SelectConst {
    pub value: f32,
}

impl Eq for SelectConst {}

impl Op for SelectConst {
    fn name(&self) -> StaticName {
        "ZipvoxSelectConst".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("value={}", self.value)])
    }

    op_as_typed_op!();
}

/// Writes `value` into `x` (row-major, shape `xs`) wherever `mask` (shape `ms`, same rank,
/// each axis 1 or equal to `xs`'s) is true.
pub fn select_const(mask: &[bool], ms: &[usize], x: &mut [f32], xs: &[usize], value: f32) {
    debug_assert_eq!(ms.len(), xs.len());
    // The common case: the mask is `x`'s trailing axes (after some leading axes of 1), so it
    // repeats in blocks along `x`.
    let first = ms.iter().position(|&d| d != 1).unwrap_or(ms.len());
    if ms[first..] == xs[first..] {
        let block = mask.len().max(1);
        for xb in x.chunks_mut(block) {
            for (v, &m) in xb.iter_mut().zip(mask) {
                if m {
                    *v = value;
                }
            }
        }
        return;
    }
    // Any other broadcast: walk `x` with the mask's strides (0 along its axes of 1).
    let rank = xs.len();
    let mut mstride = vec![0usize; rank];
    let mut acc = 1;
    for a in (0..rank).rev() {
        mstride[a] = if ms[a] == 1 { 0 } else { acc };
        acc *= ms[a];
    }
    let mut idx = vec![0usize; rank];
    let mut mi = 0usize;
    for v in x.iter_mut() {
        if mask[mi] {
            *v = value;
        }
        // Odometer step over x's axes, keeping the mask offset in step.
        for a in (0..rank).rev() {
            idx[a] += 1;
            mi += mstride[a];
            if idx[a] < xs[a] {
                break;
            }
            mi -= mstride[a] * idx[a];
            idx[a] = 0;
        }
    }
}

impl EvalOp for SelectConst {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut x = inputs.remove(1).into_tensor();
        let mask = &inputs[0];
        let ms: TVec<usize> = mask.shape().into();
        let xs: TVec<usize> = x.shape().into();
        if ms.len() != xs.len() || ms.iter().zip(&xs).any(|(&m, &d)| m != 1 && m != d) {
            bail!("ZipvoxSelectConst: mask {ms:?} does not broadcast to {xs:?}");
        }
        {
            let m = mask.try_as_plain_ram()?;
            let mut view = x.try_as_plain_ram_mut()?;
            select_const(m.as_slice::<bool>()?, &ms, view.as_slice_mut::<f32>()?, &xs, self.value);
        }
        Ok(tvec!(x.into_tvalue()))
    }
}

impl TypedOp for SelectConst {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[1].shape.clone())))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every broadcast form against the definition, element by element.
    #[test]
    fn select_matches_the_definition() {
        let cases: [(&[usize], &[usize]); 6] = [
            (&[1, 1, 1, 9], &[4, 1, 3, 9]),
            (&[1, 5, 3], &[1, 5, 3]),
            (&[2, 1, 3], &[2, 4, 3]),
            (&[1, 4, 1], &[3, 4, 2]),
            (&[1, 1], &[3, 7]),
            (&[], &[]),
        ];
        for (ms, xs) in cases {
            let mlen: usize = ms.iter().product();
            let xlen: usize = xs.iter().product();
            let mask: Vec<bool> = (0..mlen).map(|i| (i * 7 + 3) % 5 < 2).collect();
            let x: Vec<f32> = (0..xlen).map(|i| i as f32 * 0.5 - 3.0).collect();
            let mut got = x.clone();
            select_const(&mask, ms, &mut got, xs, -1000.0);
            for (i, (&g, &orig)) in got.iter().zip(&x).enumerate() {
                // The mask element that x[i] reads.
                let (mut rem, mut mi, mut mstride) = (i, 0, 1);
                let mut coords = vec![0; xs.len()];
                for a in (0..xs.len()).rev() {
                    coords[a] = rem % xs[a];
                    rem /= xs[a];
                }
                for a in (0..xs.len()).rev() {
                    if ms[a] != 1 {
                        mi += coords[a] * mstride;
                    }
                    mstride *= ms[a];
                }
                let want = if mask[mi] { -1000.0 } else { orig };
                assert_eq!(g.to_bits(), want.to_bits(), "{ms:?} → {xs:?} at {i}");
            }
        }
    }
}
