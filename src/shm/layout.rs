//! SHM region layout: superblock, header slots and payload slots (Wire Spec §6–§9).
//!
//! Layouts are the schemas' packed SBE layouts (control schema 900): the 64-byte
//! `ShmRegionSuperblock` at offset 0 of every region, then either 256-byte header slots
//! (`SlotHeader` 60-byte block + u32 length + embedded 192-byte `TensorHeader` with its
//! own SBE message header) or fixed-stride payload slots.

use crate::protocol::codec::{
    put_u16, put_u32, put_u64, MessageHeader, MESSAGE_HEADER_LEN, VAR_DATA_HEADER_LEN,
};
use crate::protocol::control::{
    self, shm_region_superblock, slot_header, tensor_header, RegionType, ShmRegionSuperblock,
    ShmRegionSuperblockDecoder, SlotHeaderDecoder, TensorHeader, TensorHeaderDecoder,
};
use thiserror::Error;

/// Size of the superblock at the start of every region (Wire Spec §6: exactly 64).
pub const SUPERBLOCK_SIZE: usize = 64;
/// Size of one header slot (Wire Spec §8.1: exactly 256).
pub const HEADER_SLOT_BYTES: usize = 256;
/// Superblock magic: ASCII `TPOLSHM1` read as a little-endian u64 (Wire Spec §7.1).
pub const MAGIC: u64 = 0x544F_504C_5348_4D31;
/// SHM layout version this implementation writes and accepts.
pub const LAYOUT_VERSION: u32 = 1;
/// Maximum tensor rank (Wire Spec §8.2, `MaxDimsConst`).
pub const MAX_DIMS: usize = tensor_header::MAX_DIMS as usize;
/// Encoded length of the embedded `TensorHeader`, its SBE header included (192).
pub const TENSOR_HEADER_LEN: usize = MESSAGE_HEADER_LEN + tensor_header::BLOCK_LENGTH as usize;
/// Offset of the `headerBytes` length prefix within a slot (60).
pub const HEADER_BYTES_LEN_OFFSET: usize = slot_header::BLOCK_LENGTH as usize;
/// Offset of the embedded `TensorHeader` (its SBE header) within a slot (64).
pub const TENSOR_HEADER_OFFSET: usize = HEADER_BYTES_LEN_OFFSET + VAR_DATA_HEADER_LEN;
/// Bytes of the embedded `TensorHeader` (its SBE header included) before its reserved
/// `pad` (83): all a reader has to look at, as consumers MUST ignore the pad (§8.2).
pub const TENSOR_HEADER_USED_LEN: usize = MESSAGE_HEADER_LEN + tensor_header::PAD_OFFSET;
/// Bytes at the start of a header slot a reader copies: everything up to the tensor
/// header's reserved pad, rounded up to whole 8-byte words (152 of 256). The rest of the
/// slot is reserved bytes a consumer must ignore, so it need not cross between cores.
pub const SLOT_READ_BYTES: usize = (TENSOR_HEADER_OFFSET + TENSOR_HEADER_USED_LEN).div_ceil(8) * 8;
/// Offset of `activityTimestampNs` in the superblock (8-byte aligned: 56).
pub const ACTIVITY_TIMESTAMP_OFFSET: usize = shm_region_superblock::ACTIVITY_TIMESTAMP_NS_OFFSET;

const _: () = assert!(TENSOR_HEADER_OFFSET + TENSOR_HEADER_LEN == HEADER_SLOT_BYTES);
const _: () = assert!(shm_region_superblock::BLOCK_LENGTH as usize == SUPERBLOCK_SIZE);
const _: () = assert!(ACTIVITY_TIMESTAMP_OFFSET % 8 == 0);
const _: () = assert!(SLOT_READ_BYTES <= HEADER_SLOT_BYTES);

/// Size of a header ring file with `nslots` slots, or `None` on overflow.
pub fn header_ring_len(nslots: u32) -> Option<u64> {
    (nslots as u64)
        .checked_mul(HEADER_SLOT_BYTES as u64)?
        .checked_add(SUPERBLOCK_SIZE as u64)
}

