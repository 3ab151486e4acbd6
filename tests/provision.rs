//! Integration tests of `ShmProvisioner` on real files (Driver Model §3, §6, §9, §10,
//! §14, §15, §17; Wire Spec §6, §7.1, §9, §15.10, §15.21a, §15.22).
//!
//! Every test gets its own base directory (under /dev/shm when it exists, so files are
//! on tmpfs). Tests that change process-wide state (umask, RLIMIT_MEMLOCK) take the
//! global lock exclusively; the others share it.

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use tensorpool::config::{DriverConfig, NoEnv, Profile};
use tensorpool::driver::core::{CoreEnv, DriverCore, EpochLayout, Provisioner};
use tensorpool::driver::provision::{ShmProvisioner, HIGH_WATER_FILE};
use tensorpool::shm::layout::{LAYOUT_VERSION, MAGIC};
use tensorpool::shm::uri::RegionUri;

const USER: &str = "tester";
const STREAM: u32 = 10000;

static GLOBAL: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    GLOBAL.read().unwrap_or_else(|e| e.into_inner())
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    GLOBAL.write().unwrap_or_else(|e| e.into_inner())
}

fn base_tempdir() -> TempDir {
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("tp-provision-");
        b
    };
    if Path::new("/dev/shm").is_dir() {
        if let Ok(dir) = builder.tempdir_in("/dev/shm") {
            return dir;
        }
    }
    builder.tempdir().expect("temporary directory")
}

/// Knobs the tests vary.
struct Opts {
    mode: &'static str,
    prefault: bool,
    mlock: bool,
    gc_enabled: bool,
    gc_keep: u32,
    gc_min_age_ns: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            mode: "660",
            prefault: false,
            mlock: false,
            gc_enabled: true,
            gc_keep: 2,
            gc_min_age_ns: 0,
        }
    }
}

impl Opts {
    /// Epoch GC keeping only the current epoch, of epochs at least `min_age` old.
    fn keep_one_min_age(min_age: Duration) -> Self {
        Self {
            gc_keep: 1,
            gc_min_age_ns: u64::try_from(min_age.as_nanos()).expect("fits"),
            ..Self::default()
        }
    }
}

fn config(base: &Path, o: &Opts) -> DriverConfig {
    let toml = format!(
        r#"
[shm]
base_dir = "{base}"
namespace = "lab1"
permissions_mode = "{mode}"

[policies]
prefault_shm = {prefault}
mlock_shm = {mlock}
epoch_gc_enabled = {gc_enabled}
epoch_gc_keep = {gc_keep}
epoch_gc_min_age_ns = {gc_min_age_ns}

[profiles.small]
header_nslots = 8
payload_pools = [{{ pool_id = 1, stride_bytes = 64 }}, {{ pool_id = 2, stride_bytes = 4096 }}]

[streams.cam]
stream_id = {STREAM}
profile = "small"
"#,
        base = base.display(),
        mode = o.mode,
        prefault = o.prefault,
        mlock = o.mlock,
        gc_enabled = o.gc_enabled,
        gc_keep = o.gc_keep,
        gc_min_age_ns = o.gc_min_age_ns,
    );
    DriverConfig::from_toml_str(&toml, &NoEnv).expect("valid test configuration")
}

fn profile(cfg: &DriverConfig) -> Profile {
    cfg.profile("small").expect("profile").clone()
}

fn provisioner(cfg: &DriverConfig) -> ShmProvisioner {
    ShmProvisioner::with_user(cfg, USER).expect("provisioner")
}

/// A fresh base directory (keep it for the whole test), the configuration for `o` on it
/// and a provisioner.
fn setup(o: &Opts) -> (TempDir, DriverConfig, ShmProvisioner) {
    let base = base_tempdir();
    let cfg = config(base.path(), o);
    let p = provisioner(&cfg);
    (base, cfg, p)
}

/// Provisions the next epoch the way the core does (high-water + 1).
fn next_epoch(p: &mut ShmProvisioner, cfg: &DriverConfig, stream_id: u32) -> EpochLayout {
    let epoch = p.highest_epoch(stream_id).expect("highest epoch") + 1;
    p.provision(stream_id, epoch, LAYOUT_VERSION, &profile(cfg))
        .expect("provision")
}

