//! Chinese text → pinyin modelling units, as sherpa-onnx's `text2token` makes them with pypinyin
//! (for `ppinyin` and `fpinyin` models such as the WenetSpeech keyword-spotting Zipformer).
//!
//! sherpa-onnx calls `pypinyin.pinyin(text)` (tone marks, no heteronyms) and, for `ppinyin`,
//! splits each syllable with `to_initials` / `to_finals_tone` (strict=False). This module
//! reproduces that pipeline step for step, because the point is the *phrase-aware* reading of
//! polyphonic characters (银行 → `y ín h áng`, 行长 → `h áng zh ǎng`), which a per-character
//! table gets wrong:
//!
//! 1. split the text into runs of Chinese characters (pypinyin's `RE_HANS` set) and runs of
//!    anything else (`simpleseg`); a non-Chinese run (latin, digits, spaces, punctuation) is
//!    kept whole as one "syllable", exactly as pypinyin returns it;
//! 2. cut each Chinese run by forward maximum matching over the phrase dictionary
//!    (`seg/mmseg.py` with `no_non_phrases`, including its quirk of splitting a remainder that
//!    is only a phrase prefix into single characters);
//! 3. a phrase takes the phrase dictionary's readings, any other character its first reading;
//! 4. `ppinyin`: initial + tone-marked final (`to_initials` / `to_finals_tone`, ported below
//!    operation for operation, so odd input such as `abc1` splits as pypinyin splits it).
//!
//! The data is pypinyin 0.55.0's character and phrase dictionaries (MIT, the notice is in the
//! file's header), rebuilt by `scripts/gen_pinyin_dict.py` into `packaging/pinyin.dict`
//! (~0.9 MB of text; format in the script). It is a file beside the binary, not embedded:
//! [`Pinyin::load_default`] looks, in order, at `$ZIPVOX_PINYIN_DICT`,
//! `<directory of the executable>/../share/zipvox/pinyin.dict`, `/usr/share/zipvox/pinyin.dict`
//! (where the .deb installs it), and the source tree's `packaging/pinyin.dict` (when run from a
//! checkout). Loaded, it takes about 1.5 MB (sorted arrays, no per-entry allocation).
//! `tests/pinyin.rs` compares the output with sherpa-onnx's own `text2token` on a few hundred
//! phrases.

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Which pinyin units a model uses (sherpa-onnx's `--tokens-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinyinUnits {
    /// `ppinyin`: each syllable split into initial + tone-marked final (`zh ōu`); a syllable
    /// without an initial is its final alone (`ài`).
    Partial,
    /// `fpinyin`: whole tone-marked syllables (`zhōu`).
    Full,
}

/// The environment variable that names the dictionary file, ahead of the default places.
pub const DICT_ENV: &str = "ZIPVOX_PINYIN_DICT";
/// The dictionary's file name in a `share/zipvox/` directory.
pub const DICT_FILE: &str = "pinyin.dict";
/// The format version `scripts/gen_pinyin_dict.py` writes.
const FORMAT_VERSION: &str = "1";

/// Sorted, non-overlapping inclusive code-point ranges.
#[derive(Debug, Default)]
struct CharRanges(Vec<(u32, u32)>);

impl CharRanges {
    fn contains(&self, c: char) -> bool {
        let c = c as u32;
        let i = self.0.partition_point(|&(_, last)| last < c);
        i < self.0.len() && self.0[i].0 <= c
    }
}

/// One phrase of the dictionary: where its text starts in `Pinyin::phrase_text` (it ends where
/// the next one starts) and where its readings start in `Pinyin::phrase_readings` (one per
/// character).
#[derive(Debug, Clone, Copy)]
struct PhraseEntry {
    text_start: u32,
    readings_start: u32,
}

