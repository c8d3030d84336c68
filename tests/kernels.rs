//! Every SIMD kernel this CPU supports against the scalar references, bit for bit.
//!
//! `ZIPVOX_EXPECT_KERNEL=<name>` makes `selected_kernel_is_expected` check which kernel the
//! detection (or `ZIPVOX_KERNEL`) chose, e.g. under `qemu-aarch64 -cpu cortex-a72` (neon) or
//! `-cpu cortex-a76` (neon-dotprod). The benchmark is ignored by default:
//! `cargo test --release --test kernels -- --ignored --nocapture bench`.

use std::time::Instant;

use zipvox::kernels::detect::{available_kernel_kinds, available_kernels, kernel_summary, selected_kernel, KernelKind};
use zipvox::kernels::qgemm::{qgemm_u8i8, qgemm_u8i8_scalar, PackedI8Weights};
use zipvox::kernels::quantize::{
    min_max_for, min_max_scalar, params_for_range, quantize_u8, quantize_u8_for, quantize_with_for, quantize_with_scalar,
    QuantParams,
};

/// splitmix64: small, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
    /// u8 with the extremes 0 and 255 over-represented.
    fn act(&mut self) -> u8 {
        match self.below(8) {
            0 => 0,
            1 => 255,
            _ => self.next() as u8,
        }
    }
    /// i8 with the extremes ±127 over-represented; -128 only if `allow_min`.
    fn weight(&mut self, allow_min: bool) -> i8 {
        match self.below(8) {
            0 => 127,
            1 => -127,
            2 if allow_min => -128,
            _ => {
                let v = self.next() as i8;
                if v == -128 && !allow_min {
                    -127
                } else {
                    v
                }
            }
        }
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[allow(clippy::too_many_arguments)]
fn check_one(kind: KernelKind, a: &[u8], m: usize, zp: u8, w: &[i8], k: usize, n: usize, scale: f32, bias: Option<&[f32]>) {
    let reference = PackedI8Weights::new_for(w, k, n, KernelKind::Scalar);
    let packed = PackedI8Weights::new_for(w, k, n, kind);
    assert_eq!(packed.kernel_name(), kind.name());
    assert_eq!((packed.k(), packed.n()), (k, n));
    let mut want = vec![f32::NAN; m * n];
    let mut got = vec![f32::NAN; m * n];
    qgemm_u8i8_scalar(a, m, zp, &reference, scale, bias, &mut want);
    qgemm_u8i8(a, m, zp, &packed, scale, bias, &mut got);
    if bits(&got) != bits(&want) {
        let i = (0..m * n).find(|&i| got[i].to_bits() != want[i].to_bits()).unwrap();
        panic!(
            "{kind}: m={m} k={k} n={n} zp={zp} bias={}: first mismatch at row {} col {}: {} vs scalar {}",
            bias.is_some(),
            i / n,
            i % n,
            got[i],
            want[i]
        );
    }
}

const SIZES: [usize; 18] = [1, 2, 3, 7, 15, 16, 17, 31, 33, 63, 64, 65, 127, 128, 129, 255, 384, 500];

#[test]
fn qgemm_every_kernel_matches_scalar_on_all_sizes() {
    let mut rng = Rng(1);
    let kinds = available_kernel_kinds();
    for &k in &SIZES {
        for &n in &SIZES {
            let m = 1 + rng.below(17);
            let allow_min = rng.below(4) == 0;
            let w: Vec<i8> = (0..k * n).map(|_| rng.weight(allow_min)).collect();
            let a: Vec<u8> = (0..m * k).map(|_| rng.act()).collect();
            let zp = rng.act();
            let scale = rng.f32_in(1e-5, 0.1);
            let bias: Vec<f32> = (0..n).map(|_| rng.f32_in(-3.0, 3.0)).collect();
            let with_bias = rng.below(2) == 0;
            for &kind in &kinds {
                check_one(kind, &a, m, zp, &w, k, n, scale, with_bias.then_some(&bias[..]));
            }
        }
    }
}

#[test]
fn qgemm_every_kernel_matches_scalar_on_every_row_count() {
    let mut rng = Rng(2);
    for m in 1..=17 {
        for _ in 0..6 {
            let k = SIZES[rng.below(SIZES.len())];
            let n = SIZES[rng.below(SIZES.len())];
            let allow_min = rng.below(3) == 0;
            let w: Vec<i8> = (0..k * n).map(|_| rng.weight(allow_min)).collect();
            let a: Vec<u8> = (0..m * k).map(|_| rng.act()).collect();
            let zp = rng.act();
            let bias: Vec<f32> = (0..n).map(|_| rng.f32_in(-1.0, 1.0)).collect();
            for kind in available_kernel_kinds() {
                check_one(kind, &a, m, zp, &w, k, n, 0.0123, Some(&bias));
                check_one(kind, &a, m, zp, &w, k, n, 3.7e-4, None);
            }
        }
    }
}

#[test]
fn qgemm_model_shapes() {
    // Shapes of the zipformer encoder/joiner, M up to 45.
    let mut rng = Rng(3);
    for &(m, k, n) in &[(1, 320, 500), (16, 512, 512), (16, 384, 1536), (45, 256, 576), (8, 48, 384), (2, 1536, 384), (4, 2048, 16)] {
        let w: Vec<i8> = (0..k * n).map(|_| rng.weight(false)).collect();
        let a: Vec<u8> = (0..m * k).map(|_| rng.act()).collect();
        let bias: Vec<f32> = (0..n).map(|_| rng.f32_in(-1.0, 1.0)).collect();
        for kind in available_kernel_kinds() {
            check_one(kind, &a, m, rng.act(), &w, k, n, 1.9e-4, Some(&bias));
        }
    }
}

#[test]
fn qgemm_integer_extremes() {
    // Largest |accumulators| (K = 2048) and the s16 pair sums of the NEON kernel: a = 0 (biased
    // -128) against ±127 and -128 weights, a = 255 against 127.
    let (k, n) = (2048, 40);
    for &(av, zp, wv) in &[(0u8, 255u8, -127i8), (0, 255, -128), (255, 0, 127), (255, 0, -128), (0, 0, -128), (0, 128, 127), (255, 255, -127)] {
        for m in [1, 3, 6] {
            let a = vec![av; m * k];
            let w = vec![wv; k * n];
            for kind in available_kernel_kinds() {
                check_one(kind, &a, m, zp, &w, k, n, 1.0, None);
                check_one(kind, &a, m, zp, &w, k, n, 1e-3, Some(&vec![0.5; n]));
            }
        }
    }
    // Alternating extremes (mixed signs inside each s16 pair).
    let mut rng = Rng(4);
    let (m, k, n) = (5, 1000, 70);
    let a: Vec<u8> = (0..m * k).map(|i| if (i / 3) % 2 == 0 { 0 } else { 255 }).collect();
    for allow_min in [false, true] {
        let w: Vec<i8> = (0..k * n).map(|_| if rng.below(2) == 0 { if allow_min { -128 } else { -127 } } else { 127 }).collect();
        for kind in available_kernel_kinds() {
            check_one(kind, &a, m, 17, &w, k, n, 0.5, None);
        }
    }
}

#[test]
fn qgemm_degenerate_shapes() {
    for kind in available_kernel_kinds() {
        // k = 0: out = bias (or 0).
        let p = PackedI8Weights::new_for(&[], 0, 5, kind);
        let mut out = vec![9.0f32; 2 * 5];
        qgemm_u8i8(&[], 2, 3, &p, 0.5, Some(&[1.0, 2.0, 3.0, 4.0, 5.0]), &mut out);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0, 5.0], "{kind}");
        // n = 0, m = 0.
        let p = PackedI8Weights::new_for(&[], 4, 0, kind);
        qgemm_u8i8(&[1, 2, 3, 4], 1, 0, &p, 1.0, None, &mut []);
        let p = PackedI8Weights::new_for(&[1; 12], 4, 3, kind);
        qgemm_u8i8(&[], 0, 0, &p, 1.0, None, &mut []);
    }
}

