//! QoS from C (Wire Spec §10.4, §10.5): a producer's view of its consumers
//! (`tp_producer_get_consumer_qos`) and `tp_qos_monitor`, an observer that holds no lease
//! and hands every `QosProducer` / `QosConsumer` of every stream to a callback.

use crate::config::{settings, tp_config};
use crate::handle::{self, Kind, Shell};
use crate::producer::{tp_producer, with_producer};
use crate::status::{guard, tp_status, write_out, Failure};
use std::ffi::c_void;
use tensorpool::client::consumer::monotonic_now_ns;
use tensorpool::client::qos::{ConsumerQos, QosMonitor, QosReport};

/// `tp_consumer_qos.lag` when it is not known (no frame published yet, or no report of
/// the consumer in the current epoch).
pub const TP_QOS_LAG_UNKNOWN: u64 = u64::MAX;

/// A consumer's latest `QosConsumer` report, as its producer sees it.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_consumer_qos {
    /// Consumer id.
    pub consumer_id: u32,
    /// Consumer mode (1 STREAM, 2 RATE_LIMITED).
    pub mode: i32,
    /// Epoch the report is about.
    pub epoch: u64,
    /// The last sequence the consumer saw.
    pub last_seq_seen: u64,
    /// `QosConsumer.dropsGap`.
    pub drops_gap: u64,
    /// `QosConsumer.dropsLate`.
    pub drops_late: u64,
    /// Frames the consumer trails the newest frame published (0: caught up), or
    /// TP_QOS_LAG_UNKNOWN.
    pub lag: u64,
}

/// Kinds of QoS report (`tp_qos_report.kind`).
#[allow(non_camel_case_types)]
#[repr(i32)]
#[derive(Debug, Clone, Copy)]
pub enum tp_qos_kind {
    /// A producer's `QosProducer` (`client_id` is the producer id, `seq` its current
    /// sequence).
    TP_QOS_PRODUCER = 1,
    /// A consumer's `QosConsumer` (`client_id` is the consumer id, `seq` the last
    /// sequence it saw).
    TP_QOS_CONSUMER = 2,
}

/// One QoS report heard by a `tp_qos_monitor`; fields a kind does not use are 0.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct tp_qos_report {
    /// A `tp_qos_kind` value.
    pub kind: i32,
    /// Consumer mode (consumers: 1 STREAM, 2 RATE_LIMITED).
    pub mode: i32,
    /// Stream id.
    pub stream_id: u32,
    /// Producer or consumer id.
    pub client_id: u32,
    /// Epoch.
    pub epoch: u64,
    /// Producer: `currentSeq`; consumer: `lastSeqSeen`.
    pub seq: u64,
    /// `dropsGap` (consumers).
    pub drops_gap: u64,
    /// `dropsLate` (consumers).
    pub drops_late: u64,
}

/// Called once per report a `tp_qos_monitor` heard; `report` is valid until it returns.
#[allow(non_camel_case_types)]
pub type tp_qos_handler =
    Option<unsafe extern "C" fn(report: *const tp_qos_report, user: *mut c_void)>;

/// An observer of the QoS stream that holds no lease (opaque). Create with
/// `tp_qos_monitor_create`, poll with `tp_qos_monitor_poll` from the creating thread,
/// free with `tp_qos_monitor_close`.
#[allow(non_camel_case_types)]
pub struct tp_qos_monitor {
    _private: [u8; 0],
}

type MonitorShell = Shell<QosMonitor>;

fn consumer_qos(c: &ConsumerQos, lag: Option<u64>) -> tp_consumer_qos {
    tp_consumer_qos {
        consumer_id: c.report.consumer_id,
        mode: i32::from(c.report.mode.raw()),
        epoch: c.report.epoch,
        last_seq_seen: c.report.last_seq_seen,
        drops_gap: c.report.drops_gap,
        drops_late: c.report.drops_late,
        lag: lag.unwrap_or(TP_QOS_LAG_UNKNOWN),
    }
}

