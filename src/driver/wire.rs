//! Between bytes on the control stream and the driver core: classifies inbound messages
//! (Driver Model §4.4a, §4.5) and encodes the core's outputs as SBE.

use super::core::{AttachResponse, ConsumerAssignment, EpochLayout, Output};
use crate::protocol::codec::{
    get_i64, DecodeError, EncodeError, MessageHeader, MESSAGE_HEADER_LEN,
};
use crate::protocol::control::{self, ClockDomain, ConsumerHelloDecoder};
use crate::protocol::driver::{
    self, shm_attach_request, ShmAttachRequest, ShmAttachRequestDecoder, ShmDetachRequest,
    ShmDetachRequestDecoder, ShmDriverShutdownRequest, ShmDriverShutdownRequestDecoder,
    ShmLeaseKeepalive, ShmLeaseKeepaliveDecoder,
};
use crate::shm::layout::HEADER_SLOT_BYTES;

/// A message the driver acts on.
#[derive(Debug, Clone, Copy)]
pub enum Inbound<'a> {
    /// `ShmAttachRequest`.
    Attach(ShmAttachRequest),
    /// `ShmAttachRequest` from a newer schema version: answer `UNSUPPORTED`.
    AttachNewerVersion {
        /// Correlation id to echo.
        correlation_id: i64,
        /// Version the client declared.
        version: u16,
    },
    /// `ShmLeaseKeepalive`.
    Keepalive(ShmLeaseKeepalive),
    /// `ShmDetachRequest`.
    Detach(ShmDetachRequest),
    /// `ShmDriverShutdownRequest`.
    ShutdownRequest(ShmDriverShutdownRequest<'a>),
    /// `ConsumerHello` (schema 900).
    ConsumerHello(ConsumerHelloDecoder<'a>),
    /// A well-formed message not addressed to the driver (its own responses and notices,
    /// announces, descriptors, QoS): ignored without counting.
    NotForDriver,
}

/// Why inbound bytes were dropped; each kind is counted and rate-limited in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than an SBE message header.
    #[error("message shorter than an SBE header")]
    TooShort,
    /// Neither schema 901 nor 900.
    #[error("foreign schema id {0}")]
    ForeignSchema(u16),
    /// A template id the schema does not define.
    #[error("unknown template id {template_id} of schema {schema_id}")]
    UnknownTemplate {
        /// Schema id.
        schema_id: u16,
        /// Template id.
        template_id: u16,
    },
    /// A schema version newer than supported (other than an attach request).
    #[error("schema version {0} is newer than supported")]
    NewerVersion(u16),
    /// Lengths or fields that do not decode.
    #[error("undecodable message: {0}")]
    Invalid(DecodeError),
}

impl Malformed {
    /// Stable index of the kind, for per-kind counters and log rate limiting.
    pub fn kind_index(&self) -> usize {
        match self {
            Self::TooShort => 0,
            Self::ForeignSchema(_) => 1,
            Self::UnknownTemplate { .. } => 2,
            Self::NewerVersion(_) => 3,
            Self::Invalid(_) => 4,
        }
    }

    /// Number of kinds.
    pub const KINDS: usize = 5;
}

/// Classifies one message from the control stream.
pub fn classify(bytes: &[u8]) -> Result<Inbound<'_>, Malformed> {
    let header = MessageHeader::read(bytes).map_err(|_| Malformed::TooShort)?;
    match header.schema_id {
        driver::SCHEMA_ID => classify_driver(bytes, header),
        control::SCHEMA_ID => classify_control(bytes, header),
        other => Err(Malformed::ForeignSchema(other)),
    }
}

fn classify_driver(bytes: &[u8], header: MessageHeader) -> Result<Inbound<'_>, Malformed> {
    use crate::protocol::driver::{
        shm_attach_response, shm_detach_request, shm_detach_response, shm_driver_shutdown,
        shm_driver_shutdown_request, shm_lease_keepalive, shm_lease_revoked,
    };
    if header.version > driver::SCHEMA_VERSION {
        if header.template_id == shm_attach_request::TEMPLATE_ID {
            // The correlation id is the first field in every version (§4.4a: answer
            // UNSUPPORTED rather than staying silent).
            let at = MESSAGE_HEADER_LEN + shm_attach_request::CORRELATION_ID_OFFSET;
            if bytes.len() >= at + 8 {
                return Ok(Inbound::AttachNewerVersion {
                    correlation_id: get_i64(bytes, at),
                    version: header.version,
                });
            }
        }
        return Err(Malformed::NewerVersion(header.version));
    }
    let invalid = Malformed::Invalid;
    Ok(match header.template_id {
        shm_attach_request::TEMPLATE_ID => Inbound::Attach(
            ShmAttachRequestDecoder::wrap(bytes)
                .map_err(invalid)?
                .to_value(),
        ),
        shm_lease_keepalive::TEMPLATE_ID => Inbound::Keepalive(
            ShmLeaseKeepaliveDecoder::wrap(bytes)
                .map_err(invalid)?
                .to_value(),
        ),
        shm_detach_request::TEMPLATE_ID => Inbound::Detach(
            ShmDetachRequestDecoder::wrap(bytes)
                .map_err(invalid)?
                .to_value(),
        ),
        shm_driver_shutdown_request::TEMPLATE_ID => Inbound::ShutdownRequest(
            ShmDriverShutdownRequestDecoder::wrap(bytes)
                .map_err(invalid)?
                .to_value(),
        ),
        shm_attach_response::TEMPLATE_ID
        | shm_detach_response::TEMPLATE_ID
        | shm_driver_shutdown::TEMPLATE_ID
        | shm_lease_revoked::TEMPLATE_ID => Inbound::NotForDriver,
        template_id => {
            return Err(Malformed::UnknownTemplate {
                schema_id: header.schema_id,
                template_id,
            })
        }
    })
}

