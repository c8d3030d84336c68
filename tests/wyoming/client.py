#!/usr/bin/env python3
"""Real Wyoming clients for tests/wyoming.rs: the `wyoming` package's AsyncTcpClient (1.10.2).

  client.py describe URI                     info (parsed with wyoming.info.Info.from_event)
  client.py transcribe URI WAV... [--chunk N] [--delay S] [--concurrent] [--transcribe-first 0]
  client.py detect URI WAV...                one long-lived connection, detect + audio per WAV
  client.py kws-reference MODEL_DIR KEYWORDS WAV... sherpa-onnx's KeywordSpotter on the same clips

Each prints one JSON object per line. WAVs are sent as stored (any rate/width/channels) with
wyoming.audio.wav_to_chunks-sized chunks of N frames (default 1024).
"""

import argparse
import asyncio
import json
import sys
import time
import wave

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.wake import Detect, Detection, NotDetected

TIMEOUT = 60


def connect(uri):
    """AsyncTcpClient for tcp://HOST:PORT (AsyncUnixClient for unix://PATH)."""
    return AsyncClient.from_uri(uri)


def read_wav(path):
    with wave.open(path, "rb") as w:
        return w.getframerate(), w.getsampwidth(), w.getnchannels(), w.readframes(w.getnframes())


async def send_audio(client, path, chunk, delay):
    rate, width, channels, pcm = read_wav(path)
    await client.write_event(AudioStart(rate=rate, width=width, channels=channels, timestamp=0).event())
    step = chunk * width * channels
    for i in range(0, len(pcm), step):
        await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=pcm[i:i + step]).event())
        if delay:
            await asyncio.sleep(delay)
    await client.write_event(AudioStop().event())
    return time.perf_counter()


async def describe(uri):
    async with connect(uri) as c:
        t0 = time.perf_counter()
        await c.write_event(Describe().event())
        e = await asyncio.wait_for(c.read_event(), TIMEOUT)
        dt = time.perf_counter() - t0
        info = Info.from_event(e)
        out = {"seconds": dt, "type": e.type, "info": info.to_dict(),
               "asr_models": [m.name for p in info.asr for m in p.models],
               "wake_models": [m.name for p in info.wake for m in p.models],
               "streaming": [p.supports_transcript_streaming for p in info.asr]}
        print(json.dumps(out, ensure_ascii=False), flush=True)


async def transcribe_one(uri, path, chunk, delay, transcribe_first):
    async with connect(uri) as c:
        if transcribe_first:
            await c.write_event(Transcribe(language="en").event())
        reader = asyncio.ensure_future(read_transcript(c))
        t_stop = await send_audio(c, path, chunk, delay)
        out = await asyncio.wait_for(reader, TIMEOUT)
        out["file"] = path
        out["final_latency_ms"] = round((out.pop("t_final") - t_stop) * 1000, 1)
        return out


async def read_transcript(c):
    types, deltas, text, t_final = [], [], None, None
    while True:
        e = await asyncio.wait_for(c.read_event(), TIMEOUT)
        if e is None:
            break
        types.append(e.type)
        if TranscriptChunk.is_type(e.type):
            deltas.append(TranscriptChunk.from_event(e).text)
        elif Transcript.is_type(e.type):
            text = Transcript.from_event(e).text
            t_final = time.perf_counter()
        elif Error.is_type(e.type):
            err = Error.from_event(e)
            return {"types": types, "error": err.code, "error_text": err.text, "t_final": 0}
        elif TranscriptStop.is_type(e.type):
            break
    return {"types": types, "deltas": deltas, "text": text, "t_final": t_final or 0}


async def transcribe(a):
    jobs = [transcribe_one(a.uri, w, a.chunk, a.delay, a.transcribe_first) for w in a.wavs]
    if a.concurrent:
        results = await asyncio.gather(*jobs)
    else:
        results = [await j for j in jobs]
    for r in results:
        print(json.dumps(r, ensure_ascii=False), flush=True)


async def detect(a):
    # One connection for every clip, as a satellite keeps its wake-word connection open. A ping
    # after audio-stop marks the end of each clip's answers (events are handled in order).
    async with connect(a.uri) as c:
        for path in a.wavs:
            await c.write_event(Detect(names=None).event())
            await send_audio(c, path, a.chunk, 0)
            await c.write_event(Ping(text=path).event())
            names, not_detected, timestamps, errors = [], False, [], []
            while True:
                e = await asyncio.wait_for(c.read_event(), TIMEOUT)
                if e is None or Pong.is_type(e.type):
                    break
                if Detection.is_type(e.type):
                    d = Detection.from_event(e)
                    names.append(d.name)
                    timestamps.append(d.timestamp)
                elif NotDetected.is_type(e.type):
                    not_detected = True
                elif Error.is_type(e.type):
                    errors.append(Error.from_event(e).code)
            print(json.dumps({"file": path, "detections": names, "timestamps": timestamps,
                              "not_detected": not_detected, "errors": errors}, ensure_ascii=False), flush=True)


def kws_reference(a):
    """sherpa-onnx 2.0.1's KeywordSpotter (defaults as zipvox's: 4 paths, score 1.0, threshold
    0.25, 1 trailing blank), the clip then 0.66 s of silence, reset after each hit."""
    import glob
    import os

    import numpy as np
    import sherpa_onnx

    def pick(kind):
        files = sorted(glob.glob(os.path.join(a.model, f"{kind}-*.onnx")))
        return ([f for f in files if f.endswith(".int8.onnx")] or files)[0]

    kws = sherpa_onnx.KeywordSpotter(
        tokens=os.path.join(a.model, "tokens.txt"), encoder=pick("encoder"),
        decoder=[f for f in sorted(glob.glob(os.path.join(a.model, "decoder-*.onnx"))) if not f.endswith(".int8.onnx")][0],
        joiner=pick("joiner"), keywords_file=a.keywords, num_threads=1, max_active_paths=4,
        keywords_score=1.0, keywords_threshold=0.25, num_trailing_blanks=1)
    for path in a.wavs:
        rate, width, channels, pcm = read_wav(path)
        assert width == 2 and channels == 1, path
        s = np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768
        st = kws.create_stream()
        st.accept_waveform(rate, s)
        st.accept_waveform(rate, np.zeros(int(0.66 * rate), dtype=np.float32))
        st.input_finished()
        names = []
        while kws.is_ready(st):
            kws.decode_stream(st)
            r = kws.get_result(st)
            if r:
                names.append(r)
                kws.reset_stream(st)
        print(json.dumps({"file": path, "detections": names}, ensure_ascii=False), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["describe", "transcribe", "detect", "kws-reference"])
    ap.add_argument("args", nargs="+")
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--concurrent", action="store_true")
    ap.add_argument("--transcribe-first", type=int, default=1)
    a = ap.parse_args()
    if a.mode == "kws-reference":
        a.model, a.keywords, a.wavs = a.args[0], a.args[1], a.args[2:]
        return kws_reference(a)
    a.uri, a.wavs = a.args[0], a.args[1:]
    if a.mode == "describe":
        asyncio.run(describe(a.uri))
    elif a.mode == "transcribe":
        asyncio.run(transcribe(a))
    else:
        asyncio.run(detect(a))


if __name__ == "__main__":
    sys.exit(main())
