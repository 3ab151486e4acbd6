//! Where `FrameDescriptor`s go (Wire Spec §10.2.1, §10.1.3): the shared descriptor stream
//! and one publication per consumer the driver assigned a private descriptor stream.
//! Per-consumer publications are added without blocking and polled from the duty cycle.
//! A consumer that asked for RATE_LIMITED in its hello gets at most `max_rate_hz`
//! descriptors on its own stream (§5), gated as the consumer gates them (see
//! [`crate::client::rate`]); the shared stream is never thinned.

use super::events::ProducerCounters;
use crate::client::rate::{gate_timestamp, RateLimiter};
use crate::clock::monotonic_now_ns;
use crate::transport::{
    AeronClient, OfferOutcome, PendingPublication, Publication, TransportError,
};
use std::cell::Cell;
use std::num::NonZeroU32;

/// Offers of one descriptor under back pressure before it is counted as dropped.
const OFFER_ATTEMPTS: usize = 4;
/// Most per-consumer descriptor streams kept (the driver's id range bounds them anyway;
/// this keeps forged `ConsumerConfig`s from growing the table without limit).
pub const MAX_CONSUMER_STREAMS: usize = 256;

/// Whether a per-consumer descriptor publication can be offered to yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStreamState {
    /// The media driver is still setting it up.
    Pending,
    /// Descriptors go there.
    Ready,
}

enum Link {
    Pending(PendingPublication),
    Ready(Publication),
}

struct ConsumerStream {
    consumer_id: u32,
    channel: String,
    stream_id: i32,
    link: Link,
    /// Its `max_rate_hz` limiter, if it asked for one.
    rate: Cell<Option<RateLimiter>>,
}

/// The shared descriptor publication plus the per-consumer ones.
pub(super) struct DescriptorFanout {
    shared: Publication,
    consumers: Vec<ConsumerStream>,
    /// `max_rate_hz` of consumers that asked for RATE_LIMITED (stream or not yet).
    rates: Vec<(u32, NonZeroU32)>,
}

impl DescriptorFanout {
    pub(super) fn new(shared: Publication) -> Self {
        Self {
            shared,
            consumers: Vec::new(),
            rates: Vec::new(),
        }
    }

    /// Offers one encoded descriptor everywhere, of a frame with capture time
    /// `timestamp_ns` (what rate-limited streams are gated on); never blocks (bounded
    /// retries).
    pub(super) fn offer(&self, bytes: &[u8], timestamp_ns: u64, counters: &mut ProducerCounters) {
        offer_one(&self.shared, bytes, counters);
        let mut gate = None;
        for consumer in &self.consumers {
            let Link::Ready(publication) = &consumer.link else {
                continue;
            };
            if let Some(mut rate) = consumer.rate.get() {
                let (clock, t) = *gate
                    .get_or_insert_with(|| gate_timestamp(None, timestamp_ns, monotonic_now_ns));
                if !rate.conforms(clock, t) {
                    counters.descriptors_rate_limited += 1;
                    continue;
                }
                rate.take(clock, t);
                consumer.rate.set(Some(rate));
            }
            offer_one(publication, bytes, counters);
        }
    }

    /// Records `consumer_id`'s `max_rate_hz` from its hello (0: unlimited).
    pub(super) fn set_rate(&mut self, consumer_id: u32, max_rate_hz: u32) {
        let wanted = NonZeroU32::new(max_rate_hz);
        let known = self.rates.iter().position(|(id, _)| *id == consumer_id);
        match (known, wanted) {
            (Some(i), Some(hz)) if self.rates[i].1 == hz => return,
            (Some(i), Some(hz)) => self.rates[i].1 = hz,
            (Some(i), None) => {
                self.rates.swap_remove(i);
            }
            (None, Some(hz)) if self.rates.len() < MAX_CONSUMER_STREAMS => {
                self.rates.push((consumer_id, hz))
            }
            (None, _) => return,
        }
        if let Some(stream) = self.consumers.iter().find(|c| c.consumer_id == consumer_id) {
            stream.rate.set(wanted.map(RateLimiter::new));
        }
    }

