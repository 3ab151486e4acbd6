//! The clocks shared by the driver and its clients. Driver Model §4.2 and Wire Spec
//! §15.7: lease deadlines, announce and superblock timestamps are `CLOCK_MONOTONIC`
//! nanoseconds (clock domain MONOTONIC), which every process on the host reads alike;
//! wall-clock time is only used to judge announces stamped in the REALTIME domain.

use std::time::SystemTime;

/// Current `CLOCK_MONOTONIC` time in nanoseconds (0 if the clock cannot be read).
pub fn monotonic_now_ns() -> u64 {
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Current wall-clock time in nanoseconds since the Unix epoch (0 before the epoch).
pub fn realtime_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_never_goes_back() {
        let a = monotonic_now_ns();
        let b = monotonic_now_ns();
        assert!(a > 0, "CLOCK_MONOTONIC is readable");
        assert!(b >= a);
    }

    #[test]
    fn realtime_clock_is_after_2020() {
        const JAN_2020_NS: u64 = 1_577_836_800_000_000_000;
        assert!(realtime_now_ns() > JAN_2020_NS);
    }
}
