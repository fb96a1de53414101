//! End-to-end scenarios: the real `connect-operator` binary against the real API server
//! (shared control plane) and its own `connect-sim` process, driven the way users drive it
//! (manifests through the API and kubectl). Each scenario asserts both sides: the object
//! (status, conditions, events, finalizer) and the simulator's record of Connect calls.
//!
//! Each test has its own namespace, simulator and operator (watching only that namespace),
//! so tests run in parallel without seeing each other.
//!
//! This file holds the scenario fixture and the assertions the scenarios share. The
//! scenarios, by theme: `lifecycle.rs` (create, change, delete, retain), `quota.rs` (the
//! instance quota and the lifecycle attempt limit), `failures.rs` (throttling and server
//! errors, a crash right after CreateInstance, a failed creation, an alias held by a foreign
//! instance), `admission.rs` (what the API server refuses, and the examples it accepts),
//! `brownfield.rs` (import, adoption, ObserveOnly), `safety.rs` (pause, deletion
//! protection and its admission policies), `undocumented.rs` (the lifecycle and the
//! crash with the simulator answering what AWS leaves undocumented the other way) and
//! `accounts.rs` (several AWS accounts, who may use which, refused roles, per-account
//! throttling), `control_plane.rs` (connections to the API server dying silently, the API
//! server and etcd killed and restarted, two replicas through an API-server outage),
//! `ledger.rs` (the 30-day attempt ledger and budget, under crashes and
//! leader changes), `polls.rs` (creations sharing one listing, deletions waiting silently for
//! their slot), `replica.rs` (a replica in the paired region, the traffic split, removal and
//! deletion order, a refused replication) and `observability.rs` (the metrics in every state an alert is about, and
//! every metric the alert rules and the dashboard use).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod accounts;
mod admission;
mod brownfield;
mod configuration;
mod configuration_faults;
mod control_plane;
mod failures;
mod ledger;
mod lifecycle;
mod observability;
mod polls;
mod quota;
mod replica;
mod replica_faults;
mod safety;
mod undocumented;

use std::collections::BTreeMap;

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::SemaphorePermit;

use test_kit::connect::{
    self, condition, describe, event_summaries, events, generation, is_true, wait_for,
};
use test_kit::simulator::log_dir;
use test_kit::{
    DEADLINE, OperatorOptions, OperatorProcess, SimCall, Simulator, TestNamespace, client,
    heavy_slot, kubectl_with_input,
};

// Whether a Connect operation changes something in AWS: the operator's own rule (every
// operation but the reads, by name).
use connect_operator::aws::error::is_write_operation as mutating;

/// Every Connect operation the simulator serves.
const OPERATIONS: &[&str] = &[
    "CreateInstance",
    "DescribeInstance",
    "ListInstances",
    "DeleteInstance",
    "UpdateInstanceAttribute",
    "DescribeInstanceAttribute",
    "ListInstanceAttributes",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "AssociateInstanceStorageConfig",
    "DescribeInstanceStorageConfig",
    "ListInstanceStorageConfigs",
    "UpdateInstanceStorageConfig",
    "DisassociateInstanceStorageConfig",
    "AssociateApprovedOrigin",
    "ListApprovedOrigins",
    "DisassociateApprovedOrigin",
    "AssociateLambdaFunction",
    "ListLambdaFunctions",
    "DisassociateLambdaFunction",
    "AssociateBot",
    "ListBots",
    "DisassociateBot",
    "AssociateSecurityKey",
    "ListSecurityKeys",
    "DisassociateSecurityKey",
    "ReplicateInstance",
    "CreateTrafficDistributionGroup",
    "DescribeTrafficDistributionGroup",
    "DeleteTrafficDistributionGroup",
    "ListTrafficDistributionGroups",
    "GetTrafficDistribution",
    "UpdateTrafficDistribution",
];

