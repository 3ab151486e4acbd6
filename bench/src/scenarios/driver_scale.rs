//! `driver-scale`: what the driver costs at scale. The real `tp-driver` binary runs as a
//! child process with 100 static streams of a tiny profile (2 header slots, one 64-byte
//! pool, prefault off); a load client in this process attaches 10,000 consumer leases
//! (100 per stream) and keeps every one alive at 1 Hz, spread evenly over each second.
//!
//! Sampled from /proc/<pid>: CPU time (the scheduler's run time of every thread, from
//! `schedstat`; tick-sampled utime + stime is shown beside it) over a window with no
//! leases (the reference: the same driver announcing 100 streams) and over a window with
//! 10,000 leases; resident memory with 0, 1,000 and 10,000 leases. Memory per lease is the growth
//! from 1,000 to 10,000 leases over 9,000, taken from anonymous memory (RssAnon, where
//! lease state lives) and, for information, from VmRSS, which also counts Aeron log pages
//! the traffic happens to touch.

use std::collections::HashSet;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tensorpool::protocol::driver::{ResponseCode, Role};
use tensorpool::transport::BackoffIdle;

use crate::control_client::{ControlClient, Lease, Reply};
use crate::driver_host::{DriverSpec, CONTROL_CHANNEL, CONTROL_STREAM, FIRST_STREAM_ID};
use crate::error::{BenchError, Context as _};
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::sys::{check_interrupted, workspace_root, ChildProcess, ProcessSample, Scratch};

/// Static streams of the driver.
pub const STREAMS: u32 = 100;
/// Leases at full load.
pub const LEASES: u32 = 10_000;
/// Leases at the first memory sample.
const FIRST_STEP: u32 = 1_000;
/// Target: driver CPU at full load, % of one core.
pub const CPU_TARGET_PERCENT: f64 = 5.0;
/// Target: resident memory per lease, bytes.
pub const BYTES_PER_LEASE_TARGET: f64 = 1024.0;
/// Keepalive period of the load (the driver's default `lease_keepalive_interval_ms`).
const KEEPALIVE_PERIOD: Duration = Duration::from_secs(1);
/// Attach requests in flight at once while loading.
const ATTACH_WINDOW: usize = 64;
/// Time spent keeping leases alive before a memory sample, so the driver has settled.
const SETTLE: Duration = Duration::from_secs(2);
/// Longest time attaching may take.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the driver may take to provision its streams and come up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Environment variable prefixes that would override the driver's configuration.
const OVERRIDE_PREFIXES: [&str; 4] = ["DRIVER_", "SHM_", "POLICIES_", "AERON_"];

/// The `driver-scale` scenario.
pub struct DriverScale;

impl Scenario for DriverScale {
    fn name(&self) -> &'static str {
        "driver-scale"
    }

    fn summary(&self) -> &'static str {
        "tp-driver CPU and RSS with 10,000 leases on 100 streams keepaliving at 1 Hz"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let binary = locate_tp_driver(ctx)?;
        let scratch = Scratch::new("driver-scale")?;
        let spec = DriverSpec::in_scratch(&scratch, 2, &[(1, 64)], STREAMS)?;
        let config_path = scratch.join("driver.toml");
        std::fs::write(&config_path, spec.toml())
            .setup(format!("writing {}", config_path.display()))?;
        let stderr_path = scratch.join("tp-driver.stderr");
        let mut driver = spawn_driver(&binary, &config_path, &stderr_path, &scratch)?;
        let result = measure(ctx, &spec, &mut driver, &stderr_path);
        driver.terminate(Duration::from_secs(5));
        let measured = result.map_err(|e| match e {
            BenchError::Interrupted => e,
            BenchError::Setup(what) => {
                BenchError::Setup(format!("{what}{}", stderr_tail(&stderr_path)))
            }
            BenchError::Measure(what) => {
                BenchError::Measure(format!("{what}{}", stderr_tail(&stderr_path)))
            }
        })?;
        Ok(measured.figures(self.name()))
    }
}

/// The samples one run took.
struct Measured {
    idle_cpu: f64,
    idle_switches: f64,
    loaded_cpu: f64,
    loaded_tick_cpu: f64,
    loaded_switches: f64,
    loaded_window: Duration,
    zero: ProcessSample,
    first: ProcessSample,
    full: ProcessSample,
    attach_rate: f64,
}

