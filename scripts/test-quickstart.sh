#!/usr/bin/env bash
# Tests of scripts/quickstart.sh's model lookup (run from CI; never reaches the network).
#
#   scripts/test-quickstart.sh            ZIPVOX_BIN=PATH adds the end-to-end transcription
#
# 1. ../shared present: the shared test model is used, nothing is fetched.
# 2. A plain clone (ZIPVOX_SHARED pointing nowhere), network unreachable (a proxy that refuses,
#    or a host name that does not resolve): exit 1, an error naming the URL and what to do, no
#    model files left behind.
# 3. A plain clone with a verified copy already in the cache: used as it is, offline; a copy
#    with a corrupted file is refused (fetch.sh would not overwrite it without --force).
# 4. A plain clone fetching for real, offline: a copy of the manifest whose default-model entry
#    points at a file:// tarball built from the shared files in upstream's layout (member paths
#    and hashes as in the real entry), so fetch.sh downloads, checks the archive and every
#    member, and quickstart transcribes the fetched test clip with $ZIPVOX_BIN.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED="$(cd "${ZIPVOX_SHARED:-$REPO/../shared}" && pwd)"
KWS="$SHARED/models/zipformer2-en-gigaspeech-3.3m"
NAME=sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile
QS="$REPO/scripts/quickstart.sh"
EXPECTED="AFTER EARLY NIGHTFALL THE YELLOW LAMPS WOULD LIGHT UP HERE AND THERE THE SQUALID QUARTER OF THE BRAFFLES"

