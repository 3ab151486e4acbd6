//! `tp-pingpong`: tensorpool frames of 64 B and 64 KiB ping-ponged between two processes,
//! against `aeron-pingpong` and `iceoryx2-pingpong` of the same sizes.
//!
//! The ping (a thread of this process) produces stream 10000 and consumes stream 10001;
//! the pong (this executable re-run as `--role tp-pong`) consumes 10000 and produces
//! 10001, each direction with a descriptor stream of its own. Both sides are pinned, to
//! cores 0 and 1 when there are two; the SHM driver (with its embedded media driver) runs
//! on an unpinned thread of the ping process, as the media driver does in
//! `aeron-pingpong`. The ping copies its message into a claimed payload slot and commits
//! it; the pong copies the frame it receives into a slot of its own stream and commits that,
//! so each direction moves the payload once, as in the references. Round trips are timed
//! by the same loop (`pingpong::measure_round_trips`) into an HDR histogram.
//!
//! Each size is measured in alternating 100 ms blocks of several variants in one run: the
//! default (the figures with targets); both consumers in latency mode
//! (`ConsumerConfig::watch_next_slot`; every message tells the pong the mode of its
//! block); and the driver thread pinned to the ping's core, then to the pong's (it is
//! unpinned otherwise; a 2-core machine has no spare core to give it). Alternating on the
//! same processes is what makes the A/B fair here: this VM's two vCPUs move between host
//! cores, and two separate measurements seconds apart can differ by 3× for that alone.

use std::path::Path;
use std::time::{Duration, Instant};

use tensorpool::client::consumer::{monotonic_now_ns, Consumer, FramePoll};
use tensorpool::client::producer::{FrameClaim, Producer, PublishError};
use tensorpool::client::tensor::bytes_header;
use tensorpool::protocol::control::TensorHeader;

use crate::aeron_host::SETUP_TIMEOUT;
use crate::driver_host::{DriverSpec, InProcessDriver, FIRST_STREAM_ID};
use crate::error::{BenchError, Context as _};
use crate::pingpong::{self, seq_of, PingTransport, END, SIZES};
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::stats::{latency_name, Latency};
use crate::sys::{check_interrupted, core_pair, pin_current_thread, Scratch};
use crate::tp_host::{self, DutyPump};

/// The `--role` of the pong process.
pub const PONG_ROLE: &str = "tp-pong";
/// Length of one block of round trips in one mode; blocks alternate between modes.
const MODE_BLOCK: Duration = Duration::from_millis(100);
/// Round trips at the start of a block not recorded (the pong learns the mode from the
/// first message of the block).
const MODE_SETTLE: Duration = Duration::from_millis(1);
/// Byte of every message that tells the pong which mode to read in (1: latency mode).
const MODE_BYTE: usize = 8;
/// How one block of round trips runs (the A/B variants of a run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Variant {
    /// Both consumers in latency mode (`ConsumerConfig::watch_next_slot`).
    watch: bool,
    /// The driver thread pinned to this core (`None`: unpinned, the default).
    driver_core: Option<usize>,
    /// Suffix of its figures' names (empty for the default).
    suffix: &'static str,
}

/// The default: consumers as configured by default, driver thread unpinned.
const DEFAULT: Variant = Variant {
    watch: false,
    driver_core: None,
    suffix: "",
};

/// The variants measured, the default first. The driver placements exist only on a
/// machine with at least two cores (ping on core 0, pong on core 1).
fn variants(cores: Option<(usize, usize)>) -> Vec<Variant> {
    let mut variants = vec![
        DEFAULT,
        Variant {
            watch: true,
            suffix: ", watching next slot",
            ..DEFAULT
        },
    ];
    if let Some((ping, pong)) = cores {
        variants.push(Variant {
            driver_core: Some(ping),
            suffix: ", driver on the ping's core",
            ..DEFAULT
        });
        variants.push(Variant {
            driver_core: Some(pong),
            suffix: ", driver on the pong's core",
            ..DEFAULT
        });
    }
    variants
}

