//! `tp_consumer` and `tp_frame`: the Rust `Consumer` behind a handle (Driver Model
//! §4.12.3; Wire Spec §15.18 for the seqlock reads). A frame reaches C code as a
//! `tp_frame` handle that is valid only inside the callback; the consumer re-checks the
//! seqlock after the callback returns, exactly as `Consumer::poll_frames` does for Rust
//! closures, and the result says whether the frame was still intact.

use crate::config::{settings, tp_config};
use crate::handle::{self, Kind, Shell};
use crate::status::{guard, tp_status, write_out, Failure};
use crate::tensor::tp_tensor;
use std::ffi::{c_char, c_void};
use tensorpool::client::consumer::{
    monotonic_now_ns, Consumer, ConsumerCounters, ConsumerEvent, ConsumerState, DropReason, Frame,
    FramePoll, UnmapReason,
};
use tensorpool::client::progress::ProgressPoll;
use tensorpool::protocol::control::FrameProgressState;

/// A stream's consumer (opaque). Create with `tp_consumer_create`, drive with
/// `tp_consumer_do_work` and read with `tp_consumer_poll` from the thread that created
/// it, free with `tp_consumer_close`.
#[allow(non_camel_case_types)]
pub struct tp_consumer {
    _private: [u8; 0],
}

/// A frame being delivered (opaque): valid only inside the `tp_frame_handler` it is
/// passed to. Read it with `tp_frame_get`; afterwards that answers TP_ERROR_VIEW_EXPIRED.
#[allow(non_camel_case_types)]
pub struct tp_frame {
    _private: [u8; 0],
}

/// Called once per frame that passed every check; `frame` is valid until it returns.
/// It must not unwind (no C++ exception may leave it) and must not call functions of
/// the consumer delivering the frame (they answer TP_ERROR_WRONG_STATE).
#[allow(non_camel_case_types)]
pub type tp_frame_handler = Option<unsafe extern "C" fn(frame: *const tp_frame, user: *mut c_void)>;

/// Called by `tp_consumer_poll_frames` with the outcome of each message read, after
/// the frame handler (if it ran) returned.
#[allow(non_camel_case_types)]
pub type tp_outcome_handler =
    Option<unsafe extern "C" fn(result: *const tp_poll_result, user: *mut c_void)>;

/// A borrowed view of a frame: the payload in shared memory and its description. The
/// payload pointer is valid only inside the callback, and what was read from it counts
/// only if the poll then reports TP_POLL_DELIVERED (the producer may overwrite a slot
/// while it is read).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tp_frame_info {
    /// The payload bytes, read in place from the mapped pool.
    pub payload: *const u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Sequence number within the epoch.
    pub seq: u64,
    /// Epoch of the regions the frame was read from.
    pub epoch: u64,
    /// Capture timestamp the producer set (CLOCK_MONOTONIC ns for this library's
    /// producers).
    pub timestamp_ns: u64,
    /// Stream id.
    pub stream_id: u32,
    /// Header ring index (also the payload slot).
    pub header_index: u32,
    /// Metadata version the frame was taken under (0: none).
    pub meta_version: u32,
    /// How `meta_version` relates to the consumer's metadata (a `tp_meta_status`).
    pub meta_status: i32,
    /// Payload pool the bytes live in.
    pub pool_id: u16,
    /// The validated tensor description.
    pub tensor: tp_tensor,
    /// The descriptor's trace id (Wire Spec §10.2.1); 0 = absent.
    pub trace_id: u64,
    /// The descriptor's publish timestamp (Wire Spec §10.2.1); 0 = absent.
    pub descriptor_timestamp_ns: u64,
}

impl Default for tp_frame_info {
    fn default() -> Self {
        Self {
            payload: std::ptr::null(),
            payload_len: 0,
            seq: 0,
            epoch: 0,
            timestamp_ns: 0,
            stream_id: 0,
            header_index: 0,
            meta_version: 0,
            meta_status: 0,
            pool_id: 0,
            tensor: tp_tensor::default(),
            trace_id: 0,
            descriptor_timestamp_ns: 0,
        }
    }
}

/// What became of one descriptor (`tp_poll_result.outcome`).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_poll_outcome {
    /// No message was waiting.
    TP_POLL_EMPTY = 0,
    /// The frame was delivered and was still intact after the callback returned.
    TP_POLL_DELIVERED = 1,
    /// A descriptor of this stream was dropped and counted (`drop_reason`); if the
    /// callback ran, what it read must be discarded.
    TP_POLL_DROPPED = 2,
    /// A message that is not a descriptor of this stream was consumed.
    TP_POLL_IGNORED = 3,
    /// A frame passed every check but was skipped to stay under the rate limit
    /// (`tp_config_set_rate_limit`); counted in `frames_rate_limited`, not a drop; the frame
    /// handler did not run.
    TP_POLL_RATE_LIMITED = 4,
}

