//! The consumer's side of FrameProgress (Wire Spec §8.2 "Progress", §10.2.2): each
//! message is judged when it arrives and either remembered as the latest word on its frame
//! or ignored and counted; [`ProgressReader::poll`] then hands the application the part of
//! the frame that is filled and safe to read, checked against `seq_commit` before and
//! after the application looked at it.
//!
//! The rules, each with its counter:
//! - `state` must be STARTED, PROGRESS or COMPLETE (`bad_state`).
//! - The frame must be of the mapped epoch and not yet passed by its descriptor
//!   (`stale`: COMPLETE travels on the control stream and may trail the descriptor).
//! - Within a frame `payload_bytes_filled` and `state` never go back (`regressions`); a
//!   frame that regressed gets no further prefixes.
//! - The slot must hold the frame: `seq_commit >> 1 == seq`, written or committed
//!   (`not_in_slot`; a slot already holding a later frame counts as `stale`).
//! - The slot header must pass every §8.2 check, including `progress_unit` /
//!   `progress_stride_bytes` against the declared strides (`bad_layout`: the frame gets
//!   no prefixes).
//! - `payload_bytes_filled <= values_len_bytes` (`beyond_length`).
//! - `seq_commit` still decides: a slot that moved on while the application read the
//!   prefix makes the result void (`overwritten`).
//!
//! The header must describe the frame before its STARTED: this crate's producer writes
//! it first (the slot stays IN-PROGRESS until the commit). No allocation: a fixed table
//! of frames in flight.

use crate::client::mapping::MappedEpoch;
use crate::client::tensor::{check_extent, tensor_layout, TensorLayout};
use crate::protocol::control::{
    FrameProgress, FrameProgressState, MajorOrder, ProgressUnit, TensorHeader,
};
use crate::shm::layout::{
    decode_slot_fields, decode_slot_tensor, header_index, slot_tensor_bytes, HEADER_SLOT_BYTES,
};
use crate::shm::seqlock::logical_sequence;

/// Frames whose progress is followed at once; the least recently heard of is forgotten.
pub const FRAMES_IN_FLIGHT: usize = 8;

/// What the consumer counted of `FrameProgress` messages of its stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressCounters {
    /// `FrameProgress` messages of this stream received (while opted in).
    pub received: u64,
    /// Prefixes handed to the application and still the frame's after it returned.
    pub prefixes_delivered: u64,
    /// For another epoch, or a frame its descriptor (or a later frame) already passed.
    pub stale: u64,
    /// `state` UNKNOWN or undefined.
    pub bad_state: u64,
    /// `payload_bytes_filled` or `state` went back within a frame.
    pub regressions: u64,
    /// The slot does not hold the frame (never started there).
    pub not_in_slot: u64,
    /// The slot header breaks a §8.2 rule (including progress unit/stride).
    pub bad_layout: u64,
    /// `payload_bytes_filled` exceeds `values_len_bytes`.
    pub beyond_length: u64,
    /// The slot moved on while the application read the prefix.
    pub overwritten: u64,
}

impl ProgressCounters {
    /// Messages ignored for breaking a rule of §10.2.2 (not counting stale ones).
    pub fn violations(&self) -> u64 {
        self.bad_state + self.regressions + self.not_in_slot + self.bad_layout + self.beyond_length
    }
}

/// What a frame being filled offers the application.
#[derive(Debug)]
pub struct FramePrefix<'a> {
    seq: u64,
    state: FrameProgressState,
    filled: u64,
    values_len: u32,
    units: Option<u64>,
    tensor: &'a TensorHeader,
    prefix: &'a [u8],
}

impl<'a> FramePrefix<'a> {
    /// The frame's sequence.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// STARTED, PROGRESS or COMPLETE (COMPLETE is no promise: the frame is available
    /// only when its descriptor says so).
    pub fn state(&self) -> FrameProgressState {
        self.state
    }

    /// `payload_bytes_filled` as reported.
    pub fn filled_bytes(&self) -> u64 {
        self.filled
    }

    /// The frame's `values_len_bytes`.
    pub fn values_len(&self) -> u32 {
        self.values_len
    }

    /// Whole rows (or columns) filled, when the header declares a progress unit.
    pub fn units_filled(&self) -> Option<u64> {
        self.units
    }

