//! The latest QoS report of every producer and consumer, per stream (Wire Spec §10.4,
//! §10.5 "a supervisor subscribes to QosConsumer / QosProducer").

use super::QosReport;
use crate::protocol::control::{QosConsumer, QosProducer};
use std::collections::BTreeMap;

/// Most consumers a board tracks across all streams; reports of further consumers are
/// counted and dropped (a flood of forged consumer ids cannot grow it without bound).
pub const MAX_QOS_CLIENTS: usize = 4096;

/// A consumer's latest report and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerQos {
    /// The report (`last_seq_seen`, `drops_gap`, `drops_late`, `mode`, epoch).
    pub report: QosConsumer,
    /// When it arrived (the clock the board was fed, CLOCK_MONOTONIC for the producer and
    /// [`QosMonitor`](super::QosMonitor)).
    pub received_ns: u64,
}

impl ConsumerQos {
    /// The consumer's id.
    pub fn consumer_id(&self) -> u32 {
        self.report.consumer_id
    }

    /// How many frames the consumer's last seen sequence trails `last_published` (the
    /// newest sequence the producer committed), if both are of `epoch`: 0 for a consumer
    /// that has seen the newest frame.
    pub fn lag(&self, epoch: u64, last_published: u64) -> Option<u64> {
        (self.report.epoch == epoch)
            .then(|| last_published.saturating_sub(self.report.last_seq_seen))
    }
}

/// What is known of one stream: its epoch, its producer's latest report and every
/// consumer's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamQos {
    epoch: Option<u64>,
    producer: Option<(QosProducer, u64)>,
    consumers: BTreeMap<u32, ConsumerQos>,
}

/// What became of a report offered to a [`StreamQos`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Kept (a newer epoch first clears the older epoch's reports).
    Kept,
    /// Of an epoch older than one already reported; ignored.
    OldEpoch,
    /// A consumer not yet tracked while the board is full; ignored.
    Full,
}

impl StreamQos {
    /// The highest epoch reported.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// The producer's latest report.
    pub fn producer(&self) -> Option<&QosProducer> {
        self.producer.as_ref().map(|(q, _)| q)
    }

    /// Every consumer's latest report, by consumer id.
    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerQos> + '_ {
        self.consumers.values()
    }

    /// One consumer's latest report.
    pub fn consumer(&self, consumer_id: u32) -> Option<&ConsumerQos> {
        self.consumers.get(&consumer_id)
    }

    /// How far `consumer_id` trails the producer's latest report. `QosProducer.currentSeq`
    /// is taken as the next sequence to be published (what this library's producers
    /// send), so a consumer that saw the newest frame lags 0.
    pub fn lag(&self, consumer_id: u32) -> Option<u64> {
        let (producer, _) = self.producer.as_ref()?;
        let last_published = producer.current_seq.checked_sub(1)?;
        self.consumers
            .get(&consumer_id)?
            .lag(producer.epoch, last_published)
    }

    /// Forgets every report (e.g. when an announce shows a new epoch).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Offers a report of this stream received at `now_ns`; `room` says whether a consumer
    /// not yet tracked may be added.
    pub fn record(&mut self, report: &QosReport, now_ns: u64, room: bool) -> Recorded {
        let epoch = report.epoch();
        match self.epoch {
            Some(current) if epoch < current => return Recorded::OldEpoch,
            Some(current) if epoch > current => {
                self.clear();
                self.epoch = Some(epoch);
            }
            Some(_) => {}
            None => self.epoch = Some(epoch),
        }
        match report {
            QosReport::Producer(q) => self.producer = Some((*q, now_ns)),
            QosReport::Consumer(q) => {
                if !room && !self.consumers.contains_key(&q.consumer_id) {
                    return Recorded::Full;
                }
                self.consumers.insert(
                    q.consumer_id,
                    ConsumerQos {
                        report: *q,
                        received_ns: now_ns,
                    },
                );
            }
        }
        Recorded::Kept
    }

    /// Forgets `consumer_id` (its lease ended); returns whether it was known.
    pub fn forget(&mut self, consumer_id: u32) -> bool {
        self.consumers.remove(&consumer_id).is_some()
    }

    /// Forgets consumers whose last report arrived before `cutoff_ns`; returns how many.
    pub fn forget_silent(&mut self, cutoff_ns: u64) -> usize {
        let before = self.consumers.len();
        self.consumers.retain(|_, c| c.received_ns >= cutoff_ns);
        before - self.consumers.len()
    }
}

/// What a [`QosBoard`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QosBoardCounters {
    /// Reports kept.
    pub reports: u64,
    /// Reports of an epoch older than one already reported for the stream.
    pub reports_old_epoch: u64,
    /// Reports of streams other than the one watched (a producer's board).
    pub reports_other_stream: u64,
    /// Reports of new consumers dropped because [`MAX_QOS_CLIENTS`] were tracked.
    pub reports_over_capacity: u64,
    /// Messages with a QoS header that did not decode.
    pub malformed: u64,
}

/// The latest QoS reports of every stream (or of one, see [`QosBoard::for_stream`]).
#[derive(Debug, Clone, Default)]
pub struct QosBoard {
    only_stream: Option<u32>,
    streams: BTreeMap<u32, StreamQos>,
    counters: QosBoardCounters,
}

impl QosBoard {
    /// A board of every stream (an observer's).
    pub fn new() -> Self {
        Self::default()
    }

    /// A board that keeps only `stream_id`'s reports (a producer's).
    pub fn for_stream(stream_id: u32) -> Self {
        Self {
            only_stream: Some(stream_id),
            ..Self::default()
        }
    }

