//! ONNX `metadata_props` of the three model parts, parsed and checked.
//!
//! Every dimension the runtime needs comes from here (and from the graph's declared input
//! shapes), never from constants about one particular model. The state layouts are the ones
//! sherpa-onnx builds in `GetEncoderInitStates` for each model type.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Metadata key/value pairs of one ONNX file.
pub type Metadata = BTreeMap<String, String>;

/// Which streaming Zipformer generation the encoder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncoderKind {
    /// icefall `zipformer/` (Zipformer2): per-layer key / non-linear-attention / value / conv caches,
    /// plus `embed_states` and `processed_lens`.
    Zipformer2 { query_head_dims: Vec<usize>, value_head_dims: Vec<usize>, num_heads: Vec<usize> },
    /// icefall `pruned_transducer_stateless7_streaming` (Zipformer v1): per-stack caches
    /// with the layer count as leading axis.
    Zipformer { attention_dims: Vec<usize> },
}

/// Streaming encoder configuration read from the encoder's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderMeta {
    pub kind: EncoderKind,
    /// Feature frames fed per chunk, right context included (`T`).
    pub chunk_frames: usize,
    /// Feature frames the window advances per chunk (`decode_chunk_len`).
    pub chunk_shift: usize,
    pub num_encoder_layers: Vec<usize>,
    pub encoder_dims: Vec<usize>,
    pub cnn_module_kernels: Vec<usize>,
    pub left_context_len: Vec<usize>,
}

/// A state tensor the encoder carries from chunk to chunk, with the shape the metadata implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedState {
    pub name: String,
    pub shape: Vec<usize>,
}

fn get<'a>(meta: &'a Metadata, key: &str, file: &Path, what: &str) -> Result<&'a str> {
    meta.get(key).map(|s| s.as_str()).with_context(|| {
        format!(
            "{}: {what} metadata has no '{key}': zipvox needs the metadata_props that icefall's sherpa-onnx exporters write (export-onnx-streaming.py); re-export the model or use a published sherpa-onnx model",
            file.display()
        )
    })
}

fn int(meta: &Metadata, key: &str, file: &Path, what: &str) -> Result<usize> {
    let v = get(meta, key, file, what)?;
    v.trim().parse::<usize>().map_err(|_| {
        anyhow::anyhow!("{}: metadata '{key}' = '{v}' is not a non-negative integer", file.display())
    })
}

fn list(meta: &Metadata, key: &str, file: &Path, n: Option<usize>) -> Result<Vec<usize>> {
    let v = get(meta, key, file, "encoder")?;
    let parsed: Result<Vec<usize>, _> = v.split(',').map(|x| x.trim().parse::<usize>()).collect();
    let parsed = parsed.map_err(|_| {
        anyhow::anyhow!("{}: metadata '{key}' = '{v}' is not a comma-separated list of integers", file.display())
    })?;
    if parsed.is_empty() {
        bail!("{}: metadata '{key}' is empty", file.display());
    }
    if let Some(n) = n {
        if parsed.len() != n {
            bail!(
                "{}: metadata '{key}' has {} entries but num_encoder_layers has {n}: the metadata is inconsistent",
                file.display(),
                parsed.len()
            );
        }
    }
    Ok(parsed)
}

impl EncoderMeta {
    pub fn parse(meta: &Metadata, file: &Path) -> Result<Self> {
        let model_type = get(meta, "model_type", file, "encoder")?;
        let chunk_frames = int(meta, "T", file, "encoder")?;
        let chunk_shift = int(meta, "decode_chunk_len", file, "encoder")?;
        if chunk_shift == 0 || chunk_shift > chunk_frames {
            bail!(
                "{}: metadata decode_chunk_len={chunk_shift} must be between 1 and T={chunk_frames}",
                file.display()
            );
        }
        let num_encoder_layers = list(meta, "num_encoder_layers", file, None)?;
        let n = Some(num_encoder_layers.len());
        let encoder_dims = list(meta, "encoder_dims", file, n)?;
        let cnn_module_kernels = list(meta, "cnn_module_kernels", file, n)?;
        let left_context_len = list(meta, "left_context_len", file, n)?;
        let kind = match model_type {
            "zipformer2" => EncoderKind::Zipformer2 {
                query_head_dims: list(meta, "query_head_dims", file, n)?,
                value_head_dims: list(meta, "value_head_dims", file, n)?,
                num_heads: list(meta, "num_heads", file, n)?,
            },
            "zipformer" => EncoderKind::Zipformer { attention_dims: list(meta, "attention_dims", file, n)? },
            other => bail!(
                "{}: model_type '{other}' is not supported: zipvox runs streaming Zipformer transducers (model_type zipformer2 or zipformer)",
                file.display()
            ),
        };
        Ok(EncoderMeta { kind, chunk_frames, chunk_shift, num_encoder_layers, encoder_dims, cnn_module_kernels, left_context_len })
    }

