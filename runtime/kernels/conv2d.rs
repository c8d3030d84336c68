//! Dense 2-D convolution (one group) with onnxruntime's summation order, for Zipformer2's
//! convolutional front end (`Conv2dSubsampling`: three 3×3 convolutions and ConvNeXt's two
//! pointwise ones).
//!
//! Why an own kernel: the front end's output is quantized dynamically by the first encoder
//! layer, where one ulp can flip an int8 rounding and the streaming caches carry the flip on.
//! sherpa-onnx runs the model through onnxruntime with all graph optimizations, which hands
//! these convolutions to MLAS's NCHWc kernels. Their order, verified bit for bit against
//! onnxruntime's `Conv` outputs on the shared model:
//! - the input channels are split into blocks of `block` channels; each block's products are
//!   summed by one chain of fused multiply-adds starting from zero, taps ordered (kernel row,
//!   kernel column, channel); the block sums are added to the output in block order;
//! - the bias is added last.
//!
//! `block` is MLAS's channel block (16 with AVX-512, 8 without) for NCHWc inputs, one channel
//! for inputs whose channel count is not a multiple of it (MLAS's NCHW-input kernel), and
//! eight blocks for 1×1 convolutions (its pointwise kernel): see [`mlas_block`].
//!
//! The loops are written for the vectorizer: the input is gathered once per tap into a row
//! over all output positions (im2col, taps in summation order), and each output channel's
//! chain runs along those rows. The scalar function is the reference; on x86_64 the same code
//! is compiled for AVX2+FMA and AVX-512 and chosen at run time.

/// Geometry of `out[o, y, x] = bias[o] + Σ w[o, c, i, j] · in[c, y·sh + i - top, x·sw + j - left]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub in_channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_channels: usize,
    pub k_h: usize,
    pub k_w: usize,
    pub stride: [usize; 2],
    /// Zero padding (top, left, bottom, right), ONNX's `pads` order.
    pub pad: [usize; 4],
}

impl Conv2dGeometry {
    fn padded(&self) -> (usize, usize) {
        (self.in_h + self.pad[0] + self.pad[2], self.in_w + self.pad[1] + self.pad[3])
    }

    pub fn out_h(&self) -> usize {
        let (ph, _) = self.padded();
        if ph < self.k_h { 0 } else { (ph - self.k_h) / self.stride[0] + 1 }
    }

    pub fn out_w(&self) -> usize {
        let (_, pw) = self.padded();
        if pw < self.k_w { 0 } else { (pw - self.k_w) / self.stride[1] + 1 }
    }
}

/// MLAS's channel block for this geometry on this CPU (see the module docs).
pub fn mlas_block(g: &Conv2dGeometry) -> usize {
    #[cfg(target_arch = "x86_64")]
    let nchwc = if std::arch::is_x86_feature_detected!("avx512f") { 16 } else { 8 };
    #[cfg(not(target_arch = "x86_64"))]
    let nchwc = 16;
    let pointwise = g.k_h == 1 && g.k_w == 1 && g.stride == [1, 1] && g.pad == [0; 4];
    if pointwise {
        8 * nchwc
    } else if g.in_channels.is_multiple_of(nchwc) {
        nchwc
    } else {
        1
    }
}

/// Weights packed in summation order: for every tap (block by block, then row, column,
/// channel) the `out_channels` weights side by side, and the tap's offset in the padded input.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConv2d {
    pub geometry: Conv2dGeometry,
    /// `taps × out_channels`.
    weights: Vec<f32>,
    /// Per tap: `c·ph·pw + i·pw + j`.
    offsets: Vec<usize>,
    /// Tap index where each channel block starts (and the total at the end).
    block_starts: Vec<usize>,
    pub block: usize,
}

