//! The group-commit writer: a dedicated thread that owns the [`Storage`], so no fsync ever
//! blocks the tokio driver.
//!
//! The thread blocks for one job, then takes every job already queued (up to
//! [`MAX_BATCH_JOBS`]), carries them out in order, calls [`Storage::sync`] once, and only
//! then reports `Done::Stored` for the batch's stores and installs, in submission (id)
//! order. On the first failure it reports `Done::Failed` and stops: the node must stop too.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use auction_ordering::{Snapshot, StoreId};
use auction_proto::msg::log::LogEntry;
use auction_proto::{NodeId, Seq, Term};
use tokio::sync::{mpsc, oneshot};

use super::{Storage, StorageError, StorageStats};

/// Jobs the queue holds before [`WriterHandle::submit`] blocks. Each `Store` action is one
/// job; the ordering core bounds its pipelined stores far below this, so the bound is only
/// reached when the disk cannot keep up, and then the driver waits (back-pressure).
pub const JOB_QUEUE_BOUND: usize = 4096;

/// Most jobs carried out under one sync.
pub const MAX_BATCH_JOBS: usize = 1024;

/// A batch (writes, snapshots and its sync) taking this long is logged as a warning: every
/// write acknowledged by this node waits for it.
const SLOW_BATCH: std::time::Duration = std::time::Duration::from_millis(100);

/// One unit of work for the writer thread.
#[derive(Debug)]
pub enum Job {
    /// `Action::Store`: discard entries at or after `from`, write `entries`; confirmed with
    /// `Done::Stored(id)` after the batch's sync.
    Store {
        /// Confirm with this id.
        id: StoreId,
        /// The first seq replaced.
        from: Seq,
        /// The new entries from `from` on.
        entries: Vec<LogEntry>,
    },
    /// `Action::InstallSnapshot`: replace the log with the snapshot; confirmed with
    /// `Done::Stored(id)`.
    Install {
        /// Confirm with this id.
        id: StoreId,
        /// What to install.
        snapshot: Snapshot,
    },
    /// Save a snapshot the node took (no confirmation; a failure is `Done::Failed`).
    SaveSnapshot(Snapshot),
    /// Save the term and vote; `done` gets the outcome once it is durable. The driver awaits
    /// it before sending anything queued after the `PersistTerm`.
    SaveTerm {
        /// The term.
        term: Term,
        /// The vote of that term.
        accepted: Option<NodeId>,
        /// Completion.
        done: oneshot::Sender<Result<(), Arc<StorageError>>>,
    },
}

/// A completion reported to the driver.
#[derive(Debug, Clone)]
pub enum Done {
    /// The store or install with this id is durable: call `handle_stored(id)`.
    Stored(StoreId),
    /// The writer failed and stopped; the node must stop. Nothing after the last `Stored`
    /// is known to be durable.
    Failed(Arc<StorageError>),
}

/// The driver's side of the writer thread. Dropping it (or [`WriterHandle::shutdown`]) lets
/// the thread finish the queued jobs, sync, and exit.
#[derive(Debug)]
pub struct WriterHandle {
    jobs: SyncSender<Job>,
    thread: JoinHandle<Option<Storage>>,
    stats: Arc<Mutex<StorageStats>>,
}

/// Starts the writer thread for `storage`; completions arrive on the returned receiver.
pub fn spawn_writer(storage: Storage) -> (WriterHandle, mpsc::UnboundedReceiver<Done>) {
    spawn_gated(storage, None)
}

/// [`spawn_writer`], with the thread waiting for `gate` before its first job (tests use it
/// to queue a known batch).
pub(crate) fn spawn_gated(
    storage: Storage,
    gate: Option<Receiver<()>>,
) -> (WriterHandle, mpsc::UnboundedReceiver<Done>) {
    let (jobs, rx) = sync_channel(JOB_QUEUE_BOUND);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(storage.stats()));
    let shared = Arc::clone(&stats);
    let thread = std::thread::Builder::new().name("storage-writer".into()).spawn(move || {
        if let Some(gate) = gate {
            let _ = gate.recv();
        }
        run(storage, &rx, &done_tx, &shared)
    });
    let thread = match thread {
        Ok(t) => t,
        // Only fails when the OS refuses a thread at start-up; nothing can run without it.
        Err(e) => panic!("cannot start the storage writer thread: {e}"),
    };
    (WriterHandle { jobs, thread, stats }, done_rx)
}

