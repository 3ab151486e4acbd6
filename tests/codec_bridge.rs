//! `BridgeFrameChunk` (Bridge Spec v1.1 §5.1, §11, schema 902) byte for byte: the bytes
//! below are written from the specification's field list and order, not from our codec, so
//! a chunk from us is a chunk to any implementation of the same schema (AeronTensorPool.jl
//! among them), and theirs decodes here.

use tensorpool::protocol::bridge::{self, Bool, BridgeFrameChunk, BridgeFrameChunkDecoder};

/// The chunk of the test: frame 3 of stream 10000, epoch 2, trace id 0x1122334455667788,
/// chunk 1 of 2, bytes 3..6 of a 6-byte payload, CRC 0xCAFEBABE, no header.
fn golden() -> Vec<u8> {
    let mut b = Vec::new();
    // messageHeader: blockLength 53, templateId 1, schemaId 902, version 1.
    b.extend_from_slice(&53u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&902u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&10_000u32.to_le_bytes()); // streamId
    b.extend_from_slice(&2u64.to_le_bytes()); // epoch
    b.extend_from_slice(&3u64.to_le_bytes()); // seq
    b.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes()); // traceId
    b.extend_from_slice(&1u32.to_le_bytes()); // chunkIndex
    b.extend_from_slice(&2u32.to_le_bytes()); // chunkCount
    b.extend_from_slice(&3u32.to_le_bytes()); // chunkOffset
    b.extend_from_slice(&3u32.to_le_bytes()); // chunkLength
    b.extend_from_slice(&6u32.to_le_bytes()); // payloadLength
    b.extend_from_slice(&0xCAFE_BABEu32.to_le_bytes()); // payloadCrc32c
    b.push(0); // headerIncluded FALSE
    b.extend_from_slice(&0u32.to_le_bytes()); // headerBytes: length 0
    b.extend_from_slice(&3u32.to_le_bytes()); // payloadBytes: length 3
    b.extend_from_slice(&[4, 5, 6]);
    b
}

#[test]
fn our_encoding_is_the_specifications_byte_for_byte() {
    let chunk = BridgeFrameChunk {
        stream_id: 10_000,
        epoch: 2,
        seq: 3,
        trace_id: Some(0x1122_3344_5566_7788),
        chunk_index: 1,
        chunk_count: 2,
        chunk_offset: 3,
        chunk_length: 3,
        payload_length: 6,
        payload_crc32c: 0xCAFE_BABE,
        header_included: Bool::False,
        header_bytes: &[],
        payload_bytes: &[4, 5, 6],
    };
    let mut buf = vec![0u8; chunk.encoded_len()];
    let len = chunk.encode(&mut buf).expect("encodes");
    assert_eq!(&buf[..len], &golden()[..]);
    assert_eq!(bridge::SCHEMA_ID, 902);
}

#[test]
fn the_specifications_bytes_decode_and_a_zero_trace_id_is_absent() {
    let bytes = golden();
    let d = BridgeFrameChunkDecoder::wrap(&bytes).expect("decodes");
    assert_eq!(d.to_value().payload_bytes, &[4, 5, 6]);
    assert_eq!(d.trace_id(), Some(0x1122_3344_5566_7788));
    let mut untraced = bytes.clone();
    untraced[8 + 20..8 + 28].fill(0);
    assert_eq!(
        BridgeFrameChunkDecoder::wrap(&untraced)
            .expect("decodes")
            .trace_id(),
        None
    );
}

#[test]
fn a_foreign_schema_or_lying_lengths_are_refused_before_any_field_is_read() {
    let bytes = golden();
    let mut foreign = bytes.clone();
    foreign[4..6].copy_from_slice(&900u16.to_le_bytes());
    assert!(BridgeFrameChunkDecoder::wrap(&foreign).is_err());
    let mut long_payload = bytes.clone();
    let at = long_payload.len() - 7;
    long_payload[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(BridgeFrameChunkDecoder::wrap(&long_payload).is_err());
    let mut long_header = bytes.clone();
    let at = 8 + 53;
    long_header[at..at + 4].copy_from_slice(&257u32.to_le_bytes());
    assert!(BridgeFrameChunkDecoder::wrap(&long_header).is_err());
    assert!(BridgeFrameChunkDecoder::wrap(&bytes[..bytes.len() - 1]).is_err());
}
