#!/usr/bin/env bash
# Transcript agreement with sherpa-onnx on a CPU this machine does not have: zipvox and
# sherpa-onnx (its Python wheel with the bundled onnxruntime) both run under qemu-user emulating
# that CPU, so each picks the kernels it would pick there. Greedy and modified beam search
# (4 paths) on ../shared/audio/dev, texts normalized as eval-dev.sh; also prints how each
# program's output moved against its own native (x86-64) run.
#
#   scripts/eval-emulated-cpu.sh                  x86-64 without AVX-512 (qemu-x86_64 -cpu Haswell)
#   scripts/eval-emulated-cpu.sh Skylake-Client   another x86 model (qemu-x86_64 -cpu help)
#   scripts/eval-emulated-cpu.sh cortex-a72       aarch64 (Raspberry Pi 4); also cortex-a76
#
# aarch64 needs an arm64 Python: the script fetches Debian's python3.11 arm64 packages
# (apt-get download) and the aarch64 wheels of sherpa-onnx and numpy (pip download) into
# target/emulated-python/, and gives qemu a /proc/cpuinfo of the emulated core (qemu 7.2 shows
# the host's, and onnxruntime's CPU detection then crashes). Needs the zipvox aarch64 build
# (scripts/cross-test.sh makes it). Not part of CI: 7 min (x86) to 20 min (aarch64) on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
CPU=${1:-Haswell}
SHARED=$(cd "${ZIPVOX_SHARED:-../shared}" && pwd)
MODEL=$SHARED/models/zipformer2-en-gigaspeech-3.3m
MANIFEST=$SHARED/audio/dev/manifest.tsv
NATIVE_BIN=${ZIPVOX_BIN:-target/release/zipvox}
[ -x "$NATIVE_BIN" ] || cargo build --release --quiet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
mapfile -t WAVS < <(python3 -c "
import csv, os, sys
m = sys.argv[1]; base = os.path.dirname(os.path.abspath(m))
for r in csv.DictReader(open(m), delimiter='\t'): print(os.path.join(base, r['wav']))" "$MANIFEST")
quiet() { "$@" 2> >(grep -v "TCG doesn't support" >&2); }

case "$CPU" in
  cortex-*|neoverse-*|max)
    command -v qemu-aarch64 >/dev/null || { echo "eval-emulated-cpu: needs qemu-aarch64 (apt-get install qemu-user)" >&2; exit 1; }
    BIN=target/aarch64-unknown-linux-gnu/release/zipvox
    [ -x "$BIN" ] || { echo "eval-emulated-cpu: no $BIN (run scripts/cross-test.sh first)" >&2; exit 1; }
    PYROOT=$PWD/target/emulated-python
    if [ ! -x "$PYROOT/root/usr/bin/python3.11" ]; then
      mkdir -p "$PYROOT/debs" "$PYROOT/root/proc" "$PYROOT/site" "$PYROOT/whl"
      (cd "$PYROOT/debs" && apt-get download -q python3.11-minimal:arm64 libpython3.11-minimal:arm64 \
        libpython3.11-stdlib:arm64 libexpat1:arm64 zlib1g:arm64 libffi8:arm64 libssl3:arm64 \
        libbz2-1.0:arm64 liblzma5:arm64 libsqlite3-0:arm64 libuuid1:arm64 libncursesw6:arm64 \
        libtinfo6:arm64 libreadline8:arm64 libstdc++6:arm64 libgcc-s1:arm64 >/dev/null)
      for d in "$PYROOT"/debs/*.deb; do dpkg -x "$d" "$PYROOT/root"; done
      pip download -q --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
        --python-version 3.11 --only-binary=:all: sherpa-onnx==2.0.1 numpy -d "$PYROOT/whl"
      for w in "$PYROOT"/whl/*.whl; do python3 -m zipfile -e "$w" "$PYROOT/site/"; done
    fi
    # Cortex-A72 / A76 identification as the kernel shows it on a Pi 4 / Pi 5.
    case "$CPU" in
      cortex-a76) part=0xd0b; feat="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp" ;;
      *) part=0xd08; feat="fp asimd evtstrm crc32 cpuid" ;;
    esac
    : >"$PYROOT/root/proc/cpuinfo"
    for p in 0 1; do
      printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: %s\nCPU revision\t: 3\n\n' \
        "$p" "$feat" "$part" >>"$PYROOT/root/proc/cpuinfo"
    done
    emu_py() {
      qemu-aarch64 -L "$PYROOT/root" -cpu "$CPU" \
        -E LD_LIBRARY_PATH="$PYROOT/root/usr/lib/aarch64-linux-gnu:$PYROOT/root/lib/aarch64-linux-gnu" \
        -E PYTHONHOME="$PYROOT/root/usr" -E PYTHONPATH="$PYROOT/site" "$PYROOT/root/usr/bin/python3.11" "$@"
    }
    emu_bin() { qemu-aarch64 -cpu "$CPU" "$BIN" "$@"; }
    ;;
  *)
    command -v qemu-x86_64 >/dev/null || { echo "eval-emulated-cpu: needs qemu-x86_64 (apt-get install qemu-user)" >&2; exit 1; }
    PY=$(python3 -c 'import sys; print(sys.executable)')
    emu_py() { quiet qemu-x86_64 -cpu "$CPU" "$PY" "$@"; }
    emu_bin() { quiet qemu-x86_64 -cpu "$CPU" "$NATIVE_BIN" "$@"; }
    ;;
esac

# sherpa-onnx and zipvox side by side (one core each), then the native runs.
(
  emu_py "$SHARED/tools/sherpa_decode.py" --method greedy_search "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_greedy_emu.jsonl" 2>/dev/null
  emu_py scripts/sherpa_beam_reference.py beam "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_beam_emu.jsonl" 2>/dev/null
) &
emu_bin transcribe --model "$MODEL" --json "${WAVS[@]}" >"$OUT/zipvox_greedy_emu.jsonl"
emu_bin transcribe --model "$MODEL" --decoding modified-beam-search --json "${WAVS[@]}" >"$OUT/zipvox_beam_emu.jsonl"
wait
python3 "$SHARED/tools/sherpa_decode.py" --method greedy_search "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_greedy_native.jsonl" 2>/dev/null
python3 scripts/sherpa_beam_reference.py beam "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_beam_native.jsonl" 2>/dev/null
"$NATIVE_BIN" transcribe --model "$MODEL" --json "${WAVS[@]}" >"$OUT/zipvox_greedy_native.jsonl"
"$NATIVE_BIN" transcribe --model "$MODEL" --decoding modified-beam-search --json "${WAVS[@]}" >"$OUT/zipvox_beam_native.jsonl"

python3 - "$OUT" "$CPU" <<'EOF'
import json, os, re, sys
out, cpu = sys.argv[1], sys.argv[2]
def norm(t):
    return " ".join(re.sub(r"[^A-Z0-9' ]", " ", t.upper().replace("-", " ")).split())
def load(name):
    rows = [json.loads(l) for l in open(os.path.join(out, name + ".jsonl")) if l.strip()]
    return {os.path.basename(r["file"]): norm(r["text"]) for r in rows}
def agree(label, a, b):
    x, y = load(a), load(b)
    diff = sorted(k for k in x if x[k] != y.get(k))
    print(f"{label}: {len(x) - len(diff)}/{len(x)} equal" + (f"; differ: {', '.join(diff)}" if diff else ""))
for search in ("greedy", "beam"):
    agree(f"{search}, {cpu}: zipvox vs sherpa-onnx", f"zipvox_{search}_emu", f"sherpa_{search}_emu")
    agree(f"{search}, sherpa-onnx {cpu} vs native", f"sherpa_{search}_emu", f"sherpa_{search}_native")
    agree(f"{search}, zipvox {cpu} vs native", f"zipvox_{search}_emu", f"zipvox_{search}_native")
EOF
