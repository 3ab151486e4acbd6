//! Rendering the effective configuration back to TOML (`tp-driver --print-config`).
//!
//! Every key is written with its effective value (defaults and derived defaults filled
//! in), so the output loads back to an equal [`DriverConfig`].

use std::fmt::{self, Write};
use std::path::Path;

use toml::Value;

use super::model::DriverConfig;
use super::parse::key_segment;
use super::range::StreamIdRange;

/// Placeholder written instead of a configured shutdown token by the redacted form.
pub const REDACTED: &str = "<redacted>";

fn s(v: &str) -> String {
    Value::String(v.to_string()).to_string()
}

fn p(v: &Path) -> String {
    s(&v.to_string_lossy())
}

fn r(v: Option<StreamIdRange>) -> String {
    s(&v.map(|r| r.to_string()).unwrap_or_default())
}

impl DriverConfig {
    /// The full effective configuration as TOML; loading it back yields an equal config.
    pub fn to_toml_string(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_toml(&mut out, false);
        out
    }

    /// Like [`DriverConfig::to_toml_string`] but with `policies.shutdown_token` replaced
    /// by `"<redacted>"` when set, for logs and `--print-config` output.
    pub fn to_redacted_toml_string(&self) -> String {
        let mut out = String::new();
        let _ = self.write_toml(&mut out, true);
        out
    }

    fn write_toml(&self, out: &mut String, redact: bool) -> fmt::Result {
        let d = &self.driver;
        writeln!(
            out,
            "# Effective tensorpool driver configuration (Driver Model §17)."
        )?;
        writeln!(out)?;
        writeln!(out, "[driver]")?;
        writeln!(out, "instance_id = {}", s(&d.instance_id))?;
        writeln!(out, "media_driver = {}", s(d.media_driver.as_str()))?;
        writeln!(
            out,
            "aeron_dir = {}",
            d.aeron_dir.as_deref().map_or_else(|| s(""), p)
        )?;
        writeln!(out, "control_channel = {}", s(&d.control_channel))?;
        writeln!(out, "control_stream_id = {}", d.control_stream_id)?;
        writeln!(out, "announce_channel = {}", s(&d.announce_channel))?;
        writeln!(out, "announce_stream_id = {}", d.announce_stream_id)?;
        writeln!(out, "qos_channel = {}", s(&d.qos_channel))?;
        writeln!(out, "qos_stream_id = {}", d.qos_stream_id)?;
        writeln!(out, "stream_id_range = {}", r(d.stream_id_range))?;
        writeln!(
            out,
            "descriptor_stream_id_range = {}",
            r(d.descriptor_stream_id_range)
        )?;
        writeln!(
            out,
            "control_stream_id_range = {}",
            r(d.control_stream_id_range)
        )?;

        let shm = &self.shm;
        writeln!(out)?;
        writeln!(out, "[shm]")?;
        writeln!(out, "base_dir = {}", p(&shm.base_dir))?;
        writeln!(out, "namespace = {}", s(&shm.namespace))?;
        writeln!(out, "require_hugepages = {}", shm.require_hugepages)?;
        writeln!(out, "page_size_bytes = {}", shm.page_size_bytes)?;
        writeln!(
            out,
            "permissions_mode = {}",
            s(&shm.permissions_mode.to_string())
        )?;
        let dirs: Vec<String> = shm.allowed_base_dirs.iter().map(|d| p(d)).collect();
        writeln!(out, "allowed_base_dirs = [{}]", dirs.join(", "))?;
        writeln!(out, "allow_shared_dirs = {}", shm.allow_shared_dirs)?;

        let pol = &self.policies;
        writeln!(out)?;
        writeln!(out, "[policies]")?;
        writeln!(out, "allow_dynamic_streams = {}", pol.allow_dynamic_streams)?;
        writeln!(out, "default_profile = {}", s(&pol.default_profile))?;
        writeln!(out, "announce_period_ms = {}", pol.announce_period_ms)?;
        writeln!(
            out,
            "lease_keepalive_interval_ms = {}",
            pol.lease_keepalive_interval_ms
        )?;
        writeln!(
            out,
            "lease_expiry_grace_intervals = {}",
            pol.lease_expiry_grace_intervals
        )?;
        writeln!(out, "prefault_shm = {}", pol.prefault_shm)?;
        writeln!(out, "mlock_shm = {}", pol.mlock_shm)?;
        writeln!(out, "provision_ahead = {}", pol.provision_ahead)?;
        writeln!(out, "epoch_gc_enabled = {}", pol.epoch_gc_enabled)?;
        writeln!(out, "epoch_gc_keep = {}", pol.epoch_gc_keep)?;
        writeln!(out, "epoch_gc_min_age_ns = {}", pol.epoch_gc_min_age_ns)?;
        writeln!(out, "epoch_gc_on_startup = {}", pol.epoch_gc_on_startup)?;
        writeln!(out, "delete_shm_on_startup = {}", pol.delete_shm_on_startup)?;
        writeln!(out, "shutdown_timeout_ms = {}", pol.shutdown_timeout_ms)?;
        let token = match (&pol.shutdown_token, redact) {
            (None, _) => "",
            (Some(_), true) => REDACTED,
            (Some(t), false) => t.as_str(),
        };
        writeln!(out, "shutdown_token = {}", s(token))?;

        for (name, profile) in &self.profiles {
            writeln!(out)?;
            writeln!(out, "[profiles.{}]", key_segment(name))?;
            writeln!(out, "header_nslots = {}", profile.header_nslots)?;
            if profile.payload_pools.is_empty() {
                writeln!(out, "payload_pools = []")?;
            } else {
                writeln!(out, "payload_pools = [")?;
                for pool in &profile.payload_pools {
                    writeln!(
                        out,
                        "  {{ pool_id = {}, stride_bytes = {} }},",
                        pool.pool_id, pool.stride_bytes
                    )?;
                }
                writeln!(out, "]")?;
            }
        }

        for (name, stream) in &self.streams {
            writeln!(out)?;
            writeln!(out, "[streams.{}]", key_segment(name))?;
            writeln!(out, "stream_id = {}", stream.stream_id)?;
            writeln!(out, "profile = {}", s(&stream.profile))?;
        }
        Ok(())
    }
}
