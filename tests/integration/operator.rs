//! End-to-end scenarios: the real `connect-operator` binary against the real API server
//! (shared control plane) and its own `connect-sim` process, driven the way users drive it
//! (manifests through the API and kubectl). Each scenario asserts both sides: the object
//! (status, conditions, events, finalizer) and the simulator's record of Connect calls.
//!
//! Each test has its own namespace, simulator and operator (watching only that namespace),
//! so tests run in parallel without seeing each other.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use connect_operator::aws::token::{create_token, delete_token};
use connect_sim::{ConfigPatch, FaultsPatch};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tokio::sync::SemaphorePermit;

use test_kit::connect::{
    self, basic_spec, condition, create, describe, event_summaries, events, generation,
    has_finalizer, is_true, manifest, status_str, uid, wait_for, wait_gone,
};
use test_kit::simulator::log_dir;
use test_kit::{
    DEADLINE, OperatorOptions, OperatorProcess, SimCall, Simulator, TestNamespace, client,
    heavy_slot, kubectl, kubectl_ok, kubectl_with_input, wait_until,
};

/// Connect operations that change something in AWS.
const MUTATING: &[&str] = &[
    "CreateInstance",
    "DeleteInstance",
    "UpdateInstanceAttribute",
    "TagResource",
    "UntagResource",
];

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
        let operator = OperatorProcess::start(&logs, options).await;
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
        self.wait_for(name, "Ready=True for the current generation", |object| {
            let ready = condition(object, "Ready");
            ready.is_some_and(|ready| {
                ready.status == "True" && ready.observed_generation == Some(generation(object))
            }) && object
                .data
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64)
                == Some(generation(object))
        })
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

/// Asserts that, over `window`, the operator makes no change in AWS and no write to the
/// object (steady state: no hot loop from its own status writes).
async fn assert_steady(scenario: &Scenario, name: &str, window: Duration) {
    let before = scenario.get(name).await;
    let calls_before = scenario.sim.calls().await.len();
    tokio::time::sleep(window).await;
    let after = scenario.get(name).await;
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version,
        "the object was written in steady state: {}",
        describe(&after)
    );
    let calls = scenario.sim.calls().await;
    let new_writes: Vec<&SimCall> = calls[calls_before.min(calls.len())..]
        .iter()
        .filter(|call| MUTATING.contains(&call.operation.as_str()))
        .collect();
    assert!(
        new_writes.is_empty(),
        "changes in steady state: {new_writes:?}"
    );
}

#[tokio::test]
async fn create_becomes_ready_with_one_uid_token_create_instance() {
    let s = Scenario::start(
        "create_becomes_ready_with_one_uid_token_create_instance",
        &["--creation-delay", "1s"],
        &[],
    )
    .await;
    let name = "support-center";
    s.kubectl_apply(&manifest(name, basic_spec("support-center-e2e")))
        .await;

    let waited = kubectl(&[
        "wait",
        "-n",
        &s.namespace,
        "--for=condition=Ready",
        &format!("connectinstance/{name}"),
        "--timeout=60s",
    ])
    .await;
    assert!(waited.success, "kubectl wait: {waited:?}");

    let object = s.get(name).await;
    let uid = uid(&object);
    assert_ready_and_settled(&object);
    assert!(
        has_finalizer(&object),
        "finalizer missing: {}",
        describe(&object)
    );
    assert_eq!(
        object
            .data
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64),
        Some(generation(&object))
    );
    let instance_id = status_str(&object, "instanceId").expect("status.instanceId");
    let arn = status_str(&object, "arn").expect("status.arn");
    let access_url = status_str(&object, "instanceAccessUrl").expect("status.instanceAccessUrl");
    assert!(access_url.contains("support-center-e2e"), "{access_url}");
    assert_eq!(
        status_str(&object, "instanceStatus").as_deref(),
        Some("ACTIVE")
    );

    // The simulator's side: one instance, created once, with the UID token and tag.
    let instances = s.sim.instances().await;
    assert_eq!(instances.len(), 1, "{instances:?}");
    let instance = &instances[0];
    assert_eq!(instance.id, instance_id);
    assert_eq!(instance.arn, arn);
    assert_eq!(instance.alias.as_deref(), Some("support-center-e2e"));
    assert_eq!(instance.identity_management_type, "CONNECT_MANAGED");
    assert_eq!(instance.status, "ACTIVE");
    assert!(instance.inbound_calls_enabled);
    assert!(!instance.outbound_calls_enabled);
    assert_eq!(
        instance
            .attributes
            .get("CONTACTFLOW_LOGS")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(
        instance.attributes.get("CONTACT_LENS").map(String::as_str),
        Some("false")
    );
    assert_eq!(
        instance.tags.get("team").map(String::as_str),
        Some("support")
    );
    assert_eq!(
        instance.tags.get("cost-center").map(String::as_str),
        Some("42")
    );
    assert_eq!(instance.tags.get(connect::UID_TAG), Some(&uid));

    let calls = s.sim.calls().await;
    let creates: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .collect();
    assert_eq!(creates.len(), 1, "CreateInstance calls: {creates:?}");
    assert!(creates[0].succeeded());
    assert_eq!(
        creates[0].client_token.as_deref(),
        Some(create_token(&uid).as_str())
    );
    assert_eq!(s.sim.state().await.lifecycle_attempts, 1);
    assert_eq!(count(&calls, "DeleteInstance"), 0);

    let events = s.event_summaries(name).await;
    assert!(!events.is_empty(), "no events about {name}");
    assert!(
        events.iter().all(|(type_, _, _)| type_ == "Normal"),
        "warnings on a clean create: {events:?}"
    );

    let printed = kubectl_ok(&["get", "connectinstances", "-n", &s.namespace]).await;
    assert!(
        printed.contains("True") && printed.contains("Available") && printed.contains(&instance_id),
        "printer columns: {printed}"
    );

    assert_steady(&s, name, Duration::from_secs(3)).await;
    eprintln!("create scenario calls: {:?}", tally(&s.sim.calls().await));

    // The operator's own endpoints: AWS calls counted by operation, ready after sync.
    let metrics = s.operator.metrics().await;
    assert!(
        metrics.contains("CreateInstance"),
        "AWS calls by operation in /metrics:\n{metrics}"
    );
    assert!(s.operator.endpoint_ok("/livez").await);
    assert!(
        s.operator.endpoint_ok("/readyz").await,
        "/readyz must answer 200 once the watch has synced"
    );
}

