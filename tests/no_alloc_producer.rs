//! The producer's publishing path allocates nothing (ARCHITECTURE "zero allocation on hot
//! paths"): after a warm-up, `Producer::publish` and `Producer::claim` + fill +
//! `FrameClaim::commit` of valid frames, in both pools, with a subscriber on the
//! descriptor stream so every descriptor really goes into the Aeron log, make no heap
//! allocation through the global allocator. A counting allocator (per thread, so the
//! driver thread does not disturb the count) measures it, and is itself checked to catch
//! an allocation.

#[path = "support/mod.rs"]
mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::{Duration, Instant};

use support::{
    client_streams, DriverSettings, InThreadDriver, TestEnv, CONTROL_STREAM, DEADLINE,
    DESCRIPTOR_STREAM, KEEPALIVE_INTERVAL, STATIC_STREAM,
};
use tensorpool::client::producer::{monotonic_now_ns, DescriptorStamp, Producer, ProducerConfig};
use tensorpool::client::tensor::bytes_header;
use tensorpool::client::ClientStreams;
use tensorpool::transport::{AeronClient, Subscription};

/// The descriptor publication's channel: a term roomy enough that the burst of
/// descriptors never meets back pressure (the media driver raises an IPC publication's
/// limit only as often as its conductor runs).
const DESCRIPTOR_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// Frames measured per path and size.
const MEASURED: u64 = 200;

/// Counts heap allocations (and reallocations) made by the current thread.
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: forwards every call to the system allocator; the count is a thread-local
// without drop glue, touched with `try_with` so it is safe during thread teardown.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
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

/// Heap allocations `f` makes on this thread, and its result.
fn allocations_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = allocations();
    let result = f();
    (allocations() - before, result)
}

/// The test's descriptor subscriber: keeps the producer's descriptor publication
/// connected and drained.
struct DescriptorReader {
    subscription: Subscription,
    client: AeronClient,
    received: u64,
}

impl DescriptorReader {
    fn connect(env: &TestEnv) -> Self {
        let client = AeronClient::connect(env.aeron_dir(), DEADLINE).expect("test client");
        let subscription = Subscription::add(&client, "aeron:ipc", DESCRIPTOR_STREAM as i32)
            .expect("descriptor subscription");
        Self {
            subscription,
            client,
            received: 0,
        }
    }

    fn drain(&mut self) {
        self.client.do_work().expect("test client duty cycle");
        let mut received = 0;
        while let Ok(n @ 1..) = self.subscription.poll(|_| received += 1, 64) {
            let _ = n;
        }
        self.received += received;
    }
}

fn producer_config(env: &TestEnv) -> ProducerConfig {
    let streams = ClientStreams {
        descriptor_channel: DESCRIPTOR_CHANNEL.into(),
        ..client_streams(env, CONTROL_STREAM)
    };
    ProducerConfig::new(STATIC_STREAM)
        .streams(streams)
        .allowed_base_dirs([env.shm_dir()])
        .keepalive_interval(KEEPALIVE_INTERVAL)
        .attach_timeout(Duration::from_millis(500))
}

#[test]
fn the_counting_allocator_catches_an_allocation() {
    let (n, v) = allocations_in(|| std::hint::black_box(Vec::<u8>::with_capacity(64)));
    assert!(n >= 1, "a Vec allocation was not counted");
    drop(v);
    let (n, s) = allocations_in(|| std::hint::black_box(format!("{}", 12345)));
    assert!(n >= 1, "a String allocation was not counted");
    drop(s);
    let (n, _) = allocations_in(|| std::hint::black_box(1 + 1));
    assert_eq!(n, 0, "arithmetic allocated");
}

#[test]
fn publish_and_claim_commit_of_valid_frames_allocate_nothing() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-no-alloc".into(),
        ..DriverSettings::shared_announce()
    };
    let _driver = InThreadDriver::start(&env, &settings);
    let mut reader = DescriptorReader::connect(&env);
    let mut producer = Producer::new(producer_config(&env)).expect("the producer connects");
    let deadline = Instant::now() + DEADLINE;
    while !producer.is_attached() {
        producer.do_work(monotonic_now_ns()).expect("duty cycle");
        reader.drain();
        assert!(Instant::now() < deadline, "the producer did not attach");
        std::thread::sleep(Duration::from_millis(1));
    }
    while !producer.is_connected() {
        producer.do_work(monotonic_now_ns()).expect("duty cycle");
    }

    // One size per pool (strides 4096 and 65536), payloads and tensors made up front.
    let sizes = [1000usize, 40_000];
    let payloads: Vec<Vec<u8>> = sizes
        .iter()
        .map(|len| (0..*len).map(|i| (i % 251) as u8).collect())
        .collect();
    let tensors: Vec<_> = sizes
        .iter()
        .map(|len| bytes_header(*len).expect("tensor"))
        .collect();

    // Warm-up: first use of every path (lazy statics, Aeron's first offers, logging).
    for round in 0..16 {
        for (payload, tensor) in payloads.iter().zip(&tensors) {
            producer
                .publish(payload, tensor, round)
                .expect("warm-up publish");
            let mut claim = producer.claim(payload.len()).expect("warm-up claim");
            claim.payload_mut().copy_from_slice(payload);
            claim.commit(tensor, round).expect("warm-up commit");
        }
        producer.do_work(monotonic_now_ns()).expect("duty cycle");
        reader.drain();
    }

    let mut publish_allocations = 0;
    let mut claim_allocations = 0;
    for round in 0..MEASURED {
        // Every other round carries a trace id and publish time (Wire Spec §10.2.1): a
        // stamped frame must cost what a plain one does.
        let stamp = if round % 2 == 1 {
            DescriptorStamp {
                trace_id: round,
                timestamp_ns: round,
            }
        } else {
            DescriptorStamp::NONE
        };
        for (payload, tensor) in payloads.iter().zip(&tensors) {
            let (n, seq) =
                allocations_in(|| producer.publish_stamped(payload, tensor, round, stamp));
            seq.expect("publish");
            publish_allocations += n;

            let (n, seq) = allocations_in(|| {
                let mut claim = producer.claim(payload.len())?;
                claim.payload_mut().copy_from_slice(payload);
                claim.commit_stamped(tensor, round, stamp)
            });
            seq.expect("claim + commit");
            claim_allocations += n;
        }
        // Housekeeping (not measured): keepalives, and keep the descriptor log drained.
        producer.do_work(monotonic_now_ns()).expect("duty cycle");
        reader.drain();
    }
    let frames = MEASURED * sizes.len() as u64;
    assert_eq!(
        publish_allocations, 0,
        "Producer::publish allocated {publish_allocations} times in {frames} frames"
    );
    assert_eq!(
        claim_allocations, 0,
        "claim + commit allocated {claim_allocations} times in {frames} frames"
    );

    // The descriptors really went out (the offer path was exercised, not skipped).
    let counters = producer.counters();
    let total = 2 * (16 + MEASURED) * sizes.len() as u64;
    assert_eq!(counters.frames_published, total, "{counters:?}");
    assert_eq!(counters.descriptors_unconnected, 0, "{counters:?}");
    assert_eq!(counters.descriptors_dropped, 0, "{counters:?}");
    let deadline = Instant::now() + DEADLINE;
    while reader.received < total {
        reader.drain();
        assert!(
            Instant::now() < deadline,
            "only {} of {total} descriptors arrived",
            reader.received
        );
    }
}
