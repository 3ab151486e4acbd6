//! The driver's Aeron counters: protocol and agent counts in the media driver's counters
//! file, so Aeron's own tools (`AeronStat`) show them, and the counter publishing the
//! driver's endpoints ([`super::endpoints`]), allocated with them on every host.

use super::agent::AgentCounters;
use super::core::{CoreCounters, DriverCore};
use super::endpoints::{DriverEndpoints, ENDPOINTS_COUNTER_TYPE_ID};
use crate::config::DriverConfig;
use crate::transport::{AeronClient, Counter, PendingCounter, TransportError};

/// Aeron counter type id of every tensorpool driver counter.
pub const COUNTER_TYPE_ID: i32 = 4_100;

/// One counter per figure an operator asks about, and the driver's endpoints.
pub struct DriverCounters {
    counters: Vec<(Counter, Reader)>,
    /// Held for its key and label; its value is the driver's pid.
    _endpoints: Counter,
}

/// What the counters are read from.
pub struct Snapshot<'a> {
    /// Protocol counts.
    pub core: &'a CoreCounters,
    /// Agent counts.
    pub agent: &'a AgentCounters,
    /// Live producer leases.
    pub producer_leases: usize,
    /// Live consumer leases.
    pub consumer_leases: usize,
    /// What the host adds (doorbell, lease publication, epoch GC).
    pub host: HostFigures,
}

/// Figures a host (the `tp-driver` loop or the aeronmd plugin) keeps outside the core and
/// the agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostFigures {
    /// Parks a client's doorbell ended early (0 where there is no doorbell).
    pub doorbell_wakeups: u64,
    /// Leases granted without a lease counter ([`super::lease_counters`]).
    pub leases_unpublished: u64,
    /// Epoch directories deleted by epoch GC (periodic, on new epochs, at start-up).
    pub epochs_reclaimed: u64,
    /// Bytes of storage their files held (on tmpfs and hugetlbfs: memory given back).
    pub bytes_reclaimed: u64,
    /// Times the driver's Aeron client closed and was rebuilt (docs/DESIGN.md, "Driver
    /// process").
    pub aeron_client_recoveries: u64,
}

impl HostFigures {
    /// The provisioner's GC figures with the host's own.
    pub fn new(
        provisioner: &super::provision::ShmProvisioner,
        doorbell_wakeups: u64,
        leases_unpublished: u64,
    ) -> Self {
        Self {
            doorbell_wakeups,
            leases_unpublished,
            epochs_reclaimed: provisioner.reclaimed_epochs(),
            bytes_reclaimed: provisioner.reclaimed_bytes(),
            aeron_client_recoveries: 0,
        }
    }
}

