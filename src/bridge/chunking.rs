//! How a bridge sender cuts a frame into `BridgeFrameChunk`s (Bridge Spec v1.1 §5.1,
//! §5.2, §5.4). Sans-IO: [`ChunkPlan`] says how many chunks a payload needs and where each
//! one lies, and [`encode_chunk`] writes one chunk message into a buffer the caller owns
//! (an Aeron `try_claim` buffer, so a chunk is written once, straight into the term).

use super::assembly::{HEADER_BLOCK_LEN, MAX_CHUNK_COUNT};
use super::crc32c::crc32c;
use crate::protocol::bridge::{bridge_frame_chunk, Bool, BridgeFrameChunk};
use crate::protocol::codec::{EncodeError, MESSAGE_HEADER_LEN};

/// Room for Aeron's and the IP/UDP headers that §5.2 takes off the MTU.
pub const MTU_OVERHEAD: u32 = 128;

/// Why a chunk plan or a frame cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkingError {
    /// The MTU leaves no room for payload.
    #[error("bridge.mtu_bytes {mtu} leaves no payload room after {MTU_OVERHEAD} bytes of headers; use at least {}", MTU_OVERHEAD + 1)]
    MtuTooSmall {
        /// `bridge.mtu_bytes`.
        mtu: u32,
    },
    /// `bridge.chunk_bytes` or `bridge.max_chunk_bytes` is 0.
    #[error("bridge.chunk_bytes and bridge.max_chunk_bytes must be at least 1")]
    ZeroChunk,
    /// A chunk spec that does not lie inside the frame's payload.
    #[error("chunk at {offset}+{length} lies outside a payload of {payload} bytes")]
    OutsidePayload {
        /// Offset asked.
        offset: u32,
        /// Length asked.
        length: u32,
        /// Payload length.
        payload: usize,
    },
    /// The chunk did not fit the output buffer.
    #[error("encoding a chunk: {0}")]
    Encode(#[from] EncodeError),
    /// More than 65535 chunks would be needed (§5.2).
    #[error(
        "a payload of {payload} bytes needs more than {MAX_CHUNK_COUNT} chunks of {chunk} \
         bytes; raise bridge.mtu_bytes / bridge.chunk_bytes or send smaller frames"
    )]
    TooManyChunks {
        /// Payload length.
        payload: u32,
        /// Chunk size.
        chunk: u32,
    },
}

/// Where one chunk lies in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpec {
    /// 0-based index.
    pub index: u32,
    /// Chunks of the frame.
    pub count: u32,
    /// Offset in the payload.
    pub offset: u32,
    /// Slice length.
    pub length: u32,
}

/// The chunk size a sender uses (§5.2, §10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPlan {
    chunk_bytes: u32,
}

impl ChunkPlan {
    /// The plan for an MTU, an optional `bridge.chunk_bytes` and `bridge.max_chunk_bytes`:
    /// `min(chunk_bytes, mtu - 128, max_chunk_bytes)`.
    pub fn new(
        mtu_bytes: u32,
        chunk_bytes: Option<u32>,
        max_chunk_bytes: u32,
    ) -> Result<Self, ChunkingError> {
        if mtu_bytes <= MTU_OVERHEAD {
            return Err(ChunkingError::MtuTooSmall { mtu: mtu_bytes });
        }
        if chunk_bytes == Some(0) || max_chunk_bytes == 0 {
            return Err(ChunkingError::ZeroChunk);
        }
        let by_mtu = mtu_bytes - MTU_OVERHEAD;
        let chunk = chunk_bytes
            .unwrap_or(by_mtu)
            .min(by_mtu)
            .min(max_chunk_bytes)
            // chunkLength is at most 65535 on the wire.
            .min(u32::from(u16::MAX));
        Ok(Self { chunk_bytes: chunk })
    }

    /// Payload bytes per chunk.
    pub fn chunk_bytes(&self) -> u32 {
        self.chunk_bytes
    }

