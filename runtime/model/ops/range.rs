//! A corrected ONNX `Range` for tract's analyser.
//!
//! tract-onnx 0.23.9 infers the length of `Range(start, limit, delta)` as
//! `(limit - start).divceil(delta as usize)`, which is wrong for a negative `delta` (the value is
//! cast to a huge usize). Zipformer's relative-position shift counts *down*
//! (`Range(len - 1, -1, -1)`), so every icefall dynamic-batch export fails to load with
//! "Impossible to unify Val(16) with Val(18)". We register this op under the ONNX name `Range`
//! instead: same wiring as tract's (so the typed graph is unchanged), correct inference rule:
//! `len = max(0, ceil((limit - start) / delta))` for either sign of `delta`.

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;
use tract_onnx::tract_hir::ops::array::Range as TractRange;

#[derive(Debug, Default, Clone, Hash, PartialEq, Eq)]
pub struct OnnxRange;

/// Number of elements of `Range(start, limit, delta)` as ONNX defines it.
pub fn range_len(start: &TDim, limit: &TDim, delta: i64) -> TractResult<TDim> {
    if delta == 0 {
        bail!("Range with delta 0");
    }
    let len = if delta > 0 {
        (limit.clone() - start).divceil(delta as usize)
    } else {
        (start.clone() - limit).divceil((-delta) as usize)
    };
    // A concrete negative length means an empty range.
    Ok(match len.to_i64() {
        Ok(n) if n < 0 => TDim::Val(0),
        _ => len,
    })
}

impl Expansion for OnnxRange {
    fn name(&self) -> StaticName {
        "Range".into()
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 3)?;
        check_output_arity(outputs, 1)?;
        s.given_3(
            &inputs[0].datum_type,
            &inputs[1].datum_type,
            &inputs[2].datum_type,
            move |s, dt0, dt1, dt2| {
                let dt = DatumType::super_type_for([dt0, dt1, dt2])
                    .context("No supertype found")?;
                if dt.is_tdim() {
                    s.equals(&outputs[0].datum_type, i64::datum_type())
                } else {
                    s.equals(dt, &outputs[0].datum_type)
                }
            },
        )?;
        s.equals(&inputs[0].rank, 0)?;
        s.equals(&inputs[1].rank, 0)?;
        s.equals(&inputs[2].rank, 0)?;
        s.equals(&outputs[0].rank, 1)?;
        s.given_3(&inputs[0].value, &inputs[1].value, &inputs[2].value, move |s, v0, v1, v2| {
            // Float ranges are not used by the Zipformer exports; leave their length to the
            // evaluation rather than guess with integer arithmetic.
            if v0.datum_type().is_float() || v2.datum_type().is_float() {
                return Ok(());
            }
            let start = v0.cast_to::<TDim>()?.try_as_plain_ram()?.to_scalar::<TDim>()?.clone();
            let limit = v1.cast_to::<TDim>()?.try_as_plain_ram()?.to_scalar::<TDim>()?.clone();
            let delta = *v2.cast_to::<i64>()?.try_as_plain_ram()?.to_scalar::<i64>()?;
            s.equals(&outputs[0].shape[0], range_len(&start, &limit, delta)?)
        })?;
        Ok(())
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        TractRange.wire(prefix, model, inputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_length_counts_down_and_up() {
        // Zipformer's rel-pos shift: Range(15, -1, -1) has 16 elements.
        assert_eq!(range_len(&15.into(), &(-1).into(), -1).unwrap(), TDim::Val(16));
        assert_eq!(range_len(&0.into(), &10.into(), 3).unwrap(), TDim::Val(4));
        assert_eq!(range_len(&5.into(), &0.into(), 1).unwrap(), TDim::Val(0));
        assert_eq!(range_len(&0.into(), &5.into(), -2).unwrap(), TDim::Val(0));
    }

    /// The failure mode of the stock op: a countdown Range whose start comes from a shape.
    /// With tract's own Range this graph fails analysis ("Impossible to unify").
    #[test]
    fn countdown_range_from_shape_loads_and_runs() {
        use tract_onnx::tract_hir::ops::array::Range as StockRange;
        let build = |op: Box<dyn Expansion>| -> TractResult<TypedModel> {
            let mut m = InferenceModel::default();
            let x = m.add_source("x", f32::fact([3, 16]).into())?;
            let shape = m.wire_node("shape", expand(tract_onnx::tract_hir::ops::array::Shape::new(i64::datum_type())), &[x])?;
            let idx = m.add_const("idx", tensor0(1i64))?;
            let n = m.wire_node("n", expand(tract_onnx::tract_hir::ops::array::Gather::new(0)), &[shape[0], idx])?;
            let one = m.add_const("one", tensor0(1i64))?;
            let start = m.wire_node("start", tract_onnx::tract_core::ops::math::Sub.into_hir(), &[n[0], one])?;
            let lim = m.add_const("lim", tensor0(-1i64))?;
            let step = m.add_const("step", tensor0(-1i64))?;
            let r = m.wire_node("range", op, &[start[0], lim, step])?;
            m.select_output_outlets(&r)?;
            m.into_typed()
        };
        let typed = build(Box::new(OnnxRange)).expect("corrected Range must analyse");
        let plan = SimplePlan::new(typed.into_optimized().unwrap()).unwrap();
        let out = plan.run(tvec!(Tensor::zero::<f32>(&[3, 16]).unwrap().into_tvalue())).unwrap();
        let v: Vec<i64> = out[0].try_as_plain_ram().unwrap().as_slice::<i64>().unwrap().to_vec();
        assert_eq!(v, (0..16).rev().collect::<Vec<i64>>());
        // Documents the upstream bug this module exists for: if tract fixes it, this fails and
        // the workaround can go.
        assert!(build(Box::new(StockRange)).is_err(), "stock tract Range now handles countdowns");
    }
}
