//! A producer attach under load (Driver Model §4.2, §4.4, §4.8, §6): the example
//! producer at its defaults against a stream whose profile needs seconds to prefault
//! (512 slots of 4 MiB, about 2 GiB per epoch), with CPU and disk hogs running beside
//! it. Before the fix the driver prefaulted on its duty cycle for longer than the
//! client's 1 s attach wait, the late grant was dropped, and the client's own orphaned
//! lease refused every retry ("client_id already attached", then "producer already
//! attached") until the run failed with 0 frames while the driver burned through
//! epochs. Now the attach is answered at once, the lease runs a full term from the
//! response, and exactly one epoch is made for the producer.

#[path = "support/mod.rs"]
mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::*;

/// Processes that keep both cores and the disk busy for as long as they live: two
/// spinning shells and a writer that keeps syncing a file. Killed by process group.
struct Contention {
    children: Vec<Child>,
}

impl Contention {
    fn start(scratch: &Path) -> Self {
        let file = scratch.join("contention.bin");
        let writer = format!(
            "while :; do dd if=/dev/zero of='{}' bs=1M count=64 conv=fsync 2>/dev/null; done",
            file.display()
        );
        let scripts = [
            "while :; do :; done",
            "while :; do :; done",
            writer.as_str(),
        ];
        let children = scripts
            .iter()
            .map(|script| {
                Command::new("sh")
                    .args(["-c", script])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .expect("spawning a contention process")
            })
            .collect();
        Self { children }
    }
}

impl Drop for Contention {
    fn drop(&mut self) {
        for child in &mut self.children {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// The test configuration with prefault on and the profile: 512 slots, a 4 KiB
/// and a 4 MiB pool.
fn large_prefaulted_profile(env: &TestEnv, settings: &DriverSettings) -> String {
    let toml = settings
        .toml(env)
        .replace("prefault_shm = false", "prefault_shm = true");
    let start = toml.find("[profiles.small]").expect("profile section");
    let end = toml.find("[streams.fixed]").expect("streams section");
    let profile = "[profiles.small]\nheader_nslots = 512\npayload_pools = [\
                   { pool_id = 1, stride_bytes = 4096 }, \
                   { pool_id = 2, stride_bytes = 4194304 }]\n\n";
    format!("{}{profile}{}", &toml[..start], &toml[end..])
}

#[test]
fn a_producer_attaches_at_once_to_a_slow_to_prefault_stream_under_cpu_and_io_load() {
    let env = TestEnv::new();
    let settings = DriverSettings {
        instance_id: "tp-under-load".into(),
        ..DriverSettings::shared_announce()
    };
    let config = env.write("driver.toml", &large_prefaulted_profile(&env, &settings));
    let mut driver = ProcessDriver::start(&env, "driver", &config, &[]);
    driver.wait_running(DEADLINE);
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("scratch dir");
    let contention = Contention::start(scratch.path());

    let aeron_dir = env.aeron_dir().display().to_string();
    let shm_dir = env.shm_dir().display().to_string();
    let stream = STATIC_STREAM.to_string();
    let args = [
        "--aeron-dir",
        aeron_dir.as_str(),
        "--channel",
        CHANNEL,
        "--stream-id",
        stream.as_str(),
        "--allowed-base-dir",
        shm_dir.as_str(),
        "--frames",
        "200",
        "--payload-bytes",
        "1048576",
        "--rate",
        "200",
        "--timeout-s",
        "60",
    ];
    let mut producer = ProcessDriver::spawn_program(
        &example_program("producer"),
        "",
        &env,
        "producer",
        &args,
        &[],
    );
    let status = producer
        .wait(Duration::from_secs(120))
        .unwrap_or_else(|| panic!("the producer still runs; stderr:\n{}", producer.stderr()));
    drop(contention);
    let log = driver.stderr();
    assert!(
        status.success(),
        "producer exited with {status}; stderr:\n{}\ndriver:\n{log}",
        producer.stderr()
    );
    assert!(
        producer.stdout().contains("\"frames_sent\":200"),
        "{}",
        producer.stdout()
    );
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("attach refused"))
        .collect();
    assert!(
        refusals.is_empty(),
        "no attach of the producer was refused: {refusals:#?}"
    );
    let producer_grants = log
        .lines()
        .filter(|l| l.contains("attach ok") && l.contains("role=PRODUCER"))
        .count();
    assert_eq!(producer_grants, 1, "one lease for one producer:\n{log}");
    // Epoch 1 at start-up, epoch 2 for the producer, epoch 3 after its detach.
    let epochs: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("epoch started"))
        .collect();
    assert!(epochs.len() <= 3, "no epoch was burnt: {epochs:#?}");
    assert!(
        !log.contains("lease ended") || !log.contains("reason=EXPIRED"),
        "no lease expired:\n{log}"
    );
}
