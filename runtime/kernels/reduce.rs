//! Sums over contiguous rows in onnxruntime's order (its `ReduceMean`/`ReduceSum` over the last
//! axis use Eigen's vectorized `sum()`, SSE packets of four on x86-64), so that Zipformer's
//! BiasNorm scales stay bit-identical to the reference peer's.

/// Eigen's `redux` order for a sum of `v` whose first element sits `misalign` floats past a
/// 16-byte boundary: scalar head up to the boundary, then packets of four in two interleaved
/// accumulators (`p0 += v[i..i+4]`, `p1 += v[i+4..i+8]`), `p0 + p1`, one more packet if left,
/// the packet reduced as `(a0 + a2) + (a1 + a3)`, then the head and the tail added one by one.
pub fn sum_like_eigen(v: &[f32], misalign: usize) -> f32 {
    let n = v.len();
    let start = ((4 - misalign % 4) % 4).min(n);
    let packed = (n - start) / 4 * 4;
    let packed2 = (n - start) / 8 * 8;
    if packed == 0 {
        // Too short to vectorize: left to right.
        return v.iter().copied().reduce(|a, b| a + b).unwrap_or(0.0);
    }
    let load = |i: usize| -> [f32; 4] { [v[i], v[i + 1], v[i + 2], v[i + 3]] };
    let add = |a: [f32; 4], b: [f32; 4]| -> [f32; 4] { std::array::from_fn(|k| a[k] + b[k]) };
    let mut p0 = load(start);
    if packed > 4 {
        let mut p1 = load(start + 4);
        let mut i = start + 8;
        while i < start + packed2 {
            p0 = add(p0, load(i));
            p1 = add(p1, load(i + 4));
            i += 8;
        }
        p0 = add(p0, p1);
        if packed > packed2 {
            p0 = add(p0, load(start + packed2));
        }
    }
    let mut res = (p0[0] + p0[2]) + (p0[1] + p0[3]);
    for &x in &v[..start] {
        res += x;
    }
    for &x in &v[start + packed..] {
        res += x;
    }
    res
}

/// Sum over the middle axis of `outer × r × inner` into `outer × inner`, as onnxruntime's
/// `ReduceSum` does once size-1 axes are dropped: over the last axis (`inner == 1`), Eigen's
/// `sum()` per row; over the first (`outer == 1`), rows added one after the other; otherwise
/// one SGEMM with a row of ones per outer index, whose one-row kernel adds the `r` rows in
/// groups of four (then two, then one), each group summed left to right and then added to
/// the running total (`MlasSgemmKernelM1Avx`, as in `kernels::depthwise`).
pub fn sum_axis(data: &[f32], outer: usize, r: usize, inner: usize, out: &mut [f32]) {
    assert_eq!(data.len(), outer * r * inner);
    assert_eq!(out.len(), outer * inner);
    if r == 0 {
        out.fill(0.0);
        return;
    }
    if inner == 1 {
        for (o, v) in out.iter_mut().enumerate() {
            *v = sum_like_eigen(&data[o * r..(o + 1) * r], (o * r) % 4);
        }
        return;
    }
    for o in 0..outer {
        let rows = |k: usize| &data[(o * r + k) * inner..(o * r + k + 1) * inner];
        let dst = &mut out[o * inner..(o + 1) * inner];
        if outer == 1 {
            dst.copy_from_slice(rows(0));
            for k in 1..r {
                for (d, x) in dst.iter_mut().zip(rows(k)) {
                    *d += x;
                }
            }
            continue;
        }
        let mut k = 0;
        while k < r {
            let take = if r - k >= 4 { 4 } else if r - k >= 2 { 2 } else { 1 };
            for (i, d) in dst.iter_mut().enumerate() {
                let mut g = rows(k)[i];
                for j in 1..take {
                    g += rows(k + j)[i];
                }
                *d = if k == 0 { g } else { g + *d };
            }
            k += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_close_to_exact_for_every_length_and_alignment() {
        for n in 0..40usize {
            for misalign in 0..4 {
                let v: Vec<f32> = (0..n).map(|i| ((i * 7919 % 13) as f32 - 6.0) * 0.37).collect();
                let exact: f64 = v.iter().map(|&x| x as f64).sum();
                let got = sum_like_eigen(&v, misalign) as f64;
                assert!((got - exact).abs() < 1e-5, "n={n} misalign={misalign}: {got} vs {exact}");
            }
        }
    }

    #[test]
    fn axis_sums_follow_onnxruntime_grouping() {
        // r = 8 over a middle axis: ((x0+x1)+x2)+x3 and ((x4+x5)+x6)+x7, then added.
        let r = 8;
        let mut data = vec![1.0f32; 2 * r * 3];
        for o in 0..2 {
            data[(o * r) * 3] = 1e8;
            data[(o * r + 4) * 3] = -1e8;
        }
        let mut out = vec![0.0; 6];
        sum_axis(&data, 2, r, 3, &mut out);
        // group 1: 1e8 + 1 + 1 + 1 = 1e8 (rounded); group 2: -1e8 + 3 = -1e8; total 0.
        assert_eq!(out[0], 0.0);
        assert_eq!(out[1], 8.0);
        // over the first axis, left to right: ((1e8 + 1) + 1 + 1) - 1e8 + ... = 3.
        let mut first = vec![0.0; 3];
        sum_axis(&data[..r * 3], 1, r, 3, &mut first);
        assert_eq!(first[0], 3.0);
        // over the last axis: Eigen's order.
        let row: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let mut last = vec![0.0; 1];
        sum_axis(&row, 1, 12, 1, &mut last);
        assert_eq!(last[0], 66.0);
    }

    #[test]
    fn order_is_eigens() {
        // 1e8 absorbs small addends in f32: the result tells which partial sums were formed.
        let mut v = vec![1.0f32; 12];
        v[0] = 1e8;
        v[2] = -1e8;
        // p0 = v[0..4] + v[4..8] (p1) + v[8..12] = [1e8, 3, -1e8, 3] after rounding, then
        // (a0 + a2) + (a1 + a3) = 0 + 6. Left to right it would be 9.
        assert_eq!(sum_like_eigen(&v, 0), 6.0);
    }
}
