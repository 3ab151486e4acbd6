//! `tp inspect`: a read-only look at SHM region files (Wire Spec §6–§9): the superblock and,
//! for a header ring, every slot's state, with what a consumer would refuse and why.
//!
//! Files are read with `pread` (hugetlbfs files too), never mapped writable or written.
//! A slot is read twice around its bytes, as a consumer's seqlock read does, so a slot
//! that changed while it was read is reported as such rather than decoded from torn bytes.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::client::tensor::{check_extent, tensor_layout};
use crate::clock::monotonic_now_ns;
use crate::protocol::control::RegionType;
use crate::shm::layout::{
    decode_slot, decode_superblock, header_index, header_ring_len, is_valid_stride,
    payload_pool_len, HEADER_SLOT_BYTES, LAYOUT_VERSION, MAGIC, SUPERBLOCK_SIZE,
};
use crate::shm::paths::{HEADER_RING_FILE, POOL_FILE_EXTENSION};
use crate::shm::seqlock::{is_committed, logical_sequence};

/// Activity older than this is reported: the driver refreshes every live epoch's
/// superblocks far more often.
const STALE_ACTIVITY_NS: u64 = 5_000_000_000;

/// Why a file could not be inspected at all.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct InspectError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong.
    pub reason: String,
}

/// The superblock as found.
#[derive(Debug, Clone, Serialize)]
pub struct SuperblockView {
    /// Magic as found.
    pub magic: String,
    /// Layout version.
    pub layout_version: u32,
    /// Epoch.
    pub epoch: u64,
    /// Stream id.
    pub stream_id: u32,
    /// `HEADER_RING`, `PAYLOAD_POOL` or `UNKNOWN(n)`.
    pub region_type: String,
    /// Pool id.
    pub pool_id: u16,
    /// Slots.
    pub nslots: u32,
    /// Slot bytes.
    pub slot_bytes: u32,
    /// Stride.
    pub stride_bytes: u32,
    /// Superblock `pid`: the process that created the region, the driver (`tp-driver`, or
    /// the media driver hosting the plugin); producers write slots but not this field.
    pub pid: u64,
    /// Whether that pid runs now.
    pub pid_running: bool,
    /// Seconds since the region was created (monotonic clock).
    pub age_s: f64,
    /// Seconds since the driver last refreshed the activity timestamp.
    pub activity_age_s: f64,
}

/// One header slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    /// Slot index.
    pub index: u32,
    /// `empty`, `in_progress`, `committed` or `changed_while_read`.
    pub state: &'static str,
    /// Logical sequence of the `seq_commit` word.
    pub seq: u64,
    /// Payload bytes.
    pub values_len_bytes: u32,
    /// Pool id.
    pub pool_id: u16,
    /// Payload slot.
    pub payload_slot: u32,
    /// Tensor as `DTYPE[d0, d1, ...]`, when it decodes.
    pub tensor: Option<String>,
    /// Why a consumer would drop a frame read from this slot (empty: it would accept).
    pub rejects: Vec<String>,
}

/// What `tp inspect` found in one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Its length.
    pub file_len: u64,
    /// Its superblock, if it has one.
    pub superblock: Option<SuperblockView>,
    /// Header slots (header rings only).
    pub slots: Vec<SlotView>,
    /// What a consumer would refuse in the region as a whole.
    pub problems: Vec<String>,
    /// Things worth knowing that a consumer does not refuse.
    pub notes: Vec<String>,
}

impl FileReport {
    /// Whether anything would be refused (region or any slot).
    pub fn has_problems(&self) -> bool {
        !self.problems.is_empty() || self.slots.iter().any(|s| !s.rejects.is_empty())
    }
}

/// Pool geometry known from sibling files, for judging slots.
#[derive(Debug, Clone, Copy)]
struct PoolInfo {
    pool_id: u16,
    nslots: u32,
    stride_bytes: u32,
}

