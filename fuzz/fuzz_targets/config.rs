//! The driver configuration loader (TOML, then validation): never panics, and a
//! configuration it accepts writes out (`to_toml_string`) as TOML that loads back equal.
#![no_main]

use tensorpool::config::{DriverConfig, NoEnv};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = DriverConfig::from_toml_str(text, &NoEnv) {
        let printed = config.to_toml_string();
        let again = DriverConfig::from_toml_str(&printed, &NoEnv)
            .unwrap_or_else(|e| panic!("printed config refused: {e}\n{printed}"));
        assert_eq!(again, config, "{printed}");
    }
});
