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
//! The input is gathered once per tap into the im2col buffer (taps in summation order,
//! positions in blocks of [`LANES`]); a register tile then computes a few output channels at one
//! block of positions with every accumulator in a register for the whole tap loop (AVX-512:
//! 8 channels × 32 positions; AVX2 6 × 16; NEON 4 × 16), reading per tap one contiguous run of
//! positions and one group of weights ([`GROUP`]). Each output is still the one chain of its
//! block, so every kernel is bit-identical to the scalar reference tile (tests compare them).
//! The earlier kernel summed each channel along whole rows in memory (a load and a store per
//! multiply-add on ARM); the NEON tile is what the Pi runs.

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

/// Positions per column block: the im2col buffer is laid out `[position block][tap][LANES]`,
/// so that a register tile reads one contiguous run per tap (two zmm, four NEON q registers
/// per half block). The last block is padded with zeros.
pub const LANES: usize = 32;

/// Output channels per weight group: weights are laid out `[channel group][tap][GROUP]`, so
/// that a tile's weights for one tap are adjacent (one NEON q load for four channels, six or
/// eight broadcasts from one or two cache lines on x86). 24 is a multiple of every tile's
/// channel count (NEON 4, AVX2 6, AVX-512 8), so no tile straddles two groups. Channels past
/// `out_channels` are zero.
pub const GROUP: usize = 24;

/// The convolution kernels compiled into this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv2dKernel {
    /// The scalar reference: one output at a time, the order of the module docs.
    Scalar,
    /// 6 channels × 16 positions, twelve ymm accumulators.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// 8 channels × 32 positions, sixteen zmm accumulators.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// 4 channels × 16 positions, sixteen q accumulators, `fmla` by weight lane.
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Conv2dKernel {
    /// The fastest kernel this CPU runs.
    pub fn best() -> Conv2dKernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
                return Conv2dKernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Conv2dKernel::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        return Conv2dKernel::Neon;
        #[allow(unreachable_code)]
        Conv2dKernel::Scalar
    }

    /// Every kernel this CPU can run (for tests).
    pub fn available() -> Vec<Conv2dKernel> {
        #[allow(unused_mut)]
        let mut v = vec![Conv2dKernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                v.push(Conv2dKernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
                v.push(Conv2dKernel::Avx512);
            }
        }
        #[cfg(target_arch = "aarch64")]
        v.push(Conv2dKernel::Neon);
        v
    }
}

/// Weights packed in summation order (taps block by block, then row, column, channel) and
/// in channel groups (see [`GROUP`]), with each tap's offset in the padded input and each
/// output position's offset from a tap's.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConv2d {
    pub geometry: Conv2dGeometry,
    /// `[ceil(out_channels / GROUP)][taps][GROUP]`.
    weights: Vec<f32>,
    /// Per tap: `c·ph·pw + i·pw + j`.
    offsets: Vec<usize>,
    /// Per output position `(y, x)`: `y·sh·pw + x·sw`.
    positions: Vec<usize>,
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
        let mut taps = vec![]; // (c, i, j) in summation order
        let mut block_starts = vec![];
        for c0 in (0..g.in_channels).step_by(block) {
            block_starts.push(taps.len());
            for i in 0..g.k_h {
                for j in 0..g.k_w {
                    for c in c0..(c0 + block).min(g.in_channels) {
                        taps.push((c, i, j));
                    }
                }
            }
        }
        block_starts.push(taps.len());
        let offsets = taps.iter().map(|&(c, i, j)| c * ph * pw + i * pw + j).collect();
        let groups = g.out_channels.div_ceil(GROUP);
        let mut weights = vec![0.0; groups * taps.len() * GROUP];
        for o in 0..g.out_channels {
            for (t, &(c, i, j)) in taps.iter().enumerate() {
                weights[((o / GROUP) * taps.len() + t) * GROUP + o % GROUP] = w[((o * g.in_channels + c) * g.k_h + i) * g.k_w + j];
            }
        }
        let (oh, ow) = (g.out_h(), g.out_w());
        let positions = (0..oh * ow).map(|p| (p / ow) * g.stride[0] * pw + (p % ow) * g.stride[1]).collect();
        PackedConv2d { geometry, weights, offsets, positions, block_starts, block }
    }

    fn taps(&self) -> usize {
        self.offsets.len()
    }

    /// Channel `o`'s weight at tap `t`.
    fn weight(&self, t: usize, o: usize) -> f32 {
        self.weights[((o / GROUP) * self.taps() + t) * GROUP + o % GROUP]
    }
}

