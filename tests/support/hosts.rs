//! The hosts of the SHM driver agent that the protocol tests run against ("three hosts,
//! one agent": a host adds nothing to the rules): `tp-driver`'s `run_until` on a thread of
//! the test process with its embedded media driver, and a stock `aeronmd` (built by
//! `scripts/build-aeronmd.sh`) with `libtensorpool_aeronmd.so`, in the SHARED or DEDICATED
//! threading mode. [`for_each_host!`] turns a test function taking a [`Host`] into one
//! `#[test]` per host.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::Duration;

use super::{DriverSettings, InThreadDriver, ProcessDriver, TestEnv, DEADLINE};

/// The entry point the plugin exports, named in `AERON_NAME_RESOLVER_SUPPLIER`.
pub const SUPPLIER: &str = "tensorpool_aeronmd_name_resolver_supplier";
/// What the plugin logs once its streams are up.
pub const PLUGIN_READY: &str = "tensorpool SHM driver running inside the media driver";
/// What the plugin logs after an accepted shutdown request.
pub const PLUGIN_SHUT_DOWN: &str = "tensorpool SHM driver shut down on request";
/// aeronmd's exit status after SIGTERM: its handler stores the signal number as the status.
pub const AERONMD_SIGTERM_STATUS: i32 = 15;

/// Aeron's threading modes an aeronmd host runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threading {
    /// One thread runs conductor, sender, receiver and the native-resource agent (and so
    /// the plugin) in one duty cycle.
    Shared,
    /// Each agent on a thread of its own; the plugin runs on the native-resource agent's.
    Dedicated,
    /// Sender and receiver share a thread; conductor and native-resource agent (with the
    /// plugin) have one each.
    SharedNetwork,
}

impl Threading {
    /// The value of `AERON_THREADING_MODE`.
    pub fn env_value(self) -> &'static str {
        match self {
            Self::Shared => "SHARED",
            Self::Dedicated => "DEDICATED",
            Self::SharedNetwork => "SHARED_NETWORK",
        }
    }
}

/// Who drives the SHM driver agent in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `run_until` on a thread of the test process, embedded media driver.
    InThread,
    /// A stock aeronmd process with the plugin.
    Aeronmd(Threading),
}

/// Defines, for each test function named, one `#[test]` per host in the modules
/// `in_thread`, `aeronmd_shared` and `aeronmd_dedicated`; each function takes a [`Host`].
#[macro_export]
macro_rules! for_each_host {
    ($($test:ident),+ $(,)?) => {
        mod in_thread {
            $(#[test] fn $test() { super::$test($crate::support::hosts::Host::InThread) })+
        }
        mod aeronmd_shared {
            $(#[test] fn $test() {
                super::$test($crate::support::hosts::Host::Aeronmd(
                    $crate::support::hosts::Threading::Shared,
                ))
            })+
        }
        mod aeronmd_dedicated {
            $(#[test] fn $test() {
                super::$test($crate::support::hosts::Host::Aeronmd(
                    $crate::support::hosts::Threading::Dedicated,
                ))
            })+
        }
    };
}

/// The stock media driver and the plugin, built once per test process.
#[derive(Debug)]
pub struct PluginArtifacts {
    /// Aeron's `aeronmd`, dynamically linked.
    pub aeronmd: PathBuf,
    /// `libtensorpool_aeronmd.so`.
    pub plugin: PathBuf,
}

