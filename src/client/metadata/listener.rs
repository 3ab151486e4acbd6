//! The consumer side of Wire Spec §10.3: reads the metadata stream and keeps the
//! stream's metadata: the attributes of the newest `DataSourceMeta`, with the name,
//! summary, producer and epoch of the `DataSourceAnnounce` of the same version.
//!
//! This library's producer sends the announce first and the meta right after it, so a
//! version normally arrives whole, as one [`MetadataOutcome::Updated`]. Other producers
//! may send a meta alone (the spec asks for both, but only the meta carries the
//! attributes): it is taken, with an empty name until an announce of its version comes
//! (another `Updated`). An announce of the version in force from another epoch is another
//! producer run that reused the number; it waits for its meta rather than mixing its name
//! with the old run's attributes. Everything from the wire is hostile: messages longer
//! than the bounds of [`super`], truncated, or with text that is not printable ASCII are
//! dropped and reported, never trusted; the periodic repeats are recognised without
//! allocating.

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
    /// The producer that announced it (0 until an announce of this version arrived).
    pub producer_id: u32,
    /// The epoch it was announced in (0 until an announce of this version arrived).
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
    /// A well-formed message that changed nothing visible (a repeat of what is held, or
    /// an announce waiting for its meta).
    Unchanged,
    /// A new version is in force, or the one in force changed (its announce arrived after
    /// its meta, or another producer run reused its number).
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

/// The latest `DataSourceAnnounce` of the stream.
#[derive(Debug, PartialEq, Eq)]
struct Announced {
    meta_version: u32,
    producer_id: u32,
    epoch: u64,
    name: String,
    summary: String,
}

impl Announced {
    fn is(&self, a: &DataSourceAnnounceDecoder<'_>) -> bool {
        self.meta_version == a.meta_version()
            && self.producer_id == a.producer_id()
            && self.epoch == a.epoch()
            && self.name.as_bytes() == a.name()
            && self.summary.as_bytes() == a.summary()
    }
}

/// Assembles the stream's metadata from the metadata stream (see the module docs).
#[derive(Debug, Default)]
pub struct MetadataListener {
    stream_id: Option<u32>,
    announced: Option<Announced>,
    current: Option<StreamMetadata>,
}

impl MetadataListener {
    /// A listener that knows nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The metadata in force, if any version arrived.
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

