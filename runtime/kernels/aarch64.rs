//! aarch64 kernels: NEON (ARMv8.0, e.g. Cortex-A72 / Pi 4) and dot-product (ARMv8.2 `sdot`,
//! Cortex-A76 / Pi 5, A78AE / Orin) qgemm, NEON min/max and quantize. The binary targets baseline
//! ARMv8.0: only the `dotprod` functions carry `#[target_feature(enable = "dotprod")]`, and they
//! run only when `is_aarch64_feature_detected!("dotprod")` said so (see detect.rs).
//!
//! # Why integer SMULL/SMLAL/SADALP (and not f32 FMA) on ARMv8.0 (Cortex-A72)
//!
//! Activations are biased to s8 once per call (`a ^ 0x80` = `a - 128`), so products are s8×s8;
//! the bias and the zero point are corrected in the epilogue: `Σ(a-zp)w = Σ(a-128)w +
//! (128-zp)·colsum`. Weights: 16 bytes = 8 columns × 2 k, `[c0k0 c0k1 c1k0 c1k1 … c7k0 c7k1]`;
//! activations: a k pair duplicated, `[a0 a1 a0 a1 …]` (`ld1r`). Counting per 16 MACs:
//!
//! - integer: `smull` (8 products: 4 columns × 2 k, into s16) + `smlal` (8 more products, the
//!   next k pair, added into the same s16 lanes) + `sadalp` (adjacent s16 lanes added into the
//!   s32 accumulators) = **3 arithmetic instructions / 16 MACs**: 2 on the A72's integer-multiply
//!   pipe (F0, 1/cycle), `sadalp` on F1, so ~2 cycles / 16 MACs (~8 MACs/cycle). Exact:
//!   |(a-128)·w| ≤ 128·127 = 16256, so two products summed in s16 stay within ±32512. That needs
//!   no weight equal to -128: checked at pack time, and matrices containing -128 take an
//!   overflow-free path (`smull` + `sadalp` for every 8 products, no `smlal`: 4 per 16 MACs).
//!   Overheads, shared inside a tile of 3 rows × 16 columns: 2 `ld1r` per row per 4 k, 4 weight
//!   `ldr q` per 4 k; the compiled inner loop (192 MACs) is 56 instructions = 12 `smull` + 12
//!   `smlal` + 12 `sadalp` + 6 `ld1r` + 2 `ldp` + 4 `ext` (LLVM uses `ext` + `smull` for the high
//!   halves) + 8 scalar, i.e. **4.7 instructions / 16 MACs**, no spills (a 4-row tile spilled
//!   accumulators: 84 instructions / 256 MACs = 5.25 / 16 MACs).
//! - f32 FMA on weights de-quantized on the fly (keeping f32 weights would quadruple the weight
//!   stream): 4 `fmla` (by element, 4 columns each) / 16 MACs, plus converting 16 int8 weights =
//!   2 `sxtl` (s8 → s16) + 4 `sxtl` (s16 → s32) + 4 `scvtf` = 10 instructions, shared by the rows
//!   of a tile (2.5 / 16 MACs with 4 rows): **6.5 arithmetic instructions / 16 MACs** on F0/F1,
//!   ≥ 3.25 cycles. Slower, and not exact: the partial sums reach K·255·128 > 2^24 for K > 514,
//!   where f32 stops representing integers, so bit-identity with onnxruntime's integer MatMul
//!   would need k cut in blocks converted back to integers, costing more still.
//!
//! So the A72 kernel is the integer one. With `dotprod`, one `sdot` (by element: 4 columns × 4 k
//! into s32, the activation quad taken from a lane of a 16-k activation register) does 16 MACs:
//! **1 arithmetic instruction / 16 MACs** (A76: 2 per cycle); the compiled 4 rows × 16 columns
//! loop is 64 `sdot` + 12 loads + 4 scalar per 1024 MACs (1.25 instructions / 16 MACs), with the
//! 16 accumulators in registers for the whole k loop (see `for_const`; scripts/kernel-mca.sh
//! runs llvm-mca on every tile's compiled loop and fails below 85% of the model's peak).
//! `vdotq_s32` is not stable in Rust 1.95, so `sdot` is written with `asm!` inside a
//! `#[target_feature(enable = "dotprod")]` function (which is what lets the assembler accept it).
//!
//! Quantize: `fdiv` (a true division), `frintn` (nearest-even), `fadd` zp, clamp by
//! compare + select (so NaN → 0 as the scalar code), `fcvtzu` (exact on integers), narrow.

