//! Per-data-source metadata between the client library's producer and consumer (Wire
//! Spec §10.3, §15.11) through a real SHM driver (`run_until` on a thread of the test, with
//! its embedded media driver): frames carry the `meta_version` in force when they were
//! committed, in the slot header and the descriptor; a consumer that joins late receives
//! the metadata from the periodic re-announce; hostile metadata messages are dropped and
//! counted without disturbing the version in force.
//!
//! Every test has its own directory (Aeron and SHM) and bounds every wait.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    client_streams, DriverSettings, InThreadDriver, TestEnv, CHANNEL, DEADLINE, DESCRIPTOR_STREAM,
    SEPARATE_ANNOUNCE_STREAM as ANNOUNCE_STREAM, STATIC_STREAM as STREAM,
};
use tensorpool::client::consumer::{
    Consumer, ConsumerConfig, ConsumerEvent, FramePoll, MetaStatus,
};
use tensorpool::client::link::DEFAULT_METADATA_STREAM_ID;
use tensorpool::client::metadata::{DataSourceMetadata, MetadataError, MAX_NAME_LEN};
use tensorpool::client::producer::{monotonic_now_ns, Producer, ProducerConfig, ProducerEvent};
use tensorpool::client::tensor::bytes_header;
use tensorpool::protocol::codec::put_u32;
use tensorpool::protocol::control::{
    DataSourceAnnounce, DataSourceMeta, DataSourceMetaAttributes, FrameDescriptor,
};
use tensorpool::transport::{AeronClient, OfferOutcome, Publication, Subscription};

fn start_driver(env: &TestEnv) -> InThreadDriver {
    InThreadDriver::start(
        env,
        &DriverSettings {
            instance_id: "tp-metadata-test".into(),
            ..DriverSettings::separate_announce()
        },
    )
}

fn producer(env: &TestEnv, interval: Duration) -> Producer {
    Producer::new(
        ProducerConfig::new(STREAM)
            .streams(client_streams(env, ANNOUNCE_STREAM))
            .allowed_base_dirs([env.shm_dir()])
            .attach_timeout(Duration::from_millis(500))
            .metadata_interval(interval),
    )
    .expect("producer connects")
}

fn consumer(env: &TestEnv) -> Consumer {
    Consumer::connect(ConsumerConfig {
        allowed_base_dirs: vec![env.shm_dir()],
        attach_timeout: Duration::from_millis(500),
        ..ConsumerConfig::new(client_streams(env, ANNOUNCE_STREAM), STREAM)
    })
    .expect("consumer connects")
}

/// Pumps both (either may be absent) until `probe` answers.
fn pump_until<T>(
    what: &str,
    producer: &mut Option<&mut Producer>,
    consumer: &mut Option<&mut Consumer>,
    mut probe: impl FnMut(&mut Option<&mut Producer>, &mut Option<&mut Consumer>) -> Option<T>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = monotonic_now_ns();
        if let Some(p) = producer.as_deref_mut() {
            p.do_work(now).expect("producer duty cycle");
        }
        if let Some(c) = consumer.as_deref_mut() {
            c.do_work(now).expect("consumer duty cycle");
        }
        if let Some(value) = probe(producer, consumer) {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Pumps until both are attached (the consumer mapped).
fn attach_both(producer: &mut Producer, consumer: &mut Consumer) {
    let (mut p_attached, mut c_attached) = (false, false);
    pump_until(
        "both attached",
        &mut Some(producer),
        &mut Some(consumer),
        |p, c| {
            let (p, c) = (p.as_deref_mut()?, c.as_deref_mut()?);
            p_attached |= p
                .events()
                .any(|e| matches!(e, ProducerEvent::Attached { .. }));
            c_attached |= c
                .events()
                .any(|e| matches!(e, ConsumerEvent::Attached { .. }));
            (p_attached && c_attached && c.is_ready()).then_some(())
        },
    );
}

/// Pumps until the consumer reports `MetadataChanged` for `version`; returns every event.
fn await_metadata(producer: &mut Producer, consumer: &mut Consumer, version: u32) {
    pump_until(
        &format!("metadata version {version}"),
        &mut Some(producer),
        &mut Some(consumer),
        |_, c| {
            c.as_deref_mut()?
                .events()
                .any(|e| {
                    e == ConsumerEvent::MetadataChanged {
                        meta_version: version,
                    }
                })
                .then_some(())
        },
    );
}

/// Reads the next frame without a duty cycle of the consumer (so no metadata is read
/// meanwhile): its sequence, `meta_version` and status.
fn next_frame(consumer: &mut Consumer) -> (u64, u32, MetaStatus) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match consumer
            .poll_frame(|f| (f.seq(), f.meta_version(), f.meta_status()))
            .expect("poll")
        {
            FramePoll::Delivered(frame) => return frame,
            FramePoll::Dropped(reason) => panic!("frame dropped: {reason:?}"),
            FramePoll::RateLimited => panic!("a STREAM consumer skipped a frame for rate"),
            FramePoll::Empty | FramePoll::Ignored => {}
        }
        assert!(Instant::now() < deadline, "timed out waiting for a frame");
        std::thread::yield_now();
    }
}

