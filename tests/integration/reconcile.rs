//! The reconciler's I/O paths driven directly, in-process: `reconcile` called by the test
//! against the shared real API server and an in-process simulator (reached over HTTP by
//! the real SDK), with no operator process and no controller. Each call is one reconcile,
//! as the controller would run it, so each step of the lifecycle can be checked between
//! calls. What needs processes (SIGKILL, leader election, flags, the chart) stays in the
//! process-level suites.

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use connect_operator::accounts::Directory;
use connect_operator::api::{ConnectInstance, FINALIZER, UID_TAG};
use connect_operator::aws::token::{create_token, delete_token};
use connect_operator::aws::{ConnectClient, RateLimitSettings};
use connect_operator::cluster::{ClientSettings, Reporter, Watches};
use connect_operator::liveness::Liveness;
use connect_operator::reconciler::{self, Context, Settings};
use connect_operator::telemetry::Metrics;
use connect_sim::SimConfig;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use test_kit::simulator::InProcessSimulator;
use test_kit::{TestNamespace, client, control_plane};

const REGION: &str = "us-east-1";

/// A simulator with short delays, room for several instances and no rate limits unless a
/// test sets them.
fn sim_config() -> SimConfig {
    SimConfig {
        creation_delay: Duration::from_millis(600),
        deletion_delay: Duration::from_millis(600),
        instance_quota: 10,
        ..SimConfig::default()
    }
    .without_rate_limits()
}

/// The operator's context, as `connect-operator run` builds it, pointed at `sim`.
/// A context whose Kubernetes writes go through `client`; the accounts and namespaces are
/// watched by the administrator (`directory_client`), as the test's operator would.
async fn context(
    client: Client,
    directory_client: Client,
    namespace: &str,
    sim: &InProcessSimulator,
) -> Arc<Context> {
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(&sim.url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDTEST", "secret", None, None, "test",
        )))
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    let metrics = Arc::new(Metrics::new());
    let connect = ConnectClient::new(
        base,
        REGION.to_owned(),
        RateLimitSettings {
            lifecycle_per_second: 50.0,
            other_per_second: 50.0,
            ..RateLimitSettings::default()
        },
        Arc::clone(&metrics),
    );
    let settings = Settings {
        creation_poll_interval: Duration::from_millis(200),
        ..Settings::default()
    };
    let selector = format!(
        "{} in (shared,{namespace})",
        test_kit::control_plane::ACCOUNT_SCOPE_LABEL
    );
    let watches = Watches::new(
        &ClientSettings::default(),
        Liveness::new(Duration::from_secs(60), Duration::from_secs(60)),
    );
    let directory = Directory::start(
        directory_client,
        &watches,
        &[namespace.to_owned()],
        Some(selector),
    )
    .await
    .expect("watching accounts and namespaces");
    let reporter = Reporter::new(
        client.clone(),
        Arc::clone(&metrics),
        Arc::clone(connect.fence()),
        None,
    );
    Arc::new(Context::new(
        client,
        Arc::new(connect),
        directory,
        reporter,
        metrics,
        settings,
    ))
}

struct Fixture {
    client: Client,
    namespace: String,
    api: Api<ConnectInstance>,
    sim: InProcessSimulator,
}

impl Fixture {
    async fn new(prefix: &str) -> Self {
        let client = client().await;
        let namespace = TestNamespace::create(&client, prefix).await.name;
        Self {
            api: Api::namespaced(client.clone(), &namespace),
            sim: InProcessSimulator::start(sim_config()).await,
            client,
            namespace,
        }
    }

    async fn context(&self) -> Arc<Context> {
        context(
            self.client.clone(),
            self.client.clone(),
            &self.namespace,
            &self.sim,
        )
        .await
    }

    /// Creates a ConnectInstance with a unique alias and `deletionPolicy`.
    async fn create(&self, name: &str, policy: &str) -> ConnectInstance {
        let alias = format!("{name}-{}", test_kit::random_suffix(6));
        let object: ConnectInstance = serde_json::from_value(json!({
            "apiVersion": "connect.operators.dev/v1alpha1",
            "kind": "ConnectInstance",
            "metadata": { "name": name },
            "spec": {
                "identityManagementType": "CONNECT_MANAGED",
                "instanceAlias": alias,
                "inboundCallsEnabled": true,
                "outboundCallsEnabled": false,
                "tags": { "team": "voice" },
                "deletionPolicy": policy,
            },
        }))
        .expect("a valid ConnectInstance");
        self.api
            .create(&PostParams::default(), &object)
            .await
            .expect("creating the ConnectInstance")
    }

