//! `driver-scale`: what the driver costs as its lease table grows. The real `tp-driver`
//! binary runs as a child process with 100 static streams of a tiny profile (2 header
//! slots, one 64-byte pool, prefault off); a load client in this process attaches consumer
//! leases in steps of 10, 1,000, 10,000 and 50,000 (spread over the streams, up to 500 per
//! stream) and keeps every one alive at 1 Hz, spread evenly over each second, as that many
//! independent clients would.
//!
//! Sampled from /proc/<pid> at every step: CPU time (the scheduler's run time of every
//! thread, from `schedstat`; tick-sampled utime + stime is shown beside it) over a window,
//! and resident memory at its start. The reference is the same window with no leases (the
//! same driver announcing 100 streams). Per step: CPU, keepalive handling time (the CPU
//! above the no-lease window divided by the keepalives per second), and anonymous memory
//! (RssAnon, where lease state lives). Memory per lease is the growth between two steps
//! divided by the leases added; VmRSS, which also counts Aeron log pages the traffic
//! happens to touch and the lease counters in the media driver's counters file (one per
//! lease up to 4,096), is shown for information.

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
/// The lease counts measured, in order (the curve's points).
pub const STEPS: [u32; 4] = [10, 1_000, 10_000, 50_000];
/// The step the CPU target is set for.
pub const TARGET_LEASES: u32 = 10_000;
/// Memory per lease is held to its target between these steps (and shown between the last
/// two).
const MEMORY_STEPS: (u32, u32) = (1_000, 10_000);
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
        "tp-driver CPU, keepalive cost and memory with 10 / 1,000 / 10,000 / 50,000 leases keepaliving at 1 Hz"
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

/// What one step of the curve measured.
struct Step {
    leases: u32,
    /// Memory when the window started.
    start: ProcessSample,
    cpu: f64,
    tick_cpu: f64,
    switches: f64,
    window: Duration,
    /// Attaches per second while growing to this step (from the step before).
    attach_rate: f64,
}

/// The samples one run took.
struct Measured {
    idle_cpu: f64,
    idle_switches: f64,
    zero: ProcessSample,
    steps: Vec<Step>,
}

impl Measured {
    fn step(&self, leases: u32) -> Option<&Step> {
        self.steps.iter().find(|s| s.leases == leases)
    }

