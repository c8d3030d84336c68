//! The sample ring between the capture thread and the recognizer: a fixed-capacity, lock-free,
//! single-producer/single-consumer ring of `f32` samples.
//!
//! [`ring`] splits it into a [`RingProducer`] (the capture thread) and a [`RingConsumer`] (the
//! recognizer); each is `Send` and owned by exactly one thread at a time, which is what lets
//! both sides work with plain atomic loads and stores:
//!
//! - `head` (next slot to write) is stored only by the producer, `tail` (next slot to read) only
//!   by the consumer. Both count samples forever (wrapping) and index the buffer through a
//!   power-of-two mask, so `head - tail` is the fill level and a full ring is distinguishable
//!   from an empty one without a spare slot.
//! - The producer copies samples in, then publishes `head` with `Release`; the consumer reads
//!   `head` with `Acquire` before copying out, so it never sees a slot before its data. The
//!   same pairing on `tail` hands free slots back.
//! - Each side keeps a private copy of the other's index and refreshes it only when the cached
//!   value says there is not enough room/data, and `head`, `tail` and the drop counter sit on
//!   their own cache lines: in the steady state the two cores do not fight over one line.
//!
//! **Overflow drops the newest samples.** When the recognizer falls behind and the ring is full,
//! [`RingProducer::push_slice`] stores what fits and discards the rest, counting it
//! ([`RingProducer::dropped`]). Dropping the *oldest* data instead would need the producer to
//! move `tail`, which the consumer owns and may be copying from at that very moment: that takes
//! a lock or a compare-and-swap retry protocol on the consumer's fast path. For speech either
//! choice leaves a gap of the same length; this one keeps both indices single-writer and the
//! capture thread wait-free.
//!
//! **Waiting without spinning.** [`RingConsumer::wait_for`] parks the consumer thread with a
//! timeout; after a push the producer unparks it once enough samples are buffered. The
//! handshake is the classic store-fence-load pair on both sides (producer: publish `head`,
//! fence, read `parked`; consumer: set `parked`, fence, read `head`), so at least one side sees
//! the other and no wakeup is lost. The producer never blocks on it: it only `try_lock`s the
//! slot holding the consumer's thread handle, which the consumer touches only while not
//! parked.
//!
//! Neither side allocates after [`ring`] returns.

use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread, ThreadId};
use std::time::{Duration, Instant};

/// Smallest ring [`ring`] builds (in samples).
pub const MIN_CAPACITY: usize = 2;
/// Largest ring [`ring`] builds (in samples): 2^28 samples is 4.7 hours at 16 kHz and 1 GiB of
/// memory, far past any sensible backlog; larger requests are clamped to it.
pub const MAX_CAPACITY: usize = 1 << 28;

/// Keeps a value on its own cache line(s). 128 bytes: x86 prefetches line pairs and Apple/ARM
/// big cores use 128-byte lines (crossbeam's choice for both).
#[repr(align(128))]
struct CachePadded<T>(T);

struct Shared {
    /// Total samples ever written (wrapping). Stored only by the producer.
    head: CachePadded<AtomicUsize>,
    /// Total samples ever read (wrapping). Stored only by the consumer.
    tail: CachePadded<AtomicUsize>,
    /// Samples the producer discarded because the ring was full.
    dropped: CachePadded<AtomicU64>,
    /// The consumer is (about to be) parked in `wait_for`.
    parked: AtomicBool,
    /// How many buffered samples the parked consumer waits for.
    wanted: AtomicUsize,
    /// Cleared when the producer is dropped (e.g. the capture thread ended).
    producer_alive: AtomicBool,
    /// The thread to unpark. Written by the consumer only while it is not parked.
    sleeper: Mutex<Option<Thread>>,
    buf: Box<[UnsafeCell<f32>]>,
    mask: usize,
}

// SAFETY: the slots of `buf` are shared between the two threads, but the head/tail protocol
// gives each slot a single owner at any time: the producer writes only slots in
// [head, tail + capacity) and publishes them with a Release store of `head`; the consumer reads
// only slots in [tail, head) after an Acquire load of `head`, and hands them back with a
// Release store of `tail` that the producer Acquire-loads before reusing them. Everything else
// in `Shared` is atomics or a Mutex.
unsafe impl Sync for Shared {}

