//! Harness shared by the driver, client and system integration tests (e.g.
//! `tests/driver_protocol.rs`, `tests/driver_process.rs`, `tests/producer.rs`,
//! `tests/consumer.rs`): a private directory per test, a driver configuration with short
//! timings and the matching client streams, the driver run on a thread of the test process
//! ([`InThreadDriver`]) or as the `tp-driver` binary ([`ProcessDriver`]), and a
//! control-plane client on the test thread ([`TestClient`]) that speaks SBE over a real
//! Aeron media driver.
//!
//! Every wait is bounded by a deadline and fails the test with a message saying what it
//! waited for; every thread and process a test starts is stopped when its handle drops.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tensorpool::client::ClientStreams;
use tensorpool::config::{DriverConfig, NoEnv};
use tensorpool::driver::runner::{run_until, RunError};
use tensorpool::protocol::control::{self, Bool, ConsumerHello, Mode};
use tensorpool::protocol::driver::{
    self, HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmDetachRequest, ShmDriverShutdownRequest, ShmLeaseKeepalive, ShutdownReason,
};
use tensorpool::protocol::MessageHeader;
use tensorpool::transport::{
    read_counters, AeronClient, BackoffIdle, EmbeddedMediaDriver, MediaDriverOptions, OfferOutcome,
    Publication, Subscription,
};

/// Failsafe for every wait on the control plane (each should finish far sooner).
pub const DEADLINE: Duration = Duration::from_secs(10);
/// Control channel of the test configuration: IPC with the smallest term Aeron allows.
pub const CHANNEL: &str = "aeron:ipc?term-length=64k";
/// Control stream id.
pub const CONTROL_STREAM: u32 = 1000;
/// Announce stream id when announces do not share the control stream.
pub const SEPARATE_ANNOUNCE_STREAM: u32 = 1001;
/// QoS stream id.
pub const QOS_STREAM: u32 = 1200;
/// Shared descriptor stream id of the clients.
pub const DESCRIPTOR_STREAM: u32 = 1100;
/// The statically configured stream.
pub const STATIC_STREAM: u32 = 10000;
/// Range of dynamically created streams (two ids, so tests can exhaust it).
pub const DYNAMIC_RANGE: (u32, u32) = (20000, 20001);
/// Range of per-consumer descriptor streams.
pub const DESCRIPTOR_RANGE: (u32, u32) = (31000, 31003);
/// Range of per-consumer control streams.
pub const CONTROL_RANGE: (u32, u32) = (32000, 32003);
/// Header ring slots of the test profile (every pool has as many slots).
pub const HEADER_NSLOTS: u32 = 8;
/// `(pool_id, stride_bytes)` of the test profile's payload pools.
pub const POOLS: [(u16, u32); 2] = [(1, 4096), (2, 65536)];
/// Keepalive interval of the test configuration.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(100);
/// Lease expiry of the test configuration (interval × grace 3).
pub const LEASE_EXPIRY: Duration = Duration::from_millis(300);
/// Announce period of the test configuration.
pub const ANNOUNCE_PERIOD: Duration = Duration::from_millis(200);
/// Shutdown drain period of the test configuration.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(300);
/// Shutdown token of the test configuration.
pub const TOKEN: &str = "tok";
/// How often the client renews the leases it keeps alive on its own.
const AUTO_KEEPALIVE_PERIOD: Duration = Duration::from_millis(40);
/// Prefixes of environment variables that override driver configuration or Aeron.
const OVERRIDE_PREFIXES: [&str; 4] = ["DRIVER_", "SHM_", "POLICIES_", "AERON_"];

/// Correlation ids unique across every client of the process, so clients sharing a
/// control stream never take each other's responses.
static NEXT_CORRELATION_ID: AtomicI64 = AtomicI64::new(1_000);

/// A fresh correlation id.
pub fn next_correlation_id() -> i64 {
    NEXT_CORRELATION_ID.fetch_add(1, Ordering::Relaxed)
}

pub mod hosts;

/// A test's private directory (under /dev/shm when possible) holding `aeron/` and `shm/`;
/// removed on drop.
pub struct TestEnv {
    dir: TempDir,
}

impl TestEnv {
    /// A new, empty environment.
    pub fn new() -> Self {
        let mut builder = tempfile::Builder::new();
        builder.prefix("tp-driver-test-");
        let dir = Path::new("/dev/shm")
            .is_dir()
            .then(|| builder.tempdir_in("/dev/shm").ok())
            .flatten()
            .unwrap_or_else(|| builder.tempdir().expect("creating a temporary directory"));
        std::fs::create_dir(dir.path().join("shm")).expect("creating the shm directory");
        Self { dir }
    }

