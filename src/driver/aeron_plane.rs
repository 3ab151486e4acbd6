//! The driver's control plane over Aeron (Driver Model §4.5): one subscription to the
//! control stream, publications for the control and announce streams, each with a bounded
//! back-pressure queue so a busy subscriber never blocks the duty cycle.

use super::agent::{ControlPlane, PublishError, PublishOutcome};
use super::wire::Destination;
use crate::config::DriverConfig;
use crate::transport::{
    AeronClient, OutboundQueue, Publication, SendOutcome, Subscription, TransportError,
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
    /// Subscribes and publishes on the configured control and announce endpoints.
    pub fn new(client: &AeronClient, config: &DriverConfig) -> Result<Self, TransportError> {
        let (control_channel, control_stream) = config.driver.control_endpoint();
        let (announce_channel, announce_stream) = config.driver.announce_endpoint();
        let control_sub = Subscription::add(client, control_channel, to_i32(control_stream)?)?;
        let control_pub = Publication::add(client, control_channel, to_i32(control_stream)?)?;
        let announce = if config.driver.announce_shares_control() {
            None
        } else {
            Some((
                Publication::add(client, announce_channel, to_i32(announce_stream)?)?,
                OutboundQueue::new(QUEUE_CAPACITY, MAX_MESSAGE_LEN)?,
            ))
        };
        Ok(Self {
            control_sub,
            control_pub,
            control_queue: OutboundQueue::new(QUEUE_CAPACITY, MAX_MESSAGE_LEN)?,
            announce,
            poll_errors: 0,
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
