//! Integrity of a model directory: the `SHA256SUMS` file that sherpa-onnx model directories
//! (and zipvox's packages) ship, checked at load time for every file the load reads.
//!
//! A damaged encoder may still parse and then give garbage transcripts with exit 0; a checksum
//! catches that before any audio. `--no-verify` (`[model] verify = false`) skips it: hashing
//! the 3.3M model's ~5 MB takes milliseconds on a desktop core (see README for a Pi estimate).

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The checksum file's name in a model directory.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// Largest `SHA256SUMS` read (a line per file; anything larger is not one).
const MAX_SUMS_BYTES: u64 = 1 << 20;

/// Expected digests by path relative to the model directory (`./a/b` and `a/b` alike).
#[derive(Debug, Default)]
pub struct Sums {
    path: PathBuf,
    digests: HashMap<PathBuf, [u8; 32]>,
}

/// `a/./b` → `a/b`, dropping leading `./`.
fn normal(p: &Path) -> PathBuf {
    p.components().filter(|c| !matches!(c, Component::CurDir)).collect()
}

fn hex_digest(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl Sums {
    /// Reads `dir/SHA256SUMS` (the `sha256sum` format: `HEX  NAME` or `HEX *NAME` per line);
    /// `None` when the directory has none.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(SUMS_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::textfile::read_text_capped(&path, MAX_SUMS_BYTES, "checksum file")?;
        Self::parse(&text, &path).map(Some)
    }

    /// Parses the text of a checksum file found at `path` (named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut digests = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = line.split_once(char::is_whitespace).and_then(|(hex, name)| {
                let name = name.trim_start();
                let name = name.strip_prefix('*').unwrap_or(name);
                Some((hex_digest(hex)?, name))
            });
            let Some((digest, name)) = parsed.filter(|(_, n)| !n.is_empty()) else {
                bail!("{} line {}: expected `SHA256HEX  FILE` (as sha256sum writes)", path.display(), i + 1);
            };
            digests.insert(normal(Path::new(name)), digest);
        }
        Ok(Sums { path: path.to_path_buf(), digests })
    }

    /// Checks `file` (inside `dir`) against its listed digest. A file the list does not name
    /// (e.g. an `--encoder` override elsewhere) is not checked and returns `Ok(false)`.
    pub fn verify(&self, dir: &Path, file: &Path) -> Result<bool> {
        let Some(rel) = file.strip_prefix(dir).ok().map(normal) else {
            return Ok(false);
        };
        let Some(want) = self.digests.get(&rel) else {
            log::warn!("{}: not listed in {}, not verified", file.display(), self.path.display());
            return Ok(false);
        };
        let got = sha256_file(file)?;
        if &got != want {
            bail!(
                "{}: checksum mismatch against {} (the file is damaged or was replaced): \
                 download the model again, or pass --no-verify to load it anyway",
                file.display(),
                self.path.display()
            );
        }
        Ok(true)
    }
}

/// SHA-256 of a file, read in 64 KiB pieces.
pub fn sha256_file(path: &Path) -> Result<[u8; 32]> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sha256sum_output_and_detects_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.onnx");
        std::fs::write(&f, b"abc").unwrap();
        // sha256("abc")
        let text = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  ./a.onnx\n";
        let sums = Sums::parse(text, &dir.path().join(SUMS_FILE)).unwrap();
        assert!(sums.verify(dir.path(), &f).unwrap());
        std::fs::write(&f, b"abd").unwrap();
        let e = sums.verify(dir.path(), &f).unwrap_err().to_string();
        assert!(e.contains("a.onnx") && e.contains("checksum mismatch"), "{e}");
        assert!(!sums.verify(dir.path(), &dir.path().join("other.onnx")).unwrap());
        assert!(Sums::parse("zz  a\n", Path::new("S")).unwrap_err().to_string().contains("line 1"));
    }
}
