//! The SHM driver on a duty cycle someone else owns: the aeronmd plugin, where a stock
//! media driver's native-resource agent calls [`HostedDriver::do_work`] (docs/DESIGN.md,
//! "aeronmd plugin"). The rules are the agent's (Driver Model §4–§8, §11, §15); this host
//! only decides *when* things happen, under one constraint: the thread belongs to the media
//! driver, so nothing here waits.
//!
//! - [`HostedDriver::open`] runs while the media driver initialises: it validates the
//!   configuration and prepares the SHM base directory and static streams, so a bad
//!   configuration stops the media driver from starting instead of leaving it running
//!   without tensorpool.
//! - [`HostedDriver::do_work`] connects an Aeron client to the host's own directory (agent
//!   invoker mode, pumped from here), adds the control streams and counters asynchronously,
//!   then runs the agent; every step is bounded work, no sleeps, no blocking registrations.
//! - When its Aeron client closes (the host timed it out after a stall, or it was lapped),
//!   the driver logs why once and builds a new client, control plane and counters in the
//!   same bounded steps, retrying every second, while the core keeps its lease table
//!   (docs/DESIGN.md, "Driver process").
//! - [`HostedDriver::close`] runs when the media driver stops: `ShmDriverShutdown(NORMAL)`,
//!   as `tp-driver` sends on SIGTERM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::aeron_plane::{AeronControlPlane, PendingControlPlane};
use super::agent::DriverAgent;
use super::core::DriverCore;
use super::counters::{DriverCounters, HostFigures, PendingDriverCounters};
use super::lease_counters::LeaseCounters;
use super::provision::ShmProvisioner;
use super::runner::{prepare, RunError};
use crate::clock::monotonic_now_ns;
use crate::config::{ConfigError, DriverConfig, EnvSource};
use crate::protocol::driver::ShutdownReason;
use crate::transport::{AeronClient, ClientOptions, TransportError};

/// The environment variable naming the driver configuration file.
pub const CONFIG_ENV: &str = "TENSORPOOL_DRIVER_CONFIG";
/// How long after a failed connection or registration the next attempt starts.
const RETRY_PERIOD_NS: u64 = 1_000_000_000;
/// How often the Aeron counters are refreshed.
const COUNTER_PERIOD_NS: u64 = 100_000_000;
/// Client duty cycles run after the shutdown notice, so the client conductor passes it on.
const FINAL_CLIENT_CYCLES: usize = 10;

/// Why the hosted driver cannot start; the message names the variable, key or path.
#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    /// `TENSORPOOL_DRIVER_CONFIG` is not set.
    #[error("{CONFIG_ENV} is not set: name the tensorpool driver configuration file")]
    NoConfig,
    /// The configuration is invalid (the error names the key) or unreadable.
    #[error("invalid configuration {}: {source}{}", path.display(), key_hint(source))]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong.
        source: ConfigError,
    },
    /// `driver.aeron_dir` names another directory than the host media driver's.
    #[error(
        "driver.aeron_dir is {} but the media driver hosting tensorpool uses {}; \
         leave driver.aeron_dir empty or set it to the host's directory",
        configured.display(), host.display()
    )]
    AeronDirMismatch {
        /// The configured directory.
        configured: PathBuf,
        /// The host media driver's directory.
        host: PathBuf,
    },
    /// The SHM base directory or a static stream could not be prepared.
    #[error("{0}")]
    Start(#[from] RunError),
}

fn key_hint(error: &ConfigError) -> String {
    match error.key() {
        Some(key) if !error.to_string().contains(key) => format!(" (key {key})"),
        _ => String::new(),
    }
}

/// Core and provisioner, ready for an agent.
struct Parts {
    core: DriverCore,
    provisioner: ShmProvisioner,
}

/// Where the hosted driver is in its life.
enum Stage {
    /// Configuration checked and files ready; no Aeron client yet.
    Prepared(Box<Parts>),
    /// A client is connected and the media driver is setting up streams and counters.
    Registering(Box<Registering>),
    /// The agent runs.
    Running(Box<Running>),
    /// Shut down (closed, or on an accepted shutdown request); does nothing more.
    Finished,
}

struct Registering {
    parts: Parts,
    aeron: Box<PendingAeron>,
}

