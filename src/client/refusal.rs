//! Which attach refusals waiting cannot cure, and what the user should change instead
//! (Driver Model §4.2 attach responses; the table "Attach responses" of the user guide).
//!
//! Clients retry every refusal after a backoff, as the spec asks, because some clear by
//! themselves (`producer already attached` ends when the other producer leaves). Others
//! are the driver's configuration or the request itself: retrying them only waits out a
//! timeout. [`attach_refusal_fix`] tells the two apart, so an application (the examples,
//! the C ABI's `tp_attach_refusal_fix`) can stop at once and say what to change.

use crate::protocol::driver::ResponseCode;

/// What to change when the driver refused an attach for a reason that waiting cannot
/// cure; `None` when a retry may succeed (the driver is shutting down, another client
/// holds the stream or the id, a provisioning failure such as a full disk).
///
/// The driver's `errorMessage` texts are matched by prefix, so a driver that appends
/// detail keeps the classification.
pub fn attach_refusal_fix(code: ResponseCode, message: &str) -> Option<&'static str> {
    const FIXES: &[(&str, &str)] = &[
        (
            "stream not provisioned and dynamic streams are disabled",
            "add a [streams.<name>] entry for this stream id to the driver's configuration, \
             or set policies.allow_dynamic_streams = true with a driver.stream_id_range",
        ),
        (
            "stream not provisioned",
            "add a [streams.<name>] entry for this stream id to the driver's configuration, \
             or attach the producer with EXISTING_OR_CREATE (the examples' --create) on a \
             driver that allows dynamic streams",
        ),
        (
            "layout version mismatch",
            "use a client built for the driver's SHM layout version",
        ),
        (
            "hugepages required",
            "mount hugetlbfs and point the driver's shm.base_dir at it, or stop requiring hugepages",
        ),
        (
            "standard pages required",
            "point the driver's shm.base_dir at a non-hugetlbfs directory, or stop requiring \
             standard pages",
        ),
        (
            "shm.require_hugepages is set",
            "mount hugetlbfs and point the driver's shm.base_dir at it, or unset \
             shm.require_hugepages",
        ),
        (
            "no default profile for dynamic streams",
            "define a profile and name it in the driver's policies.default_profile",
        ),
        (
            "driver.stream_id_range is empty or exhausted",
            "widen the driver's driver.stream_id_range",
        ),
        (
            "stream profile has no payload pools",
            "give the stream's profile payload_pools in the driver's configuration",
        ),
    ];
    if let Some((_, fix)) = FIXES.iter().find(|(prefix, _)| message.starts_with(prefix)) {
        return Some(fix);
    }
    match code {
        ResponseCode::InvalidParams => {
            Some("fix the request (the driver's message names the field)")
        }
        ResponseCode::Unsupported => {
            Some("use a client and a driver of the same schema version (upgrade the older one)")
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_stream_is_final_and_names_both_cures() {
        let fix = attach_refusal_fix(ResponseCode::Rejected, "stream not provisioned").unwrap();
        assert!(
            fix.contains("[streams.<name>]") && fix.contains("--create"),
            "{fix}"
        );
        let fix = attach_refusal_fix(
            ResponseCode::Rejected,
            "stream not provisioned and dynamic streams are disabled",
        )
        .unwrap();
        assert!(fix.contains("allow_dynamic_streams"), "{fix}");
    }

    #[test]
    fn refusals_that_clear_by_themselves_are_retried() {
        for message in [
            "producer already attached",
            "client_id already attached",
            "driver shutting down",
            "node id unavailable",
        ] {
            assert_eq!(
                attach_refusal_fix(ResponseCode::Rejected, message),
                None,
                "{message}"
            );
        }
        assert_eq!(
            attach_refusal_fix(ResponseCode::InternalError, "provisioning failed: ENOSPC"),
            None
        );
    }

    #[test]
    fn invalid_and_unsupported_requests_are_final_whatever_the_message() {
        assert!(attach_refusal_fix(ResponseCode::InvalidParams, "unknown role").is_some());
        assert!(
            attach_refusal_fix(ResponseCode::Unsupported, "unsupported schema version 9").is_some()
        );
        assert!(attach_refusal_fix(ResponseCode::Rejected, "layout version mismatch").is_some());
    }
}
