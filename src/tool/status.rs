//! `tp status`: every stream of a running driver, from what an observer can read without a
//! lease (Driver Model §8 announces, Wire Spec §10.4 QoS, the driver's counters and its
//! published lease table in the Aeron counters file, and the header rings read-only).
//!
//! - Streams, epochs, producers' client ids and pool layouts: `ShmPoolAnnounce` on the
//!   announce stream (announce age from its monotonic timestamp).
//! - Leases (who, since when, expiring when, per-consumer descriptor streams): the lease
//!   counters (`src/driver/lease_counters.rs`).
//! - Frames/s and MiB/s: the highest committed sequence in the header ring and the mean
//!   payload length of its committed slots, sampled once per refresh (read with `pread`).
//! - Drops and consumers' progress: `QosConsumer`; the producer's sequence: `QosProducer`.
//!   The two drop fields of the wire are shown under one name each, in text and JSON:
//!   `qos_drops_gap` (`QosConsumer.dropsGap`) and `qos_drops_late` (`QosConsumer.dropsLate`);
//!   which of a consumer's own counters they sum is in [`QOS_DROPS_LEGEND`].
//! - Driver counters: every counter of type 4100 (`tp-driver[<instance>]: <name>`), named
//!   in snake_case (`active producer leases` is `active_producer_leases`).
//! - Where to listen: the endpoints the driver publishes (type 4102, found by
//!   [`super::Target::locate`]) unless the user named them; what was not heard is said,
//!   with the reason and what to pass ([`StatusSnapshot::notes`]).
//! - SHM footprint: the storage every epoch directory of the namespace holds
//!   ([`super::footprint`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use serde::Serialize;

use super::discover::{describe, endpoints_in, Discovery};
use super::footprint::{self, human, Footprint};
use super::{aeron_dir, connect, Exit, Located, ToolError};
use crate::client::qos::{QosMessage, QosReport, StreamQos};
use crate::clock::monotonic_now_ns;
use crate::config::DriverConfig;
use crate::driver::counters::COUNTER_TYPE_ID;
use crate::driver::endpoints::DriverEndpoints;
use crate::driver::lease_counters::{LeaseKey, LEASE_COUNTER_TYPE_ID};
use crate::protocol::control::{ClockDomain, ShmPoolAnnounceDecoder, SCHEMA_ID};
use crate::protocol::driver::Role;
use crate::protocol::MessageHeader;
use crate::shm::layout::{HEADER_SLOT_BYTES, SUPERBLOCK_SIZE};
use crate::shm::seqlock::{is_committed, logical_sequence};
use crate::shm::uri::RegionUri;
use crate::transport::{AeronClient, Subscription};

/// Fragments read per poll.
const POLL_LIMIT: usize = 256;
/// Largest header ring sampled (bytes read per refresh stay bounded).
const MAX_SAMPLED_SLOTS: u32 = 65_536;
/// What the two QoS drop figures are: the wire's fields, and the counters of a tensorpool
/// consumer (`ConsumerCounters`, the example consumer's JSON line, `tp_consumer_counters`)
/// they sum (docs/DESIGN.md, "Drop counters and QoS").
pub const QOS_DROPS_LEGEND: &str = "qos_drops_gap = QosConsumer.dropsGap = the consumer's \
    drops_gap + drops_resync; qos_drops_late = QosConsumer.dropsLate = drops_not_committed + \
    drops_stale + drops_late";

/// One pool of a stream's current epoch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolStatus {
    /// Pool id.
    pub pool_id: u16,
    /// Slots.
    pub nslots: u32,
    /// Slot stride in bytes.
    pub stride_bytes: u32,
    /// Region URI.
    pub region_uri: String,
}

