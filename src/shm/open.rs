//! Safe opening and mapping of announced SHM regions (Wire Spec §15.21a.5, §15.22;
//! Driver Model §9).
//!
//! [`open_region`] implements the consumer path-containment validation of §15.21a.5
//! and the hugepage check of §15.22, failing closed at every step:
//!
//! 1. the announced path must be absolute;
//! 2. it is canonicalized (`realpath`);
//! 3. the canonical path must lie strictly inside one of the [`AllowedBaseDirs`], which
//!    were canonicalized once at construction; containment is decided by path
//!    *components*, so `/dev/shm/tp-evil/x` is not inside `/dev/shm/tp`;
//! 4. `lstat` of the canonical path must report a regular file;
//! 5. the canonical path is opened without following any symlink: every directory
//!    component is opened from `/` with `O_NOFOLLOW | O_DIRECTORY` (`openat` walk) and
//!    the final file with `O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY`, so a
//!    component replaced by a symlink after step 2 yields [`OpenError::SymlinkRefused`]
//!    (`O_NONBLOCK` prevents a FIFO swapped in at the last moment from blocking us;
//!    it is cleared again once the descriptor is verified);
//! 6. `fstat` on the opened descriptor must report the same `(st_dev, st_ino)` as
//!    step 4 and a regular file, otherwise [`OpenError::IdentityChanged`] /
//!    [`OpenError::NotRegularFile`];
//! 7. if the URI says `require_hugepages=true`, `fstatfs` on the descriptor must
//!    report hugetlbfs, otherwise [`OpenError::NotHugepageBacked`]. Platforms without
//!    `statfs` magic numbers reject such URIs ([`OpenError::HugepagesUnsupported`]).
//!
//! **Symlinks inside an allowed directory.** Because containment is checked on the
//! canonical path and the canonical path (not the announced one) is opened, an
//! announced path that is itself a symlink is accepted if and only if its target lies
//! inside an allowed base directory; the opened file is the target
//! ([`OpenedRegion::canonical_path`]). The symlink is resolved exactly once, by
//! `realpath`, and never followed by `open`. A symlink whose target is outside every
//! allowed directory is refused with [`OpenError::OutsideAllowedDirs`].

use std::ffi::OsStr;
use std::fmt;
use std::fs::{File, FileType, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag};
use nix::sys::stat::{Mode, SFlag};

use crate::shm::uri::RegionUri;

/// The hugetlbfs filesystem magic number reported by `statfs(2)` (`HUGETLBFS_MAGIC`).
pub const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;

/// Requested access to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Open and map read-only (consumers).
    ReadOnly,
    /// Open and map read-write (producers / the driver).
    ReadWrite,
}

/// The kind of a filesystem object, for diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file (the only acceptable kind).
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO (named pipe).
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Anything else.
    Unknown,
}

impl FileKind {
    /// Classifies a [`FileType`] (from `lstat`/`fstat`).
    pub fn from_file_type(ft: FileType) -> Self {
        if ft.is_file() {
            Self::Regular
        } else if ft.is_dir() {
            Self::Directory
        } else if ft.is_symlink() {
            Self::Symlink
        } else if ft.is_fifo() {
            Self::Fifo
        } else if ft.is_socket() {
            Self::Socket
        } else if ft.is_char_device() {
            Self::CharDevice
        } else if ft.is_block_device() {
            Self::BlockDevice
        } else {
            Self::Unknown
        }
    }

    /// Classifies a raw `st_mode` value.
    pub fn from_mode(mode: nix::libc::mode_t) -> Self {
        let fmt = SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits());
        if fmt == SFlag::S_IFREG {
            Self::Regular
        } else if fmt == SFlag::S_IFDIR {
            Self::Directory
        } else if fmt == SFlag::S_IFLNK {
            Self::Symlink
        } else if fmt == SFlag::S_IFIFO {
            Self::Fifo
        } else if fmt == SFlag::S_IFSOCK {
            Self::Socket
        } else if fmt == SFlag::S_IFCHR {
            Self::CharDevice
        } else if fmt == SFlag::S_IFBLK {
            Self::BlockDevice
        } else {
            Self::Unknown
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Regular => "regular file",
            Self::Directory => "directory",
            Self::Symlink => "symbolic link",
            Self::Fifo => "FIFO",
            Self::Socket => "socket",
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Unknown => "unknown file type",
        })
    }
}

