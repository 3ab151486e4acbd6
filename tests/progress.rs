//! Frame progress (Wire Spec §10.2.2) and RATE_LIMITED consumers (§5, §11) between a
//! real producer and consumer through a real SHM driver: the throttle follows the
//! consumers' hints and sends nothing without takers, a consumer reads the prefix while
//! rows land, hostile `FrameProgress` messages are counted and ignored, and a rate
//! limit skips frames by rate (not as drops) on the shared stream and on a per-consumer
//! stream the producer thins itself.
//!
//! Progress and rate decisions run on times the test passes in (a fake clock); every
//! wait is bounded and every test has its own directories.

#[path = "support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use support::{
    client_streams, DriverSettings, InThreadDriver, TestEnv, ANNOUNCE_PERIOD, CHANNEL,
    CONTROL_STREAM, DEADLINE, KEEPALIVE_INTERVAL as KEEPALIVE,
    SEPARATE_ANNOUNCE_STREAM as ANNOUNCE_STREAM, STATIC_STREAM as STREAM,
};
use tensorpool::client::consumer::{Consumer, ConsumerConfig, ConsumerMode, FramePoll};
use tensorpool::client::producer::{
    monotonic_now_ns, Producer, ProducerConfig, ProducerEvent, ProgressError,
};
use tensorpool::client::progress::{ProgressHints, ProgressPolicy, ProgressPoll};
use tensorpool::client::tensor::{bytes_header, tensor_header, with_progress};
use tensorpool::client::MappedEpoch;
use tensorpool::protocol::control::{
    frame_progress, Bool, ConsumerHello, Dtype, FrameProgress, FrameProgressDecoder,
    FrameProgressState, MajorOrder, Mode, ProgressUnit,
};
use tensorpool::protocol::driver::{LeaseRevokeReason, Role, ShmLeaseRevoked};
use tensorpool::protocol::MessageHeader;
use tensorpool::shm::layout::{encode_slot, header_index, SlotContents};
use tensorpool::shm::open::{Access, AllowedBaseDirs};
use tensorpool::transport::{AeronClient, OfferOutcome, Publication, Subscription};

const MS: u64 = 1_000_000;
const US: u64 = 1_000;

/// Counts heap allocations per thread, to pin the allocation-free progress paths.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the count is a thread-local without drop glue.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn start_driver(env: &TestEnv) -> InThreadDriver {
    let settings = DriverSettings {
        instance_id: "tp-progress-test".into(),
        ..DriverSettings::separate_announce()
    };
    InThreadDriver::start_with_config(env, settings.config(env))
}

fn producer(env: &TestEnv) -> Producer {
    let config = ProducerConfig::new(STREAM)
        .streams(client_streams(env, ANNOUNCE_STREAM))
        .allowed_base_dirs([env.shm_dir()])
        .keepalive_interval(KEEPALIVE)
        .attach_timeout(Duration::from_millis(500));
    let mut producer = Producer::new(config).expect("producer connects");
    pump(&mut producer, None, "the producer's attach", |p, _| {
        p.events()
            .any(|e| matches!(e, ProducerEvent::Attached { .. }))
            .then_some(())
    });
    producer
}

fn consumer_config(env: &TestEnv) -> ConsumerConfig {
    ConsumerConfig {
        allowed_base_dirs: vec![env.shm_dir()],
        announce_period: ANNOUNCE_PERIOD,
        keepalive_interval: Some(KEEPALIVE),
        attach_timeout: Duration::from_millis(500),
        qos_interval: Duration::from_millis(100),
        ..ConsumerConfig::new(client_streams(env, ANNOUNCE_STREAM), STREAM)
    }
}

