//! Filesystem integration tests for safe region opening (Wire Spec §15.21a.5, §15.22).
//!
//! Every test works inside its own `tempfile::TempDir`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use tensorpool::shm::open::{
    check_metadata, is_hugetlbfs, map_region, open_checked, open_path, open_region, Access,
    AllowedBaseDirs, BaseDirError, FileKind, OpenError,
};
use tensorpool::shm::paths::CanonicalLayout;
use tensorpool::shm::uri::RegionUri;

/// A temp root containing `base/` (the allowed dir) and `outside/`.
struct Fixture {
    _root: TempDir,
    root: PathBuf,
    base: PathBuf,
    outside: PathBuf,
    allowed: AllowedBaseDirs,
}

fn fixture() -> Fixture {
    fixture_in(None)
}

fn fixture_in(parent: Option<&Path>) -> Fixture {
    let tmp = match parent {
        Some(p) => tempfile::Builder::new()
            .prefix("tp-test-")
            .tempdir_in(p)
            .unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let root = fs::canonicalize(tmp.path()).unwrap();
    let base = root.join("base");
    let outside = root.join("outside");
    fs::create_dir(&base).unwrap();
    fs::create_dir(&outside).unwrap();
    let allowed = AllowedBaseDirs::new([&base]).unwrap();
    Fixture {
        _root: tmp,
        root,
        base,
        outside,
        allowed,
    }
}

fn write_file(path: &Path, len: usize) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    fs::write(path, data).unwrap();
}

fn uri(path: &Path) -> RegionUri {
    RegionUri::from_path(path, false).unwrap()
}

fn open(fx: &Fixture, path: &Path) -> Result<tensorpool::shm::open::OpenedRegion, OpenError> {
    open_path(path, false, &fx.allowed, Access::ReadOnly)
}

#[test]
fn good_regular_file_opens_and_maps() {
    let fx = fixture();
    let layout = CanonicalLayout::with_user(&fx.base, "tester", "default").unwrap();
    let path = layout.header_ring_path(10000, 1);
    write_file(&path, 8192);

    let opened = open_region(&uri(&path), &fx.allowed, Access::ReadOnly).unwrap();
    assert_eq!(opened.canonical_path, path);
    assert_eq!(opened.len, 8192);
    assert!(!opened.on_hugetlbfs);
    assert_eq!(opened.access, Access::ReadOnly);

    let map = map_region(&opened, Access::ReadOnly).unwrap();
    assert_eq!(map.len(), 8192);
    // SAFETY: the mapping is live and 8192 bytes long; nothing writes concurrently.
    let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), map.len()) };
    assert_eq!(bytes[0], 0);
    assert_eq!(bytes[300], (300 % 251) as u8);

    // A read-only open cannot be mapped read-write.
    assert!(matches!(
        map_region(&opened, Access::ReadWrite),
        Err(OpenError::AccessMismatch { .. })
    ));
}

#[test]
fn read_write_mapping_is_shared() {
    let fx = fixture();
    let path = fx.base.join("pool.pool");
    write_file(&path, 4096);
    let opened = open_region(&uri(&path), &fx.allowed, Access::ReadWrite).unwrap();
    let map = map_region(&opened, Access::ReadWrite).unwrap();
    // SAFETY: in-bounds write to a live read-write mapping.
    unsafe { map.as_mut_ptr().add(10).write(0xAB) };
    map.flush().unwrap();
    drop(map);
    assert_eq!(fs::read(&path).unwrap()[10], 0xAB);
    // A read-write open may also be mapped read-only.
    assert!(map_region(&opened, Access::ReadOnly).is_ok());
}

#[test]
fn relative_path_refused() {
    let fx = fixture();
    let err = open(&fx, Path::new("base/file")).unwrap_err();
    assert!(matches!(err, OpenError::NotAbsolute { .. }), "{err:?}");
    assert!(err.to_string().contains("base/file"));
}

