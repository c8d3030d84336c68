//! Modified beam search and hotwords against sherpa-onnx's results (model README, and
//! scripts/sherpa_beam_reference.py on ../shared/audio/dev), with the real 3.3M model.

mod common;

use common::*;
use std::sync::Arc;
use zipvox::model::bpe::SentencePiece;
use zipvox::recognizer::{transcribe_samples, transcribe_samples_with};
use zipvox::search::context_graph::load_hotwords;
use zipvox::search::{DecodingConfig, DecodingMethod, ModifiedBeamSearch, TransducerSearch};

fn beam(n: usize) -> DecodingConfig {
    DecodingConfig { method: DecodingMethod::ModifiedBeamSearch { max_active_paths: n }, hotwords: None }
}

fn with_hotwords(text: &str, score: f32) -> DecodingConfig {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hotwords.txt");
    std::fs::write(&path, text).unwrap();
    let graph = load_hotwords(&path, &int8_model(), score).expect("hotwords load");
    DecodingConfig { hotwords: Some(Arc::new(graph)), ..beam(4) }
}

fn dev_wav(id: &str) -> std::path::PathBuf {
    shared_dir().join("audio/dev/wav").join(format!("{id}.wav"))
}

/// sherpa-onnx 2.0.1, modified_beam_search, 4 paths (model README).
const BEAM_0: &str = "AFTER EARLY NIGHTFALL THE YELLOW LAMPS WOULD LIGHT UP HERE AND THERE THE SQUALID QUARTER OF THE BRAWFALLS";
const HOT_0: &str = "AFTER EARLY NIGHTFALL THE YELLOW LAMPS WOULD LIGHT UP HERE AND THERE THE SQUALID QUARTER OF THE BROTHELS";
/// sherpa-onnx on ls-1089-134686-0000: beam search, then with the hotword FLOUR FATTENED.
const BEAM_FLOUR: &str = "HE HOPED THERE WOULD BE STEW FOR DINNER TURNIPS AND CARROTS AND BRUISED POTATOES AND FAT MUTTON PIECES TO BE LADLED OUT IN THICK PEPPERED FLOWER FATTEN SAUCE";
const HOT_FLOUR: &str = "HE HOPED THERE WOULD BE STEW FOR DINNER TURNIPS AND CARROTS AND BRUISED POTATOES AND FAT MUTTON PIECES TO BE LADLED OUT IN THICK PEPPERED FLOUR FATTEN SAUCE";

#[test]
fn beam_search_gives_sherpa_onnx_beam_output() {
    let m = int8_model();
    let t = transcribe_samples_with(&m, &read_wav(&test_wav("0.wav")), 1600, &beam(4)).unwrap();
    assert_eq!(t.text, BEAM_0);
    assert_eq!(t.timestamps.len(), t.tokens.len());
    assert!(t.timestamps.windows(2).all(|w| w[0] <= w[1]));
    let t = transcribe_samples_with(&m, &read_wav(&test_wav("1.wav")), 1600, &beam(4)).unwrap();
    assert_eq!(t.text, REF_1);
}

#[test]
fn hotword_brothels_wins_the_last_word() {
    let m = int8_model();
    let samples = read_wav(&test_wav("0.wav"));
    let t = transcribe_samples_with(&m, &samples, 1600, &with_hotwords("BROTHELS\n", 1.5)).unwrap();
    assert_eq!(t.text, HOT_0);
    // The same phrase written as the model's pieces.
    let t = transcribe_samples_with(&m, &samples, 0, &with_hotwords("\u{2581}B RO TH EL S\n", 1.5)).unwrap();
    assert_eq!(t.text, HOT_0);
    // A per-line score of 0.1 is too weak to change anything.
    let t = transcribe_samples_with(&m, &samples, 0, &with_hotwords("BROTHELS :0.1\n", 1.5)).unwrap();
    assert_eq!(t.text, BEAM_0);
}

/// Without hotwords beam search hears `FLOWER FATTEN`; the hotword `FLOUR FATTENED` turns it
/// into sherpa-onnx's `FLOUR FATTEN SAUCE`. A near tie with `FLOUR FATTENED SAUCE` that the last
/// bits of the features and model outputs decide. zipvox's are bit-identical to sherpa-onnx's
/// where onnxruntime runs the kernels zipvox follows (x86-64 with AVX-512, see README,
/// "Accuracy"); elsewhere only the hotword's effect is asserted.
#[test]
fn hotword_flour_fattened_on_a_dev_utterance() {
    let m = int8_model();
    let samples = read_wav(&dev_wav("ls-1089-134686-0000"));
    assert_eq!(transcribe_samples_with(&m, &samples, 1600, &beam(4)).unwrap().text, BEAM_FLOUR);
    let t = transcribe_samples_with(&m, &samples, 1600, &with_hotwords("FLOUR FATTENED\n", 1.5)).unwrap();
    if same_numerics_as_sherpa_onnx() {
        assert_eq!(t.text, HOT_FLOUR);
    } else {
        let (head, _) = HOT_FLOUR.split_once(" FLOUR FATTEN").unwrap();
        assert!(t.text.starts_with(&format!("{head} FLOUR FATTEN")), "{}", t.text);
        assert!(t.text.ends_with(" SAUCE"), "{}", t.text);
    }
}

