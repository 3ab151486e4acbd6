//! Java toolchain for the interop tests (tests/sbe_java.rs, tests/java_examples.rs).
//!
//! The examples of `java/` are built as Java users build them, with Maven
//! (`mvn -f java/pom.xml package`, [`JavaBuild::examples`]): once per test binary, under a
//! file lock (test binaries and scripts/java-example.sh share the build), with the local
//! repository in `target/m2`, online the first time and offline after that. Where `mvn`
//! is missing they are compiled with plain `javac` against the jars instead, as
//! [`JavaBuild::get`] compiles the tests' own Java sources: codecs generated from
//! `schemas/*.xml` with stock sbe-tool, compiled with the sources given.
//!
//! The jars live in `../shared/java/lib` relative to the repository unless `TP_JAVA_LIB`
//! names another directory. Where the JDK (or, without Maven, a jar) is missing, the
//! builders say why, and the tests print that they were skipped and why.

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

/// Java codecs and programs, compiled, with the class path that runs them.
pub struct JavaBuild {
    /// Directory of the generated codec sources.
    pub codec_sources: PathBuf,
    /// Directory of the compiled classes (codecs and programs), or the examples' jar.
    pub classes: PathBuf,
    /// The jar directory (the fallback jars; sbe-tool for tests that run it directly).
    pub jars: PathBuf,
    /// The class path of `java`: the classes, Agrona and the Aeron client (with Maven, the
    /// examples' jar, whose manifest names them).
    pub classpath: String,
}

static BUILD: OnceLock<Result<JavaBuild, String>> = OnceLock::new();
static EXAMPLES: OnceLock<Result<JavaBuild, String>> = OnceLock::new();

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

    /// The examples of `java/` (producer and consumer), built with Maven where `mvn`
    /// runs, else with `javac` and the jars ([`JavaBuild::get`]); made once per test
    /// binary. `Err` says why Java is unavailable (skip); a failing build panics.
    pub fn examples() -> Result<&'static JavaBuild, String> {
        EXAMPLES
            .get_or_init(|| {
                if runnable("mvn") {
                    Self::maven()
                } else {
                    eprintln!(
                        "`mvn` is not runnable: building the Java examples with javac and the jars"
                    );
                    Self::make(&["java/src/main/java"])
                }
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `mvn -f java/pom.xml package` into `target/java`, with the local repository in
    /// `target/m2`; the jar and its dependencies are then copied into this process's own
    /// directory, so a later build (another test binary, the script) cannot change them
    /// under a running test.
    fn maven() -> Result<JavaBuild, String> {
        if !runnable("java") {
            return Err("`java` is not runnable (scripts/setup.sh installs a JDK)".into());
        }
        let target = target_dir();
        let built = target.join("java");
        let repository = target.join("m2");
        std::fs::create_dir_all(&repository).expect("creating the Maven repository directory");
        let lock = std::fs::File::create(target.join("java.lock")).expect("creating java.lock");
        // Released when dropped, or when the process dies.
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("locking java.lock");
        let pom = repo().join("java/pom.xml");
        let pom_text = std::fs::read_to_string(&pom).expect("reading java/pom.xml");
        // The pom last resolved online: its artifacts are all in the repository.
        let resolved = repository.join(".tensorpool-resolved-pom.xml");
        let mut offline = std::fs::read_to_string(&resolved).is_ok_and(|text| text == pom_text);
        let mvn = |offline: bool| {
            let mut cmd = Command::new("mvn");
            cmd.args(["-B", "-q", "-Dstyle.color=never"])
                .arg("-f")
                .arg(&pom)
                .arg(format!("-Dmaven.repo.local={}", repository.display()))
                .arg(format!("-Dtp.java.build={}", built.display()))
                .arg("package");
            if offline {
                cmd.arg("-o");
            }
            cmd.output()
                .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"))
        };
        let mut out = mvn(offline);
        if !out.status.success() && offline {
            // Something was removed from the repository since: download it again.
            offline = false;
            out = mvn(false);
        }
        assert!(
            out.status.success(),
            "mvn -f java/pom.xml package failed with {}:\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&resolved, &pom_text).expect("recording the resolved pom");

        let root = own_build_dir();
        let lib = root.join("lib");
        std::fs::create_dir_all(&lib).expect("creating the Java build directory");
        let jar = root.join("tensorpool-java-examples.jar");
        std::fs::copy(built.join("tensorpool-java-examples.jar"), &jar)
            .expect("copying the examples' jar");
        // The jar's manifest names its dependencies in lib/ (older versions left there by
        // an earlier pom are copied too, and ignored).
        for dependency in files_in(&built.join("lib")) {
            let copy = lib.join(dependency.file_name().expect("a file name"));
            std::fs::copy(&dependency, &copy).expect("copying a dependency");
        }
        drop(lock);
        eprintln!(
            "Java examples built with Maven (java/pom.xml{}) into {}",
            if offline { ", offline" } else { "" },
            built.display()
        );
        Ok(JavaBuild {
            codec_sources: built.join("generated-sources/sbe"),
            classpath: jar.display().to_string(),
            classes: jar,
            jars: jar_dir(),
        })
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
            if !runnable(tool) {
                return Err(format!(
                    "`{tool}` is not runnable (scripts/setup.sh installs a JDK)"
                ));
            }
        }
        let root = own_build_dir();
        let codec_sources = root.join("codecs");
        let classes = root.join("classes");
        std::fs::create_dir_all(&classes).expect("creating the Java build directory");

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
        let classpath = classpath(&jars, &["agrona.jar", "aeron-client.jar"], Some(&classes));
        Ok(JavaBuild {
            codec_sources,
            classes,
            jars,
            classpath,
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
            self.classpath.clone(),
            main.to_string(),
        ]
    }
}

/// Whether `tool -version` runs and succeeds.
fn runnable(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Cargo's target directory (the parent of `CARGO_TARGET_TMPDIR`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR lies in the target directory")
        .to_path_buf()
}

/// A new, empty directory for this test binary and process (binaries run in parallel),
/// after removing those of processes that are gone.
fn own_build_dir() -> PathBuf {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "java".into());
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("java-{binary}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).expect("creating the Java build directory");
    remove_stale_builds(&root);
    root
}

/// The files of `dir`, sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
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
