//! `tp decode` round-trips every message of schemas 900 and 901: each is encoded with the
//! generated codecs and decoded by the tool, whose field table comes from the schema XML;
//! every field must come back with its name and value. Malformed input names the byte.

use std::process::Command;

use serde_json::{json, Value};
use tensorpool::protocol::control::{
    self, Bool, ClockDomain, ConsumerConfig, ConsumerHello, ControlResponse, DataSourceAnnounce,
    DataSourceMeta, DataSourceMetaAttributes, Dtype, FrameDescriptor, FrameProgress,
    FrameProgressState, MajorOrder, Mode, ProgressUnit, QosConsumer, QosProducer, RegionType,
    ShmPoolAnnounce, ShmPoolAnnouncePayloadPools, ShmRegionSuperblock, SlotHeader, TensorHeader,
};
use tensorpool::protocol::driver::{
    HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmAttachResponse, ShmAttachResponsePayloadPools, ShmDetachRequest, ShmDetachResponse,
    ShmDriverShutdown, ShmDriverShutdownRequest, ShmLeaseKeepalive, ShmLeaseRevoked,
    ShutdownReason,
};
use tensorpool::tool::decode::decode_message;
use tensorpool::tool::schema::wire_schemas;

/// Encodes with `encode`, decodes with the tool, and compares the fields with `expected`.
fn round_trip(name: &str, encode: impl FnOnce(&mut [u8]) -> usize, expected: Value) -> Vec<u8> {
    let mut buf = vec![0u8; 4096];
    let len = encode(&mut buf);
    buf.truncate(len);
    let schemas = wire_schemas().expect("the wire schemas parse");
    let decoded = decode_message(&schemas, &buf).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(decoded.name, name);
    assert_eq!(decoded.length, len, "{name} consumed every byte");
    assert_eq!(decoded.trailing, 0);
    assert!(
        decoded.warnings.is_empty(),
        "{name}: {:?}",
        decoded.warnings
    );
    assert_eq!(decoded.body, expected, "{name}");
    buf
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_driver_message_round_trips() {
    round_trip(
        "ShmAttachRequest",
        |b| {
            ShmAttachRequest {
                correlation_id: -5,
                stream_id: 10_000,
                client_id: 7,
                role: Role::Producer,
                expected_layout_version: 1,
                publish_mode: Some(PublishMode::ExistingOrCreate),
                require_hugepages: HugepagesPolicy::Standard,
                desired_node_id: None,
            }
            .encode(b)
            .unwrap()
        },
        json!({"correlationId": -5, "streamId": 10000, "clientId": 7, "role": "PRODUCER",
               "expectedLayoutVersion": 1, "publishMode": "EXISTING_OR_CREATE",
               "requireHugepages": "STANDARD", "desiredNodeId": null}),
    );
    let pools = [
        ShmAttachResponsePayloadPools {
            pool_id: 1,
            pool_nslots: 8,
            stride_bytes: 4096,
            region_uri: b"shm:file?path=/dev/shm/a/1.pool",
        },
        ShmAttachResponsePayloadPools {
            pool_id: 2,
            pool_nslots: 8,
            stride_bytes: 65536,
            region_uri: b"shm:file?path=/dev/shm/a/2.pool",
        },
    ];
    round_trip(
        "ShmAttachResponse",
        |b| {
            ShmAttachResponse {
                correlation_id: 9,
                code: ResponseCode::Ok,
                lease_id: Some(77),
                lease_expiry_timestamp_ns: Some(123),
                stream_id: Some(10_000),
                epoch: Some(3),
                layout_version: Some(1),
                header_nslots: Some(8),
                header_slot_bytes: Some(256),
                node_id: None,
                payload_pools: &pools,
                header_region_uri: b"shm:file?path=/dev/shm/a/header.ring",
                error_message: b"",
            }
            .encode(b)
            .unwrap()
        },
        json!({"correlationId": 9, "code": "OK", "leaseId": 77, "leaseExpiryTimestampNs": 123,
               "streamId": 10000, "epoch": 3, "layoutVersion": 1, "headerNslots": 8,
               "headerSlotBytes": 256, "nodeId": null,
               "payloadPools": [
                   {"poolId": 1, "poolNslots": 8, "strideBytes": 4096,
                    "regionUri": "shm:file?path=/dev/shm/a/1.pool"},
                   {"poolId": 2, "poolNslots": 8, "strideBytes": 65536,
                    "regionUri": "shm:file?path=/dev/shm/a/2.pool"}],
               "headerRegionUri": "shm:file?path=/dev/shm/a/header.ring",
               "errorMessage": ""}),
    );
    round_trip(
        "ShmDetachRequest",
        |b| {
            ShmDetachRequest {
                correlation_id: 1,
                lease_id: 2,
                stream_id: 3,
                client_id: 4,
                role: Role::Consumer,
            }
            .encode(b)
            .unwrap()
        },
        json!({"correlationId": 1, "leaseId": 2, "streamId": 3, "clientId": 4, "role": "CONSUMER"}),
    );
    round_trip(
        "ShmDetachResponse",
        |b| {
            ShmDetachResponse {
                correlation_id: 1,
                code: ResponseCode::Rejected,
                error_message: b"unknown lease",
            }
            .encode(b)
            .unwrap()
        },
        json!({"correlationId": 1, "code": "REJECTED", "errorMessage": "unknown lease"}),
    );
    round_trip(
        "ShmLeaseKeepalive",
        |b| {
            ShmLeaseKeepalive {
                lease_id: 5,
                stream_id: 6,
                client_id: 7,
                role: Role::Producer,
                client_timestamp_ns: u64::MAX - 1,
            }
            .encode(b)
            .unwrap()
        },
        json!({"leaseId": 5, "streamId": 6, "clientId": 7, "role": "PRODUCER",
               "clientTimestampNs": u64::MAX - 1}),
    );
    round_trip(
        "ShmDriverShutdown",
        |b| {
            ShmDriverShutdown {
                timestamp_ns: 10,
                reason: ShutdownReason::Admin,
                error_message: b"bye",
            }
            .encode(b)
            .unwrap()
        },
        json!({"timestampNs": 10, "reason": "ADMIN", "errorMessage": "bye"}),
    );
    round_trip(
        "ShmLeaseRevoked",
        |b| {
            ShmLeaseRevoked {
                timestamp_ns: 11,
                lease_id: 12,
                stream_id: 13,
                client_id: 14,
                role: Role::Consumer,
                reason: LeaseRevokeReason::Expired,
                error_message: b"",
            }
            .encode(b)
            .unwrap()
        },
        json!({"timestampNs": 11, "leaseId": 12, "streamId": 13, "clientId": 14,
               "role": "CONSUMER", "reason": "EXPIRED", "errorMessage": ""}),
    );
    round_trip(
        "ShmDriverShutdownRequest",
        |b| {
            ShmDriverShutdownRequest {
                correlation_id: 15,
                reason: ShutdownReason::Normal,
                token: b"tok",
                error_message: b"maintenance",
            }
            .encode(b)
            .unwrap()
        },
        json!({"correlationId": 15, "reason": "NORMAL", "token": "tok",
               "errorMessage": "maintenance"}),
    );
}

#[test]
fn every_control_message_round_trips() {
    let pools = [ShmPoolAnnouncePayloadPools {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 4096,
        region_uri: b"shm:file?path=/p/1.pool",
    }];
    round_trip(
        "ShmPoolAnnounce",
        |b| {
            ShmPoolAnnounce {
                stream_id: 10_000,
                producer_id: 7,
                epoch: 2,
                announce_timestamp_ns: 99,
                announce_clock_domain: ClockDomain::Monotonic,
                layout_version: 1,
                header_nslots: 8,
                header_slot_bytes: 256,
                payload_pools: &pools,
                header_region_uri: b"shm:file?path=/p/header.ring",
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 10000, "producerId": 7, "epoch": 2, "announceTimestampNs": 99,
               "announceClockDomain": "MONOTONIC", "layoutVersion": 1, "headerNslots": 8,
               "headerSlotBytes": 256,
               "payloadPools": [{"poolId": 1, "poolNslots": 8, "strideBytes": 4096,
                                 "regionUri": "shm:file?path=/p/1.pool"}],
               "headerRegionUri": "shm:file?path=/p/header.ring"}),
    );
    round_trip(
        "ConsumerHello",
        |b| {
            ConsumerHello {
                stream_id: 1,
                consumer_id: 2,
                supports_shm: Bool::True,
                supports_progress: Bool::False,
                mode: Mode::RateLimited,
                max_rate_hz: 30,
                expected_layout_version: 1,
                progress_interval_us: None,
                progress_bytes_delta: Some(4096),
                progress_major_delta_units: None,
                descriptor_stream_id: 31_000,
                control_stream_id: 0,
                descriptor_channel: b"aeron:ipc",
                control_channel: b"",
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "consumerId": 2, "supportsShm": "TRUE", "supportsProgress": "FALSE",
               "mode": "RATE_LIMITED", "maxRateHz": 30, "expectedLayoutVersion": 1,
               "progressIntervalUs": null, "progressBytesDelta": 4096,
               "progressMajorDeltaUnits": null, "descriptorStreamId": 31000,
               "controlStreamId": 0, "descriptorChannel": "aeron:ipc", "controlChannel": ""}),
    );
    round_trip(
        "ConsumerConfig",
        |b| {
            ConsumerConfig {
                stream_id: 1,
                consumer_id: 2,
                use_shm: Bool::True,
                mode: Mode::Stream,
                descriptor_stream_id: 31_000,
                control_stream_id: 32_000,
                payload_fallback_uri: b"",
                descriptor_channel: b"aeron:ipc",
                control_channel: b"aeron:ipc",
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "consumerId": 2, "useShm": "TRUE", "mode": "STREAM",
               "descriptorStreamId": 31000, "controlStreamId": 32000, "payloadFallbackUri": "",
               "descriptorChannel": "aeron:ipc", "controlChannel": "aeron:ipc"}),
    );
    round_trip(
        "FrameDescriptor",
        |b| {
            FrameDescriptor {
                stream_id: 1,
                epoch: 2,
                seq: 3,
                timestamp_ns: Some(4),
                meta_version: None,
                trace_id: None,
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "epoch": 2, "seq": 3, "timestampNs": 4, "metaVersion": null,
               "traceId": null}),
    );
    round_trip(
        "FrameProgress",
        |b| {
            FrameProgress {
                stream_id: 1,
                epoch: 2,
                seq: 3,
                payload_bytes_filled: 4,
                state: FrameProgressState::Complete,
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "epoch": 2, "seq": 3, "payloadBytesFilled": 4, "state": "COMPLETE"}),
    );
    round_trip(
        "QosConsumer",
        |b| {
            QosConsumer {
                stream_id: 1,
                consumer_id: 2,
                epoch: 3,
                last_seq_seen: 4,
                drops_gap: 5,
                drops_late: 6,
                mode: Mode::Stream,
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "consumerId": 2, "epoch": 3, "lastSeqSeen": 4, "dropsGap": 5,
               "dropsLate": 6, "mode": "STREAM"}),
    );
    round_trip(
        "QosProducer",
        |b| {
            QosProducer {
                stream_id: 1,
                producer_id: 2,
                epoch: 3,
                current_seq: 4,
                watermark: None,
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "producerId": 2, "epoch": 3, "currentSeq": 4, "watermark": null}),
    );
    round_trip(
        "ShmRegionSuperblock",
        |b| {
            ShmRegionSuperblock {
                magic: tensorpool::shm::layout::MAGIC,
                layout_version: 1,
                epoch: 2,
                stream_id: 3,
                region_type: RegionType::PayloadPool,
                pool_id: 4,
                nslots: 8,
                slot_bytes: 4096,
                stride_bytes: 4096,
                pid: 42,
                start_timestamp_ns: 5,
                activity_timestamp_ns: 6,
            }
            .encode(b)
            .unwrap()
        },
        json!({"magic": tensorpool::shm::layout::MAGIC, "layoutVersion": 1, "epoch": 2,
               "streamId": 3, "regionType": "PAYLOAD_POOL", "poolId": 4, "nslots": 8,
               "slotBytes": 4096, "strideBytes": 4096, "pid": 42, "startTimestampNs": 5,
               "activityTimestampNs": 6}),
    );
    let tensor = TensorHeader {
        dtype: Dtype::Float32,
        major_order: MajorOrder::Row,
        ndims: 2,
        pad_align: 0,
        progress_unit: ProgressUnit::None,
        progress_stride_bytes: 0,
        dims: [480, 640, 0, 0, 0, 0, 0, 0],
        strides: [2560, 4, 0, 0, 0, 0, 0, 0],
        pad: [0; 109],
    };
    let tensor_bytes = round_trip(
        "TensorHeader",
        |b| tensor.encode(b).unwrap(),
        json!({"dtype": "FLOAT32", "majorOrder": "ROW", "ndims": 2, "maxDims": 8, "padAlign": 0,
               "progressUnit": "NONE", "progressStrideBytes": 0,
               "dims": [480, 640, 0, 0, 0, 0, 0, 0], "strides": [2560, 4, 0, 0, 0, 0, 0, 0],
               "pad": "00".repeat(109)}),
    );
    round_trip(
        "SlotHeader",
        |b| {
            SlotHeader {
                seq_commit: 7,
                values_len_bytes: 1_228_800,
                payload_slot: 3,
                pool_id: 1,
                payload_offset: 0,
                timestamp_ns: 8,
                meta_version: 9,
                pad: [0xab; 26],
                header_bytes: &tensor_bytes,
            }
            .encode(b)
            .unwrap()
        },
        json!({"seqCommit": 7, "valuesLenBytes": 1228800, "payloadSlot": 3, "poolId": 1,
               "payloadOffset": 0, "timestampNs": 8, "metaVersion": 9, "pad": "ab".repeat(26),
               "headerBytes": hex(&tensor_bytes)}),
    );
    round_trip(
        "DataSourceAnnounce",
        |b| {
            DataSourceAnnounce {
                stream_id: 1,
                producer_id: 2,
                epoch: 3,
                meta_version: 4,
                name: b"camera",
                summary: b"front",
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "producerId": 2, "epoch": 3, "metaVersion": 4, "name": "camera",
               "summary": "front"}),
    );
    let attributes = [DataSourceMetaAttributes {
        key: b"gain",
        format: b"f32",
        value: &[1, 2, 0xff],
    }];
    round_trip(
        "DataSourceMeta",
        |b| {
            DataSourceMeta {
                stream_id: 1,
                meta_version: 2,
                timestamp_ns: 3,
                attributes: &attributes,
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 1, "metaVersion": 2, "timestampNs": 3,
               "attributes": [{"key": "gain", "format": "f32", "value": "0102ff"}]}),
    );
    round_trip(
        "ControlResponse",
        |b| {
            ControlResponse {
                correlation_id: 1,
                code: control::ResponseCode::InvalidParams,
                error_message: b"why",
            }
            .encode(b)
            .unwrap()
        },
        json!({"correlationId": 1, "code": "INVALID_PARAMS", "errorMessage": "why"}),
    );
}

#[test]
fn the_bridge_chunk_round_trips() {
    use tensorpool::protocol::bridge::{Bool, BridgeFrameChunk};
    let header = [7u8; 256];
    round_trip(
        "BridgeFrameChunk",
        |b| {
            BridgeFrameChunk {
                stream_id: 10000,
                epoch: 2,
                seq: 3,
                trace_id: Some(4),
                chunk_index: 0,
                chunk_count: 2,
                chunk_offset: 0,
                chunk_length: 3,
                payload_length: 6,
                payload_crc32c: 0,
                header_included: Bool::True,
                header_bytes: &header,
                payload_bytes: &[1, 2, 3],
            }
            .encode(b)
            .unwrap()
        },
        json!({"streamId": 10000, "epoch": 2, "seq": 3, "traceId": 4, "chunkIndex": 0,
               "chunkCount": 2, "chunkOffset": 0, "chunkLength": 3, "payloadLength": 6,
               "payloadCrc32c": 0, "headerIncluded": "TRUE",
               "headerBytes": "07".repeat(256), "payloadBytes": "010203"}),
    );
}

/// Runs the `tp` binary.
fn tp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tp"))
        .args(args)
        .output()
        .expect("running tp");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_binary_decodes_hex_names_fields_and_reports_bad_bytes() {
    let mut buf = [0u8; 64];
    let len = ShmLeaseKeepalive {
        lease_id: 5,
        stream_id: 10_000,
        client_id: 7,
        role: Role::Consumer,
        client_timestamp_ns: 1,
    }
    .encode(&mut buf)
    .unwrap();
    let (code, out, err) = tp(&["decode", &hex(&buf[..len])]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("ShmLeaseKeepalive (schema 901, template 5"),
        "{out}"
    );
    assert!(
        out.contains("@24   role") && out.contains("\"CONSUMER\""),
        "{out}"
    );

    let (code, out, _) = tp(&["decode", "--json", &hex(&buf[..len])]);
    assert_eq!(code, 0);
    let parsed: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(parsed["fields"]["streamId"], 10000);

    // An unknown role: decoded, flagged, exit 1.
    let mut bad = buf[..len].to_vec();
    bad[8 + 16] = 9;
    let (code, out, _) = tp(&["decode", &hex(&bad)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("byte 24: role = 9 is not a value of enum Role"),
        "{out}"
    );

    // Truncated: exit 3 and the byte where the input ends.
    let (code, _, err) = tp(&["decode", &hex(&buf[..len - 3])]);
    assert_eq!(code, 3);
    assert!(
        err.contains(&format!(
            "byte {}: input ends inside the fixed block",
            len - 3
        )),
        "{err}"
    );
    // Not hex.
    let (code, _, err) = tp(&["decode", "08 00 zz"]);
    assert_eq!(code, 3);
    assert!(err.contains("character 'z' at position 6"), "{err}");
    // A var-data length past the end names the length's byte.
    let mut buf = [0u8; 64];
    let len = ShmDetachResponse {
        correlation_id: 1,
        code: ResponseCode::Rejected,
        error_message: b"abc",
    }
    .encode(&mut buf)
    .unwrap();
    let (code, _, err) = tp(&["decode", &hex(&buf[..len - 1])]);
    assert_eq!(code, 3);
    assert!(
        err.contains(&format!(
            "byte {}: var data errorMessage declares 3 bytes, but only 2 follow",
            len - 7
        )),
        "{err}"
    );
}
