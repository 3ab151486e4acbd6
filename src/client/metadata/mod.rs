//! Per-data-source metadata (Wire Spec §10.3, §15.11): what a producer says about its
//! stream beyond the frames, versioned by `meta_version`.
//!
//! A producer sets a [`DataSourceMetadata`] (a name, a summary and a set of attributes,
//! each a key, a format and value bytes). Every change bumps `meta_version`; the producer
//! then sends `DataSourceAnnounce` (name, summary, version, epoch) followed by
//! `DataSourceMeta` (the attributes) on the metadata stream, on change and again every
//! period so that a consumer that joins late learns the metadata within one period. Every
//! frame committed after the change carries the new version in `SlotHeader.meta_version`
//! and `FrameDescriptor.meta_version`, which ties the frame to the metadata it was taken
//! under. Version 0 means "no metadata".
//!
//! Sizes are bounded on both sides (see the `MAX_*` constants): a producer refuses
//! metadata beyond them with a [`MetadataError`], a consumer drops and counts messages
//! beyond them. The limits keep one `DataSourceMeta` within [`MAX_META_MESSAGE_LEN`],
//! which fits a single Aeron message on the default channel (term length 4 MiB: messages
//! up to 512 KiB); a metadata channel with a term length below 512 KiB may refuse the
//! largest metadata (counted as a send failure by the producer).
//!
//! - [`publisher`]: the producer side (version, periodic re-announce).
//! - [`listener`]: the consumer side (assembling announce + meta, change detection,
//!   hostile-input checks).

pub mod listener;
pub mod publisher;

pub use listener::{MetadataListener, MetadataOutcome, StreamMetadata};
pub use publisher::{MetadataPublisher, DEFAULT_METADATA_INTERVAL};

use crate::protocol::codec::MESSAGE_HEADER_LEN;

/// Longest data source name, in bytes (printable ASCII).
pub const MAX_NAME_LEN: usize = 256;
/// Longest summary, in bytes (printable ASCII).
pub const MAX_SUMMARY_LEN: usize = 1024;
/// Most attributes in one version.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute key, in bytes (printable ASCII, not empty).
pub const MAX_KEY_LEN: usize = 128;
/// Longest attribute format, in bytes (printable ASCII, not empty; e.g. `text/plain`,
/// `application/json`, `sbe:<schemaId>.<templateId>`).
pub const MAX_FORMAT_LEN: usize = 128;
/// Longest attribute value, in bytes (any bytes).
pub const MAX_VALUE_LEN: usize = 16 * 1024;
/// Longest encoded `DataSourceMeta` (with its message header) a producer sends or a
/// consumer accepts.
pub const MAX_META_MESSAGE_LEN: usize = 64 * 1024;
/// Longest encoded `DataSourceAnnounce` (with its message header): the fixed block, the
/// two length prefixes and the longest name and summary.
pub const MAX_ANNOUNCE_MESSAGE_LEN: usize = MESSAGE_HEADER_LEN
    + crate::protocol::control::data_source_announce::BLOCK_LENGTH as usize
    + 8
    + MAX_NAME_LEN
    + MAX_SUMMARY_LEN;

/// One attribute of a data source (Wire Spec §10.3.2): `key` names it, `format` says how
/// to read `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// What the attribute is, e.g. `camera_serial`.
    pub key: String,
    /// How `value` is encoded, e.g. `text/plain`.
    pub format: String,
    /// The value bytes.
    pub value: Vec<u8>,
}

impl Attribute {
    /// An attribute from its parts.
    pub fn new(
        key: impl Into<String>,
        format: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            key: key.into(),
            format: format.into(),
            value: value.into(),
        }
    }
}

/// What a producer says about its data source: the `DataSourceAnnounce` name and summary
/// and the `DataSourceMeta` attributes of one `meta_version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataSourceMetadata {
    /// Human-readable name (may be empty).
    pub name: String,
    /// Nominal dtype/shape summary or any short description (may be empty).
    pub summary: String,
    /// The attributes; keys are unique.
    pub attributes: Vec<Attribute>,
}

