//! Bad input never panics: each case prints one clear `zipvox: error:` line naming the problem
//! and exits with status 2.

mod common;
use common::*;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model directory whose parts are symlinks to the real model, so single parts can be
/// replaced by broken ones.
fn model_copy() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(test_model_dir()).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_file() && (name.ends_with(".onnx") || name == "tokens.txt") {
            std::os::unix::fs::symlink(&p, d.path().join(&name)).unwrap();
        }
    }
    d
}

const ENCODER: &str = "encoder-epoch-12-avg-2-chunk-16-left-64.int8.onnx";

fn replace(dir: &Path, name: &str, bytes: &[u8]) {
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    std::fs::write(p, bytes).unwrap();
}

/// The real encoder with its metadata edited by `edit`.
fn encoder_with_metadata(edit: impl Fn(&mut Vec<tract_onnx::pb::StringStringEntryProto>)) -> Vec<u8> {
    let bytes = std::fs::read(test_model_dir().join(ENCODER)).unwrap();
    let mut proto = tract_onnx::pb::ModelProto::decode(&bytes[..]).unwrap();
    edit(&mut proto.metadata_props);
    proto.encode_to_vec()
}

/// Runs `zipvox transcribe --model DIR WAV`, expects status 2 and one error line containing
/// every `needle`.
fn expect_error(model: &Path, wav: &Path, needles: &[&str]) {
    let out = Command::new(zipvox_bin()).arg("transcribe").arg("--model").arg(model).arg(wav).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| !l.contains(" WARN ")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line: {stderr}");
    assert!(errors[0].starts_with("zipvox: error: "), "{stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "'{n}' not in: {}", errors[0]);
    }
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

fn wav0() -> PathBuf {
    test_wav("0.wav")
}

#[test]
fn missing_model_dir() {
    expect_error(Path::new("/nonexistent/zipvox-model"), &wav0(), &["cannot open model directory", "/nonexistent/zipvox-model"]);
}

#[test]
fn model_path_is_a_file() {
    expect_error(&wav0(), &wav0(), &["is not a directory"]);
}

#[test]
fn empty_model_dir() {
    let d = tempfile::tempdir().unwrap();
    expect_error(d.path(), &wav0(), &["no encoder*.onnx"]);
}

#[test]
fn encoder_that_is_not_onnx() {
    let d = model_copy();
    replace(d.path(), ENCODER, b"this is a text file, not a model\n");
    expect_error(d.path(), &wav0(), &[ENCODER, "not an ONNX model"]);
    replace(d.path(), ENCODER, b"");
    expect_error(d.path(), &wav0(), &[ENCODER, "not an ONNX model"]);
}

#[test]
fn truncated_onnx() {
    let d = model_copy();
    let bytes = std::fs::read(test_model_dir().join(ENCODER)).unwrap();
    replace(d.path(), ENCODER, &bytes[..bytes.len() / 2]);
    expect_error(d.path(), &wav0(), &[ENCODER]);
}

#[test]
fn encoder_without_metadata() {
    let d = model_copy();
    replace(d.path(), ENCODER, &encoder_with_metadata(|m| m.clear()));
    expect_error(d.path(), &wav0(), &[ENCODER, "metadata has no 'model_type'"]);
    replace(d.path(), ENCODER, &encoder_with_metadata(|m| m.retain(|e| e.key != "left_context_len")));
    expect_error(d.path(), &wav0(), &[ENCODER, "'left_context_len'"]);
}

#[test]
fn unsupported_model_type() {
    let d = model_copy();
    replace(
        d.path(),
        ENCODER,
        &encoder_with_metadata(|m| {
            for e in m.iter_mut().filter(|e| e.key == "model_type") {
                e.value = "conformer".into();
            }
        }),
    );
    expect_error(d.path(), &wav0(), &["model_type 'conformer' is not supported"]);
}

#[test]
fn metadata_that_contradicts_the_graph() {
    let d = model_copy();
    replace(
        d.path(),
        ENCODER,
        &encoder_with_metadata(|m| {
            for e in m.iter_mut().filter(|e| e.key == "left_context_len") {
                e.value = "32,32,16,8,16,32".into();
            }
        }),
    );
    expect_error(d.path(), &wav0(), &["cached_key_0", "metadata does not describe this graph"]);
}

#[test]
fn tokens_that_do_not_match_vocab_size() {
    let d = model_copy();
    let tokens = std::fs::read_to_string(test_model_dir().join("tokens.txt")).unwrap();
    let fewer: String = tokens.lines().take(400).map(|l| format!("{l}\n")).collect();
    replace(d.path(), "tokens.txt", fewer.as_bytes());
    expect_error(d.path(), &wav0(), &["tokens.txt has 400 tokens", "vocab_size is 500"]);
}

#[test]
fn corrupt_and_empty_wavs() {
    let d = tempfile::tempdir().unwrap();
    let garbage = d.path().join("garbage.wav");
    std::fs::write(&garbage, b"definitely not RIFF data").unwrap();
    expect_error(&test_model_dir(), &garbage, &["garbage.wav"]);
    let empty = d.path().join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    expect_error(&test_model_dir(), &empty, &["empty.wav"]);
    let wav = std::fs::read(wav0()).unwrap();
    let cut = d.path().join("cut.wav");
    std::fs::write(&cut, &wav[..wav.len() / 3]).unwrap();
    expect_error(&test_model_dir(), &cut, &["cut.wav", "truncated"]);
    expect_error(&test_model_dir(), Path::new("/nonexistent.wav"), &["/nonexistent.wav"]);
}

#[test]
fn tokens_with_out_of_range_or_repeated_ids() {
    let d = model_copy();
    let tokens = std::fs::read_to_string(test_model_dir().join("tokens.txt")).unwrap();
    let mut lines: Vec<String> = tokens.lines().map(String::from).collect();
    // Red-team finding: this id used to panic (exit 101).
    lines[18] = "\u{2581}IT 18446744073709551615".into();
    replace(d.path(), "tokens.txt", (lines.join("\n") + "\n").as_bytes());
    expect_error(d.path(), &wav0(), &["tokens.txt:19: token id 18446744073709551615 is out of range", "0..=499"]);
    // Two lines with one id (so another is missing): used to be accepted, words run together.
    lines[18] = format!("{} 17", lines[18].split(' ').next().unwrap());
    replace(d.path(), "tokens.txt", (lines.join("\n") + "\n").as_bytes());
    expect_error(d.path(), &wav0(), &["tokens.txt:19: token id 17 is used twice (also on line 18)"]);
}

#[test]
fn hotwords_with_out_of_range_boosts_or_typo_pieces() {
    let d = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let path = d.path().join("hotwords.txt");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(zipvox_bin())
            .args(["transcribe", "--decoding", "modified-beam-search", "--model"])
            .arg(test_model_dir())
            .arg("--hotwords")
            .arg(&path)
            .arg(wav0())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Red-team finding: this cut the last word off the transcript.
    let e = run("BROTHELS :1e30\n");
    assert!(e.contains("line 1: score ':1e30' must be a finite number in [-20, 20]"), "{e}");
    let e = run("LIGHT UP\n\u{2581}L IGHT \u{2581}UP\n");
    assert!(e.contains("line 2: '\u{2581}L' is not a token of the model"), "{e}");
}
