#!/usr/bin/env bash
# Transcribes ../shared/audio/dev with zipvox and prints agreement with sherpa-onnx's greedy
# output and both WERs (the shared evaluator; exits 1 below 95% agreement).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${ZIPVOX_SHARED:-../shared}
BIN=${ZIPVOX_BIN:-target/release/zipvox}
[ -x "$BIN" ] || cargo build --release --quiet
python3 "$SHARED/tools/eval_transcribe.py" "$BIN" "$SHARED/models/zipformer2-en-gigaspeech-3.3m" "$SHARED/audio/dev/manifest.tsv" "$@"

# The Chinese pinyin model's 7 clips: zipvox's greedy transcripts against sherpa-onnx's, run
# here (../shared/tools/sherpa_decode.py), compared exactly (pinyin joined without spaces).
ZH=$SHARED/models/kws-zipformer-zh-wenetspeech-3.3m
if [ -d "$ZH" ]; then
  ZH_WAVS=("$ZH"/test_wavs/*.wav)
  python3 - "$BIN" "$ZH" "$SHARED/tools/sherpa_decode.py" "${ZH_WAVS[@]}" <<'PY'
import json, subprocess, sys
binary, model, tool, wavs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
ours = subprocess.run([binary, "transcribe", "--model", model, "--json", *wavs], capture_output=True, text=True, check=True)
peer = subprocess.run([sys.executable, tool, model, *wavs], capture_output=True, text=True, check=True)
got = {o["file"]: o["text"] for o in map(json.loads, ours.stdout.splitlines()) if "text" in o}
ref = {o["file"]: o["text"] for o in map(json.loads, peer.stdout.splitlines())}
same = sum(got.get(w) == ref[w] for w in wavs)
for w in wavs:
    if got.get(w) != ref[w]:
        print(f"{w}: zipvox {got.get(w)!r}\n  sherpa {ref[w]!r}")
print(f"kws-zipformer-zh-wenetspeech-3.3m (ppinyin) greedy: {same}/{len(wavs)} equal to sherpa-onnx")
sys.exit(0 if same == len(wavs) else 1)
PY
fi