type Reader = fn(&Snapshot<'_>) -> u64;

const COUNTERS: &[(&str, Reader)] = &[
    ("active producer leases", |s| s.producer_leases as u64),
    ("active consumer leases", |s| s.consumer_leases as u64),
    ("attaches ok", |s| s.core.attaches_ok),
    ("attaches rejected UNSUPPORTED", |s| {
        s.core.attaches_unsupported
    }),
    ("attaches rejected INVALID_PARAMS", |s| {
        s.core.attaches_invalid_params
    }),
    ("attaches rejected REJECTED", |s| s.core.attaches_rejected),
    ("attaches rejected INTERNAL_ERROR", |s| {
        s.core.attaches_internal_error
    }),
    ("keepalives", |s| s.core.keepalives),
    ("keepalives ignored", |s| s.core.keepalives_ignored),
    ("lease expiries", |s| s.core.expiries),
    ("lease revocations", |s| s.core.revocations),
    ("epoch bumps", |s| s.core.epoch_bumps),
    ("provisioning failures", |s| s.core.provision_failures),
    ("announces sent", |s| s.core.announces),
    ("malformed messages", |s| s.agent.malformed_total()),
    ("offer retries", |s| s.agent.offer_retries),
    ("publish failures", |s| s.agent.publish_failures),
    ("shutdown requests ignored", |s| {
        s.core.shutdown_requests_ignored
    }),
    ("doorbell wake-ups", |s| s.host.doorbell_wakeups),
    ("leases not published", |s| s.host.leases_unpublished),
    ("epochs reclaimed", |s| s.host.epochs_reclaimed),
    ("bytes reclaimed", |s| s.host.bytes_reclaimed),
    ("aeron client recoveries", |s| {
        s.host.aeron_client_recoveries
    }),
];

impl DriverCounters {
    /// Allocates every counter, labelled `tp-driver[<instance>]: <name>`, and the
    /// endpoints counter of `config`, pumping `client` until the media driver has
    /// allocated them (for start-up).
    pub fn new(client: &AeronClient, config: &DriverConfig) -> Result<Self, TransportError> {
        let mut pending = Self::start(client, config)?;
        client.pump_until(|| "the driver's counters".into(), || pending.poll())
    }

    /// Starts allocating every counter without waiting, for a duty cycle that must not
    /// block (the aeronmd plugin): poll the result once per cycle while the client is pumped.
    pub fn start(
        client: &AeronClient,
        config: &DriverConfig,
    ) -> Result<PendingDriverCounters, TransportError> {
        let instance_id = &config.driver.instance_id;
        let pending = COUNTERS
            .iter()
            .map(|(name, read)| {
                let label = format!("tp-driver[{instance_id}]: {name}");
                Counter::start_add(client, COUNTER_TYPE_ID, &[], &label)
                    .map(|pending| (pending, None, *read))
            })
            .collect::<Result<_, _>>()?;
        let endpoints = DriverEndpoints::new(config, std::process::id());
        let registration = Counter::start_add(
            client,
            ENDPOINTS_COUNTER_TYPE_ID,
            &endpoints.key(),
            &endpoints.label(),
        )?;
        Ok(PendingDriverCounters {
            counters: pending,
            endpoints: (registration, None),
        })
    }

    /// Writes the current figures.
    pub fn update(&self, core: &DriverCore, agent: &AgentCounters, host: HostFigures) {
        let (producer_leases, consumer_leases) = core.lease_counts();
        let snapshot = Snapshot {
            core: core.counters(),
            agent,
            producer_leases,
            consumer_leases,
            host,
        };
        for (counter, read) in &self.counters {
            counter.set(read(&snapshot));
        }
    }

    /// Labels of every counter, for documentation and tests.
    pub fn names() -> impl Iterator<Item = &'static str> {
        COUNTERS.iter().map(|(name, _)| *name)
    }
}

/// The driver's counters while the media driver allocates them ([`DriverCounters::start`]).
pub struct PendingDriverCounters {
    /// Each counter's registration, its counter once allocated, and its reader.
    counters: Vec<(PendingCounter, Option<Counter>, Reader)>,
    /// The endpoints counter's registration and counter once allocated.
    endpoints: (PendingCounter, Option<Counter>),
}

impl PendingDriverCounters {
    /// Every counter once allocated (yielded once), `None` while some are still pending.
    /// Never blocks.
    pub fn poll(&mut self) -> Result<Option<DriverCounters>, TransportError> {
        let mut all = !self.counters.is_empty();
        for (pending, counter, _) in &mut self.counters {
            if counter.is_none() {
                *counter = pending.poll()?;
            }
            all &= counter.is_some();
        }
        let (pending, endpoints) = &mut self.endpoints;
        if endpoints.is_none() {
            *endpoints = pending.poll()?;
        }
        let Some(endpoints) = endpoints.take_if(|_| all) else {
            return Ok(None);
        };
        endpoints.set(u64::from(std::process::id()));
        let counters = self
            .counters
            .drain(..)
            .filter_map(|(_, counter, read)| Some((counter?, read)))
            .collect();
        Ok(Some(DriverCounters {
            counters,
            _endpoints: endpoints,
        }))
    }
}
