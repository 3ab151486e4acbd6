//! Closed-loop attach/detach load: each session sends its next request when the previous
//! answer arrives (after an optional pause), and the round trips are timed from the
//! offer to the poll that returned the answer.

use std::time::{Duration, Instant};

use tensorpool::protocol::driver::{ResponseCode, Role};

use crate::control_client::{ControlClient, Lease, Reply};
use crate::error::BenchError;
use crate::stats::Latency;
use crate::sys::check_interrupted;

/// How long to wait for outstanding answers at the end of a run.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What one closed-loop run does.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Role of every attach.
    pub role: Role,
    /// Concurrent sessions (client ids 1..=sessions).
    pub sessions: u32,
    /// Stream every session attaches to.
    pub stream_id: u32,
    /// Pairs completed before recording starts.
    pub warmup_pairs: u64,
    /// Longest recording window.
    pub window: Duration,
    /// Stop recording after this many pairs.
    pub max_pairs: Option<u64>,
    /// Pause between a session's detach answer and its next attach, drawn uniformly from
    /// this range (lets the responder go idle, as it does between real clients' attaches).
    pub gap: Option<(Duration, Duration)>,
}

/// What one closed-loop run measured.
pub struct LoopResult {
    /// Attach round trips.
    pub attach: Latency,
    /// Detach round trips.
    pub detach: Latency,
    /// Attach round trips in the order they were recorded, µs (first and last few tell
    /// whether the cost drifts during the run).
    pub attach_series_us: Vec<f64>,
    /// Attach+detach pairs per second while recording.
    pub pairs_per_s: f64,
}

/// Where one session is in its attach → detach cycle.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Attach again at this time.
    Waiting(Instant),
    Attaching {
        correlation_id: i64,
        sent: Instant,
    },
    Detaching {
        correlation_id: i64,
        sent: Instant,
    },
}