    /// The chunks of a payload of `payload_len` bytes, in order (one empty chunk for an
    /// empty payload).
    pub fn chunks(
        &self,
        payload_len: u32,
    ) -> Result<impl Iterator<Item = ChunkSpec> + Clone, ChunkingError> {
        let count = payload_len.div_ceil(self.chunk_bytes).max(1);
        if count > MAX_CHUNK_COUNT {
            return Err(ChunkingError::TooManyChunks {
                payload: payload_len,
                chunk: self.chunk_bytes,
            });
        }
        let size = self.chunk_bytes;
        Ok((0..count).map(move |index| {
            let offset = index * size;
            ChunkSpec {
                index,
                count,
                offset,
                length: size.min(payload_len - offset),
            }
        }))
    }
}

/// A committed source frame, as the sender read it.
#[derive(Debug, Clone, Copy)]
pub struct SourceFrame<'a> {
    /// Source stream id.
    pub stream_id: u32,
    /// Source epoch.
    pub epoch: u64,
    /// Frame identity (`seq_commit >> 1`).
    pub seq: u64,
    /// The source descriptor's trace id; 0 = absent (§5.2).
    pub trace_id: u64,
    /// The source `SlotHeader` block.
    pub header: &'a [u8; HEADER_BLOCK_LEN],
    /// The payload.
    pub payload: &'a [u8],
}

/// Encoded length of chunk `spec` of a frame (message header included), for a claim.
pub fn encoded_chunk_len(spec: ChunkSpec) -> usize {
    let header = if spec.index == 0 { HEADER_BLOCK_LEN } else { 0 };
    MESSAGE_HEADER_LEN
        + usize::from(bridge_frame_chunk::BLOCK_LENGTH)
        + 4
        + header
        + 4
        + spec.length as usize
}

