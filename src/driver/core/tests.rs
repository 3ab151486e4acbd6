//! Unit tests of the driver core, one per rule, against an in-memory provisioner.

use super::*;
use crate::config::{DriverConfig, MapEnv};
use crate::protocol::control::{self, Mode};
use crate::protocol::driver::{
    HugepagesPolicy, LeaseRevokeReason, PublishMode, ResponseCode, Role, ShmAttachRequest,
    ShmDetachRequest, ShmDriverShutdownRequest, ShmLeaseKeepalive, ShutdownReason,
};

/// In-memory provisioner: records what it was asked and can be told to fail.
#[derive(Default)]
pub(crate) struct FakeProvisioner {
    pub highest_on_disk: HashMap<u32, u64>,
    pub provisioned: Vec<(u32, u64)>,
    pub retired: Vec<(u32, u64)>,
    pub fail_with: Option<String>,
    /// Epochs `prepare_for_producer` was asked for.
    pub prepared: Vec<(u32, u64)>,
    /// Refuse `prepare_for_producer` with this message.
    pub refuse_prepare: Option<String>,
    /// Preparations that failed later, handed out by `take_failed_epochs`.
    pub failed_later: Vec<(u32, u64, ProvisionFailure)>,
}

impl Provisioner for FakeProvisioner {
    fn highest_epoch(&mut self, stream_id: u32) -> Result<u64, ProvisionFailure> {
        Ok(self.highest_on_disk.get(&stream_id).copied().unwrap_or(0))
    }

