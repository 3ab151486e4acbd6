//! `attach`: the control plane (Driver Model §4.2, §4.9). A raw-protocol client attaches and
//! detaches leases against the SHM driver running on a thread of this process (embedded
//! media driver, one static stream, prefault off), closed-loop: each session sends its
//! next request when the previous answer arrives.
//!
//! Measured:
//! - consumer attach round trip, back-to-back (the driver never idles) and with the driver
//!   idle between attaches (2–3 longest parks apart, so its idle strategy has reached its
//!   longest park, as between real clients' attaches);
//! - producer attach round trip (each attach starts an epoch: files are created);
//! - attach+detach pairs per second with 1 session and with 16 sessions multiplexed on one
//!   client thread (each its own client id).
//!
//! Reference: the same client and plans against an echo responder ([`echo`]) that answers
//! at once with responses of the same shape, on the same kind of duty cycle as the driver
//! (`DriverIdle` parked on a doorbell of its own, which the client rings after each
//! attach and detach as it rings the driver's, like the client library).
//! The ratio is what the driver's work adds to the transport and idle-strategy floor.

mod echo;
pub(crate) mod load;

use std::path::Path;
use std::time::Duration;

use tensorpool::driver::runner::IDLE_PARK;
use tensorpool::protocol::driver::Role;

use crate::control_client::ControlClient;
use crate::driver_host::{DriverSpec, InProcessDriver, CONTROL_CHANNEL, CONTROL_STREAM};
use crate::error::BenchError;
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::sys::{core_pair, pin_current_thread, Scratch};

use echo::EchoResponder;
use load::{closed_loop, LoopResult, Plan};

/// Target for the attach round trip p99, µs.
pub const ATTACH_P99_TARGET_US: f64 = 100.0;
/// Sessions of the concurrent run.
pub const CONCURRENT_SESSIONS: u32 = 16;
/// Pause between attaches in the idle-driver run, drawn uniformly from this range: long
/// enough for the driver to reach its longest park after answering, and spread over one
/// more longest park so that attaches arrive at every point of a park (a fixed pause would
/// meet the same point every time).
pub(crate) fn idle_gap() -> (Duration, Duration) {
    (2 * IDLE_PARK, 3 * IDLE_PARK)
}
/// Producer attaches recorded (each attach+detach creates two epochs of files, which stay
/// on disk until they are `epoch_gc_min_age` old). Enough that the p99 is not the maximum;
/// the first and last ten are compared in the notes, to show the cost does not grow with
/// the epochs on disk.
const PRODUCER_PAIRS: u64 = 1000;
/// Pairs before recording starts in the back-to-back runs.
pub(crate) const BUSY_WARMUP_PAIRS: u64 = 5_000;

/// The `attach` scenario.
pub struct Attach;

