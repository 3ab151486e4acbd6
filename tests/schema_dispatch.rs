//! Template ids repeat across schemas 900 and 901 (template 1 is `ShmAttachRequest` in one
//! and `ShmPoolAnnounce` in the other), and announces may share the control stream, so every
//! receiver dispatches on (schema id, template id): a message of the other schema with a
//! colliding template id is rejected or ignored, never decoded as ours (docs/DESIGN.md,
//! "Foreign SBE users").

use tensorpool::client::{DriverSession, Request, SessionConfig};
use tensorpool::protocol::codec::{
    BlockLayout, DecodeError, MessageHeader, GROUP_HEADER_LEN, MESSAGE_HEADER_LEN,
    VAR_DATA_HEADER_LEN,
};
use tensorpool::protocol::{control, driver};

/// A well-formed message of `path` in `layout`: zero fields, empty groups and var data.
fn minimal(schema_id: u16, version: u16, layout: &[BlockLayout], path: &str) -> Vec<u8> {
    let block = layout
        .iter()
        .find(|b| b.path == path)
        .expect("message in layout");
    let mut bytes = vec![0u8; MESSAGE_HEADER_LEN + block.block_length as usize];
    MessageHeader {
        block_length: block.block_length,
        template_id: block.id,
        schema_id,
        version,
    }
    .write(&mut bytes);
    let prefix = format!("{path}.");
    for group in layout.iter().filter(|b| b.path.starts_with(&prefix)) {
        let mut header = [0u8; GROUP_HEADER_LEN];
        header[..2].copy_from_slice(&group.block_length.to_le_bytes());
        bytes.extend_from_slice(&header);
    }
    bytes.extend(std::iter::repeat_n(
        0u8,
        VAR_DATA_HEADER_LEN * block.data.len(),
    ));
    bytes
}

fn messages(layout: &[BlockLayout]) -> impl Iterator<Item = &BlockLayout> {
    layout.iter().filter(|b| !b.path.contains('.'))
}

/// Every (driver message, control message) pair with the same template id.
fn collisions() -> Vec<(&'static BlockLayout, &'static BlockLayout)> {
    let mut out = Vec::new();
    for d in messages(driver::LAYOUT) {
        for c in messages(control::LAYOUT).filter(|c| c.id == d.id) {
            out.push((d, c));
        }
    }
    out
}

#[test]
fn the_schemas_share_template_ids() {
    // What makes dispatch on the schema id necessary: if this ever stops holding the
    // tests below still pin the behaviour, but they would no longer exercise collisions.
    let pairs: Vec<_> = collisions()
        .iter()
        .map(|(d, c)| format!("{}={}", d.path, c.path))
        .collect();
    assert!(
        pairs.contains(&"ShmAttachRequest=ShmPoolAnnounce".to_string()),
        "{pairs:?}"
    );
    assert_eq!(pairs.len(), 8, "{pairs:?}");
}

