//! `frame-sweep`: tensorpool producer → consumer throughput from 64 B to 64 MiB frames, in
//! steps of 16×, each against memcpy of the same size measured the same way.
//!
//! Each size is a phase of [`frame_stream`] (as `large-frames`): the producer (core 0)
//! fills every payload in place and commits it, the consumer (core 1) verifies each frame
//! by its stamps and checksum, and the same producer thread copies the same source into a
//! private ring shaped like the pool in slices interleaved with the frames' slices. The
//! figure is the median of the slices, in frames/s and GiB/s.
//!
//! The ring (and the flow-control window, and the interleaved memcpy's ring) shrinks as
//! frames grow, so the pools of one driver stay within a fraction of /dev/shm: 1,024 slots
//! for 64 B and 1 KiB, 64 for 16 KiB and 256 KiB, 8 for 4 MiB and 64 MiB (8 × 64 MiB +
//! 8 × 4 MiB of pools, and as much again for the memcpy rings: about 1.1 GiB of tmpfs).
//! Each ring size is a driver and a stream of its own, run one after the other.

use std::time::{Duration, Instant};

use tensorpool::shm::layout::SUPERBLOCK_SIZE;

use crate::driver_host::DriverSpec;
use crate::error::BenchError;
use crate::frame_stream::{self, Delivered, Phase};
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::memcpy::{stride_for, CopyRing};
use crate::stats::size_label;
use crate::sys::{check_interrupted, pin_current_thread, Scratch};
use crate::tp_host::STAMP_STRIDE;

/// `(ring slots, payload sizes)`: the sizes measured, grouped by the ring they run in.
pub const GROUPS: [(u32, [usize; 2]); 3] = [
    (1024, [64, 1 << 10]),
    (64, [16 << 10, 256 << 10]),
    (8, [4 << 20, 64 << 20]),
];
/// Recording slices per size, each followed by an interleaved memcpy slice.
const SLICES: u32 = 6;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The `frame-sweep` scenario.
pub struct FrameSweep;

impl Scenario for FrameSweep {
    fn name(&self) -> &'static str {
        "frame-sweep"
    }

    fn summary(&self) -> &'static str {
        "tensorpool frames of 64 B, 1 KiB, 16 KiB, 256 KiB, 4 MiB and 64 MiB (vs interleaved memcpy of each size)"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let mut figures = Vec::new();
        for (slots, payloads) in GROUPS {
            check_interrupted()?;
            let scratch = Scratch::new("frame-sweep")?;
            let pools: Vec<(u16, u32)> = payloads
                .iter()
                .zip(1u16..)
                .map(|(payload, id)| (id, stride_for(*payload) as u32))
                .collect();
            let spec = DriverSpec::in_scratch(&scratch, slots, &pools, 1)?;
            let phases: Vec<Phase> = payloads
                .iter()
                .map(|payload| Phase {
                    payload: *payload,
                    warmup: ctx.scaled(0.1).min(Duration::from_millis(500)),
                    warmup_frames: 2 * u64::from(slots),
                    window: ctx.scaled(0.5),
                    slices: SLICES,
                })
                .collect();
            let run = frame_stream::run(&spec, &phases, u64::from(slots), &scratch.join(""))?;
            for delivered in &run.phases {
                figures.extend(self.figures_for(delivered, slots, &run));
                if delivered.payload >= PIECES_FROM {
                    let slice = ctx.scaled(0.5) / SLICES;
                    let path = scratch.join(&format!("pieces-{}", delivered.payload));
                    figures.extend(self.pieces_figures(delivered.payload, slots, &path, slice)?);
                }
            }
        }
        Ok(figures)
    }
}

/// From this payload size on, the memcpy reference is also measured in pieces.
const PIECES_FROM: usize = 256 << 10;

