//! Helpers of the client system tests (`tests/system_frames.rs`, `tests/torn_read_stress.rs`,
//! `tests/client_faults.rs`, `tests/no_alloc_producer.rs`): frames that carry a checksum of
//! themselves, a producer and a consumer role that run as child processes of the test
//! binary (re-executed with `TP_ROLE` set, see [`run_role_from_env`]) and report what they
//! see as JSON lines in a file, and a guard that kills such a child by pid when dropped.
//!
//! Include it next to `support/mod.rs`:
//!
//! ```ignore
//! #[path = "support/mod.rs"]
//! mod support;
//! #[path = "support/system.rs"]
//! mod system;
//! ```

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tensorpool::client::consumer::{
    Consumer, ConsumerConfig, ConsumerCounters, ConsumerEvent, DropReason, Frame, FramePoll,
};
use tensorpool::client::producer::{
    monotonic_now_ns, Producer, ProducerConfig, ProducerEvent, PublishError,
};
use tensorpool::client::tensor::bytes_header;
use tensorpool::client::ClientStreams;
use tensorpool::protocol::control::{Dtype, TensorHeader};
use tensorpool::transport::BackoffIdle;

use crate::support::{ProcessDriver, TestEnv, CHANNEL, CONTROL_STREAM};

/// The summary an example (Rust, C, C++ or Java) prints last: its final stdout line, as
/// JSON; panics with its output when there is none.
pub fn summary(process: &ProcessDriver) -> JsonLine {
    let stdout = process.stdout();
    stdout
        .lines()
        .last()
        .and_then(JsonLine::parse)
        .unwrap_or_else(|| panic!("no JSON line in {stdout:?}; stderr:\n{}", process.stderr()))
}

// ---------------------------------------------------------------------------------------
// Self-checking frames
// ---------------------------------------------------------------------------------------

/// Frame sizes cycling from 0 B to 64 KiB over both pools of the test profile (strides 4096
/// and 65536), edges included: frame `seq` is `MIXED_SIZES[seq % len]` bytes long.
pub const MIXED_SIZES: [usize; 16] = [
    0, 1, 15, 16, 17, 100, 1000, 4095, 4096, 4097, 8000, 16384, 30000, 50000, 61440, 65536,
];

/// Small frames (256 B to 4 KiB, the small pool only) for the torn-read stress test.
pub const SMALL_SIZES: [usize; 8] = [256, 4096, 512, 3000, 1024, 2048, 264, 4000];

/// Frames shorter than this carry the `(seq + i) mod 251` pattern instead of a checksum.
const MIN_CHECKSUMMED_LEN: usize = 16;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The length of frame `seq` in the schedule `sizes`.
pub fn frame_len(sizes: &[usize], seq: u64) -> usize {
    sizes[(seq % sizes.len() as u64) as usize]
}

/// FNV-1a over 8-byte little-endian words, then over the trailing bytes one by one:
/// sensitive to any mix of two frames' bytes, and cheap enough in a debug build.
pub fn checksum(bytes: &[u8]) -> u64 {
    // SAFETY: every bit pattern is a valid `u64`; `align_to` only reinterprets.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    let mut hash = FNV_OFFSET;
    if head.is_empty() && cfg!(target_endian = "little") {
        // Fast path (payload slots are aligned): the same words, read in place.
        for word in words {
            hash = (hash ^ *word).wrapping_mul(FNV_PRIME);
        }
        for byte in tail {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
        }
        return hash;
    }
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash ^ u64::from_le_bytes(word)).wrapping_mul(FNV_PRIME);
    }
    for byte in chunks.remainder() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Content word `k` of the frame whose mixed sequence is `base`: differs between frames
/// in every word.
fn content_word(base: u64, k: usize) -> u64 {
    base ^ (k as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03)
}

