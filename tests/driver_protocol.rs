//! Integration tests of the SHM driver over the wire (Driver Model §4.2–§4.13, §5–§8,
//! §11; Wire Spec §10.1), run against every host of the driver agent
//! ([`support::hosts`]): `run_until` on a thread with its embedded media driver, and a
//! stock aeronmd with the plugin in SHARED and DEDICATED mode; real files in a private
//! base directory, and an SBE client on the test thread.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::hosts::{Host, TestDriver};
use support::*;
use tensorpool::clock::monotonic_now_ns;
use tensorpool::protocol::codec::MESSAGE_HEADER_LEN;
use tensorpool::protocol::driver::{
    self, HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShutdownReason,
};
use tensorpool::shm::layout::{
    header_ring_len, payload_pool_len, HEADER_SLOT_BYTES, LAYOUT_VERSION,
};
use tensorpool::shm::uri::RegionUri;

/// Asserts a refusal carries `code` and leaves every optional field null (§4.2).
fn assert_refused(reply: &AttachReply, code: ResponseCode) {
    assert_eq!(reply.code, code, "unexpected response: {reply:?}");
    assert_eq!(reply.lease_id, None, "{reply:?}");
    assert_eq!(reply.lease_expiry_ns, None, "{reply:?}");
    assert_eq!(reply.stream_id, None, "{reply:?}");
    assert_eq!(reply.epoch, None, "{reply:?}");
    assert_eq!(reply.node_id, None, "{reply:?}");
    assert!(reply.pools.is_empty(), "{reply:?}");
    assert!(
        !reply.error_message.is_empty(),
        "a refusal should say why: {reply:?}"
    );
}

/// Asserts `uri` names a regular file of `len` bytes inside `env`'s SHM base directory.
fn assert_region(env: &TestEnv, uri: &str, len: u64) {
    let parsed =
        RegionUri::parse(uri).unwrap_or_else(|e| panic!("invalid region URI {uri:?}: {e}"));
    let path = parsed.path();
    assert!(
        path.starts_with(env.shm_dir()),
        "{uri} is outside the base directory"
    );
    let meta = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{uri}: {e}"));
    assert!(meta.is_file(), "{uri} is not a regular file");
    assert_eq!(meta.len(), len, "size of {uri}");
}

fn attach_keepalive_detach_follows_the_success_sequence(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::separate_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);
    client.set_auto_keepalive(false);

    let req = attach_request(STATIC_STREAM, 11, Role::Producer);
    let sent_ns = monotonic_now_ns();
    let reply = client.attach(&req);
    let expiry = LEASE_EXPIRY.as_nanos() as u64;
    assert_eq!(reply.code, ResponseCode::Ok, "{reply:?}");
    assert_eq!(reply.correlation_id, req.correlation_id);
    assert!(reply.lease_id.is_some(), "{reply:?}");
    // A monotonic deadline one lease expiry after the driver handled the request.
    let deadline = reply.lease_expiry_ns.expect("leaseExpiryTimestampNs");
    assert!(
        (sent_ns + expiry..=monotonic_now_ns() + expiry).contains(&deadline),
        "{reply:?}"
    );
    assert_eq!(reply.stream_id, Some(STATIC_STREAM));
    assert!(reply.epoch.is_some_and(|e| e > 0), "{reply:?}");
    assert_eq!(reply.layout_version, Some(LAYOUT_VERSION));
    assert_eq!(reply.header_nslots, Some(HEADER_NSLOTS));
    assert_eq!(reply.header_slot_bytes, Some(HEADER_SLOT_BYTES as u16));
    assert_eq!(reply.node_id, None, "no node id was asked for");
    assert_eq!(reply.error_message, "");
    assert_region(
        &env,
        &reply.header_region_uri,
        header_ring_len(HEADER_NSLOTS).unwrap(),
    );
    let pools: Vec<(u16, u32)> = reply
        .pools
        .iter()
        .map(|p| (p.pool_id, p.stride_bytes))
        .collect();
    assert_eq!(pools, POOLS);
    for pool in &reply.pools {
        assert_eq!(
            pool.nslots, HEADER_NSLOTS,
            "poolNslots == headerNslots: {pool:?}"
        );
        assert_region(
            &env,
            &pool.region_uri,
            payload_pool_len(HEADER_NSLOTS, pool.stride_bytes).unwrap(),
        );
    }
    let lease = reply.expect_ok(11, Role::Producer);

    // Three keepalives, each well inside the expiry, carry the lease past it.
    let spacing = LEASE_EXPIRY * 2 / 5;
    for _ in 0..3 {
        client.pump_for(spacing);
        client.keepalive(&lease);
    }
    client.pump_for(spacing);
    let detach = client.detach(&lease);
    assert_eq!(
        detach.code,
        ResponseCode::Ok,
        "lease lost despite keepalives: {detach:?}"
    );
    let revoked = client.wait_for("the DETACHED revoke", |m| {
        m.as_revoked().is_some_and(|r| r.lease_id == lease.lease_id)
    });
    assert_eq!(
        revoked.as_revoked(),
        Some(&Revoked {
            lease_id: lease.lease_id,
            stream_id: STATIC_STREAM,
            client_id: 11,
            role: Role::Producer,
            reason: LeaseRevokeReason::Detached,
        })
    );
    // The epoch's announce names the same files as the attach response.
    let announced = client.wait_for("the announce of the producer's epoch", |m| {
        m.as_announce()
            .is_some_and(|a| a.stream_id == STATIC_STREAM && a.epoch == lease.epoch)
    });
    let announced = announced.as_announce().unwrap();
    assert_eq!(announced.header_region_uri, reply.header_region_uri);
    assert_eq!(announced.pools, reply.pools);
    assert_eq!(
        (
            announced.header_nslots,
            announced.header_slot_bytes,
            announced.layout_version
        ),
        (HEADER_NSLOTS, HEADER_SLOT_BYTES as u16, LAYOUT_VERSION)
    );
    assert_eq!(
        wait_for_counter(
            driver.aeron_dir(),
            &settings.counter_label("keepalives"),
            |v| v >= 3
        ),
        3
    );
    drop(client);
    driver.stop();
}

