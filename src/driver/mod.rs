//! The SHM driver: the sans-IO [`core`] state machine and the code that turns its
//! decisions into files and messages.

pub mod agent;
pub mod core;
pub mod provision;
pub mod wire;
