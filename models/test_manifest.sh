#!/usr/bin/env bash
# Offline tests for models/manifest.toml and models/fetch.sh (run from CI; no network).
#
#   models/test_manifest.sh
#
# 1. The manifest's structure: every model has a tokens type, licence, upstream page, archive URL
#    and says whether it was run here; every file entry has a 64-hex sha256, an https URL, a
#    source, unique paths and roles; model names are unique; models/README.md names every model;
#    tomllib and manifest.py's fallback parser read it identically.
# 2. `fetch.sh --check` against the shared 3.3M model ($ZIPVOX_SHARED/models/
#    zipformer2-en-gigaspeech-3.3m, ZIPVOX_SHARED defaulting to <repo>/../shared): bpe.model,
#    tokens.txt, decoder and joiner match; the locally patched encoder is reported as a
#    mismatch with exit status 1; a directory holding upstream's unpatched encoder passes
#    with status 0; missing files and usage errors give 1 and 2. The same against the shared
#    Chinese model ($ZIPVOX_SHARED/models/kws-zipformer-zh-wenetspeech-3.3m), which matches its
#    -mobile entry file for file.
# 3. The download path, offline: fetch.sh against temporary manifests whose URLs are file://
#    copies of the shared files (per-file and tarball models, good and bad hashes, --force).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${ZIPVOX_SHARED:-$REPO/../shared}"
KWS="$SHARED/models/zipformer2-en-gigaspeech-3.3m"
ZHKWS="$SHARED/models/kws-zipformer-zh-wenetspeech-3.3m"
ZHMOBILE="sherpa-onnx-kws-zipformer-wenetspeech-3.3M-2024-01-01-mobile"
FETCH="$HERE/fetch.sh"
MOBILE="sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01-mobile"
PY="${PYTHON:-python3}"

# Never let a test reach the network, even by mistake.
export http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9
unset ZIPVOX_MANIFEST ZIPVOX_MODELS_DIR ZIPVOX_FETCH_ALLOW_FILE_URLS ZIPVOX_TOML_PARSER ZIPVOX_FETCH_RETRIES

