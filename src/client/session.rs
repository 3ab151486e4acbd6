//! The driver-client state machine (Driver Model §4.12.1, Appendix B; keepalive pacing
//! §4.4): attach with a
//! timeout and exponential backoff with jitter, keepalives, revocation, driver shutdown,
//! detach. Sans-IO: it is fed control-stream messages and a monotonic clock, and asks its
//! host to send requests.

use super::grant::{validate_grant, LeaseGrant, ProtocolError};
use super::random::Random;
use crate::protocol::codec::MessageHeader;
use crate::protocol::driver::{
    self, shm_attach_response, shm_detach_response, shm_driver_shutdown, shm_lease_revoked,
    HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmAttachResponseDecoder, ShmDetachRequest, ShmDetachResponseDecoder, ShmDriverShutdownDecoder,
    ShmLeaseKeepalive, ShmLeaseRevokedDecoder, ShutdownReason,
};
use std::collections::VecDeque;
use std::time::Duration;

pub use crate::protocol::CLIENT_ID_ALREADY_ATTACHED;

/// How a session attaches and keeps its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Stream to attach to (for dynamic streams, the preferred id; 0 = any).
    pub stream_id: u32,
    /// Client id; 0 = pick a random non-zero id, and a new one on collision.
    pub client_id: u32,
    /// Producer or consumer.
    pub role: Role,
    /// `None` = REQUIRE_EXISTING.
    pub publish_mode: Option<PublishMode>,
    /// Hugepage requirement.
    pub require_hugepages: HugepagesPolicy,
    /// Expected layout version (0 = any).
    pub expected_layout_version: u32,
    /// Node id to request, if any.
    pub desired_node_id: Option<u32>,
    /// How long to wait for an attach response before asking again. Each attempt that
    /// times out doubles the wait for the next (up to [`MAX_ATTACH_WAIT`]), so the wait
    /// follows a driver that is slow to answer; a grant that arrives after its attempt
    /// timed out is still taken (or, if no longer wanted, detached at once).
    pub attach_timeout: Duration,
    /// Longest pause between keepalives. `None` lets the granted lease deadline alone set
    /// the pace (see [`keepalive_period_ns`]); a bound only ever makes keepalives more
    /// frequent than the deadline requires, never less.
    pub keepalive_interval: Option<Duration>,
    /// First retry delay.
    pub backoff_initial: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
}

