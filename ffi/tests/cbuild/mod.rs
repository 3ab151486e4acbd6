//! Helpers of the C ABI tests: the artifacts they need (libtensorpool, tp-driver, the
//! Rust examples), C and C++ programs compiled with the system compiler against the
//! checked-in header, and child processes killed by pid when their handle drops.
//!
//! Include it next to the workspace's test support:
//!
//! ```ignore
//! #[path = "../../tests/support/mod.rs"]
//! mod support;
//! mod cbuild;
//! ```

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{TestEnv, CHANNEL, CONTROL_STREAM, DESCRIPTOR_STREAM, QOS_STREAM};

/// Keepalive the tests' driver and clients use (generous for a loaded 2-core machine).
pub const KEEPALIVE_MS: u64 = 200;

/// Where the built artifacts are: `target/<profile>`.
pub struct Artifacts {
    profile_dir: PathBuf,
}

impl Artifacts {
    /// Directory holding libtensorpool.so and libtensorpool.a.
    pub fn lib_dir(&self) -> &Path {
        &self.profile_dir
    }

    /// A Rust example of the `tensorpool` package.
    pub fn rust_example(&self, name: &str) -> PathBuf {
        self.profile_dir.join("examples").join(name)
    }
}

/// The crate's directory (ffi/).
pub fn ffi_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds (once per test process) what the tests run besides themselves: `cargo test`
/// of this package alone builds neither the C library nor `tp-driver` and the Rust
/// examples of the `tensorpool` package. When everything is current this takes a
/// fraction of a second.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test executable's path");
        // target/<profile>/deps/<test>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lies in target/<profile>/deps")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_string(),
            Some(name) => name.to_string(),
            None => panic!("no profile directory in {}", profile_dir.display()),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let output = Command::new(cargo)
            .current_dir(ffi_dir().parent().expect("ffi/ lies in the workspace"))
            .args(["build", "--locked", "--profile", &profile, "--target-dir"])
            .arg(target_dir)
            .args([
                "-p",
                "tensorpool",
                "-p",
                "tensorpool-ffi",
                "--lib",
                "--bin",
                "tp-driver",
            ])
            .args(["--example", "producer", "--example", "consumer"])
            .output()
            .expect("running cargo build");
        assert!(
            output.status.success(),
            "cargo build of libtensorpool, tp-driver and the examples failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        Artifacts { profile_dir }
    })
}

/// Language of a test program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// C11 with `cc`.
    C,
    /// C++17 with `c++`.
    Cxx,
}

/// How a program is linked and instrumented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Against libtensorpool.so (found through an rpath).
    Shared,
    /// Built with `-fsanitize=address,undefined` against libtensorpool.so.
    Sanitized,
}

/// Compiles `sources` (paths relative to ffi/) into a program named `name`, once per
/// test process, with warnings as errors; returns its path.
pub fn compile(name: &str, lang: Lang, flavor: Flavor, sources: &[&str]) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let artifacts = artifacts();
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let key = format!("{name}-{flavor:?}");
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(&key) {
        return path.clone();
    }
    let out_dir = artifacts.lib_dir().join("ffi-tests");
    std::fs::create_dir_all(&out_dir).expect("creating the C test build directory");
    let out = out_dir.join(&key);
    let (compiler, std) = match lang {
        Lang::C => ("cc", "-std=c11"),
        Lang::Cxx => ("c++", "-std=c++17"),
    };
    let mut command = Command::new(compiler);
    command
        .current_dir(ffi_dir())
        .args([std, "-Wall", "-Wextra", "-Werror", "-g"])
        .args(["-Iinclude", "-Iexamples"])
        .args(sources)
        .arg("-L")
        .arg(artifacts.lib_dir())
        .arg(format!("-Wl,-rpath,{}", artifacts.lib_dir().display()))
        .arg("-ltensorpool")
        .arg("-o")
        .arg(&out);
    if flavor == Flavor::Sanitized {
        command.args([
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
        ]);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    assert!(
        output.status.success(),
        "{compiler} {sources:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    built
        .get_or_insert_with(HashMap::new)
        .insert(key, out.clone());
    out
}

/// The client flags every example takes for the driver of `env` (support's settings,
/// announces on the control stream, [`KEEPALIVE_MS`]).
pub fn client_args(env: &TestEnv) -> Vec<String> {
    [
        ("--aeron-dir", env.aeron_dir().display().to_string()),
        ("--channel", CHANNEL.to_string()),
        ("--control-stream-id", CONTROL_STREAM.to_string()),
        ("--announce-stream-id", CONTROL_STREAM.to_string()),
        ("--descriptor-stream-id", DESCRIPTOR_STREAM.to_string()),
        ("--qos-stream-id", QOS_STREAM.to_string()),
        ("--allowed-base-dir", env.shm_dir().display().to_string()),
        ("--keepalive-ms", KEEPALIVE_MS.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

/// Driver environment overrides matching [`KEEPALIVE_MS`].
pub fn driver_envs() -> Vec<(&'static str, String)> {
    vec![
        (
            "POLICIES_LEASE_KEEPALIVE_INTERVAL_MS",
            KEEPALIVE_MS.to_string(),
        ),
        ("POLICIES_LEASE_EXPIRY_GRACE_INTERVALS", "5".to_string()),
    ]
}

/// A child process writing to files in the test's environment; killed (by pid) when
/// dropped while still running.
pub struct Proc {
    child: Child,
    name: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    /// Starts `program` with `args`; `name` names its output files.
    pub fn spawn(env: &TestEnv, name: &str, program: &Path, args: &[String]) -> Self {
        Self::spawn_with_env(env, name, program, args, &[])
    }

    /// Starts `program` with `args` and extra environment variables.
    pub fn spawn_with_env(
        env: &TestEnv,
        name: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
    ) -> Self {
        let stdout = env.path().join(format!("{name}.stdout"));
        let stderr = env.path().join(format!("{name}.stderr"));
        let file = |path: &Path| std::fs::File::create(path).expect("creating an output file");
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(file(&stdout))
            .stderr(file(&stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        Self {
            child,
            name: name.to_string(),
            stdout,
            stderr,
        }
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits up to `timeout` for it to exit; panics (with its output) if it does not.
    pub fn finish(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling a child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still ran after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.name,
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for a stdout line containing `text`; panics if none comes.
    pub fn wait_for_line(&mut self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stdout().lines().find(|l| l.contains(text)) {
                return line.to_string();
            }
            let exited = self.child.try_wait().expect("polling a child");
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "{} wrote no line with {text:?} (exit: {exited:?})\nstdout:\n{}\nstderr:\n{}",
                self.name,
                self.stdout(),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.stdout(),
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's pid only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
