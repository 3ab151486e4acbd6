//! Where descriptors come from (Wire Spec §10.1.2, §10.1.3): the shared descriptor
//! stream, or a per-consumer stream the driver assigned through `ConsumerConfig`. A new
//! subscription is set up without blocking the duty cycle; the old one is read until the
//! new one is ready and then closed (an IPC subscriber left unread would hold the
//! producer back).

use crate::client::link::stream_i32;
use crate::transport::{AeronClient, PendingSubscription, Subscription, TransportError};

/// A descriptor stream: channel and stream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorStream {
    /// Aeron channel.
    pub channel: String,
    /// Stream id.
    pub stream_id: u32,
}

/// The subscription descriptors are read from, and the one being set up, if any.
pub(crate) struct DescriptorFeed {
    shared: DescriptorStream,
    active: Subscription,
    active_stream: DescriptorStream,
    pending: Option<(PendingSubscription, DescriptorStream)>,
}

impl DescriptorFeed {
    /// Subscribes to the shared stream (blocking until the media driver has set it up).
    pub(crate) fn new(
        client: &AeronClient,
        shared: DescriptorStream,
    ) -> Result<Self, TransportError> {
        let active = Subscription::add(client, &shared.channel, stream_i32(shared.stream_id)?)?;
        Ok(Self {
            active_stream: shared.clone(),
            shared,
            active,
            pending: None,
        })
    }

    /// The stream descriptors are read from now.
    pub(crate) fn current(&self) -> &DescriptorStream {
        &self.active_stream
    }

    /// The stream being switched to, else the active one.
    fn target(&self) -> &DescriptorStream {
        self.pending
            .as_ref()
            .map_or(&self.active_stream, |(_, s)| s)
    }

    /// Moves to `stream` (`None` = the shared stream) once its subscription is ready.
    pub(crate) fn switch_to(
        &mut self,
        client: &AeronClient,
        stream: Option<DescriptorStream>,
    ) -> Result<(), TransportError> {
        let stream = stream.unwrap_or_else(|| self.shared.clone());
        if *self.target() == stream {
            return Ok(());
        }
        if stream == self.active_stream {
            self.pending = None;
            return Ok(());
        }
        let pending =
            Subscription::start_add(client, &stream.channel, stream_i32(stream.stream_id)?)?;
        tracing::debug!(channel = %stream.channel, stream_id = stream.stream_id, "switching descriptor stream");
        self.pending = Some((pending, stream));
        Ok(())
    }

    /// Completes a pending switch; returns 1 when it happened.
    pub(crate) fn do_work(&mut self) -> Result<usize, TransportError> {
        let Some((pending, _)) = self.pending.as_mut() else {
            return Ok(0);
        };
        let Some(subscription) = pending.poll()? else {
            return Ok(0);
        };
        if let Some((_, stream)) = self.pending.take() {
            self.active = subscription;
            self.active_stream = stream;
        }
        Ok(1)
    }

    /// Reads up to `limit` messages from the active subscription. Descriptor streams
    /// carry single-fragment messages, so fragments are not reassembled (see
    /// [`Subscription::poll_fragments`]).
    pub(crate) fn poll(
        &mut self,
        handler: impl FnMut(&[u8]),
        limit: usize,
    ) -> Result<usize, TransportError> {
        self.active.poll_fragments(handler, limit)
    }
}
