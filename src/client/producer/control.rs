//! What the producer takes from the control stream: session messages (through
//! [`DriverSession::on_message`]), `ConsumerConfig` for its stream (Wire Spec §10.1.3) and
//! revocations of consumer leases on its stream (Driver Model §4.9), which end that
//! consumer's private descriptor stream.

use crate::client::session::{DriverSession, SessionEvent};
use crate::protocol::codec::MessageHeader;
use crate::protocol::control::{self, consumer_config, ConsumerConfigDecoder};
use crate::protocol::driver::{Role, ShmLeaseRevokedDecoder};

/// What a `ConsumerConfig` says about a consumer's private descriptor stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Assignment {
    /// Channel and stream id to publish that consumer's descriptors on.
    Stream {
        /// Aeron channel.
        channel: String,
        /// Aeron stream id.
        stream_id: i32,
    },
    /// No private stream (empty channel and id 0): the consumer reads the shared one.
    Declined,
    /// Only one of channel and id given, a non-UTF-8 channel, or an id beyond `i32`:
    /// rejected (§10.1.3), so the consumer stays on the shared stream.
    Invalid,
}

/// A control-stream message the producer acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Inbound {
    /// Something about this producer's own lease.
    Session(SessionEvent),
    /// `ConsumerConfig` for this producer's stream.
    ConsumerConfig {
        /// Consumer (client) id.
        consumer_id: u32,
        /// Its descriptor stream.
        assignment: Assignment,
    },
    /// A consumer lease on this producer's stream ended.
    ConsumerLeaseEnded {
        /// Consumer (client) id.
        consumer_id: u32,
    },
}

/// Classifies one control-stream message for the producer of `stream_id`.
pub(super) fn classify(
    bytes: &[u8],
    session: &mut DriverSession,
    stream_id: u32,
    now_ns: u64,
) -> Option<Inbound> {
    if let Some(event) = session.on_message(bytes, now_ns) {
        return match event {
            SessionEvent::OtherLeaseRevoked {
                role: Role::Consumer,
                stream_id: revoked_stream,
                ..
            } if revoked_stream == stream_id => {
                // The session vetted the notice (version, known enums); the client id it
                // does not report is read from the same bytes.
                let revoked = ShmLeaseRevokedDecoder::wrap(bytes).ok()?;
                Some(Inbound::ConsumerLeaseEnded {
                    consumer_id: revoked.client_id(),
                })
            }
            SessionEvent::OtherLeaseRevoked { .. } => None,
            event => Some(Inbound::Session(event)),
        };
    }
    let header = MessageHeader::read(bytes).ok()?;
    if header.schema_id != control::SCHEMA_ID || header.template_id != consumer_config::TEMPLATE_ID
    {
        return None;
    }
    let config = ConsumerConfigDecoder::wrap(bytes).ok()?;
    if config.stream_id() != stream_id {
        return None;
    }
    Some(Inbound::ConsumerConfig {
        consumer_id: config.consumer_id(),
        assignment: assignment(config.descriptor_channel(), config.descriptor_stream_id()),
    })
}

fn assignment(channel: &[u8], stream_id: u32) -> Assignment {
    match (channel.is_empty(), stream_id) {
        (true, 0) => Assignment::Declined,
        (false, id) if id != 0 => match (std::str::from_utf8(channel), i32::try_from(id)) {
            (Ok(channel), Ok(stream_id)) => Assignment::Stream {
                channel: channel.to_owned(),
                stream_id,
            },
            _ => Assignment::Invalid,
        },
        _ => Assignment::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::session::SessionConfig;
    use crate::protocol::control::{Bool, ConsumerConfig, Mode};
    use crate::protocol::driver::{LeaseRevokeReason, ShmLeaseRevoked};

    fn session() -> DriverSession {
        DriverSession::new(SessionConfig::new(10000, Role::Producer))
    }

    fn config(stream_id: u32, consumer_id: u32, channel: &[u8], descriptor: u32) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let len = ConsumerConfig {
            stream_id,
            consumer_id,
            use_shm: Bool::True,
            mode: Mode::Stream,
            descriptor_stream_id: descriptor,
            control_stream_id: 0,
            payload_fallback_uri: b"",
            descriptor_channel: channel,
            control_channel: b"",
        }
        .encode(&mut buf)
        .expect("fits");
        buf.truncate(len);
        buf
    }

    fn revoked(stream_id: u32, client_id: u32, role: Role) -> Vec<u8> {
        let mut buf = vec![0u8; 128];
        let len = ShmLeaseRevoked {
            timestamp_ns: 1,
            lease_id: 99,
            stream_id,
            client_id,
            role,
            reason: LeaseRevokeReason::Expired,
            error_message: b"",
        }
        .encode(&mut buf)
        .expect("fits");
        buf.truncate(len);
        buf
    }

    #[test]
    fn consumer_config_for_this_stream_is_classified() {
        let mut s = session();
        assert_eq!(
            classify(&config(10000, 7, b"aeron:ipc", 31000), &mut s, 10000, 0),
            Some(Inbound::ConsumerConfig {
                consumer_id: 7,
                assignment: Assignment::Stream {
                    channel: "aeron:ipc".into(),
                    stream_id: 31000
                }
            })
        );
        assert_eq!(
            classify(&config(10000, 7, b"", 0), &mut s, 10000, 0),
            Some(Inbound::ConsumerConfig {
                consumer_id: 7,
                assignment: Assignment::Declined
            })
        );
        for (channel, id) in [(&b"aeron:ipc"[..], 0), (&b""[..], 31000), (&[0xff][..], 1)] {
            assert_eq!(
                classify(&config(10000, 7, channel, id), &mut s, 10000, 0),
                Some(Inbound::ConsumerConfig {
                    consumer_id: 7,
                    assignment: Assignment::Invalid
                })
            );
        }
        assert_eq!(
            classify(&config(10000, 7, b"aeron:ipc", u32::MAX), &mut s, 10000, 0),
            Some(Inbound::ConsumerConfig {
                consumer_id: 7,
                assignment: Assignment::Invalid
            })
        );
        assert_eq!(
            classify(&config(10001, 7, b"aeron:ipc", 31000), &mut s, 10000, 0),
            None
        );
    }

    #[test]
    fn consumer_revocations_on_this_stream_end_their_streams() {
        let mut s = session();
        assert_eq!(
            classify(&revoked(10000, 42, Role::Consumer), &mut s, 10000, 0),
            Some(Inbound::ConsumerLeaseEnded { consumer_id: 42 })
        );
        assert_eq!(
            classify(&revoked(10001, 42, Role::Consumer), &mut s, 10000, 0),
            None
        );
        // Someone else's producer lease on this stream is not ours to act on.
        assert_eq!(
            classify(&revoked(10000, 42, Role::Producer), &mut s, 10000, 0),
            None
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let mut s = session();
        assert_eq!(classify(&[], &mut s, 10000, 0), None);
        assert_eq!(
            classify(&[1, 2, 3, 4, 5, 6, 7, 8, 9], &mut s, 10000, 0),
            None
        );
        let mut truncated = config(10000, 7, b"aeron:ipc", 31000);
        truncated.truncate(20);
        assert_eq!(classify(&truncated, &mut s, 10000, 0), None);
    }
}
