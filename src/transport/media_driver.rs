//! The Aeron C media driver embedded in this process, in INVOKER threading mode: it starts
//! no thread of its own; whoever owns it pumps [`EmbeddedMediaDriver::do_work`] from their
//! duty cycle (usually through [`super::AeronClient::do_work`]).
//!
//! Starting in a directory that already holds Aeron files follows Aeron's own liveness rule
//! (the to-driver ring buffer's consumer heartbeat, `aeron_is_driver_active`): a driver whose
//! heartbeat is older than the driver timeout is dead. Before Aeron touches anything we
//! refuse when a driver is alive there ([`TransportError::DriverAlreadyRunning`]); when the
//! files belong to a dead driver we log a warning and start, waiting first if the heartbeat
//! is still fresh (a crashed driver) until it either moves (alive: refuse) or ages past the
//! timeout (dead: start). Aeron then removes the old files and creates new ones.
//!
//! Waiting out the timeout (10 s by default; the heartbeat itself only moves once per
//! Aeron timer interval, 1 s) is needed only when nothing better is known. A driver
//! started here leaves an owner record beside its CnC file ([`OWNER_FILE`]: its pid, its
//! pid namespace and the CnC's start timestamp). When the CnC in the directory is the one
//! that record describes, the record was written in this pid namespace, and no process
//! has that pid any more, the old driver is provably gone (a killed process cannot come
//! back, and a reused pid only makes it look alive): the new driver starts at once and has
//! Aeron delete the old files without its own heartbeat check. A pid that is alive, a
//! record from another pid namespace (a container sharing the directory), or no record
//! (a stock aeronmd, a Java driver) all fall back to the heartbeat rule, so a live driver
//! is never touched.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusteron_media_driver::bindings::aeron_threading_mode_enum;
use rusteron_media_driver::{AeronDriver, AeronDriverContext};

use super::client::{absolute, log_aeron};
use super::error::{c_string, AeronResultExt, TransportError};

/// How often a fresh heartbeat of a possibly dead driver is re-read.
const HEARTBEAT_WATCH_INTERVAL: Duration = Duration::from_millis(10);
/// The owner record a driver started here writes beside its CnC file (see the module docs).
pub const OWNER_FILE: &str = "tensorpool-media-driver.owner";

/// Aeron directories with an embedded driver alive in this process. The heartbeat test cannot
/// see these when their owner is the very thread that is starting a second driver (an
/// INVOKER driver's heartbeat only moves while it is pumped), so they are refused up front.
static EMBEDDED_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Configuration of an [`EmbeddedMediaDriver`]; `None` keeps Aeron's default (which Aeron's
/// `AERON_*` environment variables may already have changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaDriverOptions {
    /// Aeron directory; `None` uses Aeron's default (`AERON_DIR` or `/dev/shm/aeron-$USER`).
    pub dir: Option<PathBuf>,
    /// Let Aeron delete the directory on start without its own liveness re-check (the
    /// liveness check described in the module docs runs either way).
    pub dir_delete_on_start: bool,
    /// Delete the directory when the driver closes.
    pub dir_delete_on_shutdown: bool,
    /// Use sparse files for term buffers (faster creation, page faults on first touch).
    pub term_buffer_sparse_file: Option<bool>,
    /// Term length of IPC publications that do not set `term-length` on their channel.
    pub ipc_term_buffer_length: Option<usize>,
    /// How long the driver keeps a silent client before closing its resources.
    pub client_liveness_timeout: Option<Duration>,
    /// Heartbeat age after which a driver counts as dead (Aeron default 10 s).
    pub driver_timeout: Option<Duration>,
}

impl MediaDriverOptions {
    /// Options for a driver in `dir`, everything else default.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
            ..Self::default()
        }
    }
}

/// The Aeron C media driver running in-process, pumped by its owner (see the module docs).
///
/// `Send`, so it may be started on one thread and pumped by another, but it has one owner:
/// only that owner calls [`EmbeddedMediaDriver::do_work`]. Dropping it closes the driver
/// (and deletes the directory if `dir_delete_on_shutdown` was set).
pub struct EmbeddedMediaDriver {
    // Field order is drop order: the driver closes, then its context (which may delete the
    // directory), and only then is the directory released for other drivers in this process.
    driver: AeronDriver,
    _context: AeronDriverContext,
    claim: DirClaim,
    driver_timeout: Duration,
}