/// Runs `plan` with `client`.
pub fn closed_loop(client: &mut ControlClient, plan: &Plan) -> Result<LoopResult, BenchError> {
    let mut attach = Latency::new()?;
    let mut detach = Latency::new()?;
    let mut attach_series_us = Vec::new();
    let start = Instant::now();
    let mut states = vec![State::Waiting(start); plan.sessions as usize];
    let mut replies = Vec::with_capacity(64);
    let mut completed = 0u64;
    let mut recording: Option<Instant> = (plan.warmup_pairs == 0).then_some(start);
    let mut recorded = 0u64;
    let mut last_pair_at = start;
    let mut stop_at: Option<Instant> = None;
    let mut gaps = GapSampler::new(plan.gap);
    loop {
        let now = Instant::now();
        if stop_at.is_none() {
            let window_over = recording.is_some_and(|from| now >= from + plan.window);
            let enough = plan.max_pairs.is_some_and(|max| recorded >= max);
            if window_over || enough || crate::sys::interrupted() {
                stop_at = Some(now);
            }
        }
        for (i, state) in states.iter_mut().enumerate() {
            if let State::Waiting(at) = *state {
                if stop_at.is_none() && now >= at {
                    let correlation_id =
                        client.send_attach(plan.stream_id, i as u32 + 1, plan.role)?;
                    *state = State::Attaching {
                        correlation_id,
                        sent: Instant::now(),
                    };
                }
            }
        }
        if let Some(stopped) = stop_at {
            if states.iter().all(|s| matches!(s, State::Waiting(_))) {
                check_interrupted()?;
                let from = recording.unwrap_or(last_pair_at);
                let seconds = last_pair_at.duration_since(from).as_secs_f64();
                return Ok(LoopResult {
                    attach,
                    detach,
                    attach_series_us,
                    pairs_per_s: recorded as f64 / seconds,
                });
            }
            if now > stopped + DRAIN_TIMEOUT {
                return Err(BenchError::Measure(format!(
                    "answers still outstanding {DRAIN_TIMEOUT:?} after the run"
                )));
            }
        }
        client.poll(&mut replies)?;
        let received = Instant::now();
        for reply in replies.drain(..) {
            match reply {
                Reply::Attach {
                    correlation_id,
                    code,
                    lease_id,
                    error,
                } => {
                    let Some((i, sent)) = find(&states, correlation_id, true) else {
                        continue;
                    };
                    let client_id = i as u32 + 1;
                    let lease_id = match (code, lease_id) {
                        (ResponseCode::Ok, Some(id)) => id,
                        _ => {
                            return Err(BenchError::Measure(format!(
                                "attach of client {client_id} refused: {code} {}",
                                error.unwrap_or_default()
                            )))
                        }
                    };
                    if recording.is_some_and(|from| sent >= from) {
                        let ns = received.duration_since(sent).as_nanos() as u64;
                        attach.record_ns(ns);
                        attach_series_us.push(ns as f64 / 1000.0);
                    }
                    let lease = Lease {
                        lease_id,
                        stream_id: plan.stream_id,
                        client_id,
                        role: plan.role,
                    };
                    let correlation_id = client.send_detach(&lease)?;
                    states[i] = State::Detaching {
                        correlation_id,
                        sent: Instant::now(),
                    };
                }
                Reply::Detach {
                    correlation_id,
                    code,
                } => {
                    let Some((i, sent)) = find(&states, correlation_id, false) else {
                        continue;
                    };
                    if code != ResponseCode::Ok {
                        return Err(BenchError::Measure(format!(
                            "detach of client {} refused: {code}",
                            i + 1
                        )));
                    }
                    completed += 1;
                    match recording {
                        Some(from) if sent >= from => {
                            detach.record_ns(received.duration_since(sent).as_nanos() as u64);
                            recorded += 1;
                            last_pair_at = received;
                        }
                        Some(_) => {}
                        None if completed >= plan.warmup_pairs => {
                            recording = Some(received);
                            last_pair_at = received;
                        }
                        None => {}
                    }
                    states[i] = State::Waiting(received + gaps.next());
                }
                Reply::Revoked { .. } => {}
            }
        }
        client.housekeeping(received)?;
    }
}

/// The session waiting for `correlation_id` (an attach answer when `attaching`, else a
/// detach answer) and when its request was sent.
fn find(states: &[State], correlation_id: i64, attaching: bool) -> Option<(usize, Instant)> {
    states.iter().enumerate().find_map(|(i, s)| match *s {
        State::Attaching {
            correlation_id: c,
            sent,
        } if attaching && c == correlation_id => Some((i, sent)),
        State::Detaching {
            correlation_id: c,
            sent,
        } if !attaching && c == correlation_id => Some((i, sent)),
        _ => None,
    })
}

/// Pauses drawn uniformly from a range, from a fixed seed (splitmix64): runs are repeatable
/// and need no random-number crate.
struct GapSampler {
    range: Option<(Duration, Duration)>,
    state: u64,
}

impl GapSampler {
    fn new(range: Option<(Duration, Duration)>) -> Self {
        Self {
            range,
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// The next pause (zero without a range).
    fn next(&mut self) -> Duration {
        let Some((low, high)) = self.range else {
            return Duration::ZERO;
        };
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let fraction = (z >> 11) as f64 / (1u64 << 53) as f64;
        low + high.saturating_sub(low).mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_stay_in_their_range_and_spread_over_it() {
        let (low, high) = (Duration::from_millis(4), Duration::from_millis(6));
        let mut gaps = GapSampler::new(Some((low, high)));
        let drawn: Vec<Duration> = (0..1000).map(|_| gaps.next()).collect();
        assert!(drawn.iter().all(|g| *g >= low && *g <= high));
        let below_middle = drawn
            .iter()
            .filter(|g| **g < Duration::from_millis(5))
            .count();
        assert!((400..600).contains(&below_middle), "{below_middle}");
        assert_eq!(GapSampler::new(None).next(), Duration::ZERO);
    }
}