impl Measured {
    fn figures(&self, scenario: &str) -> Vec<Figure> {
        let extra = f64::from(LEASES - FIRST_STEP);
        let per_lease = |a: u64, b: u64| (b as f64 - a as f64) * 1024.0 / extra;
        let idle = Figure::new(scenario, "driver CPU, 0 leases", self.idle_cpu, "% core")
            .marked_reference()
            .with_note(format!(
                "{STREAMS} static streams announced at 1 Hz, no leases; {:.0} context switches/s",
                self.idle_switches
            ));
        let rss_zero = Figure::new(
            scenario,
            "driver RSS, 0 leases",
            self.zero.rss_kib as f64,
            "KiB",
        )
        .marked_reference();
        vec![
            idle.clone(),
            Figure::new(
                scenario,
                format!("driver CPU, {LEASES} leases @ 1 Hz"),
                self.loaded_cpu,
                "% core",
            )
            .against(Some(&idle))
            .with_target(Target::AtMost(CPU_TARGET_PERCENT))
            .with_note(format!(
                "scheduler CPU time over {:.0} s with {LEASES} keepalives/s (utime+stime: {:.1} %); \
                 {:.0} context switches/s",
                self.loaded_window.as_secs_f64(),
                self.loaded_tick_cpu,
                self.loaded_switches
            )),
            rss_zero.clone(),
            Figure::new(
                scenario,
                format!("driver RSS, {LEASES} leases"),
                self.full.rss_kib as f64,
                "KiB",
            )
            .against(Some(&rss_zero)),
            Figure::new(
                scenario,
                "RSS per lease (anon)",
                per_lease(self.first.rss_anon_kib, self.full.rss_anon_kib),
                "B",
            )
            .with_target(Target::AtMost(BYTES_PER_LEASE_TARGET))
            .with_note(format!(
                "RssAnon {} KiB at {FIRST_STEP} leases → {} KiB at {LEASES}",
                self.first.rss_anon_kib, self.full.rss_anon_kib
            )),
            Figure::new(
                scenario,
                "VmRSS per lease",
                per_lease(self.first.rss_kib, self.full.rss_kib),
                "B",
            )
            .with_note(format!(
                "includes pages of Aeron logs the extra traffic touched: RssShmem {} → {} KiB",
                self.first.rss_shmem_kib, self.full.rss_shmem_kib
            )),
            Figure::new(
                scenario,
                "attach rate (64 in flight)",
                self.attach_rate,
                "attaches/s",
            ),
        ]
    }
}

fn measure(
    ctx: &RunContext,
    spec: &DriverSpec,
    driver: &mut ChildProcess,
    stderr_path: &std::path::Path,
) -> Result<Measured, BenchError> {
    wait_running(driver, stderr_path)?;
    let pid = driver.pid();
    let mut load = Load::connect(spec)?;
    let idle_window = ctx.scaled(2.0).max(Duration::from_secs(5));
    let loaded_window = ctx.scaled(5.0).max(Duration::from_secs(10));

    // Idle: the driver with its streams, the load client connected, no leases.
    load.serve_for(Duration::from_secs(1))?;
    let idle_start = ProcessSample::read(pid)?;
    load.serve_for(idle_window)?;
    let zero = ProcessSample::read(pid)?;
    let idle_cpu = zero.cpu_percent_since(&idle_start);
    let idle_switches = zero.switches_per_s_since(&idle_start);

    load.attach_up_to(spec, FIRST_STEP)?;
    load.serve_for(SETTLE)?;
    let first = ProcessSample::read(pid)?;

    let attach_start = Instant::now();
    load.attach_up_to(spec, LEASES)?;
    let attach_rate = f64::from(LEASES - FIRST_STEP) / attach_start.elapsed().as_secs_f64();
    load.serve_for(SETTLE)?;
    let full = ProcessSample::read(pid)?;
    load.serve_for(loaded_window)?;
    let loaded_end = ProcessSample::read(pid)?;
    driver.check_running()?;
    if load.revoked > 0 {
        return Err(BenchError::Measure(format!(
            "{} leases were revoked during the run (keepalives too late?)",
            load.revoked
        )));
    }
    Ok(Measured {
        idle_cpu,
        idle_switches,
        loaded_cpu: loaded_end.cpu_percent_since(&full),
        loaded_tick_cpu: loaded_end.tick_cpu_percent_since(&full),
        loaded_switches: loaded_end.switches_per_s_since(&full),
        loaded_window: loaded_end.at.duration_since(full.at),
        zero,
        first,
        full,
        attach_rate,
    })
}

/// The load client: attaches leases and keeps them alive at 1 Hz, spread over the second.
struct Load {
    client: ControlClient,
    leases: Vec<Lease>,
    ours: HashSet<u64>,
    /// Attach requests awaiting an answer: (correlation id, stream id, client id).
    in_flight: Vec<(i64, u32, u32)>,
    /// An attach the driver refused, reported by the next `attach_up_to` check.
    refused: Option<String>,
    revoked: u64,
    replies: Vec<Reply>,
    round_start: Instant,
    sent_this_round: usize,
}

