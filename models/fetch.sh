#!/usr/bin/env bash
# Download a streaming Zipformer model listed in models/manifest.toml and verify every file's
# sha256 before it is put in place. See models/README.md.
#
#   models/fetch.sh NAME [DEST_DIR]     download NAME into DEST_DIR
#                                       (default: $ZIPVOX_MODELS_DIR/NAME, else
#                                       /var/lib/zipvox/models/NAME if writable, else
#                                       ./models-cache/NAME)
#   models/fetch.sh --list              list model names
#   models/fetch.sh --info NAME         files, sizes, hashes and where each hash came from
#   models/fetch.sh --check DIR NAME    verify an existing directory against the manifest,
#                                       without any network access
#
# Options for a download: --force replaces files already in DEST_DIR that do not match the
# manifest (by default fetch.sh refuses to touch them); --keep-archive keeps a downloaded
# release tarball in DEST_DIR/.zipvox-partial/.
#
# Exit status: 0 success / everything verified; 1 a file is missing, does not match, or could
# not be downloaded; 2 usage error, unknown model, invalid manifest or missing tool.
#
# Environment: ZIPVOX_MANIFEST (manifest path), ZIPVOX_MODELS_DIR (default parent of DEST_DIR),
# PYTHON (interpreter, default python3), ZIPVOX_FETCH_RETRIES (curl retries per file, default 5),
# ZIPVOX_FETCH_ALLOW_FILE_URLS=1 (tests only).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ZIPVOX_MANIFEST="${ZIPVOX_MANIFEST:-$HERE/manifest.toml}"
PY="${PYTHON:-python3}"
PARTIAL=".zipvox-partial"

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"; }
fail_usage() { echo "fetch.sh: $*" >&2; exit 2; }
say() { echo "fetch.sh: $*" >&2; }

need() {
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || fail_usage "required tool '$t' is not installed"
    done
}

# ---------------------------------------------------------------------------------------
# Manifest plan (parsed by manifest.py: tomllib, tomli, or its built-in subset parser)

M_NAME="" M_ARCHIVE_URL="" M_ARCHIVE_SHA="" M_ARCHIVE_SIZE="" M_NOTES=""
F_PATH=() F_URL=() F_SHA=() F_SIZE=() F_MEMBER=() F_ROLE=()