    /// Watches `stream_id` from now on (a producer granted a dynamic stream id); reports
    /// of the previous stream are forgotten.
    pub fn watch_stream(&mut self, stream_id: u32) {
        if self.only_stream != Some(stream_id) {
            self.only_stream = Some(stream_id);
            self.streams.clear();
        }
    }

    /// Decodes one message of the QoS stream and keeps it if it is a report this board
    /// wants; returns the report kept.
    pub fn on_message(&mut self, bytes: &[u8], now_ns: u64) -> Option<QosReport> {
        match QosReport::decode(bytes) {
            super::QosMessage::Report(report) => self.record(&report, now_ns).then_some(report),
            super::QosMessage::Other => None,
            super::QosMessage::Malformed => {
                self.counters.malformed += 1;
                None
            }
        }
    }

    /// Keeps `report` (received at `now_ns`) if this board wants it; returns whether it
    /// was kept.
    pub fn record(&mut self, report: &QosReport, now_ns: u64) -> bool {
        let stream_id = report.stream_id();
        if self.only_stream.is_some_and(|only| only != stream_id) {
            self.counters.reports_other_stream += 1;
            return false;
        }
        let room = self.tracked() < MAX_QOS_CLIENTS;
        if !room && !self.streams.contains_key(&stream_id) {
            self.counters.reports_over_capacity += 1;
            return false;
        }
        match self
            .streams
            .entry(stream_id)
            .or_default()
            .record(report, now_ns, room)
        {
            Recorded::Kept => {
                self.counters.reports += 1;
                true
            }
            Recorded::OldEpoch => {
                self.counters.reports_old_epoch += 1;
                false
            }
            Recorded::Full => {
                self.counters.reports_over_capacity += 1;
                false
            }
        }
    }

    /// What is known of `stream_id`.
    pub fn stream(&self, stream_id: u32) -> Option<&StreamQos> {
        self.streams.get(&stream_id)
    }

    /// Every stream heard of, by id.
    pub fn streams(&self) -> impl Iterator<Item = (u32, &StreamQos)> + '_ {
        self.streams.iter().map(|(id, s)| (*id, s))
    }

    /// Forgets `consumer_id` of `stream_id` (its lease ended).
    pub fn forget_consumer(&mut self, stream_id: u32, consumer_id: u32) -> bool {
        self.streams
            .get_mut(&stream_id)
            .is_some_and(|s| s.forget(consumer_id))
    }

    /// Forgets consumers silent since before `cutoff_ns`; returns how many.
    pub fn forget_silent(&mut self, cutoff_ns: u64) -> usize {
        self.streams
            .values_mut()
            .map(|s| s.forget_silent(cutoff_ns))
            .sum()
    }

    /// The counters so far.
    pub fn counters(&self) -> QosBoardCounters {
        self.counters
    }

    fn tracked(&self) -> usize {
        self.streams.values().map(|s| s.consumers.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::Mode;

    fn consumer(id: u32, epoch: u64, last: u64, gap: u64) -> QosReport {
        QosReport::Consumer(QosConsumer {
            stream_id: 7,
            consumer_id: id,
            epoch,
            last_seq_seen: last,
            drops_gap: gap,
            drops_late: 0,
            mode: Mode::Stream,
        })
    }

    fn producer(epoch: u64, current_seq: u64) -> QosReport {
        QosReport::Producer(QosProducer {
            stream_id: 7,
            producer_id: 1,
            epoch,
            current_seq,
            watermark: None,
        })
    }

    #[test]
    fn each_consumer_lag_is_measured_against_the_producer() {
        let mut board = QosBoard::new();
        assert!(board.record(&consumer(10, 2, 99, 0), 1));
        assert!(board.record(&consumer(11, 2, 60, 5), 1));
        assert_eq!(
            board.stream(7).and_then(|s| s.lag(10)),
            None,
            "no producer report yet"
        );
        assert!(board.record(&producer(2, 100), 2));
        let stream = board.stream(7).expect("heard");
        assert_eq!((stream.lag(10), stream.lag(11)), (Some(0), Some(39)));
        assert_eq!(stream.consumer(11).map(|c| c.report.drops_gap), Some(5));
        assert_eq!(stream.lag(12), None);
    }

    #[test]
    fn a_new_epoch_forgets_the_old_one_and_old_reports_are_ignored() {
        let mut board = QosBoard::new();
        board.record(&consumer(10, 2, 99, 0), 1);
        board.record(&producer(2, 100), 1);
        assert!(board.record(&consumer(11, 3, 0, 0), 2));
        let stream = board.stream(7).expect("heard");
        assert_eq!(stream.epoch(), Some(3));
        assert!(stream.producer().is_none() && stream.consumer(10).is_none());
        assert!(!board.record(&consumer(10, 2, 120, 0), 3));
        assert_eq!(board.counters().reports_old_epoch, 1);
        assert_eq!(board.counters().reports, 3);
    }

    #[test]
    fn a_stream_board_ignores_other_streams_and_capacity_is_bounded() {
        let mut board = QosBoard::for_stream(8);
        assert!(!board.record(&consumer(10, 1, 0, 0), 1));
        assert_eq!(board.counters().reports_other_stream, 1);
        let mut board = QosBoard::new();
        for id in 0..MAX_QOS_CLIENTS as u32 + 3 {
            board.record(&consumer(id, 1, 0, 0), 1);
        }
        assert_eq!(
            board.stream(7).map(|s| s.consumers().count()),
            Some(MAX_QOS_CLIENTS)
        );
        assert_eq!(board.counters().reports_over_capacity, 3);
        assert!(
            board.record(&consumer(0, 1, 5, 0), 2),
            "a tracked consumer still updates"
        );
        assert!(board.forget_consumer(7, 0));
        assert_eq!(board.forget_silent(2), MAX_QOS_CLIENTS - 1);
    }
}
