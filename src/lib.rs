//! connect-operator: a Kubernetes operator that manages Amazon Connect instances from
//! `ConnectInstance` resources.
//!
//! Modules by responsibility: [`api`] (the custom resources), [`accounts`] (which account
//! an object uses, and the account controller), [`reconciler`] (pure planning
//! in `reconciler::plan` and [`conditions`], I/O at the edges), [`aws`] (client, error
//! classification, tokens, rate limits), [`cluster`] (the Kubernetes client's deadlines,
//! watches, status writes and events), [`runtime`] (which controllers run, under which
//! lease, [`fence`] and [`liveness`]), [`telemetry`], [`server`] (metrics and health),
//! [`import`] (manifests for live instances) and [`cli`]. The Connect simulator the tests and the demo run against is a crate of its
//! own (`crates/connect-sim`) that shares nothing with this one.

pub mod accounts;
pub mod api;
pub mod aws;
pub mod cli;
pub mod cluster;
pub mod conditions;
pub mod fence;
pub mod import;
pub mod liveness;
pub mod reconciler;
pub mod retry;
pub mod runtime;
pub mod server;
pub mod telemetry;
