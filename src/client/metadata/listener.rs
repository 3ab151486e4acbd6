//! The consumer side of Wire Spec §10.3: reads the metadata stream, pairs each
//! `DataSourceAnnounce` of its stream with the `DataSourceMeta` of the same version that
//! follows it, and keeps the newest complete pair as the stream's metadata.
//!
//! The producer sends the announce first and the meta right after it on one publication,
//! so they arrive in that order: a meta is only taken after an announce of its version
//! (a consumer that joined between the two waits one period), and an announce forgets
//! any meta seen before it. Everything from the wire is hostile: messages longer than
//! the bounds of [`super`], truncated, or with text that is not printable ASCII are
//! dropped and reported, never trusted; a repeated announce of the version in force is
//! recognised without allocating.

use super::{
    check_text, Attribute, DataSourceMetadata, MetaField, MetadataError, MAX_ANNOUNCE_MESSAGE_LEN,
    MAX_ATTRIBUTES, MAX_FORMAT_LEN, MAX_KEY_LEN, MAX_META_MESSAGE_LEN, MAX_NAME_LEN,
    MAX_SUMMARY_LEN, MAX_VALUE_LEN,
};
use crate::protocol::codec::{get_u32, MessageHeader, MESSAGE_HEADER_LEN};
use crate::protocol::control::{
    self, data_source_announce, data_source_meta, DataSourceAnnounceDecoder, DataSourceMetaDecoder,
};

/// The metadata of a stream as a consumer last received it complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMetadata {
    /// The version frames refer to (`SlotHeader.meta_version`).
    pub meta_version: u32,
    /// The producer that announced it.
    pub producer_id: u32,
    /// The epoch it was announced in.
    pub epoch: u64,
    /// `DataSourceMeta.timestamp_ns`: when the producer set this version (wall clock,
    /// nanoseconds since the Unix epoch).
    pub timestamp_ns: u64,
    /// Name, summary and attributes.
    pub metadata: DataSourceMetadata,
}

/// What one message from the metadata stream did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataOutcome {
    /// Not a metadata message of this stream (other stream, other template).
    Ignored,
    /// A well-formed message that changed nothing visible yet (a repeat of the version in
    /// force, or an announce waiting for its meta).
    Unchanged,
    /// A new version (or a new epoch's) is complete and in force.
    Updated {
        /// The version now in force.
        meta_version: u32,
    },
    /// A message of this stream (or one too broken to tell) was dropped.
    Dropped(MetadataDrop),
}

/// Why a metadata message was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDrop {
    /// Longer than [`MAX_META_MESSAGE_LEN`] / [`MAX_ANNOUNCE_MESSAGE_LEN`], or a field
    /// beyond its bound.
    Oversize,
    /// Truncated, inconsistent lengths, newer schema version, or text that breaks the
    /// bounds of [`super`] (not ASCII, empty key or format, duplicate keys).
    Malformed,
}

/// An announce waiting for the meta of its version.
#[derive(Debug)]
struct PendingAnnounce {
    meta_version: u32,
    producer_id: u32,
    epoch: u64,
    name: String,
    summary: String,
}

/// Assembles the stream's metadata from the metadata stream (see the module docs).
#[derive(Debug, Default)]
pub struct MetadataListener {
    stream_id: Option<u32>,
    pending: Option<PendingAnnounce>,
    current: Option<StreamMetadata>,
}

impl MetadataListener {
    /// A listener that knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The metadata in force, if any version arrived complete.
    pub fn current(&self) -> Option<&StreamMetadata> {
        self.current.as_ref()
    }

    /// The version in force (0: none).
    pub fn meta_version(&self) -> u32 {
        self.current.as_ref().map_or(0, |c| c.meta_version)
    }

