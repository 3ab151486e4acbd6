//! The `tp` operator tool against real things: a `tp-driver` process with the example
//! producer and two example consumers (`status --once --json`, the live view in tmux,
//! `shutdown` with a wrong and a right token), hand-made region files with torn and
//! in-progress slots (`inspect`), and epoch directories (`gc --dry-run`).

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
    assert_eq!(counters["active producer leases"], 1, "{out}");
    assert_eq!(counters["active consumer leases"], 2, "{out}");
    assert_eq!(status["leases_not_published"], 0);

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
    // No media driver at all: exit 4.
    let (code, _, err) = tp(&["shutdown", "--aeron-dir", &dir, "--token", "t"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no media driver"), "{err}");

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
    let pump = std::thread::scope(|scope| {
        let handle = scope.spawn(|| {
            tp(&[
                "shutdown",
                "--aeron-dir",
                &dir,
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
    let (code, out, err) = tp(&[
        "gc",
        "--dry-run",
        "--config",
        &config.display().to_string(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let verdicts: Value = serde_json::from_str(&out).expect("JSON");
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
    }
    let (code, out, _) = tp(&["gc", "--dry-run", "--config", &config.display().to_string()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("2 of 4 epoch directories would be removed"),
        "{out}"
    );
}
