//! What a bridge receiver checks of an assembled frame before it writes the frame's header
//! into its local ring (Bridge Spec v1.1 §6 steps 1, 4–7 and 9): the source header block
//! against the frame's identity, length and the forwarded source announce, and the local
//! pool it lands in. Sans-IO: pure functions over bytes and pool tables.

use super::assembly::HEADER_BLOCK_LEN;
use crate::client::tensor::{validate_tensor_header, TensorError};
use crate::shm::layout::{decode_slot, SlotContents, SlotFormatError};

/// A pool as an announce lists it: id and slot stride.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStride {
    /// `pool_id`.
    pub pool_id: u16,
    /// `stride_bytes`.
    pub stride_bytes: u32,
}

/// Why an assembled frame is not re-materialized (each one is a counted drop).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RematerializeError {
    /// The header block does not decode as a v1.2 slot with a `TensorHeader` (§6 step 4).
    #[error("header block: {0}")]
    HeaderFormat(#[from] SlotFormatError),
    /// `seq_commit >> 1` is not the chunks' `seq`, or the slot was not committed (§6).
    #[error("header seq_commit {seq_commit:#x} is not the committed frame {seq}")]
    SeqMismatch {
        /// In the header block.
        seq_commit: u64,
        /// In the chunks.
        seq: u64,
    },
    /// `values_len_bytes` is not the payload length (§6 step 4).
    #[error("values_len_bytes {values_len} is not the payload length {payload_length}")]
    ValuesLen {
        /// In the header.
        values_len: u32,
        /// In the chunks.
        payload_length: u32,
    },
    /// `payload_offset` is not 0 (v1.2, §6 step 4).
    #[error("payload_offset {0} is not 0")]
    PayloadOffset(u32),
    /// The tensor description is outside local limits or does not fit (§6 step 4).
    #[error("tensor header: {0}")]
    Tensor(#[from] TensorError),
    /// `pool_id` is not a pool of the source announce (§6 step 5).
    #[error("pool_id {0} is not in the source announce")]
    UnknownSourcePool(u16),
    /// The payload is longer than the source pool's stride (§6 step 6).
    #[error(
        "payload of {payload_length} bytes exceeds source pool {pool_id}'s stride {stride_bytes}"
    )]
    ExceedsSourceStride {
        /// Source pool.
        pool_id: u16,
        /// Its stride.
        stride_bytes: u32,
        /// Payload length.
        payload_length: u32,
    },
}

/// §6 steps 1 and 4–6: the source slot of an assembled frame `seq` with `payload_length`
/// bytes, checked against the pools of the most recent forwarded source announce.
/// Returns the slot's contents; the receiver then overrides `pool_id` and `payload_slot`
/// with its own (step 9) and keeps everything else.
pub fn check_source_header(
    header: &[u8; HEADER_BLOCK_LEN],
    seq: u64,
    payload_length: u32,
    source_pools: &[PoolStride],
) -> Result<SlotContents, RematerializeError> {
    let (seq_commit, contents) = decode_slot(header)?;
    if seq_commit >> 1 != seq || seq_commit & 1 != 0 {
        return Err(RematerializeError::SeqMismatch { seq_commit, seq });
    }
    if contents.values_len_bytes != payload_length {
        return Err(RematerializeError::ValuesLen {
            values_len: contents.values_len_bytes,
            payload_length,
        });
    }
    if contents.payload_offset != 0 {
        return Err(RematerializeError::PayloadOffset(contents.payload_offset));
    }
    validate_tensor_header(&contents.tensor, payload_length as usize)?;
    let pool = source_pools
        .iter()
        .find(|p| p.pool_id == contents.pool_id)
        .ok_or(RematerializeError::UnknownSourcePool(contents.pool_id))?;
    if payload_length > pool.stride_bytes {
        return Err(RematerializeError::ExceedsSourceStride {
            pool_id: pool.pool_id,
            stride_bytes: pool.stride_bytes,
            payload_length,
        });
    }
    Ok(contents)
}

