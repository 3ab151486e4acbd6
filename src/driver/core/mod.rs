//! The sans-IO driver core: leases, streams, epochs, id ranges and shutdown
//! (Driver Model §3–§11, §4.13).
//!
//! [`DriverCore`] is a deterministic state machine. The host feeds it decoded requests
//! and ticks with a monotonic `now_ns`, lends it a [`Provisioner`] for the files of new
//! epochs, and publishes the [`Output`]s it queues, in order. No clocks, sockets,
//! threads or files live here, so every rule is unit- and property-testable.
//!
//! Decisions where the spec leaves a choice are recorded in docs/DESIGN.md.

mod attach;
mod counters;
mod ids;
mod provisioner;
mod session;
mod shutdown;
mod types;

pub use counters::CoreCounters;
pub use ids::IdPool;
pub use provisioner::{ProvisionFailure, Provisioner};
pub use shutdown::ShutdownState;
pub use types::{
    AttachGrant, AttachResponse, ConsumerAssignment, EpochLayout, Lease, Output, PoolLayout,
};

use crate::config::{DriverConfig, Profile};
use crate::protocol::driver::{LeaseRevokeReason, Role};
use crate::shm::layout::LAYOUT_VERSION;
use crate::shm::uri::RegionUri;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Facts about the host the core cannot find out itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreEnv {
    /// First lease id to hand out. Use a value that grows between runs (wall-clock
    /// nanoseconds) so ids from a previous run never match a new lease.
    pub lease_id_seed: u64,
    /// Whether `shm.base_dir` is on hugetlbfs.
    pub base_is_hugetlbfs: bool,
}

/// One stream the driver manages.
#[derive(Debug, Clone)]
pub struct StreamState {
    /// Stream id.
    pub stream_id: u32,
    /// Name of the profile giving its geometry.
    pub profile_name: String,
    /// The profile itself.
    pub profile: Profile,
    /// Created on demand (id from `driver.stream_id_range`).
    pub dynamic: bool,
    /// Highest epoch ever used for the stream (the current one once provisioned).
    pub epoch_high_water: u64,
    /// Files of the current epoch; `None` until provisioned or after a failure.
    pub layout: Option<Arc<EpochLayout>>,
    /// Lease id of the attached producer.
    pub producer: Option<u64>,
    /// Lease ids of attached consumers.
    pub consumers: BTreeSet<u64>,
}

/// Settings the core reads on every event, resolved from the configuration once.
#[derive(Debug, Clone)]
struct CoreSettings {
    lease_expiry_ns: u64,
    expiry_check_ns: u64,
    announce_period_ns: u64,
    shutdown_timeout_ns: u64,
    shutdown_token: Option<String>,
    require_hugepages: bool,
    allow_dynamic_streams: bool,
    default_profile: Option<(String, Profile)>,
}

/// The driver state machine.
#[derive(Debug)]
pub struct DriverCore {
    settings: CoreSettings,
    env: CoreEnv,
    static_streams: Vec<(u32, String, Profile)>,
    streams: BTreeMap<u32, StreamState>,
    leases: HashMap<u64, Lease>,
    first_lease_id: u64,
    next_lease_id: u64,
    dynamic_ids: IdPool,
    descriptor_ids: IdPool,
    control_ids: IdPool,
    node_ids: HashMap<u32, u64>,
    shutdown: ShutdownState,
    next_announce_ns: u64,
    next_expiry_check_ns: u64,
    counters: CoreCounters,
    outputs: Vec<Output>,
}

/// Why the core could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// A static stream's files could not be created.
    #[error("provisioning stream {stream_id}: {failure}")]
    Provision {
        /// Stream id.
        stream_id: u32,
        /// What went wrong.
        failure: ProvisionFailure,
    },
}