/// Runs both duty cycles until `probe` yields a value.
fn pump<T>(
    producer: &mut Producer,
    mut consumer: Option<&mut Consumer>,
    what: &str,
    mut probe: impl FnMut(&mut Producer, Option<&mut Consumer>) -> Option<T>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        producer.do_work(monotonic_now_ns()).expect("producer");
        if let Some(c) = consumer.as_deref_mut() {
            c.do_work(monotonic_now_ns()).expect("consumer");
        }
        if let Some(value) = probe(producer, consumer.as_deref_mut()) {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A consumer attached, mapped on the producer's epoch, and known to the producer.
fn joined(producer: &mut Producer, config: ConsumerConfig) -> Consumer {
    let mut consumer = Consumer::connect(config).expect("consumer connects");
    let epoch = producer.epoch();
    pump(
        producer,
        Some(&mut consumer),
        "the consumer's hello",
        |p, c| {
            let c = c.expect("consumer");
            (c.is_ready()
                && c.mapped_epoch() == epoch
                && p.consumer_wish(c.consumer_id()).is_some())
            .then_some(())
        },
    );
    consumer
}

/// A raw client on the control stream: forges hellos, revokes and progress messages, and
/// watches what the producer publishes there.
struct ControlTap {
    client: AeronClient,
    publication: Publication,
    subscription: Subscription,
}

impl ControlTap {
    fn new(env: &TestEnv) -> Self {
        let client = AeronClient::connect(env.aeron_dir(), DEADLINE).expect("test client");
        let publication =
            Publication::add(&client, CHANNEL, CONTROL_STREAM as i32).expect("control pub");
        let subscription =
            Subscription::add(&client, CHANNEL, CONTROL_STREAM as i32).expect("control sub");
        Self {
            client,
            publication,
            subscription,
        }
    }

    fn offer(&self, bytes: &[u8]) {
        let deadline = Instant::now() + DEADLINE;
        while !matches!(
            self.publication.offer(bytes),
            Ok(OfferOutcome::Published { .. })
        ) {
            assert!(
                Instant::now() < deadline,
                "could not offer on the control stream"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn hello(&self, consumer_id: u32, progress: bool, hints: ProgressHints) {
        let mut buf = [0u8; 128];
        let len = ConsumerHello {
            stream_id: STREAM,
            consumer_id,
            supports_shm: Bool::True,
            supports_progress: if progress { Bool::True } else { Bool::False },
            mode: Mode::Stream,
            max_rate_hz: 0,
            expected_layout_version: 1,
            progress_interval_us: hints.interval_us,
            progress_bytes_delta: hints.bytes_delta,
            progress_major_delta_units: hints.major_delta_units,
            descriptor_stream_id: 0,
            control_stream_id: 0,
            descriptor_channel: b"",
            control_channel: b"",
        }
        .encode(&mut buf)
        .expect("encode");
        self.offer(&buf[..len]);
    }

    fn lease_ended(&self, consumer_id: u32) {
        let mut buf = [0u8; 128];
        let len = ShmLeaseRevoked {
            timestamp_ns: 1,
            lease_id: 900 + u64::from(consumer_id),
            stream_id: STREAM,
            client_id: consumer_id,
            role: Role::Consumer,
            reason: LeaseRevokeReason::Detached,
            error_message: b"",
        }
        .encode(&mut buf)
        .expect("encode");
        self.offer(&buf[..len]);
    }

    fn progress(&self, epoch: u64, seq: u64, filled: u64, state: FrameProgressState) {
        let mut buf = [0u8; 64];
        let len = FrameProgress {
            stream_id: STREAM,
            epoch,
            seq,
            payload_bytes_filled: filled,
            state,
        }
        .encode(&mut buf)
        .expect("encode");
        self.offer(&buf[..len]);
    }

    /// Every `FrameProgress` that arrived, as (seq, filled, state).
    fn drain_progress(&mut self, into: &mut Vec<(u64, u64, FrameProgressState)>) {
        self.client.do_work().expect("test client");
        self.subscription
            .poll(
                |bytes| {
                    let is_progress = MessageHeader::read(bytes)
                        .is_ok_and(|h| h.template_id == frame_progress::TEMPLATE_ID);
                    if let (true, Ok(p)) = (is_progress, FrameProgressDecoder::wrap(bytes)) {
                        into.push((p.seq(), p.payload_bytes_filled(), p.state()));
                    }
                },
                64,
            )
            .expect("poll");
    }
}

/// Byte `i` of frame `seq`.
fn pattern(seq: u64, i: usize) -> u8 {
    ((seq + i as u64) % 251) as u8
}

#[test]
fn the_throttle_follows_the_smallest_hints_and_sends_nothing_without_takers() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut tap = ControlTap::new(&env);
    let mut producer = producer(&env);
    let hints = |interval_us, bytes_delta| ProgressHints {
        interval_us,
        bytes_delta,
        major_delta_units: None,
    };

    // A consumer with hints but without progress support: nothing is published.
    tap.hello(501, false, hints(Some(100), Some(4096)));
    pump(&mut producer, None, "hello 501", |p, _| {
        p.consumer_wish(501)
    });
    assert_eq!(producer.progress_policy(), None);
    let tensor = bytes_header(16 * 1024).expect("tensor");
    let fill_frame = |producer: &mut Producer, t0: u64| {
        let mut fill = producer
            .claim_with_progress(16 * 1024, &tensor, t0)
            .expect("claim");
        let seq = fill.seq();
        for row in 1..=16u64 {
            let at = (row as usize - 1) * 1024;
            for (i, b) in fill.payload_mut()[at..at + 1024].iter_mut().enumerate() {
                *b = pattern(seq, at + i);
            }
            fill.progress(row * 1024, t0 + row * 100 * US)
                .expect("report");
        }
        assert_eq!(
            fill.progress(1, t0),
            Err(ProgressError::Regressed {
                filled: 1,
                reported: 16 * 1024
            })
        );
        assert_eq!(
            fill.progress(16 * 1024 + 1, t0),
            Err(ProgressError::BeyondLength {
                filled: 16 * 1024 + 1,
                len: 16 * 1024
            })
        );
        (seq, fill.commit(t0))
    };
    let (seq, committed) = fill_frame(&mut producer, 10 * MS);
    assert_eq!(seq, committed);
    assert_eq!(producer.counters().progress_sent, 0);

    // Two consumers with progress: the smallest interval and the smallest delta win.
    tap.hello(502, true, hints(Some(1_000), Some(4096)));
    tap.hello(503, true, hints(Some(500), None));
    let policy = pump(&mut producer, None, "hellos 502 and 503", |p, _| {
        p.consumer_wish(503).and(p.progress_policy())
    });
    assert_eq!(
        policy,
        ProgressPolicy {
            interval_ns: 500 * US,
            bytes_delta: 4096,
            major_delta_units: 0
        }
    );
    let mut seen = Vec::new();
    tap.drain_progress(&mut seen);
    assert!(seen.is_empty(), "nothing was published for {seq}: {seen:?}");

    // 1 KiB every 100 µs: a PROGRESS every 500 µs with the latest value (5 KiB, above
    // the 4 KiB delta).
    let (seq, _) = fill_frame(&mut producer, 20 * MS);
    let expected = vec![
        (seq, 0, FrameProgressState::Started),
        (seq, 5 * 1024, FrameProgressState::Progress),
        (seq, 10 * 1024, FrameProgressState::Progress),
        (seq, 15 * 1024, FrameProgressState::Progress),
        (seq, 16 * 1024, FrameProgressState::Complete),
    ];
    pump(&mut producer, None, "the progress messages", |_, _| {
        tap.drain_progress(&mut seen);
        (seen.len() >= expected.len()).then_some(())
    });
    assert_eq!(seen, expected);
    let counters = producer.counters();
    assert_eq!(
        (counters.progress_sent, counters.progress_throttled),
        (5, 13)
    );

    // Their leases end: progress stops again.
    tap.lease_ended(502);
    tap.lease_ended(503);
    pump(&mut producer, None, "the lease ends", |p, _| {
        p.consumer_wish(503).is_none().then_some(())
    });
    assert_eq!(producer.progress_policy(), None);
    fill_frame(&mut producer, 30 * MS);
    assert_eq!(producer.counters().progress_sent, 5);
}

#[test]
fn a_consumer_reads_the_prefix_while_rows_land() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut producer = producer(&env);
    let mut consumer = joined(
        &mut producer,
        ConsumerConfig {
            progress: Some(ProgressHints {
                interval_us: Some(100),
                bytes_delta: Some(4096),
                major_delta_units: Some(4),
            }),
            ..consumer_config(&env)
        },
    );
    assert_eq!(
        producer.progress_policy(),
        Some(ProgressPolicy {
            interval_ns: 100 * US,
            bytes_delta: 4096,
            major_delta_units: 4
        })
    );
    // 64 rows of 512 bytes, reported in rows.
    let (rows, row_bytes) = (64u64, 512usize);
    let tensor = with_progress(
        tensor_header(
            Dtype::Uint8,
            MajorOrder::Row,
            &[rows as i32, row_bytes as i32],
            &[],
        )
        .expect("tensor"),
        ProgressUnit::Rows,
    )
    .expect("rows");
    let len = rows as usize * row_bytes;
    let t0 = 50 * MS;
    // Publishing with progress allocates nothing (STARTED, PROGRESS, COMPLETE included).
    let mut publish_allocations = 0;
    let before = allocations();
    let mut fill = producer
        .claim_with_progress(len, &tensor, t0)
        .expect("claim");
    publish_allocations += allocations() - before;
    let seq = fill.seq();
    let mut last_units = 0;
    let mut prefixes = 0;
    let mut poll_allocations = 0;
    for row in 1..=rows {
        let at = (row as usize - 1) * row_bytes;
        for (i, b) in fill.payload_mut()[at..at + row_bytes]
            .iter_mut()
            .enumerate()
        {
            *b = pattern(seq, at + i);
        }
        // One row a millisecond: every 4 rows (2 KiB) clear the 4-row unit delta.
        let before = allocations();
        let sent = fill
            .progress(row * row_bytes as u64, t0 + row * MS)
            .expect("report");
        publish_allocations += allocations() - before;
        if !sent {
            continue;
        }
        let deadline = Instant::now() + DEADLINE;
        let units = loop {
            consumer.do_work(monotonic_now_ns()).expect("consumer");
            let before = allocations();
            let poll = consumer.poll_progress(|p| {
                let intact = p
                    .prefix()
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern(p.seq(), i));
                (p.seq(), p.units_filled(), p.prefix().len(), intact)
            });
            poll_allocations += allocations() - before;
            match poll {
                ProgressPoll::Delivered((got_seq, units, prefix_len, intact)) => {
                    assert_eq!(got_seq, seq);
                    assert!(intact, "the prefix holds the rows written");
                    let units = units.expect("a ROWS tensor reports rows");
                    assert_eq!(prefix_len as u64, units * row_bytes as u64);
                    if units == row {
                        break units;
                    }
                }
                ProgressPoll::Overwritten => panic!("the slot is this frame's"),
                ProgressPoll::Empty => {}
            }
            assert!(Instant::now() < deadline, "no prefix for row {row}");
        };
        assert!(units > last_units, "monotonic: {units} after {last_units}");
        last_units = units;
        prefixes += 1;
    }
    assert_eq!(prefixes, rows / 4);
    let before = allocations();
    assert_eq!(fill.commit(t0), seq);
    publish_allocations += allocations() - before;
    assert_eq!((publish_allocations, poll_allocations), (0, 0));
    assert_eq!(producer.counters().progress_sent, 1 + rows / 4 + 1);
    // The frame itself comes as for everyone, whole.
    let delivered = pump(
        &mut producer,
        Some(&mut consumer),
        "the frame",
        |_, c| match c.expect("consumer").poll_frame(|f| {
            (
                f.seq(),
                f.payload()
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern(f.seq(), i)),
            )
        }) {
            Ok(FramePoll::Delivered(got)) => Some(got),
            _ => None,
        },
    );
    assert_eq!(delivered, (seq, true));
    let c = consumer.counters().progress;
    assert_eq!(c.prefixes_delivered, rows / 4);
    assert_eq!(c.violations(), 0, "{c:?}");
}

#[test]
fn hostile_progress_messages_are_counted_and_ignored() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let tap = ControlTap::new(&env);
    let mut producer = producer(&env);
    let mut consumer = joined(
        &mut producer,
        ConsumerConfig {
            progress: Some(ProgressHints::default()),
            ..consumer_config(&env)
        },
    );
    let epoch = producer.epoch().expect("attached");
    let len = 8192;
    let tensor = bytes_header(len).expect("tensor");
    let grant = fill_grant(&env, &producer);
    // A frame being filled (its STARTED and header are out); its bytes are the pattern.
    let mut fill = producer
        .claim_with_progress(len, &tensor, MS)
        .expect("claim");
    let seq = fill.seq();
    for (i, b) in fill.payload_mut().iter_mut().enumerate() {
        *b = pattern(seq, i);
    }
    // Another frame's slot, forged: IN-PROGRESS with a header whose progress stride lies.
    let bad_seq = seq + 2;
    let index = header_index(bad_seq, grant.header_nslots());
    let mut lying = with_progress(
        tensor_header(Dtype::Uint8, MajorOrder::Row, &[8, 1024], &[]).expect("tensor"),
        ProgressUnit::Rows,
    )
    .expect("rows");
    lying.progress_stride_bytes = 1000;
    grant.seq_commit(index).store_in_progress(bad_seq);
    grant.write_slot_body(
        index,
        &encode_slot(
            0,
            &SlotContents {
                values_len_bytes: 8192,
                payload_slot: index,
                pool_id: 2,
                payload_offset: 0,
                timestamp_ns: 0,
                meta_version: 0,
                tensor: lying,
            },
        ),
    );

    let received = |consumer: &mut Consumer, n: u64| {
        let deadline = Instant::now() + DEADLINE;
        while consumer.counters().progress.received < n {
            consumer.do_work(monotonic_now_ns()).expect("consumer");
            assert!(Instant::now() < deadline, "{n} progress messages");
            std::thread::sleep(Duration::from_micros(200));
        }
        consumer.counters().progress
    };
    use FrameProgressState::{Progress, Started, Unknown};
    // STARTED (from the producer), then a valid report, read back.
    let base = received(&mut consumer, 1).received;
    tap.progress(epoch, seq, 2048, Progress);
    received(&mut consumer, base + 1);
    let read = consumer.poll_progress(|p| (p.filled_bytes(), p.prefix().to_vec()));
    let ProgressPoll::Delivered((2048, prefix)) = read else {
        panic!("the valid report is readable: {read:?}");
    };
    assert!(prefix
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern(seq, i)));

    tap.progress(epoch, seq, 4096, Unknown);
    tap.progress(epoch, seq, len as u64 + 1, Progress);
    tap.progress(epoch + 1, seq, 4096, Progress);
    tap.progress(epoch, seq + 5, 10, Progress);
    tap.progress(epoch, bad_seq, 10, Progress);
    tap.progress(epoch, seq, 1024, Progress);
    tap.progress(epoch, seq, 6000, Progress);
    tap.progress(epoch, seq, 3000, Started);
    let c = received(&mut consumer, base + 9);
    assert_eq!(c.bad_state, 1, "{c:?}");
    assert_eq!(c.beyond_length, 1, "{c:?}");
    assert_eq!(c.not_in_slot, 1, "seq + 5 never started: {c:?}");
    assert_eq!(c.bad_layout, 1, "the lying progress stride: {c:?}");
    assert_eq!(c.regressions, 1, "1024 after 2048: {c:?}");
    // Another epoch, and the frame that regressed (no more prefixes for it).
    assert_eq!(c.stale, 3, "{c:?}");
    assert_eq!(c.prefixes_delivered, 1);
    assert_eq!(consumer.poll_progress(|_| ()), ProgressPoll::Empty);
    // The frame is still delivered by its descriptor (seq_commit decides).
    fill.commit(MS);
    let got = pump(
        &mut producer,
        Some(&mut consumer),
        "the frame",
        |_, c| match c.expect("consumer").poll_frame(|f| f.seq()) {
            Ok(FramePoll::Delivered(got)) => Some(got),
            _ => None,
        },
    );
    assert_eq!(got, seq);
}

