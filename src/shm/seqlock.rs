//! `seq_commit` seqlock encoding and protocol (Wire Spec §8.3, §15.3, §15.18).
//!
//! The first 8 bytes of every header slot hold `seq_commit`:
//!
//! ```text
//! logical_sequence = seq_commit >> 1
//! commit_state     = seq_commit & 1      (0 = IN-PROGRESS, 1 = COMMITTED)
//! ```
//!
//! The logical sequence is therefore 63 bits wide; the top bit of a `u64` sequence is
//! discarded by the encoding.
//!
//! **Writer** ([`SeqCommit::store_in_progress`] → payload/header writes →
//! [`SeqCommit::store_committed`]) and **reader** ([`SeqCommit::begin_read`] → data
//! reads → [`SeqCommit::validate_read`]) follow the classic seqlock pattern. The
//! spec's "release store"/"acquire load" wording is necessary but not sufficient on
//! weakly ordered CPUs, so two fences are added (see the method docs):
//!
//! * writer: a `Release` fence right after the IN-PROGRESS store, so no later data
//!   write can become visible before the IN-PROGRESS word;
//! * reader: an `Acquire` fence right before re-reading the word, so no earlier data
//!   read can be satisfied after the re-read.
//!
//! Data accesses between the two seqlock operations must themselves be atomic (any
//! ordering, typically `Relaxed`) or volatile reads of shared memory that tolerate
//! tearing; a reader must never act on data until [`SeqCommit::validate_read`] has
//! returned `Ok`.

// The `loom/` crate compiles this file with `--cfg loom` to model-check it
// (`scripts/loom.sh`); everything else uses the standard atomics.
#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Encodes logical sequence `seq` as IN-PROGRESS (`seq << 1`).
#[inline]
pub const fn in_progress(seq: u64) -> u64 {
    seq << 1
}

/// Encodes logical sequence `seq` as COMMITTED (`(seq << 1) | 1`).
#[inline]
pub const fn committed(seq: u64) -> u64 {
    (seq << 1) | 1
}

/// Extracts the logical sequence from a `seq_commit` word (`word >> 1`).
pub const fn logical_sequence(word: u64) -> u64 {
    word >> 1
}

/// Whether a `seq_commit` word has the COMMITTED bit set.
pub const fn is_committed(word: u64) -> bool {
    word & 1 == 1
}

/// Why a seqlock read was rejected (all are DROPs, not errors, per §15.21).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SeqReadError {
    /// The slot is being written (LSB = 0).
    #[error("slot not committed (seq_commit {word:#x}, logical {})", logical_sequence(*word))]
    NotCommitted {
        /// The observed `seq_commit` word.
        word: u64,
    },
    /// The slot holds an older frame than expected (§15.3: stale, skip).
    #[error("slot holds stale sequence {found}, expected {expected}")]
    Stale {
        /// The expected logical sequence.
        expected: u64,
        /// The logical sequence found in the slot.
        found: u64,
    },
    /// The slot was already overwritten by a newer frame.
    #[error("slot overwritten by sequence {found}, expected {expected}")]
    Overwritten {
        /// The expected logical sequence.
        expected: u64,
        /// The logical sequence found in the slot.
        found: u64,
    },
    /// `seq_commit` changed while the data was being read (§15.3: `drops_late`).
    #[error("seq_commit changed during read ({first:#x} -> {second:#x})")]
    Changed {
        /// The word observed by `begin_read`.
        first: u64,
        /// The word observed by `validate_read`.
        second: u64,
    },
}

/// A view of one slot's `seq_commit` word (the first 8 bytes of a header slot).
#[derive(Debug, Clone, Copy)]
pub struct SeqCommit<'a> {
    word: &'a AtomicU64,
}

impl<'a> SeqCommit<'a> {
    /// Wraps an existing atomic word.
    pub const fn new(word: &'a AtomicU64) -> Self {
        Self { word }
    }

    /// Wraps the `seq_commit` word at `ptr` inside a shared mapping.
    ///
    /// # Safety
    ///
    /// * `ptr` must be non-null and 8-byte aligned;
    /// * the 8 bytes at `ptr` must stay valid (mapped) for the whole lifetime `'a`
    ///   chosen by the caller, i.e. the mapping must outlive the returned view;
    /// * all concurrent accesses to those bytes (in this and other processes) must be
    ///   atomic; for a read-only mapping only [`load`](Self::load) and the read helpers
    ///   may be used (the store methods would fault).
    #[cfg(not(loom))]
    #[inline]
    pub unsafe fn from_ptr(ptr: *mut u64) -> Self {
        // SAFETY: forwarded to the caller (alignment, validity for 'a, atomic access).
        Self {
            word: unsafe { AtomicU64::from_ptr(ptr) },
        }
    }

