//! Lifecycle events reach C code through the event API (ffi/tests/c/events.c): a
//! producer's lease revoked on close (seen by the consumer), and a driver stopped and
//! restarted (seen by both, which then attach to the new driver and move frames again).

#[path = "../../tests/support/mod.rs"]
mod support;

mod cbuild;

use cbuild::{client_args, compile, driver_envs, Flavor, Lang, Proc};
use std::time::Duration;
use support::{DriverSettings, ProcessDriver, TestEnv, DEADLINE};

/// Aeron's driver timeout for this test (its default is 10 s): how long clients take to
/// notice the stopped media driver, and the restarted one waits for its heartbeat to age.
const AERON_DRIVER_TIMEOUT: (&str, &str) = ("AERON_DRIVER_TIMEOUT", "2000");
const STEP_TIMEOUT: Duration = Duration::from_secs(35);

#[test]
fn revoke_and_driver_restart_are_seen_through_the_c_event_api() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-ffi-events".into(),
        ..DriverSettings::shared_announce()
    };
    let config = env.write("driver.toml", &settings.toml(&env));
    let overrides = driver_envs();
    let mut envs: Vec<(&str, &str)> = overrides.iter().map(|(k, v)| (*k, v.as_str())).collect();
    envs.push(AERON_DRIVER_TIMEOUT);
    let mut driver = ProcessDriver::start(&env, "driver", &config, &envs);
    driver.wait_running(DEADLINE);

    let program = compile("events", Lang::C, Flavor::Shared, &["tests/c/events.c"]);
    let mut events = Proc::spawn_with_env(
        &env,
        "events",
        &program,
        &client_args(&env),
        &[AERON_DRIVER_TIMEOUT],
    );
    events.wait_for_line(r#""step":"ready_for_restart""#, STEP_TIMEOUT);

    driver.signal(nix::sys::signal::Signal::SIGTERM);
    let status = driver
        .wait(DEADLINE)
        .expect("tp-driver exits after SIGTERM");
    assert!(status.success(), "tp-driver: {status}\n{}", driver.stderr());
    let mut restarted = ProcessDriver::start(&env, "driver-restarted", &config, &envs);
    restarted.wait_running(STEP_TIMEOUT);
    events.wait_for_line(r#""step":"done""#, STEP_TIMEOUT);
    let status = events.finish(DEADLINE);
    assert!(status.success(), "{}", events.describe());

    let out = events.stdout();
    for expected in [
        r#"{"who":"consumer","event":"producer_revoked""#,
        r#"{"who":"producer","event":"driver_shutdown""#,
        r#"{"who":"consumer","event":"driver_shutdown""#,
        r#"{"who":"producer","event":"reattached""#,
    ] {
        assert!(
            out.contains(expected),
            "no {expected}: {}",
            events.describe()
        );
    }
    // The consumer attached twice: before the stop and to the restarted driver.
    let attaches = out
        .lines()
        .filter(|l| l.starts_with(r#"{"who":"consumer","event":"attached""#))
        .count();
    assert!(attaches >= 2, "{}", events.describe());
}
