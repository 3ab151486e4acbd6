//! Per-data-source metadata in the C ABI (Wire Spec §10.3): a producer sets its name,
//! summary and attributes (`tp_producer_set_metadata`), a consumer reads the version in
//! force (`tp_consumer_get_metadata`, `tp_consumer_get_metadata_attribute`) and hears of
//! changes as TP_CONSUMER_EVENT_METADATA_CHANGED. Each frame's version is in
//! `tp_frame_info.meta_version` and its relation to the consumer's metadata in
//! `tp_frame_info.meta_status`. Everything forwards to `tensorpool::client::metadata`.

use crate::config::utf8;
use crate::consumer::{self, tp_consumer};
use crate::producer::{self, tp_producer};
use crate::status::{tp_status, write_out, Failure};
use std::ffi::c_char;
use tensorpool::client::consumer::MetaStatus;
use tensorpool::client::metadata::{Attribute, DataSourceMetadata};

/// One metadata attribute: `key` names it, `format` says how to read `value` (e.g.
/// "text/plain", "application/json"). Key and format are printable ASCII of the given
/// lengths (not NUL-terminated); `value` is any bytes. Bounds: key and format 1..=128
/// bytes, value up to 16 KiB, at most 64 attributes, 64 KiB encoded in all.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tp_attribute {
    /// The key bytes.
    pub key: *const c_char,
    /// Key length in bytes.
    pub key_len: usize,
    /// The format bytes.
    pub format: *const c_char,
    /// Format length in bytes.
    pub format_len: usize,
    /// The value bytes (may be NULL when `value_len` is 0).
    pub value: *const u8,
    /// Value length in bytes.
    pub value_len: usize,
}

impl Default for tp_attribute {
    fn default() -> Self {
        Self {
            key: std::ptr::null(),
            key_len: 0,
            format: std::ptr::null(),
            format_len: 0,
            value: std::ptr::null(),
            value_len: 0,
        }
    }
}

/// The metadata a consumer holds: the version in force (0 and NULL strings when none
/// arrived yet). `name` and `summary` are not NUL-terminated (print with "%.*s"); they
/// and the attributes stay valid until the next `tp_consumer_do_work` or
/// `tp_consumer_close`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tp_metadata_info {
    /// The version in force (0: none).
    pub meta_version: u32,
    /// The producer that announced it.
    pub producer_id: u32,
    /// The epoch it was announced in.
    pub epoch: u64,
    /// When the producer set it (wall clock, ns since the Unix epoch).
    pub timestamp_ns: u64,
    /// The data source's name.
    pub name: *const c_char,
    /// Name length in bytes.
    pub name_len: usize,
    /// The data source's summary.
    pub summary: *const c_char,
    /// Summary length in bytes.
    pub summary_len: usize,
    /// How many attributes `tp_consumer_get_metadata_attribute` can read.
    pub attribute_count: usize,
}

/// How a frame's `meta_version` relates to the consumer's metadata
/// (`tp_frame_info.meta_status`).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_meta_status {
    /// The frame carries no metadata version (0, or the null value 0xFFFFFFFF).
    TP_META_ABSENT = 0,
    /// Taken under the metadata the consumer holds.
    TP_META_CURRENT = 1,
    /// Names a version the consumer has not received yet; delivered all the same.
    TP_META_UNSEEN = 2,
    /// Taken under an older version than the one the consumer holds.
    TP_META_SUPERSEDED = 3,
}

/// The C value of a frame's metadata status.
pub(crate) fn meta_status_of(status: MetaStatus) -> i32 {
    (match status {
        MetaStatus::Absent => tp_meta_status::TP_META_ABSENT,
        MetaStatus::Current => tp_meta_status::TP_META_CURRENT,
        MetaStatus::Unseen => tp_meta_status::TP_META_UNSEEN,
        MetaStatus::Superseded => tp_meta_status::TP_META_SUPERSEDED,
    }) as i32
}

/// Reads `len` bytes at `ptr` (NULL only when `len` is 0).
///
/// # Safety
/// `ptr` is NULL or readable for `len` bytes.
unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], Failure> {
    match (ptr.is_null(), len) {
        (true, 0) => Ok(&[]),
        (true, _) => Err(Failure::null(what)),
        // SAFETY: non-NULL and readable for `len` bytes by the contract.
        (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr, len) }),
    }
}

/// Reads an ASCII text of `len` bytes (validated again by the Rust bounds check).
///
/// # Safety
/// As for [`bytes`].
unsafe fn text(ptr: *const c_char, len: usize, what: &str) -> Result<String, Failure> {
    // SAFETY: the contract of this function.
    let raw = unsafe { bytes(ptr.cast(), len, what) }?;
    String::from_utf8(raw.to_vec()).map_err(|_| Failure::invalid(format!("{what} is not ASCII")))
}