/// One namespace, one simulator, one operator watching that namespace.
struct Scenario {
    // Dropped first: the operator stops before the simulator it talks to.
    operator: OperatorProcess,
    sim: Simulator,
    client: Client,
    namespace: String,
    api: Api<DynamicObject>,
    _slot: SemaphorePermit<'static>,
}

impl Scenario {
    async fn start(test: &str, sim_args: &[&str], operator_flags: &[(&str, &str)]) -> Self {
        Self::start_watching(test, sim_args, operator_flags, &[]).await
    }

    /// A scenario whose operator also watches `more_namespaces`.
    async fn start_watching(
        test: &str,
        sim_args: &[&str],
        operator_flags: &[(&str, &str)],
        more_namespaces: &[&str],
    ) -> Self {
        Self::start_with(test, sim_args, operator_flags, more_namespaces, |options| {
            options
        })
        .await
    }

    /// A scenario whose operator's options `customize` changes last (its kubeconfig, its
    /// environment).
    async fn start_with(
        test: &str,
        sim_args: &[&str],
        operator_flags: &[(&str, &str)],
        more_namespaces: &[&str],
        customize: impl FnOnce(OperatorOptions) -> OperatorOptions,
    ) -> Self {
        let slot = heavy_slot().await;
        let client = client().await;
        let namespace = TestNamespace::create(&client, &namespace_prefix(test))
            .await
            .name;
        let logs = log_dir(test);
        // The operator runs with fast create/delete rates here, so the simulator's
        // AWS-like rate limits are lifted; the throttling scenario sets its own.
        let unlimited: Vec<String> = OPERATIONS.iter().map(|op| format!("{op}=none")).collect();
        let mut args: Vec<&str> = Vec::new();
        for limit in &unlimited {
            args.extend(["--rate-limit", limit.as_str()]);
        }
        args.extend_from_slice(sim_args);
        let sim = Simulator::start(&logs, &args);
        let mut options = OperatorOptions::new(&namespace, &sim.url);
        for (name, value) in operator_flags {
            options = options.flag(name, value);
        }
        for namespace in more_namespaces {
            options = options.also_watch(namespace);
        }
        let operator = OperatorProcess::start(&logs, customize(options)).await;
        let api = connect::api(&client, &namespace);
        Self {
            operator,
            sim,
            client,
            namespace,
            api,
            _slot: slot,
        }
    }

    /// The simulator's Connect calls: what the objects asked of AWS. The STS calls that
    /// verify the accounts' credentials are the accounts' own, and are left out.
    async fn connect_calls(&self) -> Vec<SimCall> {
        self.sim
            .calls()
            .await
            .into_iter()
            .filter(|call| OPERATIONS.contains(&call.operation.as_str()))
            .collect()
    }

