//! The C and C++ examples interoperate with the Rust ones through a real `tp-driver`:
//! each pair moves frames of the shared pattern and the consumer verifies every byte of
//! every frame it accepts. Runs that cannot succeed end by themselves, saying why.
//! Assertions are on the JSON lines and messages the programs print.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/system.rs"]
mod system;

mod cbuild;

use cbuild::{client_args, compile, driver_envs, Flavor, Lang, Proc};
use std::path::Path;
use std::time::Duration;
use support::{wait_for_counter, DriverSettings, ProcessDriver, TestEnv, DEADLINE, DYNAMIC_RANGE};
use system::JsonLine;

/// Frames the producer publishes; the consumer must accept [`FRAMES_NEEDED`] of them
/// (it may attach after the first ones went out, and may drop a few when descheduled).
const FRAMES_SENT: u64 = 1500;
const FRAMES_NEEDED: u64 = 300;
/// Longest run of one program.
const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// A running driver for the pair tests.
fn start_driver(env: &TestEnv, instance: &str) -> ProcessDriver {
    let settings = DriverSettings {
        instance_id: instance.into(),
        ..DriverSettings::shared_announce()
    };
    let config = env.write("driver.toml", &settings.toml(env));
    let envs = driver_envs();
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut driver = ProcessDriver::start(env, "driver", &config, &envs);
    driver.wait_running(DEADLINE);
    driver
}

/// The last JSON line a program printed.
fn summary(process: &Proc) -> JsonLine {
    process
        .stdout()
        .lines()
        .rev()
        .find_map(JsonLine::parse)
        .unwrap_or_else(|| panic!("no JSON summary from {}", process.describe()))
}

/// Runs `consumer` then `producer` (both taking the examples' flags) against one driver
/// and checks both summaries.
fn pair(name: &str, producer: &Path, consumer: &Path, payload_bytes: usize) {
    pair_with(name, producer, consumer, payload_bytes, &[], &[]);
}

/// [`pair`] with extra flags for each side; returns both summaries.
fn pair_with(
    name: &str,
    producer: &Path,
    consumer: &Path,
    payload_bytes: usize,
    producer_extra: &[&str],
    consumer_extra: &[&str],
) -> (JsonLine, JsonLine) {
    let env = TestEnv::new();
    let _driver = start_driver(&env, &format!("tp-ffi-{name}"));
    let mut consumer_args = client_args(&env);
    consumer_args.extend(
        [
            "--frames",
            &FRAMES_NEEDED.to_string(),
            "--verify",
            "--timeout-s",
            "30",
            "--announce-period-ms",
            "200",
        ]
        .map(String::from),
    );
    consumer_args.extend(consumer_extra.iter().map(|a| a.to_string()));
    let mut consumer = Proc::spawn(&env, "consumer", consumer, &consumer_args);
    let mut producer_args = client_args(&env);
    producer_args.extend(
        [
            "--frames",
            &FRAMES_SENT.to_string(),
            "--payload-bytes",
            &payload_bytes.to_string(),
            "--rate",
            "1000",
            "--timeout-s",
            "30",
        ]
        .map(String::from),
    );
    producer_args.extend(producer_extra.iter().map(|a| a.to_string()));
    let mut producer = Proc::spawn(&env, "producer", producer, &producer_args);

    let producer_status = producer.finish(RUN_TIMEOUT);
    let consumer_status = consumer.finish(RUN_TIMEOUT);
    let sent = summary(&producer);
    let received = summary(&consumer);
    assert!(producer_status.success(), "{}", producer.describe());
    assert!(consumer_status.success(), "{}", consumer.describe());
    assert_eq!(sent.text("role"), Some("producer"), "{sent}");
    assert_eq!(sent.u64("frames_sent"), FRAMES_SENT, "{sent}");
    assert_eq!(received.text("role"), Some("consumer"), "{received}");
    assert!(
        received.u64("frames_received") >= FRAMES_NEEDED,
        "{received}"
    );
    assert_eq!(received.u64("verify_failures"), 0, "{received}");
    assert_eq!(
        received.u64("frames_verified"),
        received.u64("frames_received"),
        "every accepted frame carries the pattern: {received}"
    );
    (sent, received)
}

/// Trace ids set per frame by one language's producer reach the other's consumer: frame
/// `s` carries `TRACE_BASE + s` in its descriptor (Wire Spec §10.2.1).
const TRACE_BASE: &str = "900000000000";

fn traced_pair(name: &str, producer: &Path, consumer: &Path) {
    let (_, received) = pair_with(
        name,
        producer,
        consumer,
        1000,
        &["--trace-id", TRACE_BASE],
        &["--expect-trace-id", TRACE_BASE],
    );
    assert_eq!(received.u64("trace_failures"), 0, "{received}");
    assert_eq!(
        received.u64("trace_ids_verified"),
        received.u64("frames_received"),
        "every frame carried its trace id: {received}"
    );
}

