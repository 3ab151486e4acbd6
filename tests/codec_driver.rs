//! Byte-exact tests of the generated driver control-plane codec (SBE schema 901, Driver
//! Model Spec v1.0 Appendix A).
//!
//! Expected encodings are written by hand with the independent little-endian builder in
//! `common/bytes.rs`, field by field in schema order, never from the generated offset
//! constants.

#[path = "common/bytes.rs"]
mod bytes;
#[path = "common/codec.rs"]
mod codec;
use codec::{
    assert_body_is_message_without_header, assert_cuts_truncated, assert_encodes,
    assert_header_cuts_truncated, assert_payload_pools, assert_round_trip,
    assert_too_small_everywhere, assert_truncated, assert_unknown_templates, encode_with, err,
};

use bytes::{rd_u16, wr_u16, wr_u32, B, VAR_MAX};
use tensorpool::protocol::driver::{
    AnyMessage, HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role,
    ShmAttachRequest, ShmAttachRequestDecoder, ShmAttachResponse, ShmAttachResponseDecoder,
    ShmAttachResponsePayloadPools, ShmDetachRequest, ShmDetachRequestDecoder, ShmDetachResponse,
    ShmDetachResponseDecoder, ShmDriverShutdown, ShmDriverShutdownDecoder,
    ShmDriverShutdownRequest, ShmDriverShutdownRequestDecoder, ShmLeaseKeepalive,
    ShmLeaseKeepaliveDecoder, ShmLeaseRevoked, ShmLeaseRevokedDecoder, ShutdownReason, SCHEMA_ID,
    SCHEMA_VERSION,
};
use tensorpool::protocol::{DecodeError, EncodeError};

/// Driver schema id and version (Appendix A: `id="901" version="1"`).
const SCHEMA: u16 = 901;
const VERSION: u16 = 1;

// ---------------------------------------------------------------------------------------
// Sample values
// ---------------------------------------------------------------------------------------

fn attach_request() -> ShmAttachRequest {
    ShmAttachRequest {
        correlation_id: -0x0102_0304_0506_0708,
        stream_id: 0x1000_0001,
        client_id: 0x00C0_FFEE,
        role: Role::Consumer,
        expected_layout_version: 0x0000_0003,
        publish_mode: Some(PublishMode::ExistingOrCreate),
        require_hugepages: HugepagesPolicy::Hugepages,
        desired_node_id: Some(0x0000_DEAD),
    }
}

fn attach_request_bytes() -> Vec<u8> {
    B::new()
        .header(27, 1, SCHEMA, VERSION)
        .i64(-0x0102_0304_0506_0708) // correlationId
        .u32(0x1000_0001) // streamId
        .u32(0x00C0_FFEE) // clientId
        .u8(2) // role CONSUMER
        .u32(3) // expectedLayoutVersion
        .u8(2) // publishMode EXISTING_OR_CREATE
        .u8(2) // requireHugepages HUGEPAGES
        .u32(0xDEAD) // desiredNodeId
        .build()
}

const POOLS: [ShmAttachResponsePayloadPools<'static>; 2] = [
    ShmAttachResponsePayloadPools {
        pool_id: 1,
        pool_nslots: 1024,
        stride_bytes: 0x0010_0000,
        region_uri: b"shm:file?path=/dev/shm/tp/7/1.pool",
    },
    ShmAttachResponsePayloadPools {
        pool_id: 0x0203,
        pool_nslots: 0x0A0B_0C0D,
        stride_bytes: 0x0040_0000,
        region_uri: b"shm:file?path=/dev/hugepages/tp/7/2.pool|require_hugepages=true",
    },
];

fn attach_response() -> ShmAttachResponse<'static> {
    ShmAttachResponse {
        correlation_id: 0x7172_7374_7576_7778,
        code: ResponseCode::Ok,
        lease_id: Some(0x1122_3344_5566_7788),
        lease_expiry_timestamp_ns: Some(0x0102_0304_0506_0709),
        stream_id: Some(0x0000_4E21),
        epoch: Some(0x0000_0000_0000_0042),
        layout_version: Some(1),
        header_nslots: Some(1024),
        header_slot_bytes: Some(256),
        node_id: Some(0x0000_0009),
        payload_pools: &POOLS,
        header_region_uri: b"shm:file?path=/dev/shm/tp/7/header.ring",
        error_message: b"",
    }
}

fn attach_response_bytes() -> Vec<u8> {
    B::new()
        .header(54, 2, SCHEMA, VERSION)
        .i64(0x7172_7374_7576_7778) // correlationId
        .i32(0) // code OK
        .u64(0x1122_3344_5566_7788) // leaseId
        .u64(0x0102_0304_0506_0709) // leaseExpiryTimestampNs
        .u32(0x4E21) // streamId
        .u64(0x42) // epoch
        .u32(1) // layoutVersion
        .u32(1024) // headerNslots
        .u16(256) // headerSlotBytes
        .u32(9) // nodeId
        .group(10, 2) // payloadPools
        .u16(1)
        .u32(1024)
        .u32(0x0010_0000)
        .var(b"shm:file?path=/dev/shm/tp/7/1.pool")
        .u16(0x0203)
        .u32(0x0A0B_0C0D)
        .u32(0x0040_0000)
        .var(b"shm:file?path=/dev/hugepages/tp/7/2.pool|require_hugepages=true")
        .var(b"shm:file?path=/dev/shm/tp/7/header.ring") // headerRegionUri
        .var(b"") // errorMessage
        .build()
}

