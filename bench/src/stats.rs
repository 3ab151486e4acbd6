//! Latency distributions (HDR histogram, nanosecond resolution, reported in µs) and the
//! names figures built from them share across scenarios, so a later scenario can find
//! its reference by name.

use hdrhistogram::Histogram;

use crate::error::{BenchError, Context as _};
use crate::report::Figure;

/// The percentiles every latency scenario reports, as (figure suffix, quantile).
/// `max` is reported as quantile 1.0.
pub const PERCENTILES: [(&str, f64); 4] =
    [("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999), ("max", 1.0)];

/// The size as figure names print it: `64 B`, `64 KiB`, `640 KiB`, `4 MiB`.
pub fn size_label(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

/// Name of a latency figure, e.g. `rtt 64 B p99`.
pub fn latency_name(size: usize, percentile: &str) -> String {
    format!("rtt {} {percentile}", size_label(size))
}

/// A latency distribution recorded in nanoseconds.
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Latency {
    /// An empty distribution covering 1 ns to 100 s with 3 significant digits.
    pub fn new() -> Result<Self, BenchError> {
        let histogram =
            Histogram::new_with_bounds(1, 100_000_000_000, 3).setup("creating a histogram")?;
        Ok(Self { histogram })
    }

    /// Records one sample (clamped into the histogram's range).
    pub fn record_ns(&mut self, ns: u64) {
        self.histogram.saturating_record(ns.max(1));
    }

    /// Adds every sample of `other` (both cover the same range).
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds and precision on both sides, so nothing can be out of range.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The value at `quantile` (1.0 = max), µs.
    pub fn quantile_us(&self, quantile: f64) -> f64 {
        let ns = if quantile >= 1.0 {
            self.histogram.max()
        } else {
            self.histogram.value_at_quantile(quantile)
        };
        ns as f64 / 1000.0
    }

    /// Mean, µs.
    pub fn mean_us(&self) -> f64 {
        self.histogram.mean() / 1000.0
    }

    /// One figure per entry of [`PERCENTILES`], named by `name(percentile)`, in µs.
    pub fn figures(&self, scenario: &str, name: impl Fn(&str) -> String) -> Vec<Figure> {
        PERCENTILES
            .iter()
            .map(|(label, q)| Figure::new(scenario, name(label), self.quantile_us(*q), "µs"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels() {
        assert_eq!(size_label(64), "64 B");
        assert_eq!(size_label(64 * 1024), "64 KiB");
        assert_eq!(size_label(640 * 1024), "640 KiB");
        assert_eq!(size_label(4 << 20), "4 MiB");
        assert_eq!(latency_name(64, "p99"), "rtt 64 B p99");
    }

    #[test]
    fn percentiles_come_out_in_microseconds() {
        let mut latency = Latency::new().expect("histogram bounds are valid");
        for ns in 1..=1000u64 {
            latency.record_ns(ns * 1000);
        }
        assert_eq!(latency.count(), 1000);
        assert!((latency.quantile_us(0.5) - 500.0).abs() < 1.0);
        assert!((latency.quantile_us(1.0) - 1000.0).abs() < 1.0);
    }
}
