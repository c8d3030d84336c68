//! Encoder outputs against onnxruntime, chunk after chunk with every state fed back, on the
//! shared models of both generations; and every shared model loads (the dynamic-batch exports
//! needed the corrected `Range`, see `model::range_fix`).
//!
//! References: `scripts/ort_encoder_reference.py` → `tests/fixtures/encoder/*.encout`.

mod common;
use common::*;
use std::sync::Arc;
use zipvox::model::{EncoderModel, EncoderRunner, ModelConfig, Precision, Transducer};

struct Reference {
    chunks: usize,
    frames: usize,
    dim: usize,
    data: Vec<f32>,
}

fn reference(name: &str) -> Reference {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/encoder").join(name);
    let b = std::fs::read(&path).unwrap();
    assert_eq!(&b[..4], b"ENC1");
    let u = |i: usize| u32::from_le_bytes(b[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize;
    let data = b[16..].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    Reference { chunks: u(0), frames: u(1), dim: u(2), data }
}

/// The script's deterministic features for chunk `c` (computed in f64, stored as f32).
fn features(c: usize, t: usize, f: usize) -> Vec<f32> {
    (0..t * f).map(|i| (((c * t * f + i) as f64 * 0.01).sin() * 3.0 - 5.0) as f32).collect()
}

/// Runs the encoder over the reference's chunks; returns (max abs diff, max |reference|) per chunk.
fn compare(encoder: &str, fixture: &str) -> Vec<(f32, f32)> {
    let model = Arc::new(EncoderModel::load(&shared_dir().join("models").join(encoder), &Default::default()).unwrap());
    let r = reference(fixture);
    assert_eq!((model.out_frames, model.out_dim), (r.frames, r.dim));
    let mut runner = EncoderRunner::new(model.clone()).unwrap();
    let per_chunk = r.frames * r.dim;
    (0..r.chunks)
        .map(|c| {
            let x = features(c, model.meta.chunk_frames, model.feature_dim());
            let out = runner.run_chunk(&x).unwrap();
            let out = out.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            let want = &r.data[c * per_chunk..(c + 1) * per_chunk];
            let diff = out.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            let scale = want.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
            (diff, scale)
        })
        .collect()
}

#[test]
fn zipformer_v1_fp32_matches_onnxruntime_over_10_chunks() {
    let diffs = compare("zipformer-v1-tiny-random/encoder-epoch-99-avg-1.onnx", "zipformer-v1-tiny-random.fp32.encout");
    println!("v1 fp32 max abs diff per chunk: {diffs:?}");
    assert_eq!(diffs.len(), 10);
    for (c, (d, _)) in diffs.iter().enumerate() {
        assert!(*d <= 1e-4, "chunk {c}: max abs diff {d}");
    }
}

/// True where onnxruntime runs the kernels the fixtures were made with (x86-64, AVX-512).
fn same_kernels_as_fixtures() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Dynamic activation quantization rounds every activation tensor to 256 levels (scale =
/// range/255), so a float difference of one ulp before a quantizer can move a value by a whole
/// step, and later layers carry that on: onnxruntime compared with *itself* (ORT_DISABLE_ALL vs
/// ORT_ENABLE_ALL, same file, same inputs) differs by up to 2.7% of max |output| on the 3.3M
/// model from chunk 1 on. zipvox computes every float op that feeds a quantizer in
/// onnxruntime's order (see `model::rewrite::ort_order`, `kernels::conv2d`), for the kernels
/// onnxruntime picks on x86-64 with AVX-512 (where the fixtures were made): there the output
/// must be bit-identical, chunk after chunk. Elsewhere onnxruntime itself sums differently
/// (other MLAS kernels), and the tolerance is the self-spread above.
fn int8_case(encoder: &str, fixture: &str, relative_tolerance: f32) {
    let diffs = compare(encoder, fixture);
    println!("{encoder}: (max abs diff, max |ref|) per chunk: {diffs:?}");
    assert_eq!(diffs.len(), 10);
    let exact = same_kernels_as_fixtures();
    for (c, (d, scale)) in diffs.iter().enumerate() {
        if exact {
            assert_eq!(*d, 0.0, "{encoder} chunk {c}: not bit-identical to onnxruntime (max abs diff {d})");
        }
        assert!(*d <= relative_tolerance * scale, "{encoder} chunk {c}: max abs diff {d} vs max |ref| {scale}");
    }
}

#[test]
fn zipformer2_small_int8_matches_onnxruntime_over_10_chunks() {
    int8_case(
        "bench-zipformer2-small-random/encoder-epoch-99-avg-1-chunk-16-left-128.int8.onnx",
        "bench-zipformer2-small-random.int8.encout",
        0.01,
    );
}

#[test]
fn zipformer2_3m_int8_matches_onnxruntime_over_10_chunks() {
    int8_case(
        "zipformer2-en-gigaspeech-3.3m/encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx",
        "zipformer2-en-gigaspeech-3.3m.int8.encout",
        0.05,
    );
}

/// The fp32 decoder (which sherpa-onnx pairs with the int8 encoder and joiner) against
/// onnxruntime on 40 contexts (`scripts/ort_decoder_reference.py`): its output feeds the
/// joiner's int8 quantizer, so it too must be bit-identical where the kernels are the same.
#[test]
fn decoder_matches_onnxruntime() {
    let b = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoder/zipformer2-en-gigaspeech-3.3m.decout")).unwrap();
    assert_eq!(&b[..4], b"DEC1");
    let u = |i: usize| u32::from_le_bytes(b[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize;
    let (n, c, dim) = (u(0), u(1), u(2));
    let ctx: Vec<i64> = b[16..16 + 8 * n * c].chunks_exact(8).map(|x| i64::from_le_bytes(x.try_into().unwrap())).collect();
    let want: Vec<f32> = b[16 + 8 * n * c..].chunks_exact(4).map(|x| f32::from_le_bytes(x.try_into().unwrap())).collect();
    let path = model_dir("zipformer2-en-gigaspeech-3.3m").join("decoder-epoch-12-avg-2-chunk-16-left-64.onnx");
    let model = Arc::new(zipvox::model::decoder::DecoderModel::load(&path).unwrap());
    let mut runner = zipvox::model::decoder::DecoderRunner::new(model).unwrap();
    let mut out = Vec::new();
    let mut worst = 0.0f32;
    for (i, context) in ctx.chunks_exact(c).enumerate() {
        runner.run(context, &mut out).unwrap();
        for (a, w) in out.iter().zip(&want[i * dim..(i + 1) * dim]) {
            worst = worst.max((a - w).abs());
        }
    }
    println!("decoder: max abs diff {worst} over {n} contexts");
    if same_kernels_as_fixtures() {
        assert_eq!(worst, 0.0, "decoder not bit-identical to onnxruntime");
    }
    assert!(worst < 1e-5, "decoder max abs diff {worst}");
}

#[test]
fn every_shared_model_loads_with_consistent_parts() {
    for (name, precision) in [
        ("zipformer2-en-gigaspeech-3.3m", Precision::Int8),
        ("zipformer2-en-gigaspeech-3.3m", Precision::Fp32),
        ("zipformer-v1-tiny-random", Precision::Int8),
        ("zipformer-v1-tiny-random", Precision::Fp32),
        ("bench-zipformer2-small-random", Precision::Int8),
        ("bench-zipformer2-medium-random", Precision::Int8),
    ] {
        let cfg = ModelConfig { dir: model_dir(name), precision, ..Default::default() };
        let m = Transducer::load(&cfg).unwrap_or_else(|e| panic!("{name} {precision:?}: {e:#}"));
        assert_eq!(m.encoder.subsampling_factor(), 4, "{name}");
        assert_eq!(m.tokens.len(), m.decoder.meta.vocab_size, "{name}");
        // The plan keeps its graph for the whole run: the nodes that tract's optimizer and our
        // rewrites replaced must be gone from it (they held ~3 MB on the 3.3M model).
        let graph = m.encoder.plan().model();
        assert_eq!(graph.nodes().len(), graph.eval_order().unwrap().len(), "{name}: dead nodes left in the encoder's plan");
        println!("{name} {precision:?}: loaded in {:.2?} ({})", m.load_time, m.encoder.meta.describe());
    }
}

/// `--threads` splits the int8 matmuls' column panels over workers: the encoder output must be
/// bit-identical to one thread's, chunk after chunk (odd splits included).
#[test]
fn encoder_output_does_not_depend_on_thread_count() {
    let model = Arc::new(
        EncoderModel::load(&shared_dir().join("models/bench-zipformer2-small-random/encoder-epoch-99-avg-1-chunk-16-left-128.int8.onnx"), &Default::default()).unwrap(),
    );
    let run = |threads: usize| -> Vec<u32> {
        zipvox::kernels::threads::set_threads(threads).unwrap();
        let mut runner = EncoderRunner::new(model.clone()).unwrap();
        let mut bits = Vec::new();
        for c in 0..3 {
            let x = features(c, model.meta.chunk_frames, model.feature_dim());
            let out = runner.run_chunk(&x).unwrap();
            bits.extend(out.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|v| v.to_bits()));
        }
        bits
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(run(threads) == one, "encoder output differs with {threads} threads");
    }
    zipvox::kernels::threads::set_threads(1).unwrap();
}
