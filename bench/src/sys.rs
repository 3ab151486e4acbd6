//! The machine and the process: interruption, CPU pinning, scratch directories, child
//! processes killed by pid, `/proc` sampling, and the facts a result table is printed with.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Context as _};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to a flag the measuring loops poll, so an interrupted run
/// still stops its processes and removes its directories.
pub fn install_interrupt_handler() -> Result<(), BenchError> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }.setup(format!("installing a {signal} handler"))?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `Err(Interrupted)` once SIGINT or SIGTERM arrived.
pub fn check_interrupted() -> Result<(), BenchError> {
    if interrupted() {
        Err(BenchError::Interrupted)
    } else {
        Ok(())
    }
}

/// CPUs this process may run on.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The two cores a two-party benchmark pins its parties to, when there are two.
pub fn core_pair() -> Option<(usize, usize)> {
    (cpu_count() >= 2).then_some((0, 1))
}

/// Sets the CPUs thread `tid` of this process may run on: `Some(core)` pins it, `None`
/// lets it run on every CPU of the machine (as an unpinned thread). Warns when the kernel
/// refuses.
pub fn set_thread_affinity(tid: i32, core: Option<usize>) {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    let cores = match core {
        Some(core) => core..core + 1,
        None => 0..cpu_count(),
    };
    for core in cores {
        if let Err(e) = set.set(core) {
            eprintln!("tp-bench: cannot place thread {tid} on core {core}: {e}");
            return;
        }
    }
    if let Err(e) = sched_setaffinity(Pid::from_raw(tid), &set) {
        eprintln!("tp-bench: cannot place thread {tid} on {core:?}: {e}");
    }
}

/// The CPUs the calling thread may run on, to put back with [`restore_affinity`].
pub fn current_affinity() -> Option<nix::sched::CpuSet> {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()
}

/// Puts the calling thread back on `saved` if a scenario pinned it and left it pinned;
/// whether it had to (threads spawned later, child processes and `cpu_count` would
/// otherwise inherit the narrower set and skew every scenario after it).
pub fn restore_affinity(saved: &nix::sched::CpuSet) -> bool {
    match current_affinity() {
        Some(now) if now != *saved => {
            if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), saved) {
                eprintln!("tp-bench: cannot restore the harness thread's CPU set: {e}");
            }
            true
        }
        _ => false,
    }
}

/// Pins the calling thread to `core` (a no-op with a warning when the kernel refuses, e.g.
/// in a container with a restricted CPU set).
pub fn pin_current_thread(core: usize) {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    if let Err(e) = set.set(core) {
        eprintln!("tp-bench: cannot pin to core {core}: {e}");
        return;
    }
    if let Err(e) = sched_setaffinity(Pid::from_raw(0), &set) {
        eprintln!("tp-bench: cannot pin to core {core}: {e}");
    }
}