impl Load {
    fn connect(spec: &DriverSpec) -> Result<Self, BenchError> {
        Ok(Self {
            client: ControlClient::connect(&spec.aeron_dir, CONTROL_CHANNEL, CONTROL_STREAM)?,
            leases: Vec::with_capacity(LEASES as usize),
            ours: HashSet::with_capacity(LEASES as usize),
            in_flight: Vec::with_capacity(ATTACH_WINDOW),
            refused: None,
            revoked: 0,
            replies: Vec::with_capacity(64),
            round_start: Instant::now(),
            sent_this_round: 0,
        })
    }

    /// One duty cycle: polls the control stream (so the driver is never back-pressured by
    /// us), takes attach answers and revokes, sends the keepalives that are due, pumps
    /// the client.
    fn service(&mut self, now: Instant) -> Result<usize, BenchError> {
        let mut work = self.client.poll(&mut self.replies)?;
        for reply in std::mem::take(&mut self.replies) {
            match reply {
                Reply::Attach {
                    correlation_id,
                    code,
                    lease_id,
                    error,
                } => {
                    let Some(i) = self
                        .in_flight
                        .iter()
                        .position(|(c, ..)| *c == correlation_id)
                    else {
                        continue;
                    };
                    let (_, stream_id, client_id) = self.in_flight.swap_remove(i);
                    match (code, lease_id) {
                        (ResponseCode::Ok, Some(lease_id)) => {
                            self.ours.insert(lease_id);
                            self.leases.push(Lease {
                                lease_id,
                                stream_id,
                                client_id,
                                role: Role::Consumer,
                            });
                        }
                        _ => {
                            self.refused = Some(format!(
                                "attach of client {client_id} on stream {stream_id} refused: \
                                 {code} {}",
                                error.unwrap_or_default()
                            ))
                        }
                    }
                }
                Reply::Revoked { lease_id } if self.ours.contains(&lease_id) => {
                    self.revoked += 1;
                }
                _ => {}
            }
        }
        if now >= self.round_start + KEEPALIVE_PERIOD {
            // Finish the round that ended, then start the next one.
            while self.sent_this_round < self.leases.len() {
                let lease = self.leases[self.sent_this_round];
                self.client.send_keepalive(&lease)?;
                self.sent_this_round += 1;
            }
            self.round_start = now;
            self.sent_this_round = 0;
        }
        let elapsed = now.duration_since(self.round_start).as_secs_f64();
        let due = (elapsed / KEEPALIVE_PERIOD.as_secs_f64() * self.leases.len() as f64) as usize;
        while self.sent_this_round < due.min(self.leases.len()) {
            let lease = self.leases[self.sent_this_round];
            self.client.send_keepalive(&lease)?;
            self.sent_this_round += 1;
            work += 1;
        }
        self.client.housekeeping(now)?;
        Ok(work)
    }

    fn serve_for(&mut self, duration: Duration) -> Result<(), BenchError> {
        let end = Instant::now() + duration;
        let mut idle = BackoffIdle::with_max_park(Duration::from_micros(200));
        loop {
            let now = Instant::now();
            if now >= end {
                return Ok(());
            }
            check_interrupted()?;
            let work = self.service(now)?;
            idle.idle(work);
        }
    }

    /// Attaches consumer leases until `target` are held, at most `ATTACH_WINDOW` in
    /// flight: lease k goes to stream `FIRST_STREAM_ID + k % STREAMS` with client id
    /// `k / STREAMS + 1`. Keeps the leases already held alive meanwhile.
    fn attach_up_to(&mut self, spec: &DriverSpec, target: u32) -> Result<(), BenchError> {
        let first_stream = spec.stream_ids().next().unwrap_or(FIRST_STREAM_ID);
        let mut next = (self.leases.len() + self.in_flight.len()) as u32;
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        while self.leases.len() < target as usize {
            check_interrupted()?;
            if let Some(refusal) = self.refused.take() {
                return Err(BenchError::Measure(refusal));
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Measure(format!(
                    "only {} of {target} leases attached after {ATTACH_TIMEOUT:?}",
                    self.leases.len()
                )));
            }
            while self.in_flight.len() < ATTACH_WINDOW && next < target {
                let stream_id = first_stream + next % STREAMS;
                let client_id = next / STREAMS + 1;
                let correlation_id =
                    self.client
                        .send_attach(stream_id, client_id, Role::Consumer)?;
                self.in_flight.push((correlation_id, stream_id, client_id));
                next += 1;
            }
            self.service(Instant::now())?;
        }
        Ok(())
    }
}