fn classify_control(bytes: &[u8], header: MessageHeader) -> Result<Inbound<'_>, Malformed> {
    if header.version > control::SCHEMA_VERSION {
        return Err(Malformed::NewerVersion(header.version));
    }
    match control::AnyMessage::decode(bytes) {
        Ok(control::AnyMessage::ConsumerHello(hello)) => Ok(Inbound::ConsumerHello(hello)),
        Ok(_) => Ok(Inbound::NotForDriver),
        Err(DecodeError::UnknownTemplate {
            schema_id,
            template_id,
        }) => Err(Malformed::UnknownTemplate {
            schema_id,
            template_id,
        }),
        Err(e) => Err(Malformed::Invalid(e)),
    }
}

/// Where an output is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The control stream (responses and notices).
    Control,
    /// The announce stream.
    Announce,
}

/// The stream an output goes to.
pub fn destination(output: &Output) -> Destination {
    match output {
        Output::Announce { .. } => Destination::Announce,
        _ => Destination::Control,
    }
}

/// Encodes an output into `buf`; returns the bytes written.
pub fn encode_output(output: &Output, buf: &mut [u8]) -> Result<usize, EncodeError> {
    match output {
        Output::AttachResponse(r) => encode_attach_response(r, buf),
        Output::DetachResponse {
            correlation_id,
            code,
            error_message,
        } => driver::ShmDetachResponse {
            correlation_id: *correlation_id,
            code: *code,
            error_message: error_message.as_bytes(),
        }
        .encode(buf),
        Output::LeaseRevoked {
            timestamp_ns,
            lease_id,
            stream_id,
            client_id,
            role,
            reason,
        } => driver::ShmLeaseRevoked {
            timestamp_ns: *timestamp_ns,
            lease_id: *lease_id,
            stream_id: *stream_id,
            client_id: *client_id,
            role: *role,
            reason: *reason,
            error_message: b"",
        }
        .encode(buf),
        Output::Announce {
            timestamp_ns,
            producer_id,
            layout,
        } => encode_announce(*timestamp_ns, *producer_id, layout, buf),
        Output::ConsumerConfig(c) => encode_consumer_config(c, buf),
        Output::DriverShutdown {
            timestamp_ns,
            reason,
            error_message,
        } => driver::ShmDriverShutdown {
            timestamp_ns: *timestamp_ns,
            reason: *reason,
            error_message: error_message.as_bytes(),
        }
        .encode(buf),
    }
}

fn encode_attach_response(r: &AttachResponse, buf: &mut [u8]) -> Result<usize, EncodeError> {
    let pools: Vec<driver::ShmAttachResponsePayloadPools<'_>> = r
        .grant
        .iter()
        .flat_map(|g| g.layout.pools.iter())
        .map(|p| driver::ShmAttachResponsePayloadPools {
            pool_id: p.pool_id,
            pool_nslots: p.nslots,
            stride_bytes: p.stride_bytes,
            region_uri: p.region_uri.as_bytes(),
        })
        .collect();
    let grant = r.grant.as_ref();
    driver::ShmAttachResponse {
        correlation_id: r.correlation_id,
        code: r.code,
        lease_id: grant.map(|g| g.lease_id),
        lease_expiry_timestamp_ns: grant.map(|g| g.lease_expiry_ns),
        stream_id: grant.map(|g| g.layout.stream_id),
        epoch: grant.map(|g| g.layout.epoch),
        layout_version: grant.map(|g| g.layout.layout_version),
        header_nslots: grant.map(|g| g.layout.header_nslots),
        header_slot_bytes: grant.map(|_| HEADER_SLOT_BYTES as u16),
        node_id: grant.and_then(|g| g.node_id),
        payload_pools: &pools,
        header_region_uri: grant.map_or(&[][..], |g| g.layout.header_region_uri.as_bytes()),
        error_message: r.error_message.as_bytes(),
    }
    .encode(buf)
}

fn encode_announce(
    timestamp_ns: u64,
    producer_id: u32,
    layout: &EpochLayout,
    buf: &mut [u8],
) -> Result<usize, EncodeError> {
    let pools: Vec<control::ShmPoolAnnouncePayloadPools<'_>> = layout
        .pools
        .iter()
        .map(|p| control::ShmPoolAnnouncePayloadPools {
            pool_id: p.pool_id,
            pool_nslots: p.nslots,
            stride_bytes: p.stride_bytes,
            region_uri: p.region_uri.as_bytes(),
        })
        .collect();
    control::ShmPoolAnnounce {
        stream_id: layout.stream_id,
        producer_id,
        epoch: layout.epoch,
        announce_timestamp_ns: timestamp_ns,
        announce_clock_domain: ClockDomain::Monotonic,
        layout_version: layout.layout_version,
        header_nslots: layout.header_nslots,
        header_slot_bytes: HEADER_SLOT_BYTES as u16,
        payload_pools: &pools,
        header_region_uri: layout.header_region_uri.as_bytes(),
    }
    .encode(buf)
}

fn encode_consumer_config(c: &ConsumerAssignment, buf: &mut [u8]) -> Result<usize, EncodeError> {
    control::ConsumerConfig {
        stream_id: c.stream_id,
        consumer_id: c.consumer_id,
        use_shm: control::Bool::True,
        mode: c.mode,
        descriptor_stream_id: c.descriptor.0,
        control_stream_id: c.control.0,
        payload_fallback_uri: b"",
        descriptor_channel: c.descriptor.1.as_bytes(),
        control_channel: c.control.1.as_bytes(),
    }
    .encode(buf)
}

#[cfg(test)]
mod tests;