/// Latencies per size, one entry per variant.
type Measured = Vec<Vec<(usize, Latency)>>;
/// Stream the ping produces.
const PING_STREAM: u32 = FIRST_STREAM_ID;
/// Stream the pong produces.
const PONG_STREAM: u32 = FIRST_STREAM_ID + 1;
/// Descriptor stream of each direction.
const PING_DESCRIPTORS: u32 = 2401;
const PONG_DESCRIPTORS: u32 = 2402;
/// Header slots of both streams.
const HEADER_SLOTS: u32 = 64;
/// Pools of both streams: one per message size.
const POOLS: [(u16, u32); 2] = [(1, 64), (2, 64 << 10)];
/// Marks the first 8 bytes of a handshake probe (never a measured sequence number).
const PROBE: u64 = 1 << 62;
/// How often the ping repeats a probe until the pong answers.
const PROBE_PERIOD: Duration = Duration::from_millis(20);
/// Target against raw Aeron IPC: p50 and p99 at most this many times Aeron's.
pub const AERON_RATIO_TARGET: f64 = 1.5;

/// The `tp-pingpong` scenario.
pub struct TpPingPong;

impl Scenario for TpPingPong {
    fn name(&self) -> &'static str {
        "tp-pingpong"
    }

    fn summary(&self) -> &'static str {
        "tensorpool frame ping-pong of 64 B and 64 KiB between two processes (vs Aeron and iceoryx2)"
    }

    fn references(&self) -> &'static [&'static str] {
        &["line-pingpong", "aeron-pingpong", "iceoryx2-pingpong"]
    }

    /// Measures every [`Variant`] in alternating blocks of the same round trips: an A/B
    /// on the same processes, cores and moment, which a VM whose vCPUs move between host
    /// cores needs. The default's rows carry the targets; each variant's rows are
    /// compared with the default's.
    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let variants = variants(core_pair());
        let measured = self.measure(ctx, &variants)?;
        let mut figures = self.figures(ctx, &measured[0]);
        for (variant, latencies) in variants.iter().zip(&measured).skip(1) {
            figures.extend(variant_figures(
                self.name(),
                &figures,
                latencies,
                variant.suffix,
            ));
        }
        figures.extend(floor_figures(self.name(), ctx, &figures));
        Ok(figures)
    }
}

impl TpPingPong {
    fn measure(&self, ctx: &RunContext, variants: &[Variant]) -> Result<Measured, BenchError> {
        let scratch = Scratch::new("tp-pingpong")?;
        let spec = DriverSpec::in_scratch(&scratch, HEADER_SLOTS, &POOLS, 2)?;
        let driver = InProcessDriver::start(&spec, None)?;
        let (ping_core, pong_core) = match core_pair() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let mut pong = pingpong::spawn_pong(
            PONG_ROLE,
            &[
                ("--aeron-dir", driver.aeron_dir()),
                ("--shm-dir", spec.shm_dir.as_path()),
            ],
            pong_core,
        )?;
        let warmup = ctx.scaled(0.3).min(Duration::from_secs(1));
        let window = ctx.duration;
        let measure = || -> Result<Measured, BenchError> {
            if let Some(core) = ping_core {
                pin_current_thread(core);
            }
            let mut ping = TpPing::connect(&spec.shm_dir, driver.aeron_dir())?;
            ping.handshake()?;
            ping.measure_alternating(variants, warmup, window, |core| driver.place(core))
        };
        let result = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("tp-ping".into())
                .spawn_scoped(s, measure)
                .setup("spawning the ping thread")?
                .join()
                .map_err(|_| BenchError::Measure("the ping thread panicked".into()))?
        });
        if pong.wait_timeout(Duration::from_secs(2)).is_none() {
            pong.kill();
        }
        drop(driver);
        result
    }

    /// Every percentile against Aeron (p50 and p99 with the 1.5× target) and p50 and p99
    /// again against iceoryx2 (must be below).
    fn figures(&self, ctx: &RunContext, measured: &[(usize, Latency)]) -> Vec<Figure> {
        let mut figures = Vec::new();
        for (size, latency) in measured {
            let rows = latency.figures(self.name(), |p| latency_name(*size, p));
            let mut iceoryx_rows = Vec::new();
            for (i, row) in rows.into_iter().enumerate() {
                let targeted = row.name.ends_with(" p50") || row.name.ends_with(" p99");
                let aeron = ctx.figure("aeron-pingpong", &row.name);
                let mut row = row.against(aeron);
                if targeted {
                    row = row.with_target(Target::RatioAtMost(AERON_RATIO_TARGET));
                    let mut versus = row.clone();
                    versus.name = format!("{} vs iceoryx2", row.name);
                    versus.note = None;
                    iceoryx_rows.push(
                        versus
                            .against(ctx.figure("iceoryx2-pingpong", &row.name))
                            .with_target(Target::RatioBelow(1.0)),
                    );
                }
                if i == 0 {
                    row = row.with_note(format!(
                        "{} round trips, mean {:.2} µs; each side copies the payload once per \
                         direction (claim, copy, commit)",
                        latency.count(),
                        latency.mean_us()
                    ));
                }
                figures.push(row);
            }
            figures.extend(iceoryx_rows);
        }
        figures
    }
}