    /// The frame's tensor description.
    pub fn tensor(&self) -> &'a TensorHeader {
        self.tensor
    }

    /// The bytes safe to read: `[0, filled)` of a contiguous tensor, or the whole rows
    /// (columns) filled when the header declares a progress unit along the outermost
    /// dimension; empty when the layout makes the count informational only (§10.2.2).
    /// Read in place: act on it only once the poll said `Delivered`.
    pub fn prefix(&self) -> &'a [u8] {
        self.prefix
    }
}

/// What one [`ProgressReader::poll`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressPoll<R> {
    /// No news on any frame.
    Empty,
    /// The slot moved on while the application read (counted in `overwritten`).
    Overwritten,
    /// A prefix was read and the slot still held the frame afterwards.
    Delivered(R),
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    epoch: u64,
    seq: u64,
    filled: u64,
    state: u8,
    /// The latest word is not handed out yet.
    pending: bool,
    /// The frame broke a rule: no more prefixes.
    poisoned: bool,
    values_len: u32,
    pool_id: u16,
    prefix_len: u64,
    units: Option<u64>,
    header: TensorHeader,
    /// Recency stamp for eviction.
    heard: u64,
}

/// The frames in flight and the counters (see the module docs).
#[derive(Debug, Clone)]
pub struct ProgressReader {
    frames: [Option<Tracked>; FRAMES_IN_FLIGHT],
    clock: u64,
    counters: ProgressCounters,
}

impl Default for ProgressReader {
    fn default() -> Self {
        Self {
            frames: [None; FRAMES_IN_FLIGHT],
            clock: 0,
            counters: ProgressCounters::default(),
        }
    }
}

fn state_rank(state: FrameProgressState) -> Option<u8> {
    match state {
        FrameProgressState::Started => Some(1),
        FrameProgressState::Progress => Some(2),
        FrameProgressState::Complete => Some(3),
        FrameProgressState::Unknown | FrameProgressState::Unrecognized(_) => None,
    }
}

fn state_of(rank: u8) -> FrameProgressState {
    match rank {
        1 => FrameProgressState::Started,
        2 => FrameProgressState::Progress,
        _ => FrameProgressState::Complete,
    }
}

impl ProgressReader {
    /// The counters so far.
    pub fn counters(&self) -> ProgressCounters {
        self.counters
    }

    /// Forgets every frame (a remap: a new epoch starts afresh).
    pub fn reset(&mut self) {
        self.frames = [None; FRAMES_IN_FLIGHT];
    }

    /// Judges one `FrameProgress` of stream `stream_id` (the caller checked the stream)
    /// against the mapped epoch; `passed` is the highest sequence whose descriptor was
    /// handled.
    pub fn on_message(
        &mut self,
        msg: &FrameProgress,
        mapped: Option<&MappedEpoch>,
        passed: Option<u64>,
    ) {
        let c = &mut self.counters;
        c.received += 1;
        let Some(rank) = state_rank(msg.state) else {
            c.bad_state += 1;
            return;
        };
        let (seq, filled) = (msg.seq, msg.payload_bytes_filled);
        let Some(mapped) = mapped.filter(|m| m.epoch() == msg.epoch) else {
            c.stale += 1;
            return;
        };
        if passed.is_some_and(|p| seq <= p) {
            c.stale += 1;
            return;
        }
        self.clock += 1;
        let epoch = mapped.epoch();
        let position = self
            .frames
            .iter()
            .position(|f| f.is_some_and(|f| f.epoch == epoch && f.seq == seq));
        if let Some(known) = position.and_then(|i| self.frames[i].as_mut()) {
            if known.poisoned {
                c.stale += 1;
                return;
            }
            if filled < known.filled || rank < known.state {
                c.regressions += 1;
                known.poisoned = true;
                known.pending = false;
                return;
            }
        }
        let index = header_index(seq, mapped.header_nslots());
        let word = mapped.seq_commit(index).load();
        if logical_sequence(word) != seq {
            if logical_sequence(word) > seq {
                c.stale += 1;
            } else {
                c.not_in_slot += 1;
            }
            return;
        }
        let judged = match position.and_then(|i| self.frames[i]) {
            // The header was judged when the frame was first heard of.
            Some(known) => Ok((
                known.values_len,
                known.pool_id,
                known.header,
                known_layout(&known),
            )),
            None => judge_slot(mapped, index),
        };
        let (values_len, pool_id, header, layout) = match judged {
            Ok(j) => j,
            Err(()) => {
                c.bad_layout += 1;
                self.remember_poisoned(position, epoch, seq);
                return;
            }
        };
        if filled > u64::from(values_len) {
            c.beyond_length += 1;
            return;
        }
        let (prefix_len, units) = safe_prefix(&header, layout.as_ref(), filled, values_len);
        let tracked = Tracked {
            epoch,
            seq,
            filled,
            state: rank,
            pending: true,
            poisoned: false,
            values_len,
            pool_id,
            prefix_len,
            units,
            header,
            heard: self.clock,
        };
        let slot = position.unwrap_or_else(|| self.victim());
        self.frames[slot] = Some(tracked);
    }

