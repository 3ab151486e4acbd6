//! Runtime support for the generated SBE codecs: the message header, typed errors and
//! bounds-checked little-endian reads and writes.
//!
//! Decoders validate every length when they wrap a buffer, so accessors never fail; the
//! read helpers still return 0 rather than panic if handed an out-of-range offset.

use thiserror::Error;

/// Encoded length of the SBE message header.
pub const MESSAGE_HEADER_LEN: usize = 8;
/// Encoded length of a repeating group's dimension header (`groupSizeEncoding`).
pub const GROUP_HEADER_LEN: usize = 4;
/// Encoded length of a var-data length prefix (`uint32`).
pub const VAR_DATA_HEADER_LEN: usize = 4;

/// Why a byte string is not a valid message of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The buffer ends before the named part does.
    #[error("message truncated in {at}: need {needed} bytes, have {available}")]
    Truncated {
        /// Which part of the message was cut off.
        at: &'static str,
        /// Bytes the part needs (from its start or from the buffer start).
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The header names another schema.
    #[error("schema id {actual} is not the expected {expected}")]
    SchemaMismatch {
        /// Schema id this codec decodes.
        expected: u16,
        /// Schema id in the header.
        actual: u16,
    },
    /// The header names another template of the right schema.
    #[error("template id {actual} is not the expected {expected}")]
    TemplateMismatch {
        /// Template id this decoder decodes.
        expected: u16,
        /// Template id in the header.
        actual: u16,
    },
    /// No message of the schema has this template id.
    #[error("unknown template id {template_id} for schema {schema_id}")]
    UnknownTemplate {
        /// Schema id.
        schema_id: u16,
        /// Template id in the header.
        template_id: u16,
    },
    /// The sender uses a newer schema version than this codec supports.
    #[error("schema version {actual} is newer than the supported {supported}")]
    UnsupportedVersion {
        /// Highest version this codec supports.
        supported: u16,
        /// Version in the header.
        actual: u16,
    },
    /// A block (message or group entry) is shorter than its fields need.
    #[error("block length {actual} is shorter than the {minimum} bytes the fields need")]
    BlockLengthTooShort {
        /// Minimum block length.
        minimum: u16,
        /// Declared block length.
        actual: usize,
    },
    /// A var-data length exceeds the schema's maximum.
    #[error("var data {field} declares {length} bytes, more than the maximum {max}")]
    VarDataTooLong {
        /// Field path.
        field: &'static str,
        /// Declared length.
        length: u32,
        /// Schema maximum.
        max: u32,
    },
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The destination buffer is too small.
    #[error("buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// A repeating group has more entries than `numInGroup` (u16) can carry.
    #[error("group {group} has {count} entries, more than 65535")]
    GroupTooLarge {
        /// Group name.
        group: &'static str,
        /// Entry count.
        count: usize,
    },
    /// A var-data value exceeds the schema's maximum length.
    #[error("var data {field} is {length} bytes, more than the maximum {max}")]
    VarDataTooLong {
        /// Field path.
        field: &'static str,
        /// Value length.
        length: usize,
        /// Schema maximum.
        max: u32,
    },
}

/// The standard 8-byte SBE message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Length of the message's fixed block.
    pub block_length: u16,
    /// Template (message type) id.
    pub template_id: u16,
    /// Schema id.
    pub schema_id: u16,
    /// Schema version of the sender.
    pub version: u16,
}

impl MessageHeader {
    /// Reads a header from the start of `buf`.
    pub fn read(buf: &[u8]) -> Result<Self, DecodeError> {
        if buf.len() < MESSAGE_HEADER_LEN {
            return Err(DecodeError::Truncated {
                at: "message header",
                needed: MESSAGE_HEADER_LEN,
                available: buf.len(),
            });
        }
        Ok(Self {
            block_length: get_u16(buf, 0),
            template_id: get_u16(buf, 2),
            schema_id: get_u16(buf, 4),
            version: get_u16(buf, 6),
        })
    }

    /// Writes the header at the start of `buf` (caller checked the length).
    pub fn write(&self, buf: &mut [u8]) {
        put_u16(buf, 0, self.block_length);
        put_u16(buf, 2, self.template_id);
        put_u16(buf, 4, self.schema_id);
        put_u16(buf, 6, self.version);
    }

