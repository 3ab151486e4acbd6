//! What the example producer and consumer share: the documented test pattern, the
//! interrupt flag, and logging set-up. (A module of the examples, not an example.)

// Each example uses part of this module.
#![allow(dead_code)]

use std::fmt::Display;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};
use tensorpool::transport::TransportError;

/// Longest single wait for a media driver; the examples retry it until their timeout,
/// so Ctrl-C is noticed within this.
pub const CONNECT_ATTEMPT: Duration = Duration::from_secs(1);

/// The pattern's period: byte `i` of frame `s` is `(s + i) mod PATTERN_PERIOD`.
pub const PATTERN_PERIOD: usize = 251;

/// The test pattern laid out once, so that a frame is one copy out of it (producer) or
/// one comparison against it (consumer): frame `s` of `len` bytes is the slice starting
/// at `s mod 251`.
pub struct Pattern {
    reference: Vec<u8>,
}

impl Pattern {
    /// A pattern for frames of up to `max_len` bytes (it grows if a longer one comes).
    pub fn new(max_len: usize) -> Self {
        let mut pattern = Self {
            reference: Vec::new(),
        };
        pattern.reserve(max_len);
        pattern
    }

    fn reserve(&mut self, len: usize) {
        let needed = len + PATTERN_PERIOD;
        let start = self.reference.len();
        if needed > start {
            self.reference
                .extend((start..needed).map(|i| (i % PATTERN_PERIOD) as u8));
        }
    }

    /// The bytes of frame `seq`, `len` long.
    pub fn frame(&mut self, seq: u64, len: usize) -> &[u8] {
        self.reserve(len);
        let first = (seq % PATTERN_PERIOD as u64) as usize;
        &self.reference[first..first + len]
    }

    /// Whether `payload` is frame `seq` of the pattern.
    pub fn matches(&mut self, seq: u64, payload: &[u8]) -> bool {
        self.frame(seq, payload.len()) == payload
    }
}

/// The signal that interrupted the run (0 = none yet).
static INTERRUPTED_BY: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: nix::libc::c_int) {
    // Async-signal-safe: one atomic store.
    INTERRUPTED_BY.store(signal, Ordering::Relaxed);
}

/// Makes SIGINT and SIGTERM set the interrupt flag instead of killing the process, so
/// the run can detach, unmap and report before it exits.
pub fn catch_interrupts() -> Result<(), String> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }
            .map_err(|e| format!("cannot handle {signal}: {e}"))?;
    }
    Ok(())
}

/// The signal number that interrupted the run, if one did.
pub fn interrupted() -> Option<i32> {
    match INTERRUPTED_BY.load(Ordering::Relaxed) {
        0 => None,
        signal => Some(signal),
    }
}

/// Exit status of an interrupted run: 128 + the signal number, as shells report it.
pub fn interrupted_status(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// Logs to stderr at `RUST_LOG`'s level (default `warn`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Calls `attempt` (one connect, waiting at most [`CONNECT_ATTEMPT`]) until it succeeds,
/// `deadline` passes or the run is interrupted. The final error says how long it really
/// waited, and, when no media driver answered in `aeron_dir`, what to check.
/// `no_driver` tells whether an error means that.
pub fn connect_retrying<T, E: Display>(
    aeron_dir: &Path,
    deadline: Instant,
    mut attempt: impl FnMut() -> Result<T, E>,
    no_driver: impl Fn(&E) -> bool,
) -> Result<T, String> {
    let started = Instant::now();
    loop {
        match attempt() {
            Ok(connected) => return Ok(connected),
            Err(error) if Instant::now() >= deadline || interrupted().is_some() => {
                return Err(if no_driver(&error) {
                    TransportError::NoMediaDriver {
                        dir: aeron_dir.to_owned(),
                        timeout: Duration::from_millis(started.elapsed().as_millis() as u64),
                    }
                    .to_string()
                } else {
                    format!(
                        "could not connect in {}s: {error}",
                        started.elapsed().as_secs()
                    )
                });
            }
            Err(error) => {
                tracing::info!(%error, "media driver not reachable yet; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// Whether `error` is "no media driver answered".
pub fn is_no_media_driver(error: &TransportError) -> bool {
    matches!(error, TransportError::NoMediaDriver { .. })
}
