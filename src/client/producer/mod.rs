//! The producer client (Driver Model §2.2, §4.12.2; Wire Spec §8.3, §9, §10.1.3, §10.2.1,
//! §10.3, §10.4.2, §15.18).
//!
//! A [`Producer`] attaches to a stream through the SHM driver, maps the granted epoch
//! read-write (after the superblock checks), and publishes frames with the seqlock
//! protocol: `seq_commit` IN-PROGRESS, payload into the smallest pool that fits, full
//! header, COMMITTED, then a `FrameDescriptor` on the shared descriptor stream and on every
//! per-consumer stream the driver assigned. Sequence numbers start at 0 in every epoch.
//!
//! It is an agent with a duty cycle and no threads: the host calls
//! [`Producer::do_work`] regularly (well within the keepalive interval); that pumps its
//! Aeron client, handles the control stream, sends attach/keepalive requests, remaps on
//! reattach, sends `QosProducer`, and rebuilds the Aeron connection if the media driver
//! goes away. Lifecycle changes surface as [`ProducerEvent`]s. Publishing
//! ([`Producer::publish`], [`Producer::claim`]) allocates nothing and makes no syscall
//! besides the Aeron offers.

mod claim;
mod config;
mod connection;
mod control;
mod descriptors;
mod error;
mod events;
mod metadata;
mod progress;
mod stamp;
mod writer;

pub use claim::FrameClaim;
pub use config::{ProducerConfig, DEFAULT_ALLOWED_BASE_DIR, DEFAULT_QOS_INTERVAL};
pub use descriptors::{ConsumerStreamState, MAX_CONSUMER_STREAMS};
pub use error::{ProducerError, PublishError};
pub use events::{ProducerCounters, ProducerEvent, EVENT_QUEUE_CAPACITY};
pub use progress::{FrameFill, ProgressError};
pub use stamp::DescriptorStamp;

use crate::client::grant::LeaseGrant;
use crate::client::link::ClientStreams;
use crate::client::mapping::MappedEpoch;
use crate::client::metadata::MetadataPublisher;
use crate::client::progress::{ConsumerWish, ConsumerWishes, ProgressPolicy, ProgressThrottle};
use crate::client::qos::{ConsumerQos, QosBoard};
use crate::client::session::{DriverSession, Request, SessionEvent};
use crate::protocol::control::{QosProducer, TensorHeader};
use crate::protocol::driver::{Role, ShmDetachRequest};
use crate::shm::open::{Access, AllowedBaseDirs, BaseDirError};
use crate::transport::{OfferOutcome, TransportError};
use connection::Connection;
use control::{Assignment, Inbound};
use events::EventQueue;
use std::time::Duration;
use writer::EpochWriter;

/// Most control-stream fragments handled per duty cycle.
const CONTROL_FRAGMENT_LIMIT: usize = 16;
/// First pause between attempts to reconnect to a media driver; it doubles per failure.
const RECONNECT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest pause between reconnect attempts.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The monotonic clock the producer's deadlines (and the driver's lease expiry) use.
pub use crate::clock::monotonic_now_ns;

/// A stream's producer: lease, mapping, descriptor publications (see the module docs).
pub struct Producer {
    // Field order is drop order: unmap, then the Aeron publications and client.
    writer: Option<EpochWriter>,
    conn: Option<Connection>,
    counters: ProducerCounters,
    session: DriverSession,
    events: EventQueue,
    config: ProducerConfig,
    allowed: Option<AllowedBaseDirs>,
    inbox: Vec<Inbound>,
    /// The latest `QosConsumer` of each consumer of this stream (Wire Spec §10.4.1).
    qos: QosBoard,
    ever_attached: bool,
    next_qos_ns: u64,
    next_reconnect_ns: u64,
    reconnect_backoff: Duration,
    metadata: MetadataPublisher,
    /// What the stream's consumers asked for in their hellos (Wire Spec §10.1.2).
    wishes: ConsumerWishes,
    progress_throttle: ProgressThrottle,
}