/// Writes chunk `spec` of `frame` into `out` (at least [`encoded_chunk_len`] bytes);
/// returns the length written. With `integrity`, the CRC32C of §5.4 (over the header
/// block and the slice for chunk 0, the slice alone otherwise); without, 0.
pub fn encode_chunk(
    frame: &SourceFrame<'_>,
    spec: ChunkSpec,
    integrity: bool,
    out: &mut [u8],
) -> Result<usize, ChunkingError> {
    let start = spec.offset as usize;
    let slice = frame
        .payload
        .get(start..start + spec.length as usize)
        .ok_or(ChunkingError::OutsidePayload {
            offset: spec.offset,
            length: spec.length,
            payload: frame.payload.len(),
        })?;
    let first = spec.index == 0;
    let header: &[u8] = if first { frame.header } else { &[] };
    let crc = if integrity {
        crc32c(&[header, slice])
    } else {
        0
    };
    BridgeFrameChunk {
        stream_id: frame.stream_id,
        epoch: frame.epoch,
        seq: frame.seq,
        trace_id: (frame.trace_id != 0).then_some(frame.trace_id),
        chunk_index: spec.index,
        chunk_count: spec.count,
        chunk_offset: spec.offset,
        chunk_length: spec.length,
        payload_length: frame.payload.len() as u32,
        payload_crc32c: crc,
        header_included: if first { Bool::True } else { Bool::False },
        header_bytes: header,
        payload_bytes: slice,
    }
    .encode(out)
    .map_err(ChunkingError::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::assembly::{AssemblyLimits, Chunk, FrameStore, Outcome, StreamAssembler};
    use crate::protocol::bridge::BridgeFrameChunkDecoder;
    use proptest::prelude::*;

    #[test]
    fn the_chunk_size_is_the_smallest_of_the_settings_and_the_mtu_bound() {
        assert_eq!(
            ChunkPlan::new(1408, None, 65535).unwrap().chunk_bytes(),
            1280
        );
        assert_eq!(
            ChunkPlan::new(1408, Some(1000), 65535)
                .unwrap()
                .chunk_bytes(),
            1000
        );
        assert_eq!(
            ChunkPlan::new(1408, Some(4000), 65535)
                .unwrap()
                .chunk_bytes(),
            1280
        );
        assert_eq!(
            ChunkPlan::new(65504, None, 8192).unwrap().chunk_bytes(),
            8192
        );
        assert_eq!(
            ChunkPlan::new(128, None, 65535),
            Err(ChunkingError::MtuTooSmall { mtu: 128 })
        );
        assert_eq!(
            ChunkPlan::new(1408, Some(0), 65535),
            Err(ChunkingError::ZeroChunk)
        );
    }

    #[test]
    fn chunks_cover_the_payload_in_order_and_an_empty_one_is_one_chunk() {
        let plan = ChunkPlan::new(1128, None, 65535).unwrap();
        let specs: Vec<ChunkSpec> = plan.chunks(2500).unwrap().collect();
        assert_eq!(
            specs
                .iter()
                .map(|s| (s.index, s.offset, s.length))
                .collect::<Vec<_>>(),
            [(0, 0, 1000), (1, 1000, 1000), (2, 2000, 500)]
        );
        assert!(specs.iter().all(|s| s.count == 3));
        let empty: Vec<ChunkSpec> = plan.chunks(0).unwrap().collect();
        assert_eq!(
            empty,
            [ChunkSpec {
                index: 0,
                count: 1,
                offset: 0,
                length: 0
            }]
        );
        let small = ChunkPlan::new(129, None, 65535).unwrap();
        assert!(matches!(
            small.chunks(65_536),
            Err(ChunkingError::TooManyChunks {
                payload: 65_536,
                chunk: 1
            })
        ));
    }

    /// Payload memory for the round trip.
    #[derive(Default)]
    struct Buffers(Vec<Vec<u8>>);

    impl FrameStore for Buffers {
        type Slot = usize;
        fn reserve(&mut self, _seq: u64, len: u32) -> Option<usize> {
            self.0.push(vec![0; len as usize]);
            Some(self.0.len() - 1)
        }
        fn write(&mut self, slot: &usize, offset: u32, bytes: &[u8]) {
            self.0[*slot][offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        }
        fn read(&self, slot: &usize, offset: u32, len: u32) -> &[u8] {
            &self.0[*slot][offset as usize..(offset + len) as usize]
        }
        fn release(&mut self, _slot: usize) {}
    }

    proptest! {
        /// What the sender cuts, the receiver assembles byte for byte, in any order, with
        /// the header, the trace id and (with integrity) a CRC the receiver accepts.
        #[test]
        fn sender_chunks_assemble_into_the_same_frame(
            len in 0usize..20_000,
            mtu in 129u32..3000,
            integrity in any::<bool>(),
            trace_id in any::<u64>(),
            rotate in any::<usize>(),
        ) {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
            let header = [0x5Au8; HEADER_BLOCK_LEN];
            let frame = SourceFrame { stream_id: 7, epoch: 3, seq: 99, trace_id, header: &header, payload: &payload };
            let plan = ChunkPlan::new(mtu, None, 65535).unwrap();
            let mut messages: Vec<Vec<u8>> = plan.chunks(len as u32).unwrap().map(|spec| {
                let mut out = vec![0u8; encoded_chunk_len(spec)];
                let n = encode_chunk(&frame, spec, integrity, &mut out).unwrap();
                prop_assert_eq!(n, out.len());
                Ok(out)
            }).collect::<Result<_, TestCaseError>>()?;
            let n = messages.len();
            messages.rotate_left(rotate % n);
            let mut store = Buffers::default();
            let mut a = StreamAssembler::new(7, AssemblyLimits {
                max_payload_bytes: 1 << 20,
                max_chunk_bytes: plan.chunk_bytes(),
                timeout_ns: 1,
                max_frames_in_flight: 1,
                integrity_crc32c: integrity,
            });
            a.on_source_announce(3, &mut store);
            let mut complete = None;
            for m in &messages {
                let d = BridgeFrameChunkDecoder::wrap(m).unwrap();
                let chunk = Chunk::from_decoder(&d).unwrap();
                match a.on_chunk(&chunk, 0, &mut store) {
                    Outcome::Complete(f) => complete = Some(f),
                    Outcome::Accepted => {}
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            let f = complete.expect("complete");
            prop_assert_eq!(&store.0[f.slot], &payload);
            prop_assert_eq!(f.header, header);
            prop_assert_eq!(f.trace_id, trace_id);
            prop_assert_eq!((f.epoch, f.seq), (3, 99));
        }
    }
}
