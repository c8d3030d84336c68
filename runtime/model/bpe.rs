//! SentencePiece models (`bpe.model`): a reader of the protobuf file and its encoder, used to
//! turn hotwords and keywords written as plain words into the model's pieces.
//!
//! The file is sentencepiece's `ModelProto`; only what encoding needs is read: the pieces (text,
//! score, type), the model type, and the whitespace rules of the normalizer. Encoding follows
//! sentencepiece's:
//! - unigram models (icefall's `bpe_500` etc. are unigram): the Viterbi path over the pieces'
//!   log-probabilities; a character no piece covers becomes `<unk>` scored `min_score − 10`,
//!   consecutive unknowns merge; ties keep the path found first (earliest start, shortest piece);
//!   user-defined pieces score `bytes × max_score − 0.1` (always preferred);
//! - BPE models: repeated merges of the adjacent pair whose union is the best-scored piece
//!   (leftmost on ties).
//!
//! Normalization is whitespace-only (collapse runs, trim, `▁` dummy prefix, spaces to `▁`):
//! the `nmt_nfkc` character map is not applied, which changes nothing for the ASCII text
//! these English models spell their pieces in.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::Path;

/// The word-boundary mark (U+2581) sentencepiece writes for a space.
pub const SPACE_MARK: char = '\u{2581}';

/// Penalty below the lowest piece score given to a character no piece covers (sentencepiece's
/// `kUnkPenalty`).
const UNK_PENALTY: f32 = 10.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelType {
    Unigram,
    Bpe,
    Word,
    Char,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub text: String,
    pub score: f32,
    pub kind: PieceType,
}

/// A loaded SentencePiece model.
#[derive(Debug, Clone)]
pub struct SentencePiece {
    pieces: Vec<Piece>,
    /// Pieces that take part in segmentation (normal and user-defined), by text.
    index: HashMap<String, usize>,
    /// Longest such piece, in bytes.
    max_piece_len: usize,
    model_type: ModelType,
    unk_id: Option<usize>,
    min_score: f32,
    max_score: f32,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
}

