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
//! positions in blocks of [`LANES`]; a 1×1 convolution's input already is that layout, one row
//! per tap, so its tiles read it in place and only a partial last block is copied); a register
//! tile then computes a few output channels at one
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
    /// Tap `t` at position `q` is `input[t·positions + q]` (1×1, stride 1, no padding): the
    /// tiles read the input where it lies, without an im2col copy.
    direct: bool,
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
        let offsets: Vec<usize> = taps.iter().map(|&(c, i, j)| c * ph * pw + i * pw + j).collect();
        let groups = g.out_channels.div_ceil(GROUP);
        let mut weights = vec![0.0; groups * taps.len() * GROUP];
        for o in 0..g.out_channels {
            for (t, &(c, i, j)) in taps.iter().enumerate() {
                weights[((o / GROUP) * taps.len() + t) * GROUP + o % GROUP] = w[((o * g.in_channels + c) * g.k_h + i) * g.k_w + j];
            }
        }
        let (oh, ow) = (g.out_h(), g.out_w());
        let positions: Vec<usize> = (0..oh * ow).map(|p| (p / ow) * g.stride[0] * pw + (p % ow) * g.stride[1]).collect();
        let direct = g.pad == [0; 4]
            && positions.iter().enumerate().all(|(q, &at)| at == q)
            && offsets.iter().enumerate().all(|(t, &at): (usize, &usize)| at == t * positions.len());
        PackedConv2d { geometry, weights, offsets, positions, block_starts, block, direct }
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
    conv2d_rows_with(kernel, p, input, bias, out, scratch, 0)
}

/// [`conv2d`] for output rows `first_row..out_h` only: the rows above are left as they are in
/// `out` (the caller fills them, e.g. from the previous chunk's output). Each computed value is
/// bit for bit what the whole convolution gives.
pub fn conv2d_rows(p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>, first_row: usize) {
    conv2d_rows_with(Conv2dKernel::best(), p, input, bias, out, scratch, first_row)
}

