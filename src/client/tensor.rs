//! Tensor descriptions in header slots (Wire Spec §8.2): builders for producers and the
//! consumer-side validation of an embedded `TensorHeader`.
//!
//! Rules applied (all pure, no allocation):
//! - `ndims` in `1..=MAX_DIMS`; entries at and beyond `ndims` are ignored when reading and
//!   zero-filled when building.
//! - `dtype` must be a defined element type other than `UNKNOWN`; `major_order` ROW or
//!   COLUMN; `progress_unit` a defined value.
//! - `dims` and `strides` are non-negative. A stride of 0 is inferred as contiguous: the
//!   element size for the innermost dimension, else the next inner dimension's stride
//!   times its extent. A non-zero stride must be at least that value, so every element
//!   has its own bytes and strides grow outwards as the major order says (row-major:
//!   strides grow as the dimension index decreases; column-major: as it increases).
//! - The bytes the tensor spans (last element's offset + element size; 0 when any
//!   dimension is 0) must fit in the payload (`values_len_bytes`).
//! - `progress_unit = ROWS` requires `progress_stride_bytes` equal to the effective stride
//!   of dimension 0, `COLUMNS` that of dimension 1 (so at least two dimensions): rows are
//!   indexed by `dims[0]` and columns by `dims[1]`, as in the reference implementations.
//!
//! Element sizes: 1 byte for UINT8, INT8, BOOLEAN, BYTES and BIT (the Wire Spec does not
//! define bit packing; one element per byte is what the reference implementations use),
//! 2 for 16-bit, 4 for 32-bit and FLOAT32, 8 for 64-bit and FLOAT64.

use crate::protocol::control::{Dtype, MajorOrder, ProgressUnit, TensorHeader};
use crate::shm::layout::MAX_DIMS;

/// Why a tensor description is unusable (a consumer drops the frame; a producer refuses
/// to publish it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// The rank is 0 or larger than [`MAX_DIMS`].
    #[error("ndims {0} is outside 1..={MAX_DIMS}")]
    Ndims(usize),
    /// A builder got a strides slice that is neither empty nor one entry per dimension.
    #[error("{dims} dims but {strides} strides (give no strides, or one per dim)")]
    StridesLength {
        /// Number of dims given.
        dims: usize,
        /// Number of strides given.
        strides: usize,
    },
    /// The element type is `UNKNOWN` or not defined by the schema.
    #[error("dtype {0} is not a known element type")]
    UnknownDtype(Dtype),
    /// The major order is neither ROW nor COLUMN.
    #[error("major order {0} is neither ROW nor COLUMN")]
    UnknownMajorOrder(MajorOrder),
    /// The progress unit is not defined by the schema.
    #[error("progress unit {0} is not defined")]
    UnknownProgressUnit(ProgressUnit),
    /// A dimension is negative.
    #[error("dims[{index}] = {value} is negative")]
    NegativeDim {
        /// Dimension index.
        index: usize,
        /// Its value.
        value: i32,
    },
    /// A stride is negative (not supported in v1.2).
    #[error("strides[{index}] = {value} is negative")]
    NegativeStride {
        /// Dimension index.
        index: usize,
        /// Its value.
        value: i32,
    },
    /// A stride would make elements overlap or contradicts the major order.
    #[error("strides[{index}] = {stride} is below the {min} bytes the layout needs")]
    Overlap {
        /// Dimension index.
        index: usize,
        /// Declared stride in bytes.
        stride: u64,
        /// Smallest stride that keeps elements apart in this major order.
        min: u64,
    },
    /// The layout's byte size does not fit in 64 bits.
    #[error("the tensor layout's byte size overflows")]
    TooLarge,
    /// The tensor spans more bytes than the payload holds.
    #[error("the tensor spans {needed} bytes but the payload holds {values_len}")]
    ExceedsPayload {
        /// Bytes the tensor spans.
        needed: u64,
        /// Payload length.
        values_len: u64,
    },
    /// The progress unit names a dimension the tensor does not have.
    #[error("progress unit {unit} needs more than {ndims} dims")]
    ProgressUnitNeedsDims {
        /// The unit.
        unit: ProgressUnit,
        /// The tensor's rank.
        ndims: usize,
    },
    /// `progress_stride_bytes` disagrees with the layout.
    #[error("progress unit {unit} needs progress_stride_bytes {expected}, header says {actual}")]
    ProgressStride {
        /// The unit.
        unit: ProgressUnit,
        /// The stride the layout implies.
        expected: u64,
        /// The stride declared.
        actual: u32,
    },
    /// A length does not fit a tensor dimension (`i32`).
    #[error("length {0} does not fit a tensor dimension (at most {max})", max = i32::MAX)]
    DimTooLarge(usize),
}

