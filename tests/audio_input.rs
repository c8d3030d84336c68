//! Offline audio input: WAV decoding of every supported layout, downmix, resampling quality and
//! length, bit-exactness against the shared test WAVs, raw s16le input, and every error path
//! (including a small fuzz run that must never panic).
//!
//! All WAVs are generated at test time in a temp dir; the shared dir is `$ZIPVOX_SHARED` or
//! `<crate>/../shared`.

use std::f64::consts::PI;
use std::path::{Path, PathBuf};

use hound::{SampleFormat, WavSpec, WavWriter};
use zipvox::audio::resample::resampled_len;
use zipvox::audio::{
    read_raw_s16le, read_wav, read_wav_from, Audio, StreamResampler, MODEL_SAMPLE_RATE,
};

fn shared_dir() -> PathBuf {
    match std::env::var_os("ZIPVOX_SHARED") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    }
}

fn spec(channels: u16, rate: u32, bits: u16, format: SampleFormat) -> WavSpec {
    WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: format,
    }
}

fn write_wav<S: hound::Sample + Copy>(path: &Path, spec: WavSpec, samples: &[S]) {
    let mut w = WavWriter::create(path, spec).unwrap();
    for &s in samples {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

fn wav_bytes<S: hound::Sample + Copy>(spec: WavSpec, samples: &[S]) -> Vec<u8> {
    let mut cur = std::io::Cursor::new(Vec::new());
    {
        let mut w = WavWriter::new(&mut cur, spec).unwrap();
        for &s in samples {
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
    }
    cur.into_inner()
}

fn err_of(r: anyhow::Result<Audio>) -> String {
    match r {
        Ok(a) => panic!("expected an error, got {} samples", a.samples.len()),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_err(r: anyhow::Result<Audio>, needles: &[&str]) -> String {
    let msg = err_of(r);
    for n in needles {
        assert!(msg.contains(n), "error {msg:?} should contain {n:?}");
    }
    assert!(!msg.contains('\n'), "error should be one line: {msg:?}");
    msg
}

/// `amp * sin(2π f t)` sampled at `rate`.
fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f64> {
    (0..n)
        .map(|i| amp * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin())
        .collect()
}

/// Amplitude and phase of the `freq` component of `x` (sampled at `rate`) over `range`,
/// by correlation with a reference sine and cosine.
fn tone(x: &[f32], rate: u32, freq: f64, range: std::ops::Range<usize>) -> (f64, f64) {
    let (mut s, mut c) = (0.0, 0.0);
    let n = range.len() as f64;
    for i in range {
        let w = 2.0 * PI * freq * i as f64 / f64::from(rate);
        s += f64::from(x[i]) * w.sin();
        c += f64::from(x[i]) * w.cos();
    }
    let (s, c) = (2.0 * s / n, 2.0 * c / n);
    ((s * s + c * c).sqrt(), c.atan2(s))
}

/// Data chunk of a canonical PCM WAV, parsed by hand (independently of hound).
fn raw_i16_samples(bytes: &[u8]) -> Vec<i16> {
    assert_eq!(&bytes[..4], b"RIFF");
    let mut pos = 12;
    loop {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            return bytes[pos + 8..pos + 8 + len]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
        }
        pos += 8 + len + (len & 1);
    }
}

#[test]
fn shared_16k_mono_int16_is_bit_exact() {
    let dir = shared_dir();
    let mut files: Vec<PathBuf> = [
        "models/zipformer2-en-gigaspeech-3.3m/test_wavs/0.wav",
        "models/zipformer2-en-gigaspeech-3.3m/test_wavs/1.wav",
    ]
    .iter()
    .map(|p| dir.join(p))
    .collect();
    let mut dev: Vec<PathBuf> = std::fs::read_dir(dir.join("audio/dev/wav"))
        .unwrap_or_else(|e| panic!("shared dir {} (set ZIPVOX_SHARED): {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    dev.sort();
    files.extend(dev.into_iter().take(3));
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let raw = raw_i16_samples(&bytes);
        let audio = read_wav(&path).unwrap();
        assert_eq!(
            (audio.source_rate, audio.source_channels),
            (16_000, 1),
            "{}",
            path.display()
        );
        assert_eq!(audio.samples.len(), raw.len(), "{}", path.display());
        for (i, (&got, &x)) in audio.samples.iter().zip(&raw).enumerate() {
            assert_eq!(
                got.to_bits(),
                (x as f32 / 32768.0).to_bits(),
                "{} sample {i}",
                path.display()
            );
        }
        // Same through the generic reader.
        let again = read_wav_from(&bytes[..], "bytes").unwrap();
        assert_eq!(again, audio);
    }
}

#[test]
fn every_bit_depth_and_float() {
    let dir = tempfile::tempdir().unwrap();

    let p = dir.path().join("u8.wav");
    let v8: Vec<i8> = vec![-128, -1, 0, 1, 64, 127];
    write_wav(&p, spec(1, 16_000, 8, SampleFormat::Int), &v8);
    let a = read_wav(&p).unwrap();
    let want: Vec<f32> = v8.iter().map(|&x| f32::from(x) / 128.0).collect();
    assert_eq!(a.samples, want);
    // And check the on-disk byte really is unsigned: (u8 - 128) / 128.
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[bytes.len() - 6..], &[0, 127, 128, 129, 192, 255]);

    let p = dir.path().join("s16.wav");
    let v16: Vec<i16> = vec![i16::MIN, -12_345, -1, 0, 1, 12_345, i16::MAX];
    write_wav(&p, spec(1, 16_000, 16, SampleFormat::Int), &v16);
    let a = read_wav(&p).unwrap();
    let want: Vec<f32> = v16.iter().map(|&x| x as f32 / 32768.0).collect();
    assert_eq!(a.samples, want);

    let p = dir.path().join("s24.wav");
    let v24: Vec<i32> = vec![-8_388_608, -4_194_304, -1, 0, 1, 4_194_304, 8_388_607];
    write_wav(&p, spec(1, 16_000, 24, SampleFormat::Int), &v24);
    let a = read_wav(&p).unwrap();
    let want: Vec<f32> = v24.iter().map(|&x| x as f32 / 8_388_608.0).collect();
    assert_eq!(a.samples, want);
    assert_eq!(a.samples[1], -0.5);

    let p = dir.path().join("s32.wav");
    let v32: Vec<i32> = vec![i32::MIN, -1 << 30, -1, 0, 1, 1 << 30, i32::MAX];
    write_wav(&p, spec(1, 16_000, 32, SampleFormat::Int), &v32);
    let a = read_wav(&p).unwrap();
    let want: Vec<f32> = v32.iter().map(|&x| x as f32 / 2_147_483_648.0).collect();
    assert_eq!(a.samples, want);
    assert_eq!(a.samples[1], -0.5);

    let p = dir.path().join("f32.wav");
    let vf: Vec<f32> = vec![
        -1.0,
        -0.3,
        0.0,
        0.7,
        1.0,
        1.5,
        -3.0,
        f32::NAN,
        f32::INFINITY,
    ];
    write_wav(&p, spec(1, 16_000, 32, SampleFormat::Float), &vf);
    let a = read_wav(&p).unwrap();
    assert_eq!(
        a.samples,
        vec![-1.0, -0.3, 0.0, 0.7, 1.0, 1.0, -1.0, 0.0, 0.0]
    );
}

#[test]
fn multichannel_is_averaged() {
    let dir = tempfile::tempdir().unwrap();

    let p = dir.path().join("stereo.wav");
    let frames = 1000;
    let mut v = Vec::new();
    for i in 0..frames {
        v.push(16_384i16); // 0.5
        v.push(if i % 2 == 0 { -8_192 } else { 8_192 }); // ∓0.25
    }
    write_wav(&p, spec(2, 16_000, 16, SampleFormat::Int), &v);
    let a = read_wav(&p).unwrap();
    assert_eq!(a.source_channels, 2);
    assert_eq!(a.samples.len(), frames);
    for (i, &s) in a.samples.iter().enumerate() {
        assert_eq!(s, if i % 2 == 0 { 0.125 } else { 0.375 });
    }

    // Six channels (WAVE_FORMAT_EXTENSIBLE), float: channel c carries c/10.
    let p = dir.path().join("5.1.wav");
    let v: Vec<f32> = (0..600).map(|i| (i % 6) as f32 / 10.0).collect();
    write_wav(&p, spec(6, 16_000, 32, SampleFormat::Float), &v);
    let a = read_wav(&p).unwrap();
    assert_eq!(a.samples.len(), 100);
    for &s in &a.samples {
        assert!((s - 0.25).abs() < 1e-6, "{s}");
    }

    // Odd channel count at another rate: downmix then resample.
    let p = dir.path().join("3ch-48k.wav");
    let n = 4_800;
    let tone_l = sine(1000.0, 48_000, n, 0.6);
    let mut v = Vec::new();
    for &x in &tone_l {
        v.extend_from_slice(&[x as f32, x as f32, -(x as f32)]); // average: x / 3
    }
    write_wav(&p, spec(3, 48_000, 32, SampleFormat::Float), &v);
    let a = read_wav(&p).unwrap();
    assert_eq!(a.samples.len(), 1_600);
    let (amp, _) = tone(&a.samples, 16_000, 1000.0, 160..1_440);
    assert!((amp - 0.2).abs() < 0.002, "amplitude {amp}");
}

#[test]
fn resampled_sines_keep_frequency_amplitude_and_timing() {
    let dir = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for &rate in &[8_000u32, 11_025, 22_050, 32_000, 44_100, 48_000, 96_000] {
        for &(n_extra, bits) in &[(0usize, 32u16), (123, 16)] {
            let n = rate as usize + n_extra;
            let x = sine(1000.0, rate, n, 0.5);
            let p = dir.path().join(format!("sine-{rate}-{bits}.wav"));
            if bits == 16 {
                let v: Vec<i16> = x.iter().map(|&s| (s * 32768.0).round() as i16).collect();
                write_wav(&p, spec(1, rate, 16, SampleFormat::Int), &v);
            } else {
                let v: Vec<f32> = x.iter().map(|&s| s as f32).collect();
                write_wav(&p, spec(1, rate, 32, SampleFormat::Float), &v);
            }
            let a = read_wav(&p).unwrap();
            assert_eq!(a.source_rate, rate);
            let want_len = ((n as u64 * 16_000 + u64::from(rate) / 2) / u64::from(rate)) as usize;
            assert_eq!(a.samples.len(), want_len, "{rate} Hz, {n} frames");

            // Away from the abrupt start and end (filter transients), the output must be the
            // same sine at 16 kHz: same amplitude, no time shift, small error.
            let margin = 1_024;
            let body = margin..want_len - margin;
            let (amp, phase) = tone(&a.samples, 16_000, 1000.0, body.clone());
            let reference = sine(1000.0, 16_000, want_len, 0.5);
            let max_err = body
                .clone()
                .map(|i| (f64::from(a.samples[i]) - reference[i]).abs())
                .fold(0.0, f64::max);
            report.push(format!(
                "{rate:>6} Hz {bits}-bit: amp {amp:.6} phase {phase:+.2e} rad max|err| {max_err:.2e}"
            ));
            // Measured: float input max|err| < 1e-6, 16-bit input < 3e-5 (its quantization).
            assert!((amp - 0.5).abs() < 5e-4, "{rate} Hz: amplitude {amp}");
            assert!(
                phase.abs() < 1e-3,
                "{rate} Hz: phase {phase} rad (time shift)"
            );
            // Resampling uses Kaldi's short (6-zero) windowed sinc as sherpa-onnx does
            // (audio::linear_resample): its passband error at 1 kHz is ~1e-4..5e-4 (the report
            // printed below gives each rate's).
            let tol = 1e-3;
            assert!(max_err < tol, "{rate} Hz: max error {max_err}");
            // The ends are not lost: the last samples still carry the tone.
            let (tail_amp, _) = tone(&a.samples, 16_000, 1000.0, want_len - 160..want_len - 16);
            assert!(
                (tail_amp - 0.5).abs() < 0.05,
                "{rate} Hz: tail amplitude {tail_amp}"
            );
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn downsampling_removes_content_above_8k() {
    for &rate in &[44_100u32, 48_000] {
        let x: Vec<f32> = sine(12_000.0, rate, rate as usize, 0.5)
            .iter()
            .map(|&s| s as f32)
            .collect();
        let mut rs = StreamResampler::new(rate, MODEL_SAMPLE_RATE).unwrap();
        let mut out = Vec::new();
        rs.process(&x, &mut out);
        rs.flush(&mut out);
        let body = &out[1_000..out.len() - 1_000];
        let rms =
            (body.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / body.len() as f64).sqrt();
        eprintln!("{rate} Hz: 12 kHz tone at 0.5 leaks rms {rms:.2e} into 16 kHz output");
        assert!(rms < 1e-3, "{rate} Hz: alias rms {rms}");
    }
}

#[test]
fn stream_resampler_matches_offline_in_any_pieces() {
    let x: Vec<f32> = sine(440.0, 44_100, 30_000, 0.3)
        .iter()
        .map(|&s| s as f32)
        .collect();
    let mut rs = StreamResampler::new(44_100, 16_000).unwrap();
    let mut whole = Vec::new();
    rs.process(&x, &mut whole);
    rs.flush(&mut whole);
    assert_eq!(whole.len() as u64, resampled_len(30_000, 44_100, 16_000));

    let mut pieces = Vec::new();
    let mut sizes = [1usize, 7, 441, 1000, 1764, 2, 4096].iter().cycle();
    let mut rest = &x[..];
    while !rest.is_empty() {
        let k = (*sizes.next().unwrap()).min(rest.len());
        rs.process(&rest[..k], &mut pieces);
        // Output never runs ahead of input, and lags it by at most delay + one block.
        let produced_max = resampled_len((x.len() - rest.len() + k) as u64, 44_100, 16_000);
        assert!(pieces.len() as u64 <= produced_max);
        rest = &rest[k..];
    }
    assert!(whole.len() - pieces.len() <= rs.delay() + 640 + 1);
    rs.flush(&mut pieces);
    assert_eq!(whole, pieces);
}

#[test]
fn raw_s16le_input() {
    // Mono 16 kHz: exact.
    let v: Vec<i16> = vec![i16::MIN, -2, -1, 0, 1, 2, i16::MAX];
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let a = read_raw_s16le(&bytes[..], 16_000, 1, "stdin").unwrap();
    assert_eq!(
        a.samples,
        v.iter().map(|&x| x as f32 / 32768.0).collect::<Vec<_>>()
    );
    assert_eq!((a.source_rate, a.source_channels), (16_000, 1));

    // Stereo 48 kHz, delivered by a reader that returns a few bytes at a time.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let n = 48_000 + 7;
    let x = sine(1000.0, 48_000, n, 0.5);
    let bytes: Vec<u8> = x
        .iter()
        .flat_map(|&s| {
            let q = (s * 32768.0).round() as i16;
            [q.to_le_bytes(), q.to_le_bytes()].concat()
        })
        .collect();
    let a = read_raw_s16le(Trickle(&bytes), 48_000, 2, "stdin").unwrap();
    assert_eq!(
        a.samples.len() as u64,
        resampled_len(n as u64, 48_000, 16_000)
    );
    let (amp, phase) = tone(&a.samples, 16_000, 1000.0, 1_000..15_000);
    assert!(
        (amp - 0.5).abs() < 0.0025 && phase.abs() < 0.005,
        "{amp} {phase}"
    );
    // Same bytes as a WAV give the same samples.
    let q: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let w = read_wav_from(
        &wav_bytes(spec(2, 48_000, 16, SampleFormat::Int), &q)[..],
        "w",
    )
    .unwrap();
    assert_eq!(w.samples, a.samples);

    // Errors.
    assert_err(
        read_raw_s16le(&[1u8, 2, 3][..], 16_000, 1, "stdin"),
        &["stdin", "odd number of bytes (3)"],
    );
    assert_err(
        read_raw_s16le(&[0u8; 6][..], 16_000, 2, "stdin"),
        &["stdin", "mid-frame", "3 samples", "2 channels"],
    );
    assert_err(
        read_raw_s16le(&[][..], 16_000, 1, "stdin"),
        &["stdin", "empty input"],
    );
    assert_err(
        read_raw_s16le(&[0u8; 4][..], 0, 1, "stdin"),
        &["stdin", "sample rate 0 Hz"],
    );
    assert_err(
        read_raw_s16le(&[0u8; 4][..], 16_000, 0, "stdin"),
        &["stdin", "channel count", "got 0"],
    );
    assert_err(
        read_raw_s16le(&[0u8; 4][..], 5_000_000, 1, "stdin"),
        &["stdin", "unsupported sample rate 5000000 Hz"],
    );
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("device gone"))
        }
    }
    assert_err(
        read_raw_s16le(Broken, 16_000, 1, "stdin"),
        &["stdin", "read error", "device gone"],
    );
}

/// A 16-bit mono WAV header with the given fields, followed by `data`.
fn handmade_wav(
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data_len: u32,
    data: &[u8],
) -> Vec<u8> {
    let block = channels.wrapping_mul(bits.div_ceil(8));
    let mut v = b"RIFF".to_vec();
    v.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&rate.wrapping_mul(u32::from(block)).to_le_bytes());
    v.extend_from_slice(&block.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn wav_errors_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(path(name), bytes).unwrap();
        path(name)
    };

    let missing = path("missing.wav");
    let msg = assert_err(
        read_wav(&missing),
        &["cannot open", "missing.wav", "No such file or directory"],
    );
    assert!(!msg.contains("os error"), "{msg}");

    assert_err(read_wav(dir.path()), &["is a directory"]);

    let p = write("text.wav", b"hello, this is not audio at all\n");
    assert_err(
        read_wav(&p),
        &[
            "text.wav",
            "not a WAV file (no RIFF header)",
            "PCM or float WAV",
        ],
    );

    let p = write("song.flac", b"fLaC\0\0\0\x22rest-of-a-flac-file");
    assert_err(read_wav(&p), &["song.flac", "not a WAV file", "FLAC"]);

    let p = write("zero.wav", b"");
    assert_err(read_wav(&p), &["zero.wav", "empty file (0 bytes)"]);

    let p = write("avi.wav", b"RIFF\x04\0\0\0AVI LIST");
    assert_err(read_wav(&p), &["avi.wav", "not a WAV file", "'AVI '"]);

    let p = write(
        "nodata.wav",
        &wav_bytes::<i16>(spec(1, 16_000, 16, SampleFormat::Int), &[]),
    );
    assert_err(read_wav(&p), &["nodata.wav", "empty WAV (no samples)"]);

    // A real file cut in the middle of its data, and in the middle of its header.
    let real = wav_bytes(
        spec(1, 16_000, 16, SampleFormat::Int),
        &vec![1000i16; 8_000],
    );
    let p = write("cut.wav", &real[..real.len() / 2]);
    assert_err(
        read_wav(&p),
        &[
            "cut.wav",
            "truncated WAV data",
            "8000 samples",
            "--ignore-length",
        ],
    );
    let p = write("cuthead.wav", &real[..30]);
    assert_err(read_wav(&p), &["cuthead.wav", "truncated WAV header"]);
    let p = write("tiny.wav", b"RIF");
    assert_err(read_wav(&p), &["tiny.wav", "truncated WAV header"]);

    // Absurd declared size: an error, without allocating gigabytes.
    let p = write(
        "huge.wav",
        &handmade_wav(1, 1, 16_000, 16, 0x7fff_fff0, &[0u8; 100]),
    );
    assert_err(
        read_wav(&p),
        &[
            "huge.wav",
            "truncated WAV data",
            "1073741816 samples",
            "after 50",
        ],
    );

    let p = write("b12.wav", &handmade_wav(1, 1, 16_000, 12, 4, &[0u8; 4]));
    assert_err(read_wav(&p), &["b12.wav", "unsupported WAV format: 12-bit"]);
    let p = write("f64.wav", &handmade_wav(3, 1, 16_000, 64, 8, &[0u8; 8]));
    assert_err(
        read_wav(&p),
        &["f64.wav", "unsupported WAV format: 64-bit float"],
    );
    let p = write("alaw.wav", &handmade_wav(6, 1, 8_000, 8, 4, &[0u8; 4]));
    assert_err(
        read_wav(&p),
        &["alaw.wav", "unsupported WAV encoding: A-law", "0x0006"],
    );
    let p = write("ch0.wav", &handmade_wav(1, 0, 16_000, 16, 4, &[0u8; 4]));
    assert_err(read_wav(&p), &["ch0.wav", "0 channels"]);
    let p = write("sr0.wav", &handmade_wav(1, 1, 0, 16, 4, &[0u8; 4]));
    assert_err(read_wav(&p), &["sr0.wav", "sample rate 0 Hz"]);
    let p = write("sr5.wav", &handmade_wav(1, 1, 5, 16, 4, &[0u8; 4]));
    assert_err(read_wav(&p), &["sr5.wav", "unsupported sample rate 5 Hz"]);
    let p = write(
        "srmax.wav",
        &handmade_wav(1, 1, 4_000_000_000, 1, 4, &[0u8; 4]),
    );
    assert_err(read_wav(&p), &["srmax.wav"]);

    // Through the generic reader, the given name is used.
    assert_err(
        read_wav_from(&b"garbage!garbage!"[..], "stdin"),
        &["stdin: not a WAV file"],
    );
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzzed_and_truncated_inputs_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut outcomes = [0usize; 2];
    let mut tally = |r: anyhow::Result<Audio>| match r {
        Ok(_) => outcomes[0] += 1,
        Err(e) => {
            let m = e.to_string();
            assert!(m.starts_with("fuzz:") && !m.contains('\n'), "{m}");
            outcomes[1] += 1;
        }
    };

    // Pure garbage, with and without a plausible RIFF/WAVE start.
    for i in 0..300 {
        let len = rng.below(600);
        let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if i % 2 == 0 && len >= 12 {
            b[..4].copy_from_slice(b"RIFF");
            b[8..12].copy_from_slice(b"WAVE");
        }
        tally(read_wav_from(&b[..], "fuzz"));
        tally(read_raw_s16le(&b[..], 16_000, 1 + (i % 3) as u16, "fuzz"));
    }

    // Real WAVs (several layouts) truncated at every header length and at random points.
    let layouts = [
        wav_bytes(spec(1, 16_000, 16, SampleFormat::Int), &vec![123i16; 500]),
        wav_bytes(spec(2, 44_100, 24, SampleFormat::Int), &vec![-77i32; 500]),
        wav_bytes(
            spec(6, 48_000, 32, SampleFormat::Float),
            &vec![0.25f32; 600],
        ),
        wav_bytes(spec(1, 8_000, 8, SampleFormat::Int), &vec![5i8; 500]),
    ];
    for real in &layouts {
        for cut in 0..100.min(real.len()) {
            tally(read_wav_from(&real[..cut], "fuzz"));
        }
        for _ in 0..20 {
            let cut = rng.below(real.len());
            tally(read_wav_from(&real[..cut], "fuzz"));
        }
        // Header fields mutated at random (rates, sizes, channel counts, tags...).
        for _ in 0..150 {
            let mut b = real.clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(80.min(b.len()));
                b[at] = rng.next() as u8;
            }
            tally(read_wav_from(&b[..], "fuzz"));
        }
    }
    eprintln!("fuzz: {} decoded, {} rejected", outcomes[0], outcomes[1]);
    assert!(outcomes[0] > 0 && outcomes[1] > 0);
}