/// Runs the convolution on one `[in_channels, in_h, in_w]` item into `[out_channels, out_h,
/// out_w]` with the best kernel for this CPU. `scratch` holds the padded input and the im2col
/// buffer between calls.
pub fn conv2d(p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>) {
    conv2d_with(Conv2dKernel::best(), p, input, bias, out, scratch)
}

/// [`conv2d`] with a given kernel (it must be one of [`Conv2dKernel::available`]).
pub fn conv2d_with(kernel: Conv2dKernel, p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>) {
    let g = &p.geometry;
    let positions = g.out_h() * g.out_w();
    assert_eq!(input.len(), g.in_channels * g.in_h * g.in_w);
    assert_eq!(out.len(), g.out_channels * positions);
    if let Some(b) = bias {
        assert_eq!(b.len(), g.out_channels);
    }
    let cols = im2col(p, input, scratch);
    let blocks = positions.div_ceil(LANES);
    let cout = g.out_channels;
    let tile = |o: usize, pb: usize, out: &mut [f32]| {
        let n = (positions - pb * LANES).min(LANES);
        let block_cols = &cols[pb * p.taps() * LANES..(pb + 1) * p.taps() * LANES];
        match kernel {
            Conv2dKernel::Scalar => tile_scalar(p, block_cols, o, n, bias, &mut out[pb * LANES..]),
            #[cfg(target_arch = "x86_64")]
            Conv2dKernel::Avx2 => {
                assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
                // SAFETY: features checked just above; tile bounds as in `x86::conv_tile_avx2`'s docs.
                unsafe { x86::conv_tile_avx2(p, block_cols, o, n, bias, &mut out[pb * LANES..], positions) }
            }
            #[cfg(target_arch = "x86_64")]
            Conv2dKernel::Avx512 => {
                assert!(std::arch::is_x86_feature_detected!("avx512f"));
                // SAFETY: feature checked just above; tile bounds as in `x86::conv_tile_avx512`'s docs.
                unsafe { x86::conv_tile_avx512(p, block_cols, o, n, bias, &mut out[pb * LANES..], positions) }
            }
            #[cfg(target_arch = "aarch64")]
            // SAFETY: NEON is baseline on aarch64; tile bounds as in `neon::conv_tile_neon`'s docs.
            Conv2dKernel::Neon => unsafe { neon::conv_tile_neon(p, block_cols, o, n, bias, &mut out[pb * LANES..], positions) },
        }
    };
    // Channel tiles outermost: one tile's weights (taps × GROUP floats) stay in L1 while the
    // position blocks stream past.
    let step = match kernel {
        Conv2dKernel::Scalar => 1,
        #[cfg(target_arch = "x86_64")]
        Conv2dKernel::Avx2 => 6,
        #[cfg(target_arch = "x86_64")]
        Conv2dKernel::Avx512 => 8,
        #[cfg(target_arch = "aarch64")]
        Conv2dKernel::Neon => 4,
    };
    for o in (0..cout).step_by(step) {
        for pb in 0..blocks {
            tile(o, pb, out);
        }
    }
}

