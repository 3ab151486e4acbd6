//! docs/USER_GUIDE.md's configuration reference is checked against the code: every key the
//! driver accepts has a row with its environment variable, and every literal default in
//! the guide is the code's default. A key added to the code without a row fails here.

use std::collections::BTreeSet;

use tensorpool::config::{env_var_name, DriverConfig, NoEnv, DRIVER_KEYS, POLICIES_KEYS, SHM_KEYS};
use toml::Value;

const GUIDE: &str = include_str!("../docs/USER_GUIDE.md");

/// The smallest valid configuration: one profile with one pool, one stream. Every other
/// key takes its default, and `to_toml_string` writes every key with its effective value.
const MINIMAL: &str = r#"
[profiles.p]
payload_pools = [{ pool_id = 1, stride_bytes = 64 }]

[streams.s]
stream_id = 10000
profile = "p"
"#;

/// The cells of the guide's table row for `key`, if there is one.
fn row(key: &str) -> Option<Vec<String>> {
    let start = format!("| `{key}` |");
    GUIDE.lines().find(|l| l.starts_with(&start)).map(|l| {
        l.trim_matches('|')
            .split(" | ")
            .map(|c| c.trim().to_owned())
            .collect()
    })
}

/// Every key of the effective configuration, as the guide spells it: `section.key`,
/// `profiles.<name>.key`, `profiles.<name>.payload_pools[].key`, `streams.<name>.key`.
fn keys_in_code(effective: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (section, list) in [
        ("driver", DRIVER_KEYS),
        ("shm", SHM_KEYS),
        ("policies", POLICIES_KEYS),
    ] {
        keys.extend(list.iter().map(|k| format!("{section}.{k}")));
        let table = effective[section].as_table().expect("section table");
        keys.extend(table.keys().map(|k| format!("{section}.{k}")));
    }
    let profile = effective["profiles"]["p"].as_table().expect("profile");
    keys.extend(profile.keys().map(|k| format!("profiles.<name>.{k}")));
    let pool = effective["profiles"]["p"]["payload_pools"][0]
        .as_table()
        .expect("pool");
    keys.extend(
        pool.keys()
            .map(|k| format!("profiles.<name>.payload_pools[].{k}")),
    );
    let stream = effective["streams"]["s"].as_table().expect("stream");
    keys.extend(stream.keys().map(|k| format!("streams.<name>.{k}")));
    keys
}

#[test]
fn every_configuration_key_has_a_row_with_its_environment_variable() {
    let config = DriverConfig::from_toml_str(MINIMAL, &NoEnv).expect("minimal config");
    let effective: Value = toml::from_str(&config.to_toml_string()).expect("emitted TOML");
    let keys = keys_in_code(&effective);
    assert!(keys.len() > 30, "{keys:?}");
    let missing: Vec<&String> = keys.iter().filter(|k| row(k).is_none()).collect();
    assert!(
        missing.is_empty(),
        "docs/USER_GUIDE.md has no configuration row for {missing:?}"
    );
    for key in &keys {
        let cells = row(key).expect("checked above");
        assert_eq!(cells.len(), 4, "row of {key} has 4 cells: {cells:?}");
        let file_only = key.starts_with("profiles.") || key.starts_with("streams.");
        let expected_env = if file_only {
            "— (file only)".to_owned()
        } else {
            format!("`{}`", env_var_name(key))
        };
        assert_eq!(cells[2], expected_env, "environment variable of {key}");
    }
}

#[test]
fn literal_defaults_in_the_guide_are_the_codes_defaults() {
    let config = DriverConfig::from_toml_str(MINIMAL, &NoEnv).expect("minimal config");
    let effective: Value = toml::from_str(&config.to_toml_string()).expect("emitted TOML");
    let mut checked = 0;
    for section in ["driver", "shm", "policies"] {
        for (key, value) in effective[section].as_table().expect("section") {
            let full = format!("{section}.{key}");
            let cells = row(&full).unwrap_or_else(|| panic!("no row for {full}"));
            // A default written as code is literal; prose ("the control channel") is derived.
            let Some(literal) = cells[1]
                .strip_prefix('`')
                .and_then(|rest| rest.split('`').next())
            else {
                continue;
            };
            assert_eq!(literal, value.to_string(), "default of {full}");
            checked += 1;
        }
    }
    let profile_default = row("profiles.<name>.header_nslots").expect("row");
    assert_eq!(
        profile_default[1],
        format!("`{}`", effective["profiles"]["p"]["header_nslots"])
    );
    assert!(checked >= 25, "only {checked} literal defaults checked");
}