/// Inspects one file.
pub fn inspect_file(path: &Path) -> Result<FileReport, InspectError> {
    let fail = |reason: String| InspectError {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".into()));
    }
    let file_len = meta.len();
    let mut report = FileReport {
        path: path.to_owned(),
        file_len,
        superblock: None,
        slots: Vec::new(),
        problems: Vec::new(),
        notes: Vec::new(),
    };
    let mut head = [0u8; SUPERBLOCK_SIZE];
    if file_len < SUPERBLOCK_SIZE as u64 {
        report.problems.push(format!(
            "file is {file_len} bytes, shorter than the {SUPERBLOCK_SIZE}-byte superblock"
        ));
        return Ok(report);
    }
    file.read_exact_at(&mut head, 0)
        .map_err(|e| fail(format!("cannot read the superblock: {e}")))?;
    let sb = decode_superblock(&head).map_err(|e| fail(e.to_string()))?;
    let now = monotonic_now_ns();
    let region_type = sb.region_type;
    let view = SuperblockView {
        magic: if sb.magic == MAGIC {
            "TPOLSHM1".into()
        } else {
            format!("{:#018x}", sb.magic)
        },
        layout_version: sb.layout_version,
        epoch: sb.epoch,
        stream_id: sb.stream_id,
        region_type: region_type.to_string(),
        pool_id: sb.pool_id,
        nslots: sb.nslots,
        slot_bytes: sb.slot_bytes,
        stride_bytes: sb.stride_bytes,
        pid: sb.pid,
        pid_running: pid_running(sb.pid),
        age_s: seconds_between(sb.start_timestamp_ns, now),
        activity_age_s: seconds_between(sb.activity_timestamp_ns, now),
    };
    let problems = &mut report.problems;
    if sb.magic != MAGIC {
        problems.push(format!(
            "magic {} is not TPOLSHM1: not a tensorpool region",
            view.magic
        ));
    }
    if sb.layout_version != LAYOUT_VERSION {
        problems.push(format!(
            "layout version {} is not {LAYOUT_VERSION}, the only one consumers accept",
            sb.layout_version
        ));
    }
    if sb.nslots == 0 || !sb.nslots.is_power_of_two() {
        problems.push(format!("nslots {} is not a power of two", sb.nslots));
    }
    let expected_len = match region_type {
        RegionType::HeaderRing => {
            if sb.slot_bytes != HEADER_SLOT_BYTES as u32 {
                problems.push(format!(
                    "slot bytes {} is not {HEADER_SLOT_BYTES} (header ring)",
                    sb.slot_bytes
                ));
            }
            header_ring_len(sb.nslots)
        }
        RegionType::PayloadPool => {
            if !is_valid_stride(sb.stride_bytes) {
                problems.push(format!(
                    "stride {} is not a power-of-two multiple of 64",
                    sb.stride_bytes
                ));
            }
            payload_pool_len(sb.nslots, sb.stride_bytes)
        }
        other => {
            problems.push(format!(
                "region type {other} is neither HEADER_RING nor PAYLOAD_POOL"
            ));
            None
        }
    };
    if let Some(len) = expected_len.filter(|len| file_len < *len) {
        problems.push(format!(
            "file is {file_len} bytes, shorter than the {len} bytes the superblock describes"
        ));
    }
    check_path(path, &view, problems);
    if !view.pid_running {
        report.notes.push(format!(
            "pid {} does not run here (the driver that made the file is gone, or runs in another pid namespace)",
            sb.pid
        ));
    }
    if now.saturating_sub(sb.activity_timestamp_ns) > STALE_ACTIVITY_NS {
        report.notes.push(format!(
            "activity is {:.1} s old: no driver refreshes this epoch (retired, or its driver stopped)",
            view.activity_age_s
        ));
    }
    if region_type == RegionType::HeaderRing && report.problems.is_empty() {
        let pools = sibling_pools(path);
        if pools.is_empty() {
            report
                .notes
                .push("no pool files beside the ring: slot lengths and pools not checked".into());
        }
        for index in 0..sb.nslots {
            report
                .slots
                .push(read_slot(&file, index, sb.nslots, &pools)?);
        }
    }
    report.superblock = Some(view);
    Ok(report)
}

/// The header ring and pools of one epoch directory, ring first.
pub fn epoch_files(epoch_dir: &Path) -> Result<Vec<PathBuf>, InspectError> {
    let entries = std::fs::read_dir(epoch_dir).map_err(|e| InspectError {
        path: epoch_dir.to_owned(),
        reason: format!("cannot read the epoch directory: {e}"),
    })?;
    let mut pools: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == POOL_FILE_EXTENSION))
        .collect();
    pools.sort();
    let mut files = vec![epoch_dir.join(HEADER_RING_FILE)];
    files.extend(pools);
    Ok(files)
}

