//! x86_64 kernels: AVX2 and AVX-512 VNNI qgemm, AVX2 min/max and quantize.
//!
//! All are bit-identical to the scalar references: integer accumulation is exact in i32, the
//! epilogue is `cvtdq2ps` (round-to-nearest-even under the default MXCSR, as Rust's `as f32`),
//! `mulps`, `addps` (never fused), and quantize divides (`divps`) and rounds with `roundps`
//! (nearest-even).
//!
//! - AVX2: `vpmaddubsw` (u8×s8 pairs into *saturating* i16) is not exact (255·127·2 > 32767), so
//!   the weights are loaded as i8 and sign-extended to i16 on the fly (`vpmovsxbw`), the
//!   activations are pre-converted once per call to i16 `a - zp` (in [-255, 255]), and
//!   `vpmaddwd` sums pairs into i32 (|2·255·128| fits easily). Tile: 4 rows × 16 columns.
//! - AVX-512 VNNI: `vpdpbusd` multiplies u8 (the raw activations, broadcast 4 k at a time) by s8
//!   weights and adds 4 products into each i32 lane, exactly; the zero point is corrected in the
//!   epilogue with the column sums (`acc - zp·colsum`). Tile: up to 6 rows × 64 columns (24 zmm
//!   accumulators).

// Tiles index fixed-size register arrays by (row, vector): explicit loops read best.
#![allow(clippy::needless_range_loop)]

use core::arch::x86_64::*;

use super::qgemm::{for_each_step, PackedI8Weights, PerGroup, QRows, RowGroup, Step};
use super::quantize::{canonical_zero, quantize_one, QuantParams};

/// Selects a monomorphized tile function from run-time (rows, vectors).
macro_rules! match_tile {
    ($sel:expr, $f:ident, $args:tt, $(($m:literal, $v:literal)),+ $(,)?) => {
        match $sel {
            $( ($m, $v) => $f::<$m, $v> $args, )+
            _ => unreachable!(),
        }
    };
}

// ------------------------------------------------------------------------------------------------
// AVX2 qgemm

const AVX2_MR: usize = 4;

pub(crate) fn qgemm_avx2(groups: &mut [QRows], w: &PackedI8Weights, bias: Option<&[f32]>) {
    debug_assert!(w.kind == super::KernelKind::Avx2);
    // SAFETY: weights packed for Avx2 exist only if the CPU supports AVX2 (see detect.rs); the
    // slices' lengths were checked by the caller.
    unsafe { avx2_driver(groups, w, bias) }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2_driver(groups: &mut [QRows], w: &PackedI8Weights, bias: Option<&[f32]>) {
    let (k, kpad) = (w.k, w.kpad);
    // Per group, activations as i16 `a - zp`, padded with zeros to kpad, read as i32 (k pairs).
    let lda = kpad / 2;
    let a16: Vec<Vec<i32>> = groups
        .iter()
        .map(|g| {
            let m = g.m;
            let mut buf = vec![0i32; m * lda];
            // SAFETY: i32 → 2 × i16 view of the same allocation.
            let a16s = unsafe { core::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut i16, m * kpad) };
            let zp = g.zp as i16;
            for r in 0..m {
                let dst = &mut a16s[r * kpad..r * kpad + k];
                for (d, &s) in dst.iter_mut().zip(&g.a[r * k..(r + 1) * k]) {
                    *d = s as i16 - zp;
                }
            }
            buf
        })
        .collect();
    // corr is 0: the zero point was subtracted from the activations.
    let rows: PerGroup<RowGroup> = groups.iter_mut().map(|g| RowGroup::of(g, 0)).collect();
    for_each_step(&rows, w, AVX2_MR, bias, |s| {
        // SAFETY: the step's rows and k block are inside its group's a16 (see for_each_step).
        unsafe {
            let ap = a16[s.group].as_ptr().add(s.r0 * lda);
            match_tile!((s.mr, s.width / 8), avx2_tile, (ap, lda, lda, s),
                (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2));
        }
    });
}

