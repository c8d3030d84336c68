//! One recognition stream: samples → fbank → encoder chunks → search → transcript.
//!
//! The chunking follows sherpa-onnx exactly: a chunk of `T` feature frames runs as soon as more
//! than `T` frames past the processed ones are ready (`processed + T < ready`), and the window
//! then advances by `decode_chunk_len`. At the end of input, 0.66 s of silence is appended (as
//! sherpa-onnx's clients do) so the encoder's right context covers the last words.
//!
//! A live stream is cut into segments at endpoints (`search::endpoint`): `finish_segment`
//! returns the segment's final result and starts the next one as sherpa-onnx's `Reset` does
//! (encoder caches and features continue; the decoder keeps its last tokens as context).

use crate::frontend::{FbankOptions, OnlineFbank};
use crate::model::{run_chunks, EncoderRunner, Transducer};
use crate::search::{make_search, DecodingConfig, EndpointConfig, SearchStats, TransducerSearch};
use anyhow::Result;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tract_onnx::prelude::TValue;

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
    /// Segment number (0 for a whole file; counts segments with text in a live stream).
    pub segment: usize,
    /// Seconds from stream start: where the segment began and how far it has been decoded.
    pub start: f32,
    pub end: f32,
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
    search: Box<dyn TransducerSearch>,
    /// Feature frames consumed by the encoder (absolute, since stream start).
    processed_frames: usize,
    /// Absolute feature frame where the current segment began.
    segment_start_frame: usize,
    segment: usize,
    features: Vec<f32>,
    samples_in: usize,
    pub times: StageTimes,
    /// When set, every encoder node's time is added here (`zipvox bench --profile`).
    pub profile: Option<crate::model::OpProfile>,
}

impl Recognizer {
    pub fn new(model: Arc<Transducer>) -> Result<Self> {
        Self::with_decoding(model, &DecodingConfig::default())
    }

