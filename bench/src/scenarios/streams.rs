//! `streams`: what the driver and its control plane cost as concurrent streams are added:
//! 1, 10 and 100 streams, each with one producer lease and one consumer lease.
//!
//! For each point a fresh `tp-driver` (child process, embedded media driver) serves that
//! many static streams of a small profile (64 header slots, one 4 KiB pool, prefault off,
//! default policies: announces at 1 Hz, keepalives every second). One raw control client
//! on one thread of the harness (as in `attach` and `driver-scale`) attaches a producer
//! (each attach creates that stream's epoch files) and then a consumer on every stream,
//! one request at a time, and keeps all 2 × N leases alive at 1 Hz. Frames do not go
//! through the driver, so none are sent. With everything attached it
//! - counts the `ShmPoolAnnounce` messages and bytes on the announce stream over a window,
//!   while the driver's CPU time is read from /proc/<pid> over the same window;
//! - then measures [`ATTACH_PROBES`] consumer attach round trips (attach answered, then
//!   detach answered) on the first stream, paced 1–3 ms apart so each meets the driver as
//!   real attaches do, between its keepalives and announces.
//!
//! The client library's `Producer` and `Consumer` (one Aeron client each) were tried
//! first: with about 80 of them on one media driver, `tp-driver`'s own Aeron client was
//! lapped by the media driver's broadcast and the driver exited. That is fixed (the
//! driver drains the broadcast every duty cycle and rebuilds a closed client;
//! tests/many_clients.rs, docs/DESIGN.md); the raw client stays because frames do not
//! pass through the driver, so the driver-side figures are the same.
//!
//! The reference of each curve is its 1-stream point, measured the same way in the same
//! run.

use std::time::{Duration, Instant};

use tensorpool::protocol::driver::{ResponseCode, Role};
use tensorpool::protocol::{control, MessageHeader};
use tensorpool::transport::BackoffIdle;

use crate::control_client::{decode, ControlClient, Lease, Reply};
use crate::driver_host::{DriverSpec, CONTROL_CHANNEL, CONTROL_STREAM, FIRST_STREAM_ID};
use crate::error::{BenchError, Context as _};
use crate::report::Figure;
use crate::scenario::{RunContext, Scenario};
use crate::scenarios::driver_scale::{locate_tp_driver, spawn_driver, stderr_tail, wait_running};
use crate::stats::Latency;
use crate::sys::{check_interrupted, ChildProcess, ProcessSample, Scratch};

/// The stream counts measured (the curve's points).
pub const STREAM_COUNTS: [u32; 3] = [1, 10, 100];
/// Consumer attach round trips measured per point.
pub const ATTACH_PROBES: usize = 200;
/// Client ids of the probing attaches start here (far from the ids 1 and 2 of the held
/// leases).
const PROBE_CLIENT_ID: u32 = 0x7000_0000;
/// Keepalive period of every lease (the driver's default `lease_keepalive_interval_ms`).
const KEEPALIVE_PERIOD: Duration = Duration::from_secs(1);
/// Longest wait for one probe's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// The `streams` scenario.
pub struct Streams;

impl Scenario for Streams {
    fn name(&self) -> &'static str {
        "streams"
    }

    fn summary(&self) -> &'static str {
        "1, 10, 100 streams with a producer and a consumer lease each: tp-driver CPU, announce traffic, attach latency"
    }

    fn run(&self, ctx: &RunContext) -> Result<Vec<Figure>, BenchError> {
        let binary = locate_tp_driver(ctx)?;
        let mut points = Vec::with_capacity(STREAM_COUNTS.len());
        for streams in STREAM_COUNTS {
            check_interrupted()?;
            let point = measure_point(ctx, &binary, streams).map_err(|e| match e {
                BenchError::Setup(what) => BenchError::Setup(format!("{streams} streams: {what}")),
                BenchError::Measure(what) => {
                    BenchError::Measure(format!("{streams} streams: {what}"))
                }
                BenchError::Interrupted => e,
            })?;
            points.push(point);
        }
        Ok(figures(self.name(), &points))
    }
}

