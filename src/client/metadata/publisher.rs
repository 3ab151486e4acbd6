//! The producer side of Wire Spec §10.3: keeps the data source's metadata and its
//! `meta_version`, and sends `DataSourceAnnounce` + `DataSourceMeta` on change and every
//! period (§15.11 suggests 1 Hz).
//!
//! Both messages are encoded when the metadata changes (the announce again only when the
//! stream or epoch does), so a periodic send copies bytes into the publication and
//! allocates nothing.

use super::{DataSourceMetadata, MetadataError, MAX_ANNOUNCE_MESSAGE_LEN};
use crate::clock::realtime_now_ns;
use crate::protocol::codec::{put_u32, MESSAGE_HEADER_LEN};
use crate::protocol::control::{
    data_source_meta, DataSourceAnnounce, DataSourceMeta, DataSourceMetaAttributes,
};
use crate::transport::{OfferOutcome, Publication};
use std::time::Duration;

/// Default period of the metadata re-announce (Wire Spec §15.11: `DataSourceAnnounce`
/// 1 Hz); a consumer that joins late has the metadata within one period.
pub const DEFAULT_METADATA_INTERVAL: Duration = Duration::from_secs(1);

/// Who announces: filled in from the producer's grant at send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceIds {
    /// The stream produced.
    pub stream_id: u32,
    /// The producer's client id.
    pub producer_id: u32,
    /// The mapped epoch.
    pub epoch: u64,
}

/// What one send attempt did, for the producer's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    /// Nothing was due (no metadata, or the period has not elapsed).
    NotDue,
    /// Both messages went out (or nobody subscribes, which loses nothing: a subscriber
    /// that comes later gets the next period's).
    Sent,
    /// Back pressure or an Aeron error: retried on the next duty cycle.
    Failed,
}

/// The producer's metadata: current version, encoded messages, re-announce deadline.
#[derive(Debug)]
pub struct MetadataPublisher {
    current: Option<DataSourceMetadata>,
    meta_version: u32,
    interval_ns: u64,
    /// 0: send on the next duty cycle.
    next_send_ns: u64,
    /// The encoded `DataSourceMeta` of the current version (stream id patched at send).
    meta_message: Vec<u8>,
    /// The encoded `DataSourceAnnounce`, valid for `announce_ids`.
    announce_message: Vec<u8>,
    announce_ids: Option<AnnounceIds>,
}

impl MetadataPublisher {
    /// No metadata yet (`meta_version` 0); re-announces every `interval` once set.
    pub fn new(interval: Duration) -> Self {
        Self {
            current: None,
            meta_version: 0,
            interval_ns: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            next_send_ns: 0,
            meta_message: Vec::new(),
            announce_message: Vec::with_capacity(MAX_ANNOUNCE_MESSAGE_LEN),
            announce_ids: None,
        }
    }

    /// Replaces the metadata. A change bumps `meta_version` (never back to 0) and makes
    /// both messages due at once; metadata equal to the current one changes nothing.
    /// Returns the version in force. Refused metadata leaves everything as it was.
    pub fn set(&mut self, metadata: DataSourceMetadata) -> Result<u32, MetadataError> {
        metadata.validate()?;
        if self.current.as_ref() == Some(&metadata) {
            return Ok(self.meta_version);
        }
        let version = self.meta_version.wrapping_add(1).max(1);
        let entries: Vec<DataSourceMetaAttributes<'_>> = metadata
            .attributes
            .iter()
            .map(|a| DataSourceMetaAttributes {
                key: a.key.as_bytes(),
                format: a.format.as_bytes(),
                value: &a.value,
            })
            .collect();
        let message = DataSourceMeta {
            stream_id: 0,
            meta_version: version,
            timestamp_ns: realtime_now_ns(),
            attributes: &entries,
        };
        let mut encoded = vec![0; message.encoded_len()];
        message
            .encode(&mut encoded)
            .expect("the buffer has the encoded length and validate() bounded every field");
        drop(entries);
        self.meta_message = encoded;
        self.meta_version = version;
        self.current = Some(metadata);
        self.announce_ids = None;
        self.next_send_ns = 0;
        Ok(version)
    }

    /// The version frames carry now (0: no metadata set).
    pub fn meta_version(&self) -> u32 {
        self.meta_version
    }

    /// The metadata in force.
    pub fn metadata(&self) -> Option<&DataSourceMetadata> {
        self.current.as_ref()
    }

    /// Makes both messages due on the next duty cycle (a new epoch was mapped).
    pub fn announce_now(&mut self) {
        self.next_send_ns = 0;
    }

    /// Whether metadata is set and a send is due at `now_ns`.
    pub fn is_due(&self, now_ns: u64) -> bool {
        self.current.is_some() && now_ns >= self.next_send_ns
    }

