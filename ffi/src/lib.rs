//! The C ABI of tensorpool: `libtensorpool.so` / `libtensorpool.a` and
//! `include/tensorpool.h` (generated from this crate by cbindgen, checked in; the test
//! `header_is_current` fails when it is stale).
//!
//! A thin skin over the Rust clients (`tensorpool::client::producer::Producer` and
//! `tensorpool::client::consumer::Consumer`): every function checks its arguments and
//! its handle, forwards to the Rust API, and turns the outcome into a `tp_status`. The
//! rules it keeps (docs/DESIGN.md, "C ABI"):
//!
//! - Every function returns a `tp_status` (0 ok, negative error) and records a message
//!   for `tp_last_error_message()` on failure; nothing unwinds across the boundary (each
//!   entry point catches panics, see [`status::guard`]).
//! - Handles are opaque pointers whose memory is never reused (see [`handle`]): a NULL,
//!   closed or wrong-kind handle is an error code.
//! - One thread drives a producer or consumer: the thread that created it.
//! - Enumerations come in as integers and are checked; structs are `#[repr(C)]` and
//!   change only with `TP_ABI_VERSION`.

// Entry points are called from C, where `unsafe fn` means nothing: their pointer contract
// is stated in the header (valid or NULL, NULL checked), as for any C library.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod config;
mod consumer;
mod handle;
mod metadata;
mod names;
mod producer;
mod qos;
mod status;
mod tensor;
mod version;

pub use config::{tp_config, tp_publish_mode};
pub use consumer::{
    tp_consumer, tp_consumer_counters, tp_consumer_event, tp_consumer_event_kind, tp_consumer_info,
    tp_consumer_state, tp_drop_reason, tp_frame, tp_frame_handler, tp_frame_info,
    tp_outcome_handler, tp_poll_outcome, tp_poll_result, tp_unmap_reason,
};
pub use metadata::{tp_attribute, tp_meta_status, tp_metadata_info};
pub use producer::{
    tp_claim, tp_producer, tp_producer_counters, tp_producer_event, tp_producer_event_kind,
    tp_producer_info, TP_EVENT_MESSAGE_LEN,
};
pub use qos::{
    tp_consumer_qos, tp_qos_handler, tp_qos_kind, tp_qos_monitor, tp_qos_report, TP_QOS_LAG_UNKNOWN,
};
pub use status::tp_status;
pub use tensor::{tp_dtype, tp_major_order, tp_progress_unit, tp_tensor, TP_MAX_DIMS};
pub use version::{tp_version_info, TP_ABI_VERSION};
