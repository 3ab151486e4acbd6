//! Interop with DarrylGamroth/tensor_pool_c, the Wire Spec author's C implementation,
//! built from local sources by scripts/build-tensor-pool-c.sh: its clients through our
//! `tp-driver` (each side producing for the other), and our producer and consumer
//! through its driver; our metadata (and trace ids) as its listener and consumer decode
//! them; and frame progress both ways. Frames are verified on whichever side reads them,
//! against the writer's byte pattern.
//!
//! Skipped, saying why ("SKIPPED: tensor_pool_c cannot be built: ..."), where its sources,
//! tomlc17, the jars or a JDK are missing; `TP_INTEROP_REQUIRED=1` turns a skip into a
//! failure. The build is cached in target/tensor_pool_c/ (about a minute the first time).

#[path = "support/mod.rs"]
mod support;
#[path = "support/system.rs"]
mod system;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::*;
use system::{summary, JsonLine};
use tensorpool::client::consumer::{Consumer, ConsumerConfig, FramePoll};
use tensorpool::client::producer::{Producer, ProducerConfig, ProducerEvent};
use tensorpool::client::progress::{ProgressHints, ProgressPoll};
use tensorpool::client::tensor::bytes_header;
use tensorpool::client::ClientStreams;
use tensorpool::clock::monotonic_now_ns;
use tensorpool::protocol::control::{Dtype, FrameProgressState};

/// The channel of every stream, tensor_pool_c's examples' default (they take one channel
/// for all streams, so ours must be the very same string).
const TPC_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// Bound of the wait for a run that ends by itself.
const ENDS_BY_ITSELF: Duration = Duration::from_secs(60);
/// Starts of a tensor_pool_c example whose client failed to initialise before giving up.
const CLIENT_INIT_ATTEMPTS: u32 = 5;

/// Where tensor_pool_c's binaries are; `None` when they cannot be built, after saying why
/// on the test process's stderr itself (the test harness does not capture it, so the
/// reason shows in every run's log) — or failing, under `TP_INTEROP_REQUIRED=1`.
fn tensor_pool_c(test: &str) -> Option<&'static Path> {
    static BUILD: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let build = BUILD.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-tensor-pool-c.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        match output.status.code() {
            Some(0) => Ok(PathBuf::from(
                String::from_utf8_lossy(&output.stdout).trim(),
            )),
            Some(3) => Err(stderr
                .lines()
                .find(|l| l.starts_with("tensor_pool_c cannot be built"))
                .unwrap_or("tensor_pool_c cannot be built: an input is missing")
                .to_string()),
            _ => panic!(
                "scripts/build-tensor-pool-c.sh failed ({}):\n{stderr}",
                output.status
            ),
        }
    });
    match build {
        Ok(dir) => Some(dir.as_path()),
        Err(reason) => {
            assert!(
                std::env::var("TP_INTEROP_REQUIRED").as_deref() != Ok("1"),
                "{test}: TP_INTEROP_REQUIRED=1 but {reason}"
            );
            let line = format!("SKIPPED {test}: {reason}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            None
        }
    }
}

/// Our driver's configuration: tensor_pool_c's stream ids on [`TPC_CHANNEL`], a ring of
/// 1,024 slots (no frame of these runs is overwritten before it is read), and
/// `announce_period_ms` as given.
fn our_driver_toml(env: &TestEnv, instance: &str, announce_period_ms: u64) -> String {
    format!(
        r#"[driver]
instance_id = "{instance}"
media_driver = "embedded"
aeron_dir = "{aeron}"
control_channel = "{TPC_CHANNEL}"
control_stream_id = 1000
announce_channel = "{TPC_CHANNEL}"
announce_stream_id = 1001
qos_channel = "{TPC_CHANNEL}"
qos_stream_id = 1200
stream_id_range = "20000-20001"
descriptor_stream_id_range = "31000-31003"
control_stream_id_range = "32000-32003"

[shm]
base_dir = "{shm}"
namespace = "interop"

[policies]
allow_dynamic_streams = false
announce_period_ms = {announce_period_ms}
lease_keepalive_interval_ms = 1000
lease_expiry_grace_intervals = 3
prefault_shm = false

[profiles.small]
header_nslots = 1024
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}, {{ pool_id = 2, stride_bytes = 65536 }}]

[streams.fixed]
stream_id = {STATIC_STREAM}
profile = "small"
"#,
        aeron = env.aeron_dir().display(),
        shm = env.shm_dir().display(),
    )
}

fn start_our_driver(env: &TestEnv, instance: &str, announce_period_ms: u64) -> ProcessDriver {
    let config = env.write(
        "driver.toml",
        &our_driver_toml(env, instance, announce_period_ms),
    );
    let mut driver = ProcessDriver::start(env, "tp-driver", &config, &[]);
    driver.wait_running(DEADLINE);
    driver
}

