//! Frame assembly on a bridge receiver (Bridge Spec v1.1 §5.2, §5.3, §5.3a, §8): chunks
//! in, whole frames or counted drops out.
//!
//! Sans-IO, like the driver core: a [`StreamAssembler`] is fed decoded chunks, the epochs
//! of forwarded `ShmPoolAnnounce`s and a monotonic clock. The bytes never stay here: on a
//! frame's first chunk the assembler asks its [`FrameStore`] for room of the frame's
//! length (on a receiver, a slot of its local payload pool, so the payload is copied
//! once, §6 step 8) and writes each slice there. What it keeps per frame is bookkeeping:
//! the slices received (sorted, non-overlapping), a bit per chunk index, the header block,
//! the first arrival time.
//!
//! Every chunk is checked in full before anything changes (a refused chunk leaves the
//! state as it was), and every outcome is counted by reason:
//! - a chunk that breaks a rule of its own (§5.2, §5.4) is dropped, its frame lives on;
//! - a chunk that contradicts its frame (another length, count or trace id, an overlap, a
//!   conflicting duplicate) drops the whole frame (§5.2, §5.3), and later chunks of that
//!   frame are dropped on arrival instead of starting it again;
//! - a frame not complete within `timeout_ns` of its first chunk is dropped (§5.3a; the
//!   age counts from the first chunk, so a trickle cannot keep a frame alive);
//! - at most `max_frames_in_flight` frames assemble at once; a new one evicts the oldest;
//! - nothing is accepted before a source announce, chunks of another epoch than the last
//!   announced one are dropped, and a new announced epoch drops every frame in flight
//!   (§5.2, §6 steps 2–3, §8).

mod chunk;
mod frame;
#[cfg(test)]
mod tests;

pub use chunk::{Chunk, HEADER_BLOCK_LEN, MAX_CHUNK_COUNT};
use frame::{InFlight, Insert};

/// Where assembled bytes go: the receiver's local pool, or memory in tests.
pub trait FrameStore {
    /// Room for one frame.
    type Slot;
    /// Room for `payload_length` bytes of frame `seq`; `None` when there is none.
    fn reserve(&mut self, seq: u64, payload_length: u32) -> Option<Self::Slot>;
    /// Writes `bytes` at `offset` of the slot (within the reserved length).
    fn write(&mut self, slot: &Self::Slot, offset: u32, bytes: &[u8]);
    /// The bytes at `offset..offset + len` of the slot, as written.
    fn read(&self, slot: &Self::Slot, offset: u32, len: u32) -> &[u8];
    /// Gives back the room of a frame that will not complete.
    fn release(&mut self, slot: Self::Slot);
}

/// The receiver's limits and policies for one mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssemblyLimits {
    /// Largest payload accepted: `bridge.max_payload_bytes`, at most the largest local
    /// `stride_bytes` (§5.2).
    pub max_payload_bytes: u32,
    /// Largest chunk slice accepted: the smallest of `bridge.chunk_bytes`, the MTU bound and
    /// `bridge.max_chunk_bytes` (§5.2).
    pub max_chunk_bytes: u32,
    /// `bridge.assembly_timeout_ms` in nanoseconds (§5.3a).
    pub timeout_ns: u64,
    /// Frames assembling at once.
    pub max_frames_in_flight: usize,
    /// `bridge.integrity_crc32c` (§5.4).
    pub integrity_crc32c: bool,
}

/// Why a chunk or a frame was dropped; each has a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a well-formed chunk (an unknown enum value).
    Malformed,
    /// Another stream's chunk.
    WrongStream,
    /// No source `ShmPoolAnnounce` yet (§5.2, §6 step 2).
    NoAnnounce,
    /// An epoch older than the last announced one (§8).
    StaleEpoch,
    /// An epoch newer than the last announced one (§6 step 3).
    UnannouncedEpoch,
    /// `chunkCount` is 0 or above 65535.
    ChunkCount,
    /// `chunkIndex >= chunkCount`.
    ChunkIndex,
    /// `headerIncluded` is not TRUE exactly for chunk 0.
    HeaderPresence,
    /// `headerBytes` is not 256 bytes on chunk 0, or not empty on the others.
    HeaderLength,
    /// Chunk 0 not at offset 0, or a slice past the payload's end.
    ChunkOffset,
    /// A slice longer than the limit, not its `chunkLength`, or empty in a non-empty
    /// payload.
    ChunkLength,
    /// `payloadLength` above the limit.
    PayloadTooLarge,
    /// CRC32C missing or wrong with integrity on (§5.4).
    Crc,
    /// Another `payloadLength` or `chunkCount` than the frame's first chunk said.
    Inconsistent,
    /// Another trace id than the frame's first chunk carried (§5.2).
    TraceId,
    /// A slice overlapping another one partly (§5.2).
    Overlap,
    /// A chunk index or slice seen before with other bytes (§5.2).
    Conflict,
    /// A chunk of a frame already dropped.
    FrameDropped,
    /// No room for a new frame in the store.
    NoRoom,
    /// Evicted by a newer frame when `max_frames_in_flight` were assembling.
    Evicted,
    /// Not complete within the assembly timeout (§5.3a).
    Timeout,
    /// In flight when a new epoch was announced (§8).
    EpochChanged,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 22;

    /// Index into [`AssemblyCounters::drops`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A frame whose every byte has arrived and been written to its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompleteFrame<S> {
    /// Source stream id.
    pub stream_id: u32,
    /// Source epoch.
    pub epoch: u64,
    /// Frame identity.
    pub seq: u64,
    /// Trace id; 0 = absent.
    pub trace_id: u64,
    /// Payload length (all of it is in `slot`).
    pub payload_length: u32,
    /// The source `SlotHeader` block (to validate and rewrite, §6 steps 4–9).
    pub header: [u8; HEADER_BLOCK_LEN],
    /// Where the payload is.
    pub slot: S,
}

