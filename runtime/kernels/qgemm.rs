//! Quantized matrix multiply: u8 activations (per-tensor zero point) × i8 weights (constant,
//! packed once at load) → f32, with the dequantization scale and optional bias fused:
//! `out[m, n] = (Σ_k (a[m, k] - zp) · w[k, n]) as f32 * scale + bias[n]`.
//! Integer accumulation is exact (i32), as onnxruntime's `MatMulInteger`; the epilogue is two
//! separately rounded f32 operations (`* scale`, then `+ bias`), as onnxruntime's unfused
//! Cast → Mul → Add. Every SIMD kernel is bit-identical to [`qgemm_u8i8_scalar`].
//!
//! # Packed layouts
//!
//! The scalar kernel keeps the row-major `[k, n]` matrix. The SIMD kernels split the columns into
//! panels of `nr` columns (the last panel may be narrower: the remaining columns rounded up to
//! the kernel's vector width, padded with zero weights), stored one after the other; panel `p`
//! starting at column `j0` begins at byte `j0 * kpad`. Inside a panel the rows of `k` are grouped
//! by `kgroup` (2 or 4) and, for each group, the panel's columns follow each other with their
//! `kgroup` consecutive k values: byte `((kk / kgroup) * width + c) * kgroup + kk % kgroup`.
//! `k` is padded with zero weights to `kpad` (a multiple of `kmult`). So a kernel reads one panel
//! (all of `k`) per block of output columns, for all rows, and the whole matrix exactly once per
//! call from memory.
//!
//! | kernel        | kgroup | kmult | nr | vector width (columns) |
//! |---------------|--------|-------|----|------------------------|
//! | avx2          | 2      | 2     | 16 | 8  (i16 pairs, `vpmaddwd`)       |
//! | avx512vnni    | 4      | 4     | 64 | 16 (u8×s8 quads, `vpdpbusd`)     |
//! | neon          | 2      | 4     | 16 | 8  (s8 pairs, `smull`/`smlal`)   |
//! | neon-dotprod  | 4      | 16    | 16 | 4  (s8 quads, `sdot`)            |

use super::detect::{selected_kernel, KernelKind};

/// Geometry of a packed layout (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// k values stored together per column (0 = row-major scalar layout).
    pub kgroup: usize,
    /// k is padded to a multiple of this.
    pub kmult: usize,
    /// Full panel width (columns).
    pub nr: usize,
    /// Columns per vector: the last panel's width is a multiple of this.
    pub cpv: usize,
}

impl Layout {
    pub(crate) fn of(kind: KernelKind) -> Layout {
        match kind {
            KernelKind::Scalar => Layout { kgroup: 0, kmult: 1, nr: 0, cpv: 1 },
            KernelKind::Avx2 => Layout { kgroup: 2, kmult: 2, nr: 16, cpv: 8 },
            KernelKind::Avx512Vnni => Layout { kgroup: 4, kmult: 4, nr: 64, cpv: 16 },
            KernelKind::Neon => Layout { kgroup: 2, kmult: 4, nr: 16, cpv: 8 },
            KernelKind::NeonDotprod => Layout { kgroup: 4, kmult: 16, nr: 16, cpv: 4 },
        }
    }
}

/// 64-byte aligned i8 storage (the panels' vector loads never straddle cache lines).
#[derive(Clone)]
pub(crate) struct AlignedI8 {
    blocks: Vec<Align64>,
    len: usize,
}

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Align64([i8; 64]);

impl AlignedI8 {
    fn zeroed(len: usize) -> Self {
        AlignedI8 { blocks: vec![Align64([0; 64]); len.div_ceil(64)], len }
    }

    fn from_slice(v: &[i8]) -> Self {
        let mut a = Self::zeroed(v.len());
        a.copy_from_slice(v);
        a
    }
}

impl core::ops::Deref for AlignedI8 {
    type Target = [i8];
    fn deref(&self) -> &[i8] {
        // SAFETY: `blocks` holds at least `len` contiguous initialized bytes.
        unsafe { core::slice::from_raw_parts(self.blocks.as_ptr() as *const i8, self.len) }
    }
}

impl core::ops::DerefMut for AlignedI8 {
    fn deref_mut(&mut self) -> &mut [i8] {
        // SAFETY: as in deref.
        unsafe { core::slice::from_raw_parts_mut(self.blocks.as_mut_ptr() as *mut i8, self.len) }
    }
}