/// A lease as the lease counters publish it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeaseStatus {
    /// Client id.
    pub client_id: u32,
    /// Lease id (`None` when the lease is not published, e.g. a producer seen only in the
    /// announce).
    pub lease_id: Option<u64>,
    /// Seconds since the grant.
    pub lease_age_s: Option<f64>,
    /// Seconds until the lease expires without a keepalive (negative: overdue).
    pub expires_in_s: Option<f64>,
    /// Per-consumer descriptor stream, if assigned.
    pub descriptor_stream_id: Option<u32>,
    /// Node id, if granted.
    pub node_id: Option<u32>,
    /// Last sequence the client reported over QoS.
    pub qos_seq: Option<u64>,
    /// `QosConsumer.dropsGap` (consumers; see [`QOS_DROPS_LEGEND`]).
    pub qos_drops_gap: Option<u64>,
    /// `QosConsumer.dropsLate` (consumers; see [`QOS_DROPS_LEGEND`]).
    pub qos_drops_late: Option<u64>,
}

/// One stream.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StreamStatus {
    /// Stream id.
    pub stream_id: u32,
    /// Current epoch (from the last announce).
    pub epoch: Option<u64>,
    /// Seconds since the last announce was made.
    pub announce_age_s: Option<f64>,
    /// The producer, if one is attached.
    pub producer: Option<LeaseStatus>,
    /// Consumers, by client id.
    pub consumers: Vec<LeaseStatus>,
    /// Header ring slots.
    pub header_nslots: Option<u32>,
    /// Header ring URI.
    pub header_region_uri: Option<String>,
    /// Payload pools.
    pub pools: Vec<PoolStatus>,
    /// Highest committed sequence in the header ring.
    pub last_seq: Option<u64>,
    /// Frames committed per second over the last sample interval.
    pub frames_per_s: Option<f64>,
    /// Payload MiB per second (frames/s × mean payload of the committed slots).
    pub mib_per_s: Option<f64>,
    /// Sum of the consumers' `qos_drops_gap`.
    pub qos_drops_gap: u64,
    /// Sum of the consumers' `qos_drops_late`.
    pub qos_drops_late: u64,
    /// Bytes the stream's epoch directories hold ([`Footprint`]; 0 when not measured).
    pub shm_bytes: u64,
}

/// Everything `tp status` shows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatusSnapshot {
    /// The Aeron directory read.
    pub aeron_dir: PathBuf,
    /// The driver observed, when it was found by the endpoints it publishes (`None`: the
    /// user named its configuration or streams).
    pub instance_id: Option<String>,
    /// The driver's control stream.
    pub control_stream_id: u32,
    /// The announce stream listened to.
    pub announce_stream_id: u32,
    /// The QoS stream listened to.
    pub qos_stream_id: u32,
    /// Seconds the observer has listened (announces arrive once per announce period).
    pub observed_s: f64,
    /// Streams by id.
    pub streams: Vec<StreamStatus>,
    /// Every driver's counters, by instance id, in counter order, named in snake_case.
    pub drivers: IndexMap<String, IndexMap<String, i64>>,
    /// Live leases the driver could not publish (see `leases_not_published`).
    pub leases_not_published: i64,
    /// The storage the namespace's epoch directories hold (`None`: not measurable, a
    /// note says why).
    pub shm: Option<Footprint>,
    /// What was not heard or read, why, and what to pass.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
struct Announced {
    epoch: u64,
    producer_id: u32,
    timestamp_ns: Option<u64>,
    received: Instant,
    header_nslots: u32,
    header_uri: String,
    pools: Vec<PoolStatus>,
}

#[derive(Debug, Clone, Copy)]
struct RingSample {
    epoch: u64,
    at: Instant,
    last_seq: Option<u64>,
    mean_len: Option<f64>,
}

#[derive(Debug, Default)]
struct StreamObs {
    announce: Option<Announced>,
    /// `QosProducer` / `QosConsumer` of the current epoch (the client library's board).
    qos: StreamQos,
    previous: Option<RingSample>,
    latest: Option<RingSample>,
}