    fn provision(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<EpochLayout, ProvisionFailure> {
        if let Some(message) = &self.fail_with {
            return Err(ProvisionFailure(message.clone()));
        }
        self.provisioned.push((stream_id, epoch));
        let dir = format!("/dev/shm/tp/tensorpool-test/default/{stream_id}/{epoch}");
        Ok(EpochLayout {
            stream_id,
            epoch,
            layout_version,
            header_nslots: profile.header_nslots,
            header_region_uri: format!("shm:file?path={dir}/header.ring"),
            pools: profile
                .payload_pools
                .iter()
                .map(|p| PoolLayout {
                    pool_id: p.pool_id,
                    nslots: profile.header_nslots,
                    stride_bytes: p.stride_bytes,
                    region_uri: format!("shm:file?path={dir}/{}.pool", p.pool_id),
                })
                .collect(),
        })
    }

    fn retire_older(&mut self, stream_id: u32, current_epoch: u64) {
        self.retired.push((stream_id, current_epoch));
    }

    fn prepare_for_producer(&mut self, stream_id: u32, epoch: u64) -> Result<(), ProvisionFailure> {
        if let Some(message) = &self.refuse_prepare {
            return Err(ProvisionFailure(message.clone()));
        }
        self.prepared.push((stream_id, epoch));
        Ok(())
    }

    fn take_failed_epochs(&mut self) -> Vec<(u32, u64, ProvisionFailure)> {
        std::mem::take(&mut self.failed_later)
    }
}

pub(crate) const BASE_CONFIG: &str = r#"
[driver]
stream_id_range = "20000-20002"
descriptor_stream_id_range = "31000-31001"
control_stream_id_range = "32000-32000"
[policies]
allow_dynamic_streams = true
lease_keepalive_interval_ms = 1000
lease_expiry_grace_intervals = 3
announce_period_ms = 1000
shutdown_timeout_ms = 2000
shutdown_token = "s3cret"
[profiles.cam]
header_nslots = 8
payload_pools = [{ pool_id = 1, stride_bytes = 4096 }, { pool_id = 2, stride_bytes = 65536 }]
[streams.cam1]
stream_id = 10000
profile = "cam"
"#;

const MS: u64 = 1_000_000;
const SEED: u64 = 1_000_000;

pub(crate) fn config(text: &str) -> DriverConfig {
    DriverConfig::from_toml_str(text, &MapEnv::default()).expect("test config is valid")
}

fn started_with(cfg: &DriverConfig, env: CoreEnv) -> (DriverCore, FakeProvisioner) {
    let mut prov = FakeProvisioner::default();
    let mut core = DriverCore::new(cfg, env);
    core.start(0, &mut prov).expect("start");
    core.drain_outputs().for_each(drop);
    (core, prov)
}

fn started() -> (DriverCore, FakeProvisioner) {
    started_with(&config(BASE_CONFIG), env())
}

fn env() -> CoreEnv {
    CoreEnv {
        lease_id_seed: SEED,
        base_is_hugetlbfs: false,
    }
}

fn request(correlation_id: i64, stream_id: u32, client_id: u32, role: Role) -> ShmAttachRequest {
    ShmAttachRequest {
        correlation_id,
        stream_id,
        client_id,
        role,
        expected_layout_version: 0,
        publish_mode: None,
        require_hugepages: HugepagesPolicy::Unspecified,
        desired_node_id: None,
    }
}

fn attach(
    core: &mut DriverCore,
    prov: &mut FakeProvisioner,
    req: ShmAttachRequest,
    now: u64,
) -> AttachResponse {
    core.on_attach(&req, now, prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    outputs
        .into_iter()
        .find_map(|o| match o {
            Output::AttachResponse(r) => Some(r),
            _ => None,
        })
        .expect("an attach response")
}

fn refusal(r: &AttachResponse) -> (ResponseCode, &str) {
    assert!(r.grant.is_none(), "refusals carry no grant");
    (r.code, &r.error_message)
}

fn lease_of(r: &AttachResponse) -> u64 {
    r.grant.as_ref().expect("OK grant").lease_id
}

#[test]
fn static_streams_are_provisioned_and_announced_at_start() {
    let mut prov = FakeProvisioner::default();
    prov.highest_on_disk.insert(10000, 41);
    let mut core = DriverCore::new(&config(BASE_CONFIG), env());
    core.start(5, &mut prov).expect("start");
    assert_eq!(prov.provisioned, vec![(10000, 42)]);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(
        matches!(&outputs[..], [Output::Announce { producer_id: 0, layout, timestamp_ns: 5 }] if layout.epoch == 42)
    );
}

#[test]
fn producer_attach_bumps_epoch_and_response_precedes_announce() {
    let (mut core, mut prov) = started();
    core.on_attach(&request(7, 10000, 11, Role::Producer), 10, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert_eq!(outputs.len(), 2);
    match (&outputs[0], &outputs[1]) {
        (
            Output::AttachResponse(r),
            Output::Announce {
                producer_id,
                layout,
                ..
            },
        ) => {
            assert_eq!(r.code, ResponseCode::Ok);
            assert_eq!(r.grant.as_ref().map(|g| g.layout.epoch), Some(2));
            assert_eq!(layout.epoch, 2);
            assert_eq!(*producer_id, 11, "announce names the new producer");
        }
        other => panic!("unexpected outputs {other:?}"),
    }
    assert_eq!(prov.provisioned, vec![(10000, 1), (10000, 2)]);
}

#[test]
fn ok_response_carries_every_required_field() {
    let (mut core, mut prov) = started();
    let r = attach(
        &mut core,
        &mut prov,
        request(-5, 10000, 12, Role::Consumer),
        100,
    );
    assert_eq!(r.correlation_id, -5, "correlation id echoed unchanged");
    assert_eq!(r.code, ResponseCode::Ok);
    assert_eq!(r.error_message, "");
    let g = r.grant.expect("grant");
    assert_eq!(g.lease_id, SEED, "lease ids start at the seed");
    assert_eq!(g.lease_expiry_ns, 100 + 3000 * MS);
    assert_eq!(g.layout.stream_id, 10000);
    assert_eq!(g.layout.layout_version, 1);
    assert_eq!(g.layout.header_nslots, 8);
    assert_eq!(g.layout.pools.len(), 2);
    assert!(g.layout.pools.iter().all(|p| p.nslots == 8));
    assert_eq!(g.node_id, None);
}

#[test]
fn consumer_attach_does_not_bump_the_epoch() {
    let (mut core, mut prov) = started();
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    );
    assert_eq!(r.grant.map(|g| g.layout.epoch), Some(1));
    assert_eq!(prov.provisioned.len(), 1);
}

#[test]
fn unknown_role_is_invalid_params() {
    let (mut core, mut prov) = started();
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Unrecognized(9)),
        0,
    );
    assert_eq!(refusal(&r), (ResponseCode::InvalidParams, "unknown role"));
}

#[test]
fn unknown_hugepages_policy_is_invalid_params() {
    let (mut core, mut prov) = started();
    let mut req = request(1, 10000, 12, Role::Consumer);
    req.require_hugepages = HugepagesPolicy::Unrecognized(7);
    let r = attach(&mut core, &mut prov, req, 0);
    assert_eq!(
        refusal(&r),
        (ResponseCode::InvalidParams, "unknown hugepages policy")
    );
}

#[test]
fn client_id_zero_is_invalid_params() {
    let (mut core, mut prov) = started();
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 0, Role::Consumer),
        0,
    );
    assert_eq!(refusal(&r).0, ResponseCode::InvalidParams);
}

#[test]
fn absent_publish_mode_requires_an_existing_stream() {
    let (mut core, mut prov) = started();
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 20001, 12, Role::Producer),
        0,
    );
    assert_eq!(
        refusal(&r),
        (ResponseCode::Rejected, "stream not provisioned")
    );
    let mut req = request(2, 20001, 12, Role::Producer);
    req.publish_mode = Some(PublishMode::RequireExisting);
    assert_eq!(
        refusal(&attach(&mut core, &mut prov, req, 0)).0,
        ResponseCode::Rejected
    );
}

