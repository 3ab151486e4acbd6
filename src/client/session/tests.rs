use super::*;
use crate::protocol::driver::{
    ShmAttachResponse, ShmAttachResponsePayloadPools, ShmDetachResponse, ShmDriverShutdown,
    ShmLeaseRevoked,
};

const MS: u64 = 1_000_000;

fn session() -> DriverSession {
    DriverSession::new(SessionConfig::new(10000, Role::Consumer))
}

fn attach_request(s: &mut DriverSession, now: u64) -> ShmAttachRequest {
    match s.poll(now) {
        (Some(Request::Attach(r)), None) => r,
        other => panic!("expected an attach request, got {other:?}"),
    }
}

const HEADER_URI: &[u8] = b"shm:file?path=/dev/shm/tp/h.ring";
const POOL_URI: &[u8] = b"shm:file?path=/dev/shm/tp/1.pool";

fn ok_response(correlation_id: i64) -> ShmAttachResponse<'static> {
    const POOLS: &[ShmAttachResponsePayloadPools<'static>] = &[ShmAttachResponsePayloadPools {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 4096,
        region_uri: POOL_URI,
    }];
    ShmAttachResponse {
        correlation_id,
        code: ResponseCode::Ok,
        lease_id: Some(77),
        lease_expiry_timestamp_ns: Some(3_000 * MS),
        stream_id: Some(10000),
        epoch: Some(5),
        layout_version: Some(1),
        header_nslots: Some(8),
        header_slot_bytes: Some(256),
        node_id: None,
        payload_pools: POOLS,
        header_region_uri: HEADER_URI,
        error_message: b"",
    }
}

fn bytes(r: &ShmAttachResponse<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; r.encoded_len()];
    r.encode(&mut buf).expect("encodes");
    buf
}

fn attached() -> (DriverSession, LeaseGrant) {
    let mut s = session();
    let req = attach_request(&mut s, 0);
    match s.on_message(&bytes(&ok_response(req.correlation_id)), 0) {
        Some(SessionEvent::Attached(g)) => (s, g),
        other => panic!("expected attached, got {other:?}"),
    }
}

#[test]
fn first_poll_sends_an_attach_with_an_auto_assigned_client_id() {
    let mut s = session();
    let req = attach_request(&mut s, 0);
    assert_ne!(req.client_id, 0);
    assert_eq!(req.client_id, s.client_id());
    assert!(req.correlation_id > 0);
    assert_eq!(
        (req.stream_id, req.role, req.publish_mode),
        (10000, Role::Consumer, None)
    );
}

#[test]
fn correlation_ids_differ_between_sessions() {
    let a = attach_request(&mut session(), 0).correlation_id;
    let b = attach_request(&mut session(), 0).correlation_id;
    assert_ne!(a, b);
}

#[test]
fn ok_response_grants_and_keepalives_follow_at_the_interval() {
    let (mut s, grant) = attached();
    assert_eq!(
        (grant.lease_id, grant.epoch, grant.header_nslots),
        (77, 5, 8)
    );
    assert_eq!(grant.pools.len(), 1);
    assert_eq!(s.poll(999 * MS), (None, None));
    match s.poll(1000 * MS) {
        (Some(Request::Keepalive(ka)), None) => {
            assert_eq!(
                (ka.lease_id, ka.stream_id, ka.client_id, ka.role),
                (77, 10000, s.client_id(), Role::Consumer)
            );
        }
        other => panic!("expected a keepalive, got {other:?}"),
    }
}

#[test]
fn responses_for_other_correlation_ids_and_duplicates_are_ignored() {
    let mut s = session();
    let req = attach_request(&mut s, 0);
    assert_eq!(
        s.on_message(&bytes(&ok_response(req.correlation_id + 1)), 0),
        None
    );
    assert!(matches!(
        s.on_message(&bytes(&ok_response(req.correlation_id)), 0),
        Some(SessionEvent::Attached(_))
    ));
    assert_eq!(
        s.on_message(&bytes(&ok_response(req.correlation_id)), 0),
        None,
        "duplicate OK ignored"
    );
    let mut refused = ok_response(req.correlation_id);
    refused.code = ResponseCode::Rejected;
    assert_eq!(
        s.on_message(&bytes(&refused), 0),
        None,
        "a non-OK duplicate cannot override"
    );
    assert_eq!(s.grant().map(|g| g.lease_id), Some(77));
}

