//! Torn-read stress (Wire Spec §15.3, §15.18): a producer overwrites an 8-slot header ring
//! as fast as it can while a consumer on another thread reads the same slots in place and
//! checks every payload's embedded checksum. At least 1,000,000 frames are published; the
//! consumer may drop as many as it must (late, not committed, resync), but every frame it
//! accepts must verify. Now and then the consumer lingers inside its closure so the
//! producer overwrites the slot under it: the seqlock must catch that too.
//!
//! The SHM driver (embedded media driver) runs on a thread of its own; producer and
//! consumer each own an Aeron client on their thread.

#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::{DriverSettings, InThreadDriver, TestEnv, HEADER_NSLOTS};
use system::{fill, frame_is_intact, frame_len, tensors_for, RoleSpec, SMALL_SIZES};
use tensorpool::client::consumer::{
    monotonic_now_ns, Consumer, ConsumerConfig, ConsumerCounters, DropReason, FramePoll,
};
use tensorpool::client::producer::{Producer, ProducerConfig};
use tensorpool::client::ClientStreams;
use tensorpool::transport::BackoffIdle;

/// Frames the producer publishes.
const FRAMES: u64 = 1_000_000;
/// Failsafe for the whole run (it takes far less).
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// Failsafe for set-up steps.
const SETUP_DEADLINE: Duration = Duration::from_secs(10);
/// Every this many polls the consumer lingers inside its closure...
const LINGER_EVERY: u64 = 2048;
/// ...for this long, so the slot is overwritten while it reads.
const LINGER: Duration = Duration::from_micros(300);

/// What the two threads share.
#[derive(Default)]
struct Shared {
    /// Epoch the consumer has mapped and is ready on (0 = not ready).
    consumer_epoch: AtomicU64,
    /// Epoch the producer publishes in (0 = not attached yet).
    producer_epoch: AtomicU64,
    /// The producer published everything.
    producer_done: AtomicBool,
    /// The consumer finished draining; the producer may let go of its lease.
    consumer_done: AtomicBool,
    /// Set when either side fails, so the other stops waiting.
    abort: AtomicBool,
}

/// The consumer's findings.
#[derive(Debug, Default)]
struct ConsumerReport {
    counters: ConsumerCounters,
    /// Accepted frames whose checksum (or length, or tensor) did not verify: must be 0.
    corrupt_accepted: u64,
    /// Frames whose bytes did not verify inside the closure but were then refused by
    /// the seqlock re-check (the torn reads the protocol exists to catch).
    torn_caught: u64,
    /// Times the consumer lingered inside its closure.
    lingers: u64,
    /// Highest sequence the consumer saw a descriptor for (delivered or not).
    last_seq_seen: Option<u64>,
    /// Epoch of the accepted frames.
    epoch: u64,
}

/// What the producer did.
#[derive(Debug, Default)]
struct ProducerReport {
    published: u64,
    descriptors_dropped: u64,
    descriptors_unconnected: u64,
    elapsed: Duration,
    epoch: u64,
}

fn streams(env: &TestEnv) -> ClientStreams {
    ClientStreams {
        // A roomy descriptor term, so the consumer may lag without descriptors lost.
        descriptor_channel: "aeron:ipc?term-length=4m".into(),
        connect_timeout: SETUP_DEADLINE,
        ..RoleSpec::new(system::Role::Consumer, env, "unused").streams()
    }
}

/// Waits until `probe` holds, failing with `what` (and raising `abort`) after `timeout`.
fn wait(shared: &Shared, what: &str, timeout: Duration, mut probe: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !probe() {
        if shared.abort.load(Ordering::SeqCst) {
            panic!("the other thread failed while this one waited for {what}");
        }
        if Instant::now() >= deadline {
            shared.abort.store(true, Ordering::SeqCst);
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `f` on a named thread; a panic raises `abort` so the other side stops waiting.
fn spawn<T: Send + 'static>(
    name: &str,
    shared: &Arc<Shared>,
    f: impl FnOnce(&Shared) -> T + Send + 'static,
) -> JoinHandle<T> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            struct AbortOnPanic<'a>(&'a Shared);
            impl Drop for AbortOnPanic<'_> {
                fn drop(&mut self) {
                    if std::thread::panicking() {
                        self.0.abort.store(true, Ordering::SeqCst);
                    }
                }
            }
            let _guard = AbortOnPanic(&shared);
            f(&shared)
        })
        .expect("spawning a thread")
}

