//! Greedy search, step for step as sherpa-onnx's `OnlineTransducerGreedySearchDecoder`:
//! blank is id 0, at most one symbol per encoder frame, `<unk>` counts as blank, and the decoder
//! reruns only after an emission (its output is cached across chunks).

use super::{argmax, DecoderResult, SearchStats, TransducerSearch};
use crate::model::{DecoderRunner, JoinerRunner, Transducer};
use anyhow::Result;
use std::time::Instant;

pub struct GreedySearch {
    decoder: DecoderRunner,
    joiner: JoinerRunner,
    unk_id: Option<usize>,
    /// Decoder output for the current context; `None` until first needed.
    decoder_out: Option<Vec<f32>>,
    logits: Vec<f32>,
    result: DecoderResult,
    stats: SearchStats,
}

impl GreedySearch {
    pub fn new(model: &Transducer) -> Result<Self> {
        Ok(GreedySearch {
            decoder: DecoderRunner::new(model.decoder.clone())?,
            joiner: JoinerRunner::new(model.joiner.clone())?,
            unk_id: model.tokens.unk_id(),
            decoder_out: None,
            logits: Vec::new(),
            result: DecoderResult::new(model.decoder.meta.context_size),
            stats: SearchStats::default(),
        })
    }

    fn run_decoder(&mut self, context: &[i64], out: &mut Vec<f32>) -> Result<()> {
        let t0 = Instant::now();
        self.decoder.run(context, out)?;
        self.stats.decoder_time += t0.elapsed();
        self.stats.decoder_calls += 1;
        Ok(())
    }

    fn decode(&mut self, encoder_out: &[f32], dim: usize, result: &mut DecoderResult) -> Result<()> {
        let mut dec = match self.decoder_out.take() {
            Some(d) => d,
            None => {
                let mut d = Vec::new();
                self.run_decoder(result.context(), &mut d)?;
                d
            }
        };
        let frames = encoder_out.len() / dim;
        for t in 0..frames {
            let frame = &encoder_out[t * dim..(t + 1) * dim];
            let t0 = Instant::now();
            self.joiner.run(frame, &dec, &mut self.logits)?;
            self.stats.joiner_time += t0.elapsed();
            self.stats.joiner_calls += 1;
            let y = argmax(&self.logits);
            if y != 0 && Some(y) != self.unk_id {
                result.tokens.push(y as i64);
                result.timestamps.push(t + result.frame_offset);
                result.num_trailing_blanks = 0;
                self.run_decoder(result.context(), &mut dec)?;
            } else {
                result.num_trailing_blanks += 1;
            }
        }
        result.frame_offset += frames;
        self.decoder_out = Some(dec);
        Ok(())
    }
}

impl TransducerSearch for GreedySearch {
    fn decode_chunk(&mut self, encoder_out: &[f32], dim: usize) -> Result<()> {
        let mut result = std::mem::replace(&mut self.result, DecoderResult::new(0));
        let r = self.decode(encoder_out, dim, &mut result);
        self.result = result;
        r
    }

    fn best(&self) -> DecoderResult {
        self.result.clone()
    }

    fn num_trailing_blanks(&self) -> usize {
        self.result.num_trailing_blanks
    }

    fn new_segment(&mut self) {
        self.result = self.result.next_segment();
        // The context may have changed (a segment without tokens starts from blanks).
        self.decoder_out = None;
    }

    fn stats(&self) -> SearchStats {
        self.stats.clone()
    }

    /// Greedy search never takes a token back.
    fn stable_len(&self) -> usize {
        self.result.tokens.len().saturating_sub(self.result.context_size)
    }
}
