//! Finding a running driver without being told its streams: every driver publishes its
//! endpoints in the media driver's counters file ([`crate::driver::endpoints`]), and `tp`
//! reads them there, as Aeron's `AeronStat` reads counters, without an Aeron client.

use std::path::Path;

use super::{Exit, ToolError};
use crate::driver::endpoints::{DriverEndpoints, ENDPOINTS_COUNTER_TYPE_ID};
use crate::transport::{read_counters, CounterSnapshot};

/// What the counters file of a media driver says about the drivers it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// No counters file: no media driver ever ran in that directory.
    NoMediaDriver(String),
    /// Every driver's endpoints found (possibly none), and counters that claim to be
    /// endpoints but do not decode (with why).
    Found {
        /// The drivers, in counter order.
        drivers: Vec<DriverEndpoints>,
        /// Why each refused counter was refused.
        refused: Vec<String>,
    },
}

/// Reads every driver's endpoints from the counters file in `aeron_dir`.
pub fn discover(aeron_dir: &Path) -> Discovery {
    match read_counters(aeron_dir) {
        Err(e) => Discovery::NoMediaDriver(e.to_string()),
        Ok(counters) => endpoints_in(&counters),
    }
}

/// The endpoints among `counters`.
pub fn endpoints_in(counters: &[CounterSnapshot]) -> Discovery {
    let mut drivers = Vec::new();
    let mut refused = Vec::new();
    for counter in counters
        .iter()
        .filter(|c| c.type_id == ENDPOINTS_COUNTER_TYPE_ID)
    {
        match DriverEndpoints::decode(&counter.key, &counter.label) {
            Ok(endpoints) => drivers.push(endpoints),
            Err(e) => refused.push(format!("counter {}: {e}", counter.id)),
        }
    }
    Discovery::Found { drivers, refused }
}

/// One line per driver, for listings and errors.
pub fn describe(endpoints: &DriverEndpoints) -> String {
    format!(
        "{} (pid {}{}): control {} stream {}, announce {} stream {}, qos {} stream {}, shm {} namespace {}",
        endpoints.instance_id,
        endpoints.pid,
        if pid_runs(endpoints.pid) {
            ""
        } else {
            ", not running here"
        },
        endpoints.control_channel,
        endpoints.control_stream_id,
        endpoints.announce_channel,
        endpoints.announce_stream_id,
        endpoints.qos_channel,
        endpoints.qos_stream_id,
        endpoints.shm_base_dir,
        endpoints.shm_namespace
    )
}

