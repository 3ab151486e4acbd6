//! The assembler against the rules of Bridge Spec v1.1 §5.2–§5.4 and §8, with a store in
//! memory; a property test checks it against a model under permuted, duplicated, missing
//! and corrupted chunks.

use super::*;
use proptest::prelude::*;
use std::collections::HashMap;

const STREAM: u32 = 10_000;
const MS: u64 = 1_000_000;

/// Frames in memory, one buffer per reserved slot; counts what is outstanding.
#[derive(Default)]
struct MemStore {
    buffers: HashMap<u64, Vec<u8>>,
    next: u64,
    released: u64,
    refuse: bool,
}

impl FrameStore for MemStore {
    type Slot = u64;
    fn reserve(&mut self, _seq: u64, payload_length: u32) -> Option<u64> {
        if self.refuse {
            return None;
        }
        self.next += 1;
        self.buffers
            .insert(self.next, vec![0; payload_length as usize]);
        Some(self.next)
    }
    fn write(&mut self, slot: &u64, offset: u32, bytes: &[u8]) {
        let buf = self.buffers.get_mut(slot).expect("a reserved slot");
        buf[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
    }
    fn read(&self, slot: &u64, offset: u32, len: u32) -> &[u8] {
        &self.buffers[slot][offset as usize..(offset + len) as usize]
    }
    fn release(&mut self, slot: u64) {
        self.buffers.remove(&slot).expect("released once");
        self.released += 1;
    }
}

fn limits() -> AssemblyLimits {
    AssemblyLimits {
        max_payload_bytes: 1 << 20,
        max_chunk_bytes: 1000,
        timeout_ns: 200 * MS,
        max_frames_in_flight: 4,
        integrity_crc32c: false,
    }
}

/// An owned chunk, so tests can corrupt fields before borrowing it as a [`Chunk`].
#[derive(Debug, Clone, PartialEq)]
struct Owned {
    epoch: u64,
    seq: u64,
    trace_id: u64,
    index: u32,
    count: u32,
    offset: u32,
    payload_length: u32,
    crc: u32,
    header_included: bool,
    header: Vec<u8>,
    bytes: Vec<u8>,
}

impl Owned {
    fn chunk(&self) -> Chunk<'_> {
        Chunk {
            stream_id: STREAM,
            epoch: self.epoch,
            seq: self.seq,
            trace_id: self.trace_id,
            chunk_index: self.index,
            chunk_count: self.count,
            chunk_offset: self.offset,
            chunk_length: self.bytes.len() as u32,
            payload_length: self.payload_length,
            payload_crc32c: self.crc,
            header_included: self.header_included,
            header_bytes: &self.header,
            payload_bytes: &self.bytes,
        }
    }
}

fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((seq as usize + i) % 251) as u8).collect()
}

fn header(seq: u64) -> Vec<u8> {
    (0..HEADER_BLOCK_LEN)
        .map(|i| (seq as usize * 7 + i) as u8)
        .collect()
}

/// The chunks a sender makes of frame `seq` with `len` payload bytes, `chunk` per slice.
fn chunks_of(epoch: u64, seq: u64, len: usize, chunk: usize, trace_id: u64) -> Vec<Owned> {
    let bytes = payload(seq, len);
    let slices: Vec<&[u8]> = if len == 0 {
        vec![&bytes[..]]
    } else {
        bytes.chunks(chunk).collect()
    };
    let count = slices.len() as u32;
    let mut offset = 0;
    slices
        .into_iter()
        .enumerate()
        .map(|(i, slice)| {
            let first = i == 0;
            let h = if first { header(seq) } else { Vec::new() };
            let c = Owned {
                epoch,
                seq,
                trace_id,
                index: i as u32,
                count,
                offset,
                payload_length: len as u32,
                crc: crate::bridge::crc32c::crc32c(&[&h, slice]),
                header_included: first,
                header: h,
                bytes: slice.to_vec(),
            };
            offset += slice.len() as u32;
            c
        })
        .collect()
}

fn announced(epoch: u64, store: &mut MemStore) -> StreamAssembler<u64> {
    let mut a = StreamAssembler::new(STREAM, limits());
    a.on_source_announce(epoch, store);
    a
}

fn feed(
    a: &mut StreamAssembler<u64>,
    store: &mut MemStore,
    chunks: &[Owned],
    now: u64,
) -> Vec<Outcome<u64>> {
    chunks
        .iter()
        .map(|c| a.on_chunk(&c.chunk(), now, store))
        .collect()
}