    /// The environment's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Aeron directory of the media driver (created by Aeron).
    pub fn aeron_dir(&self) -> PathBuf {
        self.path().join("aeron")
    }

    /// SHM base directory of the driver.
    pub fn shm_dir(&self) -> PathBuf {
        self.path().join("shm")
    }

    /// Writes `text` to `name` in the environment and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

/// The streams of a client of the driver in `env`: every stream on [`CHANNEL`], announces
/// on `announce_stream_id` (as the driver's [`DriverSettings`] say), descriptors on
/// [`DESCRIPTOR_STREAM`], [`DEADLINE`] to connect.
pub fn client_streams(env: &TestEnv, announce_stream_id: u32) -> ClientStreams {
    ClientStreams {
        control_stream_id: CONTROL_STREAM,
        announce_stream_id,
        descriptor_stream_id: DESCRIPTOR_STREAM,
        qos_stream_id: QOS_STREAM,
        connect_timeout: DEADLINE,
        ..ClientStreams::on_channel(env.aeron_dir(), CHANNEL)
    }
}

/// What varies between test configurations.
#[derive(Debug, Clone)]
pub struct DriverSettings {
    /// `driver.instance_id`, which names the driver's Aeron counters.
    pub instance_id: String,
    /// `driver.announce_stream_id`: [`CONTROL_STREAM`] shares the control stream.
    pub announce_stream_id: u32,
    /// `policies.shutdown_token`.
    pub shutdown_token: String,
}

impl DriverSettings {
    /// Announces on the control stream (one stream keeps revokes and announces in order).
    pub fn shared_announce() -> Self {
        Self {
            instance_id: "tp-test".into(),
            announce_stream_id: CONTROL_STREAM,
            shutdown_token: TOKEN.into(),
        }
    }

    /// Announces on a stream of their own.
    pub fn separate_announce() -> Self {
        Self {
            announce_stream_id: SEPARATE_ANNOUNCE_STREAM,
            ..Self::shared_announce()
        }
    }

    /// The configuration file for `env`.
    pub fn toml(&self, env: &TestEnv) -> String {
        let range = |(a, b): (u32, u32)| format!("\"{a}-{b}\"");
        let pools: Vec<String> = POOLS
            .iter()
            .map(|(id, stride)| format!("{{ pool_id = {id}, stride_bytes = {stride} }}"))
            .collect();
        format!(
            r#"[driver]
instance_id = "{instance}"
media_driver = "embedded"
aeron_dir = "{aeron}"
control_channel = "{CHANNEL}"
control_stream_id = {CONTROL_STREAM}
announce_channel = "{CHANNEL}"
announce_stream_id = {announce}
qos_channel = "{CHANNEL}"
qos_stream_id = {QOS_STREAM}
stream_id_range = {dynamic}
descriptor_stream_id_range = {descriptor}
control_stream_id_range = {control}

[shm]
base_dir = "{shm}"
namespace = "test"

[policies]
allow_dynamic_streams = true
announce_period_ms = {announce_ms}
lease_keepalive_interval_ms = {keepalive_ms}
lease_expiry_grace_intervals = 3
prefault_shm = false
shutdown_timeout_ms = {shutdown_ms}
shutdown_token = "{token}"

[profiles.small]
header_nslots = {HEADER_NSLOTS}
payload_pools = [{pools}]

[streams.fixed]
stream_id = {STATIC_STREAM}
profile = "small"
"#,
            instance = self.instance_id,
            aeron = env.aeron_dir().display(),
            announce = self.announce_stream_id,
            dynamic = range(DYNAMIC_RANGE),
            descriptor = range(DESCRIPTOR_RANGE),
            control = range(CONTROL_RANGE),
            shm = env.shm_dir().display(),
            announce_ms = ANNOUNCE_PERIOD.as_millis(),
            keepalive_ms = KEEPALIVE_INTERVAL.as_millis(),
            shutdown_ms = SHUTDOWN_TIMEOUT.as_millis(),
            token = self.shutdown_token,
            pools = pools.join(", "),
        )
    }

    /// The parsed configuration for `env` (no environment overrides).
    pub fn config(&self, env: &TestEnv) -> DriverConfig {
        DriverConfig::from_toml_str(&self.toml(env), &NoEnv)
            .unwrap_or_else(|e| panic!("the test configuration is invalid: {e}"))
    }

