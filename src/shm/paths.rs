//! Canonical SHM directory layout (Wire Spec §15.21a.3, Driver Model §15).
//!
//! Producers (in the Driver Model: the SHM driver) create backing files at
//!
//! ```text
//! <shm_base_dir>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>/header.ring
//! <shm_base_dir>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>/<pool_id>.pool
//! ```
//!
//! `<user>` is the effective user name, sanitized so it can never introduce a path
//! separator or a `.`/`..` component. `<namespace>` is validated (not sanitized): it is
//! deployment configuration and a bad value is an error. Consumers never derive paths
//! from this layout (§15.21a.4); it only governs where regions are created.

use std::path::{Path, PathBuf};

use crate::shm::uri;

/// The base directory drivers create regions under and clients accept them from unless
/// configured otherwise (`shm.base_dir`; Wire Spec §15.21a.5).
pub const DEFAULT_BASE_DIR: &str = "/dev/shm/tensorpool";

/// Prefix of the per-user directory name (`tensorpool-<user>`).
pub const USER_DIR_PREFIX: &str = "tensorpool-";

/// File name of the header ring backing file inside an epoch directory.
pub const HEADER_RING_FILE: &str = "header.ring";

/// Extension of payload pool backing files (`<pool_id>.pool`).
pub const POOL_FILE_EXTENSION: &str = "pool";

/// Errors building a [`CanonicalLayout`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The base directory is not an absolute path.
    #[error("shm base directory {} is not an absolute path", base.display())]
    BaseDirNotAbsolute {
        /// The offending base directory.
        base: PathBuf,
    },
    /// The base directory cannot be represented in a region URI (§15.22 `abs-path`).
    #[error("shm base directory {} cannot appear in a region URI: {reason}", base.display())]
    BaseDirNotUriSafe {
        /// The offending base directory.
        base: PathBuf,
        /// Why it is not representable.
        reason: String,
    },
    /// The namespace is not a single safe path component.
    #[error("invalid shm namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The offending namespace.
        namespace: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The canonical `<base>/tensorpool-<user>/<namespace>` layout (Wire Spec §15.21a.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalLayout {
    base_dir: PathBuf,
    user: String,
    namespace: String,
}

impl CanonicalLayout {
    /// Creates a layout for the effective user of this process.
    pub fn new(base_dir: impl Into<PathBuf>, namespace: &str) -> Result<Self, PathError> {
        Self::with_user_token(base_dir.into(), effective_user_token(), namespace)
    }

    /// Creates a layout for an explicit user name (sanitized like the effective user).
    pub fn with_user(
        base_dir: impl Into<PathBuf>,
        user: &str,
        namespace: &str,
    ) -> Result<Self, PathError> {
        let uid = nix::unistd::geteuid().as_raw();
        Self::with_user_token(base_dir.into(), sanitize_user_name(user, uid), namespace)
    }

    fn with_user_token(
        base_dir: PathBuf,
        user: String,
        namespace: &str,
    ) -> Result<Self, PathError> {
        if !base_dir.is_absolute() {
            return Err(PathError::BaseDirNotAbsolute { base: base_dir });
        }
        match base_dir.to_str() {
            None => {
                return Err(PathError::BaseDirNotUriSafe {
                    base: base_dir,
                    reason: "path is not valid UTF-8".to_owned(),
                })
            }
            Some(s) => {
                if let Err(e) = uri::validate_abs_path(s) {
                    return Err(PathError::BaseDirNotUriSafe {
                        reason: e.to_string(),
                        base: base_dir,
                    });
                }
            }
        }
        validate_namespace(namespace)?;
        Ok(Self {
            base_dir,
            user,
            namespace: namespace.to_owned(),
        })
    }

    /// The configured base directory (`shm_base_dir`).
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// The sanitized user token used in `tensorpool-<user>`.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The validated namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `<base>/tensorpool-<user>`.
    pub fn user_dir(&self) -> PathBuf {
        self.base_dir
            .join(format!("{USER_DIR_PREFIX}{}", self.user))
    }

    /// `<base>/tensorpool-<user>/<namespace>`.
    pub fn namespace_dir(&self) -> PathBuf {
        self.user_dir().join(&self.namespace)
    }

    /// `<base>/tensorpool-<user>/<namespace>/<stream_id>`.
    pub fn stream_dir(&self, stream_id: u32) -> PathBuf {
        self.namespace_dir().join(stream_id.to_string())
    }

    /// `<base>/tensorpool-<user>/<namespace>/<stream_id>/<epoch>`.
    pub fn epoch_dir(&self, stream_id: u32, epoch: u64) -> PathBuf {
        self.stream_dir(stream_id).join(epoch.to_string())
    }

    /// `<epoch_dir>/header.ring`.
    pub fn header_ring_path(&self, stream_id: u32, epoch: u64) -> PathBuf {
        self.epoch_dir(stream_id, epoch).join(HEADER_RING_FILE)
    }

    /// `<epoch_dir>/<pool_id>.pool`.
    pub fn payload_pool_path(&self, stream_id: u32, epoch: u64, pool_id: u16) -> PathBuf {
        self.epoch_dir(stream_id, epoch)
            .join(format!("{pool_id}.{POOL_FILE_EXTENSION}"))
    }
}

/// Whether `c` is allowed in a user token or namespace (`[A-Za-z0-9._-]`).
pub const fn is_safe_component_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// Sanitizes a user name into a single safe path component (falls back to `uid<N>`).
pub fn sanitize_user_name(raw: &str, uid: u32) -> String {
    let cleaned: String = raw
        .chars()
        .map(|c| if is_safe_component_char(c) { c } else { '_' })
        .collect();
    match cleaned.as_str() {
        "" | "." | ".." => format!("uid{uid}"),
        _ => cleaned,
    }
}

/// The sanitized effective user name of this process (numeric uid if unknown).
pub fn effective_user_token() -> String {
    let uid = nix::unistd::geteuid();
    let name = match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.as_raw().to_string(),
    };
    sanitize_user_name(&name, uid.as_raw())
}