impl DataSourceMetadata {
    /// Metadata with a name and nothing else.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Sets the summary.
    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = summary.into();
        self
    }

    /// Adds an attribute (replacing one with the same key).
    pub fn with_attribute(
        mut self,
        key: impl Into<String>,
        format: impl Into<String>,
        value: impl Into<Vec<u8>>,
    ) -> Self {
        self.set_attribute(Attribute::new(key, format, value));
        self
    }

    /// Adds `attribute`, replacing one with the same key.
    pub fn set_attribute(&mut self, attribute: Attribute) {
        match self.attributes.iter_mut().find(|a| a.key == attribute.key) {
            Some(existing) => *existing = attribute,
            None => self.attributes.push(attribute),
        }
    }

    /// Removes the attribute `key`; returns whether there was one.
    pub fn remove_attribute(&mut self, key: &str) -> bool {
        let before = self.attributes.len();
        self.attributes.retain(|a| a.key != key);
        before != self.attributes.len()
    }

    /// The attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.key == key)
    }

    /// Checks every bound of this module: text fields printable ASCII within their
    /// lengths, keys and formats not empty, keys unique, at most [`MAX_ATTRIBUTES`], and
    /// the encoded `DataSourceMeta` within [`MAX_META_MESSAGE_LEN`].
    pub fn validate(&self) -> Result<(), MetadataError> {
        check_text(MetaField::Name, self.name.as_bytes(), MAX_NAME_LEN, true)?;
        check_text(
            MetaField::Summary,
            self.summary.as_bytes(),
            MAX_SUMMARY_LEN,
            true,
        )?;
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(MetadataError::TooManyAttributes {
                count: self.attributes.len(),
                max: MAX_ATTRIBUTES,
            });
        }
        for (i, a) in self.attributes.iter().enumerate() {
            check_text(MetaField::Key, a.key.as_bytes(), MAX_KEY_LEN, false)?;
            check_text(
                MetaField::Format,
                a.format.as_bytes(),
                MAX_FORMAT_LEN,
                false,
            )?;
            if a.value.len() > MAX_VALUE_LEN {
                return Err(MetadataError::TooLong {
                    field: MetaField::Value,
                    len: a.value.len(),
                    max: MAX_VALUE_LEN,
                });
            }
            if self.attributes[..i].iter().any(|b| b.key == a.key) {
                return Err(MetadataError::DuplicateKey { key: a.key.clone() });
            }
        }
        let len = meta_message_len(
            self.attributes
                .iter()
                .map(|a| (a.key.len(), a.format.len(), a.value.len())),
        );
        if len > MAX_META_MESSAGE_LEN {
            return Err(MetadataError::TooLarge {
                len,
                max: MAX_META_MESSAGE_LEN,
            });
        }
        Ok(())
    }
}

/// Encoded length of a `DataSourceMeta` (with message header) whose attributes have the
/// given key, format and value lengths.
pub(crate) fn meta_message_len(attributes: impl Iterator<Item = (usize, usize, usize)>) -> usize {
    use crate::protocol::control::data_source_meta;
    // Group header (4) + per entry three var-data length prefixes (4 each).
    attributes.fold(
        MESSAGE_HEADER_LEN + data_source_meta::BLOCK_LENGTH as usize + 4,
        |len, (k, f, v)| len.saturating_add(12 + k + f + v),
    )
}

/// The text fields of metadata, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    /// `DataSourceAnnounce.name`.
    Name,
    /// `DataSourceAnnounce.summary`.
    Summary,
    /// An attribute key.
    Key,
    /// An attribute format.
    Format,
    /// An attribute value.
    Value,
}

impl std::fmt::Display for MetaField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Name => "name",
            Self::Summary => "summary",
            Self::Key => "attribute key",
            Self::Format => "attribute format",
            Self::Value => "attribute value",
        })
    }
}

/// Why metadata was refused (by a producer setting it, or a consumer receiving it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A field is longer than its bound.
    #[error("{field} is {len} bytes, at most {max} allowed")]
    TooLong {
        /// The field.
        field: MetaField,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A text field holds a byte outside printable ASCII (the schema's varAscii).
    #[error("{field} must be printable ASCII")]
    NotAscii {
        /// The field.
        field: MetaField,
    },
    /// An attribute key or format is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field.
        field: MetaField,
    },
    /// More attributes than [`MAX_ATTRIBUTES`].
    #[error("{count} attributes, at most {max} allowed")]
    TooManyAttributes {
        /// How many were given.
        count: usize,
        /// The bound.
        max: usize,
    },
    /// Two attributes share a key.
    #[error("attribute key {key:?} appears twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// The encoded `DataSourceMeta` exceeds [`MAX_META_MESSAGE_LEN`].
    #[error("encoded DataSourceMeta is {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The bound.
        max: usize,
    },
}

