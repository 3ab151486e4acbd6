//! Assertions shared by the codec tests (encode into poisoned buffers, every short
//! buffer refused, decode errors by part).

use tensorpool::protocol::{DecodeError, EncodeError};

/// Encodes through `f` into a buffer pre-filled with 0xA5 (so bytes the encoder fails to
/// write — e.g. unzeroed padding — show up), checks the returned length and that nothing
/// past it was touched, and returns the written bytes.
#[track_caller]
pub fn encode_with(len: usize, f: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut buf = vec![0xA5u8; len + 16];
    let n = f(&mut buf).expect("encode succeeds");
    assert_eq!(
        n, len,
        "encode returned a length different from encoded_len()"
    );
    assert!(
        buf[n..].iter().all(|b| *b == 0xA5),
        "encoder wrote past the length it reported"
    );
    buf.truncate(n);
    buf
}

/// Every buffer shorter than `len` is refused with `BufferTooSmall`, without panicking.
#[track_caller]
pub fn assert_too_small_everywhere(
    len: usize,
    f: impl Fn(&mut [u8]) -> Result<usize, EncodeError>,
) {
    for n in 0..len {
        let mut buf = vec![0u8; n];
        assert_eq!(
            f(&mut buf),
            Err(EncodeError::BufferTooSmall {
                needed: len,
                available: n
            }),
            "buffer of {n} bytes (needed {len})"
        );
    }
}

/// The decode error of `r` (decoders are `Debug`).
#[track_caller]
pub fn err<T: std::fmt::Debug>(r: Result<T, DecodeError>) -> DecodeError {
    r.expect_err("decoding must fail")
}

/// Asserts a `Truncated` error naming `part` (substring of `at`) with `needed > available`.
#[track_caller]
pub fn assert_truncated(e: DecodeError, part: &str) {
    match e {
        DecodeError::Truncated {
            at,
            needed,
            available,
        } => {
            assert!(
                at.contains(part),
                "truncation reported in `{at}`, expected `{part}`"
            );
            assert!(
                needed > available,
                "needed {needed} <= available {available}"
            );
        }
        other => panic!("expected Truncated in {part}, got {other:?}"),
    }
}
