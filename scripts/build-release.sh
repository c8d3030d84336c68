#!/usr/bin/env bash
# The release build the .deb ships: profile-guided (PGO) and with packed relocations.
#
#   scripts/build-release.sh [--target TRIPLE] [--no-pgo]     prints the binary's path on stdout
#
# Why (3.3M model, x86_64 dev machine, README "Speed"): a plain `cargo build --release` maps
# ~14 MiB of its own code during a run, because the code the run touches (tract's load-time
# analysis above all) is scattered over a 29 MB text segment and the kernel maps pages around
# each one it faults in. With a profile, LLVM puts the functions the run never executes into
# `.text.unlikely`, away from the rest (`-z keep-text-section-prefix` keeps the groups apart),
# and inlines and lays out the hot ones better: the code mapped halves and the encoder gets
# faster. Packed relative relocations (DT_RELR) shrink the 1.5 MB relocation table the loader
# reads at start to ~20 KB; they need glibc >= 2.36 on the board, so they are used only when
# the target's libc.so.6 has GLIBC_ABI_DT_RELR (Debian 12 / Raspberry Pi OS bookworm and
# later; not Ubuntu 22.04 / JetPack 6: build there, or set ZIPVOX_RELR=0).
#
# Steps: an instrumented build (target/pgo-gen), a training run of it on the real models (the
# shared test models, or the model scripts/quickstart.sh finds or fetches; the Chinese model is
# used when present), the profiles merged with llvm-profdata (rustup component llvm-tools,
# installed if missing), then the optimized build (target/pgo-use). Aarch64 trains under
# qemu-aarch64 as both a Cortex-A72 and a Cortex-A76 (their kernels differ), x86_64 natively and,
# when qemu-x86_64 is there, as an AVX2-only Haswell too: kernels a profile never saw would be
# compiled as cold code. Profiles change code layout and inlining only, never arithmetic: the
# transcripts are the plain build's (scripts/cross-test.sh and the README's checks).
#
# ZIPVOX_RELR=0|1 forces packed relocations off or on; ZIPVOX_PGO_MODEL=DIR picks the training
# model. Takes about twice a plain release build (two full builds; the training run is seconds,
# minutes under qemu).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say() { echo "build-release: $*" >&2; }
die() { say "$@"; exit 1; }

host=$(rustc -vV | sed -n 's/^host: //p')
triple=$host
pgo=1
while [ $# -gt 0 ]; do
  case $1 in
    --target) triple=$2; shift 2 ;;
    --no-pgo) pgo=0; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

case $triple in
  x86_64-unknown-linux-gnu) cc=gcc; libdir=/usr/lib/x86_64-linux-gnu; run=() ;;
  aarch64-unknown-linux-gnu) cc=aarch64-linux-gnu-gcc; libdir=/usr/lib/aarch64-linux-gnu; run=(qemu-aarch64) ;;
  armv7-unknown-linux-gnueabihf) cc=arm-linux-gnueabihf-gcc; libdir=/usr/lib/arm-linux-gnueabihf; run=(qemu-arm) ;;
  *) die "unsupported target $triple (x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf)" ;;
esac
[ "$triple" = "$host" ] && run=()
command -v "$cc" >/dev/null || die "$cc not found: install the target's gcc (scripts/cross-test.sh lists the packages)"

# Link flags: the text groups kept apart, and (below) packed relocations. The x86_64 target
# links with the toolchain's rust-lld already; the cross targets are pointed at it too, through
# the same gcc-ld wrapper rustc uses: GNU ld 2.40 (Debian 12's aarch64 cross binutils) accepts
# both options for aarch64 and silently applies neither.
sysroot=$(rustc --print sysroot)
link=(-C link-arg=-Wl,-z,keep-text-section-prefix)
gccld=$sysroot/lib/rustlib/$host/bin/gcc-ld
if [ "$triple" != x86_64-unknown-linux-gnu ] && [ -x "$gccld/ld.lld" ]; then
  link+=(-C link-arg=-fuse-ld=lld -C "link-arg=-B$gccld")
