//! The Helm chart `charts/connect-operator`, proven against the real tools and the real API
//! server of the shared control plane, by job:
//!
//! - `lint.rs`: `helm lint --strict` with every `ci/*.yaml`, bad values refused with the
//!   schema's or the chart's message, the chart's CRDs identical to the generated `crds/`;
//! - `render.rs`: rendered value sets applied with a server-side dry run into a namespace
//!   enforcing the `restricted` Pod Security Standard;
//! - `rbac.rs`: the chart's least-privilege RBAC, and the operator run with that identity;
//! - `accounts.rs`: the default `ConnectAccount` the chart renders, the account values
//!   refused exactly where the CRD refuses them, and the account kept on uninstall;
//! - `leader_election.rs`: two replicas sharing the chart's Lease, and the handover after
//!   the leader is killed;
//! - `alerts.rs`: the alert rules, checked and unit-tested with promtool;
//! - `dashboard.rs`: the Grafana dashboard and its ConfigMap.
//!
//! This file holds what they share: the chart's location, release names, and the simulator
//! and values of a scenario. `helm.rs` runs helm and kubectl and reads what `helm template`
//! renders; `identity.rs` turns the rendered ServiceAccount into a kubeconfig and asks
//! `kubectl auth can-i` as it.
//!
//! helm is `$HELM_BIN` or what `hack/build-binaries.sh` builds. It is built without the
//! version ldflags, so every `helm template`/`helm lint` here passes `--kube-version`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod accounts;
pub(crate) mod alerts;
pub(crate) mod dashboard;
mod helm;
pub(crate) use helm::template_only;
mod identity;
mod leader_election;
mod lint;
mod rbac;
mod render;

use std::path::{Path, PathBuf};

use connect_sim::ConfigPatch;
use serde_json::{Value, json};

use test_kit::{Simulator, random_suffix};

/// The Kubernetes version `helm template`/`helm lint` render for (the control plane's).
const KUBE_VERSION: &str = "1.36.3";

/// Field manager of what these tests apply.
const FIELD_MANAGER: &str = "connect-operator-chart-tests";

/// `image.repository` for rendering: the chart has no default (no public registry serves
/// the image), so every render sets one. Pods never run here, so nothing pulls it.
const IMAGE_REPOSITORY: &str = "registry.example.com/connect-operator";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts/connect-operator")
}

/// A release name nobody else uses (cluster-scoped RBAC objects are named after it).
fn release_name(prefix: &str) -> String {
    format!("{prefix}-{}", random_suffix(5))
}

/// A simulator for a scenario: quick lifecycle, and Connect's CreateInstance/DeleteInstance
/// quota of 0.1/s lifted so timings measure the operator, not AWS's throttling.
async fn scenario_simulator(logs: &Path) -> Simulator {
    let sim = Simulator::start(
        logs,
        &["--creation-delay", "1s", "--deletion-delay", "500ms"],
    );
    sim.set_config(&ConfigPatch {
        rate_limits: Some(
            [("CreateInstance", Some(5.0)), ("DeleteInstance", Some(5.0))]
                .into_iter()
                .map(|(operation, rate)| (operation.to_owned(), rate))
                .collect(),
        ),
        ..ConfigPatch::default()
    })
    .await;
    sim
}

/// Values that point the chart at a simulator and make a test scenario quick, while the
/// rest stays at the chart's defaults.
fn scenario_values(sim_url: &str) -> Value {
    json!({
        "image": { "repository": IMAGE_REPOSITORY },
        "aws": {
            "region": "us-east-1",
            "endpointUrl": sim_url,
            "timeout": "5s",
            "createDeleteRate": 5,
            "apiRate": 50,
        },
        "reconcile": { "creationPollInterval": "300ms" },
        "logging": { "level": "info,connect_operator=debug" },
    })
}

/// `kubectl apply --server-side` of a YAML stream, as this suite's field manager.
async fn apply_server_side(yaml: &str) -> test_kit::KubectlOutput {
    test_kit::kubectl_with_input(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={FIELD_MANAGER}"),
            "-f",
            "-",
        ],
        Some(yaml),
    )
    .await
}

/// Merges `patch` into `base` (objects recursively; anything else replaced).
fn merged(mut base: Value, patch: Value) -> Value {
    fn merge(base: &mut Value, patch: Value) {
        match (base, patch) {
            (Value::Object(base), Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
            (base, patch) => *base = patch,
        }
    }
    merge(&mut base, patch);
    base
}
