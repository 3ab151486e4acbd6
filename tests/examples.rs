//! The example producer and consumer as users run them (README): separate processes
//! against a `tp-driver` whose lease timing differs from the client defaults, their JSON
//! lines reconciled, and SIGINT/SIGTERM stopping them cleanly (detach, report, status).

#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;
use support::*;
use system::JsonLine;

/// The last line a process printed on stdout.
fn summary(process: &ProcessDriver) -> JsonLine {
    let stdout = process.stdout();
    stdout
        .lines()
        .last()
        .and_then(JsonLine::parse)
        .unwrap_or_else(|| panic!("no JSON line in {stdout:?}; stderr:\n{}", process.stderr()))
}

/// A driver with 100 ms keepalives and grace 3 (300 ms leases), and a ring of 1,024
/// slots (a second of frames at the rates used here, so a busy test machine cannot make
/// the producer lap the consumer).
fn start_fast_lease_driver(env: &TestEnv, settings: &DriverSettings) -> ProcessDriver {
    let toml = settings.toml(env).replace(
        &format!("header_nslots = {HEADER_NSLOTS}"),
        "header_nslots = 1024",
    );
    assert!(toml.contains("header_nslots = 1024"));
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

/// The arguments every example needs for the test environment (keepalive left at its
/// default on purpose).
fn common_args(env: &TestEnv) -> Vec<String> {
    [
        "--aeron-dir",
        &env.aeron_dir().display().to_string(),
        "--channel",
        CHANNEL,
        "--stream-id",
        &STATIC_STREAM.to_string(),
        "--allowed-base-dir",
        &env.shm_dir().display().to_string(),
        "--timeout-s",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn spawn_example(env: &TestEnv, name: &str, label: &str, extra: &[&str]) -> ProcessDriver {
    let mut args = common_args(env);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ProcessDriver::spawn_program(&example_program(name), "", env, label, &args, &[])
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

fn counter(aeron_dir: &Path, settings: &DriverSettings, name: &str) -> i64 {
    counter_value(aeron_dir, &settings.counter_label(name)).unwrap_or(0)
}

#[test]
fn examples_at_their_defaults_move_verified_frames_through_a_fast_lease_driver() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-examples-frames".into(),
        ..DriverSettings::shared_announce()
    };
    let driver = start_fast_lease_driver(&env, &settings);
    let frames = "3000";
    let mut consumer = spawn_example(
        &env,
        "consumer",
        "consumer",
        &["--frames", frames, "--verify"],
    );
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 1,
    );
    // 3 s at 1,000 frames/s: ten leases' worth of time.
    let mut producer = spawn_example(
        &env,
        "producer",
        "producer",
        &[
            "--frames",
            frames,
            "--payload-bytes",
            "4000",
            "--rate",
            "1000",
        ],
    );
    wait_success(&mut consumer, "the consumer");
    wait_success(&mut producer, "the producer");

    let sent = summary(&producer);
    let received = summary(&consumer);
    assert_eq!(sent.u64("frames_sent"), 3000, "{sent}");
    assert_eq!(sent.flag("interrupted"), Some(false));
    assert_eq!(received.u64("frames_received"), 3000, "{received}");
    assert_eq!(received.u64("frames_verified"), 3000, "{received}");
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
    // The consumer attached first; the producer's attach starts the one new epoch
    // (Driver Model §6); no lease expired, so there is no other.
    assert_eq!(received.u64("epoch_changes"), 1, "{received}");
    assert_eq!(sent.u64("epoch_changes"), 0, "{sent}");
    // Keepalives at the client's default pace held every lease (the producer's detach
    // at the end is a revocation notice for consumers, not an expiry).
    assert_eq!(
        counter(&env.aeron_dir(), &settings, "lease expiries"),
        0,
        "driver log:\n{}",
        driver.stderr()
    );
}

/// Starts an example that would run for a long time, waits for its lease, signals it,
/// and returns its exit status and JSON line.
fn interrupt(name: &str, signal: Signal, extra: &[&str]) -> (i32, JsonLine, i64) {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: format!("tp-examples-{name}-{signal}"),
        ..DriverSettings::shared_announce()
    };
    let _driver = start_fast_lease_driver(&env, &settings);
    let role = if name == "producer" {
        "producer"
    } else {
        "consumer"
    };
    let leases = settings.counter_label(&format!("active {role} leases"));
    let mut example = spawn_example(&env, name, name, extra);
    wait_for_counter(&env.aeron_dir(), &leases, |v| v == 1);
    std::thread::sleep(Duration::from_millis(300));
    example.signal(signal);
    let status = example
        .wait(DEADLINE)
        .unwrap_or_else(|| panic!("{name} ignored {signal}; stderr:\n{}", example.stderr()));
    // The lease ends by detach at once, not by expiry.
    wait_for_counter(&env.aeron_dir(), &leases, |v| v == 0);
    let expiries = counter(&env.aeron_dir(), &settings, "lease expiries");
    let code = std::os::unix::process::ExitStatusExt::into_raw(status) >> 8;
    (code, summary(&example), expiries)
}

#[test]
fn sigint_stops_the_consumer_with_a_detach_and_a_summary() {
    let (code, line, expiries) = interrupt("consumer", Signal::SIGINT, &["--frames", "1000000"]);
    assert_eq!(code, 128 + Signal::SIGINT as i32, "{line}");
    assert_eq!(line.text("role"), Some("consumer"));
    assert_eq!(line.flag("interrupted"), Some(true));
    assert_eq!(expiries, 0);
}

#[test]
fn sigterm_stops_the_producer_with_a_detach_and_a_summary() {
    let (code, line, expiries) = interrupt(
        "producer",
        Signal::SIGTERM,
        &[
            "--frames",
            "100000000",
            "--payload-bytes",
            "1000",
            "--rate",
            "100",
        ],
    );
    assert_eq!(code, 128 + Signal::SIGTERM as i32, "{line}");
    assert_eq!(line.text("role"), Some("producer"));
    assert_eq!(line.flag("interrupted"), Some(true));
    assert!(line.u64("frames_sent") > 0, "{line}");
    assert_eq!(expiries, 0);
}
