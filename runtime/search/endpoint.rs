//! Endpoint detection with sherpa-onnx's three rules.
//!
//! A rule fires when (the segment contains non-silence, or the rule does not require it) and
//! trailing silence ≥ `min_trailing_silence` and segment length ≥ `min_utterance_length`.
//! Trailing silence is the run of blank frames at the end of the best hypothesis (in encoder
//! frames × subsampling × 10 ms); "contains non-silence" means the segment is longer than its
//! trailing silence.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EndpointRule {
    pub must_contain_nonsilence: bool,
    /// Seconds of trailing silence needed.
    pub min_trailing_silence: f32,
    /// Seconds of segment needed.
    pub min_utterance_length: f32,
}

impl EndpointRule {
    pub fn activated(&self, trailing_silence: f32, utterance_length: f32) -> bool {
        let contains_nonsilence = utterance_length > trailing_silence;
        (contains_nonsilence || !self.must_contain_nonsilence)
            && trailing_silence >= self.min_trailing_silence
            && utterance_length >= self.min_utterance_length
    }
}

/// Longest time a rule may ask for, in seconds (an hour: anything longer is a typo).
pub const MAX_RULE_SECONDS: f32 = 3600.0;

/// A rule as written in a config file: every key optional, the rest from that rule's default.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialRule {
    must_contain_nonsilence: Option<bool>,
    min_trailing_silence: Option<f32>,
    min_utterance_length: Option<f32>,
}

impl PartialRule {
    fn over(self, d: EndpointRule) -> EndpointRule {
        EndpointRule {
            must_contain_nonsilence: self.must_contain_nonsilence.unwrap_or(d.must_contain_nonsilence),
            min_trailing_silence: self.min_trailing_silence.unwrap_or(d.min_trailing_silence),
            min_utterance_length: self.min_utterance_length.unwrap_or(d.min_utterance_length),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartialEndpointConfig {
    rule1: Option<PartialRule>,
    rule2: Option<PartialRule>,
    rule3: Option<PartialRule>,
}

impl From<PartialEndpointConfig> for EndpointConfig {
    fn from(p: PartialEndpointConfig) -> Self {
        let d = EndpointConfig::default();
        EndpointConfig {
            rule1: p.rule1.unwrap_or_default().over(d.rule1),
            rule2: p.rule2.unwrap_or_default().over(d.rule2),
            rule3: p.rule3.unwrap_or_default().over(d.rule3),
        }
    }
}

/// The three rules, with sherpa-onnx's defaults. In a config file every table and key is
/// optional: a missing key takes that rule's default (so `[endpoint.rule2]` with only
/// `min_trailing_silence` keeps rule 2's `must_contain_nonsilence = true`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "PartialEndpointConfig")]
pub struct EndpointConfig {
    /// Long trailing silence, even if nothing was said (default 2.4 s).
    pub rule1: EndpointRule,
    /// Shorter trailing silence after speech (default 1.2 s).
    pub rule2: EndpointRule,
    /// Maximum segment length (default 20 s).
    pub rule3: EndpointRule,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            rule1: EndpointRule { must_contain_nonsilence: false, min_trailing_silence: 2.4, min_utterance_length: 0.0 },
            rule2: EndpointRule { must_contain_nonsilence: true, min_trailing_silence: 1.2, min_utterance_length: 0.0 },
            rule3: EndpointRule { must_contain_nonsilence: false, min_trailing_silence: 0.0, min_utterance_length: 20.0 },
        }
    }
}

impl EndpointConfig {
    /// The rules `transcribe` cuts WAV files with, to keep a long file's hypotheses bounded
    /// (row 8 of issue 17): listen's silence rules, but only once the segment is 30 s long, and
    /// a hard cut at 120 s. A file shorter than 30 s is therefore decoded as one segment, exactly
    /// as sherpa-onnx's file decoders do.
    pub fn for_files() -> Self {
        let d = Self::default();
        EndpointConfig {
            rule1: EndpointRule { min_utterance_length: 30.0, ..d.rule1 },
            rule2: EndpointRule { min_utterance_length: 30.0, ..d.rule2 },
            rule3: EndpointRule { min_utterance_length: 120.0, ..d.rule3 },
        }
    }

    /// Checks every time: finite, 0..=[`MAX_RULE_SECONDS`]; and that no rule fires on every
    /// frame (a rule with no trailing silence and no minimum length would end a segment after
    /// each chunk). Errors name the key, as in the config file.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (name, r) in [("rule1", self.rule1), ("rule2", self.rule2), ("rule3", self.rule3)] {
            for (key, v) in [("min_trailing_silence", r.min_trailing_silence), ("min_utterance_length", r.min_utterance_length)] {
                if !v.is_finite() || !(0.0..=MAX_RULE_SECONDS).contains(&v) {
                    anyhow::bail!("[endpoint.{name}] {key} must be between 0 and {MAX_RULE_SECONDS} seconds, not {v}");
                }
            }
            if r.min_trailing_silence <= 0.0 && r.min_utterance_length <= 0.0 {
                anyhow::bail!(
                    "[endpoint.{name}] would end a segment on every chunk: give it min_trailing_silence > 0 \
                     or min_utterance_length > 0"
                );
            }
        }
        Ok(())
    }

    /// `frames_decoded`: feature frames of this segment; `trailing_silence_frames`: feature
    /// frames of trailing blanks; `frame_shift`: seconds per feature frame.
    pub fn is_endpoint(&self, frames_decoded: usize, trailing_silence_frames: usize, frame_shift: f32) -> bool {
        let utterance_length = frames_decoded as f32 * frame_shift;
        let trailing_silence = trailing_silence_frames as f32 * frame_shift;
        [self.rule1, self.rule2, self.rule3].iter().any(|r| r.activated(trailing_silence, utterance_length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sherpa_default_rules() {
        let c = EndpointConfig::default();
        // f32 arithmetic as sherpa-onnx: 240 × 0.01 = 2.3999999 < 2.4, so with trailing
        // silence in steps of 4 frames the rules fire at 244 and 124 frames.
        // 2.4 s of silence and nothing else: rule 1.
        assert!(c.is_endpoint(244, 244, 0.01));
        assert!(!c.is_endpoint(240, 240, 0.01));
        // Speech then 1.2 s of silence: rule 2.
        assert!(c.is_endpoint(300, 124, 0.01));
        assert!(!c.is_endpoint(300, 120, 0.01));
        // 20 s without pause: rule 3.
        assert!(c.is_endpoint(2000, 0, 0.01));
        assert!(!c.is_endpoint(1996, 0, 0.01));
        c.validate().unwrap();
    }

    #[test]
    fn bad_rules_are_named() {
        let mut c = EndpointConfig::default();
        c.rule1.min_trailing_silence = -1.0;
        assert!(c.validate().unwrap_err().to_string().contains("[endpoint.rule1] min_trailing_silence"));
        c.rule1.min_trailing_silence = f32::NAN;
        assert!(c.validate().is_err());
        let mut c = EndpointConfig::default();
        c.rule3.min_utterance_length = 0.0;
        assert!(c.validate().unwrap_err().to_string().contains("rule3"));
    }
}
