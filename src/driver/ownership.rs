//! One driver per namespace and per control stream, enforced by the operating system.
//!
//! Driver Model §3 makes the SHM driver the sole owner of its files, and §15 expects
//! several drivers on one host to stay apart by namespace. A second driver started by
//! mistake on the same `(shm.base_dir, shm.namespace)` would number, announce and
//! garbage-collect the first one's epochs; one on the same control stream of the same
//! media driver would answer the first one's clients. Each driver therefore holds an
//! exclusive `flock` on a file for each of the two for as long as it runs:
//!
//! - `<base_dir>/tensorpool-<user>/<namespace>/driver.lock` (stream directories are
//!   canonical decimal numbers, so the name never collides with one);
//! - `<aeron_dir>/tensorpool-driver-<control_stream_id>.lock`.
//!
//! The kernel drops a lock with its process, however it ends (kill -9 included), so a
//! lock is never stale. The holder writes its pid and instance id into the file, and a
//! refused driver names them in its error with the way out.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file of a namespace, inside its directory.
pub const NAMESPACE_LOCK_FILE: &str = "driver.lock";

/// The lock file of a control stream in an Aeron directory.
pub fn control_stream_lock_path(aeron_dir: &Path, control_stream_id: u32) -> PathBuf {
    aeron_dir.join(format!("tensorpool-driver-{control_stream_id}.lock"))
}

/// What a driver claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// An SHM namespace: `shm.namespace` under `shm.base_dir`.
    Namespace {
        /// `<base_dir>/tensorpool-<user>/<namespace>`.
        dir: PathBuf,
    },
    /// A control stream of one media driver.
    ControlStream {
        /// The media driver's Aeron directory.
        aeron_dir: PathBuf,
        /// `driver.control_stream_id`.
        stream_id: u32,
    },
}

impl Claim {
    fn lock_path(&self) -> PathBuf {
        match self {
            Self::Namespace { dir } => dir.join(NAMESPACE_LOCK_FILE),
            Self::ControlStream {
                aeron_dir,
                stream_id,
            } => control_stream_lock_path(aeron_dir, *stream_id),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Namespace { dir } => format!("SHM namespace {}", dir.display()),
            Self::ControlStream {
                aeron_dir,
                stream_id,
            } => format!(
                "control stream {stream_id} of the media driver in {}",
                aeron_dir.display()
            ),
        }
    }

    fn fix(&self) -> &'static str {
        match self {
            Self::Namespace { .. } => {
                "stop that driver first, or give this one its own namespace (shm.namespace, \
                 env SHM_NAMESPACE) or base directory (shm.base_dir)"
            }
            Self::ControlStream { .. } => {
                "stop that driver first, or give this one its own control stream \
                 (driver.control_stream_id, env DRIVER_CONTROL_STREAM_ID) or media driver \
                 (driver.aeron_dir)"
            }
        }
    }
}

/// Why a claim failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another live driver holds it.
    #[error("{what} is already served by another driver ({holder}, lock {}); {fix}", path.display())]
    Taken {
        /// What was claimed.
        what: String,
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
        /// What to do.
        fix: &'static str,
    },
    /// The lock file could not be opened or locked.
    #[error("locking {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// An exclusive claim, held until dropped (or the process ends).
#[derive(Debug)]
pub struct OwnerLock {
    _file: File,
    path: PathBuf,
}

impl OwnerLock {
    /// Claims `claim` for this process as driver `instance_id`, creating the lock file
    /// with `mode` if needed; its directory must exist. Never blocks.
    pub fn acquire(claim: &Claim, instance_id: &str, mode: u32) -> Result<Self, ClaimError> {
        let path = claim.lock_path();
        let io_error = |source| ClaimError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&path)
            .map_err(io_error)?;
        if let Err(errno) = try_lock_exclusive(&file) {
            if errno != nix::errno::Errno::EWOULDBLOCK {
                return Err(io_error(io::Error::from(errno)));
            }
            return Err(ClaimError::Taken {
                what: claim.describe(),
                path,
                holder: holder_of(&mut file),
                fix: claim.fix(),
            });
        }
        let record = format!("pid={}\ninstance_id={instance_id}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(record.as_bytes()))
            .map_err(io_error)?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn try_lock_exclusive(file: &File) -> Result<(), nix::errno::Errno> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` on a file descriptor this function borrows; no memory is passed.
    let rc = unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::errno::Errno::last())
    }
}

/// "pid 1234, instance id cam-a" from a holder's lock file (bounded read; the holder may
/// be writing it this instant, so an empty record is possible).
fn holder_of(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind();
    let _ = Read::by_ref(file).take(512).read_to_string(&mut text);
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    match (field("pid="), field("instance_id=")) {
        (Some(pid), Some(id)) => format!("pid {pid}, instance id {id:?}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "a process that has not written its pid yet".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn namespace(dir: &Path) -> Claim {
        Claim::Namespace {
            dir: dir.to_path_buf(),
        }
    }

    #[test]
    fn a_second_claim_is_refused_naming_the_holder_and_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let first = OwnerLock::acquire(&namespace(tmp.path()), "cam-a", 0o660).unwrap();
        let err = OwnerLock::acquire(&namespace(tmp.path()), "cam-b", 0o660).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ClaimError::Taken { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("\"cam-a\""), "{text}");
        assert!(text.contains("shm.namespace"), "{text}");
        drop(first);
        let again = OwnerLock::acquire(&namespace(tmp.path()), "cam-b", 0o660).unwrap();
        let record = std::fs::read_to_string(again.path()).unwrap();
        assert_eq!(
            record,
            format!("pid={}\ninstance_id=cam-b\n", std::process::id())
        );
    }

    #[test]
    fn control_streams_are_claimed_one_by_one() {
        let tmp = tempfile::tempdir().unwrap();
        let claim = |stream_id| Claim::ControlStream {
            aeron_dir: tmp.path().to_path_buf(),
            stream_id,
        };
        let _a = OwnerLock::acquire(&claim(1000), "a", 0o660).unwrap();
        let _b = OwnerLock::acquire(&claim(2000), "b", 0o660).expect("another stream is free");
        let err = OwnerLock::acquire(&claim(1000), "c", 0o660).unwrap_err();
        assert!(err.to_string().contains("control stream 1000"), "{err}");
        assert!(
            err.to_string().contains("driver.control_stream_id"),
            "{err}"
        );
    }

    #[test]
    fn a_symlinked_lock_file_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, b"keep").unwrap();
        std::os::unix::fs::symlink(&target, tmp.path().join(NAMESPACE_LOCK_FILE)).unwrap();
        let err = OwnerLock::acquire(&namespace(tmp.path()), "a", 0o660).unwrap_err();
        assert!(matches!(err, ClaimError::Io { .. }), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }
}