/// Checks every field and every group entry of a decoded attach response against `v`.
#[track_caller]
fn assert_attach_response(d: &ShmAttachResponseDecoder<'_>, v: &ShmAttachResponse<'_>) {
    assert_eq!(d.correlation_id(), v.correlation_id);
    assert_eq!(d.code(), v.code);
    assert_eq!(d.lease_id(), v.lease_id);
    assert_eq!(d.lease_expiry_timestamp_ns(), v.lease_expiry_timestamp_ns);
    assert_eq!(d.stream_id(), v.stream_id);
    assert_eq!(d.epoch(), v.epoch);
    assert_eq!(d.layout_version(), v.layout_version);
    assert_eq!(d.header_nslots(), v.header_nslots);
    assert_eq!(d.header_slot_bytes(), v.header_slot_bytes);
    assert_eq!(d.node_id(), v.node_id);
    assert_payload_pools!(d.payload_pools(), v.payload_pools);
    assert_eq!(d.header_region_uri(), v.header_region_uri);
    assert_eq!(d.error_message(), v.error_message);
}

fn detach_request() -> ShmDetachRequest {
    ShmDetachRequest {
        correlation_id: 0x0A0B_0C0D_0E0F_1011,
        lease_id: 0xF1F2_F3F4_F5F6_F7F8,
        stream_id: 0x0000_2711,
        client_id: 0x0000_0305,
        role: Role::Producer,
    }
}

fn detach_request_bytes() -> Vec<u8> {
    B::new()
        .header(25, 3, SCHEMA, VERSION)
        .i64(0x0A0B_0C0D_0E0F_1011)
        .u64(0xF1F2_F3F4_F5F6_F7F8)
        .u32(0x2711)
        .u32(0x0305)
        .u8(1) // PRODUCER
        .build()
}

fn detach_response() -> ShmDetachResponse<'static> {
    ShmDetachResponse {
        correlation_id: -2,
        code: ResponseCode::InvalidParams,
        error_message: b"unknown lease",
    }
}

fn detach_response_bytes() -> Vec<u8> {
    B::new()
        .header(12, 4, SCHEMA, VERSION)
        .i64(-2)
        .i32(2) // INVALID_PARAMS
        .var(b"unknown lease")
        .build()
}

fn keepalive() -> ShmLeaseKeepalive {
    ShmLeaseKeepalive {
        lease_id: 0x8000_0000_0000_0001,
        stream_id: 0x0102_0304,
        client_id: 0x0506_0708,
        role: Role::Consumer,
        client_timestamp_ns: 0x1718_1920_2122_2324,
    }
}

fn keepalive_bytes() -> Vec<u8> {
    B::new()
        .header(25, 5, SCHEMA, VERSION)
        .u64(0x8000_0000_0000_0001)
        .u32(0x0102_0304)
        .u32(0x0506_0708)
        .u8(2)
        .u64(0x1718_1920_2122_2324)
        .build()
}

fn driver_shutdown() -> ShmDriverShutdown<'static> {
    ShmDriverShutdown {
        timestamp_ns: 0x0123_4567_89AB_CDEF,
        reason: ShutdownReason::Error,
        error_message: b"disk full",
    }
}

fn driver_shutdown_bytes() -> Vec<u8> {
    B::new()
        .header(9, 6, SCHEMA, VERSION)
        .u64(0x0123_4567_89AB_CDEF)
        .u8(2) // ERROR
        .var(b"disk full")
        .build()
}

fn lease_revoked() -> ShmLeaseRevoked<'static> {
    ShmLeaseRevoked {
        timestamp_ns: 0x1112_1314_1516_1718,
        lease_id: 0x2122_2324_2526_2728,
        stream_id: 0x3132_3334,
        client_id: 0x4142_4344,
        role: Role::Producer,
        reason: LeaseRevokeReason::Expired,
        error_message: b"keepalive missed",
    }
}

fn lease_revoked_bytes() -> Vec<u8> {
    B::new()
        .header(26, 7, SCHEMA, VERSION)
        .u64(0x1112_1314_1516_1718)
        .u64(0x2122_2324_2526_2728)
        .u32(0x3132_3334)
        .u32(0x4142_4344)
        .u8(1) // PRODUCER
        .u8(2) // EXPIRED
        .var(b"keepalive missed")
        .build()
}

fn shutdown_request() -> ShmDriverShutdownRequest<'static> {
    ShmDriverShutdownRequest {
        correlation_id: 0x5152_5354_5556_5758,
        reason: ShutdownReason::Admin,
        token: b"s3cr3t-token",
        error_message: b"maintenance",
    }
}

fn shutdown_request_bytes() -> Vec<u8> {
    B::new()
        .header(9, 8, SCHEMA, VERSION)
        .i64(0x5152_5354_5556_5758)
        .u8(1) // ADMIN
        .var(b"s3cr3t-token")
        .var(b"maintenance")
        .build()
}