/// What one point of the curve measured.
struct Point {
    streams: u32,
    driver_cpu: f64,
    driver_switches: f64,
    announces_per_s: f64,
    announce_bytes_per_s: f64,
    attach: Latency,
    setup: Duration,
    producer_attach: Latency,
    window: Duration,
}

fn figures(scenario: &str, points: &[Point]) -> Vec<Figure> {
    let mut figures = Vec::new();
    let mut first: Option<[Figure; 5]> = None;
    for point in points {
        let n = point.streams;
        let row = [
            Figure::new(
                scenario,
                format!("driver CPU, {n} streams"),
                point.driver_cpu,
                "% core",
            )
            .with_note(format!(
                "{n} streams × (1 producer + 1 consumer lease) = {} leases keepaliving at 1 Hz \
                 from one raw control client; scheduler CPU over {:.1} s, {:.0} context \
                 switches/s; the {} attaches took {:.0} ms one after the other (producer \
                 attach, which creates the epoch's files: p50 {:.0} µs, max {:.0} µs)",
                2 * n,
                point.window.as_secs_f64(),
                point.driver_switches,
                2 * n,
                point.setup.as_secs_f64() * 1e3,
                point.producer_attach.quantile_us(0.5),
                point.producer_attach.quantile_us(1.0)
            )),
            Figure::new(
                scenario,
                format!("announces/s, {n} streams"),
                point.announces_per_s,
                "msg/s",
            ),
            Figure::new(
                scenario,
                format!("announce bytes/s, {n} streams"),
                point.announce_bytes_per_s,
                "B/s",
            ),
            Figure::new(
                scenario,
                format!("consumer attach p50, {n} streams"),
                point.attach.quantile_us(0.5),
                "µs",
            )
            .with_note(format!(
                "{} attach+detach round trips on stream {FIRST_STREAM_ID}, 1–3 ms apart, \
                 while all {n} streams ran; max {:.0} µs",
                point.attach.count(),
                point.attach.quantile_us(1.0)
            )),
            Figure::new(
                scenario,
                format!("consumer attach p99, {n} streams"),
                point.attach.quantile_us(0.99),
                "µs",
            ),
        ];
        match &first {
            None => {
                let refs = row.map(Figure::marked_reference);
                figures.extend(refs.iter().cloned());
                first = Some(refs);
            }
            Some(refs) => {
                figures.extend(row.into_iter().zip(refs).map(|(f, r)| f.against(Some(r))));
            }
        }
    }
    figures
}

fn measure_point(
    ctx: &RunContext,
    binary: &std::path::Path,
    streams: u32,
) -> Result<Point, BenchError> {
    let scratch = Scratch::new(&format!("streams-{streams}"))?;
    let spec = DriverSpec::in_scratch(&scratch, 64, &[(1, 4096)], streams)?;
    let config_path = scratch.join("driver.toml");
    std::fs::write(&config_path, spec.toml())
        .setup(format!("writing {}", config_path.display()))?;
    let stderr_path = scratch.join("tp-driver.stderr");
    let mut driver = spawn_driver(binary, &config_path, &stderr_path, &scratch)?;
    let result = run_point(ctx, &spec, &mut driver, &stderr_path, streams);
    driver.terminate(Duration::from_secs(5));
    result.map_err(|e| match e {
        BenchError::Interrupted => e,
        BenchError::Setup(what) => {
            BenchError::Setup(format!("{what}{}", stderr_tail(&stderr_path)))
        }
        BenchError::Measure(what) => {
            BenchError::Measure(format!("{what}{}", stderr_tail(&stderr_path)))
        }
    })
}

