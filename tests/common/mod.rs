//! Helpers shared by the integration tests: where the shared models and audio live, and
//! loaders with one model instance per test binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use zipvox::model::{ModelConfig, Precision, Transducer};

/// `$ZIPVOX_SHARED`, else `<crate>/../shared` (where CI places it).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("ZIPVOX_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

pub fn model_dir(name: &str) -> PathBuf {
    shared_dir().join("models").join(name)
}

/// The real pretrained test model.
pub fn test_model_dir() -> PathBuf {
    model_dir("zipformer2-en-gigaspeech-3.3m")
}

pub fn test_wav(name: &str) -> PathBuf {
    test_model_dir().join("test_wavs").join(name)
}

/// Reference greedy transcripts of sherpa-onnx for the test clips (from the model README).
pub const REF_0: &str = "AFTER EARLY NIGHTFALL THE YELLOW LAMPS WOULD LIGHT UP HERE AND THERE THE SQUALID QUARTER OF THE BRAFFLES";
pub const REF_1: &str = "GOD AS A DIRECT CONSEQUENCE OF THE SIN WHICH MAN THUS PUNISHED HAD GIVEN HER A LOVELY CHILD WHOSE PLACE WAS ON THAT SAME DISHONOURED BOSOM TO CONNECT HER PARENT FOREVER WITH THE RACE AND DESCENT OF MORTALS AND TO BE FINALLY A BLESSED SOUL IN HEAVEN";

pub fn load(dir: PathBuf, precision: Precision) -> Arc<Transducer> {
    let cfg = ModelConfig { dir, precision, ..Default::default() };
    Arc::new(Transducer::load(&cfg).expect("model loads"))
}

/// The 3.3M int8 model, loaded once per test binary.
pub fn int8_model() -> Arc<Transducer> {
    static M: OnceLock<Arc<Transducer>> = OnceLock::new();
    M.get_or_init(|| load(test_model_dir(), Precision::Int8)).clone()
}

pub fn read_wav(path: &std::path::Path) -> Vec<f32> {
    zipvox::audio::read_wav(path).expect("wav reads").samples
}

/// Path of the built `zipvox` binary.
pub fn zipvox_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_zipvox"))
}

/// Whether python3 can import `modules` (sherpa-onnx as the peer, …). When not, prints why the
/// calling test skips its comparison, except under CI (`$CI` set), where it fails.
pub fn have_python(test: &str, modules: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "{test}: python3 with {modules} is required under CI (scripts/setup.sh installs it)");
        println!("SKIPPED {test}: python3 cannot import {modules}");
    }
    ok
}
