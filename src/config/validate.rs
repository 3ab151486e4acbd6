//! Load-time validation of a [`DriverConfig`] (Driver Model §17, §11, §9).
//!
//! Checks run in a fixed order and the first failure is returned, so a given broken
//! file always produces the same error.

use std::collections::HashMap;
use std::path::{Component, Path};

use super::error::ConfigError;
use super::fields::TOML_INT_MAX;
use super::model::DriverConfig;
use super::parse::key_segment;

/// Maximum length of `shm.namespace` (a single path component, `NAME_MAX`).
pub const MAX_NAMESPACE_LEN: usize = 255;

impl DriverConfig {
    /// Checks every rule of Driver Model §17/§11; called by the loaders.
    ///
    /// # Errors
    /// The first violated rule, as the matching [`ConfigError`] variant.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_driver()?;
        self.validate_shm()?;
        self.validate_policies()?;
        self.validate_profiles()?;
        self.validate_streams()?;
        self.validate_ranges()
    }

    fn validate_driver(&self) -> Result<(), ConfigError> {
        let d = &self.driver;
        for (key, value) in [
            ("driver.instance_id", &d.instance_id),
            ("driver.control_channel", &d.control_channel),
            ("driver.announce_channel", &d.announce_channel),
            ("driver.qos_channel", &d.qos_channel),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::EmptyValue {
                    key: key.to_string(),
                });
            }
        }
        Ok(())
    }

    fn validate_shm(&self) -> Result<(), ConfigError> {
        let shm = &self.shm;
        check_base_dir("shm.base_dir".to_string(), &shm.base_dir)?;
        for (i, dir) in shm.allowed_base_dirs.iter().enumerate() {
            check_base_dir(format!("shm.allowed_base_dirs[{i}]"), dir)?;
        }
        if let Err(reason) = check_namespace(&shm.namespace) {
            return Err(ConfigError::InvalidNamespace {
                key: "shm.namespace".to_string(),
                value: shm.namespace.clone(),
                reason,
            });
        }
        if !shm.page_size_bytes.is_power_of_two() {
            return Err(ConfigError::PageSizeNotPowerOfTwo {
                key: "shm.page_size_bytes",
                value: shm.page_size_bytes,
            });
        }
        Ok(())
    }

    fn validate_policies(&self) -> Result<(), ConfigError> {
        let p = &self.policies;
        for (key, value) in [
            ("policies.announce_period_ms", p.announce_period_ms),
            (
                "policies.lease_keepalive_interval_ms",
                p.lease_keepalive_interval_ms,
            ),
            (
                "policies.lease_expiry_grace_intervals",
                p.lease_expiry_grace_intervals,
            ),
            ("policies.epoch_gc_keep", p.epoch_gc_keep),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroValue { key });
            }
        }
        if p.epoch_gc_min_age_ns > TOML_INT_MAX {
            return Err(ConfigError::InvalidValue {
                key: "policies.epoch_gc_min_age_ns".to_string(),
                reason: format!("must be at most {TOML_INT_MAX} (the largest TOML integer)"),
            });
        }
        Ok(())
    }

    fn validate_profiles(&self) -> Result<(), ConfigError> {
        if self.profiles.is_empty() {
            return Err(ConfigError::NoProfiles);
        }
        for (name, profile) in &self.profiles {
            let path = format!("profiles.{}", key_segment(name));
            if profile.header_nslots == 0 || !profile.header_nslots.is_power_of_two() {
                return Err(ConfigError::HeaderNslotsNotPowerOfTwo {
                    key: format!("{path}.header_nslots"),
                    value: profile.header_nslots,
                });
            }
            if profile.payload_pools.is_empty() {
                return Err(ConfigError::NoPayloadPools {
                    key: format!("{path}.payload_pools"),
                });
            }
            for (i, pool) in profile.payload_pools.iter().enumerate() {
                if !is_valid_stride(pool.stride_bytes) {
                    return Err(ConfigError::InvalidStrideBytes {
                        key: format!("{path}.payload_pools[{i}].stride_bytes"),
                        value: pool.stride_bytes,
                    });
                }
                if profile
                    .payload_pools
                    .iter()
                    .take(i)
                    .any(|p| p.pool_id == pool.pool_id)
                {
                    return Err(ConfigError::DuplicatePoolId {
                        key: format!("{path}.payload_pools[{i}].pool_id"),
                        pool_id: pool.pool_id,
                    });
                }
            }
        }
        let default = &self.policies.default_profile;
        if !self.profiles.contains_key(default) {
            return Err(ConfigError::UnknownDefaultProfile {
                key: "policies.default_profile".to_string(),
                profile: default.clone(),
            });
        }
        Ok(())
    }

    fn validate_streams(&self) -> Result<(), ConfigError> {
        let reserved = self.driver.reserved_stream_ids();
        let mut seen: HashMap<u32, String> = HashMap::with_capacity(self.streams.len());
        for (name, stream) in &self.streams {
            let path = format!("streams.{}", key_segment(name));
            if !self.profiles.contains_key(&stream.profile) {
                return Err(ConfigError::UnknownStreamProfile {
                    key: format!("{path}.profile"),
                    profile: stream.profile.clone(),
                });
            }
            let key = format!("{path}.stream_id");
            if let Some((reserved_key, _)) = reserved.iter().find(|(_, id)| *id == stream.stream_id)
            {
                return Err(ConfigError::StreamIdReserved {
                    key,
                    stream_id: stream.stream_id,
                    reserved_key,
                });
            }
            if let Some(other_key) = seen.get(&stream.stream_id) {
                return Err(ConfigError::DuplicateStreamId {
                    key,
                    stream_id: stream.stream_id,
                    other_key: other_key.clone(),
                });
            }
            seen.insert(stream.stream_id, key);
        }
        Ok(())
    }

    fn validate_ranges(&self) -> Result<(), ConfigError> {
        let ranges = self.driver.ranges();
        let reserved = self.driver.reserved_stream_ids();
        let enabled: Vec<_> = ranges
            .iter()
            .filter_map(|(key, r)| r.map(|r| (*key, r)))
            .collect();
        for (i, &(key, range)) in enabled.iter().enumerate() {
            if !range.is_well_formed() {
                return Err(ConfigError::RangeReversed { key, range });
            }
            if let Some(&(reserved_key, stream_id)) =
                reserved.iter().find(|(_, id)| range.contains(*id))
            {
                return Err(ConfigError::RangeContainsReserved {
                    key,
                    range,
                    stream_id,
                    reserved_key,
                });
            }
            if let Some((name, stream)) = self
                .streams
                .iter()
                .find(|(_, s)| range.contains(s.stream_id))
            {
                return Err(ConfigError::RangeContainsStaticStream {
                    key,
                    range,
                    stream_id: stream.stream_id,
                    stream_key: format!("streams.{}.stream_id", key_segment(name)),
                });
            }
            if let Some(&(other_key, other)) = enabled
                .iter()
                .take(i)
                .find(|(_, other)| other.overlaps(&range))
            {
                return Err(ConfigError::RangesOverlap {
                    key,
                    range,
                    other_key,
                    other,
                });
            }
        }
        if self.policies.allow_dynamic_streams && self.driver.stream_id_range.is_none() {
            return Err(ConfigError::DynamicStreamsWithoutRange);
        }
        Ok(())
    }
}