/// Starts a tensor_pool_c example (`tp_example_*_driver`) against the media driver of
/// `env` and waits until its stderr says `ready`. Its client sometimes fails to start
/// ("Client init failed": an Aeron subscription it adds asynchronously is refused while
/// the machine is loaded); as tensor_pool_c's own tools/run_driver_examples.sh does, such
/// a run is started again, up to [`CLIENT_INIT_ATTEMPTS`] times.
fn start_tpc_example(
    build: &Path,
    env: &TestEnv,
    name: &str,
    args: (u32, u32),
    envs: &[(&str, &str)],
    ready: &str,
) -> ProcessDriver {
    let aeron = env.aeron_dir().display().to_string();
    let (client_id, frames) = args;
    let (stream, id, count) = (
        STATIC_STREAM.to_string(),
        client_id.to_string(),
        frames.to_string(),
    );
    let args = [
        "-a",
        &aeron,
        "-c",
        TPC_CHANNEL,
        "-s",
        &stream,
        "-i",
        &id,
        "-n",
        &count,
    ];
    for attempt in 1..=CLIENT_INIT_ATTEMPTS {
        let label = format!("{name}-{attempt}");
        let mut process =
            ProcessDriver::spawn_program(&build.join(name), "", env, &label, &args, envs);
        match wait_for_stderr(&mut process, ready) {
            Ok(()) => return process,
            Err(_) if process.stderr().contains("Client init failed") => continue,
            Err(status) => panic!(
                "{name} exited with {status} before {ready:?}; stdout:\n{}\nstderr:\n{}",
                process.stdout(),
                process.stderr()
            ),
        }
    }
    panic!("{name}: its client failed to start {CLIENT_INIT_ATTEMPTS} times (see {name}-*.stderr)")
}

/// One of our examples against the media driver of `env`, on [`TPC_CHANNEL`].
fn spawn_our_example(env: &TestEnv, name: &str, extra: &[&str]) -> ProcessDriver {
    let mut args: Vec<String> = [
        "--aeron-dir",
        &env.aeron_dir().display().to_string(),
        "--channel",
        TPC_CHANNEL,
        "--allowed-base-dir",
        &env.shm_dir().display().to_string(),
        "--stream-id",
        &STATIC_STREAM.to_string(),
        "--timeout-s",
        "30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ProcessDriver::spawn_program(&example_program(name), "", env, name, &args, &[])
}

fn wait_success(process: &mut ProcessDriver, what: &str) {
    let status = process.wait(ENDS_BY_ITSELF).unwrap_or_else(|| {
        panic!(
            "{what} still runs; stdout:\n{}\nstderr:\n{}",
            process.stdout(),
            process.stderr()
        )
    });
    assert!(
        status.success(),
        "{what} exited with {status}; stdout:\n{}\nstderr:\n{}",
        process.stdout(),
        process.stderr()
    );
}

/// Waits until `process` writes `needle` on stderr; `Err` with its exit status if it
/// exits first. Panics, with its output, after [`ENDS_BY_ITSELF`].
fn wait_for_stderr(process: &mut ProcessDriver, needle: &str) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + ENDS_BY_ITSELF;
    while !process.stderr().contains(needle) {
        if let Some(status) = process.wait(Duration::from_millis(10)) {
            return Err(status);
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} after {ENDS_BY_ITSELF:?}; stdout:\n{}\nstderr:\n{}",
            process.stdout(),
            process.stderr()
        );
    }
    Ok(())
}

/// `key=value` of a tensor_pool_c example's output line, as a number.
fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .and_then(|value| value.parse().ok())
}

/// The frames tensor_pool_c's consumer example read and checked (seqlock, header, pool):
/// `(seq, pool_id, payload length)` from its `Frame seq=S pool_id=P payload=L` lines.
fn frames_read_by_tpc(stdout: &str) -> Vec<(u64, u64, u64)> {
    stdout
        .lines()
        .filter(|l| l.starts_with("Frame seq="))
        .map(|l| {
            let get = |key| field(l, key).unwrap_or_else(|| panic!("no {key} in {l:?}"));
            (get("seq"), get("pool_id"), get("payload"))
        })
        .collect()
}

/// The sequence numbers tensor_pool_c's producer example published, in order (its
/// `Published frame pool_id=P seq=S` lines): the i-th carries pattern index i.
fn seqs_published_by_tpc(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter(|l| l.starts_with("Published frame"))
        .map(|l| field(l, "seq").unwrap_or_else(|| panic!("no seq in {l:?}")))
        .collect()
}

/// The payload tensor_pool_c's producer example writes with `TP_PATTERN=interop` for
/// its `index`-th frame (a 16-byte UINT8 vector): the index, then its complement, both
/// little-endian (`tp_example_fill_interop_pattern`).
fn tpc_interop_payload(index: u64) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&index.to_le_bytes());
    bytes[8..].copy_from_slice(&(!index).to_le_bytes());
    bytes
}