// ---------------------------------------------------------------------------------------
// 1 + 2. Exact bytes and round trips, one message at a time
// ---------------------------------------------------------------------------------------

#[test]
fn schema_constants() {
    assert_eq!(SCHEMA_ID, 901);
    assert_eq!(SCHEMA_VERSION, 1);
}

#[test]
fn attach_request_exact_bytes_and_round_trip() {
    let v = attach_request();
    let expected = attach_request_bytes();
    assert_eq!(expected.len(), 8 + 27);
    assert_eq!(v.encoded_len(), expected.len());
    let got = assert_round_trip!(ShmAttachRequest, v, expected);
    let d = ShmAttachRequestDecoder::wrap(&got).unwrap();
    assert_eq!(d.block_length(), 27);
    assert_eq!(d.acting_version(), 1);
    assert_eq!(d.encoded_body_len(), 27);
    assert_eq!(d.correlation_id(), -0x0102_0304_0506_0708);
    assert_eq!(d.stream_id(), 0x1000_0001);
    assert_eq!(d.client_id(), 0x00C0_FFEE);
    assert_eq!(d.role(), Role::Consumer);
    assert_eq!(d.expected_layout_version(), 3);
    assert_eq!(d.publish_mode(), Some(PublishMode::ExistingOrCreate));
    assert_eq!(d.require_hugepages(), HugepagesPolicy::Hugepages);
    assert_eq!(d.desired_node_id(), Some(0xDEAD));
}

#[test]
fn attach_request_optional_fields_null() {
    let v = ShmAttachRequest {
        publish_mode: None,
        desired_node_id: None,
        require_hugepages: HugepagesPolicy::Unspecified,
        role: Role::Producer,
        ..attach_request()
    };
    let expected = B::new()
        .header(27, 1, SCHEMA, VERSION)
        .i64(-0x0102_0304_0506_0708)
        .u32(0x1000_0001)
        .u32(0x00C0_FFEE)
        .u8(1)
        .u32(3)
        .u8(255) // publishMode nullValue
        .u8(0) // UNSPECIFIED
        .bytes(&[0xFF; 4]) // desiredNodeId nullValue 4294967295
        .build();
    assert_encodes!(v, expected);
    let d = ShmAttachRequestDecoder::wrap(&expected).unwrap();
    assert_eq!(d.publish_mode(), None);
    assert_eq!(d.desired_node_id(), None);
    assert_eq!(ShmAttachRequest::decode(&expected), Ok(v));
}

#[test]
fn attach_request_publish_mode_require_existing() {
    let v = ShmAttachRequest {
        publish_mode: Some(PublishMode::RequireExisting),
        require_hugepages: HugepagesPolicy::Standard,
        ..attach_request()
    };
    let got = encode_with(v.encoded_len(), |b| v.encode(b));
    assert_eq!(got[8 + 21], 1, "publishMode REQUIRE_EXISTING");
    assert_eq!(got[8 + 22], 1, "requireHugepages STANDARD");
    assert_eq!(ShmAttachRequest::decode(&got), Ok(v));
}

#[test]
fn attach_response_exact_bytes_two_pools() {
    let v = attach_response();
    let expected = attach_response_bytes();
    assert_eq!(v.encoded_len(), expected.len());
    let got = assert_encodes!(v, expected);
    // Group header sits right after the 54-byte block.
    assert_eq!(rd_u16(&got, 8 + 54), 10, "payloadPools entry blockLength");
    assert_eq!(rd_u16(&got, 8 + 54 + 2), 2, "payloadPools numInGroup");
    let d = ShmAttachResponseDecoder::wrap(&got).unwrap();
    assert_eq!(d.block_length(), 54);
    assert_eq!(d.encoded_body_len(), expected.len() - 8);
    assert_attach_response(&d, &v);
}

#[test]
fn attach_response_error_with_all_optionals_null() {
    let v = ShmAttachResponse {
        correlation_id: 77,
        code: ResponseCode::Rejected,
        lease_id: None,
        lease_expiry_timestamp_ns: None,
        stream_id: None,
        epoch: None,
        layout_version: None,
        header_nslots: None,
        header_slot_bytes: None,
        node_id: None,
        payload_pools: &[],
        header_region_uri: b"",
        error_message: b"producer already attached",
    };
    let expected = B::new()
        .header(54, 2, SCHEMA, VERSION)
        .i64(77)
        .i32(3) // REJECTED
        .fill(8, 0xFF) // leaseId
        .fill(8, 0xFF) // leaseExpiryTimestampNs
        .fill(4, 0xFF) // streamId
        .fill(8, 0xFF) // epoch
        .fill(4, 0xFF) // layoutVersion
        .fill(4, 0xFF) // headerNslots
        .fill(2, 0xFF) // headerSlotBytes (uint16 null 65535)
        .fill(4, 0xFF) // nodeId
        .group(10, 0)
        .var(b"")
        .var(b"producer already attached")
        .build();
    assert_encodes!(v, expected);
    let d = ShmAttachResponseDecoder::wrap(&expected).unwrap();
    assert_attach_response(&d, &v);
    assert_eq!(d.payload_pools().next().map(|p| p.pool_id()), None);
}

