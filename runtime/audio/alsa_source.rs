//! The live audio source: an ALSA capture device read by a dedicated thread that turns every
//! period into mono 16 kHz `f32` samples and pushes them into the [`ring`](super::ring).
//!
//! - [`open_capture`] opens a PCM by any ALSA name (`default`, `hw:1,0`, `plughw:CARD=…`, a
//!   name from an ALSA config), for interleaved read access, and negotiates the sample format
//!   (S16_LE, else S32_LE, else FLOAT_LE), the channel count (the requested one, else the
//!   nearest the device offers: more channels are averaged), the rate (the requested one,
//!   normally 16 kHz, else the nearest the device offers: resampled with the shared
//!   [`MonoConverter`]) and period/buffer sizes near the requested ones. ALSA's own `plug`
//!   resampling is switched off so that a device that only runs at 48 kHz reaches zipvox's
//!   band-limited resampler, not ALSA's linear one.
//! - [`spawn_capture`] (or [`Capture::spawn`]) runs the capture thread. It opens the device
//!   itself when needed, so a daemon can start before the microphone exists: a device that
//!   cannot be opened, or that fails while capturing (USB microphone unplugged, sound server
//!   gone, stalled for [`STALL_TIMEOUT`]), is closed and reopened with exponential backoff
//!   ([`RETRY_MIN`] doubling to [`RETRY_MAX`]); overruns and suspends are recovered in place
//!   (`snd_pcm_recover`). The thread only ends when the stop flag is set, which it checks at
//!   least once per period (reads are non-blocking behind `snd_pcm_wait` with a timeout). The
//!   returned [`CaptureHandle`] tells whether the device is open (READY waits for that), the
//!   negotiated parameters and the last error.
//! - The counters in [`ServiceStats`] are kept current: `samples_captured` (16 kHz samples
//!   produced, including dropped ones), `dropped_samples` (ring full), `overruns` (xruns and
//!   suspends recovered), `device_reopens` (open attempts after the first one, successful or
//!   not).
//!
//! In the steady state the thread does not allocate: the read, conversion and output buffers
//! are sized when the device is opened and only cleared afterwards.
//!
//! [`list_capture_devices`] (from [`devices`](super::devices)) lists what can be opened.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alsa::pcm::{Access, Format, Frames, HwParams, IoFormat, State, PCM};
use alsa::{Direction, ValueOr};
use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use serde::Deserialize;

use super::pcm::{i16_to_f32, i32_to_f32, sanitize_f32, MonoConverter, MODEL_SAMPLE_RATE};
use super::ring::RingProducer;
use crate::service::stats::ServiceStats;

pub use super::devices::{list_capture_devices, DeviceInfo};

/// First delay before reopening a device that failed or could not be opened.
pub const RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest delay between two open attempts (the backoff doubles up to this).
pub const RETRY_MAX: Duration = Duration::from_secs(10);
/// A running device that delivers nothing for this long is treated as gone and reopened (a
/// wedged USB device or sound server does not always report an error).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// A capture session that delivered this much audio resets the backoff to [`RETRY_MIN`].
const HEALTHY_SESSION: Duration = Duration::from_secs(5);
/// Upper bound on the frames read per call, whatever period the device picked.
const MAX_READ_FRAMES: usize = 16_384;
/// Longest single wait in `snd_pcm_wait`: bounds how late a stop request is noticed.
const MAX_WAIT_MS: u32 = 100;

/// Where and how to capture. All fields have defaults (`#[serde(default)]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    /// ALSA PCM name: `default`, `hw:1,0`, `plughw:CARD=Device,DEV=0`, or one from asound.conf.
    pub device: String,
    /// Preferred device rate in Hz (16000: no resampling). The nearest rate the device offers
    /// is used otherwise and resampled to 16 kHz.
    pub rate: u32,
    /// Preferred channel count (1). Devices that only offer more are averaged to mono.
    pub channels: u16,
    /// Preferred period (the unit the device delivers) in milliseconds.
    pub period_ms: u32,
    /// Preferred device buffer in milliseconds (at least two periods are used).
    pub buffer_ms: u32,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            device: "default".into(),
            rate: MODEL_SAMPLE_RATE,
            channels: 1,
            period_ms: 20,
            buffer_ms: 200,
        }
    }
}

