//! Decoder checks shared by the property tests (tests/codec_fuzz.rs) and the cargo-fuzz
//! targets (fuzz/fuzz_targets/sbe_*.rs): wrap bytes with every generated SBE decoder, call
//! every accessor, and re-encode whatever decodes, which must decode to the same values.
//! Any panic is a finding.

#![allow(dead_code)]

use tensorpool::protocol::{control, driver};

// ---------------------------------------------------------------------------------------
// Exercising decoders
// ---------------------------------------------------------------------------------------

/// Encodes `$v`, the value of the decoder `$d`, into a buffer of exactly its
/// `encoded_len()`, checks the length `encode` returns and that the body is no longer than
/// what was decoded, and evaluates to the bytes.
macro_rules! reencode {
    ($v:expr, $d:expr) => {{
        let len = $v.encoded_len();
        let mut out = vec![0u8; len];
        assert_eq!($v.encode(&mut out), Ok(len));
        assert!($v.encoded_body_len() <= $d.encoded_body_len());
        out
    }};
}

/// For a decoder of a message without groups: call the bookkeeping accessors and every
/// getter (through `to_value`), format it, re-encode the value and check that it decodes
/// to the same value and is no longer than what was decoded.
macro_rules! check_flat {
    ($d:expr, $V:path) => {{
        let d = $d;
        let _ = (d.block_length(), d.acting_version(), d.encoded_body_len());
        let v = d.to_value();
        let _ = format!("{v:?} {d:?}");
        let out = reencode!(v, d);
        assert_eq!(<$V>::decode(&out), Ok(v));
    }};
}

/// The entries of the decoder `$d`'s `payloadPools` group as values, after calling every
/// accessor of each entry and formatting it.
macro_rules! pool_values {
    ($d:expr) => {{
        let d = $d;
        let pools: Vec<_> = d.payload_pools().map(|p| p.to_value()).collect();
        assert_eq!(pools.len(), d.payload_pools().len());
        for p in d.payload_pools() {
            let _ = (
                p.pool_id(),
                p.pool_nslots(),
                p.stride_bytes(),
                p.region_uri(),
            );
            let _ = format!("{p:?}");
        }
        pools
    }};
}

fn check_attach_response(d: &driver::ShmAttachResponseDecoder<'_>) {
    let _ = (d.block_length(), d.acting_version(), d.encoded_body_len());
    let pools = pool_values!(d);
    let v = driver::ShmAttachResponse {
        correlation_id: d.correlation_id(),
        code: d.code(),
        lease_id: d.lease_id(),
        lease_expiry_timestamp_ns: d.lease_expiry_timestamp_ns(),
        stream_id: d.stream_id(),
        epoch: d.epoch(),
        layout_version: d.layout_version(),
        header_nslots: d.header_nslots(),
        header_slot_bytes: d.header_slot_bytes(),
        node_id: d.node_id(),
        payload_pools: &pools,
        header_region_uri: d.header_region_uri(),
        error_message: d.error_message(),
    };
    let _ = format!("{v:?} {d:?} {}", d.code());
    let out = reencode!(v, d);
    let again = driver::ShmAttachResponseDecoder::wrap(&out).expect("re-encoded decodes");
    let pools2: Vec<_> = again.payload_pools().map(|p| p.to_value()).collect();
    assert_eq!(pools2, pools);
    assert_eq!(again.correlation_id(), v.correlation_id);
    assert_eq!(again.code(), v.code);
    assert_eq!(again.lease_id(), v.lease_id);
    assert_eq!(
        again.lease_expiry_timestamp_ns(),
        v.lease_expiry_timestamp_ns
    );
    assert_eq!(again.stream_id(), v.stream_id);
    assert_eq!(again.epoch(), v.epoch);
    assert_eq!(again.layout_version(), v.layout_version);
    assert_eq!(again.header_nslots(), v.header_nslots);
    assert_eq!(again.header_slot_bytes(), v.header_slot_bytes);
    assert_eq!(again.node_id(), v.node_id);
    assert_eq!(again.header_region_uri(), v.header_region_uri);
    assert_eq!(again.error_message(), v.error_message);
}

fn check_pool_announce(d: &control::ShmPoolAnnounceDecoder<'_>) {
    let _ = (d.block_length(), d.acting_version(), d.encoded_body_len());
    let pools = pool_values!(d);
    let v = control::ShmPoolAnnounce {
        stream_id: d.stream_id(),
        producer_id: d.producer_id(),
        epoch: d.epoch(),
        announce_timestamp_ns: d.announce_timestamp_ns(),
        announce_clock_domain: d.announce_clock_domain(),
        layout_version: d.layout_version(),
        header_nslots: d.header_nslots(),
        header_slot_bytes: d.header_slot_bytes(),
        payload_pools: &pools,
        header_region_uri: d.header_region_uri(),
    };
    let _ = format!("{v:?} {d:?} {}", d.announce_clock_domain());
    let out = reencode!(v, d);
    let again = control::ShmPoolAnnounceDecoder::wrap(&out).expect("re-encoded decodes");
    let pools2: Vec<_> = again.payload_pools().map(|p| p.to_value()).collect();
    assert_eq!(pools2, pools);
    assert_eq!(again.stream_id(), v.stream_id);
    assert_eq!(again.producer_id(), v.producer_id);
    assert_eq!(again.epoch(), v.epoch);
    assert_eq!(again.announce_timestamp_ns(), v.announce_timestamp_ns);
    assert_eq!(again.announce_clock_domain(), v.announce_clock_domain);
    assert_eq!(again.layout_version(), v.layout_version);
    assert_eq!(again.header_nslots(), v.header_nslots);
    assert_eq!(again.header_slot_bytes(), v.header_slot_bytes);
    assert_eq!(again.header_region_uri(), v.header_region_uri);
}

