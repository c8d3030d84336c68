//! Every modelling unit type against sherpa-onnx, run in the same test:
//! - text assembly: the random-weight `zipformer-v1-tiny-random` model with a synthetic
//!   tokens.txt of its vocab size (500) per type (model files symlinked into a temp dir);
//!   zipvox's greedy transcript of a clip equals sherpa-onnx's (`../shared/tools/sherpa_decode.py`)
//!   and the type is detected from the directory;
//! - `zipvox text2token` equals `sherpa-onnx-cli text2token` for bpe (the English model's
//!   bpe.model), cjkchar and cjkchar+bpe (synthetic vocabularies) and ppinyin (the Chinese
//!   model's tokens; `#[ignore]`d until the pinyin converter from the pinyin branch lands).
//!
//! Without sherpa-onnx's Python package the comparisons are skipped with a printed reason,
//! except under CI (`$CI` set), where they fail.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use zipvox::model::{ModelConfig, Precision, Transducer, TokensType};
use zipvox::recognizer::transcribe_samples;

fn have_sherpa_onnx(test: &str) -> bool {
    have_python(test, "sherpa_onnx, pypinyin, sentencepiece")
}

/// A model dir: the files of `from` symlinked, with `tokens` (symbols, ids in order) as tokens.txt.
fn model_with_tokens(tmp: &Path, from: &Path, symbols: &[String]) -> PathBuf {
    let dir = tmp.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        // SHA256SUMS would (rightly) reject the replaced tokens.txt.
        if name != "tokens.txt" && name != "SHA256SUMS" && e.path().is_file() {
            std::os::unix::fs::symlink(e.path(), dir.join(&name)).unwrap();
        }
    }
    let text: String = symbols.iter().enumerate().map(|(i, s)| format!("{s} {i}\n")).collect();
    std::fs::write(dir.join("tokens.txt"), text).unwrap();
    dir
}

const VOCAB: usize = 500;

fn specials() -> Vec<String> {
    ["<blk>", "<sos/eos>", "<unk>"].map(String::from).to_vec()
}

fn cjk_chars(n: usize) -> Vec<String> {
    (0..n as u32).map(|i| char::from_u32(0x4e00 + i * 7).unwrap().to_string()).collect()
}

fn english_tokens() -> Vec<String> {
    let t = std::fs::read_to_string(test_model_dir().join("tokens.txt")).unwrap();
    t.lines().map(|l| l.rsplit_once(' ').unwrap().0.to_string()).collect()
}

const INITIALS: [&str; 21] = ["b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "zh", "ch", "sh", "r", "z", "c", "s"];
const FINALS: [&str; 8] = ["a", "o", "e", "ai", "ei", "ao", "ou", "an"];

fn toned(f: &str, tone: usize) -> String {
    let marks = [["ā", "á", "ǎ", "à"], ["ō", "ó", "ǒ", "ò"], ["ē", "é", "ě", "è"]];
    let v = match f.chars().next().unwrap() {
        'a' => marks[0][tone],
        'o' => marks[1][tone],
        _ => marks[2][tone],
    };
    format!("{v}{}", &f[1..])
}

/// Synthetic vocabularies of 500 symbols, one per type.
fn vocabulary(t: TokensType) -> Vec<String> {
    let mut v = specials();
    match t {
        TokensType::CjkChar => v.extend(cjk_chars(VOCAB - 3)),
        TokensType::CjkCharBpe => {
            v.extend(english_tokens().into_iter().skip(3).take(250));
            v.extend(cjk_chars(VOCAB - v.len()));
        }
        TokensType::PPinyin => {
            v.extend(INITIALS.map(String::from));
            for f in FINALS {
                v.extend((0..4).map(|tone| toned(f, tone)));
            }
            let mut i = 0;
            while v.len() < VOCAB {
                v.push(format!("{}{i}", toned("ou", i % 4)));
                i += 1;
            }
        }
        TokensType::FPinyin => {
            'full: for i in INITIALS {
                for f in FINALS {
                    for tone in 0..4 {
                        if v.len() == VOCAB {
                            break 'full;
                        }
                        v.push(format!("{i}{}", toned(f, tone)));
                    }
                }
            }
        }
        TokensType::Bpe => v = english_tokens(),
    }
    assert_eq!(v.len(), VOCAB);
    v
}

