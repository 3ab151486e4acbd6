//! Whether the mapped regions still belong to a live, well-behaved writer (Wire Spec
//! §15.1, §15.2, §15.3, §15.14):
//!
//! - The driver refreshes the header ring superblock's `activity_timestamp_ns` once per
//!   announce period; a value older than the liveness timeout means the regions are dead
//!   (§15.14 "on expiry, unmap and await new epoch"). Checked once per announce period.
//! - A sequence that goes back within an epoch is a remap requirement (§15.2 "Consumers
//!   treat any regression of epoch or seq as a remap requirement"). A descriptor alone
//!   cannot prove it (a stale or forged descriptor names an old sequence too), so the
//!   slot decides: the regression is real when the slot of the last confirmed sequence
//!   now holds a lower one — `seq_commit` decreased for the same slot (§15.3), which only
//!   the writer of the regions can do.

use crate::client::mapping::MappedEpoch;
use crate::shm::layout::header_index;
use crate::shm::seqlock::logical_sequence;

/// Paces the activity check and remembers its timeout.
#[derive(Debug, Clone)]
pub(crate) struct ActivityWatch {
    /// Age beyond which the regions are dead; `None` disables the check.
    timeout_ns: Option<u64>,
    period_ns: u64,
    next_check_ns: u64,
}

impl ActivityWatch {
    pub(crate) fn new(timeout_ns: Option<u64>, period_ns: u64) -> Self {
        Self {
            timeout_ns,
            period_ns: period_ns.max(1),
            next_check_ns: 0,
        }
    }

    /// When due, reads the header superblock's activity timestamp; returns its age when
    /// it is older than the timeout. A timestamp ahead of `now_ns` (another clock, e.g.
    /// a driver stamping wall-clock time) is never judged stale.
    pub(crate) fn stale_age(&mut self, mapped: &MappedEpoch, now_ns: u64) -> Option<u64> {
        let timeout_ns = self.timeout_ns?;
        if now_ns < self.next_check_ns {
            return None;
        }
        self.next_check_ns = now_ns.saturating_add(self.period_ns);
        let age = now_ns.saturating_sub(mapped.activity_timestamp_ns());
        (age > timeout_ns).then_some(age)
    }

    /// Checks again at the next call (after a fresh mapping).
    pub(crate) fn restart(&mut self) {
        self.next_check_ns = 0;
    }
}

