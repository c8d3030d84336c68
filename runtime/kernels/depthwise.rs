//! Depthwise convolution (one filter per channel, stride 1, dilation 1, zero padding) over 1-D
//! and 2-D signals, as Zipformer's convolution modules and ConvNeXt use it.
//!
//! Zipformer's shapes run with the channels in the vector lanes: the input is copied in blocks
//! of 16 channels (MLAS's NCHWc layout, `[channel block][position][16]`, on a cache-line
//! boundary), each block of outputs keeps its sums in registers while it walks the taps, and
//! the result is transposed back (`across_channels_1d`, `across_channels_2d`; AVX-512
//! intrinsics on x86-64, portable code the compiler vectorizes elsewhere). 1-D convolutions over
//! more than 16 positions run channel by channel along the positions (`rows_1d`).
//!
//! Summation order is onnxruntime's (see `sum_taps_like_mlas`): each output is a sum of up to
//! 49 products, and the next layer quantizes it dynamically, where a one-ulp difference can flip
//! an int8 rounding; matching the peer's order keeps the streams bit-identical to it.

use super::transpose::transpose4;

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
    /// Summation order (onnxruntime's for this convolution, see [`SumOrder`]).
    pub order: SumOrder,
}

/// How onnxruntime sums a depthwise convolution on x86-64, which zipvox mirrors bit for bit
/// (the next layer quantizes the result dynamically, where one ulp can flip an int8 rounding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SumOrder {
    /// im2col, then MLAS's one-row SGEMM kernel (1-D convolutions): see `sum_taps_like_mlas`.
    MlasGemv,
    /// MLAS's NCHWc depthwise kernel (2-D, channels a multiple of its block): one chain of
    /// fused multiply-adds over the taps in row-major order, from zero; the bias added last.
    FmaChain,
}

