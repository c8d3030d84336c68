//! Keyword spotting with sherpa-onnx's `KeywordSpotter` semantics.
//!
//! [`KeywordSearch`] is the decoder (`TransducerKeywordDecoder`): a modified beam search whose
//! hypotheses walk the keywords' context graph in strict mode. A path that leaves every keyword
//! (back at the graph's root) forgets its tokens, so only keyword prefixes are kept. After each
//! frame, when the best path (by log-probability) stands on a keyword end, is followed by more
//! than `num_trailing_blanks` blank frames, and the mean probability of its first `level`
//! tokens reaches the keyword's threshold, the keyword is detected and the search starts over.
//!
//! [`KeywordSpotter`] is one stream (fbank → encoder → search), chunked as
//! [`crate::recognizer::Recognizer`] is, which also does what sherpa-onnx's spotter and its
//! callers do around the decoder: after a detection the stream is reset (fresh search and
//! encoder caches, as `KeywordSpotter::Reset`), and 1.5 s of trailing blanks reset it too.
//! Detections carry absolute times (seconds since the stream started).

use super::beam::{add_path_scores, top_k, FrameScorer};
use super::context_graph::{ContextGraph, PhraseEncoder};
use super::hypothesis::{blank_context, Hypotheses, Hypothesis};
use super::SearchStats;
use crate::frontend::{FbankOptions, OnlineFbank};
use crate::model::{EncoderRunner, Transducer};
use crate::recognizer::{SAMPLE_RATE, TAIL_PADDING_SECONDS};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// sherpa-onnx's `KeywordSpotterConfig` defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordConfig {
    pub max_active_paths: usize,
    /// Bonus per keyword token (default for lines without `:score`).
    pub keywords_score: f32,
    /// Mean token probability a detection needs (default for lines without `#threshold`).
    pub keywords_threshold: f32,
    /// Blank frames that must follow a keyword's last token.
    pub num_trailing_blanks: usize,
}

impl Default for KeywordConfig {
    fn default() -> Self {
        KeywordConfig { max_active_paths: 4, keywords_score: 1.0, keywords_threshold: 0.25, num_trailing_blanks: 1 }
    }
}

/// Trailing silence after which the spotter resets itself (sherpa-onnx: 1.5 s).
const SILENCE_RESET_SECONDS: f32 = 1.5;

/// Reads a keywords file: one keyword per line, as the model's tokens (`▁HE LL O ▁WORLD`,
/// `x iǎo ài t óng x ué`) or plain text (`HELLO WORLD`, `小爱同学`, converted for the model's
/// units, see [`super::phrases`]), each optionally followed by `:boost`, `#threshold` and
/// `@display-text`.
pub fn load_keywords(path: &Path, model: &Transducer, config: &KeywordConfig) -> Result<ContextGraph> {
    let text = super::phrases::read_phrase_file(path, "keywords")?;
    let encoder = PhraseEncoder::for_model(model)?;
    let phrases = encoder.read(&text, true).with_context(|| format!("keywords file {}", path.display()))?;
    if phrases.is_empty() {
        anyhow::bail!("keywords file {}: no keywords in it", path.display());
    }
    Ok(ContextGraph::new(&phrases, config.keywords_score, config.keywords_threshold))
}

/// A detection by [`KeywordSearch`], in encoder frames since its last reset.
#[derive(Debug, Clone, PartialEq)]
pub struct KeywordHit {
    /// The keyword's display text (`@…`), or empty: then the tokens spell it.
    pub phrase: String,
    pub tokens: Vec<usize>,
    pub timestamps: Vec<usize>,
}

/// The keyword decoder over encoder output (one stream).
pub struct KeywordSearch {
    scorer: FrameScorer,
    graph: Arc<ContextGraph>,
    config: KeywordConfig,
    unk_id: Option<usize>,
    hyps: Hypotheses,
    /// Encoder frames since the last reset (timestamps count from here).
    frame_offset: usize,
    /// Blank frames after the best path's last token, after the last chunk.
    num_trailing_blanks: usize,
}

impl KeywordSearch {
    pub fn new(model: &Transducer, graph: Arc<ContextGraph>, config: &KeywordConfig) -> Result<Self> {
        super::check_beam(config.max_active_paths)?;
        let scorer = FrameScorer::new(model, config.max_active_paths)?;
        let hyps = Hypotheses::single(Hypothesis::blank(scorer.context_size));
        let mut config = config.clone();
        config.max_active_paths = config.max_active_paths.max(1);
        Ok(KeywordSearch { scorer, graph, config, unk_id: model.tokens.unk_id(), hyps, frame_offset: 0, num_trailing_blanks: 0 })
    }