/// The 64 B medians against the cache-line floor of the same machine (`line-pingpong`):
/// how many line round trips each costs. Raw Aeron's shape is one line per direction;
/// tensorpool's a descriptor, then the header slot and payload.
fn floor_figures(scenario: &str, ctx: &RunContext, figures: &[Figure]) -> Vec<Figure> {
    let p50 = latency_name(64, "p50");
    let one_line = ctx.figure("line-pingpong", "rtt 1 line p50");
    let chained = ctx.figure("line-pingpong", "rtt flag, then 2 lines p50");
    let mut rows = Vec::new();
    if let Some(aeron) = ctx.figure("aeron-pingpong", &p50) {
        let row = Figure::new(scenario, "aeron rtt 64 B p50 vs 1 line", aeron.value, "µs");
        rows.push(row.against(one_line));
    }
    for (suffix, reference) in [
        ("", one_line),
        ("", chained),
        (", watching next slot", one_line),
    ] {
        let name = format!("{p50}{suffix}");
        if let (Some(ours), Some(floor)) = (figures.iter().find(|f| f.name == name), reference) {
            let shape = floor
                .name
                .trim_start_matches("rtt ")
                .trim_end_matches(" p50");
            let row = Figure::new(scenario, format!("{name} vs {shape}"), ours.value, "µs");
            rows.push(row.against(Some(floor)));
        }
    }
    rows
}

/// A variant's rows: each percentile against the same percentile of the default in this
/// run (the A/B).
fn variant_figures(
    scenario: &str,
    default: &[Figure],
    latencies: &[(usize, Latency)],
    suffix: &str,
) -> Vec<Figure> {
    let mut figures = Vec::new();
    for (size, latency) in latencies {
        for row in latency.figures(scenario, |p| latency_name(*size, p)) {
            let base = default.iter().find(|f| f.name == row.name);
            let mut row = row.against(base);
            row.name.push_str(suffix);
            figures.push(row);
        }
    }
    figures
}

/// Tensor headers for the message sizes, looked up by length.
struct Tensors(Vec<(usize, TensorHeader)>);

impl Tensors {
    fn new() -> Result<Self, BenchError> {
        SIZES
            .iter()
            .map(|size| Ok((*size, bytes_header(*size).setup("describing a message")?)))
            .collect::<Result<_, BenchError>>()
            .map(Self)
    }

    fn for_len(&self, len: usize) -> Result<TensorHeader, BenchError> {
        match self.0.iter().find(|(size, _)| *size == len) {
            Some((_, tensor)) => Ok(*tensor),
            None => bytes_header(len).measure("describing a message"),
        }
    }
}

/// The ping's end: a producer of the ping stream and a consumer of the pong stream.
struct TpPing {
    // Field order is drop order: both detach before the process moves on.
    producer: Producer,
    consumer: Consumer,
    tensors: Tensors,
    pump: DutyPump,
    /// Latency mode of both consumers (the pong reads it from [`MODE_BYTE`]).
    watch: bool,
}

