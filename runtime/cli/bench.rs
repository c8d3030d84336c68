//! `zipvox bench`: the real pipeline on one WAV, timed per stage, as one line of numbers that
//! `scripts/compare-peer.py` sets beside onnxruntime's and sherpa-onnx's (same machine, same run).
//! With `--streams N`: N streams through one loaded model, batched per layer, against the same
//! streams fed the same way with each stream's chunks run on their own.

use super::{DecodingArgs, ModelArgs};
use crate::audio;
use crate::model::OpProfile;
use crate::recognizer::{decode_batch, Recognizer};
use anyhow::Result;
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// Decode the file this many times and report the fastest run (load is measured once).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Audio fed in pieces of this many seconds (sherpa-onnx's comparison script uses 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub piece: f32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also time every encoder op (adds overhead; printed after the numbers).
    #[arg(long)]
    pub profile: bool,
    /// Decode this many streams at once through the one loaded model (the WAVs given, in turn),
    /// fed 0.1 s each in rounds as live microphones would be, their chunks batched per layer;
    /// reports the aggregate real-time factor and that of the same rounds unbatched.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub streams: u32,
    /// The audio (with --streams, several files are used in turn).
    #[arg(value_name = "WAV", required = true)]
    pub wav: Vec<PathBuf>,
}