fn complete(outcome: &Outcome<u64>) -> &CompleteFrame<u64> {
    match outcome {
        Outcome::Complete(frame) => frame,
        other => panic!("expected a complete frame, got {other:?}"),
    }
}

#[test]
fn chunks_in_any_order_make_the_frame_byte_exact_with_its_header_and_trace_id() {
    let mut store = MemStore::default();
    let mut a = announced(3, &mut store);
    let mut chunks = chunks_of(3, 42, 2500, 1000, 0xABCD);
    chunks.reverse();
    let outcomes = feed(&mut a, &mut store, &chunks, 0);
    assert_eq!(&outcomes[..2], &[Outcome::Accepted, Outcome::Accepted]);
    let frame = complete(&outcomes[2]);
    assert_eq!(
        (
            frame.stream_id,
            frame.epoch,
            frame.seq,
            frame.trace_id,
            frame.payload_length
        ),
        (STREAM, 3, 42, 0xABCD, 2500)
    );
    assert_eq!(frame.header.to_vec(), header(42));
    assert_eq!(store.buffers[&frame.slot], payload(42, 2500));
    assert_eq!(a.counters().frames_complete, 1);
    assert_eq!(a.frames_in_flight(), 0);
}

#[test]
fn an_empty_payload_is_one_chunk_with_the_header() {
    let mut store = MemStore::default();
    let mut a = announced(1, &mut store);
    let chunks = chunks_of(1, 7, 0, 1000, 0);
    assert_eq!(chunks.len(), 1);
    let outcomes = feed(&mut a, &mut store, &chunks, 0);
    assert_eq!(complete(&outcomes[0]).payload_length, 0);
}

#[test]
fn nothing_is_taken_before_a_source_announce_nor_from_another_epoch() {
    let mut store = MemStore::default();
    let mut a = StreamAssembler::new(STREAM, limits());
    let chunks = chunks_of(2, 1, 10, 1000, 0);
    assert_eq!(
        feed(&mut a, &mut store, &chunks, 0),
        [Outcome::Dropped(DropReason::NoAnnounce)]
    );
    a.on_source_announce(2, &mut store);
    let newer = chunks_of(3, 1, 10, 1000, 0);
    assert_eq!(
        feed(&mut a, &mut store, &newer, 0),
        [Outcome::Dropped(DropReason::UnannouncedEpoch)]
    );
    let older = chunks_of(1, 1, 10, 1000, 0);
    assert_eq!(
        feed(&mut a, &mut store, &older, 0),
        [Outcome::Dropped(DropReason::StaleEpoch)]
    );
    assert!(
        store.buffers.is_empty(),
        "no room reserved for dropped chunks"
    );
    assert!(matches!(
        feed(&mut a, &mut store, &chunks, 0)[0],
        Outcome::Complete(_)
    ));
}

#[test]
fn a_new_epoch_drops_the_frames_in_flight_and_later_chunks_of_the_old_one() {
    let mut store = MemStore::default();
    let mut a = announced(1, &mut store);
    let old = chunks_of(1, 5, 3000, 1000, 0);
    feed(&mut a, &mut store, &old[..2], 0);
    assert_eq!(a.frames_in_flight(), 1);
    a.on_source_announce(2, &mut store);
    assert_eq!(a.frames_in_flight(), 0);
    assert_eq!(store.released, 1, "the slot is given back");
    assert_eq!(a.counters().drops[DropReason::EpochChanged.index()], 1);
    assert_eq!(
        feed(&mut a, &mut store, &old[2..], 0),
        [Outcome::Dropped(DropReason::StaleEpoch)]
    );
    // An older announce arriving late changes nothing.
    a.on_source_announce(1, &mut store);
    assert_eq!(a.announced_epoch(), Some(2));
}

