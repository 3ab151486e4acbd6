//! The client library stands on its own: `src/client` uses the protocol, SHM, transport
//! and clock modules, never the driver's internals or its configuration (the driver may
//! change how it works without a client noticing). Test code is exempt: unit tests may
//! build a real driver-side fixture, and so may the fuzzing harnesses (`fuzz.rs`, compiled
//! only with `--cfg fuzzing` for the targets in fuzz/).

use std::fs;
use std::path::{Path, PathBuf};

/// Modules a client must not reach into.
const FORBIDDEN: [&str; 2] = ["crate::driver", "crate::config"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("source directory is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's text before its first `#[cfg(test)]` (test modules come last by custom),
/// or nothing for a file that is itself a test module or a fuzzing harness.
fn library_code(path: &Path) -> String {
    if path
        .file_name()
        .is_some_and(|n| n == "tests.rs" || n == "fuzz.rs")
    {
        return String::new();
    }
    let text = fs::read_to_string(path).expect("source file is readable");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[test]
fn client_code_does_not_use_driver_internals() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/client");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 10, "found the client sources under {root:?}");
    let mut offences = Vec::new();
    for file in &files {
        for (number, line) in library_code(file).lines().enumerate() {
            if FORBIDDEN.iter().any(|module| line.contains(module)) {
                offences.push(format!(
                    "{}:{}: {}",
                    file.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "client code uses driver modules:\n{}",
        offences.join("\n")
    );
}
