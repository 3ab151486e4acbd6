//! Property test of the driver core: random sequences of attach, keepalive, detach,
//! revoke, hello, shutdown and time advance from many clients, with the Driver Model's
//! invariants checked after every step.

use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use tensorpool::config::{DriverConfig, MapEnv, Profile};
use tensorpool::driver::core::{
    CoreEnv, DriverCore, EpochLayout, Output, PoolLayout, ProvisionFailure, Provisioner,
};
use tensorpool::protocol::control;
use tensorpool::protocol::driver::{
    HugepagesPolicy, PublishMode, ResponseCode, Role, ShmAttachRequest, ShmDetachRequest,
    ShmDriverShutdownRequest, ShmLeaseKeepalive, ShutdownReason,
};
use tensorpool::shm::uri::RegionUri;

const CONFIG: &str = r#"
[driver]
stream_id_range = "20000-20002"
descriptor_stream_id_range = "31000-31002"
control_stream_id_range = "32000-32001"
[policies]
allow_dynamic_streams = true
lease_keepalive_interval_ms = 100
lease_expiry_grace_intervals = 3
announce_period_ms = 200
shutdown_timeout_ms = 300
shutdown_token = "tok"
[profiles.p]
header_nslots = 4
payload_pools = [{ pool_id = 1, stride_bytes = 64 }]
[streams.a]
stream_id = 10000
profile = "p"
[streams.b]
stream_id = 10001
profile = "p"
"#;

/// Provisioner that checks epochs strictly increase per stream and sometimes fails.
struct CheckingProvisioner {
    last_epoch: HashMap<u32, u64>,
    fail_next: bool,
}

impl Provisioner for CheckingProvisioner {
    fn highest_epoch(&mut self, stream_id: u32) -> Result<u64, ProvisionFailure> {
        Ok(self.last_epoch.get(&stream_id).copied().unwrap_or(0))
    }