fn protocol_error_for(mutate: impl FnOnce(&mut ShmAttachResponse<'static>)) -> ProtocolError {
    let mut s = session();
    let req = attach_request(&mut s, 0);
    let mut r = ok_response(req.correlation_id);
    mutate(&mut r);
    match s.on_message(&bytes(&r), 0) {
        Some(SessionEvent::ProtocolError(e)) => {
            assert!(
                s.grant().is_none(),
                "nothing is granted on a protocol error"
            );
            assert_eq!(s.protocol_errors()[e.kind_index()], 1);
            e
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn ok_response_with_a_null_required_field_fails_closed() {
    assert_eq!(
        protocol_error_for(|r| r.lease_id = None),
        ProtocolError::NullField("leaseId")
    );
    assert_eq!(
        protocol_error_for(|r| r.epoch = None),
        ProtocolError::NullField("epoch")
    );
    assert_eq!(
        protocol_error_for(|r| r.header_slot_bytes = None),
        ProtocolError::NullField("headerSlotBytes")
    );
    assert_eq!(
        protocol_error_for(|r| r.stream_id = None),
        ProtocolError::NullField("streamId")
    );
}

#[test]
fn ok_response_with_empty_or_blank_uri_fails_closed() {
    assert_eq!(
        protocol_error_for(|r| r.header_region_uri = b""),
        ProtocolError::EmptyUri("headerRegionUri")
    );
    assert_eq!(
        protocol_error_for(|r| r.header_region_uri = b"   "),
        ProtocolError::EmptyUri("headerRegionUri")
    );
    const BLANK: &[ShmAttachResponsePayloadPools<'static>] = &[ShmAttachResponsePayloadPools {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 4096,
        region_uri: b"",
    }];
    assert_eq!(
        protocol_error_for(|r| r.payload_pools = BLANK),
        ProtocolError::EmptyUri("payloadPools.regionUri")
    );
}

#[test]
fn ok_response_with_bad_geometry_fails_closed() {
    assert_eq!(
        protocol_error_for(|r| r.header_slot_bytes = Some(128)),
        ProtocolError::HeaderSlotBytes(128)
    );
    assert_eq!(
        protocol_error_for(|r| r.payload_pools = &[]),
        ProtocolError::NoPayloadPools
    );
    const MISMATCH: &[ShmAttachResponsePayloadPools<'static>] = &[ShmAttachResponsePayloadPools {
        pool_id: 1,
        pool_nslots: 16,
        stride_bytes: 4096,
        region_uri: POOL_URI,
    }];
    assert!(matches!(
        protocol_error_for(|r| r.payload_pools = MISMATCH),
        ProtocolError::PoolNslotsMismatch { pool_id: 1, .. }
    ));
}

#[test]
fn ok_response_with_an_invalid_uri_fails_closed() {
    assert!(matches!(
        protocol_error_for(|r| r.header_region_uri = b"file:///etc/passwd"),
        ProtocolError::InvalidUri(_)
    ));
    assert!(matches!(
        protocol_error_for(|r| r.header_region_uri = b"shm:file?path=relative"),
        ProtocolError::InvalidUri(_)
    ));
}

#[test]
fn unknown_response_code_and_newer_version_fail_closed() {
    assert_eq!(
        protocol_error_for(|r| r.code = ResponseCode::Unrecognized(9)),
        ProtocolError::UnknownEnum("ResponseCode")
    );
    let mut s = session();
    let req = attach_request(&mut s, 0);
    let mut buf = bytes(&ok_response(req.correlation_id));
    buf[6] = 2;
    assert_eq!(
        s.on_message(&buf, 0),
        Some(SessionEvent::ProtocolError(
            ProtocolError::NewerSchemaVersion(2)
        ))
    );
}

#[test]
fn refusal_backs_off_and_retries() {
    let mut s = session();
    let req = attach_request(&mut s, 0);
    let mut r = ok_response(req.correlation_id);
    r.code = ResponseCode::Rejected;
    r.error_message = b"producer already attached";
    assert!(matches!(
        s.on_message(&bytes(&r), 0),
        Some(SessionEvent::AttachRefused {
            code: ResponseCode::Rejected,
            ..
        })
    ));
    assert_eq!(s.poll(0), (None, None), "no immediate retry");
    let retry = attach_request(&mut s, 100 * MS);
    assert_ne!(retry.correlation_id, req.correlation_id);
    assert_eq!(
        retry.client_id, req.client_id,
        "a plain refusal keeps the client id"
    );
}

#[test]
fn client_id_collision_picks_a_new_auto_assigned_id() {
    let mut s = session();
    let req = attach_request(&mut s, 0);
    let mut r = ok_response(req.correlation_id);
    r.code = ResponseCode::Rejected;
    r.error_message = CLIENT_ID_ALREADY_ATTACHED.as_bytes();
    s.on_message(&bytes(&r), 0);
    assert_ne!(attach_request(&mut s, 100 * MS).client_id, req.client_id);

    let mut fixed = DriverSession::new(SessionConfig {
        client_id: 42,
        ..SessionConfig::new(10000, Role::Consumer)
    });
    let req = attach_request(&mut fixed, 0);
    let mut r = ok_response(req.correlation_id);
    r.code = ResponseCode::Rejected;
    r.error_message = CLIENT_ID_ALREADY_ATTACHED.as_bytes();
    fixed.on_message(&bytes(&r), 0);
    assert_eq!(
        attach_request(&mut fixed, 100 * MS).client_id,
        42,
        "an explicit id is kept"
    );
}

#[test]
fn attach_timeout_retries_with_growing_backoff_and_a_growing_wait() {
    let mut s = session();
    attach_request(&mut s, 0);
    assert_eq!(
        s.poll(1000 * MS),
        (
            None,
            Some(SessionEvent::AttachTimedOut {
                waited: Duration::from_secs(1),
                unanswered: 1
            })
        )
    );
    // First backoff: 50 ms ± 25 %.
    assert_eq!(s.poll(1000 * MS + 37 * MS), (None, None));
    attach_request(&mut s, 1000 * MS + 63 * MS);
    // The driver was connected and did not answer: the second attempt waits 2 s.
    assert_eq!(s.poll(3000 * MS + 62 * MS), (None, None));
    assert_eq!(
        s.poll(3000 * MS + 63 * MS),
        (
            None,
            Some(SessionEvent::AttachTimedOut {
                waited: Duration::from_secs(2),
                unanswered: 2
            })
        )
    );
    // Second backoff: 100 ms ± 25 %.
    assert_eq!(s.poll(3000 * MS + 137 * MS), (None, None));
    attach_request(&mut s, 3000 * MS + 189 * MS);
}

#[test]
fn the_attach_wait_stops_growing_at_its_maximum_and_resets_after_a_grant() {
    let mut s = session();
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..6 {
        let sent = now;
        attach_request(&mut s, sent);
        loop {
            now += MS;
            if let (None, Some(SessionEvent::AttachTimedOut { waited, .. })) = s.poll(now) {
                waits.push(waited.as_millis());
                break;
            }
        }
        now += 3_000 * MS; // past any backoff
    }
    assert_eq!(waits, [1000, 2000, 4000, 8000, 8000, 8000]);
    let req = attach_request(&mut s, now);
    assert!(matches!(
        s.on_message(&bytes(&ok_response(req.correlation_id)), now),
        Some(SessionEvent::Attached(_))
    ));
    // After losing the lease, the next attempt waits the configured timeout again.
    let revoked = revoke_bytes(77, Role::Consumer, LeaseRevokeReason::Revoked);
    assert!(s.on_message(&revoked, now).is_some());
    now += 3_000 * MS;
    attach_request(&mut s, now);
    assert_eq!(s.poll(now + 999 * MS), (None, None));
    assert!(matches!(
        s.poll(now + 1000 * MS),
        (None, Some(SessionEvent::AttachTimedOut { .. }))
    ));
}

/// Sends attempts until two have timed out; returns their requests.
fn two_timed_out_attempts(s: &mut DriverSession) -> (ShmAttachRequest, ShmAttachRequest, u64) {
    let first = attach_request(s, 0);
    assert!(matches!(
        s.poll(1000 * MS),
        (None, Some(SessionEvent::AttachTimedOut { .. }))
    ));
    let second = attach_request(s, 1100 * MS);
    (first, second, 1200 * MS)
}

#[test]
fn a_grant_that_arrives_after_its_attempt_timed_out_becomes_the_lease() {
    let mut s = session();
    let (first, second, now) = two_timed_out_attempts(&mut s);
    // The driver was slow: it answers the first attempt while the second is in flight.
    match s.on_message(&bytes(&ok_response(first.correlation_id)), now) {
        Some(SessionEvent::Attached(grant)) => assert_eq!(grant.lease_id, 77),
        other => panic!("expected the late grant to be taken, got {other:?}"),
    }
    assert_eq!(s.late_grants().adopted, 1);
    // The driver then refuses the second attempt: this client already holds a lease.
    let mut refused = ok_response(second.correlation_id);
    refused.code = ResponseCode::Rejected;
    refused.error_message = CLIENT_ID_ALREADY_ATTACHED.as_bytes();
    assert_eq!(s.on_message(&bytes(&refused), now), None);
    assert_eq!(s.client_id(), first.client_id, "the client id stays");
    assert_eq!(s.grant().map(|g| g.lease_id), Some(77));
    // Keepalives go for the taken lease with the id it was granted to.
    match s.poll(now + 1000 * MS) {
        (Some(Request::Keepalive(ka)), None) => {
            assert_eq!((ka.lease_id, ka.client_id), (77, first.client_id));
        }
        other => panic!("expected a keepalive, got {other:?}"),
    }
}

#[test]
fn a_late_grant_for_an_attempt_made_under_an_older_client_id_keeps_that_id() {
    let mut s = session();
    let (first, second, now) = two_timed_out_attempts(&mut s);
    let mut collision = ok_response(second.correlation_id);
    collision.code = ResponseCode::Rejected;
    collision.error_message = CLIENT_ID_ALREADY_ATTACHED.as_bytes();
    assert!(matches!(
        s.on_message(&bytes(&collision), now),
        Some(SessionEvent::AttachRefused { .. })
    ));
    assert_ne!(s.client_id(), first.client_id, "a new id after a collision");
    assert!(matches!(
        s.on_message(&bytes(&ok_response(first.correlation_id)), now),
        Some(SessionEvent::Attached(_))
    ));
    assert_eq!(s.client_id(), first.client_id, "the lease's own id");
}

#[test]
fn a_second_grant_while_holding_a_lease_is_detached_at_once() {
    let mut s = session();
    let (first, second, now) = two_timed_out_attempts(&mut s);
    assert!(matches!(
        s.on_message(&bytes(&ok_response(second.correlation_id)), now),
        Some(SessionEvent::Attached(_))
    ));
    let mut late = ok_response(first.correlation_id);
    late.lease_id = Some(78);
    assert_eq!(s.on_message(&bytes(&late), now), None);
    assert_eq!(s.late_grants().released, 1);
    match s.poll(now) {
        (Some(Request::Detach(d)), None) => {
            assert_eq!(
                (d.lease_id, d.stream_id, d.client_id, d.role),
                (78, 10000, first.client_id, Role::Consumer)
            );
            assert!(d.correlation_id > 0);
        }
        other => panic!("expected a detach of the unwanted lease, got {other:?}"),
    }
    assert_eq!(
        s.grant().map(|g| g.lease_id),
        Some(77),
        "the lease in use stays"
    );
    // A duplicate of that grant is not detached twice.
    assert_eq!(s.on_message(&bytes(&late), now), None);
    assert_eq!(s.late_grants().released, 1);
}

#[test]
fn a_late_grant_that_fails_validation_is_not_taken() {
    let mut s = session();
    let (first, _second, now) = two_timed_out_attempts(&mut s);
    let mut bad = ok_response(first.correlation_id);
    bad.header_slot_bytes = Some(512);
    assert_eq!(s.on_message(&bytes(&bad), now), None);
    assert!(s.grant().is_none());
    assert_eq!(s.late_grants(), LateGrants::default());
}

fn revoke_bytes(lease_id: u64, role: Role, reason: LeaseRevokeReason) -> Vec<u8> {
    let m = ShmLeaseRevoked {
        timestamp_ns: 0,
        lease_id,
        stream_id: 10000,
        client_id: 1,
        role,
        reason,
        error_message: b"",
    };
    let mut buf = vec![0u8; m.encoded_len()];
    m.encode(&mut buf).expect("encodes");
    buf
}

#[test]
fn own_revocation_drops_the_lease_and_reattaches() {
    let (mut s, _) = attached();
    let event = s.on_message(
        &revoke_bytes(77, Role::Consumer, LeaseRevokeReason::Expired),
        5 * MS,
    );
    assert_eq!(
        event,
        Some(SessionEvent::Revoked(LeaseRevokeReason::Expired))
    );
    assert!(s.grant().is_none());
    attach_request(&mut s, 200 * MS);
}

#[test]
fn other_revocations_are_reported_but_keep_the_lease() {
    let (mut s, _) = attached();
    let event = s.on_message(
        &revoke_bytes(12, Role::Producer, LeaseRevokeReason::Detached),
        0,
    );
    assert_eq!(
        event,
        Some(SessionEvent::OtherLeaseRevoked {
            lease_id: 12,
            stream_id: 10000,
            role: Role::Producer,
            reason: LeaseRevokeReason::Detached
        })
    );
    assert!(s.grant().is_some());
}

#[test]
fn revocations_with_unknown_reason_or_role_are_refused() {
    let (mut s, _) = attached();
    assert_eq!(
        s.on_message(
            &revoke_bytes(77, Role::Consumer, LeaseRevokeReason::Unrecognized(9)),
            0
        ),
        None
    );
    assert_eq!(
        s.on_message(
            &revoke_bytes(77, Role::Unrecognized(9), LeaseRevokeReason::Expired),
            0
        ),
        None
    );
    assert_eq!(s.ignored_notices(), 2);
    assert!(s.grant().is_some());
}

#[test]
fn driver_shutdown_drops_the_lease_and_reattaches_later() {
    let (mut s, _) = attached();
    let m = ShmDriverShutdown {
        timestamp_ns: 0,
        reason: ShutdownReason::Normal,
        error_message: b"",
    };
    let mut buf = vec![0u8; m.encoded_len()];
    m.encode(&mut buf).expect("encodes");
    assert_eq!(
        s.on_message(&buf, 0),
        Some(SessionEvent::DriverShutdown(ShutdownReason::Normal))
    );
    assert!(s.grant().is_none());
    attach_request(&mut s, 500 * MS);
}

#[test]
fn a_keepalive_that_cannot_be_sent_loses_the_lease() {
    let (mut s, _) = attached();
    assert!(matches!(
        s.poll(1000 * MS),
        (Some(Request::Keepalive(_)), None)
    ));
    assert_eq!(s.send_failed(1000 * MS), Some(SessionEvent::LeaseLost));
    assert!(s.grant().is_none());
}

#[test]
fn passing_the_hard_expiry_without_a_keepalive_loses_the_lease() {
    let mut s = DriverSession::new(SessionConfig {
        keepalive_interval: Some(Duration::from_secs(10)),
        ..SessionConfig::new(10000, Role::Consumer)
    });
    let req = attach_request(&mut s, 0);
    s.on_message(&bytes(&ok_response(req.correlation_id)), 0);
    assert_eq!(s.poll(3000 * MS), (None, Some(SessionEvent::LeaseLost)));
}

#[test]
fn close_detaches_and_closes_on_the_response_or_timeout() {
    let (mut s, _) = attached();
    let Some(Request::Detach(d)) = s.close(10) else {
        panic!("expected a detach")
    };
    assert_eq!(
        (d.lease_id, d.stream_id, d.role),
        (77, 10000, Role::Consumer)
    );
    let other = ShmDetachResponse {
        correlation_id: d.correlation_id + 1,
        code: ResponseCode::Ok,
        error_message: b"",
    };
    let mut buf = vec![0u8; other.encoded_len()];
    other.encode(&mut buf).expect("encodes");
    assert_eq!(s.on_message(&buf, 20), None);
    let ours = ShmDetachResponse {
        correlation_id: d.correlation_id,
        ..other
    };
    ours.encode(&mut buf).expect("encodes");
    assert_eq!(s.on_message(&buf, 20), Some(SessionEvent::Closed));
    assert!(s.is_closed());

    let (mut s, _) = attached();
    s.close(0);
    assert_eq!(s.poll(1000 * MS), (None, Some(SessionEvent::Closed)));
}

/// Attaches a session with `bound` to a grant whose lease ends `lease_ms` after `now`.
fn attached_with_lease(bound: Option<Duration>, now: u64, lease_ms: Option<u64>) -> DriverSession {
    let mut s = DriverSession::new(SessionConfig {
        keepalive_interval: bound,
        ..SessionConfig::new(10000, Role::Consumer)
    });
    let req = attach_request(&mut s, now);
    let response = ShmAttachResponse {
        lease_expiry_timestamp_ns: lease_ms.map(|ms| now + ms * MS),
        ..ok_response(req.correlation_id)
    };
    assert!(matches!(
        s.on_message(&bytes(&response), now),
        Some(SessionEvent::Attached(_))
    ));
    s
}

/// Polls every `step_ms` from `from` to `to` (inclusive) and returns the times keepalives
/// went out; panics on any other event.
fn keepalive_times(s: &mut DriverSession, from: u64, to: u64, step_ms: u64) -> Vec<u64> {
    let mut sent = Vec::new();
    let mut now = from;
    while now <= to {
        match s.poll(now) {
            (Some(Request::Keepalive(ka)), None) => {
                assert_eq!(ka.client_timestamp_ns, now);
                sent.push(now);
            }
            (None, None) => {}
            other => panic!("at {} ms: {other:?}", now / MS),
        }
        now += step_ms * MS;
    }
    sent
}

#[test]
fn keepalives_keep_a_short_lease_alive_whatever_the_configured_bound() {
    // A driver at 100 ms keepalives and grace 3 grants 300 ms leases; the client's
    // configured 1 s would let every lease expire.
    let start = 50 * MS;
    let mut s = attached_with_lease(Some(Duration::from_secs(1)), start, Some(300));
    assert_eq!(s.keepalive_period(), Some(Duration::from_millis(100)));
    let sent = keepalive_times(&mut s, start, start + 10_000 * MS, 5);
    assert_eq!(sent.len(), 100, "one keepalive per 100 ms for 10 s");
    let mut deadline = start + 300 * MS;
    for at in sent {
        assert!(
            at < deadline,
            "keepalive at {at} after the lease ended at {deadline}"
        );
        deadline = at + 300 * MS;
    }
    assert!(s.grant().is_some());
}

#[test]
fn a_long_lease_is_not_kept_alive_more_often_than_it_needs() {
    // A driver at 10 s keepalives and grace 3 grants 30 s leases.
    let mut s = attached_with_lease(None, 0, Some(30_000));
    assert_eq!(s.keepalive_period(), Some(Duration::from_secs(10)));
    let sent = keepalive_times(&mut s, 0, 60_000 * MS, 100);
    assert_eq!(
        sent,
        vec![
            10_000 * MS,
            20_000 * MS,
            30_000 * MS,
            40_000 * MS,
            50_000 * MS,
            60_000 * MS
        ]
    );
}

#[test]
fn a_configured_bound_shorter_than_the_lease_needs_is_kept() {
    let mut s = attached_with_lease(Some(Duration::from_millis(250)), 0, Some(30_000));
    assert_eq!(s.keepalive_period(), Some(Duration::from_millis(250)));
    assert_eq!(keepalive_times(&mut s, 0, 1_000 * MS, 50).len(), 4);
}

#[test]
fn a_grant_without_a_deadline_keeps_alive_at_the_bound_or_the_baseline() {
    let s = attached_with_lease(None, 0, None);
    assert_eq!(s.keepalive_period(), Some(UNBOUNDED_LEASE_KEEPALIVE));
    let s = attached_with_lease(Some(Duration::from_millis(40)), 0, None);
    assert_eq!(s.keepalive_period(), Some(Duration::from_millis(40)));
}

#[test]
fn a_deadline_already_passed_at_the_grant_loses_the_lease_at_once() {
    let mut s = DriverSession::new(SessionConfig::new(10000, Role::Consumer));
    let req = attach_request(&mut s, 0);
    let response = ShmAttachResponse {
        lease_expiry_timestamp_ns: Some(5 * MS),
        ..ok_response(req.correlation_id)
    };
    assert!(matches!(
        s.on_message(&bytes(&response), 10 * MS),
        Some(SessionEvent::Attached(_))
    ));
    assert_eq!(s.keepalive_period(), Some(MIN_KEEPALIVE_PERIOD));
    assert_eq!(s.poll(10 * MS), (None, Some(SessionEvent::LeaseLost)));
}

#[test]
fn a_stall_longer_than_the_lease_after_a_keepalive_loses_the_lease() {
    let mut s = attached_with_lease(None, 0, Some(300));
    assert_eq!(keepalive_times(&mut s, 0, 100 * MS, 100), vec![100 * MS]);
    // The driver extends from when it received the keepalive (at or after 100 ms), so
    // the lease surely lasts to 400 ms; a duty cycle that stalls past it must not
    // pretend the lease is still held.
    assert_eq!(s.poll(400 * MS), (None, Some(SessionEvent::LeaseLost)));
    assert!(s.grant().is_none());
}

#[test]
fn keepalive_period_follows_the_remaining_lease_time() {
    assert_eq!(keepalive_period_ns(Some(900 * MS), 0, None), 300 * MS);
    assert_eq!(
        keepalive_period_ns(Some(900 * MS), 300 * MS, None),
        200 * MS
    );
    assert_eq!(
        keepalive_period_ns(Some(900 * MS), 0, Some(Duration::from_millis(100))),
        100 * MS
    );
    assert_eq!(keepalive_period_ns(Some(0), 10, None), MS);
    assert_eq!(keepalive_period_ns(None, 0, None), 1_000 * MS);
}