/// [`conv2d_rows`] with a given kernel.
pub fn conv2d_rows_with(kernel: Conv2dKernel, p: &PackedConv2d, input: &[f32], bias: Option<&[f32]>, out: &mut [f32], scratch: &mut Vec<f32>, first_row: usize) {
    let g = &p.geometry;
    let positions = g.out_h() * g.out_w();
    assert_eq!(input.len(), g.in_channels * g.in_h * g.in_w);
    assert_eq!(out.len(), g.out_channels * positions);
    if let Some(b) = bias {
        assert_eq!(b.len(), g.out_channels);
    }
    // The positions computed: q0.., in blocks of LANES from q0.
    let first_row = first_row.min(g.out_h());
    let q0 = first_row * g.out_w();
    let count = positions - q0;
    if count == 0 {
        return;
    }
    let blocks = count.div_ceil(LANES);
    let taps = p.taps();
    // Where the tiles read a block's taps: `(values, stride)`, tap `t` at position `l` of the
    // block being `values[t·stride + l]`. The direct path reads whole blocks from the input and
    // gathers only the last, partial one (zero-padded to LANES).
    let full = if p.direct { count / LANES } else { 0 };
    let (cols, cols_stride) =
        if p.direct { (tail_block(p, input, q0 + full * LANES, scratch), LANES) } else { im2col(p, input, scratch, first_row) };
    let cout = g.out_channels;
    let tile = |o: usize, pb: usize, out: &mut [f32]| {
        let n = (count - pb * LANES).min(LANES);
        let (block_cols, stride) = if pb < full {
            (&input[q0 + pb * LANES..], positions)
        } else if p.direct {
            let at = (pb - full) * taps * LANES;
            (&cols[at..at + taps * LANES], LANES)
        } else {
            (&cols[pb * LANES..], cols_stride)
        };
        match kernel {
            Conv2dKernel::Scalar => tile_scalar(p, block_cols, stride, o, n, bias, &mut out[q0 + pb * LANES..]),
            #[cfg(target_arch = "x86_64")]
            Conv2dKernel::Avx2 => {
                assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"));
                // SAFETY: features checked just above; tile bounds as in `x86::conv_tile_avx2`'s docs.
                unsafe { x86::conv_tile_avx2(p, block_cols, stride, o, n, bias, &mut out[q0 + pb * LANES..], positions) }
            }
            #[cfg(target_arch = "x86_64")]
            Conv2dKernel::Avx512 => {
                assert!(std::arch::is_x86_feature_detected!("avx512f"));
                // SAFETY: feature checked just above; tile bounds as in `x86::conv_tile_avx512`'s docs.
                unsafe {
                    if n <= 16 {
                        x86::conv_tile_avx512_half(p, block_cols, stride, o, n, bias, &mut out[q0 + pb * LANES..], positions)
                    } else {
                        x86::conv_tile_avx512(p, block_cols, stride, o, n, bias, &mut out[q0 + pb * LANES..], positions)
                    }
                }
            }
            #[cfg(target_arch = "aarch64")]
            // SAFETY: NEON is baseline on aarch64; tile bounds as in `neon::conv_tile_neon`'s docs.
            Conv2dKernel::Neon => unsafe { neon::conv_tile_neon(p, block_cols, stride, o, n, bias, &mut out[q0 + pb * LANES..], positions) },
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

/// For the direct path: the positions from `from` on (fewer than LANES) of every tap, laid
/// out as one im2col block `[tap][LANES]`, zero-padded.
fn tail_block<'s>(p: &PackedConv2d, input: &[f32], from: usize, scratch: &'s mut Vec<f32>) -> &'s [f32] {
    let positions = p.positions.len();
    let (taps, n) = (p.taps(), positions - from);
    if n == 0 {
        return &[];
    }
    scratch.resize(scratch.len().max(taps * LANES), 0.0);
    let block = &mut scratch[..taps * LANES];
    for (t, row) in block.chunks_exact_mut(LANES).enumerate() {
        row[..n].copy_from_slice(&input[t * positions + from..(t + 1) * positions]);
        row[n..].fill(0.0);
    }
    block
}

/// The zero-padded input (or the input itself when there is no padding), then the im2col
/// buffer `[tap][stride]`: for every tap (in summation order), that tap's input value at every
/// output position from row `first_row` on, the row zero-padded to `stride`, a multiple of
/// [`LANES`]. Returns the buffer and `stride`; block `pb`'s taps start at `pb·LANES`.
///
/// Built tap by tap and output row by output row: the runs are whole output rows (19 values
/// for the ConvNeXt input, 39 for the stride-2 convolution), gathered with one vector
/// deinterleave per 16 values at stride 2 (the front end's strided convolutions) rather than
/// value by value (a third of `conv.4`'s time was its gather).
fn im2col<'s>(p: &PackedConv2d, input: &[f32], scratch: &'s mut Vec<f32>, first_row: usize) -> (&'s [f32], usize) {
    let g = &p.geometry;
    let (ph, pw) = g.padded();
    let padded_len = if g.pad == [0; 4] { 0 } else { g.in_channels * ph * pw };
    let (oh, ow) = (g.out_h(), g.out_w());
    let rows = oh - first_row;
    let stride = (rows * ow).div_ceil(LANES) * LANES;
    let cols_len = p.taps() * stride;
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
    let (sh, sw) = (g.stride[0], g.stride[1]);
    let gather = Gather::for_stride(sw);
    for (row, &off) in cols.chunks_exact_mut(stride).zip(&p.offsets) {
        for y in first_row..oh {
            // Output row y of this tap: input row `y·sh` (plus the tap's offset), every `sw`-th value.
            let from = &src[off + y * sh * pw..];
            let at = (y - first_row) * ow;
            gather.run(&mut row[at..at + ow], &from[..(ow.max(1) - 1) * sw + 1]);
        }
        row[rows * ow..].fill(0.0);
    }
    (cols, stride)
}

/// How [`im2col`] gathers one output row: `dst[k] = src[k·stride]`.
#[derive(Clone, Copy)]
enum Gather {
    Copy,
    Even,
    #[cfg(target_arch = "x86_64")]
    EvenAvx512,
    Strided(usize),
}

impl Gather {
    fn for_stride(stride: usize) -> Gather {
        match stride {
            1 => Gather::Copy,
            #[cfg(target_arch = "x86_64")]
            2 if std::arch::is_x86_feature_detected!("avx512f") => Gather::EvenAvx512,
            2 => Gather::Even,
            s => Gather::Strided(s),
        }
    }

