use super::*;
use crate::driver::core::{AttachGrant, PoolLayout};
use crate::protocol::driver::{
    HugepagesPolicy, LeaseRevokeReason, ResponseCode, Role, ShmAttachResponseDecoder,
    ShmLeaseRevokedDecoder, ShutdownReason,
};
use std::borrow::Cow;
use std::sync::Arc;

fn layout() -> Arc<EpochLayout> {
    Arc::new(EpochLayout {
        stream_id: 10000,
        epoch: 4,
        layout_version: 1,
        header_nslots: 8,
        header_region_uri: "shm:file?path=/dev/shm/tp/h".into(),
        pools: vec![PoolLayout {
            pool_id: 1,
            nslots: 8,
            stride_bytes: 4096,
            region_uri: "shm:file?path=/dev/shm/tp/1.pool".into(),
        }],
    })
}

fn encode(output: &Output) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let len = encode_output(output, &mut buf).expect("encodes");
    buf.truncate(len);
    buf
}

#[test]
fn ok_attach_response_has_every_required_field() {
    let bytes = encode(&Output::AttachResponse(AttachResponse {
        correlation_id: 42,
        code: ResponseCode::Ok,
        error_message: Cow::Borrowed(""),
        grant: Some(AttachGrant {
            lease_id: 9,
            lease_expiry_ns: 3_000,
            node_id: None,
            layout: layout(),
        }),
    }));
    let r = ShmAttachResponseDecoder::wrap(&bytes).expect("decodes");
    assert_eq!(r.correlation_id(), 42);
    assert_eq!(r.code(), ResponseCode::Ok);
    assert_eq!(r.lease_id(), Some(9));
    assert_eq!(r.lease_expiry_timestamp_ns(), Some(3_000));
    assert_eq!(r.stream_id(), Some(10000));
    assert_eq!(r.epoch(), Some(4));
    assert_eq!(r.layout_version(), Some(1));
    assert_eq!(r.header_nslots(), Some(8));
    assert_eq!(r.header_slot_bytes(), Some(256));
    assert_eq!(r.node_id(), None);
    let pools: Vec<_> = r.payload_pools().map(|p| p.to_value()).collect();
    assert_eq!(pools.len(), 1);
    assert_eq!(
        (
            pools[0].pool_id,
            pools[0].pool_nslots,
            pools[0].stride_bytes
        ),
        (1, 8, 4096)
    );
    assert_eq!(pools[0].region_uri, b"shm:file?path=/dev/shm/tp/1.pool");
    assert_eq!(r.header_region_uri(), b"shm:file?path=/dev/shm/tp/h");
    assert_eq!(r.error_message(), b"");
}

#[test]
fn error_attach_response_sets_optional_fields_null() {
    let bytes = encode(&Output::AttachResponse(AttachResponse {
        correlation_id: -1,
        code: ResponseCode::Rejected,
        error_message: Cow::Borrowed("producer already attached"),
        grant: None,
    }));
    let r = ShmAttachResponseDecoder::wrap(&bytes).expect("decodes");
    assert_eq!((r.correlation_id(), r.code()), (-1, ResponseCode::Rejected));
    assert_eq!(r.lease_id(), None);
    assert_eq!(r.epoch(), None);
    assert_eq!(r.header_slot_bytes(), None);
    assert_eq!(r.payload_pools().len(), 0);
    assert_eq!(r.header_region_uri(), b"");
    assert_eq!(r.error_message(), b"producer already attached");
}

#[test]
fn revoke_and_announce_go_to_their_streams() {
    let revoke = Output::LeaseRevoked {
        timestamp_ns: 1,
        lease_id: 2,
        stream_id: 3,
        client_id: 4,
        role: Role::Producer,
        reason: LeaseRevokeReason::Expired,
    };
    assert_eq!(destination(&revoke), Destination::Control);
    let bytes = encode(&revoke);
    let r = ShmLeaseRevokedDecoder::wrap(&bytes)
        .expect("decodes")
        .to_value();
    assert_eq!(
        (r.lease_id, r.stream_id, r.client_id, r.role, r.reason),
        (2, 3, 4, Role::Producer, LeaseRevokeReason::Expired)
    );

    let announce = Output::Announce {
        timestamp_ns: 7,
        producer_id: 11,
        layout: layout(),
    };
    assert_eq!(destination(&announce), Destination::Announce);
    let bytes = encode(&announce);
    let a = control::ShmPoolAnnounceDecoder::wrap(&bytes).expect("decodes");
    assert_eq!(
        (
            a.stream_id(),
            a.producer_id(),
            a.epoch(),
            a.announce_timestamp_ns()
        ),
        (10000, 11, 4, 7)
    );
    assert_eq!(a.announce_clock_domain(), ClockDomain::Monotonic);
    assert_eq!(a.header_slot_bytes(), 256);
    assert_eq!(a.payload_pools().len(), 1);
}