impl Shared {
    fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Pointer to slot 0. Writing through it is allowed (UnsafeCell) for the slots the caller
    /// owns under the head/tail protocol.
    fn base(&self) -> *mut f32 {
        UnsafeCell::raw_get(self.buf.as_ptr())
    }

    /// Wakes the parked consumer if it waits for no more than `available` samples (or
    /// unconditionally with `usize::MAX`). Never blocks.
    fn wake(&self, available: usize) {
        // Pairs with the fence in `RingConsumer::wait_for`: either this load sees `parked`, or
        // the consumer's re-check after setting it sees the new `head` / closed producer.
        fence(Ordering::SeqCst);
        if !self.parked.load(Ordering::Acquire) {
            return;
        }
        if available < self.wanted.load(Ordering::Relaxed) {
            return;
        }
        if self.parked.swap(false, Ordering::AcqRel) {
            // Only fails while the consumer registers a new thread, and it does that before it
            // sets `parked` and re-checks the fill level, so nothing is missed.
            if let Ok(slot) = self.sleeper.try_lock() {
                if let Some(t) = slot.as_ref() {
                    t.unpark();
                }
            }
        }
    }
}

/// Builds a ring holding `capacity` samples, rounded up to a power of two and clamped to
/// [`MIN_CAPACITY`]..=[`MAX_CAPACITY`], and returns its two ends.
pub fn ring(capacity: usize) -> (RingProducer, RingConsumer) {
    let capacity = capacity
        .clamp(MIN_CAPACITY, MAX_CAPACITY)
        .next_power_of_two();
    let buf: Box<[UnsafeCell<f32>]> = (0..capacity).map(|_| UnsafeCell::new(0.0)).collect();
    let shared = Arc::new(Shared {
        head: CachePadded(AtomicUsize::new(0)),
        tail: CachePadded(AtomicUsize::new(0)),
        dropped: CachePadded(AtomicU64::new(0)),
        parked: AtomicBool::new(false),
        wanted: AtomicUsize::new(1),
        producer_alive: AtomicBool::new(true),
        sleeper: Mutex::new(None),
        buf,
        mask: capacity - 1,
    });
    (
        RingProducer {
            shared: Arc::clone(&shared),
            head: 0,
            cached_tail: 0,
        },
        RingConsumer {
            shared,
            tail: 0,
            cached_head: 0,
            registered: None,
        },
    )
}

/// The writing end of a [`ring`]: owned by the capture thread.
pub struct RingProducer {
    shared: Arc<Shared>,
    /// Our own `head` (the atomic is only ever stored from here).
    head: usize,
    /// Last `tail` seen; refreshed only when it says the ring is too full.
    cached_tail: usize,
}

impl RingProducer {
    /// Appends as many samples of `data` as fit and returns how many were stored. The rest (the
    /// newest samples) are dropped and counted in [`dropped`](Self::dropped). Never blocks and
    /// never allocates; wakes a consumer waiting in [`RingConsumer::wait_for`] once it has
    /// enough.
    pub fn push_slice(&mut self, data: &[f32]) -> usize {
        let shared = &*self.shared;
        let cap = shared.capacity();
        let mut free = cap - self.head.wrapping_sub(self.cached_tail);
        if free < data.len() {
            self.cached_tail = shared.tail.0.load(Ordering::Acquire);
            free = cap - self.head.wrapping_sub(self.cached_tail);
        }
        let n = data.len().min(free);
        if n > 0 {
            let start = self.head & shared.mask;
            let first = n.min(cap - start);
            // SAFETY: slots [head, head + n) are free (n <= capacity - (head - tail)), so the
            // consumer does not read them until `head` is published below; `start + first <=
            // cap` and `n - first <= start`, so both copies stay inside the buffer.
            unsafe {
                ptr::copy_nonoverlapping(data.as_ptr(), shared.base().add(start), first);
                ptr::copy_nonoverlapping(data.as_ptr().add(first), shared.base(), n - first);
            }
            self.head = self.head.wrapping_add(n);
            shared.head.0.store(self.head, Ordering::Release);
        }
        if n < data.len() {
            shared
                .dropped
                .0
                .fetch_add((data.len() - n) as u64, Ordering::Relaxed);
        }
        if n > 0 {
            // Fill level as of now (the consumer can only have made it smaller).
            shared.wake(self.head.wrapping_sub(self.cached_tail));
        }
        n
    }

