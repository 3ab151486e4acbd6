//! Typed configuration errors (Driver Model §17, §11).
//!
//! Every variant's message names the offending configuration key (dotted path, e.g.
//! `profiles.default.payload_pools[1].stride_bytes`) and the reason, so an operator can
//! fix the file without reading source code.

use std::fmt;
use std::path::PathBuf;

use super::range::StreamIdRange;

/// Error raised while loading, parsing or validating a [`super::DriverConfig`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        /// Path of the file that could not be read.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The text is not valid TOML.
    #[error("TOML syntax error at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        /// Parser message.
        message: String,
    },

    /// A key that is not part of the configuration surface (often a misspelling).
    #[error("unknown key \"{key}\"{}", did_you_mean(suggestion.as_deref()))]
    UnknownKey {
        /// Full dotted path of the unknown key.
        key: String,
        /// The full path of the known key it most likely meant, if one is close.
        suggestion: Option<String>,
    },

    /// A required key is absent.
    #[error("missing required key \"{key}\"")]
    MissingKey {
        /// Full dotted path of the missing key.
        key: String,
    },

    /// A key holds a value of the wrong TOML type.
    #[error("key \"{key}\": expected {expected}, found {found}")]
    InvalidType {
        /// Full dotted path of the key.
        key: String,
        /// Expected type, in words.
        expected: &'static str,
        /// TOML type actually found.
        found: &'static str,
    },

    /// A key holds a value of the right type but unacceptable content.
    #[error("key \"{key}\": {reason}")]
    InvalidValue {
        /// Full dotted path of the key.
        key: String,
        /// Why the value is unacceptable.
        reason: String,
    },

    /// An environment override could not be parsed.
    #[error("environment variable {var} (key \"{key}\") has invalid value \"{value}\": {reason}")]
    InvalidEnv {
        /// Name of the environment variable.
        var: String,
        /// Configuration key the variable overrides.
        key: String,
        /// The offending value.
        value: String,
        /// Why the value is unacceptable.
        reason: String,
    },

    /// A key that must hold a non-empty string is empty.
    #[error("key \"{key}\": must not be empty")]
    EmptyValue {
        /// Full dotted path of the key.
        key: String,
    },

    /// No `[profiles.<name>]` table is defined.
    #[error("key \"profiles\": at least one profile must be defined")]
    NoProfiles,

    /// A profile has no payload pools.
    #[error("key \"{key}\": a profile must define at least one payload pool")]
    NoPayloadPools {
        /// `profiles.<name>.payload_pools`.
        key: String,
    },

    /// `header_nslots` is zero or not a power of two.
    #[error("key \"{key}\": {value} is not a non-zero power of two")]
    HeaderNslotsNotPowerOfTwo {
        /// `profiles.<name>.header_nslots`.
        key: String,
        /// The offending slot count.
        value: u32,
    },

    /// `stride_bytes` is not a power-of-two multiple of 64.
    #[error(
        "key \"{key}\": {value} is not a power-of-two multiple of 64 bytes (64, 128, 256, ...)"
    )]
    InvalidStrideBytes {
        /// `profiles.<name>.payload_pools[<i>].stride_bytes`.
        key: String,
        /// The offending stride.
        value: u32,
    },

    /// Two pools of one profile share a `pool_id`.
    #[error(
        "key \"{key}\": pool_id {pool_id} is already used by another pool of the same profile"
    )]
    DuplicatePoolId {
        /// `profiles.<name>.payload_pools[<i>].pool_id`.
        key: String,
        /// The duplicated pool id.
        pool_id: u16,
    },

    /// A stream names a profile that is not defined.
    #[error("key \"{key}\": profile \"{profile}\" is not defined under [profiles]")]
    UnknownStreamProfile {
        /// `streams.<name>.profile`.
        key: String,
        /// The undefined profile name.
        profile: String,
    },

    /// `policies.default_profile` names a profile that is not defined.
    #[error("key \"{key}\": default profile \"{profile}\" is not defined under [profiles]")]
    UnknownDefaultProfile {
        /// `policies.default_profile`.
        key: String,
        /// The undefined profile name.
        profile: String,
    },

    /// Two static streams share a stream id.
    #[error("key \"{key}\": stream_id {stream_id} is already used by \"{other_key}\"")]
    DuplicateStreamId {
        /// `streams.<name>.stream_id` of the later stream.
        key: String,
        /// The duplicated stream id.
        stream_id: u32,
        /// Key of the earlier stream using the same id.
        other_key: String,
    },

    /// A static stream id equals the control, announce or QoS stream id.
    #[error("key \"{key}\": stream_id {stream_id} collides with \"{reserved_key}\"")]
    StreamIdReserved {
        /// `streams.<name>.stream_id`.
        key: String,
        /// The colliding stream id.
        stream_id: u32,
        /// The driver key holding the same id (e.g. `driver.control_stream_id`).
        reserved_key: &'static str,
    },

    /// A range has `start > end`.
    #[error("key \"{key}\": range start {} is greater than end {}", range.start, range.end)]
    RangeReversed {
        /// The range key, e.g. `driver.stream_id_range`.
        key: &'static str,
        /// The reversed range.
        range: StreamIdRange,
    },

    /// Two allocation ranges overlap.
    #[error("key \"{key}\": range {range} overlaps \"{other_key}\" ({other})")]
    RangesOverlap {
        /// The later range key.
        key: &'static str,
        /// Its range.
        range: StreamIdRange,
        /// The earlier range key.
        other_key: &'static str,
        /// Its range.
        other: StreamIdRange,
    },

    /// A range contains the control, announce or QoS stream id.
    #[error("key \"{key}\": range {range} contains stream id {stream_id} of \"{reserved_key}\"")]
    RangeContainsReserved {
        /// The range key.
        key: &'static str,
        /// The range.
        range: StreamIdRange,
        /// The reserved id inside the range.
        stream_id: u32,
        /// The driver key holding that id.
        reserved_key: &'static str,
    },

    /// A range contains a statically configured stream id.
    #[error("key \"{key}\": range {range} contains stream id {stream_id} of static stream \"{stream_key}\"")]
    RangeContainsStaticStream {
        /// The range key.
        key: &'static str,
        /// The range.
        range: StreamIdRange,
        /// The static stream id inside the range.
        stream_id: u32,
        /// `streams.<name>.stream_id` of that stream.
        stream_key: String,
    },

    /// `policies.allow_dynamic_streams = true` but `driver.stream_id_range` is empty.
    #[error("key \"policies.allow_dynamic_streams\": dynamic streams are enabled but \"driver.stream_id_range\" is empty or unset (Driver Model §11)")]
    DynamicStreamsWithoutRange,

    /// `shm.permissions_mode` is not a 3- or 4-digit octal string.
    #[error("key \"{key}\": \"{value}\" is not a valid mode: {reason}")]
    InvalidPermissionsMode {
        /// `shm.permissions_mode`.
        key: String,
        /// The offending value.
        value: String,
        /// Why it is invalid.
        reason: String,
    },

    /// `shm.base_dir` or an `shm.allowed_base_dirs` entry is not an acceptable path.
    #[error("key \"{key}\": path \"{}\" {reason}", path.display())]
    InvalidBaseDir {
        /// `shm.base_dir` or `shm.allowed_base_dirs[<i>]`.
        key: String,
        /// The offending path.
        path: PathBuf,
        /// Why it is invalid.
        reason: &'static str,
    },

    /// `shm.namespace` is not a single safe path component.
    #[error("key \"{key}\": namespace \"{value}\" {reason}")]
    InvalidNamespace {
        /// `shm.namespace`.
        key: String,
        /// The offending namespace.
        value: String,
        /// Why it is invalid.
        reason: &'static str,
    },

    /// A key that must be strictly positive is zero.
    #[error("key \"{key}\": must be greater than zero")]
    ZeroValue {
        /// Full dotted path of the key.
        key: &'static str,
    },

    /// `shm.page_size_bytes` is not a power of two.
    #[error("key \"{key}\": {value} is not a non-zero power of two")]
    PageSizeNotPowerOfTwo {
        /// `shm.page_size_bytes`.
        key: &'static str,
        /// The offending page size.
        value: u32,
    },
}