impl MetadataError {
    /// Whether the refusal is about size (as opposed to content).
    pub fn is_oversize(&self) -> bool {
        matches!(
            self,
            Self::TooLong { .. } | Self::TooManyAttributes { .. } | Self::TooLarge { .. }
        )
    }
}

/// Checks a varAscii field: within `max`, printable ASCII, non-empty unless allowed.
pub(crate) fn check_text(
    field: MetaField,
    text: &[u8],
    max: usize,
    may_be_empty: bool,
) -> Result<(), MetadataError> {
    if text.len() > max {
        return Err(MetadataError::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    if text.is_empty() && !may_be_empty {
        return Err(MetadataError::Empty { field });
    }
    if !text.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Err(MetadataError::NotAscii { field });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_within_the_bounds_validates() {
        let meta = DataSourceMetadata::named("cam0")
            .with_summary("uint8 480x640")
            .with_attribute("camera_serial", "text/plain", b"SN-1".to_vec())
            .with_attribute("camera_serial", "text/plain", b"SN-2".to_vec());
        assert_eq!(meta.attributes.len(), 1, "same key replaces");
        assert_eq!(
            meta.attribute("camera_serial").map(|a| &a.value[..]),
            Some(&b"SN-2"[..])
        );
        assert_eq!(meta.validate(), Ok(()));
    }

    #[test]
    fn every_bound_is_refused_with_its_own_error() {
        let long = |n| "x".repeat(n);
        assert!(matches!(
            DataSourceMetadata::named(long(MAX_NAME_LEN + 1)).validate(),
            Err(MetadataError::TooLong {
                field: MetaField::Name,
                ..
            })
        ));
        assert_eq!(
            DataSourceMetadata::named(long(MAX_NAME_LEN)).validate(),
            Ok(())
        );
        assert_eq!(
            DataSourceMetadata::named("caf\u{e9}").validate(),
            Err(MetadataError::NotAscii {
                field: MetaField::Name
            })
        );
        assert_eq!(
            DataSourceMetadata::default()
                .with_attribute("", "text/plain", vec![])
                .validate(),
            Err(MetadataError::Empty {
                field: MetaField::Key
            })
        );
        assert_eq!(
            DataSourceMetadata::default()
                .with_attribute("k", "", vec![])
                .validate(),
            Err(MetadataError::Empty {
                field: MetaField::Format
            })
        );
        let value_too_long = DataSourceMetadata::default().with_attribute(
            "k",
            "application/octet-stream",
            vec![0; MAX_VALUE_LEN + 1],
        );
        assert!(matches!(
            value_too_long.validate(),
            Err(MetadataError::TooLong {
                field: MetaField::Value,
                ..
            })
        ));
        let mut many = DataSourceMetadata::default();
        for i in 0..=MAX_ATTRIBUTES {
            many.set_attribute(Attribute::new(format!("k{i}"), "text/plain", vec![]));
        }
        assert_eq!(
            many.validate(),
            Err(MetadataError::TooManyAttributes {
                count: MAX_ATTRIBUTES + 1,
                max: MAX_ATTRIBUTES
            })
        );
        let mut big = DataSourceMetadata::default();
        for i in 0..5 {
            big.set_attribute(Attribute::new(format!("k{i}"), "b", vec![0; MAX_VALUE_LEN]));
        }
        assert!(matches!(
            big.validate(),
            Err(MetadataError::TooLarge { .. })
        ));
        let mut dup = DataSourceMetadata::default();
        dup.attributes
            .push(Attribute::new("k", "text/plain", vec![]));
        dup.attributes
            .push(Attribute::new("k", "text/plain", vec![]));
        assert_eq!(
            dup.validate(),
            Err(MetadataError::DuplicateKey { key: "k".into() })
        );
    }

    #[test]
    fn the_computed_length_is_the_encoded_length() {
        use crate::protocol::control::{DataSourceMeta, DataSourceMetaAttributes};
        let entries = [
            DataSourceMetaAttributes {
                key: b"a",
                format: b"text/plain",
                value: b"hello",
            },
            DataSourceMetaAttributes {
                key: b"bb",
                format: b"x",
                value: b"",
            },
        ];
        let meta = DataSourceMeta {
            stream_id: 1,
            meta_version: 2,
            timestamp_ns: 3,
            attributes: &entries,
        };
        assert_eq!(
            meta.encoded_len(),
            meta_message_len(
                entries
                    .iter()
                    .map(|e| (e.key.len(), e.format.len(), e.value.len()))
            )
        );
    }
}