    /// Label of one of the driver's Aeron counters.
    pub fn counter_label(&self, name: &str) -> String {
        format!("tp-driver[{}]: {name}", self.instance_id)
    }
}

/// Polls `probe` until it yields a value, panicking with `what` after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The value of the counter labelled `label` in the CnC file of `aeron_dir`, if present.
pub fn counter_value(aeron_dir: &Path, label: &str) -> Option<i64> {
    read_counters(aeron_dir)
        .ok()?
        .into_iter()
        .find(|c| c.label == label)
        .map(|c| c.value)
}

/// Waits until the counter labelled `label` satisfies `accept`; returns its value.
pub fn wait_for_counter(aeron_dir: &Path, label: &str, accept: impl Fn(i64) -> bool) -> i64 {
    let mut last = None;
    let deadline = Instant::now() + DEADLINE;
    loop {
        last = counter_value(aeron_dir, label).or(last);
        if let Some(value) = last.filter(|v| accept(*v)) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "counter {label:?} never reached the expected value (last seen {last:?})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A media driver owned and pumped by a thread of the test process (for external mode);
/// stopped and joined on drop.
pub struct MediaDriverThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MediaDriverThread {
    /// A media driver in `dir` with sparse term buffers, everything else default.
    pub fn start(dir: &Path) -> Self {
        Self::start_with(MediaDriverOptions {
            term_buffer_sparse_file: Some(true),
            ..MediaDriverOptions::in_dir(dir)
        })
    }

    /// A media driver started with `options`; waits until it runs.
    pub fn start_with(options: MediaDriverOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let (started, outcome) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let driver = match EmbeddedMediaDriver::start(&options) {
                Ok(driver) => {
                    let _ = started.send(Ok(()));
                    driver
                }
                Err(e) => {
                    let _ = started.send(Err(e.to_string()));
                    return;
                }
            };
            let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
            while !flag.load(Ordering::SeqCst) {
                let work = driver.do_work().expect("media driver duty cycle");
                idle.idle(work);
            }
        });
        match outcome.recv_timeout(DEADLINE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("starting the media driver: {e}"),
            Err(e) => panic!("the media driver did not start: {e}"),
        }
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for MediaDriverThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The SHM driver (embedded media driver, agent, counters) running `run_until` on a
/// thread of the test process. Dropping it stops it.
pub struct InThreadDriver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), RunError>>>,
    aeron_dir: PathBuf,
}

impl InThreadDriver {
    /// Starts a driver for `settings` in `env` and waits until a client can connect.
    pub fn start(env: &TestEnv, settings: &DriverSettings) -> Self {
        Self::start_with_config(env, settings.config(env))
    }

    /// Starts a driver with `config` (e.g. [`DriverSettings::config`] adjusted) and waits
    /// until a client can connect to the media driver in `env`.
    pub fn start_with_config(env: &TestEnv, config: DriverConfig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("tp-driver".into())
            .spawn(move || run_until(&config, &flag))
            .expect("spawning the driver thread");
        let mut driver = Self {
            stop,
            thread: Some(thread),
            aeron_dir: env.aeron_dir(),
        };
        driver.wait_ready();
        driver
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.join();
                panic!("the driver thread ended during start-up: {result:?}");
            }
            if self.aeron_dir.join("cnc.dat").exists()
                && AeronClient::connect(&self.aeron_dir, Duration::from_millis(200)).is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the in-thread driver did not start in {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The Aeron directory of its embedded media driver.
    pub fn aeron_dir(&self) -> &Path {
        &self.aeron_dir
    }

    /// Whether `run_until` has returned.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Asks the driver to stop (it sends `ShmDriverShutdown` first) without waiting for
    /// it; dropping the handle joins the thread.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Asks the driver to stop and returns what `run_until` returned.
    pub fn stop(mut self) -> Result<(), RunError> {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// Waits, without asking, for `run_until` to return (e.g. after a shutdown request).
    pub fn wait_exit(mut self, timeout: Duration) -> Result<(), RunError> {
        wait_until("run_until to return", timeout, || {
            self.is_finished().then_some(())
        });
        self.join()
    }

    fn join(&mut self) -> Result<(), RunError> {
        let thread = self
            .thread
            .take()
            .expect("the driver thread is joined once");
        let deadline = Instant::now() + DEADLINE;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "the driver thread did not stop in {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for InThreadDriver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + DEADLINE;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                eprintln!("the driver thread did not stop in {DEADLINE:?}; leaving it");
            }
        }
    }
}

/// A lease a client holds, as granted by an OK attach response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRef {
    /// Lease id.
    pub lease_id: u64,
    /// Stream id the driver granted.
    pub stream_id: u32,
    /// Client id the attach named.
    pub client_id: u32,
    /// Role the attach named.
    pub role: Role,
    /// Epoch at attach.
    pub epoch: u64,
}

/// One payload pool of an attach response or announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    /// Pool id.
    pub pool_id: u16,
    /// Slot count.
    pub nslots: u32,
    /// Slot stride.
    pub stride_bytes: u32,
    /// Region URI.
    pub region_uri: String,
}

