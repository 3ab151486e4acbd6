//! The consumer agent (Driver Model §4.9, §4.12.3, §4.13; Wire Spec §10.1–§10.4, §15.18,
//! §15.21): a duty cycle over a driver session, the announce state of its stream, the
//! mapped epoch and the descriptor, hello and QoS streams.

use super::announce::{AnnounceOutcome, AnnounceTracker};
use super::config::{duration_ns, ConsumerConfig, ConsumerMode, MAX_CHANNEL_LEN};
use super::connection::{shared_descriptor_stream, Connection};
use super::counters::{ConsumerCounters, DropReason};
use super::descriptors::DescriptorStream;
use super::events::{ConsumerEvent, EventQueue, UnmapReason};
use super::fallback::{ConsumerState, FallbackUri, ShmDirective};
use super::frame::{
    decode_descriptor, read_frame, watch_next_slot, DescriptorMessage, Frame, FramePoll,
    SeqTracker, TensorCache,
};
use super::liveness::ActivityWatch;
use super::ConsumerError;
use crate::client::grant::{LeaseGrant, ProtocolError};
use crate::client::link::{ClientStreams, LinkError};
use crate::client::mapping::MappedEpoch;
use crate::client::metadata::MetadataListener;
use crate::client::progress::{FramePrefix, ProgressPoll, ProgressReader};
use crate::client::rate::{gate_timestamp, RateLimiter};
use crate::client::session::{DriverSession, Request, SessionConfig, SessionEvent};
use crate::clock::{monotonic_now_ns, realtime_now_ns};
use crate::protocol::codec::{get_u32, MessageHeader, MESSAGE_HEADER_LEN};
use crate::protocol::control::{
    self, consumer_config, frame_progress, shm_pool_announce, Bool, ConsumerConfigDecoder,
    ConsumerHello, FrameProgress, FrameProgressDecoder, Mode, QosConsumer, ShmPoolAnnounceDecoder,
};
use crate::protocol::driver::{self, LeaseRevokeReason, Role};
use crate::shm::open::{Access, AllowedBaseDirs};
use crate::transport::{OfferOutcome, TransportError};
use std::time::Duration;

/// Fragments read per stream per duty cycle.
const CONTROL_POLL_LIMIT: usize = 16;
/// Room for a `ConsumerHello` with the longest allowed channel, or a `QosConsumer`.
const SEND_BUFFER_LEN: usize = 2 * MAX_CHANNEL_LEN;
/// First pause between attempts to reconnect to a media driver; it doubles per failure.
const RECONNECT_BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// Longest pause between reconnect attempts.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// A control-plane message decoded inside the poll callback, acted on after it.
#[derive(Debug)]
enum Inbound {
    Session(SessionEvent),
    Announce(AnnounceOutcome),
    Assignment(Option<DescriptorStream>),
    Shm(ShmDirective),
    Progress(FrameProgress),
}

/// A consumer of one stream: attaches through the driver, maps the granted regions
/// read-only, follows epoch changes, and reads frames with [`Consumer::poll_frame`].
///
/// Drive it with [`Consumer::do_work`] (CLOCK_MONOTONIC nanoseconds, e.g. from
/// [`monotonic_now_ns`](super::monotonic_now_ns)) and read frames between calls. When
/// the media driver goes away (its Aeron client closes), `do_work` drops the mapping and
/// the lease, reports [`ConsumerEvent::MediaDriverLost`], and rebuilds the Aeron
/// connection itself, retrying with backoff, then attaches afresh. Not `Send`: it owns an
/// Aeron client.
pub struct Consumer {
    config: ConsumerConfig,
    session: DriverSession,
    /// The session is not polled before this time (back-off after a failed mapping or an
    /// epoch wait that timed out).
    session_resume_ns: u64,
    /// Protocol errors of sessions replaced by a restart.
    retired_protocol_errors: u64,
    allowed: Option<AllowedBaseDirs>,
    mapped: Option<MappedEpoch>,
    /// Deadline of the wait for a higher epoch after a producer revoke.
    awaiting_epoch_until: Option<u64>,
    pub(super) stream_id: u32,
    announces: AnnounceTracker,
    seqs: SeqTracker,
    /// The sequence whose slot latency mode last prefetched (0: none; see
    /// `watch_next_slot`). Not reset with the epoch: a stale value only skips one hint.
    primed_seq: u64,
    tensors: TensorCache,
    pub(super) counters: ConsumerCounters,
    pub(super) events: EventQueue,
    inbox: Vec<Inbound>,
    hello_due: bool,
    next_qos_ns: u64,
    send_buf: [u8; SEND_BUFFER_LEN],
    /// The shared descriptor stream (what [`Consumer::descriptor_stream`] reports while
    /// disconnected).
    shared_descriptors: DescriptorStream,
    next_reconnect_ns: u64,
    reconnect_backoff: Duration,
    /// The stream's metadata (Wire Spec §10.3).
    pub(super) metadata: MetadataListener,
    /// The Aeron side; `None` while the media driver is lost (reconnecting).
    pub(super) conn: Option<Connection>,
    /// §15.14 liveness of the mapped regions.
    activity: ActivityWatch,
    /// §15.2: the writer's sequence went back; remap at the next duty cycle.
    remap_due: bool,
    /// §15.12 FALLBACK: told not to use SHM, and where the payload is instead.
    fallback: Option<FallbackUri>,
    /// RATE_LIMITED mode's local limiter (Wire Spec §11).
    rate: Option<RateLimiter>,
    /// Frame progress, when opted in (Wire Spec §10.2.2).
    progress: Option<ProgressReader>,
}