#[test]
fn unknown_publish_mode_is_unsupported() {
    let (mut core, mut prov) = started();
    let mut req = request(1, 10000, 12, Role::Producer);
    req.publish_mode = Some(PublishMode::Unrecognized(9));
    assert_eq!(
        refusal(&attach(&mut core, &mut prov, req, 0)).0,
        ResponseCode::Unsupported
    );
}

#[test]
fn newer_schema_version_is_unsupported_with_correlation_echoed() {
    let (mut core, _) = started();
    core.on_attach_unsupported_version(77, 2);
    match core.drain_outputs().next() {
        Some(Output::AttachResponse(r)) => {
            assert_eq!((r.correlation_id, r.code), (77, ResponseCode::Unsupported));
            assert!(r.grant.is_none());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(core.counters().attaches_unsupported, 1);
}

fn create(stream_id: u32, client_id: u32) -> ShmAttachRequest {
    let mut req = request(1, stream_id, client_id, Role::Producer);
    req.publish_mode = Some(PublishMode::ExistingOrCreate);
    req
}

#[test]
fn dynamic_stream_gets_the_requested_id_when_in_range_and_free() {
    let (mut core, mut prov) = started();
    let r = attach(&mut core, &mut prov, create(20001, 12), 0);
    let g = r.grant.expect("created");
    assert_eq!(g.layout.stream_id, 20001);
    assert!(core
        .stream(20001)
        .is_some_and(|s| s.dynamic && s.profile_name == "cam"));
}

#[test]
fn dynamic_stream_outside_the_range_gets_the_next_free_id() {
    let (mut core, mut prov) = started();
    let r = attach(&mut core, &mut prov, create(5, 12), 0);
    assert_eq!(r.grant.map(|g| g.layout.stream_id), Some(20000));
    let r = attach(&mut core, &mut prov, create(6, 13), 0);
    assert_eq!(r.grant.map(|g| g.layout.stream_id), Some(20001));
}

#[test]
fn exhausted_stream_id_range_is_invalid_params() {
    let (mut core, mut prov) = started();
    for client in 1..=3 {
        assert_eq!(
            attach(&mut core, &mut prov, create(0, client), 0).code,
            ResponseCode::Ok
        );
    }
    let r = attach(&mut core, &mut prov, create(0, 4), 0);
    assert_eq!(refusal(&r).0, ResponseCode::InvalidParams);
}

#[test]
fn dynamic_streams_disabled_rejects_creation() {
    let cfg = config(&BASE_CONFIG.replace(
        "allow_dynamic_streams = true",
        "allow_dynamic_streams = false",
    ));
    let (mut core, mut prov) = started_with(&cfg, env());
    let r = attach(&mut core, &mut prov, create(20001, 12), 0);
    assert_eq!(refusal(&r).0, ResponseCode::Rejected);
    assert!(core.stream(20001).is_none());
}

#[test]
fn expected_layout_version_mismatch_is_rejected() {
    let (mut core, mut prov) = started();
    let mut req = request(1, 10000, 12, Role::Consumer);
    req.expected_layout_version = 2;
    assert_eq!(
        refusal(&attach(&mut core, &mut prov, req, 0)),
        (ResponseCode::Rejected, "layout version mismatch")
    );
    req.expected_layout_version = 1;
    assert_eq!(attach(&mut core, &mut prov, req, 0).code, ResponseCode::Ok);
}

#[test]
fn profile_without_payload_pools_is_invalid_params() {
    let mut cfg = config(BASE_CONFIG);
    if let Some(p) = cfg.profiles.get_mut("cam") {
        p.payload_pools.clear();
    }
    let mut prov = FakeProvisioner::default();
    let mut core = DriverCore::new(&cfg, env());
    // Provisioning such a profile is refused by the core's layout check at start.
    assert!(core.start(0, &mut prov).is_err());
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    );
    assert_eq!(refusal(&r).0, ResponseCode::InvalidParams);
}

#[test]
fn hugepages_policy_must_match_the_base_dir() {
    let (mut core, mut prov) = started();
    let mut req = request(1, 10000, 12, Role::Consumer);
    req.require_hugepages = HugepagesPolicy::Hugepages;
    assert_eq!(
        refusal(&attach(&mut core, &mut prov, req, 0)).0,
        ResponseCode::Rejected
    );
    req.require_hugepages = HugepagesPolicy::Standard;
    assert_eq!(attach(&mut core, &mut prov, req, 0).code, ResponseCode::Ok);

    let (mut huge, mut prov) = started_with(
        &config(BASE_CONFIG),
        CoreEnv {
            base_is_hugetlbfs: true,
            ..env()
        },
    );
    let mut req = request(1, 10000, 12, Role::Consumer);
    req.require_hugepages = HugepagesPolicy::Standard;
    assert_eq!(
        refusal(&attach(&mut huge, &mut prov, req, 0)).0,
        ResponseCode::Rejected
    );
    req.require_hugepages = HugepagesPolicy::Hugepages;
    assert_eq!(attach(&mut huge, &mut prov, req, 0).code, ResponseCode::Ok);
}

#[test]
fn unspecified_hugepages_applies_the_configured_default() {
    let cfg = config(&format!("[shm]\nrequire_hugepages = true\n{BASE_CONFIG}"));
    let (mut core, mut prov) = started_with(&cfg, env());
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    );
    assert_eq!(refusal(&r).0, ResponseCode::Rejected);
}

