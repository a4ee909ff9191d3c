//! The auction client: command parsing, the session with failover, and rendering.
//!
//! Layers, bottom to top:
//!
//! - [`parse`] (pure): a shell line or one-shot arguments to a typed [`parse::Command`], with
//!   help text per command; [`units`] for durations.
//! - `conn` and [`session`] (tokio): one TCP connection; a session with one `ClientId`,
//!   `Hello`, request numbers, and reconnect-and-resend with the same number on failover.
//! - [`discovery`]: `FindServers` over UDP broadcast and the least-loaded choice.
//! - [`render`] (pure): answers and events to text or JSON; [`exit`]: exit codes;
//!   [`neutral`] (pure): server text made inert for the terminal, cut by display width.
//!
//! The binary (`src/main.rs`, `src/shell.rs`) is the only part that prints.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod conn;
pub mod discovery;
pub mod exit;
mod help;
pub mod neutral;
pub mod parse;
pub mod render;
pub mod session;
pub mod units;
