//! One tensorpool stream under load, for `large-frames` and `small-frames`: a producer
//! thread and a consumer thread (each its own Aeron client, pinned to a core each when
//! there are two), the SHM driver (with its embedded media driver) on an unpinned thread
//! of this process, as the raw Aeron references run their media driver, and frames of
//! one payload size per phase, measured at the consumer as frames delivered and verified
//! per second.
//!
//! The producer claims each payload slot, [fills](crate::tp_host::fill) it in place from
//! a private source buffer (one copy of the frame, as the memcpy reference does) and
//! commits it; the consumer verifies every frame it is given
//! ([`crate::tp_host::verify`]).
//!
//! **Interleaved memcpy.** A phase may alternate its recording slices with slices in which
//! the producer thread, instead of publishing, copies the same source into a private ring
//! laid out like the pool (same slots, stride and page offsets, a tmpfs file mapped shared,
//! every page touched). The machine's memory bandwidth drifts by 20 % and more within
//! seconds (other tenants of the host), so a reference measured in a separate window cannot
//! tell 0.9× from 1.0×; one measured in alternate slices of the same window can.
//!
//! **Flow control.** tensorpool has none: a producer never waits for its consumers, who
//! drop frames that were overwritten before they read them. Measuring that would count the
//! frames a consumer loses, not the transport's capacity, so the benchmark adds the
//! smallest flow control that prevents it: the consumer publishes the highest sequence it
//! has seen (an atomic, one cache line), and the producer claims sequence `s` only while
//! `s` is less than that plus the ring size, so it never overwrites a slot the consumer
//! has not finished with. Like Aeron's publication limit, it is read only when the producer
//! runs out of its last reading. No frame is dropped as a result; any drop is reported.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tensorpool::client::consumer::{monotonic_now_ns, Consumer, ConsumerConfig, FramePoll};
use tensorpool::client::producer::{ProducerConfig, ProducerEvent};
use tensorpool::client::tensor::bytes_header;
use tensorpool::protocol::control::TensorHeader;
use tensorpool::shm::layout::SUPERBLOCK_SIZE;
use tensorpool::transport::BackoffIdle;

use crate::aeron_host::{DRIVER_MAX_PARK, SETUP_TIMEOUT};
use crate::driver_host::{DriverSpec, InProcessDriver, FIRST_STREAM_ID};
use crate::error::{BenchError, Context as _};
use crate::scenarios::memcpy::{stride_for, CopyRing};
use crate::sys::{check_interrupted, core_pair, interrupted, pin_current_thread};
use crate::tp_host::{self, DutyPump};

/// Descriptor stream of the measured stream.
const DESCRIPTOR_STREAM: u32 = 2301;
/// Descriptors one consumer poll may read (as `aeron-rate`'s subscriber).
const FRAGMENT_LIMIT: usize = crate::scenarios::aeron_rate::FRAGMENT_LIMIT;
/// Loop iterations between clock reads.
const CHECK_EVERY: u32 = 16;
/// Longest the producer may wait for the consumer before the run is declared broken.
const STALL_TIMEOUT: Duration = Duration::from_secs(5);
/// `mode` value that stops the producer.
const STOP: usize = usize::MAX;

/// What the producer does: publish frames of phase `i` (`2 i`), copy them into its
/// private ring (`2 i + 1`), or stop ([`STOP`]).
fn mode(phase: usize, memcpy: bool) -> usize {
    2 * phase + usize::from(memcpy)
}

/// One measurement: frames of `payload` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Payload bytes of every frame.
    pub payload: usize,
    /// Time from the first frame of this size to the start of recording.
    pub warmup: Duration,
    /// Frames of this size to see before recording, at least (page faults of a fresh pool
    /// happen in the first passes over the ring).
    pub warmup_frames: u64,
    /// Recording time (of frames; interleaved memcpy slices take as long again).
    pub window: Duration,
    /// Recording slices, each followed by a memcpy slice of the same length; 0 records
    /// frames in one piece with no memcpy.
    pub slices: u32,
}

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Payload bytes of every frame.
    pub payload: usize,
    /// Frames delivered and verified while recording.
    pub frames: u64,
    /// Recording time, seconds.
    pub seconds: f64,
    /// Frames the consumer dropped while recording (any reason).
    pub drops: u64,
    /// Frames per second of each recording slice (one entry without slices).
    pub slice_rates: Vec<f64>,
    /// Copies per second of each interleaved memcpy slice.
    pub memcpy_rates: Vec<f64>,
}

