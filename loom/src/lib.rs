//! tensorpool's seqlock (Wire Spec §8.3, §15.3) and doorbell word, compiled from the
//! crate's own sources so the model checks run the code that ships. With `--cfg loom`
//! (scripts/loom.sh) their atomics are loom's; the tests in `tests/` explore every
//! interleaving and every store a load may read under the C++ memory model, within loom's
//! bounds.

#[path = "../../src/shm/seqlock.rs"]
pub mod seqlock;

#[path = "../../src/shm/doorbell_word.rs"]
pub mod doorbell_word;
