//! The `tp-driver` process: one duty cycle that pumps the Aeron client (and the embedded
//! media driver it owns, in embedded mode) and the SHM driver agent, with a control-plane
//! idle strategy ([`DriverIdle`]), until a signal or an accepted shutdown request ends it.

use super::aeron_plane::AeronControlPlane;
use super::agent::DriverAgent;
use super::core::{CoreCounters, CoreEnv, DriverCore, StartError};
use super::counters::{DriverCounters, HostFigures};
use super::lease_counters::LeaseCounters;
use super::ownership::{Claim, ClaimError, OwnerLock};
use super::provision::ShmProvisioner;
use super::recovery::{rebuild, RecoveryError};
use crate::clock::monotonic_now_ns;
use crate::config::{DriverConfig, MediaDriverMode};
use crate::protocol::driver::ShutdownReason;
use crate::shm::doorbell::{doorbell_path, DriverDoorbell, Wake};
use crate::transport::{AeronClient, ClientOptions, TransportError};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How long external mode waits for a media driver to appear.
const EXTERNAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often Aeron counters are refreshed.
const COUNTER_PERIOD_NS: u64 = 100_000_000;
/// Duty cycles run without pause after one that answered a request, before the driver
/// parks: a client's next request often follows the response within microseconds.
pub const IDLE_SPINS: u32 = 10;
/// The longest park, and the park of a driver that answered no request lately: what an
/// idle driver adds to a request's latency at worst, and about 500 wake-ups a second.
/// Chosen for the CPU budget (< 5 % of a core with 10,000 leases) on a VM where a wake-up
/// costs 25–45 µs of CPU; a 1 ms park costs about 5 % there (docs/BENCHMARKS.md). In
/// embedded mode it also paces the media driver, which moves IPC publication limits: a
/// publication's window (half a term, 2 MiB for 4 MiB terms) must outlast a park, which
/// 2 ms of descriptors (96 bytes each in the log) do below 10 million frames a second.
pub const IDLE_PARK: Duration = Duration::from_millis(2);
/// The first park after a request was answered (an attach, detach or hello); each park
/// doubles the next one up to [`IDLE_PARK`].
pub const RESPONSIVE_PARK: Duration = Duration::from_micros(50);
/// Timer slack of the thread running the duty cycle: the kernel's default (50 µs) would
/// stretch every park by up to that much.
const TIMER_SLACK_NS: u64 = 1;

