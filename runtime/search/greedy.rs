//! Greedy search, step for step as sherpa-onnx's `OnlineTransducerGreedySearchDecoder`:
//! blank is id 0, at most one symbol per encoder frame, `<unk>` counts as blank, and the decoder
//! reruns only after an emission (its output is cached across chunks).

use super::{argmax, DecoderResult};
use crate::model::{DecoderRunner, JoinerRunner, Transducer};
use anyhow::Result;
use std::time::{Duration, Instant};

pub struct GreedySearch {
    decoder: DecoderRunner,
    joiner: JoinerRunner,
    unk_id: Option<usize>,
    /// Decoder output for the current context; `None` until first needed.
    decoder_out: Option<Vec<f32>>,
    logits: Vec<f32>,
    pub stats: SearchStats,
}

/// Calls and time spent in the decoder and joiner (for `bench` and the service's stats).
#[derive(Debug, Clone, Default)]
pub struct SearchStats {
    pub decoder_calls: usize,
    pub decoder_time: Duration,
    pub joiner_calls: usize,
    pub joiner_time: Duration,
}

impl GreedySearch {
    pub fn new(model: &Transducer) -> Result<Self> {
        Ok(GreedySearch {
            decoder: DecoderRunner::new(model.decoder.clone())?,
            joiner: JoinerRunner::new(model.joiner.clone())?,
            unk_id: model.tokens.unk_id(),
            decoder_out: None,
            logits: Vec::new(),
            stats: SearchStats::default(),
        })
    }

    /// Forget the cached decoder output (the context changed outside the search).
    pub fn invalidate_cache(&mut self) {
        self.decoder_out = None;
    }

    fn run_decoder(&mut self, context: &[i64], out: &mut Vec<f32>) -> Result<()> {
        let t0 = Instant::now();
        self.decoder.run(context, out)?;
        self.stats.decoder_time += t0.elapsed();
        self.stats.decoder_calls += 1;
        Ok(())
    }

    /// Consumes one chunk of encoder output (`frames × dim`, row-major).
    pub fn decode(&mut self, encoder_out: &[f32], dim: usize, result: &mut DecoderResult) -> Result<()> {
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
