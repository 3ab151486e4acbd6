//! Directory and region-file creation: modes, exclusive creation, sizing, prefault,
//! mlock and superblock initialisation (Wire Spec §6, §7.1, §15.10, §15.14, §15.21a.6;
//! Driver Model §3, §9, §17 `prefault_shm` / `mlock_shm`).
//!
//! Creating a region is cheap (an exclusive create, a sparse `ftruncate`, one mapping
//! and a superblock) and happens on the driver's duty cycle. Prefaulting is not: a large
//! profile needs seconds to allocate under memory or I/O pressure. It is therefore a
//! separate step ([`prefault_region`]) that never writes the region, so it can run on
//! another thread while a producer already fills the file.

use super::fail;
use super::trust::DirPolicy;
use crate::driver::core::ProvisionFailure;
use crate::shm::layout::{encode_superblock, ExpectedRegion, ACTIVITY_TIMESTAMP_OFFSET};
use memmap2::{MmapOptions, MmapRaw};
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// File and directory modes derived from `shm.permissions_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    /// Mode of every created file (exactly `shm.permissions_mode`).
    pub file: u32,
    /// Mode of every created directory (see [`dir_mode_for`]).
    pub dir: u32,
}

impl Modes {
    /// The modes for a configured file mode.
    pub fn from_file_mode(file_mode: u32) -> Self {
        Self {
            file: file_mode & 0o7777,
            dir: dir_mode_for(file_mode),
        }
    }
}

/// Directory mode for a file mode: the file's user and group bits plus the matching
/// execute bits, never any "other" bit, always owner `rwx` (the driver creates and
/// deletes inside), and the setgid bit kept (§15.21a.6 shared-group `2770`).
/// `660` → `770`, `640` → `750`, `600` → `700`.
pub fn dir_mode_for(file_mode: u32) -> u32 {
    let group = file_mode & 0o070;
    let group = if group != 0 { group | 0o010 } else { 0 };
    0o700 | group | (file_mode & 0o2000)
}

/// The OS page size (4096 if unknown).
pub(super) fn os_page_size() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE) {
        Ok(Some(n)) => u64::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096),
        _ => 4096,
    }
}

/// Block size of the filesystem holding `path` (the huge page size on hugetlbfs).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn fs_block_size(path: &Path) -> io::Result<u64> {
    let st = nix::sys::statfs::statfs(path).map_err(io::Error::from)?;
    #[allow(clippy::unnecessary_cast)]
    let size = st.optimal_transfer_size() as u64;
    Ok(size)
}

/// Block size of the filesystem holding `path` (unknown: the OS page size).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn fs_block_size(_path: &Path) -> io::Result<u64> {
    Ok(os_page_size())
}

/// Whether `path` is on a filesystem that lives in memory (tmpfs, hugetlbfs). Flushing
/// writes there (`fsync`, `msync`) does nothing: the contents do not outlive the kernel,
/// and every mapping of a file sees a write at once.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(super) fn is_memory_fs(path: &Path) -> io::Result<bool> {
    use nix::sys::statfs::{statfs, HUGETLBFS_MAGIC, TMPFS_MAGIC};
    let kind = statfs(path).map_err(io::Error::from)?.filesystem_type();
    Ok(kind == TMPFS_MAGIC || kind == HUGETLBFS_MAGIC)
}

/// Whether `path` is on a filesystem that lives in memory (unknown here: no).
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(super) fn is_memory_fs(_path: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Bytes an unprivileged process may still allocate on the filesystem of `path`.
pub(super) fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).map_err(io::Error::from)?;
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    Ok(u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size())))
}

/// Sets `mode` on the directory at `path` without following a symlink (open
/// `O_DIRECTORY | O_NOFOLLOW`, then `fchmod`), so umask never changes it.
pub(super) fn chmod_dir(path: &Path, mode: u32) -> Result<(), ProvisionFailure> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| fail("opening directory", path, e))?;
    dir.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| fail("setting mode of", path, e))
}

/// Why an epoch directory or a region file could not be created.
#[derive(Debug)]
pub(super) enum CreateError {
    /// An entry the driver did not make (a file, a directory, a symlink) already has the
    /// name: never reused and never followed.
    Occupied(ProvisionFailure),
    /// Anything else (no space, no permission, mapping failed, ...).
    Failed(ProvisionFailure),
}

