//! The producer against a real SHM driver (run with `run_until` on a thread of the test,
//! with its embedded media driver) and real files: what lands in the header ring and the
//! payload pools, the descriptors on the shared and per-consumer streams, refusals and
//! counters, and reattaching to a restarted driver with a larger epoch.
//!
//! Every test has its own directory (Aeron and SHM), bounds every wait, and stops its
//! driver threads when it ends.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    client_streams, DriverSettings, InThreadDriver, TestEnv, CHANNEL, CONTROL_STREAM, DEADLINE,
    DESCRIPTOR_RANGE, DESCRIPTOR_STREAM, KEEPALIVE_INTERVAL as KEEPALIVE, QOS_STREAM,
    SEPARATE_ANNOUNCE_STREAM as ANNOUNCE_STREAM, STATIC_STREAM as STREAM,
};
use tensorpool::client::producer::{
    monotonic_now_ns, ConsumerStreamState, Producer, ProducerConfig, ProducerEvent, PublishError,
};
use tensorpool::client::tensor::{bytes_header, TensorError};
use tensorpool::client::MappedEpoch;
use tensorpool::protocol::control::{Bool, ConsumerConfig, FrameDescriptor, Mode, QosProducer};
use tensorpool::protocol::driver::{
    LeaseRevokeReason, Role, ShmLeaseRevoked, ShmLeaseRevokedDecoder,
};
use tensorpool::shm::layout::decode_slot;
use tensorpool::shm::open::{Access, AllowedBaseDirs};
use tensorpool::shm::seqlock::{committed, in_progress};
use tensorpool::transport::{AeronClient, OfferOutcome, Publication, Subscription};

/// The first per-consumer descriptor stream the driver assigns.
const PRIVATE_DESCRIPTOR_STREAM: u32 = DESCRIPTOR_RANGE.0;

/// The SHM driver for `env` on a thread of the test (the support configuration, announces
/// on a stream of their own); stopped and joined on drop.
fn start_driver(env: &TestEnv) -> InThreadDriver {
    let settings = DriverSettings {
        instance_id: "tp-producer-test".into(),
        ..DriverSettings::separate_announce()
    };
    let mut config = settings.config(env);
    // As these tests have always run it: no remote shutdown.
    config.policies.shutdown_token = None;
    InThreadDriver::start_with_config(env, config)
}

fn producer_config(env: &TestEnv) -> ProducerConfig {
    ProducerConfig::new(STREAM)
        .streams(client_streams(env, ANNOUNCE_STREAM))
        .allowed_base_dirs([env.shm_dir()])
        .keepalive_interval(KEEPALIVE)
        .attach_timeout(Duration::from_millis(500))
        .qos_interval(Duration::from_millis(100))
}

/// Runs the producer's duty cycle until `probe` yields a value.
fn pump_until<T>(
    producer: &mut Producer,
    what: &str,
    mut probe: impl FnMut(&mut Producer) -> Option<T>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        producer
            .do_work(monotonic_now_ns())
            .expect("producer duty cycle");
        if let Some(value) = probe(producer) {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// Waits for the first attach; returns the granted stream and epoch.
fn attach(producer: &mut Producer) -> (u32, u64) {
    pump_until(producer, "the first attach", |p| {
        p.events().find_map(|event| match event {
            ProducerEvent::Attached { stream_id, epoch } => Some((stream_id, epoch)),
            _ => None,
        })
    })
}

/// Waits for the next reattach; returns its epoch and every event seen meanwhile.
fn reattach(producer: &mut Producer) -> (u64, Vec<ProducerEvent>) {
    let mut seen = Vec::new();
    let epoch = pump_until(producer, "the reattach", |p| {
        seen.extend(p.events());
        seen.iter().find_map(|event| match event {
            ProducerEvent::Reattached { epoch } => Some(*epoch),
            _ => None,
        })
    });
    (epoch, seen)
}

/// The producer's current epoch, mapped read-only as a consumer would.
fn reader(env: &TestEnv, producer: &Producer) -> MappedEpoch {
    let grant = producer.grant().expect("attached").clone();
    let allowed = AllowedBaseDirs::new([env.shm_dir()]).expect("allowed dirs");
    MappedEpoch::map(&grant, &allowed, Access::ReadOnly).expect("read-only mapping")
}

/// The documented test pattern: byte `i` of frame `seq` is `(seq + i) mod 251`.
fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((seq + i) % 251) as u8).collect()
}

