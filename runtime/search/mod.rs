//! Search over the transducer's outputs: greedy search (and, later, beam search and endpointing).

pub mod greedy;

pub use greedy::{GreedySearch, SearchStats};

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