/// Writes frame `seq` into `buf` (all of it): 16 bytes and more carry `seq` (8 bytes LE),
/// content derived from `seq`, and the [`checksum`] of everything before it in the last 8
/// bytes; shorter frames carry byte `i` = `(seq + i) mod 251`.
pub fn fill(buf: &mut [u8], seq: u64) {
    let len = buf.len();
    if len < MIN_CHECKSUMMED_LEN {
        for (i, byte) in buf.iter_mut().enumerate() {
            *byte = ((seq + i as u64) % 251) as u8;
        }
        return;
    }
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let base = seq.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let body = &mut buf[8..len - 8];
    // SAFETY: every bit pattern is a valid `u64`; `align_to_mut` only reinterprets.
    let (head, words, tail) = unsafe { body.align_to_mut::<u64>() };
    if head.is_empty() && cfg!(target_endian = "little") {
        for (k, word) in words.iter_mut().enumerate() {
            *word = content_word(base, k);
        }
        let last = content_word(base, words.len()).to_le_bytes();
        tail.copy_from_slice(&last[..tail.len()]);
    } else {
        for (k, chunk) in body.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&content_word(base, k).to_le_bytes()[..chunk.len()]);
        }
    }
    let sum = checksum(&buf[..len - 8]);
    buf[len - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Whether `payload` is exactly what [`fill`] writes for frame `seq` (checksum, embedded
/// sequence, or pattern).
pub fn verify(payload: &[u8], seq: u64) -> bool {
    let len = payload.len();
    if len < MIN_CHECKSUMMED_LEN {
        return payload
            .iter()
            .enumerate()
            .all(|(i, byte)| *byte == ((seq + i as u64) % 251) as u8);
    }
    let mut word = [0u8; 8];
    word.copy_from_slice(&payload[..8]);
    if u64::from_le_bytes(word) != seq {
        return false;
    }
    word.copy_from_slice(&payload[len - 8..]);
    u64::from_le_bytes(word) == checksum(&payload[..len - 8])
}

/// Whether an accepted frame is frame `seq` of the schedule `sizes`, intact: length from
/// the schedule, a one-dimensional UINT8 tensor of that length, and [`verify`].
pub fn frame_is_intact(frame: &Frame<'_>, sizes: &[usize]) -> bool {
    let payload = frame.payload();
    let tensor = frame.tensor();
    payload.len() == frame_len(sizes, frame.seq())
        && tensor.dtype == Dtype::Uint8
        && tensor.ndims == 1
        && usize::try_from(tensor.dims[0]).ok() == Some(payload.len())
        && verify(payload, frame.seq())
}

/// One tensor header per size of `sizes` (`bytes_header(len)`), in schedule order.
pub fn tensors_for(sizes: &[usize]) -> Vec<TensorHeader> {
    sizes
        .iter()
        .map(|len| bytes_header(*len).expect("a valid UINT8 tensor"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// JSON lines
// ---------------------------------------------------------------------------------------

/// A value of a flat JSON object.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    /// A number.
    Number(f64),
    /// A string (no escapes besides `\"` and `\\` are produced or understood).
    Text(String),
    /// A boolean.
    Bool(bool),
}

/// One flat JSON object: `{"key": number | "string" | bool, ...}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JsonLine {
    fields: BTreeMap<String, JsonValue>,
}

impl JsonLine {
    /// Parses one line; `None` if it is not a flat JSON object.
    pub fn parse(line: &str) -> Option<Self> {
        let body = line.trim().strip_prefix('{')?.strip_suffix('}')?;
        let mut fields = BTreeMap::new();
        let mut rest = body.trim_start();
        while !rest.is_empty() {
            let (key, after) = parse_string(rest)?;
            let after = after.trim_start().strip_prefix(':')?.trim_start();
            let (value, after) = if after.starts_with('"') {
                let (text, after) = parse_string(after)?;
                (JsonValue::Text(text), after)
            } else {
                let end = after.find([',', '}']).unwrap_or(after.len());
                let token = after[..end].trim();
                let value = match token {
                    "true" => JsonValue::Bool(true),
                    "false" => JsonValue::Bool(false),
                    _ => JsonValue::Number(token.parse().ok()?),
                };
                (value, &after[end..])
            };
            fields.insert(key, value);
            rest = after.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
        Some(Self { fields })
    }

    /// The `event` field.
    pub fn event(&self) -> &str {
        self.text("event").unwrap_or("")
    }

    /// A string field.
    pub fn text(&self, key: &str) -> Option<&str> {
        match self.fields.get(key) {
            Some(JsonValue::Text(t)) => Some(t),
            _ => None,
        }
    }

    /// A numeric field as an integer (panics, naming the line, if absent).
    pub fn u64(&self, key: &str) -> u64 {
        match self.fields.get(key) {
            Some(JsonValue::Number(n)) if *n >= 0.0 => *n as u64,
            _ => panic!("no unsigned field {key:?} in {self}"),
        }
    }

    /// A boolean field, if present.
    pub fn flag(&self, key: &str) -> Option<bool> {
        match self.fields.get(key) {
            Some(JsonValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A numeric field as an integer, if present.
    pub fn get_u64(&self, key: &str) -> Option<u64> {
        match self.fields.get(key) {
            Some(JsonValue::Number(n)) if *n >= 0.0 => Some(*n as u64),
            _ => None,
        }
    }
}

impl std::fmt::Display for JsonLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "\"{key}\":")?;
            match value {
                JsonValue::Number(n) => write!(f, "{n}")?,
                JsonValue::Text(t) => write!(f, "\"{}\"", escape(t))?,
                JsonValue::Bool(b) => write!(f, "{b}")?,
            }
        }
        f.write_str("}")
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn parse_string(input: &str) -> Option<(String, &str)> {
    let mut chars = input.strip_prefix('"')?.char_indices();
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &input[i + 2..])),
            '\\' => out.push(chars.next()?.1),
            c => out.push(c),
        }
    }
    None
}

/// Builds one JSON line: `json!("event", [("key", value), ...])` style, by hand.
#[derive(Debug, Default)]
pub struct JsonWriter {
    line: String,
}

impl JsonWriter {
    /// A line whose `event` field is `event`.
    pub fn event(event: &str) -> Self {
        let mut writer = Self {
            line: String::from("{"),
        };
        writer.push_text("event", event);
        writer
    }

    fn sep(&mut self) {
        if self.line.len() > 1 {
            self.line.push(',');
        }
    }

    /// Adds a number.
    pub fn num(mut self, key: &str, value: u64) -> Self {
        self.sep();
        let _ = write!(self.line, "\"{key}\":{value}");
        self
    }

    /// Adds a string.
    pub fn text(mut self, key: &str, value: &str) -> Self {
        self.push_text(key, value);
        self
    }

    fn push_text(&mut self, key: &str, value: &str) {
        self.sep();
        let _ = write!(self.line, "\"{key}\":\"{}\"", escape(value));
    }

    /// The finished line.
    pub fn finish(mut self) -> String {
        self.line.push('}');
        self.line
    }
}

/// Adds every consumer counter the reconciliation needs to `w`.
fn consumer_counters_json(mut w: JsonWriter, c: &ConsumerCounters) -> JsonWriter {
    w = w
        .num("descriptors_received", c.descriptors_received)
        .num("frames_delivered", c.frames_delivered)
        .num("frame_drops", c.frame_drops())
        .num("drops_gap", c.drops_gap)
        .num("resyncs", c.resyncs)
        .num("attaches", c.attaches)
        .num("epoch_changes", c.epoch_changes)
        .num("remaps", c.remaps)
        .num("map_failures", c.map_failures)
        .num("reconnects", c.reconnects)
        .num("protocol_errors", c.protocol_errors);
    for reason in DropReason::ALL {
        w = w.num(&format!("drops_{}", drop_name(reason)), c.drops(reason));
    }
    w
}

/// Snake-case name of a drop reason (as in the counter field names).
pub fn drop_name(reason: DropReason) -> &'static str {
    match reason {
        DropReason::Unmapped => "unmapped",
        DropReason::AwaitingEpoch => "awaiting_epoch",
        DropReason::Epoch => "epoch",
        DropReason::Duplicate => "duplicate",
        DropReason::Resync => "resync",
        DropReason::NotCommitted => "not_committed",
        DropReason::Stale => "stale",
        DropReason::Late => "late",
        DropReason::HeaderFormat => "header_format",
        DropReason::PayloadSlot => "payload_slot",
        DropReason::Pool => "pool",
        DropReason::Length => "length",
        DropReason::PayloadOffset => "payload_offset",
        DropReason::Tensor => "tensor",
        DropReason::Fallback => "fallback",
        DropReason::SeqRegression => "seq_regression",
    }
}