    async fn get(&self, name: &str) -> Arc<ConnectInstance> {
        Arc::new(
            self.api
                .get(name)
                .await
                .expect("reading the ConnectInstance"),
        )
    }

    /// One reconcile of the object as it is in the API server now.
    async fn reconcile(&self, ctx: &Arc<Context>, name: &str) -> Result<Action, reconciler::Error> {
        reconciler::reconcile(self.get(name).await, Arc::clone(ctx)).await
    }

    /// Reconciles until `done` holds for the object (at most `tries` times, 200 ms apart).
    async fn reconcile_until(
        &self,
        ctx: &Arc<Context>,
        name: &str,
        what: &str,
        tries: usize,
        done: impl Fn(&ConnectInstance) -> bool,
    ) -> ConnectInstance {
        for attempt in 0..tries {
            // Every step on the way succeeds: a reconcile that fails each time while
            // writing a status that looks right must not pass.
            if let Err(e) = self.reconcile(ctx, name).await {
                panic!("{what}: reconcile {attempt} of {name} failed: {e}");
            }
            let object = self.get(name).await;
            if done(&object) {
                return (*object).clone();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let object = self.get(name).await;
        panic!(
            "{what} not reached after {tries} reconciles: {:?}",
            object.status
        );
    }
}

fn ready_reason(object: &ConnectInstance) -> Option<String> {
    object.condition("Ready").map(|c| c.reason.clone())
}

fn is_ready(object: &ConnectInstance) -> bool {
    object
        .condition("Ready")
        .is_some_and(|c| c.status == "True" && c.reason == "Available")
}

/// The controller gives reconcile's `Action` no accessor; its debug form names the wait
/// (`Action { requeue_after: Some(1.5s) }`, `Some(200ms)`).
fn requeue_after(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    let value = text.split("Some(").nth(1)?.split(')').next()?;
    let (number, scale) = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .iter()
        .find_map(|(unit, scale)| Some((value.strip_suffix(unit)?, *scale)))?;
    number
        .parse::<f64>()
        .ok()
        .map(|n| Duration::from_secs_f64(n * scale))
}

#[tokio::test]
async fn create_records_the_instance_id_before_polling() {
    let f = Fixture::new("rec-create").await;
    f.sim
        .set_config(&connect_sim::ConfigPatch {
            creation_delay_ms: Some(60_000),
            ..connect_sim::ConfigPatch::default()
        })
        .await;
    let ctx = f.context().await;
    let object = f.create("center", "Delete").await;
    let uid = object.uid().expect("uid");

    // The first reconcile only adds the finalizer; the second creates.
    f.reconcile(&ctx, "center")
        .await
        .expect("adds the finalizer");
    assert!(
        f.get("center")
            .await
            .finalizers()
            .contains(&FINALIZER.to_owned())
    );
    let action = f.reconcile(&ctx, "center").await.expect("creates");

    let object = f.get("center").await;
    let status = object.status.clone().expect("status written");
    let instances = f.sim.instances().await;
    assert_eq!(instances.len(), 1, "{instances:?}");
    assert_eq!(
        status.instance_id.as_deref(),
        Some(instances[0].id.as_str())
    );
    assert_eq!(
        status.instance_status.as_deref(),
        Some("CREATION_IN_PROGRESS")
    );
    assert_eq!(ready_reason(&object).as_deref(), Some("Creating"));
    let calls = f.sim.calls().await;
    let operations: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(operations, ["ListInstances", "CreateInstance"], "{calls:?}");
    assert_eq!(
        calls[1].client_token.as_deref(),
        Some(create_token(&uid).as_str())
    );
    // Polled soon, not at the drift interval.
    let after = requeue_after(&action).expect("a requeue");
    assert!(after <= Duration::from_secs(1), "{action:?}");

    // The next reconcile polls by id: DescribeInstance, no second CreateInstance.
    f.sim.clear_calls().await;
    f.reconcile(&ctx, "center").await.expect("polls");
    let operations: Vec<String> = f
        .sim
        .calls()
        .await
        .into_iter()
        .map(|c| c.operation)
        .collect();
    assert_eq!(operations, ["DescribeInstance"]);
}

/// A service account allowed everything the operator does except writing status: its
/// CreateInstance goes through, and the status write that should record the id is lost,
/// as when the operator crashes between the two.
async fn client_without_status_writes(f: &Fixture) -> Client {
    let name = "no-status-writes";
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(f.namespace.clone()),
        ..ObjectMeta::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(f.client.clone(), &f.namespace);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: meta(name),
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("service account");
    let roles: Api<Role> = Api::namespaced(f.client.clone(), &f.namespace);
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: meta(name),
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["connect.operators.dev".into()]),
                    resources: Some(vec!["connectinstances".into()]),
                    verbs: vec!["get", "list", "watch", "patch", "update"]
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    ..PolicyRule::default()
                }]),
            },
        )
        .await
        .expect("role");
    let bindings: Api<RoleBinding> = Api::namespaced(f.client.clone(), &f.namespace);
    bindings
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: meta(name),
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: name.into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.into(),
                    namespace: Some(f.namespace.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("role binding");
    // The attempt ledgers are cluster-scoped: what the operator may do with them, in full.
    let cluster_name = format!("{name}-{}", f.namespace);
    let cluster_roles: Api<ClusterRole> = Api::all(f.client.clone());
    cluster_roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(cluster_name.clone()),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec!["connect.operators.dev".into()]),
                    resources: Some(vec!["connectattemptledgers".into()]),
                    verbs: vec!["get", "list", "watch", "create", "update"]
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            },
        )
        .await
        .expect("cluster role");
    let cluster_bindings: Api<ClusterRoleBinding> = Api::all(f.client.clone());
    cluster_bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(cluster_name.clone()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: cluster_name.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: name.into(),
                    namespace: Some(f.namespace.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("cluster role binding");
    let token = accounts
        .create_token_request(name, &PostParams::default(), &TokenRequest::default())
        .await
        .expect("token request")
        .status
        .expect("token status")
        .token;
    let kubeconfig = control_plane().kubeconfig.clone();
    let mut config = Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig"),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("config");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..kube::config::AuthInfo::default()
    };
    Client::try_from(config).expect("client")
}

