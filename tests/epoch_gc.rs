//! Issue 15 §1, Wire Spec §15.21a (drivers SHOULD scan periodically): a driver gives back
//! the memory of retired epochs on its own schedule. After a burst of producer churn on
//! a stream that then stays quiet, every epoch beyond `epoch_gc_keep` goes once it is
//! `epoch_gc_min_age_ns` old, without another epoch being made.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{DriverSettings, InThreadDriver, TestClient, TestEnv, DEADLINE, STATIC_STREAM};
use tensorpool::protocol::driver::Role;
use tensorpool::shm::paths::CanonicalLayout;

/// The numeric epoch directories of a stream.
fn epoch_dirs(stream_dir: &Path) -> Vec<u64> {
    let mut epochs: Vec<u64> = std::fs::read_dir(stream_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    epochs.sort_unstable();
    epochs
}

#[test]
fn retired_epochs_of_a_quiet_stream_are_reclaimed_without_a_new_epoch() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-gc".into(),
        ..DriverSettings::shared_announce()
    };
    let mut config = settings.config(&env);
    let min_age = Duration::from_secs(1);
    config.policies.epoch_gc_enabled = true;
    config.policies.epoch_gc_keep = 1;
    config.policies.epoch_gc_min_age_ns = min_age.as_nanos() as u64;
    let layout = CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
        .expect("canonical layout");
    let stream_dir = layout.stream_dir(STATIC_STREAM);
    let _driver = InThreadDriver::start_with_config(&env, config);
    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);

    // Producer churn: every attach starts an epoch (§6), faster than the minimum age.
    let churn_started = Instant::now();
    for client_id in 1..=6 {
        let lease = client.attach_ok(STATIC_STREAM, client_id, Role::Producer);
        client.detach(&lease);
    }
    let churned = epoch_dirs(&stream_dir);
    assert!(
        churned.len() >= 6,
        "the churn left its epochs while they are young: {churned:?}"
    );
    let current = *churned.last().expect("epochs");

    // Now quiet: no attach, no detach. The periodic step alone must collect.
    let reclaimed = support::wait_until("only the current epoch left", min_age + DEADLINE, || {
        (epoch_dirs(&stream_dir) == [current]).then(Instant::now)
    });
    assert!(
        reclaimed.duration_since(churn_started) >= min_age,
        "nothing younger than the minimum age is collected"
    );
    assert!(
        layout.header_ring_path(STATIC_STREAM, current).is_file(),
        "the current epoch is never collected"
    );
    eprintln!(
        "reclaimed {} epochs {:?} after the churn",
        churned.len() - 1,
        reclaimed.duration_since(churn_started)
    );
    // The driver's counters say what came back (published every counter period).
    // Every epoch but the current one went (numbering starts at 1, the static stream's
    // epoch made at start-up), whether the periodic step or a new epoch collected it.
    let expected = current as i64 - 1;
    support::wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("epochs reclaimed"),
        |n| n == expected,
    );
    let bytes = support::wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("bytes reclaimed"),
        |n| n > 0,
    );
    assert!(
        bytes >= expected * 4096,
        "each epoch's files held at least a page: {bytes} bytes for {expected} epochs"
    );
}

/// Bytes the files under `dir` really occupy (allocated blocks, as `du` counts them).
fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// Issue 21 §3: with the shipped defaults (prefault on, `epoch_gc_keep = 1`) a stream
/// costs one full epoch while its producer lives and a few pages once it has left.
#[test]
fn a_stream_holds_a_full_epoch_only_while_a_producer_is_attached() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-footprint".into(),
        ..DriverSettings::shared_announce()
    };
    let mut config = settings.config(&env);
    config.policies.prefault_shm = true;
    config.policies.epoch_gc_keep = tensorpool::config::DEFAULT_EPOCH_GC_KEEP;
    config.policies.epoch_gc_min_age_ns = Duration::from_millis(500).as_nanos() as u64;
    let profile = config.profile("small").expect("test profile").clone();
    let epoch_bytes: u64 = profile
        .payload_pools
        .iter()
        .map(|p| u64::from(p.stride_bytes) * u64::from(profile.header_nslots))
        .sum();
    let layout = CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
        .expect("canonical layout");
    let stream_dir = layout.stream_dir(STATIC_STREAM);
    let _driver = InThreadDriver::start_with_config(&env, config);
    let mut client = TestClient::for_settings(&env.aeron_dir(), &settings);

    assert!(
        allocated_bytes(&stream_dir) < epoch_bytes / 2,
        "the start-up epoch has no producer and stays sparse"
    );
    let lease = client.attach_ok(STATIC_STREAM, 1, Role::Producer);
    let producing = support::wait_until("the producer's epoch prefaulted", DEADLINE, || {
        let used = allocated_bytes(&stream_dir);
        (used >= epoch_bytes).then_some(used)
    });
    client.detach(&lease);
    let after = support::wait_until("the producer's epoch reclaimed", DEADLINE * 2, || {
        client.pump();
        let used = allocated_bytes(&stream_dir);
        (epoch_dirs(&stream_dir).len() == 1 && used < epoch_bytes / 2).then_some(used)
    });
    eprintln!("stream footprint: {producing} bytes with a producer, {after} after it left");
}
