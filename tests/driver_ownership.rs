//! One driver per SHM namespace and per control stream (Driver Model §3, §15): a second
//! driver started by mistake beside a running one is refused by the operating system's
//! lock, names the driver that holds it and the fix, and leaves the first one's live
//! epochs and clients alone, whichever host it runs in.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::hosts::{AeronmdDriver, Threading};
use support::*;
use tensorpool::protocol::driver::Role;

/// A refused driver gives up at once; this only bounds a hang.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(30);

/// The epoch directories of `stream_id` under `env`'s SHM base directory.
fn epoch_dir(env: &TestEnv, stream_id: u32, epoch: u64) -> PathBuf {
    let users = std::fs::read_dir(env.shm_dir()).expect("shm base dir");
    users
        .filter_map(|e| e.ok())
        .map(|e| {
            e.path()
                .join("test")
                .join(stream_id.to_string())
                .join(epoch.to_string())
        })
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no directory of stream {stream_id} epoch {epoch}"))
}

/// A running tp-driver with a producer holding a live epoch; returns the driver, the
/// client keeping the lease alive, the lease and its epoch directory.
fn first_driver_with_a_live_epoch(
    env: &TestEnv,
    settings: &DriverSettings,
) -> (ProcessDriver, TestClient, LeaseRef, PathBuf) {
    let config = env.write("driver.toml", &settings.toml(env));
    let mut first = ProcessDriver::start(env, "first", &config, &[]);
    first.wait_running(DEADLINE);
    let mut client = TestClient::for_settings(&env.aeron_dir(), settings);
    let lease = client.attach_ok(STATIC_STREAM, 7, Role::Producer);
    let dir = epoch_dir(env, STATIC_STREAM, lease.epoch);
    (first, client, lease, dir)
}

/// The first driver still serves: its producer's epoch is there, its lease alive, and a
/// new consumer is granted that same epoch.
fn assert_first_unharmed(client: &mut TestClient, lease: &LeaseRef, dir: &Path) {
    static NEXT_CONSUMER_ID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(8);
    client.pump_for(Duration::from_millis(200));
    assert!(dir.is_dir(), "{} was removed", dir.display());
    let consumer_id = NEXT_CONSUMER_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let consumer = client.attach_ok(STATIC_STREAM, consumer_id, Role::Consumer);
    assert_eq!(
        consumer.epoch, lease.epoch,
        "the producer's epoch is current"
    );
}

/// Runs a second `tp-driver` on the test's configuration with `envs` and returns its
/// stderr once it has exited with status 1, as a refused driver must.
fn refused_driver(env: &TestEnv, label: &str, envs: &[(&str, &str)]) -> String {
    let config = env.path().join("driver.toml");
    let config = config.to_str().expect("UTF-8 path");
    let mut driver = ProcessDriver::spawn(env, label, &["--config", config], envs);
    let status = driver.expect_exit(REFUSAL_DEADLINE);
    assert_eq!(status.code(), Some(1), "stderr:\n{}", driver.stderr());
    driver.stderr()
}

fn assert_refused_naming(stderr: &str, first_pid: u32, what: &str, fix: &str) {
    assert!(stderr.contains(what), "names what is taken: {stderr}");
    assert!(
        stderr.contains(&format!("pid {first_pid}")),
        "names the holder's pid: {stderr}"
    );
    assert!(
        stderr.contains("\"tp-test\""),
        "names the holder's instance id: {stderr}"
    );
    assert!(stderr.contains(fix), "names the fix: {stderr}");
}

#[test]
fn second_drivers_on_the_same_media_driver_are_refused_and_the_first_keeps_its_epochs() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let (mut first, mut client, lease, dir) = first_driver_with_a_live_epoch(&env, &settings);
    let stderr = refused_driver(
        &env,
        "second",
        &[
            ("DRIVER_MEDIA_DRIVER", "external"),
            ("DRIVER_INSTANCE_ID", "second"),
            ("POLICIES_DELETE_SHM_ON_STARTUP", "true"),
            ("POLICIES_EPOCH_GC_ON_STARTUP", "true"),
        ],
    );
    // The SHM side is claimed first, before any media driver is started or joined.
    assert_refused_naming(&stderr, first.pid(), "SHM namespace", "shm.namespace");
    assert_first_unharmed(&mut client, &lease, &dir);

    // Its own namespace, the same control stream of the same media driver: it would
    // answer the first driver's clients.
    let stderr = refused_driver(
        &env,
        "third",
        &[
            ("DRIVER_MEDIA_DRIVER", "external"),
            ("DRIVER_INSTANCE_ID", "third"),
            ("SHM_NAMESPACE", "elsewhere"),
        ],
    );
    assert_refused_naming(
        &stderr,
        first.pid(),
        &format!("control stream {CONTROL_STREAM}"),
        "driver.control_stream_id",
    );
    assert_first_unharmed(&mut client, &lease, &dir);
    assert!(
        first.wait(Duration::ZERO).is_none(),
        "the first driver runs on"
    );
}

#[test]
fn a_second_driver_with_its_own_media_driver_but_the_same_namespace_is_refused() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let (first, mut client, lease, dir) = first_driver_with_a_live_epoch(&env, &settings);
    let other = TestEnv::new();
    let other_aeron = other.aeron_dir();
    let stderr = refused_driver(
        &env,
        "second",
        &[
            (
                "DRIVER_AERON_DIR",
                other_aeron.to_str().expect("UTF-8 path"),
            ),
            ("DRIVER_INSTANCE_ID", "second"),
            ("POLICIES_DELETE_SHM_ON_STARTUP", "true"),
            ("POLICIES_EPOCH_GC_ON_STARTUP", "true"),
        ],
    );
    assert_refused_naming(&stderr, first.pid(), "SHM namespace", "shm.namespace");
    assert_first_unharmed(&mut client, &lease, &dir);
}

#[test]
fn the_aeronmd_plugin_obeys_the_same_rule() {
    // Built first: the first driver's client is not pumped while the build runs.
    support::hosts::plugin_artifacts();
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let (first, mut client, lease, dir) = first_driver_with_a_live_epoch(&env, &settings);
    // Its own media driver and Aeron directory, the first driver's SHM base directory.
    let other = TestEnv::new();
    let text = settings
        .toml(&other)
        .replace(
            &other.shm_dir().display().to_string(),
            &env.shm_dir().display().to_string(),
        )
        .replace(
            "delete_shm_on_startup = false",
            "delete_shm_on_startup = true",
        );
    let config = other.write("driver.toml", &text);
    let mut aeronmd = AeronmdDriver::spawn(&other, "aeronmd", &config, Threading::Shared, &[]);
    let status = aeronmd.expect_exit(REFUSAL_DEADLINE);
    assert_eq!(status.code(), Some(1), "stderr:\n{}", aeronmd.stderr());
    assert_refused_naming(
        &aeronmd.stderr(),
        first.pid(),
        "SHM namespace",
        "shm.namespace",
    );
    assert_first_unharmed(&mut client, &lease, &dir);
}

#[test]
fn a_driver_killed_with_sigkill_leaves_no_lock_behind() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let config = env.write("driver.toml", &settings.toml(&env));
    let mut first = ProcessDriver::start(&env, "first", &config, &[]);
    first.wait_running(DEADLINE);
    first.kill();
    let mut second = ProcessDriver::start(&env, "second", &config, &[]);
    second.wait_running(DEADLINE);
    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);
    client.attach_ok(STATIC_STREAM, 9, Role::Producer);
}
