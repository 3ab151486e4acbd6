//! The driver configuration data model (Driver Model §17).
//!
//! All values are *effective* values: defaults that the spec derives from other keys
//! (announce channel/stream, `allowed_base_dirs`, `default_profile`,
//! `epoch_gc_min_age_ns`) are resolved when the configuration is loaded, so consumers of
//! these structs never have to re-apply default rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

use super::range::StreamIdRange;
use super::values::{MediaDriverMode, PermissionsMode};

/// Default `driver.instance_id`.
pub const DEFAULT_INSTANCE_ID: &str = "driver-01";
/// Default `driver.control_channel` (also the default announce channel).
pub const DEFAULT_CONTROL_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// Default `driver.control_stream_id` (also the default announce stream id).
pub const DEFAULT_CONTROL_STREAM_ID: u32 = 1000;
/// Default `driver.qos_channel`.
pub const DEFAULT_QOS_CHANNEL: &str = "aeron:ipc?term-length=4m";
/// Default `driver.qos_stream_id`.
pub const DEFAULT_QOS_STREAM_ID: u32 = 1200;
/// Default `shm.base_dir`.
pub const DEFAULT_SHM_BASE_DIR: &str = crate::shm::paths::DEFAULT_BASE_DIR;
/// Default `shm.namespace`.
pub const DEFAULT_SHM_NAMESPACE: &str = "default";
/// Default `shm.page_size_bytes`.
pub const DEFAULT_PAGE_SIZE_BYTES: u32 = 4096;
/// Default `shm.permissions_mode` (octal `660`).
pub const DEFAULT_PERMISSIONS_MODE: u32 = 0o660;
/// Default `policies.announce_period_ms`.
pub const DEFAULT_ANNOUNCE_PERIOD_MS: u32 = 1000;
/// Default `policies.lease_keepalive_interval_ms`.
pub const DEFAULT_LEASE_KEEPALIVE_INTERVAL_MS: u32 = 1000;
/// Default `policies.lease_expiry_grace_intervals`.
pub const DEFAULT_LEASE_EXPIRY_GRACE_INTERVALS: u32 = 3;
/// Default `policies.epoch_gc_keep`.
pub const DEFAULT_EPOCH_GC_KEEP: u32 = 1;
/// Default `policies.shutdown_timeout_ms`.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u32 = 2000;
/// Default `profiles.<name>.header_nslots`.
pub const DEFAULT_HEADER_NSLOTS: u32 = 1024;

const NANOS_PER_MILLI: u64 = 1_000_000;

/// The `[driver]` section: identity and Aeron endpoints (Driver Model §17, §11).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverSection {
    /// `driver.instance_id`: identifier for logging/diagnostics (default `"driver-01"`).
    pub instance_id: String,
    /// `driver.media_driver`: embedded (default) or external Aeron media driver.
    pub media_driver: MediaDriverMode,
    /// `driver.aeron_dir`: Aeron directory; `None` (written `""`) means the Aeron default.
    pub aeron_dir: Option<PathBuf>,
    /// `driver.control_channel`: control-plane channel (default `"aeron:ipc?term-length=4m"`).
    pub control_channel: String,
    /// `driver.control_stream_id`: control-plane stream id (default `1000`).
    pub control_stream_id: u32,
    /// `driver.announce_channel`: `ShmPoolAnnounce` channel (default: the control channel).
    pub announce_channel: String,
    /// `driver.announce_stream_id`: `ShmPoolAnnounce` stream id (default: the control stream id).
    pub announce_stream_id: u32,
    /// `driver.qos_channel`: QoS channel (default `"aeron:ipc?term-length=4m"`).
    pub qos_channel: String,
    /// `driver.qos_stream_id`: QoS stream id (default `1200`).
    pub qos_stream_id: u32,
    /// `driver.stream_id_range`: range for dynamic streams; `None` = disabled (default).
    pub stream_id_range: Option<StreamIdRange>,
    /// `driver.descriptor_stream_id_range`: per-consumer descriptor ids; `None` = disabled.
    pub descriptor_stream_id_range: Option<StreamIdRange>,
    /// `driver.control_stream_id_range`: per-consumer control ids; `None` = disabled.
    pub control_stream_id_range: Option<StreamIdRange>,
}

