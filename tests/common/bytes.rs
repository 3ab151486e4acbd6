//! A tiny, independent little-endian byte builder for hand-written expected encodings.
//!
//! It deliberately knows nothing about the generated codecs (no offset constants, no
//! runtime helpers): every test spells out the wire layout field by field, in schema
//! order, from the normative specs.

#![allow(dead_code)]

/// Little-endian byte builder: `B::new().u16(1).i64(-2).var(b"uri").build()`.
#[derive(Debug, Clone, Default)]
pub struct B(Vec<u8>);

impl B {
    /// An empty builder.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// The standard 8-byte SBE message header.
    pub fn header(self, block_length: u16, template_id: u16, schema_id: u16, version: u16) -> Self {
        self.u16(block_length)
            .u16(template_id)
            .u16(schema_id)
            .u16(version)
    }

    /// A repeating-group dimension header (`groupSizeEncoding`).
    pub fn group(self, block_length: u16, num_in_group: u16) -> Self {
        self.u16(block_length).u16(num_in_group)
    }

    /// A var-data field: `uint32` length followed by the bytes.
    pub fn var(self, data: &[u8]) -> Self {
        let len = u32::try_from(data.len()).expect("test var data fits u32");
        self.u32(len).bytes(data)
    }

    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }

    pub fn i8(self, v: i8) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn u16(self, v: u16) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn i16(self, v: i16) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn u32(self, v: u32) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn i32(self, v: i32) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    pub fn i64(self, v: i64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Raw bytes.
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    /// `n` copies of `v` (padding, filler).
    pub fn fill(mut self, n: usize, v: u8) -> Self {
        self.0.extend(std::iter::repeat_n(v, n));
        self
    }

    /// `n` zero bytes.
    pub fn zeros(self, n: usize) -> Self {
        self.fill(n, 0)
    }

    /// Current length (for asserting offsets while building).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The built bytes.
    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

/// Asserts byte equality, reporting the first differing offset and a hex window.
#[track_caller]
pub fn assert_bytes(actual: &[u8], expected: &[u8]) {
    if actual == expected {
        return;
    }
    let first = actual
        .iter()
        .zip(expected)
        .position(|(a, e)| a != e)
        .unwrap_or(actual.len().min(expected.len()));
    let lo = first.saturating_sub(8);
    let window = |b: &[u8]| {
        b.get(lo..(first + 8).min(b.len()))
            .unwrap_or(&[])
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    panic!(
        "encodings differ at byte {first} (actual len {}, expected len {})\n  actual   [{lo}..]: {}\n  expected [{lo}..]: {}",
        actual.len(),
        expected.len(),
        window(actual),
        window(expected)
    );
}

/// Reads a little-endian u16 at `off` (test-side, independent of the runtime).
pub fn rd_u16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

/// Overwrites a little-endian u16 at `off`.
pub fn wr_u16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Overwrites a little-endian u32 at `off`.
pub fn wr_u32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// Schema maximum of every var-data field in both schemas (`varAsciiEncoding` /
/// `varDataEncoding` `length maxValue`).
pub const VAR_MAX: u32 = 1_073_741_824;