/// The producer's epoch mapped read-write, as a hostile peer with file access could.
fn fill_grant(env: &TestEnv, producer: &Producer) -> MappedEpoch {
    let grant = producer.grant().expect("attached").clone();
    let allowed = AllowedBaseDirs::new([env.shm_dir()]).expect("allowed dirs");
    MappedEpoch::map(&grant, &allowed, Access::ReadWrite).expect("mapping")
}

/// Publishes 100 frames stamped 1 ms apart (a fake capture clock), each read before the
/// next; returns the sequences delivered.
fn publish_at_1khz(producer: &mut Producer, consumer: &mut Consumer) -> Vec<u64> {
    let tensor = bytes_header(64).expect("tensor");
    let mut delivered = Vec::new();
    for i in 0..100u64 {
        let held_back = producer.counters().descriptors_rate_limited;
        let received = consumer.counters().descriptors_received;
        let seq = producer
            .publish(&[i as u8; 64], &tensor, 1_000 * MS + i * MS)
            .expect("publish");
        assert_eq!(seq, i);
        // A thinned stream carries no descriptor for a frame held back.
        if producer.counters().descriptors_rate_limited > held_back {
            continue;
        }
        pump(producer, Some(consumer), "the descriptor", |_, c| {
            let c = c.expect("consumer");
            if let Ok(FramePoll::Delivered(s)) = c.poll_frame(|f| f.seq()) {
                delivered.push(s);
            }
            (c.counters().descriptors_received > received).then_some(())
        });
    }
    delivered
}