impl Scenario for Attach {
    fn name(&self) -> &'static str {
        "attach"
    }

    fn summary(&self) -> &'static str {
        "attach round trip p50/p99 and attach+detach pairs/s (1 and 16 clients) against an in-process driver"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let (responder_core, client_core) = match core_pair() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let stream_id = crate::driver_host::FIRST_STREAM_ID;
        let busy = Plan {
            role: Role::Consumer,
            sessions: 1,
            stream_id,
            warmup_pairs: BUSY_WARMUP_PAIRS,
            window: ctx.duration,
            max_pairs: None,
            gap: None,
        };
        let idle = Plan {
            warmup_pairs: 3,
            gap: Some(idle_gap()),
            ..busy
        };
        let concurrent = Plan {
            sessions: CONCURRENT_SESSIONS,
            ..busy
        };
        let producer = Plan {
            role: Role::Producer,
            warmup_pairs: 3,
            max_pairs: Some(PRODUCER_PAIRS),
            ..busy
        };

        let echo = {
            let scratch = Scratch::new("attach-echo")?;
            let responder = EchoResponder::start(&scratch.join("aeron"), responder_core)?;
            run_plans(
                responder.aeron_dir(),
                client_core,
                &[busy, idle, concurrent],
            )?
        };
        let driver = {
            let scratch = Scratch::new("attach")?;
            let spec = DriverSpec::in_scratch(&scratch, 64, &[(1, 4096)], 1)?;
            let driver = InProcessDriver::start(&spec, responder_core)?;
            run_plans(
                driver.aeron_dir(),
                client_core,
                &[busy, idle, concurrent, producer],
            )?
        };
        // The same producer plan with `policies.provision_ahead`: each epoch made on the
        // driver's worker thread before the attach that takes it.
        let ahead = {
            let scratch = Scratch::new("attach-ahead")?;
            let mut spec = DriverSpec::in_scratch(&scratch, 64, &[(1, 4096)], 1)?;
            spec.provision_ahead = true;
            let driver = InProcessDriver::start(&spec, responder_core)?;
            let producer_paced = Plan {
                gap: Some(idle_gap()),
                ..producer
            };
            run_plans(driver.aeron_dir(), client_core, &[producer, producer_paced])?
        };
        let inline_paced = {
            let scratch = Scratch::new("attach-inline")?;
            let spec = DriverSpec::in_scratch(&scratch, 64, &[(1, 4096)], 1)?;
            let driver = InProcessDriver::start(&spec, responder_core)?;
            let producer_paced = Plan {
                gap: Some(idle_gap()),
                ..producer
            };
            run_plans(driver.aeron_dir(), client_core, &[producer_paced])?
        };
        let mut figures = figures(self.name(), &echo, &driver);
        let ahead = ahead_figures(self.name(), &figures, &inline_paced, &ahead);
        figures.extend(ahead);
        figures.extend(prefaulted_figures(
            self.name(),
            client_core,
            responder_core,
        )?);
        Ok(figures)
    }
}

/// Runs `plans` in order with one client on a thread pinned to `core`.
pub(crate) fn run_plans(
    aeron_dir: &Path,
    core: Option<usize>,
    plans: &[Plan],
) -> Result<Vec<LoopResult>, BenchError> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<Vec<LoopResult>, BenchError> {
            if let Some(core) = core {
                pin_current_thread(core);
            }
            let mut client = ControlClient::connect(aeron_dir, CONTROL_CHANNEL, CONTROL_STREAM)?;
            plans
                .iter()
                .map(|plan| closed_loop(&mut client, plan))
                .collect()
        })
        .join()
        .map_err(|_| BenchError::Measure("the load thread panicked".into()))?
    })
}

/// Producer attach with `policies.provision_ahead` against the same plans without it:
/// back-to-back (compared with the `producer attach` figures of `main`, the next spare may
/// still be in the making when the attach comes) and paced like the idle-driver consumer
/// plan (every spare is ready).
fn ahead_figures(
    scenario: &str,
    main: &[Figure],
    inline_paced: &[LoopResult],
    ahead: &[LoopResult],
) -> Vec<Figure> {
    let ([inline_paced], [ahead_busy, ahead_paced]) = (inline_paced, ahead) else {
        return Vec::new();
    };
    let find = |name: &str| main.iter().find(|f| f.name == name);
    let us = |name: &str, value: f64| Figure::new(scenario, name, value, "µs");
    let paced_p50 = us(
        "producer attach p50, paced",
        inline_paced.attach.quantile_us(0.5),
    )
    .marked_reference();
    let paced_p99 = us(
        "producer attach p99, paced",
        inline_paced.attach.quantile_us(0.99),
    )
    .marked_reference()
    .with_note(format!(
        "{} attaches {:?}–{:?} apart, each a new epoch made on the attach path",
        inline_paced.attach.count(),
        idle_gap().0,
        idle_gap().1
    ));
    let figures = vec![
        us(
            "producer attach p50, ahead",
            ahead_busy.attach.quantile_us(0.5),
        )
        .against(find("producer attach p50")),
        us(
            "producer attach p99, ahead",
            ahead_busy.attach.quantile_us(0.99),
        )
        .against(find("producer attach p99"))
        .with_target(Target::AtMost(ATTACH_P99_TARGET_US))
        .with_note("policies.provision_ahead, back-to-back: the spare may still be in the making"),
        us(
            "producer attach p50, paced, ahead",
            ahead_paced.attach.quantile_us(0.5),
        )
        .against(Some(&paced_p50)),
        us(
            "producer attach p99, paced, ahead",
            ahead_paced.attach.quantile_us(0.99),
        )
        .against(Some(&paced_p99))
        .with_target(Target::AtMost(ATTACH_P99_TARGET_US))
        .with_note("policies.provision_ahead, paced: every spare is ready when its attach comes"),
    ];
    [paced_p50, paced_p99].into_iter().chain(figures).collect()
}