// ---------------------------------------------------------------------------------------
// Roles run as child processes
// ---------------------------------------------------------------------------------------

/// Environment variable naming the role of a re-executed test binary.
pub const ROLE_ENV: &str = "TP_ROLE";
/// Name of the `#[test]` every including test file defines to run a role:
///
/// ```ignore
/// #[test]
/// #[ignore = "a child process role, started by the other tests"]
/// fn child_role() {
///     system::run_role_from_env();
/// }
/// ```
pub const ROLE_TEST_NAME: &str = "child_role";
/// Longest park of an idle role's duty cycle: short, so an 8-slot ring is read before it
/// wraps.
const IDLE_MAX_PARK: Duration = Duration::from_micros(100);
/// Prefixes of inherited variables removed from a child's environment (driver
/// configuration overrides, Aeron settings, our own role settings).
const SCRUBBED_PREFIXES: [&str; 5] = ["DRIVER_", "SHM_", "POLICIES_", "AERON_", "TP_ROLE"];

/// Which client a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Publishes self-checking frames.
    Producer,
    /// Reads and verifies frames.
    Consumer,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

/// What a role child does; passed through `TP_ROLE_*` environment variables.
#[derive(Debug, Clone)]
pub struct RoleSpec {
    /// Producer or consumer.
    pub role: Role,
    /// Aeron directory of the driver's media driver.
    pub aeron_dir: PathBuf,
    /// SHM base directory the granted regions must lie in.
    pub shm_dir: PathBuf,
    /// Where the child writes its JSON lines.
    pub out: PathBuf,
    /// The child finishes (consumers drain first) once this file exists.
    pub stop_file: PathBuf,
    /// A producer publishes only once this file exists (`None`: at once).
    pub go_file: Option<PathBuf>,
    /// Frames to publish (producer; 0 = until stopped).
    pub frames: u64,
    /// Frames per second (producer; 0 = as fast as possible).
    pub rate: u64,
    /// Frame size schedule: `"mixed"` ([`MIXED_SIZES`]) or `"small"` ([`SMALL_SIZES`]).
    pub sizes: &'static str,
    /// Lease keepalive interval (the driver's `lease_keepalive_interval_ms`).
    pub keepalive: Duration,
    /// The driver's announce period.
    pub announce_period: Duration,
    /// Shared descriptor channel.
    pub descriptor_channel: String,
    /// Status line period.
    pub status_period: Duration,
    /// The child gives up (and exits) after this long.
    pub lifetime: Duration,
    /// Extra environment for the child (e.g. `AERON_DRIVER_TIMEOUT`).
    pub extra_env: Vec<(String, String)>,
}

