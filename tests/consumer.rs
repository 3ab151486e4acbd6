//! Consumer integration tests (Wire Spec §8.3, §10.1.1, §10.2.1, §15.4, §15.21; Driver
//! Model §4.9): the SHM driver runs `run_until` on a thread with its embedded media
//! driver and a private base directory; a minimal producer written here (session, link,
//! read-write mapping, seqlock writes, descriptors) and the consumer run on the test
//! thread. Every wait is bounded; the driver thread stops when its handle drops.

#[path = "support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::{
    client_streams, DriverSettings, InThreadDriver, TestEnv, ANNOUNCE_PERIOD, CHANNEL,
    CONTROL_STREAM, DEADLINE, DESCRIPTOR_RANGE, DESCRIPTOR_STREAM, HEADER_NSLOTS as NSLOTS,
    KEEPALIVE_INTERVAL as KEEPALIVE, SEPARATE_ANNOUNCE_STREAM as ANNOUNCE_STREAM,
    STATIC_STREAM as STREAM,
};
use tensorpool::client::consumer::{
    monotonic_now_ns, Consumer, ConsumerConfig, ConsumerCounters, ConsumerEvent, DescriptorStream,
    DropReason, Frame, FramePoll, UnmapReason,
};
use tensorpool::client::{
    ClientStreams, ControlLink, DriverSession, MappedEpoch, Request, SessionConfig, SessionEvent,
};
use tensorpool::config::{DriverConfig, DEFAULT_SHUTDOWN_TIMEOUT_MS};
use tensorpool::protocol::control::{
    ClockDomain, Dtype, FrameDescriptor, MajorOrder, ProgressUnit, ShmPoolAnnounce,
    ShmPoolAnnouncePayloadPools, TensorHeader,
};
use tensorpool::protocol::driver::{LeaseRevokeReason, Role, ShmLeaseRevoked};
use tensorpool::shm::layout::{encode_slot, header_index, SlotContents, HEADER_SLOT_BYTES};
use tensorpool::shm::open::{Access, AllowedBaseDirs};
use tensorpool::shm::seqlock::{committed, in_progress};
use tensorpool::transport::Publication;

/// First per-consumer descriptor stream the driver assigns.
const PER_CONSUMER_DESCRIPTOR: u32 = DESCRIPTOR_RANGE.0;

/// Counts heap allocations per thread, to pin the allocation-free frame path.
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

/// A private directory under /dev/shm with `aeron/` and `shm/` (removed on drop) and the
/// driver settings of the test.
struct Env {
    dir: TestEnv,
    settings: DriverSettings,
}

impl Env {
    /// Announces on a stream of their own.
    fn new() -> Self {
        Self::with_settings(DriverSettings::separate_announce())
    }

    /// Announces on the control stream, which keeps revokes and announces in order.
    fn shared_announce() -> Self {
        Self::with_settings(DriverSettings::shared_announce())
    }

    fn with_settings(settings: DriverSettings) -> Self {
        Self {
            dir: TestEnv::new(),
            settings: DriverSettings {
                instance_id: "tp-consumer-test".into(),
                ..settings
            },
        }
    }

    fn aeron_dir(&self) -> PathBuf {
        self.dir.aeron_dir()
    }

    fn shm_dir(&self) -> PathBuf {
        self.dir.shm_dir()
    }

    /// The support configuration as these tests have always run the driver: a static
    /// stream only, no remote shutdown, the default shutdown drain.
    fn driver_config(&self) -> DriverConfig {
        let mut config = self.settings.config(&self.dir);
        config.driver.stream_id_range = None;
        config.policies.allow_dynamic_streams = false;
        config.policies.shutdown_token = None;
        config.policies.shutdown_timeout_ms = DEFAULT_SHUTDOWN_TIMEOUT_MS;
        config
    }

    /// Starts the SHM driver on a thread of its own; stopped and joined on drop.
    fn start_driver(&self) -> InThreadDriver {
        InThreadDriver::start_with_config(&self.dir, self.driver_config())
    }

    fn streams(&self) -> ClientStreams {
        ClientStreams {
            connect_timeout: Duration::from_secs(5),
            ..client_streams(&self.dir, self.settings.announce_stream_id)
        }
    }

    fn consumer_config(&self) -> ConsumerConfig {
        ConsumerConfig {
            allowed_base_dirs: vec![self.shm_dir()],
            announce_period: ANNOUNCE_PERIOD,
            keepalive_interval: Some(KEEPALIVE),
            attach_timeout: Duration::from_millis(500),
            qos_interval: Duration::from_millis(100),
            client_name: "consumer-under-test".into(),
            ..ConsumerConfig::new(self.streams(), STREAM)
        }
    }
}

/// A producer just capable enough to drive the consumer: attaches, maps read-write,
/// writes slots exactly as told (valid or not), publishes descriptors.
struct TestProducer {
    session: DriverSession,
    active: bool,
    keepalives: bool,
    mapped: Option<MappedEpoch>,
    allowed: AllowedBaseDirs,
    inbox: Vec<SessionEvent>,
    descriptors: Publication,
    control: Publication,
    announces: Publication,
    link: ControlLink,
}

/// What to write into a slot.
#[derive(Clone, Copy)]
struct SlotWrite {
    contents: SlotContents,
    /// The final `seq_commit` word.
    word: u64,
    /// Changes to the encoded image (corrupting the embedded header).
    corrupt: Option<fn(&mut [u8; HEADER_SLOT_BYTES])>,
}

fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((seq + i as u64) % 251) as u8).collect()
}

fn uint8_tensor(len: usize) -> TensorHeader {
    let mut dims = [0; 8];
    dims[0] = len as i32;
    TensorHeader {
        dtype: Dtype::Uint8,
        major_order: MajorOrder::Row,
        ndims: 1,
        pad_align: 0,
        progress_unit: ProgressUnit::None,
        progress_stride_bytes: 0,
        dims,
        strides: [0; 8],
        pad: [0; 109],
    }
}

/// A valid slot for `seq` holding `len` pattern bytes.
fn valid_slot(seq: u64, len: usize) -> SlotWrite {
    SlotWrite {
        contents: SlotContents {
            values_len_bytes: len as u32,
            payload_slot: header_index(seq, NSLOTS),
            pool_id: if len <= 4096 { 1 } else { 2 },
            payload_offset: 0,
            timestamp_ns: 1_000 + seq,
            meta_version: 0,
            tensor: uint8_tensor(len),
        },
        word: committed(seq),
        corrupt: None,
    }
}

impl TestProducer {
    fn connect(env: &Env) -> Self {
        let link = ControlLink::connect(&env.streams(), "test-producer").expect("producer link");
        let descriptors =
            Publication::add(link.client(), CHANNEL, DESCRIPTOR_STREAM as i32).expect("pub");
        let control = Publication::add(link.client(), CHANNEL, CONTROL_STREAM as i32).expect("pub");
        let announces =
            Publication::add(link.client(), CHANNEL, ANNOUNCE_STREAM as i32).expect("pub");
        Self {
            session: DriverSession::new(Self::session_config()),
            active: true,
            keepalives: true,
            mapped: None,
            allowed: AllowedBaseDirs::new([env.shm_dir()]).expect("allowed dirs"),
            inbox: Vec::new(),
            descriptors,
            control,
            announces,
            link,
        }
    }