fn publish(producer: &mut Producer, byte: u8) -> u64 {
    let payload = [byte; 64];
    producer
        .publish(&payload, &bytes_header(64).expect("tensor"), 7)
        .expect("published")
}

#[test]
fn frames_carry_the_meta_version_in_force_when_they_were_committed() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut producer = producer(&env, Duration::from_millis(200));
    let mut consumer = consumer(&env);
    let raw = AeronClient::connect(env.aeron_dir(), DEADLINE).expect("test client");
    let mut descriptors =
        Subscription::add(&raw, CHANNEL, DESCRIPTOR_STREAM as i32).expect("descriptor tap");
    attach_both(&mut producer, &mut consumer);
    pump_until(
        "the descriptor tap",
        &mut Some(&mut producer),
        &mut Some(&mut consumer),
        |_, _| {
            raw.do_work().expect("test client");
            descriptors.is_connected().then_some(())
        },
    );

    // No metadata: version 0, null in the descriptor.
    let s0 = publish(&mut producer, 0);
    assert_eq!(next_frame(&mut consumer), (s0, 0, MetaStatus::Absent));
    assert_eq!(consumer.metadata(), None);

    let v1 = DataSourceMetadata::named("cam0")
        .with_summary("uint8 64")
        .with_attribute("camera_serial", "text/plain", b"SN-17".to_vec());
    assert_eq!(producer.set_metadata(v1.clone()), Ok(1));
    assert_eq!(
        producer.set_metadata(v1.clone()),
        Ok(1),
        "no change, no bump"
    );
    await_metadata(&mut producer, &mut consumer, 1);
    let held = consumer.metadata().expect("version 1 held");
    assert_eq!(
        (held.meta_version, held.producer_id),
        (1, producer.client_id())
    );
    assert_eq!(Some(held.epoch), producer.epoch());
    assert_eq!(held.metadata, v1);
    let s1 = publish(&mut producer, 1);
    assert_eq!(next_frame(&mut consumer), (s1, 1, MetaStatus::Current));

    // The change reaches the frame path before the consumer reads the metadata stream.
    let v2 = v1
        .clone()
        .with_attribute("exposure_us", "text/plain", b"800".to_vec());
    assert_eq!(producer.set_metadata(v2.clone()), Ok(2));
    let s2 = publish(&mut producer, 2);
    assert_eq!(
        next_frame(&mut consumer),
        (s2, 2, MetaStatus::Unseen),
        "delivered, flagged"
    );
    let s2b = publish(&mut producer, 3);
    await_metadata(&mut producer, &mut consumer, 2);
    assert_eq!(consumer.metadata().map(|m| &m.metadata), Some(&v2));
    // A frame taken under version 2 read after version 3 is in force.
    assert_eq!(
        producer.set_metadata(DataSourceMetadata::named("cam0-renamed")),
        Ok(3)
    );
    await_metadata(&mut producer, &mut consumer, 3);
    assert_eq!(next_frame(&mut consumer), (s2b, 2, MetaStatus::Superseded));
    let s3 = publish(&mut producer, 4);
    assert_eq!(next_frame(&mut consumer), (s3, 3, MetaStatus::Current));

    // The descriptors said the same.
    let mut seen = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while seen.len() < 5 {
        raw.do_work().expect("test client");
        descriptors
            .poll(
                |b| seen.push(FrameDescriptor::decode(b).expect("descriptor")),
                16,
            )
            .expect("poll");
        assert!(Instant::now() < deadline, "descriptors seen: {seen:?}");
    }
    let versions: Vec<_> = seen.iter().map(|d| (d.seq, d.meta_version)).collect();
    assert_eq!(
        versions,
        [
            (s0, None),
            (s1, Some(1)),
            (s2, Some(2)),
            (s2b, Some(2)),
            (s3, Some(3))
        ]
    );

    // Refused metadata changes nothing.
    let refused = producer.set_metadata(DataSourceMetadata::named("x".repeat(MAX_NAME_LEN + 1)));
    assert!(
        matches!(refused, Err(MetadataError::TooLong { .. })),
        "{refused:?}"
    );
    assert_eq!(producer.meta_version(), 3);
    let counters = consumer.counters();
    assert_eq!(counters.metadata_updates, 3);
    assert_eq!(
        (
            counters.metadata_dropped_malformed,
            counters.metadata_dropped_oversize
        ),
        (0, 0)
    );
}

