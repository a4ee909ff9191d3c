//! Shared helpers of the workspace-level integration tests (in `tests/tests/`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