    fn session_config() -> SessionConfig {
        SessionConfig {
            keepalive_interval: Some(KEEPALIVE),
            attach_timeout: Duration::from_millis(500),
            ..SessionConfig::new(STREAM, Role::Producer)
        }
    }

    fn pump(&mut self) {
        let now = monotonic_now_ns();
        self.link.do_work().expect("producer client");
        let (session, inbox) = (&mut self.session, &mut self.inbox);
        self.link
            .poll_control(
                |bytes| {
                    if let Some(e) = session.on_message(bytes, now) {
                        inbox.push(e)
                    }
                },
                16,
            )
            .expect("producer poll");
        for event in std::mem::take(&mut self.inbox) {
            match event {
                SessionEvent::Attached(grant) => {
                    self.mapped = Some(
                        MappedEpoch::map(&grant, &self.allowed, Access::ReadWrite)
                            .expect("producer maps its grant"),
                    );
                }
                SessionEvent::Revoked(_)
                | SessionEvent::LeaseLost
                | SessionEvent::DriverShutdown(_) => self.mapped = None,
                _ => {}
            }
        }
        if !self.active {
            return;
        }
        let (request, _) = self.session.poll(now);
        let request = request.filter(|r| self.keepalives || !matches!(r, Request::Keepalive(_)));
        if let Some(request) = request {
            if !self.link.send(&request).expect("producer send") {
                self.session.send_failed(now);
            }
        }
    }

    fn epoch(&self) -> Option<u64> {
        self.mapped.as_ref().map(MappedEpoch::epoch)
    }

    fn mapped(&self) -> &MappedEpoch {
        self.mapped.as_ref().expect("the producer is mapped")
    }

    /// Writes `slot` for `seq` with the seqlock protocol and the payload pattern.
    fn write(&self, seq: u64, slot: &SlotWrite) {
        let m = self.mapped();
        let index = header_index(seq, NSLOTS);
        let seq_commit = m.seq_commit(index);
        seq_commit.store_in_progress(seq);
        let len = slot.contents.values_len_bytes as usize;
        let pool = m.pool(slot.contents.pool_id).unwrap_or(&m.pools()[0]);
        let len = len.min(pool.grant.stride_bytes as usize);
        // SAFETY: the test producer is the single writer of this slot.
        if let Some(bytes) = unsafe { pool.slot_bytes_mut(index, len) } {
            bytes.copy_from_slice(&pattern(seq, len));
        }
        let mut image = encode_slot(0, &slot.contents);
        if let Some(corrupt) = slot.corrupt {
            corrupt(&mut image);
        }
        m.write_slot_body(index, &image);
        seq_commit.as_atomic().store(slot.word, Ordering::Release);
    }

    /// Publishes the descriptor of `seq` in `epoch`.
    fn publish_in(&self, seq: u64, epoch: u64) {
        self.publish_descriptor(STREAM, epoch, seq);
    }

    fn publish(&self, seq: u64) {
        self.publish_in(seq, self.epoch().expect("mapped"));
    }

