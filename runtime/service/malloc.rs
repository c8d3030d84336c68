//! The C allocator's arena count, capped at start-up.
//!
//! glibc gives a thread that finds every malloc arena locked a new arena, up to 8 per core, and
//! keeps each arena's freed memory for reuse by that arena only. The Wyoming server runs one
//! thread per connection, so under load (lingering connections overlapping new ones) every
//! stream's few MB of decoder state ended up in yet another arena: RSS grew by ~3.5 MiB per
//! transcription until 16 arenas were full (seen in CI: `tests/wyoming.rs` garbage rounds,
//! 40 → 50 MiB). Two arenas keep memory flat; the allocator is not on the hot path (the decoder
//! reuses its buffers), so contention costs nothing measurable. `MALLOC_ARENA_MAX` in the
//! environment still wins, for whoever wants to tune it.

/// Arenas allowed when the environment does not say.
pub const ARENA_MAX: i32 = 2;

/// Caps the arena count (glibc only; other C libraries keep their own policy). Call before
/// any thread is started.
pub fn cap_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; no thread has been started yet.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) };
        if ok != 1 {
            log::debug!("mallopt(M_ARENA_MAX, {ARENA_MAX}) failed; the allocator keeps its default");
        }
    }
}

/// Returns the heap's freed pages to the kernel, and logs what the heap held (debug); called
/// after each stage of a model load. Loading parses protobufs, builds and discards tract's intermediate graphs,
/// and leaves holes all over the heap that glibc only trims from the top; the recognizer then
/// reuses its buffers chunk after chunk, so the holes would stay resident for the whole run.
pub fn release_freed(what: &str) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: both only read or trim the allocator's own state.
        let before = unsafe { libc::mallinfo2() };
        unsafe { libc::malloc_trim(0) };
        log::debug!(
            "{what}: heap {} kB in use, {} kB free, {} kB in mmapped blocks; freed pages returned",
            before.uordblks / 1024,
            before.fordblks / 1024,
            before.hblkhd / 1024
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = what;
}