#[test]
fn each_schema_decoder_rejects_the_other_schemas_colliding_templates() {
    for (d, c) in collisions() {
        let driver_bytes = minimal(
            driver::SCHEMA_ID,
            driver::SCHEMA_VERSION,
            driver::LAYOUT,
            d.path,
        );
        let control_bytes = minimal(
            control::SCHEMA_ID,
            control::SCHEMA_VERSION,
            control::LAYOUT,
            c.path,
        );
        // Each is a valid message of its own schema...
        let own = driver::AnyMessage::decode(&driver_bytes).expect("valid driver message");
        assert_eq!(own.name(), d.path);
        let own = control::AnyMessage::decode(&control_bytes).expect("valid control message");
        assert_eq!(own.name(), c.path);
        // ...and a schema mismatch to the other, though the template id matches.
        let err = driver::AnyMessage::decode(&control_bytes).expect_err(c.path);
        assert_eq!(
            err,
            DecodeError::SchemaMismatch {
                expected: driver::SCHEMA_ID,
                actual: control::SCHEMA_ID
            },
            "{} read as {}",
            c.path,
            d.path
        );
        let err = control::AnyMessage::decode(&driver_bytes).expect_err(d.path);
        assert_eq!(
            err,
            DecodeError::SchemaMismatch {
                expected: control::SCHEMA_ID,
                actual: driver::SCHEMA_ID
            },
            "{} read as {}",
            d.path,
            c.path
        );
    }
    // The typed decoders check the schema too, not only AnyMessage.
    let announce = minimal(
        control::SCHEMA_ID,
        control::SCHEMA_VERSION,
        control::LAYOUT,
        "ShmPoolAnnounce",
    );
    assert!(matches!(
        driver::ShmAttachRequestDecoder::wrap(&announce),
        Err(DecodeError::SchemaMismatch { .. })
    ));
    let attach = minimal(
        driver::SCHEMA_ID,
        driver::SCHEMA_VERSION,
        driver::LAYOUT,
        "ShmAttachRequest",
    );
    assert!(matches!(
        control::ShmPoolAnnounceDecoder::wrap(&attach),
        Err(DecodeError::SchemaMismatch { .. })
    ));
}

#[test]
fn the_driver_classifies_colliding_templates_by_schema() {
    use tensorpool::driver::wire::{classify, Inbound};
    let announce = minimal(
        control::SCHEMA_ID,
        control::SCHEMA_VERSION,
        control::LAYOUT,
        "ShmPoolAnnounce",
    );
    assert!(matches!(classify(&announce), Ok(Inbound::NotForDriver)));
    let attach = minimal(
        driver::SCHEMA_ID,
        driver::SCHEMA_VERSION,
        driver::LAYOUT,
        "ShmAttachRequest",
    );
    assert!(matches!(classify(&attach), Ok(Inbound::Attach(_))));
    // ConsumerHello (900/2) is for the driver; ShmAttachResponse (901/2) is not.
    let hello = minimal(
        control::SCHEMA_ID,
        control::SCHEMA_VERSION,
        control::LAYOUT,
        "ConsumerHello",
    );
    assert!(matches!(classify(&hello), Ok(Inbound::ConsumerHello(_))));
    let response = minimal(
        driver::SCHEMA_ID,
        driver::SCHEMA_VERSION,
        driver::LAYOUT,
        "ShmAttachResponse",
    );
    assert!(matches!(classify(&response), Ok(Inbound::NotForDriver)));
}

#[test]
fn a_client_session_ignores_its_attach_response_relabelled_as_schema_900() {
    let mut session = DriverSession::new(SessionConfig::new(10000, driver::Role::Consumer));
    let (request, _) = session.poll(0);
    let Some(Request::Attach(attach)) = request else {
        panic!("the session attaches first: {request:?}")
    };
    let mut response = vec![0u8; 256];
    let len = driver::ShmAttachResponse {
        correlation_id: attach.correlation_id,
        code: driver::ResponseCode::Rejected,
        lease_id: None,
        lease_expiry_timestamp_ns: None,
        stream_id: None,
        epoch: None,
        layout_version: None,
        header_nslots: None,
        header_slot_bytes: None,
        node_id: None,
        payload_pools: &[],
        header_region_uri: b"",
        error_message: b"no",
    }
    .encode(&mut response)
    .expect("encodes");
    response.truncate(len);
    // Template 2 of schema 900 is ConsumerHello: same template id, same correlation id
    // where a response has it; only the schema id tells them apart.
    let mut relabelled = response.clone();
    relabelled[4..6].copy_from_slice(&control::SCHEMA_ID.to_le_bytes());
    assert_eq!(session.on_message(&relabelled, 1), None);
    assert_eq!(session.protocol_errors().iter().sum::<u64>(), 0);
    // The genuine response still reaches the session afterwards.
    assert!(
        session.on_message(&response, 2).is_some(),
        "the session ignored its own attach response"
    );
}
