//! `tp_config`: the settings producers and consumers are created from (the Rust
//! `ClientStreams`, `ProducerConfig` and `ConsumerConfig`, one setter per field).

use crate::handle::{self, Kind, Shell};
use crate::status::{guard, tp_status, write_out, Failure};
use std::ffi::{c_char, CStr};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;
use tensorpool::client::consumer::{ConsumerConfig, ConsumerMode, MAX_CHANNEL_LEN};
use tensorpool::client::producer::ProducerConfig;
use tensorpool::client::progress::ProgressHints;
use tensorpool::client::ClientStreams;
use tensorpool::protocol::driver::PublishMode;

/// Client settings for `tp_producer_create` and `tp_consumer_create` (opaque). The
/// defaults agree with the shipped `config/driver.toml`: Aeron's default directory, every
/// stream on `aeron:ipc?term-length=4m`, control 1000, announce 1001, descriptors 1100,
/// QoS 1200, metadata 1300, SHM files under `/dev/shm/tensorpool`, a random client id, keepalives paced by the granted lease.
/// Settings a role does not use are ignored by it. A config is plain data: it may be
/// used from any thread, but not from two at once; creating a client copies it.
#[allow(non_camel_case_types)]
pub struct tp_config {
    _private: [u8; 0],
}

/// Publish mode: attach only to a stream the driver has (`REQUIRE_EXISTING`, the
/// default) or let the driver create it (`EXISTING_OR_CREATE`).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_publish_mode {
    /// Attach only to a configured or existing stream.
    TP_PUBLISH_REQUIRE_EXISTING = 1,
    /// Let the driver create the stream on demand.
    TP_PUBLISH_EXISTING_OR_CREATE = 2,
}

/// What a config holds.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) streams: ClientStreams,
    pub(crate) client_id: u32,
    pub(crate) allowed_base_dirs: Vec<PathBuf>,
    pub(crate) keepalive_interval: Option<Duration>,
    pub(crate) attach_timeout: Duration,
    pub(crate) announce_period: Duration,
    pub(crate) publish_mode: Option<PublishMode>,
    pub(crate) per_consumer_descriptor: Option<(String, u32)>,
    pub(crate) max_outstanding_seq_gap: Option<u64>,
    pub(crate) watch_next_slot: bool,
    pub(crate) metadata_interval: Duration,
    pub(crate) mode: ConsumerMode,
    pub(crate) progress: Option<ProgressHints>,
}

impl Default for Settings {
    fn default() -> Self {
        let producer = ProducerConfig::new(0);
        let consumer = ConsumerConfig::new(ClientStreams::default(), 0);
        Self {
            streams: ClientStreams::default(),
            client_id: 0,
            allowed_base_dirs: producer.allowed_base_dirs,
            keepalive_interval: producer.keepalive_interval,
            attach_timeout: producer.attach_timeout,
            announce_period: consumer.announce_period,
            publish_mode: None,
            per_consumer_descriptor: None,
            max_outstanding_seq_gap: consumer.max_outstanding_seq_gap,
            watch_next_slot: consumer.watch_next_slot,
            metadata_interval: producer.metadata_interval,
            mode: consumer.mode,
            progress: consumer.progress,
        }
    }
}

impl Settings {
    /// The producer configuration for `stream_id`.
    pub(crate) fn producer(&self, stream_id: u32) -> ProducerConfig {
        let mut config = ProducerConfig::new(stream_id)
            .streams(self.streams.clone())
            .client_id(self.client_id)
            .allowed_base_dirs(self.allowed_base_dirs.iter().cloned())
            .attach_timeout(self.attach_timeout)
            .metadata_interval(self.metadata_interval);
        config.keepalive_interval = self.keepalive_interval;
        match self.publish_mode {
            Some(mode) => config.publish_mode(mode),
            None => config,
        }
    }

    /// The consumer configuration for `stream_id`.
    pub(crate) fn consumer(&self, stream_id: u32) -> ConsumerConfig {
        ConsumerConfig {
            consumer_id: self.client_id,
            allowed_base_dirs: self.allowed_base_dirs.clone(),
            request_per_consumer_descriptor: self.per_consumer_descriptor.clone(),
            announce_period: self.announce_period,
            keepalive_interval: self.keepalive_interval,
            attach_timeout: self.attach_timeout,
            max_outstanding_seq_gap: self.max_outstanding_seq_gap,
            watch_next_slot: self.watch_next_slot,
            mode: self.mode,
            progress: self.progress,
            client_name: "tensorpool-c-consumer".into(),
            ..ConsumerConfig::new(self.streams.clone(), stream_id)
        }
    }
}

type ConfigShell = Shell<Settings>;