    /// Polls the operator's `/metrics` until every sample is in it; returns the text. A
    /// sample is a whole line (`name{labels} value`), or `name{labels}` with any value.
    async fn metrics_with(&self, samples: &[String]) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let text = self.operator.metrics().await;
            let missing: Vec<&String> = samples
                .iter()
                .filter(|sample| {
                    !text.lines().any(|line| {
                        line == sample.as_str()
                            || (sample.ends_with('}')
                                && line
                                    .strip_prefix(sample.as_str())
                                    .is_some_and(|rest| rest.starts_with(' ')))
                    })
                })
                .collect();
            if missing.is_empty() {
                return text;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "missing from /metrics: {missing:#?}\n{text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }

    /// Waits until at least `n` of the Connect calls after the first `from` of the log match
    /// `accept`; returns them.
    async fn wait_calls(
        &self,
        from: usize,
        n: usize,
        what: &str,
        accept: impl Fn(&SimCall) -> bool,
    ) -> Vec<SimCall> {
        test_kit::wait_until(what, DEADLINE, || async {
            let calls = self.connect_calls().await;
            let matching: Vec<SimCall> = calls[from.min(calls.len())..]
                .iter()
                .filter(|c| accept(c))
                .cloned()
                .collect();
            if matching.len() >= n {
                Ok(matching)
            } else {
                Err(format!("{} of {n}: {:?}", matching.len(), tally(&calls)))
            }
        })
        .await
    }

    /// How many reconciles the operator has started (`connect_operator_reconciles_total`).
    async fn reconciles(&self) -> f64 {
        let text = self.operator.metrics().await;
        text.lines()
            .find_map(|line| line.strip_prefix("connect_operator_reconciles_total "))
            .and_then(|value| value.trim().parse().ok())
            .expect("connect_operator_reconciles_total in /metrics")
    }

    /// Waits until the operator has started `more` reconciles since it had started `since`:
    /// proof that it is at work in a window where it must not write.
    async fn wait_reconciles(&self, since: f64, more: f64, what: &str) {
        test_kit::wait_until(what, DEADLINE, || async {
            let now = self.reconciles().await;
            if now >= since + more {
                Ok(())
            } else {
                Err(format!("{now} reconciles, waiting for {}", since + more))
            }
        })
        .await;
    }

    async fn get(&self, name: &str) -> DynamicObject {
        self.api.get(name).await.expect("object exists")
    }

    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        accept: impl Fn(&DynamicObject) -> bool,
    ) -> DynamicObject {
        wait_for(&self.api, name, what, DEADLINE, accept).await
    }

    /// Waits until the object is Ready for its current generation.
    async fn wait_ready(&self, name: &str) -> DynamicObject {
        self.wait_for(name, "Ready=True for the current generation", ready_now)
            .await
    }

    async fn merge_patch(&self, name: &str, patch: Value) -> DynamicObject {
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|error| panic!("patching {name} with {patch}: {error}"))
    }

    /// Applies a manifest with `kubectl apply -f -`, as a user would.
    async fn kubectl_apply(&self, manifest: &Value) {
        let yaml = serde_yaml::to_string(manifest).expect("manifest as YAML");
        let output =
            kubectl_with_input(&["apply", "-n", &self.namespace, "-f", "-"], Some(&yaml)).await;
        assert!(output.success, "kubectl apply failed: {output:?}\n{yaml}");
    }

    async fn event_summaries(&self, name: &str) -> Vec<(String, String, String)> {
        event_summaries(&events(&self.client, &self.namespace, name).await)
    }
}

/// Ready=True for the object's current generation, with the status observing it.
fn ready_now(object: &DynamicObject) -> bool {
    condition(object, "Ready").is_some_and(|ready| {
        ready.status == "True" && ready.observed_generation == Some(generation(object))
    }) && object
        .data
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        == Some(generation(object))
}

/// The real SDK pointed at the scenario's simulator, as a person or another tool changing
/// an instance outside the operator would use it.
fn someone_else(s: &Scenario) -> aws_sdk_connect::Client {
    use aws_sdk_connect::config::retry::RetryConfig;
    use aws_sdk_connect::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_connect::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&s.sim.url)
        .credentials_provider(Credentials::new("test", "test", None, None, "someone-else"))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_connect::Client::from_conf(config)
}

