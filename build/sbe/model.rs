//! SBE schema model: parses an SBE 1.0 message schema (XML) into the subset this
//! project's schemas use, and computes the packed field offsets.
//!
//! Supported: primitive types, named primitive types (incl. fixed arrays and
//! `presence="constant"`), uint8/int16/int32 enums, optional primitives (the null value
//! comes from the named `<type>`, else the primitive's SBE default) and optional enums
//! (null = the encoding's SBE default), repeating groups (with fixed fields and var data,
//! not nested), var data (`length` uint32 + `varData`, with its `characterEncoding`),
//! explicit message `blockLength`. Anything else is refused with a message naming the
//! construct, so the build fails loudly instead of generating a wrong codec. That includes
//! `nullValue` and `length` on a `<field>`: sbe.xsd does not allow them there and sbe-tool
//! ignores them, so a schema using them would mean one thing to us and another to every
//! other SBE implementation.

use std::collections::BTreeMap;

/// A primitive SBE type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prim {
    Char,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
}

impl Prim {
    pub fn parse(name: &str) -> Option<Prim> {
        Some(match name {
            "char" => Prim::Char,
            "int8" => Prim::I8,
            "uint8" => Prim::U8,
            "int16" => Prim::I16,
            "uint16" => Prim::U16,
            "int32" => Prim::I32,
            "uint32" => Prim::U32,
            "int64" => Prim::I64,
            "uint64" => Prim::U64,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            Prim::Char | Prim::I8 | Prim::U8 => 1,
            Prim::I16 | Prim::U16 => 2,
            Prim::I32 | Prim::U32 => 4,
            Prim::I64 | Prim::U64 => 8,
        }
    }

    pub fn rust(self) -> &'static str {
        match self {
            Prim::Char | Prim::U8 => "u8",
            Prim::I8 => "i8",
            Prim::I16 => "i16",
            Prim::U16 => "u16",
            Prim::I32 => "i32",
            Prim::U32 => "u32",
            Prim::I64 => "i64",
            Prim::U64 => "u64",
        }
    }
}

/// An enum type.
#[derive(Clone, Debug)]
pub struct EnumDef {
    pub name: String,
    pub encoding: Prim,
    /// (SBE name, value) in schema order.
    pub values: Vec<(String, i64)>,
}

/// A named simple type (`<type>` under `<types>`).
#[derive(Clone, Debug)]
pub struct SimpleType {
    pub prim: Prim,
    /// Array length (1 = scalar).
    pub length: usize,
    pub optional: bool,
    pub null_value: Option<String>,
    pub constant: Option<String>,
}

/// What a field's type resolves to.
#[derive(Clone, Debug)]
pub enum FieldKind {
    /// Scalar primitive; `null` is the raw null sentinel when optional.
    Scalar { prim: Prim, null: Option<String> },
    /// Fixed array of primitives.
    Array { prim: Prim, length: usize },
    /// Constant: not encoded.
    Constant { prim: Prim, value: String },
    /// Enum; `null` is the raw null sentinel when optional.
    Enum {
        def: String,
        prim: Prim,
        null: Option<String>,
    },
}

/// A fixed-size field of a message or group block.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub id: u16,
    pub kind: FieldKind,
    pub offset: usize,
    pub size: usize,
}

/// A variable-length data field.
#[derive(Clone, Debug)]
pub struct DataField {
    pub name: String,
    pub id: u16,
    pub max_len: u32,
    /// `characterEncoding` of the var-data encoding's `varData` (text when present).
    pub character_encoding: Option<String>,
}

/// A repeating group (not nested).
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub id: u16,
    pub block_length: usize,
    pub fields: Vec<Field>,
    pub data: Vec<DataField>,
}

/// A message.
#[derive(Clone, Debug)]
pub struct Message {
    pub name: String,
    pub id: u16,
    pub block_length: usize,
    pub fields: Vec<Field>,
    pub groups: Vec<Group>,
    pub data: Vec<DataField>,
}

