#!/usr/bin/env python3
"""Reference decoder outputs from onnxruntime (all graph optimizations, one thread, as
sherpa-onnx runs it) for fixed contexts.

usage: ort_decoder_reference.py DECODER.onnx OUT.decout

Contexts: 40 pairs from a fixed-seed generator in [0, 500), with [-1, 0], [0, 0] and [-1, -1]
first (sherpa-onnx's initial context uses -1 for blank padding).
OUT.decout: b"DEC1", u32 n, u32 context_size, u32 dim, then n*context_size int64 contexts,
then n*dim float32 outputs (LE).
"""
import struct, sys
import numpy as np
import onnxruntime as ort

path, out = sys.argv[1], sys.argv[2]
so = ort.SessionOptions(); so.intra_op_num_threads = 1
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(1)
ctx = rng.integers(0, 500, size=(40, 2)).astype(np.int64)
ctx[0], ctx[1], ctx[2] = [-1, 0], [0, 0], [-1, -1]
y = s.run(None, {"y": ctx})[0].astype("<f4")
with open(out, "wb") as f:
    f.write(b"DEC1" + struct.pack("<III", ctx.shape[0], ctx.shape[1], y.shape[1]))
    f.write(ctx.astype("<i8").tobytes())
    f.write(y.tobytes())
print(f"{out}: {ctx.shape[0]} contexts, dim {y.shape[1]}")