fn run_consumer(
    env_streams: ClientStreams,
    shm_dir: std::path::PathBuf,
    shared: &Shared,
) -> ConsumerReport {
    let config = ConsumerConfig {
        allowed_base_dirs: vec![shm_dir],
        announce_period: support::ANNOUNCE_PERIOD,
        keepalive_interval: Some(support::KEEPALIVE_INTERVAL),
        attach_timeout: Duration::from_millis(500),
        qos_interval: Duration::from_millis(200),
        client_name: "torn-read-consumer".into(),
        ..ConsumerConfig::new(env_streams, support::STATIC_STREAM)
    };
    let mut consumer = Consumer::connect(config).expect("the consumer connects");
    let mut report = ConsumerReport::default();
    let deadline = Instant::now() + RUN_DEADLINE;
    let mut polls = 0u64;
    let mut quiet_since: Option<Instant> = None;
    let mut idle = BackoffIdle::with_max_park(Duration::from_micros(50));
    let mut next_duty_cycle = Instant::now();
    loop {
        let now = Instant::now();
        assert!(
            now < deadline,
            "the consumer ran out of time: {:?}",
            consumer.counters()
        );
        assert!(!shared.abort.load(Ordering::SeqCst), "the producer failed");
        let mut work = 0;
        if now >= next_duty_cycle {
            next_duty_cycle = now + Duration::from_millis(1);
            work += consumer
                .do_work(monotonic_now_ns())
                .expect("consumer duty cycle");
            while consumer.poll_event().is_some() {}
            let ready_epoch = if consumer.is_ready() {
                consumer.mapped_epoch().unwrap_or(0)
            } else {
                0
            };
            shared.consumer_epoch.store(ready_epoch, Ordering::SeqCst);
        }
        let mut polled = 0;
        for _ in 0..256 {
            polls += 1;
            let linger = polls % LINGER_EVERY == 0;
            let saw_torn = Cell::new(false);
            let poll = consumer
                .poll_frame(|frame| {
                    if linger {
                        let until = Instant::now() + LINGER;
                        while Instant::now() < until {
                            std::hint::spin_loop();
                        }
                    }
                    let intact = frame_is_intact(frame, &SMALL_SIZES);
                    saw_torn.set(!intact);
                    (intact, frame.seq(), frame.epoch())
                })
                .expect("poll_frame");
            match poll {
                FramePoll::Empty => break,
                FramePoll::Delivered((intact, seq, epoch)) => {
                    if !intact {
                        report.corrupt_accepted += 1;
                        eprintln!("ACCEPTED A CORRUPT FRAME: epoch {epoch} seq {seq}");
                    }
                    report.epoch = epoch;
                }
                FramePoll::Dropped(_) if saw_torn.get() => report.torn_caught += 1,
                FramePoll::Dropped(_) | FramePoll::Ignored | FramePoll::RateLimited => {}
            }
            if linger {
                report.lingers += 1;
            }
            polled += 1;
        }
        work += polled;
        if shared.producer_done.load(Ordering::SeqCst) {
            if polled > 0 {
                quiet_since = None;
            }
            let since = *quiet_since.get_or_insert(now);
            if now.duration_since(since) >= Duration::from_millis(200) {
                break;
            }
        }
        idle.idle(work);
    }
    report.counters = consumer.counters();
    report.last_seq_seen = consumer.last_seq_seen();
    shared.consumer_done.store(true, Ordering::SeqCst);
    report
}