/// True where sherpa-onnx's onnxruntime runs the kernels whose order zipvox reproduces.
fn same_numerics_as_sherpa_onnx() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[test]
fn one_path_beam_search_equals_greedy_search() {
    let m = int8_model();
    for wav in ["0.wav", "1.wav"] {
        let samples = read_wav(&test_wav(wav));
        let g = transcribe_samples(&m, &samples, 1600).unwrap();
        let b = transcribe_samples_with(&m, &samples, 1600, &beam(1)).unwrap();
        assert_eq!(b.text, g.text, "{wav}");
        assert_eq!(b.token_ids, g.token_ids, "{wav}");
        assert_eq!(b.timestamps, g.timestamps, "{wav}");
    }
}

#[test]
fn hotwords_need_beam_search() {
    let m = int8_model();
    let cfg = DecodingConfig { method: DecodingMethod::Greedy, ..with_hotwords("BROTHELS\n", 1.5) };
    let err = zipvox::recognizer::Recognizer::with_decoding(m, &cfg).err().expect("greedy + hotwords fails");
    assert!(format!("{err:#}").contains("beam"), "{err:#}");
}

#[test]
fn bad_hotword_files_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.txt");
    std::fs::write(&path, "CAF\u{c9}\n").unwrap();
    let err = load_hotwords(&path, &int8_model(), 1.5).unwrap_err();
    assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    std::fs::write(&path, "\n\n").unwrap();
    assert!(load_hotwords(&path, &int8_model(), 1.5).is_err());
    let err = load_hotwords(&dir.path().join("missing.txt"), &int8_model(), 1.5).unwrap_err();
    assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
}

#[test]
fn segments_restart_from_the_last_tokens() {
    // After new_segment, the transcript restarts empty and decoding continues.
    let m = int8_model();
    let mut r = zipvox::recognizer::Recognizer::with_decoding(m.clone(), &beam(4)).unwrap();
    let samples = read_wav(&test_wav("0.wav"));
    let half = samples.len() / 2;
    r.accept_waveform(&samples[..half]).unwrap();
    let first = r.finish_segment();
    assert!(!first.text.is_empty());
    assert!(r.result().text.is_empty());
    r.accept_waveform(&samples[half..]).unwrap();
    r.input_finished().unwrap();
    let second = r.result();
    assert!(second.text.ends_with("BRAWFALLS"), "{}", second.text);
    assert!(second.timestamps.iter().all(|&t| t >= first.end - 1e-3));
}

/// sherpa-onnx's encoder of bpe.model pieces, from Python's `sentencepiece` 0.2
/// (`sp.encode(text, out_type=str)`; unknown surface pieces written as `<unk>`).
#[test]
fn bpe_encoding_equals_sentencepiece() {
    let sp = SentencePiece::load(&test_model_dir().join("bpe.model")).unwrap();
    assert_eq!(sp.model_type(), zipvox::model::bpe::ModelType::Unigram);
    assert_eq!(sp.pieces().len(), 500);
    let cases: &[(&str, &[&str])] = &[
        ("BROTHELS", &["▁B", "RO", "TH", "EL", "S"]),
        ("FLOUR FATTENED", &["▁F", "LO", "UR", "▁FA", "T", "T", "EN", "ED"]),
        ("LIGHT UP", &["▁", "L", "IGHT", "▁UP"]),
        ("LOVELY CHILD", &["▁LOVE", "LY", "▁CHI", "L", "D"]),
        ("FOREVER", &["▁FOR", "E", "VER"]),
        ("HELLO WORLD", &["▁HE", "LL", "O", "▁WORLD"]),
        ("HI GOOGLE", &["▁HI", "▁GO", "O", "G", "LE"]),
        ("HEY SIRI", &["▁HE", "Y", "▁S", "I", "RI"]),
        ("ALEXA", &["▁A", "LE", "X", "A"]),
        ("LOVE AND PEACE", &["▁LOVE", "▁AND", "▁P", "E", "A", "CE"]),
        ("PLAY MUSIC", &["▁PLAY", "▁MU", "S", "IC"]),
        ("GO HOME", &["▁GO", "▁HOME"]),
        ("HAPPY NEW YEAR", &["▁HA", "PP", "Y", "▁NEW", "▁YEAR"]),
        ("MERRY CHRISTMAS", &["▁ME", "R", "RY", "▁", "CH", "R", "IST", "MA", "S"]),
        ("AI", &["▁A", "I"]),
        ("DON'T STOP", &["▁DON", "'", "T", "▁ST", "O", "P"]),
        ("WELL-KNOWN", &["▁WELL", "-", "K", "N", "OW", "N"]),
        ("  SPACED   OUT ", &["▁SP", "A", "C", "ED", "▁OUT"]),
        ("hello", &["▁", "<unk>"]),
        ("CAFÉ", &["▁CA", "F", "<unk>"]),
        ("A/B", &["▁A", "<unk>", "B"]),
        ("<blk>", &["▁", "<blk>"]),
        ("X<blk>Y", &["▁", "X", "<blk>", "Y"]),
        ("QUIXOTIC ZEPHYRS JUMBLE", &["▁QU", "I", "X", "O", "TIC", "▁", "Z", "E", "PH", "Y", "R", "S", "▁JU", "M", "B", "LE"]),
    ];
    for (text, want) in cases {
        assert_eq!(sp.encode(text), *want, "{text:?}");
    }
}

