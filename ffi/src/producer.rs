//! `tp_producer`: the Rust `Producer` behind a handle (Driver Model §4.12.2; Wire Spec
//! §15.18 for the claim/commit steps). Every call forwards to the Rust API; nothing is
//! reimplemented here.

use crate::config::{settings, tp_config};
use crate::handle::{self, Kind, Shell};
use crate::status::{guard, tp_status, write_out, Failure};
use crate::tensor::tp_tensor;
use std::ffi::c_char;
use std::ptr::NonNull;
use tensorpool::client::producer::{
    monotonic_now_ns, DescriptorStamp, FrameClaim, FrameFill, Producer, ProducerCounters,
    ProducerError, ProducerEvent, ProgressError, PublishError,
};

/// A stream's producer (opaque). Create with `tp_producer_create`, drive with
/// `tp_producer_do_work` from the thread that created it, free with `tp_producer_close`.
#[allow(non_camel_case_types)]
pub struct tp_producer {
    _private: [u8; 0],
}

/// A claimed payload slot: fill `data[0..len)`, then `tp_producer_commit` or
/// `tp_producer_abort`. `data` points into shared memory and is valid until then.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tp_claim {
    /// The payload bytes to write (they hold whatever an earlier frame left).
    pub data: *mut u8,
    /// How many bytes were claimed: the frame's payload length.
    pub len: usize,
    /// The frame's sequence number.
    pub seq: u64,
}

/// Kinds of producer events (`tp_producer_event.kind`).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_producer_event_kind {
    /// No event was pending.
    TP_PRODUCER_EVENT_NONE = 0,
    /// First lease granted and mapped (`stream_id`, `epoch`): publishing may start.
    TP_PRODUCER_EVENT_ATTACHED = 1,
    /// A later lease granted and mapped (`epoch`); sequences restart at 0.
    TP_PRODUCER_EVENT_REATTACHED = 2,
    /// The driver revoked the lease (`reason`: 1 detached, 2 expired, 3 revoked).
    TP_PRODUCER_EVENT_REVOKED = 3,
    /// The lease was given up locally (keepalive not sent, expiry passed, media driver
    /// gone).
    TP_PRODUCER_EVENT_LEASE_LOST = 4,
    /// The driver is shutting down (`reason`: 0 normal, 1 admin, 2 error).
    TP_PRODUCER_EVENT_DRIVER_SHUTDOWN = 5,
    /// The driver refused the attach (`reason`: response code, `message`); retried.
    TP_PRODUCER_EVENT_ATTACH_REFUSED = 6,
    /// The granted regions failed the mapping checks (`epoch`); retried.
    TP_PRODUCER_EVENT_MAP_FAILED = 7,
    /// The Aeron client lost its media driver; `tp_producer_do_work` reconnects.
    TP_PRODUCER_EVENT_MEDIA_DRIVER_LOST = 8,
}

/// Length of the message buffer of events, terminating NUL included.
pub const TP_EVENT_MESSAGE_LEN: usize = 256;

/// One producer event; fields a kind does not use are 0 (message: "").
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct tp_producer_event {
    /// A `tp_producer_event_kind` value.
    pub kind: i32,
    /// A reason or response code (see the kind).
    pub reason: i32,
    /// Stream id (ATTACHED).
    pub stream_id: u32,
    /// Epoch (ATTACHED, REATTACHED, MAP_FAILED).
    pub epoch: u64,
    /// The driver's diagnostic (ATTACH_REFUSED), NUL-terminated, truncated to fit.
    pub message: [c_char; TP_EVENT_MESSAGE_LEN],
}

