//! TOML + environment parsing into the model (Driver Model §17).
//!
//! The text is parsed into a generic TOML table, then each section is walked by hand so
//! that every error can name the full dotted key path. Environment overrides are looked
//! up per key of the `driver`, `shm` and `policies` sections and take precedence over the
//! file. Derived defaults are resolved here; rule checks live in `validate.rs`.

use std::path::PathBuf;

use indexmap::IndexMap;
use toml::{Table, Value};

use super::env::{env_var_name, EnvSource};
use super::error::ConfigError;
use super::fields::{FieldError, FieldValue, OptRange, StringList};
use super::model::{
    DriverConfig, DriverSection, PayloadPool, PoliciesSection, Profile, ShmSection, StreamConfig,
    DEFAULT_HEADER_NSLOTS,
};
use super::suggest;
use super::values::PermissionsMode;

/// Keys of the `[driver]` section.
pub const DRIVER_KEYS: &[&str] = &[
    "instance_id",
    "media_driver",
    "aeron_dir",
    "control_channel",
    "control_stream_id",
    "announce_channel",
    "announce_stream_id",
    "qos_channel",
    "qos_stream_id",
    "stream_id_range",
    "descriptor_stream_id_range",
    "control_stream_id_range",
];

/// Keys of the `[shm]` section.
pub const SHM_KEYS: &[&str] = &[
    "base_dir",
    "namespace",
    "require_hugepages",
    "page_size_bytes",
    "permissions_mode",
    "allowed_base_dirs",
    "allow_shared_dirs",
];

/// Keys of the `[policies]` section.
pub const POLICIES_KEYS: &[&str] = &[
    "allow_dynamic_streams",
    "default_profile",
    "announce_period_ms",
    "lease_keepalive_interval_ms",
    "lease_expiry_grace_intervals",
    "prefault_shm",
    "mlock_shm",
    "provision_ahead",
    "epoch_gc_enabled",
    "epoch_gc_keep",
    "epoch_gc_min_age_ns",
    "epoch_gc_on_startup",
    "delete_shm_on_startup",
    "shutdown_timeout_ms",
    "shutdown_token",
];

const TOP_LEVEL_KEYS: &[&str] = &["driver", "shm", "policies", "profiles", "streams"];
const PROFILE_KEYS: &[&str] = &["header_nslots", "payload_pools"];
const POOL_KEYS: &[&str] = &["pool_id", "stride_bytes"];
const STREAM_KEYS: &[&str] = &["stream_id", "profile"];

/// Every environment-overridable key with its variable name, as `(key, VAR)` pairs.
pub fn env_overrides() -> Vec<(String, String)> {
    [
        ("driver", DRIVER_KEYS),
        ("shm", SHM_KEYS),
        ("policies", POLICIES_KEYS),
    ]
    .iter()
    .flat_map(|(section, keys)| {
        keys.iter().map(move |k| {
            let key = format!("{section}.{k}");
            let var = env_var_name(&key);
            (key, var)
        })
    })
    .collect()
}

/// Renders a table name as a TOML key segment: bare when possible, quoted otherwise.
pub(crate) fn key_segment(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        Value::String(name.to_string()).to_string()
    }
}

/// One table being read, with its dotted path and optional environment.
struct Section<'a> {
    path: String,
    table: Table,
    env: Option<&'a dyn EnvSource>,
}

impl<'a> Section<'a> {
    /// Wraps `table`, rejecting any key not in `known`.
    fn new(
        path: String,
        table: Table,
        known: &[&str],
        env: Option<&'a dyn EnvSource>,
    ) -> Result<Self, ConfigError> {
        if let Some(k) = table.keys().find(|k| !known.contains(&k.as_str())) {
            let suggestion = suggest::closest(k, known)
                .map(|known| format!("{path}.{known}"))
                .or_else(|| suggest::home_section(k, &path));
            return Err(ConfigError::UnknownKey {
                key: format!("{path}.{}", key_segment(k)),
                suggestion,
            });
        }
        Ok(Self { path, table, env })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    /// The value from the file only.
    fn file<T: FieldValue>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(v) = self.table.get(key) else {
            return Ok(None);
        };
        T::from_toml(v).map(Some).map_err(|e| match e {
            FieldError::Type => ConfigError::InvalidType {
                key: self.full_key(key),
                expected: T::EXPECTED,
                found: v.type_str(),
            },
            FieldError::Value(reason) => ConfigError::InvalidValue {
                key: self.full_key(key),
                reason,
            },
        })
    }

