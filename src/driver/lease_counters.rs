//! The lease table, published for observers: one Aeron counter per live lease in the media
//! driver's counters file, as Aeron itself publishes one counter per client. The Driver
//! Model's messages never carry the lease table (who holds which lease, until when), so an
//! operator tool (`tp status`) or Aeron's own `AeronStat` reads it here without taking a
//! lease or speaking to the driver.
//!
//! Each counter has type id [`LEASE_COUNTER_TYPE_ID`], a binary [`LeaseKey`] (lease id,
//! stream, client, role, node id, per-consumer streams, grant time, the driver's control
//! stream), a label naming the same fields, and as its value the lease's expiry deadline
//! (`CLOCK_MONOTONIC` nanoseconds), refreshed on every accepted keepalive.
//!
//! A lease is published once it has lived [`PUBLISH_AFTER_NS`], and at most
//! [`PUBLISH_PER_SECOND`] leases are published a second: every counter the media driver
//! adds or removes is broadcast to every Aeron client of that media driver, and a client
//! that falls a whole broadcast buffer behind is closed by its library. Attach/detach
//! churn (tens of thousands a second in the attach benchmark) published one for one closed
//! the benchmark's own client; observers want the leases that live, not the churn.
//!
//! At most [`MAX_LEASE_COUNTERS`] leases are published at once: Aeron's counters file has a
//! fixed number of slots (8,192 with the default 1 MiB values buffer) shared with every
//! publication and subscription of the media driver. Leases beyond the limit, or refused by
//! a full counters file, are counted (the driver counter "leases not published") and stay
//! unpublished for their life. docs/DESIGN.md ("Lease table for observers") has the reasons.

use std::collections::HashMap;

use super::core::DriverCore;
use crate::protocol::driver::Role;
use crate::transport::{AeronClient, Counter, PendingCounter};

/// Aeron counter type id of a published lease.
pub const LEASE_COUNTER_TYPE_ID: i32 = 4_101;
/// Leases published at once at most.
pub const MAX_LEASE_COUNTERS: usize = 4_096;
/// A lease gets its counter once it is this old (and still live).
pub const PUBLISH_AFTER_NS: u64 = 1_000_000_000;
/// Counters added per second at most (a token bucket of one second's worth).
pub const PUBLISH_PER_SECOND: u64 = 1_000;
/// Encoded length of a [`LeaseKey`].
pub const LEASE_KEY_LEN: usize = 48;
/// Layout version of [`LeaseKey`], its last four bytes.
pub const LEASE_KEY_VERSION: u32 = 1;

/// What changed in the lease table, as the agent saw it ([`super::agent::DriverAgent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// A lease was granted (attach answered OK).
    Granted(u64),
    /// A keepalive extended a lease.
    Renewed(u64),
    /// A consumer was assigned per-consumer streams (`ConsumerConfig`).
    Reassigned {
        /// The consumer's stream.
        stream_id: u32,
        /// The consumer's client id.
        client_id: u32,
    },
    /// A lease ended (detach, expiry, revoke).
    Ended(u64),
}

/// The key of a lease counter (little-endian, [`LEASE_KEY_LEN`] bytes):
///
/// | offset | type | field |
/// | --- | --- | --- |
/// | 0 | u64 | lease id |
/// | 8 | u32 | stream id |
/// | 12 | u32 | client id |
/// | 16 | u8 | role (1 producer, 2 consumer, as `Role`) |
/// | 20 | u32 | node id (`u32::MAX`: none) |
/// | 24 | u32 | per-consumer descriptor stream id (0: none) |
/// | 28 | u32 | per-consumer control stream id (0: none) |
/// | 32 | u64 | grant time, `CLOCK_MONOTONIC` ns |
/// | 40 | u32 | the driver's control stream id |
/// | 44 | u32 | key layout version ([`LEASE_KEY_VERSION`]) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseKey {
    /// Lease id.
    pub lease_id: u64,
    /// Stream the lease is for.
    pub stream_id: u32,
    /// Client holding it.
    pub client_id: u32,
    /// Producer or consumer.
    pub role: Role,
    /// Node id granted with the lease.
    pub node_id: Option<u32>,
    /// Per-consumer descriptor stream id.
    pub descriptor_stream_id: Option<u32>,
    /// Per-consumer control stream id.
    pub control_stream_id: Option<u32>,
    /// When the lease was granted (monotonic ns).
    pub granted_ns: u64,
    /// Control stream id of the driver that granted it (tells drivers sharing a media
    /// driver apart).
    pub driver_control_stream_id: u32,
}

