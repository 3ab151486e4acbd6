//! Integration tests: the shipped configuration files load and hold the documented values
//! (Driver Model §17).

use std::path::{Path, PathBuf};

use tensorpool::config::{DriverConfig, MapEnv, MediaDriverMode, NoEnv, StreamIdRange};

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

fn load(name: &str) -> DriverConfig {
    match DriverConfig::load(shipped(name), &NoEnv) {
        Ok(cfg) => cfg,
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn driver_toml_loads_with_documented_values() {
    let cfg = load("driver.toml");
    let d = &cfg.driver;
    assert_eq!(d.instance_id, "tp-driver");
    assert_eq!(d.media_driver, MediaDriverMode::Embedded);
    assert_eq!(d.aeron_dir, None);
    assert_eq!(d.control_endpoint(), ("aeron:ipc?term-length=4m", 1000));
    assert_eq!(d.announce_endpoint(), ("aeron:ipc?term-length=4m", 1001));
    assert_eq!(d.qos_endpoint(), ("aeron:ipc?term-length=4m", 1200));
    assert_eq!(d.stream_id_range, Some(StreamIdRange::new(20000, 29999)));
    assert_eq!(
        d.descriptor_stream_id_range,
        Some(StreamIdRange::new(31000, 31999))
    );
    assert_eq!(
        d.control_stream_id_range,
        Some(StreamIdRange::new(32000, 32999))
    );

    assert_eq!(cfg.shm.base_dir, Path::new("/dev/shm/tensorpool"));
    assert_eq!(cfg.shm.namespace, "default");
    assert_eq!(cfg.shm.permissions_mode.bits(), 0o660);

    assert!(cfg.policies.allow_dynamic_streams);
    assert!(cfg.policies.prefault_shm);
    assert_eq!(cfg.policies.default_profile, "default");
    assert_eq!(cfg.policies.epoch_gc_min_age_ns, 3_000_000_000);
    assert_eq!(cfg.lease_expiry_ns(), 3_000_000_000);

    let profile = match cfg.default_profile() {
        Some(p) => p,
        None => panic!("no default profile"),
    };
    assert_eq!(profile.header_nslots, 64);
    let pools: Vec<(u16, u32)> = profile
        .payload_pools
        .iter()
        .map(|p| (p.pool_id, p.stride_bytes))
        .collect();
    assert_eq!(
        pools,
        [(1, 4096), (2, 65536), (3, 1_048_576), (4, 4_194_304)]
    );

    assert_eq!(cfg.streams.len(), 1);
    assert_eq!(cfg.stream("default").map(|s| s.stream_id), Some(10000));
    assert_eq!(cfg.stream_profile("default"), Some(profile));
}

#[test]
fn camera_toml_loads_with_documented_values() {
    let cfg = load("camera.toml");
    assert_eq!(
        cfg.profiles.keys().collect::<Vec<_>>(),
        ["raw", "processed"]
    );
    assert!(!cfg.policies.allow_dynamic_streams);
    assert_eq!(cfg.driver.stream_id_range, None);
    assert_eq!(cfg.shm.namespace, "camera");
    for (name, id) in [("cam1", 10000), ("cam2", 10001), ("cam3", 10002)] {
        let s = cfg.stream(name).map(|s| (s.stream_id, s.profile.as_str()));
        assert_eq!(s, Some((id, "raw")), "{name}");
    }
    for (name, id) in [("proc1", 10100), ("proc2", 10101), ("proc3", 10102)] {
        let s = cfg.stream(name).map(|s| (s.stream_id, s.profile.as_str()));
        assert_eq!(s, Some((id, "processed")), "{name}");
    }
    let raw_max = cfg.profile("raw").map(|p| p.max_stride_bytes());
    let processed_max = cfg.profile("processed").map(|p| p.max_stride_bytes());
    assert!(raw_max > processed_max);
    assert_eq!(
        cfg.profile_for_stream_id(10002).map(|p| p.header_nslots),
        Some(64)
    );
}

#[test]
fn shipped_files_round_trip_through_print_config() {
    for name in ["driver.toml", "camera.toml"] {
        let cfg = load(name);
        let printed = cfg.to_toml_string();
        match DriverConfig::from_toml_str(&printed, &NoEnv) {
            Ok(again) => assert_eq!(again, cfg, "{name}"),
            Err(e) => panic!("{name}: printed config does not load: {e}\n{printed}"),
        }
    }
}

#[test]
fn environment_overrides_apply_to_shipped_file() {
    let env = MapEnv::new()
        .with("SHM_NAMESPACE", "ci")
        .with("DRIVER_MEDIA_DRIVER", "external")
        .with("POLICIES_ALLOW_DYNAMIC_STREAMS", "false");
    match DriverConfig::load(shipped("driver.toml"), &env) {
        Ok(cfg) => {
            assert_eq!(cfg.shm.namespace, "ci");
            assert_eq!(cfg.driver.media_driver, MediaDriverMode::External);
            assert!(!cfg.policies.allow_dynamic_streams);
        }
        Err(e) => panic!("{e}"),
    }
}