    pub fn with_decoding(model: Arc<Transducer>, decoding: &DecodingConfig) -> Result<Self> {
        let encoder = EncoderRunner::new(model.encoder.clone())?;
        let search = make_search(&model, decoding)?;
        Ok(Recognizer {
            fbank: OnlineFbank::new(FbankOptions::default()),
            encoder,
            search,
            processed_frames: 0,
            segment_start_frame: 0,
            segment: 0,
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
        self.accept_waveform_deferred(samples);
        self.decode_ready_chunks()
    }

    /// Ends the stream: tail padding, flush of the last feature frames, last chunks.
    pub fn input_finished(&mut self) -> Result<()> {
        self.input_finished_deferred();
        self.decode_ready_chunks()
    }

    /// As [`Recognizer::accept_waveform`], but leaves the chunks that became ready for
    /// [`decode_batch`] to run together with other streams' chunks.
    pub fn accept_waveform_deferred(&mut self, samples: &[f32]) {
        let t0 = Instant::now();
        self.fbank.accept_waveform(samples);
        self.times.fbank += t0.elapsed();
        self.samples_in += samples.len();
    }

    /// As [`Recognizer::input_finished`], leaving the last chunks for [`decode_batch`].
    pub fn input_finished_deferred(&mut self) {
        let pad = vec![0.0f32; (TAIL_PADDING_SECONDS * SAMPLE_RATE as f32) as usize];
        self.accept_waveform_deferred(&pad);
        let t0 = Instant::now();
        self.fbank.input_finished();
        self.times.fbank += t0.elapsed();
    }

    fn decode_ready_chunks(&mut self) -> Result<()> {
        while self.take_ready_chunk() {
            let t0 = Instant::now();
            let out = match self.profile.as_mut() {
                None => self.encoder.run_chunk(&self.features)?,
                Some(p) => self.encoder.run_chunk_profiled(&self.features, p)?,
            };
            self.times.encoder += t0.elapsed();
            self.search_chunk(&out)?;
        }
        Ok(())
    }

    /// Whether a chunk of features is ready for the encoder (the sherpa-onnx rule).
    pub fn chunk_ready(&self) -> bool {
        self.processed_frames + self.model.encoder.meta.chunk_frames < self.fbank.num_frames_ready()
    }

    /// Copies the next ready chunk's features into `self.features` and advances the window;
    /// false when no chunk is ready.
    fn take_ready_chunk(&mut self) -> bool {
        if !self.chunk_ready() {
            return false;
        }
        let enc = &self.model.encoder;
        let (t, shift, dim) = (enc.meta.chunk_frames, enc.meta.chunk_shift, enc.feature_dim());
        self.features.resize(t * dim, 0.0);
        self.fbank.copy_frames(self.processed_frames, t, &mut self.features);
        self.processed_frames += shift;
        self.fbank.discard_frames_before(self.processed_frames);
        true
    }

    /// Runs the search over one chunk's encoder output.
    fn search_chunk(&mut self, out: &TValue) -> Result<()> {
        let t0 = Instant::now();
        let out = out.try_as_plain_ram()?.as_slice::<f32>()?;
        self.search.decode_chunk(out, self.model.encoder.out_dim)?;
        self.times.search += t0.elapsed();
        self.times.chunks += 1;
        Ok(())
    }

    /// Samples accepted so far (tail padding included).
    pub fn samples_in(&self) -> usize {
        self.samples_in
    }

    /// Decoder/joiner call counts and times.
    pub fn search_stats(&self) -> SearchStats {
        self.search.stats()
    }

    /// Seconds per feature frame (10 ms).
    const FRAME_SHIFT: f32 = 0.01;

    /// The current segment's best result so far.
    pub fn result(&self) -> Transcript {
        let best = self.search.best();
        let ids = best.transcript_ids();
        let spf = self.model.seconds_per_output_frame();
        let start = self.segment_start_frame as f32 * Self::FRAME_SHIFT;
        Transcript {
            text: self.model.tokens.text(&ids),
            tokens: self.model.tokens.token_strings(&ids),
            timestamps: best.timestamps.iter().map(|&f| start + f as f32 * spf).collect(),
            token_ids: ids,
            segment: self.segment,
            start,
            end: self.processed_frames as f32 * Self::FRAME_SHIFT,
        }
    }

    /// The part of the current segment's text that no later hypothesis can take back
    /// ([`TransducerSearch::stable_len`]); always a prefix of the final `result().text`,
    /// apart from a trailing incomplete UTF-8 byte sequence, which is left out.
    pub fn stable_text(&self) -> String {
        let ids = self.search.best().transcript_ids();
        let n = self.search.stable_len().min(ids.len());
        let text = self.model.tokens.text(&ids[..n]);
        text.trim_end_matches('\u{FFFD}').to_string()
    }

    /// Whether an endpoint rule fires for the current segment.
    pub fn is_endpoint(&self, rules: &EndpointConfig) -> bool {
        let frames = self.processed_frames - self.segment_start_frame;
        let trailing = self.search.num_trailing_blanks() * self.model.encoder.subsampling_factor();
        rules.is_endpoint(frames, trailing, Self::FRAME_SHIFT)
    }

    /// Ends the current segment: returns its final result and starts the next one.
    pub fn finish_segment(&mut self) -> Transcript {
        let result = self.result();
        if self.search.best().has_text() {
            self.segment += 1;
        }
        self.search.new_segment();
        self.segment_start_frame = self.processed_frames;
        result
    }

    /// Audio seconds decoded by the encoder so far.
    pub fn decoded_seconds(&self) -> f32 {
        self.processed_frames as f32 * Self::FRAME_SHIFT
    }
}

/// Runs every chunk that is ready in any of `streams` (fed with the `_deferred` methods), one
/// chunk per stream per round, the round's chunks through the encoder together
/// ([`run_chunks`]: one pass over the int8 weights for all of them). Streams must share one
/// model. Each stream's results are exactly those it gets decoded alone; the encoder time of a
/// round is shared out evenly between its streams (per-node profiles, `Recognizer::profile`,
/// are not collected here).
pub fn decode_batch(streams: &mut [&mut Recognizer]) -> Result<()> {
    loop {
        let mut ready: Vec<&mut Recognizer> = streams.iter_mut().map(|r| &mut **r).filter(|r| r.chunk_ready()).collect();
        if ready.is_empty() {
            return Ok(());
        }
        for r in ready.iter_mut() {
            r.take_ready_chunk();
        }
        let t0 = Instant::now();
        let outs = {
            let features: Vec<Vec<f32>> = ready.iter_mut().map(|r| std::mem::take(&mut r.features)).collect();
            let slices: Vec<&[f32]> = features.iter().map(|f| &f[..]).collect();
            let mut runners: Vec<&mut EncoderRunner> = ready.iter_mut().map(|r| &mut r.encoder).collect();
            let outs = run_chunks(&mut runners, &slices);
            for (r, f) in ready.iter_mut().zip(features) {
                r.features = f;
            }
            outs?
        };
        let share = t0.elapsed() / ready.len() as u32;
        for (r, out) in ready.iter_mut().zip(outs) {
            r.times.encoder += share;
            r.search_chunk(&out)?;
        }
    }
}

/// Transcribes a whole signal (16 kHz mono) in pieces of `piece` samples (0 = all at once).
pub fn transcribe_samples(model: &Arc<Transducer>, samples: &[f32], piece: usize) -> Result<Transcript> {
    transcribe_samples_with(model, samples, piece, &DecodingConfig::default())
}

/// As [`transcribe_samples`], with a decoding method (and hotwords).
pub fn transcribe_samples_with(
    model: &Arc<Transducer>,
    samples: &[f32],
    piece: usize,
    decoding: &DecodingConfig,
) -> Result<Transcript> {
    let mut r = Recognizer::with_decoding(model.clone(), decoding)?;
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