/// §6 step 7: the local pool a payload of `payload_length` bytes goes to: the one with the
/// smallest stride that holds it; `None` when none does (the frame is dropped).
pub fn select_local_pool(local_pools: &[PoolStride], payload_length: u32) -> Option<PoolStride> {
    local_pools
        .iter()
        .filter(|p| p.stride_bytes >= payload_length)
        .min_by_key(|p| (p.stride_bytes, p.pool_id))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tensor::bytes_header;
    use crate::protocol::control::Dtype;
    use crate::shm::layout::encode_slot;

    const POOLS: [PoolStride; 2] = [
        PoolStride {
            pool_id: 1,
            stride_bytes: 4096,
        },
        PoolStride {
            pool_id: 2,
            stride_bytes: 65536,
        },
    ];

    fn slot(seq: u64, len: u32, pool_id: u16) -> [u8; HEADER_BLOCK_LEN] {
        encode_slot(
            seq << 1,
            &SlotContents {
                values_len_bytes: len,
                payload_slot: 5,
                pool_id,
                payload_offset: 0,
                timestamp_ns: 77,
                meta_version: 3,
                tensor: bytes_header(len as usize).expect("a bytes header"),
            },
        )
    }

    #[test]
    fn a_well_formed_source_slot_passes_with_its_fields() {
        let contents = check_source_header(&slot(9, 5000, 2), 9, 5000, &POOLS).expect("valid");
        assert_eq!(
            (
                contents.timestamp_ns,
                contents.meta_version,
                contents.pool_id
            ),
            (77, 3, 2)
        );
    }

    #[test]
    fn each_step_of_section_6_refuses_what_it_must() {
        let err = |h: [u8; HEADER_BLOCK_LEN], seq, len| check_source_header(&h, seq, len, &POOLS);
        assert!(matches!(
            err(slot(9, 5000, 2), 8, 5000),
            Err(RematerializeError::SeqMismatch { .. })
        ));
        let mut in_progress = slot(9, 5000, 2);
        in_progress[0] |= 1;
        assert!(matches!(
            err(in_progress, 9, 5000),
            Err(RematerializeError::SeqMismatch { .. })
        ));
        assert!(matches!(
            err(slot(9, 5000, 2), 9, 5001),
            Err(RematerializeError::ValuesLen { .. })
        ));
        assert_eq!(
            err(slot(9, 5000, 3), 9, 5000),
            Err(RematerializeError::UnknownSourcePool(3))
        );
        assert!(matches!(
            err(slot(9, 5000, 1), 9, 5000),
            Err(RematerializeError::ExceedsSourceStride { pool_id: 1, .. })
        ));
        let mut offset = slot(9, 5000, 2);
        let at = crate::protocol::control::slot_header::PAYLOAD_OFFSET_OFFSET;
        offset[at] = 8;
        assert_eq!(
            err(offset, 9, 5000),
            Err(RematerializeError::PayloadOffset(8))
        );
        let mut not_tensor = slot(9, 5000, 2);
        not_tensor[crate::shm::layout::TENSOR_HEADER_OFFSET + 4] = 0xFF; // schema id
        assert!(matches!(
            err(not_tensor, 9, 5000),
            Err(RematerializeError::HeaderFormat(_))
        ));
        // A tensor that claims more bytes than the payload carries.
        let mut tensor = bytes_header(5000).expect("header");
        tensor.dtype = Dtype::Uint32;
        let big = encode_slot(
            9 << 1,
            &SlotContents {
                values_len_bytes: 5000,
                payload_slot: 0,
                pool_id: 2,
                payload_offset: 0,
                timestamp_ns: 0,
                meta_version: 0,
                tensor,
            },
        );
        assert!(matches!(
            check_source_header(&big, 9, 5000, &POOLS),
            Err(RematerializeError::Tensor(_))
        ));
    }

    #[test]
    fn the_smallest_local_pool_that_holds_the_payload_is_chosen() {
        assert_eq!(select_local_pool(&POOLS, 0).map(|p| p.pool_id), Some(1));
        assert_eq!(select_local_pool(&POOLS, 4096).map(|p| p.pool_id), Some(1));
        assert_eq!(select_local_pool(&POOLS, 4097).map(|p| p.pool_id), Some(2));
        assert_eq!(select_local_pool(&POOLS, 65537), None);
        assert_eq!(select_local_pool(&[], 1), None);
    }
}
