//! Byte-exact tests of the generated tensor-pool control/data-plane codec (SBE schema 900,
//! Wire Spec v1.2 §7, §8, §10, §16).
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

use bytes::{assert_bytes, rd_u16, wr_u16, wr_u32, B, VAR_MAX};
use tensorpool::protocol::control::{
    tensor_header, AnyMessage, Bool, ClockDomain, ConsumerConfig, ConsumerConfigDecoder,
    ConsumerHello, ConsumerHelloDecoder, ControlResponse, ControlResponseDecoder,
    DataSourceAnnounce, DataSourceAnnounceDecoder, DataSourceMeta, DataSourceMetaAttributes,
    DataSourceMetaDecoder, Dtype, FrameDescriptor, FrameDescriptorDecoder, FrameProgress,
    FrameProgressDecoder, FrameProgressState, MajorOrder, Mode, ProgressUnit, QosConsumer,
    QosConsumerDecoder, QosProducer, QosProducerDecoder, RegionType, ResponseCode, ShmPoolAnnounce,
    ShmPoolAnnounceDecoder, ShmPoolAnnouncePayloadPools, ShmRegionSuperblock,
    ShmRegionSuperblockDecoder, SlotHeader, SlotHeaderDecoder, TensorHeader, TensorHeaderDecoder,
    SCHEMA_ID, SCHEMA_VERSION,
};
use tensorpool::protocol::{DecodeError, EncodeError};

/// Control schema id and version (Wire Spec §16: `id="900" version="1"`).
const SCHEMA: u16 = 900;
const VERSION: u16 = 1;

// ---------------------------------------------------------------------------------------
// Sample values and their hand-built encodings
// ---------------------------------------------------------------------------------------

const POOLS: [ShmPoolAnnouncePayloadPools<'static>; 2] = [
    ShmPoolAnnouncePayloadPools {
        pool_id: 1,
        pool_nslots: 1024,
        stride_bytes: 0x0010_0000,
        region_uri: b"shm:file?path=/dev/shm/tp/10001/5/1.pool",
    },
    ShmPoolAnnouncePayloadPools {
        pool_id: 0x0302,
        pool_nslots: 0x0004_0506,
        stride_bytes: 0x0100_0000,
        region_uri: b"shm:file?path=/dev/hugepages/tp/10001/5/2.pool|require_hugepages=true",
    },
];

const HEADER_URI: &[u8] = b"shm:file?path=/dev/shm/tp/10001/5/header.ring";

fn pool_announce() -> ShmPoolAnnounce<'static> {
    ShmPoolAnnounce {
        stream_id: 10001,
        producer_id: 0x0102_0304,
        epoch: 0x0A0B_0C0D_0E0F_1011,
        announce_timestamp_ns: 0x1718_1920_2122_2324,
        announce_clock_domain: ClockDomain::RealtimeSynced,
        layout_version: 0x0000_0001,
        header_nslots: 0x0000_0400,
        header_slot_bytes: 256,
        payload_pools: &POOLS,
        header_region_uri: HEADER_URI,
    }
}

fn pool_announce_bytes() -> Vec<u8> {
    let mut b = B::new()
        .header(35, 1, SCHEMA, VERSION)
        .u32(10001) // streamId
        .u32(0x0102_0304) // producerId
        .u64(0x0A0B_0C0D_0E0F_1011) // epoch
        .u64(0x1718_1920_2122_2324) // announceTimestampNs
        .u8(2) // announceClockDomain REALTIME_SYNCED
        .u32(1) // layoutVersion
        .u32(1024) // headerNslots
        .u16(256) // headerSlotBytes
        .group(10, 2);
    assert_eq!(b.len(), 8 + 35 + 4);
    b = b
        .u16(1)
        .u32(1024)
        .u32(0x0010_0000)
        .var(b"shm:file?path=/dev/shm/tp/10001/5/1.pool")
        .u16(0x0302)
        .u32(0x0004_0506)
        .u32(0x0100_0000)
        .var(b"shm:file?path=/dev/hugepages/tp/10001/5/2.pool|require_hugepages=true");
    b.var(HEADER_URI).build()
}

#[track_caller]
fn assert_pool_announce(d: &ShmPoolAnnounceDecoder<'_>, v: &ShmPoolAnnounce<'_>) {
    assert_eq!(d.stream_id(), v.stream_id);
    assert_eq!(d.producer_id(), v.producer_id);
    assert_eq!(d.epoch(), v.epoch);
    assert_eq!(d.announce_timestamp_ns(), v.announce_timestamp_ns);
    assert_eq!(d.announce_clock_domain(), v.announce_clock_domain);
    assert_eq!(d.layout_version(), v.layout_version);
    assert_eq!(d.header_nslots(), v.header_nslots);
    assert_eq!(d.header_slot_bytes(), v.header_slot_bytes);
    assert_payload_pools!(d.payload_pools(), v.payload_pools);
    assert_eq!(d.header_region_uri(), v.header_region_uri);
}

fn consumer_hello() -> ConsumerHello<'static> {
    ConsumerHello {
        stream_id: 10001,
        consumer_id: 0x0000_0B0B,
        supports_shm: Bool::True,
        supports_progress: Bool::False,
        mode: Mode::RateLimited,
        max_rate_hz: 60,
        expected_layout_version: 1,
        progress_interval_us: Some(250),
        progress_bytes_delta: Some(0x0001_0000),
        progress_major_delta_units: Some(8),
        descriptor_stream_id: 0x0001_1111,
        control_stream_id: 0x0002_2222,
        descriptor_channel: b"aeron:ipc?term-length=1m",
        control_channel: b"aeron:udp?endpoint=127.0.0.1:40123",
    }
}

fn consumer_hello_bytes() -> Vec<u8> {
    B::new()
        .header(39, 2, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0B0B)
        .u8(1) // supportsShm TRUE
        .u8(0) // supportsProgress FALSE
        .u8(2) // mode RATE_LIMITED
        .u32(60)
        .u32(1)
        .u32(250)
        .u32(0x0001_0000)
        .u32(8)
        .u32(0x0001_1111)
        .u32(0x0002_2222)
        .var(b"aeron:ipc?term-length=1m")
        .var(b"aeron:udp?endpoint=127.0.0.1:40123")
        .build()
}

fn consumer_config() -> ConsumerConfig<'static> {
    ConsumerConfig {
        stream_id: 10001,
        consumer_id: 0x0000_0C0C,
        use_shm: Bool::True,
        mode: Mode::Stream,
        descriptor_stream_id: 0x0003_0303,
        control_stream_id: 0x0004_0404,
        payload_fallback_uri: b"bridge://10.0.0.2:9000",
        descriptor_channel: b"aeron:ipc",
        control_channel: b"",
    }
}

fn consumer_config_bytes() -> Vec<u8> {
    B::new()
        .header(18, 3, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0C0C)
        .u8(1) // useShm TRUE
        .u8(1) // mode STREAM
        .u32(0x0003_0303)
        .u32(0x0004_0404)
        .var(b"bridge://10.0.0.2:9000")
        .var(b"aeron:ipc")
        .var(b"")
        .build()
}

fn frame_descriptor() -> FrameDescriptor {
    FrameDescriptor {
        stream_id: 10001,
        epoch: 5,
        seq: 0x0000_0001_0000_0002,
        timestamp_ns: Some(0x1122_3344_5566_7788),
        meta_version: Some(0x0000_0007),
        trace_id: Some(0xABCD_EF01_2345_6789),
    }
}