#[test]
fn a_consumer_that_joins_late_gets_the_metadata_from_the_next_re_announce() {
    for interval in [Duration::from_millis(100), Duration::from_millis(400)] {
        let env = TestEnv::new();
        let _driver = start_driver(&env);
        let mut producer = producer(&env, interval);
        pump_until(
            "producer attached",
            &mut Some(&mut producer),
            &mut None,
            |p, _| p.as_deref_mut()?.is_attached().then_some(()),
        );
        let meta =
            DataSourceMetadata::named("late").with_attribute("k", "text/plain", b"v".to_vec());
        producer.set_metadata(meta.clone()).expect("valid");
        // The announce on change went out before any consumer existed.
        pump_until(
            "the first announce",
            &mut Some(&mut producer),
            &mut None,
            |p, _| (p.as_deref_mut()?.counters().metadata_sent >= 1).then_some(()),
        );

        let mut consumer = consumer(&env);
        let sent_at_join = producer.counters().metadata_sent;
        // Whole: the name and summary too (a consumer whose subscription joined between
        // the announce and the meta has the attributes first, the rest one period later).
        pump_until(
            "the whole metadata",
            &mut Some(&mut producer),
            &mut Some(&mut consumer),
            |_, c| (c.as_deref()?.metadata()?.metadata == meta).then_some(()),
        );
        let sends = producer.counters().metadata_sent - sent_at_join;
        // One re-announce (two if one was already under way as the consumer subscribed).
        assert!(
            (1..=2).contains(&sends),
            "{sends} re-announces before a late consumer had the metadata ({interval:?})"
        );
        let held = consumer.metadata().expect("held");
        assert_eq!((held.meta_version, Some(held.epoch)), (1, producer.epoch()));
        assert!((1..=2).contains(&consumer.counters().metadata_updates));
    }
}

/// Encodes a `DataSourceAnnounce` of the test stream.
fn announce(version: u32, name: &[u8]) -> Vec<u8> {
    let message = DataSourceAnnounce {
        stream_id: STREAM,
        producer_id: 99,
        epoch: 1,
        meta_version: version,
        name,
        summary: b"",
    };
    let mut buf = vec![0; message.encoded_len()];
    message.encode(&mut buf).expect("fits");
    buf
}