    /// Samples dropped so far because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.0.load(Ordering::Relaxed)
    }

    /// Free space in samples (a lower bound: the consumer may be freeing more right now).
    pub fn free_len(&self) -> usize {
        let tail = self.shared.tail.0.load(Ordering::Acquire);
        self.shared.capacity() - self.head.wrapping_sub(tail)
    }

    /// Capacity in samples (a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }
}

impl Drop for RingProducer {
    /// Tells a waiting consumer that no more samples will come (see
    /// [`RingConsumer::is_producer_alive`]).
    fn drop(&mut self) {
        self.shared.producer_alive.store(false, Ordering::Release);
        self.shared.wake(usize::MAX);
    }
}

impl std::fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingProducer")
            .field("capacity", &self.capacity())
            .field("free", &self.free_len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// The reading end of a [`ring`]: owned by the recognizer thread.
pub struct RingConsumer {
    shared: Arc<Shared>,
    /// Our own `tail` (the atomic is only ever stored from here).
    tail: usize,
    /// Last `head` seen; refreshed only when it says there is not enough data.
    cached_head: usize,
    /// The thread stored in `shared.sleeper`, to re-register only when the consumer moves.
    registered: Option<ThreadId>,
}

impl RingConsumer {
    /// Moves up to `out.len()` of the oldest buffered samples into `out`, returning how many.
    /// Never blocks.
    pub fn pop_slice(&mut self, out: &mut [f32]) -> usize {
        let shared = &*self.shared;
        let mut avail = self.cached_head.wrapping_sub(self.tail);
        if avail < out.len() {
            self.cached_head = shared.head.0.load(Ordering::Acquire);
            avail = self.cached_head.wrapping_sub(self.tail);
        }
        let n = out.len().min(avail);
        if n > 0 {
            let cap = shared.capacity();
            let start = self.tail & shared.mask;
            let first = n.min(cap - start);
            // SAFETY: slots [tail, tail + n) were published by the producer's Release store
            // of `head` (Acquire-loaded above) and are not reused until `tail` moves past
            // them below; both copies stay inside the buffer as in `push_slice`.
            unsafe {
                ptr::copy_nonoverlapping(shared.base().add(start), out.as_mut_ptr(), first);
                ptr::copy_nonoverlapping(shared.base(), out.as_mut_ptr().add(first), n - first);
            }
            self.tail = self.tail.wrapping_add(n);
            shared.tail.0.store(self.tail, Ordering::Release);
        }
        n
    }

    /// Samples buffered now (a lower bound: the producer may be adding more).
    pub fn len(&self) -> usize {
        self.shared
            .head
            .0
            .load(Ordering::Acquire)
            .wrapping_sub(self.tail)
    }

    /// True when no sample is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Capacity in samples (a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Samples the producer dropped so far because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.0.load(Ordering::Relaxed)
    }

    /// False once the [`RingProducer`] has been dropped (the capture thread ended): what is
    /// buffered is all that will ever come.
    pub fn is_producer_alive(&self) -> bool {
        self.shared.producer_alive.load(Ordering::Acquire)
    }

    /// Waits until at least one sample is buffered or `timeout` passes; see
    /// [`wait_for`](Self::wait_for).
    pub fn wait(&mut self, timeout: Duration) -> bool {
        self.wait_for(1, timeout)
    }

    /// Blocks the calling thread (parked, no spinning) until at least `min_samples` samples are
    /// buffered, `timeout` passes, or the producer is dropped. Returns whether `min_samples`
    /// are available. `min_samples` is clamped to 1..=[`capacity`](Self::capacity) (a full
    /// ring is as much as there can ever be).
    pub fn wait_for(&mut self, min_samples: usize, timeout: Duration) -> bool {
        let min = min_samples.clamp(1, self.capacity());
        if self.len() >= min {
            return true;
        }
        let deadline = Instant::now().checked_add(timeout);
        self.register_thread();
        let shared = &*self.shared;
        loop {
            shared.wanted.store(min, Ordering::Relaxed);
            shared.parked.store(true, Ordering::SeqCst);
            // Pairs with the fence in `Shared::wake` (see the module docs).
            fence(Ordering::SeqCst);
            let ready = self.len() >= min;
            if ready || !self.is_producer_alive() {
                shared.parked.store(false, Ordering::Relaxed);
                return ready;
            }
            let now = Instant::now();
            match deadline {
                Some(d) if now >= d => {
                    shared.parked.store(false, Ordering::Relaxed);
                    return false;
                }
                Some(d) => thread::park_timeout(d - now),
                None => thread::park(),
            }
            // Woken, timed out or spurious: loop and re-check.
        }
    }

    /// Makes the current thread the one the producer unparks.
    fn register_thread(&mut self) {
        let me = thread::current();
        if self.registered == Some(me.id()) {
            return;
        }
        self.registered = Some(me.id());
        // `parked` is false here, so the producer is not using the slot; a poisoned lock only
        // means a previous holder panicked, the Option inside is still valid.
        let mut slot = self
            .shared
            .sleeper
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *slot = Some(me);
    }
}

