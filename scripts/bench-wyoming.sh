#!/usr/bin/env bash
# The Wyoming server's numbers as README prints them: `zipvox wyoming` (release build) on a free
# loopback port, `wyoming-bench stt` on the first N dev clips (default 4) in non-streaming,
# streaming and real-time-paced streaming mode, then the finalisation latency (audio-stop sent →
# transcript received) per clip with the `wyoming` package's client paced as a microphone.
# Needs scripts/setup.sh's pip packages (wyoming 1.10.2, wyoming-bench). A benchmark: it prints,
# it asserts nothing (tests/wyoming.rs has the checks).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-4}
SHARED=${ZIPVOX_SHARED:-../shared}
MODEL=${ZIPVOX_MODEL:-$SHARED/models/zipformer2-en-gigaspeech-3.3m}
BIN=${ZIPVOX_BIN:-target/release/zipvox}
[ -x "$BIN" ] || cargo build --release --quiet
command -v wyoming-bench >/dev/null || { echo "bench-wyoming: wyoming-bench is missing (scripts/setup.sh)" >&2; exit 1; }
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" wyoming --model "$MODEL" --uri "tcp://127.0.0.1:$PORT" 2>"$WORK/server.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
# The corpus: wyoming-bench wants NAME.wav beside NAME.txt.
DEV="$SHARED/audio/dev"
mkdir -p "$WORK/corpus"
python3 - "$DEV/manifest.tsv" "$WORK/corpus" "$N" <<'PY'
import csv, os, shutil, sys
manifest, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = list(csv.DictReader(open(manifest), delimiter="\t"))[:n]
for r in rows:
    name = os.path.splitext(os.path.basename(r["wav"]))[0]
    shutil.copy(os.path.join(os.path.dirname(manifest), r["wav"]), os.path.join(out, name + ".wav"))
    open(os.path.join(out, name + ".txt"), "w").write(r.get("reference") or r.get("text") or "")
PY
for _ in $(seq 50); do python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break; sleep 0.1; done
echo "zipvox wyoming ($BIN), $MODEL, $N dev clips, $(nproc) cores, $(date -u +%F)"
for args in "--mode non_streaming" "--mode streaming" "--mode streaming --chunk-delay 0.064"; do
  echo "== wyoming-bench stt $args"
  # shellcheck disable=SC2086
  wyoming-bench stt "127.0.0.1:$PORT" --corpus "$WORK/corpus" --rounds 1 $args
done
echo "== finalisation latency, audio-stop → transcript, paced at 1024 samples per 64 ms (ms)"
python3 tests/wyoming/client.py transcribe "tcp://127.0.0.1:$PORT" "$WORK"/corpus/*.wav --delay 0.064 |
  python3 -c 'import json, sys; print(" ".join(str(round(json.loads(l)["final_latency_ms"], 1)) for l in sys.stdin))'
