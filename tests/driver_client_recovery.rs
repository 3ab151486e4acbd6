//! The SHM driver survives its own Aeron client being closed: `tp-driver` (external and
//! embedded media driver) and aeronmd with the plugin, stopped (SIGSTOP) for longer than
//! the media driver's client liveness timeout, lose their client (timed out by the
//! external media driver, or closed by its own service-interval check after the stall).
//! After SIGCONT the driver logs why once, builds a new client, control plane and counters,
//! counts the recovery, keeps a lease whose keepalives went on, and answers attaches again
//! (docs/DESIGN.md, "Driver process"; src/driver/recovery.rs, src/driver/hosted.rs). Every
//! process is killed by pid when its handle drops.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use nix::sys::signal::Signal;
use support::hosts::{AeronmdDriver, Threading, AERONMD_SIGTERM_STATUS};
use support::*;
use tensorpool::protocol::driver::{ResponseCode, Role};
use tensorpool::transport::MediaDriverOptions;

/// The media driver drops a client silent for this long (Aeron's default is 10 s).
const CLIENT_LIVENESS: Duration = Duration::from_millis(1500);
/// How long `tp-driver` is stopped: past the liveness timeout and the media driver's
/// 1 s timer interval that checks it.
const STOPPED_FOR: Duration = Duration::from_millis(3500);

/// The test configuration with leases that outlive the stop: keepalives every 100 ms,
/// expiry after 60 of them missed (6 s).
fn config(env: &TestEnv, settings: &DriverSettings) -> std::path::PathBuf {
    let toml = settings.toml(env).replace(
        "lease_expiry_grace_intervals = 3",
        "lease_expiry_grace_intervals = 60",
    );
    assert!(toml.contains("lease_expiry_grace_intervals = 60"));
    env.write("driver.toml", &toml)
}

/// Stops the driver process past its client liveness timeout while a producer keeps its
/// lease alive, resumes it, and checks it rebuilt its client once, still holds the lease
/// (the keepalives that reach the new control subscription are heard) and answers
/// attaches again. `exit_code` is what the process exits with after SIGTERM.
fn stop_resume_and_check(
    env: &TestEnv,
    settings: &DriverSettings,
    driver: &mut ProcessDriver,
    exit_code: i32,
) {
    let aeron_dir = env.aeron_dir();
    driver.wait_running(DEADLINE);
    let recoveries = settings.counter_label("aeron client recoveries");
    assert_eq!(wait_for_counter(&aeron_dir, &recoveries, |_| true), 0);
    {
        let mut client = TestClient::for_settings(&aeron_dir, settings);
        let lease = client.attach_ok(STATIC_STREAM, 11, Role::Producer);
        assert_eq!(client.detach(&lease).code, ResponseCode::Ok);
    }

    let mut holder = TestClient::for_settings(&aeron_dir, settings);
    let held = holder.attach_ok(STATIC_STREAM, 12, Role::Producer);

    driver.signal(Signal::SIGSTOP);
    holder.pump_for(STOPPED_FOR);
    driver.signal(Signal::SIGCONT);

    wait_until("the driver to rebuild its client", DEADLINE, || {
        holder.pump_for(Duration::from_millis(10));
        counter_value(&aeron_dir, &recoveries).filter(|v| *v >= 1)
    });
    holder.pump_for(Duration::from_millis(300));
    assert_eq!(counter_value(&aeron_dir, &recoveries), Some(1));
    let mut client = TestClient::for_settings(&aeron_dir, settings);
    // The held producer lease survived: a second producer is refused, the holder detaches.
    client
        .attach(&attach_request(STATIC_STREAM, 13, Role::Producer))
        .expect_refused(ResponseCode::Rejected);
    assert_eq!(holder.detach(&held).code, ResponseCode::Ok);
    let lease = client.attach_ok(STATIC_STREAM, 13, Role::Producer);
    assert_eq!(client.detach(&lease).code, ResponseCode::Ok);
    assert_eq!(driver.wait(Duration::ZERO), None, "tp-driver exited");
    let stderr = driver.stderr();
    assert_eq!(
        stderr
            .matches("aeron client closed; building a new one")
            .count(),
        1,
        "the closed client is logged once:\n{stderr}"
    );
    drop(client);
    drop(holder);
    driver.signal(Signal::SIGTERM);
    assert_eq!(driver.expect_exit(DEADLINE).code(), Some(exit_code));
}

#[test]
fn a_driver_timed_out_by_its_external_media_driver_rebuilds_its_client() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let config = config(&env, &settings);
    let aeron_dir = env.aeron_dir();
    let _media_driver = MediaDriverThread::start_with(MediaDriverOptions {
        term_buffer_sparse_file: Some(true),
        client_liveness_timeout: Some(CLIENT_LIVENESS),
        ..MediaDriverOptions::in_dir(&aeron_dir)
    });
    let dir = aeron_dir.to_str().expect("a UTF-8 temporary path");
    let overrides = [
        ("DRIVER_MEDIA_DRIVER", "external"),
        ("DRIVER_AERON_DIR", dir),
    ];
    let mut driver = ProcessDriver::start(&env, "external", &config, &overrides);
    stop_resume_and_check(&env, &settings, &mut driver, 0);
}

#[test]
fn a_stalled_driver_rebuilds_its_client_on_its_embedded_media_driver() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let config = config(&env, &settings);
    // Aeron's own setting, read by the embedded media driver's context.
    let liveness = format!("{}ms", CLIENT_LIVENESS.as_millis());
    let overrides = [("AERON_CLIENT_LIVENESS_TIMEOUT", liveness.as_str())];
    let mut driver = ProcessDriver::start(&env, "embedded", &config, &overrides);
    stop_resume_and_check(&env, &settings, &mut driver, 0);
}

#[test]
fn a_stalled_aeronmd_plugin_rebuilds_its_client() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let config = config(&env, &settings);
    let liveness = format!("{}ms", CLIENT_LIVENESS.as_millis());
    let overrides = [("AERON_CLIENT_LIVENESS_TIMEOUT", liveness.as_str())];
    let mut driver = AeronmdDriver::spawn(&env, "aeronmd", &config, Threading::Shared, &overrides);
    stop_resume_and_check(&env, &settings, &mut driver, AERONMD_SIGTERM_STATUS);
}
