//! Fault tests of the clients against a real `tp-driver` process (Driver Model §4.4, §4.8,
//! §4.9, §4.12, §4.13): a producer killed with SIGKILL, the driver killed and restarted,
//! and a driver shutdown request. Producer and consumers are child processes (this test
//! binary re-executed in a role, see `support/system.rs`) that publish and verify
//! self-checking frames and report what they see as JSON lines; every child is killed by
//! pid when its guard drops, whatever the outcome.

#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{
    counter_value, DriverSettings, OwnedMessage, ProcessDriver, TestClient, TestEnv, DEADLINE,
    STATIC_STREAM, TOKEN,
};
use system::{JsonLine, Role, RoleProcess, RoleSpec};
use tensorpool::client::consumer::{
    monotonic_now_ns, Consumer, ConsumerConfig, ConsumerEvent, FramePoll, UnmapReason,
};
use tensorpool::client::producer::{Producer, ProducerConfig};
use tensorpool::protocol::driver::{LeaseRevokeReason, Role as LeaseRole, ShutdownReason};

/// Producer rate: enough frames to see flow quickly, little CPU.
const RATE: u64 = 2_000;
/// Frames a consumer must deliver (and verify) in an epoch before it counts as flowing.
const FLOWING: u64 = 100;
/// Aeron's driver timeout for the driver-restart test (Aeron's default is 10 s): how long
/// clients take to notice a killed media driver, and how long the restarted one waits for
/// the dead one's heartbeat to age out.
const AERON_DRIVER_TIMEOUT_MS: &str = "2000";
/// Longest wait for the restarted driver and the clients to reconnect.
const RESTART_DEADLINE: Duration = Duration::from_secs(25);

#[test]
#[ignore = "a child process role, started by the other tests"]
fn child_role() {
    system::run_role_from_env();
}

/// A driver, two consumers and a producer (publishing until stopped) in one environment.
struct Cluster {
    // Field order is drop order: clients before the driver.
    consumers: Vec<RoleProcess>,
    producer: Option<RoleProcess>,
    driver: ProcessDriver,
    settings: DriverSettings,
    config: PathBuf,
    driver_env: Vec<(&'static str, &'static str)>,
    client_env: Vec<(String, String)>,
    env: TestEnv,
}

impl Cluster {
    /// Starts the driver (with `driver_env`) and two consumers, and waits until both
    /// consumers are attached.
    fn start(
        instance: &str,
        driver_env: &[(&'static str, &'static str)],
        client_env: &[(&str, &str)],
    ) -> Self {
        let env = TestEnv::new();
        let settings = DriverSettings {
            instance_id: instance.into(),
            ..DriverSettings::shared_announce()
        };
        let config = env.write("driver.toml", &settings.toml(&env));
        let mut driver = ProcessDriver::start(&env, "driver", &config, driver_env);
        driver.wait_running(DEADLINE);
        let client_env: Vec<(String, String)> = client_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut cluster = Self {
            consumers: Vec::new(),
            producer: None,
            driver,
            settings,
            config,
            driver_env: driver_env.to_vec(),
            client_env,
            env,
        };
        for name in ["consumer-a", "consumer-b"] {
            let spec = cluster.spec(Role::Consumer, name);
            let consumer = RoleProcess::spawn(&cluster.env, name, spec);
            cluster.consumers.push(consumer);
        }
        for consumer in &mut cluster.consumers {
            consumer.wait_for_line("the consumer's attach", 0, DEADLINE, |l| {
                l.event() == "attached"
            });
        }
        cluster
    }

    fn spec(&self, role: Role, name: &str) -> RoleSpec {
        RoleSpec {
            sizes: "small",
            rate: RATE,
            extra_env: self.client_env.clone(),
            ..RoleSpec::new(role, &self.env, name)
        }
    }

    /// Starts a producer called `name`; returns its epoch and client id once attached.
    fn start_producer(&mut self, name: &str) -> (u64, u64) {
        let spec = self.spec(Role::Producer, name);
        let mut producer = RoleProcess::spawn(&self.env, name, spec);
        let client_id = producer
            .wait_for_line("the producer to connect", 0, DEADLINE, |l| {
                l.event() == "connected"
            })
            .u64("client_id");
        let epoch = producer
            .wait_for_line("the producer's attach", 0, DEADLINE, |l| {
                l.event() == "attached"
            })
            .u64("epoch");
        self.producer = Some(producer);
        (epoch, client_id)
    }