fn frame_descriptor_bytes() -> Vec<u8> {
    B::new()
        .header(40, 4, SCHEMA, VERSION)
        .u32(10001)
        .u64(5)
        .u64(0x0000_0001_0000_0002)
        .u64(0x1122_3344_5566_7788)
        .u32(7)
        .u64(0xABCD_EF01_2345_6789)
        .build()
}

fn frame_progress() -> FrameProgress {
    FrameProgress {
        stream_id: 10001,
        epoch: 0x0000_0000_0000_0506,
        seq: 0x0102_0304_0506_0708,
        payload_bytes_filled: 0x0000_0000_0012_3456,
        state: FrameProgressState::Complete,
    }
}

fn frame_progress_bytes() -> Vec<u8> {
    B::new()
        .header(29, 11, SCHEMA, VERSION)
        .u32(10001)
        .u64(0x0506)
        .u64(0x0102_0304_0506_0708)
        .u64(0x0012_3456)
        .u8(3) // COMPLETE
        .build()
}

fn qos_consumer() -> QosConsumer {
    QosConsumer {
        stream_id: 10001,
        consumer_id: 0x0000_0D0D,
        epoch: 0x0000_0000_0000_0009,
        last_seq_seen: 0x0000_00FF_0000_00FE,
        drops_gap: 0x0000_0000_0000_1234,
        drops_late: 0x0000_0000_0000_5678,
        mode: Mode::RateLimited,
    }
}

fn qos_consumer_bytes() -> Vec<u8> {
    B::new()
        .header(41, 5, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0D0D)
        .u64(9)
        .u64(0x0000_00FF_0000_00FE)
        .u64(0x1234)
        .u64(0x5678)
        .u8(2)
        .build()
}

fn qos_producer() -> QosProducer {
    QosProducer {
        stream_id: 10001,
        producer_id: 0x0102_0304,
        epoch: 0x0000_0000_0000_0009,
        current_seq: 0x0000_0000_0001_0000,
        watermark: Some(0x0000_0010),
    }
}

fn qos_producer_bytes() -> Vec<u8> {
    B::new()
        .header(28, 6, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0102_0304)
        .u64(9)
        .u64(0x0001_0000)
        .u32(0x10)
        .build()
}

/// `TPOLSHM1` magic as the u64 given in Wire Spec §7.1.
const MAGIC: u64 = 0x544F_504C_5348_4D31;

fn superblock() -> ShmRegionSuperblock {
    ShmRegionSuperblock {
        magic: MAGIC,
        layout_version: 1,
        epoch: 0x0102_0304_0506_0708,
        stream_id: 10001,
        region_type: RegionType::PayloadPool,
        pool_id: 3,
        nslots: 0x0000_0400,
        slot_bytes: 0x0010_0000,
        stride_bytes: 0x0010_0000,
        pid: 0x0000_0000_0000_4D2F,
        start_timestamp_ns: 0x1111_2222_3333_4444,
        activity_timestamp_ns: 0x5555_6666_7777_8888,
    }
}

/// The 64-byte superblock body (no message header).
fn superblock_body_bytes() -> Vec<u8> {
    B::new()
        .u64(MAGIC)
        .u32(1) // layoutVersion
        .u64(0x0102_0304_0506_0708) // epoch (byte 12)
        .u32(10001) // streamId
        .i16(2) // regionType PAYLOAD_POOL
        .u16(3) // poolId
        .u32(0x0400) // nslots
        .u32(0x0010_0000) // slotBytes
        .u32(0x0010_0000) // strideBytes
        .u64(0x4D2F) // pid
        .u64(0x1111_2222_3333_4444) // startTimestampNs
        .u64(0x5555_6666_7777_8888) // activityTimestampNs
        .build()
}

const DIMS: [i32; 8] = [480, 640, 3, -1, 0x7FFF_FFFF, i32::MIN, 0x0102_0304, 7];
const STRIDES: [i32; 8] = [1920, 3, 1, 0, -2, 0x1122_3344, 9, i32::MAX];

fn tensor_pad() -> [u8; 109] {
    let mut pad = [0u8; 109];
    for (i, p) in pad.iter_mut().enumerate() {
        *p = (i as u8) ^ 0x3C;
    }
    pad
}

fn tensor() -> TensorHeader {
    TensorHeader {
        dtype: Dtype::Float32,
        major_order: MajorOrder::Row,
        ndims: 3,
        pad_align: 0x5A,
        progress_unit: ProgressUnit::Rows,
        progress_stride_bytes: 0x0000_1000,
        dims: DIMS,
        strides: STRIDES,
        pad: tensor_pad(),
    }
}

/// The 192-byte TensorHeader message (header + 184-byte block).
fn tensor_bytes() -> Vec<u8> {
    let mut b = B::new()
        .header(184, 52, SCHEMA, VERSION)
        .i16(9) // dtype FLOAT32
        .i16(1) // majorOrder ROW
        .u8(3) // ndims
        // maxDims is a constant: not encoded.
        .u8(0x5A) // padAlign
        .u8(1) // progressUnit ROWS
        .u32(0x1000); // progressStrideBytes
    assert_eq!(b.len(), 8 + 11, "dims start at body byte 11");
    for d in DIMS {
        b = b.i32(d);
    }
    assert_eq!(b.len(), 8 + 43, "strides start at body byte 43");
    for s in STRIDES {
        b = b.i32(s);
    }
    assert_eq!(b.len(), 8 + 75);
    b.bytes(&tensor_pad()).build()
}

fn slot_pad() -> [u8; 26] {
    let mut pad = [0u8; 26];
    for (i, p) in pad.iter_mut().enumerate() {
        *p = 0xC0 | i as u8;
    }
    pad
}

/// A SlotHeader with the given embedded header bytes.
fn slot_header(header_bytes: &[u8]) -> SlotHeader<'_> {
    SlotHeader {
        seq_commit: (0x0000_0001_0000_0002 << 1) | 1,
        values_len_bytes: 0x000E_1000,
        payload_slot: 0x0000_0102,
        pool_id: 0x0201,
        payload_offset: 0x0000_0044,
        timestamp_ns: 0x1A1B_1C1D_1E1F_2021,
        meta_version: 0x0000_0007,
        pad: slot_pad(),
        header_bytes,
    }
}

/// SlotHeader body (no message header) with the given embedded header bytes.
fn slot_header_body_bytes(header_bytes: &[u8]) -> Vec<u8> {
    B::new()
        .u64((0x0000_0001_0000_0002 << 1) | 1) // seqCommit
        .u32(0x000E_1000) // valuesLenBytes
        .u32(0x0102) // payloadSlot
        .u16(0x0201) // poolId
        .u32(0x44) // payloadOffset
        .u64(0x1A1B_1C1D_1E1F_2021) // timestampNs
        .u32(7) // metaVersion
        .bytes(&slot_pad()) // pad[26]
        .var(header_bytes) // headerBytes
        .build()
}

fn data_source_announce() -> DataSourceAnnounce<'static> {
    DataSourceAnnounce {
        stream_id: 10001,
        producer_id: 0x0102_0304,
        epoch: 0x0000_0000_0000_000A,
        meta_version: 0x0000_0003,
        name: b"front-camera",
        summary: b"1080p RGB, 30 Hz",
    }
}

fn data_source_announce_bytes() -> Vec<u8> {
    B::new()
        .header(20, 7, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0102_0304)
        .u64(10)
        .u32(3)
        .var(b"front-camera")
        .var(b"1080p RGB, 30 Hz")
        .build()
}