fn second_producer_is_rejected(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);

    client.attach_ok(STATIC_STREAM, 21, Role::Producer);
    let second = client.attach(&attach_request(STATIC_STREAM, 22, Role::Producer));
    assert_refused(&second, ResponseCode::Rejected);
    // Consumers are not affected by the exclusive producer rule.
    client.attach_ok(STATIC_STREAM, 23, Role::Consumer);
}

fn client_id_collision_is_rejected_with_the_auto_assign_message(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::separate_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);

    client.attach_ok(STATIC_STREAM, 31, Role::Consumer);
    let again = client.attach(&attach_request(STATIC_STREAM, 31, Role::Consumer));
    assert_refused(&again, ResponseCode::Rejected);
    assert_eq!(again.error_message, "client_id already attached");
}

fn every_attach_error_code_is_reachable_over_the_wire(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);

    let mut req = attach_request(STATIC_STREAM, 41, Role::Unrecognized(9));
    assert_refused(&client.attach(&req), ResponseCode::InvalidParams);

    req = attach_request(STATIC_STREAM, 41, Role::Consumer);
    req.require_hugepages = HugepagesPolicy::Unrecognized(9);
    assert_refused(&client.attach(&req), ResponseCode::InvalidParams);

    req = attach_request(12345, 41, Role::Consumer);
    req.publish_mode = None;
    assert_refused(&client.attach(&req), ResponseCode::Rejected);

    req = attach_request(STATIC_STREAM, 41, Role::Consumer);
    req.publish_mode = Some(PublishMode::Unrecognized(9));
    assert_refused(&client.attach(&req), ResponseCode::Unsupported);

    // A newer schema version in the header: UNSUPPORTED, correlation id echoed (§4.4a).
    req = attach_request(STATIC_STREAM, 41, Role::Consumer);
    let mut bytes = vec![0; 256];
    let len = req.encode(&mut bytes).unwrap();
    bytes[6..8].copy_from_slice(&(driver::SCHEMA_VERSION + 1).to_le_bytes());
    client.send_raw(&bytes[..len]);
    let newer = client.attach_response(req.correlation_id);
    assert_refused(&newer, ResponseCode::Unsupported);
    assert_eq!(newer.correlation_id, req.correlation_id);

    // Dynamic streams: the requested id when it is in range, else the lowest free one.
    let (low, high) = DYNAMIC_RANGE;
    req = attach_request(high, 42, Role::Consumer);
    req.publish_mode = Some(PublishMode::ExistingOrCreate);
    assert_eq!(
        client.attach(&req).expect_ok(42, Role::Consumer).stream_id,
        high
    );
    req = attach_request(0, 43, Role::Consumer);
    req.publish_mode = Some(PublishMode::ExistingOrCreate);
    let created = client.attach(&req).expect_ok(43, Role::Consumer);
    assert_eq!(created.stream_id, low, "the lowest free id of the range");
    // The id in the response is the stream in use: it now exists.
    client.attach_ok(created.stream_id, 44, Role::Producer);

    req = attach_request(0, 45, Role::Consumer);
    req.publish_mode = Some(PublishMode::ExistingOrCreate);
    assert_refused(&client.attach(&req), ResponseCode::InvalidParams);

    req = attach_request(STATIC_STREAM, 46, Role::Consumer);
    req.expected_layout_version = LAYOUT_VERSION + 1;
    assert_refused(&client.attach(&req), ResponseCode::Rejected);

    req = attach_request(STATIC_STREAM, 46, Role::Consumer);
    req.require_hugepages = HugepagesPolicy::Hugepages;
    assert_refused(&client.attach(&req), ResponseCode::Rejected);

    req = attach_request(STATIC_STREAM, 47, Role::Consumer);
    req.desired_node_id = Some(4242);
    let holder = client.attach(&req);
    assert_eq!(holder.code, ResponseCode::Ok, "{holder:?}");
    assert_eq!(holder.node_id, Some(4242));
    req = attach_request(STATIC_STREAM, 48, Role::Consumer);
    req.desired_node_id = Some(4242);
    assert_refused(&client.attach(&req), ResponseCode::Rejected);
}