#[tokio::test]
async fn spec_change_sends_only_the_needed_attribute_and_tag_calls() {
    let s = Scenario::start(
        "spec_change_sends_only_the_needed_attribute_and_tag_calls",
        &["--creation-delay", "500ms"],
        &[],
    )
    .await;
    let name = "sales";
    create(&s.api, &manifest(name, basic_spec("sales-e2e")))
        .await
        .expect("create");
    let before = s.wait_ready(name).await;
    let uid = uid(&before);
    let instance_id = status_str(&before, "instanceId").expect("instanceId");
    s.sim.clear_calls().await;

    // One attribute flag, one other attribute, one tag changed, one added, one removed.
    let patched = s
        .merge_patch(
            name,
            json!({ "spec": {
                "outboundCallsEnabled": true,
                "attributes": { "contactflowLogs": false },
                "tags": { "team": "platform", "env": "prod", "cost-center": null },
            }}),
        )
        .await;
    assert!(generation(&patched) > generation(&before));
    let after = s.wait_ready(name).await;
    assert_ready_and_settled(&after);
    assert_eq!(status_str(&after, "instanceId"), Some(instance_id.clone()));

    let calls = s.sim.calls().await;
    assert_eq!(
        count_ok(&calls, "UpdateInstanceAttribute"),
        2,
        "OUTBOUND_CALLS and CONTACTFLOW_LOGS only: {:?}",
        tally(&calls)
    );
    assert_eq!(count_ok(&calls, "TagResource"), 1, "{:?}", tally(&calls));
    assert_eq!(count_ok(&calls, "UntagResource"), 1, "{:?}", tally(&calls));
    assert_eq!(count(&calls, "CreateInstance"), 0, "{:?}", tally(&calls));
    assert_eq!(count(&calls, "DeleteInstance"), 0, "{:?}", tally(&calls));

    let instance = s.sim.instance(&instance_id).await.expect("instance");
    assert!(instance.outbound_calls_enabled);
    assert!(instance.inbound_calls_enabled);
    assert_eq!(
        instance
            .attributes
            .get("CONTACTFLOW_LOGS")
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(
        instance.attributes.get("CONTACT_LENS").map(String::as_str),
        Some("false")
    );
    let expected: BTreeMap<String, String> = [
        ("team", "platform"),
        ("env", "prod"),
        (connect::UID_TAG, uid.as_str()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    assert_eq!(instance.tags, expected);

    assert_steady(&s, name, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn kubectl_delete_sends_uid_token_and_keeps_finalizer_until_not_found() {
    let s = Scenario::start(
        "kubectl_delete_sends_uid_token_and_keeps_finalizer_until_not_found",
        &["--creation-delay", "500ms", "--deletion-delay", "2s"],
        &[],
    )
    .await;
    let name = "to-delete";
    s.kubectl_apply(&manifest(name, basic_spec("to-delete-e2e")))
        .await;
    let object = s.wait_ready(name).await;
    let uid = uid(&object);
    let instance_id = status_str(&object, "instanceId").expect("instanceId");
    let attempts_before = s.sim.state().await.lifecycle_attempts;

    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--wait=false",
    ])
    .await;

    // Sample the object first, then the simulator: the object must never be gone while
    // the instance still exists, and it must be seen held by its finalizer meanwhile.
    let mut held_while_instance_existed = false;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let object = s.api.get_opt(name).await.expect("get");
        let instance = s.sim.instance(&instance_id).await;
        match (&object, &instance) {
            (None, Some(instance)) => panic!(
                "the object is gone while the instance still exists: {instance:?}\n{:?}",
                tally(&s.sim.calls().await)
            ),
            (None, None) => break,
            (Some(object), Some(_)) => {
                assert!(
                    has_finalizer(object),
                    "finalizer dropped early: {}",
                    describe(object)
                );
                if object.metadata.deletion_timestamp.is_some() {
                    held_while_instance_existed = true;
                }
            }
            (Some(_), None) => {}
        }
        assert!(
            Instant::now() < deadline,
            "still not deleted after {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        held_while_instance_existed,
        "never saw the object held by its finalizer while the instance was being deleted"
    );
    let gone = kubectl(&["get", "-n", &s.namespace, "connectinstance", name]).await;
    assert!(
        !gone.success && gone.stderr.contains("NotFound"),
        "{gone:?}"
    );

    let calls = s.sim.calls().await;
    let deletes: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "DeleteInstance")
        .collect();
    assert!(deletes.iter().any(|call| call.succeeded()), "{deletes:?}");
    let token = delete_token(&uid);
    assert!(
        deletes
            .iter()
            .all(|call| call.client_token.as_deref() == Some(token.as_str())),
        "every DeleteInstance carries the UID-derived token {token}: {deletes:?}"
    );
    // Waiting for NotFound: a DescribeInstance answered 404 after the first delete.
    let first_delete = deletes[0].seq;
    assert!(
        calls.iter().any(|call| call.operation == "DescribeInstance"
            && call.seq > first_delete
            && call.status == 404),
        "no DescribeInstance saw the instance gone: {calls:?}"
    );
    assert_eq!(
        s.sim.state().await.lifecycle_attempts,
        attempts_before + 1,
        "one deletion attempt"
    );
    assert!(s.sim.instances().await.is_empty());
}

#[tokio::test]
async fn retain_policy_removes_object_and_keeps_instance() {
    let s = Scenario::start(
        "retain_policy_removes_object_and_keeps_instance",
        &["--creation-delay", "500ms"],
        &[],
    )
    .await;
    let name = "kept";
    let mut spec = basic_spec("kept-e2e");
    spec["deletionPolicy"] = json!("Retain");
    s.kubectl_apply(&manifest(name, spec)).await;
    let object = s.wait_ready(name).await;
    let instance_id = status_str(&object, "instanceId").expect("instanceId");

    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--timeout=60s",
    ])
    .await;
    wait_gone(&s.api, name, DEADLINE).await;

    let instance = s
        .sim
        .instance(&instance_id)
        .await
        .expect("instance retained");
    assert_eq!(instance.status, "ACTIVE");
    let calls = s.sim.calls().await;
    assert_eq!(count(&calls, "DeleteInstance"), 0, "{:?}", tally(&calls));
    assert_eq!(s.sim.state().await.lifecycle_attempts, 1);
    let events = s.event_summaries(name).await;
    assert!(
        events.iter().any(|(_, reason, message)| {
            format!("{reason} {message}")
                .to_ascii_lowercase()
                .contains("retain")
        }),
        "no event tells the instance was retained: {events:?}"
    );
}

