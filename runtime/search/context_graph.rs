//! The Aho-Corasick context graph of hotwords and keywords, with sherpa-onnx's `ContextGraph`
//! scoring.
//!
//! Every phrase is a path of token ids from the root. A node carries:
//! - `token_score`: the bonus for taking the arc into it (the phrase's score; where phrases
//!   share a prefix, the larger score);
//! - `node_score`: the sum of token scores from the root (what a partial match has been given);
//! - `output_score`: for a phrase end, its `node_score`, plus the `output_score` of the longest
//!   phrase that ends at a proper suffix (reached through the output link).
//!
//! Stepping with a token follows the arc when there is one (gain `token_score`), otherwise the
//! failure links to the longest suffix state that has the arc, or the root (gain: the new
//! state's `node_score` minus the old one's, which takes back the partial bonus). The step also
//! adds the `output_score` of the state reached. In non-strict mode (hotwords), reaching a state
//! with an output cashes the match in and returns to the root; strict mode (keywords) stays.

use std::collections::{HashMap, VecDeque};

/// Index of a state in the graph; the root is [`ContextGraph::ROOT`].
pub type StateId = usize;

#[derive(Debug, Clone)]
pub struct ContextState {
    /// Token on the arc into this state (-1 at the root).
    pub token: i32,
    pub token_score: f32,
    pub node_score: f32,
    pub output_score: f32,
    /// Depth: the number of tokens from the root.
    pub level: usize,
    /// Keyword spotting: mean token probability a match needs.
    pub ac_threshold: f32,
    pub is_end: bool,
    /// Keyword spotting: the text to report for a match ending here (`@…` in the file).
    pub phrase: String,
    next: HashMap<i32, StateId>,
    fail: StateId,
    /// The nearest phrase end among the failure chain's states, if any.
    output: Option<StateId>,
}

/// One phrase: its tokens and optional per-phrase score, threshold and display text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phrase {
    pub tokens: Vec<i32>,
    /// 0 = the graph's default score.
    pub score: f32,
    /// 0 = the graph's default threshold.
    pub ac_threshold: f32,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct ContextGraph {
    states: Vec<ContextState>,
    /// Default bonus per token (`--hotwords-score`, `keywords_score`).
    pub context_score: f32,
    /// Default keyword threshold (`keywords_threshold`).
    pub ac_threshold: f32,
    /// Number of phrases the graph was built from.
    pub num_phrases: usize,
}

/// The result of one step through the graph.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Score to add to the hypothesis.
    pub score: f32,
    /// The state the hypothesis is in afterwards.
    pub state: StateId,
    /// The phrase end matched by this step (the state itself, or its output link), if any.
    pub matched: Option<StateId>,
}

impl ContextGraph {
    pub const ROOT: StateId = 0;

    /// Builds the graph of `phrases` (sherpa-onnx's `ContextGraph::Build` and `FillFailOutput`).
    pub fn new(phrases: &[Phrase], context_score: f32, ac_threshold: f32) -> Self {
        let root = ContextState {
            token: -1,
            token_score: 0.0,
            node_score: 0.0,
            output_score: 0.0,
            level: 0,
            ac_threshold: 0.0,
            is_end: false,
            phrase: String::new(),
            next: HashMap::new(),
            fail: Self::ROOT,
            output: None,
        };
        let mut g = ContextGraph { states: vec![root], context_score, ac_threshold, num_phrases: phrases.len() };
        for p in phrases {
            g.insert(p);
        }
        g.fill_fail_output();
        g
    }

    fn insert(&mut self, p: &Phrase) {
        let score = if p.score == 0.0 { self.context_score } else { p.score };
        let threshold = if p.ac_threshold == 0.0 { self.ac_threshold } else { p.ac_threshold };
        let mut node = Self::ROOT;
        for (j, &token) in p.tokens.iter().enumerate() {
            let last = j + 1 == p.tokens.len();
            let parent_score = self.states[node].node_score;
            match self.states[node].next.get(&token).copied() {
                None => {
                    let id = self.states.len();
                    self.states.push(ContextState {
                        token,
                        token_score: score,
                        node_score: parent_score + score,
                        output_score: if last { parent_score + score } else { 0.0 },
                        level: j + 1,
                        ac_threshold: if last { threshold } else { 0.0 },
                        is_end: last,
                        phrase: if last { p.text.clone() } else { String::new() },
                        next: HashMap::new(),
                        fail: Self::ROOT,
                        output: None,
                    });
                    self.states[node].next.insert(token, id);
                    node = id;
                }
                Some(id) => {
                    let s = &mut self.states[id];
                    s.token_score = s.token_score.max(score);
                    s.node_score = parent_score + s.token_score;
                    s.is_end = last || s.is_end;
                    s.output_score = if s.is_end { s.node_score } else { 0.0 };
                    if last {
                        s.phrase = p.text.clone();
                        s.ac_threshold = threshold;
                    }
                    node = id;
                }
            }
        }
    }

