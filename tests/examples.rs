//! The example producer and consumer as users run them (README): separate processes
//! against a `tp-driver` whose lease timing differs from the client defaults, their JSON
//! lines reconciled, SIGINT/SIGTERM stopping them cleanly (detach, report, status), runs
//! that cannot succeed ending at once with the reason and the fix, and the Aeron
//! directory found without `--aeron-dir` or `$USER`.

#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use nix::sys::signal::Signal;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;
use support::*;
use system::{summary, JsonLine};

/// The `--timeout-s` of runs expected to end by themselves long before it: a test that
/// waits out [`ENDS_BY_ITSELF`] for them shows they did not sit out their timeout.
const LONG_TIMEOUT_S: &str = "600";
/// Bound of the wait for a run that must end by itself.
const ENDS_BY_ITSELF: Duration = Duration::from_secs(60);

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

/// A fresh test environment with a [`start_fast_lease_driver`] named `instance_id`
/// (dropped first: the driver is killed before its directories go).
fn fast_lease_driver(instance_id: &str) -> (TestEnv, DriverSettings, ProcessDriver) {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: instance_id.into(),
        ..DriverSettings::shared_announce()
    };
    let driver = start_fast_lease_driver(&env, &settings);
    (env, settings, driver)
}

/// The arguments every example needs for the test environment besides `--aeron-dir`
/// (keepalive left at its default on purpose); `extra` may override the stream and the
/// timeout (20 s otherwise).
fn example_args(env: &TestEnv, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--channel",
        CHANNEL,
        "--allowed-base-dir",
        &env.shm_dir().display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (flag, default) in [
        ("--stream-id", STATIC_STREAM.to_string()),
        ("--timeout-s", "20".to_string()),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), default]);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn spawn_example(env: &TestEnv, name: &str, label: &str, extra: &[&str]) -> ProcessDriver {
    let mut args = vec![
        "--aeron-dir".to_string(),
        env.aeron_dir().display().to_string(),
    ];
    args.extend(example_args(env, extra));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ProcessDriver::spawn_program(&example_program(name), "", env, label, &args, &[])
}