#[test]
fn second_producer_is_rejected() {
    let (mut core, mut prov) = started();
    assert_eq!(
        attach(
            &mut core,
            &mut prov,
            request(1, 10000, 11, Role::Producer),
            0
        )
        .code,
        ResponseCode::Ok
    );
    let r = attach(
        &mut core,
        &mut prov,
        request(2, 10000, 12, Role::Producer),
        0,
    );
    assert_eq!(
        refusal(&r),
        (ResponseCode::Rejected, "producer already attached")
    );
}

#[test]
fn same_client_id_for_same_stream_and_role_is_rejected_with_the_exact_message() {
    let (mut core, mut prov) = started();
    assert_eq!(
        attach(
            &mut core,
            &mut prov,
            request(1, 10000, 12, Role::Consumer),
            0
        )
        .code,
        ResponseCode::Ok
    );
    let r = attach(
        &mut core,
        &mut prov,
        request(2, 10000, 12, Role::Consumer),
        0,
    );
    assert_eq!(
        refusal(&r),
        (ResponseCode::Rejected, "client_id already attached")
    );
    // Same client in the other role is a different lease.
    assert_eq!(
        attach(
            &mut core,
            &mut prov,
            request(3, 10000, 12, Role::Producer),
            0
        )
        .code,
        ResponseCode::Ok
    );
}

#[test]
fn desired_node_id_is_granted_once_and_freed_with_the_lease() {
    let (mut core, mut prov) = started();
    let mut req = request(1, 10000, 12, Role::Consumer);
    req.desired_node_id = Some(7);
    let first = attach(&mut core, &mut prov, req, 0);
    assert_eq!(first.grant.as_ref().and_then(|g| g.node_id), Some(7));
    let mut other = request(2, 10000, 13, Role::Consumer);
    other.desired_node_id = Some(7);
    let r = attach(&mut core, &mut prov, other, 0);
    assert_eq!(refusal(&r), (ResponseCode::Rejected, "node id unavailable"));
    core.on_detach(
        &detach_req(lease_of(&first), 10000, 12, Role::Consumer),
        0,
        &mut prov,
    );
    core.drain_outputs().for_each(drop);
    assert_eq!(
        attach(&mut core, &mut prov, other, 0)
            .grant
            .and_then(|g| g.node_id),
        Some(7)
    );
}

#[test]
fn provisioning_failure_is_internal_error_with_the_os_error() {
    let (mut core, mut prov) = started();
    prov.fail_with = Some("No space left on device (os error 28)".into());
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    );
    assert_eq!(
        refusal(&r),
        (
            ResponseCode::InternalError,
            "No space left on device (os error 28)"
        )
    );
    assert!(
        core.stream(10000).is_some_and(|s| s.producer.is_none()),
        "no lease on failure"
    );
    prov.fail_with = None;
    let r = attach(
        &mut core,
        &mut prov,
        request(2, 10000, 11, Role::Producer),
        0,
    );
    assert_eq!(
        r.grant.map(|g| g.layout.epoch),
        Some(3),
        "the failed epoch is never reused"
    );
}

#[test]
fn error_messages_are_capped_at_1024_bytes() {
    let (mut core, mut prov) = started();
    prov.fail_with = Some("é".repeat(600));
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    );
    assert!(r.error_message.len() <= 1024 && r.error_message.len() >= 1022);
}

#[test]
fn lease_ids_are_unique_and_increasing() {
    let (mut core, mut prov) = started();
    let a = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 1, Role::Consumer),
        0,
    ));
    let b = lease_of(&attach(
        &mut core,
        &mut prov,
        request(2, 10000, 2, Role::Consumer),
        0,
    ));
    core.on_detach(&detach_req(b, 10000, 2, Role::Consumer), 0, &mut prov);
    let c = lease_of(&attach(
        &mut core,
        &mut prov,
        request(3, 10000, 2, Role::Consumer),
        0,
    ));
    assert!(a < b && b < c);
}