fn epoch_dirs(p: &ShmProvisioner, stream_id: u32) -> Vec<u64> {
    let mut v: Vec<u64> = fs::read_dir(p.layout().stream_dir(stream_id))
        .expect("stream dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Every file of an epoch layout: (path, region type, pool id, slot bytes, stride).
fn regions(layout: &EpochLayout) -> Vec<(PathBuf, u16, u16, u32, u32)> {
    let mut v = vec![(
        RegionUri::parse(&layout.header_region_uri)
            .expect("uri")
            .path()
            .to_path_buf(),
        1,
        0,
        256,
        0,
    )];
    for pool in &layout.pools {
        v.push((
            RegionUri::parse(&pool.region_uri)
                .expect("uri")
                .path()
                .to_path_buf(),
            2,
            pool.pool_id,
            pool.stride_bytes,
            pool.stride_bytes,
        ));
    }
    v
}

#[test]
fn files_have_exact_sizes_and_superblocks() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    let layout = p
        .provision(STREAM, 7, LAYOUT_VERSION, &profile(&cfg))
        .expect("provision");
    assert_eq!(layout.stream_id, STREAM);
    assert_eq!(layout.epoch, 7);
    assert_eq!(layout.header_nslots, 8);
    assert_eq!(layout.pools.len(), 2);

    let l = p.layout();
    let expected_files = [
        (l.header_ring_path(STREAM, 7), 64 + 8 * 256),
        (l.payload_pool_path(STREAM, 7, 1), 64 + 8 * 64),
        (l.payload_pool_path(STREAM, 7, 2), 64 + 8 * 4096),
    ];
    for (path, len) in &expected_files {
        assert_eq!(
            fs::metadata(path).expect("file").len(),
            *len,
            "{}",
            path.display()
        );
    }
    let mut names: Vec<String> = fs::read_dir(l.epoch_dir(STREAM, 7))
        .expect("epoch dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["1.pool", "2.pool", "header.ring"]);

    for (path, region_type, pool_id, slot_bytes, stride) in regions(&layout) {
        let b = fs::read(&path).expect("read region");
        assert_eq!(&b[0..8], &[0x31, 0x4D, 0x48, 0x53, 0x4C, 0x50, 0x4F, 0x54]);
        assert_eq!(u32_at(&b, 8), LAYOUT_VERSION);
        assert_eq!(u64_at(&b, 12), 7, "epoch at byte 12");
        assert_eq!(u32_at(&b, 20), STREAM);
        assert_eq!(u16_at(&b, 24), region_type);
        assert_eq!(u16_at(&b, 26), pool_id);
        assert_eq!(u32_at(&b, 28), 8, "nslots");
        assert_eq!(u32_at(&b, 32), slot_bytes);
        assert_eq!(u32_at(&b, 36), stride);
        assert_eq!(u64_at(&b, 40), u64::from(std::process::id()));
        let start = u64_at(&b, 48);
        assert!(start > 0);
        assert_eq!(u64_at(&b, 56), start, "activity starts at the start time");
        assert!(b[64..].iter().all(|&x| x == 0), "region body is zeroed");
    }
}

#[test]
fn uris_parse_and_point_at_canonical_paths() {
    let _g = shared();
    let (base, cfg, mut p) = setup(&Opts::default());
    assert!(!p.is_hugetlbfs());
    let layout = next_epoch(&mut p, &cfg, STREAM);
    let l = p.layout();
    let header = RegionUri::parse(&layout.header_region_uri).expect("header uri");
    assert_eq!(header.path(), l.header_ring_path(STREAM, 1));
    assert!(!header.require_hugepages());
    assert_eq!(
        layout.header_region_uri,
        format!("shm:file?path={}", l.header_ring_path(STREAM, 1).display())
    );
    assert!(l
        .header_ring_path(STREAM, 1)
        .starts_with(base.path().join("tensorpool-tester").join("lab1")));
    for pool in &layout.pools {
        let uri = RegionUri::parse(&pool.region_uri).expect("pool uri");
        assert_eq!(uri.path(), l.payload_pool_path(STREAM, 1, pool.pool_id));
        assert!(!pool.region_uri.contains("require_hugepages"));
        assert_eq!(pool.nslots, 8);
    }
    assert_eq!(layout.pools[0].stride_bytes, 64);
    assert_eq!(layout.pools[1].stride_bytes, 4096);
}

/// Sets the umask for the guard's lifetime.
struct Umask(nix::sys::stat::Mode);

impl Umask {
    fn set(bits: u32) -> Self {
        let mode = nix::sys::stat::Mode::from_bits_truncate(bits as nix::libc::mode_t);
        Self(nix::sys::stat::umask(mode))
    }
}

impl Drop for Umask {
    fn drop(&mut self) {
        nix::sys::stat::umask(self.0);
    }
}

fn assert_modes(mode: &'static str, file_bits: u32, dir_bits: u32, umask: u32) {
    let _g = exclusive();
    let base = base_tempdir();
    // The base directory itself is created by the provisioner (two missing levels).
    let root = base.path().join("a").join("b");
    let cfg = config(
        &root,
        &Opts {
            mode,
            ..Opts::default()
        },
    );
    let (mut p, layout) = {
        let _umask = Umask::set(umask);
        let mut p = provisioner(&cfg);
        let layout = next_epoch(&mut p, &cfg, STREAM);
        (p, layout)
    };
    assert_eq!(p.file_mode(), file_bits);
    assert_eq!(p.dir_mode(), dir_bits);
    for (path, ..) in regions(&layout) {
        assert_eq!(mode_of(&path), file_bits, "{}", path.display());
    }
    let hwm = p.layout().stream_dir(STREAM).join(HIGH_WATER_FILE);
    assert_eq!(mode_of(&hwm), file_bits);
    let l = p.layout().clone();
    for dir in [
        base.path().join("a"),
        root.clone(),
        l.user_dir(),
        l.namespace_dir(),
        l.stream_dir(STREAM),
        l.epoch_dir(STREAM, 1),
    ] {
        let m = mode_of(&dir);
        assert_eq!(m, dir_bits, "{}", dir.display());
        assert_eq!(m & 0o007, 0, "{} is world-accessible", dir.display());
    }
    // Still exact on a second epoch created under a different umask.
    let _umask = Umask::set(0o000);
    let layout = next_epoch(&mut p, &cfg, STREAM);
    for (path, ..) in regions(&layout) {
        assert_eq!(mode_of(&path), file_bits);
    }
    assert_eq!(mode_of(&l.epoch_dir(STREAM, 2)), dir_bits);
}

#[test]
fn file_mode_640_is_exact_regardless_of_umask() {
    assert_modes("640", 0o640, 0o750, 0o077);
}

#[test]
fn file_mode_600_is_exact_regardless_of_umask() {
    assert_modes("600", 0o600, 0o700, 0o277);
}

#[test]
fn default_mode_660_gives_770_directories() {
    assert_modes("660", 0o660, 0o770, 0o022);
}

#[test]
fn existing_epoch_dir_fails_and_is_left_untouched() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    let epoch_dir = p.layout().epoch_dir(STREAM, 5);
    fs::create_dir_all(&epoch_dir).expect("plant epoch dir");
    fs::write(epoch_dir.join("header.ring"), b"keep me").expect("plant file");

    for epoch in [5, 3] {
        let err = p
            .provision(STREAM, epoch, LAYOUT_VERSION, &profile(&cfg))
            .expect_err("an existing epoch must not be reused");
        assert!(
            err.0
                .contains(&p.layout().stream_dir(STREAM).display().to_string()),
            "{err}"
        );
    }
    assert_eq!(
        fs::read(epoch_dir.join("header.ring")).expect("file"),
        b"keep me"
    );
    let names: Vec<_> = fs::read_dir(&epoch_dir).expect("dir").collect();
    assert_eq!(names.len(), 1, "nothing was added to the existing epoch");
    assert_eq!(p.current_epoch(STREAM), None);

    // Numbering continues above the planted epoch.
    let layout = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(layout.epoch, 6);
}

#[test]
fn highest_epoch_reads_dirs_and_high_water_file() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    assert_eq!(p.highest_epoch(STREAM), Ok(0), "no stream dir yet");
    let stream_dir = p.layout().stream_dir(STREAM);
    for name in ["3", "12", "junk", "12abc", "epoch.tmp"] {
        fs::create_dir_all(stream_dir.join(name)).expect("plant");
    }
    assert_eq!(p.highest_epoch(STREAM), Ok(12));
    fs::write(stream_dir.join(HIGH_WATER_FILE), b"40\n").expect("hwm");
    assert_eq!(p.highest_epoch(STREAM), Ok(40));
    fs::write(stream_dir.join(HIGH_WATER_FILE), b"9\n").expect("hwm");
    assert_eq!(p.highest_epoch(STREAM), Ok(12), "maximum of both sources");

    let layout = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(layout.epoch, 13);
    assert_eq!(
        fs::read_to_string(stream_dir.join(HIGH_WATER_FILE)).expect("hwm"),
        "13\n",
        "high-water file is updated by provision"
    );

    fs::write(stream_dir.join(HIGH_WATER_FILE), b"not a number").expect("corrupt");
    let err = p
        .highest_epoch(STREAM)
        .expect_err("corrupt high-water file");
    assert!(err.0.contains("corrupt"), "{err}");
    assert!(err.0.contains(HIGH_WATER_FILE), "{err}");
    let err = p
        .provision(STREAM, 14, LAYOUT_VERSION, &profile(&cfg))
        .expect_err("never provision past a corrupt high-water file");
    assert!(err.0.contains("corrupt"), "{err}");
    assert!(!p.layout().epoch_dir(STREAM, 14).exists());
}

