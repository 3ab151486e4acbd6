//! Epoch directory garbage collection and deletion (Driver Model §3, §14, §17
//! `epoch_gc_*`; Wire Spec §15.21a.7).
//!
//! Deletion is confined to the canonical stream directory: the stream directory must
//! canonicalize to a path strictly inside the canonical base directory, an epoch entry
//! must be a real directory (checked with `lstat`; a symlink is skipped and logged,
//! never followed) whose canonical path is exactly `<canonical stream dir>/<name>`, and
//! only regular files inside it are unlinked before the directory itself is removed.

use super::epochs::parse_epoch_canonical;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Outcome of a GC or deletion pass; failures are logged and counted, never fatal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// `(stream_id, epoch)` of every epoch directory deleted.
    pub removed: Vec<(u32, u64)>,
    /// Epoch directories kept because they are younger than the minimum age.
    pub too_young: usize,
    /// Entries not deleted because they are not real directories (symlinks, files).
    pub skipped: usize,
    /// Deletions that failed (each logged with `tracing::warn`).
    pub errors: usize,
    /// Bytes of storage the deleted files held (allocated blocks: on tmpfs and
    /// hugetlbfs, the memory given back).
    pub bytes: u64,
    /// The scan stopped at its deletion budget with candidates left.
    pub budget_exhausted: bool,
}

impl GcReport {
    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: GcReport) {
        self.removed.extend(other.removed);
        self.too_young += other.too_young;
        self.skipped += other.skipped;
        self.errors += other.errors;
        self.bytes += other.bytes;
        self.budget_exhausted |= other.budget_exhausted;
    }
}

/// Epoch GC settings (`policies.epoch_gc_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct GcPolicy {
    /// `epoch_gc_enabled`.
    pub enabled: bool,
    /// `epoch_gc_keep`: epochs kept, current included (0 is treated as 1).
    pub keep: u32,
    /// `epoch_gc_min_age_ns`.
    pub min_age: Duration,
}

/// The epochs to delete: every epoch older than `current` except the newest `keep - 1`
/// of them. The current epoch and newer ones are never candidates.
pub(super) fn select_candidates(epochs: &[u64], current: u64, keep: u32) -> Vec<u64> {
    let mut older: Vec<u64> = epochs.iter().copied().filter(|&e| e < current).collect();
    older.sort_unstable_by(|a, b| b.cmp(a));
    older.dedup();
    let keep_older = usize::try_from(keep.max(1) - 1).unwrap_or(usize::MAX);
    older.into_iter().skip(keep_older).collect()
}

/// A stream directory verified to lie inside the base directory, by canonical path.
#[derive(Debug)]
pub(super) struct StreamDir {
    stream_id: u32,
    canonical: PathBuf,
}

