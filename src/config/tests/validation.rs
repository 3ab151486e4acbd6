//! One test per validation error variant (Driver Model §17, §11).

use super::*;

/// A valid base with two profiles and one static stream at 10000.
const BASE: &str = r#"
[profiles.a]
header_nslots = 64
payload_pools = [{ pool_id = 1, stride_bytes = 4096 }, { pool_id = 2, stride_bytes = 65536 }]
[profiles.b]
payload_pools = [{ pool_id = 1, stride_bytes = 64 }]
[streams.cam]
stream_id = 10000
profile = "a"
"#;

fn base_with(extra: &str) -> String {
    format!("{extra}\n{BASE}")
}

#[test]
fn base_is_valid() {
    ok(BASE);
}

#[test]
fn empty_value() {
    for key in [
        "instance_id",
        "control_channel",
        "announce_channel",
        "qos_channel",
    ] {
        let text = if key == "announce_channel" {
            // An empty announce channel means "same as control", so empty the control one.
            base_with("[driver]\ncontrol_channel = \" \"\n")
        } else {
            base_with(&format!("[driver]\n{key} = \"\"\n"))
        };
        let e = err(&text);
        assert!(matches!(e, ConfigError::EmptyValue { .. }), "{key}: {e:?}");
        let expected = if key == "announce_channel" {
            "driver.control_channel"
        } else {
            &format!("driver.{key}")
        };
        assert_names_key(&e, expected);
    }
}

#[test]
fn no_profiles() {
    for text in ["", "[driver]\ninstance_id = \"x\"\n", "[profiles]\n"] {
        let e = err(text);
        assert!(matches!(e, ConfigError::NoProfiles), "{e:?}");
        assert_names_key(&e, "profiles");
    }
}

#[test]
fn no_payload_pools() {
    for extra in [
        "[profiles.c]\nheader_nslots = 8\n",
        "[profiles.c]\npayload_pools = []\n",
    ] {
        let e = err(&base_with(extra));
        assert!(matches!(e, ConfigError::NoPayloadPools { .. }), "{e:?}");
        assert_names_key(&e, "profiles.c.payload_pools");
    }
}

#[test]
fn header_nslots_not_power_of_two() {
    for n in [0, 3, 100, 1000] {
        let e = err(&base_with(&format!(
            "[profiles.c]\nheader_nslots = {n}\npayload_pools = [{{ pool_id = 1, stride_bytes = 64 }}]\n"
        )));
        assert!(
            matches!(e, ConfigError::HeaderNslotsNotPowerOfTwo { value, .. } if value == n),
            "{e:?}"
        );
        assert_names_key(&e, "profiles.c.header_nslots");
    }
}

#[test]
fn invalid_stride_bytes() {
    for stride in [0, 1, 32, 63, 96, 100, 4097] {
        let e = err(&base_with(&format!(
            "[profiles.c]\npayload_pools = [{{ pool_id = 1, stride_bytes = 64 }}, {{ pool_id = 2, stride_bytes = {stride} }}]\n"
        )));
        assert!(
            matches!(e, ConfigError::InvalidStrideBytes { value, .. } if value == stride),
            "{e:?}"
        );
        assert_names_key(&e, "profiles.c.payload_pools[1].stride_bytes");
    }
}

#[test]
fn duplicate_pool_id() {
    let e = err(&base_with(
        "[profiles.c]\npayload_pools = [{ pool_id = 3, stride_bytes = 64 }, { pool_id = 4, stride_bytes = 128 }, { pool_id = 3, stride_bytes = 256 }]\n",
    ));
    assert!(
        matches!(e, ConfigError::DuplicatePoolId { pool_id: 3, .. }),
        "{e:?}"
    );
    assert_names_key(&e, "profiles.c.payload_pools[2].pool_id");
}

#[test]
fn unknown_stream_profile() {
    let e = err(&format!(
        "{BASE}\n[streams.x]\nstream_id = 10001\nprofile = \"nope\"\n"
    ));
    assert!(
        matches!(&e, ConfigError::UnknownStreamProfile { profile, .. } if profile == "nope"),
        "{e:?}"
    );
    assert_names_key(&e, "streams.x.profile");
}

