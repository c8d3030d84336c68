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
/// `scratch` is reused between calls (padded copy of one channel).
pub fn depthwise_conv(
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
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{g:?}: {a} vs {b}");
            }
        }
    }
}
