//! QoS from code (Wire Spec §10.4, §10.5), descriptor stamps (§10.2.1) and the consumer's
//! FALLBACK state (§10.1.3, §15.12), with the real producer and consumer against a driver
//! on a thread of the test:
//!
//! - a producer sees each of two consumers' lag and drops from their `QosConsumer`, and a
//!   `QosMonitor` that holds no lease sees the producer and both consumers;
//! - trace id and publish time set per frame on both publish paths reach the consumer,
//!   0 meaning absent;
//! - a `ConsumerConfig` with `use_shm = FALSE` puts the consumer in FALLBACK (event,
//!   state, descriptors dropped and counted) and `use_shm = TRUE` brings it back.
//!
//! Every test has its own directory (Aeron and SHM) and bounds every wait.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    client_streams, DriverSettings, InThreadDriver, TestEnv, CHANNEL, CONTROL_STREAM, DEADLINE,
    KEEPALIVE_INTERVAL as KEEPALIVE, SEPARATE_ANNOUNCE_STREAM as ANNOUNCE_STREAM,
    STATIC_STREAM as STREAM,
};
use tensorpool::client::consumer::{
    Consumer, ConsumerConfig, ConsumerEvent, ConsumerState, DropReason, FramePoll,
};
use tensorpool::client::producer::{
    monotonic_now_ns, DescriptorStamp, Producer, ProducerConfig, ProducerEvent,
};
use tensorpool::client::qos::{QosMonitor, QosReport};
use tensorpool::client::tensor::bytes_header;
use tensorpool::protocol::control::{Bool, ConsumerConfig as ConsumerConfigMsg, Mode};
use tensorpool::transport::Publication;

fn start_driver(env: &TestEnv) -> InThreadDriver {
    InThreadDriver::start(
        env,
        &DriverSettings {
            instance_id: "tp-qos-test".into(),
            ..DriverSettings::separate_announce()
        },
    )
}

fn producer(env: &TestEnv) -> Producer {
    Producer::new(
        ProducerConfig::new(STREAM)
            .streams(client_streams(env, ANNOUNCE_STREAM))
            .allowed_base_dirs([env.shm_dir()])
            .keepalive_interval(KEEPALIVE)
            .attach_timeout(Duration::from_millis(500))
            .qos_interval(Duration::from_millis(50)),
    )
    .expect("producer connects")
}

fn consumer(env: &TestEnv, consumer_id: u32) -> Consumer {
    Consumer::connect(ConsumerConfig {
        consumer_id,
        allowed_base_dirs: vec![env.shm_dir()],
        announce_period: support::ANNOUNCE_PERIOD,
        keepalive_interval: Some(KEEPALIVE),
        attach_timeout: Duration::from_millis(500),
        qos_interval: Duration::from_millis(50),
        ..ConsumerConfig::new(client_streams(env, ANNOUNCE_STREAM), STREAM)
    })
    .expect("consumer connects")
}