impl RoleSpec {
    /// A role in `env` with the test profile's timings; its files are named after `name`.
    pub fn new(role: Role, env: &TestEnv, name: &str) -> Self {
        Self {
            role,
            aeron_dir: env.aeron_dir(),
            shm_dir: env.shm_dir(),
            out: env.path().join(format!("{name}.jsonl")),
            stop_file: env.path().join(format!("{name}.stop")),
            go_file: None,
            frames: 0,
            rate: 0,
            sizes: "mixed",
            keepalive: crate::support::KEEPALIVE_INTERVAL,
            announce_period: crate::support::ANNOUNCE_PERIOD,
            descriptor_channel: "aeron:ipc?term-length=1m".into(),
            status_period: Duration::from_millis(100),
            lifetime: Duration::from_secs(60),
            extra_env: Vec::new(),
        }
    }

    fn to_env(&self) -> Vec<(String, String)> {
        let path = |p: &Path| p.to_str().expect("UTF-8 test paths").to_string();
        let mut vars = vec![
            (ROLE_ENV.to_string(), self.role.name().to_string()),
            ("TP_ROLE_AERON_DIR".into(), path(&self.aeron_dir)),
            ("TP_ROLE_SHM_DIR".into(), path(&self.shm_dir)),
            ("TP_ROLE_OUT".into(), path(&self.out)),
            ("TP_ROLE_STOP".into(), path(&self.stop_file)),
            ("TP_ROLE_FRAMES".into(), self.frames.to_string()),
            ("TP_ROLE_RATE".into(), self.rate.to_string()),
            ("TP_ROLE_SIZES".into(), self.sizes.to_string()),
            (
                "TP_ROLE_KEEPALIVE_MS".into(),
                self.keepalive.as_millis().to_string(),
            ),
            (
                "TP_ROLE_ANNOUNCE_MS".into(),
                self.announce_period.as_millis().to_string(),
            ),
            (
                "TP_ROLE_DESCRIPTOR_CHANNEL".into(),
                self.descriptor_channel.clone(),
            ),
            (
                "TP_ROLE_STATUS_MS".into(),
                self.status_period.as_millis().to_string(),
            ),
            (
                "TP_ROLE_LIFETIME_MS".into(),
                self.lifetime.as_millis().to_string(),
            ),
        ];
        if let Some(go) = &self.go_file {
            vars.push(("TP_ROLE_GO".into(), path(go)));
        }
        vars.extend(self.extra_env.iter().cloned());
        vars
    }

    fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok();
        let role = match var(ROLE_ENV)?.as_str() {
            "producer" => Role::Producer,
            "consumer" => Role::Consumer,
            other => panic!("unknown {ROLE_ENV}={other}"),
        };
        let must = |name: &str| var(name).unwrap_or_else(|| panic!("{name} is not set"));
        let num =
            |name: &str| -> u64 { must(name).parse().unwrap_or_else(|e| panic!("{name}: {e}")) };
        Some(Self {
            role,
            aeron_dir: must("TP_ROLE_AERON_DIR").into(),
            shm_dir: must("TP_ROLE_SHM_DIR").into(),
            out: must("TP_ROLE_OUT").into(),
            stop_file: must("TP_ROLE_STOP").into(),
            go_file: var("TP_ROLE_GO").map(PathBuf::from),
            frames: num("TP_ROLE_FRAMES"),
            rate: num("TP_ROLE_RATE"),
            sizes: match must("TP_ROLE_SIZES").as_str() {
                "mixed" => "mixed",
                "small" => "small",
                other => panic!("unknown size schedule {other}"),
            },
            keepalive: Duration::from_millis(num("TP_ROLE_KEEPALIVE_MS")),
            announce_period: Duration::from_millis(num("TP_ROLE_ANNOUNCE_MS")),
            descriptor_channel: must("TP_ROLE_DESCRIPTOR_CHANNEL"),
            status_period: Duration::from_millis(num("TP_ROLE_STATUS_MS")),
            lifetime: Duration::from_millis(num("TP_ROLE_LIFETIME_MS")),
            extra_env: Vec::new(),
        })
    }

    fn size_schedule(&self) -> &'static [usize] {
        match self.sizes {
            "small" => &SMALL_SIZES,
            _ => &MIXED_SIZES,
        }
    }

    /// The streams of the test configuration (`support::DriverSettings::shared_announce`).
    pub fn streams(&self) -> ClientStreams {
        ClientStreams {
            control_stream_id: CONTROL_STREAM,
            announce_stream_id: CONTROL_STREAM,
            descriptor_channel: self.descriptor_channel.clone(),
            descriptor_stream_id: 1100,
            qos_stream_id: 1200,
            connect_timeout: Duration::from_millis(500),
            ..ClientStreams::on_channel(&self.aeron_dir, CHANNEL)
        }
    }
}

