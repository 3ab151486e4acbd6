//! The SHM footprint `tp status` and `tp gc` show: the storage the epoch directories of a
//! namespace hold (docs/USER_GUIDE.md, "Sizing and footprint").
//!
//! Bytes are counted as `du` counts them: allocated blocks (`st_blocks` × 512) of every
//! file and directory, each inode once, not the files' apparent length. A region file on
//! tmpfs is sparse until its pages are touched: with `policies.prefault_shm` off an idle
//! epoch holds almost nothing, and it grows as producers write slots; with prefault on it
//! holds its whole length from the start (docs/DESIGN.md, "SHM footprint, as `tp`
//! measures it").

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::DriverConfig;
use crate::shm::paths::CanonicalLayout;

/// One epoch directory's footprint.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct EpochFootprint {
    /// Stream id.
    pub stream_id: u32,
    /// Epoch.
    pub epoch: u64,
    /// The epoch directory.
    pub path: PathBuf,
    /// Bytes allocated on disk (or in memory, on tmpfs and hugetlbfs), as `du` counts.
    pub bytes: u64,
}

/// Every epoch directory of a namespace.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Footprint {
    /// The namespace directory (`<base_dir>/tensorpool-<user>/<namespace>`).
    pub namespace_dir: PathBuf,
    /// Sum of [`EpochFootprint::bytes`].
    pub total_bytes: u64,
    /// Each epoch directory, by stream then epoch.
    pub epochs: Vec<EpochFootprint>,
}

impl Footprint {
    /// Bytes of one stream's epochs.
    pub fn stream_bytes(&self, stream_id: u32) -> u64 {
        self.epochs
            .iter()
            .filter(|e| e.stream_id == stream_id)
            .map(|e| e.bytes)
            .sum()
    }
}

/// Measures every `<stream>/<epoch>` directory under the namespace of `config` (an absent
/// namespace directory has no epochs). Entries that are not numbers are not epochs and
/// are skipped, as the driver's epoch GC skips them.
pub fn measure(config: &DriverConfig) -> Result<Footprint, String> {
    let layout = CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
        .map_err(|e| e.to_string())?;
    let namespace_dir = layout.namespace_dir();
    let mut epochs = Vec::new();
    for (stream_id, stream_dir) in numbered(&namespace_dir)? {
        let Ok(stream_id) = u32::try_from(stream_id) else {
            continue;
        };
        for (epoch, path) in numbered(&stream_dir)? {
            let bytes =
                allocated_bytes(&path).map_err(|e| format!("measuring {}: {e}", path.display()))?;
            epochs.push(EpochFootprint {
                stream_id,
                epoch,
                path,
                bytes,
            });
        }
    }
    epochs.sort_by_key(|e| (e.stream_id, e.epoch));
    Ok(Footprint {
        namespace_dir,
        total_bytes: epochs.iter().map(|e| e.bytes).sum(),
        epochs,
    })
}

/// The subdirectories of `dir` whose names are decimal numbers, with those numbers.
fn numbered(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("reading {}: {e}", dir.display())),
    };
    Ok(entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let number = e.file_name().to_str()?.parse::<u64>().ok()?;
            Some((number, e.path()))
        })
        .collect())
}

/// Bytes allocated to `path` and everything below it, as `du -s -B1` counts: `st_blocks`
/// × 512 of each inode once (hard links are not counted twice), symlinks not followed.
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut pending = vec![path.to_owned()];
    while let Some(next) = pending.pop() {
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            // Removed while measured (epoch GC runs beside us): it holds nothing now.
            Err(e) if e.kind() == io::ErrorKind::NotFound && next != path => continue,
            Err(e) => return Err(e),
        };
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if meta.is_dir() {
            match fs::read_dir(&next) {
                Ok(entries) => pending.extend(entries.filter_map(Result::ok).map(|e| e.path())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(total)
}

/// `bytes` for people: B, KiB, MiB or GiB with one decimal.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_sparse_file_counts_its_blocks_not_its_length_and_links_count_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sparse = dir.path().join("sparse");
        fs::File::create(&sparse)
            .and_then(|f| f.set_len(64 << 20))
            .expect("a sparse file");
        let dense = dir.path().join("dense");
        fs::File::create(&dense)
            .and_then(|mut f| f.write_all(&vec![1u8; 1 << 20]))
            .expect("a written file");
        fs::hard_link(&dense, dir.path().join("link")).expect("a hard link");
        let blocks = |p: &Path| fs::symlink_metadata(p).expect("stat").blocks() * 512;
        let expected = blocks(dir.path()) + blocks(&sparse) + blocks(&dense);
        assert_eq!(allocated_bytes(dir.path()).expect("measured"), expected);
        assert!(
            expected < 32 << 20,
            "the sparse 64 MiB file is not counted whole"
        );
        assert!(expected >= 1 << 20, "the written 1 MiB is counted");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(325 << 20), "325.0 MiB");
        assert_eq!(human(3 << 30), "3.0 GiB");
    }
}