/// Whether a process `pid` exists in this pid namespace.
pub fn pid_runs(pid: u32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// The one driver `instance_id` names (or the only one), from `discovery` of `aeron_dir`;
/// an error saying what was found and what to pass otherwise.
pub fn choose(
    discovery: Discovery,
    aeron_dir: &Path,
    instance_id: Option<&str>,
) -> Result<DriverEndpoints, ToolError> {
    let dir = aeron_dir.display();
    let (drivers, refused) = match discovery {
        Discovery::NoMediaDriver(why) => {
            return Err(ToolError::new(
                Exit::NoDriver,
                format!(
                    "no media driver in {dir} ({why}); is tp-driver (or aeronmd with the \
                     tensorpool plugin) running with that Aeron directory? Pass --aeron-dir \
                     DIR, or --config FILE (the driver's configuration)"
                ),
            ))
        }
        Discovery::Found { drivers, refused } => (drivers, refused),
    };
    let refused_note = if refused.is_empty() {
        String::new()
    } else {
        format!(" (unreadable endpoints: {})", refused.join("; "))
    };
    let listing = |drivers: &[&DriverEndpoints]| {
        drivers
            .iter()
            .map(|d| format!("\n  {}", describe(d)))
            .collect::<String>()
    };
    let all: Vec<&DriverEndpoints> = drivers.iter().collect();
    if let Some(wanted) = instance_id {
        return drivers
            .iter()
            .find(|d| d.instance_id == wanted)
            .cloned()
            .ok_or_else(|| {
                ToolError::new(
                    Exit::NoDriver,
                    format!(
                        "no driver with instance id {wanted:?} publishes its endpoints in \
                         {dir}{refused_note}; running here:{}",
                        if all.is_empty() {
                            " none".to_owned()
                        } else {
                            listing(&all)
                        }
                    ),
                )
            });
    }
    // A driver that died without freeing its counters (an embedded media driver's CnC
    // outlives it) gives way to live ones.
    let live: Vec<&DriverEndpoints> = all.iter().copied().filter(|d| pid_runs(d.pid)).collect();
    let candidates = if live.is_empty() { &all } else { &live };
    match candidates.as_slice() {
        [] => Err(ToolError::new(
            Exit::NoDriver,
            format!(
                "the media driver in {dir} serves no tensorpool driver: no counter of type \
                 {ENDPOINTS_COUNTER_TYPE_ID} (\"tp-driver[<instance>] endpoints\"){refused_note}. \
                 Is tp-driver running with this Aeron directory? If a driver that does not \
                 publish its endpoints runs here, pass --config FILE or its stream ids \
                 (--control-stream-id, --announce-stream-id, --qos-stream-id)"
            ),
        )),
        [one] => Ok((*one).clone()),
        several => Err(ToolError::new(
            Exit::Usage,
            format!(
                "{} tensorpool drivers share the media driver in {dir}; choose one with \
                 --instance-id ID:{}",
                several.len(),
                listing(several)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver(instance: &str, control: u32, pid: u32) -> DriverEndpoints {
        DriverEndpoints {
            instance_id: instance.into(),
            pid,
            control_channel: "aeron:ipc".into(),
            control_stream_id: control,
            announce_channel: "aeron:ipc".into(),
            announce_stream_id: control + 1,
            qos_channel: "aeron:ipc".into(),
            qos_stream_id: control + 200,
            shm_base_dir: "/dev/shm/tensorpool".into(),
            shm_namespace: instance.into(),
            epoch_gc_enabled: true,
            epoch_gc_keep: 2,
            epoch_gc_min_age_ns: 0,
        }
    }

    fn found(drivers: Vec<DriverEndpoints>) -> Discovery {
        Discovery::Found {
            drivers,
            refused: Vec::new(),
        }
    }

    #[test]
    fn one_live_driver_is_chosen_and_several_are_listed() {
        let dir = Path::new("/dev/shm/aeron-x");
        let me = std::process::id();
        let a = driver("a", 1_000, me);
        let b = driver("b", 2_000, me);
        assert_eq!(
            choose(found(vec![a.clone()]), dir, None).ok(),
            Some(a.clone())
        );
        let error =
            choose(found(vec![a.clone(), b.clone()]), dir, None).expect_err("several: choose");
        assert_eq!(error.exit, Exit::Usage);
        assert!(error.message.contains("--instance-id"), "{error}");
        assert!(error.message.contains(&describe(&a)), "{error}");
        assert!(error.message.contains(&describe(&b)), "{error}");
        assert_eq!(
            choose(found(vec![a.clone(), b.clone()]), dir, Some("b")).ok(),
            Some(b.clone())
        );
        // A dead driver's counters (a CnC file its embedded media driver left) give way.
        let dead = driver("dead", 3_000, u32::MAX);
        assert_eq!(
            choose(found(vec![dead.clone(), a.clone()]), dir, None).ok(),
            Some(a)
        );
        assert!(describe(&dead).contains("not running here"));
        assert_eq!(
            choose(found(vec![dead.clone()]), dir, None).ok(),
            Some(dead)
        );
    }

    #[test]
    fn nothing_found_says_why_and_what_to_pass() {
        let dir = Path::new("/dev/shm/aeron-x");
        let none = choose(found(Vec::new()), dir, None).expect_err("none");
        assert_eq!(none.exit, Exit::NoDriver);
        assert!(
            none.message.contains("serves no tensorpool driver"),
            "{none}"
        );
        assert!(none.message.contains("--config FILE"), "{none}");
        let absent = choose(Discovery::NoMediaDriver("no cnc.dat".into()), dir, None)
            .expect_err("no media driver");
        assert!(absent
            .message
            .contains("no media driver in /dev/shm/aeron-x (no cnc.dat)"));
        let refused = Discovery::Found {
            drivers: Vec::new(),
            refused: vec!["counter 7: cut".into()],
        };
        let error = choose(refused, dir, None).expect_err("refused");
        assert!(error.message.contains("counter 7: cut"), "{error}");
    }
}