const ATTRS: [DataSourceMetaAttributes<'static>; 3] = [
    DataSourceMetaAttributes {
        key: b"exposure_us",
        format: b"u32",
        value: &[0x10, 0x27, 0x00, 0x00],
    },
    DataSourceMetaAttributes {
        key: b"roi",
        format: b"",
        value: &[0xFF, 0x00, 0x7F, 0x80, 0x01],
    },
    DataSourceMetaAttributes {
        key: b"",
        format: b"",
        value: b"",
    },
];

fn data_source_meta() -> DataSourceMeta<'static> {
    DataSourceMeta {
        stream_id: 10001,
        meta_version: 0x0000_0003,
        timestamp_ns: 0x0102_0304_0506_0708,
        attributes: &ATTRS,
    }
}

fn data_source_meta_bytes() -> Vec<u8> {
    B::new()
        .header(16, 8, SCHEMA, VERSION)
        .u32(10001)
        .u32(3)
        .u64(0x0102_0304_0506_0708)
        .group(0, 3) // attributes: no fixed fields
        .var(b"exposure_us")
        .var(b"u32")
        .var(&[0x10, 0x27, 0x00, 0x00])
        .var(b"roi")
        .var(b"")
        .var(&[0xFF, 0x00, 0x7F, 0x80, 0x01])
        .var(b"")
        .var(b"")
        .var(b"")
        .build()
}

#[track_caller]
fn assert_data_source_meta(d: &DataSourceMetaDecoder<'_>, v: &DataSourceMeta<'_>) {
    assert_eq!(d.stream_id(), v.stream_id);
    assert_eq!(d.meta_version(), v.meta_version);
    assert_eq!(d.timestamp_ns(), v.timestamp_ns);
    let attrs = d.attributes();
    assert_eq!(attrs.len(), v.attributes.len());
    let mut n = 0;
    for (got, want) in attrs.zip(v.attributes) {
        assert_eq!(got.key(), want.key);
        assert_eq!(got.format(), want.format);
        assert_eq!(got.value(), want.value);
        assert_eq!(&got.to_value(), want);
        n += 1;
    }
    assert_eq!(n, v.attributes.len());
}

fn control_response() -> ControlResponse<'static> {
    ControlResponse {
        correlation_id: -0x0000_0000_0000_0101,
        code: ResponseCode::InternalError,
        error_message: b"layout_version mismatch",
    }
}

fn control_response_bytes() -> Vec<u8> {
    B::new()
        .header(12, 9, SCHEMA, VERSION)
        .i64(-0x101)
        .i32(4) // INTERNAL_ERROR
        .var(b"layout_version mismatch")
        .build()
}

// ---------------------------------------------------------------------------------------
// 1 + 2. Exact bytes and round trips
// ---------------------------------------------------------------------------------------

#[test]
fn schema_constants() {
    assert_eq!(SCHEMA_ID, 900);
    assert_eq!(SCHEMA_VERSION, 1);
}

#[test]
fn pool_announce_exact_bytes_two_pools() {
    let v = pool_announce();
    let expected = pool_announce_bytes();
    assert_eq!(v.encoded_len(), expected.len());
    let got = assert_encodes!(v, expected);
    assert_eq!(rd_u16(&got, 8 + 35), 10, "payloadPools blockLength");
    assert_eq!(rd_u16(&got, 8 + 35 + 2), 2, "payloadPools numInGroup");
    let d = ShmPoolAnnounceDecoder::wrap(&got).unwrap();
    assert_eq!(d.block_length(), 35);
    assert_eq!(d.acting_version(), 1);
    assert_eq!(d.encoded_body_len(), got.len() - 8);
    assert_pool_announce(&d, &v);
}

#[test]
fn pool_announce_without_pools() {
    let v = ShmPoolAnnounce {
        payload_pools: &[],
        header_region_uri: b"",
        announce_clock_domain: ClockDomain::Monotonic,
        ..pool_announce()
    };
    let expected = B::new()
        .header(35, 1, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0102_0304)
        .u64(0x0A0B_0C0D_0E0F_1011)
        .u64(0x1718_1920_2122_2324)
        .u8(1)
        .u32(1)
        .u32(1024)
        .u16(256)
        .group(10, 0)
        .var(b"")
        .build();
    let got = assert_encodes!(v, expected);
    assert_pool_announce(&ShmPoolAnnounceDecoder::wrap(&got).unwrap(), &v);
}

#[test]
fn consumer_hello_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(ConsumerHello, consumer_hello(), consumer_hello_bytes());
    let d = ConsumerHelloDecoder::wrap(&got).unwrap();
    assert_eq!(d.supports_shm(), Bool::True);
    assert_eq!(d.supports_progress(), Bool::False);
    assert_eq!(d.mode(), Mode::RateLimited);
    assert_eq!(d.progress_interval_us(), Some(250));
    assert_eq!(d.progress_bytes_delta(), Some(0x0001_0000));
    assert_eq!(d.progress_major_delta_units(), Some(8));
    assert_eq!(d.descriptor_channel(), b"aeron:ipc?term-length=1m");
    assert_eq!(d.control_channel(), b"aeron:udp?endpoint=127.0.0.1:40123");
}

#[test]
fn consumer_hello_optional_fields_null() {
    let v = ConsumerHello {
        progress_interval_us: None,
        progress_bytes_delta: None,
        progress_major_delta_units: None,
        descriptor_channel: b"",
        control_channel: b"",
        ..consumer_hello()
    };
    let expected = B::new()
        .header(39, 2, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0B0B)
        .u8(1)
        .u8(0)
        .u8(2)
        .u32(60)
        .u32(1)
        .fill(4, 0xFF)
        .fill(4, 0xFF)
        .fill(4, 0xFF)
        .u32(0x0001_1111)
        .u32(0x0002_2222)
        .var(b"")
        .var(b"")
        .build();
    assert_encodes!(v, expected);
    let d = ConsumerHelloDecoder::wrap(&expected).unwrap();
    assert_eq!(d.progress_interval_us(), None);
    assert_eq!(d.progress_bytes_delta(), None);
    assert_eq!(d.progress_major_delta_units(), None);
    assert_eq!(ConsumerHello::decode(&expected), Ok(v));
}

#[test]
fn consumer_config_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(ConsumerConfig, consumer_config(), consumer_config_bytes());
    let d = ConsumerConfigDecoder::wrap(&got).unwrap();
    assert_eq!(d.use_shm(), Bool::True);
    assert_eq!(d.mode(), Mode::Stream);
    assert_eq!(d.payload_fallback_uri(), b"bridge://10.0.0.2:9000");
    assert_eq!(d.descriptor_channel(), b"aeron:ipc");
    assert_eq!(d.control_channel(), b"");
}

#[test]
fn frame_descriptor_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(
        FrameDescriptor,
        frame_descriptor(),
        frame_descriptor_bytes()
    );
    let d = FrameDescriptorDecoder::wrap(&got).unwrap();
    assert_eq!(d.seq(), 0x0000_0001_0000_0002);
    assert_eq!(d.trace_id(), Some(0xABCD_EF01_2345_6789));
}

