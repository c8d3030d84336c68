//! Chinese text → pinyin modelling units, as sherpa-onnx's `text2token` makes them with pypinyin
//! (for `ppinyin` and `fpinyin` models such as the WenetSpeech keyword-spotting Zipformer).
//!
//! INTERFACE SKETCH (to be implemented): the callers (keyword/hotword reading, `zipvox
//! text2token`) use only what is declared here.

use anyhow::{bail, Result};
use std::path::Path;

/// Which pinyin units a model uses (sherpa-onnx's `--tokens-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinyinUnits {
    /// `ppinyin`: each syllable split into initial + tone-marked final (`zh ōu`); a syllable
    /// without an initial is its final alone (`ài`).
    Partial,
    /// `fpinyin`: whole tone-marked syllables (`zhōu`).
    Full,
}

/// The reading dictionary (characters and phrases), loaded once and shared.
pub struct Pinyin {
    _private: (),
}

impl Pinyin {
    /// Loads the dictionary installed with zipvox (or named by `$ZIPVOX_PINYIN_DICT`).
    pub fn load_default() -> Result<Self> {
        bail!("pinyin conversion is not available in this build")
    }

    /// Loads a dictionary file.
    pub fn load(path: &Path) -> Result<Self> {
        bail!("pinyin conversion is not available in this build ({})", path.display())
    }

    /// The units of `text`, in order, as sherpa-onnx's text2token gives them for `units`
    /// (phrase-aware readings of polyphonic characters). An error names the character that has
    /// no reading.
    pub fn tokenize(&self, text: &str, units: PinyinUnits) -> Result<Vec<String>> {
        let _ = (text, units);
        bail!("pinyin conversion is not available in this build")
    }
}
