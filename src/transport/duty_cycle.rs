//! A duty-cycle loop that pumps a client (and the embedded driver it owns) together with the
//! caller's agents on the current thread, idling with a backoff when nothing happened.

use std::time::{Duration, Instant};

use super::client::AeronClient;
use super::error::TransportError;
use super::idle::BackoffIdle;

/// Runs `client.do_work()` plus caller agents, then idles by the total work count.
#[derive(Debug)]
pub struct DutyCycle<'a> {
    client: &'a AeronClient,
    idle: BackoffIdle,
}

impl<'a> DutyCycle<'a> {
    /// A duty cycle over `client` with the default backoff.
    pub fn new(client: &'a AeronClient) -> Self {
        Self::with_idle(client, BackoffIdle::default())
    }

    /// A duty cycle over `client` with the given backoff.
    pub fn with_idle(client: &'a AeronClient, idle: BackoffIdle) -> Self {
        Self { client, idle }
    }

    /// One cycle: the client (and its driver), then `agents`; returns the work done.
    /// Does not idle.
    pub fn do_work(&mut self, mut agents: impl FnMut() -> usize) -> Result<usize, TransportError> {
        let work = self.client.do_work()?;
        Ok(work + agents())
    }

    /// One cycle, then idles according to its work count; returns the work done.
    pub fn run_once(&mut self, agents: impl FnMut() -> usize) -> Result<usize, TransportError> {
        let work = self.do_work(agents)?;
        self.idle.idle(work);
        Ok(work)
    }

    /// Runs cycles until `done()` holds (checked after each cycle), failing with
    /// [`TransportError::Timeout`] after `timeout`.
    pub fn run_until(
        &mut self,
        mut agents: impl FnMut() -> usize,
        mut done: impl FnMut() -> bool,
        timeout: Duration,
    ) -> Result<(), TransportError> {
        let deadline = Instant::now() + timeout;
        loop {
            let work = self.do_work(&mut agents)?;
            if done() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(TransportError::Timeout {
                    what: "duty cycle condition".into(),
                    timeout,
                });
            }
            self.idle.idle(work);
        }
    }
}
