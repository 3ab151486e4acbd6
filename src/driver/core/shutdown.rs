//! Driver termination (Driver Model §4.13).

use super::{DriverCore, Output};
use crate::protocol::driver::{ShmDriverShutdownRequest, ShutdownReason};
use std::borrow::Cow;

/// Where the driver is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShutdownState {
    /// Serving requests.
    Running,
    /// An accepted shutdown request: attaches are refused until `deadline_ns`, then the
    /// `ShmDriverShutdown` notice is sent.
    Draining {
        /// When the notice goes out.
        deadline_ns: u64,
        /// Reason the notice will carry.
        reason: ShutdownReason,
        /// Diagnostic the notice will carry.
        message: String,
    },
    /// The notice was queued; the host should flush outputs and exit.
    Terminated,
}

impl ShutdownState {
    /// Whether requests are still served.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::Running)
    }

    /// Whether the host should exit.
    pub fn is_terminated(&self) -> bool {
        matches!(self, Self::Terminated)
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl DriverCore {
    /// Handles `ShmDriverShutdownRequest`. Accepted only when `policies.shutdown_token` is
    /// set and the request's token matches; otherwise ignored and counted. Accepted:
    /// drain, send a final announce of every stream now, and the `ShmDriverShutdown`
    /// notice with the request's reason after `policies.shutdown_timeout_ms`. Returns
    /// whether the request was accepted.
    pub fn on_shutdown_request(&mut self, req: &ShmDriverShutdownRequest<'_>, now_ns: u64) -> bool {
        let accepted = self.shutdown.is_running()
            && self
                .settings
                .shutdown_token
                .as_deref()
                .is_some_and(|token| constant_time_eq(token.as_bytes(), req.token));
        if !accepted {
            self.counters.shutdown_requests_ignored += 1;
            tracing::warn!(
                correlation_id = req.correlation_id,
                "shutdown request ignored"
            );
            return false;
        }
        tracing::info!(correlation_id = req.correlation_id, reason = %req.reason, "shutdown request accepted; draining");
        self.announce_all(now_ns);
        self.shutdown = ShutdownState::Draining {
            deadline_ns: now_ns.saturating_add(self.settings.shutdown_timeout_ns),
            reason: req.reason,
            message: String::from_utf8_lossy(req.error_message).into_owned(),
        };
        true
    }

    /// Stops at once (e.g. on SIGTERM): queues `ShmDriverShutdown` with `reason` now.
    pub fn shutdown_now(&mut self, reason: ShutdownReason, now_ns: u64) {
        if self.shutdown.is_terminated() {
            return;
        }
        self.outputs.push(Output::DriverShutdown {
            timestamp_ns: now_ns,
            reason,
            error_message: Cow::Borrowed(""),
        });
        self.shutdown = ShutdownState::Terminated;
    }

    pub(super) fn progress_shutdown(&mut self, now_ns: u64) -> usize {
        let ShutdownState::Draining {
            deadline_ns,
            reason,
            message,
        } = &self.shutdown
        else {
            return 0;
        };
        if now_ns < *deadline_ns {
            return 0;
        }
        self.outputs.push(Output::DriverShutdown {
            timestamp_ns: now_ns,
            reason: *reason,
            error_message: Cow::Owned(message.clone()),
        });
        tracing::info!(reason = %reason, "driver shutdown notice sent");
        self.shutdown = ShutdownState::Terminated;
        1
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret!"));
        assert!(constant_time_eq(b"", b""));
    }
}
