//! The error model of the C ABI: one status enum every call returns, and a thread-local
//! message naming the cause of the last failure on the calling thread.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::{c_char, CString};

/// The result of every `tp_*` call that can fail: `TP_OK` (0) or a negative error.
/// After an error, `tp_last_error_message()` names the cause. Functions return it as an
/// `int32_t`, so values added in later versions never make a return value undefined.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tp_status {
    /// Success.
    TP_OK = 0,
    /// A required pointer argument is NULL.
    TP_ERROR_NULL_POINTER = -1,
    /// An argument is out of range or malformed (the message names it).
    TP_ERROR_INVALID_ARGUMENT = -2,
    /// The handle is not a handle of the expected kind (e.g. a consumer passed where a
    /// producer is expected).
    TP_ERROR_INVALID_HANDLE = -3,
    /// The handle was closed.
    TP_ERROR_CLOSED_HANDLE = -4,
    /// The handle was created on another thread; one thread drives a handle.
    TP_ERROR_WRONG_THREAD = -5,
    /// The call is not allowed now: commit or abort without a claim, a second claim,
    /// another producer call while a claim is open, or a call on a handle from inside
    /// its own frame callback.
    TP_ERROR_WRONG_STATE = -6,
    /// The producer holds no lease (not attached yet, or the lease ended); keep calling
    /// `tp_producer_do_work`, it reattaches.
    TP_ERROR_NOT_ATTACHED = -7,
    /// The payload is larger than every pool of the stream; no sequence was used.
    TP_ERROR_FRAME_TOO_LARGE = -8,
    /// The tensor description breaks a Wire Spec §8.2 rule or does not fit the payload.
    TP_ERROR_INVALID_TENSOR = -9,
    /// The media driver could not be reached, or setting up the Aeron streams failed.
    TP_ERROR_CONNECT = -10,
    /// Aeron reported an error during a duty cycle (the handle stays usable).
    TP_ERROR_AERON = -11,
    /// A frame view was used after the poll that delivered it returned.
    TP_ERROR_VIEW_EXPIRED = -12,
    /// A bug inside the library was caught at the boundary; the handle is unusable
    /// from now on (close it).
    TP_ERROR_INTERNAL = -13,
}

/// A failed call: its status and what to tell the caller.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: tp_status,
    pub(crate) message: Cow<'static, str>,
}

impl Failure {
    /// A failure with a fixed message (no allocation).
    pub(crate) const fn fixed(status: tp_status, message: &'static str) -> Self {
        Self {
            status,
            message: Cow::Borrowed(message),
        }
    }

    /// A failure with a formatted message.
    pub(crate) fn new(status: tp_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Cow::Owned(message.into()),
        }
    }

    /// An invalid argument, named.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(tp_status::TP_ERROR_INVALID_ARGUMENT, message)
    }

    /// A NULL pointer where `what` was required.
    pub(crate) fn null(what: &str) -> Self {
        Self::new(tp_status::TP_ERROR_NULL_POINTER, format!("{what} is NULL"))
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `failure` as the calling thread's last error and returns its status.
pub(crate) fn fail(failure: Failure) -> tp_status {
    // A message with an interior NUL is cut there: C reads up to the first NUL anyway.
    let bytes: Vec<u8> = failure
        .message
        .as_bytes()
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .collect();
    let text = CString::new(bytes).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
    failure.status
}

/// The status of `result`, recording the failure if there is one.
pub(crate) fn status_of(result: Result<(), Failure>) -> tp_status {
    match result {
        Ok(()) => tp_status::TP_OK,
        Err(failure) => fail(failure),
    }
}

/// Runs `body`, turning a panic into `TP_ERROR_INTERNAL`: nothing unwinds into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> tp_status {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => status_of(result),
        Err(payload) => fail(Failure::new(
            tp_status::TP_ERROR_INTERNAL,
            format!("internal error: {}", panic_text(payload.as_ref())),
        )),
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

/// Stores `value` through `out`, or fails naming `what` if `out` is NULL.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, what: &str, value: T) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: non-NULL, and the caller promises it is valid for writes.
    unsafe { out.write(value) };
    Ok(())
}

/// The message of the last failed `tp_*` call on this thread ("" if none failed yet).
/// The text stays valid until the next failing call on this thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn tp_last_error_message() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The name of a status code (`"TP_ERROR_NOT_ATTACHED"`), or `"TP_UNKNOWN_STATUS"`.
/// The string is static.
#[no_mangle]
pub extern "C" fn tp_status_name(status: i32) -> *const c_char {
    let name: &'static [u8] = match status {
        0 => b"TP_OK\0",
        -1 => b"TP_ERROR_NULL_POINTER\0",
        -2 => b"TP_ERROR_INVALID_ARGUMENT\0",
        -3 => b"TP_ERROR_INVALID_HANDLE\0",
        -4 => b"TP_ERROR_CLOSED_HANDLE\0",
        -5 => b"TP_ERROR_WRONG_THREAD\0",
        -6 => b"TP_ERROR_WRONG_STATE\0",
        -7 => b"TP_ERROR_NOT_ATTACHED\0",
        -8 => b"TP_ERROR_FRAME_TOO_LARGE\0",
        -9 => b"TP_ERROR_INVALID_TENSOR\0",
        -10 => b"TP_ERROR_CONNECT\0",
        -11 => b"TP_ERROR_AERON\0",
        -12 => b"TP_ERROR_VIEW_EXPIRED\0",
        -13 => b"TP_ERROR_INTERNAL\0",
        _ => b"TP_UNKNOWN_STATUS\0",
    };
    name.as_ptr().cast()
}
