//! Who else can write the directories the driver keeps its files in.
//!
//! The driver's guarantees (exclusive creation, never following a symlink, epochs never
//! reused; Wire Spec §15.10, §15.21a.6, Driver Model §3) assume that nobody but the
//! driver's own user adds, renames or removes entries under the base directory. A
//! directory another user can write breaks that assumption: that user can plant symlinks
//! or files at the names the driver is about to create, or replace a directory between
//! two of the driver's steps. So before it creates anything the driver checks:
//!
//! - the base directory (`shm.base_dir`, possibly the operator's own directory, reached
//!   through symlinks the operator configured) and `tensorpool-<user>` must be owned by
//!   the driver's user or by root, and writable by nobody else: not by every user, and not
//!   by a group unless it is the driver's own group and `shm.permissions_mode` already
//!   shares the files with that group. The sticky bit makes a shared directory acceptable
//!   (as `/dev/shm` is: others can add entries but not remove or rename the driver's).
//!   Anything else is refused at start-up with the path and the fix, unless the operator
//!   set `shm.allow_shared_dirs = true`, which turns the refusal into a warning;
//! - the directories the driver creates itself (`tensorpool-<user>`, the namespace and
//!   stream directories) must be owned by its user; when they already exist with more
//!   permission bits than the driver would give them they are tightened to that mode
//!   (not when shared directories are allowed: the operator opened them on purpose).

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::ProvisionFailure;

/// The sticky bit: in a directory with it, only an entry's owner may remove or rename it.
const STICKY: u32 = 0o1000;

/// The driver's identity and what it accepts of directories it does not control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct DirPolicy {
    /// Effective user id of the driver.
    pub uid: u32,
    /// Effective group id of the driver.
    pub gid: u32,
    /// Mode of directories the driver creates ([`super::dir_mode_for`]).
    pub dir_mode: u32,
    /// `shm.permissions_mode` grants the group access: a directory writable by the
    /// driver's own group is part of that sharing, not a foreign writer.
    pub group_shared: bool,
    /// `shm.allow_shared_dirs`.
    pub allow_shared: bool,
}

impl DirPolicy {
    /// The policy of the calling process for files of `file_mode` (`shm.permissions_mode`).
    pub fn for_process(file_mode: u32, allow_shared: bool) -> Self {
        Self {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            dir_mode: super::dir_mode_for(file_mode),
            group_shared: file_mode & 0o060 != 0,
            allow_shared,
        }
    }

    /// Why a user other than the driver's could add or remove entries in the directory
    /// described by `meta`; `None` when nobody else can. Root, as owner, is trusted: it
    /// can write anywhere anyway.
    pub fn foreign_writer(&self, meta: &Metadata) -> Option<String> {
        let mode = meta.mode() & 0o7777;
        let sticky = mode & STICKY != 0;
        if meta.uid() != self.uid && meta.uid() != 0 {
            return Some(format!(
                "it is owned by uid {}, not by this driver's user (uid {}) or root",
                meta.uid(),
                self.uid
            ));
        }
        if mode & 0o002 != 0 && !sticky {
            return Some(format!(
                "every user can write it (mode {mode:04o}, no sticky bit)"
            ));
        }
        let own_group = meta.gid() == self.gid && self.group_shared;
        if mode & 0o020 != 0 && !sticky && !own_group {
            return Some(if meta.gid() == self.gid {
                format!(
                    "its group (gid {}) can write it (mode {mode:04o}) while \
                     shm.permissions_mode shares nothing with the group",
                    meta.gid()
                )
            } else {
                format!(
                    "group {} can write it (mode {mode:04o}), not this driver's group (gid {})",
                    meta.gid(),
                    self.gid
                )
            });
        }
        None
    }

    /// Checks a directory the driver did not necessarily create (the base directory, an
    /// existing `tensorpool-<user>`): refused when another user can write it, unless
    /// shared directories are allowed (then a warning). `what` names its role.
    pub fn check_trusted(
        &self,
        what: &str,
        path: &Path,
        meta: &Metadata,
    ) -> Result<(), ProvisionFailure> {
        let Some(why) = self.foreign_writer(meta) else {
            return Ok(());
        };
        if self.allow_shared {
            tracing::warn!(
                path = %path.display(),
                "{what} is writable by other users ({why}); accepted because \
                 shm.allow_shared_dirs = true"
            );
            return Ok(());
        }
        Err(ProvisionFailure(format!(
            "refusing {what} {}: {why}, so another user could plant or replace entries \
             where the driver creates its files. Fix: make it owned by this user and \
             writable only by it (e.g. `chown {} {0} && chmod go-w {0}`, or add the sticky \
             bit with `chmod +t {0}`), choose another shm.base_dir, or set \
             shm.allow_shared_dirs = true to accept it",
            path.display(),
            self.uid,
        )))
    }