/// Runs the role named by `TP_ROLE`, if set (the child side); returns at once otherwise.
pub fn run_role_from_env() {
    let Some(spec) = RoleSpec::from_env() else {
        return;
    };
    // Die with the test process, whatever happens to it.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let mut out = LineOut::create(&spec.out);
    match spec.role {
        Role::Producer => run_producer(&spec, &mut out),
        Role::Consumer => run_consumer(&spec, &mut out),
    }
}

/// The JSON lines a child writes, flushed line by line.
struct LineOut {
    file: std::fs::File,
    /// The last error reported, when, and how often it recurred since.
    last_error: Option<(String, Instant, u64)>,
}

impl LineOut {
    fn create(path: &Path) -> Self {
        let file = std::fs::File::create(path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self {
            file,
            last_error: None,
        }
    }

    fn emit(&mut self, line: String) {
        let _ = writeln!(self.file, "{line}");
        let _ = self.file.flush();
    }

    /// Reports an error line; a recurring error at most once a second (with a count).
    fn error(&mut self, what: String) {
        if let Some((last, at, repeats)) = &mut self.last_error {
            if *last == what && at.elapsed() < Duration::from_secs(1) {
                *repeats += 1;
                return;
            }
        }
        let repeats = self.last_error.as_ref().map_or(0, |(_, _, n)| *n);
        self.emit(
            JsonWriter::event("error")
                .text("what", &what)
                .num("repeats_before", repeats)
                .finish(),
        );
        self.last_error = Some((what, Instant::now(), 0));
    }
}

/// Checks the stop file at most every 10 ms (one `stat` per check).
struct StopCheck {
    path: PathBuf,
    next: Instant,
    stopped: bool,
}

impl StopCheck {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            next: Instant::now(),
            stopped: false,
        }
    }

    fn stopped(&mut self) -> bool {
        if !self.stopped && Instant::now() >= self.next {
            self.stopped = self.path.exists();
            self.next = Instant::now() + Duration::from_millis(10);
        }
        self.stopped
    }
}

