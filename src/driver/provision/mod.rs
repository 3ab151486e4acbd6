//! Real-file provisioning of stream epochs: [`ShmProvisioner`], the
//! [`Provisioner`] the driver lends to its core.
//!
//! The SHM driver is the only party that creates, truncates or unlinks backing files
//! (Driver Model §3). For every new epoch (§6, §10) it creates
//!
//! ```text
//! <shm.base_dir>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>/header.ring
//! <shm.base_dir>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>/<pool_id>.pool
//! ```
//!
//! (Wire Spec §15.21a.3, Driver Model §15) with exact sizes (Wire Spec §6, §8.1, §9),
//! writes the 64-byte superblock (Wire Spec §7.1; pid and `CLOCK_MONOTONIC` start and
//! activity timestamps, §15.14) and returns `shm:file` region URIs (Wire Spec §15.22),
//! with `require_hugepages=true` when the base directory is on hugetlbfs.
//!
//! Rules enforced here:
//! - **Exclusive creation.** Files are created `O_CREAT | O_EXCL | O_NOFOLLOW`; the epoch
//!   directory must not exist. An existing file, directory or symlink is never reused or
//!   followed: when one occupies the name of the epoch being made (or a name inside its
//!   fresh directory) the provisioner logs it, removes what it made of that epoch and
//!   moves on to the next epoch number in the same provision (at most
//!   `MAX_OCCUPIED_EPOCHS` times); the layout it returns says which epoch it made.
//! - **Trusted directories** (see `trust`): the base directory and `tensorpool-<user>`
//!   must not be writable by other users (refused at start-up unless
//!   `shm.allow_shared_dirs`); directories the driver owns are tightened to its mode.
//! - **Modes** (Wire Spec §15.10, §15.21a.6): files get exactly `shm.permissions_mode`
//!   via `fchmod` after creation (the umask has no say); every directory the
//!   provisioner creates gets the matching directory mode (`660` → `770`, `600` →
//!   `700`; never any "other" bit), see [`dir_mode_for`].
//! - **Sizes** are exactly superblock + slots, except on hugetlbfs (Wire Spec §15.22),
//!   which only accepts whole huge pages: there the file is rounded up to the next huge
//!   page and the region occupies its start.
//! - **Prefault / mlock** (Driver Model §17): with `prefault_shm` the file's space is
//!   reserved (`fallocate`, so a full filesystem is an `ENOSPC` error, not a `SIGBUS`)
//!   and every page is touched before the superblock is written; with `mlock_shm` the
//!   mapping is locked and a failure is a [`ProvisionFailure`] (fatal per the spec).
//! - **Liveness** (Wire Spec §7.1, §15.14; Driver Model §3): the mappings of each
//!   stream's current epoch stay open so [`ShmProvisioner::refresh_activity`] can store
//!   `activity_timestamp_ns` atomically.
//! - **Epochs across restarts** (Driver Model §6, §10, §14): the highest epoch is the
//!   maximum of the numeric directory names under the stream directory and the
//!   high-water file [`HIGH_WATER_FILE`], written atomically (temporary file + rename)
//!   before an epoch's files; `provision` refuses an epoch not above it. The driver is
//!   the only writer under its base directory, so the provisioner reads that maximum from
//!   disk once per stream (in `highest_epoch`, or in the first `provision`) and then
//!   remembers what it wrote; any failure makes it read the disk again next time.
//! - **Durability**: on a filesystem that outlives the kernel the high-water file and its
//!   directory are synced and superblocks are flushed. On tmpfs and hugetlbfs (the usual
//!   base) those calls would do nothing and are skipped: the contents end with the
//!   kernel, every mapping sees a write at once, and the rename alone survives a crashed
//!   driver.
//! - **Cleanup**: a failed provision removes the partially created epoch directory;
//!   epoch GC (`policies.epoch_gc_*`, Wire Spec §15.21a.7) and start-up
//!   delete-and-recreate ([`ShmProvisioner::remove_existing_epochs`], Driver Model §14)
//!   only delete real directories and regular files inside the canonical stream
//!   directory, never through a symlink.
//! - **Off the response path**: a new epoch is provisioned while its attach (or detach)
//!   waits for the answer, so that path does only the file work the epoch needs. After
//!   a GC scan the provisioner knows when the next older epoch reaches
//!   `epoch_gc_min_age` and does not scan again before then; the previous epoch's
//!   mappings are released at the next [`ShmProvisioner::refresh_activity`] (announce
//!   cadence), so their `munmap` (a TLB shootdown on every core the process runs on)
//!   happens between requests.
//!
//! Every failure message names the path and carries the OS error text, e.g.
//! `creating /dev/shm/tensorpool/tensorpool-alice/default/10000/3/header.ring: No space
//! left on device (os error 28)`.

mod ahead;
mod epochs;
mod files;
mod gc;
mod trust;

use ahead::{AheadWorker, Finished, Job, PrefaultJob, Task};
pub use epochs::HIGH_WATER_FILE;
pub use files::dir_mode_for;
use files::CreateError;
pub use gc::{plan_gc, GcReport, GcVerdict};
use trust::DirPolicy;

use crate::clock::monotonic_now_ns;
use crate::config::{DriverConfig, Profile};
use crate::driver::core::{EpochLayout, PoolLayout, ProvisionFailure, Provisioner};
use crate::driver::ownership::{Claim, OwnerLock};
use crate::shm::layout::{header_ring_len, is_valid_stride, payload_pool_len, ExpectedRegion};
use crate::shm::open::is_hugetlbfs;
use crate::shm::paths::CanonicalLayout;
use crate::shm::uri::RegionUri;
use files::{Modes, OpenRegion, RegionOptions, RegionPlan};
use gc::{GcPolicy, StreamDir};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Epochs a provision may move past when entries the driver did not create occupy their
/// names (each is logged): enough for a few planted entries, bounded so that a directory
/// filling up faster than the driver can count fails the attach instead of spinning.
const MAX_OCCUPIED_EPOCHS: u32 = 8;

