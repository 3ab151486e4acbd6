//! The SHM driver: the sans-IO [`core`] state machine, the [`provision`]ing of SHM files,
//! the [`agent`] duty cycle that binds them to a control plane, and the [`runner`] that
//! makes a process of it over Aeron.

pub mod aeron_plane;
pub mod agent;
pub mod core;
pub mod counters;
pub mod provision;
pub mod runner;
pub mod wire;
