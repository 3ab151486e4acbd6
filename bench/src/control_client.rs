//! A raw control-plane client for load generation (Driver Model §4): it encodes
//! `ShmAttachRequest`, `ShmDetachRequest` and `ShmLeaseKeepalive` itself and decodes what
//! the driver answers on the shared control stream, with none of the client library's
//! validation or mapping, so the figures measure the driver and the transport only.

use std::path::Path;
use std::time::Instant;

use tensorpool::clock::monotonic_now_ns;
use tensorpool::protocol::driver::{
    self, AnyMessage, HugepagesPolicy, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmDetachRequest, ShmLeaseKeepalive,
};
use tensorpool::protocol::MessageHeader;
use tensorpool::shm::doorbell::{doorbell_path, Doorbell};
use tensorpool::transport::{AeronClient, Publication, Subscription};

use crate::aeron_host::{self, offer_until_published, ClientPump};
use crate::error::{BenchError, Context as _};

/// Messages one poll may deliver.
const POLL_LIMIT: usize = 64;

/// A lease the driver granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Lease id.
    pub lease_id: u64,
    /// Stream id.
    pub stream_id: u32,
    /// Client id the attach named.
    pub client_id: u32,
    /// Role the attach named.
    pub role: Role,
}

/// What the driver sent that a load client cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `ShmAttachResponse`; `lease_id` is set when `code` is OK, `error` when it is not.
    Attach {
        /// Correlation id of the request.
        correlation_id: i64,
        /// Response code.
        code: ResponseCode,
        /// Granted lease id.
        lease_id: Option<u64>,
        /// Error message of a refusal.
        error: Option<String>,
    },
    /// `ShmDetachResponse`.
    Detach {
        /// Correlation id of the request.
        correlation_id: i64,
        /// Response code.
        code: ResponseCode,
    },
    /// `ShmLeaseRevoked`.
    Revoked {
        /// The lease that ended.
        lease_id: u64,
    },
}

/// Decodes a driver message a load client cares about; anything else gives `None`.
pub fn decode(bytes: &[u8]) -> Option<Reply> {
    let header = MessageHeader::read(bytes).ok()?;
    if header.schema_id != driver::SCHEMA_ID {
        return None;
    }
    Some(match AnyMessage::decode(bytes).ok()? {
        AnyMessage::ShmAttachResponse(r) => Reply::Attach {
            correlation_id: r.correlation_id(),
            code: r.code(),
            lease_id: r.lease_id(),
            error: (r.code() != ResponseCode::Ok)
                .then(|| String::from_utf8_lossy(r.error_message()).into_owned()),
        },
        AnyMessage::ShmDetachResponse(r) => Reply::Detach {
            correlation_id: r.correlation_id(),
            code: r.code(),
        },
        AnyMessage::ShmLeaseRevoked(r) => Reply::Revoked {
            lease_id: r.lease_id(),
        },
        _ => return None,
    })
}

/// One publication and one subscription on the control stream, on its own Aeron client.
pub struct ControlClient {
    // Field order is drop order: publication and subscription before their client.
    publication: Publication,
    subscription: Subscription,
    client: AeronClient,
    pump: ClientPump,
    buf: Vec<u8>,
    next_correlation_id: i64,
    /// The driver's doorbell, rung after attaches and detaches as the client library does.
    bell_path: std::path::PathBuf,
    bell: Option<Doorbell>,
}

impl ControlClient {
    /// Connects to the media driver in `aeron_dir` and waits until the SHM driver listens
    /// on the control stream.
    pub fn connect(aeron_dir: &Path, channel: &str, stream_id: i32) -> Result<Self, BenchError> {
        let client = aeron_host::connect(aeron_dir)?;
        let publication = Publication::add(&client, channel, stream_id)
            .setup("adding the control publication")?;
        // Before we subscribe ourselves, a connected publication means the driver listens.
        aeron_host::pump_until(&client, "the driver's control subscription", || {
            publication.is_connected()
        })?;
        let subscription = Subscription::add(&client, channel, stream_id)
            .setup("adding the control subscription")?;
        Ok(Self {
            publication,
            subscription,
            client,
            pump: ClientPump::new(),
            buf: vec![0; 256],
            // Distinct per process, so concurrent load clients never share an id.
            next_correlation_id: i64::from(std::process::id()) << 32,
            bell_path: doorbell_path(aeron_dir, stream_id as u32),
            bell: None,
        })
    }

    fn send_encoded(
        &mut self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, tensorpool::protocol::EncodeError>,
    ) -> Result<(), BenchError> {
        let len = encode(&mut self.buf).measure("encoding a request")?;
        offer_until_published(
            &self.client,
            &self.publication,
            &self.buf[..len],
            &mut self.pump,
        )
    }

    /// Sends an attach request (publish mode REQUIRE_EXISTING); returns its correlation id.
    pub fn send_attach(
        &mut self,
        stream_id: u32,
        client_id: u32,
        role: Role,
    ) -> Result<i64, BenchError> {
        self.next_correlation_id += 1;
        let request = ShmAttachRequest {
            correlation_id: self.next_correlation_id,
            stream_id,
            client_id,
            role,
            expected_layout_version: 0,
            publish_mode: Some(PublishMode::RequireExisting),
            require_hugepages: HugepagesPolicy::Unspecified,
            desired_node_id: None,
        };
        if self.bell.is_none() {
            self.bell = Doorbell::open(&self.bell_path).setup("opening the driver's doorbell")?;
        }
        self.send_encoded(|buf| request.encode(buf))?;
        self.ring();
        Ok(request.correlation_id)
    }

    fn ring(&self) {
        if let Some(bell) = &self.bell {
            bell.ring();
        }
    }

    /// Sends a detach request for `lease`; returns its correlation id.
    pub fn send_detach(&mut self, lease: &Lease) -> Result<i64, BenchError> {
        self.next_correlation_id += 1;
        let request = ShmDetachRequest {
            correlation_id: self.next_correlation_id,
            lease_id: lease.lease_id,
            stream_id: lease.stream_id,
            client_id: lease.client_id,
            role: lease.role,
        };
        self.send_encoded(|buf| request.encode(buf))?;
        self.ring();
        Ok(request.correlation_id)
    }

    /// Sends a keepalive for `lease`.
    pub fn send_keepalive(&mut self, lease: &Lease) -> Result<(), BenchError> {
        let keepalive = ShmLeaseKeepalive {
            lease_id: lease.lease_id,
            stream_id: lease.stream_id,
            client_id: lease.client_id,
            role: lease.role,
            client_timestamp_ns: monotonic_now_ns(),
        };
        self.send_encoded(|buf| keepalive.encode(buf))
    }

    /// Polls the control stream once, appending what matters to `replies`; returns the
    /// messages read (of any kind).
    pub fn poll(&mut self, replies: &mut Vec<Reply>) -> Result<usize, BenchError> {
        self.subscription
            .poll(|bytes| replies.extend(decode(bytes)), POLL_LIMIT)
            .measure("polling the control stream")
    }

    /// Polls the control stream once, handing every message's bytes to `f`; returns the
    /// messages read.
    pub fn poll_raw(&mut self, f: impl FnMut(&[u8])) -> Result<usize, BenchError> {
        self.subscription
            .poll(f, POLL_LIMIT)
            .measure("polling the control stream")
    }

    /// Pumps the Aeron client if a pump period has passed.
    pub fn housekeeping(&mut self, now: Instant) -> Result<(), BenchError> {
        self.pump.maybe_pump(&self.client, now)
    }
}