/// Its consumer ignores the first `ShmPoolAnnounce` it sees. Our driver announces right
/// after each attach, so with an announce period far longer than the run, the announce
/// of the producer's epoch is still not its first: it maps the producer's files and reads
/// our frames (payload length and pool as our producer wrote them) within the run.
#[test]
fn tensor_pool_c_consumer_reads_our_producer_through_our_driver() {
    let Some(build) = tensor_pool_c("tensor_pool_c_consumer_reads_our_producer_through_our_driver")
    else {
        return;
    };
    let env = TestEnv::new();
    let instance = "interop-c-consumer";
    let _driver = start_our_driver(&env, instance, 60_000);
    let wanted = 50;
    // Its join time is the local time it handles its first announce, and it drops every
    // announce stamped before that: the producer must attach after the consumer handled
    // the announce that followed its own attach. It prints "Control subscription
    // connected" once attached and its read loop has run a duty cycle; that announce went
    // out before its attach response, so the cycle handled it.
    let mut consumer = start_tpc_example(
        build,
        &env,
        "tp_example_consumer_driver",
        (77, wanted),
        &[
            ("TP_EXAMPLE_MAX_WAIT_MS", "30000"),
            ("TP_EXAMPLE_ATTACH_TIMEOUT_MS", "30000"),
        ],
        "Control subscription connected",
    );
    // 5,000 bytes: pool 2 (64 KiB stride), not the first pool, must be the one read.
    let mut producer = spawn_our_example(
        &env,
        "producer",
        &[
            "--frames",
            "600",
            "--payload-bytes",
            "5000",
            "--rate",
            "200",
        ],
    );
    wait_success(&mut consumer, "tensor_pool_c's consumer");
    wait_success(&mut producer, "our producer");

    let read = frames_read_by_tpc(&consumer.stdout());
    // It stops after the poll that reached `wanted`, which may have read a few more.
    assert!(read.len() >= wanted as usize, "{}", consumer.stdout());
    assert!(
        read.iter()
            .all(|&(seq, pool, len)| seq < 600 && pool == 2 && len == 5000),
        "frames as our producer wrote them: {read:?}"
    );
    assert!(
        read.windows(2).all(|w| w[0].0 < w[1].0),
        "sequence numbers increase: {read:?}"
    );
    let sent = summary(&producer);
    assert_eq!(sent.u64("frames_sent"), 600, "{sent}");
}

/// tensor_pool_c's stream ids on [`TPC_CHANNEL`], for our clients in the test process.
fn tpc_streams(env: &TestEnv) -> ClientStreams {
    ClientStreams {
        control_stream_id: 1000,
        announce_stream_id: 1001,
        descriptor_stream_id: 1100,
        qos_stream_id: 1200,
        connect_timeout: DEADLINE,
        ..ClientStreams::on_channel(env.aeron_dir(), TPC_CHANNEL)
    }
}

/// Our consumer, in the test process, on tensor_pool_c's stream ids; `progress` opts it
/// in to frame progress.
fn connect_our_consumer(env: &TestEnv, progress: Option<ProgressHints>) -> Consumer {
    let mut config = ConsumerConfig::new(tpc_streams(env), STATIC_STREAM);
    config.allowed_base_dirs = vec![env.shm_dir()];
    config.progress = progress;
    Consumer::connect(config).expect("our consumer connects")
}