    fn provision(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<EpochLayout, ProvisionFailure> {
        let last = self.last_epoch.insert(stream_id, epoch).unwrap_or(0);
        assert!(
            epoch > last,
            "epoch {epoch} not above {last} for stream {stream_id}"
        );
        if std::mem::take(&mut self.fail_next) {
            return Err(ProvisionFailure("injected failure".into()));
        }
        let dir = format!("/dev/shm/tp/u/default/{stream_id}/{epoch}");
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

    fn retire_older(&mut self, _stream_id: u32, _current_epoch: u64) {}
}

#[derive(Debug, Clone)]
enum Op {
    Attach {
        client: u32,
        stream: u32,
        producer: bool,
        mode: Option<PublishMode>,
        node: Option<u32>,
        layout: u32,
    },
    Keepalive {
        lease: usize,
        exact: bool,
    },
    Detach {
        lease: usize,
        exact: bool,
    },
    Revoke {
        lease: usize,
    },
    Hello {
        client: u32,
        stream: u32,
        desc: u32,
        ctrl: u32,
    },
    Shutdown {
        right_token: bool,
    },
    FailNextProvision,
    Advance {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let stream = prop::sample::select(vec![10000u32, 10001, 20000, 20001, 20002, 0, 55555]);
    let mode = prop::sample::select(vec![
        None,
        Some(PublishMode::RequireExisting),
        Some(PublishMode::ExistingOrCreate),
    ]);
    prop_oneof![
        6 => (1u32..8, stream.clone(), any::<bool>(), mode, prop::option::of(0u32..3), prop::sample::select(vec![0u32, 1, 2]))
            .prop_map(|(client, stream, producer, mode, node, layout)| Op::Attach { client, stream, producer, mode, node, layout }),
        5 => (any::<prop::sample::Index>(), prop::bool::weighted(0.9))
            .prop_map(|(i, exact)| Op::Keepalive { lease: i.index(usize::MAX), exact }),
        2 => (any::<prop::sample::Index>(), prop::bool::weighted(0.8))
            .prop_map(|(i, exact)| Op::Detach { lease: i.index(usize::MAX), exact }),
        1 => any::<prop::sample::Index>().prop_map(|i| Op::Revoke { lease: i.index(usize::MAX) }),
        2 => (1u32..8, stream, 0u32..3, 0u32..3).prop_map(|(client, stream, desc, ctrl)| Op::Hello { client, stream, desc, ctrl }),
        1 => any::<bool>().prop_map(|right_token| Op::Shutdown { right_token }),
        1 => Just(Op::FailNextProvision),
        4 => (0u64..400).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// What the test knows from the outputs alone.
#[derive(Default)]
struct Model {
    issued: HashSet<u64>,
    issued_order: Vec<(u64, u32, u32, Role)>,
    live: HashSet<u64>,
    announced_epoch: BTreeMap<u32, u64>,
}

impl Model {
    fn check_outputs(&mut self, outputs: &[Output]) {
        let mut producer_revoked: HashSet<u32> = HashSet::new();
        for output in outputs {
            match output {
                Output::AttachResponse(r) => match (&r.code, &r.grant) {
                    (ResponseCode::Ok, Some(g)) => {
                        assert!(
                            self.issued.insert(g.lease_id),
                            "lease id {} issued twice",
                            g.lease_id
                        );
                        assert_ne!(g.lease_id, u64::MAX);
                        self.live.insert(g.lease_id);
                        assert!(r.error_message.is_empty());
                        check_layout(&g.layout);
                        let seen = self
                            .announced_epoch
                            .get(&g.layout.stream_id)
                            .copied()
                            .unwrap_or(0);
                        assert!(g.layout.epoch >= seen, "response epoch went backwards");
                    }
                    (ResponseCode::Ok, None) => panic!("OK response without grant"),
                    (code, grant) => {
                        assert!(grant.is_none(), "{code} response with a grant");
                        assert!(!r.error_message.is_empty() && r.error_message.len() <= 1024);
                    }
                },
                Output::LeaseRevoked {
                    lease_id,
                    role,
                    stream_id,
                    ..
                } => {
                    assert!(
                        self.live.remove(lease_id),
                        "revoke for lease {lease_id} that is not live (duplicate?)"
                    );
                    if *role == Role::Producer {
                        producer_revoked.insert(*stream_id);
                    }
                }
                Output::Announce { layout, .. } => {
                    check_layout(layout);
                    let last = self.announced_epoch.entry(layout.stream_id).or_insert(0);
                    assert!(layout.epoch >= *last, "announced epoch went backwards");
                    if layout.epoch > *last {
                        *last = layout.epoch;
                    }
                }
                _ => {}
            }
        }
        // A producer revoke must precede the announce of the epoch it caused: no announce
        // of stream S may appear before the producer revoke of S in the same batch.
        for stream in producer_revoked {
            let revoke_at = outputs.iter().position(|o| matches!(o, Output::LeaseRevoked { stream_id, role: Role::Producer, .. } if *stream_id == stream));
            let first_announce = outputs.iter().position(
                |o| matches!(o, Output::Announce { layout, .. } if layout.stream_id == stream),
            );
            if let (Some(r), Some(a)) = (revoke_at, first_announce) {
                assert!(
                    r < a,
                    "announce of stream {stream} before its producer revoke"
                );
            }
        }
    }
}

fn check_layout(layout: &EpochLayout) {
    assert!(layout.header_nslots.is_power_of_two());
    assert!(!layout.pools.is_empty());
    RegionUri::parse(&layout.header_region_uri).expect("valid header URI");
    for p in &layout.pools {
        assert_eq!(p.nslots, layout.header_nslots);
        RegionUri::parse(&p.region_uri).expect("valid pool URI");
    }
}

fn run(ops: Vec<Op>) {
    let config = DriverConfig::from_toml_str(CONFIG, &MapEnv::default()).expect("config");
    let mut prov = CheckingProvisioner {
        last_epoch: HashMap::new(),
        fail_next: false,
    };
    let mut core = DriverCore::new(
        &config,
        CoreEnv {
            lease_id_seed: 1 << 40,
            base_is_hugetlbfs: false,
        },
    );
    let mut now = 1_000u64;
    core.start(now, &mut prov).expect("start");
    let mut model = Model::default();
    let mut correlation = 0i64;
    for op in ops {
        let pick = |i: usize| {
            model
                .issued_order
                .get(i % model.issued_order.len().max(1))
                .copied()
        };
        match op {
            Op::Attach {
                client,
                stream,
                producer,
                mode,
                node,
                layout,
            } => {
                correlation += 1;
                let role = if producer {
                    Role::Producer
                } else {
                    Role::Consumer
                };
                let req = ShmAttachRequest {
                    correlation_id: correlation,
                    stream_id: stream,
                    client_id: client,
                    role,
                    expected_layout_version: layout,
                    publish_mode: mode,
                    require_hugepages: HugepagesPolicy::Unspecified,
                    desired_node_id: node,
                };
                core.on_attach(&req, now, &mut prov);
                let outputs: Vec<Output> = core.pending_outputs().to_vec();
                for o in &outputs {
                    if let Output::AttachResponse(r) = o {
                        assert_eq!(r.correlation_id, correlation);
                        if let Some(g) = &r.grant {
                            model
                                .issued_order
                                .push((g.lease_id, g.layout.stream_id, client, role));
                        }
                    }
                }
            }
            Op::Keepalive { lease, exact } => {
                if let Some((id, stream, client, role)) = pick(lease) {
                    let ka = ShmLeaseKeepalive {
                        lease_id: id,
                        stream_id: stream,
                        client_id: if exact { client } else { client + 100 },
                        role,
                        client_timestamp_ns: 0,
                    };
                    let counted = core.on_keepalive(&ka, now);
                    assert_eq!(counted, exact && model.live.contains(&id));
                }
            }
            Op::Detach { lease, exact } => {
                if let Some((id, stream, client, role)) = pick(lease) {
                    correlation += 1;
                    let req = ShmDetachRequest {
                        correlation_id: correlation,
                        lease_id: id,
                        stream_id: stream,
                        client_id: if exact { client } else { client + 100 },
                        role,
                    };
                    let was_live = model.live.contains(&id);
                    core.on_detach(&req, now, &mut prov);
                    let ok = core.pending_outputs().iter().any(|o| matches!(o, Output::DetachResponse { code: ResponseCode::Ok, correlation_id, .. } if *correlation_id == correlation));
                    assert_eq!(ok, exact && was_live);
                }
            }
            Op::Revoke { lease } => {
                if let Some((id, ..)) = pick(lease) {
                    let was_live = model.live.contains(&id);
                    assert_eq!(core.revoke(id, now, &mut prov), was_live);
                }
            }
            Op::Hello {
                client,
                stream,
                desc,
                ctrl,
            } => {
                let msg = control::ConsumerHello {
                    stream_id: stream,
                    consumer_id: client,
                    supports_shm: control::Bool::True,
                    supports_progress: control::Bool::False,
                    mode: control::Mode::Stream,
                    max_rate_hz: 0,
                    expected_layout_version: 0,
                    progress_interval_us: None,
                    progress_bytes_delta: None,
                    progress_major_delta_units: None,
                    descriptor_stream_id: desc * 31000,
                    control_stream_id: ctrl * 32000,
                    descriptor_channel: if desc > 0 { b"aeron:ipc" } else { b"" },
                    control_channel: if ctrl > 1 { b"aeron:ipc" } else { b"" },
                };
                let mut buf = vec![0u8; msg.encoded_len()];
                msg.encode(&mut buf).expect("encode");
                core.on_consumer_hello(&control::ConsumerHelloDecoder::wrap(&buf).expect("decode"));
            }
            Op::Shutdown { right_token } => {
                let req = ShmDriverShutdownRequest {
                    correlation_id: 1,
                    reason: ShutdownReason::Admin,
                    token: if right_token { b"tok" } else { b"nope" },
                    error_message: b"",
                };
                core.on_shutdown_request(&req, now);
            }
            Op::FailNextProvision => prov.fail_next = true,
            Op::Advance { ms } => {
                now += ms * 1_000_000;
                core.on_tick(now, &mut prov);
            }
        }
        let outputs: Vec<Output> = core.drain_outputs().collect();
        model.check_outputs(&outputs);

        // At most one producer lease per stream.
        let mut producers: HashMap<u32, u32> = HashMap::new();
        for lease in core.leases() {
            if lease.role == Role::Producer {
                *producers.entry(lease.stream_id).or_default() += 1;
            }
        }
        assert!(
            producers.values().all(|&n| n <= 1),
            "two producers on one stream"
        );
        // The live set known from responses and revokes is exactly the core's.
        let core_live: HashSet<u64> = core.leases().map(|l| l.lease_id).collect();
        assert_eq!(
            core_live, model.live,
            "a lease ended without exactly one revoke"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn driver_core_keeps_its_invariants(ops in prop::collection::vec(op(), 1..120)) {
        run(ops);
    }
}
