//! The SHM Tensor Pool Aeron-UDP bridge (Bridge Spec v1.1): frames of a local stream sent
//! as `BridgeFrameChunk`s over Aeron UDP and re-materialized into another host's pools.
//!
//! - [`assembly`]: the receiver's sans-IO frame assembly (chunks in, frames or counted
//!   drops out, fed time).
//! - [`chunking`]: the sender's sans-IO cutting of frames into chunk messages.
//! - [`crc32c`]: the optional chunk integrity check (§5.4).
//! - [`rematerialize`]: the receiver's checks of an assembled frame against the source
//!   announce and its choice of local pool (§6).

pub mod assembly;
pub mod chunking;
pub mod crc32c;
pub mod rematerialize;
