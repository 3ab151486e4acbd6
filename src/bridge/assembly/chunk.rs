//! One `BridgeFrameChunk` as the assembler sees it, and the checks that need nothing but
//! the chunk itself and the receiver's limits (Bridge Spec v1.1 §5.1, §5.2, §5.4).

use super::{AssemblyLimits, DropReason};
use crate::bridge::crc32c::crc32c;
use crate::protocol::bridge::{Bool, BridgeFrameChunkDecoder};

/// Length of the `SlotHeader` block chunk 0 carries (§5.2: 60-byte prefix, 4-byte length,
/// 192-byte `TensorHeader`).
pub const HEADER_BLOCK_LEN: usize = 256;
/// Largest `chunkCount` (§5.2).
pub const MAX_CHUNK_COUNT: u32 = 65_535;

/// A decoded chunk: the fixed fields and the two byte slices, borrowed from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Source stream id.
    pub stream_id: u32,
    /// Source epoch.
    pub epoch: u64,
    /// Frame identity (`seq_commit >> 1` at the source).
    pub seq: u64,
    /// Trace id; 0 = absent.
    pub trace_id: u64,
    /// 0-based index.
    pub chunk_index: u32,
    /// Chunks of the frame.
    pub chunk_count: u32,
    /// Offset of this slice in the payload.
    pub chunk_offset: u32,
    /// Length of this slice.
    pub chunk_length: u32,
    /// Whole payload length.
    pub payload_length: u32,
    /// CRC32C; 0 = absent.
    pub payload_crc32c: u32,
    /// Whether `header_bytes` carries the `SlotHeader` block.
    pub header_included: bool,
    /// The `SlotHeader` block (chunk 0 only).
    pub header_bytes: &'a [u8],
    /// The payload slice.
    pub payload_bytes: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// The chunk a decoder wrapped; an unknown `headerIncluded` value is malformed.
    pub fn from_decoder(d: &BridgeFrameChunkDecoder<'a>) -> Result<Self, DropReason> {
        let header_included = match d.header_included() {
            Bool::True => true,
            Bool::False => false,
            Bool::Unrecognized(_) => return Err(DropReason::Malformed),
        };
        Ok(Self {
            stream_id: d.stream_id(),
            epoch: d.epoch(),
            seq: d.seq(),
            trace_id: d.trace_id().unwrap_or(0),
            chunk_index: d.chunk_index(),
            chunk_count: d.chunk_count(),
            chunk_offset: d.chunk_offset(),
            chunk_length: d.chunk_length(),
            payload_length: d.payload_length(),
            payload_crc32c: d.payload_crc32c(),
            header_included,
            header_bytes: d.header_bytes(),
            payload_bytes: d.payload_bytes(),
        })
    }

    /// The end of the slice in the payload (cannot overflow: both are `u32`).
    pub fn end(&self) -> u64 {
        u64::from(self.chunk_offset) + u64::from(self.chunk_length)
    }

    /// Every rule of §5.2 (and §5.4 when integrity is on) that the chunk alone decides.
    pub fn check(&self, limits: &AssemblyLimits) -> Result<(), DropReason> {
        if self.chunk_count == 0 || self.chunk_count > MAX_CHUNK_COUNT {
            return Err(DropReason::ChunkCount);
        }
        if self.chunk_index >= self.chunk_count {
            return Err(DropReason::ChunkIndex);
        }
        let first = self.chunk_index == 0;
        if self.header_included != first {
            return Err(DropReason::HeaderPresence);
        }
        let header_len = if first { HEADER_BLOCK_LEN } else { 0 };
        if self.header_bytes.len() != header_len {
            return Err(DropReason::HeaderLength);
        }
        if first && self.chunk_offset != 0 {
            return Err(DropReason::ChunkOffset);
        }
        if self.payload_length > limits.max_payload_bytes {
            return Err(DropReason::PayloadTooLarge);
        }
        if self.chunk_length > limits.max_chunk_bytes
            || self.payload_bytes.len() != self.chunk_length as usize
        {
            return Err(DropReason::ChunkLength);
        }
        // An empty slice only makes sense as the one chunk of an empty payload.
        if self.chunk_length == 0 && (self.payload_length != 0 || self.chunk_count != 1) {
            return Err(DropReason::ChunkLength);
        }
        if self.end() > u64::from(self.payload_length) {
            return Err(DropReason::ChunkOffset);
        }
        if limits.integrity_crc32c {
            let computed = crc32c(&[self.header_bytes, self.payload_bytes]);
            if self.payload_crc32c == 0 || self.payload_crc32c != computed {
                return Err(DropReason::Crc);
            }
        }
        Ok(())
    }
}