/// Why a descriptor was dropped (`tp_poll_result.drop_reason`); each has a counter.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_drop_reason {
    /// Not dropped.
    TP_DROP_NONE = 0,
    /// No regions mapped.
    TP_DROP_UNMAPPED = 1,
    /// The producer was revoked; waiting for a new epoch.
    TP_DROP_AWAITING_EPOCH = 2,
    /// Not the mapped epoch.
    TP_DROP_EPOCH = 3,
    /// Sequence not after the last one seen.
    TP_DROP_DUPLICATE = 4,
    /// Skipped while catching up.
    TP_DROP_RESYNC = 5,
    /// The slot was being written.
    TP_DROP_NOT_COMMITTED = 6,
    /// The slot held an older sequence.
    TP_DROP_STALE = 7,
    /// The slot was overwritten before, during or after the read.
    TP_DROP_LATE = 8,
    /// The slot's header is not a v1.2 TensorHeader.
    TP_DROP_HEADER_FORMAT = 9,
    /// The payload slot is out of range.
    TP_DROP_PAYLOAD_SLOT = 10,
    /// Unknown pool id.
    TP_DROP_POOL = 11,
    /// Payload length exceeds the pool stride.
    TP_DROP_LENGTH = 12,
    /// Non-zero payload offset.
    TP_DROP_PAYLOAD_OFFSET = 13,
    /// The tensor description breaks a Wire Spec §8.2 rule.
    TP_DROP_TENSOR = 14,
    /// The consumer is in FALLBACK (Wire Spec §15.12): it reads no shared memory.
    TP_DROP_FALLBACK = 15,
    /// The writer's sequence went back within the epoch (Wire Spec §15.2); the
    /// consumer remaps.
    TP_DROP_SEQ_REGRESSION = 16,
}

/// The result of reading one message from the descriptor stream.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_poll_result {
    /// A `tp_poll_outcome` value.
    pub outcome: i32,
    /// A `tp_drop_reason` value (TP_DROP_NONE unless dropped).
    pub drop_reason: i32,
    /// The delivered frame's sequence (0 unless delivered).
    pub seq: u64,
}

/// Kinds of consumer events (`tp_consumer_event.kind`).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_consumer_event_kind {
    /// No event was pending.
    TP_CONSUMER_EVENT_NONE = 0,
    /// A lease was granted and its regions mapped (`epoch`).
    TP_CONSUMER_EVENT_ATTACHED = 1,
    /// A higher epoch was announced and mapped (`epoch`).
    TP_CONSUMER_EVENT_EPOCH_CHANGED = 2,
    /// The driver revoked this consumer's lease (`reason`: 1 detached, 2 expired,
    /// 3 revoked); it reattaches.
    TP_CONSUMER_EVENT_REVOKED = 3,
    /// The stream's producer lease ended (`reason`: 1 detached, i.e. it finished;
    /// 2 expired, 3 revoked); frames wait for the next epoch.
    TP_CONSUMER_EVENT_PRODUCER_REVOKED = 4,
    /// The driver is shutting down (`reason`: 0 normal, 1 admin, 2 error).
    TP_CONSUMER_EVENT_DRIVER_SHUTDOWN = 5,
    /// The regions were unmapped (`reason`: a `tp_unmap_reason`).
    TP_CONSUMER_EVENT_UNMAPPED = 6,
    /// The Aeron client lost its media driver; `tp_consumer_do_work` reconnects.
    TP_CONSUMER_EVENT_MEDIA_DRIVER_LOST = 7,
    /// The driver refused the attach (`reason`: the response code); retried.
    TP_CONSUMER_EVENT_ATTACH_REFUSED = 8,
    /// A ConsumerConfig said `use_shm = FALSE` (Wire Spec §15.12): the consumer is in
    /// FALLBACK and reads no shared memory (`reason`: 1 when the fallback URI's scheme is
    /// `aeron:` or `bridge://`, else 0; the URI: `tp_consumer_get_fallback_uri`).
    TP_CONSUMER_EVENT_FALLBACK = 9,
    /// A ConsumerConfig with `use_shm = TRUE` ended FALLBACK; the consumer reattaches.
    TP_CONSUMER_EVENT_SHM_RESUMED = 10,
    /// A new metadata version of the stream arrived complete (`meta_version`); read it
    /// with `tp_consumer_get_metadata`.
    TP_CONSUMER_EVENT_METADATA_CHANGED = 11,
}

/// Why the regions were unmapped (`reason` of TP_CONSUMER_EVENT_UNMAPPED).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_unmap_reason {
    /// The driver revoked this consumer's lease.
    TP_UNMAP_LEASE_REVOKED = 1,
    /// The lease was given up locally.
    TP_UNMAP_LEASE_LOST = 2,
    /// The driver announced shutdown.
    TP_UNMAP_DRIVER_SHUTDOWN = 3,
    /// No new epoch was announced in time after a producer revoke.
    TP_UNMAP_EPOCH_WAIT_TIMED_OUT = 4,
    /// The regions failed the containment or superblock checks.
    TP_UNMAP_MAP_FAILED = 5,
    /// The header ring's activity timestamp went stale (Wire Spec §15.14).
    TP_UNMAP_ACTIVITY_STALE = 6,
    /// The writer's sequence went back within the epoch (Wire Spec §15.2).
    TP_UNMAP_SEQ_REGRESSION = 7,
    /// The consumer entered FALLBACK (Wire Spec §15.12).
    TP_UNMAP_FALLBACK = 8,
}

