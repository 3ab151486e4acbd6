//! What a scenario is and what it gets to work with.
//!
//! A scenario measures a few figures and returns them. Reference scenarios (memcpy, raw
//! Aeron, iceoryx2) mark theirs with [`Figure::marked_reference`]; a scenario that is compared
//! with them names them in [`Scenario::references`], and the runner measures those first,
//! in the same run, even under `--only`. It then finds their figures with
//! [`RunContext::figure`] and attaches them with [`Figure::against`].

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;
use crate::report::Figure;

/// A benchmark the harness can run (`--only NAME`).
pub trait Scenario {
    /// The `--only` name, e.g. `memcpy`.
    fn name(&self) -> &'static str;

    /// One line saying what it measures (shown by `--list`).
    fn summary(&self) -> &'static str;

    /// Scenarios whose figures this one is compared with; run before it, once per run.
    fn references(&self) -> &'static [&'static str] {
        &[]
    }

    /// Measures and returns the figures. Must stop every process and thread it starts and
    /// remove every directory it creates, also when it fails.
    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError>;
}

/// What every scenario gets: the run's settings and the figures measured so far.
pub struct RunContext {
    /// How long one measurement (one figure or one set of percentiles) runs.
    pub duration: Duration,
    /// `tp-driver` binary given with `--tp-driver`, if any.
    pub tp_driver: Option<PathBuf>,
    /// Whether `driver-scale` may run `cargo build` to get an up-to-date `tp-driver`.
    pub build_tp_driver: bool,
    figures: Vec<Figure>,
}

impl RunContext {
    /// A context with no figures yet.
    pub fn new(duration: Duration, tp_driver: Option<PathBuf>, build_tp_driver: bool) -> Self {
        Self {
            duration,
            tp_driver,
            build_tp_driver,
            figures: Vec::new(),
        }
    }

    /// `duration` × `factor` (for warm-ups and windows that scale with `--duration-s`).
    pub fn scaled(&self, factor: f64) -> Duration {
        self.duration.mul_f64(factor)
    }

    /// The figure `name` of `scenario` measured earlier in this run, if any.
    pub fn figure(&self, scenario: &str, name: &str) -> Option<&Figure> {
        self.figures
            .iter()
            .find(|f| f.scenario == scenario && f.name == name && f.error.is_none())
    }

    /// Records figures (the runner calls this after each scenario).
    pub fn record(&mut self, figures: impl IntoIterator<Item = Figure>) {
        self.figures.extend(figures);
    }

    /// Takes every figure out (at the end of the run).
    pub fn into_figures(self) -> Vec<Figure> {
        self.figures
    }
}