/// The reading dictionary (characters and phrases), loaded once and shared.
pub struct Pinyin {
    /// Characters pypinyin converts (its `RE_HANS`); everything else passes through.
    hans: CharRanges,
    /// Python's `\d` (Unicode decimal digits): pypinyin's tone conversion strips and moves them.
    digits: CharRanges,
    /// The distinct tone-marked syllables; readings elsewhere are indices into this.
    syllables: Vec<Box<str>>,
    /// Each character's first reading, sorted by character.
    chars: Vec<(char, u16)>,
    /// All phrases back to back, in sorted (code-point) order.
    phrase_text: String,
    phrases: Vec<PhraseEntry>,
    phrase_readings: Vec<u16>,
    source: PathBuf,
}

impl std::fmt::Debug for Pinyin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinyin")
            .field("source", &self.source)
            .field("chars", &self.chars.len())
            .field("phrases", &self.phrases.len())
            .finish()
    }
}

impl Pinyin {
    /// Loads the dictionary installed with zipvox (or named by `$ZIPVOX_PINYIN_DICT`); the
    /// search order is [`Pinyin::default_path`]'s.
    pub fn load_default() -> Result<Self> {
        Self::load(&Self::default_path()?)
    }

    /// Where [`Pinyin::load_default`] finds the dictionary: `$ZIPVOX_PINYIN_DICT` if set (it
    /// must exist), else the first existing of `<exe dir>/../share/zipvox/pinyin.dict`,
    /// `/usr/share/zipvox/pinyin.dict` and the source tree's `packaging/pinyin.dict`.
    pub fn default_path() -> Result<PathBuf> {
        if let Some(p) = std::env::var_os(DICT_ENV) {
            let p = PathBuf::from(p);
            if !p.is_file() {
                bail!("${DICT_ENV} names {}, which is not a file: point it at a pinyin.dict", p.display());
            }
            return Ok(p);
        }
        let candidates = Self::default_candidates();
        if let Some(p) = candidates.iter().find(|p| p.is_file()) {
            return Ok(p.clone());
        }
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "no pinyin dictionary found (${DICT_ENV} is unset; looked at {}): install zipvox's \
             package, or set ${DICT_ENV} to a pinyin.dict (packaging/pinyin.dict in the source tree)",
            tried.join(", ")
        )
    }

    fn default_candidates() -> Vec<PathBuf> {
        let mut v = Vec::new();
        if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
            v.push(dir.join("../share/zipvox").join(DICT_FILE));
        }
        v.push(Path::new("/usr/share/zipvox").join(DICT_FILE));
        v.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging").join(DICT_FILE));
        v
    }

    /// Loads a dictionary file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the pinyin dictionary {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses the text of a dictionary file (`path` is for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |lineno: Option<usize>, what: &str| {
            let at = lineno.map_or(String::new(), |n| format!(":{}", n + 1));
            anyhow::anyhow!(
                "{}{at}: {what}: not a zipvox pinyin dictionary of format {FORMAT_VERSION} \
                 (regenerate it with scripts/gen_pinyin_dict.py)",
                path.display()
            )
        };
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.starts_with('#'));
        let mut next = |expect: &str| -> Result<(usize, &str)> {
            lines.next().ok_or_else(|| bad(None, &format!("the file ends before {expect}")))
        };

        let (n, header) = next("the header")?;
        let fields: Vec<&str> = header.split(' ').collect();
        if fields.len() < 2 || fields[0] != "zipvox-pinyin" || fields[1] != FORMAT_VERSION {
            return Err(bad(Some(n), &format!("header '{header}'")));
        }
        let ranges = |(n, line): (usize, &str), key: &str| -> Result<CharRanges> {
            let rest = line
                .strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .ok_or_else(|| bad(Some(n), &format!("expected '{key} RANGES'")))?;
            let mut v: Vec<(u32, u32)> = Vec::new();
            for r in rest.split(' ') {
                let (a, b) = r.split_once('-').unwrap_or((r, r));
                let hex = |x: &str| u32::from_str_radix(x, 16).map_err(|_| bad(Some(n), &format!("range '{r}'")));
                let (a, b) = (hex(a)?, hex(b)?);
                if a > b || v.last().is_some_and(|&(_, last)| last >= a) {
                    return Err(bad(Some(n), &format!("range '{r}' out of order")));
                }
                v.push((a, b));
            }
            Ok(CharRanges(v))
        };
        let hans = ranges(next("hans")?, "hans")?;
        let digits = ranges(next("digits")?, "digits")?;
        let count = |(n, line): (usize, &str), key: &str| -> Result<usize> {
            line.strip_prefix(key)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|r| r.parse().ok())
                .ok_or_else(|| bad(Some(n), &format!("expected '{key} COUNT'")))
        };

        // Readings are interned: some 1,500 distinct syllables serve 190,000 readings.
        let mut syllables: Vec<Box<str>> = Vec::new();
        let mut ids: HashMap<Box<str>, u16> = HashMap::new();
        let mut intern = |s: &str, n: usize| -> Result<u16> {
            if let Some(&id) = ids.get(s) {
                return Ok(id);
            }
            let id = u16::try_from(syllables.len()).map_err(|_| bad(Some(n), "more than 65536 syllables"))?;
            syllables.push(s.into());
            ids.insert(s.into(), id);
            Ok(id)
        };

        let n_chars = count(next("chars")?, "chars")?;
        let mut chars: Vec<(char, u16)> = Vec::with_capacity(n_chars);
        for _ in 0..n_chars {
            let (n, line) = next("the last character")?;
            let mut it = line.chars();
            let (Some(c), Some(' ')) = (it.next(), it.next()) else {
                return Err(bad(Some(n), &format!("expected 'CHARACTER READING', got '{line}'")));
            };
            let reading = it.as_str();
            if reading.is_empty() || reading.contains(' ') {
                return Err(bad(Some(n), &format!("expected 'CHARACTER READING', got '{line}'")));
            }
            if chars.last().is_some_and(|&(prev, _)| prev >= c) {
                return Err(bad(Some(n), "characters out of order"));
            }
            chars.push((c, intern(reading, n)?));
        }

        let n_phrases = count(next("phrases")?, "phrases")?;
        let mut phrase_text = String::new();
        let mut phrases = Vec::with_capacity(n_phrases);
        let mut phrase_readings = Vec::new();
        let mut prev: &str = "";
        for _ in 0..n_phrases {
            let (n, line) = next("the last phrase")?;
            let mut cells = line.split(' ');
            let phrase = cells.next().unwrap_or("");
            if phrase.is_empty() || phrase <= prev {
                return Err(bad(Some(n), "phrases empty or out of order"));
            }
            prev = phrase;
            phrases.push(PhraseEntry {
                text_start: phrase_text.len() as u32,
                readings_start: phrase_readings.len() as u32,
            });
            phrase_text.push_str(phrase);
            // `-` (or nothing, at the end) means the character's own reading.
            for c in phrase.chars() {
                let id = match cells.next() {
                    Some("-") | None => match chars.binary_search_by_key(&c, |&(k, _)| k) {
                        Ok(i) => chars[i].1,
                        Err(_) => return Err(bad(Some(n), &format!("'{c}' has no reading of its own"))),
                    },
                    Some("") => return Err(bad(Some(n), "empty reading")),
                    Some(r) => intern(r, n)?,
                };
                phrase_readings.push(id);
            }
            if cells.next().is_some() {
                return Err(bad(Some(n), "more readings than characters"));
            }
        }
        if let Ok((n, _)) = next("") {
            return Err(bad(Some(n), "text after the last phrase"));
        }
        // Grown by doubling while parsing; give the slack back.
        phrase_text.shrink_to_fit();
        phrase_readings.shrink_to_fit();
        syllables.shrink_to_fit();
        Ok(Pinyin {
            hans,
            digits,
            syllables,
            chars,
            phrase_text,
            phrases,
            phrase_readings,
            source: path.to_path_buf(),
        })
    }

    /// The file this dictionary was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Bytes the loaded tables hold on the heap (what keeping the dictionary loaded costs).
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let ranges = (self.hans.0.capacity() + self.digits.0.capacity()) * size_of::<(u32, u32)>();
        let syllables = self.syllables.capacity() * size_of::<Box<str>>() + self.syllables.iter().map(|s| s.len()).sum::<usize>();
        ranges
            + syllables
            + self.chars.capacity() * size_of::<(char, u16)>()
            + self.phrase_text.capacity()
            + self.phrases.capacity() * size_of::<PhraseEntry>()
            + self.phrase_readings.capacity() * size_of::<u16>()
    }

    /// The units of `text`, in order, as sherpa-onnx's text2token gives them for `units`
    /// (phrase-aware readings of polyphonic characters). An error names the character that has
    /// no reading.
    ///
    /// Like text2token, a run of non-Chinese characters comes back as one unit (`"abc 你好"` →
    /// `["abc ", "n", "ǐ", "h", "ǎo"]` for `Partial`, the `ppinyin` split applied to the run);
    /// the caller decides whether such a unit is a token of its model.
    pub fn tokenize(&self, text: &str, units: PinyinUnits) -> Result<Vec<String>> {
        let mut syllables: Vec<&str> = Vec::new();
        for (run, chinese) in self.runs(text) {
            if !chinese {
                syllables.push(run);
                continue;
            }
            for word in self.cut(run) {
                if let Some(readings) = self.phrase_readings_of(word) {
                    syllables.extend(readings.iter().map(|&id| &*self.syllables[id as usize]));
                    continue;
                }
                for c in word.chars() {
                    match self.chars.binary_search_by_key(&c, |&(k, _)| k) {
                        Ok(i) => syllables.push(&self.syllables[self.chars[i].1 as usize]),
                        Err(_) => bail!(
                            "'{c}' (U+{:04X}) has no pinyin reading in {}: write this phrase as pinyin pieces instead",
                            c as u32,
                            self.source.display()
                        ),
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(syllables.len() * 2);
        for s in syllables {
            match units {
                PinyinUnits::Full => out.push(s.to_string()),
                PinyinUnits::Partial => {
                    let initial = initial_of(s);
                    let final_ = self.finals_tone(s);
                    if initial.is_empty() && final_.is_empty() {
                        out.push(s.to_string());
                    } else {
                        if !initial.is_empty() {
                            out.push(initial.to_string());
                        }
                        if !final_.is_empty() {
                            out.push(final_);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Maximal runs of Chinese / non-Chinese characters (pypinyin's `simple_seg`), with a flag
    /// saying which.
    fn runs<'t>(&self, text: &'t str) -> Vec<(&'t str, bool)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut current: Option<bool> = None;
        for (i, c) in text.char_indices() {
            let chinese = self.hans.contains(c);
            if current.is_some_and(|k| k != chinese) {
                out.push((&text[start..i], current.unwrap_or(false)));
                start = i;
            }
            current = Some(chinese);
        }
        if let Some(k) = current {
            out.push((&text[start..], k));
        }
        out
    }

    /// The text of phrase `i` (entries are contiguous: a phrase ends where the next begins).
    fn phrase(&self, i: usize) -> &str {
        let start = self.phrases[i].text_start as usize;
        let end = self.phrases.get(i + 1).map_or(self.phrase_text.len(), |q| q.text_start as usize);
        &self.phrase_text[start..end]
    }

    /// The index of the first phrase `>= word`, and whether it is `word` itself.
    fn lookup(&self, word: &str) -> (usize, bool) {
        let (mut lo, mut hi) = (0, self.phrases.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.phrase(mid) < word {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (lo, lo < self.phrases.len() && self.phrase(lo) == word)
    }

    /// Whether some phrase starts with `word` (pypinyin's `PrefixSet`), and whether `word` is a
    /// phrase.
    fn prefix_and_phrase(&self, word: &str) -> (bool, bool) {
        let (i, exact) = self.lookup(word);
        // In code-point (= UTF-8 byte) order, the first phrase >= word has word as a prefix if
        // any phrase does.
        (exact || (i < self.phrases.len() && self.phrase(i).starts_with(word)), exact)
    }

    fn phrase_readings_of(&self, word: &str) -> Option<&[u16]> {
        let (i, exact) = self.lookup(word);
        if !exact {
            return None;
        }
        let start = self.phrases[i].readings_start as usize;
        Some(&self.phrase_readings[start..start + word.chars().count()])
    }

    /// Forward maximum matching of a Chinese run over the phrase dictionary, as pypinyin's
    /// `mmseg.Seg(no_non_phrases=True).cut`: extend the word while it is a phrase prefix and
    /// remember the longest phrase seen; when the prefix fails, emit that phrase (or the first
    /// character) and restart after it. If the whole remainder is a prefix but contains no
    /// phrase, pypinyin emits all of it as single characters without re-cutting.
    fn cut<'t>(&self, run: &'t str) -> Vec<&'t str> {
        let mut out = Vec::new();
        let mut remain = run;
        while !remain.is_empty() {
            let mut longest_phrase = 0; // bytes; 0 = none yet
            let mut failed = false;
            for (i, c) in remain.char_indices() {
                let end = i + c.len_utf8();
                let (prefix, phrase) = self.prefix_and_phrase(&remain[..end]);
                if !prefix {
                    failed = true;
                    break;
                }
                if phrase {
                    longest_phrase = end;
                }
            }
            if longest_phrase > 0 {
                out.push(&remain[..longest_phrase]);
                remain = &remain[longest_phrase..];
            } else if failed {
                let first = remain.chars().next().map_or(0, char::len_utf8);
                out.push(&remain[..first]);
                remain = &remain[first..];
            } else {
                out.extend(remain.char_indices().map(|(i, c)| &remain[i..i + c.len_utf8()]));
                remain = "";
            }
        }
        out
    }

    // pypinyin's `to_finals_tone(pinyin, strict=False)`, step for step (style/_tone_convert.py,
    // style/_utils.py). Python's string operations count code points; so do these.

    /// `to_finals_tone`: `tone2_to_tone(to_finals_tone2(p))`.
    fn finals_tone(&self, p: &str) -> String {
        let p = p.replace('5', "");
        tone2_to_tone(&self.tone3_to_tone2(&self.finals_tone3(&p)))
    }

    /// `to_finals_tone3`: the final without tone marks, then the first tone digit.
    fn finals_tone3(&self, p: &str) -> String {
        let p = p.replace('5', "");
        let mut finals = self.finals(&p);
        if finals.is_empty() {
            return finals;
        }
        if let Some(d) = tone_marks_to_numbers(&p).chars().find(|&c| self.digits.contains(c)) {
            finals.push(d);
        }
        finals
    }

    /// `to_finals(strict=False)`: tone marks and digits removed, the initial cut off (the whole
    /// syllable if nothing is left, as for `ń`), `ü` written `v`.
    fn finals(&self, p: &str) -> String {
        let plain = self.strip_digits(&tone_marks_to_numbers(p)).replace('v', "ü");
        let rest = &plain[initial_of(&plain).len()..];
        let finals = if rest.is_empty() { plain.as_str() } else { rest };
        finals.replace('ü', "v")
    }

    /// `tone3_to_tone2`: moves the tone digit from the end to the vowel that carries the mark.
    fn tone3_to_tone2(&self, t3: &str) -> String {
        let plain: Vec<char> = self.strip_digits(t3).replace('ü', "v").chars().collect();
        let Some(number) = t3.chars().find(|&c| self.digits.contains(c)) else {
            return t3.to_string();
        };
        let split = right_mark_index(&plain).map_or(plain.len(), |i| i + 1);
        let mut s: String = plain[..split].iter().collect();
        s.push(number);
        s.extend(&plain[split..]);
        s.replace('ü', "v")
    }

    fn strip_digits(&self, s: &str) -> String {
        s.chars().filter(|&c| !self.digits.contains(c)).collect()
    }
}

/// pypinyin's initials with `strict=False` (y and w count), longest first where it matters
/// (`zh` before `z`), in its order.
const INITIALS: [&str; 23] = [
    "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "zh", "ch", "sh", "r", "z", "c", "s", "y", "w",
];

/// `to_initials(strict=False)`: the first listed initial the syllable starts with.
fn initial_of(s: &str) -> &'static str {
    INITIALS.iter().copied().find(|i| s.starts_with(i)).unwrap_or("")
}

/// pypinyin's `phonetic_symbol` table: tone-marked letter ↔ letter + tone digit.
const TONE_MARKS: [(&str, &str); 35] = [
    ("ā", "a1"), ("á", "a2"), ("ǎ", "a3"), ("à", "a4"),
    ("ē", "e1"), ("é", "e2"), ("ě", "e3"), ("è", "e4"),
    ("ō", "o1"), ("ó", "o2"), ("ǒ", "o3"), ("ò", "o4"),
    ("ī", "i1"), ("í", "i2"), ("ǐ", "i3"), ("ì", "i4"),
    ("ū", "u1"), ("ú", "u2"), ("ǔ", "u3"), ("ù", "u4"),
    ("ü", "v"), ("ǖ", "v1"), ("ǘ", "v2"), ("ǚ", "v3"), ("ǜ", "v4"),
    ("ń", "n2"), ("ň", "n3"), ("ǹ", "n4"),
    ("m\u{304}", "m1"), ("ḿ", "m2"), ("m\u{300}", "m4"),
    ("ê\u{304}", "ê1"), ("ế", "ê2"), ("ê\u{30c}", "ê3"), ("ề", "ê4"),
];

/// `replace_symbol_to_number`: each one-character mark replaced, then the marks written with a
/// combining character (`m̄`, `m̀`, `ê̄`, `ê̌`), in that order.
fn tone_marks_to_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        let single = TONE_MARKS.iter().find(|(mark, _)| {
            let mut m = mark.chars();
            m.next() == Some(c) && m.next().is_none()
        });
        match single {
            Some((_, numbered)) => out.push_str(numbered),
            None => out.push(c),
        }
    }
    for (mark, numbered) in TONE_MARKS.iter().filter(|(mark, _)| mark.chars().count() > 1) {
        if out.contains(mark) {
            out = out.replace(mark, numbered);
        }
    }
    out
}

/// `right_mark_index`: which letter of a toneless syllable carries the tone mark.
fn right_mark_index(p: &[char]) -> Option<usize> {
    let find = |pat: &str| -> Option<usize> {
        let pat: Vec<char> = pat.chars().collect();
        p.windows(pat.len()).position(|w| w == pat.as_slice())
    };
    let first = |c: char| p.iter().position(|&x| x == c);
    // 'iou', 'uei', 'uen' (finals written shortened): the mark goes where it would have been.
    if find("iou").is_some() {
        return first('u');
    }
    if find("uei").is_some() {
        return first('i');
    }
    if find("uen").is_some() {
        return first('u');
    }
    for c in ['a', 'o', 'e'] {
        if let Some(i) = first(c) {
            return Some(i);
        }
    }
    for pair in ["iu", "ui"] {
        if let Some(i) = find(pair) {
            return Some(i + 1);
        }
    }
    ['i', 'u', 'v', 'ü', 'n', 'm', 'ê'].into_iter().find_map(first)
}

/// `tone2_to_tone`: each vowel (or n, m, ê) followed by a tone digit 1–4 becomes the marked
/// letter; `v` is written `ü`.
fn tone2_to_tone(t2: &str) -> String {
    let s: Vec<char> = t2.chars().filter(|&c| c != '5' && c != '0').map(|c| if c == 'ü' { 'v' } else { c }).collect();
    let mut out = String::with_capacity(t2.len() + 2);
    let mut i = 0;
    while i < s.len() {
        if i + 1 < s.len() && "aeoiuvnmêü".contains(s[i]) && ('1'..='5').contains(&s[i + 1]) {
            let pair: String = [s[i], s[i + 1]].iter().collect();
            match TONE_MARKS.iter().find(|(_, numbered)| *numbered == pair) {
                Some((mark, _)) => out.push_str(mark),
                None => out.push_str(&pair),
            }
            i += 2;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out.replace('v', "ü")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small dictionary in the file format, with the real dictionary's readings.
    fn sample() -> Pinyin {
        let mut phrases = vec![
            "快乐",
            "行长 háng zhǎng",
            "重庆 chóng",
            "银行 - háng",
            "长大 zhǎng",
            "音乐 - yuè",
            "音乐会 - yuè huì",
            // Only there to make 大行长 a phrase prefix that contains no phrase.
            "大行长龙",
        ];
        phrases.sort(); // code-point order, as the generator writes them
        let text = format!(
            "# comment\n\
             zipvox-pinyin 1 pypinyin 0.55.0\n\
             hans 3007 4e00-9fff\n\
             digits 30-39 ff10-ff19\n\
             chars 12\n\
             乐 lè\n大 dà\n好 hǎo\n庆 qìng\n快 kuài\n行 xíng\n重 zhòng\n银 yín\n长 cháng\n音 yīn\n鳳 fèng\n龙 lóng\n\
             phrases {}\n{}\n",
            phrases.len(),
            phrases.join("\n")
        );
        Pinyin::parse(&text, Path::new("sample.dict")).unwrap()
    }

    fn partial(d: &Pinyin, text: &str) -> String {
        d.tokenize(text, PinyinUnits::Partial).unwrap().join(" ")
    }

    fn full(d: &Pinyin, text: &str) -> String {
        d.tokenize(text, PinyinUnits::Full).unwrap().join(" ")
    }

    #[test]
    fn phrases_choose_the_polyphone_reading() {
        let d = sample();
        assert_eq!(partial(&d, "银行"), "y ín h áng");
        assert_eq!(partial(&d, "行长"), "h áng zh ǎng");
        assert_eq!(partial(&d, "长大"), "zh ǎng d à");
        assert_eq!(partial(&d, "重庆"), "ch óng q ìng");
        assert_eq!(partial(&d, "行"), "x íng");
        assert_eq!(full(&d, "音乐快乐"), "yīn yuè kuài lè");
        assert_eq!(full(&d, "银行行长"), "yín háng háng zhǎng");
    }

    #[test]
    fn segmentation_is_pypinyins_forward_maximum_matching() {
        let d = sample();
        // The longest phrase wins.
        assert_eq!(d.cut("音乐会"), ["音乐会"]);
        assert_eq!(d.cut("音乐快乐"), ["音乐", "快乐"]);
        // 长 starts 长大 but 长银 starts nothing: 长 alone, then 银行.
        assert_eq!(d.cut("长银行"), ["长", "银行"]);
        assert_eq!(full(&d, "长银行"), "cháng yín háng");
        assert_eq!(d.cut("行长行"), ["行长", "行"]);
        // A remainder that is all phrase prefix but holds no phrase is split into characters
        // without cutting again (so 行长 inside it keeps the characters' readings)…
        assert_eq!(d.cut("大行长"), ["大", "行", "长"]);
        assert_eq!(full(&d, "大行长"), "dà xíng cháng");
        // …while a prefix that fails restarts after the first character.
        assert_eq!(d.cut("大行长好"), ["大", "行长", "好"]);
        assert_eq!(full(&d, "大行长好"), "dà háng zhǎng hǎo");
    }

    #[test]
    fn non_chinese_runs_pass_through_whole() {
        let d = sample();
        assert_eq!(d.tokenize("abc 银行 123", PinyinUnits::Full).unwrap(), ["abc ", "yín", "háng", " 123"]);
        // ppinyin applies the initial/final split to the run, as text2token does.
        assert_eq!(d.tokenize("abc 银行", PinyinUnits::Partial).unwrap(), ["abc ", "y", "ín", "h", "áng"]);
        assert_eq!(partial(&d, "hello"), "h ello");
        assert_eq!(partial(&d, "123"), "123");
        assert_eq!(d.tokenize(" ", PinyinUnits::Partial).unwrap(), [" "]);
        assert!(d.tokenize("", PinyinUnits::Partial).unwrap().is_empty());
        // Outside pypinyin's Chinese ranges a character is not looked up.
        assert_eq!(full(&d, "ア"), "ア");
    }

    #[test]
    fn partial_units_split_like_pypinyin() {
        let d = sample();
        assert_eq!(partial(&d, "zhōng"), "zh ōng");
        assert_eq!(partial(&d, "ài"), "ài");
        assert_eq!(partial(&d, "yīn"), "y īn");
        assert_eq!(partial(&d, "wǒ"), "w ǒ");
        assert_eq!(partial(&d, "lǜ"), "l ǜ");
        assert_eq!(partial(&d, "ń"), "ń");
        assert_eq!(partial(&d, "m\u{300}"), "m m\u{300}"); // sic: pypinyin gives both
        assert_eq!(partial(&d, "ế"), "ế");
        assert_eq!(partial(&d, "er"), "er");
        // Tone digits move to the marked vowel and become marks; other decimal digits move
        // but stay digits.
        assert_eq!(partial(&d, "zhong1"), "zh ōng");
        assert_eq!(partial(&d, "liu2"), "l iú");
        assert_eq!(partial(&d, "b１a"), "b a１");
    }

    #[test]
    fn a_character_without_reading_is_an_error_naming_it() {
        let d = sample();
        let err = d.tokenize("银行丁", PinyinUnits::Partial).unwrap_err().to_string();
        assert!(err.contains("'丁' (U+4E01) has no pinyin reading in sample.dict"), "{err}");
    }

    #[test]
    fn rejects_malformed_dictionaries() {
        let path = Path::new("x.dict");
        let err = |t: &str| Pinyin::parse(t, path).unwrap_err().to_string();
        assert!(err("").contains("x.dict: the file ends before the header"), "{}", err(""));
        assert!(err("zipvox-pinyin 2\n").contains("x.dict:1: header"));
        let head = "zipvox-pinyin 1\nhans 4e00-9fff\ndigits 30-39\n";
        assert!(err("zipvox-pinyin 1\nhans 9fff-4e00\n").contains("x.dict:2: range '9fff-4e00' out of order"));
        assert!(err(&format!("{head}chars 2\n大 dà\n")).contains("ends before the last character"));
        assert!(err(&format!("{head}chars 2\n大 dà\n丁 dīng\nphrases 0\n")).contains("x.dict:6: characters out of order"));
        assert!(err(&format!("{head}chars 1\n大dà\nphrases 0\n")).contains("expected 'CHARACTER READING'"));
        assert!(err(&format!("{head}chars 1\n大 dà\nphrases 1\n大丁\n")).contains("'丁' has no reading"));
        assert!(err(&format!("{head}chars 1\n大 dà\nphrases 1\n大大 - - dà\n")).contains("more readings"));
        assert!(err(&format!("{head}chars 0\nphrases 0\nmore\n")).contains("text after"));
        assert!(Pinyin::parse(&format!("{head}chars 0\nphrases 0\n"), path).is_ok());
    }

    #[test]
    fn default_places_in_search_order() {
        let c = Pinyin::default_candidates();
        let exe_dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
        assert_eq!(c[0], exe_dir.join("../share/zipvox/pinyin.dict"));
        assert_eq!(c[1], Path::new("/usr/share/zipvox/pinyin.dict"));
        assert!(c[2].ends_with("packaging/pinyin.dict") && c[2].is_file(), "{c:?}");
        // Shared between streams and threads once loaded.
        fn shareable<T: Send + Sync>() {}
        shareable::<Pinyin>();
    }

    #[test]
    fn character_ranges() {
        let r = CharRanges(vec![(0x30, 0x39), (0x4e00, 0x9fff)]);
        assert!(r.contains('0') && r.contains('9') && r.contains('一') && r.contains('\u{9fff}'));
        assert!(!r.contains('/') && !r.contains(':') && !r.contains('a') && !r.contains('\u{a000}'));
    }
}