impl EmbeddedMediaDriver {
    /// Starts a driver as configured; refuses if a live driver owns the directory.
    pub fn start(options: &MediaDriverOptions) -> Result<Self, TransportError> {
        let context = AeronDriverContext::new().or_aeron("create media driver context")?;
        if let Some(dir) = &options.dir {
            let dir = absolute(dir);
            let dir = c_string("aeron directory", dir.as_os_str().as_bytes())?;
            context.set_dir(&dir).or_aeron("set aeron directory")?;
        }
        context
            .set_threading_mode(aeron_threading_mode_enum::AERON_THREADING_MODE_INVOKER)
            .or_aeron("set INVOKER threading mode")?;
        // Aeron would print to stderr; the liveness check below logs through tracing instead.
        context
            .set_dir_warn_if_exists(false)
            .or_aeron("set dir warn if exists")?;
        context
            .set_dir_delete_on_start(options.dir_delete_on_start)
            .or_aeron("set dir delete on start")?;
        context
            .set_dir_delete_on_shutdown(options.dir_delete_on_shutdown)
            .or_aeron("set dir delete on shutdown")?;
        if let Some(sparse) = options.term_buffer_sparse_file {
            context
                .set_term_buffer_sparse_file(sparse)
                .or_aeron("set term buffer sparse file")?;
        }
        if let Some(length) = options.ipc_term_buffer_length {
            context
                .set_ipc_term_buffer_length(length)
                .or_aeron("set ipc term buffer length")?;
        }
        if let Some(timeout) = options.client_liveness_timeout {
            context
                .set_client_liveness_timeout_ns(duration_ns(timeout))
                .or_aeron("set client liveness timeout")?;
        }
        if let Some(timeout) = options.driver_timeout {
            context
                .set_driver_timeout_ms(timeout.as_millis().max(1) as u64)
                .or_aeron("set driver timeout")?;
        }
        let dir = absolute(Path::new(context.get_dir()));
        let driver_timeout = Duration::from_millis(context.get_driver_timeout_ms());

        let claim = DirClaim::new(dir)?;
        Self::start_claimed(context, claim, driver_timeout)
    }

    fn start_claimed(
        context: AeronDriverContext,
        claim: DirClaim,
        driver_timeout: Duration,
    ) -> Result<Self, TransportError> {
        let dir = claim.dir.as_path();
        let c_dir = c_string("aeron directory", dir.as_os_str().as_bytes())?;
        match previous_driver(dir, &c_dir, driver_timeout)? {
            PreviousDriver::None => {}
            PreviousDriver::Dead { heartbeat_age } => tracing::warn!(
                dir = %dir.display(),
                heartbeat_age_ms = heartbeat_age.map(|age| age.as_millis() as u64),
                "the aeron directory holds files of a media driver that is no longer running; \
                 starting a new driver (Aeron replaces the old files)"
            ),
            PreviousDriver::Exited { pid } => {
                tracing::warn!(
                    dir = %dir.display(),
                    pid,
                    "the media driver that owned the aeron directory has exited (its process \
                     is gone); starting a new driver at once (Aeron replaces the old files)"
                );
                // Aeron's own check would still see the dead driver's fresh heartbeat.
                context
                    .set_dir_delete_on_start(true)
                    .or_aeron("set dir delete on start")?;
            }
        }
        let driver = AeronDriver::new(&context).map_err(|e| {
            let message = e.get_last_err_message().to_owned();
            // Lost a race with another process that started a driver after our check.
            if message.contains("Active media driver") {
                TransportError::DriverAlreadyRunning {
                    dir: dir.to_owned(),
                }
            } else {
                TransportError::aeron("start media driver", e.code, &message)
            }
        })?;
        driver.start(true).or_aeron("start media driver")?;
        tracing::info!(dir = %dir.display(), "embedded media driver started (INVOKER mode)");
        if let Err(error) = write_owner_record(dir, &c_dir) {
            // Only costs the next driver in this directory the fast restart.
            tracing::warn!(
                dir = %dir.display(),
                %error,
                "could not write the media driver's owner record; a driver restarted here \
                 after a crash will wait out the heartbeat timeout"
            );
        }
        Ok(Self {
            driver,
            _context: context,
            claim,
            driver_timeout,
        })
    }

    /// One duty cycle of the driver's conductor (and, in INVOKER mode, sender and receiver);
    /// returns the work done.
    pub fn do_work(&self) -> Result<usize, TransportError> {
        let work = self
            .driver
            .main_do_work()
            .or_aeron("media driver duty cycle")?;
        Ok(work.max(0) as usize)
    }

    /// The Aeron directory the driver serves (absolute).
    pub fn dir(&self) -> &Path {
        &self.claim.dir
    }

    /// Heartbeat age after which clients and other drivers consider this driver dead.
    pub fn driver_timeout(&self) -> Duration {
        self.driver_timeout
    }
}