    /// An announce of the version in force completes or corrects its name, summary,
    /// producer and epoch; one of another version waits for its meta. An announce of
    /// the version in force from another epoch is another producer run that reused the
    /// number: its attributes are unknown until its meta arrives, so it waits too.
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
        if self.announced.as_ref().is_some_and(|a| a.is(&announce)) {
            // The periodic repeat: recognised without allocating.
            return Ok(MetadataOutcome::Unchanged);
        }
        let announced = Announced {
            meta_version: announce.meta_version(),
            producer_id: announce.producer_id(),
            epoch: announce.epoch(),
            // Checked ASCII above.
            name: String::from_utf8_lossy(announce.name()).into_owned(),
            summary: String::from_utf8_lossy(announce.summary()).into_owned(),
        };
        let outcome = match self.current.as_mut() {
            // Held from a meta alone (no announce of it seen yet), or this producer run's.
            Some(c)
                if c.meta_version == announced.meta_version
                    && (c.epoch == 0 || c.epoch == announced.epoch) =>
            {
                let changed = c.producer_id != announced.producer_id
                    || c.epoch != announced.epoch
                    || c.metadata.name != announced.name
                    || c.metadata.summary != announced.summary;
                c.producer_id = announced.producer_id;
                c.epoch = announced.epoch;
                c.metadata.name.clone_from(&announced.name);
                c.metadata.summary.clone_from(&announced.summary);
                if changed {
                    MetadataOutcome::Updated {
                        meta_version: c.meta_version,
                    }
                } else {
                    MetadataOutcome::Unchanged
                }
            }
            _ => MetadataOutcome::Unchanged,
        };
        self.announced = Some(announced);
        Ok(outcome)
    }

    /// A meta makes its version the one in force, with the name and summary of the
    /// latest announce of that version (empty until one arrives: a producer may send
    /// `DataSourceMeta` alone). A repeat of what is held changes nothing.
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
        let version = meta.meta_version();
        let announced = self
            .announced
            .as_ref()
            .filter(|a| a.meta_version == version);
        if let Some(c) = &self.current {
            let same_attributes = c.meta_version == version
                && c.metadata.attributes.len() == count
                && c.metadata
                    .attributes
                    .iter()
                    .zip(meta.attributes())
                    .all(|(held, a)| {
                        held.key.as_bytes() == a.key()
                            && held.format.as_bytes() == a.format()
                            && held.value == a.value()
                    });
            let same_announce = announced.is_none_or(|a| a.epoch == c.epoch);
            if same_attributes && same_announce {
                return Ok(MetadataOutcome::Unchanged);
            }
        }
        let attributes: Vec<Attribute> = meta
            .attributes()
            .map(|a| Attribute {
                key: String::from_utf8_lossy(a.key()).into_owned(),
                format: String::from_utf8_lossy(a.format()).into_owned(),
                value: a.value().to_vec(),
            })
            .collect();
        let metadata = DataSourceMetadata {
            name: announced.map(|a| a.name.clone()).unwrap_or_default(),
            summary: announced.map(|a| a.summary.clone()).unwrap_or_default(),
            attributes,
        };
        // Duplicate keys (every other bound was checked above).
        metadata.validate()?;
        self.current = Some(StreamMetadata {
            meta_version: version,
            producer_id: announced.map_or(0, |a| a.producer_id),
            epoch: announced.map_or(0, |a| a.epoch),
            timestamp_ns: meta.timestamp_ns(),
            metadata,
        });
        Ok(MetadataOutcome::Updated {
            meta_version: version,
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
            l.on_message(&announce(7, 1, 3, b"cam"), 7),
            MetadataOutcome::Unchanged,
            "an announce waits for its meta"
        );
        assert_eq!(l.current(), None);
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
        for _ in 0..3 {
            assert_eq!(
                l.on_message(&announce(7, 1, 3, b"cam"), 7),
                MetadataOutcome::Unchanged
            );
            assert_eq!(
                l.on_message(&meta(7, 1, &[SERIAL]), 7),
                MetadataOutcome::Unchanged
            );
        }
        // The next version.
        l.on_message(&announce(7, 2, 3, b"cam"), 7);
        assert_eq!(l.meta_version(), 1, "version 2 waits for its attributes");
        assert_eq!(
            l.on_message(&meta(7, 2, &[]), 7),
            MetadataOutcome::Updated { meta_version: 2 }
        );
        assert_eq!(
            l.on_message(&announce(8, 9, 4, b"x"), 7),
            MetadataOutcome::Ignored
        );
        assert_eq!(l.meta_version(), 2);
    }

    #[test]
    fn a_new_producer_run_reusing_the_version_number_replaces_the_old_metadata_whole() {
        let mut l = MetadataListener::new();
        l.on_message(&announce(7, 1, 3, b"cam"), 7);
        l.on_message(&meta(7, 1, &[SERIAL]), 7);
        // Epoch 4 starts over at version 1: its name is not mixed with epoch 3's attributes.
        assert_eq!(
            l.on_message(&announce(7, 1, 4, b"other"), 7),
            MetadataOutcome::Unchanged
        );
        assert_eq!(l.current().map(|c| c.metadata.name.as_str()), Some("cam"));
        // Even with equal attributes, the new run's meta brings its announce in.
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Updated { meta_version: 1 }
        );
        assert_eq!(
            l.current().map(|c| (c.epoch, c.metadata.name.as_str())),
            Some((4, "other"))
        );
    }

    #[test]
    fn a_meta_alone_is_taken_and_its_announce_completes_it_later() {
        let mut l = MetadataListener::new();
        // A consumer that joined between the two, or a producer that sends metas only.
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Updated { meta_version: 1 }
        );
        let held = l.current().expect("in force");
        assert_eq!(
            (held.epoch, held.producer_id, held.metadata.name.as_str()),
            (0, 0, "")
        );
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Unchanged
        );
        // An announce of another version changes nothing held.
        assert_eq!(
            l.on_message(&announce(7, 2, 3, b"later"), 7),
            MetadataOutcome::Unchanged
        );
        assert_eq!(
            l.on_message(&announce(7, 1, 3, b"cam"), 7),
            MetadataOutcome::Updated { meta_version: 1 }
        );
        let held = l.current().expect("in force");
        assert_eq!(
            (held.epoch, held.producer_id, held.metadata.name.as_str()),
            (3, 5, "cam")
        );
        assert_eq!(held.metadata.attributes.len(), 1, "the attributes stay");
        assert_eq!(
            l.on_message(&meta(7, 1, &[SERIAL]), 7),
            MetadataOutcome::Unchanged
        );
        // Version 1's attributes are not paired with version 2's announce, and back.
        assert_eq!(
            l.on_message(&meta(7, 2, &[]), 7),
            MetadataOutcome::Updated { meta_version: 2 }
        );
        assert_eq!(l.current().map(|c| c.metadata.name.as_str()), Some(""));
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