/// The sample formats zipvox reads, in order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleFormat {
    /// Signed 16-bit little-endian: `x / 32768`, bit-exact with offline 16-bit input.
    S16Le,
    /// Signed 32-bit little-endian (24-bit converters usually deliver this): `x / 2^31`.
    S32Le,
    /// 32-bit float little-endian: non-finite values become 0, the rest is clamped to [-1, 1].
    F32Le,
}

impl SampleFormat {
    /// Negotiation order: the first one the device supports is used.
    pub const PREFERENCE: [SampleFormat; 3] = [
        SampleFormat::S16Le,
        SampleFormat::S32Le,
        SampleFormat::F32Le,
    ];

    fn alsa(self) -> Format {
        match self {
            SampleFormat::S16Le => Format::S16LE,
            SampleFormat::S32Le => Format::S32LE,
            SampleFormat::F32Le => Format::FloatLE,
        }
    }

    /// ALSA's name for it (`S16_LE`, `S32_LE`, `FLOAT_LE`).
    pub fn name(self) -> &'static str {
        match self {
            SampleFormat::S16Le => "S16_LE",
            SampleFormat::S32Le => "S32_LE",
            SampleFormat::F32Le => "FLOAT_LE",
        }
    }
}

impl fmt::Display for SampleFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the device agreed to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureParams {
    /// The ALSA name it was opened by.
    pub device: String,
    pub format: SampleFormat,
    /// Device rate in Hz (resampled to 16 kHz when different).
    pub rate: u32,
    /// Device channels (averaged to mono when more than one).
    pub channels: u16,
    /// Frames per period.
    pub period_frames: usize,
    /// Frames in the device buffer.
    pub buffer_frames: usize,
}

impl CaptureParams {
    /// True when the samples go through downmix and/or resampling on their way to 16 kHz mono.
    pub fn converts(&self) -> bool {
        self.channels != 1 || self.rate != MODEL_SAMPLE_RATE
    }

    fn ms(&self, frames: usize) -> f64 {
        frames as f64 * 1000.0 / f64::from(self.rate.max(1))
    }
}

impl fmt::Display for CaptureParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "'{}': {}, {} Hz, {} ch, period {} frames ({:.1} ms), buffer {} frames ({:.1} ms)",
            self.device,
            self.format,
            self.rate,
            self.channels,
            self.period_frames,
            self.ms(self.period_frames),
            self.buffer_frames,
            self.ms(self.buffer_frames),
        )?;
        if self.converts() {
            write!(f, "; converted to mono {MODEL_SAMPLE_RATE} Hz")?;
        }
        Ok(())
    }
}

/// An opened, configured and prepared capture device (not started yet), with its converter.
pub struct Capture {
    pcm: PCM,
    params: CaptureParams,
    cfg: CaptureConfig,
    converter: MonoConverter,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// The negotiated parameters.
    pub fn params(&self) -> &CaptureParams {
        &self.params
    }

    /// The configuration it was opened with (used again to reopen it).
    pub fn config(&self) -> &CaptureConfig {
        &self.cfg
    }

    /// Runs the capture thread on this already opened device; see [`spawn_capture`].
    pub fn spawn(
        self,
        producer: RingProducer,
        stats: Arc<ServiceStats>,
        stop: Arc<AtomicBool>,
    ) -> CaptureHandle {
        let cfg = self.cfg.clone();
        spawn_thread(cfg, Some(self), producer, stats, stop)
    }
}

/// Opens and prepares the capture device `cfg.device` (see the module docs for the
/// negotiation). Logs nothing; the error names the device, the problem and what to do.
pub fn open_capture(cfg: &CaptureConfig) -> Result<Capture> {
    let name = cfg.device.as_str();
    if name.is_empty() {
        bail!("no capture device configured (empty name); list devices with `zipvox devices`");
    }
    if name.contains('\0') {
        bail!("invalid capture device name {name:?} (contains a NUL byte)");
    }
    // Non-blocking: an open of a busy device fails at once instead of hanging, and reads
    // return what is there (we wait with a timeout in `snd_pcm_wait` first).
    let pcm = PCM::new(name, Direction::Capture, true).map_err(|e| open_error(name, e))?;
    let params = configure(&pcm, cfg).map_err(|e| anyhow!("capture device '{name}': {e}"))?;
    let converter = MonoConverter::new(params.rate, params.channels).map_err(|e| {
        anyhow!(
            "capture device '{name}' runs at {} Hz, {} ch, which zipvox cannot convert: {e}; \
             pick another rate or device",
            params.rate,
            params.channels
        )
    })?;
    Ok(Capture {
        pcm,
        params,
        cfg: cfg.clone(),
        converter,
    })
}

