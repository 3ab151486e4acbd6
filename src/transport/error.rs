//! Typed errors of the transport layer. Every variant owns plain data (no rusteron types), so
//! callers match on them without depending on rusteron, and errors may cross threads.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong in the Aeron transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// A live media driver owns the directory; nothing in it was touched.
    #[error("a media driver is already running in {}", dir.display())]
    DriverAlreadyRunning {
        /// The Aeron directory.
        dir: PathBuf,
    },
    /// No live media driver answered in the directory within the connect timeout.
    #[error(
        "no active media driver in {} after waiting {timeout:?}: is tp-driver (or aeronmd) \
         running with Aeron directory {}? Pass the driver's directory (its driver.aeron_dir; \
         --aeron-dir or AERON_DIR for the examples), start the driver, or use the embedded \
         driver",
        dir.display(),
        dir.display()
    )]
    NoMediaDriver {
        /// The Aeron directory that was probed.
        dir: PathBuf,
        /// How long the client waited (all attempts, when the caller retried).
        timeout: Duration,
    },
    /// A registration (publication, subscription, counter) did not complete in time.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited, e.g. `publication aeron:ipc stream 1001`.
        what: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// An Aeron C call failed; `message` is Aeron's own error text, captured at the call site.
    #[error("aeron {operation} failed (code {code}): {message}")]
    Aeron {
        /// The operation, e.g. `add publication`.
        operation: &'static str,
        /// Aeron's error code.
        code: i32,
        /// Aeron's error message.
        message: String,
    },
    /// The publication was closed (by us, by the driver, or because the client timed out).
    #[error("publication is closed")]
    PublicationClosed,
    /// The stream reached its maximum position; a new publication (session) is needed.
    #[error("publication reached its maximum position")]
    MaxPositionExceeded,
    /// The message is longer than the publication (or the outbound queue) accepts.
    #[error("message of {len} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// Length of the rejected message.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The outbound queue is full; the new message was not queued (queued ones are kept).
    #[error("outbound queue is full ({capacity} messages waiting); message not queued")]
    QueueFull {
        /// Queue capacity in messages.
        capacity: usize,
    },
    /// A caller-supplied value cannot be passed to Aeron (e.g. a channel containing NUL).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The Aeron client is closed (e.g. its driver stopped answering); make a new one.
    #[error("aeron client is closed")]
    ClientClosed,
}

impl TransportError {
    /// An [`TransportError::Aeron`] from a rusteron error, with Aeron's message.
    pub(crate) fn aeron(operation: &'static str, code: i32, message: &str) -> Self {
        Self::Aeron {
            operation,
            code,
            message: message.to_owned(),
        }
    }
}

/// Converts rusteron's two `AeronCError` types (client and media-driver crates each define
/// one) into [`TransportError::Aeron`], reading Aeron's thread-local message immediately.
pub(crate) trait AeronResultExt<T> {
    /// Maps the error, naming the failed `operation`.
    fn or_aeron(self, operation: &'static str) -> Result<T, TransportError>;
}

impl<T> AeronResultExt<T> for Result<T, rusteron_client::AeronCError> {
    fn or_aeron(self, operation: &'static str) -> Result<T, TransportError> {
        self.map_err(|e| TransportError::aeron(operation, e.code, e.get_last_err_message()))
    }
}

#[cfg(feature = "embedded-media-driver")]
impl<T> AeronResultExt<T> for Result<T, rusteron_media_driver::AeronCError> {
    fn or_aeron(self, operation: &'static str) -> Result<T, TransportError> {
        self.map_err(|e| TransportError::aeron(operation, e.code, e.get_last_err_message()))
    }
}

/// A C string for Aeron, or [`TransportError::InvalidArgument`] if `value` holds a NUL byte.
pub(crate) fn c_string(what: &str, value: &[u8]) -> Result<std::ffi::CString, TransportError> {
    std::ffi::CString::new(value)
        .map_err(|_| TransportError::InvalidArgument(format!("{what} contains a NUL byte")))
}
