//! Environment overrides (Driver Model §17): every key of `driver`, `shm` and `policies`.

use std::path::PathBuf;

use super::*;

const TWO_PROFILES: &str = r#"
[profiles.first]
payload_pools = [{ pool_id = 1, stride_bytes = 4096 }]
[profiles.second]
payload_pools = [{ pool_id = 1, stride_bytes = 4096 }]
"#;

fn load_ok(text: &str, vars: &[(&str, &str)]) -> DriverConfig {
    match load_env(text, vars) {
        Ok(cfg) => cfg,
        Err(e) => panic!("expected success, got: {e}"),
    }
}

#[test]
fn every_driver_key() {
    let cfg = load_ok(
        MINIMAL,
        &[
            ("DRIVER_INSTANCE_ID", "env-driver"),
            ("DRIVER_MEDIA_DRIVER", "external"),
            ("DRIVER_AERON_DIR", "/tmp/aeron-env"),
            ("DRIVER_CONTROL_CHANNEL", "aeron:ipc?alias=c"),
            ("DRIVER_CONTROL_STREAM_ID", "2000"),
            ("DRIVER_ANNOUNCE_CHANNEL", "aeron:ipc?alias=a"),
            ("DRIVER_ANNOUNCE_STREAM_ID", "2001"),
            ("DRIVER_QOS_CHANNEL", "aeron:ipc?alias=q"),
            ("DRIVER_QOS_STREAM_ID", "2200"),
            ("DRIVER_STREAM_ID_RANGE", "20000-29999"),
            ("DRIVER_DESCRIPTOR_STREAM_ID_RANGE", "31000-31999"),
            ("DRIVER_CONTROL_STREAM_ID_RANGE", " 32000 - 32999 "),
        ],
    );
    let d = &cfg.driver;
    assert_eq!(d.instance_id, "env-driver");
    assert_eq!(d.media_driver, MediaDriverMode::External);
    assert_eq!(d.aeron_dir, Some(PathBuf::from("/tmp/aeron-env")));
    assert_eq!(d.control_channel, "aeron:ipc?alias=c");
    assert_eq!(d.control_stream_id, 2000);
    assert_eq!(d.announce_channel, "aeron:ipc?alias=a");
    assert_eq!(d.announce_stream_id, 2001);
    assert_eq!(d.qos_channel, "aeron:ipc?alias=q");
    assert_eq!(d.qos_stream_id, 2200);
    assert_eq!(d.stream_id_range, Some(StreamIdRange::new(20000, 29999)));
    assert_eq!(
        d.descriptor_stream_id_range,
        Some(StreamIdRange::new(31000, 31999))
    );
    assert_eq!(
        d.control_stream_id_range,
        Some(StreamIdRange::new(32000, 32999))
    );
}

#[test]
fn every_shm_key() {
    let cfg = load_ok(
        MINIMAL,
        &[
            ("SHM_BASE_DIR", "/tmp/tp-env"),
            ("SHM_NAMESPACE", "lab1"),
            ("SHM_REQUIRE_HUGEPAGES", "true"),
            ("SHM_PAGE_SIZE_BYTES", "2097152"),
            ("SHM_PERMISSIONS_MODE", "0640"),
            ("SHM_ALLOWED_BASE_DIRS", "/tmp/tp-env, /dev/shm,,"),
            ("SHM_ALLOW_SHARED_DIRS", "true"),
        ],
    );
    let s = &cfg.shm;
    assert_eq!(s.base_dir, PathBuf::from("/tmp/tp-env"));
    assert_eq!(s.namespace, "lab1");
    assert!(s.require_hugepages);
    assert_eq!(s.page_size_bytes, 2_097_152);
    assert_eq!(s.permissions_mode.bits(), 0o640);
    assert_eq!(
        s.allowed_base_dirs,
        vec![PathBuf::from("/tmp/tp-env"), PathBuf::from("/dev/shm")]
    );
    assert!(s.allow_shared_dirs);
}