/// Header slots of the prefaulted profile.
const PREFAULT_SLOTS: u32 = 256;
/// Its one pool's stride: with the header ring, about 16 MiB to fault per epoch.
const PREFAULT_STRIDE: u32 = 64 << 10;
/// Producer attaches of each prefaulted run (each pair leaves two epochs of files on
/// disk until they are old enough to collect: about 2 GiB of tmpfs at most).
const PREFAULT_PAIRS: u64 = 60;
/// Pause between prefaulted attaches: longer than faulting one epoch takes here, so a
/// spare can be ready.
const PREFAULT_GAP: (Duration, Duration) = (Duration::from_millis(20), Duration::from_millis(30));

/// `policies.provision_ahead` with `prefault_shm` on (the default), where the inline
/// attach faults every page of the new epoch: paced producer attaches on a profile of
/// about 16 MiB, inline against ahead, each run with a driver of its own.
fn prefaulted_figures(
    scenario: &str,
    client_core: Option<usize>,
    driver_core: Option<usize>,
) -> Result<Vec<Figure>, BenchError> {
    let plan = Plan {
        role: Role::Producer,
        sessions: 1,
        stream_id: crate::driver_host::FIRST_STREAM_ID,
        warmup_pairs: 3,
        window: Duration::from_secs(60),
        max_pairs: Some(PREFAULT_PAIRS),
        gap: Some(PREFAULT_GAP),
    };
    let mut runs = Vec::new();
    for ahead in [false, true] {
        let scratch = Scratch::new("attach-prefault")?;
        let mut spec =
            DriverSpec::in_scratch(&scratch, PREFAULT_SLOTS, &[(1, PREFAULT_STRIDE)], 1)?;
        spec.prefault = true;
        spec.provision_ahead = ahead;
        let driver = InProcessDriver::start(&spec, driver_core)?;
        let mut result = run_plans(driver.aeron_dir(), client_core, &[plan])?;
        runs.push(result.remove(0));
    }
    let [inline, ahead] = &runs[..] else {
        return Ok(Vec::new());
    };
    let us = |name: &str, value: f64| Figure::new(scenario, name, value, "µs");
    let p50 = us(
        "producer attach p50, prefault",
        inline.attach.quantile_us(0.5),
    )
    .marked_reference()
    .with_note(format!(
        "{} attaches {:?}–{:?} apart, prefault on, {PREFAULT_SLOTS} header slots and \
             {PREFAULT_SLOTS} payload slots of {} KiB per epoch, made on the attach path",
        inline.attach.count(),
        PREFAULT_GAP.0,
        PREFAULT_GAP.1,
        PREFAULT_STRIDE >> 10
    ));
    let p99 = us(
        "producer attach p99, prefault",
        inline.attach.quantile_us(0.99),
    )
    .marked_reference();
    let ahead_p50 = us(
        "producer attach p50, prefault, ahead",
        ahead.attach.quantile_us(0.5),
    )
    .against(Some(&p50));
    let ahead_p99 = us(
        "producer attach p99, prefault, ahead",
        ahead.attach.quantile_us(0.99),
    )
    .against(Some(&p99))
    .with_target(Target::AtMost(ATTACH_P99_TARGET_US))
    .with_note("policies.provision_ahead: each epoch made and faulted on the worker thread");
    Ok(vec![p50, p99, ahead_p50, ahead_p99])
}

