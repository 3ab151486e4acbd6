//! Many client-library clients on one SHM driver: every `Producer` and `Consumer` has an
//! Aeron client of its own, and each one adds a publication and a subscription on the
//! shared control stream, so the media driver's to-clients broadcast grows with the square
//! of the number of clients. The driver's own Aeron client must keep up with it, without
//! even needing to be rebuilt (it once was lapped after about 40 pairs, closed, and took
//! `tp-driver` down: docs/DESIGN.md, "Draining the to-clients broadcast").
//!
//! The driver runs `run_until` on a thread of the test with its embedded media driver, in
//! its own Aeron and SHM directories.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    client_streams, DriverSettings, InThreadDriver, TestClient, TestEnv, DEADLINE,
    SEPARATE_ANNOUNCE_STREAM as ANNOUNCE_STREAM, STATIC_STREAM,
};
use tensorpool::client::consumer::{Consumer, ConsumerConfig, ConsumerEvent};
use tensorpool::client::producer::{monotonic_now_ns, Producer, ProducerConfig, ProducerEvent};
use tensorpool::config::{DriverConfig, NoEnv};
use tensorpool::protocol::driver::Role;

/// Producer + consumer pairs, one stream each (it failed at pair 39–42 before the fix).
const PAIRS: u32 = 50;
/// First stream id of the pairs (after the support configuration's static stream).
const FIRST_STREAM: u32 = STATIC_STREAM + 1;

/// The support configuration with a static stream per pair and 1 s keepalives.
fn driver_config(env: &TestEnv, settings: &DriverSettings) -> DriverConfig {
    // The default keepalive period (1 s, expiry after 3 s), as an operator's clients have:
    // the test's single thread pumps 100 clients and blocks while its probe attaches.
    let mut toml = settings.toml(env).replace(
        "lease_keepalive_interval_ms = 100",
        "lease_keepalive_interval_ms = 1000",
    );
    assert!(toml.contains("lease_keepalive_interval_ms = 1000"));
    for stream_id in FIRST_STREAM..FIRST_STREAM + PAIRS {
        toml.push_str(&format!(
            "\n[streams.pair{stream_id}]\nstream_id = {stream_id}\nprofile = \"small\"\n"
        ));
    }
    DriverConfig::from_toml_str(&toml, &NoEnv).expect("the test configuration with more streams")
}

/// One stream's producer and consumer, each with its own Aeron client.
struct Pair {
    producer: Producer,
    consumer: Consumer,
    producer_attached: bool,
    consumer_attached: bool,
}

impl Pair {
    fn connect(env: &TestEnv, stream_id: u32) -> Self {
        let streams = client_streams(env, ANNOUNCE_STREAM);
        let producer = Producer::new(
            ProducerConfig::new(stream_id)
                .streams(streams.clone())
                .allowed_base_dirs([env.shm_dir()])
                .attach_timeout(Duration::from_secs(2)),
        )
        .unwrap_or_else(|e| panic!("producer of stream {stream_id} connects: {e}"));
        let consumer = Consumer::connect(ConsumerConfig {
            allowed_base_dirs: vec![env.shm_dir()],
            attach_timeout: Duration::from_secs(2),
            ..ConsumerConfig::new(streams, stream_id)
        })
        .unwrap_or_else(|e| panic!("consumer of stream {stream_id} connects: {e}"));
        Self {
            producer,
            consumer,
            producer_attached: false,
            consumer_attached: false,
        }
    }

    fn pump(&mut self) {
        let now_ns = monotonic_now_ns();
        let stream_id = self.producer.stream_id();
        self.producer
            .do_work(now_ns)
            .unwrap_or_else(|e| panic!("producer of stream {stream_id}: {e}"));
        self.consumer
            .do_work(now_ns)
            .unwrap_or_else(|e| panic!("consumer of stream {stream_id}: {e}"));
        for event in self.producer.events() {
            if matches!(event, ProducerEvent::Attached { .. }) {
                self.producer_attached = true;
            }
        }
        for event in self.consumer.events() {
            if matches!(event, ConsumerEvent::Attached { .. }) {
                self.consumer_attached = true;
            }
        }
    }
}

#[test]
fn fifty_producer_consumer_pairs_leave_the_driver_serving() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-many-clients".into(),
        ..DriverSettings::separate_announce()
    };
    let driver = InThreadDriver::start_with_config(&env, driver_config(&env, &settings));

    let mut pairs: Vec<Pair> = Vec::new();
    for stream_id in FIRST_STREAM..FIRST_STREAM + PAIRS {
        pairs.push(Pair::connect(&env, stream_id));
        // Every client keeps pumping, as an application's would.
        for pair in &mut pairs {
            pair.pump();
        }
        assert!(
            !driver.is_finished(),
            "the driver stopped after {} pairs connected",
            pairs.len()
        );
    }

    let deadline = Instant::now() + DEADLINE;
    while !pairs
        .iter()
        .all(|p| p.producer_attached && p.consumer_attached)
    {
        assert!(
            !driver.is_finished(),
            "the driver stopped while pairs attached"
        );
        assert!(
            Instant::now() < deadline,
            "not every pair attached in {DEADLINE:?}: {} producers, {} consumers",
            pairs.iter().filter(|p| p.producer_attached).count(),
            pairs.iter().filter(|p| p.consumer_attached).count()
        );
        for pair in &mut pairs {
            pair.pump();
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    // Still serving: a new client's attach is answered, and every lease is still held.
    let mut probe = TestClient::for_settings(driver.aeron_dir(), &settings);
    let request = support::attach_request(FIRST_STREAM, 0x7000_0001, Role::Consumer);
    probe
        .attach(&request)
        .expect_ok(0x7000_0001, Role::Consumer);
    for pair in &mut pairs {
        pair.pump();
        assert!(pair.producer.is_attached(), "a producer lost its lease");
        assert!(
            pair.consumer.lease_id().is_some(),
            "a consumer lost its lease"
        );
    }
    assert!(!driver.is_finished(), "the driver stopped");
    // And it kept up: its Aeron client never closed and had to be rebuilt.
    let recoveries = settings.counter_label("aeron client recoveries");
    assert_eq!(
        support::counter_value(driver.aeron_dir(), &recoveries),
        Some(0)
    );
    drop(probe);
    drop(pairs);
    driver.stop().expect("the driver ends cleanly");
}