/// A client of the host media driver whose streams and counters are being set up (at
/// start, and again after the client closed).
struct PendingAeron {
    // Field order is drop order: registrations before the client they came from.
    plane: PendingControlPlane,
    counters: PendingDriverCounters,
    ready_plane: Option<AeronControlPlane>,
    ready_counters: Option<DriverCounters>,
    client: AeronClient,
}

/// A client with its control plane and counters, ready.
type ReadyAeron = (AeronClient, AeronControlPlane, DriverCounters);

impl PendingAeron {
    /// Connects a client to the host media driver in `aeron_dir` and requests the streams
    /// and counters `config` needs.
    fn connect(config: &DriverConfig, aeron_dir: &Path) -> Result<Self, TransportError> {
        let options = ClientOptions {
            dir: Some(aeron_dir.to_owned()),
            // The host is alive (it is calling us): one liveness check, no waiting.
            connect_timeout: Duration::ZERO,
            client_name: Some(format!("tp-driver[{}]", config.driver.instance_id)),
            ..ClientOptions::default()
        };
        let client = AeronClient::connect_with(&options)?;
        let plane = AeronControlPlane::start(&client, config)?;
        let counters = DriverCounters::start(&client, config)?;
        Ok(Self {
            plane,
            counters,
            ready_plane: None,
            ready_counters: None,
            client,
        })
    }

    /// Pumps the client and polls the registrations once; returns the work done.
    fn step(&mut self) -> Result<usize, TransportError> {
        let work = self.client.do_work()?;
        if self.ready_plane.is_none() {
            self.ready_plane = self.plane.poll()?;
        }
        if self.ready_counters.is_none() {
            self.ready_counters = self.counters.poll()?;
        }
        Ok(work)
    }

    /// The client, plane and counters once all are ready; itself otherwise.
    fn into_ready(mut self: Box<Self>) -> Result<ReadyAeron, Box<Self>> {
        match (self.ready_plane.take(), self.ready_counters.take()) {
            (Some(plane), Some(counters)) => Ok((self.client, plane, counters)),
            (plane, counters) => {
                self.ready_plane = plane;
                self.ready_counters = counters;
                Err(self)
            }
        }
    }
}

struct Running {
    agent: DriverAgent<ShmProvisioner, AeronControlPlane>,
    counters: DriverCounters,
    leases: LeaseCounters,
    next_counters_ns: u64,
    client_failed: bool,
    /// A new client being set up after `client` closed.
    rebuilding: Option<Box<PendingAeron>>,
    /// When the next attempt to build a new client may start.
    next_rebuild_ns: u64,
    /// Clients rebuilt so far.
    recoveries: u64,
    client: AeronClient,
}

/// The SHM driver agent hosted on a media driver's duty cycle.
pub struct HostedDriver {
    config: DriverConfig,
    aeron_dir: PathBuf,
    stage: Stage,
    next_attempt_ns: u64,
    /// This driver's claim on its control stream of the host media driver: made when
    /// opened if the media driver's directory exists, else before connecting.
    control_stream: Option<crate::driver::ownership::OwnerLock>,
}

impl HostedDriver {
    /// Loads the configuration named by [`CONFIG_ENV`] in `env` (with the same environment
    /// overrides as `tp-driver`) and opens a driver for the media driver in `aeron_dir`.
    pub fn open_from_env(aeron_dir: &Path, env: &dyn EnvSource) -> Result<Self, HostedError> {
        let path = PathBuf::from(env.var(CONFIG_ENV).ok_or(HostedError::NoConfig)?);
        let config = DriverConfig::load(&path, env)
            .map_err(|source| HostedError::Config { path, source })?;
        Self::open(config, aeron_dir)
    }

    /// Validates `config` against the host media driver's directory `aeron_dir` and
    /// prepares the SHM side (base directory, start-up GC, static streams). No Aeron yet.
    pub fn open(mut config: DriverConfig, aeron_dir: &Path) -> Result<Self, HostedError> {
        let host = absolute(aeron_dir);
        if let Some(configured) = &config.driver.aeron_dir {
            if !same_dir(configured, &host) {
                return Err(HostedError::AeronDirMismatch {
                    configured: configured.clone(),
                    host,
                });
            }
        }
        config.driver.aeron_dir = Some(host.clone());
        let control_stream = if host.is_dir() {
            Some(super::runner::claim_control_stream(&host, &config)?)
        } else {
            None
        };
        let (core, provisioner) = prepare(&config)?;
        tracing::info!(
            instance_id = %config.driver.instance_id,
            aeron_dir = %host.display(),
            base_dir = %config.shm.base_dir.display(),
            "tensorpool SHM driver prepared inside the media driver"
        );
        Ok(Self {
            config,
            aeron_dir: host,
            stage: Stage::Prepared(Box::new(Parts { core, provisioner })),
            next_attempt_ns: 0,
            control_stream,
        })
    }

