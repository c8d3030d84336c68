//! Intra-op threads: how many cores one stream's encoder may use (`--threads N`, `[model]
//! threads`). Default 1: one stream per core, the deployment the speed targets are measured in.
//!
//! zipvox's int8 matmul splits its column panels over the workers ([`split_range`]); each
//! worker reads only its share of the weights, and every output value is computed by the same
//! instructions in the same order as on one thread: transcripts do not depend on the thread count
//! (a test checks). The rest of the graph (tract's ops) stays on the calling thread.
//!
//! Why an own pool and not rayon's: the encoder issues a few hundred small products per chunk
//! (~20 µs each on the medium model). A rayon dispatch from outside the pool parks the caller and
//! wakes sleeping workers through the kernel: measured on the 2-core dev machine, that made two
//! threads *slower* than one (medium model: 19–22 ms per chunk against 14). Here the workers
//! spin on an epoch counter for a short while after each job (a product usually follows within
//! microseconds) and park only when the encoder goes idle, and the calling thread works the
//! first range itself.

use anyhow::{bail, Result};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The most threads accepted (a guard against typos such as `--threads 400`).
pub const MAX_THREADS: usize = 64;

/// Multiply-accumulates below which a product stays on the calling thread (a dispatch costs
/// about a microsecond, the time of ~10^4–10^5 MACs).
const MIN_PARALLEL_WORK: usize = 1 << 16;

/// How long an idle worker spins before parking.
const SPIN: Duration = Duration::from_micros(200);

static THREADS: AtomicUsize = AtomicUsize::new(1);
static POOL: RwLock<Option<Arc<SpinPool>>> = RwLock::new(None);

/// Sets the process-wide thread count (1 = everything on the calling thread). Call before
/// decoding; a later call replaces the pool.
pub fn set_threads(n: usize) -> Result<()> {
    if n == 0 || n > MAX_THREADS {
        bail!("threads must be between 1 and {MAX_THREADS}, not {n}");
    }
    let pool = if n > 1 { Some(SpinPool::start(n - 1)?) } else { None };
    let old = std::mem::replace(&mut *POOL.write().unwrap_or_else(|e| e.into_inner()), pool);
    THREADS.store(n, SeqCst);
    if let Some(old) = old {
        old.stop();
    }
    Ok(())
}

/// The thread count in use.
pub fn threads() -> usize {
    THREADS.load(Relaxed)
}

/// Runs `f(begin, end)` over `0..items`: in one call on the calling thread, or, with a pool and
/// at least [`MIN_PARALLEL_WORK`] of `work`, as contiguous ranges, one per thread (the calling
/// thread takes the first).
pub fn split_range(items: usize, work: usize, f: impl Fn(usize, usize) + Sync) {
    let parts = threads().min(items);
    if parts <= 1 || work < MIN_PARALLEL_WORK {
        return f(0, items);
    }
    let Some(pool) = POOL.read().unwrap_or_else(|e| e.into_inner()).clone() else {
        return f(0, items);
    };
    let parts = parts.min(pool.workers + 1);
    pool.run(parts, &|i| f(i * items / parts, (i + 1) * items / parts));
}

type Job = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per job (and once to stop).
    epoch: AtomicU64,
    /// The current job and its part count; written only by the dispatcher while no worker runs.
    job: UnsafeCell<(Option<Job>, usize)>,
    /// Workers that have not finished the current job.
    pending: AtomicUsize,
    /// A part panicked (the dispatcher re-raises).
    panicked: AtomicBool,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written by the single dispatcher (serialized by `dispatch`) only while every
// worker is between jobs (pending == 0), and read by workers after they observe the new epoch.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

