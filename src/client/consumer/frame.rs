//! Accepting a frame (Wire Spec §8.2, §8.3, §10.2.1, §15.3, §15.4, §15.18, §15.21): a
//! descriptor becomes a [`Frame`] only if its epoch is the mapped one, its slot's
//! `seq_commit` is committed for exactly its sequence before and after the slot is copied,
//! every header field passes the v1.2 rules, and the seqlock still holds after the
//! application has read the payload. Anything else is a counted drop. No heap allocation:
//! the slot is copied to the stack (up to the reserved pad, which consumers ignore) and the
//! payload is a view into the mapped pool. A tensor description identical to the last one
//! that passed is not decoded and checked again (see [`TensorCache`]).

use super::counters::{ConsumerCounters, DropReason};
use crate::client::mapping::MappedEpoch;
use crate::client::tensor::{check_extent, tensor_layout};
use crate::protocol::codec::MessageHeader;
use crate::protocol::control::{
    self, frame_descriptor, tensor_header, FrameDescriptor, FrameDescriptorDecoder, TensorHeader,
};
use crate::shm::layout::{
    decode_slot_fields, decode_slot_tensor, header_index, slot_tensor_bytes, SlotFields,
    HEADER_SLOT_BYTES, TENSOR_HEADER_LEN, TENSOR_HEADER_USED_LEN,
};
use crate::shm::seqlock::SeqReadError;

/// One accepted frame, valid for the duration of the application's closure.
#[derive(Debug)]
pub struct Frame<'a> {
    seq: u64,
    epoch: u64,
    stream_id: u32,
    header_index: u32,
    descriptor_timestamp_ns: Option<u64>,
    fields: SlotFields,
    tensor: &'a TensorHeader,
    payload: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Logical sequence (`FrameDescriptor.seq` = `seq_commit >> 1`).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Epoch of the mapped regions the frame was read from.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Stream id.
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// Header ring index (`seq & (nslots - 1)`), also the payload slot in v1.2.
    pub fn header_index(&self) -> u32 {
        self.header_index
    }

    /// The validated tensor description. Its reserved `pad` reads as zeros: consumers
    /// ignore those bytes (Wire Spec §8.2) and do not copy them out of the slot.
    pub fn tensor(&self) -> &'a TensorHeader {
        self.tensor
    }

    /// Capture timestamp from the slot header (`SlotHeader.timestamp_ns`).
    pub fn timestamp_ns(&self) -> u64 {
        self.fields.timestamp_ns
    }

    /// Publish timestamp from the descriptor, when the producer set one.
    pub fn descriptor_timestamp_ns(&self) -> Option<u64> {
        self.descriptor_timestamp_ns
    }

    /// Metadata version the frame refers to.
    pub fn meta_version(&self) -> u32 {
        self.fields.meta_version
    }

    /// Payload pool the bytes live in.
    pub fn pool_id(&self) -> u16 {
        self.fields.pool_id
    }

    /// The payload, read in place from the mapped pool (`values_len_bytes` long).
    ///
    /// The producer may overwrite the slot while the closure runs; the consumer
    /// re-checks the seqlock afterwards and reports the frame as late if it did, so act
    /// on what was read only once `poll_frame` returned `Delivered`.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

/// What one `poll_frame` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramePoll<R> {
    /// No message was waiting.
    Empty,
    /// A message that is not a descriptor of this stream was consumed.
    Ignored,
    /// A descriptor of this stream was dropped (and counted).
    Dropped(DropReason),
    /// A frame was delivered; the closure's result.
    Delivered(R),
}

/// One message read from a descriptor stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DescriptorMessage {
    /// A decoded `FrameDescriptor`.
    Descriptor(FrameDescriptor),
    /// Some other message (streams may be multiplexed by template id).
    Other,
    /// A `FrameDescriptor` header over bytes that do not decode.
    Malformed,
}

/// Classifies a message read from a descriptor stream.
pub(crate) fn decode_descriptor(bytes: &[u8]) -> DescriptorMessage {
    let Ok(header) = MessageHeader::read(bytes) else {
        return DescriptorMessage::Malformed;
    };
    if header.schema_id != control::SCHEMA_ID || header.template_id != frame_descriptor::TEMPLATE_ID
    {
        return DescriptorMessage::Other;
    }
    match FrameDescriptorDecoder::wrap(bytes) {
        Ok(d) => DescriptorMessage::Descriptor(d.to_value()),
        Err(_) => DescriptorMessage::Malformed,
    }
}

/// Sequence bookkeeping of one mapped epoch: gaps, duplicates, and the resync point.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqTracker {
    last_seq: Option<u64>,
    resync_below: u64,
    max_gap: Option<u64>,
}

impl SeqTracker {
    pub(crate) fn new(max_gap: Option<u64>) -> Self {
        Self {
            max_gap,
            ..Self::default()
        }
    }

