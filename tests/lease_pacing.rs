//! Driver Model §4.4 against drivers configured unlike the client defaults: a client left
//! at its defaults keeps its lease alive with whatever deadline the driver grants, and
//! does not flood a driver that grants long leases.

mod support;

use std::time::{Duration, Instant};
use support::{
    client_streams, DriverSettings, InThreadDriver, TestEnv, CONTROL_STREAM, STATIC_STREAM,
};
use tensorpool::client::consumer::{Consumer, ConsumerConfig, ConsumerEvent};
use tensorpool::client::producer::{Producer, ProducerConfig, ProducerEvent};
use tensorpool::clock::monotonic_now_ns;

/// A driver whose leases last `keepalive_ms * grace` ms.
fn start_driver(
    env: &TestEnv,
    name: &str,
    keepalive_ms: u32,
    grace: u32,
) -> (InThreadDriver, DriverSettings) {
    let settings = DriverSettings {
        instance_id: name.into(),
        ..DriverSettings::shared_announce()
    };
    let mut config = settings.config(env);
    config.policies.lease_keepalive_interval_ms = keepalive_ms;
    config.policies.lease_expiry_grace_intervals = grace;
    (InThreadDriver::start_with_config(env, config), settings)
}

/// A producer and a consumer of the static stream with every pacing setting at its
/// default.
fn default_clients(env: &TestEnv) -> (Producer, Consumer) {
    let streams = client_streams(env, CONTROL_STREAM);
    let producer = Producer::new(
        ProducerConfig::new(STATIC_STREAM)
            .streams(streams.clone())
            .allowed_base_dirs([env.shm_dir()]),
    )
    .expect("producer connects");
    let consumer = Consumer::connect(ConsumerConfig {
        allowed_base_dirs: vec![env.shm_dir()],
        ..ConsumerConfig::new(streams, STATIC_STREAM)
    })
    .expect("consumer connects");
    assert_eq!(producer.config().keepalive_interval, None);
    assert_eq!(consumer.config().keepalive_interval, None);
    (producer, consumer)
}

/// What went wrong with the leases while both clients ran.
#[derive(Debug, Default, PartialEq, Eq)]
struct LeaseTrouble {
    producer_events: Vec<String>,
    consumer_events: Vec<String>,
}

/// Runs both duty cycles for `period`, collecting every event other than the first
/// attach of each.
fn run_for(producer: &mut Producer, consumer: &mut Consumer, period: Duration) -> LeaseTrouble {
    let mut trouble = LeaseTrouble::default();
    let end = Instant::now() + period;
    while Instant::now() < end {
        let now = monotonic_now_ns();
        producer.do_work(now).expect("producer duty cycle");
        consumer.do_work(now).expect("consumer duty cycle");
        for event in producer.events() {
            if !matches!(event, ProducerEvent::Attached { .. }) {
                trouble.producer_events.push(format!("{event:?}"));
            }
        }
        for event in consumer.events() {
            if !matches!(event, ConsumerEvent::Attached { .. }) {
                trouble.consumer_events.push(format!("{event:?}"));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    trouble
}

fn attach_both(producer: &mut Producer, consumer: &mut Consumer) {
    support::wait_until("both clients attached", support::DEADLINE, || {
        let now = monotonic_now_ns();
        producer.do_work(now).expect("producer duty cycle");
        consumer.do_work(now).expect("consumer duty cycle");
        (producer.is_attached() && consumer.is_ready()).then_some(())
    });
}

fn counter(env: &TestEnv, settings: &DriverSettings, name: &str) -> i64 {
    support::counter_value(&env.aeron_dir(), &settings.counter_label(name))
        .unwrap_or_else(|| panic!("the driver's {name:?} counter exists"))
}

#[test]
fn default_clients_hold_short_leases_of_a_fast_driver() {
    let env = TestEnv::new();
    // 100 ms keepalives, grace 3: leases end 300 ms after each keepalive, where the
    // clients' old fixed 1 s interval lost them every time.
    let (_driver, settings) = start_driver(&env, "tp-pacing-fast", 100, 3);
    let (mut producer, mut consumer) = default_clients(&env);
    attach_both(&mut producer, &mut consumer);
    let epoch = producer.epoch().expect("attached");
    let lease_ids = (producer.grant().map(|g| g.lease_id), consumer.lease_id());
    // Each client paces from the deadline of its own grant, so the two periods differ by
    // the time between the grants; both are a third of what remained of a 300 ms lease.
    for period in [producer.keepalive_period(), consumer.keepalive_period()] {
        let period = period.expect("attached");
        assert!(
            period <= Duration::from_millis(100),
            "a third of a 300 ms lease at most, got {period:?}"
        );
    }

    let trouble = run_for(&mut producer, &mut consumer, Duration::from_secs(10));

    assert_eq!(trouble, LeaseTrouble::default(), "no lease event in 10 s");
    assert_eq!(producer.epoch(), Some(epoch), "no epoch change");
    assert_eq!(consumer.mapped_epoch(), Some(epoch));
    assert_eq!(
        (producer.grant().map(|g| g.lease_id), consumer.lease_id()),
        lease_ids
    );
    assert_eq!(counter(&env, &settings, "lease expiries"), 0);
    assert_eq!(counter(&env, &settings, "lease revocations"), 0);
    let keepalives = counter(&env, &settings, "keepalives");
    assert!(
        keepalives >= 2 * 90,
        "both clients kept alive about every 100 ms for 10 s: {keepalives} keepalives"
    );
}

#[test]
fn default_clients_keep_long_leases_alive_sparingly() {
    let env = TestEnv::new();
    // 10 s keepalives, grace 3: leases last 30 s.
    let (_driver, settings) = start_driver(&env, "tp-pacing-slow", 10_000, 3);
    let (mut producer, mut consumer) = default_clients(&env);
    attach_both(&mut producer, &mut consumer);
    for period in [producer.keepalive_period(), consumer.keepalive_period()] {
        let period = period.expect("attached");
        assert!(
            period >= Duration::from_secs(9) && period <= Duration::from_secs(10),
            "a third of a 30 s lease, got {period:?}"
        );
    }

    let trouble = run_for(&mut producer, &mut consumer, Duration::from_secs(4));

    assert_eq!(trouble, LeaseTrouble::default());
    assert_eq!(
        counter(&env, &settings, "keepalives"),
        0,
        "no keepalive is due within 4 s of a 30 s lease"
    );
}