impl Delivered {
    /// Frames delivered and verified per second: the median of the slices.
    pub fn frames_per_s(&self) -> f64 {
        median(&self.slice_rates)
    }

    /// Payload MiB delivered and verified per second (median of the slices).
    pub fn mib_per_s(&self) -> f64 {
        mib(self.frames_per_s(), self.payload)
    }

    /// The interleaved memcpy in MiB/s: the median of its slices, if there were any.
    pub fn memcpy_mib_per_s(&self) -> Option<f64> {
        (!self.memcpy_rates.is_empty()).then(|| mib(median(&self.memcpy_rates), self.payload))
    }
}

/// `rate` frames of `payload` bytes per second in MiB/s.
fn mib(rate: f64, payload: usize) -> f64 {
    rate * payload as f64 / (1024.0 * 1024.0)
}

/// The median of `values` (NaN if empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// What a whole run saw besides the phases.
#[derive(Debug, Clone)]
pub struct StreamRun {
    /// One entry per phase.
    pub phases: Vec<Delivered>,
    /// Frames the producer published.
    pub published: u64,
    /// Descriptors the producer could not offer.
    pub descriptors_dropped: u64,
    /// Times the producer found the flow-control window full.
    pub flow_waits: u64,
}

/// The consumer's position, on a cache line of its own.
#[repr(align(128))]
struct Position(AtomicU64);

/// State the two threads share.
struct Shared {
    /// One past the highest sequence the consumer has seen.
    consumed: Position,
    /// The consumer publishes `consumed` every this many frames (and after each poll): a
    /// store per frame would move the line between the cores once per frame while the
    /// producer waits on it.
    release_every: u64,
    /// What the producer does (see [`mode`]).
    mode: AtomicUsize,
    /// The producer's epoch once it is attached (0 before).
    epoch: AtomicU64,
    /// The consumer reads the producer's epoch.
    ready: AtomicBool,
    /// A thread failed: the other stops.
    failed: AtomicBool,
}

/// What the producer thread returns.
struct Produced {
    published: u64,
    descriptors_dropped: u64,
    flow_waits: u64,
    /// `(phase, copies per second)` of every memcpy slice.
    memcpy_slices: Vec<(usize, f64)>,
}