impl Drop for EmbeddedMediaDriver {
    fn drop(&mut self) {
        // The driver and its context close as the fields drop, right after this.
        tracing::info!(dir = %self.dir().display(), "closing embedded media driver");
    }
}

impl std::fmt::Debug for EmbeddedMediaDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedMediaDriver")
            .field("dir", &self.dir())
            .finish_non_exhaustive()
    }
}

/// What was found in the directory before starting.
enum PreviousDriver {
    /// No CnC file: a fresh start.
    None,
    /// Files of a driver that is not running; `heartbeat_age` is `None` after a clean close.
    Dead { heartbeat_age: Option<Duration> },
    /// Files of a driver whose process `pid` has provably exited (see the module docs),
    /// although its heartbeat may still look fresh.
    Exited { pid: i64 },
}

/// Applies the liveness rule in the module docs; errs if a driver is alive in `dir`.
fn previous_driver(
    dir: &Path,
    c_dir: &CStr,
    driver_timeout: Duration,
) -> Result<PreviousDriver, TransportError> {
    if !dir.join("cnc.dat").exists() {
        return Ok(PreviousDriver::None);
    }
    let timeout_ms = driver_timeout.as_millis() as i64;
    let cnc = match rusteron_client::AeronCnc::open(c_dir) {
        Ok(cnc) => cnc,
        Err(_) => {
            // Not readable as a CnC file of this Aeron version: let Aeron's own check decide.
            return if rusteron_client::Aeron::is_driver_active(c_dir, timeout_ms, Some(log_aeron)) {
                Err(TransportError::DriverAlreadyRunning {
                    dir: dir.to_owned(),
                })
            } else {
                Ok(PreviousDriver::Dead {
                    heartbeat_age: None,
                })
            };
        }
    };
    // A cleanly closed driver leaves a negative heartbeat, which rusteron reports as an error.
    let Ok(first) = cnc.get_to_driver_heartbeat_ms() else {
        return Ok(PreviousDriver::Dead {
            heartbeat_age: None,
        });
    };
    if let Some(pid) = exited_owner(dir, &cnc) {
        return Ok(PreviousDriver::Exited { pid });
    }
    let started = Instant::now();
    let mut logged = false;
    loop {
        let now = rusteron_client::Aeron::epoch_clock();
        let heartbeat = match cnc.get_to_driver_heartbeat_ms() {
            Ok(heartbeat) => heartbeat,
            Err(_) => {
                return Ok(PreviousDriver::Dead {
                    heartbeat_age: None,
                })
            }
        };
        if heartbeat != first {
            tracing::debug!(dir = %dir.display(), "media driver heartbeat moved: driver is alive");
            return Err(TransportError::DriverAlreadyRunning {
                dir: dir.to_owned(),
            });
        }
        let age_ms = now - heartbeat;
        if age_ms > timeout_ms {
            return Ok(PreviousDriver::Dead {
                heartbeat_age: Some(Duration::from_millis(age_ms.max(0) as u64)),
            });
        }
        if !logged {
            logged = true;
            tracing::info!(
                dir = %dir.display(),
                heartbeat_age_ms = age_ms,
                driver_timeout_ms = timeout_ms,
                "found a media driver with a fresh heartbeat; waiting to see whether it is alive"
            );
        }
        // Belt and braces against a clock jump: never wait much longer than one timeout.
        if started.elapsed() > driver_timeout * 2 {
            return Err(TransportError::DriverAlreadyRunning {
                dir: dir.to_owned(),
            });
        }
        std::thread::sleep(HEARTBEAT_WATCH_INTERVAL);
    }
}

/// What a driver started here records about itself beside its CnC file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OwnerRecord {
    /// The driver's process id (as the CnC records it).
    pid: i64,
    /// The pid namespace the pid belongs to (`readlink /proc/self/ns/pid`).
    pid_namespace: String,
    /// The CnC's start timestamp, tying the record to one incarnation of the CnC file.
    cnc_start_timestamp: i64,
}

impl OwnerRecord {
    fn to_text(&self) -> String {
        format!(
            "pid={}\npid_namespace={}\ncnc_start_timestamp={}\n",
            self.pid, self.pid_namespace, self.cnc_start_timestamp
        )
    }

    fn parse(text: &str) -> Option<Self> {
        let mut pid = None;
        let mut pid_namespace = None;
        let mut cnc_start_timestamp = None;
        for line in text.lines() {
            let (key, value) = line.split_once('=')?;
            match key {
                "pid" => pid = Some(value.parse().ok()?),
                "pid_namespace" => pid_namespace = Some(value.to_owned()),
                "cnc_start_timestamp" => cnc_start_timestamp = Some(value.parse().ok()?),
                _ => return None,
            }
        }
        Some(Self {
            pid: pid?,
            pid_namespace: pid_namespace?,
            cnc_start_timestamp: cnc_start_timestamp?,
        })
    }
}

