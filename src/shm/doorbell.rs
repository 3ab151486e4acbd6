//! The driver's doorbell: a futex word in a small shared file that lets a client wake an
//! idle driver the moment it sends a request, instead of waiting out the driver's park.
//!
//! Not part of the Wire Spec or the Driver Model: a local optimisation between this
//! crate's driver and clients. Peers that do not know it (a Java or C client speaking the
//! schemas over Aeron) lose nothing: the driver still wakes at the end of every park, so
//! their requests wait at most one park, as before.
//!
//! **File.** `<aeron_dir>/tensorpool-driver-<control_stream_id>.doorbell`, created by the
//! driver (atomically, by renaming a complete file into place) and removed when it stops.
//! 64 bytes, little-endian: magic `TPDOORB1` (u64 at 0), version (u32 at 8), the state
//! word (u32 at 12), the driver's pid (u32 at 16), zeros. A client opens it without
//! following symlinks, checks it is a regular file with this magic and version, and maps
//! it shared.
//!
//! **Protocol** (no lost wake-up, whatever the interleaving; [`super::doorbell_word`],
//! model-checked by `scripts/loom.sh`):
//! - the driver, about to park, stores `SLEEPING`, then runs one more duty cycle; only if
//!   that found no work does it `FUTEX_WAIT` on the word (expecting `SLEEPING`) for at most
//!   the park; it stores `AWAKE` when it runs again;
//! - a client, after a request was published, reads the word and, if it is `SLEEPING`,
//!   swaps in `AWAKE` and, if it was the one to do so, calls `FUTEX_WAKE`.
//!
//! Both sides put a sequentially consistent fence between their write (the state, the
//! request) and their read (the control stream, the state), so either the driver's last
//! duty cycle sees the request or the client sees `SLEEPING`; a wake that lands before
//! the driver waits makes `FUTEX_WAIT` return at once, as the word is no longer
//! `SLEEPING`. A client ringing a stale file (a driver that died) wakes nobody.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use memmap2::{MmapOptions, MmapRaw};
use thiserror::Error;

/// Magic at offset 0: ASCII `TPDOORB1` read as a little-endian u64.
pub const DOORBELL_MAGIC: u64 = u64::from_le_bytes(*b"TPDOORB1");
/// Layout version this crate writes and accepts.
pub const DOORBELL_VERSION: u32 = 1;
/// Size of the file.
pub const DOORBELL_LEN: usize = 64;
/// Offset of the state word.
const STATE_OFFSET: usize = 12;

pub use super::doorbell_word::Wake;
use super::doorbell_word::SLEEPING;

/// Why a doorbell could not be created or opened.
#[derive(Debug, Error)]
pub enum DoorbellError {
    /// A file system call failed.
    #[error("doorbell {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The path is not a regular file (a symlink, directory, FIFO ...).
    #[error("doorbell {path} is not a regular file")]
    NotRegularFile {
        /// The file.
        path: PathBuf,
    },
    /// The file is shorter than a doorbell.
    #[error("doorbell {path} is {len} bytes, shorter than {DOORBELL_LEN}")]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The file does not start with the doorbell magic and version.
    #[error("doorbell {path} has magic {magic:#018x} version {version}, not a version {DOORBELL_VERSION} doorbell")]
    NotADoorbell {
        /// The file.
        path: PathBuf,
        /// Magic found.
        magic: u64,
        /// Version found.
        version: u32,
    },
}

/// The doorbell file of the driver serving `control_stream_id` through the media driver
/// whose directory is `aeron_dir`.
pub fn doorbell_path(aeron_dir: &Path, control_stream_id: u32) -> PathBuf {
    aeron_dir.join(format!("tensorpool-driver-{control_stream_id}.doorbell"))
}

