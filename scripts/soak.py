#!/usr/bin/env python3
"""Memory soak: pushes 10+ minutes of real speech through `zipvox listen` and prints resident
memory against audio processed. Not a test (nothing is asserted); it prints the growth after
warm-up, which should stay under 1 MiB.

usage: scripts/soak.py [--minutes 10] [--bin target/release/zipvox] [--shared ../shared]

The audio is the shared dev set (and test clips) concatenated with 0.5 s pauses, repeated to the
requested length, delivered through the ALSA `file` plugin (unpaced) into a ring large enough to
hold it all, so the recognizer runs as fast as it can; one socket client reads every event.
"""
import argparse, json, os, socket, subprocess, sys, tempfile, time, wave

ap = argparse.ArgumentParser()
ap.add_argument("--minutes", type=float, default=10.0)
ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "zipvox"))
ap.add_argument("--shared", default=os.environ.get("ZIPVOX_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared")))
a = ap.parse_args()
shared = os.path.abspath(a.shared)
model = os.path.join(shared, "models", "zipformer2-en-gigaspeech-3.3m")
wav_dir = os.path.join(shared, "audio", "dev", "wav")
clips = [os.path.join(wav_dir, f) for f in sorted(os.listdir(wav_dir))]
clips += [os.path.join(model, "test_wavs", f) for f in ("0.wav", "1.wav")]

pcm = bytearray()
for c in clips:
    with wave.open(c) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, c
        pcm += w.readframes(w.getnframes())
    pcm += bytes(16000)  # 0.5 s of silence
target = int(a.minutes * 60 * 16000 * 2)
audio = (pcm * (target // len(pcm) + 1))[:target]
seconds = len(audio) / 32000

tmp = tempfile.mkdtemp(prefix="zvsoak-")
raw = os.path.join(tmp, "audio.raw")
open(raw, "wb").write(audio)
open(os.path.join(tmp, ".asoundrc"), "w").write(
    f'pcm.zvfile {{ type file; slave.pcm "null"; file "/dev/null"; infile "{raw}"; format "raw" }}\n'
    'pcm.zvplug { type plug; slave { pcm "zvfile"; format S16_LE; rate 16000; channels 1 } }\n')
ring = min(600.0, seconds + 5)
open(os.path.join(tmp, "zipvox.toml"), "w").write(f'[audio]\ndevice = "zvplug"\nring_seconds = {ring}\n')
sock_path = os.path.join(tmp, "zv.sock")
env = dict(os.environ, HOME=tmp, RUST_LOG="warn")
daemon = subprocess.Popen([a.bin, "listen", "--config", os.path.join(tmp, "zipvox.toml"), "--model", model,
                           "--socket", sock_path], env=env, stderr=open(os.path.join(tmp, "daemon.log"), "w"))
for _ in range(300):
    if os.path.exists(sock_path):
        break
    time.sleep(0.1)
client = socket.socket(socket.AF_UNIX)
client.connect(sock_path)
reader = client.makefile("r")
control = socket.socket(socket.AF_UNIX)
control.connect(sock_path)
control_r = control.makefile("r")


def stats():
    control.sendall(b'{"cmd":"stats"}\n')
    while True:
        v = json.loads(control_r.readline())
        if v["type"] == "stats":
            return v


def rss_kib():
    for line in open(f"/proc/{daemon.pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


import threading
finals = []
def drain():
    for line in reader:
        v = json.loads(line)
        if v["type"] == "final":
            finals.append(v["text"])
threading.Thread(target=drain, daemon=True).start()

print(f"{seconds / 60:.1f} min of speech ({len(clips)} clips repeated); ring {ring:.0f} s; pid {daemon.pid}")
print(f"{'audio_s':>8} {'rss_KiB':>8} {'finals':>6}")
samples = []
next_report = 0.0
limit = seconds  # audio after this is the endless silence of the file plugin
while True:
    s = stats()
    audio_s, rss = s["audio_s"], rss_kib()
    samples.append((audio_s, rss))
    if audio_s >= next_report:
        print(f"{audio_s:8.1f} {rss:8d} {len(finals):6d}", flush=True)
        next_report += 30
    if audio_s >= limit or daemon.poll() is not None:
        break
    time.sleep(0.25)
daemon.terminate()
daemon.wait(timeout=30)
warm = next((r for t, r in samples if t >= 60), samples[0][1])
end = samples[-1][1]
peak_after = max(r for t, r in samples if t >= 60) if any(t >= 60 for t, _ in samples) else end
print(f"RSS after 60 s warm-up: {warm} KiB; at {samples[-1][0]:.0f} s: {end} KiB; growth {end - warm} KiB "
      f"(max after warm-up {peak_after} KiB); {len(finals)} finals; daemon exit {daemon.returncode}")
print(f"RTF {s['rtf']:.4f}, dropped samples {s['dropped_samples']}")
