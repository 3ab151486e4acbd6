//! The SHM driver as benchmarks run it: a configuration written for a scratch directory,
//! and the driver (`tensorpool::driver::runner::run_until`, with its embedded media
//! driver) on a thread of the benchmark process.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tensorpool::config::{DriverConfig, NoEnv};
use tensorpool::driver::runner::run_until;

use crate::error::{BenchError, Context as _};
use crate::sys::{check_interrupted, pin_current_thread, set_thread_affinity, Scratch};

/// Control channel of benchmark drivers (the configuration default).
pub const CONTROL_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// Control stream id (the configuration default).
pub const CONTROL_STREAM: i32 = 1000;
/// First static stream id.
pub const FIRST_STREAM_ID: u32 = 10_000;
/// How long a driver may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What a benchmark driver serves.
#[derive(Debug, Clone)]
pub struct DriverSpec {
    /// Aeron directory of its embedded media driver.
    pub aeron_dir: PathBuf,
    /// SHM base directory.
    pub shm_dir: PathBuf,
    /// Header ring slots of the one profile.
    pub header_nslots: u32,
    /// `(pool_id, stride_bytes)` of the profile's pools.
    pub pools: Vec<(u16, u32)>,
    /// Static streams (`FIRST_STREAM_ID`, `FIRST_STREAM_ID + 1`, …).
    pub streams: u32,
    /// `policies.provision_ahead`.
    pub provision_ahead: bool,
    /// `policies.prefault_shm` (off unless a scenario measures it).
    pub prefault: bool,
}

impl DriverSpec {
    /// A spec whose directories are `aeron/` and `shm/` in `scratch` (`shm/` is created).
    pub fn in_scratch(
        scratch: &Scratch,
        header_nslots: u32,
        pools: &[(u16, u32)],
        streams: u32,
    ) -> Result<Self, BenchError> {
        let shm_dir = scratch.join("shm");
        std::fs::create_dir_all(&shm_dir).setup(format!("creating {}", shm_dir.display()))?;
        Ok(Self {
            aeron_dir: scratch.join("aeron"),
            shm_dir,
            header_nslots,
            pools: pools.to_vec(),
            streams,
            provision_ahead: false,
            prefault: false,
        })
    }

    /// The static stream ids.
    pub fn stream_ids(&self) -> impl Iterator<Item = u32> {
        FIRST_STREAM_ID..FIRST_STREAM_ID + self.streams
    }

    /// The configuration file: embedded media driver, prefault off unless asked, default
    /// timings.
    pub fn toml(&self) -> String {
        let pools: Vec<String> = self
            .pools
            .iter()
            .map(|(id, stride)| format!("{{ pool_id = {id}, stride_bytes = {stride} }}"))
            .collect();
        let mut text = format!(
            r#"[driver]
instance_id = "tp-bench"
media_driver = "embedded"
aeron_dir = "{aeron}"
control_channel = "{CONTROL_CHANNEL}"
control_stream_id = {CONTROL_STREAM}

[shm]
base_dir = "{shm}"
namespace = "bench"

[policies]
prefault_shm = {prefault}
provision_ahead = {ahead}

[profiles.bench]
header_nslots = {nslots}
payload_pools = [{pools}]
"#,
            aeron = self.aeron_dir.display(),
            shm = self.shm_dir.display(),
            nslots = self.header_nslots,
            pools = pools.join(", "),
            ahead = self.provision_ahead,
            prefault = self.prefault,
        );
        for stream_id in self.stream_ids() {
            let _ = write!(
                text,
                "\n[streams.s{stream_id}]\nstream_id = {stream_id}\nprofile = \"bench\"\n"
            );
        }
        text
    }

    /// The parsed configuration (no environment overrides).
    pub fn config(&self) -> Result<DriverConfig, BenchError> {
        DriverConfig::from_toml_str(&self.toml(), &NoEnv)
            .setup("the benchmark driver configuration")
    }
}

/// The SHM driver running `run_until` on a thread of this process; stopped on drop.
pub struct InProcessDriver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
    /// Kernel thread id of the driver thread (0 until it has started).
    tid: Arc<AtomicI32>,
    aeron_dir: PathBuf,
}

impl InProcessDriver {
    /// Starts a driver for `spec` (its thread pinned to `core`, if given) and waits until
    /// its media driver accepts clients.
    pub fn start(spec: &DriverSpec, core: Option<usize>) -> Result<Self, BenchError> {
        let config = spec.config()?;
        let stop = Arc::new(AtomicBool::new(false));
        let tid = Arc::new(AtomicI32::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let tid = Arc::clone(&tid);
            std::thread::Builder::new()
                .name("tp-driver".into())
                .spawn(move || {
                    tid.store(nix::unistd::gettid().as_raw(), Ordering::Release);
                    if let Some(core) = core {
                        pin_current_thread(core);
                    }
                    run_until(&config, &stop).map_err(|e| e.to_string())
                })
                .setup("spawning the driver thread")?
        };
        let mut driver = Self {
            stop,
            thread: Some(thread),
            tid,
            aeron_dir: spec.aeron_dir.clone(),
        };
        driver.wait_ready()?;
        Ok(driver)
    }

    fn wait_ready(&mut self) -> Result<(), BenchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            check_interrupted()?;
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let outcome = self.join();
                return Err(BenchError::Setup(format!(
                    "the driver thread ended during start-up: {outcome:?}"
                )));
            }
            if self.aeron_dir.join("cnc.dat").exists() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Setup(format!(
                    "the driver did not start within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Moves the driver thread (its embedded media driver runs on it too): `Some(core)`
    /// pins it there, `None` lets it run anywhere.
    pub fn place(&self, core: Option<usize>) {
        let tid = self.tid.load(Ordering::Acquire);
        if tid != 0 {
            set_thread_affinity(tid, core);
        }
    }

    /// The Aeron directory of its embedded media driver.
    pub fn aeron_dir(&self) -> &Path {
        &self.aeron_dir
    }

    fn join(&mut self) -> Result<(), String> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err("the driver thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for InProcessDriver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Err(e) = self.join() {
            eprintln!("tp-bench: the in-process driver failed: {e}");
        }
    }
}
