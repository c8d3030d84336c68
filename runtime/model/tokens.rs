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

/// A symbol as sherpa-onnx's symbol table shows it: a leading `▁` becomes a space.
fn display_symbol(sym: &str) -> std::borrow::Cow<'_, str> {
    match sym.strip_prefix(WORD_START) {
        Some(rest) => format!(" {rest}").into(),
        None => sym.into(),
    }
}

impl TokenTable {
    /// Parses `SYMBOL ID` lines. Ids must be `0..N` for the file's N symbols, each once; an
    /// error names the line (an id past the end, an id used twice) or the missing id.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut pairs: Vec<(usize, u64, String)> = Vec::new();
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
            let id: u64 = id.parse().map_err(|_| {
                anyhow::anyhow!("{}:{}: expected 'SYMBOL ID' with a non-negative integer id, got {line:?}", path.display(), lineno + 1)
            })?;
            pairs.push((lineno + 1, id, sym));
        }
        if pairs.is_empty() {
            bail!("{}: no tokens in file", path.display());
        }
        let n = pairs.len();
        // Line on which each id was given.
        let mut seen: Vec<usize> = vec![0; n];
        let mut symbols = vec![String::new(); n];
        for (lineno, id, sym) in pairs {
            if id >= n as u64 {
                bail!(
                    "{}:{lineno}: token id {id} is out of range: the file has {n} tokens, so ids must be 0..={}",
                    path.display(),
                    n - 1
                );
            }
            let id = id as usize;
            if seen[id] != 0 {
                bail!("{}:{lineno}: token id {id} is used twice (also on line {})", path.display(), seen[id]);
            }
            seen[id] = lineno;
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
                Piece::Text(s) => bytes.extend_from_slice(display_symbol(s).as_bytes()),
            }
        }
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// Per-token display strings as sherpa-onnx reports them (`▁` shown as a space).
    pub fn token_strings(&self, ids: &[usize]) -> Vec<String> {
        ids.iter()
            .map(|&id| match self.piece(id) {
                Piece::Byte(b) => format!("<0x{b:02X}>"),
                Piece::Text(s) => display_symbol(s).into_owned(),
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
        let e = TokenTable::parse("a 0\nb 2\n", Path::new("t")).unwrap_err().to_string();
        assert!(e.contains("t:2: token id 2 is out of range") && e.contains("0..=1"), "{e}");
        // The red-team reproducer: a huge id used to index out of bounds (exit 101).
        let e = TokenTable::parse("a 0\n\u{2581}IT 18446744073709551615\n", Path::new("t")).unwrap_err().to_string();
        assert!(e.contains("t:2: token id 18446744073709551615 is out of range"), "{e}");
        let e = TokenTable::parse("a 0\nb -1\n", Path::new("t")).unwrap_err().to_string();
        assert!(e.contains("t:2: expected 'SYMBOL ID'"), "{e}");
        // Two lines with one id (so another id is missing).
        let e = TokenTable::parse("a 0\nb 1\nc 1\n", Path::new("t")).unwrap_err().to_string();
        assert!(e.contains("t:3: token id 1 is used twice (also on line 2)"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_symbol() {
        let t = TokenTable::parse("\u{feff}<blk> 0\na 1\n", Path::new("t")).unwrap();
        assert_eq!(t.id("<blk>"), Some(0));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const GOOD: &str = "<blk> 0\n<sos/eos> 1\n<unk> 2\n\u{2581}HE 3\nLL 4\n<0xE2> 5\n#0 6\n";

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

            /// Any text: parses (and then texts any ids) or gives an error; never panics.
            #[test]
            fn random_text_never_panics(text in "(\\PC{0,12}( [0-9]{1,21})?\n){0,8}") {
                if let Ok(t) = TokenTable::parse(&text, Path::new("t")) {
                    let ids: Vec<usize> = (0..t.len() + 2).collect();
                    let _ = (t.text(&ids), t.token_strings(&ids));
                }
            }

            /// A real file with bytes changed, inserted or removed.
            #[test]
            fn mutated_files_never_panic(edits in proptest::collection::vec((0usize..64, any::<u8>(), 0u8..3), 1..6)) {
                let mut bytes = GOOD.as_bytes().to_vec();
                for (at, b, kind) in edits {
                    let at = at % (bytes.len() + 1);
                    match kind {
                        0 if at < bytes.len() => bytes[at] = b,
                        1 => bytes.insert(at, b),
                        _ if at < bytes.len() => { bytes.remove(at); }
                        _ => {}
                    }
                }
                let text = String::from_utf8_lossy(&bytes);
                if let Ok(mut t) = TokenTable::parse(&text, Path::new("t")) {
                    t.drop_disambiguation_tail(3);
                    let _ = t.text(&[0, 1, 2, 3, 4, 5, 99]);
                }
            }
        }
    }
}
