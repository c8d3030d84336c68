//! Reading the small text files a user hands zipvox (the daemon's config, hotwords and keywords
//! files, SHA256SUMS) with explicit size limits, so a wrong path (`/dev/zero`, a WAV, a log) is a one-line
//! error instead of an unbounded read.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// Reads `path` as UTF-8 text of at most `max_bytes`; `what` names the file in errors
/// ("config", "hotwords file").
pub fn read_text_capped(path: &Path, max_bytes: u64, what: &str) -> Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    let mut bytes = Vec::new();
    // One byte past the cap tells "too large" from "exactly at the cap".
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if bytes.len() as u64 > max_bytes {
        bail!("{what} {} is larger than {} bytes: is it the right file?", path.display(), max_bytes);
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("{what} {} is not UTF-8 text (invalid byte at offset {})", path.display(), e.utf8_error().valid_up_to())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_encoding_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.txt");
        std::fs::write(&p, "abc\n").unwrap();
        assert_eq!(read_text_capped(&p, 4, "x").unwrap(), "abc\n");
        assert!(read_text_capped(&p, 3, "x").unwrap_err().to_string().contains("larger than 3 bytes"));
        std::fs::write(&p, b"a\xffb").unwrap();
        assert!(read_text_capped(&p, 10, "x").unwrap_err().to_string().contains("not UTF-8"));
        assert!(read_text_capped(Path::new("/dev/zero"), 1000, "config").is_err());
    }
}