/// A mapped doorbell: the driver's (see [`DriverDoorbell`]) or a client's.
pub struct Doorbell {
    map: MmapRaw,
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Doorbell {
    /// Opens and maps the doorbell at `path`: `Ok(None)` if there is none (no driver, or
    /// one that does not use a doorbell), an error if something else is there.
    pub fn open(path: &Path) -> Result<Option<Self>, DoorbellError> {
        let io_error = |source| DoorbellError::Io {
            path: path.to_owned(),
            source,
        };
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // O_NOFOLLOW on a symlink fails with ELOOP.
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(DoorbellError::NotRegularFile {
                    path: path.to_owned(),
                })
            }
            Err(e) => return Err(io_error(e)),
        };
        let meta = file.metadata().map_err(io_error)?;
        if !meta.file_type().is_file() || meta.file_type().is_fifo() {
            return Err(DoorbellError::NotRegularFile {
                path: path.to_owned(),
            });
        }
        if meta.len() < DOORBELL_LEN as u64 {
            return Err(DoorbellError::TooShort {
                path: path.to_owned(),
                len: meta.len(),
            });
        }
        let bell = Self::map(&file, path, &meta)?;
        let (magic, version) = bell.identity();
        if magic != DOORBELL_MAGIC || version != DOORBELL_VERSION {
            return Err(DoorbellError::NotADoorbell {
                path: path.to_owned(),
                magic,
                version,
            });
        }
        Ok(Some(bell))
    }

    fn map(file: &File, path: &Path, meta: &std::fs::Metadata) -> Result<Self, DoorbellError> {
        let map = MmapOptions::new()
            .len(DOORBELL_LEN)
            .map_raw(file)
            .map_err(|source| DoorbellError::Io {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            map,
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    fn identity(&self) -> (u64, u32) {
        let base = self.map.as_ptr();
        // SAFETY: the mapping is DOORBELL_LEN bytes; the reads are in bounds and unaligned
        // reads are allowed; the words are only written before the file is renamed into
        // place.
        unsafe {
            (
                u64::from_le(base.cast::<u64>().read_unaligned()),
                u32::from_le(base.add(8).cast::<u32>().read_unaligned()),
            )
        }
    }

    fn state(&self) -> &AtomicU32 {
        // SAFETY: offset 12 of a page-aligned mapping is 4-byte aligned and in bounds; the
        // word lives as long as `self` and every process accesses it atomically.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(STATE_OFFSET).cast::<u32>()) }
    }

    /// The file this doorbell was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `path` still names the file this doorbell maps (a restarted driver puts a
    /// new file in its place).
    pub fn is_current(&self) -> bool {
        std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino)
    }

    /// Wakes the driver if it is parked, after a request was published. Returns whether
    /// this call woke it. One atomic load when the driver is awake.
    pub fn ring(&self) -> bool {
        super::doorbell_word::ring(self.state(), futex_wake)
    }
}

impl std::fmt::Debug for Doorbell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Doorbell")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The driver's side: creates the file, parks on it, removes it when dropped.
#[derive(Debug)]
pub struct DriverDoorbell {
    bell: Doorbell,
}

impl DriverDoorbell {
    /// Creates the doorbell at `path` (replacing any file there, e.g. one a crashed
    /// driver left) with mode `0666` less the process umask, so clients of other users
    /// can ring it as they can use the media driver's files.
    pub fn create(path: &Path) -> Result<Self, DoorbellError> {
        let io_error = |source| DoorbellError::Io {
            path: path.to_owned(),
            source,
        };
        let tmp = path.with_extension(format!("doorbell.{}.tmp", std::process::id()));
        let mut bytes = [0u8; DOORBELL_LEN];
        bytes[..8].copy_from_slice(&DOORBELL_MAGIC.to_le_bytes());
        bytes[8..12].copy_from_slice(&DOORBELL_VERSION.to_le_bytes());
        bytes[16..20].copy_from_slice(&std::process::id().to_le_bytes());
        // A file of that name can only be left over from a process that had our pid.
        let _ = std::fs::remove_file(&tmp);
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o666)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(&tmp)?;
            file.write_all(&bytes)?;
            let meta = file.metadata()?;
            // Keep the umask's verdict, but never more than rw for everyone.
            file.set_permissions(std::fs::Permissions::from_mode(
                meta.permissions().mode() & 0o666,
            ))?;
            Ok::<_, io::Error>((file, meta))
        })();
        let (file, meta) = match written {
            Ok(done) => done,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io_error(e));
            }
        };
        if let Err(e) = std::fs::rename(&tmp, path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io_error(e));
        }
        let bell = Doorbell::map(&file, path, &meta)?;
        Ok(Self { bell })
    }

    /// The mapped doorbell.
    pub fn bell(&self) -> &Doorbell {
        &self.bell
    }

    /// Parks for at most `park`, unless a client rings. `last_cycle` runs one duty cycle
    /// after the driver has declared itself asleep and returns its work: if it did any,
    /// the driver does not park. The state is `AWAKE` again on return.
    pub fn park(&self, park: Duration, last_cycle: impl FnOnce() -> usize) -> Wake {
        super::doorbell_word::park(self.bell.state(), last_cycle, |state| {
            futex_wait(state, SLEEPING, park)
        })
    }
}

impl Drop for DriverDoorbell {
    fn drop(&mut self) {
        // Only remove the file if it is still ours (a newer driver may have replaced it).
        if self.bell.is_current() {
            let _ = std::fs::remove_file(&self.bell.path);
        }
    }
}

/// `FUTEX_WAIT` on a shared mapping (not `FUTEX_PRIVATE`: other processes wake it) for at
/// most `timeout`; returns whether it was woken (rather than timing out, being
/// interrupted, or finding the word changed).
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = nix::libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as nix::libc::time_t,
        tv_nsec: timeout.subsec_nanos() as nix::libc::c_long,
    };
    // SAFETY: the word is a valid, aligned u32 in a live shared mapping; the timespec
    // outlives the call; FUTEX_WAIT only reads both.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_futex,
            word.as_ptr(),
            nix::libc::FUTEX_WAIT,
            expected,
            &ts as *const nix::libc::timespec,
        )
    };
    rc == 0
}

