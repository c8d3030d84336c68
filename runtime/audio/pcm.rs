//! PCM sample conversions, channel downmix, the mono/16 kHz conversion pipeline and raw
//! 16-bit little-endian input.
//!
//! Integer samples are scaled exactly like sherpa-onnx (and kaldi-native-fbank's callers):
//! `i16 as f32 / 32768.0`, so 16 kHz mono int16 input reaches the frontend bit-exact. The other
//! widths use the matching power of two: 8-bit unsigned `(u8 - 128) / 128`, 24-bit `/ 2^23`,
//! 32-bit `/ 2^31`. Float input is passed through, with non-finite values replaced by 0 and the
//! rest clamped to [-1, 1].

use std::io::{ErrorKind, Read};

use anyhow::{anyhow, bail, Result};

use super::resample::StreamResampler;

/// The sample rate every zipvox model consumes.
pub const MODEL_SAMPLE_RATE: u32 = 16_000;

/// Frames handed to the resampler per step by [`MonoConverter`], which bounds its scratch
/// buffers whatever the caller passes in.
const CONVERT_BLOCK_FRAMES: usize = 4096;

/// Decoded offline audio: mono samples at [`MODEL_SAMPLE_RATE`], nominally in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Mono samples at [`MODEL_SAMPLE_RATE`].
    pub samples: Vec<f32>,
    /// Sample rate of the source before resampling.
    pub source_rate: u32,
    /// Channel count of the source before downmixing.
    pub source_channels: u16,
}

impl Audio {
    /// Duration of `samples` in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / f64::from(MODEL_SAMPLE_RATE)
    }
}

/// int16 → f32 exactly as sherpa-onnx does it (`x / 32768`).
#[inline]
pub fn i16_to_f32(x: i16) -> f32 {
    f32::from(x) / 32_768.0
}

/// Unsigned 8-bit WAV sample → f32: `(x - 128) / 128`.
#[inline]
pub fn u8_to_f32(x: u8) -> f32 {
    (i32::from(x) - 128) as f32 / 128.0
}

/// Sign-extended 24-bit sample → f32: `x / 2^23`.
#[inline]
pub fn i24_to_f32(x: i32) -> f32 {
    x as f32 / 8_388_608.0
}

/// 32-bit integer sample → f32: `x / 2^31`.
#[inline]
pub fn i32_to_f32(x: i32) -> f32 {
    x as f32 / 2_147_483_648.0
}

/// Float sample → f32 in [-1, 1]: NaN and infinities become 0, the rest is clamped.
#[inline]
pub fn sanitize_f32(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

/// Appends the samples of 16-bit little-endian signed PCM `bytes` to `out` (interleaving kept).
/// A trailing odd byte is ignored; callers that care check `bytes.len()` first.
pub fn s16le_to_f32(bytes: &[u8], out: &mut Vec<f32>) {
    out.reserve(bytes.len() / 2);
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|b| i16_to_f32(i16::from_le_bytes([b[0], b[1]]))),
    );
}

/// Appends the samples of little-endian integer PCM `bytes` of `width` bytes per sample to `out`
/// (interleaving kept): 1 = unsigned 8-bit (as in WAV), 2 = s16, 3 = s24, 4 = s32, scaled as
/// the WAV reader scales them. A trailing incomplete sample is ignored; other widths append
/// nothing (callers validate the width first).
pub fn le_pcm_to_f32(bytes: &[u8], width: usize, out: &mut Vec<f32>) {
    match width {
        1 => out.extend(bytes.iter().map(|&b| u8_to_f32(b))),
        2 => s16le_to_f32(bytes, out),
        3 => out.extend(bytes.chunks_exact(3).map(|b| i24_to_f32(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8))),
        4 => out.extend(bytes.chunks_exact(4).map(|b| i32_to_f32(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))),
        _ => {}
    }
}

/// Downmixes interleaved `input` with `channels` channels to mono by averaging the channels of
/// each frame, appending one sample per frame to `out`.
///
/// Mono input is copied unchanged (bit-exact). A trailing incomplete frame is ignored, and
/// `channels == 0` appends nothing. Scalar on purpose: a SIMD variant can replace the body
/// without changing the contract.
pub fn downmix_interleaved(input: &[f32], channels: usize, out: &mut Vec<f32>) {
    match channels {
        0 => {}
        1 => out.extend_from_slice(input),
        2 => {
            out.reserve(input.len() / 2);
            out.extend(input.chunks_exact(2).map(|f| (f[0] + f[1]) * 0.5));
        }
        n => {
            let scale = 1.0 / n as f32;
            out.reserve(input.len() / n);
            out.extend(input.chunks_exact(n).map(|f| f.iter().sum::<f32>() * scale));
        }
    }
}