fn shell(config: *const tp_config) -> *const ConfigShell {
    config.cast()
}

/// Reads a required UTF-8 string argument.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string.
pub(crate) unsafe fn utf8<'a>(text: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if text.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated by the contract.
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not UTF-8")))
}

fn milliseconds(ms: u64, what: &str) -> Result<Duration, Failure> {
    if ms == 0 {
        return Err(Failure::invalid(format!("{what} must be at least 1 ms")));
    }
    Ok(Duration::from_millis(ms))
}

fn channel(text: &str, what: &str) -> Result<String, Failure> {
    if !text.starts_with("aeron:") {
        return Err(Failure::invalid(format!(
            "{what} {text:?} is not an Aeron channel (aeron:ipc or aeron:udp?...)"
        )));
    }
    Ok(text.to_string())
}

/// Runs `body` on the settings of `config`.
fn edit(
    config: *mut tp_config,
    body: impl FnOnce(&mut Settings) -> Result<(), Failure>,
) -> tp_status {
    // SAFETY: `config` is NULL or a handle of this library (the ABI contract).
    unsafe { handle::with(shell(config), Kind::Config, body) }
}

/// Creates a config with the defaults (see `tp_config`) and stores it in `*out`.
#[no_mangle]
pub extern "C" fn tp_config_create(out: *mut *mut tp_config) -> tp_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let shell = handle::new_shell(Kind::Config, Settings::default());
        // SAFETY: checked non-NULL above; the caller provides a writable pointer.
        unsafe { write_out(out, "out", shell.cast()) }
    })
}

/// Frees a config (NULL does nothing). Clients created from it are not affected.
#[no_mangle]
pub extern "C" fn tp_config_close(config: *mut tp_config) -> tp_status {
    // SAFETY: the ABI contract.
    unsafe { handle::close(shell(config), Kind::Config) }
}

/// Sets the Aeron directory of the media driver (the driver's `driver.aeron_dir`).
#[no_mangle]
pub extern "C" fn tp_config_set_aeron_dir(config: *mut tp_config, dir: *const c_char) -> tp_status {
    edit(config, |s| {
        // SAFETY: `dir` is NULL or a C string (the ABI contract).
        let dir = unsafe { utf8(dir, "dir") }?;
        if dir.is_empty() {
            return Err(Failure::invalid("the Aeron directory is empty"));
        }
        s.streams.aeron_dir = Some(PathBuf::from(dir));
        Ok(())
    })
}

/// Puts the control, announce, descriptor, QoS and metadata streams on one Aeron
/// `channel`.
#[no_mangle]
pub extern "C" fn tp_config_set_channel(
    config: *mut tp_config,
    channel_uri: *const c_char,
) -> tp_status {
    edit(config, |s| {
        // SAFETY: the ABI contract.
        let text = channel(unsafe { utf8(channel_uri, "channel") }?, "channel")?;
        s.streams.control_channel.clone_from(&text);
        s.streams.announce_channel.clone_from(&text);
        s.streams.descriptor_channel.clone_from(&text);
        s.streams.metadata_channel.clone_from(&text);
        s.streams.qos_channel = text;
        Ok(())
    })
}

/// Sets the stream ids of the control plane (the driver's `driver.control_stream_id`,
/// `driver.announce_stream_id`, `driver.qos_stream_id`) and of the shared descriptor
/// stream. Each must be 1..=2147483647.
#[no_mangle]
pub extern "C" fn tp_config_set_stream_ids(
    config: *mut tp_config,
    control_stream_id: u32,
    announce_stream_id: u32,
    descriptor_stream_id: u32,
    qos_stream_id: u32,
) -> tp_status {
    edit(config, |s| {
        for (id, what) in [
            (control_stream_id, "control_stream_id"),
            (announce_stream_id, "announce_stream_id"),
            (descriptor_stream_id, "descriptor_stream_id"),
            (qos_stream_id, "qos_stream_id"),
        ] {
            if id == 0 || i32::try_from(id).is_err() {
                return Err(Failure::invalid(format!(
                    "{what} {id} is not in 1..=2147483647"
                )));
            }
        }
        s.streams.control_stream_id = control_stream_id;
        s.streams.announce_stream_id = announce_stream_id;
        s.streams.descriptor_stream_id = descriptor_stream_id;
        s.streams.qos_stream_id = qos_stream_id;
        Ok(())
    })
}