/// Epoch directories one periodic GC step deletes at most: freeing a directory's pages
/// is the costly part, so a burst of retired epochs is given back over several duty
/// cycles instead of stalling one.
pub const GC_STEP_MAX_EPOCHS: usize = 2;

/// `"<what> <path>: <error>"`, the shape of every failure message.
fn fail(what: &str, path: &Path, err: impl Display) -> ProvisionFailure {
    ProvisionFailure(format!("{what} {}: {err}", path.display()))
}

/// The open mappings of a stream's current epoch.
#[derive(Debug)]
struct OpenEpoch {
    epoch: u64,
    regions: Vec<OpenRegion>,
    /// Prefaulted, or handed to the provisioning thread to be.
    prefaulted: bool,
}

/// What the provisioner remembers about a stream between epochs.
#[derive(Debug, Default, Clone, Copy)]
struct StreamMemo {
    /// Highest epoch used, as last read from disk or written here.
    high_water: Option<u64>,
    /// The user, namespace and stream directories exist.
    dirs_ready: bool,
    /// The last GC scan and how long after it no older epoch can reach the minimum age.
    gc_quiet: Option<(SystemTime, Duration)>,
}

impl StreamMemo {
    /// How long from `now` until a GC scan could find an epoch old enough to delete;
    /// `None` when one could now.
    fn gc_wait(&self, now: SystemTime) -> Option<Duration> {
        let (scanned, quiet) = self.gc_quiet?;
        let since = now.duration_since(scanned).ok()?;
        quiet.checked_sub(since).filter(|wait| !wait.is_zero())
    }

    /// Whether a GC scan at `now` could find an epoch old enough to delete.
    fn gc_due(&self, now: SystemTime) -> bool {
        match self.gc_quiet {
            None => true,
            // A clock that went backwards also rescans.
            Some((scanned, quiet)) => now.duration_since(scanned).map_or(true, |t| t >= quiet),
        }
    }
}

/// Creates and retires the SHM files of stream epochs on the real filesystem.
#[derive(Debug)]
pub struct ShmProvisioner {
    layout: CanonicalLayout,
    modes: Modes,
    /// Who may write the directories the files live in.
    dirs: DirPolicy,
    hugetlbfs: bool,
    /// Writes are flushed to survive a crash: the base directory is not in memory.
    sync: bool,
    huge_page_size: u64,
    touch_step: u64,
    prefault: bool,
    mlock: bool,
    gc: GcPolicy,
    open: BTreeMap<u32, OpenEpoch>,
    /// Mappings of epochs streams moved off, released at the next `refresh_activity`.
    retired: Vec<OpenEpoch>,
    memo: BTreeMap<u32, StreamMemo>,
    gc_errors: u64,
    /// When [`ShmProvisioner::collect_step`] next looks for due streams.
    gc_next_check_ns: u64,
    /// How long it waits when nothing was left (the announce period).
    gc_check_period_ns: u64,
    reclaimed_epochs: u64,
    reclaimed_bytes: u64,
    /// `policies.provision_ahead` (turned off if the worker thread cannot run).
    provision_ahead: bool,
    /// The provisioning thread (prefaults, spare epochs), started with its first task.
    ahead: Option<AheadWorker>,
    /// Epochs whose prefault failed on the provisioning thread, for the core to act on.
    failed_epochs: Vec<(u32, u64, ProvisionFailure)>,
    /// Bytes each epoch handed to the thread for prefaulting may still allocate.
    prefault_pending: BTreeMap<(u32, u64), u64>,
    /// Each stream's spare epoch.
    spares: BTreeMap<u32, Spare>,
    /// Layout version and profile of each stream's last epoch: what its spare is made as.
    shapes: BTreeMap<u32, (u32, Profile)>,
    /// This driver's exclusive claim on the namespace, once made.
    namespace_lock: Option<OwnerLock>,
}

impl ShmProvisioner {
    /// A provisioner for the effective user; creates `shm.base_dir` if missing.
    pub fn new(config: &DriverConfig) -> Result<Self, ProvisionFailure> {
        let layout = CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
            .map_err(|e| ProvisionFailure(e.to_string()))?;
        Self::with_layout(config, layout)
    }

    /// A provisioner for an explicit user name (sanitized); creates the base dir.
    pub fn with_user(config: &DriverConfig, user: &str) -> Result<Self, ProvisionFailure> {
        let layout = CanonicalLayout::with_user(&config.shm.base_dir, user, &config.shm.namespace)
            .map_err(|e| ProvisionFailure(e.to_string()))?;
        Self::with_layout(config, layout)
    }

