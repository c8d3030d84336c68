//! End-to-end transcription with the real pretrained model: token-for-token parity with
//! sherpa-onnx's reference transcripts, independence from how audio is split, and the CLI forms.

mod common;
use common::*;
use std::process::Command;
use zipvox::model::{FileOverrides, ModelConfig, Precision, Transducer};
use zipvox::recognizer::transcribe_samples;

#[test]
fn int8_transcripts_equal_sherpa_onnx() {
    let m = int8_model();
    for (wav, reference) in [("0.wav", REF_0), ("1.wav", REF_1)] {
        let t = transcribe_samples(&m, &read_wav(&test_wav(wav)), 1600).unwrap();
        assert_eq!(t.text, reference, "{wav}");
        assert_eq!(t.tokens.len(), t.timestamps.len());
        assert!(t.timestamps.windows(2).all(|w| w[0] <= w[1]), "timestamps ascend");
    }
}

#[test]
fn fp32_reference_encoder_transcripts_equal_sherpa_onnx() {
    let dir = test_model_dir();
    let cfg = ModelConfig {
        overrides: FileOverrides {
            encoder: Some(dir.join("float-reference/encoder-epoch-12-avg-2-chunk-16-left-64.onnx")),
            ..Default::default()
        },
        dir,
        precision: Precision::Int8,
        options: Default::default(),
        tokens_type: None,
    };
    let m = std::sync::Arc::new(Transducer::load(&cfg).unwrap());
    for (wav, reference) in [("0.wav", REF_0), ("1.wav", REF_1)] {
        assert_eq!(transcribe_samples(&m, &read_wav(&test_wav(wav)), 0).unwrap().text, reference, "{wav}");
    }
}

#[test]
fn upstream_unpatched_encoder_is_repaired_at_load() {
    let dir = test_model_dir();
    let cfg = ModelConfig {
        overrides: FileOverrides {
            encoder: Some(dir.join("upstream-unpatched/encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx")),
            ..Default::default()
        },
        dir,
        precision: Precision::Int8,
        options: Default::default(),
        tokens_type: None,
    };
    let m = std::sync::Arc::new(Transducer::load(&cfg).unwrap());
    assert_eq!(m.encoder.repaired.len(), 6, "six SimpleDownsample Concats repaired");
    assert_eq!(transcribe_samples(&m, &read_wav(&test_wav("0.wav")), 0).unwrap().text, REF_0);
    // The already-patched file needs no repair.
    assert!(int8_model().encoder.repaired.is_empty());
}

#[test]
fn piece_size_does_not_change_tokens() {
    let m = int8_model();
    let samples = read_wav(&test_wav("0.wav"));
    let whole = transcribe_samples(&m, &samples, 0).unwrap();
    assert_eq!(whole.text, REF_0);
    for piece in [1, 160, 1601] {
        let t = transcribe_samples(&m, &samples, piece).unwrap();
        assert_eq!(t.token_ids, whole.token_ids, "piece size {piece}");
        assert_eq!(t.timestamps, whole.timestamps, "piece size {piece}");
    }
}

#[test]
fn cli_prints_text_tsv_and_json() {
    let model = test_model_dir();
    let out = Command::new(zipvox_bin()).arg("transcribe").arg("--model").arg(&model).arg(test_wav("0.wav")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), REF_0);

    // Several files: FILE<TAB>TEXT; the model may come from ZIPVOX_MODEL.
    let out = Command::new(zipvox_bin())
        .env("ZIPVOX_MODEL", &model)
        .arg("transcribe")
        .arg(test_wav("0.wav"))
        .arg(test_wav("1.wav"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, vec![
        format!("{}\t{REF_0}", test_wav("0.wav").display()),
        format!("{}\t{REF_1}", test_wav("1.wav").display()),
    ]);

    let out = Command::new(zipvox_bin()).arg("transcribe").arg("--json").arg("--model").arg(&model).arg(test_wav("1.wav")).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], REF_1);
    assert_eq!(v["file"], test_wav("1.wav").display().to_string());
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), v["timestamps"].as_array().unwrap().len());
    assert_eq!(tokens[0], " GO");
    assert_eq!(v["timestamps"][0].as_f64().unwrap(), 0.64);
    let d = v["duration_s"].as_f64().unwrap();
    assert!((d - 16.715).abs() < 0.01, "duration {d}");
    assert!(v["rtf"].as_f64().unwrap() > 0.0);
}

#[test]
fn cli_reads_raw_pcm_from_stdin() {
    use std::io::Write;
    let samples = read_wav(&test_wav("0.wav"));
    let bytes: Vec<u8> = samples.iter().flat_map(|&s| ((s * 32768.0) as i16).to_le_bytes()).collect();
    let mut child = Command::new(zipvox_bin())
        .args(["transcribe", "--rate", "16000", "--model"])
        .arg(test_model_dir())
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), REF_0);
}