/// Where a consumer stands in the Wire Spec §15.12 state machine
/// (`tp_consumer_get_state`).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_consumer_state {
    /// No regions mapped (attaching, or between epochs).
    TP_CONSUMER_STATE_UNMAPPED = 0,
    /// Regions mapped; frames are read.
    TP_CONSUMER_STATE_MAPPED = 1,
    /// Told not to use shared memory; nothing is read.
    TP_CONSUMER_STATE_FALLBACK = 2,
}

/// One consumer event; fields a kind does not use are 0.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_consumer_event {
    /// A `tp_consumer_event_kind` value.
    pub kind: i32,
    /// A reason (see the kind).
    pub reason: i32,
    /// Epoch (ATTACHED, EPOCH_CHANGED).
    pub epoch: u64,
    /// Metadata version (METADATA_CHANGED).
    pub meta_version: u32,
}

/// The consumer's counters; each only grows. Every descriptor of the stream is either
/// delivered or lands in exactly one `drops_*` counter other than `drops_gap`.
///
/// The consumer's QoS message carries two sums of them (Wire Spec §10.4.1), shown by
/// `tp status` as `qos_drops_gap` (`QosConsumer.dropsGap` = `drops_gap + drops_resync`)
/// and `qos_drops_late` (`QosConsumer.dropsLate` = `drops_not_committed + drops_stale +
/// drops_late`).
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_consumer_counters {
    /// Descriptors of this stream read from the descriptor stream.
    pub descriptors_received: u64,
    /// Frames handed to the callback and still intact after it returned.
    pub frames_delivered: u64,
    /// Sequences missing between consecutive descriptors.
    pub drops_gap: u64,
    /// Descriptors dropped: no regions mapped.
    pub drops_unmapped: u64,
    /// Descriptors dropped: the producer was revoked, waiting for a new epoch.
    pub drops_awaiting_epoch: u64,
    /// Descriptors dropped: not the mapped epoch.
    pub drops_epoch: u64,
    /// Descriptors dropped: sequence not after the last one seen.
    pub drops_duplicate: u64,
    /// Descriptors dropped while skipping ahead after falling too far behind.
    pub drops_resync: u64,
    /// Descriptors dropped: the slot was being written.
    pub drops_not_committed: u64,
    /// Descriptors dropped: the slot held an older sequence.
    pub drops_stale: u64,
    /// Descriptors dropped: the slot was overwritten (before, during or after the read).
    pub drops_late: u64,
    /// Descriptors dropped: the slot's header is not a v1.2 TensorHeader.
    pub drops_header_format: u64,
    /// Descriptors dropped: the payload slot is out of range.
    pub drops_payload_slot: u64,
    /// Descriptors dropped: unknown pool id.
    pub drops_pool: u64,
    /// Descriptors dropped: the payload length exceeds the pool stride.
    pub drops_length: u64,
    /// Descriptors dropped: non-zero payload offset.
    pub drops_payload_offset: u64,
    /// Descriptors dropped: the tensor description breaks a Wire Spec §8.2 rule.
    pub drops_tensor: u64,
    /// Times the consumer skipped ahead after falling too far behind.
    pub resyncs: u64,
    /// Descriptors of other streams on the shared descriptor stream.
    pub descriptors_other_stream: u64,
    /// Messages on the descriptor stream that are not valid descriptors.
    pub malformed_descriptors: u64,
    /// Leases granted.
    pub attaches: u64,
    /// Higher epochs seen while mapped.
    pub epoch_changes: u64,
    /// Mappings made from an announce.
    pub remaps: u64,
    /// Grants or announces whose regions could not be mapped.
    pub map_failures: u64,
    /// Announces of this stream accepted.
    pub announces_accepted: u64,
    /// Announces older than the freshness window.
    pub announces_ignored_stale: u64,
    /// Announces stamped before this consumer joined.
    pub announces_ignored_before_join: u64,
    /// Announces with an epoch lower than the highest seen.
    pub announces_ignored_lower_epoch: u64,
    /// Announces that failed validation.
    pub announces_invalid: u64,
    /// Attach responses refused as protocol errors.
    pub protocol_errors: u64,
    /// ConsumerHello messages sent.
    pub hellos_sent: u64,
    /// ConsumerConfig messages for this consumer received.
    pub consumer_configs: u64,
    /// QosConsumer messages sent.
    pub qos_sent: u64,
    /// QosConsumer messages that could not be offered.
    pub qos_send_failures: u64,
    /// Events discarded because the queue was not drained.
    pub events_dropped: u64,
    /// Times the Aeron connection was rebuilt after losing the media driver.
    pub reconnects: u64,
    /// Descriptors dropped: the consumer is in FALLBACK.
    pub drops_fallback: u64,
    /// Descriptors dropped: the writer's sequence went back within the epoch.
    pub drops_seq_regression: u64,
    /// Frames whose tensor header had non-zero dims/strides beyond ndims (shown as 0).
    pub tensors_beyond_ndims: u64,
    /// Times the header ring's activity timestamp was found stale (each reattached).
    pub activity_stale: u64,
    /// Times a ConsumerConfig put the consumer in FALLBACK.
    pub fallbacks: u64,
    /// Metadata versions received complete.
    pub metadata_updates: u64,
    /// Metadata messages of this stream dropped as malformed.
    pub metadata_dropped_malformed: u64,
    /// Metadata messages of this stream dropped for exceeding a size bound.
    pub metadata_dropped_oversize: u64,
    /// Frames skipped to stay under the rate limit (RATE_LIMITED mode); not drops.
    pub frames_rate_limited: u64,
    /// `FrameProgress` messages of this stream received (progress opted in).
    pub progress_received: u64,
    /// Frame prefixes delivered intact to the progress handler.
    pub progress_prefixes_delivered: u64,
    /// `FrameProgress` messages ignored for breaking a Wire Spec §10.2.2 rule
    /// (regression, beyond values_len_bytes, bad progress unit/stride, bad state, not in
    /// the slot).
    pub progress_violations: u64,
    /// `FrameProgress` messages for frames already passed or another epoch.
    pub progress_stale: u64,
}