/// Waits for a run that must end by itself well before its `--timeout-s`.
fn wait_ended(process: &mut ProcessDriver, what: &str) -> ExitStatus {
    process.wait(ENDS_BY_ITSELF).unwrap_or_else(|| {
        panic!(
            "{what} still runs, waiting out its timeout; stderr:\n{}",
            process.stderr()
        )
    })
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
    let (env, settings, driver) = fast_lease_driver("tp-examples-frames");
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
        "qos_drops_gap",
        "qos_drops_late",
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
    let (env, settings, _driver) = fast_lease_driver(&format!("tp-examples-{name}-{signal}"));
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

/// The stream id in a producer's "attached to stream N" line on stderr, once it is there.
fn granted_stream(producer: &ProcessDriver) -> Option<u32> {
    let stderr = producer.stderr();
    let rest = stderr.split("attached to stream ").nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn a_created_stream_is_reported_under_the_id_the_driver_granted_and_read_there() {
    let (env, _, _driver) = fast_lease_driver("tp-examples-create");
    // 12345 is outside the driver's dynamic range, so the driver picks an id of its own.
    let mut producer = spawn_example(
        &env,
        "producer",
        "producer",
        &[
            "--stream-id",
            "12345",
            "--create",
            "--frames",
            "300",
            "--payload-bytes",
            "1000",
            "--rate",
            "100",
        ],
    );
    let granted = wait_until("the producer's granted stream on stderr", DEADLINE, || {
        granted_stream(&producer)
    });
    assert_eq!(granted, DYNAMIC_RANGE.0, "{}", producer.stderr());
    let stderr = producer.stderr();
    assert!(
        stderr.contains("not the requested 12345")
            && stderr.contains(&format!("run consumers with --stream-id {granted}")),
        "{stderr}"
    );
    // A consumer finds the stream by the printed id.
    let mut consumer = spawn_example(
        &env,
        "consumer",
        "consumer",
        &[
            "--stream-id",
            &granted.to_string(),
            "--frames",
            "20",
            "--verify",
        ],
    );
    wait_success(&mut consumer, "the consumer on the granted stream");
    wait_success(&mut producer, "the producer");
    let sent = summary(&producer);
    assert_eq!(sent.u64("stream_id"), u64::from(granted), "{sent}");
    assert_eq!(sent.u64("requested_stream_id"), 12345, "{sent}");
    assert_eq!(sent.u64("frames_sent"), 300, "{sent}");
    assert_eq!(summary(&consumer).u64("frames_verified"), 20);
}

#[test]
fn a_producer_on_an_unknown_stream_stops_at_once_with_the_reason_and_the_fix() {
    let (env, _, _driver) = fast_lease_driver("tp-examples-unknown");
    let mut producer = spawn_example(
        &env,
        "producer",
        "producer",
        &["--stream-id", "12345", "--timeout-s", LONG_TIMEOUT_S],
    );
    let status = wait_ended(&mut producer, "a producer on an unknown stream");
    let stderr = producer.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    for expected in [
        "the driver refused stream 12345 (REJECTED: stream not provisioned)",
        "waiting cannot change",
        "[streams.<name>]",
        "--create",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    let line = summary(&producer);
    assert_eq!(line.u64("frames_sent"), 0, "{line}");
    assert_eq!(line.u64("stream_id"), 0, "no stream was granted: {line}");
}

#[test]
fn a_consumer_ends_soon_after_its_producer_detached() {
    let (env, settings, _driver) = fast_lease_driver("tp-examples-finished");
    let announce_ms = ANNOUNCE_PERIOD.as_millis().to_string();
    // Asks for far more frames than the producer sends.
    let mut consumer = spawn_example(
        &env,
        "consumer",
        "consumer",
        &[
            "--frames",
            "1000000",
            "--timeout-s",
            LONG_TIMEOUT_S,
            "--announce-period-ms",
            &announce_ms,
        ],
    );
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 1,
    );
    let mut producer = spawn_example(
        &env,
        "producer",
        "producer",
        &[
            "--frames",
            "200",
            "--payload-bytes",
            "1000",
            "--rate",
            "1000",
        ],
    );
    wait_success(&mut producer, "the producer");
    let status = wait_ended(&mut consumer, "the consumer of a finished producer");
    let stderr = consumer.stderr();
    assert_eq!(status.code(), Some(1), "fewer frames than asked: {stderr}");
    assert!(
        stderr.contains("of 1000000 frames: the producer detached and no other attached"),
        "{stderr}"
    );
    // The normal detach is information, not a warning.
    assert!(
        !stderr
            .lines()
            .any(|line| line.contains("WARN") && line.contains("ProducerRevoked")),
        "{stderr}"
    );
    let received = summary(&consumer);
    let got = received.u64("frames_received");
    assert!(got > 0 && got <= 200, "{received}");
}

#[test]
fn examples_without_aeron_dir_or_user_find_the_driver_in_aerons_default_directory() {
    let (env, settings, _driver) = fast_lease_driver("tp-examples-default-dir");
    // Aeron's default directory is AERON_DIR when set (this test's own directory, so the
    // machine's real default is never touched); USER is unset as in a bare shell.
    let aeron_dir = env.aeron_dir().display().to_string();
    let spawn = |name: &str, extra: &[&str]| {
        let args = example_args(&env, extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ProcessDriver::spawn_program_without(
            &example_program(name),
            "",
            &env,
            name,
            &args,
            &[("AERON_DIR", &aeron_dir)],
            &["USER"],
        )
    };
    let mut consumer = spawn("consumer", &["--frames", "100", "--verify"]);
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 1,
    );
    let mut producer = spawn(
        "producer",
        &[
            "--frames",
            "100",
            "--payload-bytes",
            "1000",
            "--rate",
            "1000",
        ],
    );
    wait_success(&mut consumer, "the consumer");
    wait_success(&mut producer, "the producer");
    assert_eq!(summary(&consumer).u64("frames_verified"), 100);
}

/// The `--aeron-dir` default an example shows in `--help`, run with `envs` set and the
/// variables `removed` unset.
fn default_aeron_dir_shown(name: &str, envs: &[(&str, &str)], removed: &[&str]) -> String {
    let mut command = Command::new(example_program(name));
    command.arg("--help");
    for variable in removed {
        command.env_remove(variable);
    }
    command.envs(envs.iter().copied());
    let output = command.output().expect("running the example's --help");
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let after_flag = help
        .split("--aeron-dir")
        .nth(1)
        .expect("--aeron-dir in --help");
    let default = after_flag
        .split("[default: ")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or_else(|| panic!("no default for --aeron-dir in:\n{help}"));
    default.to_string()
}

#[test]
fn the_default_aeron_directory_is_aerons_own_with_or_without_user() {
    let account = nix::unistd::User::from_uid(nix::unistd::getuid())
        .expect("reading the password database")
        .expect("this uid has an account")
        .name;
    for name in ["producer", "consumer"] {
        // No USER: Aeron asks the password database, so the path never ends in "aeron-".
        assert_eq!(
            default_aeron_dir_shown(name, &[], &["USER", "AERON_DIR"]),
            format!("/dev/shm/aeron-{account}")
        );
        assert_eq!(
            default_aeron_dir_shown(name, &[("USER", "alice")], &["AERON_DIR"]),
            "/dev/shm/aeron-alice"
        );
        assert_eq!(
            default_aeron_dir_shown(name, &[("USER", "alice"), ("AERON_DIR", "/tmp/tp-x")], &[]),
            "/tmp/tp-x"
        );
    }
}

#[test]
fn without_a_media_driver_the_error_names_the_directory_the_whole_wait_and_the_fix() {
    let env = TestEnv::new();
    let dir = env.aeron_dir().display().to_string();
    let mut producer = spawn_example(&env, "producer", "producer", &["--timeout-s", "2"]);
    let status = wait_ended(&mut producer, "a producer without a media driver");
    let stderr = producer.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    // The final message (the retries before it are logged, each after one attempt).
    let prefix = format!("producer: no active media driver in {dir} after waiting ");
    let waited: f64 = stderr
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split('s').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("{prefix:?} and a wait in seconds in:\n{stderr}"));
    assert!(waited >= 2.0, "the whole wait, not one attempt: {stderr}");
    assert!(
        stderr.contains(&format!(
            "is tp-driver (or aeronmd) running with Aeron directory {dir}?"
        )) && stderr.contains("--aeron-dir"),
        "{stderr}"
    );
}

#[test]
fn a_consumer_that_never_attached_names_the_last_refusal_and_the_fix() {
    let (env, _, _driver) = fast_lease_driver("tp-examples-consumer-unknown");
    // Retried to the end: a producer with --create could still make the stream.
    let mut consumer = spawn_example(
        &env,
        "consumer",
        "consumer",
        &["--stream-id", "12345", "--frames", "10", "--timeout-s", "2"],
    );
    let status = wait_ended(&mut consumer, "a consumer of an unknown stream");
    let stderr = consumer.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "received 0 of 10 frames before the timeout; not attached: the driver's last \
             refusal: REJECTED: stream not provisioned; add a [streams.<name>] entry"
        ),
        "{stderr}"
    );
}