/// The CPU model from /proc/cpuinfo.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The running kernel's release.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The 1-, 5- and 15-minute load averages, as /proc/loadavg shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Time on CPU of every thread of `pid`, seconds, from the first field of
/// /proc/<pid>/task/<tid>/schedstat.
fn sched_cpu_s(pid: u32) -> Result<f64, BenchError> {
    let dir = format!("/proc/{pid}/task");
    let mut ns = 0u64;
    for entry in std::fs::read_dir(&dir).measure(format!("listing {dir}"))? {
        let path = entry
            .measure(format!("listing {dir}"))?
            .path()
            .join("schedstat");
        // A thread may exit between the listing and the read.
        if let Ok(text) = std::fs::read_to_string(&path) {
            ns += text
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(ns as f64 / 1e9)
}

/// CPU time of the whole machine and of this process, to tell how much of the machine
/// something else used while a scenario ran.
#[derive(Debug, Clone, Copy)]
pub struct CpuAccount {
    at: Instant,
    /// Busy time of all CPUs (user, nice, system, irq, softirq), clock ticks.
    machine_busy: u64,
    /// Time the hypervisor ran something else while this machine wanted to run, ticks.
    steal: u64,
    /// This process, its threads and its reaped children, ticks.
    own: u64,
}

impl CpuAccount {
    /// Reads /proc/stat and /proc/self/stat (`None` if they cannot be read).
    pub fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let at = |i: usize| cpu.get(i).copied().unwrap_or(0);
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let fields: Vec<u64> = own_stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // utime, stime, cutime, cstime are fields 14-17, i.e. 11-14 after the ')'.
        let own = fields.get(11..15)?.iter().sum();
        Some(Self {
            at: Instant::now(),
            machine_busy: at(0) + at(1) + at(2) + at(5) + at(6),
            steal: at(7),
            own,
        })
    }

    /// Cores' worth of CPU others used, and of steal, between `earlier` and this reading.
    pub fn background_since(&self, earlier: &Self) -> (f64, f64) {
        // SAFETY: sysconf has no preconditions.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let wall = self.at.duration_since(earlier.at).as_secs_f64().max(1e-9);
        let busy = self.machine_busy.saturating_sub(earlier.machine_busy) as f64;
        let own = self.own.saturating_sub(earlier.own) as f64;
        let steal = self.steal.saturating_sub(earlier.steal) as f64;
        (
            ((busy - own).max(0.0) / ticks_per_s) / wall,
            (steal / ticks_per_s) / wall,
        )
    }
}

/// The workspace root (where the root Cargo.toml is), as known at build time.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `git rev-parse HEAD` of the workspace, with `-dirty` when the tree has changes.
pub fn git_commit() -> Option<String> {
    let root = workspace_root();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// A scratch directory (under /dev/shm when it exists, so SHM files and Aeron logs live on
/// tmpfs as in production), removed with everything in it on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new, empty directory named `tp-bench-<label>-…`.
    pub fn new(label: &str) -> Result<Self, BenchError> {
        let mut builder = tempfile::Builder::new();
        let prefix = format!("tp-bench-{label}-");
        builder.prefix(&prefix);
        let dir = match Path::new("/dev/shm").is_dir() {
            true => builder.tempdir_in("/dev/shm"),
            false => builder.tempdir(),
        }
        .setup("creating a scratch directory")?;
        Ok(Self { dir })
    }

    /// `name` inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A child process that is killed (SIGKILL, by its pid) and reaped when dropped, unless it
/// already exited.
pub struct ChildProcess {
    child: Child,
    name: String,
}

impl ChildProcess {
    /// Spawns `command`; `name` is used in messages.
    pub fn spawn(mut command: Command, name: &str) -> Result<Self, BenchError> {
        let child = command.spawn().setup(format!("starting {name}"))?;
        Ok(Self {
            child,
            name: name.to_owned(),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Err` with its exit status if it has exited.
    pub fn check_running(&mut self) -> Result<(), BenchError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::Setup(format!(
                "{} exited unexpectedly ({status})",
                self.name
            ))),
            Err(e) => Err(BenchError::Setup(format!("polling {}: {e}", self.name))),
        }
    }

    /// Waits up to `timeout` for it to exit on its own.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return None,
            }
        }
    }

    /// Sends SIGTERM (by pid), waits up to `grace`, then SIGKILLs it.
    pub fn terminate(&mut self, grace: Duration) {
        if let Ok(None) = self.child.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            if self.wait_timeout(grace).is_none() {
                self.kill();
            }
        }
    }

    /// SIGKILL (by pid) and reap.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's pid only.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Arranges for the calling process to get SIGKILL when its parent dies, and exits at once
/// if the parent (pid `parent`) is already gone. Called first thing in child roles.
pub fn die_with_parent(parent: u32) {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid().as_raw() as u32 != parent {
        std::process::exit(3);
    }
}

/// CPU time and memory of a process, read from /proc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    /// When it was read.
    pub at: Instant,
    /// utime + stime, in seconds (tick-sampled: a task that wakes on timers is often
    /// running when the tick samples, so this can read high).
    pub cpu_s: f64,
    /// Time on CPU of all its threads from /proc/<pid>/task/*/schedstat (the scheduler's
    /// own clock, nanosecond resolution), seconds.
    pub sched_cpu_s: f64,
    /// Resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Anonymous resident memory (RssAnon: heap, stacks), KiB.
    pub rss_anon_kib: u64,
    /// Resident shared memory (RssShmem: tmpfs mappings such as Aeron logs), KiB.
    pub rss_shmem_kib: u64,
    /// Context switches of the main thread (voluntary + involuntary).
    pub context_switches: u64,
}

impl ProcessSample {
    /// Reads /proc/`pid`/stat and /proc/`pid`/status.
    pub fn read(pid: u32) -> Result<Self, BenchError> {
        let at = Instant::now();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .measure(format!("reading /proc/{pid}/stat"))?;
        // The command name may hold spaces and parentheses; fields follow the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12.
        let tick = |i: usize| -> Result<u64, BenchError> {
            fields
                .get(i)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| BenchError::Measure(format!("malformed /proc/{pid}/stat")))
        };
        // SAFETY: sysconf has no preconditions.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let cpu_s = (tick(11)? + tick(12)?) as f64 / ticks_per_s;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .measure(format!("reading /proc/{pid}/status"))?;
        let field = |key: &str| -> Result<u64, BenchError> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| BenchError::Measure(format!("no {key} in /proc/{pid}/status")))
        };
        Ok(Self {
            at,
            cpu_s,
            sched_cpu_s: sched_cpu_s(pid)?,
            rss_kib: field("VmRSS:")?,
            rss_anon_kib: field("RssAnon:")?,
            rss_shmem_kib: field("RssShmem:")?,
            context_switches: field("voluntary_ctxt_switches:")?
                + field("nonvoluntary_ctxt_switches:")?,
        })
    }

    /// CPU used between `earlier` and this sample by the scheduler's clock, % of one core.
    pub fn cpu_percent_since(&self, earlier: &Self) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return f64::NAN;
        }
        (self.sched_cpu_s - earlier.sched_cpu_s) / wall * 100.0
    }

    /// As [`ProcessSample::cpu_percent_since`] from utime + stime (tick-sampled).
    pub fn tick_cpu_percent_since(&self, earlier: &Self) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        if wall <= 0.0 {
            return f64::NAN;
        }
        (self.cpu_s - earlier.cpu_s) / wall * 100.0
    }

    /// Context switches per second between `earlier` and this sample.
    pub fn switches_per_s_since(&self, earlier: &Self) -> f64 {
        let wall = self.at.duration_since(earlier.at).as_secs_f64();
        self.context_switches
            .saturating_sub(earlier.context_switches) as f64
            / wall
    }
}
