//! Publishing a frame while it is filled (Wire Spec §10.2.2): [`FrameFill`] is a claim
//! whose header is written before the first byte (so a consumer can judge the layout of
//! the prefix while the slot is still IN-PROGRESS), that sends STARTED when it is taken,
//! a throttled PROGRESS as the fill advances, and COMPLETE after the commit, on the
//! control stream, and only while some consumer said `supports_progress`. The commit
//! itself, and the `FrameDescriptor`, are exactly those of any frame. Nothing here
//! allocates: one fixed 37-byte encode buffer per message.

use super::claim;
use super::descriptors::DescriptorFanout;
use super::events::ProducerCounters;
use super::writer::{EpochWriter, SlotClaim};
use super::DescriptorStamp;
use crate::client::link::ControlLink;
use crate::client::progress::{ProgressPolicy, ProgressThrottle};
use crate::protocol::codec::MESSAGE_HEADER_LEN;
use crate::protocol::control::{frame_progress, FrameProgress, FrameProgressState};
use crate::transport::OfferOutcome;

/// Encoded length of a `FrameProgress` with its message header.
const PROGRESS_LEN: usize = MESSAGE_HEADER_LEN + frame_progress::BLOCK_LENGTH as usize;

/// Why a progress report was refused (the frame itself is unaffected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProgressError {
    /// More bytes reported filled than the frame holds (§10.2.2: `payload_bytes_filled
    /// <= values_len_bytes`).
    #[error("{filled} bytes reported filled, the frame holds {len}")]
    BeyondLength {
        /// Reported.
        filled: u64,
        /// Frame length.
        len: u64,
    },
    /// Fewer bytes than reported before (§10.2.2: monotonic within a frame).
    #[error("{filled} bytes reported filled after {reported}")]
    Regressed {
        /// Reported now.
        filled: u64,
        /// Reported before.
        reported: u64,
    },
}

/// Where progress messages go and under which throttle.
pub(super) struct ProgressOutlet<'a> {
    pub(super) link: Option<&'a ControlLink>,
    pub(super) policy: Option<ProgressPolicy>,
    pub(super) throttle: &'a mut ProgressThrottle,
}

/// A frame being filled in place, with progress published as it goes (see the module
/// docs). Fill [`FrameFill::payload_mut`], report with [`FrameFill::progress`], then
/// [`FrameFill::commit`]. Dropped without a commit, the slot stays IN-PROGRESS and
/// consumers drop the sequence, as with [`super::FrameClaim`].
pub struct FrameFill<'a> {
    writer: &'a mut EpochWriter,
    descriptors: Option<&'a DescriptorFanout>,
    counters: &'a mut ProducerCounters,
    outlet: ProgressOutlet<'a>,
    slot: SlotClaim,
    /// Row (column) stride for the unit delta, from the tensor's progress unit.
    unit_stride: u64,
    filled: u64,
    committed: bool,
}

impl<'a> FrameFill<'a> {
    /// Takes over a claimed slot whose header is written; sends STARTED.
    pub(super) fn start(
        writer: &'a mut EpochWriter,
        descriptors: Option<&'a DescriptorFanout>,
        counters: &'a mut ProducerCounters,
        outlet: ProgressOutlet<'a>,
        slot: SlotClaim,
        unit_stride: u64,
        now_ns: u64,
    ) -> Self {
        let mut fill = Self {
            writer,
            descriptors,
            counters,
            outlet,
            slot,
            unit_stride,
            filled: 0,
            committed: false,
        };
        if fill.outlet.policy.is_some() {
            fill.outlet.throttle.start(now_ns);
            fill.send(FrameProgressState::Started, 0);
        }
        fill
    }

    /// The frame's sequence number.
    pub fn seq(&self) -> u64 {
        self.slot.seq
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.slot.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.len == 0
    }

    /// The payload bytes, in shared memory. Write them in order from the start: consumers
    /// read `[0, filled)` (or whole rows of it) once told.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.writer.payload_mut(&self.slot)
    }

    /// The first `filled` bytes are written as of `now_ns` (CLOCK_MONOTONIC): sends a
    /// PROGRESS if the throttle lets one through now (returns whether it did). Reports
    /// must not go back, nor beyond the frame; a refused report changes nothing.
    pub fn progress(&mut self, filled: u64, now_ns: u64) -> Result<bool, ProgressError> {
        let len = self.slot.len as u64;
        if filled > len {
            return Err(ProgressError::BeyondLength { filled, len });
        }
        if filled < self.filled {
            return Err(ProgressError::Regressed {
                filled,
                reported: self.filled,
            });
        }
        self.filled = filled;
        let Some(policy) = self.outlet.policy else {
            return Ok(false);
        };
        if !self
            .outlet
            .throttle
            .due(&policy, filled, self.unit_stride, now_ns)
        {
            self.counters.progress_throttled += 1;
            return Ok(false);
        }
        self.outlet.throttle.sent(filled, now_ns);
        Ok(self.send(FrameProgressState::Progress, filled))
    }

    /// Commits the frame (capture time `timestamp_ns`) and announces it with its
    /// `FrameDescriptor`, then sends COMPLETE; returns its sequence.
    pub fn commit(self, timestamp_ns: u64) -> u64 {
        self.commit_stamped(timestamp_ns, DescriptorStamp::NONE)
    }

    /// [`FrameFill::commit`] with a trace id and publish time in the descriptor (Wire
    /// Spec §10.2.1; 0 = absent).
    pub fn commit_stamped(mut self, timestamp_ns: u64, stamp: DescriptorStamp) -> u64 {
        self.committed = true;
        let seq = claim::finish(
            self.writer,
            self.descriptors,
            self.counters,
            &self.slot,
            timestamp_ns,
            stamp,
        );
        if self.outlet.policy.is_some() {
            self.send(FrameProgressState::Complete, self.slot.len as u64);
        }
        seq
    }

    /// Offers one `FrameProgress`; never blocks, counts what could not go out.
    fn send(&mut self, state: FrameProgressState, filled: u64) -> bool {
        let Some(link) = self.outlet.link else {
            return false;
        };
        let grant = self.writer.epoch().grant();
        let message = FrameProgress {
            stream_id: grant.stream_id,
            epoch: grant.epoch,
            seq: self.slot.seq,
            payload_bytes_filled: filled,
            state,
        };
        let mut buf = [0u8; PROGRESS_LEN];
        // Cannot fail: the buffer is exactly the fixed encoded length.
        let Ok(len) = message.encode(&mut buf) else {
            return false;
        };
        match link.offer(&buf[..len]) {
            Ok(OfferOutcome::Published { .. }) => {
                self.counters.progress_sent += 1;
                true
            }
            _ => {
                self.counters.progress_not_sent += 1;
                false
            }
        }
    }
}

impl Drop for FrameFill<'_> {
    fn drop(&mut self) {
        if !self.committed {
            self.counters.claims_abandoned += 1;
        }
    }
}

impl std::fmt::Debug for FrameFill<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameFill")
            .field("seq", &self.slot.seq)
            .field("len", &self.slot.len)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}