impl core::fmt::Debug for AlignedI8 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "[i8; {}]", self.len)
    }
}

/// Constant int8 weights `[k, n]`, prepared for the kernel in use.
#[derive(Debug, Clone)]
pub struct PackedI8Weights {
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) kind: KernelKind,
    pub(crate) layout: Layout,
    /// `k` rounded up to `layout.kmult`.
    pub(crate) kpad: usize,
    /// Columns including the last panel's padding (`n` for the scalar layout).
    pub(crate) npad: usize,
    /// The weights in `layout` (row-major `[k, n]` for the scalar kernel), 64-byte aligned.
    pub(crate) data: AlignedI8,
    /// Σ_k w[k, n] (length `npad`, zero in the padding): lets kernels multiply raw (or biased)
    /// activations and correct for the zero point after.
    pub(crate) col_sums: Vec<i32>,
    /// Whether some weight is -128 (the `neon` kernel then takes its slower overflow-free path).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    pub(crate) has_i8_min: bool,
}

impl PackedI8Weights {
    /// `w` is row-major `[k, n]` (ONNX MatMulInteger's B). Packs for the selected kernel
    /// ([`selected_kernel`]: the best one of this CPU, or `ZIPVOX_KERNEL`).
    pub fn new(w: &[i8], k: usize, n: usize) -> Self {
        Self::new_for(w, k, n, selected_kernel())
    }

    /// Packs for a given kernel. Panics if this CPU does not support it.
    pub fn new_for(w: &[i8], k: usize, n: usize, kind: KernelKind) -> Self {
        assert!(kind.is_supported(), "kernel {} is not supported by this CPU", kind.name());
        Self::pack_unchecked(w, k, n, kind)
    }

    /// Packs for any layout; such weights must never reach a kernel this CPU cannot run (only
    /// [`PackedI8Weights::new_for`] creates values reachable from outside this module).
    fn pack_unchecked(w: &[i8], k: usize, n: usize, kind: KernelKind) -> Self {
        assert_eq!(w.len(), k * n);
        // |Σ_k (a - zp)·w| ≤ k·255·128 must fit in i32 (as for onnxruntime's MatMulInteger).
        assert!(k <= 1 << 16, "k = {k} too large for exact i32 accumulation");
        let layout = Layout::of(kind);
        let mut col_sums = vec![0i32; n];
        if n > 0 {
            for row in w.chunks_exact(n) {
                for (s, &v) in col_sums.iter_mut().zip(row) {
                    *s += v as i32;
                }
            }
        }
        let has_i8_min = w.contains(&i8::MIN);
        if layout.kgroup == 0 {
            return PackedI8Weights { k, n, kind, layout, kpad: k, npad: n, data: AlignedI8::from_slice(w), col_sums, has_i8_min };
        }
        let kpad = k.div_ceil(layout.kmult) * layout.kmult;
        let npad = if n.is_multiple_of(layout.nr) {
            n
        } else {
            n / layout.nr * layout.nr + (n % layout.nr).div_ceil(layout.cpv) * layout.cpv
        };
        let g = layout.kgroup;
        let mut data = AlignedI8::zeroed(kpad * npad);
        let mut j0 = 0;
        while j0 < n {
            let width = layout.nr.min(npad - j0);
            let panel = &mut data[j0 * kpad..(j0 + width) * kpad];
            for kk in 0..k {
                let src = &w[kk * n..(kk + 1) * n];
                let base = (kk / g) * width * g + kk % g;
                for c in 0..width.min(n - j0) {
                    panel[base + c * g] = src[j0 + c];
                }
            }
            j0 += width;
        }
        col_sums.resize(npad, 0);
        PackedI8Weights { k, n, kind, layout, kpad, npad, data, col_sums, has_i8_min }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Name of the kernel these weights are packed for.
    pub fn kernel_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The kernel these weights are packed for.
    pub fn kernel_kind(&self) -> KernelKind {
        self.kind
    }

    /// Bytes of packed weights held (including padding).
    pub fn packed_bytes(&self) -> usize {
        self.data.len()
    }

    /// Weight `w[kk, j]` from the packed layout.
    pub fn get(&self, kk: usize, j: usize) -> i8 {
        assert!(kk < self.k && j < self.n);
        let l = self.layout;
        if l.kgroup == 0 {
            return self.data[kk * self.n + j];
        }
        let j0 = j / l.nr * l.nr;
        let width = l.nr.min(self.npad - j0);
        self.data[j0 * self.kpad + ((kk / l.kgroup) * width + (j - j0)) * l.kgroup + kk % l.kgroup]
    }

    /// The row-major `[k, n]` matrix these weights were packed from.
    pub fn unpack(&self) -> Vec<i8> {
        if self.layout.kgroup == 0 {
            return self.data.to_vec();
        }
        let mut w = Vec::with_capacity(self.k * self.n);
        for kk in 0..self.k {
            for j in 0..self.n {
                w.push(self.get(kk, j));
            }
        }
        w
    }
}

/// Scalar reference kernel (accepts weights packed for any kernel).
pub fn qgemm_u8i8_scalar(
    a: &[u8],
    m: usize,
    zp: u8,
    w: &PackedI8Weights,
    scale: f32,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let (k, n) = (w.k, w.n);
    assert_eq!(a.len(), m * k);
    assert_eq!(out.len(), m * n);
    if let Some(b) = bias {
        assert_eq!(b.len(), n);
    }
    let unpacked;
    let data: &[i8] = if w.layout.kgroup == 0 {
        &w.data
    } else {
        unpacked = w.unpack();
        &unpacked
    };
    let mut acc = vec![0i32; n];
    for r in 0..m {
        acc.fill(0);
        let row = &a[r * k..(r + 1) * k];
        for (kk, &av) in row.iter().enumerate() {
            let av = av as i32;
            let wrow = &data[kk * n..(kk + 1) * n];
            for (c, &wv) in acc.iter_mut().zip(wrow) {
                *c += av * wv as i32;
            }
        }
        let o = &mut out[r * n..(r + 1) * n];
        for j in 0..n {
            let v = (acc[j] - zp as i32 * w.col_sums[j]) as f32 * scale;
            o[j] = match bias {
                Some(b) => v + b[j],
                None => v,
            };
        }
    }
}

/// Dispatches to the kernel the weights are packed for.
pub fn qgemm_u8i8(a: &[u8], m: usize, zp: u8, w: &PackedI8Weights, scale: f32, bias: Option<&[f32]>, out: &mut [f32]) {
    qgemm_u8i8_batch(&mut [QRows { a, m, zp, scale, out }], w, bias);
}

/// One stream's activation rows for [`qgemm_u8i8_batch`]: `a` is `[m, k]` u8 quantized with
/// its own zero point, `scale` the product of its scale and the weights', `out` its `[m, n]`.
pub struct QRows<'a> {
    pub a: &'a [u8],
    pub m: usize,
    pub zp: u8,
    pub scale: f32,
    pub out: &'a mut [f32],
}

