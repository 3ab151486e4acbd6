//! Frame progress (Wire Spec §10.2.2): partial-availability hints for a frame being
//! filled, e.g. rows landing from a camera DMA. The producer publishes STARTED, throttled
//! PROGRESS and COMPLETE on the control stream, but only while some consumer's
//! `ConsumerHello` says `supports_progress`, with the most aggressive policy the
//! consumers' hints ask for within the producer's floors ([`policy`], [`throttle`]). A
//! consumer that opted in gets the filled, layout-safe prefix of the frame under every
//! rule of the section ([`reader`]); the frame itself is still delivered by its
//! `FrameDescriptor`, as for everyone.
//!
//! The pieces here are sans-IO: the producer and consumer agents feed them messages and
//! times.

pub mod policy;
pub mod reader;
pub mod throttle;

pub use policy::{
    ConsumerWish, ConsumerWishes, ProgressHints, ProgressLimits, ProgressPolicy,
    MAX_CONSUMER_WISHES,
};
pub use reader::{FramePrefix, ProgressCounters, ProgressPoll, ProgressReader, FRAMES_IN_FLIGHT};
pub use throttle::ProgressThrottle;