fn check_data_source_meta(d: &control::DataSourceMetaDecoder<'_>) {
    let _ = (d.block_length(), d.acting_version(), d.encoded_body_len());
    let attrs: Vec<_> = d.attributes().map(|a| a.to_value()).collect();
    assert_eq!(attrs.len(), d.attributes().len());
    for a in d.attributes() {
        let _ = (a.key(), a.format(), a.value());
        let _ = format!("{a:?}");
    }
    let v = control::DataSourceMeta {
        stream_id: d.stream_id(),
        meta_version: d.meta_version(),
        timestamp_ns: d.timestamp_ns(),
        attributes: &attrs,
    };
    let _ = format!("{v:?} {d:?}");
    let out = reencode!(v, d);
    let again = control::DataSourceMetaDecoder::wrap(&out).expect("re-encoded decodes");
    let attrs2: Vec<_> = again.attributes().map(|a| a.to_value()).collect();
    assert_eq!(attrs2, attrs);
    assert_eq!(again.stream_id(), v.stream_id);
    assert_eq!(again.meta_version(), v.meta_version);
    assert_eq!(again.timestamp_ns(), v.timestamp_ns);
}

fn check_tensor_header(d: &control::TensorHeaderDecoder<'_>) {
    assert_eq!(d.max_dims(), 8);
    let _ = (
        d.dtype().name(),
        d.major_order().is_known(),
        d.progress_unit().raw(),
    );
    let _ = (d.dims(), d.strides(), d.pad(), d.ndims(), d.pad_align());
    let _ = format!("{} {} {}", d.dtype(), d.major_order(), d.progress_unit());
    check_flat!(*d, control::TensorHeader);
}

fn check_slot_header(d: &control::SlotHeaderDecoder<'_>) {
    check_flat!(*d, control::SlotHeader);
    // The embedded header is itself a message that must decode without panicking.
    let hb = d.header_bytes();
    if let Ok(t) = control::TensorHeaderDecoder::wrap(hb) {
        check_tensor_header(&t);
    }
    let _ = control::AnyMessage::decode(hb);
}

fn check_driver_any(m: &driver::AnyMessage<'_>) {
    let _ = m.name();
    match m {
        driver::AnyMessage::ShmAttachRequest(d) => check_flat!(*d, driver::ShmAttachRequest),
        driver::AnyMessage::ShmAttachResponse(d) => check_attach_response(d),
        driver::AnyMessage::ShmDetachRequest(d) => check_flat!(*d, driver::ShmDetachRequest),
        driver::AnyMessage::ShmDetachResponse(d) => check_flat!(*d, driver::ShmDetachResponse),
        driver::AnyMessage::ShmLeaseKeepalive(d) => check_flat!(*d, driver::ShmLeaseKeepalive),
        driver::AnyMessage::ShmDriverShutdown(d) => check_flat!(*d, driver::ShmDriverShutdown),
        driver::AnyMessage::ShmLeaseRevoked(d) => check_flat!(*d, driver::ShmLeaseRevoked),
        driver::AnyMessage::ShmDriverShutdownRequest(d) => {
            check_flat!(*d, driver::ShmDriverShutdownRequest)
        }
    }
}

fn check_control_any(m: &control::AnyMessage<'_>) {
    let _ = m.name();
    match m {
        control::AnyMessage::ShmPoolAnnounce(d) => check_pool_announce(d),
        control::AnyMessage::ConsumerHello(d) => check_flat!(*d, control::ConsumerHello),
        control::AnyMessage::ConsumerConfig(d) => check_flat!(*d, control::ConsumerConfig),
        control::AnyMessage::FrameDescriptor(d) => check_flat!(*d, control::FrameDescriptor),
        control::AnyMessage::FrameProgress(d) => check_flat!(*d, control::FrameProgress),
        control::AnyMessage::QosConsumer(d) => check_flat!(*d, control::QosConsumer),
        control::AnyMessage::QosProducer(d) => check_flat!(*d, control::QosProducer),
        control::AnyMessage::ShmRegionSuperblock(d) => {
            check_flat!(*d, control::ShmRegionSuperblock)
        }
        control::AnyMessage::SlotHeader(d) => check_slot_header(d),
        control::AnyMessage::TensorHeader(d) => check_tensor_header(d),
        control::AnyMessage::DataSourceAnnounce(d) => {
            check_flat!(*d, control::DataSourceAnnounce)
        }
        control::AnyMessage::DataSourceMeta(d) => check_data_source_meta(d),
        control::AnyMessage::ControlResponse(d) => check_flat!(*d, control::ControlResponse),
    }
}

