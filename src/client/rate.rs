//! RATE_LIMITED mode (Wire Spec §5, §10.1.2 `max_rate_hz`, §11). The producer applies
//! a consumer's `max_rate_hz` to that consumer's own descriptor stream, when it has one;
//! on the shared descriptor stream (where §5 says producers ignore it) the consumer skips
//! frames itself. Both gate on the frame's own timestamp, as the §11 implementation note
//! suggests: `FrameDescriptor.timestamp_ns` when present, else `SlotHeader.timestamp_ns`,
//! else the local monotonic clock, so the two limiters agree frame for frame.
//!
//! The limiter is a GCRA (generic cell rate algorithm): its whole state is the
//! theoretical arrival time `tat` of the next frame. A frame stamped `t` conforms when
//! `t >= tat - tolerance`; taking it moves `tat` to `max(tat, t) + period`. The tolerance
//! is one period: a steady source faster than the cap then gets exactly the cap (a 30 Hz
//! source capped at 20 Hz delivers 2 frames of 3, where `next = t + period` would deliver
//! 1 of 2, i.e. 15 Hz), at the price of one extra frame after a pause. No allocation, no
//! clock inside: times are passed in, so tests drive it with a fake clock.

use std::num::NonZeroU32;

/// Which timestamp a rate decision was based on. Timestamps of different kinds come from
/// different clocks, so a change of kind restarts the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateClock {
    /// `FrameDescriptor.timestamp_ns` (publish time).
    Descriptor,
    /// `SlotHeader.timestamp_ns` (capture time).
    SlotHeader,
    /// The consumer's CLOCK_MONOTONIC when the descriptor was read.
    Local,
}

/// The timestamp to gate a frame on (§11 implementation note): the descriptor's when
/// present, else the slot header's, else `local_now` (called only then). 0 and the null
/// sentinel (`u64::MAX`) mean absent.
pub fn gate_timestamp(
    descriptor_ns: Option<u64>,
    slot_ns: u64,
    local_now: impl FnOnce() -> u64,
) -> (RateClock, u64) {
    let present = |t: u64| t != 0 && t != u64::MAX;
    match descriptor_ns {
        Some(t) if present(t) => (RateClock::Descriptor, t),
        _ if present(slot_ns) => (RateClock::SlotHeader, slot_ns),
        _ => (RateClock::Local, local_now()),
    }
}

/// A GCRA limiting frames to `max_rate_hz` (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimiter {
    period_ns: u64,
    tolerance_ns: u64,
    /// Theoretical arrival time of the next frame, and the clock and time of the last
    /// frame taken; `None` before the first frame (or after a restart).
    state: Option<GcraState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GcraState {
    tat: u64,
    clock: RateClock,
    last_taken: u64,
}

impl RateLimiter {
    /// A limiter for at most `max_rate_hz` frames per second (the period is rounded up to
    /// whole nanoseconds, so the rate never exceeds the cap).
    pub fn new(max_rate_hz: NonZeroU32) -> Self {
        let hz = u64::from(max_rate_hz.get());
        let period_ns = 1_000_000_000u64.div_ceil(hz);
        Self {
            period_ns,
            tolerance_ns: period_ns,
            state: None,
        }
    }

    /// Nanoseconds between frames at the cap.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }

    /// Whether a frame stamped `t` on `clock` may be delivered now. Does not take it:
    /// call [`RateLimiter::take`] once the frame was actually delivered, so a frame that
    /// fails its checks afterwards does not use up the budget.
    pub fn conforms(&self, clock: RateClock, t: u64) -> bool {
        match self.state {
            None => true,
            // Another clock, or time before the last frame taken (a new producer, a new
            // epoch): a new timeline, judged afresh.
            Some(s) if s.clock != clock || t < s.last_taken => true,
            Some(s) => t >= s.tat.saturating_sub(self.tolerance_ns),
        }
    }

    /// Takes a delivered frame stamped `t` on `clock`.
    pub fn take(&mut self, clock: RateClock, t: u64) {
        let tat = match self.state {
            Some(s) if s.clock == clock && t >= s.last_taken => s.tat.max(t),
            _ => t,
        };
        self.state = Some(GcraState {
            tat: tat.saturating_add(self.period_ns),
            clock,
            last_taken: t,
        });
    }

