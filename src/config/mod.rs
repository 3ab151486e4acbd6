//! Driver configuration (Driver Model §17).
//!
//! The SHM driver is configured by a TOML file with five sections, matching the
//! canonical configuration surface of Driver Model §17:
//!
//! - `[driver]`: instance id, embedded/external Aeron media driver, control / announce /
//!   QoS endpoints, and the stream-id allocation ranges of Driver Model §11
//!   (`stream_id_range`, `descriptor_stream_id_range`, `control_stream_id_range`),
//!   written as `"a-b"` or `[a, b]` (inclusive; `""` = disabled).
//! - `[shm]`: base directory, namespace, hugepage / page-size policy, file mode and the
//!   allow-list of base directories.
//! - `[policies]`: dynamic streams, default profile, announce cadence, leases, prefault /
//!   mlock, epoch GC and shutdown.
//! - `[profiles.<name>]`: SHM layouts (`header_nslots`, `payload_pools`); file order is
//!   kept and the first profile is the default `policies.default_profile`.
//! - `[streams.<name>]`: static streams (`stream_id`, `profile`).
//!
//! # Environment overrides
//!
//! Every key of the `driver`, `shm` and `policies` sections can be overridden by an
//! environment variable named after Aeron's convention: the dotted key uppercased with
//! `.` replaced by `_` (`driver.control_stream_id` → `DRIVER_CONTROL_STREAM_ID`,
//! `shm.namespace` → `SHM_NAMESPACE`). The environment beats the file. Ranges use the
//! `"a-b"` form (`""` disables), `SHM_ALLOWED_BASE_DIRS` is a comma-separated list and
//! booleans accept `true`/`false`/`1`/`0`. [`env_overrides`] lists every pair.
//! **Profiles and streams are file-only**: they have no environment overrides.
//!
//! The environment is injected through [`EnvSource`] ([`ProcessEnv`] for the real
//! process environment, [`MapEnv`] or a closure for tests), so loading is deterministic
//! and tests never touch the process-global environment.
//!
//! # Defaults and validation
//!
//! Loading fills every spec default and resolves the derived ones (announce endpoint =
//! control endpoint, `allowed_base_dirs = [base_dir]`, `default_profile` = first
//! profile, `epoch_gc_min_age_ns` = 3 × announce period), then validates the result
//! ([`DriverConfig::validate`]). Unknown keys, type errors, malformed environment values
//! and rule violations are reported as [`ConfigError`] variants naming the key.
//! [`DriverConfig::to_toml_string`] prints the effective configuration back as TOML.
//!
//! ```
//! use tensorpool::config::{DriverConfig, MapEnv};
//!
//! let toml = r#"
//! [profiles.default]
//! header_nslots = 64
//! payload_pools = [{ pool_id = 1, stride_bytes = 4096 }]
//! "#;
//! let env = MapEnv::new().with("DRIVER_CONTROL_STREAM_ID", "2000");
//! let cfg = DriverConfig::from_toml_str(toml, &env)?;
//! assert_eq!(cfg.driver.control_stream_id, 2000);
//! assert_eq!(cfg.driver.announce_stream_id, 2000);
//! assert_eq!(cfg.policies.default_profile, "default");
//! # Ok::<(), tensorpool::config::ConfigError>(())
//! ```

mod emit;
mod env;
mod error;
mod fields;
mod model;
mod parse;
mod range;
mod suggest;
mod validate;
mod values;

#[cfg(test)]
mod tests;

use std::path::Path;

pub use emit::REDACTED;
pub use env::{env_var_name, EnvSource, MapEnv, NoEnv, ProcessEnv};
pub use error::{ConfigError, ParseValueError};
pub use model::{
    DriverConfig, DriverSection, PayloadPool, PoliciesSection, Profile, ShmSection, StreamConfig,
    DEFAULT_ANNOUNCE_PERIOD_MS, DEFAULT_CONTROL_CHANNEL, DEFAULT_CONTROL_STREAM_ID,
    DEFAULT_EPOCH_GC_KEEP, DEFAULT_HEADER_NSLOTS, DEFAULT_INSTANCE_ID,
    DEFAULT_LEASE_EXPIRY_GRACE_INTERVALS, DEFAULT_LEASE_KEEPALIVE_INTERVAL_MS,
    DEFAULT_PAGE_SIZE_BYTES, DEFAULT_PERMISSIONS_MODE, DEFAULT_QOS_CHANNEL, DEFAULT_QOS_STREAM_ID,
    DEFAULT_SHM_BASE_DIR, DEFAULT_SHM_NAMESPACE, DEFAULT_SHUTDOWN_TIMEOUT_MS,
};
pub use parse::{env_overrides, DRIVER_KEYS, POLICIES_KEYS, SHM_KEYS};
pub use range::{parse_optional_range, StreamIdRange};
pub use validate::MAX_NAMESPACE_LEN;
pub use values::{MediaDriverMode, PermissionsMode};

impl DriverConfig {
    /// Parses `text` as TOML, applies overrides from `env`, fills defaults and validates.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] for invalid TOML, [`ConfigError::UnknownKey`] /
    /// [`ConfigError::InvalidType`] / [`ConfigError::InvalidValue`] for bad keys,
    /// [`ConfigError::InvalidEnv`] for bad overrides, or a validation variant.
    pub fn from_toml_str(text: &str, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let cfg = parse::parse(text, env)?;
        cfg.validate()?;
        if !cfg.shm.is_under_allowed_base_dir(&cfg.shm.base_dir) {
            tracing::warn!(
                base_dir = %cfg.shm.base_dir.display(),
                "shm.base_dir is not inside any shm.allowed_base_dirs entry; clients will reject its region URIs"
            );
        }
        Ok(cfg)
    }

    /// Reads the TOML file at `path`, then behaves like [`DriverConfig::from_toml_str`].
    ///
    /// # Errors
    /// [`ConfigError::Io`] if the file cannot be read, otherwise as `from_toml_str`.
    pub fn load(path: impl AsRef<Path>, env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, env)
    }

    /// Loads `path` with overrides from the real process environment ([`ProcessEnv`]).
    ///
    /// # Errors
    /// As [`DriverConfig::load`].
    pub fn load_with_process_env(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::load(path, &ProcessEnv)
    }
}
