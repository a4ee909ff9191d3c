//! Tests of the storage module.