#[test]
fn missing_file_refused() {
    let fx = fixture();
    let err = open(&fx, &fx.base.join("nope")).unwrap_err();
    assert!(matches!(err, OpenError::Canonicalize { .. }), "{err:?}");
}

#[test]
fn dotdot_escape_refused() {
    let fx = fixture();
    let target = fx.outside.join("secret");
    write_file(&target, 64);
    let sneaky = fx.base.join("../outside/secret");
    let err = open(&fx, &sneaky).unwrap_err();
    match &err {
        OpenError::OutsideAllowedDirs { canonical, .. } => assert_eq!(canonical, &target),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("outside the allowed"));
}

#[test]
fn dotdot_inside_base_is_fine() {
    let fx = fixture();
    let target = fx.base.join("a/file");
    write_file(&target, 64);
    fs::create_dir_all(fx.base.join("b")).unwrap();
    let opened = open(&fx, &fx.base.join("b/../a/./file")).unwrap();
    assert_eq!(opened.canonical_path, target);
}

#[test]
fn sibling_prefix_dir_refused() {
    let fx = fixture();
    let evil_dir = fx.root.join("base-evil");
    let evil = evil_dir.join("file");
    write_file(&evil, 64);
    let err = open(&fx, &evil).unwrap_err();
    assert!(
        matches!(err, OpenError::OutsideAllowedDirs { .. }),
        "{err:?}"
    );
}

#[test]
fn base_dir_itself_refused() {
    let fx = fixture();
    let err = open(&fx, &fx.base).unwrap_err();
    assert!(
        matches!(err, OpenError::OutsideAllowedDirs { .. }),
        "{err:?}"
    );
}

#[test]
fn symlink_pointing_outside_refused() {
    let fx = fixture();
    let target = fx.outside.join("secret");
    write_file(&target, 64);
    let link = fx.base.join("link");
    symlink(&target, &link).unwrap();
    let err = open(&fx, &link).unwrap_err();
    assert!(
        matches!(err, OpenError::OutsideAllowedDirs { .. }),
        "{err:?}"
    );

    // Same for a symlinked directory component.
    let dir_link = fx.base.join("dirlink");
    symlink(&fx.outside, &dir_link).unwrap();
    let err = open(&fx, &dir_link.join("secret")).unwrap_err();
    assert!(
        matches!(err, OpenError::OutsideAllowedDirs { .. }),
        "{err:?}"
    );
}

/// Documented behaviour: a symlink inside the base whose target is also inside the base
/// passes containment (checked on the canonical path); the canonical target is what is
/// opened, so `open` never follows the link itself.
#[test]
fn symlink_inside_base_to_file_inside_opens_target() {
    let fx = fixture();
    let target = fx.base.join("real/header.ring");
    write_file(&target, 128);
    let link = fx.base.join("alias.ring");
    symlink(&target, &link).unwrap();

    let opened = open(&fx, &link).unwrap();
    assert_eq!(opened.canonical_path, target);
    assert_eq!(opened.len, 128);
    let target_id = check_metadata(&target).unwrap();
    assert_eq!(opened.identity, target_id);

    // The link itself is never opened: handing the link path to the no-follow open
    // step is refused.
    let err = open_checked(&link, target_id, Access::ReadOnly).unwrap_err();
    assert!(matches!(err, OpenError::SymlinkRefused { .. }), "{err:?}");
    // And lstat of the link is not a regular file.
    assert!(matches!(
        check_metadata(&link),
        Err(OpenError::NotRegularFile {
            kind: FileKind::Symlink,
            ..
        })
    ));
}

#[test]
fn dangling_symlink_refused() {
    let fx = fixture();
    let link = fx.base.join("dangling");
    symlink(fx.base.join("does-not-exist"), &link).unwrap();
    let err = open(&fx, &link).unwrap_err();
    assert!(matches!(err, OpenError::Canonicalize { .. }), "{err:?}");
}