#[test]
fn unknown_default_profile() {
    let e = err(&base_with("[policies]\ndefault_profile = \"nope\"\n"));
    assert!(
        matches!(&e, ConfigError::UnknownDefaultProfile { profile, .. } if profile == "nope"),
        "{e:?}"
    );
    assert_names_key(&e, "policies.default_profile");
}

#[test]
fn duplicate_stream_id() {
    let e = err(&format!(
        "{BASE}\n[streams.y]\nstream_id = 10000\nprofile = \"b\"\n"
    ));
    match &e {
        ConfigError::DuplicateStreamId {
            stream_id,
            other_key,
            ..
        } => {
            assert_eq!(*stream_id, 10000);
            assert_eq!(other_key, "streams.cam.stream_id");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_names_key(&e, "streams.y.stream_id");
    assert!(e.to_string().contains("streams.cam.stream_id"));
}

#[test]
fn stream_id_reserved() {
    let cases = [
        ("", 1000, "driver.control_stream_id"),
        (
            "[driver]\nannounce_stream_id = 1001\n",
            1001,
            "driver.announce_stream_id",
        ),
        ("", 1200, "driver.qos_stream_id"),
    ];
    for (driver, id, reserved) in cases {
        let e = err(&format!(
            "{driver}\n{BASE}\n[streams.z]\nstream_id = {id}\nprofile = \"b\"\n"
        ));
        match &e {
            ConfigError::StreamIdReserved {
                stream_id,
                reserved_key,
                ..
            } => {
                assert_eq!(*stream_id, id);
                assert_eq!(*reserved_key, reserved);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_names_key(&e, "streams.z.stream_id");
        assert!(e.to_string().contains(reserved));
    }
}

#[test]
fn range_reversed() {
    for key in [
        "stream_id_range",
        "descriptor_stream_id_range",
        "control_stream_id_range",
    ] {
        let e = err(&base_with(&format!("[driver]\n{key} = \"30000-20000\"\n")));
        assert!(matches!(e, ConfigError::RangeReversed { .. }), "{e:?}");
        assert_names_key(&e, &format!("driver.{key}"));
    }
    let e = err(&base_with("[driver]\nstream_id_range = [5000, 4000]\n"));
    assert!(matches!(e, ConfigError::RangeReversed { .. }), "{e:?}");
}

#[test]
fn ranges_overlap() {
    let e = err(&base_with(
        "[driver]\nstream_id_range = \"20000-29999\"\ndescriptor_stream_id_range = \"29999-31000\"\n",
    ));
    match &e {
        ConfigError::RangesOverlap { other_key, .. } => {
            assert_eq!(*other_key, "driver.stream_id_range")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_names_key(&e, "driver.descriptor_stream_id_range");
    let e = err(&base_with(
        "[driver]\ndescriptor_stream_id_range = \"31000-31999\"\ncontrol_stream_id_range = \"31500-32999\"\n",
    ));
    assert!(matches!(e, ConfigError::RangesOverlap { .. }), "{e:?}");
    assert_names_key(&e, "driver.control_stream_id_range");
}

#[test]
fn range_contains_reserved() {
    let cases = [
        (
            "stream_id_range = \"900-1100\"",
            1000,
            "driver.control_stream_id",
        ),
        (
            "announce_stream_id = 1001\ndescriptor_stream_id_range = \"1001-1001\"",
            1001,
            "driver.announce_stream_id",
        ),
        (
            "control_stream_id_range = [1200, 1300]",
            1200,
            "driver.qos_stream_id",
        ),
    ];
    for (driver, id, reserved) in cases {
        let e = err(&base_with(&format!("[driver]\n{driver}\n")));
        match &e {
            ConfigError::RangeContainsReserved {
                stream_id,
                reserved_key,
                ..
            } => {
                assert_eq!(*stream_id, id);
                assert_eq!(*reserved_key, reserved);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(e.to_string().contains(reserved));
    }
}

#[test]
fn range_contains_static_stream() {
    let e = err(&base_with(
        "[driver]\ncontrol_stream_id_range = \"9000-10999\"\n",
    ));
    match &e {
        ConfigError::RangeContainsStaticStream {
            stream_id,
            stream_key,
            ..
        } => {
            assert_eq!(*stream_id, 10000);
            assert_eq!(stream_key, "streams.cam.stream_id");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_names_key(&e, "driver.control_stream_id_range");
}

#[test]
fn dynamic_streams_without_range() {
    let e = err(&base_with("[policies]\nallow_dynamic_streams = true\n"));
    assert!(
        matches!(e, ConfigError::DynamicStreamsWithoutRange),
        "{e:?}"
    );
    assert_names_key(&e, "policies.allow_dynamic_streams");
    assert!(e.to_string().contains("driver.stream_id_range"));
    let e = err(&base_with(
        "[driver]\nstream_id_range = \"\"\n[policies]\nallow_dynamic_streams = true\n",
    ));
    assert!(
        matches!(e, ConfigError::DynamicStreamsWithoutRange),
        "{e:?}"
    );
    ok(&base_with(
        "[driver]\nstream_id_range = \"20000-20009\"\n[policies]\nallow_dynamic_streams = true\n",
    ));
}

#[test]
fn invalid_permissions_mode() {
    for bad in ["", "66", "66666", "680", "u+rw", "0o660"] {
        let e = err(&base_with(&format!(
            "[shm]\npermissions_mode = \"{bad}\"\n"
        )));
        assert!(
            matches!(&e, ConfigError::InvalidPermissionsMode { value, .. } if value == bad),
            "{bad}: {e:?}"
        );
        assert_names_key(&e, "shm.permissions_mode");
    }
    for good in ["660", "0640", "600", "1777"] {
        ok(&base_with(&format!(
            "[shm]\npermissions_mode = \"{good}\"\n"
        )));
    }
}

#[test]
fn invalid_base_dir() {
    let cases = [
        ("base_dir = \"dev/shm\"", "shm.base_dir"),
        ("base_dir = \"\"", "shm.base_dir"),
        ("base_dir = \"/dev/shm/../etc\"", "shm.base_dir"),
        ("base_dir = \"/dev/shm/a|b\"", "shm.base_dir"),
        (
            "allowed_base_dirs = [\"/dev/shm\", \"relative\"]",
            "shm.allowed_base_dirs[1]",
        ),
    ];
    for (shm, key) in cases {
        let e = err(&base_with(&format!("[shm]\n{shm}\n")));
        assert!(
            matches!(e, ConfigError::InvalidBaseDir { .. }),
            "{shm}: {e:?}"
        );
        assert_names_key(&e, key);
    }
}

#[test]
fn invalid_namespace() {
    for bad in ["", ".", "..", "a/b", "a b", "a\\u0000b", "caf\u{e9}"] {
        let e = err(&base_with(&format!("[shm]\nnamespace = \"{bad}\"\n")));
        assert!(
            matches!(e, ConfigError::InvalidNamespace { .. }),
            "{bad:?}: {e:?}"
        );
        assert_names_key(&e, "shm.namespace");
    }
    ok(&base_with("[shm]\nnamespace = \"lab-1.sim_2\"\n"));
}

#[test]
fn zero_value() {
    for key in [
        "announce_period_ms",
        "lease_keepalive_interval_ms",
        "lease_expiry_grace_intervals",
        "epoch_gc_keep",
    ] {
        let e = err(&base_with(&format!("[policies]\n{key} = 0\n")));
        assert!(matches!(e, ConfigError::ZeroValue { .. }), "{key}: {e:?}");
        assert_names_key(&e, &format!("policies.{key}"));
    }
}

#[test]
fn page_size_not_power_of_two() {
    for n in [0, 3000, 4095] {
        let e = err(&base_with(&format!("[shm]\npage_size_bytes = {n}\n")));
        assert!(
            matches!(e, ConfigError::PageSizeNotPowerOfTwo { value, .. } if value == n),
            "{e:?}"
        );
        assert_names_key(&e, "shm.page_size_bytes");
    }
}

#[test]
fn validate_is_callable_on_modified_configs() {
    let mut cfg = ok(BASE);
    cfg.policies.epoch_gc_keep = 0;
    assert!(matches!(cfg.validate(), Err(ConfigError::ZeroValue { .. })));
}

#[test]
fn values_beyond_toml_integers_are_rejected() {
    let mut cfg = ok(BASE);
    cfg.policies.epoch_gc_min_age_ns = u64::MAX;
    let e = match cfg.validate() {
        Err(e) => e,
        Ok(()) => panic!("accepted"),
    };
    assert!(matches!(e, ConfigError::InvalidValue { .. }), "{e:?}");
    assert_names_key(&e, "policies.epoch_gc_min_age_ns");
}
