//! Reads frames from a tensorpool stream through a running SHM driver (`tp-driver`).
//!
//! ```sh
//! cargo run --release --example consumer -- \
//!     --stream-id 10000 --frames 10000 --timeout-s 30 --verify
//! ```
//!
//! It connects to the media driver in `--aeron-dir` (by default Aeron's own default,
//! `AERON_DIR` or `/dev/shm/aeron-<user>`, where a driver without `driver.aeron_dir`
//! runs) and attaches as a consumer of the stream, retrying both until the driver is up
//! (at most `--timeout-s`), then reads frames until `--frames` were delivered, the
//! timeout passes, or the producer finished: when the stream's producer detaches and no
//! other attaches within two announce periods, the run ends with what it got. A refusal
//! waiting cannot cure ends the run at once with the fix; one that may clear (the stream
//! is not there yet: a producer with `--create` may still make it) is retried and named
//! in the final message. The consumer id is random unless `--consumer-id` is given, and a
//! new random one is picked if the driver reports a collision, so several consumers never
//! share one.
//!
//! With `--verify` every delivered frame is checked against the producer example's
//! pattern: a one-dimensional UINT8 tensor with `dims[0]` = the payload length, and byte
//! `i` of the frame with sequence `s` equal to `(s + i) mod 251`.
//!
//! At the end it prints one JSON line on stdout:
//!
//! ```text
//! {"role":"consumer","frames_received":10000,"frames_verified":10000,"verify_failures":0,
//!  "drops_gap":0,"drops_late":0,"drops_resync":0,"drops_invalid":0,"drops_other":0,
//!  "qos_drops_gap":0,"qos_drops_late":0,"frames_rate_limited":0,"gaps_rate_limited":0,
//!  "epoch_changes":0,"trace_ids_verified":0,"trace_failures":0,"interrupted":false,
//!  "elapsed_s":10.001,"frames_per_s":999.9,"mib_per_s":62.49, ...metadata fields}
//! ```
//!
//! With `--expect-trace-id BASE` every delivered frame's descriptor must carry the trace
//! id `BASE + s` (what `producer --trace-id BASE` sends): `trace_ids_verified` counts those
//! that do, `trace_failures` the others (any makes the exit status 1).
//!
//! (on one line), followed by the stream's metadata (Wire Spec §10.3) as last received:
//! `"meta_version"` (0: none), `"meta_name"`, `"meta_summary"`, `"meta_attrs"`
//! (`key=value` pairs joined by `;`, values of other formats than `text/plain` as
//! `<N bytes>`), `"meta_changes"` (versions received), and the versions frames carried:
//! `"first_frame_meta_version"`, `"last_frame_meta_version"`, `"frames_meta_unseen"`
//! (frames naming a version not received yet: delivered all the same) and
//! `"frame_meta_regressions"` (a frame with a lower version than the frame before it).
//! Every new metadata version is also printed on stderr as it arrives. Every frame the
//! producer sent is either received or in exactly one
//! drop figure: `drops_gap` (its descriptor never arrived), `drops_late` (the producer
//! overwrote it before or while it was read), `drops_resync` (skipped to catch up with a
//! producer that lapped the ring), `drops_invalid` (the slot contradicted the descriptor
//! or failed validation), `drops_other` (not mapped, waiting for a new epoch, another
//! epoch, duplicate). `qos_drops_gap` and `qos_drops_late` are the two figures the
//! consumer reports in `QosConsumer` and `tp status` shows under the same names
//! (docs/DESIGN.md, "Drop counters and QoS"). `elapsed_s` runs from the first delivered frame to the last; the
//! rates are over that window. The exit status is 0 when `--frames` frames were received
//! and, with `--verify`, every one verified; 1 otherwise; 128 + the signal number when
//! SIGINT or SIGTERM stopped it (it still detaches and prints the line). With
//! `--progress-ms N` it also prints the line, counts so far, every N ms. Logs go to
//! stderr; set `RUST_LOG` (e.g. `RUST_LOG=info`) for more.

mod common;

use clap::Parser;
use common::Pattern;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tensorpool::client::consumer::{
    monotonic_now_ns, Consumer, ConsumerConfig, ConsumerCounters, ConsumerError, ConsumerEvent,
    ConsumerMode, Frame, FramePoll, MetaStatus,
};
use tensorpool::client::metadata::StreamMetadata;
use tensorpool::client::{attach_refusal_fix, ClientStreams, LinkError};
use tensorpool::protocol::control::Dtype;
use tensorpool::protocol::driver::LeaseRevokeReason;
use tensorpool::transport::{default_aeron_dir, BackoffIdle};