/// Sets the metadata stream (`DataSourceAnnounce`, `DataSourceMeta`; Wire Spec §10.3):
/// `channel_uri` (NULL keeps the current one) and `stream_id` (1..=2147483647; the
/// convention, and the default, is 1300).
#[no_mangle]
pub extern "C" fn tp_config_set_metadata_stream(
    config: *mut tp_config,
    channel_uri: *const c_char,
    stream_id: u32,
) -> tp_status {
    edit(config, |s| {
        if stream_id == 0 || i32::try_from(stream_id).is_err() {
            return Err(Failure::invalid(format!(
                "metadata stream id {stream_id} is not in 1..=2147483647"
            )));
        }
        if !channel_uri.is_null() {
            // SAFETY: the ABI contract.
            s.streams.metadata_channel =
                channel(unsafe { utf8(channel_uri, "channel") }?, "metadata channel")?;
        }
        s.streams.metadata_stream_id = stream_id;
        Ok(())
    })
}

/// Sets how often a producer re-announces its metadata (default 1000 ms); a consumer
/// that joins late has it within one period. Changes go out at once regardless.
#[no_mangle]
pub extern "C" fn tp_config_set_metadata_interval_ms(config: *mut tp_config, ms: u64) -> tp_status {
    edit(config, |s| {
        s.metadata_interval = milliseconds(ms, "metadata interval")?;
        Ok(())
    })
}

/// Replaces the directories the granted SHM files must lie in (the driver's
/// `shm.base_dir`) with the one absolute path `dir`.
#[no_mangle]
pub extern "C" fn tp_config_set_allowed_base_dir(
    config: *mut tp_config,
    dir: *const c_char,
) -> tp_status {
    edit(config, |s| {
        // SAFETY: the ABI contract.
        let dir = absolute(unsafe { utf8(dir, "dir") }?)?;
        s.allowed_base_dirs = vec![dir];
        Ok(())
    })
}

/// Adds one more allowed SHM base directory (absolute).
#[no_mangle]
pub extern "C" fn tp_config_add_allowed_base_dir(
    config: *mut tp_config,
    dir: *const c_char,
) -> tp_status {
    edit(config, |s| {
        // SAFETY: the ABI contract.
        let dir = absolute(unsafe { utf8(dir, "dir") }?)?;
        s.allowed_base_dirs.push(dir);
        Ok(())
    })
}

fn absolute(dir: &str) -> Result<PathBuf, Failure> {
    let path = PathBuf::from(dir);
    if !path.is_absolute() {
        return Err(Failure::invalid(format!(
            "allowed base directory {dir:?} is not an absolute path"
        )));
    }
    Ok(path)
}

/// Sets the client id (producer) or consumer id (consumer); 0 picks a random one, and a
/// new one if the driver reports a collision.
#[no_mangle]
pub extern "C" fn tp_config_set_client_id(config: *mut tp_config, client_id: u32) -> tp_status {
    edit(config, |s| {
        s.client_id = client_id;
        Ok(())
    })
}

/// Bounds the pause between keepalives, in ms. By default the lease the driver grants
/// sets the pace (a third of it, Driver Model §4.4); a bound only makes keepalives more
/// frequent.
#[no_mangle]
pub extern "C" fn tp_config_set_keepalive_interval_ms(
    config: *mut tp_config,
    ms: u64,
) -> tp_status {
    edit(config, |s| {
        s.keepalive_interval = Some(milliseconds(ms, "keepalive interval")?);
        Ok(())
    })
}

/// Sets how long an attach waits for the driver's answer before it is retried (ms).
#[no_mangle]
pub extern "C" fn tp_config_set_attach_timeout_ms(config: *mut tp_config, ms: u64) -> tp_status {
    edit(config, |s| {
        s.attach_timeout = milliseconds(ms, "attach timeout")?;
        Ok(())
    })
}

/// Sets how long `tp_*_create` waits for the media driver (ms; 0 = one attempt).
#[no_mangle]
pub extern "C" fn tp_config_set_connect_timeout_ms(config: *mut tp_config, ms: u64) -> tp_status {
    edit(config, |s| {
        s.streams.connect_timeout = Duration::from_millis(ms);
        Ok(())
    })
}

/// Sets the driver's announce period in ms (`policies.announce_period_ms`; consumers).
#[no_mangle]
pub extern "C" fn tp_config_set_announce_period_ms(config: *mut tp_config, ms: u64) -> tp_status {
    edit(config, |s| {
        s.announce_period = milliseconds(ms, "announce period")?;
        Ok(())
    })
}

/// Sets the publish mode (producers), a `tp_publish_mode` value.
#[no_mangle]
pub extern "C" fn tp_config_set_publish_mode(config: *mut tp_config, mode: i32) -> tp_status {
    edit(config, |s| {
        s.publish_mode = match mode {
            1 => None,
            2 => Some(PublishMode::ExistingOrCreate),
            other => {
                return Err(Failure::invalid(format!(
                    "publish mode {other} is not a tp_publish_mode"
                )))
            }
        };
        Ok(())
    })
}