struct SpinPool {
    shared: Arc<Shared>,
    workers: usize,
    /// One dispatcher at a time; another caller runs inline.
    dispatch: Mutex<()>,
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl SpinPool {
    fn start(workers: usize) -> Result<Arc<SpinPool>> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new((None, 0)),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut handles = Vec::with_capacity(workers);
        for id in 1..=workers {
            let s = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("zipvox-mm-{id}"))
                .spawn(move || worker(&s, id))
                .map_err(|e| anyhow::anyhow!("cannot start {} worker threads: {e}", workers + 1))?;
            handles.push(h);
        }
        Ok(Arc::new(SpinPool { shared, workers, dispatch: Mutex::new(()), handles: Mutex::new(handles) }))
    }

    /// Runs `f(0..parts)`, part 0 on this thread; returns when all parts are done.
    fn run(&self, parts: usize, f: &(dyn Fn(usize) + Sync)) {
        let s = &*self.shared;
        let guard = self.dispatch.try_lock();
        if guard.is_err() || s.stop.load(SeqCst) {
            // Another stream is using the pool, or it was replaced: do the whole job here.
            return (0..parts).for_each(f);
        }
        // SAFETY: pending == 0 (the previous job was waited for), so no worker reads `job`; the
        // pointer's lifetime is erased, and it is not used after this function returns (we wait
        // for pending == 0 below).
        unsafe {
            let f: Job = std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static (dyn Fn(usize) + Sync)>(f);
            *s.job.get() = (Some(f), parts);
        }
        s.pending.store(self.workers, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        f(0);
        while s.pending.load(Acquire) != 0 {
            std::hint::spin_loop();
        }
        if s.panicked.swap(false, SeqCst) {
            panic!("a zipvox-mm worker panicked");
        }
    }

    fn stop(&self) {
        let s = &*self.shared;
        // No job in flight (a dispatcher holds this lock until its job is done); later
        // dispatchers see `stop` and run inline.
        let _g = self.dispatch.lock().unwrap_or_else(|e| e.into_inner());
        s.stop.store(true, SeqCst);
        s.epoch.fetch_add(1, SeqCst);
        {
            let _l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
        for h in self.handles.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            let _ = h.join();
        }
    }
}

fn worker(s: &Shared, id: usize) {
    let mut seen = 0u64;
    loop {
        // Wait for a new epoch: spin first, then park.
        let t0 = Instant::now();
        let mut spins = 0u32;
        let mut epoch = s.epoch.load(Acquire);
        while epoch == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(256) && t0.elapsed() > SPIN {
                let mut l = s.lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, SeqCst);
                while s.epoch.load(SeqCst) == seen {
                    l = s.wake.wait(l).unwrap_or_else(|e| e.into_inner());
                }
                s.sleepers.fetch_sub(1, SeqCst);
            }
            epoch = s.epoch.load(Acquire);
        }
        seen = epoch;
        if s.stop.load(SeqCst) {
            return;
        }
        // SAFETY: the dispatcher wrote `job` before bumping the epoch and keeps it alive until
        // pending reaches 0.
        let (job, parts) = unsafe { *s.job.get() };
        if let Some(job) = job {
            if id < parts {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { (*job)(id) }));
                if r.is_err() {
                    s.panicked.store(true, SeqCst);
                }
            }
        }
        s.pending.fetch_sub(1, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_range_covers_every_item_once_on_any_thread_count() {
        for n in [1usize, 2, 3, 5] {
            set_threads(n).unwrap();
            for items in [1usize, 2, 3, 7, 64] {
                let hits: Vec<AtomicUsize> = (0..items).map(|_| AtomicUsize::new(0)).collect();
                for _ in 0..50 {
                    split_range(items, usize::MAX, |a, b| {
                        for h in &hits[a..b] {
                            h.fetch_add(1, Relaxed);
                        }
                    });
                }
                assert!(hits.iter().all(|h| h.load(Relaxed) == 50), "n={n} items={items}");
            }
        }
        set_threads(1).unwrap();
        assert!(set_threads(0).is_err() && set_threads(MAX_THREADS + 1).is_err());
    }
}
