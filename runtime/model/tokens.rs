//! `tokens.txt`: the model's output symbols, and how token ids become text.
//!
//! Lines are `SYMBOL ID`. BPE pieces mark a word start with `▁` (U+2581); byte-fallback pieces
//! are written `<0xNN>` and stand for one raw byte, so multi-byte characters arrive over several
//! tokens. Text assembly follows sherpa-onnx: concatenate, `▁` becomes a space, trim.

use anyhow::{bail, Context, Result};
use std::path::Path;

const WORD_START: &str = "\u{2581}";

#[derive(Debug, Clone)]
pub struct TokenTable {
    symbols: Vec<String>,
    unk_id: Option<usize>,
}

/// What one token contributes to the text.
enum Piece<'a> {
    Text(&'a str),
    Byte(u8),
}

fn parse_byte_token(sym: &str) -> Option<u8> {
    let hex = sym.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

impl TokenTable {
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut pairs: Vec<(usize, String)> = Vec::new();
        for (lineno, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            // The id is the last field; the symbol is everything before it (a lone id means the
            // symbol is a space, as some exports write it).
            let (sym, id) = match line.rsplit_once(char::is_whitespace) {
                Some((s, id)) => (s.trim_end().to_string(), id),
                None => (" ".to_string(), line),
            };
            let id: usize = id.parse().with_context(|| {
                format!("{}:{}: expected 'SYMBOL ID', got '{line}'", path.display(), lineno + 1)
            })?;
            pairs.push((id, sym));
        }
        if pairs.is_empty() {
            bail!("{}: no tokens in file", path.display());
        }
        let n = pairs.iter().map(|(id, _)| id + 1).max().unwrap_or(0);
        if n != pairs.len() {
            bail!(
                "{}: token ids are not 0..{} without gaps or duplicates ({} lines)",
                path.display(),
                n,
                pairs.len()
            );
        }
        let mut symbols = vec![String::new(); n];
        for (id, sym) in pairs {
            symbols[id] = sym;
        }
        let unk_id = symbols.iter().position(|s| s == "<unk>");
        Ok(TokenTable { symbols, unk_id })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Removes symbols at ids `>= vocab_size` when every one of them is a disambiguation
    /// symbol (`#` followed by digits), and returns how many were removed. Anything else past
    /// the vocabulary is left in place, so the caller's size check still rejects it.
    pub fn drop_disambiguation_tail(&mut self, vocab_size: usize) -> usize {
        if self.symbols.len() <= vocab_size {
            return 0;
        }
        let is_disambig = |s: &String| s.len() > 1 && s.starts_with('#') && s[1..].bytes().all(|b| b.is_ascii_digit());
        if !self.symbols[vocab_size..].iter().all(is_disambig) {
            return 0;
        }
        let n = self.symbols.len() - vocab_size;
        self.symbols.truncate(vocab_size);
        n
    }

    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// Id of `<unk>`, which greedy search treats as blank (as sherpa-onnx does).
    pub fn unk_id(&self) -> Option<usize> {
        self.unk_id
    }

    pub fn symbol(&self, id: usize) -> Option<&str> {
        self.symbols.get(id).map(|s| s.as_str())
    }

    pub fn id(&self, symbol: &str) -> Option<usize> {
        self.symbols.iter().position(|s| s == symbol)
    }

    fn piece(&self, id: usize) -> Piece<'_> {
        let sym = self.symbols.get(id).map(|s| s.as_str()).unwrap_or("");
        match parse_byte_token(sym) {
            Some(b) => Piece::Byte(b),
            None => Piece::Text(sym),
        }
    }

    /// The transcript text of a token sequence.
    pub fn text(&self, ids: &[usize]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            match self.piece(id) {
                Piece::Byte(b) => bytes.push(b),
                Piece::Text(s) => bytes.extend_from_slice(s.replace(WORD_START, " ").as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// Per-token display strings as sherpa-onnx reports them (`▁` shown as a space).
    pub fn token_strings(&self, ids: &[usize]) -> Vec<String> {
        ids.iter()
            .map(|&id| match self.piece(id) {
                Piece::Byte(b) => format!("<0x{b:02X}>"),
                Piece::Text(s) => s.replace(WORD_START, " "),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TokenTable {
        let text = "<blk> 0\n<sos/eos> 1\n<unk> 2\n\u{2581}HEL 3\nLO 4\n\u{2581}WORLD 5\n<0xE2> 6\n<0x82> 7\n<0xAC> 8\n\u{2581} 9\n";
        TokenTable::parse(text, Path::new("tokens.txt")).unwrap()
    }

    #[test]
    fn assembles_words_and_trims() {
        let t = table();
        assert_eq!(t.len(), 10);
        assert_eq!(t.unk_id(), Some(2));
        assert_eq!(t.text(&[3, 4, 5]), "HELLO WORLD");
        assert_eq!(t.token_strings(&[3, 4]), vec![" HEL", "LO"]);
    }

    #[test]
    fn byte_tokens_join_into_utf8() {
        let t = table();
        // € is E2 82 AC
        assert_eq!(t.text(&[3, 4, 9, 6, 7, 8]), "HELLO \u{20ac}");
        assert_eq!(t.token_strings(&[6]), vec!["<0xE2>"]);
        // A truncated sequence does not panic; it yields a replacement character.
        assert_eq!(t.text(&[6, 7]), "\u{fffd}");
    }

    #[test]
    fn drops_only_a_disambiguation_tail() {
        let mut t = TokenTable::parse("<blk> 0\na 1\n#0 2\n#1 3\n", Path::new("t")).unwrap();
        assert_eq!(t.drop_disambiguation_tail(2), 2);
        assert_eq!(t.len(), 2);
        let mut t = TokenTable::parse("<blk> 0\na 1\n#0 2\nb 3\n", Path::new("t")).unwrap();
        assert_eq!(t.drop_disambiguation_tail(2), 0);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn rejects_malformed_files() {
        assert!(TokenTable::parse("", Path::new("t")).is_err());
        assert!(TokenTable::parse("a 0\nb x\n", Path::new("t")).is_err());
        let e = TokenTable::parse("a 0\nb 2\n", Path::new("t")).unwrap_err();
        assert!(format!("{e}").contains("without gaps"));
    }
}
