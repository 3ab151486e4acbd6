//! System tests of `libtensorpool_aeronmd.so` in a stock aeronmd (docs/DESIGN.md, "aeronmd
//! plugin"): the example producer and consumer move verified frames through it, a bad
//! configuration stops the media driver from starting and names the problem, and the
//! library exports nothing but its entry point and uses the host's Aeron client. The
//! protocol rules themselves are checked against this host by `tests/driver_protocol.rs`
//! and `tests/driver_process.rs`.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use support::hosts::{self, plugin_artifacts, AeronmdDriver, Threading, SUPPLIER};
use support::*;
use tensorpool::protocol::driver::{Role, ShutdownReason};

/// Frames the producer sends; the consumer asks for fewer, since one that attaches after
/// the first frames, or falls behind, drops some (and counts them) by design.
const FRAMES_SENT: u64 = 3_000;
const FRAMES_WANTED: u64 = 1_000;

/// The example binaries, built once per test process in the test's profile.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in target/<profile>/deps");
        let mut cargo = Command::new(env!("CARGO"));
        cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args([
            "build",
            "--locked",
            "--example",
            "producer",
            "--example",
            "consumer",
        ]);
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            cargo.arg("--release");
        }
        let built = cargo.output().expect("running cargo build");
        assert!(
            built.status.success(),
            "building the examples failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        profile_dir.join("examples")
    });
    dir.join(name)
}

fn example_frames_pass_through(threading: Threading) {
    let env = TestEnv::new();
    let settings = DriverSettings::separate_announce();
    let driver = AeronmdDriver::start(&env, &settings, threading);
    let aeron_dir = driver.aeron_dir().to_str().expect("UTF-8").to_owned();
    let shm_dir = env.shm_dir().to_str().expect("UTF-8").to_owned();
    let stream = STATIC_STREAM.to_string();
    let announce = SEPARATE_ANNOUNCE_STREAM.to_string();
    let common = [
        "--aeron-dir",
        &aeron_dir,
        "--stream-id",
        &stream,
        "--channel",
        CHANNEL,
        "--announce-stream-id",
        &announce,
        "--allowed-base-dir",
        &shm_dir,
    ];
    let consumer = Command::new(example("consumer"))
        .args(common)
        .args(["--frames", &FRAMES_WANTED.to_string(), "--timeout-s", "30"])
        .arg("--verify")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the example consumer");
    // Publish only once the consumer holds its lease, so it sees the frames.
    wait_for_counter(
        driver.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v >= 1,
    );
    // 3000 frames of 4000 bytes at 2000 a second: the 4 KiB pool.
    let producer = Command::new(example("producer"))
        .args(common)
        .args(["--frames", &FRAMES_SENT.to_string()])
        .args([
            "--payload-bytes",
            "4000",
            "--rate",
            "2000",
            "--timeout-s",
            "30",
        ])
        .output()
        .expect("running the example producer");
    let consumer = consumer.wait_with_output().expect("the example consumer");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    assert!(
        producer.status.success(),
        "producer: {}\n{}",
        text(&producer.stdout),
        text(&producer.stderr)
    );
    assert!(
        consumer.status.success(),
        "consumer: {}\n{}",
        text(&consumer.stdout),
        text(&consumer.stderr)
    );
    let report = text(&consumer.stdout);
    assert!(report.contains("\"verify_failures\":0"), "{report}");
    let received = json_u64(&report, "frames_received");
    assert!(received >= FRAMES_WANTED, "{report}");
    assert_eq!(json_u64(&report, "frames_verified"), received, "{report}");
}