    /// Handles one message read from the metadata stream for stream `stream_id`. A new
    /// stream id (a dynamic stream granted) forgets what was known.
    pub fn on_message(&mut self, bytes: &[u8], stream_id: u32) -> MetadataOutcome {
        if self.stream_id != Some(stream_id) {
            *self = Self {
                stream_id: Some(stream_id),
                ..Self::default()
            };
        }
        let Ok(header) = MessageHeader::read(bytes) else {
            return MetadataOutcome::Ignored;
        };
        if header.schema_id != control::SCHEMA_ID {
            return MetadataOutcome::Ignored;
        }
        let (max_len, is_announce) = match header.template_id {
            data_source_announce::TEMPLATE_ID => (MAX_ANNOUNCE_MESSAGE_LEN, true),
            data_source_meta::TEMPLATE_ID => (MAX_META_MESSAGE_LEN, false),
            _ => return MetadataOutcome::Ignored,
        };
        // Both messages start their block with the stream id; one too short to hold it is
        // broken whichever stream it meant.
        if bytes.len() < MESSAGE_HEADER_LEN + 4 {
            return MetadataOutcome::Dropped(MetadataDrop::Malformed);
        }
        if get_u32(bytes, MESSAGE_HEADER_LEN) != stream_id {
            return MetadataOutcome::Ignored;
        }
        if bytes.len() > max_len {
            return MetadataOutcome::Dropped(MetadataDrop::Oversize);
        }
        let result = if is_announce {
            self.on_announce(bytes)
        } else {
            self.on_meta(bytes)
        };
        result.unwrap_or_else(|drop| {
            tracing::debug!(?drop, stream_id, "metadata message dropped");
            MetadataOutcome::Dropped(drop)
        })
    }

    fn on_announce(&mut self, bytes: &[u8]) -> Result<MetadataOutcome, MetadataDrop> {
        let announce =
            DataSourceAnnounceDecoder::wrap(bytes).map_err(|_| MetadataDrop::Malformed)?;
        check_text(MetaField::Name, announce.name(), MAX_NAME_LEN, true)?;
        check_text(
            MetaField::Summary,
            announce.summary(),
            MAX_SUMMARY_LEN,
            true,
        )?;
        let (version, epoch) = (announce.meta_version(), announce.epoch());
        self.pending = None;
        if let Some(current) = &self.current {
            let same = current.meta_version == version
                && current.epoch == epoch
                && current.producer_id == announce.producer_id()
                && current.metadata.name.as_bytes() == announce.name()
                && current.metadata.summary.as_bytes() == announce.summary();
            if same {
                return Ok(MetadataOutcome::Unchanged);
            }
        }
        self.pending = Some(PendingAnnounce {
            meta_version: version,
            producer_id: announce.producer_id(),
            epoch,
            // Checked ASCII above.
            name: String::from_utf8_lossy(announce.name()).into_owned(),
            summary: String::from_utf8_lossy(announce.summary()).into_owned(),
        });
        Ok(MetadataOutcome::Unchanged)
    }

    fn on_meta(&mut self, bytes: &[u8]) -> Result<MetadataOutcome, MetadataDrop> {
        let meta = DataSourceMetaDecoder::wrap(bytes).map_err(|_| MetadataDrop::Malformed)?;
        let count = meta.attributes().len();
        if count > MAX_ATTRIBUTES {
            return Err(MetadataDrop::Oversize);
        }
        for a in meta.attributes() {
            check_text(MetaField::Key, a.key(), MAX_KEY_LEN, false)?;
            check_text(MetaField::Format, a.format(), MAX_FORMAT_LEN, false)?;
            if a.value().len() > MAX_VALUE_LEN {
                return Err(MetadataDrop::Oversize);
            }
        }
        let Some(pending) = self
            .pending
            .take_if(|p| p.meta_version == meta.meta_version())
        else {
            // A repeat of the version in force, or a meta whose announce this consumer
            // did not see (it joined between the two): the next period completes it.
            return Ok(MetadataOutcome::Unchanged);
        };
        let attributes: Vec<Attribute> = meta
            .attributes()
            .map(|a| Attribute {
                key: String::from_utf8_lossy(a.key()).into_owned(),
                format: String::from_utf8_lossy(a.format()).into_owned(),
                value: a.value().to_vec(),
            })
            .collect();
        let metadata = DataSourceMetadata {
            name: pending.name,
            summary: pending.summary,
            attributes,
        };
        // Duplicate keys (every other bound was checked above); the announce is gone
        // with it.
        metadata.validate()?;
        self.current = Some(StreamMetadata {
            meta_version: pending.meta_version,
            producer_id: pending.producer_id,
            epoch: pending.epoch,
            timestamp_ns: meta.timestamp_ns(),
            metadata,
        });
        Ok(MetadataOutcome::Updated {
            meta_version: pending.meta_version,
        })
    }
}

