//! Names for the integers C programs receive in events, so logs read `PRODUCER_REVOKED
//! (DETACHED)` instead of `event 4 (reason 1)`, and the fix for attach refusals that
//! waiting cannot cure (the Rust `tensorpool::client::attach_refusal_fix`).

use crate::consumer::{tp_consumer_event_kind as C, tp_unmap_reason as U};
use crate::producer::tp_producer_event_kind as P;
use std::ffi::{c_char, CStr, CString};
use std::sync::Mutex;
use tensorpool::protocol::driver::ResponseCode;

/// The name of a producer event kind (`"TP_PRODUCER_EVENT_ATTACHED"`), or
/// `"TP_UNKNOWN_EVENT"`. The string is static.
#[no_mangle]
pub extern "C" fn tp_producer_event_name(kind: i32) -> *const c_char {
    let name: &'static CStr = match kind {
        k if k == P::TP_PRODUCER_EVENT_NONE as i32 => c"TP_PRODUCER_EVENT_NONE",
        k if k == P::TP_PRODUCER_EVENT_ATTACHED as i32 => c"TP_PRODUCER_EVENT_ATTACHED",
        k if k == P::TP_PRODUCER_EVENT_REATTACHED as i32 => c"TP_PRODUCER_EVENT_REATTACHED",
        k if k == P::TP_PRODUCER_EVENT_REVOKED as i32 => c"TP_PRODUCER_EVENT_REVOKED",
        k if k == P::TP_PRODUCER_EVENT_LEASE_LOST as i32 => c"TP_PRODUCER_EVENT_LEASE_LOST",
        k if k == P::TP_PRODUCER_EVENT_DRIVER_SHUTDOWN as i32 => {
            c"TP_PRODUCER_EVENT_DRIVER_SHUTDOWN"
        }
        k if k == P::TP_PRODUCER_EVENT_ATTACH_REFUSED as i32 => c"TP_PRODUCER_EVENT_ATTACH_REFUSED",
        k if k == P::TP_PRODUCER_EVENT_MAP_FAILED as i32 => c"TP_PRODUCER_EVENT_MAP_FAILED",
        k if k == P::TP_PRODUCER_EVENT_MEDIA_DRIVER_LOST as i32 => {
            c"TP_PRODUCER_EVENT_MEDIA_DRIVER_LOST"
        }
        _ => c"TP_UNKNOWN_EVENT",
    };
    name.as_ptr()
}

/// The name of a consumer event kind (`"TP_CONSUMER_EVENT_PRODUCER_REVOKED"`), or
/// `"TP_UNKNOWN_EVENT"`. The string is static.
#[no_mangle]
pub extern "C" fn tp_consumer_event_name(kind: i32) -> *const c_char {
    let name: &'static CStr = match kind {
        k if k == C::TP_CONSUMER_EVENT_NONE as i32 => c"TP_CONSUMER_EVENT_NONE",
        k if k == C::TP_CONSUMER_EVENT_ATTACHED as i32 => c"TP_CONSUMER_EVENT_ATTACHED",
        k if k == C::TP_CONSUMER_EVENT_EPOCH_CHANGED as i32 => c"TP_CONSUMER_EVENT_EPOCH_CHANGED",
        k if k == C::TP_CONSUMER_EVENT_REVOKED as i32 => c"TP_CONSUMER_EVENT_REVOKED",
        k if k == C::TP_CONSUMER_EVENT_PRODUCER_REVOKED as i32 => {
            c"TP_CONSUMER_EVENT_PRODUCER_REVOKED"
        }
        k if k == C::TP_CONSUMER_EVENT_DRIVER_SHUTDOWN as i32 => {
            c"TP_CONSUMER_EVENT_DRIVER_SHUTDOWN"
        }
        k if k == C::TP_CONSUMER_EVENT_UNMAPPED as i32 => c"TP_CONSUMER_EVENT_UNMAPPED",
        k if k == C::TP_CONSUMER_EVENT_MEDIA_DRIVER_LOST as i32 => {
            c"TP_CONSUMER_EVENT_MEDIA_DRIVER_LOST"
        }
        k if k == C::TP_CONSUMER_EVENT_ATTACH_REFUSED as i32 => c"TP_CONSUMER_EVENT_ATTACH_REFUSED",
        k if k == C::TP_CONSUMER_EVENT_FALLBACK as i32 => c"TP_CONSUMER_EVENT_FALLBACK",
        k if k == C::TP_CONSUMER_EVENT_SHM_RESUMED as i32 => c"TP_CONSUMER_EVENT_SHM_RESUMED",
        k if k == C::TP_CONSUMER_EVENT_METADATA_CHANGED as i32 => {
            c"TP_CONSUMER_EVENT_METADATA_CHANGED"
        }
        _ => c"TP_UNKNOWN_EVENT",
    };
    name.as_ptr()
}

/// The name of the `reason` of a producer event of `kind`: a lease revoke reason
/// (`"DETACHED"`, `"EXPIRED"`, `"REVOKED"`), a shutdown reason (`"NORMAL"`, `"ADMIN"`,
/// `"ERROR"`) or an attach response code (`"REJECTED"`, ...); `"UNRECOGNIZED"` for a
/// value the kind does not define, and `""` for kinds without a reason. Static.
#[no_mangle]
pub extern "C" fn tp_producer_event_reason_name(kind: i32, reason: i32) -> *const c_char {
    let name = match kind {
        k if k == P::TP_PRODUCER_EVENT_REVOKED as i32 => revoke_reason(reason),
        k if k == P::TP_PRODUCER_EVENT_DRIVER_SHUTDOWN as i32 => shutdown_reason(reason),
        k if k == P::TP_PRODUCER_EVENT_ATTACH_REFUSED as i32 => response_code(reason),
        _ => c"",
    };
    name.as_ptr()
}