#[test]
fn every_policies_key() {
    let cfg = load_ok(
        TWO_PROFILES,
        &[
            ("DRIVER_STREAM_ID_RANGE", "20000-20099"),
            ("POLICIES_ALLOW_DYNAMIC_STREAMS", "1"),
            ("POLICIES_DEFAULT_PROFILE", "second"),
            ("POLICIES_ANNOUNCE_PERIOD_MS", "500"),
            ("POLICIES_LEASE_KEEPALIVE_INTERVAL_MS", "250"),
            ("POLICIES_LEASE_EXPIRY_GRACE_INTERVALS", "4"),
            ("POLICIES_PREFAULT_SHM", "false"),
            ("POLICIES_MLOCK_SHM", "TRUE"),
            ("POLICIES_PROVISION_AHEAD", "true"),
            ("POLICIES_EPOCH_GC_ENABLED", "0"),
            ("POLICIES_EPOCH_GC_KEEP", "5"),
            ("POLICIES_EPOCH_GC_MIN_AGE_NS", "123456789012"),
            ("POLICIES_EPOCH_GC_ON_STARTUP", "true"),
            ("POLICIES_DELETE_SHM_ON_STARTUP", "true"),
            ("POLICIES_SHUTDOWN_TIMEOUT_MS", "7000"),
            ("POLICIES_SHUTDOWN_TOKEN", "s3cret"),
        ],
    );
    let p = &cfg.policies;
    assert!(p.allow_dynamic_streams);
    assert_eq!(p.default_profile, "second");
    assert_eq!(p.announce_period_ms, 500);
    assert_eq!(p.lease_keepalive_interval_ms, 250);
    assert_eq!(p.lease_expiry_grace_intervals, 4);
    assert!(!p.prefault_shm);
    assert!(p.mlock_shm);
    assert!(p.provision_ahead);
    assert!(!p.epoch_gc_enabled);
    assert_eq!(p.epoch_gc_keep, 5);
    assert_eq!(p.epoch_gc_min_age_ns, 123_456_789_012);
    assert!(p.epoch_gc_on_startup);
    assert!(p.delete_shm_on_startup);
    assert_eq!(p.shutdown_timeout_ms, 7000);
    assert_eq!(p.shutdown_token.as_deref(), Some("s3cret"));
    assert_eq!(cfg.lease_expiry_ns(), 1_000_000_000);
}

#[test]
fn env_beats_file() {
    let text = with(
        r#"
[driver]
instance_id = "file"
control_stream_id = 1000
stream_id_range = "20000-29999"
[shm]
namespace = "file-ns"
require_hugepages = true
[policies]
announce_period_ms = 1000
prefault_shm = true
shutdown_token = "file-token"
"#,
    );
    let cfg = load_ok(
        &text,
        &[
            ("DRIVER_INSTANCE_ID", "env"),
            ("DRIVER_CONTROL_STREAM_ID", "3000"),
            ("DRIVER_STREAM_ID_RANGE", ""),
            ("SHM_NAMESPACE", "env-ns"),
            ("SHM_REQUIRE_HUGEPAGES", "false"),
            ("POLICIES_ANNOUNCE_PERIOD_MS", "100"),
            ("POLICIES_PREFAULT_SHM", "0"),
            ("POLICIES_SHUTDOWN_TOKEN", ""),
        ],
    );
    assert_eq!(cfg.driver.instance_id, "env");
    assert_eq!(cfg.driver.control_stream_id, 3000);
    // The derived announce stream follows the overridden control stream.
    assert_eq!(cfg.driver.announce_stream_id, 3000);
    assert_eq!(cfg.driver.stream_id_range, None);
    assert_eq!(cfg.shm.namespace, "env-ns");
    assert!(!cfg.shm.require_hugepages);
    assert_eq!(cfg.policies.announce_period_ms, 100);
    // The derived GC age follows the overridden announce period.
    assert_eq!(cfg.policies.epoch_gc_min_age_ns, 300_000_000);
    assert!(!cfg.policies.prefault_shm);
    assert_eq!(cfg.policies.shutdown_token, None);
    // Untouched keys keep the file's values.
    assert_eq!(load_ok(&text, &[]).driver.instance_id, "file");
}