#[test]
fn a_rate_limited_consumer_skips_frames_by_rate_not_as_drops() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut producer = producer(&env);
    let mut consumer = joined(
        &mut producer,
        ConsumerConfig {
            mode: ConsumerMode::RateLimited {
                max_rate_hz: NonZeroU32::new(100).expect("non-zero"),
            },
            ..consumer_config(&env)
        },
    );
    let wish = producer
        .consumer_wish(consumer.consumer_id())
        .expect("hello");
    assert_eq!(wish.max_rate_hz, 100, "asked of the producer in the hello");
    let delivered = publish_at_1khz(&mut producer, &mut consumer);
    // 1 kHz capped at 100 Hz: the first two (the tolerance), then one per 10 ms.
    let expected: Vec<u64> = [0, 1].into_iter().chain((1..10).map(|k| k * 10)).collect();
    assert_eq!(delivered, expected);
    let c = consumer.counters();
    assert_eq!(c.frames_rate_limited, 89);
    assert_eq!(
        (
            c.frame_drops(),
            c.drops_gap,
            c.qos_drops_gap(),
            c.qos_drops_late()
        ),
        (0, 0, 0, 0)
    );
    assert_eq!(
        c.frames_delivered + c.frames_rate_limited + c.frame_drops(),
        c.descriptors_received
    );
    assert_eq!(
        producer.counters().descriptors_rate_limited,
        0,
        "the shared stream is never thinned"
    );
}