/// The producer's counters; each only grows.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_producer_counters {
    /// Frames committed and announced.
    pub frames_published: u64,
    /// Frames refused because no pool fits them.
    pub frames_too_large: u64,
    /// Frames refused because their tensor description is invalid.
    pub invalid_tensors: u64,
    /// Claims given up without a commit (consumers see a gap).
    pub claims_abandoned: u64,
    /// Descriptor offers given up (back pressure or closed publication).
    pub descriptors_dropped: u64,
    /// Descriptor offers skipped because nobody subscribed.
    pub descriptors_unconnected: u64,
    /// Leases granted after the first one.
    pub reattaches: u64,
    /// Grants whose regions failed the mapping checks.
    pub map_failures: u64,
    /// Attach responses refused as protocol errors.
    pub protocol_errors: u64,
    /// `QosProducer` messages published.
    pub qos_sent: u64,
    /// Per-consumer descriptor publications opened.
    pub consumer_streams_opened: u64,
    /// Per-consumer descriptor publications closed.
    pub consumer_streams_closed: u64,
    /// Unusable `ConsumerConfig` messages for this stream.
    pub consumer_configs_rejected: u64,
    /// Times the Aeron client was rebuilt after losing its media driver.
    pub reconnects: u64,
    /// Events dropped because the queue was not drained.
    pub events_dropped: u64,
    /// Metadata announces (DataSourceAnnounce + DataSourceMeta) sent.
    pub metadata_sent: u64,
    /// Metadata announces that hit back pressure or an Aeron error (retried).
    pub metadata_send_failures: u64,
    /// `FrameProgress` messages published.
    pub progress_sent: u64,
    /// Progress reports held back by the throttle.
    pub progress_throttled: u64,
    /// `FrameProgress` messages that could not be offered.
    pub progress_not_sent: u64,
    /// Descriptors held back from RATE_LIMITED consumers' own descriptor streams.
    pub descriptors_rate_limited: u64,
}

/// The producer's state.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_producer_info {
    /// Whether an epoch is mapped and frames can be published.
    pub attached: bool,
    /// Whether the Aeron client is connected to a media driver.
    pub connected: bool,
    /// The stream produced (the granted id once attached).
    pub stream_id: u32,
    /// The client id in use.
    pub client_id: u32,
    /// The mapped epoch (0 when not attached).
    pub epoch: u64,
    /// The sequence of the next frame (0 when not attached).
    pub next_seq: u64,
    /// The largest payload the pools hold (0 when not attached).
    pub max_payload_len: usize,
}

/// What a producer handle holds: the producer, and the claim borrowing it while open.
pub(crate) struct ProducerInner {
    // Declared first so it drops before the producer it borrows.
    claim: Option<FrameClaim<'static>>,
    /// A frame filled with progress (`tp_producer_claim_with_progress`), also borrowing.
    fill: Option<FrameFill<'static>>,
    producer: NonNull<Producer>,
    /// What `tp_producer_set_frame_stamp` set for the next frame; taken by the next
    /// publish or commit.
    stamp: DescriptorStamp,
}

impl ProducerInner {
    pub(crate) fn producer(&mut self) -> Result<&mut Producer, Failure> {
        if self.claim.is_some() || self.fill.is_some() {
            return Err(Failure::fixed(
                tp_status::TP_ERROR_WRONG_STATE,
                "a claim is open: commit or abort it first",
            ));
        }
        // SAFETY: the producer lives until `drop`, and with no claim open nothing else
        // borrows it.
        Ok(unsafe { self.producer.as_mut() })
    }
}

impl Drop for ProducerInner {
    fn drop(&mut self) {
        self.claim = None;
        self.fill = None;
        // SAFETY: made by `Box::into_raw` in `tp_producer_create`, dropped only here.
        drop(unsafe { Box::from_raw(self.producer.as_ptr()) });
    }
}

type ProducerShell = Shell<ProducerInner>;

pub(crate) fn with(
    producer: *mut tp_producer,
    body: impl FnOnce(&mut ProducerInner) -> Result<(), Failure>,
) -> tp_status {
    // SAFETY: `producer` is NULL or a handle of this library (the ABI contract).
    unsafe { handle::with(producer.cast::<ProducerShell>(), Kind::Producer, body) }
}

/// Runs `body` on the producer behind `producer` (no claim may be open).
pub(crate) fn with_producer(
    producer: *mut tp_producer,
    body: impl FnOnce(&mut Producer) -> Result<(), Failure>,
) -> tp_status {
    with(producer, |inner| body(inner.producer()?))
}

