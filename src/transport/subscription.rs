//! Subscriptions that deliver whole messages: fragments of a message larger than the MTU are
//! reassembled by Aeron's fragment assembler before the handler sees them.

use rusteron_client::{
    AeronAsyncAddSubscription, AeronFragmentClosureAssembler, AeronHeader, AeronSubscription,
    Handlers,
};

use super::client::AeronClient;
use super::error::{c_string, AeronResultExt, TransportError};

/// A subscription on a channel and stream, with its own fragment assembler.
pub struct Subscription {
    inner: AeronSubscription,
    assembler: AeronFragmentClosureAssembler,
    channel: String,
    stream_id: i32,
}

impl Subscription {
    /// Adds a subscription and pumps `client` until the driver has set it up.
    pub fn add(
        client: &AeronClient,
        channel: &str,
        stream_id: i32,
    ) -> Result<Self, TransportError> {
        let mut pending = Self::start_add(client, channel, stream_id)?;
        client.pump_until(
            || format!("subscription {channel} stream {stream_id}"),
            || pending.poll(),
        )
    }

    /// Starts adding a subscription without waiting; poll the result from the duty cycle.
    pub fn start_add(
        client: &AeronClient,
        channel: &str,
        stream_id: i32,
    ) -> Result<PendingSubscription, TransportError> {
        let c_channel = c_string("channel", channel.as_bytes())?;
        let inner = client
            .aeron()
            .async_add_subscription(&c_channel, stream_id, Handlers::NONE, Handlers::NONE)
            .or_aeron("add subscription")?;
        Ok(PendingSubscription {
            inner,
            channel: channel.to_owned(),
            stream_id,
        })
    }

    /// Delivers whole messages to `handler`, reading at most `fragment_limit` fragments;
    /// returns the fragments read (the duty cycle's work count). The slice is valid only
    /// during the call. Allocates nothing per message (the assembler reuses its buffer).
    pub fn poll<F: FnMut(&[u8])>(
        &mut self,
        mut handler: F,
        fragment_limit: usize,
    ) -> Result<usize, TransportError> {
        let fragments = self
            .assembler
            .poll(&self.inner, &mut handler, deliver::<F>, fragment_limit)
            .or_aeron("poll subscription")?;
        Ok(fragments.max(0) as usize)
    }

    /// Delivers fragments as they are read, without reassembly, reading at most
    /// `fragment_limit`; returns the fragments read. For streams whose messages always fit
    /// in one frame (a `FrameDescriptor` is 48 bytes; the smallest MTU is 1408): it skips
    /// the fragment assembler's bookkeeping on every message. A longer message on such a
    /// stream arrives as several pieces, each passed on alone, so the handler must treat
    /// its bytes as untrusted (it does anyway). Allocates nothing.
    #[inline]
    pub fn poll_fragments<F: FnMut(&[u8])>(
        &mut self,
        mut handler: F,
        fragment_limit: usize,
    ) -> Result<usize, TransportError> {
        let fragments = self
            .inner
            .poll_fn(|bytes, _header| handler(bytes), fragment_limit)
            .or_aeron("poll subscription")?;
        Ok(fragments.max(0) as usize)
    }

    /// Whether at least one publication's image is connected.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Number of connected images (one per publication session).
    pub fn image_count(&self) -> usize {
        self.inner.image_count().map_or(0, |n| n.max(0) as usize)
    }

    /// Whether the subscription is closed.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// The channel it was added with.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The stream id.
    pub fn stream_id(&self) -> i32 {
        self.stream_id
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &self.channel)
            .field("stream_id", &self.stream_id)
            .finish_non_exhaustive()
    }
}

/// A subscription being set up by the driver; dropping it cancels the registration.
pub struct PendingSubscription {
    inner: AeronAsyncAddSubscription,
    channel: String,
    stream_id: i32,
}

impl PendingSubscription {
    /// The subscription once the driver has set it up (yielded once), `None` while still
    /// pending; errors if the driver refused it. Pump the client between polls.
    pub fn poll(&mut self) -> Result<Option<Subscription>, TransportError> {
        let Some(inner) = self.inner.poll().or_aeron("add subscription")? else {
            return Ok(None);
        };
        let assembler =
            AeronFragmentClosureAssembler::new().or_aeron("create fragment assembler")?;
        tracing::debug!(channel = %self.channel, stream_id = self.stream_id, "subscription ready");
        Ok(Some(Subscription {
            inner,
            assembler,
            channel: std::mem::take(&mut self.channel),
            stream_id: self.stream_id,
        }))
    }
}

/// Passes one reassembled message to the caller's handler.
fn deliver<F: FnMut(&[u8])>(handler: &mut F, bytes: &[u8], _header: AeronHeader) {
    handler(bytes)
}