    /// Checks schema id and version.
    pub fn expect_schema(&self, schema_id: u16, max_version: u16) -> Result<(), DecodeError> {
        if self.schema_id != schema_id {
            return Err(DecodeError::SchemaMismatch {
                expected: schema_id,
                actual: self.schema_id,
            });
        }
        if self.version > max_version {
            return Err(DecodeError::UnsupportedVersion {
                supported: max_version,
                actual: self.version,
            });
        }
        Ok(())
    }

    /// Checks schema id, template id and version.
    pub fn expect(
        &self,
        schema_id: u16,
        template_id: u16,
        max_version: u16,
    ) -> Result<(), DecodeError> {
        self.expect_schema(schema_id, max_version)?;
        if self.template_id != template_id {
            return Err(DecodeError::TemplateMismatch {
                expected: template_id,
                actual: self.template_id,
            });
        }
        Ok(())
    }
}

macro_rules! le_access {
    ($($get:ident $put:ident $get_array:ident $put_array:ident $ty:ty),* $(,)?) => {$(
        /// Reads a fixed array of little-endian values at `off` with one bounds check;
        /// zeros if out of range (never panics).
        #[inline]
        pub fn $get_array<const N: usize>(buf: &[u8], off: usize) -> [$ty; N] {
            const SIZE: usize = core::mem::size_of::<$ty>();
            let mut out = [0 as $ty; N];
            if let Some(bytes) = off.checked_add(N * SIZE).and_then(|end| buf.get(off..end)) {
                for (v, chunk) in out.iter_mut().zip(bytes.chunks_exact(SIZE)) {
                    let mut raw = [0u8; SIZE];
                    raw.copy_from_slice(chunk);
                    *v = <$ty>::from_le_bytes(raw);
                }
            }
            out
        }

        /// Writes a fixed array of little-endian values at `off` with one bounds check; a
        /// no-op if out of range (encoders check the length first).
        #[inline]
        pub fn $put_array<const N: usize>(buf: &mut [u8], off: usize, values: &[$ty; N]) {
            const SIZE: usize = core::mem::size_of::<$ty>();
            if let Some(dst) = off.checked_add(N * SIZE).and_then(|end| buf.get_mut(off..end)) {
                for (chunk, v) in dst.chunks_exact_mut(SIZE).zip(values) {
                    chunk.copy_from_slice(&v.to_le_bytes());
                }
            }
        }

        /// Reads a little-endian value at `off`; 0 if out of range (never panics).
        #[inline]
        pub fn $get(buf: &[u8], off: usize) -> $ty {
            const N: usize = core::mem::size_of::<$ty>();
            match off.checked_add(N).and_then(|end| buf.get(off..end)) {
                Some(bytes) => {
                    let mut raw = [0u8; N];
                    raw.copy_from_slice(bytes);
                    <$ty>::from_le_bytes(raw)
                }
                None => 0,
            }
        }

        /// Writes a little-endian value at `off`; a no-op if out of range (encoders check
        /// the length first).
        #[inline]
        pub fn $put(buf: &mut [u8], off: usize, value: $ty) {
            const N: usize = core::mem::size_of::<$ty>();
            if let Some(dst) = off.checked_add(N).and_then(|end| buf.get_mut(off..end)) {
                dst.copy_from_slice(&value.to_le_bytes());
            }
        }
    )*};
}

le_access! {
    get_u8 put_u8 get_u8_array put_u8_array u8,
    get_i8 put_i8 get_i8_array put_i8_array i8,
    get_u16 put_u16 get_u16_array put_u16_array u16,
    get_i16 put_i16 get_i16_array put_i16_array i16,
    get_u32 put_u32 get_u32_array put_u32_array u32,
    get_i32 put_i32 get_i32_array put_i32_array i32,
    get_u64 put_u64 get_u64_array put_u64_array u64,
    get_i64 put_i64 get_i64_array put_i64_array i64,
}

/// Zero-fills `buf[from..to]` (block padding).
#[inline]
pub fn zero(buf: &mut [u8], from: usize, to: usize) {
    if let Some(dst) = buf.get_mut(from..to) {
        dst.fill(0);
    }
}

/// Writes a var-data value (u32 length + bytes) at `pos`; returns the next position.
#[inline]
pub fn put_var_data(buf: &mut [u8], pos: usize, value: &[u8]) -> usize {
    // Lengths were checked against the schema maximum (<= 2^30) before writing.
    put_u32(buf, pos, value.len() as u32);
    let start = pos + VAR_DATA_HEADER_LEN;
    if let Some(dst) = buf.get_mut(start..start + value.len()) {
        dst.copy_from_slice(value);
    }
    start + value.len()
}

