//! Endpoint detection with sherpa-onnx's three rules.
//!
//! A rule fires when (the segment contains non-silence, or the rule does not require it) and
//! trailing silence ≥ `min_trailing_silence` and segment length ≥ `min_utterance_length`.
//! Trailing silence is the run of blank frames at the end of the best hypothesis (in encoder
//! frames × subsampling × 10 ms); "contains non-silence" means the segment is longer than its
//! trailing silence.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// The three rules, with sherpa-onnx's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    }
}