    /// `src` holds exactly `(dst.len() - 1)·stride + 1` values (or none for an empty `dst`).
    #[inline]
    fn run(self, dst: &mut [f32], src: &[f32]) {
        if dst.is_empty() {
            return;
        }
        match self {
            Gather::Copy => dst.copy_from_slice(src),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F checked in `for_stride`; lengths as documented above.
            Gather::EvenAvx512 => unsafe { gather_even_avx512(dst, src) },
            Gather::Even => gather_even(dst, src),
            Gather::Strided(s) => {
                for (k, d) in dst.iter_mut().enumerate() {
                    *d = src[k * s];
                }
            }
        }
    }
}

/// `dst[k] = src[2k]`, `src.len() == 2·dst.len() - 1`: the reference, and aarch64's with
/// `ld2` (a deinterleaving load of eight values) for all but the last few.
fn gather_even(dst: &mut [f32], src: &[f32]) {
    assert_eq!(src.len(), 2 * dst.len() - 1);
    #[allow(unused_mut)]
    let mut k = 0;
    #[cfg(target_arch = "aarch64")]
    // SAFETY: each `vld2q_f32` reads src[2k..2k + 8], inside `src` (2k + 8 <= src.len()); each
    // store writes dst[k..k + 4], inside `dst` (k + 4 <= (src.len() + 1) / 2).
    unsafe {
        use core::arch::aarch64::*;
        while 2 * k + 8 <= src.len() {
            let v = vld2q_f32(src.as_ptr().add(2 * k));
            vst1q_f32(dst.as_mut_ptr().add(k), v.0);
            k += 4;
        }
    }
    for (d, s) in dst[k..].iter_mut().zip(src[2 * k..].iter().step_by(2)) {
        *d = *s;
    }
}

/// [`gather_even`] sixteen values at a time: two masked loads (no read past `src`), one
/// two-register permute, one masked store.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gather_even_avx512(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::*;
    assert_eq!(src.len(), 2 * dst.len() - 1);
    let mask = |n: usize| -> __mmask16 { if n >= 16 { 0xffff } else { ((1u32 << n) - 1) as u16 } };
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let mut k = 0;
    while k < dst.len() {
        let left = src.len() - 2 * k;
        let at = src.as_ptr().wrapping_add(2 * k);
        // Masked-off lanes are not read (AVX-512 fault suppression), so the second load may
        // point past the end when it reads nothing.
        let lo = _mm512_maskz_loadu_ps(mask(left), at);
        let hi = _mm512_maskz_loadu_ps(mask(left.saturating_sub(16)), at.wrapping_add(16));
        let v = _mm512_permutex2var_ps(lo, even, hi);
        _mm512_mask_storeu_ps(dst.as_mut_ptr().add(k), mask(dst.len() - k), v);
        k += 16;
    }
}