    /// One duty cycle, on the media driver's thread; returns the work done. Never blocks.
    pub fn do_work(&mut self, now_ns: u64) -> usize {
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::Prepared(parts) if now_ns < self.next_attempt_ns => {
                self.stage = Stage::Prepared(parts);
                0
            }
            Stage::Prepared(parts) if self.control_stream.is_none() => {
                use crate::driver::ownership::ClaimError;
                match super::runner::claim_control_stream(&self.aeron_dir, &self.config) {
                    Ok(lock) => {
                        self.control_stream = Some(lock);
                        self.stage = Stage::Prepared(parts);
                        1
                    }
                    Err(error @ RunError::Claim(ClaimError::Taken { .. })) => {
                        // Another driver answers this control stream: serving it too
                        // would answer its clients twice. The media driver runs on.
                        tracing::error!(%error, "tensorpool SHM driver not started");
                        0
                    }
                    Err(error) => {
                        // The media driver has not made its directory yet.
                        tracing::debug!(%error, "cannot claim the control stream yet; retrying");
                        self.next_attempt_ns = now_ns + RETRY_PERIOD_NS;
                        self.stage = Stage::Prepared(parts);
                        0
                    }
                }
            }
            Stage::Prepared(parts) => match PendingAeron::connect(&self.config, &self.aeron_dir) {
                Ok(aeron) => {
                    self.stage = Stage::Registering(Box::new(Registering {
                        parts: *parts,
                        aeron: Box::new(aeron),
                    }));
                    1
                }
                Err(error) => {
                    tracing::warn!(%error, "connecting to the host media driver failed; retrying");
                    self.next_attempt_ns = now_ns + RETRY_PERIOD_NS;
                    self.stage = Stage::Prepared(parts);
                    0
                }
            },
            Stage::Registering(registering) => self.register(*registering, now_ns),
            Stage::Running(mut running) => {
                let work = run(&mut running, now_ns, &self.config, &self.aeron_dir);
                if running.agent.is_terminated() {
                    tracing::info!("tensorpool SHM driver shut down on request; the media driver keeps running");
                    finish(&mut running);
                } else {
                    self.stage = Stage::Running(running);
                }
                work
            }
            Stage::Finished => 0,
        }
    }

    /// Sends `ShmDriverShutdown(NORMAL)` to clients and releases everything; called when the
    /// media driver stops. Later duty cycles do nothing.
    pub fn close(&mut self) {
        if let Stage::Running(mut running) = std::mem::replace(&mut self.stage, Stage::Finished) {
            tracing::info!("media driver stopping; sending ShmDriverShutdown");
            running
                .agent
                .shutdown_now(ShutdownReason::Normal, monotonic_now_ns());
            finish(&mut running);
        }
    }

    /// Whether the agent is running (the client connected and every stream set up).
    pub fn is_running(&self) -> bool {
        matches!(self.stage, Stage::Running(_))
    }

    /// The configuration in effect (`driver.aeron_dir` is the host's).
    pub fn config(&self) -> &DriverConfig {
        &self.config
    }

    /// The host media driver's Aeron directory.
    pub fn aeron_dir(&self) -> &Path {
        &self.aeron_dir
    }

    fn register(&mut self, mut r: Registering, now_ns: u64) -> usize {
        let work = match r.aeron.step() {
            Ok(work) => work,
            Err(error) => {
                tracing::error!(%error, "setting up the driver's streams failed; retrying");
                self.next_attempt_ns = now_ns + RETRY_PERIOD_NS;
                let Registering { parts, .. } = r;
                self.stage = Stage::Prepared(Box::new(parts));
                return 0;
            }
        };
        let Registering { parts, aeron } = r;
        match aeron.into_ready() {
            Ok((client, plane, counters)) => {
                let mut agent = DriverAgent::new(
                    parts.core,
                    parts.provisioner,
                    plane,
                    self.config.policies.announce_period_ns(),
                );
                agent.record_lease_events();
                let leases = LeaseCounters::new(
                    &self.config.driver.instance_id,
                    self.config.driver.control_stream_id,
                );
                tracing::info!(
                    instance_id = %self.config.driver.instance_id,
                    aeron_dir = %self.aeron_dir.display(),
                    control_stream_id = self.config.driver.control_stream_id,
                    announce_stream_id = self.config.driver.announce_stream_id,
                    "tensorpool SHM driver running inside the media driver"
                );
                self.stage = Stage::Running(Box::new(Running {
                    agent,
                    counters,
                    leases,
                    next_counters_ns: 0,
                    client_failed: false,
                    rebuilding: None,
                    next_rebuild_ns: 0,
                    recoveries: 0,
                    client,
                }));
            }
            Err(aeron) => {
                self.stage = Stage::Registering(Box::new(Registering { parts, aeron }));
            }
        }
        work + 1
    }
}

