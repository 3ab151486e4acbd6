//! The Java example producer and consumer (java/, scripts/java-example.sh) against a real
//! `tp-driver` process, paired with the Rust examples: Rust producer -> Java consumer and
//! Java producer -> Rust consumer move frames whose every byte the consumer verifies, and
//! the Java consumer fails closed, as the Rust one does, on descriptors that a slot
//! contradicts (never committed, stale, torn, bad fields, another epoch): it counts them
//! and delivers nothing wrong.
//!
//! Clients join the driver's streams whatever term-length it configured: a Java producer
//! on its default channel feeds a Java consumer on the driver's. And a Java run that
//! cannot do what it was asked exits non-zero, naming the cause.
//!
//! The examples are built once per run of this binary with Maven (`java/pom.xml`), or
//! with javac and the jars where `mvn` is missing (tests/java_support); the tests are
//! skipped, saying why, without a JDK (or, without Maven, the jars).

mod java_support;
#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use java_support::{skip, JavaBuild};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use support::*;
use system::{summary, JsonLine};
use tensorpool::client::consumer::monotonic_now_ns;
use tensorpool::client::{
    ControlLink, DriverSession, MappedEpoch, Request, SessionConfig, SessionEvent,
};
use tensorpool::protocol::control::{
    Dtype, FrameDescriptor, MajorOrder, ProgressUnit, TensorHeader,
};
use tensorpool::protocol::driver::Role;
use tensorpool::shm::layout::{encode_slot, header_index, SlotContents};
use tensorpool::shm::open::{Access, AllowedBaseDirs};
use tensorpool::shm::seqlock::{committed, in_progress};
use tensorpool::transport::Publication;

