//! Live capture (`audio::alsa_source` + `audio::ring`) against the real libasound, no mocks.
//!
//! There is no kernel sound card here, so the devices are ALSA plugins, defined in a private
//! ALSA configuration that this test binary writes once and points libasound at with
//! `ALSA_CONFIG_PATH` (set before the first ALSA call; the file includes the system
//! `alsa.conf` first, so the stock names still exist):
//!
//! - `zv_s16`, `zv_st48`: the `file` plugin over the `null` PCM with an `infile`: capture
//!   returns the file's bytes in whatever format/rate/channels were negotiated, as fast as they
//!   are read (unpaced). Past the end of the file the plugin leaves stale buffer contents (the
//!   null PCM does not clear its capture buffer), so only the file's length is compared.
//! - `zv_float`: the same over an `lfloat` → `null` chain, which only accepts float on the
//!   client side: the negotiation must fall back from S16_LE to FLOAT_LE. (No stock plugin
//!   accepts S32_LE without also accepting S16_LE, so the S32 read path is only covered by the
//!   unit tests of its conversion.)
//! - `zv_live`, `zv_vanish`: the `pulse` plugin on the monitor of a null sink of a private
//!   PulseAudio server (`scripts/pulse-mic.sh`): real-time paced audio, and a device that can
//!   vanish (server killed) and come back. These tests fail, with the server's log, if
//!   PulseAudio cannot be started: they do not pass silently.
//!
//! `RUST_LOG=debug cargo test --test capture -- --nocapture` shows the capture thread's logs.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use zipvox::audio::alsa_source::{
    list_capture_devices, open_capture, spawn_capture, CaptureConfig, CaptureHandle, SampleFormat,
};
use zipvox::audio::ring::{ring, RingConsumer};
use zipvox::audio::MonoConverter;
use zipvox::service::stats::ServiceStats;

/// Counts every allocation in this test process, for
/// `capture_thread_does_not_allocate_in_steady_state` (which runs alone in a child process so
/// that no other test's allocations are counted).
struct CountingAlloc;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// The per-process fixture: a directory with the ALSA config, the raw files and the PulseAudio
/// directories, and the test clip.
struct Fixture {
    root: PathBuf,
    /// `0.wav` (16 kHz mono 16-bit) as the f32 samples zipvox makes of it (`x / 32768`).
    clip: Vec<f32>,
    /// The stereo 48 kHz S16 file `zv_st48` reads, as interleaved f32.
    st48: Vec<f32>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let _ = env_logger::builder().is_test(true).try_init();
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_dirs(&base);
        let root = base.join(format!("capture-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();

        let wav = common::test_wav("0.wav");
        assert!(
            wav.exists(),
            "test clip {} missing: set ZIPVOX_SHARED to the shared models/audio directory",
            wav.display()
        );
        let clip = common::read_wav(&wav);
        let clip_i16: Vec<i16> = clip.iter().map(|&x| (x * 32_768.0) as i16).collect();
        write_raw(&root.join("clip16.raw"), clip_i16.iter().flat_map(|s| s.to_le_bytes()));
        write_raw(&root.join("clipf.raw"), clip.iter().flat_map(|s| s.to_le_bytes()));

        // Two seconds of a different tone per channel at 48 kHz.
        let st48_i16: Vec<i16> = (0..96_000)
            .flat_map(|k| {
                let t = k as f64 / 48_000.0;
                let l = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
                let r = 0.25 * (2.0 * std::f64::consts::PI * 1_000.0 * t).sin();
                [(l * 32_767.0).round() as i16, (r * 32_767.0).round() as i16]
            })
            .collect();
        write_raw(&root.join("st48.raw"), st48_i16.iter().flat_map(|s| s.to_le_bytes()));
        let st48 = st48_i16.iter().map(|&s| f32::from(s) / 32_768.0).collect();

        let r = root.display();
        let conf = format!(
            r#"# zipvox tests/capture.rs: the system configuration plus test devices.
<confdir:alsa.conf>
pcm.zv_s16 {{
    type file
    slave.pcm "null"
    file "/dev/null"
    infile "{r}/clip16.raw"
    format "raw"
    hint {{ show on description "zipvox test: file source" }}
}}
pcm.zv_st48 {{ type file; slave.pcm "null"; file "/dev/null"; infile "{r}/st48.raw"; format "raw" }}
pcm.zv_lfnull {{ type lfloat; slave {{ pcm "null"; format S16_LE }} }}
pcm.zv_float {{ type file; slave.pcm "zv_lfnull"; file "/dev/null"; infile "{r}/clipf.raw"; format "raw" }}
pcm.zv_live {{ type pulse; server "unix:{r}/pa-live/pulse/native"; device "zvmic.monitor" }}
pcm.zv_vanish {{ type pulse; server "unix:{r}/pa-vanish/pulse/native"; device "zvmic.monitor" }}
pcm.zv_frozen {{ type pulse; server "unix:{r}/pa-frozen/pulse/native"; device "zvmic.monitor" }}
"#
        );
        let conf_path = root.join("asound.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Before any ALSA call in this process (every test goes through this fixture first).
        std::env::set_var("ALSA_CONFIG_PATH", &conf_path);
        Fixture { root, clip, st48 }
    })
}

fn write_raw(path: &Path, bytes: impl Iterator<Item = u8>) {
    std::fs::write(path, bytes.collect::<Vec<u8>>()).unwrap();
}

/// Removes `capture-<pid>` directories of test processes that are gone.
fn remove_stale_dirs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("capture-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

fn cfg(device: &str) -> CaptureConfig {
    CaptureConfig {
        device: device.into(),
        ..CaptureConfig::default()
    }
}

/// Waits until the ring holds `n` samples (the capture thread keeps running meanwhile).
fn wait_len(consumer: &mut RingConsumer, n: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while consumer.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} samples arrived in {timeout:?}",
            consumer.len()
        );
        consumer.wait_for(n, Duration::from_millis(100));
    }
}

