//! `tp shutdown`: sends `ShmDriverShutdownRequest` (Driver Model §4.13) and waits for the
//! driver's `ShmDriverShutdown`.
//!
//! The driver answers a request it accepts only with the notice, after draining for
//! `policies.shutdown_timeout_ms`; a request it ignores (wrong token, or no token
//! configured) gets no answer at all, only its counter `shutdown requests ignored` moves.
//! So the tool watches both: the notice means done, the counter means refused, neither
//! before the deadline means timeout.

use std::time::{Duration, Instant};

use super::{connect, Exit, ToolError};
use crate::config::DriverConfig;
use crate::driver::counters::COUNTER_TYPE_ID;
use crate::protocol::driver::{ShmDriverShutdownDecoder, ShmDriverShutdownRequest, ShutdownReason};
use crate::transport::{AeronClient, OfferOutcome, Publication, Subscription};

/// What the driver said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownNotice {
    /// Reason the notice carries.
    pub reason: ShutdownReason,
    /// Its diagnostic.
    pub message: String,
}

fn ignored_requests(client: &AeronClient) -> i64 {
    client
        .counters()
        .iter()
        .filter(|c| {
            c.type_id == COUNTER_TYPE_ID && c.label.ends_with(": shutdown requests ignored")
        })
        .map(|c| c.value)
        .sum()
}

/// Sends the request and waits up to `timeout` for the outcome.
pub fn shutdown(
    config: &DriverConfig,
    token: &str,
    reason: ShutdownReason,
    message: &str,
    timeout: Duration,
) -> Result<ShutdownNotice, ToolError> {
    let client = connect(config)?;
    let (channel, stream_id) = config.driver.control_endpoint();
    let stream = i32::try_from(stream_id)
        .map_err(|_| ToolError::new(Exit::Usage, format!("stream id {stream_id} exceeds int32")))?;
    let aeron = |e: crate::transport::TransportError| ToolError::new(Exit::NoDriver, e.to_string());
    let mut sub = Subscription::add(&client, channel, stream).map_err(aeron)?;
    let publication = Publication::add(&client, channel, stream).map_err(aeron)?;
    let deadline = Instant::now() + timeout;
    while !publication.is_connected() {
        if Instant::now() >= deadline {
            return Err(ToolError::new(
                Exit::NoDriver,
                format!(
                    "nobody listens on {channel} stream {stream_id}: is the SHM driver running \
                     with this control stream?"
                ),
            ));
        }
        client.do_work().map_err(aeron)?;
        std::thread::sleep(Duration::from_millis(5));
    }
    let ignored_before = ignored_requests(&client);
    let request = ShmDriverShutdownRequest {
        // Unique enough to tell this request's echo apart; the driver does not answer it.
        correlation_id: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as i64),
        reason,
        token: token.as_bytes(),
        error_message: message.as_bytes(),
    };
    let mut buf = vec![0u8; request.encoded_len()];
    request
        .encode(&mut buf)
        .map_err(|e| ToolError::new(Exit::Usage, format!("encoding the request: {e}")))?;
    loop {
        match publication.offer(&buf).map_err(aeron)? {
            OfferOutcome::Published { .. } => break,
            _ if Instant::now() >= deadline => {
                return Err(ToolError::new(
                    Exit::Timeout,
                    "the control stream stayed back-pressured; the request was not sent",
                ))
            }
            _ => {
                client.do_work().map_err(aeron)?;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    let mut notice = None;
    let mut next_counter_check = Instant::now();
    loop {
        client.do_work().map_err(aeron)?;
        sub.poll(
            |bytes| {
                if let Ok(d) = ShmDriverShutdownDecoder::wrap(bytes) {
                    notice = Some(ShutdownNotice {
                        reason: d.reason(),
                        message: String::from_utf8_lossy(d.error_message()).into_owned(),
                    });
                }
            },
            64,
        )
        .map_err(aeron)?;
        if let Some(notice) = notice.take() {
            return Ok(notice);
        }
        if Instant::now() >= next_counter_check {
            next_counter_check = Instant::now() + Duration::from_millis(20);
            if ignored_requests(&client) > ignored_before {
                return Err(ToolError::new(
                    Exit::Refused,
                    "the driver ignored the request: the token does not match \
                     policies.shutdown_token (or the driver has none set, which disables remote shutdown)",
                ));
            }
        }
        if Instant::now() >= deadline {
            return Err(ToolError::new(
                Exit::Timeout,
                format!(
                    "no ShmDriverShutdown within {:.1}s: the driver neither shut down nor counted \
                     the request as ignored (raise --timeout above policies.shutdown_timeout_ms)",
                    timeout.as_secs_f64()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
