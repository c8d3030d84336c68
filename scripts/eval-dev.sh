#!/usr/bin/env bash
# Transcribes ../shared/audio/dev with zipvox and prints agreement with sherpa-onnx's greedy
# output and both WERs (the shared evaluator; exits 1 below 95% agreement).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${ZIPVOX_SHARED:-../shared}
BIN=${ZIPVOX_BIN:-target/release/zipvox}
[ -x "$BIN" ] || cargo build --release --quiet
python3 "$SHARED/tools/eval_transcribe.py" "$BIN" "$SHARED/models/zipformer2-en-gigaspeech-3.3m" "$SHARED/audio/dev/manifest.tsv" "$@"