#[test]
fn attach_response_encode_body_matches_encode_without_header() {
    let v = attach_response();
    let body = assert_body_is_message_without_header!(v);
    assert_eq!(v.encoded_body_len() + 8, v.encoded_len());
    let d = ShmAttachResponseDecoder::wrap_body(&body, 54, 1).unwrap();
    assert_attach_response(&d, &v);
}

#[test]
fn detach_request_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(ShmDetachRequest, detach_request(), detach_request_bytes());
    let d = ShmDetachRequestDecoder::wrap(&got).unwrap();
    assert_eq!(d.correlation_id(), 0x0A0B_0C0D_0E0F_1011);
    assert_eq!(d.lease_id(), 0xF1F2_F3F4_F5F6_F7F8);
    assert_eq!(d.stream_id(), 0x2711);
    assert_eq!(d.client_id(), 0x0305);
    assert_eq!(d.role(), Role::Producer);
}

#[test]
fn detach_response_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(
        ShmDetachResponse,
        detach_response(),
        detach_response_bytes()
    );
    let d = ShmDetachResponseDecoder::wrap(&got).unwrap();
    assert_eq!(d.code(), ResponseCode::InvalidParams);
    assert_eq!(d.error_message(), b"unknown lease");
}

#[test]
fn lease_keepalive_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(ShmLeaseKeepalive, keepalive(), keepalive_bytes());
    let d = ShmLeaseKeepaliveDecoder::wrap(&got).unwrap();
    assert_eq!(d.lease_id(), 0x8000_0000_0000_0001);
    assert_eq!(d.client_timestamp_ns(), 0x1718_1920_2122_2324);
}

#[test]
fn driver_shutdown_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(
        ShmDriverShutdown,
        driver_shutdown(),
        driver_shutdown_bytes()
    );
    let d = ShmDriverShutdownDecoder::wrap(&got).unwrap();
    assert_eq!(d.timestamp_ns(), 0x0123_4567_89AB_CDEF);
    assert_eq!(d.reason(), ShutdownReason::Error);
    assert_eq!(d.error_message(), b"disk full");
}

#[test]
fn driver_shutdown_normal_with_empty_message() {
    let v = ShmDriverShutdown {
        timestamp_ns: 1,
        reason: ShutdownReason::Normal,
        error_message: b"",
    };
    let expected = B::new()
        .header(9, 6, SCHEMA, VERSION)
        .u64(1)
        .u8(0)
        .u32(0)
        .build();
    assert_round_trip!(ShmDriverShutdown, v, expected);
}

#[test]
fn lease_revoked_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(ShmLeaseRevoked, lease_revoked(), lease_revoked_bytes());
    let d = ShmLeaseRevokedDecoder::wrap(&got).unwrap();
    assert_eq!(d.lease_id(), 0x2122_2324_2526_2728);
    assert_eq!(d.role(), Role::Producer);
    assert_eq!(d.reason(), LeaseRevokeReason::Expired);
    assert_eq!(d.error_message(), b"keepalive missed");
}

#[test]
fn lease_revoked_reasons_round_trip() {
    for (reason, raw) in [
        (LeaseRevokeReason::Detached, 1u8),
        (LeaseRevokeReason::Expired, 2),
        (LeaseRevokeReason::Revoked, 3),
    ] {
        let v = ShmLeaseRevoked {
            reason,
            ..lease_revoked()
        };
        let got = encode_with(v.encoded_len(), |b| v.encode(b));
        assert_eq!(got[8 + 25], raw);
        assert_eq!(ShmLeaseRevoked::decode(&got), Ok(v));
    }
}

#[test]
fn shutdown_request_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(
        ShmDriverShutdownRequest,
        shutdown_request(),
        shutdown_request_bytes()
    );
    let d = ShmDriverShutdownRequestDecoder::wrap(&got).unwrap();
    assert_eq!(d.correlation_id(), 0x5152_5354_5556_5758);
    assert_eq!(d.reason(), ShutdownReason::Admin);
    assert_eq!(d.token(), b"s3cr3t-token");
    assert_eq!(d.error_message(), b"maintenance");
}

#[test]
fn decoding_tolerates_trailing_bytes_after_the_message() {
    let mut buf = shutdown_request_bytes();
    let len = buf.len();
    buf.extend_from_slice(&[0xEE; 13]);
    let d = ShmDriverShutdownRequestDecoder::wrap(&buf).unwrap();
    assert_eq!(d.encoded_body_len(), len - 8);
    assert_eq!(
        ShmDriverShutdownRequest::decode(&buf),
        Ok(shutdown_request())
    );
}