/// The consumer's state.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_consumer_info {
    /// Whether frames are accepted (mapped, not waiting for a new epoch).
    pub ready: bool,
    /// Whether the Aeron client is connected to a media driver.
    pub connected: bool,
    /// The stream consumed.
    pub stream_id: u32,
    /// The consumer id in use.
    pub consumer_id: u32,
    /// The mapped epoch (0 when none).
    pub mapped_epoch: u64,
    /// The highest sequence seen in the mapped epoch (0 when none).
    pub last_seq_seen: u64,
}

/// What a frame handle holds: the view while a callback runs.
pub(crate) struct FrameSlot {
    live: bool,
    info: tp_frame_info,
}

type FrameShell = Shell<FrameSlot>;

/// What a consumer handle holds.
pub(crate) struct ConsumerInner {
    consumer: Consumer,
    /// This consumer's frame handle; never freed (see `handle`), so a stale `tp_frame`
    /// pointer still answers TP_ERROR_VIEW_EXPIRED.
    frame: *mut FrameShell,
}

impl ConsumerInner {
    /// The consumer.
    pub(crate) fn consumer(&self) -> &Consumer {
        &self.consumer
    }
}

type ConsumerShell = Shell<ConsumerInner>;

pub(crate) fn with(
    consumer: *mut tp_consumer,
    body: impl FnOnce(&mut ConsumerInner) -> Result<(), Failure>,
) -> tp_status {
    // SAFETY: `consumer` is NULL or a handle of this library (the ABI contract).
    unsafe { handle::with(consumer.cast::<ConsumerShell>(), Kind::Consumer, body) }
}

/// Connects to the media driver (waiting up to the config's connect timeout) and
/// prepares a consumer of `stream_id`; the attach starts on the first
/// `tp_consumer_do_work`. The handle belongs to the calling thread.
#[no_mangle]
pub extern "C" fn tp_consumer_create(
    config: *const tp_config,
    stream_id: u32,
    out: *mut *mut tp_consumer,
) -> tp_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let config = settings(config)?.consumer(stream_id);
        config.validate().map_err(Failure::invalid)?;
        let consumer = Consumer::connect(config)
            .map_err(|e| Failure::new(tp_status::TP_ERROR_CONNECT, e.to_string()))?;
        let frame = handle::new_shell(
            Kind::Frame,
            FrameSlot {
                live: false,
                info: tp_frame_info::default(),
            },
        );
        let shell = handle::new_shell(Kind::Consumer, ConsumerInner { consumer, frame });
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", shell.cast()) }
    })
}

/// Closes the consumer: detaches (best effort) and frees it. NULL does nothing. Not
/// allowed from inside its own frame callback.
#[no_mangle]
pub extern "C" fn tp_consumer_close(consumer: *mut tp_consumer) -> tp_status {
    // SAFETY: the ABI contract.
    unsafe { handle::close(consumer.cast::<ConsumerShell>(), Kind::Consumer) }
}

/// One duty cycle: control messages, announces, attach and keepalive requests, hellos,
/// QoS, reconnects. `work_count` (may be NULL) receives the work done; 0 means idle.
#[no_mangle]
pub extern "C" fn tp_consumer_do_work(
    consumer: *mut tp_consumer,
    work_count: *mut i32,
) -> tp_status {
    with(consumer, |inner| {
        let work = inner
            .consumer
            .do_work(monotonic_now_ns())
            .map_err(|e| Failure::new(tp_status::TP_ERROR_AERON, e.to_string()))?;
        if !work_count.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { work_count.write(i32::try_from(work).unwrap_or(i32::MAX)) };
        }
        Ok(())
    })
}