fn expired_producer_lease_is_revoked_before_the_epoch_bump_announce(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);
    client.set_auto_keepalive(false);

    let sent = Instant::now();
    let lease = client.attach_ok(STATIC_STREAM, 51, Role::Producer);
    let seen = client.collect_until("an announce of a newer epoch", |m| {
        m.as_announce()
            .is_some_and(|a| a.stream_id == STATIC_STREAM && a.epoch > lease.epoch)
    });
    assert!(
        sent.elapsed() >= LEASE_EXPIRY,
        "lease ended early, after {:?}",
        sent.elapsed()
    );
    let bumped = seen.last().and_then(OwnedMessage::as_announce).unwrap();
    assert_eq!(bumped.producer_id, 0, "no producer after expiry");
    let revokes: Vec<&Revoked> = seen
        .iter()
        .filter_map(OwnedMessage::as_revoked)
        .filter(|r| r.lease_id == lease.lease_id)
        .collect();
    assert_eq!(
        revokes,
        [&Revoked {
            lease_id: lease.lease_id,
            stream_id: STATIC_STREAM,
            client_id: 51,
            role: Role::Producer,
            reason: LeaseRevokeReason::Expired,
        }],
        "exactly one EXPIRED revoke before the announce; saw {seen:#?}"
    );
}

fn announces_carry_the_producer_client_id_only_while_it_is_attached(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::separate_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);
    let is_static = |m: &OwnedMessage| {
        m.as_announce()
            .is_some_and(|a| a.stream_id == STATIC_STREAM)
    };

    client.attach_ok(STATIC_STREAM, 61, Role::Consumer);
    client.clear();
    let producer = client.attach_ok(STATIC_STREAM, 62, Role::Producer);
    let announces: Vec<Announce> = client
        .collect(ANNOUNCE_PERIOD * 2 + ANNOUNCE_PERIOD / 2)
        .iter()
        .filter(|m| is_static(m))
        .filter_map(|m| m.as_announce().cloned())
        .collect();
    assert!(
        announces.iter().any(|a| a.epoch == producer.epoch),
        "no announce of the producer's epoch: {announces:#?}"
    );
    for a in announces.iter().filter(|a| a.epoch >= producer.epoch) {
        assert_eq!(a.producer_id, 62, "while attached: {a:?}");
    }

    assert_eq!(client.detach(&producer).code, ResponseCode::Ok);
    client.wait_for("an announce after the detach", |m| {
        m.as_announce()
            .is_some_and(|a| a.stream_id == STATIC_STREAM && a.epoch > producer.epoch)
    });
    let after: Vec<Announce> = client
        .collect(ANNOUNCE_PERIOD + ANNOUNCE_PERIOD / 2)
        .iter()
        .filter_map(|m| {
            m.as_announce()
                .filter(|a| a.stream_id == STATIC_STREAM)
                .cloned()
        })
        .collect();
    assert!(!after.is_empty(), "periodic announces stopped");
    for a in &after {
        assert!(a.epoch > producer.epoch, "{a:?}");
        assert_eq!(a.producer_id, 0, "after detach: {a:?}");
    }
}

