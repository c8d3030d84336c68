//! Modelling units: what a model's tokens are (sherpa-onnx's `--tokens-type`), detected from the
//! model directory or given by the user, so plain-text keywords and hotwords can be turned into
//! the model's tokens the way sherpa-onnx's `text2token` does.
//!
//! Text assembly does not depend on the type: sherpa-onnx concatenates the symbols (a leading `▁`
//! becomes a space, byte-fallback pieces are joined into UTF-8) for every unit type, which gives
//! pinyin and characters without spaces and the zh/en spacing of `cjkchar+bpe` models (English
//! words start with `▁`, characters do not). See [`super::TokenTable::text`].

use super::TokenTable;
use anyhow::{bail, Result};
use std::fmt;
use std::str::FromStr;

/// sherpa-onnx's modelling-unit names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokensType {
    /// SentencePiece pieces (`▁HE LL O`), possibly with byte-fallback pieces (`<0xE4>`).
    Bpe,
    /// One token per CJK character.
    CjkChar,
    /// CJK characters plus SentencePiece pieces for everything else (bilingual zh-en models).
    CjkCharBpe,
    /// Pinyin initial + tone-marked final (`zh ōu`).
    PPinyin,
    /// Whole tone-marked pinyin syllables (`zhōu`).
    FPinyin,
}

pub const TOKENS_TYPES: [&str; 5] = ["bpe", "cjkchar", "cjkchar+bpe", "ppinyin", "fpinyin"];

impl TokensType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokensType::Bpe => "bpe",
            TokensType::CjkChar => "cjkchar",
            TokensType::CjkCharBpe => "cjkchar+bpe",
            TokensType::PPinyin => "ppinyin",
            TokensType::FPinyin => "fpinyin",
        }
    }

    /// Whether plain text needs the model's SentencePiece model (`bpe.model`).
    pub fn uses_bpe(self) -> bool {
        matches!(self, TokensType::Bpe | TokensType::CjkCharBpe)
    }

    pub fn is_pinyin(self) -> bool {
        matches!(self, TokensType::PPinyin | TokensType::FPinyin)
    }

    /// Guesses the type from the symbols and whether the directory has `bpe.model`/`bpe.vocab`:
    /// `▁` pieces or a bpe file → bpe (cjkchar+bpe when there are CJK characters too); CJK
    /// characters alone → cjkchar; tone-marked latin symbols → pinyin, partial when the bare
    /// initials `zh`/`ch`/`sh` are tokens of their own, full otherwise. Anything else → bpe.
    pub fn detect(tokens: &TokenTable, has_bpe_file: bool) -> TokensType {
        let (mut cjk, mut word_start, mut toned) = (0usize, 0usize, 0usize);
        for id in 0..tokens.len() {
            let s = tokens.symbol(id).unwrap_or("");
            if s.starts_with('\u{2581}') {
                word_start += 1;
            }
            let mut chars = s.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                if is_cjk(c) {
                    cjk += 1;
                }
            }
            if s.chars().any(is_tone_marked) {
                toned += 1;
            }
        }
        if has_bpe_file || word_start > 0 {
            return if cjk > 0 { TokensType::CjkCharBpe } else { TokensType::Bpe };
        }
        if cjk > 0 {
            return TokensType::CjkChar;
        }
        if toned > 0 {
            let partial = ["zh", "ch", "sh"].iter().all(|i| tokens.id(i).is_some());
            return if partial { TokensType::PPinyin } else { TokensType::FPinyin };
        }
        TokensType::Bpe
    }
}

impl fmt::Display for TokensType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokensType {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "bpe" => TokensType::Bpe,
            "cjkchar" => TokensType::CjkChar,
            "cjkchar+bpe" => TokensType::CjkCharBpe,
            "ppinyin" => TokensType::PPinyin,
            "fpinyin" => TokensType::FPinyin,
            _ => bail!("unknown tokens type '{s}': use one of {}", TOKENS_TYPES.join(", ")),
        })
    }
}

/// CJK Unified Ideographs (U+4E00–U+9FFF), the range sherpa-onnx's text2token splits on.
pub fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c)
}

/// A vowel with a pinyin tone mark (or ü), as in ppinyin/fpinyin symbols.
fn is_tone_marked(c: char) -> bool {
    "āáǎàēéěèīíǐìōóǒòūúǔùüǖǘǚǜńňǹḿ".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn table(syms: &[&str]) -> TokenTable {
        let text: String = syms.iter().enumerate().map(|(i, s)| format!("{s} {i}\n")).collect();
        TokenTable::parse(&text, Path::new("tokens.txt")).unwrap()
    }

    #[test]
    fn detects_each_type_from_the_symbols() {
        let base = ["<blk>", "<sos/eos>", "<unk>"];
        let with = |more: &[&str]| table(&[&base[..], more].concat());
        assert_eq!(TokensType::detect(&with(&["\u{2581}HE", "LL", "O"]), false), TokensType::Bpe);
        assert_eq!(TokensType::detect(&with(&["HE", "LL"]), true), TokensType::Bpe);
        assert_eq!(TokensType::detect(&with(&["你", "好"]), false), TokensType::CjkChar);
        assert_eq!(TokensType::detect(&with(&["你", "\u{2581}HI"]), false), TokensType::CjkCharBpe);
        assert_eq!(TokensType::detect(&with(&["zh", "ch", "sh", "ōu", "x", "iǎo"]), false), TokensType::PPinyin);
        assert_eq!(TokensType::detect(&with(&["zhōu", "xiǎo", "ài"]), false), TokensType::FPinyin);
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_choices() {
        for n in TOKENS_TYPES {
            assert_eq!(n.parse::<TokensType>().unwrap().as_str(), n);
        }
        let e = "pinyin".parse::<TokensType>().unwrap_err().to_string();
        assert!(e.contains("ppinyin") && e.contains("cjkchar+bpe"), "{e}");
    }
}
