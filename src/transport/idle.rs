//! Backoff idle strategy for duty cycles, after Agrona's `BackoffIdleStrategy`: a loop that
//! did work goes round again at once; an idle loop spins, then yields, then parks for a
//! period that doubles up to a cap, so an idle agent costs little CPU yet wakes quickly.

use std::time::Duration;

/// Where the backoff currently is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NotIdle,
    Spinning,
    Yielding,
    Parking,
}

/// Spin → yield → park backoff; call [`BackoffIdle::idle`] once per duty cycle.
#[derive(Debug, Clone)]
pub struct BackoffIdle {
    max_spins: u32,
    max_yields: u32,
    min_park: Duration,
    max_park: Duration,
    phase: Phase,
    spins: u32,
    yields: u32,
    park: Duration,
}

impl BackoffIdle {
    /// Agrona's defaults: 10 spins, 5 yields, parks from 1 µs doubling to 1 ms.
    pub const DEFAULT_MAX_SPINS: u32 = 10;
    /// Default number of yields before parking.
    pub const DEFAULT_MAX_YIELDS: u32 = 5;
    /// Default first park period.
    pub const DEFAULT_MIN_PARK: Duration = Duration::from_micros(1);
    /// Default longest park period.
    pub const DEFAULT_MAX_PARK: Duration = Duration::from_millis(1);

    /// A backoff with explicit limits (`min_park` is raised to at least 1 ns and
    /// `max_park` to at least `min_park`).
    pub fn new(max_spins: u32, max_yields: u32, min_park: Duration, max_park: Duration) -> Self {
        let min_park = min_park.max(Duration::from_nanos(1));
        Self {
            max_spins,
            max_yields,
            min_park,
            max_park: max_park.max(min_park),
            phase: Phase::NotIdle,
            spins: 0,
            yields: 0,
            park: min_park,
        }
    }

    /// A backoff whose longest park is `max_park` (other limits default).
    pub fn with_max_park(max_park: Duration) -> Self {
        Self::new(
            Self::DEFAULT_MAX_SPINS,
            Self::DEFAULT_MAX_YIELDS,
            Self::DEFAULT_MIN_PARK,
            max_park,
        )
    }

    /// Idles according to how much work the last duty cycle did (0 = none).
    pub fn idle(&mut self, work_count: usize) {
        if work_count > 0 {
            self.reset();
            return;
        }
        match self.phase {
            Phase::NotIdle => {
                self.phase = Phase::Spinning;
                self.spins = 1;
                std::hint::spin_loop();
            }
            Phase::Spinning => {
                std::hint::spin_loop();
                self.spins += 1;
                if self.spins > self.max_spins {
                    self.phase = Phase::Yielding;
                    self.yields = 0;
                }
            }
            Phase::Yielding => {
                self.yields += 1;
                if self.yields > self.max_yields {
                    self.phase = Phase::Parking;
                    self.park = self.min_park;
                } else {
                    std::thread::yield_now();
                }
            }
            Phase::Parking => {
                std::thread::sleep(self.park);
                self.park = (self.park * 2).min(self.max_park);
            }
        }
    }

    /// Back to the not-idle state (the next idle cycle starts spinning again).
    pub fn reset(&mut self) {
        self.phase = Phase::NotIdle;
        self.spins = 0;
        self.yields = 0;
        self.park = self.min_park;
    }

    /// Whether the strategy has reached the parking phase (for tests and diagnostics).
    pub fn is_parking(&self) -> bool {
        self.phase == Phase::Parking
    }
}

impl Default for BackoffIdle {
    fn default() -> Self {
        Self::new(
            Self::DEFAULT_MAX_SPINS,
            Self::DEFAULT_MAX_YIELDS,
            Self::DEFAULT_MIN_PARK,
            Self::DEFAULT_MAX_PARK,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn work_resets_backoff() {
        let mut idle = BackoffIdle::new(1, 1, Duration::from_micros(1), Duration::from_micros(4));
        for _ in 0..10 {
            idle.idle(0);
        }
        assert!(idle.is_parking());
        idle.idle(3);
        assert!(!idle.is_parking());
    }

    #[test]
    fn idle_loop_spins_then_yields_then_parks_with_capped_period() {
        let mut idle = BackoffIdle::new(2, 2, Duration::from_micros(1), Duration::from_micros(8));
        let mut cycles = 0;
        while !idle.is_parking() {
            idle.idle(0);
            cycles += 1;
        }
        // 1 (enter spin) + 2 spins + 3 yield steps: parking starts after the yields run out.
        assert_eq!(cycles, 6);
        for _ in 0..20 {
            idle.idle(0);
        }
        assert_eq!(idle.park, Duration::from_micros(8));
    }

    #[test]
    fn parking_takes_real_time() {
        let mut idle =
            BackoffIdle::new(0, 0, Duration::from_micros(100), Duration::from_micros(100));
        let start = Instant::now();
        for _ in 0..10 {
            idle.idle(0);
        }
        assert!(start.elapsed() >= Duration::from_micros(500));
    }
}