#[test]
fn frame_descriptor_optional_fields_null() {
    let v = FrameDescriptor {
        timestamp_ns: None,
        meta_version: None,
        trace_id: None,
        ..frame_descriptor()
    };
    let expected = B::new()
        .header(40, 4, SCHEMA, VERSION)
        .u32(10001)
        .u64(5)
        .u64(0x0000_0001_0000_0002)
        .fill(8, 0xFF) // timestampNs null u64::MAX
        .fill(4, 0xFF) // metaVersion null u32::MAX
        .zeros(8) // traceId nullValue="0"
        .build();
    assert_encodes!(v, expected);
    let d = FrameDescriptorDecoder::wrap(&expected).unwrap();
    assert_eq!(d.timestamp_ns(), None);
    assert_eq!(d.meta_version(), None);
    assert_eq!(d.trace_id(), None);
    assert_eq!(FrameDescriptor::decode(&expected), Ok(v));
    // traceId u64::MAX is an ordinary value for this field (its null is 0).
    let v = FrameDescriptor {
        trace_id: Some(u64::MAX),
        ..frame_descriptor()
    };
    let got = encode_with(v.encoded_len(), |b| v.encode(b));
    assert_eq!(FrameDescriptor::decode(&got), Ok(v));
}

#[test]
fn frame_progress_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(FrameProgress, frame_progress(), frame_progress_bytes());
    let d = FrameProgressDecoder::wrap(&got).unwrap();
    assert_eq!(d.state(), FrameProgressState::Complete);
    assert_eq!(d.payload_bytes_filled(), 0x0012_3456);
    for (state, raw) in [
        (FrameProgressState::Unknown, 0u8),
        (FrameProgressState::Started, 1),
        (FrameProgressState::Progress, 2),
        (FrameProgressState::Complete, 3),
    ] {
        let v = FrameProgress {
            state,
            ..frame_progress()
        };
        let got = encode_with(v.encoded_len(), |b| v.encode(b));
        assert_eq!(got[8 + 28], raw);
        assert_eq!(FrameProgress::decode(&got), Ok(v));
    }
}

#[test]
fn qos_consumer_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(QosConsumer, qos_consumer(), qos_consumer_bytes());
    let d = QosConsumerDecoder::wrap(&got).unwrap();
    assert_eq!(d.drops_gap(), 0x1234);
    assert_eq!(d.drops_late(), 0x5678);
    assert_eq!(d.mode(), Mode::RateLimited);
}

#[test]
fn qos_producer_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(QosProducer, qos_producer(), qos_producer_bytes());
    assert_eq!(
        QosProducerDecoder::wrap(&got).unwrap().watermark(),
        Some(0x10)
    );
}

#[test]
fn qos_producer_watermark_null() {
    let v = QosProducer {
        watermark: None,
        ..qos_producer()
    };
    let expected = B::new()
        .header(28, 6, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0102_0304)
        .u64(9)
        .u64(0x0001_0000)
        .fill(4, 0xFF)
        .build();
    assert_encodes!(v, expected);
    assert_eq!(
        QosProducerDecoder::wrap(&expected).unwrap().watermark(),
        None
    );
    assert_eq!(QosProducer::decode(&expected), Ok(v));
}

#[test]
fn superblock_is_64_bytes_with_epoch_at_12() {
    let v = superblock();
    let expected = superblock_body_bytes();
    assert_eq!(expected.len(), 64);
    assert_eq!(v.encoded_body_len(), 64);
    let body = encode_with(64, |b| v.encode_body(b));
    assert_bytes(&body, &expected);
    assert_eq!(&body[12..20], &0x0102_0304_0506_0708u64.to_le_bytes());
    assert_eq!(&body[0..8], &MAGIC.to_le_bytes());
    // SHM-resident: wrapped without a message header.
    let d = ShmRegionSuperblockDecoder::wrap_body(&body, 64, SCHEMA_VERSION).unwrap();
    assert_eq!(d.to_value(), v);
    assert_eq!(d.epoch(), 0x0102_0304_0506_0708);
    assert_eq!(d.region_type(), RegionType::PayloadPool);
    assert_eq!(d.encoded_body_len(), 64);
    // With a message header too.
    let full = encode_with(v.encoded_len(), |b| v.encode(b));
    let mut expected_full = B::new().header(64, 50, SCHEMA, VERSION).build();
    expected_full.extend_from_slice(&expected);
    assert_bytes(&full, &expected_full);
    assert_eq!(ShmRegionSuperblock::decode(&full), Ok(v));
}

#[test]
fn superblock_header_ring_round_trip() {
    let v = ShmRegionSuperblock {
        region_type: RegionType::HeaderRing,
        pool_id: 0,
        ..superblock()
    };
    let body = encode_with(64, |b| v.encode_body(b));
    assert_eq!(&body[24..26], &1i16.to_le_bytes());
    let d = ShmRegionSuperblockDecoder::wrap_body(&body, 64, 1).unwrap();
    assert_eq!(d.to_value(), v);
}

#[test]
fn tensor_header_exact_bytes_192() {
    let v = tensor();
    let expected = tensor_bytes();
    assert_eq!(expected.len(), 192);
    assert_eq!(v.encoded_len(), 192);
    assert_eq!(v.encoded_body_len(), 184);
    let got = encode_with(192, |b| v.encode(b));
    assert_bytes(&got, &expected);
    // Body layout facts (offsets relative to the body, after the 8-byte header).
    let body = &got[8..];
    assert_eq!(body[4], 3, "ndims at 4");
    assert_eq!(body[5], 0x5A, "padAlign at 5: maxDims occupies no bytes");
    assert_eq!(&body[11..15], &480i32.to_le_bytes(), "dims[0] at 11");
    assert_eq!(&body[43..47], &1920i32.to_le_bytes(), "strides[0] at 43");
    let d = TensorHeaderDecoder::wrap(&got).unwrap();
    assert_eq!(d.max_dims(), 8);
    assert_eq!(tensor_header::MAX_DIMS, 8);
    assert_eq!(d.dtype(), Dtype::Float32);
    assert_eq!(d.major_order(), MajorOrder::Row);
    assert_eq!(d.ndims(), 3);
    assert_eq!(d.pad_align(), 0x5A);
    assert_eq!(d.progress_unit(), ProgressUnit::Rows);
    assert_eq!(d.progress_stride_bytes(), 0x1000);
    assert_eq!(d.dims(), DIMS);
    assert_eq!(d.strides(), STRIDES);
    assert_eq!(d.pad(), tensor_pad());
    assert_eq!(TensorHeader::decode(&got), Ok(v));
}

#[test]
fn tensor_header_all_dtypes_and_orders_round_trip() {
    let dtypes = [
        (Dtype::Unknown, 0i16),
        (Dtype::Uint8, 1),
        (Dtype::Int8, 2),
        (Dtype::Uint16, 3),
        (Dtype::Int16, 4),
        (Dtype::Uint32, 5),
        (Dtype::Int32, 6),
        (Dtype::Uint64, 7),
        (Dtype::Int64, 8),
        (Dtype::Float32, 9),
        (Dtype::Float64, 10),
        (Dtype::Boolean, 11),
        (Dtype::Bytes, 13),
        (Dtype::Bit, 14),
    ];
    for (dtype, raw) in dtypes {
        assert_eq!(dtype.raw(), raw);
        assert_eq!(Dtype::from_raw(raw), dtype);
        let v = TensorHeader {
            dtype,
            major_order: MajorOrder::Column,
            progress_unit: ProgressUnit::Columns,
            ..tensor()
        };
        let got = encode_with(192, |b| v.encode(b));
        assert_eq!(&got[8..10], &raw.to_le_bytes());
        assert_eq!(&got[10..12], &2i16.to_le_bytes());
        assert_eq!(got[8 + 6], 2);
        assert_eq!(TensorHeader::decode(&got), Ok(v));
    }
}