/// A whole schema.
#[derive(Clone, Debug)]
pub struct Schema {
    pub package: String,
    pub id: u16,
    pub version: u16,
    pub enums: Vec<EnumDef>,
    pub messages: Vec<Message>,
}

struct Types {
    simple: BTreeMap<String, SimpleType>,
    enums: BTreeMap<String, EnumDef>,
    /// Var-data encodings: (maximum length, character encoding).
    var_data: BTreeMap<String, (u32, Option<String>)>,
}

fn attr<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Result<&'a str, String> {
    node.attribute(name)
        .ok_or_else(|| format!("<{}> is missing attribute `{name}`", node.tag_name().name()))
}

fn parse_num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what}: `{s}` is not a valid number"))
}

/// Parses a schema document.
pub fn parse(xml: &str) -> Result<Schema, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "messageSchema" {
        return Err("root element is not messageSchema".into());
    }
    if root.attribute("byteOrder").unwrap_or("littleEndian") != "littleEndian" {
        return Err("only littleEndian schemas are supported".into());
    }
    let mut types = Types {
        simple: BTreeMap::new(),
        enums: BTreeMap::new(),
        var_data: BTreeMap::new(),
    };
    let mut enum_order = Vec::new();
    for t in root.children().filter(|n| n.has_tag_name("types")) {
        for n in t.children().filter(|n| n.is_element()) {
            match n.tag_name().name() {
                "type" => {
                    let name = attr(n, "name")?.to_string();
                    let prim = Prim::parse(attr(n, "primitiveType")?)
                        .ok_or_else(|| format!("type {name}: unsupported primitiveType"))?;
                    let length = match n.attribute("length") {
                        Some(l) => parse_num(l, &name)?,
                        None => 1,
                    };
                    let presence = n.attribute("presence").unwrap_or("required");
                    let constant = if presence == "constant" {
                        Some(n.text().unwrap_or("").trim().to_string())
                    } else {
                        None
                    };
                    types.simple.insert(
                        name,
                        SimpleType {
                            prim,
                            length,
                            optional: presence == "optional",
                            null_value: n.attribute("nullValue").map(str::to_string),
                            constant,
                        },
                    );
                }
                "enum" => {
                    let name = attr(n, "name")?.to_string();
                    let encoding = Prim::parse(attr(n, "encodingType")?)
                        .ok_or_else(|| format!("enum {name}: unsupported encodingType"))?;
                    let mut values = Vec::new();
                    for v in n.children().filter(|c| c.has_tag_name("validValue")) {
                        let vname = attr(v, "name")?.to_string();
                        let value = parse_num(v.text().unwrap_or(""), &vname)?;
                        values.push((vname, value));
                    }
                    enum_order.push(name.clone());
                    types.enums.insert(
                        name.clone(),
                        EnumDef {
                            name,
                            encoding,
                            values,
                        },
                    );
                }
                "composite" => parse_composite(n, &mut types)?,
                other => return Err(format!("unsupported type element <{other}>")),
            }
        }
    }

    let mut messages = Vec::new();
    for m in root.children().filter(|n| n.has_tag_name("message")) {
        messages.push(parse_message(m, &types)?);
    }
    Ok(Schema {
        package: attr(root, "package")?.to_string(),
        id: parse_num(attr(root, "id")?, "schema id")?,
        version: parse_num(root.attribute("version").unwrap_or("0"), "schema version")?,
        enums: enum_order
            .iter()
            .filter_map(|n| types.enums.get(n).cloned())
            .collect(),
        messages,
    })
}