impl SentencePiece {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("{}: not a SentencePiece model", path.display()))
    }

    /// Parses the serialized `ModelProto`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut model_type = ModelType::Unigram;
        let (mut add_dummy_prefix, mut remove_extra_whitespaces, mut escape_whitespaces) = (true, true, true);
        let mut r = Wire::new(bytes);
        while let Some((field, value)) = r.next()? {
            match (field, value) {
                (1, Value::Bytes(b)) => pieces.push(parse_piece(b)?),
                (2, Value::Bytes(b)) => {
                    let mut t = Wire::new(b);
                    while let Some((f, v)) = t.next()? {
                        if let (3, Value::Varint(v)) = (f, v) {
                            model_type = match v {
                                1 => ModelType::Unigram,
                                2 => ModelType::Bpe,
                                3 => ModelType::Word,
                                4 => ModelType::Char,
                                other => bail!("unknown model type {other}"),
                            };
                        }
                    }
                }
                (3, Value::Bytes(b)) => {
                    let mut n = Wire::new(b);
                    while let Some((f, v)) = n.next()? {
                        match (f, v) {
                            (3, Value::Varint(v)) => add_dummy_prefix = v != 0,
                            (4, Value::Varint(v)) => remove_extra_whitespaces = v != 0,
                            (5, Value::Varint(v)) => escape_whitespaces = v != 0,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if pieces.is_empty() {
            bail!("no pieces");
        }
        Ok(Self::from_pieces(pieces, model_type, add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces))
    }

    /// A model from its parts (also how the unit tests build small models).
    pub fn from_pieces(
        pieces: Vec<Piece>,
        model_type: ModelType,
        add_dummy_prefix: bool,
        remove_extra_whitespaces: bool,
        escape_whitespaces: bool,
    ) -> Self {
        let mut index = HashMap::new();
        let mut max_piece_len = 0;
        let (mut min_score, mut max_score) = (f32::INFINITY, f32::NEG_INFINITY);
        for (id, p) in pieces.iter().enumerate() {
            if matches!(p.kind, PieceType::Normal | PieceType::UserDefined) && !p.text.is_empty() {
                index.entry(p.text.clone()).or_insert(id);
                max_piece_len = max_piece_len.max(p.text.len());
            }
            if p.kind == PieceType::Normal {
                min_score = min_score.min(p.score);
                max_score = max_score.max(p.score);
            }
        }
        if !min_score.is_finite() {
            (min_score, max_score) = (0.0, 0.0);
        }
        let unk_id = pieces.iter().position(|p| p.kind == PieceType::Unknown);
        SentencePiece {
            pieces,
            index,
            max_piece_len,
            model_type,
            unk_id,
            min_score,
            max_score,
            add_dummy_prefix,
            remove_extra_whitespaces,
            escape_whitespaces,
        }
    }

    pub fn model_type(&self) -> ModelType {
        self.model_type
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The `<unk>` piece's text (what unknown characters encode to).
    pub fn unk_piece(&self) -> &str {
        self.unk_id.map(|i| self.pieces[i].text.as_str()).unwrap_or("<unk>")
    }

    /// Whether any normal piece holds a lowercase letter (icefall's English models are all
    /// uppercase: lowercase text would only encode to `<unk>`).
    pub fn has_lowercase(&self) -> bool {
        self.pieces.iter().any(|p| p.kind == PieceType::Normal && p.text.chars().any(char::is_lowercase))
    }

    /// The text as the model segments it: whitespace rules applied, spaces as `▁`.
    pub fn normalize(&self, text: &str) -> String {
        let mut s = if self.remove_extra_whitespaces {
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        } else {
            text.to_string()
        };
        if s.is_empty() {
            return s;
        }
        if self.add_dummy_prefix {
            s.insert(0, ' ');
        }
        if self.escape_whitespaces {
            s = s.replace(' ', &SPACE_MARK.to_string());
        }
        s
    }

    /// Encodes text into piece strings (sentencepiece's `encode(text, out_type=str)`).
    pub fn encode(&self, text: &str) -> Vec<String> {
        let norm = self.normalize(text);
        match self.model_type {
            ModelType::Bpe => self.encode_bpe(&norm),
            _ => self.encode_unigram(&norm),
        }
    }

    fn score_of(&self, id: usize) -> f32 {
        let p = &self.pieces[id];
        if p.kind == PieceType::UserDefined {
            p.text.len() as f32 * self.max_score - 0.1
        } else {
            p.score
        }
    }

    /// Viterbi segmentation over piece scores.
    fn encode_unigram(&self, s: &str) -> Vec<String> {
        let n = s.len();
        // best[end] = (score, start, piece id or None for unknown)
        let mut best: Vec<Option<(f32, usize, Option<usize>)>> = vec![None; n + 1];
        best[0] = Some((0.0, 0, None));
        let unk_score = self.min_score - UNK_PENALTY;
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain(std::iter::once(n)).collect();
        for (bi, &start) in bounds.iter().enumerate() {
            let Some((here, _, _)) = best[start] else { continue };
            if start == n {
                break;
            }
            let first_char_end = bounds[bi + 1];
            let mut has_single = false;
            for &end in &bounds[bi + 1..] {
                if end - start > self.max_piece_len {
                    break;
                }
                if let Some(&id) = self.index.get(&s[start..end]) {
                    let cand = here + self.score_of(id);
                    if best[end].is_none_or(|(b, _, _)| cand > b) {
                        best[end] = Some((cand, start, Some(id)));
                    }
                    if end == first_char_end {
                        has_single = true;
                    }
                }
            }
            if !has_single {
                let cand = here + unk_score;
                if best[first_char_end].is_none_or(|(b, _, _)| cand > b) {
                    best[first_char_end] = Some((cand, start, None));
                }
            }
        }
        // Backtrack; merge runs of unknowns into one `<unk>`.
        let mut out: Vec<(usize, usize, Option<usize>)> = Vec::new();
        let mut end = n;
        while end > 0 {
            let (_, start, id) = best[end].expect("every position is reachable");
            match (id, out.last_mut()) {
                (None, Some(last)) if last.2.is_none() => last.0 = start,
                _ => out.push((start, end, id)),
            }
            end = start;
        }
        out.reverse();
        out.into_iter()
            .map(|(_, _, id)| match id {
                Some(id) => self.pieces[id].text.clone(),
                None => self.unk_piece().to_string(),
            })
            .collect()
    }

    /// Merges adjacent symbols while their union is a piece, best score first.
    fn encode_bpe(&self, s: &str) -> Vec<String> {
        let mut syms: Vec<String> = s.chars().map(|c| c.to_string()).collect();
        loop {
            let mut best: Option<(f32, usize)> = None;
            for i in 0..syms.len().saturating_sub(1) {
                let joined = format!("{}{}", syms[i], syms[i + 1]);
                if let Some(&id) = self.index.get(&joined) {
                    let sc = self.score_of(id);
                    if best.is_none_or(|(b, _)| sc > b) {
                        best = Some((sc, i));
                    }
                }
            }
            let Some((_, i)) = best else { break };
            let right = syms.remove(i + 1);
            syms[i].push_str(&right);
        }
        let unk = self.unk_piece().to_string();
        let mut out: Vec<String> = Vec::new();
        for s in syms {
            if self.index.contains_key(&s) {
                out.push(s);
            } else if out.last() != Some(&unk) {
                out.push(unk.clone());
            }
        }
        out
    }
}

fn parse_piece(b: &[u8]) -> Result<Piece> {
    let mut text = String::new();
    let mut score = 0.0;
    let mut kind = PieceType::Normal;
    let mut r = Wire::new(b);
    while let Some((f, v)) = r.next()? {
        match (f, v) {
            (1, Value::Bytes(t)) => text = String::from_utf8(t.to_vec()).context("piece is not UTF-8")?,
            (2, Value::Fixed32(bits)) => score = f32::from_bits(bits),
            (3, Value::Varint(t)) => {
                kind = match t {
                    1 => PieceType::Normal,
                    2 => PieceType::Unknown,
                    3 => PieceType::Control,
                    4 => PieceType::UserDefined,
                    5 => PieceType::Unused,
                    6 => PieceType::Byte,
                    other => bail!("unknown piece type {other}"),
                }
            }
            _ => {}
        }
    }
    Ok(Piece { text, score, kind })
}

/// A protobuf wire-format value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Reads the fields of one protobuf message, in order.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Wire { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else { bail!("truncated varint") };
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).context("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn next(&mut self) -> Result<Option<(u32, Value<'a>)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take(8)?.try_into()?)),
            2 => {
                let n = self.varint()? as usize;
                Value::Bytes(self.take(n)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take(4)?.try_into()?)),
            w => bail!("unsupported protobuf wire type {w} (field {field})"),
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, score: f32) -> Piece {
        Piece { text: text.into(), score, kind: PieceType::Normal }
    }

    fn unigram() -> SentencePiece {
        let pieces = vec![
            Piece { text: "<unk>".into(), score: 0.0, kind: PieceType::Unknown },
            Piece { text: "<blk>".into(), score: 0.0, kind: PieceType::UserDefined },
            p("\u{2581}", -3.0),
            p("\u{2581}B", -4.0),
            p("RO", -5.0),
            p("TH", -4.5),
            p("EL", -5.0),
            p("S", -2.0),
            p("\u{2581}BRO", -12.0),
            p("B", -6.0),
            p("R", -6.0),
            p("O", -6.0),
            p("T", -6.0),
            p("H", -6.0),
            p("E", -6.0),
            p("L", -6.0),
            p("\u{2581}THE", -3.0),
        ];
        SentencePiece::from_pieces(pieces, ModelType::Unigram, true, true, true)
    }

    #[test]
    fn unigram_takes_the_best_path() {
        let sp = unigram();
        // ▁B RO (−9) beats ▁BRO (−12).
        assert_eq!(sp.encode("BROTHELS"), ["\u{2581}B", "RO", "TH", "EL", "S"]);
        assert_eq!(sp.encode("  THE   BROTHELS "), ["\u{2581}THE", "\u{2581}B", "RO", "TH", "EL", "S"]);
        assert!(sp.encode("").is_empty());
    }

    #[test]
    fn unknown_characters_merge_into_one_unk() {
        let sp = unigram();
        assert_eq!(sp.encode("B\u{e9}\u{e9}S"), ["\u{2581}B", "<unk>", "S"]);
        assert_eq!(sp.encode("THE x"), ["\u{2581}THE", "\u{2581}", "<unk>"]);
    }

    #[test]
    fn user_defined_pieces_win() {
        let sp = unigram();
        assert_eq!(sp.encode("<blk>"), ["\u{2581}", "<blk>"]);
    }

    #[test]
    fn bpe_merges_best_pairs_first() {
        let pieces = vec![
            Piece { text: "<unk>".into(), score: 0.0, kind: PieceType::Unknown },
            p("\u{2581}", -1.0),
            p("A", -1.0),
            p("B", -1.0),
            p("AB", -2.0),
            p("\u{2581}A", -3.0),
            p("\u{2581}AB", -4.0),
        ];
        let sp = SentencePiece::from_pieces(pieces, ModelType::Bpe, true, true, true);
        // AB (−2) merges before ▁A (−3); then ▁ + AB → ▁AB.
        assert_eq!(sp.encode("AB"), ["\u{2581}AB"]);
        assert_eq!(sp.encode("ABC"), ["\u{2581}AB", "<unk>"]);
    }

    /// A hand-encoded ModelProto (field numbers of sentencepiece_model.proto).
    fn proto() -> Vec<u8> {
        fn field_bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
            out.push(field << 3 | 2);
            out.push(b.len() as u8);
            out.extend_from_slice(b);
        }
        fn piece(text: &str, score: f32, kind: u8) -> Vec<u8> {
            let mut m = vec![];
            field_bytes(&mut m, 1, text.as_bytes());
            m.push(2 << 3 | 5);
            m.extend_from_slice(&score.to_le_bytes());
            m.extend_from_slice(&[3 << 3, kind]);
            m
        }
        let mut out = vec![];
        field_bytes(&mut out, 1, &piece("<unk>", 0.0, 2));
        field_bytes(&mut out, 1, &piece("\u{2581}HI", -1.5, 1));
        field_bytes(&mut out, 1, &piece("\u{2581}", -2.0, 1));
        field_bytes(&mut out, 1, &piece("H", -3.0, 1));
        field_bytes(&mut out, 1, &piece("I", -3.0, 1));
        // trainer_spec { model_type: UNIGRAM, vocab_size: 5 }, a long varint field too
        field_bytes(&mut out, 2, &[3 << 3, 1, 4 << 3, 5, 0xb8, 0x02, 0x80, 0x01]);
        // normalizer_spec { name: "x", add_dummy_prefix: true }
        field_bytes(&mut out, 3, &[1 << 3 | 2, 1, b'x', 3 << 3, 1]);
        out
    }

    #[test]
    fn parses_a_model_proto() {
        let sp = SentencePiece::parse(&proto()).unwrap();
        assert_eq!(sp.model_type(), ModelType::Unigram);
        assert_eq!(sp.pieces().len(), 5);
        assert_eq!(sp.pieces()[1], p("\u{2581}HI", -1.5));
        assert_eq!(sp.pieces()[0].kind, PieceType::Unknown);
        assert_eq!(sp.encode("HI  HI"), ["\u{2581}HI", "\u{2581}HI"]);
        assert!(!sp.has_lowercase());
    }

    #[test]
    fn rejects_truncated_or_foreign_bytes() {
        let p = proto();
        assert!(SentencePiece::parse(&p[..p.len() - 3]).is_err());
        assert!(SentencePiece::parse(b"").is_err());
        assert!(SentencePiece::parse(b"\x0b\x00").is_err()); // wire type 3 (group)
    }
}
