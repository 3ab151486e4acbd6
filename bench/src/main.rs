//! `tp-bench`: measures tensorpool and the references it is judged against (memcpy, raw
//! Aeron IPC, iceoryx2) in one run on one machine, and reports every figure next to its
//! same-run reference as a ratio, with its target and PASS/SHORT. See docs/BENCHMARKS.md.

mod aeron_host;
mod control_client;
mod driver_host;
mod error;
mod frame_stream;
mod pingpong;
mod report;
mod scenario;
mod scenarios;
mod stats;
mod sys;
mod tp_host;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::error::BenchError;
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};

/// Benchmarks of tensorpool against memcpy, raw Aeron IPC and iceoryx2, measured in the
/// same run and reported as ratios.
#[derive(Debug, Parser)]
#[command(
    name = "tp-bench",
    after_help = "Examples:\n  \
cargo run --release -p tp-bench                        # every scenario, ~2 min on 2 cores\n  \
cargo run --release -p tp-bench -- --only attach       # one scenario (plus its references)\n  \
cargo run --release -p tp-bench -- --duration-s 30 --json results.jsonl\n\n\
Each figure row shows its value, the same-run reference it is compared with, the ratio, the \
target and PASS/SHORT ('ref' rows are references, 'info' rows have no target). \
Run on an otherwise idle machine; see docs/BENCHMARKS.md."
)]
struct Args {
    /// Run only these scenarios (comma-separated or repeated), plus the references they are
    /// compared with. See --list.
    #[arg(long, value_name = "SCENARIO", value_delimiter = ',')]
    only: Vec<String>,

    /// Seconds per measurement (each figure or set of percentiles); warm-ups and windows
    /// scale with it. The default run takes about 2 minutes.
    #[arg(long, value_name = "N", default_value_t = 3.0)]
    duration_s: f64,

    /// Also write the figures as JSON lines to FILE ('-' for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,

    /// Also write the table as Markdown to FILE (for docs/BENCHMARKS.md).
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,

    /// The tp-driver binary for driver-scale (default: built with cargo, next to tp-bench).
    #[arg(long, value_name = "PATH")]
    tp_driver: Option<PathBuf>,

    /// Do not run `cargo build` for tp-driver; use the binary next to tp-bench.
    #[arg(long)]
    no_build: bool,

    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,

    /// Internal: run as a child process in this role (the pong of a ping-pong).
    #[arg(long, hide = true)]
    role: Option<String>,

    /// Internal: pid of the benchmark process that started this child.
    #[arg(long, hide = true, default_value_t = 0)]
    parent_pid: u32,

    /// Internal: core the child pins itself to.
    #[arg(long, hide = true)]
    pin_core: Option<usize>,

    /// Internal: Aeron directory of the ping's media driver.
    #[arg(long, hide = true)]
    aeron_dir: Option<PathBuf>,

    /// Internal: iceoryx2 root directory of the ping.
    #[arg(long, hide = true)]
    iox_root: Option<PathBuf>,

