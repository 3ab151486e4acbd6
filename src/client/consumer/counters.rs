//! What the consumer counts (Wire Spec §10.4.1, §15.4): every descriptor of the stream
//! that is not delivered lands in exactly one drop counter, and sequence gaps are counted
//! apart, so `frames_delivered + frame_drops() + frames_rate_limited ==
//! descriptors_received` always holds.

use crate::client::progress::ProgressCounters;

/// Why a descriptor did not become a delivered frame; each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// No regions are mapped (before attach, after a lease ended).
    Unmapped,
    /// The producer's lease was revoked; frames wait for the epoch-bumped announce.
    AwaitingEpoch,
    /// The descriptor's epoch is not the mapped epoch.
    Epoch,
    /// The sequence is not after the last one seen (duplicate or regression).
    Duplicate,
    /// Skipped while catching up after falling more than `max_outstanding_seq_gap` behind.
    Resync,
    /// The slot is being written (`seq_commit` LSB 0).
    NotCommitted,
    /// The slot holds an older sequence than the descriptor (stale reuse).
    Stale,
    /// The slot was overwritten: a newer sequence at the first read, or `seq_commit`
    /// changed during the copy or while the application read the payload.
    Late,
    /// The embedded header is not a v1.2 `TensorHeader` (length, schema, template,
    /// version).
    HeaderFormat,
    /// `payload_slot` differs from the header index or is out of range.
    PayloadSlot,
    /// The pool id is not one of the mapped pools.
    Pool,
    /// `values_len_bytes` exceeds the pool stride.
    Length,
    /// `payload_offset` is not 0.
    PayloadOffset,
    /// The tensor header breaks a §8.2 rule (rank, dtype, order, strides, progress).
    Tensor,
    /// The consumer is in FALLBACK (`ConsumerConfig.use_shm = FALSE`, §15.12): it does
    /// not read shared memory.
    Fallback,
    /// The writer's sequence went back within the epoch (§15.2, §15.3): the slot of the
    /// last sequence seen holds a lower one. The consumer remaps.
    SeqRegression,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 16] = [
        Self::Unmapped,
        Self::AwaitingEpoch,
        Self::Epoch,
        Self::Duplicate,
        Self::Resync,
        Self::NotCommitted,
        Self::Stale,
        Self::Late,
        Self::HeaderFormat,
        Self::PayloadSlot,
        Self::Pool,
        Self::Length,
        Self::PayloadOffset,
        Self::Tensor,
        Self::Fallback,
        Self::SeqRegression,
    ];
}

/// A snapshot of the consumer's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerCounters {
    /// Descriptors of this stream read from the descriptor stream.
    pub descriptors_received: u64,
    /// Frames handed to the application and still intact after it returned.
    pub frames_delivered: u64,
    /// Frames that passed every check but were skipped to stay under `max_rate_hz`
    /// (RATE_LIMITED mode, Wire Spec §11): not drops, and not reported as drops in QoS.
    pub frames_rate_limited: u64,
    /// Sequences missing on a per-consumer descriptor stream while RATE_LIMITED: the
    /// producer held them back for `max_rate_hz` (Wire Spec §5), so they count here
    /// instead of in `drops_gap`.
    pub gaps_rate_limited: u64,
    /// Sequences missing between consecutive descriptors (not descriptors received).
    pub drops_gap: u64,
    /// See [`DropReason::Unmapped`].
    pub drops_unmapped: u64,
    /// See [`DropReason::AwaitingEpoch`].
    pub drops_awaiting_epoch: u64,
    /// See [`DropReason::Epoch`].
    pub drops_epoch: u64,
    /// See [`DropReason::Duplicate`].
    pub drops_duplicate: u64,
    /// See [`DropReason::Resync`].
    pub drops_resync: u64,
    /// See [`DropReason::NotCommitted`].
    pub drops_not_committed: u64,
    /// See [`DropReason::Stale`].
    pub drops_stale: u64,
    /// See [`DropReason::Late`].
    pub drops_late: u64,
    /// See [`DropReason::HeaderFormat`].
    pub drops_header_format: u64,
    /// See [`DropReason::PayloadSlot`].
    pub drops_payload_slot: u64,
    /// See [`DropReason::Pool`].
    pub drops_pool: u64,
    /// See [`DropReason::Length`].
    pub drops_length: u64,
    /// See [`DropReason::PayloadOffset`].
    pub drops_payload_offset: u64,
    /// See [`DropReason::Tensor`].
    pub drops_tensor: u64,
    /// See [`DropReason::Fallback`].
    pub drops_fallback: u64,
    /// See [`DropReason::SeqRegression`].
    pub drops_seq_regression: u64,
    /// Delivered frames whose tensor header had non-zero `dims`/`strides` at or beyond
    /// `ndims` (producers MUST zero-fill them, §8.2); the application saw them as 0.
    pub tensors_beyond_ndims: u64,
    /// Times the header ring's `activity_timestamp_ns` was older than the liveness
    /// timeout (§15.14); each unmapped the regions and reattached.
    pub activity_stale: u64,
    /// Times a `ConsumerConfig` put the consumer in FALLBACK (§15.12).
    pub fallbacks: u64,
    /// Times the consumer skipped ahead after falling too far behind.
    pub resyncs: u64,
    /// Descriptors for other streams sharing the descriptor stream (not ours to count).
    pub descriptors_other_stream: u64,
    /// Messages on the descriptor stream that are not valid descriptors.
    pub malformed_descriptors: u64,
    /// Leases granted.
    pub attaches: u64,
    /// Higher epochs seen while mapped (each is a hard remap boundary).
    pub epoch_changes: u64,
    /// Mappings made from an announce (epoch changes after the attach).
    pub remaps: u64,
    /// Grants or announces whose regions could not be mapped.
    pub map_failures: u64,
    /// Announces of this stream accepted (fresh, not lower than the highest epoch).
    pub announces_accepted: u64,
    /// Announces older than the freshness window (3× the announce period).
    pub announces_ignored_stale: u64,
    /// MONOTONIC announces stamped before this consumer joined (log replay guard).
    pub announces_ignored_before_join: u64,
    /// Announces with an epoch lower than the highest seen.
    pub announces_ignored_lower_epoch: u64,
    /// Announces that fail validation (URIs, slot size, pools, unknown clock domain).
    pub announces_invalid: u64,
    /// Attach responses refused as protocol errors (Driver Model §4.7a).
    pub protocol_errors: u64,
    /// `ConsumerHello` messages sent.
    pub hellos_sent: u64,
    /// `ConsumerConfig` messages for this consumer received.
    pub consumer_configs: u64,
    /// `QosConsumer` messages sent.
    pub qos_sent: u64,
    /// `QosConsumer` messages that could not be offered.
    pub qos_send_failures: u64,
    /// Events discarded because the application did not drain the queue.
    pub events_dropped: u64,
    /// Times the Aeron connection was rebuilt after losing the media driver.
    pub reconnects: u64,
    /// Metadata versions received complete (Wire Spec §10.3).
    pub metadata_updates: u64,
    /// Metadata messages of this stream dropped as malformed (truncated, inconsistent
    /// lengths, text that is not printable ASCII, empty or repeated keys).
    pub metadata_dropped_malformed: u64,
    /// Metadata messages of this stream dropped for exceeding a size bound.
    pub metadata_dropped_oversize: u64,
    /// What became of `FrameProgress` messages (all zero unless the consumer opted in).
    pub progress: ProgressCounters,
}