#[test]
fn slot_header_is_60_byte_block_and_256_byte_slot() {
    let th = tensor_bytes();
    assert_eq!(th.len(), 192);
    let v = slot_header(&th);
    let expected = slot_header_body_bytes(&th);
    assert_eq!(expected.len(), 256, "60 + 4 + 192");
    assert_eq!(v.encoded_body_len(), 256);
    let body = encode_with(256, |b| v.encode_body(b));
    assert_bytes(&body, &expected);
    // seq_commit at byte 0, headerBytes length prefix at 60.
    assert_eq!(
        &body[0..8],
        &((0x0000_0001_0000_0002u64 << 1) | 1).to_le_bytes()
    );
    assert_eq!(&body[60..64], &192u32.to_le_bytes());
    assert_eq!(&body[34..60], &slot_pad());

    // Consumer path: wrap the slot without a message header, then the embedded header.
    let d = SlotHeaderDecoder::wrap_body(&body, 60, SCHEMA_VERSION).unwrap();
    assert_eq!(d.encoded_body_len(), 256);
    assert_eq!(d.seq_commit() >> 1, 0x0000_0001_0000_0002);
    assert_eq!(d.seq_commit() & 1, 1);
    assert_eq!(d.values_len_bytes(), 0x000E_1000);
    assert_eq!(d.payload_slot(), 0x0102);
    assert_eq!(d.pool_id(), 0x0201);
    assert_eq!(d.payload_offset(), 0x44);
    assert_eq!(d.timestamp_ns(), 0x1A1B_1C1D_1E1F_2021);
    assert_eq!(d.meta_version(), 7);
    assert_eq!(d.pad(), slot_pad());
    assert_eq!(d.header_bytes(), &th[..]);
    assert_eq!(d.to_value(), v);
    let embedded = d.header_bytes();
    assert_eq!(rd_u16(embedded, 0), 184, "embedded blockLength");
    assert_eq!(rd_u16(embedded, 2), 52, "embedded templateId");
    assert_eq!(rd_u16(embedded, 4), 900, "embedded schemaId");
    assert_eq!(rd_u16(embedded, 6), 1, "embedded version");
    let t = TensorHeaderDecoder::wrap(embedded).unwrap();
    assert_eq!(t.to_value(), tensor());
    assert!(matches!(
        AnyMessage::decode(embedded).unwrap(),
        AnyMessage::TensorHeader(_)
    ));

    // With its own message header the SlotHeader is 8 + 256 bytes.
    let full = encode_with(v.encoded_len(), |b| v.encode(b));
    let mut expected_full = B::new().header(60, 51, SCHEMA, VERSION).build();
    expected_full.extend_from_slice(&expected);
    assert_bytes(&full, &expected_full);
    assert_eq!(SlotHeader::decode(&full), Ok(v));
}

#[test]
fn slot_header_encoded_into_tensor_header_body_written_in_place() {
    // Producer path: encode the TensorHeader straight into a slot buffer, then the slot.
    let t = tensor();
    let mut th = [0u8; 192];
    assert_eq!(t.encode(&mut th), Ok(192));
    let v = slot_header(&th);
    let mut slot = [0xA5u8; 256];
    assert_eq!(v.encode_body(&mut slot), Ok(256));
    assert_bytes(&slot, &slot_header_body_bytes(&tensor_bytes()));
}

#[test]
fn data_source_announce_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(
        DataSourceAnnounce,
        data_source_announce(),
        data_source_announce_bytes()
    );
    let d = DataSourceAnnounceDecoder::wrap(&got).unwrap();
    assert_eq!(d.meta_version(), 3);
    assert_eq!(d.name(), b"front-camera");
    assert_eq!(d.summary(), b"1080p RGB, 30 Hz");
}

#[test]
fn data_source_meta_exact_bytes_and_round_trip() {
    let v = data_source_meta();
    let expected = data_source_meta_bytes();
    assert_eq!(v.encoded_len(), expected.len());
    let got = assert_encodes!(v, expected);
    assert_eq!(rd_u16(&got, 8 + 16), 0, "attributes blockLength");
    assert_eq!(rd_u16(&got, 8 + 16 + 2), 3, "attributes numInGroup");
    let d = DataSourceMetaDecoder::wrap(&got).unwrap();
    assert_eq!(d.encoded_body_len(), got.len() - 8);
    assert_data_source_meta(&d, &v);
}

#[test]
fn data_source_meta_without_attributes() {
    let v = DataSourceMeta {
        attributes: &[],
        ..data_source_meta()
    };
    let expected = B::new()
        .header(16, 8, SCHEMA, VERSION)
        .u32(10001)
        .u32(3)
        .u64(0x0102_0304_0506_0708)
        .group(0, 0)
        .build();
    let got = assert_encodes!(v, expected);
    assert_data_source_meta(&DataSourceMetaDecoder::wrap(&got).unwrap(), &v);
}

#[test]
fn control_response_exact_bytes_and_round_trip() {
    let got = assert_round_trip!(
        ControlResponse,
        control_response(),
        control_response_bytes()
    );
    let d = ControlResponseDecoder::wrap(&got).unwrap();
    assert_eq!(d.correlation_id(), -0x101);
    assert_eq!(d.code(), ResponseCode::InternalError);
    assert_eq!(d.error_message(), b"layout_version mismatch");
}

#[test]
fn encode_body_matches_encode_without_header() {
    let v = pool_announce();
    let body = assert_body_is_message_without_header!(v);
    assert_pool_announce(
        &ShmPoolAnnounceDecoder::wrap_body(&body, 35, 1).unwrap(),
        &v,
    );
    assert_body_is_message_without_header!(data_source_meta());
    let v = tensor();
    let full = encode_with(192, |b| v.encode(b));
    let body = encode_with(184, |b| v.encode_body(b));
    assert_bytes(&body, &full[8..]);
    let d = TensorHeaderDecoder::wrap_body(&body, 184, 1).unwrap();
    assert_eq!(d.to_value(), v);
}

