//! `memcpy`: the reference for large frames. One thread copies a payload from a private
//! buffer into the slots of a ring laid out like a payload pool (`RING_SLOTS` slots of a
//! power-of-two stride, a tmpfs file mapped shared, pages touched beforehand), slot after
//! slot, for the measurement window. That is the least work a producer has to do to put
//! a frame into shared memory, so producer → consumer delivery is compared with it.
//! `large-frames` also copies into a [`CopyRing`] in slices interleaved with its frames.

use std::time::Instant;

use memmap2::MmapMut;

use crate::error::{BenchError, Context as _};
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::stats::size_label;
use crate::sys::{check_interrupted, pin_current_thread, Scratch};

/// Payload sizes of the large-frame benchmarks.
pub const PAYLOADS: [usize; 3] = [64 << 10, 640 << 10, 4 << 20];
/// Slots in the ring (a pool with `header_nslots = 64`).
pub const RING_SLOTS: usize = 64;
const MIB: f64 = 1024.0 * 1024.0;

/// Name of the bandwidth figure for `payload` bytes.
pub fn bandwidth_name(payload: usize) -> String {
    format!("bandwidth {}", size_label(payload))
}

/// Name of the frame-rate figure for `payload` bytes.
pub fn frame_rate_name(payload: usize) -> String {
    format!("frames/s {}", size_label(payload))
}

/// The stride of a pool that holds `payload` bytes: the next power of two, at least 64.
pub fn stride_for(payload: usize) -> usize {
    payload.next_power_of_two().max(64)
}

/// The `memcpy` scenario.
pub struct Memcpy;

impl Scenario for Memcpy {
    fn name(&self) -> &'static str {
        "memcpy"
    }

    fn summary(&self) -> &'static str {
        "memcpy of 64 KiB / 640 KiB / 4 MiB payloads into a 64-slot ring (reference for large frames)"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let scratch = Scratch::new("memcpy")?;
        let window = ctx.duration;
        let mut figures = Vec::new();
        for payload in PAYLOADS {
            check_interrupted()?;
            let path = scratch.join(&format!("ring-{payload}"));
            let (frames, seconds) = std::thread::scope(|s| {
                s.spawn(|| {
                    pin_current_thread(0);
                    copy_into_ring(&path, payload, window)
                })
                .join()
                .map_err(|_| BenchError::Measure("the memcpy thread panicked".into()))?
            })?;
            std::fs::remove_file(&path).setup(format!("removing {}", path.display()))?;
            let rate = frames as f64 / seconds;
            let stride = stride_for(payload);
            let note = format!(
                "ring of {RING_SLOTS} × {} = {} on tmpfs, one thread, {frames} copies",
                size_label(stride),
                size_label(stride * RING_SLOTS)
            );
            figures.push(
                Figure::new(
                    self.name(),
                    bandwidth_name(payload),
                    rate * payload as f64 / MIB,
                    "MiB/s",
                )
                .marked_reference()
                .with_note(note),
            );
            figures.push(
                Figure::new(self.name(), frame_rate_name(payload), rate, "frames/s")
                    .marked_reference(),
            );
        }
        Ok(figures)
    }
}

/// A ring of slots of `stride` bytes after `offset` bytes, in a tmpfs file mapped shared,
/// every page touched: what the copies of the memcpy references go into.
pub struct CopyRing {
    ring: MmapMut,
    offset: usize,
    stride: usize,
    slots: usize,
    next_slot: usize,
}

impl CopyRing {
    /// Creates the file at `path` (which must not exist) with [`RING_SLOTS`] slots, maps it
    /// and touches every page.
    pub fn create(
        path: &std::path::Path,
        offset: usize,
        stride: usize,
    ) -> Result<Self, BenchError> {
        Self::with_slots(path, offset, stride, RING_SLOTS)
    }

    /// As [`CopyRing::create`] with `slots` slots (at least one).
    pub fn with_slots(
        path: &std::path::Path,
        offset: usize,
        stride: usize,
        slots: usize,
    ) -> Result<Self, BenchError> {
        let slots = slots.max(1);
        let len = offset + stride * slots;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .setup(format!("creating {}", path.display()))?;
        file.set_len(len as u64)
            .setup(format!("sizing {} to {len} bytes", path.display()))?;
        // SAFETY: the file is private to its creator and no one else maps or truncates it.
        let mut ring =
            unsafe { MmapMut::map_mut(&file) }.setup(format!("mapping {}", path.display()))?;
        // Touch every page so page faults are not measured (a pool is prefaulted or warm).
        ring.fill(0);
        Ok(Self {
            ring,
            offset,
            stride,
            slots,
            next_slot: 0,
        })
    }

    /// Copies `source` into the next slot.
    pub fn copy(&mut self, source: &[u8]) {
        let start = self.offset + self.next_slot * self.stride;
        self.ring[start..start + source.len()].copy_from_slice(std::hint::black_box(source));
        // Read one byte back so the copy cannot be elided.
        std::hint::black_box(self.ring[start + source.len().saturating_sub(1)]);
        self.next_slot = (self.next_slot + 1) % self.slots;
    }
}

impl CopyRing {
    /// As [`CopyRing::copy`], in `piece`-byte `memcpy`s (how the frame producers fill a
    /// payload, see `tp_host::fill`).
    pub fn copy_in_pieces(&mut self, source: &[u8], piece: usize) {
        let start = self.offset + self.next_slot * self.stride;
        let slot = &mut self.ring[start..start + source.len()];
        for (dst, src) in slot
            .chunks_mut(piece.max(1))
            .zip(std::hint::black_box(source).chunks(piece.max(1)))
        {
            dst.copy_from_slice(src);
        }
        std::hint::black_box(self.ring[start + source.len().saturating_sub(1)]);
        self.next_slot = (self.next_slot + 1) % self.slots;
    }
}

/// Copies `payload` bytes into successive slots of a fresh ring at `path` for `window`;
/// returns (copies, seconds).
fn copy_into_ring(
    path: &std::path::Path,
    payload: usize,
    window: std::time::Duration,
) -> Result<(u64, f64), BenchError> {
    let mut ring = CopyRing::create(path, 0, stride_for(payload))?;
    let source: Vec<u8> = (0..payload).map(|i| (i * 31 + 7) as u8).collect();

    // Warm-up: one pass over the ring.
    for _ in 0..RING_SLOTS {
        ring.copy(&source);
    }
    let start = Instant::now();
    let mut copies = 0u64;
    loop {
        ring.copy(&source);
        copies += 1;
        let elapsed = start.elapsed();
        if elapsed >= window {
            return Ok((copies, elapsed.as_secs_f64()));
        }
        if copies % 64 == 0 {
            check_interrupted()?;
        }
    }
}