#[test]
fn env_overridden_values_are_validated() {
    let e = match load_env(MINIMAL, &[("SHM_NAMESPACE", "../etc")]) {
        Err(e) => e,
        Ok(_) => panic!("accepted"),
    };
    assert!(matches!(e, ConfigError::InvalidNamespace { .. }));
    assert_names_key(&e, "shm.namespace");
}

#[test]
fn malformed_env_values_name_variable_and_key() {
    let cases = [
        (
            "DRIVER_CONTROL_STREAM_ID",
            "ten",
            "driver.control_stream_id",
        ),
        ("DRIVER_QOS_STREAM_ID", "-1", "driver.qos_stream_id"),
        (
            "DRIVER_ANNOUNCE_STREAM_ID",
            "4294967296",
            "driver.announce_stream_id",
        ),
        ("DRIVER_MEDIA_DRIVER", "sidecar", "driver.media_driver"),
        ("DRIVER_STREAM_ID_RANGE", "20000", "driver.stream_id_range"),
        ("SHM_REQUIRE_HUGEPAGES", "yes", "shm.require_hugepages"),
        ("SHM_PAGE_SIZE_BYTES", "4k", "shm.page_size_bytes"),
        ("SHM_PERMISSIONS_MODE", "rw-rw----", "shm.permissions_mode"),
        (
            "POLICIES_EPOCH_GC_MIN_AGE_NS",
            "1e9",
            "policies.epoch_gc_min_age_ns",
        ),
        ("POLICIES_MLOCK_SHM", "2", "policies.mlock_shm"),
        (
            "POLICIES_EPOCH_GC_MIN_AGE_NS",
            "9223372036854775808",
            "policies.epoch_gc_min_age_ns",
        ),
    ];
    for (var, value, key) in cases {
        let e = match load_env(MINIMAL, &[(var, value)]) {
            Err(e) => e,
            Ok(_) => panic!("{var}={value} accepted"),
        };
        match &e {
            ConfigError::InvalidEnv {
                var: v, value: got, ..
            } => {
                assert_eq!(v, var);
                assert_eq!(got, value);
            }
            other => panic!("{var}: unexpected {other:?}"),
        }
        assert_names_key(&e, key);
        assert!(e.to_string().contains(var), "{e}");
    }
}

#[test]
fn profiles_and_streams_are_file_only() {
    // Variables that look like profile/stream overrides are ignored.
    let cfg = load_ok(
        MINIMAL,
        &[
            ("PROFILES_P_HEADER_NSLOTS", "8"),
            ("STREAMS_X_STREAM_ID", "5"),
        ],
    );
    assert_eq!(cfg.profiles["p"].header_nslots, 1024);
    assert!(cfg.streams.is_empty());
}

#[test]
fn closure_env_source() {
    let env = |name: &str| (name == "DRIVER_INSTANCE_ID").then(|| "closure".to_string());
    match DriverConfig::from_toml_str(MINIMAL, &env) {
        Ok(cfg) => assert_eq!(cfg.driver.instance_id, "closure"),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn env_override_list_is_complete() {
    let vars: Vec<String> = env_overrides().into_iter().map(|(_, v)| v).collect();
    for v in [
        "DRIVER_MEDIA_DRIVER",
        "SHM_NAMESPACE",
        "SHM_ALLOWED_BASE_DIRS",
        "SHM_ALLOW_SHARED_DIRS",
        "POLICIES_EPOCH_GC_MIN_AGE_NS",
        "POLICIES_SHUTDOWN_TOKEN",
    ] {
        assert!(vars.iter().any(|x| x == v), "{v} missing");
    }
    assert_eq!(vars.len(), 12 + 7 + 15);
}