/// Encodes a `DataSourceMeta` of the test stream.
fn meta(version: u32, entries: &[DataSourceMetaAttributes<'_>]) -> Vec<u8> {
    let message = DataSourceMeta {
        stream_id: STREAM,
        meta_version: version,
        timestamp_ns: 5,
        attributes: entries,
    };
    let mut buf = vec![0; message.encoded_len()];
    message.encode(&mut buf).expect("fits");
    buf
}

#[test]
fn hostile_metadata_messages_are_dropped_and_counted() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut consumer = consumer(&env);
    // A hostile peer on the metadata stream, with a term long enough for large messages.
    let raw = AeronClient::connect(env.aeron_dir(), DEADLINE).expect("test client");
    let hostile = Publication::add(
        &raw,
        "aeron:ipc?term-length=1m",
        DEFAULT_METADATA_STREAM_ID as i32,
    )
    .expect("hostile publication");
    let send = |consumer: &mut Consumer, bytes: &[u8]| {
        let deadline = Instant::now() + DEADLINE;
        loop {
            raw.do_work().expect("test client");
            consumer.do_work(monotonic_now_ns()).expect("consumer");
            if matches!(
                hostile.offer(bytes).expect("offer"),
                OfferOutcome::Published { .. }
            ) {
                return;
            }
            assert!(Instant::now() < deadline, "the consumer never subscribed");
        }
    };
    let settle = |consumer: &mut Consumer, what: &str, probe: &dyn Fn(&Consumer) -> bool| {
        let deadline = Instant::now() + DEADLINE;
        while !probe(consumer) {
            consumer.do_work(monotonic_now_ns()).expect("consumer");
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
    };
    let serial = DataSourceMetaAttributes {
        key: b"serial",
        format: b"text/plain",
        value: b"SN",
    };
    send(&mut consumer, &announce(1, b"genuine"));
    send(&mut consumer, &meta(1, &[serial]));
    settle(&mut consumer, "version 1", &|c| c.metadata().is_some());

    let big = vec![7u8; 20_000];
    let mut lying_length = announce(2, b"liar");
    put_u32(&mut lying_length, 8 + 20, u32::MAX);
    let mut lying_count = meta(2, &[serial]);
    lying_count[8 + 16 + 2..8 + 16 + 4].copy_from_slice(&u16::MAX.to_le_bytes());
    let good_meta = meta(2, &[serial]);
    let malformed: Vec<Vec<u8>> = vec![
        lying_length,
        lying_count,
        good_meta[..good_meta.len() - 3].to_vec(),
        good_meta[..10].to_vec(),
        announce(2, b"bell\x07"),
    ];
    let oversize: Vec<Vec<u8>> = vec![
        announce(2, &[b'n'; MAX_NAME_LEN + 1]),
        meta(
            2,
            &[DataSourceMetaAttributes {
                key: b"k",
                format: b"b",
                value: &big,
            }],
        ),
        meta(2, &vec![serial; 4000]),
    ];
    for bytes in &malformed {
        send(&mut consumer, bytes);
    }
    // Unknown formats: a key or format that is not printable ASCII, after an announce
    // that would otherwise make a version.
    for (key, format) in [
        (&b"k"[..], &b"\xfe\xff"[..]),
        (b"", b"text/plain"),
        (b"k", b""),
    ] {
        send(&mut consumer, &announce(2, b"fresh"));
        send(
            &mut consumer,
            &meta(
                2,
                &[DataSourceMetaAttributes {
                    key,
                    format,
                    value: b"",
                }],
            ),
        );
    }
    for bytes in &oversize {
        send(&mut consumer, bytes);
    }
    let expected = (malformed.len() as u64 + 3, oversize.len() as u64);
    settle(&mut consumer, "every hostile message counted", &|c| {
        let counters = c.counters();
        counters.metadata_dropped_malformed + counters.metadata_dropped_oversize
            >= expected.0 + expected.1
    });
    let counters = consumer.counters();
    assert_eq!(
        (
            counters.metadata_dropped_malformed,
            counters.metadata_dropped_oversize
        ),
        expected
    );
    assert_eq!(counters.metadata_updates, 1);
    let held = consumer.metadata().expect("still held");
    assert_eq!(
        (held.meta_version, held.metadata.name.as_str()),
        (1, "genuine")
    );
}
