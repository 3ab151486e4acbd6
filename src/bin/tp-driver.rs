//! `tp-driver`: the tensorpool SHM driver process (Driver Model v1.0).
//!
//! Runs the SHM driver agent beside an Aeron media driver, embedded in this process by
//! default (`driver.media_driver = "embedded"`) or attached to one already running
//! (`"external"`). Logs go to stderr; set the level with `RUST_LOG` (e.g. `info`,
//! `tensorpool=debug`).

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tensorpool::config::{env_overrides, DriverConfig, ProcessEnv};

/// The tensorpool SHM driver: owns the shared-memory files, issues leases, announces pools.
#[derive(Debug, Parser)]
#[command(
    name = "tp-driver",
    version,
    after_help = "Every key of the [driver], [shm] and [policies] sections can be overridden \
from the environment: upper-case the key and replace '.' with '_' \
(e.g. DRIVER_CONTROL_STREAM_ID=2000, SHM_BASE_DIR=/dev/shm/tp). The environment beats the \
file. Run with --list-env to see every variable.\n\nLogs: RUST_LOG=info (default), debug, warn."
)]
struct Args {
    /// Driver configuration file (TOML, Driver Model §17 keys).
    #[arg(long, short, value_name = "FILE", required_unless_present = "list_env")]
    config: Option<PathBuf>,

    /// Print the effective configuration (file + environment + defaults) and exit.
    #[arg(long)]
    print_config: bool,

    /// List the environment variables that override configuration keys, and exit.
    #[arg(long)]
    list_env: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list_env {
        for (key, var) in env_overrides() {
            println!("{var:<40} {key}");
        }
        return ExitCode::SUCCESS;
    }
    let Some(path) = args.config else {
        eprintln!("tp-driver: --config FILE is required");
        return ExitCode::from(2);
    };
    let config = match DriverConfig::load(&path, &ProcessEnv) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tp-driver: invalid configuration {}: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        print!("{}", config.to_redacted_toml_string());
        return ExitCode::SUCCESS;
    }
    init_logging();
    match tensorpool::driver::runner::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "tp-driver failed");
            eprintln!("tp-driver: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
