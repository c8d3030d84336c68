//! `zipvox info`: what this binary is and what it will run on this CPU: version, target, the CPU
//! features detected at run time and the kernels chosen from them.
//!
//! The binary is built for each target's baseline (ARMv8.0-A on aarch64, so the Pi 4's Cortex-A72
//! runs it); faster code (dot product on Pi 5 / Orin, AVX2 / AVX-512 on x86_64) is picked at run
//! time. This is the line to look at when a board is slower than expected, and what the cross
//! tests read under `qemu-aarch64 -cpu cortex-a72` (expects `qgemm=neon`) and `-cpu cortex-a76`
//! (expects `qgemm=neon-dotprod`).
//!
//! Output: one `key: value` line each, stable keys (`version`, `target`, `cpu`, `cpu-features`,
//! `kernels-available`, `kernels`, `swoosh`).

use crate::kernels;
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
pub struct InfoArgs {}

/// Runs `zipvox info`.
pub fn run(_args: &InfoArgs) -> Result<i32> {
    print!("{}", report());
    Ok(0)
}

/// The whole report, one `key: value` per line.
pub fn report() -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        s.push_str(k);
        s.push_str(": ");
        s.push_str(&v);
        s.push('\n');
    };
    line("version", format!("zipvox {}", env!("CARGO_PKG_VERSION")));
    line("target", target());
    line("cpu", cpu_model().unwrap_or_else(|| "unknown".into()));
    line("cpu-features", cpu_features().join(" "));
    line("kernels-available", kernels::available_kernels().join(","));
    line("kernels", kernels::kernel_summary());
    line("swoosh", kernels::activation::swoosh_variant().to_string());
    s
}

/// `arch-os-env`, e.g. `aarch64-linux-gnu`, with the pointer width and the compile-time baseline.
fn target() -> String {
    let env = if cfg!(target_env = "gnu") {
        "gnu"
    } else if cfg!(target_env = "musl") {
        "musl"
    } else {
        "other"
    };
    let baseline = if cfg!(target_arch = "aarch64") {
        // Compile-time features (what the code may assume without detection).
        let mut b = vec!["armv8.0-a"];
        if cfg!(target_feature = "dotprod") {
            b.push("+dotprod");
        }
        if cfg!(target_feature = "fp16") {
            b.push("+fp16");
        }
        b.concat()
    } else if cfg!(target_arch = "arm") {
        if cfg!(target_feature = "neon") { "armv7-a+neon" } else { "armv7-a" }.to_string()
    } else if cfg!(target_arch = "x86_64") {
        if cfg!(target_feature = "avx2") { "x86-64+avx2" } else { "x86-64" }.to_string()
    } else {
        "default".to_string()
    };
    format!(
        "{}-{}-{} ({}-bit, compiled for {})",
        std::env::consts::ARCH,
        std::env::consts::OS,
        env,
        usize::BITS,
        baseline
    )
}

/// The CPU's name from /proc/cpuinfo (`model name`, or the ARM implementer/part numbers with the
/// core name for the boards zipvox targets). Under qemu-user this is the host's.
fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    if let Some(m) = field("model name").filter(|m| !m.is_empty()) {
        return Some(m);
    }
    let part = field("CPU part")?;
    let core = match (field("CPU implementer").as_deref(), part.as_str()) {
        (Some("0x41"), "0xd08") => " (Cortex-A72: Raspberry Pi 4)",
        (Some("0x41"), "0xd0b") => " (Cortex-A76: Raspberry Pi 5)",
        (Some("0x41"), "0xd42") => " (Cortex-A78AE: Jetson Orin)",
        (Some("0x41"), "0xd03") => " (Cortex-A53)",
        (Some("0x41"), "0xd07") => " (Cortex-A57)",
        _ => "",
    };
    Some(format!("part {part}{core}"))
}

/// CPU features that matter to zipvox or tract, as detected at run time on this machine.
fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static str> = Vec::new();
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),+) => { $( if std::arch::is_aarch64_feature_detected!($f) { v.push($f); } )+ };
        }
        probe!("neon", "fp16", "fhm", "dotprod", "i8mm", "bf16", "sve", "sve2", "lse", "rdm", "crc", "aes", "sha2");
    }
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),+) => { $( if std::arch::is_x86_feature_detected!($f) { v.push($f); } )+ };
        }
        probe!("sse4.1", "sse4.2", "avx", "fma", "f16c", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avxvnni");
    }
    #[cfg(target_arch = "arm")]
    {
        // Run-time detection is not stable on 32-bit ARM: report what the build assumes.
        if cfg!(target_feature = "neon") {
            v.push("neon (compile time)");
        }
    }
    if v.is_empty() {
        v.push("none detected");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_every_key_once() {
        let r = report();
        for key in ["version", "target", "cpu", "cpu-features", "kernels-available", "kernels", "swoosh"] {
            let n = r.lines().filter(|l| l.split_once(": ").map(|(k, _)| k) == Some(key)).count();
            assert_eq!(n, 1, "{key} in\n{r}");
        }
        assert!(r.contains(&format!("kernels: {}", kernels::kernel_summary())));
        assert!(r.contains(std::env::consts::ARCH));
    }
}