/// Its producer attaches first and waits for a consumer's `ConsumerHello`; ours attaches
/// to the producer's epoch, says hello, and reads every frame, checked byte for byte
/// against the C example's interop pattern and tensor description.
#[test]
fn our_consumer_reads_tensor_pool_c_producer_through_our_driver() {
    let Some(build) = tensor_pool_c("our_consumer_reads_tensor_pool_c_producer_through_our_driver")
    else {
        return;
    };
    let env = TestEnv::new();
    let _driver = start_our_driver(&env, "interop-c-producer", 1000);
    let frames = 64u32;
    let mut producer = start_tpc_example(
        build,
        &env,
        "tp_example_producer_driver",
        (88, frames),
        &[
            ("TP_PATTERN", "interop"),
            ("TP_EXAMPLE_PRINT_ATTACH", "1"),
            // It publishes once a hello arrives (or after this long, then to a consumer
            // that has long been mapped, so the checks below hold either way).
            ("TP_EXAMPLE_WAIT_CONSUMER_MS", "20000"),
            ("TP_EXAMPLE_KEEPALIVE_MS", "500"),
            ("TP_EXAMPLE_ATTACH_TIMEOUT_MS", "30000"),
        ],
        "Attach info",
    );

    let mut consumer = connect_our_consumer(&env, None);

    // (seq, tensor as described, payload) of every frame delivered.
    let mut delivered: Vec<(u64, bool, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + ENDS_BY_ITSELF;
    while delivered.len() < frames as usize {
        assert!(
            Instant::now() < deadline,
            "delivered {} of {frames} frames; counters {:?}; producer stderr:\n{}",
            delivered.len(),
            consumer.counters(),
            producer.stderr()
        );
        consumer
            .do_work(monotonic_now_ns())
            .expect("consumer duty cycle");
        let poll = consumer
            .poll_frame(|frame| {
                let tensor = frame.tensor();
                let described =
                    tensor.dtype == Dtype::Uint8 && tensor.ndims == 1 && tensor.dims[0] == 16;
                (frame.seq(), described, frame.payload().to_vec())
            })
            .expect("polling frames");
        match poll {
            FramePoll::Delivered(frame) => delivered.push(frame),
            FramePoll::Empty => std::thread::sleep(Duration::from_millis(1)),
            // The consumer is in STREAM mode: nothing is skipped for rate.
            FramePoll::RateLimited => panic!("a STREAM consumer skipped a frame for rate"),
            FramePoll::Ignored | FramePoll::Dropped(_) => {}
        }
    }
    assert_eq!(consumer.producer_id(), Some(88));
    wait_success(&mut producer, "tensor_pool_c's producer");

    let published = seqs_published_by_tpc(&producer.stdout());
    assert_eq!(published.len(), frames as usize, "{}", producer.stdout());
    for (index, (seq, described, payload)) in delivered.iter().enumerate() {
        assert_eq!(*seq, published[index], "frames arrive in publication order");
        assert!(described, "frame {seq}: a 16-byte UINT8 vector");
        assert_eq!(
            payload.as_slice(),
            tpc_interop_payload(index as u64),
            "frame {seq}: the C producer's interop pattern"
        );
    }
    assert_eq!(consumer.counters().frames_delivered, u64::from(frames));
}

/// tensor_pool_c's driver (beside a stock aeronmd) with our producer and consumer: its
/// payload-pool superblocks say `slotBytes = 0xFFFFFFFF`, which our clients accept, and
/// every frame our consumer reads passes its byte-for-byte check.
#[test]
fn our_producer_and_consumer_run_through_tensor_pool_c_driver() {
    let Some(build) = tensor_pool_c("our_producer_and_consumer_run_through_tensor_pool_c_driver")
    else {
        return;
    };
    let env = TestEnv::new();
    let aeron = env.aeron_dir().display().to_string();
    let aeronmd = build.join("aeron-driver/aeronmd");
    let mut media_driver = ProcessDriver::spawn_program(
        &aeronmd,
        "",
        &env,
        "aeronmd",
        &[],
        &[
            ("AERON_DIR", &aeron),
            ("AERON_DIR_DELETE_ON_START", "1"),
            ("AERON_DIR_DELETE_ON_SHUTDOWN", "1"),
        ],
    );
    wait_until("aeronmd's CnC file", DEADLINE, || {
        env.aeron_dir().join("cnc.dat").is_file().then_some(())
    });
    let shm = env.shm_dir().display().to_string();
    let config = env.write(
        "tp_driver.toml",
        &format!(
            r#"[driver]
instance_id = "interop-c-driver"
aeron_dir = "{aeron}"
control_channel = "{TPC_CHANNEL}"
control_stream_id = 1000
announce_channel = "{TPC_CHANNEL}"
announce_stream_id = 1001
qos_channel = "{TPC_CHANNEL}"
qos_stream_id = 1200
stream_id_range = "20000-20001"
descriptor_stream_id_range = "31000-31003"
control_stream_id_range = "32000-32003"

[shm]
base_dir = "{shm}"
namespace = "interop"
require_hugepages = false
page_size_bytes = 4096
permissions_mode = "660"
allowed_base_dirs = ["{shm}"]

[policies]
allow_dynamic_streams = false
default_profile = "small"
announce_period_ms = 1000
lease_keepalive_interval_ms = 1000
lease_expiry_grace_intervals = 3

[profiles.small]
header_nslots = 1024
payload_pools = [{{ pool_id = 1, stride_bytes = 4096 }}, {{ pool_id = 2, stride_bytes = 65536 }}]

[streams.fixed]
stream_id = {STATIC_STREAM}
profile = "small"
"#
        ),
    );
    let config = config.display().to_string();
    let mut c_driver = ProcessDriver::spawn_program(
        &build.join("tp_driver"),
        "",
        &env,
        "tp_driver",
        &["-c", &config],
        &[("AERON_DIR", &aeron)],
    );

    // Our clients retry until the driver answers. The consumer attaches first and asks
    // for 200 of the producer's 400 frames (the first ones may go by while it remaps to
    // the producer's epoch).
    let mut consumer = spawn_our_example(&env, "consumer", &["--frames", "200", "--verify"]);
    if let Err(status) = wait_for_stderr(&mut consumer, "consumer attached") {
        panic!("our consumer exited with {status}:\n{}", consumer.stderr());
    }
    let mut producer = spawn_our_example(
        &env,
        "producer",
        &[
            "--frames",
            "400",
            "--payload-bytes",
            "5000",
            "--rate",
            "200",
        ],
    );
    wait_success(&mut consumer, "our consumer");
    wait_success(&mut producer, "our producer");
    let read: JsonLine = summary(&consumer);
    assert_eq!(read.u64("frames_received"), 200, "{read}");
    assert_eq!(read.u64("frames_verified"), 200, "{read}");
    assert_eq!(read.u64("verify_failures"), 0, "{read}");
    assert_eq!(summary(&producer).u64("frames_sent"), 400);
    assert!(
        c_driver.wait(Duration::ZERO).is_none(),
        "tensor_pool_c's driver still runs; stderr:\n{}",
        c_driver.stderr()
    );
    c_driver.kill();
    media_driver.kill();
}

/// `(seq, meta_version, trace_id)` of every `Descriptor seq=S ts=T meta=V trace=I` line
/// tensor_pool_c's consumer example writes on stderr under `TP_EXAMPLE_VERBOSE=1`: the
/// `FrameDescriptor` fields as its decoder read them.
fn descriptors_seen_by_tpc(stderr: &str) -> Vec<(u64, u64, u64)> {
    stderr
        .lines()
        .filter(|l| l.starts_with("Descriptor seq="))
        .map(|l| {
            let get = |key| field(l, key).unwrap_or_else(|| panic!("no {key} in {l:?}"));
            (get("seq"), get("meta"), get("trace"))
        })
        .collect()
}

/// A metadata attribute as `tp_control_listen -j` prints it: (key, format, value).
type MetaAttr = (String, String, String);

/// What tensor_pool_c's `tp_control_listen -j` decoded on the metadata stream.
struct MetadataSeen {
    /// Each `DataSourceAnnounce` as `{"stream":S,"meta_version":V,"name":N,"summary":M}`.
    announces: Vec<String>,
    /// Each `DataSourceMeta`: (stream, meta_version, its attributes).
    metas: Vec<(u64, u64, Vec<MetaAttr>)>,
}

/// Parses `tp_control_listen -j` output: it prints a message's `DataSourceMetaAttr`
/// lines as it decodes them, then the `DataSourceMeta` line they belong to.
fn metadata_seen_by_tpc(stdout: &str) -> MetadataSeen {
    let mut seen = MetadataSeen {
        announces: Vec::new(),
        metas: Vec::new(),
    };
    let mut attrs = Vec::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
        let number = |key: &str| value[key].as_u64().unwrap_or(u64::MAX);
        match value["type"].as_str() {
            Some("DataSourceAnnounce") => seen.announces.push(
                serde_json::json!({
                    "stream": number("stream"),
                    "meta_version": number("meta_version"),
                    "name": text("name"),
                    "summary": text("summary"),
                })
                .to_string(),
            ),
            Some("DataSourceMetaAttr") => {
                attrs.push((text("key"), text("format"), text("value")));
            }
            Some("DataSourceMeta") => {
                let count = number("attrs");
                assert_eq!(count, attrs.len() as u64, "attribute lines before {line:?}");
                seen.metas.push((
                    number("stream"),
                    number("meta_version"),
                    std::mem::take(&mut attrs),
                ));
            }
            _ => {}
        }
    }
    seen
}

