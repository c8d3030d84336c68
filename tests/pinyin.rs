//! Chinese text → pinyin units against sherpa-onnx's own `text2token` (pypinyin 0.55.0), run in
//! the same test through `scripts/pinyin_reference.py`: polyphones in phrases, mixed Chinese,
//! latin, digits and punctuation, a sample of the dictionary's phrases, every syllable it
//! contains, generated odd strings, and the Chinese KWS model's keywords (whose units must all be
//! tokens of that model).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use zipvox::model::pinyin::{Pinyin, PinyinUnits};

const KWS_MODEL: &str = "kws-zipformer-zh-wenetspeech-3.3m";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dict_path() -> PathBuf {
    repo().join("packaging/pinyin.dict")
}

fn dict() -> Pinyin {
    Pinyin::load(&dict_path()).expect("packaging/pinyin.dict loads")
}

/// Runs the reference script on `texts`; returns its JSON output.
fn reference(texts: &[String], extra_args: &[&str]) -> serde_json::Value {
    let script = repo().join("scripts/pinyin_reference.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(extra_args)
        .env_remove("PYPINYIN_NO_PHRASES")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): run scripts/setup.sh (python3, pypinyin, sherpa-onnx)"));
    let input = serde_json::to_vec(texts).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python3 runs");
    writer.join().unwrap().expect("texts written to python3");
    assert!(
        out.status.success(),
        "{} failed (run scripts/setup.sh if a package is missing):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference prints JSON")
}

fn units_of(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|u| u.as_str().unwrap().to_string()).collect()
}

/// Lines of a file, without trimming (leading and trailing spaces are part of the test).
fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(str::to_string).collect()
}

/// The keyword texts of a keywords file: the `@display` text of each line (or the line itself
/// when it has none), and the pre-tokenized pieces before it.
fn keyword_lines(path: &Path) -> Vec<(String, Vec<String>)> {
    lines(path)
        .into_iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once('@') {
            Some((pieces, display)) => (display.trim().to_string(), pieces.split_whitespace().map(str::to_string).collect()),
            None => (l.trim().to_string(), Vec::new()),
        })
        .collect()
}

/// Every `step`-th phrase of the dictionary, pairs of neighbouring phrases run together (new
/// segmentation boundaries), and every distinct reading as a latin text (the ppinyin split of
/// each syllable).
fn dictionary_sample(step: usize) -> Vec<String> {
    let text = std::fs::read_to_string(dict_path()).unwrap();
    let mut phrases = Vec::new();
    let mut readings = HashSet::new();
    let mut section = "";
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(s) = ["chars ", "phrases "].iter().find(|s| line.starts_with(**s)) {
            section = s;
            continue;
        }
        match section {
            "chars " => {
                readings.insert(line.split_once(' ').unwrap().1.to_string());
            }
            "phrases " => {
                let mut cells = line.split(' ');
                phrases.push(cells.next().unwrap().to_string());
                readings.extend(cells.filter(|c| *c != "-").map(str::to_string));
            }
            _ => {}
        }
    }
    let mut out: Vec<String> = phrases.iter().step_by(step).cloned().collect();
    out.extend(phrases.chunks(2).step_by(step).filter(|c| c.len() == 2).map(|c| format!("{}{}", c[0], c[1])));
    let mut readings: Vec<String> = readings.into_iter().collect();
    readings.sort();
    out.extend(readings);
    out
}