/// Descriptors arriving on `sub`, decoded.
fn poll_descriptors(client: &AeronClient, sub: &mut Subscription, into: &mut Vec<FrameDescriptor>) {
    client.do_work().expect("test client duty cycle");
    sub.poll(
        |bytes| into.push(FrameDescriptor::decode(bytes).expect("a FrameDescriptor")),
        16,
    )
    .expect("poll");
}

fn offer(publication: &Publication, bytes: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    while !matches!(publication.offer(bytes), Ok(OfferOutcome::Published { .. })) {
        assert!(
            Instant::now() < deadline,
            "could not offer on the control stream"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn published_frame_lands_in_the_slot_and_pool_and_is_announced() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let client = AeronClient::connect(env.aeron_dir(), DEADLINE).expect("test client");
    let mut shared = Subscription::add(&client, "aeron:ipc", DESCRIPTOR_STREAM as i32)
        .expect("descriptor subscription");

    let mut producer = Producer::new(producer_config(&env)).expect("producer connects");
    let tensor = bytes_header(1000).expect("tensor");
    assert_eq!(
        producer.publish(&pattern(0, 1000), &tensor, 1),
        Err(PublishError::NotAttached)
    );
    let (stream_id, epoch) = attach(&mut producer);
    assert_eq!(stream_id, STREAM);
    assert!(epoch >= 1);
    assert_eq!(producer.epoch(), Some(epoch));
    assert_eq!(producer.max_payload_len(), Some(65536));

    assert_eq!(producer.publish(&pattern(0, 1000), &tensor, 123), Ok(0));
    let big = bytes_header(5000).expect("tensor");
    assert_eq!(producer.publish(&pattern(1, 5000), &big, 456), Ok(1));

    let ring = reader(&env, &producer);
    for (seq, len, pool_id, timestamp, tensor) in [
        (0u64, 1000usize, 1u16, 123u64, tensor),
        (1, 5000, 2, 456, big),
    ] {
        let index = seq as u32;
        assert_eq!(ring.seq_commit(index).load(), committed(seq));
        let mut image = [0u8; 256];
        ring.read_slot(index, &mut image);
        let (word, slot) = decode_slot(&image).expect("a well-formed slot");
        assert_eq!(word, committed(seq));
        assert_eq!(slot.values_len_bytes as usize, len);
        assert_eq!(slot.payload_slot, index);
        assert_eq!(slot.pool_id, pool_id);
        assert_eq!(slot.payload_offset, 0);
        assert_eq!(slot.timestamp_ns, timestamp);
        assert_eq!(slot.meta_version, 0);
        assert_eq!(slot.tensor, tensor);
        let payload = ring
            .pool(pool_id)
            .and_then(|p| p.slot_bytes(index, len))
            .expect("payload in range");
        assert_eq!(payload, pattern(seq, len).as_slice());
    }

    let mut descriptors = Vec::new();
    pump_until(
        &mut producer,
        "two descriptors on the shared stream",
        |_| {
            poll_descriptors(&client, &mut shared, &mut descriptors);
            (descriptors.len() >= 2).then_some(())
        },
    );
    let expected = |seq| FrameDescriptor {
        stream_id: STREAM,
        epoch,
        seq,
        timestamp_ns: None,
        meta_version: None,
        trace_id: None,
    };
    assert_eq!(descriptors, vec![expected(0), expected(1)]);
    let counters = producer.counters();
    assert_eq!(counters.frames_published, 2);
    assert_eq!(counters.descriptors_dropped, 0);
    assert_eq!(counters.descriptors_unconnected, 0);
    assert_eq!(counters.protocol_errors, 0);

    let mut qos = Subscription::add(&client, "aeron:ipc", QOS_STREAM as i32).expect("qos");
    let report = pump_until(&mut producer, "a QosProducer", |_| {
        client.do_work().expect("test client duty cycle");
        // Reports sent before the two frames may still be in the log (the producer reads
        // the QoS stream itself, so its early reports are published too): wait for one
        // that counts both.
        let mut report = None;
        qos.poll(
            |bytes| {
                report = QosProducer::decode(bytes)
                    .ok()
                    .filter(|q| q.current_seq == 2)
                    .or(report)
            },
            16,
        )
        .expect("poll");
        report
    });
    assert_eq!(
        report,
        QosProducer {
            stream_id: STREAM,
            producer_id: producer.client_id(),
            epoch,
            current_seq: 2,
            watermark: None,
        }
    );
    assert!(producer.counters().qos_sent > 0);

    // Dropping the producer detaches: the driver ends the lease at once.
    let mut control = Subscription::add(&client, "aeron:ipc", CONTROL_STREAM as i32)
        .expect("control subscription");
    let lease_id = producer.grant().expect("attached").lease_id;
    drop(producer);
    let deadline = Instant::now() + DEADLINE;
    let mut reason = None;
    while reason.is_none() {
        assert!(Instant::now() < deadline, "no revocation after the detach");
        client.do_work().expect("test client duty cycle");
        control
            .poll(
                |bytes| {
                    if let Ok(revoked) = ShmLeaseRevokedDecoder::wrap(bytes) {
                        if revoked.lease_id() == lease_id {
                            reason = Some(revoked.reason());
                        }
                    }
                },
                16,
            )
            .expect("poll");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(reason, Some(LeaseRevokeReason::Detached));
}

#[test]
fn refusals_claims_and_sequence_numbers() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut producer = Producer::new(producer_config(&env)).expect("producer connects");
    attach(&mut producer);
    let ring = reader(&env, &producer);

    // Larger than every stride: refused, counted, no sequence used.
    let huge = vec![0u8; 65537];
    assert_eq!(
        producer.publish(&huge, &bytes_header(65537).expect("tensor"), 0),
        Err(PublishError::FrameTooLarge {
            len: 65537,
            max: 65536
        })
    );
    assert!(matches!(
        producer.claim(1 << 20),
        Err(PublishError::FrameTooLarge { .. })
    ));
    // A header consumers would drop is refused too.
    let short_header = bytes_header(100).expect("tensor");
    assert!(matches!(
        producer.publish(&[0u8; 50], &short_header, 0),
        Err(PublishError::InvalidTensor(
            TensorError::ExceedsPayload { .. }
        ))
    ));
    assert_eq!(producer.next_seq(), Some(0));

    // Ten frames: sequences 0..10, one per frame, wrapping the 8-slot ring.
    for seq in 0..10u64 {
        let len = 64 + seq as usize;
        let tensor = bytes_header(len).expect("tensor");
        assert_eq!(producer.publish(&pattern(seq, len), &tensor, seq), Ok(seq));
    }
    assert_eq!(ring.seq_commit(1).load(), committed(9));
    assert_eq!(ring.seq_commit(7).load(), committed(7));

    // Claim, fill in place, commit.
    let tensor = bytes_header(300).expect("tensor");
    let mut claim = producer.claim(300).expect("claim");
    assert_eq!(claim.seq(), 10);
    assert_eq!(claim.len(), 300);
    assert_eq!(ring.seq_commit(2).load(), in_progress(10));
    claim.payload_mut().copy_from_slice(&pattern(10, 300));
    assert_eq!(claim.commit(&tensor, 77), Ok(10));
    assert_eq!(ring.seq_commit(2).load(), committed(10));
    let mut image = [0u8; 256];
    ring.read_slot(2, &mut image);
    let (_, slot) = decode_slot(&image).expect("well-formed slot");
    assert_eq!(
        (slot.values_len_bytes, slot.pool_id, slot.timestamp_ns),
        (300, 1, 77)
    );
    assert_eq!(
        ring.pool(1).and_then(|p| p.slot_bytes(2, 300)),
        Some(pattern(10, 300).as_slice())
    );

    // A claim dropped without commit uses its sequence and leaves the slot IN-PROGRESS.
    let claim = producer.claim(10).expect("claim");
    assert_eq!(claim.seq(), 11);
    drop(claim);
    assert_eq!(ring.seq_commit(3).load(), in_progress(11));
    assert_eq!(
        producer.publish(&pattern(12, 10), &bytes_header(10).expect("tensor"), 0),
        Ok(12)
    );

    let counters = producer.counters();
    assert_eq!(counters.frames_published, 12);
    assert_eq!(counters.frames_too_large, 2);
    assert_eq!(counters.invalid_tensors, 1);
    assert_eq!(counters.claims_abandoned, 1);
    // Nobody subscribes to the shared descriptor stream here.
    assert_eq!(counters.descriptors_unconnected, 12);
    assert_eq!(counters.descriptors_dropped, 0);
}

#[test]
fn producer_reattaches_to_a_restarted_driver_with_a_larger_epoch() {
    let env = TestEnv::new();
    let driver = start_driver(&env);
    let mut producer = Producer::new(producer_config(&env)).expect("producer connects");
    let (_, first_epoch) = attach(&mut producer);
    let tensor = bytes_header(64).expect("tensor");
    for seq in 0..3 {
        assert_eq!(producer.publish(&pattern(seq, 64), &tensor, seq), Ok(seq));
    }

    let result = driver.stop();
    assert!(result.is_ok(), "the driver failed: {result:?}");
    pump_until(&mut producer, "the producer to stop publishing", |p| {
        (!p.is_attached()).then_some(())
    });
    assert_eq!(
        producer.publish(&pattern(0, 64), &tensor, 0),
        Err(PublishError::NotAttached)
    );

    let _driver = start_driver(&env);
    let (epoch, seen) = reattach(&mut producer);
    assert!(epoch > first_epoch, "epoch {epoch} after {first_epoch}");
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ProducerEvent::DriverShutdown(_) | ProducerEvent::LeaseLost
        )),
        "the loss of the first lease was reported: {seen:?}"
    );
    assert_eq!(producer.epoch(), Some(epoch));
    assert_eq!(producer.next_seq(), Some(0));
    assert_eq!(producer.publish(&pattern(0, 64), &tensor, 0), Ok(0));
    let ring = reader(&env, &producer);
    assert_eq!(ring.seq_commit(0).load(), committed(0));
    assert_eq!(
        ring.seq_commit(1).load(),
        0,
        "the new epoch's ring starts empty"
    );
    let counters = producer.counters();
    assert_eq!(counters.reattaches, 1);
    // The media driver was embedded in the stopped driver: the Aeron client was rebuilt.
    assert_eq!(counters.reconnects, 1);
    assert!(seen.contains(&ProducerEvent::MediaDriverLost), "{seen:?}");
    assert_eq!(counters.frames_published, 4);
}

