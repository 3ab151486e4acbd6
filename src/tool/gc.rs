//! `tp gc --dry-run`: which epoch directories the driver's epoch GC policy
//! (`policies.epoch_gc_*`, Driver Model §17; docs/DESIGN.md "Epochs across restarts") would
//! remove now, and why each other one stays. Lists directories only; deletes nothing.

use std::fmt::Write as _;
use std::time::SystemTime;

use super::{Exit, ToolError};
use crate::config::DriverConfig;
use crate::driver::provision::{plan_gc, GcVerdict};

/// The verdict on every epoch directory under the configuration's namespace.
pub fn dry_run(config: &DriverConfig) -> Result<Vec<GcVerdict>, ToolError> {
    plan_gc(config, SystemTime::now()).map_err(|e| ToolError::new(Exit::Input, e))
}

/// The verdicts as text, removals first.
pub fn render(config: &DriverConfig, verdicts: &[GcVerdict]) -> String {
    let removed = verdicts.iter().filter(|v| v.remove).count();
    let mut out = format!(
        "epoch GC dry run under {} (namespace {:?}): {removed} of {} epoch directories would be removed\n",
        config.shm.base_dir.display(),
        config.shm.namespace,
        verdicts.len()
    );
    for verdict in verdicts
        .iter()
        .filter(|v| v.remove)
        .chain(verdicts.iter().filter(|v| !v.remove))
    {
        let _ = writeln!(
            out,
            "  {} stream {} epoch {}: {}\n      {}",
            if verdict.remove { "REMOVE" } else { "keep  " },
            verdict.stream_id,
            verdict.epoch,
            verdict.path.display(),
            verdict.reason
        );
    }
    out
}