#[test]
fn restart_never_reuses_an_epoch() {
    let _g = shared();
    let base = base_tempdir();
    let cfg = config(base.path(), &Opts::keep_one_min_age(Duration::ZERO));
    let mut used = Vec::new();
    {
        let mut p = provisioner(&cfg);
        for _ in 0..3 {
            let l = next_epoch(&mut p, &cfg, STREAM);
            p.retire_older(STREAM, l.epoch);
            used.push(l.epoch);
        }
        assert_eq!(epoch_dirs(&p, STREAM), [3], "GC removed the older epochs");
    }
    // Restart: the high-water mark survives GC of the directories.
    let mut p = provisioner(&cfg);
    let highest = p.highest_epoch(STREAM).expect("highest");
    assert!(used.iter().all(|&e| highest >= e));
    let l = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(l.epoch, 4);
    used.push(4);
    drop(p);

    // Start-up delete-and-recreate keeps the high-water file.
    let mut p = provisioner(&cfg);
    let report = p.remove_existing_epochs(STREAM).expect("remove");
    assert!(report.removed.contains(&(STREAM, 4)), "{report:?}");
    assert!(epoch_dirs(&p, STREAM).is_empty());
    assert!(p
        .layout()
        .stream_dir(STREAM)
        .join(HIGH_WATER_FILE)
        .is_file());
    drop(p);
    let mut p = provisioner(&cfg);
    assert_eq!(p.highest_epoch(STREAM), Ok(4));
    assert!(p
        .provision(STREAM, 4, LAYOUT_VERSION, &profile(&cfg))
        .is_err());
    let l = next_epoch(&mut p, &cfg, STREAM);
    assert!(used.iter().all(|&e| l.epoch > e));

    // Removing epochs of a stream that never existed is a no-op.
    assert_eq!(p.remove_existing_epochs(STREAM + 1), Ok(Default::default()));
}

#[test]
fn remove_existing_epochs_writes_missing_high_water_file() {
    let _g = shared();
    let (_base, _cfg, mut p) = setup(&Opts::default());
    let stream_dir = p.layout().stream_dir(STREAM);
    // Epoch directories left by an older driver without a high-water file.
    fs::create_dir_all(stream_dir.join("8")).expect("plant");
    fs::write(stream_dir.join("8").join("header.ring"), b"old").expect("plant");
    fs::create_dir_all(stream_dir.join("2")).expect("plant");
    let report = p.remove_existing_epochs(STREAM).expect("remove");
    assert_eq!(report.removed, [(STREAM, 2), (STREAM, 8)]);
    assert_eq!(
        fs::read_to_string(stream_dir.join(HIGH_WATER_FILE)).expect("hwm"),
        "8\n"
    );
    assert_eq!(p.highest_epoch(STREAM), Ok(8));
}

#[test]
fn gc_keeps_current_plus_keep_minus_one() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    for _ in 0..5 {
        let l = next_epoch(&mut p, &cfg, STREAM);
        p.retire_older(STREAM, l.epoch);
        assert!(
            epoch_dirs(&p, STREAM).contains(&l.epoch),
            "current epoch kept"
        );
    }
    assert_eq!(epoch_dirs(&p, STREAM), [4, 5]);

    // Epochs newer than the current one and the current one are never deleted.
    let stream_dir = p.layout().stream_dir(STREAM);
    fs::create_dir(stream_dir.join("9")).expect("plant newer epoch");
    let report = p.gc_stream(STREAM, 4, SystemTime::now());
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(epoch_dirs(&p, STREAM), [4, 5, 9]);
    let report = p.gc_stream(STREAM, 5, SystemTime::now());
    assert!(
        report.removed.is_empty(),
        "keep=2 keeps 4 while 5 is current"
    );
    assert_eq!(p.gc_error_count(), 0);
}