impl DriverCore {
    /// A core for `config`; nothing is provisioned until [`DriverCore::start`].
    pub fn new(config: &DriverConfig, env: CoreEnv) -> Self {
        let policies = &config.policies;
        let default_profile = config
            .profile(&policies.default_profile)
            .map(|p| (policies.default_profile.clone(), p.clone()));
        let static_streams = config
            .streams
            .values()
            .filter_map(|s| {
                config
                    .profile(&s.profile)
                    .map(|p| (s.stream_id, s.profile.clone(), p.clone()))
            })
            .collect();
        let lease_expiry_ns = policies.lease_expiry_ns();
        // Lease ids start at the seed; u64::MAX is the wire's null and is never issued.
        let first_lease_id = env.lease_id_seed.clamp(1, u64::MAX / 2);
        Self {
            settings: CoreSettings {
                lease_expiry_ns,
                expiry_check_ns: (policies.lease_keepalive_interval_ns() / 4).max(1),
                announce_period_ns: policies.announce_period_ns().max(1),
                shutdown_timeout_ns: policies.shutdown_timeout_ms as u64 * 1_000_000,
                shutdown_token: policies.shutdown_token.clone().filter(|t| !t.is_empty()),
                require_hugepages: config.shm.require_hugepages,
                allow_dynamic_streams: policies.allow_dynamic_streams,
                default_profile,
            },
            env,
            static_streams,
            streams: BTreeMap::new(),
            leases: HashMap::new(),
            first_lease_id,
            next_lease_id: first_lease_id,
            dynamic_ids: IdPool::new(config.driver.stream_id_range),
            descriptor_ids: IdPool::new(config.driver.descriptor_stream_id_range),
            control_ids: IdPool::new(config.driver.control_stream_id_range),
            node_ids: HashMap::new(),
            shutdown: ShutdownState::Running,
            next_announce_ns: 0,
            next_expiry_check_ns: 0,
            counters: CoreCounters::default(),
            outputs: Vec::new(),
        }
    }

    /// Provisions every static stream in a fresh epoch and announces it. Static streams
    /// are provisioned at start so that they are announced from start-up.
    pub fn start(&mut self, now_ns: u64, prov: &mut dyn Provisioner) -> Result<(), StartError> {
        let statics = std::mem::take(&mut self.static_streams);
        for (stream_id, profile_name, profile) in &statics {
            self.add_stream(
                *stream_id,
                profile_name.clone(),
                profile.clone(),
                false,
                prov,
            )
            .map_err(|failure| StartError::Provision {
                stream_id: *stream_id,
                failure,
            })?;
            self.new_epoch(*stream_id, now_ns, prov)
                .map_err(|failure| StartError::Provision {
                    stream_id: *stream_id,
                    failure,
                })?;
        }
        self.static_streams = statics;
        self.next_announce_ns = now_ns + self.settings.announce_period_ns;
        self.next_expiry_check_ns = now_ns + self.settings.expiry_check_ns;
        Ok(())
    }

    /// Runs timers: lease expiry, periodic announces, shutdown progress. Returns the
    /// number of things done (0 when idle).
    pub fn on_tick(&mut self, now_ns: u64, prov: &mut dyn Provisioner) -> usize {
        let mut work = self.on_failed_epochs(now_ns, prov);
        if now_ns >= self.next_expiry_check_ns {
            self.next_expiry_check_ns = now_ns + self.settings.expiry_check_ns;
            work += self.expire_leases(now_ns, prov);
        }
        if now_ns >= self.next_announce_ns && self.shutdown.is_running() {
            self.next_announce_ns = now_ns + self.settings.announce_period_ns;
            work += self.announce_all(now_ns);
        }
        work + self.progress_shutdown(now_ns)
    }

    /// Revokes the producer of every current epoch whose preparation failed after it
    /// was granted (its memory could not be reserved): the producer must not write into
    /// it, and the revoke bumps the epoch as for any producer lease that ends (§4.7a, §6).
    fn on_failed_epochs(&mut self, now_ns: u64, prov: &mut dyn Provisioner) -> usize {
        let failed = prov.take_failed_epochs();
        let mut work = 0;
        for (stream_id, epoch, failure) in failed {
            self.counters.provision_failures += 1;
            let Some(stream) = self.streams.get(&stream_id) else {
                continue;
            };
            let current = stream.layout.as_ref().is_some_and(|l| l.epoch == epoch);
            let Some(lease_id) = stream.producer.filter(|_| current) else {
                continue;
            };
            tracing::error!(stream_id, epoch, lease_id, error = %failure, "revoking the producer of an epoch that could not be prefaulted");
            self.invalidate(lease_id, LeaseRevokeReason::Revoked, now_ns, prov);
            work += 1;
        }
        work
    }