/// An instance as the real SDK reads it back over HTTP: a witness besides the simulator's
/// own `/_sim` view, so that a simulator that agrees with itself cannot hide a wrong answer.
#[derive(Debug)]
struct AwsView {
    status: String,
    alias: Option<String>,
    /// Every attribute ListInstanceAttributes reports, `INBOUND_CALLS` and
    /// `OUTBOUND_CALLS` included, by AWS's name.
    attributes: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

/// Reads an instance back through the SDK: DescribeInstance, ListInstanceAttributes (all
/// pages), ListTagsForResource. `None` when AWS says it does not exist.
async fn aws_view(s: &Scenario, id: &str) -> Option<AwsView> {
    use aws_sdk_connect::error::ProvideErrorMetadata;
    let client = someone_else(s);
    let described = match client.describe_instance().instance_id(id).send().await {
        Ok(out) => out,
        Err(e) if e.code() == Some("ResourceNotFoundException") => return None,
        Err(e) => panic!("DescribeInstance {id}: {e:?}"),
    };
    let instance = described.instance().expect("an instance");
    let mut attributes = BTreeMap::new();
    let mut pages = client
        .list_instance_attributes()
        .instance_id(id)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for attribute in page.expect("ListInstanceAttributes").attributes() {
            if let (Some(kind), Some(value)) = (attribute.attribute_type(), attribute.value()) {
                attributes.insert(kind.as_str().to_owned(), value.to_owned());
            }
        }
    }
    let tags = client
        .list_tags_for_resource()
        .resource_arn(instance.arn().expect("an ARN"))
        .send()
        .await
        .expect("ListTagsForResource")
        .tags()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Some(AwsView {
        status: instance
            .instance_status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        alias: instance.instance_alias().map(str::to_owned),
        attributes,
        tags,
    })
}

/// Sets one boolean attribute of an instance from outside the operator.
async fn set_attribute_behind_the_back(
    s: &Scenario,
    id: &str,
    attribute: aws_sdk_connect::types::InstanceAttributeType,
    value: bool,
) {
    someone_else(s)
        .update_instance_attribute()
        .instance_id(id)
        .attribute_type(attribute)
        .value(value.to_string())
        .send()
        .await
        .expect("UpdateInstanceAttribute from outside the operator");
}

/// Namespaces are DNS labels: a short, readable prefix of the test name.
fn namespace_prefix(test: &str) -> String {
    let prefix: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    prefix.trim_end_matches('-').to_ascii_lowercase()
}

fn count(calls: &[SimCall], operation: &str) -> usize {
    calls
        .iter()
        .filter(|call| call.operation == operation)
        .count()
}

fn count_ok(calls: &[SimCall], operation: &str) -> usize {
    calls
        .iter()
        .filter(|call| call.operation == operation && call.succeeded())
        .count()
}

/// Calls per operation, for failure messages and the report.
fn tally(calls: &[SimCall]) -> BTreeMap<String, (usize, usize)> {
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for call in calls {
        let entry = tally.entry(call.operation.clone()).or_default();
        entry.0 += 1;
        if !call.succeeded() {
            entry.1 += 1;
        }
    }
    tally
}

/// Ready=True/Available and nothing else claiming attention (kstatus "Current").
fn assert_ready_and_settled(object: &DynamicObject) {
    let ready = condition(object, "Ready").expect("Ready condition");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "Available"),
        "{}",
        describe(object)
    );
    for type_ in ["Reconciling", "Stalled", "QuotaExceeded"] {
        assert!(
            !is_true(object, type_, None),
            "{type_} still True: {}",
            describe(object)
        );
    }
}

/// Asserts steady state: while the operator checks the instance for drift at least
/// `drift_checks` times (proof that it is at work, not stuck), it makes no change in AWS and
/// no write to the object (no hot loop from its own status writes).
async fn assert_steady(scenario: &Scenario, name: &str, drift_checks: usize) {
    let before = scenario.get(name).await;
    let id = connect::status_str(&before, "instanceId").expect("an instance id");
    let calls_before = scenario.connect_calls().await.len();
    scenario
        .wait_calls(
            calls_before,
            drift_checks,
            "drift checks of the instance",
            |c| c.operation == "DescribeInstance" && c.instance_id.as_deref() == Some(id.as_str()),
        )
        .await;
    let after = scenario.get(name).await;
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version,
        "the object was written in steady state: {}",
        describe(&after)
    );
    let calls = scenario.connect_calls().await;
    let new_writes: Vec<&SimCall> = calls[calls_before.min(calls.len())..]
        .iter()
        .filter(|call| mutating(&call.operation))
        .collect();
    assert!(
        new_writes.is_empty(),
        "changes in steady state: {new_writes:?}"
    );
}