/// Median of a few values (for notes).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn figures(scenario: &str, echo: &[LoopResult], driver: &[LoopResult]) -> Vec<Figure> {
    let [echo_busy, echo_idle, echo_16] = echo else {
        return Vec::new();
    };
    let [busy, idle, concurrent, producer] = driver else {
        return Vec::new();
    };
    let us = |name: &str, value: f64| Figure::new(scenario, name, value, "µs");
    let reference = |name: &str, value: f64, unit: &str| {
        Figure::new(scenario, name, value, unit).marked_reference()
    };
    let refs = [
        reference("echo rtt p50", echo_busy.attach.quantile_us(0.5), "µs"),
        reference("echo rtt p99", echo_busy.attach.quantile_us(0.99), "µs").with_note(
            "same client and message shapes, answered at once by an echo on a duty cycle like the driver's",
        ),
        reference("echo rtt p50, idle", echo_idle.attach.quantile_us(0.5), "µs"),
        reference("echo rtt p99, idle", echo_idle.attach.quantile_us(0.99), "µs"),
        reference("echo pairs/s 1 client", echo_busy.pairs_per_s, "pairs/s"),
        reference("echo pairs/s 16 clients", echo_16.pairs_per_s, "pairs/s"),
    ];
    let [ref_p50, ref_p99, ref_idle_p50, ref_idle_p99, ref_pairs, ref_pairs_16] = &refs;
    let series = &producer.attach_series_us;
    let head = &series[..series.len().min(10)];
    let tail = &series[series.len().saturating_sub(10)..];
    let mut figures = refs.to_vec();
    figures.extend([
        us("consumer attach p50", busy.attach.quantile_us(0.5)).against(Some(ref_p50)),
        us("consumer attach p99", busy.attach.quantile_us(0.99))
            .against(Some(ref_p99))
            .with_target(Target::AtMost(ATTACH_P99_TARGET_US))
            .with_note(format!(
                "back-to-back, {} attaches; detach p50 {:.1} µs, p99 {:.1} µs",
                busy.attach.count(),
                busy.detach.quantile_us(0.5),
                busy.detach.quantile_us(0.99)
            )),
        us(
            "consumer attach p50, idle driver",
            idle.attach.quantile_us(0.5),
        )
        .against(Some(ref_idle_p50)),
        us(
            "consumer attach p99, idle driver",
            idle.attach.quantile_us(0.99),
        )
        .against(Some(ref_idle_p99))
        .with_target(Target::AtMost(ATTACH_P99_TARGET_US))
        .with_note(format!(
            "{} attaches {:?}–{:?} apart (uniform): the driver is parked (≤ {IDLE_PARK:?}) when each arrives and the client rings its doorbell",
            idle.attach.count(),
            idle_gap().0,
            idle_gap().1
        )),
        us("producer attach p50", producer.attach.quantile_us(0.5)).against(Some(ref_p50)),
        us("producer attach p99", producer.attach.quantile_us(0.99))
            .against(Some(ref_p99))
            .with_target(Target::AtMost(ATTACH_P99_TARGET_US))
            .with_note(format!(
                "{} attaches, each a new epoch (files created, prefault off); median of the \
                 first 10 {:.0} µs, of the last 10 {:.0} µs",
                producer.attach.count(),
                median(head),
                median(tail)
            )),
        Figure::new(scenario, "pairs/s 1 client", busy.pairs_per_s, "pairs/s")
            .against(Some(ref_pairs)),
        Figure::new(
            scenario,
            "pairs/s 16 clients",
            concurrent.pairs_per_s,
            "pairs/s",
        )
        .against(Some(ref_pairs_16))
        .with_note(format!(
            "attach p99 under this load {:.1} µs",
            concurrent.attach.quantile_us(0.99)
        )),
    ]);
    figures
}