// Tiles index fixed-size register arrays by (row, vector): explicit loops read best.
#![allow(clippy::needless_range_loop)]

use core::arch::aarch64::*;
use core::arch::asm;

use super::qgemm::{for_each_step, Epilogue, PackedI8Weights, PerGroup, QRows, RowGroup, Step};
use super::quantize::{canonical_zero, quantize_one, QuantParams};

/// Selects a monomorphized tile function from run-time (rows, vectors).
macro_rules! match_tile {
    ($sel:expr, $f:ident, [$g:tt], $args:tt, $(($m:literal, $v:literal)),+ $(,)?) => {
        match $sel {
            $( ($m, $v) => $f::<$m, $v, $g> $args, )+
            _ => unreachable!(),
        }
    };
    ($sel:expr, $f:ident, $args:tt, $(($m:literal, $v:literal)),+ $(,)?) => {
        match $sel {
            $( ($m, $v) => $f::<$m, $v> $args, )+
            _ => unreachable!(),
        }
    };
}

const NEON_MR: usize = 3;
const DOT_MR: usize = 4;

/// Activations biased to s8 (`a ^ 0x80`), rows padded with zeros to `kpad` bytes. Stored in u32
/// so that every 2- and 4-byte group is aligned (for `ld1r`).
fn bias_activations(a: &[u8], m: usize, k: usize, kpad: usize) -> Vec<u32> {
    debug_assert!(kpad.is_multiple_of(4));
    let mut buf = vec![0u32; m * kpad / 4];
    // SAFETY: byte view of the u32 buffer.
    let bytes = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut u8, m * kpad) };
    for r in 0..m {
        for (d, &s) in bytes[r * kpad..r * kpad + k].iter_mut().zip(&a[r * k..(r + 1) * k]) {
            *d = s ^ 0x80;
        }
    }
    buf
}

