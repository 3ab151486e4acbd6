//! An observer of the QoS stream that needs no lease (Wire Spec §10.5): its own Aeron
//! client and one subscription, driven by [`QosMonitor::poll`].

use super::{QosBoard, QosReport};
use crate::client::link::{stream_i32, ClientStreams};
use crate::transport::{AeronClient, ClientOptions, Subscription, TransportError};

/// Fragments read per poll.
const POLL_LIMIT: usize = 64;

/// Why a [`QosMonitor`] could not be set up or polled.
#[derive(Debug, thiserror::Error)]
pub enum QosMonitorError {
    /// Aeron failed (no media driver, or it went away).
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Listens to the QoS stream of `ClientStreams` and keeps every stream's latest reports.
pub struct QosMonitor {
    board: QosBoard,
    // Before the client: a subscription closes before the client that made it.
    subscription: Subscription,
    client: AeronClient,
}

impl QosMonitor {
    /// Connects to the media driver (waiting up to `streams.connect_timeout`) and
    /// subscribes to `streams.qos_channel` / `qos_stream_id`.
    pub fn connect(streams: &ClientStreams) -> Result<Self, QosMonitorError> {
        let client = AeronClient::connect_with(&ClientOptions {
            dir: streams.aeron_dir.clone(),
            connect_timeout: streams.connect_timeout,
            client_name: Some("tensorpool-qos-monitor".into()),
            ..ClientOptions::default()
        })?;
        let subscription = Subscription::add(
            &client,
            &streams.qos_channel,
            stream_i32(streams.qos_stream_id)?,
        )?;
        Ok(Self {
            board: QosBoard::new(),
            subscription,
            client,
        })
    }

    /// Reads what arrived (at monotonic time `now_ns`), keeps it on the board and hands
    /// each kept report to `on_report`; returns the work done.
    pub fn poll(
        &mut self,
        now_ns: u64,
        mut on_report: impl FnMut(&QosReport),
    ) -> Result<usize, QosMonitorError> {
        let mut work = self.client.do_work()?;
        let board = &mut self.board;
        work += self.subscription.poll(
            |bytes| {
                if let Some(report) = board.on_message(bytes, now_ns) {
                    on_report(&report);
                }
            },
            POLL_LIMIT,
        )?;
        Ok(work)
    }

    /// The latest reports of every stream.
    pub fn board(&self) -> &QosBoard {
        &self.board
    }

    /// The board, to forget consumers or streams.
    pub fn board_mut(&mut self) -> &mut QosBoard {
        &mut self.board
    }
}
