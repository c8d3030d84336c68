#!/usr/bin/env python3
"""Read models/manifest.toml for fetch.sh and test_manifest.sh.

Subcommands (all print to stdout, errors to stderr):
  list                 model names, one per line
  info NAME            human-readable summary of one model
  plan NAME            tab-separated plan consumed by fetch.sh:
                         MODEL <tab> name <tab> archive_url <tab> archive_sha256 <tab> archive_size <tab> notes
                         FILE  <tab> path <tab> url <tab> sha256 <tab> size <tab> member <tab> role
                       (empty values are written as "-")
  validate             structural check of the whole manifest; exit 1 on any problem
  dump                 the parsed manifest as canonical JSON (used to compare parsers)

Parsing uses tomllib (Python >= 3.11), else the third-party tomli, else a small built-in
parser for the subset of TOML the manifest is written in (tables of arrays, strings,
integers, booleans, comments). Boards with an older Python (JetPack ships 3.8/3.10) still
work. ZIPVOX_TOML_PARSER=mini forces the built-in parser (the test compares both).

Environment:
  ZIPVOX_MANIFEST                 manifest path (default: manifest.toml beside this file)
  ZIPVOX_FETCH_ALLOW_FILE_URLS=1  accept file:// URLs (offline tests only)
"""

from __future__ import annotations

import json
import os
import re
import sys

