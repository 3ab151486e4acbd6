//! How a consumer finds its stream and paces its housekeeping (Wire Spec §10.1.1
//! freshness window, §10.1.2 per-consumer streams, §10.4.1 QoS cadence, §15.4
//! `max_outstanding_seq_gap`; Driver Model §4.4 keepalives, §4.9 revoke wait).

use crate::client::link::ClientStreams;
use crate::client::progress::ProgressHints;
use crate::shm::paths::DEFAULT_BASE_DIR;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

/// Longest channel string a `ConsumerHello` may carry (keeps the encode buffer fixed).
pub const MAX_CHANNEL_LEN: usize = 512;

/// Settings of a [`Consumer`](super::Consumer). Start from [`ConsumerConfig::new`] and
/// change fields as needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Where the driver and the data streams are.
    pub streams: ClientStreams,
    /// Stream to consume.
    pub stream_id: u32,
    /// Consumer id (= the session's client id); 0 picks a random non-zero id, and a new
    /// one when the driver reports a collision.
    pub consumer_id: u32,
    /// Directories the granted regions must lie in (Wire Spec §15.21a.5).
    pub allowed_base_dirs: Vec<PathBuf>,
    /// Ask the driver for a descriptor stream of our own: `(channel, stream_id)`.
    pub request_per_consumer_descriptor: Option<(String, u32)>,
    /// The driver's announce period: announces older than 3× are stale, and a producer
    /// revoke waits at most 3× for the epoch-bumped announce.
    pub announce_period: Duration,
    /// Longest pause between lease keepalives; `None` (the default) lets the lease
    /// deadline the driver grants set the pace (Driver Model §4.4; see
    /// [`keepalive_period_ns`](crate::client::session::keepalive_period_ns)).
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for an attach response before retrying.
    pub attach_timeout: Duration,
    /// `QosConsumer` period.
    pub qos_interval: Duration,
    /// When the producer is more than this many frames ahead of the descriptor being
    /// read, skip to the newest frame (Wire Spec §15.4 "drop to latest"); `None` never
    /// skips. The ring's depth bounds it (`header_nslots - 1`): a consumer the producer
    /// has lapped could only read frames about to be overwritten. Skipped descriptors
    /// count as `drops_resync`, each skip in `resyncs`, and `QosConsumer.dropsGap`
    /// reports gaps and skipped frames together.
    pub max_outstanding_seq_gap: Option<u64>,
    /// Name the media driver shows for this client.
    pub client_name: String,
    /// Latency mode: while no descriptor is waiting,
    /// [`Consumer::poll_frames`](super::Consumer::poll_frames) watches the header slot of the next sequence and,
    /// once the producer has committed it, fetches the slot and the payload into this
    /// core's cache, so the frame is ready when its descriptor arrives. Frames are still
    /// accepted only against their descriptors. Costs the producer one more cache-line
    /// hand-off per frame (the consumer reads the line it is about to write) and the
    /// consumer a load per empty poll; off by default. docs/BENCHMARKS.md has the A/B.
    pub watch_next_slot: bool,
    /// Liveness timeout of the mapped regions (Wire Spec §15.14): when the header ring's
    /// `activity_timestamp_ns`, which the driver refreshes once per announce period, is
    /// older than this, the consumer unmaps and reattaches. Checked once per
    /// `announce_period`; never less than 3× `announce_period` is used (the freshness
    /// window of §15.1: a shorter one would fire between two refreshes); `None` disables
    /// the check. Default: 5 s, 5× the default announce period (the spec suggests 3–5×).
    pub activity_timeout: Option<Duration>,
    /// STREAM (every frame) or RATE_LIMITED (Wire Spec §11), sent in `ConsumerHello`.
    pub mode: ConsumerMode,
    /// Opt in to frame progress (Wire Spec §10.2.2): `ConsumerHello` says
    /// `supports_progress` with these hints, and
    /// [`Consumer::poll_progress`](super::Consumer::poll_progress) hands out the filled
    /// prefix of frames being written. `None` (the default) ignores `FrameProgress`.
    pub progress: Option<ProgressHints>,
}