/// Composites: the standard header and group dimension are assumed to have their
/// standard layouts (checked); var-data encodings record their maximum length.
fn parse_composite(n: roxmltree::Node, types: &mut Types) -> Result<(), String> {
    let name = attr(n, "name")?.to_string();
    let parts: Vec<(String, String, Option<String>)> = n
        .children()
        .filter(|c| c.has_tag_name("type"))
        .map(|c| {
            Ok((
                attr(c, "name")?.to_string(),
                attr(c, "primitiveType")?.to_string(),
                c.attribute("maxValue").map(str::to_string),
            ))
        })
        .collect::<Result<_, String>>()?;
    let shape: Vec<(&str, &str)> = parts
        .iter()
        .map(|(a, b, _)| (a.as_str(), b.as_str()))
        .collect();
    match name.as_str() {
        "messageHeader" => {
            let std = [
                ("blockLength", "uint16"),
                ("templateId", "uint16"),
                ("schemaId", "uint16"),
                ("version", "uint16"),
            ];
            if shape != std {
                return Err("messageHeader must be the standard 8-byte header".into());
            }
        }
        "groupSizeEncoding" => {
            if shape != [("blockLength", "uint16"), ("numInGroup", "uint16")] {
                return Err(
                    "groupSizeEncoding must be uint16 blockLength + uint16 numInGroup".into(),
                );
            }
        }
        _ => {
            if shape != [("length", "uint32"), ("varData", "uint8")] {
                return Err(format!(
                    "composite {name}: only var-data encodings (uint32 length + uint8 varData) are supported"
                ));
            }
            let max = match &parts[0].2 {
                Some(m) => parse_num(m, &name)?,
                None => u32::MAX,
            };
            let encoding = n
                .children()
                .find(|c| c.has_tag_name("type") && c.attribute("name") == Some("varData"))
                .and_then(|c| c.attribute("characterEncoding"))
                .map(str::to_string);
            types.var_data.insert(name, (max, encoding));
        }
    }
    Ok(())
}

fn resolve_field(n: roxmltree::Node, types: &Types, offset: usize) -> Result<Field, String> {
    let name = attr(n, "name")?.to_string();
    let id = parse_num(attr(n, "id")?, &name)?;
    let ty = attr(n, "type")?;
    let presence = n.attribute("presence");
    for not_sbe in ["nullValue", "length"] {
        if n.attribute(not_sbe).is_some() {
            return Err(format!(
                "field {name}: `{not_sbe}` on <field> is not SBE (sbe.xsd refuses it, sbe-tool \
                 ignores it); declare a <type> with it and use that type"
            ));
        }
    }
    if presence == Some("constant") {
        return Err(format!(
            "field {name}: presence=\"constant\" on <field> is not supported; use a constant <type>"
        ));
    }
    let (kind, size) = if let Some(prim) = Prim::parse(ty) {
        let optional = presence == Some("optional");
        let null = optional.then(|| default_null(prim));
        (FieldKind::Scalar { prim, null }, prim.size())
    } else if let Some(st) = types.simple.get(ty) {
        if let Some(value) = &st.constant {
            (
                FieldKind::Constant {
                    prim: st.prim,
                    value: value.clone(),
                },
                0,
            )
        } else if st.length > 1 {
            (
                FieldKind::Array {
                    prim: st.prim,
                    length: st.length,
                },
                st.prim.size() * st.length,
            )
        } else {
            let optional = presence.map(|p| p == "optional").unwrap_or(st.optional);
            let null = optional.then(|| {
                st.null_value
                    .clone()
                    .unwrap_or_else(|| default_null(st.prim))
            });
            (
                FieldKind::Scalar {
                    prim: st.prim,
                    null,
                },
                st.prim.size(),
            )
        }
    } else if let Some(e) = types.enums.get(ty) {
        // SBE: an optional enum's null is its encoding type's default null value.
        let null = (presence == Some("optional")).then(|| default_null(e.encoding));
        if let Some(null_raw) = &null {
            let raw: i64 = parse_num(null_raw, &name)?;
            if e.values.iter().any(|(_, v)| *v == raw) {
                return Err(format!("field {name}: nullValue matches an enum constant"));
            }
        }
        (
            FieldKind::Enum {
                def: e.name.clone(),
                prim: e.encoding,
                null,
            },
            e.encoding.size(),
        )
    } else {
        return Err(format!("field {name}: unknown type {ty}"));
    };
    Ok(Field {
        name,
        id,
        kind,
        offset,
        size,
    })
}

