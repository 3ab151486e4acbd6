//! The ping side of every two-process latency benchmark: a transport-neutral round-trip
//! loop, the message sizes, and the child-process plumbing (the pong is this same
//! executable re-run with a hidden `--role`).
//!
//! A round trip is: stamp a sequence number into the first 8 bytes, send `size` bytes,
//! busy-poll until the pong's echo of that sequence number arrives. The pong copies what it
//! receives into its reply, so each direction moves the whole payload once. Only the
//! measured loop is timed; client housekeeping runs between round trips.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::report::Figure;
use crate::stats::{latency_name, Latency};
use crate::sys::{check_interrupted, ChildProcess};

/// Payload sizes of the latency benchmarks.
pub const SIZES: [usize; 2] = [64, 64 << 10];
/// Sequence number that tells the pong to exit.
pub const END: u64 = u64::MAX;
/// Longest wait for one echo before the run is declared broken.
pub const ECHO_TIMEOUT: Duration = Duration::from_secs(5);
/// Busy-poll iterations between clock reads while waiting for an echo.
const SPINS_PER_CHECK: u32 = 4096;

/// The sequence number in the first 8 bytes of `bytes` (0 if shorter).
pub fn seq_of(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// One side of a ping-pong over some transport.
pub trait PingTransport {
    /// Sends `message` (whose first 8 bytes are the sequence number), waiting out back
    /// pressure.
    fn send(&mut self, message: &[u8]) -> Result<(), BenchError>;

    /// Polls once; `Ok(true)` when the echo of `seq` (`size` bytes) has arrived. Anything
    /// else arriving is an error.
    fn poll_echo(&mut self, seq: u64, size: usize) -> Result<bool, BenchError>;

    /// Client housekeeping between round trips (e.g. pumping an Aeron client).
    fn housekeeping(&mut self, now: Instant) -> Result<(), BenchError>;
}

/// Runs round trips of `size` bytes for `warmup` (not recorded), then for `window`
/// (recorded); `first_seq` is the first sequence number to use. Returns the latencies and
/// the next free sequence number.
pub fn measure_round_trips(
    transport: &mut impl PingTransport,
    size: usize,
    warmup: Duration,
    window: Duration,
    first_seq: u64,
) -> Result<(Latency, u64), BenchError> {
    let mut latency = Latency::new()?;
    let mut message = vec![0u8; size.max(8)];
    for (i, byte) in message.iter_mut().enumerate().skip(8) {
        *byte = i as u8;
    }
    let begin = Instant::now();
    let record_from = begin + warmup;
    let end = record_from + window;
    let mut seq = first_seq;
    loop {
        message[..8].copy_from_slice(&seq.to_le_bytes());
        let sent = Instant::now();
        transport.send(&message)?;
        let mut spins = 0u32;
        while !transport.poll_echo(seq, message.len())? {
            spins += 1;
            if spins % SPINS_PER_CHECK == 0 {
                check_interrupted()?;
                if sent.elapsed() > ECHO_TIMEOUT {
                    return Err(BenchError::Measure(format!(
                        "no echo of message {seq} within {ECHO_TIMEOUT:?} (is the pong alive?)"
                    )));
                }
            }
        }
        let received = Instant::now();
        if sent >= record_from {
            latency.record_ns(received.duration_since(sent).as_nanos() as u64);
        }
        seq += 1;
        transport.housekeeping(received)?;
        if received >= end {
            return Ok((latency, seq));
        }
    }
}

/// Measures round trips at every size of [`SIZES`] in turn (each with its warm-up and
/// window), then tells the pong to exit.
pub fn measure_all_sizes(
    transport: &mut impl PingTransport,
    warmup: Duration,
    window: Duration,
) -> Result<Vec<(usize, Latency)>, BenchError> {
    let mut measured = Vec::with_capacity(SIZES.len());
    let mut seq = 1;
    for size in SIZES {
        let (latency, next) = measure_round_trips(transport, size, warmup, window, seq)?;
        seq = next;
        measured.push((size, latency));
    }
    transport.send(&END.to_le_bytes())?;
    Ok(measured)
}

/// The reference rows of a ping-pong scenario (every percentile at every size), the first
/// row of each size carrying the round-trip count, the mean and `detail`.
pub fn reference_figures(
    scenario: &str,
    measured: &[(usize, Latency)],
    detail: &str,
) -> Vec<Figure> {
    let mut figures = Vec::new();
    for (size, latency) in measured {
        let mut rows = latency.figures(scenario, |p| latency_name(*size, p));
        rows[0].note = Some(format!(
            "{} round trips{detail}, mean {:.2} µs",
            latency.count(),
            latency.mean_us()
        ));
        figures.extend(rows.into_iter().map(Figure::marked_reference));
    }
    figures
}

/// Starts this executable as the pong of a ping-pong: `--role <role>` plus `args`, with the
/// parent's pid (so it dies with us) and the core to pin to.
pub fn spawn_pong(
    role: &str,
    args: &[(&str, &Path)],
    core: Option<usize>,
) -> Result<ChildProcess, BenchError> {
    let exe = std::env::current_exe()
        .map_err(|e| BenchError::Setup(format!("locating the tp-bench executable: {e}")))?;
    let mut command = Command::new(exe);
    command
        .arg("--role")
        .arg(role)
        .arg("--parent-pid")
        .arg(std::process::id().to_string())
        .stdin(Stdio::null());
    for (flag, value) in args {
        command.arg(flag).arg(value);
    }
    if let Some(core) = core {
        command.arg("--pin-core").arg(core.to_string());
    }
    ChildProcess::spawn(command, &format!("the {role} process"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A transport whose echo arrives on the second poll.
    struct Loopback {
        last: Option<(u64, usize)>,
        polls: u32,
    }

    impl PingTransport for Loopback {
        fn send(&mut self, message: &[u8]) -> Result<(), BenchError> {
            self.last = Some((seq_of(message), message.len()));
            self.polls = 0;
            Ok(())
        }

        fn poll_echo(&mut self, seq: u64, size: usize) -> Result<bool, BenchError> {
            self.polls += 1;
            Ok(self.polls >= 2 && self.last == Some((seq, size)))
        }

        fn housekeeping(&mut self, _now: Instant) -> Result<(), BenchError> {
            Ok(())
        }
    }

    #[test]
    fn round_trips_are_recorded_after_the_warmup_with_consecutive_seqs() {
        let mut transport = Loopback {
            last: None,
            polls: 0,
        };
        let (latency, next) = measure_round_trips(
            &mut transport,
            64,
            Duration::from_millis(5),
            Duration::from_millis(20),
            10,
        )
        .expect("loopback never fails");
        assert!(latency.count() > 0);
        assert!(next > 10 + latency.count());
        assert_eq!(transport.last.map(|(_, len)| len), Some(64));
    }
}