/// Validates a namespace: non-empty single component of `[A-Za-z0-9._-]`, not `.`/`..`.
pub fn validate_namespace(namespace: &str) -> Result<(), PathError> {
    let err = |reason| {
        Err(PathError::InvalidNamespace {
            namespace: namespace.chars().take(256).collect(),
            reason,
        })
    };
    if namespace.is_empty() {
        return err("must not be empty");
    }
    if namespace == "." || namespace == ".." {
        return err("must not be \".\" or \"..\"");
    }
    if namespace.contains('/') {
        return err("must be a single path component (no '/')");
    }
    if !namespace.chars().all(is_safe_component_char) {
        return err("only [A-Za-z0-9._-] are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> CanonicalLayout {
        CanonicalLayout::with_user("/dev/shm/tp", "alice", "lab1").unwrap()
    }

    #[test]
    fn builds_canonical_paths() {
        let l = layout();
        assert_eq!(l.user_dir(), PathBuf::from("/dev/shm/tp/tensorpool-alice"));
        assert_eq!(
            l.namespace_dir(),
            PathBuf::from("/dev/shm/tp/tensorpool-alice/lab1")
        );
        assert_eq!(
            l.stream_dir(10000),
            PathBuf::from("/dev/shm/tp/tensorpool-alice/lab1/10000")
        );
        assert_eq!(
            l.epoch_dir(10000, 7),
            PathBuf::from("/dev/shm/tp/tensorpool-alice/lab1/10000/7")
        );
        assert_eq!(
            l.header_ring_path(10000, 7),
            PathBuf::from("/dev/shm/tp/tensorpool-alice/lab1/10000/7/header.ring")
        );
        assert_eq!(
            l.payload_pool_path(10000, 7, 2),
            PathBuf::from("/dev/shm/tp/tensorpool-alice/lab1/10000/7/2.pool")
        );
        assert_eq!(
            l.payload_pool_path(u32::MAX, u64::MAX, u16::MAX),
            PathBuf::from(format!(
                "/dev/shm/tp/tensorpool-alice/lab1/{}/{}/{}.pool",
                u32::MAX,
                u64::MAX,
                u16::MAX
            ))
        );
    }

    #[test]
    fn paths_are_uri_safe() {
        let l = layout();
        let p = l.payload_pool_path(1, 2, 3);
        assert!(uri::RegionUri::from_path(&p, false).is_ok());
    }

    #[test]
    fn sanitizes_user() {
        assert_eq!(sanitize_user_name("alice", 5), "alice");
        assert_eq!(sanitize_user_name("a.b-c_d9", 5), "a.b-c_d9");
        assert_eq!(sanitize_user_name("../etc", 5), ".._etc");
        assert_eq!(sanitize_user_name("a/b", 5), "a_b");
        assert_eq!(sanitize_user_name("DOMAIN\\bob", 5), "DOMAIN_bob");
        assert_eq!(sanitize_user_name("jos\u{e9}", 5), "jos_");
        assert_eq!(sanitize_user_name("", 5), "uid5");
        assert_eq!(sanitize_user_name(".", 5), "uid5");
        assert_eq!(sanitize_user_name("..", 1000), "uid1000");
        assert_eq!(sanitize_user_name("a b", 5), "a_b");
        let l = CanonicalLayout::with_user("/base", "..", "ns").unwrap();
        assert_eq!(l.user_dir().parent(), Some(Path::new("/base")));
    }

    #[test]
    fn effective_user_is_safe() {
        let token = effective_user_token();
        assert!(!token.is_empty());
        assert!(token != "." && token != "..");
        assert!(token.chars().all(is_safe_component_char));
        let l = CanonicalLayout::new("/dev/shm", "default").unwrap();
        assert_eq!(l.user(), token);
    }

    #[test]
    fn validates_namespace() {
        for ok in ["default", "lab1", "a.b", "A-b_c", "..."] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "/a", "a b", "ä", "a|b", "a?b", "a\0b"] {
            assert!(
                matches!(
                    validate_namespace(bad),
                    Err(PathError::InvalidNamespace { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(CanonicalLayout::with_user("/b", "u", "..").is_err());
    }

    #[test]
    fn validates_base_dir() {
        assert!(matches!(
            CanonicalLayout::with_user("dev/shm", "u", "ns"),
            Err(PathError::BaseDirNotAbsolute { .. })
        ));
        assert!(matches!(
            CanonicalLayout::with_user("/dev/my shm", "u", "ns"),
            Err(PathError::BaseDirNotUriSafe { .. })
        ));
        assert!(matches!(
            CanonicalLayout::with_user("/dev/a|b", "u", "ns"),
            Err(PathError::BaseDirNotUriSafe { .. })
        ));
    }
}
