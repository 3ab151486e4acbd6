//! `tp gc --dry-run`: which epoch directories the driver's epoch GC policy
//! (`policies.epoch_gc_*`, Driver Model §17; docs/DESIGN.md "Epochs across restarts") would
//! remove now, and why each other one stays, with the storage each holds
//! ([`super::footprint`]). Lists directories only; deletes nothing.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Serialize;

use super::footprint::{allocated_bytes, human};
use super::{Exit, ToolError};
use crate::config::DriverConfig;
use crate::driver::provision::plan_gc;
use crate::shm::paths::CanonicalLayout;

/// The policy's verdict on one epoch directory.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GcEpoch {
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
    /// Bytes it holds, as `du` counts (allocated blocks, not apparent size).
    pub bytes: u64,
}

/// The verdict on every epoch directory of a namespace.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GcPlan {
    /// The namespace directory judged.
    pub namespace_dir: PathBuf,
    /// Bytes every epoch directory holds.
    pub total_bytes: u64,
    /// Bytes the directories to be removed hold (what a GC pass would give back).
    pub removable_bytes: u64,
    /// Each epoch directory, by stream, newest first.
    pub epochs: Vec<GcEpoch>,
}

/// The verdict on every epoch directory under the configuration's namespace, measured.
pub fn dry_run(config: &DriverConfig) -> Result<GcPlan, ToolError> {
    let input = |e: String| ToolError::new(Exit::Input, e);
    let layout = CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
        .map_err(|e| ToolError::new(Exit::Usage, format!("shm.base_dir / shm.namespace: {e}")))?;
    let verdicts = plan_gc(config, SystemTime::now()).map_err(input)?;
    let epochs = verdicts
        .into_iter()
        .map(|v| {
            let bytes = allocated_bytes(&v.path)
                .map_err(|e| input(format!("measuring {}: {e}", v.path.display())))?;
            Ok(GcEpoch {
                stream_id: v.stream_id,
                epoch: v.epoch,
                path: v.path,
                remove: v.remove,
                reason: v.reason,
                bytes,
            })
        })
        .collect::<Result<Vec<_>, ToolError>>()?;
    Ok(GcPlan {
        namespace_dir: layout.namespace_dir(),
        total_bytes: epochs.iter().map(|e| e.bytes).sum(),
        removable_bytes: epochs.iter().filter(|e| e.remove).map(|e| e.bytes).sum(),
        epochs,
    })
}

/// The plan as text, removals first.
pub fn render(config: &DriverConfig, plan: &GcPlan) -> String {
    let epochs = &plan.epochs;
    let removed = epochs.iter().filter(|v| v.remove).count();
    let mut out = format!(
        "epoch GC dry run under {} (namespace {:?}): {removed} of {} epoch directories would be removed\n\
         footprint: {} in {} epoch directories; removal would free {}\n",
        config.shm.base_dir.display(),
        config.shm.namespace,
        epochs.len(),
        human(plan.total_bytes),
        epochs.len(),
        human(plan.removable_bytes),
    );
    for verdict in epochs
        .iter()
        .filter(|v| v.remove)
        .chain(epochs.iter().filter(|v| !v.remove))
    {
        let _ = writeln!(
            out,
            "  {} stream {} epoch {} ({}): {}\n      {}",
            if verdict.remove { "REMOVE" } else { "keep  " },
            verdict.stream_id,
            verdict.epoch,
            human(verdict.bytes),
            verdict.path.display(),
            verdict.reason
        );
    }
    out
}
