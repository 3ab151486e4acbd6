//! `tp decode`: any schema 900/901/902 message, every field named with its byte offset.
//! Dispatch is on the message header's (schema id, template id); malformed input gets an
//! error naming the byte and the reason.

use std::fmt::Write as _;

use serde_json::{json, Map, Value};

use super::schema::{Block, Field, FieldType, Prim, Schema};

/// SBE message header length.
const HEADER_LEN: usize = 8;

/// Why bytes are not a message: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {at}: {reason}")]
pub struct MalformedMessage {
    /// Offset of the first offending byte.
    pub at: usize,
    /// What is wrong there.
    pub reason: String,
}

fn malformed(at: usize, reason: impl Into<String>) -> MalformedMessage {
    MalformedMessage {
        at,
        reason: reason.into(),
    }
}

/// Why hex text is not bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// A character that is not a hex digit (nor a separator).
    #[error("hex input: character {ch:?} at position {position} is not a hex digit")]
    NotHex {
        /// The character.
        ch: char,
        /// Its position (0-based, in characters).
        position: usize,
    },
    /// An odd number of digits.
    #[error("hex input has an odd number of digits ({0}): the last byte is incomplete")]
    Odd(usize),
    /// Nothing to decode.
    #[error("hex input is empty")]
    Empty,
}

/// Parses hex text: digits with optional `0x` prefix, whitespace, `:` or `-` separators.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, HexError> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut digits = Vec::new();
    for (position, ch) in text.chars().enumerate() {
        match ch.to_digit(16) {
            Some(d) => digits.push(d as u8),
            None if ch.is_whitespace() || ch == ':' || ch == '-' => {}
            None => return Err(HexError::NotHex { ch, position }),
        }
    }
    if digits.is_empty() {
        return Err(HexError::Empty);
    }
    if digits.len() % 2 == 1 {
        return Err(HexError::Odd(digits.len()));
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMessage {
    /// Message name.
    pub name: String,
    /// Schema id.
    pub schema_id: u16,
    /// Template id.
    pub template_id: u16,
    /// Version in the header.
    pub version: u16,
    /// Block length in the header.
    pub block_length: u16,
    /// Bytes the message took.
    pub length: usize,
    /// Bytes after the message (not part of it).
    pub trailing: usize,
    /// Fields as `(path, offset, value)` in wire order, for text output.
    pub fields: Vec<(String, usize, Value)>,
    /// The body as a JSON object (groups as arrays), for `--json`.
    pub body: Value,
    /// Values a receiver would refuse (unknown enum values), with their offsets.
    pub warnings: Vec<String>,
}

impl DecodedMessage {
    /// The message as JSON: header, fields, warnings.
    pub fn to_json(&self) -> Value {
        json!({
            "message": self.name,
            "schemaId": self.schema_id,
            "templateId": self.template_id,
            "version": self.version,
            "blockLength": self.block_length,
            "length": self.length,
            "trailingBytes": self.trailing,
            "fields": self.body,
            "warnings": self.warnings,
        })
    }

    /// The message as text, one field per line.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{} (schema {}, template {}, version {}, block length {}, {} bytes)\n",
            self.name,
            self.schema_id,
            self.template_id,
            self.version,
            self.block_length,
            self.length
        );
        let width = self.fields.iter().map(|f| f.0.len()).max().unwrap_or(0);
        for (path, offset, value) in &self.fields {
            let shown = match value {
                Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            };
            let _ = writeln!(out, "  @{offset:<4} {path:<width$} = {shown}");
        }
        if self.trailing > 0 {
            let _ = writeln!(
                out,
                "  ({} trailing bytes after the message, ignored)",
                self.trailing
            );
        }
        for warning in &self.warnings {
            let _ = writeln!(out, "  warning: {warning}");
        }
        out
    }
}

