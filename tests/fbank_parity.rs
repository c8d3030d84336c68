//! Parity of the fbank frontend with kaldi-native-fbank (what sherpa-onnx uses): every frame
//! bit-identical; and invariance of the streamed frames to how the audio is split.
//!
//! Reference frames come from `scripts/gen_fbank_fixtures.py` (`tests/fixtures/fbank/*.fbank`).
//! Synthetic clips are regenerated here with the same formulas; WAV clips are read from the
//! shared directory (`$ZIPVOX_SHARED`, default `<crate>/../shared`), whose audio is not committed.

use std::path::PathBuf;

use zipvox::frontend::{FbankOptions, OnlineFbank};

const SAMPLE_RATE: f64 = 16000.0;
const DIM: usize = 80;

// ---- synthetic signals: keep in sync with scripts/gen_fbank_fixtures.py ----

/// Uniform noise in [-amplitude, amplitude) from the Numerical Recipes LCG (mod 2^32).
fn lcg_noise_f64(n: usize, seed: u32, amplitude: f64) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            ((x >> 8) as f64 / 16777216.0 * 2.0 - 1.0) * amplitude
        })
        .collect()
}

fn lcg_noise(n: usize, seed: u32, amplitude: f64) -> Vec<f32> {
    lcg_noise_f64(n, seed, amplitude)
        .into_iter()
        .map(|x| x as f32)
        .collect()
}

/// Chirp 100 Hz -> 7000 Hz at 0.4, plus 0.05 DC and 0.02 noise.
fn sweep_noise(n: usize) -> Vec<f32> {
    let (f0, f1, amplitude) = (100.0f64, 7000.0f64, 0.4f64);
    let duration = n as f64 / SAMPLE_RATE;
    let noise = lcg_noise_f64(n, 12345, 0.02);
    (0..n)
        .map(|i| {
            let t = i as f64 / SAMPLE_RATE;
            let phase =
                2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) / (2.0 * duration) * t * t);
            (amplitude * phase.sin() + 0.05 + noise[i]) as f32
        })
        .collect()
}

fn synthetic_clip(name: &str) -> Vec<f32> {
    match name {
        "sweep_noise" => sweep_noise(12000),
        "silence" => vec![0.0; 4800],
        "short_800" => sweep_noise(800),
        "exact_400" => lcg_noise(400, 7, 0.5),
        "tiny_80" => lcg_noise(80, 99, 0.3),
        "loud_noise" => lcg_noise(3200, 2024, 1.0),
        "quiet_noise" => lcg_noise(3200, 4242, 3.0e-5),
        _ => panic!("unknown synthetic clip {name}"),
    }
}

const SYNTHETIC: [&str; 7] = [
    "sweep_noise",
    "silence",
    "short_800",
    "exact_400",
    "tiny_80",
    "loud_noise",
    "quiet_noise",
];

/// (fixture name, WAV path under the shared dir, leading samples used).
const WAV_CLIPS: [(&str, &str, usize); 2] = [
    (
        "wav_gigaspeech_0",
        "models/zipformer2-en-gigaspeech-3.3m/test_wavs/0.wav",
        16000,
    ),
    (
        "wav_ls_1089_134686_0000",
        "audio/dev/wav/ls-1089-134686-0000.wav",
        16000,
    ),
];

// ---- fixtures and audio ----

struct Reference {
    num_samples: usize,
    num_frames: usize,
    frames: Vec<f32>,
}

fn read_reference(name: &str) -> Reference {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fbank")
        .join(format!("{name}.fbank"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..4], b"FBK1", "{}: bad magic", path.display());
    let u32_at = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as usize;
    let (num_samples, num_frames, dim) = (u32_at(4), u32_at(8), u32_at(12));
    assert_eq!(dim, DIM);
    let data = &bytes[16..];
    assert_eq!(
        data.len(),
        num_frames * dim * 4,
        "{}: truncated",
        path.display()
    );
    let frames = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Reference {
        num_samples,
        num_frames,
        frames,
    }
}

fn shared_dir() -> PathBuf {
    match std::env::var_os("ZIPVOX_SHARED") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

/// First `n` samples of a 16-bit mono 16 kHz WAV, scaled by 1/32768 like the fixture script.
fn read_wav_head(rel: &str, n: usize) -> Vec<f32> {
    let path = shared_dir().join(rel);
    let reader =
        hound::WavReader::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 16000, 16),
        "{}",
        path.display()
    );
    reader
        .into_samples::<i16>()
        .take(n)
        .map(|s| s.expect("WAV sample") as f32 / 32768.0)
        .collect()
}

// ---- running the frontend ----