/// Interleaved audio of any channel count and rate in, mono audio at the output rate
/// ([`MODEL_SAMPLE_RATE`] unless built with [`MonoConverter::with_output_rate`]) out.
///
/// Downmix, then [`StreamResampler`]. Input may be pushed in pieces of any length, even ones
/// that split a frame: the partial frame is kept until the next [`push`](Self::push). All
/// internal buffers have a fixed size, whatever the size of the pieces.
#[derive(Debug)]
pub struct MonoConverter {
    channels: usize,
    resampler: StreamResampler,
    /// Samples of a frame split across two `push` calls (always fewer than `channels`).
    partial: Vec<f32>,
    /// Downmix scratch, at most `CONVERT_BLOCK_FRAMES` long.
    mono: Vec<f32>,
}

impl MonoConverter {
    /// A converter from `channels` channels at `rate` Hz to mono [`MODEL_SAMPLE_RATE`].
    pub fn new(rate: u32, channels: u16) -> Result<Self> {
        Self::with_output_rate(rate, channels, MODEL_SAMPLE_RATE)
    }

    /// A converter from `channels` channels at `rate` Hz to mono `out_rate` Hz.
    pub fn with_output_rate(rate: u32, channels: u16, out_rate: u32) -> Result<Self> {
        if channels == 0 {
            bail!("invalid channel count 0 (need at least 1)");
        }
        let channels = usize::from(channels);
        Ok(Self {
            channels,
            resampler: StreamResampler::new(rate, out_rate)?,
            partial: Vec::with_capacity(channels),
            mono: Vec::with_capacity(CONVERT_BLOCK_FRAMES),
        })
    }

    /// Converts interleaved `input`, appending finished mono samples to `out`.
    pub fn push(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
        let ch = self.channels;
        if !self.partial.is_empty() {
            let need = (ch - self.partial.len()).min(input.len());
            self.partial.extend_from_slice(&input[..need]);
            input = &input[need..];
            if self.partial.len() < ch {
                return;
            }
            self.mono.clear();
            downmix_interleaved(&self.partial, ch, &mut self.mono);
            self.partial.clear();
            self.resampler.process(&self.mono, out);
        }
        let whole = input.len() / ch * ch;
        let (frames, rest) = input.split_at(whole);
        for block in frames.chunks(CONVERT_BLOCK_FRAMES * ch) {
            if ch == 1 {
                self.resampler.process(block, out);
            } else {
                self.mono.clear();
                downmix_interleaved(block, ch, &mut self.mono);
                self.resampler.process(&self.mono, out);
            }
        }
        self.partial.extend_from_slice(rest);
    }

    /// Ends the stream: drains the resampler so that the total output is exactly
    /// `round(frames_in * out_rate / in_rate)` samples, and resets for a new stream.
    /// Returns the number of samples of an incomplete last frame that were dropped.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> usize {
        let dropped = self.partial.len();
        self.partial.clear();
        self.resampler.flush(out);
        dropped
    }

    /// The resampler's delay in output samples (0 when no resampling is needed).
    pub fn delay(&self) -> usize {
        self.resampler.delay()
    }

    /// Number of input channels.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Reads raw 16-bit little-endian signed PCM (e.g. stdin) with the given `rate` and `channels`
/// to the end, and returns it as mono [`MODEL_SAMPLE_RATE`] audio.
///
/// `what` names the input in error messages (e.g. `"stdin"`). An input that is empty, has an
/// odd byte count or ends in the middle of a frame is an error.
pub fn read_raw_s16le(reader: impl Read, rate: u32, channels: u16, what: &str) -> Result<Audio> {
    let mut samples = Vec::new();
    stream_raw_s16le(reader, rate, channels, what, &mut |block| {
        samples.extend_from_slice(block);
        Ok(())
    })?;
    Ok(Audio {
        samples,
        source_rate: rate,
        source_channels: channels,
    })
}

/// Bytes read from a raw PCM stream per `read` call.
const RAW_READ_BYTES: usize = 16 * 1024;