impl SumOrder {
    /// The order onnxruntime (all graph optimizations, as sherpa-onnx runs it) uses.
    pub fn for_onnxruntime(spatial_rank: usize, channels: usize) -> SumOrder {
        if spatial_rank == 2 && channels.is_multiple_of(16) { SumOrder::FmaChain } else { SumOrder::MlasGemv }
    }
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

/// `out[c, y, x] = bias[c] + Σ_{i,j} w[c, i, j] · in[c, y + i - pad_top, x + j - pad_left]`,
/// every element of `out` written (kernels of at least one tap). `scratch` is reused between
/// calls (padded copies). Dispatches to the widest vector variant
/// of the same code (AVX-512 / AVX2+FMA on x86_64; NEON is the aarch64 baseline).
pub fn depthwise_conv(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    depthwise_conv_with(g, input, weights, None, bias, out, scratch)
}

/// The weights channels-last, as [`depthwise_conv_with`] reads them: `[taps][channels rounded up
/// to 16]` (taps in row-major order, `k_h·k_w` of them), zeros in the padding lanes.
pub fn pack_channels_last(weights: &[f32], channels: usize, taps: usize) -> Vec<f32> {
    assert_eq!(weights.len(), channels * taps);
    let cp = channels.div_ceil(LANES) * LANES;
    let mut wt = vec![0.0; taps * cp];
    for c in 0..channels {
        for t in 0..taps {
            wt[t * cp + c] = weights[c * taps + t];
        }
    }
    wt
}

/// This geometry's weights as [`depthwise_conv_with`] reads them where [`reads_channels_last`]
/// says so: 1-D `[taps][channels rounded up to 16]` ([`pack_channels_last`]); 2-D in blocks of
/// 16 channels, `[channel block][taps][16]` (each block's taps adjacent).
pub fn pack_weights(g: &DepthwiseGeometry, weights: &[f32]) -> Vec<f32> {
    let taps = g.k_h * g.k_w;
    match g.order {
        SumOrder::MlasGemv => pack_channels_last(weights, g.channels, taps),
        SumOrder::FmaChain => {
            assert_eq!(weights.len(), g.channels * taps);
            let cp = g.channels.div_ceil(LANES) * LANES;
            let mut wt = vec![0.0; taps * cp];
            for c in 0..g.channels {
                for t in 0..taps {
                    wt[((c / LANES) * taps + t) * LANES + c % LANES] = weights[c * taps + t];
                }
            }
            wt
        }
    }
}

/// Whether [`depthwise_conv_with`] reads this geometry's weights packed by [`pack_weights`]:
/// 1-D convolutions over at most 16 output positions, and every `FmaChain` (2-D) one.
pub fn reads_channels_last(g: &DepthwiseGeometry) -> bool {
    match g.order {
        SumOrder::MlasGemv => g.in_h == 1 && g.k_h == 1 && g.out_w() < ACROSS_CHANNELS_BELOW,
        SumOrder::FmaChain => true,
    }
}

/// [`depthwise_conv`] with the 1-D weights already packed by [`pack_channels_last`] where
/// [`reads_channels_last`] says so (the op packs them once, on first use; `None`: packed here,
/// per call).
pub fn depthwise_conv_with(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    packed: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { depthwise_conv_avx512(g, input, weights, packed, bias, out, scratch) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: features checked just above.
            return unsafe { depthwise_conv_avx2(g, input, weights, packed, bias, out, scratch) };
        }
    }
    depthwise_conv_body(g, input, weights, packed, bias, out, scratch, Variant::Generic)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn depthwise_conv_avx512(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    packed: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    depthwise_conv_body(g, input, weights, packed, bias, out, scratch, Variant::Avx512)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn depthwise_conv_avx2(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    packed: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    depthwise_conv_body(g, input, weights, packed, bias, out, scratch, Variant::Generic)
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
    depthwise_conv_body(g, input, weights, None, bias, out, scratch, Variant::Generic)
}

#[inline(always)]
fn depthwise_conv_body(
    g: &DepthwiseGeometry,
    input: &[f32],
    weights: &[f32],
    packed: Option<&[f32]>,
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    variant: Variant,
) {
    let local;
    let wt = match packed {
        Some(w) => w,
        None if reads_channels_last(g) => {
            local = pack_weights(g, weights);
            &local
        }
        None => &[],
    };
    match g.order {
        SumOrder::FmaChain => across_channels_2d(g, input, wt, bias, out, scratch, variant),
        SumOrder::MlasGemv if reads_channels_last(g) => across_channels_1d(g, input, wt, bias, out, scratch, variant),
        SumOrder::MlasGemv => rows_1d(g, input, weights, bias, out, scratch),
    }
}

/// The first `len` values of `scratch` from a 64-byte boundary on (grown as needed): each
/// vector of 16 lanes at a multiple of 16 is then one cache line, where an unaligned 64-byte
/// load spans two (the 2-D kernel took 1.6× its time on Zen 4 from unaligned scratch).
fn cache_aligned(scratch: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if scratch.len() < len + LANES {
        scratch.resize(len + LANES, 0.0);
    }
    let skip = scratch.as_ptr().align_offset(64).min(LANES);
    &mut scratch[skip..skip + len]
}

/// 1-D convolutions with fewer output positions than this run across channels
/// ([`across_channels_1d`]; every Zipformer chunk's do). Measured by the ignored test
/// `depthwise_1d_speed` on Zen 4 against the per-channel rows: the AVX-512 blocks take
/// 0.15–0.18× the rows' time at 2–8 positions and 0.29–0.45× at 16, the portable blocks
/// 0.28–0.43× and 0.77–1.0×. Longer rows fill whole vectors along the positions.
const ACROSS_CHANNELS_BELOW: usize = 17;
/// Channels per vector block (one AVX-512 register of f32).
const LANES: usize = 16;

/// 1-D `SumOrder::MlasGemv` with the channels in the vector lanes. Zipformer's 1-D depthwise
/// convs run over 2–16 positions and 256–768 channels: vectors along the positions (as
/// [`rows_1d`]) are short and mostly remainder, and each channel pays its own padded copy and
/// loop setup (~1.8 GMAC/s). Here, block by block of 16 channels, the input is copied to
/// `[padded position][16]` (the weights were packed `[tap][channels]`, see
/// [`pack_channels_last`]), each block of up to `variant.max_positions_1d()` outputs sums every
/// tap group in registers, and the outputs are transposed back. Every output
/// is the same expression as in [`sum_taps_like_mlas`] (groups of 4/2/1 taps summed left to
/// right, added to the running sum, bias last), so the bits are the same.
#[inline(always)]
fn across_channels_1d(
    g: &DepthwiseGeometry,
    input: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    variant: Variant,
) {
    let ow = g.out_w();
    let (_, pw) = g.padded();
    let (ch, taps) = (g.channels, g.k_w);
    let blocks_c = ch.div_ceil(LANES);
    let cp = blocks_c * LANES;
    assert_eq!(input.len(), ch * g.in_w);
    assert_eq!(wt.len(), taps * cp);
    assert_eq!(out.len(), ch * ow);
    if ow == 0 {
        return;
    }
    // Scratch, one channel block at a time: padded input [pw][16], output [ow][16], bias [cp].
    // Only the input's padding (positions, lanes) and the bias's padding lanes are zeroed
    // (scratch is shared with the other convolutions: clearing all of it cost more than the
    // sums on short chunks).
    let (in_block, out_block) = (pw * LANES, ow * LANES);
    let (xb, rest) = cache_aligned(scratch, in_block + out_block + cp).split_at_mut(in_block);
    let (ob, bt) = rest.split_at_mut(out_block);
    let left = g.pad[2];
    if let Some(b) = bias {
        bt[..ch].copy_from_slice(b);
        bt[ch..].fill(0.0);
    }
    // Positions in blocks of nearly equal size, none over the variant's maximum.
    let blocks = ow.div_ceil(variant.max_positions_1d());
    let (base, extra) = (ow / blocks, ow % blocks);
    for cb in 0..blocks_c {
        let lanes = (ch - cb * LANES).min(LANES);
        xb[..left * LANES].fill(0.0);
        xb[(left + g.in_w) * LANES..].fill(0.0);
        lanes_from_rows(&mut xb[left * LANES..], &input[cb * LANES * g.in_w..], g.in_w, lanes, g.in_w);
        let taps1d = Taps1d {
            xt: xb,
            wt,
            cp,
            c0: cb * LANES,
            taps,
            bias: bias.map(|_| <&[f32; LANES]>::try_from(&bt[cb * LANES..(cb + 1) * LANES]).expect("16 lanes")),
            #[cfg(target_arch = "x86_64")]
            avx512: matches!(variant, Variant::Avx512),
        };
        let mut p0 = 0;
        for b in 0..blocks {
            let n = base + usize::from(b < extra);
            let o = &mut ob[p0 * LANES..(p0 + n) * LANES];
            match n {
                1 => taps1d.block::<1>(o, p0),
                2 => taps1d.block::<2>(o, p0),
                3 => taps1d.block::<3>(o, p0),
                4 => taps1d.block::<4>(o, p0),
                5 => taps1d.block::<5>(o, p0),
                6 => taps1d.block::<6>(o, p0),
                7 => taps1d.block::<7>(o, p0),
                _ => taps1d.block::<8>(o, p0),
            }
            p0 += n;
        }
        rows_from_lanes(&mut out[cb * LANES * ow..], ow, ob, lanes, ow);
    }
}

/// One channel block's operands of [`across_channels_1d`].
struct Taps1d<'a> {
    /// `[padded position][16]`.
    xt: &'a [f32],
    /// `[tap][cp]`; this block's lanes start at `c0`.
    wt: &'a [f32],
    cp: usize,
    c0: usize,
    taps: usize,
    bias: Option<&'a [f32; LANES]>,
    /// Run [`Taps1d::block_avx512`] (the AVX-512 variant of the convolution).
    #[cfg(target_arch = "x86_64")]
    avx512: bool,
}

impl Taps1d<'_> {
    /// Outputs `p0..p0+P` into `o` (`[P][16]`): the tap groups of [`sum_taps_like_mlas`], lane
    /// by lane, sums held in `acc` (registers).
    #[inline(always)]
    fn block<const P: usize>(&self, o: &mut [f32], p0: usize) {
        let (cp, c0) = (self.cp, self.c0);
        assert!((p0 + P - 1 + self.taps) * LANES <= self.xt.len() && self.taps * cp <= self.wt.len() && c0 + LANES <= cp && o.len() == P * LANES);
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is set only where the CPU has AVX-512F; bounds asserted above.
            return unsafe { self.block_avx512::<P>(o, p0) };
        }
        let w = |t: usize| -> [f32; LANES] { self.wt[t * cp + c0..t * cp + c0 + LANES].try_into().expect("16 lanes") };
        let x = |at: usize| -> [f32; LANES] { self.xt[at * LANES..(at + 1) * LANES].try_into().expect("16 lanes") };
        let mut acc = [[0f32; LANES]; P];
        let mut t = 0;
        while t < self.taps {
            let take = if self.taps - t >= 4 { 4 } else if self.taps - t >= 2 { 2 } else { 1 };
            let first = t == 0;
            match take {
                4 => {
                    let (w0, w1, w2, w3) = (w(t), w(t + 1), w(t + 2), w(t + 3));
                    for (p, a) in acc.iter_mut().enumerate() {
                        let r = p0 + p + t;
                        let (x0, x1, x2, x3) = (x(r), x(r + 1), x(r + 2), x(r + 3));
                        for l in 0..LANES {
                            let s = w0[l] * x0[l] + w1[l] * x1[l] + w2[l] * x2[l] + w3[l] * x3[l];
                            a[l] = if first { s } else { s + a[l] };
                        }
                    }
                }
                2 => {
                    let (w0, w1) = (w(t), w(t + 1));
                    for (p, a) in acc.iter_mut().enumerate() {
                        let r = p0 + p + t;
                        let (x0, x1) = (x(r), x(r + 1));
                        for l in 0..LANES {
                            let s = w0[l] * x0[l] + w1[l] * x1[l];
                            a[l] = if first { s } else { s + a[l] };
                        }
                    }
                }
                _ => {
                    let w0 = w(t);
                    for (p, a) in acc.iter_mut().enumerate() {
                        let x0 = x(p0 + p + t);
                        for l in 0..LANES {
                            let s = w0[l] * x0[l];
                            a[l] = if first { s } else { s + a[l] };
                        }
                    }
                }
            }
            t += take;
        }
        if let Some(b) = self.bias {
            for a in acc.iter_mut() {
                for l in 0..LANES {
                    a[l] += b[l];
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            o[p * LANES..(p + 1) * LANES].copy_from_slice(a);
        }
    }

    /// [`Taps1d::block`] in AVX-512 intrinsics: the same products and sums in the same order
    /// (separately rounded multiplies and adds, as MLAS's one-row kernel), the sums in zmm
    /// registers throughout.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block_avx512<const P: usize>(&self, o: &mut [f32], p0: usize) {
        use std::arch::x86_64::*;
        let (x, w) = (self.xt.as_ptr().add(p0 * LANES), self.wt.as_ptr().add(self.c0));
        let cp = self.cp;
        let mut acc = [_mm512_setzero_ps(); P];
        let mut t = 0;
        while t < self.taps {
            let first = t == 0;
            let wt = |i: usize| _mm512_loadu_ps(w.add((t + i) * cp));
            let xv = |p: usize, i: usize| _mm512_loadu_ps(x.add((p + t + i) * LANES));
            let take = if self.taps - t >= 4 {
                let (w0, w1, w2, w3) = (wt(0), wt(1), wt(2), wt(3));
                for (p, a) in acc.iter_mut().enumerate() {
                    let s = _mm512_add_ps(_mm512_mul_ps(w0, xv(p, 0)), _mm512_mul_ps(w1, xv(p, 1)));
                    let s = _mm512_add_ps(s, _mm512_mul_ps(w2, xv(p, 2)));
                    let s = _mm512_add_ps(s, _mm512_mul_ps(w3, xv(p, 3)));
                    *a = if first { s } else { _mm512_add_ps(s, *a) };
                }
                4
            } else if self.taps - t >= 2 {
                let (w0, w1) = (wt(0), wt(1));
                for (p, a) in acc.iter_mut().enumerate() {
                    let s = _mm512_add_ps(_mm512_mul_ps(w0, xv(p, 0)), _mm512_mul_ps(w1, xv(p, 1)));
                    *a = if first { s } else { _mm512_add_ps(s, *a) };
                }
                2
            } else {
                let w0 = wt(0);
                for (p, a) in acc.iter_mut().enumerate() {
                    let s = _mm512_mul_ps(w0, xv(p, 0));
                    *a = if first { s } else { _mm512_add_ps(s, *a) };
                }
                1
            };
            t += take;
        }
        if let Some(b) = self.bias {
            let bv = _mm512_loadu_ps(b.as_ptr());
            for a in acc.iter_mut() {
                *a = _mm512_add_ps(*a, bv);
            }
        }
        for (p, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(o.as_mut_ptr().add(p * LANES), *a);
        }
    }
}

