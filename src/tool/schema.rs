//! The wire schemas (`schemas/control.xml`, id 900; `schemas/driver.xml`, id 901;
//! `schemas/bridge.xml`, id 902) read
//! at run time into field tables, so `tp decode` names every field of every message, with
//! its byte offset, straight from the XML the codecs are generated from (it cannot drift
//! from the wire contract). Only the subset of SBE the schemas use is understood:
//! primitive, array, constant and enum types, optional fields with null values, repeating
//! groups (`groupSizeEncoding`) and var data with a length prefix.

use std::collections::HashMap;

use roxmltree::{Document, Node};

/// The control schema's XML (schema 900).
const CONTROL_XML: &str = include_str!("../../schemas/control.xml");
/// The driver schema's XML (schema 901).
const DRIVER_XML: &str = include_str!("../../schemas/driver.xml");
/// The bridge schema's XML (schema 902).
const BRIDGE_XML: &str = include_str!("../../schemas/bridge.xml");

/// An SBE primitive type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    /// `char`.
    Char,
    /// `int8`.
    I8,
    /// `uint8`.
    U8,
    /// `int16`.
    I16,
    /// `uint16`.
    U16,
    /// `int32`.
    I32,
    /// `uint32`.
    U32,
    /// `int64`.
    I64,
    /// `uint64`.
    U64,
    /// `float`.
    F32,
    /// `double`.
    F64,
}

impl Prim {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "char" => Self::Char,
            "int8" => Self::I8,
            "uint8" => Self::U8,
            "int16" => Self::I16,
            "uint16" => Self::U16,
            "int32" => Self::I32,
            "uint32" => Self::U32,
            "int64" => Self::I64,
            "uint64" => Self::U64,
            "float" => Self::F32,
            "double" => Self::F64,
            _ => return None,
        })
    }

    /// Encoded size in bytes.
    pub fn size(self) -> usize {
        match self {
            Self::Char | Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }

    /// Whether the type is signed (floats count as signed).
    pub fn signed(self) -> bool {
        matches!(
            self,
            Self::I8 | Self::I16 | Self::I32 | Self::I64 | Self::F32 | Self::F64
        )
    }

    /// The SBE default null value as raw bits (sign-extended for signed types).
    fn default_null(self) -> i128 {
        match self {
            Self::Char | Self::U8 => u8::MAX.into(),
            Self::U16 => u16::MAX.into(),
            Self::U32 => u32::MAX.into(),
            Self::U64 => u64::MAX.into(),
            Self::I8 => i8::MIN.into(),
            Self::I16 => i16::MIN.into(),
            Self::I32 => i32::MIN.into(),
            Self::I64 => i64::MIN.into(),
            Self::F32 | Self::F64 => i128::MIN,
        }
    }
}

/// What a field holds.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldType {
    /// A primitive, or an array of `length` primitives.
    Primitive {
        /// Element type.
        prim: Prim,
        /// Element count (1 for a scalar).
        length: usize,
    },
    /// A constant: takes no bytes on the wire.
    Constant(String),
    /// An enum over a primitive encoding.
    Enum {
        /// The enum's name.
        name: String,
        /// Its encoding.
        prim: Prim,
        /// `(name, value)` of every valid value.
        values: Vec<(String, i128)>,
    },
}

impl FieldType {
    /// Bytes the field takes in its block.
    pub fn size(&self) -> usize {
        match self {
            Self::Primitive { prim, length } => prim.size() * length,
            Self::Constant(_) => 0,
            Self::Enum { prim, .. } => prim.size(),
        }
    }
}

/// A fixed-size field of a block.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// Schema name.
    pub name: String,
    /// Offset within its block.
    pub offset: usize,
    /// Type.
    pub ty: FieldType,
    /// Raw value meaning "absent", for optional fields.
    pub null: Option<i128>,
}

/// A var-data field.
#[derive(Debug, Clone, PartialEq)]
pub struct VarData {
    /// Schema name.
    pub name: String,
    /// Type of the length prefix.
    pub length_prim: Prim,
    /// Largest length the schema allows.
    pub max_length: u64,
    /// Whether the bytes are ASCII text.
    pub ascii: bool,
}

/// A message body or group entry: fields, then groups, then var data.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// Name (message or group).
    pub name: String,
    /// Bytes the fields need (the schema's block length).
    pub block_length: usize,
    /// Fixed fields.
    pub fields: Vec<Field>,
    /// Repeating groups.
    pub groups: Vec<Block>,
    /// Var data.
    pub data: Vec<VarData>,
}

