//! The `tp-driver` process: one duty cycle that pumps the Aeron client (and the embedded
//! media driver it owns, in embedded mode) and the SHM driver agent, with an Aeron-style
//! idle strategy, until a signal or an accepted shutdown request ends it.

use super::aeron_plane::AeronControlPlane;
use super::agent::DriverAgent;
use super::core::{CoreEnv, DriverCore, StartError};
use super::counters::DriverCounters;
use super::provision::{monotonic_now_ns, ShmProvisioner};
use crate::config::{DriverConfig, MediaDriverMode};
use crate::protocol::driver::ShutdownReason;
use crate::transport::{
    AeronClient, BackoffIdle, ClientOptions, MediaDriverOptions, TransportError,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How long external mode waits for a media driver to appear.
const EXTERNAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often Aeron counters are refreshed.
const COUNTER_PERIOD_NS: u64 = 100_000_000;
/// Longest idle park between duty cycles.
const MAX_PARK: Duration = Duration::from_millis(1);

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
        MediaDriverMode::Embedded => {
            tracing::info!(aeron_dir = ?dir, "starting embedded media driver");
            AeronClient::start_embedded(&MediaDriverOptions {
                dir,
                ..MediaDriverOptions::default()
            })
        }
        MediaDriverMode::External => {
            tracing::info!(aeron_dir = ?dir, "connecting to external media driver");
            AeronClient::connect_with(&ClientOptions {
                dir,
                connect_timeout: EXTERNAL_CONNECT_TIMEOUT,
                client_name: Some(format!("tp-driver[{}]", config.driver.instance_id)),
                ..ClientOptions::default()
            })
        }
    }
}

/// A lease id seed that grows between runs: wall-clock nanoseconds since the epoch.
fn lease_id_seed() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
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
    let client = start_aeron(config)?;
    let mut provisioner = ShmProvisioner::new(config)?;
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
    let plane = AeronControlPlane::new(&client, config)?;
    let counters = DriverCounters::new(&client, &config.driver.instance_id)?;
    let mut agent = DriverAgent::new(
        core,
        provisioner,
        plane,
        config.policies.announce_period_ns(),
    );
    tracing::info!(
        instance_id = %config.driver.instance_id,
        aeron_dir = %client.dir().display(),
        control_stream_id = config.driver.control_stream_id,
        announce_stream_id = config.driver.announce_stream_id,
        base_dir = %config.shm.base_dir.display(),
        "tp-driver running"
    );

    let mut idle = BackoffIdle::with_max_park(MAX_PARK);
    let mut next_counters_ns = 0;
    loop {
        let now_ns = monotonic_now_ns();
        let mut work = client.do_work()?;
        work += agent.do_work(now_ns);
        if now_ns >= next_counters_ns {
            next_counters_ns = now_ns + COUNTER_PERIOD_NS;
            counters.update(agent.core(), agent.counters());
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
        idle.idle(work);
    }
    counters.update(agent.core(), agent.counters());
    // Let the client conductor pass the final messages on before closing.
    for _ in 0..10 {
        client.do_work()?;
    }
    Ok(())
}
