//! Region URIs for file-backed SHM regions (Wire Spec §15.22).
//!
//! The only supported scheme in v1.2 is
//!
//! ```text
//! shm-uri  = "shm:file?path=" abs-path ["|" "require_hugepages=" bool]
//! abs-path = 1*( VCHAR except "?" and "|" and SP )
//! bool     = "true" / "false"
//! ```
//!
//! Parsing is strict: the scheme prefix, parameter names and boolean values are
//! case-sensitive, unknown or duplicate parameters are rejected, and the path must be
//! absolute (leading `/`; this implementation is POSIX-only). Parameters are separated
//! by `|` (Aeron style); like Aeron channel parameters they are accepted in any order,
//! while [`RegionUri`]'s `Display` always emits the canonical order (`path` first) and
//! omits `require_hugepages` when it is `false`.
//!
//! Parsing only checks syntax. Path canonicalization, containment and file-type checks
//! happen when the region is opened (see [`crate::shm::open`], Wire Spec §15.21a.5).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The exact prefix every region URI must start with (scheme + `?`).
pub const SHM_FILE_PREFIX: &str = "shm:file?";

/// Name of the required `path` parameter.
pub const PARAM_PATH: &str = "path";

/// Name of the optional `require_hugepages` parameter.
pub const PARAM_REQUIRE_HUGEPAGES: &str = "require_hugepages";

/// Separator between URI parameters (Aeron style).
pub const PARAM_SEPARATOR: char = '|';

/// Why a region URI was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The URI does not start with exactly `shm:file?`.
    #[error("unsupported region URI scheme in {uri:?}: only \"shm:file?\" is supported")]
    UnknownScheme {
        /// The offending URI (truncated for diagnostics).
        uri: String,
    },
    /// The URI has no `path` parameter.
    #[error("region URI has no `path` parameter")]
    MissingPath,
    /// The `path` parameter is present but empty.
    #[error("region URI `path` parameter is empty")]
    EmptyPath,
    /// The `path` parameter is not an absolute path.
    #[error("region URI path {path:?} is not absolute (must start with '/')")]
    RelativePath {
        /// The offending path.
        path: String,
    },
    /// The `path` parameter contains a character outside VCHAR or one of `?`, `|`, space.
    #[error(
        "region URI path {path:?} contains forbidden character {ch:?} at byte {index} \
         (only visible ASCII except '?', '|' and space is allowed)"
    )]
    ForbiddenPathChar {
        /// The offending path.
        path: String,
        /// The forbidden character.
        ch: char,
        /// Byte offset of the character within the path.
        index: usize,
    },
    /// A parameter other than `path` / `require_hugepages` was given.
    #[error("unknown region URI parameter {name:?}")]
    UnknownParameter {
        /// Name of the unknown parameter.
        name: String,
    },
    /// A parameter was given more than once.
    #[error("duplicate region URI parameter {name:?}")]
    DuplicateParameter {
        /// Name of the repeated parameter.
        name: String,
    },
    /// `require_hugepages` has a value other than `true` or `false`.
    #[error("region URI parameter `require_hugepages` has invalid value {value:?} (expected \"true\" or \"false\")")]
    InvalidBool {
        /// The offending value.
        value: String,
    },
    /// A parameter entry has no `=`.
    #[error("region URI parameter {param:?} has no '='")]
    MissingEquals {
        /// The offending parameter entry.
        param: String,
    },
    /// An empty parameter entry (e.g. a trailing or doubled `|`).
    #[error("region URI contains an empty parameter (stray '|')")]
    EmptyParameter,
}

/// A parsed, syntactically valid `shm:file` region URI (Wire Spec §15.22).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegionUri {
    path: String,
    require_hugepages: bool,
}

impl RegionUri {
    /// Builds a URI from a path, validating it against the `abs-path` grammar.
    pub fn new(path: impl AsRef<str>, require_hugepages: bool) -> Result<Self, UriError> {
        let path = path.as_ref();
        validate_abs_path(path)?;
        Ok(Self {
            path: path.to_owned(),
            require_hugepages,
        })
    }

    /// Builds a URI from a filesystem path (must be valid UTF-8 and URI-safe).
    pub fn from_path(path: &Path, require_hugepages: bool) -> Result<Self, UriError> {
        match path.to_str() {
            Some(s) => Self::new(s, require_hugepages),
            None => {
                let lossy = path.to_string_lossy().into_owned();
                // Report the first character that is not representable.
                let (index, ch) = lossy
                    .char_indices()
                    .find(|&(_, c)| !is_path_char(c))
                    .unwrap_or((0, char::REPLACEMENT_CHARACTER));
                Err(UriError::ForbiddenPathChar {
                    path: lossy,
                    ch,
                    index,
                })
            }
        }
    }

    /// Parses a region URI string (strict; see module docs).
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let Some(params) = uri.strip_prefix(SHM_FILE_PREFIX) else {
            return Err(UriError::UnknownScheme {
                uri: truncate_for_diag(uri),
            });
        };

