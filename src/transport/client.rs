//! The Aeron client in agent-invoker mode: it starts no conductor thread; its owner pumps
//! [`AeronClient::do_work`], which also pumps the embedded media driver when the client owns
//! one. Registrations (publications, subscriptions, counters) complete only while the
//! client (and, in embedded mode, the driver) is pumped, so the blocking helpers here pump
//! while they wait.
//!
//! A client of an external media driver also watches the driver's CnC file: Aeron's own
//! liveness rule only declares a driver dead once its heartbeat is older than the driver
//! timeout (10 s by default), even when a new driver has already replaced the directory.
//! A new media driver only recreates the directory once it judged the old driver dead
//! (or was told to delete it on start), so a `cnc.dat` that is now a different file is
//! proof the driver this client talks to is gone: the client closes itself at once and
//! its owner reconnects, within [`CNC_CHECK_INTERVAL`] of the new driver's start.

use std::cell::Cell;
use std::ffi::{c_char, CStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusteron_client::{Aeron, AeronContext};

use super::error::{c_string, AeronResultExt, TransportError};
use super::idle::BackoffIdle;
#[cfg(feature = "embedded-media-driver")]
use super::media_driver::{EmbeddedMediaDriver, MediaDriverOptions};

/// The media driver a client may own and pump: the embedded one, or (built without the
/// `embedded-media-driver` feature, as the aeronmd plugin is) none at all, so the C media
/// driver is not linked in.
#[cfg(feature = "embedded-media-driver")]
type OwnedDriver = EmbeddedMediaDriver;
#[cfg(not(feature = "embedded-media-driver"))]
type OwnedDriver = NoDriver;

/// Stands in for the embedded driver when it is not built; has no values.
#[cfg(not(feature = "embedded-media-driver"))]
enum NoDriver {}

#[cfg(not(feature = "embedded-media-driver"))]
impl NoDriver {
    fn do_work(&self) -> Result<usize, TransportError> {
        match *self {}
    }
}

/// How often `connect` re-checks for a live driver while it waits.
const CONNECT_RETRY_INTERVAL: Duration = Duration::from_millis(10);
/// Default wait for a driver at connect and for registrations.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most client conductor turns in one [`AeronClient::do_work`]: enough to drain a full
/// to-clients broadcast buffer (1 MiB of notices of 100 bytes or more) in one cycle.
const MAX_CONDUCTOR_TURNS: usize = 16 * 1024;
/// How often a client of an external media driver checks that the driver's `cnc.dat` is
/// still the file it connected to (one `stat`; see the module docs).
pub const CNC_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Configuration of an [`AeronClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Aeron directory of the media driver; `None` uses Aeron's default.
    pub dir: Option<PathBuf>,
    /// How long `connect` waits for a live media driver to appear.
    pub connect_timeout: Duration,
    /// How long registrations (publication, subscription, counter) may take.
    pub resource_timeout: Duration,
    /// Heartbeat age after which the client declares its driver dead (Aeron default 10 s).
    pub driver_timeout: Option<Duration>,
    /// Name the driver shows for this client.
    pub client_name: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            dir: None,
            connect_timeout: DEFAULT_TIMEOUT,
            resource_timeout: DEFAULT_TIMEOUT,
            driver_timeout: None,
            client_name: None,
        }
    }
}

/// An Aeron client pumped by its owner's duty cycle, optionally owning an embedded driver.
///
/// Not `Send`: rusteron's handles are reference-counted with `Rc`, so the client and every
/// publication, subscription and counter made from it stay on the thread that made them.
/// Another thread needs its own client. Pump it regularly: its keepalives go out from
/// `do_work` (every 500 ms by default), and the driver drops a client silent for longer than
/// its client liveness timeout (10 s by default).
pub struct AeronClient {
    // Field order is drop order: the client closes before the driver it may own.
    aeron: Aeron,
    dir: PathBuf,
    resource_timeout: Duration,
    errors: Arc<AtomicU64>,
    /// The last asynchronous error Aeron reported (why a closed client closed).
    last_error: Arc<Mutex<Option<String>>>,
    /// The CnC file this client connected to (`None` when it owns its driver).
    cnc: Option<CncIdentity>,
    next_cnc_check: Cell<Instant>,
    /// Set once the CnC file was replaced: the driver is gone, the client is done.
    driver_replaced: Cell<bool>,
    driver: Option<OwnedDriver>,
}

/// Which file a `cnc.dat` path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CncIdentity {
    dev: u64,
    ino: u64,
}

impl CncIdentity {
    /// The file `dir/cnc.dat` names now, if any.
    fn of(dir: &Path) -> Option<Self> {
        let meta = std::fs::symlink_metadata(dir.join("cnc.dat")).ok()?;
        Some(Self {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

impl AeronClient {
    /// Connects to a media driver running in `dir` (external mode), waiting up to `timeout`.
    pub fn connect(dir: impl AsRef<Path>, timeout: Duration) -> Result<Self, TransportError> {
        Self::connect_with(&ClientOptions {
            dir: Some(dir.as_ref().to_owned()),
            connect_timeout: timeout,
            ..ClientOptions::default()
        })
    }

    /// Connects to a media driver as configured (external mode).
    pub fn connect_with(options: &ClientOptions) -> Result<Self, TransportError> {
        Self::build(options, None)
    }

    /// Starts an embedded driver and connects to it (embedded mode, default client options).
    #[cfg(feature = "embedded-media-driver")]
    pub fn start_embedded(driver_options: &MediaDriverOptions) -> Result<Self, TransportError> {
        let driver = EmbeddedMediaDriver::start(driver_options)?;
        Self::with_embedded_driver(driver, &ClientOptions::default())
    }

    /// Connects to `driver` and takes ownership of it: [`AeronClient::do_work`] pumps both,
    /// and the driver closes after the client. `options.dir` is ignored.
    #[cfg(feature = "embedded-media-driver")]
    pub fn with_embedded_driver(
        driver: EmbeddedMediaDriver,
        options: &ClientOptions,
    ) -> Result<Self, TransportError> {
        let options = ClientOptions {
            dir: Some(driver.dir().to_owned()),
            ..options.clone()
        };
        Self::build(&options, Some(driver))
    }

    fn build(options: &ClientOptions, driver: Option<OwnedDriver>) -> Result<Self, TransportError> {
        let context = AeronContext::new().or_aeron("create client context")?;
        if let Some(dir) = &options.dir {
            let dir = absolute(dir);
            let dir = c_string("aeron directory", dir.as_os_str().as_bytes())?;
            context.set_dir(&dir).or_aeron("set aeron directory")?;
        }
        context
            .set_use_conductor_agent_invoker(true)
            .or_aeron("set agent invoker mode")?;
        if let Some(timeout) = options.driver_timeout {
            context
                .set_driver_timeout_ms(timeout.as_millis().max(1) as u64)
                .or_aeron("set driver timeout")?;
        }
        if let Some(name) = &options.client_name {
            let name = c_string("client name", name.as_bytes())?;
            context.set_client_name(&name).or_aeron("set client name")?;
        }
        let errors = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&errors);
        let last_error = Arc::new(Mutex::new(None));
        let recorded = Arc::clone(&last_error);
        // Agent-invoker mode: Aeron calls this from our own do_work, on the owning thread.
        context
            .set_error_handler(Some(move |code: i32, message: &str| {
                counted.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = recorded.lock() {
                    *last = Some(format!("{message} (code {code})"));
                }
                tracing::warn!(code, message, "aeron client error");
            }))
            .or_aeron("set error handler")?;

        let dir = absolute(Path::new(context.get_dir()));
        if driver.is_none() {
            let driver_timeout_ms = context.get_driver_timeout_ms() as i64;
            wait_for_driver(&dir, driver_timeout_ms, options.connect_timeout)?;
        }
        // Taken before Aeron maps the file: if it is replaced in between, the first check
        // sees a change and the client reconnects, which is harmless; taken after, a
        // replacement could go unnoticed until Aeron's driver timeout.
        let cnc = if driver.is_none() {
            CncIdentity::of(&dir)
        } else {
            None
        };
        let aeron = Aeron::new(&context).map_err(|e| {
            let message = e.get_last_err_message().to_owned();
            tracing::error!(dir = %dir.display(), code = e.code, %message, "aeron client init failed");
            TransportError::aeron("connect client", e.code, &message)
        })?;
        aeron.start().or_aeron("start client")?;
        tracing::info!(
            dir = %dir.display(),
            client_id = aeron.client_id(),
            embedded = driver.is_some(),
            "aeron client connected"
        );
        Ok(Self {
            aeron,
            dir,
            resource_timeout: options.resource_timeout,
            errors,
            last_error,
            cnc,
            next_cnc_check: Cell::new(Instant::now() + CNC_CHECK_INTERVAL),
            driver_replaced: Cell::new(false),
            driver,
        })
    }

    /// Whether the media driver's `cnc.dat` is now another file (checked at most once per
    /// [`CNC_CHECK_INTERVAL`]); latches.
    fn check_driver_replaced(&self) -> bool {
        if self.driver_replaced.get() {
            return true;
        }
        let Some(connected) = self.cnc else {
            return false;
        };
        let now = Instant::now();
        if now < self.next_cnc_check.get() {
            return false;
        }
        self.next_cnc_check.set(now + CNC_CHECK_INTERVAL);
        // A missing file proves nothing (the directory may be mid-recreation, or removed
        // under a live driver): Aeron's own timeout decides then.
        match CncIdentity::of(&self.dir) {
            Some(current) if current != connected => {
                tracing::warn!(
                    dir = %self.dir.display(),
                    client_id = self.aeron.client_id(),
                    "the media driver's cnc.dat was replaced: a new media driver runs there; \
                     closing this client so its owner reconnects"
                );
                self.driver_replaced.set(true);
                true
            }
            _ => false,
        }
    }

    /// One duty cycle: the embedded driver (if owned), then the client conductor; returns the
    /// work done. Fails once the client is closed, e.g. after its driver stopped answering.
    pub fn do_work(&self) -> Result<usize, TransportError> {
        if self.check_driver_replaced() {
            return Err(TransportError::ClientClosed);
        }
        let mut work = match &self.driver {
            Some(driver) => driver.do_work()?,
            None => 0,
        };
        // One conductor turn reads at most one to-clients broadcast message and one
        // command; the media driver may have broadcast hundreds since the last cycle (an
        // image notice per control-stream subscriber for every client that comes), and a
        // reader that falls a whole buffer behind is lapped and closed. So turn until the
        // conductor finds nothing, bounded so one cycle cannot spin for ever.
        for _ in 0..MAX_CONDUCTOR_TURNS {
            match self.aeron.main_do_work() {
                Ok(n) if n > 0 => work += n as usize,
                Ok(_) => break,
                Err(_) if self.aeron.is_closed() => return Err(TransportError::ClientClosed),
                Err(e) => {
                    return Err(TransportError::aeron(
                        "client duty cycle",
                        e.code,
                        e.get_last_err_message(),
                    ))
                }
            }
        }
        Ok(work)
    }

    /// The Aeron directory of the driver this client talks to (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The embedded driver this client owns and pumps, if any.
    #[cfg(feature = "embedded-media-driver")]
    pub fn media_driver(&self) -> Option<&EmbeddedMediaDriver> {
        self.driver.as_ref()
    }

    /// Whether the client has closed (it then does no more work): Aeron closed it, or its
    /// media driver was replaced by a new one (see the module docs).
    pub fn is_closed(&self) -> bool {
        self.driver_replaced.get() || self.aeron.is_closed()
    }

    /// Why a [closed](AeronClient::is_closed) client closed, as far as it knows: the
    /// replaced media driver, or the last error Aeron reported.
    pub fn close_reason(&self) -> String {
        if self.driver_replaced.get() {
            return "the media driver's cnc.dat was replaced by a new media driver".into();
        }
        match self.last_error.lock().ok().and_then(|last| last.clone()) {
            Some(error) => error,
            None => "closed by Aeron without an error report".into(),
        }
    }

    /// Closes this client and hands back the embedded media driver it owned, if any, so a
    /// new client can be built on it (after this client was closed, e.g. lapped by the
    /// to-clients broadcast or timed out by the media driver).
    #[cfg(feature = "embedded-media-driver")]
    pub fn into_media_driver(self) -> Option<EmbeddedMediaDriver> {
        let Self { aeron, driver, .. } = self;
        drop(aeron);
        driver
    }

    /// Aeron's id for this client (also the owner id of its counters).
    pub fn client_id(&self) -> i64 {
        self.aeron.client_id()
    }

    /// Asynchronous errors Aeron reported to this client so far (each is also logged).
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// How long the blocking registration helpers wait.
    pub fn resource_timeout(&self) -> Duration {
        self.resource_timeout
    }

    /// The rusteron client, for the other transport modules.
    pub(crate) fn aeron(&self) -> &Aeron {
        &self.aeron
    }

    /// Pumps this client until `poll` yields a value, failing after the resource timeout.
    pub(crate) fn pump_until<T>(
        &self,
        what: impl FnOnce() -> String,
        mut poll: impl FnMut() -> Result<Option<T>, TransportError>,
    ) -> Result<T, TransportError> {
        let deadline = Instant::now() + self.resource_timeout;
        let mut idle = BackoffIdle::with_max_park(Duration::from_micros(100));
        loop {
            let work = self.do_work()?;
            if let Some(value) = poll()? {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(TransportError::Timeout {
                    what: what(),
                    timeout: self.resource_timeout,
                });
            }
            idle.idle(work);
        }
    }
}

impl std::fmt::Debug for AeronClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AeronClient")
            .field("dir", &self.dir)
            .field("embedded", &self.driver.is_some())
            .finish_non_exhaustive()
    }
}

/// The Aeron directory a client or media driver uses when none is given, as Aeron's C
/// code computes it (`aeron_context_init`, `aeron_default_path`): `AERON_DIR` if set,
/// else `/dev/shm/aeron-<user>` with the user from `USER`, else the password database
/// entry of the real uid, else `default`. So it does not depend on `USER` being set, and
/// names the directory a driver started without one really uses.
pub fn default_aeron_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AERON_DIR") {
        return PathBuf::from(dir);
    }
    let user = std::env::var_os("USER").unwrap_or_else(|| {
        nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|user| user.name)
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "default".into())
            .into()
    });
    let mut name = std::ffi::OsString::from("aeron-");
    name.push(user);
    Path::new("/dev/shm").join(name)
}

/// Waits until Aeron's liveness check finds a driver in `dir`, or `timeout` passes.
fn wait_for_driver(
    dir: &Path,
    driver_timeout_ms: i64,
    timeout: Duration,
) -> Result<(), TransportError> {
    let c_dir = c_string("aeron directory", dir.as_os_str().as_bytes())?;
    let deadline = Instant::now() + timeout;
    loop {
        if Aeron::is_driver_active(&c_dir, driver_timeout_ms, Some(log_aeron)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            tracing::debug!(dir = %dir.display(), ?timeout, "no active media driver");
            return Err(TransportError::NoMediaDriver {
                dir: dir.to_owned(),
                timeout,
            });
        }
        std::thread::sleep(CONNECT_RETRY_INTERVAL);
    }
}

/// Logs Aeron's diagnostic lines from `aeron_is_driver_active`.
pub(crate) unsafe extern "C" fn log_aeron(message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: Aeron passes a NUL-terminated buffer that lives for the duration of the call.
    let message = unsafe { CStr::from_ptr(message) };
    tracing::debug!(message = %message.to_string_lossy(), "aeron driver activity check");
}

/// `path` made absolute against the working directory (without resolving symlinks, as the
/// directory may not exist yet).
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_directory_is_the_one_aerons_context_picks() {
        let context = AeronContext::new().expect("an Aeron context");
        assert_eq!(default_aeron_dir(), PathBuf::from(context.get_dir()));
    }
}
