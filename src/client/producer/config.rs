//! How a producer connects, attaches and reports: a builder over the stream settings and
//! the session timings.

use crate::client::link::ClientStreams;
use crate::client::metadata::DEFAULT_METADATA_INTERVAL;
use crate::client::progress::ProgressLimits;
use crate::client::session::SessionConfig;
use crate::protocol::driver::{PublishMode, Role};
use std::path::PathBuf;
use std::time::Duration;

/// Default directory the producer accepts SHM files under (the shipped driver's base).
pub const DEFAULT_ALLOWED_BASE_DIR: &str = crate::shm::paths::DEFAULT_BASE_DIR;
/// Default `QosProducer` period (Wire Spec §10.4.2).
pub const DEFAULT_QOS_INTERVAL: Duration = Duration::from_secs(1);

/// Everything a [`super::Producer`] needs; build with [`ProducerConfig::new`] and the
/// setters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Aeron directory and the control, announce, descriptor and QoS streams.
    pub streams: ClientStreams,
    /// Stream to produce (0 with `EXISTING_OR_CREATE`: let the driver pick a dynamic id).
    pub stream_id: u32,
    /// Client id; 0 = pick a random one (and a new one on collision).
    pub client_id: u32,
    /// `None` = REQUIRE_EXISTING; `Some(EXISTING_OR_CREATE)` lets the driver create the
    /// stream on demand.
    pub publish_mode: Option<PublishMode>,
    /// Directories the granted SHM files must lie in (checked when mapping).
    pub allowed_base_dirs: Vec<PathBuf>,
    /// Longest pause between lease keepalives; `None` (the default) lets the lease
    /// deadline the driver grants set the pace (Driver Model §4.4; see
    /// [`keepalive_period_ns`](crate::client::session::keepalive_period_ns)).
    pub keepalive_interval: Option<Duration>,
    /// How long to wait for an attach response before retrying.
    pub attach_timeout: Duration,
    /// `QosProducer` period.
    pub qos_interval: Duration,
    /// Period of the metadata re-announce (`DataSourceAnnounce` + `DataSourceMeta`, Wire
    /// Spec §10.3, §15.11), once metadata is set; changes go out at once.
    pub metadata_interval: Duration,
    /// Defaults and floors of the frame-progress throttle (Wire Spec §10.2.2).
    pub progress: ProgressLimits,
}

impl ProducerConfig {
    /// Defaults for `stream_id`: default streams, auto client id, REQUIRE_EXISTING,
    /// [`DEFAULT_ALLOWED_BASE_DIR`], keepalives paced by the granted lease, 1 s attach
    /// timeout, 1 s QoS period.
    pub fn new(stream_id: u32) -> Self {
        let session = SessionConfig::new(stream_id, Role::Producer);
        Self {
            streams: ClientStreams::default(),
            stream_id,
            client_id: 0,
            publish_mode: None,
            allowed_base_dirs: vec![PathBuf::from(DEFAULT_ALLOWED_BASE_DIR)],
            keepalive_interval: session.keepalive_interval,
            attach_timeout: session.attach_timeout,
            qos_interval: DEFAULT_QOS_INTERVAL,
            metadata_interval: DEFAULT_METADATA_INTERVAL,
            progress: ProgressLimits::default(),
        }
    }

    /// Sets the Aeron directory and streams.
    pub fn streams(mut self, streams: ClientStreams) -> Self {
        self.streams = streams;
        self
    }

    /// Sets the client id (0 = auto).
    pub fn client_id(mut self, client_id: u32) -> Self {
        self.client_id = client_id;
        self
    }

    /// Sets the publish mode.
    pub fn publish_mode(mut self, mode: PublishMode) -> Self {
        self.publish_mode = Some(mode);
        self
    }

    /// Replaces the allowed SHM base directories.
    pub fn allowed_base_dirs<I, P>(mut self, dirs: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.allowed_base_dirs = dirs.into_iter().map(Into::into).collect();
        self
    }

    /// Bounds the pause between keepalives (they may still come more often when the
    /// granted lease is short).
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = Some(interval);
        self
    }

    /// Sets the attach timeout.
    pub fn attach_timeout(mut self, timeout: Duration) -> Self {
        self.attach_timeout = timeout;
        self
    }

    /// Sets the QoS period.
    pub fn qos_interval(mut self, interval: Duration) -> Self {
        self.qos_interval = interval;
        self
    }

    /// Sets the metadata re-announce period.
    pub fn metadata_interval(mut self, interval: Duration) -> Self {
        self.metadata_interval = interval;
        self
    }

    /// Sets the frame-progress throttle's defaults and floors.
    pub fn progress_limits(mut self, limits: ProgressLimits) -> Self {
        self.progress = limits;
        self
    }

    /// The session settings these values imply.
    pub(super) fn session_config(&self) -> SessionConfig {
        SessionConfig {
            client_id: self.client_id,
            publish_mode: self.publish_mode,
            keepalive_interval: self.keepalive_interval,
            attach_timeout: self.attach_timeout,
            ..SessionConfig::new(self.stream_id, Role::Producer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_setters() {
        let config = ProducerConfig::new(10000);
        assert_eq!(config.publish_mode, None);
        assert_eq!(
            config.allowed_base_dirs,
            vec![PathBuf::from("/dev/shm/tensorpool")]
        );
        assert_eq!(config.qos_interval, Duration::from_secs(1));
        assert_eq!(config.keepalive_interval, None, "paced by the grant");
        let config = config
            .client_id(7)
            .publish_mode(PublishMode::ExistingOrCreate)
            .allowed_base_dirs(["/tmp/a", "/tmp/b"])
            .keepalive_interval(Duration::from_millis(100))
            .attach_timeout(Duration::from_millis(300))
            .qos_interval(Duration::from_millis(50));
        let session = config.session_config();
        assert_eq!(session.stream_id, 10000);
        assert_eq!(session.client_id, 7);
        assert_eq!(session.role, Role::Producer);
        assert_eq!(session.publish_mode, Some(PublishMode::ExistingOrCreate));
        assert_eq!(session.keepalive_interval, Some(Duration::from_millis(100)));
        assert_eq!(session.attach_timeout, Duration::from_millis(300));
        assert_eq!(config.allowed_base_dirs.len(), 2);
    }
}
