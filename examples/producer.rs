//! Publishes frames on a tensorpool stream through a running SHM driver (`tp-driver`).
//!
//! ```sh
//! cargo run --release --example producer -- \
//!     --stream-id 10000 --frames 10000 --payload-bytes 65536 --rate 1000
//! ```
//!
//! It connects to the media driver in `--aeron-dir` (by default Aeron's own default,
//! `AERON_DIR` or `/dev/shm/aeron-<user>`, where a driver without `driver.aeron_dir`
//! runs) and attaches as the stream's producer, retrying both until the driver is up (at
//! most `--timeout-s`), then publishes `--frames` frames at `--rate` per second (`0` = as
//! fast as possible), filling each payload slot in place (claim, fill, commit).
//!
//! A refusal that waiting cannot cure (the stream is not configured and `--create` was
//! not given, dynamic streams are disabled, a page-policy or layout mismatch) ends the run
//! at once with the driver's reason and the fix; a run that times out names the last
//! refusal. On attach it prints the stream it was granted on stderr: with `--create` the
//! driver may create the stream under another id (dynamic streams take their ids from the
//! driver's `driver.stream_id_range`), and consumers must read that id.
//!
//! Payload pattern, for consumers to verify: byte `i` of the frame with sequence number
//! `s` is `(s + i) mod 251`. Sequence numbers restart at 0 in every epoch and the pattern
//! follows them, so frames stay verifiable across a reattach. Every frame is described as
//! a one-dimensional UINT8 tensor with `dims[0]` = the payload length.
//!
//! With `--meta-name NAME` it publishes the data source's metadata (Wire Spec §10.3)
//! once attached, before the first frame: that name, `--meta-summary`, and a `text/plain`
//! attribute per `--meta-attr KEY=VALUE`, plus `phase=1`. With `--meta-change-at N` it
//! changes `phase` to `2` before frame N, so frames from N on carry the next metadata
//! version. The metadata is re-announced every `--meta-interval-ms`.
//!
//! At the end it keeps its lease for `--linger-ms` (so consumers can read the last frames
//! before the epoch ends), detaches, and prints one JSON line on stdout:
//!
//! ```text
//! {"role":"producer","stream_id":10000,"requested_stream_id":10000,"frames_sent":10000,
//!  "frames_too_large":0,"descriptors_dropped":0,"epoch_changes":0,"interrupted":false,
//!  "elapsed_s":10.001,"frames_per_s":999.9,"mib_per_s":62.49}
//! ```
//!
//! (on one line; `stream_id` is the stream granted, 0 if none was). The exit status is 0
//! when all frames were published, 1 otherwise, and 128 + the signal number when SIGINT
//! or SIGTERM stopped it (it still detaches and prints the line). Logs go to stderr; set `RUST_LOG` (e.g. `RUST_LOG=info`) for more.

mod common;

use clap::Parser;
use common::Pattern;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tensorpool::client::metadata::{Attribute, DataSourceMetadata};
use tensorpool::client::producer::{
    monotonic_now_ns, DescriptorStamp, Producer, ProducerConfig, ProducerError, ProducerEvent,
    PublishError, DEFAULT_ALLOWED_BASE_DIR,
};
use tensorpool::client::tensor::bytes_header;
use tensorpool::client::{attach_refusal_fix, ClientStreams, LinkError};
use tensorpool::protocol::control::TensorHeader;
use tensorpool::protocol::driver::PublishMode;
use tensorpool::transport::{default_aeron_dir, BackoffIdle};

/// Most lag behind `--rate` made up by publishing faster.
const MAX_CATCH_UP: Duration = Duration::from_millis(100);