impl From<MetadataError> for MetadataDrop {
    fn from(error: MetadataError) -> Self {
        if error.is_oversize() {
            Self::Oversize
        } else {
            Self::Malformed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::put_u32;
    use crate::protocol::control::{DataSourceAnnounce, DataSourceMeta, DataSourceMetaAttributes};

    fn announce(stream_id: u32, version: u32, epoch: u64, name: &[u8]) -> Vec<u8> {
        let message = DataSourceAnnounce {
            stream_id,
            producer_id: 5,
            epoch,
            meta_version: version,
            name,
            summary: b"u8 4x4",
        };
        let mut buf = vec![0; message.encoded_len()];
        message.encode(&mut buf).expect("fits");
        buf
    }

    fn meta(stream_id: u32, version: u32, entries: &[DataSourceMetaAttributes<'_>]) -> Vec<u8> {
        let message = DataSourceMeta {
            stream_id,
            meta_version: version,
            timestamp_ns: 42,
            attributes: entries,
        };
        let mut buf = vec![0; message.encoded_len()];
        message.encode(&mut buf).expect("fits");
        buf
    }

    const SERIAL: DataSourceMetaAttributes<'static> = DataSourceMetaAttributes {
        key: b"serial",
        format: b"text/plain",
        value: b"SN1",
    };

    #[test]
    fn an_announce_and_its_meta_make_a_version_and_repeats_change_nothing() {
        let mut l = MetadataListener::new();
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Unchanged,
            "meta without its announce waits"
        );
        assert_eq!(l.current(), None);
        assert_eq!(
            l.on_message(&announce(7, 1, 3, b"cam"), 7),
            MetadataOutcome::Unchanged
        );
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Updated { meta_version: 1 }
        );
        let current = l.current().expect("in force");
        assert_eq!(
            (
                current.meta_version,
                current.epoch,
                current.producer_id,
                current.timestamp_ns
            ),
            (1, 3, 5, 42)
        );
        assert_eq!(current.metadata.name, "cam");
        assert_eq!(
            current.metadata.attribute("serial").map(|a| &a.value[..]),
            Some(&b"SN1"[..])
        );
        // The periodic repeat.
        assert_eq!(
            l.on_message(&announce(7, 1, 3, b"cam"), 7),
            MetadataOutcome::Unchanged
        );
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Unchanged
        );
        // A new producer (epoch 4) starting over at version 1 with other metadata.
        assert_eq!(
            l.on_message(&announce(7, 1, 4, b"other"), 7),
            MetadataOutcome::Unchanged
        );
        assert_eq!(
            l.on_message(&meta(7, 1, &[]), 7),
            MetadataOutcome::Updated { meta_version: 1 }
        );
        assert_eq!(
            l.current().map(|c| (c.epoch, c.metadata.name.as_str())),
            Some((4, "other"))
        );
        assert_eq!(
            l.on_message(&announce(8, 9, 4, b"x"), 7),
            MetadataOutcome::Ignored
        );
        assert_eq!(l.meta_version(), 1);
    }

    #[test]
    fn a_meta_is_not_paired_with_an_announce_of_another_version() {
        let mut l = MetadataListener::new();
        l.on_message(&announce(7, 2, 1, b"cam"), 7);
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Unchanged
        );
        assert_eq!(
            l.current(),
            None,
            "version 1's attributes are not version 2's"
        );
        assert_eq!(
            l.on_message(&meta(7, 2, &[SERIAL]), 7),
            MetadataOutcome::Updated { meta_version: 2 }
        );
    }

    #[test]
    fn hostile_messages_are_dropped_and_the_version_in_force_stays() {
        let mut l = MetadataListener::new();
        l.on_message(&announce(7, 1, 1, b"cam"), 7);
        l.on_message(&meta(7, 1, &[SERIAL]), 7);
        let oversize = MetadataOutcome::Dropped(MetadataDrop::Oversize);
        let malformed = MetadataOutcome::Dropped(MetadataDrop::Malformed);

        // Truncated at every length.
        let good = meta(7, 2, &[SERIAL]);
        for cut in 0..good.len() {
            let outcome = l.on_message(&good[..cut], 7);
            assert!(
                matches!(
                    outcome,
                    MetadataOutcome::Ignored | MetadataOutcome::Dropped(MetadataDrop::Malformed)
                ),
                "cut at {cut}: {outcome:?}"
            );
        }
        // A var-data length claiming a gigabyte.
        let mut lying = announce(7, 2, 1, b"cam");
        put_u32(
            &mut lying,
            MESSAGE_HEADER_LEN + data_source_announce::BLOCK_LENGTH as usize,
            1 << 30,
        );
        assert_eq!(l.on_message(&lying, 7), malformed);
        // A group count beyond what is there.
        let mut lying = meta(7, 2, &[SERIAL]);
        let count_at = MESSAGE_HEADER_LEN + data_source_meta::BLOCK_LENGTH as usize + 2;
        lying[count_at..count_at + 2].copy_from_slice(&u16::MAX.to_le_bytes());
        assert_eq!(l.on_message(&lying, 7), malformed);
        // Longer than the bound as a whole, and a field beyond its bound.
        assert_eq!(
            l.on_message(&announce(7, 2, 1, &[b'n'; MAX_ANNOUNCE_MESSAGE_LEN]), 7),
            oversize
        );
        assert_eq!(
            l.on_message(&announce(7, 2, 1, &[b'n'; MAX_NAME_LEN + 1]), 7),
            oversize
        );
        let big = vec![0u8; MAX_VALUE_LEN + 1];
        let entry = DataSourceMetaAttributes {
            key: b"k",
            format: b"b",
            value: &big,
        };
        l.on_message(&announce(7, 2, 1, b"cam"), 7);
        assert_eq!(l.on_message(&meta(7, 2, &[entry]), 7), oversize);
        let huge = vec![0u8; MAX_META_MESSAGE_LEN];
        let entry = DataSourceMetaAttributes {
            key: b"k",
            format: b"b",
            value: &huge,
        };
        assert_eq!(l.on_message(&meta(7, 2, &[entry]), 7), oversize);
        // Formats and keys that are not printable ASCII, empty, or repeated.
        for (key, format) in [
            (&b"k"[..], &b"text/\xff"[..]),
            (b"", b"text/plain"),
            (b"k\n", b"x"),
            (b"k", b""),
        ] {
            l.on_message(&announce(7, 2, 1, b"cam"), 7);
            let entry = DataSourceMetaAttributes {
                key,
                format,
                value: b"",
            };
            assert_eq!(
                l.on_message(&meta(7, 2, &[entry]), 7),
                malformed,
                "{key:?} {format:?}"
            );
        }
        l.on_message(&announce(7, 2, 1, b"cam"), 7);
        assert_eq!(l.on_message(&meta(7, 2, &[SERIAL, SERIAL]), 7), malformed);
        assert_eq!(l.on_message(&announce(7, 2, 1, b"\x00bad"), 7), malformed);
        // A newer schema version is not guessed at.
        let mut newer = meta(7, 2, &[SERIAL]);
        newer[6..8].copy_from_slice(&(control::SCHEMA_VERSION + 1).to_le_bytes());
        assert_eq!(l.on_message(&newer, 7), malformed);

        assert_eq!(l.meta_version(), 1, "nothing hostile was taken");
        assert_eq!(l.current().map(|c| c.metadata.name.as_str()), Some("cam"));
    }
}
