//! `line-pingpong`: the floor under every ping-pong on this machine. Two threads pinned
//! to cores 0 and 1 bounce one sequence number through shared cache lines, with nothing
//! else: no transport, no checks. Three shapes per direction:
//!
//! - **1 line**: the receiver spins on the line the sender wrote (raw Aeron's shape: its
//!   poll finds the frame and its data in the same line or two).
//! - **flag, then 1 line**: the sender writes a data line, then a flag line; the receiver
//!   spins on the flag and then reads the data line, which it could not fetch before the
//!   flag said it was ready (tensorpool's descriptor, then header slot).
//! - **flag, then 2 lines**: as above with two data lines read after the flag, whose
//!   fetches can overlap (tensorpool's header slot and payload, since round 2).
//!
//! Each round trip's time is the cost of moving that many lines, one after the other,
//! between the two cores, twice. Compared with `aeron-pingpong` and `tp-pingpong`, it
//! says how much of their round trip is the machine's, and how much is software.

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::BenchError;
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::stats::Latency;
use crate::sys::{check_interrupted, core_pair, pin_current_thread};

/// One cache line holding one word (128-byte aligned so the adjacent-line prefetcher
/// never pairs two of them).
#[repr(align(128))]
#[derive(Default)]
struct Line(AtomicU64);

/// The lines of one direction: a flag and two data lines.
#[derive(Default)]
struct Direction {
    flag: Line,
    data: [Line; 2],
}

/// The shapes measured: data lines read after the flag (0 = the flag only).
const SHAPES: [(usize, &str); 3] = [
    (0, "1 line"),
    (1, "flag, then 1 line"),
    (2, "flag, then 2 lines"),
];

/// The `line-pingpong` scenario.
pub struct LinePingPong;

impl Scenario for LinePingPong {
    fn name(&self) -> &'static str {
        "line-pingpong"
    }

    fn summary(&self) -> &'static str {
        "cache lines bounced between two pinned cores: the floor under every ping-pong here"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let Some((ping_core, pong_core)) = core_pair() else {
            return Err(BenchError::Setup("line-pingpong needs two cores".into()));
        };
        let warmup = ctx.scaled(0.1).min(Duration::from_millis(300));
        let window = ctx.duration / SHAPES.len() as u32;
        let mut figures = Vec::new();
        for (data_lines, label) in SHAPES {
            check_interrupted()?;
            let latency = bounce(data_lines, ping_core, pong_core, warmup, window)?;
            let mut rows = latency.figures(self.name(), |p| format!("rtt {label} {p}"));
            rows[0].note = Some(format!(
                "{} round trips, mean {:.3} µs",
                latency.count(),
                latency.mean_us()
            ));
            figures.extend(rows.into_iter().map(Figure::marked_reference));
        }
        Ok(figures)
    }
}

/// Sends `seq` one way: the data lines first, then the flag (release).
#[inline]
fn send(direction: &Direction, data_lines: usize, seq: u64) {
    for line in &direction.data[..data_lines] {
        line.0.store(seq, Ordering::Relaxed);
    }
    direction.flag.0.store(seq, Ordering::Release);
}

/// Waits until `seq` arrives one way and reads its data lines; whether it arrived
/// intact (false when `stop` was raised first).
#[inline]
fn receive(direction: &Direction, data_lines: usize, seq: u64, stop: &AtomicBool) -> bool {
    let mut spins = 0u32;
    while direction.flag.0.load(Ordering::Acquire) != seq {
        spin_loop();
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 && stop.load(Ordering::Relaxed) {
            return false;
        }
    }
    direction.data[..data_lines]
        .iter()
        .all(|line| line.0.load(Ordering::Relaxed) == seq)
}

/// Round trips with `data_lines` per direction for `warmup`, then recorded for `window`.
fn bounce(
    data_lines: usize,
    ping_core: usize,
    pong_core: usize,
    warmup: Duration,
    window: Duration,
) -> Result<Latency, BenchError> {
    let there = Direction::default();
    let back = Direction::default();
    let stop = AtomicBool::new(false);
    let mut latency = Latency::new()?;
    // Both parties on threads of their own: pinning is per thread, and the harness's
    // main thread (whose CPU set later threads and child processes inherit) must stay
    // free for the scenarios after this one.
    let (intact, latency) = std::thread::scope(|s| {
        let pong = s.spawn(|| {
            pin_current_thread(pong_core);
            let mut seq = 1;
            while receive(&there, data_lines, seq, &stop) {
                send(&back, data_lines, seq);
                seq += 1;
            }
        });
        let ping = s.spawn(|| {
            pin_current_thread(ping_core);
            let record_from = Instant::now() + warmup;
            let end = record_from + window;
            let mut seq = 1;
            let mut intact = true;
            loop {
                let sent = Instant::now();
                send(&there, data_lines, seq);
                intact &= receive(&back, data_lines, seq, &stop);
                let received = Instant::now();
                if sent >= record_from {
                    latency.record_ns(received.duration_since(sent).as_nanos() as u64);
                }
                seq += 1;
                if received >= end || !intact {
                    break;
                }
            }
            (intact, latency)
        });
        let outcome = ping.join();
        // Whether the ping finished or panicked, the pong stops here.
        stop.store(true, Ordering::Relaxed);
        let _ = pong.join();
        outcome.map_err(|_| BenchError::Measure("the ping thread panicked".into()))
    })?;
    if !intact {
        return Err(BenchError::Measure(
            "a data line did not hold the sequence its flag announced".into(),
        ));
    }
    Ok(latency)
}