    /// The underlying atomic word.
    pub const fn as_atomic(&self) -> &'a AtomicU64 {
        self.word
    }

    /// Loads the raw `seq_commit` word with acquire ordering.
    #[inline]
    pub fn load(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// Writer step 1: marks the slot IN-PROGRESS for `seq` (release store + release fence).
    ///
    /// A release *store* only orders the writes *before* it; the payload writes that
    /// follow could still become visible to another CPU before the IN-PROGRESS word,
    /// letting a reader see new data together with the old COMMITTED word. The
    /// release *fence* after the store forbids that: if a reader observes any write
    /// made after this call, its acquire fence (in [`validate_read`](Self::validate_read))
    /// synchronizes with this fence and the re-read sees IN-PROGRESS or later.
    #[inline]
    pub fn store_in_progress(&self, seq: u64) {
        self.word.store(in_progress(seq), Ordering::Release);
        fence(Ordering::Release);
    }

    /// Writer final step: publishes the slot as COMMITTED for `seq` (release store).
    #[inline]
    pub fn store_committed(&self, seq: u64) {
        self.word.store(committed(seq), Ordering::Release);
    }

    /// Reader step 1: acquire-loads the word and checks it is COMMITTED for `expected_seq`.
    ///
    /// Returns the observed word, to be passed to [`validate_read`](Self::validate_read)
    /// after the caller has read the slot's header and payload.
    #[inline]
    pub fn begin_read(&self, expected_seq: u64) -> Result<u64, SeqReadError> {
        let word = self.load();
        check_word(word, expected_seq)?;
        Ok(word)
    }

    /// Reader final step: acquire fence, re-read, and require the word to be unchanged.
    ///
    /// The fence keeps the caller's preceding data reads from being reordered after
    /// the re-read (an acquire *load* alone only orders accesses that follow it).
    #[inline]
    pub fn validate_read(&self, first: u64) -> Result<(), SeqReadError> {
        fence(Ordering::Acquire);
        let second = self.word.load(Ordering::Relaxed);
        if second != first {
            return Err(SeqReadError::Changed { first, second });
        }
        Ok(())
    }

    /// Runs `read` between [`begin_read`](Self::begin_read) and
    /// [`validate_read`](Self::validate_read); its result may only be trusted on `Ok`.
    pub fn read<T>(&self, expected_seq: u64, read: impl FnOnce() -> T) -> Result<T, SeqReadError> {
        let first = self.begin_read(expected_seq)?;
        let value = read();
        self.validate_read(first)?;
        Ok(value)
    }
}