fi
libc=$("$cc" -print-file-name=libc.so.6)
relr=${ZIPVOX_RELR:-auto}
if [ "$relr" = auto ]; then
  relr=0
  # (not `readelf | grep -q`: grep quitting early fails the pipeline under pipefail)
  case $(readelf -V --wide "$libc" 2>/dev/null) in *GLIBC_ABI_DT_RELR*) relr=1 ;; esac
fi
[ "$relr" = 1 ] && link+=(-C link-arg=-Wl,-z,pack-relative-relocs)
say "$triple: packed relocations $([ "$relr" = 1 ] && echo on || echo "off ($libc has no GLIBC_ABI_DT_RELR)")"
base=${RUSTFLAGS:-}

# check_relr BINARY: say whether the relocations really came out packed.
check_relr() {
  if [ "$relr" = 1 ]; then
    case $(readelf -d "$1") in
      *"(RELR)"*) ;;
      *) say "warning: the linker ignored -z pack-relative-relocs ($1 has no DT_RELR)" ;;
    esac
  fi
}

if [ "$pgo" = 0 ]; then
  RUSTFLAGS="$base ${link[*]}" cargo build --release --bin zipvox --target "$triple" --target-dir target/pgo-use --quiet >&2
  check_relr "$ROOT/target/pgo-use/$triple/release/zipvox"
  echo "$ROOT/target/pgo-use/$triple/release/zipvox"
  exit 0
fi

# llvm-profdata of the toolchain's own LLVM (profile formats change between LLVM versions).
profdata=$sysroot/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ]; then
  say "installing the rustup component llvm-tools (llvm-profdata)"
  rustup component add llvm-tools >&2 || rustup component add llvm-tools-preview >&2
fi
[ -x "$profdata" ] || die "no llvm-profdata at $profdata: run 'rustup component add llvm-tools'"

# The training models.
shared=${ZIPVOX_SHARED:-$ROOT/../shared}
model=${ZIPVOX_PGO_MODEL:-}
if [ -z "$model" ]; then
  if [ -d "$shared/models/zipformer2-en-gigaspeech-3.3m" ]; then
    model=$shared/models/zipformer2-en-gigaspeech-3.3m
  else
    model=$(bash scripts/quickstart.sh --model-only) || die "no model to train the profile on: set ZIPVOX_PGO_MODEL=DIR or pass --no-pgo"
  fi