/// Why bytes are not a [`LeaseKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseKeyError {
    /// Fewer bytes than a key.
    #[error("lease counter key is {0} bytes, shorter than {LEASE_KEY_LEN}")]
    Short(usize),
    /// Another layout version.
    #[error("lease counter key version {0} is not {LEASE_KEY_VERSION}")]
    Version(u32),
}

impl LeaseKey {
    /// The key's bytes.
    pub fn encode(&self) -> [u8; LEASE_KEY_LEN] {
        let mut b = [0u8; LEASE_KEY_LEN];
        b[0..8].copy_from_slice(&self.lease_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.stream_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.client_id.to_le_bytes());
        b[16] = self.role.raw();
        b[20..24].copy_from_slice(&self.node_id.unwrap_or(u32::MAX).to_le_bytes());
        b[24..28].copy_from_slice(&self.descriptor_stream_id.unwrap_or(0).to_le_bytes());
        b[28..32].copy_from_slice(&self.control_stream_id.unwrap_or(0).to_le_bytes());
        b[32..40].copy_from_slice(&self.granted_ns.to_le_bytes());
        b[40..44].copy_from_slice(&self.driver_control_stream_id.to_le_bytes());
        b[44..48].copy_from_slice(&LEASE_KEY_VERSION.to_le_bytes());
        b
    }

    /// Reads a key (Aeron hands out the whole key area; bytes past the key are ignored).
    pub fn decode(bytes: &[u8]) -> Result<Self, LeaseKeyError> {
        let b = bytes
            .get(..LEASE_KEY_LEN)
            .ok_or(LeaseKeyError::Short(bytes.len()))?;
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);
        let version = u32_at(44);
        if version != LEASE_KEY_VERSION {
            return Err(LeaseKeyError::Version(version));
        }
        let nonzero = |v: u32| (v != 0).then_some(v);
        Ok(Self {
            lease_id: u64_at(0),
            stream_id: u32_at(8),
            client_id: u32_at(12),
            role: Role::from_raw(b[16]),
            node_id: Some(u32_at(20)).filter(|&v| v != u32::MAX),
            descriptor_stream_id: nonzero(u32_at(24)),
            control_stream_id: nonzero(u32_at(28)),
            granted_ns: u64_at(32),
            driver_control_stream_id: u32_at(40),
        })
    }

    /// The counter's label: the key's fields in words, for `AeronStat`.
    pub fn label(&self, instance_id: &str) -> String {
        let mut label = format!(
            "tp-driver[{instance_id}] lease: stream={} client={} role={} lease={}",
            self.stream_id, self.client_id, self.role, self.lease_id
        );
        if let Some(id) = self.descriptor_stream_id {
            label.push_str(&format!(" descriptor-stream={id}"));
        }
        if let Some(id) = self.node_id {
            label.push_str(&format!(" node={id}"));
        }
        label
    }
}

enum State {
    Pending(PendingCounter),
    Live(Counter),
}

struct Published {
    granted_ns: u64,
    state: State,
}

/// The published lease table of one driver: applies [`LeaseEvent`]s to counters.
pub struct LeaseCounters {
    limit: usize,
    instance_id: String,
    control_stream_id: u32,
    published: HashMap<u64, Published>,
    pending: Vec<u64>,
    /// Leases granted and not yet old enough to publish, oldest first (ended ones are
    /// skipped when they reach the front).
    waiting: std::collections::VecDeque<(u64, u64)>,
    /// Counters that may be added now (refilled at [`PUBLISH_PER_SECOND`]).
    tokens: u64,
    refilled_ns: u64,
    unpublished: u64,
    warned: bool,
}

