//! The FALLBACK state of the consumer state machine (Wire Spec §15.12, §10.1.3): a
//! `ConsumerConfig` with `use_shm = FALSE` tells this consumer not to read shared memory
//! and names, in `payload_fallback_uri`, where the payload can be had instead (e.g. a
//! bridge). The consumer then unmaps, stops reading SHM (descriptors are dropped as
//! [`DropReason::Fallback`](super::DropReason::Fallback)), reports
//! [`ConsumerEvent::Fallback`](super::ConsumerEvent::Fallback) and stays in
//! [`ConsumerState::Fallback`] until a `ConsumerConfig` with `use_shm = TRUE` arrives.
//! This library carries no payload over a fallback transport itself: the URI is handed to
//! the application, which knows the bridge.

use crate::protocol::control::{Bool, ConsumerConfigDecoder};

/// Longest `payload_fallback_uri` kept; a longer one is cut at a character boundary (the
/// consumer reports it, it does not connect to it).
pub const MAX_FALLBACK_URI_LEN: usize = 1024;

/// Where the consumer stands in the §15.12 state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerState {
    /// Waiting for a grant or an announce; no SHM mapped.
    Unmapped,
    /// SHM mapped, epoch current: frames are read.
    Mapped,
    /// Told not to use SHM (`ConsumerConfig.use_shm = FALSE`): nothing is read from SHM.
    Fallback,
}

/// What a `ConsumerConfig` for this consumer says about shared memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShmDirective {
    /// `use_shm = TRUE`.
    UseShm,
    /// `use_shm = FALSE`, with the fallback URI if one was given.
    Fallback(FallbackUri),
}

/// A `payload_fallback_uri` as received, and whether its scheme is one the spec defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackUri {
    /// The URI (empty: none given).
    pub uri: String,
    /// Whether the scheme is Aeron channel syntax (`aeron:`) or `bridge://`; any other
    /// scheme MUST be treated as unsupported (§10.1.3).
    pub supported_scheme: bool,
}

impl ShmDirective {
    /// Reads `use_shm` and `payload_fallback_uri` of a `ConsumerConfig`. An unknown
    /// `use_shm` value is treated as TRUE: only an explicit FALSE leaves SHM.
    pub(crate) fn of(config: &ConsumerConfigDecoder<'_>) -> Self {
        if config.use_shm() != Bool::False {
            return Self::UseShm;
        }
        Self::Fallback(FallbackUri::parse(config.payload_fallback_uri()))
    }
}

impl FallbackUri {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut end = text.len().min(MAX_FALLBACK_URI_LEN);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let uri = text[..end].to_string();
        let supported_scheme = uri.starts_with("aeron:") || uri.starts_with("bridge://");
        Self {
            uri,
            supported_scheme,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aeron_and_bridge_schemes_are_supported() {
        assert!(FallbackUri::parse(b"aeron:udp?endpoint=host:4000").supported_scheme);
        assert!(FallbackUri::parse(b"bridge://7").supported_scheme);
        assert!(!FallbackUri::parse(b"http://x").supported_scheme);
        let none = FallbackUri::parse(b"");
        assert_eq!((none.uri.as_str(), none.supported_scheme), ("", false));
        let long = vec![b'a'; MAX_FALLBACK_URI_LEN + 10];
        assert_eq!(FallbackUri::parse(&long).uri.len(), MAX_FALLBACK_URI_LEN);
        assert_eq!(FallbackUri::parse(&[0xff, b'a']).uri, "\u{fffd}a");
    }
}
