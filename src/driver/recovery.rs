//! Rebuilding the driver's Aeron side after its Aeron client closed (lapped by the
//! to-clients broadcast, or timed out by the media driver after the process stalled).
//!
//! The SHM side stays as it is: the core keeps its lease table, so a client whose
//! keepalive reaches the new control subscription before its lease expires keeps its
//! lease, and a lease whose keepalives were missed meanwhile expires by the usual rules
//! (Driver Model §4.4, §4.7), revoke notice and epoch bump included. What is rebuilt is
//! what lived in the closed client: the control plane's publications and subscription,
//! the driver's counters and the lease counters. Outputs still queued in the old control
//! plane are lost with it, as anything in flight on a closed client is. Only a media
//! driver that is gone ends the driver (§10): no external media driver to connect to
//! within [`RECOVERY_DEADLINE`], or an embedded media driver that fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::aeron_plane::AeronControlPlane;
use super::agent::DriverAgent;
use super::counters::DriverCounters;
use super::lease_counters::LeaseCounters;
use super::provision::ShmProvisioner;
use crate::clock::monotonic_now_ns;
use crate::config::DriverConfig;
use crate::transport::{AeronClient, TransportError};

/// How long the driver keeps trying to reach an external media driver before it gives up
/// (an embedded one is retried as long as it runs).
pub const RECOVERY_DEADLINE: Duration = Duration::from_secs(10);
/// The first pause between attempts; it doubles per failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Why the driver could not recover its Aeron client.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// No client of the external media driver could be built within
    /// [`RECOVERY_DEADLINE`].
    #[error(
        "the aeron client closed ({reason}) and no new one could be built within \
         {deadline:?}: {last}"
    )]
    MediaDriverGone {
        /// Why the old client closed.
        reason: String,
        /// How long the driver tried.
        deadline: Duration,
        /// The last attempt's error.
        last: TransportError,
    },
    /// The embedded media driver failed, or was lost with a failed client build.
    #[error(
        "the aeron client closed ({reason}) and no new client could be built on the \
         embedded media driver: {last}"
    )]
    EmbeddedDriverLost {
        /// Why the old client closed.
        reason: String,
        /// The error of the build that lost it.
        last: TransportError,
    },
    /// A stop was requested while recovering (the runner then ends normally).
    #[error("stop requested while rebuilding the aeron client")]
    Stopped,
}

/// The Aeron side of a running driver, rebuilt.
pub struct Rebuilt {
    /// The new client.
    pub client: AeronClient,
    /// The driver's counters, allocated through it.
    pub counters: DriverCounters,
}

/// Builds a new client (on the embedded media driver `old` owned, if any), a new control
/// plane for `agent` and new counters, retrying with a bounded backoff; queues every live
/// lease to be published again in `leases`.
pub fn rebuild(
    config: &DriverConfig,
    old: AeronClient,
    agent: &mut DriverAgent<ShmProvisioner, AeronControlPlane>,
    leases: &mut LeaseCounters,
    stop: &AtomicBool,
) -> Result<Rebuilt, RecoveryError> {
    let reason = old.close_reason();
    tracing::warn!(
        %reason,
        "tp-driver's aeron client closed; building a new one and the control plane again \
         (leases are kept)"
    );
    #[cfg(feature = "embedded-media-driver")]
    let mut media_driver = old.into_media_driver();
    #[cfg(not(feature = "embedded-media-driver"))]
    drop(old);
    let started = Instant::now();
    let deadline = started + RECOVERY_DEADLINE;
    let mut backoff = FIRST_BACKOFF;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(RecoveryError::Stopped);
        }
        #[cfg(feature = "embedded-media-driver")]
        let connected = match media_driver.take() {
            Some(driver) => Ok(
                AeronClient::with_embedded_driver(driver, &Default::default()).map_err(|last| {
                    RecoveryError::EmbeddedDriverLost {
                        reason: reason.clone(),
                        last,
                    }
                })?,
            ),
            None => connect_external(config, deadline),
        };
        #[cfg(not(feature = "embedded-media-driver"))]
        let connected = connect_external(config, deadline);
        let error = match connected.and_then(|client| complete(config, client)) {
            Ok((client, plane, counters)) => {
                *agent.transport_mut() = plane;
                leases.republish_all(agent.core(), monotonic_now_ns());
                tracing::warn!(
                    client_id = client.client_id(),
                    took = ?started.elapsed(),
                    "tp-driver's aeron client rebuilt; serving again"
                );
                return Ok(Rebuilt { client, counters });
            }
            Err(failed) => {
                let (client, error) = *failed;
                #[cfg(feature = "embedded-media-driver")]
                {
                    media_driver = client.and_then(AeronClient::into_media_driver);
                }
                #[cfg(not(feature = "embedded-media-driver"))]
                drop(client);
                error
            }
        };
        tracing::warn!(%error, ?backoff, "rebuilding tp-driver's aeron client failed; retrying");
        #[cfg(feature = "embedded-media-driver")]
        let embedded = media_driver.is_some();
        #[cfg(not(feature = "embedded-media-driver"))]
        let embedded = false;
        // An embedded media driver that still runs is not gone, however long it takes;
        // an external one that does not answer for the whole deadline is.
        if !embedded && Instant::now() + backoff >= deadline {
            return Err(RecoveryError::MediaDriverGone {
                reason,
                deadline: RECOVERY_DEADLINE,
                last: error,
            });
        }
        #[cfg(feature = "embedded-media-driver")]
        if let Err(last) = pause(backoff, media_driver.as_ref()) {
            return Err(RecoveryError::EmbeddedDriverLost { reason, last });
        }
        #[cfg(not(feature = "embedded-media-driver"))]
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A failed step, with the client it failed on (to recover an embedded media driver);
/// boxed, as a client owning an embedded media driver is large.
type Failed = Box<(Option<AeronClient>, TransportError)>;

/// A client of the external media driver in `config`, waiting for one until `deadline`.
fn connect_external(config: &DriverConfig, deadline: Instant) -> Result<AeronClient, Failed> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    AeronClient::connect_with(&super::runner::external_client_options(config, remaining))
        .map_err(|error| Box::new((None, error)))
}

/// The control plane and the counters on a new client.
fn complete(
    config: &DriverConfig,
    client: AeronClient,
) -> Result<(AeronClient, AeronControlPlane, DriverCounters), Failed> {
    let plane = match AeronControlPlane::new(&client, config) {
        Ok(plane) => plane,
        Err(error) => return Err(Box::new((Some(client), error))),
    };
    match DriverCounters::new(&client, config) {
        Ok(counters) => Ok((client, plane, counters)),
        Err(error) => {
            drop(plane);
            Err(Box::new((Some(client), error)))
        }
    }
}

/// Waits `period`, pumping the embedded media driver (if any) so its other clients are
/// served meanwhile; fails if its duty cycle fails (the embedded media driver is gone).
#[cfg(feature = "embedded-media-driver")]
fn pause(
    period: Duration,
    media_driver: Option<&crate::transport::EmbeddedMediaDriver>,
) -> Result<(), TransportError> {
    let until = Instant::now() + period;
    while Instant::now() < until {
        if let Some(driver) = media_driver {
            driver.do_work()?;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