#[tokio::test]
async fn instance_quota_sets_quota_exceeded_and_recovers_when_raised() {
    let s = Scenario::start(
        "instance_quota_sets_quota_exceeded_and_recovers_when_raised",
        &["--creation-delay", "500ms", "--instance-quota", "1"],
        &[("quota-retry-interval", "3s")],
    )
    .await;
    // The account's only slot is taken by an instance outside Kubernetes.
    s.sim
        .insert_instance("someone-elses", &[("owner", "other-team")])
        .await;

    let name = "over-quota";
    let started = Instant::now();
    create(&s.api, &manifest(name, basic_spec("over-quota-e2e")))
        .await
        .expect("create");
    let object = s
        .wait_for(name, "QuotaExceeded=True/InstanceLimitExceeded", |object| {
            is_true(object, "QuotaExceeded", Some("InstanceLimitExceeded"))
        })
        .await;
    let uid = uid(&object);
    assert!(
        is_true(&object, "Stalled", Some("QuotaExceeded")),
        "{}",
        describe(&object)
    );
    assert!(
        !is_true(&object, "Reconciling", None),
        "{}",
        describe(&object)
    );
    let ready = condition(&object, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "QuotaExceeded")
    );
    let quota = condition(&object, "QuotaExceeded").expect("QuotaExceeded");
    assert!(
        !quota.message.is_empty(),
        "the AWS message belongs in the condition"
    );
    assert!(status_str(&object, "instanceId").is_none());

    // Over a window of several retry intervals, at most one attempt per interval.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let calls = s.sim.calls().await;
    let creates: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .collect();
    let allowed = (started.elapsed().as_secs_f64() / 3.0).floor() as usize + 2;
    assert!(
        !creates.is_empty() && creates.len() <= allowed,
        "{} CreateInstance calls in {:?} with a 3 s quota retry interval (at most {allowed}): {creates:?}",
        creates.len(),
        started.elapsed()
    );
    assert!(
        creates.iter().all(|call| call.status == 402
            && call.error_type.as_deref() == Some("ServiceQuotaExceededException")),
        "{creates:?}"
    );
    let warnings: Vec<_> = s
        .event_summaries(name)
        .await
        .into_iter()
        .filter(|(type_, _, _)| type_ == "Warning")
        .collect();
    assert!(!warnings.is_empty(), "no Warning event for the quota error");

    // Raising the quota: the next attempt succeeds and the conditions clear.
    s.sim
        .set_config(&ConfigPatch {
            instance_quota: Some(2),
            ..ConfigPatch::default()
        })
        .await;
    let object = s.wait_ready(name).await;
    assert_ready_and_settled(&object);
    let calls = s.sim.calls().await;
    assert_eq!(count_ok(&calls, "CreateInstance"), 1, "{:?}", tally(&calls));
    let token = create_token(&uid);
    assert!(
        calls
            .iter()
            .filter(|call| call.operation == "CreateInstance")
            .all(|call| call.client_token.as_deref() == Some(token.as_str())),
        "every attempt uses the UID token"
    );
    eprintln!("quota scenario calls: {:?}", tally(&calls));
}