/// What one chunk did.
// The complete frame carries its 256-byte header block by value: moving ~300 bytes once
// per frame is cheaper than an allocation per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<S> {
    /// Taken; the frame is not complete yet.
    Accepted,
    /// Identical to a chunk already taken (or of a frame already complete); ignored.
    Duplicate,
    /// Taken, and it completed its frame.
    Complete(CompleteFrame<S>),
    /// Dropped (and, for frame-level reasons, its frame with it).
    Dropped(DropReason),
}

/// What an assembler has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssemblyCounters {
    /// Chunks taken.
    pub chunks_accepted: u64,
    /// Identical chunks ignored.
    pub chunks_duplicate: u64,
    /// Frames complete.
    pub frames_complete: u64,
    /// Frames dropped, whatever the reason.
    pub frames_dropped: u64,
    /// Drops by [`DropReason::index`] (chunk drops and frame drops alike).
    pub drops: [u64; DropReason::COUNT],
}

/// Seqs of frames recently completed or dropped, remembered so that their late chunks are
/// recognised.
const RECENT_FRAMES: usize = 64;

/// What became of a recent frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    Complete,
    Dropped,
}

/// Assembly of one mapped source stream.
#[derive(Debug)]
pub struct StreamAssembler<S> {
    stream_id: u32,
    limits: AssemblyLimits,
    /// Epoch of the last forwarded announce; `None` until one arrived.
    announced_epoch: Option<u64>,
    in_flight: Vec<InFlight<S>>,
    /// Cleared frames kept for their buffers (no allocation per frame once warm).
    spare: Vec<InFlight<()>>,
    recent: [(u64, u64, Finished); RECENT_FRAMES],
    recent_len: usize,
    recent_next: usize,
    counters: AssemblyCounters,
}

impl<S> StreamAssembler<S> {
    /// An assembler for source stream `stream_id`.
    pub fn new(stream_id: u32, limits: AssemblyLimits) -> Self {
        Self {
            stream_id,
            limits,
            announced_epoch: None,
            in_flight: Vec::with_capacity(limits.max_frames_in_flight),
            spare: Vec::new(),
            recent: [(0, 0, Finished::Complete); RECENT_FRAMES],
            recent_len: 0,
            recent_next: 0,
            counters: AssemblyCounters::default(),
        }
    }

    /// What it has done so far.
    pub fn counters(&self) -> &AssemblyCounters {
        &self.counters
    }

    /// Frames assembling now.
    pub fn frames_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The epoch of the last forwarded source announce.
    pub fn announced_epoch(&self) -> Option<u64> {
        self.announced_epoch
    }

    /// A forwarded source `ShmPoolAnnounce` of `epoch` arrived (§7.2). A newer epoch drops
    /// every frame in flight (§8); an older one is ignored.
    pub fn on_source_announce<T: FrameStore<Slot = S>>(&mut self, epoch: u64, store: &mut T) {
        match self.announced_epoch {
            Some(current) if epoch <= current => {}
            _ => {
                self.announced_epoch = Some(epoch);
                while let Some(frame) = self.in_flight.pop() {
                    self.drop_frame(frame, DropReason::EpochChanged, store);
                }
            }
        }
    }

