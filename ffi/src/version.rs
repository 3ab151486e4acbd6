//! Version query: what a C program checks before relying on the ABI or the wire format.

use crate::status::{guard, tp_status, write_out, Failure};
use std::ffi::c_char;
use tensorpool::protocol::{control, driver};
use tensorpool::shm::layout::LAYOUT_VERSION;

/// Version of this C ABI. It changes only when a function, struct or enum changes in a
/// way that breaks programs built against an older header; compare
/// `tp_version_info.abi_version` with it at start-up. 2: `tp_frame_info`,
/// `tp_consumer_counters` and `tp_producer_counters` grew (trace id, publish time,
/// metadata version and status; FALLBACK, sequence regression, activity, beyond-ndims,
/// metadata, rate-limit and progress counters).
pub const TP_ABI_VERSION: u32 = 2;

/// Versions of the library and of the formats it speaks.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_version_info {
    /// Library major version.
    pub major: u32,
    /// Library minor version.
    pub minor: u32,
    /// Library patch version.
    pub patch: u32,
    /// The ABI version the library implements (see TP_ABI_VERSION).
    pub abi_version: u32,
    /// SHM layout version (superblock `layout_version`).
    pub layout_version: u32,
    /// SBE schema id of the driver control messages (901).
    pub driver_schema_id: u16,
    /// Version of that schema.
    pub driver_schema_version: u16,
    /// SBE schema id of the data-plane messages (900).
    pub control_schema_id: u16,
    /// Version of that schema.
    pub control_schema_version: u16,
}

/// Fills `*out` with the library, ABI, layout and schema versions.
#[no_mangle]
pub extern "C" fn tp_version(out: *mut tp_version_info) -> tp_status {
    guard(|| {
        let number = |text: &str| text.parse().unwrap_or(0);
        let info = tp_version_info {
            major: number(env!("CARGO_PKG_VERSION_MAJOR")),
            minor: number(env!("CARGO_PKG_VERSION_MINOR")),
            patch: number(env!("CARGO_PKG_VERSION_PATCH")),
            abi_version: TP_ABI_VERSION,
            layout_version: LAYOUT_VERSION,
            driver_schema_id: driver::SCHEMA_ID,
            driver_schema_version: driver::SCHEMA_VERSION,
            control_schema_id: control::SCHEMA_ID,
            control_schema_version: control::SCHEMA_VERSION,
        };
        // SAFETY: `out` is NULL or writable (the ABI contract).
        unsafe { write_out(out, "out", info) }
    })
}

/// The library version as static text, e.g. `"0.1.0"`.
#[no_mangle]
pub extern "C" fn tp_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of frame timestamps and lease deadlines.
#[no_mangle]
pub extern "C" fn tp_monotonic_now_ns() -> u64 {
    tensorpool::client::producer::monotonic_now_ns()
}

/// Sends the library's log lines (attach outcomes, lease ends, epoch changes, refused
/// mappings) to stderr, filtered by `filter` in `RUST_LOG` syntax (e.g. `"info"` or
/// `"tensorpool=debug"`); NULL reads `RUST_LOG`, and "warn" when that is unset. Without
/// this call the library logs nothing. At most once per process: a second call answers
/// TP_ERROR_WRONG_STATE.
#[no_mangle]
pub extern "C" fn tp_log_init(filter: *const c_char) -> tp_status {
    guard(|| {
        let filter = if filter.is_null() {
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
        } else {
            // SAFETY: non-NULL and NUL-terminated by the contract.
            let text = unsafe { crate::config::utf8(filter, "filter") }?;
            tracing_subscriber::EnvFilter::try_new(text)
                .map_err(|e| Failure::invalid(format!("log filter {text:?}: {e}")))?
        };
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init()
            .map_err(|e| {
                Failure::new(
                    tp_status::TP_ERROR_WRONG_STATE,
                    format!("logging is already set up: {e}"),
                )
            })
    })
}