#[tokio::test]
async fn lifecycle_limit_on_delete_keeps_finalizer_until_switched_to_retain() {
    let s = Scenario::start(
        "lifecycle_limit_on_delete_keeps_finalizer_until_switched_to_retain",
        &[
            "--creation-delay",
            "500ms",
            "--lifecycle-attempt-limit",
            "1",
        ],
        &[("quota-retry-interval", "3s")],
    )
    .await;
    let name = "stuck";
    create(&s.api, &manifest(name, basic_spec("stuck-e2e")))
        .await
        .expect("create");
    let object = s.wait_ready(name).await;
    let uid = uid(&object);
    let instance_id = status_str(&object, "instanceId").expect("instanceId");

    // The creation used the account's only attempt: deleting is refused.
    let deleting_since = Instant::now();
    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--wait=false",
    ])
    .await;
    let object = s
        .wait_for(
            name,
            "QuotaExceeded=True/LifecycleAttemptLimitExceeded",
            |object| {
                is_true(
                    object,
                    "QuotaExceeded",
                    Some("LifecycleAttemptLimitExceeded"),
                )
            },
        )
        .await;
    assert!(object.metadata.deletion_timestamp.is_some());
    assert!(has_finalizer(&object), "{}", describe(&object));
    assert!(
        is_true(&object, "Stalled", Some("QuotaExceeded")),
        "{}",
        describe(&object)
    );
    assert!(
        condition(&object, "QuotaExceeded")
            .is_some_and(|quota| quota.message.contains("excessive number")),
        "the AWS message: {}",
        describe(&object)
    );

    tokio::time::sleep(Duration::from_secs(6)).await;
    let object = s.get(name).await;
    assert!(
        has_finalizer(&object),
        "released without deleting: {}",
        describe(&object)
    );
    assert!(s.sim.instance(&instance_id).await.is_some());
    let calls = s.sim.calls().await;
    let deletes: Vec<&SimCall> = calls
        .iter()
        .filter(|call| call.operation == "DeleteInstance")
        .collect();
    let allowed = (deleting_since.elapsed().as_secs_f64() / 3.0).floor() as usize + 2;
    assert!(
        !deletes.is_empty() && deletes.len() <= allowed,
        "{} DeleteInstance calls in {:?} (at most {allowed}): {deletes:?}",
        deletes.len(),
        deleting_since.elapsed()
    );
    let token = delete_token(&uid);
    assert!(
        deletes
            .iter()
            .all(|call| !call.succeeded() && call.client_token.as_deref() == Some(token.as_str()))
    );

    // Retain releases the object; the instance stays.
    kubectl_ok(&[
        "patch",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--type=merge",
        "-p",
        r#"{"spec":{"deletionPolicy":"Retain"}}"#,
    ])
    .await;
    wait_gone(&s.api, name, DEADLINE).await;
    assert!(
        s.sim.instance(&instance_id).await.is_some(),
        "instance retained"
    );
    eprintln!(
        "lifecycle-limit scenario calls: {:?}",
        tally(&s.sim.calls().await)
    );
}