/// Scalar reference tile: output channel `o` at the `n` positions of one column block, in the
/// order of the module docs. `out` starts at the block's first position of channel 0.
fn tile_scalar(p: &PackedConv2d, cols: &[f32], stride: usize, o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let positions = p.positions.len();
    for l in 0..n {
        let mut total = 0.0f32;
        for (b, win) in p.block_starts.windows(2).enumerate() {
            let mut part = 0.0f32;
            for t in win[0]..win[1] {
                part = p.weight(t, o).mul_add(cols[t * stride + l], part);
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
    /// block (tap `t` at `cols[t·stride..]`), all channel blocks, in the order of the scalar tile: per
    /// block a chain of fused multiply-adds from zero, block sums added in order, bias last.
    /// Sixteen zmm accumulators stay in registers; per tap two loads of positions and eight
    /// weight broadcasts from one cache line. `out` starts at the block's first position of
    /// channel 0 and holds `out_channels` rows of `positions`.
    #[target_feature(enable = "avx512f")]
    #[inline(never)] // its own symbol, for scripts/kernel-mca.sh
    pub(super) unsafe fn conv_tile_avx512(p: &PackedConv2d, cols: &[f32], stride: usize, o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        conv_tile_avx512_body::<2>(p, cols, stride, o, n, bias, out, positions)
    }

    /// [`conv_tile_avx512`] for a last block of at most 16 positions: eight accumulators, one
    /// load of positions per tap. (The front end's 304 positions per chunk end in a block of 16;
    /// the full tile spent half of its multiply-adds there on padding.)
    #[target_feature(enable = "avx512f")]
    #[inline(never)]
    pub(super) unsafe fn conv_tile_avx512_half(p: &PackedConv2d, cols: &[f32], stride: usize, o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        debug_assert!(n <= 16);
        conv_tile_avx512_body::<1>(p, cols, stride, o, n, bias, out, positions)
    }

    /// The tile of [`conv_tile_avx512`] over `H` halves (16 positions each) of the block.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn conv_tile_avx512_body<const H: usize>(p: &PackedConv2d, cols: &[f32], stride: usize, o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        let taps = p.taps();
        debug_assert!(o % 8 == 0 && cols.len() >= (taps - 1) * stride + 16 * H && n <= 16 * H);
        let masks: [__mmask16; H] = std::array::from_fn(|h| {
            let left = n.saturating_sub(16 * h).min(16);
            ((1u32 << left) - 1) as __mmask16
        });
        let wg = p.weights.as_ptr().add((o / GROUP) * taps * GROUP + o % GROUP);
        let x = cols.as_ptr();
        let mut total = [[_mm512_setzero_ps(); H]; 8];
        for (b, win) in p.block_starts.windows(2).enumerate() {
            let mut acc = [[_mm512_setzero_ps(); H]; 8];
            for t in win[0]..win[1] {
                let xs: [__m512; H] = std::array::from_fn(|h| _mm512_loadu_ps(x.add(t * stride + 16 * h)));
                let w = wg.add(t * GROUP);
                for (j, a) in acc.iter_mut().enumerate() {
                    let wj = _mm512_set1_ps(*w.add(j));
                    for h in 0..H {
                        a[h] = _mm512_fmadd_ps(wj, xs[h], a[h]);
                    }
                }
            }
            for j in 0..8 {
                for h in 0..H {
                    total[j][h] = if b == 0 { acc[j][h] } else { _mm512_add_ps(acc[j][h], total[j][h]) };
                }
            }
        }
        let rows = (p.geometry.out_channels - o).min(8);
        for (j, tj) in total.iter().enumerate().take(rows) {
            let row = &mut out[(o + j) * positions..];
            debug_assert!(row.len() >= n);
            for h in 0..H {
                let mut v = tj[h];
                if let Some(bias) = bias {
                    v = _mm512_add_ps(v, _mm512_set1_ps(bias[o + j]));
                }
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(16 * h), masks[h], v);
            }
        }
    }

    /// One channel block of [`conv_tile_avx2`]: six channels' chains over `taps` taps at 16
    /// positions (`x`: the first tap's positions, `stride` apart; `w`: its weights, `GROUP`
    /// apart). Out of line so that the loop holds nothing but its twelve accumulators, the two
    /// position vectors and the broadcast weight in the sixteen ymm registers: inlined, the
    /// caller's block totals took a register and the loop shuffled accumulators (85%).
    #[target_feature(enable = "avx2,fma")]
    #[inline(never)] // its own symbol, for scripts/kernel-mca.sh
    unsafe fn conv_chains_avx2(x: *const f32, stride: usize, w: *const f32, taps: usize) -> [[__m256; 2]; 6] {
        let mut acc = [[_mm256_setzero_ps(); 2]; 6];
        for t in 0..taps {
            let x0 = _mm256_loadu_ps(x.add(t * stride));
            let x1 = _mm256_loadu_ps(x.add(t * stride + 8));
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
    pub(super) unsafe fn conv_tile_avx2(p: &PackedConv2d, cols: &[f32], stride: usize, o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        let taps = p.taps();
        debug_assert!(o % 6 == 0 && cols.len() >= (taps - 1) * stride + LANES && n <= LANES);
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
                let acc = conv_chains_avx2(x.add(win[0] * stride), stride, wg.add(win[0] * GROUP), win[1] - win[0]);
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
    pub(super) unsafe fn conv_tile_neon(p: &PackedConv2d, cols: &[f32], stride: usize, o: usize, n: usize, bias: Option<&[f32]>, out: &mut [f32], positions: usize) {
        let taps = p.taps();
        debug_assert!(o % 4 == 0 && cols.len() >= (taps - 1) * stride + LANES && n <= LANES);
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
                    let xt = x.add(t * stride);
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
            // pointwise read in place: full blocks and a tail (16×19), full blocks only (4×16)
            Conv2dGeometry { in_channels: 128, in_h: 16, in_w: 19, out_channels: 384, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
            Conv2dGeometry { in_channels: 40, in_h: 4, in_w: 16, out_channels: 30, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
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

    #[test]
    fn row_ranges_match_the_whole_convolution_and_leave_the_rows_above() {
        let shapes = [
            Conv2dGeometry { in_channels: 1, in_h: 12, in_w: 13, out_channels: 8, k_h: 3, k_w: 3, stride: [1, 1], pad: [0, 1, 0, 1] },
            Conv2dGeometry { in_channels: 8, in_h: 15, in_w: 21, out_channels: 32, k_h: 3, k_w: 3, stride: [2, 2], pad: [0; 4] },
            Conv2dGeometry { in_channels: 32, in_h: 9, in_w: 19, out_channels: 40, k_h: 3, k_w: 3, stride: [1, 2], pad: [0; 4] },
            Conv2dGeometry { in_channels: 24, in_h: 7, in_w: 19, out_channels: 30, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
        ];
        for g in shapes {
            let x = lcg(g.in_channels * g.in_h * g.in_w, 4);
            let w = lcg(g.out_channels * g.in_channels * g.k_h * g.k_w, 5);
            let b = lcg(g.out_channels, 6);
            let packed = PackedConv2d::new(g, &w, mlas_block(&g));
            let (oh, ow) = (g.out_h(), g.out_w());
            let mut scratch = vec![f32::NAN; 1 << 14];
            for kernel in Conv2dKernel::available() {
                let mut whole = vec![f32::NAN; g.out_channels * oh * ow];
                conv2d_with(kernel, &packed, &x, Some(&b), &mut whole, &mut scratch);
                for first in [1, oh / 2, oh - 1, oh] {
                    let mut got = vec![-7.0f32; whole.len()];
                    conv2d_rows_with(kernel, &packed, &x, Some(&b), &mut got, &mut scratch, first);
                    for o in 0..g.out_channels {
                        for y in 0..oh {
                            for xx in 0..ow {
                                let i = (o * oh + y) * ow + xx;
                                let want = if y < first { -7.0 } else { whole[i] };
                                assert_eq!(got[i].to_bits(), want.to_bits(), "{kernel:?} {g:?} first row {first} at ({o}, {y}, {xx})");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stride_two_gathers_match_every_length() {
        for n in 1..70 {
            let src = lcg(2 * n - 1, n as u32);
            let want: Vec<f32> = (0..n).map(|k| src[2 * k]).collect();
            let mut got = vec![f32::NAN; n];
            gather_even(&mut got, &src);
            assert_eq!(got, want, "gather_even n={n}");
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut got = vec![f32::NAN; n];
                // SAFETY: AVX-512F checked just above.
                unsafe { gather_even_avx512(&mut got, &src) };
                assert_eq!(got, want, "gather_even_avx512 n={n}");
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
            Conv2dGeometry { in_channels: 128, in_h: 16, in_w: 19, out_channels: 384, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
            Conv2dGeometry { in_channels: 384, in_h: 16, in_w: 19, out_channels: 128, k_h: 1, k_w: 1, stride: [1, 1], pad: [0; 4] },
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
    /// `cargo test --release --lib conv2d::tests::im2col_speed -- --ignored --nocapture`: the
    /// gather alone for the 3.3M model's three 3×3 convolutions.
    #[test]
    #[ignore]
    fn im2col_speed() {
        for g in [
            Conv2dGeometry { in_channels: 1, in_h: 45, in_w: 80, out_channels: 8, k_h: 3, k_w: 3, stride: [1, 1], pad: [0, 1, 0, 1] },
            Conv2dGeometry { in_channels: 8, in_h: 43, in_w: 80, out_channels: 32, k_h: 3, k_w: 3, stride: [2, 2], pad: [0; 4] },
            Conv2dGeometry { in_channels: 32, in_h: 21, in_w: 39, out_channels: 128, k_h: 3, k_w: 3, stride: [1, 2], pad: [0; 4] },
        ] {
            let x = lcg(g.in_channels * g.in_h * g.in_w, 1);
            let w = lcg(g.out_channels * g.in_channels * g.k_h * g.k_w, 2);
            let p = PackedConv2d::new(g, &w, mlas_block(&g));
            let mut scratch = Vec::new();
            let mut best = u64::MAX;
            for _ in 0..300 {
                let t = cpu_ns();
                std::hint::black_box(im2col(&p, &x, &mut scratch, 0));
                best = best.min(cpu_ns() - t);
            }
            println!("{}→{} {}x{} stride {:?}: im2col {:.1} µs", g.in_channels, g.out_channels, g.k_h, g.k_w, g.stride, best as f64 / 1e3);
        }
    }
}
