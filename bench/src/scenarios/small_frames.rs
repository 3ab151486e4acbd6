//! `small-frames`: tensorpool frames of 64 bytes, producer → consumer, frames delivered
//! and verified per second, against `aeron-rate` (raw Aeron IPC offer/poll of
//! `FrameDescriptor`-sized messages on the same channel, media driver placement and idle
//! strategies).
//!
//! Per frame the producer claims a slot, writes the 64-byte payload (sequence, source
//! bytes, checksum), writes the 256-byte header slot, commits, and offers a
//! `FrameDescriptor`; the consumer polls the descriptor, checks the slot under the seqlock,
//! verifies the payload and re-checks the seqlock. A ring of `HEADER_SLOTS` slots; see
//! `frame_stream` for the rest of the setup.

use std::time::Duration;

use crate::driver_host::DriverSpec;
use crate::error::BenchError;
use crate::frame_stream::{self, Phase};
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::aeron_rate::RATE_NAME;
use crate::sys::Scratch;
use crate::tp_host::DESCRIPTOR_CHANNEL;

/// Payload bytes of every frame.
pub const PAYLOAD: usize = 64;
/// Header ring slots (and payload slots): the producer may run this many frames ahead.
pub const HEADER_SLOTS: u32 = 16384;
/// Target: delivered frames/s / raw Aeron messages/s.
pub const RATE_TARGET: f64 = 0.5;

/// The `small-frames` scenario.
pub struct SmallFrames;

impl Scenario for SmallFrames {
    fn name(&self) -> &'static str {
        "small-frames"
    }

    fn summary(&self) -> &'static str {
        "tensorpool 64 B frames end to end, delivered and verified per second (vs aeron-rate)"
    }

    fn references(&self) -> &'static [&'static str] {
        &["aeron-rate"]
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let scratch = Scratch::new("small-frames")?;
        let spec = DriverSpec::in_scratch(&scratch, HEADER_SLOTS, &[(1, PAYLOAD as u32)], 1)?;
        let phase = Phase {
            payload: PAYLOAD,
            warmup: ctx.scaled(0.2).min(Duration::from_secs(1)),
            warmup_frames: 2 * u64::from(HEADER_SLOTS),
            window: ctx.duration,
            slices: 0,
        };
        let run = frame_stream::run(&spec, &[phase], u64::from(HEADER_SLOTS), &scratch.join(""))?;
        let delivered = &run.phases[0];
        Ok(vec![Figure::new(
            self.name(),
            "frames/s 64 B",
            delivered.frames_per_s(),
            "frames/s",
        )
        .against(ctx.figure("aeron-rate", RATE_NAME))
        .with_target(Target::RatioAtLeast(RATE_TARGET))
        .with_note(format!(
            "{} frames delivered and verified in {:.1} s, {} dropped; descriptors on \
             {DESCRIPTOR_CHANNEL}; ring of {HEADER_SLOTS} slots; whole run: {} published, {} \
             descriptors dropped, producer waited for the consumer {} times",
            delivered.frames,
            delivered.seconds,
            delivered.drops,
            run.published,
            run.descriptors_dropped,
            run.flow_waits
        ))])
    }
}
