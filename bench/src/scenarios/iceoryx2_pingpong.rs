//! `iceoryx2-pingpong`: the second latency reference. iceoryx2 publish-subscribe
//! ping-pong between two processes (this one and `--role iceoryx2-pong`), one service per
//! direction, both sides busy-polling, each pinned to a core when there are two. The
//! services use the settings of iceoryx2's own publish-subscribe benchmark (one publisher,
//! one subscriber, no history, buffer of one, safe overflow). The ping copies its message
//! into a loaned sample and the pong copies what it receives into its reply, so each
//! direction moves the payload once, as with Aeron.
//!
//! iceoryx2 keeps its files under a root directory inside this scenario's scratch
//! directory, with a file prefix naming this process, so a run leaves nothing behind.

use std::path::Path;
use std::time::{Duration, Instant};

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

use crate::error::{BenchError, Context as _};
use crate::pingpong::{self, seq_of, PingTransport, END};
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::sys::{check_interrupted, core_pair, pin_current_thread, Scratch};

/// The `--role` of the pong process.
pub const PONG_ROLE: &str = "iceoryx2-pong";
/// Largest message (the publisher's slice length).
const MAX_SIZE: usize = 64 << 10;
/// How long the pong waits for the ping's services to appear.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

type Pub = Publisher<ipc::Service, [u8], ()>;
type Sub = Subscriber<ipc::Service, [u8], ()>;

/// The `iceoryx2-pingpong` scenario.
pub struct Iceoryx2PingPong;