    /// The state reached from `from` by `token` through failure links (root when none).
    fn fail_target(&self, from: StateId, token: i32) -> StateId {
        let mut node = from;
        loop {
            if let Some(&n) = self.states[node].next.get(&token) {
                return n;
            }
            if node == Self::ROOT {
                return Self::ROOT;
            }
            node = self.states[node].fail;
        }
    }

    /// Failure and output links in breadth-first order (sherpa-onnx's `FillFailOutput`), in
    /// time linear in the number of states: a child's output link is its failure state if that
    /// is a phrase end, else the failure state's own output link (already final, being one
    /// level up), so no failure chain is walked for outputs. The failure chains walked by
    /// [`fail_target`](Self::fail_target) are amortized as in Aho-Corasick (each phrase's
    /// failure depth grows by at most one per token).
    fn fill_fail_output(&mut self) {
        let mut queue: VecDeque<StateId> = VecDeque::new();
        let mut children: Vec<(i32, StateId)> = self.states[Self::ROOT].next.iter().map(|(&t, &c)| (t, c)).collect();
        // Sorted so that the build is deterministic (HashMap order is not).
        children.sort_unstable();
        for (_, child) in children.drain(..) {
            self.states[child].fail = Self::ROOT;
            queue.push_back(child);
        }
        while let Some(current) = queue.pop_front() {
            children.extend(self.states[current].next.iter().map(|(&t, &c)| (t, c)));
            children.sort_unstable();
            for (token, child) in children.drain(..) {
                let fail = self.fail_target(self.states[current].fail, token);
                self.states[child].fail = fail;
                // The output link: the nearest phrase end on the failure chain (not the root).
                let f = &self.states[fail];
                let output = if fail == Self::ROOT {
                    None
                } else if f.is_end {
                    Some(fail)
                } else {
                    f.output
                };
                self.states[child].output = output;
                if let Some(o) = output {
                    self.states[child].output_score += self.states[o].output_score;
                }
                queue.push_back(child);
            }
        }
    }

    pub fn state(&self, id: StateId) -> &ContextState {
        &self.states[id]
    }

    pub fn num_states(&self) -> usize {
        self.states.len()
    }

    /// One token through the graph (sherpa-onnx's `ForwardOneStep`).
    pub fn forward(&self, state: StateId, token: i32, strict: bool) -> Step {
        let from = &self.states[state];
        let (node, score) = match from.next.get(&token) {
            Some(&n) => (n, self.states[n].token_score),
            None => {
                let n = self.fail_target(from.fail, token);
                (n, self.states[n].node_score - from.node_score)
            }
        };
        let s = &self.states[node];
        let matched = if s.is_end { Some(node) } else { s.output };
        if !strict && s.output_score != 0.0 {
            let output_score = match (s.is_end, s.output) {
                (true, _) => s.node_score,
                (false, Some(o)) => self.states[o].node_score,
                (false, None) => s.node_score,
            };
            return Step { score: score + output_score - s.node_score, state: Self::ROOT, matched };
        }
        Step { score: score + s.output_score, state: node, matched }
    }

    /// The score that takes back a partial match's bonus at the end of a stream, and the root.
    pub fn finalize(&self, state: StateId) -> (f32, StateId) {
        (-self.states[state].node_score, Self::ROOT)
    }

    /// The phrase end matched in `state` (the state itself, or its output link).
    pub fn is_matched(&self, state: StateId) -> Option<StateId> {
        let s = &self.states[state];
        if s.is_end {
            Some(state)
        } else {
            s.output
        }
    }
}

pub use super::phrases::{load_hotwords, parse_phrase_line, PhraseEncoder, PhraseLine};

#[cfg(test)]
mod tests {
    use super::*;

    fn phrase(tokens: &[i32]) -> Phrase {
        Phrase { tokens: tokens.to_vec(), ..Default::default() }
    }

    /// Walks tokens from the root; returns the total score and final state.
    fn walk(g: &ContextGraph, tokens: &[i32], strict: bool) -> (f32, StateId, Vec<Option<StateId>>) {
        let mut state = ContextGraph::ROOT;
        let mut total = 0.0;
        let mut matches = vec![];
        for &t in tokens {
            let s = g.forward(state, t, strict);
            total += s.score;
            state = s.state;
            matches.push(s.matched);
        }
        (total, state, matches)
    }

    #[test]
    fn scores_accumulate_along_a_phrase() {
        let g = ContextGraph::new(&[phrase(&[1, 2, 3])], 1.5, 0.0);
        assert_eq!(g.num_states(), 4);
        let (score, state, m) = walk(&g, &[1, 2], true);
        assert_eq!(score, 3.0);
        assert_eq!(g.state(state).level, 2);
        assert_eq!(m, vec![None, None]);
        // The end: token score plus the phrase's output score.
        let s = g.forward(state, 3, true);
        assert_eq!(s.score, 1.5 + 4.5);
        assert_eq!(s.matched, Some(s.state));
        // Non-strict: the match is cashed in (total = sum of token scores) and we go home.
        let s = g.forward(state, 3, false);
        assert_eq!(s.state, ContextGraph::ROOT);
        assert_eq!(s.score, 1.5);
        assert_eq!(s.matched.map(|m| g.state(m).level), Some(3));
    }

