//! Whom progress is for and how often (Wire Spec §10.1.2 hints, §10.2.2 "Throttling
//! guidance"): the producer keeps the progress wishes of the consumers of its stream, as
//! their `ConsumerHello`s state them, and aggregates them into one policy: the smallest
//! interval and the smallest deltas offered, never below the producer's floors, the
//! producer's defaults where nobody gave a hint, and nothing at all while no consumer
//! supports progress.

use std::time::Duration;

/// A consumer's progress wishes, sent in its `ConsumerHello` (§10.1.2); `None` leaves the
/// producer's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgressHints {
    /// Least time between `PROGRESS` messages, in microseconds.
    pub interval_us: Option<u32>,
    /// Least advance of `payload_bytes_filled` worth a `PROGRESS`, in bytes.
    pub bytes_delta: Option<u32>,
    /// Least advance along the major axis (rows or columns) worth a `PROGRESS`.
    pub major_delta_units: Option<u32>,
}

/// A producer's side of the throttle: defaults for consumers that gave no hint, and floors
/// no hint can go below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressLimits {
    /// Interval when no consumer hints one (§10.1.2 recommends 250 µs).
    pub default_interval: Duration,
    /// Byte delta when no consumer hints one (§10.1.2 recommends 64 KiB).
    pub default_bytes_delta: u32,
    /// Smallest interval any hint can ask for.
    pub min_interval: Duration,
    /// Smallest byte delta any hint can ask for.
    pub min_bytes_delta: u32,
}

impl Default for ProgressLimits {
    /// The spec's recommended defaults (250 µs, 64 KiB), floors of 100 µs (at most 10,000
    /// `PROGRESS` a second per stream) and 4 KiB.
    fn default() -> Self {
        Self {
            default_interval: Duration::from_micros(250),
            default_bytes_delta: 64 * 1024,
            min_interval: Duration::from_micros(100),
            min_bytes_delta: 4 * 1024,
        }
    }
}

/// The throttle in force: what the producer applies to every frame of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressPolicy {
    /// Least nanoseconds between two progress messages of the stream.
    pub interval_ns: u64,
    /// A `PROGRESS` needs this many more bytes filled than the last one reported...
    pub bytes_delta: u64,
    /// ...or this many more whole rows/columns (0: no unit threshold).
    pub major_delta_units: u32,
}

/// One consumer as its latest `ConsumerHello` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerWish {
    /// Consumer id.
    pub consumer_id: u32,
    /// `supports_progress`.
    pub supports_progress: bool,
    /// Its progress hints.
    pub hints: ProgressHints,
    /// `max_rate_hz` when it asked for RATE_LIMITED (0: unlimited or STREAM).
    pub max_rate_hz: u32,
}

/// Most consumers remembered per stream; hellos beyond are counted and ignored (a bound
/// against forged hellos, far above the driver's consumer limits in practice).
pub const MAX_CONSUMER_WISHES: usize = 256;

/// The consumers of a stream that said hello, until their lease ends (Driver Model §4.9:
/// the driver announces every lease end with `ShmLeaseRevoked`). Consumers are not
/// expired by time: §5 allows that only when neither hellos nor QoS were seen, and a
/// consumer that said hello once stays as long as its lease.
#[derive(Debug, Clone)]
pub struct ConsumerWishes {
    wishes: Vec<ConsumerWish>,
    limits: ProgressLimits,
    policy: Option<ProgressPolicy>,
    rejected: u64,
}

impl ConsumerWishes {
    /// An empty table applying `limits`.
    pub fn new(limits: ProgressLimits) -> Self {
        Self {
            wishes: Vec::with_capacity(MAX_CONSUMER_WISHES),
            limits,
            policy: None,
            rejected: 0,
        }
    }

    /// Records (or replaces) a consumer's wish; returns false when the table is full.
    pub fn on_hello(&mut self, wish: ConsumerWish) -> bool {
        let full = self.wishes.len() >= MAX_CONSUMER_WISHES;
        match self
            .wishes
            .iter_mut()
            .find(|w| w.consumer_id == wish.consumer_id)
        {
            Some(existing) => *existing = wish,
            None if full => {
                self.rejected += 1;
                return false;
            }
            None => self.wishes.push(wish),
        }
        self.policy = aggregate(&self.wishes, &self.limits);
        true
    }

    /// Forgets a consumer (its lease ended).
    pub fn remove(&mut self, consumer_id: u32) {
        self.wishes.retain(|w| w.consumer_id != consumer_id);
        self.policy = aggregate(&self.wishes, &self.limits);
    }

    /// Forgets everyone (the driver went away, and every lease with it).
    pub fn clear(&mut self) {
        self.wishes.clear();
        self.policy = None;
    }

