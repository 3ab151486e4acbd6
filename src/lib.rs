//! tensorpool: a Rust implementation of the Shared-Memory Tensor Pool Driver Model v1.0
//! (wire format: Shared-Memory Tensor Pool Wire Specification v1.2), running beside a
//! stock C Aeron media driver.
//!
//! Module map:
//! - [`protocol`]: SBE codecs generated from `schemas/*.xml` plus typed helpers.
//! - [`shm`]: shared-memory layout primitives (superblock, header slots, seqlock, region
//!   URIs, canonical paths, safe mapping).
//! - [`config`]: driver configuration (TOML + environment overrides + validation).
//! - [`clock`]: the monotonic and wall clocks the driver and clients share.
//! - [`tool`]: the `tp` operator tool's subcommands (status, inspect, decode, shutdown, gc).

pub mod bridge;
pub mod client;
pub mod clock;
pub mod config;
pub mod driver;
pub mod protocol;
pub mod shm;
pub mod tool;
pub mod transport;
