//! `to_toml_string` prints every key and loads back to an equal configuration.

use proptest::prelude::*;

use super::*;

const FULL: &str = r#"
[driver]
instance_id = "round \"trip\""
media_driver = "external"
aeron_dir = "/dev/shm/aeron-rt"
control_channel = "aeron:udp?endpoint=localhost:40123"
control_stream_id = 1000
announce_channel = "aeron:ipc?term-length=4m"
announce_stream_id = 1001
qos_channel = "aeron:ipc?term-length=8m"
qos_stream_id = 1200
stream_id_range = [20000, 29999]
descriptor_stream_id_range = "31000-31999"
control_stream_id_range = "32000-32999"

[shm]
base_dir = "/dev/shm/tp-rt"
namespace = "lab1"
require_hugepages = true
page_size_bytes = 2097152
permissions_mode = "0640"
allowed_base_dirs = ["/dev/shm/tp-rt", "/dev/hugepages"]
allow_shared_dirs = true

[policies]
allow_dynamic_streams = true
default_profile = "my raw"
announce_period_ms = 250
lease_keepalive_interval_ms = 500
lease_expiry_grace_intervals = 5
prefault_shm = false
mlock_shm = true
provision_ahead = true
epoch_gc_enabled = false
epoch_gc_keep = 3
epoch_gc_min_age_ns = 42
epoch_gc_on_startup = true
delete_shm_on_startup = true
shutdown_timeout_ms = 1
shutdown_token = "tok\\en"

[profiles.small]
header_nslots = 8
payload_pools = [{ pool_id = 9, stride_bytes = 64 }]

[profiles."my raw"]
header_nslots = 1024
payload_pools = [{ pool_id = 1, stride_bytes = 1048576 }, { pool_id = 2, stride_bytes = 4194304 }]

[streams."cam 1"]
stream_id = 10000
profile = "my raw"

[streams.proc]
stream_id = 10100
profile = "small"
"#;

fn reload(cfg: &DriverConfig) -> DriverConfig {
    let text = cfg.to_toml_string();
    match load(&text) {
        Ok(c) => c,
        Err(e) => panic!("reload failed: {e}\n{text}"),
    }
}

#[test]
fn defaults_round_trip_and_print_every_key() {
    let cfg = ok(MINIMAL);
    let text = cfg.to_toml_string();
    for key in DRIVER_KEYS.iter().chain(SHM_KEYS).chain(POLICIES_KEYS) {
        assert!(
            text.contains(&format!("\n{key} = ")),
            "{key} missing from:\n{text}"
        );
    }
    assert!(text.contains("stream_id_range = \"\""));
    assert!(text.contains("epoch_gc_min_age_ns = 3000000000"));
    assert_eq!(reload(&cfg), cfg);
}

#[test]
fn full_config_round_trips() {
    let cfg = ok(FULL);
    assert_eq!(cfg.policies.shutdown_token.as_deref(), Some("tok\\en"));
    assert_eq!(cfg.driver.instance_id, "round \"trip\"");
    assert_eq!(reload(&cfg), cfg);
}

#[test]
fn redacted_output_hides_the_token() {
    let cfg = ok(FULL);
    let text = cfg.to_redacted_toml_string();
    assert!(!text.contains("tok\\\\en"), "{text}");
    assert!(text.contains(REDACTED));
    assert!(!ok(MINIMAL).to_redacted_toml_string().contains(REDACTED));
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_policies_round_trip(
        announce in 1u32..100_000,
        keepalive in 1u32..100_000,
        grace in 1u32..100,
        keep in 1u32..10,
        gc_age in proptest::option::of(0u64..=i64::MAX as u64),
        nslots_pow in 0u32..20,
        stride_pow in 6u32..31,
        stream_id in 10_000u32..11_000,
        ns in "[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}",
        token in ".{0,12}",
    ) {
        let gc = gc_age.map(|g| format!("epoch_gc_min_age_ns = {g}\n")).unwrap_or_default();
        let text = format!(
            "[shm]\nnamespace = {ns:?}\n[policies]\nannounce_period_ms = {announce}\n\
             lease_keepalive_interval_ms = {keepalive}\nlease_expiry_grace_intervals = {grace}\n\
             epoch_gc_keep = {keep}\nshutdown_token = {}\n{gc}\
             [profiles.p]\nheader_nslots = {}\npayload_pools = [{{ pool_id = 1, stride_bytes = {} }}]\n\
             [streams.s]\nstream_id = {stream_id}\nprofile = \"p\"\n",
            toml::Value::String(token),
            1u32 << nslots_pow,
            1u32 << stride_pow,
        );
        let cfg = match load(&text) {
            Ok(c) => c,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
        };
        let expected_age = gc_age.unwrap_or(3 * u64::from(announce) * 1_000_000);
        prop_assert_eq!(cfg.policies.epoch_gc_min_age_ns, expected_age);
        prop_assert_eq!(reload(&cfg), cfg);
    }
}