/// `MR` rows × `NV`·8 columns of one step. `a`: i16 pairs as i32 at the step's first row, row
/// stride `lda`; the panel holds `kp2` k pairs × NV·8 columns × 2 bytes.
#[target_feature(enable = "avx2")]
#[inline(never)] // (a symbol of its own for scripts/kernel-mca.sh; one call per tile and k loop)
unsafe fn avx2_tile<const MR: usize, const NV: usize>(a: *const i32, lda: usize, kp2: usize, s: &Step) {
    unsafe {
        // Pointer arithmetic with wrapping_add and no index multiplications in the loop: keeps the
        // loop free of overflow / precondition checks in debug builds (all addresses are inside
        // the activation buffer and the panel).
        let mut acc = [[_mm256_setzero_si256(); NV]; MR];
        let mut ar = [a; MR];
        for r in 1..MR {
            ar[r] = ar[r - 1].wrapping_add(lda);
        }
        let mut wq = s.panel;
        for _ in 0..kp2 {
            let mut wv = [_mm256_setzero_si256(); NV];
            for v in 0..NV {
                wv[v] = _mm256_cvtepi8_epi16(_mm_load_si128(wq.wrapping_add(v * 16) as *const __m128i));
            }
            wq = wq.wrapping_add(NV * 16);
            for r in 0..MR {
                let b = _mm256_set1_epi32(*ar[r]);
                ar[r] = ar[r].wrapping_add(1);
                for v in 0..NV {
                    acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(b, wv[v]));
                }
            }
        }
        let e = &s.epi;
        let sc = _mm256_set1_ps(e.scale);
        for r in 0..MR {
            for v in 0..NV {
                let c = v * 8;
                if c + 8 <= e.valid {
                    // corr is 0 (see avx2_driver).
                    let mut f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][v]), sc);
                    if !e.bias.is_null() {
                        f = _mm256_add_ps(f, _mm256_loadu_ps(e.bias.add(c)));
                    }
                    _mm256_storeu_ps(e.out.add(r * e.ldo + c), f);
                } else if c < e.valid {
                    let mut t = [0i32; 8];
                    _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, acc[r][v]);
                    for (i, &x) in t.iter().enumerate().take(e.valid - c) {
                        e.put_scalar(r, c + i, x);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// AVX-512 VNNI qgemm

const VNNI_MR: usize = 6;

pub(crate) fn qgemm_avx512vnni(groups: &mut [QRows], w: &PackedI8Weights, bias: Option<&[f32]>) {
    debug_assert!(w.kind == super::KernelKind::Avx512Vnni);
    // SAFETY: weights packed for Avx512Vnni exist only if the CPU supports it (see detect.rs).
    unsafe { vnni_driver(groups, w, bias) }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn vnni_driver(groups: &mut [QRows], w: &PackedI8Weights, bias: Option<&[f32]>) {
    let (k, kpad) = (w.k, w.kpad);
    // The raw u8 rows are read 4 bytes at a time: pad k to a multiple of 4 in a copy if needed
    // (the padding multiplies zero weights, its value does not matter).
    let padded: Vec<Vec<u8>> = if k == kpad {
        vec![]
    } else {
        groups
            .iter()
            .map(|g| {
                let m = g.m;
                let mut p = vec![0u8; m * kpad];
                for r in 0..m {
                    p[r * kpad..r * kpad + k].copy_from_slice(&g.a[r * k..(r + 1) * k]);
                }
                p
            })
            .collect()
    };
    let rows_of: PerGroup<&[u8]> = if k == kpad { groups.iter().map(|g| g.a).collect() } else { padded.iter().map(|p| &p[..]).collect() };
    let rows: PerGroup<RowGroup> = groups.iter_mut().map(|g| RowGroup::of(g, -(g.zp as i32))).collect();
    for_each_step(&rows, w, VNNI_MR, bias, |s| {
        // SAFETY: the step's rows and k block are inside its group's activations (see
        // for_each_step).
        unsafe {
            let at = rows_of[s.group].as_ptr().add(s.r0 * kpad);
            match_tile!((s.mr, s.width / 16), vnni_tile, (at, kpad, kpad / 4, s),
                (1, 1), (1, 2), (1, 3), (1, 4), (2, 1), (2, 2), (2, 3), (2, 4),
                (3, 1), (3, 2), (3, 3), (3, 4), (4, 1), (4, 2), (4, 3), (4, 4),
                (5, 1), (5, 2), (5, 3), (5, 4), (6, 1), (6, 2), (6, 3), (6, 4));
        }
    });
}

/// `MR` rows × `NV`·16 columns of one step. `a`: u8 rows at the step's first row (stride `lda`,
/// readable for `4·kq` bytes each); the panel holds `kq` k quads × NV·16 columns × 4 bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline(never)] // (as avx2_tile)
unsafe fn vnni_tile<const MR: usize, const NV: usize>(a: *const u8, lda: usize, kq: usize, s: &Step) {
    unsafe {
        // (Pointer arithmetic as in avx2_tile.)
        let mut acc = [[_mm512_setzero_si512(); NV]; MR];
        let mut ar = [a; MR];
        for r in 1..MR {
            ar[r] = ar[r - 1].wrapping_add(lda);
        }
        let mut wq = s.panel;
        for _ in 0..kq {
            let mut wv = [_mm512_setzero_si512(); NV];
            for v in 0..NV {
                wv[v] = _mm512_load_si512(wq.wrapping_add(v * 64) as *const __m512i);
            }
            wq = wq.wrapping_add(NV * 64);
            for r in 0..MR {
                let b = _mm512_set1_epi32((ar[r] as *const i32).read_unaligned());
                ar[r] = ar[r].wrapping_add(4);
                for v in 0..NV {
                    acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], b, wv[v]);
                }
            }
        }
        let e = &s.epi;
        let sc = _mm512_set1_ps(e.scale);
        let corr = _mm512_set1_epi32(e.corr);
        for v in 0..NV {
            let c = v * 16;
            if c >= e.valid {
                break;
            }
            let left = e.valid - c;
            let mask: __mmask16 = if left >= 16 { 0xffff } else { (1u16 << left) - 1 };
            let cs = _mm512_mullo_epi32(_mm512_loadu_si512(e.col_sums.add(c) as *const __m512i), corr);
            let bias = if e.bias.is_null() { None } else { Some(_mm512_maskz_loadu_ps(mask, e.bias.add(c))) };
            for r in 0..MR {
                let mut f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][v], cs)), sc);
                if let Some(b) = bias {
                    f = _mm512_add_ps(f, b);
                }
                _mm512_mask_storeu_ps(e.out.add(r * e.ldo + c), mask, f);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// AVX2 min/max and quantize