fn check_path(path: &Path, view: &SuperblockView, problems: &mut Vec<String>) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let parent = |levels: usize| {
        path.ancestors()
            .nth(levels)
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
    };
    if let Some(epoch) = parent(1).filter(|e| *e != view.epoch) {
        problems.push(format!(
            "superblock epoch {} differs from its directory's epoch {epoch}",
            view.epoch
        ));
    }
    if let Some(stream) = parent(2).filter(|s| *s != u64::from(view.stream_id)) {
        problems.push(format!(
            "superblock stream {} differs from its directory's stream {stream}",
            view.stream_id
        ));
    }
    if let Some(pool) = name
        .strip_suffix(".pool")
        .and_then(|p| p.parse::<u16>().ok())
    {
        if pool != view.pool_id {
            problems.push(format!(
                "superblock pool id {} differs from the file name's {pool}",
                view.pool_id
            ));
        }
    }
}

fn sibling_pools(ring: &Path) -> Vec<PoolInfo> {
    let Some(dir) = ring.parent() else {
        return Vec::new();
    };
    let Ok(files) = epoch_files(dir) else {
        return Vec::new();
    };
    files
        .iter()
        .skip(1)
        .filter_map(|p| {
            let file = File::open(p).ok()?;
            let mut head = [0u8; SUPERBLOCK_SIZE];
            file.read_exact_at(&mut head, 0).ok()?;
            let sb = decode_superblock(&head).ok()?;
            Some(PoolInfo {
                pool_id: sb.pool_id,
                nslots: sb.nslots,
                stride_bytes: sb.stride_bytes,
            })
        })
        .collect()
}

fn read_slot(
    file: &File,
    index: u32,
    nslots: u32,
    pools: &[PoolInfo],
) -> Result<SlotView, InspectError> {
    let offset = SUPERBLOCK_SIZE as u64 + u64::from(index) * HEADER_SLOT_BYTES as u64;
    let mut image = [0u8; HEADER_SLOT_BYTES];
    let mut again = [0u8; 8];
    let read = |buf: &mut [u8]| {
        file.read_exact_at(buf, offset).map_err(|e| InspectError {
            path: PathBuf::new(),
            reason: format!("reading slot {index}: {e}"),
        })
    };
    read(&mut image)?;
    read(&mut again)?;
    let word = u64::from_le_bytes(image[..8].try_into().expect("8 bytes"));
    let mut view = SlotView {
        index,
        state: "empty",
        seq: logical_sequence(word),
        values_len_bytes: 0,
        pool_id: 0,
        payload_slot: 0,
        tensor: None,
        rejects: Vec::new(),
    };
    if word == 0 {
        return Ok(view);
    }
    if again != image[..8] {
        view.state = "changed_while_read";
        view.rejects.push(
            "seq_commit changed while the slot was read: a consumer drops such a read as late"
                .into(),
        );
        return Ok(view);
    }
    if !is_committed(word) {
        view.state = "in_progress";
        view.rejects.push(format!(
            "in progress (seq {} not committed): a consumer drops a frame read from it",
            view.seq
        ));
        return Ok(view);
    }
    view.state = "committed";
    if header_index(view.seq, nslots) != index {
        view.rejects.push(format!(
            "seq {} belongs in slot {}, not {index}",
            view.seq,
            header_index(view.seq, nslots)
        ));
    }
    let (_, contents) = match decode_slot(&image) {
        Ok(decoded) => decoded,
        Err(e) => {
            view.rejects.push(format!("slot header: {e}"));
            return Ok(view);
        }
    };
    view.values_len_bytes = contents.values_len_bytes;
    view.pool_id = contents.pool_id;
    view.payload_slot = contents.payload_slot;
    let tensor = &contents.tensor;
    let ndims = usize::from(tensor.ndims).min(tensor.dims.len());
    view.tensor = Some(format!("{}{:?}", tensor.dtype, &tensor.dims[..ndims]));
    let rejects = &mut view.rejects;
    if contents.payload_slot != index {
        rejects.push(format!(
            "payload slot {} is not the header index {index} (v1.2)",
            contents.payload_slot
        ));
    }
    if contents.payload_offset != 0 {
        rejects.push(format!(
            "payload offset {} is not 0 (v1.2)",
            contents.payload_offset
        ));
    }
    match tensor_layout(tensor) {
        Ok(layout) => {
            if let Err(e) = check_extent(layout.extent_bytes, contents.values_len_bytes as usize) {
                rejects.push(format!("tensor: {e}"));
            }
        }
        Err(e) => rejects.push(format!("tensor: {e}")),
    }
    if !pools.is_empty() {
        match pools.iter().find(|p| p.pool_id == contents.pool_id) {
            None => rejects.push(format!(
                "pool {} is not a pool of this epoch",
                contents.pool_id
            )),
            Some(pool) => {
                if contents.values_len_bytes > pool.stride_bytes {
                    rejects.push(format!(
                        "{} payload bytes exceed pool {}'s stride {}",
                        contents.values_len_bytes, pool.pool_id, pool.stride_bytes
                    ));
                }
                if contents.payload_slot >= pool.nslots {
                    rejects.push(format!(
                        "payload slot {} is beyond pool {}'s {} slots",
                        contents.payload_slot, pool.pool_id, pool.nslots
                    ));
                }
            }
        }
    }
    Ok(view)
}