#[test]
fn every_rule_a_chunk_breaks_alone_drops_only_that_chunk() {
    type Corruption = Box<dyn Fn(&mut Owned)>;
    let cases: Vec<(DropReason, Corruption)> = vec![
        (DropReason::ChunkCount, Box::new(|c| c.count = 0)),
        (
            DropReason::ChunkCount,
            Box::new(|c| c.count = MAX_CHUNK_COUNT + 1),
        ),
        (DropReason::ChunkIndex, Box::new(|c| c.index = c.count)),
        (
            DropReason::HeaderPresence,
            Box::new(|c| c.header_included = !c.header_included),
        ),
        (DropReason::HeaderLength, Box::new(|c| c.header.push(0))),
        (
            DropReason::ChunkLength,
            Box::new(|c| c.bytes = vec![1; 1001]),
        ),
        (
            DropReason::PayloadTooLarge,
            Box::new(|c| c.payload_length = (1 << 20) + 1),
        ),
        (
            DropReason::ChunkOffset,
            Box::new(|c| c.offset = c.payload_length),
        ),
    ];
    for (reason, corrupt) in cases {
        let mut store = MemStore::default();
        let mut a = announced(1, &mut store);
        let mut chunks = chunks_of(1, 9, 2500, 1000, 0);
        corrupt(&mut chunks[1]);
        let outcomes = feed(&mut a, &mut store, &chunks, 0);
        assert_eq!(outcomes[1], Outcome::Dropped(reason), "{reason:?}");
        assert_eq!(a.counters().drops[reason.index()], 1, "{reason:?}");
        // The rest of the frame is still taken; it just cannot complete without the chunk.
        assert_eq!(outcomes[2], Outcome::Accepted, "{reason:?}");
        assert_eq!(a.frames_in_flight(), 1, "{reason:?}");
    }
}

#[test]
fn chunk_zero_must_carry_the_whole_header_at_offset_zero() {
    let mut store = MemStore::default();
    let mut a = announced(1, &mut store);
    let mut chunks = chunks_of(1, 9, 100, 1000, 0);
    chunks[0].header.truncate(255);
    assert_eq!(
        feed(&mut a, &mut store, &chunks, 0),
        [Outcome::Dropped(DropReason::HeaderLength)]
    );
    let mut chunks = chunks_of(1, 9, 100, 1000, 0);
    chunks[0].offset = 1;
    chunks[0].bytes.pop();
    assert_eq!(
        feed(&mut a, &mut store, &chunks, 0),
        [Outcome::Dropped(DropReason::ChunkOffset)]
    );
}

#[test]
fn identical_duplicates_are_ignored_and_conflicts_drop_the_frame() {
    let mut store = MemStore::default();
    let mut a = announced(1, &mut store);
    let chunks = chunks_of(1, 11, 2500, 1000, 0);
    feed(&mut a, &mut store, &chunks[..2], 0);
    assert_eq!(
        feed(&mut a, &mut store, &chunks[1..2], 0),
        [Outcome::Duplicate]
    );
    assert_eq!(
        feed(&mut a, &mut store, &chunks[..1], 0),
        [Outcome::Duplicate]
    );
    let mut conflicting = chunks[1].clone();
    conflicting.bytes[0] ^= 0xFF;
    assert_eq!(
        feed(&mut a, &mut store, &[conflicting], 0),
        [Outcome::Dropped(DropReason::Conflict)]
    );
    assert_eq!(a.frames_in_flight(), 0);
    assert_eq!(store.released, 1);
    // The frame's last chunk finds it dropped: no new assembly starts.
    assert_eq!(
        feed(&mut a, &mut store, &chunks[2..], 0),
        [Outcome::Dropped(DropReason::FrameDropped)]
    );
    assert!(store.buffers.is_empty());
    // A chunk of a frame already complete is a duplicate, not a new frame.
    let done = chunks_of(1, 12, 10, 1000, 0);
    feed(&mut a, &mut store, &done, 0);
    assert_eq!(feed(&mut a, &mut store, &done, 0), [Outcome::Duplicate]);
}

#[test]
fn overlaps_and_contradicting_identity_drop_the_frame() {
    let base = chunks_of(1, 13, 2500, 1000, 77);
    let mut overlap = base[1].clone();
    overlap.index = 2;
    overlap.offset = 1500;
    overlap.bytes = vec![0; 1000];
    let mut trace = base[1].clone();
    trace.trace_id = 78;
    let mut length = base[1].clone();
    length.payload_length = 2400;
    let mut count = base[1].clone();
    count.count = 4;
    for (reason, intruder) in [
        (DropReason::Overlap, overlap),
        (DropReason::TraceId, trace),
        (DropReason::Inconsistent, length),
        (DropReason::Inconsistent, count),
    ] {
        let mut store = MemStore::default();
        let mut a = announced(1, &mut store);
        feed(&mut a, &mut store, &base[..2], 0);
        assert_eq!(
            feed(&mut a, &mut store, &[intruder], 0),
            [Outcome::Dropped(reason)],
            "{reason:?}"
        );
        assert_eq!(a.counters().frames_dropped, 1, "{reason:?}");
        assert_eq!(store.released, 1, "{reason:?}");
    }
}