/// This process's pid namespace, e.g. `pid:[4026531836]`.
fn own_pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// Writes this driver's [`OwnerRecord`] beside the CnC in `dir` (write, then rename).
fn write_owner_record(dir: &Path, c_dir: &CStr) -> Result<(), String> {
    let cnc = rusteron_client::AeronCnc::open(c_dir).map_err(|e| format!("open CnC: {e:?}"))?;
    let constants = cnc
        .get_constants()
        .map_err(|e| format!("read CnC constants: {e:?}"))?;
    let pid_namespace = own_pid_namespace().ok_or("cannot read /proc/self/ns/pid")?;
    let record = OwnerRecord {
        pid: constants.pid(),
        pid_namespace,
        cnc_start_timestamp: constants.start_timestamp(),
    };
    let path = dir.join(OWNER_FILE);
    let tmp = dir.join(format!("{OWNER_FILE}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, record.to_text())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("{}: {e}", path.display())
        })
}

/// The pid of the driver that owned the CnC in `dir`, if that driver has provably exited:
/// its [`OwnerRecord`] describes this very CnC, was written in our pid namespace, and no
/// process has the pid any more. `None` whenever any of that is unknown.
fn exited_owner(dir: &Path, cnc: &rusteron_client::AeronCnc) -> Option<i64> {
    let constants = cnc.get_constants().ok()?;
    let text = std::fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let record = OwnerRecord::parse(&text)?;
    if record.pid != constants.pid()
        || record.cnc_start_timestamp != constants.start_timestamp()
        || Some(&record.pid_namespace) != own_pid_namespace().as_ref()
    {
        return None;
    }
    let pid = i32::try_from(record.pid).ok().filter(|pid| *pid > 0)?;
    if pid == std::process::id() as i32 {
        return None;
    }
    // Signal 0 checks existence only; EPERM means a process (of another user) has the pid.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Err(nix::errno::Errno::ESRCH) => Some(record.pid),
        _ => None,
    }
}

/// This process's claim on an Aeron directory, released on drop.
struct DirClaim {
    /// The directory as configured (absolute).
    dir: PathBuf,
    /// The same directory with symlinks resolved, so aliases of one directory collide.
    key: PathBuf,
}

impl DirClaim {
    fn new(dir: PathBuf) -> Result<Self, TransportError> {
        let key = canonical(&dir);
        let mut dirs = EMBEDDED_DIRS.lock().unwrap_or_else(|e| e.into_inner());
        if dirs.contains(&key) {
            return Err(TransportError::DriverAlreadyRunning { dir });
        }
        dirs.push(key.clone());
        Ok(Self { dir, key })
    }
}

impl Drop for DirClaim {
    fn drop(&mut self) {
        let mut dirs = EMBEDDED_DIRS.lock().unwrap_or_else(|e| e.into_inner());
        dirs.retain(|d| *d != self.key);
    }
}

/// `dir` with symlinks resolved as far as it exists (its parent, if it does not yet).
fn canonical(dir: &Path) -> PathBuf {
    if let Ok(dir) = std::fs::canonicalize(dir) {
        return dir;
    }
    match (dir.parent().map(std::fs::canonicalize), dir.file_name()) {
        (Some(Ok(parent)), Some(name)) => parent.join(name),
        _ => dir.to_owned(),
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_record_round_trips_and_refuses_what_it_did_not_write() {
        let record = OwnerRecord {
            pid: 4242,
            pid_namespace: "pid:[4026531836]".into(),
            cnc_start_timestamp: 1_700_000_000_123,
        };
        assert_eq!(OwnerRecord::parse(&record.to_text()), Some(record));
        assert_eq!(OwnerRecord::parse(""), None, "every field is required");
        assert_eq!(
            OwnerRecord::parse("pid=1\npid_namespace=x\n"),
            None,
            "no start timestamp"
        );
        assert_eq!(
            OwnerRecord::parse("pid=abc\npid_namespace=x\ncnc_start_timestamp=1\n"),
            None
        );
        assert_eq!(
            OwnerRecord::parse("pid=1\npid_namespace=x\ncnc_start_timestamp=1\nextra=2\n"),
            None,
            "unknown keys mean another format"
        );
    }

    #[test]
    fn own_pid_namespace_is_readable() {
        let ns = own_pid_namespace().expect("/proc/self/ns/pid");
        assert!(ns.starts_with("pid:["), "{ns}");
    }
}
