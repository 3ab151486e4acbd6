//! The producer's metadata hooks (Wire Spec §10.3): setting the data source's metadata,
//! stamping its `meta_version` on every later frame, and the periodic re-announce. The
//! logic lives in [`crate::client::metadata`]; this binds it to the producer's writer,
//! grant and metadata publication.

use super::{monotonic_now_ns, Producer};
use crate::client::metadata::publisher::{AnnounceIds, SendOutcome};
use crate::client::metadata::{DataSourceMetadata, MetadataError};

impl Producer {
    /// Replaces the data source's metadata (name, summary, attributes). A change bumps
    /// `meta_version`, sends `DataSourceAnnounce` + `DataSourceMeta` now (when attached;
    /// else on attach) and every frame committed from now on carries the new version;
    /// metadata equal to the current one changes nothing. Returns the version in force.
    /// Metadata beyond the bounds of [`crate::client::metadata`] is refused and changes
    /// nothing.
    pub fn set_metadata(&mut self, metadata: DataSourceMetadata) -> Result<u32, MetadataError> {
        let version = self.metadata.set(metadata)?;
        if let Some(writer) = self.writer.as_mut() {
            writer.set_meta_version(version);
        }
        self.send_metadata(monotonic_now_ns());
        Ok(version)
    }

    /// The metadata in force, if any was set.
    pub fn metadata(&self) -> Option<&DataSourceMetadata> {
        self.metadata.metadata()
    }

    /// The `meta_version` frames carry now (0: no metadata set).
    pub fn meta_version(&self) -> u32 {
        self.metadata.meta_version()
    }

    /// A new epoch is mapped: its frames carry the version in force, and consumers hear
    /// the metadata with the new epoch at once.
    pub(super) fn on_epoch_mapped_metadata(&mut self) {
        if let Some(writer) = self.writer.as_mut() {
            writer.set_meta_version(self.metadata.meta_version());
        }
        self.metadata.announce_now();
    }

    /// Sends the metadata if a change or the period makes it due; returns the work done.
    pub(super) fn send_metadata(&mut self, now_ns: u64) -> usize {
        if !self.metadata.is_due(now_ns) {
            return 0;
        }
        let (Some(conn), Some(writer)) = (self.conn.as_mut(), self.writer.as_ref()) else {
            return 0;
        };
        let grant = writer.epoch().grant();
        let ids = AnnounceIds {
            stream_id: grant.stream_id,
            producer_id: self.session.client_id(),
            epoch: grant.epoch,
        };
        let publication = match conn.metadata_publication(&self.config.streams) {
            Ok(publication) => publication,
            Err(error) => {
                tracing::warn!(%error, "cannot add the metadata publication");
                self.metadata.retry_in_a_period(now_ns);
                self.counters.metadata_send_failures += 1;
                return 1;
            }
        };
        match self.metadata.do_work(now_ns, publication, ids) {
            SendOutcome::NotDue => 0,
            SendOutcome::Sent => {
                self.counters.metadata_sent += 1;
                1
            }
            SendOutcome::Failed => {
                self.counters.metadata_send_failures += 1;
                1
            }
        }
    }
}
