//! `aeron-pingpong`: the reference for latency. Raw Aeron IPC ping-pong between two
//! processes (this one and a re-run of this executable as `--role aeron-pong`), each pinned
//! to a core of its own when there are two, the media driver on a thread of the ping
//! process. Messages of 64 B and 64 KiB; percentiles from an HDR histogram.

use std::path::Path;
use std::time::{Duration, Instant};

use tensorpool::transport::{AeronClient, Publication, Subscription};

use crate::aeron_host::{
    self, offer_until_published, ClientPump, MediaDriverThread, LARGE_MESSAGE_CHANNEL,
};
use crate::error::{BenchError, Context as _};
use crate::pingpong::{self, seq_of, PingTransport, END};
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::sys::{check_interrupted, core_pair, pin_current_thread, Scratch};

/// Stream the ping publishes on.
const PING_STREAM: i32 = 2101;
/// Stream the pong publishes on.
const PONG_STREAM: i32 = 2102;
/// The `--role` of the pong process.
pub const PONG_ROLE: &str = "aeron-pong";

/// The `aeron-pingpong` scenario.
pub struct AeronPingPong;

impl Scenario for AeronPingPong {
    fn name(&self) -> &'static str {
        "aeron-pingpong"
    }

    fn summary(&self) -> &'static str {
        "raw Aeron IPC ping-pong of 64 B and 64 KiB between two processes (reference for latency)"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let scratch = Scratch::new("aeron-pingpong")?;
        let aeron_dir = scratch.join("aeron");
        let driver = MediaDriverThread::start(&aeron_dir)?;
        let (ping_core, pong_core) = match core_pair() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let mut pong =
            pingpong::spawn_pong(PONG_ROLE, &[("--aeron-dir", driver.dir())], pong_core)?;
        let warmup = ctx.scaled(0.3).min(Duration::from_secs(1));
        let window = ctx.duration;
        let result = std::thread::scope(|s| {
            s.spawn(|| -> Result<Vec<Figure>, BenchError> {
                if let Some(core) = ping_core {
                    pin_current_thread(core);
                }
                let mut ping = AeronPing::connect(driver.dir())?;
                let measured = pingpong::measure_all_sizes(&mut ping, warmup, window)?;
                Ok(pingpong::reference_figures(
                    self.name(),
                    &measured,
                    &format!(" on {LARGE_MESSAGE_CHANNEL}"),
                ))
            })
            .join()
            .map_err(|_| BenchError::Measure("the ping thread panicked".into()))?
        });
        if pong.wait_timeout(Duration::from_secs(2)).is_none() {
            pong.kill();
        }
        result
    }
}

/// The ping's end of the Aeron ping-pong.
struct AeronPing {
    // Field order is drop order: publication and subscription before their client.
    publication: Publication,
    subscription: Subscription,
    client: AeronClient,
    pump: ClientPump,
    echo: Option<(u64, usize)>,
}

impl AeronPing {
    fn connect(dir: &Path) -> Result<Self, BenchError> {
        let client = aeron_host::connect(dir)?;
        let publication = Publication::add(&client, LARGE_MESSAGE_CHANNEL, PING_STREAM)
            .setup("adding the ping publication")?;
        let subscription = Subscription::add(&client, LARGE_MESSAGE_CHANNEL, PONG_STREAM)
            .setup("adding the pong subscription")?;
        aeron_host::await_connected(&client, &publication, &subscription)?;
        Ok(Self {
            publication,
            subscription,
            client,
            pump: ClientPump::new(),
            echo: None,
        })
    }
}

impl PingTransport for AeronPing {
    fn send(&mut self, message: &[u8]) -> Result<(), BenchError> {
        offer_until_published(&self.client, &self.publication, message, &mut self.pump)
    }

    fn poll_echo(&mut self, seq: u64, size: usize) -> Result<bool, BenchError> {
        let echo = &mut self.echo;
        self.subscription
            .poll(|bytes| *echo = Some((seq_of(bytes), bytes.len())), 1)
            .measure("polling the pong stream")?;
        match self.echo.take() {
            None => Ok(false),
            Some(got) if got == (seq, size) => Ok(true),
            Some((got_seq, got_len)) => Err(BenchError::Measure(format!(
                "expected echo {seq} of {size} bytes, got {got_seq} of {got_len}"
            ))),
        }
    }

    fn housekeeping(&mut self, now: Instant) -> Result<(), BenchError> {
        self.pump.maybe_pump(&self.client, now)
    }
}

/// The pong process: echoes every message on the ping stream back on the pong stream
/// until the END message (or SIGINT/SIGTERM, or its parent's death).
pub fn run_pong(aeron_dir: &Path) -> Result<(), BenchError> {
    let client = aeron_host::connect(aeron_dir)?;
    let publication = Publication::add(&client, LARGE_MESSAGE_CHANNEL, PONG_STREAM)
        .setup("adding the pong publication")?;
    let mut subscription = Subscription::add(&client, LARGE_MESSAGE_CHANNEL, PING_STREAM)
        .setup("adding the ping subscription")?;
    aeron_host::await_connected(&client, &publication, &subscription)?;
    let mut pump = ClientPump::new();
    let mut done = false;
    let mut failure = None;
    let mut iterations = 0u32;
    while !done {
        subscription
            .poll(
                |bytes| {
                    if seq_of(bytes) == END {
                        done = true;
                    } else if let Err(e) = echo(&publication, bytes) {
                        failure = Some(e);
                        done = true;
                    }
                },
                1,
            )
            .measure("polling the ping stream")?;
        iterations = iterations.wrapping_add(1);
        if iterations % 4096 == 0 {
            pump.maybe_pump(&client, Instant::now())?;
            check_interrupted()?;
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Offers `bytes` until published. The media driver thread in the ping process moves the
/// publisher limit, so spinning here makes progress; the client is not pumped from inside
/// a poll handler.
fn echo(publication: &Publication, bytes: &[u8]) -> Result<(), BenchError> {
    let start = Instant::now();
    loop {
        let outcome = publication.offer(bytes).measure("offering the echo")?;
        if outcome.is_published() {
            return Ok(());
        }
        if !outcome.is_back_pressure() {
            return Err(BenchError::Measure("the ping went away".into()));
        }
        if start.elapsed() > pingpong::ECHO_TIMEOUT {
            return Err(BenchError::Measure("echo back-pressured for 5 s".into()));
        }
    }
}