/// Runs `phases` in order through stream [`FIRST_STREAM_ID`] of a driver for `spec`
/// (started here); the producer may run `window` frames ahead of the consumer (at most the
/// ring size). Interleaved memcpy rings are created in `ring_dir`.
pub fn run(
    spec: &DriverSpec,
    phases: &[Phase],
    window: u64,
    ring_dir: &Path,
) -> Result<StreamRun, BenchError> {
    let (producer_core, consumer_core) = match core_pair() {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    // Unpinned, as the media driver thread of the raw Aeron references.
    let driver = InProcessDriver::start(spec, None)?;
    let aeron_dir = driver.aeron_dir().to_owned();
    let shared = Shared {
        consumed: Position(AtomicU64::new(0)),
        release_every: (window / 64).max(1),
        mode: AtomicUsize::new(mode(0, false)),
        epoch: AtomicU64::new(0),
        ready: AtomicBool::new(false),
        failed: AtomicBool::new(false),
    };
    let (produced, consumed) = std::thread::scope(|s| {
        let producer = std::thread::Builder::new()
            .name("tp-producer".into())
            .spawn_scoped(s, || {
                let config = tp_host::producer_config(
                    &spec.shm_dir,
                    &aeron_dir,
                    FIRST_STREAM_ID,
                    DESCRIPTOR_STREAM,
                );
                let result = produce(config, producer_core, phases, window, ring_dir, &shared);
                if result.is_err() {
                    shared.failed.store(true, Ordering::Release);
                }
                result
            });
        if producer.is_err() {
            shared.failed.store(true, Ordering::Release);
        }
        let consumer = std::thread::Builder::new()
            .name("tp-consumer".into())
            .spawn_scoped(s, || {
                let config = tp_host::consumer_config(
                    &spec.shm_dir,
                    &aeron_dir,
                    FIRST_STREAM_ID,
                    DESCRIPTOR_STREAM,
                );
                let result = consume(config, consumer_core, phases, &shared);
                shared.mode.store(STOP, Ordering::Release);
                if result.is_err() {
                    shared.failed.store(true, Ordering::Release);
                }
                result
            });
        if consumer.is_err() {
            shared.mode.store(STOP, Ordering::Release);
        }
        (finish(producer, "producer"), finish(consumer, "consumer"))
    });
    drop(driver);
    match (produced, consumed) {
        (Ok(produced), Ok(mut delivered)) => {
            for (phase, rate) in produced.memcpy_slices {
                if let Some(d) = delivered.get_mut(phase) {
                    d.memcpy_rates.push(rate);
                }
            }
            Ok(StreamRun {
                phases: delivered,
                published: produced.published,
                descriptors_dropped: produced.descriptors_dropped,
                flow_waits: produced.flow_waits,
            })
        }
        (Err(BenchError::Interrupted), _) | (_, Err(BenchError::Interrupted)) => {
            Err(BenchError::Interrupted)
        }
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        // One failure makes the other thread stop too: say both.
        (Err(p), Err(c)) => Err(BenchError::Measure(format!("producer: {p}; consumer: {c}"))),
    }
}

/// What a thread returned, or why it did not start or did not finish.
fn finish<T>(
    spawned: std::io::Result<std::thread::ScopedJoinHandle<'_, Result<T, BenchError>>>,
    who: &str,
) -> Result<T, BenchError> {
    spawned
        .setup(format!("spawning the {who} thread"))?
        .join()
        .map_err(|_| BenchError::Measure(format!("the {who} thread panicked")))?
}

/// The producer thread.
fn produce(
    config: ProducerConfig,
    core: Option<usize>,
    phases: &[Phase],
    window: u64,
    ring_dir: &Path,
    shared: &Shared,
) -> Result<Produced, BenchError> {
    if let Some(core) = core {
        pin_current_thread(core);
    }
    let largest = phases.iter().map(|p| p.payload).max().unwrap_or(0);
    let source = tp_host::source(largest);
    let tensors: Vec<TensorHeader> = phases
        .iter()
        .map(|p| bytes_header(p.payload).measure("describing the payload"))
        .collect::<Result<_, _>>()?;
    // Rings shaped like the pools (a superblock, then the slots), warmed with one pass.
    let mut rings = Vec::with_capacity(phases.len());
    for (i, phase) in phases.iter().enumerate() {
        rings.push(if phase.slices > 0 {
            let path = ring_dir.join(format!("memcpy-ring-{i}"));
            // As many slots as the pool the frames go to (the flow-control window).
            let slots = window as usize;
            let mut ring =
                CopyRing::with_slots(&path, SUPERBLOCK_SIZE, stride_for(phase.payload), slots)?;
            for _ in 0..slots {
                ring.copy(&source[..phase.payload]);
            }
            Some(ring)
        } else {
            None
        });
    }
    let mut producer = tp_host::attach_producer(config)?;
    shared
        .epoch
        .store(producer.epoch().unwrap_or(0), Ordering::Release);
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while !shared.ready.load(Ordering::Acquire) {
        if shared.failed.load(Ordering::Acquire) || shared.mode.load(Ordering::Acquire) == STOP {
            return Err(BenchError::Measure("the consumer did not start".into()));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Setup(
                "the consumer did not map the epoch in time".into(),
            ));
        }
        producer
            .do_work(monotonic_now_ns())
            .setup("the producer duty cycle")?;
        std::thread::sleep(Duration::from_micros(200));
    }

    let mut idle = BackoffIdle::with_max_park(DRIVER_MAX_PARK);
    let mut pump = DutyPump::new();
    let mut limit = window;
    let mut flow_waits = 0u64;
    let mut memcpy_slices = Vec::new();
    let mut waiting_since: Option<Instant> = None;
    let mut iterations = 0u32;
    loop {
        iterations = iterations.wrapping_add(1);
        if iterations % CHECK_EVERY == 0 {
            let now = Instant::now();
            if pump.due(now) {
                producer
                    .do_work(monotonic_now_ns())
                    .measure("the producer duty cycle")?;
                if let Some(event) = producer
                    .events()
                    .find(|e| !matches!(e, ProducerEvent::Attached { .. }))
                {
                    return Err(BenchError::Measure(format!("producer: {event:?}")));
                }
            }
            check_interrupted()?;
            if shared.failed.load(Ordering::Acquire) {
                return Err(BenchError::Measure("the consumer failed".into()));
            }
        }
        let current = shared.mode.load(Ordering::Acquire);
        if current == STOP {
            break;
        }
        let phase = current / 2;
        let len = phases[phase].payload;
        if current % 2 == 1 {
            if let Some(ring) = rings[phase].as_mut() {
                let rate = copy_slice(ring, &source[..len], &shared.mode, current);
                memcpy_slices.push((phase, rate));
            }
            continue;
        }
        let next = producer.next_seq().unwrap_or(0);
        if next >= limit {
            limit = shared.consumed.0.load(Ordering::Acquire) + window;
            if next >= limit {
                let now = Instant::now();
                if waiting_since.is_none() {
                    flow_waits += 1;
                }
                let since = *waiting_since.get_or_insert(now);
                if now - since > STALL_TIMEOUT {
                    return Err(BenchError::Measure(format!(
                        "the consumer stayed {window} frames behind for {STALL_TIMEOUT:?}"
                    )));
                }
                idle.idle(0);
                continue;
            }
        }
        waiting_since = None;
        let mut claim = producer.claim(len).measure("claiming a payload slot")?;
        let seq = claim.seq();
        tp_host::fill(claim.payload_mut(), &source[..len], seq);
        // No capture time: reading the clock for every 64-byte frame would cost more than
        // the raw Aeron reference's whole send.
        claim
            .commit(&tensors[phase], 0)
            .measure("committing a frame")?;
        idle.reset();
    }
    let counters = producer.counters();
    Ok(Produced {
        published: counters.frames_published,
        descriptors_dropped: counters.descriptors_dropped,
        flow_waits,
        memcpy_slices,
    })
}

