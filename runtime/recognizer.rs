//! One recognition stream: samples → fbank → encoder chunks → search → transcript.
//!
//! The chunking follows sherpa-onnx exactly: a chunk of `T` feature frames runs as soon as more
//! than `T` frames past the processed ones are ready (`processed + T < ready`), and the window
//! then advances by `decode_chunk_len`. At the end of input, 0.66 s of silence is appended (as
//! sherpa-onnx's clients do) so the encoder's right context covers the last words.

use crate::frontend::{FbankOptions, OnlineFbank};
use crate::model::{EncoderRunner, Transducer};
use crate::search::{DecoderResult, GreedySearch};
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Silence appended at end of input, in seconds (sherpa-onnx's examples use 0.66 s).
pub const TAIL_PADDING_SECONDS: f32 = 0.66;
pub const SAMPLE_RATE: usize = 16_000;

/// A transcript with per-token detail.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Transcript {
    pub text: String,
    pub tokens: Vec<String>,
    pub token_ids: Vec<usize>,
    /// Emission time of each token, seconds from stream start.
    pub timestamps: Vec<f32>,
}

/// Time spent per stage, for `bench` and the service's stats.
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    pub fbank: Duration,
    pub encoder: Duration,
    pub search: Duration,
    pub chunks: usize,
}

pub struct Recognizer {
    model: Arc<Transducer>,
    fbank: OnlineFbank,
    encoder: EncoderRunner,
    search: GreedySearch,
    result: DecoderResult,
    processed_frames: usize,
    features: Vec<f32>,
    samples_in: usize,
    pub times: StageTimes,
    /// When set, every encoder node's time is added here (`zipvox bench --profile`).
    pub profile: Option<crate::model::OpProfile>,
}

impl Recognizer {
    pub fn new(model: Arc<Transducer>) -> Result<Self> {
        let encoder = EncoderRunner::new(model.encoder.clone())?;
        let search = GreedySearch::new(&model)?;
        let result = DecoderResult::new(model.decoder.meta.context_size);
        Ok(Recognizer {
            fbank: OnlineFbank::new(FbankOptions::default()),
            encoder,
            search,
            result,
            processed_frames: 0,
            features: Vec::new(),
            samples_in: 0,
            times: StageTimes::default(),
            profile: None,
            model,
        })
    }

    pub fn model(&self) -> &Arc<Transducer> {
        &self.model
    }

    /// Feeds 16 kHz samples in [-1, 1] and runs every chunk that became ready.
    pub fn accept_waveform(&mut self, samples: &[f32]) -> Result<()> {
        let t0 = Instant::now();
        self.fbank.accept_waveform(samples);
        self.times.fbank += t0.elapsed();
        self.samples_in += samples.len();
        self.decode_ready_chunks()
    }

    /// Ends the stream: tail padding, flush of the last feature frames, last chunks.
    pub fn input_finished(&mut self) -> Result<()> {
        let pad = vec![0.0f32; (TAIL_PADDING_SECONDS * SAMPLE_RATE as f32) as usize];
        self.accept_waveform(&pad)?;
        let t0 = Instant::now();
        self.fbank.input_finished();
        self.times.fbank += t0.elapsed();
        self.decode_ready_chunks()
    }

    fn decode_ready_chunks(&mut self) -> Result<()> {
        let enc = &self.model.encoder;
        let (t, shift, dim) = (enc.meta.chunk_frames, enc.meta.chunk_shift, enc.feature_dim());
        while self.processed_frames + t < self.fbank.num_frames_ready() {
            self.features.resize(t * dim, 0.0);
            self.fbank.copy_frames(self.processed_frames, t, &mut self.features);
            self.processed_frames += shift;
            self.fbank.discard_frames_before(self.processed_frames);
            let t0 = Instant::now();
            let out = match self.profile.as_mut() {
                None => self.encoder.run_chunk(&self.features)?,
                Some(p) => self.encoder.run_chunk_profiled(&self.features, p)?,
            };
            let t1 = Instant::now();
            let out = out.try_as_plain_ram()?.as_slice::<f32>()?;
            self.search.decode(out, enc.out_dim, &mut self.result)?;
            self.times.encoder += t1 - t0;
            self.times.search += t1.elapsed();
            self.times.chunks += 1;
        }
        Ok(())
    }

    /// Samples accepted so far (tail padding included).
    pub fn samples_in(&self) -> usize {
        self.samples_in
    }

    /// Decoder/joiner call counts and times.
    pub fn search_stats(&self) -> &crate::search::SearchStats {
        &self.search.stats
    }

    pub fn result(&self) -> Transcript {
        let ids = self.result.transcript_ids();
        let spf = self.model.seconds_per_output_frame();
        Transcript {
            text: self.model.tokens.text(&ids),
            tokens: self.model.tokens.token_strings(&ids),
            timestamps: self.result.timestamps.iter().map(|&f| f as f32 * spf).collect(),
            token_ids: ids,
        }
    }
}

/// Transcribes a whole signal (16 kHz mono) in pieces of `piece` samples (0 = all at once).
pub fn transcribe_samples(model: &Arc<Transducer>, samples: &[f32], piece: usize) -> Result<Transcript> {
    let mut r = Recognizer::new(model.clone())?;
    if piece == 0 {
        r.accept_waveform(samples)?;
    } else {
        for p in samples.chunks(piece) {
            r.accept_waveform(p)?;
        }
    }
    r.input_finished()?;
    Ok(r.result())
}