/// Size of a payload pool file, or `None` on overflow.
pub fn payload_pool_len(nslots: u32, stride_bytes: u32) -> Option<u64> {
    (nslots as u64)
        .checked_mul(stride_bytes as u64)?
        .checked_add(SUPERBLOCK_SIZE as u64)
}

/// Byte offset of header slot `index` (Wire Spec §8.1).
pub const fn header_slot_offset(index: u32) -> u64 {
    SUPERBLOCK_SIZE as u64 + index as u64 * HEADER_SLOT_BYTES as u64
}

/// Byte offset of payload slot `slot` in a pool of the given stride (Wire Spec §9).
pub const fn payload_slot_offset(slot: u32, stride_bytes: u32) -> u64 {
    SUPERBLOCK_SIZE as u64 + slot as u64 * stride_bytes as u64
}

/// Header index of sequence `seq` in a ring of `nslots` (a power of two).
#[inline]
pub const fn header_index(seq: u64, nslots: u32) -> u32 {
    (seq & (nslots as u64).wrapping_sub(1)) as u32
}

/// The SBE null value of the superblock's `slotBytes` (uint32 `0xFFFFFFFF`).
///
/// Wire Spec §7.1 lists `slot_bytes` but gives it no meaning for payload pools, whose
/// slot size is `stride_bytes`. Another implementation (the spec author's C driver) writes
/// the null value there, so a reader accepts it for `PAYLOAD_POOL` regions; this driver
/// keeps writing the stride.
pub const SLOT_BYTES_NULL: u32 = u32::MAX;

/// Whether `stride` is a valid payload stride: a power-of-two multiple of 64 (§15.22).
pub const fn is_valid_stride(stride: u32) -> bool {
    stride >= 64 && stride.is_power_of_two()
}

/// A superblock field that disagrees with what the announce or response promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SuperblockError {
    /// The region is shorter than a superblock.
    #[error("region is {len} bytes, shorter than the {SUPERBLOCK_SIZE}-byte superblock")]
    TooShort {
        /// Region length.
        len: u64,
    },
    /// `magic` is not `TPOLSHM1`.
    #[error("superblock magic {actual:#018x} is not TPOLSHM1 ({MAGIC:#018x})")]
    BadMagic {
        /// Magic found.
        actual: u64,
    },
    /// A field differs from the expected value.
    #[error("superblock {field} is {actual}, expected {expected}")]
    Mismatch {
        /// Field name (schema spelling).
        field: &'static str,
        /// Expected value.
        expected: u64,
        /// Value found.
        actual: u64,
    },
}

/// What a region's superblock must say, from an attach response or announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedRegion {
    /// Layout version.
    pub layout_version: u32,
    /// Epoch.
    pub epoch: u64,
    /// Stream id.
    pub stream_id: u32,
    /// Header ring or payload pool.
    pub region_type: RegionType,
    /// Pool id (0 for the header ring).
    pub pool_id: u16,
    /// Slot count.
    pub nslots: u32,
    /// Header slot bytes (256) for the ring, stride for pools.
    pub slot_bytes: u32,
    /// Pool stride (0 for the header ring).
    pub stride_bytes: u32,
}

impl ExpectedRegion {
    /// The header ring of a stream epoch.
    pub fn header_ring(layout_version: u32, epoch: u64, stream_id: u32, nslots: u32) -> Self {
        Self {
            layout_version,
            epoch,
            stream_id,
            region_type: RegionType::HeaderRing,
            pool_id: 0,
            nslots,
            slot_bytes: HEADER_SLOT_BYTES as u32,
            stride_bytes: 0,
        }
    }

    /// A payload pool of a stream epoch.
    pub fn payload_pool(
        layout_version: u32,
        epoch: u64,
        stream_id: u32,
        pool_id: u16,
        nslots: u32,
        stride_bytes: u32,
    ) -> Self {
        Self {
            layout_version,
            epoch,
            stream_id,
            region_type: RegionType::PayloadPool,
            pool_id,
            nslots,
            slot_bytes: stride_bytes,
            stride_bytes,
        }
    }

    /// Minimum file length this region needs.
    pub fn region_len(&self) -> Option<u64> {
        match self.region_type {
            RegionType::HeaderRing => header_ring_len(self.nslots),
            _ => payload_pool_len(self.nslots, self.stride_bytes),
        }
    }