/// [`qgemm_u8i8`] for the rows of several streams against the same weights in one pass over
/// them: each panel of weight columns is read from memory once and used for every stream's
/// rows while it is in cache. Each stream keeps its own quantization and row tiling, so its
/// output is bit-identical to a [`qgemm_u8i8`] call of its own (the point: streams batched per
/// layer give the transcripts they give alone). With large models at a few rows per chunk the
/// weights' memory traffic is the bound, and this divides it by the number of streams.
pub fn qgemm_u8i8_batch(groups: &mut [QRows], w: &PackedI8Weights, bias: Option<&[f32]>) {
    for g in groups.iter() {
        assert_eq!(g.a.len(), g.m * w.k);
        assert_eq!(g.out.len(), g.m * w.n);
    }
    if let Some(b) = bias {
        assert_eq!(b.len(), w.n);
    }
    if w.n == 0 || groups.iter().all(|g| g.m == 0) {
        return;
    }
    if w.k == 0 {
        // An empty sum: every row is the bias (or zero).
        for g in groups.iter_mut() {
            for row in g.out.chunks_mut(w.n) {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = bias.map_or(0.0, |b| b[j]);
                }
            }
        }
        return;
    }
    match w.kind {
        KernelKind::Scalar => {
            for g in groups.iter_mut() {
                qgemm_u8i8_scalar(g.a, g.m, g.zp, w, g.scale, bias, g.out);
            }
        }
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx2 => super::x86_64::qgemm_avx2(groups, w, bias),
        #[cfg(target_arch = "x86_64")]
        KernelKind::Avx512Vnni => super::x86_64::qgemm_avx512vnni(groups, w, bias),
        #[cfg(target_arch = "aarch64")]
        KernelKind::Neon => super::aarch64::qgemm_neon(groups, w, bias),
        #[cfg(target_arch = "aarch64")]
        KernelKind::NeonDotprod => super::aarch64::qgemm_neon_dotprod(groups, w, bias),
        #[allow(unreachable_patterns)]
        other => unreachable!("weights packed for {} on a CPU without it", other.name()),
    }
}