/// Listens to the announce and QoS streams and samples counters and rings.
pub struct Observer {
    config: DriverConfig,
    discovered: Option<DriverEndpoints>,
    started: Instant,
    streams: BTreeMap<u32, StreamObs>,
    announce_sub: Subscription,
    qos_sub: Option<Subscription>,
    // Last: subscriptions close before their client.
    client: AeronClient,
}

impl Observer {
    /// Connects to the media driver of the located driver and subscribes to its announce
    /// and QoS streams.
    pub fn new(located: Located) -> Result<Self, ToolError> {
        let Located {
            config, discovered, ..
        } = located;
        let client = connect(&config)?;
        let subscribe = |channel: &str, stream_id: u32| {
            let id = i32::try_from(stream_id).map_err(|_| {
                ToolError::new(Exit::Usage, format!("stream id {stream_id} exceeds int32"))
            })?;
            Subscription::add(&client, channel, id).map_err(|e| {
                ToolError::new(
                    Exit::NoDriver,
                    format!("subscribing to {channel} stream {stream_id}: {e}"),
                )
            })
        };
        let (channel, announce_stream) = config.driver.announce_endpoint();
        let announce_sub = subscribe(channel, announce_stream)?;
        let (qos_channel, qos_stream) = config.driver.qos_endpoint();
        let qos_sub = if qos_stream == announce_stream {
            None
        } else {
            Some(subscribe(qos_channel, qos_stream)?)
        };
        Ok(Self {
            config,
            discovered,
            started: Instant::now(),
            streams: BTreeMap::new(),
            announce_sub,
            qos_sub,
            client,
        })
    }

    /// Reads what arrived on the streams; returns the messages read.
    pub fn poll(&mut self) -> Result<usize, ToolError> {
        let Self {
            streams,
            announce_sub,
            qos_sub,
            client,
            ..
        } = self;
        let aeron = |e: crate::transport::TransportError| {
            ToolError::new(Exit::NoDriver, format!("the media driver went away: {e}"))
        };
        let mut work = client.do_work().map_err(aeron)?;
        let mut handle = |bytes: &[u8]| observe(streams, bytes);
        work += announce_sub.poll(&mut handle, POLL_LIMIT).map_err(aeron)?;
        if let Some(sub) = qos_sub {
            work += sub.poll(&mut handle, POLL_LIMIT).map_err(aeron)?;
        }
        Ok(work)
    }