/// The message for a failed `snd_pcm_open`, with a hint that depends on the cause.
fn open_error(device: &str, e: alsa::Error) -> anyhow::Error {
    let errno = e.errno();
    let what = Errno::from_raw(errno).desc();
    let hint = match Errno::from_raw(errno) {
        Errno::EBUSY => {
            "it is in use by another program; stop that program, or capture through a shared \
             device such as `default` or a `dsnoop` PCM"
        }
        Errno::EACCES | Errno::EPERM => {
            "permission denied; run zipvox as a user in the `audio` group"
        }
        Errno::ECONNREFUSED => {
            "its sound server (PulseAudio/PipeWire) is not running or not reachable"
        }
        _ => "check the name; list devices with `zipvox devices`",
    };
    anyhow!("cannot open capture device '{device}': {what}; {hint}")
}

/// Describes an ALSA error as "<what> (<alsa function>)".
fn alsa_msg(e: &alsa::Error) -> String {
    format!("{} ({})", Errno::from_raw(e.errno()).desc(), e.func())
}

/// Frames in `ms` milliseconds at `rate` (at least 1).
fn frames_for(rate: u32, ms: u32) -> Frames {
    // `Frames` is a C long: 32 bits on armv7. Rates and periods from the config are small
    // (validated), so the clamp only guards against nonsense.
    (i64::from(rate) * i64::from(ms) / 1000).clamp(1, i64::from(i32::MAX)) as Frames
}

/// hw and sw params: the negotiation described in the module docs.
fn configure(pcm: &PCM, cfg: &CaptureConfig) -> Result<CaptureParams> {
    let want_rate = if cfg.rate == 0 {
        MODEL_SAMPLE_RATE
    } else {
        cfg.rate
    };
    let want_channels = u32::from(cfg.channels.max(1));
    let period_ms = cfg.period_ms.max(1);
    let buffer_ms = cfg.buffer_ms.max(2 * period_ms);
    {
        let hwp = HwParams::any(pcm)
            .map_err(|e| anyhow!("cannot read its capabilities: {}", alsa_msg(&e)))?;
        hwp.set_access(Access::RWInterleaved).map_err(|e| {
            anyhow!(
                "it does not support interleaved reads ({}); use a `plughw:` or `plug` device",
                alsa_msg(&e)
            )
        })?;
        let format = SampleFormat::PREFERENCE
            .into_iter()
            .find(|f| hwp.test_format(f.alsa()).is_ok())
            .ok_or_else(|| {
                anyhow!(
                    "it offers none of the sample formats S16_LE, S32_LE, FLOAT_LE; use a \
                     `plughw:` device to convert"
                )
            })?;
        hwp.set_format(format.alsa())
            .map_err(|e| anyhow!("cannot set format {format}: {}", alsa_msg(&e)))?;
        if hwp.test_channels(want_channels).is_ok() {
            hwp.set_channels(want_channels)
        } else {
            hwp.set_channels_near(want_channels).map(|_| ())
        }
        .map_err(|e| anyhow!("cannot set a channel count: {}", alsa_msg(&e)))?;
        // Rate conversion is ours (band-limited), not the plug layer's (linear): only rates
        // the device really runs at. Not every PCM knows the flag; that is fine.
        let _ = hwp.set_rate_resample(false);
        if hwp.test_rate(want_rate).is_ok() {
            hwp.set_rate(want_rate, ValueOr::Nearest)
        } else {
            hwp.set_rate_near(want_rate, ValueOr::Nearest).map(|_| ())
        }
        .map_err(|e| anyhow!("cannot set a sample rate: {}", alsa_msg(&e)))?;
        let rate = hwp.get_rate().unwrap_or(want_rate);
        // Period and buffer are wishes: if the device refuses, it picks its own.
        if let Err(e) = hwp.set_period_size_near(frames_for(rate, period_ms), ValueOr::Nearest) {
            log::debug!(
                "capture '{}': period size not set: {}",
                cfg.device,
                alsa_msg(&e)
            );
        }
        if let Err(e) = hwp.set_buffer_size_near(frames_for(rate, buffer_ms)) {
            log::debug!(
                "capture '{}': buffer size not set: {}",
                cfg.device,
                alsa_msg(&e)
            );
        }
        pcm.hw_params(&hwp)
            .map_err(|e| anyhow!("it refuses the parameters: {}", alsa_msg(&e)))?;
    }
    let hwp = pcm
        .hw_params_current()
        .map_err(|e| anyhow!("cannot read back its parameters: {}", alsa_msg(&e)))?;
    let format = match hwp.get_format() {
        Ok(Format::S16LE) => SampleFormat::S16Le,
        Ok(Format::S32LE) => SampleFormat::S32Le,
        Ok(Format::FloatLE) => SampleFormat::F32Le,
        other => bail!("it switched to an unexpected sample format {other:?}"),
    };
    let channels = hwp
        .get_channels()
        .map_err(|e| anyhow!("cannot read its channel count: {}", alsa_msg(&e)))?;
    let channels = u16::try_from(channels)
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| anyhow!("unusable channel count {channels}"))?;
    let rate = hwp
        .get_rate()
        .map_err(|e| anyhow!("cannot read its sample rate: {}", alsa_msg(&e)))?;
    let period_frames = hwp.get_period_size().unwrap_or(0).max(0) as usize;
    let buffer_frames = hwp.get_buffer_size().unwrap_or(0).max(0) as usize;
    let period_frames = if period_frames == 0 {
        frames_for(rate, period_ms) as usize
    } else {
        period_frames
    };
    {
        let swp = pcm
            .sw_params_current()
            .map_err(|e| anyhow!("cannot read its software parameters: {}", alsa_msg(&e)))?;
        // Wake up once per period; we start the stream explicitly.
        if let Err(e) = swp
            .set_avail_min(period_frames as Frames)
            .and_then(|_| pcm.sw_params(&swp))
        {
            log::debug!(
                "capture '{}': sw params not set: {}",
                cfg.device,
                alsa_msg(&e)
            );
        }
    }
    pcm.prepare()
        .map_err(|e| anyhow!("cannot prepare it: {}", alsa_msg(&e)))?;
    Ok(CaptureParams {
        device: cfg.device.clone(),
        format,
        rate,
        channels,
        period_frames,
        buffer_frames,
    })
}