/// Feeds `samples` in pieces of `piece` samples (0 = all at once), then flushes; collects every
/// frame as soon as it is ready and discards it, as a live consumer would.
fn run_streaming(fbank: &mut OnlineFbank, samples: &[f32], piece: usize) -> Vec<f32> {
    let mut out = Vec::new();
    let mut next = 0;
    let mut drain = |fbank: &mut OnlineFbank, out: &mut Vec<f32>| {
        let ready = fbank.num_frames_ready();
        if ready > next {
            let start = out.len();
            out.resize(start + (ready - next) * DIM, 0.0);
            fbank.copy_frames(next, ready - next, &mut out[start..]);
            fbank.discard_frames_before(ready);
            next = ready;
        }
    };
    let pieces: Vec<&[f32]> = if piece == 0 {
        vec![samples]
    } else {
        samples.chunks(piece).collect()
    };
    for p in pieces {
        fbank.accept_waveform(p);
        drain(fbank, &mut out);
    }
    fbank.input_finished();
    drain(fbank, &mut out);
    out
}

fn compute(samples: &[f32], piece: usize) -> Vec<f32> {
    let mut fbank = OnlineFbank::new(FbankOptions::default());
    assert_eq!(fbank.dim(), DIM);
    run_streaming(&mut fbank, samples, piece)
}

/// Checks frame count and that every frame is bit-identical to the reference.
fn check_against_reference(name: &str, samples: &[f32]) {
    let reference = read_reference(name);
    assert_eq!(
        samples.len(),
        reference.num_samples,
        "{name}: test signal out of sync with the fixture"
    );
    let ours = compute(samples, 0);
    assert_eq!(
        ours.len() / DIM,
        reference.num_frames,
        "{name}: frame count"
    );
    for (f, (a, b)) in ours
        .chunks(DIM)
        .zip(reference.frames.chunks(DIM))
        .enumerate()
    {
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(
            bits(a) == bits(b),
            "{name}: frame {f} not bit-identical (max diff {diff:e})\nours: {a:?}\nknf:  {b:?}"
        );
    }
    println!("{name}: {} frames bit-identical", reference.num_frames);
}

#[test]
fn synthetic_clips_match_kaldi_native_fbank() {
    for name in SYNTHETIC {
        check_against_reference(name, &synthetic_clip(name));
    }
}

#[test]
fn wav_clips_match_kaldi_native_fbank() {
    for (name, rel, n) in WAV_CLIPS {
        check_against_reference(name, &read_wav_head(rel, n));
    }
}

#[test]
fn piece_size_does_not_change_frames() {
    let mut signals = vec![
        sweep_noise(12000),
        lcg_noise(400, 7, 0.5),
        lcg_noise(80, 99, 0.3),
    ];
    signals.push(read_wav_head(WAV_CLIPS[0].1, 16000));
    for samples in &signals {
        let whole = compute(samples, 0);
        assert_eq!(whole.len() / DIM, (samples.len() + 80) / 160);
        for piece in [1, 160, 1601] {
            let split = compute(samples, piece);
            // Bit-identical, not merely close.
            assert!(
                split == whole,
                "piece size {piece} changes frames ({} samples)",
                samples.len()
            );
        }
    }
}

#[test]
fn irregular_pieces_and_reset_give_identical_frames() {
    let samples = sweep_noise(12000);
    let whole = compute(&samples, 0);
    // Pseudo-random piece sizes 0..=700 (including empty pieces).
    let mut fbank = OnlineFbank::new(FbankOptions::default());
    for round in 0..2 {
        let sizes = lcg_noise_f64(200, 31 + round, 1.0);
        let mut pos = 0;
        let mut out = Vec::new();
        let mut next = 0;
        for s in sizes {
            let len = ((s + 1.0) * 350.0) as usize;
            let end = (pos + len).min(samples.len());
            fbank.accept_waveform(&samples[pos..end]);
            pos = end;
            while next < fbank.num_frames_ready() {
                out.extend_from_slice(fbank.frame(next));
                next += 1;
            }
            // Keep a few frames around, as a consumer with left context would.
            fbank.discard_frames_before(next.saturating_sub(3));
        }
        fbank.accept_waveform(&samples[pos..]);
        fbank.input_finished();
        assert!(fbank.is_finished());
        let ready = fbank.num_frames_ready();
        let mut tail = vec![0.0; (ready - next) * DIM];
        fbank.copy_frames(next, ready - next, &mut tail);
        out.extend_from_slice(&tail);
        assert!(out == whole, "round {round}");
        // Second round reuses the same instance.
        fbank.reset();
        assert_eq!(fbank.num_frames_ready(), 0);
    }
}