#[tokio::test]
async fn throttling_and_server_errors_converge_without_retry_storm() {
    let s = Scenario::start(
        "throttling_and_server_errors_converge_without_retry_storm",
        &["--creation-delay", "500ms", "--deletion-delay", "500ms"],
        // The operator's own limiter allows more than the simulator will take below.
        &[("api-rate", "10")],
    )
    .await;
    // Phase 1, the outage: half the calls fail with 5xx, some connections drop (after the
    // simulator acted: a create may happen without an answer), and the read operations are
    // throttled hard.
    fn throttle<T: Copy>(rate: T) -> BTreeMap<String, T> {
        [
            "DescribeInstance",
            "ListInstances",
            "ListInstanceAttributes",
        ]
        .into_iter()
        .map(|operation| (operation.to_owned(), rate))
        .collect()
    }
    s.sim
        .set_config(&ConfigPatch {
            rate_limits: Some(throttle(Some(0.5))),
            rate_bursts: Some(throttle(1)),
            faults: Some(FaultsPatch {
                server_error_ratio: Some(0.5),
                drop_connection_ratio: Some(0.1),
                operations: Some(vec![]),
                ..FaultsPatch::default()
            }),
            ..ConfigPatch::default()
        })
        .await;
    let names = ["faulty-a", "faulty-b"];
    let mut uids = BTreeMap::new();
    for name in names {
        let object = create(&s.api, &manifest(name, basic_spec(&format!("{name}-e2e"))))
            .await
            .expect("create");
        uids.insert(name, uid(&object));
    }
    let outage = Duration::from_secs(10);
    tokio::time::sleep(outage).await;
    let during = s.sim.calls().await;
    let throttled = during
        .iter()
        .filter(|call| call.error_type.as_deref() == Some("ThrottlingException"))
        .count();
    let server_errors = during.iter().filter(|call| call.status >= 500).count();
    eprintln!(
        "fault scenario, {outage:?} outage: {} calls, {throttled} throttled, {server_errors} 5xx: {:?}",
        during.len(),
        tally(&during)
    );
    assert!(
        throttled > 0 && server_errors > 0,
        "faults were not exercised"
    );
    // Per-object exponential backoff (300 ms doubling to 3 s in these tests) keeps two
    // objects far below this; a retry storm would not be.
    assert!(
        during.len() <= 120,
        "retry storm: {} calls in {outage:?}: {:?}",
        during.len(),
        tally(&during)
    );

    // Phase 2, recovery: everything converges, with exactly one instance per object.
    s.sim
        .set_config(&ConfigPatch {
            rate_limits: Some(throttle(None)),
            faults: Some(FaultsPatch {
                server_error_ratio: Some(0.0),
                drop_connection_ratio: Some(0.0),
                ..FaultsPatch::default()
            }),
            ..ConfigPatch::default()
        })
        .await;
    for name in names {
        let object = s.wait_ready(name).await;
        assert_ready_and_settled(&object);
    }
    let calls = s.sim.calls().await;
    eprintln!(
        "fault scenario, total: {} calls: {:?}",
        calls.len(),
        tally(&calls)
    );
    let instances = s.sim.instances().await;
    assert_eq!(instances.len(), 2, "{instances:?}");
    for (name, uid) in &uids {
        let token = create_token(uid);
        let ids: BTreeSet<&str> = calls
            .iter()
            .filter(|call| {
                call.operation == "CreateInstance"
                    && call.client_token.as_deref() == Some(token.as_str())
            })
            .filter_map(|call| call.instance_id.as_deref())
            .collect();
        assert!(
            ids.len() <= 1,
            "{name}: several instances for one token: {ids:?}"
        );
        let object = s.get(name).await;
        let id = status_str(&object, "instanceId").expect("instanceId");
        let instance = s.sim.instance(&id).await.expect("the object's instance");
        assert_eq!(instance.tags.get(connect::UID_TAG), Some(uid));
    }
    assert_eq!(s.sim.state().await.lifecycle_attempts, 2);

    // Deleting leaves nothing behind.
    for name in names {
        s.api
            .delete(name, &Default::default())
            .await
            .expect("delete");
    }
    for name in names {
        wait_gone(&s.api, name, DEADLINE).await;
    }
    assert!(s.sim.instances().await.is_empty(), "instances left behind");
}

