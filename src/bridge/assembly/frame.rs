//! The bookkeeping of one frame in assembly: which slices and chunk indices arrived, the
//! header block, the identity every chunk must repeat (Bridge Spec v1.1 §5.2).

use super::{Chunk, CompleteFrame, DropReason, FrameStore, HEADER_BLOCK_LEN};

/// What inserting a chunk did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Insert {
    /// Written; the frame may now be complete.
    Taken,
    /// The same slice with the same bytes was taken before.
    Duplicate,
    /// Not taken, state unchanged; [`DropReason::drops_frame`] says whether the frame is
    /// condemned.
    Refused(DropReason),
    /// Taken, and now every chunk or every byte is in but the two do not agree.
    Incomplete(DropReason),
}

/// A frame in assembly; `S` is its store slot (`()` for a cleared one kept for reuse).
#[derive(Debug)]
pub(super) struct InFlight<S> {
    pub epoch: u64,
    pub seq: u64,
    /// Arrival of its first chunk.
    pub first_ns: u64,
    payload_length: u32,
    chunk_count: u32,
    trace_id: u64,
    /// Bytes written.
    covered: u64,
    /// Distinct chunks taken.
    received: u32,
    /// Slices taken, `(offset, length)`, sorted by offset, never overlapping.
    pieces: Vec<(u32, u32)>,
    /// One bit per chunk index.
    indices: Vec<u64>,
    header: [u8; HEADER_BLOCK_LEN],
    has_header: bool,
    slot: S,
}

impl Default for InFlight<()> {
    fn default() -> Self {
        Self {
            epoch: 0,
            seq: 0,
            first_ns: 0,
            payload_length: 0,
            chunk_count: 0,
            trace_id: 0,
            covered: 0,
            received: 0,
            pieces: Vec::new(),
            indices: Vec::new(),
            header: [0; HEADER_BLOCK_LEN],
            has_header: false,
            slot: (),
        }
    }
}

impl InFlight<()> {
    /// This cleared frame (its buffers kept) as the frame `chunk` opens, in `slot`.
    pub fn start<S>(self, chunk: &Chunk<'_>, now_ns: u64, slot: S) -> InFlight<S> {
        let mut pieces = self.pieces;
        pieces.clear();
        let mut indices = self.indices;
        indices.clear();
        indices.resize((chunk.chunk_count as usize).div_ceil(64), 0);
        InFlight {
            epoch: chunk.epoch,
            seq: chunk.seq,
            first_ns: now_ns,
            payload_length: chunk.payload_length,
            chunk_count: chunk.chunk_count,
            trace_id: chunk.trace_id,
            covered: 0,
            received: 0,
            pieces,
            indices,
            header: self.header,
            has_header: false,
            slot,
        }
    }
}

impl<S> InFlight<S> {
    /// Takes `chunk` (already checked on its own) into the frame, writing its bytes to the
    /// store; refuses, unchanged, what contradicts the frame.
    pub fn insert<T: FrameStore<Slot = S>>(&mut self, chunk: &Chunk<'_>, store: &mut T) -> Insert {
        if chunk.payload_length != self.payload_length || chunk.chunk_count != self.chunk_count {
            return Insert::Refused(DropReason::Inconsistent);
        }
        if chunk.trace_id != self.trace_id {
            return Insert::Refused(DropReason::TraceId);
        }
        let (offset, length) = (chunk.chunk_offset, chunk.chunk_length);
        let at = self.pieces.partition_point(|&(o, _)| o < offset);
        let same_slice = self.pieces.get(at) == Some(&(offset, length));
        if same_slice || self.has_index(chunk.chunk_index) {
            // Seen before: identical is harmless, anything else contradicts the frame.
            let identical = same_slice
                && store.read(&self.slot, offset, length) == chunk.payload_bytes
                && (!chunk.header_included
                    || (self.has_header && self.header[..] == *chunk.header_bytes));
            return if identical && self.has_index(chunk.chunk_index) {
                Insert::Duplicate
            } else {
                Insert::Refused(DropReason::Conflict)
            };
        }
        let end = u64::from(offset) + u64::from(length);
        let overlaps_previous = at > 0 && {
            let (o, l) = self.pieces[at - 1];
            u64::from(o) + u64::from(l) > u64::from(offset)
        };
        let overlaps_next = self
            .pieces
            .get(at)
            .is_some_and(|&(o, _)| end > u64::from(o) || (length == 0 && o == offset));
        if length > 0 && (overlaps_previous || overlaps_next) {
            return Insert::Refused(DropReason::Overlap);
        }
        store.write(&self.slot, offset, chunk.payload_bytes);
        if length > 0 {
            self.pieces.insert(at, (offset, length));
        }
        self.set_index(chunk.chunk_index);
        self.covered += u64::from(length);
        self.received += 1;
        if chunk.header_included {
            self.header.copy_from_slice(chunk.header_bytes);
            self.has_header = true;
        }
        let all_chunks = self.received == self.chunk_count;
        let all_bytes = self.covered == u64::from(self.payload_length);
        if all_chunks != all_bytes {
            // §5.2: the slices of all chunks add up to the payload, exactly.
            return Insert::Incomplete(DropReason::Inconsistent);
        }
        Insert::Taken
    }

    /// Every chunk and every byte are in, with the header.
    pub fn is_complete(&self) -> bool {
        self.received == self.chunk_count
            && self.covered == u64::from(self.payload_length)
            && self.has_header
    }

    /// The complete frame, and this one cleared for reuse.
    pub fn finish(self, stream_id: u32) -> (CompleteFrame<S>, InFlight<()>) {
        let frame = CompleteFrame {
            stream_id,
            epoch: self.epoch,
            seq: self.seq,
            trace_id: self.trace_id,
            payload_length: self.payload_length,
            header: self.header,
            slot: self.slot,
        };
        (
            frame,
            InFlight::<()>::with_buffers(self.pieces, self.indices),
        )
    }

    /// The store slot, and this frame cleared for reuse.
    pub fn into_slot(self) -> (S, InFlight<()>) {
        (
            self.slot,
            InFlight::<()>::with_buffers(self.pieces, self.indices),
        )
    }

    fn has_index(&self, index: u32) -> bool {
        let (word, bit) = ((index / 64) as usize, index % 64);
        self.indices.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn set_index(&mut self, index: u32) {
        let (word, bit) = ((index / 64) as usize, index % 64);
        if let Some(w) = self.indices.get_mut(word) {
            *w |= 1 << bit;
        }
    }
}

impl InFlight<()> {
    fn with_buffers(pieces: Vec<(u32, u32)>, indices: Vec<u64>) -> Self {
        Self {
            pieces,
            indices,
            ..Self::default()
        }
    }
}