    /// The superblock the driver writes for this region.
    pub fn superblock(&self, pid: u64, start_timestamp_ns: u64) -> ShmRegionSuperblock {
        ShmRegionSuperblock {
            magic: MAGIC,
            layout_version: self.layout_version,
            epoch: self.epoch,
            stream_id: self.stream_id,
            region_type: self.region_type,
            pool_id: self.pool_id,
            nslots: self.nslots,
            slot_bytes: self.slot_bytes,
            stride_bytes: self.stride_bytes,
            pid,
            start_timestamp_ns,
            activity_timestamp_ns: start_timestamp_ns,
        }
    }

    /// Checks a decoded superblock against this expectation, naming the first field
    /// that differs (Wire Spec §15.1).
    pub fn validate(&self, sb: &ShmRegionSuperblock) -> Result<(), SuperblockError> {
        if sb.magic != MAGIC {
            return Err(SuperblockError::BadMagic { actual: sb.magic });
        }
        let checks: [(&'static str, u64, u64); 8] = [
            (
                "layoutVersion",
                self.layout_version.into(),
                sb.layout_version.into(),
            ),
            ("epoch", self.epoch, sb.epoch),
            ("streamId", self.stream_id.into(), sb.stream_id.into()),
            (
                "regionType",
                self.region_type.raw() as u64,
                sb.region_type.raw() as u64,
            ),
            ("poolId", self.pool_id.into(), sb.pool_id.into()),
            ("nslots", self.nslots.into(), sb.nslots.into()),
            (
                "slotBytes",
                self.slot_bytes.into(),
                self.announced_slot_bytes(sb),
            ),
            (
                "strideBytes",
                self.stride_bytes.into(),
                sb.stride_bytes.into(),
            ),
        ];
        for (field, expected, actual) in checks {
            if expected != actual {
                return Err(SuperblockError::Mismatch {
                    field,
                    expected,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// The superblock's `slotBytes` as it is compared: a payload pool's null value
    /// ([`SLOT_BYTES_NULL`]) stands for "not given" and so for the expected stride; any
    /// other value, and every value in a header ring, is taken as written.
    fn announced_slot_bytes(&self, sb: &ShmRegionSuperblock) -> u64 {
        let pool_without_slot_bytes =
            self.region_type == RegionType::PayloadPool && sb.slot_bytes == SLOT_BYTES_NULL;
        if pool_without_slot_bytes {
            self.slot_bytes.into()
        } else {
            sb.slot_bytes.into()
        }
    }
}

/// Encodes a superblock into its 64 bytes.
pub fn encode_superblock(sb: &ShmRegionSuperblock) -> [u8; SUPERBLOCK_SIZE] {
    let mut out = [0u8; SUPERBLOCK_SIZE];
    // Cannot fail: the body is exactly SUPERBLOCK_SIZE bytes (checked at compile time).
    let _ = sb.encode_body(&mut out);
    out
}

/// Decodes the superblock at the start of `region` (a snapshot of its first 64 bytes).
pub fn decode_superblock(region: &[u8]) -> Result<ShmRegionSuperblock, SuperblockError> {
    ShmRegionSuperblockDecoder::wrap_body(region, SUPERBLOCK_SIZE, control::SCHEMA_VERSION)
        .map(|d| d.to_value())
        .map_err(|_| SuperblockError::TooShort {
            len: region.len() as u64,
        })
}

/// Why the bytes of a header slot do not hold a well-formed v1.2 slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SlotFormatError {
    /// `headerBytes` length is not 192 (§8.2).
    #[error("headerBytes length {0} is not {TENSOR_HEADER_LEN}")]
    HeaderBytesLength(u32),
    /// The embedded header is not a schema-900 v1 `TensorHeader` with a 184-byte block.
    #[error("embedded header is schema {schema_id} template {template_id} version {version} block {block_length}, not TensorHeader")]
    NotTensorHeader {
        /// Schema id found.
        schema_id: u16,
        /// Template id found.
        template_id: u16,
        /// Version found.
        version: u16,
        /// Block length found.
        block_length: u16,
    },
}

/// The fields of a header slot other than `seq_commit`, as the producer writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotContents {
    /// Payload length in bytes.
    pub values_len_bytes: u32,
    /// Payload slot index (v1.2: equals the header index).
    pub payload_slot: u32,
    /// Pool the payload lives in.
    pub pool_id: u16,
    /// Offset within the payload slot (v1.2: 0).
    pub payload_offset: u32,
    /// Capture timestamp.
    pub timestamp_ns: u64,
    /// Metadata version.
    pub meta_version: u32,
    /// Tensor description.
    pub tensor: TensorHeader,
}

/// Encodes a whole 256-byte slot image with `seq_commit` as given.
pub fn encode_slot(seq_commit: u64, contents: &SlotContents) -> [u8; HEADER_SLOT_BYTES] {
    let mut out = [0u8; HEADER_SLOT_BYTES];
    put_u64(&mut out, slot_header::SEQ_COMMIT_OFFSET, seq_commit);
    put_slot_fields(
        &mut out,
        &SlotFields {
            values_len_bytes: contents.values_len_bytes,
            payload_slot: contents.payload_slot,
            pool_id: contents.pool_id,
            payload_offset: contents.payload_offset,
            timestamp_ns: contents.timestamp_ns,
            meta_version: contents.meta_version,
        },
    );
    put_slot_tensor(&mut out, &contents.tensor);
    out
}

/// Writes the `SlotHeader` fields other than `seq_commit` into a slot image. The block's
/// reserved pad is left as it is (zero in an image that started zeroed).
pub fn put_slot_fields(image: &mut [u8; HEADER_SLOT_BYTES], fields: &SlotFields) {
    put_u32(
        image,
        slot_header::VALUES_LEN_BYTES_OFFSET,
        fields.values_len_bytes,
    );
    put_u32(image, slot_header::PAYLOAD_SLOT_OFFSET, fields.payload_slot);
    put_u16(image, slot_header::POOL_ID_OFFSET, fields.pool_id);
    put_u32(
        image,
        slot_header::PAYLOAD_OFFSET_OFFSET,
        fields.payload_offset,
    );
    put_u64(image, slot_header::TIMESTAMP_NS_OFFSET, fields.timestamp_ns);
    put_u32(image, slot_header::META_VERSION_OFFSET, fields.meta_version);
}

/// Writes the embedded tensor description into a slot image: the `headerBytes` length
/// (192) and the `TensorHeader` with its SBE message header.
pub fn put_slot_tensor(image: &mut [u8; HEADER_SLOT_BYTES], tensor: &TensorHeader) {
    put_u32(image, HEADER_BYTES_LEN_OFFSET, TENSOR_HEADER_LEN as u32);
    // Cannot fail: the rest of the slot is exactly the encoded length (checked at compile
    // time).
    let _ = tensor.encode(&mut image[TENSOR_HEADER_OFFSET..]);
}

/// The fields of a header slot other than `seq_commit` and the tensor description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotFields {
    /// Payload length in bytes.
    pub values_len_bytes: u32,
    /// Payload slot index (v1.2: equals the header index).
    pub payload_slot: u32,
    /// Pool the payload lives in.
    pub pool_id: u16,
    /// Offset within the payload slot (v1.2: 0).
    pub payload_offset: u32,
    /// Capture timestamp.
    pub timestamp_ns: u64,
    /// Metadata version.
    pub meta_version: u32,
}

/// Decodes the `SlotHeader` fields of a slot image and checks that `headerBytes` is
/// 192 bytes long (Wire Spec §8.2); returns `seq_commit` and the fields. The embedded
/// tensor header is left to [`decode_slot_tensor`].
#[inline]
pub fn decode_slot_fields(
    image: &[u8; HEADER_SLOT_BYTES],
) -> Result<(u64, SlotFields), SlotFormatError> {
    let slot = SlotHeaderDecoder::wrap_body(
        image,
        slot_header::BLOCK_LENGTH as usize,
        control::SCHEMA_VERSION,
    )
    .map_err(|_| {
        SlotFormatError::HeaderBytesLength(crate::protocol::codec::get_u32(
            image,
            HEADER_BYTES_LEN_OFFSET,
        ))
    })?;
    let len = slot.header_bytes().len();
    if len != TENSOR_HEADER_LEN {
        return Err(SlotFormatError::HeaderBytesLength(len as u32));
    }
    Ok((
        slot.seq_commit(),
        SlotFields {
            values_len_bytes: slot.values_len_bytes(),
            payload_slot: slot.payload_slot(),
            pool_id: slot.pool_id(),
            payload_offset: slot.payload_offset(),
            timestamp_ns: slot.timestamp_ns(),
            meta_version: slot.meta_version(),
        },
    ))
}

/// The embedded `TensorHeader` bytes of a slot image (its SBE header included).
#[inline]
pub fn slot_tensor_bytes(image: &[u8; HEADER_SLOT_BYTES]) -> &[u8; TENSOR_HEADER_LEN] {
    image[TENSOR_HEADER_OFFSET..]
        .try_into()
        .expect("the tensor header ends the slot (checked at compile time)")
}

/// Decodes an embedded `TensorHeader` (192 bytes with its SBE header), checking its
/// schema, template, version and block length (Wire Spec §8.3 step 5). Field values are
/// not judged here; the consumer does that.
pub fn decode_slot_tensor(
    bytes: &[u8; TENSOR_HEADER_LEN],
) -> Result<TensorHeader, SlotFormatError> {
    let not_tensor = |h: MessageHeader| SlotFormatError::NotTensorHeader {
        schema_id: h.schema_id,
        template_id: h.template_id,
        version: h.version,
        block_length: h.block_length,
    };
    let h = MessageHeader::read(bytes).map_err(|_| SlotFormatError::HeaderBytesLength(0))?;
    if h.schema_id != control::SCHEMA_ID
        || h.template_id != tensor_header::TEMPLATE_ID
        || h.version != control::SCHEMA_VERSION
        || h.block_length != tensor_header::BLOCK_LENGTH
    {
        return Err(not_tensor(h));
    }
    let tensor = TensorHeaderDecoder::wrap(bytes).map_err(|_| not_tensor(h))?;
    Ok(tensor.to_value())
}

/// Decodes a slot image (a snapshot copied out of the ring) into its header fields and
/// tensor header, checking the embedded header's length, schema, template and version
/// (Wire Spec §8.3 step 5). Field values are not judged here; the consumer does that.
pub fn decode_slot(
    image: &[u8; HEADER_SLOT_BYTES],
) -> Result<(u64, SlotContents), SlotFormatError> {
    let (seq_commit, f) = decode_slot_fields(image)?;
    let tensor = decode_slot_tensor(slot_tensor_bytes(image))?;
    Ok((
        seq_commit,
        SlotContents {
            values_len_bytes: f.values_len_bytes,
            payload_slot: f.payload_slot,
            pool_id: f.pool_id,
            payload_offset: f.payload_offset,
            timestamp_ns: f.timestamp_ns,
            meta_version: f.meta_version,
            tensor,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::control::{Dtype, MajorOrder, ProgressUnit};

    fn tensor() -> TensorHeader {
        let mut dims = [0; 8];
        dims[0] = 480;
        dims[1] = 640;
        TensorHeader {
            dtype: Dtype::Uint8,
            major_order: MajorOrder::Row,
            ndims: 2,
            pad_align: 0,
            progress_unit: ProgressUnit::None,
            progress_stride_bytes: 0,
            dims,
            strides: [0; 8],
            pad: [0; 109],
        }
    }

    #[test]
    fn magic_is_tpolshm1_in_file_byte_order() {
        assert_eq!(MAGIC.to_le_bytes(), *b"1MHSLPOT");
        assert_eq!(
            MAGIC.to_le_bytes(),
            [0x31, 0x4D, 0x48, 0x53, 0x4C, 0x50, 0x4F, 0x54]
        );
    }

    #[test]
    fn region_sizes_follow_the_formulas() {
        assert_eq!(header_ring_len(1024), Some(64 + 1024 * 256));
        assert_eq!(payload_pool_len(64, 1 << 20), Some(64 + 64 * (1 << 20)));
        assert_eq!(header_slot_offset(3), 64 + 3 * 256);
        assert_eq!(payload_slot_offset(2, 4096), 64 + 2 * 4096);
        assert_eq!(header_index(1027, 1024), 3);
    }

    #[test]
    fn strides_must_be_power_of_two_multiples_of_64() {
        assert!(is_valid_stride(64));
        assert!(is_valid_stride(1 << 22));
        assert!(!is_valid_stride(32));
        assert!(!is_valid_stride(192));
        assert!(!is_valid_stride(0));
    }

    #[test]
    fn superblock_bytes_put_epoch_at_byte_12() {
        let exp =
            ExpectedRegion::payload_pool(LAYOUT_VERSION, 0x0102_0304_0506_0708, 10000, 2, 64, 4096);
        let bytes = encode_superblock(&exp.superblock(42, 99));
        assert_eq!(&bytes[0..8], b"1MHSLPOT");
        assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
        assert_eq!(&bytes[12..20], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&bytes[20..24], &10000u32.to_le_bytes());
        assert_eq!(&bytes[24..26], &2i16.to_le_bytes());
        assert_eq!(&bytes[26..28], &2u16.to_le_bytes());
        assert_eq!(&bytes[28..32], &64u32.to_le_bytes());
        assert_eq!(&bytes[32..36], &4096u32.to_le_bytes());
        assert_eq!(&bytes[36..40], &4096u32.to_le_bytes());
        assert_eq!(&bytes[40..48], &42u64.to_le_bytes());
        assert_eq!(&bytes[48..56], &99u64.to_le_bytes());
        assert_eq!(&bytes[56..64], &99u64.to_le_bytes());
        let sb = decode_superblock(&bytes).expect("64 bytes decode");
        assert_eq!(exp.validate(&sb), Ok(()));
    }

    #[test]
    fn payload_pool_accepts_null_slot_bytes_and_still_checks_the_rest() {
        let exp = ExpectedRegion::payload_pool(LAYOUT_VERSION, 3, 10000, 1, 64, 4096);
        let mut sb = exp.superblock(1, 1);
        sb.slot_bytes = SLOT_BYTES_NULL;
        assert_eq!(exp.validate(&sb), Ok(()));

        // Only the null value stands for "not given": another value must be the stride.
        sb.slot_bytes = 2048;
        assert_eq!(
            exp.validate(&sb),
            Err(SuperblockError::Mismatch {
                field: "slotBytes",
                expected: 4096,
                actual: 2048
            })
        );

        // The null slotBytes does not excuse any other field.
        let mut sb = exp.superblock(1, 1);
        sb.slot_bytes = SLOT_BYTES_NULL;
        sb.stride_bytes = 8192;
        assert_eq!(
            exp.validate(&sb),
            Err(SuperblockError::Mismatch {
                field: "strideBytes",
                expected: 4096,
                actual: 8192
            })
        );
        let mut sb = exp.superblock(1, 1);
        sb.slot_bytes = SLOT_BYTES_NULL;
        sb.nslots = 32;
        assert!(matches!(
            exp.validate(&sb),
            Err(SuperblockError::Mismatch {
                field: "nslots",
                ..
            })
        ));
    }

    #[test]
    fn header_ring_rejects_null_slot_bytes() {
        let exp = ExpectedRegion::header_ring(LAYOUT_VERSION, 3, 10000, 64);
        let mut sb = exp.superblock(1, 1);
        sb.slot_bytes = SLOT_BYTES_NULL;
        assert_eq!(
            exp.validate(&sb),
            Err(SuperblockError::Mismatch {
                field: "slotBytes",
                expected: HEADER_SLOT_BYTES as u64,
                actual: u32::MAX.into()
            })
        );
    }

    #[test]
    fn this_driver_writes_the_stride_as_pool_slot_bytes() {
        let exp = ExpectedRegion::payload_pool(LAYOUT_VERSION, 3, 10000, 1, 64, 4096);
        assert_eq!(exp.superblock(1, 1).slot_bytes, 4096);
    }

    #[test]
    fn superblock_validation_names_the_mismatching_field() {
        let exp = ExpectedRegion::header_ring(LAYOUT_VERSION, 7, 10000, 64);
        let mut sb = exp.superblock(1, 1);
        sb.epoch = 8;
        assert_eq!(
            exp.validate(&sb),
            Err(SuperblockError::Mismatch {
                field: "epoch",
                expected: 7,
                actual: 8
            })
        );
        let mut sb = exp.superblock(1, 1);
        sb.magic = 0;
        assert_eq!(
            exp.validate(&sb),
            Err(SuperblockError::BadMagic { actual: 0 })
        );
        let mut sb = exp.superblock(1, 1);
        sb.region_type = RegionType::PayloadPool;
        assert!(matches!(
            exp.validate(&sb),
            Err(SuperblockError::Mismatch {
                field: "regionType",
                ..
            })
        ));
        assert!(matches!(
            decode_superblock(&[0u8; 63]),
            Err(SuperblockError::TooShort { len: 63 })
        ));
    }

    #[test]
    fn slot_image_layout_and_round_trip() {
        let contents = SlotContents {
            values_len_bytes: 307_200,
            payload_slot: 5,
            pool_id: 2,
            payload_offset: 0,
            timestamp_ns: 123,
            meta_version: 9,
            tensor: tensor(),
        };
        let image = encode_slot((5 << 1) | 1, &contents);
        assert_eq!(&image[0..8], &11u64.to_le_bytes());
        assert_eq!(&image[60..64], &192u32.to_le_bytes());
        // Embedded TensorHeader SBE header: block 184, template 52, schema 900, version 1.
        assert_eq!(&image[64..72], &[184, 0, 52, 0, 0x84, 0x03, 1, 0]);
        // dims at byte 11 of the tensor block.
        assert_eq!(&image[72 + 11..72 + 15], &480i32.to_le_bytes());
        let (seq_commit, decoded) = decode_slot(&image).expect("well-formed slot");
        assert_eq!(seq_commit, 11);
        assert_eq!(decoded, contents);
    }

    #[test]
    fn a_reader_needs_only_the_slot_up_to_the_tensor_pad() {
        // Everything a consumer judges sits in the first 152 bytes (three cache lines).
        assert_eq!(TENSOR_HEADER_USED_LEN, 8 + 75);
        assert_eq!(SLOT_READ_BYTES, 152);
        let mut contents = SlotContents {
            values_len_bytes: 640,
            payload_slot: 3,
            pool_id: 1,
            payload_offset: 0,
            timestamp_ns: 77,
            meta_version: 4,
            tensor: tensor(),
        };
        contents.tensor.pad = [0xEE; 109];
        let full = encode_slot(7, &contents);
        let mut prefix = [0u8; HEADER_SLOT_BYTES];
        prefix[..SLOT_READ_BYTES].copy_from_slice(&full[..SLOT_READ_BYTES]);
        let (seq_commit, fields) = decode_slot_fields(&prefix).expect("well-formed");
        assert_eq!(seq_commit, 7);
        assert_eq!(
            fields,
            SlotFields {
                values_len_bytes: 640,
                payload_slot: 3,
                pool_id: 1,
                payload_offset: 0,
                timestamp_ns: 77,
                meta_version: 4,
            }
        );
        let mut decoded = decode_slot_tensor(slot_tensor_bytes(&prefix)).expect("tensor");
        decoded.pad = contents.tensor.pad;
        assert_eq!(
            decoded, contents.tensor,
            "only reserved bytes were left out"
        );
    }

    #[test]
    fn slot_with_foreign_embedded_header_is_refused() {
        let mut image = encode_slot(
            3,
            &SlotContents {
                values_len_bytes: 0,
                payload_slot: 1,
                pool_id: 1,
                payload_offset: 0,
                timestamp_ns: 0,
                meta_version: 0,
                tensor: tensor(),
            },
        );
        image[66] = 53; // template id
        assert!(matches!(
            decode_slot(&image),
            Err(SlotFormatError::NotTensorHeader {
                template_id: 53,
                ..
            })
        ));
        image[66] = 52;
        image[60] = 191;
        assert!(matches!(
            decode_slot(&image),
            Err(SlotFormatError::HeaderBytesLength(191))
        ));
        image[60] = 192;
        image[70] = 2; // version
        assert!(matches!(
            decode_slot(&image),
            Err(SlotFormatError::NotTensorHeader { version: 2, .. })
        ));
    }
}