fn run_producer(
    env_streams: ClientStreams,
    shm_dir: std::path::PathBuf,
    shared: &Shared,
) -> ProducerReport {
    let config = ProducerConfig::new(support::STATIC_STREAM)
        .streams(env_streams)
        .allowed_base_dirs([shm_dir])
        .keepalive_interval(support::KEEPALIVE_INTERVAL)
        .attach_timeout(Duration::from_millis(500))
        .qos_interval(Duration::from_millis(200));
    let mut producer = Producer::new(config).expect("the producer connects");
    let tensors = tensors_for(&SMALL_SIZES);
    wait(shared, "the producer's attach", SETUP_DEADLINE, || {
        producer
            .do_work(monotonic_now_ns())
            .expect("producer duty cycle");
        producer.is_attached()
    });
    let epoch = producer.epoch().expect("attached");
    shared.producer_epoch.store(epoch, Ordering::SeqCst);
    wait(
        shared,
        "the consumer to map the producer's epoch",
        SETUP_DEADLINE,
        || {
            producer
                .do_work(monotonic_now_ns())
                .expect("producer duty cycle");
            shared.consumer_epoch.load(Ordering::SeqCst) == epoch
        },
    );

    let started = Instant::now();
    let deadline = started + RUN_DEADLINE;
    let mut published = 0u64;
    while published < FRAMES {
        // Keepalives and the like: well within the 100 ms keepalive interval.
        producer
            .do_work(monotonic_now_ns())
            .expect("producer duty cycle");
        assert!(Instant::now() < deadline, "publishing ran out of time");
        assert!(!shared.abort.load(Ordering::SeqCst), "the consumer failed");
        for _ in 0..256 {
            let seq = producer
                .next_seq()
                .expect("the producer stays attached (lease lost mid-run?)");
            let index = (seq % SMALL_SIZES.len() as u64) as usize;
            let mut claim = producer.claim(frame_len(&SMALL_SIZES, seq)).expect("claim");
            fill(claim.payload_mut(), seq);
            claim.commit(&tensors[index], seq).expect("commit");
            published += 1;
            if published == FRAMES {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    assert_eq!(producer.epoch(), Some(epoch), "the epoch changed mid-run");
    shared.producer_done.store(true, Ordering::SeqCst);
    // Keep the lease (and the epoch) until the consumer has drained.
    wait(shared, "the consumer to drain", RUN_DEADLINE, || {
        producer
            .do_work(monotonic_now_ns())
            .expect("producer duty cycle");
        shared.consumer_done.load(Ordering::SeqCst)
    });
    let c = producer.counters();
    ProducerReport {
        published: c.frames_published,
        descriptors_dropped: c.descriptors_dropped,
        descriptors_unconnected: c.descriptors_unconnected,
        elapsed,
        epoch,
    }
}

#[test]
fn a_consumer_racing_an_overwriting_producer_never_accepts_a_torn_frame() {
    assert_eq!(HEADER_NSLOTS, 8, "the ring under stress has 8 slots");
    let started = Instant::now();
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-torn-read".into(),
        ..DriverSettings::shared_announce()
    };
    // Leases survive a second without keepalives here: two threads spin flat out on
    // what may be two cores, and the test is about torn reads, not lease expiry.
    let mut config = settings.config(&env);
    config.policies.lease_expiry_grace_intervals = 10;
    let driver = InThreadDriver::start_with_config(&env, config);
    let shared = Arc::new(Shared::default());

    let consumer = {
        let (streams, shm) = (streams(&env), env.shm_dir());
        spawn("consumer", &shared, move |s| run_consumer(streams, shm, s))
    };
    wait(&shared, "the consumer to attach", SETUP_DEADLINE, || {
        shared.consumer_epoch.load(Ordering::SeqCst) != 0
    });
    let producer = {
        let (streams, shm) = (streams(&env), env.shm_dir());
        spawn("producer", &shared, move |s| run_producer(streams, shm, s))
    };
    let producer = producer.join().expect("the producer thread");
    let consumer = consumer.join().expect("the consumer thread");
    drop(driver);

    let c = &consumer.counters;
    let last_seq_seen = consumer
        .last_seq_seen
        .expect("the consumer saw descriptors");
    // Descriptors after the last one seen never arrived (the producer dropped them).
    let tail_missing = producer.published - 1 - last_seq_seen;
    let late_like =
        c.drops(DropReason::Late) + c.drops(DropReason::NotCommitted) + c.drops(DropReason::Stale);
    eprintln!(
        "torn_read_stress: {} frames published into an 8-slot ring in {:.2?} ({:.0}/s); \
         consumer: delivered {}, late {}, not committed {}, stale {}, resync drops {} \
         ({} resyncs), gaps {}, torn reads caught by the seqlock {} (in {} lingers), \
         corrupt accepted {}; producer descriptors dropped {}; total {:.2?}",
        producer.published,
        producer.elapsed,
        producer.published as f64 / producer.elapsed.as_secs_f64(),
        c.frames_delivered,
        c.drops_late,
        c.drops_not_committed,
        c.drops_stale,
        c.drops_resync,
        c.resyncs,
        c.drops_gap,
        consumer.torn_caught,
        consumer.lingers,
        consumer.corrupt_accepted,
        producer.descriptors_dropped,
        started.elapsed(),
    );

    assert!(producer.published >= FRAMES, "{producer:?}");
    assert_eq!(
        consumer.corrupt_accepted, 0,
        "the consumer accepted corrupt frames"
    );
    assert_eq!(consumer.epoch, producer.epoch);
    assert_eq!(producer.descriptors_unconnected, 0, "{producer:?}");
    // Every frame published is accounted for: delivered, dropped for a reason, or a gap
    // (a descriptor the producer could not offer), the tail included.
    assert_eq!(
        c.frames_delivered + c.frame_drops() + c.drops_gap + tail_missing,
        producer.published,
        "{c:?}"
    );
    assert_eq!(
        c.drops_gap + tail_missing,
        producer.descriptors_dropped,
        "gaps are exactly the descriptors the producer dropped: {c:?}"
    );
    assert!(
        c.frames_delivered > 0,
        "the consumer delivered nothing: {c:?}"
    );
    assert!(
        late_like > 0,
        "the consumer never lost a race with the producer, so nothing was stressed: {c:?}"
    );
}