impl Default for DriverSection {
    fn default() -> Self {
        Self {
            instance_id: DEFAULT_INSTANCE_ID.to_string(),
            media_driver: MediaDriverMode::Embedded,
            aeron_dir: None,
            control_channel: DEFAULT_CONTROL_CHANNEL.to_string(),
            control_stream_id: DEFAULT_CONTROL_STREAM_ID,
            announce_channel: DEFAULT_CONTROL_CHANNEL.to_string(),
            announce_stream_id: DEFAULT_CONTROL_STREAM_ID,
            qos_channel: DEFAULT_QOS_CHANNEL.to_string(),
            qos_stream_id: DEFAULT_QOS_STREAM_ID,
            stream_id_range: None,
            descriptor_stream_id_range: None,
            control_stream_id_range: None,
        }
    }
}

impl DriverSection {
    /// The control endpoint as `(channel, stream_id)`.
    pub fn control_endpoint(&self) -> (&str, u32) {
        (&self.control_channel, self.control_stream_id)
    }

    /// The effective announce endpoint as `(channel, stream_id)`.
    pub fn announce_endpoint(&self) -> (&str, u32) {
        (&self.announce_channel, self.announce_stream_id)
    }

    /// The QoS endpoint as `(channel, stream_id)`.
    pub fn qos_endpoint(&self) -> (&str, u32) {
        (&self.qos_channel, self.qos_stream_id)
    }

    /// True when announces share the control channel and stream id.
    pub fn announce_shares_control(&self) -> bool {
        self.announce_endpoint() == self.control_endpoint()
    }

    /// The driver's fixed stream ids with their key names (control, announce, QoS).
    pub fn reserved_stream_ids(&self) -> [(&'static str, u32); 3] {
        [
            ("driver.control_stream_id", self.control_stream_id),
            ("driver.announce_stream_id", self.announce_stream_id),
            ("driver.qos_stream_id", self.qos_stream_id),
        ]
    }

    /// The three allocation ranges with their key names (`None` when disabled).
    pub fn ranges(&self) -> [(&'static str, Option<StreamIdRange>); 3] {
        [
            ("driver.stream_id_range", self.stream_id_range),
            (
                "driver.descriptor_stream_id_range",
                self.descriptor_stream_id_range,
            ),
            (
                "driver.control_stream_id_range",
                self.control_stream_id_range,
            ),
        ]
    }
}

/// The `[shm]` section: backing-file location and filesystem policy (Driver Model §9, §17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShmSection {
    /// `shm.base_dir`: absolute root for SHM backing files (default `"/dev/shm/tensorpool"`).
    pub base_dir: PathBuf,
    /// `shm.namespace`: application namespace, a single safe path component (default `"default"`).
    pub namespace: String,
    /// `shm.require_hugepages`: hugepage policy when a request leaves it unspecified (default `false`).
    pub require_hugepages: bool,
    /// `shm.page_size_bytes`: backing page size used for validation (default `4096`).
    pub page_size_bytes: u32,
    /// `shm.permissions_mode`: mode for created files (default `"660"`).
    pub permissions_mode: PermissionsMode,
    /// `shm.allowed_base_dirs`: absolute directories region URIs may point into (default `[base_dir]`).
    pub allowed_base_dirs: Vec<PathBuf>,
    /// `shm.allow_shared_dirs`: start even when the base directory or the user directory
    /// can be written by other users (default `false`: refuse, naming the path and the fix).
    pub allow_shared_dirs: bool,
}

impl Default for ShmSection {
    fn default() -> Self {
        Self {
            base_dir: PathBuf::from(DEFAULT_SHM_BASE_DIR),
            namespace: DEFAULT_SHM_NAMESPACE.to_string(),
            require_hugepages: false,
            page_size_bytes: DEFAULT_PAGE_SIZE_BYTES,
            permissions_mode: PermissionsMode::default(),
            allowed_base_dirs: vec![PathBuf::from(DEFAULT_SHM_BASE_DIR)],
            allow_shared_dirs: false,
        }
    }
}

impl ShmSection {
    /// The numeric file mode (e.g. `0o660`).
    pub fn permissions_mode_bits(&self) -> u32 {
        self.permissions_mode.bits()
    }

