//! Where a running driver can be reached, published for observers: one Aeron counter per
//! driver in the media driver's counters file, beside the driver's counters
//! ([`super::counters`]) and its lease table ([`super::lease_counters`]). The Driver Model
//! has no message that says which control, announce and QoS streams a driver uses
//! (clients are configured with them, §17), so an operator tool (`tp status`, `tp inspect`,
//! `tp gc`, `tp shutdown`) that was told nothing finds a driver here, by reading the CnC
//! file, instead of guessing the spec defaults.
//!
//! The counter has type id [`ENDPOINTS_COUNTER_TYPE_ID`], a binary key with the numbers
//! and the byte length of every text field ([`ENDPOINTS_KEY_LEN`] bytes), a label that
//! carries the text fields in words (readable in `AeronStat`, exact for a reader that
//! knows their lengths), and the driver's pid as its value. Aeron frees the counter with
//! the driver's Aeron client, so only drivers that run are found. docs/DESIGN.md ("Driver
//! endpoints for observers") has the reasons.

use crate::config::DriverConfig;

/// Aeron counter type id of a driver's endpoints.
pub const ENDPOINTS_COUNTER_TYPE_ID: i32 = 4_102;
/// Encoded length of the key.
pub const ENDPOINTS_KEY_LEN: usize = 48;
/// Layout version of the key, its last four bytes.
pub const ENDPOINTS_KEY_VERSION: u32 = 1;
/// Aeron's limit on a counter label (bytes); longer labels are cut there by the media
/// driver, and a reader then refuses the counter ([`EndpointsError::Label`]).
pub const MAX_LABEL_LEN: usize = 380;

/// A driver's endpoints and the settings an observer needs to read its SHM files.
///
/// Key (little-endian, [`ENDPOINTS_KEY_LEN`] bytes):
///
/// | offset | type | field |
/// | --- | --- | --- |
/// | 0 | u32 | control stream id |
/// | 4 | u32 | announce stream id |
/// | 8 | u32 | QoS stream id |
/// | 12 | u32 | driver pid |
/// | 16 | u64 | `policies.epoch_gc_min_age_ns` |
/// | 24 | u32 | `policies.epoch_gc_keep` |
/// | 28 | u8 | `policies.epoch_gc_enabled` (0 or 1) |
/// | 32 | u16 × 6 | byte lengths of instance id, control, announce and QoS channel, SHM base directory, namespace |
/// | 44 | u32 | key layout version ([`ENDPOINTS_KEY_VERSION`]) |
///
/// Label: `tp-driver[<instance>] endpoints: control <id> <channel>, announce <id>
/// <channel>, qos <id> <channel>, shm <base_dir> namespace <namespace>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverEndpoints {
    /// `driver.instance_id`.
    pub instance_id: String,
    /// Pid of the driver's process (`tp-driver`, or the media driver hosting the plugin).
    pub pid: u32,
    /// `driver.control_channel`.
    pub control_channel: String,
    /// `driver.control_stream_id`.
    pub control_stream_id: u32,
    /// `driver.announce_channel`.
    pub announce_channel: String,
    /// `driver.announce_stream_id`.
    pub announce_stream_id: u32,
    /// `driver.qos_channel`.
    pub qos_channel: String,
    /// `driver.qos_stream_id`.
    pub qos_stream_id: u32,
    /// `shm.base_dir`.
    pub shm_base_dir: String,
    /// `shm.namespace`.
    pub shm_namespace: String,
    /// `policies.epoch_gc_enabled`.
    pub epoch_gc_enabled: bool,
    /// `policies.epoch_gc_keep`.
    pub epoch_gc_keep: u32,
    /// `policies.epoch_gc_min_age_ns`.
    pub epoch_gc_min_age_ns: u64,
}

/// Why a counter is not a driver's endpoints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointsError {
    /// Fewer bytes than a key.
    #[error("endpoints counter key is {0} bytes, shorter than {ENDPOINTS_KEY_LEN}")]
    Short(usize),
    /// Another layout version.
    #[error("endpoints counter key version {0} is not {ENDPOINTS_KEY_VERSION}")]
    Version(u32),
    /// The label does not hold the fields the key describes (cut at Aeron's
    /// [`MAX_LABEL_LEN`] bytes, or not written by a driver).
    #[error(
        "endpoints counter label {label:?} does not hold the fields its key describes \
         (longer than Aeron's {MAX_LABEL_LEN}-byte label limit?)"
    )]
    Label {
        /// The label as read.
        label: String,
    },
}