    /// Publishes a descriptor for whatever stream, epoch and sequence it names.
    fn publish_descriptor(&self, stream_id: u32, epoch: u64, seq: u64) {
        let d = FrameDescriptor {
            stream_id,
            epoch,
            seq,
            timestamp_ns: None,
            meta_version: None,
            trace_id: None,
        };
        let mut buf = [0u8; 64];
        let len = d.encode(&mut buf).expect("descriptor encodes");
        let deadline = Instant::now() + DEADLINE;
        while !self
            .descriptors
            .offer(&buf[..len])
            .expect("offer")
            .is_published()
        {
            assert!(Instant::now() < deadline, "descriptor not published");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends a detach and stops the session.
    fn detach(&mut self) {
        if let Some(request) = self.session.close(monotonic_now_ns()) {
            assert!(self.link.send(&request).expect("detach sent"));
        }
        self.active = false;
        self.mapped = None;
    }

    /// A fresh session attaching again.
    fn reattach(&mut self) {
        self.session = DriverSession::new(Self::session_config());
        self.active = true;
    }
}

/// Runs both duty cycles until `done` holds.
fn pump_until(
    consumer: &mut Consumer,
    producer: &mut TestProducer,
    what: &str,
    mut done: impl FnMut(&mut Consumer, &TestProducer) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        consumer
            .do_work(monotonic_now_ns())
            .expect("consumer duty cycle");
        producer.pump();
        if done(consumer, producer) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; counters {:?}",
            consumer.counters()
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Pumps until the consumer reads the next descriptor of its stream.
fn next_frame<R>(
    consumer: &mut Consumer,
    producer: &mut TestProducer,
    mut f: impl FnMut(&Frame<'_>) -> R,
) -> FramePoll<R> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match consumer.poll_frame(|frame| f(frame)).expect("poll_frame") {
            FramePoll::Empty | FramePoll::Ignored => {}
            outcome => return outcome,
        }
        consumer
            .do_work(monotonic_now_ns())
            .expect("consumer duty cycle");
        producer.pump();
        assert!(Instant::now() < deadline, "no descriptor arrived");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Whether the frame carries exactly the bytes the producer wrote for it.
fn frame_is_intact(frame: &Frame<'_>) -> bool {
    let t = frame.tensor();
    frame.payload() == pattern(frame.seq(), frame.payload().len()).as_slice()
        && t.dtype == Dtype::Uint8
        && t.ndims == 1
        && t.dims[0] as usize == frame.payload().len()
}

/// Driver, producer attached and mapped, consumer mapped on the producer's epoch.
struct Setup {
    consumer: Consumer,
    producer: TestProducer,
    driver: InThreadDriver,
    _env: Env,
}

impl Setup {
    fn start() -> Self {
        Self::start_in(Env::new(), |c| c)
    }

    fn start_in(env: Env, adjust: impl FnOnce(ConsumerConfig) -> ConsumerConfig) -> Self {
        let driver = env.start_driver();
        let consumer = Consumer::connect(adjust(env.consumer_config())).expect("consumer connects");
        let producer = TestProducer::connect(&env);
        let mut setup = Self {
            consumer,
            producer,
            driver,
            _env: env,
        };
        setup.wait_ready();
        setup
    }

    fn wait_ready(&mut self) {
        pump_until(
            &mut self.consumer,
            &mut self.producer,
            "producer and consumer on the same epoch",
            |c, p| {
                p.epoch().is_some()
                    && c.mapped_epoch() == p.epoch()
                    && c.is_ready()
                    && p.descriptors.is_connected()
            },
        );
    }

    /// Writes and publishes `slot` for `seq`, then reads the next descriptor.
    fn send(&mut self, seq: u64, slot: &SlotWrite) -> FramePoll<bool> {
        self.producer.write(seq, slot);
        self.producer.publish(seq);
        next_frame(&mut self.consumer, &mut self.producer, frame_is_intact)
    }
}

#[test]
fn valid_frames_are_delivered_with_the_producers_bytes() {
    let mut s = Setup::start();
    let epoch = s.producer.epoch().expect("mapped");
    let lens = [0usize, 1, 100, 4096, 4097, 65536, 777, 3000, 12, 64];
    for (seq, len) in lens.iter().enumerate() {
        let seq = seq as u64;
        s.producer.write(seq, &valid_slot(seq, *len));
        s.producer.publish(seq);
        let seen = next_frame(&mut s.consumer, &mut s.producer, |f| {
            (
                f.seq(),
                f.epoch(),
                f.stream_id(),
                f.pool_id(),
                f.timestamp_ns(),
                f.payload().len(),
                frame_is_intact(f),
            )
        });
        let pool = if *len <= 4096 { 1 } else { 2 };
        assert_eq!(
            seen,
            FramePoll::Delivered((seq, epoch, STREAM, pool, 1_000 + seq, *len, true)),
            "frame {seq}"
        );
    }
    pump_until(
        &mut s.consumer,
        &mut s.producer,
        "an announce of the epoch",
        |c, _| c.producer_id().is_some(),
    );
    let c = s.consumer.counters();
    assert_eq!(c.frames_delivered, lens.len() as u64);
    assert_eq!(c.descriptors_received, lens.len() as u64);
    assert_eq!((c.frame_drops(), c.drops_gap), (0, 0), "{c:?}");
    assert_eq!(s.consumer.last_seq_seen(), Some(lens.len() as u64 - 1));
    assert!(c.hellos_sent >= 1, "a hello follows the attach: {c:?}");
    let events: Vec<_> = s.consumer.events().collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ConsumerEvent::Attached { .. })),
        "{events:?}"
    );
    assert_eq!(s.consumer.producer_id().map(|id| id != 0), Some(true));
}

/// Writes a slot that breaks one rule, then a valid one: the first is dropped for
/// `reason` and counted only there, the second is delivered.
fn assert_rule(reason: DropReason, seq_offset: u64, make: impl FnOnce(u64) -> (SlotWrite, u64)) {
    assert_rule_in(Setup::start(), reason, seq_offset, make)
}

/// [`assert_rule`] with a consumer of its own.
fn assert_rule_in(
    mut s: Setup,
    reason: DropReason,
    seq_offset: u64,
    make: impl FnOnce(u64) -> (SlotWrite, u64),
) {
    let epoch = s.producer.epoch().expect("mapped");
    assert_eq!(s.send(0, &valid_slot(0, 64)), FramePoll::Delivered(true));
    let seq = 1 + seq_offset;
    let (slot, descriptor_epoch) = make(seq);
    let slot_epoch = if descriptor_epoch == 0 {
        epoch
    } else {
        descriptor_epoch
    };
    let before = s.consumer.counters();
    s.producer.write(seq, &slot);
    s.producer.publish_in(seq, slot_epoch);
    let outcome = next_frame(&mut s.consumer, &mut s.producer, frame_is_intact);
    assert_eq!(outcome, FramePoll::Dropped(reason));
    let after = s.consumer.counters();
    assert_eq!(after.drops(reason), before.drops(reason) + 1, "{after:?}");
    assert_eq!(
        after.frame_drops(),
        before.frame_drops() + 1,
        "only {reason:?} counted"
    );
    assert_eq!(after.frames_delivered, before.frames_delivered);
    let next = seq + 1;
    assert_eq!(
        s.send(next, &valid_slot(next, 64)),
        FramePoll::Delivered(true)
    );
    let end = s.consumer.counters();
    assert_eq!(
        end.descriptors_received,
        end.frames_delivered + end.frame_drops()
    );
}

/// A valid slot for `seq` with one change.
fn tweaked(seq: u64, change: impl FnOnce(&mut SlotWrite)) -> (SlotWrite, u64) {
    let mut slot = valid_slot(seq, 64);
    change(&mut slot);
    (slot, 0)
}

#[test]
fn a_descriptor_from_another_epoch_is_dropped() {
    assert_rule(DropReason::Epoch, 0, |seq| (valid_slot(seq, 64), 999_999));
}

#[test]
fn an_uncommitted_slot_is_dropped() {
    assert_rule(DropReason::NotCommitted, 0, |seq| {
        tweaked(seq, |s| s.word = in_progress(seq))
    });
}

#[test]
fn a_slot_holding_an_older_sequence_is_dropped_as_stale() {
    // Descriptor seq 9 names slot 1, which still holds seq 1.
    assert_rule(DropReason::Stale, 8, |seq| {
        tweaked(seq, |s| s.word = committed(seq - NSLOTS as u64))
    });
}

#[test]
fn a_slot_already_overwritten_is_dropped_as_late() {
    // A lapped slot would also make a resyncing consumer skip ahead to the lap (see
    // a_consumer_slower_than_its_producer_resyncs_and_keeps_delivering); without
    // resync, the next frame is delivered.
    let s = Setup::start_in(Env::new(), |c| ConsumerConfig {
        max_outstanding_seq_gap: None,
        ..c
    });
    assert_rule_in(s, DropReason::Late, 0, |seq| {
        tweaked(seq, |s| s.word = committed(seq + NSLOTS as u64))
    });
}

/// Latency mode watches the next sequence's slot while no descriptor waits; it must
/// not change what is accepted.
fn watching() -> Setup {
    Setup::start_in(Env::new(), |c| ConsumerConfig {
        watch_next_slot: true,
        ..c
    })
}

#[test]
fn watching_the_next_slot_delivers_only_against_descriptors() {
    let mut s = watching();
    assert_eq!(s.send(0, &valid_slot(0, 64)), FramePoll::Delivered(true));
    // Slot 1 committed, no descriptor yet: the watching consumer sees it, delivers nothing.
    s.producer.write(1, &valid_slot(1, 64));
    for _ in 0..200 {
        let poll = s.consumer.poll_frame(frame_is_intact).expect("poll_frame");
        assert_eq!(poll, FramePoll::Empty);
    }
    assert_eq!(s.consumer.counters().frames_delivered, 1);
    // The producer rewrites the slot after the consumer watched it: the descriptor is
    // judged against what the slot holds when it arrives.
    s.producer.write(1, &valid_slot(1, 100));
    s.producer.publish(1);
    let seen = next_frame(&mut s.consumer, &mut s.producer, |f| {
        (f.seq(), f.payload().len(), frame_is_intact(f))
    });
    assert_eq!(seen, FramePoll::Delivered((1, 100, true)));
    let c = s.consumer.counters();
    assert_eq!((c.frames_delivered, c.frame_drops()), (2, 0), "{c:?}");
}

#[test]
fn a_watching_consumer_drops_an_uncommitted_slot() {
    assert_rule_in(watching(), DropReason::NotCommitted, 0, |seq| {
        tweaked(seq, |s| s.word = in_progress(seq))
    });
}

#[test]
fn a_watching_consumer_drops_a_slot_overwritten_after_it_was_watched() {
    assert_rule_in(
        Setup::start_in(Env::new(), |c| ConsumerConfig {
            watch_next_slot: true,
            max_outstanding_seq_gap: None,
            ..c
        }),
        DropReason::Late,
        0,
        |seq| tweaked(seq, |s| s.word = committed(seq + NSLOTS as u64)),
    );
}

#[test]
fn a_wrong_embedded_header_length_is_dropped() {
    assert_rule(DropReason::HeaderFormat, 0, |seq| {
        tweaked(seq, |s| s.corrupt = Some(|image| image[60] = 191))
    });
}

#[test]
fn a_wrong_embedded_header_schema_or_version_is_dropped() {
    assert_rule(DropReason::HeaderFormat, 0, |seq| {
        // Embedded message header at 64: block length, template, schema, version.
        tweaked(seq, |s| s.corrupt = Some(|image| image[70] = 2))
    });
}

#[test]
fn a_payload_slot_other_than_the_header_index_is_dropped() {
    assert_rule(DropReason::PayloadSlot, 0, |seq| {
        tweaked(seq, |s| {
            s.contents.payload_slot = (header_index(seq, NSLOTS) + 1) % NSLOTS
        })
    });
}

#[test]
fn an_unknown_pool_is_dropped() {
    assert_rule(DropReason::Pool, 0, |seq| {
        tweaked(seq, |s| s.contents.pool_id = 99)
    });
}

#[test]
fn a_length_beyond_the_pool_stride_is_dropped() {
    assert_rule(DropReason::Length, 0, |seq| {
        tweaked(seq, |s| {
            s.contents.values_len_bytes = 4097;
            s.contents.tensor = uint8_tensor(4097);
        })
    });
}

#[test]
fn a_non_zero_payload_offset_is_dropped() {
    assert_rule(DropReason::PayloadOffset, 0, |seq| {
        tweaked(seq, |s| s.contents.payload_offset = 64)
    });
}

#[test]
fn a_tensor_of_rank_zero_is_dropped() {
    assert_rule(DropReason::Tensor, 0, |seq| {
        tweaked(seq, |s| s.contents.tensor.ndims = 0)
    });
}

#[test]
fn a_tensor_of_rank_nine_is_dropped() {
    assert_rule(DropReason::Tensor, 0, |seq| {
        tweaked(seq, |s| s.contents.tensor.ndims = 9)
    });
}

#[test]
fn an_unknown_dtype_is_dropped() {
    assert_rule(DropReason::Tensor, 0, |seq| {
        tweaked(seq, |s| s.contents.tensor.dtype = Dtype::from_raw(99))
    });
}

#[test]
fn a_tensor_larger_than_its_payload_is_dropped() {
    assert_rule(DropReason::Tensor, 0, |seq| {
        tweaked(seq, |s| s.contents.tensor.dims[0] = 65)
    });
}

#[test]
fn overwrite_while_the_application_reads_is_reported_late() {
    let mut s = Setup::start();
    s.producer.write(0, &valid_slot(0, 256));
    s.producer.publish(0);
    let producer = &mut s.producer;
    let deadline = Instant::now() + DEADLINE;
    let outcome = loop {
        let outcome = s
            .consumer
            .poll_frame(|frame| {
                // The producer laps the ring while the application holds the view.
                let overwritten = NSLOTS as u64;
                producer.write(overwritten, &valid_slot(overwritten, 256));
                frame.payload().len()
            })
            .expect("poll_frame");
        if !matches!(outcome, FramePoll::Empty | FramePoll::Ignored) {
            break outcome;
        }
        s.consumer.do_work(monotonic_now_ns()).expect("duty cycle");
        assert!(Instant::now() < deadline, "no descriptor arrived");
        std::thread::sleep(Duration::from_micros(200));
    };
    assert_eq!(outcome, FramePoll::Dropped(DropReason::Late));
    let c = s.consumer.counters();
    assert_eq!((c.drops_late, c.frames_delivered), (1, 0), "{c:?}");
}

#[test]
fn gaps_are_counted_and_every_descriptor_reconciles() {
    let mut s = Setup::start();
    let mut published = 0u64;
    // Seqs 0..40; some are written but never announced (gaps), some are broken.
    for seq in 0..40u64 {
        let mut slot = valid_slot(seq, 32 + seq as usize);
        match seq % 10 {
            3 | 4 => {
                s.producer.write(seq, &slot);
                continue;
            }
            7 => slot.contents.payload_offset = 8,
            9 => slot.word = in_progress(seq),
            _ => {}
        }
        published += 1;
        let outcome = s.send(seq, &slot);
        assert!(
            matches!(outcome, FramePoll::Delivered(true) | FramePoll::Dropped(_)),
            "{seq}: {outcome:?}"
        );
    }
    let c = s.consumer.counters();
    assert_eq!(c.drops_gap, 8, "two unannounced seqs per ten: {c:?}");
    assert_eq!(c.drops_payload_offset, 4);
    assert_eq!(c.drops_not_committed, 4);
    assert_eq!(c.frames_delivered, 40 - 8 - 8);
    assert_eq!(c.descriptors_received, published);
    assert_eq!(c.frames_delivered + c.frame_drops(), published);
    assert_eq!(c.frames_delivered + c.frame_drops() + c.drops_gap, 40);
    // 39's slot was never committed: the last sequence a slot confirmed is 38.
    assert_eq!(s.consumer.last_seq_seen(), Some(38));
}

/// One bad message, sent between valid frames.
#[derive(Debug, Clone, Copy)]
enum Hostile {
    /// A descriptor far ahead of the producer (the slot holds an older frame).
    ForgedAhead,
    /// A descriptor repeating the last delivered sequence.
    ForgedBehind,
    /// A descriptor naming another epoch.
    WrongEpoch,
    /// A descriptor of another stream on the shared descriptor stream.
    WrongStream,
    /// A descriptor published while its slot is still being written.
    Uncommitted,
    /// A frame whose tensor has nine dimensions.
    BadNdims,
    /// A frame longer than its pool's stride.
    BeyondStride,
    /// A frame with a non-zero payload offset.
    PayloadOffset,
    /// A frame naming a pool that does not exist.
    UnknownPool,
}

#[test]
fn invalid_frames_between_valid_ones_cost_nothing_but_themselves() {
    let mut s = Setup::start();
    let epoch = s.producer.epoch().expect("mapped");
    let kinds = [
        Hostile::ForgedAhead,
        Hostile::ForgedBehind,
        Hostile::WrongEpoch,
        Hostile::WrongStream,
        Hostile::Uncommitted,
        Hostile::BadNdims,
        Hostile::BeyondStride,
        Hostile::PayloadOffset,
        Hostile::UnknownPool,
    ];
    let mut seq = 0u64;
    let mut valid = 0u64;
    let read = |s: &mut Setup| next_frame(&mut s.consumer, &mut s.producer, frame_is_intact);
    for round in 0..3 {
        for kind in kinds {
            // Two valid frames, then the hostile message.
            for _ in 0..2 {
                s.producer.write(seq, &valid_slot(seq, 64 + round));
                s.producer.publish(seq);
                assert_eq!(
                    read(&mut s),
                    FramePoll::Delivered(true),
                    "{kind:?} round {round}: seq {seq}"
                );
                seq += 1;
                valid += 1;
            }
            let expected = match kind {
                Hostile::ForgedAhead => {
                    // Names the slot of the last frame, 125 laps ahead of it.
                    s.producer.publish(seq - 1 + 125 * NSLOTS as u64);
                    FramePoll::Dropped(DropReason::Stale)
                }
                Hostile::ForgedBehind => {
                    s.producer.publish(seq - 1);
                    FramePoll::Dropped(DropReason::Duplicate)
                }
                Hostile::WrongEpoch => {
                    s.producer.publish_in(seq, epoch + 1);
                    FramePoll::Dropped(DropReason::Epoch)
                }
                Hostile::WrongStream => {
                    s.producer.publish_descriptor(STREAM + 1, epoch, seq + 5);
                    // Not ours: consumed and ignored, so check it with a plain poll.
                    let seen = next_message(&mut s);
                    assert_eq!(seen, FramePoll::Ignored, "round {round}");
                    continue;
                }
                Hostile::Uncommitted => {
                    s.producer
                        .write(seq, &tweaked(seq, |w| w.word = in_progress(seq)).0);
                    s.producer.publish(seq);
                    // The producer finishes the frame later; the descriptor was early.
                    FramePoll::Dropped(DropReason::NotCommitted)
                }
                Hostile::BadNdims => {
                    s.producer
                        .write(seq, &tweaked(seq, |w| w.contents.tensor.ndims = 9).0);
                    s.producer.publish(seq);
                    seq += 1;
                    FramePoll::Dropped(DropReason::Tensor)
                }
                Hostile::BeyondStride => {
                    let slot = tweaked(seq, |w| {
                        w.contents.values_len_bytes = 4097;
                        w.contents.tensor = uint8_tensor(4097);
                    });
                    s.producer.write(seq, &slot.0);
                    s.producer.publish(seq);
                    seq += 1;
                    FramePoll::Dropped(DropReason::Length)
                }
                Hostile::PayloadOffset => {
                    s.producer
                        .write(seq, &tweaked(seq, |w| w.contents.payload_offset = 64).0);
                    s.producer.publish(seq);
                    seq += 1;
                    FramePoll::Dropped(DropReason::PayloadOffset)
                }
                Hostile::UnknownPool => {
                    s.producer
                        .write(seq, &tweaked(seq, |w| w.contents.pool_id = 99).0);
                    s.producer.publish(seq);
                    seq += 1;
                    FramePoll::Dropped(DropReason::Pool)
                }
            };
            assert_eq!(read(&mut s), expected, "{kind:?} round {round}");
        }
    }
    // And the stream goes on.
    for _ in 0..10 {
        s.producer.write(seq, &valid_slot(seq, 100));
        s.producer.publish(seq);
        assert_eq!(read(&mut s), FramePoll::Delivered(true), "seq {seq}");
        seq += 1;
        valid += 1;
    }
    let c = s.consumer.counters();
    assert_eq!(c.frames_delivered, valid, "{c:?}");
    let rounds = 3;
    for (reason, count) in [
        (DropReason::Stale, rounds),
        (DropReason::Duplicate, rounds),
        (DropReason::Epoch, rounds),
        (DropReason::NotCommitted, rounds),
        (DropReason::Tensor, rounds),
        (DropReason::Length, rounds),
        (DropReason::PayloadOffset, rounds),
        (DropReason::Pool, rounds),
    ] {
        assert_eq!(c.drops(reason), count, "{reason:?}: {c:?}");
    }
    assert_eq!(c.frame_drops(), 8 * rounds, "nothing else dropped: {c:?}");
    assert_eq!(c.descriptors_other_stream, rounds);
    assert_eq!(c.drops_gap, 0, "every sequence arrived: {c:?}");
    assert_eq!(c.resyncs, 0);
    assert_eq!(c.descriptors_received, c.frames_delivered + c.frame_drops());
    assert_eq!(s.consumer.last_seq_seen(), Some(seq - 1));
}

/// Pumps until the consumer reads any message from its descriptor stream.
fn next_message(s: &mut Setup) -> FramePoll<bool> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match s.consumer.poll_frame(frame_is_intact).expect("poll_frame") {
            FramePoll::Empty => {}
            outcome => return outcome,
        }
        s.consumer.do_work(monotonic_now_ns()).expect("duty cycle");
        s.producer.pump();
        assert!(Instant::now() < deadline, "no message arrived");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Frames delivered intact when the producer writes `per_read` frames while the
/// application reads each one (a consumer that many times slower than its producer),
/// out of `frames` published.
fn slow_consumer_delivers(
    max_gap: Option<u64>,
    frames: u64,
    per_read: u64,
) -> (u64, ConsumerCounters) {
    let mut s = Setup::start_in(Env::new(), |c| ConsumerConfig {
        max_outstanding_seq_gap: max_gap,
        ..c
    });
    let mut next = 0u64;
    let mut intact = 0u64;
    while next < frames {
        let producer = &mut s.producer;
        let outcome = s
            .consumer
            .poll_frame(|frame| {
                let ok = frame_is_intact(frame);
                for _ in 0..per_read {
                    producer.write(next, &valid_slot(next, 256));
                    producer.publish(next);
                    next += 1;
                }
                ok
            })
            .expect("poll_frame");
        match outcome {
            FramePoll::Delivered(ok) => {
                assert!(ok, "a delivered frame is intact");
                intact += 1;
            }
            FramePoll::Empty => {
                s.producer.write(next, &valid_slot(next, 256));
                s.producer.publish(next);
                next += 1;
            }
            FramePoll::Dropped(_) | FramePoll::Ignored | FramePoll::RateLimited => {}
        }
        s.consumer.do_work(monotonic_now_ns()).expect("duty cycle");
        s.producer.pump();
    }
    (intact, s.consumer.counters())
}

#[test]
fn a_consumer_slower_than_its_producer_resyncs_and_keeps_delivering() {
    // Ring of 8; the producer writes 4 frames while the consumer reads one.
    let frames = 2_000;
    let (with_resync, c) = slow_consumer_delivers(Some(256), frames, 4);
    let (in_order, plain) = slow_consumer_delivers(None, frames, 4);
    assert!(c.resyncs > 0, "{c:?}");
    assert_eq!(plain.resyncs, 0);
    assert!(
        with_resync * 10 >= frames,
        "a steady share: {with_resync} of {frames} delivered ({c:?})"
    );
    assert!(
        with_resync >= 4 * in_order.max(1),
        "resync {with_resync} vs in-order {in_order} ({plain:?})"
    );
    assert_eq!(c.frames_delivered, with_resync);
    eprintln!(
        "slow consumer: {with_resync} delivered with resync, {in_order} in order, of {frames}"
    );
}

/// Drains the consumer's events into `seen`.
fn collect_events(consumer: &mut Consumer, seen: &mut Vec<ConsumerEvent>) {
    seen.extend(consumer.events());
}

#[test]
fn producer_reattach_changes_the_epoch_and_the_consumer_remaps() {
    let mut s = Setup::start_in(Env::shared_announce(), |c| c);
    let first = s.producer.epoch().expect("mapped");
    assert_eq!(s.send(0, &valid_slot(0, 64)), FramePoll::Delivered(true));
    let _ = s.consumer.events().count();

    s.producer.detach();
    let mut seen = Vec::new();
    pump_until(
        &mut s.consumer,
        &mut s.producer,
        "remap after the detach",
        |c, _| {
            collect_events(c, &mut seen);
            c.mapped_epoch().is_some_and(|e| e > first) && c.is_ready()
        },
    );
    assert!(
        seen.contains(&ConsumerEvent::ProducerRevoked {
            reason: LeaseRevokeReason::Detached
        }),
        "{seen:?}"
    );
    assert_eq!(
        s.consumer.producer_id(),
        Some(0),
        "no producer in the bumped epoch"
    );

    s.producer.reattach();
    s.wait_ready();
    let second = s.producer.epoch().expect("mapped again");
    assert!(second > first + 1, "detach and attach each bump the epoch");
    collect_events(&mut s.consumer, &mut seen);
    assert!(
        seen.contains(&ConsumerEvent::EpochChanged { epoch: second }),
        "{seen:?}"
    );

    // A late descriptor of the old epoch is a hard boundary; the new producer's frames flow.
    s.producer.publish_in(1, first);
    assert_eq!(
        next_frame(&mut s.consumer, &mut s.producer, frame_is_intact),
        FramePoll::Dropped(DropReason::Epoch)
    );
    for seq in 0..5 {
        assert_eq!(
            s.send(seq, &valid_slot(seq, 128)),
            FramePoll::Delivered(true)
        );
    }
    let c = s.consumer.counters();
    assert!(c.epoch_changes >= 2 && c.remaps >= 2, "{c:?}");
    assert_eq!(c.frames_delivered, 6);
    assert_eq!(c.drops_gap, 0, "sequence tracking restarts with each epoch");
}

#[test]
fn a_revoked_producer_makes_the_consumer_await_the_next_epoch() {
    let mut s = Setup::start_in(Env::shared_announce(), |c| c);
    let first = s.producer.epoch().expect("mapped");
    assert_eq!(s.send(0, &valid_slot(0, 64)), FramePoll::Delivered(true));
    let _ = s.consumer.events().count();

    // Silence the producer's keepalives: the driver expires and revokes its lease.
    s.producer.keepalives = false;
    let mut seen = Vec::new();
    pump_until(
        &mut s.consumer,
        &mut s.producer,
        "the expired producer's epoch bump",
        |c, _| {
            collect_events(c, &mut seen);
            c.mapped_epoch().is_some_and(|e| e > first)
        },
    );
    let revoked = seen.iter().position(|e| {
        *e == ConsumerEvent::ProducerRevoked {
            reason: LeaseRevokeReason::Expired,
        }
    });
    let changed = seen
        .iter()
        .position(|e| matches!(e, ConsumerEvent::EpochChanged { .. }));
    assert!(
        matches!((revoked, changed), (Some(r), Some(c)) if r < c),
        "revoke, then the remap: {seen:?}"
    );
    assert!(s.consumer.is_ready());
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ConsumerEvent::Unmapped { .. })),
        "{seen:?}"
    );
}