impl LeaseCounters {
    /// An empty table for the driver `instance_id` listening on `control_stream_id`.
    pub fn new(instance_id: &str, control_stream_id: u32) -> Self {
        Self::with_limit(instance_id, control_stream_id, MAX_LEASE_COUNTERS)
    }

    /// As [`LeaseCounters::new`], publishing at most `limit` leases at once.
    pub fn with_limit(instance_id: &str, control_stream_id: u32, limit: usize) -> Self {
        Self {
            limit,
            instance_id: instance_id.to_owned(),
            control_stream_id,
            published: HashMap::new(),
            pending: Vec::new(),
            waiting: std::collections::VecDeque::new(),
            tokens: PUBLISH_PER_SECOND,
            refilled_ns: 0,
            unpublished: 0,
            warned: false,
        }
    }

    /// Leases granted that got no counter (limit reached or counters file full).
    pub fn unpublished(&self) -> u64 {
        self.unpublished
    }

    /// Leases published or being published.
    pub fn published(&self) -> usize {
        self.published.len()
    }

    /// Forgets every counter (they belonged to an Aeron client that closed) and queues
    /// every live lease of `core` to be published again through the next client, at the
    /// usual rate, as if each had been granted [`PUBLISH_AFTER_NS`] before `now_ns`.
    pub fn republish_all(&mut self, core: &DriverCore, now_ns: u64) {
        self.published.clear();
        self.pending.clear();
        let due = now_ns.saturating_sub(PUBLISH_AFTER_NS);
        let mut leases: Vec<u64> = core.leases().map(|lease| lease.lease_id).collect();
        leases.sort_unstable();
        self.waiting = leases.into_iter().map(|id| (id, due)).collect();
    }

    /// Applies one event; `core` has the lease's fields, `now_ns` dates a grant.
    pub fn apply(
        &mut self,
        client: &AeronClient,
        core: &DriverCore,
        event: LeaseEvent,
        now_ns: u64,
    ) {
        match event {
            LeaseEvent::Granted(lease_id) => self.waiting.push_back((lease_id, now_ns)),
            LeaseEvent::Renewed(lease_id) => {
                if let (Some(p), Some(lease)) =
                    (self.published.get(&lease_id), core.lease(lease_id))
                {
                    if let State::Live(counter) = &p.state {
                        counter.set(lease.expiry_ns);
                    }
                }
            }
            LeaseEvent::Reassigned {
                stream_id,
                client_id,
            } => {
                let lease_id = core.stream(stream_id).and_then(|s| {
                    s.consumers
                        .iter()
                        .copied()
                        .find(|id| core.lease(*id).is_some_and(|l| l.client_id == client_id))
                });
                // Keys are immutable once allocated: replace the counter.
                if let Some(old) = lease_id.and_then(|id| self.published.remove(&id)) {
                    self.publish(client, core, lease_id.unwrap_or_default(), old.granted_ns);
                }
            }
            LeaseEvent::Ended(lease_id) => {
                // Dropping the counter (or its pending registration) frees it.
                self.published.remove(&lease_id);
            }
        }
    }

    /// Publishes the leases that became old enough (within the rate), and completes
    /// allocations the media driver has answered; call every duty cycle while the client
    /// is pumped.
    pub fn poll(&mut self, client: &AeronClient, core: &DriverCore, now_ns: u64) {
        self.publish_due(client, core, now_ns);
        if self.pending.is_empty() {
            return;
        }
        let mut pending = std::mem::take(&mut self.pending);
        pending.retain(|lease_id| {
            let Some(entry) = self.published.get_mut(lease_id) else {
                return false;
            };
            let State::Pending(registration) = &mut entry.state else {
                return false;
            };
            match registration.poll() {
                Ok(None) => true,
                Ok(Some(counter)) => {
                    if let Some(lease) = core.lease(*lease_id) {
                        counter.set(lease.expiry_ns);
                    }
                    entry.state = State::Live(counter);
                    false
                }
                Err(error) => {
                    self.published.remove(lease_id);
                    self.unpublished += 1;
                    if !self.warned {
                        self.warned = true;
                        tracing::warn!(%error, lease_id, "the media driver refused a lease counter; leases it refuses stay unpublished");
                    }
                    false
                }
            }
        });
        self.pending = pending;
    }