#[test]
fn slices_that_do_not_add_up_to_the_payload_drop_the_frame() {
    // Three chunks announced, two slices cover everything.
    let mut store = MemStore::default();
    let mut a = announced(1, &mut store);
    let mut chunks = chunks_of(1, 14, 2000, 1000, 0);
    for c in &mut chunks {
        c.count = 3;
    }
    let outcomes = feed(&mut a, &mut store, &chunks, 0);
    assert_eq!(outcomes[1], Outcome::Dropped(DropReason::Inconsistent));
    assert_eq!(store.released, 1);
}

#[test]
fn a_frame_not_complete_within_the_timeout_is_dropped_counting_from_its_first_chunk() {
    let mut store = MemStore::default();
    let mut a = announced(1, &mut store);
    let chunks = chunks_of(1, 15, 5000, 1000, 0);
    // A trickle: one chunk every 60 ms never resets the clock.
    for (i, c) in chunks[..4].iter().enumerate() {
        a.on_chunk(&c.chunk(), i as u64 * 60 * MS, &mut store);
        a.poll_expired(i as u64 * 60 * MS, &mut store);
    }
    assert_eq!(a.next_deadline_ns(), Some(200 * MS));
    assert_eq!(a.poll_expired(199 * MS, &mut store), 0);
    assert_eq!(a.poll_expired(200 * MS, &mut store), 1);
    assert_eq!(a.counters().drops[DropReason::Timeout.index()], 1);
    assert_eq!(store.released, 1);
    assert_eq!(
        feed(&mut a, &mut store, &chunks[4..], 200 * MS),
        [Outcome::Dropped(DropReason::FrameDropped)]
    );
}

#[test]
fn frames_in_flight_are_bounded_and_the_oldest_gives_way() {
    let mut store = MemStore::default();
    let mut a = announced(1, &mut store);
    for seq in 0..6u64 {
        let chunks = chunks_of(1, seq, 2000, 1000, 0);
        feed(&mut a, &mut store, &chunks[..1], seq * MS);
    }
    assert_eq!(a.frames_in_flight(), 4);
    assert_eq!(a.counters().drops[DropReason::Evicted.index()], 2);
    assert_eq!(
        store.buffers.len(),
        4,
        "only the frames in flight hold room"
    );
    // The newest still completes; the evicted ones are gone for good.
    let last = chunks_of(1, 5, 2000, 1000, 0);
    assert!(matches!(
        feed(&mut a, &mut store, &last[1..], 6 * MS)[0],
        Outcome::Complete(_)
    ));
    let first = chunks_of(1, 0, 2000, 1000, 0);
    assert_eq!(
        feed(&mut a, &mut store, &first[1..], 6 * MS),
        [Outcome::Dropped(DropReason::FrameDropped)]
    );
}

#[test]
fn no_room_in_the_store_drops_the_chunk() {
    let mut store = MemStore {
        refuse: true,
        ..MemStore::default()
    };
    let mut a = announced(1, &mut store);
    let chunks = chunks_of(1, 1, 10, 1000, 0);
    assert_eq!(
        feed(&mut a, &mut store, &chunks, 0),
        [Outcome::Dropped(DropReason::NoRoom)]
    );
}

#[test]
fn with_integrity_on_a_missing_or_wrong_crc_drops_the_chunk() {
    let mut store = MemStore::default();
    let mut a = StreamAssembler::new(
        STREAM,
        AssemblyLimits {
            integrity_crc32c: true,
            ..limits()
        },
    );
    a.on_source_announce(1, &mut store);
    let mut chunks = chunks_of(1, 1, 2500, 1000, 0);
    chunks[1].crc = 0;
    chunks[2].bytes[3] ^= 1;
    let outcomes = feed(&mut a, &mut store, &chunks, 0);
    assert_eq!(
        outcomes[0],
        Outcome::Accepted,
        "chunk 0 covers header || payload"
    );
    assert_eq!(outcomes[1], Outcome::Dropped(DropReason::Crc));
    assert_eq!(outcomes[2], Outcome::Dropped(DropReason::Crc));
}

