//! Run-time CPU feature detection and kernel selection.
//!
//! Features are detected once (std's `is_*_feature_detected!`, cached in a `OnceLock`). The kernel
//! used by default is the best one the CPU supports; the environment variable `ZIPVOX_KERNEL`
//! (`scalar` | `avx2` | `avx512vnni` | `neon` | `neon-dotprod`) forces another one if the CPU
//! supports it (for tests and benchmarks); an unknown or unsupported name is ignored (and reported
//! by [`kernel_summary`]). The quantize kernel follows the qgemm kernel's family: `scalar` for
//! `scalar`, `avx2` for the x86 kernels, `neon` for the ARM ones.
//!
//! Invariant relied upon by the SIMD code: weights packed for a kind can only be created when
//! [`KernelKind::is_supported`] holds, so executing a kernel never traps on an unsupported CPU.

use std::sync::OnceLock;

/// One qgemm kernel (and the weight layout it wants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelKind {
    /// Portable reference (row-major weights).
    Scalar,
    /// x86_64 AVX2: i8→i16 widening on the fly + `vpmaddwd`.
    Avx2,
    /// x86_64 AVX-512 VNNI: `vpdpbusd` (u8×s8, 4-way, into i32), 512-bit.
    Avx512Vnni,
    /// aarch64 ARMv8.0 NEON: `smull`/`smlal` s8×s8→s16 + `sadalp` into s32.
    Neon,
    /// aarch64 ARMv8.2 dot product: `sdot` (s8×s8, 4-way, into s32).
    NeonDotprod,
}

impl KernelKind {
    /// Every kind, in the order of preference (worst first).
    pub const ALL: [KernelKind; 5] =
        [KernelKind::Scalar, KernelKind::Avx2, KernelKind::Avx512Vnni, KernelKind::Neon, KernelKind::NeonDotprod];

    /// Stable name (as accepted by `ZIPVOX_KERNEL`).
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Scalar => "scalar",
            KernelKind::Avx2 => "avx2",
            KernelKind::Avx512Vnni => "avx512vnni",
            KernelKind::Neon => "neon",
            KernelKind::NeonDotprod => "neon-dotprod",
        }
    }

    /// Parses a name as printed by [`KernelKind::name`] (case-insensitive, `_` for `-` accepted).
    pub fn from_name(s: &str) -> Option<KernelKind> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        KernelKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        detected().supported[self as usize]
    }

    /// Name of the quantize (f32 → u8) implementation used alongside this kernel.
    pub fn quantize_name(self) -> &'static str {
        match self {
            KernelKind::Scalar => "scalar",
            KernelKind::Avx2 | KernelKind::Avx512Vnni => "avx2",
            KernelKind::Neon | KernelKind::NeonDotprod => "neon",
        }
    }
}

impl std::fmt::Display for KernelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

struct Detected {
    supported: [bool; 5],
    best: KernelKind,
    selected: KernelKind,
    /// Why `ZIPVOX_KERNEL` was ignored, if it was.
    note: Option<String>,
}

fn detect_supported() -> [bool; 5] {
    let mut s = [false; 5];
    s[KernelKind::Scalar as usize] = true;
    #[cfg(target_arch = "x86_64")]
    {
        s[KernelKind::Avx2 as usize] = std::arch::is_x86_feature_detected!("avx2");
        s[KernelKind::Avx512Vnni as usize] = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni");
    }
    #[cfg(target_arch = "aarch64")]
    {
        let neon = std::arch::is_aarch64_feature_detected!("neon");
        s[KernelKind::Neon as usize] = neon;
        s[KernelKind::NeonDotprod as usize] = neon && std::arch::is_aarch64_feature_detected!("dotprod");
    }
    s
}

fn detected() -> &'static Detected {
    static DETECTED: OnceLock<Detected> = OnceLock::new();
    DETECTED.get_or_init(|| {
        let supported = detect_supported();
        let best = KernelKind::ALL.into_iter().rev().find(|k| supported[*k as usize]).unwrap_or(KernelKind::Scalar);
        let mut selected = best;
        let mut note = None;
        if let Ok(v) = std::env::var("ZIPVOX_KERNEL") {
            if !v.trim().is_empty() {
                match KernelKind::from_name(&v) {
                    Some(k) if supported[k as usize] => selected = k,
                    Some(k) => note = Some(format!("ZIPVOX_KERNEL={} not supported by this CPU", k.name())),
                    None => note = Some(format!("ZIPVOX_KERNEL={v:?} unknown")),
                }
            }
        }
        Detected { supported, best, selected, note }
    })
}

/// Kernels this CPU can run (scalar first, best last).
pub fn available_kernel_kinds() -> Vec<KernelKind> {
    KernelKind::ALL.into_iter().filter(|k| k.is_supported()).collect()
}

/// Names of the kernels this CPU can run (scalar first, best last).
pub fn available_kernels() -> Vec<&'static str> {
    available_kernel_kinds().into_iter().map(KernelKind::name).collect()
}

/// The best kernel this CPU supports (ignoring `ZIPVOX_KERNEL`).
pub fn best_kernel() -> KernelKind {
    detected().best
}

/// The kernel used by default: `ZIPVOX_KERNEL` if set and supported, else [`best_kernel`].
pub fn selected_kernel() -> KernelKind {
    detected().selected
}

/// One line for `zipvox info`, e.g. `qgemm=avx512vnni quantize=avx2`.
pub fn kernel_summary() -> String {
    let d = detected();
    let mut s = format!("qgemm={} quantize={}", d.selected.name(), d.selected.quantize_name());
    if d.selected != d.best {
        s.push_str(&format!(" (forced by ZIPVOX_KERNEL; best here: {})", d.best.name()));
    }
    if let Some(note) = &d.note {
        s.push_str(&format!(" ({note}; ignored)"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in KernelKind::ALL {
            assert_eq!(KernelKind::from_name(k.name()), Some(k));
        }
        assert_eq!(KernelKind::from_name(" NEON_dotprod "), Some(KernelKind::NeonDotprod));
        assert_eq!(KernelKind::from_name("sse9"), None);
    }

    #[test]
    fn scalar_always_available_and_selected_is_supported() {
        assert!(KernelKind::Scalar.is_supported());
        assert_eq!(available_kernels()[0], "scalar");
        assert!(selected_kernel().is_supported());
        assert!(best_kernel().is_supported());
        assert!(kernel_summary().starts_with("qgemm="));
    }
}