    /// Takes the queued outputs, oldest first.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.outputs.drain(..)
    }

    /// Outputs queued and not yet drained.
    pub fn pending_outputs(&self) -> &[Output] {
        &self.outputs
    }

    /// Event counts.
    pub fn counters(&self) -> &CoreCounters {
        &self.counters
    }

    /// A stream by id.
    pub fn stream(&self, stream_id: u32) -> Option<&StreamState> {
        self.streams.get(&stream_id)
    }

    /// All streams, by id.
    pub fn streams(&self) -> impl Iterator<Item = &StreamState> {
        self.streams.values()
    }

    /// A live lease by id.
    pub fn lease(&self, lease_id: u64) -> Option<&Lease> {
        self.leases.get(&lease_id)
    }

    /// All live leases.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Live producer and consumer lease counts.
    pub fn lease_counts(&self) -> (usize, usize) {
        let producers = self
            .streams
            .values()
            .filter(|s| s.producer.is_some())
            .count();
        (producers, self.leases.len() - producers)
    }

    /// Where the shutdown sequence is.
    pub fn shutdown_state(&self) -> &ShutdownState {
        &self.shutdown
    }

    /// The deadline of the next timer, for hosts that sleep between events.
    pub fn next_deadline_ns(&self) -> u64 {
        let mut deadline = self.next_expiry_check_ns.min(self.next_announce_ns);
        if let ShutdownState::Draining { deadline_ns, .. } = self.shutdown {
            deadline = deadline.min(deadline_ns);
        }
        deadline
    }

    /// Registers a stream and learns its epoch high-water mark from disk.
    fn add_stream(
        &mut self,
        stream_id: u32,
        profile_name: String,
        profile: Profile,
        dynamic: bool,
        prov: &mut dyn Provisioner,
    ) -> Result<(), ProvisionFailure> {
        let epoch_high_water = prov.highest_epoch(stream_id)?;
        self.streams.insert(
            stream_id,
            StreamState {
                stream_id,
                profile_name,
                profile,
                dynamic,
                epoch_high_water,
                layout: None,
                producer: None,
                consumers: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Moves a stream to a fresh epoch (new directory, new files) and announces it.
    /// The epoch number is consumed even if provisioning fails, so it is never reused.
    fn new_epoch(
        &mut self,
        stream_id: u32,
        now_ns: u64,
        prov: &mut dyn Provisioner,
    ) -> Result<(), ProvisionFailure> {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return Err(ProvisionFailure(format!("stream {stream_id} is not known")));
        };
        stream.epoch_high_water += 1;
        let epoch = stream.epoch_high_water;
        stream.layout = None;
        self.counters.epoch_bumps += 1;
        let layout = prov
            .provision(stream_id, epoch, LAYOUT_VERSION, &stream.profile)
            .and_then(|layout| validate_layout(layout, stream_id, epoch, &stream.profile));
        match layout {
            Ok(layout) => {
                let epoch = layout.epoch;
                stream.epoch_high_water = epoch;
                stream.layout = Some(Arc::new(layout));
                prov.retire_older(stream_id, epoch);
                tracing::info!(stream_id, epoch, "epoch started");
                self.announce(stream_id, now_ns);
                Ok(())
            }
            Err(failure) => {
                self.counters.provision_failures += 1;
                tracing::error!(stream_id, epoch, error = %failure, "provisioning failed");
                Err(failure)
            }
        }
    }

    /// Queues an announce of a stream's current epoch, if it has one.
    fn announce(&mut self, stream_id: u32, now_ns: u64) -> usize {
        let Some(stream) = self.streams.get(&stream_id) else {
            return 0;
        };
        let Some(layout) = stream.layout.clone() else {
            return 0;
        };
        let producer_id = stream
            .producer
            .and_then(|id| self.leases.get(&id))
            .map_or(0, |l| l.client_id);
        self.outputs.push(Output::Announce {
            timestamp_ns: now_ns,
            producer_id,
            layout,
        });
        self.counters.announces += 1;
        1
    }

    fn announce_all(&mut self, now_ns: u64) -> usize {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.into_iter().map(|id| self.announce(id, now_ns)).sum()
    }

    fn expire_leases(&mut self, now_ns: u64, prov: &mut dyn Provisioner) -> usize {
        let mut expired: Vec<u64> = self
            .leases
            .values()
            .filter(|l| l.expiry_ns <= now_ns)
            .map(|l| l.lease_id)
            .collect();
        expired.sort_unstable();
        for lease_id in &expired {
            self.counters.expiries += 1;
            self.invalidate(*lease_id, LeaseRevokeReason::Expired, now_ns, prov);
        }
        expired.len()
    }

    /// Ends a lease: frees what it held, emits exactly one `ShmLeaseRevoked`, and, for a
    /// producer, starts a new epoch (whose announce therefore follows the revoke).
    fn invalidate(
        &mut self,
        lease_id: u64,
        reason: LeaseRevokeReason,
        now_ns: u64,
        prov: &mut dyn Provisioner,
    ) {
        let Some(lease) = self.leases.remove(&lease_id) else {
            return;
        };
        if let Some(node_id) = lease.node_id {
            self.node_ids.remove(&node_id);
        }
        if let Some((id, _)) = &lease.descriptor_stream {
            self.descriptor_ids.release(*id);
        }
        if let Some((id, _)) = &lease.control_stream {
            self.control_ids.release(*id);
        }
        self.counters.revocations += 1;
        tracing::info!(
            lease_id,
            stream_id = lease.stream_id,
            client_id = lease.client_id,
            role = %lease.role,
            reason = %reason,
            "lease ended"
        );
        self.outputs.push(Output::LeaseRevoked {
            timestamp_ns: now_ns,
            lease_id,
            stream_id: lease.stream_id,
            client_id: lease.client_id,
            role: lease.role,
            reason,
        });
        let Some(stream) = self.streams.get_mut(&lease.stream_id) else {
            return;
        };
        stream.consumers.remove(&lease_id);
        if stream.producer == Some(lease_id) {
            stream.producer = None;
            if self.shutdown.is_running() {
                // A failure is counted and logged; the next attach provisions again.
                let _ = self.new_epoch(lease.stream_id, now_ns, prov);
            }
        }
    }

    /// Whether `lease_id` was issued by this process (and so, if not live, has ended).
    fn was_issued(&self, lease_id: u64) -> bool {
        (self.first_lease_id..self.next_lease_id).contains(&lease_id)
    }

    /// A new lease id (never reused: ids only grow).
    fn issue_lease_id(&mut self) -> u64 {
        let id = self.next_lease_id;
        self.next_lease_id += 1;
        id
    }
}

/// Checks what the provisioner returned before any client sees it: the right stream,
/// epoch and geometry, and URIs that parse (Driver Model §4.2: every URI must satisfy the
/// Wire Spec rules).
fn validate_layout(
    layout: EpochLayout,
    stream_id: u32,
    epoch: u64,
    profile: &Profile,
) -> Result<EpochLayout, ProvisionFailure> {
    let fail = |what: String| Err(ProvisionFailure(format!("provisioner returned {what}")));
    // A later epoch than asked: the provisioner moved past numbers whose names were
    // taken by entries it did not create (never an earlier one).
    if layout.stream_id != stream_id || layout.epoch < epoch {
        return fail(format!(
            "stream {} epoch {} for stream {stream_id} epoch {epoch}",
            layout.stream_id, layout.epoch
        ));
    }
    if layout.header_nslots != profile.header_nslots || layout.pools.is_empty() {
        return fail("a layout that does not match the profile".into());
    }
    for uri in
        std::iter::once(&layout.header_region_uri).chain(layout.pools.iter().map(|p| &p.region_uri))
    {
        if let Err(e) = RegionUri::parse(uri) {
            return fail(format!("invalid region URI {uri:?}: {e}"));
        }
    }
    if layout
        .pools
        .iter()
        .any(|p| p.nslots != layout.header_nslots)
    {
        return fail("a pool whose nslots differs from the header ring's".into());
    }
    Ok(layout)
}

/// Whether a lease's role is the producer role.
fn is_producer(role: Role) -> bool {
    role == Role::Producer
}

#[cfg(test)]
pub(crate) mod tests;