    fn rate_of(&self, consumer_id: u32) -> Option<RateLimiter> {
        self.rates
            .iter()
            .find(|(id, _)| *id == consumer_id)
            .map(|(_, hz)| RateLimiter::new(*hz))
    }

    /// The state of `consumer_id`'s stream, if it has one.
    pub(super) fn state(&self, consumer_id: u32) -> Option<ConsumerStreamState> {
        self.consumers
            .iter()
            .find(|c| c.consumer_id == consumer_id)
            .map(|c| match c.link {
                Link::Pending(_) => ConsumerStreamState::Pending,
                Link::Ready(_) => ConsumerStreamState::Ready,
            })
    }

    /// Opens (or moves) `consumer_id`'s descriptor stream; keeps it if unchanged.
    pub(super) fn assign(
        &mut self,
        client: &AeronClient,
        consumer_id: u32,
        channel: &str,
        stream_id: i32,
        counters: &mut ProducerCounters,
    ) -> Result<(), TransportError> {
        if let Some(existing) = self.consumers.iter().find(|c| c.consumer_id == consumer_id) {
            if existing.channel == channel && existing.stream_id == stream_id {
                return Ok(());
            }
            self.close(consumer_id, counters);
        }
        if self.consumers.len() >= MAX_CONSUMER_STREAMS {
            return Err(TransportError::InvalidArgument(format!(
                "already {MAX_CONSUMER_STREAMS} per-consumer descriptor streams"
            )));
        }
        let pending = Publication::start_add(client, channel, stream_id)?;
        tracing::info!(
            consumer_id,
            channel,
            stream_id,
            "opening per-consumer descriptor stream"
        );
        counters.consumer_streams_opened += 1;
        self.consumers.push(ConsumerStream {
            consumer_id,
            channel: channel.to_owned(),
            stream_id,
            link: Link::Pending(pending),
            rate: Cell::new(self.rate_of(consumer_id)),
        });
        Ok(())
    }

    /// Closes `consumer_id`'s stream if it has one.
    pub(super) fn close(&mut self, consumer_id: u32, counters: &mut ProducerCounters) {
        let before = self.consumers.len();
        self.rates.retain(|(id, _)| *id != consumer_id);
        self.consumers.retain(|c| c.consumer_id != consumer_id);
        if self.consumers.len() != before {
            tracing::info!(consumer_id, "closed per-consumer descriptor stream");
            counters.consumer_streams_closed += 1;
        }
    }

    /// Closes every per-consumer stream (their leases ended with the driver).
    pub(super) fn close_all(&mut self, counters: &mut ProducerCounters) {
        counters.consumer_streams_closed += self.consumers.len() as u64;
        self.consumers.clear();
        self.rates.clear();
    }

    /// Completes pending registrations; drops those the media driver refused.
    pub(super) fn poll_pending(&mut self, counters: &mut ProducerCounters) -> usize {
        let mut work = 0;
        self.consumers.retain_mut(|consumer| {
            let Link::Pending(pending) = &mut consumer.link else {
                return true;
            };
            match pending.poll() {
                Ok(Some(publication)) => {
                    consumer.link = Link::Ready(publication);
                    work += 1;
                    true
                }
                Ok(None) => true,
                Err(error) => {
                    tracing::warn!(
                        consumer_id = consumer.consumer_id,
                        channel = %consumer.channel,
                        stream_id = consumer.stream_id,
                        %error,
                        "per-consumer descriptor stream refused"
                    );
                    counters.consumer_streams_closed += 1;
                    work += 1;
                    false
                }
            }
        });
        work
    }
}

fn offer_one(publication: &Publication, bytes: &[u8], counters: &mut ProducerCounters) {
    for _ in 0..OFFER_ATTEMPTS {
        match publication.offer(bytes) {
            Ok(OfferOutcome::Published { .. }) => return,
            Ok(OfferOutcome::NotConnected) => {
                counters.descriptors_unconnected += 1;
                return;
            }
            Ok(OfferOutcome::BackPressured | OfferOutcome::AdminAction) => {
                std::hint::spin_loop();
            }
            Err(_) => break,
        }
    }
    counters.descriptors_dropped += 1;
}