fn consumer_hello_assigns_per_consumer_streams_or_declines(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);
    let config_for = |id: u32| move |m: &OwnedMessage| matches!(m, OwnedMessage::ConsumerConfig(c) if c.consumer_id == id);
    let in_range = |id: u32, (a, b): (u32, u32)| (a..=b).contains(&id);

    // Without a consumer lease a hello is ignored.
    client.consumer_hello(
        STATIC_STREAM,
        79,
        ("aeron:ipc", 31001),
        ("aeron:ipc", 32001),
    );

    client.attach_ok(STATIC_STREAM, 71, Role::Consumer);
    client.consumer_hello(
        STATIC_STREAM,
        71,
        ("aeron:ipc", 31002),
        ("aeron:ipc", 32001),
    );
    let OwnedMessage::ConsumerConfig(granted) = client.wait_for("config for 71", config_for(71))
    else {
        unreachable!()
    };
    assert_eq!(granted.stream_id, STATIC_STREAM);
    assert_eq!(
        (
            granted.descriptor_channel.as_str(),
            granted.descriptor_stream_id
        ),
        ("aeron:ipc", 31002)
    );
    assert_eq!(
        (granted.control_channel.as_str(), granted.control_stream_id),
        ("aeron:ipc", 32001)
    );

    // An id outside the range gets one from the range.
    client.attach_ok(STATIC_STREAM, 72, Role::Consumer);
    client.consumer_hello(STATIC_STREAM, 72, ("aeron:ipc", 40000), ("", 0));
    let OwnedMessage::ConsumerConfig(moved) = client.wait_for("config for 72", config_for(72))
    else {
        unreachable!()
    };
    assert!(
        in_range(moved.descriptor_stream_id, DESCRIPTOR_RANGE),
        "{moved:?}"
    );
    assert_ne!(moved.descriptor_stream_id, 31002, "already assigned to 71");
    assert_eq!(
        (moved.control_channel.as_str(), moved.control_stream_id),
        ("", 0)
    );

    // A channel without an id (and an id without a channel) is declined.
    client.attach_ok(STATIC_STREAM, 73, Role::Consumer);
    client.consumer_hello(STATIC_STREAM, 73, ("aeron:ipc", 0), ("", 32002));
    let OwnedMessage::ConsumerConfig(declined) = client.wait_for("config for 73", config_for(73))
    else {
        unreachable!()
    };
    assert_eq!(
        (
            declined.descriptor_channel.as_str(),
            declined.descriptor_stream_id
        ),
        ("", 0)
    );
    assert_eq!(
        (
            declined.control_channel.as_str(),
            declined.control_stream_id
        ),
        ("", 0)
    );

    let rest = client.collect(Duration::ZERO);
    assert!(
        !rest.iter().any(config_for(79)),
        "a hello without lease was answered: {rest:#?}"
    );
}

fn shutdown_request_needs_the_token_then_drains_and_notifies(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);
    client.attach_ok(STATIC_STREAM, 81, Role::Consumer);

    client.shutdown_request("wrong", ShutdownReason::Admin, "");
    let seen = client.collect(SHUTDOWN_TIMEOUT + ANNOUNCE_PERIOD);
    assert!(
        !seen.iter().any(OwnedMessage::is_shutdown),
        "wrong token accepted: {seen:#?}"
    );
    client.attach_ok(STATIC_STREAM, 82, Role::Consumer);
    let ignored = settings.counter_label("shutdown requests ignored");
    assert_eq!(client.wait_for_counter(&ignored, |v| v >= 1), 1);

    client.clear();
    let sent_ns = monotonic_now_ns();
    client.shutdown_request(TOKEN, ShutdownReason::Admin, "maintenance");
    // Accepted: attaches are refused while the driver drains.
    let late = client.attach(&attach_request(STATIC_STREAM, 83, Role::Consumer));
    assert_refused(&late, ResponseCode::Rejected);
    let seen = client.collect_until("ShmDriverShutdown", OwnedMessage::is_shutdown);
    let notice_ns = monotonic_now_ns();
    assert_eq!(
        seen.last(),
        Some(&OwnedMessage::Shutdown {
            reason: ShutdownReason::Admin,
            error_message: "maintenance".into()
        })
    );
    // The final announce is stamped when the request was accepted (periodic announces
    // stop while draining). The driver reads its clock once per duty cycle, before it
    // polls, so a request sent just after a cycle began is stamped up to that cycle's
    // start: allow a slack far below the announce period.
    let cycle_slack_ns = ANNOUNCE_PERIOD.as_nanos() as u64 / 4;
    let final_announce = seen
        .iter()
        .filter_map(OwnedMessage::as_announce)
        .find(|a| a.stream_id == STATIC_STREAM && a.timestamp_ns + cycle_slack_ns >= sent_ns)
        .unwrap_or_else(|| panic!("no final announce before the notice: {seen:#?}"));
    let drained = Duration::from_nanos(notice_ns - final_announce.timestamp_ns);
    assert!(
        drained >= SHUTDOWN_TIMEOUT,
        "notice {drained:?} after acceptance"
    );
    drop(client);
    driver.wait_shut_down(DEADLINE);
}

