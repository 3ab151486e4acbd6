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

/// Environment variable naming a directory: when set, every message a byte-pinning test
/// checked is also written there, as a seed for the SBE fuzz targets (scripts/fuzz.sh).
pub const FUZZ_SEED_DIR_ENV: &str = "TP_FUZZ_SEED_DIR";

/// Writes `bytes` to the seed directory of [`FUZZ_SEED_DIR_ENV`], if set, under a name
/// derived from the content (FNV-1a), so repeated runs add no duplicates.
pub fn seed_fuzz_corpus(bytes: &[u8]) {
    let Some(dir) = std::env::var_os(FUZZ_SEED_DIR_ENV) else {
        return;
    };
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let dir = std::path::Path::new(&dir);
    std::fs::create_dir_all(dir).expect("creating the fuzz seed directory");
    std::fs::write(dir.join(format!("{hash:016x}")), bytes).expect("writing a fuzz seed");
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

/// Every cut `full[..n]` for `n` in `cuts` is refused by `decode` as `Truncated` in `part`
/// (see [`assert_truncated`]); `decode` maps the bytes to the error, e.g.
/// `|b| err(FooDecoder::wrap(b))`.
#[track_caller]
pub fn assert_cuts_truncated(
    full: &[u8],
    cuts: std::ops::Range<usize>,
    part: &str,
    decode: impl Fn(&[u8]) -> DecodeError,
) {
    for n in cuts {
        assert_truncated(decode(&full[..n]), part);
    }
}

/// Every cut of `full` inside its 8-byte message header is refused as `Truncated` in the
/// "message header" (needed 8, available the cut) by `wrap`, and as `Truncated` needing 8
/// by `any` (the schema's `AnyMessage::decode`).
#[track_caller]
pub fn assert_header_cuts_truncated(
    full: &[u8],
    wrap: impl Fn(&[u8]) -> DecodeError,
    any: impl Fn(&[u8]) -> DecodeError,
) {
    for n in 1..8 {
        assert_eq!(
            wrap(&full[..n]),
            DecodeError::Truncated {
                at: "message header",
                needed: 8,
                available: n
            }
        );
        assert!(matches!(
            any(&full[..n]),
            DecodeError::Truncated { needed: 8, .. }
        ));
    }
}

/// `any` (the schema's `AnyMessage::decode`) refuses `msg` with each of `templates` written
/// as its template id as an `UnknownTemplate` of `schema_id`.
#[track_caller]
pub fn assert_unknown_templates(
    msg: &[u8],
    schema_id: u16,
    templates: &[u16],
    any: impl Fn(&[u8]) -> DecodeError,
) {
    for &template in templates {
        let mut buf = msg.to_vec();
        buf[2..4].copy_from_slice(&template.to_le_bytes());
        assert_eq!(
            any(&buf),
            DecodeError::UnknownTemplate {
                schema_id,
                template_id: template
            }
        );
    }
}

// Macros for what the generated value and decoder types have in common by name only (they
// share no trait). They expect the test crate to include this file as `codec` and
// `common/bytes.rs` as `bytes`.

/// Encodes the value `$v` with [`encode_with`] (`encoded_len()` bytes, `encode`), asserts
/// the bytes equal `$expected` and evaluates to them.
macro_rules! assert_encodes {
    ($v:expr, $expected:expr) => {{
        let v = &$v;
        let got = $crate::codec::encode_with(v.encoded_len(), |b| v.encode(b));
        $crate::bytes::assert_bytes(&got, &$expected);
        $crate::codec::seed_fuzz_corpus(&got);
        got
    }};
}
pub(crate) use assert_encodes;

/// [`assert_encodes!`], then asserts that `<$T>::decode` of the bytes gives `$v` back;
/// evaluates to the bytes.
macro_rules! assert_round_trip {
    ($T:ty, $v:expr, $expected:expr) => {{
        let v = $v;
        let got = $crate::codec::assert_encodes!(v, $expected);
        assert_eq!(<$T>::decode(&got), Ok(v));
        got
    }};
}
pub(crate) use assert_round_trip;

/// Encodes `$v` with and without its message header, asserts that `encode_body` writes
/// exactly what `encode` writes after the 8-byte header, and evaluates to the body.
macro_rules! assert_body_is_message_without_header {
    ($v:expr) => {{
        let v = &$v;
        let full = $crate::codec::encode_with(v.encoded_len(), |b| v.encode(b));
        let body = $crate::codec::encode_with(v.encoded_body_len(), |b| v.encode_body(b));
        $crate::bytes::assert_bytes(&body, &full[8..]);
        body
    }};
}
pub(crate) use assert_body_is_message_without_header;

/// Checks the decoded `payloadPools` group `$got` (the decoder's iterator) entry by entry,
/// every accessor and `to_value`, against the values `$want`, and that it yields exactly
/// as many entries as it reports.
macro_rules! assert_payload_pools {
    ($got:expr, $want:expr) => {{
        let (pools, wanted) = ($got, $want);
        assert_eq!(pools.len(), wanted.len());
        let mut n = 0;
        for (got, want) in pools.zip(wanted) {
            assert_eq!(got.pool_id(), want.pool_id);
            assert_eq!(got.pool_nslots(), want.pool_nslots);
            assert_eq!(got.stride_bytes(), want.stride_bytes);
            assert_eq!(got.region_uri(), want.region_uri);
            assert_eq!(&got.to_value(), want);
            n += 1;
        }
        assert_eq!(n, wanted.len());
    }};
}
pub(crate) use assert_payload_pools;