/// A snapshot of the capture thread's state ([`CaptureHandle::status`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CaptureStatus {
    /// The device is open and being read.
    pub open: bool,
    /// Parameters of the current (or last) open device.
    pub params: Option<CaptureParams>,
    /// Successful opens so far.
    pub opens: u64,
    /// Failed open attempts so far.
    pub open_failures: u64,
    /// Times an open device failed while capturing and was closed.
    pub losses: u64,
    /// The last failure (open or capture), as logged.
    pub last_error: Option<String>,
    /// The capture thread has ended (stop requested, or it could not be started).
    pub finished: bool,
}

impl CaptureStatus {
    /// At least one open attempt has finished (successfully or not).
    pub fn attempted(&self) -> bool {
        self.opens + self.open_failures > 0 || self.finished
    }
}

struct StatusShared {
    /// Mirror of `status.open`, for a lock-free [`CaptureHandle::is_open`].
    open: AtomicBool,
    status: Mutex<CaptureStatus>,
    changed: Condvar,
}

impl StatusShared {
    fn lock(&self) -> MutexGuard<'_, CaptureStatus> {
        // A poisoned lock only means a panic elsewhere while holding it; the plain-data
        // status inside is still usable.
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `f` to the status and wakes waiters. Only on state changes, never per period.
    fn update(&self, f: impl FnOnce(&mut CaptureStatus)) {
        let mut s = self.lock();
        f(&mut s);
        self.open.store(s.open, Relaxed);
        drop(s);
        self.changed.notify_all();
    }
}

/// The running capture thread.
pub struct CaptureHandle {
    thread: Option<JoinHandle<()>>,
    shared: Arc<StatusShared>,
}

impl fmt::Debug for CaptureHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureHandle")
            .field("status", &self.status())
            .finish()
    }
}

impl CaptureHandle {
    /// True while the device is open and being read (cheap: one atomic load).
    pub fn is_open(&self) -> bool {
        self.shared.open.load(Relaxed)
    }

    /// A snapshot of the thread's state.
    pub fn status(&self) -> CaptureStatus {
        self.shared.lock().clone()
    }