    /// The value from the environment override only.
    fn env<T: FieldValue>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let Some(env) = self.env else {
            return Ok(None);
        };
        let full = self.full_key(key);
        let var = env_var_name(&full);
        let Some(value) = env.var(&var) else {
            return Ok(None);
        };
        match T::from_env(&value) {
            Ok(v) => {
                tracing::debug!(var = %var, key = %full, "configuration key overridden by environment");
                Ok(Some(v))
            }
            Err(reason) => Err(ConfigError::InvalidEnv {
                var,
                key: full,
                value,
                reason,
            }),
        }
    }

    /// The effective value: environment first, then file.
    fn get<T: FieldValue>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        let file = self.file::<T>(key)?;
        Ok(self.env::<T>(key)?.or(file))
    }

    /// A value that must be present.
    fn required<T: FieldValue>(&self, key: &str) -> Result<T, ConfigError> {
        self.get(key)?.ok_or_else(|| ConfigError::MissingKey {
            key: self.full_key(key),
        })
    }
}

/// Removes `name` from `root`, requiring it to be a table (absent = empty table).
fn take_table(root: &mut Table, name: &str, path: &str) -> Result<Table, ConfigError> {
    match root.remove(name) {
        None => Ok(Table::new()),
        Some(Value::Table(t)) => Ok(t),
        Some(other) => Err(ConfigError::InvalidType {
            key: path.to_string(),
            expected: "a table",
            found: other.type_str(),
        }),
    }
}

/// Turns `""` into `None`.
fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Parses TOML text plus environment overrides into a (not yet validated) config.
pub(crate) fn parse(text: &str, env: &dyn EnvSource) -> Result<DriverConfig, ConfigError> {
    let mut root: Table = text.parse().map_err(|e| ConfigError::from_toml(text, &e))?;
    let driver_t = take_table(&mut root, "driver", "driver")?;
    let shm_t = take_table(&mut root, "shm", "shm")?;
    let policies_t = take_table(&mut root, "policies", "policies")?;
    let profiles_t = take_table(&mut root, "profiles", "profiles")?;
    let streams_t = take_table(&mut root, "streams", "streams")?;
    if let Some(k) = root.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
        let suggestion = suggest::closest(k, TOP_LEVEL_KEYS)
            .map(str::to_string)
            .or_else(|| suggest::home_section(k, ""));
        return Err(ConfigError::UnknownKey {
            key: key_segment(k),
            suggestion,
        });
    }

    let profiles = parse_profiles(profiles_t)?;
    let streams = parse_streams(streams_t)?;
    let driver = parse_driver(Section::new(
        "driver".into(),
        driver_t,
        DRIVER_KEYS,
        Some(env),
    )?)?;
    let shm = parse_shm(Section::new("shm".into(), shm_t, SHM_KEYS, Some(env))?)?;
    let policies = parse_policies(
        Section::new("policies".into(), policies_t, POLICIES_KEYS, Some(env))?,
        &profiles,
    )?;
    Ok(DriverConfig {
        driver,
        shm,
        policies,
        profiles,
        streams,
    })
}

fn parse_driver(s: Section<'_>) -> Result<DriverSection, ConfigError> {
    let d = DriverSection::default();
    let control_channel = s
        .get::<String>("control_channel")?
        .unwrap_or(d.control_channel);
    let control_stream_id = s
        .get::<u32>("control_stream_id")?
        .unwrap_or(d.control_stream_id);
    Ok(DriverSection {
        instance_id: s.get("instance_id")?.unwrap_or(d.instance_id),
        media_driver: s.get("media_driver")?.unwrap_or(d.media_driver),
        aeron_dir: non_empty(s.get("aeron_dir")?).map(PathBuf::from),
        announce_channel: non_empty(s.get("announce_channel")?)
            .unwrap_or_else(|| control_channel.clone()),
        announce_stream_id: s.get("announce_stream_id")?.unwrap_or(control_stream_id),
        control_channel,
        control_stream_id,
        qos_channel: s.get("qos_channel")?.unwrap_or(d.qos_channel),
        qos_stream_id: s.get("qos_stream_id")?.unwrap_or(d.qos_stream_id),
        stream_id_range: s.get::<OptRange>("stream_id_range")?.and_then(|r| r.0),
        descriptor_stream_id_range: s
            .get::<OptRange>("descriptor_stream_id_range")?
            .and_then(|r| r.0),
        control_stream_id_range: s
            .get::<OptRange>("control_stream_id_range")?
            .and_then(|r| r.0),
    })
}

