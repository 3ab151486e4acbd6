//! The provisioning thread (`tp-provision`): the slow file work of the driver, off its
//! duty cycle, so that no request waits behind it.
//!
//! - **Prefault** (`policies.prefault_shm`): the epoch a producer was granted is
//!   reserved and touched here while the control plane goes on answering (a large
//!   profile takes seconds under memory or I/O pressure; Driver Model §4.2 leaves the
//!   attach response nothing to wait for). Prefaulting never writes the files.
//! - **Provisioning ahead** (`policies.provision_ahead`): the next epoch of a stream is
//!   made before anyone asks for it, so a producer attach (or the end of a producer
//!   lease) hands out files that already exist, are sized, prefaulted and carry their
//!   superblocks (Driver Model §6: every producer attach starts a new epoch).
//!
//! The duty-cycle thread keeps numbering: it records the spare's epoch in the high-water
//! file before it hands the job over, so an epoch number is never made twice, and it
//! consumes the spare only for exactly that epoch. The worker does what
//! [`super::ShmProvisioner`] does for an epoch inline (directory, exclusive creation,
//! prefault, superblocks) with the same functions, and removes what it made when it
//! fails.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use super::files::{self, CreateError, OpenRegion, RegionOptions, RegionPlan};
use crate::driver::core::ProvisionFailure;

/// One epoch to make.
#[derive(Debug)]
pub(super) struct Job {
    pub stream_id: u32,
    pub epoch: u64,
    pub epoch_dir: PathBuf,
    pub dir_mode: u32,
    pub plans: Vec<RegionPlan>,
    pub opts: RegionOptions,
}

/// A finished job.
#[derive(Debug)]
pub(super) struct Done {
    pub stream_id: u32,
    pub epoch: u64,
    pub result: Result<Vec<OpenRegion>, CreateError>,
}

/// The files of one handed-out epoch to prefault.
#[derive(Debug)]
pub(super) struct PrefaultJob {
    pub stream_id: u32,
    pub epoch: u64,
    /// Path (for messages), open file and length of every region.
    pub regions: Vec<(PathBuf, File, u64)>,
    pub touch_step: u64,
}

/// A finished prefault.
#[derive(Debug)]
pub(super) struct Prefaulted {
    pub stream_id: u32,
    pub epoch: u64,
    pub result: Result<(), ProvisionFailure>,
}

/// Work for the thread.
#[derive(Debug)]
pub(super) enum Task {
    /// Make a spare epoch.
    Spare(Job),
    /// Prefault an epoch already handed out.
    Prefault(PrefaultJob),
}

/// What the thread finished.
#[derive(Debug)]
pub(super) enum Finished {
    /// A spare epoch.
    Spare(Done),
    /// A prefault.
    Prefault(Prefaulted),
}

/// The thread that does the slow file work, one task at a time, in submission order.
#[derive(Debug)]
pub(super) struct AheadWorker {
    jobs: Option<Sender<Task>>,
    done: Receiver<Finished>,
    thread: Option<JoinHandle<()>>,
}

impl AheadWorker {
    /// Starts the thread (`tp-provision`).
    pub fn start() -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<Task>();
        let (done_tx, done) = mpsc::channel::<Finished>();
        let thread = std::thread::Builder::new()
            .name("tp-provision".into())
            .spawn(move || {
                for task in job_rx {
                    let finished = match task {
                        Task::Spare(job) => Finished::Spare(Done {
                            stream_id: job.stream_id,
                            epoch: job.epoch,
                            result: build(&job),
                        }),
                        Task::Prefault(job) => Finished::Prefault(prefault(job)),
                    };
                    if done_tx.send(finished).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Hands `task` to the thread; gives it back if the thread is gone.
    pub fn submit(&self, task: Task) -> Result<(), Task> {
        match &self.jobs {
            Some(jobs) => jobs.send(task).map_err(|e| e.0),
            None => Err(task),
        }
    }

    /// A finished task, if one is waiting.
    pub fn try_done(&mut self) -> Option<Finished> {
        self.done.try_recv().ok()
    }

    /// A finished task, waiting for one at most `timeout`.
    pub fn done_within(&mut self, timeout: std::time::Duration) -> Option<Finished> {
        self.done.recv_timeout(timeout).ok()
    }
}

impl Drop for AheadWorker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread after its current job.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Prefaults every region of a handed-out epoch; the first failure ends the job.
pub(super) fn prefault(job: PrefaultJob) -> Prefaulted {
    let result = job
        .regions
        .iter()
        .try_for_each(|(path, file, len)| files::prefault_region(file, path, *len, job.touch_step));
    Prefaulted {
        stream_id: job.stream_id,
        epoch: job.epoch,
        result,
    }
}

/// Makes one epoch: its directory, then every region; on failure removes what it made.
fn build(job: &Job) -> Result<Vec<OpenRegion>, CreateError> {
    files::create_dir(&job.epoch_dir, job.dir_mode)?;
    let regions: Result<Vec<OpenRegion>, CreateError> = job
        .plans
        .iter()
        .map(|plan| files::create_region(plan, job.opts))
        .collect();
    if regions.is_err() {
        if let Err(e) = files::remove_half_built(&job.epoch_dir) {
            tracing::warn!(
                stream_id = job.stream_id,
                epoch = job.epoch,
                path = %job.epoch_dir.display(),
                error = %e,
                "could not remove a partially created spare epoch"
            );
        }
    }
    regions
}
