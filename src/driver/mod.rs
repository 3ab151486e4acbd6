//! The SHM driver: the sans-IO [`core`] state machine, the [`provision`]ing of SHM files,
//! the [`agent`] duty cycle that binds them to a control plane, the [`runner`] that
//! makes a process of it over Aeron, and the [`hosted`] driver that a stock media driver's
//! duty cycle runs (the aeronmd plugin).

pub mod aeron_plane;
pub mod agent;
pub mod core;
pub mod counters;
pub mod endpoints;
pub mod hosted;
pub mod lease_counters;
pub mod ownership;
pub mod provision;
pub mod recovery;
pub mod runner;
pub mod wire;