    fn with_layout(
        config: &DriverConfig,
        layout: CanonicalLayout,
    ) -> Result<Self, ProvisionFailure> {
        let modes = Modes::from_file_mode(config.permissions_mode_bits());
        let dirs = DirPolicy::for_process(modes.file, config.shm.allow_shared_dirs);
        let base = layout.base_dir();
        files::create_dir_levels(base, &dirs)?;
        // The base may be reached through symlinks the operator configured: judge where
        // they lead. Below it the driver follows nothing.
        let base_meta = std::fs::metadata(base).map_err(|e| fail("inspecting", base, e))?;
        dirs.check_trusted("shm.base_dir", base, &base_meta)?;
        let user_dir = layout.user_dir();
        match std::fs::symlink_metadata(&user_dir) {
            Ok(meta) if meta.is_dir() => dirs.check_own_dir(&user_dir, &meta)?,
            Ok(_) => {
                return Err(ProvisionFailure(format!(
                    "refusing {}: it is not a directory (a symlink is never followed);                      remove it and restart",
                    user_dir.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail("inspecting", &user_dir, e)),
        }
        let hugetlbfs =
            is_hugetlbfs(base).map_err(|e| fail("checking the filesystem of", base, e))?;
        let sync =
            !files::is_memory_fs(base).map_err(|e| fail("checking the filesystem of", base, e))?;
        let (huge_page_size, page) = if hugetlbfs {
            let size = files::fs_block_size(base)
                .map_err(|e| fail("reading the huge page size of", base, e))?;
            (size, size)
        } else {
            (0, files::os_page_size())
        };
        let configured = u64::from(config.shm.page_size_bytes);
        let touch_step = if configured == 0 {
            page
        } else {
            configured.min(page)
        };
        let policies = &config.policies;
        Ok(Self {
            layout,
            modes,
            dirs,
            hugetlbfs,
            sync,
            huge_page_size,
            touch_step,
            prefault: policies.prefault_shm,
            mlock: policies.mlock_shm,
            gc: GcPolicy {
                enabled: policies.epoch_gc_enabled,
                keep: policies.epoch_gc_keep,
                min_age: Duration::from_nanos(policies.epoch_gc_min_age_ns),
            },
            open: BTreeMap::new(),
            retired: Vec::new(),
            memo: BTreeMap::new(),
            gc_errors: 0,
            gc_next_check_ns: 0,
            gc_check_period_ns: policies.announce_period_ns().max(1),
            reclaimed_epochs: 0,
            reclaimed_bytes: 0,
            provision_ahead: policies.provision_ahead,
            ahead: None,
            failed_epochs: Vec::new(),
            prefault_pending: BTreeMap::new(),
            spares: BTreeMap::new(),
            shapes: BTreeMap::new(),
            namespace_lock: None,
        })
    }

    /// Claims the namespace for this driver (see [`crate::driver::ownership`]) before it
    /// touches anything in it: creates the user and namespace directories and holds an
    /// exclusive lock on the namespace for the provisioner's lifetime. Refused, naming
    /// the other driver and the fix, while another live driver holds it.
    pub fn claim_namespace(&mut self, instance_id: &str) -> Result<(), ProvisionFailure> {
        files::ensure_dir(&self.layout.user_dir(), &self.dirs)?;
        let dir = self.layout.namespace_dir();
        files::ensure_dir(&dir, &self.dirs)?;
        let lock = OwnerLock::acquire(&Claim::Namespace { dir }, instance_id, self.modes.file)
            .map_err(|e| ProvisionFailure(e.to_string()))?;
        tracing::info!(lock = %lock.path().display(), "namespace claimed");
        self.namespace_lock = Some(lock);
        Ok(())
    }

    /// Whether the base directory is on hugetlbfs (pass it to the core's `CoreEnv`).
    pub fn is_hugetlbfs(&self) -> bool {
        self.hugetlbfs
    }

    /// The canonical directory layout files are created in.
    pub fn layout(&self) -> &CanonicalLayout {
        &self.layout
    }

    /// Mode given to every created file.
    pub fn file_mode(&self) -> u32 {
        self.modes.file
    }

    /// Mode given to every created directory.
    pub fn dir_mode(&self) -> u32 {
        self.modes.dir
    }

    /// The epoch whose mappings are held open for `stream_id`, if any.
    pub fn current_epoch(&self, stream_id: u32) -> Option<u64> {
        self.open.get(&stream_id).map(|e| e.epoch)
    }

    /// Drops the open mappings of `stream_id` (files stay on disk).
    pub fn release(&mut self, stream_id: u32) {
        self.open.remove(&stream_id);
    }

    /// Moves the current mappings of `stream_id` to the retired list.
    fn retire_mappings(&mut self, stream_id: u32) {
        if let Some(open) = self.open.remove(&stream_id) {
            self.retired.push(open);
        }
    }

    /// Number of GC deletions that failed so far (each was logged).
    pub fn gc_error_count(&self) -> u64 {
        self.gc_errors
    }

    /// Stores `now_ns` into `activity_timestamp_ns` of every current epoch's
    /// superblocks (atomic, Release); returns how many superblocks were written. Also
    /// releases the mappings of epochs that streams moved off since the last call.
    pub fn refresh_activity(&mut self, now_ns: u64) -> usize {
        self.retired.clear();
        let mut written = 0;
        for open in self.open.values() {
            for region in &open.regions {
                region.store_activity(now_ns);
                written += 1;
            }
        }
        written
    }

    /// Runs epoch GC for one stream whose current epoch is `current_epoch`, judging
    /// directory ages against `now` (no-op when `epoch_gc_enabled` is false).
    pub fn gc_stream(&mut self, stream_id: u32, current_epoch: u64, now: SystemTime) -> GcReport {
        self.gc_stream_bounded(stream_id, current_epoch, now, usize::MAX)
    }

    /// [`ShmProvisioner::gc_stream`] deleting at most `budget` epoch directories (the
    /// report says whether candidates were left).
    fn gc_stream_bounded(
        &mut self,
        stream_id: u32,
        current_epoch: u64,
        now: SystemTime,
        budget: usize,
    ) -> GcReport {
        let mut report = GcReport::default();
        if !self.gc.enabled {
            return report;
        }
        // Until a scan says otherwise, an epoch could become collectable at any time.
        let mut quiet = Duration::ZERO;
        match self.stream_dir(stream_id) {
            Ok(Some(dir)) => quiet = self.gc_dir(&dir, current_epoch, now, budget, &mut report),
            Ok(None) => quiet = self.gc.min_age,
            Err(error) => {
                report.errors += 1;
                tracing::warn!(stream_id, %error, "epoch GC skipped");
            }
        }
        self.memo.entry(stream_id).or_default().gc_quiet = Some((now, quiet));
        self.gc_errors += report.errors as u64;
        self.reclaimed_epochs += report.removed.len() as u64;
        self.reclaimed_bytes += report.bytes;
        report
    }

    /// The periodic GC step (Wire Spec §15.21a: drivers SHOULD scan periodically), for
    /// the duty cycle: retired epochs come back without waiting for the next epoch of
    /// their stream. Cheap when nothing is due (a time comparison); otherwise it scans
    /// the streams whose oldest kept epoch may have reached `epoch_gc_min_age` and
    /// deletes at most [`GC_STEP_MAX_EPOCHS`] epoch directories. With more left it runs
    /// again on the next call, else when the next kept epoch reaches the minimum age or
    /// after the announce period, whichever comes first, so memory comes back within one
    /// announce period of the policy allowing it (a new stream's epochs included), in
    /// steps that keep every duty cycle short. Returns the directories deleted.
    pub fn collect_step(&mut self, now_ns: u64, now: SystemTime) -> usize {
        if !self.gc.enabled || now_ns < self.gc_next_check_ns {
            return 0;
        }
        let current: Vec<(u32, u64)> = self.open.iter().map(|(id, o)| (*id, o.epoch)).collect();
        let mut removed = 0;
        let mut backlog = false;
        // The soonest a kept epoch of any stream reaches the minimum age.
        let mut soonest = Duration::from_nanos(self.gc_check_period_ns);
        for (stream_id, epoch) in current {
            if let Some(wait) = self.memo.get(&stream_id).and_then(|m| m.gc_wait(now)) {
                soonest = soonest.min(wait);
                continue;
            }
            if removed >= GC_STEP_MAX_EPOCHS {
                backlog = true;
                break;
            }
            let report =
                self.gc_stream_bounded(stream_id, epoch, now, GC_STEP_MAX_EPOCHS - removed);
            if !report.removed.is_empty() || report.errors > 0 {
                tracing::debug!(
                    stream_id,
                    current_epoch = epoch,
                    removed = report.removed.len(),
                    bytes = report.bytes,
                    errors = report.errors,
                    "periodic epoch GC"
                );
            }
            removed += report.removed.len();
            backlog |= report.budget_exhausted;
            if let Some(wait) = self.memo.get(&stream_id).and_then(|m| m.gc_wait(now)) {
                soonest = soonest.min(wait);
            }
        }
        self.gc_next_check_ns = if backlog {
            now_ns
        } else {
            let wait = u64::try_from(soonest.as_nanos()).unwrap_or(u64::MAX);
            now_ns.saturating_add(wait)
        };
        removed
    }

    /// The epoch of the spare `stream_id` has ready to hand out
    /// (`policies.provision_ahead`).
    pub fn spare_epoch(&self, stream_id: u32) -> Option<u64> {
        match self.spares.get(&stream_id) {
            Some(Spare::Ready { epoch, .. }) => Some(*epoch),
            _ => None,
        }
    }

    /// Epoch directories deleted by GC since start (periodic, on new epochs, at start-up).
    pub fn reclaimed_epochs(&self) -> u64 {
        self.reclaimed_epochs
    }

    /// Bytes of storage those directories' files held.
    pub fn reclaimed_bytes(&self) -> u64 {
        self.reclaimed_bytes
    }

    /// Start-up GC (`policies.epoch_gc_on_startup`): collects every stream directory
    /// under the namespace, treating its highest epoch as current (no-op when
    /// `epoch_gc_enabled` is false).
    pub fn gc_all(&mut self, now: SystemTime) -> GcReport {
        let mut report = GcReport::default();
        if !self.gc.enabled {
            return report;
        }
        let ns_dir = self.layout.namespace_dir();
        let entries = match std::fs::read_dir(&ns_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return report,
            Err(error) => {
                report.errors += 1;
                self.gc_errors += 1;
                tracing::warn!(path = %ns_dir.display(), %error, "epoch GC: cannot read namespace directory");
                return report;
            }
        };
        let mut streams: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str().and_then(parse_stream_id))
            .collect();
        streams.sort_unstable();
        for stream_id in streams {
            let dir = match self.stream_dir(stream_id) {
                Ok(Some(dir)) => dir,
                Ok(None) => continue,
                Err(error) => {
                    report.errors += 1;
                    tracing::warn!(stream_id, %error, "epoch GC skipped");
                    continue;
                }
            };
            let current = match dir.epochs() {
                Ok(epochs) => epochs.iter().copied().max().unwrap_or(0),
                Err(error) => {
                    report.errors += 1;
                    tracing::warn!(stream_id, %error, "epoch GC skipped");
                    continue;
                }
            };
            let current = current.max(self.current_epoch(stream_id).unwrap_or(0));
            self.gc_dir(&dir, current, now, usize::MAX, &mut report);
        }
        self.gc_errors += report.errors as u64;
        self.reclaimed_epochs += report.removed.len() as u64;
        self.reclaimed_bytes += report.bytes;
        report
    }

    /// Start-up delete-and-recreate (Driver Model §14): deletes every epoch directory
    /// of `stream_id` but first records the highest epoch in the high-water file, so
    /// the next epoch is still greater. Fails only if that record cannot be kept.
    pub fn remove_existing_epochs(&mut self, stream_id: u32) -> Result<GcReport, ProvisionFailure> {
        self.open.remove(&stream_id);
        self.memo.remove(&stream_id);
        let highest = self.highest_epoch(stream_id)?;
        let mut report = GcReport::default();
        let dir = match self.stream_dir(stream_id) {
            Ok(Some(dir)) => dir,
            Ok(None) => return Ok(report),
            Err(e) => return Err(ProvisionFailure(e)),
        };
        if highest > 0 {
            epochs::write_high_water(
                &self.layout.stream_dir(stream_id),
                highest,
                self.modes.file,
                self.sync,
            )?;
        }
        let epochs = dir.epochs().map_err(ProvisionFailure)?;
        for epoch in epochs {
            dir.delete_epoch(epoch, None, &mut report);
        }
        self.gc_errors += report.errors as u64;
        Ok(report)
    }

    fn stream_dir(&self, stream_id: u32) -> Result<Option<StreamDir>, String> {
        StreamDir::open(
            self.layout.base_dir(),
            &self.layout.stream_dir(stream_id),
            stream_id,
        )
    }

    /// Collects the epochs of `dir` older than `current` (see [`gc::select_candidates`])
    /// and returns how long after `now` no epoch older than the current one can reach the
    /// minimum age: the remaining ones are judged by their modification time, and epochs
    /// made after `now` are younger than the minimum age until `now + min_age`.
    fn gc_dir(
        &self,
        dir: &StreamDir,
        current: u64,
        now: SystemTime,
        budget: usize,
        report: &mut GcReport,
    ) -> Duration {
        let epochs = match dir.epochs() {
            Ok(epochs) => epochs,
            Err(error) => {
                report.errors += 1;
                tracing::warn!(%error, "epoch GC skipped");
                return Duration::ZERO;
            }
        };
        let min_age = self.gc.min_age;
        let candidates = gc::select_candidates(&epochs, current, self.gc.keep);
        let mut quiet = min_age;
        let mut note_age = |modified: Option<SystemTime>| {
            let age = modified.map_or(Duration::ZERO, |m| {
                now.duration_since(m).unwrap_or_default()
            });
            quiet = quiet.min(min_age.saturating_sub(age));
        };
        let removed_before = report.removed.len();
        for epoch in &candidates {
            if report.removed.len() - removed_before >= budget {
                // More another time: the stream stays due.
                report.budget_exhausted = true;
                return Duration::ZERO;
            }
            if let Some(modified) = dir.delete_epoch(*epoch, Some((min_age, now)), report) {
                note_age(Some(modified));
            }
        }
        // The older epochs within `keep` become candidates as new epochs arrive.
        let kept = usize::try_from(self.gc.keep.max(1) - 1).unwrap_or(usize::MAX);
        for epoch in epochs.iter().rev().filter(|e| **e < current).take(kept) {
            note_age(dir.modified(*epoch));
        }
        quiet
    }

    /// The files of an epoch with their sizes and superblocks; checks the geometry
    /// (and, on hugetlbfs, whole huge pages) before anything is created.
    fn plan(
        &self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<Vec<RegionPlan>, ProvisionFailure> {
        let nslots = profile.header_nslots;
        if nslots == 0 || profile.payload_pools.is_empty() {
            return Err(ProvisionFailure(format!(
                "stream {stream_id}: profile needs header_nslots > 0 and at least one payload pool"
            )));
        }
        let header_path = self.layout.header_ring_path(stream_id, epoch);
        let too_big = |path: &Path| {
            ProvisionFailure(format!("sizing {}: size overflows u64", path.display()))
        };
        let mut plans = vec![RegionPlan {
            len: header_ring_len(nslots).ok_or_else(|| too_big(&header_path))?,
            expected: ExpectedRegion::header_ring(layout_version, epoch, stream_id, nslots),
            path: header_path,
        }];
        for pool in &profile.payload_pools {
            let path = self
                .layout
                .payload_pool_path(stream_id, epoch, pool.pool_id);
            if !is_valid_stride(pool.stride_bytes) {
                return Err(ProvisionFailure(format!(
                    "sizing {}: stride_bytes {} is not a power-of-two multiple of 64",
                    path.display(),
                    pool.stride_bytes
                )));
            }
            plans.push(RegionPlan {
                len: payload_pool_len(nslots, pool.stride_bytes).ok_or_else(|| too_big(&path))?,
                expected: ExpectedRegion::payload_pool(
                    layout_version,
                    epoch,
                    stream_id,
                    pool.pool_id,
                    nslots,
                    pool.stride_bytes,
                ),
                path,
            });
        }
        if self.hugetlbfs && self.huge_page_size > 0 {
            // hugetlbfs only accepts whole huge pages; the region occupies the start of
            // the file and clients require the file to be at least the region's length.
            for p in &mut plans {
                p.len = p
                    .len
                    .checked_next_multiple_of(self.huge_page_size)
                    .ok_or_else(|| too_big(&p.path))?;
            }
        }
        Ok(plans)
    }

    /// Creates every region of an epoch whose directory already exists.
    fn create_regions(&self, plans: &[RegionPlan]) -> Result<Vec<OpenRegion>, CreateError> {
        // Prefaulting is a separate step, off the duty cycle (`prepare_for_producer`).
        let opts = RegionOptions {
            prefault: false,
            ..self.region_options()
        };
        plans
            .iter()
            .map(|p| files::create_region(p, opts))
            .collect()
    }

    fn region_uri(&self, path: &Path) -> Result<String, ProvisionFailure> {
        RegionUri::from_path(path, self.hugetlbfs)
            .map(|uri| uri.to_string())
            .map_err(|e| fail("building the region URI of", path, e))
    }

    /// Creates the directory and the region files of `epoch` (numbered above every epoch
    /// used, recorded in the high-water file first) and returns the open regions and
    /// their URIs. On failure nothing of the driver's is left behind.
    fn create_epoch(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<(Vec<OpenRegion>, Vec<String>), CreateError> {
        let plans = self.plan(stream_id, epoch, layout_version, profile)?;
        let stream_dir = self.layout.stream_dir(stream_id);
        epochs::write_high_water(&stream_dir, epoch, self.modes.file, self.sync)?;
        let memo = self.memo.entry(stream_id).or_default();
        memo.dirs_ready = true;
        memo.high_water = Some(epoch);
        let epoch_dir = self.layout.epoch_dir(stream_id, epoch);
        files::create_dir(&epoch_dir, self.modes.dir)?;
        let created = self.create_regions(&plans).and_then(|regions| {
            let uris = regions
                .iter()
                .map(|r| self.region_uri(&r.path))
                .collect::<Result<Vec<String>, ProvisionFailure>>()?;
            Ok((regions, uris))
        });
        match created {
            Ok(created) => Ok(created),
            Err(error) => {
                if let Err(e) = files::remove_half_built(&epoch_dir) {
                    tracing::warn!(
                        stream_id,
                        epoch,
                        path = %epoch_dir.display(),
                        error = %e,
                        "could not remove a partially created epoch"
                    );
                }
                Err(error)
            }
        }
    }
}

/// The layout of an epoch whose regions have `uris` (header ring first, then the
/// profile's pools in order).
fn epoch_layout(
    stream_id: u32,
    epoch: u64,
    layout_version: u32,
    profile: &Profile,
    uris: &[String],
) -> EpochLayout {
    let pools = profile
        .payload_pools
        .iter()
        .zip(uris.iter().skip(1))
        .map(|(pool, uri)| PoolLayout {
            pool_id: pool.pool_id,
            nslots: profile.header_nslots,
            stride_bytes: pool.stride_bytes,
            region_uri: uri.clone(),
        })
        .collect();
    EpochLayout {
        stream_id,
        epoch,
        layout_version,
        header_nslots: profile.header_nslots,
        header_region_uri: uris.first().cloned().unwrap_or_default(),
        pools,
    }
}

/// A stream's next epoch made ahead (`policies.provision_ahead`).
#[derive(Debug)]
enum Spare {
    /// With the worker.
    Building { epoch: u64, layout_version: u32 },
    /// Made: handed out for exactly `epoch`.
    Ready {
        epoch: u64,
        layout_version: u32,
        regions: Vec<OpenRegion>,
    },
    /// Making one failed; not tried again before `retry_at_ns`.
    Failed { retry_at_ns: u64 },
}

/// Longest a producer attach waits for its stream's spare epoch to be finished by the
/// provisioning thread before the epoch is made on the duty cycle instead.
const SPARE_WAIT: Duration = Duration::from_millis(20);

/// Wait after a failed spare before trying again (the failure was logged).
const AHEAD_RETRY_NS: u64 = 5_000_000_000;

/// Parses a stream directory name (canonical decimal u32).
fn parse_stream_id(name: &str) -> Option<u32> {
    let n = epochs::parse_epoch_canonical(name)?;
    u32::try_from(n).ok()
}

impl Provisioner for ShmProvisioner {
    fn highest_epoch(&mut self, stream_id: u32) -> Result<u64, ProvisionFailure> {
        let highest = epochs::highest_epoch(&self.layout.stream_dir(stream_id));
        match highest {
            Ok(highest) => self.memo.entry(stream_id).or_default().high_water = Some(highest),
            Err(_) => {
                self.memo.remove(&stream_id);
            }
        }
        highest
    }

    fn refresh_activity(&mut self, now_ns: u64) {
        // The inherent method (which also reports how many superblocks it wrote).
        ShmProvisioner::refresh_activity(self, now_ns);
    }

    fn collect(&mut self, now_ns: u64) -> usize {
        let mut work = self.prepare_ahead(now_ns);
        if now_ns >= self.gc_next_check_ns {
            work += self.collect_step(now_ns, SystemTime::now());
        }
        work
    }

    fn provision(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<EpochLayout, ProvisionFailure> {
        // The stream moves off its previous epoch whatever happens next.
        self.retire_mappings(stream_id);
        let mut epoch = epoch;
        if self.provision_ahead {
            self.shapes
                .insert(stream_id, (layout_version, profile.clone()));
            if let Some(layout) = self.take_spare(stream_id, epoch, layout_version, profile)? {
                return Ok(layout);
            }
            // A spare of another epoch, or one that failed, spent its number.
            if let Some(high) = self.memo.get(&stream_id).and_then(|m| m.high_water) {
                epoch = epoch.max(high + 1);
            }
        }
        let provisioned = self.provision_epoch(stream_id, epoch, layout_version, profile);
        if provisioned.is_err() {
            // Whatever is on disk now, read it again next time.
            self.memo.remove(&stream_id);
        }
        provisioned
    }

    fn prepare_for_producer(&mut self, stream_id: u32, epoch: u64) -> Result<(), ProvisionFailure> {
        let Some(open) = self.open.get(&stream_id).filter(|o| o.epoch == epoch) else {
            return Ok(());
        };
        if open.prefaulted {
            return Ok(());
        }
        let needed = self.check_room(stream_id, open)?;
        let regions = open
            .regions
            .iter()
            .map(|r| {
                r.file_handle()
                    .map(|file| (r.path.clone(), file, r.len() as u64))
                    .map_err(|e| fail("reopening for prefault", &r.path, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let job = PrefaultJob {
            stream_id,
            epoch,
            regions,
            touch_step: self.touch_step,
        };
        let job = if self.start_worker() {
            match self.ahead.as_ref().map(|w| w.submit(Task::Prefault(job))) {
                Some(Ok(())) => None,
                Some(Err(Task::Prefault(job))) => Some(job),
                _ => return Err(ProvisionFailure("the provisioning thread is gone".into())),
            }
        } else {
            Some(job)
        };
        match job {
            // No thread: prefault here, as the only way left to keep the promise.
            Some(job) => ahead::prefault(job).result?,
            None => {
                self.prefault_pending.insert((stream_id, epoch), needed);
            }
        }
        if let Some(open) = self.open.get_mut(&stream_id) {
            open.prefaulted = true;
        }
        Ok(())
    }

    fn take_failed_epochs(&mut self) -> Vec<(u32, u64, ProvisionFailure)> {
        std::mem::take(&mut self.failed_epochs)
    }

    fn retire_older(&mut self, stream_id: u32, current_epoch: u64) {
        let now = SystemTime::now();
        if !self.gc.enabled || !self.memo.get(&stream_id).is_none_or(|m| m.gc_due(now)) {
            return;
        }
        let report = self.gc_stream(stream_id, current_epoch, now);
        if !report.removed.is_empty() || report.errors > 0 {
            tracing::debug!(
                stream_id,
                current_epoch,
                removed = report.removed.len(),
                errors = report.errors,
                "epoch GC"
            );
        }
    }
}

impl ShmProvisioner {
    /// The work of [`Provisioner::provision`] after the previous epoch is retired.
    fn provision_epoch(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<EpochLayout, ProvisionFailure> {
        let memo = self.memo.get(&stream_id).copied().unwrap_or_default();
        let stream_dir = self.layout.stream_dir(stream_id);
        if !memo.dirs_ready {
            files::ensure_dir(&self.layout.user_dir(), &self.dirs)?;
            files::ensure_dir(&self.layout.namespace_dir(), &self.dirs)?;
            files::ensure_dir(&stream_dir, &self.dirs)?;
        }
        let highest = match memo.high_water {
            Some(highest) => highest,
            None => epochs::highest_epoch(&stream_dir)?,
        };
        if epoch <= highest {
            return Err(ProvisionFailure(format!(
                "creating {}: epoch {epoch} is not greater than epoch {highest} already used \
                 under {}",
                self.layout.epoch_dir(stream_id, epoch).display(),
                stream_dir.display()
            )));
        }
        let mut epoch = epoch;
        let mut skipped = 0;
        let (regions, uris) = loop {
            match self.create_epoch(stream_id, epoch, layout_version, profile) {
                Ok(created) => break created,
                Err(CreateError::Occupied(failure)) if skipped < MAX_OCCUPIED_EPOCHS => {
                    // Someone else's entry has the epoch's name (or a name inside the
                    // directory just made): never reused, never followed. The number is
                    // spent; the next one may be free.
                    tracing::warn!(
                        stream_id,
                        epoch,
                        error = %failure,
                        "an entry the driver did not create is in the way; moving on to the next epoch"
                    );
                    skipped += 1;
                    epoch += 1;
                }
                Err(error) => return Err(error.into()),
            }
        };
        self.open.insert(
            stream_id,
            OpenEpoch {
                epoch,
                regions,
                prefaulted: !self.prefault,
            },
        );
        Ok(epoch_layout(
            stream_id,
            epoch,
            layout_version,
            profile,
            &uris,
        ))
    }

    /// The options every region is created with.
    fn region_options(&self) -> RegionOptions {
        RegionOptions {
            mode: self.modes.file,
            prefault: self.prefault,
            touch_step: self.touch_step,
            mlock: self.mlock,
            sync: self.sync,
            pid: u64::from(std::process::id()),
            start_ns: monotonic_now_ns(),
        }
    }

    /// One step of the provisioning thread's side: takes what it finished and, with
    /// `policies.provision_ahead`, hands it the next epoch of one stream that has a
    /// current epoch and no spare. Returns the work done.
    fn prepare_ahead(&mut self, now_ns: u64) -> usize {
        let mut work = 0;
        while let Some(finished) = self.ahead.as_mut().and_then(AheadWorker::try_done) {
            match finished {
                Finished::Spare(done) => self.accept_spare(done, now_ns),
                Finished::Prefault(done) => self.accept_prefault(done),
            }
            work += 1;
        }
        if !self.provision_ahead {
            return work;
        }
        let next = self
            .open
            .keys()
            .copied()
            .find(|id| match self.spares.get(id) {
                None => true,
                Some(Spare::Failed { retry_at_ns }) => now_ns >= *retry_at_ns,
                Some(_) => false,
            });
        if let Some(stream_id) = next {
            if self.start_spare(stream_id, now_ns) {
                work += 1;
            }
        }
        work
    }

    /// Numbers the next epoch of `stream_id` (recorded in the high-water file first) and
    /// hands it to the worker. False when nothing was started.
    fn start_spare(&mut self, stream_id: u32, now_ns: u64) -> bool {
        let Some((layout_version, profile)) = self.shapes.get(&stream_id).cloned() else {
            return false;
        };
        let Some(high) = self.memo.get(&stream_id).and_then(|m| m.high_water) else {
            return false;
        };
        let epoch = high + 1;
        let retry_at_ns = now_ns.saturating_add(AHEAD_RETRY_NS);
        let plans = match self.plan(stream_id, epoch, layout_version, &profile) {
            Ok(plans) => plans,
            Err(error) => {
                tracing::warn!(stream_id, epoch, %error, "cannot plan a spare epoch");
                self.spares.insert(stream_id, Spare::Failed { retry_at_ns });
                return false;
            }
        };
        if !self.start_worker() {
            tracing::warn!("no provisioning thread; spare epochs are not made ahead");
            self.provision_ahead = false;
            return false;
        }
        let stream_dir = self.layout.stream_dir(stream_id);
        if let Err(error) = epochs::write_high_water(&stream_dir, epoch, self.modes.file, self.sync)
        {
            tracing::warn!(stream_id, epoch, %error, "cannot number a spare epoch");
            self.spares.insert(stream_id, Spare::Failed { retry_at_ns });
            return false;
        }
        self.memo.entry(stream_id).or_default().high_water = Some(epoch);
        let job = Job {
            stream_id,
            epoch,
            epoch_dir: self.layout.epoch_dir(stream_id, epoch),
            dir_mode: self.modes.dir,
            plans,
            opts: self.region_options(),
        };
        let submitted = self
            .ahead
            .as_ref()
            .is_some_and(|worker| worker.submit(Task::Spare(job)).is_ok());
        if !submitted {
            tracing::warn!("the provisioning thread is gone; spare epochs are not made ahead");
            self.provision_ahead = false;
            return false;
        }
        self.spares.insert(
            stream_id,
            Spare::Building {
                epoch,
                layout_version,
            },
        );
        true
    }

    /// Starts the provisioning thread if it is not running; false if it cannot start.
    fn start_worker(&mut self) -> bool {
        if self.ahead.is_some() {
            return true;
        }
        match AheadWorker::start() {
            Ok(worker) => {
                self.ahead = Some(worker);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "cannot start the provisioning thread");
                false
            }
        }
    }

    /// Records a prefault the thread finished; a failure is kept for the core, which
    /// revokes the producer of that epoch if it is still current (fail closed: a client
    /// must not run into a `SIGBUS` on memory that could not be reserved).
    fn accept_prefault(&mut self, done: ahead::Prefaulted) {
        self.prefault_pending.remove(&(done.stream_id, done.epoch));
        match done.result {
            Ok(()) => tracing::debug!(
                stream_id = done.stream_id,
                epoch = done.epoch,
                "epoch prefaulted"
            ),
            Err(failure) => {
                tracing::error!(
                    stream_id = done.stream_id,
                    epoch = done.epoch,
                    error = %failure,
                    "prefaulting an epoch failed"
                );
                self.failed_epochs
                    .push((done.stream_id, done.epoch, failure));
            }
        }
    }

    /// Refuses an epoch the filesystem has no room for, before a producer writes into
    /// it: prefaulting reserves every byte, so a shortfall would only surface later.
    fn check_room(&self, stream_id: u32, epoch: &OpenEpoch) -> Result<u64, ProvisionFailure> {
        let needed: u64 = epoch
            .regions
            .iter()
            .map(|r| r.len() as u64)
            .sum::<u64>()
            .saturating_sub(epoch.regions.iter().map(|r| r.allocated_bytes()).sum());
        let base = self.layout.base_dir();
        let free = files::free_bytes(base)
            .map_err(|e| fail("checking free space in", base, e))?
            .saturating_sub(self.prefault_pending.values().sum());
        if needed > free {
            return Err(ProvisionFailure(format!(
                "not enough room in {} for epoch {} of stream {stream_id}: it needs {} MiB, \
                 {} MiB are free; free memory (`tp gc --dry-run` lists stale epochs), \
                 shrink the stream's profile, or set policies.prefault_shm = false",
                base.display(),
                epoch.epoch,
                needed >> 20,
                free >> 20
            )));
        }
        Ok(needed)
    }

    /// Records a job the worker finished.
    fn accept_spare(&mut self, done: ahead::Done, now_ns: u64) {
        let building = match self.spares.get(&done.stream_id) {
            Some(Spare::Building {
                epoch,
                layout_version,
            }) if *epoch == done.epoch => Some(*layout_version),
            _ => None,
        };
        match (building, done.result) {
            (Some(layout_version), Ok(regions)) => {
                tracing::debug!(
                    stream_id = done.stream_id,
                    epoch = done.epoch,
                    "spare epoch ready"
                );
                self.spares.insert(
                    done.stream_id,
                    Spare::Ready {
                        epoch: done.epoch,
                        layout_version,
                        regions,
                    },
                );
            }
            (_, Err(error)) => {
                tracing::warn!(
                    stream_id = done.stream_id,
                    epoch = done.epoch,
                    error = %ProvisionFailure::from(error),
                    "making a spare epoch failed; the next attach provisions inline"
                );
                self.spares.insert(
                    done.stream_id,
                    Spare::Failed {
                        retry_at_ns: now_ns.saturating_add(AHEAD_RETRY_NS),
                    },
                );
            }
            (None, Ok(regions)) => self.discard_spare(done.stream_id, done.epoch, regions),
        }
    }

    /// Removes a spare epoch nobody will use (its number stays spent).
    fn discard_spare(&self, stream_id: u32, epoch: u64, regions: Vec<OpenRegion>) {
        drop(regions);
        let dir = self.layout.epoch_dir(stream_id, epoch);
        if let Err(error) = files::remove_half_built(&dir) {
            tracing::warn!(stream_id, epoch, path = %dir.display(), %error, "could not remove an unused spare epoch");
        }
    }

    /// The spare of `stream_id` as the layout of `epoch`, if it is exactly that epoch of
    /// that shape (waiting for the worker if it is still being made). A spare of another
    /// epoch or shape is removed.
    fn take_spare(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<Option<EpochLayout>, ProvisionFailure> {
        // A spare the thread is about to finish is worth a moment; one that is far from
        // done is not: making an epoch here is quick, and its prefault happens off the
        // duty cycle anyway. Forgotten here, it is removed when the thread hands it back.
        let deadline = std::time::Instant::now() + SPARE_WAIT;
        while matches!(self.spares.get(&stream_id), Some(Spare::Building { .. })) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.ahead.as_mut().and_then(|w| w.done_within(left)) {
                Some(Finished::Spare(done)) => self.accept_spare(done, monotonic_now_ns()),
                Some(Finished::Prefault(done)) => self.accept_prefault(done),
                None => {
                    self.spares.remove(&stream_id);
                    return Ok(None);
                }
            }
        }
        let Some(Spare::Ready {
            epoch: spare_epoch,
            layout_version: spare_version,
            regions,
        }) = self.spares.remove(&stream_id)
        else {
            return Ok(None);
        };
        let plans = self.plan(stream_id, epoch, layout_version, profile)?;
        let fits = spare_epoch == epoch
            && spare_version == layout_version
            && plans.len() == regions.len()
            && plans
                .iter()
                .zip(&regions)
                .all(|(plan, region)| plan.path == region.path && plan.len == region.len() as u64);
        if !fits {
            self.discard_spare(stream_id, spare_epoch, regions);
            return Ok(None);
        }
        let uris = regions
            .iter()
            .map(|r| self.region_uri(&r.path))
            .collect::<Result<Vec<String>, ProvisionFailure>>()?;
        // Made a while ago: consumers judge liveness by this stamp.
        let now_ns = monotonic_now_ns();
        for region in &regions {
            region.store_activity(now_ns);
        }
        self.open.insert(
            stream_id,
            OpenEpoch {
                epoch,
                regions,
                // Made with `prefault` set (see `start_spare`).
                prefaulted: true,
            },
        );
        Ok(Some(epoch_layout(
            stream_id,
            epoch,
            layout_version,
            profile,
            &uris,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisioner_can_move_to_the_driver_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<ShmProvisioner>();
    }

    #[test]
    fn stream_dir_names() {
        assert_eq!(parse_stream_id("10000"), Some(10000));
        assert_eq!(parse_stream_id("010000"), None);
        assert_eq!(parse_stream_id("4294967296"), None);
        assert_eq!(parse_stream_id("x"), None);
    }

    #[test]
    fn failure_messages_name_path_and_os_error() {
        let e = std::io::Error::from_raw_os_error(28);
        let f = fail("creating", Path::new("/dev/shm/x/header.ring"), e);
        assert_eq!(
            f.0,
            "creating /dev/shm/x/header.ring: No space left on device (os error 28)"
        );
    }
}
