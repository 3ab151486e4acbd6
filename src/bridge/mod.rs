//! The SHM Tensor Pool Aeron-UDP bridge (Bridge Spec v1.1): frames of a local stream sent
//! as `BridgeFrameChunk`s over Aeron UDP and re-materialized into another host's pools.
//!
//! - [`assembly`]: the receiver's sans-IO frame assembly (chunks in, frames or counted
//!   drops out, fed time).
//! - [`crc32c`]: the optional chunk integrity check (§5.4).

pub mod assembly;
pub mod crc32c;