#[test]
fn the_producer_thins_a_rate_limited_consumers_own_stream() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut producer = producer(&env);
    let mut consumer = joined(
        &mut producer,
        ConsumerConfig {
            mode: ConsumerMode::RateLimited {
                max_rate_hz: NonZeroU32::new(100).expect("non-zero"),
            },
            request_per_consumer_descriptor: Some((CHANNEL.into(), support::DESCRIPTOR_RANGE.0)),
            ..consumer_config(&env)
        },
    );
    let id = consumer.consumer_id();
    pump(
        &mut producer,
        Some(&mut consumer),
        "the private stream",
        |p, c| {
            let c = c.expect("consumer");
            (p.consumer_stream(id).is_some()
                && c.descriptor_stream().stream_id == support::DESCRIPTOR_RANGE.0)
                .then_some(())
        },
    );
    // Wait until the private publication is connected to the consumer's subscription.
    pump(
        &mut producer,
        Some(&mut consumer),
        "a ready stream",
        |p, _| {
            (p.consumer_stream(id)
                == Some(tensorpool::client::producer::ConsumerStreamState::Ready))
            .then_some(())
        },
    );
    let delivered = publish_at_1khz(&mut producer, &mut consumer);
    let expected: Vec<u64> = [0, 1].into_iter().chain((1..10).map(|k| k * 10)).collect();
    assert_eq!(delivered, expected);
    // The producer held the other 89 back; the consumer's own limiter agreed with every
    // descriptor it got (both gate on the slot's capture time).
    assert_eq!(producer.counters().descriptors_rate_limited, 89);
    let c = consumer.counters();
    assert_eq!((c.frames_rate_limited, c.frame_drops()), (0, 0), "{c:?}");
    // The sequences held back between delivered frames are no drops either.
    assert_eq!((c.gaps_rate_limited, c.drops_gap), (8 + 8 * 9, 0), "{c:?}");
}