/// Copies `source` into `ring` until `mode` moves off `current`; returns copies per second.
fn copy_slice(ring: &mut CopyRing, source: &[u8], mode: &AtomicUsize, current: usize) -> f64 {
    let start = Instant::now();
    let mut copies = 0u64;
    while mode.load(Ordering::Relaxed) == current && !interrupted() {
        ring.copy(source);
        copies += 1;
    }
    copies as f64 / start.elapsed().as_secs_f64()
}

/// The consumer thread: measures every phase in turn.
fn consume(
    config: ConsumerConfig,
    core: Option<usize>,
    phases: &[Phase],
    shared: &Shared,
) -> Result<Vec<Delivered>, BenchError> {
    if let Some(core) = core {
        pin_current_thread(core);
    }
    let mut consumer = tp_host::connect_consumer(config)?;
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let epoch = loop {
        match shared.epoch.load(Ordering::Acquire) {
            0 if shared.failed.load(Ordering::Acquire) => {
                return Err(BenchError::Measure("the producer did not attach".into()))
            }
            0 if Instant::now() > deadline => {
                return Err(BenchError::Setup(
                    "the producer did not attach in time".into(),
                ))
            }
            0 => {
                consumer
                    .do_work(monotonic_now_ns())
                    .setup("the consumer duty cycle")?;
                std::thread::sleep(Duration::from_micros(200));
            }
            epoch => break epoch,
        }
    };
    tp_host::await_consumer_ready(&mut consumer, epoch)?;
    shared.ready.store(true, Ordering::Release);
    let mut reader = Reader::new(consumer, shared);
    let mut results = Vec::with_capacity(phases.len());
    for (index, phase) in phases.iter().enumerate() {
        shared.mode.store(mode(index, false), Ordering::Release);
        reader.read_for(phase.payload, Until::WarmedUp(phase))?;
        let slices = phase.slices.max(1);
        let slice = phase.window / slices;
        let mut delivered = Delivered {
            payload: phase.payload,
            frames: 0,
            seconds: 0.0,
            drops: 0,
            slice_rates: Vec::new(),
            memcpy_rates: Vec::new(),
        };
        for _ in 0..slices {
            shared.mode.store(mode(index, false), Ordering::Release);
            let recorded = reader.read_for(phase.payload, Until::Elapsed(slice))?;
            delivered.frames += recorded.frames;
            delivered.seconds += recorded.seconds;
            delivered.drops += recorded.drops;
            delivered
                .slice_rates
                .push(recorded.frames as f64 / recorded.seconds);
            if phase.slices > 0 {
                shared.mode.store(mode(index, true), Ordering::Release);
                reader.read_for(phase.payload, Until::Elapsed(slice))?;
            }
        }
        results.push(delivered);
    }
    Ok(results)
}

