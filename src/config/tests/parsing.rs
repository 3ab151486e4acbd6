//! Unknown keys, type errors, syntax errors and range forms.

use super::*;

#[test]
fn unknown_keys_name_the_full_path_and_the_key_meant() {
    let cases = [
        ("bridge = 1\n", "bridge", None),
        ("[bridge]\nx = 1\n", "bridge", None),
        ("[polices]\nx = 1\n", "polices", Some("policies")),
        (
            "[driver]\ncontrol_stream = 1\n",
            "driver.control_stream",
            Some("driver.control_stream_id"),
        ),
        (
            "[shm]\nbasedir = \"/x\"\n",
            "shm.basedir",
            Some("shm.base_dir"),
        ),
        (
            "[policies]\nanounce_period_ms = 5\n",
            "policies.anounce_period_ms",
            Some("policies.announce_period_ms"),
        ),
        (
            "[driver]\nallow_dynamic_streams = true\n",
            "driver.allow_dynamic_streams",
            Some("policies.allow_dynamic_streams"),
        ),
        ("base_dir = \"/x\"\n", "base_dir", Some("shm.base_dir")),
        ("[profiles.q]\nnslots = 8\n", "profiles.q.nslots", None),
        (
            "[profiles.q]\nheader_nslot = 8\n",
            "profiles.q.header_nslot",
            Some("profiles.q.header_nslots"),
        ),
        (
            "[profiles.q]\npayload_pools = [{ pool_id = 1, stride_bytes = 64, slots = 2 }]\n",
            "profiles.q.payload_pools[0].slots",
            None,
        ),
        (
            "[streams.cam]\nstream_id = 5\nprofile = \"p\"\nid = 3\n",
            "streams.cam.id",
            None,
        ),
    ];
    for (extra, key, meant) in cases {
        let e = err(&with(extra));
        assert!(
            matches!(&e, ConfigError::UnknownKey { suggestion, .. } if suggestion.as_deref() == meant),
            "{extra}: {e:?}"
        );
        assert_names_key(&e, key);
        let expected = match meant {
            Some(meant) => format!("unknown key \"{key}\"; did you mean \"{meant}\"?"),
            None => format!("unknown key \"{key}\""),
        };
        assert_eq!(e.to_string(), expected);
    }
}

#[test]
fn type_errors_name_the_key() {
    let cases = [
        (
            "[driver]\ncontrol_stream_id = \"1000\"\n",
            "driver.control_stream_id",
            "string",
        ),
        (
            "[driver]\ninstance_id = 7\n",
            "driver.instance_id",
            "integer",
        ),
        (
            "[driver]\nstream_id_range = 5\n",
            "driver.stream_id_range",
            "integer",
        ),
        (
            "[shm]\nrequire_hugepages = \"yes\"\n",
            "shm.require_hugepages",
            "string",
        ),
        (
            "[shm]\npermissions_mode = 660\n",
            "shm.permissions_mode",
            "integer",
        ),
        (
            "[shm]\nallowed_base_dirs = \"/x\"\n",
            "shm.allowed_base_dirs",
            "string",
        ),
        (
            "[policies]\nannounce_period_ms = 1.5\n",
            "policies.announce_period_ms",
            "float",
        ),
        (
            "[profiles.q]\nheader_nslots = true\n",
            "profiles.q.header_nslots",
            "boolean",
        ),
        (
            "[profiles.q]\npayload_pools = 3\n",
            "profiles.q.payload_pools",
            "integer",
        ),
        (
            "[streams.s]\nstream_id = [1]\nprofile = \"p\"\n",
            "streams.s.stream_id",
            "array",
        ),
        ("profiles = 3\n", "profiles", "integer"),
        ("streams = \"x\"\n", "streams", "string"),
    ];
    for (extra, key, found) in cases {
        // `profiles = 3` cannot be appended to MINIMAL (duplicate key), use it alone.
        let text = if extra.starts_with("profiles =") {
            extra.to_string()
        } else {
            with(extra)
        };
        let e = err(&text);
        match &e {
            ConfigError::InvalidType { found: f, .. } => assert_eq!(*f, found, "{extra}"),
            other => panic!("{extra}: unexpected {other:?}"),
        }
        assert_names_key(&e, key);
    }
}