pub(crate) fn min_max_avx2(x: &[f32]) -> (f32, f32) {
    // SAFETY: called only when the AVX2 kernels are supported (quantize.rs asserts it).
    unsafe { min_max_avx2_impl(x) }
}

#[target_feature(enable = "avx2")]
unsafe fn min_max_avx2_impl(x: &[f32]) -> (f32, f32) {
    unsafe {
        // minps(v, lo) = v < lo ? v : lo: a NaN v leaves lo unchanged.
        let mut lo = [_mm256_setzero_ps(); 4];
        let mut hi = [_mm256_setzero_ps(); 4];
        let mut chunks = x.chunks_exact(32);
        for c in &mut chunks {
            for i in 0..4 {
                let v = _mm256_loadu_ps(c.as_ptr().add(i * 8));
                lo[i] = _mm256_min_ps(v, lo[i]);
                hi[i] = _mm256_max_ps(v, hi[i]);
            }
        }
        let mut rest = chunks.remainder().chunks_exact(8);
        for c in &mut rest {
            let v = _mm256_loadu_ps(c.as_ptr());
            lo[0] = _mm256_min_ps(v, lo[0]);
            hi[0] = _mm256_max_ps(v, hi[0]);
        }
        let lo = _mm256_min_ps(_mm256_min_ps(lo[0], lo[1]), _mm256_min_ps(lo[2], lo[3]));
        let hi = _mm256_max_ps(_mm256_max_ps(hi[0], hi[1]), _mm256_max_ps(hi[2], hi[3]));
        let mut l = [0f32; 8];
        let mut h = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), lo);
        _mm256_storeu_ps(h.as_mut_ptr(), hi);
        // Lanes are never NaN: any fold order gives the same value, up to the sign of a zero.
        let (mut lo, mut hi) = super::quantize::min_max_scalar(rest.remainder());
        for i in 0..8 {
            lo = lo.min(l[i]);
            hi = hi.max(h[i]);
        }
        canonical_zero(lo, hi)
    }
}