/// `--streams N`: aggregate numbers.
#[derive(Debug, Serialize)]
pub struct StreamsReport {
    pub model: String,
    pub kernels: String,
    pub decoding: String,
    pub threads: usize,
    pub streams: usize,
    /// Whether the encoder batched the streams' chunks (one weight pass per layer).
    pub batched: bool,
    pub load_s: f64,
    /// Audio of all streams together.
    pub audio_s: f64,
    /// Wall time to decode every stream, batched (fastest of `--repeat`).
    pub decode_s: f64,
    /// `decode_s / audio_s`.
    pub rtf: f64,
    /// Real-time streams one core carries at this batch size (`1 / rtf` on one thread).
    pub streams_per_core: f64,
    /// The same streams fed in the same rounds, each stream's chunks run on their own.
    pub alone_decode_s: f64,
    pub alone_rtf: f64,
    /// Whether every stream's transcript equals its transcript decoded on its own.
    pub identical: bool,
    pub peak_rss_mb: f64,
    pub texts: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub encoder: String,
    pub kernels: String,
    pub decoding: String,
    pub threads: usize,
    pub load_s: f64,
    pub audio_s: f64,
    pub chunks: usize,
    pub encoder_ms_per_chunk: f64,
    pub joiner_ms_per_call: f64,
    pub decoder_ms_per_call: f64,
    pub fbank_ms_total: f64,
    /// WAV read + conversion + downmix + resampling (outside `decode_s`).
    pub audio_in_ms_total: f64,
    pub decode_s: f64,
    pub rtf: f64,
    pub peak_rss_mb: f64,
    pub encoder_gmacs: f64,
    pub encoder_gmac_per_s: f64,
    pub tokens: usize,
    pub text: String,
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

pub fn run(args: &BenchArgs) -> Result<i32> {
    let t0 = Instant::now();
    let model = Arc::new(args.model.load()?);
    let load_s = t0.elapsed().as_secs_f64();
    let decoding = args.decoding.config(&model)?;
    if args.streams > 1 {
        return run_streams(args, &model, &decoding, load_s);
    }
    // Reading, sample conversion, downmix and resampling to 16 kHz: the non-model input stages
    // (what the live path's capture thread does per period), timed for the ARM profile.
    let t_in = Instant::now();
    let samples = audio::read_wav(&args.wav[0])?.samples;
    let audio_in_ms = t_in.elapsed().as_secs_f64() * 1e3;
    let audio_s = samples.len() as f64 / audio::MODEL_SAMPLE_RATE as f64;
    let piece = ((args.piece * audio::MODEL_SAMPLE_RATE as f32) as usize).max(1);
    let mut best: Option<(f64, Recognizer)> = None;
    for _ in 0..args.repeat.max(1) {
        let mut r = Recognizer::with_decoding(model.clone(), &decoding)?;
        let t = Instant::now();
        for p in samples.chunks(piece) {
            r.accept_waveform(p)?;
        }
        r.input_finished()?;
        let dt = t.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(b, _)| dt < *b) {
            best = Some((dt, r));
        }
    }
    let (decode_s, r) = best.expect("at least one run");
    let macs = model.encoder.macs_per_chunk()? as f64;
    let enc_s = r.times.encoder.as_secs_f64();
    let chunks = r.times.chunks.max(1);
    let st = r.search_stats();
    let per = |d: std::time::Duration, n: usize| if n == 0 { 0.0 } else { d.as_secs_f64() * 1e3 / n as f64 };
    let transcript = r.result();
    let report = BenchReport {
        model: model.files.dir.display().to_string(),
        encoder: model.files.encoder.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        kernels: crate::kernels::kernel_summary(),
        decoding: match decoding.method {
            crate::search::DecodingMethod::ModifiedBeamSearch { max_active_paths } => format!("modified_beam_search({max_active_paths})"),
            ref m => m.name().to_string(),
        },
        threads: crate::kernels::threads::threads(),
        load_s,
        audio_s,
        chunks: r.times.chunks,
        encoder_ms_per_chunk: enc_s * 1e3 / chunks as f64,
        joiner_ms_per_call: per(st.joiner_time, st.joiner_calls),
        decoder_ms_per_call: per(st.decoder_time, st.decoder_calls),
        fbank_ms_total: r.times.fbank.as_secs_f64() * 1e3,
        audio_in_ms_total: audio_in_ms,
        decode_s,
        rtf: decode_s / audio_s,
        peak_rss_mb: peak_rss_mb(),
        encoder_gmacs: macs / 1e9,
        encoder_gmac_per_s: macs * chunks as f64 / enc_s.max(1e-9) / 1e9,
        tokens: transcript.token_ids.len(),
        text: transcript.text,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("model              {}", report.model);
        println!("encoder file       {}", report.encoder);
        println!("kernels            {}", report.kernels);
        println!("decoding           {}", report.decoding);
        println!("threads            {}", report.threads);
        println!("load               {:.3} s", report.load_s);
        println!("audio              {:.2} s, {} chunks, {} tokens", report.audio_s, report.chunks, report.tokens);
        println!("encoder            {:.3} ms/chunk ({:.4} GMAC/chunk, {:.2} GMAC/s)", report.encoder_ms_per_chunk, report.encoder_gmacs, report.encoder_gmac_per_s);
        println!("joiner             {:.4} ms/call", report.joiner_ms_per_call);
        println!("decoder            {:.4} ms/call", report.decoder_ms_per_call);
        println!("fbank              {:.2} ms total ({:.2}% of decode)", report.fbank_ms_total, report.fbank_ms_total / 10.0 / report.decode_s.max(1e-9));
        println!("audio in           {:.2} ms total (WAV read, conversion, downmix, resampling)", report.audio_in_ms_total);
        println!("decode             {:.4} s, RTF {:.4}", report.decode_s, report.rtf);
        println!("peak RSS           {:.1} MiB", report.peak_rss_mb);
    }
    if args.profile {
        let mut r = Recognizer::new(model.clone())?;
        r.profile = Some(OpProfile::default());
        r.accept_waveform(&samples)?;
        r.input_finished()?;
        let p = r.profile.take().unwrap_or_default();
        let chunks = r.times.chunks.max(1) as f64;
        let total: f64 = p.by_op.values().map(|v| v.0.as_secs_f64()).sum();
        eprintln!("encoder ops (per chunk, profiled: {:.3} ms/chunk):", total * 1e3 / chunks);
        for (op, d, n) in p.sorted().iter().take(30) {
            eprintln!(
                "{:>44} {:>8.3} ms {:>5.1}% {:>6.0} calls",
                op,
                d.as_secs_f64() * 1e3 / chunks,
                100.0 * d.as_secs_f64() / total.max(1e-12),
                *n as f64 / chunks
            );
        }
        eprintln!("slowest encoder nodes (per chunk):");
        for (desc, d, _) in p.top_nodes(15) {
            eprintln!("{:>9.3} ms  {}", d.as_secs_f64() * 1e3 / chunks, desc);
        }
    }
    Ok(0)
}

