//! `tp`: see and steer a running tensorpool system from the terminal (docs/USER_GUIDE.md,
//! "Operating with tp"). The subcommands live in `tensorpool::tool`.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tensorpool::protocol::driver::ShutdownReason;
use tensorpool::tool::{self, decode, gc, inspect, shutdown, status, Exit, Target, ToolError};

const EXIT_CODES: &str = "\
Exit status:
  0  done (inspect, decode: nothing a receiver would refuse)
  1  inspect or decode found something a consumer or receiver would refuse (listed)
  2  bad command line or configuration file
  3  bad input: unreadable file, malformed hex or message, unreadable SHM directory
  4  no media driver or SHM driver to talk to
  5  shutdown: no ShmDriverShutdown before the timeout
  6  shutdown: the driver ignored the request (wrong token, or none configured)

Nothing but `shutdown` sends anything to the driver; nothing takes a lease or writes a
shared-memory file. Without --config or stream ids, tp finds the driver running in the
Aeron directory (--aeron-dir, default /dev/shm/aeron-$USER) by the endpoints it publishes
in the counters file; --instance-id chooses when several share a media driver. With
--config (the driver's own file, with the same environment overrides) or stream ids, tp
uses those.";

/// Operator tool for tensorpool: live status, SHM file inspection, message decoding,
/// remote shutdown and epoch GC preview.
#[derive(Debug, Parser)]
#[command(name = "tp", version, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the driver is.
#[derive(Debug, Args)]
struct TargetArgs {
    /// The driver's configuration file (TOML); its Aeron directory, streams and SHM
    /// location are used. Without it (and without stream ids), the running driver's
    /// published endpoints.
    #[arg(long, short, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Aeron directory of the media driver (default: the configuration's, or Aeron's
    /// /dev/shm/aeron-$USER).
    #[arg(long, value_name = "DIR")]
    aeron_dir: Option<PathBuf>,
    /// Control stream id of the driver (default: the running driver's, else 1000).
    #[arg(long, value_name = "ID")]
    control_stream_id: Option<u32>,
    /// Announce stream id (default: the running driver's, else the control stream id).
    #[arg(long, value_name = "ID")]
    announce_stream_id: Option<u32>,
    /// QoS stream id (default: the running driver's, else 1200).
    #[arg(long, value_name = "ID")]
    qos_stream_id: Option<u32>,
    /// Which running driver, when several share the media driver (their
    /// driver.instance_id; tp lists them).
    #[arg(long, value_name = "ID")]
    instance_id: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        Target {
            config: self.config.clone(),
            aeron_dir: self.aeron_dir.clone(),
            control_stream_id: self.control_stream_id,
            announce_stream_id: self.announce_stream_id,
            qos_stream_id: self.qos_stream_id,
            instance_id: self.instance_id.clone(),
        }
    }

    /// The driver to talk to ([`Target::locate`]).
    fn locate(&self) -> Result<tool::Located, ToolError> {
        noted(self.target().locate()?)
    }

    /// The SHM location to read ([`Target::locate_shm`]).
    fn locate_shm(&self) -> Result<tool::Located, ToolError> {
        noted(self.target().locate_shm()?)
    }
}

/// `located`, its note printed on stderr.
fn noted(located: tool::Located) -> Result<tool::Located, ToolError> {
    if let Some(note) = &located.note {
        eprintln!("tp: {note}");
    }
    Ok(located)
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every stream: epoch, producer, consumers, pools, frames/s, MiB/s, drops, announce
    /// age, and the driver's counters. Live (like top; q or Ctrl-C quits) unless --once.
    Status {
        #[command(flatten)]
        target: TargetArgs,
        /// Print one snapshot and exit.
        #[arg(long)]
        once: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// With --once: how long to listen before printing (announces arrive once per
        /// announce period; rates need two samples).
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        window_ms: u64,
        /// Live view refresh period.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        refresh_ms: u64,
    },
    /// Read-only decode of SHM region files: superblock, every header slot's state, and
    /// what a consumer would refuse and why.
    Inspect {
        /// Region files (header.ring, <pool>.pool).
        files: Vec<PathBuf>,
        /// Inspect the newest epoch directory of this stream under the configuration's
        /// SHM base directory and namespace.
        #[arg(long, value_name = "ID", conflicts_with = "files")]
        stream: Option<u32>,
        #[command(flatten)]
        target: TargetArgs,
        /// List every slot (default: the 8 newest and every refused one).
        #[arg(long)]
        all_slots: bool,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decode one schema 900/901/902 message from hex (or a binary file): every field named,
    /// with its byte offset.
    Decode {
        /// The message as hex (spaces, ':' and '-' allowed; optional 0x).
        hex: Option<String>,
        /// Read the message's raw bytes from this file ('-' for stdin).
        #[arg(long, value_name = "FILE", conflicts_with = "hex")]
        file: Option<PathBuf>,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Ask the driver to shut down (ShmDriverShutdownRequest) and wait for its
    /// ShmDriverShutdown notice. Sends a message to the driver.
    Shutdown {
        #[command(flatten)]
        target: TargetArgs,
        /// The driver's policies.shutdown_token.
        #[arg(long, value_name = "T")]
        token: String,
        /// Reason the request and the driver's notice carry.
        #[arg(long, value_enum, default_value_t = Reason::Admin)]
        reason: Reason,
        /// Diagnostic text the driver repeats in its notice.
        #[arg(long, value_name = "TEXT", default_value = "tp shutdown")]
        message: String,
        /// How long to wait for the notice (the driver drains for
        /// policies.shutdown_timeout_ms first; default: that plus 5 s, or 10 s).
        #[arg(long, value_name = "MS")]
        timeout_ms: Option<u64>,
    },
    /// The epoch directories the driver's epoch GC policy would remove, and why.
    Gc {
        /// Only report (the one mode: tp never deletes).
        #[arg(long, required = true)]
        dry_run: bool,
        #[command(flatten)]
        target: TargetArgs,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Reason {
    Normal,
    Admin,
    Error,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("tp: {e}");
            e.exit.into()
        }
    }
}

fn json_out<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("tp: JSON output failed: {e}"),
    }
}