#[tokio::test]
async fn operator_killed_after_create_instance_adopts_the_same_instance() {
    let mut s = Scenario::start(
        "operator_killed_after_create_instance_adopts_the_same_instance",
        &["--creation-delay", "3s"],
        &[],
    )
    .await;
    let name = "crash";
    create(&s.api, &manifest(name, basic_spec("crash-e2e")))
        .await
        .expect("create");
    // Kill the operator the moment the simulator has answered CreateInstance.
    wait_until("a CreateInstance answer", DEADLINE, || async {
        let calls = s.sim.calls_of("CreateInstance").await;
        if calls.iter().any(SimCall::succeeded) {
            Ok(())
        } else {
            Err(format!("{calls:?}"))
        }
    })
    .await;
    s.operator.kill();
    let at_kill = s.get(name).await;
    eprintln!(
        "at SIGKILL status.instanceId was {:?}",
        status_str(&at_kill, "instanceId")
    );
    let uid = uid(&at_kill);

    s.operator.restart().await;
    let object = s.wait_ready(name).await;
    assert_ready_and_settled(&object);

    let instances = s.sim.instances().await;
    assert_eq!(instances.len(), 1, "exactly one instance: {instances:?}");
    assert_eq!(
        status_str(&object, "instanceId").as_deref(),
        Some(instances[0].id.as_str())
    );
    assert_eq!(instances[0].tags.get(connect::UID_TAG), Some(&uid));
    let calls = s.sim.calls().await;
    let token = create_token(&uid);
    assert!(
        calls
            .iter()
            .filter(|call| call.operation == "CreateInstance")
            .all(|call| call.client_token.as_deref() == Some(token.as_str())),
        "{calls:?}"
    );
    assert_eq!(
        s.sim.state().await.lifecycle_attempts,
        1,
        "one creation attempt"
    );
    eprintln!("crash scenario calls: {:?}", tally(&calls));
}

#[tokio::test]
async fn creation_failed_is_stalled_without_a_second_create() {
    let s = Scenario::start(
        "creation_failed_is_stalled_without_a_second_create",
        &["--creation-delay", "500ms"],
        &[],
    )
    .await;
    s.sim
        .set_config(&ConfigPatch {
            fail_creation_alias_pattern: Some(Some("^doomed-".to_owned())),
            ..ConfigPatch::default()
        })
        .await;
    let name = "doomed";
    create(&s.api, &manifest(name, basic_spec("doomed-center")))
        .await
        .expect("create");
    let object = s
        .wait_for(name, "Stalled=True/CreationFailed", |object| {
            is_true(object, "Stalled", Some("CreationFailed"))
        })
        .await;
    let ready = condition(&object, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "CreationFailed")
    );
    assert!(
        !is_true(&object, "Reconciling", None),
        "{}",
        describe(&object)
    );
    assert_eq!(
        status_str(&object, "instanceStatus").as_deref(),
        Some("CREATION_FAILED")
    );
    assert!(
        status_str(&object, "statusReason").is_some_and(|reason| !reason.is_empty()),
        "statusReason: {}",
        describe(&object)
    );

    // Several poll intervals later, still a single attempt.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let calls = s.sim.calls().await;
    assert_eq!(count(&calls, "CreateInstance"), 1, "{:?}", tally(&calls));
    assert!(
        s.event_summaries(name)
            .await
            .iter()
            .any(|(type_, _, _)| type_ == "Warning"),
        "no Warning event for the failed creation"
    );
}