impl Producer {
    /// Connects to the media driver (waiting up to `config.streams.connect_timeout`) and
    /// prepares the session; the attach starts on the first [`Producer::do_work`].
    pub fn new(config: ProducerConfig) -> Result<Self, ProducerError> {
        check_base_dirs(&config.allowed_base_dirs)?;
        let conn = Connection::open(&config.streams)?;
        let session = DriverSession::new(config.session_config());
        tracing::info!(
            stream_id = config.stream_id,
            client_id = session.client_id(),
            "producer connected; attaching"
        );
        Ok(Self {
            writer: None,
            conn: Some(conn),
            counters: ProducerCounters::default(),
            session,
            events: EventQueue::new(),
            allowed: None,
            inbox: Vec::with_capacity(CONTROL_FRAGMENT_LIMIT),
            qos: QosBoard::for_stream(config.stream_id),
            ever_attached: false,
            next_qos_ns: 0,
            next_reconnect_ns: 0,
            reconnect_backoff: RECONNECT_BACKOFF_INITIAL,
            metadata: MetadataPublisher::new(config.metadata_interval),
            wishes: ConsumerWishes::new(config.progress),
            progress_throttle: ProgressThrottle::default(),
            config,
        })
    }

    /// One duty cycle at monotonic time `now_ns` (see [`monotonic_now_ns`]); returns the
    /// work done. Losing the media driver is handled here (the producer reconnects);
    /// other Aeron failures are returned, and the producer stays usable.
    pub fn do_work(&mut self, now_ns: u64) -> Result<usize, ProducerError> {
        if self.conn.is_none() {
            return Ok(self.reconnect(now_ns));
        }
        let mut work = match self.poll_control(now_ns) {
            Ok(work) => work,
            Err(error) => {
                let closed = self
                    .conn
                    .as_ref()
                    .is_some_and(|c| c.link.client().is_closed());
                if closed || error == TransportError::ClientClosed {
                    self.lose_connection(now_ns, &error);
                    return Ok(1);
                }
                self.handle_inbox(now_ns);
                return Err(error.into());
            }
        };
        work += self.handle_inbox(now_ns);
        work += self.send_due_request(now_ns);
        if let Some(conn) = self.conn.as_mut() {
            work += conn.descriptors.poll_pending(&mut self.counters);
        }
        work += self.send_qos(now_ns);
        work += self.send_metadata(now_ns);
        Ok(work)
    }

    /// Publishes `payload` (copied into the payload slot) described by `tensor`, with
    /// capture time `timestamp_ns`; returns the frame's sequence number.
    #[inline]
    pub fn publish(
        &mut self,
        payload: &[u8],
        tensor: &TensorHeader,
        timestamp_ns: u64,
    ) -> Result<u64, PublishError> {
        self.publish_stamped(payload, tensor, timestamp_ns, DescriptorStamp::NONE)
    }

    /// [`Producer::publish`] with a trace id and/or publish timestamp in the frame's
    /// descriptor (Wire Spec §10.2.1; 0 = absent). Costs what `publish` does.
    pub fn publish_stamped(
        &mut self,
        payload: &[u8],
        tensor: &TensorHeader,
        timestamp_ns: u64,
        stamp: DescriptorStamp,
    ) -> Result<u64, PublishError> {
        let writer = self.writer.as_mut().ok_or(PublishError::NotAttached)?;
        let pool = writer
            .pool_for(payload.len())
            .inspect_err(|_| self.counters.frames_too_large += 1)?;
        if let Err(error) = writer.check_tensor(tensor, payload.len()) {
            self.counters.invalid_tensors += 1;
            return Err(error.into());
        }
        let slot = writer.begin(payload.len(), pool);
        writer.payload_mut(&slot).copy_from_slice(payload);
        let descriptors = self.conn.as_ref().map(|c| &c.descriptors);
        Ok(claim::finish(
            writer,
            descriptors,
            &mut self.counters,
            &slot,
            timestamp_ns,
            stamp,
        ))
    }

