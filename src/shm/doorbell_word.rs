//! The doorbell's state-word protocol (see [`super::doorbell`] for the file and why),
//! apart from the mapping and the futex system calls so it can be model-checked: the
//! `loom/` crate compiles this file with `--cfg loom`, where the atomics are loom's and the
//! futex is a mutex and condition variable that check the word under the lock, as the
//! kernel checks it under its hash-bucket lock.

#[cfg(loom)]
use loom::sync::atomic::{fence, AtomicU32, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{fence, AtomicU32, Ordering};

/// The driver is running (or about to run) its duty cycle.
pub const AWAKE: u32 = 0;
/// The driver is parked, or about to be: ring to wake it.
pub const SLEEPING: u32 = 1;

/// How a park on the doorbell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The last duty cycle found work: no park.
    Work,
    /// A client rang.
    Rung,
    /// The park ran its full length (or was interrupted).
    Timeout,
}

/// The client's side, after its request was published: wakes the driver if it is parked
/// (or about to be). `wake` is `FUTEX_WAKE` of one waiter on `state`. Returns whether this
/// call woke it; one load when the driver is awake.
pub fn ring(state: &AtomicU32, wake: impl FnOnce(&AtomicU32)) -> bool {
    // Orders the request's publication before the read of the state: the driver either
    // sees the request in its last cycle or we see it sleeping.
    fence(Ordering::SeqCst);
    if state.load(Ordering::SeqCst) != SLEEPING {
        return false;
    }
    if state.swap(AWAKE, Ordering::SeqCst) != SLEEPING {
        return false;
    }
    wake(state);
    true
}

/// The driver's side: declares itself asleep, runs `last_cycle` (one duty cycle,
/// returning its work) and, if it found none, `wait`s (`FUTEX_WAIT` on `state` expecting
/// [`SLEEPING`], at most one park; returns whether it was woken). `AWAKE` again on return.
pub fn park(
    state: &AtomicU32,
    last_cycle: impl FnOnce() -> usize,
    wait: impl FnOnce(&AtomicU32) -> bool,
) -> Wake {
    // A swap rather than a store: the read-modify-write orders this SLEEPING after any
    // client's AWAKE it replaces, explicitly. Under the C++ model a store would do (the
    // word's modification order is total), but loom keeps that order partial and reads a
    // client's earlier swap as possibly later than a plain store, reporting a lost wake-up
    // that cannot happen (loom/tests/loom_doorbell.rs). On x86 a sequentially consistent
    // store is an `xchg` anyway; elsewhere it costs one exclusive pair per park.
    state.swap(SLEEPING, Ordering::SeqCst);
    // Orders the state before the last cycle's reads of the control stream.
    fence(Ordering::SeqCst);
    if last_cycle() > 0 {
        state.store(AWAKE, Ordering::SeqCst);
        return Wake::Work;
    }
    let woke = wait(state);
    // A client that rang already stored AWAKE; after a timeout nobody did.
    let rung = state.swap(AWAKE, Ordering::SeqCst) == AWAKE;
    if rung || woke {
        Wake::Rung
    } else {
        Wake::Timeout
    }
}
