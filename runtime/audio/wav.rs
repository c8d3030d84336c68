//! WAV input: any channel count, any rate, 8/16/24/32-bit integer PCM or 32-bit float, read
//! with `hound` and converted to mono [`MODEL_SAMPLE_RATE`](super::MODEL_SAMPLE_RATE) through
//! [`MonoConverter`](super::pcm::MonoConverter).
//!
//! 16 kHz mono int16 files come out bit-exact as `i16 / 32768` (what sherpa-onnx feeds its
//! frontend). Multi-channel files are averaged to mono; other rates are resampled by
//! [`StreamResampler`](super::resample::StreamResampler).
//!
//! The file is decoded as a stream ([`stream_wav`]: fixed buffers, the samples go to a callback
//! block by block, so a 10-hour file takes no more memory than a short one); [`read_wav`]
//! collects them, and nothing is preallocated from header values. Every failure
//! is a one-line error naming the input, the problem and, where there is one, the fix.

use std::fs::File;
use std::io::{self, BufReader, Cursor, ErrorKind, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use hound::{SampleFormat, WavReader};

use super::pcm::{
    i16_to_f32, i24_to_f32, i32_to_f32, sanitize_f32, Audio, MonoConverter,
};

/// Bytes read ahead of `hound` to recognise the container and explain header errors.
const SNIFF_BYTES: u64 = 64 * 1024;

/// Interleaved samples decoded per step (rounded down to whole frames).
const DECODE_BLOCK_SAMPLES: usize = 16 * 1024;

/// Suggestion appended to format errors.
const CONVERT_HINT: &str =
    "convert it to 16-bit PCM WAV, e.g. `sox IN -b 16 -e signed-integer OUT.wav`";

/// Reads a WAV file and returns mono [`MODEL_SAMPLE_RATE`](super::MODEL_SAMPLE_RATE) samples.
///
/// Errors name the file: `cannot open x.wav: No such file or directory`,
/// `x.wav: not a WAV file (no RIFF header); …`, `x.wav: empty WAV (no samples)`,
/// `x.wav: truncated WAV data (…)`, `x.wav: unsupported WAV format: 12-bit integer PCM; …`.
pub fn read_wav(path: &Path) -> Result<Audio> {
    let (reader, name) = open_wav(path)?;
    read_wav_from(reader, &name)
}

/// Opens a WAV file for reading; the name is for error messages.
fn open_wav(path: &Path) -> Result<(BufReader<File>, String)> {
    let name = path.display().to_string();
    let meta =
        std::fs::metadata(path).map_err(|e| anyhow!("cannot open {name}: {}", io_msg(&e)))?;
    if meta.is_dir() {
        bail!("{name}: is a directory, not a WAV file");
    }
    let file = File::open(path).map_err(|e| anyhow!("cannot open {name}: {}", io_msg(&e)))?;
    Ok((BufReader::with_capacity(64 * 1024, file), name))
}

/// Reads a WAV stream (a file, stdin, a byte slice) to its declared end. `what` names the input
/// in error messages.
pub fn read_wav_from(reader: impl Read, what: &str) -> Result<Audio> {
    let mut samples = Vec::new();
    let spec = stream_wav_from(reader, what, &mut |block| {
        samples.extend_from_slice(block);
        Ok(())
    })?;
    Ok(Audio {
        samples,
        source_rate: spec.sample_rate,
        source_channels: spec.channels,
    })
}

/// Streams a WAV file: as [`stream_wav_from`] on the opened file.
pub fn stream_wav(path: &Path, sink: &mut dyn FnMut(&[f32]) -> Result<()>) -> Result<hound::WavSpec> {
    let (reader, name) = open_wav(path)?;
    stream_wav_from(reader, &name, sink)
}

/// Decodes a WAV stream block by block, handing mono [`MODEL_SAMPLE_RATE`](super::MODEL_SAMPLE_RATE) samples to `sink`
/// as they are ready; nothing is kept, so memory is fixed whatever the file's length. Errors
/// from `sink` end the stream and are returned unchanged. Returns the file's format.
pub fn stream_wav_from(
    mut reader: impl Read,
    what: &str,
    sink: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<hound::WavSpec> {
    let mut head = Vec::new();
    (&mut reader)
        .take(SNIFF_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| anyhow!("{what}: read error: {}", io_msg(&e)))?;
    sniff(&head, what)?;

    let mut wav = WavReader::new(Cursor::new(&head[..]).chain(reader))
        .map_err(|e| header_error(e, &head, what))?;
    let spec = wav.spec();

    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, 8 | 16 | 24 | 32) | (SampleFormat::Float, 32) => {}
        (SampleFormat::Int, bits) => {
            bail!("{what}: unsupported WAV format: {bits}-bit integer PCM; {CONVERT_HINT}")
        }
        (SampleFormat::Float, bits) => {
            bail!("{what}: unsupported WAV format: {bits}-bit float; {CONVERT_HINT}")
        }
    }
    if spec.sample_rate == 0 {
        bail!("{what}: invalid WAV header: sample rate 0 Hz");
    }
    let mut conv =
        MonoConverter::new(spec.sample_rate, spec.channels).map_err(|e| anyhow!("{what}: {e}"))?;

    let total = u64::from(wav.len());
    if total == 0 {
        bail!("{what}: empty WAV (no samples)");
    }
    let mut dec = Decoder {
        conv: &mut conv,
        out: Vec::with_capacity(DECODE_BLOCK_SAMPLES),
        sink,
        block: (DECODE_BLOCK_SAMPLES / usize::from(spec.channels)).max(1)
            * usize::from(spec.channels),
        total,
        bits: spec.bits_per_sample,
        what,
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Int, 8) => dec.run(&mut wav, |v: i8| f32::from(v) / 128.0)?,
        (SampleFormat::Int, 16) => dec.run(&mut wav, i16_to_f32)?,
        (SampleFormat::Int, 24) => dec.run(&mut wav, i24_to_f32)?,
        (SampleFormat::Int, _) => dec.run(&mut wav, i32_to_f32)?,
        (SampleFormat::Float, _) => dec.run(&mut wav, sanitize_f32)?,
    }
    let mut out = std::mem::take(&mut dec.out);
    out.clear();
    conv.finish(&mut out);
    if !out.is_empty() {
        sink(&out)?;
    }
    Ok(spec)
}

