//! Enumerated and encoded configuration values: `driver.media_driver` and
//! `shm.permissions_mode` (Driver Model §17).

use std::fmt;
use std::str::FromStr;

use super::error::ParseValueError;
use super::model::DEFAULT_PERMISSIONS_MODE;

/// How the Aeron media driver is provided (`driver.media_driver`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MediaDriverMode {
    /// The tensorpool driver launches an Aeron media driver in-process (default).
    #[default]
    Embedded,
    /// An already running Aeron media driver (at `driver.aeron_dir`) is used.
    External,
}

impl MediaDriverMode {
    /// The configuration spelling: `"embedded"` or `"external"`.
    pub const fn as_str(&self) -> &'static str {
        match self {
            MediaDriverMode::Embedded => "embedded",
            MediaDriverMode::External => "external",
        }
    }
}

impl fmt::Display for MediaDriverMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MediaDriverMode {
    type Err = ParseValueError;

    /// Parses `"embedded"` or `"external"` (ASCII case-insensitive, surrounding spaces ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("embedded") {
            Ok(MediaDriverMode::Embedded)
        } else if t.eq_ignore_ascii_case("external") {
            Ok(MediaDriverMode::External)
        } else {
            Err(ParseValueError(format!(
                "expected \"embedded\" or \"external\", got \"{s}\""
            )))
        }
    }
}

/// POSIX permission bits for created SHM files (`shm.permissions_mode`).
///
/// Written in configuration as an octal string of 3 or 4 digits (`"660"`, `"0640"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PermissionsMode(u32);

impl PermissionsMode {
    /// Wraps raw mode bits, or `None` if they exceed `0o7777`.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        if bits <= 0o7777 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The mode bits, e.g. `0o660`, suitable for `open(2)`/`fchmod(2)`.
    pub const fn bits(&self) -> u32 {
        self.0
    }
}

impl Default for PermissionsMode {
    fn default() -> Self {
        Self(DEFAULT_PERMISSIONS_MODE)
    }
}

impl fmt::Display for PermissionsMode {
    /// Formats as octal with at least three digits (`660`, `1777`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03o}", self.0)
    }
}

impl FromStr for PermissionsMode {
    type Err = ParseValueError;

    /// Parses an octal string of exactly 3 or 4 digits `0-7`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !(3..=4).contains(&s.len()) {
            return Err(ParseValueError(
                "expected an octal string of 3 or 4 digits such as \"660\" or \"0640\"".into(),
            ));
        }
        let mut bits = 0u32;
        for b in s.bytes() {
            if !(b'0'..=b'7').contains(&b) {
                return Err(ParseValueError(format!(
                    "'{}' is not an octal digit (0-7)",
                    char::from(b)
                )));
            }
            bits = bits * 8 + u32::from(b - b'0');
        }
        Ok(Self(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_mode_parsing() {
        assert_eq!(
            "660".parse::<PermissionsMode>().map(|m| m.bits()),
            Ok(0o660)
        );
        assert_eq!(
            "0640".parse::<PermissionsMode>().map(|m| m.bits()),
            Ok(0o640)
        );
        assert_eq!(
            "1777".parse::<PermissionsMode>().map(|m| m.bits()),
            Ok(0o1777)
        );
        for bad in ["", "66", "66666", "680", "rw-", "0x66", " 660"] {
            assert!(bad.parse::<PermissionsMode>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(PermissionsMode::default().to_string(), "660");
        assert_eq!(
            PermissionsMode::from_bits(0o7).map(|m| m.to_string()),
            Some("007".into())
        );
        assert_eq!(PermissionsMode::from_bits(0o10000), None);
    }

    #[test]
    fn media_driver_mode_parsing() {
        assert_eq!("embedded".parse(), Ok(MediaDriverMode::Embedded));
        assert_eq!("External".parse(), Ok(MediaDriverMode::External));
        assert!("both".parse::<MediaDriverMode>().is_err());
        assert_eq!(MediaDriverMode::default().to_string(), "embedded");
    }
}
