//! The driver's control plane over Aeron (Driver Model §4.5): one subscription to the
//! control stream, publications for the control and announce streams, each with a bounded
//! back-pressure queue so a busy subscriber never blocks the duty cycle.

use super::agent::{ControlPlane, PublishError, PublishOutcome};
use super::wire::Destination;
use crate::config::DriverConfig;
use crate::transport::{
    AeronClient, OutboundQueue, PendingPublication, PendingSubscription, Publication, SendOutcome,
    Subscription, TransportError,
};

/// Messages waiting per stream while its subscribers are back-pressured.
const QUEUE_CAPACITY: usize = 256;
/// Largest output (an attach response or announce with many pools fits easily).
const MAX_MESSAGE_LEN: usize = 16 * 1024;

/// Control-plane streams of the SHM driver on Aeron.
pub struct AeronControlPlane {
    control_sub: Subscription,
    control_pub: Publication,
    control_queue: OutboundQueue,
    /// `None` when announces share the control stream (then they share its queue too,
    /// which keeps a revoke ahead of the announce it causes).
    announce: Option<(Publication, OutboundQueue)>,
    poll_errors: u64,
}

impl AeronControlPlane {
    /// Subscribes and publishes on the configured control and announce endpoints, pumping
    /// `client` until the media driver has set every stream up (for start-up).
    pub fn new(client: &AeronClient, config: &DriverConfig) -> Result<Self, TransportError> {
        let mut pending = Self::start(client, config)?;
        client.pump_until(|| "the driver's control streams".into(), || pending.poll())
    }

    /// Starts adding the streams without waiting, for a duty cycle that must not block (the
    /// aeronmd plugin): poll the result once per cycle while the client is pumped.
    pub fn start(
        client: &AeronClient,
        config: &DriverConfig,
    ) -> Result<PendingControlPlane, TransportError> {
        let (control_channel, control_stream) = config.driver.control_endpoint();
        let (announce_channel, announce_stream) = config.driver.announce_endpoint();
        let control_stream = to_i32(control_stream)?;
        let announce = if config.driver.announce_shares_control() {
            None
        } else {
            Some(Slot::Waiting(Publication::start_add(
                client,
                announce_channel,
                to_i32(announce_stream)?,
            )?))
        };
        Ok(PendingControlPlane {
            control_sub: Slot::Waiting(Subscription::start_add(
                client,
                control_channel,
                control_stream,
            )?),
            control_pub: Slot::Waiting(Publication::start_add(
                client,
                control_channel,
                control_stream,
            )?),
            announce,
        })
    }

    /// Failed polls of the control subscription so far.
    pub fn poll_errors(&self) -> u64 {
        self.poll_errors
    }
}

fn to_i32(stream_id: u32) -> Result<i32, TransportError> {
    i32::try_from(stream_id).map_err(|_| {
        TransportError::InvalidArgument(format!("stream id {stream_id} does not fit Aeron's int32"))
    })
}

impl ControlPlane for AeronControlPlane {
    fn poll_control(&mut self, handler: &mut dyn FnMut(&[u8]), limit: usize) -> usize {
        match self.control_sub.poll(|bytes| handler(bytes), limit) {
            Ok(n) => n,
            Err(e) => {
                self.poll_errors += 1;
                tracing::error!(error = %e, "polling the control stream failed");
                0
            }
        }
    }

    fn publish(
        &mut self,
        destination: Destination,
        bytes: &[u8],
    ) -> Result<PublishOutcome, PublishError> {
        let (publication, queue) = match (&mut self.announce, destination) {
            (Some((publication, queue)), Destination::Announce) => (&*publication, queue),
            _ => (&self.control_pub, &mut self.control_queue),
        };
        match queue.send(publication, bytes) {
            Ok(SendOutcome::Sent) => Ok(PublishOutcome::Sent),
            Ok(SendOutcome::Queued) => Ok(PublishOutcome::Queued),
            Ok(SendOutcome::NotConnected) => Ok(PublishOutcome::NotConnected),
            Err(e) => Err(PublishError {
                destination,
                reason: e.to_string(),
            }),
        }
    }

    fn flush(&mut self) -> usize {
        let mut sent = 0;
        let mut flush_one = |publication: &Publication, queue: &mut OutboundQueue| {
            if queue.is_empty() {
                return;
            }
            match queue.flush(publication) {
                Ok(n) => sent += n,
                Err(e) => tracing::error!(error = %e, "retrying queued control messages failed"),
            }
        };
        flush_one(&self.control_pub, &mut self.control_queue);
        if let Some((publication, queue)) = &mut self.announce {
            flush_one(publication, queue);
        }
        sent
    }
}

/// A registration that is still with the media driver, done, or handed on.
enum Slot<P, T> {
    Waiting(P),
    Ready(T),
    Taken,
}

impl<P, T> Slot<P, T> {
    /// Polls a waiting registration with `poll`; returns whether it is done.
    fn advance(
        &mut self,
        poll: impl FnOnce(&mut P) -> Result<Option<T>, TransportError>,
    ) -> Result<bool, TransportError> {
        if let Self::Waiting(pending) = self {
            match poll(pending)? {
                Some(done) => *self = Self::Ready(done),
                None => return Ok(false),
            }
        }
        Ok(matches!(self, Self::Ready(_)))
    }

    fn take(&mut self) -> Option<T> {
        match std::mem::replace(self, Self::Taken) {
            Self::Ready(done) => Some(done),
            _ => None,
        }
    }
}

/// The control plane while the media driver sets its streams up ([`AeronControlPlane::start`]).
pub struct PendingControlPlane {
    control_sub: Slot<PendingSubscription, Subscription>,
    control_pub: Slot<PendingPublication, Publication>,
    announce: Option<Slot<PendingPublication, Publication>>,
}

impl PendingControlPlane {
    /// The control plane once every stream is set up (yielded once), `None` while some are
    /// still pending; errors if the media driver refused one. Never blocks.
    pub fn poll(&mut self) -> Result<Option<AeronControlPlane>, TransportError> {
        let mut ready = self.control_sub.advance(PendingSubscription::poll)?;
        ready &= self.control_pub.advance(PendingPublication::poll)?;
        if let Some(announce) = &mut self.announce {
            ready &= announce.advance(PendingPublication::poll)?;
        }
        if !ready {
            return Ok(None);
        }
        let control_queue = OutboundQueue::new(QUEUE_CAPACITY, MAX_MESSAGE_LEN)?;
        let announce_queue = OutboundQueue::new(QUEUE_CAPACITY, MAX_MESSAGE_LEN)?;
        let announce = self.announce.as_mut().map(|slot| {
            let publication = slot
                .take()
                .expect("advance said the announce stream is ready");
            (publication, announce_queue)
        });
        Ok(Some(AeronControlPlane {
            control_sub: self
                .control_sub
                .take()
                .expect("advance said the subscription is ready"),
            control_pub: self
                .control_pub
                .take()
                .expect("advance said the publication is ready"),
            control_queue,
            announce,
            poll_errors: 0,
        }))
    }
}