impl From<ProvisionFailure> for CreateError {
    fn from(failure: ProvisionFailure) -> Self {
        Self::Failed(failure)
    }
}

impl From<CreateError> for ProvisionFailure {
    fn from(error: CreateError) -> Self {
        match error {
            CreateError::Occupied(failure) | CreateError::Failed(failure) => failure,
        }
    }
}

/// The error of creating `path` exclusively (`O_EXCL`, `O_NOFOLLOW`): an entry in the
/// way (`EEXIST`, or `ELOOP` for a symlink) is [`CreateError::Occupied`].
fn creation_error(path: &Path, e: io::Error) -> CreateError {
    let occupied =
        e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(nix::libc::ELOOP);
    let failure = fail("creating", path, e);
    if occupied {
        CreateError::Occupied(failure)
    } else {
        CreateError::Failed(failure)
    }
}

/// Creates one directory with `mode` (umask-proof). An existing entry is
/// [`CreateError::Occupied`] (`File exists`, reported with the path).
pub(super) fn create_dir(path: &Path, mode: u32) -> Result<(), CreateError> {
    DirBuilder::new()
        .mode(mode)
        .create(path)
        .map_err(|e| creation_error(path, e))?;
    Ok(chmod_dir(path, mode)?)
}

/// Removes an epoch directory the driver created moments ago and could not complete:
/// its regular files and any entry planted in it meanwhile (a symlink is unlinked, never
/// followed), then the directory. A planted subdirectory is left, and so is the epoch
/// directory; the error says so.
pub(super) fn remove_half_built(epoch_dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(epoch_dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            return Err(io::Error::other(format!(
                "{} is a directory the driver did not create; left in place",
                entry.path().display()
            )));
        }
        // Unlinking a symlink removes the link itself.
        fs::remove_file(entry.path())?;
    }
    fs::remove_dir(epoch_dir)
}

/// Ensures a directory the driver owns exists: creates it with the policy's mode if
/// missing; an existing entry must be a real directory (a symlink is refused) of the
/// driver's user that nobody else can write ([`DirPolicy::check_own_dir`]).
/// Returns whether it was created.
pub(super) fn ensure_dir(path: &Path, policy: &DirPolicy) -> Result<bool, ProvisionFailure> {
    let mode = policy.dir_mode;
    match DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            chmod_dir(path, mode)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::symlink_metadata(path).map_err(|e| fail("inspecting", path, e))?;
            if meta.file_type().is_symlink() {
                Err(ProvisionFailure(format!(
                    "creating {}: a symlink is in the way (refusing to follow it)",
                    path.display()
                )))
            } else if meta.is_dir() {
                policy.check_own_dir(path, &meta)?;
                Ok(false)
            } else {
                Err(ProvisionFailure(format!(
                    "creating {}: an entry that is not a directory is in the way",
                    path.display()
                )))
            }
        }
        Err(e) => Err(fail("creating", path, e)),
    }
}

/// Creates `path` and every missing ancestor with the policy's mode (the base directory
/// may itself be, or sit below, a symlink the operator configured).
pub(super) fn create_dir_levels(path: &Path, policy: &DirPolicy) -> Result<(), ProvisionFailure> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        match fs::metadata(p) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(ProvisionFailure(format!(
                    "creating {}: {} exists and is not a directory",
                    path.display(),
                    p.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                missing.push(p.to_path_buf());
                cur = p.parent();
            }
            Err(e) => return Err(fail("creating", p, e)),
        }
    }
    for dir in missing.iter().rev() {
        ensure_dir(dir, policy)?;
    }
    Ok(())
}

/// What to do to every region file after creating it.
#[derive(Debug, Clone, Copy)]
pub(super) struct RegionOptions {
    /// Exact file mode.
    pub mode: u32,
    /// Prefault right after creation, before anyone knows the file (spare epochs made
    /// ahead); otherwise the caller prefaults later, or not at all.
    pub prefault: bool,
    /// Distance between touched bytes when prefaulting.
    pub touch_step: u64,
    /// Lock the mapping in RAM (`policies.mlock_shm`).
    pub mlock: bool,
    /// Flush the superblock to the file (not on a memory filesystem, see
    /// [`is_memory_fs`]).
    pub sync: bool,
    /// Superblock `pid`.
    pub pid: u64,
    /// Superblock start and activity timestamps.
    pub start_ns: u64,
}

