//! `examples`: the example producer and consumer binaries run exactly as README shows
//! (`--rate 0`, consumer `--verify`), as separate processes against an in-process driver,
//! at 640 KiB and 64 B, beside memcpy of 640 KiB and raw Aeron IPC measured in the same
//! run.
//!
//! The figure is the consumer's own summary: frames delivered and verified per second (and
//! MiB/s) between its first and last delivered frame. The producer never waits for the
//! consumer (no flow control in the examples), so a slower consumer drops frames; the
//! drops are in the note.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::driver_host::{DriverSpec, InProcessDriver, CONTROL_CHANNEL, FIRST_STREAM_ID};
use crate::error::{BenchError, Context};
use crate::report::{Figure, Target};
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::driver_scale::locate_built_program;
use crate::scenarios::large_frames::{BANDWIDTH_TARGET, TARGET_PAYLOAD};
use crate::scenarios::{aeron_rate, memcpy};
use crate::stats::size_label;
use crate::sys::{check_interrupted, ChildProcess, Scratch};

/// Header ring slots: the large-frames scenario's ring.
const RING_SLOTS: u32 = memcpy::RING_SLOTS as u32;
/// The small frame size.
pub(crate) const SMALL_PAYLOAD: usize = 64;

/// The `examples` scenario.
pub struct Examples;

impl Scenario for Examples {
    fn name(&self) -> &'static str {
        "examples"
    }

    fn summary(&self) -> &'static str {
        "examples/producer → examples/consumer --verify as README runs them, 640 KiB and 64 B (vs memcpy, raw Aeron IPC)"
    }

    fn references(&self) -> &'static [&'static str] {
        &["memcpy", "aeron-rate"]
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let producer = locate_built_program(
            ctx,
            "examples/producer",
            &["-p", "tensorpool", "--examples"],
        )?;
        let consumer = locate_built_program(
            ctx,
            "examples/consumer",
            &["-p", "tensorpool", "--examples"],
        )?;
        let scratch = Scratch::new("examples")?;
        let pools = [
            (1u16, 4096u32),
            (2, memcpy::stride_for(TARGET_PAYLOAD) as u32),
        ];
        let spec = DriverSpec::in_scratch(&scratch, RING_SLOTS, &pools, 1)?;
        let _driver = InProcessDriver::start(&spec, None)?;
        let pair = ExamplePair {
            tag: "rust",
            producer,
            consumer,
            spec: &spec,
            scratch: &scratch,
        };
        let mut figures = Vec::new();

        let large = pair.run(TARGET_PAYLOAD, ctx.duration)?;
        let label = size_label(TARGET_PAYLOAD);
        figures.push(
            Figure::new(
                self.name(),
                format!("examples delivered+verified {label}"),
                large.mib_per_s,
                "MiB/s",
            )
            .against(ctx.figure("memcpy", &memcpy::bandwidth_name(TARGET_PAYLOAD)))
            .with_target(Target::RatioAtLeast(BANDWIDTH_TARGET))
            .with_note(large.note()),
        );

        let small = pair.run(SMALL_PAYLOAD, ctx.duration)?;
        figures.push(
            Figure::new(
                self.name(),
                format!("examples delivered+verified {}", size_label(SMALL_PAYLOAD)),
                small.frames_per_s,
                "frames/s",
            )
            .against(ctx.figure("aeron-rate", aeron_rate::RATE_NAME))
            .with_note(small.note()),
        );
        Ok(figures)
    }
}

/// A producer and a consumer program taking the examples' flags and printing their JSON
/// summary (the Rust examples, the C examples of ffi/), and the driver they run against.
pub(crate) struct ExamplePair<'a> {
    /// Names the pair's output files in the scratch directory.
    pub tag: &'static str,
    pub producer: PathBuf,
    pub consumer: PathBuf,
    /// The driver's Aeron and SHM directories (its first static stream is used).
    pub spec: &'a DriverSpec,
    pub scratch: &'a Scratch,
}

/// What one run's summaries said.
#[derive(Debug)]
pub(crate) struct PairRun {
    pub payload: usize,
    pub frames_sent: u64,
    pub frames_received: u64,
    pub frames_verified: u64,
    pub drops: u64,
    pub frames_per_s: f64,
    pub mib_per_s: f64,
    pub producer_seconds: f64,
}

impl PairRun {
    /// The run in words, for a figure's note.
    pub fn note(&self) -> String {
        format!(
            "{} frames of {} sent in {:.1} s; the consumer delivered {} ({} verified, {} \
             dropped: gap+late+resync+invalid+other), rate over its first-to-last frame; \
             {RING_SLOTS}-slot ring",
            self.frames_sent,
            size_label(self.payload),
            self.producer_seconds,
            self.frames_received,
            self.frames_verified,
            self.drops,
        )
    }
}