    /// Forgets the epoch's sequences (after a remap: the new producer starts afresh).
    pub(crate) fn reset(&mut self) {
        self.last_seq = None;
        self.resync_below = 0;
    }

    /// The highest sequence seen in this epoch.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Records a descriptor's sequence: counts the sequences skipped since the last one
    /// as `drops_gap`; refuses a sequence that is not after the last one, and one below
    /// the resync point.
    pub(crate) fn observe(
        &mut self,
        seq: u64,
        counters: &mut ConsumerCounters,
    ) -> Result<(), DropReason> {
        if let Some(last) = self.last_seq {
            if seq <= last {
                return Err(DropReason::Duplicate);
            }
            counters.drops_gap += seq - last - 1;
        }
        self.last_seq = Some(seq);
        if seq < self.resync_below {
            return Err(DropReason::Resync);
        }
        Ok(())
    }

    /// The slot of `seq` already holds `found`: if the producer is more than the allowed
    /// gap ahead, skip every descriptor older than `found` (§15.4 "drop to latest").
    pub(crate) fn on_overwritten(&mut self, seq: u64, found: u64, counters: &mut ConsumerCounters) {
        if let Some(max) = self.max_gap {
            if found.saturating_sub(seq) > max && found > self.resync_below {
                self.resync_below = found;
                counters.resyncs += 1;
            }
        }
    }
}

/// The last tensor description that passed the §8.2 checks, keyed by its encoded bytes
/// up to the reserved pad. A stream usually describes every frame alike, so a frame whose
/// bytes match is not decoded and checked again: only its fit in the payload is.
#[derive(Debug, Clone, Default)]
pub(crate) struct TensorCache {
    entry: Option<CachedTensor>,
}

#[derive(Debug, Clone)]
struct CachedTensor {
    key: [u8; TENSOR_HEADER_USED_LEN],
    header: TensorHeader,
    extent_bytes: u64,
}

impl TensorCache {
    /// The tensor description in `bytes` (a slot's embedded header), checked for a payload
    /// of `values_len` bytes.
    fn resolve(
        &mut self,
        bytes: &[u8; TENSOR_HEADER_LEN],
        values_len: u32,
    ) -> Result<&TensorHeader, DropReason> {
        let key = &bytes[..TENSOR_HEADER_USED_LEN];
        if !matches!(&self.entry, Some(entry) if entry.key[..] == *key) {
            let mut header = decode_slot_tensor(bytes).map_err(|_| DropReason::HeaderFormat)?;
            // Reserved: consumers ignore it (§8.2), and only part of it was copied.
            header.pad = [0; tensor_header::PAD_LEN];
            let layout = tensor_layout(&header).map_err(|_| DropReason::Tensor)?;
            let mut cached_key = [0u8; TENSOR_HEADER_USED_LEN];
            cached_key.copy_from_slice(key);
            self.entry = Some(CachedTensor {
                key: cached_key,
                header,
                extent_bytes: layout.extent_bytes,
            });
        }
        let entry = self.entry.as_ref().expect("the entry was filled above");
        check_extent(entry.extent_bytes, values_len as usize).map_err(|_| DropReason::Tensor)?;
        Ok(&entry.header)
    }
}