/// A decoded `ShmAttachResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachReply {
    pub correlation_id: i64,
    pub code: ResponseCode,
    pub lease_id: Option<u64>,
    pub lease_expiry_ns: Option<u64>,
    pub stream_id: Option<u32>,
    pub epoch: Option<u64>,
    pub layout_version: Option<u32>,
    pub header_nslots: Option<u32>,
    pub header_slot_bytes: Option<u16>,
    pub node_id: Option<u32>,
    pub pools: Vec<PoolInfo>,
    pub header_region_uri: String,
    pub error_message: String,
}

impl AttachReply {
    /// Asserts the attach succeeded and returns its lease.
    pub fn expect_ok(&self, client_id: u32, role: Role) -> LeaseRef {
        assert_eq!(self.code, ResponseCode::Ok, "attach refused: {self:?}");
        LeaseRef {
            lease_id: self.lease_id.expect("OK response without leaseId"),
            stream_id: self.stream_id.expect("OK response without streamId"),
            client_id,
            role,
            epoch: self.epoch.expect("OK response without epoch"),
        }
    }

    /// Asserts the attach was refused with `code`; returns the error message.
    pub fn expect_refused(&self, code: ResponseCode) -> &str {
        assert_eq!(self.code, code, "unexpected attach response: {self:?}");
        &self.error_message
    }
}

/// A decoded `ShmDetachResponse`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachReply {
    pub correlation_id: i64,
    pub code: ResponseCode,
    pub error_message: String,
}

/// A decoded `ShmLeaseRevoked`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub lease_id: u64,
    pub stream_id: u32,
    pub client_id: u32,
    pub role: Role,
    pub reason: LeaseRevokeReason,
}

/// A decoded `ShmPoolAnnounce`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// `announceTimestampNs` (CLOCK_MONOTONIC, as `monotonic_now_ns`).
    pub timestamp_ns: u64,
    pub stream_id: u32,
    pub producer_id: u32,
    pub epoch: u64,
    pub layout_version: u32,
    pub header_nslots: u32,
    pub header_slot_bytes: u16,
    pub header_region_uri: String,
    pub pools: Vec<PoolInfo>,
}

/// A decoded `ConsumerConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfigInfo {
    pub stream_id: u32,
    pub consumer_id: u32,
    pub mode: Mode,
    pub descriptor_stream_id: u32,
    pub descriptor_channel: String,
    pub control_stream_id: u32,
    pub control_channel: String,
}

/// Everything the driver sends, decoded into owned values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedMessage {
    AttachResponse(AttachReply),
    DetachResponse(DetachReply),
    Revoked(Revoked),
    Announce(Announce),
    ConsumerConfig(ConsumerConfigInfo),
    Shutdown {
        reason: ShutdownReason,
        error_message: String,
    },
}

impl OwnedMessage {
    /// The announce, if this is one.
    pub fn as_announce(&self) -> Option<&Announce> {
        match self {
            Self::Announce(a) => Some(a),
            _ => None,
        }
    }

    /// The revoke notice, if this is one.
    pub fn as_revoked(&self) -> Option<&Revoked> {
        match self {
            Self::Revoked(r) => Some(r),
            _ => None,
        }
    }