/// Builds (or finds up to date) aeronmd and the plugin; the first caller in the process
/// builds, the others wait for it.
pub fn plugin_artifacts() -> &'static PluginArtifacts {
    static ARTIFACTS: OnceLock<PluginArtifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        // target/<profile>/deps/<test binary>: build the plugin in the same profile.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in target/<profile>/deps");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(root)
            .args(["build", "--locked", "-p", "tensorpool-aeronmd"]);
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            cargo.arg("--release");
        }
        let built = cargo.output().expect("running cargo build");
        assert!(
            built.status.success(),
            "building the plugin failed:\n{}",
            String::from_utf8_lossy(&built.stderr)
        );
        let script = Command::new(root.join("scripts/build-aeronmd.sh"))
            .current_dir(root)
            .output()
            .expect("running scripts/build-aeronmd.sh");
        assert!(
            script.status.success(),
            "scripts/build-aeronmd.sh failed:\n{}",
            String::from_utf8_lossy(&script.stderr)
        );
        let aeronmd = String::from_utf8_lossy(&script.stdout)
            .lines()
            .last()
            .map(PathBuf::from)
            .expect("scripts/build-aeronmd.sh prints the aeronmd path");
        let plugin = profile_dir.join("libtensorpool_aeronmd.so");
        assert!(aeronmd.is_file(), "no aeronmd at {}", aeronmd.display());
        assert!(plugin.is_file(), "no plugin at {}", plugin.display());
        PluginArtifacts { aeronmd, plugin }
    })
}

/// A stock aeronmd with the plugin, as a child process of the test.
pub struct AeronmdDriver {
    process: ProcessDriver,
    aeron_dir: PathBuf,
}

impl AeronmdDriver {
    /// Starts aeronmd with the plugin configured by `settings`, and waits until the plugin
    /// serves.
    pub fn start(env: &TestEnv, settings: &DriverSettings, threading: Threading) -> Self {
        let config = env.write("driver.toml", &settings.toml(env));
        let mut process = Self::spawn(env, "aeronmd", &config, threading, &[]);
        process.wait_running(DEADLINE);
        Self {
            process,
            aeron_dir: env.aeron_dir(),
        }
    }

    /// Starts aeronmd in `env`'s Aeron directory with the plugin and `config` (plus `envs`)
    /// without waiting; `label` names its output files.
    pub fn spawn(
        env: &TestEnv,
        label: &str,
        config: &Path,
        threading: Threading,
        envs: &[(&str, &str)],
    ) -> ProcessDriver {
        let artifacts = plugin_artifacts();
        let aeron_dir = env.aeron_dir();
        let plugin = artifacts.plugin.to_str().expect("a UTF-8 plugin path");
        let config = config.to_str().expect("a UTF-8 config path");
        let mut all = vec![
            ("AERON_DIR", aeron_dir.to_str().expect("a UTF-8 aeron dir")),
            ("AERON_DRIVER_DYNAMIC_LIBRARIES", plugin),
            ("AERON_NAME_RESOLVER_SUPPLIER", SUPPLIER),
            ("AERON_THREADING_MODE", threading.env_value()),
            // Aeron's 64 MiB default would make every test's IPC streams huge.
            ("AERON_IPC_TERM_BUFFER_LENGTH", "65536"),
            ("TENSORPOOL_DRIVER_CONFIG", config),
        ];
        all.extend_from_slice(envs);
        ProcessDriver::spawn_program(&artifacts.aeronmd, PLUGIN_READY, env, label, &[], &all)
    }

    /// The host's Aeron directory.
    pub fn aeron_dir(&self) -> &Path {
        &self.aeron_dir
    }

    /// The process.
    pub fn process(&mut self) -> &mut ProcessDriver {
        &mut self.process
    }

    /// SIGTERM, then waits for aeronmd to exit; returns its status.
    pub fn terminate(mut self) -> ExitStatus {
        self.process.signal(nix::sys::signal::Signal::SIGTERM);
        self.process.expect_exit(DEADLINE)
    }
}

/// The SHM driver of a test, on one of the [`Host`]s.
pub enum TestDriver {
    /// `run_until` on a thread.
    InThread(InThreadDriver),
    /// aeronmd with the plugin.
    Aeronmd(AeronmdDriver),
}

impl TestDriver {
    /// Starts a driver for `settings` in `env` on `host`, and waits until it serves.
    pub fn start(host: Host, env: &TestEnv, settings: &DriverSettings) -> Self {
        match host {
            Host::InThread => Self::InThread(InThreadDriver::start(env, settings)),
            Host::Aeronmd(threading) => {
                Self::Aeronmd(AeronmdDriver::start(env, settings, threading))
            }
        }
    }

