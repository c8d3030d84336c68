#!/usr/bin/env python3
"""Reference encoder outputs from onnxruntime, chunk after chunk with the states fed back.

usage: ort_encoder_reference.py ENCODER.onnx N_CHUNKS OUT.encout

Chunk c's features are x[c, t, f] = sin(0.01 * (c*T*F + t*F + f)) * 3 - 5 (computed in float64,
stored as float32), a deterministic input that tests/encoder_parity.rs regenerates bit for bit.
Every input except x starts at zero (batch axis fixed to 1) and is replaced by output new_<name>.
OUT.encout: b"ENC1", u32 n_chunks, u32 frames, u32 dim, then n_chunks*frames*dim float32 (LE).
"""
import struct, sys
import numpy as np
import onnxruntime as ort

path, n_chunks, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
so = ort.SessionOptions(); so.intra_op_num_threads = 1
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
meta = s.get_modelmeta().custom_metadata_map
T = int(meta["T"])
ins = s.get_inputs()
F = [i.shape for i in ins if i.name == "x"][0][2]
types = {"tensor(float)": np.float32, "tensor(int64)": np.int64}
states = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], dtype=types[i.type])
          for i in ins if i.name != "x"}
outs = [o.name for o in s.get_outputs()]
chunks = []
for c in range(n_chunks):
    idx = np.arange(T * F, dtype=np.float64) + c * T * F
    x = (np.sin(0.01 * idx) * 3 - 5).astype(np.float32).reshape(1, T, F)
    res = dict(zip(outs, s.run(None, {"x": x, **states})))
    chunks.append(res["encoder_out"][0])
    for k in states:
        states[k] = res["new_" + k].astype(states[k].dtype)
enc = np.stack(chunks).astype("<f4")
with open(out, "wb") as f:
    f.write(b"ENC1" + struct.pack("<III", n_chunks, enc.shape[1], enc.shape[2]))
    f.write(enc.tobytes())
print(f"{out}: {n_chunks} chunks of {enc.shape[1]}x{enc.shape[2]}")