impl DriverEndpoints {
    /// The endpoints of a driver running `config` in process `pid`.
    pub fn new(config: &DriverConfig, pid: u32) -> Self {
        let driver = &config.driver;
        let policies = &config.policies;
        Self {
            instance_id: driver.instance_id.clone(),
            pid,
            control_channel: driver.control_channel.clone(),
            control_stream_id: driver.control_stream_id,
            announce_channel: driver.announce_channel.clone(),
            announce_stream_id: driver.announce_stream_id,
            qos_channel: driver.qos_channel.clone(),
            qos_stream_id: driver.qos_stream_id,
            shm_base_dir: config.shm.base_dir.display().to_string(),
            shm_namespace: config.shm.namespace.clone(),
            epoch_gc_enabled: policies.epoch_gc_enabled,
            epoch_gc_keep: policies.epoch_gc_keep,
            epoch_gc_min_age_ns: policies.epoch_gc_min_age_ns,
        }
    }

    /// Writes the endpoints into `config` (driver section, SHM location, GC policy), as
    /// if they had been configured.
    pub fn apply_to(&self, config: &mut DriverConfig) {
        let driver = &mut config.driver;
        driver.instance_id = self.instance_id.clone();
        driver.control_channel = self.control_channel.clone();
        driver.control_stream_id = self.control_stream_id;
        driver.announce_channel = self.announce_channel.clone();
        driver.announce_stream_id = self.announce_stream_id;
        driver.qos_channel = self.qos_channel.clone();
        driver.qos_stream_id = self.qos_stream_id;
        config.shm.base_dir = self.shm_base_dir.clone().into();
        config.shm.namespace = self.shm_namespace.clone();
        let policies = &mut config.policies;
        policies.epoch_gc_enabled = self.epoch_gc_enabled;
        policies.epoch_gc_keep = self.epoch_gc_keep;
        policies.epoch_gc_min_age_ns = self.epoch_gc_min_age_ns;
    }

    fn texts(&self) -> [&str; 6] {
        [
            &self.instance_id,
            &self.control_channel,
            &self.announce_channel,
            &self.qos_channel,
            &self.shm_base_dir,
            &self.shm_namespace,
        ]
    }

    /// The key's bytes. A text field longer than 65,535 bytes cannot be described (its
    /// length is saturated and the reader refuses the counter).
    pub fn key(&self) -> [u8; ENDPOINTS_KEY_LEN] {
        let mut b = [0u8; ENDPOINTS_KEY_LEN];
        b[0..4].copy_from_slice(&self.control_stream_id.to_le_bytes());
        b[4..8].copy_from_slice(&self.announce_stream_id.to_le_bytes());
        b[8..12].copy_from_slice(&self.qos_stream_id.to_le_bytes());
        b[12..16].copy_from_slice(&self.pid.to_le_bytes());
        b[16..24].copy_from_slice(&self.epoch_gc_min_age_ns.to_le_bytes());
        b[24..28].copy_from_slice(&self.epoch_gc_keep.to_le_bytes());
        b[28] = u8::from(self.epoch_gc_enabled);
        for (i, text) in self.texts().iter().enumerate() {
            let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
            b[32 + 2 * i..34 + 2 * i].copy_from_slice(&len.to_le_bytes());
        }
        b[44..48].copy_from_slice(&ENDPOINTS_KEY_VERSION.to_le_bytes());
        b
    }

    /// The label: every field in words.
    pub fn label(&self) -> String {
        format!(
            "tp-driver[{}] endpoints: control {} {}, announce {} {}, qos {} {}, shm {} namespace {}",
            self.instance_id,
            self.control_stream_id,
            self.control_channel,
            self.announce_stream_id,
            self.announce_channel,
            self.qos_stream_id,
            self.qos_channel,
            self.shm_base_dir,
            self.shm_namespace
        )
    }

    /// Reads a counter's key (Aeron's whole key area; bytes past the key are ignored) and
    /// label back into endpoints.
    pub fn decode(key: &[u8], label: &str) -> Result<Self, EndpointsError> {
        let b = key
            .get(..ENDPOINTS_KEY_LEN)
            .ok_or(EndpointsError::Short(key.len()))?;
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([b[at], b[at + 1]]));
        let u32_at = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let version = u32_at(44);
        if version != ENDPOINTS_KEY_VERSION {
            return Err(EndpointsError::Version(version));
        }
        let ids = [u32_at(0), u32_at(4), u32_at(8)];
        let lens: [usize; 6] = std::array::from_fn(|i| u16_at(32 + 2 * i));
        let texts = read_label(label, ids, lens).ok_or_else(|| EndpointsError::Label {
            label: label.to_owned(),
        })?;
        let [instance_id, control_channel, announce_channel, qos_channel, shm_base_dir, shm_namespace] =
            texts.map(str::to_owned);
        Ok(Self {
            instance_id,
            pid: u32_at(12),
            control_channel,
            control_stream_id: ids[0],
            announce_channel,
            announce_stream_id: ids[1],
            qos_channel,
            qos_stream_id: ids[2],
            shm_base_dir,
            shm_namespace,
            epoch_gc_enabled: b[28] != 0,
            epoch_gc_keep: u32_at(24),
            epoch_gc_min_age_ns: u64::from(u32_at(16)) | (u64::from(u32_at(20)) << 32),
        })
    }
}