/// The zero-padded input (or the input itself when there is no padding), then the im2col
/// buffer `[position block][tap][LANES]`: for every tap, that tap's input value at every output
/// position, taps in summation order. Returns the im2col buffer.
fn im2col<'s>(p: &PackedConv2d, input: &[f32], scratch: &'s mut Vec<f32>) -> &'s [f32] {
    let g = &p.geometry;
    let (ph, pw) = g.padded();
    let padded_len = if g.pad == [0; 4] { 0 } else { g.in_channels * ph * pw };
    let blocks = p.positions.len().div_ceil(LANES);
    let cols_len = blocks * p.taps() * LANES;
    // No clearing: every element read below is written first (resize only zeroes growth).
    scratch.resize(scratch.len().max(padded_len + cols_len), 0.0);
    let (padded, rest) = scratch.split_at_mut(padded_len);
    let cols = &mut rest[..cols_len];
    let src: &[f32] = if padded_len == 0 {
        input
    } else {
        padded.fill(0.0);
        for c in 0..g.in_channels {
            for y in 0..g.in_h {
                let dst = c * ph * pw + (y + g.pad[0]) * pw + g.pad[1];
                let from = (c * g.in_h + y) * g.in_w;
                padded[dst..dst + g.in_w].copy_from_slice(&input[from..from + g.in_w]);
            }
        }
        padded
    };
    let (ow, sw) = (g.out_w(), g.stride[1]);
    let total = p.positions.len();
    for (pb, block) in cols.chunks_exact_mut(p.taps() * LANES).enumerate() {
        let (p0, p1) = (pb * LANES, ((pb + 1) * LANES).min(total));
        for (row, &off) in block.chunks_exact_mut(LANES).zip(&p.offsets) {
            // The block's positions in runs along one output row: contiguous in the input for
            // stride 1 (a copy), every `sw`-th value otherwise.
            let mut q = p0;
            while q < p1 {
                let run = (ow - q % ow).min(p1 - q);
                let from = &src[off + p.positions[q]..];
                let dst = &mut row[q - p0..q - p0 + run];
                if sw == 1 {
                    dst.copy_from_slice(&from[..run]);
                } else {
                    for (k, d) in dst.iter_mut().enumerate() {
                        *d = from[k * sw];
                    }
                }
                q += run;
            }
            row[p1 - p0..].fill(0.0);
        }
    }
    cols
}

