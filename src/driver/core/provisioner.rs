//! The core's view of the filesystem: an interface the host implements (real files in
//! `driver::provision`, an in-memory fake in tests).

use super::types::EpochLayout;
use crate::config::Profile;

/// Why the files of an epoch could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProvisionFailure(pub String);

/// Creates and retires the SHM files of stream epochs.
pub trait Provisioner {
    /// Highest epoch ever used for `stream_id` under the base directory (0 if none);
    /// called once per stream when the core first sees it.
    fn highest_epoch(&mut self, stream_id: u32) -> Result<u64, ProvisionFailure>;

    /// Creates the files of `epoch` for `stream_id` with `profile`'s geometry and
    /// returns their layout. `epoch` is always greater than every epoch used before. The
    /// layout may carry a later epoch when the provisioner had to move past numbers it
    /// could not use (their names taken by entries it did not create); the core then
    /// continues numbering from it.
    fn provision(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<EpochLayout, ProvisionFailure>;

    /// A producer was granted `epoch` of `stream_id` (its current epoch): make it ready
    /// for frames (prefault it, `policies.prefault_shm`) without holding up the caller
    /// for longer than a quick check; an error refuses the attach. The work itself may
    /// finish later; failures come back through [`Provisioner::take_failed_epochs`].
    fn prepare_for_producer(
        &mut self,
        _stream_id: u32,
        _epoch: u64,
    ) -> Result<(), ProvisionFailure> {
        Ok(())
    }

    /// Epochs whose preparation failed after [`Provisioner::prepare_for_producer`]
    /// accepted them, as `(stream_id, epoch, why)`.
    fn take_failed_epochs(&mut self) -> Vec<(u32, u64, ProvisionFailure)> {
        Vec::new()
    }

    /// `stream_id` moved to `current_epoch`; older epochs may be collected.
    fn retire_older(&mut self, stream_id: u32, current_epoch: u64);

    /// Refreshes `activity_timestamp_ns` in the superblocks of every current epoch
    /// (Wire Spec §7.1); called at the announce cadence.
    fn refresh_activity(&mut self, _now_ns: u64) {}

    /// One bounded step of periodic epoch GC, called every duty cycle; returns the work
    /// done (epoch directories deleted). Must be cheap when nothing is due.
    fn collect(&mut self, _now_ns: u64) -> usize {
        0
    }
}
