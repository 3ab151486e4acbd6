//! Java toolchain for the interop tests (tests/sbe_java.rs, tests/java_examples.rs): finds
//! `java`/`javac` and the jars (sbe-tool, Agrona, the Aeron Java client), generates Java
//! codecs from `schemas/*.xml` with stock sbe-tool and compiles them with the test's Java
//! sources, once per test binary.
//!
//! The jars live in `../shared/java/lib` relative to the repository unless `TP_JAVA_LIB`
//! names another directory. Where the JDK or a jar is missing, [`JavaBuild::get`] says
//! why, and the tests print that they were skipped and why.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// `--add-opens` every run needs: the shared Agrona reaches `jdk.internal.misc.Unsafe`.
pub const ADD_OPENS: &str = "--add-opens=java.base/jdk.internal.misc=ALL-UNNAMED";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The jar directory: `TP_JAVA_LIB`, else `../shared/java/lib` beside the repository.
pub fn jar_dir() -> PathBuf {
    match std::env::var_os("TP_JAVA_LIB") {
        Some(dir) => PathBuf::from(dir),
        None => repo().join("../shared/java/lib"),
    }
}

/// Java codecs and test programs compiled into one class directory.
pub struct JavaBuild {
    /// Directory of the generated codec sources.
    pub codec_sources: PathBuf,
    /// Directory of the compiled classes (codecs and test programs).
    pub classes: PathBuf,
    /// The jar directory.
    pub jars: PathBuf,
}

static BUILD: OnceLock<Result<JavaBuild, String>> = OnceLock::new();

impl JavaBuild {
    /// The build of this test binary, made on first use from `sources` (Java files or
    /// directories of them, relative to the repository); `Err` says why Java is unavailable (skip), and a
    /// failing sbe-tool or javac panics (a real failure).
    pub fn get(sources: &[&str]) -> Result<&'static JavaBuild, String> {
        BUILD
            .get_or_init(|| Self::make(sources))
            .as_ref()
            .map_err(Clone::clone)
    }

    fn make(sources: &[&str]) -> Result<JavaBuild, String> {
        let jars = jar_dir();
        for jar in ["sbe-tool.jar", "agrona.jar", "aeron-client.jar"] {
            if !jars.join(jar).is_file() {
                return Err(format!(
                    "{} not found (set TP_JAVA_LIB to the directory holding sbe-tool.jar, agrona.jar and aeron-client.jar)",
                    jars.join(jar).display()
                ));
            }
        }
        for tool in ["java", "javac"] {
            match Command::new(tool).arg("-version").output() {
                Ok(out) if out.status.success() => {}
                _ => {
                    return Err(format!(
                        "`{tool}` is not runnable (scripts/setup.sh installs a JDK)"
                    ))
                }
            }
        }
        // One directory per test binary and process: binaries run in parallel.
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "java".into());
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("java-{binary}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let codec_sources = root.join("codecs");
        let classes = root.join("classes");
        std::fs::create_dir_all(&classes).expect("creating the Java build directory");
        remove_stale_builds(&root);

        run(Command::new("java")
            .arg(ADD_OPENS)
            .arg("-cp")
            .arg(classpath(&jars, &["sbe-tool.jar", "agrona.jar"], None))
            .arg(format!("-Dsbe.output.dir={}", codec_sources.display()))
            .arg("-Dsbe.target.language=Java")
            .arg("-Dsbe.validation.stop.on.error=true")
            .arg("uk.co.real_logic.sbe.SbeTool")
            .arg(repo().join("schemas/driver.xml"))
            .arg(repo().join("schemas/control.xml")));

        let mut javac = Command::new("javac");
        javac
            .args(["-nowarn", "-d"])
            .arg(&classes)
            .arg("-cp")
            .arg(classpath(&jars, &["agrona.jar", "aeron-client.jar"], None));
        javac.args(java_files(&codec_sources));
        for source in sources {
            let path = repo().join(source);
            if path.is_dir() {
                javac.args(java_files(&path));
            } else {
                javac.arg(path);
            }
        }
        run(&mut javac);
        Ok(JavaBuild {
            codec_sources,
            classes,
            jars,
        })
    }

    /// A `java` command running `main` with the classes, Agrona and the Aeron client.
    pub fn java(&self, main: &str) -> Command {
        let mut cmd = Command::new("java");
        cmd.args(self.java_args(main));
        cmd
    }

    /// The arguments of `java` that run `main` (for spawning it some other way).
    pub fn java_args(&self, main: &str) -> Vec<String> {
        vec![
            ADD_OPENS.to_string(),
            "-cp".to_string(),
            classpath(
                &self.jars,
                &["agrona.jar", "aeron-client.jar"],
                Some(&self.classes),
            ),
            main.to_string(),
        ]
    }
}

/// Removes build directories of earlier runs whose process is gone.
fn remove_stale_builds(own: &Path) {
    let Some(parent) = own.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if name.starts_with("java-")
            && entry.path() != own
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn classpath(jars: &Path, names: &[&str], first: Option<&Path>) -> String {
    let mut parts: Vec<String> = first.iter().map(|p| p.display().to_string()).collect();
    parts.extend(names.iter().map(|n| jars.join(n).display().to_string()));
    parts.join(":")
}

fn java_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).unwrap_or_else(|e| panic!("reading {}: {e}", d.display()))
        {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "java") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs a command that must succeed; panics with its output otherwise.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Prints why a Java test is skipped: the test passes because the machine cannot run it,
/// not because anything was checked. With `TP_JAVA_REQUIRED=1` (a machine that must run
/// them) a skip is a failure instead.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os("TP_JAVA_REQUIRED").is_some_and(|v| v == "1") {
        panic!("{test} cannot run and TP_JAVA_REQUIRED=1: {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
}
