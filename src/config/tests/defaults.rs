//! Every documented default of Driver Model §17.

use std::path::PathBuf;

use super::*;

#[test]
fn minimal_file_yields_every_default() {
    let cfg = ok(MINIMAL);

    let d = &cfg.driver;
    assert_eq!(d.instance_id, "driver-01");
    assert_eq!(d.media_driver, MediaDriverMode::Embedded);
    assert_eq!(d.aeron_dir, None);
    assert_eq!(d.control_channel, "aeron:ipc?term-length=4m");
    assert_eq!(d.control_stream_id, 1000);
    assert_eq!(d.announce_channel, "aeron:ipc?term-length=4m");
    assert_eq!(d.announce_stream_id, 1000);
    assert!(d.announce_shares_control());
    assert_eq!(d.qos_channel, "aeron:ipc?term-length=4m");
    assert_eq!(d.qos_stream_id, 1200);
    assert_eq!(d.stream_id_range, None);
    assert_eq!(d.descriptor_stream_id_range, None);
    assert_eq!(d.control_stream_id_range, None);

    let s = &cfg.shm;
    assert_eq!(s.base_dir, PathBuf::from("/dev/shm/tensorpool"));
    assert_eq!(s.namespace, "default");
    assert!(!s.require_hugepages);
    assert_eq!(s.page_size_bytes, 4096);
    assert_eq!(s.permissions_mode.bits(), 0o660);
    assert_eq!(cfg.permissions_mode_bits(), 0o660);
    assert_eq!(
        s.allowed_base_dirs,
        vec![PathBuf::from("/dev/shm/tensorpool")]
    );
    assert!(!s.allow_shared_dirs);

    let p = &cfg.policies;
    assert!(!p.allow_dynamic_streams);
    assert_eq!(p.default_profile, "p");
    assert_eq!(p.announce_period_ms, 1000);
    assert_eq!(p.lease_keepalive_interval_ms, 1000);
    assert_eq!(p.lease_expiry_grace_intervals, 3);
    assert!(p.prefault_shm);
    assert!(!p.mlock_shm);
    assert!(!p.provision_ahead);
    assert!(p.epoch_gc_enabled);
    assert_eq!(p.epoch_gc_keep, 1);
    assert_eq!(p.epoch_gc_min_age_ns, 3_000_000_000);
    assert!(!p.epoch_gc_on_startup);
    assert!(!p.delete_shm_on_startup);
    assert_eq!(p.shutdown_timeout_ms, 2000);
    assert_eq!(p.shutdown_token, None);
    assert!(!p.shutdown_token_enabled());
    assert_eq!(cfg.lease_expiry_ns(), 3_000_000_000);

    let profile = &cfg.profiles["p"];
    assert_eq!(profile.header_nslots, 1024);
    assert_eq!(
        profile.payload_pools,
        vec![PayloadPool {
            pool_id: 1,
            stride_bytes: 4096
        }]
    );
    assert!(cfg.streams.is_empty());
}

#[test]
fn section_defaults_match_loaded_defaults() {
    let cfg = ok(MINIMAL);
    assert_eq!(cfg.driver, DriverSection::default());
    assert_eq!(cfg.shm, ShmSection::default());
    let expected = PoliciesSection {
        default_profile: "p".into(),
        ..PoliciesSection::default()
    };
    assert_eq!(cfg.policies, expected);
}

#[test]
fn derived_defaults_follow_their_sources() {
    let cfg = ok(&with(
        r#"
[driver]
control_channel = "aeron:ipc?alias=ctl"
control_stream_id = 5000
[shm]
base_dir = "/tmp/tp"
[policies]
announce_period_ms = 250
"#,
    ));
    assert_eq!(cfg.driver.announce_channel, "aeron:ipc?alias=ctl");
    assert_eq!(cfg.driver.announce_stream_id, 5000);
    assert_eq!(cfg.shm.allowed_base_dirs, vec![PathBuf::from("/tmp/tp")]);
    assert_eq!(cfg.policies.epoch_gc_min_age_ns, 750_000_000);
}

#[test]
fn empty_strings_mean_default_or_disabled() {
    let cfg = ok(&with(
        r#"
[driver]
aeron_dir = ""
announce_channel = ""
stream_id_range = ""
descriptor_stream_id_range = []
[shm]
allowed_base_dirs = []
[policies]
default_profile = ""
shutdown_token = ""
"#,
    ));
    assert_eq!(cfg.driver.aeron_dir, None);
    assert_eq!(cfg.driver.announce_channel, cfg.driver.control_channel);
    assert_eq!(cfg.driver.stream_id_range, None);
    assert_eq!(cfg.driver.descriptor_stream_id_range, None);
    assert_eq!(cfg.shm.allowed_base_dirs, vec![cfg.shm.base_dir.clone()]);
    assert_eq!(cfg.policies.default_profile, "p");
    assert_eq!(cfg.policies.shutdown_token, None);
}

#[test]
fn first_defined_profile_is_the_default_and_order_is_kept() {
    let cfg = ok(r#"
[profiles.zeta]
payload_pools = [{ pool_id = 1, stride_bytes = 64 }]
[profiles.alpha]
payload_pools = [{ pool_id = 1, stride_bytes = 64 }]
[profiles.mid]
payload_pools = [{ pool_id = 1, stride_bytes = 64 }]
[streams.b]
stream_id = 2
profile = "alpha"
[streams.a]
stream_id = 1
profile = "mid"
"#);
    assert_eq!(cfg.policies.default_profile, "zeta");
    assert_eq!(
        cfg.profiles.keys().collect::<Vec<_>>(),
        ["zeta", "alpha", "mid"]
    );
    assert_eq!(cfg.streams.keys().collect::<Vec<_>>(), ["b", "a"]);
    assert!(cfg.default_profile().is_some());
}

#[test]
fn lookup_helpers() {
    let cfg = ok(r#"
[profiles.small]
header_nslots = 8
payload_pools = [{ pool_id = 1, stride_bytes = 64 }]
[profiles.big]
header_nslots = 16
payload_pools = [{ pool_id = 7, stride_bytes = 1048576 }]
[streams.cam]
stream_id = 10000
profile = "big"
"#);
    assert_eq!(cfg.stream("cam").map(|s| s.stream_id), Some(10000));
    assert_eq!(cfg.stream_profile("cam").map(|p| p.header_nslots), Some(16));
    assert_eq!(cfg.stream_by_id(10000).map(|(n, _)| n), Some("cam"));
    assert_eq!(
        cfg.profile_for_stream_id(10000).map(|p| p.header_nslots),
        Some(16)
    );
    assert!(cfg.profile_for_stream_id(1).is_none());
    assert_eq!(cfg.profile("small").map(|p| p.header_nslots), Some(8));
    assert_eq!(cfg.default_profile().map(|p| p.header_nslots), Some(8));
}
