//! QoS for programs (Wire Spec §10.4, §10.5): decoding `QosProducer` / `QosConsumer`
//! from the QoS stream and keeping the latest report of every producer and consumer per
//! stream, so a program can see each consumer's progress, lag and drops.
//!
//! - [`QosReport::decode`] classifies one message of the QoS stream (shared with
//!   `tp status`).
//! - [`QosBoard`] keeps the latest report per stream and client, bounded in size, and
//!   forgets a stream's reports when its epoch changes (an old epoch's progress says
//!   nothing about the new one).
//! - A [`Producer`](crate::client::producer::Producer) keeps a board of its own stream
//!   ([`Producer::consumer_qos`](crate::client::producer::Producer::consumer_qos)); an
//!   observer without a lease runs a [`QosMonitor`] and sees every stream.
//!
//! ```no_run
//! use tensorpool::client::qos::{QosMonitor, QosReport};
//! use tensorpool::client::{producer::monotonic_now_ns, ClientStreams};
//!
//! let mut monitor = QosMonitor::connect(&ClientStreams::default())?;
//! loop {
//!     monitor.poll(monotonic_now_ns(), |report| {
//!         if let QosReport::Consumer(q) = report {
//!             println!("stream {} consumer {} saw {}", q.stream_id, q.consumer_id, q.last_seq_seen);
//!         }
//!     })?;
//!     if let Some(lag) = monitor.board().stream(10000).and_then(|s| s.lag(42)) {
//!         println!("consumer 42 is {lag} frames behind");
//!     }
//! }
//! # Ok::<(), tensorpool::client::qos::QosMonitorError>(())
//! ```

mod board;
mod monitor;

pub use board::{ConsumerQos, QosBoard, QosBoardCounters, Recorded, StreamQos, MAX_QOS_CLIENTS};
pub use monitor::{QosMonitor, QosMonitorError};

use crate::protocol::codec::MessageHeader;
use crate::protocol::control::{self, qos_consumer, qos_producer, QosConsumer, QosProducer};

/// One QoS report as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosReport {
    /// A producer's progress (§10.4.2).
    Producer(QosProducer),
    /// A consumer's progress and drops (§10.4.1).
    Consumer(QosConsumer),
}

/// What one message of the QoS stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosMessage {
    /// A decoded report.
    Report(QosReport),
    /// Another message (the QoS stream may be shared with other traffic).
    Other,
    /// A `QosProducer` / `QosConsumer` header over bytes that do not decode.
    Malformed,
}

impl QosReport {
    /// Classifies `bytes`, one message read from the QoS stream.
    pub fn decode(bytes: &[u8]) -> QosMessage {
        let Ok(header) = MessageHeader::read(bytes) else {
            return QosMessage::Malformed;
        };
        if header.schema_id != control::SCHEMA_ID {
            return QosMessage::Other;
        }
        let report = match header.template_id {
            qos_producer::TEMPLATE_ID => QosProducer::decode(bytes).map(Self::Producer),
            qos_consumer::TEMPLATE_ID => QosConsumer::decode(bytes).map(Self::Consumer),
            _ => return QosMessage::Other,
        };
        report.map_or(QosMessage::Malformed, QosMessage::Report)
    }

    /// The stream the report is about.
    pub fn stream_id(&self) -> u32 {
        match self {
            Self::Producer(q) => q.stream_id,
            Self::Consumer(q) => q.stream_id,
        }
    }

    /// The epoch the report is about.
    pub fn epoch(&self) -> u64 {
        match self {
            Self::Producer(q) => q.epoch,
            Self::Consumer(q) => q.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::Mode;

    #[test]
    fn reports_decode_and_everything_else_is_classified() {
        let mut buf = [0u8; 128];
        let consumer = QosConsumer {
            stream_id: 7,
            consumer_id: 3,
            epoch: 2,
            last_seq_seen: 40,
            drops_gap: 1,
            drops_late: 2,
            mode: Mode::Stream,
        };
        let len = consumer.encode(&mut buf).expect("fits");
        assert_eq!(
            QosReport::decode(&buf[..len]),
            QosMessage::Report(QosReport::Consumer(consumer))
        );
        assert_eq!(QosReport::decode(&buf[..len - 1]), QosMessage::Malformed);
        assert_eq!(QosReport::decode(&buf[..3]), QosMessage::Malformed);
        let producer = QosProducer {
            stream_id: 7,
            producer_id: 9,
            epoch: 2,
            current_seq: 50,
            watermark: None,
        };
        let len = producer.encode(&mut buf).expect("fits");
        let report = QosReport::Producer(producer);
        assert_eq!(QosReport::decode(&buf[..len]), QosMessage::Report(report));
        assert_eq!((report.stream_id(), report.epoch()), (7, 2));
        let descriptor = control::FrameDescriptor {
            stream_id: 7,
            epoch: 2,
            seq: 1,
            timestamp_ns: None,
            meta_version: None,
            trace_id: None,
        };
        let len = descriptor.encode(&mut buf).expect("fits");
        assert_eq!(QosReport::decode(&buf[..len]), QosMessage::Other);
    }
}
