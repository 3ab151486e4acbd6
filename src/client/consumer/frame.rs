//! Accepting a frame (Wire Spec §8.2, §8.3, §10.2.1, §15.3, §15.4, §15.18, §15.21): a
//! descriptor becomes a [`Frame`] only if its epoch is the mapped one, its slot's
//! `seq_commit` is committed for exactly its sequence before and after the slot is copied,
//! every header field passes the v1.2 rules, and the seqlock still holds after the
//! application has read the payload. Anything else is a counted drop. No heap allocation:
//! the slot is copied to the stack (up to the reserved pad, which consumers ignore) and the
//! payload is a view into the mapped pool. A tensor description identical to the last one
//! that passed is not decoded and checked again (see [`TensorCache`]).

use super::counters::{ConsumerCounters, DropReason};
use super::liveness::sequence_regressed;
use crate::client::mapping::MappedEpoch;
use crate::client::tensor::{check_extent, tensor_layout, zero_fill_beyond_ndims};
use crate::protocol::codec::MessageHeader;
use crate::protocol::control::{
    self, frame_descriptor, tensor_header, FrameDescriptor, FrameDescriptorDecoder, TensorHeader,
};
use crate::shm::layout::{
    decode_slot_fields, decode_slot_tensor, header_index, slot_tensor_bytes, SlotFields,
    HEADER_SLOT_BYTES, TENSOR_HEADER_LEN, TENSOR_HEADER_USED_LEN,
};
use crate::shm::seqlock::{committed, logical_sequence, SeqReadError};

