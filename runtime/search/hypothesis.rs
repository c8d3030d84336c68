//! Beam-search hypotheses, as sherpa-onnx keeps them: token sequences with an accumulated
//! log-probability, merged (log-add) when two paths reach the same sequence.

use super::context_graph::{ContextGraph, StateId};

/// One path through the search.
#[derive(Debug, Clone)]
pub struct Hypothesis {
    /// Token ids, starting with `context_size` context tokens.
    pub ys: Vec<i64>,
    /// Encoder frame (since the segment's start) of each token after the context.
    pub timestamps: Vec<usize>,
    /// Keyword spotting: the acoustic probability of each token after the context.
    pub ys_probs: Vec<f32>,
    /// Accumulated log-probability (acoustic plus context-graph bonuses).
    pub log_prob: f64,
    /// Where the path stands in the context graph (hotwords, keywords).
    pub context_state: StateId,
    pub num_trailing_blanks: usize,
    /// Polynomial hash of `ys`, kept up to date, to compare sequences quickly.
    hash: u64,
}

const HASH_MUL: u64 = 0x100_0000_01b3;

fn hash_of(ys: &[i64]) -> u64 {
    ys.iter().fold(0xcbf2_9ce4_8422_2325, |h, &t| h.wrapping_mul(HASH_MUL) ^ (t as u64))
}

impl Hypothesis {
    pub fn new(ys: Vec<i64>, log_prob: f64) -> Self {
        let hash = hash_of(&ys);
        Hypothesis {
            ys,
            timestamps: vec![],
            ys_probs: vec![],
            log_prob,
            context_state: ContextGraph::ROOT,
            num_trailing_blanks: 0,
            hash,
        }
    }

    /// A fresh path: context `[-1, …, -1, 0]` (blank last), log-prob 0, at the graph's root.
    pub fn blank(context_size: usize) -> Self {
        Self::new(blank_context(context_size), 0.0)
    }

    /// Appends a token.
    pub fn push(&mut self, token: i64) {
        self.ys.push(token);
        self.hash = self.hash.wrapping_mul(HASH_MUL) ^ (token as u64);
    }

    /// Replaces the token sequence.
    pub fn set_ys(&mut self, ys: Vec<i64>) {
        self.hash = hash_of(&ys);
        self.ys = ys;
    }

    /// Whether both hold the same token sequence (sherpa-onnx's `Key()` equality).
    pub fn same_tokens(&self, other: &Hypothesis) -> bool {
        self.hash == other.hash && self.ys == other.ys
    }

    /// The last `n` tokens (the decoder's input).
    pub fn context(&self, n: usize) -> &[i64] {
        &self.ys[self.ys.len() - n..]
    }
}

/// `[-1, …, -1, 0]`: icefall's decoder embeds -1 as zeros; the last context token is blank.
pub fn blank_context(context_size: usize) -> Vec<i64> {
    let mut ys = vec![-1i64; context_size];
    if let Some(last) = ys.last_mut() {
        *last = 0;
    }
    ys
}

/// `log(exp(x) + exp(y))`, as sherpa-onnx's `LogAdd<double>` (the smaller term is dropped
/// when it is below `DBL_EPSILON` relative).
pub fn log_add(x: f64, y: f64) -> f64 {
    const MIN_LOG_DIFF: f64 = -36.043_653_389_117_15; // ln(DBL_EPSILON)
    let (big, diff) = if x < y { (y, x - y) } else { (x, y - x) };
    if diff >= MIN_LOG_DIFF {
        big + diff.exp().ln_1p()
    } else {
        big
    }
}

/// A set of hypotheses, unique by token sequence, in insertion order.
#[derive(Debug, Clone, Default)]
pub struct Hypotheses {
    hyps: Vec<Hypothesis>,
}

impl Hypotheses {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn single(h: Hypothesis) -> Self {
        Hypotheses { hyps: vec![h] }
    }

    /// Adds a hypothesis; one with the same tokens already here absorbs its probability
    /// (log-add) and keeps its own other fields.
    pub fn add(&mut self, h: Hypothesis) {
        match self.hyps.iter_mut().find(|e| e.same_tokens(&h)) {
            Some(e) => e.log_prob = log_add(e.log_prob, h.log_prob),
            None => self.hyps.push(h),
        }
    }

    pub fn len(&self) -> usize {
        self.hyps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hyps.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Hypothesis> {
        self.hyps.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Hypothesis> {
        self.hyps.iter_mut()
    }

    pub fn into_vec(self) -> Vec<Hypothesis> {
        self.hyps
    }

    /// The best hypothesis; with `length_norm`, by log-prob per token (context tokens
    /// included, as sherpa-onnx divides by `ys.size()`). The first of equals wins.
    pub fn most_probable(&self, length_norm: bool) -> Option<&Hypothesis> {
        let key = |h: &Hypothesis| if length_norm { h.log_prob / h.ys.len() as f64 } else { h.log_prob };
        let mut best: Option<&Hypothesis> = None;
        for h in &self.hyps {
            if best.is_none_or(|b| key(b) < key(h)) {
                best = Some(h);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_add_matches_the_closed_form() {
        let (a, b) = (-1.25f64, -3.5f64);
        assert!((log_add(a, b) - (a.exp() + b.exp()).ln()).abs() < 1e-12);
        assert_eq!(log_add(a, b), log_add(b, a));
        assert_eq!(log_add(0.0, -100.0), 0.0);
        assert_eq!(log_add(f64::NEG_INFINITY, -2.0), -2.0);
    }

    #[test]
    fn same_sequences_merge() {
        let mut hs = Hypotheses::new();
        let mut a = Hypothesis::blank(2);
        a.push(7);
        a.log_prob = -1.0;
        a.num_trailing_blanks = 3;
        let mut b = Hypothesis::new(vec![-1, 0, 7], -2.0);
        b.num_trailing_blanks = 9;
        let c = Hypothesis::new(vec![-1, 0, 8], -0.5);
        hs.add(a);
        hs.add(b);
        hs.add(c);
        assert_eq!(hs.len(), 2);
        let merged = hs.iter().next().unwrap();
        assert!((merged.log_prob - log_add(-1.0, -2.0)).abs() < 1e-15);
        assert_eq!(merged.num_trailing_blanks, 3);
        assert_eq!(hs.most_probable(false).unwrap().ys, vec![-1, 0, 8]);
    }

    #[test]
    fn length_normalization_prefers_longer_paths_per_token() {
        let mut hs = Hypotheses::new();
        hs.add(Hypothesis::new(vec![-1, 0], -2.0)); // -1.0 per token
        hs.add(Hypothesis::new(vec![-1, 0, 5, 6], -3.0)); // -0.75 per token
        assert_eq!(hs.most_probable(false).unwrap().ys.len(), 2);
        assert_eq!(hs.most_probable(true).unwrap().ys.len(), 4);
    }

    #[test]
    fn hash_tracks_pushes() {
        let mut a = Hypothesis::blank(2);
        a.push(3);
        a.push(4);
        let b = Hypothesis::new(vec![-1, 0, 3, 4], 0.0);
        assert!(a.same_tokens(&b));
        a.set_ys(blank_context(2));
        assert!(a.same_tokens(&Hypothesis::blank(2)));
        assert_eq!(a.context(2), &[-1, 0]);
    }
}