/// Writes `Ready=Unknown/Initializing` as a first visit would, so that a client that may not
/// write status gets as far as CreateInstance.
async fn mark_initialized(f: &Fixture, name: &str) {
    let patch = json!({
        "apiVersion": "connect.operators.dev/v1alpha1",
        "kind": "ConnectInstance",
        "status": { "conditions": [{
            "type": "Ready", "status": "Unknown", "reason": "Initializing",
            "message": "Looking for an existing instance before creating one",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }]},
    });
    f.api
        .patch_status(
            name,
            &PatchParams::apply("connect-operator").force(),
            &Patch::Apply(&patch),
        )
        .await
        .expect("status patch");
}

#[tokio::test]
async fn a_lost_status_write_after_create_finds_the_instance_instead_of_creating_another() {
    let f = Fixture::new("rec-crash").await;
    let object = f.create("center", "Delete").await;
    let uid = object.uid().expect("uid");
    let admin = f.context().await;
    f.reconcile(&admin, "center")
        .await
        .expect("adds the finalizer");
    mark_initialized(&f, "center").await;

    // CreateInstance is sent; recording the id fails.
    let crippled = context(
        client_without_status_writes(&f).await,
        f.client.clone(),
        &f.namespace,
        &f.sim,
    )
    .await;
    let failed = f.reconcile(&crippled, "center").await;
    assert!(failed.is_err(), "the status write must fail: {failed:?}");
    assert!(
        f.get("center")
            .await
            .status
            .as_ref()
            .and_then(|s| s.instance_id.as_ref())
            .is_none()
    );
    assert_eq!(f.sim.instances().await.len(), 1);

    // A restarted operator (nothing in memory) finds it by alias + uid tag and records it.
    let restarted = f.context().await;
    let object = f
        .reconcile_until(&restarted, "center", "Ready", 30, is_ready)
        .await;
    let instances = f.sim.instances().await;
    assert_eq!(instances.len(), 1);
    assert_eq!(
        object.status.and_then(|s| s.instance_id).as_deref(),
        Some(instances[0].id.as_str())
    );
    assert_eq!(
        instances[0].tags.get(UID_TAG).map(String::as_str),
        Some(uid.as_str())
    );
    let creates = f.sim.calls_of("CreateInstance").await;
    assert_eq!(creates.len(), 1, "found, not created again: {creates:?}");
}