/// How [`across_channels_1d`] and [`across_channels_2d`] sum a block of outputs, chosen by
/// the variant of the convolution that runs them.
#[derive(Debug, Clone, Copy)]
enum Variant {
    /// Portable code the compiler vectorizes (16 lanes are two ymm or four NEON q registers).
    Generic,
    /// AVX-512 intrinsics ([`Taps1d::block_avx512`], [`Rows2d::block_avx512`]).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Variant {
    /// 1-D output positions per block at most (the const-generic instances go up to 8): four
    /// blocks of sums plus four tap weights fill the sixteen ymm; with AVX-512, eight.
    fn max_positions_1d(self) -> usize {
        match self {
            Variant::Generic => 4,
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => 8,
        }
    }

    /// 2-D output positions per block at most (the const-generic instances go up to 10): five
    /// blocks of sums, a weight and an input fill the sixteen ymm; with AVX-512 ten zmm of sums.
    fn max_positions_2d(self) -> usize {
        match self {
            Variant::Generic => 5,
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512 => 10,
        }
    }
}

/// 2-D in `SumOrder::FmaChain`, channels in the vector lanes. Over a row of positions each tap
/// would read its window at a different unaligned offset, and a 64-byte load across two cache
/// lines costs two (the per-channel flat-row kernel this replaced ran at 15 GMAC/s on Zen 4,
/// bound by its loads). In blocks of 16 channels (MLAS's NCHWc layout), every tap of every
/// output reads one aligned vector, and the tap's weights are one vector for all positions of a
/// block. Channel block by channel block, the input is copied to `[padded row][padded
/// column][16]` (the weights were packed `[channel block][tap][16]`, see [`pack_weights`]; the
/// rows are contiguous, so the 7 rows a block of outputs reads stay in L1), each block of up to
/// `variant.max_positions_2d()` outputs of one row sums its taps in registers, and the block's
/// outputs are transposed back. Every output is one chain of fused multiply-adds over the taps
/// in row-major order from zero, bias added last: `FmaChain`, lane by lane, so the bits are
/// those of the per-channel kernel.
#[inline(always)]
fn across_channels_2d(
    g: &DepthwiseGeometry,
    input: &[f32],
    wt: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    variant: Variant,
) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let (ph, pw) = g.padded();
    let ch = g.channels;
    let taps = g.k_h * g.k_w;
    let blocks_c = ch.div_ceil(LANES);
    assert_eq!(input.len(), ch * g.in_h * g.in_w);
    assert_eq!(wt.len(), taps * blocks_c * LANES);
    assert_eq!(out.len(), ch * oh * ow);
    if oh == 0 || ow == 0 {
        return;
    }
    // Scratch, one channel block at a time (55 KB for ConvNeXt's): padded input [ph][pw][16],
    // output [oh·ow][16], bias [cp]. Only the input's padding (rows, columns, lanes) and the
    // bias's padding lanes are zeroed.
    let (in_block, out_block) = (ph * pw * LANES, oh * ow * LANES);
    let (xb, rest) = cache_aligned(scratch, in_block + out_block + blocks_c * LANES).split_at_mut(in_block);
    let (ob, bt) = rest.split_at_mut(out_block);
    let (top, left) = (g.pad[0], g.pad[2]);
    let plane = g.in_h * g.in_w;
    if let Some(b) = bias {
        bt[..ch].copy_from_slice(b);
        bt[ch..].fill(0.0);
    }
    // Each row in blocks of nearly equal size, none over the variant's maximum (19 → 10 + 9 or
    // 4×5: short blocks leave the adder chains waiting on each other).
    let blocks = ow.div_ceil(variant.max_positions_2d());
    let (base, extra) = (ow / blocks, ow % blocks);
    for cb in 0..blocks_c {
        let lanes = (ch - cb * LANES).min(LANES);
        xb[..top * pw * LANES].fill(0.0);
        xb[(top + g.in_h) * pw * LANES..].fill(0.0);
        for y in 0..g.in_h {
            let row = &mut xb[(top + y) * pw * LANES..(top + y + 1) * pw * LANES];
            row[..left * LANES].fill(0.0);
            row[(left + g.in_w) * LANES..].fill(0.0);
            let row = &mut row[left * LANES..(left + g.in_w) * LANES];
            let src = &input[cb * LANES * plane + y * g.in_w..];
            lanes_from_rows(row, src, plane, lanes, g.in_w);
        }
        let rows = Rows2d {
            xt: xb,
            wt: &wt[cb * taps * LANES..(cb + 1) * taps * LANES],
            pw,
            k_h: g.k_h,
            k_w: g.k_w,
            bias: bias.map(|_| <&[f32; LANES]>::try_from(&bt[cb * LANES..(cb + 1) * LANES]).expect("16 lanes")),
            #[cfg(target_arch = "x86_64")]
            avx512: matches!(variant, Variant::Avx512),
        };
        for y in 0..oh {
            let mut x0 = 0;
            for b in 0..blocks {
                let n = base + usize::from(b < extra);
                let o = &mut ob[(y * ow + x0) * LANES..(y * ow + x0 + n) * LANES];
                match n {
                    1 => rows.block::<1>(o, y, x0),
                    2 => rows.block::<2>(o, y, x0),
                    3 => rows.block::<3>(o, y, x0),
                    4 => rows.block::<4>(o, y, x0),
                    5 => rows.block::<5>(o, y, x0),
                    6 => rows.block::<6>(o, y, x0),
                    7 => rows.block::<7>(o, y, x0),
                    8 => rows.block::<8>(o, y, x0),
                    9 => rows.block::<9>(o, y, x0),
                    _ => rows.block::<10>(o, y, x0),
                }
                x0 += n;
            }
        }
        rows_from_lanes(&mut out[cb * LANES * oh * ow..], oh * ow, ob, lanes, oh * ow);
    }
}

