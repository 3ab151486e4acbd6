//! The `tp` operator tool (`src/bin/tp.rs`): see and steer a running tensorpool system from
//! the terminal. Each subcommand is a module here; the binary only parses arguments.
//!
//! Read-only unless its name says otherwise: `status` and `inspect` read the Aeron counters
//! file, the announce and QoS streams and the SHM files, `decode` reads its input, and
//! `gc --dry-run` lists directories; none takes a lease or writes a shared-memory file.
//! `status` and `shutdown` run an Aeron client (as any Aeron tool does, that registers with
//! the media driver); only `shutdown` sends a message to the driver.

pub mod decode;
pub mod discover;
pub mod footprint;
pub mod gc;
pub mod inspect;
pub mod schema;
pub mod shutdown;
pub mod status;
pub mod terminal;

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::{DriverConfig, DriverSection, PoliciesSection, ProcessEnv, ShmSection};
use crate::driver::endpoints::DriverEndpoints;

/// Exit statuses of `tp`, documented in `tp --help` and docs/USER_GUIDE.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done; for `inspect` and `decode`, nothing a receiver would refuse.
    Ok = 0,
    /// 1: `inspect` or `decode` found something a consumer or receiver would refuse.
    Problems = 1,
    /// 2: bad command line or configuration file.
    Usage = 2,
    /// 3: bad input: unreadable file, malformed hex or message.
    Input = 3,
    /// 4: no media driver or SHM driver to talk to.
    NoDriver = 4,
    /// 5: `shutdown`: no `ShmDriverShutdown` before the timeout.
    Timeout = 5,
    /// 6: `shutdown`: the driver ignored the request (wrong token, or none configured).
    Refused = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

/// A failed subcommand: the message to print and the exit status.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// Exit status.
    pub exit: Exit,
    /// What went wrong and what to do about it.
    pub message: String,
}

impl ToolError {
    /// An error with `exit` status.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

/// Where the driver lives: its configuration file, or the defaults, with command-line
/// overrides (`None` keeps the file's or default value).
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The driver's configuration file (read with the same environment overrides).
    pub config: Option<PathBuf>,
    /// Aeron directory.
    pub aeron_dir: Option<PathBuf>,
    /// Control stream id.
    pub control_stream_id: Option<u32>,
    /// Announce stream id.
    pub announce_stream_id: Option<u32>,
    /// QoS stream id.
    pub qos_stream_id: Option<u32>,
    /// Which of the drivers sharing the media driver (its `driver.instance_id`), when the
    /// streams are found rather than named ([`Target::locate`]).
    pub instance_id: Option<String>,
}

/// The driver `tp` talks about, and how it was found.
#[derive(Debug, Clone)]
pub struct Located {
    /// Its configuration as far as `tp` needs it.
    pub config: DriverConfig,
    /// The endpoints it publishes, when they were read from the counters file (`None`:
    /// the user named its configuration or streams).
    pub discovered: Option<DriverEndpoints>,
    /// Something the user should know (printed on stderr), e.g. that defaults are used.
    pub note: Option<String>,
}

impl Target {
    /// Whether the user named the driver's configuration or any of its stream ids.
    pub fn names_streams(&self) -> bool {
        self.config.is_some()
            || self.control_stream_id.is_some()
            || self.announce_stream_id.is_some()
            || self.qos_stream_id.is_some()
    }

    /// The driver to talk about: as [`Target::resolve`] says when the user named its
    /// configuration or streams; otherwise the one driver whose endpoints the media
    /// driver's counters file holds (`--instance-id` chooses among several), its streams,
    /// SHM location and GC policy applied to the defaults. An error says what was found
    /// and what to pass.
    pub fn locate(&self) -> Result<Located, ToolError> {
        let mut config = self.resolve()?;
        if self.names_streams() {
            if self.instance_id.is_some() {
                return Err(ToolError::new(
                    Exit::Usage,
                    "--instance-id chooses among the drivers found in the counters file;                      drop it, or drop --config and the stream ids",
                ));
            }
            return Ok(Located {
                config,
                discovered: None,
                note: None,
            });
        }
        let dir = aeron_dir(&config);
        let endpoints =
            discover::choose(discover::discover(&dir), &dir, self.instance_id.as_deref())?;
        endpoints.apply_to(&mut config);
        Ok(Located {
            config,
            discovered: Some(endpoints),
            note: None,
        })
    }

    /// As [`Target::locate`], for subcommands that read SHM directories only (`gc`,
    /// `inspect`): when no driver runs to be found, the default SHM location and GC
    /// policy, with a note saying so.
    pub fn locate_shm(&self) -> Result<Located, ToolError> {
        match self.locate() {
            Err(error) if error.exit == Exit::NoDriver && self.instance_id.is_none() => {
                let config = self.resolve()?;
                let note = format!(
                    "{error}\nno running driver found: using the default SHM location {} \
                     namespace {} and the default GC policy; pass --config FILE for another",
                    config.shm.base_dir.display(),
                    config.shm.namespace
                );
                Ok(Located {
                    config,
                    discovered: None,
                    note: Some(note),
                })
            }
            other => other,
        }
    }

    /// The effective driver configuration.
    pub fn resolve(&self) -> Result<DriverConfig, ToolError> {
        let mut config = match &self.config {
            Some(path) => DriverConfig::load(path, &ProcessEnv).map_err(|e| {
                ToolError::new(
                    Exit::Usage,
                    format!("invalid configuration {}: {e}", path.display()),
                )
            })?,
            None => DriverConfig {
                driver: DriverSection::default(),
                shm: ShmSection::default(),
                policies: PoliciesSection::default(),
                profiles: Default::default(),
                streams: Default::default(),
            },
        };
        let driver = &mut config.driver;
        if let Some(dir) = &self.aeron_dir {
            driver.aeron_dir = Some(dir.clone());
        }
        if let Some(id) = self.control_stream_id {
            // Announces follow the control stream unless told otherwise, as in the driver.
            if driver.announce_stream_id == driver.control_stream_id {
                driver.announce_stream_id = id;
            }
            driver.control_stream_id = id;
        }
        if let Some(id) = self.announce_stream_id {
            driver.announce_stream_id = id;
        }
        if let Some(id) = self.qos_stream_id {
            driver.qos_stream_id = id;
        }
        Ok(config)
    }
}

/// The Aeron directory a configuration names, or Aeron's default.
pub fn aeron_dir(config: &DriverConfig) -> PathBuf {
    // Aeron's own default (AERON_DIR, else /dev/shm/aeron-<user> with the user from
    // $USER or the password database), the directory tp-driver's media driver uses.
    config
        .driver
        .aeron_dir
        .clone()
        .unwrap_or_else(crate::transport::default_aeron_dir)
}

/// Connects an Aeron client to the media driver of `config` (waits up to 2 s).
pub fn connect(config: &DriverConfig) -> Result<crate::transport::AeronClient, ToolError> {
    let dir = aeron_dir(config);
    crate::transport::AeronClient::connect_with(&crate::transport::ClientOptions {
        dir: Some(dir.clone()),
        connect_timeout: std::time::Duration::from_secs(2),
        client_name: Some("tp".into()),
        ..Default::default()
    })
    .map_err(|e| {
        ToolError::new(
            Exit::NoDriver,
            format!(
                "no media driver reachable: {e}; is tp-driver (or aeronmd) running with \
                 Aeron directory {}? Pass --aeron-dir or --config",
                dir.display()
            ),
        )
    })
}