/// The bytes of a validated var-data field whose length prefix is at `pos`.
#[inline]
pub fn var_data(buf: &[u8], pos: usize) -> &[u8] {
    let start = pos.saturating_add(VAR_DATA_HEADER_LEN);
    let len = get_u32(buf, pos) as usize;
    start
        .checked_add(len)
        .and_then(|end| buf.get(start..end))
        .unwrap_or(&[])
}

/// Checks a var-data value against the schema maximum before encoding.
#[inline]
pub fn check_var_len(field: &'static str, length: usize, max: u32) -> Result<(), EncodeError> {
    if length > max as usize {
        return Err(EncodeError::VarDataTooLong { field, length, max });
    }
    Ok(())
}

/// Validates a var-data field at `pos`; returns the position after it.
pub fn skip_var_data(
    buf: &[u8],
    pos: usize,
    max: u32,
    field: &'static str,
) -> Result<usize, DecodeError> {
    let start = pos
        .checked_add(VAR_DATA_HEADER_LEN)
        .filter(|end| *end <= buf.len())
        .ok_or(DecodeError::Truncated {
            at: field,
            needed: pos.saturating_add(VAR_DATA_HEADER_LEN),
            available: buf.len(),
        })?;
    let length = get_u32(buf, pos);
    if length > max {
        return Err(DecodeError::VarDataTooLong { field, length, max });
    }
    let end = start.saturating_add(length as usize);
    if end > buf.len() {
        return Err(DecodeError::Truncated {
            at: field,
            needed: end,
            available: buf.len(),
        });
    }
    Ok(end)
}

/// Validates a fixed block of `len` bytes at `pos`; returns the position after it.
pub fn skip_block(
    buf: &[u8],
    pos: usize,
    len: usize,
    at: &'static str,
) -> Result<usize, DecodeError> {
    let end = pos.saturating_add(len);
    if end > buf.len() {
        return Err(DecodeError::Truncated {
            at,
            needed: end,
            available: buf.len(),
        });
    }
    Ok(end)
}

/// Validates a group dimension header at `pos`; returns (entry block length, count,
/// position of the first entry).
pub fn read_group_header(
    buf: &[u8],
    pos: usize,
    min_block: u16,
    group: &'static str,
) -> Result<(usize, usize, usize), DecodeError> {
    let first = skip_block(buf, pos, GROUP_HEADER_LEN, group)?;
    let entry_len = get_u16(buf, pos);
    if entry_len < min_block {
        return Err(DecodeError::BlockLengthTooShort {
            minimum: min_block,
            actual: entry_len as usize,
        });
    }
    Ok((entry_len as usize, get_u16(buf, pos + 2) as usize, first))
}

/// How a fixed-size field is present on the wire (SBE `presence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Always carries a value.
    Required,
    /// Carries its type's null value when absent.
    Optional,
    /// Not encoded: the schema fixes the value.
    Constant,
}

/// The layout the build-time generator gave one fixed-size field: what a codec generated
/// from the same schema by any other SBE tool must agree with (docs/DESIGN.md, "Foreign
/// SBE users").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    /// Schema name of the field.
    pub name: &'static str,
    /// Field id.
    pub id: u16,
    /// Byte offset within the block.
    pub offset: usize,
    /// Encoded size in bytes (0 for constants).
    pub size: usize,
    /// Presence.
    pub presence: Presence,
    /// Null value of an optional field as its raw little-endian bits (zero-extended).
    pub null_bits: Option<u64>,
}

/// The layout of one var-data field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataLayout {
    /// Schema name of the field.
    pub name: &'static str,
    /// Field id.
    pub id: u16,
    /// `characterEncoding` of the data (None: bytes, not text).
    pub character_encoding: Option<&'static str>,
}

/// The layout of a message or a repeating group's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLayout {
    /// Message name, or `Message.group` for a group.
    pub path: &'static str,
    /// Template id of a message, group id of a group.
    pub id: u16,
    /// Length of the fixed block.
    pub block_length: u16,
    /// Fixed-size fields in schema order.
    pub fields: &'static [FieldLayout],
    /// Var-data fields in schema order.
    pub data: &'static [DataLayout],
}