/// The name of the `reason` of a consumer event of `kind`: a lease revoke reason
/// (REVOKED, PRODUCER_REVOKED), a shutdown reason (DRIVER_SHUTDOWN), a
/// `tp_unmap_reason` (`"TP_UNMAP_LEASE_REVOKED"`, ...; UNMAPPED) or an attach response
/// code (`"REJECTED"`, ...; ATTACH_REFUSED); `"UNRECOGNIZED"` for a
/// value the kind does not define, and `""` for kinds without a reason. Static.
#[no_mangle]
pub extern "C" fn tp_consumer_event_reason_name(kind: i32, reason: i32) -> *const c_char {
    let name = match kind {
        k if k == C::TP_CONSUMER_EVENT_REVOKED as i32
            || k == C::TP_CONSUMER_EVENT_PRODUCER_REVOKED as i32 =>
        {
            revoke_reason(reason)
        }
        k if k == C::TP_CONSUMER_EVENT_DRIVER_SHUTDOWN as i32 => shutdown_reason(reason),
        k if k == C::TP_CONSUMER_EVENT_UNMAPPED as i32 => unmap_reason(reason),
        k if k == C::TP_CONSUMER_EVENT_ATTACH_REFUSED as i32 => response_code(reason),
        _ => c"",
    };
    name.as_ptr()
}

/// What to change when an attach was refused (`reason` and `message` of
/// TP_PRODUCER_EVENT_ATTACH_REFUSED) for a cause waiting cannot cure: e.g. for
/// `"stream not provisioned"`, add a `[streams.*]` entry or attach with
/// TP_PUBLISH_MODE_EXISTING_OR_CREATE. NULL when a retry may succeed (another producer
/// holds the stream, the driver is shutting down, ...) or `message` is NULL. The string
/// is static.
#[no_mangle]
pub extern "C" fn tp_attach_refusal_fix(code: i32, message: *const c_char) -> *const c_char {
    if message.is_null() {
        return std::ptr::null();
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let message = unsafe { CStr::from_ptr(message) }.to_string_lossy();
    match tensorpool::client::attach_refusal_fix(ResponseCode::from_raw(code), &message) {
        Some(fix) => static_c_str(fix).as_ptr(),
        None => std::ptr::null(),
    }
}

/// `text` as a C string that lives for the whole process: each of the few fix texts is
/// converted once and kept.
fn static_c_str(text: &'static str) -> &'static CStr {
    static KEPT: Mutex<Vec<(&'static str, &'static CStr)>> = Mutex::new(Vec::new());
    let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, c)) = kept.iter().find(|(t, _)| *t == text) {
        return c;
    }
    let c: &'static CStr = Box::leak(
        CString::new(text)
            .unwrap_or_else(|_| c"(fix text contains NUL)".to_owned())
            .into_boxed_c_str(),
    );
    kept.push((text, c));
    c
}

fn revoke_reason(reason: i32) -> &'static CStr {
    match reason {
        1 => c"DETACHED",
        2 => c"EXPIRED",
        3 => c"REVOKED",
        _ => c"UNRECOGNIZED",
    }
}

fn shutdown_reason(reason: i32) -> &'static CStr {
    match reason {
        0 => c"NORMAL",
        1 => c"ADMIN",
        2 => c"ERROR",
        _ => c"UNRECOGNIZED",
    }
}

fn response_code(code: i32) -> &'static CStr {
    match code {
        0 => c"OK",
        1 => c"UNSUPPORTED",
        2 => c"INVALID_PARAMS",
        3 => c"REJECTED",
        4 => c"INTERNAL_ERROR",
        _ => c"UNRECOGNIZED",
    }
}

fn unmap_reason(reason: i32) -> &'static CStr {
    match reason {
        r if r == U::TP_UNMAP_LEASE_REVOKED as i32 => c"TP_UNMAP_LEASE_REVOKED",
        r if r == U::TP_UNMAP_LEASE_LOST as i32 => c"TP_UNMAP_LEASE_LOST",
        r if r == U::TP_UNMAP_DRIVER_SHUTDOWN as i32 => c"TP_UNMAP_DRIVER_SHUTDOWN",
        r if r == U::TP_UNMAP_EPOCH_WAIT_TIMED_OUT as i32 => c"TP_UNMAP_EPOCH_WAIT_TIMED_OUT",
        r if r == U::TP_UNMAP_MAP_FAILED as i32 => c"TP_UNMAP_MAP_FAILED",
        _ => c"UNRECOGNIZED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorpool::protocol::driver::{LeaseRevokeReason, ShutdownReason};

    fn text(ptr: *const c_char) -> String {
        // SAFETY: every name function returns a static NUL-terminated string.
        unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn reason_names_agree_with_the_schema() {
        for raw in 0..=4u8 {
            let revoke = LeaseRevokeReason::from_raw(raw);
            if revoke.is_known() {
                assert_eq!(text(revoke_reason(i32::from(raw)).as_ptr()), revoke.name());
            }
            let shutdown = ShutdownReason::from_raw(raw);
            if shutdown.is_known() {
                assert_eq!(
                    text(shutdown_reason(i32::from(raw)).as_ptr()),
                    shutdown.name()
                );
            }
            let code = ResponseCode::from_raw(i32::from(raw));
            assert!(code.is_known());
            assert_eq!(text(response_code(i32::from(raw)).as_ptr()), code.name());
        }
    }
}
