//! Fail-closed validation of `ShmAttachResponse(OK)` (Driver Model §4.2, §4.4a, §4.7a).
//!
//! An OK response becomes a [`LeaseGrant`] only if every required field is non-null,
//! every URI is present and valid, `headerSlotBytes` is 256, at least one payload pool is
//! listed and every pool's `poolNslots` equals `headerNslots`. Anything else is a
//! [`ProtocolError`]: the client drops the attach, maps nothing, and reattaches.

use crate::protocol::codec::DecodeError;
use crate::protocol::driver::{ShmAttachResponseDecoder, SCHEMA_VERSION};
use crate::shm::layout::{is_valid_stride, HEADER_SLOT_BYTES};
use crate::shm::uri::{RegionUri, UriError};

/// One payload pool of a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolGrant {
    /// Pool id.
    pub pool_id: u16,
    /// Slot count (equal to the header ring's).
    pub nslots: u32,
    /// Slot stride in bytes.
    pub stride_bytes: u32,
    /// Where the pool lives.
    pub uri: RegionUri,
}

/// A validated lease: everything needed to map the stream's current epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseGrant {
    /// Lease id to keep alive and detach.
    pub lease_id: u64,
    /// Stream id in use (may differ from the requested one for dynamic streams).
    pub stream_id: u32,
    /// Epoch of the files.
    pub epoch: u64,
    /// SHM layout version.
    pub layout_version: u32,
    /// Header ring slot count (a power of two).
    pub header_nslots: u32,
    /// Header ring location.
    pub header_uri: RegionUri,
    /// Payload pools.
    pub pools: Vec<PoolGrant>,
    /// Hard deadline for the first keepalive (driver's monotonic clock), if given.
    pub lease_expiry_ns: Option<u64>,
    /// Node id granted for the lease, if requested.
    pub node_id: Option<u32>,
}

/// Why an attach response (or a notice) was refused; each cause has its own counter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A field required on OK is null.
    #[error("required field {0} is null in an OK attach response")]
    NullField(&'static str),
    /// A required URI is empty or blank.
    #[error("{0} is empty in an OK attach response")]
    EmptyUri(&'static str),
    /// A URI does not satisfy the Wire Spec rules.
    #[error("invalid region URI: {0}")]
    InvalidUri(#[from] UriError),
    /// `headerSlotBytes` is not 256.
    #[error("headerSlotBytes is {0}, not 256")]
    HeaderSlotBytes(u16),
    /// The payload pool group is empty.
    #[error("OK attach response lists no payload pools")]
    NoPayloadPools,
    /// A pool's slot count differs from the header ring's.
    #[error("pool {pool_id} has {pool_nslots} slots, header ring has {header_nslots}")]
    PoolNslotsMismatch {
        /// Pool id.
        pool_id: u16,
        /// Its slot count.
        pool_nslots: u32,
        /// The ring's slot count.
        header_nslots: u32,
    },
    /// Header slot count is not a power of two, or a stride is not a power-of-two
    /// multiple of 64.
    #[error("invalid geometry: {0}")]
    Geometry(&'static str),
    /// An enum value this client does not know.
    #[error("unknown {0} value")]
    UnknownEnum(&'static str),
    /// The driver speaks a newer schema version than this client.
    #[error("schema version {0} is newer than supported")]
    NewerSchemaVersion(u16),
    /// The bytes do not decode.
    #[error("malformed message: {0}")]
    Malformed(DecodeError),
}

impl ProtocolError {
    /// Stable index of the cause, for per-cause counters.
    pub fn kind_index(&self) -> usize {
        match self {
            Self::NullField(_) => 0,
            Self::EmptyUri(_) => 1,
            Self::InvalidUri(_) => 2,
            Self::HeaderSlotBytes(_) => 3,
            Self::NoPayloadPools => 4,
            Self::PoolNslotsMismatch { .. } => 5,
            Self::Geometry(_) => 6,
            Self::UnknownEnum(_) => 7,
            Self::NewerSchemaVersion(_) => 8,
            Self::Malformed(_) => 9,
        }
    }

    /// Number of causes.
    pub const KINDS: usize = 10;
}

fn required<T>(value: Option<T>, field: &'static str) -> Result<T, ProtocolError> {
    value.ok_or(ProtocolError::NullField(field))
}

fn uri(bytes: &[u8], field: &'static str) -> Result<RegionUri, ProtocolError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ProtocolError::EmptyUri(field))?;
    if text.trim().is_empty() {
        return Err(ProtocolError::EmptyUri(field));
    }
    Ok(RegionUri::parse(text)?)
}

/// Validates an OK response into a grant (the caller checked `code == OK`).
pub fn validate_grant(r: &ShmAttachResponseDecoder<'_>) -> Result<LeaseGrant, ProtocolError> {
    if r.acting_version() > SCHEMA_VERSION {
        return Err(ProtocolError::NewerSchemaVersion(r.acting_version()));
    }
    let header_slot_bytes = required(r.header_slot_bytes(), "headerSlotBytes")?;
    let grant_header_nslots = required(r.header_nslots(), "headerNslots")?;
    let mut grant = LeaseGrant {
        lease_id: required(r.lease_id(), "leaseId")?,
        stream_id: required(r.stream_id(), "streamId")?,
        epoch: required(r.epoch(), "epoch")?,
        layout_version: required(r.layout_version(), "layoutVersion")?,
        header_nslots: grant_header_nslots,
        header_uri: uri(r.header_region_uri(), "headerRegionUri")?,
        pools: Vec::with_capacity(r.payload_pools().len()),
        lease_expiry_ns: r.lease_expiry_timestamp_ns(),
        node_id: r.node_id(),
    };
    if header_slot_bytes as usize != HEADER_SLOT_BYTES {
        return Err(ProtocolError::HeaderSlotBytes(header_slot_bytes));
    }
    if !grant.header_nslots.is_power_of_two() {
        return Err(ProtocolError::Geometry(
            "headerNslots is not a power of two",
        ));
    }
    for pool in r.payload_pools() {
        if pool.pool_nslots() != grant.header_nslots {
            return Err(ProtocolError::PoolNslotsMismatch {
                pool_id: pool.pool_id(),
                pool_nslots: pool.pool_nslots(),
                header_nslots: grant.header_nslots,
            });
        }
        if !is_valid_stride(pool.stride_bytes()) {
            return Err(ProtocolError::Geometry(
                "strideBytes is not a power-of-two multiple of 64",
            ));
        }
        grant.pools.push(PoolGrant {
            pool_id: pool.pool_id(),
            nslots: pool.pool_nslots(),
            stride_bytes: pool.stride_bytes(),
            uri: uri(pool.region_uri(), "payloadPools.regionUri")?,
        });
    }
    if grant.pools.is_empty() {
        return Err(ProtocolError::NoPayloadPools);
    }
    // Smallest stride first: the producer's pool choice walks this order.
    grant.pools.sort_by_key(|p| p.stride_bytes);
    Ok(grant)
}
