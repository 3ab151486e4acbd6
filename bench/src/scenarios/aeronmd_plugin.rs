//! `aeronmd-plugin`: the SHM driver loaded into a stock `aeronmd` (scripts/build-aeronmd.sh,
//! the plugin `libtensorpool_aeronmd.so`, `AERON_THREADING_MODE=SHARED`: one thread for the
//! media driver's agents and the SHM driver, as tp-driver runs both on one thread) beside
//! `tp-driver` with its embedded media driver, the same configuration, in the same run.
//!
//! Measured against each host, one after the other: the consumer attach round trip
//! back-to-back and with the host idle between attaches (the `attach` scenario's client and
//! plans), and the example binaries' delivered+verified rates at 640 KiB and 64 B (the
//! `examples` scenario's pair). The plugin's figures are compared with tp-driver's; the
//! attach p99 carries the `attach` scenario's target.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tensorpool::protocol::driver::Role;

use crate::driver_host::{DriverSpec, FIRST_STREAM_ID};
use crate::error::{BenchError, Context};
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::attach::load::{LoopResult, Plan};
use crate::scenarios::attach::{idle_gap, run_plans, ATTACH_P99_TARGET_US, BUSY_WARMUP_PAIRS};
use crate::scenarios::driver_scale::{
    host_command, locate_built_program, locate_tp_driver, spawn_driver, wait_for_log_line,
    wait_running,
};
use crate::scenarios::examples::{ExamplePair, PairRun, SMALL_PAYLOAD};
use crate::scenarios::large_frames::TARGET_PAYLOAD;
use crate::scenarios::memcpy;
use crate::stats::size_label;
use crate::sys::{core_pair, workspace_root, ChildProcess, Scratch};

/// What the plugin logs once it serves.
const PLUGIN_READY: &str = "tensorpool SHM driver running inside the media driver";
/// The entry point the plugin exports, named in `AERON_NAME_RESOLVER_SUPPLIER`.
const SUPPLIER: &str = "tensorpool_aeronmd_name_resolver_supplier";
/// Attaches of the idle-host run.
const IDLE_ATTACHES: u64 = 200;

/// The `aeronmd-plugin` scenario.
pub struct AeronmdPlugin;

/// What one host measured.
struct HostRun {
    busy: LoopResult,
    idle: LoopResult,
    large: PairRun,
    small: PairRun,
}

impl Scenario for AeronmdPlugin {
    fn name(&self) -> &'static str {
        "aeronmd-plugin"
    }

    fn summary(&self) -> &'static str {
        "the SHM driver inside a stock aeronmd (plugin) beside tp-driver: attach p50/p99, examples at 640 KiB and 64 B"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let tp_driver = locate_tp_driver(ctx)?;
        let plugin = locate_built_program(
            ctx,
            "libtensorpool_aeronmd.so",
            &["-p", "tensorpool-aeronmd", "--lib"],
        )?;
        let aeronmd = locate_aeronmd(ctx)?;
        let programs = Programs {
            producer: locate_built_program(
                ctx,
                "examples/producer",
                &["-p", "tensorpool", "--examples"],
            )?,
            consumer: locate_built_program(
                ctx,
                "examples/consumer",
                &["-p", "tensorpool", "--examples"],
            )?,
        };

        let embedded = {
            let scratch = Scratch::new("plugin-tp-driver")?;
            let spec = spec_in(&scratch)?;
            let config = write_config(&spec, &scratch)?;
            let stderr = scratch.join("tp-driver.stderr");
            let mut host = spawn_driver(&tp_driver, &config, &stderr, &scratch)?;
            wait_running(&mut host, &stderr)?;
            let run = measure(ctx, &spec, &scratch, &programs, "tp-driver");
            host.terminate(Duration::from_secs(5));
            run?
        };
        let hosted = {
            let scratch = Scratch::new("plugin-aeronmd")?;
            let spec = spec_in(&scratch)?;
            let config = write_config(&spec, &scratch)?;
            let stderr = scratch.join("aeronmd.stderr");
            let mut host = spawn_aeronmd(&aeronmd, &plugin, &spec, &config, &stderr, &scratch)?;
            wait_for_log_line(&mut host, &stderr, PLUGIN_READY, "aeronmd with the plugin")?;
            let run = measure(ctx, &spec, &scratch, &programs, "aeronmd");
            host.terminate(Duration::from_secs(5));
            run?
        };
        Ok(figures(self.name(), &embedded, &hosted))
    }
}

/// The example binaries.
struct Programs {
    producer: PathBuf,
    consumer: PathBuf,
}

/// One static stream with the `examples` scenario's ring and pools.
fn spec_in(scratch: &Scratch) -> Result<DriverSpec, BenchError> {
    let pools = [
        (1u16, 4096u32),
        (2, memcpy::stride_for(TARGET_PAYLOAD) as u32),
    ];
    DriverSpec::in_scratch(scratch, memcpy::RING_SLOTS as u32, &pools, 1)
}

fn write_config(spec: &DriverSpec, scratch: &Scratch) -> Result<PathBuf, BenchError> {
    let path = scratch.join("driver.toml");
    std::fs::write(&path, spec.toml()).setup(format!("writing {}", path.display()))?;
    Ok(path)
}

