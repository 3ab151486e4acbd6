//! `tp_tensor`: the tensor description of a frame (Wire Spec §8.2 `TensorHeader`) as a
//! plain C struct, and its conversions. Enumerations cross the boundary as integers and
//! are checked on the way in, so an undefined value is an error, never undefined
//! behaviour.

use crate::status::{guard, tp_status, write_out, Failure};
use tensorpool::client::tensor::{bytes_header, tensor_layout};
use tensorpool::protocol::control::{tensor_header, Dtype, MajorOrder, ProgressUnit, TensorHeader};

/// Most dimensions a tensor has.
pub const TP_MAX_DIMS: usize = 8;

/// Element types (`tp_tensor.dtype`), as the wire schema numbers them.
#[allow(non_camel_case_types)]
#[repr(i16)]
#[derive(Debug, Clone, Copy)]
pub enum tp_dtype {
    /// Not a valid element type for a frame.
    TP_DTYPE_UNKNOWN = 0,
    /// 8-bit unsigned.
    TP_DTYPE_UINT8 = 1,
    /// 8-bit signed.
    TP_DTYPE_INT8 = 2,
    /// 16-bit unsigned.
    TP_DTYPE_UINT16 = 3,
    /// 16-bit signed.
    TP_DTYPE_INT16 = 4,
    /// 32-bit unsigned.
    TP_DTYPE_UINT32 = 5,
    /// 32-bit signed.
    TP_DTYPE_INT32 = 6,
    /// 64-bit unsigned.
    TP_DTYPE_UINT64 = 7,
    /// 64-bit signed.
    TP_DTYPE_INT64 = 8,
    /// IEEE 754 binary32.
    TP_DTYPE_FLOAT32 = 9,
    /// IEEE 754 binary64.
    TP_DTYPE_FLOAT64 = 10,
    /// One byte per boolean.
    TP_DTYPE_BOOLEAN = 11,
    /// Opaque bytes.
    TP_DTYPE_BYTES = 13,
    /// Bits (one element per byte).
    TP_DTYPE_BIT = 14,
}

/// Major order (`tp_tensor.major_order`).
#[allow(non_camel_case_types)]
#[repr(i16)]
#[derive(Debug, Clone, Copy)]
pub enum tp_major_order {
    /// Not valid for a frame.
    TP_MAJOR_ORDER_UNKNOWN = 0,
    /// Row-major (C order).
    TP_MAJOR_ORDER_ROW = 1,
    /// Column-major (Fortran order).
    TP_MAJOR_ORDER_COLUMN = 2,
}

/// Progress unit (`tp_tensor.progress_unit`).
#[allow(non_camel_case_types)]
#[repr(u8)]
#[derive(Debug, Clone, Copy)]
pub enum tp_progress_unit {
    /// No progress reporting.
    TP_PROGRESS_NONE = 0,
    /// Progress in rows (`dims[0]`).
    TP_PROGRESS_ROWS = 1,
    /// Progress in columns (`dims[1]`).
    TP_PROGRESS_COLUMNS = 2,
}

/// A tensor description: element type, layout and shape of a frame's payload. Entries of
/// `dims` and `strides` at and beyond `ndims` are ignored; a stride of 0 means
/// contiguous. `tp_tensor_bytes` fills one for a plain byte payload.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_tensor {
    /// A `tp_dtype` value.
    pub dtype: i16,
    /// A `tp_major_order` value.
    pub major_order: i16,
    /// Number of dimensions, 1..=TP_MAX_DIMS.
    pub ndims: u8,
    /// Alignment padding hint (informational).
    pub pad_align: u8,
    /// A `tp_progress_unit` value.
    pub progress_unit: u8,
    /// Byte stride of the progress unit (0 with TP_PROGRESS_NONE).
    pub progress_stride_bytes: u32,
    /// Extent of each dimension.
    pub dims: [i32; TP_MAX_DIMS],
    /// Byte stride of each dimension (0 = contiguous).
    pub strides: [i32; TP_MAX_DIMS],
}

impl tp_tensor {
    /// The wire form (unchecked: the producer checks it against the payload).
    pub(crate) fn to_header(self) -> TensorHeader {
        TensorHeader {
            dtype: Dtype::from_raw(self.dtype),
            major_order: MajorOrder::from_raw(self.major_order),
            ndims: self.ndims,
            pad_align: self.pad_align,
            progress_unit: ProgressUnit::from_raw(self.progress_unit),
            progress_stride_bytes: self.progress_stride_bytes,
            dims: self.dims,
            strides: self.strides,
            pad: [0; tensor_header::PAD_LEN],
        }
    }

    /// The C form of a header read from a slot.
    pub(crate) fn from_header(header: &TensorHeader) -> Self {
        Self {
            dtype: header.dtype.raw(),
            major_order: header.major_order.raw(),
            ndims: header.ndims,
            pad_align: header.pad_align,
            progress_unit: header.progress_unit.raw(),
            progress_stride_bytes: header.progress_stride_bytes,
            dims: header.dims,
            strides: header.strides,
        }
    }
}

/// Fills `*out` with a one-dimensional UINT8 tensor of `len` bytes (row-major,
/// contiguous): the description of a plain byte payload.
#[no_mangle]
pub extern "C" fn tp_tensor_bytes(len: usize, out: *mut tp_tensor) -> tp_status {
    guard(|| {
        let header = bytes_header(len)
            .map_err(|e| Failure::new(tp_status::TP_ERROR_INVALID_TENSOR, e.to_string()))?;
        // SAFETY: `out` is NULL or writable (the ABI contract).
        unsafe { write_out(out, "out", tp_tensor::from_header(&header)) }
    })
}

/// Checks `*tensor` against the Wire Spec §8.2 rules and stores in `*extent_bytes` (may
/// be NULL) how many payload bytes it spans.
#[no_mangle]
pub extern "C" fn tp_tensor_validate(
    tensor: *const tp_tensor,
    extent_bytes: *mut u64,
) -> tp_status {
    guard(|| {
        if tensor.is_null() {
            return Err(Failure::null("tensor"));
        }
        // SAFETY: non-NULL and readable (the ABI contract).
        let header = unsafe { *tensor }.to_header();
        let layout = tensor_layout(&header)
            .map_err(|e| Failure::new(tp_status::TP_ERROR_INVALID_TENSOR, e.to_string()))?;
        if !extent_bytes.is_null() {
            // SAFETY: non-NULL and writable (the ABI contract).
            unsafe { extent_bytes.write(layout.extent_bytes) };
        }
        Ok(())
    })
}