fn run_point(
    ctx: &RunContext,
    spec: &DriverSpec,
    driver: &mut ChildProcess,
    stderr_path: &std::path::Path,
    streams: u32,
) -> Result<Point, BenchError> {
    wait_running(driver, stderr_path)?;
    let pid = driver.pid();

    let window = ctx.scaled(1.0).max(Duration::from_secs(2));
    let mut load = StreamLoad::connect(spec)?;
    let setup_start = Instant::now();
    let mut producer_attach = Latency::new()?;
    for stream_id in spec.stream_ids() {
        let sent = Instant::now();
        load.attach(stream_id, 1, Role::Producer)?;
        producer_attach.record_ns(sent.elapsed().as_nanos() as u64);
    }
    for stream_id in spec.stream_ids() {
        load.attach(stream_id, 2, Role::Consumer)?;
    }
    let setup = setup_start.elapsed();
    load.serve_for(Duration::from_secs(1))?;
    let probed = load.probe(pid, window)?;
    driver.check_running()?;
    Ok(Point {
        streams,
        driver_cpu: probed.cpu,
        driver_switches: probed.switches,
        announces_per_s: probed.announces as f64 / probed.window.as_secs_f64(),
        announce_bytes_per_s: probed.announce_bytes as f64 / probed.window.as_secs_f64(),
        attach: probed.attach,
        setup,
        producer_attach,
        window: probed.window,
    })
}

/// What the probing measured.
struct Probed {
    cpu: f64,
    switches: f64,
    window: Duration,
    announces: u64,
    announce_bytes: u64,
    attach: Latency,
}

/// The raw control client holding every lease of a point.
struct StreamLoad {
    client: ControlClient,
    leases: Vec<Lease>,
    replies: Vec<Reply>,
    round_start: Instant,
    sent_this_round: usize,
    revoked: u64,
    announces: u64,
    announce_bytes: u64,
}

impl StreamLoad {
    fn connect(spec: &DriverSpec) -> Result<Self, BenchError> {
        Ok(Self {
            client: ControlClient::connect(&spec.aeron_dir, CONTROL_CHANNEL, CONTROL_STREAM)?,
            leases: Vec::new(),
            replies: Vec::new(),
            round_start: Instant::now(),
            sent_this_round: 0,
            revoked: 0,
            announces: 0,
            announce_bytes: 0,
        })
    }

    /// One duty cycle: reads the control stream (counting announces, keeping answers),
    /// sends the keepalives that are due (every lease once a second, spread over it).
    fn service(&mut self, now: Instant) -> Result<usize, BenchError> {
        let (mut announces, mut bytes_seen) = (0u64, 0u64);
        let replies = &mut self.replies;
        let mut work = self
            .client
            .poll_raw(|bytes| {
                let announce = MessageHeader::read(bytes).is_ok_and(|h| {
                    h.schema_id == control::SCHEMA_ID
                        && h.template_id == control::shm_pool_announce::TEMPLATE_ID
                });
                if announce {
                    announces += 1;
                    bytes_seen += bytes.len() as u64;
                } else {
                    replies.extend(decode(bytes));
                }
            })
            .measure("polling the control stream")?;
        self.announces += announces;
        self.announce_bytes += bytes_seen;
        let ours = &self.leases;
        self.revoked += self
            .replies
            .iter()
            .filter(|r| {
                matches!(r, Reply::Revoked { lease_id } if ours.iter().any(|l| l.lease_id == *lease_id))
            })
            .count() as u64;
        if now >= self.round_start + KEEPALIVE_PERIOD {
            while self.sent_this_round < self.leases.len() {
                let lease = self.leases[self.sent_this_round];
                self.client.send_keepalive(&lease)?;
                self.sent_this_round += 1;
            }
            self.round_start = now;
            self.sent_this_round = 0;
        }
        let elapsed = now.duration_since(self.round_start).as_secs_f64();
        let due = (elapsed / KEEPALIVE_PERIOD.as_secs_f64() * self.leases.len() as f64) as usize;
        while self.sent_this_round < due.min(self.leases.len()) {
            let lease = self.leases[self.sent_this_round];
            self.client.send_keepalive(&lease)?;
            self.sent_this_round += 1;
            work += 1;
        }
        self.client.housekeeping(now)?;
        Ok(work)
    }

