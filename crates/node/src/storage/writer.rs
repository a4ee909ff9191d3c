//! The group-commit writer: a dedicated thread that owns the [`Storage`], so no fsync ever
//! blocks the tokio driver.
//!
//! The driver appends jobs to a shared queue (a mutex and two condition variables); the thread
//! waits for the queue to be non-empty, takes every job in it (up to [`MAX_BATCH_JOBS`]),
//! carries them out in order, calls [`Storage::sync`] once, and only then reports one
//! `Done::Stored` with the highest store or install id of the batch (stores complete in
//! order: confirming an id confirms every earlier one). The driver gathers the writes of every
//! input it handles and hands them over at once ([`WriterHandle::submit_all`]) when no input is
//! ready, and the thread is woken only if it sleeps, so a burst of inputs costs at most one
//! wake-up and its writes share one sync. On the first failure the
//! thread reports `Done::Failed` and stops: the node must stop too.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use auction_ordering::{Snapshot, StoreId};
use auction_proto::msg::log::LogEntry;
use auction_proto::{InstanceId, NodeId, Seq, Term};
use tokio::sync::{mpsc, oneshot};

use auction_storage::{Storage, StorageError, StorageStats};

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
    /// Save the cluster instance; `done` gets the outcome once it is durable.
    SaveInstance {
        /// The instance.
        instance: InstanceId,
        /// Completion.
        done: oneshot::Sender<Result<(), Arc<StorageError>>>,
    },
}

/// A completion reported to the driver.
#[derive(Debug, Clone)]
pub enum Done {
    /// Every store and install up to and including this id is durable: call
    /// `handle_stored(id)` (which confirms the earlier ids too).
    Stored(StoreId),
    /// The writer failed and stopped; the node must stop. Nothing after the last `Stored`
    /// is known to be durable.
    Failed(Arc<StorageError>),
}

/// The queue between the driver and the thread.
#[derive(Debug, Default)]
struct Queue {
    jobs: Vec<Job>,
    /// The thread waits for jobs (a submit must wake it).
    idle: bool,
    /// The driver waits for room (taking jobs must wake it).
    full: bool,
    /// The handle is gone: finish the queued jobs and exit.
    closed: bool,
    /// The thread failed and takes no more jobs.
    stopped: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when jobs arrive or the handle closes.
    work: Condvar,
    /// Signalled when the thread took jobs or stopped.
    room: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The driver's side of the writer thread. Dropping it (or [`WriterHandle::shutdown`]) lets
/// the thread finish the queued jobs, sync, and exit.
#[derive(Debug)]
pub struct WriterHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Option<Storage>>>,
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
    gate: Option<std::sync::mpsc::Receiver<()>>,
) -> (WriterHandle, mpsc::UnboundedReceiver<Done>) {
    let shared = Arc::new(Shared::default());
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(storage.stats()));
    let (queue, shared_stats) = (Arc::clone(&shared), Arc::clone(&stats));
    let thread = std::thread::Builder::new().name("storage-writer".into()).spawn(move || {
        if let Some(gate) = gate {
            let _ = gate.recv();
        }
        run(storage, &queue, &done_tx, &shared_stats)
    });
    let thread = match thread {
        Ok(t) => t,
        // Only fails when the OS refuses a thread at start-up; nothing can run without it.
        Err(e) => panic!("cannot start the storage writer thread: {e}"),
    };
    (WriterHandle { shared, thread: Some(thread), stats }, done_rx)
}

impl WriterHandle {
    /// Queues a job, blocking while the queue holds [`JOB_QUEUE_BOUND`] jobs.
    ///
    /// # Errors
    /// `WriterStopped` if the thread has stopped (after a failure); the job is dropped.
    pub fn submit(&self, job: Job) -> Result<(), StorageError> {
        let mut one = vec![job];
        self.submit_all(&mut one)
    }