    fn producer(&mut self) -> &mut RoleProcess {
        self.producer.as_mut().expect("a producer was started")
    }

    /// Waits until every consumer has delivered [`FLOWING`] verified frames from
    /// `epoch`; returns their status lines.
    fn wait_flowing(&mut self, epoch: u64, timeout: Duration) -> Vec<JsonLine> {
        self.consumers
            .iter_mut()
            .map(|consumer| {
                consumer.wait_for_line(
                    &format!("{FLOWING} verified frames from epoch {epoch}"),
                    0,
                    timeout,
                    |l| {
                        l.event() == "status"
                            && l.u64("top_epoch") == epoch
                            && l.u64("delivered_top_epoch") >= FLOWING
                    },
                )
            })
            .collect()
    }

    /// The number of driver counter `name`, if readable.
    fn counter(&self, name: &str) -> Option<i64> {
        counter_value(&self.env.aeron_dir(), &self.settings.counter_label(name))
    }

    /// Stops every client (the producer first); asserts that no consumer ever accepted a
    /// corrupt frame.
    fn finish(&mut self) -> Vec<JsonLine> {
        if let Some(producer) = self.producer.as_mut() {
            producer.stop(DEADLINE);
        }
        let mut finals = Vec::new();
        for consumer in &mut self.consumers {
            let last = consumer.stop(DEADLINE);
            assert_eq!(
                last.u64("verify_failures"),
                0,
                "{} accepted corrupt frames: {last}",
                consumer.name()
            );
            assert_eq!(
                last.u64("delivered"),
                last.u64("frames_delivered"),
                "{last}"
            );
            finals.push(last);
        }
        finals
    }
}

/// Asserts no consumer line so far reports a corrupt frame.
fn assert_nothing_corrupt(consumers: &mut [RoleProcess]) {
    for consumer in consumers {
        let corrupt: Vec<String> = consumer
            .lines()
            .iter()
            .filter(|l| l.event() == "corrupt")
            .map(ToString::to_string)
            .collect();
        assert!(
            corrupt.is_empty(),
            "{} accepted corrupt frames: {corrupt:?}",
            consumer.name()
        );
    }
}

#[test]
fn a_killed_producer_is_expired_and_a_new_producer_feeds_the_same_consumers() {
    let started = Instant::now();
    let mut cluster = Cluster::start("tp-fault-producer", &[], &[]);
    let (first_epoch, first_id) = cluster.start_producer("producer-1");
    cluster.wait_flowing(first_epoch, DEADLINE);
    let expiries_before = cluster.counter("lease expiries").unwrap_or(0);

    // Watch the control stream from before the kill, so the revoke is seen.
    let mut watch = TestClient::for_settings(&cluster.env.aeron_dir(), &cluster.settings);
    let consumer_marks: Vec<usize> = cluster
        .consumers
        .iter_mut()
        .map(RoleProcess::line_count)
        .collect();
    let killed_at = Instant::now();
    cluster.producer().kill();

    // The driver expires the dead producer's lease (no keepalives for 3 × 100 ms),
    // revokes it, and announces a larger epoch without a producer.
    let revoked = watch.wait_for("the killed producer's lease revoke", |m| {
        matches!(m, OwnedMessage::Revoked(r)
            if r.client_id as u64 == first_id && r.role == LeaseRole::Producer)
    });
    let revoke_after = killed_at.elapsed();
    let OwnedMessage::Revoked(revoked) = revoked else {
        unreachable!("wait_for returns a match")
    };
    assert_eq!(revoked.reason, LeaseRevokeReason::Expired, "{revoked:?}");
    assert_eq!(revoked.stream_id, STATIC_STREAM);
    let bumped = watch.wait_for("an announce with a larger epoch", |m| {
        m.as_announce()
            .is_some_and(|a| a.stream_id == STATIC_STREAM && a.epoch > first_epoch)
    });
    let bumped = bumped.as_announce().expect("an announce").clone();
    assert_eq!(
        bumped.producer_id, 0,
        "no producer after the revoke: {bumped:?}"
    );
    drop(watch);
    let expiries = support::wait_for_counter(
        &cluster.env.aeron_dir(),
        &cluster.settings.counter_label("lease expiries"),
        |v| v > expiries_before,
    );

    // The consumers saw the producer go and followed the epoch change.
    for (consumer, mark) in cluster.consumers.iter_mut().zip(&consumer_marks) {
        consumer.wait_for_line(
            "the consumer to follow the revoke to the next epoch",
            *mark,
            DEADLINE,
            |l| {
                (l.event() == "epoch_changed" || l.event() == "attached")
                    && l.u64("epoch") >= bumped.epoch
            },
        );
    }

    // A new producer attaches (another epoch) and the same consumers read its frames.
    let (second_epoch, second_id) = cluster.start_producer("producer-2");
    assert_ne!(second_id, first_id);
    assert!(
        second_epoch >= bumped.epoch && second_epoch > first_epoch,
        "new producer's epoch {second_epoch}, revoke bumped to {}, first {first_epoch}",
        bumped.epoch
    );
    let statuses = cluster.wait_flowing(second_epoch, DEADLINE);
    assert_nothing_corrupt(&mut cluster.consumers);
    let finals = cluster.finish();
    for last in &finals {
        assert_eq!(last.u64("top_epoch"), second_epoch, "{last}");
        assert!(last.u64("epoch_changes") >= 1, "{last}");
    }
    eprintln!(
        "client_faults/producer kill: revoke {revoke_after:.2?} after SIGKILL (epoch {first_epoch} \
         -> {} -> {second_epoch}, lease expiries {expiries_before} -> {expiries}); consumers \
         then verified {} and {} frames of the new producer; total {:.2?}",
        bumped.epoch,
        statuses[0].u64("delivered_top_epoch"),
        statuses[1].u64("delivered_top_epoch"),
        started.elapsed()
    );
}