impl PackedConv2d {
    /// `w` is ONNX's `[out_channels, in_channels, k_h, k_w]`.
    pub fn new(geometry: Conv2dGeometry, w: &[f32], block: usize) -> Self {
        let g = geometry;
        assert_eq!(w.len(), g.out_channels * g.in_channels * g.k_h * g.k_w);
        let block = block.max(1);
        let (ph, pw) = g.padded();
        let taps = g.in_channels * g.k_h * g.k_w;
        let mut weights = Vec::with_capacity(taps * g.out_channels);
        let mut offsets = Vec::with_capacity(taps);
        let mut block_starts = vec![];
        for c0 in (0..g.in_channels).step_by(block) {
            block_starts.push(offsets.len());
            for i in 0..g.k_h {
                for j in 0..g.k_w {
                    for c in c0..(c0 + block).min(g.in_channels) {
                        offsets.push(c * ph * pw + i * pw + j);
                        weights.extend((0..g.out_channels).map(|o| w[((o * g.in_channels + c) * g.k_h + i) * g.k_w + j]));
                    }
                }
            }
        }
        block_starts.push(offsets.len());
        PackedConv2d { geometry, weights, offsets, block_starts, block }
    }
}

/// Runs the convolution on one `[in_channels, in_h, in_w]` item into `[out_channels, out_h,
/// out_w]`. `scratch` holds the zero-padded input between calls.
pub fn conv2d(p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { conv2d_avx512(p, input, bias, out, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { conv2d_avx2(p, input, bias, out, scratch) };
        }
    }
    conv2d_scalar(p, input, bias, out, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn conv2d_avx512(p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>) {
    conv2d_body(p, input, bias, out, scratch, true)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv2d_avx2(p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>) {
    conv2d_body(p, input, bias, out, scratch, false)
}

/// Scalar reference of the vectorized variants (same code, baseline target features).
pub fn conv2d_scalar(p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>) {
    conv2d_body(p, input, bias, out, scratch, false)
}

#[inline(always)]
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))] // the tile is x86-only
fn conv2d_body(p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>, avx512_tiles: bool) {
    let g = &p.geometry;
    let (ph, pw) = g.padded();
    let (oh, ow) = (g.out_h(), g.out_w());
    let positions = oh * ow;
    let taps = p.offsets.len();
    assert_eq!(input.len(), g.in_channels * g.in_h * g.in_w);
    assert_eq!(out.len(), g.out_channels * positions);
    if let Some(b) = bias {
        assert_eq!(b.len(), g.out_channels);
    }
    // Scratch: the zero-padded input, then one row per tap holding that tap's input value for
    // every output position (im2col in summation order), then one partial-sum row.
    let padded_len = g.in_channels * ph * pw;
    scratch.clear();
    scratch.resize(padded_len + taps * positions + positions, 0.0);
    let (padded, rest) = scratch.split_at_mut(padded_len);
    let (cols, part) = rest.split_at_mut(taps * positions);
    for c in 0..g.in_channels {
        for y in 0..g.in_h {
            let dst = c * ph * pw + (y + g.pad[0]) * pw + g.pad[1];
            let src = (c * g.in_h + y) * g.in_w;
            padded[dst..dst + g.in_w].copy_from_slice(&input[src..src + g.in_w]);
        }
    }
    for (t, &off) in p.offsets.iter().enumerate() {
        let row = &mut cols[t * positions..(t + 1) * positions];
        for oy in 0..oh {
            let base = off + oy * g.stride[0] * pw;
            let dst = &mut row[oy * ow..(oy + 1) * ow];
            if g.stride[1] == 1 {
                dst.copy_from_slice(&padded[base..base + ow]);
            } else {
                for (ox, d) in dst.iter_mut().enumerate() {
                    *d = padded[base + ox * g.stride[1]];
                }
            }
        }
    }
    let cout = g.out_channels;
    // Four output channels at a time through the AVX-512 tile (the caller checked the CPU).
    #[allow(unused_mut)]
    let mut first_generic = 0;
    #[cfg(target_arch = "x86_64")]
    if avx512_tiles {
        first_generic = cout / 4 * 4;
        for o in (0..first_generic).step_by(4) {
            for p0 in (0..positions).step_by(32) {
                // SAFETY: only `conv2d_avx512` passes `avx512_tiles`; the tile reads `cols` rows and writes `out`
                // rows only below `positions` (masked).
                unsafe { avx512::tile_4x32(p, cols, positions, p0, o, bias, out) };
            }
        }
    }
    for o in first_generic..cout {
        let dst = &mut out[o * positions..(o + 1) * positions];
        for (b, win) in p.block_starts.windows(2).enumerate() {
            // The block's sum starts from zero (in place for the first block).
            let acc: &mut [f32] = if b == 0 { &mut *dst } else { &mut *part };
            acc.fill(0.0);
            for t in win[0]..win[1] {
                let w = p.weights[t * cout + o];
                for (a, &x) in acc.iter_mut().zip(&cols[t * positions..(t + 1) * positions]) {
                    *a = w.mul_add(x, *a);
                }
            }
            if b > 0 {
                for (d, &s) in dst.iter_mut().zip(part.iter()) {
                    *d += s;
                }
            }
        }
        if let Some(bias) = bias {
            let bv = bias[o];
            for d in dst.iter_mut() {
                *d += bv;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::PackedConv2d;
    use std::arch::x86_64::*;

    /// Output channels `o..o+4` at positions `p0..p0+32` (fewer at the end, masked), all
    /// blocks, in the order of the generic loop: per block a chain of fused multiply-adds from
    /// zero, block sums added in order, bias last. Accumulators stay in registers.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_4x32(p: &PackedConv2d, cols: &[f32], positions: usize, p0: usize, o: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        let cout = p.geometry.out_channels;
        let n = (positions - p0).min(32);
        let m0: __mmask16 = if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as u16 };
        let m1: __mmask16 = if n >= 32 { 0xffff } else if n > 16 { ((1u32 << (n - 16)) - 1) as u16 } else { 0 };
        let mut total = [[_mm512_setzero_ps(); 2]; 4];
        for (b, win) in p.block_starts.windows(2).enumerate() {
            let mut acc = [[_mm512_setzero_ps(); 2]; 4];
            for t in win[0]..win[1] {
                let row = cols.as_ptr().add(t * positions + p0);
                let x0 = _mm512_maskz_loadu_ps(m0, row);
                let x1 = _mm512_maskz_loadu_ps(m1, row.add(16));
                let w = p.weights.as_ptr().add(t * cout + o);
                for (j, a) in acc.iter_mut().enumerate() {
                    let wj = _mm512_set1_ps(*w.add(j));
                    a[0] = _mm512_fmadd_ps(wj, x0, a[0]);
                    a[1] = _mm512_fmadd_ps(wj, x1, a[1]);
                }
            }
            for j in 0..4 {
                for h in 0..2 {
                    total[j][h] = if b == 0 { acc[j][h] } else { _mm512_add_ps(acc[j][h], total[j][h]) };
                }
            }
        }
        for (j, tj) in total.iter().enumerate() {
            let (mut v0, mut v1) = (tj[0], tj[1]);
            if let Some(bias) = bias {
                let bv = _mm512_set1_ps(bias[o + j]);
                v0 = _mm512_add_ps(v0, bv);
                v1 = _mm512_add_ps(v1, bv);
            }
            let dst = out.as_mut_ptr().add((o + j) * positions + p0);
            _mm512_mask_storeu_ps(dst, m0, v0);
            _mm512_mask_storeu_ps(dst.add(16), m1, v1);
        }
    }
}

/// Direct reference in f64 (no packing, bounds checks per tap), for tests.
pub fn conv2d_reference(g: &Conv2dGeometry, input: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut out = vec![0.0f32; g.out_channels * oh * ow];
    for o in 0..g.out_channels {
        for y in 0..oh {
            for x in 0..ow {
                let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                for c in 0..g.in_channels {
                    for i in 0..g.k_h {
                        for j in 0..g.k_w {
                            let (iy, ix) = (y * g.stride[0] + i, x * g.stride[1] + j);
                            if iy < g.pad[0] || ix < g.pad[1] || iy - g.pad[0] >= g.in_h || ix - g.pad[1] >= g.in_w {
                                continue;
                            }
                            let v = input[(c * g.in_h + iy - g.pad[0]) * g.in_w + ix - g.pad[1]] as f64;
                            acc += w[((o * g.in_channels + c) * g.k_h + i) * g.k_w + j] as f64 * v;
                        }
                    }
                }
                out[(o * oh + y) * ow + x] = acc as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_data::lcg;

    /// The order of the module docs, written out one output at a time.
    fn mlas_order(g: &Conv2dGeometry, input: &[f32], w: &[f32], bias: Option<&[f32]>, block: usize) -> Vec<f32> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let at = |c: usize, iy: usize, ix: usize| -> f32 {
            if iy < g.pad[0] || ix < g.pad[1] || iy - g.pad[0] >= g.in_h || ix - g.pad[1] >= g.in_w {
                0.0
            } else {
                input[(c * g.in_h + iy - g.pad[0]) * g.in_w + ix - g.pad[1]]
            }
        };
        let mut out = vec![0.0f32; g.out_channels * oh * ow];
        for o in 0..g.out_channels {
            for y in 0..oh {
                for x in 0..ow {
                    let mut acc = 0.0f32;
                    for (b, c0) in (0..g.in_channels).step_by(block).enumerate() {
                        let mut part = 0.0f32;
                        for i in 0..g.k_h {
                            for j in 0..g.k_w {
                                for c in c0..(c0 + block).min(g.in_channels) {
                                    let wv = w[((o * g.in_channels + c) * g.k_h + i) * g.k_w + j];
                                    part = wv.mul_add(at(c, y * g.stride[0] + i, x * g.stride[1] + j), part);
                                }
                            }
                        }
                        acc = if b == 0 { part } else { acc + part };
                    }
                    out[(o * oh + y) * ow + x] = bias.map_or(acc, |b| acc + b[o]);
                }
            }
        }
        out
    }

    #[test]
    fn matches_mlas_order_bit_for_bit_and_reference_closely() {
        let shapes = [
            // Conv2dSubsampling: 1→8 (pad 1 left/right), 8→32 stride 2, 32→128 stride (1, 2)
            Conv2dGeometry { in_channels: 1, in_h: 9, in_w: 13, out_channels: 8, k_h: 3, k_w: 3, stride: [1, 1], pad: [0, 1, 0, 1] },
            Conv2dGeometry { in_channels: 8, in_h: 9, in_w: 15, out_channels: 32, k_h: 3, k_w: 3, stride: [2, 2], pad: [0; 4] },
            Conv2dGeometry { in_channels: 32, in_h: 6, in_w: 11, out_channels: 128, k_h: 3, k_w: 3, stride: [1, 2], pad: [0; 4] },
            // ConvNeXt pointwise 128→384, 384→128
            Conv2dGeometry { in_channels: 128, in_h: 2, in_w: 7, out_channels: 384, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
            Conv2dGeometry { in_channels: 384, in_h: 2, in_w: 5, out_channels: 128, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
            // odd sizes: channel tails of 8 and 1, position tails
            Conv2dGeometry { in_channels: 3, in_h: 5, in_w: 6, out_channels: 43, k_h: 2, k_w: 3, stride: [1, 1], pad: [1, 2, 0, 1] },
        ];
        for g in shapes {
            let x = lcg(g.in_channels * g.in_h * g.in_w, 1);
            let w = lcg(g.out_channels * g.in_channels * g.k_h * g.k_w, 2);
            let b = lcg(g.out_channels, 3);
            let block = mlas_block(&g);
            let packed = PackedConv2d::new(g, &w, block);
            let want = mlas_order(&g, &x, &w, Some(&b), block);
            let close = conv2d_reference(&g, &x, &w, Some(&b));
            let mut got = vec![0.0; want.len()];
            conv2d(&packed, &x, Some(&b), &mut got, &mut Vec::new());
            let mut scalar = vec![0.0; want.len()];
            conv2d_scalar(&packed, &x, Some(&b), &mut scalar, &mut Vec::new());
            for i in 0..want.len() {
                assert_eq!(got[i].to_bits(), want[i].to_bits(), "{g:?} block {block} at {i}: {} vs {}", got[i], want[i]);
                assert_eq!(scalar[i].to_bits(), want[i].to_bits(), "{g:?} scalar at {i}");
                assert!((got[i] - close[i]).abs() < 1e-5, "{g:?}: {} vs f64 {}", got[i], close[i]);
            }
        }
    }
}
