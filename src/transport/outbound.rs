//! A bounded queue of encoded messages that rides out back pressure without blocking the duty
//! cycle: a back-pressured message is copied into a fixed slot and retried, in order, on
//! later cycles.
//!
//! Policy:
//! - Order is kept: while anything waits, new messages queue behind it.
//! - When the queue is full, `send` refuses the *new* message with
//!   [`TransportError::QueueFull`]; queued (older) messages are never evicted, so nothing is
//!   lost silently while a subscriber is connected. The caller counts and logs the refusal.
//! - When no subscriber is connected, a message could reach nobody: `send` reports
//!   [`SendOutcome::NotConnected`] and `flush` discards what was waiting, counting both.
//! - Closed publications and oversized messages are errors; the queue keeps its contents.
//!
//! Storage is one allocation made at construction (`capacity` slots of `max_message_len`
//! bytes); `send` and `flush` allocate nothing.

use super::error::TransportError;
use super::publication::{OfferOutcome, Publication};

/// Anything a message can be offered to (a [`Publication`], or a fake in tests).
pub trait Offer {
    /// Offers one message without blocking.
    fn offer(&self, bytes: &[u8]) -> Result<OfferOutcome, TransportError>;
}

impl Offer for Publication {
    fn offer(&self, bytes: &[u8]) -> Result<OfferOutcome, TransportError> {
        Publication::offer(self, bytes)
    }
}

/// What [`OutboundQueue::send`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Published now.
    Sent,
    /// Back-pressured (or behind others that are); queued for a later `flush`.
    Queued,
    /// No subscriber is connected; not sent and not queued.
    NotConnected,
}

/// Counts kept by an [`OutboundQueue`] since it was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboundStats {
    /// Messages published on their first offer.
    pub sent: u64,
    /// Messages that had to be queued.
    pub queued: u64,
    /// Queued messages published later by `flush`.
    pub retried: u64,
    /// Offers of the oldest queued message that were back-pressured again.
    pub retry_attempts: u64,
    /// Messages refused because the queue was full.
    pub rejected_full: u64,
    /// Messages not delivered because no subscriber was connected.
    pub dropped_not_connected: u64,
}

/// A fixed-capacity ring of fixed-size message slots (see the module docs for the policy).
#[derive(Debug)]
pub struct OutboundQueue {
    slots: Box<[u8]>,
    lens: Box<[usize]>,
    max_message_len: usize,
    head: usize,
    len: usize,
    stats: OutboundStats,
}

impl OutboundQueue {
    /// A queue of `capacity` messages of at most `max_message_len` bytes each.
    pub fn new(capacity: usize, max_message_len: usize) -> Result<Self, TransportError> {
        if capacity == 0 || max_message_len == 0 {
            return Err(TransportError::InvalidArgument(
                "outbound queue capacity and message length must be positive".into(),
            ));
        }
        let bytes = capacity.checked_mul(max_message_len).ok_or_else(|| {
            TransportError::InvalidArgument("outbound queue size overflows".into())
        })?;
        Ok(Self {
            slots: vec![0; bytes].into_boxed_slice(),
            lens: vec![0; capacity].into_boxed_slice(),
            max_message_len,
            head: 0,
            len: 0,
            stats: OutboundStats::default(),
        })
    }

    /// Publishes `bytes` now if nothing is waiting and the stream accepts it, else queues it.
    pub fn send<P: Offer + ?Sized>(
        &mut self,
        publication: &P,
        bytes: &[u8],
    ) -> Result<SendOutcome, TransportError> {
        if bytes.len() > self.max_message_len {
            return Err(TransportError::MessageTooLarge {
                len: bytes.len(),
                max: self.max_message_len,
            });
        }
        if self.len > 0 {
            self.flush(publication)?;
            if self.len > 0 {
                return self.enqueue(bytes);
            }
        }
        match publication.offer(bytes)? {
            OfferOutcome::Published { .. } => {
                self.stats.sent += 1;
                Ok(SendOutcome::Sent)
            }
            OfferOutcome::BackPressured | OfferOutcome::AdminAction => self.enqueue(bytes),
            OfferOutcome::NotConnected => {
                self.stats.dropped_not_connected += 1;
                Ok(SendOutcome::NotConnected)
            }
        }
    }

    /// Retries queued messages oldest first until one is back-pressured; returns how many
    /// went out. Discards everything waiting if no subscriber is connected.
    pub fn flush<P: Offer + ?Sized>(&mut self, publication: &P) -> Result<usize, TransportError> {
        let mut published = 0;
        while self.len > 0 {
            let start = self.head * self.max_message_len;
            let message = &self.slots[start..start + self.lens[self.head]];
            match publication.offer(message)? {
                OfferOutcome::Published { .. } => {
                    self.head = (self.head + 1) % self.lens.len();
                    self.len -= 1;
                    self.stats.retried += 1;
                    published += 1;
                }
                OfferOutcome::BackPressured | OfferOutcome::AdminAction => {
                    self.stats.retry_attempts += 1;
                    break;
                }
                OfferOutcome::NotConnected => {
                    let dropped = self.clear();
                    self.stats.dropped_not_connected += dropped as u64;
                    tracing::warn!(dropped, "no subscriber connected; dropped queued messages");
                    break;
                }
            }
        }
        Ok(published)
    }