/// Checks a `seq_commit` word against the expected logical sequence (no memory access).
pub const fn check_word(word: u64, expected_seq: u64) -> Result<(), SeqReadError> {
    if !is_committed(word) {
        return Err(SeqReadError::NotCommitted { word });
    }
    let found = logical_sequence(word);
    // Compare in the 63-bit domain the encoding can represent.
    let expected = logical_sequence(in_progress(expected_seq));
    if found < expected {
        Err(SeqReadError::Stale { expected, found })
    } else if found > expected {
        Err(SeqReadError::Overwritten { expected, found })
    } else {
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU8};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn encoding() {
        assert_eq!(in_progress(0), 0);
        assert_eq!(committed(0), 1);
        assert_eq!(in_progress(5), 10);
        assert_eq!(committed(5), 11);
        assert_eq!(logical_sequence(11), 5);
        assert_eq!(logical_sequence(10), 5);
        assert!(is_committed(11));
        assert!(!is_committed(10));
        let max = u64::MAX >> 1;
        assert_eq!(logical_sequence(committed(max)), max);
        assert_eq!(committed(max), u64::MAX);
        // Top bit is dropped by the encoding.
        assert_eq!(logical_sequence(committed(u64::MAX)), max);
        for s in [1u64, 2, 1000, 1 << 40] {
            assert_eq!(logical_sequence(in_progress(s)), s);
            assert_eq!(logical_sequence(committed(s)), s);
            assert!(is_committed(committed(s)));
            assert!(!is_committed(in_progress(s)));
        }
    }

    #[test]
    fn check_word_classifies() {
        assert_eq!(check_word(committed(7), 7), Ok(()));
        assert_eq!(
            check_word(in_progress(7), 7),
            Err(SeqReadError::NotCommitted { word: 14 })
        );
        assert_eq!(
            check_word(committed(6), 7),
            Err(SeqReadError::Stale {
                expected: 7,
                found: 6
            })
        );
        assert_eq!(
            check_word(committed(8), 7),
            Err(SeqReadError::Overwritten {
                expected: 7,
                found: 8
            })
        );
        assert_eq!(check_word(committed(u64::MAX), u64::MAX), Ok(()));
    }

    #[test]
    fn single_thread_protocol() {
        let w = AtomicU64::new(0);
        let s = SeqCommit::new(&w);
        assert!(matches!(
            s.begin_read(0),
            Err(SeqReadError::NotCommitted { .. })
        ));
        s.store_in_progress(3);
        assert_eq!(s.load(), 6);
        s.store_committed(3);
        assert_eq!(s.load(), 7);
        let first = s.begin_read(3).unwrap();
        assert_eq!(s.validate_read(first), Ok(()));
        assert_eq!(s.read(3, || 42), Ok(42));
        let first = s.begin_read(3).unwrap();
        s.store_in_progress(4);
        assert_eq!(
            s.validate_read(first),
            Err(SeqReadError::Changed {
                first: 7,
                second: 8
            })
        );
        assert!(s.as_atomic().load(Ordering::Relaxed) == 8);
    }

    #[test]
    fn from_ptr_over_shared_mapping() {
        let mut map = memmap2::MmapMut::map_anon(4096).unwrap();
        let ptr = map.as_mut_ptr().cast::<u64>();
        assert_eq!(ptr.align_offset(8), 0);
        // SAFETY: page-aligned pointer into a live mapping that outlives `s`, accessed
        // only atomically below.
        let s = unsafe { SeqCommit::from_ptr(ptr) };
        s.store_in_progress(9);
        s.store_committed(9);
        assert_eq!(s.begin_read(9), Ok(committed(9)));
        assert_eq!(&map[..8], &committed(9).to_le_bytes());
    }

    fn pattern(seq: u64, i: usize) -> u64 {
        seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
    }

    /// Writer rewrites a 4 KiB buffer (word and byte granularity) under the seqlock; the
    /// reader must never accept a torn snapshot.
    #[test]
    fn stress_no_torn_reads() {
        const WORDS: usize = 4096 / 8;
        struct Shared {
            seq: AtomicU64,
            words: Vec<AtomicU64>,
            bytes: Vec<AtomicU8>,
            stop: AtomicBool,
        }
        let shared = Arc::new(Shared {
            seq: AtomicU64::new(0),
            words: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            bytes: (0..256).map(|_| AtomicU8::new(0)).collect(),
            stop: AtomicBool::new(false),
        });

        let writer = {
            let sh = Arc::clone(&shared);
            std::thread::spawn(move || {
                let s = SeqCommit::new(&sh.seq);
                let mut seq = 1u64;
                while !sh.stop.load(Ordering::Relaxed) {
                    s.store_in_progress(seq);
                    for (i, w) in sh.words.iter().enumerate() {
                        w.store(pattern(seq, i), Ordering::Relaxed);
                    }
                    for (i, b) in sh.bytes.iter().enumerate() {
                        b.store((pattern(seq, i) & 0xff) as u8, Ordering::Relaxed);
                    }
                    s.store_committed(seq);
                    // Mostly back-to-back rewrites (maximum overlap with the reader),
                    // with short pauses so committed windows exist even on a loaded
                    // machine with few CPUs.
                    if seq % 8 == 0 {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    seq += 1;
                }
                seq
            })
        };

        let deadline = Instant::now() + Duration::from_millis(700);
        let s = SeqCommit::new(&shared.seq);
        let (mut accepted, mut rejected) = (0u64, 0u64);
        let mut snapshot = vec![0u64; WORDS];
        let mut bytes = [0u8; 256];
        while Instant::now() < deadline {
            let current = s.load();
            if !is_committed(current) {
                rejected += 1;
                continue;
            }
            let expected = logical_sequence(current);
            let result = s.read(expected, || {
                for (dst, w) in snapshot.iter_mut().zip(&shared.words) {
                    *dst = w.load(Ordering::Relaxed);
                }
                for (dst, b) in bytes.iter_mut().zip(&shared.bytes) {
                    *dst = b.load(Ordering::Relaxed);
                }
            });
            match result {
                Ok(()) => {
                    accepted += 1;
                    for (i, v) in snapshot.iter().enumerate() {
                        assert_eq!(*v, pattern(expected, i), "torn word {i} at seq {expected}");
                    }
                    for (i, v) in bytes.iter().enumerate() {
                        assert_eq!(
                            *v,
                            (pattern(expected, i) & 0xff) as u8,
                            "torn byte {i} at seq {expected}"
                        );
                    }
                }
                Err(_) => rejected += 1,
            }
        }
        shared.stop.store(true, Ordering::Relaxed);
        let written = writer.join().unwrap();
        eprintln!("seqlock stress: {written} writes, {accepted} accepted, {rejected} rejected");
        assert!(written > 1, "writer made no progress");
        assert!(accepted > 0, "no read accepted (rejected {rejected})");
    }
}
