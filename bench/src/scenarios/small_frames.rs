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
/// Payload slot strides measured: the default (one line per frame) and the A/B.
const PAYLOAD_STRIDES: [u32; 2] = [PAYLOAD as u32, 2 * PAYLOAD as u32];
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

    /// Measures the default layout (payload slots of 64 B, one per frame) and, as an A/B,
    /// payload slots of 128 B (the second line of each pair empty), in the order A B B A,
    /// each for half the window: a figure is the mean of its two halves.
    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let mut halves: [Vec<(f64, frame_stream::StreamRun)>; 2] = [Vec::new(), Vec::new()];
        for variant in [0, 1, 1, 0] {
            let scratch = Scratch::new("small-frames")?;
            let stride = PAYLOAD_STRIDES[variant];
            let spec = DriverSpec::in_scratch(&scratch, HEADER_SLOTS, &[(1, stride)], 1)?;
            let phase = Phase {
                payload: PAYLOAD,
                warmup: ctx.scaled(0.2).min(Duration::from_secs(1)),
                warmup_frames: 2 * u64::from(HEADER_SLOTS),
                window: ctx.duration / 2,
                slices: 0,
            };
            let run =
                frame_stream::run(&spec, &[phase], u64::from(HEADER_SLOTS), &scratch.join(""))?;
            halves[variant].push((run.phases[0].frames_per_s(), run));
        }
        let mean = |v: &[(f64, frame_stream::StreamRun)]| {
            v.iter().map(|(rate, _)| rate).sum::<f64>() / v.len() as f64
        };
        let main = Figure::new(self.name(), "frames/s 64 B", mean(&halves[0]), "frames/s")
            .against(ctx.figure("aeron-rate", RATE_NAME))
            .with_target(Target::RatioAtLeast(RATE_TARGET));
        let wide = Figure::new(
            self.name(),
            "frames/s 64 B, 128 B payload stride",
            mean(&halves[1]),
            "frames/s",
        )
        .against(Some(&main))
        .with_note(
            "A/B: payload slots of 128 B, so consecutive frames' payload lines never share \
             a 128-byte pair that the adjacent-line prefetcher fetches together"
                .to_string(),
        );
        let (frames, seconds, drops, published, descriptors_dropped, flow_waits) = halves[0]
            .iter()
            .fold((0, 0.0, 0, 0, 0, 0), |acc, (_, run)| {
                let d = &run.phases[0];
                (
                    acc.0 + d.frames,
                    acc.1 + d.seconds,
                    acc.2 + d.drops,
                    acc.3 + run.published,
                    acc.4 + run.descriptors_dropped,
                    acc.5 + run.flow_waits,
                )
            });
        Ok(vec![
            main.with_note(format!(
                "{frames} frames delivered and verified in {seconds:.1} s, {drops} dropped; \
             descriptors on {DESCRIPTOR_CHANNEL}; ring of {HEADER_SLOTS} slots; both halves: \
             {published} published, {descriptors_dropped} descriptors dropped, producer \
             waited for the consumer {flow_waits} times"
            )),
            wide,
        ])
    }
}
