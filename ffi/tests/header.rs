//! The checked-in C header is what cbindgen generates from the crate now: a change to
//! the ABI without regenerating `include/tensorpool.h` fails here.
//!
//! Regenerate with `TP_BLESS_HEADER=1 cargo test -p tensorpool-ffi --test header`.

use std::path::Path;

#[test]
fn header_is_current() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("reading ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");
    let path = crate_dir.join("include/tensorpool.h");
    if std::env::var_os("TP_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("writing include/tensorpool.h");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "ffi/include/tensorpool.h is stale: regenerate it with \
         `TP_BLESS_HEADER=1 cargo test -p tensorpool-ffi --test header` and commit it"
    );
}