    pub fn model_type(&self) -> &'static str {
        match self.kind {
            EncoderKind::Zipformer2 { .. } => "zipformer2",
            EncoderKind::Zipformer { .. } => "zipformer",
        }
    }

    /// Per-layer cache tensors and their shapes (batch 1) as sherpa-onnx lays them out.
    /// Other state inputs of the graph (`embed_states`, `processed_lens`) take the shape the
    /// graph declares.
    pub fn expected_states(&self) -> Vec<ExpectedState> {
        let mut out = Vec::new();
        let mut push = |name: String, shape: Vec<usize>| out.push(ExpectedState { name, shape });
        match &self.kind {
            EncoderKind::Zipformer2 { query_head_dims, value_head_dims, num_heads } => {
                let mut layer = 0;
                for s in 0..self.num_encoder_layers.len() {
                    let left = self.left_context_len[s];
                    let key_dim = query_head_dims[s] * num_heads[s];
                    let value_dim = value_head_dims[s] * num_heads[s];
                    let nonlin_dim = 3 * self.encoder_dims[s] / 4;
                    let conv = self.cnn_module_kernels[s] / 2;
                    for _ in 0..self.num_encoder_layers[s] {
                        push(format!("cached_key_{layer}"), vec![left, 1, key_dim]);
                        push(format!("cached_nonlin_attn_{layer}"), vec![1, 1, left, nonlin_dim]);
                        push(format!("cached_val1_{layer}"), vec![left, 1, value_dim]);
                        push(format!("cached_val2_{layer}"), vec![left, 1, value_dim]);
                        push(format!("cached_conv1_{layer}"), vec![1, self.encoder_dims[s], conv]);
                        push(format!("cached_conv2_{layer}"), vec![1, self.encoder_dims[s], conv]);
                        layer += 1;
                    }
                }
            }
            EncoderKind::Zipformer { attention_dims } => {
                for s in 0..self.num_encoder_layers.len() {
                    let (l, left, dim, att) = (
                        self.num_encoder_layers[s],
                        self.left_context_len[s],
                        self.encoder_dims[s],
                        attention_dims[s],
                    );
                    let conv = self.cnn_module_kernels[s].saturating_sub(1);
                    push(format!("cached_len_{s}"), vec![l, 1]);
                    push(format!("cached_avg_{s}"), vec![l, 1, dim]);
                    push(format!("cached_key_{s}"), vec![l, left, 1, att]);
                    push(format!("cached_val_{s}"), vec![l, left, 1, att / 2]);
                    push(format!("cached_val2_{s}"), vec![l, left, 1, att / 2]);
                    push(format!("cached_conv1_{s}"), vec![l, 1, dim, conv]);
                    push(format!("cached_conv2_{s}"), vec![l, 1, dim, conv]);
                }
            }
        }
        out
    }

    /// Short human description, e.g. for `zipvox info` and the socket hello.
    pub fn describe(&self) -> String {
        format!(
            "{} T={} decode_chunk_len={} layers={:?} dims={:?}",
            self.model_type(),
            self.chunk_frames,
            self.chunk_shift,
            self.num_encoder_layers,
            self.encoder_dims
        )
    }
}

/// Decoder (prediction network) metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderMeta {
    pub context_size: usize,
    pub vocab_size: usize,
}