/// Runs `handler` on `frame` exposed through the frame handle `slot`, and returns the
/// frame's sequence.
///
/// # Safety
/// `slot` is the consumer's live frame shell, used by this thread only.
unsafe fn deliver(
    slot: *mut FrameShell,
    frame: &Frame<'_>,
    handler: unsafe extern "C" fn(*const tp_frame, *mut c_void),
    user: *mut c_void,
) -> u64 {
    let payload = frame.payload();
    let info = tp_frame_info {
        payload: payload.as_ptr(),
        payload_len: payload.len(),
        seq: frame.seq(),
        epoch: frame.epoch(),
        timestamp_ns: frame.timestamp_ns(),
        stream_id: frame.stream_id(),
        header_index: frame.header_index(),
        meta_version: frame.meta_version(),
        meta_status: crate::metadata::meta_status_of(frame.meta_status()),
        pool_id: frame.pool_id(),
        tensor: tp_tensor::from_header(frame.tensor()),
        trace_id: frame.trace_id().unwrap_or(0),
        descriptor_timestamp_ns: frame.descriptor_timestamp_ns().unwrap_or(0),
    };
    // SAFETY: no reference to the slot is held across the callback, which reads it
    // through `tp_frame_get` (its own checks and busy flag).
    unsafe {
        handle::set_value(slot, |s: &mut FrameSlot| {
            s.live = true;
            s.info = info;
        });
        handler(slot.cast::<tp_frame>(), user);
        handle::set_value(slot, |s: &mut FrameSlot| {
            s.live = false;
            s.info = tp_frame_info::default();
        });
    }
    info.seq
}

fn result_of(poll: FramePoll<u64>) -> tp_poll_result {
    use tp_poll_outcome as O;
    let (outcome, drop_reason, seq) = match poll {
        FramePoll::Empty => (O::TP_POLL_EMPTY, tp_drop_reason::TP_DROP_NONE, 0),
        FramePoll::Ignored => (O::TP_POLL_IGNORED, tp_drop_reason::TP_DROP_NONE, 0),
        FramePoll::Delivered(seq) => (O::TP_POLL_DELIVERED, tp_drop_reason::TP_DROP_NONE, seq),
        FramePoll::Dropped(reason) => (O::TP_POLL_DROPPED, drop_reason_of(reason), 0),
        FramePoll::RateLimited => (O::TP_POLL_RATE_LIMITED, tp_drop_reason::TP_DROP_NONE, 0),
    };
    tp_poll_result {
        outcome: outcome as i32,
        drop_reason: drop_reason as i32,
        seq,
    }
}

fn drop_reason_of(reason: DropReason) -> tp_drop_reason {
    use tp_drop_reason as R;
    match reason {
        DropReason::Unmapped => R::TP_DROP_UNMAPPED,
        DropReason::AwaitingEpoch => R::TP_DROP_AWAITING_EPOCH,
        DropReason::Epoch => R::TP_DROP_EPOCH,
        DropReason::Duplicate => R::TP_DROP_DUPLICATE,
        DropReason::Resync => R::TP_DROP_RESYNC,
        DropReason::NotCommitted => R::TP_DROP_NOT_COMMITTED,
        DropReason::Stale => R::TP_DROP_STALE,
        DropReason::Late => R::TP_DROP_LATE,
        DropReason::HeaderFormat => R::TP_DROP_HEADER_FORMAT,
        DropReason::PayloadSlot => R::TP_DROP_PAYLOAD_SLOT,
        DropReason::Pool => R::TP_DROP_POOL,
        DropReason::Length => R::TP_DROP_LENGTH,
        DropReason::PayloadOffset => R::TP_DROP_PAYLOAD_OFFSET,
        DropReason::Tensor => R::TP_DROP_TENSOR,
        DropReason::Fallback => R::TP_DROP_FALLBACK,
        DropReason::SeqRegression => R::TP_DROP_SEQ_REGRESSION,
    }
}

/// Reads at most one descriptor. A frame that passes every check is handed to
/// `handler`; after it returns the seqlock is checked again, and `*result` says whether
/// the frame was delivered intact (TP_POLL_DELIVERED), dropped (TP_POLL_DROPPED, with the
/// reason), or whether nothing (TP_POLL_EMPTY) or another message (TP_POLL_IGNORED) was
/// read. Allocates nothing.
#[no_mangle]
pub extern "C" fn tp_consumer_poll(
    consumer: *mut tp_consumer,
    handler: tp_frame_handler,
    user: *mut c_void,
    result: *mut tp_poll_result,
) -> tp_status {
    with(consumer, |inner| {
        let handler = handler.ok_or_else(|| Failure::null("handler"))?;
        if result.is_null() {
            return Err(Failure::null("result"));
        }
        let slot = inner.frame;
        let poll = inner
            .consumer
            // SAFETY: `slot` is this consumer's frame shell, driven by this thread.
            .poll_frame(|frame| unsafe { deliver(slot, frame, handler, user) })
            .map_err(|e| Failure::new(tp_status::TP_ERROR_AERON, e.to_string()))?;
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(result, "result", result_of(poll)) }
    })
}

