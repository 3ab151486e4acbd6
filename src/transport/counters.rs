//! Application counters in the media driver's counters file (the CnC file), where operators
//! read them with Aeron's own tools (`AeronStat`) or through [`read_counters`]. Each counter
//! has a type id, an optional binary key and a label, e.g. `tp-driver: attaches ok`.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;

use rusteron_client::{AeronAsyncAddCounter, AeronCnc, AeronCounter, AeronCountersReader};

use super::client::AeronClient;
use super::error::{c_string, AeronResultExt, TransportError};

/// A counter this process owns and updates; the driver frees it when it drops.
pub struct Counter {
    inner: AeronCounter,
    id: i32,
    registration_id: i64,
}

impl Counter {
    /// Allocates a counter with `type_id` and `label` (no key), pumping `client` until the
    /// driver has allocated it.
    pub fn new(client: &AeronClient, type_id: i32, label: &str) -> Result<Self, TransportError> {
        Self::with_key(client, type_id, &[], label)
    }

    /// Allocates a counter with a binary `key` (at most 112 bytes, Aeron's limit).
    pub fn with_key(
        client: &AeronClient,
        type_id: i32,
        key: &[u8],
        label: &str,
    ) -> Result<Self, TransportError> {
        let mut pending = Self::start_add(client, type_id, key, label)?;
        client.pump_until(|| format!("counter {label:?}"), || pending.poll())
    }

    /// Starts allocating a counter without waiting; poll the result from the duty cycle.
    pub fn start_add(
        client: &AeronClient,
        type_id: i32,
        key: &[u8],
        label: &str,
    ) -> Result<PendingCounter, TransportError> {
        if key.len() > AeronCountersReader::MAX_KEY_LENGTH {
            return Err(TransportError::InvalidArgument(format!(
                "counter key of {} bytes exceeds {}",
                key.len(),
                AeronCountersReader::MAX_KEY_LENGTH
            )));
        }
        let inner = client
            .aeron()
            .async_add_counter(type_id, key, label)
            .or_aeron("add counter")?;
        Ok(PendingCounter { inner })
    }

    /// Sets the value (visible to readers in other processes at once).
    pub fn set(&self, value: u64) {
        self.inner
            .addr_atomic()
            .store(value as i64, Ordering::Release);
    }

    /// Adds one; returns the new value.
    pub fn increment(&self) -> u64 {
        self.add(1)
    }

    /// Adds `delta`; returns the new value.
    pub fn add(&self, delta: u64) -> u64 {
        let previous = self
            .inner
            .addr_atomic()
            .fetch_add(delta as i64, Ordering::AcqRel);
        (previous as u64).wrapping_add(delta)
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.inner.addr_atomic().load(Ordering::Acquire) as u64
    }

    /// The counter's id (its slot in the counters file).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The registration id the driver gave it.
    pub fn registration_id(&self) -> i64 {
        self.registration_id
    }
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counter")
            .field("id", &self.id)
            .field("value", &self.get())
            .finish()
    }
}

/// A counter being allocated by the driver; dropping it cancels the allocation.
pub struct PendingCounter {
    inner: AeronAsyncAddCounter,
}

impl PendingCounter {
    /// The counter once allocated (yielded once), `None` while still pending. Pump the
    /// client between polls.
    pub fn poll(&mut self) -> Result<Option<Counter>, TransportError> {
        let Some(inner) = self.inner.poll().or_aeron("add counter")? else {
            return Ok(None);
        };
        let constants = inner.get_constants().or_aeron("read counter constants")?;
        Ok(Some(Counter {
            id: constants.counter_id(),
            registration_id: constants.registration_id(),
            inner,
        }))
    }
}

/// One allocated counter as read from a counters file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Counter id.
    pub id: i32,
    /// Type id it was allocated with.
    pub type_id: i32,
    /// Its label.
    pub label: String,
    /// Its key area as the counters file holds it (Aeron's 112 bytes; what lies past the
    /// key its owner wrote is zero).
    pub key: Vec<u8>,
    /// Its value when read.
    pub value: i64,
}

impl AeronClient {
    /// Every allocated counter in the driver's counters file (Aeron's and applications').
    pub fn counters(&self) -> Vec<CounterSnapshot> {
        snapshot(&self.aeron().counters_reader())
    }

    /// The first allocated counter whose label is exactly `label`.
    pub fn find_counter(&self, label: &str) -> Option<CounterSnapshot> {
        self.counters().into_iter().find(|c| c.label == label)
    }
}

/// Reads every allocated counter straight from the CnC file in `dir`, without a client
/// (as Aeron's `AeronStat` does); fails if no driver has created the file.
pub fn read_counters(dir: &Path) -> Result<Vec<CounterSnapshot>, TransportError> {
    let c_dir = c_string("aeron directory", dir.as_os_str().as_bytes())?;
    let mut counters = Vec::new();
    AeronCnc::read(&c_dir, |cnc| counters = snapshot(&cnc.counters_reader()))
        .or_aeron("open CnC file")?;
    Ok(counters)
}

fn snapshot(reader: &AeronCountersReader) -> Vec<CounterSnapshot> {
    let mut counters = Vec::new();
    reader.foreach_counter_fn(|value, id, type_id, key, label| {
        counters.push(CounterSnapshot {
            id,
            type_id,
            label: label.to_owned(),
            key: key.to_vec(),
            value,
        })
    });
    counters
}