    /// Whether this is a `ShmDriverShutdown`.
    pub fn is_shutdown(&self) -> bool {
        matches!(self, Self::Shutdown { .. })
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Decodes a driver output; requests (ours or other clients') and garbage give `None`.
pub fn decode(bytes: &[u8]) -> Option<OwnedMessage> {
    let header = MessageHeader::read(bytes).ok()?;
    match header.schema_id {
        driver::SCHEMA_ID => decode_driver(bytes),
        control::SCHEMA_ID => decode_control(bytes),
        _ => None,
    }
}

fn decode_driver(bytes: &[u8]) -> Option<OwnedMessage> {
    use driver::AnyMessage;
    Some(match AnyMessage::decode(bytes).ok()? {
        AnyMessage::ShmAttachResponse(r) => OwnedMessage::AttachResponse(AttachReply {
            correlation_id: r.correlation_id(),
            code: r.code(),
            lease_id: r.lease_id(),
            lease_expiry_ns: r.lease_expiry_timestamp_ns(),
            stream_id: r.stream_id(),
            epoch: r.epoch(),
            layout_version: r.layout_version(),
            header_nslots: r.header_nslots(),
            header_slot_bytes: r.header_slot_bytes(),
            node_id: r.node_id(),
            pools: r
                .payload_pools()
                .map(|p| PoolInfo {
                    pool_id: p.pool_id(),
                    nslots: p.pool_nslots(),
                    stride_bytes: p.stride_bytes(),
                    region_uri: text(p.region_uri()),
                })
                .collect(),
            header_region_uri: text(r.header_region_uri()),
            error_message: text(r.error_message()),
        }),
        AnyMessage::ShmDetachResponse(r) => OwnedMessage::DetachResponse(DetachReply {
            correlation_id: r.correlation_id(),
            code: r.code(),
            error_message: text(r.error_message()),
        }),
        AnyMessage::ShmLeaseRevoked(r) => OwnedMessage::Revoked(Revoked {
            lease_id: r.lease_id(),
            stream_id: r.stream_id(),
            client_id: r.client_id(),
            role: r.role(),
            reason: r.reason(),
        }),
        AnyMessage::ShmDriverShutdown(s) => OwnedMessage::Shutdown {
            reason: s.reason(),
            error_message: text(s.error_message()),
        },
        _ => return None,
    })
}

fn decode_control(bytes: &[u8]) -> Option<OwnedMessage> {
    use control::AnyMessage;
    Some(match AnyMessage::decode(bytes).ok()? {
        AnyMessage::ShmPoolAnnounce(a) => OwnedMessage::Announce(Announce {
            timestamp_ns: a.announce_timestamp_ns(),
            stream_id: a.stream_id(),
            producer_id: a.producer_id(),
            epoch: a.epoch(),
            layout_version: a.layout_version(),
            header_nslots: a.header_nslots(),
            header_slot_bytes: a.header_slot_bytes(),
            header_region_uri: text(a.header_region_uri()),
            pools: a
                .payload_pools()
                .map(|p| PoolInfo {
                    pool_id: p.pool_id(),
                    nslots: p.pool_nslots(),
                    stride_bytes: p.stride_bytes(),
                    region_uri: text(p.region_uri()),
                })
                .collect(),
        }),
        AnyMessage::ConsumerConfig(c) => OwnedMessage::ConsumerConfig(ConsumerConfigInfo {
            stream_id: c.stream_id(),
            consumer_id: c.consumer_id(),
            mode: c.mode(),
            descriptor_stream_id: c.descriptor_stream_id(),
            descriptor_channel: text(c.descriptor_channel()),
            control_stream_id: c.control_stream_id(),
            control_channel: text(c.control_channel()),
        }),
        _ => return None,
    })
}

/// An attach request with the usual defaults: no layout expectation, `REQUIRE_EXISTING`,
/// hugepages unspecified, no node id, a fresh correlation id.
pub fn attach_request(stream_id: u32, client_id: u32, role: Role) -> ShmAttachRequest {
    ShmAttachRequest {
        correlation_id: next_correlation_id(),
        stream_id,
        client_id,
        role,
        expected_layout_version: 0,
        publish_mode: Some(PublishMode::RequireExisting),
        require_hugepages: HugepagesPolicy::Unspecified,
        desired_node_id: None,
    }
}

/// A control-plane client on the test thread: one publication and one subscription on
/// the control stream (plus one on the announce stream when it is separate). Everything
/// the driver sends lands, decoded and in arrival order, in an inbox the helpers read.
/// Leases it attaches are kept alive on its own while it is pumped, unless disabled.
pub struct TestClient {
    // Field order is drop order: publications and subscriptions before their client.
    control_pub: Publication,
    control_sub: Subscription,
    announce_sub: Option<Subscription>,
    client: AeronClient,
    inbox: VecDeque<OwnedMessage>,
    kept_alive: Vec<LeaseRef>,
    auto_keepalive: bool,
    next_keepalive: Instant,
    buf: Vec<u8>,
}

impl TestClient {
    /// Connects to the media driver in `aeron_dir` and subscribes to the driver's streams.
    pub fn connect(aeron_dir: &Path, announce_stream_id: u32) -> Self {
        let client = AeronClient::connect(aeron_dir, DEADLINE)
            .unwrap_or_else(|e| panic!("connecting a test client to {}: {e}", aeron_dir.display()));
        let control_sub = Subscription::add(&client, CHANNEL, CONTROL_STREAM as i32)
            .expect("subscribing to the control stream");
        let announce_sub = (announce_stream_id != CONTROL_STREAM).then(|| {
            Subscription::add(&client, CHANNEL, announce_stream_id as i32)
                .expect("subscribing to the announce stream")
        });
        let control_pub = Publication::add(&client, CHANNEL, CONTROL_STREAM as i32)
            .expect("publishing on the control stream");
        Self {
            control_pub,
            control_sub,
            announce_sub,
            client,
            inbox: VecDeque::new(),
            kept_alive: Vec::new(),
            auto_keepalive: true,
            next_keepalive: Instant::now(),
            buf: vec![0; 4096],
        }
    }

    /// Connects for a driver configured with `settings`.
    pub fn for_settings(aeron_dir: &Path, settings: &DriverSettings) -> Self {
        Self::connect(aeron_dir, settings.announce_stream_id)
    }

    /// Whether leases from OK attaches are kept alive automatically (default on).
    pub fn set_auto_keepalive(&mut self, on: bool) {
        self.auto_keepalive = on;
    }

    /// Stops keeping `lease` alive.
    pub fn forget(&mut self, lease: &LeaseRef) {
        self.kept_alive.retain(|l| l.lease_id != lease.lease_id);
    }

    /// The Aeron client (for counters and the like).
    pub fn aeron(&self) -> &AeronClient {
        &self.client
    }

    /// Offers raw bytes on the control stream, retrying until they are in the log.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let deadline = Instant::now() + DEADLINE;
        let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
        loop {
            match self.control_pub.offer(bytes) {
                Ok(OfferOutcome::Published { .. }) => return,
                Ok(_) => {}
                Err(e) => panic!("offering on the control stream: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "the control stream had no subscriber (is the driver up?) for {DEADLINE:?}"
            );
            let work = self.receive();
            idle.idle(work);
        }
    }

    fn send_encoded(&mut self, encode: impl FnOnce(&mut [u8]) -> usize) {
        let mut buf = std::mem::take(&mut self.buf);
        let len = encode(&mut buf);
        self.send_raw(&buf[..len]);
        self.buf = buf;
    }

    /// Sends an attach request without waiting for the response.
    pub fn send_attach(&mut self, req: &ShmAttachRequest) {
        self.send_encoded(|buf| req.encode(buf).expect("encoding an attach request"));
    }

    /// Sends `req` and returns the response with its correlation id. An OK lease is kept
    /// alive from then on if automatic keepalives are on.
    pub fn attach(&mut self, req: &ShmAttachRequest) -> AttachReply {
        self.send_attach(req);
        let reply = self.attach_response(req.correlation_id);
        if reply.code == ResponseCode::Ok && self.auto_keepalive {
            self.kept_alive
                .push(reply.expect_ok(req.client_id, req.role));
        }
        reply
    }

    /// Attaches with the usual defaults and asserts OK.
    pub fn attach_ok(&mut self, stream_id: u32, client_id: u32, role: Role) -> LeaseRef {
        self.attach(&attach_request(stream_id, client_id, role))
            .expect_ok(client_id, role)
    }

    /// Waits for the attach response with `correlation_id`.
    pub fn attach_response(&mut self, correlation_id: i64) -> AttachReply {
        match self.wait_for(
            &format!("an attach response to {correlation_id}"),
            |m| matches!(m, OwnedMessage::AttachResponse(r) if r.correlation_id == correlation_id),
        ) {
            OwnedMessage::AttachResponse(reply) => reply,
            _ => unreachable!("wait_for returns a matching message"),
        }
    }

    /// Sends one keepalive for `lease`.
    pub fn keepalive(&mut self, lease: &LeaseRef) {
        let ka = ShmLeaseKeepalive {
            lease_id: lease.lease_id,
            stream_id: lease.stream_id,
            client_id: lease.client_id,
            role: lease.role,
            client_timestamp_ns: tensorpool::clock::monotonic_now_ns(),
        };
        self.send_encoded(|buf| ka.encode(buf).expect("encoding a keepalive"));
    }

    /// Detaches `lease` and returns the response; stops keeping it alive.
    pub fn detach(&mut self, lease: &LeaseRef) -> DetachReply {
        self.forget(lease);
        let req = ShmDetachRequest {
            correlation_id: next_correlation_id(),
            lease_id: lease.lease_id,
            stream_id: lease.stream_id,
            client_id: lease.client_id,
            role: lease.role,
        };
        self.send_encoded(|buf| req.encode(buf).expect("encoding a detach request"));
        let id = req.correlation_id;
        match self.wait_for(
            &format!("a detach response to {id}"),
            |m| matches!(m, OwnedMessage::DetachResponse(r) if r.correlation_id == id),
        ) {
            OwnedMessage::DetachResponse(reply) => reply,
            _ => unreachable!("wait_for returns a matching message"),
        }
    }

    /// Sends `ShmDriverShutdownRequest`.
    pub fn shutdown_request(&mut self, token: &str, reason: ShutdownReason, message: &str) {
        let req = ShmDriverShutdownRequest {
            correlation_id: next_correlation_id(),
            reason,
            token: token.as_bytes(),
            error_message: message.as_bytes(),
        };
        self.send_encoded(|buf| req.encode(buf).expect("encoding a shutdown request"));
    }

    /// Sends `ConsumerHello` for `consumer_id` on `stream_id` asking for the given
    /// per-consumer streams (empty channel / id 0 = not asked).
    pub fn consumer_hello(
        &mut self,
        stream_id: u32,
        consumer_id: u32,
        descriptor: (&str, u32),
        control: (&str, u32),
    ) {
        let hello = ConsumerHello {
            stream_id,
            consumer_id,
            supports_shm: Bool::True,
            supports_progress: Bool::False,
            mode: Mode::Stream,
            max_rate_hz: 0,
            expected_layout_version: 0,
            progress_interval_us: None,
            progress_bytes_delta: None,
            progress_major_delta_units: None,
            descriptor_stream_id: descriptor.1,
            control_stream_id: control.1,
            descriptor_channel: descriptor.0.as_bytes(),
            control_channel: control.0.as_bytes(),
        };
        self.send_encoded(|buf| hello.encode(buf).expect("encoding a consumer hello"));
    }

    /// Polls both subscriptions into the inbox and pumps the client; returns the work done.
    fn receive(&mut self) -> usize {
        let inbox = &mut self.inbox;
        let mut work = self
            .control_sub
            .poll(|bytes| inbox.extend(decode(bytes)), 64)
            .expect("polling the control stream");
        if let Some(sub) = &mut self.announce_sub {
            work += sub
                .poll(|bytes| inbox.extend(decode(bytes)), 64)
                .expect("polling the announce stream");
        }
        work + self.client.do_work().expect("pumping the test client")
    }

    /// One duty cycle: receive, then renew kept-alive leases when due.
    pub fn pump(&mut self) -> usize {
        let work = self.receive();
        if !self.kept_alive.is_empty() && Instant::now() >= self.next_keepalive {
            self.next_keepalive = Instant::now() + AUTO_KEEPALIVE_PERIOD;
            for lease in self.kept_alive.clone() {
                self.keepalive(&lease);
            }
        }
        work
    }

    /// Pumps for `duration`.
    pub fn pump_for(&mut self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
        while Instant::now() < until {
            let work = self.pump();
            idle.idle(work);
        }
    }

    /// Removes and returns the first message (inbox first) matching `pred`, panicking
    /// after [`DEADLINE`] with `what` and everything seen meanwhile.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&OwnedMessage) -> bool) -> OwnedMessage {
        self.wait_for_within(DEADLINE, pred)
            .unwrap_or_else(|seen| panic!("timed out waiting for {what}; saw {seen}"))
    }

    /// As [`TestClient::wait_for`] with a timeout; on timeout returns a description of
    /// the inbox.
    pub fn wait_for_within(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&OwnedMessage) -> bool,
    ) -> Result<OwnedMessage, String> {
        let deadline = Instant::now() + timeout;
        let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
        loop {
            if let Some(index) = self.inbox.iter().position(&pred) {
                return Ok(self.inbox.remove(index).expect("index from position"));
            }
            if Instant::now() >= deadline {
                return Err(describe(self.inbox.iter()));
            }
            let work = self.pump();
            idle.idle(work);
        }
    }

    /// Takes messages in arrival order up to and including the first one matching
    /// `pred`; later ones stay in the inbox. Panics after [`DEADLINE`].
    pub fn collect_until(
        &mut self,
        what: &str,
        pred: impl Fn(&OwnedMessage) -> bool,
    ) -> Vec<OwnedMessage> {
        let deadline = Instant::now() + DEADLINE;
        let mut taken = Vec::new();
        let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
        loop {
            while let Some(message) = self.inbox.pop_front() {
                let done = pred(&message);
                taken.push(message);
                if done {
                    return taken;
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; saw {}",
                describe(taken.iter())
            );
            let work = self.pump();
            idle.idle(work);
        }
    }

    /// Every message that arrives within `duration` (plus whatever was in the inbox).
    pub fn collect(&mut self, duration: Duration) -> Vec<OwnedMessage> {
        self.pump_for(duration);
        self.inbox.drain(..).collect()
    }

    /// Waits, pumping (so kept-alive leases stay alive), until the driver counter
    /// labelled `label` satisfies `accept`; returns its value.
    pub fn wait_for_counter(&mut self, label: &str, accept: impl Fn(i64) -> bool) -> i64 {
        let dir = self.client.dir().to_owned();
        let deadline = Instant::now() + DEADLINE;
        let mut last = None;
        loop {
            last = counter_value(&dir, label).or(last);
            if let Some(value) = last.filter(|v| accept(*v)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "counter {label:?} never reached the expected value (last seen {last:?})"
            );
            self.pump_for(Duration::from_millis(10));
        }
    }

    /// Drops everything received so far.
    pub fn clear(&mut self) {
        self.receive();
        self.inbox.clear();
    }
}

fn describe<'a>(messages: impl Iterator<Item = &'a OwnedMessage>) -> String {
    let mut out = String::from("[");
    for (i, m) in messages.enumerate() {
        let _ = write!(out, "{}\n  {m:?}", if i == 0 { "" } else { "," });
    }
    out.push_str("\n]");
    out
}

/// Output of a `tp-driver` run to completion.
#[derive(Debug)]
pub struct Finished {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

/// The path of example `name`, which `cargo test` builds beside the test binaries.
pub fn example_program(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let profile_dir = test_exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let exe = profile_dir.join("examples").join(name);
    assert!(
        exe.is_file(),
        "example {name} is built at {}",
        exe.display()
    );
    exe
}

/// The `tp-driver` binary: Cargo's path for this package's tests; for tests of another
/// workspace member that include this file (ffi/tests), the one built into the same
/// target directory as the test executable (`target/<profile>/tp-driver`).
pub fn tp_driver_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_tp-driver") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/tp-driver
    exe.parent()
        .and_then(Path::parent)
        .map(|profile_dir| profile_dir.join("tp-driver"))
        .expect("the test executable lies in target/<profile>/deps")
}

/// A driver process (the `tp-driver` binary, or an `aeronmd` hosting the plugin) running
/// as a child process, stdout and stderr going to files in the test's environment.
/// Dropping it kills it (SIGKILL, by pid) if it still runs.
pub struct ProcessDriver {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    started: Instant,
    /// What its stderr says once it serves clients.
    ready_line: &'static str,
}

impl ProcessDriver {
    /// Starts `tp-driver` with `args` and extra environment variables; `label` names its
    /// output files. Configuration overrides inherited from the test's own environment
    /// are removed first so only `envs` apply.
    pub fn spawn(env: &TestEnv, label: &str, args: &[&str], envs: &[(&str, &str)]) -> Self {
        let program = tp_driver_binary();
        Self::spawn_program(&program, "tp-driver running", env, label, args, envs)
    }