/// Our producer publishes metadata (Wire Spec §10.3) and changes it mid-stream: its
/// listener decodes our `DataSourceAnnounce` and `DataSourceMeta` (name, summary, each
/// attribute's key, format and value) under `meta_version` 1, then 2; every
/// `FrameDescriptor` tensor_pool_c's consumer decodes carries the `meta_version` the
/// frame was taken under — 1 before the change, 2 from the change on, never back — and
/// the trace id our producer set for it (§10.2.1), while it still reads every frame.
#[test]
fn tensor_pool_c_consumer_sees_our_meta_version_change_and_trace_ids() {
    let test = "tensor_pool_c_consumer_sees_our_meta_version_change_and_trace_ids";
    let Some(build) = tensor_pool_c(test) else {
        return;
    };
    let env = TestEnv::new();
    let _driver = start_our_driver(&env, "interop-c-meta", 60_000);
    // It stops after `wanted` frames; at least `wanted` frames after the change are
    // published, so it sees frames taken under version 2 whenever it joined, and under
    // version 1 as it joins within the first second (it maps on the announce that follows
    // the producer's attach, see the first test).
    let (total, change_at, wanted, trace_base) = (600u64, 200u64, 300u32, 1_000_000u64);
    // Its listener decodes every DataSourceAnnounce / DataSourceMeta on the metadata
    // stream (1300 on the control channel, its default and ours). It subscribes while
    // its consumer starts, long before our producer attaches; the metadata is also
    // re-announced every 100 ms, several times before the change.
    let aeron = env.aeron_dir().display().to_string();
    let mut listener = ProcessDriver::spawn_program(
        &build.join("tp_control_listen"),
        "",
        &env,
        "tp_control_listen",
        &["-a", &aeron, "-c", TPC_CHANNEL, "-j"],
        &[],
    );
    let mut consumer = start_tpc_example(
        build,
        &env,
        "tp_example_consumer_driver",
        (78, wanted),
        &[
            ("TP_EXAMPLE_VERBOSE", "1"),
            ("TP_EXAMPLE_MAX_WAIT_MS", "30000"),
            ("TP_EXAMPLE_ATTACH_TIMEOUT_MS", "30000"),
        ],
        "Control subscription connected",
    );
    let (total_arg, change_arg, trace_arg) = (
        total.to_string(),
        change_at.to_string(),
        trace_base.to_string(),
    );
    let mut producer = spawn_our_example(
        &env,
        "producer",
        &[
            "--frames",
            &total_arg,
            "--payload-bytes",
            "5000",
            "--rate",
            "200",
            "--trace-id",
            &trace_arg,
            "--meta-name",
            "interop-camera",
            "--meta-summary",
            "metadata for tensor_pool_c",
            "--meta-attr",
            "units=mm",
            "--meta-change-at",
            &change_arg,
            "--meta-interval-ms",
            "100",
        ],
    );
    wait_success(&mut consumer, "tensor_pool_c's consumer");
    wait_success(&mut producer, "our producer");
    // It prints through stdio buffers, flushed as SIGINT ends its loop.
    listener.signal(nix::sys::signal::Signal::SIGINT);
    wait_success(&mut listener, "tensor_pool_c's tp_control_listen");
    let versions = metadata_seen_by_tpc(&listener.stdout());
    for (version, phase) in [(1u64, "1"), (2, "2")] {
        let announce = serde_json::json!({
            "stream": STATIC_STREAM,
            "meta_version": version,
            "name": "interop-camera",
            "summary": "metadata for tensor_pool_c",
        })
        .to_string();
        assert!(
            versions.announces.contains(&announce),
            "DataSourceAnnounce {announce} in {:?}",
            versions.announces
        );
        let attrs = vec![
            (
                "units".to_string(),
                "text/plain".to_string(),
                "mm".to_string(),
            ),
            (
                "phase".to_string(),
                "text/plain".to_string(),
                phase.to_string(),
            ),
        ];
        let metas: Vec<_> = versions
            .metas
            .iter()
            .filter(|m| m.0 == STATIC_STREAM as u64 && m.1 == version)
            .collect();
        assert!(
            !metas.is_empty(),
            "DataSourceMeta v{version}: {:?}",
            versions.metas
        );
        for meta in metas {
            let mut got = meta.2.clone();
            got.sort();
            let mut want = attrs.clone();
            want.sort();
            assert_eq!(got, want, "attributes of DataSourceMeta v{version}");
        }
    }
    assert!(
        versions.metas.iter().all(|m| m.1 == 1 || m.1 == 2),
        "only meta_version 1 and 2: {:?}",
        versions.metas
    );

    let read = frames_read_by_tpc(&consumer.stdout());
    assert!(read.len() >= wanted as usize, "{}", consumer.stdout());
    let seen = descriptors_seen_by_tpc(&consumer.stderr());
    assert!(seen.len() >= read.len(), "{}", consumer.stderr());
    for &(seq, meta, trace) in &seen {
        assert!(meta == 1 || meta == 2, "seq {seq}: meta_version {meta}");
        if seq >= change_at {
            assert_eq!(meta, 2, "seq {seq}: taken after the change");
        }
        assert_eq!(trace, trace_base + seq, "seq {seq}: our trace id");
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "seq increases and meta_version never goes back: {seen:?}"
    );
    assert!(
        seen.iter().any(|d| d.1 == 1) && seen.iter().any(|d| d.1 == 2),
        "frames of both metadata versions: {seen:?}"
    );
}