load_plan() {
    local name="$1" plan kind a b c d e g
    need "$PY"
    if ! plan="$("$PY" "$HERE/manifest.py" plan "$name")"; then
        exit 2   # manifest.py already said why (unknown model, invalid manifest, ...)
    fi
    while IFS=$'\t' read -r kind a b c d e g; do
        [[ $a == "-" ]] && a=""; [[ $b == "-" ]] && b=""; [[ $c == "-" ]] && c=""
        [[ $d == "-" ]] && d=""; [[ $e == "-" ]] && e=""; [[ ${g:-} == "-" ]] && g=""
        case "$kind" in
            MODEL) M_NAME="$a" M_ARCHIVE_URL="$b" M_ARCHIVE_SHA="$c" M_ARCHIVE_SIZE="$d" M_NOTES="$e" ;;
            FILE) F_PATH+=("$a") F_URL+=("$b") F_SHA+=("$c") F_SIZE+=("$d") F_MEMBER+=("$e") F_ROLE+=("${g:-}") ;;
            *) fail_usage "unexpected plan line from manifest.py: $kind" ;;
        esac
    done <<<"$plan"
    [[ -n $M_NAME && ${#F_PATH[@]} -gt 0 ]] || fail_usage "empty plan for $name"
}

# ---------------------------------------------------------------------------------------
# Verification

file_size() { stat -c %s -- "$1" 2>/dev/null || wc -c <"$1"; }
actual_sha() { sha256sum -- "$1" | cut -d' ' -f1; }

# verify DIR RELPATH SHA256 [SIZE]: 0 = matches, 1 = differs, 3 = missing.
# The decision is sha256sum -c's; LAST_DETAIL explains a mismatch.
LAST_DETAIL=""
verify() {
    local dir="$1" rel="$2" sha="$3" size="${4:-}" got gotsize
    LAST_DETAIL=""
    [[ -f "$dir/$rel" ]] || return 3
    if (cd "$dir" && printf '%s  %s\n' "$sha" "$rel" | sha256sum -c --status - 2>/dev/null); then
        return 0
    fi
    got="$(actual_sha "$dir/$rel")"
    gotsize="$(file_size "$dir/$rel")"
    LAST_DETAIL="expected sha256 $sha${size:+ ($size bytes)}, found $got ($gotsize bytes)"
    return 1
}

# zipvox_pick DIR KIND: the file zipvox's default (int8) precision would choose for KIND.
zipvox_pick() {
    local dir="$1" kind="$2" f n q=() p=()
    while IFS= read -r n; do
        [[ -n $n ]] || continue
        if [[ $n == *.int8.onnx ]]; then q+=("$n"); else p+=("$n"); fi
    done < <(for f in "$dir/$kind"*.onnx; do [[ -f $f ]] && basename -- "$f"; done | LC_ALL=C sort)
    if [[ $kind == decoder ]]; then
        if ((${#p[@]})); then echo "${p[0]}"; elif ((${#q[@]})); then echo "${q[0]}"; fi
    else
        if ((${#q[@]})); then echo "${q[0]}"; elif ((${#p[@]})); then echo "${p[0]}"; fi
    fi
}

# ---------------------------------------------------------------------------------------
# --check DIR NAME

do_check() {
    local dir="$1" name="$2" i rc ok=0 bad=0 missing=0
    need sha256sum
    [[ -d $dir ]] || fail_usage "--check: $dir is not a directory"
    load_plan "$name"
    echo "Checking $dir against $M_NAME ($ZIPVOX_MANIFEST)"
    for i in "${!F_PATH[@]}"; do
        rc=0; verify "$dir" "${F_PATH[$i]}" "${F_SHA[$i]}" "${F_SIZE[$i]}" || rc=$?
        case $rc in
            0) echo "  OK        ${F_PATH[$i]}"; ok=$((ok + 1)) ;;
            1) echo "  MISMATCH  ${F_PATH[$i]}: $LAST_DETAIL"; bad=$((bad + 1)) ;;
            3) echo "  MISSING   ${F_PATH[$i]}"; missing=$((missing + 1)) ;;
        esac
    done
    # zipvox picks the files itself (runtime/model/files.rs): the first encoder*/joiner*
    # .int8.onnx by name (else the first fp32 one) and the first fp32 decoder*.onnx (else
    # int8). Extra ONNX files in the directory can change that choice: say so, without
    # failing the check.
    local role want pick
    for role in encoder decoder joiner; do
        want=""
        for i in "${!F_PATH[@]}"; do [[ ${F_ROLE[$i]} == "$role" ]] && want="${F_PATH[$i]}"; done
        pick="$(zipvox_pick "$dir" "$role")"
        if [[ -n $want && -n $pick && $pick != "$want" ]]; then
            echo "  NOTE      zipvox would load $pick as the $role, not the manifest's $want"
        fi
    done
    echo "$ok ok, $bad mismatched, $missing missing"
    if ((bad + missing > 0)); then
        return 1
    fi
    return 0
}

# ---------------------------------------------------------------------------------------
# Downloads

CURL_PROGRESS=(-sS)
[[ -t 2 ]] && CURL_PROGRESS=(--progress-bar)
RETRIES="${ZIPVOX_FETCH_RETRIES:-5}"
[[ $RETRIES =~ ^[0-9]+$ ]] || fail_usage "ZIPVOX_FETCH_RETRIES must be a number of retries, not '$RETRIES'"
# Set when a download failed because the host could not be reached at all (no network).
UNREACHABLE=""

# download URL PARTFILE [SIZE]: resumable download into PARTFILE (not verified here).
download() {
    local url="$1" part="$2" size="${3:-}" cur rc=0
    mkdir -p -- "$(dirname -- "$part")"
    if [[ -f $part && -n $size ]]; then
        cur="$(file_size "$part")"
        if ((cur > size)); then rm -f -- "$part"; fi
        if ((cur == size)); then return 0; fi   # complete from an earlier run; verified by the caller
    fi
    say "downloading $url"
    curl --fail --location --retry "$RETRIES" --retry-delay 3 --retry-connrefused \
        --connect-timeout 30 --speed-limit 1024 --speed-time 120 \
        "${CURL_PROGRESS[@]}" -C - -o "$part" -- "$url" || rc=$?
    if ((rc == 33 || rc == 36)); then
        # The server refused to resume (no byte ranges): start over once.
        say "cannot resume $url (curl exit $rc); downloading it again from the start"
        rm -f -- "$part"; rc=0
        curl --fail --location --retry "$RETRIES" --retry-delay 3 --retry-connrefused \
            --connect-timeout 30 --speed-limit 1024 --speed-time 120 \
            "${CURL_PROGRESS[@]}" -o "$part" -- "$url" || rc=$?
    fi
    if ((rc != 0)); then
        # curl 5/6: proxy or host name not resolved, 7: no connection, 28: timeout,
        # 35: TLS handshake failed: the server was not reached at all.
        case $rc in 5 | 6 | 7 | 28 | 35) UNREACHABLE="$url" ;; esac
        if [[ -s $part ]]; then
            say "download failed (curl exit $rc): $url (partial data kept; rerun to resume)"
        else
            rm -f -- "$part"
            say "download failed (curl exit $rc): $url"
        fi
        return 1
    fi
    return 0
}

# install_verified DEST REL PARTREL SHA SIZE: check PARTREL (relative to DEST) with
# sha256sum -c, then move it to REL. A mismatching file is deleted.
install_verified() {
    local dest="$1" rel="$2" partrel="$3" sha="$4" size="${5:-}" rc=0
    verify "$dest" "$partrel" "$sha" "$size" || rc=$?
    if ((rc == 0)); then
        mkdir -p -- "$(dirname -- "$dest/$rel")"
        mv -f -- "$dest/$partrel" "$dest/$rel"
        echo "  verified  $rel"
        return 0
    fi
    if ((rc == 1)); then
        rm -f -- "$dest/$partrel"
        say "REFUSED $rel: sha256 mismatch, $LAST_DETAIL. The downloaded file was deleted." \
            "Either the upstream file changed or the download is corrupt; do not use it."
    else
        say "REFUSED $rel: nothing was downloaded/extracted"
    fi
    return 1
}

do_fetch() {
    local name="$1" dest="${2:-}" force="$3" keep="$4"
    local i rc errors=0 base lockfd
    need "$PY" curl sha256sum
    load_plan "$name"

    if [[ -z $dest ]]; then
        if [[ -n ${ZIPVOX_MODELS_DIR:-} ]]; then
            base="$ZIPVOX_MODELS_DIR"
        elif mkdir -p /var/lib/zipvox/models 2>/dev/null && [[ -w /var/lib/zipvox/models ]]; then
            base=/var/lib/zipvox/models
        else
            base=./models-cache
        fi
        dest="$base/$M_NAME"
    fi
    mkdir -p -- "$dest" || fail_usage "cannot create $dest"
    dest="$(cd "$dest" && pwd)"
    [[ -w $dest ]] || fail_usage "$dest is not writable"

    if command -v flock >/dev/null 2>&1; then
        exec {lockfd}>"$dest/.zipvox-fetch.lock"
        flock -n "$lockfd" || fail_usage "another fetch.sh is already working in $dest"
    fi

    echo "Fetching $M_NAME into $dest"
    # Which files are still needed? Existing files that match are kept; files that do not
    # match are only replaced with --force.
    local todo=()
    for i in "${!F_PATH[@]}"; do
        rc=0; verify "$dest" "${F_PATH[$i]}" "${F_SHA[$i]}" "${F_SIZE[$i]}" || rc=$?
        if ((rc == 0)); then
            echo "  present   ${F_PATH[$i]} (sha256 matches)"
        elif ((rc == 1)) && [[ $force != 1 ]]; then
            say "REFUSED ${F_PATH[$i]}: the file already in $dest does not match the manifest ($LAST_DETAIL)." \
                "Not touching it; rerun with --force to replace it."
            errors=$((errors + 1))
        else
            todo+=("$i")
        fi
    done

    # Files fetched one by one (pinned Hugging Face URLs). A failed download (network, HTTP
    # error) stops the run: the remaining files would most likely fail the same way.
    local need_archive=0 offline=0
    for i in "${todo[@]}"; do
        if [[ -n ${F_MEMBER[$i]} ]]; then need_archive=1; continue; fi
        if download "${F_URL[$i]}" "$dest/$PARTIAL/${F_PATH[$i]}.part" "${F_SIZE[$i]}"; then
            install_verified "$dest" "${F_PATH[$i]}" "$PARTIAL/${F_PATH[$i]}.part" \
                "${F_SHA[$i]}" "${F_SIZE[$i]}" || errors=$((errors + 1))
        else
            errors=$((errors + 1)); offline=1
            break
        fi
    done

    # Files extracted from the release tarball.
    if ((need_archive && !offline)); then
        need tar bzip2
        local arch apart xdir members=()
        arch="$(basename -- "${M_ARCHIVE_URL%%\?*}")"
        apart="$dest/$PARTIAL/$arch.part"
        if download "$M_ARCHIVE_URL" "$apart" "$M_ARCHIVE_SIZE"; then
            rc=0
            if [[ -n $M_ARCHIVE_SHA ]]; then
                verify "$dest/$PARTIAL" "$arch.part" "$M_ARCHIVE_SHA" "$M_ARCHIVE_SIZE" || rc=$?
            fi
            if ((rc != 0)); then
                rm -f -- "$apart"
                say "REFUSED $arch: sha256 mismatch, $LAST_DETAIL. The downloaded archive was deleted."
                errors=$((errors + 1))
            else
                [[ -n $M_ARCHIVE_SHA ]] && echo "  verified  $arch"
                xdir="$dest/$PARTIAL/extract"
                rm -rf -- "$xdir"; mkdir -p -- "$xdir"
                for i in "${todo[@]}"; do [[ -n ${F_MEMBER[$i]} ]] && members+=("${F_MEMBER[$i]}"); done
                if ! tar -xjf "$apart" -C "$xdir" --no-same-owner -- "${members[@]}"; then
                    say "could not extract all members from $arch (listed in the manifest: ${members[*]})"
                fi
                for i in "${todo[@]}"; do
                    [[ -n ${F_MEMBER[$i]} ]] || continue
                    install_verified "$dest" "${F_PATH[$i]}" "$PARTIAL/extract/${F_MEMBER[$i]}" \
                        "${F_SHA[$i]}" "${F_SIZE[$i]}" || errors=$((errors + 1))
                done
                rm -rf -- "$xdir"
                if [[ $keep == 1 ]]; then
                    mv -f -- "$apart" "$dest/$PARTIAL/$arch"
                else
                    rm -f -- "$apart"
                fi
            fi
        else
            errors=$((errors + 1)); offline=1
        fi
    fi
    rmdir -- "$dest/$PARTIAL" 2>/dev/null || true

    if ((errors > 0)); then
        if ((offline)); then
            say "stopped after a failed download; $M_NAME is incomplete in $dest (rerun to resume)"
            if [[ -n $UNREACHABLE ]]; then
                say "cannot reach the server of $UNREACHABLE (no network, DNS or proxy?): fix the" \
                    "connection and rerun, or put the files in $dest by other means ('fetch.sh --info" \
                    "$M_NAME' lists them) and run 'fetch.sh --check $dest $M_NAME'"
            fi
        else
            say "$errors file(s) of $M_NAME are missing or unverified in $dest"
        fi
        return 1
    fi
    # A SHA256SUMS beside the model lets anyone re-check it with plain `sha256sum -c SHA256SUMS`.
    {
        for i in "${!F_PATH[@]}"; do printf '%s  %s\n' "${F_SHA[$i]}" "${F_PATH[$i]}"; done
    } >"$dest/SHA256SUMS"
    echo
    echo "All ${#F_PATH[@]} files of $M_NAME verified in $dest"
    [[ -n $M_NOTES ]] && echo "Note: $M_NOTES"
    local clip="YOUR-16kHz-mono.wav"
    for i in "${!F_PATH[@]}"; do
        if [[ ${F_ROLE[$i]} == test && ${F_PATH[$i]} == *.wav ]]; then clip="$dest/${F_PATH[$i]}"; break; fi
    done
    echo "Try it:"
    printf '  zipvox transcribe --model %q %q\n' "$dest" "$clip"
    return 0
}

# ---------------------------------------------------------------------------------------

main() {
    local force=0 keep=0 args=()
    while (($#)); do
        case "$1" in
            -h | --help) usage; exit 0 ;;
            --list)
                (($# == 1)) || fail_usage "--list takes no arguments"
                need "$PY"; "$PY" "$HERE/manifest.py" list || exit 2; exit 0 ;;
            --info)
                (($# == 2)) || fail_usage "usage: fetch.sh --info NAME"
                need "$PY"; "$PY" "$HERE/manifest.py" info "$2" || exit 2; exit 0 ;;
            --check)
                (($# == 3)) || fail_usage "usage: fetch.sh --check DIR NAME"
                do_check "$2" "$3"; exit $? ;;
            --force) force=1; shift ;;
            --keep-archive) keep=1; shift ;;
            --) shift; args+=("$@"); break ;;
            -*) fail_usage "unknown option $1 (see --help)" ;;
            *) args+=("$1"); shift ;;
        esac
    done
    ((${#args[@]} >= 1 && ${#args[@]} <= 2)) || { usage >&2; exit 2; }
    do_fetch "${args[0]}" "${args[1]:-}" "$force" "$keep"
}

main "$@"
