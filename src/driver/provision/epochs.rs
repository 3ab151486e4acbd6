//! Epoch numbering across restarts (Driver Model §6, §10, §14): the highest epoch ever
//! used for a stream is the maximum of every numeric directory name under the stream
//! directory and the high-water file `<stream_dir>/epoch.hwm`, which is rewritten
//! atomically (temporary file + `rename`) before an epoch's files are created, so an
//! epoch is never reused even after its directory was deleted.

use super::fail;
use crate::driver::core::ProvisionFailure;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Name of the high-water file inside a stream directory.
pub const HIGH_WATER_FILE: &str = "epoch.hwm";

/// Longest high-water file content accepted (20 digits + newline, with slack).
const MAX_HIGH_WATER_LEN: u64 = 64;

/// Parses any all-digit name as an epoch (leading zeros allowed); `None` otherwise.
pub(super) fn parse_epoch_lenient(name: &str) -> Option<u64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Parses a name the provisioner itself would create for an epoch (canonical decimal:
/// no sign, no leading zero).
pub(super) fn parse_epoch_canonical(name: &str) -> Option<u64> {
    let n = parse_epoch_lenient(name)?;
    (n.to_string() == name).then_some(n)
}

/// Path of the high-water file of a stream directory.
pub(super) fn high_water_path(stream_dir: &Path) -> PathBuf {
    stream_dir.join(HIGH_WATER_FILE)
}

/// Highest epoch ever used under `stream_dir` (0 when it does not exist).
pub(super) fn highest_epoch(stream_dir: &Path) -> Result<u64, ProvisionFailure> {
    let from_dirs = max_numeric_entry(stream_dir)?;
    let from_file = read_high_water(stream_dir)?.unwrap_or(0);
    Ok(from_dirs.max(from_file))
}

/// Largest numeric entry name in `dir` (non-numeric names ignored; 0 if none or if the
/// directory does not exist).
fn max_numeric_entry(dir: &Path) -> Result<u64, ProvisionFailure> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(fail("reading", dir, e)),
    };
    let mut max = 0;
    for entry in entries {
        let entry = entry.map_err(|e| fail("reading", dir, e))?;
        if let Some(n) = entry.file_name().to_str().and_then(parse_epoch_lenient) {
            max = max.max(n);
        }
    }
    Ok(max)
}

/// Parses high-water file content: decimal digits, optionally one trailing newline.
pub(super) fn parse_high_water(content: &[u8]) -> Option<u64> {
    let digits = content.strip_suffix(b"\n").unwrap_or(content);
    std::str::from_utf8(digits)
        .ok()
        .and_then(parse_epoch_lenient)
}

/// Reads the high-water file (`None` if absent). Anything unparsable is an error: a
/// corrupt file must never silently restart numbering at 0.
pub(super) fn read_high_water(stream_dir: &Path) -> Result<Option<u64>, ProvisionFailure> {
    let path = high_water_path(stream_dir);
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC | nix::libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail("opening epoch high-water file", &path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| fail("inspecting epoch high-water file", &path, e))?;
    if !meta.is_file() {
        return Err(ProvisionFailure(format!(
            "corrupt epoch high-water file {}: not a regular file",
            path.display()
        )));
    }
    let mut content = Vec::new();
    file.take(MAX_HIGH_WATER_LEN + 1)
        .read_to_end(&mut content)
        .map_err(|e| fail("reading epoch high-water file", &path, e))?;
    match parse_high_water(&content) {
        Some(n) if content.len() as u64 <= MAX_HIGH_WATER_LEN => Ok(Some(n)),
        _ => Err(ProvisionFailure(format!(
            "corrupt epoch high-water file {}: {:?} is not a decimal epoch (fix or remove \
             it only if no epoch above the intended value was ever used)",
            path.display(),
            String::from_utf8_lossy(&content[..content.len().min(MAX_HIGH_WATER_LEN as usize)])
        ))),
    }
}

