#!/usr/bin/env bash
# Transcript agreement with sherpa-onnx on a CPU this machine does not have: both zipvox and
# sherpa-onnx (Python wheel + its onnxruntime) run under `qemu-x86_64 -cpu MODEL` (default
# Haswell: AVX2 + FMA, no AVX-512), so each picks the kernels it would pick on such a CPU.
# Greedy and modified beam search (4 paths) on ../shared/audio/dev, texts normalized as
# eval-dev.sh; also prints how each program's output moved against its own native run.
#
#   scripts/eval-emulated-cpu.sh [MODEL]        ~10 min on 2 cores (TCG emulation, ~1.3x real time)
#
# Not part of CI (slow); needs qemu-user and `pip install sherpa-onnx`.
set -euo pipefail
cd "$(dirname "$0")/.."
CPU=${1:-Haswell}
SHARED=${ZIPVOX_SHARED:-../shared}
BIN=${ZIPVOX_BIN:-target/release/zipvox}
MODEL=$SHARED/models/zipformer2-en-gigaspeech-3.3m
MANIFEST=$SHARED/audio/dev/manifest.tsv
command -v qemu-x86_64 >/dev/null || { echo "eval-emulated-cpu: needs qemu-x86_64 (apt-get install qemu-user)" >&2; exit 1; }
[ -x "$BIN" ] || cargo build --release --quiet
PY=$(python3 -c 'import sys; print(sys.executable)')
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
mapfile -t WAVS < <(python3 -c "
import csv, os, sys
m = sys.argv[1]; base = os.path.dirname(os.path.abspath(m))
for r in csv.DictReader(open(m), delimiter='\t'): print(os.path.join(base, r['wav']))" "$MANIFEST")
emu() { qemu-x86_64 -cpu "$CPU" "$@" 2> >(grep -v "TCG doesn't support" >&2); }

# sherpa-onnx and zipvox side by side (one core each), then the native runs.
(
  emu "$PY" "$SHARED/tools/sherpa_decode.py" --method greedy_search "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_greedy_emu.jsonl" 2>/dev/null
  emu "$PY" scripts/sherpa_beam_reference.py beam "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_beam_emu.jsonl" 2>/dev/null
) &
emu "$BIN" transcribe --model "$MODEL" --json "${WAVS[@]}" >"$OUT/zipvox_greedy_emu.jsonl"
emu "$BIN" transcribe --model "$MODEL" --decoding modified-beam-search --json "${WAVS[@]}" >"$OUT/zipvox_beam_emu.jsonl"
wait
python3 "$SHARED/tools/sherpa_decode.py" --method greedy_search "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_greedy_native.jsonl" 2>/dev/null
python3 scripts/sherpa_beam_reference.py beam "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_beam_native.jsonl" 2>/dev/null
"$BIN" transcribe --model "$MODEL" --json "${WAVS[@]}" >"$OUT/zipvox_greedy_native.jsonl"
"$BIN" transcribe --model "$MODEL" --decoding modified-beam-search --json "${WAVS[@]}" >"$OUT/zipvox_beam_native.jsonl"

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
