//! Unit tests of configuration loading (Driver Model §17): defaults, environment
//! overrides, parsing errors, validation errors and TOML round trips.

use super::*;

mod defaults;
mod env_overrides;
mod parsing;
mod roundtrip;
mod validation;

/// The smallest valid file: one profile with one pool.
const MINIMAL: &str = r#"
[profiles.p]
payload_pools = [{ pool_id = 1, stride_bytes = 4096 }]
"#;

/// Loads `text` with no environment.
fn load(text: &str) -> Result<DriverConfig, ConfigError> {
    DriverConfig::from_toml_str(text, &NoEnv)
}

/// Loads `text` with the given environment variables.
fn load_env(text: &str, vars: &[(&str, &str)]) -> Result<DriverConfig, ConfigError> {
    let env: MapEnv = vars.iter().copied().collect();
    DriverConfig::from_toml_str(text, &env)
}

/// Loads `text`, which must succeed.
fn ok(text: &str) -> DriverConfig {
    match load(text) {
        Ok(cfg) => cfg,
        Err(e) => panic!("expected success, got: {e}"),
    }
}

/// Loads `text`, which must fail.
fn err(text: &str) -> ConfigError {
    match load(text) {
        Ok(cfg) => panic!("expected an error, got {cfg:?}"),
        Err(e) => e,
    }
}

/// Asserts that `e` is about `key`, both structurally and in its message.
#[track_caller]
fn assert_names_key(e: &ConfigError, key: &str) {
    assert_eq!(e.key(), Some(key), "wrong key in {e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("\"{key}\"")),
        "message {msg:?} does not name {key:?}"
    );
}

/// `extra` followed by MINIMAL (so top-level keys in `extra` stay top-level).
fn with(extra: &str) -> String {
    format!("{extra}\n{MINIMAL}")
}