/// Asks the driver for a descriptor stream of this consumer's own (consumers);
/// `channel` NULL clears the request. The shared stream is kept if the driver declines.
#[no_mangle]
pub extern "C" fn tp_config_set_per_consumer_descriptor(
    config: *mut tp_config,
    channel_uri: *const c_char,
    stream_id: u32,
) -> tp_status {
    edit(config, |s| {
        if channel_uri.is_null() {
            s.per_consumer_descriptor = None;
            return Ok(());
        }
        // SAFETY: the ABI contract.
        let text = channel(unsafe { utf8(channel_uri, "channel") }?, "channel")?;
        if text.len() > MAX_CHANNEL_LEN {
            return Err(Failure::invalid(format!(
                "channel is longer than {MAX_CHANNEL_LEN} bytes"
            )));
        }
        if stream_id == 0 || i32::try_from(stream_id).is_err() {
            return Err(Failure::invalid(format!(
                "stream_id {stream_id} is not in 1..=2147483647"
            )));
        }
        s.per_consumer_descriptor = Some((text, stream_id));
        Ok(())
    })
}

/// Sets how many frames a consumer may fall behind before it skips to the newest
/// (Wire Spec §15.4); 0 never skips.
#[no_mangle]
pub extern "C" fn tp_config_set_max_outstanding_seq_gap(
    config: *mut tp_config,
    frames: u64,
) -> tp_status {
    edit(config, |s| {
        s.max_outstanding_seq_gap = (frames != 0).then_some(frames);
        Ok(())
    })
}

/// Latency mode for consumers (`on` 1) or not (0, the default): while no descriptor is
/// waiting, a consumer watches the next sequence's header slot and fetches the frame into
/// its core's cache once the producer has committed it. Frames are still accepted only
/// against their descriptors.
#[no_mangle]
pub extern "C" fn tp_config_set_watch_next_slot(config: *mut tp_config, on: i32) -> tp_status {
    edit(config, |s| {
        s.watch_next_slot = match on {
            0 => false,
            1 => true,
            other => {
                return Err(Failure::invalid(format!(
                    "watch_next_slot {other} is not 0 or 1"
                )))
            }
        };
        Ok(())
    })
}

/// RATE_LIMITED mode for consumers (Wire Spec §11): at most `max_rate_hz` frames a
/// second, asked of the producer in the hello and enforced locally; skipped frames count
/// in `frames_rate_limited` and poll as TP_POLL_RATE_LIMITED. 0 (the default) is STREAM
/// mode: every frame.
#[no_mangle]
pub extern "C" fn tp_config_set_rate_limit(config: *mut tp_config, max_rate_hz: u32) -> tp_status {
    edit(config, |s| {
        s.mode = match NonZeroU32::new(max_rate_hz) {
            Some(max_rate_hz) => ConsumerMode::RateLimited { max_rate_hz },
            None => ConsumerMode::Stream,
        };
        Ok(())
    })
}

/// Frame progress for consumers (Wire Spec §10.2.2): `on` 1 opts in (the hello says
/// `supports_progress` with these hints, and `tp_consumer_poll_progress` hands out the
/// filled prefix of frames being written), 0 (the default) ignores progress. Each hint
/// 0 leaves the producer's default: `interval_us` between reports, `bytes_delta` bytes
/// and `major_delta_units` rows/columns of advance worth a report.
#[no_mangle]
pub extern "C" fn tp_config_set_progress(
    config: *mut tp_config,
    on: i32,
    interval_us: u32,
    bytes_delta: u32,
    major_delta_units: u32,
) -> tp_status {
    edit(config, |s| {
        let hint = |v: u32| (v != 0).then_some(v);
        s.progress = match on {
            0 => None,
            1 => Some(ProgressHints {
                interval_us: hint(interval_us),
                bytes_delta: hint(bytes_delta),
                major_delta_units: hint(major_delta_units),
            }),
            other => return Err(Failure::invalid(format!("progress {other} is not 0 or 1"))),
        };
        Ok(())
    })
}

/// Copies the settings of `config` (for `tp_producer_create` / `tp_consumer_create`).
pub(crate) fn settings(config: *const tp_config) -> Result<Settings, Failure> {
    let mut copy = None;
    // SAFETY: the ABI contract.
    let status = unsafe {
        handle::with(shell(config), Kind::Config, |s: &mut Settings| {
            copy = Some(s.clone());
            Ok(())
        })
    };
    copy.ok_or_else(|| {
        Failure::new(
            status,
            // SAFETY: `tp_last_error_message` returns a valid C string.
            unsafe { CStr::from_ptr(crate::status::tp_last_error_message()) }
                .to_string_lossy()
                .into_owned(),
        )
    })
}