#[test]
fn any_message_dispatches_every_template() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (attach_request_bytes(), "ShmAttachRequest"),
        (attach_response_bytes(), "ShmAttachResponse"),
        (detach_request_bytes(), "ShmDetachRequest"),
        (detach_response_bytes(), "ShmDetachResponse"),
        (keepalive_bytes(), "ShmLeaseKeepalive"),
        (driver_shutdown_bytes(), "ShmDriverShutdown"),
        (lease_revoked_bytes(), "ShmLeaseRevoked"),
        (shutdown_request_bytes(), "ShmDriverShutdownRequest"),
    ];
    for (buf, name) in &cases {
        let m = AnyMessage::decode(buf).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.name(), *name);
    }
    match AnyMessage::decode(&attach_request_bytes()).unwrap() {
        AnyMessage::ShmAttachRequest(d) => assert_eq!(d.to_value(), attach_request()),
        other => panic!("wrong variant {other:?}"),
    }
    match AnyMessage::decode(&attach_response_bytes()).unwrap() {
        AnyMessage::ShmAttachResponse(d) => assert_attach_response(&d, &attach_response()),
        other => panic!("wrong variant {other:?}"),
    }
    match AnyMessage::decode(&lease_revoked_bytes()).unwrap() {
        AnyMessage::ShmLeaseRevoked(d) => assert_eq!(d.to_value(), lease_revoked()),
        other => panic!("wrong variant {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// 4. Enums
// ---------------------------------------------------------------------------------------

#[test]
fn enum_raw_values_match_the_schema() {
    for (e, raw) in [
        (HugepagesPolicy::Unspecified, 0u8),
        (HugepagesPolicy::Standard, 1),
        (HugepagesPolicy::Hugepages, 2),
    ] {
        assert_eq!(e.raw(), raw);
        assert_eq!(HugepagesPolicy::from_raw(raw), e);
        assert!(e.is_known());
    }
    for (e, raw) in [
        (ResponseCode::Ok, 0i32),
        (ResponseCode::Unsupported, 1),
        (ResponseCode::InvalidParams, 2),
        (ResponseCode::Rejected, 3),
        (ResponseCode::InternalError, 4),
    ] {
        assert_eq!(e.raw(), raw);
        assert_eq!(ResponseCode::from_raw(raw), e);
        assert!(e.is_known());
    }
    for (e, raw) in [(Role::Producer, 1u8), (Role::Consumer, 2)] {
        assert_eq!(e.raw(), raw);
        assert_eq!(Role::from_raw(raw), e);
    }
    for (e, raw) in [
        (PublishMode::RequireExisting, 1u8),
        (PublishMode::ExistingOrCreate, 2),
    ] {
        assert_eq!(e.raw(), raw);
        assert_eq!(PublishMode::from_raw(raw), e);
    }
    for (e, raw) in [
        (LeaseRevokeReason::Detached, 1u8),
        (LeaseRevokeReason::Expired, 2),
        (LeaseRevokeReason::Revoked, 3),
    ] {
        assert_eq!(e.raw(), raw);
        assert_eq!(LeaseRevokeReason::from_raw(raw), e);
    }
    for (e, raw) in [
        (ShutdownReason::Normal, 0u8),
        (ShutdownReason::Admin, 1),
        (ShutdownReason::Error, 2),
    ] {
        assert_eq!(e.raw(), raw);
        assert_eq!(ShutdownReason::from_raw(raw), e);
    }
    // Gaps and out-of-range values are unrecognized.
    assert_eq!(Role::from_raw(0), Role::Unrecognized(0));
    assert!(!Role::from_raw(3).is_known());
    assert_eq!(ResponseCode::from_raw(-1), ResponseCode::Unrecognized(-1));
    assert_eq!(ResponseCode::Unrecognized(5).raw(), 5);
}

#[test]
fn unknown_enum_values_decode_as_unrecognized_and_reencode_unchanged() {
    // ShmAttachRequest with role 0x7E, publishMode 9, requireHugepages 200.
    let wire = B::new()
        .header(27, 1, SCHEMA, VERSION)
        .i64(5)
        .u32(6)
        .u32(7)
        .u8(0x7E)
        .u32(1)
        .u8(9)
        .u8(200)
        .u32(4)
        .build();
    let v = ShmAttachRequest::decode(&wire).unwrap();
    assert_eq!(v.role, Role::Unrecognized(0x7E));
    assert_eq!(v.publish_mode, Some(PublishMode::Unrecognized(9)));
    assert_eq!(v.require_hugepages, HugepagesPolicy::Unrecognized(200));
    assert_encodes!(v, wire);

    // ResponseCode (int32) with a negative unknown value.
    let wire = B::new()
        .header(12, 4, SCHEMA, VERSION)
        .i64(1)
        .i32(-3)
        .var(b"?")
        .build();
    let v = ShmDetachResponse::decode(&wire).unwrap();
    assert_eq!(v.code, ResponseCode::Unrecognized(-3));
    assert_encodes!(v, wire);

    // LeaseRevokeReason 0 (not defined) and ShutdownReason 99.
    let wire = B::new()
        .header(26, 7, SCHEMA, VERSION)
        .u64(1)
        .u64(2)
        .u32(3)
        .u32(4)
        .u8(2)
        .u8(0)
        .var(b"")
        .build();
    let v = ShmLeaseRevoked::decode(&wire).unwrap();
    assert_eq!(v.reason, LeaseRevokeReason::Unrecognized(0));
    assert_encodes!(v, wire);

    let wire = B::new()
        .header(9, 6, SCHEMA, VERSION)
        .u64(1)
        .u8(99)
        .var(b"")
        .build();
    let v = ShmDriverShutdown::decode(&wire).unwrap();
    assert_eq!(v.reason, ShutdownReason::Unrecognized(99));
    assert_encodes!(v, wire);
}

// ---------------------------------------------------------------------------------------
// 5. Decode errors
// ---------------------------------------------------------------------------------------

#[test]
fn error_empty_buffer() {
    assert_eq!(
        err(AnyMessage::decode(&[])),
        DecodeError::Truncated {
            at: "message header",
            needed: 8,
            available: 0
        }
    );
    assert!(matches!(
        err(ShmAttachRequestDecoder::wrap(&[])),
        DecodeError::Truncated {
            needed: 8,
            available: 0,
            ..
        }
    ));
    assert!(matches!(
        err(ShmAttachResponseDecoder::wrap(&[])),
        DecodeError::Truncated {
            needed: 8,
            available: 0,
            ..
        }
    ));
}

#[test]
fn error_truncated_header() {
    assert_header_cuts_truncated(
        &attach_request_bytes(),
        |b| err(ShmAttachRequestDecoder::wrap(b)),
        |b| err(AnyMessage::decode(b)),
    );
}

#[test]
fn error_truncated_fixed_block() {
    let full = attach_request_bytes();
    let cuts = 8..full.len();
    assert_cuts_truncated(&full, cuts.clone(), "block", |b| {
        err(ShmAttachRequestDecoder::wrap(b))
    });
    assert_cuts_truncated(&full, cuts, "block", |b| err(AnyMessage::decode(b)));
    let full = attach_response_bytes();
    assert_cuts_truncated(&full, 8..8 + 54, "block", |b| {
        err(ShmAttachResponseDecoder::wrap(b))
    });
}

#[test]
fn error_truncated_group_header() {
    let full = attach_response_bytes();
    assert_cuts_truncated(&full, 8 + 54..8 + 54 + 4, "payloadPools", |b| {
        err(ShmAttachResponseDecoder::wrap(b))
    });
}

#[test]
fn error_truncated_group_entry() {
    let full = attach_response_bytes();
    let wrap = |b: &[u8]| err(ShmAttachResponseDecoder::wrap(b));
    let first_entry = 8 + 54 + 4;
    // Inside the first entry's fixed block.
    assert_cuts_truncated(&full, first_entry..first_entry + 10, "payloadPools", wrap);
    // Inside the first entry's regionUri (length prefix and bytes).
    let uri_len = POOLS[0].region_uri.len();
    let uri = first_entry + 10..first_entry + 10 + 4 + uri_len;
    assert_cuts_truncated(&full, uri, "payloadPools", wrap);
    // Anywhere in the second entry.
    let second = first_entry + 10 + 4 + uri_len;
    assert_cuts_truncated(&full, second..second + 14, "payloadPools", wrap);
    // numInGroup larger than the entries present (buffer ends after the second entry).
    let end_of_pools = second + 10 + 4 + POOLS[1].region_uri.len();
    let mut more = full[..end_of_pools].to_vec();
    wr_u16(&mut more, 8 + 54 + 2, 3);
    assert_truncated(wrap(&more), "payloadPools");
}

#[test]
fn error_truncated_trailing_var_data() {
    let full = shutdown_request_bytes();
    // Every cut inside token or errorMessage (prefix or bytes) is a truncation.
    for n in 8 + 9..full.len() {
        let e = err(ShmDriverShutdownRequestDecoder::wrap(&full[..n]));
        match e {
            DecodeError::Truncated { at, .. } => assert!(
                at.contains("token") || at.contains("errorMessage"),
                "cut at {n}: {at}"
            ),
            other => panic!("cut at {n}: {other:?}"),
        }
    }
    let full = attach_response_bytes();
    assert_cuts_truncated(&full, full.len() - 4..full.len(), "errorMessage", |b| {
        err(ShmAttachResponseDecoder::wrap(b))
    });
}

#[test]
fn error_var_data_length_beyond_buffer() {
    let mut buf = detach_response_bytes();
    // errorMessage length prefix at 8 + 12; claim 1000 bytes.
    wr_u32(&mut buf, 8 + 12, 1000);
    assert_truncated(err(ShmDetachResponseDecoder::wrap(&buf)), "errorMessage");
    assert_truncated(err(ShmDetachResponse::decode(&buf)), "errorMessage");
    // In a group entry.
    let mut buf = attach_response_bytes();
    wr_u32(&mut buf, 8 + 54 + 4 + 10, 0x00FF_FFFF);
    assert_truncated(err(ShmAttachResponseDecoder::wrap(&buf)), "regionUri");
    // Exactly the schema maximum but not present: still truncated, not too long.
    let mut buf = detach_response_bytes();
    wr_u32(&mut buf, 8 + 12, VAR_MAX);
    assert_truncated(err(ShmDetachResponseDecoder::wrap(&buf)), "errorMessage");
}

#[test]
fn error_var_data_length_above_schema_max() {
    let mut buf = detach_response_bytes();
    wr_u32(&mut buf, 8 + 12, VAR_MAX + 1);
    assert!(matches!(
        err(ShmDetachResponseDecoder::wrap(&buf)),
        DecodeError::VarDataTooLong { field, length, max }
            if field.contains("errorMessage") && length == VAR_MAX + 1 && max == VAR_MAX
    ));
    wr_u32(&mut buf, 8 + 12, u32::MAX);
    assert!(matches!(
        err(AnyMessage::decode(&buf)),
        DecodeError::VarDataTooLong {
            length: u32::MAX,
            max: VAR_MAX,
            ..
        }
    ));
    // In a group entry.
    let mut buf = attach_response_bytes();
    wr_u32(&mut buf, 8 + 54 + 4 + 10, VAR_MAX + 1);
    assert!(matches!(
        err(ShmAttachResponseDecoder::wrap(&buf)),
        DecodeError::VarDataTooLong { field, max: VAR_MAX, .. } if field.contains("regionUri")
    ));
}

#[test]
fn error_wrong_schema_id() {
    let mut buf = attach_request_bytes();
    wr_u16(&mut buf, 4, 900);
    let expected = DecodeError::SchemaMismatch {
        expected: 901,
        actual: 900,
    };
    assert_eq!(err(ShmAttachRequestDecoder::wrap(&buf)), expected);
    assert_eq!(err(ShmAttachRequest::decode(&buf)), expected);
    assert_eq!(err(AnyMessage::decode(&buf)), expected);
    // A template id unknown to this schema but a foreign schema id: the schema wins.
    wr_u16(&mut buf, 2, 99);
    assert_eq!(err(AnyMessage::decode(&buf)), expected);
}

#[test]
fn error_wrong_template_for_specific_decoder() {
    let buf = detach_request_bytes();
    assert_eq!(
        err(ShmAttachRequestDecoder::wrap(&buf)),
        DecodeError::TemplateMismatch {
            expected: 1,
            actual: 3
        }
    );
    assert_eq!(
        err(ShmAttachResponseDecoder::wrap(&buf)),
        DecodeError::TemplateMismatch {
            expected: 2,
            actual: 3
        }
    );
    assert_eq!(
        err(ShmDriverShutdownRequestDecoder::wrap(&keepalive_bytes())),
        DecodeError::TemplateMismatch {
            expected: 8,
            actual: 5
        }
    );
}

#[test]
fn error_unknown_template_via_any_message() {
    assert_unknown_templates(&detach_request_bytes(), 901, &[0, 9, 50, 0xFFFF], |b| {
        err(AnyMessage::decode(b))
    });
}

#[test]
fn error_newer_schema_version() {
    let mut buf = keepalive_bytes();
    wr_u16(&mut buf, 6, 2);
    let expected = DecodeError::UnsupportedVersion {
        supported: 1,
        actual: 2,
    };
    assert_eq!(err(ShmLeaseKeepaliveDecoder::wrap(&buf)), expected);
    assert_eq!(err(AnyMessage::decode(&buf)), expected);
    wr_u16(&mut buf, 6, 0xFFFF);
    assert_eq!(
        err(AnyMessage::decode(&buf)),
        DecodeError::UnsupportedVersion {
            supported: 1,
            actual: 0xFFFF
        }
    );
    // Also for an unknown template of this schema.
    wr_u16(&mut buf, 2, 42);
    assert!(matches!(
        err(AnyMessage::decode(&buf)),
        DecodeError::UnsupportedVersion { .. }
    ));
}

#[test]
fn error_block_length_too_short() {
    let mut buf = attach_request_bytes();
    wr_u16(&mut buf, 0, 26);
    assert_eq!(
        err(ShmAttachRequestDecoder::wrap(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 27,
            actual: 26
        }
    );
    wr_u16(&mut buf, 0, 0);
    assert_eq!(
        err(AnyMessage::decode(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 27,
            actual: 0
        }
    );
    let mut buf = attach_response_bytes();
    wr_u16(&mut buf, 0, 53);
    assert_eq!(
        err(ShmAttachResponseDecoder::wrap(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 54,
            actual: 53
        }
    );
    // wrap_body with a too-short block length.
    let body = &attach_request_bytes()[8..];
    assert_eq!(
        err(ShmAttachRequestDecoder::wrap_body(body, 20, 1)),
        DecodeError::BlockLengthTooShort {
            minimum: 27,
            actual: 20
        }
    );
}

#[test]
fn error_group_entry_block_length_too_short() {
    let mut buf = attach_response_bytes();
    wr_u16(&mut buf, 8 + 54, 9);
    assert_eq!(
        err(ShmAttachResponseDecoder::wrap(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 10,
            actual: 9
        }
    );
    wr_u16(&mut buf, 8 + 54, 0);
    assert_eq!(
        err(AnyMessage::decode(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 10,
            actual: 0
        }
    );
}

// ---------------------------------------------------------------------------------------
// Forward compatibility: larger block lengths are skipped
// ---------------------------------------------------------------------------------------

#[test]
fn larger_message_block_length_is_skipped() {
    // ShmAttachRequest from a sender whose block has 5 extra trailing bytes.
    let wire = B::new()
        .header(27 + 5, 1, SCHEMA, VERSION)
        .i64(-0x0102_0304_0506_0708)
        .u32(0x1000_0001)
        .u32(0x00C0_FFEE)
        .u8(2)
        .u32(3)
        .u8(2)
        .u8(2)
        .u32(0xDEAD)
        .fill(5, 0xEE)
        .build();
    let d = ShmAttachRequestDecoder::wrap(&wire).unwrap();
    assert_eq!(d.block_length(), 32);
    assert_eq!(d.encoded_body_len(), 32);
    assert_eq!(d.to_value(), attach_request());
    assert_eq!(ShmAttachRequest::decode(&wire), Ok(attach_request()));

    // Var data after an extended block.
    let wire = B::new()
        .header(9 + 7, 8, SCHEMA, VERSION)
        .i64(0x5152_5354_5556_5758)
        .u8(1)
        .fill(7, 0x99)
        .var(b"s3cr3t-token")
        .var(b"maintenance")
        .build();
    assert_eq!(
        ShmDriverShutdownRequest::decode(&wire),
        Ok(shutdown_request())
    );
    assert_eq!(
        AnyMessage::decode(&wire).unwrap().name(),
        "ShmDriverShutdownRequest"
    );
}

#[test]
fn larger_group_entry_block_length_is_skipped() {
    // Message block +3 bytes and each payloadPools entry +6 bytes.
    let v = attach_response();
    let mut b = B::new()
        .header(54 + 3, 2, SCHEMA, VERSION)
        .i64(0x7172_7374_7576_7778)
        .i32(0)
        .u64(0x1122_3344_5566_7788)
        .u64(0x0102_0304_0506_0709)
        .u32(0x4E21)
        .u64(0x42)
        .u32(1)
        .u32(1024)
        .u16(256)
        .u32(9)
        .fill(3, 0xEE)
        .group(10 + 6, 2);
    for p in &POOLS {
        b = b
            .u16(p.pool_id)
            .u32(p.pool_nslots)
            .u32(p.stride_bytes)
            .fill(6, 0xDD)
            .var(p.region_uri);
    }
    let wire = b
        .var(b"shm:file?path=/dev/shm/tp/7/header.ring")
        .var(b"")
        .build();
    let d = ShmAttachResponseDecoder::wrap(&wire).unwrap();
    assert_eq!(d.encoded_body_len(), wire.len() - 8);
    assert_attach_response(&d, &v);
}

// ---------------------------------------------------------------------------------------
// EncodeError
// ---------------------------------------------------------------------------------------

#[test]
fn encode_buffer_too_small_for_every_message() {
    let v = attach_request();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    assert_too_small_everywhere(v.encoded_body_len(), |b| v.encode_body(b));
    let v = attach_response();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    assert_too_small_everywhere(v.encoded_body_len(), |b| v.encode_body(b));
    let v = detach_request();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = detach_response();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = keepalive();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = driver_shutdown();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = lease_revoked();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = shutdown_request();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    assert_too_small_everywhere(v.encoded_body_len(), |b| v.encode_body(b));
}

#[test]
fn encoded_lengths_match_hand_computed_sizes() {
    assert_eq!(attach_request().encoded_len(), 8 + 27);
    assert_eq!(
        attach_response().encoded_len(),
        8 + 54
            + 4
            + 2 * (10 + 4)
            + POOLS[0].region_uri.len()
            + POOLS[1].region_uri.len()
            + 4
            + 39
            + 4
    );
    assert_eq!(detach_request().encoded_len(), 8 + 25);
    assert_eq!(detach_response().encoded_len(), 8 + 12 + 4 + 13);
    assert_eq!(keepalive().encoded_len(), 8 + 25);
    assert_eq!(driver_shutdown().encoded_len(), 8 + 9 + 4 + 9);
    assert_eq!(lease_revoked().encoded_len(), 8 + 26 + 4 + 16);
    assert_eq!(shutdown_request().encoded_len(), 8 + 9 + 4 + 12 + 4 + 11);
}

#[test]
fn encode_group_too_large() {
    let entry = ShmAttachResponsePayloadPools {
        pool_id: 1,
        pool_nslots: 2,
        stride_bytes: 3,
        region_uri: b"",
    };
    let many = vec![entry; 65_536];
    let v = ShmAttachResponse {
        payload_pools: &many,
        ..attach_response()
    };
    let mut buf = vec![0u8; v.encoded_len()];
    assert!(matches!(
        v.encode(&mut buf),
        Err(EncodeError::GroupTooLarge { count: 65_536, .. })
    ));
    // 65535 entries is the maximum and encodes.
    let v = ShmAttachResponse {
        payload_pools: &many[..65_535],
        ..attach_response()
    };
    let mut buf = vec![0u8; v.encoded_len()];
    assert_eq!(v.encode(&mut buf), Ok(buf.len()));
    let d = ShmAttachResponseDecoder::wrap(&buf).unwrap();
    assert_eq!(d.payload_pools().len(), 65_535);
    assert_eq!(d.payload_pools().last().map(|p| p.stride_bytes()), Some(3));
}