fn pop(consumer: &mut RingConsumer, n: usize) -> Vec<f32> {
    let mut v = vec![0.0; n];
    let got = consumer.pop_slice(&mut v);
    v.truncate(got);
    v
}

fn stop_and_join(handle: CaptureHandle, stop: &AtomicBool) -> Duration {
    stop.store(true, Relaxed);
    let t = Instant::now();
    handle.join();
    t.elapsed()
}

fn assert_bit_exact(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!("{what}: sample {i} is {} instead of {}", got[i], want[i]);
    }
}

#[test]
fn s16_mono_16k_file_is_captured_bit_exact() {
    let fx = fixture();
    let cap = open_capture(&cfg("zv_s16")).expect("zv_s16 opens");
    let p = cap.params().clone();
    assert_eq!(p.device, "zv_s16");
    assert_eq!(p.format, SampleFormat::S16Le);
    assert_eq!((p.rate, p.channels), (16_000, 1));
    assert!(!p.converts());
    // 20 ms / 200 ms asked for; the null device grants exactly that.
    assert_eq!((p.period_frames, p.buffer_frames), (320, 3_200));

    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, mut consumer) = ring(1 << 18);
    let handle = cap.spawn(producer, stats.clone(), stop.clone());
    wait_len(&mut consumer, fx.clip.len(), Duration::from_secs(20));
    assert!(handle.is_open());
    let joined = stop_and_join(handle, &stop);
    assert!(joined < Duration::from_secs(2), "stop took {joined:?}");

    // The ring keeps the oldest samples when full, so the file's start is all there.
    let got = pop(&mut consumer, fx.clip.len());
    assert_bit_exact(&got, &fx.clip, "zv_s16 capture vs 0.wav");
    assert!(stats.samples_captured.load(Relaxed) >= fx.clip.len() as u64);
    assert_eq!(stats.overruns.load(Relaxed), 0);
    assert_eq!(stats.device_reopens.load(Relaxed), 0);
}

