//! The doorbell word under loom: clients publish a request and ring; the driver declares
//! itself asleep, runs a last duty cycle and waits on the word. No interleaving loses a
//! wake-up: the driver either sees the request in its last cycle or is woken, and after
//! waking it sees the request. The futex is modelled as the kernel implements it: the
//! word is compared under a lock that the waker also takes, and the wait has no timeout,
//! so a lost wake-up shows as a deadlock, which loom reports.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;
use tensorpool_loom::doorbell_word::{park, ring, Wake, SLEEPING};

/// `FUTEX_WAIT` / `FUTEX_WAKE` on one word.
#[derive(Default)]
struct Futex {
    bucket: Mutex<()>,
    waiters: Condvar,
}

impl Futex {
    /// Blocks while the word is `expected` until woken; false if the word differed.
    fn wait(&self, word: &AtomicU32, expected: u32) -> bool {
        let guard = self.bucket.lock().unwrap();
        if word.load(Ordering::SeqCst) != expected {
            return false;
        }
        drop(self.waiters.wait(guard).unwrap());
        true
    }

    fn wake(&self) {
        let _guard = self.bucket.lock().unwrap();
        self.waiters.notify_one();
    }
}

struct Shared {
    state: AtomicU32,
    futex: Futex,
    /// Requests published on the control stream (Aeron's offer is a release store, its
    /// poll an acquire load).
    requests: AtomicUsize,
}

fn client(shared: &Shared) {
    shared.requests.fetch_add(1, Ordering::Release);
    ring(&shared.state, |_| shared.futex.wake());
}

/// The driver's duty cycles until it has seen `expected` requests; every park either
/// finds the work in its last cycle or is woken (never times out: the wait has none).
///
/// With one client, being woken means its request is visible. With more, a wake can be
/// stale (loom found it): a client that swapped `AWAKE` in during one park calls
/// `FUTEX_WAKE` only after the driver parked again, waking it with nothing new to do, as a
/// real futex would; harmless (one early duty cycle), so only `single_client` asserts it.
fn driver(shared: &Shared, expected: usize, single_client: bool) {
    let mut seen = 0;
    while seen < expected {
        let wake = park(
            &shared.state,
            || shared.requests.load(Ordering::Acquire) - seen,
            |state| shared.futex.wait(state, SLEEPING),
        );
        let now = shared.requests.load(Ordering::Acquire);
        match wake {
            Wake::Work => assert!(now > seen, "work reported, none found"),
            Wake::Rung if single_client => {
                assert!(now > seen, "woken, but the request is not visible")
            }
            Wake::Rung => {}
            Wake::Timeout => panic!("the model's wait cannot time out"),
        }
        seen = now;
    }
}

#[test]
fn one_client_never_loses_its_wake_up() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            state: AtomicU32::new(0),
            futex: Futex::default(),
            requests: AtomicUsize::new(0),
        });
        let c = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || client(&shared))
        };
        driver(&shared, 1, true);
        c.join().unwrap();
    });
}

#[test]
fn two_clients_never_lose_a_wake_up() {
    let mut builder = loom::model::Builder::new();
    // Three threads: bound the preemptions to keep the search to seconds.
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let shared = Arc::new(Shared {
            state: AtomicU32::new(0),
            futex: Futex::default(),
            requests: AtomicUsize::new(0),
        });
        let clients: Vec<_> = (0..2)
            .map(|_| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || client(&shared))
            })
            .collect();
        driver(&shared, 2, false);
        for c in clients {
            c.join().unwrap();
        }
    });
}

/// The model can fail: a client that rings without the fence between publishing its
/// request and reading the state (a relaxed publication and load) can miss the driver's
/// `SLEEPING` while the driver misses the request; loom reports the deadlock.
#[test]
#[should_panic(expected = "deadlock")]
fn without_the_fences_loom_finds_a_lost_wake_up() {
    loom::model(|| {
        let shared = Arc::new(Shared {
            state: AtomicU32::new(0),
            futex: Futex::default(),
            requests: AtomicUsize::new(0),
        });
        let c = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                shared.requests.fetch_add(1, Ordering::Relaxed);
                if shared.state.load(Ordering::Relaxed) == SLEEPING
                    && shared.state.swap(0, Ordering::Relaxed) == SLEEPING
                {
                    shared.futex.wake();
                }
            })
        };
        // The driver's side without its fence either.
        shared.state.store(SLEEPING, Ordering::Relaxed);
        if shared.requests.load(Ordering::Relaxed) == 0 {
            shared.futex.wait(&shared.state, SLEEPING);
        }
        c.join().unwrap();
    });
}