    /// Polls for `duration`, with short sleeps when nothing arrives.
    pub fn listen(&mut self, duration: Duration) -> Result<(), ToolError> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            if self.poll()? == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Ok(())
    }

    /// Samples every announced stream's header ring (call once per refresh).
    pub fn sample_rings(&mut self) {
        for obs in self.streams.values_mut() {
            let Some(announce) = &obs.announce else {
                continue;
            };
            let sample = sample_ring(announce);
            obs.previous = obs.latest.filter(|p| p.epoch == sample.epoch);
            obs.latest = Some(sample);
        }
    }

    /// What is known now.
    pub fn snapshot(&self) -> StatusSnapshot {
        let now_ns = monotonic_now_ns();
        let counters = self.client.counters();
        let control_stream_id = self.config.driver.control_stream_id;
        let mut leases: BTreeMap<u32, Vec<(LeaseKey, i64)>> = BTreeMap::new();
        let mut drivers: IndexMap<String, IndexMap<String, i64>> = IndexMap::new();
        let mut not_published = 0;
        for counter in &counters {
            if counter.type_id == LEASE_COUNTER_TYPE_ID {
                if let Ok(key) = LeaseKey::decode(&counter.key) {
                    if key.driver_control_stream_id == control_stream_id {
                        leases
                            .entry(key.stream_id)
                            .or_default()
                            .push((key, counter.value));
                    }
                }
            } else if counter.type_id == COUNTER_TYPE_ID {
                if let Some((instance, name)) = split_driver_label(&counter.label) {
                    let name = snake_case(name);
                    if name == "leases_not_published" {
                        not_published += counter.value;
                    }
                    drivers
                        .entry(instance.to_owned())
                        .or_default()
                        .insert(name, counter.value);
                }
            }
        }
        let mut notes = Vec::new();
        let shm = footprint::measure(&self.config)
            .map_err(|e| notes.push(format!("SHM footprint not measured: {e}")))
            .ok();
        let ids: BTreeSet<u32> = self.streams.keys().chain(leases.keys()).copied().collect();
        let empty = StreamObs::default();
        let streams: Vec<StreamStatus> = ids
            .into_iter()
            .map(|id| {
                let obs = self.streams.get(&id).unwrap_or(&empty);
                let mut status =
                    stream_status(id, obs, leases.remove(&id).unwrap_or_default(), now_ns);
                status.shm_bytes = shm.as_ref().map_or(0, |f| f.stream_bytes(id));
                status
            })
            .collect();
        let observed_s = self.started.elapsed().as_secs_f64();
        if !streams.iter().any(|s| s.epoch.is_some()) {
            notes.push(self.nothing_heard(&counters, observed_s));
        }
        let driver = &self.config.driver;
        StatusSnapshot {
            aeron_dir: aeron_dir(&self.config),
            instance_id: self.discovered.as_ref().map(|d| d.instance_id.clone()),
            control_stream_id,
            announce_stream_id: driver.announce_stream_id,
            qos_stream_id: driver.qos_stream_id,
            observed_s,
            streams,
            drivers,
            leases_not_published: not_published,
            shm,
            notes,
        }
    }

    /// Why no announce was heard, and what to pass: the announce stream listened to is
    /// compared with the endpoints the running drivers publish.
    fn nothing_heard(
        &self,
        counters: &[crate::transport::CounterSnapshot],
        observed_s: f64,
    ) -> String {
        let driver = &self.config.driver;
        let (channel, stream) = driver.announce_endpoint();
        let heard = format!("no ShmPoolAnnounce on {channel} stream {stream} in {observed_s:.1}s");
        let drivers = match endpoints_in(counters) {
            Discovery::Found { drivers, .. } => drivers,
            Discovery::NoMediaDriver(_) => Vec::new(),
        };
        // By stream id: channels are compared by Aeron on their canonical form (an IPC
        // subscription hears every IPC publication of its stream, whatever its params).
        let listening = |d: &&DriverEndpoints| d.announce_stream_id == stream;
        if let Some(d) = drivers.iter().find(listening) {
            return format!(
                "{heard}: driver {} announces there once per policies.announce_period_ms, \
                 only streams with a current epoch (static streams, and dynamic ones while a \
                 producer is attached); it has none now, or the period is longer than the \
                 listening window (--window-ms)",
                d.instance_id
            );
        }
        if drivers.is_empty() {
            return format!(
                "{heard}: no driver publishes its endpoints in {} (no counter \
                 \"tp-driver[<instance>] endpoints\"); is tp-driver running with this Aeron \
                 directory? A driver that does not publish them: pass its --config or \
                 --announce-stream-id",
                aeron_dir(&self.config).display()
            );
        }
        let found: String = drivers
            .iter()
            .map(|d| format!("\n    {}", describe(d)))
            .collect();
        format!(
            "{heard}: no running driver announces there; drop the stream flags (and \
             --config) to follow the driver found, or pass its --announce-stream-id. \
             Drivers here:{found}"
        )
    }
}

/// A counter name as a JSON key: lowercase words joined by `_`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for word in name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        out.push_str(&word.to_ascii_lowercase());
    }
    out
}

fn split_driver_label(label: &str) -> Option<(&str, &str)> {
    let rest = label.strip_prefix("tp-driver[")?;
    let (instance, name) = rest.split_once("]: ")?;
    Some((instance, name))
}