/// `dst[x·16 + l] = src[l·stride + x]` for `x < n`, `l < 16` (zeros for `l ≥ lanes`): rows of
/// a channel-major plane into channels-last vectors, in 4×4 transposes (a plain loop
/// vectorizes into 16-lane scatters, which cost more than the convolution).
#[inline(always)]
fn lanes_from_rows(dst: &mut [f32], src: &[f32], stride: usize, lanes: usize, n: usize) {
    assert!(dst.len() >= n * LANES && lanes <= LANES && (lanes == 0 || src.len() >= (lanes - 1) * stride + n));
    let mut x = 0;
    while x + 4 <= n {
        let mut l = 0;
        while l + 4 <= lanes {
            let r = transpose4(std::array::from_fn(|k| src[(l + k) * stride + x..][..4].try_into().expect("4")));
            for (k, col) in r.iter().enumerate() {
                dst[(x + k) * LANES + l..][..4].copy_from_slice(col);
            }
            l += 4;
        }
        for k in 0..4 {
            for ll in l..lanes {
                dst[(x + k) * LANES + ll] = src[ll * stride + x + k];
            }
            dst[(x + k) * LANES + lanes..(x + k + 1) * LANES].fill(0.0);
        }
        x += 4;
    }
    for x in x..n {
        for l in 0..lanes {
            dst[x * LANES + l] = src[l * stride + x];
        }
        dst[x * LANES + lanes..(x + 1) * LANES].fill(0.0);
    }
}