    /// Starts over: one blank path at the graph's root, timestamps from 0.
    pub fn reset(&mut self) {
        self.hyps = Hypotheses::single(Hypothesis::blank(self.scorer.context_size));
        self.frame_offset = 0;
        self.num_trailing_blanks = 0;
    }

    /// Blank frames after the best path's last token (as of the last chunk).
    pub fn num_trailing_blanks(&self) -> usize {
        self.num_trailing_blanks
    }

    pub fn stats(&self) -> SearchStats {
        self.scorer.stats.clone()
    }

    pub fn graph(&self) -> &Arc<ContextGraph> {
        &self.graph
    }

    /// Decodes one chunk of encoder output (`frames × dim`). Returns the chunk's detection:
    /// sherpa-onnx keeps one per decode call, the last when there were several. The caller
    /// resets the stream after a detection ([`KeywordSpotter`] does).
    pub fn decode_chunk(&mut self, encoder_out: &[f32], dim: usize) -> Result<Option<KeywordHit>> {
        let frames = encoder_out.len() / dim;
        let mut hit = None;
        for (t, frame) in encoder_out.chunks_exact(dim).enumerate() {
            if let Some(h) = self.step(frame, t + self.frame_offset)? {
                hit = Some(h);
            }
        }
        self.frame_offset += frames;
        self.num_trailing_blanks = self.hyps.most_probable(false).map(|h| h.num_trailing_blanks).unwrap_or(0);
        Ok(hit)
    }

    fn step(&mut self, frame: &[f32], t: usize) -> Result<Option<KeywordHit>> {
        let c = self.scorer.context_size;
        let prev = std::mem::take(&mut self.hyps).into_vec();
        self.scorer.log_probs(frame, &prev)?;
        let vocab = self.scorer.vocab_size;
        // Acoustic log-probabilities before the paths' scores are added (for ys_probs).
        let acoustic = self.scorer.scores.clone();
        add_path_scores(&mut self.scorer.scores, &prev, vocab);
        let mut next = Hypotheses::new();
        for k in top_k(&self.scorer.scores, self.config.max_active_paths) {
            let (hi, token) = (k / vocab, k % vocab);
            let mut h = prev[hi].clone();
            let mut context_score = 0.0f32;
            if token != 0 && Some(token) != self.unk_id {
                h.push(token as i64);
                h.timestamps.push(t);
                h.ys_probs.push((acoustic[hi * vocab + token] as f64).exp() as f32);
                h.num_trailing_blanks = 0;
                let s = self.graph.forward(h.context_state, token as i32, true);
                context_score = s.score;
                h.context_state = s.state;
                if s.state == ContextGraph::ROOT {
                    // Not inside any keyword: forget the decoder history.
                    h.set_ys(blank_context(c));
                    h.timestamps.clear();
                    h.ys_probs.clear();
                }
            } else {
                h.num_trailing_blanks += 1;
            }
            h.log_prob = (self.scorer.scores[k] + context_score) as f64;
            next.add(h);
        }
        let mut hit = None;
        if let Some(best) = next.most_probable(false) {
            if let Some(m) = self.graph.is_matched(best.context_state) {
                let state = self.graph.state(m);
                let level = state.level;
                let mut mean = 0.0f32;
                for p in best.ys_probs.iter().take(level) {
                    mean += p;
                }
                mean /= level as f32;
                if best.num_trailing_blanks > self.config.num_trailing_blanks && mean >= state.ac_threshold {
                    let n = best.ys.len();
                    let tn = best.timestamps.len();
                    hit = Some(KeywordHit {
                        phrase: state.phrase.clone(),
                        tokens: best.ys[n.saturating_sub(level)..].iter().map(|&t| t as usize).collect(),
                        timestamps: best.timestamps[tn.saturating_sub(level)..].to_vec(),
                    });
                    next = Hypotheses::single(Hypothesis::blank(c));
                }
            }
        }
        self.hyps = next;
        Ok(hit)
    }
}

/// A keyword found in a stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    pub keyword: String,
    /// Seconds since the stream started: the keyword's first and last token.
    pub start: f32,
    pub end: f32,
    pub tokens: Vec<String>,
}