/// Decodes one message of `schemas` (dispatch on schema id and template id).
pub fn decode_message(
    schemas: &[Schema],
    bytes: &[u8],
) -> Result<DecodedMessage, MalformedMessage> {
    if bytes.len() < HEADER_LEN {
        return Err(malformed(
            bytes.len(),
            format!(
                "input ends inside the 8-byte SBE message header ({} bytes given)",
                bytes.len()
            ),
        ));
    }
    let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let (block_length, template_id, schema_id, version) =
        (u16_at(0), u16_at(2), u16_at(4), u16_at(6));
    let ids: Vec<String> = schemas.iter().map(|s| s.id.to_string()).collect();
    let schema = schemas.iter().find(|s| s.id == schema_id).ok_or_else(|| {
        malformed(
            4,
            format!(
                "schema id {schema_id} (bytes 4-5) is not one of {}",
                ids.join(", ")
            ),
        )
    })?;
    let message = schema.message(template_id).ok_or_else(|| {
        let known: Vec<String> = schema
            .messages
            .iter()
            .map(|m| format!("{} {}", m.template_id, m.body.name))
            .collect();
        malformed(
            2,
            format!(
                "template id {template_id} (bytes 2-3) is no message of schema {schema_id} ({})",
                known.join(", ")
            ),
        )
    })?;
    let mut warnings = Vec::new();
    if version > schema.version {
        warnings.push(format!(
            "bytes 6-7: version {version} is newer than the schema's {}; a receiver refuses it",
            schema.version
        ));
    }
    let mut walker = Walker {
        bytes,
        fields: Vec::new(),
        warnings,
    };
    let (body, end) = walker.block(
        &message.body,
        "",
        HEADER_LEN,
        usize::from(block_length),
        "the message",
    )?;
    Ok(DecodedMessage {
        name: message.body.name.clone(),
        schema_id,
        template_id,
        version,
        block_length,
        length: end,
        trailing: bytes.len() - end,
        fields: walker.fields,
        body,
        warnings: walker.warnings,
    })
}

struct Walker<'a> {
    bytes: &'a [u8],
    fields: Vec<(String, usize, Value)>,
    warnings: Vec<String>,
}

impl Walker<'_> {
    /// Decodes a block at `start` whose encoded block length is `block_length`; returns its
    /// JSON object and the offset after its groups and var data.
    fn block(
        &mut self,
        def: &Block,
        prefix: &str,
        start: usize,
        block_length: usize,
        what: &str,
    ) -> Result<(Value, usize), MalformedMessage> {
        if block_length < def.block_length {
            return Err(malformed(
                start,
                format!(
                    "block length {block_length} of {what} is shorter than the {} bytes {}'s fields need",
                    def.block_length, def.name
                ),
            ));
        }
        let block_end = start + block_length;
        if self.bytes.len() < block_end {
            return Err(malformed(
                self.bytes.len(),
                format!(
                    "input ends inside the fixed block of {} (bytes {start}..{block_end}, {} given)",
                    def.name,
                    self.bytes.len()
                ),
            ));
        }
        let mut object = Map::new();
        for field in &def.fields {
            let value = self.field(field, start + field.offset, prefix);
            self.fields.push((
                format!("{prefix}{}", field.name),
                start + field.offset,
                value.clone(),
            ));
            object.insert(field.name.clone(), value);
        }
        let mut pos = block_end;
        for group in &def.groups {
            let path = format!("{prefix}{}", group.name);
            if self.bytes.len() < pos + 4 {
                return Err(malformed(
                    self.bytes.len(),
                    format!("input ends inside the 4-byte header of group {path} (at byte {pos})"),
                ));
            }
            let entry_length =
                usize::from(u16::from_le_bytes([self.bytes[pos], self.bytes[pos + 1]]));
            let count = usize::from(u16::from_le_bytes([
                self.bytes[pos + 2],
                self.bytes[pos + 3],
            ]));
            self.fields
                .push((format!("{path}.numInGroup"), pos + 2, json!(count)));
            pos += 4;
            let mut entries = Vec::with_capacity(count);
            for index in 0..count {
                let (entry, end) = self.block(
                    group,
                    &format!("{path}[{index}]."),
                    pos,
                    entry_length,
                    &format!("group {path}"),
                )?;
                entries.push(entry);
                pos = end;
            }
            object.insert(group.name.clone(), Value::Array(entries));
        }
        for data in &def.data {
            let path = format!("{prefix}{}", data.name);
            let width = data.length_prim.size();
            if self.bytes.len() < pos + width {
                return Err(malformed(
                    self.bytes.len(),
                    format!("input ends inside the {width}-byte length of var data {path} (at byte {pos})"),
                ));
            }
            let length = read_unsigned(&self.bytes[pos..pos + width]);
            if length > data.max_length {
                return Err(malformed(
                    pos,
                    format!(
                        "var data {path} declares {length} bytes, more than the schema's maximum {}",
                        data.max_length
                    ),
                ));
            }
            let body = pos + width;
            let available = self.bytes.len() - body;
            if length > available as u64 {
                return Err(malformed(
                    pos,
                    format!("var data {path} declares {length} bytes, but only {available} follow"),
                ));
            }
            let raw = &self.bytes[body..body + length as usize];
            let value = if data.ascii {
                if let Some(i) = raw.iter().position(|b| !b.is_ascii()) {
                    self.warnings.push(format!(
                        "byte {}: {path} is declared ASCII but holds byte {:#04x}",
                        body + i,
                        raw[i]
                    ));
                }
                Value::String(String::from_utf8_lossy(raw).into_owned())
            } else {
                Value::String(raw.iter().map(|b| format!("{b:02x}")).collect())
            };
            self.fields.push((path, pos, value.clone()));
            object.insert(data.name.clone(), value);
            pos = body + length as usize;
        }
        Ok((Value::Object(object), pos))
    }

    fn field(&mut self, field: &Field, at: usize, prefix: &str) -> Value {
        match &field.ty {
            FieldType::Constant(text) => text
                .parse::<i64>()
                .map_or_else(|_| json!(text), |n| json!(n)),
            FieldType::Primitive {
                prim: Prim::U8 | Prim::Char,
                length,
            } if *length > 1 => {
                // Byte arrays (reserved pads) as hex, not as lists of numbers.
                Value::String(
                    self.bytes[at..at + length]
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                )
            }
            FieldType::Primitive { prim, length } => {
                let values: Vec<Value> = (0..*length)
                    .map(|i| {
                        let raw = read_raw(&self.bytes[at + i * prim.size()..], *prim);
                        if *length == 1 && field.null == Some(raw) {
                            Value::Null
                        } else {
                            number(*prim, raw)
                        }
                    })
                    .collect();
                if *length == 1 {
                    values.into_iter().next().unwrap_or(Value::Null)
                } else {
                    Value::Array(values)
                }
            }
            FieldType::Enum { name, prim, values } => {
                let raw = read_raw(&self.bytes[at..], *prim);
                if field.null == Some(raw) {
                    return Value::Null;
                }
                match values.iter().find(|(_, v)| *v == raw) {
                    Some((value_name, _)) => json!(value_name),
                    None => {
                        self.warnings.push(format!(
                            "byte {at}: {prefix}{} = {raw} is not a value of enum {name}; a receiver refuses it",
                            field.name
                        ));
                        json!(format!("UNKNOWN({raw})"))
                    }
                }
            }
        }
    }
}