fn keepalive(lease_id: u64, stream_id: u32, client_id: u32, role: Role) -> ShmLeaseKeepalive {
    ShmLeaseKeepalive {
        lease_id,
        stream_id,
        client_id,
        role,
        client_timestamp_ns: 0,
    }
}

#[test]
fn keepalive_extends_the_lease_only_when_everything_matches() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    ));
    assert!(core.on_keepalive(&keepalive(lease, 10000, 12, Role::Consumer), 1000 * MS));
    assert_eq!(core.lease(lease).map(|l| l.expiry_ns), Some(4000 * MS));
    assert!(!core.on_keepalive(&keepalive(lease, 10001, 12, Role::Consumer), 2000 * MS));
    assert!(!core.on_keepalive(&keepalive(lease, 10000, 13, Role::Consumer), 2000 * MS));
    assert!(!core.on_keepalive(&keepalive(lease, 10000, 12, Role::Producer), 2000 * MS));
    assert!(!core.on_keepalive(&keepalive(lease + 1, 10000, 12, Role::Consumer), 2000 * MS));
    assert_eq!(core.lease(lease).map(|l| l.expiry_ns), Some(4000 * MS));
    assert_eq!(
        (
            core.counters().keepalives,
            core.counters().keepalives_ignored
        ),
        (1, 4)
    );
}

#[test]
fn expired_producer_lease_revokes_then_announces_a_larger_epoch() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    ));
    core.on_tick(2999 * MS, &mut prov);
    assert!(
        core.lease(lease).is_some(),
        "not expired before its deadline"
    );
    core.drain_outputs().for_each(drop);
    // Expiry is checked every keepalive interval / 4, so it is seen by then.
    core.on_tick(3000 * MS + 250 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    let revoke_at = outputs.iter().position(|o| matches!(o, Output::LeaseRevoked { lease_id, reason: LeaseRevokeReason::Expired, role: Role::Producer, .. } if *lease_id == lease));
    let announce_at = outputs.iter().position(
        |o| matches!(o, Output::Announce { layout, producer_id: 0, .. } if layout.epoch == 3),
    );
    assert!(
        matches!((revoke_at, announce_at), (Some(r), Some(a)) if r < a),
        "{outputs:?}"
    );
    assert_eq!(core.counters().expiries, 1);
    assert!(core.lease(lease).is_none());
}

#[test]
fn expired_consumer_lease_revokes_without_a_new_epoch() {
    let (mut core, mut prov) = started();
    attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    );
    core.on_tick(3000 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(outputs.iter().any(|o| matches!(
        o,
        Output::LeaseRevoked {
            reason: LeaseRevokeReason::Expired,
            role: Role::Consumer,
            ..
        }
    )));
    assert_eq!(core.stream(10000).map(|s| s.epoch_high_water), Some(1));
}

fn detach_req(lease_id: u64, stream_id: u32, client_id: u32, role: Role) -> ShmDetachRequest {
    ShmDetachRequest {
        correlation_id: 99,
        lease_id,
        stream_id,
        client_id,
        role,
    }
}

#[test]
fn detach_answers_ok_then_revokes_then_announces_for_a_producer() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    ));
    core.on_detach(&detach_req(lease, 10000, 11, Role::Producer), 5, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(
        matches!(
            &outputs[..],
            [
                Output::DetachResponse {
                    correlation_id: 99,
                    code: ResponseCode::Ok,
                    ..
                },
                Output::LeaseRevoked {
                    reason: LeaseRevokeReason::Detached,
                    ..
                },
                Output::Announce { producer_id: 0, .. },
            ]
        ),
        "{outputs:?}"
    );
}

#[test]
fn detach_of_unknown_mismatched_or_ended_lease_is_rejected_without_revoke() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    ));
    let cases = [
        (
            detach_req(lease + 100, 10000, 12, Role::Consumer),
            "unknown lease",
        ),
        (
            detach_req(lease, 10000, 13, Role::Consumer),
            "unknown lease",
        ),
    ];
    for (req, message) in cases {
        core.on_detach(&req, 0, &mut prov);
        let outputs: Vec<Output> = core.drain_outputs().collect();
        assert_eq!(
            outputs,
            vec![Output::DetachResponse {
                correlation_id: 99,
                code: ResponseCode::Rejected,
                error_message: message
            }]
        );
    }
    core.on_detach(&detach_req(lease, 10000, 12, Role::Consumer), 0, &mut prov);
    core.drain_outputs().for_each(drop);
    core.on_detach(&detach_req(lease, 10000, 12, Role::Consumer), 0, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert_eq!(
        outputs,
        vec![Output::DetachResponse {
            correlation_id: 99,
            code: ResponseCode::Rejected,
            error_message: "lease already invalidated"
        }]
    );
    assert_eq!(core.counters().revocations, 1);
}