impl TpPing {
    fn connect(shm_dir: &Path, aeron_dir: &Path) -> Result<Self, BenchError> {
        let consumer = tp_host::connect_consumer(tp_host::consumer_config(
            shm_dir,
            aeron_dir,
            PONG_STREAM,
            PONG_DESCRIPTORS,
        ))?;
        let producer = tp_host::attach_producer(tp_host::producer_config(
            shm_dir,
            aeron_dir,
            PING_STREAM,
            PING_DESCRIPTORS,
        ))?;
        Ok(Self {
            producer,
            consumer,
            tensors: Tensors::new()?,
            pump: DutyPump::new(),
            watch: false,
        })
    }

    /// Per size: a warm-up, then blocks of [`MODE_BLOCK`] cycling through `variants`
    /// until each has had `window`; `place` moves the driver thread. Returns the latencies
    /// per variant; tells the pong to exit.
    fn measure_alternating(
        &mut self,
        variants: &[Variant],
        warmup: Duration,
        window: Duration,
        place: impl Fn(Option<usize>),
    ) -> Result<Measured, BenchError> {
        let blocks = (window.as_nanos() / MODE_BLOCK.as_nanos()).max(1) as usize;
        let mut measured: Measured = variants.iter().map(|_| Vec::new()).collect();
        let mut seq = 1;
        for size in SIZES {
            self.set_watch(false);
            place(None);
            let (_, next) = pingpong::measure_round_trips(self, size, warmup, Duration::ZERO, seq)?;
            seq = next;
            let mut latencies = variants
                .iter()
                .map(|_| Latency::new())
                .collect::<Result<Vec<_>, _>>()?;
            for block in 0..variants.len() * blocks {
                let i = block % variants.len();
                self.set_watch(variants[i].watch);
                place(variants[i].driver_core);
                let (latency, next) =
                    pingpong::measure_round_trips(self, size, MODE_SETTLE, MODE_BLOCK, seq)?;
                seq = next;
                latencies[i].merge(&latency);
            }
            for (per_variant, latency) in measured.iter_mut().zip(latencies) {
                per_variant.push((size, latency));
            }
        }
        place(None);
        self.send(&END.to_le_bytes())?;
        Ok(measured)
    }

    /// Switches this side's consumer, and (with the next message) the pong's.
    fn set_watch(&mut self, on: bool) {
        self.watch = on;
        self.consumer.set_watch_next_slot(on);
    }

    /// Sends probes until one comes back (both sides attached and mapped), then drains the
    /// echoes of earlier probes.
    fn handshake(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let mut probe = PROBE;
        let mut message = [0u8; 64];
        let mut answered = false;
        while !answered {
            check_interrupted()?;
            if Instant::now() >= deadline {
                return Err(BenchError::Setup(format!(
                    "the tp pong did not answer within {SETUP_TIMEOUT:?}"
                )));
            }
            message[..8].copy_from_slice(&probe.to_le_bytes());
            probe += 1;
            self.send(&message)?;
            let sent = Instant::now();
            while !answered && sent.elapsed() < PROBE_PERIOD {
                answered = self.poll_probe()?;
                self.housekeeping(Instant::now())?;
            }
        }
        let drain_until = Instant::now() + PROBE_PERIOD;
        while Instant::now() < drain_until {
            self.poll_probe()?;
            self.housekeeping(Instant::now())?;
        }
        Ok(())
    }

    /// Polls once; whether a probe's echo arrived.
    fn poll_probe(&mut self) -> Result<bool, BenchError> {
        let poll = self
            .consumer
            .poll_frame(|frame| seq_of(frame.payload()))
            .measure("reading the pong stream")?;
        Ok(matches!(poll, FramePoll::Delivered(seq) if seq & PROBE != 0))
    }
}

impl PingTransport for TpPing {
    fn send(&mut self, message: &[u8]) -> Result<(), BenchError> {
        let tensor = self.tensors.for_len(message.len())?;
        let mut claim = self
            .producer
            .claim(message.len())
            .measure("claiming a payload slot")?;
        let payload = claim.payload_mut();
        payload.copy_from_slice(message);
        if let Some(mode) = payload.get_mut(MODE_BYTE) {
            *mode = u8::from(self.watch);
        }
        claim.commit(&tensor, 0).measure("committing a frame")?;
        Ok(())
    }