impl Consumer {
    /// Connects to the media driver (external mode) and sets up every stream; the attach
    /// starts on the first [`Consumer::do_work`].
    pub fn connect(config: ConsumerConfig) -> Result<Self, ConsumerError> {
        config.validate().map_err(ConsumerError::InvalidConfig)?;
        let conn = Connection::open(&config, &config.streams)?;
        // The announce subscription exists now: earlier MONOTONIC announces are replays.
        let join_time_ns = monotonic_now_ns();
        Ok(Self {
            session: DriverSession::new(session_config(&config)),
            session_resume_ns: 0,
            retired_protocol_errors: 0,
            allowed: None,
            mapped: None,
            awaiting_epoch_until: None,
            stream_id: config.stream_id,
            announces: AnnounceTracker::new(
                config.stream_id,
                config.three_periods_ns(),
                join_time_ns,
            ),
            seqs: SeqTracker::new(config.max_outstanding_seq_gap),
            primed_seq: 0,
            tensors: TensorCache::default(),
            counters: ConsumerCounters::default(),
            events: EventQueue::new(),
            inbox: Vec::with_capacity(CONTROL_POLL_LIMIT * 2),
            hello_due: false,
            next_qos_ns: 0,
            send_buf: [0; SEND_BUFFER_LEN],
            shared_descriptors: shared_descriptor_stream(&config.streams),
            next_reconnect_ns: 0,
            reconnect_backoff: RECONNECT_BACKOFF_INITIAL,
            metadata: MetadataListener::new(),
            conn: Some(conn),
            activity: ActivityWatch::new(
                config.activity_timeout_ns(),
                duration_ns(config.announce_period),
            ),
            remap_due: false,
            fallback: None,
            rate: match config.mode {
                ConsumerMode::Stream => None,
                ConsumerMode::RateLimited { max_rate_hz } => Some(RateLimiter::new(max_rate_hz)),
            },
            progress: config.progress.map(|_| ProgressReader::default()),
            config,
        })
    }

    /// One duty cycle: pumps Aeron, handles control messages and announces, sends due
    /// requests, hellos and QoS. `now_ns` is CLOCK_MONOTONIC. Returns the work done.
    ///
    /// Losing the media driver is handled here: the consumer unmaps, reports
    /// [`ConsumerEvent::MediaDriverLost`] and reconnects on later calls (at most one
    /// liveness check per retry interval). Other Aeron failures are returned, and the
    /// consumer stays usable.
    pub fn do_work(&mut self, now_ns: u64) -> Result<usize, ConsumerError> {
        if self.conn.is_none() {
            return Ok(self.reconnect(now_ns));
        }
        match self.connected_work(now_ns) {
            Ok(work) => Ok(work),
            Err(error) if self.is_connection_lost(&error) => {
                self.lose_connection(now_ns, &error);
                Ok(1)
            }
            Err(error) => Err(error),
        }
    }

