//! SBE codecs for the two wire schemas, generated at build time from `schemas/*.xml`
//! (Driver Model Appendix A; Wire Spec §16 and §7–§8 for the SHM-resident blocks).
//!
//! - [`driver`]: schema 901, the driver control plane (attach, keepalive, detach,
//!   revoke, shutdown).
//! - [`control`]: schema 900, announces, consumer hello/config, frame descriptors, QoS,
//!   metadata and the SHM-resident superblock, slot header and tensor header.
//!
//! Decoders wrap `&[u8]` without copying and validate every length when they wrap;
//! value structs encode into `&mut [u8]`. Optional primitives are `Option<T>` (the null
//! sentinel is `None`); enums carry an explicit `Unknown(raw)` case so callers fail
//! closed on values they do not know.

pub mod codec;

pub use codec::{DecodeError, EncodeError, MessageHeader};

/// The `errorMessage` of an attach refused because the client id already holds a lease
/// on the stream in that role; clients that auto-assigned their id pick a new one on it
/// (Driver Model Appendix B.2), so driver and clients must agree on it byte for byte.
pub const CLIENT_ID_ALREADY_ATTACHED: &str = "client_id already attached";

/// Driver control-plane codec (SBE schema id 901).
#[allow(clippy::all)]
pub mod driver {
    include!(concat!(env!("OUT_DIR"), "/driver_codec.rs"));
}

/// Tensor-pool control/data-plane codec (SBE schema id 900).
#[allow(clippy::all)]
pub mod control {
    include!(concat!(env!("OUT_DIR"), "/control_codec.rs"));
}

/// Aeron-UDP bridge codec (SBE schema id 902, Bridge Spec v1.1 §11).
#[allow(clippy::all)]
pub mod bridge {
    include!(concat!(env!("OUT_DIR"), "/bridge_codec.rs"));
}
