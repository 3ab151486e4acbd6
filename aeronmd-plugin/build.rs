//! Compiles the C entry points in `../c_shim/` (see docs/DESIGN.md, "aeronmd plugin").

fn main() {
    let shim = "../c_shim/tensorpool_aeronmd.c";
    println!("cargo:rerun-if-changed={shim}");
    cc::Build::new()
        .file(shim)
        // The Aeron version whose hook layout the shim declares: the one rusteron vendors.
        .define("TP_AERON_VERSION_MAJOR", "1")
        .define("TP_AERON_VERSION_MINOR", "54")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("tensorpool_aeronmd_shim");
    println!("cargo:rustc-link-lib=dl");
}