/// Identity of a file: `(st_dev, st_ino)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device id (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`).
    pub ino: u64,
}

impl FileIdentity {
    /// Extracts the identity from file metadata.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

impl fmt::Display for FileIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dev={:#x} ino={}", self.dev, self.ino)
    }
}

/// Errors building [`AllowedBaseDirs`].
#[derive(Debug, thiserror::Error)]
pub enum BaseDirError {
    /// No allowed base directory was configured.
    #[error("no allowed shm base directories configured")]
    NoDirs,
    /// A configured directory is not absolute.
    #[error("allowed shm base directory {} is not an absolute path", dir.display())]
    NotAbsolute {
        /// The offending directory.
        dir: PathBuf,
    },
    /// A configured directory could not be canonicalized (e.g. it does not exist).
    #[error("cannot canonicalize allowed shm base directory {}: {source}", dir.display())]
    Canonicalize {
        /// The offending directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A configured directory is not a directory.
    #[error("allowed shm base directory {} (canonical {}) is not a directory", dir.display(), canonical.display())]
    NotDirectory {
        /// The configured directory.
        dir: PathBuf,
        /// Its canonical form.
        canonical: PathBuf,
    },
}

/// The canonicalized allowlist of base directories (Wire Spec §15.21a.5 step 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedBaseDirs {
    dirs: Vec<PathBuf>,
}