fn seconds_between(earlier_ns: u64, now_ns: u64) -> f64 {
    now_ns.saturating_sub(earlier_ns) as f64 / 1e9
}

fn pid_running(pid: u64) -> bool {
    i32::try_from(pid).is_ok_and(|pid| pid > 0 && Path::new(&format!("/proc/{pid}")).exists())
}

/// The report as text: superblock, slot counts, the newest slots, every refused slot.
pub fn render(report: &FileReport, all_slots: bool) -> String {
    use std::fmt::Write as _;
    let mut out = format!("{} ({} bytes)\n", report.path.display(), report.file_len);
    if let Some(sb) = &report.superblock {
        let _ = writeln!(
            out,
            "  superblock: magic {}, layout version {}, {} stream {} epoch {}, pool {}, {} slots of {} bytes, stride {}",
            sb.magic, sb.layout_version, sb.region_type, sb.stream_id, sb.epoch, sb.pool_id,
            sb.nslots, sb.slot_bytes, sb.stride_bytes
        );
        let _ = writeln!(
            out,
            "  driver pid {} ({}), created {:.1} s ago, activity {:.1} s ago",
            sb.pid,
            if sb.pid_running {
                "running"
            } else {
                "not running"
            },
            sb.age_s,
            sb.activity_age_s
        );
    }
    if !report.slots.is_empty() {
        let count = |state: &str| report.slots.iter().filter(|s| s.state == state).count();
        let _ = writeln!(
            out,
            "  slots: {} committed, {} in progress, {} empty, {} changed while read",
            count("committed"),
            count("in_progress"),
            count("empty"),
            count("changed_while_read")
        );
        let mut newest: Vec<&SlotView> = report
            .slots
            .iter()
            .filter(|s| s.state == "committed")
            .collect();
        newest.sort_by_key(|s| std::cmp::Reverse(s.seq));
        let shown: Vec<&SlotView> = report
            .slots
            .iter()
            .filter(|s| {
                all_slots
                    || !s.rejects.is_empty()
                    || newest.iter().take(8).any(|n| n.index == s.index)
            })
            .collect();
        for slot in shown {
            let _ = write!(
                out,
                "  slot {:>4}: {:<18} seq {:>8}",
                slot.index, slot.state, slot.seq
            );
            if let Some(tensor) = &slot.tensor {
                let _ = write!(
                    out,
                    "  {} bytes in pool {} slot {}, {tensor}",
                    slot.values_len_bytes, slot.pool_id, slot.payload_slot
                );
            }
            out.push('\n');
            for reject in &slot.rejects {
                let _ = writeln!(out, "      REJECT: {reject}");
            }
        }
    }
    for problem in &report.problems {
        let _ = writeln!(out, "  PROBLEM: {problem}");
    }
    for note in &report.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    out
}