    /// Feeds one chunk at `now_ns`.
    pub fn on_chunk<T: FrameStore<Slot = S>>(
        &mut self,
        chunk: &Chunk<'_>,
        now_ns: u64,
        store: &mut T,
    ) -> Outcome<S> {
        match self.admit(chunk) {
            Ok(()) => {}
            Err(reason) => return self.dropped_chunk(reason),
        }
        let at = self
            .in_flight
            .iter()
            .position(|f| f.seq == chunk.seq && f.epoch == chunk.epoch);
        let at = match at {
            Some(at) => at,
            None => match self.recent(chunk.epoch, chunk.seq) {
                Some(Finished::Complete) => {
                    self.counters.chunks_duplicate += 1;
                    return Outcome::Duplicate;
                }
                Some(Finished::Dropped) => return self.dropped_chunk(DropReason::FrameDropped),
                None => match self.start_frame(chunk, now_ns, store) {
                    Ok(at) => at,
                    Err(reason) => return self.dropped_chunk(reason),
                },
            },
        };
        let frame = &mut self.in_flight[at];
        match frame.insert(chunk, store) {
            Insert::Taken => {
                self.counters.chunks_accepted += 1;
                if !frame.is_complete() {
                    return Outcome::Accepted;
                }
                let frame = self.in_flight.swap_remove(at);
                self.remember(frame.epoch, frame.seq, Finished::Complete);
                self.counters.frames_complete += 1;
                let (done, cleared) = frame.finish(self.stream_id);
                self.spare.push(cleared);
                Outcome::Complete(done)
            }
            Insert::Duplicate => {
                self.counters.chunks_duplicate += 1;
                Outcome::Duplicate
            }
            Insert::Incomplete(reason) => {
                // Every byte is in but the pieces do not add up: the frame is wrong.
                let frame = self.in_flight.swap_remove(at);
                self.drop_frame(frame, reason, store);
                Outcome::Dropped(reason)
            }
            Insert::Refused(reason) if reason.drops_frame() => {
                let frame = self.in_flight.swap_remove(at);
                self.drop_frame(frame, reason, store);
                Outcome::Dropped(reason)
            }
            Insert::Refused(reason) => self.dropped_chunk(reason),
        }
    }

    /// Drops every frame whose first chunk is `timeout_ns` old at `now_ns` (§5.3a);
    /// returns how many.
    pub fn poll_expired<T: FrameStore<Slot = S>>(&mut self, now_ns: u64, store: &mut T) -> usize {
        let mut expired = 0;
        let mut i = 0;
        while i < self.in_flight.len() {
            if now_ns.saturating_sub(self.in_flight[i].first_ns) >= self.limits.timeout_ns {
                let frame = self.in_flight.swap_remove(i);
                self.drop_frame(frame, DropReason::Timeout, store);
                expired += 1;
            } else {
                i += 1;
            }
        }
        expired
    }

    /// When the oldest frame in flight times out, if any.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.in_flight
            .iter()
            .map(|f| f.first_ns.saturating_add(self.limits.timeout_ns))
            .min()
    }

    /// Stream and epoch gating (§5.2, §6 steps 2–3, §8), then the chunk's own rules.
    fn admit(&self, chunk: &Chunk<'_>) -> Result<(), DropReason> {
        if chunk.stream_id != self.stream_id {
            return Err(DropReason::WrongStream);
        }
        let Some(announced) = self.announced_epoch else {
            return Err(DropReason::NoAnnounce);
        };
        if chunk.epoch < announced {
            return Err(DropReason::StaleEpoch);
        }
        if chunk.epoch > announced {
            return Err(DropReason::UnannouncedEpoch);
        }
        chunk.check(&self.limits)
    }

    fn start_frame<T: FrameStore<Slot = S>>(
        &mut self,
        chunk: &Chunk<'_>,
        now_ns: u64,
        store: &mut T,
    ) -> Result<usize, DropReason> {
        if self.in_flight.len() >= self.limits.max_frames_in_flight.max(1) {
            let oldest = self
                .in_flight
                .iter()
                .enumerate()
                .min_by_key(|(_, f)| (f.first_ns, f.seq))
                .map_or(0, |(i, _)| i);
            let frame = self.in_flight.swap_remove(oldest);
            self.drop_frame(frame, DropReason::Evicted, store);
        }
        let slot = store
            .reserve(chunk.seq, chunk.payload_length)
            .ok_or(DropReason::NoRoom)?;
        let recycled = self.spare.pop().unwrap_or_default();
        self.in_flight.push(recycled.start(chunk, now_ns, slot));
        Ok(self.in_flight.len() - 1)
    }

    fn drop_frame<T: FrameStore<Slot = S>>(
        &mut self,
        frame: InFlight<S>,
        reason: DropReason,
        store: &mut T,
    ) {
        self.counters.drops[reason.index()] += 1;
        self.counters.frames_dropped += 1;
        self.remember(frame.epoch, frame.seq, Finished::Dropped);
        let (slot, cleared) = frame.into_slot();
        store.release(slot);
        self.spare.push(cleared);
    }

    fn dropped_chunk(&mut self, reason: DropReason) -> Outcome<S> {
        self.counters.drops[reason.index()] += 1;
        Outcome::Dropped(reason)
    }

    fn remember(&mut self, epoch: u64, seq: u64, finished: Finished) {
        self.recent[self.recent_next] = (epoch, seq, finished);
        self.recent_next = (self.recent_next + 1) % RECENT_FRAMES;
        self.recent_len = (self.recent_len + 1).min(RECENT_FRAMES);
    }

    fn recent(&self, epoch: u64, seq: u64) -> Option<Finished> {
        self.recent[..self.recent_len]
            .iter()
            .find(|(e, s, _)| *e == epoch && *s == seq)
            .map(|(_, _, finished)| *finished)
    }
}

impl DropReason {
    /// Whether the reason condemns the chunk's whole frame (it contradicts the frame),
    /// rather than the chunk alone.
    fn drops_frame(self) -> bool {
        matches!(
            self,
            Self::Inconsistent | Self::TraceId | Self::Overlap | Self::Conflict
        )
    }
}
