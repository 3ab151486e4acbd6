//! Integration tests of `tensorpool::transport` against the real Aeron C media driver.
//!
//! Every test makes its own Aeron directory under a `TempDir` (in `/dev/shm` when it exists)
//! and stops everything it started, so tests run in parallel and leave nothing behind.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tensorpool::transport::{
    read_counters, AeronClient, BackoffIdle, ClientOptions, Counter, DutyCycle,
    EmbeddedMediaDriver, MediaDriverOptions, OfferOutcome, OutboundQueue, Publication, SendOutcome,
    Subscription, TransportError, OWNER_FILE,
};

/// Failsafe for every wait in these tests (each test should finish far sooner).
const DEADLINE: Duration = Duration::from_secs(8);
const IPC: &str = "aeron:ipc";
/// Names the Aeron directory for the helper test that runs a driver in a child process.
const CHILD_DRIVER_DIR_ENV: &str = "TP_TRANSPORT_TEST_CHILD_DRIVER_DIR";

/// A temporary base directory (in `/dev/shm` when present) and the Aeron directory inside
/// it. Aeron deletes and recreates its directory, so it is a child of the `TempDir`.
fn aeron_dir() -> (TempDir, PathBuf) {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        tempfile::Builder::new()
            .prefix("tp-transport-")
            .tempdir_in(shm)
    } else {
        tempfile::Builder::new().prefix("tp-transport-").tempdir()
    }
    .expect("temporary directory");
    let dir = base.path().join("aeron");
    (base, dir)
}

/// Small, fast driver options for tests: sparse 1 MiB IPC terms.
fn driver_options(dir: &Path) -> MediaDriverOptions {
    MediaDriverOptions {
        dir: Some(dir.to_owned()),
        term_buffer_sparse_file: Some(true),
        ipc_term_buffer_length: Some(1 << 20),
        ..MediaDriverOptions::default()
    }
}

/// Runs duty cycles of `client` plus `agent` (returning its work and whether it is done).
fn run(client: &AeronClient, mut agent: impl FnMut() -> (usize, bool)) {
    let deadline = Instant::now() + DEADLINE;
    let mut idle = BackoffIdle::default();
    loop {
        let work = client.do_work().expect("client duty cycle");
        let (agent_work, done) = agent();
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "gave up after {DEADLINE:?}");
        idle.idle(work + agent_work);
    }
}

/// Pumps until the publication sees a subscriber.
fn await_connected(client: &AeronClient, publication: &Publication) {
    run(client, || (0, publication.is_connected()));
}

/// Publishes `count` little-endian `u32` sequence numbers while polling `subscription` in the
/// same duty cycle; returns what arrived.
fn exchange_sequence(
    client: &AeronClient,
    publication: &Publication,
    subscription: &mut Subscription,
    count: u32,
) -> Vec<u32> {
    let mut next = 0u32;
    let mut received = Vec::with_capacity(count as usize);
    run(client, || {
        let mut work = 0;
        while next < count && work < 256 {
            match publication.offer(&next.to_le_bytes()).expect("offer") {
                OfferOutcome::Published { .. } => {
                    next += 1;
                    work += 1;
                }
                OfferOutcome::BackPressured | OfferOutcome::AdminAction => break,
                OfferOutcome::NotConnected => panic!("subscriber vanished"),
            }
        }
        work += subscription
            .poll(
                |bytes| received.push(u32::from_le_bytes(bytes.try_into().expect("4 bytes"))),
                256,
            )
            .expect("poll");
        (work, received.len() == count as usize)
    });
    received
}

#[test]
fn embedded_driver_and_client_move_10k_ordered_ipc_messages_in_one_thread() {
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");
    assert_eq!(client.media_driver().expect("owns its driver").dir(), dir);
    let publication = Publication::add(&client, IPC, 1001).expect("publication");
    let mut subscription = Subscription::add(&client, IPC, 1001).expect("subscription");
    await_connected(&client, &publication);

    let received = exchange_sequence(&client, &publication, &mut subscription, 10_000);

    assert!(
        received.iter().copied().eq(0..10_000),
        "messages out of order or altered"
    );
    assert_eq!(client.error_count(), 0);
}