/// How many frames the consumer wants (Wire Spec §11).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConsumerMode {
    /// Every frame.
    #[default]
    Stream,
    /// At most `max_rate_hz` frames a second: asked of the producer in `ConsumerHello`
    /// (which may thin a per-consumer descriptor stream) and enforced locally in any case;
    /// frames skipped for it count in `frames_rate_limited`, not as drops.
    RateLimited {
        /// Most frames per second.
        max_rate_hz: NonZeroU32,
    },
}

impl ConsumerMode {
    /// `max_rate_hz` for `ConsumerHello` (0: unlimited).
    pub fn max_rate_hz(&self) -> u32 {
        match self {
            Self::Stream => 0,
            Self::RateLimited { max_rate_hz } => max_rate_hz.get(),
        }
    }
}

impl ConsumerConfig {
    /// Defaults for consuming `stream_id` over `streams`: auto consumer id, the default
    /// SHM base directory, shared descriptor stream, 1 s announce period, keepalive and
    /// QoS interval, resync beyond 256 outstanding frames, 5 s activity timeout.
    pub fn new(streams: ClientStreams, stream_id: u32) -> Self {
        Self {
            streams,
            stream_id,
            consumer_id: 0,
            allowed_base_dirs: vec![PathBuf::from(DEFAULT_BASE_DIR)],
            request_per_consumer_descriptor: None,
            announce_period: Duration::from_secs(1),
            keepalive_interval: None,
            attach_timeout: Duration::from_secs(1),
            qos_interval: Duration::from_secs(1),
            max_outstanding_seq_gap: Some(256),
            client_name: "tensorpool-consumer".into(),
            watch_next_slot: false,
            activity_timeout: Some(Duration::from_secs(5)),
            mode: ConsumerMode::Stream,
            progress: None,
        }
    }

    /// Checks the settings that would otherwise fail later or silently.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.allowed_base_dirs.is_empty() {
            return Err("allowed_base_dirs is empty");
        }
        if self.announce_period.is_zero() {
            return Err("announce_period is zero");
        }
        if self.keepalive_interval.is_some_and(|d| d.is_zero()) {
            return Err("keepalive_interval is zero");
        }
        if self.qos_interval.is_zero() {
            return Err("qos_interval is zero");
        }
        if let Some((channel, stream_id)) = &self.request_per_consumer_descriptor {
            // §10.1.2: a request names both a channel and a non-zero stream id.
            if channel.trim().is_empty() || *stream_id == 0 {
                return Err(
                    "per-consumer descriptor request needs a channel and a non-zero stream id",
                );
            }
            if channel.len() > MAX_CHANNEL_LEN {
                return Err("per-consumer descriptor channel is longer than 512 bytes");
            }
        }
        Ok(())
    }

    /// The liveness timeout of the mapped regions in nanoseconds, if checked: the
    /// configured one, and never less than the freshness window.
    pub(crate) fn activity_timeout_ns(&self) -> Option<u64> {
        self.activity_timeout
            .map(|t| duration_ns(t).max(self.three_periods_ns()))
    }

    /// The freshness window of announces and the producer-revoke wait: 3× the period.
    pub(crate) fn three_periods_ns(&self) -> u64 {
        duration_ns(self.announce_period).saturating_mul(3)
    }
}

/// A duration in nanoseconds, saturating.
pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_activity_timeout_is_never_shorter_than_the_freshness_window() {
        let mut config = ConsumerConfig::new(ClientStreams::default(), 1);
        assert_eq!(config.activity_timeout_ns(), Some(5_000_000_000));
        config.announce_period = Duration::from_secs(10);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.activity_timeout_ns(), Some(30_000_000_000));
        config.activity_timeout = None;
        assert_eq!(config.activity_timeout_ns(), None);
    }
}