fn publish_failure(error: PublishError) -> Failure {
    let status = match error {
        PublishError::NotAttached => tp_status::TP_ERROR_NOT_ATTACHED,
        PublishError::FrameTooLarge { .. } => tp_status::TP_ERROR_FRAME_TOO_LARGE,
        PublishError::InvalidTensor(_) => tp_status::TP_ERROR_INVALID_TENSOR,
    };
    Failure::new(status, error.to_string())
}

/// Connects to the media driver (waiting up to the config's connect timeout) and
/// prepares a producer of `stream_id`; the attach starts on the first
/// `tp_producer_do_work`. The handle belongs to the calling thread.
#[no_mangle]
pub extern "C" fn tp_producer_create(
    config: *const tp_config,
    stream_id: u32,
    out: *mut *mut tp_producer,
) -> tp_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let config = settings(config)?.producer(stream_id);
        let producer = Producer::new(config).map_err(|e| match e {
            ProducerError::AllowedBaseDirs(_) => Failure::invalid(e.to_string()),
            ProducerError::Link(_) | ProducerError::Transport(_) => {
                Failure::new(tp_status::TP_ERROR_CONNECT, e.to_string())
            }
        })?;
        let inner = ProducerInner {
            claim: None,
            fill: None,
            producer: NonNull::from(Box::leak(Box::new(producer))),
            stamp: DescriptorStamp::NONE,
        };
        let shell = handle::new_shell(Kind::Producer, inner);
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", shell.cast()) }
    })
}

/// Closes the producer: aborts an open claim, detaches (best effort) and frees it. NULL
/// does nothing. Afterwards the handle answers TP_ERROR_CLOSED_HANDLE.
#[no_mangle]
pub extern "C" fn tp_producer_close(producer: *mut tp_producer) -> tp_status {
    // SAFETY: the ABI contract.
    unsafe { handle::close(producer.cast::<ProducerShell>(), Kind::Producer) }
}

/// One duty cycle: control messages, attach and keepalive requests, QoS, reconnects.
/// Call it regularly (well within the keepalive interval). `work_count` (may be NULL)
/// receives the work done; 0 means idle.
#[no_mangle]
pub extern "C" fn tp_producer_do_work(
    producer: *mut tp_producer,
    work_count: *mut i32,
) -> tp_status {
    with(producer, |inner| {
        let work = inner
            .producer()?
            .do_work(monotonic_now_ns())
            .map_err(|e| Failure::new(tp_status::TP_ERROR_AERON, e.to_string()))?;
        if !work_count.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { work_count.write(i32::try_from(work).unwrap_or(i32::MAX)) };
        }
        Ok(())
    })
}

/// Takes the next sequence and a payload slot of `len` bytes to fill in place
/// (zero-copy). Until `tp_producer_commit` or `tp_producer_abort`, other calls on this
/// producer answer TP_ERROR_WRONG_STATE. A frame too large for every pool uses no
/// sequence.
#[no_mangle]
pub extern "C" fn tp_producer_claim(
    producer: *mut tp_producer,
    len: usize,
    out: *mut tp_claim,
) -> tp_status {
    with(producer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: the claim borrows the boxed producer, which outlives it (`claim` is
        // dropped first), and no other reference to the producer is made while it is
        // open (`ProducerInner::producer` refuses, and so does this call).
        inner.producer()?;
        let producer: &'static mut Producer = unsafe { &mut *inner.producer.as_ptr() };
        let mut claim = producer.claim(len).map_err(publish_failure)?;
        let view = tp_claim {
            data: claim.payload_mut().as_mut_ptr(),
            len: claim.len(),
            seq: claim.seq(),
        };
        inner.claim = Some(claim);
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", view) }
    })
}

