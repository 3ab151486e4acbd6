//! The `tp` operator tool against real things: a `tp-driver` process with the example
//! producer and two example consumers (`status --once --json`, the live view in tmux,
//! `shutdown` with a wrong and a right token), a driver on stream ids of its own found
//! with no flags, drivers sharing an external media driver, a media driver with no
//! tensorpool driver, hand-made region files with torn and in-progress slots (`inspect`),
//! and epoch directories, sparse and written (`gc --dry-run`, footprint as `du` counts).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;
use tensorpool::client::tensor::tensor_header;
use tensorpool::clock::monotonic_now_ns;
use tensorpool::protocol::control::{Dtype, MajorOrder};
use tensorpool::shm::layout::{
    encode_slot, encode_superblock, ExpectedRegion, SlotContents, HEADER_SLOT_BYTES,
    SUPERBLOCK_SIZE,
};
use tensorpool::shm::seqlock::{committed, in_progress};

/// Runs `tp` to completion.
fn tp(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tp"))
        .args(args)
        .output()
        .expect("running tp");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Bytes `du -s -B1` counts for `path` (allocated blocks, each inode once).
fn du_bytes(path: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-s", "-B1"])
        .arg(path)
        .output()
        .expect("running du");
    assert!(out.status.success(), "du {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("du printed {:?}", String::from_utf8_lossy(&out.stdout)))
}

/// Every object key anywhere in `value`.
fn json_keys(value: &Value, keys: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                keys.push(key.clone());
                json_keys(inner, keys);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| json_keys(v, keys)),
        _ => {}
    }
}

/// The test driver's configuration with a ring large enough that the consumers keep up.
fn write_config(env: &TestEnv, settings: &DriverSettings) -> PathBuf {
    let toml = settings.toml(env).replace(
        &format!("header_nslots = {HEADER_NSLOTS}"),
        "header_nslots = 1024",
    );
    env.write("driver.toml", &toml)
}

fn example(env: &TestEnv, name: &str, label: &str, extra: &[&str]) -> ProcessDriver {
    let aeron = env.aeron_dir().display().to_string();
    let shm = env.shm_dir().display().to_string();
    let stream = STATIC_STREAM.to_string();
    let mut args = vec![
        "--aeron-dir",
        &aeron,
        "--channel",
        CHANNEL,
        "--stream-id",
        &stream,
        "--allowed-base-dir",
        &shm,
        "--announce-stream-id",
        "1001",
        "--timeout-s",
        "30",
    ];
    args.extend_from_slice(extra);
    ProcessDriver::spawn_program(&example_program(name), "", env, label, &args, &[])
}

/// tmux on a socket of this test's own, so parallel tests and the user's sessions are
/// never touched; the server is killed (by socket) when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(env: &TestEnv, command: &str) -> Option<Self> {
        if Command::new("tmux").arg("-V").output().is_err() {
            return None;
        }
        let socket = format!("tp-test-{}", std::process::id());
        let tmux = Self { socket };
        let status = tmux
            .cmd(&[
                "new-session",
                "-d",
                "-s",
                "tp",
                "-x",
                "160",
                "-y",
                "60",
                command,
            ])
            .current_dir(env.path())
            .status()
            .expect("starting tmux");
        assert!(status.success(), "tmux new-session failed");
        Some(tmux)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.socket).args(args);
        c
    }

    fn pane(&self) -> String {
        let out = self
            .cmd(&["capture-pane", "-p", "-t", "tp"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "tp"])
            .output()
            .is_ok_and(|o| o.status.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).output();
    }
}

