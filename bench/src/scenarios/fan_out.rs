//! `fan-out`: one producer to 1, 2, 4 and 8 consumers, at 640 KiB and 64 B, with the
//! example binaries as README runs them (`examples/producer --rate 0`,
//! `examples/consumer --verify`), each a process of its own, against an in-process driver
//! (64-slot ring), all consumers on the stream's shared descriptor stream.
//!
//! Per point: frames each consumer delivered and verified per second (its own summary,
//! over its first-to-last frame; mean, with the slowest and fastest in the note) and
//! their sum; the producer's frames per second and its CPU time per frame (from
//! `getrusage(RUSAGE_CHILDREN)` around the producer's run: only the producer is reaped in
//! between). The reference for the producer is the same program with no consumer,
//! measured the same way in the same run ([`ExamplePair::publish_alone`]'s setup).
//!
//! The producer never waits for its consumers, so its CPU per frame must not grow with
//! them. Its wall-clock rate can still fall when the consumers are more processes than
//! there are cores: they then take CPU time from it. The notes give the core count.

use std::path::Path;
use std::time::Duration;

use crate::driver_host::{DriverSpec, InProcessDriver};
use crate::error::BenchError;
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::driver_scale::locate_built_program;
use crate::scenarios::examples::{number, spawn, summary, ExamplePair, SMALL_PAYLOAD};
use crate::scenarios::large_frames::TARGET_PAYLOAD;
use crate::scenarios::memcpy;
use crate::stats::size_label;
use crate::sys::{check_interrupted, cpu_count, ChildProcess, Scratch};

/// Consumers per point of the curve.
pub const CONSUMERS: [usize; 4] = [1, 2, 4, 8];
/// Target: the producer's CPU per frame with consumers / without, at most.
const PRODUCER_CPU_TARGET: f64 = 1.1;
/// Target: the producer's rate with consumers / without, at least.
const PRODUCER_RATE_TARGET: f64 = 0.9;
/// Header ring slots: the examples scenario's ring.
const RING_SLOTS: u32 = memcpy::RING_SLOTS as u32;

/// The `fan-out` scenario.
pub struct FanOut;

impl Scenario for FanOut {
    fn name(&self) -> &'static str {
        "fan-out"
    }

    fn summary(&self) -> &'static str {
        "examples/producer → 1, 2, 4, 8 examples/consumer --verify, 640 KiB and 64 B (per consumer, total, producer vs alone)"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let producer = locate_built_program(
            ctx,
            "examples/producer",
            &["-p", "tensorpool", "--examples"],
        )?;
        let consumer = locate_built_program(
            ctx,
            "examples/consumer",
            &["-p", "tensorpool", "--examples"],
        )?;
        let scratch = Scratch::new("fan-out")?;
        let pools = [
            (1u16, 4096u32),
            (2, memcpy::stride_for(TARGET_PAYLOAD) as u32),
        ];
        let spec = DriverSpec::in_scratch(&scratch, RING_SLOTS, &pools, 1)?;
        let _driver = InProcessDriver::start(&spec, None)?;
        let pair = ExamplePair {
            tag: "fan-out",
            producer,
            consumer,
            spec: &spec,
            scratch: &scratch,
        };
        let window = ctx.scaled(0.4);
        let mut figures = Vec::new();
        for payload in [TARGET_PAYLOAD, SMALL_PAYLOAD] {
            let label = size_label(payload);
            let alone = run_point(&pair, payload, 0, window)?;
            let rate_alone = Figure::new(
                self.name(),
                format!("producer alone {label}"),
                alone.producer_rate,
                "frames/s",
            )
            .marked_reference()
            .with_note(format!(
                "{} frames; {} cores for the producer, the consumers and the driver thread",
                alone.frames_sent,
                cpu_count()
            ));
            let cpu_alone = Figure::new(
                self.name(),
                format!("producer CPU per frame alone {label}"),
                alone.producer_cpu_ns,
                "ns",
            )
            .marked_reference();
            figures.extend([rate_alone.clone(), cpu_alone.clone()]);
            let mut single: Option<Figure> = None;
            for consumers in CONSUMERS {
                let point = run_point(&pair, payload, consumers, window)?;
                let per_consumer = Figure::new(
                    self.name(),
                    format!("per consumer, {consumers} consumers {label}"),
                    point.mean_consumer_rate(),
                    "frames/s",
                )
                .against(single.as_ref())
                .with_note(point.note());
                if consumers == 1 {
                    single = Some(per_consumer.clone().marked_reference());
                }
                figures.extend([
                    per_consumer,
                    Figure::new(
                        self.name(),
                        format!("total delivered, {consumers} consumers {label}"),
                        point.consumer_rates.iter().sum(),
                        "frames/s",
                    )
                    .against(Some(&rate_alone)),
                    Figure::new(
                        self.name(),
                        format!("producer, {consumers} consumers {label}"),
                        point.producer_rate,
                        "frames/s",
                    )
                    .against(Some(&rate_alone))
                    .with_target(Target::RatioAtLeast(PRODUCER_RATE_TARGET)),
                    Figure::new(
                        self.name(),
                        format!("producer CPU per frame, {consumers} consumers {label}"),
                        point.producer_cpu_ns,
                        "ns",
                    )
                    .against(Some(&cpu_alone))
                    .with_target(Target::RatioAtMost(PRODUCER_CPU_TARGET)),
                ]);
            }
        }
        Ok(figures)
    }
}