/// The byte layout a valid tensor header describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorLayout {
    /// Rank.
    pub ndims: usize,
    /// Bytes per element.
    pub elem_size: u64,
    /// Effective byte stride per dimension (zero strides resolved; entries at and beyond
    /// `ndims` are 0).
    pub strides: [u64; MAX_DIMS],
    /// Bytes from the first element to the end of the last (0 for an empty tensor).
    pub extent_bytes: u64,
}

/// Bytes per element of `dtype`, or `None` for `UNKNOWN` and undefined values.
pub const fn dtype_size_bytes(dtype: Dtype) -> Option<u64> {
    match dtype {
        Dtype::Uint8 | Dtype::Int8 | Dtype::Boolean | Dtype::Bytes | Dtype::Bit => Some(1),
        Dtype::Uint16 | Dtype::Int16 => Some(2),
        Dtype::Uint32 | Dtype::Int32 | Dtype::Float32 => Some(4),
        Dtype::Uint64 | Dtype::Int64 | Dtype::Float64 => Some(8),
        Dtype::Unknown | Dtype::Unrecognized(_) => None,
    }
}

/// Checks everything in a tensor header except its fit in a payload, and resolves its
/// layout (see the module docs for the rules).
pub fn tensor_layout(header: &TensorHeader) -> Result<TensorLayout, TensorError> {
    let ndims = header.ndims as usize;
    if ndims == 0 || ndims > MAX_DIMS {
        return Err(TensorError::Ndims(ndims));
    }
    let elem_size =
        dtype_size_bytes(header.dtype).ok_or(TensorError::UnknownDtype(header.dtype))?;
    let row_major = match header.major_order {
        MajorOrder::Row => true,
        MajorOrder::Column => false,
        other => return Err(TensorError::UnknownMajorOrder(other)),
    };
    if !header.progress_unit.is_known() {
        return Err(TensorError::UnknownProgressUnit(header.progress_unit));
    }
    let mut dims = [0u64; MAX_DIMS];
    for (index, (&dim, &stride)) in header
        .dims
        .iter()
        .zip(&header.strides)
        .take(ndims)
        .enumerate()
    {
        if dim < 0 {
            return Err(TensorError::NegativeDim { index, value: dim });
        }
        if stride < 0 {
            return Err(TensorError::NegativeStride {
                index,
                value: stride,
            });
        }
        dims[index] = dim as u64;
    }

    // Walk from the innermost dimension outwards; `min` is the smallest stride that keeps
    // the current dimension's elements clear of everything inside it.
    let mut strides = [0u64; MAX_DIMS];
    let mut min = elem_size;
    for step in 0..ndims {
        let index = if row_major { ndims - 1 - step } else { step };
        let declared = header.strides[index] as u64;
        let stride = match declared {
            0 => min,
            s if s < min => {
                return Err(TensorError::Overlap {
                    index,
                    stride: s,
                    min,
                })
            }
            s => s,
        };
        strides[index] = stride;
        min = stride
            .checked_mul(dims[index].max(1))
            .ok_or(TensorError::TooLarge)?;
    }

    let extent_bytes = if dims[..ndims].contains(&0) {
        0
    } else {
        let mut last = 0u64;
        for (dim, stride) in dims.iter().zip(&strides).take(ndims) {
            let span = (dim - 1)
                .checked_mul(*stride)
                .ok_or(TensorError::TooLarge)?;
            last = last.checked_add(span).ok_or(TensorError::TooLarge)?;
        }
        last.checked_add(elem_size).ok_or(TensorError::TooLarge)?
    };

    let progress_dim = match header.progress_unit {
        ProgressUnit::Rows => Some(0),
        ProgressUnit::Columns => Some(1),
        _ => None,
    };
    if let Some(dim) = progress_dim {
        let unit = header.progress_unit;
        if dim >= ndims {
            return Err(TensorError::ProgressUnitNeedsDims { unit, ndims });
        }
        let expected = strides[dim];
        if expected != u64::from(header.progress_stride_bytes) {
            return Err(TensorError::ProgressStride {
                unit,
                expected,
                actual: header.progress_stride_bytes,
            });
        }
    }

    Ok(TensorLayout {
        ndims,
        elem_size,
        strides,
        extent_bytes,
    })
}

