#!/usr/bin/env bash
# Low-rate input against the peer, in one run: the dev set resampled with sox to RATE (default
# 8000 Hz; `scripts/eval-8k.sh 11025` for another), decoded by sherpa-onnx (its own resampler)
# and by zipvox, then the shared evaluator prints agreement and both WERs against the human
# references. Exits 1 below 95 % agreement, like eval-dev.sh (measured 2026-12-07: 20/20 at 8,
# 11.025, 12, 22.05, 32, 44.1 and 48 kHz). scripts/test.sh runs it at 8000 and 44100.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${1:-8000}
SHARED=${ZIPVOX_SHARED:-../shared}
MODEL="$SHARED/models/zipformer2-en-gigaspeech-3.3m"
BIN=${ZIPVOX_BIN:-target/release/zipvox}
[ -x "$BIN" ] || cargo build --release --quiet
command -v sox >/dev/null || { echo "eval-8k: sox is needed (scripts/setup.sh installs it)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/wav"
DEV="$SHARED/audio/dev"
tail -n +2 "$DEV/manifest.tsv" | cut -f2 | while read -r w; do
  sox -D "$DEV/$w" -r "$RATE" "$WORK/$w"   # -D: no dither, so every run decodes the same files
done
# sherpa-onnx's output on the same resampled files replaces the manifest's 16 kHz column.
python3 "$SHARED/tools/sherpa_decode.py" "$MODEL" "$WORK"/wav/*.wav 2>/dev/null >"$WORK/sherpa.jsonl"
python3 - "$DEV/manifest.tsv" "$WORK/sherpa.jsonl" "$WORK/manifest.tsv" <<'PY'
import csv, json, os, sys
src, sherpa, dst = sys.argv[1:]
got = {os.path.basename(json.loads(l)["file"]): json.loads(l)["text"] for l in open(sherpa) if l.startswith("{")}
rows = list(csv.DictReader(open(src), delimiter="\t"))
with open(dst, "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=rows[0].keys(), delimiter="\t")
    w.writeheader()
    for r in rows:
        r["sherpa_onnx_greedy"] = got[os.path.basename(r["wav"])]
        w.writerow(r)
PY
echo "dev set at $RATE Hz (sox), sherpa-onnx $(python3 -c 'import sherpa_onnx; print(sherpa_onnx.__version__)') vs $BIN:"
python3 "$SHARED/tools/eval_transcribe.py" "$BIN" "$MODEL" "$WORK/manifest.tsv" "${@:2}"