/// Frames read per duty cycle before the next `do_work`.
const FRAMES_PER_CYCLE: usize = 64;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    about = "Read frames from a tensorpool stream",
    long_about = "Read frames from a tensorpool stream through a running tp-driver.\n\
                  With --verify, byte i of the frame with sequence s must be (s + i) mod 251 \
                  (the producer example's pattern). Prints one JSON line with the results \
                  and exits 0 when --frames frames were received (and verified)."
)]
struct Args {
    /// Aeron directory of the media driver (the driver's `driver.aeron_dir`); the
    /// default is Aeron's (`AERON_DIR`, else /dev/shm/aeron-<user>), which a driver
    /// without `driver.aeron_dir` uses.
    #[arg(long, default_value_os_t = default_aeron_dir())]
    aeron_dir: PathBuf,
    /// Stream to consume.
    #[arg(long, default_value_t = 10000)]
    stream_id: u32,
    /// Frames to receive before stopping.
    #[arg(long, default_value_t = 1000)]
    frames: u64,
    /// Longest run, in seconds, connecting and attaching included.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Check every frame against the producer example's byte pattern.
    #[arg(long)]
    verify: bool,
    /// Aeron channel of the control, announce, descriptor and QoS streams.
    #[arg(long, default_value = "aeron:ipc?term-length=4m")]
    channel: String,
    /// Control stream id (the driver's `driver.control_stream_id`).
    #[arg(long, default_value_t = 1000)]
    control_stream_id: u32,
    /// Announce stream id (the driver's `driver.announce_stream_id`).
    #[arg(long, default_value_t = 1001)]
    announce_stream_id: u32,
    /// Shared descriptor stream id (the producer publishes there).
    #[arg(long, default_value_t = 1100)]
    descriptor_stream_id: u32,
    /// QoS stream id (the driver's `driver.qos_stream_id`).
    #[arg(long, default_value_t = 1200)]
    qos_stream_id: u32,
    /// Directory the driver's SHM files must lie in (the driver's `shm.base_dir`);
    /// repeat for several.
    #[arg(long = "allowed-base-dir", default_value = "/dev/shm/tensorpool")]
    allowed_base_dirs: Vec<PathBuf>,
    /// Consumer id; 0 picks a random one (and a new one on collision).
    #[arg(long, default_value_t = 0)]
    consumer_id: u32,
    /// Ask for a descriptor stream of this consumer's own, as CHANNEL:STREAM_ID
    /// (e.g. `aeron:ipc:31000`); the shared stream is kept if the driver declines.
    #[arg(long, value_parser = parse_channel_and_id)]
    per_consumer_descriptor: Option<(String, u32)>,
    /// The driver's announce period in ms (`policies.announce_period_ms`). The run ends
    /// two periods after its producer detached if no other producer attached.
    #[arg(long, default_value_t = 1000)]
    announce_period_ms: u64,
    /// Longest pause between lease keepalives, in ms. By default the lease the driver
    /// grants sets the pace (a third of it), whatever the driver's configured interval.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keepalive_ms: Option<u64>,
    /// Also print the JSON line every this many ms while running (0: only at the end),
    /// so a supervisor that kills the consumer with SIGKILL still has its counts
    /// (scripts/soak.sh).
    #[arg(long, default_value_t = 0)]
    progress_ms: u64,
    /// Check trace ids: the frame with sequence s must carry `FrameDescriptor.traceId`
    /// BASE + s (what the producers' `--trace-id BASE` sends); 0 does not check.
    #[arg(long, default_value_t = 0)]
    expect_trace_id: u64,
    /// RATE_LIMITED mode (Wire Spec §11): take at most this many frames a second (gated
    /// on the frames' timestamps); the others are skipped and counted in
    /// `frames_rate_limited`, not as drops. 0: every frame.
    #[arg(long, default_value_t = 0)]
    max_rate_hz: u32,
}

/// Splits `CHANNEL:ID` at the last colon (channels contain colons themselves).
fn parse_channel_and_id(text: &str) -> Result<(String, u32), String> {
    let (channel, id) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not CHANNEL:STREAM_ID"))?;
    let id: u32 = id
        .parse()
        .map_err(|e| format!("stream id {id:?} in {text:?}: {e}"))?;
    if channel.is_empty() || id == 0 {
        return Err(format!("{text:?} needs a channel and a non-zero stream id"));
    }
    Ok((channel.to_string(), id))
}

