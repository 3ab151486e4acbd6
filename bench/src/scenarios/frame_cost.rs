//! `frame-cost`: what a 64-byte frame costs the CPU, without the cost of moving it between
//! cores. One thread, pinned, caches warm: it publishes a batch of frames, then reads
//! them back, and in alternate batches does the same with raw Aeron IPC messages the size
//! of a `FrameDescriptor` (offer, then poll). The figures are nanoseconds per frame for
//! each side against Aeron's per message.
//!
//! A diagnostic for `small-frames`: there each side runs on its own core and pays for the
//! cache lines that cross between them as well; this scenario shows how much of a frame's
//! cost is the client library's own work. Alternating the batches in one window cancels
//! the machine's drift (see docs/BENCHMARKS.md).

use std::time::{Duration, Instant};

use tensorpool::client::consumer::{monotonic_now_ns, FramePoll};
use tensorpool::client::tensor::bytes_header;
use tensorpool::transport::{OfferOutcome, Publication, Subscription};

use crate::aeron_host::{self, DATA_CHANNEL};
use crate::driver_host::{DriverSpec, InProcessDriver, FIRST_STREAM_ID};
use crate::error::{BenchError, Context as _};
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::aeron_rate::{frame_descriptor_len, FRAGMENT_LIMIT};
use crate::scenarios::small_frames::PAYLOAD;
use crate::sys::{check_interrupted, core_pair, pin_current_thread, Scratch};
use crate::tp_host;

/// Frames (and messages) per batch: well inside the ring and the publication window.
const BATCH: usize = 1024;
/// Header slots of the stream: a few batches, so slots are reused as in a long run.
const HEADER_SLOTS: u32 = 4096;
/// Descriptor stream of the measured stream.
const DESCRIPTOR_STREAM: u32 = 2501;
/// Stream of the raw Aeron reference.
const AERON_STREAM: i32 = 2502;

/// The `frame-cost` scenario.
pub struct FrameCost;

/// Accumulated time of one kind of batch.
#[derive(Default)]
struct Tally {
    write: Duration,
    read: Duration,
    items: u64,
}

impl Tally {
    fn ns_per_item(d: Duration, items: u64) -> f64 {
        d.as_secs_f64() * 1e9 / items.max(1) as f64
    }
}

impl Scenario for FrameCost {
    fn name(&self) -> &'static str {
        "frame-cost"
    }

    fn summary(&self) -> &'static str {
        "CPU cost of a 64 B frame on one thread, caches warm (vs raw Aeron offer and poll)"
    }

    fn references(&self) -> &'static [&'static str] {
        &[]
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let scratch = Scratch::new("frame-cost")?;
        let spec = DriverSpec::in_scratch(&scratch, HEADER_SLOTS, &[(1, PAYLOAD as u32)], 1)?;
        let (here, driver_core) = match core_pair() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        // The driver on the other core, so its wake-ups do not land in the timed batches.
        let driver = InProcessDriver::start(&spec, driver_core)?;
        let aeron_dir = driver.aeron_dir().to_owned();
        // On a thread of its own: pinning is per thread, and the harness's main thread
        // must stay free for the scenarios after this one.
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("tp-frame-cost".into())
                .spawn_scoped(s, || self.measure(ctx, &spec, &aeron_dir, here))
                .map_err(|e| BenchError::Setup(format!("starting the measuring thread: {e}")))?
                .join()
                .map_err(|_| BenchError::Measure("the measuring thread panicked".into()))?
        })
    }
}