    /// Starts `program` as [`ProcessDriver::spawn`] starts `tp-driver`; it is serving once
    /// its stderr contains `ready_line`.
    pub fn spawn_program(
        program: &Path,
        ready_line: &'static str,
        env: &TestEnv,
        label: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        Self::spawn_program_without(program, ready_line, env, label, args, envs, &[])
    }

    /// [`Self::spawn_program`] with the variables `removed` taken out of its environment
    /// (e.g. `USER`, to run as a shell without it would).
    pub fn spawn_program_without(
        program: &Path,
        ready_line: &'static str,
        env: &TestEnv,
        label: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        removed: &[&str],
    ) -> Self {
        let stdout = env.path().join(format!("{label}.stdout"));
        let stderr = env.path().join(format!("{label}.stderr"));
        let file = |path: &Path| {
            std::fs::File::create(path)
                .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for (name, _) in std::env::vars() {
            if OVERRIDE_PREFIXES.iter().any(|p| name.starts_with(p)) {
                command.env_remove(name);
            }
        }
        for name in removed {
            command.env_remove(name);
        }
        command.envs(envs.iter().copied());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        Self {
            child,
            stdout,
            stderr,
            started: Instant::now(),
            ready_line,
        }
    }

    /// Starts `tp-driver --config <config>` with extra environment variables.
    pub fn start(env: &TestEnv, label: &str, config: &Path, envs: &[(&str, &str)]) -> Self {
        let config = config.to_str().expect("a UTF-8 config path");
        Self::spawn(env, label, &["--config", config], envs)
    }

    /// Runs `tp-driver` with `args` to completion (killed after `timeout`).
    pub fn run(
        env: &TestEnv,
        label: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        timeout: Duration,
    ) -> Finished {
        let mut process = Self::spawn(env, label, args, envs);
        let status = process.wait(timeout).unwrap_or_else(|| {
            panic!(
                "tp-driver {args:?} still ran after {timeout:?}; stderr:\n{}",
                process.stderr()
            )
        });
        Finished {
            status,
            stdout: process.stdout(),
            stderr: process.stderr(),
            elapsed: process.started.elapsed(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until it logs that it is serving, panicking (with its stderr) if it exits
    /// or takes longer than `timeout`.
    pub fn wait_running(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr().contains(self.ready_line) {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("polling tp-driver") {
                panic!(
                    "tp-driver exited with {status} during start-up; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "tp-driver did not start in {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the process (by pid).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal)
            .unwrap_or_else(|e| panic!("sending {signal} to tp-driver {pid}: {e}"));
    }

    /// SIGKILL, then reaps it.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(nix::sys::signal::Signal::SIGKILL);
        }
        self.wait(DEADLINE).expect("tp-driver survived SIGKILL");
    }

    /// Waits up to `timeout` for it to exit, panicking with its stderr if it does not.
    pub fn expect_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.wait(timeout).unwrap_or_else(|| {
            panic!(
                "the driver process still ran after {timeout:?}; stderr:\n{}",
                self.stderr()
            )
        })
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling tp-driver") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ProcessDriver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's pid only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