#[test]
fn gc_never_deletes_epochs_younger_than_min_age() {
    let _g = shared();
    let hour = Duration::from_secs(3600);
    let (_base, cfg, mut p) = setup(&Opts::keep_one_min_age(hour));
    for _ in 0..4 {
        let l = next_epoch(&mut p, &cfg, STREAM);
        p.retire_older(STREAM, l.epoch);
    }
    assert_eq!(
        epoch_dirs(&p, STREAM),
        [1, 2, 3, 4],
        "all younger than an hour"
    );
    let report = p.gc_stream(STREAM, 4, SystemTime::now());
    assert_eq!(report.too_young, 3);
    assert!(report.removed.is_empty());

    // Two hours later they are old enough; the current one still stays.
    let later = SystemTime::now() + 2 * hour;
    let report = p.gc_stream(STREAM, 4, later);
    assert_eq!(report.removed, [(STREAM, 3), (STREAM, 2), (STREAM, 1)]);
    assert_eq!(epoch_dirs(&p, STREAM), [4]);
    let report = p.gc_stream(STREAM, 4, later + hour);
    assert!(report.removed.is_empty());
    assert_eq!(epoch_dirs(&p, STREAM), [4]);
}

/// Sets the modification time of `dir` to `age` ago.
fn age_dir(dir: &Path, age: Duration) {
    let when = SystemTime::now() - age;
    fs::File::open(dir)
        .and_then(|f| f.set_modified(when))
        .expect("set the directory's modification time");
}

#[test]
fn retire_older_does_not_rescan_before_an_epoch_can_reach_the_minimum_age() {
    let _g = shared();
    let hour = Duration::from_secs(3600);
    let (_base, cfg, mut p) = setup(&Opts::keep_one_min_age(hour));
    let first = next_epoch(&mut p, &cfg, STREAM);
    p.retire_older(STREAM, first.epoch); // scans: nothing older than epoch 1
    let second = next_epoch(&mut p, &cfg, STREAM);
    // Epoch 1 is made to look old, but the scan found no epoch that could reach the
    // minimum age within the hour, so retiring does not look again.
    age_dir(&p.layout().epoch_dir(STREAM, first.epoch), 2 * hour);
    p.retire_older(STREAM, second.epoch);
    assert_eq!(epoch_dirs(&p, STREAM), [1, 2]);
    // An explicit scan judges the directory as it is.
    let report = p.gc_stream(STREAM, second.epoch, SystemTime::now());
    assert_eq!(report.removed, [(STREAM, 1)]);
}

#[test]
fn retire_older_collects_once_the_oldest_epoch_is_old_enough() {
    let _g = shared();
    let min_age = Duration::from_secs(1);
    let (_base, cfg, mut p) = setup(&Opts::keep_one_min_age(min_age));
    for _ in 0..2 {
        let l = next_epoch(&mut p, &cfg, STREAM);
        p.retire_older(STREAM, l.epoch);
    }
    assert_eq!(epoch_dirs(&p, STREAM), [1, 2], "both younger than 1 s");
    std::thread::sleep(min_age + Duration::from_millis(100));
    let l = next_epoch(&mut p, &cfg, STREAM);
    p.retire_older(STREAM, l.epoch);
    assert_eq!(epoch_dirs(&p, STREAM), [3]);
}

#[test]
fn epochs_on_a_disk_backed_base_dir_are_complete() {
    let _g = shared();
    // The default temporary directory: on a disk on most systems, where the provisioner
    // also syncs the high-water file and flushes superblocks.
    let base = tempfile::Builder::new()
        .prefix("tp-provision-disk-")
        .tempdir()
        .expect("temporary directory");
    let cfg = config(base.path(), &Opts::default());
    let mut p = provisioner(&cfg);
    next_epoch(&mut p, &cfg, STREAM);
    let second = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(second.epoch, 2);
    let hwm = p.layout().stream_dir(STREAM).join(HIGH_WATER_FILE);
    assert_eq!(fs::read_to_string(hwm).expect("hwm"), "2\n");
    for (path, ..) in regions(&second) {
        let bytes = fs::read(&path).expect("region");
        assert_eq!(u64_at(&bytes, 0), MAGIC, "{}", path.display());
    }
}

/// Whether this process maps `path`.
fn is_mapped(path: &Path) -> bool {
    let maps = fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let path = path.display().to_string();
    maps.lines().any(|line| line.ends_with(&path))
}

#[test]
fn previous_epoch_stays_mapped_until_the_next_activity_refresh() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    let old = next_epoch(&mut p, &cfg, STREAM);
    let old_header = regions(&old)[0].0.clone();
    assert!(is_mapped(&old_header));
    let new = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(p.current_epoch(STREAM), Some(new.epoch));
    assert!(
        is_mapped(&old_header),
        "the unmap waits until after the request"
    );
    assert_eq!(
        p.refresh_activity(1),
        3,
        "only the current epoch is refreshed"
    );
    assert!(!is_mapped(&old_header));
    assert!(is_mapped(&regions(&new)[0].0));
}

#[test]
fn gc_disabled_deletes_nothing() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts {
        gc_enabled: false,
        gc_keep: 1,
        ..Opts::default()
    });
    for _ in 0..3 {
        let l = next_epoch(&mut p, &cfg, STREAM);
        p.retire_older(STREAM, l.epoch);
    }
    assert_eq!(epoch_dirs(&p, STREAM), [1, 2, 3]);
    assert_eq!(p.gc_all(SystemTime::now()), Default::default());
    assert_eq!(epoch_dirs(&p, STREAM), [1, 2, 3]);
}