#[test]
fn an_expired_lease_is_revoked_and_the_producer_reattaches_from_seq_zero() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut producer = Producer::new(producer_config(&env)).expect("producer connects");
    let (_, first_epoch) = attach(&mut producer);
    let tensor = bytes_header(64).expect("tensor");
    for seq in 0..5 {
        assert_eq!(producer.publish(&pattern(seq, 64), &tensor, seq), Ok(seq));
    }

    // No duty cycle for longer than the lease expiry (3 x 100 ms): no keepalives.
    std::thread::sleep(Duration::from_millis(700));
    let (epoch, seen) = reattach(&mut producer);
    assert_eq!(
        seen.first(),
        Some(&ProducerEvent::Revoked(LeaseRevokeReason::Expired)),
        "{seen:?}"
    );
    assert!(epoch > first_epoch);
    assert_eq!(producer.publish(&pattern(0, 64), &tensor, 0), Ok(0));
    assert_eq!(producer.counters().reconnects, 0);
}

#[test]
fn per_consumer_descriptor_streams_open_on_config_and_close_on_revoke() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let client = AeronClient::connect(env.aeron_dir(), DEADLINE).expect("test client");
    let mut private = Subscription::add(&client, "aeron:ipc", PRIVATE_DESCRIPTOR_STREAM as i32)
        .expect("private descriptor subscription");
    let control =
        Publication::add(&client, CHANNEL, CONTROL_STREAM as i32).expect("control publication");
    let mut producer = Producer::new(producer_config(&env)).expect("producer connects");
    let (_, epoch) = attach(&mut producer);

    let mut buf = [0u8; 256];
    let config = |consumer_id, descriptor_stream_id, channel: &'static [u8]| ConsumerConfig {
        stream_id: STREAM,
        consumer_id,
        use_shm: Bool::True,
        mode: Mode::Stream,
        descriptor_stream_id,
        control_stream_id: 0,
        payload_fallback_uri: b"",
        descriptor_channel: channel,
        control_channel: b"",
    };
    let len = config(77, PRIVATE_DESCRIPTOR_STREAM, CHANNEL.as_bytes())
        .encode(&mut buf)
        .expect("encode");
    offer(&control, &buf[..len]);
    pump_until(&mut producer, "consumer 77's stream", |p| {
        (p.consumer_stream(77) == Some(ConsumerStreamState::Ready)).then_some(())
    });

    let tensor = bytes_header(64).expect("tensor");
    assert_eq!(producer.publish(&pattern(0, 64), &tensor, 0), Ok(0));
    let mut descriptors = Vec::new();
    pump_until(&mut producer, "a descriptor on the private stream", |_| {
        poll_descriptors(&client, &mut private, &mut descriptors);
        (!descriptors.is_empty()).then_some(())
    });
    assert_eq!(
        descriptors,
        vec![FrameDescriptor {
            stream_id: STREAM,
            epoch,
            seq: 0,
            timestamp_ns: None,
            meta_version: None,
            trace_id: None,
        }]
    );

    // The consumer's lease ends: its stream closes.
    let len = ShmLeaseRevoked {
        timestamp_ns: 1,
        lease_id: 999,
        stream_id: STREAM,
        client_id: 77,
        role: Role::Consumer,
        reason: LeaseRevokeReason::Expired,
        error_message: b"",
    }
    .encode(&mut buf)
    .expect("encode");
    offer(&control, &buf[..len]);
    pump_until(&mut producer, "consumer 77's stream to close", |p| {
        p.consumer_stream(77).is_none().then_some(())
    });
    assert!(
        producer.is_attached(),
        "another lease's revocation keeps ours"
    );

    // A later ConsumerConfig declining the private stream closes it too.
    let len = config(78, PRIVATE_DESCRIPTOR_STREAM + 1, CHANNEL.as_bytes())
        .encode(&mut buf)
        .expect("encode");
    offer(&control, &buf[..len]);
    pump_until(&mut producer, "consumer 78's stream", |p| {
        p.consumer_stream(78).is_some().then_some(())
    });
    let len = config(78, 0, b"").encode(&mut buf).expect("encode");
    offer(&control, &buf[..len]);
    pump_until(&mut producer, "consumer 78's stream to close", |p| {
        p.consumer_stream(78).is_none().then_some(())
    });

    // Nothing more arrives on the closed stream.
    assert_eq!(producer.publish(&pattern(1, 64), &tensor, 1), Ok(1));
    let quiet_until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < quiet_until {
        producer.do_work(monotonic_now_ns()).expect("duty cycle");
        poll_descriptors(&client, &mut private, &mut descriptors);
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(descriptors.len(), 1, "{descriptors:?}");
    let counters = producer.counters();
    assert_eq!(counters.consumer_streams_opened, 2);
    assert_eq!(counters.consumer_streams_closed, 2);
    assert_eq!(counters.consumer_configs_rejected, 0);
}

