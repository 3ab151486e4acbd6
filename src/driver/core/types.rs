//! Values the driver core hands to its host: epoch layouts, leases, outputs.

use crate::protocol::driver::{LeaseRevokeReason, ResponseCode, Role, ShutdownReason};
use std::borrow::Cow;
use std::sync::Arc;

/// One payload pool of an epoch, as announced (Wire Spec §10.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolLayout {
    /// Pool id (unique within the stream's profile).
    pub pool_id: u16,
    /// Slot count (v1.2: equal to the header ring's).
    pub nslots: u32,
    /// Slot stride in bytes.
    pub stride_bytes: u32,
    /// Region URI of the pool file.
    pub region_uri: String,
}

/// Everything a client needs to map one epoch of a stream; immutable once provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochLayout {
    /// Stream id.
    pub stream_id: u32,
    /// Epoch these files belong to.
    pub epoch: u64,
    /// SHM layout version.
    pub layout_version: u32,
    /// Header ring slot count.
    pub header_nslots: u32,
    /// Region URI of the header ring.
    pub header_region_uri: String,
    /// Payload pools, in profile order.
    pub pools: Vec<PoolLayout>,
}

/// A live lease (Driver Model §4.1, §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Lease id, never reused within the process.
    pub lease_id: u64,
    /// Stream the lease is for.
    pub stream_id: u32,
    /// Client that holds it.
    pub client_id: u32,
    /// Producer or consumer.
    pub role: Role,
    /// Monotonic deadline for the next keepalive.
    pub expiry_ns: u64,
    /// Node id granted for the lease's lifetime, if one was requested.
    pub node_id: Option<u32>,
    /// Per-consumer descriptor stream assigned through `ConsumerHello`.
    pub descriptor_stream: Option<(u32, String)>,
    /// Per-consumer control stream assigned through `ConsumerHello`.
    pub control_stream: Option<(u32, String)>,
}

/// The successful part of an attach response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachGrant {
    /// New lease id.
    pub lease_id: u64,
    /// Monotonic deadline for the first keepalive.
    pub lease_expiry_ns: u64,
    /// Node id granted, if requested.
    pub node_id: Option<u32>,
    /// The stream's current epoch files.
    pub layout: Arc<EpochLayout>,
}

/// `ShmAttachResponse` content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachResponse {
    /// Echo of the request's correlation id.
    pub correlation_id: i64,
    /// Outcome.
    pub code: ResponseCode,
    /// Diagnostic for non-OK codes (empty on OK).
    pub error_message: Cow<'static, str>,
    /// Present exactly when `code` is OK.
    pub grant: Option<AttachGrant>,
}

/// `ConsumerConfig` content: per-consumer stream assignment or decline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerAssignment {
    /// Stream the consumer reads.
    pub stream_id: u32,
    /// Consumer (client) id.
    pub consumer_id: u32,
    /// Echo of the consumer's mode.
    pub mode: crate::protocol::control::Mode,
    /// Assigned descriptor stream; `(0, "")` when declined or not requested.
    pub descriptor: (u32, String),
    /// Assigned control stream; `(0, "")` when declined or not requested.
    pub control: (u32, String),
}

/// Something the host must publish, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `ShmAttachResponse` on the control stream.
    AttachResponse(AttachResponse),
    /// `ShmDetachResponse` on the control stream.
    DetachResponse {
        /// Echo of the request's correlation id.
        correlation_id: i64,
        /// Outcome.
        code: ResponseCode,
        /// Diagnostic for non-OK codes.
        error_message: &'static str,
    },
    /// `ShmLeaseRevoked` on the control stream.
    LeaseRevoked {
        /// Monotonic time of the invalidation.
        timestamp_ns: u64,
        /// The lease that ended.
        lease_id: u64,
        /// Its stream.
        stream_id: u32,
        /// Its client.
        client_id: u32,
        /// Its role.
        role: Role,
        /// Why it ended.
        reason: LeaseRevokeReason,
    },
    /// `ShmPoolAnnounce` on the announce stream.
    Announce {
        /// Monotonic timestamp (clock domain MONOTONIC).
        timestamp_ns: u64,
        /// The attached producer's client id, 0 when none (Driver Model §8).
        producer_id: u32,
        /// The announced epoch.
        layout: Arc<EpochLayout>,
    },
    /// `ConsumerConfig` on the control stream.
    ConsumerConfig(ConsumerAssignment),
    /// `ShmDriverShutdown` on the control stream.
    DriverShutdown {
        /// Monotonic time of the notice.
        timestamp_ns: u64,
        /// Why the driver stops.
        reason: ShutdownReason,
        /// Optional diagnostic.
        error_message: Cow<'static, str>,
    },
}
