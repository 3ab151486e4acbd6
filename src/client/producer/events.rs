//! What the producer reports to its application: lifecycle events in a bounded queue, and
//! plain counters.

use crate::protocol::driver::{LeaseRevokeReason, ResponseCode, ShutdownReason};
use std::collections::VecDeque;

/// Most events kept for the application; older ones are dropped (and counted) beyond it.
pub const EVENT_QUEUE_CAPACITY: usize = 64;

/// A change in the producer's lease or connection (Driver Model §4.12.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProducerEvent {
    /// First lease granted and its regions mapped: publishing may start (seq 0).
    Attached {
        /// Stream granted.
        stream_id: u32,
        /// Epoch mapped.
        epoch: u64,
    },
    /// A later lease granted and mapped after a revoke, loss or shutdown; seq restarts
    /// at 0 in the new epoch.
    Reattached {
        /// Epoch mapped.
        epoch: u64,
    },
    /// The driver revoked the lease; publishing stopped, regions unmapped.
    Revoked(LeaseRevokeReason),
    /// The lease was given up locally (a keepalive could not be sent, the hard expiry
    /// passed, or the media driver went away); publishing stopped, regions unmapped.
    LeaseLost,
    /// The driver announced shutdown; publishing stopped, regions unmapped.
    DriverShutdown(ShutdownReason),
    /// The driver refused the attach; the producer retries after backoff.
    AttachRefused {
        /// Response code.
        code: ResponseCode,
        /// Driver's diagnostic.
        message: String,
    },
    /// The granted regions failed the mapping checks; the lease is given up and the
    /// producer reattaches after backoff.
    MapFailed {
        /// Epoch of the refused grant.
        epoch: u64,
    },
    /// The Aeron client lost its media driver; the producer reconnects from `do_work`.
    MediaDriverLost,
}

/// Counters an operator asks about; each only grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducerCounters {
    /// Frames committed and announced.
    pub frames_published: u64,
    /// Frames refused because no pool's stride fits them.
    pub frames_too_large: u64,
    /// Frames refused because their tensor header is invalid.
    pub invalid_tensors: u64,
    /// Claims dropped without commit (the slot stays IN-PROGRESS; consumers drop it).
    pub claims_abandoned: u64,
    /// Descriptor offers given up after back pressure or a closed publication (one per
    /// publication; the slot is committed, consumers see a gap).
    pub descriptors_dropped: u64,
    /// Descriptor offers skipped because nobody subscribes to that publication.
    pub descriptors_unconnected: u64,
    /// Leases granted after the first one.
    pub reattaches: u64,
    /// Grants whose regions failed the mapping checks.
    pub map_failures: u64,
    /// Attach responses refused as protocol errors (from the session).
    pub protocol_errors: u64,
    /// `QosProducer` messages published.
    pub qos_sent: u64,
    /// Per-consumer descriptor publications opened.
    pub consumer_streams_opened: u64,
    /// Per-consumer descriptor publications closed.
    pub consumer_streams_closed: u64,
    /// `ConsumerConfig` messages for this stream that were malformed or assigned an
    /// unusable stream.
    pub consumer_configs_rejected: u64,
    /// Times the Aeron client was rebuilt after losing its media driver.
    pub reconnects: u64,
    /// Events dropped because the application did not drain the queue.
    pub events_dropped: u64,
    /// Metadata announces (`DataSourceAnnounce` + `DataSourceMeta`) sent.
    pub metadata_sent: u64,
    /// Metadata announces that hit back pressure or an Aeron error (retried).
    pub metadata_send_failures: u64,
    /// `FrameProgress` messages published (Wire Spec §10.2.2).
    pub progress_sent: u64,
    /// Progress reports held back by the throttle.
    pub progress_throttled: u64,
    /// `FrameProgress` messages that could not be offered (back pressure, no
    /// subscriber).
    pub progress_not_sent: u64,
    /// `ConsumerHello`s of this stream taken in (progress wishes, rate limits).
    pub consumer_hellos: u64,
    /// Descriptors held back from a RATE_LIMITED consumer's own descriptor stream
    /// (Wire Spec §5 `max_rate_hz`).
    pub descriptors_rate_limited: u64,
}

/// A bounded FIFO of events: the oldest is dropped when full.
#[derive(Debug)]
pub(super) struct EventQueue {
    events: VecDeque<ProducerEvent>,
}

impl EventQueue {
    pub(super) fn new() -> Self {
        Self {
            events: VecDeque::with_capacity(EVENT_QUEUE_CAPACITY),
        }
    }

    /// Queues `event`; returns whether an older event had to be dropped.
    pub(super) fn push(&mut self, event: ProducerEvent) -> bool {
        let full = self.events.len() >= EVENT_QUEUE_CAPACITY;
        if full {
            self.events.pop_front();
        }
        self.events.push_back(event);
        full
    }

    pub(super) fn pop(&mut self) -> Option<ProducerEvent> {
        self.events.pop_front()
    }

    pub(super) fn drain(&mut self) -> std::collections::vec_deque::Drain<'_, ProducerEvent> {
        self.events.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_and_keeps_the_newest() {
        let mut queue = EventQueue::new();
        let dropped = (0..EVENT_QUEUE_CAPACITY as u64 + 3)
            .filter(|epoch| queue.push(ProducerEvent::Reattached { epoch: *epoch }))
            .count();
        assert_eq!(dropped, 3);
        assert_eq!(queue.pop(), Some(ProducerEvent::Reattached { epoch: 3 }));
        assert_eq!(queue.drain().count(), EVENT_QUEUE_CAPACITY - 1);
        assert_eq!(queue.pop(), None);
    }
}