/// The filled part of a frame being written (Wire Spec §10.2.2), valid only inside the
/// `tp_progress_handler` it is passed to; what was read counts only if the poll then
/// reports TP_PROGRESS_DELIVERED.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tp_frame_prefix {
    /// The bytes safe to read, in place: `[0, filled)` of a contiguous tensor, or the
    /// whole rows (columns) filled; NULL with `prefix_len` 0 when the layout makes the
    /// report informational only.
    pub prefix: *const u8,
    /// Bytes at `prefix`.
    pub prefix_len: usize,
    /// The frame's sequence.
    pub seq: u64,
    /// `payload_bytes_filled` as reported.
    pub filled_bytes: u64,
    /// Whole rows (columns) filled; UINT64_MAX when the tensor declares no progress unit.
    pub units_filled: u64,
    /// 1 STARTED, 2 PROGRESS, 3 COMPLETE (COMPLETE is no promise: the frame is
    /// available only when `tp_consumer_poll` delivers it).
    pub state: u8,
    /// The frame's `values_len_bytes`.
    pub values_len: u32,
    /// The frame's tensor description.
    pub tensor: tp_tensor,
}

/// Called with the filled part of a frame being written; it must not unwind and must not
/// call functions of this consumer.
#[allow(non_camel_case_types)]
pub type tp_progress_handler =
    Option<unsafe extern "C" fn(prefix: *const tp_frame_prefix, user: *mut c_void)>;

/// What `tp_consumer_poll_progress` did.
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_progress_outcome {
    /// No news on any frame being written.
    TP_PROGRESS_EMPTY = 0,
    /// A prefix was handed out and the slot still held the frame afterwards.
    TP_PROGRESS_DELIVERED = 1,
    /// The slot moved on while the handler read: discard what it read.
    TP_PROGRESS_OVERWRITTEN = 2,
}

/// Hands `handler` the filled prefix of the oldest frame being written that has news,
/// when the config opted in (`tp_config_set_progress`); `*outcome` (a
/// `tp_progress_outcome`) says whether what it read counts. Allocates nothing.
#[no_mangle]
pub extern "C" fn tp_consumer_poll_progress(
    consumer: *mut tp_consumer,
    handler: tp_progress_handler,
    user: *mut c_void,
    outcome: *mut i32,
) -> tp_status {
    with(consumer, |inner| {
        let handler = handler.ok_or_else(|| Failure::null("handler"))?;
        if outcome.is_null() {
            return Err(Failure::null("outcome"));
        }
        let poll = inner.consumer.poll_progress(|p| {
            let view = tp_frame_prefix {
                prefix: if p.prefix().is_empty() {
                    std::ptr::null()
                } else {
                    p.prefix().as_ptr()
                },
                prefix_len: p.prefix().len(),
                seq: p.seq(),
                filled_bytes: p.filled_bytes(),
                units_filled: p.units_filled().unwrap_or(u64::MAX),
                state: match p.state() {
                    FrameProgressState::Started => 1,
                    FrameProgressState::Progress => 2,
                    _ => 3,
                },
                values_len: p.values_len(),
                tensor: tp_tensor::from_header(p.tensor()),
            };
            // SAFETY: a C callback given by the caller, with its own `user`.
            unsafe { handler(&view, user) };
        });
        let code = match poll {
            ProgressPoll::Empty => tp_progress_outcome::TP_PROGRESS_EMPTY,
            ProgressPoll::Delivered(()) => tp_progress_outcome::TP_PROGRESS_DELIVERED,
            ProgressPoll::Overwritten => tp_progress_outcome::TP_PROGRESS_OVERWRITTEN,
        };
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(outcome, "outcome", code as i32) }
    })
}

/// Reads up to `limit` messages from the descriptor stream in one pass: `handler` runs
/// on each frame that passes the checks, then `outcome` (may be NULL) learns what became
/// of every message read, in order. `messages` (may be NULL) receives how many were
/// read; 0 means none was waiting. Allocates nothing.
#[no_mangle]
pub extern "C" fn tp_consumer_poll_frames(
    consumer: *mut tp_consumer,
    limit: usize,
    handler: tp_frame_handler,
    outcome: tp_outcome_handler,
    user: *mut c_void,
    messages: *mut usize,
) -> tp_status {
    with(consumer, |inner| {
        let handler = handler.ok_or_else(|| Failure::null("handler"))?;
        let slot = inner.frame;
        let count = inner
            .consumer
            .poll_frames(
                limit,
                // SAFETY: `slot` is this consumer's frame shell, driven by this thread.
                |frame| unsafe { deliver(slot, frame, handler, user) },
                |poll| {
                    if let Some(outcome) = outcome {
                        let result = result_of(poll);
                        // SAFETY: a C callback given by the caller, with its own `user`.
                        unsafe { outcome(&result, user) };
                    }
                },
            )
            .map_err(|e| Failure::new(tp_status::TP_ERROR_AERON, e.to_string()))?;
        if !messages.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { messages.write(count) };
        }
        Ok(())
    })
}