#[test]
fn stereo_48k_is_downmixed_and_resampled_like_offline() {
    let fx = fixture();
    let config = CaptureConfig {
        device: "zv_st48".into(),
        rate: 48_000,
        channels: 2,
        ..CaptureConfig::default()
    };
    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, mut consumer) = ring(1 << 18);
    let handle = spawn_capture(config, producer, stats.clone(), stop.clone());
    let p = handle
        .first_attempt(Duration::from_secs(10))
        .expect("open attempt finished")
        .expect("zv_st48 opens");
    assert_eq!(
        (p.format, p.rate, p.channels),
        (SampleFormat::S16Le, 48_000, 2)
    );
    assert!(p.converts());
    assert_eq!(p.period_frames, 960);

    // The same samples through the same converter offline: the capture thread must produce
    // exactly this (the converter's output does not depend on how the input is split).
    let mut want = Vec::new();
    let mut conv = MonoConverter::new(48_000, 2).unwrap();
    conv.push(&fx.st48, &mut want);
    assert!(want.len() > 30_000, "{}", want.len());

    wait_len(&mut consumer, want.len(), Duration::from_secs(20));
    stop_and_join(handle, &stop);
    let got = pop(&mut consumer, want.len());
    assert_bit_exact(
        &got,
        &want,
        "48 kHz stereo capture vs offline MonoConverter",
    );

    // And it is the expected signal: (0.5 sin 440 + 0.25 sin 1000) / 2 has RMS 0.1976.
    let mid = &got[4_000..got.len() - 4_000];
    let rms = (mid.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / mid.len() as f64).sqrt();
    let expect = ((0.25f64.powi(2) + 0.125f64.powi(2)) / 2.0).sqrt();
    assert!(
        (rms - expect).abs() < 0.01 * expect,
        "rms {rms} vs {expect}"
    );
}

#[test]
fn float_only_device_negotiates_float_le() {
    let fx = fixture();
    let cap = open_capture(&cfg("zv_float")).expect("zv_float opens");
    assert_eq!(cap.params().format, SampleFormat::F32Le);
    assert_eq!((cap.params().rate, cap.params().channels), (16_000, 1));
    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, mut consumer) = ring(1 << 18);
    let handle = cap.spawn(producer, stats, stop.clone());
    wait_len(&mut consumer, fx.clip.len(), Duration::from_secs(20));
    stop_and_join(handle, &stop);
    let got = pop(&mut consumer, fx.clip.len());
    assert_bit_exact(&got, &fx.clip, "FLOAT_LE capture vs 0.wav / 32768");
}

#[test]
fn ring_overflow_is_counted_and_capture_keeps_running() {
    fixture();
    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, mut consumer) = ring(4_096);
    let handle = spawn_capture(cfg("zv_s16"), producer, stats.clone(), stop.clone());
    assert!(matches!(
        handle.first_attempt(Duration::from_secs(10)),
        Some(Ok(_))
    ));

    // A consumer that sleeps: the unpaced source overruns the ring.
    std::thread::sleep(Duration::from_millis(300));
    let dropped = stats.dropped_samples.load(Relaxed);
    assert!(dropped > 0, "nothing dropped");
    let mut popped = 0u64;
    let mut buf = vec![0.0; 1_000];
    for _ in 0..20 {
        popped += consumer.pop_slice(&mut buf) as u64;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(popped >= 4_096);
    assert!(
        stats.dropped_samples.load(Relaxed) > dropped,
        "capture stopped after overflow"
    );
    assert!(handle.is_open() && !handle.is_finished());
    assert_eq!(stats.device_reopens.load(Relaxed), 0);

    stop_and_join(handle, &stop);
    // Every converted sample is either consumed, still buffered, or counted as dropped.
    popped += consumer.len() as u64;
    assert_eq!(
        stats.samples_captured.load(Relaxed),
        popped + stats.dropped_samples.load(Relaxed)
    );
    assert_eq!(consumer.dropped(), stats.dropped_samples.load(Relaxed));
    assert!(!consumer.is_producer_alive());
}

