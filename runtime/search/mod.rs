//! Search over the transducer's outputs through [`TransducerSearch`] (greedy search, modified
//! beam search with optional hotwords), keyword spotting, and endpoint detection.

pub mod beam;
pub mod context_graph;
pub mod endpoint;
pub mod greedy;
pub mod hypothesis;
pub mod keyword;
pub mod phrases;

pub use beam::ModifiedBeamSearch;
pub use context_graph::ContextGraph;
pub use endpoint::{EndpointConfig, EndpointRule};
pub use greedy::GreedySearch;
pub use keyword::{Detection, KeywordConfig, KeywordSpotter};

use crate::model::Transducer;
use anyhow::Result;
use std::sync::Arc;
use std::time::Duration;

/// Calls and time spent in the decoder and joiner (for `bench` and the service's stats).
#[derive(Debug, Clone, Default)]
pub struct SearchStats {
    pub decoder_calls: usize,
    pub decoder_time: Duration,
    pub joiner_calls: usize,
    pub joiner_time: Duration,
}

/// A search over encoder output, chunk by chunk, for one stream.
pub trait TransducerSearch: Send {
    /// Consumes one chunk of encoder output (`frames × dim`, row-major).
    fn decode_chunk(&mut self, encoder_out: &[f32], dim: usize) -> Result<()>;
    /// The best hypothesis of the current segment.
    fn best(&self) -> DecoderResult;
    /// Blank frames at the end of the best hypothesis (encoder frames), for endpointing.
    fn num_trailing_blanks(&self) -> usize;
    /// Starts a new segment after an endpoint, keeping the last `context_size` tokens as the
    /// decoder's context (sherpa-onnx's `Reset`); timestamps restart at 0.
    fn new_segment(&mut self);
    fn stats(&self) -> SearchStats;
    /// How many of the current segment's transcript tokens no later hypothesis can retract
    /// (a prefix of `best()`'s): every one for greedy search, the common prefix of all active
    /// paths for beam search (each later path extends one of them). Streaming deltas
    /// (`zipvox wyoming`) are sent only for these. The default, 0, is always safe.
    fn stable_len(&self) -> usize {
        0
    }
}

/// Largest beam (active paths of modified beam search) accepted. Each path costs a decoder row
/// and a joiner row per frame and `max_active_paths × vocab` candidates are ranked per frame, so
/// the beam bounds both time and memory (sherpa-onnx's examples use 4; accuracy is flat past ~8).
pub const MAX_ACTIVE_PATHS: usize = 64;

/// Checks a beam size: 1..=[`MAX_ACTIVE_PATHS`], with an error that names the limit.
pub fn check_beam(max_active_paths: usize) -> Result<()> {
    if !(1..=MAX_ACTIVE_PATHS).contains(&max_active_paths) {
        anyhow::bail!(
            "beam must be between 1 and {MAX_ACTIVE_PATHS} active paths, not {max_active_paths}"
        );
    }
    Ok(())
}

/// Largest per-token bonus accepted for hotwords and keywords (`--hotwords-score`,
/// `--keywords-score`): sherpa-onnx's defaults are 1.5 and 1.0; past a few nats the bonus
/// overrides the acoustics and cuts words off.
pub const MAX_CONTEXT_SCORE: f32 = 20.0;

/// Checks a default hotword/keyword bonus: finite, 0..=[`MAX_CONTEXT_SCORE`].
pub fn check_context_score(what: &str, score: f32) -> Result<()> {
    if !score.is_finite() || !(0.0..=MAX_CONTEXT_SCORE).contains(&score) {
        anyhow::bail!("{what} must be a number between 0 and {MAX_CONTEXT_SCORE}, not {score}");
    }
    Ok(())
}

/// Checks a keyword threshold (a mean token probability): finite, in (0, 1].
pub fn check_probability(what: &str, p: f32) -> Result<()> {
    if !p.is_finite() || p <= 0.0 || p > 1.0 {
        anyhow::bail!("{what} must be a probability in (0, 1], not {p}");
    }
    Ok(())
}

/// How to search.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum DecodingMethod {
    #[default]
    Greedy,
    /// sherpa-onnx's `modified_beam_search` with this many active paths (default 4).
    ModifiedBeamSearch { max_active_paths: usize },
}