impl SessionConfig {
    /// Defaults: keepalives paced by the granted lease deadline, 1 s attach timeout,
    /// backoff from 50 ms to 2 s.
    pub fn new(stream_id: u32, role: Role) -> Self {
        Self {
            stream_id,
            client_id: 0,
            role,
            publish_mode: None,
            require_hugepages: HugepagesPolicy::Unspecified,
            expected_layout_version: 0,
            desired_node_id: None,
            attach_timeout: Duration::from_secs(1),
            keepalive_interval: None,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

/// Longest wait for an attach response that [`SessionConfig::attach_timeout`] grows to.
pub const MAX_ATTACH_WAIT: Duration = Duration::from_secs(8);
/// Attach requests remembered after they timed out, so that a late grant for one of them
/// is recognised as this session's own lease (Driver Model §4.8: the driver refuses a
/// second lease for the client id, so a forgotten grant would block every retry until it
/// expired).
pub const MAX_OUTSTANDING_ATTACHES: usize = 16;

/// Keepalives per lease duration: the next keepalive is due after a third of the lease
/// the driver granted, so two may be lost or late before the lease expires.
pub const KEEPALIVES_PER_LEASE: u64 = 3;
/// Keepalive interval when the driver grants no deadline (Driver Model §4.4 baseline).
pub const UNBOUNDED_LEASE_KEEPALIVE: Duration = Duration::from_secs(1);
/// Shortest keepalive period, whatever the grant says (a bound on control traffic).
pub const MIN_KEEPALIVE_PERIOD: Duration = Duration::from_millis(1);

/// The pause between keepalives for a lease granted at `now_ns` (Driver Model §4.4: "the
/// client MUST ensure keepalives arrive before that timestamp").
///
/// With a deadline, the lease's remaining time divided by [`KEEPALIVES_PER_LEASE`], capped
/// by `bound`; the driver extends each lease by the same duration on every keepalive, so
/// the period stays right for the lease's whole life. Without one, `bound` or the §4.4
/// baseline of 1 s. Never below [`MIN_KEEPALIVE_PERIOD`].
pub fn keepalive_period_ns(
    lease_expiry_ns: Option<u64>,
    now_ns: u64,
    bound: Option<Duration>,
) -> u64 {
    let bound_ns = bound.map(duration_ns);
    let period = match lease_expiry_ns {
        Some(expiry) => {
            let derived = expiry.saturating_sub(now_ns) / KEEPALIVES_PER_LEASE;
            bound_ns.map_or(derived, |b| b.min(derived))
        }
        None => bound_ns.unwrap_or(duration_ns(UNBOUNDED_LEASE_KEEPALIVE)),
    };
    period.max(duration_ns(MIN_KEEPALIVE_PERIOD))
}

/// A request the host must publish on the control stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `ShmAttachRequest`.
    Attach(ShmAttachRequest),
    /// `ShmLeaseKeepalive`.
    Keepalive(ShmLeaseKeepalive),
    /// `ShmDetachRequest`.
    Detach(ShmDetachRequest),
}

/// What happened to the session, for the owner to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A lease was granted (first time or after a reattach).
    Attached(LeaseGrant),
    /// The driver refused the attach; the session retries after backoff.
    AttachRefused {
        /// Response code.
        code: ResponseCode,
        /// Driver's diagnostic.
        message: String,
    },
    /// No response within the attach timeout; the session retries after backoff, and
    /// still takes a late grant for this attempt.
    AttachTimedOut {
        /// How long this attempt waited.
        waited: Duration,
        /// Attempts sent and not answered so far, this one included.
        unanswered: usize,
    },

    /// An OK response failed validation; nothing may be mapped; retry after backoff.
    ProtocolError(ProtocolError),
    /// The driver revoked this lease; stop using its regions, retry after backoff.
    Revoked(LeaseRevokeReason),
    /// The lease was given up locally (keepalive could not be sent, or the hard expiry
    /// passed); stop using its regions, retry after backoff.
    LeaseLost,
    /// The driver announced shutdown; stop using regions, reattach when it is back.
    DriverShutdown(ShutdownReason),
    /// Another lease was revoked (e.g. the producer of the stream this consumer reads).
    OtherLeaseRevoked {
        /// Lease id.
        lease_id: u64,
        /// Stream.
        stream_id: u32,
        /// Role.
        role: Role,
        /// Reason.
        reason: LeaseRevokeReason,
    },
    /// The detach completed (or timed out); the session is closed.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Unattached {
        next_attempt_ns: u64,
    },
    Attaching {
        correlation_id: i64,
        sent_ns: u64,
        deadline_ns: u64,
    },
    Attached {
        grant: LeaseGrant,
        next_keepalive_ns: u64,
        /// Pause between keepalives, fixed at the grant.
        keepalive_period_ns: u64,
        /// How long the driver's lease lasts from a grant or keepalive (`None` when the
        /// grant carried no deadline).
        lease_ns: Option<u64>,
        /// The latest moment the lease surely lasts to: the granted deadline, then the
        /// send time of the last keepalive plus the lease duration (the driver received
        /// it later and extends from then). Passing it without a keepalive loses the lease.
        hard_expiry_ns: Option<u64>,
    },
    Detaching {
        correlation_id: i64,
        deadline_ns: u64,
    },
    Closed,
}

