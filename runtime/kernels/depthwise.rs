//! Depthwise convolution (one filter per channel, stride 1, dilation 1, zero padding) over 1-D
//! and 2-D signals, as Zipformer's convolution modules and ConvNeXt use it.
//!
//! The inner loops run along contiguous output positions with one tap weight at a time, which
//! the compiler vectorizes; the padded input row is materialized once per channel so the loops
//! carry no bounds logic.

/// Geometry of a depthwise convolution over `[channels, h, w]` (1-D: `h = 1`, kernel height 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DepthwiseGeometry {
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub k_h: usize,
    pub k_w: usize,
    /// Zero padding (top, bottom, left, right).
    pub pad: [usize; 4],
}

impl DepthwiseGeometry {
    pub fn out_h(&self) -> usize {
        (self.in_h + self.pad[0] + self.pad[1]).saturating_sub(self.k_h - 1)
    }

    pub fn out_w(&self) -> usize {
        (self.in_w + self.pad[2] + self.pad[3]).saturating_sub(self.k_w - 1)
    }

    fn padded(&self) -> (usize, usize) {
        (self.in_h + self.pad[0] + self.pad[1], self.in_w + self.pad[2] + self.pad[3])
    }
}

/// `out[c, y, x] = bias[c] + Σ_{i,j} w[c, i, j] · in[c, y + i - pad_top, x + j - pad_left]`.
/// `scratch` is reused between calls (padded copy of one channel). Dispatches to the widest
/// vector variant of the same code (AVX-512 / AVX2+FMA on x86_64; NEON is the aarch64 baseline).
pub fn depthwise_conv(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { depthwise_conv_avx512(g, input, weights, bias, out, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { depthwise_conv_avx2(g, input, weights, bias, out, scratch) };
        }
    }
    depthwise_conv_scalar(g, input, weights, bias, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn depthwise_conv_avx512(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    depthwise_conv_body(g, input, weights, bias, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_conv_avx2(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    depthwise_conv_body(g, input, weights, bias, out, scratch)
}

/// Scalar reference of the vectorized variants (same code, baseline target features).
pub fn depthwise_conv_scalar(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    depthwise_conv_body(g, input, weights, bias, out, scratch)
}

#[inline(always)]
fn depthwise_conv_body(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    // 2-D kernels over short rows vectorize badly along a row (19 outputs wide in Zipformer's
    // ConvNeXt); computed over whole padded rows instead, the inner loop runs over all output
    // rows at once (a few % of wasted columns, no transposes).
    if g.k_h > 1 {
        wide_rows_2d(g, input, weights, bias, out, scratch)
    } else {
        rows_1d(g, input, weights, bias, out, scratch)
    }
}

/// 2-D: per channel, the padded input is one flat buffer of width `pw`; each tap adds
/// `w · padded[i·pw + j + p]` to `acc[p]` for every flat output position `p < oh·pw`, and the
/// `ow` valid columns of each row are copied out at the end.
#[inline(always)]
fn wide_rows_2d(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let (ph, pw) = g.padded();
    let khw = g.k_h * g.k_w;
    assert_eq!(input.len(), g.channels * g.in_h * g.in_w);
    assert_eq!(weights.len(), g.channels * khw);
    assert_eq!(out.len(), g.channels * oh * ow);
    let n_pad = ph * pw + g.k_w;
    let n_acc = oh * pw;
    scratch.clear();
    scratch.resize(n_pad + n_acc, 0.0);
    let (padded, acc) = scratch.split_at_mut(n_pad);
    for c in 0..g.channels {
        let src = &input[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
        for y in 0..g.in_h {
            let row = (y + g.pad[0]) * pw + g.pad[2];
            padded[row..row + g.in_w].copy_from_slice(&src[y * g.in_w..(y + 1) * g.in_w]);
        }
        acc.fill(bias.map_or(0.0, |b| b[c]));
        let w = &weights[c * khw..(c + 1) * khw];
        for i in 0..g.k_h {
            for j in 0..g.k_w {
                let wv = w[i * g.k_w + j];
                let base = i * pw + j;
                for (av, &pv) in acc.iter_mut().zip(&padded[base..base + n_acc]) {
                    *av += wv * pv;
                }
            }
        }
        let o = &mut out[c * oh * ow..(c + 1) * oh * ow];
        for y in 0..oh {
            o[y * ow..(y + 1) * ow].copy_from_slice(&acc[y * pw..y * pw + ow]);
        }
    }
}

/// Along rows (1-D, or few channels): one tap weight at a time over contiguous outputs.
#[inline(always)]
fn rows_1d(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let (ph, pw) = g.padded();
    assert_eq!(input.len(), g.channels * g.in_h * g.in_w);
    assert_eq!(weights.len(), g.channels * g.k_h * g.k_w);
    assert_eq!(out.len(), g.channels * oh * ow);
    scratch.clear();
    scratch.resize(ph * pw, 0.0);
    for c in 0..g.channels {
        // Padded copy of the channel (borders stay zero).
        let src = &input[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
        for y in 0..g.in_h {
            let row = (y + g.pad[0]) * pw + g.pad[2];
            scratch[row..row + g.in_w].copy_from_slice(&src[y * g.in_w..(y + 1) * g.in_w]);
        }
        let w = &weights[c * g.k_h * g.k_w..(c + 1) * g.k_h * g.k_w];
        let o = &mut out[c * oh * ow..(c + 1) * oh * ow];
        o.fill(bias.map_or(0.0, |b| b[c]));
        for y in 0..oh {
            let orow = &mut o[y * ow..(y + 1) * ow];
            for i in 0..g.k_h {
                let irow = &scratch[(y + i) * pw..(y + i) * pw + pw];
                for j in 0..g.k_w {
                    let wv = w[i * g.k_w + j];
                    for (ov, &iv) in orow.iter_mut().zip(&irow[j..j + ow]) {
                        *ov += wv * iv;
                    }
                }
            }
        }
    }
}

/// Direct reference (no padding buffer, bounds checks per tap), for tests.
pub fn depthwise_conv_reference(g: &DepthwiseGeometry, input: &[f32], weights: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut out = vec![0.0f32; g.channels * oh * ow];
    for c in 0..g.channels {
        for y in 0..oh {
            for x in 0..ow {
                let mut acc = 0.0f64;
                for i in 0..g.k_h {
                    for j in 0..g.k_w {
                        let (iy, ix) = (y + i, x + j);
                        if iy < g.pad[0] || ix < g.pad[2] {
                            continue;
                        }
                        let (iy, ix) = (iy - g.pad[0], ix - g.pad[2]);
                        if iy >= g.in_h || ix >= g.in_w {
                            continue;
                        }
                        acc += weights[(c * g.k_h + i) * g.k_w + j] as f64 * input[(c * g.in_h + iy) * g.in_w + ix] as f64;
                    }
                }
                out[(c * oh + y) * ow + x] = (acc + bias.map_or(0.0, |b| b[c] as f64)) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / 16777216.0 - 0.5
            })
            .collect()
    }

    #[test]
    fn matches_reference_on_zipformer_shapes() {
        for g in [
            // chunkwise conv: 31 taps, 15 both sides
            DepthwiseGeometry { channels: 5, in_h: 1, in_w: 16, k_h: 1, k_w: 31, pad: [0, 0, 15, 15] },
            // causal conv over cache + chunk, no padding
            DepthwiseGeometry { channels: 3, in_h: 1, in_w: 31, k_h: 1, k_w: 16, pad: [0, 0, 0, 0] },
            // ConvNeXt 7x7, padded on one side of each axis
            DepthwiseGeometry { channels: 4, in_h: 22, in_w: 19, k_h: 7, k_w: 7, pad: [0, 0, 3, 3] },
            DepthwiseGeometry { channels: 2, in_h: 5, in_w: 3, k_h: 3, k_w: 3, pad: [1, 2, 2, 1] },
        ] {
            let x = lcg(g.channels * g.in_h * g.in_w, 1);
            let w = lcg(g.channels * g.k_h * g.k_w, 2);
            let b = lcg(g.channels, 3);
            let want = depthwise_conv_reference(&g, &x, &w, Some(&b));
            let mut got = vec![0.0; want.len()];
            depthwise_conv(&g, &x, &w, Some(&b), &mut got, &mut Vec::new());
            let mut scalar = vec![0.0; want.len()];
            depthwise_conv_scalar(&g, &x, &w, Some(&b), &mut scalar, &mut Vec::new());
            for ((a, s), b) in got.iter().zip(&scalar).zip(&want) {
                assert!((a - b).abs() < 1e-5, "{g:?}: dispatched {a} vs {b}");
                assert!((s - b).abs() < 1e-5, "{g:?}: scalar {s} vs {b}");
            }
        }
    }
}