    /// Hands the oldest frame with news to `f` (see [`FramePrefix`]); the result counts
    /// only if the slot still holds the frame afterwards.
    pub fn poll<R>(
        &mut self,
        mapped: Option<&MappedEpoch>,
        f: impl FnOnce(&FramePrefix<'_>) -> R,
    ) -> ProgressPoll<R> {
        let Some(mapped) = mapped else {
            return ProgressPoll::Empty;
        };
        let next = self
            .frames
            .iter_mut()
            .flatten()
            .filter(|t| t.pending && t.epoch == mapped.epoch())
            .min_by_key(|t| t.seq);
        let Some(t) = next else {
            return ProgressPoll::Empty;
        };
        t.pending = false;
        let t = *t;
        let index = header_index(t.seq, mapped.header_nslots());
        let seq_commit = mapped.seq_commit(index);
        let holds = || logical_sequence(seq_commit.load()) == t.seq;
        let prefix = mapped
            .pool(t.pool_id)
            .and_then(|pool| pool.slot_bytes(index, t.prefix_len as usize));
        let (true, Some(prefix)) = (holds(), prefix) else {
            self.counters.overwritten += 1;
            return ProgressPoll::Overwritten;
        };
        let view = FramePrefix {
            seq: t.seq,
            state: state_of(t.state),
            filled: t.filled,
            values_len: t.values_len,
            units: t.units,
            tensor: &t.header,
            prefix,
        };
        let result = f(&view);
        if !holds() {
            self.counters.overwritten += 1;
            return ProgressPoll::Overwritten;
        }
        self.counters.prefixes_delivered += 1;
        ProgressPoll::Delivered(result)
    }

    fn remember_poisoned(&mut self, position: Option<usize>, epoch: u64, seq: u64) {
        let slot = position.unwrap_or_else(|| self.victim());
        self.frames[slot] = Some(Tracked {
            epoch,
            seq,
            filled: 0,
            state: 0,
            pending: false,
            poisoned: true,
            values_len: 0,
            pool_id: 0,
            prefix_len: 0,
            units: None,
            header: crate::client::tensor::bytes_header(0).expect("an empty byte tensor is valid"),
            heard: self.clock,
        });
    }

    /// A free entry, else the least recently heard of.
    fn victim(&self) -> usize {
        self.frames
            .iter()
            .position(Option::is_none)
            .or_else(|| {
                (0..FRAMES_IN_FLIGHT).min_by_key(|&i| self.frames[i].map_or(0, |t| t.heard))
            })
            .unwrap_or(0)
    }
}

fn known_layout(t: &Tracked) -> Option<TensorLayout> {
    tensor_layout(&t.header).ok()
}

/// Reads and judges the slot header of a frame heard of for the first time: the §10.2.1 /
/// §8.2 checks a descriptor's frame gets, progress unit and stride included.
fn judge_slot(
    mapped: &MappedEpoch,
    index: u32,
) -> Result<(u32, u16, TensorHeader, Option<TensorLayout>), ()> {
    let mut image = [0u8; HEADER_SLOT_BYTES];
    mapped.read_slot(index, &mut image);
    let (_, fields) = decode_slot_fields(&image).map_err(|_| ())?;
    let pool = mapped.pool(fields.pool_id).ok_or(())?;
    if fields.payload_slot != index
        || fields.payload_slot >= pool.grant.nslots
        || fields.values_len_bytes > pool.grant.stride_bytes
        || fields.payload_offset != 0
    {
        return Err(());
    }
    let mut header = decode_slot_tensor(slot_tensor_bytes(&image)).map_err(|_| ())?;
    header.pad = [0; crate::protocol::control::tensor_header::PAD_LEN];
    let layout = tensor_layout(&header).map_err(|_| ())?;
    check_extent(layout.extent_bytes, fields.values_len_bytes as usize).map_err(|_| ())?;
    Ok((
        fields.values_len_bytes,
        fields.pool_id,
        header,
        Some(layout),
    ))
}

/// §10.2.2 "Progress payload prefix safety": how many bytes from the start are safe to
/// read with `filled` bytes written, and how many whole units that is.
fn safe_prefix(
    header: &TensorHeader,
    layout: Option<&TensorLayout>,
    filled: u64,
    values_len: u32,
) -> (u64, Option<u64>) {
    let Some(layout) = layout else {
        return (0, None);
    };
    let ndims = layout.ndims;
    let dims = &header.dims[..ndims];
    let dense_bytes = dims
        .iter()
        .try_fold(layout.elem_size, |acc, &d| acc.checked_mul(d as u64));
    let contiguous = dense_bytes == Some(layout.extent_bytes);
    let unit_dim = match header.progress_unit {
        ProgressUnit::Rows => Some(0),
        ProgressUnit::Columns => Some(1),
        _ => None,
    };
    let outermost = if header.major_order == MajorOrder::Column {
        ndims - 1
    } else {
        0
    };
    let stride = u64::from(header.progress_stride_bytes);
    let units = unit_dim
        .filter(|_| stride > 0)
        .map(|dim| (filled / stride).min(header.dims[dim].max(0) as u64));
    let limit = u64::from(values_len);
    match (unit_dim, units) {
        (Some(dim), Some(units)) if dim == outermost => ((units * stride).min(limit), Some(units)),
        _ if contiguous => (filled.min(limit), units),
        _ => (0, units),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tensor::{tensor_header, with_progress};
    use crate::protocol::control::Dtype;

    fn rows(dims: &[i32], strides: &[i32], order: MajorOrder, unit: ProgressUnit) -> TensorHeader {
        with_progress(
            tensor_header(Dtype::Uint16, order, dims, strides).expect("valid"),
            unit,
        )
        .expect("valid")
    }

    fn prefix(h: &TensorHeader, filled: u64, len: u32) -> (u64, Option<u64>) {
        safe_prefix(h, tensor_layout(h).ok().as_ref(), filled, len)
    }

    #[test]
    fn a_contiguous_frame_offers_every_filled_byte() {
        let h = rows(&[4, 8], &[], MajorOrder::Row, ProgressUnit::None);
        assert_eq!(prefix(&h, 37, 64), (37, None));
        assert_eq!(prefix(&h, 64, 64), (64, None));
    }

    #[test]
    fn rows_along_the_outermost_dimension_offer_whole_rows() {
        // 4 rows of 8 u16, rows 32 bytes apart (16 bytes of padding each).
        let h = rows(&[4, 8], &[32, 0], MajorOrder::Row, ProgressUnit::Rows);
        assert_eq!(h.progress_stride_bytes, 32);
        assert_eq!(prefix(&h, 70, 128), (64, Some(2)));
        assert_eq!(
            prefix(&h, 200, 128),
            (128, Some(4)),
            "never past the last row"
        );
        // Without the unit, a padded layout makes the count informational only.
        let h = rows(&[4, 8], &[32, 0], MajorOrder::Row, ProgressUnit::None);
        assert_eq!(prefix(&h, 70, 128), (0, None));
    }

    #[test]
    fn a_unit_across_the_layout_is_informational_unless_contiguous() {
        // Column-major 3-d tensor reporting columns (dim 1), not its outermost dim.
        let h = rows(
            &[2, 3, 4],
            &[0, 0, 32],
            MajorOrder::Column,
            ProgressUnit::Columns,
        );
        assert_eq!(prefix(&h, 20, 128).0, 0);
        let h = rows(&[2, 3, 4], &[], MajorOrder::Column, ProgressUnit::Columns);
        assert_eq!(prefix(&h, 20, 48), (20, Some(3)));
    }
}