/// Atomically replaces the high-water file with `epoch`: writes a temporary file in the
/// same directory (mode `mode`) and renames it over the old one. With `sync` (a filesystem
/// that outlives the kernel) the file is synced before the rename and the directory after.
pub(super) fn write_high_water(
    stream_dir: &Path,
    epoch: u64,
    mode: u32,
    sync: bool,
) -> Result<(), ProvisionFailure> {
    let path = high_water_path(stream_dir);
    let tmp = stream_dir.join(format!(".{HIGH_WATER_FILE}.{}.tmp", std::process::id()));
    match fs::symlink_metadata(&tmp) {
        Ok(meta) if meta.is_file() => {
            fs::remove_file(&tmp).map_err(|e| fail("removing stale", &tmp, e))?;
        }
        Ok(_) => {
            return Err(ProvisionFailure(format!(
                "writing {}: {} exists and is not a regular file",
                path.display(),
                tmp.display()
            )))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("inspecting", &tmp, e)),
    }
    let result = write_tmp_and_rename(&tmp, &path, epoch, mode, sync);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    if !sync {
        return Ok(());
    }
    File::open(stream_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| fail("syncing", stream_dir, e))
}

fn write_tmp_and_rename(
    tmp: &Path,
    path: &Path,
    epoch: u64,
    mode: u32,
    sync: bool,
) -> Result<(), ProvisionFailure> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(tmp)
        .map_err(|e| fail("creating", tmp, e))?;
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(|e| fail("setting mode of", tmp, e))?;
    file.write_all(format!("{epoch}\n").as_bytes())
        .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
        .map_err(|e| fail("writing", tmp, e))?;
    fs::rename(tmp, path).map_err(|e| fail("renaming over", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_names() {
        assert_eq!(parse_epoch_lenient("17"), Some(17));
        assert_eq!(parse_epoch_lenient("007"), Some(7));
        assert_eq!(parse_epoch_lenient("+7"), None);
        assert_eq!(parse_epoch_lenient(""), None);
        assert_eq!(parse_epoch_lenient("epoch.hwm"), None);
        assert_eq!(parse_epoch_lenient("99999999999999999999999"), None);
        assert_eq!(parse_epoch_canonical("007"), None);
        assert_eq!(parse_epoch_canonical("0"), Some(0));
        assert_eq!(
            parse_epoch_canonical("18446744073709551615"),
            Some(u64::MAX)
        );
    }

    #[test]
    fn high_water_content() {
        assert_eq!(parse_high_water(b"42\n"), Some(42));
        assert_eq!(parse_high_water(b"42"), Some(42));
        assert_eq!(parse_high_water(b""), None);
        assert_eq!(parse_high_water(b"\n"), None);
        assert_eq!(parse_high_water(b"42\n\n"), None);
        assert_eq!(parse_high_water(b" 42"), None);
        assert_eq!(parse_high_water(b"4x2"), None);
    }

    #[test]
    fn high_water_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_high_water(dir.path()), Ok(None));
        assert_eq!(highest_epoch(dir.path()), Ok(0));
        write_high_water(dir.path(), 9, 0o600, true).unwrap();
        assert_eq!(read_high_water(dir.path()), Ok(Some(9)));
        fs::create_dir(dir.path().join("12")).unwrap();
        fs::create_dir(dir.path().join("not-an-epoch")).unwrap();
        assert_eq!(highest_epoch(dir.path()), Ok(12));
        write_high_water(dir.path(), 30, 0o600, false).unwrap();
        assert_eq!(highest_epoch(dir.path()), Ok(30));
        fs::write(high_water_path(dir.path()), b"garbage").unwrap();
        let err = highest_epoch(dir.path()).unwrap_err();
        assert!(err.0.contains("corrupt"), "{err}");
        assert_eq!(highest_epoch(&dir.path().join("missing")), Ok(0));
    }
}