fi
zh=$shared/models/kws-zipformer-zh-wenetspeech-3.3m
clips=("$model"/test_wavs/*.wav)
[ -f "${clips[0]}" ] || die "$model/test_wavs has no WAV files to train on"

work=$ROOT/target/pgo/$triple
rm -rf "$work" && mkdir -p "$work/raw"

# 1. Instrumented build. Instrumentation keeps every function alive, among them the alsa
# crate's UMP (MIDI 2.0) wrappers, whose libasound symbols older libasound builds (Debian 12's
# 1.2.8) lack: link with them unresolved, then point the missing ones at 0 (never called).
say "instrumented build"
gen=(cargo rustc --release --bin zipvox --target "$triple" --target-dir target/pgo-gen --quiet)
export RUSTFLAGS="$base -Cprofile-generate=$work/raw"
"${gen[@]}" -- -C link-arg=-Wl,--unresolved-symbols=ignore-in-object-files >&2
bin=target/pgo-gen/$triple/release/zipvox
nm_=nm; command -v "${cc%gcc}nm" >/dev/null && nm_=${cc%gcc}nm
missing=$(comm -23 <("$nm_" -D --undefined-only "$bin" | awk '{print $2}' | sed 's/@.*//' | grep '^snd_' | sort -u) \
                   <("$nm_" -D --defined-only "$libdir/libasound.so.2" | awk '{print $3}' | sed 's/@.*//' | sort -u))
defsyms=()
for s in $missing; do defsyms+=(-C "link-arg=-Wl,--defsym=$s=0"); done
[ ${#defsyms[@]} -eq 0 ] || "${gen[@]}" -- "${defsyms[@]}" >&2
unset RUSTFLAGS

# 2. Training: what a board runs (file transcription, stdin, beam search, keyword spotting,
# the Chinese model's pinyin path, the daemon on an ALSA capture device).
train() { # train [CPU]
  local r=("${run[@]}")
  [ -n "${1:-}" ] && r+=(-cpu "$1")
  local zv=("${r[@]}" "$ROOT/$bin")
  "${zv[@]}" transcribe --model "$model" "${clips[@]}" >/dev/null
  "${zv[@]}" transcribe --model "$model" --beam 4 "${clips[0]}" >/dev/null
  "${zv[@]}" bench --model "$model" --repeat 1 "${clips[0]}" >/dev/null
  [ -f "$model/keywords.txt" ] && "${zv[@]}" spot --model "$model" --keywords "$model/keywords.txt" "${clips[0]}" >/dev/null
  if [ -d "$zh" ]; then
    "${zv[@]}" transcribe --model "$zh" "$zh"/test_wavs/[0-3].wav >/dev/null
    "${zv[@]}" spot --model "$zh" --keywords "$zh/test_wavs/test_keywords.txt" "$zh"/test_wavs/[3-4].wav >/dev/null
  fi
  # The daemon, fed by the ALSA file plugin (the clip as fast as it is read, then silence).
  local home=$work/home
  mkdir -p "$home"
  python3 - "${clips[0]}" "$home/clip.raw" <<'EOF'
import sys, wave
w = wave.open(sys.argv[1]); open(sys.argv[2], "wb").write(w.readframes(w.getnframes()))
EOF
  cat >"$home/.asoundrc" <<EOF
pcm.zvtrain { type file; slave.pcm "null"; file "/dev/null"; infile "$home/clip.raw"; format "raw" }
pcm.zvplug { type plug; slave { pcm "zvtrain"; format S16_LE; rate 16000; channels 1 } }
EOF
  HOME=$home "${zv[@]}" listen --model "$model" --device zvplug --socket "$home/zv.sock" >/dev/null 2>&1 &
  local pid=$!
  sleep "$([ ${#r[@]} -gt 0 ] && echo 40 || echo 4)"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || true
}
if [ ${#run[@]} -gt 0 ]; then
  command -v "${run[0]}" >/dev/null || die "${run[0]} not found: the aarch64 profile is trained under qemu-user (apt install qemu-user)"
  case $triple in
    aarch64-*) for cpu in cortex-a72 cortex-a76; do say "training under ${run[0]} -cpu $cpu"; train "$cpu"; done ;;
    *) say "training under ${run[0]}"; train cortex-a7 ;;
  esac
else
  say "training"
  train
  if [ "$triple" = x86_64-unknown-linux-gnu ] && command -v qemu-x86_64 >/dev/null; then
    say "training under qemu-x86_64 -cpu Haswell (the AVX2 kernels)"
    run=(qemu-x86_64); train Haswell; run=()
  fi
fi
ls "$work"/raw/*.profraw >/dev/null 2>&1 || die "the training run wrote no profile"
"$profdata" merge -o "$work/zipvox.profdata" "$work"/raw/*.profraw

# 3. The optimized build.
say "optimized build"
RUSTFLAGS="$base -Cprofile-use=$work/zipvox.profdata -Cllvm-args=-pgo-warn-missing-function=false ${link[*]}" \
  cargo build --release --bin zipvox --target "$triple" --target-dir target/pgo-use --quiet >&2
check_relr "$ROOT/target/pgo-use/$triple/release/zipvox"
echo "$ROOT/target/pgo-use/$triple/release/zipvox"