    fn figures(&self, scenario: &str) -> Vec<Figure> {
        let idle = Figure::new(scenario, "driver CPU, 0 leases", self.idle_cpu, "% core")
            .marked_reference()
            .with_note(format!(
                "{STREAMS} static streams announced at 1 Hz, no leases; {:.0} context switches/s",
                self.idle_switches
            ));
        let anon_zero = Figure::new(
            scenario,
            "driver RssAnon, 0 leases",
            self.zero.rss_anon_kib as f64,
            "KiB",
        )
        .marked_reference()
        .with_note(format!(
            "VmRSS {} KiB, RssShmem {} KiB",
            self.zero.rss_kib, self.zero.rss_shmem_kib
        ));
        let mut figures = vec![idle.clone(), anon_zero.clone()];
        for step in &self.steps {
            let n = step.leases;
            let cpu = Figure::new(
                scenario,
                format!("driver CPU, {n} leases @ 1 Hz"),
                step.cpu,
                "% core",
            )
            .against(Some(&idle))
            .with_note(format!(
                "scheduler CPU time over {:.0} s with {n} keepalives/s (utime+stime: {:.1} %); \
                 {:.0} context switches/s",
                step.window.as_secs_f64(),
                step.tick_cpu,
                step.switches,
            ));
            figures.push(match n {
                TARGET_LEASES => cpu.with_target(Target::AtMost(CPU_TARGET_PERCENT)),
                _ => cpu,
            });
            // CPU above the no-lease window, per keepalive handled.
            let per_keepalive_us = (step.cpu - self.idle_cpu) / 100.0 / f64::from(n) * 1e6;
            figures.push(
                Figure::new(
                    scenario,
                    format!("keepalive cost, {n} leases"),
                    per_keepalive_us,
                    "µs",
                )
                .with_note(format!(
                    "driver CPU above the 0-lease window per keepalive handled (1 per lease \
                     per second){}",
                    match n {
                        n if n < 1_000 => "; with so few keepalives, mostly the idle CPU's noise",
                        _ => "",
                    }
                )),
            );
            figures.push(
                Figure::new(
                    scenario,
                    format!("attach rate up to {n} leases"),
                    step.attach_rate,
                    "attaches/s",
                )
                .with_note(
                    "consumer attaches answered per second while growing to this step from \
                     the one before, 64 in flight, the leases already held keepaliving",
                ),
            );
            figures.push(
                Figure::new(
                    scenario,
                    format!("driver RssAnon, {n} leases"),
                    step.start.rss_anon_kib as f64,
                    "KiB",
                )
                .against(Some(&anon_zero))
                .with_note(format!(
                    "VmRSS {} KiB, RssShmem {} KiB",
                    step.start.rss_kib, step.start.rss_shmem_kib
                )),
            );
        }
        let growth = |from: &Step, to: &Step, kib: fn(&ProcessSample) -> u64| {
            (kib(&to.start) as f64 - kib(&from.start) as f64) * 1024.0
                / f64::from(to.leases - from.leases)
        };
        let pairs = [
            MEMORY_STEPS,
            (STEPS[STEPS.len() - 2], STEPS[STEPS.len() - 1]),
        ];
        for (i, (a, b)) in pairs.into_iter().enumerate() {
            let (Some(from), Some(to)) = (self.step(a), self.step(b)) else {
                continue;
            };
            let anon = Figure::new(
                scenario,
                format!("RSS per lease (anon), {a} → {b}"),
                growth(from, to, |s| s.rss_anon_kib),
                "B",
            )
            .with_note(format!(
                "RssAnon {} KiB at {a} leases → {} KiB at {b}",
                from.start.rss_anon_kib, to.start.rss_anon_kib
            ));
            figures.push(match i {
                0 => anon.with_target(Target::AtMost(BYTES_PER_LEASE_TARGET)),
                _ => anon,
            });
            figures.push(
                Figure::new(
                    scenario,
                    format!("VmRSS per lease, {a} → {b}"),
                    growth(from, to, |s| s.rss_kib),
                    "B",
                )
                .with_note(format!(
                    "includes pages of Aeron logs the extra traffic touched and the lease \
                     counters (one per lease up to 4,096): RssShmem {} → {} KiB",
                    from.start.rss_shmem_kib, to.start.rss_shmem_kib
                )),
            );
        }
        figures
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
    let window = ctx.scaled(1.5).max(Duration::from_secs(4));

    // Idle: the driver with its streams, the load client connected, no leases.
    load.serve_for(Duration::from_secs(1))?;
    let idle_start = ProcessSample::read(pid)?;
    load.serve_for(window)?;
    let zero = ProcessSample::read(pid)?;
    let idle_cpu = zero.cpu_percent_since(&idle_start);
    let idle_switches = zero.switches_per_s_since(&idle_start);

    let mut steps = Vec::with_capacity(STEPS.len());
    let mut held = 0u32;
    for leases in STEPS {
        let attach_start = Instant::now();
        load.attach_up_to(spec, leases)?;
        let attach_rate = f64::from(leases - held) / attach_start.elapsed().as_secs_f64();
        held = leases;
        // Settle: a full keepalive round at this size before sampling.
        load.serve_for(SETTLE)?;
        let start = ProcessSample::read(pid)?;
        load.serve_for(window)?;
        let end = ProcessSample::read(pid)?;
        driver.check_running()?;
        steps.push(Step {
            leases,
            cpu: end.cpu_percent_since(&start),
            tick_cpu: end.tick_cpu_percent_since(&start),
            switches: end.switches_per_s_since(&start),
            window: end.at.duration_since(start.at),
            start,
            attach_rate,
        });
    }
    if load.revoked > 0 {
        return Err(BenchError::Measure(format!(
            "{} leases were revoked during the run (keepalives too late?)",
            load.revoked
        )));
    }
    Ok(Measured {
        idle_cpu,
        idle_switches,
        zero,
        steps,
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
            leases: Vec::with_capacity(STEPS[STEPS.len() - 1] as usize),
            ours: HashSet::with_capacity(STEPS[STEPS.len() - 1] as usize),
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
pub(crate) fn stderr_tail(path: &std::path::Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().rev().take(8).collect();
    if lines.is_empty() {
        return String::new();
    }
    let lines: Vec<&str> = lines.into_iter().rev().collect();
    format!("\n  tp-driver log tail:\n    {}", lines.join("\n    "))
}
