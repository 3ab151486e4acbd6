//! The consumer's metadata hooks (Wire Spec §10.3): reading the metadata stream into the
//! stream's current metadata, reporting each new version as an event, and counting what
//! is dropped. The logic lives in [`crate::client::metadata`].

use super::events::ConsumerEvent;
use super::Consumer;
use crate::client::metadata::listener::MetadataDrop;
use crate::client::metadata::{MetadataOutcome, StreamMetadata};
use crate::transport::TransportError;

/// Metadata messages read per duty cycle.
const METADATA_POLL_LIMIT: usize = 8;

impl Consumer {
    /// The stream's metadata as last received complete (`DataSourceAnnounce` and the
    /// `DataSourceMeta` of the same version), or `None` before any arrived. Each new
    /// version is also reported as [`ConsumerEvent::MetadataChanged`]; a frame tells which
    /// version it was taken under ([`super::Frame::meta_version`],
    /// [`super::Frame::meta_status`]).
    pub fn metadata(&self) -> Option<&StreamMetadata> {
        self.metadata.current()
    }

    /// Reads the metadata stream; returns the messages read.
    pub(super) fn poll_metadata(&mut self) -> Result<usize, TransportError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(0);
        };
        let (listener, counters, events, stream_id) = (
            &mut self.metadata,
            &mut self.counters,
            &mut self.events,
            self.stream_id,
        );
        conn.metadata_sub.poll(
            |bytes| match listener.on_message(bytes, stream_id) {
                MetadataOutcome::Ignored | MetadataOutcome::Unchanged => {}
                MetadataOutcome::Updated { meta_version } => {
                    counters.metadata_updates += 1;
                    events.push(ConsumerEvent::MetadataChanged { meta_version });
                }
                MetadataOutcome::Dropped(MetadataDrop::Oversize) => {
                    counters.metadata_dropped_oversize += 1
                }
                MetadataOutcome::Dropped(MetadataDrop::Malformed) => {
                    counters.metadata_dropped_malformed += 1
                }
            },
            METADATA_POLL_LIMIT,
        )
    }
}