/// Replaces the producer's metadata: `name` and `summary` (NUL-terminated ASCII, NULL
/// for empty) and `count` attributes at `attributes` (keys unique). A change bumps the
/// metadata version, announces it at once and periodically, and every frame committed
/// afterwards carries the new version; metadata equal to the current one changes
/// nothing. `meta_version_out` (may be NULL) receives the version in force. Metadata
/// beyond the bounds (see `tp_attribute`; name 256, summary 1024 bytes) or not printable
/// ASCII answers TP_ERROR_INVALID_ARGUMENT and changes nothing.
#[no_mangle]
pub extern "C" fn tp_producer_set_metadata(
    producer: *mut tp_producer,
    name: *const c_char,
    summary: *const c_char,
    attributes: *const tp_attribute,
    count: usize,
    meta_version_out: *mut u32,
) -> tp_status {
    producer::with(producer, |inner| {
        let optional = |p: *const c_char, what: &str| -> Result<String, Failure> {
            if p.is_null() {
                return Ok(String::new());
            }
            // SAFETY: non-NULL and NUL-terminated by the contract.
            unsafe { utf8(p, what) }.map(str::to_string)
        };
        let mut metadata = DataSourceMetadata {
            name: optional(name, "name")?,
            summary: optional(summary, "summary")?,
            attributes: Vec::new(),
        };
        let entries: &[tp_attribute] = match (attributes.is_null(), count) {
            (_, 0) => &[],
            (true, _) => return Err(Failure::null("attributes")),
            // SAFETY: non-NULL and readable for `count` entries by the contract.
            (false, _) => unsafe { std::slice::from_raw_parts(attributes, count) },
        };
        for entry in entries {
            // SAFETY: each pointer is readable for its length by the contract.
            let attribute = unsafe {
                Attribute {
                    key: text(entry.key, entry.key_len, "attribute key")?,
                    format: text(entry.format, entry.format_len, "attribute format")?,
                    value: bytes(entry.value, entry.value_len, "attribute value")?.to_vec(),
                }
            };
            metadata.attributes.push(attribute);
        }
        let version = inner
            .producer()?
            .set_metadata(metadata)
            .map_err(|e| Failure::invalid(e.to_string()))?;
        if !meta_version_out.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { meta_version_out.write(version) };
        }
        Ok(())
    })
}

/// Stores the metadata version the producer's frames carry now (0: none set).
#[no_mangle]
pub extern "C" fn tp_producer_get_meta_version(
    producer: *mut tp_producer,
    out: *mut u32,
) -> tp_status {
    producer::with(producer, |inner| {
        let version = inner.producer()?.meta_version();
        // SAFETY: checked by write_out; writable by the contract.
        unsafe { write_out(out, "out", version) }
    })
}

/// Stores the consumer's metadata in `*out` (`meta_version` 0 when none arrived yet).
#[no_mangle]
pub extern "C" fn tp_consumer_get_metadata(
    consumer: *mut tp_consumer,
    out: *mut tp_metadata_info,
) -> tp_status {
    consumer::with(consumer, |inner| {
        let info = match inner.consumer().metadata() {
            Some(held) => tp_metadata_info {
                meta_version: held.meta_version,
                producer_id: held.producer_id,
                epoch: held.epoch,
                timestamp_ns: held.timestamp_ns,
                name: held.metadata.name.as_ptr().cast(),
                name_len: held.metadata.name.len(),
                summary: held.metadata.summary.as_ptr().cast(),
                summary_len: held.metadata.summary.len(),
                attribute_count: held.metadata.attributes.len(),
            },
            None => tp_metadata_info {
                meta_version: 0,
                producer_id: 0,
                epoch: 0,
                timestamp_ns: 0,
                name: std::ptr::null(),
                name_len: 0,
                summary: std::ptr::null(),
                summary_len: 0,
                attribute_count: 0,
            },
        };
        // SAFETY: checked by write_out; writable by the contract.
        unsafe { write_out(out, "out", info) }
    })
}

/// Stores attribute `index` (below `tp_metadata_info.attribute_count`) of the consumer's
/// metadata in `*out`; its pointers stay valid until the next `tp_consumer_do_work`. An
/// index out of range answers TP_ERROR_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn tp_consumer_get_metadata_attribute(
    consumer: *mut tp_consumer,
    index: usize,
    out: *mut tp_attribute,
) -> tp_status {
    consumer::with(consumer, |inner| {
        let attribute = inner
            .consumer()
            .metadata()
            .and_then(|held| held.metadata.attributes.get(index))
            .ok_or_else(|| Failure::invalid(format!("no metadata attribute {index}")))?;
        let view = tp_attribute {
            key: attribute.key.as_ptr().cast(),
            key_len: attribute.key.len(),
            format: attribute.format.as_ptr().cast(),
            format_len: attribute.format.len(),
            value: attribute.value.as_ptr(),
            value_len: attribute.value.len(),
        };
        // SAFETY: checked by write_out; writable by the contract.
        unsafe { write_out(out, "out", view) }
    })
}