/// Runs every duty cycle until `probe` yields a value.
fn pump_until<T>(
    what: &str,
    producer: &mut Producer,
    consumers: &mut [&mut Consumer],
    mut probe: impl FnMut(&mut Producer, &mut [&mut Consumer]) -> Option<T>,
) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let now = monotonic_now_ns();
        producer.do_work(now).expect("producer duty cycle");
        for c in consumers.iter_mut() {
            c.do_work(now).expect("consumer duty cycle");
        }
        if let Some(value) = probe(producer, consumers) {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn attached(p: &Producer, cs: &[&mut Consumer]) -> bool {
    p.is_attached() && cs.iter().all(|c| c.is_ready())
}

/// Publishes one frame of `len` bytes; returns its sequence.
fn publish(p: &mut Producer, len: usize, stamp: DescriptorStamp) -> u64 {
    let tensor = bytes_header(len).expect("tensor");
    let payload = vec![0x5A; len];
    p.publish_stamped(&payload, &tensor, 1_000, stamp)
        .expect("published")
}

#[test]
fn a_producer_sees_each_consumers_lag_and_a_lease_less_monitor_sees_all() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut p = producer(&env);
    let (mut keeping_up, mut lagging) = (consumer(&env, 0x51), consumer(&env, 0x52));
    let mut monitor =
        QosMonitor::connect(&client_streams(&env, ANNOUNCE_STREAM)).expect("monitor connects");
    pump_until(
        "attach",
        &mut p,
        &mut [&mut keeping_up, &mut lagging],
        |p, cs| attached(p, cs).then_some(()),
    );
    // Six frames in a ring of eight: the lagging consumer reads two of them.
    for _ in 0..6 {
        publish(&mut p, 64, DescriptorStamp::NONE);
    }
    let mut read = (0, 0);
    pump_until(
        "both consumers read",
        &mut p,
        &mut [&mut keeping_up, &mut lagging],
        |_, cs| {
            if read.0 < 6 {
                if let FramePoll::Delivered(()) = cs[0].poll_frame(|_| ()).expect("poll") {
                    read.0 += 1;
                }
            }
            if read.1 < 2 {
                if let FramePoll::Delivered(()) = cs[1].poll_frame(|_| ()).expect("poll") {
                    read.1 += 1;
                }
            }
            (read == (6, 2)).then_some(())
        },
    );
    let mut heard = Vec::new();
    let lags = pump_until(
        "QoS of both consumers",
        &mut p,
        &mut [&mut keeping_up, &mut lagging],
        |p, _| {
            monitor
                .poll(monotonic_now_ns(), |r| heard.push(*r))
                .expect("monitor polls");
            match (p.consumer_lag(0x51), p.consumer_lag(0x52)) {
                (Some(0), Some(4)) => Some((0, 4)),
                _ => None,
            }
        },
    );
    assert_eq!(lags, (0, 4), "seq 5 published; one saw 5, the other 1");
    let reports: Vec<_> = p
        .consumer_qos()
        .map(|c| (c.consumer_id(), c.report.last_seq_seen))
        .collect();
    assert_eq!(reports, vec![(0x51, 5), (0x52, 1)]);
    for c in p.consumer_qos() {
        let own = if c.consumer_id() == 0x51 {
            &keeping_up
        } else {
            &lagging
        };
        assert!(c.report.drops_gap <= own.counters().qos_drops_gap());
        assert_eq!(c.report.mode, Mode::Stream);
    }
    // The monitor, with no lease, heard the producer and both consumers of the stream.
    pump_until(
        "the monitor's view",
        &mut p,
        &mut [&mut keeping_up, &mut lagging],
        |_, _| {
            monitor
                .poll(monotonic_now_ns(), |r| heard.push(*r))
                .expect("monitor polls");
            let stream = monitor.board().stream(STREAM)?;
            (stream.lag(0x51) == Some(0) && stream.lag(0x52) == Some(4)).then_some(())
        },
    );
    let stream = monitor.board().stream(STREAM).expect("heard");
    assert_eq!(
        stream.producer().map(|q| q.producer_id),
        Some(p.client_id())
    );
    assert_eq!(stream.consumers().count(), 2);
    assert!(heard
        .iter()
        .any(|r| matches!(r, QosReport::Producer(q) if q.stream_id == STREAM)));
    assert!(heard
        .iter()
        .any(|r| matches!(r, QosReport::Consumer(q) if q.consumer_id == 0x52)));
    assert_eq!(monitor.board().counters().malformed, 0);
    // A consumer that leaves is forgotten by the producer when its lease ends.
    drop(lagging);
    pump_until(
        "the lagging consumer forgotten",
        &mut p,
        &mut [&mut keeping_up],
        |p, _| p.consumer_lag(0x52).is_none().then_some(()),
    );
    assert_eq!(p.consumer_qos().count(), 1);
}

#[test]
fn trace_ids_and_publish_times_reach_the_consumer_and_zero_means_absent() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut p = producer(&env);
    let mut c = consumer(&env, 0);
    pump_until("attach", &mut p, &mut [&mut c], |p, cs| {
        attached(p, cs).then_some(())
    });
    let tensor = bytes_header(16).expect("tensor");
    p.publish_stamped(
        &[1; 16],
        &tensor,
        111,
        DescriptorStamp {
            trace_id: 0xDEAD_BEEF_0000_0001,
            timestamp_ns: 222,
        },
    )
    .expect("stamped publish");
    let mut claim = p.claim(16).expect("claim");
    claim.payload_mut().fill(2);
    claim
        .commit_stamped(&tensor, 333, DescriptorStamp::traced(7))
        .expect("stamped commit");
    p.publish(&[3; 16], &tensor, 444).expect("plain publish");
    let mut seen = Vec::new();
    pump_until("three frames", &mut p, &mut [&mut c], |_, cs| {
        if let FramePoll::Delivered(row) = cs[0]
            .poll_frame(|f| {
                (
                    f.payload()[0],
                    f.timestamp_ns(),
                    f.trace_id(),
                    f.descriptor_timestamp_ns(),
                )
            })
            .expect("poll")
        {
            seen.push(row);
        }
        (seen.len() == 3).then_some(())
    });
    assert_eq!(
        seen,
        vec![
            (1, 111, Some(0xDEAD_BEEF_0000_0001), Some(222)),
            (2, 333, Some(7), None),
            (3, 444, None, None),
        ]
    );
}