/// What one point of the curve measured.
struct Point {
    consumers: usize,
    frames_sent: u64,
    producer_rate: f64,
    /// The producer's CPU time (user + system) per frame sent, ns.
    producer_cpu_ns: f64,
    /// Each consumer's delivered and verified frames per second.
    consumer_rates: Vec<f64>,
    /// Frames each consumer delivered.
    delivered: Vec<u64>,
    /// Frames all consumers dropped (any reason).
    drops: u64,
}

impl Point {
    fn mean_consumer_rate(&self) -> f64 {
        self.consumer_rates.iter().sum::<f64>() / self.consumer_rates.len().max(1) as f64
    }

    fn note(&self) -> String {
        let low = self
            .consumer_rates
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let high = self
            .consumer_rates
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        format!(
            "{} consumers: slowest {low:.0}, fastest {high:.0} frames/s; {} frames sent, {} \
             delivered and verified in all ({} per consumer on average), {} dropped in all",
            self.consumers,
            self.frames_sent,
            self.delivered.iter().sum::<u64>(),
            self.delivered.iter().sum::<u64>() / self.consumers.max(1) as u64,
            self.drops
        )
    }
}

/// CPU time (user + system) of the reaped children of this process, ns.
fn children_cpu_ns() -> f64 {
    // SAFETY: getrusage writes into the struct we pass and has no other preconditions.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let ns = |t: libc::timeval| t.tv_sec as f64 * 1e9 + t.tv_usec as f64 * 1e3;
    ns(usage.ru_utime) + ns(usage.ru_stime)
}

/// Starts `consumers` consumers, runs the producer for about `window`, stops the consumers.
fn run_point(
    pair: &ExamplePair<'_>,
    payload: usize,
    consumers: usize,
    window: Duration,
) -> Result<Point, BenchError> {
    check_interrupted()?;
    let common = pair.common_args();
    let common: Vec<&str> = common.iter().map(String::as_str).collect();
    let label = format!("{}x-{}", consumers, size_label(payload).replace(' ', ""));
    let outs: Vec<_> = (0..consumers)
        .map(|i| pair.scratch.join(&format!("consumer-{label}-{i}")))
        .collect();
    let mut running: Vec<ChildProcess> = Vec::with_capacity(consumers);
    for out in &outs {
        running.push(spawn(
            &pair.consumer,
            &common,
            &["--frames", "1000000000", "--verify"],
            out,
        )?);
    }
    // Let every consumer attach before the first frame.
    std::thread::sleep(Duration::from_millis(500 + 100 * consumers as u64));
    for consumer in &mut running {
        consumer.check_running()?;
    }
    let producer_out = pair.scratch.join(&format!("producer-{label}"));
    let cpu_before = children_cpu_ns();
    pair.publish(payload, window, &common, &producer_out)?;
    let producer_cpu = children_cpu_ns() - cpu_before;
    // The consumers have read what they could; SIGTERM makes them print their summaries.
    std::thread::sleep(Duration::from_millis(200));
    for consumer in &mut running {
        consumer.terminate(Duration::from_secs(5));
    }
    let sent = summary(&producer_out)?;
    let frames_sent = number(&sent, "frames_sent") as u64;
    let mut point = Point {
        consumers,
        frames_sent,
        producer_rate: number(&sent, "frames_per_s"),
        producer_cpu_ns: producer_cpu / frames_sent.max(1) as f64,
        consumer_rates: Vec::with_capacity(consumers),
        delivered: Vec::with_capacity(consumers),
        drops: 0,
    };
    for out in &outs {
        consumer_summary(out, &mut point)?;
    }
    Ok(point)
}

/// Adds one consumer's summary to `point`; a consumer that verified fewer frames than it
/// received, or received none, fails the run.
fn consumer_summary(out: &Path, point: &mut Point) -> Result<(), BenchError> {
    let line = summary(out)?;
    let received = number(&line, "frames_received") as u64;
    let verified = number(&line, "frames_verified") as u64;
    if verified != received || received == 0 {
        return Err(BenchError::Measure(format!(
            "a consumer ({}) verified {verified} of {received} frames received",
            out.display()
        )));
    }
    point.consumer_rates.push(number(&line, "frames_per_s"));
    point.delivered.push(received);
    point.drops += [
        "drops_gap",
        "drops_late",
        "drops_resync",
        "drops_invalid",
        "drops_other",
    ]
    .iter()
    .map(|key| number(&line, key))
    .sum::<f64>() as u64;
    Ok(())
}