fn java(test: &str) -> Option<&'static JavaBuild> {
    match JavaBuild::examples() {
        Ok(build) => Some(build),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

fn wait_success(process: &mut ProcessDriver, what: &str) {
    let status = process
        .wait(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{what} still runs; stderr:\n{}", process.stderr()));
    assert!(
        status.success(),
        "{what} exited with {status}; stdout:\n{}\nstderr:\n{}",
        process.stdout(),
        process.stderr()
    );
}

/// A driver with 100 ms keepalives and grace 3 (300 ms leases: the clients' keepalives
/// must keep up) and a ring of 1,024 slots; announces share the control stream.
fn start_driver(env: &TestEnv, settings: &DriverSettings, nslots: u32) -> ProcessDriver {
    let toml = settings.toml(env).replace(
        &format!("header_nslots = {HEADER_NSLOTS}"),
        &format!("header_nslots = {nslots}"),
    );
    assert!(toml.contains(&format!("header_nslots = {nslots}")));
    let config = env.write("driver.toml", &toml);
    let mut driver = ProcessDriver::start(
        env,
        "driver",
        &config,
        &[
            ("POLICIES_LEASE_KEEPALIVE_INTERVAL_MS", "100"),
            ("POLICIES_LEASE_EXPIRY_GRACE_INTERVALS", "3"),
        ],
    );
    driver.wait_running(DEADLINE);
    driver
}

/// The flags every example (Rust or Java) needs for the test environment, on the
/// driver's channel.
fn common_args(env: &TestEnv, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--channel".to_string(), CHANNEL.to_string()];
    args.extend(default_channel_args(env, extra));
    args
}

/// [`common_args`] without `--channel`: the example's default channel.
fn default_channel_args(env: &TestEnv, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--aeron-dir",
        &env.aeron_dir().display().to_string(),
        "--stream-id",
        &STATIC_STREAM.to_string(),
        "--control-stream-id",
        &CONTROL_STREAM.to_string(),
        "--announce-stream-id",
        &CONTROL_STREAM.to_string(),
        "--descriptor-stream-id",
        &DESCRIPTOR_STREAM.to_string(),
        "--allowed-base-dir",
        &env.shm_dir().display().to_string(),
        "--timeout-s",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn spawn_rust(env: &TestEnv, name: &str, extra: &[&str]) -> ProcessDriver {
    let args = common_args(env, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ProcessDriver::spawn_program(
        &example_program(name),
        "",
        env,
        &format!("rust-{name}"),
        &args,
        &[],
    )
}

fn spawn_java(build: &JavaBuild, env: &TestEnv, main: &str, extra: &[&str]) -> ProcessDriver {
    spawn_java_with(build, env, main, common_args(env, extra))
}

fn spawn_java_with(
    build: &JavaBuild,
    env: &TestEnv,
    main: &str,
    example_args: Vec<String>,
) -> ProcessDriver {
    let mut args = build.java_args(&format!("io.tensorpool.examples.{main}"));
    args.extend(example_args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ProcessDriver::spawn_program(
        Path::new("java"),
        "",
        env,
        &format!("java-{main}"),
        &args,
        &[],
    )
}

fn assert_all_verified(received: &JsonLine, frames: u64) {
    assert_eq!(received.text("role"), Some("consumer"), "{received}");
    assert_eq!(received.u64("frames_received"), frames, "{received}");
    assert_eq!(received.u64("frames_verified"), frames, "{received}");
    for key in [
        "verify_failures",
        "drops_gap",
        "drops_late",
        "drops_resync",
        "drops_invalid",
        "drops_other",
    ] {
        assert_eq!(received.u64(key), 0, "{key}: {received}");
    }
    // The consumer attached first; the producer's attach started the one new epoch.
    assert_eq!(received.u64("epoch_changes"), 1, "{received}");
    assert_eq!(received.flag("interrupted"), Some(false), "{received}");
}

/// Runs `consumer` first, then `producer`, for 1,000 frames of 4,000 bytes at 1,000/s
/// (a second: three leases' worth of keepalives).
fn pair(
    test: &str,
    consumer: impl FnOnce(&TestEnv, &[&str]) -> ProcessDriver,
    producer: impl FnOnce(&TestEnv, &[&str]) -> ProcessDriver,
) -> (JsonLine, JsonLine) {
    pair_with(test, consumer, producer, &[], &[])
}

/// [`pair`] with extra flags for the consumer and the producer.
fn pair_with(
    test: &str,
    consumer: impl FnOnce(&TestEnv, &[&str]) -> ProcessDriver,
    producer: impl FnOnce(&TestEnv, &[&str]) -> ProcessDriver,
    consumer_extra: &[&str],
    producer_extra: &[&str],
) -> (JsonLine, JsonLine) {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: format!("tp-java-{test}"),
        ..DriverSettings::shared_announce()
    };
    let _driver = start_driver(&env, &settings, 1024);
    let consumer_args: Vec<&str> = ["--frames", "1000", "--verify"]
        .into_iter()
        .chain(consumer_extra.iter().copied())
        .collect();
    let mut consumer = consumer(&env, &consumer_args);
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 1,
    );
    let producer_args: Vec<&str> = [
        "--frames",
        "1000",
        "--payload-bytes",
        "4000",
        "--rate",
        "1000",
    ]
    .into_iter()
    .chain(producer_extra.iter().copied())
    .collect();
    let mut producer = producer(&env, &producer_args);
    wait_success(&mut consumer, "the consumer");
    wait_success(&mut producer, "the producer");
    (summary(&producer), summary(&consumer))
}

#[test]
fn rust_producer_feeds_the_java_consumer_every_byte_verified() {
    let test = "rust_producer_feeds_the_java_consumer_every_byte_verified";
    let Some(build) = java(test) else { return };
    let (sent, received) = pair(
        "rust-to-java",
        |env, extra| spawn_java(build, env, "Consumer", extra),
        |env, extra| spawn_rust(env, "producer", extra),
    );
    assert_eq!(sent.u64("frames_sent"), 1000, "{sent}");
    assert_all_verified(&received, 1000);
}

#[test]
fn java_producer_feeds_the_rust_consumer_every_byte_verified() {
    let test = "java_producer_feeds_the_rust_consumer_every_byte_verified";
    let Some(build) = java(test) else { return };
    let (sent, received) = pair(
        "java-to-rust",
        |env, extra| spawn_rust(env, "consumer", extra),
        |env, extra| spawn_java(build, env, "Producer", extra),
    );
    assert_eq!(sent.text("role"), Some("producer"), "{sent}");
    assert_eq!(sent.u64("frames_sent"), 1000, "{sent}");
    assert_eq!(sent.u64("descriptors_dropped"), 0, "{sent}");
    assert_eq!(sent.u64("epoch_changes"), 0, "{sent}");
    assert_all_verified(&received, 1000);
}

#[test]
fn the_java_producer_on_its_default_channel_joins_a_driver_of_another_term_length() {
    let test = "the_java_producer_on_its_default_channel_joins_a_driver_of_another_term_length";
    let Some(build) = java(test) else { return };
    assert_ne!(CHANNEL, tensorpool::client::link::DEFAULT_CHANNEL);
    let (sent, received) = pair(
        "java-default-channel",
        // The consumer joins on the driver's channel (64 KiB terms) ...
        |env, extra| spawn_java(build, env, "Consumer", extra),
        // ... the producer on its default (4 MiB terms): the same control stream.
        |env, extra| spawn_java_with(build, env, "Producer", default_channel_args(env, extra)),
    );
    assert_eq!(sent.u64("frames_sent"), 1000, "{sent}");
    assert_all_verified(&received, 1000);
}

/// Runs a Java example that cannot do what it is asked; returns its exit status, JSON
/// line and stderr.
fn run_failing_java(
    build: &JavaBuild,
    env: &TestEnv,
    main: &str,
    args: Vec<String>,
) -> (std::process::ExitStatus, JsonLine, String) {
    let mut process = spawn_java_with(build, env, main, args);
    let status = process
        .wait(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the Java {main} still runs; stderr:\n{}", process.stderr()));
    (status, summary(&process), process.stderr())
}

#[test]
fn java_examples_that_cannot_do_what_was_asked_exit_non_zero_naming_the_cause() {
    let test = "java_examples_that_cannot_do_what_was_asked_exit_non_zero_naming_the_cause";
    let Some(build) = java(test) else { return };
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-java-failures".into(),
        ..DriverSettings::shared_announce()
    };
    let _driver = start_driver(&env, &settings, HEADER_NSLOTS);

    // A stream the driver does not provision, without --create: refused until the timeout.
    let mut args = common_args(&env, &["--frames", "10"]);
    let stream = args
        .iter()
        .position(|a| a == "--stream-id")
        .expect("--stream-id")
        + 1;
    args[stream] = "12345".into();
    let timeout = args
        .iter()
        .position(|a| a == "--timeout-s")
        .expect("--timeout-s")
        + 1;
    args[timeout] = "2".into();
    let (status, line, stderr) = run_failing_java(build, &env, "Producer", args);
    assert_eq!(status.code(), Some(1), "{line}\n{stderr}");
    assert_eq!(line.u64("frames_sent"), 0, "{line}");
    assert!(
        stderr.contains("not attached to stream 12345 in time: the driver refused the attach")
            && stderr.contains("stream not provisioned")
            && stderr.contains("--create"),
        "the reason and the fix: {stderr}"
    );

    // A channel Aeron refuses (a term length that is not a power of two).
    for main in ["Producer", "Consumer"] {
        let mut args = default_channel_args(&env, &["--frames", "10"]);
        args.extend(["--channel".into(), "aeron:ipc?term-length=3k".into()]);
        let (status, line, stderr) = run_failing_java(build, &env, main, args);
        assert_eq!(status.code(), Some(1), "{main}: {line}\n{stderr}");
        assert!(
            stderr.contains("joining the control streams on aeron:ipc?term-length=3k failed"),
            "{main} names the cause: {stderr}"
        );
    }
}

/// A producer that writes exactly the slots it is told to, valid or not.
struct ForgingProducer {
    link: ControlLink,
    session: DriverSession,
    descriptors: Publication,
    mapped: Option<MappedEpoch>,
    allowed: AllowedBaseDirs,
}

impl ForgingProducer {
    fn attach(env: &TestEnv) -> Self {
        let streams = client_streams(env, CONTROL_STREAM);
        let link = ControlLink::connect(&streams, "forging-producer").expect("producer link");
        let descriptors =
            Publication::add(link.client(), CHANNEL, DESCRIPTOR_STREAM as i32).expect("pub");
        let mut producer = Self {
            link,
            session: DriverSession::new(SessionConfig {
                keepalive_interval: Some(Duration::from_millis(50)),
                ..SessionConfig::new(STATIC_STREAM, Role::Producer)
            }),
            descriptors,
            mapped: None,
            allowed: AllowedBaseDirs::new([env.shm_dir()]).expect("allowed dirs"),
        };
        let deadline = Instant::now() + DEADLINE;
        while producer.mapped.is_none() {
            assert!(
                Instant::now() < deadline,
                "the test producer never attached"
            );
            producer.pump();
            std::thread::sleep(Duration::from_millis(1));
        }
        producer
    }

    fn pump(&mut self) {
        let now = monotonic_now_ns();
        self.link.do_work().expect("producer client");
        let mut events = Vec::new();
        let session = &mut self.session;
        self.link
            .poll_control(|bytes| events.extend(session.on_message(bytes, now)), 16)
            .expect("producer poll");
        for event in events {
            if let SessionEvent::Attached(grant) = event {
                self.mapped = Some(
                    MappedEpoch::map(&grant, &self.allowed, Access::ReadWrite)
                        .expect("producer maps its grant"),
                );
            }
        }
        if let (Some(request), _) = self.session.poll(now) {
            if matches!(request, Request::Attach(_) | Request::Keepalive(_))
                && !self.link.send(&request).expect("producer send")
            {
                self.session.send_failed(now);
            }
        }
    }

    fn mapped(&self) -> &MappedEpoch {
        self.mapped.as_ref().expect("mapped")
    }

    fn epoch(&self) -> u64 {
        self.mapped().epoch()
    }

    /// Writes slot `seq` (pattern payload) and then stores `word` as its `seq_commit`.
    fn write(&self, seq: u64, contents: &SlotContents, word: u64) {
        let m = self.mapped();
        let index = header_index(seq, m.header_nslots());
        let seq_commit = m.seq_commit(index);
        seq_commit.store_in_progress(seq);
        let pool = &m.pools()[0];
        let len = (contents.values_len_bytes as usize).min(pool.grant.stride_bytes as usize);
        // SAFETY: this test producer holds the producer lease: the slot's only writer.
        if let Some(bytes) = unsafe { pool.slot_bytes_mut(index, len) } {
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = ((seq + i as u64) % 251) as u8;
            }
        }
        m.write_slot_body(index, &encode_slot(0, contents));
        seq_commit.as_atomic().store(word, Ordering::Release);
    }

    fn publish(&mut self, epoch: u64, seq: u64) {
        let d = FrameDescriptor {
            stream_id: STATIC_STREAM,
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
            self.pump();
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// A valid slot for `seq`: `len` pattern bytes in pool 1, a 1-D UINT8 tensor over them.
fn valid(seq: u64, len: u32) -> SlotContents {
    let mut dims = [0; 8];
    dims[0] = len as i32;
    SlotContents {
        values_len_bytes: len,
        payload_slot: header_index(seq, HEADER_NSLOTS),
        pool_id: POOLS[0].0,
        payload_offset: 0,
        timestamp_ns: seq,
        meta_version: 0,
        tensor: TensorHeader {
            dtype: Dtype::Uint8,
            major_order: MajorOrder::Row,
            ndims: 1,
            pad_align: 0,
            progress_unit: ProgressUnit::None,
            progress_stride_bytes: 0,
            dims,
            strides: [0; 8],
            pad: [0; 109],
        },
    }
}

#[test]
fn the_java_consumer_fails_closed_on_forged_descriptors_and_torn_slots() {
    let test = "the_java_consumer_fails_closed_on_forged_descriptors_and_torn_slots";
    let Some(build) = java(test) else { return };
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-java-fail-closed".into(),
        ..DriverSettings::shared_announce()
    };
    let _driver = start_driver(&env, &settings, HEADER_NSLOTS);
    let mut consumer = spawn_java(build, &env, "Consumer", &["--frames", "5", "--verify"]);
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 1,
    );
    let mut producer = ForgingProducer::attach(&env);
    let epoch = producer.epoch();
    // Wait until the consumer mapped the producer's epoch (from the announce).
    let mapped = format!("mapped stream {STATIC_STREAM} epoch {epoch}");
    let deadline = Instant::now() + DEADLINE;
    while !consumer.stderr().contains(&mapped) {
        assert!(
            Instant::now() < deadline,
            "the Java consumer never mapped epoch {epoch}; stderr:\n{}",
            consumer.stderr()
        );
        producer.pump();
        std::thread::sleep(Duration::from_millis(5));
    }

    let len = 1000;
    // Frames 0 and 1: valid.
    for seq in 0..2 {
        producer.write(seq, &valid(seq, len), committed(seq));
        producer.publish(epoch, seq);
    }
    // 2: the slot is still IN-PROGRESS (a torn write) -> invalid, not delivered.
    producer.write(2, &valid(2, len), in_progress(2));
    producer.publish(epoch, 2);
    // 3: committed, but the slot claims a pool that does not exist -> invalid.
    producer.write(
        3,
        &SlotContents {
            pool_id: 9,
            ..valid(3, len)
        },
        committed(3),
    );
    producer.publish(epoch, 3);
    // 4: committed, but the tensor spans more than the payload -> invalid.
    let mut too_big = valid(4, len);
    too_big.tensor.dims[0] = len as i32 + 1;
    producer.write(4, &too_big, committed(4));
    producer.publish(epoch, 4);
    // A descriptor for 100, whose slot (100 mod 8 = 4) holds 4: stale -> invalid.
    producer.publish(epoch, 100);
    // Another epoch -> other.
    producer.publish(epoch + 1, 5);
    // 5, 6, 7: valid. The consumer stops after 5 delivered frames.
    for seq in 5..8 {
        producer.write(seq, &valid(seq, len), committed(seq));
        producer.publish(epoch, seq);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.wait(Duration::from_millis(5)).is_none() {
        assert!(Instant::now() < deadline, "the Java consumer still runs");
        producer.pump();
    }
    let line = summary(&consumer);
    assert_eq!(line.u64("frames_received"), 5, "{line}");
    assert_eq!(line.u64("frames_verified"), 5, "{line}");
    assert_eq!(line.u64("verify_failures"), 0, "{line}");
    assert_eq!(line.u64("drops_invalid"), 4, "{line}");
    assert_eq!(line.u64("drops_other"), 1, "{line}");
    assert_eq!(line.u64("drops_late"), 0, "{line}");
    // Every sequence arrived (dropped ones included): no gap.
    assert_eq!(line.u64("drops_gap"), 0, "{line}");
}

/// Trace ids (Wire Spec §10.2.1) set per frame by the producer: frame `s` carries
/// `TRACE_BASE + s`, and the consumer checks every one.
const TRACE_BASE: &str = "77000000000";

fn assert_all_traced(received: &JsonLine, frames: u64) {
    assert_all_verified(received, frames);
    assert_eq!(received.u64("trace_ids_verified"), frames, "{received}");
    assert_eq!(received.u64("trace_failures"), 0, "{received}");
}

#[test]
fn trace_ids_from_the_rust_producer_reach_the_java_consumer() {
    let test = "trace_ids_from_the_rust_producer_reach_the_java_consumer";
    let Some(build) = java(test) else { return };
    let (_, received) = pair_with(
        "trace-rust-to-java",
        |env, extra| spawn_java(build, env, "Consumer", extra),
        |env, extra| spawn_rust(env, "producer", extra),
        &["--expect-trace-id", TRACE_BASE],
        &["--trace-id", TRACE_BASE],
    );
    assert_all_traced(&received, 1000);
}

#[test]
fn trace_ids_from_the_java_producer_reach_the_rust_consumer() {
    let test = "trace_ids_from_the_java_producer_reach_the_rust_consumer";
    let Some(build) = java(test) else { return };
    let (_, received) = pair_with(
        "trace-java-to-rust",
        |env, extra| spawn_rust(env, "consumer", extra),
        |env, extra| spawn_java(build, env, "Producer", extra),
        &["--expect-trace-id", TRACE_BASE],
        &["--trace-id", TRACE_BASE],
    );
    assert_all_traced(&received, 1000);
}

/// The producer flags of the metadata tests: metadata from the start, changed before
/// frame 500 of the 1,000, re-announced every 200 ms.
const METADATA_FLAGS: [&str; 10] = [
    "--meta-name",
    "cam \"java\"",
    "--meta-summary",
    "uint8 test pattern",
    "--meta-attr",
    "lens=35mm",
    "--meta-change-at",
    "500",
    "--meta-interval-ms",
    "200",
];

/// The consumer had every frame: the first 500 carried version 1, the rest version 2,
/// and it holds version 2 with the producer's name, summary and attributes.
fn assert_metadata_exchanged(received: &JsonLine) {
    assert_eq!(received.u64("meta_version"), 2, "{received}");
    assert_eq!(
        received.text("meta_name"),
        Some("cam \"java\""),
        "{received}"
    );
    assert_eq!(
        received.text("meta_summary"),
        Some("uint8 test pattern"),
        "{received}"
    );
    assert_eq!(
        received.text("meta_attrs"),
        Some("lens=35mm;phase=2"),
        "{received}"
    );
    assert!(received.u64("meta_changes") >= 1, "{received}");
    assert_eq!(received.u64("first_frame_meta_version"), 1, "{received}");
    assert_eq!(received.u64("last_frame_meta_version"), 2, "{received}");
    assert_eq!(received.u64("frame_meta_regressions"), 0, "{received}");
}

/// `extra` followed by [`METADATA_FLAGS`].
fn with_metadata_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = extra.to_vec();
    all.extend(METADATA_FLAGS);
    all
}

#[test]
fn rust_producer_metadata_reaches_the_java_consumer_and_its_change_tags_later_frames() {
    let test = "rust_producer_metadata_reaches_the_java_consumer_and_its_change_tags_later_frames";
    let Some(build) = java(test) else { return };
    let (_, received) = pair(
        "meta-rust-to-java",
        |env, extra| spawn_java(build, env, "Consumer", extra),
        |env, extra| spawn_rust(env, "producer", &with_metadata_flags(extra)),
    );
    assert_all_verified(&received, 1000);
    assert_metadata_exchanged(&received);
    assert_eq!(received.u64("metadata_dropped"), 0, "{received}");
}

#[test]
fn java_producer_metadata_reaches_the_rust_consumer_and_its_change_tags_later_frames() {
    let test = "java_producer_metadata_reaches_the_rust_consumer_and_its_change_tags_later_frames";
    let Some(build) = java(test) else { return };
    let (sent, received) = pair(
        "meta-java-to-rust",
        |env, extra| spawn_rust(env, "consumer", extra),
        |env, extra| spawn_java(build, env, "Producer", &with_metadata_flags(extra)),
    );
    assert_eq!(sent.u64("frames_sent"), 1000, "{sent}");
    assert_all_verified(&received, 1000);
    assert_metadata_exchanged(&received);
}