PASS=0 FAIL=0
ok() { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad() { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
# check DESCRIPTION CMD...: record CMD's success; on failure show $SHOW (a captured output).
check() {
    local what="$1"; shift
    if "$@"; then ok "$what"; else bad "$what"; [[ -n ${SHOW:-} && -f ${SHOW:-} ]] && show "$SHOW"; fi
    return 0
}

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# run OUTFILE CMD...: run a command, keep its combined output, return its exit status in RC.
RC=0
run() { local out="$1"; shift; RC=0; "$@" >"$out" 2>&1 || RC=$?; }
has() { grep -qE -- "$2" "$1"; }
show() { sed 's/^/      | /' "$1"; }

for t in "$PY" sha256sum bash; do
    command -v "$t" >/dev/null || { echo "FAIL - required tool $t missing"; exit 1; }
done

# ---------------------------------------------------------------------------------------
echo "# 1. manifest structure"

run "$TMP/validate.out" "$PY" "$HERE/manifest.py" validate
SHOW="$TMP/validate.out" check "manifest.py validate accepts manifest.toml" test "$RC" = 0

# An independent structural check (does not reuse manifest.py's validator).
run "$TMP/struct.out" "$PY" - "$HERE/manifest.toml" "$HERE" "$HERE/README.md" <<'EOF'
import re, sys
path, here, readme = sys.argv[1], sys.argv[2], open(sys.argv[3], encoding="utf-8").read()
try:
    import tomllib
    doc = tomllib.loads(open(path, encoding="utf-8").read())
except ModuleNotFoundError:          # Python < 3.11: use the fallback parser
    sys.path.insert(0, here)
    import manifest
    doc = manifest._mini_toml(open(path, encoding="utf-8").read())
errors = []
models = doc.get("model", [])
if len(models) < 3:
    errors.append(f"expected several models, found {len(models)}")
names = [m.get("name") for m in models]
if len(set(names)) != len(names):
    errors.append(f"duplicate model names: {names}")
hexre = re.compile(r"^[0-9a-f]{64}$")
nfiles = 0
for m in models:
    n = m.get("name")
    if m.get("model_type") not in ("zipformer", "zipformer2"):
        errors.append(f"{n}: bad model_type {m.get('model_type')!r}")
    if m.get("tokens_type") not in ("bpe", "cjkchar", "cjkchar+bpe", "ppinyin", "fpinyin", "phone+ppinyin"):
        errors.append(f"{n}: bad tokens_type {m.get('tokens_type')!r}")
    for k in ("language", "description", "license", "upstream", "archive_url"):
        if not m.get(k):
            errors.append(f"{n}: missing {k}")
    if m.get("run_here") not in (True, False):
        errors.append(f"{n}: run_here must be true or false")
    if m.get("run_here") and not m.get("tested"):
        errors.append(f"{n}: run here, but `tested` does not say how")
    if f"`{n}`" not in readme:
        errors.append(f"{n}: not named in models/README.md")
    for k in ("archive_url", "upstream"):
        if k in m and not m[k].startswith("https://"):
            errors.append(f"{n}: {k} not https")
    if "archive_sha256" in m and not hexre.match(m["archive_sha256"]):
        errors.append(f"{n}: archive_sha256 not 64 hex")
    files = m.get("file", [])
    if not files:
        errors.append(f"{n}: no files")
    paths = [f.get("path") for f in files]
    if len(set(paths)) != len(paths):
        errors.append(f"{n}: duplicate file paths {paths}")
    roles = [f.get("role") for f in files if f.get("role") and f.get("role") != "test"]
    if len(set(roles)) != len(roles):
        errors.append(f"{n}: duplicate roles {roles}")
    for need in ("encoder", "decoder", "joiner", "tokens"):
        if need not in roles:
            errors.append(f"{n}: no {need} file")
    for f in files:
        nfiles += 1
        p = f.get("path", "")
        if not p or p.startswith("/") or ".." in p.split("/"):
            errors.append(f"{n}: unsafe path {p!r}")
        if not isinstance(f.get("sha256"), str) or not hexre.match(f["sha256"]):
            errors.append(f"{n}/{p}: sha256 {f.get('sha256')!r} is not 64 lowercase hex digits")
        u = f.get("url", "")
        if not isinstance(u, str) or not u.startswith("https://") or len(u) <= 8 or any(c.isspace() for c in u):
            errors.append(f"{n}/{p}: url {u!r} is not https")
        if not f.get("source"):
            errors.append(f"{n}/{p}: no source")
        if "size" in f and not (isinstance(f["size"], int) and f["size"] > 0):
            errors.append(f"{n}/{p}: bad size")
        if f.get("member") and f.get("url") != m.get("archive_url"):
            errors.append(f"{n}/{p}: member without archive url")
        if p.endswith(".onnx") and f.get("role") in ("encoder", "joiner") and not p.endswith(".int8.onnx"):
            errors.append(f"{n}/{p}: encoder/joiner should be the int8 file")
        if f.get("role") == "decoder" and p.endswith(".int8.onnx") and not f.get("note"):
            errors.append(f"{n}/{p}: decoder should be the fp32 file (or a note must say why not)")
        if f.get("role") not in (None, "encoder", "decoder", "joiner", "tokens", "bpe", "lexicon", "test"):
            errors.append(f"{n}/{p}: unknown role {f.get('role')!r}")
for e in errors:
    print(e)
print(f"{len(models)} models, {nfiles} files checked")
sys.exit(1 if errors else 0)
EOF
SHOW="$TMP/struct.out" check "every file: 64-hex sha256, https url, source; unique names/paths/roles" test "$RC" = 0

run "$TMP/dump1.json" "$PY" "$HERE/manifest.py" dump
RC1=$RC
RC=0; ZIPVOX_TOML_PARSER=mini "$PY" "$HERE/manifest.py" dump >"$TMP/dump2.json" 2>&1 || RC=$?
check "fallback TOML parser reads the manifest exactly like tomllib" \
    test "$RC1" = 0 -a "$RC" = 0 -a -s "$TMP/dump1.json"
if cmp -s "$TMP/dump1.json" "$TMP/dump2.json"; then
    ok "fallback parser output identical"
else
    bad "fallback parser output identical"; diff "$TMP/dump1.json" "$TMP/dump2.json" | head -20
fi

run "$TMP/list.out" "$FETCH" --list
check "fetch.sh --list exits 0 and lists $MOBILE" test "$RC" = 0
check "--list includes sherpa-onnx-streaming-zipformer-en-2023-06-26" has "$TMP/list.out" '^sherpa-onnx-streaming-zipformer-en-2023-06-26$'
check "--list names are unique" test "$(sort "$TMP/list.out" | uniq -d | wc -l)" = 0

# A manifest with a non-https URL must be rejected.
sed 's|https://huggingface.co/csukuangfj/sherpa-onnx-streaming-zipformer-en-2023-06-26/resolve/672fbf1b30579d6585301139bb363f42a0ad4a24/tokens.txt|http://example.invalid/tokens.txt|' \
    "$HERE/manifest.toml" >"$TMP/http.toml"
RC=0; ZIPVOX_MANIFEST="$TMP/http.toml" "$PY" "$HERE/manifest.py" validate >"$TMP/http.out" 2>&1 || RC=$?
check "validator rejects a plain-http URL" test "$RC" = 1
# ... and a bad hash.
sed 's|sha256 = "49e3c2646595fd907228b3c6787069658f67b17377c60aeb8619c4551b2316fb"|sha256 = "49E3C264"|' \
    "$HERE/manifest.toml" >"$TMP/hash.toml"
RC=0; ZIPVOX_MANIFEST="$TMP/hash.toml" "$PY" "$HERE/manifest.py" validate >"$TMP/hash.out" 2>&1 || RC=$?
check "validator rejects a malformed sha256" test "$RC" = 1
RC=0; ZIPVOX_MANIFEST="$TMP/hash.toml" "$FETCH" --check "$TMP" "$MOBILE" >"$TMP/hash2.out" 2>&1 || RC=$?
check "fetch.sh refuses an invalid manifest with status 2" test "$RC" = 2
# ... and a model without a modeling unit, or with one sherpa-onnx does not have, or marked as
# run here without saying how.
sed '0,/^tokens_type = "ppinyin"$/{/^tokens_type = "ppinyin"$/d}' "$HERE/manifest.toml" >"$TMP/nott.toml"
RC=0; ZIPVOX_MANIFEST="$TMP/nott.toml" "$PY" "$HERE/manifest.py" validate >"$TMP/nott.out" 2>&1 || RC=$?
check "validator rejects a model without tokens_type, naming it" \
    test "$RC" = 1 -a "$(grep -c 'wenetspeech-3.3M-2024-01-01-mobile: tokens_type must be one of' "$TMP/nott.out")" = 1
sed 's/^tokens_type = "cjkchar"$/tokens_type = "cjkchars"/' "$HERE/manifest.toml" >"$TMP/badtt.toml"
RC=0; ZIPVOX_MANIFEST="$TMP/badtt.toml" "$PY" "$HERE/manifest.py" validate >"$TMP/badtt.out" 2>&1 || RC=$?
check "validator rejects an unknown tokens_type" test "$RC" = 1
sed '/^tested = /d' "$HERE/manifest.toml" >"$TMP/notested.toml"
RC=0; ZIPVOX_MANIFEST="$TMP/notested.toml" "$PY" "$HERE/manifest.py" validate >"$TMP/notested.out" 2>&1 || RC=$?
check "validator rejects run_here = true without tested" \
    test "$RC" = 1 -a "$(grep -c 'run_here = true needs `tested`' "$TMP/notested.out")" = 2

# ---------------------------------------------------------------------------------------
echo "# 2. fetch.sh --check against the shared 3.3M model ($KWS)"

if [[ ! -d $KWS ]]; then
    bad "shared model directory $KWS not found (set ZIPVOX_SHARED)"
else
    # The manifest's hashes for the 3.3M model agree with the shared directory's SHA256SUMS.
    run "$TMP/sums.out" "$PY" - "$HERE/manifest.toml" "$KWS/SHA256SUMS" "$HERE" <<'EOF'
import sys
sys.path.insert(0, sys.argv[3])
import manifest
doc = manifest.load(sys.argv[1])
sums = {}
for line in open(sys.argv[2]):
    h, p = line.split()
    sums[p.removeprefix("./")] = h
bad = 0
for m in doc["model"]:
    if not m["name"].startswith("sherpa-onnx-kws-zipformer-gigaspeech-3.3M"):
        continue
    for f in m["file"]:
        key = f["path"]
        if m["name"].endswith("-mobile") and f.get("role") == "encoder":
            key = "upstream-unpatched/" + f["path"]     # the shared top-level encoder is patched
        if f.get("role") == "encoder" and not m["name"].endswith("-mobile"):
            continue                                    # a different upstream file, not in the shared dir
        if sums.get(key) != f["sha256"]:
            print(f"{m['name']}: {f['path']}: manifest {f['sha256']} vs SHA256SUMS {sums.get(key)}")
            bad += 1
sys.exit(1 if bad else 0)
EOF
    SHOW="$TMP/sums.out" check "3.3M manifest hashes agree with the shared SHA256SUMS (encoder = upstream-unpatched)" \
        test "$RC" = 0

    run "$TMP/check.out" "$FETCH" --check "$KWS" "$MOBILE"
    SHOW="$TMP/check.out" check "--check on the shared dir exits 1 (its encoder is patched)" test "$RC" = 1
    for f in bpe.model tokens.txt decoder-epoch-12-avg-2-chunk-16-left-64.onnx joiner-epoch-12-avg-2-chunk-16-left-64.int8.onnx; do
        check "--check: $f matches" has "$TMP/check.out" "^  OK +$f\$"
    done
    check "--check: patched encoder reported as MISMATCH with both hashes" \
        has "$TMP/check.out" '^  MISMATCH +encoder-epoch-12-avg-2-chunk-16-left-64\.int8\.onnx: expected sha256 7d5a25fb[0-9a-f]+ \(4000908 bytes\), found cdd265ce[0-9a-f]+'
    check "--check: summary 8 ok (model files and test clips), 1 mismatched, 0 missing" has "$TMP/check.out" '^8 ok, 1 mismatched, 0 missing$'

    # Upstream's unpatched encoder in place of the patched one: everything verifies.
    mkdir -p "$TMP/pristine"
    for f in bpe.model tokens.txt decoder-epoch-12-avg-2-chunk-16-left-64.onnx joiner-epoch-12-avg-2-chunk-16-left-64.int8.onnx; do
        ln -s "$KWS/$f" "$TMP/pristine/$f"
    done
    ln -s "$KWS/upstream-unpatched/encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx" "$TMP/pristine/"
    ln -s "$KWS/test_wavs" "$TMP/pristine/test_wavs"
    run "$TMP/pristine.out" "$FETCH" --check "$TMP/pristine" "$MOBILE"
    SHOW="$TMP/pristine.out" check "--check with upstream's encoder exits 0" test "$RC" = 0
    check "--check with upstream's encoder: 9 ok" has "$TMP/pristine.out" '^9 ok, 0 mismatched, 0 missing$'

    # The first-release (non-mobile) entry shares every file except the encoder.
    run "$TMP/nonmobile.out" "$FETCH" --check "$TMP/pristine" sherpa-onnx-kws-zipformer-gigaspeech-3.3M-2024-01-01
    check "non-mobile entry: only the encoder differs (exit 1, 4 ok)" \
        test "$RC" = 1 -a "$(grep -c '^  OK ' "$TMP/nonmobile.out")" = 4

    # Missing file.
    rm "$TMP/pristine/tokens.txt"
    run "$TMP/missing.out" "$FETCH" --check "$TMP/pristine" "$MOBILE"
    check "--check with tokens.txt missing exits 1 and says MISSING" \
        test "$RC" = 1 -a "$(grep -cE '^  MISSING +tokens\.txt$' "$TMP/missing.out")" = 1

    # An extra int8 encoder that sorts first would be what zipvox loads: a NOTE, not a failure.
    ln -s "$KWS/tokens.txt" "$TMP/pristine/tokens.txt"
    cp "$KWS/encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx" "$TMP/pristine/encoder-a.int8.onnx"
    run "$TMP/extra.out" "$FETCH" --check "$TMP/pristine" "$MOBILE"
    check "--check notes an extra encoder zipvox would pick, still exit 0" \
        test "$RC" = 0 -a "$(grep -c 'zipvox would load encoder-a.int8.onnx as the encoder' "$TMP/extra.out")" = 1
    rm "$TMP/pristine/encoder-a.int8.onnx"
fi

# ---------------------------------------------------------------------------------------
echo "# 2b. fetch.sh --check against the shared Chinese model ($ZHKWS)"

if [[ ! -d $ZHKWS ]]; then
    bad "shared model directory $ZHKWS not found (set ZIPVOX_SHARED)"
else
    # Its SHA256SUMS and the manifest's entries for the two WenetSpeech models agree.
    run "$TMP/zhsums.out" "$PY" - "$HERE/manifest.toml" "$ZHKWS/SHA256SUMS" "$HERE" <<'EOF'
import sys
sys.path.insert(0, sys.argv[3])
import manifest
doc = manifest.load(sys.argv[1])
sums = {}
for line in open(sys.argv[2], encoding="utf-8"):
    h, p = line.split()
    sums[p.removeprefix("./")] = h
bad = 0
for m in doc["model"]:
    if not m["name"].startswith("sherpa-onnx-kws-zipformer-wenetspeech-3.3M"):
        continue
    for f in m["file"]:
        if f.get("role") == "encoder" and not m["name"].endswith("-mobile"):
            continue                                    # the first release's encoder is another file
        if sums.get(f["path"]) != f["sha256"]:
            print(f"{m['name']}: {f['path']}: manifest {f['sha256']} vs SHA256SUMS {sums.get(f['path'])}")
            bad += 1
sys.exit(1 if bad else 0)
EOF
    SHOW="$TMP/zhsums.out" check "WenetSpeech manifest hashes agree with the shared Chinese SHA256SUMS" test "$RC" = 0

    run "$TMP/zhcheck.out" "$FETCH" --check "$ZHKWS" "$ZHMOBILE"
    SHOW="$TMP/zhcheck.out" check "--check of the shared Chinese model against $ZHMOBILE exits 0" test "$RC" = 0
    check "--check (Chinese): 12 ok (4 model files, 8 test files)" has "$TMP/zhcheck.out" '^12 ok, 0 mismatched, 0 missing$'
    run "$TMP/zhfirst.out" "$FETCH" --check "$ZHKWS" sherpa-onnx-kws-zipformer-wenetspeech-3.3M-2024-01-01
    check "--check (Chinese) against the first release: only the encoder differs" \
        test "$RC" = 1 -a "$(grep -c '^  OK ' "$TMP/zhfirst.out")" = 3 -a "$(grep -c '^  MISMATCH  encoder-' "$TMP/zhfirst.out")" = 1
fi

# Usage errors: status 2.
run "$TMP/u1.out" "$FETCH" --check "$TMP/does-not-exist" "$MOBILE"
check "--check on a missing directory exits 2" test "$RC" = 2
run "$TMP/u2.out" "$FETCH" --check "$TMP" no-such-model
check "--check with an unknown model exits 2 and names the known ones" \
    test "$RC" = 2 -a "$(grep -c "$MOBILE" "$TMP/u2.out")" -ge 1
run "$TMP/u3.out" "$FETCH"
check "fetch.sh without arguments exits 2" test "$RC" = 2
run "$TMP/u4.out" "$FETCH" --check "$TMP"
check "--check with one argument exits 2" test "$RC" = 2
run "$TMP/u5.out" "$FETCH" --bogus x
check "unknown option exits 2" test "$RC" = 2
run "$TMP/u6.out" "$FETCH" --help
check "--help exits 0" test "$RC" = 0

# ---------------------------------------------------------------------------------------
echo "# 3. downloads, offline (file:// URLs)"

if [[ ! -d $KWS ]] || ! command -v curl >/dev/null; then
    bad "download tests need curl and the shared model directory"
else
    SRC="$TMP/src"
    mkdir -p "$SRC/pkg/kws-test"
    ENC="encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx"
    DEC="decoder-epoch-12-avg-2-chunk-16-left-64.onnx"
    JOI="joiner-epoch-12-avg-2-chunk-16-left-64.int8.onnx"
    cp "$KWS/upstream-unpatched/$ENC" "$KWS/$DEC" "$KWS/$JOI" "$KWS/tokens.txt" "$KWS/bpe.model" "$SRC/"
    cp "$SRC/$ENC" "$SRC/$DEC" "$SRC/$JOI" "$SRC/tokens.txt" "$SRC/bpe.model" "$SRC/pkg/kws-test/"
    mkdir -p "$SRC/test_wavs" "$SRC/pkg/kws-test/test_wavs"
    cp "$KWS/test_wavs/0.wav" "$SRC/test_wavs/"; cp "$KWS/test_wavs/0.wav" "$SRC/pkg/kws-test/test_wavs/"
    HAVE_TAR=0
    if command -v tar >/dev/null && command -v bzip2 >/dev/null; then
        (cd "$SRC/pkg" && tar -cjf "$SRC/kws-test.tar.bz2" kws-test) && HAVE_TAR=1
    fi
    sha() { sha256sum "$1" | cut -d' ' -f1; }
    size() { stat -c %s "$1"; }

    # write_manifest FILE ENCODER_SHA ARCHIVE_SHA
    write_manifest() {
        local out="$1" encsha="$2" archsha="$3" f role
        {
            echo '[[model]]'
            echo 'name = "files-model"'
            echo 'model_type = "zipformer2"'
            echo 'language = "en"'
            echo 'description = "test: per-file downloads"'
            echo 'tokens_type = "bpe"'
            echo 'license = "test"'
            echo 'upstream = "https://example.invalid/files-model"'
            echo "archive_url = \"file://$SRC/kws-test.tar.bz2\""
            echo 'run_here = false'
            for f in "$ENC:encoder" "$DEC:decoder" "$JOI:joiner" "tokens.txt:tokens" "bpe.model:bpe"; do
                role="${f##*:}"; f="${f%%:*}"
                echo '[[model.file]]'
                echo "path = \"$f\""
                echo "role = \"$role\""
                echo "url = \"file://$SRC/$f\""
                if [[ $role == encoder ]]; then echo "sha256 = \"$encsha\""; else echo "sha256 = \"$(sha "$SRC/$f")\""; fi
                echo "size = $(size "$SRC/$f")"
                echo 'source = "test"'
            done
            echo '[[model]]'
            echo 'name = "archive-model"'
            echo 'model_type = "zipformer2"'
            echo 'language = "en"'
            echo 'description = "test: tarball members"'
            echo 'tokens_type = "bpe"'
            echo 'license = "test"'
            echo 'upstream = "https://example.invalid/archive-model"'
            echo 'run_here = false'
            echo "archive_url = \"file://$SRC/kws-test.tar.bz2\""
            echo "archive_sha256 = \"$archsha\""
            echo 'archive_source = "test"'
            for f in "$ENC:encoder" "$DEC:decoder" "$JOI:joiner" "tokens.txt:tokens" "test_wavs/0.wav:test"; do
                role="${f##*:}"; f="${f%%:*}"
                echo '[[model.file]]'
                echo "path = \"$f\""
                echo "role = \"$role\""
                echo "url = \"file://$SRC/kws-test.tar.bz2\""
                echo "member = \"kws-test/$f\""
                echo "sha256 = \"$(sha "$SRC/$f")\""
                echo 'source = "test"'
            done
        } >"$out"
    }
    GOODENC="$(sha "$SRC/$ENC")"
    GOODARCH="$(sha "$SRC/kws-test.tar.bz2" 2>/dev/null || echo 0000000000000000000000000000000000000000000000000000000000000000)"
    WRONG="0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    write_manifest "$TMP/good.toml" "$GOODENC" "$GOODARCH"
    write_manifest "$TMP/badenc.toml" "$WRONG" "$GOODARCH"
    write_manifest "$TMP/badarch.toml" "$GOODENC" "$WRONG"
    export ZIPVOX_FETCH_ALLOW_FILE_URLS=1

    # file:// URLs are refused unless the test switch is set.
    RC=0; env -u ZIPVOX_FETCH_ALLOW_FILE_URLS ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" files-model "$TMP/never" >"$TMP/nofile.out" 2>&1 || RC=$?
    check "file:// URLs are rejected outside tests (exit 2, nothing created)" test "$RC" = 2 -a ! -e "$TMP/never/tokens.txt"

    # Per-file download, all good.
    RC=0; ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" files-model "$TMP/d1" >"$TMP/d1.out" 2>&1 || RC=$?
    SHOW="$TMP/d1.out" check "fetch (per-file) exits 0" test "$RC" = 0
    check "fetch (per-file) prints the zipvox transcribe line" has "$TMP/d1.out" "zipvox transcribe --model $TMP/d1"
    check "fetch (per-file) wrote a SHA256SUMS that sha256sum -c accepts" \
        bash -c "cd '$TMP/d1' && sha256sum -c --quiet SHA256SUMS"
    check "fetch leaves no partial files" test ! -e "$TMP/d1/.zipvox-partial"
    RC=0; ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" --check "$TMP/d1" files-model >"$TMP/d1c.out" 2>&1 || RC=$?
    check "--check of the fetched directory exits 0" test "$RC" = 0

    # Second run: nothing to download.
    RC=0; ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" files-model "$TMP/d1" >"$TMP/d1b.out" 2>&1 || RC=$?
    check "re-fetch into a complete directory exits 0 without downloading" \
        test "$RC" = 0 -a "$(grep -c '^  present ' "$TMP/d1b.out")" = 5 -a "$(grep -c 'downloading' "$TMP/d1b.out")" = 0

    # Resume: a truncated partial download is completed.
    mkdir -p "$TMP/d5/.zipvox-partial"
    head -c 1000000 "$SRC/$ENC" >"$TMP/d5/.zipvox-partial/$ENC.part"
    RC=0; ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" files-model "$TMP/d5" >"$TMP/d5.out" 2>&1 || RC=$?
    check "a partial download is resumed and verified" test "$RC" = 0 -a "$(sha "$TMP/d5/$ENC")" = "$GOODENC"

    # A download that does not match is refused and deleted.
    RC=0; ZIPVOX_MANIFEST="$TMP/badenc.toml" "$FETCH" files-model "$TMP/d2" >"$TMP/d2.out" 2>&1 || RC=$?
    SHOW="$TMP/d2.out" check "fetch with a wrong encoder hash exits 1" test "$RC" = 1
    check "the mismatching download is deleted (no encoder, no .part)" \
        test ! -e "$TMP/d2/$ENC" -a ! -e "$TMP/d2/.zipvox-partial/$ENC.part"
    check "the refusal names the file and both hashes" has "$TMP/d2.out" "REFUSED $ENC: sha256 mismatch, expected sha256 $WRONG.*found $GOODENC"
    check "the other files are still verified and installed" test -f "$TMP/d2/tokens.txt" -a -f "$TMP/d2/$DEC"
    check "no SHA256SUMS or 'Try it' line after a failure" \
        test ! -e "$TMP/d2/SHA256SUMS" -a "$(grep -c 'zipvox transcribe' "$TMP/d2.out")" = 0

    # An existing file that does not match: refused without --force, replaced with it.
    mkdir -p "$TMP/d3"
    echo "not a tokens file" >"$TMP/d3/tokens.txt"
    RC=0; ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" files-model "$TMP/d3" >"$TMP/d3.out" 2>&1 || RC=$?
    check "an existing mismatching file is left alone without --force (exit 1)" \
        test "$RC" = 1 -a "$(cat "$TMP/d3/tokens.txt")" = "not a tokens file"
    RC=0; ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" --force files-model "$TMP/d3" >"$TMP/d3b.out" 2>&1 || RC=$?
    check "--force replaces it (exit 0, verified)" test "$RC" = 0 -a "$(sha "$TMP/d3/tokens.txt")" = "$(sha "$SRC/tokens.txt")"

    # Default destination: $ZIPVOX_MODELS_DIR/NAME.
    RC=0; ZIPVOX_MODELS_DIR="$TMP/base" ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" files-model >"$TMP/d4.out" 2>&1 || RC=$?
    check "default destination is \$ZIPVOX_MODELS_DIR/NAME" test "$RC" = 0 -a -f "$TMP/base/files-model/$ENC"

    if ((HAVE_TAR)); then
        # Release tarball: archive hash checked, members extracted and verified.
        RC=0; ZIPVOX_MANIFEST="$TMP/good.toml" "$FETCH" archive-model "$TMP/a1" >"$TMP/a1.out" 2>&1 || RC=$?
        SHOW="$TMP/a1.out" check "fetch (tarball) exits 0" test "$RC" = 0
        check "fetch (tarball) verified the archive and 5 members (one a test clip in test_wavs/)" \
            test "$(grep -c '^  verified ' "$TMP/a1.out")" = 6 -a -f "$TMP/a1/$ENC" -a -f "$TMP/a1/test_wavs/0.wav" -a ! -e "$TMP/a1/bpe.model"
        check "fetch (tarball) suggests transcribing the model's test clip" \
            has "$TMP/a1.out" "zipvox transcribe --model $TMP/a1 $TMP/a1/test_wavs/0.wav"
        check "fetch (tarball) removed the archive" test ! -e "$TMP/a1/.zipvox-partial"

        RC=0; ZIPVOX_MANIFEST="$TMP/badarch.toml" "$FETCH" archive-model "$TMP/a2" >"$TMP/a2.out" 2>&1 || RC=$?
        check "fetch with a wrong archive hash exits 1, installs nothing, deletes the archive" \
            test "$RC" = 1 -a ! -e "$TMP/a2/$ENC" -a ! -e "$TMP/a2/.zipvox-partial/kws-test.tar.bz2.part"
        check "the archive refusal is explained" has "$TMP/a2.out" "REFUSED kws-test.tar.bz2: sha256 mismatch"
    else
        bad "tar/bzip2 missing: tarball download path not tested"
    fi
    unset ZIPVOX_FETCH_ALLOW_FILE_URLS
fi

echo
echo "$PASS passed, $FAIL failed"
((FAIL == 0))
