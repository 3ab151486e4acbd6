//! Shared-memory layout primitives (Wire Spec §6–§9, §15.21a, §15.22).
pub mod doorbell;
pub mod doorbell_word;
pub mod layout;
pub mod open;
pub mod paths;
pub mod seqlock;
pub mod uri;