/// `FUTEX_WAKE` of one waiter on a shared mapping.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: the word is a valid, aligned u32 in a live shared mapping; FUTEX_WAKE does
    // not dereference anything else.
    unsafe {
        nix::libc::syscall(
            nix::libc::SYS_futex,
            word.as_ptr(),
            nix::libc::FUTEX_WAKE,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn dir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("tp-doorbell-")
            .tempdir()
            .expect("temp dir")
    }

    #[test]
    fn a_client_opens_what_the_driver_created() {
        let d = dir();
        let path = doorbell_path(d.path(), 1000);
        assert_eq!(
            path.file_name().and_then(|n| n.to_str()),
            Some("tensorpool-driver-1000.doorbell")
        );
        assert!(
            Doorbell::open(&path).expect("no error").is_none(),
            "none yet"
        );
        let driver = DriverDoorbell::create(&path).expect("created");
        let client = Doorbell::open(&path).expect("opens").expect("exists");
        assert!(client.is_current());
        assert!(!client.ring(), "an awake driver needs no wake-up");
        let leftovers: Vec<_> = std::fs::read_dir(d.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
        drop(driver);
        assert!(!path.exists(), "the driver removes its doorbell");
        assert!(!client.is_current());
    }

    #[test]
    fn a_restarted_driver_replaces_the_file_and_clients_notice() {
        let d = dir();
        let path = doorbell_path(d.path(), 7);
        let first = DriverDoorbell::create(&path).expect("created");
        let client = Doorbell::open(&path).expect("opens").expect("exists");
        std::mem::forget(first); // a crash: the file stays
        let second = DriverDoorbell::create(&path).expect("replaces the stale file");
        assert!(!client.is_current(), "the client sees the file changed");
        let fresh = Doorbell::open(&path).expect("opens").expect("exists");
        assert!(fresh.is_current());
        drop(second);
    }

    #[test]
    fn ringing_wakes_a_parked_driver() {
        let d = dir();
        let path = doorbell_path(d.path(), 1);
        let driver = DriverDoorbell::create(&path).expect("created");
        let client = Doorbell::open(&path).expect("opens").expect("exists");
        let start = Instant::now();
        let wake = std::thread::scope(|s| {
            let parked = s.spawn(|| driver.park(Duration::from_secs(30), || 0));
            while !parked.is_finished() && !client.ring() {
                std::thread::sleep(Duration::from_millis(1));
            }
            parked.join().expect("parked thread")
        });
        assert_eq!(wake, Wake::Rung);
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "woken, not timed out"
        );
        assert!(!client.ring(), "awake again after the park");
    }

    #[test]
    fn a_ring_before_the_wait_is_not_lost() {
        let d = dir();
        let path = doorbell_path(d.path(), 2);
        let driver = DriverDoorbell::create(&path).expect("created");
        let client = Doorbell::open(&path).expect("opens").expect("exists");
        // The client rings between the driver's "asleep" and its wait: the wait must
        // not block for the park.
        let start = Instant::now();
        let wake = driver.park(Duration::from_secs(30), || {
            assert!(client.ring(), "the driver is declared asleep");
            0
        });
        assert_eq!(wake, Wake::Rung);
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[test]
    fn work_in_the_last_cycle_skips_the_park_and_a_quiet_park_times_out() {
        let d = dir();
        let path = doorbell_path(d.path(), 3);
        let driver = DriverDoorbell::create(&path).expect("created");
        assert_eq!(driver.park(Duration::from_secs(30), || 1), Wake::Work);
        let start = Instant::now();
        assert_eq!(driver.park(Duration::from_millis(5), || 0), Wake::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(5));
    }

    #[test]
    fn what_is_not_a_doorbell_is_refused_by_name() {
        let d = dir();
        let path = d.path().join("x.doorbell");
        std::fs::write(&path, [0u8; 10]).expect("write");
        assert!(matches!(
            Doorbell::open(&path),
            Err(DoorbellError::TooShort { len: 10, .. })
        ));
        std::fs::write(&path, [7u8; 64]).expect("write");
        let err = Doorbell::open(&path).expect_err("refused");
        assert!(matches!(err, DoorbellError::NotADoorbell { .. }), "{err}");
        assert!(err.to_string().contains("x.doorbell"), "{err}");
        let link = d.path().join("link.doorbell");
        std::os::unix::fs::symlink(&path, &link).expect("symlink");
        assert!(matches!(
            Doorbell::open(&link),
            Err(DoorbellError::NotRegularFile { .. })
        ));
        let sub = d.path().join("dir.doorbell");
        std::fs::create_dir(&sub).expect("dir");
        assert!(Doorbell::open(&sub).is_err(), "a directory is refused");
    }
}
