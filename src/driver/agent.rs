//! The SHM driver agent: binds the core and the provisioner to a control plane with a
//! duty cycle, as Aeron's agents do (`do_work(now_ns)` returns a work count; nothing in
//! it assumes who calls it: the `tp-driver` loop, a thread of its own, or a thread a
//! stock media driver starts).

use super::core::{AttachResponse, CoreCounters, DriverCore, Output, Provisioner};
use super::lease_counters::LeaseEvent;
use super::wire::{self, Destination, Inbound, Malformed};
use crate::protocol::driver::ShutdownReason;

/// Messages handled per duty cycle at most, so timers keep running under load.
const POLL_LIMIT: usize = 64;
/// Size of the buffer outputs are encoded into (an announce with many pools fits).
const ENCODE_BUFFER_LEN: usize = 64 * 1024;
/// Malformed messages of one kind are logged at most this often.
const MALFORMED_LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// What a publish did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Handed to the stream.
    Sent,
    /// Back-pressured and queued for a later duty cycle.
    Queued,
    /// Nobody subscribes to the stream; dropped (no one could have read it).
    NotConnected,
}

/// A message that could not be published or queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing to the {destination:?} stream failed: {reason}")]
pub struct PublishError {
    /// The stream.
    pub destination: Destination,
    /// Why.
    pub reason: String,
}

/// The driver's view of its streams: where requests come from, where outputs go.
pub trait ControlPlane {
    /// Delivers up to `limit` whole inbound control-stream messages to `handler`;
    /// returns how many were delivered.
    fn poll_control(&mut self, handler: &mut dyn FnMut(&[u8]), limit: usize) -> usize;
    /// Publishes one message, queueing it when back-pressured.
    fn publish(
        &mut self,
        destination: Destination,
        bytes: &[u8],
    ) -> Result<PublishOutcome, PublishError>;
    /// Retries queued messages; returns how many went out.
    fn flush(&mut self) -> usize;
}

/// Counts kept by the agent itself (the core keeps the protocol counts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCounters {
    /// Dropped inbound messages, per [`Malformed::kind_index`].
    pub malformed: [u64; Malformed::KINDS],
    /// Outputs that went out after waiting in the back-pressure queue.
    pub offer_retries: u64,
    /// Outputs queued because of back pressure.
    pub offers_queued: u64,
    /// Outputs dropped because nobody subscribed.
    pub not_connected: u64,
    /// Outputs lost: queue full, stream closed or encoding failure.
    pub publish_failures: u64,
}

impl AgentCounters {
    /// All malformed messages, any kind.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().sum()
    }
}

/// The SHM driver agent.
pub struct DriverAgent<P: Provisioner, T: ControlPlane> {
    core: DriverCore,
    provisioner: P,
    transport: T,
    counters: AgentCounters,
    encode_buffer: Vec<u8>,
    malformed_logged_at: [Option<u64>; Malformed::KINDS],
    activity_period_ns: u64,
    next_activity_refresh_ns: u64,
    /// Lease table changes for a host that publishes them; `None` when none does, so
    /// nothing accumulates.
    lease_events: Option<Vec<LeaseEvent>>,
    /// The clock read when a grant is sent (`CLOCK_MONOTONIC`, the clock of `now_ns`).
    clock: Box<dyn Fn() -> u64 + Send>,
}

impl<P: Provisioner, T: ControlPlane> DriverAgent<P, T> {
    /// An agent over a started core.
    pub fn new(core: DriverCore, provisioner: P, transport: T, activity_period_ns: u64) -> Self {
        Self {
            core,
            provisioner,
            transport,
            counters: AgentCounters::default(),
            encode_buffer: vec![0; ENCODE_BUFFER_LEN],
            malformed_logged_at: [None; Malformed::KINDS],
            activity_period_ns: activity_period_ns.max(1),
            next_activity_refresh_ns: 0,
            lease_events: None,
            clock: Box::new(crate::clock::monotonic_now_ns),
        }
    }

    /// Replaces the clock read when a grant is sent (tests drive it by hand); it must
    /// tell the time of the `now_ns` the host passes to [`DriverAgent::do_work`].
    pub fn set_clock(&mut self, clock: impl Fn() -> u64 + Send + 'static) {
        self.clock = Box::new(clock);
    }

    /// Records [`LeaseEvent`]s from now on, for a host that publishes the lease table
    /// ([`super::lease_counters`]); drain them every duty cycle with
    /// [`DriverAgent::drain_lease_events`].
    pub fn record_lease_events(&mut self) {
        self.lease_events.get_or_insert_with(Vec::new);
    }

    /// Hands every recorded lease event, oldest first, to `apply` with the core.
    pub fn drain_lease_events(&mut self, mut apply: impl FnMut(LeaseEvent, &DriverCore)) {
        if let Some(events) = &mut self.lease_events {
            for event in events.drain(..) {
                apply(event, &self.core);
            }
        }
    }

