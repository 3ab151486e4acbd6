//! Provisioning ahead (`policies.provision_ahead`): the next epoch of a stream is made
//! before anyone asks for it, on a thread of its own, so a producer attach (or the end of
//! a producer lease) hands out files that already exist, are sized, prefaulted and carry
//! their superblocks, instead of creating, sizing and faulting them on the attach path
//! while every other request waits behind it (Driver Model §6: every producer attach
//! starts a new epoch).
//!
//! The duty-cycle thread keeps numbering: it records the spare's epoch in the high-water
//! file before it hands the job over, so an epoch number is never made twice, and it
//! consumes the spare only for exactly that epoch. The worker does what
//! [`super::ShmProvisioner`] does for an epoch inline (directory, exclusive creation,
//! prefault, superblocks) with the same functions, and removes what it made when it
//! fails.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use super::files::{self, CreateError, OpenRegion, RegionOptions, RegionPlan};

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

/// The thread that makes spare epochs, one job at a time, in submission order.
#[derive(Debug)]
pub(super) struct AheadWorker {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    /// Results taken off the channel while waiting for another stream's.
    early: VecDeque<Done>,
    thread: Option<JoinHandle<()>>,
}

impl AheadWorker {
    /// Starts the thread (`tp-provision-ahead`).
    pub fn start() -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Done>();
        let thread = std::thread::Builder::new()
            .name("tp-provision-ahead".into())
            .spawn(move || {
                for job in job_rx {
                    let done = Done {
                        stream_id: job.stream_id,
                        epoch: job.epoch,
                        result: build(&job),
                    };
                    if done_tx.send(done).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            early: VecDeque::new(),
            thread: Some(thread),
        })
    }

    /// Hands `job` to the thread; false if the thread is gone.
    pub fn submit(&self, job: Job) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok())
    }

    /// A finished job, if one is waiting.
    pub fn try_done(&mut self) -> Option<Done> {
        self.early.pop_front().or_else(|| self.done.try_recv().ok())
    }

    /// Waits for the job of `stream_id`; results of other streams are kept for
    /// [`AheadWorker::try_done`]. `None` if the thread is gone.
    pub fn wait_for(&mut self, stream_id: u32) -> Option<Done> {
        if let Some(at) = self.early.iter().position(|d| d.stream_id == stream_id) {
            return self.early.remove(at);
        }
        loop {
            let done = self.done.recv().ok()?;
            if done.stream_id == stream_id {
                return Some(done);
            }
            self.early.push_back(done);
        }
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