impl StreamDir {
    /// Verifies `stream_dir` (`None` if it does not exist). It must be a real directory
    /// (not a symlink) whose canonical path is strictly inside `base_dir`'s.
    pub fn open(
        base_dir: &Path,
        stream_dir: &Path,
        stream_id: u32,
    ) -> Result<Option<Self>, String> {
        let meta = match fs::symlink_metadata(stream_dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("inspecting {}: {e}", stream_dir.display())),
        };
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(format!(
                "{} is not a real directory; not deleting anything through it",
                stream_dir.display()
            ));
        }
        let canon_base = fs::canonicalize(base_dir)
            .map_err(|e| format!("resolving {}: {e}", base_dir.display()))?;
        let canonical = fs::canonicalize(stream_dir)
            .map_err(|e| format!("resolving {}: {e}", stream_dir.display()))?;
        if canonical == canon_base || !canonical.starts_with(&canon_base) {
            return Err(format!(
                "{} resolves to {}, outside the base directory {}; not deleting anything",
                stream_dir.display(),
                canonical.display(),
                canon_base.display()
            ));
        }
        Ok(Some(Self {
            stream_id,
            canonical,
        }))
    }

    /// Epoch entries (canonical decimal names) of the directory, any file type.
    pub fn epochs(&self) -> Result<Vec<u64>, String> {
        let entries = fs::read_dir(&self.canonical)
            .map_err(|e| format!("reading {}: {e}", self.canonical.display()))?;
        let mut epochs = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| format!("reading {}: {e}", self.canonical.display()))?;
            if let Some(n) = entry.file_name().to_str().and_then(parse_epoch_canonical) {
                epochs.push(n);
            }
        }
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// Modification time of epoch directory `epoch` (not following a symlink), if it can
    /// be read.
    pub fn modified(&self, epoch: u64) -> Option<SystemTime> {
        fs::symlink_metadata(self.canonical.join(epoch.to_string()))
            .and_then(|meta| meta.modified())
            .ok()
    }

    /// Deletes epoch directory `epoch` if it is a real directory at least `min_age`
    /// old at `now` (`None`: no age limit), recording the outcome in `report`. Returns
    /// the directory's modification time when it was kept for being too young.
    pub fn delete_epoch(
        &self,
        epoch: u64,
        min_age: Option<(Duration, SystemTime)>,
        report: &mut GcReport,
    ) -> Option<SystemTime> {
        let path = self.canonical.join(epoch.to_string());
        let stream_id = self.stream_id;
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                report.errors += 1;
                tracing::warn!(stream_id, epoch, path = %path.display(), error = %e, "epoch GC: cannot inspect");
                return None;
            }
        };
        if meta.file_type().is_symlink() || !meta.is_dir() {
            report.skipped += 1;
            let kind = if meta.file_type().is_symlink() {
                "a symlink (not followed)"
            } else {
                "not a directory"
            };
            tracing::warn!(stream_id, epoch, path = %path.display(), "epoch GC: skipping entry that is {kind}");
            return None;
        }
        if let Some((min_age, now)) = min_age {
            let modified = meta.modified().ok();
            let old_enough = modified
                .and_then(|mtime| now.duration_since(mtime).ok())
                .is_some_and(|age| age >= min_age);
            if !old_enough {
                report.too_young += 1;
                tracing::debug!(
                    stream_id,
                    epoch,
                    "epoch GC: younger than the minimum age; kept"
                );
                // An unreadable time counts as just made.
                return Some(modified.unwrap_or(now));
            }
        }
        match remove_epoch_dir(&self.canonical, &path) {
            Ok(bytes) => {
                tracing::info!(stream_id, epoch, bytes, path = %path.display(), "epoch directory removed");
                report.removed.push((stream_id, epoch));
                report.bytes += bytes;
            }
            Err(error) => {
                report.errors += 1;
                tracing::warn!(stream_id, epoch, %error, "epoch GC: deletion failed");
            }
        }
        None
    }
}

/// What the GC policy would do with one epoch directory ([`plan_gc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcVerdict {
    /// Stream id.
    pub stream_id: u32,
    /// Epoch.
    pub epoch: u64,
    /// The epoch directory.
    pub path: PathBuf,
    /// Whether the policy would delete it now.
    pub remove: bool,
    /// Why (the rule that decides).
    pub reason: String,
}

/// The verdict of the epoch GC policy (`policies.epoch_gc_*`) on every epoch directory of
/// every stream under the configuration's namespace, judged at `now`, each stream's highest
/// epoch taken as current (as start-up GC does; a running driver's current epoch is its
/// newest directory too). Reads directories only: nothing is created or deleted.
pub fn plan_gc(
    config: &crate::config::DriverConfig,
    now: SystemTime,
) -> Result<Vec<GcVerdict>, String> {
    let layout =
        crate::shm::paths::CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
            .map_err(|e| e.to_string())?;
    let policies = &config.policies;
    let min_age = Duration::from_nanos(policies.epoch_gc_min_age_ns);
    let ns_dir = layout.namespace_dir();
    let entries = match fs::read_dir(&ns_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", ns_dir.display())),
    };
    let mut streams: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(super::parse_stream_id))
        .collect();
    streams.sort_unstable();
    let mut verdicts = Vec::new();
    for stream_id in streams {
        let Some(dir) =
            StreamDir::open(layout.base_dir(), &layout.stream_dir(stream_id), stream_id)?
        else {
            continue;
        };
        let epochs = dir.epochs()?;
        let current = epochs.iter().copied().max().unwrap_or(0);
        let candidates = select_candidates(&epochs, current, policies.epoch_gc_keep);
        for &epoch in epochs.iter().rev() {
            let path = dir.canonical.join(epoch.to_string());
            let keep = |reason: String| GcVerdict {
                stream_id,
                epoch,
                path: path.clone(),
                remove: false,
                reason,
            };
            let verdict = if !policies.epoch_gc_enabled {
                keep("epoch GC is off (policies.epoch_gc_enabled = false)".into())
            } else if epoch == current {
                keep("current epoch (never collected)".into())
            } else if !candidates.contains(&epoch) {
                keep(format!(
                    "among the newest {} epochs kept (policies.epoch_gc_keep, current included)",
                    policies.epoch_gc_keep.max(1)
                ))
            } else {
                match fs::symlink_metadata(&path) {
                    Err(e) => keep(format!("cannot inspect: {e}")),
                    Ok(meta) if meta.file_type().is_symlink() || !meta.is_dir() => {
                        keep("not a real directory (GC never follows or deletes it)".into())
                    }
                    Ok(meta) => {
                        let age = meta
                            .modified()
                            .ok()
                            .and_then(|m| now.duration_since(m).ok());
                        match age {
                            Some(age) if age >= min_age => GcVerdict {
                                stream_id,
                                epoch,
                                path: path.clone(),
                                remove: true,
                                reason: format!(
                                    "older than the newest {} epochs and {:.1} s old (policies.epoch_gc_min_age_ns: {:.1} s)",
                                    policies.epoch_gc_keep.max(1),
                                    age.as_secs_f64(),
                                    min_age.as_secs_f64()
                                ),
                            },
                            age => keep(format!(
                                "would be collected but is only {:.1} s old, younger than policies.epoch_gc_min_age_ns ({:.1} s)",
                                age.unwrap_or_default().as_secs_f64(),
                                min_age.as_secs_f64()
                            )),
                        }
                    }
                }
            };
            verdicts.push(verdict);
        }
    }
    Ok(verdicts)
}