    /// The throttle in force; `None` while no consumer supports progress (§10.2.2: then
    /// nothing is published).
    pub fn policy(&self) -> Option<ProgressPolicy> {
        self.policy
    }

    /// The wish of `consumer_id`, if it said hello.
    pub fn get(&self, consumer_id: u32) -> Option<&ConsumerWish> {
        self.wishes.iter().find(|w| w.consumer_id == consumer_id)
    }

    /// Hellos ignored because the table was full.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// §10.2.2: smallest interval and deltas among the consumers that support progress, not
/// below the floors; defaults where none gave a hint.
fn aggregate(wishes: &[ConsumerWish], limits: &ProgressLimits) -> Option<ProgressPolicy> {
    let wanting = || wishes.iter().filter(|w| w.supports_progress);
    wanting().next()?;
    let interval_ns = wanting()
        .filter_map(|w| w.hints.interval_us)
        .min()
        .map_or(duration_ns(limits.default_interval), |us| {
            u64::from(us).saturating_mul(1_000)
        })
        .max(duration_ns(limits.min_interval));
    let bytes_delta = wanting()
        .filter_map(|w| w.hints.bytes_delta)
        .min()
        .unwrap_or(limits.default_bytes_delta)
        .max(limits.min_bytes_delta);
    let major_delta_units = wanting()
        .filter_map(|w| w.hints.major_delta_units)
        .filter(|u| *u > 0)
        .min()
        .unwrap_or(0);
    Some(ProgressPolicy {
        interval_ns,
        bytes_delta: u64::from(bytes_delta),
        major_delta_units,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wish(id: u32, progress: bool, hints: ProgressHints) -> ConsumerWish {
        ConsumerWish {
            consumer_id: id,
            supports_progress: progress,
            hints,
            max_rate_hz: 0,
        }
    }

    fn hints(interval_us: Option<u32>, bytes: Option<u32>, units: Option<u32>) -> ProgressHints {
        ProgressHints {
            interval_us,
            bytes_delta: bytes,
            major_delta_units: units,
        }
    }

    #[test]
    fn nothing_is_published_while_no_consumer_supports_progress() {
        let mut t = ConsumerWishes::new(ProgressLimits::default());
        assert_eq!(t.policy(), None);
        t.on_hello(wish(1, false, hints(Some(1), Some(1), Some(1))));
        t.on_hello(wish(2, false, ProgressHints::default()));
        assert_eq!(
            t.policy(),
            None,
            "hints of consumers without progress count for nothing"
        );
        t.on_hello(wish(3, true, ProgressHints::default()));
        assert_eq!(
            t.policy(),
            Some(ProgressPolicy {
                interval_ns: 250_000,
                bytes_delta: 65_536,
                major_delta_units: 0
            }),
            "no hints: the producer's defaults"
        );
        t.remove(3);
        assert_eq!(t.policy(), None, "its lease ended");
    }

    #[test]
    fn the_smallest_hints_win_but_not_below_the_floors() {
        let mut t = ConsumerWishes::new(ProgressLimits::default());
        t.on_hello(wish(1, true, hints(Some(1_000), Some(256 * 1024), None)));
        t.on_hello(wish(2, true, hints(Some(400), None, Some(16))));
        t.on_hello(wish(3, true, hints(None, Some(32 * 1024), Some(8))));
        assert_eq!(
            t.policy(),
            Some(ProgressPolicy {
                interval_ns: 400_000,
                bytes_delta: 32 * 1024,
                major_delta_units: 8
            })
        );
        // A consumer asking for more than the floors allow gets the floors.
        t.on_hello(wish(4, true, hints(Some(1), Some(1), Some(1))));
        assert_eq!(
            t.policy(),
            Some(ProgressPolicy {
                interval_ns: 100_000,
                bytes_delta: 4 * 1024,
                major_delta_units: 1
            })
        );
        // Its next hello changes its mind; the others' hints come back.
        t.on_hello(wish(4, false, hints(Some(1), Some(1), Some(1))));
        assert_eq!(t.policy().map(|p| p.interval_ns), Some(400_000));
        assert_eq!(t.get(4).map(|w| w.supports_progress), Some(false));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = ConsumerWishes::new(ProgressLimits::default());
        for id in 0..MAX_CONSUMER_WISHES as u32 {
            assert!(t.on_hello(wish(id, false, ProgressHints::default())));
        }
        assert!(!t.on_hello(wish(9_999, true, ProgressHints::default())));
        assert_eq!((t.rejected(), t.policy()), (1, None));
        assert!(
            t.on_hello(wish(5, true, ProgressHints::default())),
            "known ids update"
        );
        assert!(t.policy().is_some());
        t.clear();
        assert_eq!(t.policy(), None);
    }
}
