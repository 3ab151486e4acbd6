//! The Aeron side every transport benchmark shares: one C media driver embedded in the
//! benchmark process on a thread of its own, pumped with Aeron's default backoff
//! (`BackoffIdle`, longest park 1 ms), and external-mode
//! clients (one per thread or process, as `tensorpool::transport` requires) that the
//! measuring loops pump about once a millisecond.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tensorpool::transport::{
    AeronClient, BackoffIdle, EmbeddedMediaDriver, MediaDriverOptions, OfferOutcome, Publication,
    Subscription,
};

use crate::error::{BenchError, Context as _};
use crate::sys::check_interrupted;

/// Channel of benchmark data streams: IPC with 16 MiB terms, so the publication window
/// (half a term) covers several milliseconds of traffic between the driver's updates of
/// the publisher limit.
pub const DATA_CHANNEL: &str = "aeron:ipc?term-length=16m";
/// Channel for large messages: 64 MiB terms (a 32 MiB publication window, so 64 KiB
/// round trips rarely wait for the driver thread to move the publisher limit) and the
/// largest MTU Aeron accepts, so a 64 KiB message travels as two fragments instead of
/// forty-seven. The strongest raw Aeron reference we know how to configure.
pub const LARGE_MESSAGE_CHANNEL: &str = "aeron:ipc?term-length=64m|mtu=65504";
/// Longest park of the media driver thread's `BackoffIdle` (Aeron's default backoff; the
/// SHM driver parks longer, see `tensorpool::driver::runner::DriverIdle`), also used by the
/// benchmark clients' loops.
pub const DRIVER_MAX_PARK: Duration = Duration::from_millis(1);
/// How often measuring loops pump their client's conductor (keepalives, images).
pub const CLIENT_PUMP_PERIOD: Duration = Duration::from_millis(1);
/// How long setup steps (connect, registrations, images) may take.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The C media driver running on its own thread; stopped and joined on drop.
pub struct MediaDriverThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
    dir: PathBuf,
}

impl MediaDriverThread {
    /// Starts a driver in `dir` (which must not hold a live driver) and waits until it runs.
    pub fn start(dir: &Path) -> Result<Self, BenchError> {
        let options = MediaDriverOptions {
            dir: Some(dir.to_owned()),
            dir_delete_on_shutdown: true,
            ..MediaDriverOptions::default()
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("media-driver".into())
                .spawn(move || -> Result<(), String> {
                    let driver = match EmbeddedMediaDriver::start(&options) {
                        Ok(driver) => driver,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return Err(e.to_string());
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    let mut idle = BackoffIdle::with_max_park(DRIVER_MAX_PARK);
                    while !stop.load(Ordering::Acquire) {
                        let work = driver.do_work().map_err(|e| e.to_string())?;
                        idle.idle(work);
                    }
                    Ok(())
                })
                .setup("spawning the media driver thread")?
        };
        let host = Self {
            stop,
            thread: Some(thread),
            dir: dir.to_owned(),
        };
        match ready_rx.recv_timeout(SETUP_TIMEOUT) {
            Ok(Ok(())) => Ok(host),
            Ok(Err(e)) => Err(BenchError::Setup(format!("starting the media driver: {e}"))),
            Err(_) => Err(BenchError::Setup(format!(
                "the media driver did not start within {SETUP_TIMEOUT:?}"
            ))),
        }
    }

    /// The Aeron directory clients connect to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for MediaDriverThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("tp-bench: the media driver thread failed: {e}"),
                Err(_) => eprintln!("tp-bench: the media driver thread panicked"),
            }
        }
    }
}

/// Connects an external-mode client to the driver in `dir`.
pub fn connect(dir: &Path) -> Result<AeronClient, BenchError> {
    AeronClient::connect(dir, SETUP_TIMEOUT).setup(format!(
        "connecting to the media driver in {}",
        dir.display()
    ))
}

/// Pumps `client` until `ready()` holds, failing with `what` after [`SETUP_TIMEOUT`].
pub fn pump_until(
    client: &AeronClient,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), BenchError> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
    loop {
        check_interrupted()?;
        let work = client.do_work().setup("pumping the aeron client")?;
        if ready() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::Setup(format!(
                "timed out after {SETUP_TIMEOUT:?} waiting for {what}"
            )));
        }
        idle.idle(work);
    }
}

/// Waits until `publication` has a subscriber and `subscription` an image.
pub fn await_connected(
    client: &AeronClient,
    publication: &Publication,
    subscription: &Subscription,
) -> Result<(), BenchError> {
    pump_until(client, "the peer's publication and subscription", || {
        publication.is_connected() && subscription.image_count() > 0
    })
}

/// Calls `client.do_work()` about every [`CLIENT_PUMP_PERIOD`], from a measuring loop that
/// reads the clock anyway.
pub struct ClientPump {
    next: Instant,
}

impl ClientPump {
    /// A pump due at once.
    pub fn new() -> Self {
        Self {
            next: Instant::now(),
        }
    }

    /// Pumps `client` if a period has passed since the last pump.
    pub fn maybe_pump(&mut self, client: &AeronClient, now: Instant) -> Result<(), BenchError> {
        if now >= self.next {
            self.next = now + CLIENT_PUMP_PERIOD;
            client.do_work().measure("pumping the aeron client")?;
        }
        Ok(())
    }
}

/// Offers `bytes` until it is in the log, pumping `client` while back-pressured; fails if
/// the subscriber is gone or after [`SETUP_TIMEOUT`] of back pressure.
pub fn offer_until_published(
    client: &AeronClient,
    publication: &Publication,
    bytes: &[u8],
    pump: &mut ClientPump,
) -> Result<(), BenchError> {
    let mut since: Option<Instant> = None;
    loop {
        match publication.offer(bytes).measure("offering")? {
            OfferOutcome::Published { .. } => return Ok(()),
            OfferOutcome::NotConnected => {
                return Err(BenchError::Measure("the subscriber went away".into()))
            }
            OfferOutcome::BackPressured | OfferOutcome::AdminAction => {
                let now = Instant::now();
                let start = *since.get_or_insert(now);
                if now - start > SETUP_TIMEOUT {
                    return Err(BenchError::Measure(format!(
                        "back-pressured for {SETUP_TIMEOUT:?}"
                    )));
                }
                pump.maybe_pump(client, now)?;
                check_interrupted()?;
            }
        }
    }
}