    /// Internal: SHM base directory of the ping's tensorpool driver.
    #[arg(long, hide = true)]
    shm_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = sys::install_interrupt_handler() {
        eprintln!("tp-bench: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(role) = &args.role {
        return match run_role(role, &args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tp-bench {role}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let scenarios = scenarios::all();
    if args.list {
        for s in &scenarios {
            println!("{:<18} {}", s.name(), s.summary());
        }
        return ExitCode::SUCCESS;
    }
    if !(args.duration_s > 0.0 && args.duration_s.is_finite()) {
        eprintln!("tp-bench: --duration-s must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let selected = match select(&scenarios, &args.only) {
        Ok(selected) => selected,
        Err(e) => {
            eprintln!("tp-bench: {e}");
            return ExitCode::from(2);
        }
    };
    run(&args, &selected)
}

/// The scenarios to run, in registry order: those asked for and their references.
fn select<'a>(
    scenarios: &'a [Box<dyn Scenario>],
    only: &[String],
) -> Result<Vec<&'a dyn Scenario>, String> {
    if only.is_empty() {
        return Ok(scenarios.iter().map(|s| s.as_ref()).collect());
    }
    let names: Vec<&str> = scenarios.iter().map(|s| s.name()).collect();
    let mut wanted: Vec<&str> = Vec::new();
    for name in only {
        let Some(scenario) = scenarios.iter().find(|s| s.name() == name) else {
            return Err(format!(
                "unknown scenario {name:?}; known: {}",
                names.join(", ")
            ));
        };
        wanted.extend(scenario.references());
        wanted.push(scenario.name());
    }
    Ok(scenarios
        .iter()
        .filter(|s| wanted.contains(&s.name()))
        .map(|s| s.as_ref())
        .collect())
}

fn run(args: &Args, selected: &[&dyn Scenario]) -> ExitCode {
    let commit = sys::git_commit();
    let header = format!(
        "tp-bench: {} cores, {}, Linux {}, load {}, commit {}, {} s per measurement",
        sys::cpu_count(),
        sys::cpu_model(),
        sys::kernel_release(),
        sys::load_average(),
        commit.as_deref().unwrap_or("unknown"),
        args.duration_s
    );
    println!("{header}");
    let mut ctx = RunContext::new(
        Duration::from_secs_f64(args.duration_s),
        args.tp_driver.clone(),
        !args.no_build,
    );
    let mut failed = false;
    let mut background = Vec::new();
    let started = Instant::now();
    let harness_cpus = sys::current_affinity();
    for scenario in selected {
        eprintln!("tp-bench: running {} …", scenario.name());
        let t0 = Instant::now();
        let account = sys::CpuAccount::read();
        let mut outcome = scenario.run(&ctx);
        if harness_cpus.as_ref().is_some_and(sys::restore_affinity) && outcome.is_ok() {
            // A bug of the scenario's, and it skews every scenario after it: say so.
            outcome = Err(BenchError::Measure(
                "left the harness thread pinned (restored for the scenarios after it)".into(),
            ));
        }
        let others = match (account, sys::CpuAccount::read()) {
            (Some(before), Some(after)) => {
                let (others, steal) = after.background_since(&before);
                background.push(format!(
                    "  {:<18} others {others:.2} cores, steal {steal:.2} cores",
                    scenario.name()
                ));
                Some(others)
            }
            _ => None,
        };
        let with_background = |mut figure: Figure| {
            figure.background_cores = others;
            figure
        };
        match outcome {
            Ok(figures) => ctx.record(figures.into_iter().map(with_background)),
            Err(BenchError::Interrupted) => {
                eprintln!("tp-bench: interrupted; stopped after cleaning up");
                failed = true;
                break;
            }
            Err(e) => {
                eprintln!("tp-bench: {} failed: {e}", scenario.name());
                ctx.record([with_background(Figure::failed(
                    scenario.name(),
                    &e.to_string(),
                ))]);
                failed = true;
            }
        }
        eprintln!(
            "tp-bench: {} done in {:.1} s",
            scenario.name(),
            t0.elapsed().as_secs_f64()
        );
    }
    let figures = ctx.into_figures();
    println!();
    print!("{}", report::table(&figures));
    println!(
        "\nCPU used by other processes while each scenario ran (the figures assume ~0):\n{}",
        background.join("\n")
    );
    println!(
        "\ntotal {:.0} s, load average at the end {}",
        started.elapsed().as_secs_f64(),
        sys::load_average()
    );
    if let Err(e) = write_outputs(args, &figures, commit.as_deref(), &header, &background) {
        eprintln!("tp-bench: {e}");
        failed = true;
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn write_outputs(
    args: &Args,
    figures: &[Figure],
    commit: Option<&str>,
    header: &str,
    background: &[String],
) -> Result<(), String> {
    if let Some(path) = &args.json {
        let mut text = String::new();
        for figure in figures {
            text.push_str(&report::json_line(figure, commit));
            text.push('\n');
        }
        if path.as_os_str() == "-" {
            std::io::stdout()
                .write_all(text.as_bytes())
                .map_err(|e| format!("writing JSON to stdout: {e}"))?;
        } else {
            std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        }
    }
    if let Some(path) = &args.markdown {
        let text = format!(
            "{header}\n\n{}\nCPU used by other processes while each scenario ran:\n\n```\n{}\n```\n",
            report::markdown_table(figures),
            background.join("\n")
        );
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Runs this process as a child of a benchmark.
fn run_role(role: &str, args: &Args) -> Result<(), BenchError> {
    sys::die_with_parent(args.parent_pid);
    if let Some(core) = args.pin_core {
        sys::pin_current_thread(core);
    }
    let missing = |flag: &str| BenchError::Setup(format!("--role {role} needs {flag}"));
    match role {
        scenarios::aeron_pingpong::PONG_ROLE => {
            let dir = args
                .aeron_dir
                .as_ref()
                .ok_or_else(|| missing("--aeron-dir"))?;
            scenarios::aeron_pingpong::run_pong(dir)
        }
        scenarios::iceoryx2_pingpong::PONG_ROLE => {
            let root = args
                .iox_root
                .as_ref()
                .ok_or_else(|| missing("--iox-root"))?;
            scenarios::iceoryx2_pingpong::run_pong(root, args.parent_pid)
        }
        scenarios::tp_pingpong::PONG_ROLE => {
            let aeron_dir = args
                .aeron_dir
                .as_ref()
                .ok_or_else(|| missing("--aeron-dir"))?;
            let shm_dir = args.shm_dir.as_ref().ok_or_else(|| missing("--shm-dir"))?;
            scenarios::tp_pingpong::run_pong(aeron_dir, shm_dir)
        }
        other => Err(BenchError::Setup(format!("unknown role {other:?}"))),
    }
}