/// One cycle of a running driver: the client conductor, then the agent; while the client
/// is closed, a step of building a new one instead.
fn run(running: &mut Running, now_ns: u64, config: &DriverConfig, aeron_dir: &Path) -> usize {
    if running.client.is_closed() {
        return rebuild(running, now_ns, config, aeron_dir);
    }
    let client_work = match running.client.do_work() {
        Ok(work) => work,
        Err(_) if running.client.is_closed() => {
            tracing::warn!(
                reason = %running.client.close_reason(),
                "the tensorpool driver's aeron client closed; building a new one and the \
                 control plane again (leases are kept)"
            );
            return 1;
        }
        Err(error) => {
            // Only a client that was not pumped for the driver's whole liveness timeout
            // gets here; nothing can be sent any more, so say so loudly, once.
            if !running.client_failed {
                running.client_failed = true;
                tracing::error!(%error, "the tensorpool driver's Aeron client failed");
            }
            0
        }
    };
    let work = client_work + running.agent.do_work(now_ns);
    let Running {
        agent,
        leases,
        client,
        ..
    } = running;
    agent.drain_lease_events(|event, core| leases.apply(client, core, event, now_ns));
    leases.poll(client, agent.core(), now_ns);
    if now_ns >= running.next_counters_ns {
        running.next_counters_ns = now_ns + COUNTER_PERIOD_NS;
        running.counters.update(
            running.agent.core(),
            running.agent.counters(),
            host_figures(running),
        );
    }
    work
}

/// One step of replacing a closed client (see docs/DESIGN.md, "Driver process"): the
/// agent waits meanwhile, as it could neither hear keepalives nor send notices; the
/// core's lease table is kept, so leases whose keepalives arrive once the new control
/// subscription is up live on and the others expire by the usual rules. The host media
/// driver is alive (it calls this), so attempts go on at [`RETRY_PERIOD_NS`].
fn rebuild(running: &mut Running, now_ns: u64, config: &DriverConfig, aeron_dir: &Path) -> usize {
    let Some(mut pending) = running.rebuilding.take() else {
        if now_ns < running.next_rebuild_ns {
            return 0;
        }
        return match PendingAeron::connect(config, aeron_dir) {
            Ok(pending) => {
                running.rebuilding = Some(Box::new(pending));
                1
            }
            Err(error) => {
                tracing::warn!(%error, "connecting a new aeron client failed; retrying");
                running.next_rebuild_ns = now_ns + RETRY_PERIOD_NS;
                0
            }
        };
    };
    let work = match pending.step() {
        Ok(work) => work,
        Err(error) => {
            tracing::warn!(%error, "setting up the driver's streams again failed; retrying");
            running.next_rebuild_ns = now_ns + RETRY_PERIOD_NS;
            return 0;
        }
    };
    match pending.into_ready() {
        Ok((client, plane, counters)) => {
            *running.agent.transport_mut() = plane;
            running.counters = counters;
            running.client = client;
            running.leases.republish_all(running.agent.core(), now_ns);
            running.recoveries += 1;
            running.next_counters_ns = 0;
            running.client_failed = false;
            tracing::warn!(
                client_id = running.client.client_id(),
                "the tensorpool driver's aeron client rebuilt; serving again"
            );
        }
        Err(pending) => running.rebuilding = Some(pending),
    }
    work + 1
}

/// The figures the host adds to the counters.
fn host_figures(running: &Running) -> HostFigures {
    HostFigures {
        aeron_client_recoveries: running.recoveries,
        ..HostFigures::new(running.agent.provisioner(), 0, running.leases.unpublished())
    }
}