#[test]
fn directory_refused() {
    let fx = fixture();
    let dir = fx.base.join("subdir");
    fs::create_dir(&dir).unwrap();
    let err = open(&fx, &dir).unwrap_err();
    match &err {
        OpenError::NotRegularFile { kind, path } => {
            assert_eq!(*kind, FileKind::Directory);
            assert_eq!(path, &dir);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("directory"));
}

#[test]
fn fifo_refused() {
    let fx = fixture();
    let fifo = fx.base.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = open(&fx, &fifo).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::NotRegularFile {
                kind: FileKind::Fifo,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn socket_refused() {
    let fx = fixture();
    let sock = fx.base.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let err = open(&fx, &sock).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::NotRegularFile {
                kind: FileKind::Socket,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn char_device_refused() {
    // /dev/null is only lstat'ed, never opened.
    let allowed = AllowedBaseDirs::new(["/dev"]).unwrap();
    let err = open_path(Path::new("/dev/null"), false, &allowed, Access::ReadOnly).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::NotRegularFile {
                kind: FileKind::CharDevice,
                ..
            }
        ),
        "{err:?}"
    );
}

/// Race simulation: the file is replaced by a different file between the metadata check
/// (step 4) and the open (step 5).
#[test]
fn swap_to_other_file_between_check_and_open() {
    let fx = fixture();
    let path = fx.base.join("header.ring");
    write_file(&path, 64);
    let checked = check_metadata(&path).unwrap();

    let replacement = fx.base.join("replacement");
    write_file(&replacement, 64);
    fs::rename(&replacement, &path).unwrap();

    let err = open_checked(&path, checked, Access::ReadOnly).unwrap_err();
    match err {
        OpenError::IdentityChanged {
            expected, actual, ..
        } => {
            assert_eq!(expected, checked);
            assert_ne!(actual, checked);
        }
        other => panic!("{other:?}"),
    }
}

/// Race simulation: the file is replaced by a symlink (to an outside file) between the
/// metadata check and the open.
#[test]
fn swap_to_symlink_between_check_and_open() {
    let fx = fixture();
    let path = fx.base.join("header.ring");
    write_file(&path, 64);
    let checked = check_metadata(&path).unwrap();

    let target = fx.outside.join("secret");
    write_file(&target, 64);
    let tmp_link = fx.base.join("tmp-link");
    symlink(&target, &tmp_link).unwrap();
    fs::rename(&tmp_link, &path).unwrap();

    let err = open_checked(&path, checked, Access::ReadOnly).unwrap_err();
    assert!(matches!(err, OpenError::SymlinkRefused { .. }), "{err:?}");
}

/// Race simulation: a parent directory is replaced by a symlink to an outside directory
/// holding a file; the per-component no-follow walk refuses it.
#[test]
fn swap_parent_dir_to_symlink_between_check_and_open() {
    let fx = fixture();
    let dir = fx.base.join("epoch");
    let path = dir.join("header.ring");
    write_file(&path, 64);
    let checked = check_metadata(&path).unwrap();

    write_file(&fx.outside.join("header.ring"), 64);
    fs::rename(&dir, fx.base.join("epoch-old")).unwrap();
    symlink(&fx.outside, &dir).unwrap();

    let err = open_checked(&path, checked, Access::ReadOnly).unwrap_err();
    assert!(matches!(err, OpenError::SymlinkRefused { .. }), "{err:?}");
}

/// Race simulation: the file is replaced by a FIFO; the open must not block.
#[test]
fn swap_to_fifo_between_check_and_open() {
    let fx = fixture();
    let path = fx.base.join("header.ring");
    write_file(&path, 64);
    let checked = check_metadata(&path).unwrap();
    fs::remove_file(&path).unwrap();
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();

    // Reaching this point at all shows the open did not block. The freed inode number
    // may be reused by the FIFO, in which case the re-check of the file type catches it.
    let err = open_checked(&path, checked, Access::ReadOnly).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::IdentityChanged { .. }
                | OpenError::NotRegularFile {
                    kind: FileKind::Fifo,
                    ..
                }
        ),
        "{err:?}"
    );
}

#[test]
fn require_hugepages_on_tmpfs_refused() {
    // Prefer /dev/shm (tmpfs) if present; any non-hugetlbfs filesystem must be refused.
    let dev_shm = Path::new("/dev/shm");
    let fx = if dev_shm.is_dir() && !is_hugetlbfs(dev_shm).unwrap_or(true) {
        fixture_in(Some(dev_shm))
    } else {
        fixture()
    };
    let path = fx.base.join("header.ring");
    write_file(&path, 4096);
    let u = RegionUri::from_path(&path, true).unwrap();
    assert_eq!(
        u.to_string(),
        format!("shm:file?path={}|require_hugepages=true", path.display())
    );
    let err = open_region(&u, &fx.allowed, Access::ReadOnly).unwrap_err();
    assert!(
        matches!(err, OpenError::NotHugepageBacked { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("hugetlbfs"));
    assert!(!is_hugetlbfs(&fx.base).unwrap());

    // Without the requirement the same file opens fine.
    let u = RegionUri::parse(&format!(
        "shm:file?path={}|require_hugepages=false",
        path.display()
    ))
    .unwrap();
    let opened = open_region(&u, &fx.allowed, Access::ReadOnly).unwrap();
    assert!(!opened.on_hugetlbfs);
}

#[test]
fn allowed_dir_missing_is_error() {
    let fx = fixture();
    let missing = fx.root.join("missing");
    let err = AllowedBaseDirs::new([&fx.base, &missing]).unwrap_err();
    match &err {
        BaseDirError::Canonicalize { dir, .. } => assert_eq!(dir, &missing),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("missing"));
}

#[test]
fn allowed_dir_symlink_is_canonicalized_once() {
    let fx = fixture();
    let link = fx.root.join("base-link");
    symlink(&fx.base, &link).unwrap();
    let allowed = AllowedBaseDirs::new([&link]).unwrap();
    assert_eq!(allowed.dirs(), std::slice::from_ref(&fx.base));
    let path = fx.base.join("f");
    write_file(&path, 16);
    // Announced via the symlinked base: canonical path is inside the canonical base.
    let opened = open_path(&link.join("f"), false, &allowed, Access::ReadOnly).unwrap();
    assert_eq!(opened.canonical_path, path);
}

#[test]
fn multiple_allowed_dirs() {
    let fx = fixture();
    let allowed = AllowedBaseDirs::new([&fx.base, &fx.outside]).unwrap();
    let a = fx.base.join("a");
    let b = fx.outside.join("b");
    write_file(&a, 8);
    write_file(&b, 8);
    assert!(open_path(&a, false, &allowed, Access::ReadOnly).is_ok());
    assert!(open_path(&b, false, &allowed, Access::ReadOnly).is_ok());
    let c = fx.root.join("c");
    write_file(&c, 8);
    assert!(matches!(
        open_path(&c, false, &allowed, Access::ReadOnly),
        Err(OpenError::OutsideAllowedDirs { .. })
    ));
}

#[test]
fn zero_length_file_refused_for_mapping() {
    let fx = fixture();
    let path = fx.base.join("empty.pool");
    write_file(&path, 0);
    let opened = open(&fx, &path).unwrap();
    assert_eq!(opened.len, 0);
    let err = map_region(&opened, Access::ReadOnly).unwrap_err();
    assert!(matches!(err, OpenError::Empty { .. }), "{err:?}");
    assert!(err.to_string().contains("empty.pool"));
}

#[test]
fn unreadable_file_reports_open_error() {
    if nix::unistd::geteuid().is_root() {
        // root bypasses permission bits
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let fx = fixture();
    let path = fx.base.join("locked");
    write_file(&path, 8);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let err = open(&fx, &path).unwrap_err();
    assert!(matches!(err, OpenError::Open { .. }), "{err:?}");
}
