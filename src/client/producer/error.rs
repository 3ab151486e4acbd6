//! Typed failures of the producer: setting it up, and publishing one frame.

use crate::client::link::LinkError;
use crate::client::tensor::TensorError;
use crate::shm::open::BaseDirError;
use crate::transport::TransportError;

/// Why a producer could not be created or run a duty cycle.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// The allowed SHM base directories are unusable (none, or not absolute).
    #[error("allowed shm base directories: {0}")]
    AllowedBaseDirs(#[from] BaseDirError),
    /// Connecting to the media driver or setting up the control streams failed.
    #[error("control link: {0}")]
    Link(#[from] LinkError),
    /// Aeron failed (adding a data-stream publication, or a duty cycle of the client).
    #[error("aeron: {0}")]
    Transport(#[from] TransportError),
}

/// Why a frame was not published. Every case leaves the producer usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No lease is held (not attached yet, or revoked / lost / driver shut down); the
    /// producer reattaches from `do_work`.
    #[error("not attached to the driver")]
    NotAttached,
    /// The payload is larger than every pool's stride (Wire Spec §9: dropped, never
    /// blocked); no sequence number was used.
    #[error("frame of {len} bytes exceeds the largest payload stride ({max} bytes)")]
    FrameTooLarge {
        /// Payload length.
        len: usize,
        /// Largest stride of the mapped pools.
        max: usize,
    },
    /// The tensor header would make consumers drop the frame (Wire Spec §8.2).
    #[error("invalid tensor header: {0}")]
    InvalidTensor(#[from] TensorError),
}