/// Stores the view of `frame` in `*out`. Only inside the frame handler; afterwards it
/// answers TP_ERROR_VIEW_EXPIRED.
#[no_mangle]
pub extern "C" fn tp_frame_get(frame: *const tp_frame, out: *mut tp_frame_info) -> tp_status {
    // SAFETY: `frame` is NULL or a handle of this library (the ABI contract).
    unsafe {
        handle::with(frame.cast::<FrameShell>(), Kind::Frame, |slot| {
            if !slot.live {
                return Err(Failure::fixed(
                    tp_status::TP_ERROR_VIEW_EXPIRED,
                    "the frame view expired: its poll returned",
                ));
            }
            write_out(out, "out", slot.info)
        })
    }
}

/// Takes the oldest pending event into `*out`; `out->kind` is TP_CONSUMER_EVENT_NONE
/// when there was none.
#[no_mangle]
pub extern "C" fn tp_consumer_poll_event(
    consumer: *mut tp_consumer,
    out: *mut tp_consumer_event,
) -> tp_status {
    with(consumer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let event = inner.consumer.poll_event();
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", event_of(event)) }
    })
}

fn event_of(event: Option<ConsumerEvent>) -> tp_consumer_event {
    use tp_consumer_event_kind as K;
    let mut out = tp_consumer_event::default();
    let Some(event) = event else {
        return out;
    };
    out.kind = match event {
        ConsumerEvent::Attached { epoch } => {
            out.epoch = epoch;
            K::TP_CONSUMER_EVENT_ATTACHED
        }
        ConsumerEvent::EpochChanged { epoch } => {
            out.epoch = epoch;
            K::TP_CONSUMER_EVENT_EPOCH_CHANGED
        }
        ConsumerEvent::Revoked(reason) => {
            out.reason = i32::from(reason.raw());
            K::TP_CONSUMER_EVENT_REVOKED
        }
        ConsumerEvent::ProducerRevoked { reason } => {
            out.reason = i32::from(reason.raw());
            K::TP_CONSUMER_EVENT_PRODUCER_REVOKED
        }
        ConsumerEvent::DriverShutdown(reason) => {
            out.reason = i32::from(reason.raw());
            K::TP_CONSUMER_EVENT_DRIVER_SHUTDOWN
        }
        ConsumerEvent::Unmapped { reason } => {
            out.reason = match reason {
                UnmapReason::LeaseRevoked => tp_unmap_reason::TP_UNMAP_LEASE_REVOKED,
                UnmapReason::LeaseLost => tp_unmap_reason::TP_UNMAP_LEASE_LOST,
                UnmapReason::DriverShutdown => tp_unmap_reason::TP_UNMAP_DRIVER_SHUTDOWN,
                UnmapReason::EpochWaitTimedOut => tp_unmap_reason::TP_UNMAP_EPOCH_WAIT_TIMED_OUT,
                UnmapReason::MapFailed => tp_unmap_reason::TP_UNMAP_MAP_FAILED,
                UnmapReason::ActivityStale => tp_unmap_reason::TP_UNMAP_ACTIVITY_STALE,
                UnmapReason::SeqRegression => tp_unmap_reason::TP_UNMAP_SEQ_REGRESSION,
                UnmapReason::Fallback => tp_unmap_reason::TP_UNMAP_FALLBACK,
            } as i32;
            K::TP_CONSUMER_EVENT_UNMAPPED
        }
        ConsumerEvent::MediaDriverLost => K::TP_CONSUMER_EVENT_MEDIA_DRIVER_LOST,
        ConsumerEvent::Fallback { fallback } => {
            out.reason = i32::from(fallback.supported_scheme);
            K::TP_CONSUMER_EVENT_FALLBACK
        }
        ConsumerEvent::ShmResumed => K::TP_CONSUMER_EVENT_SHM_RESUMED,
        ConsumerEvent::AttachRefused { code, .. } => {
            out.reason = code.raw();
            K::TP_CONSUMER_EVENT_ATTACH_REFUSED
        }
        ConsumerEvent::MetadataChanged { meta_version } => {
            out.meta_version = meta_version;
            K::TP_CONSUMER_EVENT_METADATA_CHANGED
        }
    } as i32;
    out
}