impl Scenario for Iceoryx2PingPong {
    fn name(&self) -> &'static str {
        "iceoryx2-pingpong"
    }

    fn summary(&self) -> &'static str {
        "iceoryx2 publish-subscribe ping-pong of 64 B and 64 KiB between two processes (latency reference)"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        set_log_level(LogLevel::Error);
        let scratch = Scratch::new("iceoryx2")?;
        let root = scratch.join("iceoryx2");
        let parent = std::process::id();
        let config = config(&root, parent)?;
        let (ping_core, pong_core) = match core_pair() {
            Some((a, b)) => (Some(a), Some(b)),
            None => (None, None),
        };
        let warmup = ctx.scaled(0.3).min(Duration::from_secs(1));
        let window = ctx.duration;
        // Spawned from this thread, which outlives the pong (the pong dies with the thread
        // that spawned it); it waits for the services the ping thread creates.
        let mut pong =
            pingpong::spawn_pong(PONG_ROLE, &[("--iox-root", root.as_path())], pong_core)?;
        let result = std::thread::scope(|s| {
            s.spawn(|| -> Result<Vec<Figure>, BenchError> {
                if let Some(core) = ping_core {
                    pin_current_thread(core);
                }
                let node = node(&config)?;
                let ping_service = service(&node, parent, "ping", true)?;
                let pong_service = service(&node, parent, "pong", true)?;
                let publisher: Pub = ping_service
                    .publisher_builder()
                    .initial_max_slice_len(MAX_SIZE)
                    .max_loaned_samples(1)
                    .create()
                    .setup("creating the ping publisher")?;
                let subscriber: Sub = pong_service
                    .subscriber_builder()
                    .create()
                    .setup("creating the pong subscriber")?;
                let deadline = Instant::now() + OPEN_TIMEOUT;
                while ping_service.dynamic_config().number_of_subscribers() == 0
                    || pong_service.dynamic_config().number_of_publishers() == 0
                {
                    check_interrupted()?;
                    if Instant::now() >= deadline {
                        return Err(BenchError::Setup(format!(
                            "the iceoryx2 pong did not connect within {OPEN_TIMEOUT:?}"
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                let mut ping = IceoryxPing {
                    publisher,
                    subscriber,
                };
                let measured = pingpong::measure_all_sizes(&mut ping, warmup, window)?;
                Ok(pingpong::reference_figures(self.name(), &measured, ""))
            })
            .join()
            .map_err(|_| BenchError::Measure("the ping thread panicked".into()))?
        });
        if pong.wait_timeout(Duration::from_secs(2)).is_none() {
            pong.kill();
        }
        remove_shm_leftovers(parent);
        let figures = result?;
        Ok(figures
            .into_iter()
            .map(|f| {
                // Compare with raw Aeron when it ran earlier in this run (no target).
                let aeron = ctx.figure("aeron-pingpong", &f.name).cloned();
                match aeron {
                    Some(aeron) => f.against(Some(&aeron)),
                    None => f,
                }
            })
            .collect())
    }
}

/// An iceoryx2 configuration whose files live under `root`, prefixed by `parent`'s pid.
fn config(root: &Path, parent: u32) -> Result<Config, BenchError> {
    let mut config = Config::default();
    let mut root_bytes = root.as_os_str().as_encoded_bytes().to_vec();
    root_bytes.push(b'/');
    let root_path = iceoryx2::prelude::Path::new(&root_bytes)
        .setup(format!("iceoryx2 root path {}", root.display()))?;
    config.global.set_root_path(&root_path);
    config.global.prefix =
        FileName::new(prefix(parent).as_bytes()).setup("iceoryx2 file prefix")?;
    Ok(config)
}

/// The file prefix of a run started by `parent`.
fn prefix(parent: u32) -> String {
    format!("tpb{parent}_")
}

fn node(config: &Config) -> Result<Node<ipc::Service>, BenchError> {
    NodeBuilder::new()
        .config(config)
        // The harness handles SIGINT/SIGTERM itself.
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()
        .setup("creating an iceoryx2 node")
}

type Service =
    iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, [u8], ()>;

/// Creates (ping side) or opens (pong side) the service of one direction.
fn service(
    node: &Node<ipc::Service>,
    parent: u32,
    direction: &str,
    create: bool,
) -> Result<Service, BenchError> {
    let name = format!("tp-bench/{parent}/{direction}");
    let name: ServiceName = name
        .as_str()
        .try_into()
        .setup(format!("iceoryx2 service name {name}"))?;
    let builder = node.service_builder(&name).publish_subscribe::<[u8]>();
    if create {
        builder
            .max_publishers(1)
            .max_subscribers(1)
            .history_size(0)
            .subscriber_max_buffer_size(1)
            .subscriber_max_borrowed_samples(1)
            .enable_safe_overflow(true)
            .create()
            .setup(format!("creating iceoryx2 service {direction}"))
    } else {
        let deadline = Instant::now() + OPEN_TIMEOUT;
        loop {
            match node
                .service_builder(&name)
                .publish_subscribe::<[u8]>()
                .open()
            {
                Ok(service) => return Ok(service),
                Err(e) if Instant::now() >= deadline => {
                    return Err(BenchError::Setup(format!(
                        "opening iceoryx2 service {direction}: {e}"
                    )))
                }
                Err(_) => {
                    check_interrupted()?;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

/// Removes shared-memory files a killed process may have left with this run's prefix.
fn remove_shm_leftovers(parent: u32) {
    let prefix = prefix(parent);
    if let Ok(entries) = std::fs::read_dir("/dev/shm") {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The ping's ends of the two services.
struct IceoryxPing {
    publisher: Pub,
    subscriber: Sub,
}

impl PingTransport for IceoryxPing {
    fn send(&mut self, message: &[u8]) -> Result<(), BenchError> {
        match send_copy(&self.publisher, message)? {
            0 => Err(BenchError::Measure("the pong went away".into())),
            _ => Ok(()),
        }
    }

    fn poll_echo(&mut self, seq: u64, size: usize) -> Result<bool, BenchError> {
        match self.subscriber.receive().measure("receiving the echo")? {
            None => Ok(false),
            Some(sample) => {
                let payload = sample.payload();
                if seq_of(payload) == seq && payload.len() == size {
                    Ok(true)
                } else {
                    Err(BenchError::Measure(format!(
                        "expected echo {seq} of {size} bytes, got {} of {}",
                        seq_of(payload),
                        payload.len()
                    )))
                }
            }
        }
    }

    fn housekeeping(&mut self, _now: Instant) -> Result<(), BenchError> {
        Ok(())
    }
}

/// Loans a sample, copies `message` into it and sends it; returns how many subscribers
/// received it.
fn send_copy(publisher: &Pub, message: &[u8]) -> Result<usize, BenchError> {
    let sample = publisher
        .loan_slice_uninit(message.len())
        .measure("loaning a sample")?;
    sample
        .write_from_slice(message)
        .send()
        .measure("sending a sample")
}

/// The pong process: echoes every ping sample back until the END message (or
/// SIGINT/SIGTERM, or its parent's death).
pub fn run_pong(root: &Path, parent: u32) -> Result<(), BenchError> {
    set_log_level(LogLevel::Error);
    let config = config(root, parent)?;
    let node = node(&config)?;
    let ping_service = service(&node, parent, "ping", false)?;
    let pong_service = service(&node, parent, "pong", false)?;
    let subscriber: Sub = ping_service
        .subscriber_builder()
        .create()
        .setup("creating the ping subscriber")?;
    let publisher: Pub = pong_service
        .publisher_builder()
        .initial_max_slice_len(MAX_SIZE)
        .max_loaned_samples(1)
        .create()
        .setup("creating the pong publisher")?;
    let mut iterations = 0u32;
    loop {
        if let Some(sample) = subscriber.receive().measure("receiving a ping")? {
            let payload = sample.payload();
            if seq_of(payload) == END {
                return Ok(());
            }
            if send_copy(&publisher, payload)? == 0 {
                // The ping is gone (it stopped early); nothing left to answer.
                return Ok(());
            }
        }
        iterations = iterations.wrapping_add(1);
        if iterations % 4096 == 0 {
            check_interrupted()?;
        }
    }
}
