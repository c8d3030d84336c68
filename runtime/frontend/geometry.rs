//! Frame geometry: where each analysis frame sits in the sample stream, and how many frames a
//! given number of received samples yields (Kaldi's `FirstSampleOfFrame` / `NumFrames`).
//!
//! Sample positions are `i64`/`u64` so a never-ending stream does not overflow on 32-bit boards
//! (2^32 samples is only ~74 hours at 16 kHz); frame indices stay `usize`.

/// Sizes (in samples) of the analysis frames and how they are laid out over the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameGeometry {
    /// Samples per analysis window (400 = 25 ms at 16 kHz).
    pub frame_length: usize,
    /// Samples between consecutive frames (160 = 10 ms at 16 kHz).
    pub frame_shift: usize,
    /// FFT size: the window zero-padded (512 for a 400-sample window).
    pub padded_length: usize,
    /// Kaldi's `snip_edges`: true = frames start at sample 0 and must fit entirely in the signal;
    /// false = frame `i` is centred on `i * shift + shift / 2`, edges filled by reflection.
    pub snip_edges: bool,
}

impl FrameGeometry {
    /// Absolute index of the first sample of `frame` (negative for the first frame when
    /// `snip_edges` is false: its window starts before the signal).
    #[inline]
    pub fn first_sample(&self, frame: usize) -> i64 {
        let shift = self.frame_shift as i64;
        let frame = frame as i64;
        if self.snip_edges {
            frame * shift
        } else {
            frame * shift + shift / 2 - (self.frame_length / 2) as i64
        }
    }

    /// One past the last sample of `frame`.
    #[inline]
    pub fn end_sample(&self, frame: usize) -> i64 {
        self.first_sample(frame) + self.frame_length as i64
    }

    /// Number of frames available from `num_samples` samples.
    ///
    /// With `flush == false` (more input may follow) only frames whose whole window has been
    /// received count; with `flush == true` (end of input) the trailing frames whose window runs
    /// past the end count too, since they are completed by reflection. With `snip_edges` both are
    /// the same: only complete windows, ever.
    pub fn num_frames(&self, num_samples: u64, flush: bool) -> usize {
        let shift = self.frame_shift as u64;
        let length = self.frame_length as u64;
        if self.snip_edges {
            if num_samples < length {
                return 0;
            }
            return ((num_samples - length) / shift + 1) as usize;
        }
        // Rounding length / shift to the nearest integer keeps the frame count an obvious
        // function of the signal length.
        let mut frames = ((num_samples + shift / 2) / shift) as usize;
        if flush {
            return frames;
        }
        // Without flushing, drop trailing frames that still need samples we have not received.
        // At most frame_length / frame_shift iterations.
        while frames > 0 && self.end_sample(frames - 1) > num_samples as i64 {
            frames -= 1;
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn centred() -> FrameGeometry {
        FrameGeometry {
            frame_length: 400,
            frame_shift: 160,
            padded_length: 512,
            snip_edges: false,
        }
    }

    #[test]
    fn first_sample_is_centred() {
        let g = centred();
        assert_eq!(g.first_sample(0), -120);
        assert_eq!(g.first_sample(1), 40);
        assert_eq!(g.end_sample(0), 280);
        assert_eq!(g.first_sample(10), 10 * 160 + 80 - 200);
    }

    #[test]
    fn num_frames_flush_rounds_to_nearest() {
        let g = centred();
        for (n, want) in [
            (0, 0),
            (1, 0),
            (79, 0),
            (80, 1),
            (239, 1),
            (240, 2),
            (400, 3),
            (16000, 100),
        ] {
            assert_eq!(g.num_frames(n, true), want, "n = {n}");
        }
    }

    #[test]
    fn num_frames_without_flush_needs_whole_windows() {
        let g = centred();
        // Frame 0 covers [-120, 280): with reflection at the start it only needs 280 samples.
        for (n, want) in [
            (0, 0),
            (80, 0),
            (279, 0),
            (280, 1),
            (439, 1),
            (440, 2),
            (599, 2),
            (600, 3),
        ] {
            assert_eq!(g.num_frames(n, false), want, "n = {n}");
        }
        // Never more than flushing would give, and every counted frame fits in the input.
        for n in 0..5000u64 {
            let ready = g.num_frames(n, false);
            assert!(ready <= g.num_frames(n, true));
            if ready > 0 {
                assert!(g.end_sample(ready - 1) <= n as i64);
            }
            assert!(
                g.end_sample(ready) > n as i64,
                "n = {n}: frame {ready} also fits"
            );
        }
    }

    #[test]
    fn num_frames_snip_edges() {
        let g = FrameGeometry {
            snip_edges: true,
            ..centred()
        };
        assert_eq!(g.first_sample(3), 480);
        for flush in [false, true] {
            assert_eq!(g.num_frames(399, flush), 0);
            assert_eq!(g.num_frames(400, flush), 1);
            assert_eq!(g.num_frames(559, flush), 1);
            assert_eq!(g.num_frames(560, flush), 2);
        }
    }
}