/// Pulls samples of one type out of hound in blocks and feeds them to the converter.
struct Decoder<'a> {
    conv: &'a mut MonoConverter,
    /// Converter output of one block, handed to `sink` and cleared.
    out: Vec<f32>,
    sink: &'a mut dyn FnMut(&[f32]) -> Result<()>,
    block: usize,
    total: u64,
    bits: u16,
    what: &'a str,
}

impl Decoder<'_> {
    fn run<R: Read, S: hound::Sample>(
        &mut self,
        wav: &mut WavReader<R>,
        to_f32: impl Fn(S) -> f32,
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(self.block);
        for (read, sample) in wav.samples::<S>().enumerate() {
            match sample {
                Ok(v) => buf.push(to_f32(v)),
                Err(e) => return Err(self.sample_error(e, read as u64)),
            }
            if buf.len() == self.block {
                self.deliver(&buf)?;
                buf.clear();
            }
        }
        self.deliver(&buf)
    }

    fn deliver(&mut self, block: &[f32]) -> Result<()> {
        self.out.clear();
        self.conv.push(block, &mut self.out);
        if self.out.is_empty() {
            return Ok(());
        }
        (self.sink)(&self.out)
    }

    fn sample_error(&self, e: hound::Error, read: u64) -> anyhow::Error {
        let what = self.what;
        match e {
            hound::Error::IoError(io) if is_eof(&io) => anyhow!(
                "{what}: truncated WAV data (header declares {} samples, file ends after {read}); \
                 the file is incomplete or its header is wrong (`sox --ignore-length IN OUT.wav` \
                 rewrites it)",
                self.total
            ),
            hound::Error::IoError(io) => {
                anyhow!("{what}: read error after {read} samples: {}", io_msg(&io))
            }
            hound::Error::Unsupported
            | hound::Error::TooWide
            | hound::Error::InvalidSampleFormat => {
                anyhow!(
                    "{what}: unsupported WAV format: {}-bit samples in this container size; {CONVERT_HINT}",
                    self.bits
                )
            }
            other => anyhow!("{what}: cannot decode WAV samples: {other}"),
        }
    }
}

