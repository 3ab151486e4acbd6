//! The driver's handling of inbound control messages (Driver Model §4): a real driver
//! core and agent fed fuzzed messages over an in-memory control plane, with time moving
//! between them (leases expire, announces fall due), and an in-memory provisioner. The
//! driver must never panic, everything it publishes must decode, and no lease id is ever
//! granted twice nor an epoch of a stream ever reissued or lowered.
//!
//! Input: a sequence of records `[step: u8][len: u8][len bytes]`; `step` advances the
//! clock by `step` × 10 ms before the message is delivered and a duty cycle runs. The
//! message bytes are patched lightly to get past the header most of the time: when `step`
//! is odd the first four bytes are replaced by a driver-schema header whose template id is
//! the fifth byte modulo 9, so the fuzzer spends its time inside message bodies.
#![no_main]

use std::collections::{HashMap, HashSet, VecDeque};

use tensorpool::config::{DriverConfig, NoEnv, Profile};
use tensorpool::driver::agent::{ControlPlane, DriverAgent, PublishError, PublishOutcome};
use tensorpool::driver::core::{
    CoreEnv, DriverCore, EpochLayout, PoolLayout, ProvisionFailure, Provisioner,
};
use tensorpool::driver::wire::Destination;
use tensorpool::protocol::control;
use tensorpool::protocol::driver::{self, ResponseCode};

const CONFIG: &str = r#"
[driver]
stream_id_range = "20000-20002"
descriptor_stream_id_range = "31000-31001"
control_stream_id_range = "32000-32000"
[policies]
allow_dynamic_streams = true
lease_keepalive_interval_ms = 100
lease_expiry_grace_intervals = 3
announce_period_ms = 200
shutdown_timeout_ms = 300
shutdown_token = "s3cret"
[profiles.p]
header_nslots = 8
payload_pools = [{ pool_id = 1, stride_bytes = 4096 }]
[streams.s]
stream_id = 10000
profile = "p"
"#;

#[derive(Default)]
struct MemoryProvisioner;

impl Provisioner for MemoryProvisioner {
    fn highest_epoch(&mut self, _stream_id: u32) -> Result<u64, ProvisionFailure> {
        Ok(0)
    }

    fn provision(
        &mut self,
        stream_id: u32,
        epoch: u64,
        layout_version: u32,
        profile: &Profile,
    ) -> Result<EpochLayout, ProvisionFailure> {
        let dir = format!("/dev/shm/tp-fuzz/{stream_id}/{epoch}");
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

/// Inbound queue and what the driver published, checked as it goes.
#[derive(Default)]
struct MemoryPlane {
    inbound: VecDeque<Vec<u8>>,
    granted: HashSet<u64>,
    epochs: HashMap<u32, u64>,
}

impl MemoryPlane {
    fn check_epoch(&mut self, stream_id: u32, epoch: u64, what: &str) {
        let last = self.epochs.entry(stream_id).or_insert(0);
        assert!(
            epoch >= *last,
            "{what}: stream {stream_id} epoch {epoch} after {last}"
        );
        *last = epoch;
    }

    fn check_output(&mut self, bytes: &[u8]) {
        if let Ok(message) = driver::AnyMessage::decode(bytes) {
            if let driver::AnyMessage::ShmAttachResponse(d) = message {
                if d.code() == ResponseCode::Ok {
                    let lease = d.lease_id().expect("an OK attach response has a lease id");
                    assert!(self.granted.insert(lease), "lease id {lease} granted twice");
                    let stream = d.stream_id().expect("an OK attach response has a stream");
                    let epoch = d.epoch().expect("an OK attach response has an epoch");
                    self.check_epoch(stream, epoch, "attach response");
                }
            }
            return;
        }
        match control::AnyMessage::decode(bytes) {
            Ok(control::AnyMessage::ShmPoolAnnounce(d)) => {
                self.check_epoch(d.stream_id(), d.epoch(), "announce")
            }
            Ok(_) => {}
            Err(e) => panic!("the driver published bytes that do not decode: {e}"),
        }
    }
}

impl ControlPlane for MemoryPlane {
    fn poll_control(&mut self, handler: &mut dyn FnMut(&[u8]), limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(message) = self.inbound.pop_front() else {
                break;
            };
            handler(&message);
            n += 1;
        }
        n
    }

    fn publish(
        &mut self,
        _destination: Destination,
        bytes: &[u8],
    ) -> Result<PublishOutcome, PublishError> {
        self.check_output(bytes);
        Ok(PublishOutcome::Sent)
    }

    fn flush(&mut self) -> usize {
        0
    }
}

/// A driver-schema message header: block length, template, schema 901, version 1.
fn driver_header(template_id: u16) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[2..4].copy_from_slice(&template_id.to_le_bytes());
    h[4..6].copy_from_slice(&901u16.to_le_bytes());
    h[6..8].copy_from_slice(&1u16.to_le_bytes());
    h
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let config = DriverConfig::from_toml_str(CONFIG, &NoEnv).expect("the fuzz config is valid");
    let mut provisioner = MemoryProvisioner;
    let mut core = DriverCore::new(
        &config,
        CoreEnv {
            lease_id_seed: 1,
            base_is_hugetlbfs: false,
        },
    );
    core.start(0, &mut provisioner).expect("start");
    let mut agent = DriverAgent::new(core, provisioner, MemoryPlane::default(), 50_000_000);
    let mut now_ns = 0u64;
    agent.do_work(now_ns);

    let mut rest = data;
    while let [step, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (message, next) = tail.split_at(len);
        rest = next;
        now_ns += u64::from(*step) * 10_000_000;
        let mut message = message.to_vec();
        if step & 1 == 1 && message.len() >= 8 {
            // Keep the fuzzed block length (bytes 0..2); set template, schema, version.
            let template = u16::from(message[4] % 9);
            message[2..8].copy_from_slice(&driver_header(template)[2..8]);
        }
        agent.transport_mut().inbound.push_back(message);
        agent.do_work(now_ns);
        if agent.is_terminated() {
            break;
        }
    }
    // Let every lease expire: the driver must come to rest without panicking.
    agent.do_work(now_ns + 10_000_000_000);
});