#[test]
fn chunks_of_the_wire_codec_are_read_field_by_field() {
    use crate::protocol::bridge::{Bool, BridgeFrameChunk, BridgeFrameChunkDecoder};
    let h = header(1);
    let bytes = payload(1, 64);
    let msg = BridgeFrameChunk {
        stream_id: STREAM,
        epoch: 4,
        seq: 1,
        trace_id: None,
        chunk_index: 0,
        chunk_count: 1,
        chunk_offset: 0,
        chunk_length: 64,
        payload_length: 64,
        payload_crc32c: 0,
        header_included: Bool::True,
        header_bytes: &h,
        payload_bytes: &bytes,
    };
    let mut buf = vec![0; msg.encoded_len()];
    msg.encode(&mut buf).expect("encodes");
    let decoder = BridgeFrameChunkDecoder::wrap(&buf).expect("decodes");
    let chunk = Chunk::from_decoder(&decoder).expect("well formed");
    assert_eq!(
        (
            chunk.epoch,
            chunk.trace_id,
            chunk.header_bytes,
            chunk.payload_bytes
        ),
        (4, 0, &h[..], &bytes[..])
    );
    buf[8 + 52] = 2; // headerIncluded: not a Bool
    let decoder = BridgeFrameChunkDecoder::wrap(&buf).expect("lengths are fine");
    assert_eq!(Chunk::from_decoder(&decoder), Err(DropReason::Malformed));
}

/// What a test does to one frame's chunks before they arrive: lose one, send one twice,
/// or add a copy of one with a byte flipped.
#[derive(Debug, Clone)]
enum Fault {
    Lose(usize),
    Duplicate(usize),
    CorruptByte(usize),
}

proptest! {
    /// Frames whose chunks arrive permuted, duplicated, lost or with corrupted copies: a
    /// frame is complete exactly when all its chunks arrived, then byte-exact; a lost
    /// chunk leaves it incomplete until the timeout; every reserved slot is either handed
    /// out or given back.
    #[test]
    fn assembly_matches_the_model(
        frames in prop::collection::vec((0usize..4000, 1usize..1200, prop::option::of(prop_oneof![
            any::<usize>().prop_map(Fault::Lose),
            any::<usize>().prop_map(Fault::Duplicate),
            any::<usize>().prop_map(Fault::CorruptByte),
        ])), 1..6),
        order_seed in any::<u64>(),
    ) {
        let mut store = MemStore::default();
        // Integrity on: a corrupted copy is refused by its CRC, whatever order it comes in.
        let mut a = StreamAssembler::new(STREAM, AssemblyLimits { max_chunk_bytes: 1200, max_frames_in_flight: 8, integrity_crc32c: true, ..limits() });
        a.on_source_announce(1, &mut store);
        let mut arrivals = Vec::new();
        let mut intact = Vec::new();
        for (seq, (len, chunk, fault)) in frames.iter().enumerate() {
            let mut chunks = chunks_of(1, seq as u64, *len, *chunk, seq as u64 + 1);
            let mut whole = true;
            match fault {
                Some(Fault::Lose(i)) => { chunks.remove(i % chunks.len()); whole = false; }
                Some(Fault::Duplicate(i)) => { let c = chunks[i % chunks.len()].clone(); chunks.push(c); }
                Some(Fault::CorruptByte(i)) => {
                    let n = chunks.len();
                    let mut c = chunks[i % n].clone();
                    if let Some(b) = c.bytes.first_mut() { *b ^= 0x5A; chunks.push(c); }
                }
                None => {}
            }
            intact.push(whole);
            arrivals.extend(chunks);
        }
        // A deterministic shuffle from the seed.
        let mut state = order_seed | 1;
        for i in (1..arrivals.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            arrivals.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut completed = HashMap::new();
        for c in &arrivals {
            if let Outcome::Complete(frame) = a.on_chunk(&c.chunk(), 0, &mut store) {
                prop_assert!(completed.insert(frame.seq, frame.slot).is_none(), "completed twice");
            }
        }
        for (seq, (len, _, _)) in frames.iter().enumerate() {
            let seq = seq as u64;
            match completed.get(&seq) {
                Some(slot) => {
                    prop_assert_eq!(&store.buffers[slot], &payload(seq, *len));
                }
                None => prop_assert!(!intact[seq as usize], "intact frame {} not complete", seq),
            }
        }
        a.poll_expired(u64::MAX, &mut store);
        prop_assert_eq!(a.frames_in_flight(), 0);
        prop_assert_eq!(store.buffers.len(), completed.len(), "every other slot given back");
    }
}