    /// Waits until `done(status)` holds or `timeout` passes; returns the last status seen.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&CaptureStatus) -> bool,
    ) -> CaptureStatus {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        while !done(&s) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = match self.shared.changed.wait_timeout(s, deadline - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        s.clone()
    }

    /// Waits up to `timeout` for the first open attempt to finish and returns its outcome:
    /// `Some(Ok(params))` when the device is open, `Some(Err(message))` when it failed (the
    /// thread keeps retrying), `None` on timeout. For a daemon deciding when to signal READY
    /// and what to log.
    pub fn first_attempt(&self, timeout: Duration) -> Option<Result<CaptureParams, String>> {
        let s = self.wait_until(timeout, CaptureStatus::attempted);
        match (&s.params, s.open, &s.last_error) {
            (Some(p), true, _) => Some(Ok(p.clone())),
            (_, _, Some(e)) if s.attempted() => Some(Err(e.clone())),
            _ if s.finished => Some(Err("capture thread ended".into())),
            _ => None,
        }
    }

    /// True once the thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits up to `timeout` for the thread to end (set the stop flag first) and returns
    /// whether it did. If not (a device call blocked: e.g. closing a PCM whose sound server is
    /// frozen), the thread is left running detached and a warning is logged; a daemon that is
    /// exiting anyway should use this rather than [`join`](Self::join).
    pub fn join_timeout(mut self, timeout: Duration) -> bool {
        let s = self.wait_until(timeout, |s| s.finished);
        if s.finished {
            if let Some(t) = self.thread.take() {
                if t.join().is_err() {
                    log::error!("the capture thread panicked");
                }
            }
            true
        } else {
            log::warn!(
                "the capture thread did not stop within {:.1} s (blocked in an ALSA call); \
                 leaving it",
                timeout.as_secs_f64()
            );
            false
        }
    }

    /// Waits for the thread to end (set the stop flag first). The device is closed by then.
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the capture thread panicked");
            }
        }
    }
}

/// Starts the capture thread for `cfg.device`: it opens the device (retrying with backoff
/// until it can, logging why at warn level), reads it into `producer` and keeps the counters
/// in `stats` current, until `stop` is set. Never gives up on a device fault.
///
/// Returns at once; use [`CaptureHandle::first_attempt`] or [`CaptureHandle::is_open`] to
/// learn whether the device opened. If the OS cannot even create the thread, the handle's
/// status says so (`finished`, `last_error`) and the failure is logged.
pub fn spawn_capture(
    cfg: CaptureConfig,
    producer: RingProducer,
    stats: Arc<ServiceStats>,
    stop: Arc<AtomicBool>,
) -> CaptureHandle {
    spawn_thread(cfg, None, producer, stats, stop)
}

fn spawn_thread(
    cfg: CaptureConfig,
    capture: Option<Capture>,
    producer: RingProducer,
    stats: Arc<ServiceStats>,
    stop: Arc<AtomicBool>,
) -> CaptureHandle {
    let shared = Arc::new(StatusShared {
        open: AtomicBool::new(false),
        status: Mutex::new(CaptureStatus::default()),
        changed: Condvar::new(),
    });
    let worker = Worker {
        cfg,
        producer,
        stats,
        stop,
        status: Arc::clone(&shared),
    };
    let thread = std::thread::Builder::new()
        .name("zipvox-capture".into())
        .spawn(move || worker.run(capture));
    match thread {
        Ok(t) => CaptureHandle {
            thread: Some(t),
            shared,
        },
        Err(e) => {
            let msg = format!("cannot start the capture thread: {e}");
            log::error!("{msg}");
            shared.update(|s| {
                s.finished = true;
                s.last_error = Some(msg);
            });
            CaptureHandle {
                thread: None,
                shared,
            }
        }
    }
}

/// Why a capture session ended.
enum SessionEnd {
    Stopped,
    Lost(String),
}

struct Worker {
    cfg: CaptureConfig,
    producer: RingProducer,
    stats: Arc<ServiceStats>,
    stop: Arc<AtomicBool>,
    status: Arc<StatusShared>,
}