    /// True when `path` is lexically inside (or equal to) one of `allowed_base_dirs`.
    ///
    /// This is a component-wise prefix test only; callers must canonicalize `path`
    /// first (Wire Spec canonical path rules) for it to be a security check.
    pub fn is_under_allowed_base_dir(&self, path: &Path) -> bool {
        self.allowed_base_dirs
            .iter()
            .any(|dir| path.starts_with(dir))
    }
}

/// The `[policies]` section: stream, lease, announce, GC and shutdown policy (Driver Model §17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoliciesSection {
    /// `policies.allow_dynamic_streams`: allow on-demand stream creation (default `false`).
    pub allow_dynamic_streams: bool,
    /// `policies.default_profile`: profile for dynamic streams (default: first defined profile).
    pub default_profile: String,
    /// `policies.announce_period_ms`: `ShmPoolAnnounce` cadence (default `1000`).
    pub announce_period_ms: u32,
    /// `policies.lease_keepalive_interval_ms`: client keepalive interval (default `1000`).
    pub lease_keepalive_interval_ms: u32,
    /// `policies.lease_expiry_grace_intervals`: missed keepalives before expiry (default `3`).
    pub lease_expiry_grace_intervals: u32,
    /// `policies.prefault_shm`: prefault/zero SHM regions on create (default `true`).
    pub prefault_shm: bool,
    /// `policies.mlock_shm`: mlock SHM regions on create, fatal on failure (default `false`).
    pub mlock_shm: bool,
    /// `policies.provision_ahead`: make each stream's next epoch ahead, on a thread of its
    /// own, so producer attaches find their files ready (default `false`).
    pub provision_ahead: bool,
    /// `policies.epoch_gc_enabled`: enable epoch directory GC (default `true`).
    pub epoch_gc_enabled: bool,
    /// `policies.epoch_gc_keep`: epochs to keep, current included (default `1`).
    pub epoch_gc_keep: u32,
    /// `policies.epoch_gc_min_age_ns`: minimum epoch age before deletion (default 3 × announce period).
    pub epoch_gc_min_age_ns: u64,
    /// `policies.epoch_gc_on_startup`: run epoch GC at driver startup (default `false`).
    pub epoch_gc_on_startup: bool,
    /// `policies.delete_shm_on_startup`: delete the existing epoch directories of every
    /// static stream at start-up before provisioning it afresh (Driver Model §14); the
    /// epoch high-water mark is kept, so new epochs stay above old ones (default `false`).
    pub delete_shm_on_startup: bool,
    /// `policies.shutdown_timeout_ms`: drain period before shutdown completes (default `2000`).
    pub shutdown_timeout_ms: u32,
    /// `policies.shutdown_token`: admin shutdown token; `None` (written `""`) = disabled.
    pub shutdown_token: Option<String>,
}

impl Default for PoliciesSection {
    /// Spec defaults; `default_profile` is empty until resolved against the profiles.
    fn default() -> Self {
        Self {
            allow_dynamic_streams: false,
            default_profile: String::new(),
            announce_period_ms: DEFAULT_ANNOUNCE_PERIOD_MS,
            lease_keepalive_interval_ms: DEFAULT_LEASE_KEEPALIVE_INTERVAL_MS,
            lease_expiry_grace_intervals: DEFAULT_LEASE_EXPIRY_GRACE_INTERVALS,
            prefault_shm: true,
            mlock_shm: false,
            provision_ahead: false,
            epoch_gc_enabled: true,
            epoch_gc_keep: DEFAULT_EPOCH_GC_KEEP,
            epoch_gc_min_age_ns: Self::derived_epoch_gc_min_age_ns(DEFAULT_ANNOUNCE_PERIOD_MS),
            epoch_gc_on_startup: false,
            delete_shm_on_startup: false,
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            shutdown_token: None,
        }
    }
}

