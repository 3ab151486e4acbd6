//! What happened to the consumer's lease and mapping (Driver Model §4.9, §4.12.3,
//! §4.13), queued for the application to drain.

use super::fallback::FallbackUri;
use crate::protocol::driver::{LeaseRevokeReason, ResponseCode, ShutdownReason};
use std::collections::VecDeque;

/// How many events wait before the oldest is discarded.
pub const EVENT_QUEUE_CAPACITY: usize = 64;

/// Why the mapping was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmapReason {
    /// The driver revoked this consumer's lease.
    LeaseRevoked,
    /// The lease was given up locally (keepalive not sent, hard expiry passed, or the
    /// media driver went away).
    LeaseLost,
    /// The driver announced shutdown.
    DriverShutdown,
    /// The producer was revoked and no higher epoch was announced within 3× the
    /// announce period.
    EpochWaitTimedOut,
    /// The regions of a grant or announce failed the containment or superblock checks.
    MapFailed,
    /// The header ring's `activity_timestamp_ns` was older than the liveness timeout
    /// (Wire Spec §15.14): the regions are dead; the consumer reattaches.
    ActivityStale,
    /// The writer's sequence went back within the epoch (Wire Spec §15.2): the consumer
    /// reattaches and maps afresh.
    SeqRegression,
    /// A `ConsumerConfig` said `use_shm = FALSE` (Wire Spec §15.12 FALLBACK).
    Fallback,
}

/// A change of the consumer's lease or mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerEvent {
    /// A lease was granted and its regions mapped.
    Attached {
        /// The mapped epoch.
        epoch: u64,
    },
    /// A higher epoch was announced and its regions mapped.
    EpochChanged {
        /// The new epoch.
        epoch: u64,
    },
    /// The driver revoked this consumer's lease; the consumer reattaches.
    Revoked(LeaseRevokeReason),
    /// The stream's producer lease ended (`DETACHED`: it left on purpose; `EXPIRED` or
    /// `REVOKED`: it failed or was removed); frames wait for the next epoch.
    ProducerRevoked {
        /// Why the producer's lease ended.
        reason: LeaseRevokeReason,
    },
    /// The driver is shutting down; the consumer reattaches when it is back.
    DriverShutdown(ShutdownReason),
    /// The regions were unmapped.
    Unmapped {
        /// Why.
        reason: UnmapReason,
    },
    /// The driver refused the attach (Driver Model §4.2); the consumer retries after a
    /// backoff. [`crate::client::attach_refusal_fix`] tells whether waiting can help.
    AttachRefused {
        /// Response code.
        code: ResponseCode,
        /// The driver's diagnostic.
        message: String,
    },
    /// A `ConsumerConfig` told this consumer not to use shared memory (Wire Spec §10.1.3,
    /// §15.12): it unmapped and reads nothing until told `use_shm = TRUE` again. The
    /// payload is to be had at `fallback.uri` (empty: none given), which this library does
    /// not connect to.
    Fallback {
        /// The `payload_fallback_uri`, and whether its scheme is one the spec defines.
        fallback: FallbackUri,
    },
    /// A `ConsumerConfig` with `use_shm = TRUE` ended FALLBACK; the consumer reattaches
    /// and maps the stream again.
    ShmResumed,
    /// The Aeron client lost its media driver (e.g. the driver process died): the
    /// mapping and the lease are dropped, and the consumer reconnects from `do_work`,
    /// then attaches afresh.
    MediaDriverLost,
    /// A new metadata version of the stream arrived complete (Wire Spec §10.3); read it
    /// with [`Consumer::metadata`](super::Consumer::metadata).
    MetadataChanged {
        /// The version now in force.
        meta_version: u32,
    },
}

/// A bounded queue that keeps the newest events.
#[derive(Debug)]
pub(crate) struct EventQueue {
    events: VecDeque<ConsumerEvent>,
    dropped: u64,
}

impl EventQueue {
    pub(crate) fn new() -> Self {
        Self {
            events: VecDeque::with_capacity(EVENT_QUEUE_CAPACITY),
            dropped: 0,
        }
    }

    pub(crate) fn push(&mut self, event: ConsumerEvent) {
        if self.events.len() == EVENT_QUEUE_CAPACITY {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
    }

    pub(crate) fn pop(&mut self) -> Option<ConsumerEvent> {
        self.events.pop_front()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_keeps_the_newest_events() {
        let mut q = EventQueue::new();
        for epoch in 0..EVENT_QUEUE_CAPACITY as u64 + 3 {
            q.push(ConsumerEvent::EpochChanged { epoch });
        }
        assert_eq!(q.dropped(), 3);
        assert_eq!(q.pop(), Some(ConsumerEvent::EpochChanged { epoch: 3 }));
    }
}