#[test]
fn a_producer_that_starts_after_its_consumers_learns_their_wishes() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut consumer = Consumer::connect(ConsumerConfig {
        progress: Some(ProgressHints {
            interval_us: Some(300),
            ..ProgressHints::default()
        }),
        mode: ConsumerMode::RateLimited {
            max_rate_hz: NonZeroU32::new(25).expect("non-zero"),
        },
        ..consumer_config(&env)
    })
    .expect("consumer connects");
    let deadline = Instant::now() + DEADLINE;
    while consumer.lease_id().is_none() {
        consumer.do_work(monotonic_now_ns()).expect("consumer");
        assert!(Instant::now() < deadline, "the consumer's attach");
        std::thread::sleep(Duration::from_micros(200));
    }
    let hellos = consumer.counters().hellos_sent;
    // The producer attaches later: its epoch makes the consumer remap and say hello again.
    let mut producer = producer(&env);
    let id = consumer.consumer_id();
    let wish = pump(&mut producer, Some(&mut consumer), "the wish", |p, _| {
        p.consumer_wish(id)
    });
    assert!(wish.supports_progress);
    assert_eq!(wish.hints.interval_us, Some(300));
    assert_eq!(wish.max_rate_hz, 25);
    assert_eq!(
        producer.progress_policy().map(|p| p.interval_ns),
        Some(300 * US)
    );
    assert!(consumer.counters().hellos_sent > hellos);
}
