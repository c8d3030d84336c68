#!/usr/bin/env bash
# Static throughput check of zipvox's SIMD kernel tiles: compiles runtime/kernels/ alone (as a
# throw-away crate, release flags, one codegen unit) to assembly for aarch64 and x86_64, finds
# each tile function's k loop in the assembly, and runs llvm-mca on it:
#
#   A72 (Pi 4)  neon_tile, conv_tile_neon (f32)   -mcpu=cortex-a72   (LLVM models it with its
#                                                  Cortex-A57 model)
#   A76 (Pi 5)  dot_tile, conv_tile_neon (f32)    -mcpu=neoverse-n1  (LLVM's -mcpu=cortex-a76
#                                                  silently uses the A57 model; Neoverse N1 is
#                                                  the A76's core)
#   x86_64      vnni_tile, conv_tile_avx512 (f32)   -mcpu=icelake-server
#               avx2_tile, conv_chains_avx2 (CPUs without AVX-512)   -mcpu=haswell
#
# Per tile it prints MACs per loop iteration, cycles per iteration, MAC/cycle, the model's peak
# for that loop and the percentage. Peak = the loop's MACs over the cycles llvm-mca gives for
# the loop's arithmetic instructions alone (llvm-mca's resource bound, "Block RThroughput", of
# the multiply-accumulates and the adds that fold them
# into the accumulators: sdot; smull/smlal/sadalp; vpdpbusd; vpmaddwd/vpaddd; vfmadd), i.e.
# what the tile would reach if loads, address arithmetic, spills and branches were free
# (sdot on N1: 32 MAC/cycle; smull+smlal+sadalp on A72: 8; 512-bit vpdpbusd on ICX: 64).
# Fails if a main tile (the full-size ones, which do nearly all the work) is under 85%.
#
#   scripts/kernel-mca.sh              check (exit 1 under 85%)
#   ZIPVOX_MCA_ALL=1                   also print the edge tiles (fewer rows / columns)
#   ZIPVOX_MCA_KEEP=DIR                keep the assembly and the extracted loops in DIR
#
# Needs: rustup's aarch64-unknown-linux-gnu std (added if missing) and llvm-mca >= 15 (for the
# Neoverse N1 model; Debian bookworm's default llvm is 14): installs Debian's llvm-19 if no
# llvm-mca-15+ is found. llvm-mca 19 reads the assembly rustc's LLVM (22 for rustc 1.95)
# emits for these instructions; the models are the part that matters. Runs in ~15 s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

