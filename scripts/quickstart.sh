#!/usr/bin/env bash
# One command from a fresh clone: install build dependencies, build zipvox (release) and
# transcribe a model's test clip. Extra arguments replace the clip.
#
#   scripts/quickstart.sh [CLIP.wav...]   find or fetch the model, build, transcribe
#   scripts/quickstart.sh --model-only    only find or fetch the model; print its directory
#
# Which model: $ZIPVOX_MODEL if set (a sherpa-onnx model directory: nothing is fetched); else
# the shared test model, $ZIPVOX_SHARED/models/zipformer2-en-gigaspeech-3.3m (ZIPVOX_SHARED
# defaults to ../shared); else, on a plain clone, the default model of models/manifest.toml
# ($ZIPVOX_QUICKSTART_MODEL overrides the name), downloaded once with models/fetch.sh, which
# checks every file's sha256, into $ZIPVOX_MODELS_DIR/NAME (default ~/.cache/zipvox/models/NAME;
# outside the checkout, so nothing lands in git). A copy already there is re-verified offline.
#
# $ZIPVOX_BIN: use this zipvox binary instead of building one (skips setup.sh and cargo).
# Exit status: that of zipvox; 1 when no model could be found or fetched (the message says
# which URL failed and what to do).
set -euo pipefail
cd "$(dirname "$0")/.."

DEFAULT_MODEL_NAME=sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile
SHARED=${ZIPVOX_SHARED:-../shared}

say() { echo "quickstart: $*" >&2; }
die() { say "$@"; exit 1; }

model_only=0
if [ "${1:-}" = --model-only ]; then
  [ $# -eq 1 ] || die "--model-only takes no other arguments"
  model_only=1
  shift
fi

# find_model: sets MODEL to a directory zipvox can load, fetching it if need be.
find_model() {
  if [ -n "${ZIPVOX_MODEL:-}" ]; then
    [ -d "$ZIPVOX_MODEL" ] || die "ZIPVOX_MODEL=$ZIPVOX_MODEL is not a directory: point it at a sherpa-onnx model directory, or unset it to use the shared or downloaded test model"
    MODEL=$ZIPVOX_MODEL
    return
  fi
  if [ -d "$SHARED/models/zipformer2-en-gigaspeech-3.3m" ]; then
    MODEL=$SHARED/models/zipformer2-en-gigaspeech-3.3m
    return
  fi

  local name=${ZIPVOX_QUICKSTART_MODEL:-$DEFAULT_MODEL_NAME}
  local dest=${ZIPVOX_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zipvox/models}/$name
  # A copy fetched by an earlier run: use it if every file still matches the manifest.
  if [ -d "$dest" ] && bash models/fetch.sh --check "$dest" "$name" >/dev/null 2>&1; then
    say "using $dest (verified against models/manifest.toml)"
    MODEL=$dest
    return
  fi
  say "no shared test model at $SHARED/models (set ZIPVOX_SHARED if it is elsewhere);" \
    "fetching $name into $dest with models/fetch.sh (every file sha256-checked)"
  local rc=0
  bash models/fetch.sh "$name" "$dest" >&2 || rc=$?
  if [ $rc -ne 0 ]; then
    # Name the URL: what the user must reach, or download by other means.
    local plan url more
    plan=$(${PYTHON:-python3} models/manifest.py plan "$name" 2>/dev/null) || true
    url=$(printf '%s\n' "$plan" | awk -F'\t' '$1 == "FILE" { print $3; exit }')
    more=$(printf '%s\n' "$plan" | awk -F'\t' '$1 == "FILE" { print $3 }' | sort -u | wc -l)
    [ "$more" -gt 1 ] && url="$url (and $((more - 1)) more: models/fetch.sh --info $name)"
    say "error: could not fetch $name from ${url:-the URLs in models/manifest.toml}" \
      "into $dest (fetch.sh exit $rc, above). Give this machine access to that host and rerun;" \
      "or download it elsewhere and unpack it there ('tar -xjf FILE --strip-components=1 -C" \
      "$dest'), then rerun, which verifies it; or set ZIPVOX_MODEL=DIR (a sherpa-onnx model" \
      "directory) or ZIPVOX_SHARED=DIR (the shared test data)"
    exit 1
  fi
  MODEL=$dest
}

find_model
if [ $model_only -eq 1 ]; then
  echo "$MODEL"
  exit 0
fi

if [ $# -eq 0 ]; then
  [ -f "$MODEL/test_wavs/0.wav" ] || die "$MODEL has no test_wavs/0.wav: give a 16 kHz WAV file as argument"
  set -- "$MODEL/test_wavs/0.wav"
fi
if [ -n "${ZIPVOX_BIN:-}" ]; then
  [ -x "$ZIPVOX_BIN" ] || die "ZIPVOX_BIN=$ZIPVOX_BIN is not an executable: unset it to build zipvox here"
  BIN=$ZIPVOX_BIN
else
  bash scripts/setup.sh
  cargo build --release --quiet
  BIN=target/release/zipvox
fi
exec "$BIN" transcribe --model "$MODEL" "$@"