#[test]
fn admin_revoke_emits_one_revoke_with_reason_revoked() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    ));
    assert!(core.revoke(lease, 1, &mut prov));
    assert!(!core.revoke(lease, 2, &mut prov));
    let revokes = core
        .drain_outputs()
        .filter(|o| {
            matches!(
                o,
                Output::LeaseRevoked {
                    reason: LeaseRevokeReason::Revoked,
                    ..
                }
            )
        })
        .count();
    assert_eq!(revokes, 1);
}

fn hello(stream_id: u32, consumer_id: u32, desc: (&str, u32), ctrl: (&str, u32)) -> Vec<u8> {
    let msg = control::ConsumerHello {
        stream_id,
        consumer_id,
        supports_shm: control::Bool::True,
        supports_progress: control::Bool::False,
        mode: Mode::Stream,
        max_rate_hz: 0,
        expected_layout_version: 1,
        progress_interval_us: None,
        progress_bytes_delta: None,
        progress_major_delta_units: None,
        descriptor_stream_id: desc.1,
        control_stream_id: ctrl.1,
        descriptor_channel: desc.0.as_bytes(),
        control_channel: ctrl.0.as_bytes(),
    };
    let mut buf = vec![0u8; msg.encoded_len()];
    msg.encode(&mut buf).expect("encode hello");
    buf
}

fn send_hello(core: &mut DriverCore, bytes: &[u8]) -> Option<ConsumerAssignment> {
    core.on_consumer_hello(&control::ConsumerHelloDecoder::wrap(bytes).expect("valid hello"));
    core.drain_outputs().find_map(|o| match o {
        Output::ConsumerConfig(c) => Some(c),
        _ => None,
    })
}

#[test]
fn consumer_hello_assigns_per_consumer_streams_from_the_ranges() {
    let (mut core, mut prov) = started();
    attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    );
    let c = send_hello(
        &mut core,
        &hello(10000, 12, ("aeron:ipc", 31001), ("aeron:ipc", 5)),
    )
    .expect("config");
    assert_eq!(c.descriptor, (31001, "aeron:ipc".to_string()));
    assert_eq!(
        c.control,
        (32000, "aeron:ipc".to_string()),
        "out-of-range request gets the next free id"
    );
    let again = send_hello(
        &mut core,
        &hello(10000, 12, ("aeron:ipc", 31000), ("aeron:ipc", 5)),
    )
    .expect("config");
    assert_eq!(again, c, "a repeated hello keeps its assignment");
}

#[test]
fn consumer_hello_declines_invalid_and_exhausted_requests() {
    let (mut core, mut prov) = started();
    attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    );
    attach(
        &mut core,
        &mut prov,
        request(2, 10000, 13, Role::Consumer),
        0,
    );
    let c =
        send_hello(&mut core, &hello(10000, 12, ("aeron:ipc", 0), ("", 32000))).expect("config");
    assert_eq!(
        c.descriptor,
        (0, String::new()),
        "channel without id is declined"
    );
    assert_eq!(
        c.control,
        (0, String::new()),
        "id without channel is declined"
    );
    let first = send_hello(
        &mut core,
        &hello(10000, 13, ("aeron:ipc", 1), ("aeron:ipc", 1)),
    )
    .expect("config");
    assert_eq!(first.control.0, 32000);
    // Control range (one id) is now exhausted for a third consumer.
    attach(
        &mut core,
        &mut prov,
        request(3, 10000, 14, Role::Consumer),
        0,
    );
    let third = send_hello(
        &mut core,
        &hello(10000, 14, ("aeron:ipc", 1), ("aeron:ipc", 1)),
    )
    .expect("config");
    assert_eq!(third.control, (0, String::new()));
    assert_ne!(third.descriptor.0, 0);
}

#[test]
fn per_consumer_ids_return_to_the_pool_when_the_lease_ends() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        0,
    ));
    send_hello(
        &mut core,
        &hello(10000, 12, ("aeron:ipc", 1), ("aeron:ipc", 1)),
    );
    core.on_detach(&detach_req(lease, 10000, 12, Role::Consumer), 0, &mut prov);
    core.drain_outputs().for_each(drop);
    attach(
        &mut core,
        &mut prov,
        request(2, 10000, 13, Role::Consumer),
        0,
    );
    let c = send_hello(
        &mut core,
        &hello(10000, 13, ("aeron:ipc", 1), ("aeron:ipc", 1)),
    )
    .expect("config");
    assert_eq!(c.control.0, 32000);
}

#[test]
fn hello_without_a_consumer_lease_is_ignored() {
    let (mut core, _) = started();
    assert!(send_hello(&mut core, &hello(10000, 12, ("aeron:ipc", 1), ("", 0))).is_none());
    assert_eq!(core.counters().hellos_ignored, 1);
}

