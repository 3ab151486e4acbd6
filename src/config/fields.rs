//! Typed conversion of configuration values from TOML and from environment strings
//! (Driver Model §17 key types: strings, unsigned integers, booleans, ranges, lists).

use toml::Value;

use super::error::ParseValueError;
use super::range::{parse_optional_range, StreamIdRange};
use super::values::{MediaDriverMode, PermissionsMode};

/// Why a TOML value could not be converted.
pub(crate) enum FieldError {
    /// Wrong TOML type.
    Type,
    /// Right type, bad content.
    Value(String),
}

/// A value that can come from TOML or from an environment string.
pub(crate) trait FieldValue: Sized {
    /// The expected type, in words, for error messages.
    const EXPECTED: &'static str;
    /// Converts a TOML value.
    fn from_toml(v: &Value) -> Result<Self, FieldError>;
    /// Converts an environment string.
    fn from_env(s: &str) -> Result<Self, String>;
}

impl FieldValue for String {
    const EXPECTED: &'static str = "a string";

    fn from_toml(v: &Value) -> Result<Self, FieldError> {
        v.as_str().map(str::to_string).ok_or(FieldError::Type)
    }

    fn from_env(s: &str) -> Result<Self, String> {
        Ok(s.to_string())
    }
}

/// Largest integer a TOML document can hold (TOML integers are signed 64-bit).
pub(crate) const TOML_INT_MAX: u64 = i64::MAX as u64;

macro_rules! uint_field {
    ($t:ty, $expected:literal, $max:expr) => {
        impl FieldValue for $t {
            const EXPECTED: &'static str = $expected;

            fn from_toml(v: &Value) -> Result<Self, FieldError> {
                let i = v.as_integer().ok_or(FieldError::Type)?;
                <$t>::try_from(i).map_err(|_| {
                    FieldError::Value(format!(
                        "{i} is out of range for {} (0..={})",
                        $expected, $max
                    ))
                })
            }

            fn from_env(s: &str) -> Result<Self, String> {
                let t = s.trim();
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("expected {}", $expected));
                }
                t.parse::<$t>()
                    .ok()
                    .filter(|v| u64::from(*v) <= $max)
                    .ok_or_else(|| format!("out of range for {} (0..={})", $expected, $max))
            }
        }
    };
}

uint_field!(u16, "an unsigned 16-bit integer", u64::from(u16::MAX));
uint_field!(u32, "an unsigned 32-bit integer", u64::from(u32::MAX));
// TOML cannot represent u64 values above i64::MAX, so they are refused everywhere to
// keep `to_toml_string` output loadable.
uint_field!(u64, "an unsigned 64-bit integer", TOML_INT_MAX);

impl FieldValue for bool {
    const EXPECTED: &'static str = "a boolean";

    fn from_toml(v: &Value) -> Result<Self, FieldError> {
        v.as_bool().ok_or(FieldError::Type)
    }

    fn from_env(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("true") || t == "1" {
            Ok(true)
        } else if t.eq_ignore_ascii_case("false") || t == "0" {
            Ok(false)
        } else {
            Err("expected true, false, 1 or 0".to_string())
        }
    }
}

impl FieldValue for MediaDriverMode {
    const EXPECTED: &'static str = "a string (\"embedded\" or \"external\")";

    fn from_toml(v: &Value) -> Result<Self, FieldError> {
        let s = v.as_str().ok_or(FieldError::Type)?;
        s.parse()
            .map_err(|e: ParseValueError| FieldError::Value(e.to_string()))
    }

    fn from_env(s: &str) -> Result<Self, String> {
        s.parse().map_err(|e: ParseValueError| e.to_string())
    }
}

impl FieldValue for PermissionsMode {
    const EXPECTED: &'static str = "an octal string such as \"660\"";

    fn from_toml(v: &Value) -> Result<Self, FieldError> {
        let s = v.as_str().ok_or(FieldError::Type)?;
        s.parse()
            .map_err(|e: ParseValueError| FieldError::Value(e.to_string()))
    }

    fn from_env(s: &str) -> Result<Self, String> {
        s.trim().parse().map_err(|e: ParseValueError| e.to_string())
    }
}

/// An optional range (`""`/`[]` = disabled).
pub(crate) struct OptRange(pub(crate) Option<StreamIdRange>);

impl FieldValue for OptRange {
    const EXPECTED: &'static str = "a range string \"start-end\" or an array [start, end]";

    fn from_toml(v: &Value) -> Result<Self, FieldError> {
        match v {
            Value::String(s) => parse_optional_range(s)
                .map(OptRange)
                .map_err(|e| FieldError::Value(e.to_string())),
            Value::Array(a) if a.is_empty() => Ok(OptRange(None)),
            Value::Array(a) => {
                let bound = |v: &Value| v.as_integer().and_then(|i| u32::try_from(i).ok());
                match a.as_slice() {
                    [s, e] => match (bound(s), bound(e)) {
                        (Some(start), Some(end)) => {
                            Ok(OptRange(Some(StreamIdRange::new(start, end))))
                        }
                        _ => Err(FieldError::Value(
                            "range array bounds must be unsigned 32-bit integers".to_string(),
                        )),
                    },
                    _ => Err(FieldError::Value(format!(
                        "range array must have exactly two elements [start, end], found {}",
                        a.len()
                    ))),
                }
            }
            _ => Err(FieldError::Type),
        }
    }

    fn from_env(s: &str) -> Result<Self, String> {
        parse_optional_range(s)
            .map(OptRange)
            .map_err(|e| e.to_string())
    }
}

/// A list of strings (TOML array; comma-separated in the environment).
pub(crate) struct StringList(pub(crate) Vec<String>);

impl FieldValue for StringList {
    const EXPECTED: &'static str = "an array of strings";

    fn from_toml(v: &Value) -> Result<Self, FieldError> {
        let a = v.as_array().ok_or(FieldError::Type)?;
        a.iter()
            .enumerate()
            .map(|(i, e)| {
                e.as_str().map(str::to_string).ok_or_else(|| {
                    FieldError::Value(format!(
                        "element {i} is {}, expected a string",
                        e.type_str()
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(StringList)
    }

    fn from_env(s: &str) -> Result<Self, String> {
        Ok(StringList(
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect(),
        ))
    }
}
