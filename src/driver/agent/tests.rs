use super::*;
use crate::driver::core::tests::{config, FakeProvisioner, BASE_CONFIG};
use crate::driver::core::CoreEnv;
use crate::driver::lease_counters::LeaseEvent;
use crate::protocol::driver::{
    HugepagesPolicy, ResponseCode, Role, ShmAttachRequest, ShmAttachResponseDecoder,
    ShmLeaseKeepalive,
};
use std::collections::VecDeque;

/// In-memory control plane: inbound queue, published messages, scripted outcomes.
#[derive(Default)]
struct MemoryPlane {
    inbound: VecDeque<Vec<u8>>,
    published: Vec<(Destination, Vec<u8>)>,
    queued: Vec<(Destination, Vec<u8>)>,
    back_pressure: bool,
}

impl ControlPlane for MemoryPlane {
    fn poll_control(&mut self, handler: &mut dyn FnMut(&[u8]), limit: usize) -> usize {
        let mut n = 0;
        while n < limit {
            let Some(msg) = self.inbound.pop_front() else {
                break;
            };
            handler(&msg);
            n += 1;
        }
        n
    }

    fn publish(
        &mut self,
        destination: Destination,
        bytes: &[u8],
    ) -> Result<PublishOutcome, PublishError> {
        if self.back_pressure {
            self.queued.push((destination, bytes.to_vec()));
            return Ok(PublishOutcome::Queued);
        }
        self.published.push((destination, bytes.to_vec()));
        Ok(PublishOutcome::Sent)
    }

    fn flush(&mut self) -> usize {
        if self.back_pressure {
            return 0;
        }
        let n = self.queued.len();
        self.published.append(&mut self.queued);
        n
    }
}

fn agent() -> DriverAgent<FakeProvisioner, MemoryPlane> {
    let mut prov = FakeProvisioner::default();
    let mut core = DriverCore::new(
        &config(BASE_CONFIG),
        CoreEnv {
            lease_id_seed: 500,
            base_is_hugetlbfs: false,
        },
    );
    core.start(0, &mut prov).expect("start");
    let mut agent = DriverAgent::new(core, prov, MemoryPlane::default(), 1_000_000_000);
    // These tests drive time by hand; a send-time clock at 0 leaves every deadline as
    // the duty cycle's `now_ns` set it (a restart never shortens a lease).
    agent.set_clock(|| 0);
    agent.do_work(0);
    agent.transport_mut().published.clear();
    agent
}

fn attach_bytes(correlation_id: i64, client_id: u32, role: Role) -> Vec<u8> {
    let req = ShmAttachRequest {
        correlation_id,
        stream_id: 10000,
        client_id,
        role,
        expected_layout_version: 0,
        publish_mode: None,
        require_hugepages: HugepagesPolicy::Unspecified,
        desired_node_id: None,
    };
    let mut buf = vec![0u8; req.encoded_len()];
    req.encode(&mut buf).expect("encodes");
    buf
}

fn responses(plane: &MemoryPlane) -> Vec<(i64, ResponseCode, Option<u64>)> {
    plane
        .published
        .iter()
        .filter_map(|(_, bytes)| ShmAttachResponseDecoder::wrap(bytes).ok())
        .map(|r| (r.correlation_id(), r.code(), r.lease_id()))
        .collect()
}

#[test]
fn malformed_and_foreign_messages_do_not_disturb_a_concurrent_attach() {
    let mut agent = agent();
    let plane = agent.transport_mut();
    plane.inbound.push_back(vec![1, 2, 3]);
    let mut foreign = attach_bytes(1, 5, Role::Consumer);
    foreign[4] = 0x99;
    plane.inbound.push_back(foreign);
    plane.inbound.push_back(attach_bytes(2, 5, Role::Consumer));
    let mut truncated = attach_bytes(3, 6, Role::Consumer);
    truncated.truncate(12);
    plane.inbound.push_back(truncated);
    agent.do_work(1);
    assert_eq!(
        responses(agent.transport_mut()),
        vec![(2, ResponseCode::Ok, Some(500))]
    );
    assert_eq!(agent.counters().malformed_total(), 3);
    assert_eq!(
        agent.counters().malformed[Malformed::TooShort.kind_index()],
        1
    );
    assert_eq!(
        agent.counters().malformed[Malformed::ForeignSchema(0).kind_index()],
        1
    );
}

#[test]
fn keepalive_bytes_extend_the_lease() {
    let mut agent = agent();
    agent
        .transport_mut()
        .inbound
        .push_back(attach_bytes(2, 5, Role::Consumer));
    agent.do_work(1);
    let ka = ShmLeaseKeepalive {
        lease_id: 500,
        stream_id: 10000,
        client_id: 5,
        role: Role::Consumer,
        client_timestamp_ns: 0,
    };
    let mut buf = vec![0u8; ka.encoded_len()];
    ka.encode(&mut buf).expect("encodes");
    agent.transport_mut().inbound.push_back(buf);
    agent.do_work(2_000_000_000);
    assert_eq!(
        agent.core().lease(500).map(|l| l.expiry_ns),
        Some(5_000_000_000)
    );
    assert_eq!(agent.core_counters().keepalives, 1);
}