/// A payload stride must be a power of two of at least 64 bytes.
fn is_valid_stride(stride: u32) -> bool {
    stride >= 64 && stride.is_power_of_two()
}

fn check_base_dir(key: String, path: &Path) -> Result<(), ConfigError> {
    let reason = if path.as_os_str().is_empty() {
        Some("must not be empty")
    } else if !path.is_absolute() {
        Some("must be an absolute path")
    } else if path.components().any(|c| c == Component::ParentDir) {
        Some("must not contain \"..\" components")
    } else if path
        .to_string_lossy()
        .chars()
        .any(|c| c == '\0' || c == '?' || c == '|' || c.is_whitespace() || c.is_control())
    {
        Some("contains a character not allowed in a region URI (NUL, control, whitespace, '?' or '|')")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConfigError::InvalidBaseDir {
            key,
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Checks that `ns` is a single safe path component.
fn check_namespace(ns: &str) -> Result<(), &'static str> {
    if ns.is_empty() {
        Err("must not be empty")
    } else if ns == "." || ns == ".." {
        Err("must not be \".\" or \"..\"")
    } else if ns.len() > MAX_NAMESPACE_LEN {
        Err("is longer than 255 bytes")
    } else if !ns
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Err("must contain only ASCII letters, digits, '.', '_' and '-' (a single path component)")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stride_rule() {
        for ok in [64, 128, 4096, 1 << 31] {
            assert!(is_valid_stride(ok), "{ok}");
        }
        for bad in [0, 1, 32, 63, 96, 192, 4097] {
            assert!(!is_valid_stride(bad), "{bad}");
        }
    }

    #[test]
    fn namespace_rule() {
        for ok in ["default", "lab-1", "sim_2.x", "..a"] {
            assert!(check_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a\0b", "a b", "é", &"x".repeat(256)] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn base_dir_rule() {
        assert!(check_base_dir("k".into(), Path::new("/dev/shm/tp")).is_ok());
        for bad in ["", "dev/shm", "/dev/../etc", "/dev/shm/a b", "/a?b", "/a|b"] {
            assert!(
                check_base_dir("k".into(), Path::new(bad)).is_err(),
                "{bad:?}"
            );
        }
    }
}
