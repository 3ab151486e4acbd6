//! The C and C++ examples interoperate with the Rust ones through a real `tp-driver`:
//! each pair moves frames of the shared pattern and the consumer verifies every byte of
//! every frame it accepts. Assertions are on the JSON lines the programs print.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/system.rs"]
mod system;

mod cbuild;

use cbuild::{client_args, compile, driver_envs, Flavor, Lang, Proc};
use std::path::Path;
use std::time::Duration;
use support::{DriverSettings, ProcessDriver, TestEnv, DEADLINE};
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