    /// One duty cycle: inbound messages, timers, outputs, retries.
    pub fn do_work(&mut self, now_ns: u64) -> usize {
        let Self {
            core,
            provisioner,
            transport,
            counters,
            malformed_logged_at,
            lease_events,
            ..
        } = self;
        let mut work = transport.poll_control(
            &mut |bytes| {
                handle_inbound(
                    core,
                    provisioner,
                    counters,
                    malformed_logged_at,
                    lease_events,
                    bytes,
                    now_ns,
                )
            },
            POLL_LIMIT,
        );
        work += self.core.on_tick(now_ns, &mut self.provisioner);
        work += self.provisioner.collect(now_ns);
        if now_ns >= self.next_activity_refresh_ns {
            self.next_activity_refresh_ns = now_ns + self.activity_period_ns;
            self.provisioner.refresh_activity(now_ns);
        }
        work += self.publish_outputs();
        let retried = self.transport.flush();
        self.counters.offer_retries += retried as u64;
        work + retried
    }

    /// Queues `ShmDriverShutdown` at once (SIGINT/SIGTERM) and publishes it.
    pub fn shutdown_now(&mut self, reason: ShutdownReason, now_ns: u64) {
        self.core.shutdown_now(reason, now_ns);
        self.publish_outputs();
        self.transport.flush();
    }

    /// Whether the driver has sent its shutdown notice and should exit.
    pub fn is_terminated(&self) -> bool {
        self.core.shutdown_state().is_terminated()
    }

    /// The core (read-only, for inspection and counters).
    pub fn core(&self) -> &DriverCore {
        &self.core
    }

    /// Protocol counts.
    pub fn core_counters(&self) -> &CoreCounters {
        self.core.counters()
    }

    /// The agent's own counts.
    pub fn counters(&self) -> &AgentCounters {
        &self.counters
    }

    /// The transport (for hosts that pump it or read its state).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The provisioner.
    pub fn provisioner(&self) -> &P {
        &self.provisioner
    }

    fn publish_outputs(&mut self) -> usize {
        let mut published = 0;
        let mut outputs: Vec<_> = self.core.drain_outputs().collect();
        for output in &mut outputs {
            if let Output::AttachResponse(AttachResponse {
                grant: Some(grant), ..
            }) = output
            {
                // The lease runs a full term from when the client can learn of it, not
                // from when the request arrived (provisioning may lie in between).
                let sent_ns = (self.clock)();
                if let Some(expiry) = self.core.restart_lease_term(grant.lease_id, sent_ns) {
                    grant.lease_expiry_ns = expiry;
                }
            }
            if let Some(events) = &mut self.lease_events {
                events.extend(lease_event(output));
            }
            let destination = wire::destination(output);
            let len = match wire::encode_output(output, &mut self.encode_buffer) {
                Ok(len) => len,
                Err(e) => {
                    self.counters.publish_failures += 1;
                    tracing::error!(error = %e, ?destination, "encoding an output failed");
                    continue;
                }
            };
            match self
                .transport
                .publish(destination, &self.encode_buffer[..len])
            {
                Ok(PublishOutcome::Sent) => published += 1,
                Ok(PublishOutcome::Queued) => self.counters.offers_queued += 1,
                Ok(PublishOutcome::NotConnected) => self.counters.not_connected += 1,
                Err(e) => {
                    self.counters.publish_failures += 1;
                    tracing::error!(error = %e, "an output was lost");
                }
            }
        }
        published
    }
}

fn handle_inbound<P: Provisioner>(
    core: &mut DriverCore,
    provisioner: &mut P,
    counters: &mut AgentCounters,
    logged_at: &mut [Option<u64>; Malformed::KINDS],
    lease_events: &mut Option<Vec<LeaseEvent>>,
    bytes: &[u8],
    now_ns: u64,
) {
    match wire::classify(bytes) {
        Ok(Inbound::Attach(req)) => core.on_attach(&req, now_ns, provisioner),
        Ok(Inbound::AttachNewerVersion {
            correlation_id,
            version,
        }) => core.on_attach_unsupported_version(correlation_id, version),
        Ok(Inbound::Keepalive(ka)) => {
            if core.on_keepalive(&ka, now_ns) {
                if let Some(events) = lease_events {
                    events.push(LeaseEvent::Renewed(ka.lease_id));
                }
            }
        }
        Ok(Inbound::Detach(req)) => core.on_detach(&req, now_ns, provisioner),
        Ok(Inbound::ShutdownRequest(req)) => {
            core.on_shutdown_request(&req, now_ns);
        }
        Ok(Inbound::ConsumerHello(hello)) => core.on_consumer_hello(&hello),
        Ok(Inbound::NotForDriver) => {}
        Err(malformed) => {
            let kind = malformed.kind_index();
            counters.malformed[kind] += 1;
            let due = logged_at[kind].is_none_or(|at| now_ns >= at + MALFORMED_LOG_INTERVAL_NS);
            if due {
                logged_at[kind] = Some(now_ns);
                tracing::warn!(error = %malformed, count = counters.malformed[kind], "dropped malformed control message");
            }
        }
    }
}

/// The lease table change an output announces, if any: every grant is answered with an
/// OK attach response, every end with exactly one `ShmLeaseRevoked`.
fn lease_event(output: &Output) -> Option<LeaseEvent> {
    match output {
        Output::AttachResponse(response) => response
            .grant
            .as_ref()
            .map(|grant| LeaseEvent::Granted(grant.lease_id)),
        Output::LeaseRevoked { lease_id, .. } => Some(LeaseEvent::Ended(*lease_id)),
        Output::ConsumerConfig(assignment) => (assignment.descriptor.0 != 0
            || assignment.control.0 != 0)
            .then_some(LeaseEvent::Reassigned {
                stream_id: assignment.stream_id,
                client_id: assignment.consumer_id,
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