fn shutdown_req(token: &[u8]) -> ShmDriverShutdownRequest<'_> {
    ShmDriverShutdownRequest {
        correlation_id: 3,
        reason: ShutdownReason::Admin,
        token,
        error_message: b"maintenance",
    }
}

#[test]
fn shutdown_request_with_wrong_or_missing_token_is_ignored() {
    let (mut core, _) = started();
    assert!(!core.on_shutdown_request(&shutdown_req(b"wrong"), 0));
    assert!(!core.on_shutdown_request(&shutdown_req(b""), 0));
    let cfg = config(&BASE_CONFIG.replace("shutdown_token = \"s3cret\"", ""));
    let (mut open, _) = started_with(&cfg, env());
    assert!(
        !open.on_shutdown_request(&shutdown_req(b""), 0),
        "no token configured: disabled"
    );
    assert!(core.shutdown_state().is_running() && open.shutdown_state().is_running());
    assert_eq!(core.counters().shutdown_requests_ignored, 2);
}

#[test]
fn accepted_shutdown_drains_announces_and_notifies_after_the_timeout() {
    let (mut core, mut prov) = started();
    assert!(core.on_shutdown_request(&shutdown_req(b"s3cret"), 10));
    assert!(
        matches!(core.drain_outputs().next(), Some(Output::Announce { .. })),
        "final announce at once"
    );
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 12, Role::Consumer),
        20,
    );
    assert_eq!(
        refusal(&r),
        (ResponseCode::Rejected, "driver shutting down")
    );
    core.on_tick(10 + 1999 * MS, &mut prov);
    assert!(!core
        .drain_outputs()
        .any(|o| matches!(o, Output::DriverShutdown { .. })));
    core.on_tick(10 + 2000 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(outputs.iter().any(|o| matches!(o, Output::DriverShutdown { reason: ShutdownReason::Admin, error_message, .. } if error_message == "maintenance")));
    assert!(core.shutdown_state().is_terminated());
}

#[test]
fn shutdown_now_sends_the_notice_once() {
    let (mut core, _) = started();
    core.shutdown_now(ShutdownReason::Normal, 1);
    core.shutdown_now(ShutdownReason::Normal, 2);
    let notices = core
        .drain_outputs()
        .filter(|o| {
            matches!(
                o,
                Output::DriverShutdown {
                    reason: ShutdownReason::Normal,
                    ..
                }
            )
        })
        .count();
    assert_eq!(notices, 1);
}

#[test]
fn consumer_attach_is_answered_then_announced_at_once() {
    let (mut core, mut prov) = started();
    attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    );
    let announces_before = core.counters().announces;
    core.on_attach(&request(2, 10000, 21, Role::Consumer), 300 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    match &outputs[..] {
        [Output::AttachResponse(r), Output::Announce {
            producer_id,
            layout,
            timestamp_ns,
        }] => {
            assert_eq!(r.code, ResponseCode::Ok);
            let granted = r.grant.as_ref().map(|g| g.layout.epoch);
            assert_eq!(
                granted,
                Some(layout.epoch),
                "the announce names the granted epoch"
            );
            assert_eq!(layout.epoch, 2, "a consumer attach does not bump the epoch");
            assert_eq!(*producer_id, 11);
            assert_eq!(*timestamp_ns, 300 * MS);
        }
        other => panic!("expected the response, then one announce: {other:?}"),
    }
    assert_eq!(core.counters().announces, announces_before + 1);
}