/// What the run achieved.
#[derive(Debug, Default)]
struct Report {
    frames_received: u64,
    frames_verified: u64,
    verify_failures: u64,
    trace_ids_verified: u64,
    trace_failures: u64,
    counters: ConsumerCounters,
    interrupted: bool,
    bytes_received: u64,
    first_frame: Option<Instant>,
    last_frame: Option<Instant>,
    metadata: Option<StreamMetadata>,
    meta_changes: u64,
    first_frame_meta_version: Option<u32>,
    last_frame_meta_version: Option<u32>,
    frames_meta_unseen: u64,
    frame_meta_regressions: u64,
}

impl Report {
    /// Notes the metadata version a delivered frame carried.
    fn on_frame_meta(&mut self, version: u32, status: MetaStatus) {
        self.first_frame_meta_version.get_or_insert(version);
        if self
            .last_frame_meta_version
            .is_some_and(|last| version < last)
        {
            self.frame_meta_regressions += 1;
        }
        self.last_frame_meta_version = Some(version);
        if status == MetaStatus::Unseen {
            self.frames_meta_unseen += 1;
        }
    }

    /// The metadata fields of the JSON line (after a comma).
    fn meta_json(&self) -> String {
        let (version, name, summary, attrs) = match &self.metadata {
            Some(held) => (
                held.meta_version,
                held.metadata.name.as_str(),
                held.metadata.summary.as_str(),
                attrs_text(held),
            ),
            None => (0, "", "", String::new()),
        };
        format!(
            "\"meta_version\":{version},\"meta_name\":{},\"meta_summary\":{},\
             \"meta_attrs\":{},\"meta_changes\":{},\"first_frame_meta_version\":{},\
             \"last_frame_meta_version\":{},\"frames_meta_unseen\":{},\
             \"frame_meta_regressions\":{}",
            json_string(name),
            json_string(summary),
            json_string(&attrs),
            self.meta_changes,
            self.first_frame_meta_version.unwrap_or(0),
            self.last_frame_meta_version.unwrap_or(0),
            self.frames_meta_unseen,
            self.frame_meta_regressions
        )
    }
}

