//! The echo responder, the reference of the `attach` scenario: it answers attach and
//! detach requests at once with responses shaped like the driver's, on the same kind of
//! duty cycle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use tensorpool::driver::runner::DriverIdle;
use tensorpool::protocol::driver::{
    AnyMessage, ResponseCode, ShmAttachResponse, ShmAttachResponsePayloadPools, ShmDetachResponse,
};
use tensorpool::shm::doorbell::{doorbell_path, DriverDoorbell};
use tensorpool::transport::{
    AeronClient, MediaDriverOptions, OfferOutcome, Publication, Subscription,
};

use crate::aeron_host::SETUP_TIMEOUT;
use crate::driver_host::{CONTROL_CHANNEL, CONTROL_STREAM, FIRST_STREAM_ID};
use crate::error::{BenchError, Context as _};
use crate::sys::pin_current_thread;

/// Answers attach and detach requests at once (OK, a response shaped like the driver's),
/// on a duty cycle like the driver's: one thread pumping an embedded media driver, its
/// Aeron client and the responder, idling with the driver's own [`DriverIdle`] (every
/// message it answers is a request).
pub struct EchoResponder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
    aeron_dir: PathBuf,
}

impl EchoResponder {
    /// Starts the responder with its own embedded media driver in `aeron_dir`, its thread
    /// pinned to `core` if given.
    pub fn start(aeron_dir: &Path, core: Option<usize>) -> Result<Self, BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            let dir = aeron_dir.to_owned();
            std::thread::Builder::new()
                .name("echo-responder".into())
                .spawn(move || {
                    if let Some(core) = core {
                        pin_current_thread(core);
                    }
                    let result = echo_loop(&dir, &stop, &ready_tx);
                    if let Err(e) = &result {
                        let _ = ready_tx.send(Err(e.clone()));
                    }
                    result
                })
                .setup("spawning the echo responder")?
        };
        let responder = Self {
            stop,
            thread: Some(thread),
            aeron_dir: aeron_dir.to_owned(),
        };
        match ready_rx.recv_timeout(SETUP_TIMEOUT) {
            Ok(Ok(())) => Ok(responder),
            Ok(Err(e)) => Err(BenchError::Setup(format!(
                "starting the echo responder: {e}"
            ))),
            Err(_) => Err(BenchError::Setup(
                "the echo responder did not start in time".into(),
            )),
        }
    }

    /// The Aeron directory clients connect to.
    pub fn aeron_dir(&self) -> &Path {
        &self.aeron_dir
    }
}

impl Drop for EchoResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("tp-bench: the echo responder failed: {e}"),
                Err(_) => eprintln!("tp-bench: the echo responder panicked"),
            }
        }
    }
}

/// A request the echo answers.
#[derive(Debug, Clone, Copy)]
enum Request {
    Attach { correlation_id: i64, stream_id: u32 },
    Detach { correlation_id: i64 },
}

fn echo_loop(
    dir: &Path,
    stop: &AtomicBool,
    ready: &mpsc::Sender<Result<(), String>>,
) -> Result<(), String> {
    let client = AeronClient::start_embedded(&MediaDriverOptions {
        dir: Some(dir.to_owned()),
        ..MediaDriverOptions::default()
    })
    .map_err(|e| e.to_string())?;
    let publication =
        Publication::add(&client, CONTROL_CHANNEL, CONTROL_STREAM).map_err(|e| e.to_string())?;
    let mut subscription =
        Subscription::add(&client, CONTROL_CHANNEL, CONTROL_STREAM).map_err(|e| e.to_string())?;
    let _ = ready.send(Ok(()));
    let header_uri = format!(
        "shm:file?path={}/shm/bench/{}/1/header.ring",
        dir.display(),
        FIRST_STREAM_ID
    );
    let pool_uri = format!(
        "shm:file?path={}/shm/bench/{}/1/pool-1.pool",
        dir.display(),
        FIRST_STREAM_ID
    );
    let mut requests = Vec::with_capacity(64);
    let mut buf = vec![0u8; 1024];
    let mut next_lease = 1u64;
    // The same doorbell as the driver's, so the idle reference is the driver's floor.
    let bell = DriverDoorbell::create(&doorbell_path(dir, CONTROL_STREAM as u32))
        .map_err(|e| e.to_string())?;
    let mut idle = DriverIdle::new().with_doorbell(bell);
    let poll = |subscription: &mut Subscription, requests: &mut Vec<Request>| {
        subscription.poll(
            |bytes| match AnyMessage::decode(bytes) {
                Ok(AnyMessage::ShmAttachRequest(r)) => requests.push(Request::Attach {
                    correlation_id: r.correlation_id(),
                    stream_id: r.stream_id(),
                }),
                Ok(AnyMessage::ShmDetachRequest(r)) => requests.push(Request::Detach {
                    correlation_id: r.correlation_id(),
                }),
                _ => {}
            },
            64,
        )
    };
    while !stop.load(Ordering::Acquire) {
        let mut work = client.do_work().map_err(|e| e.to_string())?;
        work += poll(&mut subscription, &mut requests).map_err(|e| e.to_string())?;
        let answered = !requests.is_empty();
        for request in requests.drain(..) {
            let len = match request {
                Request::Attach {
                    correlation_id,
                    stream_id,
                } => {
                    next_lease += 1;
                    let pools = [ShmAttachResponsePayloadPools {
                        pool_id: 1,
                        pool_nslots: 64,
                        stride_bytes: 4096,
                        region_uri: pool_uri.as_bytes(),
                    }];
                    ShmAttachResponse {
                        correlation_id,
                        code: ResponseCode::Ok,
                        lease_id: Some(next_lease),
                        lease_expiry_timestamp_ns: Some(3_000_000_000),
                        stream_id: Some(stream_id),
                        epoch: Some(1),
                        layout_version: Some(1),
                        header_nslots: Some(64),
                        header_slot_bytes: Some(256),
                        node_id: None,
                        payload_pools: &pools,
                        header_region_uri: header_uri.as_bytes(),
                        error_message: b"",
                    }
                    .encode(&mut buf)
                }
                Request::Detach { correlation_id } => ShmDetachResponse {
                    correlation_id,
                    code: ResponseCode::Ok,
                    error_message: b"",
                }
                .encode(&mut buf),
            }
            .map_err(|e| e.to_string())?;
            loop {
                match publication.offer(&buf[..len]).map_err(|e| e.to_string())? {
                    OfferOutcome::Published { .. } | OfferOutcome::NotConnected => break,
                    OfferOutcome::BackPressured | OfferOutcome::AdminAction => {
                        client.do_work().map_err(|e| e.to_string())?;
                    }
                }
            }
            work += 1;
        }
        idle.idle_with(work, answered, || {
            client.do_work().unwrap_or(1) + poll(&mut subscription, &mut requests).unwrap_or(1)
        });
    }
    Ok(())
}