#[test]
fn shutdown_notice_carries_reason_and_message() {
    let bytes = encode(&Output::DriverShutdown {
        timestamp_ns: 5,
        reason: ShutdownReason::Admin,
        error_message: Cow::Borrowed("maintenance"),
    });
    let n = driver::ShmDriverShutdown::decode(&bytes).expect("decodes");
    assert_eq!(
        (n.reason, n.error_message),
        (ShutdownReason::Admin, &b"maintenance"[..])
    );
}

fn attach_bytes(version: u16) -> Vec<u8> {
    let req = ShmAttachRequest {
        correlation_id: 77,
        stream_id: 10000,
        client_id: 5,
        role: Role::Consumer,
        expected_layout_version: 0,
        publish_mode: None,
        require_hugepages: HugepagesPolicy::Unspecified,
        desired_node_id: None,
    };
    let mut buf = vec![0u8; req.encoded_len()];
    req.encode(&mut buf).expect("encodes");
    buf[6..8].copy_from_slice(&version.to_le_bytes());
    buf
}

#[test]
fn inbound_requests_are_classified() {
    assert!(
        matches!(classify(&attach_bytes(1)), Ok(Inbound::Attach(r)) if r.correlation_id == 77 && r.client_id == 5)
    );
    let ka = ShmLeaseKeepalive {
        lease_id: 1,
        stream_id: 2,
        client_id: 3,
        role: Role::Consumer,
        client_timestamp_ns: 4,
    };
    let mut buf = vec![0u8; ka.encoded_len()];
    ka.encode(&mut buf).expect("encodes");
    assert!(matches!(classify(&buf), Ok(Inbound::Keepalive(k)) if k == ka));
}

#[test]
fn newer_attach_request_is_answerable_with_its_correlation_id() {
    assert!(matches!(
        classify(&attach_bytes(2)),
        Ok(Inbound::AttachNewerVersion {
            correlation_id: 77,
            version: 2
        })
    ));
}

#[test]
fn driver_output_on_the_shared_stream_is_not_for_the_driver() {
    let bytes = encode(&Output::DetachResponse {
        correlation_id: 1,
        code: ResponseCode::Ok,
        error_message: "",
    });
    assert!(matches!(classify(&bytes), Ok(Inbound::NotForDriver)));
    let bytes = encode(&Output::Announce {
        timestamp_ns: 7,
        producer_id: 11,
        layout: layout(),
    });
    assert!(matches!(classify(&bytes), Ok(Inbound::NotForDriver)));
}

#[test]
fn malformed_messages_are_classified_by_kind() {
    assert_eq!(classify(&[1, 2, 3]).err(), Some(Malformed::TooShort));
    let mut foreign = attach_bytes(1);
    foreign[4..6].copy_from_slice(&902u16.to_le_bytes());
    assert_eq!(
        classify(&foreign).err(),
        Some(Malformed::ForeignSchema(902))
    );
    let mut unknown = attach_bytes(1);
    unknown[2..4].copy_from_slice(&99u16.to_le_bytes());
    assert_eq!(
        classify(&unknown).err(),
        Some(Malformed::UnknownTemplate {
            schema_id: 901,
            template_id: 99
        })
    );
    let mut newer_keepalive = attach_bytes(2);
    newer_keepalive[2..4].copy_from_slice(&5u16.to_le_bytes());
    assert_eq!(
        classify(&newer_keepalive).err(),
        Some(Malformed::NewerVersion(2))
    );
    let truncated = &attach_bytes(1)[..20];
    assert!(matches!(
        classify(truncated),
        Err(Malformed::Invalid(DecodeError::Truncated { .. }))
    ));
    let kinds: std::collections::HashSet<usize> = [
        Malformed::TooShort,
        Malformed::ForeignSchema(0),
        Malformed::UnknownTemplate {
            schema_id: 0,
            template_id: 0,
        },
        Malformed::NewerVersion(0),
        Malformed::Invalid(DecodeError::TemplateMismatch {
            expected: 0,
            actual: 0,
        }),
    ]
    .iter()
    .map(Malformed::kind_index)
    .collect();
    assert_eq!(kinds.len(), Malformed::KINDS);
}
