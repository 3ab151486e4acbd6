//! When a frame being filled is worth a `PROGRESS` (Wire Spec §10.2.2 "Throttling
//! guidance"): at most one per interval for the whole stream, and only once
//! `payload_bytes_filled` has advanced by the byte delta (or by the unit delta in whole
//! rows/columns) since the last one reported; the value sent is always the latest. STARTED
//! and COMPLETE are not throttled: one of each per frame. Sans-IO: times are passed in.

use super::policy::ProgressPolicy;

/// The throttle state of one stream: the last progress message sent, and how far the
/// frame being filled was reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProgressThrottle {
    last_sent_ns: Option<u64>,
    reported: u64,
}

impl ProgressThrottle {
    /// A new frame starts (its STARTED, with 0 bytes, is sent at `now_ns`).
    pub fn start(&mut self, now_ns: u64) {
        self.reported = 0;
        self.last_sent_ns = Some(now_ns);
    }

    /// `filled` bytes of the frame are written at `now_ns`; returns whether a `PROGRESS`
    /// with that value is due under `policy` (the caller then sends it and calls
    /// [`ProgressThrottle::sent`]). `stride` is the row/column stride for the unit delta.
    pub fn due(&self, policy: &ProgressPolicy, filled: u64, stride: u64, now_ns: u64) -> bool {
        if filled <= self.reported {
            return false;
        }
        if self
            .last_sent_ns
            .is_some_and(|at| now_ns.saturating_sub(at) < policy.interval_ns)
        {
            return false;
        }
        let advance = filled - self.reported;
        let by_units = policy.major_delta_units > 0
            && stride > 0
            && advance / stride >= u64::from(policy.major_delta_units);
        advance >= policy.bytes_delta || by_units
    }

    /// A `PROGRESS` of `filled` bytes went out at `now_ns`.
    pub fn sent(&mut self, filled: u64, now_ns: u64) {
        self.reported = filled;
        self.last_sent_ns = Some(now_ns);
    }

    /// The last value reported for the frame being filled.
    pub fn reported(&self) -> u64 {
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    fn policy(interval_us: u64, bytes: u64, units: u32) -> ProgressPolicy {
        ProgressPolicy {
            interval_ns: interval_us * US,
            bytes_delta: bytes,
            major_delta_units: units,
        }
    }

    /// Reports `filled` at each `(time_us, filled)` and returns what was sent.
    fn run(p: &ProgressPolicy, stride: u64, steps: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut t = ProgressThrottle::default();
        t.start(0);
        let mut sent = Vec::new();
        for &(at, filled) in steps {
            if t.due(p, filled, stride, at * US) {
                t.sent(filled, at * US);
                sent.push((at, filled));
            }
        }
        sent
    }

    #[test]
    fn at_most_one_progress_per_interval_and_always_the_latest_value() {
        // 16 KiB rows arrive every 50 µs; 250 µs, 64 KiB.
        let steps: Vec<(u64, u64)> = (1..=40).map(|i| (i * 50, i * 16 * 1024)).collect();
        let sent = run(&policy(250, 64 * 1024, 0), 16 * 1024, &steps);
        assert_eq!(
            sent.first(),
            Some(&(250, 5 * 16 * 1024)),
            "the latest, not the 64 KiB mark"
        );
        assert!(sent.windows(2).all(|w| w[1].0 - w[0].0 >= 250));
        assert_eq!(sent.len(), 8);
    }

    #[test]
    fn small_advances_wait_for_the_byte_delta() {
        // 1 KiB every 1 ms: the interval has long passed, the 64 KiB delta decides.
        let steps: Vec<(u64, u64)> = (1..=200).map(|i| (i * 1_000, i * 1024)).collect();
        let sent = run(&policy(250, 64 * 1024, 0), 0, &steps);
        assert_eq!(
            sent,
            [(64_000, 65_536), (128_000, 131_072), (192_000, 196_608)]
        );
    }

    #[test]
    fn a_unit_delta_reports_whole_rows_sooner() {
        // 1 KiB rows, 4 rows asked for: every 4 KiB despite the 64 KiB byte delta.
        let steps: Vec<(u64, u64)> = (1..=12).map(|i| (i * 1_000, i * 1024)).collect();
        let sent = run(&policy(250, 64 * 1024, 4), 1024, &steps);
        assert_eq!(sent, [(4_000, 4096), (8_000, 8192), (12_000, 12_288)]);
    }

    #[test]
    fn nothing_without_an_advance() {
        let sent = run(&policy(0, 0, 0), 0, &[(1, 0), (2, 10), (3, 10), (4, 9)]);
        assert_eq!(sent, [(2, 10)]);
    }
}