impl Worker {
    fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
    }

    /// Sleeps `d` in short steps; false if stop was requested meanwhile.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            if self.stopped() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
        }
    }

    fn run(mut self, mut capture: Option<Capture>) {
        let mut attempts: u64 = u64::from(capture.is_some());
        let mut failures_in_a_row: u64 = 0;
        let mut backoff = RETRY_MIN;
        let device = self.cfg.device.clone();
        while !self.stopped() {
            let mut cap = match capture.take() {
                Some(c) => c,
                None => {
                    if attempts > 0 {
                        self.stats.device_reopens.fetch_add(1, Relaxed);
                    }
                    attempts += 1;
                    match open_capture(&self.cfg) {
                        Ok(c) => c,
                        Err(e) => {
                            failures_in_a_row += 1;
                            let msg = format!("{e:#}");
                            // Every failure at first, then one in 30 (~5 min at the maximum
                            // backoff): a missing microphone must not flood the journal.
                            if failures_in_a_row <= 5 || failures_in_a_row.is_multiple_of(30) {
                                log::warn!(
                                    "{msg}; retrying in {:.1} s (attempt {failures_in_a_row})",
                                    backoff.as_secs_f64()
                                );
                            } else {
                                log::debug!("{msg}; retrying (attempt {failures_in_a_row})");
                            }
                            self.status.update(|s| {
                                s.open = false;
                                s.open_failures += 1;
                                s.last_error = Some(msg);
                            });
                            if !self.sleep(backoff) {
                                break;
                            }
                            backoff = (backoff * 2).min(RETRY_MAX);
                            continue;
                        }
                    }
                }
            };
            failures_in_a_row = 0;
            log::info!("capture device open: {}", cap.params);
            let params = cap.params.clone();
            self.status.update(|s| {
                s.open = true;
                s.opens += 1;
                s.params = Some(params);
            });
            let started = Instant::now();
            let rate = cap.params.rate.max(1);
            let (end, frames) = self.session(&mut cap);
            match end {
                SessionEnd::Stopped => {
                    self.status.update(|s| s.open = false);
                    break;
                }
                SessionEnd::Lost(why) => {
                    let audio = Duration::from_secs_f64(frames as f64 / f64::from(rate));
                    if audio >= HEALTHY_SESSION {
                        backoff = RETRY_MIN;
                    }
                    let msg = format!("capture device '{device}' failed: {why}");
                    log::warn!(
                        "{msg} after {:.1} s; closing it, reopening in {:.1} s",
                        started.elapsed().as_secs_f64(),
                        backoff.as_secs_f64()
                    );
                    // Reported before closing: closing a PCM whose sound server is frozen can
                    // block until the server moves again, and the status must not wait for it.
                    self.status.update(|s| {
                        s.open = false;
                        s.losses += 1;
                        s.last_error = Some(msg);
                    });
                    drop(cap);
                    if !self.sleep(backoff) {
                        break;
                    }
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
        log::debug!("capture thread for '{device}' stopping");
        self.status.update(|s| {
            s.open = false;
            s.finished = true;
        });
    }

    /// Captures from `cap` until stop or failure. Returns why it ended and how many device
    /// frames it read. The caller closes the device (dropping `cap`; `snd_pcm_close` stops the
    /// stream first).
    fn session(&mut self, cap: &mut Capture) -> (SessionEnd, u64) {
        match cap.params.format {
            SampleFormat::S16Le => self.read_loop::<i16>(cap, i16_to_f32),
            SampleFormat::S32Le => self.read_loop::<i32>(cap, i32_to_f32),
            SampleFormat::F32Le => self.read_loop::<f32>(cap, sanitize_f32),
        }
    }

    fn read_loop<S: IoFormat + Default>(
        &mut self,
        cap: &mut Capture,
        to_f32: fn(S) -> f32,
    ) -> (SessionEnd, u64) {
        let p = cap.params.clone();
        let ch = usize::from(p.channels);
        let frames = p.period_frames.clamp(1, MAX_READ_FRAMES);
        // All buffers are sized here, once per open; the loop only clears and refills them.
        let mut raw: Vec<S> = vec![S::default(); frames * ch];
        let mut interleaved: Vec<f32> = Vec::with_capacity(frames * ch);
        // Output per read: the resampled period plus up to one resampler block (~32 ms at
        // 16 kHz) that may complete in the same call.
        let out_per_read =
            (frames as u64 * u64::from(MODEL_SAMPLE_RATE)).div_ceil(u64::from(p.rate.max(1)));
        let mut out: Vec<f32> = Vec::with_capacity(out_per_read as usize + 4096);
        let wait_ms = (p.ms(frames).ceil() as u32).clamp(1, MAX_WAIT_MS);
        let mut frames_read: u64 = 0;
        let mut overruns = RateLimited::new(Duration::from_secs(10));

        let io = match cap.pcm.io_checked::<S>() {
            Ok(io) => io,
            Err(e) => return (SessionEnd::Lost(alsa_msg(&e)), 0),
        };
        if let Err(e) = start(&cap.pcm) {
            return (
                SessionEnd::Lost(format!("cannot start it: {}", alsa_msg(&e))),
                0,
            );
        }
        let mut last_data = Instant::now();
        loop {
            if self.stopped() {
                return (SessionEnd::Stopped, frames_read);
            }
            let fault = match cap.pcm.wait(Some(wait_ms)) {
                Ok(false) => None,
                Ok(true) => match io.readi(&mut raw) {
                    Ok(0) => None,
                    Ok(n) => {
                        let n = n.min(frames);
                        frames_read += n as u64;
                        last_data = Instant::now();
                        interleaved.clear();
                        interleaved.extend(raw[..n * ch].iter().map(|&s| to_f32(s)));
                        out.clear();
                        cap.converter.push(&interleaved, &mut out);
                        if !out.is_empty() {
                            let pushed = self.producer.push_slice(&out);
                            self.stats
                                .samples_captured
                                .fetch_add(out.len() as u64, Relaxed);
                            if pushed < out.len() {
                                self.stats
                                    .dropped_samples
                                    .fetch_add((out.len() - pushed) as u64, Relaxed);
                            }
                        }
                        continue;
                    }
                    Err(e) if e.errno() == Errno::EAGAIN as i32 => {
                        // Woken without data (or timed out): give the device a moment rather
                        // than spinning on a poll that keeps reporting ready.
                        std::thread::sleep(Duration::from_millis(1));
                        None
                    }
                    Err(e) => Some(e),
                },
                Err(e) => Some(e),
            };
            if let Some(e) = fault {
                match self.recover(&cap.pcm, e, &mut overruns) {
                    Ok(()) => last_data = Instant::now(),
                    Err(why) => return (SessionEnd::Lost(why), frames_read),
                }
                continue;
            }
            // No data this round: a device can fall out of RUNNING without an error from
            // `wait` (e.g. XRUN noticed late, or stuck in PREPARED), or stall outright.
            match pcm_state(&cap.pcm) {
                Some(State::Running) => {}
                Some(State::XRun) => {
                    let e = alsa::Error::new("snd_pcm_state", Errno::EPIPE as i32);
                    if let Err(why) = self.recover(&cap.pcm, e, &mut overruns) {
                        return (SessionEnd::Lost(why), frames_read);
                    }
                    last_data = Instant::now();
                }
                Some(State::Suspended) => {
                    let e = alsa::Error::new("snd_pcm_state", Errno::ESTRPIPE as i32);
                    if let Err(why) = self.recover(&cap.pcm, e, &mut overruns) {
                        return (SessionEnd::Lost(why), frames_read);
                    }
                    last_data = Instant::now();
                }
                Some(State::Prepared) | Some(State::Setup) => {
                    if let Err(e) = start(&cap.pcm) {
                        return (
                            SessionEnd::Lost(format!("cannot restart it: {}", alsa_msg(&e))),
                            frames_read,
                        );
                    }
                }
                Some(State::Disconnected) => {
                    return (SessionEnd::Lost("device disconnected".into()), frames_read)
                }
                other => {
                    if last_data.elapsed() >= STALL_TIMEOUT {
                        return (
                            SessionEnd::Lost(format!("in state {other:?} and delivering nothing")),
                            frames_read,
                        );
                    }
                }
            }
            if last_data.elapsed() >= STALL_TIMEOUT {
                return (
                    SessionEnd::Lost(format!(
                        "no audio for {:.0} s",
                        last_data.elapsed().as_secs_f64()
                    )),
                    frames_read,
                );
            }
        }
    }

    /// Handles an error from `snd_pcm_wait` / `snd_pcm_readi`: interrupted calls are retried,
    /// overruns and suspends are recovered (`snd_pcm_recover`) and restarted, anything else
    /// means the device is gone (`Err` with the reason).
    fn recover(
        &self,
        pcm: &PCM,
        e: alsa::Error,
        overruns: &mut RateLimited,
    ) -> std::result::Result<(), String> {
        let errno = Errno::from_raw(e.errno());
        match errno {
            Errno::EINTR | Errno::EAGAIN => Ok(()),
            Errno::EPIPE | Errno::ESTRPIPE => {
                self.stats.overruns.fetch_add(1, Relaxed);
                if let Some(n) = overruns.tick() {
                    let what = if errno == Errno::EPIPE {
                        "overrun (audio was lost: the system did not read in time)"
                    } else {
                        "suspended (system sleep)"
                    };
                    log::warn!(
                        "capture device '{}' {what}; recovered ({n} since the last message)",
                        self.cfg.device
                    );
                }
                pcm.recover(errno as i32, true).map_err(|r| {
                    format!("{} and recovery failed: {}", alsa_msg(&e), alsa_msg(&r))
                })?;
                start(pcm).map_err(|r| format!("cannot restart after {errno}: {}", alsa_msg(&r)))
            }
            // ENODEV (unplugged), EBADFD (not running anymore), EIO (sound server or driver
            // gone), ENOTTY/ENXIO/ESHUTDOWN/...: close and reopen.
            _ => Err(alsa_msg(&e)),
        }
    }
}

/// Starts a prepared capture stream; already running is fine.
fn start(pcm: &PCM) -> alsa::Result<()> {
    match pcm_state(pcm) {
        Some(State::Running) => Ok(()),
        Some(State::Setup) | Some(State::XRun) => {
            pcm.prepare()?;
            pcm.start()
        }
        _ => pcm.start(),
    }
}

/// The PCM state, `None` for values this crate version does not know (some plugins report
/// private states); `PCM::state` would panic on those.
fn pcm_state(pcm: &PCM) -> Option<State> {
    let raw = pcm.state_raw();
    State::all().iter().copied().find(|s| *s as i32 == raw)
}

/// Counts events and says when to log one: at most once per `every`.
struct RateLimited {
    every: Duration,
    last: Option<Instant>,
    count: u64,
}

impl RateLimited {
    fn new(every: Duration) -> Self {
        RateLimited {
            every,
            last: None,
            count: 0,
        }
    }

    /// Records an event; returns the number of events since the last log when one is due.
    fn tick(&mut self) -> Option<u64> {
        self.count += 1;
        let due = self.last.is_none_or(|t| t.elapsed() >= self.every);
        if due {
            self.last = Some(Instant::now());
            let n = self.count;
            self.count = 0;
            Some(n)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_serde() {
        let d = CaptureConfig::default();
        assert_eq!(
            (
                d.device.as_str(),
                d.rate,
                d.channels,
                d.period_ms,
                d.buffer_ms
            ),
            ("default", 16_000, 1, 20, 200)
        );
        let c: CaptureConfig = serde_json::from_str(r#"{"device":"hw:1,0","rate":48000}"#).unwrap();
        assert_eq!(c.device, "hw:1,0");
        assert_eq!(c.rate, 48_000);
        assert_eq!(c.channels, 1);
        assert!(serde_json::from_str::<CaptureConfig>(r#"{"devcie":"x"}"#).is_err());
    }

    #[test]
    fn bad_names_are_errors_not_panics() {
        for name in ["", "bad\0name"] {
            let cfg = CaptureConfig {
                device: name.into(),
                ..CaptureConfig::default()
            };
            assert!(open_capture(&cfg).is_err(), "{name:?}");
        }
    }

    #[test]
    fn sample_conversions_per_format() {
        // The three read paths use the shared scalings (bit-exact for 16-bit).
        assert_eq!(i16_to_f32(-32_768), -1.0);
        assert_eq!(i16_to_f32(12_345), 12_345.0 / 32_768.0);
        assert_eq!(i32_to_f32(i32::MIN), -1.0);
        assert_eq!(i32_to_f32(12_345 << 16), 12_345.0 / 32_768.0);
        assert_eq!(sanitize_f32(f32::NAN), 0.0);
        assert_eq!(sanitize_f32(0.25), 0.25);
        assert_eq!(
            SampleFormat::PREFERENCE.map(|f| f.name()),
            ["S16_LE", "S32_LE", "FLOAT_LE"]
        );
    }

    #[test]
    fn params_display() {
        let p = CaptureParams {
            device: "hw:1,0".into(),
            format: SampleFormat::S32Le,
            rate: 48_000,
            channels: 2,
            period_frames: 960,
            buffer_frames: 9_600,
        };
        assert_eq!(
            p.to_string(),
            "'hw:1,0': S32_LE, 48000 Hz, 2 ch, period 960 frames (20.0 ms), buffer 9600 \
             frames (200.0 ms); converted to mono 16000 Hz"
        );
    }

    #[test]
    fn rate_limited_logging() {
        let mut r = RateLimited::new(Duration::from_secs(3600));
        assert_eq!(r.tick(), Some(1));
        assert_eq!(r.tick(), None);
        assert_eq!(r.tick(), None);
        r.last = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(r.tick(), Some(3));
    }
}