    fn serve_for(&mut self, duration: Duration) -> Result<(), BenchError> {
        let end = Instant::now() + duration;
        let mut idle = BackoffIdle::with_max_park(Duration::from_micros(200));
        while Instant::now() < end {
            check_interrupted()?;
            let work = self.service(Instant::now())?;
            self.replies.clear();
            idle.idle(work);
        }
        Ok(())
    }

    /// Sends an attach and serves until it is answered; keeps the lease.
    fn attach(&mut self, stream_id: u32, client_id: u32, role: Role) -> Result<Lease, BenchError> {
        let correlation_id = self.client.send_attach(stream_id, client_id, role)?;
        match self.await_reply(correlation_id)? {
            Reply::Attach {
                code: ResponseCode::Ok,
                lease_id: Some(lease_id),
                ..
            } => {
                let lease = Lease {
                    lease_id,
                    stream_id,
                    client_id,
                    role,
                };
                self.leases.push(lease);
                Ok(lease)
            }
            other => Err(BenchError::Measure(format!(
                "attach of {role:?} {client_id} on stream {stream_id} refused: {other:?}"
            ))),
        }
    }

    /// Serves until the answer to `correlation_id` arrives.
    fn await_reply(&mut self, correlation_id: i64) -> Result<Reply, BenchError> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        loop {
            check_interrupted()?;
            let now = Instant::now();
            self.service(now)?;
            let found = self.replies.iter().position(|r| match r {
                Reply::Attach {
                    correlation_id: c, ..
                }
                | Reply::Detach {
                    correlation_id: c, ..
                } => *c == correlation_id,
                Reply::Revoked { .. } => false,
            });
            if let Some(i) = found {
                let reply = self.replies.swap_remove(i);
                self.replies.clear();
                return Ok(reply);
            }
            self.replies.clear();
            if now >= deadline {
                return Err(BenchError::Measure(format!(
                    "no answer to request {correlation_id} within {ANSWER_TIMEOUT:?}"
                )));
            }
        }
    }

    /// Counts announces and samples the driver's CPU over `window`, then measures the
    /// consumer attach round trips.
    fn probe(&mut self, pid: u32, window: Duration) -> Result<Probed, BenchError> {
        let (announces, announce_bytes) = (self.announces, self.announce_bytes);
        let start = ProcessSample::read(pid)?;
        self.serve_for(window)?;
        let end = ProcessSample::read(pid)?;
        let (announces, announce_bytes) = (
            self.announces - announces,
            self.announce_bytes - announce_bytes,
        );
        let mut attach = Latency::new()?;
        let mut jitter = 0x2545_f491_4f6c_dd1du64;
        for i in 0..ATTACH_PROBES {
            // 1–3 ms apart (xorshift), so the probes land anywhere in the driver's cycle.
            jitter ^= jitter << 13;
            jitter ^= jitter >> 7;
            jitter ^= jitter << 17;
            self.serve_for(Duration::from_micros(1000 + jitter % 2000))?;
            let client_id = PROBE_CLIENT_ID + i as u32;
            let sent = Instant::now();
            let lease = self.attach(FIRST_STREAM_ID, client_id, Role::Consumer)?;
            attach.record_ns(sent.elapsed().as_nanos() as u64);
            self.leases.pop();
            let correlation_id = self.client.send_detach(&lease)?;
            self.await_reply(correlation_id)?;
        }
        if self.revoked > 0 {
            return Err(BenchError::Measure(format!(
                "{} leases were revoked (keepalives too late?)",
                self.revoked
            )));
        }
        Ok(Probed {
            cpu: end.cpu_percent_since(&start),
            switches: end.switches_per_s_since(&start),
            window: end.at.duration_since(start.at),
            announces,
            announce_bytes,
            attach,
        })
    }
}
