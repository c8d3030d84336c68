//! Several streams through one loaded model, batched per layer (`model::run_chunks`,
//! `recognizer::decode_batch`, `zipvox bench --streams`): every stream's encoder output is
//! bit-identical to what it gets alone, so its transcript is too.

mod common;
use common::*;
use std::sync::Arc;
use zipvox::model::{run_chunks, EncoderModel, EncoderRunner, Precision};
use zipvox::recognizer::{decode_batch, Recognizer};
use zipvox::search::{DecodingConfig, DecodingMethod};

/// Deterministic features for stream `s`, chunk `c`.
fn features(s: usize, c: usize, t: usize, f: usize) -> Vec<f32> {
    (0..t * f).map(|i| (((c * t * f + i) as f64 * 0.013 + s as f64 * 1.7).sin() * 3.0 - 5.0) as f32).collect()
}

fn bits(v: &tract_onnx::prelude::TValue) -> Vec<u32> {
    v.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()
}

/// Three streams that join at different chunks (so their caches differ), batched, against the
/// same streams run alone.
fn check_encoder(encoder: &str) {
    let model = Arc::new(EncoderModel::load(&shared_dir().join("models").join(encoder), &Default::default()).unwrap());
    assert!(model.batches_streams(), "{encoder}: the plan should run streams in lockstep");
    let (t, f) = (model.meta.chunk_frames, model.feature_dim());
    let mut batched: Vec<EncoderRunner> = (0..3).map(|_| EncoderRunner::new(model.clone()).unwrap()).collect();
    let mut alone: Vec<EncoderRunner> = (0..3).map(|_| EncoderRunner::new(model.clone()).unwrap()).collect();
    let mut chunk = [0usize; 3];
    for round in 0..6 {
        // Stream s takes part from round s on.
        let active: Vec<usize> = (0..3).filter(|&s| round >= s).collect();
        let xs: Vec<Vec<f32>> = active.iter().map(|&s| features(s, chunk[s], t, f)).collect();
        let slices: Vec<&[f32]> = xs.iter().map(|x| &x[..]).collect();
        let mut runners: Vec<&mut EncoderRunner> =
            batched.iter_mut().enumerate().filter(|(s, _)| active.contains(s)).map(|(_, r)| r).collect();
        let outs = run_chunks(&mut runners, &slices).unwrap();
        for (&s, out) in active.iter().zip(&outs) {
            let want = alone[s].run_chunk(&features(s, chunk[s], t, f)).unwrap();
            assert_eq!(bits(out), bits(&want), "{encoder}: stream {s}, chunk {}", chunk[s]);
            chunk[s] += 1;
        }
    }
}

#[test]
fn batched_encoder_chunks_equal_each_stream_alone() {
    check_encoder("zipformer2-en-gigaspeech-3.3m/encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx");
    check_encoder("bench-zipformer2-small-random/encoder-epoch-99-avg-1-chunk-16-left-128.int8.onnx");
}

/// The clips fed 0.1 s per round, as `zipvox bench --streams` does.
fn decode_together(model: &Arc<zipvox::model::Transducer>, clips: &[Vec<f32>], decoding: &DecodingConfig) -> Vec<String> {
    let mut rs: Vec<Recognizer> = clips.iter().map(|_| Recognizer::with_decoding(model.clone(), decoding).unwrap()).collect();
    let piece = 1600;
    let rounds = clips.iter().map(|c| c.len().div_ceil(piece)).max().unwrap();
    for round in 0..rounds {
        for (r, c) in rs.iter_mut().zip(clips) {
            let start = round * piece;
            if start < c.len() {
                let end = (start + piece).min(c.len());
                r.accept_waveform_deferred(&c[start..end]);
                if end == c.len() {
                    r.input_finished_deferred();
                }
            }
        }
        decode_batch(&mut rs.iter_mut().collect::<Vec<_>>()).unwrap();
    }
    rs.iter().map(|r| r.result().text).collect()
}

#[test]
fn streams_decoded_together_give_their_own_transcripts() {
    let model = load(test_model_dir(), Precision::Int8);
    let dev = shared_dir().join("audio/dev/wav");
    let mut dev_clips: Vec<_> = std::fs::read_dir(&dev).unwrap().map(|e| e.unwrap().path()).collect();
    dev_clips.sort();
    let clips: Vec<Vec<f32>> = [test_wav("0.wav"), test_wav("1.wav"), dev_clips[0].clone()].iter().map(|p| read_wav(p)).collect();
    for decoding in [DecodingConfig::default(), DecodingConfig { method: DecodingMethod::ModifiedBeamSearch { max_active_paths: 4 }, ..Default::default() }] {
        let together = decode_together(&model, &clips, &decoding);
        let alone: Vec<String> = clips
            .iter()
            .map(|c| zipvox::recognizer::transcribe_samples_with(&model, c, 1600, &decoding).unwrap().text)
            .collect();
        assert_eq!(together, alone, "{:?}", decoding.method);
        if matches!(decoding.method, DecodingMethod::Greedy) {
            assert_eq!(together[0], REF_0);
            assert_eq!(together[1], REF_1);
        }
    }
}

#[test]
fn bench_streams_reports_identical_transcripts() {
    let out = std::process::Command::new(zipvox_bin())
        .args(["bench", "--json", "--repeat", "1", "--streams", "3", "--model"])
        .arg(test_model_dir())
        .args([test_wav("0.wav"), test_wav("1.wav")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["streams"], 3);
    assert_eq!(v["batched"], true);
    assert_eq!(v["identical"], true);
    assert_eq!(v["texts"][0], REF_0);
    assert_eq!(v["texts"][1], REF_1);
    assert_eq!(v["texts"][2], REF_0);
    assert!(v["rtf"].as_f64().unwrap() > 0.0 && v["streams_per_core"].as_f64().unwrap() > 0.0);
}