/// One lease's life, from attach to detach.
#[derive(Debug)]
pub struct DriverSession {
    config: SessionConfig,
    client_id: u32,
    auto_client_id: bool,
    random: Random,
    next_correlation_id: i64,
    state: State,
    backoff_ns: u64,
    protocol_errors: [u64; ProtocolError::KINDS],
    ignored_notices: u64,
    /// Attach requests sent and not yet answered, oldest first.
    unanswered: VecDeque<SentAttach>,
    /// Wait for the next attach response; grows while attempts time out.
    attach_wait_ns: u64,
    /// Detaches of late grants nobody wants, to send before anything else.
    releases: VecDeque<ShmDetachRequest>,
    late_grants: LateGrants,
}

/// Grants that arrived after their attach attempt had timed out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LateGrants {
    /// Taken as the session's lease (none was held).
    pub adopted: u64,
    /// Detached at once (another lease was held, or the session was closing).
    pub released: u64,
}

/// An attach request this session sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SentAttach {
    correlation_id: i64,
    /// The client id it carried (an auto-assigned id may change between attempts).
    client_id: u32,
}

impl DriverSession {
    /// A new session; it attaches on the first [`DriverSession::poll`].
    pub fn new(config: SessionConfig) -> Self {
        let mut random = Random::from_os();
        let auto_client_id = config.client_id == 0;
        let client_id = if auto_client_id {
            random.nonzero_u32()
        } else {
            config.client_id
        };
        // Correlation ids start at a random positive value per process (Appendix B.1).
        let next_correlation_id = (random.next_u64() >> 2) as i64 + 1;
        let backoff_ns = duration_ns(config.backoff_initial);
        Self {
            client_id,
            auto_client_id,
            random,
            next_correlation_id,
            state: State::Unattached { next_attempt_ns: 0 },
            backoff_ns,
            protocol_errors: [0; ProtocolError::KINDS],
            ignored_notices: 0,
            unanswered: VecDeque::new(),
            attach_wait_ns: 0,
            releases: VecDeque::new(),
            late_grants: LateGrants::default(),
            config,
        }
    }

    /// The client id in use.
    pub fn client_id(&self) -> u32 {
        self.client_id
    }

    /// The live grant, if attached.
    pub fn grant(&self) -> Option<&LeaseGrant> {
        match &self.state {
            State::Attached { grant, .. } => Some(grant),
            _ => None,
        }
    }

