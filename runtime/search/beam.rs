//! Modified beam search, step for step as sherpa-onnx's
//! `OnlineTransducerModifiedBeamSearchDecoder`:
//! - per encoder frame, every active hypothesis runs through the decoder (one batched call,
//!   cached by context) and the joiner (one batched call: with an int8 joiner the activations
//!   are quantized per batch, so the batch is the same set of rows sherpa-onnx sends);
//! - the logits become log-probabilities (log-softmax), each row plus its hypothesis's
//!   log-probability; the best `max_active_paths` of all (hypothesis × token) pairs survive;
//! - at most one symbol per frame and hypothesis; blank (0) and `<unk>` extend nothing;
//! - with hotwords, an emitted token also steps the hypothesis through the context graph
//!   (non-strict: a completed hotword is cashed in) and its bonus joins the log-probability;
//! - survivors with the same token sequence merge (log-add);
//! - the result is the best hypothesis by log-probability per token.

use super::context_graph::ContextGraph;
use super::hypothesis::{Hypotheses, Hypothesis};
use super::{DecoderResult, SearchStats, TransducerSearch};
use crate::model::{DecoderRunner, JoinerRunner, Transducer};
use anyhow::Result;
use std::sync::Arc;
use std::time::Instant;

/// Runs the decoder and joiner for a set of hypotheses on one frame.
pub(crate) struct FrameScorer {
    decoder: DecoderRunner,
    joiner: JoinerRunner,
    pub vocab_size: usize,
    pub context_size: usize,
    contexts: Vec<i64>,
    decoder_rows: Vec<f32>,
    encoder_rows: Vec<f32>,
    /// After [`FrameScorer::log_probs`]: one row of `vocab_size` log-probabilities per hypothesis.
    pub scores: Vec<f32>,
    pub stats: SearchStats,
}

impl FrameScorer {
    /// A scorer for up to `max_rows` hypotheses per frame. The decoder's and joiner's plans
    /// for every batch size up to that are built here (once per model), not mid-stream.
    pub fn new(model: &Transducer, max_rows: usize) -> Result<Self> {
        for n in 2..=max_rows {
            model.joiner.plan_for_batch(n)?;
            model.decoder.plan_for_batch(n)?;
        }
        Ok(FrameScorer {
            decoder: DecoderRunner::new(model.decoder.clone())?,
            joiner: JoinerRunner::new(model.joiner.clone())?,
            vocab_size: model.joiner.vocab_size,
            context_size: model.decoder.meta.context_size,
            contexts: vec![],
            decoder_rows: vec![],
            encoder_rows: vec![],
            scores: vec![],
            stats: SearchStats::default(),
        })
    }

    /// Log-softmax of the joiner's logits for every hypothesis on `frame`, into `scores`.
    pub fn log_probs(&mut self, frame: &[f32], hyps: &[Hypothesis]) -> Result<()> {
        let c = self.context_size;
        self.contexts.clear();
        for h in hyps {
            self.contexts.extend_from_slice(h.context(c));
        }
        let t0 = Instant::now();
        self.decoder.run_batch(&self.contexts, &mut self.decoder_rows)?;
        let t1 = Instant::now();
        self.stats.decoder_time += t1 - t0;
        self.stats.decoder_calls += 1;
        self.encoder_rows.clear();
        for _ in hyps {
            self.encoder_rows.extend_from_slice(frame);
        }
        self.joiner.run_batch(&self.encoder_rows, &self.decoder_rows, &mut self.scores)?;
        self.stats.joiner_time += t1.elapsed();
        self.stats.joiner_calls += 1;
        for row in self.scores.chunks_exact_mut(self.vocab_size) {
            log_softmax(row);
        }
        Ok(())
    }
}

/// In-place log-softmax with sherpa-onnx's arithmetic (f32 values, exponentials and the
/// logarithm in f64, the running sum rounded to f32).
pub(crate) fn log_softmax(row: &mut [f32]) {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for &x in row.iter() {
        sum = (sum as f64 + ((x - m) as f64).exp()) as f32;
    }
    let offset = (m as f64 + (sum as f64).ln()) as f32;
    for x in row.iter_mut() {
        *x -= offset;
    }
}

/// Indices of the `k` largest values, largest first (the lower index first among equals).
pub(crate) fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<usize> = Vec::with_capacity(k + 1);
    for (i, &v) in values.iter().enumerate() {
        // Full, and not better than the last kept (NaN never is).
        if best.len() == k && v.partial_cmp(&values[best[k - 1]]) != Some(std::cmp::Ordering::Greater) {
            continue;
        }
        let pos = best.iter().position(|&j| v > values[j]).unwrap_or(best.len());
        best.insert(pos, i);
        best.truncate(k);
    }
    best
}

/// Adds each hypothesis's log-probability (as f32, as sherpa-onnx does) to its row.
pub(crate) fn add_path_scores(scores: &mut [f32], hyps: &[Hypothesis], vocab_size: usize) {
    for (row, h) in scores.chunks_exact_mut(vocab_size).zip(hyps) {
        let p = h.log_prob as f32;
        for v in row {
            *v += p;
        }
    }
}