impl PoliciesSection {
    /// The spec default for `epoch_gc_min_age_ns`: 3 × the announce period, in ns.
    pub const fn derived_epoch_gc_min_age_ns(announce_period_ms: u32) -> u64 {
        3 * announce_period_ms as u64 * NANOS_PER_MILLI
    }

    /// Announce cadence in nanoseconds.
    pub const fn announce_period_ns(&self) -> u64 {
        self.announce_period_ms as u64 * NANOS_PER_MILLI
    }

    /// Announce cadence as a [`Duration`].
    pub fn announce_period(&self) -> Duration {
        Duration::from_millis(u64::from(self.announce_period_ms))
    }

    /// Client keepalive interval in nanoseconds.
    pub const fn lease_keepalive_interval_ns(&self) -> u64 {
        self.lease_keepalive_interval_ms as u64 * NANOS_PER_MILLI
    }

    /// Client keepalive interval as a [`Duration`].
    pub fn lease_keepalive_interval(&self) -> Duration {
        Duration::from_millis(u64::from(self.lease_keepalive_interval_ms))
    }

    /// Lease expiry: keepalive interval × grace intervals, in nanoseconds (saturating).
    pub const fn lease_expiry_ns(&self) -> u64 {
        self.lease_keepalive_interval_ns()
            .saturating_mul(self.lease_expiry_grace_intervals as u64)
    }

    /// Lease expiry as a [`Duration`].
    pub fn lease_expiry(&self) -> Duration {
        Duration::from_nanos(self.lease_expiry_ns())
    }

    /// Minimum epoch age before GC as a [`Duration`].
    pub fn epoch_gc_min_age(&self) -> Duration {
        Duration::from_nanos(self.epoch_gc_min_age_ns)
    }

    /// Shutdown drain period as a [`Duration`].
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.shutdown_timeout_ms))
    }

    /// True when an admin shutdown token is configured.
    pub fn shutdown_token_enabled(&self) -> bool {
        self.shutdown_token.is_some()
    }
}

/// One payload pool of a profile (`profiles.<name>.payload_pools[]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PayloadPool {
    /// `pool_id`: pool identifier, unique within its profile.
    pub pool_id: u16,
    /// `stride_bytes`: payload slot size; a power-of-two multiple of 64.
    pub stride_bytes: u32,
}

/// A named SHM layout template (`[profiles.<name>]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// `header_nslots`: header ring slot count, a power of two (default `1024`).
    pub header_nslots: u32,
    /// `payload_pools`: at least one pool; every pool uses `header_nslots` slots.
    pub payload_pools: Vec<PayloadPool>,
}

impl Default for Profile {
    /// `header_nslots = 1024` and no pools (invalid until a pool is added).
    fn default() -> Self {
        Self {
            header_nslots: DEFAULT_HEADER_NSLOTS,
            payload_pools: Vec::new(),
        }
    }
}

impl Profile {
    /// The pool with `pool_id`, if any.
    pub fn pool(&self, pool_id: u16) -> Option<&PayloadPool> {
        self.payload_pools.iter().find(|p| p.pool_id == pool_id)
    }

    /// The smallest pool whose stride holds `len` bytes (Wire Spec pool selection rule).
    pub fn smallest_pool_for(&self, len: u64) -> Option<&PayloadPool> {
        self.payload_pools
            .iter()
            .filter(|p| u64::from(p.stride_bytes) >= len)
            .min_by_key(|p| p.stride_bytes)
    }

    /// The largest stride of the profile (0 when there are no pools).
    pub fn max_stride_bytes(&self) -> u32 {
        self.payload_pools
            .iter()
            .map(|p| p.stride_bytes)
            .max()
            .unwrap_or(0)
    }
}

/// A statically configured stream (`[streams.<name>]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    /// `stream_id`: the Aeron stream id of the pool.
    pub stream_id: u32,
    /// `profile`: name of the profile describing the SHM layout.
    pub profile: String,
}

