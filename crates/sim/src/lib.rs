//! Deterministic whole-cluster simulation (work in progress).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