#[test]
fn clients_reattach_to_a_driver_restarted_after_kill_9() {
    let started = Instant::now();
    let timeout = [("AERON_DRIVER_TIMEOUT", AERON_DRIVER_TIMEOUT_MS)];
    let mut cluster = Cluster::start("tp-fault-restart", &timeout, &timeout);
    let (first_epoch, _) = cluster.start_producer("producer");
    cluster.wait_flowing(first_epoch, DEADLINE);
    let consumer_marks: Vec<usize> = cluster
        .consumers
        .iter_mut()
        .map(RoleProcess::line_count)
        .collect();
    let producer_mark = cluster.producer().line_count();

    cluster.driver.kill();
    let killed_at = Instant::now();
    let mut restarted = ProcessDriver::start(
        &cluster.env,
        "driver-restarted",
        &cluster.config,
        &cluster.driver_env,
    );
    restarted.wait_running(RESTART_DEADLINE);
    let restart_took = killed_at.elapsed();
    cluster.driver = restarted;

    // The producer rebuilds its Aeron connection and reattaches in a larger epoch.
    let producer = cluster.producer();
    producer.wait_for_line(
        "the producer to notice the media driver is gone",
        producer_mark,
        RESTART_DEADLINE,
        |l| l.event() == "media_driver_lost",
    );
    let second_epoch = producer
        .wait_for_line(
            "the producer to reattach",
            producer_mark,
            RESTART_DEADLINE,
            |l| l.event() == "reattached",
        )
        .u64("epoch");
    assert!(
        second_epoch > first_epoch,
        "epoch {second_epoch} after the restart, {first_epoch} before"
    );
    // The consumers do the same on their own (no application help) and verify frames
    // of the new epoch.
    for (consumer, mark) in cluster.consumers.iter_mut().zip(&consumer_marks) {
        consumer.wait_for_line(
            "the consumer to notice the media driver is gone",
            *mark,
            RESTART_DEADLINE,
            |l| l.event() == "media_driver_lost",
        );
    }
    let statuses = cluster.wait_flowing(second_epoch, RESTART_DEADLINE);
    let flowing_after = killed_at.elapsed();
    assert_nothing_corrupt(&mut cluster.consumers);
    let finals = cluster.finish();
    for last in &finals {
        assert!(last.u64("reconnects") >= 1, "{last}");
        assert_eq!(last.u64("top_epoch"), second_epoch, "{last}");
    }
    eprintln!(
        "client_faults/driver restart: restarted driver up {restart_took:.2?} after kill -9 \
         (AERON_DRIVER_TIMEOUT={AERON_DRIVER_TIMEOUT_MS} ms), frames verified in epoch \
         {second_epoch} (was {first_epoch}) {flowing_after:.2?} after the kill ({} and {} \
         frames); total {:.2?}",
        statuses[0].u64("delivered_top_epoch"),
        statuses[1].u64("delivered_top_epoch"),
        started.elapsed()
    );
}

