#!/usr/bin/env python3
"""sherpa-onnx's text → pinyin units, the reference for runtime/model/pinyin.rs (tests/pinyin.rs).

    python3 scripts/pinyin_reference.py < texts.json > units.json
    python3 scripts/pinyin_reference.py --tokens MODEL/tokens.txt --tokens-type ppinyin < texts.json

Input: a JSON list of texts. Output: {"ppinyin": [[unit, ...], ...], "fpinyin": [...]}, one list
per text, from sherpa-onnx 2.0.1's own `text2token` (pypinyin 0.55.0).

text2token drops a text with a unit missing from tokens.txt, and a tokens.txt cannot hold a unit
with a space (pypinyin keeps a non-Chinese run whole: "abc 你好" → "abc ", "nǐ", "hǎo"). So each
list comes from text2token's inner `to_pinyin` (taken from text2token itself, not a copy), and the
script checks it against the real `text2token` run over all texts with a tokens.txt made of every
space-free unit: the texts text2token keeps must come out identical, the others are the ones with
a space in a unit.

With --tokens, the output is {TYPE: ...} from plain `text2token` with that model's tokens.txt
(its messages go to stderr), and every text must be kept (for a model's own keywords: each unit
is one of its tokens).
"""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import types

PINNED = {"pypinyin": "0.55.0", "sherpa-onnx": "2.0.1"}


def fail(msg):
    sys.exit(f"pinyin_reference: {msg}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", help="a model's tokens.txt: run text2token with it")
    ap.add_argument("--tokens-type", choices=["ppinyin", "fpinyin"], help="the model's units (with --tokens)")
    args = ap.parse_args()
    if os.environ.get("PYPINYIN_NO_PHRASES"):
        fail("unset PYPINYIN_NO_PHRASES (it turns off pypinyin's phrase dictionary)")
    try:
        from importlib.metadata import version
        import pypinyin  # noqa: F401
        import sentencepiece  # noqa: F401  (text2token imports it)
        from pypinyin import pinyin
        from pypinyin.contrib.tone_convert import to_finals_tone, to_initials
        from sherpa_onnx.utils import text2token
    except ImportError as e:
        fail(f"{e.name} is missing: run scripts/setup.sh (pip install -q pypinyin==0.55.0 "
             "sherpa-onnx==2.0.1 sentencepiece)")
    for pkg, want in PINNED.items():
        have = version(pkg)
        if have != want:
            fail(f"{pkg} {have} is installed, the reference is pinned to {want}: run scripts/setup.sh")

    texts = json.load(sys.stdin)
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        fail("stdin must be a JSON list of strings")
    types_ = ["ppinyin", "fpinyin"]

    if args.tokens:
        if not args.tokens_type:
            fail("--tokens needs --tokens-type")
        with contextlib.redirect_stdout(sys.stderr):
            out = {args.tokens_type: text2token(texts, tokens=args.tokens, tokens_type=args.tokens_type)}
        for t, res in out.items():
            if len(res) != len(texts):
                fail(f"text2token --tokens-type {t} dropped {len(texts) - len(res)} of {len(texts)} "
                     f"texts (a unit not in {args.tokens}; its message is above)")
        json.dump(out, sys.stdout, ensure_ascii=False)
        return

    # text2token's nested to_pinyin, bound to the pypinyin functions it imports.
    code = next((c for c in text2token.__code__.co_consts
                 if isinstance(c, types.CodeType) and c.co_name == "to_pinyin"), None)
    if code is None:
        fail("this sherpa-onnx's text2token has no inner to_pinyin")
    env = {"pinyin": pinyin, "to_initials": to_initials, "to_finals_tone": to_finals_tone}
    missing = [n for n in code.co_freevars if n not in env]
    if missing:
        fail(f"text2token's to_pinyin uses {missing}: update this script")
    to_pinyin = types.FunctionType(code, text2token.__globals__, "to_pinyin", None,
                                   tuple(types.CellType(env[n]) for n in code.co_freevars))

    out = {}
    for t in types_:
        ref = [to_pinyin(x, t) for x in texts]
        vocab = sorted({u for units in ref for u in units if u and not any(c.isspace() for c in u)})
        vocab_set = set(vocab)
        keep = [i for i, units in enumerate(ref) if all(u in vocab_set for u in units)]
        with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
            f.write("".join(f"{u} {i}\n" for i, u in enumerate(vocab)))
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its "skipping text" lines
                real = text2token(texts, tokens=f.name, tokens_type=t)
        finally:
            os.unlink(f.name)
        if real != [ref[i] for i in keep]:
            fail(f"text2token ({t}) disagrees with its own to_pinyin: update this script")
        out[t] = ref
    json.dump(out, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