fn run(command: Command) -> Result<Exit, ToolError> {
    match command {
        Command::Status {
            target,
            once,
            json,
            window_ms,
            refresh_ms,
        } => {
            let located = target.locate()?;
            if once {
                let snapshot = status::once(located, Duration::from_millis(window_ms))?;
                if json {
                    json_out(&snapshot);
                } else {
                    print!("{}", status::render(&snapshot));
                }
            } else {
                status::live(located, Duration::from_millis(refresh_ms.max(100)), json)?;
            }
            Ok(Exit::Ok)
        }
        Command::Inspect {
            files,
            stream,
            target,
            all_slots,
            json,
        } => {
            let files =
                match stream {
                    Some(stream_id) => newest_epoch_files(&target, stream_id)?,
                    None if files.is_empty() => return Err(ToolError::new(
                        Exit::Usage,
                        "name region files, or --stream ID (with --config for the SHM location)",
                    )),
                    None => files,
                };
            let reports = files
                .iter()
                .map(|f| inspect::inspect_file(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ToolError::new(Exit::Input, e.to_string()))?;
            if json {
                json_out(&reports);
            } else {
                for report in &reports {
                    print!("{}", inspect::render(report, all_slots));
                }
            }
            Ok(if reports.iter().any(inspect::FileReport::has_problems) {
                Exit::Problems
            } else {
                Exit::Ok
            })
        }
        Command::Decode { hex, file, json } => {
            let bytes = match (hex, file) {
                (Some(hex), _) => decode::parse_hex(&hex)
                    .map_err(|e| ToolError::new(Exit::Input, e.to_string()))?,
                (None, Some(path)) => read_input(&path)?,
                (None, None) => {
                    return Err(ToolError::new(
                        Exit::Usage,
                        "give the message as hex, or --file FILE",
                    ))
                }
            };
            let schemas = tool::schema::wire_schemas()
                .map_err(|e| ToolError::new(Exit::Input, format!("built-in schemas: {e}")))?;
            let message = decode::decode_message(&schemas, &bytes)
                .map_err(|e| ToolError::new(Exit::Input, format!("malformed message: {e}")))?;
            if json {
                json_out(&message.to_json());
            } else {
                print!("{}", message.to_text());
            }
            Ok(if message.warnings.is_empty() {
                Exit::Ok
            } else {
                Exit::Problems
            })
        }
        Command::Shutdown {
            target,
            token,
            reason,
            message,
            timeout_ms,
        } => {
            let config = target.locate()?.config;
            let timeout = timeout_ms.map_or_else(
                || config.policies.shutdown_timeout() + Duration::from_secs(5),
                Duration::from_millis,
            );
            let reason = match reason {
                Reason::Normal => ShutdownReason::Normal,
                Reason::Admin => ShutdownReason::Admin,
                Reason::Error => ShutdownReason::Error,
            };
            let notice = shutdown::shutdown(&config, &token, reason, &message, timeout)?;
            println!(
                "driver shut down: ShmDriverShutdown reason {} message {:?}",
                notice.reason, notice.message
            );
            Ok(Exit::Ok)
        }
        Command::Gc {
            dry_run: _,
            target,
            json,
        } => {
            let config = target.locate_shm()?.config;
            let plan = gc::dry_run(&config)?;
            if json {
                json_out(&plan);
            } else {
                print!("{}", gc::render(&config, &plan));
            }
            Ok(Exit::Ok)
        }
    }
}

fn read_input(path: &PathBuf) -> Result<Vec<u8>, ToolError> {
    let mut bytes = Vec::new();
    let result = if path.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(path).map(|b| bytes = b)
    };
    result.map_err(|e| ToolError::new(Exit::Input, format!("reading {}: {e}", path.display())))?;
    Ok(bytes)
}

fn newest_epoch_files(target: &TargetArgs, stream_id: u32) -> Result<Vec<PathBuf>, ToolError> {
    let config = target.locate_shm()?.config;
    let layout =
        tensorpool::shm::paths::CanonicalLayout::new(&config.shm.base_dir, &config.shm.namespace)
            .map_err(|e| ToolError::new(Exit::Usage, e.to_string()))?;
    let stream_dir = layout.stream_dir(stream_id);
    let newest = std::fs::read_dir(&stream_dir)
        .map_err(|e| {
            ToolError::new(
                Exit::Input,
                format!("reading {}: {e}", stream_dir.display()),
            )
        })?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
        .max()
        .ok_or_else(|| {
            ToolError::new(
                Exit::Input,
                format!("{} holds no epoch directory", stream_dir.display()),
            )
        })?;
    inspect::epoch_files(&layout.epoch_dir(stream_id, newest))
        .map_err(|e| ToolError::new(Exit::Input, e.to_string()))
}