/// Manifests the API server must refuse, and a word its message must contain.
fn invalid_specs() -> Vec<(&'static str, Value, &'static str)> {
    let too_many_tags: serde_json::Map<String, Value> = (0..51)
        .map(|index| (format!("tag-{index}"), json!("x")))
        .collect();
    let with = |changes: Value| {
        let mut spec = basic_spec("valid-alias");
        for (key, value) in changes.as_object().expect("object") {
            if value.is_null() {
                spec.as_object_mut().expect("object").remove(key);
            } else {
                spec[key] = value.clone();
            }
        }
        spec
    };
    vec![
        (
            "alias-leading-hyphen",
            with(json!({ "instanceAlias": "-bad" })),
            "instanceAlias",
        ),
        (
            "alias-bad-characters",
            with(json!({ "instanceAlias": "bad_alias!" })),
            "instanceAlias",
        ),
        (
            "alias-directory-prefix",
            with(json!({ "instanceAlias": "d-1234567890" })),
            "instanceAlias",
        ),
        (
            "alias-too-long",
            with(json!({ "instanceAlias": "a".repeat(46) })),
            "instanceAlias",
        ),
        (
            "alias-missing",
            with(json!({ "instanceAlias": null })),
            "instanceAlias",
        ),
        (
            "existing-directory-without-directory-id",
            with(json!({ "identityManagementType": "EXISTING_DIRECTORY" })),
            "directoryId",
        ),
        (
            "existing-directory-bad-directory-id",
            with(json!({ "identityManagementType": "EXISTING_DIRECTORY", "directoryId": "d-xyz" })),
            "directoryId",
        ),
        (
            "directory-id-without-existing-directory",
            with(json!({ "directoryId": "d-0123456789" })),
            "directoryId",
        ),
        (
            "unknown-identity-type",
            with(json!({ "identityManagementType": "LDAP" })),
            "identityManagementType",
        ),
        (
            "missing-inbound",
            with(json!({ "inboundCallsEnabled": null })),
            "inboundCallsEnabled",
        ),
        ("51-tags", with(json!({ "tags": too_many_tags })), "tags"),
        (
            "aws-tag-key",
            with(json!({ "tags": { "aws:owner": "me" } })),
            "tags",
        ),
        (
            "tag-value-too-long",
            with(json!({ "tags": { "k": "v".repeat(257) } })),
            "tags",
        ),
        (
            "unknown-deletion-policy",
            with(json!({ "deletionPolicy": "Orphan" })),
            "deletionPolicy",
        ),
    ]
}

#[tokio::test]
async fn invalid_manifests_are_rejected_naming_the_field_and_never_reach_aws() {
    let s = Scenario::start(
        "invalid_manifests_are_rejected_naming_the_field_and_never_reach_aws",
        &[],
        &[],
    )
    .await;
    for (case, spec, field) in invalid_specs() {
        let error = create(&s.api, &manifest(case, spec.clone()))
            .await
            .err()
            .unwrap_or_else(|| panic!("{case}: accepted by the API server: {spec}"));
        let message = error.to_string();
        assert!(
            message.contains(field) && message.contains("Invalid"),
            "{case}: the message should name {field}: {message}"
        );
    }
    // The same through kubectl, as a user sees it.
    let yaml = serde_yaml::to_string(&manifest(
        "kubectl-bad",
        json!({ "identityManagementType": "EXISTING_DIRECTORY", "inboundCallsEnabled": true,
                "outboundCallsEnabled": true }),
    ))
    .expect("yaml");
    let refused = kubectl_with_input(&["apply", "-n", &s.namespace, "-f", "-"], Some(&yaml)).await;
    assert!(
        !refused.success && refused.stderr.contains("spec.directoryId"),
        "{refused:?}"
    );

    let stored = s.api.list(&Default::default()).await.expect("list");
    assert!(stored.items.is_empty(), "nothing was stored");
    // The operator is watching this namespace: prove it with a valid object, which must
    // reach the simulator while nothing did before.
    assert!(
        s.sim.calls().await.is_empty(),
        "Connect calls before any valid object existed"
    );
    let object = create(&s.api, &manifest("valid", basic_spec("valid-alias")))
        .await
        .expect("a valid object is accepted");
    let token = create_token(&uid(&object));
    wait_until("the valid object's CreateInstance", DEADLINE, || async {
        let creates = s.sim.calls_of("CreateInstance").await;
        if creates.is_empty() {
            Err("no CreateInstance yet".to_owned())
        } else {
            Ok(())
        }
    })
    .await;
    let creates = s.sim.calls_of("CreateInstance").await;
    assert!(
        creates
            .iter()
            .all(|call| call.client_token.as_deref() == Some(token.as_str())),
        "an invalid manifest reached AWS: {creates:?}"
    );
    assert_eq!(s.sim.instances().await.len(), 1);
}