/// Publishes the open claim described by `*tensor` with capture time `timestamp_ns`
/// (e.g. `tp_monotonic_now_ns()`); `seq_out` (may be NULL) receives its sequence. An
/// invalid tensor abandons the claim (consumers see a gap) and answers
/// TP_ERROR_INVALID_TENSOR. Either way the claim is over.
#[no_mangle]
pub extern "C" fn tp_producer_commit(
    producer: *mut tp_producer,
    tensor: *const tp_tensor,
    timestamp_ns: u64,
    seq_out: *mut u64,
) -> tp_status {
    with(producer, |inner| {
        if tensor.is_null() {
            return Err(Failure::null("tensor"));
        }
        let Some(claim) = inner.claim.take() else {
            return Err(Failure::fixed(
                tp_status::TP_ERROR_WRONG_STATE,
                "no claim is open: tp_producer_claim first",
            ));
        };
        // SAFETY: non-NULL and readable by the contract.
        let header = unsafe { *tensor }.to_header();
        let stamp = std::mem::take(&mut inner.stamp);
        let seq = claim
            .commit_stamped(&header, timestamp_ns, stamp)
            .map_err(publish_failure)?;
        if !seq_out.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { seq_out.write(seq) };
        }
        Ok(())
    })
}

/// Gives up the open claim (either kind): its slot stays in progress and consumers see
/// a gap.
#[no_mangle]
pub extern "C" fn tp_producer_abort(producer: *mut tp_producer) -> tp_status {
    with(producer, |inner| {
        match (inner.claim.take(), inner.fill.take()) {
            (None, None) => Err(Failure::fixed(
                tp_status::TP_ERROR_WRONG_STATE,
                "no claim is open: nothing to abort",
            )),
            _ => Ok(()),
        }
    })
}

/// Like `tp_producer_claim`, for a frame filled over time (e.g. rows from a camera DMA)
/// with frame progress (Wire Spec §10.2.2): `*tensor` is checked and the whole header
/// written first, STARTED goes out at `now_ns` (CLOCK_MONOTONIC, e.g.
/// `tp_monotonic_now_ns()`), `tp_producer_report_progress` reports the fill and
/// `tp_producer_commit_filled` publishes the frame. Nothing is sent while no consumer
/// supports progress.
#[no_mangle]
pub extern "C" fn tp_producer_claim_with_progress(
    producer: *mut tp_producer,
    len: usize,
    tensor: *const tp_tensor,
    now_ns: u64,
    out: *mut tp_claim,
) -> tp_status {
    with(producer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        if tensor.is_null() {
            return Err(Failure::null("tensor"));
        }
        // SAFETY: non-NULL and readable by the contract.
        let header = unsafe { *tensor }.to_header();
        // SAFETY: as in `tp_producer_claim`: the fill borrows the boxed producer, which
        // outlives it, and nothing else borrows the producer while it is open.
        inner.producer()?;
        let producer: &'static mut Producer = unsafe { &mut *inner.producer.as_ptr() };
        let mut fill = producer
            .claim_with_progress(len, &header, now_ns)
            .map_err(publish_failure)?;
        let view = tp_claim {
            data: fill.payload_mut().as_mut_ptr(),
            len: fill.len(),
            seq: fill.seq(),
        };
        inner.fill = Some(fill);
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", view) }
    })
}

/// The first `filled` bytes of the frame opened by `tp_producer_claim_with_progress` are
/// written as of `now_ns`: a PROGRESS goes out if the throttle lets one through
/// (`*sent`, may be NULL, says whether). Reports must not go back nor beyond the frame
/// (TP_ERROR_INVALID_ARGUMENT, nothing changes).
#[no_mangle]
pub extern "C" fn tp_producer_report_progress(
    producer: *mut tp_producer,
    filled: u64,
    now_ns: u64,
    sent: *mut i32,
) -> tp_status {
    with(producer, |inner| {
        let Some(fill) = inner.fill.as_mut() else {
            return Err(Failure::fixed(
                tp_status::TP_ERROR_WRONG_STATE,
                "no frame with progress is open: tp_producer_claim_with_progress first",
            ));
        };
        let went = fill
            .progress(filled, now_ns)
            .map_err(|e: ProgressError| Failure::invalid(e.to_string()))?;
        if !sent.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { sent.write(i32::from(went)) };
        }
        Ok(())
    })
}