/// Where and how a SIMD micro-kernel writes its tile: `out[r, c] = epilogue(acc[r, c] + corr *
/// col_sums[c])` for `r < rows`, `c < valid` (pointers already offset to the tile's first row and
/// column).
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub(crate) struct Epilogue {
    pub out: *mut f32,
    /// Row stride of `out` (= n).
    pub ldo: usize,
    /// Columns of the tile that exist in `out` (the rest is panel padding).
    pub valid: usize,
    /// Column sums of the tile's columns (padded: always readable for the full panel width).
    pub col_sums: *const i32,
    /// Zero-point correction factor (e.g. `-zp`, or `128 - zp` with s8-biased activations).
    pub corr: i32,
    pub scale: f32,
    /// Null without bias; else readable for `valid` columns.
    pub bias: *const f32,
}

impl Epilogue {
    /// The scalar epilogue for one value, as [`qgemm_u8i8_scalar`] (used for partial vectors).
    ///
    /// # Safety
    /// `r`, `c` inside the tile, `c < valid`.
    #[inline(always)]
    #[allow(dead_code)]
    pub(crate) unsafe fn put_scalar(&self, r: usize, c: usize, acc: i32) {
        unsafe {
            let v = (acc + self.corr * *self.col_sums.add(c)) as f32 * self.scale;
            *self.out.add(r * self.ldo + c) = if self.bias.is_null() { v } else { v + *self.bias.add(c) };
        }
    }
}

/// Splits `m` rows into balanced tiles of at most `mr` rows: `(first row, rows)`
/// (e.g. 16 rows with `mr` 6 → 6 + 5 + 5, 8 rows with `mr` 6 → 4 + 4).
#[allow(dead_code)]
pub(crate) fn row_tiles(m: usize, mr: usize) -> impl Iterator<Item = (usize, usize)> {
    let tiles = m.div_ceil(mr);
    (0..tiles).scan(0usize, move |r0, t| {
        let left = m - *r0;
        let rows = left.div_ceil(tiles - t);
        let first = *r0;
        *r0 += rows;
        Some((first, rows))
    })
}

/// One micro-kernel call of [`for_each_step`]: a tile of rows × one panel of columns, all of k.
#[allow(dead_code)]
pub(crate) struct Step {
    /// The row group (stream) the tile belongs to, and the tile's first row and rows in it.
    pub group: usize,
    pub r0: usize,
    pub mr: usize,
    /// Panel width (columns, a multiple of the kernel's vector width).
    pub width: usize,
    /// The panel's weights (`kpad · width` bytes).
    pub panel: *const i8,
    pub epi: Epilogue,
}

/// A per-call list with one entry per row group (stream) of a batched matmul: on the stack for
/// up to four groups (one stream is the usual case: a heap allocation per matmul call added up
/// to about 1% of a 3.3M chunk), on the heap beyond. Not the `smallvec` crate: the kernels
/// build standalone, without crates, for scripts/kernel-mca.sh.
#[cfg_attr(not(any(target_arch = "x86_64", target_arch = "aarch64")), allow(dead_code))] // SIMD kernels only
pub(crate) enum PerGroup<T: Copy + Default> {
    Inline([T; 4], usize),
    Heap(Vec<T>),
}

impl<T: Copy + Default> FromIterator<T> for PerGroup<T> {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> Self {
        let mut list = PerGroup::Inline([T::default(); 4], 0);
        for item in items {
            match &mut list {
                PerGroup::Inline(a, n) if *n < a.len() => {
                    a[*n] = item;
                    *n += 1;
                }
                PerGroup::Inline(a, _) => {
                    let mut v = a.to_vec();
                    v.push(item);
                    list = PerGroup::Heap(v);
                }
                PerGroup::Heap(v) => v.push(item),
            }
        }
        list
    }
}

impl<T: Copy + Default> std::ops::Deref for PerGroup<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            PerGroup::Inline(a, n) => &a[..*n],
            PerGroup::Heap(v) => v,
        }
    }
}

/// One row group of [`for_each_step`]: `m` rows with their own zero-point correction factor,
/// scale and `[m, n]` output.
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub(crate) struct RowGroup {
    pub m: usize,
    pub corr: i32,
    pub scale: f32,
    pub out: *mut f32,
}