#[test]
fn packing_round_trips() {
    let mut rng = Rng(5);
    for &(k, n) in &[(1, 1), (7, 33), (33, 7), (65, 129), (500, 17)] {
        let w: Vec<i8> = (0..k * n).map(|_| rng.weight(true)).collect();
        for kind in available_kernel_kinds() {
            let p = PackedI8Weights::new_for(&w, k, n, kind);
            assert_eq!(p.unpack(), w, "{kind}");
            assert!(p.packed_bytes() >= k * n);
        }
    }
}

#[test]
fn default_packing_uses_selected_kernel() {
    let p = PackedI8Weights::new(&[1, -2, 3, -4, 5, -6], 2, 3);
    assert_eq!(p.kernel_name(), selected_kernel().name());
    assert!(available_kernels().contains(&p.kernel_name()));
    let summary = kernel_summary();
    assert!(summary.starts_with(&format!("qgemm={} quantize=", selected_kernel().name())), "{summary}");
    eprintln!("available: {:?}; {summary}", available_kernels());
}

#[test]
fn selected_kernel_is_expected() {
    if let Ok(want) = std::env::var("ZIPVOX_EXPECT_KERNEL") {
        assert_eq!(selected_kernel().name(), want.trim(), "available: {:?}", available_kernels());
        if let Ok(all) = std::env::var("ZIPVOX_EXPECT_AVAILABLE") {
            assert_eq!(available_kernels().join(","), all.trim());
        }
    }
}