/// Its producer with `TP_EXAMPLE_PUBLISH_PROGRESS=1` sends a COMPLETE `FrameProgress`
/// (Wire Spec §10.2.2) with `payload_bytes_filled` = the frame's length right after it
/// committed the frame and published its descriptor. Our consumer, opted in, decodes every
/// one without a rule broken: a COMPLETE still ahead of the frame's descriptor is handed
/// out as the whole 16-byte frame, one that trails it is counted stale or forgotten once
/// the descriptor passes it (the frame itself is delivered then), and every frame still
/// arrives, byte for byte, through the descriptor.
#[test]
fn our_progress_consumer_reads_tensor_pool_c_progress_and_frames() {
    let test = "our_progress_consumer_reads_tensor_pool_c_progress_and_frames";
    let Some(build) = tensor_pool_c(test) else {
        return;
    };
    let env = TestEnv::new();
    let _driver = start_our_driver(&env, "interop-c-progress", 1000);
    let frames = 64u32;
    let mut producer = start_tpc_example(
        build,
        &env,
        "tp_example_producer_driver",
        (89, frames),
        &[
            ("TP_PATTERN", "interop"),
            ("TP_EXAMPLE_PUBLISH_PROGRESS", "1"),
            ("TP_EXAMPLE_PRINT_ATTACH", "1"),
            ("TP_EXAMPLE_WAIT_CONSUMER_MS", "20000"),
            ("TP_EXAMPLE_KEEPALIVE_MS", "500"),
            ("TP_EXAMPLE_ATTACH_TIMEOUT_MS", "30000"),
        ],
        "Attach info",
    );
    let mut consumer = connect_our_consumer(&env, Some(ProgressHints::default()));

    let mut delivered: Vec<(u64, Vec<u8>)> = Vec::new();
    // (seq, state, bytes filled, prefix) of every prefix handed out.
    let mut prefixes: Vec<(u64, FrameProgressState, u64, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + ENDS_BY_ITSELF;
    while delivered.len() < frames as usize {
        assert!(
            Instant::now() < deadline,
            "delivered {} of {frames} frames; counters {:?}; producer stderr:\n{}",
            delivered.len(),
            consumer.counters(),
            producer.stderr()
        );
        consumer
            .do_work(monotonic_now_ns())
            .expect("consumer duty cycle");
        while let ProgressPoll::Delivered(prefix) =
            consumer.poll_progress(|p| (p.seq(), p.state(), p.filled_bytes(), p.prefix().to_vec()))
        {
            prefixes.push(prefix);
        }
        match consumer
            .poll_frame(|frame| (frame.seq(), frame.payload().to_vec()))
            .expect("polling frames")
        {
            FramePoll::Delivered(frame) => delivered.push(frame),
            FramePoll::Empty => std::thread::sleep(Duration::from_millis(1)),
            FramePoll::RateLimited => panic!("a STREAM consumer skipped a frame for rate"),
            FramePoll::Ignored | FramePoll::Dropped(_) => {}
        }
    }
    wait_success(&mut producer, "tensor_pool_c's producer");
    // Its last COMPLETE may still be in flight behind the last descriptor.
    let deadline = Instant::now() + ENDS_BY_ITSELF;
    while consumer.counters().progress.received < u64::from(frames) {
        assert!(
            Instant::now() < deadline,
            "progress counters {:?}",
            consumer.counters().progress
        );
        consumer
            .do_work(monotonic_now_ns())
            .expect("consumer duty cycle");
        std::thread::sleep(Duration::from_millis(1));
    }

    let published = seqs_published_by_tpc(&producer.stdout());
    assert_eq!(published.len(), frames as usize, "{}", producer.stdout());
    for (index, (seq, payload)) in delivered.iter().enumerate() {
        assert_eq!(*seq, published[index], "frames arrive in publication order");
        assert_eq!(payload.as_slice(), tpc_interop_payload(index as u64));
    }
    let progress = consumer.counters().progress;
    assert_eq!(progress.received, u64::from(frames), "{progress:?}");
    assert_eq!(progress.violations(), 0, "no rule broken: {progress:?}");
    assert_eq!(
        progress.prefixes_delivered,
        prefixes.len() as u64,
        "{progress:?}"
    );
    for (seq, state, filled, prefix) in &prefixes {
        let index = published
            .iter()
            .position(|s| s == seq)
            .unwrap_or_else(|| panic!("prefix of unpublished seq {seq}"));
        assert_eq!(*state, FrameProgressState::Complete, "seq {seq}");
        assert_eq!(*filled, 16, "seq {seq}: the whole frame");
        assert_eq!(prefix.as_slice(), tpc_interop_payload(index as u64));
    }
    eprintln!("tensor_pool_c progress as our consumer judged it: {progress:?}");
}

/// `(seq, payload_bytes_filled, state)` of every `Progress seq=S bytes=B state=T` line
/// tensor_pool_c's consumer example writes on stderr under `TP_EXAMPLE_VERBOSE=1`.
fn progress_seen_by_tpc(stderr: &str) -> Vec<(u64, u64, u64)> {
    stderr
        .lines()
        .filter(|l| l.starts_with("Progress seq="))
        .map(|l| {
            let get = |key| field(l, key).unwrap_or_else(|| panic!("no {key} in {l:?}"));
            (get("seq"), get("bytes"), get("state"))
        })
        .collect()
}

/// Runs our producer's duty cycle until `probe` says yes.
fn pump_producer(
    producer: &mut Producer,
    what: &str,
    mut probe: impl FnMut(&mut Producer) -> bool,
) {
    let deadline = Instant::now() + ENDS_BY_ITSELF;
    loop {
        producer
            .do_work(monotonic_now_ns())
            .expect("producer duty cycle");
        if probe(producer) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Our producer (in the test process) fills each frame in four quarters with
/// `claim_with_progress`, so STARTED / PROGRESS / COMPLETE (Wire Spec §10.2.2) go out
/// once tensor_pool_c's consumer says `supports_progress` in its `ConsumerHello` (it
/// does, with no hints: our default throttle applies, whose 64 KiB bytes delta holds back
/// the 4 KiB quarters of these 16 KiB frames). Its consumer, polling progress, decodes
/// our messages (those it keeps: only while the slot is committed, see DESIGN.md
/// "Interop with tensor_pool_c"): COMPLETE at the frame's length last, STARTED at 0
/// first, bytes and state never going back; and it still reads the frames.
#[test]
fn tensor_pool_c_consumer_reads_our_frame_progress() {
    let test = "tensor_pool_c_consumer_reads_our_frame_progress";
    let Some(build) = tensor_pool_c(test) else {
        return;
    };
    let env = TestEnv::new();
    let _driver = start_our_driver(&env, "interop-c-progress-out", 60_000);
    let (frames, len) = (20u32, 16 * 1024usize);
    // It keeps a FrameProgress only if the slot is committed when it polls it (see
    // below): a COMPLETE polled before our commit store is dropped there. Half the frames'
    // at least.
    let progress_min = (frames / 2).to_string();
    let mut consumer = start_tpc_example(
        build,
        &env,
        "tp_example_consumer_driver",
        (79, frames),
        &[
            ("TP_EXAMPLE_VERBOSE", "1"),
            ("TP_EXAMPLE_REQUIRE_PROGRESS", "1"),
            ("TP_EXAMPLE_PROGRESS_MIN", &progress_min),
            ("TP_EXAMPLE_MAX_WAIT_MS", "30000"),
            ("TP_EXAMPLE_ATTACH_TIMEOUT_MS", "30000"),
        ],
        "Control subscription connected",
    );
    let config = ProducerConfig::new(STATIC_STREAM)
        .streams(tpc_streams(&env))
        .allowed_base_dirs([env.shm_dir()]);
    let mut producer = Producer::new(config).expect("our producer connects");
    pump_producer(&mut producer, "our producer's attach", |p| {
        p.events()
            .any(|e| matches!(e, ProducerEvent::Attached { .. }))
    });
    // Its consumer maps our epoch on the announce that follows our attach, then says
    // hello with supports_progress.
    pump_producer(&mut producer, "its consumer's hello", |p| {
        p.progress_policy().is_some()
    });

    let tensor = bytes_header(len).expect("tensor");
    let quarter = len / 4;
    let mut seqs = Vec::new();
    for frame in 0..frames {
        let mut fill = producer
            .claim_with_progress(len, &tensor, monotonic_now_ns())
            .expect("claim with progress");
        for part in 1..=4u64 {
            let at = (part as usize - 1) * quarter;
            fill.payload_mut()[at..at + quarter].fill(frame as u8);
            if part < 4 {
                // Below the default bytes delta (64 KiB): held back by the throttle.
                fill.progress(part * quarter as u64, monotonic_now_ns())
                    .expect("progress within the frame");
            }
        }
        seqs.push(fill.commit(monotonic_now_ns()));
        let next = Instant::now() + Duration::from_millis(5);
        pump_producer(&mut producer, "the frame pace", |_| Instant::now() >= next);
    }
    // Keep the lease while its consumer finishes.
    let mut done = None;
    pump_producer(&mut producer, "its consumer's exit", |_| {
        done = consumer.wait(Duration::ZERO);
        done.is_some()
    });
    let status = done.expect("exited");
    assert!(
        status.success(),
        "its consumer exited with {status}; stdout:\n{}\nstderr:\n{}",
        consumer.stdout(),
        consumer.stderr()
    );

    let read = frames_read_by_tpc(&consumer.stdout());
    assert!(read.len() >= frames as usize, "{}", consumer.stdout());
    assert!(read.iter().all(|&(_, _, l)| l == len as u64), "{read:?}");
    let seen = progress_seen_by_tpc(&consumer.stderr());
    let completes = seen.iter().filter(|w| w.2 == 3).count();
    assert!(completes >= frames as usize / 2, "{}", consumer.stderr());
    for &seq in &seqs {
        let words: Vec<_> = seen
            .iter()
            .filter(|w| w.0 == seq)
            .map(|w| (w.1, w.2))
            .collect();
        assert!(
            words
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
            "seq {seq}: bytes and state never go back: {words:?}"
        );
        // It hands its application a FrameProgress only once the slot is committed
        // (tp_consumer_validate_progress), so a STARTED shows only when it polled after
        // the commit; when it shows, it is first and at 0 bytes.
        if words.iter().any(|w| w.1 == 1) {
            assert_eq!(words.first(), Some(&(0, 1)), "seq {seq}: STARTED first");
        }
        if words.iter().any(|w| w.1 == 3) {
            assert_eq!(
                words.last(),
                Some(&(len as u64, 3)),
                "seq {seq}: COMPLETE at the frame's length last"
            );
        }
        assert!(
            words
                .iter()
                .all(|w| (1..=3).contains(&w.1) && w.0 <= len as u64),
            "seq {seq}: a known state, within the frame: {words:?}"
        );
    }
    assert!(
        seen.iter().all(|w| seqs.contains(&w.0)),
        "progress only for frames we published: {seen:?}"
    );
}
