//! Total-order reliable multicast: sequencer, hold-back queue, majority commit, view change (sans-IO).
//!
//! Not implemented yet: this crate is a placeholder in the workspace layout, and its work is
//! tracked by issue 6. It depends only on `auction-proto` and never on tokio: it will be a
//! sans-IO state machine (see docs/architecture.md).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
