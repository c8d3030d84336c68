//! Keyword spotting against sherpa-onnx's KeywordSpotter (model README; the dev-set
//! references come from scripts/sherpa_beam_reference.py kws), with the real 3.3M model.

mod common;

use common::*;
use std::path::Path;
use std::sync::Arc;
use zipvox::search::keyword::load_keywords;
use zipvox::search::{ContextGraph, Detection, KeywordConfig, KeywordSpotter};

fn graph_from(text: &str, config: &KeywordConfig) -> Arc<ContextGraph> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keywords.txt");
    std::fs::write(&path, text).unwrap();
    Arc::new(load_keywords(&path, &int8_model(), config).expect("keywords load"))
}

fn spot(graph: &Arc<ContextGraph>, config: &KeywordConfig, wav: &Path) -> Vec<Detection> {
    let mut s = KeywordSpotter::new(int8_model(), graph.clone(), config).unwrap();
    let mut found = s.accept_waveform(&read_wav(wav)).unwrap();
    found.extend(s.input_finished().unwrap());
    found
}

fn keywords(found: &[Detection]) -> Vec<&str> {
    found.iter().map(|d| d.keyword.as_str()).collect()
}

#[test]
fn test_keywords_are_found_in_the_test_clips() {
    let config = KeywordConfig::default();
    let g = Arc::new(load_keywords(&test_wav("test_keywords.txt"), &int8_model(), &config).unwrap());
    let f0 = spot(&g, &config, &test_wav("0.wav"));
    assert_eq!(keywords(&f0), ["LIGHT UP"]);
    let f1 = spot(&g, &config, &test_wav("1.wav"));
    assert_eq!(keywords(&f1), ["LOVELY CHILD", "FOREVER"]);
    // sherpa-onnx: LIGHT UP 3.04–3.16 s, LOVELY CHILD 5.36–6.04 s, FOREVER 10.88–11.08 s
    // (absolute times; the spotter resets after LOVELY CHILD). One frame is 0.04 s.
    for (d, (s, e)) in f0.iter().chain(&f1).zip([(3.04, 3.16), (5.36, 6.04), (10.88, 11.08)]) {
        assert!((d.start - s).abs() <= 0.041 && (d.end - e).abs() <= 0.041, "{d:?} vs {s}–{e}");
    }
    assert_eq!(f1[0].tokens, [" LOVE", "LY", " CHI", "L", "D"]);
}

#[test]
fn plain_text_keywords_work_like_pieces() {
    let config = KeywordConfig::default();
    let g = graph_from("light up\nLOVELY CHILD\nFOREVER @for-ever\n", &config);
    assert_eq!(keywords(&spot(&g, &config, &test_wav("0.wav"))), ["light up"]);
    assert_eq!(keywords(&spot(&g, &config, &test_wav("1.wav"))), ["LOVELY CHILD", "for-ever"]);
}

#[test]
fn per_keyword_thresholds_apply() {
    let config = KeywordConfig::default();
    // A mean token probability of 0.999 is out of reach; the other keyword still fires.
    let g = graph_from("\u{2581}LOVE LY \u{2581}CHI L D #0.999\n\u{2581}FOR E VER\n", &config);
    assert_eq!(keywords(&spot(&g, &config, &test_wav("1.wav"))), ["FOREVER"]);
    // A global threshold of 0.999 silences everything.
    let strict = KeywordConfig { keywords_threshold: 0.999, ..KeywordConfig::default() };
    let g = graph_from("LOVELY CHILD\nFOREVER\n", &strict);
    assert!(spot(&g, &strict, &test_wav("1.wav")).is_empty());
}

/// Upstream's example keyword list on real speech that holds none of its keywords: sherpa-onnx
/// detects nothing there, and neither may zipvox.
#[test]
fn no_false_alarms_on_the_dev_set() {
    let config = KeywordConfig::default();
    let g = Arc::new(load_keywords(&test_model_dir().join("keywords_raw.txt"), &int8_model(), &config).unwrap());
    assert_eq!(g.num_phrases, 10);
    let manifest = shared_dir().join("audio/dev/manifest.tsv");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut files = 0;
    let mut alarms = vec![];
    for line in text.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let wav = manifest.parent().unwrap().join(cols[1]);
        for d in spot(&g, &config, &wav) {
            alarms.push(format!("{}: {} at {:.2}s", cols[0], d.keyword, d.start));
        }
        files += 1;
    }
    eprintln!("keywords_raw.txt on {files} dev utterances: {} false alarms {alarms:?}", alarms.len());
    assert_eq!(files, 20);
    assert!(alarms.is_empty(), "{alarms:?}");
}

#[test]
fn spot_cli_prints_json_detections() {
    let out = std::process::Command::new(zipvox_bin())
        .args(["spot", "--model"])
        .arg(test_model_dir())
        .arg("--keywords")
        .arg(test_wav("test_keywords.txt"))
        .arg("--json")
        .arg(test_wav("0.wav"))
        .arg(test_wav("1.wav"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(&str, &str)> = lines
        .iter()
        .map(|v| {
            let file = v["file"].as_str().unwrap();
            (&file[file.len() - 5..], v["keyword"].as_str().unwrap())
        })
        .collect();
    assert_eq!(got, [("0.wav", "LIGHT UP"), ("1.wav", "LOVELY CHILD"), ("1.wav", "FOREVER")]);
    assert!(lines.iter().all(|v| v["start"].as_f64().unwrap() <= v["end"].as_f64().unwrap()));
}

#[test]
fn unknown_pieces_and_empty_files_are_errors() {
    let config = KeywordConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.txt");
    std::fs::write(&path, "# comment-looking\n").unwrap();
    assert!(load_keywords(&path, &int8_model(), &config).is_err());
    std::fs::write(&path, "").unwrap();
    let err = load_keywords(&path, &int8_model(), &config).unwrap_err();
    assert!(format!("{err:#}").contains("no keywords"), "{err:#}");
}