fn observe(streams: &mut BTreeMap<u32, StreamObs>, bytes: &[u8]) {
    let Ok(header) = MessageHeader::read(bytes) else {
        return;
    };
    if header.schema_id != SCHEMA_ID {
        return;
    }
    if let Ok(a) = ShmPoolAnnounceDecoder::wrap(bytes) {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let announced = Announced {
            epoch: a.epoch(),
            producer_id: a.producer_id(),
            timestamp_ns: (a.announce_clock_domain() == ClockDomain::Monotonic)
                .then_some(a.announce_timestamp_ns()),
            received: Instant::now(),
            header_nslots: a.header_nslots(),
            header_uri: text(a.header_region_uri()),
            pools: a
                .payload_pools()
                .map(|p| PoolStatus {
                    pool_id: p.pool_id(),
                    nslots: p.pool_nslots(),
                    stride_bytes: p.stride_bytes(),
                    region_uri: text(p.region_uri()),
                })
                .collect(),
        };
        let obs = streams.entry(a.stream_id()).or_default();
        if obs
            .announce
            .as_ref()
            .is_some_and(|old| old.epoch != announced.epoch)
        {
            // A new epoch: QoS of the old one says nothing about it.
            obs.qos.clear();
        }
        obs.announce = Some(announced);
    } else if let QosMessage::Report(report) = QosReport::decode(bytes) {
        let obs = streams.entry(report.stream_id()).or_default();
        // `tp status` reads no clock per message; the board's arrival times go unused.
        obs.qos.record(&report, 0, true);
    }
}

fn sample_ring(announce: &Announced) -> RingSample {
    let mut sample = RingSample {
        epoch: announce.epoch,
        at: Instant::now(),
        last_seq: None,
        mean_len: None,
    };
    let Ok(uri) = RegionUri::parse(&announce.header_uri) else {
        return sample;
    };
    let Ok(file) = File::open(uri.path()) else {
        return sample;
    };
    let nslots = announce.header_nslots.min(MAX_SAMPLED_SLOTS) as usize;
    let mut ring = vec![0u8; nslots * HEADER_SLOT_BYTES];
    if file
        .read_exact_at(&mut ring, SUPERBLOCK_SIZE as u64)
        .is_err()
    {
        return sample;
    }
    let (mut total, mut committed) = (0u64, 0u64);
    for slot in ring.chunks_exact(HEADER_SLOT_BYTES) {
        let word = u64::from_le_bytes(slot[..8].try_into().expect("8 bytes"));
        if word == 0 || !is_committed(word) {
            continue;
        }
        let seq = logical_sequence(word);
        sample.last_seq = Some(sample.last_seq.map_or(seq, |s: u64| s.max(seq)));
        total += u64::from(u32::from_le_bytes(slot[8..12].try_into().expect("4 bytes")));
        committed += 1;
    }
    if committed > 0 {
        sample.mean_len = Some(total as f64 / committed as f64);
    }
    sample
}

fn lease_status(key: &LeaseKey, expiry_ns: i64, now_ns: u64) -> LeaseStatus {
    LeaseStatus {
        client_id: key.client_id,
        lease_id: Some(key.lease_id),
        lease_age_s: Some(now_ns.saturating_sub(key.granted_ns) as f64 / 1e9),
        expires_in_s: Some((expiry_ns as f64 - now_ns as f64) / 1e9),
        descriptor_stream_id: key.descriptor_stream_id,
        node_id: key.node_id,
        qos_seq: None,
        qos_drops_gap: None,
        qos_drops_late: None,
    }
}

fn unpublished(client_id: u32) -> LeaseStatus {
    LeaseStatus {
        client_id,
        lease_id: None,
        lease_age_s: None,
        expires_in_s: None,
        descriptor_stream_id: None,
        node_id: None,
        qos_seq: None,
        qos_drops_gap: None,
        qos_drops_late: None,
    }
}