#[test]
fn every_unit_type_is_detected_and_assembled_as_sherpa_onnx_does() {
    let tiny = model_dir("zipformer-v1-tiny-random");
    let wav = test_wav("0.wav");
    let compare = have_sherpa_onnx("every_unit_type_is_detected_and_assembled_as_sherpa_onnx_does");
    for t in [TokensType::CjkChar, TokensType::CjkCharBpe, TokensType::PPinyin, TokensType::FPinyin] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = model_with_tokens(tmp.path(), &tiny, &vocabulary(t));
        let m = std::sync::Arc::new(Transducer::load(&ModelConfig { dir: dir.clone(), precision: Precision::Int8, ..Default::default() }).unwrap());
        assert_eq!(m.tokens_type, t, "detected from {}", dir.display());
        let ours = transcribe_samples(&m, &read_wav(&wav), 1600).unwrap();
        println!("{t}: {} tokens: {}", ours.tokens.len(), ours.text);
        assert!(!ours.tokens.is_empty(), "the random model emits tokens");
        if t != TokensType::CjkCharBpe {
            assert!(!ours.text.contains(' '), "{t} tokens join without spaces: {}", ours.text);
        }
        if compare {
            let tool = shared_dir().join("tools/sherpa_decode.py");
            let out = Command::new("python3").arg(&tool).arg(&dir).arg(&wav).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let r: serde_json::Value = serde_json::from_slice(out.stdout.split(|&b| b == b'\n').next().unwrap()).unwrap();
            assert_eq!(ours.text, r["text"].as_str().unwrap(), "{t}");
        }
    }
}

fn zipvox_text2token(dir: &Path, tokens_type: &str, input: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("in.txt");
    std::fs::write(&path, input).unwrap();
    let out = Command::new(zipvox_bin())
        .args(["text2token", "--tokens-type", tokens_type, "--model"])
        .arg(dir)
        .arg(&path)
        .env_remove("ZIPVOX_MODEL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn sherpa_text2token(dir: &Path, tokens_type: &str, input: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let (inp, outp) = (tmp.path().join("in.txt"), tmp.path().join("out.txt"));
    std::fs::write(&inp, input).unwrap();
    let mut cmd = Command::new("python3");
    cmd.args(["-c", "import sys; from sherpa_onnx.cli import cli; sys.argv[0] = 'sherpa-onnx-cli'; cli()", "text2token"])
        .arg(&inp)
        .arg(&outp)
        .arg("--tokens")
        .arg(dir.join("tokens.txt"))
        .args(["--tokens-type", tokens_type]);
    if tokens_type.contains("bpe") {
        cmd.arg("--bpe-model").arg(dir.join("bpe.model"));
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(outp).unwrap()
}

fn same_as_sherpa(dir: &Path, tokens_type: &str, input: &str) {
    let ours = zipvox_text2token(dir, tokens_type, input);
    println!("{tokens_type}:\n{ours}");
    assert_eq!(ours.lines().count(), input.lines().count(), "one line out per line in");
    if have_sherpa_onnx("text2token") {
        assert_eq!(ours, sherpa_text2token(dir, tokens_type, input), "{tokens_type}");
    }
}

#[test]
fn text2token_bpe_equals_sherpa_onnx() {
    // Upper case: sherpa-onnx's text2token does not upper-case (zipvox does, for this model).
    let input = "HELLO WORLD :1.5 #0.4\nLIGHT UP @lights\nLOVELY CHILD\nFOREVER #0.3\nHEY ZIPVOX :2.5 #0.5 @hey\nTHE SQUALID QUARTER OF THE BROTHELS\n";
    same_as_sherpa(&test_model_dir(), "bpe", input);
    // Lower case gives the same tokens here (sherpa-onnx would skip these lines).
    assert_eq!(zipvox_text2token(&test_model_dir(), "bpe", "light up @lights\n"), "\u{2581} L IGHT \u{2581}UP @lights\n");
}

#[test]
fn text2token_cjkchar_and_cjkchar_bpe_equal_sherpa_onnx() {
    let tmp = tempfile::tempdir().unwrap();
    let mut chars: Vec<String> = "你好世界小爱同学打开灯的天气怎么样".chars().map(String::from).collect();
    let mut syms = specials();
    syms.append(&mut chars);
    let dir = model_with_tokens(tmp.path(), &model_dir("zipformer-v1-tiny-random"), &syms);
    same_as_sherpa(&dir, "cjkchar", "你好世界 :2.0 @你好\n小爱 同学 #0.3\n打开灯\n天气怎么样\n");

    let tmp = tempfile::tempdir().unwrap();
    let mut syms = english_tokens();
    syms.extend("你好世界小爱同学打开灯的".chars().map(String::from));
    let dir = model_with_tokens(tmp.path(), &test_model_dir(), &syms);
    same_as_sherpa(&dir, "cjkchar+bpe", "你好 HELLO WORLD 世界\n打开LIGHT灯 :2\nHEY 小爱同学 #0.4 @小爱\n");
}

/// Polyphonic characters included; needs the pinyin converter (pinyin branch).
#[test]
fn text2token_ppinyin_equals_sherpa_onnx() {
    let dir = model_dir("kws-zipformer-zh-wenetspeech-3.3m");
    let input = "小爱同学 :2.0 #0.6 @小爱同学\n你好问问 :3.5 @你好问问\n银行\n长大\n重庆\n文森特卡索\n周望军\n见面会\n";
    same_as_sherpa(&dir, "ppinyin", input);
}