#[test]
fn any_message_dispatches_every_template() {
    let th = tensor_bytes();
    let slot = {
        let v = slot_header(&th);
        encode_with(v.encoded_len(), |b| v.encode(b))
    };
    let sb = {
        let v = superblock();
        encode_with(v.encoded_len(), |b| v.encode(b))
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (pool_announce_bytes(), "ShmPoolAnnounce"),
        (consumer_hello_bytes(), "ConsumerHello"),
        (consumer_config_bytes(), "ConsumerConfig"),
        (frame_descriptor_bytes(), "FrameDescriptor"),
        (frame_progress_bytes(), "FrameProgress"),
        (qos_consumer_bytes(), "QosConsumer"),
        (qos_producer_bytes(), "QosProducer"),
        (sb, "ShmRegionSuperblock"),
        (slot, "SlotHeader"),
        (th.clone(), "TensorHeader"),
        (data_source_announce_bytes(), "DataSourceAnnounce"),
        (data_source_meta_bytes(), "DataSourceMeta"),
        (control_response_bytes(), "ControlResponse"),
    ];
    for (buf, name) in &cases {
        let m = AnyMessage::decode(buf).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.name(), *name);
    }
    match AnyMessage::decode(&pool_announce_bytes()).unwrap() {
        AnyMessage::ShmPoolAnnounce(d) => assert_pool_announce(&d, &pool_announce()),
        other => panic!("wrong variant {other:?}"),
    }
    match AnyMessage::decode(&data_source_meta_bytes()).unwrap() {
        AnyMessage::DataSourceMeta(d) => assert_data_source_meta(&d, &data_source_meta()),
        other => panic!("wrong variant {other:?}"),
    }
    match AnyMessage::decode(&frame_descriptor_bytes()).unwrap() {
        AnyMessage::FrameDescriptor(d) => assert_eq!(d.to_value(), frame_descriptor()),
        other => panic!("wrong variant {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// 4. Enums
// ---------------------------------------------------------------------------------------

#[test]
fn enum_raw_values_match_the_schema() {
    assert_eq!((Bool::False.raw(), Bool::True.raw()), (0, 1));
    assert_eq!((Mode::Stream.raw(), Mode::RateLimited.raw()), (1, 2));
    assert_eq!(
        (
            ProgressUnit::None.raw(),
            ProgressUnit::Rows.raw(),
            ProgressUnit::Columns.raw()
        ),
        (0, 1, 2)
    );
    assert_eq!(
        (
            ClockDomain::Monotonic.raw(),
            ClockDomain::RealtimeSynced.raw()
        ),
        (1, 2)
    );
    assert_eq!(
        (RegionType::HeaderRing.raw(), RegionType::PayloadPool.raw()),
        (1, 2)
    );
    assert_eq!(
        (
            MajorOrder::Unknown.raw(),
            MajorOrder::Row.raw(),
            MajorOrder::Column.raw()
        ),
        (0, 1, 2)
    );
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
    // Dtype 12 is a gap in the schema.
    assert_eq!(Dtype::from_raw(12), Dtype::Unrecognized(12));
    assert!(!Dtype::from_raw(12).is_known());
    assert_eq!(Bool::from_raw(2), Bool::Unrecognized(2));
    assert_eq!(RegionType::from_raw(0), RegionType::Unrecognized(0));
}

#[test]
fn unknown_enum_values_decode_as_unrecognized_and_reencode_unchanged() {
    // ConsumerHello: supportsShm 2, supportsProgress 0xFF, mode 0.
    let wire = B::new()
        .header(39, 2, SCHEMA, VERSION)
        .u32(1)
        .u32(2)
        .u8(2)
        .u8(0xFF)
        .u8(0)
        .u32(3)
        .u32(4)
        .u32(5)
        .u32(6)
        .u32(7)
        .u32(8)
        .u32(9)
        .var(b"a")
        .var(b"b")
        .build();
    let v = ConsumerHello::decode(&wire).unwrap();
    assert_eq!(v.supports_shm, Bool::Unrecognized(2));
    assert_eq!(v.supports_progress, Bool::Unrecognized(0xFF));
    assert_eq!(v.mode, Mode::Unrecognized(0));
    assert_encodes!(v, wire);

    // FrameProgress state 4.
    let wire = B::new()
        .header(29, 11, SCHEMA, VERSION)
        .u32(1)
        .u64(2)
        .u64(3)
        .u64(4)
        .u8(4)
        .build();
    let v = FrameProgress::decode(&wire).unwrap();
    assert_eq!(v.state, FrameProgressState::Unrecognized(4));
    assert_encodes!(v, wire);

    // ShmPoolAnnounce clock domain 0.
    let wire = B::new()
        .header(35, 1, SCHEMA, VERSION)
        .u32(1)
        .u32(2)
        .u64(3)
        .u64(4)
        .u8(0)
        .u32(5)
        .u32(6)
        .u16(7)
        .group(10, 0)
        .var(b"")
        .build();
    let d = ShmPoolAnnounceDecoder::wrap(&wire).unwrap();
    assert_eq!(d.announce_clock_domain(), ClockDomain::Unrecognized(0));
    let v = ShmPoolAnnounce {
        stream_id: d.stream_id(),
        producer_id: d.producer_id(),
        epoch: d.epoch(),
        announce_timestamp_ns: d.announce_timestamp_ns(),
        announce_clock_domain: d.announce_clock_domain(),
        layout_version: d.layout_version(),
        header_nslots: d.header_nslots(),
        header_slot_bytes: d.header_slot_bytes(),
        payload_pools: &[],
        header_region_uri: d.header_region_uri(),
    };
    assert_encodes!(v, wire);

    // ControlResponse code i32::MIN.
    let wire = B::new()
        .header(12, 9, SCHEMA, VERSION)
        .i64(1)
        .i32(i32::MIN)
        .var(b"")
        .build();
    let v = ControlResponse::decode(&wire).unwrap();
    assert_eq!(v.code, ResponseCode::Unrecognized(i32::MIN));
    assert_encodes!(v, wire);

    // Superblock region type -2 (int16).
    let mut body = superblock_body_bytes();
    body[24..26].copy_from_slice(&(-2i16).to_le_bytes());
    let v = ShmRegionSuperblockDecoder::wrap_body(&body, 64, 1)
        .unwrap()
        .to_value();
    assert_eq!(v.region_type, RegionType::Unrecognized(-2));
    assert_bytes(&encode_with(64, |b| v.encode_body(b)), &body);

    // TensorHeader dtype 12 (gap), majorOrder -1, progressUnit 3.
    let mut wire = tensor_bytes();
    wire[8..10].copy_from_slice(&12i16.to_le_bytes());
    wire[10..12].copy_from_slice(&(-1i16).to_le_bytes());
    wire[8 + 6] = 3;
    let v = TensorHeader::decode(&wire).unwrap();
    assert_eq!(v.dtype, Dtype::Unrecognized(12));
    assert_eq!(v.major_order, MajorOrder::Unrecognized(-1));
    assert_eq!(v.progress_unit, ProgressUnit::Unrecognized(3));
    assert_bytes(&encode_with(192, |b| v.encode(b)), &wire);
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
        err(ShmPoolAnnounceDecoder::wrap(&[])),
        DecodeError::Truncated {
            needed: 8,
            available: 0,
            ..
        }
    ));
    // SHM-resident blocks wrapped without header over an empty slice.
    assert_truncated(
        err(ShmRegionSuperblockDecoder::wrap_body(&[], 64, 1)),
        "block",
    );
    assert_truncated(err(SlotHeaderDecoder::wrap_body(&[], 60, 1)), "block");
    assert_truncated(err(TensorHeaderDecoder::wrap_body(&[], 184, 1)), "block");
}

#[test]
fn error_truncated_header() {
    assert_header_cuts_truncated(
        &frame_descriptor_bytes(),
        |b| err(FrameDescriptorDecoder::wrap(b)),
        |b| err(AnyMessage::decode(b)),
    );
}

#[test]
fn error_truncated_fixed_block() {
    let full = frame_descriptor_bytes();
    let cuts = 8..full.len();
    assert_cuts_truncated(&full, cuts.clone(), "block", |b| {
        err(FrameDescriptorDecoder::wrap(b))
    });
    assert_cuts_truncated(&full, cuts, "block", |b| err(AnyMessage::decode(b)));
    let th = tensor_bytes();
    assert_cuts_truncated(&th, 8..th.len(), "block", |b| {
        err(TensorHeaderDecoder::wrap(b))
    });
    let sb = superblock_body_bytes();
    assert_cuts_truncated(&sb, 0..64, "block", |b| {
        err(ShmRegionSuperblockDecoder::wrap_body(b, 64, 1))
    });
    let slot = slot_header_body_bytes(&th);
    assert_cuts_truncated(&slot, 0..60, "block", |b| {
        err(SlotHeaderDecoder::wrap_body(b, 60, 1))
    });
}

#[test]
fn error_truncated_group_header() {
    let full = pool_announce_bytes();
    assert_cuts_truncated(&full, 8 + 35..8 + 35 + 4, "payloadPools", |b| {
        err(ShmPoolAnnounceDecoder::wrap(b))
    });
    let full = data_source_meta_bytes();
    assert_cuts_truncated(&full, 8 + 16..8 + 16 + 4, "attributes", |b| {
        err(DataSourceMetaDecoder::wrap(b))
    });
}