    /// Queues all of `jobs` in order (emptying it) with one wake-up of the thread at most,
    /// blocking while the queue holds [`JOB_QUEUE_BOUND`] jobs.
    ///
    /// # Errors
    /// `WriterStopped` if the thread has stopped (after a failure); the jobs are dropped.
    pub fn submit_all(&self, jobs: &mut Vec<Job>) -> Result<(), StorageError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut q = self.shared.lock();
        loop {
            if q.stopped {
                jobs.clear();
                return Err(StorageError::WriterStopped);
            }
            if q.jobs.len() < JOB_QUEUE_BOUND {
                break;
            }
            q.full = true;
            q = self.shared.room.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        q.jobs.append(jobs);
        if q.idle {
            q.idle = false;
            self.shared.work.notify_one();
        }
        Ok(())
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

    /// Saves the cluster instance durably (after the jobs already submitted).
    ///
    /// # Errors
    /// The storage error (the node must stop), or `WriterStopped`.
    pub async fn save_instance(&self, instance: InstanceId) -> Result<(), Arc<StorageError>> {
        let (done, wait) = oneshot::channel();
        self.submit(Job::SaveInstance { instance, done }).map_err(Arc::new)?;
        wait.await.unwrap_or_else(|_| Err(Arc::new(StorageError::WriterStopped)))
    }

    /// Stats as of the end of the last batch.
    pub fn stats(&self) -> StorageStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops taking jobs, waits for the queued ones to be done and synced, and returns the
    /// storage (`None` if the writer had failed).
    pub fn shutdown(mut self) -> Option<Storage> {
        self.close();
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }

    fn close(&self) {
        let mut q = self.shared.lock();
        q.closed = true;
        self.shared.work.notify_one();
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        self.close();
    }
}

/// The thread's loop; returns the storage when the handle is dropped, `None` after a failure.
fn run(
    mut storage: Storage,
    shared: &Shared,
    done: &mpsc::UnboundedSender<Done>,
    stats: &Mutex<StorageStats>,
) -> Option<Storage> {
    let mut batch = Vec::with_capacity(MAX_BATCH_JOBS);
    loop {
        {
            let mut q = shared.lock();
            while q.jobs.is_empty() && !q.closed {
                q.idle = true;
                q = shared.work.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            q.idle = false;
            if q.jobs.is_empty() {
                return Some(storage);
            }
            let take = q.jobs.len().min(MAX_BATCH_JOBS);
            batch.extend(q.jobs.drain(..take));
            if q.full {
                q.full = false;
                shared.room.notify_one();
            }
        }
        let started = std::time::Instant::now();
        let jobs = batch.len();
        let outcome = run_batch(&mut storage, &mut batch);
        let took = started.elapsed();
        if took >= SLOW_BATCH {
            tracing::warn!(jobs, ms = took.as_millis() as u64, "slow storage batch (disk)");
        }
        *stats.lock().unwrap_or_else(PoisonError::into_inner) = storage.stats();
        match outcome {
            Ok(Some(id)) => {
                let _ = done.send(Done::Stored(id));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "storage writer failed; the node must stop");
                let mut q = shared.lock();
                q.stopped = true;
                q.jobs.clear();
                shared.room.notify_one();
                drop(q);
                let _ = done.send(Done::Failed(e));
                return None;
            }
        }
    }
}

/// Carries out `batch` (emptying it) and syncs once; returns the highest store or install id
/// to confirm.
fn run_batch(
    storage: &mut Storage,
    batch: &mut Vec<Job>,
) -> Result<Option<StoreId>, Arc<StorageError>> {
    let mut stored = None;
    for job in batch.drain(..) {
        match job {
            Job::Store { id, from, entries } => {
                storage.store(from, &entries).map_err(Arc::new)?;
                stored = Some(id);
            }
            Job::Install { id, snapshot } => {
                storage.install_snapshot(&snapshot).map_err(Arc::new)?;
                stored = Some(id);
            }
            Job::SaveSnapshot(snapshot) => storage.save_snapshot(&snapshot).map_err(Arc::new)?,
            Job::SaveInstance { instance, done } => answer(done, storage.save_instance(instance))?,
            Job::SaveTerm { term, accepted, done } => {
                answer(done, storage.save_term(term, accepted))?;
            }
        }
    }
    storage.sync().map_err(Arc::new)?;
    Ok(stored)
}

/// Tells the waiting driver how a metadata write went; a failure also stops the writer.
fn answer(
    done: oneshot::Sender<Result<(), Arc<StorageError>>>,
    result: Result<(), StorageError>,
) -> Result<(), Arc<StorageError>> {
    let result = result.map_err(Arc::new);
    let _ = done.send(result.clone());
    result
}
