#!/usr/bin/env python3
"""sherpa-onnx's side of zipvox's beam-search, hotword and keyword-spotting comparisons.

usage:
  sherpa_beam_reference.py beam MODEL_DIR [--fp32] [--encoder FILE] [--beam N] [--hotwords FILE] [--hotwords-score S] WAV...
  sherpa_beam_reference.py kws  MODEL_DIR --keywords FILE [--beam N] WAV...
  (a WAV argument ending in .tsv is a manifest: its `wav` column, relative to it, is expanded)

beam: sherpa-onnx 2.0.1's OnlineRecognizer with decoding_method=modified_beam_search (int8
encoder, fp32 decoder, int8 joiner, 1 thread), audio fed in 0.1 s pieces, then 0.66 s of
silence and input_finished(), as scripts/eval-dev.sh's greedy references. Hotwords use
modeling_unit=bpe with a bpe.vocab written from the model's bpe.model (sherpa-onnx's hotword
encoder reads the `piece score` text form; the `sentencepiece` package converts). Prints one
JSON object per file: {"file","text"}.

kws: sherpa-onnx's KeywordSpotter (max_active_paths N=4, keywords_score 1.0, keywords_threshold
0.25, num_trailing_blanks 1), the whole clip fed at once + 0.66 s of silence, stream reset after
each hit (the model README's setup). Prints one JSON object per detection:
{"file","keyword","start","end","tokens"} with absolute times in seconds (sherpa-onnx's
timestamps restart at each reset; the offset is tracked here from the number of decoded
chunks), and {"file","detections":N} once per file. sherpa-onnx also resets a stream by itself
after 1.5 s without a token; its API does not say when, so after such a silence the times
printed here are early by the time from the last detection to that reset (keywords and order stay
comparable; zipvox reports true absolute times). A keywords file of plain phrases (e.g.
keywords_raw.txt) is first tokenized with bpe.model, as zipvox accepts it; a model without
bpe.model (pinyin) gets the file as it is.

--fp32 takes the fp32 joiner (and encoder, when the directory has one; --encoder picks any).
Needs: pip install sherpa-onnx numpy sentencepiece (sentencepiece for hotwords and plain
keywords only).
"""
import argparse, csv, glob, json, os, sys, tempfile, wave
import numpy as np
import sherpa_onnx

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["beam", "kws"])
ap.add_argument("model")
ap.add_argument("--beam", type=int, default=4)
ap.add_argument("--fp32", action="store_true", help="fp32 encoder/joiner instead of int8")
ap.add_argument("--encoder", help="use this encoder file")
ap.add_argument("--hotwords")
ap.add_argument("--hotwords-score", type=float, default=1.5)
ap.add_argument("--keywords")
ap.add_argument("--keywords-threshold", type=float, default=0.25)
ap.add_argument("--keywords-score", type=float, default=1.0)
ap.add_argument("--num-trailing-blanks", type=int, default=1)
ap.add_argument("wavs", nargs="+")
a = ap.parse_args()


def pick(kind, int8):
    files = sorted(glob.glob(os.path.join(a.model, f"{kind}-*.onnx")))
    q = [f for f in files if f.endswith(".int8.onnx")]
    f = [f for f in files if not f.endswith(".int8.onnx")]
    return (q or f)[0] if int8 else (f or q)[0]


def expand(args):
    out = []
    for w in args:
        if w.endswith(".tsv"):
            base = os.path.dirname(os.path.abspath(w))
            out += [os.path.join(base, r["wav"]) for r in csv.DictReader(open(w), delimiter="\t")]
        else:
            out.append(w)
    return out


def read(p):
    with wave.open(p) as f:
        assert f.getnchannels() == 1 and f.getsampwidth() == 2, p
        sr = f.getframerate()
        s = np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float32) / 32768
    return s, sr


