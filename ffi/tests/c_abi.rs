//! The C ABI as a C program sees it: misuse gives the documented codes (ffi/tests/c/
//! misuse.c, through a real tp-driver), the shared library exports only `tp_*` symbols
//! (every function the header declares, nothing else), and the C programs run clean under
//! AddressSanitizer and UndefinedBehaviorSanitizer.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/system.rs"]
mod system;

mod cbuild;

use cbuild::{client_args, compile, driver_envs, Flavor, Lang, Proc};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;
use support::{DriverSettings, ProcessDriver, TestEnv, DEADLINE};
use system::JsonLine;

const RUN_TIMEOUT: Duration = Duration::from_secs(40);

fn start_driver(env: &TestEnv, instance: &str) -> ProcessDriver {
    let settings = DriverSettings {
        instance_id: instance.into(),
        ..DriverSettings::shared_announce()
    };
    let config = env.write("driver.toml", &settings.toml(env));
    let envs = driver_envs();
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut driver = ProcessDriver::start(env, "driver", &config, &envs);
    driver.wait_running(DEADLINE);
    driver
}

/// Sanitizer settings: stop at the first report, and fail the exit status.
const SANITIZER_ENV: [(&str, &str); 2] = [
    (
        "ASAN_OPTIONS",
        "abort_on_error=0:halt_on_error=1:exitcode=86",
    ),
    (
        "UBSAN_OPTIONS",
        "halt_on_error=1:print_stacktrace=1:exitcode=87",
    ),
];

fn run_misuse(flavor: Flavor) {
    let env = TestEnv::new();
    let _driver = start_driver(&env, &format!("tp-ffi-misuse-{flavor:?}"));
    let program = compile("misuse", Lang::C, flavor, &["tests/c/misuse.c"]);
    let mut misuse =
        Proc::spawn_with_env(&env, "misuse", &program, &client_args(&env), &SANITIZER_ENV);
    let status = misuse.finish(RUN_TIMEOUT);
    let out = misuse.stdout();
    assert!(status.success(), "{}", misuse.describe());
    assert!(
        out.contains(" checks, 0 failed") && !out.contains("FAILED"),
        "{}",
        misuse.describe()
    );
    // Every check ran, the ones needing a producer and a consumer included.
    let checks: u32 = out
        .split("misuse: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        checks >= 80,
        "only {checks} checks ran: {}",
        misuse.describe()
    );
    assert_no_sanitizer_report(&misuse);
}

fn assert_no_sanitizer_report(process: &Proc) {
    let stderr = process.stderr();
    for marker in ["AddressSanitizer", "LeakSanitizer", "runtime error:"] {
        assert!(
            !stderr.contains(marker),
            "{marker} report: {}",
            process.describe()
        );
    }
}

#[test]
fn qos_stamps_and_consumer_state_work_from_c() {
    let env = TestEnv::new();
    let _driver = start_driver(&env, "tp-ffi-qos-stamps");
    let program = compile(
        "qos_stamps",
        Lang::C,
        Flavor::Sanitized,
        &["tests/c/qos_stamps.c"],
    );
    let mut run = Proc::spawn_with_env(
        &env,
        "qos_stamps",
        &program,
        &client_args(&env),
        &SANITIZER_ENV,
    );
    let status = run.finish(RUN_TIMEOUT);
    assert!(status.success(), "{}", run.describe());
    let out = run.stdout();
    assert!(
        out.contains(" checks, 0 failed") && !out.contains("FAILED"),
        "{}",
        run.describe()
    );
    assert_no_sanitizer_report(&run);
}

#[test]
fn misuse_returns_the_documented_codes() {
    run_misuse(Flavor::Shared);
}

#[test]
fn misuse_runs_clean_under_address_and_undefined_sanitizers() {
    run_misuse(Flavor::Sanitized);
}

#[test]
fn sanitized_c_examples_move_verified_frames_without_reports() {
    let env = TestEnv::new();
    let _driver = start_driver(&env, "tp-ffi-asan-pair");
    let producer = compile(
        "producer",
        Lang::C,
        Flavor::Sanitized,
        &["examples/producer.c"],
    );
    let consumer = compile(
        "consumer",
        Lang::C,
        Flavor::Sanitized,
        &["examples/consumer.c"],
    );
    let mut consumer_args = client_args(&env);
    consumer_args.extend(["--frames", "100", "--verify", "--timeout-s", "30"].map(String::from));
    let mut consumer =
        Proc::spawn_with_env(&env, "consumer", &consumer, &consumer_args, &SANITIZER_ENV);
    let mut producer_args = client_args(&env);
    producer_args.extend(
        [
            "--frames",
            "600",
            "--payload-bytes",
            "4096",
            "--rate",
            "500",
            "--timeout-s",
            "30",
        ]
        .map(String::from),
    );
    let mut producer =
        Proc::spawn_with_env(&env, "producer", &producer, &producer_args, &SANITIZER_ENV);
    let producer_status = producer.finish(RUN_TIMEOUT);
    let consumer_status = consumer.finish(RUN_TIMEOUT);
    assert!(producer_status.success(), "{}", producer.describe());
    assert!(consumer_status.success(), "{}", consumer.describe());
    let received = consumer
        .stdout()
        .lines()
        .find_map(JsonLine::parse)
        .unwrap_or_else(|| panic!("no summary: {}", consumer.describe()));
    assert!(received.u64("frames_verified") >= 100, "{received}");
    assert_eq!(received.u64("verify_failures"), 0, "{received}");
    assert_no_sanitizer_report(&producer);
    assert_no_sanitizer_report(&consumer);
}