impl WriterHandle {
    /// Queues a job, blocking while the queue holds [`JOB_QUEUE_BOUND`] jobs.
    ///
    /// # Errors
    /// `WriterStopped` if the thread has stopped (after a failure); the job is dropped.
    pub fn submit(&self, job: Job) -> Result<(), StorageError> {
        self.jobs.send(job).map_err(|_| StorageError::WriterStopped)
    }

    /// Queues a job without blocking; gives it back if the queue is full.
    ///
    /// # Errors
    /// `Err(Ok(job))` if the queue is full; `Err(Err(WriterStopped))` if the thread stopped.
    pub fn try_submit(&self, job: Job) -> Result<(), Result<Job, StorageError>> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) => Ok(job),
            TrySendError::Disconnected(_) => Err(StorageError::WriterStopped),
        })
    }

    /// Saves the term and vote through the writer and waits until it is durable. This is
    /// the `PersistTerm` path for the async driver: await it before sending anything queued
    /// after the `PersistTerm`.
    ///
    /// # Errors
    /// The storage error (the node must stop), or `WriterStopped`.
    pub async fn save_term(
        &self,
        term: Term,
        accepted: Option<NodeId>,
    ) -> Result<(), Arc<StorageError>> {
        let (done, wait) = oneshot::channel();
        self.submit(Job::SaveTerm { term, accepted, done }).map_err(Arc::new)?;
        match wait.await {
            Ok(r) => r,
            Err(_) => Err(Arc::new(StorageError::WriterStopped)),
        }
    }

    /// Stats as of the end of the last batch.
    pub fn stats(&self) -> StorageStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops taking jobs, waits for the queued ones to be done and synced, and returns the
    /// storage (`None` if the writer had failed).
    pub fn shutdown(self) -> Option<Storage> {
        drop(self.jobs);
        self.thread.join().ok().flatten()
    }
}

/// The thread's loop; returns the storage when the handle is dropped, `None` after a failure.
fn run(
    mut storage: Storage,
    rx: &Receiver<Job>,
    done: &mpsc::UnboundedSender<Done>,
    stats: &Mutex<StorageStats>,
) -> Option<Storage> {
    let mut batch = Vec::with_capacity(MAX_BATCH_JOBS);
    let mut stored = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH_JOBS {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let jobs = batch.len();
        let outcome = run_batch(&mut storage, &mut batch, &mut stored);
        let took = started.elapsed();
        if took >= SLOW_BATCH {
            tracing::warn!(jobs, ms = took.as_millis() as u64, "slow storage batch (disk)");
        }
        *stats.lock().unwrap_or_else(PoisonError::into_inner) = storage.stats();
        if let Err(e) = outcome {
            tracing::error!(error = %e, "storage writer failed; the node must stop");
            let _ = done.send(Done::Failed(e));
            return None;
        }
        for id in stored.drain(..) {
            let _ = done.send(Done::Stored(id));
        }
    }
    Some(storage)
}

/// Carries out `batch` (emptying it) and syncs once; fills `stored` with the ids to confirm.
fn run_batch(
    storage: &mut Storage,
    batch: &mut Vec<Job>,
    stored: &mut Vec<StoreId>,
) -> Result<(), Arc<StorageError>> {
    for job in batch.drain(..) {
        match job {
            Job::Store { id, from, entries } => {
                storage.store(from, &entries).map_err(Arc::new)?;
                stored.push(id);
            }
            Job::Install { id, snapshot } => {
                storage.install_snapshot(&snapshot).map_err(Arc::new)?;
                stored.push(id);
            }
            Job::SaveSnapshot(snapshot) => storage.save_snapshot(&snapshot).map_err(Arc::new)?,
            Job::SaveTerm { term, accepted, done } => match storage.save_term(term, accepted) {
                Ok(()) => {
                    let _ = done.send(Ok(()));
                }
                Err(e) => {
                    let e = Arc::new(e);
                    let _ = done.send(Err(Arc::clone(&e)));
                    return Err(e);
                }
            },
        }
    }
    storage.sync().map_err(Arc::new)
}