/// Scalar reference tile: output channel `o` at the `n` positions of one column block, in the
/// order of the module docs. `out` starts at the block's first position of channel 0.
fn tile_scalar(p: &PackedConv2d, cols: &[f32], o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let positions = p.positions.len();
    for l in 0..n {
        let mut total = 0.0f32;
        for (b, win) in p.block_starts.windows(2).enumerate() {
            let mut part = 0.0f32;
            for t in win[0]..win[1] {
                part = p.weight(t, o).mul_add(cols[t * LANES + l], part);
            }
            total = if b == 0 { part } else { part + total };
        }
        out[o * positions + l] = bias.map_or(total, |b| total + b[o]);
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{PackedConv2d, GROUP, LANES};
    use std::arch::x86_64::*;

    /// Channels `o..o+8` (those below `out_channels`) at the first `n` positions of one column
    /// block (`cols`: `taps × LANES`), all channel blocks, in the order of the scalar tile: per
    /// block a chain of fused multiply-adds from zero, block sums added in order, bias last.
    /// Sixteen zmm accumulators stay in registers; per tap two loads of positions and eight
    /// weight broadcasts from one cache line. `out` starts at the block's first position of
    /// channel 0 and holds `out_channels` rows of `positions`.
    #[target_feature(enable = "avx512f")]
    #[inline(never)] // its own symbol, for scripts/kernel-mca.sh
    pub(super) unsafe fn conv_tile_avx512(p: &PackedConv2d, cols: &[f32], o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        let taps = p.taps();
        debug_assert!(o % 8 == 0 && cols.len() == taps * LANES && n <= LANES);
        let m0: __mmask16 = if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as u16 };
        let m1: __mmask16 = if n >= 32 { 0xffff } else if n > 16 { ((1u32 << (n - 16)) - 1) as u16 } else { 0 };
        let wg = p.weights.as_ptr().add((o / GROUP) * taps * GROUP + o % GROUP);
        let x = cols.as_ptr();
        let mut total = [[_mm512_setzero_ps(); 2]; 8];
        for (b, win) in p.block_starts.windows(2).enumerate() {
            let mut acc = [[_mm512_setzero_ps(); 2]; 8];
            for t in win[0]..win[1] {
                let x0 = _mm512_loadu_ps(x.add(t * LANES));
                let x1 = _mm512_loadu_ps(x.add(t * LANES + 16));
                let w = wg.add(t * GROUP);
                for (j, a) in acc.iter_mut().enumerate() {
                    let wj = _mm512_set1_ps(*w.add(j));
                    a[0] = _mm512_fmadd_ps(wj, x0, a[0]);
                    a[1] = _mm512_fmadd_ps(wj, x1, a[1]);
                }
            }
            for j in 0..8 {
                for h in 0..2 {
                    total[j][h] = if b == 0 { acc[j][h] } else { _mm512_add_ps(acc[j][h], total[j][h]) };
                }
            }
        }
        let rows = (p.geometry.out_channels - o).min(8);
        for (j, tj) in total.iter().enumerate().take(rows) {
            let (mut v0, mut v1) = (tj[0], tj[1]);
            if let Some(bias) = bias {
                let bv = _mm512_set1_ps(bias[o + j]);
                v0 = _mm512_add_ps(v0, bv);
                v1 = _mm512_add_ps(v1, bv);
            }
            let row = &mut out[(o + j) * positions..];
            debug_assert!(row.len() >= n);
            _mm512_mask_storeu_ps(row.as_mut_ptr(), m0, v0);
            _mm512_mask_storeu_ps(row.as_mut_ptr().add(16), m1, v1);
        }
    }

    /// One channel block of [`conv_tile_avx2`]: six channels' chains over `taps` taps at 16
    /// positions (`x`: the first tap's positions, `LANES` apart; `w`: its weights, `GROUP`
    /// apart). Out of line so that the loop holds nothing but its twelve accumulators, the two
    /// position vectors and the broadcast weight in the sixteen ymm registers: inlined, the
    /// caller's block totals took a register and the loop shuffled accumulators (85%).
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)] // its own symbol, for scripts/kernel-mca.sh
    unsafe fn conv_chains_avx2(x: *const f32, w: *const f32, taps: usize) -> [[__m256; 2]; 6] {
        let mut acc = [[_mm256_setzero_ps(); 2]; 6];
        for t in 0..taps {
            let x0 = _mm256_loadu_ps(x.add(t * LANES));
            let x1 = _mm256_loadu_ps(x.add(t * LANES + 8));
            let w = w.add(t * GROUP);
            for (j, a) in acc.iter_mut().enumerate() {
                let wj = _mm256_broadcast_ss(&*w.add(j));
                a[0] = _mm256_fmadd_ps(wj, x0, a[0]);
                a[1] = _mm256_fmadd_ps(wj, x1, a[1]);
            }
        }
        acc
    }

    /// As [`conv_tile_avx512`] for channels `o..o+6` and each half (16 positions) of the block in
    /// turn: twelve ymm accumulators, two loads and six broadcasts per tap
    /// ([`conv_chains_avx2`]). Twelve, not eight: with FMA's 5-cycle latency and two FMA pipes,
    /// eight independent chains leave the pipes idle a fifth of the time (llvm-mca: 79% of
    /// peak on Haswell with 4 × 16).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn conv_tile_avx2(p: &PackedConv2d, cols: &[f32], o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        let taps = p.taps();
        debug_assert!(o % 6 == 0 && cols.len() == taps * LANES && n <= LANES);
        let wg = p.weights.as_ptr().add((o / GROUP) * taps * GROUP + o % GROUP);
        let rows = (p.geometry.out_channels - o).min(6);
        for half in 0..2 {
            let l0 = half * 16;
            if l0 >= n {
                break;
            }
            let x = cols.as_ptr().add(l0);
            let mut total = [[_mm256_setzero_ps(); 2]; 6];
            for (b, win) in p.block_starts.windows(2).enumerate() {
                let acc = conv_chains_avx2(x.add(win[0] * LANES), wg.add(win[0] * GROUP), win[1] - win[0]);
                for j in 0..6 {
                    for h in 0..2 {
                        total[j][h] = if b == 0 { acc[j][h] } else { _mm256_add_ps(acc[j][h], total[j][h]) };
                    }
                }
            }
            let m = (n - l0).min(16);
            for (j, tj) in total.iter().enumerate().take(rows) {
                let mut v = [0.0f32; 16];
                let (mut v0, mut v1) = (tj[0], tj[1]);
                if let Some(bias) = bias {
                    let bv = _mm256_set1_ps(bias[o + j]);
                    v0 = _mm256_add_ps(v0, bv);
                    v1 = _mm256_add_ps(v1, bv);
                }
                _mm256_storeu_ps(v.as_mut_ptr(), v0);
                _mm256_storeu_ps(v.as_mut_ptr().add(8), v1);
                out[(o + j) * positions + l0..][..m].copy_from_slice(&v[..m]);
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{PackedConv2d, GROUP, LANES};
    use core::arch::aarch64::*;

    /// Channels `o..o+4` (those below `out_channels`) at the first `n` positions of one column
    /// block, each half (16 positions) in turn, in the order of the scalar tile. Sixteen q
    /// accumulators (4 channels × 4 vectors) stay in registers; per tap four position loads, one
    /// load of the four channels' weights and sixteen `fmla` by weight lane (fused, as the scalar
    /// `mul_add`).
    #[inline(never)] // its own symbol, for scripts/kernel-mca.sh
    pub(super) unsafe fn conv_tile_neon(p: &PackedConv2d, cols: &[f32], o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        let taps = p.taps();
        debug_assert!(o % 4 == 0 && cols.len() == taps * LANES && n <= LANES);
        let wg = p.weights.as_ptr().add((o / GROUP) * taps * GROUP + o % GROUP);
        let rows = (p.geometry.out_channels - o).min(4);
        for half in 0..2 {
            let l0 = half * 16;
            if l0 >= n {
                break;
            }
            let x = cols.as_ptr().add(l0);
            let zero = vdupq_n_f32(0.0);
            let mut total = [[zero; 4]; 4];
            for (b, win) in p.block_starts.windows(2).enumerate() {
                let mut acc = [[zero; 4]; 4];
                for t in win[0]..win[1] {
                    let xt = x.add(t * LANES);
                    let xv = [vld1q_f32(xt), vld1q_f32(xt.add(4)), vld1q_f32(xt.add(8)), vld1q_f32(xt.add(12))];
                    let w = vld1q_f32(wg.add(t * GROUP));
                    for k in 0..4 {
                        acc[0][k] = vfmaq_laneq_f32::<0>(acc[0][k], xv[k], w);
                        acc[1][k] = vfmaq_laneq_f32::<1>(acc[1][k], xv[k], w);
                        acc[2][k] = vfmaq_laneq_f32::<2>(acc[2][k], xv[k], w);
                        acc[3][k] = vfmaq_laneq_f32::<3>(acc[3][k], xv[k], w);
                    }
                }
                for j in 0..4 {
                    for k in 0..4 {
                        total[j][k] = if b == 0 { acc[j][k] } else { vaddq_f32(acc[j][k], total[j][k]) };
                    }
                }
            }
            let m = (n - l0).min(16);
            for (j, tj) in total.iter().enumerate().take(rows) {
                let bv = vdupq_n_f32(bias.map_or(0.0, |b| b[o + j]));
                let mut v = [0.0f32; 16];
                for k in 0..4 {
                    let r = if bias.is_some() { vaddq_f32(tj[k], bv) } else { tj[k] };
                    vst1q_f32(v.as_mut_ptr().add(4 * k), r);
                }
                out[(o + j) * positions + l0..][..m].copy_from_slice(&v[..m]);
            }
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
    use crate::kernels::test_data::{cpu_ns, lcg};

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
            // A dirty scratch buffer (from a larger convolution) must not matter.
            let mut scratch = vec![f32::NAN; 1 << 16];
            for kernel in Conv2dKernel::available() {
                for bias in [Some(&b[..]), None] {
                    let want = if bias.is_some() { want.clone() } else { mlas_order(&g, &x, &w, None, block) };
                    let mut got = vec![f32::NAN; want.len()];
                    conv2d_with(kernel, &packed, &x, bias, &mut got, &mut scratch);
                    for i in 0..want.len() {
                        assert_eq!(got[i].to_bits(), want[i].to_bits(), "{kernel:?} {g:?} block {block} at {i}: {} vs {}", got[i], want[i]);
                        if bias.is_some() {
                            assert!((got[i] - close[i]).abs() < 1e-5, "{g:?}: {} vs f64 {}", got[i], close[i]);
                        }
                    }
                }
            }
        }
    }

    /// `cargo test --release --lib conv2d::tests::speed -- --ignored --nocapture`: GMAC/s of
    /// every kernel on the 3.3M model's five front-end convolutions (chunk 16), in thread CPU
    /// time (robust against other processes on the cores).
    #[test]
    #[ignore]
    fn speed() {
        let shapes = [
            Conv2dGeometry { in_channels: 1, in_h: 45, in_w: 80, out_channels: 8, k_h: 3, k_w: 3, stride: [1, 1], pad: [0, 1, 0, 1] },
            Conv2dGeometry { in_channels: 8, in_h: 43, in_w: 80, out_channels: 32, k_h: 3, k_w: 3, stride: [2, 2], pad: [0; 4] },
            Conv2dGeometry { in_channels: 32, in_h: 21, in_w: 39, out_channels: 128, k_h: 3, k_w: 3, stride: [1, 2], pad: [0; 4] },
            Conv2dGeometry { in_channels: 128, in_h: 13, in_w: 19, out_channels: 384, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
            Conv2dGeometry { in_channels: 384, in_h: 13, in_w: 19, out_channels: 128, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
        ];
        for kernel in Conv2dKernel::available() {
            let mut total = 0.0;
            for g in shapes {
                let x = lcg(g.in_channels * g.in_h * g.in_w, 1);
                let w = lcg(g.out_channels * g.in_channels * g.k_h * g.k_w, 2);
                let b = lcg(g.out_channels, 3);
                let packed = PackedConv2d::new(g, &w, mlas_block(&g));
                let mut out = vec![0.0; g.out_channels * g.out_h() * g.out_w()];
                let mut scratch = Vec::new();
                let macs = (out.len() * g.in_channels * g.k_h * g.k_w) as f64;
                let mut best = f64::MAX;
                for _ in 0..if kernel == Conv2dKernel::Scalar { 5 } else { 300 } {
                    let t = cpu_ns();
                    conv2d_with(kernel, &packed, &x, Some(&b), &mut out, &mut scratch);
                    best = best.min((cpu_ns() - t) as f64 * 1e-9);
                }
                total += best;
                println!("{kernel:?} {}→{} {}x{} stride {:?}: {:.1} µs, {:.1} GMAC/s", g.in_channels, g.out_channels, g.k_h, g.k_w, g.stride, best * 1e6, macs / best / 1e9);
            }
            println!("{kernel:?}: front end convolutions {:.1} µs", total * 1e6);
        }
    }
}
