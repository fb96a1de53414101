//! How the operator talks to the Kubernetes API: a client whose every request has a
//! deadline ([`client`]), watches that are re-opened when they fall silent and report to
//! the liveness probe ([`watch`]), and the status writes and events both controllers make
//! ([`report`], through the process's event recorder, [`events`]).

pub mod client;
pub mod events;
pub mod report;
pub mod watch;

pub use client::{ClientSettings, DeadlineExceeded};
pub use report::{ReportError, Reporter};
pub use watch::{WatchBackoff, Watches};