    /// The Aeron directory clients connect to.
    pub fn aeron_dir(&self) -> &Path {
        match self {
            Self::InThread(driver) => driver.aeron_dir(),
            Self::Aeronmd(driver) => driver.aeron_dir(),
        }
    }

    /// Stops the driver as an operator would (the in-thread stop flag, or SIGTERM) and
    /// asserts it stopped cleanly.
    pub fn stop(self) {
        match self {
            Self::InThread(driver) => driver.stop().expect("run_until returns Ok after stop"),
            Self::Aeronmd(driver) => {
                let status = driver.terminate();
                assert_eq!(status.code(), Some(AERONMD_SIGTERM_STATUS), "{status}");
            }
        }
    }

    /// Waits for the SHM driver to end after an accepted shutdown request: `run_until`
    /// returns Ok; inside aeronmd the plugin stops and the media driver keeps serving.
    pub fn wait_shut_down(self, timeout: Duration) {
        match self {
            Self::InThread(driver) => driver
                .wait_exit(timeout)
                .expect("run_until returns Ok after an accepted shutdown"),
            Self::Aeronmd(mut driver) => {
                let process = driver.process();
                super::wait_until("the plugin to shut down", timeout, || {
                    process.stderr().contains(PLUGIN_SHUT_DOWN).then_some(())
                });
                assert!(
                    process.wait(Duration::ZERO).is_none(),
                    "aeronmd keeps running after the plugin shut down; stderr:\n{}",
                    process.stderr()
                );
            }
        }
    }
}

/// The driver processes the system tests run: the `tp-driver` binary, or aeronmd with the
/// plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessHost {
    /// `tp-driver --config ...` with its embedded media driver.
    TpDriver,
    /// A stock aeronmd with the plugin.
    Aeronmd(Threading),
}

impl ProcessHost {
    /// Starts the driver process on `config` without waiting; `label` names its output
    /// files. An aeronmd replaces the files of a previous one in the directory at once
    /// (`AERON_DIR_DELETE_ON_START`, as a service unit would set it); tp-driver applies its
    /// own liveness rule.
    pub fn spawn(self, env: &TestEnv, label: &str, config: &Path) -> ProcessDriver {
        match self {
            Self::TpDriver => ProcessDriver::start(env, label, config, &[]),
            Self::Aeronmd(threading) => AeronmdDriver::spawn(
                env,
                label,
                config,
                threading,
                &[("AERON_DIR_DELETE_ON_START", "true")],
            ),
        }
    }

    /// Asserts `status` is what the process exits with after SIGTERM: 0 for tp-driver, the
    /// signal number for aeronmd (its own convention).
    pub fn assert_terminated(self, status: ExitStatus, stderr: &str) {
        let expected = match self {
            Self::TpDriver => 0,
            Self::Aeronmd(_) => AERONMD_SIGTERM_STATUS,
        };
        assert_eq!(
            status.code(),
            Some(expected),
            "exit status {status}; stderr:\n{stderr}"
        );
    }
}

/// As [`for_each_host!`] for process tests taking a [`ProcessHost`]: modules `tp_driver`,
/// `aeronmd_shared` and `aeronmd_dedicated`.
#[macro_export]
macro_rules! for_each_process_host {
    ($($test:ident),+ $(,)?) => {
        mod tp_driver {
            $(#[test] fn $test() {
                super::$test($crate::support::hosts::ProcessHost::TpDriver)
            })+
        }
        mod aeronmd_shared {
            $(#[test] fn $test() {
                super::$test($crate::support::hosts::ProcessHost::Aeronmd(
                    $crate::support::hosts::Threading::Shared,
                ))
            })+
        }
        mod aeronmd_dedicated {
            $(#[test] fn $test() {
                super::$test($crate::support::hosts::ProcessHost::Aeronmd(
                    $crate::support::hosts::Threading::Dedicated,
                ))
            })+
        }
    };
}