/// Why the driver could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Aeron could not be started or reached.
    #[error("aeron: {0}")]
    Transport(#[from] TransportError),
    /// The SHM base directory could not be prepared.
    #[error("shm: {0}")]
    Provision(#[from] super::core::ProvisionFailure),
    /// Static streams could not be provisioned.
    #[error("start: {0}")]
    Start(#[from] StartError),
    /// The Aeron client closed and could not be rebuilt (the media driver is gone).
    #[error("{0}")]
    Recovery(#[from] RecoveryError),
    /// Another driver serves the same control stream of the same media driver.
    #[error("{0}")]
    Claim(#[from] ClaimError),
    /// Signal handlers could not be installed.
    #[error("installing signal handlers: {0}")]
    Signals(nix::Error),
}

static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: nix::libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() -> Result<(), nix::Error> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

/// Connects to or starts the media driver the configuration asks for.
pub fn start_aeron(config: &DriverConfig) -> Result<AeronClient, TransportError> {
    let dir = config.driver.aeron_dir.clone();
    match config.driver.media_driver {
        #[cfg(feature = "embedded-media-driver")]
        MediaDriverMode::Embedded => {
            tracing::info!(aeron_dir = ?dir, "starting embedded media driver");
            AeronClient::start_embedded(&crate::transport::MediaDriverOptions {
                dir,
                ..Default::default()
            })
        }
        #[cfg(not(feature = "embedded-media-driver"))]
        MediaDriverMode::Embedded => Err(TransportError::InvalidArgument(
            "driver.media_driver = \"embedded\" needs tensorpool built with the \
             embedded-media-driver feature"
                .into(),
        )),
        MediaDriverMode::External => {
            tracing::info!(aeron_dir = ?dir, "connecting to external media driver");
            AeronClient::connect_with(&external_client_options(config, EXTERNAL_CONNECT_TIMEOUT))
        }
    }
}

/// The client options of the driver in external mode, waiting `connect_timeout` for a
/// media driver.
pub(crate) fn external_client_options(
    config: &DriverConfig,
    connect_timeout: Duration,
) -> ClientOptions {
    ClientOptions {
        dir: config.driver.aeron_dir.clone(),
        connect_timeout,
        client_name: Some(format!("tp-driver[{}]", config.driver.instance_id)),
        ..ClientOptions::default()
    }
}

/// A lease id seed that grows between runs: wall-clock nanoseconds since the epoch.
fn lease_id_seed() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Claims `driver.control_stream_id` on the media driver in `aeron_dir` for as long as
/// the returned lock lives (see [`crate::driver::ownership`]).
pub fn claim_control_stream(
    aeron_dir: &std::path::Path,
    config: &DriverConfig,
) -> Result<OwnerLock, RunError> {
    let claim = Claim::ControlStream {
        aeron_dir: aeron_dir.to_path_buf(),
        stream_id: config.driver.control_stream_id,
    };
    // Readable by the clients that share the Aeron directory, as the doorbell is.
    Ok(OwnerLock::acquire(
        &claim,
        &config.driver.instance_id,
        config.permissions_mode_bits() | 0o444,
    )?)
}

/// The SHM side of start-up, the same for every host: the provisioner (base directory
/// created, start-up GC and deletion as configured) and a started core (static streams
/// provisioned). Needs no Aeron.
pub fn prepare(config: &DriverConfig) -> Result<(DriverCore, ShmProvisioner), RunError> {
    let mut provisioner = ShmProvisioner::new(config)?;
    // Before start-up GC or deletion: never touch a namespace another driver serves.
    provisioner.claim_namespace(&config.driver.instance_id)?;
    if config.policies.epoch_gc_on_startup {
        let report = provisioner.gc_all(SystemTime::now());
        tracing::info!(?report, "start-up epoch GC done");
    }
    if config.policies.delete_shm_on_startup {
        for stream in config.streams.values() {
            let report = provisioner.remove_existing_epochs(stream.stream_id)?;
            tracing::info!(
                stream_id = stream.stream_id,
                removed = report.removed.len(),
                "existing epochs deleted at start-up"
            );
        }
    }
    let env = CoreEnv {
        lease_id_seed: lease_id_seed(),
        base_is_hugetlbfs: provisioner.is_hugetlbfs(),
    };
    let mut core = DriverCore::new(config, env);
    core.start(monotonic_now_ns(), &mut provisioner)?;
    Ok((core, provisioner))
}

/// Runs the driver until SIGINT/SIGTERM or an accepted shutdown request.
pub fn run(config: &DriverConfig) -> Result<(), RunError> {
    install_signal_handlers().map_err(RunError::Signals)?;
    run_until(config, &STOP_REQUESTED)
}

/// Runs the driver on the calling thread until `stop` is set (then it sends
/// `ShmDriverShutdown(NORMAL)`) or an accepted shutdown request completes. This is what
/// `run` does without installing signal handlers, for hosts that embed the driver.
pub fn run_until(config: &DriverConfig, stop: &AtomicBool) -> Result<(), RunError> {
    // The SHM side first: a driver refused its namespace starts no media driver.
    let (core, provisioner) = prepare(config)?;
    let mut client = start_aeron(config)?;
    let _control_stream = claim_control_stream(client.dir(), config)?;
    // Before the control subscription exists, so a client that sees the driver listening
    // also finds its doorbell.
    let bell_path = doorbell_path(client.dir(), config.driver.control_stream_id);
    let doorbell = match DriverDoorbell::create(&bell_path) {
        Ok(bell) => {
            tracing::info!(path = %bell_path.display(), "doorbell ready");
            Some(bell)
        }
        Err(error) => {
            tracing::warn!(
                %error,
                "no doorbell: clients' requests to an idle driver wait up to {IDLE_PARK:?}"
            );
            None
        }
    };
    let plane = AeronControlPlane::new(&client, config)?;
    let mut counters = DriverCounters::new(&client, config)?;
    let mut agent = DriverAgent::new(
        core,
        provisioner,
        plane,
        config.policies.announce_period_ns(),
    );
    agent.record_lease_events();
    let mut leases =
        LeaseCounters::new(&config.driver.instance_id, config.driver.control_stream_id);
    tracing::info!(
        instance_id = %config.driver.instance_id,
        aeron_dir = %client.dir().display(),
        control_stream_id = config.driver.control_stream_id,
        announce_stream_id = config.driver.announce_stream_id,
        base_dir = %config.shm.base_dir.display(),
        "tp-driver running"
    );

    let mut idle = DriverIdle::new();
    if let Some(bell) = doorbell {
        idle = idle.with_doorbell(bell);
    }
    let mut answered = requests_answered(agent.core().counters());
    let mut next_counters_ns = 0;
    let mut recoveries = 0;
    loop {
        let now_ns = monotonic_now_ns();
        let mut work = match client.do_work() {
            Ok(work) => work,
            Err(TransportError::ClientClosed) => {
                let rebuilt = match rebuild(config, client, &mut agent, &mut leases, stop) {
                    Ok(rebuilt) => rebuilt,
                    Err(RecoveryError::Stopped) => {
                        // No client to send ShmDriverShutdown through; clients see the
                        // driver go as after a crash (Driver Model §10).
                        tracing::info!("stop requested while rebuilding the aeron client");
                        return Ok(());
                    }
                    Err(error) => return Err(error.into()),
                };
                (client, counters) = (rebuilt.client, rebuilt.counters);
                recoveries += 1;
                next_counters_ns = 0;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        work += agent.do_work(now_ns);
        agent.drain_lease_events(|event, core| leases.apply(&client, core, event, now_ns));
        leases.poll(&client, agent.core(), now_ns);
        let answered_now = requests_answered(agent.core().counters());
        let answered_request = answered_now != answered;
        answered = answered_now;
        if now_ns >= next_counters_ns {
            next_counters_ns = now_ns + COUNTER_PERIOD_NS;
            counters.update(
                agent.core(),
                agent.counters(),
                HostFigures {
                    aeron_client_recoveries: recoveries,
                    ..HostFigures::new(
                        agent.provisioner(),
                        idle.doorbell_wakeups(),
                        leases.unpublished(),
                    )
                },
            );
        }
        if stop.load(Ordering::SeqCst) {
            tracing::info!("stop requested; shutting down");
            agent.shutdown_now(ShutdownReason::Normal, now_ns);
            break;
        }
        if agent.is_terminated() {
            tracing::info!("shutdown complete");
            break;
        }
        idle.idle_with(work, answered_request, || {
            // The last duty cycle before a park on the doorbell (see DriverIdle); an Aeron
            // error counts as work, so the next turn of the loop reports it.
            client.do_work().unwrap_or(1) + agent.do_work(monotonic_now_ns())
        });
    }
    counters.update(
        agent.core(),
        agent.counters(),
        HostFigures {
            aeron_client_recoveries: recoveries,
            ..HostFigures::new(
                agent.provisioner(),
                idle.doorbell_wakeups(),
                leases.unpublished(),
            )
        },
    );
    drop(leases);
    // Let the client conductor pass the final messages on before closing.
    for _ in 0..10 {
        client.do_work()?;
    }
    Ok(())
}

/// Requests the core has answered so far: attaches, detaches and hellos. Keepalives need no
/// answer, so a stream of them does not make the driver [responsive](DriverIdle).
fn requests_answered(counters: &CoreCounters) -> u64 {
    counters.attaches_ok
        + counters.attaches_unsupported
        + counters.attaches_invalid_params
        + counters.attaches_rejected
        + counters.attaches_internal_error
        + counters.detaches
        + counters.detaches_rejected
        + counters.consumer_configs
}

/// The idle strategy of the driver's duty cycle, for a control plane whose traffic is
/// mostly keepalives (thousands a second, none urgent) with now and then a request a client
/// waits for.
///
/// - A cycle that did work is followed by another at once; one that answered a request,
///   by up to [`IDLE_SPINS`] more without pause.
/// - Then the driver parks. A driver that answered no request lately parks [`IDLE_PARK`]:
///   keepalive traffic is drained in batches, about 500 wake-ups a second whatever the
///   number of leases. Answering a request sets the next park to [`RESPONSIVE_PARK`], and
///   every park doubles the next one back up to [`IDLE_PARK`], so a client's follow-up
///   requests (detach after attach, the next attach) are served within the spins or the
///   first short parks.
/// - There are no `sched_yield` steps: on a machine with a core to spare they only spin.
/// - With a [doorbell](crate::shm::doorbell), a park ends as soon as a client rings it after
///   publishing a request, so an idle driver answers in about one wake-up rather than up to
///   a whole park; clients that do not ring (other implementations) wait as before.
///
/// Every park costs a wake-up, whose CPU cost depends on the machine (a few µs on bare
/// metal, 25–45 µs in the VM docs/BENCHMARKS.md was measured in), so the longest park
/// sets the driver's idle CPU, and it bounds how long a request waits when it reaches an
/// idle driver. docs/BENCHMARKS.md measures both and the trade-off between them.
///
/// Creating one lowers the calling thread's timer slack to 1 ns (Linux) until it is
/// dropped, so parks last what they ask; create it on the thread that idles with it.
#[derive(Debug)]
pub struct DriverIdle {
    spins_left: u32,
    park: Duration,
    doorbell: Option<DriverDoorbell>,
    doorbell_wakeups: u64,
    previous_timer_slack: Option<u64>,
    /// The timer slack belongs to the thread: keep the strategy on it.
    _not_send: PhantomData<*const ()>,
}

impl DriverIdle {
    /// A strategy whose first park is [`IDLE_PARK`]; lowers this thread's timer slack.
    pub fn new() -> Self {
        Self {
            spins_left: 0,
            park: IDLE_PARK,
            doorbell: None,
            doorbell_wakeups: 0,
            previous_timer_slack: set_timer_slack(TIMER_SLACK_NS),
            _not_send: PhantomData,
        }
    }

    /// Parks on `doorbell` from now on: a client's ring ends a park early.
    pub fn with_doorbell(mut self, doorbell: DriverDoorbell) -> Self {
        self.doorbell = Some(doorbell);
        self
    }

    /// Parks that a client's ring ended early.
    pub fn doorbell_wakeups(&self) -> u64 {
        self.doorbell_wakeups
    }

    /// Idles after a duty cycle that did `work` (0 = none); `answered_request` says
    /// whether it answered a request (see [`DriverIdle`]).
    pub fn idle(&mut self, work: usize, answered_request: bool) {
        self.idle_with(work, answered_request, || 0);
    }

    /// As [`DriverIdle::idle`]; before parking on a doorbell, runs `last_cycle` (one duty
    /// cycle, returning its work) after declaring the driver asleep, and does not park if
    /// it found work. Without a doorbell `last_cycle` is not run.
    pub fn idle_with(
        &mut self,
        work: usize,
        answered_request: bool,
        last_cycle: impl FnOnce() -> usize,
    ) {
        if answered_request {
            self.park = RESPONSIVE_PARK;
            self.spins_left = IDLE_SPINS;
        } else if work > 0 {
            // Go round again at once: more may be waiting.
        } else if self.spins_left > 0 {
            self.spins_left -= 1;
            std::hint::spin_loop();
        } else {
            match &self.doorbell {
                Some(bell) => match bell.park(self.park, last_cycle) {
                    // The duty cycle that follows handles the request.
                    Wake::Work => return,
                    Wake::Rung => self.doorbell_wakeups += 1,
                    Wake::Timeout => {}
                },
                None => std::thread::sleep(self.park),
            }
            self.park = (self.park * 2).min(IDLE_PARK);
        }
    }

    /// The period of the next park.
    pub fn next_park(&self) -> Duration {
        self.park
    }
}

impl Default for DriverIdle {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for DriverIdle {
    fn drop(&mut self) {
        if let Some(previous) = self.previous_timer_slack {
            set_timer_slack(previous);
        }
    }
}

/// Sets the calling thread's timer slack to `ns`; returns the previous value, or `None`
/// (and changes nothing) where that is not possible.
#[cfg(target_os = "linux")]
fn set_timer_slack(ns: u64) -> Option<u64> {
    let previous = nix::sys::prctl::get_timerslack().ok()?;
    let previous = u64::try_from(previous).ok()?;
    match nix::sys::prctl::set_timerslack(ns) {
        Ok(()) => Some(previous),
        Err(error) => {
            tracing::debug!(%error, "timer slack unchanged");
            None
        }
    }
}

/// Timer slack is Linux-only; elsewhere parks keep the platform's precision.
#[cfg(not(target_os = "linux"))]
fn set_timer_slack(_ns: u64) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn spin_out(idle: &mut DriverIdle) {
        for _ in 0..IDLE_SPINS {
            idle.idle(0, false);
        }
    }

    #[test]
    fn a_ring_ends_a_park_on_the_doorbell_and_is_counted() {
        use crate::shm::doorbell::{doorbell_path, Doorbell, DriverDoorbell};
        let dir = tempfile::tempdir().expect("temp dir");
        let path = doorbell_path(dir.path(), 1);
        let mut idle =
            DriverIdle::new().with_doorbell(DriverDoorbell::create(&path).expect("bell"));
        let client = Doorbell::open(&path).expect("opens").expect("exists");
        // Work found by the last cycle before the park: no park, nothing counted.
        idle.idle_with(0, false, || 1);
        assert_eq!(idle.doorbell_wakeups(), 0);
        // A client rings while the driver is declared asleep: the park ends at once.
        let start = Instant::now();
        idle.idle_with(0, false, || {
            assert!(client.ring());
            0
        });
        assert!(start.elapsed() < IDLE_PARK * 100, "woken, not parked out");
        assert_eq!(idle.doorbell_wakeups(), 1);
        // Nobody rings: a full park.
        let start = Instant::now();
        idle.idle_with(0, false, || 0);
        assert!(
            start.elapsed() >= IDLE_PARK,
            "parked the whole {IDLE_PARK:?}"
        );
        assert_eq!(idle.doorbell_wakeups(), 1);
    }

    #[test]
    fn work_without_a_request_keeps_the_long_park_and_no_spins() {
        let mut idle = DriverIdle::new();
        for _ in 0..2 {
            idle.idle(5, false);
            assert_eq!(idle.next_park(), IDLE_PARK);
            let start = Instant::now();
            idle.idle(0, false);
            assert!(
                start.elapsed() >= IDLE_PARK,
                "parks at once, for the long park"
            );
        }
    }

    #[test]
    fn answered_request_shortens_parks_which_double_back() {
        let mut idle = DriverIdle::new();
        idle.idle(1, true);
        assert_eq!(idle.next_park(), RESPONSIVE_PARK);
        spin_out(&mut idle);
        let mut expected = RESPONSIVE_PARK;
        while expected < IDLE_PARK {
            assert_eq!(idle.next_park(), expected);
            idle.idle(0, false);
            expected = (expected * 2).min(IDLE_PARK);
            // Keepalive work in between does not shorten the park again.
            idle.idle(3, false);
        }
        assert_eq!(idle.next_park(), IDLE_PARK);
    }

    #[test]
    fn spins_come_before_the_park() {
        let mut idle = DriverIdle::new();
        idle.idle(1, true);
        spin_out(&mut idle);
        assert_eq!(idle.next_park(), RESPONSIVE_PARK, "spinning does not park");
        let start = Instant::now();
        idle.idle(0, false);
        assert!(start.elapsed() >= RESPONSIVE_PARK, "then it parks");
        assert_eq!(idle.next_park(), 2 * RESPONSIVE_PARK);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn timer_slack_is_lowered_while_the_strategy_lives() {
        std::thread::spawn(|| {
            let before = nix::sys::prctl::get_timerslack().expect("readable");
            let idle = DriverIdle::new();
            assert_eq!(
                nix::sys::prctl::get_timerslack().expect("readable"),
                TIMER_SLACK_NS as i32
            );
            drop(idle);
            assert_eq!(nix::sys::prctl::get_timerslack().expect("readable"), before);
        })
        .join()
        .expect("the test thread does not panic");
    }
}