#[test]
fn error_truncated_group_entry() {
    let full = pool_announce_bytes();
    let wrap = |b: &[u8]| err(ShmPoolAnnounceDecoder::wrap(b));
    let first = 8 + 35 + 4;
    let end_of_pools = first + 2 * (10 + 4) + POOLS[0].region_uri.len() + POOLS[1].region_uri.len();
    assert_cuts_truncated(&full, first..end_of_pools, "payloadPools", wrap);
    // numInGroup says 3, only 2 present.
    let mut more = full[..end_of_pools].to_vec();
    wr_u16(&mut more, 8 + 35 + 2, 3);
    assert_truncated(wrap(&more), "payloadPools");

    // DataSourceMeta entries are var data only: every cut inside them is a truncation.
    let full = data_source_meta_bytes();
    assert_cuts_truncated(&full, 8 + 16 + 4..full.len(), "attributes", |b| {
        err(DataSourceMetaDecoder::wrap(b))
    });
}

#[test]
fn error_truncated_trailing_var_data() {
    let full = pool_announce_bytes();
    let uri = full.len() - 4 - HEADER_URI.len()..full.len();
    assert_cuts_truncated(&full, uri, "headerRegionUri", |b| {
        err(ShmPoolAnnounceDecoder::wrap(b))
    });
    let th = tensor_bytes();
    let slot = slot_header_body_bytes(&th);
    assert_cuts_truncated(&slot, 60..slot.len(), "headerBytes", |b| {
        err(SlotHeaderDecoder::wrap_body(b, 60, 1))
    });
    let full = consumer_config_bytes();
    for n in 8 + 18..full.len() {
        assert!(matches!(
            err(ConsumerConfigDecoder::wrap(&full[..n])),
            DecodeError::Truncated { .. }
        ));
    }
}

#[test]
fn error_var_data_length_beyond_buffer() {
    let mut buf = control_response_bytes();
    wr_u32(&mut buf, 8 + 12, 24);
    assert_truncated(err(ControlResponseDecoder::wrap(&buf)), "errorMessage");
    assert_truncated(err(ControlResponse::decode(&buf)), "errorMessage");
    let th = tensor_bytes();
    let mut slot = slot_header_body_bytes(&th);
    wr_u32(&mut slot, 60, 193);
    assert_truncated(
        err(SlotHeaderDecoder::wrap_body(&slot, 60, 1)),
        "headerBytes",
    );
    let mut buf = data_source_meta_bytes();
    wr_u32(&mut buf, 8 + 16 + 4, VAR_MAX);
    assert_truncated(err(DataSourceMetaDecoder::wrap(&buf)), "key");
}

#[test]
fn error_var_data_length_above_schema_max() {
    let mut buf = control_response_bytes();
    wr_u32(&mut buf, 8 + 12, VAR_MAX + 1);
    assert!(matches!(
        err(ControlResponseDecoder::wrap(&buf)),
        DecodeError::VarDataTooLong { field, length, max }
            if field.contains("errorMessage") && length == VAR_MAX + 1 && max == VAR_MAX
    ));
    // varDataEncoding (SlotHeader.headerBytes) has the same maximum.
    let th = tensor_bytes();
    let mut slot = slot_header_body_bytes(&th);
    wr_u32(&mut slot, 60, u32::MAX);
    assert!(matches!(
        err(SlotHeaderDecoder::wrap_body(&slot, 60, 1)),
        DecodeError::VarDataTooLong { field, length: u32::MAX, max: VAR_MAX }
            if field.contains("headerBytes")
    ));
    // In a group entry (attributes.value of the first entry).
    let mut buf = data_source_meta_bytes();
    let value_len_at = 8 + 16 + 4 + 4 + 11 + 4 + 3;
    assert_eq!(
        u32::from_le_bytes(buf[value_len_at..value_len_at + 4].try_into().unwrap()),
        4
    );
    wr_u32(&mut buf, value_len_at, VAR_MAX + 1);
    assert!(matches!(
        err(AnyMessage::decode(&buf)),
        DecodeError::VarDataTooLong { field, max: VAR_MAX, .. } if field.contains("value")
    ));
}

#[test]
fn error_wrong_schema_id() {
    let mut buf = frame_descriptor_bytes();
    wr_u16(&mut buf, 4, 901);
    let expected = DecodeError::SchemaMismatch {
        expected: 900,
        actual: 901,
    };
    assert_eq!(err(FrameDescriptorDecoder::wrap(&buf)), expected);
    assert_eq!(err(FrameDescriptor::decode(&buf)), expected);
    assert_eq!(err(AnyMessage::decode(&buf)), expected);
    // A driver-schema message (template 1 = ShmAttachRequest) is not a ShmPoolAnnounce.
    let driver = B::new()
        .header(27, 1, 901, 1)
        .i64(1)
        .u32(2)
        .u32(3)
        .u8(1)
        .u32(1)
        .u8(255)
        .u8(0)
        .u32(u32::MAX)
        .build();
    assert_eq!(err(AnyMessage::decode(&driver)), expected);
    assert_eq!(err(ShmPoolAnnounceDecoder::wrap(&driver)), expected);
}

#[test]
fn error_wrong_template_for_specific_decoder() {
    assert_eq!(
        err(FrameDescriptorDecoder::wrap(&frame_progress_bytes())),
        DecodeError::TemplateMismatch {
            expected: 4,
            actual: 11
        }
    );
    assert_eq!(
        err(SlotHeaderDecoder::wrap(&tensor_bytes())),
        DecodeError::TemplateMismatch {
            expected: 51,
            actual: 52
        }
    );
    assert_eq!(
        err(DataSourceMetaDecoder::wrap(&data_source_announce_bytes())),
        DecodeError::TemplateMismatch {
            expected: 8,
            actual: 7
        }
    );
}

#[test]
fn error_unknown_template_via_any_message() {
    assert_unknown_templates(
        &control_response_bytes(),
        900,
        &[0, 10, 12, 49, 53, 0xFFFF],
        |b| err(AnyMessage::decode(b)),
    );
}

#[test]
fn error_newer_schema_version() {
    let mut buf = pool_announce_bytes();
    wr_u16(&mut buf, 6, 2);
    let expected = DecodeError::UnsupportedVersion {
        supported: 1,
        actual: 2,
    };
    assert_eq!(err(ShmPoolAnnounceDecoder::wrap(&buf)), expected);
    assert_eq!(err(AnyMessage::decode(&buf)), expected);
    // Embedded TensorHeader with a newer version must be refused too (Wire Spec §8.3).
    let mut th = tensor_bytes();
    wr_u16(&mut th, 6, 3);
    assert_eq!(
        err(TensorHeaderDecoder::wrap(&th)),
        DecodeError::UnsupportedVersion {
            supported: 1,
            actual: 3
        }
    );
}