/// Decodes encoder outputs computed elsewhere (e.g. by onnxruntime: `ENC1` files, as
/// scripts/ort_encoder_reference.py writes them) with beam search, to separate the search
/// from encoder numerics. `ZIPVOX_ENCOUT_DIR=dir cargo test --release --test beam_search
/// -- --ignored --nocapture external_encoder_output` prints `{"file","text"}` per file.
#[test]
#[ignore]
fn external_encoder_output() {
    let Some(dir) = std::env::var_os("ZIPVOX_ENCOUT_DIR") else { return };
    let m = int8_model();
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    for p in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "encout")) {
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(&bytes[..4], b"ENC1");
        let word = |i: usize| u32::from_le_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize;
        let (chunks, frames, dim) = (word(0), word(1), word(2));
        let data: Vec<f32> =
            bytes[16..].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        assert_eq!(data.len(), chunks * frames * dim);
        let mut s = ModifiedBeamSearch::new(&m, 4, None).unwrap();
        for c in data.chunks_exact(frames * dim) {
            s.decode_chunk(c, dim).unwrap();
        }
        let text = m.tokens.text(&s.best().transcript_ids());
        println!("{}", serde_json::json!({"file": format!("{}.wav", p.file_stem().unwrap().to_string_lossy()), "text": text}));
    }
}

/// Writes zipvox's own encoder outputs for WAVs (`ZIPVOX_DUMP_WAVS`, space-separated) as
/// `ENC1` files into `ZIPVOX_ENCOUT_DIR`, chunked as the recognizer does (tail padding
/// included), for comparison with onnxruntime's.
#[test]
#[ignore]
fn dump_encoder_output() {
    use zipvox::frontend::{FbankOptions, OnlineFbank};
    let (Some(dir), Some(wavs)) = (std::env::var_os("ZIPVOX_ENCOUT_DIR"), std::env::var("ZIPVOX_DUMP_WAVS").ok()) else {
        return;
    };
    let m = int8_model();
    let enc = &m.encoder;
    let (t, shift, fdim) = (enc.meta.chunk_frames, enc.meta.chunk_shift, enc.feature_dim());
    for wav in wavs.split_whitespace() {
        let mut samples = read_wav(std::path::Path::new(wav));
        samples.extend(std::iter::repeat_n(0.0, (0.66f32 * 16000.0) as usize));
        let mut fb = OnlineFbank::new(FbankOptions::default());
        fb.accept_waveform(&samples);
        fb.input_finished();
        let mut runner = zipvox::model::EncoderRunner::new(enc.clone()).unwrap();
        let (mut p, mut feats, mut out, mut chunks) = (0, vec![0.0f32; t * fdim], Vec::<f32>::new(), 0u32);
        let mut all_feats: Vec<u8> = vec![];
        let n_feats = fb.num_frames_ready();
        let mut one = vec![0.0f32; fdim];
        for i in 0..n_feats {
            fb.copy_frames(i, 1, &mut one);
            all_feats.extend(one.iter().flat_map(|v| v.to_le_bytes()));
        }
        let mut frames = 0;
        while p + t < fb.num_frames_ready() {
            fb.copy_frames(p, t, &mut feats);
            p += shift;
            let o = runner.run_chunk(&feats).unwrap();
            let o = o.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec();
            frames = o.len() / enc.out_dim;
            out.extend(o);
            chunks += 1;
        }
        let name = std::path::Path::new(wav).file_stem().unwrap().to_string_lossy().to_string();
        let mut bytes = b"ENC1".to_vec();
        for v in [chunks, frames as u32, enc.out_dim as u32] {
            bytes.extend(v.to_le_bytes());
        }
        for v in out {
            bytes.extend(v.to_le_bytes());
        }
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.encout")), bytes).unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.feats")), all_feats).unwrap();
    }
}