#[test]
fn gc_skips_symlink_planted_as_epoch_dir_without_following_it() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::keep_one_min_age(Duration::ZERO));
    let outside = base_tempdir();
    let victim = outside.path().join("precious");
    fs::write(&victim, b"do not delete").expect("victim");
    next_epoch(&mut p, &cfg, STREAM); // epoch 1, creates the stream dir
    let planted = p.layout().stream_dir(STREAM).join("2");
    symlink(outside.path(), &planted).expect("plant symlink");
    let l = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(l.epoch, 3, "the symlink's name counts for numbering");
    let l = next_epoch(&mut p, &cfg, STREAM);
    let report = p.gc_stream(STREAM, l.epoch, SystemTime::now());
    assert_eq!(report.removed, [(STREAM, 3), (STREAM, 1)]);
    assert_eq!(report.skipped, 1, "{report:?}");
    assert!(fs::symlink_metadata(&planted)
        .expect("symlink kept")
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(&victim).expect("victim"), b"do not delete");
    assert!(outside.path().is_dir());
}

#[test]
fn gc_all_collects_every_stream_at_startup() {
    let _g = shared();
    let base = base_tempdir();
    let cfg = config(base.path(), &Opts::keep_one_min_age(Duration::ZERO));
    {
        let mut p = provisioner(&cfg);
        for stream in [STREAM, STREAM + 1] {
            for _ in 0..3 {
                next_epoch(&mut p, &cfg, stream);
            }
        }
    }
    let mut p = provisioner(&cfg);
    let ns_dir = p.layout().namespace_dir();
    fs::create_dir(ns_dir.join("not-a-stream")).expect("plant");
    let report = p.gc_all(SystemTime::now());
    assert_eq!(report.removed.len(), 4, "{report:?}");
    assert_eq!(epoch_dirs(&p, STREAM), [3]);
    assert_eq!(epoch_dirs(&p, STREAM + 1), [3]);
    assert!(ns_dir.join("not-a-stream").is_dir());
}

#[test]
fn refresh_activity_updates_every_current_superblock() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    let old = next_epoch(&mut p, &cfg, STREAM);
    let other = next_epoch(&mut p, &cfg, STREAM + 1);
    let before: Vec<Vec<u8>> = regions(&old)
        .iter()
        .chain(regions(&other).iter())
        .map(|r| fs::read(&r.0).expect("read"))
        .collect();

    assert_eq!(p.refresh_activity(0x0102_0304_0506_0708), 6);
    for (r, before) in regions(&old)
        .iter()
        .chain(regions(&other).iter())
        .zip(&before)
    {
        let b = fs::read(&r.0).expect("read");
        assert_eq!(&b[56..64], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[..56], &before[..56], "rest of the superblock untouched");
        assert_eq!(&b[64..], &before[64..]);
    }

    // A newer epoch replaces the stream's mappings; the old epoch is no longer refreshed.
    let new = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(p.current_epoch(STREAM), Some(new.epoch));
    assert_eq!(p.refresh_activity(42), 6);
    for r in regions(&old) {
        assert_eq!(
            u64_at(&fs::read(&r.0).expect("read"), 56),
            0x0102_0304_0506_0708
        );
    }
    for r in regions(&new).iter().chain(regions(&other).iter()) {
        assert_eq!(u64_at(&fs::read(&r.0).expect("read"), 56), 42);
    }
    p.release(STREAM + 1);
    assert_eq!(p.refresh_activity(43), 3);
}

/// Whether every region file of `layout` has all its blocks allocated.
fn fully_allocated(layout: &EpochLayout) -> bool {
    regions(layout).iter().all(|(path, ..)| {
        let meta = fs::metadata(path).expect("metadata");
        meta.blocks() * 512 >= meta.len()
    })
}

/// Runs the provisioner's duty-cycle step until `done` or 20 s have passed.
fn collect_until(p: &mut ShmProvisioner, mut done: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < until {
        p.collect(0);
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn an_epoch_is_created_sparse_and_prefaulted_off_the_duty_cycle_once_a_producer_gets_it() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts {
        prefault: true,
        ..Opts::default()
    });
    let layout = next_epoch(&mut p, &cfg, STREAM);
    // The 4 KiB pool: 8 slots, larger than the one page its superblock occupies.
    let (pool_path, ..) = regions(&layout)[2].clone();
    let pool_meta = fs::metadata(&pool_path).expect("metadata");
    assert!(
        pool_meta.blocks() * 512 < pool_meta.len(),
        "no producer yet: the pool stays sparse"
    );
    p.prepare_for_producer(STREAM, layout.epoch)
        .expect("room for the epoch");
    // A producer writes while the thread prefaults: prefaulting never writes.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&pool_path)
        .expect("open pool");
    std::os::unix::fs::FileExt::write_all_at(&file, b"frame", 8192).expect("write");
    assert!(
        collect_until(&mut p, || fully_allocated(&layout)),
        "prefaulted"
    );
    let bytes = fs::read(&pool_path).expect("read");
    assert_eq!(&bytes[8192..8197], b"frame", "the producer's bytes survive");
    for (path, region_type, pool_id, slot_bytes, stride) in regions(&layout) {
        let b = fs::read(&path).expect("read");
        assert_eq!(u64_at(&b, 0), 0x544F_504C_5348_4D31, "magic");
        assert_eq!(u64_at(&b, 12), 1);
        assert_eq!(u32_at(&b, 20), STREAM);
        assert_eq!(u16_at(&b, 24), region_type);
        assert_eq!(u16_at(&b, 26), pool_id);
        assert_eq!(u32_at(&b, 32), slot_bytes);
        assert_eq!(u32_at(&b, 36), stride);
        assert_ne!(u64_at(&b, 48), 0);
    }
    // Asking again for the same epoch does nothing more.
    p.prepare_for_producer(STREAM, layout.epoch)
        .expect("already prefaulted");
    assert!(p.take_failed_epochs().is_empty());
}