impl std::fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingConsumer")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("dropped", &self.dropped())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(from: usize, n: usize) -> Vec<f32> {
        (from..from + n).map(|i| i as f32).collect()
    }

    #[test]
    fn ends_can_move_to_other_threads() {
        fn send<T: Send>() {}
        send::<RingProducer>();
        send::<RingConsumer>();
    }

    #[test]
    fn capacity_is_a_power_of_two_within_bounds() {
        assert_eq!(ring(0).0.capacity(), MIN_CAPACITY);
        assert_eq!(ring(1000).0.capacity(), 1024);
        assert_eq!(ring(1024).1.capacity(), 1024);
        assert_eq!(ring(usize::MAX).1.capacity(), MAX_CAPACITY);
    }

    #[test]
    fn fills_to_exact_capacity() {
        let (mut p, mut c) = ring(8);
        assert_eq!(p.push_slice(&seq(0, 8)), 8);
        assert_eq!(c.len(), 8);
        assert_eq!(p.free_len(), 0);
        assert_eq!(p.dropped(), 0);
        let mut out = [0.0; 16];
        assert_eq!(c.pop_slice(&mut out), 8);
        assert_eq!(&out[..8], &seq(0, 8)[..]);
        assert!(c.is_empty());
        assert_eq!(c.pop_slice(&mut out), 0);
    }

    #[test]
    fn wraps_around() {
        let (mut p, mut c) = ring(8);
        let mut out = [0.0; 8];
        let mut next_in = 0;
        let mut next_out = 0;
        // Odd sizes walk the indices across the end of the buffer many times.
        for round in 0..100 {
            let n = 1 + round % 7;
            assert_eq!(p.push_slice(&seq(next_in, n)), n);
            next_in += n;
            let got = c.pop_slice(&mut out[..n]);
            assert_eq!(got, n);
            assert_eq!(&out[..n], &seq(next_out, n)[..]);
            next_out += n;
        }
        // Straddling the end: 5 in, 3 out, 6 in (wraps), 8 out.
        assert_eq!(p.push_slice(&seq(next_in, 5)), 5);
        assert_eq!(c.pop_slice(&mut out[..3]), 3);
        assert_eq!(p.push_slice(&seq(next_in + 5, 6)), 6);
        assert_eq!(c.pop_slice(&mut out), 8);
        assert_eq!(&out[..], &seq(next_in + 3, 8)[..]);
        assert_eq!(p.dropped(), 0);
    }

    #[test]
    fn overflow_drops_and_counts_the_newest() {
        let (mut p, mut c) = ring(8);
        assert_eq!(p.push_slice(&seq(0, 5)), 5);
        assert_eq!(p.push_slice(&seq(5, 5)), 3); // 8, 9 dropped
        assert_eq!(p.dropped(), 2);
        assert_eq!(p.push_slice(&seq(10, 4)), 0);
        assert_eq!(p.dropped(), 6);
        assert_eq!(c.dropped(), 6);
        let mut out = [0.0; 8];
        assert_eq!(c.pop_slice(&mut out), 8);
        assert_eq!(&out[..], &seq(0, 8)[..]); // the oldest survive
        assert_eq!(p.push_slice(&seq(100, 2)), 2);
        assert_eq!(c.pop_slice(&mut out), 2);
        assert_eq!(&out[..2], &[100.0, 101.0]);
    }

    #[test]
    fn wait_times_out_without_data() {
        let (_p, mut c) = ring(16);
        let t = Instant::now();
        assert!(!c.wait_for(1, Duration::from_millis(50)));
        assert!(t.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn wait_wakes_when_enough_is_pushed() {
        let (mut p, mut c) = ring(1024);
        let t = Instant::now();
        let producer = thread::spawn(move || {
            for _ in 0..10 {
                thread::sleep(Duration::from_millis(20));
                p.push_slice(&[0.5; 10]);
            }
            p
        });
        // 100 samples arrive after ~200 ms; the 10 s timeout must not be what ends the wait.
        assert!(c.wait_for(100, Duration::from_secs(10)));
        assert!(c.len() >= 100);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let p = producer.join().unwrap();
        // A wait larger than the ring is clamped to its capacity.
        let mut p = p;
        p.push_slice(&[0.0; 1024]);
        assert!(c.wait_for(usize::MAX, Duration::from_millis(10)));
    }

    #[test]
    fn dropping_the_producer_ends_a_wait() {
        let (p, mut c) = ring(16);
        let t = Instant::now();
        let h = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            drop(p);
        });
        assert!(!c.wait_for(1, Duration::from_secs(10)));
        assert!(!c.is_producer_alive());
        assert!(t.elapsed() < Duration::from_secs(5));
        h.join().unwrap();
    }

    /// xorshift64*: deterministic "random" slice sizes without a dev-dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
    }

    #[test]
    fn two_threads_keep_order_and_lose_nothing() {
        // 10M samples: each is its own index, exact in f32 (< 2^24).
        stress(10_000_000, 4096, 3000, 5000);
        // A tiny ring: nearly every call wraps or finds it full/empty.
        stress(1_000_000, 16, 13, 11);
    }

    /// Streams `total` numbered samples through a ring of `capacity` in random slices of up
    /// to `max_push` / `max_pop`, checking order, and that nothing is dropped when the
    /// producer never offers more than fits.
    fn stress(total: usize, capacity: usize, max_push: usize, max_pop: usize) {
        const TOTAL_MAX: usize = 1 << 24;
        assert!(total <= TOTAL_MAX);
        let (mut p, mut c) = ring(capacity);
        let producer = thread::spawn(move || {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut chunk = vec![0.0f32; max_push];
            let mut next = 0usize;
            while next < total {
                let n = (1 + rng.below(chunk.len())).min(total - next);
                for (k, v) in chunk[..n].iter_mut().enumerate() {
                    *v = (next + k) as f32;
                }
                // Never offer more than fits (a full ring is not what this test is about), so
                // nothing may be dropped.
                let mut sent = 0;
                while sent < n {
                    let room = p.free_len().min(n - sent);
                    if room == 0 {
                        thread::yield_now();
                        continue;
                    }
                    assert_eq!(p.push_slice(&chunk[sent..sent + room]), room);
                    sent += room;
                }
                next += n;
            }
            p.dropped()
        });
        let mut rng = Rng(0xd1b5_4a32_d192_ed03);
        let mut out = vec![0.0f32; max_pop];
        let mut expect = 0usize;
        while expect < total {
            let want = 1 + rng.below(out.len());
            if !c.wait_for(want.min(total - expect), Duration::from_millis(100)) && c.is_empty() {
                assert!(c.is_producer_alive(), "producer ended at {expect}");
                continue;
            }
            let n = c.pop_slice(&mut out[..want]);
            for (k, &v) in out[..n].iter().enumerate() {
                assert_eq!(v, (expect + k) as f32, "sample {}", expect + k);
            }
            expect += n;
        }
        assert_eq!(producer.join().unwrap(), 0);
        assert_eq!(c.dropped(), 0);
        assert!(c.is_empty());
    }
}