    /// The pause between keepalives of the live lease, if attached.
    pub fn keepalive_period(&self) -> Option<Duration> {
        match &self.state {
            State::Attached {
                keepalive_period_ns,
                ..
            } => Some(Duration::from_nanos(*keepalive_period_ns)),
            _ => None,
        }
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Protocol errors seen, per [`ProtocolError::kind_index`].
    pub fn protocol_errors(&self) -> &[u64; ProtocolError::KINDS] {
        &self.protocol_errors
    }

    /// Grants that arrived after their attempt timed out, and what became of them.
    pub fn late_grants(&self) -> LateGrants {
        self.late_grants
    }

    /// Notices refused for unknown enum values or newer versions.
    pub fn ignored_notices(&self) -> u64 {
        self.ignored_notices
    }

    /// The request due now, if any (attach, keepalive, detach retry), plus any event a
    /// timer caused (attach timeout, hard lease expiry, detach timeout).
    pub fn poll(&mut self, now_ns: u64) -> (Option<Request>, Option<SessionEvent>) {
        if let Some(release) = self.releases.pop_front() {
            let correlation_id = self.take_correlation_id();
            let request = ShmDetachRequest {
                correlation_id,
                ..release
            };
            return (Some(Request::Detach(request)), None);
        }
        match &mut self.state {
            State::Unattached { next_attempt_ns } if now_ns >= *next_attempt_ns => {
                let correlation_id = self.take_correlation_id();
                if self.attach_wait_ns == 0 {
                    self.attach_wait_ns = duration_ns(self.config.attach_timeout);
                }
                self.state = State::Attaching {
                    correlation_id,
                    sent_ns: now_ns,
                    deadline_ns: now_ns.saturating_add(self.attach_wait_ns),
                };
                if self.unanswered.len() == MAX_OUTSTANDING_ATTACHES {
                    self.unanswered.pop_front();
                }
                self.unanswered.push_back(SentAttach {
                    correlation_id,
                    client_id: self.client_id,
                });
                (
                    Some(Request::Attach(self.attach_request(correlation_id))),
                    None,
                )
            }
            State::Attaching {
                deadline_ns,
                sent_ns,
                ..
            } if now_ns >= *deadline_ns => {
                let waited = Duration::from_nanos(now_ns.saturating_sub(*sent_ns));
                // The driver is connected but slow (an unconnected control stream fails
                // the send instead): give the next attempt longer.
                self.attach_wait_ns = self
                    .attach_wait_ns
                    .saturating_mul(2)
                    .min(duration_ns(MAX_ATTACH_WAIT).max(duration_ns(self.config.attach_timeout)));
                self.back_off(now_ns);
                let event = SessionEvent::AttachTimedOut {
                    waited,
                    unanswered: self.unanswered.len(),
                };
                (None, Some(event))
            }
            State::Attached {
                hard_expiry_ns: Some(expiry),
                ..
            } if now_ns >= *expiry => {
                self.back_off(now_ns);
                (None, Some(SessionEvent::LeaseLost))
            }
            State::Attached {
                grant,
                next_keepalive_ns,
                keepalive_period_ns,
                lease_ns,
                hard_expiry_ns,
            } if now_ns >= *next_keepalive_ns => {
                *next_keepalive_ns = now_ns + *keepalive_period_ns;
                *hard_expiry_ns = lease_ns.map(|lease| now_ns.saturating_add(lease));
                let ka = ShmLeaseKeepalive {
                    lease_id: grant.lease_id,
                    stream_id: grant.stream_id,
                    client_id: self.client_id,
                    role: self.config.role,
                    client_timestamp_ns: now_ns,
                };
                (Some(Request::Keepalive(ka)), None)
            }
            State::Detaching { deadline_ns, .. } if now_ns >= *deadline_ns => {
                self.state = State::Closed;
                (None, Some(SessionEvent::Closed))
            }
            _ => (None, None),
        }
    }

    /// The host could not publish the last request: a lost keepalive is fatal for the
    /// lease (§4.4), a lost attach is retried after backoff.
    pub fn send_failed(&mut self, now_ns: u64) -> Option<SessionEvent> {
        match self.state {
            State::Attached { .. } => {
                self.back_off(now_ns);
                Some(SessionEvent::LeaseLost)
            }
            State::Attaching { correlation_id, .. } => {
                // Never sent: no response can come for it.
                self.unanswered
                    .retain(|a| a.correlation_id != correlation_id);
                self.back_off(now_ns);
                None
            }
            _ => None,
        }
    }

    /// Starts a detach: returns the request to send (or `None` if not attached, in which
    /// case the session closes at once).
    pub fn close(&mut self, now_ns: u64) -> Option<Request> {
        let State::Attached { grant, .. } = &self.state else {
            self.state = State::Closed;
            return None;
        };
        let request = ShmDetachRequest {
            correlation_id: 0,
            lease_id: grant.lease_id,
            stream_id: grant.stream_id,
            client_id: self.client_id,
            role: self.config.role,
        };
        let correlation_id = self.take_correlation_id();
        self.state = State::Detaching {
            correlation_id,
            deadline_ns: now_ns + duration_ns(self.config.attach_timeout),
        };
        Some(Request::Detach(ShmDetachRequest {
            correlation_id,
            ..request
        }))
    }

    /// Feeds one control-stream message; returns what it meant for this session.
    pub fn on_message(&mut self, bytes: &[u8], now_ns: u64) -> Option<SessionEvent> {
        let header = MessageHeader::read(bytes).ok()?;
        if header.schema_id != driver::SCHEMA_ID {
            return None;
        }
        match header.template_id {
            shm_attach_response::TEMPLATE_ID => self.on_attach_response(bytes, header, now_ns),
            shm_lease_revoked::TEMPLATE_ID => self.on_revoked(bytes, header, now_ns),
            shm_driver_shutdown::TEMPLATE_ID => self.on_shutdown(bytes, header, now_ns),
            shm_detach_response::TEMPLATE_ID => self.on_detach_response(bytes),
            _ => None,
        }
    }

    fn on_attach_response(
        &mut self,
        bytes: &[u8],
        header: MessageHeader,
        now_ns: u64,
    ) -> Option<SessionEvent> {
        // Peek the correlation id before judging the rest: other clients' responses
        // share the stream and are none of our business.
        let answered = crate::protocol::codec::get_i64(bytes, 8);
        let sent = self.take_unanswered(answered)?;
        let current = matches!(self.state, State::Attaching { correlation_id, .. } if correlation_id == answered);
        if !current {
            return self.on_late_attach_response(bytes, header, sent, now_ns);
        }
        let response = if header.version > driver::SCHEMA_VERSION {
            Err(ProtocolError::NewerSchemaVersion(header.version))
        } else {
            ShmAttachResponseDecoder::wrap(bytes).map_err(ProtocolError::Malformed)
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => return Some(self.protocol_error(e, now_ns)),
        };
        match response.code() {
            ResponseCode::Ok => match validate_grant(&response) {
                Ok(grant) => Some(self.accept_grant(grant, now_ns)),
                Err(e) => Some(self.protocol_error(e, now_ns)),
            },
            ResponseCode::Unrecognized(_) => {
                Some(self.protocol_error(ProtocolError::UnknownEnum("ResponseCode"), now_ns))
            }
            code => {
                let message = String::from_utf8_lossy(response.error_message()).into_owned();
                if self.auto_client_id && message == CLIENT_ID_ALREADY_ATTACHED {
                    self.client_id = self.random.nonzero_u32();
                }
                self.back_off(now_ns);
                Some(SessionEvent::AttachRefused { code, message })
            }
        }
    }

    /// An attach response for an attempt that timed out (Driver Model §4.8, Appendix
    /// B.1). A grant is this session's lease all the same: taken when no lease is held,
    /// else detached at once, so it never blocks a retry until it expires. Anything else
    /// is ignored: a late refusal says nothing about the attempt in flight.
    fn on_late_attach_response(
        &mut self,
        bytes: &[u8],
        header: MessageHeader,
        sent: SentAttach,
        now_ns: u64,
    ) -> Option<SessionEvent> {
        if header.version > driver::SCHEMA_VERSION {
            return None;
        }
        let response = ShmAttachResponseDecoder::wrap(bytes).ok()?;
        if response.code() != ResponseCode::Ok {
            return None;
        }
        let grant = match validate_grant(&response) {
            Ok(grant) => grant,
            Err(error) => {
                // Nothing of it may be used; a lease it may carry expires on its own.
                self.protocol_errors[error.kind_index()] += 1;
                return None;
            }
        };
        let wanted = matches!(
            self.state,
            State::Unattached { .. } | State::Attaching { .. }
        );
        if wanted {
            tracing::info!(
                lease_id = grant.lease_id,
                stream_id = grant.stream_id,
                "taking a grant that arrived after its attach timed out"
            );
            self.client_id = sent.client_id;
            self.late_grants.adopted += 1;
            return Some(self.accept_grant(grant, now_ns));
        }
        tracing::info!(
            lease_id = grant.lease_id,
            stream_id = grant.stream_id,
            "detaching a late grant this session no longer needs"
        );
        self.releases.push_back(ShmDetachRequest {
            correlation_id: 0,
            lease_id: grant.lease_id,
            stream_id: grant.stream_id,
            client_id: sent.client_id,
            role: self.config.role,
        });
        self.late_grants.released += 1;
        None
    }

    /// Takes a validated grant as the session's lease.
    fn accept_grant(&mut self, grant: LeaseGrant, now_ns: u64) -> SessionEvent {
        let expiry = grant.lease_expiry_ns;
        let period = keepalive_period_ns(expiry, now_ns, self.config.keepalive_interval);
        self.backoff_ns = duration_ns(self.config.backoff_initial);
        self.attach_wait_ns = 0;
        self.state = State::Attached {
            grant: grant.clone(),
            next_keepalive_ns: now_ns.saturating_add(period),
            keepalive_period_ns: period,
            lease_ns: expiry.map(|e| e.saturating_sub(now_ns)),
            hard_expiry_ns: expiry,
        };
        SessionEvent::Attached(grant)
    }

    /// Removes and returns the unanswered attempt with `correlation_id`.
    fn take_unanswered(&mut self, correlation_id: i64) -> Option<SentAttach> {
        let at = self
            .unanswered
            .iter()
            .position(|a| a.correlation_id == correlation_id)?;
        self.unanswered.remove(at)
    }

    fn on_revoked(
        &mut self,
        bytes: &[u8],
        header: MessageHeader,
        now_ns: u64,
    ) -> Option<SessionEvent> {
        if header.version > driver::SCHEMA_VERSION {
            self.ignored_notices += 1;
            return None;
        }
        let revoked = ShmLeaseRevokedDecoder::wrap(bytes).ok()?.to_value();
        if !revoked.reason.is_known() || !revoked.role.is_known() {
            // §4.9: reject revocations with unknown reason or role values.
            self.ignored_notices += 1;
            return None;
        }
        let ours = self.grant().is_some_and(|g| {
            g.lease_id == revoked.lease_id
                && g.stream_id == revoked.stream_id
                && revoked.role == self.config.role
        });
        if ours {
            self.back_off(now_ns);
            return Some(SessionEvent::Revoked(revoked.reason));
        }
        Some(SessionEvent::OtherLeaseRevoked {
            lease_id: revoked.lease_id,
            stream_id: revoked.stream_id,
            role: revoked.role,
            reason: revoked.reason,
        })
    }

    fn on_shutdown(
        &mut self,
        bytes: &[u8],
        header: MessageHeader,
        now_ns: u64,
    ) -> Option<SessionEvent> {
        if header.version > driver::SCHEMA_VERSION {
            self.ignored_notices += 1;
            return None;
        }
        let notice = ShmDriverShutdownDecoder::wrap(bytes).ok()?;
        if matches!(self.state, State::Closed | State::Detaching { .. }) {
            return None;
        }
        self.back_off(now_ns);
        Some(SessionEvent::DriverShutdown(notice.reason()))
    }

    fn on_detach_response(&mut self, bytes: &[u8]) -> Option<SessionEvent> {
        let State::Detaching { correlation_id, .. } = self.state else {
            return None;
        };
        let response = ShmDetachResponseDecoder::wrap(bytes).ok()?;
        if response.correlation_id() != correlation_id {
            return None;
        }
        self.state = State::Closed;
        Some(SessionEvent::Closed)
    }

    fn protocol_error(&mut self, error: ProtocolError, now_ns: u64) -> SessionEvent {
        self.protocol_errors[error.kind_index()] += 1;
        tracing::warn!(error = %error, "attach response refused (fail closed)");
        self.back_off(now_ns);
        SessionEvent::ProtocolError(error)
    }

    /// Drops any lease and schedules the next attach with exponential backoff and ±25 %
    /// jitter.
    fn back_off(&mut self, now_ns: u64) {
        let jitter = self.random.next_u64() % (self.backoff_ns / 2 + 1);
        let delay = self.backoff_ns - self.backoff_ns / 4 + jitter;
        self.state = State::Unattached {
            next_attempt_ns: now_ns + delay,
        };
        self.backoff_ns = (self.backoff_ns * 2).min(duration_ns(self.config.backoff_max));
    }

    fn take_correlation_id(&mut self) -> i64 {
        let id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1).max(1);
        id
    }

    fn attach_request(&self, correlation_id: i64) -> ShmAttachRequest {
        ShmAttachRequest {
            correlation_id,
            stream_id: self.config.stream_id,
            client_id: self.client_id,
            role: self.config.role,
            expected_layout_version: self.config.expected_layout_version,
            publish_mode: self.config.publish_mode,
            require_hugepages: self.config.require_hugepages,
            desired_node_id: self.config.desired_node_id,
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