/// `dst[l·stride + q] = src[q·16 + l]` for `q < n`, `l < lanes`: the inverse of
/// [`lanes_from_rows`].
#[inline(always)]
fn rows_from_lanes(dst: &mut [f32], stride: usize, src: &[f32], lanes: usize, n: usize) {
    assert!(src.len() >= n * LANES && lanes <= LANES && (lanes == 0 || dst.len() >= (lanes - 1) * stride + n));
    let mut l = 0;
    while l + 4 <= lanes {
        let mut q = 0;
        while q + 4 <= n {
            let r = transpose4(std::array::from_fn(|k| src[(q + k) * LANES + l..][..4].try_into().expect("4")));
            for (k, col) in r.iter().enumerate() {
                dst[(l + k) * stride + q..][..4].copy_from_slice(col);
            }
            q += 4;
        }
        for q in q..n {
            for k in 0..4 {
                dst[(l + k) * stride + q] = src[q * LANES + l + k];
            }
        }
        l += 4;
    }
    for l in l..lanes {
        for q in 0..n {
            dst[l * stride + q] = src[q * LANES + l];
        }
    }
}

/// One channel block's operands of [`across_channels_2d`].
struct Rows2d<'a> {
    /// `[padded row][padded column][16]`.
    xt: &'a [f32],
    /// `[tap][16]`.
    wt: &'a [f32],
    pw: usize,
    k_h: usize,
    k_w: usize,
    bias: Option<&'a [f32; LANES]>,
    /// Run [`Rows2d::block_avx512`] (set by the AVX-512 variant of the convolution).
    #[cfg(target_arch = "x86_64")]
    avx512: bool,
}

impl Rows2d<'_> {
    /// Outputs `x0..x0+P` of row `y` into `o` (`[P][16]`).
    #[inline(always)]
    fn block<const P: usize>(&self, o: &mut [f32], y: usize, x0: usize) {
        // The block reads padded rows y..y+k_h, columns x0..x0+P+k_w-1: checked once here, so
        // that the loop below runs on pointers without bounds checks (with them, the compiler
        // kept one spilled base pointer per position).
        let last = (y + self.k_h - 1) * self.pw + x0 + P - 1 + self.k_w - 1;
        assert!((last + 1) * LANES <= self.xt.len() && self.k_h * self.k_w * LANES <= self.wt.len() && o.len() == P * LANES);
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is set only where the CPU has AVX-512F; bounds asserted above.
            return unsafe { self.block_avx512::<P>(o, y * self.pw + x0) };
        }
        let mut acc = [[0f32; LANES]; P];
        // One loop over the taps in row-major order: `at` walks the window's top-left corner
        // (a nested row/column loop left the sums in memory between the rows).
        let (mut at, mut j) = (y * self.pw + x0, 0);
        for w in self.wt[..self.k_h * self.k_w * LANES].chunks_exact(LANES) {
            let w: [f32; LANES] = w.try_into().expect("16 lanes");
            // SAFETY: positions at + p ≤ last: in bounds by the assert.
            let xp = unsafe { self.xt.as_ptr().add(at * LANES) };
            for (p, a) in acc.iter_mut().enumerate() {
                // SAFETY: as above; [f32; LANES] has f32's alignment.
                let x: [f32; LANES] = unsafe { std::ptr::read(xp.add(p * LANES) as *const [f32; LANES]) };
                for l in 0..LANES {
                    a[l] = w[l].mul_add(x[l], a[l]);
                }
            }
            j += 1;
            if j == self.k_w {
                j = 0;
                at += self.pw - self.k_w + 1;
            } else {
                at += 1;
            }
        }
        if let Some(b) = self.bias {
            for a in acc.iter_mut() {
                for l in 0..LANES {
                    a[l] += b[l];
                }
            }
        }
        for (p, a) in acc.iter().enumerate() {
            o[p * LANES..(p + 1) * LANES].copy_from_slice(a);
        }
    }

    /// [`Rows2d::block`] in AVX-512 intrinsics, from the window's top-left position `at`: the
    /// same fused multiply-adds in the same order, the sums in zmm registers throughout (the
    /// compiler kept the generic version's first sum in memory and added the bias lane by lane).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block_avx512<const P: usize>(&self, o: &mut [f32], mut at: usize) {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_setzero_ps(); P];
        let (x, w) = (self.xt.as_ptr(), self.wt.as_ptr());
        let mut t = 0;
        for _ in 0..self.k_h {
            for _ in 0..self.k_w {
                let wv = _mm512_loadu_ps(w.add(t * LANES));
                let xp = x.add(at * LANES);
                for (p, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp.add(p * LANES)), *a);
                }
                t += 1;
                at += 1;
            }
            at += self.pw - self.k_w;
        }
        if let Some(b) = self.bias {
            let bv = _mm512_loadu_ps(b.as_ptr());
            for a in acc.iter_mut() {
                *a = _mm512_add_ps(*a, bv);
            }
        }
        for (p, a) in acc.iter().enumerate() {
            _mm512_storeu_ps(o.as_mut_ptr().add(p * LANES), *a);
        }
    }
}

