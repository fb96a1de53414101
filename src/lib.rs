//! connect-operator: a Kubernetes operator that manages Amazon Connect instances from
//! `ConnectInstance` resources.
//!
//! Modules by responsibility: [`api`] (the custom resource), [`reconciler`] (pure planning
//! in `reconciler::plan` and [`conditions`], I/O at the edges), [`aws`] (client, error
//! classification, tokens, rate limits), [`telemetry`], [`server`] (metrics and health),
//! [`cli`], and [`simulator`] (the Connect simulator used by tests and the demo).

pub mod api;
pub mod aws;
pub mod cli;
pub mod conditions;
pub mod reconciler;
pub mod server;
pub mod simulator;
pub mod telemetry;