/// One accepted frame, valid for the duration of the application's closure.
#[derive(Debug)]
pub struct Frame<'a> {
    seq: u64,
    epoch: u64,
    stream_id: u32,
    header_index: u32,
    descriptor_timestamp_ns: Option<u64>,
    trace_id: Option<u64>,
    /// The consumer's metadata version in force when the frame was read.
    meta_in_force: u32,
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

    /// The descriptor's trace id (`FrameDescriptor.traceId`, Wire Spec §10.2.1), when the
    /// producer set one (0 on the wire = absent).
    pub fn trace_id(&self) -> Option<u64> {
        self.trace_id
    }

    /// Metadata version the frame was taken under (`SlotHeader.meta_version`, Wire Spec
    /// §10.3; 0: the producer set no metadata).
    pub fn meta_version(&self) -> u32 {
        self.fields.meta_version
    }

    /// How the frame's metadata version relates to the consumer's metadata in force
    /// ([`Consumer::metadata`](super::Consumer::metadata)). A frame is delivered whatever
    /// this says: a producer's new version may reach the frame path before the metadata
    /// stream.
    pub fn meta_status(&self) -> MetaStatus {
        match self.fields.meta_version {
            // 0, or the SBE null value other producers (tensor_pool_c) write without metadata.
            0 | u32::MAX => MetaStatus::Absent,
            v if v == self.meta_in_force => MetaStatus::Current,
            v if self.meta_in_force != 0 && v < self.meta_in_force => MetaStatus::Superseded,
            _ => MetaStatus::Unseen,
        }
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

/// How a frame's `meta_version` relates to the metadata a consumer holds (Wire Spec
/// §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaStatus {
    /// The frame carries no metadata version (0, or the null value 0xFFFFFFFF).
    Absent,
    /// The frame was taken under the metadata the consumer holds.
    Current,
    /// The frame names a version the consumer has not received yet (its metadata is on
    /// its way, or was lost): the frame is delivered all the same.
    Unseen,
    /// The frame was taken under an older version than the one the consumer holds.
    Superseded,
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
    /// A frame passed every check but was skipped to stay under `max_rate_hz`
    /// (RATE_LIMITED mode, Wire Spec §11; counted in `frames_rate_limited`).
    RateLimited,
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
///
/// A descriptor is only a claim; the slot it names is the evidence. The state moves only
/// for sequences the slot confirmed (Wire Spec §10.2.1, §15.21): the slot held exactly
/// that committed sequence, or a later lap of the ring showed the producer had passed it.
/// A descriptor the slot contradicts (wrong epoch, a sequence the slot never held, a slot
/// still being written for it) is dropped under its own reason and forgotten, so a forged
/// or stale descriptor cannot make later genuine frames look old.
///
/// Gaps are sequences no descriptor ever named: forgotten descriptors ahead of the last
/// confirmed sequence are remembered (a few, by sequence only) so that a descriptor that
/// arrived and was dropped is not counted a second time as missing.
#[derive(Debug, Clone, Default)]
pub(crate) struct SeqTracker {
    last_seq: Option<u64>,
    resync_below: u64,
    max_gap: Option<u64>,
    forgotten: ForgottenSeqs,
}

/// Sequences of dropped, unconfirmed descriptors ahead of the last confirmed one.
#[derive(Debug, Clone, Default)]
struct ForgottenSeqs {
    seqs: [u64; FORGOTTEN_CAPACITY],
    len: usize,
}

/// Forgotten descriptors remembered for gap accounting; beyond it the largest is let go
/// (a flood of forged descriptors can then only make gaps read low, never drop frames).
const FORGOTTEN_CAPACITY: usize = 16;

impl ForgottenSeqs {
    fn insert(&mut self, seq: u64) {
        let live = &mut self.seqs[..self.len];
        if live.contains(&seq) {
            return;
        }
        if self.len < FORGOTTEN_CAPACITY {
            self.seqs[self.len] = seq;
            self.len += 1;
        } else if let Some(largest) = live.iter_mut().max() {
            *largest = (*largest).min(seq);
        }
    }

    /// Removes every sequence up to `seq`; returns how many lay strictly between
    /// `after` and `seq`.
    fn take_through(&mut self, after: Option<u64>, seq: u64) -> u64 {
        let mut between = 0;
        let mut kept = 0;
        for i in 0..self.len {
            let s = self.seqs[i];
            if s > seq {
                self.seqs[kept] = s;
                kept += 1;
            } else if s < seq && after.is_none_or(|a| s > a) {
                between += 1;
            }
        }
        self.len = kept;
        between
    }
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
        self.forgotten = ForgottenSeqs::default();
    }

    /// The highest sequence confirmed in this epoch.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Judges a descriptor's sequence before its slot is read: one not after the last
    /// confirmed sequence is a duplicate (nothing changes); one below the resync point is
    /// skipped, and counts as seen (the resync point itself came from a slot).
    pub(crate) fn admit(
        &mut self,
        seq: u64,
        counters: &mut ConsumerCounters,
    ) -> Result<(), DropReason> {
        if self.last_seq.is_some_and(|last| seq <= last) {
            return Err(DropReason::Duplicate);
        }
        if seq < self.resync_below {
            self.confirm(seq, counters);
            return Err(DropReason::Resync);
        }
        Ok(())
    }

    /// Records a sequence its slot confirmed: counts the sequences never seen since the
    /// last one as `drops_gap`.
    pub(crate) fn confirm(&mut self, seq: u64, counters: &mut ConsumerCounters) {
        if self.last_seq.is_some_and(|last| seq <= last) {
            return;
        }
        let dropped = self.forgotten.take_through(self.last_seq, seq);
        if let Some(last) = self.last_seq {
            counters.drops_gap += (seq - last - 1).saturating_sub(dropped);
        }
        self.last_seq = Some(seq);
    }

    /// Records a descriptor its slot contradicted: it changes no state, but it did
    /// arrive, so it is no gap.
    pub(crate) fn forget(&mut self, seq: u64) {
        if self.last_seq.is_none_or(|last| seq > last) {
            self.forgotten.insert(seq);
        }
    }

    /// The slot of `seq` showed that the producer reached `found`: if it is further
    /// ahead than allowed, skip every descriptor older than `found` (§15.4 "drop to
    /// latest"). The allowed gap never exceeds what the ring holds (`nslots - 1`): a
    /// consumer the producer lapped can only read slots about to be overwritten again.
    pub(crate) fn on_overwritten(
        &mut self,
        seq: u64,
        found: u64,
        nslots: u32,
        counters: &mut ConsumerCounters,
    ) {
        let Some(max) = self.max_gap else {
            return;
        };
        let allowed = max.min(u64::from(nslots).saturating_sub(1));
        if found.saturating_sub(seq) > allowed && found > self.resync_below {
            self.resync_below = found;
            counters.resyncs += 1;
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
    /// The bytes had non-zero entries beyond `ndims` (zeroed in `header`).
    beyond_ndims: bool,
}

impl TensorCache {
    /// The tensor description in `bytes` (a slot's embedded header), checked for a payload
    /// of `values_len` bytes.
    fn resolve(
        &mut self,
        bytes: &[u8; TENSOR_HEADER_LEN],
        values_len: u32,
        counters: &mut ConsumerCounters,
    ) -> Result<&TensorHeader, DropReason> {
        let key = &bytes[..TENSOR_HEADER_USED_LEN];
        if !matches!(&self.entry, Some(entry) if entry.key[..] == *key) {
            let mut header = decode_slot_tensor(bytes).map_err(|_| DropReason::HeaderFormat)?;
            // Reserved: consumers ignore it (§8.2), and only part of it was copied.
            header.pad = [0; tensor_header::PAD_LEN];
            let layout = tensor_layout(&header).map_err(|_| DropReason::Tensor)?;
            // §8.2: consumers ignore entries beyond ndims; the application sees zeros.
            let beyond_ndims = zero_fill_beyond_ndims(&mut header);
            let mut cached_key = [0u8; TENSOR_HEADER_USED_LEN];
            cached_key.copy_from_slice(key);
            self.entry = Some(CachedTensor {
                key: cached_key,
                header,
                extent_bytes: layout.extent_bytes,
                beyond_ndims,
            });
        }
        let entry = self.entry.as_ref().expect("the entry was filled above");
        check_extent(entry.extent_bytes, values_len as usize).map_err(|_| DropReason::Tensor)?;
        if entry.beyond_ndims {
            counters.tensors_beyond_ndims += 1;
        }
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
    meta_in_force: u32,
    f: impl FnOnce(&Frame<'_>) -> R,
) -> Result<R, DropReason> {
    if descriptor.epoch != mapped.epoch() {
        return Err(DropReason::Epoch);
    }
    let seq = descriptor.seq;
    if seqs
        .last_seq()
        .is_some_and(|last| sequence_regressed(mapped, last, seq))
    {
        return Err(DropReason::SeqRegression);
    }
    seqs.admit(seq, counters)?;
    let nslots = mapped.header_nslots();
    let index = header_index(seq, nslots);
    mapped.prefetch_payloads(index);
    let seq_commit = mapped.seq_commit(index);
    let first = match seq_commit.begin_read(seq) {
        Ok(word) => word,
        Err(SeqReadError::Overwritten { found, .. }) => {
            return Err(lapped(mapped, seqs, seq, found, counters));
        }
        Err(SeqReadError::NotCommitted { word }) if logical_sequence(word) > seq => {
            // The producer is rewriting the slot for a later lap.
            return Err(lapped(mapped, seqs, seq, logical_sequence(word), counters));
        }
        // The slot contradicts the descriptor: forgotten.
        Err(SeqReadError::NotCommitted { .. }) => {
            seqs.forget(seq);
            return Err(DropReason::NotCommitted);
        }
        Err(SeqReadError::Stale { .. }) => {
            seqs.forget(seq);
            return Err(DropReason::Stale);
        }
        Err(SeqReadError::Changed { .. }) => {
            seqs.forget(seq);
            return Err(DropReason::Late);
        }
    };
    // The slot holds exactly this committed sequence: the frame existed.
    seqs.confirm(seq, counters);
    let mut image = [0u8; HEADER_SLOT_BYTES];
    mapped.read_slot_used(index, &mut image);
    // Re-check before judging the fields, so a torn copy counts as late rather than as
    // whichever field happened to be half-written.
    if seq_commit.validate_read(first).is_err() {
        return Err(torn(mapped, seqs, seq, seq_commit.load(), counters));
    }
    let (fields, payload) = check_slot(mapped, index, &image)?;
    let tensor = tensors.resolve(slot_tensor_bytes(&image), fields.values_len_bytes, counters)?;
    let frame = Frame {
        seq,
        epoch: descriptor.epoch,
        stream_id: descriptor.stream_id,
        header_index: index,
        descriptor_timestamp_ns: descriptor.timestamp_ns,
        trace_id: descriptor.trace_id,
        meta_in_force,
        fields,
        tensor,
        payload,
    };
    let result = f(&frame);
    // The payload was read in place: only a seqlock that still holds makes it valid.
    if seq_commit.validate_read(first).is_err() {
        return Err(torn(mapped, seqs, seq, seq_commit.load(), counters));
    }
    Ok(result)
}

/// Latency mode ([`ConsumerConfig::watch_next_slot`](super::ConsumerConfig)): called
/// while no descriptor is waiting. Looks at the slot the next sequence will use and, once
/// the producer has committed that sequence there, fetches the slot's other lines and the
/// payload's first line, so that the descriptor, when it arrives, finds them in this
/// core's cache instead of fetching them one after the other. Nothing is accepted here:
/// the frame is still read and checked against its descriptor (§10.2.1, §15.21). Only
/// committed slots are prefetched (a line the producer is still writing would be taken
/// from it), and each sequence once (`primed`).
#[inline]
pub(crate) fn watch_next_slot(mapped: &MappedEpoch, seqs: &SeqTracker, primed: &mut u64) {
    let Some(next) = seqs.last_seq().and_then(|last| last.checked_add(1)) else {
        return;
    };
    if *primed == next {
        return;
    }
    let index = header_index(next, mapped.header_nslots());
    if mapped.seq_commit(index).load() == committed(next) {
        mapped.prefetch_slot_tail(index);
        mapped.prefetch_payloads(index);
        *primed = next;
    }
}

/// A confirmed sequence whose slot a later lap of the ring took: late, and perhaps the
/// sign that the consumer must skip ahead.
fn lapped(
    mapped: &MappedEpoch,
    seqs: &mut SeqTracker,
    seq: u64,
    found: u64,
    counters: &mut ConsumerCounters,
) -> DropReason {
    seqs.confirm(seq, counters);
    seqs.on_overwritten(
        seq,
        newest_seq(mapped, found),
        mapped.header_nslots(),
        counters,
    );
    DropReason::Late
}

/// The newest sequence the producer has started writing, found from one slot known to
/// hold `known` (Wire Spec §15.4 "drop to latest"). Slots written in the current lap
/// after `known`'s hold `known + k` at `k` slots on, earlier ones hold less, so a binary
/// search over `k` finds the head in `log2(nslots)` loads. The producer keeps moving, so
/// the answer is a lower bound of the head at return; it is only ever used to skip ahead.
fn newest_seq(mapped: &MappedEpoch, known: u64) -> u64 {
    let nslots = u64::from(mapped.header_nslots());
    // Invariant: slot `known + lo` holds `known + lo`; slot `known + hi` does not.
    let (mut lo, mut hi) = (0u64, nslots);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let candidate = known + mid;
        let index = header_index(candidate, mapped.header_nslots());
        if logical_sequence(mapped.seq_commit(index).load()) >= candidate {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    known + lo
}

/// The slot changed while it was read: late. `word` is what it holds now.
fn torn(
    mapped: &MappedEpoch,
    seqs: &mut SeqTracker,
    seq: u64,
    word: u64,
    counters: &mut ConsumerCounters,
) -> DropReason {
    let found = logical_sequence(word);
    if found > seq {
        seqs.on_overwritten(
            seq,
            newest_seq(mapped, found),
            mapped.header_nslots(),
            counters,
        );
    }
    DropReason::Late
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

    /// A descriptor whose slot confirms it.
    fn confirmed(s: &mut SeqTracker, seq: u64, c: &mut ConsumerCounters) -> Result<(), DropReason> {
        s.admit(seq, c)?;
        s.confirm(seq, c);
        Ok(())
    }

    #[test]
    fn a_frames_meta_status_compares_its_version_with_the_one_in_force() {
        let tensor = crate::client::tensor::bytes_header(1).expect("tensor");
        let status = |frame_version: u32, in_force: u32| {
            Frame {
                seq: 0,
                epoch: 1,
                stream_id: 1,
                header_index: 0,
                descriptor_timestamp_ns: None,
                trace_id: None,
                meta_in_force: in_force,
                fields: SlotFields {
                    values_len_bytes: 1,
                    payload_slot: 0,
                    pool_id: 1,
                    payload_offset: 0,
                    timestamp_ns: 0,
                    meta_version: frame_version,
                },
                tensor: &tensor,
                payload: &[0],
            }
            .meta_status()
        };
        assert_eq!(status(0, 0), MetaStatus::Absent);
        assert_eq!(status(0, 3), MetaStatus::Absent);
        assert_eq!(
            status(u32::MAX, 3),
            MetaStatus::Absent,
            "the SBE null value"
        );
        assert_eq!(status(3, 3), MetaStatus::Current);
        assert_eq!(status(4, 3), MetaStatus::Unseen);
        assert_eq!(status(1, 0), MetaStatus::Unseen, "nothing held yet");
        assert_eq!(status(2, 3), MetaStatus::Superseded);
    }

    #[test]
    fn gaps_count_missing_sequences_and_duplicates_are_refused() {
        let mut c = ConsumerCounters::default();
        let mut s = SeqTracker::new(None);
        assert_eq!(
            confirmed(&mut s, 5, &mut c),
            Ok(()),
            "the first sequence is no gap"
        );
        assert_eq!(confirmed(&mut s, 6, &mut c), Ok(()));
        assert_eq!(confirmed(&mut s, 9, &mut c), Ok(()));
        assert_eq!(c.drops_gap, 2);
        assert_eq!(s.admit(9, &mut c), Err(DropReason::Duplicate));
        assert_eq!(s.admit(3, &mut c), Err(DropReason::Duplicate));
        assert_eq!(s.last_seq(), Some(9));
        s.reset();
        assert_eq!(
            confirmed(&mut s, 0, &mut c),
            Ok(()),
            "a new epoch starts afresh"
        );
        assert_eq!(c.drops_gap, 2);
    }

    #[test]
    fn an_unconfirmed_descriptor_changes_nothing() {
        let mut c = ConsumerCounters::default();
        let mut s = SeqTracker::new(Some(16));
        assert_eq!(confirmed(&mut s, 10, &mut c), Ok(()));
        // A forged sequence far ahead is admitted for reading, but its slot never
        // confirms it, so the next genuine frame is neither a duplicate nor a gap.
        assert_eq!(s.admit(1_010, &mut c), Ok(()));
        assert_eq!(confirmed(&mut s, 11, &mut c), Ok(()));
        assert_eq!((s.last_seq(), c.drops_gap, c.resyncs), (Some(11), 0, 0));
    }

    #[test]
    fn a_dropped_unconfirmed_descriptor_is_no_gap() {
        let mut c = ConsumerCounters::default();
        let mut s = SeqTracker::new(None);
        assert_eq!(confirmed(&mut s, 1, &mut c), Ok(()));
        // 2 arrived but its slot was still being written; 3 never arrived.
        s.forget(2);
        s.forget(1_000);
        assert_eq!(confirmed(&mut s, 4, &mut c), Ok(()));
        assert_eq!(c.drops_gap, 1, "only 3 is missing");
        assert_eq!(confirmed(&mut s, 1_002, &mut c), Ok(()));
        assert_eq!(c.drops_gap, 1 + 996, "1000 arrived");
        for seq in 2_000..2_100 {
            s.forget(seq);
        }
        assert_eq!(confirmed(&mut s, 3_000, &mut c), Ok(()));
        assert!(c.drops_gap < 1 + 996 + 1_997, "forgotten ones are not gaps");
    }

    #[test]
    fn falling_a_ring_behind_skips_to_the_newest_frame() {
        let mut c = ConsumerCounters::default();
        let mut s = SeqTracker::new(Some(256));
        assert_eq!(confirmed(&mut s, 10, &mut c), Ok(()));
        // A 64-slot ring: slot of 11 already holds 75, the producer lapped the consumer;
        // the configured 256 is more than the ring can hold, so the ring bounds it.
        s.confirm(11, &mut c);
        s.on_overwritten(11, 75, 64, &mut c);
        assert_eq!(c.resyncs, 1);
        assert_eq!(s.admit(12, &mut c), Err(DropReason::Resync));
        assert_eq!(s.admit(74, &mut c), Err(DropReason::Resync));
        assert_eq!(confirmed(&mut s, 75, &mut c), Ok(()));
        assert_eq!(
            c.drops_gap, 61,
            "13..=73 were never seen; 12 and 74 were skipped"
        );
        s.on_overwritten(75, 76, 64, &mut c);
        assert_eq!(c.resyncs, 1, "within the allowed gap");
    }

    #[test]
    fn a_small_configured_gap_is_kept_and_none_never_skips() {
        let mut c = ConsumerCounters::default();
        let mut s = SeqTracker::new(Some(16));
        s.confirm(10, &mut c);
        s.on_overwritten(10, 20, 1024, &mut c);
        assert_eq!(c.resyncs, 0, "10 behind is within 16");
        s.on_overwritten(10, 100, 1024, &mut c);
        assert_eq!(c.resyncs, 1);
        let mut s = SeqTracker::new(None);
        s.on_overwritten(10, 100_000, 64, &mut c);
        assert_eq!((c.resyncs, s.admit(11, &mut c)), (1, Ok(())));
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