/// How the bytes under test are wrapped: as a message (`wrap`, message header first) or
/// headerless (`wrap_body`, as for SHM-resident blocks) with a caller-supplied block
/// length and version.
#[derive(Clone, Copy)]
enum Wrap<'a> {
    Message(&'a [u8]),
    Body(&'a [u8], usize, u16),
}

/// `$Decoder::wrap` or `$Decoder::wrap_body`, as `$how` (a [`Wrap`]) says.
macro_rules! wrap {
    ($Decoder:ident, $how:expr) => {
        match $how {
            Wrap::Message(b) => $Decoder::wrap(b),
            Wrap::Body(b, l, v) => $Decoder::wrap_body(b, l, v),
        }
    };
}

/// Every decoder of the driver schema, wrapped as `how` says.
fn exercise_driver_decoders(how: Wrap<'_>) {
    use driver::*;
    if let Ok(d) = wrap!(ShmAttachRequestDecoder, how) {
        check_flat!(d, ShmAttachRequest);
    }
    if let Ok(d) = wrap!(ShmAttachResponseDecoder, how) {
        check_attach_response(&d);
    }
    if let Ok(d) = wrap!(ShmDetachRequestDecoder, how) {
        check_flat!(d, ShmDetachRequest);
    }
    if let Ok(d) = wrap!(ShmDetachResponseDecoder, how) {
        check_flat!(d, ShmDetachResponse);
    }
    if let Ok(d) = wrap!(ShmLeaseKeepaliveDecoder, how) {
        check_flat!(d, ShmLeaseKeepalive);
    }
    if let Ok(d) = wrap!(ShmDriverShutdownDecoder, how) {
        check_flat!(d, ShmDriverShutdown);
    }
    if let Ok(d) = wrap!(ShmLeaseRevokedDecoder, how) {
        check_flat!(d, ShmLeaseRevoked);
    }
    if let Ok(d) = wrap!(ShmDriverShutdownRequestDecoder, how) {
        check_flat!(d, ShmDriverShutdownRequest);
    }
}

/// Every decoder of the control schema, wrapped as `how` says.
fn exercise_control_decoders(how: Wrap<'_>) {
    use control::*;
    if let Ok(d) = wrap!(ShmPoolAnnounceDecoder, how) {
        check_pool_announce(&d);
    }
    if let Ok(d) = wrap!(ConsumerHelloDecoder, how) {
        check_flat!(d, ConsumerHello);
    }
    if let Ok(d) = wrap!(ConsumerConfigDecoder, how) {
        check_flat!(d, ConsumerConfig);
    }
    if let Ok(d) = wrap!(FrameDescriptorDecoder, how) {
        check_flat!(d, FrameDescriptor);
    }
    if let Ok(d) = wrap!(FrameProgressDecoder, how) {
        check_flat!(d, FrameProgress);
    }
    if let Ok(d) = wrap!(QosConsumerDecoder, how) {
        check_flat!(d, QosConsumer);
    }
    if let Ok(d) = wrap!(QosProducerDecoder, how) {
        check_flat!(d, QosProducer);
    }
    if let Ok(d) = wrap!(ShmRegionSuperblockDecoder, how) {
        check_flat!(d, ShmRegionSuperblock);
    }
    if let Ok(d) = wrap!(SlotHeaderDecoder, how) {
        check_slot_header(&d);
    }
    if let Ok(d) = wrap!(TensorHeaderDecoder, how) {
        check_tensor_header(&d);
    }
    if let Ok(d) = wrap!(DataSourceAnnounceDecoder, how) {
        check_flat!(d, DataSourceAnnounce);
    }
    if let Ok(d) = wrap!(DataSourceMetaDecoder, how) {
        check_data_source_meta(&d);
    }
    if let Ok(d) = wrap!(ControlResponseDecoder, how) {
        check_flat!(d, ControlResponse);
    }
}

/// `AnyMessage::decode` and every individual `wrap` of the driver schema.
pub fn exercise_driver(buf: &[u8]) {
    if let Ok(m) = driver::AnyMessage::decode(buf) {
        check_driver_any(&m);
    }
    exercise_driver_decoders(Wrap::Message(buf));
}

/// `AnyMessage::decode` and every individual `wrap` of the control schema.
pub fn exercise_control(buf: &[u8]) {
    if let Ok(m) = control::AnyMessage::decode(buf) {
        check_control_any(&m);
    }
    exercise_control_decoders(Wrap::Message(buf));
}

/// Every `wrap_body` (headerless, as for SHM-resident blocks) of both schemas with a
/// caller-supplied block length and version.
pub fn exercise_bodies(buf: &[u8], block_length: usize, version: u16) {
    exercise_driver_decoders(Wrap::Body(buf, block_length, version));
    exercise_control_decoders(Wrap::Body(buf, block_length, version));
}
