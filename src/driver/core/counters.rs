//! Event counts of the driver core, mirrored into Aeron counters by the host.

use crate::protocol::driver::ResponseCode;

/// Monotonic event counts (never reset while the driver runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoreCounters {
    /// Attaches answered OK.
    pub attaches_ok: u64,
    /// Attaches answered UNSUPPORTED.
    pub attaches_unsupported: u64,
    /// Attaches answered INVALID_PARAMS.
    pub attaches_invalid_params: u64,
    /// Attaches answered REJECTED.
    pub attaches_rejected: u64,
    /// Attaches answered INTERNAL_ERROR.
    pub attaches_internal_error: u64,
    /// Keepalives that extended a lease.
    pub keepalives: u64,
    /// Keepalives that matched no live lease exactly (ignored).
    pub keepalives_ignored: u64,
    /// Detaches answered OK.
    pub detaches: u64,
    /// Detaches answered REJECTED.
    pub detaches_rejected: u64,
    /// Leases that expired.
    pub expiries: u64,
    /// `ShmLeaseRevoked` notices emitted (every invalidation, any reason).
    pub revocations: u64,
    /// Epochs started (every bump, any cause).
    pub epoch_bumps: u64,
    /// Announces emitted.
    pub announces: u64,
    /// Provisioning failures.
    pub provision_failures: u64,
    /// `ConsumerHello` messages answered with a `ConsumerConfig`.
    pub consumer_configs: u64,
    /// `ConsumerHello` messages from clients without a matching consumer lease.
    pub hellos_ignored: u64,
    /// Shutdown requests ignored (no token configured, or wrong token).
    pub shutdown_requests_ignored: u64,
}

impl CoreCounters {
    /// Counts one attach outcome.
    pub fn count_attach(&mut self, code: ResponseCode) {
        let slot = match code {
            ResponseCode::Ok => &mut self.attaches_ok,
            ResponseCode::Unsupported => &mut self.attaches_unsupported,
            ResponseCode::InvalidParams => &mut self.attaches_invalid_params,
            ResponseCode::Rejected => &mut self.attaches_rejected,
            ResponseCode::InternalError | ResponseCode::Unrecognized(_) => {
                &mut self.attaches_internal_error
            }
        };
        *slot += 1;
    }
}