/// One region of an epoch about to be created.
#[derive(Debug, Clone)]
pub(super) struct RegionPlan {
    /// Absolute canonical-layout path.
    pub path: PathBuf,
    /// What its superblock says.
    pub expected: ExpectedRegion,
    /// Exact file length.
    pub len: u64,
}

/// A created, mapped region of the current epoch of a stream.
#[derive(Debug)]
pub(super) struct OpenRegion {
    /// Its path.
    pub path: PathBuf,
    /// The open file, kept for prefaulting after the epoch is handed out.
    file: File,
    map: MmapRaw,
}

impl OpenRegion {
    /// Length of the mapping (the file's length).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes the file already occupies (allocated blocks; a sparse file has few).
    pub fn allocated_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        self.file
            .metadata()
            .map_or(0, |m| m.blocks().saturating_mul(512))
    }

    /// A second handle on the file, for prefaulting on another thread.
    pub fn file_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// Stores `now_ns` into the superblock's `activity_timestamp_ns` (Release).
    pub fn store_activity(&self, now_ns: u64) {
        if self.map.len() < ACTIVITY_TIMESTAMP_OFFSET + 8 {
            return;
        }
        // SAFETY: the mapping is page-aligned and at least 64 bytes long (checked
        // above), so offset 56 is in bounds and 8-byte aligned; it stays mapped for the
        // lifetime of `self`; `AtomicU64` has the layout of `u64`, and every other
        // writer or reader of this word uses atomic accesses.
        let cell = unsafe {
            &*(self
                .map
                .as_mut_ptr()
                .add(ACTIVITY_TIMESTAMP_OFFSET)
                .cast::<AtomicU64>())
        };
        cell.store(now_ns.to_le(), Ordering::Release);
    }
}