fn malformed_messages_are_counted_and_do_not_disturb_an_attach(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::separate_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);

    let header = |template: u16, schema: u16| {
        let mut bytes = Vec::new();
        for field in [8u16, template, schema, 1] {
            bytes.extend_from_slice(&field.to_le_bytes());
        }
        bytes.extend_from_slice(&[0; 8]);
        bytes
    };
    let req = attach_request(STATIC_STREAM, 91, Role::Consumer);
    let mut truncated = vec![0; 256];
    req.encode(&mut truncated).unwrap();
    truncated.truncate(MESSAGE_HEADER_LEN + 10);

    client.send_raw(&[1, 2, 3]);
    client.send_raw(&header(1, 999));
    client.send_raw(&header(99, driver::SCHEMA_ID));
    client.send_raw(&truncated);
    client.attach(&req).expect_ok(91, Role::Consumer);

    let label = settings.counter_label("malformed messages");
    assert_eq!(client.wait_for_counter(&label, |v| v >= 4), 4);
}

fn counters_show_attaches_and_active_leases(host: Host) {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let driver = TestDriver::start(host, &env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);

    client.attach_ok(STATIC_STREAM, 101, Role::Consumer);
    let label = |name: &str| settings.counter_label(name);
    assert_eq!(
        client.wait_for_counter(&label("attaches ok"), |v| v >= 1),
        1
    );
    assert_eq!(
        client.wait_for_counter(&label("active consumer leases"), |v| v >= 1),
        1
    );
    let dir = driver.aeron_dir();
    assert_eq!(
        counter_value(dir, &label("active producer leases")),
        Some(0)
    );
    assert_eq!(
        counter_value(dir, &label("attaches rejected REJECTED")),
        Some(0)
    );
}

// Each runs once per host of the agent: tp-driver's loop, aeronmd SHARED, aeronmd DEDICATED.
for_each_host!(
    attach_keepalive_detach_follows_the_success_sequence,
    second_producer_is_rejected,
    client_id_collision_is_rejected_with_the_auto_assign_message,
    every_attach_error_code_is_reachable_over_the_wire,
    expired_producer_lease_is_revoked_before_the_epoch_bump_announce,
    announces_carry_the_producer_client_id_only_while_it_is_attached,
    consumer_hello_assigns_per_consumer_streams_or_declines,
    shutdown_request_needs_the_token_then_drains_and_notifies,
    malformed_messages_are_counted_and_do_not_disturb_an_attach,
    counters_show_attaches_and_active_leases,
);

/// tp-driver only: inside aeronmd the media driver's idle strategy decides when the
/// agent runs, so the plugin keeps no doorbell.
#[test]
fn a_parked_driver_is_woken_by_its_doorbell_and_removes_it_on_exit() {
    use tensorpool::shm::doorbell::{doorbell_path, Doorbell};
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let config = settings.config(&env);
    let path = doorbell_path(&env.aeron_dir(), config.driver.control_stream_id);
    let driver = InThreadDriver::start(&env, &settings);
    let mut client = TestClient::for_settings(driver.aeron_dir(), &settings);
    let bell = wait_until("the driver's doorbell", DEADLINE, || {
        Doorbell::open(&path).expect("a well-formed doorbell")
    });
    let wakeups = settings.counter_label("doorbell wake-ups");
    // Ring after each attach until one finds the driver parked (it parks within a few
    // ms of going quiet); that attach is answered and the wake-up counted.
    let deadline = Instant::now() + DEADLINE;
    let mut client_id = 90;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let request = attach_request(STATIC_STREAM, client_id, Role::Consumer);
        client.send_attach(&request);
        let woke = bell.ring();
        let reply = client.attach_response(request.correlation_id);
        reply.expect_ok(client_id, Role::Consumer);
        if woke {
            break;
        }
        assert!(Instant::now() < deadline, "the driver never parked");
        client_id += 1;
    }
    assert!(client.wait_for_counter(&wakeups, |v| v >= 1) >= 1);
    drop(client);
    driver.stop().expect("driver stops cleanly");
    assert!(
        !path.exists(),
        "the doorbell is removed when the driver stops"
    );
}