/// The Wire Spec §8.2 checks a consumer applies to the `TensorHeader` of a frame whose
/// payload is `values_len` bytes; any error means DROP.
pub fn validate_tensor_header(header: &TensorHeader, values_len: usize) -> Result<(), TensorError> {
    check_extent(tensor_layout(header)?.extent_bytes, values_len)
}

/// Zero-fills `dims[i]` and `strides[i]` for every `i >= ndims` (Wire Spec §8.2:
/// producers MUST, consumers ignore those entries); returns whether any was non-zero.
/// An `ndims` beyond [`MAX_DIMS`] leaves the header as it is (it fails validation).
pub fn zero_fill_beyond_ndims(header: &mut TensorHeader) -> bool {
    let ndims = header.ndims as usize;
    if ndims > MAX_DIMS {
        return false;
    }
    let dirty = header.dims[ndims..].iter().any(|d| *d != 0)
        || header.strides[ndims..].iter().any(|s| *s != 0);
    header.dims[ndims..].fill(0);
    header.strides[ndims..].fill(0);
    dirty
}

/// The fit check of §8.2 on its own: a tensor spanning `extent_bytes` (its
/// [`TensorLayout::extent_bytes`]) must fit in a payload of `values_len` bytes. For
/// callers that resolved the layout once and check many payloads against it.
pub fn check_extent(extent_bytes: u64, values_len: usize) -> Result<(), TensorError> {
    let values_len = values_len as u64;
    if extent_bytes > values_len {
        return Err(TensorError::ExceedsPayload {
            needed: extent_bytes,
            values_len,
        });
    }
    Ok(())
}

/// A tensor header from its parts: `dims` gives the rank (1..=8); `strides` is empty
/// (contiguous) or one byte stride per dim (0 = contiguous). Unused entries are zero, and
/// the result passes [`tensor_layout`] (progress unit NONE; see [`with_progress`]).
pub fn tensor_header(
    dtype: Dtype,
    major_order: MajorOrder,
    dims: &[i32],
    strides: &[i32],
) -> Result<TensorHeader, TensorError> {
    if dims.is_empty() || dims.len() > MAX_DIMS {
        return Err(TensorError::Ndims(dims.len()));
    }
    if !strides.is_empty() && strides.len() != dims.len() {
        return Err(TensorError::StridesLength {
            dims: dims.len(),
            strides: strides.len(),
        });
    }
    let mut header = TensorHeader {
        dtype,
        major_order,
        ndims: dims.len() as u8,
        pad_align: 0,
        progress_unit: ProgressUnit::None,
        progress_stride_bytes: 0,
        dims: [0; MAX_DIMS],
        strides: [0; MAX_DIMS],
        pad: [0; crate::protocol::control::tensor_header::PAD_LEN],
    };
    header.dims[..dims.len()].copy_from_slice(dims);
    header.strides[..strides.len()].copy_from_slice(strides);
    tensor_layout(&header)?;
    Ok(header)
}

/// A one-dimensional tensor of `len` bytes: UINT8, row-major, `dims[0] = len`, contiguous.
pub fn bytes_header(len: usize) -> Result<TensorHeader, TensorError> {
    let dim = i32::try_from(len).map_err(|_| TensorError::DimTooLarge(len))?;
    tensor_header(Dtype::Uint8, MajorOrder::Row, &[dim], &[])
}

