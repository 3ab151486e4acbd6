//! What the producer takes from the control stream: session messages (through
//! [`DriverSession::on_message`]), `ConsumerConfig` for its stream (Wire Spec §10.1.3) and
//! revocations of consumer leases on its stream (Driver Model §4.9), which end that
//! consumer's private descriptor stream, and `ConsumerHello`s of its stream (§10.1.2:
//! progress wishes and rate limits).

use crate::client::progress::{ConsumerWish, ProgressHints};
use crate::client::session::{DriverSession, SessionEvent};
use crate::protocol::codec::MessageHeader;
use crate::protocol::control::{
    self, consumer_config, consumer_hello, Bool, ConsumerConfigDecoder, ConsumerHelloDecoder, Mode,
};
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
    /// A consumer of this stream said hello.
    ConsumerHello(ConsumerWish),
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
    if header.schema_id == control::SCHEMA_ID && header.template_id == consumer_hello::TEMPLATE_ID {
        return consumer_wish(bytes, stream_id).map(Inbound::ConsumerHello);
    }
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

/// What a `ConsumerHello` of `stream_id` asks of its producer: progress (with hints) and,
/// in RATE_LIMITED mode, `max_rate_hz` (§10.1.2; ignored in STREAM mode).
fn consumer_wish(bytes: &[u8], stream_id: u32) -> Option<ConsumerWish> {
    let hello = ConsumerHelloDecoder::wrap(bytes).ok()?;
    if hello.stream_id() != stream_id {
        return None;
    }
    Some(ConsumerWish {
        consumer_id: hello.consumer_id(),
        supports_progress: hello.supports_progress() == Bool::True,
        hints: ProgressHints {
            interval_us: hello.progress_interval_us(),
            bytes_delta: hello.progress_bytes_delta(),
            major_delta_units: hello.progress_major_delta_units(),
        },
        max_rate_hz: match hello.mode() {
            Mode::RateLimited => hello.max_rate_hz(),
            _ => 0,
        },
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

    fn hello(stream_id: u32, consumer_id: u32, progress: Bool, mode: Mode, hz: u32) -> Vec<u8> {
        let mut buf = vec![0u8; 256];
        let len = control::ConsumerHello {
            stream_id,
            consumer_id,
            supports_shm: Bool::True,
            supports_progress: progress,
            mode,
            max_rate_hz: hz,
            expected_layout_version: 1,
            progress_interval_us: Some(400),
            progress_bytes_delta: None,
            progress_major_delta_units: Some(3),
            descriptor_stream_id: 0,
            control_stream_id: 0,
            descriptor_channel: b"",
            control_channel: b"",
        }
        .encode(&mut buf)
        .expect("fits");
        buf.truncate(len);
        buf
    }

    #[test]
    fn hellos_of_this_stream_carry_progress_wishes_and_rate_limits() {
        let mut s = session();
        assert_eq!(
            classify(
                &hello(10000, 7, Bool::True, Mode::RateLimited, 15),
                &mut s,
                10000,
                0
            ),
            Some(Inbound::ConsumerHello(ConsumerWish {
                consumer_id: 7,
                supports_progress: true,
                hints: ProgressHints {
                    interval_us: Some(400),
                    bytes_delta: None,
                    major_delta_units: Some(3),
                },
                max_rate_hz: 15,
            }))
        );
        let Some(Inbound::ConsumerHello(wish)) = classify(
            &hello(10000, 8, Bool::False, Mode::Stream, 15),
            &mut s,
            10000,
            0,
        ) else {
            panic!("a hello of this stream");
        };
        assert_eq!(
            (wish.supports_progress, wish.max_rate_hz),
            (false, 0),
            "STREAM ignores max_rate_hz"
        );
        assert_eq!(
            classify(
                &hello(10001, 7, Bool::True, Mode::Stream, 0),
                &mut s,
                10000,
                0
            ),
            None
        );
        let mut truncated = hello(10000, 7, Bool::True, Mode::Stream, 0);
        truncated.truncate(30);
        assert_eq!(classify(&truncated, &mut s, 10000, 0), None);
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