pub struct ModifiedBeamSearch {
    scorer: FrameScorer,
    max_active_paths: usize,
    unk_id: Option<usize>,
    hotwords: Option<Arc<ContextGraph>>,
    hyps: Hypotheses,
    /// The best hypothesis after the last chunk (sherpa-onnx's `result.tokens`).
    best: Hypothesis,
    /// Encoder frames decoded in this segment.
    frame_offset: usize,
}

impl ModifiedBeamSearch {
    pub fn new(model: &Transducer, max_active_paths: usize, hotwords: Option<Arc<ContextGraph>>) -> Result<Self> {
        super::check_beam(max_active_paths)?;
        let scorer = FrameScorer::new(model, max_active_paths)?;
        let blank = Hypothesis::blank(scorer.context_size);
        Ok(ModifiedBeamSearch {
            scorer,
            max_active_paths: max_active_paths.max(1),
            unk_id: model.tokens.unk_id(),
            hotwords,
            hyps: Hypotheses::single(blank.clone()),
            best: blank,
            frame_offset: 0,
        })
    }

    /// The current hypotheses (for inspection and tests).
    pub fn hypotheses(&self) -> &Hypotheses {
        &self.hyps
    }

    fn step(&mut self, frame: &[f32], t: usize) -> Result<()> {
        let prev = std::mem::take(&mut self.hyps).into_vec();
        self.scorer.log_probs(frame, &prev)?;
        let vocab = self.scorer.vocab_size;
        add_path_scores(&mut self.scorer.scores, &prev, vocab);
        let mut next = Hypotheses::new();
        for k in top_k(&self.scorer.scores, self.max_active_paths) {
            let (hi, token) = (k / vocab, k % vocab);
            let mut h = prev[hi].clone();
            let mut context_score = 0.0f32;
            if token != 0 && Some(token) != self.unk_id {
                h.push(token as i64);
                h.timestamps.push(t);
                h.num_trailing_blanks = 0;
                if let Some(g) = &self.hotwords {
                    let s = g.forward(h.context_state, token as i32, false);
                    context_score = s.score;
                    h.context_state = s.state;
                }
            } else {
                h.num_trailing_blanks += 1;
            }
            h.log_prob = (self.scorer.scores[k] + context_score) as f64;
            next.add(h);
        }
        self.hyps = next;
        Ok(())
    }
}

impl TransducerSearch for ModifiedBeamSearch {
    fn decode_chunk(&mut self, encoder_out: &[f32], dim: usize) -> Result<()> {
        let frames = encoder_out.len() / dim;
        for (t, frame) in encoder_out.chunks_exact(dim).enumerate() {
            self.step(frame, t + self.frame_offset)?;
        }
        self.frame_offset += frames;
        if let Some(b) = self.hyps.most_probable(true) {
            self.best = b.clone();
        }
        Ok(())
    }

    fn best(&self) -> DecoderResult {
        DecoderResult {
            tokens: self.best.ys.clone(),
            timestamps: self.best.timestamps.clone(),
            num_trailing_blanks: self.best.num_trailing_blanks,
            frame_offset: self.frame_offset,
            context_size: self.scorer.context_size,
        }
    }

    fn num_trailing_blanks(&self) -> usize {
        self.best.num_trailing_blanks
    }

    /// sherpa-onnx's `Reset`: when the segment emitted tokens, every hypothesis continues from
    /// its last `context_size` tokens with its log-probability (merging those that now agree);
    /// otherwise one blank hypothesis. Context-graph states go back to the root.
    fn new_segment(&mut self) {
        let c = self.scorer.context_size;
        let mut next = Hypotheses::new();
        if self.best.ys.len() > c {
            for h in self.hyps.iter() {
                next.add(Hypothesis::new(h.context(c).to_vec(), h.log_prob));
            }
            self.best = Hypothesis::new(self.best.context(c).to_vec(), 0.0);
        } else {
            next.add(Hypothesis::blank(c));
            self.best = Hypothesis::blank(c);
        }
        self.hyps = next;
        self.frame_offset = 0;
    }

    fn stats(&self) -> SearchStats {
        self.scorer.stats.clone()
    }

    /// The tokens every active path shares (after the segment's context): later paths all
    /// extend one of today's, so these stay in the final result.
    fn stable_len(&self) -> usize {
        let c = self.scorer.context_size;
        let best = &self.best.ys[c.min(self.best.ys.len())..];
        let mut n = best.len();
        for h in self.hyps.iter() {
            let ys = &h.ys[c.min(h.ys.len())..];
            n = n.min(best.iter().zip(ys).take_while(|(a, b)| a == b).count());
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalizes() {
        let mut row = vec![1.0f32, 2.0, 3.0, -1.0];
        log_softmax(&mut row);
        let total: f64 = row.iter().map(|&x| (x as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(row[2] > row[1] && row[1] > row[0]);
    }

    #[test]
    fn top_k_orders_and_breaks_ties_by_index() {
        let v = [0.5f32, 2.0, -1.0, 2.0, 3.0, 0.0];
        assert_eq!(top_k(&v, 3), vec![4, 1, 3]);
        assert_eq!(top_k(&v, 1), vec![4]);
        assert_eq!(top_k(&v, 10), vec![4, 1, 3, 0, 5, 2]);
        assert!(top_k(&[], 4).is_empty());
    }
}
