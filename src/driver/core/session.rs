//! Keepalive, detach, administrative revoke and per-consumer streams
//! (Driver Model §4.4, §4.9, §11; Wire Spec §10.1.2–§10.1.3).

use super::{ConsumerAssignment, DriverCore, IdPool, Output, Provisioner};
use crate::protocol::control::ConsumerHelloDecoder;
use crate::protocol::driver::{
    LeaseRevokeReason, ResponseCode, Role, ShmDetachRequest, ShmLeaseKeepalive,
};

impl DriverCore {
    /// Handles `ShmLeaseKeepalive`: extends the lease only when lease id, stream id,
    /// client id and role all match a live lease; anything else is ignored and counted.
    /// Returns whether the keepalive counted.
    pub fn on_keepalive(&mut self, ka: &ShmLeaseKeepalive, now_ns: u64) -> bool {
        match self.leases.get_mut(&ka.lease_id) {
            Some(lease)
                if lease.stream_id == ka.stream_id
                    && lease.client_id == ka.client_id
                    && lease.role == ka.role =>
            {
                lease.expiry_ns = now_ns.saturating_add(self.settings.lease_expiry_ns);
                self.counters.keepalives += 1;
                true
            }
            _ => {
                self.counters.keepalives_ignored += 1;
                false
            }
        }
    }

    /// Restarts the term of a just-granted lease at `sent_ns`, when its attach response
    /// goes out (Driver Model §4.2: the deadline the client reads must leave it the whole
    /// lease). Never shortens a lease. Returns the deadline, or `None` if it is not live.
    pub fn restart_lease_term(&mut self, lease_id: u64, sent_ns: u64) -> Option<u64> {
        let lease = self.leases.get_mut(&lease_id)?;
        lease.expiry_ns = lease
            .expiry_ns
            .max(sent_ns.saturating_add(self.settings.lease_expiry_ns));
        Some(lease.expiry_ns)
    }

    /// Handles `ShmDetachRequest`: a matching live lease is invalidated (`OK`, then one
    /// revoke, then for a producer the new epoch's announce); anything else is `REJECTED`
    /// without a revoke.
    pub fn on_detach(&mut self, req: &ShmDetachRequest, now_ns: u64, prov: &mut dyn Provisioner) {
        let refusal = match self.leases.get(&req.lease_id) {
            Some(lease)
                if lease.stream_id == req.stream_id
                    && lease.client_id == req.client_id
                    && lease.role == req.role =>
            {
                None
            }
            Some(_) => Some("unknown lease"),
            None if self.was_issued(req.lease_id) => Some("lease already invalidated"),
            None => Some("unknown lease"),
        };
        match refusal {
            None => {
                self.counters.detaches += 1;
                self.outputs.push(Output::DetachResponse {
                    correlation_id: req.correlation_id,
                    code: ResponseCode::Ok,
                    error_message: "",
                });
                self.invalidate(req.lease_id, LeaseRevokeReason::Detached, now_ns, prov);
            }
            Some(message) => {
                self.counters.detaches_rejected += 1;
                tracing::info!(
                    lease_id = req.lease_id,
                    correlation_id = req.correlation_id,
                    reason = message,
                    "detach refused"
                );
                self.outputs.push(Output::DetachResponse {
                    correlation_id: req.correlation_id,
                    code: ResponseCode::Rejected,
                    error_message: message,
                });
            }
        }
    }

    /// Revokes a live lease for administrative or safety reasons (reason REVOKED).
    /// Returns whether the lease was live.
    pub fn revoke(&mut self, lease_id: u64, now_ns: u64, prov: &mut dyn Provisioner) -> bool {
        if !self.leases.contains_key(&lease_id) {
            return false;
        }
        self.invalidate(lease_id, LeaseRevokeReason::Revoked, now_ns, prov);
        true
    }

    /// Handles `ConsumerHello` from a consumer that holds a lease on the stream: assigns
    /// per-consumer descriptor/control streams when requested, or declines with an empty
    /// channel and stream id 0, and queues the `ConsumerConfig`. A hello without a
    /// matching consumer lease is ignored and counted. Assignments are stable for the
    /// lease and return to their pools when it ends.
    pub fn on_consumer_hello(&mut self, hello: &ConsumerHelloDecoder<'_>) {
        let (stream_id, consumer_id) = (hello.stream_id(), hello.consumer_id());
        let lease_id = self
            .leases
            .values()
            .filter(|l| {
                l.role == Role::Consumer && l.stream_id == stream_id && l.client_id == consumer_id
            })
            .map(|l| l.lease_id)
            .min();
        let Some(lease) = lease_id.and_then(|id| self.leases.get_mut(&id)) else {
            self.counters.hellos_ignored += 1;
            return;
        };
        let descriptor = assign(
            &mut lease.descriptor_stream,
            &mut self.descriptor_ids,
            hello.descriptor_channel(),
            hello.descriptor_stream_id(),
        );
        let control = assign(
            &mut lease.control_stream,
            &mut self.control_ids,
            hello.control_channel(),
            hello.control_stream_id(),
        );
        self.counters.consumer_configs += 1;
        self.outputs
            .push(Output::ConsumerConfig(ConsumerAssignment {
                stream_id,
                consumer_id,
                mode: hello.mode(),
                descriptor,
                control,
            }));
    }
}

/// One per-consumer stream request: a valid request names both a channel and a non-zero
/// id (Wire Spec §10.1.2); the id granted is the requested one when it lies in the range
/// and is free, else the lowest free one. Not requested, invalid, unset range or
/// exhausted range all give `(0, "")`. A repeated hello gets the same assignment.
fn assign(
    held: &mut Option<(u32, String)>,
    pool: &mut IdPool,
    channel: &[u8],
    requested_id: u32,
) -> (u32, String) {
    if let Some(existing) = held {
        return existing.clone();
    }
    let channel = match std::str::from_utf8(channel) {
        Ok(c) if !c.trim().is_empty() && requested_id != 0 => c,
        _ => return (0, String::new()),
    };
    match pool.allocate(Some(requested_id)) {
        Some(id) => {
            *held = Some((id, channel.to_string()));
            (id, channel.to_string())
        }
        None => (0, String::new()),
    }
}