impl Default for RowGroup {
    fn default() -> Self {
        RowGroup { m: 0, corr: 0, scale: 0.0, out: std::ptr::null_mut() }
    }
}

impl RowGroup {
    /// The group of one [`QRows`] with the driver's correction factor for its zero point.
    #[allow(dead_code)]
    pub(crate) fn of(q: &mut QRows, corr: i32) -> RowGroup {
        RowGroup { m: q.m, corr, scale: q.scale, out: q.out.as_mut_ptr() }
    }
}

/// Drives a SIMD kernel over each group's `out[m, n]`: for each panel of columns (read once
/// from memory), for each group, for each tile of at most `mr_max` of its rows (balanced), one
/// micro-kernel call over all of k. The panel (`kpad · nr` bytes, e.g. 24 KiB for k = 384 with
/// 64-column panels) stays in L1/L2 for the following row tiles and groups.
///
/// (Cutting k into blocks so that the first row tile's reads from memory interleave with the
/// other tiles' work, with accumulators spilled between blocks and a software prefetch one block
/// ahead, was measured slower on Zen 4, hot or streaming weights from DRAM: the hardware
/// prefetchers already follow the sequential panel reads.)
///
/// The caller holds the `&mut` of every group's output while this runs.
#[allow(dead_code)]
pub(crate) fn for_each_step(groups: &[RowGroup], w: &PackedI8Weights, mr_max: usize, bias: Option<&[f32]>, f: impl Fn(&Step) + Sync) {
    let (n, kpad, l) = (w.n, w.kpad, w.layout);
    debug_assert!(l.kgroup != 0);
    let rows: usize = groups.iter().map(|g| g.m).sum();
    // Every panel is `nr` wide but the last.
    let panels = w.npad.div_ceil(l.nr);
    let run = |p0: usize, p1: usize| {
        for p in p0..p1 {
            let j0 = p * l.nr;
            let width = l.nr.min(w.npad - j0);
            for (gi, g) in groups.iter().enumerate() {
                for (r0, mr) in row_tiles(g.m, mr_max) {
                    // SAFETY (pointer offsets): r0 < m, j0 < n, col_sums has npad ≥ j0 + width
                    // entries, the panel is inside data.
                    let step = unsafe {
                        Step {
                            group: gi,
                            r0,
                            mr,
                            width,
                            panel: w.data.as_ptr().add(j0 * kpad),
                            epi: Epilogue {
                                out: g.out.add(r0 * n + j0),
                                ldo: n,
                                valid: width.min(n - j0),
                                col_sums: w.col_sums.as_ptr().add(j0),
                                corr: g.corr,
                                scale: g.scale,
                                bias: bias.map_or(core::ptr::null(), |b| b.as_ptr().add(j0)),
                            },
                        }
                    };
                    f(&step);
                }
            }
        }
    };
    // With `--threads`, whole panels go to the workers: each reads only its share of the
    // weights (splitting rows instead would stream every weight once per worker), and every
    // output value is computed exactly as on one thread.
    super::threads::split_range(panels, rows * w.k * n, run);
}