#[test]
fn the_epoch_wait_times_out_into_a_reattach() {
    let mut s = Setup::start();
    let epoch = s.producer.epoch().expect("mapped");
    let lease = s.consumer.lease_id().expect("attached");
    let _ = s.consumer.events().count();
    // A revoke of a producer lease nobody announces a successor for.
    let notice = ShmLeaseRevoked {
        timestamp_ns: monotonic_now_ns(),
        lease_id: u64::MAX - 1,
        stream_id: STREAM,
        client_id: 4242,
        role: Role::Producer,
        reason: LeaseRevokeReason::Revoked,
        error_message: b"",
    };
    let mut buf = [0u8; 128];
    let len = notice.encode(&mut buf).expect("encodes");
    assert!(s
        .producer
        .control
        .offer(&buf[..len])
        .expect("offer")
        .is_published());
    pump_until(
        &mut s.consumer,
        &mut s.producer,
        "the epoch wait",
        |c, _| c.is_awaiting_epoch(),
    );
    // While waiting, frames are refused even though the mapping is kept.
    assert_eq!(
        s.send(0, &valid_slot(0, 64)),
        FramePoll::Dropped(DropReason::AwaitingEpoch)
    );
    let mut seen = Vec::new();
    let waited = Instant::now();
    pump_until(&mut s.consumer, &mut s.producer, "the reattach", |c, _| {
        collect_events(c, &mut seen);
        c.lease_id().is_some_and(|l| l != lease) && c.is_ready()
    });
    assert!(
        waited.elapsed() >= ANNOUNCE_PERIOD * 2,
        "waited 3 announce periods"
    );
    assert!(
        seen.contains(&ConsumerEvent::Unmapped {
            reason: UnmapReason::EpochWaitTimedOut
        }),
        "{seen:?}"
    );
    assert!(
        seen.contains(&ConsumerEvent::Attached { epoch }),
        "{seen:?}"
    );
    assert_eq!(s.send(1, &valid_slot(1, 64)), FramePoll::Delivered(true));
}

