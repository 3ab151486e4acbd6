//! System tests of the driver processes (Driver Model §4.8, §4.13, §6, §10, §14, §17):
//! kill -9 and restart over the same directories and SIGTERM, for `tp-driver` and for a
//! stock aeronmd with the plugin ([`support::hosts`]); an external media driver and the
//! command line of `tp-driver`. Every process is killed by pid when its handle drops.

#[path = "support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::hosts::ProcessHost;
use support::*;
use tensorpool::config::REDACTED;
use tensorpool::protocol::driver::{ResponseCode, Role, ShutdownReason};

/// A restarted aeronmd waits until the dead one's heartbeat is older than Aeron's driver
/// timeout (10 s by default) before it takes over the directory; a restarted `tp-driver`
/// starts at once (the killed one's owner record proves it gone; tests/driver_crash_recovery.rs).
const RESTART_DEADLINE: Duration = Duration::from_secs(20);
/// How long external mode may look for a media driver before giving up (about 10 s).
const EXTERNAL_GIVE_UP: Duration = Duration::from_secs(20);

/// Writes the test configuration and returns its path.
fn write_config(env: &TestEnv, settings: &DriverSettings) -> PathBuf {
    env.write("driver.toml", &settings.toml(env))
}

/// Sends SIGTERM and asserts a clean exit.
fn terminate(host: ProcessHost, driver: &mut ProcessDriver) {
    driver.signal(Signal::SIGTERM);
    let status = driver.expect_exit(DEADLINE);
    host.assert_terminated(status, &driver.stderr());
}

fn restart_after_kill_9_bumps_the_epoch_and_forgets_old_leases(host: ProcessHost) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let config = write_config(&env, &settings);

    let mut first = host.spawn(&env, "first", &config);
    first.wait_running(DEADLINE);
    let old = {
        let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);
        client.attach_ok(STATIC_STREAM, 7, Role::Producer)
    };
    first.kill();

    let restarting = Instant::now();
    let mut second = host.spawn(&env, "second", &config);
    second.wait_running(RESTART_DEADLINE);
    eprintln!(
        "restart over the killed driver's files took {:?}",
        restarting.elapsed()
    );

    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);
    let new = client.attach_ok(STATIC_STREAM, 7, Role::Producer);
    assert!(
        new.epoch > old.epoch,
        "epoch {} after restart, {} before",
        new.epoch,
        old.epoch
    );
    assert_ne!(new.lease_id, old.lease_id);

    client.keepalive(&old);
    let ignored = settings.counter_label("keepalives ignored");
    assert_eq!(client.wait_for_counter(&ignored, |v| v >= 1), 1);
    let stale = client.detach(&old);
    assert_eq!(
        (stale.code, stale.error_message.as_str()),
        (ResponseCode::Rejected, "unknown lease"),
        "{stale:?}"
    );
    assert_eq!(client.detach(&new).code, ResponseCode::Ok);
    drop(client);
    terminate(host, &mut second);
}

fn sigterm_sends_normal_shutdown_and_leaves_no_stale_lease(host: ProcessHost) {
    let env = TestEnv::new();
    let settings = DriverSettings::separate_announce();
    let config = write_config(&env, &settings);
    let mut driver = host.spawn(&env, "driver", &config);
    driver.wait_running(DEADLINE);

    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);
    let old = client.attach_ok(STATIC_STREAM, 8, Role::Producer);
    driver.signal(Signal::SIGTERM);
    let notice = client.wait_for("ShmDriverShutdown", OwnedMessage::is_shutdown);
    assert_eq!(
        notice,
        OwnedMessage::Shutdown {
            reason: ShutdownReason::Normal,
            error_message: String::new()
        }
    );
    let status = driver.expect_exit(DEADLINE);
    host.assert_terminated(status, &driver.stderr());
    drop(client);

    // The next driver over the same directories owes the old producer nothing: the stream
    // takes a new producer at once, in a later epoch.
    let mut next = host.spawn(&env, "next", &config);
    next.wait_running(DEADLINE);
    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);
    let new = client.attach_ok(STATIC_STREAM, 9, Role::Producer);
    assert!(
        new.epoch > old.epoch,
        "epoch {} after {}",
        new.epoch,
        old.epoch
    );
    let stale = client.detach(&old);
    assert_eq!(stale.code, ResponseCode::Rejected, "{stale:?}");
    drop(client);
    terminate(host, &mut next);
}

// Each runs once per driver process: tp-driver, aeronmd SHARED, aeronmd DEDICATED.
for_each_process_host!(
    restart_after_kill_9_bumps_the_epoch_and_forgets_old_leases,
    sigterm_sends_normal_shutdown_and_leaves_no_stale_lease,
);

