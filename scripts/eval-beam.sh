#!/usr/bin/env bash
# Modified beam search and keyword spotting on ../shared/audio/dev, zipvox against sherpa-onnx
# (scripts/sherpa_beam_reference.py produces sherpa-onnx's side, same machine, same run):
#   1. beam search (4 paths): utterances equal to sherpa-onnx's (normalized as eval-dev.sh);
#   2. keyword spotting with upstream's keywords_raw.txt: detections (false alarms: the dev
#      utterances hold none of those keywords), zipvox and sherpa-onnx;
#   3. keyword spotting with a list of phrases that do occur in the dev set and test clips:
#      detections equal to sherpa-onnx's (keyword and order per file; times within 0.08 s);
#   4. beam search with hotwords (words the model gets wrong on the dev set, plain text,
#      one with its own :score): utterances equal to sherpa-onnx's.
# Exits 1 when beam-search agreement is below MIN_AGREEMENT percent (default 95).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${ZIPVOX_SHARED:-../shared}
BIN=${ZIPVOX_BIN:-target/release/zipvox}
MODEL=$SHARED/models/zipformer2-en-gigaspeech-3.3m
MANIFEST=$SHARED/audio/dev/manifest.tsv
[ -x "$BIN" ] || cargo build --release --quiet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
mapfile -t WAVS < <(python3 -c "
import csv, os, sys
m = sys.argv[1]; base = os.path.dirname(os.path.abspath(m))
for r in csv.DictReader(open(m), delimiter='\t'): print(os.path.join(base, r['wav']))" "$MANIFEST")

python3 scripts/sherpa_beam_reference.py beam "$MODEL" "${WAVS[@]}" >"$OUT/sherpa_beam.jsonl" 2>/dev/null
"$BIN" transcribe --model "$MODEL" --decoding modified-beam-search --json "${WAVS[@]}" >"$OUT/zipvox_beam.jsonl"

python3 scripts/sherpa_beam_reference.py kws "$MODEL" --keywords "$MODEL/keywords_raw.txt" "${WAVS[@]}" \
    2>/dev/null | grep '"keyword"' >"$OUT/sherpa_kws_raw.jsonl" || true
"$BIN" spot --model "$MODEL" --keywords "$MODEL/keywords_raw.txt" --json "${WAVS[@]}" >"$OUT/zipvox_kws_raw.jsonl"

cat >"$OUT/present.txt" <<'EOF'
WAIT NO LONGER
NETHERLANDS
COUNTRY
PRINTING
BLESSED SOUL
EXHIBITION
MOVABLE METAL
FELLOW AMERICANS
HUMANITY
NARRATIVE
STEW FOR DINNER
EXPERIENCE
TYPOGRAPHY
LIGHT UP
LOVELY CHILD
FOREVER
MORTALS
COMPARATIVELY MODERN
PREDECESSORS
EOF
TEST_WAVS=("$MODEL/test_wavs/0.wav" "$MODEL/test_wavs/1.wav")
python3 scripts/sherpa_beam_reference.py kws "$MODEL" --keywords "$OUT/present.txt" "${WAVS[@]}" "${TEST_WAVS[@]}" \
    2>/dev/null | grep '"keyword"' >"$OUT/sherpa_kws_present.jsonl" || true
"$BIN" spot --model "$MODEL" --keywords "$OUT/present.txt" --json "${WAVS[@]}" "${TEST_WAVS[@]}" >"$OUT/zipvox_kws_present.jsonl"

cat >"$OUT/hotwords.txt" <<'EOF'
FLOUR FATTENED
LADLED
COUNSELLED
PACED
ANTECEDENTS
WON :2.0
RENDERING
ENGRAVED
BLOCK BOOKS
GUTENBERG
FELLOW AMERICANS
YOUR COUNTRY
WOODCUTTERS
THE INVENTION
EOF
python3 scripts/sherpa_beam_reference.py beam "$MODEL" --hotwords "$OUT/hotwords.txt" "${WAVS[@]}" \
    >"$OUT/sherpa_hot.jsonl" 2>/dev/null
"$BIN" transcribe --model "$MODEL" --decoding modified-beam-search --hotwords "$OUT/hotwords.txt" --json \
    "${WAVS[@]}" >"$OUT/zipvox_hot.jsonl"

python3 - "$OUT" "${MIN_AGREEMENT:-95}" <<'EOF'
import json, os, re, sys
out, min_pct = sys.argv[1], float(sys.argv[2])
norm = lambda t: " ".join(re.sub(r"[^A-Z0-9' ]", " ", t.upper().replace("-", " ")).split())
load = lambda p: [json.loads(l) for l in open(os.path.join(out, p)) if l.strip()]
key = lambda f: os.path.basename(f)
def agreement(sherpa, zipvox, what):
    sh = {key(o["file"]): norm(o["text"]) for o in load(sherpa)}
    zv = {key(o["file"]): norm(o["text"]) for o in load(zipvox)}
    same = 0
    for f, t in sh.items():
        if zv.get(f) == t:
            same += 1
        else:
            print(f"{f}: zipvox  {zv.get(f)!r}\n{'':{len(f)}}  sherpa  {t!r}")
    pct = 100.0 * same / len(sh)
    print(f"{what}: {same}/{len(sh)} utterances equal sherpa-onnx ({pct:.1f}%)")
    return sh, pct
sh, pct = agreement("sherpa_beam.jsonl", "zipvox_beam.jsonl", "beam search (4 paths)")
agreement("sherpa_hot.jsonl", "zipvox_hot.jsonl", "beam search with hotwords")
zr, sr = load("zipvox_kws_raw.jsonl"), load("sherpa_kws_raw.jsonl")
print(f"keywords_raw.txt on {len(sh)} dev utterances: false alarms zipvox {len(zr)}, sherpa-onnx {len(sr)}")
for o in zr:
    print(f"  zipvox: {key(o['file'])} {o['keyword']} {o['start']:.2f}s")
def by_file(rows):
    d = {}
    for o in rows:
        d.setdefault(key(o["file"]), []).append((o["keyword"], o["start"], o["end"]))
    return d
zp, sp = by_file(load("zipvox_kws_present.jsonl")), by_file(load("sherpa_kws_present.jsonl"))
n_sh = sum(len(v) for v in sp.values())
agree = 0
for f in sorted(set(zp) | set(sp)):
    a, b = zp.get(f, []), sp.get(f, [])
    if [k for k, _, _ in a] == [k for k, _, _ in b] and all(
            abs(x[1] - y[1]) <= 0.08 and abs(x[2] - y[2]) <= 0.08 for x, y in zip(a, b)):
        agree += len(b)
    else:
        print(f"  {f}: zipvox {a}\n  {'':{len(f)}}  sherpa {b}")
print(f"keywords present in the audio: sherpa-onnx {n_sh} detections, zipvox "
      f"{sum(len(v) for v in zp.values())}; {agree}/{n_sh} equal")
sys.exit(0 if pct >= min_pct else 1)
EOF