    /// Checks a directory the driver creates and owns (user, namespace or stream
    /// directory) that already exists: it must be the driver user's; extra permission
    /// bits are removed (returns whether the mode was changed).
    pub fn check_owned(&self, path: &Path, meta: &Metadata) -> Result<bool, ProvisionFailure> {
        if meta.uid() != self.uid {
            let failure = ProvisionFailure(format!(
                "refusing {}: it is owned by uid {}, not by this driver's user (uid {}); \
                 the driver creates this directory itself. Fix: remove it (or chown it to \
                 uid {}) and restart",
                path.display(),
                meta.uid(),
                self.uid,
                self.uid
            ));
            if !self.allow_shared {
                return Err(failure);
            }
            tracing::warn!("{failure}; accepted because shm.allow_shared_dirs = true");
            return Ok(false);
        }
        let mode = meta.mode() & 0o7777;
        if mode & !self.dir_mode == 0 || self.allow_shared {
            return Ok(false);
        }
        super::files::chmod_dir(path, self.dir_mode)?;
        tracing::warn!(
            path = %path.display(),
            "tightened the mode of an existing directory from {mode:04o} to {:04o}",
            self.dir_mode
        );
        Ok(true)
    }
}

impl DirPolicy {
    /// [`DirPolicy::check_owned`] (tightening the mode), then, as the group may still be
    /// a foreign one, [`DirPolicy::check_trusted`] on what is left.
    pub fn check_own_dir(&self, path: &Path, meta: &Metadata) -> Result<(), ProvisionFailure> {
        if self.check_owned(path, meta)? {
            let meta =
                std::fs::symlink_metadata(path).map_err(|e| super::fail("inspecting", path, e))?;
            return self.check_trusted("the directory", path, &meta);
        }
        self.check_trusted("the directory", path, meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn policy(file_mode: u32, allow_shared: bool) -> DirPolicy {
        DirPolicy::for_process(file_mode, allow_shared)
    }

    fn dir_with_mode(root: &Path, name: &str, mode: u32) -> std::path::PathBuf {
        let path = root.join(name);
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn private_and_sticky_directories_are_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let p = policy(0o600, false);
        for (name, mode) in [("private", 0o700), ("read-only", 0o755), ("sticky", 0o1777)] {
            let dir = dir_with_mode(tmp.path(), name, mode);
            let meta = fs::metadata(&dir).unwrap();
            assert_eq!(p.foreign_writer(&meta), None, "{name} {mode:o}");
            p.check_trusted("shm.base_dir", &dir, &meta).unwrap();
        }
    }

    #[test]
    fn a_world_writable_directory_is_refused_with_path_and_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_with_mode(tmp.path(), "open", 0o777);
        let meta = fs::metadata(&dir).unwrap();
        let err = policy(0o660, false)
            .check_trusted("shm.base_dir", &dir, &meta)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&dir.display().to_string()), "{err}");
        assert!(err.contains("every user can write it (mode 0777"), "{err}");
        assert!(err.contains("shm.allow_shared_dirs = true"), "{err}");
        // The operator's explicit choice is accepted.
        policy(0o660, true)
            .check_trusted("shm.base_dir", &dir, &meta)
            .unwrap();
    }

    #[test]
    fn group_write_is_accepted_only_for_the_drivers_own_sharing_group() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_with_mode(tmp.path(), "group", 0o770);
        let meta = fs::metadata(&dir).unwrap();
        // The driver's group owns it (tempdir's creator is this process).
        assert_eq!(policy(0o660, false).foreign_writer(&meta), None);
        let why = policy(0o600, false).foreign_writer(&meta).unwrap();
        assert!(why.contains("shares nothing with the group"), "{why}");
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED a_directory_of_another_user_is_refused: needs root to chown");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_with_mode(tmp.path(), "theirs", 0o700);
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(4242)), None).unwrap();
        let meta = fs::metadata(&dir).unwrap();
        let err = policy(0o660, false)
            .check_trusted("shm.base_dir", &dir, &meta)
            .unwrap_err()
            .to_string();
        assert!(err.contains("owned by uid 4242"), "{err}");
        let err = policy(0o660, false)
            .check_owned(&dir, &meta)
            .unwrap_err()
            .to_string();
        assert!(err.contains("owned by uid 4242"), "{err}");
    }

    #[test]
    fn an_own_directory_with_extra_bits_is_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_with_mode(tmp.path(), "mine", 0o777);
        let p = policy(0o660, false);
        let meta = fs::metadata(&dir).unwrap();
        assert!(p.check_owned(&dir, &meta).unwrap());
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o770);
        // Already tight: nothing to do.
        let meta = fs::metadata(&dir).unwrap();
        assert!(!p.check_owned(&dir, &meta).unwrap());
        // Shared directories allowed: left as the operator made them.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let meta = fs::metadata(&dir).unwrap();
        assert!(!policy(0o660, true).check_owned(&dir, &meta).unwrap());
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
            0o777
        );
    }
}