#[test]
fn a_driver_shutdown_request_unmaps_both_clients_and_stops_publishing() {
    let started = Instant::now();
    let mut cluster = Cluster::start("tp-fault-shutdown", &[], &[]);
    let (epoch, _) = cluster.start_producer("producer");
    cluster.wait_flowing(epoch, DEADLINE);
    let consumer_marks: Vec<usize> = cluster
        .consumers
        .iter_mut()
        .map(RoleProcess::line_count)
        .collect();
    let producer_mark = cluster.producer().line_count();

    let mut admin = TestClient::for_settings(&cluster.env.aeron_dir(), &cluster.settings);
    admin.shutdown_request(TOKEN, ShutdownReason::Admin, "client fault test");
    drop(admin);
    let status = cluster
        .driver
        .wait(DEADLINE)
        .expect("tp-driver exits after an accepted shutdown request");
    assert!(
        status.success(),
        "tp-driver: {status}\n{}",
        cluster.driver.stderr()
    );

    // The producer was told, unmapped, and now refuses to publish.
    let producer = cluster.producer();
    let notice = producer.wait_for_line(
        "the producer's shutdown event",
        producer_mark,
        DEADLINE,
        |l| l.event() == "driver_shutdown",
    );
    assert_eq!(notice.text("reason"), Some("Admin"), "{notice}");
    let refused = producer.wait_for_line(
        "a publish refused with NotAttached",
        producer_mark,
        DEADLINE,
        |l| l.event() == "publish_refused",
    );
    assert_eq!(refused.text("error"), Some("NotAttached"), "{refused}");
    let frozen = refused.u64("published");
    let later = producer.line_count();
    let status_after = producer.wait_for_line("a later producer status", later, DEADLINE, |l| {
        l.event() == "status"
    });
    assert_eq!(
        status_after.u64("attached"),
        0,
        "the producer is detached: {status_after}"
    );
    assert_eq!(
        status_after.u64("published"),
        frozen,
        "nothing was published after the shutdown: {status_after}"
    );

    // Both consumers were told and unmapped.
    for (consumer, mark) in cluster.consumers.iter_mut().zip(&consumer_marks) {
        let notice =
            consumer.wait_for_line("the consumer's shutdown event", *mark, DEADLINE, |l| {
                l.event() == "driver_shutdown"
            });
        assert_eq!(notice.text("reason"), Some("Admin"), "{notice}");
        consumer.wait_for_line("the consumer to unmap", *mark, DEADLINE, |l| {
            l.event() == "unmapped" && l.text("reason") == Some("DriverShutdown")
        });
        let later = consumer.line_count();
        let status = consumer.wait_for_line("a later consumer status", later, DEADLINE, |l| {
            l.event() == "status"
        });
        assert_eq!(status.u64("mapped_epoch"), 0, "unmapped: {status}");
        assert_eq!(status.u64("ready"), 0, "{status}");
    }
    assert_nothing_corrupt(&mut cluster.consumers);
    cluster.finish();
    let producer_final = cluster
        .producer()
        .lines()
        .iter()
        .rev()
        .find(|l| l.event() == "final")
        .cloned()
        .expect("the producer's final line");
    assert_eq!(producer_final.u64("published"), frozen, "{producer_final}");
    assert!(
        producer_final.u64("refused_not_attached") >= 1,
        "{producer_final}"
    );
    eprintln!(
        "client_faults/shutdown: producer stopped at {frozen} frames and refused {} publishes \
         (NotAttached); both consumers unmapped; total {:.2?}",
        producer_final.u64("refused_not_attached"),
        started.elapsed()
    );
}