#[test]
fn message_bigger_than_the_mtu_arrives_whole() {
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");
    let publication = Publication::add(&client, IPC, 1002).expect("publication");
    let mut subscription = Subscription::add(&client, IPC, 1002).expect("subscription");
    await_connected(&client, &publication);
    let message: Vec<u8> = (0..64 * 1024).map(|i: u32| (i % 251) as u8).collect();
    assert!(publication.max_message_length() >= message.len());

    let mut offered = false;
    let mut received: Vec<Vec<u8>> = Vec::new();
    run(&client, || {
        if !offered {
            offered = publication.offer(&message).expect("offer").is_published();
        }
        let work = subscription
            .poll(|bytes| received.push(bytes.to_vec()), 64)
            .expect("poll");
        (work, !received.is_empty())
    });

    assert_eq!(received.len(), 1, "one whole message, not fragments");
    assert_eq!(received[0], message);
}

#[test]
fn offer_without_subscriber_reports_not_connected() {
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");
    let publication = Publication::add(&client, IPC, 1003).expect("publication");
    for _ in 0..100 {
        client.do_work().expect("duty cycle");
    }

    assert!(!publication.is_connected());
    assert_eq!(
        publication.offer(b"nobody listens").expect("offer"),
        OfferOutcome::NotConnected
    );
}

#[test]
fn oversized_offer_is_refused_with_the_limit() {
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");
    let publication = Publication::add(&client, IPC, 1004).expect("publication");
    let max = publication.max_message_length();

    let too_big = vec![0u8; max + 1];

    assert_eq!(
        publication.offer(&too_big),
        Err(TransportError::MessageTooLarge { len: max + 1, max })
    );
}

#[test]
fn malformed_channel_is_refused_by_the_driver() {
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");

    let error = Publication::add(&client, "aeron:carrier-pigeon", 1005).expect_err("bad channel");

    assert!(
        matches!(error, TransportError::Aeron { .. }),
        "unexpected error: {error}"
    );
}

#[test]
fn outbound_queue_rides_out_back_pressure_and_delivers_in_order() {
    const COUNT: usize = 200;
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");
    let channel = "aeron:ipc?term-length=64k";
    let publication = Publication::add(&client, channel, 1006).expect("publication");
    let mut subscription = Subscription::add(&client, channel, 1006).expect("subscription");
    await_connected(&client, &publication);
    let message = |i: usize| -> Vec<u8> {
        let mut bytes = vec![(i % 256) as u8; 1000];
        bytes[..4].copy_from_slice(&(i as u32).to_le_bytes());
        bytes
    };
    let mut queue = OutboundQueue::new(COUNT, 1024).expect("queue");

    // The subscriber does not poll yet: a 64 KiB term allows a 32 KiB window, ~31 messages.
    let mut outcomes = Vec::new();
    for i in 0..COUNT {
        outcomes.push(queue.send(&publication, &message(i)).expect("send"));
        client.do_work().expect("duty cycle");
    }
    assert_eq!(outcomes[0], SendOutcome::Sent);
    assert_eq!(outcomes[COUNT - 1], SendOutcome::Queued);
    let waiting = queue.len();
    assert!(waiting > COUNT / 2, "only {waiting} messages queued");

    let mut received: Vec<Vec<u8>> = Vec::new();
    run(&client, || {
        let mut work = subscription
            .poll(|bytes| received.push(bytes.to_vec()), 64)
            .expect("poll");
        work += queue.flush(&publication).expect("flush");
        (work, received.len() == COUNT)
    });

    assert!(queue.is_empty());
    for (i, bytes) in received.iter().enumerate() {
        assert_eq!(*bytes, message(i), "message {i}");
    }
    let stats = *queue.stats();
    assert_eq!(stats.sent + stats.queued, COUNT as u64);
    assert_eq!(stats.retried, stats.queued);
    assert_eq!((stats.rejected_full, stats.dropped_not_connected), (0, 0));
}

#[test]
fn external_mode_client_talks_to_a_driver_pumped_by_another_thread() {
    let (_base, dir) = aeron_dir();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready, started) = mpsc::channel();
    let driver_thread = {
        let options = driver_options(&dir);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> Result<(), TransportError> {
            let driver = EmbeddedMediaDriver::start(&options)?;
            ready.send(()).expect("test thread waits");
            let mut idle = BackoffIdle::default();
            while !stop.load(Ordering::Acquire) {
                idle.idle(driver.do_work()?);
            }
            Ok(())
        })
    };
    started
        .recv_timeout(DEADLINE)
        .expect("driver thread started");

    let received = {
        let client = AeronClient::connect(&dir, Duration::from_secs(5)).expect("connect");
        assert!(client.media_driver().is_none());
        let publication = Publication::add(&client, IPC, 1007).expect("publication");
        let mut subscription = Subscription::add(&client, IPC, 1007).expect("subscription");
        await_connected(&client, &publication);
        exchange_sequence(&client, &publication, &mut subscription, 1_000)
    };

    stop.store(true, Ordering::Release);
    driver_thread
        .join()
        .expect("driver thread panicked")
        .expect("driver thread");
    assert!(received.iter().copied().eq(0..1_000));
}

