//! The `info` event: what this server offers (`describe` → `info`).
//!
//! Field for field as the `wyoming` package's `Info`, `AsrProgram`, `AsrModel`, `WakeProgram`
//! and `WakeModel` dataclasses (1.10.2), in their order; Home Assistant drops an `info` whose
//! programs lack a required field (`name`, `attribution`, `installed`, `models`, `languages`),
//! which `tests/wyoming.rs` checks with `wyoming.info.Info.from_event`. It is built from the
//! configuration alone, so it can be answered while the model is still loading.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attribution {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AsrModel {
    pub name: String,
    pub attribution: Attribution,
    pub installed: bool,
    pub description: Option<String>,
    pub version: Option<String>,
    pub languages: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AsrProgram {
    pub name: String,
    pub attribution: Attribution,
    pub installed: bool,
    pub description: Option<String>,
    pub version: Option<String>,
    pub models: Vec<AsrModel>,
    pub supports_transcript_streaming: bool,
    pub requires_external_vad: bool,
    pub prefers_auto_gain_enabled: bool,
    pub prefers_noise_reduction_enabled: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WakeModel {
    pub name: String,
    pub attribution: Attribution,
    pub installed: bool,
    pub description: Option<String>,
    pub version: Option<String>,
    pub languages: Vec<String>,
    pub phrase: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WakeProgram {
    pub name: String,
    pub attribution: Attribution,
    pub installed: bool,
    pub description: Option<String>,
    pub version: Option<String>,
    pub models: Vec<WakeModel>,
}

/// The `info` event's data. The package always writes every list, empty or not.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Info {
    pub asr: Vec<AsrProgram>,
    pub tts: Vec<()>,
    pub handle: Vec<()>,
    pub intent: Vec<()>,
    pub wake: Vec<WakeProgram>,
    pub mic: Vec<()>,
    pub snd: Vec<()>,
}

/// What `info` describes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDescription {
    /// The model directory's name (e.g. `sherpa-onnx-streaming-zipformer-en-2023-06-26`).
    pub model_name: String,
    /// ISO 639-1 code of the model's language.
    pub language: String,
    /// Wake words (keywords' display texts); empty when no keywords are configured.
    pub wake_words: Vec<String>,
    /// `--endpointing`: the server ends the transcript itself, no external VAD needed.
    pub endpointing: bool,
}

fn zipvox_attribution() -> Attribution {
    Attribution { name: "zipvox".into(), url: "https://github.com/zipvox/zipvox".into() }
}

fn model_attribution() -> Attribution {
    Attribution { name: "k2-fsa (icefall, sherpa-onnx)".into(), url: "https://github.com/k2-fsa/sherpa-onnx".into() }
}

impl ServiceDescription {
    pub fn info(&self) -> Info {
        let version = Some(env!("CARGO_PKG_VERSION").to_string());
        let languages = vec![self.language.clone()];
        let asr = AsrProgram {
            name: "zipvox".into(),
            attribution: zipvox_attribution(),
            installed: true,
            description: Some("zipvox: streaming Zipformer transducer speech recognition on the CPU".into()),
            version: version.clone(),
            models: vec![AsrModel {
                name: self.model_name.clone(),
                attribution: model_attribution(),
                installed: true,
                description: Some(format!("streaming Zipformer transducer {}", self.model_name)),
                version: None,
                languages: languages.clone(),
            }],
            supports_transcript_streaming: true,
            requires_external_vad: !self.endpointing,
            // The model was trained on raw (not gain-normalised, not denoised) speech.
            prefers_auto_gain_enabled: false,
            prefers_noise_reduction_enabled: false,
        };
        let wake = if self.wake_words.is_empty() {
            vec![]
        } else {
            vec![WakeProgram {
                name: "zipvox-kws".into(),
                attribution: zipvox_attribution(),
                installed: true,
                description: Some(format!("zipvox keyword spotting with {}", self.model_name)),
                version,
                models: self
                    .wake_words
                    .iter()
                    .map(|w| WakeModel {
                        name: w.clone(),
                        attribution: model_attribution(),
                        installed: true,
                        description: Some(format!("keyword '{w}' ({})", self.model_name)),
                        version: None,
                        languages: languages.clone(),
                        phrase: Some(w.clone()),
                    })
                    .collect(),
            }]
        };
        Info { asr: vec![asr], tts: vec![], handle: vec![], intent: vec![], wake, mic: vec![], snd: vec![] }
    }
}

/// The display names of a keywords file's lines, without the model: the `@text` when there is
/// one, else the words as written (BPE pieces joined as the model spells them: `▁` starts a
/// word, other pieces attach). Used for `info` and for `detect{names}`; once the model is
/// loaded the spotter's own names are used (they agree for every `@text` and plain-word line).
pub fn keyword_names(text: &str) -> Vec<String> {
    let mut names = vec![];
    for line in text.lines() {
        let mut words = vec![];
        let mut display = None;
        for w in line.split_whitespace() {
            match w.chars().next() {
                Some('@') => display = Some(w[1..].to_string()),
                Some(':') | Some('#') if w.len() > 1 && w[1..].parse::<f32>().is_ok() => {}
                _ => words.push(w),
            }
        }
        if words.is_empty() {
            continue;
        }
        let name = display.unwrap_or_else(|| {
            if words[0].starts_with('\u{2581}') {
                words.concat().replace('\u{2581}', " ").trim().to_string()
            } else {
                words.join(" ")
            }
        });
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wyoming::codec::encode_event;

    #[test]
    fn keyword_names_follow_the_display_rules() {
        let text = "w én s ēn @文森特卡索\n\u{2581}LIGHT \u{2581}UP :2.0 #0.3\nhey zipvox\n\n\u{2581}LIGHT \u{2581}UP\n";
        assert_eq!(keyword_names(text), ["文森特卡索", "LIGHT UP", "hey zipvox"]);
    }

    #[test]
    fn info_has_every_list_and_the_wake_program_only_with_keywords() {
        let mut d = ServiceDescription { model_name: "m".into(), language: "en".into(), wake_words: vec![], endpointing: false };
        let bytes = encode_event("info", &d.info(), &[]);
        let text = String::from_utf8(bytes).unwrap();
        let data: serde_json::Value = serde_json::from_str(text.split_once('\n').unwrap().1).unwrap();
        for k in ["asr", "tts", "handle", "intent", "wake", "mic", "snd"] {
            assert!(data[k].is_array(), "{k}");
        }
        assert_eq!(data["asr"][0]["supports_transcript_streaming"], true);
        assert_eq!(data["asr"][0]["requires_external_vad"], true);
        assert_eq!(data["asr"][0]["models"][0]["languages"][0], "en");
        assert_eq!(data["wake"].as_array().unwrap().len(), 0);
        d.wake_words = vec!["法国".into()];
        d.endpointing = true;
        let info = d.info();
        assert_eq!(info.wake[0].models[0].phrase.as_deref(), Some("法国"));
        assert!(!info.asr[0].requires_external_vad);
    }
}
