//! `libtensorpool_aeronmd.so`: the tensorpool SHM driver inside a stock Aeron C media
//! driver. An operator adds it to a running deployment by configuration alone:
//!
//! ```sh
//! AERON_DRIVER_DYNAMIC_LIBRARIES=/path/to/libtensorpool_aeronmd.so \
//! AERON_NAME_RESOLVER_SUPPLIER=tensorpool_aeronmd_name_resolver_supplier \
//! TENSORPOOL_DRIVER_CONFIG=/etc/tensorpool/driver.toml \
//! aeronmd
//! ```
//!
//! The C entry points live in `c_shim/` (they fill Aeron's name-resolver hook); this crate
//! exports the one symbol the media driver looks up and hands the shim the Rust side,
//! [`tensorpool::driver::hosted::HostedDriver`]. Why a name resolver, and how the library
//! keeps its own copy of Aeron's client invisible to the host: docs/DESIGN.md.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use tensorpool::clock::monotonic_now_ns;
use tensorpool::config::ProcessEnv;
use tensorpool::driver::hosted::HostedDriver;

/// The Rust side as the shim sees it (`tp_aeronmd_callbacks_t` in c_shim/).
#[repr(C)]
struct Callbacks {
    open: unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> *mut c_void,
    do_work: unsafe extern "C" fn(*mut c_void) -> c_int,
    close: unsafe extern "C" fn(*mut c_void),
}

static CALLBACKS: Callbacks = Callbacks {
    open: driver_open,
    do_work: driver_do_work,
    close: driver_close,
};

extern "C" {
    fn tp_aeronmd_shim_supplier(
        resolver: *mut c_void,
        args: *const c_char,
        context: *mut c_void,
        callbacks: *const Callbacks,
    ) -> c_int;
}

/// The name-resolver supplier to name in `AERON_NAME_RESOLVER_SUPPLIER`: wraps Aeron's
/// default resolver and adds the tensorpool SHM driver to its duty cycle. Returns -1 (and
/// the media driver does not start) when the configuration is invalid.
///
/// It is defined here, not in the C shim, because rustc exports only Rust's own
/// `#[no_mangle]` items from a cdylib and makes every C symbol local.
///
/// # Safety
/// Called by Aeron's media driver with its resolver, init args and driver context.
#[no_mangle]
pub unsafe extern "C" fn tensorpool_aeronmd_name_resolver_supplier(
    resolver: *mut c_void,
    args: *const c_char,
    context: *mut c_void,
) -> c_int {
    // SAFETY: the arguments come straight from the media driver, as the shim expects.
    unsafe { tp_aeronmd_shim_supplier(resolver, args, context, &CALLBACKS) }
}

/// Opens the hosted driver for the media driver in `aeron_dir`; on failure writes the reason
/// (naming the key, variable or path) into `error` and returns null.
unsafe extern "C" fn driver_open(
    aeron_dir: *const c_char,
    error: *mut c_char,
    error_len: usize,
) -> *mut c_void {
    init_logging();
    let opened = catch_unwind(|| {
        if aeron_dir.is_null() {
            return Err("the media driver has no aeron directory".to_owned());
        }
        // SAFETY: the shim passes the host context's NUL-terminated directory.
        let dir = unsafe { CStr::from_ptr(aeron_dir) };
        let dir = Path::new(std::ffi::OsStr::from_bytes(dir.to_bytes()));
        HostedDriver::open_from_env(dir, &ProcessEnv).map_err(|e| e.to_string())
    })
    .unwrap_or_else(|_| Err("panicked while opening (see the log above)".to_owned()));
    match opened {
        Ok(driver) => Box::into_raw(Box::new(driver)).cast(),
        Err(message) => {
            tracing::error!(%message, "tensorpool SHM driver cannot start");
            // SAFETY: the shim passes a buffer of `error_len` bytes.
            unsafe { write_message(error, error_len, &message) };
            std::ptr::null_mut()
        }
    }
}

/// One duty cycle of the hosted driver; returns the work done.
///
/// The media driver calls `do_work` from its native-resource agent alone, and `close` only
/// after that agent's thread has stopped, so the driver is never used by two threads at
/// once, even though (in DEDICATED mode) it is opened, run and closed on different ones.
unsafe extern "C" fn driver_do_work(driver: *mut c_void) -> c_int {
    // SAFETY: `driver` came from `driver_open` and is not used concurrently (see above).
    let driver = unsafe { &mut *driver.cast::<HostedDriver>() };
    let work = catch_unwind(AssertUnwindSafe(|| driver.do_work(monotonic_now_ns())));
    match work {
        Ok(work) => c_int::try_from(work).unwrap_or(c_int::MAX),
        Err(_) => {
            tracing::error!("the tensorpool SHM driver panicked in its duty cycle");
            0
        }
    }
}

/// Sends `ShmDriverShutdown`, releases everything and frees the driver.
unsafe extern "C" fn driver_close(driver: *mut c_void) {
    // SAFETY: `driver` came from `driver_open`; the media driver closes it once.
    let mut driver = unsafe { Box::from_raw(driver.cast::<HostedDriver>()) };
    if catch_unwind(AssertUnwindSafe(|| driver.close())).is_err() {
        tracing::error!("the tensorpool SHM driver panicked while closing");
    }
}

/// Writes `message` into the C buffer `out` of `len` bytes, truncated and NUL-terminated.
unsafe fn write_message(out: *mut c_char, len: usize, message: &str) {
    if out.is_null() || len == 0 {
        return;
    }
    let n = message.len().min(len - 1);
    // SAFETY: `out` holds `len` bytes and `n < len`.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), out.cast::<u8>(), n);
        *out.add(n) = 0;
    }
}

/// Logs to the media driver's stderr, level from `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Already set when the library is opened twice in one process: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
