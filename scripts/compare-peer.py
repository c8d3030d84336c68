#!/usr/bin/env python3
"""Side-by-side speed of zipvox and its peer (onnxruntime / sherpa-onnx), same machine, same run.

usage: scripts/compare-peer.py [--shared DIR] [--repeat N] [--rounds R] [--bin PATH] [--streams N] [MODEL_NAME ...]

For each model under SHARED/models (default: the 3.3M test model and the bench-* models):
  - zipvox: `zipvox bench --json` on test_wavs/1.wav (load, encoder ms/chunk, RTF, peak RSS)
  - onnxruntime: SHARED/tools/ort_model_bench.py on the same int8 encoder (ms per chunk, 1 thread)
  - sherpa-onnx: SHARED/tools/sherpa_decode.py on the same WAV (RTF, fastest of N), plus its model
    load time and peak RSS measured here (the Python process: interpreter + numpy included)
and prints a Markdown table with zipvox/peer ratios (lower is better for zipvox). The tools run
in R rounds (default 3), alternating; each figure is the tool's fastest round, and the per-round
ratios are printed beside the ratio of those, to show how much the machine moved them.
With --streams N (N > 1), a second table: N streams at once through one loaded model,
`zipvox bench --streams N` (batched per layer, and the same rounds unbatched) against
scripts/sherpa_streams.py (sherpa-onnx's decode_streams: onnxruntime batches the ready
streams), on the same WAVs in turn (1.wav, 0.wav and the dev clips), for the models with a
dynamic batch axis (the fixed-shape 3.3M model cannot batch in onnxruntime).
Needs: pip install sherpa-onnx onnxruntime numpy.
"""
import argparse, json, os, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--shared", default=os.environ.get("ZIPVOX_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared")))
ap.add_argument("--repeat", type=int, default=3)
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "zipvox"))
ap.add_argument("--iters", type=int, default=30, help="onnxruntime encoder runs")
ap.add_argument("--streams", type=int, default=1, help="also compare N streams at once (N > 1)")
ap.add_argument("--rounds", type=int, default=3, help="rounds alternating the tools; each reports its fastest round")
ap.add_argument("models", nargs="*", default=["zipformer2-en-gigaspeech-3.3m", "bench-zipformer2-small-random", "bench-zipformer2-medium-random"])
a = ap.parse_args()
shared = os.path.abspath(a.shared)
wav = os.path.join(shared, "models", "zipformer2-en-gigaspeech-3.3m", "test_wavs", "1.wav")
tools = os.path.join(shared, "tools")


def run(cmd):
    return run_rss(cmd)[0]


def run_rss(cmd):
    """Runs a command; returns (stdout, peak RSS of that process in MiB)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return out, ru.ru_maxrss / 1024.0


def encoder_file(model_dir):
    fs = sorted(f for f in os.listdir(model_dir) if f.startswith("encoder") and f.endswith(".int8.onnx"))
    return os.path.join(model_dir, fs[0])


SHERPA_LOAD = r"""
import glob, os, sys, time
t0 = time.perf_counter()
import sherpa_onnx
d = sys.argv[1]
def pick(kind, int8):
    files = sorted(glob.glob(os.path.join(d, f"{kind}-*.onnx")))
    q = [f for f in files if f.endswith(".int8.onnx")]; f = [f for f in files if not f.endswith(".int8.onnx")]
    return (q or f)[0] if int8 else (f or q)[0]
t1 = time.perf_counter()
r = sherpa_onnx.OnlineRecognizer.from_transducer(tokens=os.path.join(d, "tokens.txt"), encoder=pick("encoder", True),
    decoder=pick("decoder", False), joiner=pick("joiner", True), num_threads=1, sample_rate=16000, feature_dim=80)