#[tokio::test]
async fn a_lost_create_reply_is_retried_with_the_same_token_and_gives_one_instance() {
    let f = Fixture::new("rec-reply").await;
    let object = f.create("center", "Delete").await;
    let uid = object.uid().expect("uid");
    let ctx = f.context().await;
    f.reconcile(&ctx, "center")
        .await
        .expect("adds the finalizer");

    // AWS creates the instance, but the reply never arrives.
    f.sim
        .set_config(&connect_sim::ConfigPatch {
            faults: Some(connect_sim::FaultsPatch {
                drop_connection_ratio: Some(1.0),
                operations: Some(vec!["CreateInstance".to_owned()]),
                ..connect_sim::FaultsPatch::default()
            }),
            ..connect_sim::ConfigPatch::default()
        })
        .await;
    f.reconcile(&ctx, "center")
        .await
        .expect("a lost reply is a status");
    let object = f.get("center").await;
    assert_eq!(ready_reason(&object).as_deref(), Some("AwsError"));
    assert!(
        object
            .status
            .as_ref()
            .and_then(|s| s.instance_id.as_ref())
            .is_none()
    );
    assert_eq!(f.sim.instances().await.len(), 1, "AWS did create it");

    // The retry (the lookup found nothing a moment ago, so it is not repeated) sends
    // CreateInstance with the same token; AWS answers with the same instance.
    f.sim
        .set_config(&connect_sim::ConfigPatch {
            faults: Some(connect_sim::FaultsPatch {
                drop_connection_ratio: Some(0.0),
                ..connect_sim::FaultsPatch::default()
            }),
            ..connect_sim::ConfigPatch::default()
        })
        .await;
    let object = f
        .reconcile_until(&ctx, "center", "Ready", 30, is_ready)
        .await;
    let creates = f.sim.calls_of("CreateInstance").await;
    assert_eq!(creates.len(), 2, "{creates:?}");
    let token = create_token(&uid);
    assert!(
        creates
            .iter()
            .all(|c| c.client_token.as_deref() == Some(token.as_str()))
    );
    assert!(
        creates[1].replay,
        "the second is a replay of the first: {creates:?}"
    );
    let instances = f.sim.instances().await;
    assert_eq!(instances.len(), 1);
    assert_eq!(
        object.status.and_then(|s| s.instance_id).as_deref(),
        Some(instances[0].id.as_str())
    );
}

#[tokio::test]
async fn retain_releases_the_object_without_calling_aws() {
    let f = Fixture::new("rec-retain").await;
    let ctx = f.context().await;
    f.create("kept", "Retain").await;
    f.reconcile_until(&ctx, "kept", "Ready", 30, is_ready).await;
    f.sim.clear_calls().await;

    f.api
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    let action = f.reconcile(&ctx, "kept").await.expect("cleanup");
    assert_eq!(action, Action::await_change());
    assert!(
        f.api.get_opt("kept").await.expect("get").is_none(),
        "released"
    );
    assert!(f.sim.calls().await.is_empty(), "{:?}", f.sim.calls().await);
    assert_eq!(f.sim.instances().await.len(), 1, "the instance stays");
}

