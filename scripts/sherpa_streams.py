#!/usr/bin/env python3
"""sherpa-onnx decoding N streams at once (the peer of `zipvox bench --streams N`).

usage: sherpa_streams.py MODEL_DIR --streams N [--repeat R] WAV...

Each stream gets the WAVs in turn; every round feeds each unfinished stream its next 0.1 s
piece (then 0.66 s of silence and input_finished() after its last), and the streams that are
ready are decoded together with `decode_streams` (onnxruntime runs them as one batch) until none
is. 1 thread, int8 encoder and joiner, fp32 decoder: the files `zipvox bench` picks. Prints one
JSON object: streams, audio_s, decode_s (fastest of R), rtf, texts.
Needs a model exported with a dynamic batch axis (the fixed-shape "mobile" 3.3M model takes one
stream per call).
"""
import argparse, glob, json, os, time, wave
import numpy as np
import sherpa_onnx

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("--streams", type=int, required=True)
ap.add_argument("--repeat", type=int, default=1)
ap.add_argument("wavs", nargs="+")
a = ap.parse_args()


def pick(kind, int8):
    files = sorted(glob.glob(os.path.join(a.model, f"{kind}-*.onnx")))
    q = [f for f in files if f.endswith(".int8.onnx")]
    f = [f for f in files if not f.endswith(".int8.onnx")]
    return (q or f)[0] if int8 else (f or q)[0]


rec = sherpa_onnx.OnlineRecognizer.from_transducer(
    tokens=os.path.join(a.model, "tokens.txt"), encoder=pick("encoder", True), decoder=pick("decoder", False),
    joiner=pick("joiner", True), num_threads=1, sample_rate=16000, feature_dim=80, provider="cpu")


def read(p):
    with wave.open(p) as f:
        assert f.getnchannels() == 1 and f.getsampwidth() == 2 and f.getframerate() == 16000, p
        return np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16).astype(np.float32) / 32768


clips = [read(w) for w in a.wavs]
inputs = [clips[i % len(clips)] for i in range(a.streams)]
step = 1600
best, texts = None, []
for _ in range(a.repeat):
    t0 = time.perf_counter()
    streams = [rec.create_stream() for _ in inputs]
    rounds = max((len(s) + step - 1) // step for s in inputs)
    for r in range(rounds):
        for st, s in zip(streams, inputs):
            if r * step < len(s):
                st.accept_waveform(16000, s[r * step:(r + 1) * step])
                if (r + 1) * step >= len(s):
                    st.accept_waveform(16000, np.zeros(int(0.66 * 16000), dtype=np.float32))
                    st.input_finished()
        ready = [st for st in streams if rec.is_ready(st)]
        while ready:
            rec.decode_streams(ready)
            ready = [st for st in streams if rec.is_ready(st)]
    dt = time.perf_counter() - t0
    best = dt if best is None else min(best, dt)
    texts = [rec.get_result(st) for st in streams]
audio_s = sum(len(s) for s in inputs) / 16000
print(json.dumps({"streams": a.streams, "audio_s": round(audio_s, 3), "decode_s": round(best, 4),
                  "rtf": round(best / audio_s, 5), "texts": texts}))