#[test]
fn capture_thread_does_not_allocate_in_steady_state() {
    const NAME: &str = "capture_thread_does_not_allocate_in_steady_state";
    if std::env::var_os("ZV_CAPTURE_ALLOC_CHILD").is_none() {
        // Other tests allocate concurrently in this process: count in a child running only
        // this test.
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("ZV_CAPTURE_ALLOC_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "child run failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    fixture();
    // Pass-through (S16 mono 16 kHz) and the conversion path (stereo 48 kHz: downmix and
    // resampling), both with a ring that overflows (the drop path) and no consumer.
    for (device, rate, channels) in [("zv_s16", 16_000, 1), ("zv_st48", 48_000, 2)] {
        let config = CaptureConfig {
            device: device.into(),
            rate,
            channels,
            ..CaptureConfig::default()
        };
        let stats = Arc::new(ServiceStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (producer, consumer) = ring(4_096);
        let handle = spawn_capture(config, producer, stats.clone(), stop.clone());
        assert!(matches!(
            handle.first_attempt(Duration::from_secs(10)),
            Some(Ok(_))
        ));
        // Warm-up: buffers reach their final size during the first periods.
        let t = Instant::now();
        while stats.samples_captured.load(Relaxed) < 200_000 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "{device}: capture too slow"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let (a0, n0) = (
            ALLOCATIONS.load(Relaxed),
            stats.samples_captured.load(Relaxed),
        );
        std::thread::sleep(Duration::from_millis(300));
        let (a1, n1) = (
            ALLOCATIONS.load(Relaxed),
            stats.samples_captured.load(Relaxed),
        );
        stop_and_join(handle, &stop);
        drop(consumer);
        eprintln!(
            "{device}: {} samples, {} allocations in 300 ms; {a0} allocations before",
            n1 - n0,
            a1 - a0
        );
        assert!(
            n1 - n0 > 100_000,
            "{device}: only {} samples in 300 ms",
            n1 - n0
        );
        assert_eq!(
            a1 - a0,
            0,
            "{device}: {} allocations while capturing {} samples",
            a1 - a0,
            n1 - n0
        );
    }
}

#[test]
fn unknown_devices_give_a_clear_error() {
    fixture();
    for name in ["hw:9,0", "zv_no_such_pcm", "plughw:CARD=NoSuchCard,DEV=0"] {
        let err = open_capture(&cfg(name)).expect_err(name).to_string();
        assert!(
            err.starts_with(&format!("cannot open capture device '{name}': ")),
            "{err}"
        );
        assert!(err.contains("zipvox devices"), "{err}");
    }
    let err = open_capture(&cfg("bad\0name")).unwrap_err().to_string();
    assert!(err.contains("NUL"), "{err}");
}

#[test]
fn a_missing_device_is_retried_until_stopped() {
    fixture();
    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, consumer) = ring(1_024);
    let handle = spawn_capture(cfg("hw:9,0"), producer, stats.clone(), stop.clone());
    let first = handle.first_attempt(Duration::from_secs(10));
    let Some(Err(msg)) = first else {
        panic!("expected a failed first open, got {first:?}")
    };
    assert!(msg.contains("'hw:9,0'"), "{msg}");
    // Attempts at 0, 0.5 and 1.5 s (backoff doubling): two reopens within ~2 s.
    let s = handle.wait_until(Duration::from_secs(10), |s| s.open_failures >= 3);
    assert!(s.open_failures >= 3, "{s:?}");
    assert!(stats.device_reopens.load(Relaxed) >= 2);
    assert!(!handle.is_finished() && !handle.is_open());
    assert!(consumer.is_producer_alive());
    let joined = stop_and_join(handle, &stop);
    assert!(
        joined < Duration::from_secs(1),
        "stop took {joined:?} while backing off"
    );
    assert!(!consumer.is_producer_alive());
}

#[test]
fn devices_list_includes_configured_pcms() {
    fixture();
    let devices = list_capture_devices().expect("devices list");
    let d = devices
        .iter()
        .find(|d| d.name == "zv_s16")
        .unwrap_or_else(|| panic!("zv_s16 not listed in {devices:?}"));
    assert_eq!(d.description, "zipvox test: file source");
    // Plain `null` comes from the system alsa.conf the test config includes.
    assert!(devices.iter().any(|d| d.name == "null"), "{devices:?}");
    assert!(devices.iter().all(|d| !d.name.is_empty()));
}

/// A private PulseAudio server (scripts/pulse-mic.sh), stopped on drop.
struct Pulse {
    dir: PathBuf,
}

impl Pulse {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pulse-mic.sh")
    }

    fn start(dir: PathBuf) -> Pulse {
        let out = Command::new(Self::script())
            .arg("start")
            .arg(&dir)
            .output()
            .expect("run scripts/pulse-mic.sh");
        assert!(
            out.status.success(),
            "cannot start PulseAudio for the live-capture tests (install pulseaudio, \
             pulseaudio-utils and libasound2-plugins):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Pulse { dir }
    }

    fn restart(&self) {
        std::mem::forget(Pulse::start(self.dir.clone()));
    }

    fn stop(&self) {
        let _ = Command::new(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .status();
    }

    fn server(&self) -> String {
        format!("unix:{}/pulse/native", self.dir.display())
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// First index where `needle` occurs bit-exactly in `hay`.
/// The capture thread opened the device again and at least 0.5 s of audio followed.
fn assert_reopened_and_flowing(handle: &CaptureHandle, stats: &ServiceStats) {
    let s = handle.wait_until(Duration::from_secs(30), |s| s.opens >= 2 && s.open);
    assert!(s.opens >= 2 && s.open, "not reopened: {s:?}");
    let before = stats.samples_captured.load(Relaxed);
    let t = Instant::now();
    while stats.samples_captured.load(Relaxed) < before + 8_000 {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no audio after the reopen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn find_exact(hay: &[f32], needle: &[f32]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).find(|&i| {
        hay[i].to_bits() == needle[0].to_bits()
            && hay[i..i + needle.len()]
                .iter()
                .zip(needle)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    })
}

#[test]
fn pulse_monitor_is_captured_in_real_time_and_bit_exact() {
    let fx = fixture();
    let pulse = Pulse::start(fx.root.join("pa-live"));
    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, mut consumer) = ring(1 << 20);
    let handle = spawn_capture(cfg("zv_live"), producer, stats.clone(), stop.clone());
    let p = match handle.first_attempt(Duration::from_secs(10)) {
        Some(Ok(p)) => p,
        other => panic!("zv_live did not open: {other:?}"),
    };
    assert_eq!(p.device, "zv_live");
    assert_eq!(
        (p.format, p.rate, p.channels),
        (SampleFormat::S16Le, 16_000, 1)
    );
    assert!(
        (160..=640).contains(&p.period_frames) && p.buffer_frames >= 2 * p.period_frames,
        "{p}"
    );

    // Play the clip into the null sink while reading the ring, noting when samples arrive.
    let started = Instant::now();
    let mut player = Command::new("paplay")
        .args(["-d", "zvmic"])
        .arg(common::test_wav("0.wav"))
        .env("PULSE_SERVER", pulse.server())
        .spawn()
        .expect("paplay runs (pulseaudio-utils)");
    let mut got: Vec<f32> = Vec::with_capacity(16_000 * 20);
    let mut arrivals: Vec<(Instant, usize)> = Vec::new();
    let mut buf = vec![0.0f32; 4_096];
    let mut played: Option<Instant> = None;
    loop {
        consumer.wait_for(320, Duration::from_millis(50));
        let n = consumer.pop_slice(&mut buf);
        if n > 0 {
            got.extend_from_slice(&buf[..n]);
            arrivals.push((Instant::now(), got.len()));
        }
        if played.is_none() {
            if let Some(status) = player.try_wait().unwrap() {
                assert!(status.success(), "paplay failed: {status}");
                played = Some(Instant::now());
            }
        }
        if played.is_some_and(|t| t.elapsed() > Duration::from_millis(700)) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "paplay did not finish"
        );
    }
    let wall = started.elapsed();
    stop_and_join(handle, &stop);
    assert_eq!(stats.dropped_samples.load(Relaxed), 0);

    // Paced: about 16000 samples per second of wall time once data flows (an unpaced source
    // would have produced millions by now). Measured from the first arrival: a fresh null
    // sink renders its first block at its idle latency (up to 2 s) before it adapts to the
    // record stream's.
    let (t_first, n_first) = arrivals[0];
    let (t_last, n_last) = *arrivals.last().unwrap();
    let rate = (n_last - n_first) as f64 / (t_last - t_first).as_secs_f64();
    eprintln!(
        "pulse capture: first audio {:?} after paplay started, {} samples in {wall:?}",
        t_first - started,
        got.len()
    );
    assert!((14_000.0..18_000.0).contains(&rate), "{rate:.0} samples/s");

    // Bit-exact: a second of the clip (from 1 s in) appears unchanged in the capture.
    let block = &fx.clip[16_000..32_000];
    let at = find_exact(&got, block).unwrap_or_else(|| {
        panic!(
            "1 s of the clip not found bit-exact in {} captured samples",
            got.len()
        )
    });
    let start = at as isize - 16_000; // where the clip's sample 0 sits in the capture
                                      // From there to the end of the clip everything matches too.
    let tail_len = fx.clip.len() - 16_000;
    assert!(at + tail_len <= got.len(), "capture ends inside the clip");
    assert_bit_exact(
        &got[at..at + tail_len],
        &fx.clip[16_000..],
        "clip tail in capture",
    );
    // How much of the clip's first second made it (the server may start the monitor stream a
    // few ms late); reported, not asserted.
    let head_ok = (0..16_000usize)
        .rev()
        .take_while(|&i| {
            let j = start + i as isize;
            j >= 0 && got[j as usize].to_bits() == fx.clip[i].to_bits()
        })
        .count();
    eprintln!(
        "pulse capture: clip found at capture sample {start}, {head_ok} of its first 16000 \
         samples bit-exact, {} samples in {:.2} s ({rate:.0}/s)",
        got.len(),
        wall.as_secs_f64()
    );

    // Real time: the clip's samples arrived over about the clip's duration.
    let arrival = |idx: usize| arrivals.iter().find(|(_, total)| *total > idx).unwrap().0;
    let spread = arrival(at + tail_len - 1) - arrival(at);
    let span = tail_len as f64 / 16_000.0;
    assert!(
        (0.8 * span..1.25 * span).contains(&spread.as_secs_f64()),
        "{tail_len} samples ({span:.2} s of audio) arrived over {spread:?}"
    );
}

#[test]
fn pulse_server_vanishing_and_returning_is_survived() {
    let fx = fixture();
    let pulse = Pulse::start(fx.root.join("pa-vanish"));
    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, mut consumer) = ring(1 << 20);
    let handle = spawn_capture(cfg("zv_vanish"), producer, stats.clone(), stop.clone());
    assert!(matches!(
        handle.first_attempt(Duration::from_secs(10)),
        Some(Ok(_))
    ));
    wait_len(&mut consumer, 8_000, Duration::from_secs(10));

    // The "microphone" disappears.
    pulse.stop();
    let s = handle.wait_until(Duration::from_secs(15), |s| {
        s.losses >= 1 && s.open_failures >= 1
    });
    assert!(s.losses >= 1 && s.open_failures >= 1 && !s.open, "{s:?}");
    eprintln!("after the server went away: {:?}", s.last_error);
    assert!(stats.device_reopens.load(Relaxed) >= 1);
    assert!(!handle.is_finished());

    // It comes back: the thread reopens it and audio flows again.
    pulse.restart();
    assert_reopened_and_flowing(&handle, &stats);
    eprintln!(
        "survived: {:?}, device_reopens {}",
        handle.status(),
        stats.device_reopens.load(Relaxed)
    );
    let joined = stop_and_join(handle, &stop);
    assert!(joined < Duration::from_secs(2), "stop took {joined:?}");
}

#[test]
fn frozen_pulse_server_is_detected_as_a_stall() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let fx = fixture();
    let pulse = Pulse::start(fx.root.join("pa-frozen"));
    let pid = Pid::from_raw(
        std::fs::read_to_string(pulse.dir.join("pulse.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    );
    let stats = Arc::new(ServiceStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (producer, mut consumer) = ring(1 << 20);
    let handle = spawn_capture(cfg("zv_frozen"), producer, stats.clone(), stop.clone());
    assert!(matches!(
        handle.first_attempt(Duration::from_secs(10)),
        Some(Ok(_))
    ));
    wait_len(&mut consumer, 8_000, Duration::from_secs(10));

    // The server hangs without closing anything: no error, just no data.
    kill(pid, Signal::SIGSTOP).unwrap();
    let t = Instant::now();
    let s = handle.wait_until(Duration::from_secs(15), |s| s.losses >= 1);
    let detected = t.elapsed();
    kill(pid, Signal::SIGCONT).unwrap();
    eprintln!("frozen server: {s:?} after {detected:?}");
    assert!(s.losses >= 1 && !s.open, "stall not detected: {s:?}");
    assert!(
        s.last_error.as_deref().unwrap_or("").contains("no audio"),
        "{s:?}"
    );

    assert_reopened_and_flowing(&handle, &stats);
    stop.store(true, Relaxed);
    assert!(handle.join_timeout(Duration::from_secs(5)));
}