fn stream_status(
    stream_id: u32,
    obs: &StreamObs,
    leases: Vec<(LeaseKey, i64)>,
    now_ns: u64,
) -> StreamStatus {
    let announce = obs.announce.as_ref();
    let mut producer = leases
        .iter()
        .find(|(k, _)| k.role == Role::Producer)
        .map(|(k, v)| lease_status(k, *v, now_ns))
        .or_else(|| {
            announce
                .filter(|a| a.producer_id != 0)
                .map(|a| unpublished(a.producer_id))
        });
    if let (Some(p), Some(q)) = (&mut producer, obs.qos.producer()) {
        if q.producer_id == p.client_id {
            p.qos_seq = Some(q.current_seq);
        }
    }
    let mut consumers: BTreeMap<u32, LeaseStatus> = leases
        .iter()
        .filter(|(k, _)| k.role == Role::Consumer)
        .map(|(k, v)| (k.client_id, lease_status(k, *v, now_ns)))
        .collect();
    for c in obs.qos.consumers() {
        let (id, q) = (c.consumer_id(), &c.report);
        let entry = consumers.entry(id).or_insert_with(|| unpublished(id));
        entry.qos_seq = Some(q.last_seq_seen);
        entry.qos_drops_gap = Some(q.drops_gap);
        entry.qos_drops_late = Some(q.drops_late);
    }
    let consumers: Vec<LeaseStatus> = consumers.into_values().collect();
    let (frames_per_s, mib_per_s) = match (obs.previous, obs.latest) {
        (Some(a), Some(b)) => {
            let dt = b.at.duration_since(a.at).as_secs_f64();
            let frames = b
                .last_seq
                .unwrap_or(0)
                .saturating_sub(a.last_seq.unwrap_or(0));
            if dt > 0.0 && b.last_seq.is_some() {
                let fps = frames as f64 / dt;
                (
                    Some(fps),
                    Some(fps * b.mean_len.unwrap_or(0.0) / (1024.0 * 1024.0)),
                )
            } else {
                (None, None)
            }
        }
        _ => (None, None),
    };
    StreamStatus {
        stream_id,
        epoch: announce.map(|a| a.epoch),
        announce_age_s: announce.map(|a| match a.timestamp_ns {
            Some(ts) => now_ns.saturating_sub(ts) as f64 / 1e9,
            None => a.received.elapsed().as_secs_f64(),
        }),
        producer,
        qos_drops_gap: consumers.iter().filter_map(|c| c.qos_drops_gap).sum(),
        qos_drops_late: consumers.iter().filter_map(|c| c.qos_drops_late).sum(),
        shm_bytes: 0,
        consumers,
        header_nslots: announce.map(|a| a.header_nslots),
        header_region_uri: announce.map(|a| a.header_uri.clone()),
        pools: announce.map(|a| a.pools.clone()).unwrap_or_default(),
        last_seq: obs.latest.and_then(|s| s.last_seq),
        frames_per_s,
        mib_per_s,
    }
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

fn secs(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.1}s"))
}

fn lease_line(role: &str, lease: &LeaseStatus) -> String {
    let mut line = format!("    {role} {}", lease.client_id);
    match lease.lease_id {
        Some(id) => {
            let _ = write!(
                line,
                "  lease {id}  age {}  expires in {}",
                secs(lease.lease_age_s),
                secs(lease.expires_in_s)
            );
        }
        None => line.push_str("  (lease not published)"),
    }
    if let Some(id) = lease.descriptor_stream_id {
        let _ = write!(line, "  descriptor stream {id}");
    }
    if let Some(seq) = lease.qos_seq {
        let _ = write!(line, "  seq {seq}");
    }
    if let (Some(gap), Some(late)) = (lease.qos_drops_gap, lease.qos_drops_late) {
        let _ = write!(line, "  qos_drops_gap {gap}  qos_drops_late {late}");
    }
    line
}