/// The unsigned number after `"key":` in a one-line JSON report.
fn json_u64(report: &str, key: &str) -> u64 {
    let pattern = format!("\"{key}\":");
    let start = report
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {key} in {report}"))
        + pattern.len();
    report[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {report}: {e}"))
}

#[test]
fn example_frames_pass_through_aeronmd_shared() {
    example_frames_pass_through(Threading::Shared);
}

#[test]
fn example_frames_pass_through_aeronmd_dedicated() {
    example_frames_pass_through(Threading::Dedicated);
}

#[test]
fn example_frames_pass_through_aeronmd_shared_network() {
    example_frames_pass_through(Threading::SharedNetwork);
}

#[test]
fn an_aeron_terminate_request_stops_aeronmd_after_the_shutdown_notice() {
    let env = TestEnv::new();
    let settings = DriverSettings::separate_announce();
    let config = env.write("driver.toml", &settings.toml(&env));
    let mut process = AeronmdDriver::spawn(
        &env,
        "aeronmd",
        &config,
        Threading::Shared,
        &[("AERON_DRIVER_TERMINATION_VALIDATOR", "allow")],
    );
    process.wait_running(DEADLINE);
    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);
    client.attach_ok(STATIC_STREAM, 5, Role::Consumer);

    let dir = std::ffi::CString::new(env.aeron_dir().to_str().expect("UTF-8")).expect("no NUL");
    // SAFETY: a NUL-terminated directory and an empty token, as Aeron's C API takes them.
    let sent = unsafe {
        rusteron_client::bindings::aeron_context_request_driver_termination(
            dir.as_ptr(),
            std::ptr::null(),
            0,
        )
    };
    assert!(sent >= 0, "the terminate request was not sent: {sent}");
    let notice = client.wait_for("ShmDriverShutdown", OwnedMessage::is_shutdown);
    assert_eq!(
        notice,
        OwnedMessage::Shutdown {
            reason: ShutdownReason::Normal,
            error_message: String::new()
        }
    );
    let status = process.expect_exit(DEADLINE);
    assert!(status.success(), "{status}; stderr:\n{}", process.stderr());
}

/// Starts aeronmd with the plugin on `config_text` (and `envs`) and expects it to refuse to
/// start: a non-zero exit within the deadline, no CnC left serving; returns its stderr.
fn refused_start(env: &TestEnv, config_text: Option<&str>, envs: &[(&str, &str)]) -> String {
    let config = match config_text {
        Some(text) => env.write("driver.toml", text),
        None => env.path().join("absent.toml"),
    };
    let mut process = AeronmdDriver::spawn(env, "aeronmd", &config, Threading::Shared, envs);
    let status = process.expect_exit(DEADLINE);
    let stderr = process.stderr();
    assert_eq!(status.code(), Some(1), "{status}; stderr:\n{stderr}");
    assert!(
        !stderr.contains(hosts::PLUGIN_READY),
        "the plugin ran:\n{stderr}"
    );
    stderr
}