    #[test]
    fn a_broken_partial_match_is_taken_back() {
        let g = ContextGraph::new(&[phrase(&[1, 2, 3])], 1.0, 0.0);
        let (score, state, _) = walk(&g, &[1, 2, 9], false);
        assert_eq!(state, ContextGraph::ROOT);
        assert_eq!(score, 0.0);
        // Restarting inside a failed match: 1 2 1 2 3 matches the phrase at its second start.
        let (score, state, m) = walk(&g, &[1, 2, 1, 2, 3], false);
        assert_eq!(state, ContextGraph::ROOT);
        assert_eq!(score, 3.0);
        assert!(m[4].is_some());
    }

    #[test]
    fn finalize_removes_the_partial_bonus() {
        let g = ContextGraph::new(&[phrase(&[1, 2, 3])], 2.0, 0.0);
        let (score, state, _) = walk(&g, &[1, 2], false);
        let (back, root) = g.finalize(state);
        assert_eq!(score + back, 0.0);
        assert_eq!(root, ContextGraph::ROOT);
    }

    #[test]
    fn shared_prefixes_keep_the_larger_score_and_both_ends() {
        let phrases = [
            Phrase { tokens: vec![1, 2], score: 1.0, ..Default::default() },
            Phrase { tokens: vec![1, 2, 3], score: 3.0, text: "long".into(), ..Default::default() },
        ];
        let g = ContextGraph::new(&phrases, 1.0, 0.0);
        let s1 = g.forward(ContextGraph::ROOT, 1, true);
        assert_eq!(s1.score, 3.0);
        let s2 = g.forward(s1.state, 2, true);
        // [1,2] is an end now (node score 6 after the larger token scores).
        assert_eq!(g.state(s2.state).node_score, 6.0);
        assert_eq!(s2.score, 3.0 + 6.0);
        assert_eq!(s2.matched, Some(s2.state));
        let s3 = g.forward(s2.state, 3, true);
        assert_eq!(g.state(s3.matched.unwrap()).phrase, "long");
    }

    /// The output links and scores computed in O(1) per state equal the definition (the nearest
    /// phrase end on the failure chain, found by walking it), on many small random graphs.
    #[test]
    fn linear_output_links_match_the_chain_walk() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let phrases: Vec<Phrase> = (0..1 + next(6))
                .map(|_| Phrase { tokens: (0..1 + next(6)).map(|_| next(3) as i32).collect(), score: next(3) as f32, ..Default::default() })
                .collect();
            let g = ContextGraph::new(&phrases, 1.0, 0.25);
            for id in 1..g.num_states() {
                let mut o = g.states[id].fail;
                let want = loop {
                    if o == ContextGraph::ROOT {
                        break None;
                    }
                    if g.states[o].is_end {
                        break Some(o);
                    }
                    o = g.states[o].fail;
                };
                assert_eq!(g.states[id].output, want, "{phrases:?} state {id}");
                let own = if g.states[id].is_end { g.states[id].node_score } else { 0.0 };
                let linked = want.map_or(0.0, |o| g.states[o].output_score);
                assert!((g.states[id].output_score - own - linked).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn output_links_report_suffix_matches() {
        // "2 3" is a suffix of "1 2 3 4" at state [1,2,3].
        let phrases = [phrase(&[1, 2, 3, 4]), Phrase { tokens: vec![2, 3], text: "suffix".into(), ..Default::default() }];
        let g = ContextGraph::new(&phrases, 1.0, 0.0);
        let (_, state, m) = walk(&g, &[1, 2, 3], true);
        assert_eq!(g.state(state).level, 3);
        let matched = m[2].expect("suffix matched");
        assert_eq!(g.state(matched).phrase, "suffix");
        assert_eq!(g.is_matched(state), Some(matched));
        // Output score of [1,2,3] is that of the suffix phrase (2.0).
        assert_eq!(g.state(state).output_score, 2.0);
        // Non-strict: cashing in the suffix match returns to the root with the suffix's total.
        let (score, state, _) = walk(&g, &[1, 2, 3], false);
        assert_eq!(state, ContextGraph::ROOT);
        assert_eq!(score, 3.0 + 2.0 - 3.0);
    }

    #[test]
    fn thresholds_and_defaults() {
        let phrases = [
            Phrase { tokens: vec![5], ac_threshold: 0.5, ..Default::default() },
            Phrase { tokens: vec![6], score: 2.0, ..Default::default() },
        ];
        let g = ContextGraph::new(&phrases, 1.0, 0.25);
        let a = g.forward(ContextGraph::ROOT, 5, true).state;
        let b = g.forward(ContextGraph::ROOT, 6, true).state;
        assert_eq!(g.state(a).ac_threshold, 0.5);
        assert_eq!(g.state(b).ac_threshold, 0.25);
        assert_eq!(g.state(a).token_score, 1.0);
        assert_eq!(g.state(b).token_score, 2.0);
        // Unknown tokens at the root stay at the root with no score.
        assert_eq!(g.forward(ContextGraph::ROOT, 42, true), Step { score: 0.0, state: 0, matched: None });
    }
}
