//! Property tests: the generated SBE decoders never panic on arbitrary or mutated input,
//! every accessor of a successfully wrapped decoder is callable, and whatever decodes
//! re-encodes to a message that decodes to the same values.

#[path = "common/decoder_checks.rs"]
mod decoder_checks;

use decoder_checks::{exercise_bodies, exercise_control, exercise_driver};
use proptest::collection::vec;
use proptest::prelude::*;
use tensorpool::protocol::{control, driver};

// ---------------------------------------------------------------------------------------
// Strategies: valid encodings of arbitrary values
// ---------------------------------------------------------------------------------------

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// An optional primitive that never takes its null sentinel as a `Some` value.
fn opt_u32() -> impl Strategy<Value = Option<u32>> {
    any::<Option<u32>>().prop_map(|o| o.filter(|v| *v != u32::MAX))
}

fn opt_u64() -> impl Strategy<Value = Option<u64>> {
    any::<Option<u64>>().prop_map(|o| o.filter(|v| *v != u64::MAX))
}

fn opt_u16() -> impl Strategy<Value = Option<u16>> {
    any::<Option<u16>>().prop_map(|o| o.filter(|v| *v != u16::MAX))
}

fn encode_to_vec(len: usize, f: impl FnOnce(&mut [u8]) -> usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let n = f(&mut out);
    assert_eq!(n, len);
    out
}

type Pool = (u16, u32, u32, Vec<u8>);

fn pools() -> impl Strategy<Value = Vec<Pool>> {
    vec((any::<u16>(), any::<u32>(), any::<u32>(), bytes(40)), 0..4)
}

/// The `payloadPools` entries (of the entry type `$Entry`) for the generated `$pools`.
macro_rules! pool_entries {
    ($Entry:ident, $pools:expr) => {
        $pools
            .iter()
            .map(|(id, n, st, uri)| $Entry {
                pool_id: *id,
                pool_nslots: *n,
                stride_bytes: *st,
                region_uri: uri,
            })
            .collect::<Vec<_>>()
    };
}

