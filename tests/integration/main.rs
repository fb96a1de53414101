//! Integration tests: one binary (the Connect SDK is large to link), sharing one local
//! control plane; each test works in a fresh namespace.

mod argocd_health;
mod chart;
mod operator;
mod simulator;
mod support;