#[test]
fn a_bad_config_key_stops_aeronmd_naming_the_key() {
    let env = TestEnv::new();
    let good = DriverSettings::shared_announce().toml(&env);
    let unknown = good.replace("[policies]\n", "[policies]\nlease_expiry_typo = 3\n");
    let stderr = refused_start(&env, Some(&unknown), &[]);
    assert!(
        stderr.contains("policies.lease_expiry_typo"),
        "stderr:\n{stderr}"
    );
    // aeronmd's own report of the failed start carries the plugin's reason too.
    assert!(stderr.contains("ERROR: driver init"), "stderr:\n{stderr}");

    // A fresh directory: the refused aeronmd left a CnC file whose heartbeat is still fresh.
    let env = TestEnv::new();
    let good = DriverSettings::shared_announce().toml(&env);
    let bad_value = good.replace("control_stream_id = 1000", "control_stream_id = -1");
    let stderr = refused_start(&env, Some(&bad_value), &[]);
    assert!(
        stderr.contains("driver.control_stream_id"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn a_bad_environment_override_stops_aeronmd_naming_the_variable() {
    let env = TestEnv::new();
    let good = DriverSettings::shared_announce().toml(&env);
    let stderr = refused_start(
        &env,
        Some(&good),
        &[("POLICIES_ANNOUNCE_PERIOD_MS", "soon")],
    );
    assert!(
        stderr.contains("POLICIES_ANNOUNCE_PERIOD_MS"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn a_missing_config_stops_aeronmd_naming_the_file_or_variable() {
    let env = TestEnv::new();
    let stderr = refused_start(&env, None, &[]);
    assert!(stderr.contains("absent.toml"), "stderr:\n{stderr}");
    // Without the variable at all (AeronmdDriver::spawn sets it, so start aeronmd here), in
    // a fresh directory: the refused aeronmd left a CnC file whose heartbeat is still fresh.
    let env = TestEnv::new();
    let artifacts = plugin_artifacts();
    let output = Command::new(&artifacts.aeronmd)
        .env("AERON_DIR", env.aeron_dir())
        .env("AERON_DRIVER_DYNAMIC_LIBRARIES", &artifacts.plugin)
        .env("AERON_NAME_RESOLVER_SUPPLIER", SUPPLIER)
        .env_remove("TENSORPOOL_DRIVER_CONFIG")
        .output()
        .expect("running aeronmd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("TENSORPOOL_DRIVER_CONFIG is not set"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn an_unusable_base_dir_stops_aeronmd_naming_the_path() {
    let env = TestEnv::new();
    // A regular file where the SHM base directory should be.
    let blocker = env.write("not-a-dir", "");
    let text = DriverSettings::shared_announce().toml(&env).replace(
        &env.shm_dir().display().to_string(),
        &blocker.display().to_string(),
    );
    let stderr = refused_start(&env, Some(&text), &[]);
    assert!(
        stderr.contains(&blocker.display().to_string()),
        "stderr:\n{stderr}"
    );
}

#[test]
fn another_aeron_dir_in_the_config_stops_aeronmd_naming_the_key() {
    let env = TestEnv::new();
    let text = DriverSettings::shared_announce().toml(&env).replace(
        &format!("aeron_dir = \"{}\"", env.aeron_dir().display()),
        "aeron_dir = \"/dev/shm/some-other-aeron\"",
    );
    let stderr = refused_start(&env, Some(&text), &[]);
    assert!(stderr.contains("driver.aeron_dir"), "stderr:\n{stderr}");
}

/// Lines of `nm -D` with `flag` over `path`: (type letter, symbol name).
fn dynamic_symbols(path: &Path, flag: &str) -> Vec<(String, String)> {
    let output = Command::new("nm")
        .args(["-D", flag])
        .arg(path)
        .output()
        .expect("running nm (binutils)");
    assert!(output.status.success(), "nm failed on {}", path.display());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().rev();
            let name = fields.next()?.to_owned();
            let kind = fields.next()?.to_owned();
            Some((kind, name))
        })
        .collect()
}

#[test]
fn the_plugin_exports_only_its_entry_point_and_brings_no_aeron_of_its_own() {
    let plugin = &plugin_artifacts().plugin;
    let exported: Vec<String> = dynamic_symbols(plugin, "--defined-only")
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        exported,
        [SUPPLIER],
        "exported symbols of {}",
        plugin.display()
    );
    // Aeron's client comes from the host's libaeron.so: the plugin only refers to it.
    let imported = dynamic_symbols(plugin, "--undefined-only");
    let aeron: Vec<&str> = imported
        .iter()
        .filter(|(_, name)| name.starts_with("aeron_"))
        .map(|(_, name)| name.as_str())
        .collect();
    assert!(
        aeron.contains(&"aeron_init") && aeron.contains(&"aeron_main_do_work"),
        "the plugin should use the host's Aeron client: {aeron:?}"
    );
    assert!(
        !aeron.iter().any(|name| name.starts_with("aeron_driver_")),
        "the plugin must not need the media driver's symbols: {aeron:?}"
    );
}

#[test]
fn inside_aeronmd_one_copy_of_each_aeron_library_is_mapped() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = AeronmdDriver::start(&env, &settings, Threading::Dedicated);
    // The plugin's client is connected (its counters exist), so all of it is loaded.
    wait_for_counter(
        driver.aeron_dir(),
        &settings.counter_label("attaches ok"),
        |v| v == 0,
    );
    let mut driver = driver;
    let pid = driver.process().pid();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("reading maps");
    let mut files: Vec<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.contains("libaeron") || path.contains("tensorpool_aeronmd"))
        .collect();
    files.sort_unstable();
    files.dedup();
    let names: Vec<&str> = files
        .iter()
        .map(|path| path.rsplit('/').next().unwrap_or(path))
        .collect();
    assert_eq!(
        names,
        [
            "libaeron.so",
            "libaeron_driver.so",
            "libtensorpool_aeronmd.so"
        ],
        "mapped: {files:?}"
    );
}
