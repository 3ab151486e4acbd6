//! A client's Aeron connection to the driver's control plane: the control stream both
//! ways, the announce stream in, and the stream settings every client shares.

use super::session::Request;
use crate::protocol::codec::EncodeError;
use crate::shm::doorbell::{doorbell_path, Doorbell};
use crate::transport::{
    AeronClient, ClientOptions, OfferOutcome, Publication, Subscription, TransportError,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Default IPC channel of every stream: the channel `config/driver.toml` uses. The term
/// length only shapes this client's own publications (Aeron's IPC default is 64 MiB per
/// publication), which are exclusive, so a driver that configured another term-length on
/// the same stream is joined all the same (docs/DESIGN.md, "Channel parameters");
/// subscriptions match any IPC publication of the stream.
pub const DEFAULT_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// Default control stream (driver requests, responses, notices).
pub const DEFAULT_CONTROL_STREAM_ID: u32 = 1000;
/// Default announce stream (`ShmPoolAnnounce`).
pub const DEFAULT_ANNOUNCE_STREAM_ID: u32 = 1001;
/// Default shared descriptor stream (`FrameDescriptor`).
pub const DEFAULT_DESCRIPTOR_STREAM_ID: u32 = 1100;
/// Default QoS stream (`QosProducer`, `QosConsumer`).
pub const DEFAULT_QOS_STREAM_ID: u32 = 1200;
/// Default metadata stream (`DataSourceAnnounce`, `DataSourceMeta`; Wire Spec §15.11 and
/// the spec repository's `docs/STREAM_ID_CONVENTIONS.md`).
pub const DEFAULT_METADATA_STREAM_ID: u32 = 1300;
/// How often an attach looks again for the driver's doorbell (a driver that started
/// later, or restarted and made a new one).
const DOORBELL_RECHECK: Duration = Duration::from_secs(1);

/// Where a client finds the driver and the data streams. The defaults agree with the
/// shipped `config/driver.toml`; every field can be changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientStreams {
    /// Aeron directory; `None` is Aeron's default.
    pub aeron_dir: Option<PathBuf>,
    /// Control channel.
    pub control_channel: String,
    /// Control stream id.
    pub control_stream_id: u32,
    /// Announce channel.
    pub announce_channel: String,
    /// Announce stream id (may equal the control stream id).
    pub announce_stream_id: u32,
    /// Shared descriptor channel.
    pub descriptor_channel: String,
    /// Shared descriptor stream id.
    pub descriptor_stream_id: u32,
    /// QoS channel.
    pub qos_channel: String,
    /// QoS stream id.
    pub qos_stream_id: u32,
    /// Metadata channel.
    pub metadata_channel: String,
    /// Metadata stream id (may equal another stream's: messages are told apart by
    /// template id).
    pub metadata_stream_id: u32,
    /// How long to wait for a media driver when connecting.
    pub connect_timeout: Duration,
}

impl Default for ClientStreams {
    fn default() -> Self {
        Self {
            aeron_dir: None,
            control_channel: DEFAULT_CHANNEL.into(),
            control_stream_id: DEFAULT_CONTROL_STREAM_ID,
            announce_channel: DEFAULT_CHANNEL.into(),
            announce_stream_id: DEFAULT_ANNOUNCE_STREAM_ID,
            descriptor_channel: DEFAULT_CHANNEL.into(),
            descriptor_stream_id: DEFAULT_DESCRIPTOR_STREAM_ID,
            qos_channel: DEFAULT_CHANNEL.into(),
            qos_stream_id: DEFAULT_QOS_STREAM_ID,
            metadata_channel: DEFAULT_CHANNEL.into(),
            metadata_stream_id: DEFAULT_METADATA_STREAM_ID,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl ClientStreams {
    /// Defaults with an explicit Aeron directory.
    pub fn in_dir(aeron_dir: impl Into<PathBuf>) -> Self {
        Self {
            aeron_dir: Some(aeron_dir.into()),
            ..Self::default()
        }
    }

    /// Defaults with an explicit Aeron directory and every stream on `channel`.
    pub fn on_channel(aeron_dir: impl Into<PathBuf>, channel: &str) -> Self {
        Self {
            aeron_dir: Some(aeron_dir.into()),
            control_channel: channel.into(),
            announce_channel: channel.into(),
            descriptor_channel: channel.into(),
            qos_channel: channel.into(),
            metadata_channel: channel.into(),
            ..Self::default()
        }
    }

    /// Whether announces arrive on the control stream itself.
    pub fn announce_shares_control(&self) -> bool {
        self.announce_channel == self.control_channel
            && self.announce_stream_id == self.control_stream_id
    }
}

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Aeron failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// A request did not encode (a bug: requests are fixed-size).
    #[error("encoding a request: {0}")]
    Encode(#[from] EncodeError),
}

/// Converts a configured stream id to Aeron's `i32`.
pub fn stream_i32(stream_id: u32) -> Result<i32, TransportError> {
    i32::try_from(stream_id).map_err(|_| {
        TransportError::InvalidArgument(format!("stream id {stream_id} does not fit Aeron's int32"))
    })
}

/// The control-plane connection of one client.
pub struct ControlLink {
    control_pub: Publication,
    control_sub: Subscription,
    announce_sub: Option<Subscription>,
    buf: [u8; 128],
    doorbell: DriverBell,
    client: AeronClient,
}

/// The driver's [doorbell](crate::shm::doorbell), rung after attach and detach requests so
/// an idle driver answers at once; absent when the driver has none.
struct DriverBell {
    path: PathBuf,
    bell: Option<Doorbell>,
    next_check: Option<Instant>,
}

impl DriverBell {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            bell: None,
            next_check: None,
        }
    }

    /// (Re)opens the doorbell if it is missing or was replaced, at most once per
    /// [`DOORBELL_RECHECK`].
    fn refresh(&mut self) {
        let now = Instant::now();
        if self.next_check.is_some_and(|at| now < at) {
            return;
        }
        self.next_check = Some(now + DOORBELL_RECHECK);
        if self.bell.as_ref().is_some_and(Doorbell::is_current) {
            return;
        }
        self.bell = match Doorbell::open(&self.path) {
            Ok(bell) => bell,
            Err(error) => {
                tracing::debug!(%error, "not ringing the driver's doorbell");
                None
            }
        };
    }

    fn ring(&self) {
        if let Some(bell) = &self.bell {
            bell.ring();
        }
    }
}

impl ControlLink {
    /// Connects to the media driver and sets up the control (and announce) streams.
    pub fn connect(streams: &ClientStreams, client_name: &str) -> Result<Self, LinkError> {
        let client = AeronClient::connect_with(&ClientOptions {
            dir: streams.aeron_dir.clone(),
            connect_timeout: streams.connect_timeout,
            client_name: Some(client_name.to_string()),
            ..ClientOptions::default()
        })?;
        let control = stream_i32(streams.control_stream_id)?;
        let control_pub = Publication::add(&client, &streams.control_channel, control)?;
        let control_sub = Subscription::add(&client, &streams.control_channel, control)?;
        let announce_sub = if streams.announce_shares_control() {
            None
        } else {
            Some(Subscription::add(
                &client,
                &streams.announce_channel,
                stream_i32(streams.announce_stream_id)?,
            )?)
        };
        let mut doorbell = DriverBell::new(doorbell_path(client.dir(), streams.control_stream_id));
        doorbell.refresh();
        Ok(Self {
            control_pub,
            control_sub,
            announce_sub,
            buf: [0; 128],
            doorbell,
            client,
        })
    }