fn parse_shm(s: Section<'_>) -> Result<ShmSection, ConfigError> {
    let d = ShmSection::default();
    let base_dir = s
        .get::<String>("base_dir")?
        .map_or(d.base_dir, PathBuf::from);
    // The file form of permissions_mode gets its own error variant; the environment
    // form is reported as an environment error naming the variable.
    let file_mode = match s.file::<String>("permissions_mode")? {
        Some(value) => Some(value.parse::<PermissionsMode>().map_err(|e| {
            ConfigError::InvalidPermissionsMode {
                key: s.full_key("permissions_mode"),
                value: value.clone(),
                reason: e.to_string(),
            }
        })?),
        None => None,
    };
    let permissions_mode = s
        .env::<PermissionsMode>("permissions_mode")?
        .or(file_mode)
        .unwrap_or(d.permissions_mode);
    let allowed = s
        .get::<StringList>("allowed_base_dirs")?
        .map(|l| l.0)
        .unwrap_or_default();
    let allowed_base_dirs = if allowed.is_empty() {
        vec![base_dir.clone()]
    } else {
        allowed.into_iter().map(PathBuf::from).collect()
    };
    Ok(ShmSection {
        namespace: s.get("namespace")?.unwrap_or(d.namespace),
        require_hugepages: s.get("require_hugepages")?.unwrap_or(d.require_hugepages),
        page_size_bytes: s.get("page_size_bytes")?.unwrap_or(d.page_size_bytes),
        permissions_mode,
        allowed_base_dirs,
        allow_shared_dirs: s.get("allow_shared_dirs")?.unwrap_or(d.allow_shared_dirs),
        base_dir,
    })
}

fn parse_policies(
    s: Section<'_>,
    profiles: &IndexMap<String, Profile>,
) -> Result<PoliciesSection, ConfigError> {
    let d = PoliciesSection::default();
    let announce_period_ms = s
        .get::<u32>("announce_period_ms")?
        .unwrap_or(d.announce_period_ms);
    let default_profile = non_empty(s.get("default_profile")?)
        .or_else(|| profiles.keys().next().cloned())
        .unwrap_or_default();
    Ok(PoliciesSection {
        allow_dynamic_streams: s
            .get("allow_dynamic_streams")?
            .unwrap_or(d.allow_dynamic_streams),
        default_profile,
        announce_period_ms,
        lease_keepalive_interval_ms: s
            .get("lease_keepalive_interval_ms")?
            .unwrap_or(d.lease_keepalive_interval_ms),
        lease_expiry_grace_intervals: s
            .get("lease_expiry_grace_intervals")?
            .unwrap_or(d.lease_expiry_grace_intervals),
        prefault_shm: s.get("prefault_shm")?.unwrap_or(d.prefault_shm),
        mlock_shm: s.get("mlock_shm")?.unwrap_or(d.mlock_shm),
        provision_ahead: s.get("provision_ahead")?.unwrap_or(d.provision_ahead),
        epoch_gc_enabled: s.get("epoch_gc_enabled")?.unwrap_or(d.epoch_gc_enabled),
        epoch_gc_keep: s.get("epoch_gc_keep")?.unwrap_or(d.epoch_gc_keep),
        epoch_gc_min_age_ns: s
            .get("epoch_gc_min_age_ns")?
            .unwrap_or_else(|| PoliciesSection::derived_epoch_gc_min_age_ns(announce_period_ms)),
        epoch_gc_on_startup: s
            .get("epoch_gc_on_startup")?
            .unwrap_or(d.epoch_gc_on_startup),
        delete_shm_on_startup: s
            .get("delete_shm_on_startup")?
            .unwrap_or(d.delete_shm_on_startup),
        shutdown_timeout_ms: s
            .get("shutdown_timeout_ms")?
            .unwrap_or(d.shutdown_timeout_ms),
        shutdown_token: non_empty(s.get("shutdown_token")?),
    })
}