#[tokio::test]
async fn deletion_keeps_the_finalizer_until_aws_reports_the_instance_gone() {
    let f = Fixture::new("rec-delete").await;
    f.sim
        .set_config(&connect_sim::ConfigPatch {
            deletion_delay_ms: Some(2_000),
            ..connect_sim::ConfigPatch::default()
        })
        .await;
    let ctx = f.context().await;
    let object = f.create("doomed", "Delete").await;
    let uid = object.uid().expect("uid");
    f.reconcile_until(&ctx, "doomed", "Ready", 30, is_ready)
        .await;
    f.sim.clear_calls().await;

    f.api
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete");
    let pending = f.reconcile(&ctx, "doomed").await;
    assert!(pending.is_err(), "deletion is pending: {pending:?}");
    let object = f.get("doomed").await;
    assert!(object.finalizers().contains(&FINALIZER.to_owned()));
    assert_eq!(ready_reason(&object).as_deref(), Some("Deleting"));
    let accepted = object
        .status
        .as_ref()
        .and_then(|s| s.delete_requested_time.clone())
        .expect("when DeleteInstance was accepted is recorded");

    // Polls (by a restarted operator too) neither resend DeleteInstance nor release.
    let restarted = f.context().await;
    for ctx in [&ctx, &restarted] {
        assert!(f.reconcile(ctx, "doomed").await.is_err());
        assert!(
            f.get("doomed")
                .await
                .finalizers()
                .contains(&FINALIZER.to_owned())
        );
    }
    let mut released = false;
    for _ in 0..40 {
        let Some(object) = f.api.get_opt("doomed").await.expect("get") else {
            released = true;
            break;
        };
        // Until AWS reports the instance gone, a pending cleanup; then the release.
        match reconciler::reconcile(Arc::new(object), Arc::clone(&restarted)).await {
            Ok(action) => assert_eq!(action, Action::await_change(), "released"),
            Err(e) => assert_eq!(e.category(), "cleanup_pending", "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        released,
        "the finalizer is released once AWS reports the instance gone"
    );
    let deletes = f.sim.calls_of("DeleteInstance").await;
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        deletes[0].client_token.as_deref(),
        Some(delete_token(&uid).as_str())
    );
    assert!(f.sim.instances().await.is_empty());
    assert!(f.api.get_opt("doomed").await.expect("get").is_none());
    assert!(!accepted.is_empty());
}

#[tokio::test]
async fn quota_errors_requeue_after_hours_never_a_storm() {
    let f = Fixture::new("rec-quota").await;
    f.sim
        .set_config(&connect_sim::ConfigPatch {
            instance_quota: Some(0),
            ..connect_sim::ConfigPatch::default()
        })
        .await;
    let ctx = f.context().await;
    f.create("full", "Delete").await;
    f.reconcile(&ctx, "full").await.expect("adds the finalizer");
    let action = f
        .reconcile(&ctx, "full")
        .await
        .expect("a quota error is a status, not a failure");
    let object = f.get("full").await;
    assert_eq!(ready_reason(&object).as_deref(), Some("QuotaExceeded"));
    let quota = object
        .condition("QuotaExceeded")
        .expect("QuotaExceeded condition");
    assert_eq!(quota.reason, "InstanceLimitExceeded");
    assert!(
        object
            .condition("Stalled")
            .is_some_and(|c| c.status == "True")
    );
    let after = requeue_after(&action).expect("a requeue");
    assert!(
        after >= Duration::from_secs(3600),
        "retry after hours, not {after:?}"
    );
    assert_eq!(f.sim.calls_of("CreateInstance").await.len(), 1);
}

#[tokio::test]
async fn a_decision_from_an_outdated_version_neither_overwrites_status_nor_deletes() {
    let f = Fixture::new("rec-stale").await;
    let ctx = f.context().await;
    f.create("center", "Delete").await;
    f.reconcile_until(&ctx, "center", "Ready", 30, is_ready)
        .await;

    // A status computed from an older version is refused by the API server, and the
    // status it would have replaced stays.
    let old = f.get("center").await;
    f.api
        .patch(
            "center",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "metadata": { "labels": { "touched": "yes" } } })),
        )
        .await
        .expect("a change by someone else");
    let emptied = connect_operator::api::ConnectInstanceStatus {
        observed_generation: Some(1),
        ..Default::default()
    };
    let refused = ctx
        .reporter
        .apply_status(
            &f.api,
            "center",
            &emptied,
            old.metadata.resource_version.as_deref(),
        )
        .await;
    assert!(
        matches!(refused, Err(connect_operator::cluster::ReportError::Stale)),
        "{refused:?}"
    );
    let current = f.get("center").await;
    assert!(
        current
            .status
            .as_ref()
            .is_some_and(|s| s.instance_id.is_some()),
        "the instance id survived: {:?}",
        current.status
    );

    // A cache that missed the switch to Retain: the object is being deleted, and the
    // reconcile is handed the version from before the switch. No DeleteInstance is sent.
    f.api
        .delete("center", &DeleteParams::default())
        .await
        .expect("delete");
    let deleting_with_delete_policy = f.get("center").await;
    f.api
        .patch(
            "center",
            &PatchParams::default(),
            &Patch::Merge(&json!({ "spec": { "deletionPolicy": "Retain" } })),
        )
        .await
        .expect("switching to Retain");
    f.sim.clear_calls().await;
    let stale = reconciler::reconcile(deleting_with_delete_policy, Arc::clone(&ctx)).await;
    assert!(stale.is_err(), "{stale:?}");
    let calls = f.sim.calls().await;
    assert!(
        calls.iter().all(|c| c.operation != "DeleteInstance"),
        "{calls:?}"
    );
    // From the current version: released, the instance kept.
    f.reconcile(&ctx, "center").await.expect("released");
    assert!(f.api.get_opt("center").await.expect("get").is_none());
    assert!(
        f.sim
            .calls()
            .await
            .iter()
            .all(|c| c.operation != "DeleteInstance")
    );
    assert_eq!(f.sim.instances().await.len(), 1, "the instance stays");
}