    /// The Aeron client (to add data-stream publications and subscriptions).
    pub fn client(&self) -> &AeronClient {
        &self.client
    }

    /// Pumps the Aeron client; returns work done.
    pub fn do_work(&self) -> Result<usize, TransportError> {
        self.client.do_work()
    }

    /// Publishes a request; `Ok(false)` when it could not be offered now (back pressure,
    /// or the driver is not subscribed), which the session treats as a send failure.
    pub fn send(&mut self, request: &Request) -> Result<bool, LinkError> {
        let (len, urgent) = match request {
            Request::Attach(r) => {
                self.doorbell.refresh();
                (r.encode(&mut self.buf)?, true)
            }
            Request::Keepalive(k) => (k.encode(&mut self.buf)?, false),
            Request::Detach(d) => (d.encode(&mut self.buf)?, true),
        };
        let published = matches!(
            self.control_pub.offer(&self.buf[..len])?,
            OfferOutcome::Published { .. }
        );
        // A client waits for the answer to these: wake the driver if it is parked.
        // Keepalives need no answer and can wait for the driver's next turn.
        if published && urgent {
            self.doorbell.ring();
        }
        Ok(published)
    }

    /// Offers an already encoded message on the control stream (e.g. `FrameProgress`,
    /// Wire Spec §10.2.2), without blocking.
    pub fn offer(&self, bytes: &[u8]) -> Result<OfferOutcome, TransportError> {
        self.control_pub.offer(bytes)
    }

    /// Whether the driver (or anyone) subscribes to the control stream.
    pub fn is_connected(&self) -> bool {
        self.control_pub.is_connected()
    }

    /// Delivers control-stream messages (and announces, when they share it).
    pub fn poll_control(
        &mut self,
        handler: impl FnMut(&[u8]),
        limit: usize,
    ) -> Result<usize, TransportError> {
        self.control_sub.poll(handler, limit)
    }

    /// Delivers announce-stream messages (nothing when announces share the control
    /// stream: they arrive through [`ControlLink::poll_control`]).
    pub fn poll_announce(
        &mut self,
        handler: impl FnMut(&[u8]),
        limit: usize,
    ) -> Result<usize, TransportError> {
        match &mut self.announce_sub {
            Some(sub) => sub.poll(handler, limit),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_channel_puts_every_stream_on_the_channel_and_keeps_the_default_ids() {
        let streams = ClientStreams::on_channel("/dev/shm/aeron-x", "aeron:ipc?term-length=64k");
        assert_eq!(streams.aeron_dir, Some(PathBuf::from("/dev/shm/aeron-x")));
        for channel in [
            &streams.control_channel,
            &streams.announce_channel,
            &streams.descriptor_channel,
            &streams.qos_channel,
            &streams.metadata_channel,
        ] {
            assert_eq!(channel, "aeron:ipc?term-length=64k");
        }
        let defaults = ClientStreams::default();
        assert_eq!(
            (
                streams.control_stream_id,
                streams.announce_stream_id,
                streams.descriptor_stream_id,
                streams.qos_stream_id,
                streams.metadata_stream_id,
                streams.connect_timeout
            ),
            (
                defaults.control_stream_id,
                defaults.announce_stream_id,
                defaults.descriptor_stream_id,
                defaults.qos_stream_id,
                defaults.metadata_stream_id,
                defaults.connect_timeout
            )
        );
    }
}