/// The `tp-driver` binary: `--tp-driver`, else built (unless `--no-build`) and taken from
/// next to this executable.
pub(crate) fn locate_tp_driver(ctx: &RunContext) -> Result<PathBuf, BenchError> {
    if let Some(path) = &ctx.tp_driver {
        return match path.is_file() {
            true => Ok(path.clone()),
            false => Err(BenchError::Setup(format!(
                "--tp-driver {}: no such file",
                path.display()
            ))),
        };
    }
    locate_built_program(
        ctx,
        "tp-driver",
        &["-p", "tensorpool", "--bin", "tp-driver"],
    )
}

/// A build artifact of the workspace at `relative` (to this executable's directory), built
/// first with `cargo build <cargo_args>` (which name the package) in this executable's
/// profile unless `--no-build` was given.
pub(crate) fn locate_built_program(
    ctx: &RunContext,
    relative: &str,
    cargo_args: &[&str],
) -> Result<PathBuf, BenchError> {
    let exe = std::env::current_exe().setup("locating the tp-bench executable")?;
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let candidate = dir.join(relative);
    let hint = format!(
        "build it with `cargo build --release {}`",
        cargo_args.join(" ")
    );
    if ctx.build_tp_driver {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .arg("build")
            .arg("--quiet")
            .arg("--manifest-path")
            .arg(workspace_root().join("Cargo.toml"))
            .args(cargo_args)
            .stdin(Stdio::null());
        if dir.file_name().is_some_and(|n| n == "release") {
            command.arg("--release");
        }
        eprintln!("tp-bench: building {relative} ({command:?})");
        match command.output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let tail: Vec<&str> = stderr.lines().rev().take(10).collect();
                eprintln!(
                    "tp-bench: building {relative} failed:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
                if candidate.is_file() {
                    eprintln!(
                        "tp-bench: using the existing {} (may be stale)",
                        candidate.display()
                    );
                }
            }
            Err(e) => eprintln!("tp-bench: cannot run cargo ({e}); {hint}"),
        }
    }
    match candidate.is_file() {
        true => Ok(candidate),
        false => Err(BenchError::Setup(format!(
            "{relative} not found at {}; {hint}",
            candidate.display()
        ))),
    }
}

pub(crate) fn spawn_driver(
    binary: &std::path::Path,
    config: &std::path::Path,
    stderr_path: &std::path::Path,
    scratch: &Scratch,
) -> Result<ChildProcess, BenchError> {
    let stderr =
        std::fs::File::create(stderr_path).setup(format!("creating {}", stderr_path.display()))?;
    let stdout_path = scratch.join("tp-driver.stdout");
    let stdout =
        std::fs::File::create(&stdout_path).setup(format!("creating {}", stdout_path.display()))?;
    let mut command = host_command(binary);
    command
        .arg("--config")
        .arg(config)
        .stdout(stdout)
        .stderr(stderr);
    ChildProcess::spawn(command, "tp-driver")
}

/// A command for a driver process (`tp-driver`, aeronmd with the plugin): stdin closed,
/// info logging without colours, none of the caller's configuration overrides, and
/// SIGKILL when the thread that started it dies.
pub(crate) fn host_command(program: &std::path::Path) -> Command {
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if OVERRIDE_PREFIXES.iter().any(|p| text.starts_with(p)) {
            command.env_remove(&name);
        }
    }
    // SAFETY: prctl is async-signal-safe; the closure touches no Rust state. The driver
    // then gets SIGKILL if this thread dies without stopping it.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    command
}

/// Waits until the driver logs that it serves.
pub(crate) fn wait_running(
    driver: &mut ChildProcess,
    stderr_path: &std::path::Path,
) -> Result<(), BenchError> {
    wait_for_log_line(driver, stderr_path, "tp-driver running", "tp-driver")
}

/// Waits until `process` writes `line` to its log at `log_path`.
pub(crate) fn wait_for_log_line(
    process: &mut ChildProcess,
    log_path: &std::path::Path,
    line: &str,
    name: &str,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        check_interrupted()?;
        process.check_running()?;
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if log.contains(line) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Setup(format!(
                "{name} did not start within {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The last lines of the driver's log, to append to an error.
fn stderr_tail(path: &std::path::Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().rev().take(8).collect();
    if lines.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = lines.into_iter().rev().collect();
    format!("\n  tp-driver log tail:\n    {}", lines.join("\n    "))
}