/// aeronmd built by scripts/build-aeronmd.sh (run unless `--no-build`).
fn locate_aeronmd(ctx: &RunContext) -> Result<PathBuf, BenchError> {
    let root = workspace_root();
    if ctx.build_tp_driver {
        eprintln!("tp-bench: building aeronmd (scripts/build-aeronmd.sh)");
        let output = Command::new(root.join("scripts/build-aeronmd.sh"))
            .current_dir(&root)
            .output()
            .setup("running scripts/build-aeronmd.sh")?;
        if !output.status.success() {
            return Err(BenchError::Setup(format!(
                "scripts/build-aeronmd.sh failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        if let Some(path) = String::from_utf8_lossy(&output.stdout).lines().last() {
            return Ok(PathBuf::from(path));
        }
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let path = target.join("aeronmd/build/binaries/aeronmd");
    match path.is_file() {
        true => Ok(path),
        false => Err(BenchError::Setup(format!(
            "no aeronmd at {}; build it with scripts/build-aeronmd.sh",
            path.display()
        ))),
    }
}

/// Starts aeronmd with the plugin serving `config`, as scripts/run-aeronmd.sh does.
fn spawn_aeronmd(
    aeronmd: &Path,
    plugin: &Path,
    spec: &DriverSpec,
    config: &Path,
    stderr_path: &Path,
    scratch: &Scratch,
) -> Result<ChildProcess, BenchError> {
    let stderr =
        std::fs::File::create(stderr_path).setup(format!("creating {}", stderr_path.display()))?;
    let stdout_path = scratch.join("aeronmd.stdout");
    let stdout =
        std::fs::File::create(&stdout_path).setup(format!("creating {}", stdout_path.display()))?;
    let mut command = host_command(aeronmd);
    command
        .env("AERON_DIR", &spec.aeron_dir)
        .env("AERON_DRIVER_DYNAMIC_LIBRARIES", plugin)
        .env("AERON_NAME_RESOLVER_SUPPLIER", SUPPLIER)
        .env("AERON_THREADING_MODE", "SHARED")
        .env("TENSORPOOL_DRIVER_CONFIG", config)
        .stdout(stdout)
        .stderr(stderr);
    ChildProcess::spawn(command, "aeronmd")
}

/// The attach plans, then the example pair at both sizes, against the host serving `spec`.
fn measure(
    ctx: &RunContext,
    spec: &DriverSpec,
    scratch: &Scratch,
    programs: &Programs,
    tag: &'static str,
) -> Result<HostRun, BenchError> {
    let client_core = core_pair().map(|(_, client)| client);
    let busy = Plan {
        role: Role::Consumer,
        sessions: 1,
        stream_id: FIRST_STREAM_ID,
        warmup_pairs: BUSY_WARMUP_PAIRS,
        window: ctx.duration,
        max_pairs: None,
        gap: None,
    };
    let idle = Plan {
        warmup_pairs: 3,
        max_pairs: Some(IDLE_ATTACHES),
        gap: Some(idle_gap()),
        ..busy
    };
    let mut loops = run_plans(&spec.aeron_dir, client_core, &[busy, idle])?.into_iter();
    let (Some(busy), Some(idle)) = (loops.next(), loops.next()) else {
        return Err(BenchError::Measure(
            "the attach plans returned no result".into(),
        ));
    };
    let pair = ExamplePair {
        tag,
        producer: programs.producer.clone(),
        consumer: programs.consumer.clone(),
        spec,
        scratch,
    };
    let large = pair.run(TARGET_PAYLOAD, ctx.duration)?;
    let small = pair.run(SMALL_PAYLOAD, ctx.duration)?;
    Ok(HostRun {
        busy,
        idle,
        large,
        small,
    })
}

/// A figure measured on both hosts: name, unit, value, target of the plugin's figure.
type Row = (String, &'static str, fn(&HostRun) -> f64, Option<Target>);

fn figures(scenario: &str, embedded: &HostRun, hosted: &HostRun) -> Vec<Figure> {
    let large = size_label(TARGET_PAYLOAD);
    let small = size_label(SMALL_PAYLOAD);
    let rows: [Row; 6] = [
        (
            "attach p50".into(),
            "µs",
            |r| r.busy.attach.quantile_us(0.5),
            None,
        ),
        (
            "attach p99".into(),
            "µs",
            |r| r.busy.attach.quantile_us(0.99),
            Some(Target::AtMost(ATTACH_P99_TARGET_US)),
        ),
        (
            "attach p50, idle host".into(),
            "µs",
            |r| r.idle.attach.quantile_us(0.5),
            None,
        ),
        (
            "attach p99, idle host".into(),
            "µs",
            |r| r.idle.attach.quantile_us(0.99),
            Some(Target::AtMost(ATTACH_P99_TARGET_US)),
        ),
        (
            format!("examples {large}"),
            "MiB/s",
            |r| r.large.mib_per_s,
            None,
        ),
        (
            format!("examples {small}"),
            "frames/s",
            |r| r.small.frames_per_s,
            None,
        ),
    ];
    let note = |run: &HostRun, row: usize| match row {
        0 | 1 => format!(
            "consumer attaches back-to-back: {} attaches",
            run.busy.attach.count()
        ),
        2 | 3 => format!(
            "{} attaches {:?}–{:?} apart",
            run.idle.attach.count(),
            idle_gap().0,
            idle_gap().1
        ),
        4 => run.large.note(),
        _ => run.small.note(),
    };
    let mut figures = Vec::new();
    for (index, (name, unit, value, target)) in rows.into_iter().enumerate() {
        let reference = Figure::new(scenario, format!("tp-driver {name}"), value(embedded), unit)
            .marked_reference()
            .with_note(note(embedded, index));
        let mut figure = Figure::new(scenario, format!("plugin {name}"), value(hosted), unit)
            .against(Some(&reference))
            .with_note(note(hosted, index));
        if let Some(target) = target {
            figure = figure.with_target(target);
        }
        figures.extend([reference, figure]);
    }
    figures
}