    fn connected_work(&mut self, now_ns: u64) -> Result<usize, ConsumerError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0);
        };
        if conn.is_closed() {
            return Err(TransportError::ClientClosed.into());
        }
        let mut work = conn.link.do_work()?;
        let realtime_ns = realtime_now_ns();
        let ids = (self.stream_id, self.session.client_id());
        // Control and announce streams carry the same kinds of messages when they share a
        // stream, so one classifier serves both.
        let mut handler = |bytes: &[u8]| {
            classify(
                bytes,
                now_ns,
                realtime_ns,
                ids,
                &mut self.session,
                &mut self.announces,
                &mut self.inbox,
            )
        };
        work += conn.link.poll_control(&mut handler, CONTROL_POLL_LIMIT)?;
        work += conn.link.poll_announce(&mut handler, CONTROL_POLL_LIMIT)?;
        let mut inbox = std::mem::take(&mut self.inbox);
        for inbound in inbox.drain(..) {
            self.on_inbound(inbound, now_ns)?;
        }
        self.inbox = inbox;
        work += self.poll_metadata()?;
        work += self.poll_session(now_ns)?;
        work += self.check_epoch_wait(now_ns)?;
        work += self.check_liveness(now_ns)?;
        if let Some(conn) = self.conn.as_mut() {
            work += conn.descriptors.do_work()?;
        }
        work += self.send_hello()?;
        work += self.send_qos(now_ns)?;
        Ok(work)
    }

    /// Reads at most one descriptor. A descriptor of this stream is either delivered
    /// (`f` ran on a frame that passed every check before and after it ran) or dropped
    /// and counted; `f`'s result is discarded if the slot was overwritten while it ran.
    /// Allocates nothing. To read many frames per call, see [`Consumer::poll_frames`].
    pub fn poll_frame<R>(
        &mut self,
        f: impl FnOnce(&Frame<'_>) -> R,
    ) -> Result<FramePoll<R>, ConsumerError> {
        let mut f = Some(f);
        let mut outcome = FramePoll::Empty;
        self.poll_frames(
            1,
            |frame| f.take().map(|f| f(frame)),
            |poll| {
                outcome = match poll {
                    FramePoll::Delivered(Some(r)) => FramePoll::Delivered(r),
                    // One message per call: `read` runs at most once.
                    FramePoll::Delivered(None) | FramePoll::Ignored => FramePoll::Ignored,
                    FramePoll::Dropped(reason) => FramePoll::Dropped(reason),
                    FramePoll::RateLimited => FramePoll::RateLimited,
                    FramePoll::Empty => FramePoll::Empty,
                }
            },
        )?;
        Ok(outcome)
    }

    /// Reads up to `limit` messages from the descriptor stream in one pass, as Aeron's
    /// fragment handlers do. For each descriptor of this stream that passes the checks,
    /// `read` runs on its frame; `outcome` then learns what became of every message read,
    /// in order: `Delivered(read's result)` if the seqlock still held after `read`
    /// returned, `Dropped` (and counted) otherwise or when a check failed, `Ignored` for a
    /// message that is not a descriptor of this stream. Returns the number of messages
    /// read; 0 means none was waiting. Allocates nothing.
    ///
    /// Act on what `read` saw only in `outcome`, once it says `Delivered`: the producer may
    /// overwrite a slot while `read` looks at it.
    pub fn poll_frames<R>(
        &mut self,
        limit: usize,
        mut read: impl FnMut(&Frame<'_>) -> R,
        mut outcome: impl FnMut(FramePoll<R>),
    ) -> Result<usize, ConsumerError> {
        let Self {
            config,
            conn,
            mapped,
            awaiting_epoch_until,
            stream_id,
            seqs,
            primed_seq,
            tensors,
            counters,
            remap_due,
            fallback,
            metadata,
            rate,
            shared_descriptors,
            ..
        } = self;
        let meta_in_force = metadata.meta_version();
        let Some(conn) = conn.as_mut() else {
            // Reconnecting (see `do_work`): nothing to read.
            return Ok(0);
        };
        // §5: a producer may thin a rate-limited consumer's own stream; its gaps are that.
        let thinned = rate.is_some() && *conn.descriptors.current() != *shared_descriptors;
        let mut handler = |bytes: &[u8]| {
            let gaps_before = counters.drops_gap;
            let descriptor = match decode_descriptor(bytes) {
                DescriptorMessage::Descriptor(d) if d.stream_id == *stream_id => d,
                DescriptorMessage::Descriptor(_) => {
                    counters.descriptors_other_stream += 1;
                    return outcome(FramePoll::Ignored);
                }
                DescriptorMessage::Other => return outcome(FramePoll::Ignored),
                DescriptorMessage::Malformed => {
                    counters.malformed_descriptors += 1;
                    return outcome(FramePoll::Ignored);
                }
            };
            counters.descriptors_received += 1;
            let result = match mapped {
                _ if fallback.is_some() => Err(DropReason::Fallback),
                None => Err(DropReason::Unmapped),
                Some(_) if awaiting_epoch_until.is_some() => Err(DropReason::AwaitingEpoch),
                Some(mapped) => match rate.as_mut() {
                    None => read_frame(
                        mapped,
                        &descriptor,
                        seqs,
                        tensors,
                        counters,
                        meta_in_force,
                        &mut read,
                    )
                    .map(Some),
                    // §11: gate on the frame's timestamp; a frame counts against the rate
                    // only once it was delivered intact.
                    Some(rate) => read_frame(
                        mapped,
                        &descriptor,
                        seqs,
                        tensors,
                        counters,
                        meta_in_force,
                        |f| {
                            let (clock, t) = gate_timestamp(
                                f.descriptor_timestamp_ns(),
                                f.timestamp_ns(),
                                monotonic_now_ns,
                            );
                            rate.conforms(clock, t).then(|| (read(f), clock, t))
                        },
                    )
                    .map(|taken| {
                        taken.map(|(r, clock, t)| {
                            rate.take(clock, t);
                            r
                        })
                    }),
                },
            };
            if thinned {
                counters.gaps_rate_limited += counters.drops_gap - gaps_before;
                counters.drops_gap = gaps_before;
            }
            outcome(match result {
                Ok(Some(r)) => {
                    counters.frames_delivered += 1;
                    FramePoll::Delivered(r)
                }
                Ok(None) => {
                    counters.frames_rate_limited += 1;
                    FramePoll::RateLimited
                }
                Err(reason) => {
                    *remap_due |= reason == DropReason::SeqRegression;
                    counters.record_drop(reason);
                    FramePoll::Dropped(reason)
                }
            })
        };
        match conn.descriptors.poll(&mut handler, limit) {
            Ok(0) => {
                if let Some(mapped) = mapped.as_ref() {
                    if config.watch_next_slot && awaiting_epoch_until.is_none() {
                        watch_next_slot(mapped, seqs, primed_seq);
                    }
                }
                Ok(0)
            }
            Ok(messages) => Ok(messages),
            // The media driver went away; the next `do_work` reconnects.
            Err(_) if conn.is_closed() => Ok(0),
            Err(error) => Err(error.into()),
        }
    }

    /// Hands the application the filled prefix of the oldest frame being written that
    /// has news (Wire Spec §10.2.2; see [`FramePrefix`]), when the consumer opted in with
    /// [`ConsumerConfig::progress`]. `f`'s result counts only if the slot still held the
    /// frame after it ran. The frame itself still comes through
    /// [`Consumer::poll_frame`]. Allocates nothing.
    pub fn poll_progress<R>(&mut self, f: impl FnOnce(&FramePrefix<'_>) -> R) -> ProgressPoll<R> {
        match (self.progress.as_mut(), self.awaiting_epoch_until) {
            (Some(progress), None) => progress.poll(self.mapped.as_ref(), f),
            _ => ProgressPoll::Empty,
        }
    }

    /// Switches latency mode ([`ConsumerConfig::watch_next_slot`]) on or off from the next
    /// poll on.
    pub fn set_watch_next_slot(&mut self, on: bool) {
        self.config.watch_next_slot = on;
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<ConsumerEvent> {
        self.events.pop()
    }

    /// Drains the queued events.
    pub fn events(&mut self) -> impl Iterator<Item = ConsumerEvent> + '_ {
        std::iter::from_fn(|| self.events.pop())
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> ConsumerCounters {
        let session_errors: u64 = self.session.protocol_errors().iter().sum();
        ConsumerCounters {
            protocol_errors: self.retired_protocol_errors + session_errors,
            events_dropped: self.events.dropped(),
            progress: self
                .progress
                .as_ref()
                .map(ProgressReader::counters)
                .unwrap_or_default(),
            ..self.counters
        }
    }

    /// The settings the consumer runs with.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// The consumer id (the session's client id; it changes if an auto-assigned id
    /// collided).
    pub fn consumer_id(&self) -> u32 {
        self.session.client_id()
    }

    /// The stream consumed (the granted id once attached to a dynamic stream).
    pub fn stream_id(&self) -> u32 {
        self.stream_id
    }

    /// The pause between keepalives of the live lease (a third of the granted lease,
    /// capped by the configured bound), if attached.
    pub fn keepalive_period(&self) -> Option<Duration> {
        self.session.keepalive_period()
    }

    /// The live lease id, if attached.
    pub fn lease_id(&self) -> Option<u64> {
        self.session.grant().map(|g| g.lease_id)
    }

    /// The mapped epoch, if any.
    pub fn mapped_epoch(&self) -> Option<u64> {
        self.mapped.as_ref().map(MappedEpoch::epoch)
    }

    /// Whether frames are being accepted (mapped, and not waiting for a new epoch).
    pub fn is_ready(&self) -> bool {
        self.mapped.is_some() && self.awaiting_epoch_until.is_none()
    }

    /// Whether the producer was revoked and the consumer waits for a higher epoch.
    pub fn is_awaiting_epoch(&self) -> bool {
        self.awaiting_epoch_until.is_some()
    }

    /// Client id of the producer in the highest announced epoch (0 = none attached).
    pub fn producer_id(&self) -> Option<u32> {
        self.announces.latest().map(|l| l.producer_id)
    }

    /// The stream descriptors are read from (the shared one while reconnecting).
    pub fn descriptor_stream(&self) -> &DescriptorStream {
        self.conn
            .as_ref()
            .map_or(&self.shared_descriptors, |c| c.descriptors.current())
    }

    /// Whether the Aeron client is connected to a media driver (`false` while the
    /// consumer reconnects after losing it).
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Where the consumer stands in the Wire Spec §15.12 state machine.
    pub fn state(&self) -> ConsumerState {
        match (&self.fallback, &self.mapped) {
            (Some(_), _) => ConsumerState::Fallback,
            (None, Some(_)) => ConsumerState::Mapped,
            (None, None) => ConsumerState::Unmapped,
        }
    }

    /// The `payload_fallback_uri` of the `ConsumerConfig` that put the consumer in
    /// FALLBACK, while it is there.
    pub fn fallback(&self) -> Option<&FallbackUri> {
        self.fallback.as_ref()
    }

    /// The highest sequence seen in the mapped epoch.
    pub fn last_seq_seen(&self) -> Option<u64> {
        self.seqs.last_seq()
    }

    fn on_inbound(&mut self, inbound: Inbound, now_ns: u64) -> Result<(), ConsumerError> {
        match inbound {
            Inbound::Session(event) => self.on_session_event(event, now_ns)?,
            Inbound::Announce(outcome) => self.on_announce(outcome, now_ns)?,
            Inbound::Progress(message) => {
                if let Some(progress) = self.progress.as_mut() {
                    progress.on_message(&message, self.mapped.as_ref(), self.seqs.last_seq());
                }
            }
            Inbound::Assignment(stream) => {
                self.counters.consumer_configs += 1;
                tracing::debug!(?stream, "descriptor stream assignment");
                if let Some(conn) = self.conn.as_mut() {
                    conn.descriptors.switch_to(conn.link.client(), stream)?;
                }
            }
            Inbound::Shm(directive) => self.on_shm_directive(directive, now_ns)?,
        }
        Ok(())
    }

    /// §15.12: `use_shm = FALSE` enters FALLBACK (unmapped, nothing read from SHM);
    /// `use_shm = TRUE` leaves it and attaches afresh.
    fn on_shm_directive(
        &mut self,
        directive: ShmDirective,
        now_ns: u64,
    ) -> Result<(), ConsumerError> {
        match directive {
            ShmDirective::Fallback(fallback) => {
                if self.fallback.as_ref() == Some(&fallback) {
                    return Ok(());
                }
                tracing::warn!(stream_id = self.stream_id, uri = %fallback.uri, supported = fallback.supported_scheme, "told not to use SHM: FALLBACK");
                self.counters.fallbacks += 1;
                self.unmap(UnmapReason::Fallback);
                self.fallback = Some(fallback.clone());
                self.events.push(ConsumerEvent::Fallback { fallback });
            }
            ShmDirective::UseShm => {
                if self.fallback.take().is_some() {
                    tracing::info!(
                        stream_id = self.stream_id,
                        "told to use SHM again; reattaching"
                    );
                    self.events.push(ConsumerEvent::ShmResumed);
                    self.restart_session(now_ns)?;
                }
            }
        }
        Ok(())
    }

    /// §15.14 and §15.2: unmaps and reattaches when the regions' activity timestamp went
    /// stale or the writer's sequence went back.
    fn check_liveness(&mut self, now_ns: u64) -> Result<usize, ConsumerError> {
        let Some(mapped) = self.mapped.as_ref() else {
            return Ok(0);
        };
        let reason = if std::mem::take(&mut self.remap_due) {
            tracing::warn!(
                stream_id = self.stream_id,
                epoch = mapped.epoch(),
                "sequence went back within the epoch; remapping"
            );
            UnmapReason::SeqRegression
        } else if let Some(age_ns) = self.activity.stale_age(mapped, now_ns) {
            tracing::warn!(
                stream_id = self.stream_id,
                epoch = mapped.epoch(),
                age_ms = age_ns / 1_000_000,
                "header ring activity timestamp is stale; remapping"
            );
            self.counters.activity_stale += 1;
            UnmapReason::ActivityStale
        } else {
            return Ok(0);
        };
        self.unmap(reason);
        self.restart_session(now_ns)?;
        Ok(1)
    }

    fn poll_session(&mut self, now_ns: u64) -> Result<usize, ConsumerError> {
        if now_ns < self.session_resume_ns {
            return Ok(0);
        }
        let (request, event) = self.session.poll(now_ns);
        let mut work = 0;
        if let Some(event) = event {
            work += 1;
            self.on_session_event(event, now_ns)?;
        }
        if let Some(request) = request {
            work += 1;
            if !self.send(&request)? {
                // A lost keepalive ends the lease (§4.4); a lost attach is retried.
                if let Some(event) = self.session.send_failed(now_ns) {
                    self.on_session_event(event, now_ns)?;
                }
            }
        }
        Ok(work)
    }

    fn on_session_event(&mut self, event: SessionEvent, now_ns: u64) -> Result<(), ConsumerError> {
        match event {
            SessionEvent::Attached(grant) => self.on_attached(grant, now_ns)?,
            SessionEvent::AttachRefused { code, message } => {
                tracing::debug!(%code, %message, stream_id = self.stream_id, "attach refused; retrying");
                self.events
                    .push(ConsumerEvent::AttachRefused { code, message });
            }
            SessionEvent::AttachTimedOut { waited, unanswered } => {
                tracing::info!(
                    stream_id = self.stream_id,
                    ?waited,
                    unanswered,
                    "no attach response yet (the driver may be busy); asking again and \
                     waiting longer, a late grant is still taken"
                );
            }
            SessionEvent::ProtocolError(e) => {
                tracing::warn!(error = %e, "attach response refused; reattaching");
                self.unmap(UnmapReason::LeaseLost);
                self.lease_ended()?;
            }
            SessionEvent::Revoked(reason) => {
                tracing::info!(%reason, stream_id = self.stream_id, "consumer lease revoked");
                self.events.push(ConsumerEvent::Revoked(reason));
                self.unmap(UnmapReason::LeaseRevoked);
                self.lease_ended()?;
            }
            SessionEvent::LeaseLost => {
                tracing::warn!(stream_id = self.stream_id, "consumer lease lost");
                self.unmap(UnmapReason::LeaseLost);
                self.lease_ended()?;
            }
            SessionEvent::DriverShutdown(reason) => {
                tracing::info!(%reason, "driver shutting down");
                self.events.push(ConsumerEvent::DriverShutdown(reason));
                self.unmap(UnmapReason::DriverShutdown);
                self.lease_ended()?;
            }
            SessionEvent::OtherLeaseRevoked {
                stream_id,
                role: Role::Producer,
                reason,
                ..
            } if stream_id == self.stream_id => self.on_producer_revoked(reason, now_ns),
            SessionEvent::OtherLeaseRevoked { .. } | SessionEvent::Closed => {}
        }
        Ok(())
    }

    fn on_attached(&mut self, grant: LeaseGrant, now_ns: u64) -> Result<(), ConsumerError> {
        self.counters.attaches += 1;
        self.stream_id = grant.stream_id;
        self.announces.set_stream(grant.stream_id);
        if self.fallback.is_some() {
            // FALLBACK: hold the lease (the driver and QoS still see this consumer), map
            // nothing.
            self.hello_due = true;
            return Ok(());
        }
        // A fresh announce of a higher epoch may have overtaken the response (announces
        // and responses travel on different streams): map the newer epoch then.
        let grant = match self.announces.latest() {
            Some(layout) if layout.epoch > grant.epoch => {
                layout.to_grant(grant.lease_id, grant.node_id)
            }
            _ => grant,
        };
        self.announces.note_epoch(grant.epoch);
        tracing::info!(
            lease_id = grant.lease_id,
            stream_id = grant.stream_id,
            epoch = grant.epoch,
            consumer_id = self.session.client_id(),
            "consumer attached"
        );
        if self.map(&grant) {
            self.events
                .push(ConsumerEvent::Attached { epoch: grant.epoch });
            self.hello_due = true;
        } else {
            self.events.push(ConsumerEvent::Unmapped {
                reason: UnmapReason::MapFailed,
            });
            self.restart_session(now_ns)?;
        }
        Ok(())
    }

    fn on_announce(&mut self, outcome: AnnounceOutcome, now_ns: u64) -> Result<(), ConsumerError> {
        let epoch = match outcome {
            AnnounceOutcome::OtherStream => return Ok(()),
            AnnounceOutcome::Stale => {
                self.counters.announces_ignored_stale += 1;
                return Ok(());
            }
            AnnounceOutcome::BeforeJoin => {
                self.counters.announces_ignored_before_join += 1;
                return Ok(());
            }
            AnnounceOutcome::LowerEpoch => {
                self.counters.announces_ignored_lower_epoch += 1;
                return Ok(());
            }
            AnnounceOutcome::Invalid(e) => {
                self.counters.announces_invalid += 1;
                tracing::warn!(error = %e, stream_id = self.stream_id, "invalid announce ignored");
                return Ok(());
            }
            AnnounceOutcome::Accepted { epoch, .. } => {
                self.counters.announces_accepted += 1;
                epoch
            }
        };
        let Some(mapped_epoch) = self.mapped_epoch() else {
            return Ok(());
        };
        let (Some(lease), Some(layout)) = (self.session.grant(), self.announces.latest()) else {
            return Ok(());
        };
        if epoch <= mapped_epoch || layout.epoch != epoch {
            return Ok(());
        }
        // §15.21: a higher epoch is a hard boundary. Nothing is buffered, so dropping the
        // mapping and the sequence state drops every in-flight frame.
        let grant = layout.to_grant(lease.lease_id, lease.node_id);
        self.counters.epoch_changes += 1;
        tracing::info!(
            stream_id = self.stream_id,
            from = mapped_epoch,
            to = epoch,
            "epoch changed; remapping"
        );
        self.mapped = None;
        if self.map(&grant) {
            self.counters.remaps += 1;
            // A new epoch may mean a new producer: tell it what this consumer wants.
            self.hello_due |= self.config.progress.is_some() || self.rate.is_some();
            self.events.push(ConsumerEvent::EpochChanged { epoch });
        } else {
            self.events.push(ConsumerEvent::Unmapped {
                reason: UnmapReason::MapFailed,
            });
            self.restart_session(now_ns)?;
        }
        Ok(())
    }

    /// Driver Model §4.9: the producer's lease ended; keep the mapping but accept nothing
    /// until an announce with a higher epoch arrives (or 3× the announce period passes).
    /// The application hears of every revoke of the stream's producer (it may be how it
    /// learns that its producer finished), whether or not the consumer has to wait.
    fn on_producer_revoked(&mut self, reason: LeaseRevokeReason, now_ns: u64) {
        let Some(mapped_epoch) = self.mapped_epoch() else {
            return;
        };
        if self.awaiting_epoch_until.is_some() {
            return;
        }
        self.events.push(ConsumerEvent::ProducerRevoked { reason });
        // The epoch-bumped announce (which names no producer) may have overtaken the
        // revoke on its own stream: then the consumer already sits on the new epoch.
        if self
            .announces
            .latest()
            .is_some_and(|l| l.epoch == mapped_epoch && l.producer_id == 0)
        {
            return;
        }
        tracing::info!(
            stream_id = self.stream_id,
            epoch = mapped_epoch,
            %reason,
            "producer revoked; awaiting a new epoch"
        );
        self.awaiting_epoch_until = Some(now_ns.saturating_add(self.config.three_periods_ns()));
    }

    fn check_epoch_wait(&mut self, now_ns: u64) -> Result<usize, ConsumerError> {
        match self.awaiting_epoch_until {
            Some(deadline) if now_ns >= deadline => {
                tracing::warn!(
                    stream_id = self.stream_id,
                    "no new epoch announced after the producer revoke; reattaching"
                );
                self.unmap(UnmapReason::EpochWaitTimedOut);
                self.restart_session(now_ns)?;
                Ok(1)
            }
            _ => Ok(0),
        }
    }

    /// Maps `grant` read-only; on failure counts it and leaves nothing mapped.
    fn map(&mut self, grant: &LeaseGrant) -> bool {
        self.mapped = None;
        self.awaiting_epoch_until = None;
        self.seqs.reset();
        if let Some(progress) = self.progress.as_mut() {
            progress.reset();
        }
        if let Some(rate) = self.rate.as_mut() {
            rate.reset();
        }
        if self.allowed.is_none() {
            // Built on first use: the base directory appears when the driver starts.
            match AllowedBaseDirs::new(&self.config.allowed_base_dirs) {
                Ok(allowed) => self.allowed = Some(allowed),
                Err(e) => {
                    self.counters.map_failures += 1;
                    tracing::warn!(error = %e, "allowed base directories unusable");
                    return false;
                }
            }
        }
        let Some(allowed) = &self.allowed else {
            return false;
        };
        match MappedEpoch::map(grant, allowed, Access::ReadOnly) {
            Ok(mapped) => {
                self.mapped = Some(mapped);
                self.activity.restart();
                true
            }
            Err(e) => {
                self.counters.map_failures += 1;
                tracing::warn!(error = %e, epoch = grant.epoch, stream_id = grant.stream_id, "mapping refused");
                false
            }
        }
    }

    fn unmap(&mut self, reason: UnmapReason) {
        self.awaiting_epoch_until = None;
        self.seqs.reset();
        if self.mapped.take().is_some() {
            self.events.push(ConsumerEvent::Unmapped { reason });
        }
    }

    /// The lease is gone: per-consumer streams end with it (§10.1.3), so return to the
    /// shared descriptor stream until the next `ConsumerConfig`.
    fn lease_ended(&mut self) -> Result<(), ConsumerError> {
        self.hello_due = false;
        if let Some(conn) = self.conn.as_mut() {
            conn.descriptors.switch_to(conn.link.client(), None)?;
        }
        Ok(())
    }

    /// Publishes a control request; `Ok(false)` when it could not go out (including
    /// while reconnecting).
    fn send(&mut self, request: &Request) -> Result<bool, LinkError> {
        match self.conn.as_mut() {
            Some(conn) => conn.link.send(request),
            None => Ok(false),
        }
    }

    /// Whether `error` means the Aeron client is gone (its media driver stopped
    /// answering), so the connection must be rebuilt.
    fn is_connection_lost(&self, error: &ConsumerError) -> bool {
        let closed_error = matches!(
            error,
            ConsumerError::Transport(TransportError::ClientClosed)
                | ConsumerError::Link(LinkError::Transport(TransportError::ClientClosed))
        );
        closed_error || self.conn.as_ref().is_some_and(Connection::is_closed)
    }

    /// The media driver is gone: drop the Aeron side, the mapping and the lease (it
    /// cannot be kept alive, and a restarted driver does not know it), and reconnect
    /// from the next duty cycle.
    fn lose_connection(&mut self, now_ns: u64, error: &ConsumerError) {
        tracing::warn!(%error, stream_id = self.stream_id, "consumer lost the media driver; reconnecting");
        self.inbox.clear();
        self.conn = None;
        self.events.push(ConsumerEvent::MediaDriverLost);
        self.unmap(UnmapReason::LeaseLost);
        self.hello_due = false;
        self.retired_protocol_errors += self.session.protocol_errors().iter().sum::<u64>();
        self.session = DriverSession::new(session_config(&self.config));
        self.session_resume_ns = now_ns;
        self.next_reconnect_ns = now_ns;
        self.reconnect_backoff = RECONNECT_BACKOFF_INITIAL;
    }

    /// One attempt to rebuild the Aeron connection, when due; returns the work done.
    fn reconnect(&mut self, now_ns: u64) -> usize {
        if now_ns < self.next_reconnect_ns {
            return 0;
        }
        // One liveness check per attempt: the duty cycle must not wait for a driver.
        let streams = ClientStreams {
            connect_timeout: Duration::ZERO,
            ..self.config.streams.clone()
        };
        match Connection::open(&self.config, &streams) {
            Ok(conn) => {
                tracing::info!(
                    stream_id = self.stream_id,
                    "consumer reconnected to the media driver"
                );
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

    /// Detaches (best effort) and starts a fresh session after one announce period
    /// (Driver Model §4.12.3 `Backoff`).
    fn restart_session(&mut self, now_ns: u64) -> Result<(), ConsumerError> {
        self.lease_ended()?;
        if let Some(detach) = self.session.close(now_ns) {
            self.send(&detach)?;
        }
        self.retired_protocol_errors += self.session.protocol_errors().iter().sum::<u64>();
        self.session = DriverSession::new(session_config(&self.config));
        self.session_resume_ns = now_ns.saturating_add(duration_ns(self.config.announce_period));
        Ok(())
    }

    fn send_hello(&mut self) -> Result<usize, ConsumerError> {
        if !self.hello_due {
            return Ok(0);
        }
        let Some(grant) = self.session.grant() else {
            self.hello_due = false;
            return Ok(0);
        };
        let (channel, descriptor_stream_id) = self
            .config
            .request_per_consumer_descriptor
            .as_ref()
            .map_or((&[][..], 0), |(c, id)| (c.as_bytes(), *id));
        let hints = self.config.progress.unwrap_or_default();
        let hello = ConsumerHello {
            stream_id: grant.stream_id,
            consumer_id: self.session.client_id(),
            supports_shm: Bool::True,
            supports_progress: if self.config.progress.is_some() {
                Bool::True
            } else {
                Bool::False
            },
            mode: wire_mode(&self.config.mode),
            max_rate_hz: self.config.mode.max_rate_hz(),
            expected_layout_version: grant.layout_version,
            progress_interval_us: hints.interval_us,
            progress_bytes_delta: hints.bytes_delta,
            progress_major_delta_units: hints.major_delta_units,
            descriptor_stream_id,
            control_stream_id: 0,
            descriptor_channel: channel,
            control_channel: &[],
        };
        let len = hello.encode(&mut self.send_buf)?;
        let Some(conn) = self.conn.as_ref() else {
            return Ok(0);
        };
        if conn.hello_pub.offer(&self.send_buf[..len])?.is_published() {
            self.hello_due = false;
            self.counters.hellos_sent += 1;
            return Ok(1);
        }
        Ok(0)
    }

    fn send_qos(&mut self, now_ns: u64) -> Result<usize, ConsumerError> {
        if now_ns < self.next_qos_ns {
            return Ok(0);
        }
        self.next_qos_ns = now_ns.saturating_add(duration_ns(self.config.qos_interval));
        let Some(grant) = self.session.grant() else {
            return Ok(0);
        };
        let qos = QosConsumer {
            stream_id: grant.stream_id,
            consumer_id: self.session.client_id(),
            epoch: self.mapped_epoch().unwrap_or(grant.epoch),
            last_seq_seen: self.seqs.last_seq().unwrap_or(0),
            drops_gap: self.counters.qos_drops_gap(),
            drops_late: self.counters.qos_drops_late(),
            mode: wire_mode(&self.config.mode),
        };
        let len = qos.encode(&mut self.send_buf)?;
        let Some(conn) = self.conn.as_ref() else {
            return Ok(0);
        };
        match conn.qos_pub.offer(&self.send_buf[..len])? {
            OfferOutcome::Published { .. } => self.counters.qos_sent += 1,
            // Nobody listens to QoS: nothing lost.
            OfferOutcome::NotConnected => {}
            OfferOutcome::BackPressured | OfferOutcome::AdminAction => {
                self.counters.qos_send_failures += 1
            }
        }
        Ok(1)
    }
}

impl Drop for Consumer {
    /// Best-effort detach (Driver Model §4.9); the lease would otherwise expire.
    fn drop(&mut self) {
        self.mapped = None;
        if let Some(detach) = self.session.close(monotonic_now_ns()) {
            if let Some(conn) = self.conn.as_mut() {
                if let Err(e) = conn.link.send(&detach) {
                    tracing::debug!(error = %e, "detach not sent");
                }
                let _ = conn.link.do_work();
            }
        }
    }
}

/// The wire value of a consumer mode.
fn wire_mode(mode: &ConsumerMode) -> Mode {
    match mode {
        ConsumerMode::Stream => Mode::Stream,
        ConsumerMode::RateLimited { .. } => Mode::RateLimited,
    }
}

/// Session settings for a consumer.
fn session_config(config: &ConsumerConfig) -> SessionConfig {
    SessionConfig {
        client_id: config.consumer_id,
        keepalive_interval: config.keepalive_interval,
        attach_timeout: config.attach_timeout,
        ..SessionConfig::new(config.stream_id, Role::Consumer)
    }
}

/// Wall-clock nanoseconds (for REALTIME_SYNCED announces only).
/// Decodes one control-stream or announce-stream message into what the consumer acts
/// on: driver notices and responses (through the session), announces of its stream, and
/// `ConsumerConfig` for its consumer id.
fn classify(
    bytes: &[u8],
    now_ns: u64,
    realtime_ns: u64,
    (stream_id, consumer_id): (u32, u32),
    session: &mut DriverSession,
    announces: &mut AnnounceTracker,
    inbox: &mut Vec<Inbound>,
) {
    let Ok(header) = MessageHeader::read(bytes) else {
        return;
    };
    if header.schema_id == driver::SCHEMA_ID {
        if let Some(event) = session.on_message(bytes, now_ns) {
            inbox.push(Inbound::Session(event));
        }
        return;
    }
    if header.schema_id != control::SCHEMA_ID {
        return;
    }
    match header.template_id {
        shm_pool_announce::TEMPLATE_ID => {
            let outcome = match ShmPoolAnnounceDecoder::wrap(bytes) {
                Ok(announce) => announces.on_announce(&announce, now_ns, realtime_ns),
                // Judge a malformed announce only if it claims to be for our stream.
                Err(e) if get_u32(bytes, MESSAGE_HEADER_LEN) == stream_id => {
                    AnnounceOutcome::Invalid(ProtocolError::Malformed(e))
                }
                Err(_) => AnnounceOutcome::OtherStream,
            };
            if outcome != AnnounceOutcome::OtherStream {
                inbox.push(Inbound::Announce(outcome));
            }
        }
        frame_progress::TEMPLATE_ID => {
            if let Ok(progress) = FrameProgressDecoder::wrap(bytes) {
                if progress.stream_id() == stream_id {
                    inbox.push(Inbound::Progress(progress.to_value()));
                }
            }
        }
        consumer_config::TEMPLATE_ID => {
            let Ok(config) = ConsumerConfigDecoder::wrap(bytes) else {
                return;
            };
            if config.stream_id() == stream_id && config.consumer_id() == consumer_id {
                inbox.push(Inbound::Assignment(assigned_descriptor_stream(&config)));
                inbox.push(Inbound::Shm(ShmDirective::of(&config)));
            }
        }
        _ => {}
    }
}

/// The per-consumer descriptor stream a `ConsumerConfig` assigns, if any: a channel and
/// a non-zero id together, anything else is a decline (§10.1.3).
fn assigned_descriptor_stream(config: &ConsumerConfigDecoder<'_>) -> Option<DescriptorStream> {
    let channel = std::str::from_utf8(config.descriptor_channel()).ok()?;
    let stream_id = config.descriptor_stream_id();
    (!channel.trim().is_empty() && stream_id != 0).then(|| DescriptorStream {
        channel: channel.to_string(),
        stream_id,
    })
}