fn read_unsigned(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Raw value of a primitive at the start of `bytes` (the caller checked the length),
/// sign-extended for signed integers, bit pattern for floats.
fn read_raw(bytes: &[u8], prim: Prim) -> i128 {
    let unsigned = read_unsigned(&bytes[..prim.size()]);
    match prim {
        Prim::I8 => i128::from(unsigned as u8 as i8),
        Prim::I16 => i128::from(unsigned as u16 as i16),
        Prim::I32 => i128::from(unsigned as u32 as i32),
        Prim::I64 => i128::from(unsigned as i64),
        _ => i128::from(unsigned),
    }
}

fn number(prim: Prim, raw: i128) -> Value {
    match prim {
        Prim::F32 => json!(f32::from_bits(raw as u32)),
        Prim::F64 => json!(f64::from_bits(raw as u64)),
        _ if prim.signed() => json!(raw as i64),
        _ => json!(raw as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tool::schema::wire_schemas;

    #[test]
    fn hex_accepts_separators_and_names_the_bad_character() {
        assert_eq!(parse_hex("0x01 02:ff-A0"), Ok(vec![1, 2, 0xff, 0xa0]));
        assert_eq!(
            parse_hex("01 0g"),
            Err(HexError::NotHex {
                ch: 'g',
                position: 4
            })
        );
        assert_eq!(parse_hex("012"), Err(HexError::Odd(3)));
        assert_eq!(parse_hex("  "), Err(HexError::Empty));
    }

    #[test]
    fn short_and_unknown_headers_name_the_byte() {
        let schemas = wire_schemas().unwrap();
        let e = decode_message(&schemas, &[1, 2, 3]).unwrap_err();
        assert_eq!(e.at, 3);
        let e = decode_message(&schemas, &[0, 0, 1, 0, 0x39, 0x05, 1, 0]).unwrap_err();
        assert_eq!(e.at, 4, "{e}");
        assert!(e.reason.contains("1337"), "{e}");
        let e = decode_message(&schemas, &[0, 0, 99, 0, 0x85, 0x03, 1, 0]).unwrap_err();
        assert_eq!(e.at, 2, "{e}");
        assert!(e.reason.contains("template id 99"), "{e}");
    }
}