#[test]
fn a_rate_limited_consumer_counts_frames_skipped_by_rate_apart_from_drops() {
    let (env, settings, _driver) = fast_lease_driver("tp-examples-rate");
    // 50 frames a second out of 1,000: 40 frames span most of a second of the stream.
    let mut consumer = spawn_example(
        &env,
        "consumer",
        "consumer",
        &["--frames", "40", "--verify", "--max-rate-hz", "50"],
    );
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 1,
    );
    let mut producer = spawn_example(
        &env,
        "producer",
        "producer",
        &[
            "--frames",
            "3000",
            "--payload-bytes",
            "1000",
            "--rate",
            "1000",
        ],
    );
    wait_success(&mut consumer, "the rate-limited consumer");
    producer.kill();
    let received = summary(&consumer);
    assert_eq!(received.u64("frames_received"), 40, "{received}");
    assert_eq!(received.u64("frames_verified"), 40, "{received}");
    // GCRA with a tolerance of one period: 40 frames need at least 38 periods (20 ms)
    // of the producer's timestamps, i.e. hundreds of frames skipped at 1 kHz.
    assert!(received.u64("frames_rate_limited") >= 38, "{received}");
    for key in [
        "verify_failures",
        "drops_gap",
        "drops_late",
        "drops_resync",
        "drops_invalid",
        "qos_drops_gap",
        "qos_drops_late",
    ] {
        assert_eq!(
            received.u64(key),
            0,
            "skipped by rate is no drop: {key}: {received}"
        );
    }
}