find_mca() {
  local v
  for v in 22 21 20 19 18 17 16 15; do
    command -v "llvm-mca-$v" >/dev/null 2>&1 && { echo "llvm-mca-$v"; return; }
    [ -x "/usr/lib/llvm-$v/bin/llvm-mca" ] && { echo "/usr/lib/llvm-$v/bin/llvm-mca"; return; }
  done
  if command -v llvm-mca >/dev/null 2>&1; then
    v=$(llvm-mca --version | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p')
    [ "${v:-0}" -ge 15 ] && { echo llvm-mca; return; }
  fi
  return 1
}
if ! MCA=$(find_mca); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "kernel-mca: installing llvm-19 (llvm-mca with the Neoverse N1 model)" >&2
  $SUDO apt-get update -qq || echo "kernel-mca: apt-get update reported errors; trying the install anyway" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends llvm-19 >/dev/null
  MCA=$(find_mca) || { echo "kernel-mca: no llvm-mca >= 15 after installing llvm-19" >&2; exit 1; }
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

WORK=${ZIPVOX_MCA_KEEP:-$(mktemp -d)}
mkdir -p "$WORK"
[ -n "${ZIPVOX_MCA_KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT

# The kernels use anyhow only for two error messages (threads.rs); a stub keeps this build
# independent of cargo's (seconds, not a cross build of tract).
cat >"$WORK/anyhow_stub.rs" <<'EOF'
pub type Result<T, E = String> = core::result::Result<T, E>;
#[macro_export] macro_rules! bail { ($($t:tt)*) => { return Err(format!($($t)*)) } }
#[macro_export] macro_rules! anyhow { ($($t:tt)*) => { format!($($t)*) } }
EOF
echo "#[path = \"$ROOT/runtime/kernels/mod.rs\"] pub mod kernels;" >"$WORK/kernels_only.rs"
for T in aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu; do
  rustc --edition 2021 --crate-type rlib --crate-name anyhow --target "$T" -O \
    "$WORK/anyhow_stub.rs" -o "$WORK/libanyhow-$T.rlib"
  # Release flags of Cargo.toml (opt-level 3), one codegen unit, v0 mangling (names carry the
  # tiles' const parameters).
  rustc --edition 2021 --crate-type lib --crate-name zipvox_kernels --target "$T" \
    -C opt-level=3 -C codegen-units=1 -C symbol-mangling-version=v0 --emit asm \
    -o "$WORK/kernels-$T.s" "$WORK/kernels_only.rs" --extern anyhow="$WORK/libanyhow-$T.rlib"
done

python3 - "$MCA" "$WORK" "${ZIPVOX_MCA_ALL:-0}" <<'EOF'
import re, subprocess, sys

mca_bin, work, show_all = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
THRESHOLD = 85.0

# (target, tile family, symbol pattern (v0-mangled), models, which instantiations are "main").
# v0 mangling: const usize N is `Kj<hex>_`, bool `Kb0_`/`Kb1_`, a repeated constant a back
# reference `KB<base62>_`; instantiations are told apart by the demangled name.
TILES = [
    ("aarch64-unknown-linux-gnu", "neon_tile", ["cortex-a72"], {"<3, 2, false>", "<3, 2, true>"}),
    ("aarch64-unknown-linux-gnu", "dot_tile", ["neoverse-n1"], {"<4, 4>", "<3, 4>", "<2, 4>"}),
    ("x86_64-unknown-linux-gnu", "vnni_tile", ["icelake-server"], {"<6, 4>", "<5, 4>", "<4, 4>"}),
    # AVX2 runs where AVX-512 VNNI does not: Haswell-class cores (vpmaddwd on one port).
    ("x86_64-unknown-linux-gnu", "avx2_tile", ["haswell"], {"<4, 2>", "<3, 2>"}),
    # The conv front end's f32 tiles (kernels/conv2d.rs): NEON 4 channels × 16 positions
    # (fmla by lane), AVX-512 8 × 32, AVX2 6 × 16.
    ("aarch64-unknown-linux-gnu", "conv_tile_neon", ["cortex-a72", "neoverse-n1"], {""}),
    ("x86_64-unknown-linux-gnu", "conv_tile_avx512", ["icelake-server"], {""}),
    ("x86_64-unknown-linux-gnu", "conv_chains_avx2", ["haswell"], {""}),
]

def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return out.split("\n")

def functions(asm):
    """{mangled symbol: [lines of its body]}"""
    funcs, cur, body = {}, None, []
    for line in asm.split("\n"):
        m = re.match(r"^(_R\w+):", line)
        if m:
            cur, body = m.group(1), []
            funcs[cur] = body
        elif cur is not None:
            if line.startswith(".Lfunc_end"):
                cur = None
            else:
                body.append(line)
    return funcs

def macs_of(ins):
    """(multiply-accumulates, is arithmetic) of one instruction."""
    m = ins.split()[0] if ins.split() else ""
    if m == "sdot":
        return 16, True
    if m in ("smull", "smull2", "smlal", "smlal2") and ".8h" in ins:
        return 8, True
    if m == "sadalp":
        return 0, True
    if m == "fmla" and ".4s" in ins:
        return 4, True
    width = 16 if "%zmm" in ins else 8 if "%ymm" in ins else 4
    if m == "vpdpbusd":
        return 4 * width, True
    if m == "vpmaddwd":
        return 2 * width, True
    if re.match(r"vfmadd\d+ps", m):
        return width, True
    if m == "vpaddd" and "(" not in ins:
        return 0, True
    return 0, False

def main_loop(body, comment):
    """Instructions of the loop (label … backward branch to it) with the most MACs."""
    labels, best = {}, None
    lines = []
    for line in body:
        s = line.strip()
        if not s or s.startswith(("//", "#", ".cfi", ".p2align", ".loc", ".file")):
            continue
        m = re.match(r"^(\.LBB\w+):", s)
        if m:
            labels[m.group(1)] = len(lines)
            continue
        if s.startswith("."):
            continue
        lines.append(s.split(comment)[0].strip())
        tgt = re.match(r"^(b\.\w+|cbnz|cbz|tbnz|tbz|j\w+|b)\s+.*?(\.LBB\w+)$", lines[-1])
        if tgt and tgt.group(2) in labels:
            loop = lines[labels[tgt.group(2)]:]
            macs = sum(macs_of(i)[0] for i in loop)
            if macs and (best is None or macs > best[0]):
                best = (macs, loop)
    return best

def mca(triple, cpu, ins, name):
    """(simulated cycles per iteration, resource-only bound "Block RThroughput")."""
    path = f"{work}/{name}.s"
    with open(path, "w") as f:
        f.write("\n".join(ins) + "\n")
    r = subprocess.run([mca_bin, f"-mtriple={triple}", f"-mcpu={cpu}", "-iterations=400", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"kernel-mca: llvm-mca failed on {path}: {r.stderr.strip()}")
    it = int(re.search(r"^Iterations:\s+(\d+)", r.stdout, re.M).group(1))
    cyc = int(re.search(r"^Total Cycles:\s+(\d+)", r.stdout, re.M).group(1))
    rthr = float(re.search(r"^Block RThroughput:\s+([\d.]+)", r.stdout, re.M).group(1))
    return cyc / it, rthr

failures, rows = [], []
for target, family, cpus, main in TILES:
    asm = open(f"{work}/kernels-{target}.s").read()
    funcs = {k: v for k, v in functions(asm).items() if family in k}
    if not funcs:
        failures.append(f"{family}: no such function in the {target} assembly (inlined or renamed?)")
        continue
    names = dict(zip(funcs, demangle(list(funcs))))
    triple = target.split("-")[0]
    for sym, body in sorted(funcs.items(), key=lambda kv: names[kv[0]]):
        dem = names[sym]
        params = dem[dem.rfind("::<"):].lstrip(":") if "::<" in dem else ""
        params = re.sub(r":\s*(usize|bool)", "", params)
        is_main = params in main
        if not (is_main or show_all):
            continue
        found = main_loop(body, "//" if triple == "aarch64" else "#")
        if found is None:
            failures.append(f"{family}{params}: no loop with multiply-accumulates found")
            continue
        macs, loop = found
        arith = [i for i in loop if macs_of(i)[1]]
        for cpu in cpus:
            tag = re.sub(r"\W+", "_", f"{family}{params}_{cpu}")
            full = mca(triple, cpu, loop, tag)[0]
            # The arithmetic's throughput bound on the model's pipes (dependencies left out:
            # without the loads that redefine their registers, they would be false ones).
            bound = mca(triple, cpu, arith, tag + "_arith")[1]
            pct = 100.0 * bound / full
            rows.append((f"{family}{params}", cpu, len(loop), macs, full, macs / full, macs / bound, pct, is_main))
            if is_main and pct < THRESHOLD:
                failures.append(f"{family}{params} on {cpu}: {pct:.0f}% of peak (< {THRESHOLD:.0f}%)")

print(f"kernel-mca ({mca_bin}): k loop of each tile, llvm-mca cycles per iteration")
print(f"{'tile':<24} {'model':<15} {'instrs':>6} {'MACs':>5} {'cycles':>7} {'MAC/cyc':>8} {'peak':>6} {'%':>5}")
for name, cpu, n, macs, cyc, rate, peak, pct, is_main in rows:
    print(f"{name:<24} {cpu:<15} {n:>6} {macs:>5} {cyc:>7.2f} {rate:>8.2f} {peak:>6.1f} {pct:>4.0f}%{'' if is_main else '  (edge tile)'}")
for f in failures:
    print(f"FAILED: {f}", file=sys.stderr)
sys.exit(1 if failures else 0)
EOF