    /// Publishes waiting leases at least [`PUBLISH_AFTER_NS`] old, oldest first, as the
    /// rate allows; leases that ended meanwhile are dropped.
    fn publish_due(&mut self, client: &AeronClient, core: &DriverCore, now_ns: u64) {
        let Some(&(_, oldest)) = self.waiting.front() else {
            return;
        };
        if now_ns.saturating_sub(oldest) < PUBLISH_AFTER_NS {
            return;
        }
        let elapsed = now_ns.saturating_sub(self.refilled_ns);
        let refill = elapsed.saturating_mul(PUBLISH_PER_SECOND) / 1_000_000_000;
        if refill > 0 {
            self.tokens = (self.tokens + refill).min(PUBLISH_PER_SECOND);
            self.refilled_ns = now_ns;
        }
        while let Some(&(lease_id, granted_ns)) = self.waiting.front() {
            if now_ns.saturating_sub(granted_ns) < PUBLISH_AFTER_NS {
                break;
            }
            if core.lease(lease_id).is_none() {
                self.waiting.pop_front();
                continue;
            }
            if self.tokens == 0 {
                break;
            }
            self.waiting.pop_front();
            if self.published.len() >= self.limit {
                self.not_published(lease_id, "the lease counter limit is reached");
                continue;
            }
            self.tokens -= 1;
            self.publish(client, core, lease_id, granted_ns);
        }
    }

    fn publish(&mut self, client: &AeronClient, core: &DriverCore, lease_id: u64, granted_ns: u64) {
        let Some(lease) = core.lease(lease_id) else {
            return;
        };
        let key = LeaseKey {
            lease_id,
            stream_id: lease.stream_id,
            client_id: lease.client_id,
            role: lease.role,
            node_id: lease.node_id,
            descriptor_stream_id: lease.descriptor_stream.as_ref().map(|(id, _)| *id),
            control_stream_id: lease.control_stream.as_ref().map(|(id, _)| *id),
            granted_ns,
            driver_control_stream_id: self.control_stream_id,
        };
        let label = key.label(&self.instance_id);
        match Counter::start_add(client, LEASE_COUNTER_TYPE_ID, &key.encode(), &label) {
            Ok(registration) => {
                self.published.insert(
                    lease_id,
                    Published {
                        granted_ns,
                        state: State::Pending(registration),
                    },
                );
                self.pending.push(lease_id);
            }
            Err(error) => self.not_published(lease_id, &error.to_string()),
        }
    }

