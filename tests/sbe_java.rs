//! Stock sbe-tool reads `schemas/*.xml` exactly as our build-time generator does: the
//! schemas are valid against SBE's own `sbe.xsd`, and the Java codecs sbe-tool generates
//! agree with ours on every message's template id, block length and every field's id,
//! offset, length, presence and null value, on var data's character encoding, and on the
//! bytes of sample messages with null fields (trace id 0 is absent: Wire Spec §10.2.1).
//!
//! Needs a JDK and the jars of `../shared/java/lib` (or `TP_JAVA_LIB`); skipped, saying
//! why, without them (tests/java_support).

mod java_support;

use java_support::{run, skip, JavaBuild};
use std::collections::BTreeSet;
use std::process::Command;
use tensorpool::protocol::codec::{BlockLayout, Presence};
use tensorpool::protocol::control::{self, FrameDescriptor};
use tensorpool::protocol::driver::{
    self, HugepagesPolicy, ResponseCode, Role, ShmAttachRequest, ShmAttachResponse,
    ShmAttachResponsePayloadPools,
};

fn build(test: &str) -> Option<&'static JavaBuild> {
    match JavaBuild::get(&["tests/java/LayoutProbe.java"]) {
        Ok(build) => Some(build),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

#[test]
fn schemas_are_valid_against_sbe_xsd() {
    let Some(build) = build("schemas_are_valid_against_sbe_xsd") else {
        return;
    };
    let repo = java_support::repo();
    let out = Command::new("java")
        .arg("-cp")
        .arg(build.jars.join("sbe-tool.jar"))
        .arg(repo.join("tests/java/SchemaCheck.java"))
        .arg(repo.join("schemas/driver.xml"))
        .arg(repo.join("schemas/control.xml"))
        .arg(repo.join("schemas/bridge.xml"))
        .output()
        .expect("running java");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemas are not valid SBE:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("SCHEMA_OK"))
            .count(),
        3,
        "{stdout}"
    );
}

/// Our generator's view, in the probe's line format.
fn our_lines(schema_id: u16, layout: &[BlockLayout], out: &mut BTreeSet<String>) {
    for block in layout {
        out.insert(format!(
            "block {schema_id} {} id={} blockLength={}",
            block.path, block.id, block.block_length
        ));
        for f in block.fields {
            let presence = match f.presence {
                Presence::Required => "required",
                Presence::Optional => "optional",
                Presence::Constant => "constant",
            };
            let null = f
                .null_bits
                .map(|n| format!(" null={n:#x}"))
                .unwrap_or_default();
            out.insert(format!(
                "field {schema_id} {}.{} id={} offset={} length={} presence={presence}{null}",
                block.path, f.name, f.id, f.offset, f.size
            ));
        }
        for d in block.data {
            out.insert(format!(
                "data {schema_id} {}.{} id={} header=4 encoding={}",
                block.path,
                d.name,
                d.id,
                d.character_encoding.unwrap_or("none")
            ));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The probe's samples encoded with our encoders (same values as LayoutProbe.java).
fn our_samples(out: &mut BTreeSet<String>) {
    let mut buf = [0u8; 512];
    let n = FrameDescriptor {
        stream_id: 10000,
        epoch: 3,
        seq: 42,
        timestamp_ns: None,
        meta_version: None,
        trace_id: None,
    }
    .encode(&mut buf)
    .expect("encodes");
    out.insert(format!("bytes FrameDescriptor.nulls {}", hex(&buf[..n])));

    let n = ShmAttachRequest {
        correlation_id: 11,
        stream_id: 10000,
        client_id: 5,
        role: Role::Producer,
        expected_layout_version: 1,
        publish_mode: None,
        require_hugepages: HugepagesPolicy::Unspecified,
        desired_node_id: None,
    }
    .encode(&mut buf)
    .expect("encodes");
    out.insert(format!("bytes ShmAttachRequest.nulls {}", hex(&buf[..n])));

    let pools = [ShmAttachResponsePayloadPools {
        pool_id: 1,
        pool_nslots: 8,
        stride_bytes: 4096,
        region_uri: b"shm:file?path=/dev/shm/tp/1/4/1.pool",
    }];
    let n = ShmAttachResponse {
        correlation_id: 11,
        code: ResponseCode::Ok,
        lease_id: Some(77),
        lease_expiry_timestamp_ns: Some(123_456_789),
        stream_id: Some(10000),
        epoch: Some(4),
        layout_version: Some(1),
        header_nslots: Some(8),
        header_slot_bytes: Some(256),
        node_id: None,
        payload_pools: &pools,
        header_region_uri: b"shm:file?path=/dev/shm/tp/1/4/header.ring",
        error_message: b"",
    }
    .encode(&mut buf)
    .expect("encodes");
    out.insert(format!("bytes ShmAttachResponse.full {}", hex(&buf[..n])));
}

#[test]
fn sbe_tool_java_codecs_agree_with_ours_on_every_field_null_value_and_byte() {
    let Some(build) =
        build("sbe_tool_java_codecs_agree_with_ours_on_every_field_null_value_and_byte")
    else {
        return;
    };
    let out = run(build.java("LayoutProbe").arg(&build.classes));
    let theirs: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let mut ours = BTreeSet::new();
    our_lines(driver::SCHEMA_ID, driver::LAYOUT, &mut ours);
    our_lines(control::SCHEMA_ID, control::LAYOUT, &mut ours);
    our_samples(&mut ours);

    // Both sides cover every message: 8 of schema 901, 13 of schema 900, 3 groups.
    let messages = ours.iter().filter(|l| l.starts_with("block ")).count();
    assert!(messages >= 24, "only {messages} blocks in our layout");
    let only_theirs: Vec<_> = theirs.difference(&ours).collect();
    let only_ours: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "sbe-tool's Java codecs and ours disagree.\nonly in sbe-tool's:\n{}\nonly in ours:\n{}",
        only_theirs
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        only_ours
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    // The null that started it all (issue 13): trace id 0 means absent on both sides.
    assert!(
        ours.contains(
            "field 900 FrameDescriptor.traceId id=6 offset=32 length=8 presence=optional null=0x0"
        ),
        "{ours:#?}"
    );
}