impl AllowedBaseDirs {
    /// Canonicalizes each configured directory once; every one must exist and be a directory.
    pub fn new<I, P>(dirs: I) -> Result<Self, BaseDirError>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let mut out: Vec<PathBuf> = Vec::new();
        for dir in dirs {
            let dir = dir.as_ref();
            if !dir.is_absolute() {
                return Err(BaseDirError::NotAbsolute {
                    dir: dir.to_path_buf(),
                });
            }
            let canonical =
                std::fs::canonicalize(dir).map_err(|source| BaseDirError::Canonicalize {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            let meta =
                std::fs::metadata(&canonical).map_err(|source| BaseDirError::Canonicalize {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            if !meta.is_dir() {
                return Err(BaseDirError::NotDirectory {
                    dir: dir.to_path_buf(),
                    canonical,
                });
            }
            if !out.contains(&canonical) {
                out.push(canonical);
            }
        }
        if out.is_empty() {
            return Err(BaseDirError::NoDirs);
        }
        Ok(Self { dirs: out })
    }

    /// The canonical allowed directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The allowed directory that strictly contains `canonical`, compared by components.
    pub fn containing_dir(&self, canonical: &Path) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|dir| canonical != dir.as_path() && canonical.starts_with(dir))
            .map(PathBuf::as_path)
    }

    /// Whether `canonical` lies strictly inside one of the allowed directories.
    pub fn contains(&self, canonical: &Path) -> bool {
        self.containing_dir(canonical).is_some()
    }
}

/// Why a region was refused (each step of §15.21a.5 / §15.22 has its own variant).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The announced path is not absolute.
    #[error("region path {} is not absolute", path.display())]
    NotAbsolute {
        /// The announced path.
        path: PathBuf,
    },
    /// `realpath` failed (missing file, dangling symlink, permissions, ...).
    #[error("cannot canonicalize region path {}: {source}", path.display())]
    Canonicalize {
        /// The announced path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The canonical path is not inside any allowed base directory.
    #[error("region path {} (canonical {}) is outside the allowed base directories", path.display(), canonical.display())]
    OutsideAllowedDirs {
        /// The announced path.
        path: PathBuf,
        /// Its canonical form.
        canonical: PathBuf,
    },
    /// The canonical path contains `.`/`..` or is not rooted (defensive check).
    #[error("region path {} is not in canonical form", path.display())]
    NotCanonical {
        /// The offending path.
        path: PathBuf,
    },
    /// `lstat` of the canonical path failed.
    #[error("cannot stat region path {}: {source}", path.display())]
    Metadata {
        /// The canonical path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The region is not a regular file.
    #[error("region path {} is a {kind}, not a regular file", path.display())]
    NotRegularFile {
        /// The canonical path.
        path: PathBuf,
        /// What it actually is.
        kind: FileKind,
    },
    /// A symlink was met while opening with `O_NOFOLLOW` (path swapped after checks).
    #[error("refusing to follow symbolic link at {} while opening region", path.display())]
    SymlinkRefused {
        /// The path (prefix) that turned out to be a symlink.
        path: PathBuf,
    },
    /// `open`/`openat` failed for another reason.
    #[error("cannot open region path {}: {source}", path.display())]
    Open {
        /// The path (prefix) that failed to open.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `fstat` on the opened descriptor failed.
    #[error("cannot fstat opened region {}: {source}", path.display())]
    Stat {
        /// The canonical path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The opened file is not the file that was checked (swap between check and open).
    #[error("region {} changed between check and open (expected {expected}, opened {actual})", path.display())]
    IdentityChanged {
        /// The canonical path.
        path: PathBuf,
        /// Identity seen by `lstat` before opening.
        expected: FileIdentity,
        /// Identity of the opened descriptor.
        actual: FileIdentity,
    },
    /// `fstatfs` on the opened descriptor failed.
    #[error("cannot statfs region {}: {source}", path.display())]
    Statfs {
        /// The canonical path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `require_hugepages=true` but the file is not on hugetlbfs.
    #[error("region {} requires hugepages but is not on a hugetlbfs filesystem", path.display())]
    NotHugepageBacked {
        /// The canonical path.
        path: PathBuf,
    },
    /// `require_hugepages=true` on a platform that cannot verify hugepage backing.
    #[error("region {} requires hugepages, which cannot be verified on this platform", path.display())]
    HugepagesUnsupported {
        /// The canonical path.
        path: PathBuf,
    },
    /// The file has zero length and cannot be mapped.
    #[error("region {} is empty (zero length) and cannot be mapped", path.display())]
    Empty {
        /// The canonical path.
        path: PathBuf,
    },
    /// The file is larger than the address space.
    #[error("region {} is too large to map ({len} bytes)", path.display())]
    TooLarge {
        /// The canonical path.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// A read-write mapping was requested for a region opened read-only.
    #[error("region {} was opened read-only and cannot be mapped read-write", path.display())]
    AccessMismatch {
        /// The canonical path.
        path: PathBuf,
    },
    /// `mmap` failed.
    #[error("cannot mmap region {}: {source}", path.display())]
    Map {
        /// The canonical path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A validated, opened region backing file, ready to be mapped.
#[derive(Debug)]
pub struct OpenedRegion {
    /// The opened file (close-on-exec, blocking mode).
    pub file: File,
    /// The canonical path that was opened.
    pub canonical_path: PathBuf,
    /// File length in bytes at open time.
    pub len: u64,
    /// Whether the file lives on hugetlbfs.
    pub on_hugetlbfs: bool,
    /// `(st_dev, st_ino)` of the opened file.
    pub identity: FileIdentity,
    /// The access mode the file was opened with.
    pub access: Access,
}

/// Opens an announced region after the full §15.21a.5 / §15.22 validation.
pub fn open_region(
    uri: &RegionUri,
    allowed: &AllowedBaseDirs,
    access: Access,
) -> Result<OpenedRegion, OpenError> {
    open_path(uri.path(), uri.require_hugepages(), allowed, access)
}

/// Like [`open_region`] but takes the path and hugepage requirement directly.
pub fn open_path(
    path: &Path,
    require_hugepages: bool,
    allowed: &AllowedBaseDirs,
    access: Access,
) -> Result<OpenedRegion, OpenError> {
    // 1. absolute
    if !path.is_absolute() {
        return Err(OpenError::NotAbsolute {
            path: path.to_path_buf(),
        });
    }
    // 2. canonicalize
    let canonical = std::fs::canonicalize(path).map_err(|source| OpenError::Canonicalize {
        path: path.to_path_buf(),
        source,
    })?;
    // 3. containment (by components)
    if !allowed.contains(&canonical) {
        return Err(OpenError::OutsideAllowedDirs {
            path: path.to_path_buf(),
            canonical,
        });
    }
    // 4. lstat: regular file only
    let expected = check_metadata(&canonical)?;
    // 5 + 6. no-follow open and descriptor re-validation
    let file = open_checked(&canonical, expected, access)?;
    let meta = file.metadata().map_err(|source| OpenError::Stat {
        path: canonical.clone(),
        source,
    })?;
    // 7. hugepages
    let on_hugetlbfs = fd_is_hugetlbfs(&file).map_err(|source| OpenError::Statfs {
        path: canonical.clone(),
        source,
    })?;
    if require_hugepages {
        if !hugepage_verification_supported() {
            return Err(OpenError::HugepagesUnsupported { path: canonical });
        }
        if !on_hugetlbfs {
            return Err(OpenError::NotHugepageBacked { path: canonical });
        }
    }
    Ok(OpenedRegion {
        file,
        len: meta.len(),
        identity: FileIdentity::of(&meta),
        canonical_path: canonical,
        on_hugetlbfs,
        access,
    })
}

/// Step 4: `lstat` the canonical path and require a regular file; returns its identity.
#[doc(hidden)]
pub fn check_metadata(canonical: &Path) -> Result<FileIdentity, OpenError> {
    let meta = std::fs::symlink_metadata(canonical).map_err(|source| OpenError::Metadata {
        path: canonical.to_path_buf(),
        source,
    })?;
    let kind = FileKind::from_file_type(meta.file_type());
    if kind != FileKind::Regular {
        return Err(OpenError::NotRegularFile {
            path: canonical.to_path_buf(),
            kind,
        });
    }
    Ok(FileIdentity::of(&meta))
}

/// Steps 5–6: open `canonical` without following symlinks and verify the descriptor
/// is the regular file `expected` (test seam for check/open races).
#[doc(hidden)]
pub fn open_checked(
    canonical: &Path,
    expected: FileIdentity,
    access: Access,
) -> Result<File, OpenError> {
    let file = open_nofollow(canonical, access)?;
    let meta = file.metadata().map_err(|source| OpenError::Stat {
        path: canonical.to_path_buf(),
        source,
    })?;
    let actual = FileIdentity::of(&meta);
    if actual != expected {
        return Err(OpenError::IdentityChanged {
            path: canonical.to_path_buf(),
            expected,
            actual,
        });
    }
    let kind = FileKind::from_file_type(meta.file_type());
    if kind != FileKind::Regular {
        return Err(OpenError::NotRegularFile {
            path: canonical.to_path_buf(),
            kind,
        });
    }
    clear_nonblock(&file).map_err(|source| OpenError::Open {
        path: canonical.to_path_buf(),
        source,
    })?;
    Ok(file)
}

/// Maps the whole opened region with a shared mapping (read-only for [`Access::ReadOnly`]).
///
/// The length is re-read with `fstat` at mapping time; a zero-length file is refused.
pub fn map_region(opened: &OpenedRegion, access: Access) -> Result<MmapRaw, OpenError> {
    let path = &opened.canonical_path;
    if access == Access::ReadWrite && opened.access == Access::ReadOnly {
        return Err(OpenError::AccessMismatch { path: path.clone() });
    }
    let len = opened
        .file
        .metadata()
        .map_err(|source| OpenError::Stat {
            path: path.clone(),
            source,
        })?
        .len();
    if len == 0 {
        return Err(OpenError::Empty { path: path.clone() });
    }
    let len_usize = usize::try_from(len).map_err(|_| OpenError::TooLarge {
        path: path.clone(),
        len,
    })?;
    let mut opts = MmapOptions::new();
    opts.len(len_usize);
    let mapped = match access {
        Access::ReadOnly => opts.map_raw_read_only(&opened.file),
        Access::ReadWrite => opts.map_raw(&opened.file),
    };
    mapped.map_err(|source| OpenError::Map {
        path: path.clone(),
        source,
    })
}

/// Whether the filesystem containing `path` is hugetlbfs (`statfs(2)` magic check).
pub fn is_hugetlbfs(path: &Path) -> Result<bool, io::Error> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let st = nix::sys::statfs::statfs(path).map_err(io::Error::from)?;
        Ok(st.filesystem_type() == nix::sys::statfs::HUGETLBFS_MAGIC)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        std::fs::metadata(path)?;
        Ok(false)
    }
}

/// Whether this platform can verify hugepage backing (§15.22: otherwise reject).
pub const fn hugepage_verification_supported() -> bool {
    cfg!(any(target_os = "linux", target_os = "android"))
}

fn fd_is_hugetlbfs(file: &File) -> Result<bool, io::Error> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let st = nix::sys::statfs::fstatfs(file).map_err(io::Error::from)?;
        Ok(st.filesystem_type() == nix::sys::statfs::HUGETLBFS_MAGIC)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = file;
        Ok(false)
    }
}

/// Flags for the intermediate directory descriptors of the no-follow walk.
fn dir_walk_flags() -> OFlag {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let base = OFlag::O_PATH;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let base = OFlag::O_RDONLY;
    base | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// Opens `canonical` by walking its components from `/` with `O_NOFOLLOW` on each.
fn open_nofollow(canonical: &Path, access: Access) -> Result<File, OpenError> {
    let not_canonical = || OpenError::NotCanonical {
        path: canonical.to_path_buf(),
    };
    let mut components = canonical.components();
    if components.next() != Some(Component::RootDir) {
        return Err(not_canonical());
    }
    let mut names: Vec<&OsStr> = Vec::new();
    for c in components {
        match c {
            Component::Normal(name) => names.push(name),
            _ => return Err(not_canonical()),
        }
    }
    let Some((file_name, dir_names)) = names.split_last() else {
        return Err(OpenError::NotRegularFile {
            path: canonical.to_path_buf(),
            kind: FileKind::Directory,
        });
    };

    let root = Path::new("/");
    let mut dir =
        nix_open_at(None, OsStr::new("/"), dir_walk_flags()).map_err(|e| OpenError::Open {
            path: root.to_path_buf(),
            source: io::Error::from(e),
        })?;
    let mut prefix = root.to_path_buf();
    for name in dir_names {
        prefix.push(name);
        dir = match nix_open_at(Some(dir.as_raw_fd()), name, dir_walk_flags()) {
            Ok(fd) => fd,
            Err(e) => {
                return Err(classify_open_error(
                    dir.as_raw_fd(),
                    name,
                    e,
                    &prefix,
                    false,
                ))
            }
        };
    }

    let mode = match access {
        Access::ReadOnly => OFlag::O_RDONLY,
        Access::ReadWrite => OFlag::O_RDWR,
    };
    let flags = mode | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    match nix_open_at(Some(dir.as_raw_fd()), file_name, flags) {
        Ok(fd) => Ok(File::from(fd)),
        Err(e) => Err(classify_open_error(
            dir.as_raw_fd(),
            file_name,
            e,
            canonical,
            true,
        )),
    }
}

fn nix_open_at(dirfd: Option<RawFd>, name: &OsStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    let fd = nix::fcntl::openat(dirfd, name, flags, Mode::empty())?;
    // SAFETY: `openat` succeeded, so `fd` is a freshly opened descriptor that nothing
    // else owns; wrapping it transfers ownership so it is closed exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Turns an `openat` failure into the most specific [`OpenError`].
fn classify_open_error(
    dirfd: RawFd,
    name: &OsStr,
    errno: Errno,
    path: &Path,
    is_final: bool,
) -> OpenError {
    if errno == Errno::ELOOP {
        return OpenError::SymlinkRefused {
            path: path.to_path_buf(),
        };
    }
    if let Ok(st) = nix::sys::stat::fstatat(Some(dirfd), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        let kind = FileKind::from_mode(st.st_mode);
        if kind == FileKind::Symlink {
            return OpenError::SymlinkRefused {
                path: path.to_path_buf(),
            };
        }
        if is_final && kind != FileKind::Regular {
            return OpenError::NotRegularFile {
                path: path.to_path_buf(),
                kind,
            };
        }
    }
    OpenError::Open {
        path: path.to_path_buf(),
        source: io::Error::from(errno),
    }
}

/// Clears `O_NONBLOCK` (set only to avoid blocking on a swapped-in FIFO during open).
fn clear_nonblock(file: &File) -> Result<(), io::Error> {
    let fd = file.as_raw_fd();
    let bits = nix::fcntl::fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let mut flags = OFlag::from_bits_truncate(bits);
    if flags.contains(OFlag::O_NONBLOCK) {
        flags.remove(OFlag::O_NONBLOCK);
        nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_mode_matches_file_type() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let m = std::fs::symlink_metadata(&f).unwrap();
        assert_eq!(FileKind::from_mode(m.mode()), FileKind::Regular);
        assert_eq!(FileKind::from_file_type(m.file_type()), FileKind::Regular);
        let m = std::fs::symlink_metadata(dir.path()).unwrap();
        assert_eq!(FileKind::from_mode(m.mode()), FileKind::Directory);
        assert_eq!(FileKind::from_mode(0), FileKind::Unknown);
    }

    #[test]
    fn containment_is_component_based() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().join("tp");
        std::fs::create_dir(&base).unwrap();
        let allowed = AllowedBaseDirs::new([&base]).unwrap();
        let canon = std::fs::canonicalize(&base).unwrap();
        assert!(allowed.contains(&canon.join("a/b")));
        assert!(!allowed.contains(&canon));
        let mut evil = canon.clone().into_os_string();
        evil.push("-evil");
        assert!(!allowed.contains(&PathBuf::from(evil).join("x")));
        assert!(!allowed.contains(Path::new("/")));
    }

    #[test]
    fn allowed_dirs_validation() {
        assert!(matches!(
            AllowedBaseDirs::new(Vec::<PathBuf>::new()),
            Err(BaseDirError::NoDirs)
        ));
        assert!(matches!(
            AllowedBaseDirs::new(["relative/dir"]),
            Err(BaseDirError::NotAbsolute { .. })
        ));
        let root = tempfile::tempdir().unwrap();
        let f = root.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(matches!(
            AllowedBaseDirs::new([&f]),
            Err(BaseDirError::NotDirectory { .. })
        ));
        // Duplicates (by canonical form) collapse.
        let a = AllowedBaseDirs::new([root.path(), &root.path().join(".")]).unwrap();
        assert_eq!(a.dirs().len(), 1);
    }

    #[test]
    fn open_nofollow_rejects_non_canonical() {
        assert!(matches!(
            open_nofollow(Path::new("/tmp/../etc/passwd"), Access::ReadOnly),
            Err(OpenError::NotCanonical { .. })
        ));
        assert!(matches!(
            open_nofollow(Path::new("relative"), Access::ReadOnly),
            Err(OpenError::NotCanonical { .. })
        ));
        assert!(matches!(
            open_nofollow(Path::new("/"), Access::ReadOnly),
            Err(OpenError::NotRegularFile { .. })
        ));
    }

    #[test]
    fn intermediate_symlink_refused_by_walk() {
        let root = tempfile::tempdir().unwrap();
        let real = root.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("f"), b"data").unwrap();
        std::os::unix::fs::symlink(&real, root.path().join("link")).unwrap();
        let canon_root = std::fs::canonicalize(root.path()).unwrap();
        match open_nofollow(&canon_root.join("link/f"), Access::ReadOnly) {
            Err(OpenError::SymlinkRefused { path }) => assert!(path.ends_with("link")),
            other => panic!("{other:?}"),
        }
        assert!(open_nofollow(&canon_root.join("real/f"), Access::ReadOnly).is_ok());
    }

    #[test]
    fn opened_file_is_blocking() {
        let root = tempfile::tempdir().unwrap();
        let f = root.path().join("f");
        std::fs::write(&f, b"data").unwrap();
        let canon = std::fs::canonicalize(&f).unwrap();
        let id = check_metadata(&canon).unwrap();
        let file = open_checked(&canon, id, Access::ReadWrite).unwrap();
        let bits = nix::fcntl::fcntl(file.as_raw_fd(), FcntlArg::F_GETFL).unwrap();
        let flags = OFlag::from_bits_truncate(bits);
        assert!(!flags.contains(OFlag::O_NONBLOCK));
        assert_eq!(flags & OFlag::O_ACCMODE, OFlag::O_RDWR);
        let fdflags = nix::fcntl::fcntl(file.as_raw_fd(), FcntlArg::F_GETFD).unwrap();
        assert!(fdflags & nix::libc::FD_CLOEXEC != 0);
    }

    #[test]
    fn hugetlbfs_magic_constant_matches_nix() {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(nix::sys::statfs::HUGETLBFS_MAGIC.0 as u64, HUGETLBFS_MAGIC);
        let dir = tempfile::tempdir().unwrap();
        // A tempdir is never on hugetlbfs.
        assert!(!is_hugetlbfs(dir.path()).unwrap());
        assert!(is_hugetlbfs(&dir.path().join("missing")).is_err());
    }
}