/// Copies the latest QoS report of up to `capacity` consumers of the producer's stream
/// (current epoch, by consumer id) into `out` and the number of consumers known into
/// `*count_out` (which may exceed `capacity`). `out` may be NULL when `capacity` is 0.
#[no_mangle]
pub extern "C" fn tp_producer_get_consumer_qos(
    producer: *mut tp_producer,
    out: *mut tp_consumer_qos,
    capacity: usize,
    count_out: *mut usize,
) -> tp_status {
    with_producer(producer, |p| {
        if out.is_null() && capacity > 0 {
            return Err(Failure::null("out"));
        }
        let mut count = 0;
        for c in p.consumer_qos() {
            if count < capacity {
                let row = consumer_qos(c, p.consumer_lag(c.consumer_id()));
                // SAFETY: non-NULL and writable for `capacity` entries by the contract.
                unsafe { out.add(count).write(row) };
            }
            count += 1;
        }
        // SAFETY: checked non-NULL by `write_out`; writable by the contract.
        unsafe { write_out(count_out, "count_out", count) }
    })
}

/// Connects to the media driver named by `config` and subscribes to its QoS stream; no
/// lease is taken. The handle belongs to the calling thread.
#[no_mangle]
pub extern "C" fn tp_qos_monitor_create(
    config: *const tp_config,
    out: *mut *mut tp_qos_monitor,
) -> tp_status {
    guard(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        let streams = settings(config)?.streams;
        let monitor = QosMonitor::connect(&streams)
            .map_err(|e| Failure::new(tp_status::TP_ERROR_CONNECT, e.to_string()))?;
        let shell = handle::new_shell(Kind::QosMonitor, monitor);
        // SAFETY: checked non-NULL; writable by the contract.
        unsafe { write_out(out, "out", shell.cast()) }
    })
}

/// Reads what arrived on the QoS stream and calls `handler` (may be NULL) once per
/// report; `work_count` (may be NULL) receives the work done.
#[no_mangle]
pub extern "C" fn tp_qos_monitor_poll(
    monitor: *mut tp_qos_monitor,
    handler: tp_qos_handler,
    user: *mut c_void,
    work_count: *mut i32,
) -> tp_status {
    with(monitor, |m| {
        let work = m
            .poll(monotonic_now_ns(), |report| {
                if let Some(handler) = handler {
                    let row = report_of(report);
                    // SAFETY: the caller's callback, given a report valid for the call.
                    unsafe { handler(&row, user) };
                }
            })
            .map_err(|e| Failure::new(tp_status::TP_ERROR_AERON, e.to_string()))?;
        if !work_count.is_null() {
            // SAFETY: non-NULL and writable by the contract.
            unsafe { work_count.write(i32::try_from(work).unwrap_or(i32::MAX)) };
        }
        Ok(())
    })
}

fn with(
    monitor: *mut tp_qos_monitor,
    body: impl FnOnce(&mut QosMonitor) -> Result<(), Failure>,
) -> tp_status {
    // SAFETY: `monitor` is NULL or a handle of this library (the ABI contract).
    unsafe { handle::with(monitor.cast::<MonitorShell>(), Kind::QosMonitor, body) }
}

/// Closes the monitor. NULL does nothing.
#[no_mangle]
pub extern "C" fn tp_qos_monitor_close(monitor: *mut tp_qos_monitor) -> tp_status {
    // SAFETY: the ABI contract.
    unsafe { handle::close(monitor.cast::<MonitorShell>(), Kind::QosMonitor) }
}

fn report_of(report: &QosReport) -> tp_qos_report {
    match report {
        QosReport::Producer(q) => tp_qos_report {
            kind: tp_qos_kind::TP_QOS_PRODUCER as i32,
            stream_id: q.stream_id,
            client_id: q.producer_id,
            epoch: q.epoch,
            seq: q.current_seq,
            ..tp_qos_report::default()
        },
        QosReport::Consumer(q) => tp_qos_report {
            kind: tp_qos_kind::TP_QOS_CONSUMER as i32,
            mode: i32::from(q.mode.raw()),
            stream_id: q.stream_id,
            client_id: q.consumer_id,
            epoch: q.epoch,
            seq: q.last_seq_seen,
            drops_gap: q.drops_gap,
            drops_late: q.drops_late,
        },
    }
}