/// When [`Reader::read_for`] stops.
enum Until<'a> {
    /// Once the warm-up of this phase is over.
    WarmedUp(&'a Phase),
    /// After this long.
    Elapsed(Duration),
}

/// What one [`Reader::read_for`] counted.
struct Recorded {
    frames: u64,
    seconds: f64,
    drops: u64,
}

/// The consumer's reading loop.
struct Reader<'a> {
    consumer: Consumer,
    shared: &'a Shared,
    idle: BackoffIdle,
    pump: DutyPump,
}

impl<'a> Reader<'a> {
    fn new(consumer: Consumer, shared: &'a Shared) -> Self {
        Self {
            consumer,
            shared,
            idle: BackoffIdle::with_max_park(DRIVER_MAX_PARK),
            pump: DutyPump::new(),
        }
    }

    /// Reads and verifies frames until `until`, counting the verified frames of `payload`
    /// bytes; fails on a frame that does not verify.
    fn read_for(&mut self, payload: usize, until: Until<'_>) -> Result<Recorded, BenchError> {
        let start = Instant::now();
        let drops_before = self.consumer.counters().frame_drops();
        let mut frames = 0u64;
        let mut first: Option<Instant> = None;
        let mut last_frame = start;
        let mut iterations = 0u32;
        loop {
            let mut failed = None;
            let consumed = &self.shared.consumed.0;
            let release_every = self.shared.release_every;
            let read = self
                .consumer
                .poll_frames(
                    FRAGMENT_LIMIT,
                    |frame| {
                        let bytes = frame.payload();
                        (
                            bytes.len(),
                            tp_host::verify(bytes, frame.seq()),
                            frame.seq(),
                        )
                    },
                    |poll| {
                        if let FramePoll::Delivered((len, ok, seq)) = poll {
                            if !ok {
                                failed.get_or_insert(len);
                            }
                            frames += u64::from(len == payload);
                            // Free slots for the producer while the poll goes on.
                            if (seq + 1) % release_every == 0 {
                                consumed.store(seq + 1, Ordering::Release);
                            }
                        }
                    },
                )
                .measure("reading frames")?;
            if let Some(len) = failed {
                return Err(BenchError::Measure(format!(
                    "a frame of {len} bytes failed verification"
                )));
            }
            let empty = read == 0;
            if !empty {
                if let Some(last) = self.consumer.last_seq_seen() {
                    self.shared.consumed.0.store(last + 1, Ordering::Release);
                }
            }
            iterations = iterations.wrapping_add(1);
            if empty || iterations % CHECK_EVERY == 0 {
                let now = Instant::now();
                let done = match until {
                    Until::Elapsed(length) => now >= start + length,
                    Until::WarmedUp(phase) => {
                        if frames > 0 && first.is_none() {
                            first = Some(now);
                        }
                        first.is_some_and(|at| now >= at + phase.warmup)
                            && frames >= phase.warmup_frames
                    }
                };
                if done {
                    return Ok(Recorded {
                        frames,
                        seconds: now.duration_since(start).as_secs_f64(),
                        drops: self.consumer.counters().frame_drops() - drops_before,
                    });
                }
                if !empty {
                    last_frame = now;
                }
                self.housekeeping(now, payload, last_frame)?;
            }
            if empty {
                self.idle.idle(0);
            } else {
                self.idle.reset();
            }
        }
    }

    fn housekeeping(
        &mut self,
        now: Instant,
        payload: usize,
        last_frame: Instant,
    ) -> Result<(), BenchError> {
        if self.pump.due(now) {
            self.consumer
                .do_work(monotonic_now_ns())
                .measure("the consumer duty cycle")?;
        }
        if interrupted() {
            return Err(BenchError::Interrupted);
        }
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(BenchError::Measure("the producer failed".into()));
        }
        let producing = self.shared.mode.load(Ordering::Relaxed) % 2 == 0;
        if producing && now - last_frame > STALL_TIMEOUT {
            return Err(BenchError::Measure(format!(
                "no frame for {STALL_TIMEOUT:?} ({payload} bytes)"
            )));
        }
        Ok(())
    }
}
