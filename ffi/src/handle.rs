//! Handles: what a C pointer to a `tp_config`, `tp_producer`, `tp_consumer` or `tp_frame`
//! really points to, and the checks every call makes before touching it.
//!
//! A handle is a [`Shell`] on the heap whose first field is a [`Header`]: a kind tag
//! (live or closed), the thread that may drive it, and a busy flag. Closing a handle
//! drops what it holds and marks the tag closed, but the shell itself is never freed:
//! it stays in a process-wide list, so a pointer to a closed handle still points to a
//! header that says "closed" (an error code, not a use-after-free), and leak checkers
//! see the shells as reachable. A closed handle costs its shell, well under 100 bytes.
//! Pointers that no `tp_*_create` call ever returned cannot be checked; using one is
//! undefined behaviour, as it is for any C library.

use crate::status::{guard, tp_status, Failure};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// What a handle is; each kind has a live and a closed tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Config,
    Producer,
    Consumer,
    Frame,
    QosMonitor,
}

impl Kind {
    const fn live_tag(self) -> u64 {
        match self {
            Kind::Config => 0x7470_636f_6e66_0001,
            Kind::Producer => 0x7470_7072_6f64_0001,
            Kind::Consumer => 0x7470_636f_6e73_0001,
            Kind::Frame => 0x7470_6672_616d_0001,
            Kind::QosMonitor => 0x7470_716f_736d_0001,
        }
    }

    const fn closed_tag(self) -> u64 {
        self.live_tag() ^ 0xff
    }

    const fn name(self) -> &'static str {
        match self {
            Kind::Config => "tp_config",
            Kind::Producer => "tp_producer",
            Kind::Consumer => "tp_consumer",
            Kind::Frame => "tp_frame",
            Kind::QosMonitor => "tp_qos_monitor",
        }
    }

    /// Whether a handle of this kind may only be used on the thread that created it.
    const fn thread_bound(self) -> bool {
        // A config is plain data; producers and consumers own an Aeron client.
        !matches!(self, Kind::Config)
    }

    fn of_tag(tag: u64) -> Option<(Kind, bool)> {
        [
            Kind::Config,
            Kind::Producer,
            Kind::Consumer,
            Kind::Frame,
            Kind::QosMonitor,
        ]
        .into_iter()
        .find_map(|kind| {
            if tag == kind.live_tag() {
                Some((kind, true))
            } else if tag == kind.closed_tag() {
                Some((kind, false))
            } else {
                None
            }
        })
    }
}

/// The part of every handle that is read before its kind is known.
#[repr(C)]
pub(crate) struct Header {
    tag: AtomicU64,
    thread: u64,
    busy: AtomicBool,
    poisoned: AtomicBool,
}

/// A handle: the header, then what it holds (`None` once closed).
#[repr(C)]
pub(crate) struct Shell<T> {
    header: Header,
    inner: UnsafeCell<Option<T>>,
}

/// Addresses of every shell ever made (see the module docs).
static SHELLS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// Source of per-thread tokens (0 is never issued).
static NEXT_THREAD_TOKEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    // Const-initialised (0 = not issued yet): reading it needs no lazy-init check.
    static THREAD_TOKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The calling thread's token.
pub(crate) fn thread_token() -> u64 {
    THREAD_TOKEN.with(|token| match token.get() {
        0 => {
            let issued = NEXT_THREAD_TOKEN.fetch_add(1, Ordering::Relaxed);
            token.set(issued);
            issued
        }
        issued => issued,
    })
}

/// Makes a shell holding `value`, owned by the calling thread; it is never freed.
pub(crate) fn new_shell<T>(kind: Kind, value: T) -> *mut Shell<T> {
    let shell = Box::into_raw(Box::new(Shell {
        header: Header {
            tag: AtomicU64::new(kind.live_tag()),
            thread: thread_token(),
            busy: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
        },
        inner: UnsafeCell::new(Some(value)),
    }));
    SHELLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(shell as usize);
    shell
}