/// An announce of the producer's layout under another epoch and timestamp.
fn announce_bytes(producer: &TestProducer, epoch: u64, timestamp_ns: u64) -> Vec<u8> {
    let grant = producer.mapped().grant();
    let uris: Vec<String> = grant.pools.iter().map(|p| p.uri.to_string()).collect();
    let pools: Vec<ShmPoolAnnouncePayloadPools<'_>> = grant
        .pools
        .iter()
        .zip(&uris)
        .map(|(p, uri)| ShmPoolAnnouncePayloadPools {
            pool_id: p.pool_id,
            pool_nslots: p.nslots,
            stride_bytes: p.stride_bytes,
            region_uri: uri.as_bytes(),
        })
        .collect();
    let header_uri = grant.header_uri.to_string();
    let announce = ShmPoolAnnounce {
        stream_id: STREAM,
        producer_id: 1,
        epoch,
        announce_timestamp_ns: timestamp_ns,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: grant.layout_version,
        header_nslots: grant.header_nslots,
        header_slot_bytes: 256,
        payload_pools: &pools,
        header_region_uri: header_uri.as_bytes(),
    };
    let mut buf = vec![0u8; announce.encoded_len()];
    announce.encode(&mut buf).expect("encodes");
    buf
}

#[test]
fn stale_and_pre_join_announces_are_ignored() {
    let env = Env::new();
    let _driver = env.start_driver();
    let joined = monotonic_now_ns();
    let mut consumer = Consumer::connect(env.consumer_config()).expect("consumer connects");
    let mut producer = TestProducer::connect(&env);
    pump_until(&mut consumer, &mut producer, "both mapped", |c, p| {
        p.epoch().is_some() && c.mapped_epoch() == p.epoch() && c.is_ready()
    });
    let epoch = producer.epoch().expect("mapped");
    let before = consumer.counters();

    let stale = announce_bytes(
        &producer,
        epoch + 100,
        monotonic_now_ns() - 10 * 200_000_000,
    );
    let replayed = announce_bytes(&producer, epoch + 101, joined - 1_000_000);
    for bytes in [&stale, &replayed] {
        assert!(producer
            .announces
            .offer(bytes)
            .expect("offer")
            .is_published());
    }
    pump_until(
        &mut consumer,
        &mut producer,
        "the injected announces",
        |c, _| {
            let n = c.counters();
            n.announces_ignored_stale > before.announces_ignored_stale
                && n.announces_ignored_before_join > before.announces_ignored_before_join
        },
    );
    let after = consumer.counters();
    assert_eq!(
        after.announces_ignored_stale,
        before.announces_ignored_stale + 1
    );
    assert_eq!(
        consumer.mapped_epoch(),
        Some(epoch),
        "stale announces never remap"
    );
    assert_eq!(after.epoch_changes, before.epoch_changes);
}