print(time.perf_counter() - t1)
"""

def best(results, key):
    return min(r[key] for r in results)


def spread(values):
    lo, hi = min(values), max(values)
    return f"{lo:.2f}" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}–{hi:.2f}"


# Rounds alternate the tools (zipvox, onnxruntime, sherpa-onnx, then again), so that a burst of
# load from the VM's neighbours hits one round of each rather than all runs of one tool.
rows = []
for name in a.models:
    d = os.path.join(shared, "models", name)
    zs, orts, ss, loads, z_rsss, s_rsss = [], [], [], [], [], []
    for _ in range(a.rounds):
        z_out, z_rss = run_rss([a.bin, "bench", "--json", "--repeat", str(a.repeat), "--model", d, wav])
        zs.append(json.loads(z_out))
        z_rsss.append(z_rss)
        ort_out = run([sys.executable, os.path.join(tools, "ort_model_bench.py"), encoder_file(d), str(a.iters)])
        orts.append(float(ort_out.split("per-run")[1].split("ms")[0]))
        s_out, s_rss = run_rss([sys.executable, os.path.join(tools, "sherpa_decode.py"), d, "--repeat", str(a.repeat), wav])
        ss.append(json.loads(s_out.strip().splitlines()[-1]))
        s_rsss.append(s_rss)
        load_out, _ = run_rss([sys.executable, "-c", SHERPA_LOAD, d])
        loads.append(float(load_out.strip()))
    rows.append((name, zs, orts, ss, loads, z_rsss, s_rsss))

print(f"machine: {os.uname().machine}, {os.cpu_count()} cores; zipvox kernels: {rows[0][1][0]['kernels'] if rows else '-'}; 1 thread each; WAV {os.path.basename(wav)}; "
      f"{a.rounds} round(s) alternating the tools, each number the fastest of its rounds (ratios of those; per-round ratios in brackets)")
print()
print("| model | encoder ms/chunk zipvox | onnxruntime | ratio | RTF zipvox | sherpa-onnx | ratio | load s zipvox | sherpa-onnx | peak RSS MiB zipvox | sherpa-onnx (python) | tokens zipvox / sherpa words |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for name, zs, orts, ss, loads, z_rsss, s_rsss in rows:
    enc, ort_ms = best(zs, "encoder_ms_per_chunk"), min(orts)
    rtf, s_rtf = best(zs, "rtf"), best(ss, "rtf")
    enc_rounds = spread([z["encoder_ms_per_chunk"] / o for z, o in zip(zs, orts)])
    rtf_rounds = spread([z["rtf"] / s["rtf"] for z, s in zip(zs, ss)])
    print(f"| {name} | {enc:.2f} | {ort_ms:.2f} | {enc / ort_ms:.2f} ({enc_rounds}) | "
          f"{rtf:.4f} | {s_rtf:.4f} | {rtf / s_rtf:.2f} ({rtf_rounds}) | {best(zs, 'load_s'):.2f} | {min(loads):.2f} | "
          f"{max(z_rsss):.0f} | {max(s_rsss):.0f} | {zs[0]['tokens']} / {len(ss[0]['text'].split())} |")
print()
for name, zs, *_ in rows:
    z = min(zs, key=lambda z: z["encoder_ms_per_chunk"])
    print(f"{name}: zipvox encoder {z['encoder_gmacs']:.3f} GMAC/chunk at {z['encoder_gmac_per_s']:.1f} GMAC/s; joiner {z['joiner_ms_per_call']:.4f} ms/call; decoder {z['decoder_ms_per_call']:.4f} ms/call")

if a.streams > 1:
    dev = os.path.join(shared, "audio", "dev", "wav")
    clips = [wav, os.path.join(os.path.dirname(wav), "0.wav")]
    clips += sorted(os.path.join(dev, f) for f in os.listdir(dev) if f.endswith(".wav"))
    clips = clips[:a.streams]
    print()
    print(f"{a.streams} streams at once, 1 thread each, 0.1 s pieces per stream per round; WAVs: {', '.join(os.path.basename(c) for c in clips)}")
    print()
    print("| model | aggregate RTF zipvox batched | zipvox unbatched | sherpa-onnx decode_streams | ratio (batched / sherpa-onnx) | real-time streams per core zipvox / sherpa-onnx | zipvox transcripts = alone |")
    print("|---|---|---|---|---|---|---|")
    for name in a.models:
        d = os.path.join(shared, "models", name)
        zs, ss, batches = [], [], True
        for _ in range(a.rounds):
            zs.append(json.loads(run([a.bin, "bench", "--json", "--repeat", str(a.repeat), "--streams", str(a.streams), "--model", d] + clips)))
            if not batches:
                continue
            try:
                ss.append(json.loads(run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "sherpa_streams.py"), d,
                                          "--streams", str(a.streams), "--repeat", str(a.repeat)] + clips).strip().splitlines()[-1]))
            except SystemExit:
                batches = False  # a fixed-batch export: it will not batch in the next round either
        rtf = best(zs, "rtf")
        if ss:
            s_rtf = best(ss, "rtf")
            rounds = spread([z["rtf"] / s["rtf"] for z, s in zip(zs, ss)])
            peer, ratio, spc = f"{s_rtf:.4f}", f"{rtf / s_rtf:.2f} ({rounds})", f"{1 / s_rtf:.1f}"
        else:
            peer, ratio, spc = "n/a (fixed batch 1)", "-", "-"
        identical = all(z["identical"] for z in zs)
        print(f"| {name} | {rtf:.4f} | {best(zs, 'alone_rtf'):.4f} | {peer} | {ratio} | {1 / rtf:.1f} / {spc} | {identical} |")
