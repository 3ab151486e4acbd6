//! The region-URI parser (Wire Spec §15.22): never panics, and what it accepts is an
//! absolute path of URI path characters that formats back to a URI parsing to the same
//! value. (Parsing is syntax only: `.` and `..` components are the containment check's to
//! refuse when the region is opened, src/shm/open.rs.)
#![no_main]

use tensorpool::shm::uri::{is_path_char, RegionUri};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = RegionUri::parse(text) {
        assert!(uri.path_str().starts_with('/'), "{text:?} -> {uri:?}");
        assert!(
            uri.path_str().chars().all(is_path_char),
            "{text:?} -> {uri:?}"
        );
        assert!(text.contains(uri.path_str()), "{text:?} -> {uri:?}");
        let again = RegionUri::parse(&uri.to_string()).expect("a formatted URI parses");
        assert_eq!(again, uri, "{text:?}");
    }
});