/// Runs the acceptance algorithm for one descriptor against the mapped regions, calling
/// `f` with the frame once every check passed; `Err` names the (already counted by the
/// caller) reason the frame was dropped. `f`'s result is discarded if the slot was
/// overwritten while it ran.
pub(crate) fn read_frame<R>(
    mapped: &MappedEpoch,
    descriptor: &FrameDescriptor,
    seqs: &mut SeqTracker,
    tensors: &mut TensorCache,
    counters: &mut ConsumerCounters,
    f: impl FnOnce(&Frame<'_>) -> R,
) -> Result<R, DropReason> {
    if descriptor.epoch != mapped.epoch() {
        return Err(DropReason::Epoch);
    }
    let seq = descriptor.seq;
    seqs.observe(seq, counters)?;
    let index = header_index(seq, mapped.header_nslots());
    mapped.prefetch_payloads(index);
    let seq_commit = mapped.seq_commit(index);
    let first = seq_commit.begin_read(seq).map_err(|e| match e {
        SeqReadError::NotCommitted { .. } => DropReason::NotCommitted,
        SeqReadError::Stale { .. } => DropReason::Stale,
        SeqReadError::Overwritten { found, .. } => {
            seqs.on_overwritten(seq, found, counters);
            DropReason::Late
        }
        SeqReadError::Changed { .. } => DropReason::Late,
    })?;
    let mut image = [0u8; HEADER_SLOT_BYTES];
    mapped.read_slot_used(index, &mut image);
    // Re-check before judging the fields, so a torn copy counts as late rather than as
    // whichever field happened to be half-written.
    seq_commit
        .validate_read(first)
        .map_err(|_| DropReason::Late)?;
    let (fields, payload) = check_slot(mapped, index, &image)?;
    let tensor = tensors.resolve(slot_tensor_bytes(&image), fields.values_len_bytes)?;
    let frame = Frame {
        seq,
        epoch: descriptor.epoch,
        stream_id: descriptor.stream_id,
        header_index: index,
        descriptor_timestamp_ns: descriptor.timestamp_ns,
        fields,
        tensor,
        payload,
    };
    let result = f(&frame);
    // The payload was read in place: only a seqlock that still holds makes it valid.
    seq_commit
        .validate_read(first)
        .map_err(|_| DropReason::Late)?;
    Ok(result)
}

/// Validates a copied slot image's fields against the mapped geometry (§8.2, §9, §10.2.1,
/// §15.5) and returns them with the payload view; the tensor description is checked by
/// [`TensorCache::resolve`].
fn check_slot<'m>(
    mapped: &'m MappedEpoch,
    index: u32,
    image: &[u8; HEADER_SLOT_BYTES],
) -> Result<(SlotFields, &'m [u8]), DropReason> {
    let (_, fields) = decode_slot_fields(image).map_err(|_| DropReason::HeaderFormat)?;
    if fields.payload_slot != index {
        return Err(DropReason::PayloadSlot);
    }
    let pool = mapped.pool(fields.pool_id).ok_or(DropReason::Pool)?;
    if fields.payload_slot >= pool.grant.nslots {
        return Err(DropReason::PayloadSlot);
    }
    if fields.values_len_bytes > pool.grant.stride_bytes {
        return Err(DropReason::Length);
    }
    if fields.payload_offset != 0 {
        return Err(DropReason::PayloadOffset);
    }
    let payload = pool
        .slot_bytes(fields.payload_slot, fields.values_len_bytes as usize)
        .ok_or(DropReason::Length)?;
    Ok((fields, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::QosConsumer;

    #[test]
    fn gaps_count_missing_sequences_and_duplicates_are_refused() {
        let mut c = ConsumerCounters::default();
        let mut s = SeqTracker::new(None);
        assert_eq!(s.observe(5, &mut c), Ok(()), "the first sequence is no gap");
        assert_eq!(s.observe(6, &mut c), Ok(()));
        assert_eq!(s.observe(9, &mut c), Ok(()));
        assert_eq!(c.drops_gap, 2);
        assert_eq!(s.observe(9, &mut c), Err(DropReason::Duplicate));
        assert_eq!(s.observe(3, &mut c), Err(DropReason::Duplicate));
        assert_eq!(s.last_seq(), Some(9));
        s.reset();
        assert_eq!(s.observe(0, &mut c), Ok(()), "a new epoch starts afresh");
        assert_eq!(c.drops_gap, 2);
    }

    #[test]
    fn falling_too_far_behind_skips_to_the_newest_frame() {
        let mut c = ConsumerCounters::default();
        let mut s = SeqTracker::new(Some(16));
        assert_eq!(s.observe(10, &mut c), Ok(()));
        s.on_overwritten(10, 20, &mut c);
        assert_eq!(c.resyncs, 0, "10 behind is within the allowed gap");
        s.on_overwritten(10, 100, &mut c);
        assert_eq!(c.resyncs, 1);
        assert_eq!(s.observe(11, &mut c), Err(DropReason::Resync));
        assert_eq!(s.observe(99, &mut c), Err(DropReason::Resync));
        assert_eq!(s.observe(100, &mut c), Ok(()));
        assert_eq!(c.drops_gap, 87);
    }

    #[test]
    fn descriptor_stream_messages_are_classified() {
        let d = FrameDescriptor {
            stream_id: 7,
            epoch: 3,
            seq: 9,
            timestamp_ns: None,
            meta_version: Some(2),
            trace_id: None,
        };
        let mut buf = [0u8; 64];
        let len = d.encode(&mut buf).expect("fits");
        assert_eq!(
            decode_descriptor(&buf[..len]),
            DescriptorMessage::Descriptor(d)
        );
        assert_eq!(
            decode_descriptor(&buf[..len - 1]),
            DescriptorMessage::Malformed
        );
        assert_eq!(decode_descriptor(&buf[..4]), DescriptorMessage::Malformed);
        let qos = QosConsumer {
            stream_id: 7,
            consumer_id: 1,
            epoch: 3,
            last_seq_seen: 9,
            drops_gap: 0,
            drops_late: 0,
            mode: control::Mode::Stream,
        };
        let len = qos.encode(&mut buf).expect("fits");
        assert_eq!(decode_descriptor(&buf[..len]), DescriptorMessage::Other);
    }
}
