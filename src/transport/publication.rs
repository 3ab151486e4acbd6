//! Publications. We use Aeron's *exclusive* publications: each [`Publication`] is its own
//! session with a single writer (its owner's duty cycle), which makes `offer` cheaper than a
//! concurrent publication's (no atomic claim of the log tail), and keeps one writer's
//! messages from interleaving with another's in the same session. Subscribers see one image
//! per publication. And Aeron checks a publication's channel parameters (term-length, mtu,
//! session-id) against an existing publication of the same channel and stream only for
//! shared publications: an exclusive one joins a stream whose other publishers chose other
//! parameters (docs/DESIGN.md, "Channel parameters").

use rusteron_client::{
    AeronAsyncAddExclusivePublication, AeronExclusivePublication, AeronOfferError,
};

use super::client::AeronClient;
use super::error::{c_string, AeronResultExt, TransportError};

/// Most parts [`Publication::offer_parts`] gathers into one message.
pub const MAX_OFFER_PARTS: usize = rusteron_client::MAX_OFFER_PARTS;

/// What an offer did, when it did not fail for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferOutcome {
    /// The message is in the log; `position` is the stream position after it.
    Published {
        /// Stream position after the message.
        position: i64,
    },
    /// Subscribers are behind (flow control / full term window): retry on a later cycle.
    BackPressured,
    /// Aeron is rotating terms or similar: retry soon.
    AdminAction,
    /// No subscriber is connected; nobody could read the message, so it was not written.
    NotConnected,
}

impl OfferOutcome {
    /// Whether the message was written.
    pub fn is_published(&self) -> bool {
        matches!(self, Self::Published { .. })
    }

    /// Whether a later retry of the same message may succeed with the same subscribers.
    pub fn is_back_pressure(&self) -> bool {
        matches!(self, Self::BackPressured | Self::AdminAction)
    }
}

/// An exclusive publication on a channel and stream; one owner offers to it.
pub struct Publication {
    inner: AeronExclusivePublication,
    channel: String,
    stream_id: i32,
    session_id: i32,
    max_message_length: usize,
}

impl Publication {
    /// Adds a publication and pumps `client` until the driver has set it up.
    pub fn add(
        client: &AeronClient,
        channel: &str,
        stream_id: i32,
    ) -> Result<Self, TransportError> {
        let mut pending = Self::start_add(client, channel, stream_id)?;
        client.pump_until(
            || format!("publication {channel} stream {stream_id}"),
            || pending.poll(),
        )
    }

    /// Starts adding a publication without waiting; poll the result from the duty cycle.
    pub fn start_add(
        client: &AeronClient,
        channel: &str,
        stream_id: i32,
    ) -> Result<PendingPublication, TransportError> {
        let c_channel = c_string("channel", channel.as_bytes())?;
        let inner = client
            .aeron()
            .async_add_exclusive_publication(&c_channel, stream_id)
            .or_aeron("add publication")?;
        Ok(PendingPublication {
            inner,
            channel: channel.to_owned(),
            stream_id,
        })
    }

    /// Offers one message; never blocks (see [`OfferOutcome`] for what to do next).
    #[inline]
    pub fn offer(&self, bytes: &[u8]) -> Result<OfferOutcome, TransportError> {
        if bytes.len() > self.max_message_length {
            return Err(TransportError::MessageTooLarge {
                len: bytes.len(),
                max: self.max_message_length,
            });
        }
        outcome(self.inner.offer(bytes))
    }

    /// Offers the concatenation of up to [`MAX_OFFER_PARTS`] parts as one message, without
    /// copying them together first (e.g. a header and a payload).
    pub fn offer_parts(&self, parts: &[&[u8]]) -> Result<OfferOutcome, TransportError> {
        let len: usize = parts.iter().map(|part| part.len()).sum();
        if len > self.max_message_length {
            return Err(TransportError::MessageTooLarge {
                len,
                max: self.max_message_length,
            });
        }
        if parts.len() > MAX_OFFER_PARTS {
            return Err(TransportError::InvalidArgument(format!(
                "{} parts offered, at most {MAX_OFFER_PARTS} allowed",
                parts.len()
            )));
        }
        outcome(self.inner.offer_parts(parts))
    }

    /// Whether at least one subscriber is connected.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Whether the publication is closed (offers then fail with `PublicationClosed`).
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

    /// The session id subscribers see for this publication.
    pub fn session_id(&self) -> i32 {
        self.session_id
    }

    /// Longest message an offer accepts (bigger than the MTU: Aeron fragments it).
    pub fn max_message_length(&self) -> usize {
        self.max_message_length
    }

    /// Current stream position.
    pub fn position(&self) -> i64 {
        self.inner.position()
    }
}

impl std::fmt::Debug for Publication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("channel", &self.channel)
            .field("stream_id", &self.stream_id)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// A publication being set up by the driver; dropping it cancels the registration.
pub struct PendingPublication {
    inner: AeronAsyncAddExclusivePublication,
    channel: String,
    stream_id: i32,
}

impl PendingPublication {
    /// The publication once the driver has set it up (yielded once), `None` while still
    /// pending; errors if the driver refused it (e.g. a malformed channel). Pump the client
    /// between polls.
    pub fn poll(&mut self) -> Result<Option<Publication>, TransportError> {
        let Some(inner) = self.inner.poll().or_aeron("add publication")? else {
            return Ok(None);
        };
        let constants = inner
            .get_constants()
            .or_aeron("read publication constants")?;
        tracing::debug!(
            channel = %self.channel,
            stream_id = self.stream_id,
            session_id = constants.session_id(),
            "publication ready"
        );
        Ok(Some(Publication {
            session_id: constants.session_id(),
            max_message_length: constants.max_message_length(),
            inner,
            channel: std::mem::take(&mut self.channel),
            stream_id: self.stream_id,
        }))
    }
}

fn outcome(result: Result<i64, AeronOfferError>) -> Result<OfferOutcome, TransportError> {
    match result {
        Ok(position) => Ok(OfferOutcome::Published { position }),
        Err(AeronOfferError::BackPressured) => Ok(OfferOutcome::BackPressured),
        Err(AeronOfferError::AdminAction) => Ok(OfferOutcome::AdminAction),
        Err(AeronOfferError::NotConnected) => Ok(OfferOutcome::NotConnected),
        Err(AeronOfferError::Closed) => Err(TransportError::PublicationClosed),
        Err(AeronOfferError::MaxPositionExceeded) => Err(TransportError::MaxPositionExceeded),
        Err(AeronOfferError::TooManyParts) => Err(TransportError::InvalidArgument(format!(
            "more than {MAX_OFFER_PARTS} parts offered"
        ))),
        Err(AeronOfferError::Error(e)) => Err(TransportError::aeron(
            "offer",
            e.code,
            e.get_last_err_message(),
        )),
    }
}
