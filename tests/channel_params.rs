//! Clients join the driver's streams whatever channel parameters either side configured
//! (docs/DESIGN.md, "Channel parameters"): the driver here runs its control, announce and
//! QoS streams on `aeron:ipc?term-length=64k`, while the example producer and consumer
//! keep their default channel, `aeron:ipc?term-length=4m`, and every default stream id.
//! Aeron refuses a publication whose term-length differs from an existing one of the
//! same channel and stream only when both are shared; every publication of ours is
//! exclusive, so frames move in either start order.

#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use std::time::Duration;
use support::*;
use system::JsonLine;
use tensorpool::client::link::DEFAULT_CHANNEL;
use tensorpool::transport::read_counters;

const FRAMES: &str = "500";

/// The driver's configuration for `env`: every driver stream on [`CHANNEL`] (64 KiB
/// terms), announces on a stream of their own, a ring of 1,024 slots.
fn driver_config(env: &TestEnv, settings: &DriverSettings) -> std::path::PathBuf {
    assert_ne!(CHANNEL, DEFAULT_CHANNEL, "the driver's channel must differ");
    let toml = settings.toml(env).replace(
        &format!("header_nslots = {HEADER_NSLOTS}"),
        "header_nslots = 1024",
    );
    assert!(toml.contains("header_nslots = 1024"));
    assert!(toml.contains(&format!("control_channel = \"{CHANNEL}\"")));
    env.write("driver.toml", &toml)
}

/// The example `name` with its default channel and stream ids: only where the test's
/// driver and SHM directory are, and which stream, are given.
fn spawn_default_example(env: &TestEnv, name: &str, extra: &[&str]) -> ProcessDriver {
    let mut args: Vec<String> = [
        "--aeron-dir",
        &env.aeron_dir().display().to_string(),
        "--stream-id",
        &STATIC_STREAM.to_string(),
        "--allowed-base-dir",
        &env.shm_dir().display().to_string(),
        "--timeout-s",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ProcessDriver::spawn_program(&example_program(name), "", env, name, &args, &[])
}

fn spawn_consumer(env: &TestEnv) -> ProcessDriver {
    spawn_default_example(env, "consumer", &["--frames", FRAMES, "--verify"])
}

fn spawn_producer(env: &TestEnv) -> ProcessDriver {
    spawn_default_example(
        env,
        "producer",
        &[
            "--frames",
            FRAMES,
            "--payload-bytes",
            "4000",
            "--rate",
            "1000",
        ],
    )
}

/// Waits for `process` to exit 0 and returns its JSON summary line.
fn succeeded(process: &mut ProcessDriver, what: &str) -> JsonLine {
    let status = process
        .wait(Duration::from_secs(40))
        .unwrap_or_else(|| panic!("{what} still runs; stderr:\n{}", process.stderr()));
    let stdout = process.stdout();
    assert!(
        status.success(),
        "{what} exited with {status}; stdout:\n{stdout}\nstderr:\n{}",
        process.stderr()
    );
    stdout
        .lines()
        .last()
        .and_then(JsonLine::parse)
        .unwrap_or_else(|| panic!("no JSON line in {stdout:?}"))
}

/// Consumer first (once its lease is counted), then producer; every frame arrives intact.
fn move_frames(env: &TestEnv, settings: &DriverSettings, mut consumer: ProcessDriver) {
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 1,
    );
    let mut producer = spawn_producer(env);
    let received = succeeded(&mut consumer, "the consumer");
    let sent = succeeded(&mut producer, "the producer");
    assert_eq!(sent.u64("frames_sent"), 500, "{sent}");
    assert_eq!(received.u64("frames_received"), 500, "{received}");
    assert_eq!(received.u64("frames_verified"), 500, "{received}");
    assert_eq!(received.u64("verify_failures"), 0, "{received}");
}

/// Labels of the media driver's publication-limit counters (one per publication:
/// `pub-lmt: <registration> <session> <stream> <channel>`) of `stream_id`.
fn publications_of_stream(env: &TestEnv, stream_id: u32) -> Vec<String> {
    let stream = format!(" {stream_id} aeron:");
    read_counters(&env.aeron_dir())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.label)
        .filter(|label| label.starts_with("pub-lmt") && label.contains(&stream))
        .collect()
}

/// Waits until a publication of `stream_id` on `channel` is set up.
fn wait_for_publication(env: &TestEnv, stream_id: u32, channel: &str) {
    wait_until(
        &format!("a publication of stream {stream_id} on {channel}"),
        DEADLINE,
        || {
            publications_of_stream(env, stream_id)
                .iter()
                .any(|label| label.ends_with(channel))
                .then_some(())
        },
    );
}

#[test]
fn default_clients_attach_to_a_driver_whose_streams_have_another_term_length() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-channel-params".into(),
        ..DriverSettings::separate_announce()
    };
    let config = driver_config(&env, &settings);
    let mut driver = ProcessDriver::start(&env, "driver", &config, &[]);
    driver.wait_running(DEADLINE);
    let consumer = spawn_consumer(&env);
    // Both term-lengths are in use on the control stream at once.
    wait_for_publication(&env, CONTROL_STREAM, CHANNEL);
    wait_for_publication(&env, CONTROL_STREAM, DEFAULT_CHANNEL);
    move_frames(&env, &settings, consumer);
}

#[test]
fn a_client_whose_publications_exist_before_the_driver_starts_attaches_once_it_does() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-channel-params-reverse".into(),
        ..DriverSettings::separate_announce()
    };
    let config = driver_config(&env, &settings);
    let _media_driver = MediaDriverThread::start(&env.aeron_dir());
    let consumer = spawn_consumer(&env);
    // The consumer's control publication, on the default channel, is set up first.
    wait_for_publication(&env, CONTROL_STREAM, DEFAULT_CHANNEL);
    assert!(
        !publications_of_stream(&env, CONTROL_STREAM)
            .iter()
            .any(|label| label.ends_with(CHANNEL)),
        "no driver yet"
    );
    // Then the driver adds its own control publication with its own term-length.
    let dir = env.aeron_dir().display().to_string();
    let mut driver = ProcessDriver::start(
        &env,
        "driver",
        &config,
        &[
            ("DRIVER_MEDIA_DRIVER", "external"),
            ("DRIVER_AERON_DIR", dir.as_str()),
        ],
    );
    driver.wait_running(DEADLINE);
    move_frames(&env, &settings, consumer);
    assert_eq!(driver.wait(Duration::ZERO), None, "tp-driver exited");
}
