#!/usr/bin/env bash
# The test command (README, CI): installs what is missing, runs the Rust test suite against the
# real model in ../shared (override with ZIPVOX_SHARED), the model-manifest checks, and the
# transcript-agreement checks against sherpa-onnx on the shared dev set (greedy; beam search,
# hotwords and keyword spotting).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ZIPVOX_SHARED=${ZIPVOX_SHARED:-$(cd .. && pwd)/shared}
[ -d "$ZIPVOX_SHARED/models" ] || { echo "test: no shared models at $ZIPVOX_SHARED (set ZIPVOX_SHARED)" >&2; exit 1; }

echo "== cargo test"
cargo test --quiet --no-fail-fast

echo "== model manifest"
bash models/test_manifest.sh

echo "== quickstart on a plain clone (model lookup, fetch and its errors; offline)"
ZIPVOX_BIN=target/debug/zipvox bash scripts/test-quickstart.sh

echo "== dev-set agreement with sherpa-onnx (greedy, int8)"
# The test build is optimized enough (deps at opt-level 3): no separate release build.
ZIPVOX_BIN=target/debug/zipvox bash scripts/eval-dev.sh

echo "== dev-set agreement with sherpa-onnx at 8 kHz and 44.1 kHz (resampled input, greedy)"
# The resampler computes sherpa-onnx's filter weights bit for bit (audio/linear_resample.rs);
# measured 20/20 at every rate tried. The shared evaluator exits 1 below 95% agreement.
for rate in 8000 44100; do ZIPVOX_BIN=target/debug/zipvox bash scripts/eval-8k.sh "$rate"; done

echo "== dev-set agreement with sherpa-onnx (modified beam search, hotwords, keyword spotting)"
# Beam search keeps near-tied hypotheses alive, so its agreement rests on bit-identical features
# and model outputs: zipvox's fbank is bit-identical to sherpa-onnx's, and its model follows
# onnxruntime's summation order for the kernels onnxruntime picks on x86-64 with AVX-512 (the
# target is 95% there; measured 20/20); elsewhere onnxruntime's own order differs and the check
# only guards against regressions.
if grep -qw avx512f /proc/cpuinfo; then MIN=95; else MIN=85; fi
ZIPVOX_BIN=target/debug/zipvox MIN_AGREEMENT=$MIN bash scripts/eval-beam.sh

# ARM: aarch64 tests under qemu as Pi 4 (cortex-a72) and Pi 5 (cortex-a76), transcripts identical
# to this build's, the arm64 .deb and its contents, the armv7 build. ZIPVOX_CROSS=0 skips it.
if [ "${ZIPVOX_CROSS:-1}" != 0 ]; then
  echo "== ARM cross builds and qemu tests"
  bash scripts/cross-test.sh
fi