#[test]
fn trace_ids_from_the_rust_producer_reach_the_c_consumer() {
    traced_pair(
        "trace-rust-to-c",
        &rust_example("producer"),
        &c_example("consumer"),
    );
}

#[test]
fn trace_ids_from_the_c_producer_reach_the_rust_consumer() {
    traced_pair(
        "trace-c-to-rust",
        &c_example("producer"),
        &rust_example("consumer"),
    );
}

/// The producer flags of the metadata tests: metadata from the start, changed before
/// frame 100 (the consumer reads 300 frames), re-announced every 200 ms.
const METADATA_FLAGS: [&str; 10] = [
    "--meta-name",
    "cam \"left\"",
    "--meta-summary",
    "uint8 test pattern",
    "--meta-attr",
    "lens=35mm",
    "--meta-change-at",
    "100",
    "--meta-interval-ms",
    "200",
];

/// The consumer's summary shows the producer's second metadata version, frames carried
/// it from the change on, and never went back to the first.
fn assert_metadata_exchanged(received: &JsonLine) {
    assert_eq!(received.u64("meta_version"), 2, "{received}");
    assert_eq!(
        received.text("meta_name"),
        Some("cam \"left\""),
        "{received}"
    );
    assert_eq!(
        received.text("meta_summary"),
        Some("uint8 test pattern"),
        "{received}"
    );
    assert_eq!(
        received.text("meta_attrs"),
        Some("lens=35mm;phase=2"),
        "{received}"
    );
    assert!(received.u64("meta_changes") >= 1, "{received}");
    assert!(
        (1..=2).contains(&received.u64("first_frame_meta_version")),
        "every frame carries metadata: {received}"
    );
    assert_eq!(received.u64("last_frame_meta_version"), 2, "{received}");
    assert_eq!(received.u64("frame_meta_regressions"), 0, "{received}");
}

#[test]
fn c_producer_metadata_reaches_the_rust_consumer_and_its_change_tags_later_frames() {
    let (_, received) = pair_with(
        "meta-c-to-rust",
        &c_example("producer"),
        &rust_example("consumer"),
        1000,
        &METADATA_FLAGS,
        &[],
    );
    assert_metadata_exchanged(&received);
}

#[test]
fn rust_producer_metadata_reaches_the_c_consumer_and_its_change_tags_later_frames() {
    let (_, received) = pair_with(
        "meta-rust-to-c",
        &rust_example("producer"),
        &c_example("consumer"),
        1000,
        &METADATA_FLAGS,
        &[],
    );
    assert_metadata_exchanged(&received);
}

fn rust_example(name: &str) -> std::path::PathBuf {
    cbuild::artifacts().rust_example(name)
}

fn c_example(name: &str) -> std::path::PathBuf {
    compile(
        &format!("{name}-c"),
        Lang::C,
        Flavor::Shared,
        &[&format!("examples/{name}.c")],
    )
}

#[test]
fn c_producer_frames_reach_the_rust_consumer_intact() {
    pair(
        "c-to-rust",
        &c_example("producer"),
        &rust_example("consumer"),
        65536,
    );
}

#[test]
fn rust_producer_frames_reach_the_c_consumer_intact() {
    pair(
        "rust-to-c",
        &rust_example("producer"),
        &c_example("consumer"),
        1000,
    );
}

#[test]
fn c_producer_frames_reach_the_cpp_consumer_intact() {
    let consumer = compile(
        "consumer-cpp",
        Lang::Cxx,
        Flavor::Shared,
        &["examples/consumer.cpp"],
    );
    pair("c-to-cpp", &c_example("producer"), &consumer, 4096);
}

/// `--timeout-s` of runs that must end by themselves long before it.
const LONG_TIMEOUT_S: &str = "600";