/// The complete, validated driver configuration (Driver Model §17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriverConfig {
    /// `[driver]`: identity and Aeron endpoints.
    pub driver: DriverSection,
    /// `[shm]`: backing-file location and filesystem policy.
    pub shm: ShmSection,
    /// `[policies]`: stream, lease, announce, GC and shutdown policy.
    pub policies: PoliciesSection,
    /// `[profiles.<name>]` in file order (the first one is the default `default_profile`).
    pub profiles: IndexMap<String, Profile>,
    /// `[streams.<name>]` in file order.
    pub streams: IndexMap<String, StreamConfig>,
}

impl DriverConfig {
    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        self.profiles.get(name)
    }

    /// The profile used for dynamic streams (`policies.default_profile`).
    pub fn default_profile(&self) -> Option<&Profile> {
        self.profiles.get(&self.policies.default_profile)
    }

    /// The static stream named `name`.
    pub fn stream(&self, name: &str) -> Option<&StreamConfig> {
        self.streams.get(name)
    }

    /// The profile of the static stream named `name`.
    pub fn stream_profile(&self, name: &str) -> Option<&Profile> {
        self.streams
            .get(name)
            .and_then(|s| self.profiles.get(&s.profile))
    }

    /// The static stream with `stream_id`, as `(name, stream)`.
    pub fn stream_by_id(&self, stream_id: u32) -> Option<(&str, &StreamConfig)> {
        self.streams
            .iter()
            .find(|(_, s)| s.stream_id == stream_id)
            .map(|(name, s)| (name.as_str(), s))
    }

    /// The profile of the static stream with `stream_id`.
    pub fn profile_for_stream_id(&self, stream_id: u32) -> Option<&Profile> {
        self.stream_by_id(stream_id)
            .and_then(|(_, s)| self.profiles.get(&s.profile))
    }

    /// Lease expiry (keepalive interval × grace intervals) in nanoseconds.
    pub fn lease_expiry_ns(&self) -> u64 {
        self.policies.lease_expiry_ns()
    }

    /// The numeric SHM file mode (e.g. `0o660`).
    pub fn permissions_mode_bits(&self) -> u32 {
        self.shm.permissions_mode.bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_durations() {
        let p = PoliciesSection::default();
        assert_eq!(p.lease_expiry_ns(), 3_000_000_000);
        assert_eq!(p.lease_expiry(), Duration::from_secs(3));
        assert_eq!(p.epoch_gc_min_age_ns, 3_000_000_000);
        assert_eq!(p.announce_period(), Duration::from_secs(1));
        assert_eq!(p.shutdown_timeout(), Duration::from_secs(2));
        let big = PoliciesSection {
            lease_keepalive_interval_ms: u32::MAX,
            lease_expiry_grace_intervals: u32::MAX,
            ..PoliciesSection::default()
        };
        assert_eq!(big.lease_expiry_ns(), u64::MAX);
    }

    #[test]
    fn profile_pool_selection() {
        let p = Profile {
            header_nslots: 8,
            payload_pools: vec![
                PayloadPool {
                    pool_id: 2,
                    stride_bytes: 4096,
                },
                PayloadPool {
                    pool_id: 1,
                    stride_bytes: 64,
                },
            ],
        };
        assert_eq!(p.smallest_pool_for(1).map(|x| x.pool_id), Some(1));
        assert_eq!(p.smallest_pool_for(65).map(|x| x.pool_id), Some(2));
        assert_eq!(p.smallest_pool_for(5000), None);
        assert_eq!(p.pool(2).map(|x| x.stride_bytes), Some(4096));
        assert_eq!(p.max_stride_bytes(), 4096);
    }

    #[test]
    fn allowed_dir_check() {
        let shm = ShmSection::default();
        assert!(shm.is_under_allowed_base_dir(Path::new("/dev/shm/tensorpool/x/1")));
        assert!(!shm.is_under_allowed_base_dir(Path::new("/dev/shm/tensorpoolx")));
    }
}