HEX64 = re.compile(r"^[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Relative path inside a model directory or an archive: no "..", no absolute paths,
# nothing that needs quoting in the tab-separated plan or in sha256sum's input.
PATH_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$")
MODEL_TYPES = {"zipformer", "zipformer2"}
# sherpa-onnx's modeling units (its --tokens-type / modeling_unit values): how tokens.txt's
# symbols are made and how keyword / hotword text becomes tokens.
TOKENS_TYPES = {"bpe", "cjkchar", "cjkchar+bpe", "ppinyin", "fpinyin", "phone+ppinyin"}
MODEL_KEYS = {
    "name", "model_type", "tokens_type", "language", "description", "license", "upstream",
    "revision", "archive_url", "archive_sha256", "archive_size", "archive_source", "boards",
    "run_here", "tested", "notes",
}
FILE_KEYS = {"path", "url", "sha256", "size", "source", "member", "role", "note"}
# Files zipvox loads (one each) ...
ROLES = {"encoder", "decoder", "joiner", "tokens", "bpe", "lexicon"}
# ... and files that come with the model for trying it (test clips, their keyword lists and
# transcripts): any number of them.
EXTRA_ROLES = {"test"}


class ManifestError(Exception):
    pass


# --------------------------------------------------------------------------------------
# Parsing


def _mini_toml(text: str) -> dict:
    """Parse the manifest's TOML subset: [[model]] / [[model.file]] array tables,
    key = "basic string" | 'literal string' | integer | true | false, and comments."""
    root: dict = {}
    current: dict = root
    key_re = re.compile(r"^([A-Za-z0-9_-]+)\s*=\s*(.*)$")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"line {lineno}"
        if line.startswith("[["):
            m = re.match(r"^\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]\s*(#.*)?$", line)
            if not m:
                raise ManifestError(f"{where}: unsupported table header: {raw!r}")
            parts = m.group(1).split(".")
            if parts == ["model"]:
                root.setdefault("model", []).append({})
                current = root["model"][-1]
            elif parts == ["model", "file"]:
                if not root.get("model"):
                    raise ManifestError(f"{where}: [[model.file]] before any [[model]]")
                current = {}
                root["model"][-1].setdefault("file", []).append(current)
            else:
                raise ManifestError(f"{where}: unsupported table [[{m.group(1)}]]")
            continue
        if line.startswith("["):
            raise ManifestError(f"{where}: plain [tables] are not used in this manifest")
        m = key_re.match(line)
        if not m:
            raise ManifestError(f"{where}: cannot parse {raw!r}")
        key, rest = m.group(1), m.group(2)
        value, tail = _mini_value(rest, where)
        tail = tail.strip()
        if tail and not tail.startswith("#"):
            raise ManifestError(f"{where}: trailing text after value: {tail!r}")
        if key in current:
            raise ManifestError(f"{where}: duplicate key {key!r}")
        current[key] = value
    return root


_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _mini_value(s: str, where: str):
    if s.startswith('"'):
        out, i = [], 1
        while i < len(s):
            c = s[i]
            if c == '"':
                return "".join(out), s[i + 1:]
            if c == "\\":
                i += 1
                if i >= len(s):
                    break
                e = s[i]
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                elif e in "uU":
                    n = 4 if e == "u" else 8
                    out.append(chr(int(s[i + 1:i + 1 + n], 16)))
                    i += n
                else:
                    raise ManifestError(f"{where}: bad escape \\{e}")
            else:
                out.append(c)
            i += 1
        raise ManifestError(f"{where}: unterminated string")
    if s.startswith("'"):
        end = s.find("'", 1)
        if end < 0:
            raise ManifestError(f"{where}: unterminated string")
        return s[1:end], s[end + 1:]
    m = re.match(r"^(true|false)\b(.*)$", s)
    if m:
        return m.group(1) == "true", m.group(2)
    m = re.match(r"^([+-]?[0-9][0-9_]*)(\s.*|#.*)?$", s)
    if m:
        return int(m.group(1).replace("_", "")), m.group(2) or ""
    raise ManifestError(f"{where}: unsupported value {s!r} (strings, integers, booleans only)")


def load(path: str) -> dict:
    with open(path, "rb") as fh:
        data = fh.read()
    forced = os.environ.get("ZIPVOX_TOML_PARSER", "")
    if forced != "mini":
        try:
            import tomllib  # Python >= 3.11
            return tomllib.loads(data.decode("utf-8"))
        except ModuleNotFoundError:
            pass
        try:
            import tomli  # type: ignore
            return tomli.loads(data.decode("utf-8"))
        except ModuleNotFoundError:
            pass
    return _mini_toml(data.decode("utf-8"))


# --------------------------------------------------------------------------------------
# Validation


def _url_ok(url: object) -> bool:
    if not isinstance(url, str) or any(c.isspace() for c in url):
        return False
    if url.startswith("https://") and len(url) > len("https://"):
        return True
    return os.environ.get("ZIPVOX_FETCH_ALLOW_FILE_URLS") == "1" and url.startswith("file:///")


def problems(doc: dict) -> list[str]:
    errs: list[str] = []
    extra_top = set(doc) - {"model"}
    if extra_top:
        errs.append(f"unknown top-level keys: {sorted(extra_top)}")
    models = doc.get("model")
    if not isinstance(models, list) or not models:
        return errs + ["no [[model]] tables"]
    seen: set[str] = set()
    for i, m in enumerate(models):
        label = f"model #{i + 1}"
        name = m.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            errs.append(f"{label}: missing or invalid name {name!r}")
        else:
            label = name
            if name in seen:
                errs.append(f"{label}: duplicate model name")
            seen.add(name)
        for k in sorted(set(m) - MODEL_KEYS - {"file"}):
            errs.append(f"{label}: unknown key {k!r}")
        if m.get("model_type") not in MODEL_TYPES:
            errs.append(f"{label}: model_type must be one of {sorted(MODEL_TYPES)}")
        if m.get("tokens_type") not in TOKENS_TYPES:
            errs.append(f"{label}: tokens_type must be one of {sorted(TOKENS_TYPES)}")
        for k in ("language", "description", "license", "upstream", "archive_url"):
            if not isinstance(m.get(k), str) or not m.get(k):
                errs.append(f"{label}: missing {k}")
        for k in ("revision", "archive_source", "boards", "tested", "notes"):
            if k in m and not isinstance(m[k], str):
                errs.append(f"{label}: {k} must be a string")
        if not isinstance(m.get("run_here"), bool):
            errs.append(f"{label}: run_here must be true or false (was the model run in this repository's tests?)")
        elif m["run_here"] and not m.get("tested"):
            errs.append(f"{label}: run_here = true needs `tested` (what was run, where)")
        if "upstream" in m and not _url_ok(m["upstream"]):
            errs.append(f"{label}: upstream must be an https URL")
        if "archive_url" in m and not _url_ok(m["archive_url"]):
            errs.append(f"{label}: archive_url must be an https URL")
        if "archive_sha256" in m:
            if not isinstance(m["archive_sha256"], str) or not HEX64.match(m["archive_sha256"]):
                errs.append(f"{label}: archive_sha256 must be 64 lowercase hex digits")
            if "archive_url" not in m:
                errs.append(f"{label}: archive_sha256 without archive_url")
            if not m.get("archive_source"):
                errs.append(f"{label}: archive_sha256 needs archive_source")
        if "archive_size" in m and (not isinstance(m["archive_size"], int)
                                    or isinstance(m["archive_size"], bool)
                                    or m["archive_size"] <= 0):
            errs.append(f"{label}: archive_size must be a positive integer")
        files = m.get("file")
        if not isinstance(files, list) or not files:
            errs.append(f"{label}: no [[model.file]] entries")
            continue
        paths: set[str] = set()
        roles: dict[str, str] = {}
        for j, f in enumerate(files):
            flabel = f"{label}: file #{j + 1}"
            path = f.get("path")
            if not isinstance(path, str) or not PATH_RE.match(path):
                errs.append(f"{flabel}: missing or unsafe path {path!r}")
            else:
                flabel = f"{label}: {path}"
                if path in paths:
                    errs.append(f"{flabel}: duplicate path")
                paths.add(path)
            for k in sorted(set(f) - FILE_KEYS):
                errs.append(f"{flabel}: unknown key {k!r}")
            if not _url_ok(f.get("url")):
                errs.append(f"{flabel}: url must be an https URL")
            sha = f.get("sha256")
            if not isinstance(sha, str) or not HEX64.match(sha):
                errs.append(f"{flabel}: sha256 must be 64 lowercase hex digits")
            size = f.get("size")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
                errs.append(f"{flabel}: size must be a positive integer")
            if not isinstance(f.get("source"), str) or not f.get("source"):
                errs.append(f"{flabel}: missing source (where the sha256 was found)")
            member = f.get("member")
            if member is not None:
                if not isinstance(member, str) or not PATH_RE.match(member):
                    errs.append(f"{flabel}: unsafe member {member!r}")
                if f.get("url") != m.get("archive_url"):
                    errs.append(f"{flabel}: member given but url is not the model's archive_url")
            elif "archive_url" in m and f.get("url") == m.get("archive_url"):
                errs.append(f"{flabel}: url is the archive but no member is given")
            if "note" in f and not isinstance(f["note"], str):
                errs.append(f"{flabel}: note must be a string")
            role = f.get("role")
            if role is not None:
                if role in EXTRA_ROLES:
                    pass
                elif role not in ROLES:
                    errs.append(f"{flabel}: role must be one of {sorted(ROLES | EXTRA_ROLES)}")
                elif role in roles:
                    errs.append(f"{flabel}: role {role!r} also used by {roles[role]}")
                else:
                    roles[role] = str(path)
        for need in ("encoder", "decoder", "joiner", "tokens"):
            if need not in roles:
                errs.append(f"{label}: no file with role = \"{need}\"")
    return errs


def checked(path: str) -> dict:
    doc = load(path)
    errs = problems(doc)
    if errs:
        raise ManifestError("manifest " + path + " is invalid:\n  " + "\n  ".join(errs))
    return doc


def find(doc: dict, name: str) -> dict:
    for m in doc["model"]:
        if m["name"] == name:
            return m
    names = ", ".join(m["name"] for m in doc["model"])
    raise ManifestError(f"unknown model {name!r}; known models: {names}")


# --------------------------------------------------------------------------------------
# Commands


def _cell(v: object) -> str:
    if v is None or v == "":
        return "-"
    s = str(v)
    if "\t" in s or "\n" in s:
        raise ManifestError(f"value {s!r} cannot be written to the plan")
    return s


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main(argv: list[str]) -> int:
    manifest = os.environ.get("ZIPVOX_MANIFEST") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "manifest.toml")
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "validate":
            doc = load(manifest)
            errs = problems(doc)
            for e in errs:
                print(f"manifest: {e}", file=sys.stderr)
            if errs:
                return 1
            nfiles = sum(len(m["file"]) for m in doc["model"])
            print(f"manifest OK: {len(doc['model'])} models, {nfiles} files")
            return 0
        if cmd == "dump":
            print(json.dumps(load(manifest), sort_keys=True, indent=1))
            return 0
        doc = checked(manifest)
        if cmd == "list":
            for m in doc["model"]:
                print(m["name"])
            return 0
        if cmd in ("info", "plan"):
            if len(args) != 1:
                print(f"usage: manifest.py {cmd} NAME", file=sys.stderr)
                return 2
            m = find(doc, args[0])
            if cmd == "plan":
                print("\t".join(["MODEL", _cell(m["name"]), _cell(m.get("archive_url")),
                                 _cell(m.get("archive_sha256")), _cell(m.get("archive_size")),
                                 _cell(m.get("notes"))]))
                for f in m["file"]:
                    print("\t".join(["FILE", _cell(f["path"]), _cell(f["url"]), _cell(f["sha256"]),
                                     _cell(f.get("size")), _cell(f.get("member")),
                                     _cell(f.get("role"))]))
                return 0
            total = sum(f.get("size", 0) for f in m["file"])
            print(f"name:        {m['name']}")
            print(f"model_type:  {m['model_type']}")
            print(f"tokens_type: {m['tokens_type']}")
            print(f"language:    {m['language']}")
            print(f"license:     {m['license']}")
            print(f"run here:    {'yes: ' + m['tested'] if m['run_here'] else 'no (listed by type only)'}")
            print(f"description: {m['description']}")
            if m.get("boards"):
                print(f"boards:      {m['boards']}")
            if m.get("upstream"):
                print(f"upstream:    {m['upstream']}" + (f" @ {m['revision']}" if m.get("revision") else ""))
            if m.get("archive_url"):
                print(f"archive:     {m['archive_url']}")
                print(f"  sha256:    {m.get('archive_sha256', 'not recorded')}")
            print(f"files ({_mb(total)} on disk):")
            for f in m["file"]:
                how = f"from archive member {f['member']}" if f.get("member") else f["url"]
                print(f"  {f['path']}  {f.get('size', '?')} bytes  sha256 {f['sha256']}")
                print(f"      {how}")
                print(f"      hash source: {f['source']}")
            if m.get("notes"):
                print(f"notes: {m['notes']}")
            return 0
        print(f"manifest.py: unknown command {cmd!r}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into head
        return 141
    except ManifestError as e:
        print(f"manifest.py: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as e:  # unreadable file, TOML syntax error
        print(f"manifest.py: cannot read {manifest}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
