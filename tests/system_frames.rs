//! System test: frames flow end to end between processes. `tp-driver` (with its embedded
//! media driver), one producer and two consumers each run as a process of their own (the
//! clients are this test binary re-executed in a role, see `support/system.rs`). The
//! producer publishes 10,000 frames whose sizes cycle from 0 B to 64 KiB over both pools
//! and whose payloads carry a checksum of themselves; every frame a consumer accepts must
//! verify, and per consumer `delivered + every drop counter (gaps included) = published`.
//! Everything is asserted on the JSON lines the processes write.

#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use std::time::{Duration, Instant};

use support::{DriverSettings, ProcessDriver, TestEnv, DEADLINE};
use system::{JsonLine, Role, RoleProcess, RoleSpec};

/// Frames the producer publishes.
const FRAMES: u64 = 10_000;
/// Producer rate (frames per second): modest, so consumers on a busy machine keep up.
const RATE: u64 = 5_000;
/// Longest wait for the producer to publish everything.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(45);
/// Lease timings for this test (longer than the test profile's, for a loaded machine).
const KEEPALIVE: Duration = Duration::from_millis(200);

#[test]
#[ignore = "a child process role, started by the other tests"]
fn child_role() {
    system::run_role_from_env();
}

fn role(env: &TestEnv, role: Role, name: &str) -> RoleSpec {
    RoleSpec {
        keepalive: KEEPALIVE,
        ..RoleSpec::new(role, env, name)
    }
}

/// Checks one consumer's final report against the producer's (`published` frames, of
/// which the producer could not offer `descriptors_dropped` descriptors); returns a
/// summary line.
fn reconcile(
    name: &str,
    last: &JsonLine,
    published: u64,
    descriptors_dropped: u64,
    epoch: u64,
) -> String {
    let delivered = last.u64("frames_delivered");
    let frame_drops = last.u64("frame_drops");
    let gaps = last.u64("drops_gap");
    let last_seq_seen = last.u64("last_seq_seen");
    assert!(
        last_seq_seen < published,
        "{name} saw no descriptor: {last}"
    );
    // Descriptors after the last one seen never arrived (only a dropped offer explains it).
    let tail_missing = published - 1 - last_seq_seen;
    assert_eq!(
        last.u64("delivered"),
        delivered,
        "{name}: frames seen by the application vs the counter: {last}"
    );
    assert_eq!(
        last.u64("verify_failures"),
        0,
        "{name} accepted corrupt frames: {last}"
    );
    assert_eq!(
        delivered + frame_drops,
        last.u64("descriptors_received"),
        "{name}: every received descriptor is delivered or dropped: {last}"
    );
    assert_eq!(
        delivered + frame_drops + gaps + tail_missing,
        published,
        "{name}: delivered + drops + gaps must equal the frames published: {last}"
    );
    assert_eq!(
        gaps + tail_missing,
        descriptors_dropped,
        "{name}: sequences never received are the descriptors the producer dropped: {last}"
    );
    assert_eq!(
        last.u64("top_epoch"),
        epoch,
        "{name} delivered from another epoch: {last}"
    );
    // Frames really flow (the exact share depends on the machine: a consumer descheduled
    // for more than 8 frames finds its slots overwritten, and counts them as late).
    assert!(
        delivered >= published / 5,
        "{name} delivered only {delivered} of {published} frames: {last}"
    );
    format!(
        "{name}: delivered {delivered}, dropped {frame_drops} (late {}, not committed {}, \
         stale {}, resync {}, epoch {}, unmapped {}), gaps {gaps}",
        last.u64("drops_late"),
        last.u64("drops_not_committed"),
        last.u64("drops_stale"),
        last.u64("drops_resync"),
        last.u64("drops_epoch"),
        last.u64("drops_unmapped"),
    )
}