/// Last counter update and client cycles, so the final messages leave; the caller drops it.
fn finish(running: &mut Running) {
    running.counters.update(
        running.agent.core(),
        running.agent.counters(),
        host_figures(running),
    );
    for _ in 0..FINAL_CLIENT_CYCLES {
        if running.client.do_work().is_err() {
            break;
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Whether `a` and `b` name one directory (symlinks resolved where they exist).
fn same_dir(a: &Path, b: &Path) -> bool {
    let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| absolute(p));
    resolve(a) == resolve(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_text(dir: &Path, aeron_dir: &str) -> String {
        format!(
            "[driver]\naeron_dir = \"{aeron_dir}\"\n[shm]\nbase_dir = \"{}\"\n\
             [profiles.p]\nheader_nslots = 8\npayload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}]\n\
             [streams.s]\nstream_id = 10000\nprofile = \"p\"\n",
            dir.join("shm").display()
        )
    }

    fn contains_file(dir: &Path, name: &str) -> bool {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                let path = entry.path();
                path.file_name().is_some_and(|n| n == name)
                    || (path.is_dir() && contains_file(&path, name))
            })
    }

    fn env_with(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn without_the_config_variable_open_names_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = HostedDriver::open_from_env(dir.path(), &env_with(&[]))
            .err()
            .expect("refused");
        assert!(matches!(error, HostedError::NoConfig));
        assert!(error.to_string().contains(CONFIG_ENV), "{error}");
    }

    #[test]
    fn a_bad_key_is_refused_naming_the_file_and_key() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("driver.toml");
        let text = config_text(dir.path(), "").replace("[shm]\n", "[shm]\nbase_dri = \"x\"\n");
        std::fs::write(&path, text).expect("written");
        let env = env_with(&[(CONFIG_ENV, path.to_str().expect("UTF-8"))]);
        let error = HostedDriver::open_from_env(dir.path(), &env)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("shm.base_dri"), "{error}");
        assert!(error.contains(path.to_str().expect("UTF-8")), "{error}");
    }

    #[test]
    fn environment_overrides_apply_as_in_tp_driver() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("driver.toml");
        std::fs::write(&path, config_text(dir.path(), "")).expect("written");
        let env = env_with(&[
            (CONFIG_ENV, path.to_str().expect("UTF-8")),
            ("DRIVER_CONTROL_STREAM_ID", "2000"),
        ]);
        let driver = HostedDriver::open_from_env(dir.path(), &env).expect("opens");
        assert_eq!(driver.config().driver.control_stream_id, 2000);
    }

    #[test]
    fn another_aeron_dir_is_refused_and_an_empty_one_becomes_the_hosts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let host = dir.path().join("aeron");
        let other = config_text(dir.path(), "/dev/shm/not-the-host");
        let config = DriverConfig::from_toml_str(&other, &crate::config::NoEnv).expect("valid");
        let error = HostedDriver::open(config, &host).err().expect("refused");
        assert!(
            matches!(error, HostedError::AeronDirMismatch { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("driver.aeron_dir"), "{error}");

        let empty = config_text(dir.path(), "");
        let config = DriverConfig::from_toml_str(&empty, &crate::config::NoEnv).expect("valid");
        let driver = HostedDriver::open(config, &host).expect("opens");
        assert_eq!(
            driver.config().driver.aeron_dir.as_deref(),
            Some(host.as_path())
        );
        assert!(!driver.is_running(), "no Aeron before the first duty cycle");
        // The static stream is provisioned before the media driver runs the agent.
        assert!(
            contains_file(&dir.path().join("shm"), "epoch.hwm"),
            "no epoch.hwm under the base directory"
        );
    }

    #[test]
    fn a_duty_cycle_without_a_media_driver_returns_and_retries_later() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config =
            DriverConfig::from_toml_str(&config_text(dir.path(), ""), &crate::config::NoEnv)
                .expect("valid");
        let mut driver = HostedDriver::open(config, &dir.path().join("aeron")).expect("opens");
        let now = monotonic_now_ns();
        assert_eq!(driver.do_work(now), 0, "no media driver: no work");
        assert!(!driver.is_running());
        // The next attempt waits for the retry period rather than probing every cycle.
        assert_eq!(driver.do_work(now + 1), 0);
        assert_eq!(driver.next_attempt_ns, now + RETRY_PERIOD_NS);
        driver.close();
        assert_eq!(
            driver.do_work(now + RETRY_PERIOD_NS),
            0,
            "closed: nothing more"
        );
    }
}
