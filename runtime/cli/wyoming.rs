//! `zipvox wyoming`: the Wyoming protocol server (speech-to-text and wake words for Home
//! Assistant). Flags override the `[wyoming]` section (and `[model]`, `[recognizer]`,
//! `[endpoint]`) of the listen-style config file; the server itself is `crate::wyoming`.

use crate::service::config::ListenConfig;
use crate::wyoming::{default_instance_name, default_max_streams, WyomingConfig};
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct WyomingArgs {
    /// TOML configuration file ([wyoming], [model], [recognizer], [endpoint]; see board/zipvox.toml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model directory (overrides [model] dir; env ZIPVOX_MODEL).
    #[arg(long, env = "ZIPVOX_MODEL", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Encoder/joiner precision: int8 or fp32 (overrides [model] precision).
    #[arg(long, value_parser = ["int8", "fp32"])]
    pub precision: Option<String>,
    /// Cores one stream's encoder may use (overrides [model] threads; default 1).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Where to listen: tcp://HOST:PORT or unix:///PATH (default tcp://0.0.0.0:10300).
    #[arg(long, value_name = "URI")]
    pub uri: Option<String>,
    /// Wake words: keywords file (BPE pieces or plain words, optional :BOOST #THRESHOLD @NAME).
    #[arg(long, value_name = "FILE")]
    pub keywords: Option<PathBuf>,
    /// ISO 639-1 language of the model, reported to clients (default en).
    #[arg(long, value_name = "xx")]
    pub language: Option<String>,
    /// Streams decoded at once; more get error{code:"busy"} (default: the number of cores).
    #[arg(long, value_name = "N")]
    pub max_streams: Option<usize>,
    /// Advertise over mDNS (zeroconf) as _wyoming._tcp, as NAME (default zipvox-<hostname>).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub zeroconf: Option<String>,
    /// Send the final transcript at zipvox's own endpoint (requires_external_vad: false).
    #[arg(long)]
    pub endpointing: bool,
    /// Close connections that send nothing for this many seconds (default 120).
    #[arg(long, value_name = "S")]
    pub idle_timeout: Option<f32>,
    /// Search method: greedy-search (default) or modified-beam-search.
    #[arg(long, value_name = "METHOD")]
    pub decoding: Option<String>,
    /// Active paths of modified beam search (default 4).
    #[arg(long, value_name = "N")]
    pub beam: Option<usize>,
    /// Hotwords file for modified beam search (phrases, optional :SCORE).
    #[arg(long, value_name = "FILE")]
    pub hotwords: Option<PathBuf>,
    /// Default hotword bonus (1.5).
    #[arg(long, value_name = "SCORE")]
    pub hotwords_score: Option<f32>,
}

impl WyomingArgs {
    /// Defaults, then the config file, then flags.
    pub fn resolve(&self) -> Result<WyomingConfig> {
        let mut c = match &self.config {
            Some(p) => ListenConfig::load(p)?,
            None => ListenConfig::default(),
        };
        let w = &mut c.wyoming;
        if let Some(v) = &self.uri {
            w.uri = v.clone();
        }
        if let Some(v) = &self.keywords {
            w.keywords = Some(v.clone());
        }
        if let Some(v) = &self.language {
            w.language = v.clone();
        }
        if let Some(v) = self.max_streams {
            if v == 0 {
                bail!("--max-streams must be at least 1");
            }
            w.max_streams = v;
        }
        if let Some(name) = &self.zeroconf {
            w.zeroconf = true;
            if !name.is_empty() {
                w.zeroconf_name = Some(name.clone());
            }
        }
        if self.endpointing {
            w.endpointing = true;
        }
        if let Some(v) = self.idle_timeout {
            w.idle_timeout = v;
        }
        if let Some(v) = &self.model {
            c.model.dir = Some(v.clone());
        }
        if let Some(v) = &self.precision {
            c.model.precision = v.clone();
        }
        if let Some(v) = self.threads {
            c.model.threads = v;
        }
        let r = &mut c.recognizer;
        if let Some(v) = &self.decoding {
            r.decoding = v.clone();
        }
        if let Some(v) = self.beam {
            r.beam = v;
        }
        if let Some(v) = &self.hotwords {
            r.hotwords = Some(v.clone());
        }
        if let Some(v) = self.hotwords_score {
            r.hotwords_score = v;
        }

        let Some(dir) = c.model.dir.clone() else {
            bail!("no model: give --model DIR, set ZIPVOX_MODEL, or [model] dir in the config file");
        };
        if !["int8", "fp32"].contains(&c.model.precision.as_str()) {
            bail!("[model] precision must be int8 or fp32, not '{}'", c.model.precision);
        }
        let w = &c.wyoming;
        if !(w.idle_timeout.is_finite() && w.idle_timeout > 0.0) {
            bail!("idle timeout must be a positive number of seconds, not {}", w.idle_timeout);
        }
        let lang = &w.language;
        if !(2..=3).contains(&lang.len()) || !lang.chars().all(|ch| ch.is_ascii_lowercase()) {
            bail!("language must be an ISO 639-1 code such as en or zh, not '{lang}'");
        }
        crate::search::DecodingMethod::from_name(&c.recognizer.decoding, c.recognizer.beam)?;
        // The same limits as `listen` (ListenConfig::validate also wants a device or sink).
        crate::search::check_context_score("hotwords score", c.recognizer.hotwords_score)?;
        c.endpoint.validate()?;
        if c.recognizer.hotwords.is_some() && c.recognizer.decoding.starts_with("greedy") {
            bail!("hotwords need --decoding modified-beam-search");
        }
        Ok(WyomingConfig {
            uri: w.uri.clone(),
            model: c.model.model_config(dir)?,
            threads: c.model.threads,
            decoding: c.recognizer.decoding.clone(),
            beam: c.recognizer.beam,
            hotwords: c.recognizer.hotwords.clone(),
            hotwords_score: c.recognizer.hotwords_score,
            keywords: w.keywords.clone(),
            keyword_config: Default::default(),
            language: w.language.clone(),
            max_streams: if w.max_streams == 0 { default_max_streams() } else { w.max_streams },
            zeroconf: w.zeroconf.then(|| w.zeroconf_name.clone().unwrap_or_else(default_instance_name)),
            endpointing: w.endpointing,
            endpoint: c.endpoint.clone(),
            idle_timeout: Duration::from_secs_f32(w.idle_timeout.min(86_400.0)),
            limits: Default::default(),
        })
    }
}

pub fn run(args: &WyomingArgs) -> Result<i32> {
    crate::wyoming::run(args.resolve()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn resolve(toml: &str) -> Result<WyomingConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zipvox.toml");
        std::fs::write(&path, toml).unwrap();
        let cli = crate::cli::Cli::try_parse_from(["zipvox", "wyoming", "--model", "/m", "--config", path.to_str().unwrap()]).unwrap();
        let crate::cli::Command::Wyoming(args) = cli.command else { panic!("not wyoming") };
        args.resolve()
    }

    #[test]
    fn model_keys_and_limits_are_those_of_listen() {
        let c = resolve("[model]\nverify = false\ntokens_type = \"ppinyin\"\n").unwrap();
        assert!(!c.model.options.verify);
        assert_eq!(c.model.tokens_type, Some("ppinyin".parse().unwrap()));
        let e = resolve("[endpoint.rule1]\nmin_trailing_silence = -1.0\n").unwrap_err().to_string();
        assert!(e.contains("min_trailing_silence"), "{e}");
        let e = resolve("[recognizer]\nhotwords_score = nan\n").unwrap_err().to_string();
        assert!(e.contains("hotwords score"), "{e}");
    }
}