#[test]
fn regions_outside_the_allowed_dirs_are_not_mapped_and_the_lease_is_given_back() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let client = AeronClient::connect(env.aeron_dir(), DEADLINE).expect("test client");
    let mut control = Subscription::add(&client, "aeron:ipc", CONTROL_STREAM as i32)
        .expect("control subscription");
    let elsewhere = env.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("creating a directory");
    let config = producer_config(&env).allowed_base_dirs([elsewhere]);
    let mut producer = Producer::new(config).expect("producer connects");

    let epoch = pump_until(&mut producer, "a refused mapping", |p| {
        p.events().find_map(|event| match event {
            ProducerEvent::MapFailed { epoch } => Some(epoch),
            _ => None,
        })
    });
    assert!(!producer.is_attached());
    assert_eq!(
        producer.publish(&[0u8; 8], &bytes_header(8).expect("tensor"), 0),
        Err(PublishError::NotAttached)
    );
    assert!(producer.counters().map_failures >= 1);

    // The producer detached at once: the driver revokes the lease as DETACHED.
    let deadline = Instant::now() + DEADLINE;
    let mut detached = false;
    while !detached {
        assert!(
            Instant::now() < deadline,
            "the lease of epoch {epoch} was not given back"
        );
        producer.do_work(monotonic_now_ns()).expect("duty cycle");
        client.do_work().expect("test client duty cycle");
        control
            .poll(
                |bytes| {
                    if let Ok(revoked) = ShmLeaseRevokedDecoder::wrap(bytes) {
                        detached |= revoked.stream_id() == STREAM
                            && revoked.role() == Role::Producer
                            && revoked.reason() == LeaseRevokeReason::Detached;
                    }
                },
                16,
            )
            .expect("poll");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn relative_allowed_base_dirs_are_refused_up_front() {
    let config = ProducerConfig::new(STREAM).allowed_base_dirs(["relative/dir"]);
    assert!(matches!(
        Producer::new(config),
        Err(tensorpool::client::producer::ProducerError::AllowedBaseDirs(_))
    ));
}
