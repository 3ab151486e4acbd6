//! `aeron-rate`: the reference for small frames. Raw Aeron IPC offer/poll of messages as
//! long as an encoded `FrameDescriptor`, one publisher thread and one subscriber thread
//! (each with its own client, pinned to a core each when there are two), the media driver
//! on a third thread, both loops idling with `BackoffIdle` when they find no work. The
//! subscriber checks that every message arrives once and in order; the rate is what it
//! received per second.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use tensorpool::protocol::control::FrameDescriptor;
use tensorpool::transport::{BackoffIdle, OfferOutcome, Publication, Subscription};

use crate::aeron_host::{
    self, offer_until_published, ClientPump, MediaDriverThread, DATA_CHANNEL, DRIVER_MAX_PARK,
};
use crate::error::{BenchError, Context as _};
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::sys::{check_interrupted, core_pair, pin_current_thread, Scratch};

/// Name of the rate figure.
pub const RATE_NAME: &str = "rate FrameDescriptor-sized";
const STREAM_ID: i32 = 2001;
/// Sequence number that ends the run.
const END: u64 = u64::MAX;
/// Loop iterations between clock reads.
const CHECK_EVERY: u32 = 64;
/// Fragments one poll may deliver.
pub const FRAGMENT_LIMIT: usize = 256;

/// Length of an encoded `FrameDescriptor` (message header included).
pub fn frame_descriptor_len() -> usize {
    FrameDescriptor {
        stream_id: 0,
        epoch: 0,
        seq: 0,
        timestamp_ns: None,
        meta_version: None,
        trace_id: None,
    }
    .encoded_len()
}

/// The `aeron-rate` scenario.
pub struct AeronRate;

impl Scenario for AeronRate {
    fn name(&self) -> &'static str {
        "aeron-rate"
    }

    fn summary(&self) -> &'static str {
        "raw Aeron IPC offer/poll rate of FrameDescriptor-sized messages, two threads (reference for small frames)"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let scratch = Scratch::new("aeron-rate")?;
        let driver = MediaDriverThread::start(&scratch.join("aeron"))?;
        let len = frame_descriptor_len();
        let window = ctx.duration;
        let warmup = ctx.scaled(0.2).min(Duration::from_secs(1));
        let ready = Barrier::new(2);
        let (cores_pub, cores_sub) = match core_pair() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let (published, received) = std::thread::scope(|s| {
            let subscriber = s.spawn(|| subscribe(&driver, cores_sub, &ready, warmup));
            let publisher = s.spawn(|| publish(&driver, cores_pub, &ready, len, warmup + window));
            let published = publisher
                .join()
                .map_err(|_| BenchError::Measure("the publisher thread panicked".into()));
            let received = subscriber
                .join()
                .map_err(|_| BenchError::Measure("the subscriber thread panicked".into()));
            (published, received)
        });
        let published = published??;
        let received = received??;
        if received.count != published {
            return Err(BenchError::Measure(format!(
                "published {published} messages but {} arrived",
                received.count
            )));
        }
        let rate = received.rate();
        Ok(vec![Figure::new(self.name(), RATE_NAME, rate, "msg/s")
            .marked_reference()
            .with_note(format!(
                "{len}-byte messages on {DATA_CHANNEL}, {published} sent, all received in order; \
                 driver thread parks ≤ {DRIVER_MAX_PARK:?}"
            ))])
    }
}

/// What the subscriber saw.
struct Received {
    /// Messages received (END excluded).
    count: u64,
    /// Time and count at the first clock check after the warm-up.
    start: Option<(Instant, u64)>,
    /// Time the END message arrived.
    end: Instant,
}

impl Received {
    /// Messages per second after the warm-up.
    fn rate(&self) -> f64 {
        match self.start {
            Some((at, count)) => {
                (self.count - count) as f64 / self.end.duration_since(at).as_secs_f64()
            }
            None => f64::NAN,
        }
    }
}

fn subscribe(
    driver: &MediaDriverThread,
    core: Option<usize>,
    ready: &Barrier,
    warmup: Duration,
) -> Result<Received, BenchError> {
    if let Some(core) = core {
        pin_current_thread(core);
    }
    let client = aeron_host::connect(driver.dir())?;
    let mut subscription =
        Subscription::add(&client, DATA_CHANNEL, STREAM_ID).setup("adding the subscription")?;
    ready.wait();
    aeron_host::pump_until(&client, "the publisher's image", || {
        subscription.image_count() > 0
    })?;
    let mut idle = BackoffIdle::with_max_park(DRIVER_MAX_PARK);
    let mut pump = ClientPump::new();
    let mut expected = 0u64;
    let mut out_of_order = 0u64;
    let mut done = false;
    let mut first: Option<Instant> = None;
    let mut start = None;
    let mut iterations = 0u32;
    while !done {
        let fragments = subscription
            .poll_fragments(
                |bytes| {
                    let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8]));
                    if seq == END {
                        done = true;
                    } else {
                        if seq != expected {
                            out_of_order += 1;
                        }
                        expected = seq + 1;
                    }
                },
                FRAGMENT_LIMIT,
            )
            .measure("polling")?;
        idle.idle(fragments);
        iterations += 1;
        if iterations % CHECK_EVERY == 0 || fragments == 0 {
            let now = Instant::now();
            if expected > 0 && start.is_none() {
                let first = *first.get_or_insert(now);
                if now >= first + warmup {
                    start = Some((now, expected));
                }
            }
            pump.maybe_pump(&client, now)?;
            check_interrupted()?;
        }
    }
    let end = Instant::now();
    if out_of_order > 0 {
        return Err(BenchError::Measure(format!(
            "{out_of_order} messages arrived out of sequence"
        )));
    }
    Ok(Received {
        count: expected,
        start,
        end,
    })
}

fn publish(
    driver: &MediaDriverThread,
    core: Option<usize>,
    ready: &Barrier,
    len: usize,
    run_for: Duration,
) -> Result<u64, BenchError> {
    if let Some(core) = core {
        pin_current_thread(core);
    }
    let client = aeron_host::connect(driver.dir())?;
    let publication =
        Publication::add(&client, DATA_CHANNEL, STREAM_ID).setup("adding the publication")?;
    ready.wait();
    aeron_host::pump_until(&client, "the subscriber", || publication.is_connected())?;
    let mut message = vec![0u8; len];
    let mut idle = BackoffIdle::with_max_park(DRIVER_MAX_PARK);
    let mut pump = ClientPump::new();
    let mut seq = 0u64;
    let end = Instant::now() + run_for;
    let mut iterations = 0u32;
    loop {
        message[..8].copy_from_slice(&seq.to_le_bytes());
        let work = match publication.offer(&message).measure("offering")? {
            OfferOutcome::Published { .. } => {
                seq += 1;
                1
            }
            OfferOutcome::BackPressured | OfferOutcome::AdminAction => 0,
            OfferOutcome::NotConnected => {
                return Err(BenchError::Measure("the subscriber went away".into()))
            }
        };
        idle.idle(work);
        iterations += 1;
        if iterations % CHECK_EVERY == 0 {
            let now = Instant::now();
            if now >= end {
                break;
            }
            pump.maybe_pump(&client, now)?;
            check_interrupted()?;
        }
    }
    message[..8].copy_from_slice(&END.to_le_bytes());
    offer_until_published(&client, &publication, &message, &mut pump)?;
    Ok(seq)
}