/// Writes the 4 columns of `acc` at tile column `c` for tile row `r`.
#[inline(always)]
unsafe fn store4(e: &Epilogue, r: usize, c: usize, acc: int32x4_t) {
    unsafe {
        if c + 4 <= e.valid {
            let t = vmlaq_s32(acc, vld1q_s32(e.col_sums.add(c)), vdupq_n_s32(e.corr));
            let mut f = vmulq_f32(vcvtq_f32_s32(t), vdupq_n_f32(e.scale));
            if !e.bias.is_null() {
                f = vaddq_f32(f, vld1q_f32(e.bias.add(c)));
            }
            vst1q_f32(e.out.add(r * e.ldo + c), f);
        } else if c < e.valid {
            let mut t = [0i32; 4];
            vst1q_s32(t.as_mut_ptr(), acc);
            for (i, &x) in t.iter().enumerate().take(e.valid - c) {
                e.put_scalar(r, c + i, x);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// NEON (ARMv8.0) qgemm

pub(crate) fn qgemm_neon(groups: &mut [QRows], w: &PackedI8Weights, bias: Option<&[f32]>) {
    debug_assert!(w.kind == super::KernelKind::Neon);
    let kpad = w.kpad;
    let abufs: Vec<Vec<u32>> = groups.iter().map(|g| bias_activations(g.a, g.m, w.k, kpad)).collect();
    let rows: PerGroup<RowGroup> = groups.iter_mut().map(|g| RowGroup::of(g, 128 - g.zp as i32)).collect();
    let safe = w.has_i8_min;
    for_each_step(&rows, w, NEON_MR, bias, |s| {
        // SAFETY: the tile reads its rows of kpad bytes and the panel, writes inside out (see
        // for_each_step); NEON is baseline on aarch64.
        unsafe {
            let at = (abufs[s.group].as_ptr() as *const i8).add(s.r0 * kpad);
            if safe {
                match_tile!((s.mr, s.width / 8), neon_tile, [true], (at, kpad, kpad / 4, s),
                    (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2));
            } else {
                match_tile!((s.mr, s.width / 8), neon_tile, [false], (at, kpad, kpad / 4, s),
                    (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2));
            }
        }
    });
}

/// `vmull_high_s8` as one `smull2`. With a duplicated activation pair LLVM rewrites the
/// intrinsic into `ext` (the weights' high half) + `smull`; the `ext`s share the A72's F1 pipe
/// with the overflow-free path's 24 `sadalp` per loop, which then bound it (83% of peak in
/// llvm-mca's model instead of 100%).
#[inline(always)]
unsafe fn smull_high(a: int8x16_t, b: int8x16_t) -> int16x8_t {
    let p: int16x8_t;
    // SAFETY: register-only arithmetic, baseline NEON.
    unsafe {
        asm!("smull2 {p:v}.8h, {a:v}.16b, {b:v}.16b", p = out(vreg) p, a = in(vreg) a, b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags));
    }
    p
}

/// `MR` rows × `NV`·8 columns. `a`: s8-biased rows (stride `lda`, 4-aligned, `4·kq` bytes);
/// the step's panel (`2·kq` k pairs × NV·8 columns × 2 bytes). `SAFE`: some weight is -128, so
/// never add two products in s16.
#[inline(never)]
unsafe fn neon_tile<const MR: usize, const NV: usize, const SAFE: bool>(a: *const i8, lda: usize, kq: usize, s: &Step) {
    unsafe {
        // Pointer arithmetic with wrapping_add and no index multiplications in the loop (no
        // overflow / precondition checks in debug builds); all addresses are inside the buffers.
        let e = &s.epi;
        let mut acc = [[[vdupq_n_s32(0); 2]; NV]; MR];
        let mut ar = [a; MR];
        for r in 1..MR {
            ar[r] = ar[r - 1].wrapping_add(lda);
        }
        let mut wq = s.panel;
        for _ in 0..kq {
            let mut w0 = [vdupq_n_s8(0); NV];
            let mut w1 = [vdupq_n_s8(0); NV];
            for v in 0..NV {
                w0[v] = vld1q_s8(wq.wrapping_add(v * 16));
                w1[v] = vld1q_s8(wq.wrapping_add(NV * 16 + v * 16));
            }
            wq = wq.wrapping_add(NV * 32);
            for r in 0..MR {
                // [a0 a1 a0 a1 …] and [a2 a3 a2 a3 …] (`ld1r`; 2-aligned).
                let d0 = vreinterpretq_s8_s16(vld1q_dup_s16(ar[r] as *const i16));
                let d1 = vreinterpretq_s8_s16(vld1q_dup_s16(ar[r].wrapping_add(2) as *const i16));
                ar[r] = ar[r].wrapping_add(4);
                for v in 0..NV {
                    if SAFE {
                        let lo = &mut acc[r][v][0];
                        *lo = vpadalq_s16(*lo, vmull_s8(vget_low_s8(d0), vget_low_s8(w0[v])));
                        *lo = vpadalq_s16(*lo, vmull_s8(vget_low_s8(d1), vget_low_s8(w1[v])));
                        let hi = &mut acc[r][v][1];
                        *hi = vpadalq_s16(*hi, smull_high(d0, w0[v]));
                        *hi = vpadalq_s16(*hi, smull_high(d1, w1[v]));
                    } else {
                        let p = vmlal_s8(vmull_s8(vget_low_s8(d0), vget_low_s8(w0[v])), vget_low_s8(d1), vget_low_s8(w1[v]));
                        acc[r][v][0] = vpadalq_s16(acc[r][v][0], p);
                        let p = vmlal_high_s8(vmull_high_s8(d0, w0[v]), d1, w1[v]);
                        acc[r][v][1] = vpadalq_s16(acc[r][v][1], p);
                    }
                }
            }
        }
        for r in 0..MR {
            for v in 0..NV {
                store4(e, r, v * 8, acc[r][v][0]);
                store4(e, r, v * 8 + 4, acc[r][v][1]);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Dot-product (ARMv8.2 `sdot`) qgemm

pub(crate) fn qgemm_neon_dotprod(groups: &mut [QRows], w: &PackedI8Weights, bias: Option<&[f32]>) {
    debug_assert!(w.kind == super::KernelKind::NeonDotprod);
    let kpad = w.kpad;
    let abufs: Vec<Vec<u32>> = groups.iter().map(|g| bias_activations(g.a, g.m, w.k, kpad)).collect();
    let rows: PerGroup<RowGroup> = groups.iter_mut().map(|g| RowGroup::of(g, 128 - g.zp as i32)).collect();
    for_each_step(&rows, w, DOT_MR, bias, |s| {
        // SAFETY: weights packed for NeonDotprod exist only if the CPU has dotprod (see
        // detect.rs); bounds as in qgemm_neon.
        unsafe {
            let at = (abufs[s.group].as_ptr() as *const i8).add(s.r0 * kpad);
            match_tile!((s.mr, s.width / 4), dot_tile, (at, kpad, kpad / 16, s),
                (1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4),
                (3, 1), (3, 2), (3, 3), (3, 4), (4, 1), (4, 2), (4, 3), (4, 4));
        }
    });
}

/// `acc.4s += w.16b · a.4b[lane]` (4 columns × 4 k of `w` against k quad `lane` of `a`).
macro_rules! sdot_lane {
    ($acc:expr, $w:expr, $a:expr, $lane:literal) => {
        asm!(
            concat!("sdot {acc:v}.4s, {w:v}.16b, {a:v}.4b[", $lane, "]"),
            acc = inout(vreg) $acc,
            w = in(vreg) $w,
            a = in(vreg) $a,
            options(pure, nomem, nostack, preserves_flags)
        )
    };
}

/// Runs `$body` once for each `$i` in `0..$n` (`$n` ≤ 4), `$i` a constant in each copy. The
/// dot tile indexes its register arrays with these constants rather than loop counters: LLVM
/// splits an array into registers (SROA) only if every index is a constant when that pass runs,
/// which for loops over `0..MR` happens only after unrolling, too late; the 4×16 tile then kept
/// its accumulators in a stack array, stored after every `sdot` quad (42% of peak).
macro_rules! for_const {
    ($i:ident < $n:expr, $body:block) => {{
        { const $i: usize = 0; if $i < $n $body }
        { const $i: usize = 1; if $i < $n $body }
        { const $i: usize = 2; if $i < $n $body }
        { const $i: usize = 3; if $i < $n $body }
    }};
}

/// `MR` rows × `NV`·4 columns (`MR`, `NV` ≤ 4). `a`: s8-biased rows (stride `lda`, `16·k16`
/// bytes); the step's panel (`4·k16` k quads × NV·4 columns × 4 bytes). The compiled k loop
/// (4×4) is 64 `sdot` + 4 activation `ldr q` + 8 weight `ldp q` + 4 scalar, accumulators in
/// registers throughout (checked by scripts/kernel-mca.sh).
#[target_feature(enable = "dotprod")]
#[inline(never)]
unsafe fn dot_tile<const MR: usize, const NV: usize>(a: *const i8, lda: usize, k16: usize, s: &Step) {
    unsafe {
        // (Pointer arithmetic as in neon_tile.) Arrays are 4×4 whatever the tile: the unused
        // entries are dead code.
        let e = &s.epi;
        let zero = vdupq_n_s32(0);
        let mut acc = [[zero; 4]; 4];
        let mut ar = [a; 4];
        for_const!(R < MR, {
            ar[R] = a.wrapping_add(R * lda);
        });
        let mut wq = s.panel;
        for _ in 0..k16 {
            let mut av = [vdupq_n_s8(0); 4];
            for_const!(R < MR, {
                av[R] = vld1q_s8(ar[R]);
                ar[R] = ar[R].wrapping_add(16);
            });
            macro_rules! quad {
                ($lane:literal) => {
                    let mut wv = [vdupq_n_s8(0); 4];
                    for_const!(V < NV, {
                        wv[V] = vld1q_s8(wq.wrapping_add(V * 16));
                    });
                    wq = wq.wrapping_add(NV * 16);
                    for_const!(R < MR, {
                        for_const!(V < NV, {
                            sdot_lane!(acc[R][V], wv[V], av[R], $lane);
                        });
                    });
                };
            }
            quad!(0);
            quad!(1);
            quad!(2);
            quad!(3);
        }
        for_const!(R < MR, {
            for_const!(V < NV, {
                store4(e, R, V * 4, acc[R][V]);
            });
        });
    }
}

// ------------------------------------------------------------------------------------------------
// NEON min/max and quantize

pub(crate) fn min_max_neon(x: &[f32]) -> (f32, f32) {
    // SAFETY: NEON is baseline on aarch64; loads stay inside x.
    unsafe {
        // Compare + select, v < lo ? v : lo: a NaN v (quiet or signalling) leaves lo unchanged
        // (`fminnm` would turn a signalling NaN into NaN).
        let mut lo = [vdupq_n_f32(0.0); 4];
        let mut hi = [vdupq_n_f32(0.0); 4];
        let mut chunks = x.chunks_exact(16);
        for c in &mut chunks {
            for i in 0..4 {
                let v = vld1q_f32(c.as_ptr().add(i * 4));
                lo[i] = vbslq_f32(vcltq_f32(v, lo[i]), v, lo[i]);
                hi[i] = vbslq_f32(vcgtq_f32(v, hi[i]), v, hi[i]);
            }
        }
        let mut rest = chunks.remainder().chunks_exact(4);
        for c in &mut rest {
            let v = vld1q_f32(c.as_ptr());
            lo[0] = vbslq_f32(vcltq_f32(v, lo[0]), v, lo[0]);
            hi[0] = vbslq_f32(vcgtq_f32(v, hi[0]), v, hi[0]);
        }
        // Lanes are never NaN: any fold order gives the same value, up to the sign of a zero.
        let (mut l, mut h) = super::quantize::min_max_scalar(rest.remainder());
        let mut t = [0f32; 4];
        for i in 0..4 {
            vst1q_f32(t.as_mut_ptr(), lo[i]);
            for &v in &t {
                l = l.min(v);
            }
            vst1q_f32(t.as_mut_ptr(), hi[i]);
            for &v in &t {
                h = h.max(v);
            }
        }
        canonical_zero(l, h)
    }
}

pub(crate) fn quantize_neon(x: &[f32], p: QuantParams, out: &mut [u8]) {
    assert_eq!(x.len(), out.len());
    // SAFETY: NEON is baseline on aarch64; loads/stores stay inside x/out.
    unsafe {
        let s = vdupq_n_f32(p.scale);
        let zp = vdupq_n_f32(p.zero_point as f32);
        let zero = vdupq_n_f32(0.0);
        let top = vdupq_n_f32(255.0);
        macro_rules! one {
            ($v:expr) => {{
                let q = vaddq_f32(vrndnq_f32(vdivq_f32($v, s)), zp);
                // q > 0 ? q : 0 (NaN → 0), then q < 255 ? q : 255; an exact integer after.
                let q = vbslq_f32(vcgtq_f32(q, zero), q, zero);
                let q = vbslq_f32(vcltq_f32(q, top), q, top);
                vcvtq_u32_f32(q)
            }};
        }
        let n = x.len();
        let mut i = 0;
        while i + 16 <= n {
            let px = x.as_ptr().add(i);
            let a = vcombine_u16(vmovn_u32(one!(vld1q_f32(px))), vmovn_u32(one!(vld1q_f32(px.add(4)))));
            let b = vcombine_u16(vmovn_u32(one!(vld1q_f32(px.add(8)))), vmovn_u32(one!(vld1q_f32(px.add(12)))));
            vst1q_u8(out.as_mut_ptr().add(i), vcombine_u8(vmovn_u16(a), vmovn_u16(b)));
            i += 16;
        }
        while i + 4 <= n {
            let q = vmovn_u32(one!(vld1q_f32(x.as_ptr().add(i))));
            let mut t = [0u16; 4];
            vst1_u16(t.as_mut_ptr(), q);
            for j in 0..4 {
                out[i + j] = t[j] as u8;
            }
            i += 4;
        }
        let zpf = p.zero_point as f32;
        for j in i..n {
            out[j] = quantize_one(x[j], p.scale, zpf);
        }
    }
}