/// A `ConsumerConfig` message for `consumer_id`, as a supervisor sends it (§10.1.3).
fn consumer_config(consumer_id: u32, use_shm: Bool, uri: &str) -> Vec<u8> {
    let msg = ConsumerConfigMsg {
        stream_id: STREAM,
        consumer_id,
        use_shm,
        mode: Mode::Stream,
        descriptor_stream_id: 0,
        control_stream_id: 0,
        payload_fallback_uri: uri.as_bytes(),
        descriptor_channel: b"",
        control_channel: b"",
    };
    let mut buf = vec![0u8; 1024];
    let len = msg.encode(&mut buf).expect("encodes");
    buf.truncate(len);
    buf
}

#[test]
fn a_consumer_told_not_to_use_shm_reports_fallback_and_reads_nothing_until_told_again() {
    let env = TestEnv::new();
    let _driver = start_driver(&env);
    let mut p = producer(&env);
    let mut c = consumer(&env, 0x77);
    pump_until("attach", &mut p, &mut [&mut c], |p, cs| {
        attached(p, cs).then_some(())
    });
    assert_eq!(c.state(), ConsumerState::Mapped);
    // The driver answers the consumer's hello with a ConsumerConfig of its own (use_shm =
    // TRUE); the latest ConsumerConfig decides, so the supervisor speaks after it.
    pump_until(
        "the driver's ConsumerConfig",
        &mut p,
        &mut [&mut c],
        |_, cs| (cs[0].counters().consumer_configs >= 1).then_some(()),
    );
    c.events().for_each(drop);
    let client = tensorpool::transport::AeronClient::connect(env.aeron_dir(), DEADLINE)
        .expect("supervisor client");
    let supervisor =
        Publication::add(&client, CHANNEL, CONTROL_STREAM as i32).expect("control publication");
    let offer = |bytes: &[u8]| {
        let deadline = Instant::now() + DEADLINE;
        while !supervisor.offer(bytes).expect("offer").is_published() {
            assert!(Instant::now() < deadline, "control stream not connected");
            client.do_work().expect("supervisor duty cycle");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    offer(&consumer_config(
        0x77,
        Bool::False,
        "aeron:udp?endpoint=bridge:40123",
    ));
    let fallback = pump_until("FALLBACK", &mut p, &mut [&mut c], |_, cs| {
        cs[0].events().find_map(|e| match e {
            ConsumerEvent::Fallback { fallback } => Some(fallback),
            _ => None,
        })
    });
    assert_eq!(fallback.uri, "aeron:udp?endpoint=bridge:40123");
    assert!(fallback.supported_scheme);
    assert_eq!(c.state(), ConsumerState::Fallback);
    assert_eq!(c.fallback(), Some(&fallback));
    assert_eq!(c.mapped_epoch(), None, "no SHM stays mapped in FALLBACK");
    let seq = publish(&mut p, 32, DescriptorStamp::NONE);
    let dropped = pump_until(
        "the descriptor dropped",
        &mut p,
        &mut [&mut c],
        |_, cs| match cs[0].poll_frame(|_| ()).expect("poll") {
            FramePoll::Dropped(reason) => Some(reason),
            FramePoll::Delivered(()) => panic!("frame {seq} read from SHM in FALLBACK"),
            _ => None,
        },
    );
    assert_eq!(dropped, DropReason::Fallback);
    assert_eq!(
        (c.counters().drops_fallback, c.counters().fallbacks),
        (1, 1)
    );
    // An unknown scheme is reported as unsupported.
    offer(&consumer_config(0x77, Bool::False, "carrier-pigeon://coop"));
    let fallback = pump_until("the second FALLBACK", &mut p, &mut [&mut c], |_, cs| {
        cs[0].events().find_map(|e| match e {
            ConsumerEvent::Fallback { fallback } => Some(fallback),
            _ => None,
        })
    });
    assert!(!fallback.supported_scheme);
    // use_shm = TRUE: back to SHM, frames delivered again.
    offer(&consumer_config(0x77, Bool::True, ""));
    pump_until("SHM resumed", &mut p, &mut [&mut c], |_, cs| {
        cs[0]
            .events()
            .any(|e| e == ConsumerEvent::ShmResumed)
            .then_some(())
    });
    pump_until("mapped again", &mut p, &mut [&mut c], |_, cs| {
        cs[0].is_ready().then_some(())
    });
    assert_eq!(c.state(), ConsumerState::Mapped);
    publish(&mut p, 32, DescriptorStamp::NONE);
    pump_until("a frame after FALLBACK", &mut p, &mut [&mut c], |_, cs| {
        matches!(
            cs[0].poll_frame(|_| ()).expect("poll"),
            FramePoll::Delivered(())
        )
        .then_some(())
    });
    assert!(p.events().all(|e| !matches!(e, ProducerEvent::Revoked(_))));
}

#[test]
fn a_stale_activity_timestamp_unmaps_the_consumer_and_a_clean_producer_zero_fills_beyond_ndims() {
    let env = TestEnv::new();
    // The driver refreshes activity once per announce period: a long one leaves the
    // forged value below in place for the whole test.
    let mut config = DriverSettings {
        instance_id: "tp-qos-test".into(),
        ..DriverSettings::separate_announce()
    }
    .config(&env);
    config.policies.announce_period_ms = 60_000;
    let _driver = InThreadDriver::start_with_config(&env, config);
    let mut p = producer(&env);
    let mut c = Consumer::connect(ConsumerConfig {
        activity_timeout: Some(Duration::from_secs(30)),
        ..consumer_config_for(&env)
    })
    .expect("consumer connects");
    pump_until("attach", &mut p, &mut [&mut c], |p, cs| {
        attached(p, cs).then_some(())
    });

    // §8.2 on both publish paths: whatever the caller left beyond ndims goes out as 0.
    let mut dirty = bytes_header(16).expect("tensor");
    dirty.dims[4] = 9;
    dirty.strides[6] = 3;
    let first = p.publish(&[1; 16], &dirty, 1).expect("publish");
    let mut claim = p.claim(16).expect("claim");
    claim.payload_mut().fill(2);
    let second = claim.commit(&dirty, 2).expect("commit");
    let grant = p.grant().expect("attached").clone();
    let allowed = tensorpool::shm::open::AllowedBaseDirs::new([env.shm_dir()]).expect("dirs");
    let ring = tensorpool::client::MappedEpoch::map(
        &grant,
        &allowed,
        tensorpool::shm::open::Access::ReadOnly,
    )
    .expect("maps");
    for seq in [first, second] {
        let mut image = [0u8; tensorpool::shm::layout::HEADER_SLOT_BYTES];
        ring.read_slot(
            tensorpool::shm::layout::header_index(seq, grant.header_nslots),
            &mut image,
        );
        let (_, slot) = tensorpool::shm::layout::decode_slot(&image).expect("slot");
        assert_eq!(
            (slot.tensor.dims, slot.tensor.strides),
            ([16, 0, 0, 0, 0, 0, 0, 0], [0; 8]),
            "seq {seq}"
        );
    }
    pump_until("both frames", &mut p, &mut [&mut c], |_, cs| {
        (cs[0].poll_frame(|_| ()).expect("poll") == FramePoll::Empty
            && cs[0].counters().frames_delivered == 2)
            .then_some(())
    });
    assert_eq!(
        c.counters().tensors_beyond_ndims,
        0,
        "nothing forged reached the consumer"
    );

    // A hostile activity timestamp: ancient. The consumer gives the regions up (§15.14).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(grant.header_uri.path())
        .expect("header ring file");
    std::os::unix::fs::FileExt::write_all_at(&file, &1u64.to_le_bytes(), 56)
        .expect("forged activity timestamp");
    c.events().for_each(drop);
    pump_until(
        "the stale regions unmapped",
        &mut p,
        &mut [&mut c],
        |_, cs| {
            cs[0]
                .events()
                .any(|e| {
                    e == ConsumerEvent::Unmapped {
                        reason: tensorpool::client::consumer::UnmapReason::ActivityStale,
                    }
                })
                .then_some(())
        },
    );
    assert_eq!(c.counters().activity_stale, 1);
    assert_eq!(c.state(), ConsumerState::Unmapped);
}

fn consumer_config_for(env: &TestEnv) -> ConsumerConfig {
    ConsumerConfig {
        allowed_base_dirs: vec![env.shm_dir()],
        announce_period: support::ANNOUNCE_PERIOD,
        keepalive_interval: Some(KEEPALIVE),
        attach_timeout: Duration::from_millis(500),
        qos_interval: Duration::from_millis(50),
        ..ConsumerConfig::new(client_streams(env, ANNOUNCE_STREAM), STREAM)
    }
}
