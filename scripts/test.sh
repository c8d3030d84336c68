#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, runs the Rust test suite against the
# real model in ../shared (override with ZIPVOX_SHARED), the model-manifest checks, and the
# transcript-agreement check against sherpa-onnx on the shared dev set.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ZIPVOX_SHARED=${ZIPVOX_SHARED:-$(cd .. && pwd)/shared}
[ -d "$ZIPVOX_SHARED/models" ] || { echo "test: no shared models at $ZIPVOX_SHARED (set ZIPVOX_SHARED)" >&2; exit 1; }

echo "== cargo test"
cargo test --quiet

echo "== model manifest"
bash models/test_manifest.sh

echo "== dev-set agreement with sherpa-onnx (greedy, int8)"
# The test build is optimized enough (deps at opt-level 3): no separate release build.
ZIPVOX_BIN=target/debug/zipvox bash scripts/eval-dev.sh