impl DecoderMeta {
    pub fn parse(meta: &Metadata, file: &Path) -> Result<Self> {
        let context_size = int(meta, "context_size", file, "decoder")?;
        let vocab_size = int(meta, "vocab_size", file, "decoder")?;
        if context_size == 0 || vocab_size == 0 {
            bail!("{}: decoder metadata context_size and vocab_size must be positive", file.display());
        }
        Ok(DecoderMeta { context_size, vocab_size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> Metadata {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn v2() -> Metadata {
        meta(&[
            ("model_type", "zipformer2"),
            ("T", "45"),
            ("decode_chunk_len", "32"),
            ("num_encoder_layers", "1,2"),
            ("encoder_dims", "128,256"),
            ("cnn_module_kernels", "31,15"),
            ("left_context_len", "64,32"),
            ("query_head_dims", "32,32"),
            ("value_head_dims", "12,12"),
            ("num_heads", "4,8"),
        ])
    }

    #[test]
    fn zipformer2_states_follow_sherpa_layout() {
        let m = EncoderMeta::parse(&v2(), Path::new("e.onnx")).unwrap();
        assert_eq!((m.chunk_frames, m.chunk_shift), (45, 32));
        let s = m.expected_states();
        assert_eq!(s.len(), 3 * 6);
        assert_eq!(s[0], ExpectedState { name: "cached_key_0".into(), shape: vec![64, 1, 128] });
        assert_eq!(s[1].shape, vec![1, 1, 64, 96]);
        assert_eq!(s[2].shape, vec![64, 1, 48]);
        assert_eq!(s[4].shape, vec![1, 128, 15]);
        // second stack, second layer: global layer index 2, 8 heads
        assert_eq!(s[12], ExpectedState { name: "cached_key_2".into(), shape: vec![32, 1, 256] });
        assert_eq!(s[14].shape, vec![32, 1, 96]);
        assert_eq!(s[16].shape, vec![1, 256, 7]);
    }

    #[test]
    fn zipformer_v1_states_follow_sherpa_layout() {
        let m = EncoderMeta::parse(
            &meta(&[
                ("model_type", "zipformer"),
                ("T", "39"),
                ("decode_chunk_len", "32"),
                ("num_encoder_layers", "2,1"),
                ("encoder_dims", "64,96"),
                ("attention_dims", "64,48"),
                ("cnn_module_kernels", "31,31"),
                ("left_context_len", "64,32"),
            ]),
            Path::new("e.onnx"),
        )
        .unwrap();
        let s = m.expected_states();
        assert_eq!(s.len(), 14);
        assert_eq!(s[0], ExpectedState { name: "cached_len_0".into(), shape: vec![2, 1] });
        assert_eq!(s[2].shape, vec![2, 64, 1, 64]);
        assert_eq!(s[3].shape, vec![2, 64, 1, 32]);
        assert_eq!(s[6].shape, vec![2, 1, 64, 30]);
        assert_eq!(s[8].shape, vec![1, 1, 96]);
        assert_eq!(s[9].shape, vec![1, 32, 1, 48]);
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let mut m = v2();
        m.remove("T");
        let e = format!("{:#}", EncoderMeta::parse(&m, Path::new("enc.onnx")).unwrap_err());
        assert!(e.contains("enc.onnx") && e.contains("'T'"), "{e}");
        let mut m = v2();
        m.insert("model_type".into(), "conformer".into());
        let e = format!("{:#}", EncoderMeta::parse(&m, Path::new("enc.onnx")).unwrap_err());
        assert!(e.contains("model_type 'conformer' is not supported"), "{e}");
        let mut m = v2();
        m.insert("num_heads".into(), "4".into());
        let e = format!("{:#}", EncoderMeta::parse(&m, Path::new("enc.onnx")).unwrap_err());
        assert!(e.contains("num_heads") && e.contains("inconsistent"), "{e}");
        let mut m = v2();
        m.insert("T".into(), "abc".into());
        assert!(EncoderMeta::parse(&m, Path::new("enc.onnx")).is_err());
        let e = format!("{:#}", DecoderMeta::parse(&meta(&[("context_size", "2")]), Path::new("d.onnx")).unwrap_err());
        assert!(e.contains("vocab_size"), "{e}");
    }
}