#[test]
fn an_epoch_too_large_for_the_free_space_is_refused_before_a_producer_writes() {
    let _g = shared();
    let (_base, mut cfg, _) = setup(&Opts {
        prefault: true,
        ..Opts::default()
    });
    // More than any test machine's memory: 2^14 slots of 64 MiB is 1 TiB (a sparse file).
    let small = cfg.profiles.get_mut("small").expect("profile");
    small.header_nslots = 1 << 14;
    small.payload_pools[1].stride_bytes = 1 << 26;
    let mut p = provisioner(&cfg);
    let Ok(layout) = p.provision(STREAM, 1, LAYOUT_VERSION, &profile(&cfg)) else {
        return; // the filesystem refuses such a sparse file outright: nothing to check
    };
    let err = p
        .prepare_for_producer(STREAM, layout.epoch)
        .expect_err("no room");
    assert!(err.0.contains("not enough room"), "{err}");
    assert!(err.0.contains("prefault_shm"), "names a fix: {err}");
}

#[test]
fn mlock_success_path_keeps_superblocks() {
    let _g = exclusive();
    let (_base, cfg, mut p) = setup(&Opts {
        mlock: true,
        prefault: true,
        ..Opts::default()
    });
    let layout = next_epoch(&mut p, &cfg, STREAM);
    for (path, ..) in regions(&layout) {
        let b = fs::read(&path).expect("read");
        assert_eq!(&b[0..8], b"1MHSLPOT");
    }
}

/// Linux capability sets of the calling thread (capget/capset, version 3).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;
const CAP_IPC_LOCK: u32 = 14;

fn capget() -> Option<[CapData; 2]> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: valid header and two data structs, as capget(2) requires for version 3.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    (rc == 0).then_some(data)
}

fn capset(data: &[CapData; 2]) -> bool {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    // SAFETY: valid header and two data structs; pid 0 = the calling thread only.
    let rc = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    rc == 0
}

/// Lowers RLIMIT_MEMLOCK to 0 and drops CAP_IPC_LOCK from this thread's effective set
/// (root may otherwise mlock regardless of the limit); restores both on drop.
struct NoMlock {
    rlimit: nix::libc::rlimit,
    caps: Option<[CapData; 2]>,
}

impl NoMlock {
    fn new() -> Self {
        let mut rlimit = nix::libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: valid out-pointer.
        assert_eq!(
            unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_MEMLOCK, &mut rlimit) },
            0
        );
        let zero = nix::libc::rlimit {
            rlim_cur: 0,
            rlim_max: rlimit.rlim_max,
        };
        // SAFETY: valid pointer; lowering the soft limit is always permitted.
        assert_eq!(
            unsafe { nix::libc::setrlimit(nix::libc::RLIMIT_MEMLOCK, &zero) },
            0
        );
        let caps = capget();
        if let Some(caps) = caps {
            if caps[0].effective & (1 << CAP_IPC_LOCK) != 0 {
                let mut dropped = caps;
                dropped[0].effective &= !(1 << CAP_IPC_LOCK);
                assert!(capset(&dropped), "dropping CAP_IPC_LOCK");
            }
        }
        Self { rlimit, caps }
    }
}

impl Drop for NoMlock {
    fn drop(&mut self) {
        if let Some(caps) = &self.caps {
            capset(caps);
        }
        // SAFETY: valid pointer; restores the limits read in `new`.
        unsafe { nix::libc::setrlimit(nix::libc::RLIMIT_MEMLOCK, &self.rlimit) };
    }
}

#[test]
fn mlock_failure_is_a_provision_failure() {
    let _g = exclusive();
    let (_base, cfg, mut p) = setup(&Opts {
        mlock: true,
        ..Opts::default()
    });
    let result = {
        let _no_mlock = NoMlock::new();
        p.provision(STREAM, 1, LAYOUT_VERSION, &profile(&cfg))
    };
    let err = result.expect_err("mlock must fail with RLIMIT_MEMLOCK=0 and no CAP_IPC_LOCK");
    let header = p.layout().header_ring_path(STREAM, 1);
    assert!(err.0.contains("mlock"), "{err}");
    assert!(err.0.contains(&header.display().to_string()), "{err}");
    assert!(err.0.contains("(os error "), "{err}");
    // The partial epoch is removed; its number stays used.
    assert!(!p.layout().epoch_dir(STREAM, 1).exists());
    assert_eq!(p.current_epoch(STREAM), None);
    assert_eq!(p.highest_epoch(STREAM), Ok(1));
    // With the limit restored, the next epoch works.
    let layout = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(layout.epoch, 2);
}

#[test]
fn uncreatable_base_dir_reports_path_and_os_error() {
    let _g = shared();
    let base = base_tempdir();
    let file = base.path().join("plain-file");
    fs::write(&file, b"x").expect("file");
    let cfg = config(&file.join("shm"), &Opts::default());
    let err = ShmProvisioner::with_user(&cfg, USER).expect_err("base dir below a file");
    assert!(
        err.0.contains(&file.join("shm").display().to_string()),
        "{err}"
    );
    assert!(err.0.contains("Not a directory (os error 20)"), "{err}");
}

#[test]
fn blocked_user_dir_reports_path() {
    let _g = shared();
    let (base, cfg, mut p) = setup(&Opts::default());
    let user_dir = p.layout().user_dir();
    fs::write(&user_dir, b"in the way").expect("plant");
    let err = p
        .provision(STREAM, 1, LAYOUT_VERSION, &profile(&cfg))
        .expect_err("user dir is a file");
    assert!(err.0.contains(&user_dir.display().to_string()), "{err}");
    fs::remove_file(&user_dir).expect("unplant");
    symlink(base.path(), &user_dir).expect("plant symlink");
    let err = p
        .provision(STREAM, 1, LAYOUT_VERSION, &profile(&cfg))
        .expect_err("user dir is a symlink");
    assert!(err.0.contains("symlink"), "{err}");
}

