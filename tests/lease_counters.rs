//! The driver publishes its lease table as one Aeron counter per live lease
//! (`src/driver/lease_counters.rs`), and its endpoints as one more
//! (`src/driver/endpoints.rs`), readable from the CnC file without a lease, on every
//! host: `tp-driver`'s runner and the aeronmd plugin (the external media driver host is
//! pinned in `tests/tp_tool.rs`, where `tp` finds drivers sharing one).

mod support;

use std::path::Path;

use support::hosts::{Host, TestDriver};
use support::*;
use tensorpool::clock::monotonic_now_ns;
use tensorpool::driver::endpoints::{DriverEndpoints, ENDPOINTS_COUNTER_TYPE_ID};
use tensorpool::driver::lease_counters::{LeaseKey, LEASE_COUNTER_TYPE_ID};
use tensorpool::protocol::driver::Role;
use tensorpool::transport::read_counters;

/// Every published lease of the driver in `aeron_dir`: its key, label and value.
fn lease_counters(aeron_dir: &Path) -> Vec<(LeaseKey, String, i64)> {
    read_counters(aeron_dir)
        .expect("reading the CnC file")
        .into_iter()
        .filter(|c| c.type_id == LEASE_COUNTER_TYPE_ID)
        .map(|c| {
            let key = LeaseKey::decode(&c.key).expect("a lease counter's key decodes");
            (key, c.label, c.value)
        })
        .collect()
}

fn leases_appear_as_counters_with_their_fields_and_vanish_when_they_end(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);
    let before_grant = monotonic_now_ns();
    let producer = client.attach_ok(STATIC_STREAM, 7, Role::Producer);
    let after_grant = monotonic_now_ns();
    let consumer = client.attach_ok(STATIC_STREAM, 8, Role::Consumer);
    client.consumer_hello(STATIC_STREAM, 8, (CHANNEL, DESCRIPTOR_RANGE.0), ("", 0));

    let published = wait_until("both leases published", DEADLINE, || {
        client.pump();
        let counters = lease_counters(driver.aeron_dir());
        let consumer_has_stream = counters
            .iter()
            .any(|(k, _, _)| k.lease_id == consumer.lease_id && k.descriptor_stream_id.is_some());
        (counters.len() == 2 && consumer_has_stream).then_some(counters)
    });
    let find = |lease_id| {
        published
            .iter()
            .find(|(k, _, _)| k.lease_id == lease_id)
            .unwrap_or_else(|| panic!("lease {lease_id} has no counter: {published:?}"))
    };
    let (key, label, expiry) = find(producer.lease_id);
    assert_eq!(
        (key.stream_id, key.client_id, key.role),
        (STATIC_STREAM, 7, Role::Producer)
    );
    assert_eq!(key.driver_control_stream_id, CONTROL_STREAM);
    // Dated by the duty cycle that handled the attach: its clock reading may precede the
    // request's arrival by up to one cycle (a park, at most a few milliseconds).
    assert!(
        key.granted_ns + 100_000_000 >= before_grant && key.granted_ns <= after_grant,
        "{key:?}"
    );
    assert!(
        *expiry as u64 > key.granted_ns,
        "value is the expiry: {expiry}"
    );
    assert_eq!(
        *label,
        format!(
            "tp-driver[{}] lease: stream={STATIC_STREAM} client=7 role=PRODUCER lease={}",
            settings.instance_id, producer.lease_id
        )
    );
    let (key, label, _) = find(consumer.lease_id);
    assert_eq!((key.client_id, key.role), (8, Role::Consumer));
    assert_eq!(key.descriptor_stream_id, Some(DESCRIPTOR_RANGE.0));
    assert!(label.ends_with(&format!("descriptor-stream={}", DESCRIPTOR_RANGE.0)));

    // Keepalives move the expiry forward.
    let first_expiry = find(producer.lease_id).2;
    client.keepalive(&producer);
    wait_until("the producer's expiry to move", DEADLINE, || {
        client.pump();
        lease_counters(driver.aeron_dir())
            .iter()
            .any(|(k, _, v)| k.lease_id == producer.lease_id && *v > first_expiry)
            .then_some(())
    });

    client.detach(&consumer);
    wait_until("the consumer's counter to go", DEADLINE, || {
        client.pump();
        let counters = lease_counters(driver.aeron_dir());
        (counters.len() == 1 && counters[0].0.lease_id == producer.lease_id).then_some(())
    });
    client.detach(&producer);
    wait_until("no lease counters left", DEADLINE, || {
        client.pump();
        lease_counters(driver.aeron_dir()).is_empty().then_some(())
    });
    drop(client);
    driver.stop();
}

/// A driver publishes its streams, SHM location and GC policy in one counter whose value
/// is its pid (the test process's, or aeronmd's for the plugin).
fn the_endpoints_counter_names_the_drivers_streams_shm_location_and_pid(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "endpoints".into(),
        ..DriverSettings::separate_announce()
    };
    let mut driver = TestDriver::start(host, &env, &settings);
    let found = wait_until("the endpoints counter", DEADLINE, || {
        read_counters(driver.aeron_dir())
            .ok()?
            .into_iter()
            .find(|c| c.type_id == ENDPOINTS_COUNTER_TYPE_ID && c.value != 0)
    });
    let endpoints =
        DriverEndpoints::decode(&found.key, &found.label).expect("the endpoints decode");
    let pid = match &mut driver {
        TestDriver::InThread(_) => std::process::id(),
        TestDriver::Aeronmd(aeronmd) => aeronmd.process().pid(),
    };
    assert_eq!(
        endpoints,
        DriverEndpoints::new(&settings.config(&env), pid),
        "{}",
        found.label
    );
    assert_eq!(found.value, i64::from(endpoints.pid));
    assert!(
        std::path::Path::new(&format!("/proc/{}", endpoints.pid)).exists(),
        "pid {} runs",
        endpoints.pid
    );
    assert_eq!(
        (
            endpoints.control_stream_id,
            endpoints.announce_stream_id,
            endpoints.qos_stream_id
        ),
        (CONTROL_STREAM, SEPARATE_ANNOUNCE_STREAM, QOS_STREAM)
    );
    assert_eq!(found.label, endpoints.label());
    driver.stop();
}

for_each_host!(
    leases_appear_as_counters_with_their_fields_and_vanish_when_they_end,
    the_endpoints_counter_names_the_drivers_streams_shm_location_and_pid
);