# Never let a test reach the network, even by mistake; and no retries against the dead proxy.
export http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
export ZIPVOX_FETCH_RETRIES=0
unset ZIPVOX_MODEL ZIPVOX_MANIFEST ZIPVOX_MODELS_DIR ZIPVOX_QUICKSTART_MODEL ZIPVOX_FETCH_ALLOW_FILE_URLS
BIN="${ZIPVOX_BIN:-}"
unset ZIPVOX_BIN

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
show() { sed 's/^/      | /' "$1"; }
# check DESCRIPTION CMD...: on failure show $SHOW (a captured output).
check() {
    local what="$1"; shift
    if "$@"; then ok "$what"; else bad "$what"; [[ -n ${SHOW:-} && -f ${SHOW:-} ]] && show "$SHOW"; fi
    return 0
}
has() { grep -qE -- "$2" "$1"; }
RC=0
run() { local out="$1"; shift; RC=0; "$@" >"$out" 2>&1 || RC=$?; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
[[ -d $KWS ]] || { echo "FAIL - shared model $KWS not found (set ZIPVOX_SHARED)"; exit 1; }

# ---------------------------------------------------------------------------------------
echo "# 1. with ../shared"
run "$TMP/s.out" env ZIPVOX_SHARED="$SHARED" ZIPVOX_MODELS_DIR="$TMP/c0" bash "$QS" --model-only
SHOW="$TMP/s.out" check "uses the shared test model, exit 0" \
    test "$RC" = 0 -a "$(tail -n 1 "$TMP/s.out")" = "$SHARED/models/zipformer2-en-gigaspeech-3.3m"
check "fetches nothing" test ! -e "$TMP/c0"
run "$TMP/m.out" env ZIPVOX_MODEL="$TMP/no-such-dir" bash "$QS" --model-only
check "ZIPVOX_MODEL naming no directory: exit 1, one clear line" \
    test "$RC" = 1 -a "$(wc -l <"$TMP/m.out")" = 1 -a "$(grep -c 'ZIPVOX_MODEL=.*is not a directory' "$TMP/m.out")" = 1

# ---------------------------------------------------------------------------------------
echo "# 2. plain clone, network unreachable"
URL="https://github.com/k2-fsa/sherpa-onnx/releases/download/kws-models/$NAME.tar.bz2"
run "$TMP/n.out" env ZIPVOX_SHARED="$TMP/none" ZIPVOX_MODELS_DIR="$TMP/c1" bash "$QS" --model-only
SHOW="$TMP/n.out" check "refused connection: exit 1" test "$RC" = 1
check "it said it is fetching, with fetch.sh, into the cache" has "$TMP/n.out" "fetching $NAME into $TMP/c1/$NAME with models/fetch.sh"
check "the error names the URL" has "$TMP/n.out" "^quickstart: error: could not fetch $NAME from $URL into $TMP/c1/$NAME"
check "the error says what to do (network, unpack by hand, ZIPVOX_MODEL, ZIPVOX_SHARED)" \
    has "$TMP/n.out" "access to that host.*tar -xjf FILE --strip-components=1 -C $TMP/c1/$NAME.*ZIPVOX_MODEL=DIR.*ZIPVOX_SHARED=DIR"
check "fetch.sh says the server could not be reached" has "$TMP/n.out" "^fetch.sh: cannot reach the server of $URL"
check "no model file left behind" test -z "$(find "$TMP/c1" -name '*.onnx' -o -name '*.part' -o -name tokens.txt)"

# The same when the host name does not resolve (curl exit 6): a manifest whose URLs name a
# reserved, never-resolving host.
sed "s|https://github.com/k2-fsa/|https://github.invalid/k2-fsa/|g" "$REPO/models/manifest.toml" >"$TMP/dns.toml"
run "$TMP/d.out" env -u https_proxy -u HTTPS_PROXY -u http_proxy -u HTTP_PROXY \
    ZIPVOX_MANIFEST="$TMP/dns.toml" ZIPVOX_SHARED="$TMP/none" ZIPVOX_MODELS_DIR="$TMP/c2" bash "$QS" --model-only
SHOW="$TMP/d.out" check "unresolvable host: exit 1, the error names that URL" \
    test "$RC" = 1 -a "$(grep -c "^quickstart: error: could not fetch $NAME from https://github.invalid/" "$TMP/d.out")" = 1

# ---------------------------------------------------------------------------------------
echo "# 3. plain clone, model already in the cache"
# Upstream's layout: the unpatched encoder (zipvox repairs it at load) and the test clips.
D="$TMP/c3/$NAME"
mkdir -p "$D"
for f in decoder-epoch-12-avg-2-chunk-16-left-64.onnx joiner-epoch-12-avg-2-chunk-16-left-64.int8.onnx tokens.txt bpe.model test_wavs; do
    cp -r "$KWS/$f" "$D/"
done
cp "$KWS/upstream-unpatched/encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx" "$D/"
chmod -R u+w "$D"    # the shared files are read-only; the copies must be removable
run "$TMP/h.out" env ZIPVOX_SHARED="$TMP/none" ZIPVOX_MODELS_DIR="$TMP/c3" bash "$QS" --model-only
SHOW="$TMP/h.out" check "a verified cached copy is used offline (exit 0, its directory printed)" \
    test "$RC" = 0 -a "$(tail -n 1 "$TMP/h.out")" = "$D"
check "... without a download attempt" test "$(grep -c 'downloading' "$TMP/h.out")" = 0
echo "corrupted" >>"$D/tokens.txt"
run "$TMP/x.out" env ZIPVOX_SHARED="$TMP/none" ZIPVOX_MODELS_DIR="$TMP/c3" bash "$QS" --model-only
SHOW="$TMP/x.out" check "a cached copy with a corrupted file: exit 1, fetch.sh refuses to touch it" \
    test "$RC" = 1 -a "$(grep -c 'REFUSED tokens.txt' "$TMP/x.out")" = 1 -a "$(grep -c '^quickstart: error:' "$TMP/x.out")" = 1

# ---------------------------------------------------------------------------------------
echo "# 4. plain clone, fetching (file:// copy of the release tarball)"
P="$TMP/pkg/$NAME"
mkdir -p "$P"
cp -r "$D"/* "$P/"
cp "$KWS/tokens.txt" "$P/tokens.txt"
(cd "$TMP/pkg" && tar -cjf "$TMP/$NAME.tar.bz2" "$NAME")
ARCHSHA="$(sha256sum "$TMP/$NAME.tar.bz2" | cut -d' ' -f1)"
# Only the default model's archive URL, hash and size change; member paths and hashes stay.
"${PYTHON:-python3}" - "$REPO/models/manifest.toml" "$TMP/file.toml" "$NAME" "file://$TMP/$NAME.tar.bz2" "$ARCHSHA" <<'EOF'
import sys
src, dst, name, url, sha = sys.argv[1:]
text = open(src, encoding="utf-8").read()
head, sep, rest = text.partition(f'name = "{name}"\n')
body, nxt, tail = rest.partition("\n[[model]]\n")
old_url = f"https://github.com/k2-fsa/sherpa-onnx/releases/download/kws-models/{name}.tar.bz2"
assert old_url in body
lines = []
for line in body.replace(old_url, url).split("\n"):
    if line.startswith("archive_sha256 = "):
        line = f'archive_sha256 = "{sha}"'
    if line.startswith("archive_size = "):
        continue
    lines.append(line)
open(dst, "w", encoding="utf-8").write(head + sep + "\n".join(lines) + nxt + tail)
EOF
run "$TMP/f.out" env ZIPVOX_FETCH_ALLOW_FILE_URLS=1 ZIPVOX_MANIFEST="$TMP/file.toml" \
    ZIPVOX_SHARED="$TMP/none" ZIPVOX_MODELS_DIR="$TMP/c4" bash "$QS" --model-only
SHOW="$TMP/f.out" check "fetch into the cache: exit 0, the fetched directory printed" \
    test "$RC" = 0 -a "$(tail -n 1 "$TMP/f.out")" = "$TMP/c4/$NAME"
check "fetch.sh verified the archive and all 9 members (5 model files, 4 test files)" \
    test "$(grep -c '^  verified ' "$TMP/f.out")" = 10
run "$TMP/fc.out" bash "$REPO/models/fetch.sh" --check "$TMP/c4/$NAME" "$NAME"
SHOW="$TMP/fc.out" check "the fetched directory passes fetch.sh --check against the real manifest" test "$RC" = 0

if [[ -n $BIN ]]; then
    run "$TMP/t.out" env ZIPVOX_BIN="$BIN" ZIPVOX_FETCH_ALLOW_FILE_URLS=1 ZIPVOX_MANIFEST="$TMP/file.toml" ZIPVOX_SHARED="$TMP/none" \
        ZIPVOX_MODELS_DIR="$TMP/c4" bash "$QS"
    SHOW="$TMP/t.out" check "quickstart transcribes the fetched test clip: sherpa-onnx's transcript" \
        test "$RC" = 0 -a "$(grep -c "^$EXPECTED\$" "$TMP/t.out")" = 1
else
    echo "skip - end-to-end transcription (set ZIPVOX_BIN to a zipvox binary)"
fi

echo
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