#[test]
fn error_block_length_too_short() {
    let mut buf = pool_announce_bytes();
    wr_u16(&mut buf, 0, 34);
    assert_eq!(
        err(ShmPoolAnnounceDecoder::wrap(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 35,
            actual: 34
        }
    );
    let mut th = tensor_bytes();
    wr_u16(&mut th, 0, 183);
    assert_eq!(
        err(AnyMessage::decode(&th)),
        DecodeError::BlockLengthTooShort {
            minimum: 184,
            actual: 183
        }
    );
    let slot = slot_header_body_bytes(&tensor_bytes());
    assert_eq!(
        err(SlotHeaderDecoder::wrap_body(&slot, 59, 1)),
        DecodeError::BlockLengthTooShort {
            minimum: 60,
            actual: 59
        }
    );
    let sb = superblock_body_bytes();
    assert_eq!(
        err(ShmRegionSuperblockDecoder::wrap_body(&sb, 0, 1)),
        DecodeError::BlockLengthTooShort {
            minimum: 64,
            actual: 0
        }
    );
}

#[test]
fn error_group_entry_block_length_too_short() {
    let mut buf = pool_announce_bytes();
    wr_u16(&mut buf, 8 + 35, 9);
    assert_eq!(
        err(ShmPoolAnnounceDecoder::wrap(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 10,
            actual: 9
        }
    );
    assert_eq!(
        err(AnyMessage::decode(&buf)),
        DecodeError::BlockLengthTooShort {
            minimum: 10,
            actual: 9
        }
    );
}

// ---------------------------------------------------------------------------------------
// Forward compatibility: larger block lengths are skipped
// ---------------------------------------------------------------------------------------

#[test]
fn larger_message_block_length_is_skipped() {
    // FrameDescriptor with 4 extra bytes in the block.
    let mut wire = B::new().header(44, 4, SCHEMA, VERSION).build();
    wire.extend_from_slice(&frame_descriptor_bytes()[8..]);
    wire.extend_from_slice(&[0xEE; 4]);
    assert_eq!(FrameDescriptor::decode(&wire), Ok(frame_descriptor()));

    // ControlResponse: var data follows the extended block.
    let wire = B::new()
        .header(12 + 9, 9, SCHEMA, VERSION)
        .i64(-0x101)
        .i32(4)
        .fill(9, 0x77)
        .var(b"layout_version mismatch")
        .build();
    assert_eq!(ControlResponse::decode(&wire), Ok(control_response()));

    // TensorHeader with a 200-byte block.
    let mut th = tensor_bytes();
    wr_u16(&mut th, 0, 200);
    th.extend_from_slice(&[0x11; 16]);
    let d = TensorHeaderDecoder::wrap(&th).unwrap();
    assert_eq!(d.block_length(), 200);
    assert_eq!(d.to_value(), tensor());

    // SlotHeader wrapped with a 64-byte block: headerBytes starts at 64.
    let th = tensor_bytes();
    let mut slot = slot_header_body_bytes(&th);
    let tail = slot.split_off(60);
    slot.extend_from_slice(&[0xAB; 4]);
    slot.extend_from_slice(&tail);
    let d = SlotHeaderDecoder::wrap_body(&slot, 64, 1).unwrap();
    assert_eq!(d.to_value(), slot_header(&th));
    assert_eq!(d.encoded_body_len(), 260);
}

#[test]
fn larger_group_entry_block_length_is_skipped() {
    // ShmPoolAnnounce: message block +2, each entry +5.
    let mut b = B::new()
        .header(35 + 2, 1, SCHEMA, VERSION)
        .u32(10001)
        .u32(0x0102_0304)
        .u64(0x0A0B_0C0D_0E0F_1011)
        .u64(0x1718_1920_2122_2324)
        .u8(2)
        .u32(1)
        .u32(1024)
        .u16(256)
        .fill(2, 0xEE)
        .group(10 + 5, 2);
    for p in &POOLS {
        b = b
            .u16(p.pool_id)
            .u32(p.pool_nslots)
            .u32(p.stride_bytes)
            .fill(5, 0xDD)
            .var(p.region_uri);
    }
    let wire = b.var(HEADER_URI).build();
    let d = ShmPoolAnnounceDecoder::wrap(&wire).unwrap();
    assert_eq!(d.encoded_body_len(), wire.len() - 8);
    assert_pool_announce(&d, &pool_announce());

    // DataSourceMeta: attribute entries carry a 3-byte block (schema: 0).
    let mut b = B::new()
        .header(16, 8, SCHEMA, VERSION)
        .u32(10001)
        .u32(3)
        .u64(0x0102_0304_0506_0708)
        .group(3, 3);
    for a in &ATTRS {
        b = b.fill(3, 0xCC).var(a.key).var(a.format).var(a.value);
    }
    let wire = b.build();
    let d = DataSourceMetaDecoder::wrap(&wire).unwrap();
    assert_eq!(d.encoded_body_len(), wire.len() - 8);
    assert_data_source_meta(&d, &data_source_meta());
}

// ---------------------------------------------------------------------------------------
// EncodeError
// ---------------------------------------------------------------------------------------

#[test]
fn encode_buffer_too_small_for_every_message() {
    let v = pool_announce();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    assert_too_small_everywhere(v.encoded_body_len(), |b| v.encode_body(b));
    let v = consumer_hello();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = consumer_config();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = frame_descriptor();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = frame_progress();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = qos_consumer();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = qos_producer();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = superblock();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    assert_too_small_everywhere(64, |b| v.encode_body(b));
    let th = tensor_bytes();
    let v = slot_header(&th);
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    assert_too_small_everywhere(256, |b| v.encode_body(b));
    let v = tensor();
    assert_too_small_everywhere(192, |b| v.encode(b));
    assert_too_small_everywhere(184, |b| v.encode_body(b));
    let v = data_source_announce();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    let v = data_source_meta();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
    assert_too_small_everywhere(v.encoded_body_len(), |b| v.encode_body(b));
    let v = control_response();
    assert_too_small_everywhere(v.encoded_len(), |b| v.encode(b));
}

#[test]
fn encoded_lengths_match_hand_computed_sizes() {
    assert_eq!(
        pool_announce().encoded_len(),
        8 + 35
            + 4
            + 2 * 14
            + POOLS[0].region_uri.len()
            + POOLS[1].region_uri.len()
            + 4
            + HEADER_URI.len()
    );
    assert_eq!(consumer_hello().encoded_len(), 8 + 39 + 4 + 24 + 4 + 34);
    assert_eq!(consumer_config().encoded_len(), 8 + 18 + 4 + 22 + 4 + 9 + 4);
    assert_eq!(frame_descriptor().encoded_len(), 8 + 40);
    assert_eq!(frame_progress().encoded_len(), 8 + 29);
    assert_eq!(qos_consumer().encoded_len(), 8 + 41);
    assert_eq!(qos_producer().encoded_len(), 8 + 28);
    assert_eq!(superblock().encoded_len(), 8 + 64);
    assert_eq!(tensor().encoded_len(), 192);
    assert_eq!(
        data_source_announce().encoded_len(),
        8 + 20 + 4 + 12 + 4 + 16
    );
    assert_eq!(
        data_source_meta().encoded_len(),
        8 + 16 + 4 + 3 * 12 + (11 + 3 + 4) + (3 + 5)
    );
    assert_eq!(control_response().encoded_len(), 8 + 12 + 4 + 23);
}

#[test]
fn encode_group_too_large() {
    let entry = DataSourceMetaAttributes {
        key: b"",
        format: b"",
        value: b"",
    };
    let many = vec![entry; 65_536];
    let v = DataSourceMeta {
        attributes: &many,
        ..data_source_meta()
    };
    let mut buf = vec![0u8; v.encoded_len()];
    assert!(matches!(
        v.encode(&mut buf),
        Err(EncodeError::GroupTooLarge { count: 65_536, .. })
    ));
    let v = DataSourceMeta {
        attributes: &many[..65_535],
        ..data_source_meta()
    };
    let mut buf = vec![0u8; v.encoded_len()];
    assert_eq!(v.encode(&mut buf), Ok(buf.len()));
    assert_eq!(
        DataSourceMetaDecoder::wrap(&buf)
            .unwrap()
            .attributes()
            .len(),
        65_535
    );
}