/// Creates, sizes, maps and initialises one region file. The file must not exist
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`); its mode is set with `fchmod` after creation so
/// the umask has no say.
pub(super) fn create_region(
    plan: &RegionPlan,
    opts: RegionOptions,
) -> Result<OpenRegion, CreateError> {
    let path = plan.path.as_path();
    let len = usize::try_from(plan.len).map_err(|_| {
        ProvisionFailure(format!(
            "sizing {}: {} bytes do not fit in the address space",
            path.display(),
            plan.len
        ))
    })?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(opts.mode)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| creation_error(path, e))?;
    file.set_permissions(Permissions::from_mode(opts.mode))
        .map_err(|e| fail("setting mode of", path, e))?;
    file.set_len(plan.len)
        .map_err(|e| fail(&format!("sizing to {} bytes", plan.len), path, e))?;
    let map = MmapOptions::new()
        .len(len)
        .map_raw(&file)
        .map_err(|e| fail("mapping", path, e))?;
    let sb = plan.expected.superblock(opts.pid, opts.start_ns);
    let bytes = encode_superblock(&sb);
    if map.len() < bytes.len() {
        return Err(CreateError::Failed(ProvisionFailure(format!(
            "mapping {}: {} bytes is shorter than the superblock",
            path.display(),
            map.len()
        ))));
    }
    // SAFETY: the mapping is at least `bytes.len()` long (checked above), writable, and
    // nobody else knows the file yet (it was created exclusively and is not announced).
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), map.as_mut_ptr(), bytes.len()) };
    if opts.sync {
        map.flush_range(0, bytes.len())
            .map_err(|e| fail("flushing the superblock of", path, e))?;
    }
    if opts.prefault {
        prefault_region(&file, path, plan.len, opts.touch_step)?;
    }
    if opts.mlock {
        map.lock().map_err(|e| fail("mlock of", path, e))?;
    }
    Ok(OpenRegion {
        path: plan.path.clone(),
        file,
        map,
    })
}

/// Prefaults a region (`policies.prefault_shm`): reserves every block of the file, so
/// that running out of memory is an error here instead of a `SIGBUS` in a client, then
/// reads one byte every `step` bytes through a read-only mapping of its own, which
/// brings the pages of a disk-backed file into the page cache. It never writes, so it is
/// safe while a producer fills the region.
pub(super) fn prefault_region(
    file: &File,
    path: &Path,
    len: u64,
    step: u64,
) -> Result<(), ProvisionFailure> {
    reserve(file, path, len)?;
    let Ok(len) = usize::try_from(len) else {
        return Ok(());
    };
    if len == 0 {
        return Ok(());
    }
    // SAFETY: a read-only shared mapping of a file the driver created; its length only
    // ever grows (the driver never truncates a region), so every byte read is backed.
    let map = unsafe { MmapOptions::new().len(len).map(file) }
        .map_err(|e| fail("mapping for prefault", path, e))?;
    let step = usize::try_from(step.max(1)).unwrap_or(4096);
    let mut off = 0usize;
    while off < map.len() {
        // SAFETY: `off < map.len()`; the mapping is readable and lives to the end of
        // the loop.
        unsafe { std::ptr::read_volatile(map.as_ptr().add(off)) };
        off = match off.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}

/// Reserves the file's blocks so that running out of space is an `ENOSPC` error here
/// rather than a `SIGBUS` when a page is first touched. Filesystems without
/// `fallocate` are left sparse.
#[cfg(target_os = "linux")]
fn reserve(file: &File, path: &Path, len: u64) -> Result<(), ProvisionFailure> {
    use std::os::fd::AsRawFd;
    let Ok(len) = nix::libc::off_t::try_from(len) else {
        return Err(ProvisionFailure(format!(
            "allocating {len} bytes for {}: size out of range",
            path.display()
        )));
    };
    match nix::fcntl::fallocate(
        file.as_raw_fd(),
        nix::fcntl::FallocateFlags::empty(),
        0,
        len,
    ) {
        Ok(()) | Err(nix::errno::Errno::EOPNOTSUPP) => Ok(()),
        Err(e) => Err(fail(
            &format!("allocating {len} bytes for"),
            path,
            io::Error::from(e),
        )),
    }
}

/// Space reservation is Linux-only; elsewhere the file stays sparse.
#[cfg(not(target_os = "linux"))]
fn reserve(_file: &File, _path: &Path, _len: u64) -> Result<(), ProvisionFailure> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_modes_add_execute_bits_and_drop_other() {
        assert_eq!(dir_mode_for(0o660), 0o770);
        assert_eq!(dir_mode_for(0o640), 0o750);
        assert_eq!(dir_mode_for(0o600), 0o700);
        assert_eq!(dir_mode_for(0o666), 0o770);
        assert_eq!(dir_mode_for(0o644), 0o750);
        assert_eq!(dir_mode_for(0o2660), 0o2770);
        assert_eq!(dir_mode_for(0o400), 0o700);
        assert_eq!(Modes::from_file_mode(0o640).file, 0o640);
    }

    #[test]
    fn memory_filesystems_are_recognised() {
        if Path::new("/dev/shm").is_dir() {
            assert!(
                is_memory_fs(Path::new("/dev/shm")).expect("statfs"),
                "tmpfs"
            );
        }
        if cfg!(target_os = "linux") {
            assert!(!is_memory_fs(Path::new("/proc")).expect("statfs"), "procfs");
        }
    }

    #[test]
    fn page_size_is_sane() {
        let p = os_page_size();
        assert!(p >= 4096 && p.is_power_of_two());
    }

    #[test]
    fn a_half_built_epoch_goes_with_entries_planted_in_it_without_following_them() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::write(&outside, b"not the driver's").unwrap();
        let epoch_dir = tmp.path().join("7");
        fs::create_dir(&epoch_dir).unwrap();
        fs::write(epoch_dir.join("header.ring"), b"driver's").unwrap();
        std::os::unix::fs::symlink(&outside, epoch_dir.join("1.pool")).unwrap();
        remove_half_built(&epoch_dir).unwrap();
        assert!(!epoch_dir.exists());
        assert_eq!(fs::read(&outside).unwrap(), b"not the driver's");
        // A planted directory stays, and so does the epoch directory.
        fs::create_dir_all(epoch_dir.join("planted")).unwrap();
        let err = remove_half_built(&epoch_dir).unwrap_err();
        assert!(err.to_string().contains("planted"), "{err}");
        assert!(epoch_dir.join("planted").is_dir());
    }

    #[test]
    fn an_entry_in_the_way_is_occupied_and_other_errors_are_failures() {
        let tmp = tempfile::tempdir().unwrap();
        let taken = tmp.path().join("taken");
        fs::write(&taken, b"").unwrap();
        assert!(matches!(
            create_dir(&taken, 0o700),
            Err(CreateError::Occupied(_))
        ));
        let missing_parent = tmp.path().join("no").join("such");
        assert!(matches!(
            create_dir(&missing_parent, 0o700),
            Err(CreateError::Failed(_))
        ));
    }
}