    fn not_published(&mut self, lease_id: u64, why: &str) {
        self.unpublished += 1;
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                lease_id,
                limit = self.limit,
                why,
                "a lease is not published as a counter; further ones are counted, not logged"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_key_round_trips_and_names_absent_fields() {
        let key = LeaseKey {
            lease_id: 0x0102_0304_0506_0708,
            stream_id: 10_000,
            client_id: 7,
            role: Role::Consumer,
            node_id: None,
            descriptor_stream_id: Some(1_100),
            control_stream_id: None,
            granted_ns: 123_456_789,
            driver_control_stream_id: 1_000,
        };
        let bytes = key.encode();
        assert_eq!(&bytes[0..8], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&bytes[20..24], &u32::MAX.to_le_bytes());
        let mut area = [0u8; 112];
        area[..LEASE_KEY_LEN].copy_from_slice(&bytes);
        assert_eq!(LeaseKey::decode(&area), Ok(key.clone()));
        assert_eq!(
            key.label("a"),
            "tp-driver[a] lease: stream=10000 client=7 role=CONSUMER lease=72623859790382856 descriptor-stream=1100"
        );
    }

    #[cfg(feature = "embedded-media-driver")]
    #[test]
    fn leases_past_the_limit_stay_unpublished_and_ended_ones_free_their_counters() {
        use crate::driver::core::tests::{config, FakeProvisioner, BASE_CONFIG};
        use crate::driver::core::{CoreEnv, Output};
        use crate::protocol::driver::{HugepagesPolicy, ShmAttachRequest};
        use crate::transport::MediaDriverOptions;
        use std::time::{Duration, Instant};

        let dir = tempfile::tempdir().expect("a temporary directory");
        let client = AeronClient::start_embedded(&MediaDriverOptions {
            dir: Some(dir.path().join("aeron")),
            ..Default::default()
        })
        .expect("an embedded media driver");
        let mut prov = FakeProvisioner::default();
        let env = CoreEnv {
            lease_id_seed: 1_000,
            base_is_hugetlbfs: false,
        };
        let mut core = DriverCore::new(&config(BASE_CONFIG), env);
        core.start(0, &mut prov).expect("start");
        let mut leases = Vec::new();
        for client_id in 1..=3 {
            let req = ShmAttachRequest {
                correlation_id: i64::from(client_id),
                stream_id: 10_000,
                client_id,
                role: Role::Consumer,
                expected_layout_version: 0,
                publish_mode: None,
                require_hugepages: HugepagesPolicy::Unspecified,
                desired_node_id: None,
            };
            core.on_attach(&req, 0, &mut prov);
            leases.extend(core.drain_outputs().filter_map(|o| match o {
                Output::AttachResponse(r) => r.grant.map(|g| g.lease_id),
                _ => None,
            }));
        }
        assert_eq!(leases.len(), 3);

        let mut table = LeaseCounters::with_limit("t", 1_000, 2);
        for lease_id in &leases {
            table.apply(&client, &core, LeaseEvent::Granted(*lease_id), 5);
        }
        // Younger than PUBLISH_AFTER_NS: nothing yet.
        table.poll(&client, &core, 5 + PUBLISH_AFTER_NS - 1);
        assert_eq!((table.published(), table.unpublished()), (0, 0));
        let due = 5 + PUBLISH_AFTER_NS;
        table.poll(&client, &core, due);
        assert_eq!((table.published(), table.unpublished()), (2, 1));
        let published_ids = |client: &AeronClient| {
            let mut ids: Vec<u64> = client
                .counters()
                .iter()
                .filter(|c| c.type_id == LEASE_COUNTER_TYPE_ID)
                .filter_map(|c| LeaseKey::decode(&c.key).ok().map(|k| k.lease_id))
                .collect();
            ids.sort_unstable();
            ids
        };
        let wait_for = |table: &mut LeaseCounters, expected: &[u64]| {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                client.do_work().expect("pumping the client");
                table.poll(&client, &core, due);
                if published_ids(&client) == expected {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "lease counters {:?}, expected {expected:?}",
                    published_ids(&client)
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wait_for(&mut table, &leases[..2]);
        table.apply(&client, &core, LeaseEvent::Ended(leases[0]), 6);
        wait_for(&mut table, &leases[1..2]);
        assert_eq!(table.published(), 1);

        // After the Aeron client was rebuilt: every lease the core still holds is queued
        // again (the core never saw leases[0] end) and published within the limit.
        table.republish_all(&core, due);
        wait_for(&mut table, &leases[..2]);
        assert_eq!((table.published(), table.unpublished()), (2, 2));

        // A lease that ended before it was old enough (the core no longer has it) never
        // gets a counter: attach/detach churn adds nothing to the media driver's
        // broadcasts.
        let mut never = LeaseCounters::new("n", 1_000);
        never.apply(&client, &core, LeaseEvent::Granted(u64::MAX), 10);
        never.poll(&client, &core, 10 + PUBLISH_AFTER_NS);
        assert_eq!((never.published(), never.unpublished()), (0, 0));
    }

    #[test]
    fn lease_key_rejects_short_and_foreign_keys() {
        assert_eq!(LeaseKey::decode(&[0; 10]), Err(LeaseKeyError::Short(10)));
        assert_eq!(
            LeaseKey::decode(&[0; LEASE_KEY_LEN]),
            Err(LeaseKeyError::Version(0))
        );
    }
}