fn with_args(env: &TestEnv, extra: &[&str]) -> Vec<String> {
    let mut args = client_args(env);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn c_producer_on_an_unknown_stream_stops_at_once_with_the_reason_and_the_fix() {
    let env = TestEnv::new();
    let _driver = start_driver(&env, "tp-ffi-unknown");
    let args = with_args(
        &env,
        &["--stream-id", "12345", "--timeout-s", LONG_TIMEOUT_S],
    );
    let mut producer = Proc::spawn(&env, "producer", &c_example("producer"), &args);
    let status = producer.finish(RUN_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{}", producer.describe());
    let stderr = producer.stderr();
    for expected in [
        "the driver refused stream 12345 (REJECTED: stream not provisioned)",
        "[streams.<name>]",
        "--create",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    assert_eq!(summary(&producer).u64("stream_id"), 0);
}

#[test]
fn c_consumer_that_never_attached_names_the_last_refusal() {
    let env = TestEnv::new();
    let _driver = start_driver(&env, "tp-ffi-consumer-unknown");
    let args = with_args(
        &env,
        &["--stream-id", "12345", "--frames", "10", "--timeout-s", "2"],
    );
    let mut consumer = Proc::spawn(&env, "consumer", &c_example("consumer"), &args);
    let status = consumer.finish(RUN_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{}", consumer.describe());
    assert!(
        consumer.stderr().contains(
            "received 0 of 10 frames before the timeout; not attached: the driver's last \
             refusal: REJECTED"
        ),
        "{}",
        consumer.describe()
    );
}

#[test]
fn c_producer_prints_the_stream_the_driver_created_for_it() {
    let env = TestEnv::new();
    let _driver = start_driver(&env, "tp-ffi-create");
    let args = with_args(
        &env,
        &[
            "--stream-id",
            "12345",
            "--create",
            "--frames",
            "20",
            "--linger-ms",
            "0",
        ],
    );
    let mut producer = Proc::spawn(&env, "producer", &c_example("producer"), &args);
    let status = producer.finish(RUN_TIMEOUT);
    assert!(status.success(), "{}", producer.describe());
    let granted = DYNAMIC_RANGE.0;
    let line = summary(&producer);
    assert_eq!(line.u64("stream_id"), u64::from(granted), "{line}");
    assert_eq!(line.u64("requested_stream_id"), 12345, "{line}");
    assert!(
        producer
            .stderr()
            .contains(&format!("run consumers with --stream-id {granted}")),
        "{}",
        producer.describe()
    );
}

#[test]
fn c_and_cpp_consumers_end_soon_after_their_producer_detached() {
    let env = TestEnv::new();
    let instance = "tp-ffi-finished";
    let _driver = start_driver(&env, instance);
    let consumer_args = with_args(
        &env,
        &[
            "--frames",
            "1000000",
            "--timeout-s",
            LONG_TIMEOUT_S,
            "--announce-period-ms",
            "200",
        ],
    );
    let cpp = compile(
        "consumer-cpp",
        Lang::Cxx,
        Flavor::Shared,
        &["examples/consumer.cpp"],
    );
    let mut consumers = [
        Proc::spawn(&env, "consumer-c", &c_example("consumer"), &consumer_args),
        Proc::spawn(&env, "consumer-cpp", &cpp, &consumer_args),
    ];
    let settings = DriverSettings {
        instance_id: instance.into(),
        ..DriverSettings::shared_announce()
    };
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 2,
    );
    let producer_args = with_args(
        &env,
        &[
            "--frames",
            "200",
            "--payload-bytes",
            "1000",
            "--rate",
            "1000",
        ],
    );
    let mut producer = Proc::spawn(&env, "producer", &rust_example("producer"), &producer_args);
    assert!(
        producer.finish(RUN_TIMEOUT).success(),
        "{}",
        producer.describe()
    );
    for consumer in &mut consumers {
        let status = consumer.finish(RUN_TIMEOUT);
        assert_eq!(
            status.code(),
            Some(1),
            "fewer frames than asked: {}",
            consumer.describe()
        );
        let stderr = consumer.stderr();
        assert!(
            stderr.contains("of 1000000 frames: the producer detached"),
            "{}",
            consumer.describe()
        );
        assert!(
            !stderr.contains("PRODUCER_REVOKED"),
            "a normal detach is not reported as a problem: {stderr}"
        );
        let got = summary(consumer).u64("frames_received");
        assert!(got > 0 && got <= 200, "{}", consumer.describe());
    }
}

#[test]
fn c_progress_example_reads_rows_while_they_land_and_then_the_whole_frame() {
    let env = TestEnv::new();
    let _driver = start_driver(&env, "tp-ffi-progress");
    let args = with_args(
        &env,
        &[
            "--frames",
            "10",
            "--rows",
            "32",
            "--row-bytes",
            "1024",
            "--timeout-s",
            "30",
        ],
    );
    let mut run = Proc::spawn(&env, "progress", &c_example("progress"), &args);
    let status = run.finish(RUN_TIMEOUT);
    assert!(status.success(), "{}", run.describe());
    let line = summary(&run);
    assert_eq!(line.text("role"), Some("progress"), "{line}");
    assert_eq!(line.u64("frames"), 10, "{line}");
    assert!(line.u64("prefixes") > 0, "{line}");
    assert!(line.u64("prefix_bytes") > 0, "{line}");
    assert_eq!(line.u64("verify_failures"), 0, "{line}");
}