    /// Forgets the timeline (after a remap).
    pub fn reset(&mut self) {
        self.state = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(hz: u32) -> RateLimiter {
        RateLimiter::new(NonZeroU32::new(hz).expect("non-zero"))
    }

    /// Feeds frames stamped `times` (one clock) and returns the ones delivered.
    fn run(l: &mut RateLimiter, times: impl IntoIterator<Item = u64>) -> Vec<u64> {
        times
            .into_iter()
            .filter(|&t| {
                let ok = l.conforms(RateClock::Descriptor, t);
                if ok {
                    l.take(RateClock::Descriptor, t);
                }
                ok
            })
            .collect()
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn a_faster_steady_source_gets_exactly_the_cap() {
        // 30 Hz capped at 20 Hz: two frames of every three, over ten seconds.
        let mut l = limiter(20);
        let source: Vec<u64> = (0..300u64).map(|i| i * 1_000_000_000 / 30).collect();
        let delivered = run(&mut l, source);
        // One extra frame at the start (the tolerance), then 20 per second.
        assert!(
            (200..=201).contains(&delivered.len()),
            "{}",
            delivered.len()
        );
        for second in 1..10u64 {
            let in_second = delivered
                .iter()
                .filter(|&&t| t >= second * 1000 * MS && t < (second + 1) * 1000 * MS)
                .count();
            assert_eq!(in_second, 20, "second {second}");
        }
    }

    #[test]
    fn a_fast_source_is_thinned_to_the_period() {
        // 1 kHz capped at 10 Hz: after the first pair, one frame per 100 ms.
        let mut l = limiter(10);
        let delivered = run(&mut l, (0..2_000u64).map(|i| i * MS));
        assert_eq!(delivered[..4], [0, MS, 100 * MS, 200 * MS]);
        assert_eq!(delivered.len(), 21);
        assert!(delivered
            .windows(2)
            .skip(2)
            .all(|w| w[1] - w[0] == 100 * MS));
    }

    #[test]
    fn a_source_slower_than_the_cap_passes_whole() {
        let mut l = limiter(50);
        let source: Vec<u64> = (0..100u64).map(|i| i * 25 * MS).collect();
        assert_eq!(run(&mut l, source.clone()), source);
    }

    #[test]
    fn jitter_within_a_period_does_not_cost_frames_at_the_cap() {
        // A source at exactly the cap, each frame up to 40% of a period late or early.
        let mut l = limiter(100);
        let jitter = [0i64, 4, -4, 3, -2, 4, -4, 1];
        let source: Vec<u64> = (0..400u64)
            .map(|i| (100 + i * 10) as i64 * MS as i64 + jitter[(i % 8) as usize] * MS as i64)
            .map(|t| t as u64)
            .collect();
        assert_eq!(run(&mut l, source.clone()).len(), source.len());
    }

    #[test]
    fn a_clock_change_or_regression_starts_a_new_timeline() {
        let mut l = limiter(1);
        assert!(l.conforms(RateClock::Descriptor, 5_000 * MS));
        l.take(RateClock::Descriptor, 5_000 * MS);
        l.take(RateClock::Descriptor, 5_001 * MS);
        assert!(!l.conforms(RateClock::Descriptor, 5_002 * MS));
        // The producer restarted: its clock reads earlier than the last frame taken.
        assert!(l.conforms(RateClock::Descriptor, 10 * MS));
        // Frames without descriptor timestamps are judged on their own clock.
        assert!(l.conforms(RateClock::Local, 5_002 * MS));
        l.take(RateClock::Local, 5_002 * MS);
        l.take(RateClock::Local, 5_003 * MS);
        assert!(!l.conforms(RateClock::Local, 5_004 * MS));
        l.reset();
        assert!(l.conforms(RateClock::Local, 5_004 * MS));
    }

    #[test]
    fn the_period_never_exceeds_the_cap() {
        assert_eq!(limiter(1).period_ns(), 1_000_000_000);
        assert_eq!(limiter(3).period_ns(), 333_333_334);
        assert_eq!(limiter(u32::MAX).period_ns(), 1);
    }

    #[test]
    fn the_gate_timestamp_prefers_the_descriptor_then_the_slot() {
        let local = || 77;
        assert_eq!(
            gate_timestamp(Some(5), 9, local),
            (RateClock::Descriptor, 5)
        );
        assert_eq!(gate_timestamp(None, 9, local), (RateClock::SlotHeader, 9));
        assert_eq!(
            gate_timestamp(Some(0), 9, local),
            (RateClock::SlotHeader, 9)
        );
        assert_eq!(gate_timestamp(None, 0, local), (RateClock::Local, 77));
        assert_eq!(
            gate_timestamp(Some(u64::MAX), u64::MAX, local),
            (RateClock::Local, 77)
        );
    }
}