/// Command line.
#[derive(Debug, Parser)]
#[command(
    about = "Publish test frames on a tensorpool stream",
    long_about = "Publish test frames on a tensorpool stream through a running tp-driver.\n\
                  Byte i of the frame with sequence s is (s + i) mod 251. Prints one JSON \
                  line with the results and exits 0 when every frame was published."
)]
struct Args {
    /// Aeron directory of the media driver (the driver's `driver.aeron_dir`); the
    /// default is Aeron's (`AERON_DIR`, else /dev/shm/aeron-<user>), which a driver
    /// without `driver.aeron_dir` uses.
    #[arg(long, default_value_os_t = default_aeron_dir())]
    aeron_dir: PathBuf,
    /// Stream to produce.
    #[arg(long, default_value_t = 10000)]
    stream_id: u32,
    /// Frames to publish.
    #[arg(long, default_value_t = 1000)]
    frames: u64,
    /// Payload bytes per frame (must fit the stream's largest pool stride).
    #[arg(long, default_value_t = 4096)]
    payload_bytes: usize,
    /// Frames per second; 0 publishes as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Aeron channel of the control, announce, descriptor and QoS streams.
    #[arg(long, default_value = "aeron:ipc?term-length=4m")]
    channel: String,
    /// Control stream id (the driver's `driver.control_stream_id`).
    #[arg(long, default_value_t = 1000)]
    control_stream_id: u32,
    /// Announce stream id (the driver's `driver.announce_stream_id`).
    #[arg(long, default_value_t = 1001)]
    announce_stream_id: u32,
    /// Shared descriptor stream id (consumers subscribe to it).
    #[arg(long, default_value_t = 1100)]
    descriptor_stream_id: u32,
    /// QoS stream id (the driver's `driver.qos_stream_id`).
    #[arg(long, default_value_t = 1200)]
    qos_stream_id: u32,
    /// Directory the driver's SHM files must lie in (the driver's `shm.base_dir`);
    /// repeat for several.
    #[arg(long = "allowed-base-dir", default_value = DEFAULT_ALLOWED_BASE_DIR)]
    allowed_base_dirs: Vec<PathBuf>,
    /// Client id; 0 picks a random one.
    #[arg(long, default_value_t = 0)]
    client_id: u32,
    /// Let the driver create the stream if it is not configured (EXISTING_OR_CREATE).
    /// The driver may pick another id from its `driver.stream_id_range`: the granted id
    /// is printed on stderr and in the JSON line, and consumers must use it.
    #[arg(long)]
    create: bool,
    /// Longest pause between lease keepalives, in ms. By default the lease the driver
    /// grants sets the pace (a third of it), whatever the driver's configured interval.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    keepalive_ms: Option<u64>,
    /// Longest wait, in seconds, for the driver: to connect, to attach, and to reattach
    /// while publishing.
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
    /// How long to keep the lease after the last frame, in ms.
    #[arg(long, default_value_t = 500)]
    linger_ms: u64,
    /// Trace ids: the frame with sequence s carries `FrameDescriptor.traceId` BASE + s
    /// (and the publish time); 0 sends none.
    #[arg(long, default_value_t = 0)]
    trace_id: u64,
    /// Publish metadata with this data source name (see the module docs).
    #[arg(long)]
    meta_name: Option<String>,
    /// Metadata summary (with `--meta-name`).
    #[arg(long, default_value = "")]
    meta_summary: String,
    /// A `text/plain` metadata attribute, KEY=VALUE; repeat for several.
    #[arg(long = "meta-attr", value_parser = parse_attr)]
    meta_attrs: Vec<(String, String)>,
    /// Change the metadata (`phase` 1 -> 2) before this frame.
    #[arg(long)]
    meta_change_at: Option<u64>,
    /// Metadata re-announce period, in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    meta_interval_ms: u64,
}

/// Splits `KEY=VALUE`.
fn parse_attr(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))?;
    Ok((key.to_string(), value.to_string()))
}

/// The metadata of `--meta-*` for `phase`, if `--meta-name` was given.
fn metadata(args: &Args, phase: u32) -> Option<DataSourceMetadata> {
    let name = args.meta_name.as_ref()?;
    let mut metadata =
        DataSourceMetadata::named(name.as_str()).with_summary(args.meta_summary.as_str());
    for (key, value) in &args.meta_attrs {
        metadata.set_attribute(Attribute::new(key.as_str(), "text/plain", value.as_bytes()));
    }
    Some(metadata.with_attribute("phase", "text/plain", phase.to_string()))
}

/// What the run achieved.
#[derive(Debug, Default)]
struct Report {
    requested_stream_id: u32,
    /// The stream the driver granted (0 until it did).
    stream_id: u32,
    /// The driver's last attach refusal, `CODE: message`.
    last_refusal: Option<String>,
    frames_sent: u64,
    frames_too_large: u64,
    descriptors_dropped: u64,
    epoch_changes: u64,
    interrupted: bool,
    elapsed: Duration,
    payload_bytes: usize,
}