#[tokio::test]
async fn immutable_fields_are_rejected_on_update_and_mutable_ones_accepted() {
    // No operator: this is about admission only.
    let client = client().await;
    let namespace = TestNamespace::create(&client, "immutable").await.name;
    let api = connect::api(&client, &namespace);
    let mut spec = basic_spec("immutable-e2e");
    spec["region"] = json!("us-east-1");
    create(&api, &manifest("managed", spec))
        .await
        .expect("create");
    create(
        &api,
        &manifest(
            "directory",
            json!({ "identityManagementType": "EXISTING_DIRECTORY", "directoryId": "d-0123456789",
                    "inboundCallsEnabled": true, "outboundCallsEnabled": false }),
        ),
    )
    .await
    .expect("create EXISTING_DIRECTORY");

    let refused = [
        (
            "managed",
            json!({ "identityManagementType": "SAML" }),
            "identityManagementType",
        ),
        (
            "managed",
            json!({ "instanceAlias": "renamed-e2e" }),
            "instanceAlias",
        ),
        ("managed", json!({ "region": "eu-west-2" }), "region"),
        (
            "directory",
            json!({ "directoryId": "d-abcdef0123" }),
            "directoryId",
        ),
    ];
    for (name, change, field) in refused {
        let error = api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": change })),
            )
            .await
            .err()
            .unwrap_or_else(|| panic!("changing {change} on {name} was accepted"));
        let message = error.to_string();
        assert!(
            message.contains(field) && message.contains("immutable"),
            "changing {field}: {message}"
        );
    }
    let failed = kubectl(&[
        "patch",
        "-n",
        &namespace,
        "connectinstance",
        "managed",
        "--type=merge",
        "-p",
        r#"{"spec":{"instanceAlias":"other-e2e"}}"#,
    ])
    .await;
    assert!(
        !failed.success && failed.stderr.contains("spec.instanceAlias is immutable"),
        "{failed:?}"
    );

    // The mutable fields change freely.
    api.patch(
        "managed",
        &PatchParams::default(),
        &Patch::Merge(&json!({ "spec": {
            "inboundCallsEnabled": false,
            "attributes": { "earlyMedia": true },
            "tags": { "team": "new" },
            "deletionPolicy": "Retain",
        }})),
    )
    .await
    .expect("mutable fields accepted");
}

#[tokio::test]
async fn alias_held_by_foreign_instance_is_alias_conflict_and_left_untouched() {
    let s = Scenario::start(
        "alias_held_by_foreign_instance_is_alias_conflict_and_left_untouched",
        &[],
        &[],
    )
    .await;
    let foreign = s
        .sim
        .insert_instance("taken-alias", &[("owner", "another-team")])
        .await;
    let name = "usurper";
    create(&s.api, &manifest(name, basic_spec("taken-alias")))
        .await
        .expect("create");
    let object = s
        .wait_for(name, "Ready=False/AliasConflict", |object| {
            condition(object, "Ready")
                .is_some_and(|ready| ready.status == "False" && ready.reason == "AliasConflict")
        })
        .await;
    assert!(
        is_true(&object, "Stalled", Some("AliasConflict")),
        "{}",
        describe(&object)
    );
    assert!(
        status_str(&object, "instanceId").is_none(),
        "{}",
        describe(&object)
    );

    // Deleting the object must not touch the foreign instance either.
    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        name,
        "--timeout=60s",
    ])
    .await;
    wait_gone(&s.api, name, DEADLINE).await;

    let calls = s.sim.calls().await;
    let writes: Vec<&SimCall> = calls
        .iter()
        .filter(|call| MUTATING.contains(&call.operation.as_str()))
        .collect();
    assert!(
        writes.is_empty(),
        "the foreign instance was touched: {writes:?}"
    );
    let instance = s.sim.instance(&foreign.id).await.expect("foreign instance");
    assert_eq!(instance.tags, foreign.tags);
    assert_eq!(instance.status, "ACTIVE");
    assert_eq!(s.sim.instances().await.len(), 1);
    let events = s.event_summaries(name).await;
    assert!(
        events.iter().any(|(type_, _, _)| type_ == "Warning"),
        "no Warning event for the conflict: {events:?}"
    );
}

#[tokio::test]
async fn examples_are_accepted_by_the_api_server() {
    let client = client().await;
    let namespace = TestNamespace::create(&client, "examples").await.name;
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let output = kubectl_ok(&[
        "apply",
        "--dry-run=server",
        "-n",
        &namespace,
        "-f",
        examples,
    ])
    .await;
    assert_eq!(
        output.matches("created (server dry run)").count(),
        std::fs::read_dir(examples)
            .expect("examples/")
            .filter(|entry| entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "yaml")))
            .count(),
        "{output}"
    );
}