/// The six text fields of a label written by [`DriverEndpoints::label`], cut by the lengths
/// the key gives; `None` unless the label is exactly what those fields and `ids` make.
fn read_label(label: &str, ids: [u32; 3], lens: [usize; 6]) -> Option<[&str; 6]> {
    let mut out = [""; 6];
    let separators = [
        "tp-driver[".to_owned(),
        format!("] endpoints: control {} ", ids[0]),
        format!(", announce {} ", ids[1]),
        format!(", qos {} ", ids[2]),
        ", shm ".to_owned(),
        " namespace ".to_owned(),
    ];
    let mut rest = label;
    for (i, separator) in separators.iter().enumerate() {
        rest = rest.strip_prefix(separator.as_str())?;
        let (text, tail) = (rest.get(..lens[i])?, rest.get(lens[i]..)?);
        out[i] = text;
        rest = tail;
    }
    rest.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> DriverEndpoints {
        DriverEndpoints {
            instance_id: "lab ] one".into(),
            pid: 4242,
            control_channel: "aeron:ipc?term-length=4m".into(),
            control_stream_id: 2000,
            announce_channel: "aeron:udp?endpoint=224.0.1.1:40456, x".into(),
            announce_stream_id: 2001,
            qos_channel: "aeron:ipc".into(),
            qos_stream_id: 2200,
            shm_base_dir: "/dev/shm/a dir, shm x".into(),
            shm_namespace: "lab1".into(),
            epoch_gc_enabled: true,
            epoch_gc_keep: 3,
            epoch_gc_min_age_ns: 0x0102_0304_0506_0708,
        }
    }

    #[test]
    fn endpoints_round_trip_even_with_separators_inside_fields() {
        let e = endpoints();
        let mut area = [0u8; 112];
        area[..ENDPOINTS_KEY_LEN].copy_from_slice(&e.key());
        assert_eq!(DriverEndpoints::decode(&area, &e.label()), Ok(e.clone()));
        assert_eq!(
            e.label(),
            "tp-driver[lab ] one] endpoints: control 2000 aeron:ipc?term-length=4m, \
             announce 2001 aeron:udp?endpoint=224.0.1.1:40456, x, qos 2200 aeron:ipc, \
             shm /dev/shm/a dir, shm x namespace lab1"
        );
    }

    #[test]
    fn a_cut_label_a_short_key_and_another_version_are_refused() {
        let e = endpoints();
        let label = e.label();
        let cut = &label[..label.len() - 1];
        assert!(matches!(
            DriverEndpoints::decode(&e.key(), cut),
            Err(EndpointsError::Label { .. })
        ));
        assert_eq!(
            DriverEndpoints::decode(&[0; 10], &label),
            Err(EndpointsError::Short(10))
        );
        assert_eq!(
            DriverEndpoints::decode(&[0; ENDPOINTS_KEY_LEN], &label),
            Err(EndpointsError::Version(0))
        );
    }

    #[test]
    fn applied_to_a_default_configuration_they_are_what_the_driver_runs() {
        let text = "[driver]\ninstance_id = \"x\"\ncontrol_stream_id = 3000\n\
                    announce_stream_id = 3001\nqos_stream_id = 3200\n[shm]\n\
                    base_dir = \"/tmp/tp\"\nnamespace = \"n\"\n[policies]\nepoch_gc_keep = 5\n\
                    [profiles.p]\nheader_nslots = 8\n\
                    payload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n";
        let driver = DriverConfig::from_toml_str(text, &crate::config::NoEnv).expect("valid");
        let published = DriverEndpoints::new(&driver, 7);
        // What `tp` starts from when told nothing.
        let mut seen = crate::tool::Target::default().resolve().expect("defaults");
        published.apply_to(&mut seen);
        assert_eq!(
            seen.driver.control_endpoint(),
            driver.driver.control_endpoint()
        );
        assert_eq!(
            seen.driver.announce_endpoint(),
            driver.driver.announce_endpoint()
        );
        assert_eq!(seen.driver.qos_endpoint(), driver.driver.qos_endpoint());
        assert_eq!(seen.shm.base_dir, driver.shm.base_dir);
        assert_eq!(seen.shm.namespace, "n");
        assert_eq!(seen.policies.epoch_gc_keep, 5);
        assert_eq!(DriverEndpoints::new(&seen, 7), published);
    }
}