/// `SumOrder::MlasGemv`, 1-D or 2-D: each output row summed over contiguous positions.
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
    // Tap offsets in the padded channel, row-major (im2col's order).
    let offsets: Vec<usize> = (0..g.k_h).flat_map(|i| (0..g.k_w).map(move |j| i * pw + j)).collect();
    for c in 0..g.channels {
        // Padded copy of the channel (borders stay zero).
        let src = &input[c * g.in_h * g.in_w..(c + 1) * g.in_h * g.in_w];
        for y in 0..g.in_h {
            let row = (y + g.pad[0]) * pw + g.pad[2];
            scratch[row..row + g.in_w].copy_from_slice(&src[y * g.in_w..(y + 1) * g.in_w]);
        }
        let w = &weights[c * g.k_h * g.k_w..(c + 1) * g.k_h * g.k_w];
        let o = &mut out[c * oh * ow..(c + 1) * oh * ow];
        for y in 0..oh {
            sum_taps_like_mlas(&mut o[y * ow..(y + 1) * ow], &scratch[y * pw..], w, &offsets, bias.map(|b| b[c]));
        }
    }
}

/// `out[p] = Σ_t w_t · src[off_t + p] (+ bias)` in the order onnxruntime computes a depthwise
/// convolution on x86-64: im2col, then MLAS's one-row SGEMM kernel (`MlasSgemmKernelM1Avx`),
/// which walks the taps in groups of four (then two, then one), sums each group left to right
/// with separate multiplies and adds, adds the group to the running output, and leaves the bias
/// to a final add (`MlasActivation`). Verified bit for bit against onnxruntime's `Conv` output.
#[inline(always)]
fn sum_taps_like_mlas(out: &mut [f32], src: &[f32], weights: &[f32], offsets: &[usize], bias: Option<f32>) {
    let n = out.len();
    let col = |t: usize| &src[offsets[t]..offsets[t] + n];
    let taps = weights.len();
    let mut t = 0;
    while t < taps {
        let take = if taps - t >= 4 { 4 } else if taps - t >= 2 { 2 } else { 1 };
        let first = t == 0;
        match take {
            4 => {
                let (w0, w1, w2, w3) = (weights[t], weights[t + 1], weights[t + 2], weights[t + 3]);
                let (x0, x1, x2, x3) = (col(t), col(t + 1), col(t + 2), col(t + 3));
                for p in 0..n {
                    let s = w0 * x0[p] + w1 * x1[p] + w2 * x2[p] + w3 * x3[p];
                    out[p] = if first { s } else { s + out[p] };
                }
            }
            2 => {
                let (w0, w1) = (weights[t], weights[t + 1]);
                let (x0, x1) = (col(t), col(t + 1));
                for p in 0..n {
                    let s = w0 * x0[p] + w1 * x1[p];
                    out[p] = if first { s } else { s + out[p] };
                }
            }
            _ => {
                let (w0, x0) = (weights[t], col(t));
                for p in 0..n {
                    let s = w0 * x0[p];
                    out[p] = if first { s } else { s + out[p] };
                }
            }
        }
        t += take;
    }
    if taps == 0 {
        out.fill(0.0);
    }
    if let Some(b) = bias {
        for v in out.iter_mut() {
            *v += b;
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
    use crate::kernels::test_data::{cpu_ns, lcg};

    /// The documented orders, written out one output at a time.
    fn in_order(g: &DepthwiseGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Vec<f32> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut out = vec![0.0f32; g.channels * oh * ow];
        for c in 0..g.channels {
            for y in 0..oh {
                for xo in 0..ow {
                    let at = |i: usize, j: usize| -> f32 {
                        let (iy, ix) = (y + i, xo + j);
                        if iy < g.pad[0] || ix < g.pad[2] || iy - g.pad[0] >= g.in_h || ix - g.pad[2] >= g.in_w {
                            0.0
                        } else {
                            x[(c * g.in_h + iy - g.pad[0]) * g.in_w + ix - g.pad[2]]
                        }
                    };
                    let taps: Vec<(f32, f32)> = (0..g.k_h)
                        .flat_map(|i| (0..g.k_w).map(move |j| (i, j)))
                        .map(|(i, j)| (w[(c * g.k_h + i) * g.k_w + j], at(i, j)))
                        .collect();
                    let sum = match g.order {
                        SumOrder::FmaChain => taps.iter().fold(0.0f32, |acc, (wv, xv)| wv.mul_add(*xv, acc)),
                        SumOrder::MlasGemv => {
                            let mut acc: Option<f32> = None;
                            let mut rest = &taps[..];
                            while !rest.is_empty() {
                                let n = if rest.len() >= 4 { 4 } else if rest.len() >= 2 { 2 } else { 1 };
                                let group = rest[..n].iter().map(|(wv, xv)| wv * xv).reduce(|a, p| a + p).unwrap();
                                acc = Some(acc.map_or(group, |a| group + a));
                                rest = &rest[n..];
                            }
                            acc.unwrap_or(0.0)
                        }
                    };
                    out[(c * oh + y) * ow + xo] = b.map_or(sum, |b| sum + b[c]);
                }
            }
        }
        out
    }

    #[test]
    fn across_channels_matches_per_channel_rows_bit_for_bit() {
        // Channel counts around the 16-lane blocks, widths around the 4-position blocks, tap
        // counts covering every 4/2/1 grouping tail.
        for &(channels, in_w, k_w, pad) in &[
            (1, 1, 1, [0, 0]),
            (16, 16, 31, [15, 15]),
            (17, 13, 31, [15, 15]),
            (40, 31, 16, [0, 0]),
            (33, 9, 7, [3, 3]),
            (64, 22, 6, [0, 5]),
            (5, 3, 2, [1, 0]),
        ] {
            let g = DepthwiseGeometry { channels, in_h: 1, in_w, k_h: 1, k_w, pad: [0, 0, pad[0], pad[1]], order: SumOrder::MlasGemv };
            let x = lcg(channels * in_w, 7);
            let w = lcg(channels * k_w, 8);
            let b = lcg(channels, 9);
            for bias in [None, Some(&b[..])] {
                let n = channels * g.out_w();
                let (mut rows, mut across, mut dispatched) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
                rows_1d(&g, &x, &w, bias, &mut rows, &mut Vec::new());
                let packed = pack_channels_last(&w, channels, k_w);
                depthwise_conv(&g, &x, &w, bias, &mut dispatched, &mut vec![1.0; 3]);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                #[allow(unused_mut)]
                let mut variants = vec![Variant::Generic];
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") {
                    variants.push(Variant::Avx512);
                }
                for variant in variants {
                    across.fill(f32::NAN);
                    across_channels_1d(&g, &x, &packed, bias, &mut across, &mut vec![f32::NAN; 5000], variant);
                    assert_eq!(bits(&across), bits(&rows), "{variant:?} {g:?} bias {}", bias.is_some());
                }
                assert_eq!(bits(&dispatched), bits(&rows), "{g:?} bias {}", bias.is_some());
            }
        }
    }

    /// Per-channel rows against channels-last blocks on Zipformer's 1-D shapes, interleaved in
    /// one run (min of the rounds): `cargo test --release --lib -- --ignored --nocapture depthwise_1d_speed`.
    #[test]
    #[ignore]
    fn depthwise_1d_speed() {
        // Chunkwise convs (pad both sides) on the 16-frame chunk after each stack's downsampling
        // (16, 8, 4, 2 frames), and a causal conv over cache + chunk.
        for &(channels, in_w, k_w, pad) in &[
            (256, 16, 31, [15, 15]),
            (512, 16, 15, [7, 7]),
            (768, 8, 31, [15, 15]),
            (512, 4, 15, [7, 7]),
            (384, 2, 31, [15, 15]),
            (384, 31, 16, [0, 0]),
        ] {
            let g = DepthwiseGeometry { channels, in_h: 1, in_w, k_h: 1, k_w, pad: [0, 0, pad[0], pad[1]], order: SumOrder::MlasGemv };
            let (x, w, b) = (lcg(channels * in_w, 1), lcg(channels * k_w, 2), lcg(channels, 3));
            let packed = pack_channels_last(&w, channels, k_w);
            let mut out = vec![0.0; channels * g.out_w()];
            let mut scratch = Vec::new();
            // The per-channel rows as production ran them: compiled for AVX-512 where it exists.
            let rows_1d = |g: &DepthwiseGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>, o: &mut [f32], s: &mut Vec<f32>| {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
                    #[target_feature(enable = "avx512f,avx2,fma")]
                    unsafe fn rows_avx512(g: &DepthwiseGeometry, x: &[f32], w: &[f32], b: Option<&[f32]>, o: &mut [f32], s: &mut Vec<f32>) {
                        rows_1d(g, x, w, b, o, s)
                    }
                    // SAFETY: features checked just above.
                    return unsafe { rows_avx512(g, x, w, b, o, s) };
                }
                rows_1d(g, x, w, b, o, s)
            };
            let (mut rows, mut across) = (f64::MAX, f64::MAX);
            let reps = 200;
            for _ in 0..15 {
                let t = cpu_ns();
                for _ in 0..reps {
                    rows_1d(&g, &x, &w, Some(&b), &mut out, &mut scratch);
                }
                rows = rows.min((cpu_ns() - t) as f64 * 1e-9 / reps as f64);
                let t = cpu_ns();
                for _ in 0..reps {
                    depthwise_conv_with(&g, &x, &w, Some(&packed), Some(&b), &mut out, &mut scratch);
                }
                across = across.min((cpu_ns() - t) as f64 * 1e-9 / reps as f64);
            }
            let macs = (channels * g.out_w() * k_w) as f64;
            println!(
                "depthwise 1-D C={channels} T={in_w} k={k_w}: per-channel rows {:.1} µs ({:.1} GMAC/s), dispatched (across channels up to 16 positions) {:.1} µs ({:.1} GMAC/s), ratio {:.2}",
                rows * 1e6, macs / rows / 1e9, across * 1e6, macs / across / 1e9, across / rows
            );
        }
    }

    /// The ConvNeXt 7×7 (2-D, `FmaChain`) as dispatched: `cargo test --release --lib -- --ignored
    /// --nocapture depthwise_2d_speed`.
    #[test]
    #[ignore]
    fn depthwise_2d_speed() {
        let g = DepthwiseGeometry { channels: 128, in_h: 22, in_w: 19, k_h: 7, k_w: 7, pad: [0, 0, 3, 3], order: SumOrder::FmaChain };
        let (x, w, b) = (lcg(128 * 22 * 19, 1), lcg(128 * 49, 2), lcg(128, 3));
        let mut out = vec![0.0; 128 * g.out_h() * g.out_w()];
        let mut scratch = Vec::new();
        let mut best = f64::MAX;
        for _ in 0..20 {
            let t = cpu_ns();
            for _ in 0..100 {
                depthwise_conv(&g, &x, &w, Some(&b), &mut out, &mut scratch);
            }
            best = best.min((cpu_ns() - t) as f64 * 1e-9 / 100.0);
        }
        let macs = (128 * g.out_h() * g.out_w() * 49) as f64;
        println!("depthwise 2-D 128x22x19 7x7: {:.1} µs, {:.1} GMAC/s", best * 1e6, macs / best / 1e9);
    }

    /// Every compiled variant of the 2-D kernel (AVX-512 intrinsics, the generic blocks under
    /// AVX2 and baseline features) against the order written out, over channel counts around
    /// the 16-lane blocks and row widths that split into every block size from 1 to 10.
    #[test]
    fn fma_chain_2d_matches_in_order_on_every_variant() {
        type Variant = fn(&DepthwiseGeometry, &[f32], &[f32], Option<&[f32]>, &mut [f32], &mut Vec<f32>);
        let mut variants: Vec<(&str, Variant)> = vec![("scalar", depthwise_conv_scalar)];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: features checked just above.
                variants.push(("avx2", |g, x, w, b, o, s| unsafe { depthwise_conv_avx2(g, x, w, None, b, o, s) }));
            }
            if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
                // SAFETY: features checked just above.
                variants.push(("avx512", |g, x, w, b, o, s| unsafe { depthwise_conv_avx512(g, x, w, None, b, o, s) }));
            }
        }
        variants.push(("dispatched", depthwise_conv));
        for (channels, in_h, in_w, k_h, k_w, pad) in [
            (128, 22, 19, 7, 7, [0, 0, 3, 3]),
            (16, 9, 25, 7, 7, [0, 0, 3, 3]),
            (17, 4, 1, 3, 1, [1, 1, 0, 0]),
            (33, 6, 7, 3, 3, [2, 0, 1, 2]),
            (5, 3, 12, 1, 3, [0, 1, 0, 0]),
            (48, 8, 10, 2, 5, [0, 0, 2, 2]),
            (1, 1, 1, 1, 1, [0, 0, 0, 0]),
        ] {
            for in_w in [in_w, in_w + 1, in_w + 2] {
                let g = DepthwiseGeometry { channels, in_h, in_w, k_h, k_w, pad, order: SumOrder::FmaChain };
                let x = lcg(channels * in_h * in_w, 4);
                let w = lcg(channels * k_h * k_w, 5);
                let b = lcg(channels, 6);
                for bias in [None, Some(&b[..])] {
                    let exact = in_order(&g, &x, &w, bias);
                    for (name, run) in &variants {
                        // Scratch full of NaN (as if left by other convolutions): whatever the
                        // kernel reads without writing it first shows up in the outputs.
                        let mut scratch = vec![f32::NAN; 100_000];
                        let mut got = vec![f32::NAN; exact.len()];
                        run(&g, &x, &w, bias, &mut got, &mut scratch);
                        run(&g, &x, &w, bias, &mut got, &mut scratch);
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&got), bits(&exact), "{name} {g:?} bias {}", bias.is_some());
                    }
                }
            }
        }
    }

    #[test]
    fn matches_reference_on_zipformer_shapes() {
        for (g, order) in [
            // chunkwise conv: 31 taps, 15 both sides
            DepthwiseGeometry { channels: 5, in_h: 1, in_w: 16, k_h: 1, k_w: 31, pad: [0, 0, 15, 15], order: SumOrder::MlasGemv },
            // causal conv over cache + chunk, no padding
            DepthwiseGeometry { channels: 3, in_h: 1, in_w: 31, k_h: 1, k_w: 16, pad: [0, 0, 0, 0], order: SumOrder::MlasGemv },
            // ConvNeXt 7x7, padded on one side of each axis
            DepthwiseGeometry { channels: 4, in_h: 22, in_w: 19, k_h: 7, k_w: 7, pad: [0, 0, 3, 3], order: SumOrder::MlasGemv },
            DepthwiseGeometry { channels: 2, in_h: 5, in_w: 3, k_h: 3, k_w: 3, pad: [1, 2, 2, 1], order: SumOrder::MlasGemv },
        ]
        .into_iter()
        .flat_map(|g| [SumOrder::MlasGemv, SumOrder::FmaChain].map(|order| (DepthwiseGeometry { order, ..g }, order)))
        {
            assert_eq!(g.order, order);
            let x = lcg(g.channels * g.in_h * g.in_w, 1);
            let w = lcg(g.channels * g.k_h * g.k_w, 2);
            let b = lcg(g.channels, 3);
            let close = depthwise_conv_reference(&g, &x, &w, Some(&b));
            let exact = in_order(&g, &x, &w, Some(&b));
            let mut got = vec![0.0; close.len()];
            depthwise_conv(&g, &x, &w, Some(&b), &mut got, &mut Vec::new());
            let mut scalar = vec![0.0; close.len()];
            depthwise_conv_scalar(&g, &x, &w, Some(&b), &mut scalar, &mut Vec::new());
            for i in 0..close.len() {
                assert_eq!(got[i].to_bits(), exact[i].to_bits(), "{g:?} at {i}: dispatched {} vs in order {}", got[i], exact[i]);
                assert_eq!(scalar[i].to_bits(), exact[i].to_bits(), "{g:?} at {i}: scalar {} vs in order {}", scalar[i], exact[i]);
                assert!((got[i] - close[i]).abs() < 1e-5, "{g:?}: dispatched {} vs {}", got[i], close[i]);
            }
        }
    }
}