impl Report {
    fn json(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let (fps, mibps) = if secs > 0.0 {
            let fps = self.frames_sent as f64 / secs;
            (fps, fps * self.payload_bytes as f64 / (1024.0 * 1024.0))
        } else {
            (0.0, 0.0)
        };
        format!(
            "{{\"role\":\"producer\",\"stream_id\":{},\"requested_stream_id\":{},\
             \"frames_sent\":{},\"frames_too_large\":{},\
             \"descriptors_dropped\":{},\"epoch_changes\":{},\"interrupted\":{},\
             \"elapsed_s\":{:.6},\"frames_per_s\":{:.3},\"mib_per_s\":{:.3}}}",
            self.stream_id,
            self.requested_stream_id,
            self.frames_sent,
            self.frames_too_large,
            self.descriptors_dropped,
            self.epoch_changes,
            self.interrupted,
            secs,
            fps,
            mibps
        )
    }
}

fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    let mut report = Report {
        requested_stream_id: args.stream_id,
        payload_bytes: args.payload_bytes,
        ..Report::default()
    };
    let result = common::catch_interrupts().and_then(|()| run(&args, &mut report));
    if let Err(error) = result {
        eprintln!("producer: {error}");
    }
    println!("{}", report.json());
    if let Some(signal) = common::interrupted() {
        return ExitCode::from(common::interrupted_status(signal));
    }
    if report.frames_sent == args.frames {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn config(args: &Args) -> ProducerConfig {
    let streams = ClientStreams {
        control_stream_id: args.control_stream_id,
        announce_stream_id: args.announce_stream_id,
        descriptor_stream_id: args.descriptor_stream_id,
        qos_stream_id: args.qos_stream_id,
        connect_timeout: common::CONNECT_ATTEMPT,
        ..ClientStreams::on_channel(&args.aeron_dir, &args.channel)
    };
    let config = ProducerConfig::new(args.stream_id)
        .streams(streams)
        .client_id(args.client_id)
        .allowed_base_dirs(args.allowed_base_dirs.iter().cloned())
        .metadata_interval(Duration::from_millis(args.meta_interval_ms));
    let config = match args.keepalive_ms {
        Some(ms) => config.keepalive_interval(Duration::from_millis(ms)),
        None => config,
    };
    if args.create {
        config.publish_mode(PublishMode::ExistingOrCreate)
    } else {
        config
    }
}

/// Connects, retrying until the media driver answers or `deadline` passes.
fn connect(args: &Args, deadline: Instant) -> Result<Producer, String> {
    common::connect_retrying(
        &args.aeron_dir,
        deadline,
        || Producer::new(config(args)),
        |error| match error {
            ProducerError::Link(LinkError::Transport(e)) | ProducerError::Transport(e) => {
                common::is_no_media_driver(e)
            }
            _ => false,
        },
    )
}

/// Runs the duty cycle, handling events, until `done` holds or `deadline` passes.
fn pump_until(
    producer: &mut Producer,
    report: &mut Report,
    deadline: Instant,
    mut done: impl FnMut(&Producer) -> bool,
) -> Result<bool, String> {
    let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
    loop {
        let work = duty_cycle(producer, report)?;
        if done(producer) {
            return Ok(true);
        }
        if common::interrupted().is_some() {
            report.interrupted = true;
            return Ok(false);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        idle.idle(work);
    }
}

fn duty_cycle(producer: &mut Producer, report: &mut Report) -> Result<usize, String> {
    let work = producer
        .do_work(monotonic_now_ns())
        .map_err(|e| format!("duty cycle: {e}"))?;
    for event in producer.events() {
        match event {
            ProducerEvent::Attached { stream_id, epoch } => {
                report.stream_id = stream_id;
                report.last_refusal = None;
                if stream_id == report.requested_stream_id {
                    eprintln!("producer: attached to stream {stream_id} (epoch {epoch})");
                } else {
                    eprintln!(
                        "producer: attached to stream {stream_id} (epoch {epoch}), not the \
                         requested {}: the driver created it under an id of its \
                         driver.stream_id_range; run consumers with --stream-id {stream_id}",
                        report.requested_stream_id
                    );
                }
            }
            ProducerEvent::AttachRefused { code, message } => {
                let refusal = format!("{code}: {message}");
                if let Some(fix) = attach_refusal_fix(code, &message) {
                    return Err(format!(
                        "the driver refused stream {} ({refusal}), which waiting cannot \
                         change; {fix}",
                        report.requested_stream_id
                    ));
                }
                tracing::info!(%refusal, "attach refused; retrying");
                report.last_refusal = Some(refusal);
            }
            ProducerEvent::Reattached { epoch } => {
                report.epoch_changes += 1;
                report.last_refusal = None;
                tracing::info!(epoch, "reattached");
            }
            other => tracing::warn!(event = ?other, "producer event"),
        }
    }
    Ok(work)
}

fn run(args: &Args, report: &mut Report) -> Result<(), String> {
    let timeout = Duration::from_secs(args.timeout_s);
    let mut producer = connect(args, Instant::now() + timeout)?;
    if !pump_until(&mut producer, report, Instant::now() + timeout, |p| {
        p.is_attached()
    })? {
        let why = match &report.last_refusal {
            Some(refusal) => format!("the driver's last refusal: {refusal}"),
            None => format!(
                "no refusal came back: does a driver serve control stream {} on {} \
                 (`tp status` names its streams)?",
                args.control_stream_id, args.channel
            ),
        };
        return Err(format!(
            "not attached to stream {} within {}s; {why}",
            args.stream_id, args.timeout_s
        ));
    }
    let tensor = bytes_header(args.payload_bytes).map_err(|e| e.to_string())?;
    let mut pattern = Pattern::new(args.payload_bytes);
    if let Some(metadata) = metadata(args, 1) {
        producer
            .set_metadata(metadata)
            .map_err(|e| format!("--meta-*: {e}"))?;
    }

    let start = Instant::now();
    let result = publish_all(args, &mut producer, report, &tensor, &mut pattern);
    report.elapsed = start.elapsed();
    report.descriptors_dropped = producer.counters().descriptors_dropped;
    result?;
    if report.interrupted {
        // Dropping the producer detaches and unmaps.
        return Ok(());
    }

    let linger = Instant::now() + Duration::from_millis(args.linger_ms);
    pump_until(&mut producer, report, linger, |_| false)?;
    report.descriptors_dropped = producer.counters().descriptors_dropped;
    Ok(())
}

/// Publishes `--frames` frames at `--rate`, waiting through reattaches (each wait at most
/// `--timeout-s`).
fn publish_all(
    args: &Args,
    producer: &mut Producer,
    report: &mut Report,
    tensor: &TensorHeader,
    pattern: &mut Pattern,
) -> Result<(), String> {
    let timeout = Duration::from_secs(args.timeout_s);
    let period = (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate));
    let mut next_due = Instant::now();
    let mut last_progress = next_due;
    let mut idle = BackoffIdle::with_max_park(Duration::from_millis(1));
    let mut attempted = 0u64;
    while attempted < args.frames {
        if common::interrupted().is_some() {
            report.interrupted = true;
            return Ok(());
        }
        let work = duty_cycle(producer, report)?;
        let now = Instant::now();
        if period.is_some() && now < next_due {
            idle.idle(work);
            continue;
        }
        if args.meta_change_at == Some(attempted) {
            if let Some(metadata) = metadata(args, 2) {
                producer
                    .set_metadata(metadata)
                    .map_err(|e| format!("--meta-*: {e}"))?;
            }
        }
        match producer.claim(args.payload_bytes) {
            Ok(mut claim) => {
                let seq = claim.seq();
                // One copy, straight into the slot.
                let payload = claim.payload_mut();
                let len = payload.len();
                payload.copy_from_slice(pattern.frame(seq, len));
                let stamp = match args.trace_id {
                    0 => DescriptorStamp::NONE,
                    base => DescriptorStamp {
                        trace_id: base.wrapping_add(seq),
                        timestamp_ns: monotonic_now_ns(),
                    },
                };
                claim
                    .commit_stamped(tensor, monotonic_now_ns(), stamp)
                    .map_err(|e| format!("commit: {e}"))?;
                report.frames_sent += 1;
                last_progress = now;
                idle.reset();
            }
            Err(PublishError::NotAttached) => {
                if now.duration_since(last_progress) >= timeout {
                    return Err(match &report.last_refusal {
                        Some(refusal) => format!(
                            "lease lost and not regained within {}s; the driver's last \
                             refusal: {refusal}",
                            args.timeout_s
                        ),
                        None => format!("lease lost and not regained within {}s", args.timeout_s),
                    });
                }
                idle.idle(work);
                continue;
            }
            Err(error @ PublishError::FrameTooLarge { .. }) => {
                if report.frames_too_large == 0 {
                    tracing::error!(%error, "frames do not fit the stream's pools");
                }
                report.frames_too_large += 1;
            }
            Err(error) => return Err(format!("publish: {error}")),
        }
        attempted += 1;
        if let Some(period) = period {
            next_due += period;
            // After a stall (e.g. a reattach) resume the rate instead of bursting to catch up.
            if now.saturating_duration_since(next_due) > MAX_CATCH_UP {
                next_due = now;
            }
        }
    }
    Ok(())
}
