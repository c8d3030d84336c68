#!/usr/bin/env python3
"""Reference fbank frames from kaldi-native-fbank for tests/fbank_parity.rs.

Runs knf.OnlineFbank with exactly sherpa-onnx's options (16 kHz, 80 bins, 25/10 ms, povey,
dither 0, snip_edges false, low 20 Hz, high -400 Hz) over a few short clips, one
accept_waveform() with the whole clip then input_finished(), and writes one small binary
file per clip to tests/fixtures/fbank/:

    b"FBK1", u32 num_samples, u32 num_frames, u32 dim, then num_frames * dim f32   (all LE)

plus manifest.json describing the clips (for humans; the test does not read it). (The FFT's
own bit-for-bit check against knf.Rfft, runtime/frontend/fft.rs, runs kaldi-native-fbank in
the test run itself and needs no fixture.)

Synthetic clips are generated here and regenerated identically by the Rust test (keep the
two in sync: same LCG, same formulas, f64 math rounded once to f32). WAV clips are read from
the shared directory ($ZIPVOX_SHARED, default <repo>/../shared); only their features are
committed, never the audio.

Usage: python3 scripts/gen_fbank_fixtures.py
"""

import json
import math
import os
import struct
import sys
import wave

import kaldi_native_fbank as knf
import numpy as np

SAMPLE_RATE = 16000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "fbank")
SHARED = os.environ.get("ZIPVOX_SHARED", os.path.join(REPO, "..", "shared"))

# (fixture name, path relative to the shared dir, number of leading samples used)
WAV_CLIPS = [
    ("wav_gigaspeech_0", "models/zipformer2-en-gigaspeech-3.3m/test_wavs/0.wav", 16000),
    ("wav_ls_1089_134686_0000", "audio/dev/wav/ls-1089-134686-0000.wav", 16000),
]


def lcg_noise(n, seed, amplitude):
    """Uniform noise in [-amplitude, amplitude) from the Numerical Recipes LCG (mod 2^32)."""
    out = np.empty(n, dtype=np.float64)
    x = seed
    for i in range(n):
        x = (1664525 * x + 1013904223) & 0xFFFFFFFF
        out[i] = ((x >> 8) / 16777216.0 * 2.0 - 1.0) * amplitude
    return out


def sweep(n, f0, f1, amplitude):
    """Linear chirp from f0 to f1 Hz over n samples."""
    duration = n / SAMPLE_RATE
    t = np.arange(n, dtype=np.float64) / SAMPLE_RATE
    phase = 2.0 * math.pi * (f0 * t + (f1 - f0) / (2.0 * duration) * t * t)
    return amplitude * np.sin(phase)


def sweep_noise(n):
    """Chirp 100 Hz -> 7000 Hz, plus a DC offset (exercises DC removal) and light noise."""
    return (sweep(n, 100.0, 7000.0, 0.4) + 0.05 + lcg_noise(n, 12345, 0.02)).astype(np.float32)


def synthetic_clips():
    return [
        ("sweep_noise", sweep_noise(12000)),
        ("silence", np.zeros(4800, dtype=np.float32)),
        # 0.05 s: 5 frames, the last ones reflected at the end.
        ("short_800", sweep_noise(800)),
        # Exactly one window: 3 frames.
        ("exact_400", lcg_noise(400, 7, 0.5).astype(np.float32)),
        # One frame whose window reflects several times over the whole signal.
        ("tiny_80", lcg_noise(80, 99, 0.3).astype(np.float32)),
        # Full-scale and int16-LSB-level noise.
        ("loud_noise", lcg_noise(3200, 2024, 1.0).astype(np.float32)),
        ("quiet_noise", lcg_noise(3200, 4242, 3.0e-5).astype(np.float32)),
    ]


def read_wav_head(path, num_samples):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        assert w.getframerate() == SAMPLE_RATE, path
        raw = w.readframes(num_samples)
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / np.float32(32768.0)


def sherpa_fbank_options():
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = False
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.preemph_coeff = 0.97
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = -400.0
    opts.mel_opts.is_librosa = False
    opts.use_energy = False
    opts.use_power = True
    opts.use_log_fbank = True
    return opts


def knf_frames(samples):
    fbank = knf.OnlineFbank(sherpa_fbank_options())
    fbank.accept_waveform(SAMPLE_RATE, samples.tolist())
    fbank.input_finished()
    n = fbank.num_frames_ready
    frames = np.array([fbank.get_frame(i) for i in range(n)], dtype=np.float32).reshape(n, 80)
    return frames


def write_fixture(name, samples, frames):
    path = os.path.join(OUT_DIR, name + ".fbank")
    with open(path, "wb") as f:
        f.write(b"FBK1")
        f.write(struct.pack("<III", len(samples), frames.shape[0], frames.shape[1]))
        f.write(frames.astype("<f4").tobytes())
    return path


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    manifest = {
        "generator": "scripts/gen_fbank_fixtures.py",
        "kaldi_native_fbank": getattr(knf, "__version__", "unknown"),
        "options": "sherpa-onnx: 16 kHz, 80 mel bins, 25/10 ms, povey, preemph 0.97, dc removal, "
        "dither 0, snip_edges false, low 20 Hz, high -400 Hz, power, log",
        "format": "b'FBK1', u32 num_samples, u32 num_frames, u32 dim, f32 frames (little-endian)",
        "clips": [],
    }
    clips = [(name, samples, "synthetic") for name, samples in synthetic_clips()]
    for name, rel, n in WAV_CLIPS:
        clips.append((name, read_wav_head(os.path.join(SHARED, rel), n), f"{rel}, first {n} samples"))
    for name, samples, source in clips:
        frames = knf_frames(samples)
        path = write_fixture(name, samples, frames)
        manifest["clips"].append(
            {"name": name, "source": source, "num_samples": len(samples), "num_frames": frames.shape[0]}
        )
        print(f"{os.path.relpath(path, REPO)}: {len(samples)} samples -> {frames.shape[0]} frames",
              file=sys.stderr)
    with open(os.path.join(OUT_DIR, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