#[test]
fn out_of_range_and_bad_values_name_the_key() {
    let cases = [
        (
            "[driver]\ncontrol_stream_id = -1\n",
            "driver.control_stream_id",
        ),
        (
            "[driver]\nqos_stream_id = 4294967296\n",
            "driver.qos_stream_id",
        ),
        (
            "[driver]\nmedia_driver = \"sidecar\"\n",
            "driver.media_driver",
        ),
        (
            "[driver]\nstream_id_range = \"1-2-3\"\n",
            "driver.stream_id_range",
        ),
        (
            "[driver]\nstream_id_range = [1, 2, 3]\n",
            "driver.stream_id_range",
        ),
        (
            "[driver]\nstream_id_range = [1, \"2\"]\n",
            "driver.stream_id_range",
        ),
        (
            "[driver]\nstream_id_range = [-1, 2]\n",
            "driver.stream_id_range",
        ),
        (
            "[shm]\nallowed_base_dirs = [\"/a\", 1]\n",
            "shm.allowed_base_dirs",
        ),
        (
            "[policies]\nepoch_gc_min_age_ns = -5\n",
            "policies.epoch_gc_min_age_ns",
        ),
        (
            "[profiles.q]\npayload_pools = [{ pool_id = 65536, stride_bytes = 64 }]\n",
            "profiles.q.payload_pools[0].pool_id",
        ),
    ];
    for (extra, key) in cases {
        let e = err(&with(extra));
        assert!(
            matches!(e, ConfigError::InvalidValue { .. }),
            "{extra}: {e:?}"
        );
        assert_names_key(&e, key);
    }
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let e = err("[driver]\ninstance_id = \"a\"\ncontrol_stream_id = \n");
    match &e {
        ConfigError::Syntax { line, column, .. } => {
            assert_eq!(*line, 3);
            assert!(*column >= 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.to_string().contains("line 3"), "{e}");
    let dup = err(&with("[driver]\nqos_stream_id = 1\nqos_stream_id = 2\n"));
    assert!(matches!(dup, ConfigError::Syntax { .. }), "{dup:?}");
}

#[test]
fn ranges_accept_string_and_array_forms() {
    let cfg = ok(&with(
        r#"
[driver]
stream_id_range = "20000-29999"
descriptor_stream_id_range = [31000, 31999]
control_stream_id_range = " 32000-32000 "
"#,
    ));
    assert_eq!(
        cfg.driver.stream_id_range,
        Some(StreamIdRange::new(20000, 29999))
    );
    assert_eq!(
        cfg.driver.descriptor_stream_id_range,
        Some(StreamIdRange::new(31000, 31999))
    );
    assert_eq!(
        cfg.driver.control_stream_id_range,
        Some(StreamIdRange::new(32000, 32000))
    );
    assert_eq!(cfg.driver.control_stream_id_range.map(|r| r.len()), Some(1));
}

#[test]
fn media_driver_values() {
    let cfg = ok(&with(
        "[driver]\nmedia_driver = \"external\"\naeron_dir = \"/dev/shm/aeron-x\"\n",
    ));
    assert_eq!(cfg.driver.media_driver, MediaDriverMode::External);
    assert_eq!(
        cfg.driver.aeron_dir.as_deref(),
        Some(std::path::Path::new("/dev/shm/aeron-x"))
    );
}

#[test]
fn pools_accept_array_of_tables_syntax() {
    let cfg = ok(r#"
[profiles.cam]
header_nslots = 256
[[profiles.cam.payload_pools]]
pool_id = 1
stride_bytes = 65536
[[profiles.cam.payload_pools]]
pool_id = 2
stride_bytes = 262144
"#);
    assert_eq!(cfg.profiles["cam"].payload_pools.len(), 2);
    assert_eq!(
        cfg.profiles["cam"].pool(2).map(|p| p.stride_bytes),
        Some(262_144)
    );
}

#[test]
fn load_reads_files_and_reports_io_errors() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let path = dir.path().join("driver.toml");
    if let Err(e) = std::fs::write(&path, MINIMAL) {
        panic!("write: {e}");
    }
    let env = MapEnv::new().with("DRIVER_INSTANCE_ID", "from-file-test");
    match DriverConfig::load(&path, &env) {
        Ok(cfg) => assert_eq!(cfg.driver.instance_id, "from-file-test"),
        Err(e) => panic!("{e}"),
    }
    let missing = dir.path().join("missing.toml");
    match DriverConfig::load(&missing, &NoEnv) {
        Err(ConfigError::Io { path, .. }) => assert_eq!(path, missing),
        other => panic!("unexpected {other:?}"),
    }
}