#[test]
fn back_pressured_outputs_are_queued_then_retried_in_order() {
    let mut agent = agent();
    agent.transport_mut().back_pressure = true;
    agent
        .transport_mut()
        .inbound
        .push_back(attach_bytes(7, 5, Role::Producer));
    agent.do_work(1);
    assert!(agent.transport_mut().published.is_empty());
    assert_eq!(
        agent.counters().offers_queued,
        2,
        "response and announce queued"
    );
    agent.transport_mut().back_pressure = false;
    agent.do_work(2);
    assert_eq!(agent.counters().offer_retries, 2);
    let published = &agent.transport_mut().published;
    assert_eq!(published[0].0, Destination::Control);
    assert_eq!(published[1].0, Destination::Announce);
    assert_eq!(responses(agent.transport_mut())[0].0, 7);
}

#[test]
fn shutdown_now_publishes_the_notice_and_terminates() {
    let mut agent = agent();
    agent.shutdown_now(ShutdownReason::Normal, 5);
    assert!(agent.is_terminated());
    let (_, bytes) = agent
        .transport_mut()
        .published
        .last()
        .cloned()
        .expect("notice");
    let notice =
        crate::protocol::driver::ShmDriverShutdown::decode(&bytes).expect("a shutdown notice");
    assert_eq!(notice.reason, ShutdownReason::Normal);
}

#[test]
fn announces_go_out_periodically_on_the_announce_stream() {
    let mut agent = agent();
    agent.do_work(1_000_000_000);
    let announces = agent
        .transport_mut()
        .published
        .iter()
        .filter(|(d, _)| *d == Destination::Announce)
        .count();
    assert_eq!(announces, 1);
}

fn keepalive_bytes(lease_id: u64, client_id: u32) -> Vec<u8> {
    let ka = ShmLeaseKeepalive {
        lease_id,
        stream_id: 10000,
        client_id,
        role: Role::Consumer,
        client_timestamp_ns: 0,
    };
    let mut buf = vec![0u8; ka.encoded_len()];
    ka.encode(&mut buf).expect("encodes");
    buf
}

fn drained(agent: &mut DriverAgent<FakeProvisioner, MemoryPlane>) -> Vec<LeaseEvent> {
    let mut events = Vec::new();
    agent.drain_lease_events(|event, _| events.push(event));
    events
}

#[test]
fn lease_events_follow_grants_keepalives_and_ends_only_when_recorded() {
    let mut agent = agent();
    agent
        .transport_mut()
        .inbound
        .push_back(attach_bytes(1, 5, Role::Consumer));
    agent.do_work(1);
    assert!(
        drained(&mut agent).is_empty(),
        "nothing recorded by default"
    );

    agent.record_lease_events();
    agent
        .transport_mut()
        .inbound
        .push_back(attach_bytes(2, 6, Role::Consumer));
    agent
        .transport_mut()
        .inbound
        .push_back(keepalive_bytes(501, 6));
    // A keepalive that matches no lease changes nothing.
    agent
        .transport_mut()
        .inbound
        .push_back(keepalive_bytes(501, 7));
    agent.do_work(2);
    assert_eq!(
        drained(&mut agent),
        [LeaseEvent::Renewed(501), LeaseEvent::Granted(501)],
        "inbound keepalives are seen as handled, grants as published"
    );
    // Both leases expire (3 s lease): one end each.
    agent.do_work(10_000_000_000);
    let mut ended = drained(&mut agent);
    ended.sort_by_key(|e| match e {
        LeaseEvent::Ended(id) => *id,
        _ => 0,
    });
    assert_eq!(ended, [LeaseEvent::Ended(500), LeaseEvent::Ended(501)]);
    assert!(drained(&mut agent).is_empty(), "drained once");
}

#[test]
fn a_grant_lasts_a_full_lease_from_when_its_response_is_sent() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let mut agent = agent();
    let clock = Arc::new(AtomicU64::new(0));
    let reading = Arc::clone(&clock);
    agent.set_clock(move || reading.load(Ordering::Relaxed));
    agent
        .transport_mut()
        .inbound
        .push_back(attach_bytes(2, 5, Role::Consumer));
    // The duty cycle read its clock at 1 s; the response left at 2.5 s.
    clock.store(2_500_000_000, Ordering::Relaxed);
    agent.do_work(1_000_000_000);
    let expiry = agent.core().lease(500).map(|l| l.expiry_ns);
    assert_eq!(expiry, Some(5_500_000_000), "3 s from the send");
    let response = agent
        .transport_mut()
        .published
        .iter()
        .find_map(|(_, bytes)| {
            crate::protocol::driver::ShmAttachResponseDecoder::wrap(bytes)
                .ok()
                .map(|r| r.lease_expiry_timestamp_ns())
        });
    assert_eq!(
        response,
        Some(Some(5_500_000_000)),
        "the client reads the same deadline"
    );
}