impl DecodingMethod {
    /// sherpa-onnx's name for the method (`greedy_search`, `modified_beam_search`).
    pub fn name(&self) -> &'static str {
        match self {
            DecodingMethod::Greedy => "greedy_search",
            DecodingMethod::ModifiedBeamSearch { .. } => "modified_beam_search",
        }
    }

    /// The method named `name` (`greedy`, `greedy-search`, `modified-beam-search`, or
    /// sherpa-onnx's underscore spellings); `max_active_paths` applies to beam search.
    pub fn from_name(name: &str, max_active_paths: usize) -> Result<Self> {
        match name.replace('_', "-").as_str() {
            "greedy" | "greedy-search" => Ok(DecodingMethod::Greedy),
            "modified-beam-search" | "beam-search" | "beam" => {
                check_beam(max_active_paths)?;
                Ok(DecodingMethod::ModifiedBeamSearch { max_active_paths })
            }
            other => anyhow::bail!("unknown decoding method '{other}' (expected greedy-search or modified-beam-search)"),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct DecodingConfig {
    pub method: DecodingMethod,
    /// Contextual biasing (beam search only): the hotwords' graph, from
    /// [`context_graph::load_hotwords`].
    pub hotwords: Option<Arc<ContextGraph>>,
}

/// Builds the search a config asks for.
pub fn make_search(model: &Transducer, config: &DecodingConfig) -> Result<Box<dyn TransducerSearch>> {
    match config.method {
        DecodingMethod::Greedy => {
            if config.hotwords.is_some() {
                anyhow::bail!("hotwords need modified beam search (--decoding modified-beam-search)");
            }
            Ok(Box::new(GreedySearch::new(model)?))
        }
        DecodingMethod::ModifiedBeamSearch { max_active_paths } => {
            Ok(Box::new(ModifiedBeamSearch::new(model, max_active_paths, config.hotwords.clone())?))
        }
    }
}

/// The running hypothesis of one stream, as sherpa-onnx keeps it.
#[derive(Debug, Clone)]
pub struct DecoderResult {
    /// Token ids, starting with `context_size` context tokens (not part of the transcript).
    pub tokens: Vec<i64>,
    /// Encoder output frame (since stream start) at which each transcript token was emitted.
    pub timestamps: Vec<usize>,
    /// Blank frames since the last emitted token (drives endpoint rule "trailing silence").
    pub num_trailing_blanks: usize,
    /// Encoder output frames consumed so far.
    pub frame_offset: usize,
    pub context_size: usize,
}

impl DecoderResult {
    /// A fresh hypothesis: context `[-1, …, -1, 0]` (icefall's decoder embeds -1 as zeros).
    pub fn new(context_size: usize) -> Self {
        let mut tokens = vec![-1i64; context_size];
        if let Some(last) = tokens.last_mut() {
            *last = 0;
        }
        DecoderResult { tokens, timestamps: vec![], num_trailing_blanks: 0, frame_offset: 0, context_size }
    }

    /// The transcript's token ids (context stripped).
    pub fn transcript_ids(&self) -> Vec<usize> {
        self.tokens[self.context_size..].iter().map(|&t| t as usize).collect()
    }

    /// The decoder's input: the last `context_size` tokens.
    pub fn context(&self) -> &[i64] {
        &self.tokens[self.tokens.len() - self.context_size..]
    }

    /// The result a new segment starts from: empty, but keeping the last `context_size`
    /// tokens as context when this one emitted any (sherpa-onnx's `Reset`).
    pub fn next_segment(&self) -> DecoderResult {
        let mut r = DecoderResult::new(self.context_size);
        if self.tokens.len() > self.context_size {
            r.tokens = self.context().to_vec();
        }
        r
    }

    /// True when the segment produced text (sherpa-onnx counts a segment only then).
    pub fn has_text(&self) -> bool {
        self.tokens.len() > self.context_size && self.tokens.last() != Some(&0)
    }
}

/// Index of the first maximum (as `std::max_element`); 0 for an empty slice.
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in xs.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn fresh_result_has_blank_context() {
        let r = DecoderResult::new(2);
        assert_eq!(r.tokens, vec![-1, 0]);
        assert_eq!(r.context(), &[-1, 0]);
        assert!(r.transcript_ids().is_empty());
    }
}
