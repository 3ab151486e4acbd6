//! Environment-variable sources for configuration overrides (Driver Model §17).
//!
//! Loading never reads the process environment implicitly: callers pass an
//! [`EnvSource`]. Use [`ProcessEnv`] in binaries and [`MapEnv`] (or a closure) in tests,
//! so that tests never have to mutate the real, process-global environment.

use std::collections::{BTreeMap, HashMap};

/// A read-only source of environment variables.
pub trait EnvSource {
    /// Returns the value of the variable `name`, or `None` when it is not set.
    fn var(&self, name: &str) -> Option<String>;
}

/// Reads the real process environment at the moment each variable is looked up.
///
/// A value that is not valid Unicode is converted lossily (invalid sequences become
/// U+FFFD), so it is still seen, and normally rejected, by validation rather than being
/// silently ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

/// An environment with no variables at all (configuration comes from the file only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoEnv;

impl EnvSource for NoEnv {
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

/// An in-memory environment, e.g. for tests or for a snapshot of the process environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapEnv {
    vars: BTreeMap<String, String>,
}

impl MapEnv {
    /// Creates an empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes a snapshot of the current process environment (non-Unicode entries are
    /// converted lossily).
    pub fn from_process_env() -> Self {
        let vars = std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        Self { vars }
    }

    /// Builder-style: returns `self` with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    /// Sets `name` to `value`, replacing any previous value.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// Removes `name`, returning its previous value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.vars.remove(name)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for MapEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self {
            vars: iter
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }
}

impl EnvSource for MapEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

impl EnvSource for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<F> EnvSource for F
where
    F: Fn(&str) -> Option<String>,
{
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// The environment variable name for a configuration key: the dotted key uppercased
/// with `.` replaced by `_` (e.g. `driver.control_stream_id` → `DRIVER_CONTROL_STREAM_ID`).
pub fn env_var_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c == '.' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_names_follow_aeron_convention() {
        assert_eq!(
            env_var_name("driver.control_stream_id"),
            "DRIVER_CONTROL_STREAM_ID"
        );
        assert_eq!(env_var_name("shm.base_dir"), "SHM_BASE_DIR");
        assert_eq!(
            env_var_name("policies.announce_period_ms"),
            "POLICIES_ANNOUNCE_PERIOD_MS"
        );
    }

    #[test]
    fn sources() {
        let map = MapEnv::new().with("A", "1");
        assert_eq!(map.var("A").as_deref(), Some("1"));
        assert_eq!(map.var("B"), None);
        let mut map2: MapEnv = [("X", "y")].into_iter().collect();
        assert_eq!(map2.remove("X").as_deref(), Some("y"));
        assert_eq!(NoEnv.var("PATH"), None);
        let closure = |name: &str| (name == "K").then(|| "v".to_string());
        assert_eq!(closure.var("K").as_deref(), Some("v"));
        let hm: HashMap<String, String> = [("K".to_string(), "w".to_string())].into();
        assert_eq!(hm.var("K").as_deref(), Some("w"));
        let dynsrc: &dyn EnvSource = &map;
        assert_eq!(dynsrc.var("A").as_deref(), Some("1"));
    }
}