/// Recognises the container from its first bytes, so that a non-WAV input gets a plain answer.
fn sniff(head: &[u8], what: &str) -> Result<()> {
    if head.is_empty() {
        bail!("{what}: empty file (0 bytes); expected a WAV file");
    }
    if !head.starts_with(b"RIFF") {
        if b"RIFF".starts_with(head) {
            bail!(
                "{what}: truncated WAV header (file is only {} bytes)",
                head.len()
            );
        }
        let looks = if head.starts_with(b"RIFX") {
            "; it is big-endian RIFX WAV"
        } else if head.starts_with(b"RF64") || head.starts_with(b"BW64") {
            "; it is RF64/BW64 (64-bit WAV)"
        } else if head.starts_with(b"fLaC") {
            "; it looks like FLAC"
        } else if head.starts_with(b"OggS") {
            "; it looks like Ogg"
        } else if head.starts_with(b"ID3")
            || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0)
        {
            "; it looks like MP3"
        } else if head.starts_with(b"FORM") {
            "; it looks like AIFF"
        } else if head.starts_with(b".snd") {
            "; it looks like Sun/NeXT AU"
        } else {
            ""
        };
        bail!(
            "{what}: not a WAV file (no RIFF header{looks}); zipvox reads PCM or float WAV \
             (convert with e.g. `sox IN -r 16000 -c 1 -b 16 OUT.wav`)"
        );
    }
    if head.len() < 12 {
        bail!(
            "{what}: truncated WAV header (file is only {} bytes)",
            head.len()
        );
    }
    if &head[8..12] != b"WAVE" {
        bail!(
            "{what}: not a WAV file (RIFF type is '{}', not 'WAVE')",
            String::from_utf8_lossy(&head[8..12]).escape_default()
        );
    }
    Ok(())
}

/// What the `fmt ` chunk says, parsed independently of hound for error messages.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FmtInfo {
    /// Format tag; for WAVE_FORMAT_EXTENSIBLE the tag inside the SubFormat GUID.
    tag: u16,
    channels: u16,
    bits: u16,
}