/// Runs the consumer's duty cycle (which must not fail) until `until` holds.
fn pump_consumer(
    consumer: &mut Consumer,
    seen: &mut Vec<ConsumerEvent>,
    what: &str,
    until: impl Fn(&Consumer, &[ConsumerEvent]) -> bool,
) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        consumer
            .do_work(monotonic_now_ns())
            .unwrap_or_else(|e| panic!("do_work failed while waiting for {what}: {e}"));
        seen.extend(consumer.events());
        if until(consumer, seen) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; events {seen:?}, counters {:?}",
            consumer.counters()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The consumer API itself across a lost media driver, in one process: the driver (with
/// its embedded media driver) stops and a new one starts in the same directories; the
/// consumer's `do_work` keeps returning `Ok`, reports the loss, reads nothing while
/// disconnected, reconnects on its own, and verifies a producer's frames in the new epoch.
#[test]
fn the_consumer_rebuilds_its_aeron_connection_after_losing_the_media_driver() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-fault-in-process".into(),
        ..DriverSettings::shared_announce()
    };
    let spec = RoleSpec::new(Role::Consumer, &env, "in-process");
    let driver = support::InThreadDriver::start(&env, &settings);
    let mut consumer = Consumer::connect(ConsumerConfig {
        allowed_base_dirs: vec![env.shm_dir()],
        announce_period: support::ANNOUNCE_PERIOD,
        keepalive_interval: Some(support::KEEPALIVE_INTERVAL),
        attach_timeout: Duration::from_millis(500),
        ..ConsumerConfig::new(spec.streams(), STATIC_STREAM)
    })
    .expect("the consumer connects");
    let mut seen: Vec<ConsumerEvent> = Vec::new();
    pump_consumer(&mut consumer, &mut seen, "the first attach", |c, _| {
        c.is_ready()
    });
    let first_epoch = consumer.mapped_epoch().expect("mapped");

    driver.stop().expect("the first driver stops cleanly");
    pump_consumer(
        &mut consumer,
        &mut seen,
        "the consumer to notice the loss",
        |_, seen| seen.contains(&ConsumerEvent::MediaDriverLost),
    );
    assert!(!consumer.is_connected());
    assert!(!consumer.is_ready());
    assert_eq!(consumer.mapped_epoch(), None);
    assert!(
        seen.iter().any(|e| matches!(
            e,
            ConsumerEvent::Unmapped {
                reason: UnmapReason::DriverShutdown | UnmapReason::LeaseLost
            }
        )),
        "{seen:?}"
    );
    assert_eq!(
        consumer
            .poll_frame(|_| ())
            .expect("poll_frame while disconnected"),
        FramePoll::Empty
    );
    // Retries while no media driver answers are not errors.
    for _ in 0..50 {
        consumer
            .do_work(monotonic_now_ns())
            .expect("do_work without a media driver");
        std::thread::sleep(Duration::from_millis(2));
    }

    let _driver = support::InThreadDriver::start(&env, &settings);
    let mut producer = Producer::new(
        ProducerConfig::new(STATIC_STREAM)
            .streams(spec.streams())
            .allowed_base_dirs([env.shm_dir()])
            .keepalive_interval(support::KEEPALIVE_INTERVAL),
    )
    .expect("the producer connects");
    let deadline = Instant::now() + DEADLINE;
    while !producer.is_attached() {
        producer
            .do_work(monotonic_now_ns())
            .expect("producer duty cycle");
        consumer
            .do_work(monotonic_now_ns())
            .expect("consumer duty cycle");
        assert!(Instant::now() < deadline, "the producer did not attach");
        std::thread::sleep(Duration::from_millis(1));
    }
    let producer_epoch = producer.epoch().expect("attached");
    assert!(producer_epoch > first_epoch);
    pump_consumer(
        &mut consumer,
        &mut seen,
        "the consumer to map the producer's epoch",
        |c, _| c.is_ready() && c.mapped_epoch() == Some(producer_epoch),
    );
    assert!(consumer.is_connected());
    assert_eq!(consumer.counters().reconnects, 1);

    let sizes = system::SMALL_SIZES;
    let tensors = system::tensors_for(&sizes);
    let mut verified = 0;
    let deadline = Instant::now() + DEADLINE;
    for seq in 0..20u64 {
        let mut claim = producer
            .claim(system::frame_len(&sizes, seq))
            .expect("claim");
        system::fill(claim.payload_mut(), seq);
        claim
            .commit(&tensors[seq as usize % sizes.len()], seq)
            .expect("commit");
        loop {
            producer
                .do_work(monotonic_now_ns())
                .expect("producer duty cycle");
            consumer
                .do_work(monotonic_now_ns())
                .expect("consumer duty cycle");
            match consumer
                .poll_frame(|f| (system::frame_is_intact(f, &sizes), f.seq()))
                .expect("poll_frame")
            {
                FramePoll::Delivered((intact, got)) => {
                    assert!(intact, "frame {got} did not verify");
                    assert_eq!(got, seq);
                    verified += 1;
                    break;
                }
                FramePoll::Empty => {}
                other => panic!("frame {seq}: {other:?}"),
            }
            assert!(Instant::now() < deadline, "frame {seq} never arrived");
        }
    }
    assert_eq!(verified, 20);
}