/// The snapshot as the text the live view and `--once` print.
pub fn render(s: &StatusSnapshot) -> String {
    let found = s.instance_id.as_ref().map_or_else(String::new, |id| {
        format!("driver {id} (found by its published endpoints)  ")
    });
    let mut out = format!(
        "tp status: {found}aeron dir {}  control stream {}  announce stream {}  qos stream {}\n\n",
        s.aeron_dir.display(),
        s.control_stream_id,
        s.announce_stream_id,
        s.qos_stream_id
    );
    let _ = writeln!(
        out,
        "{:>8} {:>6} {:>9} {:>9} {:>10} {:>9} {:>14} {:>10} {:>8}",
        "STREAM",
        "EPOCH",
        "PRODUCER",
        "CONSUMERS",
        "FRAMES/S",
        "MIB/S",
        "QOS GAP/LATE",
        "SHM",
        "ANNOUNCE"
    );
    for stream in &s.streams {
        let _ = writeln!(
            out,
            "{:>8} {:>6} {:>9} {:>9} {:>10} {:>9} {:>14} {:>10} {:>8}",
            stream.stream_id,
            opt(stream.epoch),
            opt(stream.producer.as_ref().map(|p| p.client_id)),
            stream.consumers.len(),
            stream
                .frames_per_s
                .map_or_else(|| "-".into(), |v| format!("{v:.1}")),
            stream
                .mib_per_s
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            format!("{}/{}", stream.qos_drops_gap, stream.qos_drops_late),
            human(stream.shm_bytes),
            secs(stream.announce_age_s),
        );
        if let Some(nslots) = stream.header_nslots {
            let pools: Vec<String> = stream
                .pools
                .iter()
                .map(|p| format!("pool {}: {} x {} B", p.pool_id, p.nslots, p.stride_bytes))
                .collect();
            let _ = writeln!(
                out,
                "    layout: header ring {nslots} slots; {}",
                pools.join("; ")
            );
        }
        if let Some(p) = &stream.producer {
            let _ = writeln!(out, "{}", lease_line("producer", p));
        }
        for c in &stream.consumers {
            let _ = writeln!(out, "{}", lease_line("consumer", c));
        }
    }
    if s.streams
        .iter()
        .any(|st| st.consumers.iter().any(|c| c.qos_drops_gap.is_some()))
    {
        let _ = writeln!(out, "\n  {QOS_DROPS_LEGEND}");
    }
    if let Some(shm) = &s.shm {
        let _ = writeln!(
            out,
            "\nshm {}: {} in {} epoch directories (allocated, as du counts)",
            shm.namespace_dir.display(),
            human(shm.total_bytes),
            shm.epochs.len()
        );
        for epoch in &shm.epochs {
            let _ = writeln!(
                out,
                "  stream {} epoch {}: {}",
                epoch.stream_id,
                epoch.epoch,
                human(epoch.bytes)
            );
        }
    }
    for note in &s.notes {
        let _ = writeln!(out, "\nnote: {note}");
    }
    if s.leases_not_published > 0 {
        let _ = writeln!(
            out,
            "\n  {} live leases are not published (lease counter limit); totals below are exact",
            s.leases_not_published
        );
    }
    for (instance, counters) in &s.drivers {
        let _ = writeln!(out, "\ndriver {instance}:");
        for (name, value) in counters {
            let _ = writeln!(out, "  {name:<36} {value:>12}");
        }
    }
    if s.drivers.is_empty() {
        out.push_str(
            "\n(no tp-driver counters in this Aeron directory: is the driver running here?)\n",
        );
    }
    out
}

/// `tp status --once`: listens for `window`, sampling the rings at its start and end.
pub fn once(located: Located, window: Duration) -> Result<StatusSnapshot, ToolError> {
    let mut observer = Observer::new(located)?;
    observer.poll()?;
    observer.sample_rings();
    observer.listen(window)?;
    // Rings of streams first seen during the window get their first sample now; their
    // rates need one more interval.
    let unsampled: Vec<u32> = observer
        .streams
        .iter()
        .filter(|(_, o)| o.latest.is_none())
        .map(|(id, _)| *id)
        .collect();
    if !unsampled.is_empty() {
        observer.sample_rings();
        observer.listen(window.min(Duration::from_secs(1)))?;
    }
    observer.sample_rings();
    Ok(observer.snapshot())
}