/// Finds and parses the `fmt ` chunk in the sniffed head of the file.
fn scan_fmt(head: &[u8]) -> Option<FmtInfo> {
    let u16_at = |p: usize| head.get(p..p + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |p: usize| {
        head.get(p..p + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let mut pos = 12usize;
    while let (Some(id), Some(len)) = (head.get(pos..pos + 4), u32_at(pos + 4)) {
        let body = pos + 8;
        if id == b"fmt " {
            let mut info = FmtInfo {
                tag: u16_at(body)?,
                channels: u16_at(body + 2)?,
                bits: u16_at(body + 14)?,
            };
            if info.tag == 0xfffe && len >= 40 {
                let valid_bits = u16_at(body + 18)?;
                if valid_bits > 0 {
                    info.bits = valid_bits;
                }
                info.tag = u16_at(body + 24)?;
            }
            return Some(info);
        }
        if id == b"data" {
            return None;
        }
        pos = body.checked_add(usize::try_from(len).ok()?)?;
    }
    None
}

fn encoding_name(tag: u16) -> &'static str {
    match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MP3",
        0x0161..=0x0163 => "WMA",
        0x00ff | 0x1610 => "AAC",
        _ => "an unknown encoding",
    }
}

/// Explains a `hound` error raised while parsing the header.
fn header_error(e: hound::Error, head: &[u8], what: &str) -> anyhow::Error {
    if let hound::Error::IoError(io) = &e {
        return if is_eof(io) {
            anyhow!(
                "{what}: truncated WAV header (file ends before the audio data); \
                 the file is incomplete or damaged"
            )
        } else {
            anyhow!("{what}: read error: {}", io_msg(io))
        };
    }
    if let Some(f) = scan_fmt(head) {
        if f.channels == 0 {
            return anyhow!("{what}: invalid WAV header: 0 channels");
        }
        match f.tag {
            0x0001 if !matches!(f.bits, 8 | 16 | 24 | 32) => {
                return anyhow!(
                    "{what}: unsupported WAV format: {}-bit integer PCM; {CONVERT_HINT}",
                    f.bits
                )
            }
            0x0003 if f.bits != 32 => {
                return anyhow!(
                    "{what}: unsupported WAV format: {}-bit float; {CONVERT_HINT}",
                    f.bits
                )
            }
            0x0001 | 0x0003 => {}
            tag => {
                return anyhow!(
                    "{what}: unsupported WAV encoding: {} (format tag 0x{tag:04x}); zipvox reads \
                     PCM or float WAV; {CONVERT_HINT}",
                    encoding_name(tag)
                )
            }
        }
    }
    match e {
        hound::Error::FormatError(reason) => {
            anyhow!("{what}: malformed WAV header ({reason}); {CONVERT_HINT}")
        }
        hound::Error::Unsupported => anyhow!(
            "{what}: unsupported WAV encoding; zipvox reads 8/16/24/32-bit integer PCM or 32-bit \
             float WAV; {CONVERT_HINT}"
        ),
        other => anyhow!("{what}: cannot read WAV header: {other}"),
    }
}

/// hound reports a short read as `ErrorKind::Other` "Failed to read enough bytes."
fn is_eof(e: &io::Error) -> bool {
    e.kind() == ErrorKind::UnexpectedEof
        || (e.kind() == ErrorKind::Other && e.to_string().contains("read enough bytes"))
}

/// An `io::Error` as a short sentence, without the "(os error N)" suffix.
fn io_msg(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt_chunk(tag: u16, channels: u16, bits: u16) -> Vec<u8> {
        let mut v = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".to_vec();
        let block = channels * bits.div_ceil(8);
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&channels.to_le_bytes());
        v.extend_from_slice(&16_000u32.to_le_bytes());
        v.extend_from_slice(&(16_000 * u32::from(block)).to_le_bytes());
        v.extend_from_slice(&block.to_le_bytes());
        v.extend_from_slice(&bits.to_le_bytes());
        v
    }

    #[test]
    fn scan_fmt_reads_the_header() {
        let h = fmt_chunk(1, 2, 12);
        assert_eq!(
            scan_fmt(&h),
            Some(FmtInfo {
                tag: 1,
                channels: 2,
                bits: 12
            })
        );
        assert_eq!(scan_fmt(&h[..20]), None);
        assert_eq!(scan_fmt(b"RIFF"), None);
    }

    #[test]
    fn io_messages_are_short() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(io_msg(&e), "No such file or directory");
    }

    #[test]
    fn sniff_names_other_containers() {
        let e = sniff(b"fLaC\0\0\0\0", "a.flac").unwrap_err().to_string();
        assert!(e.contains("FLAC") && e.contains("a.flac"), "{e}");
        let e = sniff(b"RIFF\0\0\0\0AVI ", "a.avi").unwrap_err().to_string();
        assert!(e.contains("'AVI '"), "{e}");
        let e = sniff(b"RI", "t.wav").unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
    }
}