impl ConsumerCounters {
    /// Adds one drop for `reason`.
    pub(crate) fn record_drop(&mut self, reason: DropReason) {
        match reason {
            DropReason::Unmapped => self.drops_unmapped += 1,
            DropReason::AwaitingEpoch => self.drops_awaiting_epoch += 1,
            DropReason::Epoch => self.drops_epoch += 1,
            DropReason::Duplicate => self.drops_duplicate += 1,
            DropReason::Resync => self.drops_resync += 1,
            DropReason::NotCommitted => self.drops_not_committed += 1,
            DropReason::Stale => self.drops_stale += 1,
            DropReason::Late => self.drops_late += 1,
            DropReason::HeaderFormat => self.drops_header_format += 1,
            DropReason::PayloadSlot => self.drops_payload_slot += 1,
            DropReason::Pool => self.drops_pool += 1,
            DropReason::Length => self.drops_length += 1,
            DropReason::PayloadOffset => self.drops_payload_offset += 1,
            DropReason::Tensor => self.drops_tensor += 1,
            DropReason::Fallback => self.drops_fallback += 1,
            DropReason::SeqRegression => self.drops_seq_regression += 1,
        }
    }

    /// The counter of one drop reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        match reason {
            DropReason::Unmapped => self.drops_unmapped,
            DropReason::AwaitingEpoch => self.drops_awaiting_epoch,
            DropReason::Epoch => self.drops_epoch,
            DropReason::Duplicate => self.drops_duplicate,
            DropReason::Resync => self.drops_resync,
            DropReason::NotCommitted => self.drops_not_committed,
            DropReason::Stale => self.drops_stale,
            DropReason::Late => self.drops_late,
            DropReason::HeaderFormat => self.drops_header_format,
            DropReason::PayloadSlot => self.drops_payload_slot,
            DropReason::Pool => self.drops_pool,
            DropReason::Length => self.drops_length,
            DropReason::PayloadOffset => self.drops_payload_offset,
            DropReason::Tensor => self.drops_tensor,
            DropReason::Fallback => self.drops_fallback,
            DropReason::SeqRegression => self.drops_seq_regression,
        }
    }

    /// Descriptors received but not delivered (every drop counter except `drops_gap`).
    pub fn frame_drops(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.drops(*r)).sum()
    }

    /// What `QosConsumer.dropsGap` reports: frames the consumer never read, whether
    /// their descriptors never arrived or were skipped to catch up (Wire Spec §15.4 asks
    /// that a resync be reported in QoS, and the message has no field of its own for it).
    /// `tp status` shows it as `qos_drops_gap`, a name of its own: it is not `drops_gap`.
    pub fn qos_drops_gap(&self) -> u64 {
        self.drops_gap + self.drops_resync
    }

    /// What `QosConsumer.dropsLate` reports: every failed seqlock check (not committed,
    /// stale, overwritten, changed mid-read) — Wire Spec §10.4.1 "failed sentinel
    /// validation / overwritten mid-read". `tp status` shows it as `qos_drops_late`.
    pub fn qos_drops_late(&self) -> u64 {
        self.drops_not_committed + self.drops_stale + self.drops_late
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_the_sum_reconciles() {
        let mut c = ConsumerCounters::default();
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.record_drop(*reason);
            }
        }
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.drops(*reason), i as u64 + 1, "{reason:?}");
        }
        assert_eq!(c.frame_drops(), (1..=16).sum::<u64>());
        assert_eq!(c.drops_gap, 0, "gaps are not descriptor drops");
        assert_eq!(c.qos_drops_late(), 6 + 7 + 8);
        c.drops_gap = 100;
        assert_eq!(c.qos_drops_gap(), 100 + 5, "gaps plus resync skips");
    }
}