/// Removes the regular files of `epoch_dir` and then the directory; returns the bytes
/// of storage the files held. `epoch_dir` must canonicalize to itself directly under
/// `canonical_stream_dir`; anything but a regular file inside it is left alone (and so
/// the directory stays).
pub(super) fn remove_epoch_dir(
    canonical_stream_dir: &Path,
    epoch_dir: &Path,
) -> Result<u64, String> {
    let canonical = fs::canonicalize(epoch_dir)
        .map_err(|e| format!("resolving {}: {e}", epoch_dir.display()))?;
    if canonical.parent() != Some(canonical_stream_dir) || canonical != epoch_dir {
        return Err(format!(
            "{} resolves to {}, not directly inside {}; not deleting",
            epoch_dir.display(),
            canonical.display(),
            canonical_stream_dir.display()
        ));
    }
    let entries =
        fs::read_dir(&canonical).map_err(|e| format!("reading {}: {e}", canonical.display()))?;
    let mut first_error: Option<String> = None;
    let mut bytes = 0;
    for entry in entries {
        let result = entry
            .map_err(|e| format!("reading {}: {e}", canonical.display()))
            .and_then(|entry| {
                let path = entry.path();
                // `DirEntry::metadata` does not follow symlinks.
                let meta = entry
                    .metadata()
                    .map_err(|e| format!("inspecting {}: {e}", path.display()))?;
                if meta.is_file() {
                    fs::remove_file(&path)
                        .map_err(|e| format!("removing {}: {e}", path.display()))?;
                    bytes += std::os::unix::fs::MetadataExt::blocks(&meta) * 512;
                    Ok(())
                } else {
                    Err(format!(
                        "{} is not a regular file; left in place",
                        path.display()
                    ))
                }
            });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    fs::remove_dir(&canonical).map_err(|e| format!("removing {}: {e}", canonical.display()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_current_and_newest_older_ones() {
        let epochs = [1, 2, 3, 4, 5, 6];
        assert_eq!(select_candidates(&epochs, 6, 2), vec![4, 3, 2, 1]);
        assert_eq!(select_candidates(&epochs, 6, 1), vec![5, 4, 3, 2, 1]);
        assert_eq!(select_candidates(&epochs, 6, 0), vec![5, 4, 3, 2, 1]);
        assert_eq!(select_candidates(&epochs, 6, 6), Vec::<u64>::new());
        assert_eq!(select_candidates(&epochs, 6, 100), Vec::<u64>::new());
        // Newer-than-current epochs are never candidates, nor is the current one.
        assert_eq!(select_candidates(&epochs, 3, 1), vec![2, 1]);
        assert_eq!(select_candidates(&[7, 9], 3, 1), Vec::<u64>::new());
        assert_eq!(select_candidates(&[], 3, 1), Vec::<u64>::new());
    }

    #[test]
    fn removes_files_then_directory_and_refuses_foreign_entries() {
        let dir = tempfile::tempdir().unwrap();
        let stream = fs::canonicalize(dir.path()).unwrap();
        let epoch = stream.join("3");
        fs::create_dir(&epoch).unwrap();
        fs::write(epoch.join("header.ring"), b"x").unwrap();
        assert!(remove_epoch_dir(&stream, &epoch).is_ok());
        assert!(!epoch.exists());

        let epoch = stream.join("4");
        fs::create_dir_all(epoch.join("sub")).unwrap();
        assert!(remove_epoch_dir(&stream, &epoch).is_err());
        assert!(epoch.join("sub").is_dir());

        let elsewhere = tempfile::tempdir().unwrap();
        let other = fs::canonicalize(elsewhere.path()).unwrap();
        assert!(remove_epoch_dir(&stream, &other).is_err());
        assert!(other.is_dir());
    }
}
