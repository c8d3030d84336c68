#!/usr/bin/env python3
"""Rebuilds packaging/pinyin.dict, the reading dictionary of runtime/model/pinyin.rs, from the
installed pypinyin (pinned: the dictionary must give what sherpa-onnx's text2token gives with
that version).

    pip install -q pypinyin==0.55.0
    python3 scripts/gen_pinyin_dict.py [OUTPUT]        # default packaging/pinyin.dict

What it keeps of pypinyin (MIT; its notice is copied into the file's header):
  - the characters pypinyin treats as Chinese (its RE_HANS) and the characters Python's `re`
    treats as `\\d` (pypinyin's tone conversion strips and moves them), as code-point ranges;
  - each character's first reading (`pinyin()` without heteronyms takes the first);
  - every phrase of phrases_dict (all of them shape the maximum-matching segmentation), with
    each character's first reading written only where it differs from the character's own
    (`-` otherwise), which keeps the file under 1 MB.

Format (UTF-8 text, one record a line; `#` lines are comments):
  zipvox-pinyin 1 pypinyin <version>
  hans <hex>[-<hex>] ...        code-point ranges pypinyin converts (others pass through)
  digits <hex>-<hex> ...        code-point ranges of Unicode decimal digits (Python's \\d)
  chars <count>                 then <count> lines: <character> <reading>
  phrases <count>               then <count> lines: <phrase>[ <reading or -> ...], sorted
"""
import os
import re
import sys
import unicodedata
from pathlib import Path

PYPINYIN_VERSION = "0.55.0"


def ranges(codepoints):
    """Sorted code points → [(first, last)] of consecutive runs."""
    out = []
    for c in codepoints:
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def fmt_ranges(rs):
    return " ".join(f"{a:x}" if a == b else f"{a:x}-{b:x}" for a, b in rs)


def main():
    if os.environ.get("PYPINYIN_NO_PHRASES"):
        sys.exit("gen_pinyin_dict: unset PYPINYIN_NO_PHRASES (it empties pypinyin's phrase dictionary)")
    try:
        import pypinyin
        from pypinyin.constants import PHRASES_DICT, PINYIN_DICT, RE_HANS
    except ImportError:
        sys.exit(f"gen_pinyin_dict: pypinyin is missing: pip install -q pypinyin=={PYPINYIN_VERSION}")
    if pypinyin.__version__ != PYPINYIN_VERSION:
        sys.exit(f"gen_pinyin_dict: pypinyin {pypinyin.__version__} is installed, the dictionary is "
                 f"pinned to {PYPINYIN_VERSION}: pip install -q pypinyin=={PYPINYIN_VERSION} "
                 "(or change PYPINYIN_VERSION here and in scripts/setup.sh together)")
    root = Path(__file__).resolve().parent.parent
    out_path = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "packaging" / "pinyin.dict"
    licence = (Path(pypinyin.__file__).parent.parent
               / f"pypinyin-{PYPINYIN_VERSION}.dist-info" / "licenses" / "LICENSE.txt")
    licence_text = licence.read_text(encoding="utf-8") if licence.is_file() else None
    if not licence_text or "MIT" not in licence_text:
        sys.exit(f"gen_pinyin_dict: pypinyin's licence file is not at {licence}")

    # Every code point tested against the very expressions pypinyin and Python use.
    # (Surrogates can't be in a UTF-8 string; they are skipped.)
    digit = re.compile(r"\d")
    hans_cps, digit_cps = [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        if RE_HANS.match(ch):
            hans_cps.append(cp)
        if digit.match(ch):
            digit_cps.append(cp)
            assert unicodedata.category(ch) == "Nd", ch

    def check_reading(r, what):
        if not r or any(c.isspace() for c in r) or r == "-":
            sys.exit(f"gen_pinyin_dict: unusable reading {r!r} for {what}")
        return r

    first = {}
    for cp in sorted(PINYIN_DICT):
        if not RE_HANS.match(chr(cp)):
            continue  # never looked up: pypinyin passes non-Chinese characters through
        first[cp] = check_reading(PINYIN_DICT[cp].split(",")[0], chr(cp))

    phrase_lines = []
    for phrase in sorted(PHRASES_DICT):
        readings = PHRASES_DICT[phrase]
        if len(readings) != len(phrase) or any(not r for r in readings):
            sys.exit(f"gen_pinyin_dict: phrase {phrase!r} has {len(readings)} readings for "
                     f"{len(phrase)} characters")
        if any(c.isspace() for c in phrase):
            sys.exit(f"gen_pinyin_dict: phrase {phrase!r} contains a space")
        cells = []
        for ch, r in zip(phrase, readings):
            r = check_reading(r[0], phrase)
            cells.append("-" if first.get(ord(ch)) == r else r)
        while cells and cells[-1] == "-":
            cells.pop()  # trailing defaults are implied
        phrase_lines.append(" ".join([phrase] + cells))

    with open(out_path, "w", encoding="utf-8", newline="\n") as f:
        f.write("# zipvox pinyin dictionary: Chinese characters and phrases -> tone-marked pinyin, read by\n"
                "# runtime/model/pinyin.rs. Generated by scripts/gen_pinyin_dict.py from pypinyin "
                f"{PYPINYIN_VERSION}\n"
                "# (https://github.com/mozillazg/python-pinyin: pinyin_dict.json, phrases_dict.json,\n"
                "# themselves built from mozillazg's pinyin-data and phrase-pinyin-data). Do not edit: rerun\n"
                "# the script. The data is pypinyin's, under its licence:\n#\n")
        for line in licence_text.strip("\n").split("\n"):
            f.write(f"#   {line}".rstrip() + "\n")
        f.write("#\n")
        f.write(f"zipvox-pinyin 1 pypinyin {PYPINYIN_VERSION}\n")
        f.write(f"hans {fmt_ranges(ranges(hans_cps))}\n")
        f.write(f"digits {fmt_ranges(ranges(digit_cps))}\n")
        f.write(f"chars {len(first)}\n")
        for cp, r in first.items():
            f.write(f"{chr(cp)} {r}\n")
        f.write(f"phrases {len(phrase_lines)}\n")
        for line in phrase_lines:
            f.write(line + "\n")
    print(f"gen_pinyin_dict: {out_path}: {len(first)} characters, {len(phrase_lines)} phrases, "
          f"{out_path.stat().st_size} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