/// Commits the frame opened by `tp_producer_claim_with_progress` (capture time
/// `timestamp_ns`), announces it and sends COMPLETE; `seq_out` (may be NULL) receives its
/// sequence.
#[no_mangle]
pub extern "C" fn tp_producer_commit_filled(
    producer: *mut tp_producer,
    timestamp_ns: u64,
    seq_out: *mut u64,
) -> tp_status {
    with(producer, |inner| {
        let Some(fill) = inner.fill.take() else {
            return Err(Failure::fixed(
                tp_status::TP_ERROR_WRONG_STATE,
                "no frame with progress is open: tp_producer_claim_with_progress first",
            ));
        };
        let seq = fill.commit(timestamp_ns);
        if !seq_out.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { seq_out.write(seq) };
        }
        Ok(())
    })
}

/// Copies `len` bytes from `data` into a payload slot and publishes them described by
/// `*tensor`, with capture time `timestamp_ns`; `seq_out` (may be NULL) receives the
/// sequence. `data` may be NULL only when `len` is 0.
#[no_mangle]
pub extern "C" fn tp_producer_publish(
    producer: *mut tp_producer,
    data: *const u8,
    len: usize,
    tensor: *const tp_tensor,
    timestamp_ns: u64,
    seq_out: *mut u64,
) -> tp_status {
    with(producer, |inner| {
        if tensor.is_null() {
            return Err(Failure::null("tensor"));
        }
        let payload: &[u8] = match (data.is_null(), len) {
            (true, 0) => &[],
            (true, _) => return Err(Failure::null("data")),
            // SAFETY: non-NULL and readable for `len` bytes by the contract.
            (false, _) => unsafe { std::slice::from_raw_parts(data, len) },
        };
        // SAFETY: non-NULL and readable by the contract.
        let header = unsafe { *tensor }.to_header();
        let stamp = std::mem::take(&mut inner.stamp);
        let seq = inner
            .producer()?
            .publish_stamped(payload, &header, timestamp_ns, stamp)
            .map_err(publish_failure)?;
        if !seq_out.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { seq_out.write(seq) };
        }
        Ok(())
    })
}

/// Sets the trace id and publish timestamp the next frame's descriptor carries (Wire
/// Spec §10.2.1; 0 = absent): the next `tp_producer_publish` or `tp_producer_commit`
/// takes them, whether or not it succeeds, and later frames carry none until this is
/// called again. It may be called while a claim is open (stamping the frame being
/// filled). Setting them costs nothing per frame. The capture
/// timestamp (`SlotHeader.timestamp_ns`) stays the `timestamp_ns` argument of those calls.
#[no_mangle]
pub extern "C" fn tp_producer_set_frame_stamp(
    producer: *mut tp_producer,
    trace_id: u64,
    descriptor_timestamp_ns: u64,
) -> tp_status {
    with(producer, |inner| {
        inner.stamp = DescriptorStamp {
            trace_id,
            timestamp_ns: descriptor_timestamp_ns,
        };
        Ok(())
    })
}

/// Takes the oldest pending event into `*out`; `out->kind` is
/// TP_PRODUCER_EVENT_NONE when there was none. Call until NONE after each duty cycle.
#[no_mangle]
pub extern "C" fn tp_producer_poll_event(
    producer: *mut tp_producer,
    out: *mut tp_producer_event,
) -> tp_status {
    with(producer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let Some(event) = inner.producer()?.poll_event() else {
            // The common case, once per duty cycle: store the fields of an empty event
            // (an empty message) instead of building and copying the whole struct.
            // SAFETY: checked non-NULL; writable by the contract.
            unsafe {
                (&raw mut (*out).kind).write(tp_producer_event_kind::TP_PRODUCER_EVENT_NONE as i32);
                (&raw mut (*out).reason).write(0);
                (&raw mut (*out).stream_id).write(0);
                (&raw mut (*out).epoch).write(0);
                (&raw mut (*out).message).cast::<c_char>().write(0);
            }
            return Ok(());
        };
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", event_of(Some(event))) }
    })
}