def bpe_vocab(model_dir):
    """bpe.model -> a temporary bpe.vocab (`piece<TAB>score` per line, in id order)."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "bpe.model"))
    fd, path = tempfile.mkstemp(suffix=".vocab")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i)}\n")
    return path


def keywords_file(path, model_dir):
    """A keywords file sherpa-onnx reads: lines already in BPE pieces pass through; a plain
    phrase is encoded with bpe.model (the `sentencepiece` package) into a temporary file."""
    syms = {l.split()[0] for l in open(os.path.join(model_dir, "tokens.txt"), encoding="utf-8") if l.strip()}
    lines = [l.strip() for l in open(path, encoding="utf-8") if l.strip()]
    fields = lambda l: [w for w in l.split() if w[0] not in ":#@"]
    if all(fields(l) and fields(l)[0].startswith("\u2581") and all(w in syms for w in fields(l)) for l in lines):
        return path
    if not os.path.exists(os.path.join(model_dir, "bpe.model")):
        return path  # not a BPE model (e.g. pinyin): the lines are the model's tokens
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "bpe.model"))
    fd, out = tempfile.mkstemp(suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        for l in lines:
            extra = [w for w in l.split() if w[0] in ":#@"]
            f.write(" ".join(sp.encode(" ".join(fields(l)), out_type=str) + extra) + "\n")
    return out


enc, dec, joi = a.encoder or pick("encoder", not a.fp32), pick("decoder", False), pick("joiner", not a.fp32)
tokens = os.path.join(a.model, "tokens.txt")

if a.mode == "beam":
    extra = {}
    if a.hotwords:
        extra = dict(hotwords_file=a.hotwords, hotwords_score=a.hotwords_score,
                     modeling_unit="bpe", bpe_vocab=bpe_vocab(a.model))
    rec = sherpa_onnx.OnlineRecognizer.from_transducer(
        tokens=tokens, encoder=enc, decoder=dec, joiner=joi, num_threads=1, sample_rate=16000,
        feature_dim=80, decoding_method="modified_beam_search", max_active_paths=a.beam,
        provider="cpu", **extra)
    for w in expand(a.wavs):
        s, sr = read(w)
        st = rec.create_stream()
        step = int(0.1 * sr)
        for i in range(0, len(s), step):
            st.accept_waveform(sr, s[i:i + step])
            while rec.is_ready(st):
                rec.decode_stream(st)
        st.accept_waveform(sr, np.zeros(int(0.66 * sr), dtype=np.float32))
        st.input_finished()
        while rec.is_ready(st):
            rec.decode_stream(st)
        print(json.dumps({"file": w, "text": rec.get_result(st)}), flush=True)
else:
    if not a.keywords:
        sys.exit("kws needs --keywords FILE")
    kws = sherpa_onnx.KeywordSpotter(
        tokens=tokens, encoder=enc, decoder=dec, joiner=joi, keywords_file=keywords_file(a.keywords, a.model),
        num_threads=1, max_active_paths=a.beam, keywords_score=a.keywords_score,
        keywords_threshold=a.keywords_threshold, num_trailing_blanks=a.num_trailing_blanks,
        provider="cpu")
    # Encoder output frames per decoded chunk (decode_chunk_len 32 feature frames / 4).
    frames_per_chunk = 8
    for w in expand(a.wavs):
        s, sr = read(w)
        st = kws.create_stream()
        st.accept_waveform(sr, s)
        st.accept_waveform(sr, np.zeros(int(0.66 * sr), dtype=np.float32))
        st.input_finished()
        chunks = 0
        base = 0  # encoder frame where sherpa-onnx's timestamps restart (last reset)
        n = 0
        while kws.is_ready(st):
            kws.decode_stream(st)
            chunks += 1
            # One get_result per decode: sherpa-onnx drops a result it has already returned.
            res = kws.keyword_spotter.get_result(st)
            r = res.keyword.strip()
            if r:
                ts = res.timestamps
                start = base * 0.04 + ts[0]
                end = base * 0.04 + ts[-1]
                print(json.dumps({"file": w, "keyword": r, "start": round(start, 2),
                                  "end": round(end, 2), "tokens": list(res.tokens)}), flush=True)
                n += 1
                kws.reset_stream(st)
                base = chunks * frames_per_chunk
        print(json.dumps({"file": w, "detections": n}), flush=True)
