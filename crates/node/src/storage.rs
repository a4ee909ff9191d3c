//! The node's storage: the `auction-storage` crate (the write-ahead log, metadata and
//! snapshot files), run on a writer thread of its own so that fsyncs never block the
//! driver's event loop.

pub use auction_storage::*;

mod writer;

#[cfg(test)]
mod writer_tests;

pub use writer::{Done, JOB_QUEUE_BOUND, Job, MAX_BATCH_JOBS, WriterHandle, spawn_writer};
