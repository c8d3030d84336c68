#!/usr/bin/env bash
# One command from a fresh clone: install build dependencies, build zipvox (release) and
# transcribe the shared test clip. Extra arguments replace the clip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SHARED=${ZIPVOX_SHARED:-../shared}
MODEL=${ZIPVOX_MODEL:-$SHARED/models/zipformer2-en-gigaspeech-3.3m}
[ $# -gt 0 ] || set -- "$MODEL/test_wavs/0.wav"
cargo build --release --quiet
exec target/release/zipvox transcribe --model "$MODEL" "$@"
