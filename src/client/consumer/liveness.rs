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
/// the writer's sequence went back: the slot of `last` holds a lower sequence now.
#[inline]
pub(crate) fn sequence_regressed(mapped: &MappedEpoch, last: u64, seq: u64) -> bool {
    if seq >= last {
        return false;
    }
    let index = header_index(last, mapped.header_nslots());
    logical_sequence(mapped.seq_commit(index).load()) < last
}
