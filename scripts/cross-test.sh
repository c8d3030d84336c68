#!/usr/bin/env bash
# Cross-builds zipvox for the ARM boards with plain cargo (no Docker; see .cargo/config.toml) and
# tests the aarch64 build under qemu-user as a Raspberry Pi 4 (cortex-a72: ARMv8.0, no dotprod)
# and a Raspberry Pi 5 (cortex-a76: dotprod, fp16). Called at the end of scripts/test.sh (the CI test command).
#
#   scripts/cross-test.sh              aarch64 build + tests under qemu (a72, a76), .deb, armv7 build
#   ZIPVOX_CROSS_ARMV7=0               skip the armv7 (32-bit Pi OS) build
#   ZIPVOX_CROSS_FULL=1                run every aarch64 test binary (slow: ~3x the default)
#
# First scripts/kernel-mca.sh (llvm-mca on every SIMD tile's compiled k loop, >= 85% of peak).
# What runs under qemu, per CPU (see README "ARM boards" for timings):
#   - `zipvox info`: must name qgemm=neon on cortex-a72 and qgemm=neon-dotprod on cortex-a76
#     (the run-time dispatch; a dotprod instruction on the A72 would die with SIGILL);
#   - test binaries: lib unit tests, kernels (every SIMD kernel vs scalar, bit for bit, plus the
#     ZIPVOX_EXPECT_KERNEL check), fbank_parity (vs kaldi-native-fbank), audio_input,
#     encoder_parity (vs onnxruntime); the two that spawn the `zipvox` binary as a child
#     (transcribe, bad_input) need binfmt_misc to exec an aarch64 child and run only where it is
#     registered (or with ZIPVOX_CROSS_FULL=1);
#   - `zipvox transcribe` of the shared clips: the text must equal the x86_64 build's, byte for byte.
# Then the arm64 .deb is built (scripts/build-deb.sh) and its contents checked
# (packaging/test-deb.sh), and the armv7 build must succeed (its `zipvox info` and one clip run
# under qemu-arm too).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export ZIPVOX_SHARED=${ZIPVOX_SHARED:-$(cd .. && pwd)/shared}
[ -d "$ZIPVOX_SHARED/models" ] || { echo "cross-test: no shared models at $ZIPVOX_SHARED (set ZIPVOX_SHARED)" >&2; exit 1; }
ZIPVOX_SHARED=$(cd "$ZIPVOX_SHARED" && pwd)   # absolute: the qemu'd tests read it
A64=aarch64-unknown-linux-gnu
A32=armv7-unknown-linux-gnueabihf
ARMV7=${ZIPVOX_CROSS_ARMV7:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
MODEL=$ZIPVOX_SHARED/models/zipformer2-en-gigaspeech-3.3m
CLIPS=("$MODEL/test_wavs/0.wav" "$MODEL/test_wavs/1.wav")
passed=0
failed=0
t0=$(date +%s)
step() { echo "== cross: $* ($(( $(date +%s) - t0 )) s)"; }
ok() { passed=$((passed + 1)); echo "ok: $*"; }
bad() { failed=$((failed + 1)); echo "FAILED: $*" >&2; }

# ---------------------------------------------------------------------------------------------
step "setup"
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
arches=(arm64); [ "$ARMV7" = 1 ] && arches+=(armhf)
need=()
for p in pkg-config python3 qemu-user gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross dpkg-dev; do
  have_pkg "$p" || need+=("$p")
done
[ "$ARMV7" = 1 ] && { for p in gcc-arm-linux-gnueabihf libc6-dev-armhf-cross; do have_pkg "$p" || need+=("$p"); done; }
for a in "${arches[@]}"; do have_pkg "libasound2-dev:$a" || need+=("libasound2-dev:$a"); done
if [ ${#need[@]} -gt 0 ]; then
  if [ -r /etc/os-release ] && grep -q '^ID=ubuntu' /etc/os-release; then
    echo "cross-test: note: on Ubuntu, arm64/armhf packages come from the ports archive: add it to apt's sources (restricted to those architectures) first" >&2
  fi
  for a in "${arches[@]}"; do
    dpkg --print-foreign-architectures | grep -qx "$a" || $SUDO dpkg --add-architecture "$a"
  done
  echo "cross-test: installing ${need[*]}" >&2
  # One mirror index failing (e.g. a mirror mid-sync for one architecture) must not stop us:
  # the install below fails clearly if a package really is unavailable.
  $SUDO apt-get update -qq || echo "cross-test: apt-get update reported errors; trying the install anyway" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
targets=("$A64"); [ "$ARMV7" = 1 ] && targets+=("$A32")
missing=()
for t in "${targets[@]}"; do rustup target list --installed | grep -qx "$t" || missing+=("$t"); done
[ ${#missing[@]} -eq 0 ] || rustup target add "${missing[@]}"

# ---------------------------------------------------------------------------------------------
# Static check of the compiled kernel tiles (llvm-mca on A72 / A76 / x86 models; ~15 s): every
# main tile at >= 85% of its model's peak (e.g. the Pi 5 4x16 sdot tile's accumulators stay in
# registers).
step "kernel tiles under llvm-mca"
if bash scripts/kernel-mca.sh; then ok "kernel tiles >= 85% of peak (scripts/kernel-mca.sh)"; else bad "scripts/kernel-mca.sh"; fi

# ---------------------------------------------------------------------------------------------
# One build of everything aarch64 (library, binary, test binaries), release: the tests run under
# qemu, which is slow enough without debug code.
step "build $A64 (release, tests included)"
BIN64=$TARGET_DIR/$A64/release/zipvox
test_exe() { # test_exe NAME: the test executable of the lib ("zipvox") or of tests/NAME.rs
  python3 -c '
import json, sys
name = sys.argv[1]
for line in open(sys.argv[2]):
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or not m.get("executable") or not m["profile"]["test"]:
        continue
    kind = m["target"]["kind"]
    if m["target"]["name"] == name and (kind == ["test"] or (name == "zipvox" and "lib" in kind)):
        print(m["executable"])
' "$1" "$TARGET_DIR/cross-artifacts.json" | tail -1
}
tests=(zipvox kernels fbank_parity audio_input encoder_parity)
if [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || [ "${ZIPVOX_CROSS_FULL:-0}" = 1 ]; then
  tests+=(transcribe bad_input)
else
  echo "cross: no binfmt_misc for aarch64 here: transcribe/bad_input (they exec the aarch64 binary) are replaced by the transcript check below"
fi
# `cargo test --no-run` builds the library, the binary and the test executables we run (only
# those: each links all of tract, and CI has two cores); its JSON messages name the executables.
sel=(--lib --bins)
for t in "${tests[@]}"; do [ "$t" = zipvox ] || sel+=(--test "$t"); done
cargo test --release --target "$A64" --no-run "${sel[@]}" --message-format=json-render-diagnostics >"$TARGET_DIR/cross-artifacts.json"
cargo build --release --target "$A64" --quiet
# Built for the baseline: an aarch64 ELF whose code must run on an ARMv8.0 core (proved below by
# running it as a Cortex-A72).
aarch64-linux-gnu-readelf -h "$BIN64" | grep -q "Machine: *AArch64" && ok "built $BIN64 ($(du -h "$BIN64" | cut -f1))" || bad "$BIN64 is not an aarch64 ELF"
# The x86_64 transcripts to compare with: the native build (scripts/test.sh built the debug one).
X86BIN=""
for b in "$TARGET_DIR/release/zipvox" "$TARGET_DIR/debug/zipvox"; do
  [ -x "$b" ] && { X86BIN=$b; break; }
done
if [ -z "$X86BIN" ]; then
  cargo build --release --quiet
  X86BIN=$TARGET_DIR/release/zipvox
fi
transcribe_all() { "$@" transcribe --model "$MODEL" "${CLIPS[@]}"; }
step "transcripts on x86_64 ($X86BIN)"
x86_text=$(transcribe_all "$X86BIN")
echo "$x86_text" | sed 's/^/  x86_64: /'

# The multiarch loader and libc (libc6:arm64, pulled in by libasound2:arm64) at their normal
# paths: no -L (see .cargo/config.toml for why mixing in the cross sysroot's loader hangs).
run64() { qemu-aarch64 -cpu "$1" "${@:2}"; }

for cpu in cortex-a72 cortex-a76; do
  case $cpu in
    cortex-a72) want=neon ;;
    cortex-a76) want=neon-dotprod ;;
  esac
  step "$A64 under qemu -cpu $cpu"
  info=$(run64 "$cpu" "$BIN64" info)
  echo "$info" | sed 's/^/  /'
  if echo "$info" | grep -q "^kernels: qgemm=$want quantize=neon\$"; then
    ok "$cpu: zipvox info selects qgemm=$want"
  else
    bad "$cpu: zipvox info does not select qgemm=$want"
  fi
  if [ "$cpu" = cortex-a72 ]; then
    echo "$info" | grep "^cpu-features:" | grep -qw dotprod && bad "$cpu: dotprod detected on an A72" || ok "$cpu: no dotprod detected"
  else
    echo "$info" | grep "^cpu-features:" | grep -qw dotprod && ok "$cpu: dotprod detected" || bad "$cpu: dotprod not detected"
  fi

  for t in "${tests[@]}"; do
    exe=$(test_exe "$t")
    [ -n "$exe" ] || { bad "$cpu: no test executable for $t"; continue; }
    s=$(date +%s)
    log=$TARGET_DIR/cross-$cpu-$t.log
    if ZIPVOX_EXPECT_KERNEL=$want run64 "$cpu" "$exe" --quiet --test-threads=2 >"$log" 2>&1; then
      ok "$cpu: $t ($(grep -E '^test result' "$log" | tail -1 | sed 's/^test result: //; s/;.*finished in/ in/'); $(( $(date +%s) - s )) s wall)"
    else
      tail -30 "$log" >&2
      bad "$cpu: $t (log: $log)"
    fi
  done

  s=$(date +%s)
  text=$(transcribe_all run64 "$cpu" "$BIN64")
  echo "$text" | sed "s/^/  $cpu: /"
  if [ "$text" = "$x86_text" ]; then
    ok "$cpu: transcripts identical to x86_64 ($(( $(date +%s) - s )) s)"
  else
    diff <(echo "$x86_text") <(echo "$text") >&2 || true
    bad "$cpu: transcripts differ from x86_64"
  fi
done

# ---------------------------------------------------------------------------------------------
step "arm64 .deb"
if deb=$(bash scripts/build-deb.sh --no-build "$BIN64"); then
  ok "built $deb"
  if bash packaging/test-deb.sh "$deb"; then ok "package contents ($deb)"; else bad "package contents ($deb)"; fi
else
  bad "scripts/build-deb.sh"
fi

# ---------------------------------------------------------------------------------------------
if [ "$ARMV7" = 1 ]; then
  step "build $A32 (release)"
  if cargo build --release --target "$A32" --quiet; then
    BIN32=$TARGET_DIR/$A32/release/zipvox
    ok "built $BIN32 ($(du -h "$BIN32" | cut -f1))"
    step "$A32 under qemu-arm -cpu cortex-a7"
    if info=$(qemu-arm -cpu cortex-a7 "$BIN32" info); then
      echo "$info" | sed 's/^/  /'
      ok "armv7: zipvox info"
      text=$(qemu-arm -cpu cortex-a7 "$BIN32" transcribe --model "$MODEL" "${CLIPS[0]}")
      echo "  armv7: $text"
      [ "$text" = "$(echo "$x86_text" | head -1 | cut -f2-)" ] && ok "armv7: transcript of 0.wav identical to x86_64" \
        || bad "armv7: transcript of 0.wav differs from x86_64"
    else
      bad "armv7: zipvox info under qemu-arm"
    fi
  else
    bad "armv7 build"
  fi
fi

step "done"
echo "cross: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