#[test]
fn a_per_consumer_descriptor_stream_replaces_the_shared_one() {
    let wanted = DescriptorStream {
        channel: CHANNEL.into(),
        stream_id: PER_CONSUMER_DESCRIPTOR,
    };
    let request = (wanted.channel.clone(), wanted.stream_id);
    let mut s = Setup::start_in(Env::new(), |c| ConsumerConfig {
        request_per_consumer_descriptor: Some(request),
        ..c
    });
    pump_until(
        &mut s.consumer,
        &mut s.producer,
        "the assigned stream",
        |c, _| *c.descriptor_stream() == wanted,
    );
    assert_eq!(s.consumer.counters().consumer_configs, 1);
    let own = Publication::add(
        s.producer.link.client(),
        CHANNEL,
        PER_CONSUMER_DESCRIPTOR as i32,
    )
    .expect("per-consumer publication");
    let deadline = Instant::now() + DEADLINE;
    while !own.is_connected() {
        assert!(Instant::now() < deadline, "consumer never subscribed");
        s.consumer.do_work(monotonic_now_ns()).expect("duty cycle");
        std::thread::sleep(Duration::from_millis(1));
    }
    s.producer.write(0, &valid_slot(0, 64));
    let d = FrameDescriptor {
        stream_id: STREAM,
        epoch: s.producer.epoch().expect("mapped"),
        seq: 0,
        timestamp_ns: Some(5),
        meta_version: None,
        trace_id: None,
    };
    let mut buf = [0u8; 64];
    let len = d.encode(&mut buf).expect("encodes");
    assert!(own.offer(&buf[..len]).expect("offer").is_published());
    let seen = next_frame(&mut s.consumer, &mut s.producer, |f| {
        (f.descriptor_timestamp_ns(), frame_is_intact(f))
    });
    assert_eq!(seen, FramePoll::Delivered((Some(5), true)));
}