        let mut path: Option<&str> = None;
        let mut require_hugepages: Option<bool> = None;

        if params.is_empty() {
            return Err(UriError::MissingPath);
        }

        for param in params.split(PARAM_SEPARATOR) {
            if param.is_empty() {
                return Err(UriError::EmptyParameter);
            }
            let Some((name, value)) = param.split_once('=') else {
                return Err(UriError::MissingEquals {
                    param: truncate_for_diag(param),
                });
            };
            match name {
                PARAM_PATH => {
                    if path.is_some() {
                        return Err(UriError::DuplicateParameter {
                            name: PARAM_PATH.to_owned(),
                        });
                    }
                    path = Some(value);
                }
                PARAM_REQUIRE_HUGEPAGES => {
                    if require_hugepages.is_some() {
                        return Err(UriError::DuplicateParameter {
                            name: PARAM_REQUIRE_HUGEPAGES.to_owned(),
                        });
                    }
                    require_hugepages = Some(parse_bool(value)?);
                }
                other => {
                    return Err(UriError::UnknownParameter {
                        name: truncate_for_diag(other),
                    })
                }
            }
        }

        let path = path.ok_or(UriError::MissingPath)?;
        validate_abs_path(path)?;
        Ok(Self {
            path: path.to_owned(),
            require_hugepages: require_hugepages.unwrap_or(false),
        })
    }

    /// The announced absolute path (not canonicalized).
    pub fn path(&self) -> &Path {
        Path::new(&self.path)
    }

    /// The announced absolute path as a string.
    pub fn path_str(&self) -> &str {
        &self.path
    }

    /// Whether the region must be hugepage-backed.
    pub fn require_hugepages(&self) -> bool {
        self.require_hugepages
    }
}

impl fmt::Display for RegionUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHM_FILE_PREFIX}{PARAM_PATH}={}", self.path)?;
        if self.require_hugepages {
            write!(f, "{PARAM_SEPARATOR}{PARAM_REQUIRE_HUGEPAGES}=true")?;
        }
        Ok(())
    }
}

impl FromStr for RegionUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether `c` may appear in an `abs-path` (VCHAR except `?`, `|`; SP is not VCHAR).
pub const fn is_path_char(c: char) -> bool {
    matches!(c, '\u{21}'..='\u{7e}') && c != '?' && c != '|'
}

/// Validates a string against the `abs-path` rule plus the absolute-path requirement.
pub fn validate_abs_path(path: &str) -> Result<(), UriError> {
    if path.is_empty() {
        return Err(UriError::EmptyPath);
    }
    if let Some((index, ch)) = path.char_indices().find(|&(_, c)| !is_path_char(c)) {
        return Err(UriError::ForbiddenPathChar {
            path: truncate_for_diag(path),
            ch,
            index,
        });
    }
    if !path.starts_with('/') {
        return Err(UriError::RelativePath {
            path: truncate_for_diag(path),
        });
    }
    Ok(())
}

fn parse_bool(value: &str) -> Result<bool, UriError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(UriError::InvalidBool {
            value: truncate_for_diag(other),
        }),
    }
}