impl ExamplePair<'_> {
    /// Runs the consumer, then the producer for about `duration` worth of frames, and
    /// stops the consumer once the producer is done. A consumer that verified fewer frames
    /// than it received is an error: a figure of corrupted frames means nothing.
    pub fn run(&self, payload: usize, duration: Duration) -> Result<PairRun, BenchError> {
        let common = self.common_args();
        let common: Vec<&str> = common.iter().map(String::as_str).collect();
        let label = format!("{}-{}", self.tag, size_label(payload));
        let mut consumer = spawn(
            &self.consumer,
            &common,
            &["--frames", "1000000000", "--verify"],
            &self.scratch.join(&format!("consumer-{label}")),
        )?;
        // Let the consumer attach before the first frame.
        std::thread::sleep(Duration::from_millis(500));
        consumer.check_running()?;
        let producer_out = self.scratch.join(&format!("producer-{label}"));
        self.publish(payload, duration, &common, &producer_out)?;
        // The consumer has read what it could; SIGTERM makes it print its summary.
        std::thread::sleep(Duration::from_millis(200));
        consumer.terminate(Duration::from_secs(5));
        let sent = summary(&producer_out)?;
        let received = summary(&self.scratch.join(&format!("consumer-{label}")))?;
        let drops = [
            "drops_gap",
            "drops_late",
            "drops_resync",
            "drops_invalid",
            "drops_other",
        ]
        .iter()
        .map(|key| number(&received, key))
        .sum::<f64>() as u64;
        let run = PairRun {
            payload,
            frames_sent: number(&sent, "frames_sent") as u64,
            frames_received: number(&received, "frames_received") as u64,
            frames_verified: number(&received, "frames_verified") as u64,
            drops,
            frames_per_s: number(&received, "frames_per_s"),
            mib_per_s: number(&received, "mib_per_s"),
            producer_seconds: number(&sent, "elapsed_s"),
        };
        if run.frames_verified != run.frames_received || run.frames_received == 0 {
            return Err(BenchError::Measure(format!(
                "the {} consumer verified {} of {} frames received",
                self.tag, run.frames_verified, run.frames_received
            )));
        }
        Ok(run)
    }

    /// Runs the producer alone (no consumer) for about `duration` worth of frames and
    /// returns its summary's frames per second: the publishing cost of the program.
    pub fn publish_alone(&self, payload: usize, duration: Duration) -> Result<f64, BenchError> {
        let common = self.common_args();
        let common: Vec<&str> = common.iter().map(String::as_str).collect();
        let out = self.scratch.join(&format!(
            "producer-alone-{}-{}",
            self.tag,
            size_label(payload)
        ));
        self.publish(payload, duration, &common, &out)?;
        let sent = summary(&out)?;
        Ok(number(&sent, "frames_per_s"))
    }

    /// The flags both programs take: the driver's directories and stream.
    pub(crate) fn common_args(&self) -> Vec<String> {
        [
            "--aeron-dir".to_string(),
            self.spec.aeron_dir.display().to_string(),
            "--channel".to_string(),
            CONTROL_CHANNEL.to_string(),
            "--stream-id".to_string(),
            FIRST_STREAM_ID.to_string(),
            "--allowed-base-dir".to_string(),
            self.spec.shm_dir.display().to_string(),
            "--timeout-s".to_string(),
            "60".to_string(),
        ]
        .into()
    }

    /// Runs the producer to completion: frames for about `duration` at a first guess of
    /// the rate (its summary, written to `<out>.stdout`, gives the real time taken).
    pub(crate) fn publish(
        &self,
        payload: usize,
        duration: Duration,
        common: &[&str],
        out: &Path,
    ) -> Result<(), BenchError> {
        let frames = match payload {
            p if p >= 64 << 10 => (duration.as_secs_f64() * 20_000.0) as u64,
            _ => (duration.as_secs_f64() * 2_000_000.0) as u64,
        };
        let frames_arg = frames.to_string();
        let payload_arg = payload.to_string();
        let mut producer = spawn(
            &self.producer,
            common,
            &[
                "--frames",
                frames_arg.as_str(),
                "--payload-bytes",
                payload_arg.as_str(),
                "--rate",
                "0",
                "--linger-ms",
                "200",
            ],
            out,
        )?;
        let deadline = Instant::now() + duration * 20 + Duration::from_secs(30);
        while producer.wait_timeout(Duration::from_millis(100)).is_none() {
            check_interrupted()?;
            if Instant::now() >= deadline {
                return Err(BenchError::Setup(format!(
                    "the {} producer did not finish",
                    self.tag
                )));
            }
        }
        Ok(())
    }
}

/// Starts an example with its stdout in `<out>.stdout`, stderr in `<out>.stderr`.
pub(crate) fn spawn(
    exe: &Path,
    common: &[&str],
    extra: &[&str],
    out: &Path,
) -> Result<ChildProcess, BenchError> {
    let stdout_path = out.with_extension("stdout");
    let stderr_path = out.with_extension("stderr");
    let stdout =
        std::fs::File::create(&stdout_path).setup(format!("creating {}", stdout_path.display()))?;
    let stderr =
        std::fs::File::create(&stderr_path).setup(format!("creating {}", stderr_path.display()))?;
    let mut command = Command::new(exe);
    command
        .args(common)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    ChildProcess::spawn(command, &exe.display().to_string())
}

/// The JSON summary line an example printed.
pub(crate) fn summary(out: &Path) -> Result<String, BenchError> {
    let path = out.with_extension("stdout");
    let text = std::fs::read_to_string(&path).setup(format!("reading {}", path.display()))?;
    text.lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .map(str::to_string)
        .ok_or_else(|| {
            let stderr = std::fs::read_to_string(out.with_extension("stderr")).unwrap_or_default();
            BenchError::Setup(format!(
                "no summary in {}; stderr:\n{stderr}",
                path.display()
            ))
        })
}

/// A number of a flat JSON line (NaN when absent).
pub(crate) fn number(line: &str, key: &str) -> f64 {
    let pattern = format!("\"{key}\":");
    line.find(&pattern)
        .map(|at| &line[at + pattern.len()..])
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}