// SAFETY: a group's output pointer is shared by the workers of [`for_each_step`], which write
// disjoint column panels of it while the `&mut` it came from is held.
unsafe impl Sync for RowGroup {}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> u32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    }

    #[test]
    fn row_tiles_cover_all_rows() {
        for mr in 1..8 {
            for m in 0..50 {
                let t: Vec<_> = row_tiles(m, mr).collect();
                let mut next = 0;
                for &(r0, rows) in &t {
                    assert_eq!(r0, next);
                    assert!(rows >= 1 && rows <= mr);
                    next += rows;
                }
                assert_eq!(next, m);
                assert_eq!(t.len(), m.div_ceil(mr));
            }
        }
        assert_eq!(row_tiles(16, 6).map(|t| t.1).collect::<Vec<_>>(), [6, 5, 5]);
    }

    #[test]
    fn every_layout_round_trips() {
        let mut s = 7u64;
        for &(k, n) in &[(1, 1), (3, 7), (17, 65), (33, 129), (64, 64), (5, 200)] {
            let w: Vec<i8> = (0..k * n).map(|_| lcg(&mut s) as i8).collect();
            for kind in KernelKind::ALL {
                let p = PackedI8Weights::pack_unchecked(&w, k, n, kind);
                assert_eq!(p.unpack(), w, "{kind} {k}x{n}");
                assert_eq!(p.data.len(), p.kpad * p.npad);
                assert_eq!(p.kpad % p.layout.kmult, 0);
                for j in 0..n {
                    let s: i32 = (0..k).map(|kk| w[kk * n + j] as i32).sum();
                    assert_eq!(p.col_sums[j], s);
                }
            }
        }
    }

    #[test]
    fn scalar_kernel_reads_any_layout() {
        let mut s = 11u64;
        let (m, k, n) = (3, 13, 70);
        let w: Vec<i8> = (0..k * n).map(|_| lcg(&mut s) as i8).collect();
        let a: Vec<u8> = (0..m * k).map(|_| lcg(&mut s) as u8).collect();
        let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.25 - 3.0).collect();
        let mut r = vec![0f32; m * n];
        qgemm_u8i8_scalar(&a, m, 7, &PackedI8Weights::pack_unchecked(&w, k, n, KernelKind::Scalar), 0.01, Some(&bias), &mut r);
        for kind in KernelKind::ALL {
            let mut o = vec![0f32; m * n];
            qgemm_u8i8_scalar(&a, m, 7, &PackedI8Weights::pack_unchecked(&w, k, n, kind), 0.01, Some(&bias), &mut o);
            assert_eq!(o, r);
        }
    }

    /// Streams batched through one weight pass give each stream exactly its own call's output.
    #[test]
    fn batched_streams_equal_their_own_calls() {
        let mut s = 5u64;
        for kind in super::super::detect::available_kernel_kinds() {
            for &(k, n) in &[(1, 1), (33, 65), (64, 130), (129, 17)] {
                let w: Vec<i8> = (0..k * n).map(|_| lcg(&mut s) as i8).collect();
                let packed = PackedI8Weights::new_for(&w, k, n, kind);
                let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 7.0).collect();
                // Streams of 3, 0, 16, 1 and 7 rows, each with its own zero point and scale.
                let ms = [3usize, 0, 16, 1, 7];
                let acts: Vec<Vec<u8>> = ms.iter().map(|&m| (0..m * k).map(|_| lcg(&mut s) as u8).collect()).collect();
                let params: Vec<(u8, f32)> = ms.iter().map(|_| (lcg(&mut s) as u8, 1e-3 * (1 + lcg(&mut s) % 50) as f32)).collect();
                for b in [None, Some(&bias[..])] {
                    let mut alone: Vec<Vec<f32>> = ms.iter().map(|&m| vec![f32::NAN; m * n]).collect();
                    for (i, &m) in ms.iter().enumerate() {
                        qgemm_u8i8(&acts[i], m, params[i].0, &packed, params[i].1, b, &mut alone[i]);
                    }
                    let mut outs: Vec<Vec<f32>> = ms.iter().map(|&m| vec![f32::NAN; m * n]).collect();
                    let mut groups: Vec<QRows> = outs
                        .iter_mut()
                        .enumerate()
                        .map(|(i, o)| QRows { a: &acts[i], m: ms[i], zp: params[i].0, scale: params[i].1, out: o })
                        .collect();
                    qgemm_u8i8_batch(&mut groups, &packed, b);
                    for i in 0..ms.len() {
                        let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&outs[i]), bits(&alone[i]), "{kind} {k}x{n} stream {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_available_kernel_matches_scalar() {
        let mut s = 3u64;
        for kind in super::super::detect::available_kernel_kinds() {
            for &(m, k, n) in &[(1, 1, 1), (2, 5, 9), (5, 33, 65), (7, 64, 130), (17, 129, 17)] {
                let w: Vec<i8> = (0..k * n).map(|_| lcg(&mut s) as i8).collect();
                let a: Vec<u8> = (0..m * k).map(|_| lcg(&mut s) as u8).collect();
                let zp = lcg(&mut s) as u8;
                let scalar = PackedI8Weights::new_for(&w, k, n, KernelKind::Scalar);
                let packed = PackedI8Weights::new_for(&w, k, n, kind);
                let mut r = vec![0f32; m * n];
                let mut o = vec![0f32; m * n];
                qgemm_u8i8_scalar(&a, m, zp, &scalar, 0.003, None, &mut r);
                qgemm_u8i8(&a, m, zp, &packed, 0.003, None, &mut o);
                assert_eq!(o.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), r.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{kind} {m}x{k}x{n}");
            }
        }
    }
}