/// Bounds the size of strings copied into error values (URIs arrive from the network).
fn truncate_for_diag(s: &str) -> String {
    const MAX: usize = 256;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_minimal() {
        let u = RegionUri::parse("shm:file?path=/dev/shm/x").unwrap();
        assert_eq!(u.path(), Path::new("/dev/shm/x"));
        assert!(!u.require_hugepages());
        assert_eq!(u.to_string(), "shm:file?path=/dev/shm/x");
    }

    #[test]
    fn parses_hugepages_true_and_false() {
        let t = RegionUri::parse("shm:file?path=/dev/hugepages/a|require_hugepages=true").unwrap();
        assert!(t.require_hugepages());
        assert_eq!(
            t.to_string(),
            "shm:file?path=/dev/hugepages/a|require_hugepages=true"
        );
        let f = RegionUri::parse("shm:file?path=/a|require_hugepages=false").unwrap();
        assert_eq!(f, RegionUri::parse("shm:file?path=/a").unwrap());
        assert_eq!(f.to_string(), "shm:file?path=/a");
    }

    #[test]
    fn parameter_order_is_free() {
        let u = RegionUri::parse("shm:file?require_hugepages=true|path=/a/b").unwrap();
        assert_eq!(u, RegionUri::new("/a/b", true).unwrap());
    }

    #[test]
    fn path_may_contain_equals_and_other_vchars() {
        let u = RegionUri::parse("shm:file?path=/a=b/c~d%20&e").unwrap();
        assert_eq!(u.path_str(), "/a=b/c~d%20&e");
    }

    #[test]
    fn rejects_unknown_scheme() {
        for s in [
            "",
            "shm:file",
            "shm:file:path=/a",
            "SHM:FILE?path=/a",
            "shm:memfd?path=/a",
            "file:///a",
            " shm:file?path=/a",
        ] {
            assert!(
                matches!(RegionUri::parse(s), Err(UriError::UnknownScheme { .. })),
                "{s:?}"
            );
        }
    }

    #[test]
    fn rejects_missing_and_empty_path() {
        assert_eq!(RegionUri::parse("shm:file?"), Err(UriError::MissingPath));
        assert_eq!(
            RegionUri::parse("shm:file?require_hugepages=true"),
            Err(UriError::MissingPath)
        );
        assert_eq!(RegionUri::parse("shm:file?path="), Err(UriError::EmptyPath));
    }

    #[test]
    fn rejects_relative_path() {
        assert!(matches!(
            RegionUri::parse("shm:file?path=dev/shm/x"),
            Err(UriError::RelativePath { .. })
        ));
        assert!(matches!(
            RegionUri::parse("shm:file?path=./x"),
            Err(UriError::RelativePath { .. })
        ));
    }

    #[test]
    fn rejects_forbidden_chars() {
        for (s, bad) in [
            ("shm:file?path=/a b", ' '),
            ("shm:file?path=/a?b", '?'),
            ("shm:file?path=/a\tb", '\t'),
            ("shm:file?path=/a\u{7f}", '\u{7f}'),
            ("shm:file?path=/caf\u{e9}", '\u{e9}'),
            ("shm:file?path=/a\0b", '\0'),
        ] {
            match RegionUri::parse(s) {
                Err(UriError::ForbiddenPathChar { ch, .. }) => assert_eq!(ch, bad, "{s:?}"),
                other => panic!("{s:?} -> {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(matches!(
            RegionUri::parse("shm:file?path=/a|foo=bar"),
            Err(UriError::UnknownParameter { name }) if name == "foo"
        ));
        assert!(matches!(
            RegionUri::parse("shm:file?path=/a|Require_Hugepages=true"),
            Err(UriError::UnknownParameter { .. })
        ));
        assert!(matches!(
            RegionUri::parse("shm:file?path=/a|path=/b"),
            Err(UriError::DuplicateParameter { name }) if name == "path"
        ));
        assert!(matches!(
            RegionUri::parse("shm:file?path=/a|require_hugepages=false|require_hugepages=false"),
            Err(UriError::DuplicateParameter { name }) if name == "require_hugepages"
        ));
        for v in ["TRUE", "1", "yes", "", "true "] {
            let s = format!("shm:file?path=/a|require_hugepages={v}");
            assert!(
                matches!(RegionUri::parse(&s), Err(UriError::InvalidBool { .. })),
                "{s:?}"
            );
        }
        assert!(matches!(
            RegionUri::parse("shm:file?path=/a|require_hugepages"),
            Err(UriError::MissingEquals { .. })
        ));
        assert!(matches!(
            RegionUri::parse("shm:file?/dev/shm/a"),
            Err(UriError::MissingEquals { .. })
        ));
        assert_eq!(
            RegionUri::parse("shm:file?path=/a|"),
            Err(UriError::EmptyParameter)
        );
        assert_eq!(
            RegionUri::parse("shm:file?path=/a||require_hugepages=true"),
            Err(UriError::EmptyParameter)
        );
    }

    #[test]
    fn new_validates() {
        assert!(RegionUri::new("/ok", false).is_ok());
        assert_eq!(RegionUri::new("", false), Err(UriError::EmptyPath));
        assert!(matches!(
            RegionUri::new("/a|b", false),
            Err(UriError::ForbiddenPathChar { ch: '|', .. })
        ));
        assert!(matches!(
            RegionUri::from_path(Path::new("rel"), false),
            Err(UriError::RelativePath { .. })
        ));
    }

    #[test]
    fn errors_are_bounded() {
        let long = format!("x{}", "é".repeat(10_000));
        match RegionUri::parse(&long) {
            Err(UriError::UnknownScheme { uri }) => assert!(uri.len() < 300),
            other => panic!("{other:?}"),
        }
        let msg = RegionUri::parse("shm:file?path=/a|bogus=1")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bogus"), "{msg}");
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        "/[!-~&&[^?|]]{0,40}"
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = RegionUri::parse(&s);
        }

        #[test]
        fn parse_never_panics_near_valid(s in "shm:file\\?[ -~]{0,60}") {
            if let Ok(u) = RegionUri::parse(&s) {
                let again = RegionUri::parse(&u.to_string());
                prop_assert_eq!(again, Ok(u));
            }
        }

        #[test]
        fn format_parse_round_trips(path in path_strategy(), huge in any::<bool>()) {
            let u = RegionUri::new(&path, huge).unwrap();
            let s = u.to_string();
            prop_assert_eq!(RegionUri::parse(&s), Ok(u));
        }

        #[test]
        fn format_of_parse_reparses_equal(s in any::<String>()) {
            if let Ok(u) = RegionUri::parse(&s) {
                prop_assert_eq!(RegionUri::parse(&u.to_string()), Ok(u));
            }
        }
    }
}