impl ConfigError {
    /// The configuration key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        use ConfigError::*;
        match self {
            Io { .. } | Syntax { .. } => None,
            NoProfiles => Some("profiles"),
            DynamicStreamsWithoutRange => Some("policies.allow_dynamic_streams"),
            UnknownKey { key, .. }
            | MissingKey { key }
            | InvalidType { key, .. }
            | InvalidValue { key, .. }
            | InvalidEnv { key, .. }
            | EmptyValue { key }
            | NoPayloadPools { key }
            | HeaderNslotsNotPowerOfTwo { key, .. }
            | InvalidStrideBytes { key, .. }
            | DuplicatePoolId { key, .. }
            | UnknownStreamProfile { key, .. }
            | UnknownDefaultProfile { key, .. }
            | DuplicateStreamId { key, .. }
            | StreamIdReserved { key, .. }
            | InvalidPermissionsMode { key, .. }
            | InvalidBaseDir { key, .. }
            | InvalidNamespace { key, .. } => Some(key),
            RangeReversed { key, .. }
            | RangesOverlap { key, .. }
            | RangeContainsReserved { key, .. }
            | RangeContainsStaticStream { key, .. }
            | ZeroValue { key }
            | PageSizeNotPowerOfTwo { key, .. } => Some(key),
        }
    }

    /// Builds a [`ConfigError::Syntax`] from a TOML parser error, computing line/column.
    pub(crate) fn from_toml(text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = match err.span() {
            Some(span) => line_column(text, span.start),
            None => (1, 1),
        };
        ConfigError::Syntax {
            line,
            column,
            message: err.message().trim().replace('\n', "; "),
        }
    }
}

/// `; did you mean "KEY"?` for a suggestion, nothing without one.
fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |key| format!("; did you mean \"{key}\"?"))
}

/// 1-based (line, column) of byte `offset` in `text`; column counts characters.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Error returned by the `FromStr` implementations of configuration value types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseValueError(pub(crate) String);

impl ParseValueError {
    /// Human-readable reason.
    pub fn reason(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ParseValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseValueError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // 'x' is after "bé = " (5 chars, 6 bytes).
        assert_eq!(line_column(text, 6 + 6), (2, 6));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn syntax_error_has_position() {
        let text = "[driver]\ncontrol_stream_id = = 3\n";
        let err = match text.parse::<toml::Table>() {
            Err(e) => ConfigError::from_toml(text, &e),
            Ok(_) => panic!("parsed invalid toml"),
        };
        match &err {
            ConfigError::Syntax { line, column, .. } => {
                assert_eq!(*line, 2);
                assert!(*column > 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("line 2"));
        assert_eq!(err.key(), None);
    }
}