// ------------------------------------------------------------------------------------------------
// quantize

fn check_quantize(x: &[f32], what: &str) {
    let (lo, hi) = min_max_scalar(x);
    let want_p = params_for_range(lo, hi);
    let mut want = vec![0u8; x.len()];
    quantize_with_scalar(x, want_p, &mut want);
    for kind in available_kernel_kinds() {
        let (l, h) = min_max_for(kind, x);
        assert_eq!((l.to_bits(), h.to_bits()), (lo.to_bits(), hi.to_bits()), "{kind} min/max {what} {x:?}");
        let mut got = vec![1u8; x.len()];
        let p = quantize_u8_for(kind, x, &mut got);
        assert_eq!((p.scale.to_bits(), p.zero_point), (want_p.scale.to_bits(), want_p.zero_point), "{kind} params {what}");
        assert_eq!(got, want, "{kind} quantize {what} {x:?}");
    }
}

#[test]
fn quantize_every_kernel_matches_scalar() {
    let mut rng = Rng(6);
    for len in 0..=70 {
        for case in 0..12 {
            let x: Vec<f32> = (0..len)
                .map(|_| match case {
                    0 => 0.0,
                    1 => if rng.below(2) == 0 { 0.0 } else { -0.0 },
                    2 => rng.f32_in(0.0, 5.0),
                    3 => rng.f32_in(-5.0, 0.0),
                    4 => rng.f32_in(-1e38, 1e38),
                    5 => rng.f32_in(-1e-38, 1e-38),
                    6 => f32::from_bits(rng.next() as u32 & 0x807f_ffff), // subnormals
                    7 => [f32::MAX, f32::MIN, 0.5, -0.5, 1.5, 2.5][rng.below(6)],
                    8 => [f32::NAN, 1.0, -2.0, 0.25][rng.below(4)],
                    9 => [f32::INFINITY, 1.0, -2.0][rng.below(3)],
                    10 => [f32::NEG_INFINITY, f32::NAN, 3.0][rng.below(3)],
                    _ => rng.f32_in(-7.0, 3.0),
                })
                .collect();
            check_quantize(&x, &format!("len {len} case {case}"));
        }
    }
    // Some NaN payloads (quiet and signalling) among normal values.
    let x: Vec<f32> = (0..40).map(|i| if i % 7 == 3 { f32::from_bits(0x7fa0_0001) } else if i % 5 == 0 { f32::from_bits(0xffc0_0002) } else { i as f32 - 20.0 }).collect();
    check_quantize(&x, "nan payloads");
}

#[test]
fn quantize_ties_round_half_even() {
    // x / scale lands exactly on .5: scale 0.5, x = k + 0.25 → 2k + 0.5.
    let p = QuantParams { scale: 0.5, zero_point: 100 };
    let x: Vec<f32> = (-40..40).map(|i| i as f32 * 0.5 + 0.25).collect();
    let mut want = vec![0u8; x.len()];
    quantize_with_scalar(&x, p, &mut want);
    for kind in available_kernel_kinds() {
        let mut got = vec![0u8; x.len()];
        quantize_with_for(kind, &x, p, &mut got);
        assert_eq!(got, want, "{kind}");
    }
    // 0.25 / 0.5 = 0.5 → 0 (even) → 100; 0.75 / 0.5 = 1.5 → 2 → 102.
    assert_eq!(&want[40..42], &[100, 102]);
}