    fn poll_echo(&mut self, seq: u64, size: usize) -> Result<bool, BenchError> {
        let poll = self
            .consumer
            .poll_frame(|frame| (seq_of(frame.payload()), frame.payload().len()))
            .measure("reading the pong stream")?;
        match poll {
            FramePoll::Empty | FramePoll::Ignored | FramePoll::RateLimited => Ok(false),
            FramePoll::Delivered((got, _)) if got & PROBE != 0 => Ok(false),
            FramePoll::Delivered(got) if got == (seq, size) => Ok(true),
            FramePoll::Delivered((got_seq, got_len)) => Err(BenchError::Measure(format!(
                "expected echo {seq} of {size} bytes, got {got_seq} of {got_len}"
            ))),
            FramePoll::Dropped(reason) => Err(BenchError::Measure(format!(
                "the echo of {seq} was dropped: {reason:?}"
            ))),
        }
    }

    fn housekeeping(&mut self, now: Instant) -> Result<(), BenchError> {
        if self.pump.due(now) {
            let now_ns = monotonic_now_ns();
            self.producer
                .do_work(now_ns)
                .measure("the producer duty cycle")?;
            self.consumer
                .do_work(now_ns)
                .measure("the consumer duty cycle")?;
        }
        Ok(())
    }
}

/// What the pong does with one frame it read.
enum Echo<'a> {
    /// A slot of its own stream, filled with the frame (its length, and whether it asks
    /// for latency mode); committed once the read is valid.
    Claimed(FrameClaim<'a>, usize, bool),
    /// The END message.
    End,
    /// No slot could be claimed.
    Failed(PublishError),
}

/// The pong process: echoes every frame of the ping stream on the pong stream until the
/// END message (or SIGINT/SIGTERM, or its parent's death). Its consumer reads in the mode
/// the last message named ([`MODE_BYTE`]).
pub fn run_pong(aeron_dir: &Path, shm_dir: &Path) -> Result<(), BenchError> {
    let mut consumer = tp_host::connect_consumer(tp_host::consumer_config(
        shm_dir,
        aeron_dir,
        PING_STREAM,
        PING_DESCRIPTORS,
    ))?;
    let mut producer = tp_host::attach_producer(tp_host::producer_config(
        shm_dir,
        aeron_dir,
        PONG_STREAM,
        PONG_DESCRIPTORS,
    ))?;
    let tensors = Tensors::new()?;
    let mut pump = DutyPump::new();
    let mut iterations = 0u32;
    loop {
        // In a block of its own: a claim borrows the producer until the echo is committed.
        {
            let echo_producer = &mut producer;
            let poll = consumer
                .poll_frame(move |frame| {
                    let bytes = frame.payload();
                    if seq_of(bytes) == END {
                        return Echo::End;
                    }
                    match echo_producer.claim(bytes.len()) {
                        Ok(mut claim) => {
                            claim.payload_mut().copy_from_slice(bytes);
                            let watch = bytes.get(MODE_BYTE) == Some(&1);
                            Echo::Claimed(claim, bytes.len(), watch)
                        }
                        Err(error) => Echo::Failed(error),
                    }
                })
                .measure("reading the ping stream")?;
            match poll {
                FramePoll::Delivered(Echo::Claimed(claim, len, watch)) => {
                    claim
                        .commit(&tensors.for_len(len)?, 0)
                        .measure("committing an echo")?;
                    consumer.set_watch_next_slot(watch);
                }
                FramePoll::Delivered(Echo::End) => return Ok(()),
                // Not attached yet: the ping repeats its probe.
                FramePoll::Delivered(Echo::Failed(PublishError::NotAttached)) => {}
                FramePoll::Delivered(Echo::Failed(error)) => {
                    return Err(BenchError::Measure(format!("echo: {error}")))
                }
                FramePoll::Empty
                | FramePoll::Ignored
                | FramePoll::Dropped(_)
                | FramePoll::RateLimited => {}
            }
        }
        iterations = iterations.wrapping_add(1);
        if iterations % 1024 == 0 {
            let now = Instant::now();
            if pump.due(now) {
                let now_ns = monotonic_now_ns();
                producer
                    .do_work(now_ns)
                    .measure("the producer duty cycle")?;
                consumer
                    .do_work(now_ns)
                    .measure("the consumer duty cycle")?;
            }
            check_interrupted()?;
        }
    }
}
