//! "Did you mean" for unknown configuration keys (Driver Model §17 lists the surface):
//! the closest known key of the same table, or the same key in the section that owns it
//! (`[driver] base_dir` → `shm.base_dir`), so a misspelt or misplaced key is one edit
//! away from working.

use super::parse::{DRIVER_KEYS, POLICIES_KEYS, SHM_KEYS};

/// The known key `word` most likely meant among `known`, if one is close: equal once
/// case and `-`/`_` are ignored, or within a third of its length in edits (at least one),
/// counting a swap of two neighbours as one edit.
pub(crate) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let word = normalized(word);
    let allowed = (word.chars().count() / 3).max(1);
    known
        .iter()
        .map(|k| (edit_distance(&word, &normalized(k)), *k))
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// The full key `key` belongs under when it was written in the wrong section (or at
/// the top level): `base_dir` → `shm.base_dir`. `section` is where it was found.
pub(crate) fn home_section(key: &str, section: &str) -> Option<String> {
    [
        ("driver", DRIVER_KEYS),
        ("shm", SHM_KEYS),
        ("policies", POLICIES_KEYS),
    ]
    .iter()
    .filter(|(name, _)| *name != section)
    .find_map(|(name, keys)| {
        let word = normalized(key);
        keys.iter()
            .find(|k| normalized(k) == word)
            .map(|k| format!("{name}.{k}"))
    })
}

fn normalized(word: &str) -> String {
    word.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps
/// of two neighbouring characters each count one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misspellings_find_their_key() {
        assert_eq!(
            closest("anounce_period_ms", POLICIES_KEYS),
            Some("announce_period_ms")
        );
        assert_eq!(closest("basedir", SHM_KEYS), Some("base_dir"));
        assert_eq!(closest("namepsace", SHM_KEYS), Some("namespace"));
        assert_eq!(
            closest("Control-Stream-Id", DRIVER_KEYS),
            Some("control_stream_id")
        );
        assert_eq!(
            closest("polices", &["driver", "shm", "policies"]),
            Some("policies")
        );
    }

    #[test]
    fn unrelated_words_get_no_suggestion() {
        assert_eq!(closest("bridge", &["driver", "shm", "policies"]), None);
        assert_eq!(closest("x", POLICIES_KEYS), None);
        assert_eq!(closest("nslots", &["header_nslots", "payload_pools"]), None);
    }

    #[test]
    fn a_key_in_the_wrong_section_is_sent_home() {
        assert_eq!(
            home_section("base_dir", "driver").as_deref(),
            Some("shm.base_dir")
        );
        assert_eq!(
            home_section("aeron_dir", "").as_deref(),
            Some("driver.aeron_dir")
        );
        assert_eq!(home_section("base_dir", "shm"), None);
        assert_eq!(home_section("bogus", "driver"), None);
    }

    #[test]
    fn swaps_count_as_one_edit() {
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