#[test]
fn status_inspect_and_shutdown_against_a_running_driver_with_a_producer_and_two_consumers() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-tool".into(),
        ..DriverSettings::separate_announce()
    };
    let config = write_config(&env, &settings);
    let config_arg = config.display().to_string();
    let mut driver = ProcessDriver::start(&env, "driver", &config, &[]);
    driver.wait_running(DEADLINE);
    let _consumers = [
        example(
            &env,
            "consumer",
            "consumer21",
            &["--frames", "1000000", "--consumer-id", "21"],
        ),
        example(
            &env,
            "consumer",
            "consumer22",
            &["--frames", "1000000", "--consumer-id", "22"],
        ),
    ];
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active consumer leases"),
        |v| v == 2,
    );
    let _producer = example(
        &env,
        "producer",
        "producer",
        &[
            "--frames",
            "1000000",
            "--payload-bytes",
            "4000",
            "--rate",
            "500",
            "--client-id",
            "7",
        ],
    );
    wait_for_counter(
        &env.aeron_dir(),
        &settings.counter_label("active producer leases"),
        |v| v == 1,
    );

    // One snapshot as JSON.
    let (code, out, err) = tp(&["status", "--config", &config_arg, "--once", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let streams = status["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "{out}");
    let stream = &streams[0];
    assert_eq!(stream["stream_id"], STATIC_STREAM);
    // Epoch 1 at start-up (static stream), 2 when the producer attached.
    assert_eq!(stream["epoch"], 2, "{out}");
    assert_eq!(stream["producer"]["client_id"], 7, "{out}");
    assert!(stream["producer"]["lease_id"].as_u64().is_some(), "{out}");
    assert!(
        stream["producer"]["expires_in_s"].as_f64().unwrap() > 0.0,
        "{out}"
    );
    let consumer_ids: Vec<u64> = stream["consumers"]
        .as_array()
        .expect("consumers")
        .iter()
        .map(|c| c["client_id"].as_u64().expect("client id"))
        .collect();
    assert_eq!(consumer_ids, [21, 22], "{out}");
    assert_eq!(stream["header_nslots"], 1024);
    assert_eq!(stream["pools"].as_array().map(Vec::len), Some(POOLS.len()));
    let fps = stream["frames_per_s"].as_f64().expect("a frame rate");
    assert!(fps > 0.0, "{out}");
    assert!(
        stream["mib_per_s"].as_f64().expect("a byte rate") > 0.0,
        "{out}"
    );
    assert!(stream["announce_age_s"].as_f64().expect("an announce") < 5.0);
    let counters = &status["drivers"]["tp-tool"];
    assert_eq!(counters["active_producer_leases"], 1, "{out}");
    assert_eq!(counters["active_consumer_leases"], 2, "{out}");
    assert_eq!(status["leases_not_published"], 0);
    // Keys are snake_case words, the instance id (a map key) aside.
    let mut keys = Vec::new();
    json_keys(&status, &mut keys);
    let odd: Vec<&String> = keys
        .iter()
        .filter(|k| {
            *k != "tp-tool"
                && !k
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    assert!(odd.is_empty(), "keys not in snake_case: {odd:?}");
    // The wire's two drop fields, under the names the text view uses too.
    for consumer in stream["consumers"].as_array().expect("consumers") {
        assert!(consumer["qos_drops_gap"].is_u64(), "{consumer}");
        assert!(consumer["qos_drops_late"].is_u64(), "{consumer}");
        assert!(consumer.get("drops_gap").is_none(), "{consumer}");
    }
    assert!(stream["qos_drops_gap"].is_u64(), "{out}");

    // The newest epoch's files, read-only: nothing a consumer would refuse.
    let (code, out, err) = tp(&[
        "inspect",
        "--stream",
        &STATIC_STREAM.to_string(),
        "--config",
        &config_arg,
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let files: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(files.as_array().map(Vec::len), Some(1 + POOLS.len()));
    assert_eq!(files[0]["superblock"]["epoch"], 2);
    assert_eq!(files[0]["superblock"]["region_type"], "HEADER_RING");

    // The live view as a terminal user sees it; q quits cleanly.
    let command = format!(
        "{} status --config {config_arg}; echo $? > status.rc",
        env!("CARGO_BIN_EXE_tp")
    );
    match Tmux::start(&env, &command) {
        None => {
            eprintln!("tmux is not installed (scripts/setup.sh installs it): live view not checked")
        }
        Some(tmux) => {
            // Leases show at once (counters); epoch and rates once an announce and two
            // ring samples are in.
            let stream_row = |pane: &str| -> Option<Vec<String>> {
                let row = pane
                    .lines()
                    .find(|l| l.trim_start().starts_with(&STATIC_STREAM.to_string()))?;
                Some(row.split_whitespace().map(str::to_owned).collect())
            };
            let pane = wait_until("the live view to show the stream", DEADLINE, || {
                let pane = tmux.pane();
                let cells = stream_row(&pane)?;
                (cells.get(1).is_some_and(|c| c == "2")
                    && cells.get(4).is_some_and(|c| c != "-")
                    && pane.contains("consumer 22"))
                .then_some(pane)
            });
            assert!(pane.contains("STREAM  EPOCH"), "{pane}");
            assert!(pane.contains("producer 7  lease"), "{pane}");
            assert!(pane.contains("driver tp-tool:"), "{pane}");
            assert!(pane.contains("q or Ctrl-C quits"), "{pane}");
            let cells = stream_row(&pane).expect("the stream's row");
            assert_eq!(&cells[..4], ["10000", "2", "7", "2"], "{pane}");
            let fps: f64 = cells[4].parse().expect("frames/s is a number");
            assert!(fps > 0.0, "{pane}");
            let status = tmux.cmd(&["send-keys", "-t", "tp", "q"]).status();
            assert!(status.is_ok_and(|s| s.success()));
            wait_until("the live view to exit on q", DEADLINE, || {
                (!tmux.alive()).then_some(())
            });
            let rc = std::fs::read_to_string(env.path().join("status.rc")).expect("exit status");
            assert_eq!(rc.trim(), "0");
            drop(tmux);

            // Ctrl-C ends it as cleanly, terminal restored (the shell after it still runs).
            let command = format!(
                "{} status --config {config_arg}; echo $? > interrupted.rc",
                env!("CARGO_BIN_EXE_tp")
            );
            let tmux = Tmux::start(&env, &command).expect("tmux was there a moment ago");
            wait_until("the second live view", DEADLINE, || {
                tmux.pane().contains("STREAM  EPOCH").then_some(())
            });
            let status = tmux.cmd(&["send-keys", "-t", "tp", "C-c"]).status();
            assert!(status.is_ok_and(|s| s.success()));
            wait_until("the live view to exit on Ctrl-C", DEADLINE, || {
                (!tmux.alive()).then_some(())
            });
            let rc =
                std::fs::read_to_string(env.path().join("interrupted.rc")).expect("exit status");
            assert_eq!(rc.trim(), "0");
        }
    }

    // Shutdown: a wrong token is refused (exit 6), the right one stops the driver.
    let (code, _, err) = tp(&[
        "shutdown",
        "--config",
        &config_arg,
        "--token",
        "wrong",
        "--timeout-ms",
        "5000",
    ]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("ignored the request"), "{err}");
    let (code, out, err) = tp(&[
        "shutdown",
        "--config",
        &config_arg,
        "--token",
        TOKEN,
        "--reason",
        "admin",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reason ADMIN"), "{out}");
    let exit = driver
        .wait(DEADLINE)
        .expect("the driver exits after the shutdown");
    assert!(exit.success(), "{exit}");
}

#[test]
fn shutdown_without_a_driver_is_no_driver_and_unanswered_is_a_timeout() {
    let env = TestEnv::new();
    let dir = env.aeron_dir().display().to_string();
    // No media driver at all: exit 4, for status too, saying what to pass.
    let (code, _, err) = tp(&["shutdown", "--aeron-dir", &dir, "--token", "t"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no media driver"), "{err}");
    let (code, out, err) = tp(&["status", "--aeron-dir", &dir, "--once"]);
    assert_eq!(code, 4, "{out}{err}");
    assert!(err.contains(&format!("no media driver in {dir}")), "{err}");
    assert!(
        err.contains("Pass --aeron-dir DIR, or --config FILE"),
        "{err}"
    );

    // A media driver and a subscriber on the control stream, but no SHM driver: the
    // request is delivered, nobody answers and no driver counts it: exit 5.
    let media = tensorpool::transport::AeronClient::start_embedded(
        &tensorpool::transport::MediaDriverOptions {
            dir: Some(env.aeron_dir()),
            ..Default::default()
        },
    )
    .expect("a media driver of the test's own");
    let listener = tensorpool::transport::Subscription::add(&media, CHANNEL, CONTROL_STREAM as i32)
        .expect("a silent control-stream subscriber");
    // Told nothing, tp looks for a driver's published endpoints, finds none, and says so
    // rather than listening to the spec defaults (exit 4).
    for command in [
        &["status", "--aeron-dir", &dir, "--once"][..],
        &["shutdown", "--aeron-dir", &dir, "--token", "t"][..],
    ] {
        let (code, out, err) = tp(command);
        assert_eq!(code, 4, "{command:?}: {out}{err}");
        assert!(err.contains("serves no tensorpool driver"), "{err}");
        assert!(
            err.contains("pass --config FILE or its stream ids"),
            "{err}"
        );
    }
    let pump = std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            tp(&[
                "shutdown",
                "--aeron-dir",
                &dir,
                "--control-stream-id",
                "1000",
                "--token",
                "t",
                "--timeout-ms",
                "1500",
            ])
        });
        while !handle.is_finished() {
            let _ = media.do_work();
            std::thread::sleep(Duration::from_millis(1));
        }
        handle.join().expect("the tp thread")
    });
    drop(listener);
    let (code, _, err) = pump;
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("no ShmDriverShutdown within 1.5s"), "{err}");
}

/// A `tp-driver` on control, announce and QoS streams none of tp's defaults names, with
/// prefault on: `tp status`, `gc`, `inspect` and `shutdown` given only the Aeron
/// directory (or nothing but `AERON_DIR`, without `$USER`) find it and its footprint;
/// named streams that hear nothing say why and what to pass.
#[test]
fn a_driver_on_stream_ids_of_its_own_is_found_with_no_flags_and_its_footprint_shown() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "elsewhere".into(),
        ..DriverSettings::separate_announce()
    };
    let toml = settings
        .toml(&env)
        .replace(
            &format!("control_stream_id = {CONTROL_STREAM}\n"),
            "control_stream_id = 3000\n",
        )
        .replace(
            &format!("announce_stream_id = {SEPARATE_ANNOUNCE_STREAM}\n"),
            "announce_stream_id = 3001\n",
        )
        .replace(
            &format!("qos_stream_id = {QOS_STREAM}\n"),
            "qos_stream_id = 3200\n",
        )
        .replace("prefault_shm = false", "prefault_shm = true");
    assert!(toml.contains("announce_stream_id = 3001") && toml.contains("prefault_shm = true"));
    let config = env.write("driver.toml", &toml);
    let mut driver = ProcessDriver::start(&env, "driver", &config, &[]);
    driver.wait_running(DEADLINE);
    let dir = env.aeron_dir().display().to_string();

    let (code, out, err) = tp(&["status", "--aeron-dir", &dir, "--once", "--json"]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(status["instance_id"], "elsewhere", "{out}");
    assert_eq!(
        (
            &status["control_stream_id"],
            &status["announce_stream_id"],
            &status["qos_stream_id"]
        ),
        (&3000.into(), &3001.into(), &3200.into()),
        "{out}"
    );
    assert_eq!(status["notes"], serde_json::json!([]), "{out}");
    let stream = &status["streams"][0];
    assert_eq!(stream["stream_id"], STATIC_STREAM, "{out}");
    assert_eq!(stream["epoch"], 1, "{out}");
    assert_eq!(stream["header_nslots"], HEADER_NSLOTS, "{out}");
    // The footprint of the start-up epoch (no producer yet), as du counts.
    let shm = &status["shm"];
    let epochs = shm["epochs"].as_array().expect("epochs");
    assert_eq!(epochs.len(), 1, "{out}");
    let epoch_dir = PathBuf::from(epochs[0]["path"].as_str().expect("a path"));
    let du = du_bytes(&epoch_dir);
    assert_eq!(epochs[0]["bytes"], du, "{out}");
    assert_eq!(shm["total_bytes"], du, "{out}");
    assert_eq!(stream["shm_bytes"], du, "{out}");
    let regions: u64 = POOLS
        .iter()
        .map(|(_, stride)| u64::from(*stride) * u64::from(HEADER_NSLOTS))
        .sum();
    assert!(
        du < regions,
        "an epoch without a producer stays sparse even with prefault on: {du} bytes \
         allocated for {regions} of slots"
    );

    // No --aeron-dir and no $USER: tp looks where Aeron itself would (AERON_DIR here, so
    // the machine's real default directory is never touched).
    let out = Command::new(env!("CARGO_BIN_EXE_tp"))
        .args(["status", "--once", "--json"])
        .env_remove("USER")
        .env("AERON_DIR", &dir)
        .output()
        .expect("running tp");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(found["instance_id"], "elsewhere", "{text}");

    let (code, out, err) = tp(&["status", "--aeron-dir", &dir, "--once"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("driver elsewhere (found by its published endpoints)"),
        "{out}"
    );
    assert!(
        out.contains("control stream 3000  announce stream 3001"),
        "{out}"
    );
    assert!(out.contains("stream 10000 epoch 1: "), "{out}");

    // Named streams that hear nothing: the note names the driver's real announce stream.
    let (code, out, err) = tp(&[
        "status",
        "--aeron-dir",
        &dir,
        "--control-stream-id",
        "1000",
        "--once",
        "--json",
        "--window-ms",
        "500",
    ]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let notes = status["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "no ShmPoolAnnounce on {} stream 1000",
            tensorpool::config::DEFAULT_CONTROL_CHANNEL
        )),
        "{notes}"
    );
    assert!(notes.contains("drop the stream flags"), "{notes}");
    assert!(
        notes.contains(&format!("announce {CHANNEL} stream 3001")),
        "{notes}"
    );
    let (_, out, _) = tp(&[
        "status",
        "--aeron-dir",
        &dir,
        "--announce-stream-id",
        "1001",
        "--once",
        "--window-ms",
        "300",
    ]);
    assert!(out.contains("note: no ShmPoolAnnounce on"), "{out}");

    // gc and inspect read the SHM location the driver published.
    let (code, out, err) = tp(&["gc", "--dry-run", "--aeron-dir", &dir, "--json"]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        plan["epochs"][0]["path"],
        epoch_dir.display().to_string(),
        "{out}"
    );
    assert_eq!(plan["epochs"][0]["bytes"], du, "{out}");
    let (code, out, err) = tp(&["inspect", "--stream", "10000", "--aeron-dir", &dir]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("driver pid {} (running)", driver.pid())),
        "{out}"
    );

    let (code, out, err) = tp(&["shutdown", "--aeron-dir", &dir, "--token", TOKEN]);
    assert_eq!(code, 0, "{out}{err}");
    let exit = driver.wait(DEADLINE).expect("the driver exits");
    assert!(exit.success(), "{exit}");
}

/// Two drivers on one external media driver: told nothing, tp lists both and asks for
/// --instance-id; with it, each is found.
#[test]
fn drivers_sharing_an_external_media_driver_are_listed_and_chosen_by_instance_id() {
    use tensorpool::config::MediaDriverMode;
    let env = TestEnv::new();
    let _media_driver = MediaDriverThread::start(&env.aeron_dir());
    let start = |instance: &str, control: u32, namespace: &str| {
        let mut config = DriverSettings {
            instance_id: instance.into(),
            ..DriverSettings::shared_announce()
        }
        .config(&env);
        config.driver.media_driver = MediaDriverMode::External;
        config.driver.control_stream_id = control;
        config.driver.announce_stream_id = control;
        config.driver.qos_stream_id = control + 200;
        config.shm.namespace = namespace.into();
        InThreadDriver::start_with_config(&env, config)
    };
    let _first = start("first", 1000, "first");
    let _second = start("second", 4000, "second");
    let dir = env.aeron_dir().display().to_string();
    wait_until("both drivers' endpoints", DEADLINE, || {
        let counters = tensorpool::transport::read_counters(&env.aeron_dir()).ok()?;
        (counters
            .iter()
            .filter(|c| c.type_id == tensorpool::driver::endpoints::ENDPOINTS_COUNTER_TYPE_ID)
            .count()
            == 2)
            .then_some(())
    });

    let (code, out, err) = tp(&["status", "--aeron-dir", &dir, "--once"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("2 tensorpool drivers share the media driver"),
        "{err}"
    );
    assert!(err.contains("choose one with --instance-id ID"), "{err}");
    let pid = std::process::id();
    assert!(
        err.contains(&format!(
            "\n  first (pid {pid}): control {CHANNEL} stream 1000"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "\n  second (pid {pid}): control {CHANNEL} stream 4000"
        )),
        "{err}"
    );

    let (code, out, err) = tp(&[
        "status",
        "--aeron-dir",
        &dir,
        "--instance-id",
        "second",
        "--once",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(status["instance_id"], "second", "{out}");
    assert_eq!(status["control_stream_id"], 4000, "{out}");
    assert_eq!(status["streams"][0]["epoch"], 1, "{out}");
    let (code, out, err) = tp(&[
        "gc",
        "--dry-run",
        "--aeron-dir",
        &dir,
        "--instance-id",
        "first",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).expect("JSON");
    assert!(
        plan["namespace_dir"]
            .as_str()
            .is_some_and(|d| d.ends_with("/first")),
        "{out}"
    );
    let (code, _, err) = tp(&[
        "status",
        "--aeron-dir",
        &dir,
        "--instance-id",
        "third",
        "--once",
    ]);
    assert_eq!(code, 4, "{err}");
    assert!(
        err.contains("no driver with instance id \"third\""),
        "{err}"
    );
    let (code, _, err) = tp(&[
        "status",
        "--aeron-dir",
        &dir,
        "--instance-id",
        "first",
        "--control-stream-id",
        "1000",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--instance-id chooses among the drivers found"),
        "{err}"
    );
}

/// Writes a header ring of `nslots` and one 4 KiB pool for stream 10000 epoch 3 under
/// `root`, with `slots` as `(index, seq_commit word, contents)`.
fn write_epoch(root: &Path, nslots: u32, slots: &[(u32, u64, SlotContents)]) -> PathBuf {
    let dir = root.join("10000").join("3");
    std::fs::create_dir_all(&dir).unwrap();
    let now = monotonic_now_ns();
    let pid = u64::from(std::process::id());
    let ring = ExpectedRegion::header_ring(1, 3, STATIC_STREAM, nslots);
    let mut bytes = vec![0u8; ring.region_len().unwrap() as usize];
    bytes[..SUPERBLOCK_SIZE].copy_from_slice(&encode_superblock(&ring.superblock(pid, now)));
    for (index, word, contents) in slots {
        let at = SUPERBLOCK_SIZE + *index as usize * HEADER_SLOT_BYTES;
        bytes[at..at + HEADER_SLOT_BYTES].copy_from_slice(&encode_slot(*word, contents));
    }
    std::fs::write(dir.join("header.ring"), &bytes).unwrap();
    let pool = ExpectedRegion::payload_pool(1, 3, STATIC_STREAM, 1, nslots, 4096);
    let mut bytes = vec![0u8; pool.region_len().unwrap() as usize];
    bytes[..SUPERBLOCK_SIZE].copy_from_slice(&encode_superblock(&pool.superblock(pid, now)));
    std::fs::write(dir.join("1.pool"), &bytes).unwrap();
    dir.join("header.ring")
}

fn contents(slot: u32, len: u32) -> SlotContents {
    SlotContents {
        values_len_bytes: len,
        payload_slot: slot,
        pool_id: 1,
        payload_offset: 0,
        timestamp_ns: 1,
        meta_version: 0,
        tensor: tensor_header(Dtype::Uint8, MajorOrder::Row, &[len as i32], &[]).unwrap(),
    }
}

#[test]
fn inspect_flags_in_progress_torn_and_misplaced_slots_and_passes_clean_ones() {
    let env = TestEnv::new();
    let clean = write_epoch(
        &env.path().join("clean"),
        8,
        &[
            (0, committed(8), contents(0, 100)),
            (1, committed(9), contents(1, 4096)),
        ],
    );
    let clean_arg = clean.display().to_string();
    let (code, out, err) = tp(&["inspect", &clean_arg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("slots: 2 committed, 0 in progress, 6 empty"),
        "{out}"
    );
    assert!(
        out.contains("seq        9  4096 bytes in pool 1 slot 1, UINT8[4096]"),
        "{out}"
    );
    assert!(!out.contains("REJECT"), "{out}");

    // A torn slot: committed, but its tensor header was never (or half) written.
    let mut torn = contents(2, 64);
    torn.tensor.ndims = 0;
    let bad = write_epoch(
        &env.path().join("bad"),
        8,
        &[
            (1, in_progress(9), contents(1, 64)),
            (2, committed(10), torn),
            (3, committed(4), contents(3, 64)),
            (5, committed(13), contents(4, 64)),
            (6, committed(14), contents(6, 8192)),
        ],
    );
    let bad_arg = bad.display().to_string();
    let (code, out, err) = tp(&["inspect", &bad_arg, "--json"]);
    assert_eq!(code, 1, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    let slots = report[0]["slots"].as_array().expect("slots");
    let slot = |i: usize| &slots[i];
    let rejects = |i: usize| slot(i)["rejects"].to_string();
    assert_eq!(slot(0)["state"], "empty");
    assert_eq!(rejects(0), "[]");
    assert_eq!(slot(1)["state"], "in_progress");
    assert!(
        rejects(1).contains("in progress (seq 9 not committed)"),
        "{}",
        rejects(1)
    );
    assert!(
        rejects(2).contains("ndims 0 is outside 1..=8"),
        "{}",
        rejects(2)
    );
    assert!(
        rejects(3).contains("seq 4 belongs in slot 4, not 3"),
        "{}",
        rejects(3)
    );
    assert!(
        rejects(5).contains("payload slot 4 is not the header index 5"),
        "{}",
        rejects(5)
    );
    assert!(
        rejects(6).contains("8192 payload bytes exceed pool 1's stride 4096"),
        "{}",
        rejects(6)
    );

    // Text: refused slots are listed with the reason.
    let (code, out, _) = tp(&["inspect", &bad_arg]);
    assert_eq!(code, 1);
    assert!(
        out.contains("REJECT: in progress (seq 9 not committed)"),
        "{out}"
    );

    // Not a region at all: a problem, not a crash.
    let junk = env.write("junk.ring", &"x".repeat(200));
    let (code, out, _) = tp(&["inspect", &junk.display().to_string()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not TPOLSHM1"), "{out}");
    let (code, _, err) = tp(&["inspect", "/nonexistent/header.ring"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn gc_dry_run_lists_what_the_policy_removes_and_keeps_and_deletes_nothing() {
    let env = TestEnv::new();
    let settings = DriverSettings::shared_announce();
    let toml = settings.toml(&env).replace(
        "[policies]\n",
        "[policies]\nepoch_gc_keep = 2\nepoch_gc_min_age_ns = 0\n",
    );
    let config = env.write("driver.toml", &toml);
    let parsed = tensorpool::config::DriverConfig::load(&config, &tensorpool::config::NoEnv)
        .expect("the configuration is valid");
    let layout =
        tensorpool::shm::paths::CanonicalLayout::new(&parsed.shm.base_dir, &parsed.shm.namespace)
            .unwrap();
    for epoch in 1..=4 {
        std::fs::create_dir_all(layout.epoch_dir(STATIC_STREAM, epoch)).unwrap();
    }
    // Epoch 3 holds a sparse region (nothing written), epoch 4 a written one: each counts
    // what it allocates, as du does, not its length.
    let sparse = std::fs::File::create(layout.epoch_dir(STATIC_STREAM, 3).join("1.pool"))
        .expect("a region file");
    sparse.set_len(8 << 20).expect("a sparse 8 MiB file");
    std::fs::write(
        layout.epoch_dir(STATIC_STREAM, 4).join("1.pool"),
        vec![7u8; 1 << 20],
    )
    .expect("a written 1 MiB file");
    let (code, out, err) = tp(&[
        "gc",
        "--dry-run",
        "--config",
        &config.display().to_string(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).expect("JSON");
    let verdicts = &plan["epochs"];
    let by_epoch = |e: u64| {
        verdicts
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["epoch"] == e)
            .cloned()
            .unwrap_or_else(|| panic!("no verdict for epoch {e}: {out}"))
    };
    assert_eq!(by_epoch(4)["remove"], false);
    assert!(by_epoch(4)["reason"]
        .as_str()
        .unwrap()
        .contains("current epoch"));
    assert_eq!(by_epoch(3)["remove"], false);
    assert!(by_epoch(3)["reason"]
        .as_str()
        .unwrap()
        .contains("epoch_gc_keep"));
    assert_eq!(by_epoch(2)["remove"], true, "{out}");
    assert_eq!(by_epoch(1)["remove"], true, "{out}");
    for epoch in 1..=4 {
        assert!(
            layout.epoch_dir(STATIC_STREAM, epoch).is_dir(),
            "dry run deleted {epoch}"
        );
        let du = du_bytes(&layout.epoch_dir(STATIC_STREAM, epoch));
        assert_eq!(by_epoch(epoch)["bytes"], du, "epoch {epoch}: {out}");
    }
    let bytes = |e: u64| by_epoch(e)["bytes"].as_u64().expect("bytes");
    assert!(
        bytes(3) < 4 << 20,
        "the sparse region is not counted whole: {out}"
    );
    assert!(bytes(4) >= 1 << 20, "the written region is counted: {out}");
    assert_eq!(
        plan["total_bytes"],
        (1..=4).map(bytes).sum::<u64>(),
        "{out}"
    );
    assert_eq!(plan["removable_bytes"], bytes(1) + bytes(2), "{out}");
    assert_eq!(
        plan["namespace_dir"],
        layout.namespace_dir().display().to_string()
    );
    let (code, out, _) = tp(&["gc", "--dry-run", "--config", &config.display().to_string()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("2 of 4 epoch directories would be removed"),
        "{out}"
    );
    assert!(out.contains("footprint: "), "{out}");
    assert!(out.contains("stream 10000 epoch 4 (1.0 MiB)"), "{out}");
}