/// Checks that `ptr` is a live handle of `kind` that the calling thread may use now.
///
/// # Safety
/// `ptr` is NULL or was returned by this library as some handle.
unsafe fn check<'a>(ptr: *const Header, kind: Kind) -> Result<&'a Header, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(kind.name()));
    }
    // SAFETY: non-NULL and, by the contract, a shell of this library: shells are never
    // freed and every shell starts with a header.
    let header = unsafe { &*ptr };
    let tag = header.tag.load(Ordering::Acquire);
    // The common case, a live handle of the expected kind, is one comparison.
    if tag != kind.live_tag() {
        return Err(match Kind::of_tag(tag) {
            Some((k, false)) if k == kind => Failure::new(
                tp_status::TP_ERROR_CLOSED_HANDLE,
                format!("the {} was closed", kind.name()),
            ),
            Some((other, _)) => Failure::new(
                tp_status::TP_ERROR_INVALID_HANDLE,
                format!(
                    "a {} was passed where a {} is expected",
                    other.name(),
                    kind.name()
                ),
            ),
            None => Failure::new(
                tp_status::TP_ERROR_INVALID_HANDLE,
                format!("not a {} handle", kind.name()),
            ),
        });
    }
    if kind.thread_bound() && header.thread != thread_token() {
        return Err(Failure::new(
            tp_status::TP_ERROR_WRONG_THREAD,
            format!(
                "the {} belongs to the thread that created it; one thread drives a handle",
                kind.name()
            ),
        ));
    }
    if header.poisoned.load(Ordering::Relaxed) {
        return Err(Failure::new(
            tp_status::TP_ERROR_INTERNAL,
            format!(
                "the {} is unusable after an internal error; close it",
                kind.name()
            ),
        ));
    }
    Ok(header)
}

/// Marks `header` busy for the duration of one call; clears it on drop.
struct Busy<'a>(&'a Header);

impl<'a> Busy<'a> {
    fn enter(header: &'a Header, kind: Kind) -> Result<Self, Failure> {
        // A thread-bound handle passed the thread check: only its own thread (from inside
        // one of its callbacks) can find it busy, so a load and a store suffice where a
        // swap would cost a locked instruction on every call of the hot path.
        let was_busy = if kind.thread_bound() {
            let busy = header.busy.load(Ordering::Relaxed);
            header.busy.store(true, Ordering::Relaxed);
            busy
        } else {
            header.busy.swap(true, Ordering::Acquire)
        };
        if was_busy {
            return Err(Failure::new(
                tp_status::TP_ERROR_WRONG_STATE,
                format!(
                    "the {} is in use by a call that has not returned (called from its own \
                     callback, or from two threads at once)",
                    kind.name()
                ),
            ));
        }
        Ok(Self(header))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
    }
}

/// Runs `body` on the value held by the handle `ptr` of `kind`, after every check, with
/// panics caught (a panic poisons the handle).
///
/// # Safety
/// `ptr` is NULL or was returned by this library as a handle (of any kind) whose value
/// type is `T` when its kind is `kind`.
pub(crate) unsafe fn with<T>(
    ptr: *const Shell<T>,
    kind: Kind,
    body: impl FnOnce(&mut T) -> Result<(), Failure>,
) -> tp_status {
    guard(|| {
        // SAFETY: forwarded contract.
        let header = unsafe { check(ptr.cast(), kind) }?;
        let _busy = Busy::enter(header, kind)?;
        // SAFETY: the tag says this is a live `Shell<T>`; the busy flag and the thread
        // check make this the only reference to its value.
        let shell = unsafe { &*ptr };
        let value = unsafe { &mut *shell.inner.get() };
        let Some(value) = value.as_mut() else {
            return Err(Failure::fixed(
                tp_status::TP_ERROR_CLOSED_HANDLE,
                "the handle was closed",
            ));
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(value))) {
            Ok(result) => result,
            Err(payload) => {
                header.poisoned.store(true, Ordering::Relaxed);
                std::panic::resume_unwind(payload)
            }
        }
    })
}

/// Closes the handle `ptr` of `kind`: drops its value (running its `Drop`, e.g. a
/// detach) and marks it closed. NULL is accepted and does nothing, as `free` does.
///
/// # Safety
/// As for [`with`].
pub(crate) unsafe fn close<T>(ptr: *const Shell<T>, kind: Kind) -> tp_status {
    if ptr.is_null() {
        return tp_status::TP_OK;
    }
    guard(|| {
        // SAFETY: forwarded contract.
        let header = match unsafe { check(ptr.cast(), kind) } {
            Ok(header) => header,
            // A poisoned handle can (and should) still be closed.
            Err(f) if f.status == tp_status::TP_ERROR_INTERNAL => {
                // SAFETY: as above; `check` only refused it for the poison.
                unsafe { &*ptr.cast::<Header>() }
            }
            Err(f) => return Err(f),
        };
        let _busy = Busy::enter(header, kind)?;
        header.tag.store(kind.closed_tag(), Ordering::Release);
        // SAFETY: as in `with`; the value is taken out and dropped here.
        let value = unsafe { (*(*ptr).inner.get()).take() };
        drop(value);
        Ok(())
    })
}

/// Runs `body` on the value of a shell the library itself owns (a consumer's frame
/// handle), without the checks of [`with`].
///
/// # Safety
/// `shell` came from [`new_shell`], is used by the calling thread only, and no other
/// reference to its value is alive.
pub(crate) unsafe fn set_value<T>(shell: *mut Shell<T>, body: impl FnOnce(&mut T)) {
    // SAFETY: the caller's contract.
    if let Some(value) = unsafe { (*(*shell).inner.get()).as_mut() } {
        body(value);
    }
}