    /// Empties the queue; returns how many messages were discarded (not counted as drops).
    pub fn clear(&mut self) -> usize {
        let discarded = self.len;
        self.head = 0;
        self.len = 0;
        discarded
    }

    /// Messages waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Most messages that can wait.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Longest message accepted.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// Counts since construction.
    pub fn stats(&self) -> &OutboundStats {
        &self.stats
    }

    fn enqueue(&mut self, bytes: &[u8]) -> Result<SendOutcome, TransportError> {
        let capacity = self.lens.len();
        if self.len == capacity {
            self.stats.rejected_full += 1;
            return Err(TransportError::QueueFull { capacity });
        }
        let slot = (self.head + self.len) % capacity;
        let start = slot * self.max_message_len;
        self.slots[start..start + bytes.len()].copy_from_slice(bytes);
        self.lens[slot] = bytes.len();
        self.len += 1;
        self.stats.queued += 1;
        Ok(SendOutcome::Queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A fake stream: accepts `accept` more messages, then answers `otherwise`.
    struct FakeStream {
        accept: RefCell<usize>,
        otherwise: OfferOutcome,
        published: RefCell<Vec<Vec<u8>>>,
    }

    impl FakeStream {
        fn new(accept: usize, otherwise: OfferOutcome) -> Self {
            Self {
                accept: RefCell::new(accept),
                otherwise,
                published: RefCell::new(Vec::new()),
            }
        }
    }

    impl Offer for FakeStream {
        fn offer(&self, bytes: &[u8]) -> Result<OfferOutcome, TransportError> {
            let mut accept = self.accept.borrow_mut();
            if *accept == 0 {
                return Ok(self.otherwise);
            }
            *accept -= 1;
            self.published.borrow_mut().push(bytes.to_vec());
            Ok(OfferOutcome::Published { position: 0 })
        }
    }

    #[test]
    fn back_pressured_messages_wait_and_go_out_in_order() {
        let stream = FakeStream::new(1, OfferOutcome::BackPressured);
        let mut queue = OutboundQueue::new(4, 8).unwrap();
        assert_eq!(queue.send(&stream, b"a").unwrap(), SendOutcome::Sent);
        assert_eq!(queue.send(&stream, b"b").unwrap(), SendOutcome::Queued);
        assert_eq!(queue.send(&stream, b"c").unwrap(), SendOutcome::Queued);
        *stream.accept.borrow_mut() = 1;
        // `d` must queue behind `b`/`c` even though the stream takes one message now.
        assert_eq!(queue.send(&stream, b"d").unwrap(), SendOutcome::Queued);
        *stream.accept.borrow_mut() = 10;
        assert_eq!(queue.flush(&stream).unwrap(), 2);
        assert!(queue.is_empty());
        let published = stream.published.borrow();
        assert_eq!(
            *published,
            [b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        let stats = queue.stats();
        assert_eq!((stats.sent, stats.queued, stats.retried), (1, 3, 3));
    }

    #[test]
    fn full_queue_refuses_the_new_message_and_keeps_the_oldest() {
        let stream = FakeStream::new(0, OfferOutcome::BackPressured);
        let mut queue = OutboundQueue::new(2, 8).unwrap();
        queue.send(&stream, b"1").unwrap();
        queue.send(&stream, b"2").unwrap();
        assert_eq!(
            queue.send(&stream, b"3"),
            Err(TransportError::QueueFull { capacity: 2 })
        );
        assert_eq!(queue.stats().rejected_full, 1);
        *stream.accept.borrow_mut() = 10;
        assert_eq!(queue.flush(&stream).unwrap(), 2);
        assert_eq!(*stream.published.borrow(), [b"1".to_vec(), b"2".to_vec()]);
    }

    #[test]
    fn not_connected_drops_waiting_messages_and_counts_them() {
        let stream = FakeStream::new(0, OfferOutcome::BackPressured);
        let mut queue = OutboundQueue::new(4, 8).unwrap();
        queue.send(&stream, b"x").unwrap();
        queue.send(&stream, b"y").unwrap();
        let gone = FakeStream::new(0, OfferOutcome::NotConnected);
        assert_eq!(queue.send(&gone, b"z").unwrap(), SendOutcome::NotConnected);
        assert!(queue.is_empty());
        assert_eq!(queue.stats().dropped_not_connected, 3);
    }

    #[test]
    fn oversized_messages_are_refused_before_offering() {
        let stream = FakeStream::new(10, OfferOutcome::BackPressured);
        let mut queue = OutboundQueue::new(1, 4).unwrap();
        assert_eq!(
            queue.send(&stream, b"too long"),
            Err(TransportError::MessageTooLarge { len: 8, max: 4 })
        );
        assert!(stream.published.borrow().is_empty());
    }

    #[test]
    fn ring_wraps_around() {
        let stream = FakeStream::new(0, OfferOutcome::BackPressured);
        let mut queue = OutboundQueue::new(3, 4).unwrap();
        for round in 0u8..5 {
            queue.send(&stream, &[round; 3]).unwrap();
            queue.send(&stream, &[round; 4]).unwrap();
            *stream.accept.borrow_mut() = 2;
            assert_eq!(queue.flush(&stream).unwrap(), 2);
        }
        let published = stream.published.borrow();
        assert_eq!(published.len(), 10);
        assert_eq!(published[9], vec![4u8; 4]);
    }
}