/// `header` with `progress_unit = unit` and the `progress_stride_bytes` its layout implies
/// (0 for NONE).
pub fn with_progress(
    mut header: TensorHeader,
    unit: ProgressUnit,
) -> Result<TensorHeader, TensorError> {
    header.progress_unit = ProgressUnit::None;
    header.progress_stride_bytes = 0;
    let layout = tensor_layout(&header)?;
    let dim = match unit {
        ProgressUnit::None => return Ok(header),
        ProgressUnit::Rows => 0,
        ProgressUnit::Columns => 1,
        ProgressUnit::Unrecognized(_) => return Err(TensorError::UnknownProgressUnit(unit)),
    };
    if dim >= layout.ndims {
        return Err(TensorError::ProgressUnitNeedsDims {
            unit,
            ndims: layout.ndims,
        });
    }
    let stride = layout.strides[dim];
    header.progress_stride_bytes = u32::try_from(stride).map_err(|_| TensorError::TooLarge)?;
    header.progress_unit = unit;
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dtype: Dtype, order: MajorOrder, dims: &[i32], strides: &[i32]) -> TensorHeader {
        let mut h = TensorHeader {
            dtype,
            major_order: order,
            ndims: dims.len() as u8,
            pad_align: 0,
            progress_unit: ProgressUnit::None,
            progress_stride_bytes: 0,
            dims: [0; MAX_DIMS],
            strides: [0; MAX_DIMS],
            pad: [0; 109],
        };
        h.dims[..dims.len()].copy_from_slice(dims);
        h.strides[..strides.len()].copy_from_slice(strides);
        h
    }

    #[test]
    fn bytes_header_is_one_dimensional_uint8() {
        let h = bytes_header(1000).expect("fits");
        assert_eq!(h.dtype, Dtype::Uint8);
        assert_eq!(h.major_order, MajorOrder::Row);
        assert_eq!(h.ndims, 1);
        assert_eq!(h.dims, [1000, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(h.strides, [0; 8]);
        assert_eq!(h.progress_unit, ProgressUnit::None);
        assert_eq!(validate_tensor_header(&h, 1000), Ok(()));
        assert_eq!(
            validate_tensor_header(&h, 999),
            Err(TensorError::ExceedsPayload {
                needed: 1000,
                values_len: 999
            })
        );
        assert_eq!(bytes_header(0).map(|h| h.dims[0]), Ok(0));
        assert_eq!(
            bytes_header(1 << 31),
            Err(TensorError::DimTooLarge(1 << 31))
        );
    }

    #[test]
    fn builder_zero_fills_and_checks_counts() {
        let h = tensor_header(Dtype::Float32, MajorOrder::Row, &[2, 3], &[12, 4]).expect("ok");
        assert_eq!(h.ndims, 2);
        assert_eq!(h.dims, [2, 3, 0, 0, 0, 0, 0, 0]);
        assert_eq!(h.strides, [12, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            tensor_header(Dtype::Uint8, MajorOrder::Row, &[], &[]),
            Err(TensorError::Ndims(0))
        );
        assert_eq!(
            tensor_header(Dtype::Uint8, MajorOrder::Row, &[1; 9], &[]),
            Err(TensorError::Ndims(9))
        );
        assert!(tensor_header(Dtype::Uint8, MajorOrder::Row, &[1; 8], &[]).is_ok());
        assert_eq!(
            tensor_header(Dtype::Uint8, MajorOrder::Row, &[2, 2], &[2]),
            Err(TensorError::StridesLength {
                dims: 2,
                strides: 1
            })
        );
        assert_eq!(
            tensor_header(Dtype::Uint8, MajorOrder::Row, &[2, -1], &[]),
            Err(TensorError::NegativeDim {
                index: 1,
                value: -1
            })
        );
        assert_eq!(
            tensor_header(Dtype::Uint8, MajorOrder::Row, &[2, 2], &[-2, 1]),
            Err(TensorError::NegativeStride {
                index: 0,
                value: -2
            })
        );
    }

    #[test]
    fn rank_enum_and_progress_values_must_be_known() {
        let mut h = header(Dtype::Uint8, MajorOrder::Row, &[4], &[]);
        h.ndims = 0;
        assert_eq!(validate_tensor_header(&h, 4), Err(TensorError::Ndims(0)));
        h.ndims = 9;
        assert_eq!(validate_tensor_header(&h, 4), Err(TensorError::Ndims(9)));
        for dtype in [
            Dtype::Unknown,
            Dtype::Unrecognized(12),
            Dtype::Unrecognized(99),
        ] {
            let h = header(dtype, MajorOrder::Row, &[4], &[]);
            assert_eq!(
                validate_tensor_header(&h, 4),
                Err(TensorError::UnknownDtype(dtype))
            );
        }
        for order in [MajorOrder::Unknown, MajorOrder::Unrecognized(3)] {
            let h = header(Dtype::Uint8, order, &[4], &[]);
            assert_eq!(
                validate_tensor_header(&h, 4),
                Err(TensorError::UnknownMajorOrder(order))
            );
        }
        let mut h = header(Dtype::Uint8, MajorOrder::Row, &[4], &[]);
        h.progress_unit = ProgressUnit::Unrecognized(7);
        assert_eq!(
            validate_tensor_header(&h, 4),
            Err(TensorError::UnknownProgressUnit(
                ProgressUnit::Unrecognized(7)
            ))
        );
    }

    #[test]
    fn entries_beyond_ndims_are_ignored() {
        let mut h = header(Dtype::Uint8, MajorOrder::Row, &[4], &[]);
        h.dims[3] = -5;
        h.strides[7] = -1;
        assert_eq!(validate_tensor_header(&h, 4), Ok(()));
    }

    #[test]
    fn contiguous_strides_are_inferred_per_major_order() {
        let row =
            tensor_layout(&header(Dtype::Int16, MajorOrder::Row, &[2, 3, 4], &[])).expect("valid");
        assert_eq!(&row.strides[..3], &[24, 8, 2]);
        assert_eq!(row.extent_bytes, 48);
        let col = tensor_layout(&header(Dtype::Int16, MajorOrder::Column, &[2, 3, 4], &[]))
            .expect("valid");
        assert_eq!(&col.strides[..3], &[2, 4, 12]);
        assert_eq!(col.extent_bytes, 48);
        // A zero among explicit strides is inferred from its inner neighbour.
        let mixed =
            tensor_layout(&header(Dtype::Uint8, MajorOrder::Row, &[2, 3], &[0, 4])).expect("valid");
        assert_eq!(&mixed.strides[..2], &[12, 4]);
        assert_eq!(mixed.extent_bytes, 12 + 8 + 1);
    }

    #[test]
    fn padded_strides_are_accepted_and_span_their_bytes() {
        // 480 rows of 640 RGB bytes padded to 2048-byte rows.
        let h = header(Dtype::Uint8, MajorOrder::Row, &[480, 640, 3], &[2048, 3, 1]);
        let layout = tensor_layout(&h).expect("valid");
        assert_eq!(layout.extent_bytes, 479 * 2048 + 639 * 3 + 2 + 1);
        assert_eq!(validate_tensor_header(&h, 480 * 2048), Ok(()));
        assert!(matches!(
            validate_tensor_header(&h, 479 * 2048),
            Err(TensorError::ExceedsPayload { .. })
        ));
    }

    #[test]
    fn overlapping_or_misordered_strides_are_refused() {
        // Row-major rows of 4 bytes cannot be 3 bytes apart.
        assert_eq!(
            validate_tensor_header(&header(Dtype::Uint8, MajorOrder::Row, &[2, 4], &[3, 1]), 64),
            Err(TensorError::Overlap {
                index: 0,
                stride: 3,
                min: 4
            })
        );
        // Column-major strides written in row-major order contradict the major order.
        assert_eq!(
            validate_tensor_header(
                &header(Dtype::Uint8, MajorOrder::Column, &[2, 4], &[4, 1]),
                64
            ),
            Err(TensorError::Overlap {
                index: 1,
                stride: 1,
                min: 8
            })
        );
        // The innermost stride must hold an element.
        assert_eq!(
            validate_tensor_header(&header(Dtype::Float64, MajorOrder::Row, &[4], &[4]), 64),
            Err(TensorError::Overlap {
                index: 0,
                stride: 4,
                min: 8
            })
        );
    }

    #[test]
    fn empty_tensors_span_nothing() {
        let h = header(Dtype::Float32, MajorOrder::Row, &[0, 5], &[]);
        assert_eq!(tensor_layout(&h).map(|l| l.extent_bytes), Ok(0));
        assert_eq!(validate_tensor_header(&h, 0), Ok(()));
    }

    #[test]
    fn huge_layouts_do_not_overflow() {
        let h = header(Dtype::Float64, MajorOrder::Row, &[i32::MAX; 8], &[]);
        assert_eq!(tensor_layout(&h), Err(TensorError::TooLarge));
        let h = header(
            Dtype::Uint8,
            MajorOrder::Row,
            &[i32::MAX, i32::MAX, i32::MAX],
            &[i32::MAX, i32::MAX, i32::MAX],
        );
        // Strides that do not nest are an overlap, found before any overflow.
        assert!(matches!(
            tensor_layout(&h),
            Err(TensorError::Overlap { index: 1, .. })
        ));
    }

    #[test]
    fn progress_stride_must_match_rows_or_columns() {
        let base = header(Dtype::Uint16, MajorOrder::Row, &[480, 640], &[]);
        let rows = with_progress(base, ProgressUnit::Rows).expect("rows");
        assert_eq!(rows.progress_unit, ProgressUnit::Rows);
        assert_eq!(rows.progress_stride_bytes, 1280);
        assert_eq!(validate_tensor_header(&rows, 480 * 1280), Ok(()));
        let cols = with_progress(base, ProgressUnit::Columns).expect("columns");
        assert_eq!(cols.progress_stride_bytes, 2);
        assert_eq!(validate_tensor_header(&cols, 480 * 1280), Ok(()));

        let mut zero = rows;
        zero.progress_stride_bytes = 0;
        assert_eq!(
            validate_tensor_header(&zero, 480 * 1280),
            Err(TensorError::ProgressStride {
                unit: ProgressUnit::Rows,
                expected: 1280,
                actual: 0
            })
        );
        let mut wrong = rows;
        wrong.progress_stride_bytes = 640;
        assert!(matches!(
            validate_tensor_header(&wrong, 480 * 1280),
            Err(TensorError::ProgressStride { .. })
        ));
        let vector = header(Dtype::Uint8, MajorOrder::Row, &[16], &[]);
        assert_eq!(
            with_progress(vector, ProgressUnit::Columns),
            Err(TensorError::ProgressUnitNeedsDims {
                unit: ProgressUnit::Columns,
                ndims: 1
            })
        );
        // NONE ignores whatever progress_stride_bytes holds.
        let mut none = base;
        none.progress_stride_bytes = 17;
        assert_eq!(validate_tensor_header(&none, 480 * 1280), Ok(()));
        assert_eq!(
            with_progress(rows, ProgressUnit::None).map(|h| h.progress_stride_bytes),
            Ok(0)
        );
    }

    #[test]
    fn element_sizes() {
        assert_eq!(dtype_size_bytes(Dtype::Bit), Some(1));
        assert_eq!(dtype_size_bytes(Dtype::Bytes), Some(1));
        assert_eq!(dtype_size_bytes(Dtype::Int16), Some(2));
        assert_eq!(dtype_size_bytes(Dtype::Float32), Some(4));
        assert_eq!(dtype_size_bytes(Dtype::Uint64), Some(8));
        assert_eq!(dtype_size_bytes(Dtype::Unknown), None);
    }

    #[test]
    fn entries_beyond_ndims_are_zero_filled_and_reported() {
        let mut h = tensor_header(Dtype::Uint8, MajorOrder::Row, &[4, 5], &[]).expect("valid");
        assert!(!zero_fill_beyond_ndims(&mut h), "a built header is clean");
        h.dims[2] = 7;
        h.strides[7] = -1;
        assert!(zero_fill_beyond_ndims(&mut h));
        assert_eq!(
            (h.dims[..2].to_vec(), h.dims[2..].to_vec()),
            (vec![4, 5], vec![0; 6])
        );
        assert_eq!(h.strides[2..], [0; 6]);
        h.ndims = 9;
        h.dims[7] = 3;
        assert!(
            !zero_fill_beyond_ndims(&mut h),
            "an invalid rank is left to validation"
        );
        assert_eq!(h.dims[7], 3);
    }
}