#[test]
fn external_mode_uses_a_running_media_driver() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let config = write_config(&env, &settings);
    let aeron_dir = env.aeron_dir();
    let _media_driver = MediaDriverThread::start(&aeron_dir);

    let dir = aeron_dir.to_str().unwrap();
    let overrides = [
        ("DRIVER_MEDIA_DRIVER", "external"),
        ("DRIVER_AERON_DIR", dir),
    ];
    let mut driver = ProcessDriver::start(&env, "external", &config, &overrides);
    driver.wait_running(DEADLINE);
    let mut client = TestClient::for_settings(&aeron_dir, &settings);
    let lease = client.attach_ok(STATIC_STREAM, 9, Role::Producer);
    assert_eq!(client.detach(&lease).code, ResponseCode::Ok);
    drop(client);
    terminate(ProcessHost::TpDriver, &mut driver);
}

#[test]
fn external_mode_without_a_media_driver_fails_naming_the_directory() {
    let env = TestEnv::new();
    let config = write_config(&env, &DriverSettings::shared_announce());
    let missing = env.path().join("no-driver-here");
    let dir = missing.to_str().unwrap();
    let overrides = [
        ("DRIVER_MEDIA_DRIVER", "external"),
        ("DRIVER_AERON_DIR", dir),
    ];
    let args = ["--config", config.to_str().unwrap()];
    let run = ProcessDriver::run(&env, "no-media-driver", &args, &overrides, EXTERNAL_GIVE_UP);
    eprintln!("external mode gave up after {:?}", run.elapsed);
    assert!(!run.status.success(), "exited with {}", run.status);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("tp-driver: ") && l.contains(dir)),
        "no final error line naming {dir}:\n{}",
        run.stderr
    );
    assert!(
        run.elapsed < Duration::from_secs(15),
        "gave up after {:?}, expected about 10 s",
        run.elapsed
    );
}

#[test]
fn print_config_shows_env_overrides_and_hides_the_token() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        shutdown_token: "do-not-print-me".into(),
        ..DriverSettings::shared_announce()
    };
    let config = write_config(&env, &settings);
    let args = ["--config", config.to_str().unwrap(), "--print-config"];
    let run = ProcessDriver::run(
        &env,
        "print",
        &args,
        &[("DRIVER_CONTROL_STREAM_ID", "2345")],
        DEADLINE,
    );
    assert!(run.status.success(), "{run:?}");
    let printed: toml::Table = run
        .stdout
        .parse()
        .unwrap_or_else(|e| panic!("not TOML ({e}):\n{}", run.stdout));
    assert_eq!(
        printed["driver"]["control_stream_id"].as_integer(),
        Some(2345),
        "{}",
        run.stdout
    );
    assert_eq!(
        printed["policies"]["shutdown_token"].as_str(),
        Some(REDACTED),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("do-not-print-me"),
        "token printed:\n{}",
        run.stdout
    );
}

#[test]
fn unknown_config_key_exits_2_naming_the_key() {
    let env = TestEnv::new();
    let text = DriverSettings::shared_announce()
        .toml(&env)
        .replace("[driver]\n", "[driver]\nbogus_knob = 1\n");
    let config = env.write("bad.toml", &text);
    let run = ProcessDriver::run(
        &env,
        "bad",
        &["--config", config.to_str().unwrap()],
        &[],
        DEADLINE,
    );
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains("bogus_knob"),
        "stderr does not name the key:\n{}",
        run.stderr
    );
}

/// Issue 15 §2: tp-driver refuses a base directory every user can write, exits non-zero
/// and says which directory and what to do; `SHM_ALLOW_SHARED_DIRS=true` accepts it.
#[test]
fn a_world_writable_base_directory_stops_the_driver_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let shm = env.shm_dir();
    std::fs::set_permissions(&shm, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = write_config(&env, &DriverSettings::shared_announce());
    let args = ["--config", config.to_str().unwrap()];
    let run = ProcessDriver::run(&env, "shared-base", &args, &[], DEADLINE);
    assert!(!run.status.success(), "{run:?}");
    let shown = shm.display().to_string();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains(&shown) && l.contains("every user can write it")),
        "no error naming {shown}:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("shm.allow_shared_dirs"),
        "{}",
        run.stderr
    );

    let mut driver = ProcessDriver::start(
        &env,
        "shared-base-allowed",
        &config,
        &[("SHM_ALLOW_SHARED_DIRS", "true")],
    );
    driver.wait_running(DEADLINE);
    terminate(ProcessHost::TpDriver, &mut driver);
}
