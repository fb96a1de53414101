//! Integration tests: one binary (the Connect SDK is large to link), sharing one local
//! control plane; each test works in a fresh namespace.

// Test code: a failed expectation is a test failure.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod argocd_health;
mod chart;
mod events;
mod harness;
mod operator;
mod reconcile;
mod simulator;