/// Short strings over an alphabet that exercises pypinyin's tone conversion on non-Chinese
/// runs: tone-marked letters, combining marks, v/ü, ASCII and other decimal digits, spaces,
/// punctuation, and Chinese characters in between.
fn odd_strings(n: usize) -> Vec<String> {
    const ALPHABET: &[&str] = &[
        "a", "e", "i", "o", "u", "v", "ü", "n", "g", "h", "z", "c", "s", "y", "w", "m", "r", "x", "q", "k", "A", "1", "2",
        "3", "4", "5", "0", "１", "٣", " ", "\u{3000}", "ā", "é", "ǎ", "ò", "ǖ", "ǜ", "ǹ", "ń", "ḿ", "ê", "ế", "\u{304}",
        "\u{300}", "\u{30c}", "-", ".", "，", "中", "行", "长", "乐", "了", "银", "iou", "uei", "uen", "iu", "ui",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    (0..n)
        .map(|_| {
            let len = 1 + next() % 7;
            (0..len).map(|_| ALPHABET[next() % ALPHABET.len()]).collect()
        })
        .collect()
}

#[test]
fn units_equal_sherpa_onnx_text2token() {
    let t0 = std::time::Instant::now();
    let d = dict();
    eprintln!(
        "pinyin: {} loaded in {:.1} ms, {:.2} MB on the heap",
        dict_path().display(),
        t0.elapsed().as_secs_f64() * 1e3,
        d.heap_bytes() as f64 / 1e6
    );
    let model = common::model_dir(KWS_MODEL);
    let mut texts = lines(&repo().join("tests/fixtures/pinyin/phrases.txt"));
    texts.extend(keyword_lines(&model.join("keywords_raw.txt")).into_iter().map(|(t, _)| t));
    texts.extend(keyword_lines(&model.join("test_wavs/test_keywords.txt")).into_iter().map(|(t, _)| t));
    texts.extend(dictionary_sample(97));
    texts.extend(odd_strings(400));
    let reference = reference(&texts, &[]);

    for (units, key) in [(PinyinUnits::Partial, "ppinyin"), (PinyinUnits::Full, "fpinyin")] {
        let want = reference[key].as_array().unwrap();
        assert_eq!(want.len(), texts.len());
        let mut bad = Vec::new();
        for (text, want) in texts.iter().zip(want) {
            let want = units_of(want);
            match d.tokenize(text, units) {
                Ok(got) if got == want => {}
                got => bad.push(format!("{text:?}: zipvox {got:?}, text2token {want:?}")),
            }
        }
        assert!(
            bad.is_empty(),
            "{key}: {} of {} texts differ from sherpa-onnx's text2token:\n{}",
            bad.len(),
            texts.len(),
            bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
        );
        eprintln!("{key}: {} texts equal to sherpa-onnx's text2token", texts.len());
    }
}

#[test]
fn kws_model_keywords_become_its_tokens() {
    let d = dict();
    let model = common::model_dir(KWS_MODEL);
    let tokens: HashSet<String> = lines(&model.join("tokens.txt"))
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    let mut keywords = keyword_lines(&model.join("keywords_raw.txt"));
    let pretokenized = keyword_lines(&model.join("test_wavs/test_keywords.txt"));
    keywords.extend(pretokenized.iter().cloned());
    keywords.extend(keyword_lines(&model.join("keywords.txt")));
    assert!(keywords.len() >= 20, "the model's keyword files are missing lines");

    let texts: Vec<String> = keywords.iter().map(|(t, _)| t.clone()).collect();
    let reference = reference(&texts, &["--tokens", model.join("tokens.txt").to_str().unwrap(), "--tokens-type", "ppinyin"]);
    let want = reference["ppinyin"].as_array().unwrap();
    for ((text, pieces), want) in keywords.iter().zip(want) {
        let got = d.tokenize(text, PinyinUnits::Partial).unwrap();
        assert_eq!(got, units_of(want), "{text}: zipvox vs text2token with the model's tokens.txt");
        for u in &got {
            assert!(tokens.contains(u), "{text}: unit '{u}' is not a token of {KWS_MODEL}");
        }
        // The shipped pre-tokenized lines are what the plain text gives.
        if !pieces.is_empty() {
            assert_eq!(&got, pieces, "{text}: differs from the model's pre-tokenized line");
        }
    }
}

#[test]
fn a_character_without_reading_is_an_error_where_pypinyin_passes_it_through() {
    let d = dict();
    // U+3402 is in pypinyin's Chinese range but has no reading: pypinyin returns the character
    // itself (which text2token then rejects as an unknown token); zipvox says so.
    let text = "你好\u{3402}".to_string();
    let reference = reference(std::slice::from_ref(&text), &[]);
    assert_eq!(units_of(&reference["fpinyin"][0]), ["nǐ", "hǎo", "\u{3402}"]);
    let err = d.tokenize(&text, PinyinUnits::Full).unwrap_err().to_string();
    assert!(err.contains("'\u{3402}' (U+3402) has no pinyin reading"), "{err}");
    assert!(err.contains("pinyin.dict"), "{err}");
}

#[test]
fn the_default_dictionary_is_found_and_the_variable_overrides_it() {
    // The only test here that touches $ZIPVOX_PINYIN_DICT (the others load by path).
    std::env::remove_var("ZIPVOX_PINYIN_DICT");
    let found = Pinyin::default_path().expect("a dictionary is found from a checkout");
    assert!(found.is_file());
    let d = Pinyin::load_default().unwrap();
    assert_eq!(d.tokenize("银行", PinyinUnits::Partial).unwrap(), ["y", "ín", "h", "áng"]);

    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("none.dict");
    std::env::set_var("ZIPVOX_PINYIN_DICT", &missing);
    let err = Pinyin::load_default().unwrap_err().to_string();
    assert!(err.contains("$ZIPVOX_PINYIN_DICT names") && err.contains("none.dict"), "{err}");

    let broken = tmp.path().join("broken.dict");
    std::fs::write(&broken, "zipvox-pinyin 9\n").unwrap();
    std::env::set_var("ZIPVOX_PINYIN_DICT", &broken);
    let err = format!("{:#}", Pinyin::load_default().unwrap_err());
    assert!(err.contains("broken.dict:1: header") && err.contains("gen_pinyin_dict.py"), "{err}");

    let copy = tmp.path().join("copy.dict");
    std::fs::copy(dict_path(), &copy).unwrap();
    std::env::set_var("ZIPVOX_PINYIN_DICT", &copy);
    assert_eq!(Pinyin::load_default().unwrap().source(), copy);
    std::env::remove_var("ZIPVOX_PINYIN_DICT");
}