#[test]
fn ten_thousand_mixed_size_frames_reach_two_consumer_processes_intact() {
    let started = Instant::now();
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-system-frames".into(),
        ..DriverSettings::shared_announce()
    };
    let config = env.write("driver.toml", &settings.toml(&env));
    let keepalive_ms = KEEPALIVE.as_millis().to_string();
    let mut driver = ProcessDriver::start(
        &env,
        "driver",
        &config,
        &[
            (
                "POLICIES_LEASE_KEEPALIVE_INTERVAL_MS",
                keepalive_ms.as_str(),
            ),
            ("POLICIES_LEASE_EXPIRY_GRACE_INTERVALS", "5"),
        ],
    );
    driver.wait_running(DEADLINE);

    // Consumers first: their descriptor subscriptions exist before the first frame.
    let mut consumers: Vec<RoleProcess> = ["consumer-a", "consumer-b"]
        .into_iter()
        .map(|name| RoleProcess::spawn(&env, name, role(&env, Role::Consumer, name)))
        .collect();
    for consumer in &mut consumers {
        consumer.wait_for_line("the consumer's attach", 0, DEADLINE, |l| {
            l.event() == "attached"
        });
    }

    let go = env.path().join("producer.go");
    let mut producer = RoleProcess::spawn(
        &env,
        "producer",
        RoleSpec {
            frames: FRAMES,
            rate: RATE,
            go_file: Some(go.clone()),
            ..role(&env, Role::Producer, "producer")
        },
    );
    let epoch = producer
        .wait_for_line("the producer's attach", 0, DEADLINE, |l| {
            l.event() == "attached"
        })
        .u64("epoch");
    // The producer's attach bumped the epoch: publish once both consumers mapped it.
    for consumer in &mut consumers {
        consumer.wait_for_line(
            "the consumer to map the producer's epoch",
            0,
            DEADLINE,
            |l| l.event() == "status" && l.u64("mapped_epoch") == epoch && l.u64("ready") == 1,
        );
    }
    std::fs::write(&go, b"go").expect("writing the go file");
    let publishing = Instant::now();

    let done = producer.wait_for_line("all frames published", 0, PUBLISH_DEADLINE, |l| {
        l.event() == "done"
    });
    let publish_time = publishing.elapsed();
    assert_eq!(done.u64("published"), FRAMES);

    // Let the consumers see the last descriptor (unless the producer dropped it), then
    // stop them; they drain before reporting.
    for consumer in &mut consumers {
        let _ = consumer.try_wait_for_line(0, DEADLINE, |l| {
            l.event() == "status" && l.u64("last_seq_seen") == FRAMES - 1
        });
    }
    let finals: Vec<JsonLine> = consumers.iter_mut().map(|c| c.stop(DEADLINE)).collect();
    let producer_final = producer.stop(DEADLINE);
    assert_eq!(producer_final.u64("published"), FRAMES, "{producer_final}");
    assert_eq!(
        producer_final.u64("frames_published"),
        FRAMES,
        "{producer_final}"
    );
    assert_eq!(
        producer_final.u64("epoch"),
        epoch,
        "the producer kept one epoch: {producer_final}"
    );

    let descriptors_dropped = producer_final.u64("descriptors_dropped");
    let mut summary = Vec::new();
    for (consumer, last) in consumers.iter().zip(&finals) {
        summary.push(reconcile(
            consumer.name(),
            last,
            FRAMES,
            descriptors_dropped,
            epoch,
        ));
    }
    drop(consumers);
    drop(producer);
    driver.signal(nix::sys::signal::Signal::SIGTERM);
    let status = driver
        .wait(DEADLINE)
        .expect("tp-driver exits after SIGTERM");
    assert!(status.success(), "tp-driver: {status}\n{}", driver.stderr());
    eprintln!(
        "system_frames: {FRAMES} frames (0 B..64 KiB) at {RATE}/s published in {:.2?} \
         (producer descriptors dropped: {}); {}; total {:.2?}",
        publish_time,
        descriptors_dropped,
        summary.join("; "),
        started.elapsed()
    );
}