/// As [`read_raw_s16le`], but hands the mono 16 kHz samples to `sink` as they become ready
/// (after every `read` that completes a frame, so a pipe's audio is not held back) and keeps
/// nothing: memory is fixed however long the input. Errors from `sink` end the stream and are
/// returned as they are; the input's own errors are the same one-liners as
/// [`read_raw_s16le`]'s (an error at the end comes after all complete frames were delivered).
pub fn stream_raw_s16le(
    mut reader: impl Read,
    rate: u32,
    channels: u16,
    what: &str,
    sink: &mut dyn FnMut(&[f32]) -> Result<()>,
) -> Result<()> {
    if channels == 0 {
        bail!("{what}: raw PCM needs a channel count of at least 1 (got 0)");
    }
    let mut conv = MonoConverter::new(rate, channels).map_err(|e| anyhow!("{what}: {e}"))?;

    // The converter keeps a frame split across reads itself; only an odd byte is carried here.
    let mut buf = vec![0u8; RAW_READ_BYTES + 1];
    let mut carry = 0usize;
    let mut total_bytes = 0u64;
    let mut scratch: Vec<f32> = Vec::with_capacity(RAW_READ_BYTES / 2);
    let mut out: Vec<f32> = Vec::with_capacity(RAW_READ_BYTES);
    loop {
        let n = match reader.read(&mut buf[carry..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => bail!("{what}: read error after {total_bytes} bytes: {e}"),
        };
        total_bytes += n as u64;
        let filled = carry + n;
        let even = filled / 2 * 2;
        scratch.clear();
        s16le_to_f32(&buf[..even], &mut scratch);
        out.clear();
        conv.push(&scratch, &mut out);
        if !out.is_empty() {
            sink(&out)?;
        }
        carry = filled - even;
        if carry == 1 {
            buf[0] = buf[even];
        }
    }

    if total_bytes == 0 {
        bail!("{what}: empty input (no samples); expected raw 16-bit little-endian PCM");
    }
    if total_bytes % 2 == 1 {
        bail!(
            "{what}: odd number of bytes ({total_bytes}) in raw 16-bit PCM (2 bytes per sample); \
             the input is truncated or not s16le"
        );
    }
    out.clear();
    if conv.finish(&mut out) != 0 {
        bail!(
            "{what}: raw PCM ends mid-frame: {} samples is not a multiple of {channels} channels; \
             check the channel count",
            total_bytes / 2
        );
    }
    if !out.is_empty() {
        sink(&out)?;
    }
    Ok(())
}

/// A pipe (stdin) whose writer pauses is read as a live microphone would deliver it: after
/// [`STALL_SECONDS`] without data, the time that passes comes out as silence, up to
/// [`MAX_STALL_SILENCE_SECONDS`] per pause, so that the endpoint after the last words fires and
/// their final is printed while the writer waits (`(cat clip.raw; sleep 6) | zipvox transcribe -`).
/// Silence is only inserted between whole frames, so channels never shift.
pub struct StallAsSilence<R> {
    inner: R,
    frame_bytes: usize,
    bytes_per_second: usize,
    /// Bytes handed out, to know when a frame boundary is reached.
    total: u64,
    /// Silence bytes inserted during the current pause.
    inserted: usize,
}

/// Seconds without input after which a pause is filled with silence.
pub const STALL_SECONDS: f32 = 0.5;
/// Most silence inserted per pause (covers rule 2's 1.2 s and rule 1's 2.4 s).
pub const MAX_STALL_SILENCE_SECONDS: f32 = 3.0;

impl<R: Read + std::os::fd::AsFd> StallAsSilence<R> {
    pub fn new(inner: R, rate: u32, channels: u16) -> Self {
        let frame_bytes = 2 * usize::from(channels.max(1));
        StallAsSilence { inner, frame_bytes, bytes_per_second: rate as usize * frame_bytes, total: 0, inserted: 0 }
    }
}

impl<R: Read + std::os::fd::AsFd> Read for StallAsSilence<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let max_insert = (MAX_STALL_SILENCE_SECONDS * self.bytes_per_second as f32) as usize;
        let aligned = self.total % self.frame_bytes as u64 == 0;
        if aligned && self.inserted < max_insert && !buf.is_empty() {
            let ms = (STALL_SECONDS * 1000.0) as u16;
            let mut fds = [PollFd::new(self.inner.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => {
                    // Stalled: the pause comes out as silence, whole frames only.
                    let want = (STALL_SECONDS * self.bytes_per_second as f32) as usize;
                    let n = want.min(max_insert - self.inserted).min(buf.len()) / self.frame_bytes * self.frame_bytes;
                    if n > 0 {
                        buf[..n].fill(0);
                        self.inserted += n;
                        self.total += n as u64;
                        return Ok(n);
                    }
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return Err(std::io::ErrorKind::Interrupted.into()),
                // Not pollable (a regular file redirected to stdin): plain reads.
                Err(_) => self.inserted = max_insert,
            }
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.inserted = 0;
        }
        self.total += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_pcm_of_every_width() {
        let mut out = vec![];
        le_pcm_to_f32(&[0, 128, 255], 1, &mut out);
        assert_eq!(out, [-1.0, 0.0, 127.0 / 128.0]);
        out.clear();
        le_pcm_to_f32(&[0x00, 0x40, 0x00, 0x80, 0x01], 2, &mut out);
        assert_eq!(out, [0.5, -1.0]);
        out.clear();
        le_pcm_to_f32(&[0x00, 0x00, 0x80, 0x00, 0x00, 0x40], 3, &mut out);
        assert_eq!(out, [-1.0, 0.5]);
        out.clear();
        le_pcm_to_f32(&[0, 0, 0, 0x80, 0, 0, 0, 0x40, 7], 4, &mut out);
        assert_eq!(out, [-1.0, 0.5]);
        out.clear();
        le_pcm_to_f32(&[1, 2, 3], 5, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn conversions_match_sherpa_scaling() {
        assert_eq!(i16_to_f32(i16::MIN), -1.0);
        assert_eq!(i16_to_f32(16_384), 0.5);
        assert_eq!(i16_to_f32(1), 1.0 / 32_768.0);
        assert_eq!(u8_to_f32(0), -1.0);
        assert_eq!(u8_to_f32(128), 0.0);
        assert_eq!(u8_to_f32(255), 127.0 / 128.0);
        assert_eq!(i24_to_f32(-8_388_608), -1.0);
        assert_eq!(i32_to_f32(i32::MIN), -1.0);
        assert_eq!(sanitize_f32(f32::NAN), 0.0);
        assert_eq!(sanitize_f32(f32::INFINITY), 0.0);
        assert_eq!(sanitize_f32(2.0), 1.0);
        assert_eq!(sanitize_f32(-0.25), -0.25);
        for x in [i16::MIN, -1, 0, 1, 12_345, i16::MAX] {
            assert_eq!(i16_to_f32(x).to_bits(), (x as f32 / 32768.0).to_bits());
        }
    }

    #[test]
    fn s16le_bytes() {
        let mut out = Vec::new();
        s16le_to_f32(&[0x00, 0x80, 0xff, 0x7f, 0x01, 0x00, 0x42], &mut out);
        assert_eq!(out, vec![-1.0, 32_767.0 / 32_768.0, 1.0 / 32_768.0]);
    }

    #[test]
    fn downmix() {
        let mut out = Vec::new();
        downmix_interleaved(&[1.0, 0.0, 0.5, 0.5, -1.0], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.5]);
        out.clear();
        downmix_interleaved(&[0.3, 0.6, 0.9, 0.0, 0.0, 0.3], 3, &mut out);
        assert!((out[0] - 0.6).abs() < 1e-6 && (out[1] - 0.1).abs() < 1e-6);
        out.clear();
        downmix_interleaved(&[0.25, -0.5], 1, &mut out);
        assert_eq!(out, vec![0.25, -0.5]);
        out.clear();
        downmix_interleaved(&[0.25, -0.5], 0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn converter_handles_split_frames() {
        let data: Vec<f32> = (0..3000).map(|i| (i % 17) as f32 / 17.0 - 0.5).collect();
        let mut whole = Vec::new();
        let mut c = MonoConverter::new(16_000, 3).unwrap();
        c.push(&data, &mut whole);
        assert_eq!(c.finish(&mut whole), 0);
        assert_eq!(whole.len(), 1000);

        let mut pieces = Vec::new();
        let mut c = MonoConverter::new(16_000, 3).unwrap();
        for piece in data.chunks(7) {
            c.push(piece, &mut pieces);
        }
        c.push(&[0.1], &mut pieces);
        assert_eq!(c.finish(&mut pieces), 1);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn converter_rejects_zero_channels() {
        assert!(MonoConverter::new(16_000, 0).is_err());
    }
}