fn default_null(prim: Prim) -> String {
    match prim {
        Prim::Char => "0".into(),
        Prim::I8 => i8::MIN.to_string(),
        Prim::U8 => u8::MAX.to_string(),
        Prim::I16 => i16::MIN.to_string(),
        Prim::U16 => u16::MAX.to_string(),
        Prim::I32 => i32::MIN.to_string(),
        Prim::U32 => u32::MAX.to_string(),
        Prim::I64 => i64::MIN.to_string(),
        Prim::U64 => u64::MAX.to_string(),
    }
}

/// A parsed body: fields, groups, data and the fixed block's computed length.
type Body = (Vec<Field>, Vec<Group>, Vec<DataField>, usize);

/// Fields, groups and data of a message or group body, in schema order; SBE requires
/// fields first, then groups, then data.
fn parse_body(n: roxmltree::Node, types: &Types, owner: &str) -> Result<Body, String> {
    let mut fields = Vec::new();
    let mut groups = Vec::new();
    let mut data = Vec::new();
    let mut offset = 0usize;
    for c in n.children().filter(|c| c.is_element()) {
        match c.tag_name().name() {
            "field" => {
                if !groups.is_empty() || !data.is_empty() {
                    return Err(format!("{owner}: field after group/data"));
                }
                if c.attribute("offset").is_some() {
                    return Err(format!("{owner}: explicit field offsets are not supported"));
                }
                let f = resolve_field(c, types, offset)?;
                offset += f.size;
                fields.push(f);
            }
            "group" => {
                if !data.is_empty() {
                    return Err(format!("{owner}: group after data"));
                }
                let gname = attr(c, "name")?.to_string();
                let dim = c.attribute("dimensionType").unwrap_or("groupSizeEncoding");
                if dim != "groupSizeEncoding" {
                    return Err(format!("{owner}.{gname}: unsupported dimensionType {dim}"));
                }
                let (gf, gg, gd, glen) = parse_body(c, types, &format!("{owner}.{gname}"))?;
                if !gg.is_empty() {
                    return Err(format!("{owner}.{gname}: nested groups are not supported"));
                }
                groups.push(Group {
                    id: parse_num(attr(c, "id")?, &gname)?,
                    name: gname,
                    block_length: glen,
                    fields: gf,
                    data: gd,
                });
            }
            "data" => {
                let dname = attr(c, "name")?.to_string();
                if c.attribute("presence") == Some("optional") {
                    return Err(format!("{owner}.{dname}: data must not be optional"));
                }
                let ty = attr(c, "type")?;
                let (max_len, character_encoding) = types
                    .var_data
                    .get(ty)
                    .cloned()
                    .ok_or_else(|| format!("{owner}.{dname}: unknown var-data type {ty}"))?;
                data.push(DataField {
                    id: parse_num(attr(c, "id")?, &dname)?,
                    name: dname,
                    max_len,
                    character_encoding,
                });
            }
            other => return Err(format!("{owner}: unsupported element <{other}>")),
        }
    }
    Ok((fields, groups, data, offset))
}

fn parse_message(m: roxmltree::Node, types: &Types) -> Result<Message, String> {
    let name = attr(m, "name")?.to_string();
    let (fields, groups, data, computed) = parse_body(m, types, &name)?;
    let block_length = match m.attribute("blockLength") {
        Some(b) => {
            let explicit: usize = parse_num(b, &name)?;
            if explicit < computed {
                return Err(format!(
                    "{name}: blockLength {explicit} is smaller than its fields ({computed})"
                ));
            }
            explicit
        }
        None => computed,
    };
    Ok(Message {
        id: parse_num(attr(m, "id")?, &name)?,
        name,
        block_length,
        fields,
        groups,
        data,
    })
}