fn run_producer(spec: &RoleSpec, out: &mut LineOut) {
    let sizes = spec.size_schedule();
    let tensors = tensors_for(sizes);
    let deadline = Instant::now() + spec.lifetime;
    let config = ProducerConfig::new(crate::support::STATIC_STREAM)
        .streams(spec.streams())
        .allowed_base_dirs([spec.shm_dir.clone()])
        .keepalive_interval(spec.keepalive)
        .attach_timeout(Duration::from_millis(500))
        .qos_interval(Duration::from_millis(200));
    let mut producer = loop {
        match Producer::new(config.clone()) {
            Ok(p) => break p,
            Err(e) if Instant::now() >= deadline => {
                out.emit(
                    JsonWriter::event("error")
                        .text("what", &format!("connect: {e}"))
                        .finish(),
                );
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    out.emit(
        JsonWriter::event("connected")
            .num("client_id", u64::from(producer.client_id()))
            .num("pid", u64::from(std::process::id()))
            .finish(),
    );
    let mut stop = StopCheck::new(&spec.stop_file);
    let mut go = spec.go_file.is_none();
    let mut next_go_check = Instant::now();
    let period = (spec.rate > 0).then(|| Duration::from_secs_f64(1.0 / spec.rate as f64));
    let mut next_due = Instant::now();
    let mut next_status = Instant::now();
    let mut published = 0u64;
    let mut refused_not_attached = 0u64;
    let mut reported_refusal = false;
    let mut done = false;
    let mut idle = BackoffIdle::with_max_park(IDLE_MAX_PARK);
    while !stop.stopped() && Instant::now() < deadline {
        let mut work = match producer.do_work(monotonic_now_ns()) {
            Ok(work) => work,
            Err(e) => {
                out.error(format!("duty cycle: {e}"));
                1
            }
        };
        while let Some(event) = producer.poll_event() {
            out.emit(producer_event_json(&event, &producer));
            if producer.is_attached() {
                reported_refusal = false;
            }
        }
        let now = Instant::now();
        if now >= next_status {
            next_status = now + spec.status_period;
            out.emit(producer_status(&producer, published, "status").finish());
        }
        if !go {
            if now >= next_go_check {
                next_go_check = now + Duration::from_millis(5);
                go = spec.go_file.as_ref().is_some_and(|p| p.exists());
            }
            idle.idle(work);
            continue;
        }
        if done {
            idle.idle(work);
            continue;
        }
        // Publish a burst (all that is due), then run the duty cycle again.
        for _ in 0..64 {
            if let Some(period) = period {
                let now = Instant::now();
                if now < next_due {
                    break;
                }
                next_due += period;
                if now.saturating_duration_since(next_due) > Duration::from_millis(100) {
                    next_due = now;
                }
            }
            let Some(seq) = producer.next_seq() else {
                // Not attached: try anyway so the refusal is observed and reported.
                match producer.claim(0) {
                    Err(PublishError::NotAttached) => {
                        refused_not_attached += 1;
                        if !reported_refusal {
                            reported_refusal = true;
                            out.emit(
                                JsonWriter::event("publish_refused")
                                    .text("error", "NotAttached")
                                    .num("published", published)
                                    .finish(),
                            );
                        }
                    }
                    other => panic!("claim while detached: {other:?}"),
                }
                break;
            };
            let len = frame_len(sizes, seq);
            let tensor = &tensors[(seq % sizes.len() as u64) as usize];
            let mut claim = match producer.claim(len) {
                Ok(claim) => claim,
                Err(e) => panic!("claim of {len} bytes at seq {seq}: {e:?}"),
            };
            fill(claim.payload_mut(), seq);
            claim
                .commit(tensor, monotonic_now_ns())
                .unwrap_or_else(|e| panic!("commit of seq {seq}: {e:?}"));
            published += 1;
            work += 1;
            if spec.frames > 0 && published >= spec.frames {
                done = true;
                out.emit(producer_status(&producer, published, "status").finish());
                out.emit(
                    JsonWriter::event("done")
                        .num("published", published)
                        .finish(),
                );
                break;
            }
        }
        idle.idle(work);
    }
    let c = producer.counters();
    out.emit(
        producer_status(&producer, published, "final")
            .num("refused_not_attached", refused_not_attached)
            .num("reattaches", c.reattaches)
            .num("reconnects", c.reconnects)
            .finish(),
    );
}

fn producer_status(producer: &Producer, published: u64, event: &str) -> JsonWriter {
    let c = producer.counters();
    JsonWriter::event(event)
        .num("published", published)
        .num("frames_published", c.frames_published)
        .num("descriptors_dropped", c.descriptors_dropped)
        .num("descriptors_unconnected", c.descriptors_unconnected)
        .num("attached", u64::from(producer.is_attached()))
        .num("epoch", producer.epoch().unwrap_or(0))
        .num("next_seq", producer.next_seq().unwrap_or(0))
}

fn producer_event_json(event: &ProducerEvent, producer: &Producer) -> String {
    let w = match event {
        ProducerEvent::Attached { epoch, .. } => JsonWriter::event("attached").num("epoch", *epoch),
        ProducerEvent::Reattached { epoch } => JsonWriter::event("reattached").num("epoch", *epoch),
        ProducerEvent::Revoked(reason) => {
            JsonWriter::event("revoked").text("reason", &format!("{reason:?}"))
        }
        ProducerEvent::LeaseLost => JsonWriter::event("lease_lost"),
        ProducerEvent::DriverShutdown(reason) => {
            JsonWriter::event("driver_shutdown").text("reason", &format!("{reason:?}"))
        }
        ProducerEvent::MediaDriverLost => JsonWriter::event("media_driver_lost"),
        other => JsonWriter::event("other").text("what", &format!("{other:?}")),
    };
    w.num("client_id", u64::from(producer.client_id())).finish()
}

/// Frames a consumer delivered, per epoch.
#[derive(Debug, Default)]
struct Delivered {
    total: u64,
    verify_failures: u64,
    /// Highest epoch a frame was delivered from, and how many came from it.
    top_epoch: u64,
    in_top_epoch: u64,
    first_seq_top_epoch: u64,
    last_seq_top_epoch: u64,
}

fn run_consumer(spec: &RoleSpec, out: &mut LineOut) {
    let sizes = spec.size_schedule();
    let deadline = Instant::now() + spec.lifetime;
    let config = ConsumerConfig {
        allowed_base_dirs: vec![spec.shm_dir.clone()],
        announce_period: spec.announce_period,
        keepalive_interval: Some(spec.keepalive),
        attach_timeout: Duration::from_millis(500),
        qos_interval: Duration::from_millis(200),
        client_name: "system-test-consumer".into(),
        ..ConsumerConfig::new(spec.streams(), crate::support::STATIC_STREAM)
    };
    let mut consumer = loop {
        match Consumer::connect(config.clone()) {
            Ok(c) => break c,
            Err(e) if Instant::now() >= deadline => {
                out.emit(
                    JsonWriter::event("error")
                        .text("what", &format!("connect: {e}"))
                        .finish(),
                );
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    out.emit(
        JsonWriter::event("connected")
            .num("pid", u64::from(std::process::id()))
            .finish(),
    );
    let mut stop = StopCheck::new(&spec.stop_file);
    let mut delivered = Delivered::default();
    let mut next_status = Instant::now();
    let mut idle = BackoffIdle::with_max_park(IDLE_MAX_PARK);
    let mut quiet_since: Option<Instant> = None;
    let mut stopping_since: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            out.emit(
                JsonWriter::event("error")
                    .text("what", "lifetime over")
                    .finish(),
            );
            break;
        }
        let mut work = match consumer.do_work(monotonic_now_ns()) {
            Ok(work) => work,
            Err(e) => {
                out.error(format!("duty cycle: {e}"));
                1
            }
        };
        while let Some(event) = consumer.poll_event() {
            out.emit(consumer_event_json(&event, &consumer));
        }
        let mut polled = 0;
        for _ in 0..64 {
            let poll = consumer
                .poll_frame(|f| (frame_is_intact(f, sizes), f.epoch(), f.seq()))
                .unwrap_or_else(|e| panic!("poll_frame: {e}"));
            match poll {
                FramePoll::Empty => break,
                FramePoll::Delivered((intact, epoch, seq)) => {
                    delivered.total += 1;
                    if !intact {
                        delivered.verify_failures += 1;
                        out.emit(
                            JsonWriter::event("corrupt")
                                .num("epoch", epoch)
                                .num("seq", seq)
                                .finish(),
                        );
                    }
                    if epoch > delivered.top_epoch {
                        delivered.top_epoch = epoch;
                        delivered.in_top_epoch = 0;
                        delivered.first_seq_top_epoch = seq;
                    }
                    if epoch == delivered.top_epoch {
                        delivered.in_top_epoch += 1;
                        delivered.last_seq_top_epoch = seq;
                    }
                }
                FramePoll::Dropped(_) | FramePoll::Ignored | FramePoll::RateLimited => {}
            }
            polled += 1;
        }
        work += polled;
        if now >= next_status {
            next_status = now + spec.status_period;
            out.emit(consumer_status(&consumer, &delivered, "status"));
        }
        if stop.stopped() {
            // Drain: finish once nothing arrived for 200 ms (or after 2 s if the producer
            // is still publishing).
            let stopping = *stopping_since.get_or_insert(now);
            if polled > 0 {
                quiet_since = None;
            }
            let since = *quiet_since.get_or_insert(now);
            if now.duration_since(since) >= Duration::from_millis(200)
                || now.duration_since(stopping) >= Duration::from_secs(2)
            {
                break;
            }
        }
        idle.idle(work);
    }
    out.emit(consumer_status(&consumer, &delivered, "final"));
}

fn consumer_status(consumer: &Consumer, delivered: &Delivered, event: &str) -> String {
    let w = JsonWriter::event(event)
        .num("delivered", delivered.total)
        .num("verify_failures", delivered.verify_failures)
        .num("top_epoch", delivered.top_epoch)
        .num("delivered_top_epoch", delivered.in_top_epoch)
        .num("first_seq_top_epoch", delivered.first_seq_top_epoch)
        .num("last_seq_top_epoch", delivered.last_seq_top_epoch)
        .num("mapped_epoch", consumer.mapped_epoch().unwrap_or(0))
        .num("ready", u64::from(consumer.is_ready()))
        .num("connected", u64::from(consumer.is_connected()))
        .num(
            "last_seq_seen",
            consumer.last_seq_seen().unwrap_or(u64::MAX),
        );
    consumer_counters_json(w, &consumer.counters()).finish()
}

fn consumer_event_json(event: &ConsumerEvent, consumer: &Consumer) -> String {
    let w = match event {
        ConsumerEvent::Attached { epoch } => JsonWriter::event("attached").num("epoch", *epoch),
        ConsumerEvent::EpochChanged { epoch } => {
            JsonWriter::event("epoch_changed").num("epoch", *epoch)
        }
        ConsumerEvent::Revoked(reason) => {
            JsonWriter::event("revoked").text("reason", &format!("{reason:?}"))
        }
        ConsumerEvent::ProducerRevoked { reason } => {
            JsonWriter::event("producer_revoked").text("reason", &format!("{reason:?}"))
        }
        ConsumerEvent::DriverShutdown(reason) => {
            JsonWriter::event("driver_shutdown").text("reason", &format!("{reason:?}"))
        }
        ConsumerEvent::Unmapped { reason } => {
            JsonWriter::event("unmapped").text("reason", &format!("{reason:?}"))
        }
        ConsumerEvent::MediaDriverLost => JsonWriter::event("media_driver_lost"),
        ConsumerEvent::Fallback { fallback } => {
            JsonWriter::event("fallback").text("uri", &fallback.uri)
        }
        ConsumerEvent::ShmResumed => JsonWriter::event("shm_resumed"),
        ConsumerEvent::AttachRefused { code, message } => JsonWriter::event("attach_refused")
            .text("code", code.name())
            .text("message", message),
        ConsumerEvent::MetadataChanged { meta_version } => {
            JsonWriter::event("metadata_changed").num("meta_version", u64::from(*meta_version))
        }
    };
    w.num("consumer_id", u64::from(consumer.consumer_id()))
        .finish()
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

/// A role running as a child process of the test binary; killed (SIGKILL, by pid) when
/// dropped if it still runs.
pub struct RoleProcess {
    child: Child,
    name: String,
    spec: RoleSpec,
    stderr: PathBuf,
    /// JSON lines read so far (the file is re-read from this offset).
    lines: Vec<JsonLine>,
    read_bytes: usize,
}

impl RoleProcess {
    /// Starts `spec` as a child process called `name`.
    pub fn spawn(env: &TestEnv, name: &str, spec: RoleSpec) -> Self {
        let stderr = env.path().join(format!("{name}.stderr"));
        let file = |path: &Path| {
            std::fs::File::create(path)
                .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()))
        };
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut command = Command::new(exe);
        command
            .args([ROLE_TEST_NAME, "--exact", "--ignored", "--test-threads=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file(&stderr))
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .env("RUST_BACKTRACE", "1");
        for (var, _) in std::env::vars() {
            if SCRUBBED_PREFIXES.iter().any(|p| var.starts_with(p)) {
                command.env_remove(var);
            }
        }
        command.envs(spec.to_env());
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        Self {
            child,
            name: name.to_string(),
            spec,
            stderr,
            lines: Vec::new(),
            read_bytes: 0,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's name in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every JSON line the child wrote so far.
    pub fn lines(&mut self) -> &[JsonLine] {
        self.refresh();
        &self.lines
    }

    fn refresh(&mut self) {
        let Ok(bytes) = std::fs::read(&self.spec.out) else {
            return;
        };
        let Some(new) = bytes.get(self.read_bytes..) else {
            return;
        };
        // Only whole lines: the child may be in the middle of one.
        let Some(end) = new.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        let text = String::from_utf8_lossy(&new[..=end]);
        for line in text.lines() {
            match JsonLine::parse(line) {
                Some(json) => self.lines.push(json),
                None => panic!("{} wrote a line that is not flat JSON: {line:?}", self.name),
            }
        }
        self.read_bytes += end + 1;
    }

    /// What the child wrote to stderr (the last 4 KiB).
    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// A description of the child's state for failure messages.
    pub fn describe(&mut self) -> String {
        self.refresh();
        let last: Vec<String> = self
            .lines
            .iter()
            .rev()
            .take(6)
            .rev()
            .map(ToString::to_string)
            .collect();
        format!(
            "{} (pid {}): last lines:\n  {}\nstderr tail:\n{}",
            self.name,
            self.pid(),
            last.join("\n  "),
            self.stderr_tail()
        )
    }

    /// Waits (up to `timeout`) for a line, written after the first `from` lines, that
    /// matches `pred`; panics with `what` and the child's output otherwise (also when the
    /// child exits first).
    pub fn wait_for_line(
        &mut self,
        what: &str,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&JsonLine) -> bool,
    ) -> JsonLine {
        match self.try_wait_for_line(from, timeout, pred) {
            Ok(line) => line,
            Err(why) => panic!("{why} waiting for {what}; {}", self.describe()),
        }
    }

    /// As [`RoleProcess::wait_for_line`], but returns why it gave up instead of
    /// panicking.
    pub fn try_wait_for_line(
        &mut self,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&JsonLine) -> bool,
    ) -> Result<JsonLine, String> {
        let deadline = Instant::now() + timeout;
        let mut exited: Option<ExitStatus> = None;
        loop {
            self.refresh();
            if let Some(line) = self.lines.iter().skip(from).find(|l| pred(l)) {
                return Ok(line.clone());
            }
            if let Some(status) = exited {
                return Err(format!("{} exited ({status})", self.name));
            }
            if Instant::now() >= deadline {
                return Err(format!("timed out after {timeout:?}"));
            }
            // One more look at the file after the child exits, then give up.
            exited = self.child.try_wait().ok().flatten();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many JSON lines the child wrote so far.
    pub fn line_count(&mut self) -> usize {
        self.refresh();
        self.lines.len()
    }

    /// Creates the stop file and waits (up to `timeout`) for the child to exit; returns
    /// its `final` line.
    pub fn stop(&mut self, timeout: Duration) -> JsonLine {
        std::fs::write(&self.spec.stop_file, b"stop").expect("writing the stop file");
        let status = self.wait_exit(timeout);
        let describe = self.describe();
        assert!(
            status.success(),
            "{} exited with {status}; {describe}",
            self.name
        );
        self.lines
            .iter()
            .rev()
            .find(|l| l.event() == "final")
            .cloned()
            .unwrap_or_else(|| panic!("{} wrote no final line; {describe}", self.name))
    }

    /// Waits up to `timeout` for the child to exit, panicking otherwise.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling a child") {
                self.refresh();
                return status;
            }
            if Instant::now() >= deadline {
                let describe = self.describe();
                panic!("did not exit in {timeout:?}: {describe}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILL (by pid) and reap.
    pub fn kill(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's pid only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
