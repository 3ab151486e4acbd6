//! Zero-copy publishing: a claimed payload slot the application fills in place, then
//! commits (Wire Spec §15.18 steps 4–8 happen on commit).

use super::descriptors::DescriptorFanout;
use super::error::PublishError;
use super::events::ProducerCounters;
use super::stamp::DescriptorStamp;
use super::writer::{EpochWriter, SlotClaim};
use crate::protocol::codec::MESSAGE_HEADER_LEN;
use crate::protocol::control::{frame_descriptor, FrameDescriptor, TensorHeader};

/// Encoded length of a `FrameDescriptor` with its message header.
const DESCRIPTOR_LEN: usize = MESSAGE_HEADER_LEN + frame_descriptor::BLOCK_LENGTH as usize;

/// A payload slot taken for one frame: its sequence is used and its header is IN-PROGRESS.
/// Fill [`FrameClaim::payload_mut`], then [`FrameClaim::commit`]. Dropping it without a
/// commit leaves the slot IN-PROGRESS: consumers drop that sequence (a gap).
///
/// The slot holds whatever an earlier frame left there; write every byte you publish.
pub struct FrameClaim<'a> {
    writer: &'a mut EpochWriter,
    descriptors: Option<&'a DescriptorFanout>,
    counters: &'a mut ProducerCounters,
    slot: SlotClaim,
    committed: bool,
}

impl<'a> FrameClaim<'a> {
    #[inline]
    pub(super) fn new(
        writer: &'a mut EpochWriter,
        descriptors: Option<&'a DescriptorFanout>,
        counters: &'a mut ProducerCounters,
        slot: SlotClaim,
    ) -> Self {
        Self {
            writer,
            descriptors,
            counters,
            slot,
            committed: false,
        }
    }

    /// The frame's sequence number.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.slot.seq
    }

    /// Payload length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.slot.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.len == 0
    }

    /// The payload bytes, in shared memory.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.writer.payload_mut(&self.slot)
    }

    /// Writes the header, commits the slot and announces the frame; returns its sequence.
    /// An invalid `tensor` abandons the claim (the slot stays IN-PROGRESS).
    #[inline]
    pub fn commit(self, tensor: &TensorHeader, timestamp_ns: u64) -> Result<u64, PublishError> {
        self.commit_stamped(tensor, timestamp_ns, DescriptorStamp::NONE)
    }

    /// [`FrameClaim::commit`] with a trace id and/or publish timestamp in the frame's
    /// descriptor (Wire Spec §10.2.1; 0 = absent).
    pub fn commit_stamped(
        mut self,
        tensor: &TensorHeader,
        timestamp_ns: u64,
        stamp: DescriptorStamp,
    ) -> Result<u64, PublishError> {
        if let Err(error) = self.writer.check_tensor(tensor, self.slot.len) {
            self.counters.invalid_tensors += 1;
            return Err(error.into());
        }
        self.committed = true;
        Ok(finish(
            self.writer,
            self.descriptors,
            self.counters,
            &self.slot,
            timestamp_ns,
            stamp,
        ))
    }
}

impl Drop for FrameClaim<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.counters.claims_abandoned += 1;
        }
    }
}

impl std::fmt::Debug for FrameClaim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameClaim")
            .field("seq", &self.slot.seq)
            .field("len", &self.slot.len)
            .finish_non_exhaustive()
    }
}

/// Steps 5–8 of §15.18 for a claimed slot whose payload is written and whose tensor
/// description has just passed [`EpochWriter::check_tensor`]: header, COMMITTED, then the
/// descriptor on every descriptor publication. Returns the sequence.
pub(super) fn finish(
    writer: &mut EpochWriter,
    descriptors: Option<&DescriptorFanout>,
    counters: &mut ProducerCounters,
    slot: &SlotClaim,
    timestamp_ns: u64,
    stamp: DescriptorStamp,
) -> u64 {
    writer.commit(slot, timestamp_ns);
    counters.frames_published += 1;
    if let Some(descriptors) = descriptors {
        let grant = writer.epoch().grant();
        let descriptor = FrameDescriptor {
            stream_id: grant.stream_id,
            epoch: grant.epoch,
            seq: slot.seq,
            timestamp_ns: stamp.wire_timestamp_ns(),
            // 0 (no metadata) travels as the null value, as before metadata existed.
            meta_version: Some(writer.meta_version()).filter(|v| *v != 0),
            trace_id: stamp.wire_trace_id(),
        };
        let mut buf = [0u8; DESCRIPTOR_LEN];
        // Cannot fail: the buffer is exactly the fixed encoded length.
        if let Ok(len) = descriptor.encode(&mut buf) {
            descriptors.offer(&buf[..len], timestamp_ns, counters);
        }
    }
    slot.seq
}