#[test]
fn every_consumer_attach_gets_its_own_announce_and_refusals_none() {
    let (mut core, mut prov) = started();
    for (correlation_id, client_id) in [(1, 21), (2, 22), (3, 23)] {
        core.on_attach(
            &request(correlation_id, 10000, client_id, Role::Consumer),
            correlation_id as u64 * MS,
            &mut prov,
        );
        let outputs: Vec<Output> = core.drain_outputs().collect();
        assert!(
            matches!(&outputs[..], [Output::AttachResponse(r), Output::Announce { producer_id: 0, .. }] if r.correlation_id == correlation_id),
            "{outputs:?}"
        );
    }
    // A refused attach (same client id again) changes nothing, so announces nothing.
    core.on_attach(&request(4, 10000, 23, Role::Consumer), 4 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(
        matches!(&outputs[..], [Output::AttachResponse(r)] if r.grant.is_none()),
        "{outputs:?}"
    );
}

#[test]
fn consumer_attach_announce_leaves_the_periodic_schedule_alone() {
    let (mut core, mut prov) = started();
    attach(
        &mut core,
        &mut prov,
        request(1, 10000, 21, Role::Consumer),
        400 * MS,
    );
    core.on_tick(999 * MS, &mut prov);
    assert_eq!(core.drain_outputs().count(), 0);
    core.on_tick(1000 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(
        matches!(&outputs[..], [Output::Announce { timestamp_ns, .. }] if *timestamp_ns == 1000 * MS),
        "{outputs:?}"
    );
}

#[test]
fn announces_repeat_every_period_with_the_producer_id() {
    let (mut core, mut prov) = started();
    attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    );
    core.on_tick(999 * MS, &mut prov);
    assert_eq!(core.drain_outputs().count(), 0);
    core.on_tick(1000 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(
        matches!(&outputs[..], [Output::Announce { producer_id: 11, timestamp_ns, .. }] if *timestamp_ns == 1000 * MS)
    );
}

#[test]
fn restart_continues_from_the_epoch_high_water_mark() {
    let mut prov = FakeProvisioner::default();
    prov.highest_on_disk.insert(10000, 9);
    let mut core = DriverCore::new(
        &config(BASE_CONFIG),
        CoreEnv {
            lease_id_seed: SEED * 2,
            ..env()
        },
    );
    core.start(0, &mut prov).expect("start");
    let r = attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    );
    assert_eq!(r.grant.map(|g| g.layout.epoch), Some(11));
    // A lease id from the previous run (lower seed) is unknown here.
    core.on_detach(&detach_req(SEED, 10000, 11, Role::Producer), 0, &mut prov);
    assert!(core.drain_outputs().any(|o| matches!(
        o,
        Output::DetachResponse {
            code: ResponseCode::Rejected,
            error_message: "unknown lease",
            ..
        }
    )));
}

#[test]
fn only_a_producer_grant_prepares_its_epoch_and_a_refusal_refuses_the_attach() {
    let (mut core, mut prov) = started();
    attach(
        &mut core,
        &mut prov,
        request(1, 10000, 21, Role::Consumer),
        0,
    );
    assert!(
        prov.prepared.is_empty(),
        "a consumer's epoch is not prefaulted"
    );
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(2, 10000, 11, Role::Producer),
        0,
    ));
    assert_eq!(prov.prepared, [(10000, 2)], "the producer's own epoch");
    core.on_detach(
        &ShmDetachRequest {
            correlation_id: 3,
            lease_id: lease,
            stream_id: 10000,
            client_id: 11,
            role: Role::Producer,
        },
        MS,
        &mut prov,
    );
    assert_eq!(
        prov.prepared,
        [(10000, 2)],
        "the epoch after a producer's end stays sparse"
    );
    prov.refuse_prepare = Some("not enough room in /dev/shm/tp".into());
    let r = attach(
        &mut core,
        &mut prov,
        request(4, 10000, 12, Role::Producer),
        2 * MS,
    );
    assert_eq!(
        refusal(&r),
        (
            ResponseCode::InternalError,
            "not enough room in /dev/shm/tp"
        )
    );
    assert!(core.stream(10000).is_some_and(|s| s.producer.is_none()));
}

#[test]
fn a_producer_whose_epoch_could_not_be_prefaulted_is_revoked_and_the_epoch_bumped() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 11, Role::Producer),
        0,
    ));
    // A failure for an epoch that is no longer current changes nothing.
    prov.failed_later
        .push((10000, 1, ProvisionFailure("old".into())));
    core.on_tick(MS, &mut prov);
    assert!(core.lease(lease).is_some());
    prov.failed_later
        .push((10000, 2, ProvisionFailure("No space left on device".into())));
    core.on_tick(2 * MS, &mut prov);
    let outputs: Vec<Output> = core.drain_outputs().collect();
    assert!(core.lease(lease).is_none());
    let revoke_at = outputs.iter().position(|o| matches!(o, Output::LeaseRevoked { lease_id, reason: LeaseRevokeReason::Revoked, .. } if *lease_id == lease));
    let announce_at = outputs
        .iter()
        .position(|o| matches!(o, Output::Announce { layout, .. } if layout.epoch == 3));
    assert!(
        matches!((revoke_at, announce_at), (Some(r), Some(a)) if r < a),
        "{outputs:?}"
    );
    assert_eq!(core.counters().provision_failures, 2);
}

#[test]
fn restarting_a_lease_term_at_send_time_never_shortens_it() {
    let (mut core, mut prov) = started();
    let lease = lease_of(&attach(
        &mut core,
        &mut prov,
        request(1, 10000, 21, Role::Consumer),
        0,
    ));
    assert_eq!(core.lease(lease).map(|l| l.expiry_ns), Some(3000 * MS));
    // Sent 1.5 s after the request was read (provisioning in between).
    assert_eq!(core.restart_lease_term(lease, 1500 * MS), Some(4500 * MS));
    assert_eq!(core.lease(lease).map(|l| l.expiry_ns), Some(4500 * MS));
    assert_eq!(core.restart_lease_term(lease, 10 * MS), Some(4500 * MS));
    assert_eq!(core.restart_lease_term(lease + 1000, MS), None);
}
