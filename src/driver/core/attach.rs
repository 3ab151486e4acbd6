//! Attach handling (Driver Model §4.2, §4.3, §4.8, §5, §6, §11).

use super::{is_producer, AttachGrant, AttachResponse, DriverCore, Lease, Output, Provisioner};
use crate::protocol::driver::{HugepagesPolicy, PublishMode, ResponseCode, Role, ShmAttachRequest};
use std::borrow::Cow;

pub use crate::protocol::CLIENT_ID_ALREADY_ATTACHED;

/// Longest error message the driver sends (Driver Model §4.2).
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

type Refusal = (ResponseCode, Cow<'static, str>);

fn refuse(code: ResponseCode, message: &'static str) -> Refusal {
    (code, Cow::Borrowed(message))
}

impl DriverCore {
    /// Answers an attach request whose header declared a newer schema version than this
    /// driver supports (Driver Model §4.4a): `UNSUPPORTED`, correlation id echoed.
    pub fn on_attach_unsupported_version(&mut self, correlation_id: i64, version: u16) {
        self.respond_error(
            correlation_id,
            (
                ResponseCode::Unsupported,
                Cow::Owned(format!("unsupported schema version {version}")),
            ),
        );
    }

    /// Handles `ShmAttachRequest`: validates, creates the stream if allowed, grants a
    /// lease (bumping the epoch for a producer), and queues the response.
    pub fn on_attach(&mut self, req: &ShmAttachRequest, now_ns: u64, prov: &mut dyn Provisioner) {
        match self.try_attach(req, now_ns, prov) {
            Ok(grant) => {
                self.counters.count_attach(ResponseCode::Ok);
                tracing::info!(
                    correlation_id = req.correlation_id,
                    lease_id = grant.lease_id,
                    stream_id = grant.layout.stream_id,
                    client_id = req.client_id,
                    role = %req.role,
                    epoch = grant.layout.epoch,
                    "attach ok"
                );
                let stream_id = grant.layout.stream_id;
                // The response goes before the announce of an epoch the attach started.
                let announce_at = self
                    .outputs
                    .iter()
                    .position(|o| matches!(o, Output::Announce { layout, .. } if layout.stream_id == grant.layout.stream_id && layout.epoch == grant.layout.epoch));
                let response = Output::AttachResponse(AttachResponse {
                    correlation_id: req.correlation_id,
                    code: ResponseCode::Ok,
                    error_message: Cow::Borrowed(""),
                    grant: Some(grant),
                });
                match announce_at {
                    Some(index) => self.outputs.insert(index, response),
                    None => {
                        self.outputs.push(response);
                        // Every grant is followed by an announce of its epoch (Wire Spec
                        // §10.1.1: periodically and on change). tensor_pool_c's consumer
                        // sets its join time when it handles its first announce and drops
                        // every announce stamped before it; without this one, a producer
                        // attaching within a period would start an epoch whose announce
                        // that consumer drops, losing frames until the next period.
                        self.announce(stream_id, now_ns);
                    }
                }
            }
            Err(refusal) => {
                tracing::info!(
                    correlation_id = req.correlation_id,
                    stream_id = req.stream_id,
                    client_id = req.client_id,
                    role = %req.role,
                    code = %refusal.0,
                    reason = %refusal.1,
                    "attach refused"
                );
                self.respond_error(req.correlation_id, refusal);
            }
        }
    }

    fn respond_error(&mut self, correlation_id: i64, (code, message): Refusal) {
        self.counters.count_attach(code);
        let error_message = truncate_message(message);
        self.outputs.push(Output::AttachResponse(AttachResponse {
            correlation_id,
            code,
            error_message,
            grant: None,
        }));
    }

    fn try_attach(
        &mut self,
        req: &ShmAttachRequest,
        now_ns: u64,
        prov: &mut dyn Provisioner,
    ) -> Result<AttachGrant, Refusal> {
        use ResponseCode::{InternalError, InvalidParams, Rejected, Unsupported};
        if !self.shutdown.is_running() {
            return Err(refuse(Rejected, "driver shutting down"));
        }
        if !req.role.is_known() {
            return Err(refuse(InvalidParams, "unknown role"));
        }
        if !req.require_hugepages.is_known() {
            return Err(refuse(InvalidParams, "unknown hugepages policy"));
        }
        if req.client_id == 0 {
            return Err(refuse(
                InvalidParams,
                "client_id 0 is reserved for auto-assign",
            ));
        }
        let publish_mode = req.publish_mode.unwrap_or(PublishMode::RequireExisting);
        if !publish_mode.is_known() {
            return Err(refuse(Unsupported, "unsupported publish mode"));
        }

        let stream_id = self.resolve_stream(req.stream_id, publish_mode, prov)?;
        let stream = &self.streams[&stream_id];
        if req.expected_layout_version != 0
            && req.expected_layout_version != crate::shm::layout::LAYOUT_VERSION
        {
            return Err(refuse(Rejected, "layout version mismatch"));
        }
        if stream.profile.payload_pools.is_empty() {
            return Err(refuse(InvalidParams, "stream profile has no payload pools"));
        }
        let hugetlbfs = self.env.base_is_hugetlbfs;
        match req.require_hugepages {
            HugepagesPolicy::Hugepages if !hugetlbfs => {
                return Err(refuse(
                    Rejected,
                    "hugepages required but shm.base_dir is not hugetlbfs",
                ))
            }
            HugepagesPolicy::Standard if hugetlbfs => {
                return Err(refuse(
                    Rejected,
                    "standard pages required but shm.base_dir is hugetlbfs",
                ))
            }
            HugepagesPolicy::Unspecified if self.settings.require_hugepages && !hugetlbfs => {
                return Err(refuse(
                    Rejected,
                    "shm.require_hugepages is set but shm.base_dir is not hugetlbfs",
                ))
            }
            _ => {}
        }
        // Only this stream's leases can collide: look at its holders, not the whole table
        // (attach cost must not grow with the number of leases on other streams).
        let duplicate = stream
            .producer
            .iter()
            .chain(stream.consumers.iter())
            .filter_map(|id| self.leases.get(id))
            .any(|l| l.client_id == req.client_id && l.role == req.role);
        if duplicate {
            return Err(refuse(Rejected, CLIENT_ID_ALREADY_ATTACHED));
        }
        if is_producer(req.role) && stream.producer.is_some() {
            return Err(refuse(Rejected, "producer already attached"));
        }
        if let Some(node_id) = req.desired_node_id {
            if self.node_ids.contains_key(&node_id) {
                return Err(refuse(Rejected, "node id unavailable"));
            }
        }

        // A producer always starts a new epoch (§6); a consumer needs current files.
        if is_producer(req.role) || stream.layout.is_none() {
            self.new_epoch(stream_id, now_ns, prov)
                .map_err(|failure| (InternalError, Cow::Owned(failure.0)))?;
        }
        if is_producer(req.role) {
            // Only a producer's epoch is worth prefaulting: the epoch that follows a
            // producer's end stays sparse until the next producer moves on from it.
            let epoch = self.streams[&stream_id]
                .layout
                .as_ref()
                .map_or(0, |layout| layout.epoch);
            prov.prepare_for_producer(stream_id, epoch)
                .map_err(|failure| (InternalError, Cow::Owned(failure.0)))?;
        }
        let lease_id = self.issue_lease_id();
        let lease_expiry_ns = now_ns.saturating_add(self.settings.lease_expiry_ns);
        if let Some(node_id) = req.desired_node_id {
            self.node_ids.insert(node_id, lease_id);
        }
        self.leases.insert(
            lease_id,
            Lease {
                lease_id,
                stream_id,
                client_id: req.client_id,
                role: req.role,
                expiry_ns: lease_expiry_ns,
                node_id: req.desired_node_id,
                descriptor_stream: None,
                control_stream: None,
            },
        );
        let stream = self
            .streams
            .get_mut(&stream_id)
            .ok_or_else(|| refuse(InternalError, "stream vanished"))?;
        match req.role {
            Role::Producer => stream.producer = Some(lease_id),
            _ => {
                stream.consumers.insert(lease_id);
            }
        }
        let layout = stream
            .layout
            .clone()
            .ok_or_else(|| refuse(InternalError, "stream has no provisioned epoch"))?;
        if is_producer(req.role) {
            // The announce queued by the epoch bump was built before the producer was
            // recorded; refresh it so consumers see the producer id at once.
            self.refresh_pending_announce(stream_id, req.client_id);
        }
        Ok(AttachGrant {
            lease_id,
            lease_expiry_ns,
            node_id: req.desired_node_id,
            layout,
        })
    }

    /// Finds the stream for a request, creating a dynamic one when allowed (§11).
    fn resolve_stream(
        &mut self,
        requested: u32,
        publish_mode: PublishMode,
        prov: &mut dyn Provisioner,
    ) -> Result<u32, Refusal> {
        use ResponseCode::{InternalError, InvalidParams, Rejected};
        if self.streams.contains_key(&requested) {
            return Ok(requested);
        }
        if publish_mode != PublishMode::ExistingOrCreate {
            return Err(refuse(Rejected, "stream not provisioned"));
        }
        if !self.settings.allow_dynamic_streams {
            return Err(refuse(
                Rejected,
                "stream not provisioned and dynamic streams are disabled",
            ));
        }
        let Some((profile_name, profile)) = self.settings.default_profile.clone() else {
            return Err(refuse(
                InvalidParams,
                "no default profile for dynamic streams",
            ));
        };
        let preferred = (requested != 0).then_some(requested);
        let Some(stream_id) = self.dynamic_ids.allocate(preferred) else {
            return Err(refuse(
                InvalidParams,
                "driver.stream_id_range is empty or exhausted",
            ));
        };
        if let Err(failure) = self.add_stream(stream_id, profile_name, profile, true, prov) {
            self.dynamic_ids.release(stream_id);
            return Err((InternalError, Cow::Owned(failure.0)));
        }
        tracing::info!(stream_id, requested, "dynamic stream created");
        Ok(stream_id)
    }

    fn refresh_pending_announce(&mut self, stream_id: u32, client_id: u32) {
        for output in self.outputs.iter_mut().rev() {
            if let Output::Announce {
                producer_id,
                layout,
                ..
            } = output
            {
                if layout.stream_id == stream_id {
                    *producer_id = client_id;
                    return;
                }
            }
        }
    }
}

/// Caps an error message at [`MAX_ERROR_MESSAGE_LEN`] bytes on a character boundary.
fn truncate_message(message: Cow<'static, str>) -> Cow<'static, str> {
    if message.len() <= MAX_ERROR_MESSAGE_LEN {
        return message;
    }
    let mut end = MAX_ERROR_MESSAGE_LEN;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(message[..end].to_string())
}