    /// Takes the next sequence and a payload slot of `len` bytes to fill in place; see
    /// [`FrameClaim`]. A frame too large for every pool uses no sequence number.
    #[inline]
    pub fn claim(&mut self, len: usize) -> Result<FrameClaim<'_>, PublishError> {
        let writer = self.writer.as_mut().ok_or(PublishError::NotAttached)?;
        let pool = writer
            .pool_for(len)
            .inspect_err(|_| self.counters.frames_too_large += 1)?;
        let slot = writer.begin(len, pool);
        let descriptors = self.conn.as_ref().map(|c| &c.descriptors);
        Ok(FrameClaim::new(
            writer,
            descriptors,
            &mut self.counters,
            slot,
        ))
    }

    /// Like [`Producer::claim`], for a frame filled over time (e.g. rows from a camera
    /// DMA) with frame progress (Wire Spec §10.2.2): `tensor` is checked and the whole
    /// header written first, STARTED goes out at `now_ns`, and [`FrameFill::progress`]
    /// reports the fill, throttled as the consumers' hints ask. Nothing is sent while no
    /// consumer supports progress. Allocates nothing.
    pub fn claim_with_progress(
        &mut self,
        len: usize,
        tensor: &TensorHeader,
        now_ns: u64,
    ) -> Result<FrameFill<'_>, PublishError> {
        let writer = self.writer.as_mut().ok_or(PublishError::NotAttached)?;
        let pool = writer
            .pool_for(len)
            .inspect_err(|_| self.counters.frames_too_large += 1)?;
        if let Err(error) = writer.check_tensor(tensor, len) {
            self.counters.invalid_tensors += 1;
            return Err(error.into());
        }
        let slot = writer.begin(len, pool);
        writer.write_header(&slot, 0);
        let outlet = progress::ProgressOutlet {
            link: self.conn.as_ref().map(|c| &c.link),
            policy: self.wishes.policy(),
            throttle: &mut self.progress_throttle,
        };
        Ok(FrameFill::start(
            writer,
            self.conn.as_ref().map(|c| &c.descriptors),
            &mut self.counters,
            outlet,
            slot,
            u64::from(tensor.progress_stride_bytes),
            now_ns,
        ))
    }

    /// The frame-progress throttle in force; `None` while no consumer supports progress.
    pub fn progress_policy(&self) -> Option<ProgressPolicy> {
        self.wishes.policy()
    }

    /// What `consumer_id` asked for in its latest `ConsumerHello`, while its lease lasts.
    pub fn consumer_wish(&self, consumer_id: u32) -> Option<ConsumerWish> {
        self.wishes.get(consumer_id).copied()
    }

    /// The oldest event not yet taken.
    pub fn poll_event(&mut self) -> Option<ProducerEvent> {
        self.events.pop()
    }

    /// Takes every pending event, oldest first.
    pub fn events(&mut self) -> impl Iterator<Item = ProducerEvent> + '_ {
        self.events.drain()
    }

    /// The counters so far.
    pub fn counters(&self) -> ProducerCounters {
        ProducerCounters {
            protocol_errors: self.session.protocol_errors().iter().sum(),
            ..self.counters
        }
    }

    /// Whether an epoch is mapped and frames can be published.
    pub fn is_attached(&self) -> bool {
        self.writer.is_some()
    }

    /// Whether the Aeron client is connected to a media driver.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The pause between keepalives of the live lease (a third of the granted lease,
    /// capped by the configured bound), if attached.
    pub fn keepalive_period(&self) -> Option<Duration> {
        self.session.keepalive_period()
    }

    /// The grant of the mapped epoch.
    pub fn grant(&self) -> Option<&LeaseGrant> {
        self.writer.as_ref().map(|w| w.epoch().grant())
    }

    /// The mapped epoch.
    pub fn epoch(&self) -> Option<u64> {
        self.grant().map(|g| g.epoch)
    }

    /// The stream produced: the granted id once attached, else the configured one.
    pub fn stream_id(&self) -> u32 {
        self.session
            .grant()
            .map_or(self.config.stream_id, |g| g.stream_id)
    }

    /// The client id in use.
    pub fn client_id(&self) -> u32 {
        self.session.client_id()
    }

    /// The sequence the next frame gets, when attached.
    pub fn next_seq(&self) -> Option<u64> {
        self.writer.as_ref().map(EpochWriter::next_seq)
    }

    /// The largest payload the mapped pools hold, when attached.
    pub fn max_payload_len(&self) -> Option<usize> {
        self.writer.as_ref().map(EpochWriter::max_len)
    }

    /// Whether `consumer_id` has a private descriptor stream, and its state.
    pub fn consumer_stream(&self, consumer_id: u32) -> Option<ConsumerStreamState> {
        self.conn.as_ref()?.descriptors.state(consumer_id)
    }

    /// The latest `QosConsumer` report of every consumer of this stream, in the mapped
    /// epoch (Wire Spec §10.4.1): last sequence seen, `drops_gap`, `drops_late`, mode.
    /// A consumer is forgotten when its lease ends.
    pub fn consumer_qos(&self) -> impl Iterator<Item = &ConsumerQos> + '_ {
        let epoch = self.epoch();
        self.qos
            .stream(self.stream_id())
            .into_iter()
            .flat_map(|s| s.consumers())
            .filter(move |c| Some(c.report.epoch) == epoch)
    }

    /// How many frames `consumer_id` trails the newest frame published, by its latest
    /// QoS report (0: it has seen the newest); `None` before its first report in this
    /// epoch or before any frame.
    pub fn consumer_lag(&self, consumer_id: u32) -> Option<u64> {
        let last_published = self.next_seq()?.checked_sub(1)?;
        let epoch = self.epoch()?;
        self.qos
            .stream(self.stream_id())?
            .consumer(consumer_id)?
            .lag(epoch, last_published)
    }

    /// Every QoS report this producer heard of its stream, its own included.
    pub fn qos_board(&self) -> &QosBoard {
        &self.qos
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    fn poll_control(&mut self, now_ns: u64) -> Result<usize, TransportError> {
        let stream_id = self.stream_id();
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0);
        };
        let mut work = conn.link.do_work()?;
        let (session, inbox) = (&mut self.session, &mut self.inbox);
        work += conn.link.poll_control(
            |bytes| {
                if let Some(inbound) = control::classify(bytes, session, stream_id, now_ns) {
                    inbox.push(inbound);
                }
            },
            CONTROL_FRAGMENT_LIMIT,
        )?;
        // Announces are the consumers' business, but an unread subscription would hold the
        // driver's announce publication back.
        work += conn.link.poll_announce(|_| {}, CONTROL_FRAGMENT_LIMIT)?;
        let qos = &mut self.qos;
        qos.watch_stream(stream_id);
        work += conn.qos_sub.poll(
            |bytes| {
                qos.on_message(bytes, now_ns);
            },
            CONTROL_FRAGMENT_LIMIT,
        )?;
        Ok(work)
    }

    fn handle_inbox(&mut self, now_ns: u64) -> usize {
        let mut inbox = std::mem::take(&mut self.inbox);
        let work = inbox.len();
        for inbound in inbox.drain(..) {
            match inbound {
                Inbound::Session(event) => self.on_session_event(event, now_ns),
                Inbound::ConsumerConfig {
                    consumer_id,
                    assignment,
                } => self.on_consumer_config(consumer_id, assignment),
                Inbound::ConsumerHello(wish) => {
                    self.counters.consumer_hellos += 1;
                    self.wishes.on_hello(wish);
                    if let Some(conn) = self.conn.as_mut() {
                        conn.descriptors
                            .set_rate(wish.consumer_id, wish.max_rate_hz);
                    }
                }
                Inbound::ConsumerLeaseEnded { consumer_id } => {
                    self.qos.forget_consumer(self.stream_id(), consumer_id);
                    self.wishes.remove(consumer_id);
                    if let Some(conn) = self.conn.as_mut() {
                        conn.descriptors.close(consumer_id, &mut self.counters);
                    }
                }
            }
        }
        self.inbox = inbox;
        work
    }

    fn on_consumer_config(&mut self, consumer_id: u32, assignment: Assignment) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        match assignment {
            Assignment::Stream { channel, stream_id } => {
                let client = conn.link.client();
                if let Err(error) = conn.descriptors.assign(
                    client,
                    consumer_id,
                    &channel,
                    stream_id,
                    &mut self.counters,
                ) {
                    tracing::warn!(consumer_id, %channel, stream_id, %error, "cannot open per-consumer descriptor stream");
                    self.counters.consumer_configs_rejected += 1;
                }
            }
            Assignment::Declined => conn.descriptors.close(consumer_id, &mut self.counters),
            Assignment::Invalid => {
                tracing::warn!(consumer_id, "ConsumerConfig with half a descriptor stream; consumer stays on the shared stream");
                self.counters.consumer_configs_rejected += 1;
                conn.descriptors.close(consumer_id, &mut self.counters);
            }
        }
    }

    fn on_session_event(&mut self, event: SessionEvent, now_ns: u64) {
        match event {
            SessionEvent::Attached(grant) => self.on_attached(grant, now_ns),
            SessionEvent::AttachRefused { code, message } => {
                tracing::warn!(%code, %message, stream_id = self.config.stream_id, "attach refused; retrying");
                self.push_event(ProducerEvent::AttachRefused { code, message });
            }
            SessionEvent::AttachTimedOut { waited, unanswered } => {
                tracing::info!(
                    stream_id = self.config.stream_id,
                    ?waited,
                    unanswered,
                    "no attach response yet (the driver may be busy); asking again and \
                     waiting longer, a late grant is still taken"
                );
            }
            SessionEvent::ProtocolError(error) => {
                tracing::warn!(%error, "attach response refused; retrying");
                self.writer = None;
            }
            SessionEvent::Revoked(reason) => {
                tracing::warn!(%reason, "producer lease revoked; unmapped");
                self.writer = None;
                self.push_event(ProducerEvent::Revoked(reason));
            }
            SessionEvent::LeaseLost => {
                tracing::warn!("producer lease lost; unmapped");
                self.writer = None;
                self.push_event(ProducerEvent::LeaseLost);
            }
            SessionEvent::DriverShutdown(reason) => {
                tracing::warn!(%reason, "driver shut down; unmapped");
                self.writer = None;
                // Consumer leases ended with the driver, and their streams with them.
                self.wishes.clear();
                if let Some(conn) = self.conn.as_mut() {
                    conn.descriptors.close_all(&mut self.counters);
                }
                self.push_event(ProducerEvent::DriverShutdown(reason));
            }
            SessionEvent::OtherLeaseRevoked { .. } | SessionEvent::Closed => {}
        }
    }

    fn on_attached(&mut self, grant: LeaseGrant, now_ns: u64) {
        self.writer = None;
        let mapped = self
            .allowed_dirs()
            .map_err(|e| e.to_string())
            .and_then(|allowed| {
                MappedEpoch::map(&grant, allowed, Access::ReadWrite).map_err(|e| e.to_string())
            });
        match mapped {
            Ok(mapped) => {
                tracing::info!(
                    stream_id = grant.stream_id,
                    epoch = grant.epoch,
                    lease_id = grant.lease_id,
                    "producer attached and mapped"
                );
                self.writer = Some(EpochWriter::new(mapped));
                self.on_epoch_mapped_metadata();
                self.next_qos_ns = now_ns;
                if self.ever_attached {
                    self.counters.reattaches += 1;
                    self.push_event(ProducerEvent::Reattached { epoch: grant.epoch });
                } else {
                    self.ever_attached = true;
                    self.push_event(ProducerEvent::Attached {
                        stream_id: grant.stream_id,
                        epoch: grant.epoch,
                    });
                }
            }
            Err(error) => {
                tracing::error!(
                    stream_id = grant.stream_id,
                    epoch = grant.epoch,
                    %error,
                    "granted regions failed the mapping checks; giving the lease back"
                );
                self.counters.map_failures += 1;
                self.push_event(ProducerEvent::MapFailed { epoch: grant.epoch });
                // Drop the lease locally (backoff before the next attach) and tell the
                // driver, so the stream is free again before the lease would expire.
                let _ = self.session.send_failed(now_ns);
                let detach = ShmDetachRequest {
                    correlation_id: 1,
                    lease_id: grant.lease_id,
                    stream_id: grant.stream_id,
                    client_id: self.session.client_id(),
                    role: Role::Producer,
                };
                self.send(&Request::Detach(detach));
            }
        }
    }

    fn send_due_request(&mut self, now_ns: u64) -> usize {
        let (request, event) = self.session.poll(now_ns);
        let mut work = 0;
        if let Some(event) = event {
            work += 1;
            self.on_session_event(event, now_ns);
        }
        if let Some(request) = request {
            work += 1;
            if !self.send(&request) {
                // A keepalive that cannot go out ends the lease (Driver Model §4.4).
                if let Some(event) = self.session.send_failed(now_ns) {
                    self.on_session_event(event, now_ns);
                }
            }
        }
        work
    }

    fn send(&mut self, request: &Request) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        match conn.link.send(request) {
            Ok(sent) => sent,
            Err(error) => {
                tracing::warn!(%error, "control request not sent");
                false
            }
        }
    }

    fn send_qos(&mut self, now_ns: u64) -> usize {
        if now_ns < self.next_qos_ns {
            return 0;
        }
        self.next_qos_ns = now_ns.saturating_add(duration_ns(self.config.qos_interval));
        let (Some(conn), Some(writer)) = (self.conn.as_ref(), self.writer.as_ref()) else {
            return 0;
        };
        let grant = writer.epoch().grant();
        let qos = QosProducer {
            stream_id: grant.stream_id,
            producer_id: self.session.client_id(),
            epoch: grant.epoch,
            current_seq: writer.next_seq(),
            watermark: None,
        };
        let mut buf = [0u8; 64];
        if let Ok(len) = qos.encode(&mut buf) {
            if matches!(
                conn.qos.offer(&buf[..len]),
                Ok(OfferOutcome::Published { .. })
            ) {
                self.counters.qos_sent += 1;
            }
        }
        1
    }

    fn lose_connection(&mut self, now_ns: u64, error: &TransportError) {
        tracing::warn!(%error, "lost the media driver; reconnecting");
        self.handle_inbox(now_ns);
        // Attached: the lease is lost; attaching: retry after backoff.
        if let Some(event) = self.session.send_failed(now_ns) {
            self.on_session_event(event, now_ns);
        }
        self.writer = None;
        self.conn = None;
        self.next_reconnect_ns = now_ns;
        self.push_event(ProducerEvent::MediaDriverLost);
    }

    fn reconnect(&mut self, now_ns: u64) -> usize {
        if now_ns < self.next_reconnect_ns {
            return 0;
        }
        // One liveness check per attempt: the duty cycle must not wait for a driver.
        let streams = ClientStreams {
            connect_timeout: Duration::ZERO,
            ..self.config.streams.clone()
        };
        match Connection::open(&streams) {
            Ok(conn) => {
                tracing::info!("reconnected to the media driver");
                self.conn = Some(conn);
                self.counters.reconnects += 1;
                self.reconnect_backoff = RECONNECT_BACKOFF_INITIAL;
            }
            Err(error) => {
                tracing::debug!(%error, "media driver not reachable yet");
                self.next_reconnect_ns = now_ns.saturating_add(duration_ns(self.reconnect_backoff));
                self.reconnect_backoff = (self.reconnect_backoff * 2).min(RECONNECT_BACKOFF_MAX);
            }
        }
        1
    }

    /// The allowed base directories, canonicalized on first use (the driver may create
    /// its base directory after this producer started).
    fn allowed_dirs(&mut self) -> Result<&AllowedBaseDirs, BaseDirError> {
        if self.allowed.is_none() {
            self.allowed = Some(AllowedBaseDirs::new(&self.config.allowed_base_dirs)?);
        }
        self.allowed.as_ref().ok_or(BaseDirError::NoDirs)
    }

    fn push_event(&mut self, event: ProducerEvent) {
        if self.events.push(event) {
            self.counters.events_dropped += 1;
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.writer = None;
        // Best effort: one detach, so the epoch ends now rather than at lease expiry.
        if let Some(request) = self.session.close(monotonic_now_ns()) {
            self.send(&request);
        }
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream_id", &self.stream_id())
            .field("client_id", &self.client_id())
            .field("epoch", &self.epoch())
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

/// Checks what can be checked before the driver has created anything: at least one
/// directory, all absolute.
fn check_base_dirs(dirs: &[std::path::PathBuf]) -> Result<(), BaseDirError> {
    if dirs.is_empty() {
        return Err(BaseDirError::NoDirs);
    }
    match dirs.iter().find(|d| !d.is_absolute()) {
        Some(dir) => Err(BaseDirError::NotAbsolute { dir: dir.clone() }),
        None => Ok(()),
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