impl FrameCost {
    fn measure(
        &self,
        ctx: &RunContext,
        spec: &DriverSpec,
        aeron_dir: &std::path::Path,
        core: Option<usize>,
    ) -> Result<Vec<Figure>, BenchError> {
        if let Some(core) = core {
            pin_current_thread(core);
        }
        let mut producer = tp_host::attach_producer(tp_host::producer_config(
            &spec.shm_dir,
            aeron_dir,
            FIRST_STREAM_ID,
            DESCRIPTOR_STREAM,
        ))?;
        let mut consumer = tp_host::connect_consumer(tp_host::consumer_config(
            &spec.shm_dir,
            aeron_dir,
            FIRST_STREAM_ID,
            DESCRIPTOR_STREAM,
        ))?;
        tp_host::await_consumer_ready(&mut consumer, producer.epoch().unwrap_or(0))?;
        let client = aeron_host::connect(aeron_dir)?;
        let publication =
            Publication::add(&client, DATA_CHANNEL, AERON_STREAM).setup("adding a publication")?;
        let mut subscription = Subscription::add(&client, DATA_CHANNEL, AERON_STREAM)
            .setup("adding a subscription")?;
        aeron_host::pump_until(&client, "the reference's image", || {
            subscription.image_count() > 0
        })?;

        let tensor = bytes_header(PAYLOAD).measure("describing the payload")?;
        let source = tp_host::source(PAYLOAD);
        let mut message = vec![0u8; frame_descriptor_len()];
        let (mut frames, mut messages) = (Tally::default(), Tally::default());
        let warmup = ctx.scaled(0.2).min(Duration::from_secs(1));
        let start = Instant::now();
        let mut recording = false;
        let mut failed = 0u64;
        while start.elapsed() < warmup + ctx.duration {
            check_interrupted()?;
            if !recording && start.elapsed() >= warmup {
                recording = true;
                (frames, messages) = (Tally::default(), Tally::default());
            }
            // tensorpool: BATCH frames published, then read back and verified.
            let t0 = Instant::now();
            for _ in 0..BATCH {
                let mut claim = producer.claim(PAYLOAD).measure("claiming a slot")?;
                let seq = claim.seq();
                tp_host::fill(claim.payload_mut(), &source, seq);
                claim.commit(&tensor, 0).measure("committing a frame")?;
            }
            let t1 = Instant::now();
            let mut read = 0;
            while read < BATCH {
                let n = consumer
                    .poll_frames(
                        FRAGMENT_LIMIT,
                        |frame| tp_host::verify(frame.payload(), frame.seq()),
                        |outcome| {
                            if outcome != FramePoll::Delivered(true) {
                                failed += 1;
                            }
                        },
                    )
                    .measure("reading frames")?;
                if n == 0 && t1.elapsed() > Duration::from_secs(5) {
                    return Err(BenchError::Measure(format!(
                        "{read} of {BATCH} frames came back"
                    )));
                }
                read += n;
            }
            let t2 = Instant::now();
            // Raw Aeron: BATCH messages offered, then polled.
            for i in 0..BATCH {
                message[..8].copy_from_slice(&(i as u64).to_le_bytes());
                while !matches!(
                    publication.offer(&message).measure("offering")?,
                    OfferOutcome::Published { .. }
                ) {
                    client.do_work().measure("pumping the client")?;
                }
            }
            let t3 = Instant::now();
            let mut polled = 0;
            while polled < BATCH {
                polled += subscription
                    .poll_fragments(
                        |bytes| failed += u64::from(bytes.len() != message.len()),
                        FRAGMENT_LIMIT,
                    )
                    .measure("polling")?;
            }
            let t4 = Instant::now();
            frames.write += t1 - t0;
            frames.read += t2 - t1;
            frames.items += BATCH as u64;
            messages.write += t3 - t2;
            messages.read += t4 - t3;
            messages.items += BATCH as u64;
            producer
                .do_work(monotonic_now_ns())
                .measure("the producer duty cycle")?;
            consumer
                .do_work(monotonic_now_ns())
                .measure("the consumer duty cycle")?;
            client.do_work().measure("pumping the client")?;
        }
        if failed > 0 {
            return Err(BenchError::Measure(format!(
                "{failed} frames or messages did not come back intact"
            )));
        }
        let offer = Figure::new(
            self.name(),
            "aeron offer ns/message",
            Tally::ns_per_item(messages.write, messages.items),
            "ns",
        )
        .marked_reference()
        .with_note(format!(
            "{} messages of {} B on {DATA_CHANNEL}, offered {BATCH} at a time on one thread",
            messages.items,
            message.len()
        ));
        let poll = Figure::new(
            self.name(),
            "aeron poll ns/message",
            Tally::ns_per_item(messages.read, messages.items),
            "ns",
        )
        .marked_reference();
        let write = Figure::new(
            self.name(),
            "producer ns/frame",
            Tally::ns_per_item(frames.write, frames.items),
            "ns",
        )
        .against(Some(&offer))
        .with_note(format!(
            "{} frames of {PAYLOAD} B: claim, fill, commit (header slot, seqlock, descriptor \
             offer), {BATCH} at a time, alternating with the Aeron batches",
            frames.items
        ));
        let read = Figure::new(
            self.name(),
            "consumer ns/frame",
            Tally::ns_per_item(frames.read, frames.items),
            "ns",
        )
        .against(Some(&poll))
        .with_note("descriptor poll, every check, payload verified, seqlock re-check");
        Ok(vec![offer, poll, write, read])
    }
}