/// `tp status` live: redraws every `refresh` until `q`, Ctrl-C or SIGTERM.
pub fn live(located: Located, refresh: Duration, json: bool) -> Result<(), ToolError> {
    let mut observer = Observer::new(located)?;
    let terminal = super::terminal::LiveTerminal::enter();
    let mut next = Instant::now();
    loop {
        observer.poll()?;
        if Instant::now() >= next {
            next = Instant::now() + refresh;
            observer.sample_rings();
            let snapshot = observer.snapshot();
            let text = if json {
                serde_json::to_string_pretty(&snapshot).unwrap_or_default()
            } else {
                render(&snapshot)
            };
            terminal.show(&format!(
                "{text}\n(refreshed every {:.1}s; q or Ctrl-C quits)\n",
                refresh.as_secs_f64()
            ));
        }
        if terminal.wait_for_quit(Duration::from_millis(20)) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer(client_id: u32, gap: u64, late: u64) -> LeaseStatus {
        LeaseStatus {
            qos_seq: Some(1_000),
            qos_drops_gap: Some(gap),
            qos_drops_late: Some(late),
            ..unpublished(client_id)
        }
    }

    /// The case of issue 21: a consumer whose QoS carried dropsGap 83 (all resync skips)
    /// and dropsLate 1 is shown under the same names, with the same figures, in text and
    /// JSON, and the text says which consumer counters they sum.
    #[test]
    fn text_and_json_name_the_qos_drop_figures_alike() {
        let stream = StreamStatus {
            stream_id: 10_000,
            epoch: Some(2),
            announce_age_s: Some(0.5),
            producer: None,
            consumers: vec![consumer(21, 83, 1)],
            header_nslots: None,
            header_region_uri: None,
            pools: Vec::new(),
            last_seq: None,
            frames_per_s: None,
            mib_per_s: None,
            qos_drops_gap: 83,
            qos_drops_late: 1,
            shm_bytes: 3 << 20,
        };
        let snapshot = StatusSnapshot {
            aeron_dir: "/dev/shm/aeron".into(),
            instance_id: Some("d".into()),
            control_stream_id: 1_000,
            announce_stream_id: 1_001,
            qos_stream_id: 1_200,
            observed_s: 2.0,
            streams: vec![stream],
            drivers: IndexMap::new(),
            leases_not_published: 0,
            shm: None,
            notes: Vec::new(),
        };
        let json = serde_json::to_value(&snapshot).expect("JSON");
        let c = &json["streams"][0]["consumers"][0];
        assert_eq!(
            (&c["qos_drops_gap"], &c["qos_drops_late"]),
            (&83.into(), &1.into())
        );
        assert_eq!(json["streams"][0]["qos_drops_gap"], 83);
        let text = render(&snapshot);
        assert!(
            text.contains(
                "consumer 21  (lease not published)  seq 1000  qos_drops_gap 83  qos_drops_late 1"
            ),
            "{text}"
        );
        assert!(text.contains("83/1"), "{text}");
        assert!(text.contains(QOS_DROPS_LEGEND), "{text}");
        assert!(
            QOS_DROPS_LEGEND.contains("drops_gap + drops_resync")
                && QOS_DROPS_LEGEND.contains("drops_not_committed + drops_stale + drops_late"),
            "the legend says what a tensorpool consumer puts in each field"
        );
        assert!(!text.contains("drops gap"), "{text}");
    }

    #[test]
    fn counter_names_become_snake_case_keys() {
        assert_eq!(
            snake_case("active producer leases"),
            "active_producer_leases"
        );
        assert_eq!(
            snake_case("attaches rejected INVALID_PARAMS"),
            "attaches_rejected_invalid_params"
        );
        assert_eq!(snake_case("doorbell wake-ups"), "doorbell_wake_ups");
        for name in crate::driver::counters::DriverCounters::names() {
            let key = snake_case(name);
            assert!(
                key.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} -> {key}"
            );
        }
    }
}