/// Whether a descriptor for `seq`, below the last confirmed sequence `last`, shows that
/// the writer's sequence went back. Slot values only grow while the writer counts up, so
/// either slot proves it:
/// - the slot of `last` holds a lower sequence now;
/// - `seq` is a full ring or more behind `last`, so its slot was already reused for a
///   later lap when `last` was written, yet it holds `seq` or less now.
#[inline]
pub(crate) fn sequence_regressed(mapped: &MappedEpoch, last: u64, seq: u64) -> bool {
    if seq >= last {
        return false;
    }
    let nslots = mapped.header_nslots();
    let at = |s: u64| logical_sequence(mapped.seq_commit(header_index(s, nslots)).load());
    at(last) < last || (last - seq >= u64::from(nslots) && at(seq) <= seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::grant::{LeaseGrant, PoolGrant};
    use crate::config::{DriverConfig, NoEnv};
    use crate::driver::core::Provisioner;
    use crate::driver::provision::ShmProvisioner;
    use crate::shm::layout::LAYOUT_VERSION;
    use crate::shm::open::{Access, AllowedBaseDirs};
    use crate::shm::uri::RegionUri;

    /// A provisioned epoch (a ring of 4) in `dir`, with the provisioner that refreshes it.
    fn provisioned(dir: &std::path::Path) -> (ShmProvisioner, LeaseGrant) {
        let config = DriverConfig::from_toml_str(
            &format!(
                "[shm]\nbase_dir = \"{}\"\n[policies]\nprefault_shm = false\n[profiles.p]\nheader_nslots = 4\npayload_pools = [{{ pool_id = 1, stride_bytes = 64 }}]\n",
                dir.display()
            ),
            &NoEnv,
        )
        .expect("config");
        let mut prov = ShmProvisioner::with_user(&config, "tester").expect("provisioner");
        let profile = config.profile("p").expect("profile").clone();
        let layout = prov
            .provision(10000, 1, LAYOUT_VERSION, &profile)
            .expect("provision");
        let grant = LeaseGrant {
            lease_id: 1,
            stream_id: layout.stream_id,
            epoch: layout.epoch,
            layout_version: layout.layout_version,
            header_nslots: layout.header_nslots,
            header_uri: RegionUri::parse(&layout.header_region_uri).expect("uri"),
            pools: layout
                .pools
                .iter()
                .map(|p| PoolGrant {
                    pool_id: p.pool_id,
                    nslots: p.nslots,
                    stride_bytes: p.stride_bytes,
                    uri: RegionUri::parse(&p.region_uri).expect("uri"),
                })
                .collect(),
            lease_expiry_ns: None,
            node_id: None,
        };
        (prov, grant)
    }

    fn map(dir: &std::path::Path, grant: &LeaseGrant, access: Access) -> MappedEpoch {
        let allowed = AllowedBaseDirs::new([dir]).expect("allowed");
        MappedEpoch::map(grant, &allowed, access).expect("maps")
    }

    #[test]
    fn an_activity_timestamp_older_than_the_timeout_is_stale_once_per_period() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut prov, grant) = provisioned(dir.path());
        let mapped = map(dir.path(), &grant, Access::ReadOnly);
        prov.refresh_activity(1_000);
        assert_eq!(mapped.activity_timestamp_ns(), 1_000);
        let mut watch = ActivityWatch::new(Some(500), 1_000);
        assert_eq!(watch.stale_age(&mapped, 1_400), None, "400 ns old: live");
        assert_eq!(
            watch.stale_age(&mapped, 1_600),
            None,
            "not due before 2_400"
        );
        assert_eq!(watch.stale_age(&mapped, 2_400), Some(1_400));
        prov.refresh_activity(2_300);
        watch.restart();
        assert_eq!(watch.stale_age(&mapped, 2_400), None, "refreshed");
        // A timestamp from another clock, ahead of ours, is never judged stale.
        prov.refresh_activity(u64::MAX / 2);
        watch.restart();
        assert_eq!(watch.stale_age(&mapped, 10_000), None);
        let mut off = ActivityWatch::new(None, 100);
        prov.refresh_activity(0);
        assert_eq!(off.stale_age(&mapped, u64::MAX), None, "disabled");
    }

    #[test]
    fn only_a_slot_that_went_back_proves_a_sequence_regression() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (_prov, grant) = provisioned(dir.path());
        let writer = map(dir.path(), &grant, Access::ReadWrite);
        let reader = map(dir.path(), &grant, Access::ReadOnly);
        for seq in 0..6 {
            writer.seq_commit(header_index(seq, 4)).store_committed(seq);
        }
        // A stale or forged descriptor for 3 while the ring holds 2..=5: no regression.
        assert!(!sequence_regressed(&reader, 5, 3));
        assert!(
            !sequence_regressed(&reader, 5, 5),
            "a duplicate is not a regression"
        );
        assert!(!sequence_regressed(&reader, 5, 9));
        // The writer starts over at 0 in the same epoch: slot of 5 now holds 1.
        writer.seq_commit(header_index(1, 4)).store_committed(1);
        assert!(sequence_regressed(&reader, 5, 1));
        writer.seq_commit(header_index(5, 4)).store_in_progress(1);
        assert!(
            sequence_regressed(&reader, 5, 0),
            "an in-progress lower sequence too"
        );
        // Restarted after the ring wrapped: its first frame is already proof.
        for seq in 0..11 {
            writer.seq_commit(header_index(seq, 4)).store_committed(seq);
        }
        assert!(
            !sequence_regressed(&reader, 10, 0),
            "slot 0 holds 8: a stale descriptor"
        );
        writer.seq_commit(header_index(0, 4)).store_committed(0);
        assert!(sequence_regressed(&reader, 10, 0));
        assert!(
            !sequence_regressed(&reader, 10, 7),
            "less than a ring behind: unproven"
        );
    }
}