impl FrameSweep {
    /// The whole-`memcpy` reference against the same copies in [`STAMP_STRIDE`] pieces, as
    /// the producer fills a frame: [`SLICES`] slices of each, alternating, on core 0, into a
    /// ring of `slots` slots shaped like the pool. Tells whether a frames/memcpy ratio
    /// above 1 comes from how the two copy rather than from the transport.
    fn pieces_figures(
        &self,
        payload: usize,
        slots: u32,
        path: &std::path::Path,
        slice: Duration,
    ) -> Result<[Figure; 2], BenchError> {
        let rates = std::thread::scope(|s| {
            s.spawn(|| -> Result<[Vec<f64>; 2], BenchError> {
                pin_current_thread(0);
                let mut ring = CopyRing::with_slots(
                    path,
                    SUPERBLOCK_SIZE,
                    stride_for(payload),
                    slots as usize,
                )?;
                let source: Vec<u8> = (0..payload).map(|i| (i * 31 + 7) as u8).collect();
                let mut rates = [Vec::new(), Vec::new()];
                for round in 0..2 * SLICES {
                    check_interrupted()?;
                    let pieces = round % 2 == 1;
                    let start = Instant::now();
                    let mut copies = 0u64;
                    while start.elapsed() < slice || copies < u64::from(slots) {
                        if pieces {
                            ring.copy_in_pieces(&source, STAMP_STRIDE);
                        } else {
                            ring.copy(&source);
                        }
                        copies += 1;
                    }
                    rates[usize::from(pieces)].push(copies as f64 / start.elapsed().as_secs_f64());
                }
                Ok(rates)
            })
            .join()
            .map_err(|_| BenchError::Measure("the memcpy thread panicked".into()))?
        })?;
        let _ = std::fs::remove_file(path);
        let label = size_label(payload);
        let gib = |rates: &[f64]| frame_stream::median(rates) * payload as f64 / GIB;
        let whole = Figure::new(
            self.name(),
            format!("memcpy whole {label}"),
            gib(&rates[0]),
            "GiB/s",
        )
        .marked_reference()
        .with_note(format!(
            "{SLICES} slices of one memcpy per frame, alternating with the pieces' slices"
        ));
        let pieces = Figure::new(
            self.name(),
            format!("memcpy in {} pieces {label}", size_label(STAMP_STRIDE)),
            gib(&rates[1]),
            "GiB/s",
        )
        .against(Some(&whole));
        Ok([whole, pieces])
    }

    fn figures_for(
        &self,
        delivered: &Delivered,
        slots: u32,
        run: &frame_stream::StreamRun,
    ) -> [Figure; 3] {
        let payload = delivered.payload;
        let label = size_label(payload);
        let gib = |rate: f64| rate * payload as f64 / GIB;
        let memcpy_rate = frame_stream::median(&delivered.memcpy_rates);
        let spread = |rates: &[f64]| {
            let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
            let high = rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            format!("{:.2}–{:.2} GiB/s", gib(low), gib(high))
        };
        let memcpy = Figure::new(
            self.name(),
            format!("memcpy interleaved {label}"),
            gib(memcpy_rate),
            "GiB/s",
        )
        .marked_reference()
        .with_note(format!(
            "{memcpy_rate:.0} copies/s into a {slots}-slot ring of {} shaped like the pool, \
             {SLICES} slices alternating with the frames'; slices {}",
            size_label(stride_for(payload)),
            spread(&delivered.memcpy_rates)
        ));
        let bandwidth = Figure::new(
            self.name(),
            format!("bandwidth {label}"),
            delivered.mib_per_s() / 1024.0,
            "GiB/s",
        )
        .against(Some(&memcpy))
        .with_note(format!(
            "{} frames delivered and verified in {:.1} s (median of {SLICES} slices, {}), {} \
             dropped; {slots}-slot ring; the ring's run: {} published, producer waited for the \
             consumer {} times",
            delivered.frames,
            delivered.seconds,
            spread(&delivered.slice_rates),
            delivered.drops,
            run.published,
            run.flow_waits
        ));
        let frames = Figure::new(
            self.name(),
            format!("frames/s {label}"),
            delivered.frames_per_s(),
            "frames/s",
        );
        [memcpy, bandwidth, frames]
    }
}
