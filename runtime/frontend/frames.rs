//! Storage of computed feature frames, addressed by absolute frame index.
//!
//! Frames are appended at the back and the consumer drops them from the front once used, so a
//! live stream needs memory for the frames not yet consumed only. Rows live in one contiguous
//! `Vec<f32>`: any run of retained frames is a single slice (one memcpy to feed the encoder), and
//! the dropped prefix is reclaimed by sliding the live rows down when the buffer would otherwise
//! grow, so the steady state does not allocate.

#[derive(Clone, Debug)]
pub(crate) struct FrameStore {
    dim: usize,
    /// Row-major rows; the live ones are `data[head * dim..]`.
    data: Vec<f32>,
    /// Rows at the front of `data` that were discarded but not yet reclaimed.
    head: usize,
    /// Absolute index of the first retained frame.
    first: usize,
}

impl FrameStore {
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            data: Vec::new(),
            head: 0,
            first: 0,
        }
    }

    /// Absolute number of frames ever pushed.
    #[inline]
    pub fn end(&self) -> usize {
        self.first + self.live()
    }

    /// Absolute index of the oldest frame still stored.
    #[inline]
    pub fn first(&self) -> usize {
        self.first
    }

    #[inline]
    fn live(&self) -> usize {
        self.data.len() / self.dim - self.head
    }

    /// Appends a row and returns it for the caller to fill.
    pub fn push(&mut self) -> &mut [f32] {
        if self.data.len() + self.dim > self.data.capacity()
            && self.head > 0
            && self.head >= self.live()
        {
            // Reuse the discarded prefix rather than reallocating. Only when it is at least as
            // large as the live part, so the memmove is amortised O(1) per frame; otherwise
            // let the Vec grow (capacity settles at about twice the largest live backlog).
            self.data.drain(..self.head * self.dim);
            self.head = 0;
        }
        let start = self.data.len();
        self.data.resize(start + self.dim, 0.0);
        &mut self.data[start..]
    }

    /// Frames `start..start + n` as one row-major slice.
    ///
    /// Panics if any of them was discarded or is not computed yet.
    pub fn rows(&self, start: usize, n: usize) -> &[f32] {
        assert!(
            start >= self.first && start + n <= self.end(),
            "fbank frames {start}..{} requested, but only {}..{} are available",
            start + n,
            self.first,
            self.end()
        );
        let begin = (self.head + start - self.first) * self.dim;
        &self.data[begin..begin + n * self.dim]
    }

    /// Drops frames before absolute index `index` (clamped to the frames computed so far).
    pub fn discard_before(&mut self, index: usize) {
        let index = index.min(self.end());
        if index <= self.first {
            return;
        }
        self.head += index - self.first;
        self.first = index;
        if self.live() == 0 {
            // Cheap full reclaim when the consumer is caught up.
            self.data.clear();
            self.head = 0;
        }
    }

    /// Forgets all frames and restarts numbering at 0, keeping the allocation.
    pub fn clear(&mut self) {
        self.data.clear();
        self.head = 0;
        self.first = 0;
    }

    /// Floats currently allocated (for tests of bounded memory).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.data.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_indices_survive_discards() {
        let mut s = FrameStore::new(2);
        for i in 0..10 {
            s.push().copy_from_slice(&[i as f32, -(i as f32)]);
        }
        s.discard_before(4);
        assert_eq!(s.first(), 4);
        assert_eq!(s.end(), 10);
        assert_eq!(s.rows(4, 2), &[4.0, -4.0, 5.0, -5.0]);
        for i in 10..1000 {
            s.push().copy_from_slice(&[i as f32, -(i as f32)]);
            s.discard_before(i - 3);
        }
        assert_eq!(
            s.rows(996, 4),
            &[996.0, -996.0, 997.0, -997.0, 998.0, -998.0, 999.0, -999.0]
        );
        // Bounded: a handful of live frames never needs more than a few rows of storage.
        assert!(s.capacity() <= 64, "capacity {}", s.capacity());
        s.discard_before(5000);
        assert_eq!(s.first(), 1000);
        assert_eq!(s.end(), 1000);
    }

    #[test]
    #[should_panic]
    fn discarded_frame_panics() {
        let mut s = FrameStore::new(1);
        s.push();
        s.push();
        s.discard_before(1);
        s.rows(0, 1);
    }
}