/// A valid encoding of an arbitrary driver message.
fn driver_message() -> impl Strategy<Value = Vec<u8>> {
    use driver::*;
    prop_oneof![
        (
            any::<i64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            opt_u32()
        )
            .prop_map(|(c, s, cl, r, lv, pm, hp, node)| {
                let v = ShmAttachRequest {
                    correlation_id: c,
                    stream_id: s,
                    client_id: cl,
                    role: Role::from_raw(r),
                    expected_layout_version: lv,
                    publish_mode: (pm != 255).then(|| PublishMode::from_raw(pm)),
                    require_hugepages: HugepagesPolicy::from_raw(hp),
                    desired_node_id: node,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            (any::<i64>(), any::<i32>(), opt_u64(), opt_u64(), opt_u32()),
            (opt_u64(), opt_u32(), opt_u32(), opt_u16(), opt_u32()),
            pools(),
            bytes(40),
            bytes(40)
        )
            .prop_map(
                |((c, code, lease, exp, sid), (ep, lv, ns, sb, node), p, hu, em)| {
                    let entries = pool_entries!(ShmAttachResponsePayloadPools, p);
                    let v = ShmAttachResponse {
                        correlation_id: c,
                        code: ResponseCode::from_raw(code),
                        lease_id: lease,
                        lease_expiry_timestamp_ns: exp,
                        stream_id: sid,
                        epoch: ep,
                        layout_version: lv,
                        header_nslots: ns,
                        header_slot_bytes: sb,
                        node_id: node,
                        payload_pools: &entries,
                        header_region_uri: &hu,
                        error_message: &em,
                    };
                    encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
                }
            ),
        (
            any::<i64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>()
        )
            .prop_map(|(c, l, s, cl, r)| {
                let v = ShmDetachRequest {
                    correlation_id: c,
                    lease_id: l,
                    stream_id: s,
                    client_id: cl,
                    role: Role::from_raw(r),
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (any::<i64>(), any::<i32>(), bytes(60)).prop_map(|(c, code, em)| {
            let v = ShmDetachResponse {
                correlation_id: c,
                code: ResponseCode::from_raw(code),
                error_message: &em,
            };
            encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
        }),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u64>()
        )
            .prop_map(|(l, s, c, r, t)| {
                let v = ShmLeaseKeepalive {
                    lease_id: l,
                    stream_id: s,
                    client_id: c,
                    role: Role::from_raw(r),
                    client_timestamp_ns: t,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (any::<u64>(), any::<u8>(), bytes(60)).prop_map(|(t, r, em)| {
            let v = ShmDriverShutdown {
                timestamp_ns: t,
                reason: ShutdownReason::from_raw(r),
                error_message: &em,
            };
            encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            bytes(60)
        )
            .prop_map(|(t, l, s, c, r, why, em)| {
                let v = ShmLeaseRevoked {
                    timestamp_ns: t,
                    lease_id: l,
                    stream_id: s,
                    client_id: c,
                    role: Role::from_raw(r),
                    reason: LeaseRevokeReason::from_raw(why),
                    error_message: &em,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (any::<i64>(), any::<u8>(), bytes(40), bytes(40)).prop_map(|(c, r, tok, em)| {
            let v = ShmDriverShutdownRequest {
                correlation_id: c,
                reason: ShutdownReason::from_raw(r),
                token: &tok,
                error_message: &em,
            };
            encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
        }),
    ]
}

fn i32x8() -> impl Strategy<Value = [i32; 8]> {
    any::<[i32; 8]>()
}

fn tensor_value() -> impl Strategy<Value = control::TensorHeader> {
    use control::*;
    (
        (
            any::<i16>(),
            any::<i16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
        ),
        any::<u32>(),
        i32x8(),
        i32x8(),
        vec(any::<u8>(), 109),
    )
        .prop_map(|((dt, mo, nd, pa, pu), psb, dims, strides, pad)| {
            let mut p = [0u8; 109];
            p.copy_from_slice(&pad);
            TensorHeader {
                dtype: Dtype::from_raw(dt),
                major_order: MajorOrder::from_raw(mo),
                ndims: nd,
                pad_align: pa,
                progress_unit: ProgressUnit::from_raw(pu),
                progress_stride_bytes: psb,
                dims,
                strides,
                pad: p,
            }
        })
}

/// A valid encoding of an arbitrary control message.
fn control_message() -> impl Strategy<Value = Vec<u8>> {
    use control::*;
    prop_oneof![
        (
            (
                any::<u32>(),
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                any::<u8>()
            ),
            (any::<u32>(), any::<u32>(), any::<u16>()),
            pools(),
            bytes(40)
        )
            .prop_map(|((s, p, e, t, cd), (lv, ns, sb), pl, hu)| {
                let entries = pool_entries!(ShmPoolAnnouncePayloadPools, pl);
                let v = ShmPoolAnnounce {
                    stream_id: s,
                    producer_id: p,
                    epoch: e,
                    announce_timestamp_ns: t,
                    announce_clock_domain: ClockDomain::from_raw(cd),
                    layout_version: lv,
                    header_nslots: ns,
                    header_slot_bytes: sb,
                    payload_pools: &entries,
                    header_region_uri: &hu,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            (
                any::<u32>(),
                any::<u32>(),
                any::<u8>(),
                any::<u8>(),
                any::<u8>()
            ),
            (any::<u32>(), any::<u32>(), opt_u32(), opt_u32(), opt_u32()),
            (any::<u32>(), any::<u32>(), bytes(40), bytes(40))
        )
            .prop_map(
                |((s, c, shm, prog, m), (rate, lv, pi, pb, pm), (ds, cs, dc, cc))| {
                    let v = ConsumerHello {
                        stream_id: s,
                        consumer_id: c,
                        supports_shm: Bool::from_raw(shm),
                        supports_progress: Bool::from_raw(prog),
                        mode: Mode::from_raw(m),
                        max_rate_hz: rate,
                        expected_layout_version: lv,
                        progress_interval_us: pi,
                        progress_bytes_delta: pb,
                        progress_major_delta_units: pm,
                        descriptor_stream_id: ds,
                        control_stream_id: cs,
                        descriptor_channel: &dc,
                        control_channel: &cc,
                    };
                    encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
                }
            ),
        (
            (any::<u32>(), any::<u32>(), any::<u8>(), any::<u8>()),
            (any::<u32>(), any::<u32>()),
            (bytes(30), bytes(30), bytes(30))
        )
            .prop_map(|((s, c, shm, m), (ds, cs), (fb, dc, cc))| {
                let v = ConsumerConfig {
                    stream_id: s,
                    consumer_id: c,
                    use_shm: Bool::from_raw(shm),
                    mode: Mode::from_raw(m),
                    descriptor_stream_id: ds,
                    control_stream_id: cs,
                    payload_fallback_uri: &fb,
                    descriptor_channel: &dc,
                    control_channel: &cc,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            opt_u64(),
            opt_u32(),
            any::<Option<u64>>()
        )
            .prop_map(|(s, e, q, t, mv, tr)| {
                let v = FrameDescriptor {
                    stream_id: s,
                    epoch: e,
                    seq: q,
                    timestamp_ns: t,
                    meta_version: mv,
                    trace_id: tr.filter(|x| *x != 0),
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u8>()
        )
            .prop_map(|(s, e, q, f, st)| {
                let v = FrameProgress {
                    stream_id: s,
                    epoch: e,
                    seq: q,
                    payload_bytes_filled: f,
                    state: FrameProgressState::from_raw(st),
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u8>()
        )
            .prop_map(|(s, c, e, l, g, late, m)| {
                let v = QosConsumer {
                    stream_id: s,
                    consumer_id: c,
                    epoch: e,
                    last_seq_seen: l,
                    drops_gap: g,
                    drops_late: late,
                    mode: Mode::from_raw(m),
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            opt_u32()
        )
            .prop_map(|(s, p, e, q, w)| {
                let v = QosProducer {
                    stream_id: s,
                    producer_id: p,
                    epoch: e,
                    current_seq: q,
                    watermark: w,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            (
                any::<u64>(),
                any::<u32>(),
                any::<u64>(),
                any::<u32>(),
                any::<i16>()
            ),
            (any::<u16>(), any::<u32>(), any::<u32>(), any::<u32>()),
            (any::<u64>(), any::<u64>(), any::<u64>())
        )
            .prop_map(|((m, lv, e, s, rt), (pid_, n, sb, st), (pid, t0, t1))| {
                let v = ShmRegionSuperblock {
                    magic: m,
                    layout_version: lv,
                    epoch: e,
                    stream_id: s,
                    region_type: RegionType::from_raw(rt),
                    pool_id: pid_,
                    nslots: n,
                    slot_bytes: sb,
                    stride_bytes: st,
                    pid,
                    start_timestamp_ns: t0,
                    activity_timestamp_ns: t1,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            (any::<u64>(), any::<u32>(), any::<u32>(), any::<u16>()),
            (
                any::<u32>(),
                any::<u64>(),
                any::<u32>(),
                vec(any::<u8>(), 26)
            ),
            tensor_value()
        )
            .prop_map(|((sc, vl, ps, pid), (po, t, mv, pad), th)| {
                let mut embedded = [0u8; 192];
                assert_eq!(th.encode(&mut embedded), Ok(192));
                let mut p = [0u8; 26];
                p.copy_from_slice(&pad);
                let v = SlotHeader {
                    seq_commit: sc,
                    values_len_bytes: vl,
                    payload_slot: ps,
                    pool_id: pid,
                    payload_offset: po,
                    timestamp_ns: t,
                    meta_version: mv,
                    pad: p,
                    header_bytes: &embedded,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        tensor_value().prop_map(|v| encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            bytes(30),
            bytes(60)
        )
            .prop_map(|(s, p, e, mv, n, sm)| {
                let v = DataSourceAnnounce {
                    stream_id: s,
                    producer_id: p,
                    epoch: e,
                    meta_version: mv,
                    name: &n,
                    summary: &sm,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<u64>(),
            vec((bytes(16), bytes(8), bytes(24)), 0..5)
        )
            .prop_map(|(s, mv, t, attrs)| {
                let entries: Vec<_> = attrs
                    .iter()
                    .map(|(k, f, v)| DataSourceMetaAttributes {
                        key: k,
                        format: f,
                        value: v,
                    })
                    .collect();
                let v = DataSourceMeta {
                    stream_id: s,
                    meta_version: mv,
                    timestamp_ns: t,
                    attributes: &entries,
                };
                encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
            }),
        (any::<i64>(), any::<i32>(), bytes(60)).prop_map(|(c, code, em)| {
            let v = ControlResponse {
                correlation_id: c,
                code: ResponseCode::from_raw(code),
                error_message: &em,
            };
            encode_to_vec(v.encoded_len(), |b| v.encode(b).unwrap())
        }),
    ]
}

/// Applies byte flips (position modulo length, xor with a non-zero mask) and an
/// optional truncation.
fn mutate(mut buf: Vec<u8>, flips: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !buf.is_empty() {
        for (pos, mask) in flips {
            let i = pos % buf.len();
            buf[i] ^= mask | 1;
        }
    }
    if let Some(c) = cut {
        let keep = c % (buf.len() + 1);
        buf.truncate(keep);
    }
    buf
}

/// A header of the given schema with a known template id and a block length near the
/// schema's (smaller, equal or larger), followed by arbitrary bytes.
fn framed(schema: u16, templates: &'static [(u16, u16)]) -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(templates),
        -4i32..12,
        0u16..3,
        bytes(512),
    )
        .prop_map(move |((template, block), delta, version, body)| {
            let bl = (i32::from(block) + delta).max(0) as u16;
            let mut out = Vec::with_capacity(8 + body.len());
            out.extend_from_slice(&bl.to_le_bytes());
            out.extend_from_slice(&template.to_le_bytes());
            out.extend_from_slice(&schema.to_le_bytes());
            out.extend_from_slice(&version.to_le_bytes());
            out.extend_from_slice(&body);
            out
        })
}

/// (template id, schema block length) per driver message (Driver Model Appendix A).
const DRIVER_TEMPLATES: &[(u16, u16)] = &[
    (1, 27),
    (2, 54),
    (3, 25),
    (4, 12),
    (5, 25),
    (6, 9),
    (7, 26),
    (8, 9),
];

/// (template id, schema block length) per control message (Wire Spec §16).
const CONTROL_TEMPLATES: &[(u16, u16)] = &[
    (1, 35),
    (2, 39),
    (3, 18),
    (4, 40),
    (11, 29),
    (5, 41),
    (6, 28),
    (50, 64),
    (51, 60),
    (52, 184),
    (7, 20),
    (8, 16),
    (9, 12),
];

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    /// Arbitrary bytes never panic any driver decoder.
    #[test]
    fn driver_arbitrary_bytes_never_panic(buf in bytes(512)) {
        exercise_driver(&buf);
    }

    /// Arbitrary bytes never panic any control decoder.
    #[test]
    fn control_arbitrary_bytes_never_panic(buf in bytes(512)) {
        exercise_control(&buf);
    }

    /// A plausible driver header over an arbitrary body never panics.
    #[test]
    fn driver_framed_random_body_never_panics(buf in framed(901, DRIVER_TEMPLATES)) {
        exercise_driver(&buf);
    }

    /// A plausible control header over an arbitrary body never panics.
    #[test]
    fn control_framed_random_body_never_panics(buf in framed(900, CONTROL_TEMPLATES)) {
        exercise_control(&buf);
    }

    /// Headerless wraps with arbitrary block lengths and versions never panic.
    #[test]
    fn wrap_body_arbitrary_never_panics(
        buf in bytes(512),
        block_length in prop_oneof![0usize..300, any::<usize>()],
        version in any::<u16>(),
    ) {
        exercise_bodies(&buf, block_length, version);
    }

    /// Valid driver encodings decode, and survive byte flips and truncation.
    #[test]
    fn driver_mutated_encodings_never_panic(
        msg in driver_message(),
        flips in vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<Option<usize>>(),
    ) {
        prop_assert!(driver::AnyMessage::decode(&msg).is_ok());
        exercise_driver(&msg);
        let m = mutate(msg, &flips, cut);
        exercise_driver(&m);
        if m.len() >= 8 {
            exercise_bodies(&m[8..], usize::from(u16::from_le_bytes([m[0], m[1]])), 1);
        }
    }

    /// Valid control encodings decode, and survive byte flips and truncation.
    #[test]
    fn control_mutated_encodings_never_panic(
        msg in control_message(),
        flips in vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<Option<usize>>(),
    ) {
        prop_assert!(control::AnyMessage::decode(&msg).is_ok());
        exercise_control(&msg);
        let m = mutate(msg, &flips, cut);
        exercise_control(&m);
        if m.len() >= 8 {
            exercise_bodies(&m[8..], usize::from(u16::from_le_bytes([m[0], m[1]])), 1);
        }
    }

    /// Every strict prefix of a valid encoding is refused (never silently accepted).
    #[test]
    fn truncated_valid_encodings_are_refused(
        d in driver_message(),
        c in control_message(),
        cut in any::<usize>(),
    ) {
        let dk = cut % d.len();
        prop_assert!(driver::AnyMessage::decode(&d[..dk]).is_err());
        let ck = cut % c.len();
        prop_assert!(control::AnyMessage::decode(&c[..ck]).is_err());
    }
}