#[test]
fn quantize_large_random_tensors() {
    let mut rng = Rng(7);
    for &len in &[1000usize, 4096, 16 * 384 + 5] {
        let x: Vec<f32> = (0..len).map(|_| rng.f32_in(-4.0, 9.0)).collect();
        check_quantize(&x, &format!("len {len}"));
        let mut q = vec![0u8; len];
        let p = quantize_u8(&x, &mut q);
        assert!(p.scale > 0.0);
    }
}

// ------------------------------------------------------------------------------------------------
// benchmark

#[test]
#[ignore]
fn bench_qgemm() {
    let mut rng = Rng(8);
    eprintln!("{}", kernel_summary());
    for &(m, k, n) in &[(16, 512, 512), (16, 384, 1536), (1, 320, 500), (8, 256, 576), (4, 384, 768)] {
        let w: Vec<i8> = (0..k * n).map(|_| rng.weight(false)).collect();
        let a: Vec<u8> = (0..m * k).map(|_| rng.act()).collect();
        let bias: Vec<f32> = (0..n).map(|_| rng.f32_in(-1.0, 1.0)).collect();
        let mut out = vec![0f32; m * n];
        let macs = (m * k * n) as f64;
        for kind in available_kernel_kinds() {
            let p = PackedI8Weights::new_for(&w, k, n, kind);
            let run = |out: &mut [f32]| qgemm_u8i8(&a, m, 3, &p, 1e-3, Some(&bias), out);
            // ~0.3 s per measurement, best of 5.
            let t = Instant::now();
            run(&mut out);
            let once = t.elapsed().as_secs_f64().max(1e-7);
            let reps = ((0.06 / once) as usize).clamp(3, 1_000_000);
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps {
                    run(std::hint::black_box(&mut out));
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            eprintln!("m={m:2} k={k:4} n={n:4} {:>12}: {:8.2} GMAC/s ({:8.2} us)", kind.name(), macs / best / 1e9, best * 1e6);
        }
    }
    // Weights streamed from DRAM: cycle through ~120 MB of distinct matrices (> L3), as a whole
    // encoder chunk does; reports GMAC/s and the weight stream in GB/s.
    let (k, n) = (384, 1536);
    let count = 200;
    let w: Vec<i8> = (0..k * n).map(|_| rng.weight(false)).collect();
    for kind in available_kernel_kinds() {
        if kind == KernelKind::Scalar {
            continue;
        }
        let t = Instant::now();
        let packs: Vec<PackedI8Weights> = (0..count).map(|_| PackedI8Weights::new_for(&w, k, n, kind)).collect();
        eprintln!("packing for {}: {:.0} MB/s", kind.name(), (count * k * n) as f64 / t.elapsed().as_secs_f64() / 1e6);
        for m in [16, 4, 1] {
            let a: Vec<u8> = (0..m * k).map(|_| rng.act()).collect();
            let mut out = vec![0f32; m * n];
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t = Instant::now();
                for p in &packs {
                    qgemm_u8i8(&a, m, 3, p, 1e-3, None, std::hint::black_box(&mut out));
                }
                best = best.min(t.elapsed().as_secs_f64() / count as f64);
            }
            eprintln!(
                "streamed m={m:2} k={k} n={n} {:>12}: {:8.2} GMAC/s, weights {:5.1} GB/s",
                kind.name(),
                (m * k * n) as f64 / best / 1e9,
                (k * n) as f64 / best / 1e9
            );
        }
    }
    // quantize: M×K activations per call.
    for &len in &[16 * 512, 16 * 384, 320] {
        let x: Vec<f32> = (0..len).map(|_| rng.f32_in(-4.0, 9.0)).collect();
        let mut q = vec![0u8; len];
        let mut seen = Vec::new();
        for kind in available_kernel_kinds() {
            if seen.contains(&kind.quantize_name()) {
                continue;
            }
            seen.push(kind.quantize_name());
            let reps = 2000;
            let mut best = f64::INFINITY;
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps {
                    quantize_u8_for(kind, std::hint::black_box(&x), &mut q);
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
            eprintln!("quantize len={len:5} {:>12}: {:8.3} Gelem/s ({:7.2} us)", kind.quantize_name(), len as f64 / best / 1e9, best * 1e6);
        }
    }
}