pub(crate) fn quantize_avx2(x: &[f32], p: QuantParams, out: &mut [u8]) {
    assert_eq!(x.len(), out.len());
    // SAFETY: called only when the AVX2 kernels are supported (quantize.rs asserts it).
    unsafe { quantize_avx2_impl(x, p, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2_impl(x: &[f32], p: QuantParams, out: &mut [u8]) {
    unsafe {
        let s = _mm256_set1_ps(p.scale);
        let zp = _mm256_set1_ps(p.zero_point as f32);
        let zero = _mm256_setzero_ps();
        let top = _mm256_set1_ps(255.0);
        // Same ops as quantize_one: divide, round half-even, + zp, then clamp with maxps first
        // (maxps(q, 0) = q > 0 ? q : 0 maps NaN to 0) and minps; the result is an exact integer.
        macro_rules! one {
            ($v:expr) => {{
                let q = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_div_ps($v, s));
                let q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, zp), zero), top);
                _mm256_cvtps_epi32(q)
            }};
        }
        let n = x.len();
        let mut i = 0;
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        while i + 32 <= n {
            let px = x.as_ptr().add(i);
            let a = one!(_mm256_loadu_ps(px));
            let b = one!(_mm256_loadu_ps(px.add(8)));
            let c = one!(_mm256_loadu_ps(px.add(16)));
            let d = one!(_mm256_loadu_ps(px.add(24)));
            // packs work per 128-bit lane: the result's dwords are [a0 b0 c0 d0 a1 b1 c1 d1]
            // (x0 = low half of x); permute to [a0 a1 b0 b1 c0 c1 d0 d1].
            let ab = _mm256_packs_epi32(a, b);
            let cd = _mm256_packs_epi32(c, d);
            let r = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), perm);
            _mm256_storeu_si256(out.as_mut_ptr().add(i) as *mut __m256i, r);
            i += 32;
        }
        while i + 8 <= n {
            let a = one!(_mm256_loadu_ps(x.as_ptr().add(i)));
            let ab = _mm256_packs_epi32(a, a);
            let r = _mm256_packus_epi16(ab, ab);
            // bytes 0..4 = a0, 16..20 = a1
            let lo = _mm256_castsi256_si128(r);
            let hi = _mm256_extracti128_si256::<1>(r);
            let v = (_mm_cvtsi128_si32(lo) as u32 as u64) | ((_mm_cvtsi128_si32(hi) as u32 as u64) << 32);
            (out.as_mut_ptr().add(i) as *mut u64).write_unaligned(v.to_le());
            i += 8;
        }
        let zpf = p.zero_point as f32;
        for j in i..n {
            out[j] = quantize_one(x[j], p.scale, zpf);
        }
    }
}