#[test]
fn core_start_provisions_static_streams_through_the_provisioner() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    let mut core = DriverCore::new(
        &cfg,
        CoreEnv {
            lease_id_seed: 1,
            base_is_hugetlbfs: p.is_hugetlbfs(),
        },
    );
    core.start(1, &mut p).expect("start");
    assert_eq!(p.current_epoch(STREAM), Some(1));
    assert!(p.layout().header_ring_path(STREAM, 1).is_file());
    // A second driver run on the same base directory moves to a greater epoch.
    drop(core);
    let mut p = provisioner(&cfg);
    let mut core = DriverCore::new(
        &cfg,
        CoreEnv {
            lease_id_seed: 2,
            base_is_hugetlbfs: p.is_hugetlbfs(),
        },
    );
    core.start(2, &mut p).expect("restart");
    assert_eq!(p.current_epoch(STREAM), Some(2));
}

#[test]
fn the_driver_agent_path_refreshes_activity_through_the_trait() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    let layout = next_epoch(&mut p, &cfg, STREAM);
    Provisioner::refresh_activity(&mut p, 0x0A0B_0C0D_0E0F_1011);
    for r in regions(&layout) {
        let b = fs::read(&r.0).expect("read");
        assert_eq!(&b[56..64], &0x0A0B_0C0D_0E0F_1011u64.to_le_bytes());
    }
}

/// Issue 15 §2: entries planted at the names of the next epochs cost no attach. The
/// provision that meets them logs them, leaves them untouched (a symlink is never
/// followed) and makes the first free epoch; numbering continues from it.
#[test]
fn entries_planted_at_the_next_epochs_are_skipped_in_the_same_provision() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    assert_eq!(next_epoch(&mut p, &cfg, STREAM).epoch, 1);
    // Planted after the provisioner read the stream's high water.
    let planted_dir = p.layout().epoch_dir(STREAM, 2);
    fs::create_dir(&planted_dir).expect("plant a directory");
    fs::write(planted_dir.join("header.ring"), b"keep me").expect("plant a file");
    let outside = tempfile::tempdir().expect("outside");
    let planted_link = p.layout().epoch_dir(STREAM, 3);
    symlink(outside.path(), &planted_link).expect("plant a symlink");

    let layout = p
        .provision(STREAM, 2, LAYOUT_VERSION, &profile(&cfg))
        .expect("the provision moves past the planted entries");
    assert_eq!(layout.epoch, 4);
    assert!(p.layout().header_ring_path(STREAM, 4).is_file());
    assert_eq!(p.current_epoch(STREAM), Some(4));
    assert_eq!(
        fs::read(planted_dir.join("header.ring")).expect("planted file"),
        b"keep me"
    );
    assert!(fs::symlink_metadata(&planted_link)
        .expect("symlink kept")
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read_dir(outside.path()).expect("outside").count(),
        0,
        "nothing was written through the symlink"
    );
    // The next epoch continues above the one made.
    assert_eq!(next_epoch(&mut p, &cfg, STREAM).epoch, 5);
}

/// A directory filling with planted entries faster than the driver counts fails the
/// provision (naming a path) instead of spinning through epoch numbers.
#[test]
fn a_run_of_planted_epochs_longer_than_the_bound_fails_the_provision() {
    let _g = shared();
    let (_base, cfg, mut p) = setup(&Opts::default());
    assert_eq!(next_epoch(&mut p, &cfg, STREAM).epoch, 1);
    for epoch in 2..=10 {
        fs::create_dir(p.layout().epoch_dir(STREAM, epoch)).expect("plant");
    }
    let err = p
        .provision(STREAM, 2, LAYOUT_VERSION, &profile(&cfg))
        .expect_err("nine occupied epochs in a row");
    assert!(
        err.0
            .contains(&p.layout().epoch_dir(STREAM, 10).display().to_string()),
        "{err}"
    );
    assert_eq!(p.current_epoch(STREAM), None);
    // The spent numbers are never reused: the next attempt starts above them.
    assert_eq!(next_epoch(&mut p, &cfg, STREAM).epoch, 11);
}

fn config_with(base: &Path, extra_shm: &str) -> DriverConfig {
    let text = format!(
        "[shm]\nbase_dir = \"{}\"\nnamespace = \"lab1\"\n{extra_shm}\n\
         [profiles.small]\nheader_nslots = 8\npayload_pools = [{{ pool_id = 1, stride_bytes = 64 }}]\n\
         [streams.cam]\nstream_id = {STREAM}\nprofile = \"small\"\n",
        base.display()
    );
    DriverConfig::from_toml_str(&text, &NoEnv).expect("valid test configuration")
}

/// Issue 15 §2: a base directory every user can write is refused at start-up with the
/// path and the fix, unless the operator allows shared directories.
#[test]
fn a_world_writable_base_directory_is_refused_unless_allowed() {
    let _g = shared();
    let base = base_tempdir();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = ShmProvisioner::with_user(&config_with(base.path(), ""), USER)
        .expect_err("a world-writable base directory");
    let text = err.to_string();
    assert!(text.contains(&base.path().display().to_string()), "{text}");
    assert!(text.contains("every user can write it"), "{text}");
    assert!(text.contains("shm.allow_shared_dirs = true"), "{text}");
    assert!(
        !p_user_dir(base.path()).exists(),
        "nothing was created under a refused base"
    );
    ShmProvisioner::with_user(&config_with(base.path(), "allow_shared_dirs = true"), USER)
        .expect("accepted when shared directories are allowed");
    // With the sticky bit others cannot remove or rename the driver's entries.
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o1777)).expect("chmod");
    ShmProvisioner::with_user(&config_with(base.path(), ""), USER).expect("sticky base");
}

fn p_user_dir(base: &Path) -> PathBuf {
    base.join(format!("tensorpool-{USER}"))
}