fn parse_profiles(t: Table) -> Result<IndexMap<String, Profile>, ConfigError> {
    let mut profiles = IndexMap::with_capacity(t.len());
    for (name, value) in t {
        let path = format!("profiles.{}", key_segment(&name));
        let Value::Table(pt) = value else {
            return Err(ConfigError::InvalidType {
                key: path,
                expected: "a table",
                found: value.type_str(),
            });
        };
        let s = Section::new(path, pt, PROFILE_KEYS, None)?;
        let header_nslots = s
            .get::<u32>("header_nslots")?
            .unwrap_or(DEFAULT_HEADER_NSLOTS);
        let pools_key = s.full_key("payload_pools");
        let payload_pools = match s.table.get("payload_pools") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| parse_pool(&pools_key, i, item))
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(ConfigError::InvalidType {
                    key: pools_key,
                    expected: "an array of tables { pool_id, stride_bytes }",
                    found: other.type_str(),
                })
            }
        };
        profiles.insert(
            name,
            Profile {
                header_nslots,
                payload_pools,
            },
        );
    }
    Ok(profiles)
}

fn parse_pool(pools_key: &str, index: usize, item: &Value) -> Result<PayloadPool, ConfigError> {
    let path = format!("{pools_key}[{index}]");
    let Value::Table(t) = item else {
        return Err(ConfigError::InvalidType {
            key: path,
            expected: "a table { pool_id, stride_bytes }",
            found: item.type_str(),
        });
    };
    let s = Section::new(path, t.clone(), POOL_KEYS, None)?;
    Ok(PayloadPool {
        pool_id: s.required("pool_id")?,
        stride_bytes: s.required("stride_bytes")?,
    })
}

fn parse_streams(t: Table) -> Result<IndexMap<String, StreamConfig>, ConfigError> {
    let mut streams = IndexMap::with_capacity(t.len());
    for (name, value) in t {
        let path = format!("streams.{}", key_segment(&name));
        let Value::Table(st) = value else {
            return Err(ConfigError::InvalidType {
                key: path,
                expected: "a table",
                found: value.type_str(),
            });
        };
        let s = Section::new(path, st, STREAM_KEYS, None)?;
        let stream = StreamConfig {
            stream_id: s.required("stream_id")?,
            profile: s.required("profile")?,
        };
        streams.insert(name, stream);
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::NoEnv;

    #[test]
    fn key_segments_are_quoted_when_needed() {
        assert_eq!(key_segment("cam_1-a"), "cam_1-a");
        assert_eq!(key_segment("my cam"), "\"my cam\"");
        assert_eq!(key_segment("a.b"), "\"a.b\"");
        assert_eq!(key_segment(""), "\"\"");
    }

    #[test]
    fn env_override_list_covers_every_section_key() {
        let list = env_overrides();
        assert_eq!(
            list.len(),
            DRIVER_KEYS.len() + SHM_KEYS.len() + POLICIES_KEYS.len()
        );
        assert!(list.contains(&(
            "driver.control_stream_id".to_string(),
            "DRIVER_CONTROL_STREAM_ID".to_string()
        )));
        assert!(list.contains(&("shm.namespace".to_string(), "SHM_NAMESPACE".to_string())));
    }

    #[test]
    fn unknown_key_in_quoted_stream_name() {
        let text = "[streams.\"my cam\"]\nstream_id = 1\nprofile = \"p\"\nbogus = 1\n";
        match parse(text, &NoEnv) {
            Err(ConfigError::UnknownKey { key, .. }) => {
                assert_eq!(key, "streams.\"my cam\".bogus")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn missing_required_keys() {
        let text = "[streams.a]\nprofile = \"p\"\n";
        match parse(text, &NoEnv) {
            Err(ConfigError::MissingKey { key }) => assert_eq!(key, "streams.a.stream_id"),
            other => panic!("unexpected {other:?}"),
        }
        let text = "[profiles.p]\npayload_pools = [{ pool_id = 1 }]\n";
        match parse(text, &NoEnv) {
            Err(ConfigError::MissingKey { key }) => {
                assert_eq!(key, "profiles.p.payload_pools[0].stride_bytes")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn section_of_wrong_type() {
        match parse("driver = 5\n", &NoEnv) {
            Err(ConfigError::InvalidType { key, found, .. }) => {
                assert_eq!(key, "driver");
                assert_eq!(found, "integer");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
