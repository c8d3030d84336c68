//! Search over the transducer's outputs (greedy search; beam search, hotwords and keyword
//! spotting plug in through [`TransducerSearch`]) and endpoint detection.

pub mod endpoint;
pub mod greedy;

pub use endpoint::{EndpointConfig, EndpointRule};
pub use greedy::GreedySearch;

use crate::model::Transducer;
use anyhow::Result;
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
}

/// How to search.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum DecodingMethod {
    #[default]
    Greedy,
}

#[derive(Debug, Clone, Default)]
pub struct DecodingConfig {
    pub method: DecodingMethod,
}

/// Builds the search a config asks for.
pub fn make_search(model: &Transducer, config: &DecodingConfig) -> Result<Box<dyn TransducerSearch>> {
    match config.method {
        DecodingMethod::Greedy => Ok(Box::new(GreedySearch::new(model)?)),
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
