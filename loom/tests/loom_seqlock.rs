//! The seqlock under loom: a writer rewrites one header slot (sequence 1, then 2) while a
//! reader reads it; no interleaving and no permitted reordering lets the reader accept a
//! torn slot (words of two frames) or a reused one (another frame's data under the
//! sequence it expected). The data words are relaxed atomics, as the crate's rule for
//! data read between `begin_read` and `validate_read` requires.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU64, Ordering};
use loom::sync::Arc;
use loom::thread;
use tensorpool_loom::seqlock::{committed, in_progress, is_committed, logical_sequence, SeqCommit};

/// A header slot: the `seq_commit` word and two data words standing for the header and
/// payload, which must always belong to one frame.
struct Slot {
    seq_commit: AtomicU64,
    data: [AtomicU64; 2],
}

impl Slot {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            seq_commit: AtomicU64::new(0),
            data: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }
}

/// The data of the frame with sequence `seq` (distinct per word and per frame).
fn word(seq: u64, i: usize) -> u64 {
    seq * 100 + i as u64
}

/// The producer's order of writes (src/client/producer/writer.rs): IN-PROGRESS, data,
/// COMMITTED, for each frame into the same slot.
fn writer(slot: &Slot, frames: std::ops::RangeInclusive<u64>) {
    let seq_commit = SeqCommit::new(&slot.seq_commit);
    for seq in frames {
        seq_commit.store_in_progress(seq);
        for (i, w) in slot.data.iter().enumerate() {
            w.store(word(seq, i), Ordering::Relaxed);
        }
        seq_commit.store_committed(seq);
    }
}

/// Reads the slot expecting `expected`; returns the data only if the seqlock accepted it.
fn read(slot: &Slot, expected: u64) -> Option<[u64; 2]> {
    SeqCommit::new(&slot.seq_commit)
        .read(expected, || {
            [
                slot.data[0].load(Ordering::Relaxed),
                slot.data[1].load(Ordering::Relaxed),
            ]
        })
        .ok()
}

#[test]
fn a_reader_never_accepts_a_torn_slot() {
    loom::model(|| {
        let slot = Slot::new();
        let w = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || writer(&slot, 1..=2))
        };
        // The reader takes whatever committed frame it finds, as a consumer that lost
        // track would: the data must be that frame's, whole.
        let word_seen = slot.seq_commit.load(Ordering::Acquire);
        if is_committed(word_seen) {
            let seq = logical_sequence(word_seen);
            if let Some(data) = read(&slot, seq) {
                assert_eq!(
                    data,
                    [word(seq, 0), word(seq, 1)],
                    "torn read of frame {seq}"
                );
            }
        }
        w.join().unwrap();
    });
}

#[test]
fn a_reader_never_accepts_a_reused_slot() {
    loom::model(|| {
        let slot = Slot::new();
        writer(&slot, 1..=1);
        let w = {
            let slot = Arc::clone(&slot);
            // The producer laps the ring: the slot the descriptor named is reused.
            thread::spawn(move || writer(&slot, 2..=2))
        };
        // The descriptor said sequence 1.
        if let Some(data) = read(&slot, 1) {
            assert_eq!(
                data,
                [word(1, 0), word(1, 1)],
                "frame 2's data accepted as 1"
            );
        }
        w.join().unwrap();
    });
}

/// The model can fail: without the writer's release fence after IN-PROGRESS (the
/// reordering src/shm/seqlock.rs documents), loom finds a reader that accepts frame 1's
/// commit word around frame 2's data.
#[test]
#[should_panic(expected = "torn")]
fn without_the_writers_fence_loom_finds_a_torn_read() {
    loom::model(|| {
        let slot = Slot::new();
        {
            let seq_commit = &slot.seq_commit;
            seq_commit.store(committed(1), Ordering::Release);
            slot.data[0].store(word(1, 0), Ordering::Relaxed);
            slot.data[1].store(word(1, 1), Ordering::Relaxed);
        }
        let w = {
            let slot = Arc::clone(&slot);
            thread::spawn(move || {
                slot.seq_commit.store(in_progress(2), Ordering::Release);
                // No fence here.
                for (i, w) in slot.data.iter().enumerate() {
                    w.store(word(2, i), Ordering::Relaxed);
                }
                slot.seq_commit.store(committed(2), Ordering::Release);
            })
        };
        if let Some(data) = read(&slot, 1) {
            assert_eq!(data, [word(1, 0), word(1, 1)], "torn");
        }
        w.join().unwrap();
    });
}