    /// Waits a period before the next attempt (the publication could not be added).
    pub fn retry_in_a_period(&mut self, now_ns: u64) {
        self.next_send_ns = now_ns.saturating_add(self.interval_ns);
    }

    /// Sends both messages on `publication` if due at `now_ns`.
    pub fn do_work(
        &mut self,
        now_ns: u64,
        publication: &Publication,
        ids: AnnounceIds,
    ) -> SendOutcome {
        let Some(current) = self.current.as_ref() else {
            return SendOutcome::NotDue;
        };
        if now_ns < self.next_send_ns {
            return SendOutcome::NotDue;
        }
        if self.announce_ids != Some(ids) {
            let announce = DataSourceAnnounce {
                stream_id: ids.stream_id,
                producer_id: ids.producer_id,
                epoch: ids.epoch,
                meta_version: self.meta_version,
                name: current.name.as_bytes(),
                summary: current.summary.as_bytes(),
            };
            self.announce_message.resize(announce.encoded_len(), 0);
            announce
                .encode(&mut self.announce_message)
                .expect("the buffer has the encoded length");
            put_u32(
                &mut self.meta_message,
                MESSAGE_HEADER_LEN + data_source_meta::STREAM_ID_OFFSET,
                ids.stream_id,
            );
            self.announce_ids = Some(ids);
        }
        // The announce goes first: a consumer pairs a meta with the announce before it.
        let sent = [&self.announce_message, &self.meta_message]
            .into_iter()
            .try_fold((), |(), bytes| match publication.offer(bytes) {
                Ok(OfferOutcome::Published { .. } | OfferOutcome::NotConnected) => Ok(()),
                Ok(_) => Err(None),
                Err(error) => Err(Some(error)),
            });
        match sent {
            Ok(()) => {
                self.next_send_ns = now_ns.saturating_add(self.interval_ns);
                SendOutcome::Sent
            }
            Err(error) => {
                if let Some(error) = error {
                    tracing::warn!(%error, stream_id = ids.stream_id, "metadata not sent");
                    // An error (e.g. too large for the channel) repeats: wait a period.
                    self.next_send_ns = now_ns.saturating_add(self.interval_ns);
                }
                SendOutcome::Failed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::{DataSourceAnnounceDecoder, DataSourceMetaDecoder};

    #[test]
    fn every_change_bumps_the_version_and_an_equal_set_does_not() {
        let mut publisher = MetadataPublisher::new(DEFAULT_METADATA_INTERVAL);
        assert_eq!(publisher.meta_version(), 0);
        let a = DataSourceMetadata::named("a");
        assert_eq!(publisher.set(a.clone()), Ok(1));
        assert_eq!(publisher.set(a.clone()), Ok(1));
        assert_eq!(publisher.set(a.clone().with_summary("s")), Ok(2));
        let refused = DataSourceMetadata::named("\u{1}");
        assert!(publisher.set(refused).is_err());
        assert_eq!(publisher.meta_version(), 2, "a refused set changes nothing");
        assert_eq!(publisher.metadata().map(|m| m.summary.as_str()), Some("s"));
    }

    #[test]
    fn the_encoded_meta_decodes_to_what_was_set() {
        let mut publisher = MetadataPublisher::new(DEFAULT_METADATA_INTERVAL);
        let meta = DataSourceMetadata::named("cam")
            .with_attribute("k", "text/plain", b"v".to_vec())
            .with_attribute("bin", "application/octet-stream", vec![0, 255]);
        publisher.set(meta).expect("valid");
        put_u32(&mut publisher.meta_message, MESSAGE_HEADER_LEN, 77);
        let decoded = DataSourceMetaDecoder::wrap(&publisher.meta_message).expect("decodes");
        assert_eq!((decoded.stream_id(), decoded.meta_version()), (77, 1));
        let attrs: Vec<_> = decoded.attributes().map(|a| a.to_value()).collect();
        assert_eq!(attrs.len(), 2);
        assert_eq!(
            (attrs[1].key, attrs[1].value),
            (&b"bin"[..], &[0u8, 255][..])
        );
        // The announce buffer is reserved up front for the largest name and summary.
        assert!(publisher.announce_message.capacity() >= MAX_ANNOUNCE_MESSAGE_LEN);
        let announce = DataSourceAnnounce {
            stream_id: 1,
            producer_id: 2,
            epoch: 3,
            meta_version: 1,
            name: &[b'n'; super::super::MAX_NAME_LEN],
            summary: &[b's'; super::super::MAX_SUMMARY_LEN],
        };
        assert_eq!(announce.encoded_len(), MAX_ANNOUNCE_MESSAGE_LEN);
        let mut buf = vec![0; MAX_ANNOUNCE_MESSAGE_LEN];
        announce.encode(&mut buf).expect("fits");
        assert!(DataSourceAnnounceDecoder::wrap(&buf).is_ok());
    }
}