/// `key=value` pairs joined by `;` (values that are not `text/plain` as `<N bytes>`).
fn attrs_text(held: &StreamMetadata) -> String {
    held.metadata
        .attributes
        .iter()
        .map(
            |a| match (a.format.as_str(), std::str::from_utf8(&a.value)) {
                ("text/plain", Ok(text)) => format!("{}={text}", a.key),
                _ => format!("{}=<{} bytes>", a.key, a.value.len()),
            },
        )
        .collect::<Vec<_>>()
        .join(";")
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

impl Report {
    fn json(&self) -> String {
        let secs = match (self.first_frame, self.last_frame) {
            (Some(first), Some(last)) => last.duration_since(first).as_secs_f64(),
            _ => 0.0,
        };
        let (fps, mibps) = if secs > 0.0 {
            (
                self.frames_received as f64 / secs,
                self.bytes_received as f64 / secs / (1024.0 * 1024.0),
            )
        } else {
            (0.0, 0.0)
        };
        let c = &self.counters;
        let invalid = c.drops_not_committed
            + c.drops_stale
            + c.drops_header_format
            + c.drops_payload_slot
            + c.drops_pool
            + c.drops_length
            + c.drops_payload_offset
            + c.drops_tensor;
        let other = c.drops_unmapped
            + c.drops_awaiting_epoch
            + c.drops_epoch
            + c.drops_duplicate
            + c.drops_fallback
            + c.drops_seq_regression;
        format!(
            "{{\"role\":\"consumer\",\"frames_received\":{},\"frames_verified\":{},\
             \"verify_failures\":{},\"drops_gap\":{},\"drops_late\":{},\"drops_resync\":{},\
             \"drops_invalid\":{},\"drops_other\":{},\"qos_drops_gap\":{},\
             \"qos_drops_late\":{},\"frames_rate_limited\":{},\"gaps_rate_limited\":{},\
             \"epoch_changes\":{},\"trace_ids_verified\":{},\"trace_failures\":{},\
             \"interrupted\":{},\
             \"elapsed_s\":{:.6},\"frames_per_s\":{:.3},\"mib_per_s\":{:.3},{}}}",
            self.frames_received,
            self.frames_verified,
            self.verify_failures,
            c.drops_gap,
            c.drops_late,
            c.drops_resync,
            invalid,
            other,
            c.qos_drops_gap(),
            c.qos_drops_late(),
            c.frames_rate_limited,
            c.gaps_rate_limited,
            c.epoch_changes,
            self.trace_ids_verified,
            self.trace_failures,
            self.interrupted,
            secs,
            fps,
            mibps,
            self.meta_json()
        )
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    let mut report = Report::default();
    let result = common::catch_interrupts().and_then(|()| run(&args, &mut report));
    if let Err(error) = result {
        eprintln!("consumer: {error}");
    }
    println!("{}", report.json());
    if let Some(signal) = common::interrupted() {
        return ExitCode::from(common::interrupted_status(signal));
    }
    let verified = (!args.verify
        || (report.verify_failures == 0 && report.frames_verified == report.frames_received))
        && report.trace_failures == 0;
    if report.frames_received >= args.frames && verified {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn config(args: &Args) -> ConsumerConfig {
    let streams = ClientStreams {
        control_stream_id: args.control_stream_id,
        announce_stream_id: args.announce_stream_id,
        descriptor_stream_id: args.descriptor_stream_id,
        qos_stream_id: args.qos_stream_id,
        connect_timeout: common::CONNECT_ATTEMPT,
        ..ClientStreams::on_channel(&args.aeron_dir, &args.channel)
    };
    ConsumerConfig {
        consumer_id: args.consumer_id,
        allowed_base_dirs: args.allowed_base_dirs.clone(),
        request_per_consumer_descriptor: args.per_consumer_descriptor.clone(),
        announce_period: Duration::from_millis(args.announce_period_ms.max(1)),
        keepalive_interval: args.keepalive_ms.map(Duration::from_millis),
        mode: match NonZeroU32::new(args.max_rate_hz) {
            Some(max_rate_hz) => ConsumerMode::RateLimited { max_rate_hz },
            None => ConsumerMode::Stream,
        },
        client_name: "tensorpool-consumer-example".into(),
        ..ConsumerConfig::new(streams, args.stream_id)
    }
}

/// Connects, retrying until the media driver answers or `deadline` passes.
fn connect(args: &Args, deadline: Instant) -> Result<Consumer, String> {
    common::connect_retrying(
        &args.aeron_dir,
        deadline,
        || Consumer::connect(config(args)),
        |error| match error {
            ConsumerError::Link(LinkError::Transport(e)) | ConsumerError::Transport(e) => {
                common::is_no_media_driver(e)
            }
            _ => false,
        },
    )
}

/// Notices that the stream's producer finished: it detached (a revoke with reason
/// `DETACHED`, not a crash or an expiry) and no producer attached within the grace.
struct ProducerWatch {
    grace: Duration,
    detached_at: Option<Instant>,
}

impl ProducerWatch {
    fn on_event(&mut self, event: &ConsumerEvent, consumer: &Consumer) {
        match event {
            ConsumerEvent::ProducerRevoked {
                reason: LeaseRevokeReason::Detached,
            } => {
                tracing::info!("the producer detached");
                self.detached_at.get_or_insert_with(Instant::now);
            }
            // An epoch naming a producer: one (re)attached.
            ConsumerEvent::Attached { .. } | ConsumerEvent::EpochChanged { .. }
                if consumer.producer_id().is_some_and(|id| id != 0) =>
            {
                self.detached_at = None;
            }
            _ => {}
        }
    }

    /// Whether the producer left and the grace passed without a new one.
    fn finished(&self, now: Instant) -> bool {
        self.detached_at
            .is_some_and(|at| now.duration_since(at) >= self.grace)
    }
}

/// Whether `frame` is the producer example's frame: a one-dimensional UINT8 tensor
/// spanning the payload, whose bytes are the pattern of its sequence (one comparison).
fn matches_pattern(pattern: &mut Pattern, frame: &Frame<'_>) -> bool {
    let tensor = frame.tensor();
    let payload = frame.payload();
    tensor.dtype == Dtype::Uint8
        && tensor.ndims == 1
        && usize::try_from(tensor.dims[0]).ok() == Some(payload.len())
        && pattern.matches(frame.seq(), payload)
}

fn run(args: &Args, report: &mut Report) -> Result<(), String> {
    let timeout = Duration::try_from_secs_f64(args.timeout_s)
        .map_err(|e| format!("--timeout-s {}: {e}", args.timeout_s))?;
    let deadline = Instant::now() + timeout;
    let mut consumer = connect(args, deadline)?;
    let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
    let verify = args.verify;
    let mut pattern = Pattern::new(0);
    let progress = Duration::from_millis(args.progress_ms);
    let mut next_progress = Instant::now() + progress;
    let mut watch = ProducerWatch {
        grace: Duration::from_millis(2 * args.announce_period_ms.max(1)),
        detached_at: None,
    };
    let mut producer_finished = false;
    // The driver's last attach refusal and its fix, for the final message.
    let mut last_refusal: Option<String> = None;
    while report.frames_received < args.frames && Instant::now() < deadline {
        if !progress.is_zero() && Instant::now() >= next_progress {
            report.counters = consumer.counters();
            println!("{}", report.json());
            next_progress += progress;
        }
        if common::interrupted().is_some() {
            report.interrupted = true;
            break;
        }
        let mut work = consumer
            .do_work(monotonic_now_ns())
            .map_err(|e| format!("duty cycle: {e}"))?;
        while let Some(event) = consumer.poll_event() {
            watch.on_event(&event, &consumer);
            match event {
                ConsumerEvent::Attached { epoch } => {
                    last_refusal = None;
                    tracing::info!(epoch, "attached");
                }
                ConsumerEvent::EpochChanged { epoch } => tracing::info!(epoch, "epoch changed"),
                ConsumerEvent::MetadataChanged { meta_version } => {
                    report.meta_changes += 1;
                    report.metadata = consumer.metadata().cloned();
                    if let Some(held) = &report.metadata {
                        eprintln!(
                            "consumer: metadata version {meta_version}: name {:?}, summary {:?}, \
                             attributes [{}]",
                            held.metadata.name,
                            held.metadata.summary,
                            attrs_text(held)
                        );
                    }
                }
                ConsumerEvent::AttachRefused { code, message } => {
                    let refusal = format!("{code}: {message}");
                    let fix = attach_refusal_fix(code, &message);
                    // A producer attaching with --create may still make the stream.
                    let may_appear = message == "stream not provisioned";
                    if let Some(fix) = fix.filter(|_| !may_appear) {
                        return Err(format!(
                            "the driver refused stream {} ({refusal}), which waiting cannot \
                             change; {fix}",
                            args.stream_id
                        ));
                    }
                    tracing::info!(%refusal, "attach refused; retrying");
                    last_refusal = Some(match fix {
                        Some(fix) => format!("{refusal}; {fix}"),
                        None => refusal,
                    });
                }
                // A producer that finishes detaches: normal, not a warning.
                ConsumerEvent::ProducerRevoked {
                    reason: LeaseRevokeReason::Detached,
                } => {}
                other => tracing::warn!(event = ?other, "consumer event"),
            }
        }
        if watch.finished(Instant::now()) {
            producer_finished = true;
            break;
        }
        for _ in 0..FRAMES_PER_CYCLE {
            let poll = consumer
                .poll_frame(|frame| {
                    let ok = verify && matches_pattern(&mut pattern, frame);
                    let traced =
                        frame.trace_id() == Some(args.expect_trace_id.wrapping_add(frame.seq()));
                    (
                        frame.payload().len(),
                        ok,
                        traced,
                        frame.meta_version(),
                        frame.meta_status(),
                    )
                })
                .map_err(|e| format!("reading frames: {e}"))?;
            match poll {
                FramePoll::Empty => break,
                FramePoll::Delivered((len, ok, traced, meta_version, meta_status)) => {
                    report.on_frame_meta(meta_version, meta_status);
                    let now = Instant::now();
                    report.first_frame.get_or_insert(now);
                    report.last_frame = Some(now);
                    report.frames_received += 1;
                    report.bytes_received += len as u64;
                    if verify {
                        if ok {
                            report.frames_verified += 1;
                        } else {
                            report.verify_failures += 1;
                        }
                    }
                    if args.expect_trace_id != 0 {
                        if traced {
                            report.trace_ids_verified += 1;
                        } else {
                            report.trace_failures += 1;
                        }
                    }
                    if report.frames_received >= args.frames {
                        break;
                    }
                }
                FramePoll::Dropped(_) | FramePoll::Ignored | FramePoll::RateLimited => {}
            }
            work += 1;
        }
        report.counters = consumer.counters();
        idle.idle(work);
    }
    report.counters = consumer.counters();
    // Detaches and unmaps.
    drop(consumer);
    if report.interrupted {
        return Ok(());
    }
    if report.frames_received < args.frames {
        if producer_finished {
            return Err(format!(
                "received {} of {} frames: the producer detached and no other attached \
                 within {:?} (the frames it sent and this consumer missed are in the drops_* \
                 figures)",
                report.frames_received, args.frames, watch.grace
            ));
        }
        let why = match &last_refusal {
            Some(refusal) => format!("; not attached: the driver's last refusal: {refusal}"),
            None => String::new(),
        };
        return Err(format!(
            "received {} of {} frames before the timeout{why}",
            report.frames_received, args.frames
        ));
    }
    Ok(())
}
