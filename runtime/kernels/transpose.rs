//! Axis moves of f32 tensors (the encoders' `Transpose` nodes: attention heads, the convolution
//! modules' channels-first views). Moving axis `from` to `to` is, for every index of the axes
//! before both, a transpose of a `rows × cols` matrix whose elements are runs of `inner`
//! contiguous values: `inner` is the product of the axes after both. Runs longer than one are
//! copied whole; single values go through 4×4 register transposes (tract's generic move copied
//! value by value through an ndarray iterator).

/// The move of axis `from` to `to` in a tensor of `shape`, as `(outer, rows, cols, inner)`:
/// the input is `[outer][rows][cols][inner]`, the output `[outer][cols][rows][inner]`.
pub fn move_axis_as_transpose(shape: &[usize], from: usize, to: usize) -> (usize, usize, usize, usize) {
    assert!(from < shape.len() && to < shape.len());
    let (lo, hi) = (from.min(to), from.max(to));
    let outer = shape[..lo].iter().product();
    let inner = shape[hi + 1..].iter().product();
    let moved = shape[from];
    let jumped: usize = (lo..=hi).filter(|&a| a != from).map(|a| shape[a]).product();
    // Forward (from < to): [moved][jumped] → [jumped][moved]; backward: [jumped][moved] → [moved][jumped].
    if from < to { (outer, moved, jumped, inner) } else { (outer, jumped, moved, inner) }
}

/// `dst[o][c][r][i] = src[o][r][c][i]` for `src: [outer][rows][cols][inner]`.
pub fn transpose(src: &[f32], dst: &mut [f32], outer: usize, rows: usize, cols: usize, inner: usize) {
    let plane = rows * cols * inner;
    assert!(src.len() == outer * plane && dst.len() == src.len());
    if plane == 0 {
        return;
    }
    for (s, d) in src.chunks_exact(plane).zip(dst.chunks_exact_mut(plane)) {
        if inner == 1 {
            transpose_plane(s, d, rows, cols);
        } else {
            for r in 0..rows {
                for c in 0..cols {
                    d[(c * rows + r) * inner..][..inner].copy_from_slice(&s[(r * cols + c) * inner..][..inner]);
                }
            }
        }
    }
}

/// `dst[c·rows + r] = src[r·cols + c]`, in 4×4 blocks where both sides have four.
fn transpose_plane(src: &[f32], dst: &mut [f32], rows: usize, cols: usize) {
    assert!(src.len() == rows * cols && dst.len() == rows * cols);
    let (r4, c4) = (rows - rows % 4, cols - cols % 4);
    for r in (0..r4).step_by(4) {
        for c in (0..c4).step_by(4) {
            let block = transpose4(std::array::from_fn(|k| src[(r + k) * cols + c..][..4].try_into().expect("4")));
            for (k, col) in block.iter().enumerate() {
                dst[(c + k) * rows + r..][..4].copy_from_slice(col);
            }
        }
        for c in c4..cols {
            for k in 0..4 {
                dst[c * rows + r + k] = src[(r + k) * cols + c];
            }
        }
    }
    for r in r4..rows {
        for c in 0..cols {
            dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/// Rows `r[k]` of a 4×4 block as its columns: `out[k][m] = r[m][k]` (SSE shuffles on x86_64,
/// where the plain expression compiled to single-float moves).
#[inline(always)]
pub(crate) fn transpose4(r: [[f32; 4]; 4]) -> [[f32; 4]; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: SSE is baseline on x86_64; the loads and stores are of local 4-float arrays.
        unsafe {
            let [a, b, c, d] = r.map(|v| _mm_loadu_ps(v.as_ptr()));
            let (ab0, ab1) = (_mm_unpacklo_ps(a, b), _mm_unpackhi_ps(a, b));
            let (cd0, cd1) = (_mm_unpacklo_ps(c, d), _mm_unpackhi_ps(c, d));
            let cols = [_mm_movelh_ps(ab0, cd0), _mm_movehl_ps(cd0, ab0), _mm_movelh_ps(ab1, cd1), _mm_movehl_ps(cd1, ab1)];
            cols.map(|v| {
                let mut o = [0f32; 4];
                _mm_storeu_ps(o.as_mut_ptr(), v);
                o
            })
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    std::array::from_fn(|k| [r[0][k], r[1][k], r[2][k], r[3][k]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The move written out index by index.
    fn moved(src: &[f32], shape: &[usize], from: usize, to: usize) -> Vec<f32> {
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        let a = perm.remove(from);
        perm.insert(to, a);
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let strides: Vec<usize> = (0..shape.len()).map(|i| shape[i + 1..].iter().product()).collect();
        let mut out = Vec::with_capacity(src.len());
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..src.len() {
            out.push(src[perm.iter().zip(&idx).map(|(&p, &i)| i * strides[p]).sum::<usize>()]);
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < out_shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        out
    }

    #[test]
    fn every_move_matches_the_index_by_index_move() {
        for shape in [vec![16, 1, 256], vec![1, 256, 16], vec![4, 16, 8], vec![3, 5, 7, 2], vec![2, 9, 6, 1], vec![7, 4], vec![1, 1], vec![5, 0, 3]] {
            let n: usize = shape.iter().product();
            let src: Vec<f32> = (0..n).map(|i| i as f32).collect();
            for from in 0..shape.len() {
                for to in 0..shape.len() {
                    let (outer, rows, cols, inner) = move_axis_as_transpose(&shape, from, to);
                    let mut dst = vec![f32::NAN; n];
                    transpose(&src, &mut dst, outer, rows, cols, inner);
                    assert_eq!(dst, moved(&src, &shape, from, to), "{shape:?} {from}→{to}");
                }
            }
        }
    }
}