#[test]
fn driver_shutdown_unmaps_the_consumer() {
    let mut s = Setup::start();
    let _ = s.consumer.events().count();
    s.driver.request_stop();
    let mut seen = Vec::new();
    pump_until(
        &mut s.consumer,
        &mut s.producer,
        "the shutdown notice",
        |c, _| {
            collect_events(c, &mut seen);
            c.mapped_epoch().is_none()
        },
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, ConsumerEvent::DriverShutdown(_))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&ConsumerEvent::Unmapped {
            reason: UnmapReason::DriverShutdown
        }),
        "{seen:?}"
    );
    let c: ConsumerCounters = s.consumer.counters();
    assert_eq!(c.attaches, 1);
}

#[test]
fn reading_a_valid_frame_allocates_nothing() {
    let mut s = Setup::start();
    for seq in 0..4u64 {
        s.producer.write(seq, &valid_slot(seq, 1000));
        s.producer.publish(seq);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let before = allocations();
            let outcome = s
                .consumer
                .poll_frame(|f| f.payload().iter().map(|b| u64::from(*b)).sum::<u64>())
                .expect("poll_frame");
            let allocated = allocations() - before;
            match outcome {
                FramePoll::Delivered(_) => {
                    assert_eq!(allocated, 0, "frame {seq} allocated");
                    break;
                }
                FramePoll::Empty => {}
                other => panic!("frame {seq}: {other:?}"),
            }
            s.consumer.do_work(monotonic_now_ns()).expect("duty cycle");
            assert!(Instant::now() < deadline, "no descriptor arrived");
        }
    }
}

#[test]
fn a_repeated_tensor_description_is_still_checked_against_each_payload() {
    // The consumer keeps the last description that passed; a frame with the very same
    // description bytes but a shorter payload must still be refused.
    assert_rule(DropReason::Tensor, 0, |seq| {
        tweaked(seq, |s| {
            s.contents.values_len_bytes = 32;
            s.contents.tensor = uint8_tensor(64);
        })
    });
}

#[test]
fn the_reserved_tensor_pad_is_ignored() {
    let mut s = Setup::start();
    let mut slot = valid_slot(0, 64);
    slot.contents.tensor.pad = [0xA5; 109];
    s.producer.write(0, &slot);
    s.producer.publish(0);
    let seen = next_frame(&mut s.consumer, &mut s.producer, |f| {
        (frame_is_intact(f), f.tensor().pad)
    });
    assert_eq!(seen, FramePoll::Delivered((true, [0; 109])));
    // The same description with other pad bytes is the same description.
    let mut slot = valid_slot(1, 64);
    slot.contents.tensor.pad = [0x5A; 109];
    assert_eq!(s.send(1, &slot), FramePoll::Delivered(true));
}