fn event_of(event: Option<ProducerEvent>) -> tp_producer_event {
    use tp_producer_event_kind as K;
    let mut out = tp_producer_event {
        kind: K::TP_PRODUCER_EVENT_NONE as i32,
        reason: 0,
        stream_id: 0,
        epoch: 0,
        message: [0; TP_EVENT_MESSAGE_LEN],
    };
    let Some(event) = event else {
        return out;
    };
    out.kind = match event {
        ProducerEvent::Attached { stream_id, epoch } => {
            out.stream_id = stream_id;
            out.epoch = epoch;
            K::TP_PRODUCER_EVENT_ATTACHED
        }
        ProducerEvent::Reattached { epoch } => {
            out.epoch = epoch;
            K::TP_PRODUCER_EVENT_REATTACHED
        }
        ProducerEvent::Revoked(reason) => {
            out.reason = i32::from(reason.raw());
            K::TP_PRODUCER_EVENT_REVOKED
        }
        ProducerEvent::LeaseLost => K::TP_PRODUCER_EVENT_LEASE_LOST,
        ProducerEvent::DriverShutdown(reason) => {
            out.reason = i32::from(reason.raw());
            K::TP_PRODUCER_EVENT_DRIVER_SHUTDOWN
        }
        ProducerEvent::AttachRefused { code, message } => {
            out.reason = code.raw();
            copy_message(&mut out.message, &message);
            K::TP_PRODUCER_EVENT_ATTACH_REFUSED
        }
        ProducerEvent::MapFailed { epoch } => {
            out.epoch = epoch;
            K::TP_PRODUCER_EVENT_MAP_FAILED
        }
        ProducerEvent::MediaDriverLost => K::TP_PRODUCER_EVENT_MEDIA_DRIVER_LOST,
    } as i32;
    out
}

/// Copies `text` into a NUL-terminated C buffer, truncated to fit.
pub(crate) fn copy_message(buf: &mut [c_char], text: &str) {
    let room = buf.len().saturating_sub(1);
    for (slot, byte) in buf.iter_mut().zip(text.bytes().take(room)) {
        *slot = byte as c_char;
    }
    if let Some(end) = buf.get_mut(text.len().min(room)) {
        *end = 0;
    }
}

/// Stores the counters so far in `*out`.
#[no_mangle]
pub extern "C" fn tp_producer_get_counters(
    producer: *mut tp_producer,
    out: *mut tp_producer_counters,
) -> tp_status {
    with(producer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let c: ProducerCounters = inner.producer()?.counters();
        let counters = tp_producer_counters {
            frames_published: c.frames_published,
            frames_too_large: c.frames_too_large,
            invalid_tensors: c.invalid_tensors,
            claims_abandoned: c.claims_abandoned,
            descriptors_dropped: c.descriptors_dropped,
            descriptors_unconnected: c.descriptors_unconnected,
            reattaches: c.reattaches,
            map_failures: c.map_failures,
            protocol_errors: c.protocol_errors,
            qos_sent: c.qos_sent,
            consumer_streams_opened: c.consumer_streams_opened,
            consumer_streams_closed: c.consumer_streams_closed,
            consumer_configs_rejected: c.consumer_configs_rejected,
            reconnects: c.reconnects,
            events_dropped: c.events_dropped,
            metadata_sent: c.metadata_sent,
            metadata_send_failures: c.metadata_send_failures,
            progress_sent: c.progress_sent,
            progress_throttled: c.progress_throttled,
            progress_not_sent: c.progress_not_sent,
            descriptors_rate_limited: c.descriptors_rate_limited,
        };
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", counters) }
    })
}

/// Stores the producer's state in `*out`.
#[no_mangle]
pub extern "C" fn tp_producer_get_info(
    producer: *mut tp_producer,
    out: *mut tp_producer_info,
) -> tp_status {
    with(producer, |inner| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let p = inner.producer()?;
        let info = tp_producer_info {
            attached: p.is_attached(),
            connected: p.is_connected(),
            stream_id: p.stream_id(),
            client_id: p.client_id(),
            epoch: p.epoch().unwrap_or(0),
            next_seq: p.next_seq().unwrap_or(0),
            max_payload_len: p.max_payload_len().unwrap_or(0),
        };
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", info) }
    })
}