#[test]
fn shared_library_exports_exactly_the_header_functions() {
    let lib = cbuild::artifacts().lib_dir().join("libtensorpool.so");
    let output = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("running nm (binutils)");
    assert!(output.status.success(), "nm {}", lib.display());
    let exported: BTreeSet<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2))
        .map(str::to_string)
        .collect();
    let header = std::fs::read_to_string(cbuild::ffi_dir().join("include/tensorpool.h"))
        .expect("reading tensorpool.h");
    // Function declarations: `<type> tp_name(` at the start of a line.
    let declared: BTreeSet<String> = header
        .lines()
        .filter(|line| !line.starts_with(' ') && !line.starts_with("typedef"))
        .filter_map(|line| {
            let name = line.split('(').next()?.split_whitespace().last()?;
            let name = name.trim_start_matches('*');
            (line.contains('(') && name.starts_with("tp_")).then(|| name.to_string())
        })
        .collect();
    let foreign: Vec<&String> = exported.iter().filter(|s| !s.starts_with("tp_")).collect();
    assert!(foreign.is_empty(), "symbols other than tp_*: {foreign:?}");
    assert_eq!(
        exported, declared,
        "exported symbols vs the header's functions"
    );
    assert!(declared.len() >= 40, "{declared:?}");
}

#[test]
fn cpp_wrapper_throws_errors_carrying_status_and_message() {
    let env = TestEnv::new();
    let program = compile(
        "wrapper",
        Lang::Cxx,
        Flavor::Sanitized,
        &["tests/c/wrapper.cpp"],
    );
    let mut wrapper = Proc::spawn_with_env(&env, "wrapper", &program, &[], &SANITIZER_ENV);
    let status = wrapper.finish(RUN_TIMEOUT);
    assert!(status.success(), "{}", wrapper.describe());
    assert!(
        wrapper.stdout().contains("wrapper: 0 failed"),
        "{}",
        wrapper.describe()
    );
    assert_no_sanitizer_report(&wrapper);
}

/// `scripts/install-c.sh` into `prefix` (dev profile: already built by the tests).
fn install(prefix: &std::path::Path) {
    let workspace = cbuild::ffi_dir()
        .parent()
        .expect("ffi/ lies in the workspace");
    let output = Command::new("bash")
        .arg(workspace.join("scripts/install-c.sh"))
        .args(["--profile", "dev"])
        .arg(prefix)
        .env(
            "CARGO_TARGET_DIR",
            cbuild::artifacts().lib_dir().parent().expect("target dir"),
        )
        .output()
        .expect("running scripts/install-c.sh");
    assert!(
        output.status.success(),
        "install-c.sh failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn installed_library_links_through_pkg_config_shared_and_static() {
    let env = TestEnv::new();
    let prefix = env.path().join("prefix");
    install(&prefix);
    let pkg_config = |args: &[&str]| {
        let output = Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
            .args(args)
            .arg("tensorpool")
            .output()
            .expect("running pkg-config");
        assert!(output.status.success(), "pkg-config {args:?}");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let source = cbuild::ffi_dir().join("tests/c/misuse.c");
    let examples = format!("-I{}", cbuild::ffi_dir().join("examples").display());
    let shared = env.path().join("misuse-shared");
    let static_ = env.path().join("misuse-static");
    let compile = |out: &std::path::Path, link: &[String]| {
        let output = Command::new("cc")
            .arg("-std=c11")
            .args(pkg_config(&["--cflags"]))
            .arg(&examples)
            .arg(&source)
            .args(link)
            .arg("-o")
            .arg(out)
            .output()
            .expect("running cc");
        assert!(
            output.status.success(),
            "cc with {link:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    compile(&shared, &pkg_config(&["--libs"]));
    // Static: the archive itself, then what it needs (Libs.private).
    let mut link = vec![prefix.join("lib/libtensorpool.a").display().to_string()];
    link.extend(
        pkg_config(&["--static", "--libs"])
            .into_iter()
            .filter(|flag| flag != "-ltensorpool"),
    );
    compile(&static_, &link);
    // Without a driver the program runs the checks that need none (config, tensors,
    // versions) through the installed library.
    for program in [&shared, &static_] {
        let output = Command::new(program).output().expect("running the program");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(" checks, 0 failed"),
            "{}: {stdout}",
            program.display()
        );
    }
    let ldd = Command::new("ldd")
        .arg(&static_)
        .output()
        .expect("running ldd");
    assert!(
        !String::from_utf8_lossy(&ldd.stdout).contains("libtensorpool"),
        "the static program does not load libtensorpool.so"
    );
}
