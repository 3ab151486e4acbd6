//! The consumer client (Driver Model §2.3, §4.9, §4.12.3, §4.13; Wire Spec §8.3, §10.1,
//! §10.2.1, §10.4.1, §15.1–§15.4, §15.18, §15.21): attach as CONSUMER, map the granted
//! regions read-only, follow announces and epoch changes, and accept a frame only when
//! every slot rule holds — zero-copy, without allocating, counting every drop.
//!
//! ```no_run
//! use tensorpool::client::consumer::{monotonic_now_ns, Consumer, ConsumerConfig, FramePoll};
//! use tensorpool::client::ClientStreams;
//!
//! let mut consumer = Consumer::connect(ConsumerConfig::new(ClientStreams::default(), 10000))?;
//! loop {
//!     consumer.do_work(monotonic_now_ns())?;
//!     if let FramePoll::Delivered(sum) =
//!         consumer.poll_frame(|f| f.payload().iter().map(|b| *b as u64).sum::<u64>())?
//!     {
//!         println!("{sum}");
//!     }
//! }
//! # Ok::<(), tensorpool::client::consumer::ConsumerError>(())
//! ```

mod announce;
mod config;
mod connection;
#[allow(clippy::module_inception)]
mod consumer;
mod counters;
mod descriptors;
mod events;
mod fallback;
mod frame;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz;
mod liveness;
mod metadata;

pub use crate::client::rate::{gate_timestamp, RateClock, RateLimiter};
pub use announce::{validate_announce, AnnounceOutcome, AnnounceTracker, AnnouncedLayout};
pub use config::{ConsumerConfig, ConsumerMode, MAX_CHANNEL_LEN};
pub use consumer::Consumer;
pub use counters::{ConsumerCounters, DropReason};
pub use descriptors::DescriptorStream;
pub use events::{ConsumerEvent, UnmapReason, EVENT_QUEUE_CAPACITY};
pub use fallback::{ConsumerState, FallbackUri, MAX_FALLBACK_URI_LEN};
pub use frame::{Frame, FramePoll, MetaStatus};

/// The clock [`Consumer::do_work`] expects: CLOCK_MONOTONIC in nanoseconds, the domain
/// of the driver's MONOTONIC announce timestamps.
pub use crate::clock::monotonic_now_ns;

use crate::client::link::LinkError;
use crate::protocol::codec::EncodeError;
use crate::transport::TransportError;

/// Why a consumer could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// The configuration is unusable.
    #[error("invalid consumer configuration: {0}")]
    InvalidConfig(&'static str),
    /// The control-plane link failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Aeron failed (e.g. the client closed because the media driver went away).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A hello or QoS message did not encode (a bug: sizes are bounded).
    #[error("encoding: {0}")]
    Encode(#[from] EncodeError),
}
