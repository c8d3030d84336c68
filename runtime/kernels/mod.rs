//! CPU kernels that zipvox owns: each has a portable scalar reference and SIMD variants chosen
//! at run time by CPU feature detection (as tract's `linalg`). Tests compare every SIMD variant
//! with its scalar reference (bit-identical results).
//!
//! - `detect`: feature detection, kernel selection (`ZIPVOX_KERNEL`), [`kernel_summary`].
//! - `qgemm`: u8 × i8 → f32 matrix multiply with fused dequantization and bias.
//! - `quantize`: dynamic f32 → u8 quantization (onnxruntime's `DynamicQuantizeLinear`).
//! - `threads`: the intra-op thread pool (`--threads`), shared with tract.
//! - `transpose`: axis moves of f32 tensors.
//! - `x86_64` (AVX2, AVX-512 VNNI) and `aarch64` (NEON, NEON dotprod): the SIMD variants.

pub mod activation;
pub mod detect;
pub mod conv2d;
pub mod depthwise;
pub mod gemm;
pub mod matmul;
pub mod qgemm;
pub mod reduce;
pub mod softmax;
pub mod quantize;
pub mod threads;
pub mod transpose;

#[cfg(test)]
pub(crate) mod test_data {
    /// CPU time of this thread in ns (CLOCK_THREAD_CPUTIME_ID), for the ignored speed tests:
    /// robust against other processes sharing the cores, which wall-clock times are not.
    #[allow(dead_code)]
    pub fn cpu_ns() -> u64 {
        extern "C" {
            fn clock_gettime(clock: i32, ts: *mut [i64; 2]) -> i32;
        }
        let mut ts = [0i64; 2];
        // SAFETY: libc's clock_gettime (std links libc) writes one timespec.
        unsafe { clock_gettime(3, &mut ts) };
        ts[0] as u64 * 1_000_000_000 + ts[1] as u64
    }

    /// Deterministic values in [-0.5, 0.5) for kernel tests.
    pub fn lcg(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / 16777216.0 - 0.5
            })
            .collect()
    }
}

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

pub use detect::{available_kernel_kinds, available_kernels, best_kernel, kernel_summary, selected_kernel, KernelKind};
pub use qgemm::{qgemm_u8i8, qgemm_u8i8_scalar, PackedI8Weights};
pub use quantize::{quantize_u8, QuantParams};
