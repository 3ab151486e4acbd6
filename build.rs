//! Generates the SBE codecs of `schemas/*.xml` into `OUT_DIR` (see docs/DESIGN.md for why
//! the project carries its own small generator).

#[path = "build/sbe/mod.rs"]
mod sbe;

use std::path::PathBuf;

/// (schema file, generated file) pairs.
const SCHEMAS: &[(&str, &str)] = &[
    ("schemas/driver.xml", "driver_codec.rs"),
    ("schemas/control.xml", "control_codec.rs"),
    ("schemas/bridge.xml", "bridge_codec.rs"),
];

fn main() {
    let out_dir =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts"));
    println!("cargo:rerun-if-changed=build");
    for (schema, generated) in SCHEMAS {
        println!("cargo:rerun-if-changed={schema}");
        let xml =
            std::fs::read_to_string(schema).unwrap_or_else(|e| panic!("reading {schema}: {e}"));
        let model = sbe::model::parse(&xml).unwrap_or_else(|e| panic!("{schema}: {e}"));
        let code = sbe::emit::emit(&model, schema);
        std::fs::write(out_dir.join(generated), code)
            .unwrap_or_else(|e| panic!("writing {generated}: {e}"));
    }
}