/// Issue 15 §2: an existing `tensorpool-<user>` (and stream directory) left 0777 is
/// tightened to the driver's directory mode.
#[test]
fn existing_driver_directories_with_extra_bits_are_tightened() {
    let _g = shared();
    let base = base_tempdir();
    let user_dir = p_user_dir(base.path());
    let stream_dir = user_dir.join("lab1").join(STREAM.to_string());
    fs::create_dir_all(&stream_dir).expect("pre-existing directories");
    for dir in [&user_dir, &stream_dir] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let cfg = config_with(base.path(), "");
    let mut p = ShmProvisioner::with_user(&cfg, USER).expect("provisioner");
    assert_eq!(mode_of(&user_dir), 0o770, "tightened at start-up");
    let layout = next_epoch(&mut p, &cfg, STREAM);
    assert_eq!(layout.epoch, 1);
    assert_eq!(
        mode_of(&stream_dir),
        0o770,
        "tightened before its first epoch"
    );
}

/// Issue 15 §1: retired epochs come back on the driver's own schedule, not only when the
/// stream's next epoch is made: once they reach the minimum age, the periodic GC step
/// deletes them, a bounded number per step, and counts epochs and bytes.
#[test]
fn periodic_gc_reclaims_retired_epochs_of_a_quiet_stream() {
    let _g = shared();
    let min_age = Duration::from_millis(300);
    let (_base, cfg, mut p) = setup(&Opts::keep_one_min_age(min_age));
    for _ in 0..6 {
        next_epoch(&mut p, &cfg, STREAM);
    }
    assert_eq!(epoch_dirs(&p, STREAM), [1, 2, 3, 4, 5, 6]);
    let clock_ns = |_: &ShmProvisioner| tensorpool::clock::monotonic_now_ns();
    // Too young: nothing goes, and the next look waits.
    assert_eq!(p.collect_step(clock_ns(&p), SystemTime::now()), 0);
    assert_eq!(p.reclaimed_epochs(), 0);

    std::thread::sleep(min_age + Duration::from_millis(100));
    let mut steps = Vec::new();
    // The stream is quiet: no provision, no retire_older; only the periodic step runs.
    for _ in 0..10 {
        let removed = p.collect_step(clock_ns(&p), SystemTime::now());
        if removed == 0 {
            break;
        }
        steps.push(removed);
    }
    assert_eq!(epoch_dirs(&p, STREAM), [6], "only the current epoch stays");
    assert!(
        steps
            .iter()
            .all(|&n| n <= tensorpool::driver::provision::GC_STEP_MAX_EPOCHS),
        "bounded steps: {steps:?}"
    );
    assert_eq!(steps.iter().sum::<usize>(), 5, "{steps:?}");
    assert_eq!(p.reclaimed_epochs(), 5);
    assert!(p.reclaimed_bytes() > 0, "the deleted files held storage");
    assert_eq!(p.current_epoch(STREAM), Some(6));
    assert!(p.layout().header_ring_path(STREAM, 6).is_file());
}

/// A configuration with `policies.provision_ahead` on.
fn ahead_config(base: &Path) -> DriverConfig {
    let mut config = config_with(base, "");
    config.policies.provision_ahead = true;
    config
}

/// Runs the provisioner's duty-cycle step until the spare epoch `epoch` of the stream
/// exists with its header ring, or fails the test.
fn wait_for_spare(p: &mut ShmProvisioner, epoch: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        p.collect(tensorpool::clock::monotonic_now_ns());
        if p.layout().header_ring_path(STREAM, epoch).is_file()
            && p.spare_epoch(STREAM) == Some(epoch)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no spare epoch {epoch}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Issue 16: with `policies.provision_ahead` the next epoch is made on the worker thread
/// between attaches, and the provision of that epoch hands out those very files (same
/// inode, superblock already written, activity stamped at hand-out).
#[test]
fn provisioning_ahead_hands_out_the_spare_epochs_files() {
    let _g = shared();
    let base = base_tempdir();
    let cfg = ahead_config(base.path());
    let mut p = ShmProvisioner::with_user(&cfg, USER).expect("provisioner");
    assert_eq!(next_epoch(&mut p, &cfg, STREAM).epoch, 1);
    wait_for_spare(&mut p, 2);
    assert_eq!(p.current_epoch(STREAM), Some(1), "the spare is not current");
    let ring = p.layout().header_ring_path(STREAM, 2);
    let inode = fs::metadata(&ring).expect("spare ring").ino();
    let before = tensorpool::clock::monotonic_now_ns();

    let layout = p
        .provision(STREAM, 2, LAYOUT_VERSION, &profile(&cfg))
        .expect("provision the spare's epoch");
    assert_eq!(layout.epoch, 2);
    assert_eq!(p.current_epoch(STREAM), Some(2));
    assert_eq!(
        fs::metadata(&ring).expect("ring").ino(),
        inode,
        "the same file"
    );
    let bytes = fs::read(&ring).expect("ring");
    assert_eq!(u64_at(&bytes, 12), 2, "its superblock names epoch 2");
    assert!(
        u64_at(&bytes, 56) >= before,
        "activity stamped at hand-out, not when it was made"
    );
    // The next spare follows.
    wait_for_spare(&mut p, 3);
}

/// A spare of another epoch than the one asked for is removed, and the epoch made
/// instead is above every number spent, the spare's included.
#[test]
fn a_spare_of_another_epoch_is_discarded_and_numbering_stays_above_it() {
    let _g = shared();
    let base = base_tempdir();
    let cfg = ahead_config(base.path());
    let mut p = ShmProvisioner::with_user(&cfg, USER).expect("provisioner");
    assert_eq!(next_epoch(&mut p, &cfg, STREAM).epoch, 1);
    wait_for_spare(&mut p, 2);
    // The core numbered past the spare (its own epochs spent by failures, say).
    let layout = p
        .provision(STREAM, 5, LAYOUT_VERSION, &profile(&cfg))
        .expect("provision");
    assert_eq!(layout.epoch, 5);
    assert!(
        !p.layout().epoch_dir(STREAM, 2).exists(),
        "the unused spare is gone"
    );
    assert_eq!(p.highest_epoch(STREAM), Ok(5));
}