/// A message of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Template id.
    pub template_id: u16,
    /// Its body.
    pub body: Block,
}

/// One schema's messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Schema id.
    pub id: u16,
    /// Schema version.
    pub version: u16,
    /// Package name.
    pub package: String,
    /// Messages by template id.
    pub messages: Vec<Message>,
}

impl Schema {
    /// The message with `template_id`.
    pub fn message(&self, template_id: u16) -> Option<&Message> {
        self.messages.iter().find(|m| m.template_id == template_id)
    }
}

/// Every wire schema, parsed from the XML compiled into the binary.
pub fn wire_schemas() -> Result<Vec<Schema>, String> {
    [CONTROL_XML, DRIVER_XML, BRIDGE_XML]
        .iter()
        .map(|xml| parse_schema(xml))
        .collect()
}

/// Parses a schema document.
pub fn parse_schema(xml: &str) -> Result<Schema, String> {
    let doc = Document::parse(xml).map_err(|e| format!("schema XML: {e}"))?;
    let root = doc.root_element();
    let attr_num = |node: Node, name: &str| -> Result<u16, String> {
        node.attribute(name)
            .ok_or_else(|| format!("schema has no {name}"))?
            .parse()
            .map_err(|e| format!("schema {name}: {e}"))
    };
    let types = parse_types(root)?;
    let messages = root
        .children()
        .filter(|n| n.tag_name().name() == "message")
        .map(|n| {
            Ok(Message {
                template_id: attr_num(n, "id")?,
                body: parse_block(n, &types)?,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(Schema {
        id: attr_num(root, "id")?,
        version: attr_num(root, "version")?,
        package: root.attribute("package").unwrap_or_default().to_owned(),
        messages,
    })
}

/// Named types: field types, the null value of optional types (SBE declares presence and
/// null values on types; a field of such a type is optional), and var-data encodings as
/// `(length prim, max, ascii)`.
struct Types {
    fields: HashMap<String, FieldType>,
    optional: HashMap<String, Option<i128>>,
    var_data: HashMap<String, (Prim, u64, bool)>,
}

fn parse_types(root: Node) -> Result<Types, String> {
    let mut types = Types {
        fields: HashMap::new(),
        optional: HashMap::new(),
        var_data: HashMap::new(),
    };
    for node in root
        .children()
        .filter(|n| n.tag_name().name() == "types")
        .flat_map(|n| n.children())
        .filter(Node::is_element)
    {
        let name = node.attribute("name").unwrap_or_default().to_owned();
        match node.tag_name().name() {
            "type" => {
                if node.attribute("presence") == Some("optional") {
                    let null = node
                        .attribute("nullValue")
                        .map(str::parse::<i128>)
                        .transpose()
                        .map_err(|e| format!("type {name} nullValue: {e}"))?;
                    types.optional.insert(name.clone(), null);
                }
                let ty = if node.attribute("presence") == Some("constant") {
                    FieldType::Constant(node.text().unwrap_or_default().trim().to_owned())
                } else {
                    FieldType::Primitive {
                        prim: prim_attr(node, "primitiveType")?,
                        length: node
                            .attribute("length")
                            .map_or(Ok(1), str::parse)
                            .map_err(|e| format!("type {name} length: {e}"))?,
                    }
                };
                types.fields.insert(name, ty);
            }
            "enum" => {
                let prim = prim_attr(node, "encodingType")?;
                let values = node
                    .children()
                    .filter(|n| n.tag_name().name() == "validValue")
                    .map(|v| {
                        let text = v.text().unwrap_or_default().trim();
                        let value = text
                            .parse::<i128>()
                            .map_err(|e| format!("enum {name} value {text:?}: {e}"))?;
                        Ok((v.attribute("name").unwrap_or_default().to_owned(), value))
                    })
                    .collect::<Result<_, String>>()?;
                types
                    .fields
                    .insert(name.clone(), FieldType::Enum { name, prim, values });
            }
            "composite" => {
                let parts: Vec<Node> = node.children().filter(Node::is_element).collect();
                let var_data = parts
                    .iter()
                    .find(|p| p.attribute("name") == Some("varData"));
                let length = parts.iter().find(|p| p.attribute("name") == Some("length"));
                if let (Some(var_data), Some(length)) = (var_data, length) {
                    let prim = prim_attr(*length, "primitiveType")?;
                    let max = length
                        .attribute("maxValue")
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(u64::MAX);
                    // The driver schema's `varAsciiEncoding` names no character encoding;
                    // its name says what it holds.
                    let ascii = var_data.attribute("characterEncoding").is_some()
                        || name.ends_with("AsciiEncoding");
                    types.var_data.insert(name, (prim, max, ascii));
                }
            }
            _ => {}
        }
    }
    Ok(types)
}

fn prim_attr(node: Node, attr: &str) -> Result<Prim, String> {
    let raw = node.attribute(attr).unwrap_or_default();
    Prim::parse(raw).ok_or_else(|| format!("unknown primitive type {raw:?}"))
}

fn parse_block(node: Node, types: &Types) -> Result<Block, String> {
    let name = node.attribute("name").unwrap_or_default().to_owned();
    let mut fields = Vec::new();
    let mut groups = Vec::new();
    let mut data = Vec::new();
    let mut offset = 0;
    for child in node.children().filter(Node::is_element) {
        let child_name = child.attribute("name").unwrap_or_default().to_owned();
        let type_name = child.attribute("type").unwrap_or_default();
        match child.tag_name().name() {
            "field" => {
                let ty = match Prim::parse(type_name) {
                    // A primitive field may carry its own array length (reserved pads).
                    Some(prim) => FieldType::Primitive {
                        prim,
                        length: child
                            .attribute("length")
                            .map_or(Ok(1), str::parse)
                            .map_err(|e| format!("field {child_name} length: {e}"))?,
                    },
                    None => types.fields.get(type_name).cloned().ok_or_else(|| {
                        format!("field {name}.{child_name} has unknown type {type_name}")
                    })?,
                };
                if let Some(at) = child.attribute("offset") {
                    offset = at
                        .parse()
                        .map_err(|e| format!("field {child_name} offset: {e}"))?;
                }
                let type_null = types.optional.get(type_name).copied();
                let null = if child.attribute("presence") == Some("optional") || type_null.is_some()
                {
                    let prim = match &ty {
                        FieldType::Primitive { prim, .. } | FieldType::Enum { prim, .. } => *prim,
                        FieldType::Constant(_) => Prim::U8,
                    };
                    // The field's own nullValue (older schemas), else its type's, else the
                    // primitive's SBE default.
                    Some(match child.attribute("nullValue") {
                        Some(raw) => raw
                            .parse::<i128>()
                            .map_err(|e| format!("field {child_name} nullValue: {e}"))?,
                        None => type_null.flatten().unwrap_or_else(|| prim.default_null()),
                    })
                } else {
                    None
                };
                let size = ty.size();
                fields.push(Field {
                    name: child_name,
                    offset,
                    ty,
                    null,
                });
                offset += size;
            }
            "group" => groups.push(parse_block(child, types)?),
            "data" => {
                let (length_prim, max_length, ascii) =
                    types.var_data.get(type_name).copied().ok_or_else(|| {
                        format!("data {name}.{child_name} has unknown type {type_name}")
                    })?;
                data.push(VarData {
                    name: child_name,
                    length_prim,
                    max_length,
                    ascii,
                });
            }
            _ => {}
        }
    }
    let block_length = match node.attribute("blockLength") {
        Some(raw) => raw
            .parse()
            .map_err(|e| format!("{name} blockLength: {e}"))?,
        None => offset,
    };
    Ok(Block {
        name,
        block_length,
        fields,
        groups,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_schemas_parse_with_their_layouts() {
        let schemas = wire_schemas().expect("the wire schemas parse");
        let control = schemas.iter().find(|s| s.id == 900).expect("schema 900");
        let driver = schemas.iter().find(|s| s.id == 901).expect("schema 901");
        let superblock = control.message(50).expect("ShmRegionSuperblock");
        assert_eq!(superblock.body.block_length, 64);
        let slot = control.message(51).expect("SlotHeader");
        assert_eq!(slot.body.block_length, 60);
        let tensor = control.message(52).expect("TensorHeader");
        assert_eq!(tensor.body.block_length, 184);
        let attach = driver.message(1).expect("ShmAttachRequest");
        assert_eq!(attach.body.name, "ShmAttachRequest");
        let role = &attach.body.fields[3];
        assert_eq!((role.name.as_str(), role.offset), ("role", 16));
        let node = attach.body.fields.last().expect("fields");
        assert_eq!(node.null, Some(u32::MAX.into()));
        let pad = tensor.body.fields.last().expect("fields");
        assert_eq!((pad.name.as_str(), pad.ty.size()), ("pad", 109));
    }
}