impl From<ConsumerCounters> for tp_consumer_counters {
    fn from(c: ConsumerCounters) -> Self {
        Self {
            descriptors_received: c.descriptors_received,
            frames_delivered: c.frames_delivered,
            drops_gap: c.drops_gap,
            drops_unmapped: c.drops_unmapped,
            drops_awaiting_epoch: c.drops_awaiting_epoch,
            drops_epoch: c.drops_epoch,
            drops_duplicate: c.drops_duplicate,
            drops_resync: c.drops_resync,
            drops_not_committed: c.drops_not_committed,
            drops_stale: c.drops_stale,
            drops_late: c.drops_late,
            drops_header_format: c.drops_header_format,
            drops_payload_slot: c.drops_payload_slot,
            drops_pool: c.drops_pool,
            drops_length: c.drops_length,
            drops_payload_offset: c.drops_payload_offset,
            drops_tensor: c.drops_tensor,
            resyncs: c.resyncs,
            descriptors_other_stream: c.descriptors_other_stream,
            malformed_descriptors: c.malformed_descriptors,
            attaches: c.attaches,
            epoch_changes: c.epoch_changes,
            remaps: c.remaps,
            map_failures: c.map_failures,
            announces_accepted: c.announces_accepted,
            announces_ignored_stale: c.announces_ignored_stale,
            announces_ignored_before_join: c.announces_ignored_before_join,
            announces_ignored_lower_epoch: c.announces_ignored_lower_epoch,
            announces_invalid: c.announces_invalid,
            protocol_errors: c.protocol_errors,
            hellos_sent: c.hellos_sent,
            consumer_configs: c.consumer_configs,
            qos_sent: c.qos_sent,
            qos_send_failures: c.qos_send_failures,
            events_dropped: c.events_dropped,
            reconnects: c.reconnects,
            drops_fallback: c.drops_fallback,
            drops_seq_regression: c.drops_seq_regression,
            tensors_beyond_ndims: c.tensors_beyond_ndims,
            activity_stale: c.activity_stale,
            fallbacks: c.fallbacks,
            metadata_updates: c.metadata_updates,
            metadata_dropped_malformed: c.metadata_dropped_malformed,
            metadata_dropped_oversize: c.metadata_dropped_oversize,
            frames_rate_limited: c.frames_rate_limited,
            progress_received: c.progress.received,
            progress_prefixes_delivered: c.progress.prefixes_delivered,
            progress_violations: c.progress.violations(),
            progress_stale: c.progress.stale,
        }
    }
}

/// Stores the counters so far in `*out`.
#[no_mangle]
pub extern "C" fn tp_consumer_get_counters(
    consumer: *mut tp_consumer,
    out: *mut tp_consumer_counters,
) -> tp_status {
    with(consumer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let counters = tp_consumer_counters::from(inner.consumer.counters());
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", counters) }
    })
}

/// Stores the consumer's state in `*out`.
#[no_mangle]
pub extern "C" fn tp_consumer_get_info(
    consumer: *mut tp_consumer,
    out: *mut tp_consumer_info,
) -> tp_status {
    with(consumer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let c = &inner.consumer;
        let info = tp_consumer_info {
            ready: c.is_ready(),
            connected: c.is_connected(),
            stream_id: c.stream_id(),
            consumer_id: c.consumer_id(),
            mapped_epoch: c.mapped_epoch().unwrap_or(0),
            last_seq_seen: c.last_seq_seen().unwrap_or(0),
        };
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", info) }
    })
}

/// Stores the consumer's Wire Spec §15.12 state (a `tp_consumer_state` value) in `*out`.
#[no_mangle]
pub extern "C" fn tp_consumer_get_state(consumer: *mut tp_consumer, out: *mut i32) -> tp_status {
    with(consumer, |inner| {
        let state = match inner.consumer.state() {
            ConsumerState::Unmapped => tp_consumer_state::TP_CONSUMER_STATE_UNMAPPED,
            ConsumerState::Mapped => tp_consumer_state::TP_CONSUMER_STATE_MAPPED,
            ConsumerState::Fallback => tp_consumer_state::TP_CONSUMER_STATE_FALLBACK,
        };
        // SAFETY: checked non-NULL by `write_out`; writable by the contract.
        unsafe { write_out(out, "out", state as i32) }
    })
}

/// While the consumer is in FALLBACK, copies the `payload_fallback_uri` it was given
/// (NUL-terminated, cut to `capacity - 1` bytes) into `buf` and its full length into
/// `*len_out`; outside FALLBACK answers TP_ERROR_WRONG_STATE. `buf` may be NULL when
/// `capacity` is 0 (to ask for the length).
#[no_mangle]
pub extern "C" fn tp_consumer_get_fallback_uri(
    consumer: *mut tp_consumer,
    buf: *mut c_char,
    capacity: usize,
    len_out: *mut usize,
) -> tp_status {
    with(consumer, |inner| {
        if buf.is_null() && capacity > 0 {
            return Err(Failure::null("buf"));
        }
        let Some(fallback) = inner.consumer.fallback() else {
            return Err(Failure::fixed(
                tp_status::TP_ERROR_WRONG_STATE,
                "the consumer is not in FALLBACK",
            ));
        };
        let bytes = fallback.uri.as_bytes();
        if capacity > 0 {
            let n = bytes.len().min(capacity - 1);
            // SAFETY: `buf` is non-NULL and writable for `capacity` bytes by the contract;
            // n + 1 <= capacity.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, n);
                buf.add(n).write(0);
            }
        }
        // SAFETY: checked non-NULL by `write_out`; writable by the contract.
        unsafe { write_out(len_out, "len_out", bytes.len()) }
    })
}