#[test]
fn connect_without_a_driver_fails_clearly_after_the_timeout() {
    let (base, _) = aeron_dir();
    let timeout = Duration::from_millis(500);
    let started = Instant::now();

    let error = AeronClient::connect(base.path(), timeout).expect_err("no driver there");

    let elapsed = started.elapsed();
    assert_eq!(
        error,
        TransportError::NoMediaDriver {
            dir: base.path().to_owned(),
            timeout
        }
    );
    assert!(error.to_string().contains("no active media driver in"));
    assert!(
        elapsed >= timeout && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[test]
fn counter_is_visible_with_label_and_value_to_another_client() {
    let (_base, dir) = aeron_dir();
    let owner = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");
    let label = "tp-driver: attaches ok";
    let counter = Counter::new(&owner, 1_000_001, label).expect("counter");
    counter.set(41);
    assert_eq!(counter.increment(), 42);

    let reader = AeronClient::connect(&dir, Duration::from_secs(2)).expect("second client");
    let seen = reader
        .find_counter(label)
        .expect("counter visible to another client");

    assert_eq!(seen.id, counter.id());
    assert_eq!(seen.type_id, 1_000_001);
    assert_eq!(seen.value, 42);
    counter.set(7);
    let from_file = read_counters(&dir).expect("read CnC file");
    let seen = from_file
        .iter()
        .find(|c| c.label == label)
        .expect("counter in CnC file");
    assert_eq!(seen.value, 7);
}

#[test]
fn driver_starts_over_the_files_of_a_cleanly_closed_driver_and_warns() {
    let (_base, dir) = aeron_dir();
    drop(EmbeddedMediaDriver::start(&driver_options(&dir)).expect("first driver"));
    assert!(dir.join("cnc.dat").exists(), "closed driver left its files");

    let (client, warnings) =
        capture_warnings(|| AeronClient::start_embedded(&driver_options(&dir)));
    let client = client.expect("driver starts over dead files");

    assert!(
        warnings.iter().any(|w| w.contains("no longer running")),
        "warnings: {warnings:?}"
    );
    let publication = Publication::add(&client, IPC, 1008).expect("publication");
    let mut subscription = Subscription::add(&client, IPC, 1008).expect("subscription");
    await_connected(&client, &publication);
    assert_eq!(
        exchange_sequence(&client, &publication, &mut subscription, 10),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn second_driver_in_a_live_drivers_directory_is_refused_and_the_first_keeps_working() {
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("first driver");
    let publication = Publication::add(&client, IPC, 1009).expect("publication");

    let error = EmbeddedMediaDriver::start(&driver_options(&dir)).expect_err("second driver");

    assert_eq!(
        error,
        TransportError::DriverAlreadyRunning { dir: dir.clone() }
    );
    assert_eq!(
        error.to_string(),
        format!("a media driver is already running in {}", dir.display())
    );
    assert!(dir.join("cnc.dat").exists());
    let mut subscription = Subscription::add(&client, IPC, 1009).expect("subscription");
    await_connected(&client, &publication);
    assert_eq!(
        exchange_sequence(&client, &publication, &mut subscription, 10),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn driver_in_a_symlinked_alias_of_a_live_directory_is_refused() {
    let (base, dir) = aeron_dir();
    let (other_base, _) = aeron_dir();
    let alias = other_base.path().join("alias");
    std::os::unix::fs::symlink(base.path(), &alias).expect("symlink");
    let first = EmbeddedMediaDriver::start(&driver_options(&dir)).expect("first driver");
    first.do_work().expect("duty cycle");

    let error = EmbeddedMediaDriver::start(&driver_options(&alias.join("aeron")))
        .expect_err("same directory under another name");

    assert!(
        matches!(error, TransportError::DriverAlreadyRunning { .. }),
        "unexpected error: {error}"
    );
    assert!(first.do_work().is_ok());
    assert!(dir.join("cnc.dat").exists());
}

#[test]
fn driver_starts_once_a_crashed_drivers_heartbeat_ages_out() {
    // A copy of a live driver's CnC file is a driver that died at copy time: its heartbeat is
    // fresh and never moves again.
    let (_base, live_dir) = aeron_dir();
    let (_other_base, dead_dir) = aeron_dir();
    let live = EmbeddedMediaDriver::start(&driver_options(&live_dir)).expect("live driver");
    live.do_work().expect("duty cycle");
    std::fs::create_dir_all(&dead_dir).expect("dead dir");
    std::fs::copy(live_dir.join("cnc.dat"), dead_dir.join("cnc.dat")).expect("copy cnc");
    drop(live);
    let driver_timeout = Duration::from_millis(1000);
    let options = MediaDriverOptions {
        driver_timeout: Some(driver_timeout),
        ..driver_options(&dead_dir)
    };
    let started = Instant::now();

    let driver = EmbeddedMediaDriver::start(&options).expect("starts after the heartbeat ages out");

    let waited = started.elapsed();
    assert!(waited >= driver_timeout / 2, "waited only {waited:?}");
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    assert!(driver.do_work().is_ok());
}

#[test]
fn driver_in_another_process_is_refused_while_alive_and_replaced_after_it_is_killed() {
    let (_base, dir) = aeron_dir();
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "child_process_media_driver",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_DRIVER_DIR_ENV, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child driver"),
    );
    drop(AeronClient::connect(&dir, Duration::from_secs(5)).expect("child driver is up"));
    let options = MediaDriverOptions {
        driver_timeout: Some(Duration::from_secs(2)),
        ..driver_options(&dir)
    };

    let refused = EmbeddedMediaDriver::start(&options).expect_err("child driver is alive");

    assert_eq!(
        refused,
        TransportError::DriverAlreadyRunning { dir: dir.clone() }
    );
    child.0.kill().expect("kill -9 the child driver");
    child.0.wait().expect("reap child");
    let driver = EmbeddedMediaDriver::start(&options).expect("replaces the dead driver");
    let client = AeronClient::with_embedded_driver(driver, &ClientOptions::default())
        .expect("client of the new driver");
    let publication = Publication::add(&client, IPC, 1010).expect("publication");
    let mut subscription = Subscription::add(&client, IPC, 1010).expect("subscription");
    await_connected(&client, &publication);
    assert_eq!(
        exchange_sequence(&client, &publication, &mut subscription, 3),
        [0, 1, 2]
    );
}

/// Starts [`child_process_media_driver`] in `dir` and waits until a client can connect.
fn spawn_child_driver(dir: &Path) -> KillOnDrop {
    let child = KillOnDrop(
        Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "child_process_media_driver",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(CHILD_DRIVER_DIR_ENV, dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child driver"),
    );
    drop(AeronClient::connect(dir, Duration::from_secs(5)).expect("child driver is up"));
    // The owner record follows the CnC file by a moment.
    let deadline = Instant::now() + DEADLINE;
    while !dir.join(OWNER_FILE).exists() {
        assert!(
            Instant::now() < deadline,
            "the child driver wrote no owner record"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// Aeron's rule alone would make the new driver wait out a 60 s driver timeout, and the old
/// driver's client another 60 s: the killed driver's pid is proof enough for both.
#[test]
fn a_killed_drivers_directory_is_taken_over_at_once_and_its_clients_notice() {
    let (_base, dir) = aeron_dir();
    let long = Duration::from_secs(60);
    let mut child = spawn_child_driver(&dir);
    let old_client = AeronClient::connect_with(&ClientOptions {
        dir: Some(dir.clone()),
        driver_timeout: Some(long),
        ..ClientOptions::default()
    })
    .expect("client of the child driver");
    let options = MediaDriverOptions {
        driver_timeout: Some(long),
        ..driver_options(&dir)
    };
    assert_eq!(
        EmbeddedMediaDriver::start(&options).expect_err("the child driver is alive"),
        TransportError::DriverAlreadyRunning { dir: dir.clone() },
        "a live driver is never replaced, whatever its owner record says"
    );
    assert!(old_client.do_work().is_ok(), "the old client still works");

    child.0.kill().expect("kill -9 the child driver");
    child.0.wait().expect("reap child");
    let started = Instant::now();
    let driver = EmbeddedMediaDriver::start(&options).expect("replaces the dead driver");
    let took = started.elapsed();
    assert!(
        took < long / 4,
        "the start waited {took:?}, as for a timeout"
    );
    let record = std::fs::read_to_string(dir.join(OWNER_FILE)).expect("new owner record");
    assert!(
        record.contains(&format!("pid={}\n", std::process::id())),
        "{record}"
    );

    // The old client's CnC file is gone; it closes itself instead of waiting for 60 s.
    let deadline = Instant::now() + DEADLINE;
    let error = loop {
        driver.do_work().expect("new driver duty cycle");
        match old_client.do_work() {
            Err(error) => break error,
            Ok(_) => assert!(Instant::now() < deadline, "the old client never noticed"),
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(error, TransportError::ClientClosed);
    assert!(old_client.is_closed());
}

/// An owner record from another pid namespace (a container sharing the directory) proves
/// nothing about a pid here: the heartbeat rule applies.
#[test]
fn an_owner_record_from_another_pid_namespace_is_not_trusted() {
    let (_base, dir) = aeron_dir();
    let mut child = spawn_child_driver(&dir);
    child.0.kill().expect("kill -9 the child driver");
    child.0.wait().expect("reap child");
    let record = std::fs::read_to_string(dir.join(OWNER_FILE)).expect("owner record");
    let foreign: String = record
        .lines()
        .map(|line| {
            if line.starts_with("pid_namespace=") {
                "pid_namespace=pid:[1]\n".to_owned()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_ne!(foreign, record);
    std::fs::write(dir.join(OWNER_FILE), foreign).expect("rewrite owner record");
    let driver_timeout = Duration::from_millis(1500);
    let options = MediaDriverOptions {
        driver_timeout: Some(driver_timeout),
        ..driver_options(&dir)
    };
    let started = Instant::now();

    let driver = EmbeddedMediaDriver::start(&options).expect("starts after the heartbeat ages out");

    let waited = started.elapsed();
    assert!(waited >= driver_timeout / 3, "waited only {waited:?}");
    assert!(driver.do_work().is_ok());
}

/// Runs a media driver for the test above when started by it; does nothing otherwise.
#[test]
#[ignore = "helper run in a child process by the cross-process driver test"]
fn child_process_media_driver() {
    let Some(dir) = std::env::var_os(CHILD_DRIVER_DIR_ENV) else {
        return;
    };
    let driver = EmbeddedMediaDriver::start(&MediaDriverOptions::in_dir(dir)).expect("driver");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut idle = BackoffIdle::default();
    while Instant::now() < deadline {
        idle.idle(driver.do_work().expect("duty cycle"));
    }
}

#[test]
fn hundred_thousand_ipc_messages_pass_in_one_thread() {
    const COUNT: usize = 100_000;
    let (_base, dir) = aeron_dir();
    let client = AeronClient::start_embedded(&driver_options(&dir)).expect("embedded start");
    let publication = Publication::add(&client, IPC, 1011).expect("publication");
    let mut subscription = Subscription::add(&client, IPC, 1011).expect("subscription");
    await_connected(&client, &publication);
    let sent = Cell::new(0usize);
    let received = Cell::new(0usize);
    let payload = [7u8; 32];

    DutyCycle::new(&client)
        .run_until(
            || {
                let mut work = 0;
                while sent.get() < COUNT && work < 1024 {
                    if !publication.offer(&payload).expect("offer").is_published() {
                        break;
                    }
                    sent.set(sent.get() + 1);
                    work += 1;
                }
                work + subscription
                    .poll(|_| received.set(received.get() + 1), 1024)
                    .expect("poll")
            },
            || received.get() == COUNT,
            DEADLINE,
        )
        .expect("all messages arrive");

    assert_eq!((sent.get(), received.get()), (COUNT, COUNT));
}

/// Kills (SIGKILL) and reaps the child process if the test ends early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `f` with a tracing subscriber on this thread that records WARN (and worse) messages.
fn capture_warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let collector = WarningCollector::default();
    let messages = Arc::clone(&collector.messages);
    let result = tracing::subscriber::with_default(collector, f);
    let messages = messages.lock().expect("collector lock").clone();
    (result, messages)
}

/// A minimal `tracing` subscriber keeping the `message` of WARN and ERROR events.
#[derive(Default)]
struct WarningCollector {
    messages: Arc<Mutex<Vec<String>>>,
}

impl tracing::Subscriber for WarningCollector {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.messages
            .lock()
            .expect("collector lock")
            .push(message.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