/// `zipvox bench --streams N`.
fn run_streams(args: &BenchArgs, model: &Arc<crate::model::Transducer>, decoding: &crate::search::DecodingConfig, load_s: f64) -> Result<i32> {
    let n = args.streams as usize;
    let clips = args.wav.iter().map(|w| Ok(audio::read_wav(w)?.samples)).collect::<Result<Vec<_>>>()?;
    let inputs: Vec<&[f32]> = (0..n).map(|i| &clips[i % clips.len()][..]).collect();
    let audio_s = inputs.iter().map(|s| s.len()).sum::<usize>() as f64 / audio::MODEL_SAMPLE_RATE as f64;
    let piece = ((args.piece * audio::MODEL_SAMPLE_RATE as f32) as usize).max(1);
    let rounds = inputs.iter().map(|s| s.len().div_ceil(piece)).max().unwrap_or(0);
    // Every stream gets its next piece in each round, as live microphones would. Batched, the
    // ready chunks then run together (`decode_batch`); unbatched, each stream's run as they
    // arrive (what a server without batching does). Returns the time and the transcripts.
    let decode_rounds = |batched: bool| -> Result<(f64, Vec<String>)> {
        let mut rs = (0..n).map(|_| Recognizer::with_decoding(model.clone(), decoding)).collect::<Result<Vec<_>>>()?;
        let t = Instant::now();
        for round in 0..rounds {
            for (r, s) in rs.iter_mut().zip(&inputs) {
                let start = round * piece;
                if start >= s.len() {
                    continue;
                }
                let end = (start + piece).min(s.len());
                let last = end == s.len();
                if batched {
                    r.accept_waveform_deferred(&s[start..end]);
                    if last {
                        r.input_finished_deferred();
                    }
                } else {
                    r.accept_waveform(&s[start..end])?;
                    if last {
                        r.input_finished()?;
                    }
                }
            }
            if batched {
                decode_batch(&mut rs.iter_mut().collect::<Vec<_>>())?;
            }
        }
        Ok((t.elapsed().as_secs_f64(), rs.iter().map(|r| r.result().text).collect()))
    };
    let (mut best, mut best_alone) = (f64::MAX, f64::MAX);
    let (mut texts, mut alone_texts) = (vec![], vec![]);
    for _ in 0..args.repeat.max(1) {
        let (dt, t) = decode_rounds(true)?;
        (best, texts) = (best.min(dt), t);
        let (dt, t) = decode_rounds(false)?;
        (best_alone, alone_texts) = (best_alone.min(dt), t);
    }
    let threads = crate::kernels::threads::threads();
    let report = StreamsReport {
        model: model.files.dir.display().to_string(),
        kernels: crate::kernels::kernel_summary(),
        decoding: decoding.method.name().to_string(),
        threads,
        streams: n,
        batched: model.encoder.batches_streams(),
        load_s,
        audio_s,
        decode_s: best,
        rtf: best / audio_s,
        streams_per_core: audio_s / best / threads as f64,
        alone_decode_s: best_alone,
        alone_rtf: best_alone / audio_s,
        identical: texts == alone_texts,
        peak_rss_mb: peak_rss_mb(),
        texts,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("model              {}", report.model);
        println!("kernels            {}", report.kernels);
        println!("decoding           {}", report.decoding);
        println!("threads            {}", report.threads);
        println!("streams            {} ({})", report.streams, if report.batched { "batched per layer" } else { "not batchable: one by one" });
        println!("load               {:.3} s", report.load_s);
        println!("audio              {:.2} s in all", report.audio_s);
        println!("decode, batched    {:.4} s, aggregate RTF {:.4}, {:.1} real-time streams per core", report.decode_s, report.rtf, report.streams_per_core);
        println!("decode, unbatched  {:.4} s, aggregate RTF {:.4} (batched/unbatched {:.2})", report.alone_decode_s, report.alone_rtf, report.decode_s / report.alone_decode_s.max(1e-12));
        println!("transcripts        {}", if report.identical { "identical to each stream decoded alone" } else { "DIFFER from the streams decoded alone" });
        println!("peak RSS           {:.1} MiB", report.peak_rss_mb);
    }
    Ok(if report.identical { 0 } else { 1 })
}