#[test]
fn poll_frames_beyond_one_batch_keeps_every_outcome_in_order() {
    // More messages than the consumer takes off the stream per batch (16), of mixed
    // kinds: the ring has 8 slots, so most are descriptors of another stream.
    let mut s = Setup::start();
    let epoch = s.producer.epoch().expect("mapped");
    let mut expected = Vec::new();
    for seq in 0..u64::from(NSLOTS) {
        let mut slot = valid_slot(seq, 64);
        if seq == 5 {
            slot.word = in_progress(seq);
        }
        s.producer.write(seq, &slot);
        s.producer.publish(seq);
        expected.push(if seq == 5 {
            FramePoll::Dropped(DropReason::NotCommitted)
        } else {
            FramePoll::Delivered((seq, true))
        });
        for _ in 0..4 {
            s.producer.publish_descriptor(STREAM + 1, epoch, seq);
            expected.push(FramePoll::Ignored);
        }
    }
    let mut outcomes = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while outcomes.len() < expected.len() {
        let before = outcomes.len();
        let read = s
            .consumer
            .poll_frames(
                100,
                |frame| (frame.seq(), frame_is_intact(frame)),
                |outcome| outcomes.push(outcome),
            )
            .expect("poll_frames");
        assert_eq!(
            read,
            outcomes.len() - before,
            "one outcome per message read"
        );
        s.consumer.do_work(monotonic_now_ns()).expect("duty cycle");
        assert!(
            Instant::now() < deadline,
            "descriptors missing: {outcomes:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(outcomes, expected);
    let c = s.consumer.counters();
    assert_eq!((c.frames_delivered, c.drops_not_committed), (7, 1), "{c:?}");
    assert_eq!(c.descriptors_other_stream, 32);
}

#[test]
fn poll_frames_reads_up_to_its_limit_in_order() {
    let mut s = Setup::start();
    for seq in 0..5u64 {
        let mut slot = valid_slot(seq, 64);
        if seq == 2 {
            slot.contents.payload_offset = 8;
        }
        s.producer.write(seq, &slot);
        s.producer.publish(seq);
    }
    let mut outcomes = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while outcomes.is_empty() {
        let read = s
            .consumer
            .poll_frames(
                3,
                |frame| (frame.seq(), frame_is_intact(frame)),
                |outcome| outcomes.push(outcome),
            )
            .expect("poll_frames");
        assert_eq!(read, outcomes.len(), "one outcome per message read");
        assert!(read <= 3, "at most the limit: {read}");
        s.consumer.do_work(monotonic_now_ns()).expect("duty cycle");
        assert!(Instant::now() < deadline, "no descriptor arrived");
        std::thread::sleep(Duration::from_millis(2));
    }
    while outcomes.len() < 5 {
        s.consumer
            .poll_frames(
                3,
                |frame| (frame.seq(), frame_is_intact(frame)),
                |outcome| outcomes.push(outcome),
            )
            .expect("poll_frames");
        assert!(
            Instant::now() < deadline,
            "descriptors missing: {outcomes:?}"
        );
    }
    assert_eq!(
        outcomes,
        vec![
            FramePoll::Delivered((0, true)),
            FramePoll::Delivered((1, true)),
            FramePoll::Dropped(DropReason::PayloadOffset),
            FramePoll::Delivered((3, true)),
            FramePoll::Delivered((4, true)),
        ]
    );
    let c = s.consumer.counters();
    assert_eq!(
        (c.frames_delivered, c.drops_payload_offset),
        (4, 1),
        "{c:?}"
    );
}

#[test]
fn client_attaches_ring_the_idle_drivers_doorbell() {
    let mut s = Setup::start();
    let env = &s._env;
    let wakeups = || {
        tensorpool::transport::read_counters(&env.aeron_dir())
            .expect("counters")
            .into_iter()
            .find(|c| c.label.ends_with(": doorbell wake-ups"))
            .map_or(0, |c| c.value)
    };
    let deadline = Instant::now() + DEADLINE;
    let mut extra = Vec::new();
    // Each new consumer attaches once the driver has been quiet long enough to park; the
    // counter is refreshed every 100 ms.
    while wakeups() < 1 {
        assert!(Instant::now() < deadline, "no attach woke the driver");
        std::thread::sleep(Duration::from_millis(20));
        let mut consumer = Consumer::connect(env.consumer_config()).expect("connects");
        pump_until(
            &mut consumer,
            &mut s.producer,
            "the extra consumer attached",
            |c, _| c.is_ready(),
        );
        extra.push(consumer);
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn dims_and_strides_beyond_ndims_from_a_forged_producer_read_as_zero_and_are_counted() {
    let mut s = Setup::start();
    let forged = |seq| {
        let mut slot = valid_slot(seq, 64);
        slot.contents.tensor.dims[3] = 77;
        slot.contents.tensor.strides[7] = 9;
        slot
    };
    s.producer.write(0, &forged(0));
    s.producer.publish(0);
    let outcome = next_frame(&mut s.consumer, &mut s.producer, |f| {
        let t = f.tensor();
        (frame_is_intact(f), t.dims, t.strides)
    });
    let mut dims = [0; 8];
    dims[0] = 64;
    assert_eq!(outcome, FramePoll::Delivered((true, dims, [0; 8])));
    // The same description again: still counted, per frame.
    s.producer.write(1, &forged(1));
    s.producer.publish(1);
    assert!(matches!(
        next_frame(&mut s.consumer, &mut s.producer, |_| ()),
        FramePoll::Delivered(())
    ));
    assert_eq!(s.consumer.counters().tensors_beyond_ndims, 2);
    assert_eq!(s.send(2, &valid_slot(2, 64)), FramePoll::Delivered(true));
    assert_eq!(
        s.consumer.counters().tensors_beyond_ndims,
        2,
        "a clean header is not"
    );
}

#[test]
fn a_sequence_that_goes_back_within_the_epoch_is_dropped_and_the_consumer_remaps() {
    let mut s = Setup::start();
    let epoch = s.producer.epoch().expect("mapped");
    for seq in 0..=10 {
        assert_eq!(
            s.send(seq, &valid_slot(seq, 64)),
            FramePoll::Delivered(true)
        );
    }
    // A stale descriptor (its slot was reused for a later lap): an old frame, no remap.
    s.producer.publish(1);
    assert_eq!(
        next_frame(&mut s.consumer, &mut s.producer, frame_is_intact),
        FramePoll::Dropped(DropReason::Duplicate)
    );
    // The writer starts over at 0 in the same epoch (§15.2): the slot of 0, reused for 8,
    // holds 0 again.
    s.consumer.events().for_each(drop);
    assert_eq!(
        s.send(0, &valid_slot(0, 64)),
        FramePoll::Dropped(DropReason::SeqRegression)
    );
    let consumer = &mut s.consumer;
    let mut events = Vec::new();
    pump_until(consumer, &mut s.producer, "the remap", |c, _| {
        events.extend(c.events());
        events.contains(&ConsumerEvent::Attached { epoch })
    });
    assert!(
        events.contains(&ConsumerEvent::Unmapped {
            reason: UnmapReason::SeqRegression
        }),
        "{events:?}"
    );
    assert_eq!(s.consumer.counters().drops_seq_regression, 1);
    pump_until(&mut s.consumer, &mut s.producer, "ready", |c, _| {
        c.is_ready()
    });
    // Mapped afresh, the restarted numbering is read.
    assert_eq!(s.send(1, &valid_slot(1, 64)), FramePoll::Delivered(true));
    assert_eq!(s.consumer.last_seq_seen(), Some(1));
}
