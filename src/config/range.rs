//! Inclusive stream-id ranges used for dynamic allocation (Driver Model §11).
//!
//! In TOML a range is written either as a string `"a-b"` or as a two-element array
//! `[a, b]`; both bounds are inclusive. An empty string (or empty array, or an absent
//! key) means "disabled" and is represented as `Option::<StreamIdRange>::None` by the
//! configuration model.

use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

use super::error::ParseValueError;

/// An inclusive range of Aeron stream ids, `start..=end` (Driver Model §11).
///
/// Construction does not enforce `start <= end`; the configuration validator does, so
/// that a reversed range can be reported against the key it came from. A reversed range
/// is empty: it contains nothing and has length zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamIdRange {
    /// First stream id of the range (inclusive).
    pub start: u32,
    /// Last stream id of the range (inclusive).
    pub end: u32,
}

impl StreamIdRange {
    /// Creates the inclusive range `start..=end`.
    pub const fn new(start: u32, end: u32) -> Self {
        Self { start, end }
    }

    /// Returns true when `stream_id` lies within `start..=end`.
    pub const fn contains(&self, stream_id: u32) -> bool {
        self.start <= stream_id && stream_id <= self.end
    }

    /// Number of stream ids in the range (0 when reversed; up to 2^32, hence `u64`).
    pub const fn len(&self) -> u64 {
        if self.start > self.end {
            0
        } else {
            self.end as u64 - self.start as u64 + 1
        }
    }

    /// Returns true when the range holds no stream id (only possible when reversed).
    pub const fn is_empty(&self) -> bool {
        self.start > self.end
    }

    /// Returns true when `start <= end`.
    pub const fn is_well_formed(&self) -> bool {
        self.start <= self.end
    }

    /// Returns true when both ranges share at least one stream id.
    pub const fn overlaps(&self, other: &StreamIdRange) -> bool {
        !self.is_empty() && !other.is_empty() && self.start <= other.end && other.start <= self.end
    }

    /// Iterates over every stream id in the range, in ascending order.
    pub fn iter(&self) -> RangeInclusive<u32> {
        self.as_range()
    }

    /// Converts to a standard inclusive range.
    pub fn as_range(&self) -> RangeInclusive<u32> {
        self.start..=self.end
    }

    /// Returns the `index`-th stream id of the range (`start + index`), if within it.
    pub fn nth_id(&self, index: u64) -> Option<u32> {
        if index < self.len() {
            u32::try_from(u64::from(self.start) + index).ok()
        } else {
            None
        }
    }
}

impl IntoIterator for StreamIdRange {
    type Item = u32;
    type IntoIter = RangeInclusive<u32>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_range()
    }
}

impl IntoIterator for &StreamIdRange {
    type Item = u32;
    type IntoIter = RangeInclusive<u32>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_range()
    }
}

impl fmt::Display for StreamIdRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for StreamIdRange {
    type Err = ParseValueError;

    /// Parses `"a-b"` (surrounding whitespace allowed); does not accept the empty string.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let Some((a, b)) = s.split_once('-') else {
            return Err(ParseValueError(format!(
                "expected a range of the form \"start-end\", got \"{s}\""
            )));
        };
        let start = parse_bound(a, s)?;
        let end = parse_bound(b, s)?;
        Ok(Self { start, end })
    }
}

fn parse_bound(part: &str, whole: &str) -> Result<u32, ParseValueError> {
    let part = part.trim();
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseValueError(format!(
            "range \"{whole}\" bound \"{part}\" is not an unsigned integer"
        )));
    }
    part.parse::<u32>().map_err(|_| {
        ParseValueError(format!(
            "range \"{whole}\" bound \"{part}\" does not fit in an unsigned 32-bit integer"
        ))
    })
}

/// Parses the optional form used by configuration values: `""` (or only whitespace)
/// means disabled (`None`), otherwise `"a-b"`.
///
/// # Errors
/// When the text is neither blank nor `start-end` with two `u32` bounds.
pub fn parse_optional_range(s: &str) -> Result<Option<StreamIdRange>, ParseValueError> {
    if s.trim().is_empty() {
        Ok(None)
    } else {
        s.parse().map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_string_form() {
        assert_eq!(
            "20000-29999".parse::<StreamIdRange>(),
            Ok(StreamIdRange::new(20000, 29999))
        );
        assert_eq!(
            " 1 - 2 ".parse::<StreamIdRange>(),
            Ok(StreamIdRange::new(1, 2))
        );
        assert_eq!(parse_optional_range(""), Ok(None));
        assert_eq!(parse_optional_range("  "), Ok(None));
        assert_eq!(
            parse_optional_range("5-5"),
            Ok(Some(StreamIdRange::new(5, 5)))
        );
    }

    #[test]
    fn rejects_malformed_strings() {
        for bad in [
            "",
            "12",
            "a-b",
            "1-",
            "-1",
            "1-2-3",
            "-1-5",
            "1-99999999999",
            "+1-2",
        ] {
            assert!(bad.parse::<StreamIdRange>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn contains_len_iter() {
        let r = StreamIdRange::new(10, 12);
        assert!(r.contains(10) && r.contains(12) && !r.contains(13) && !r.contains(9));
        assert_eq!(r.len(), 3);
        assert!(!r.is_empty());
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![10, 11, 12]);
        assert_eq!((&r).into_iter().count(), 3);
        assert_eq!(r.into_iter().last(), Some(12));
        assert_eq!(r.nth_id(0), Some(10));
        assert_eq!(r.nth_id(2), Some(12));
        assert_eq!(r.nth_id(3), None);
        assert_eq!(r.to_string(), "10-12");
        assert_eq!(StreamIdRange::new(0, u32::MAX).len(), 1u64 << 32);
        let reversed = StreamIdRange::new(5, 4);
        assert!(reversed.is_empty() && !reversed.is_well_formed());
        assert_eq!(reversed.len(), 0);
        assert!(!reversed.contains(5));
    }

    #[test]
    fn overlap() {
        let a = StreamIdRange::new(10, 20);
        assert!(a.overlaps(&StreamIdRange::new(20, 30)));
        assert!(a.overlaps(&StreamIdRange::new(0, 10)));
        assert!(a.overlaps(&StreamIdRange::new(12, 13)));
        assert!(!a.overlaps(&StreamIdRange::new(21, 30)));
        assert!(!a.overlaps(&StreamIdRange::new(0, 9)));
    }

    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn display_parse_round_trip(start in any::<u32>(), end in any::<u32>()) {
            let r = StreamIdRange::new(start, end);
            prop_assert_eq!(r.to_string().parse::<StreamIdRange>(), Ok(r));
        }

        #[test]
        fn overlap_is_symmetric(a in 0u32..100, b in 0u32..100, c in 0u32..100, d in 0u32..100) {
            let x = StreamIdRange::new(a, b);
            let y = StreamIdRange::new(c, d);
            prop_assert_eq!(x.overlaps(&y), y.overlaps(&x));
            let brute = x.iter().any(|id| y.contains(id));
            prop_assert_eq!(x.overlaps(&y), brute);
        }
    }
}