/// One keyword-spotting stream: samples in, detections out.
pub struct KeywordSpotter {
    model: Arc<Transducer>,
    fbank: OnlineFbank,
    encoder: EncoderRunner,
    search: KeywordSearch,
    /// Feature frames consumed by the encoder (absolute).
    processed_frames: usize,
    /// Encoder output frames decoded so far (absolute).
    encoder_frames: usize,
    /// Encoder frame at which the search last restarted.
    reset_frame: usize,
    features: Vec<f32>,
    /// Detections so far.
    pub detections: usize,
}

impl KeywordSpotter {
    pub fn new(model: Arc<Transducer>, keywords: Arc<ContextGraph>, config: &KeywordConfig) -> Result<Self> {
        let encoder = EncoderRunner::new(model.encoder.clone())?;
        let search = KeywordSearch::new(&model, keywords, config)?;
        Ok(KeywordSpotter {
            fbank: OnlineFbank::new(FbankOptions::default()),
            encoder,
            search,
            processed_frames: 0,
            encoder_frames: 0,
            reset_frame: 0,
            features: Vec::new(),
            detections: 0,
            model,
        })
    }

    pub fn model(&self) -> &Arc<Transducer> {
        &self.model
    }

    /// Feeds 16 kHz samples in [-1, 1]; returns the keywords detected in the chunks that ran.
    pub fn accept_waveform(&mut self, samples: &[f32]) -> Result<Vec<Detection>> {
        self.fbank.accept_waveform(samples);
        self.decode_ready_chunks()
    }

    /// Ends the stream (0.66 s of silence, fbank flush, last chunks).
    pub fn input_finished(&mut self) -> Result<Vec<Detection>> {
        let pad = vec![0.0f32; (TAIL_PADDING_SECONDS * SAMPLE_RATE as f32) as usize];
        let mut found = self.accept_waveform(&pad)?;
        self.fbank.input_finished();
        found.extend(self.decode_ready_chunks()?);
        Ok(found)
    }

    /// Fresh search and encoder caches (features and the clock continue).
    pub fn reset(&mut self) {
        self.search.reset();
        self.encoder.reset();
        self.reset_frame = self.encoder_frames;
    }

    /// Seconds of audio decoded so far.
    pub fn decoded_seconds(&self) -> f32 {
        self.processed_frames as f32 * 0.01
    }

    pub fn search_stats(&self) -> SearchStats {
        self.search.stats()
    }

    fn decode_ready_chunks(&mut self) -> Result<Vec<Detection>> {
        let enc = self.model.encoder.clone();
        let (t, shift, dim) = (enc.meta.chunk_frames, enc.meta.chunk_shift, enc.feature_dim());
        let spf = self.model.seconds_per_output_frame();
        let mut found = vec![];
        while self.processed_frames + t < self.fbank.num_frames_ready() {
            // sherpa-onnx resets a stream after 1.5 s without a token (its check assumes
            // subsampling 4 and 10 ms frames).
            let trailing = (self.search.num_trailing_blanks() * 4) as f64 * 0.01;
            if trailing as f32 > SILENCE_RESET_SECONDS {
                self.reset();
            }
            self.features.resize(t * dim, 0.0);
            self.fbank.copy_frames(self.processed_frames, t, &mut self.features);
            self.processed_frames += shift;
            self.fbank.discard_frames_before(self.processed_frames);
            let out = self.encoder.run_chunk(&self.features)?;
            let out = out.try_as_plain_ram()?.as_slice::<f32>()?;
            let frames = out.len() / enc.out_dim;
            let hit = self.search.decode_chunk(out, enc.out_dim)?;
            self.encoder_frames += frames;
            if let Some(hit) = hit {
                let keyword = if hit.phrase.is_empty() { self.model.tokens.text(&hit.tokens) } else { hit.phrase.clone() };
                let at = |f: usize| (self.reset_frame + f) as f32 * spf;
                found.push(Detection {
                    keyword,
                    start: hit.timestamps.first().map(|&f| at(f)).unwrap_or(0.0),
                    end: hit.timestamps.last().map(|&f| at(f)).unwrap_or(0.0),
                    tokens: self.model.tokens.token_strings(&hit.tokens),
                });
                self.detections += 1;
                self.reset();
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spotter_can_move_to_another_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<KeywordSpotter>();
        assert_send::<Detection>();
    }

    #[test]
    fn defaults_are_sherpa_onnx_defaults() {
        let c = KeywordConfig::default();
        assert_eq!((c.max_active_paths, c.keywords_score, c.keywords_threshold, c.num_trailing_blanks), (4, 1.0, 0.25, 1));
    }
}
