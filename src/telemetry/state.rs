//! Gauges of what the cluster holds: objects by state, pending deletions, accounts, and the
//! attempt ledger's summary.
//!
//! They are computed on every scrape from the controllers' reflector stores, not counted
//! as events happen, so they are true after a restart, after a missed event and after a
//! leader change, and a deleted object or account simply stops appearing. Only the
//! replica that runs the controllers exports them (a follower has no stores), so a sum
//! over replicas never counts an object twice.
//!
//! Labels are bounded sets: accounts (ConnectAccounts, a cluster-level list), regions,
//! condition statuses and reasons. No gauge has a label per object, with one exception
//! that stays bounded: the age of the oldest pending deletion names that one object
//! (`object="namespace/name"`), one series per account, so an alert can say which object
//! to look at.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::api::{ConnectAccount, ConnectInstance, FINALIZER};
use crate::conditions::types;

use super::replicas::ReplicaSnapshot;

/// The Ready reason of an object the operator has not written a status for yet.
pub const NOT_RECONCILED: &str = "NotReconciled";

/// What the gauges are computed from: set while this replica runs the controllers.
#[derive(Clone)]
pub struct Sources {
    /// The instance controller's store.
    pub instances: Store<ConnectInstance>,
    /// The served accounts.
    pub accounts: Store<ConnectAccount>,
    /// The region of objects that name none.
    pub default_region: String,
}

/// The collector registered with the metrics registry.
pub struct StateGauges {
    sources: Mutex<Option<Sources>>,
    /// Off while this replica does not lead (its fence closed before its controllers
    /// stopped): the new leader's gauges are the ones to sum.
    exported: std::sync::atomic::AtomicBool,
}

impl Default for StateGauges {
    fn default() -> Self {
        Self {
            sources: Mutex::default(),
            exported: std::sync::atomic::AtomicBool::new(true),
        }
    }
}

impl std::fmt::Debug for StateGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateGauges").finish_non_exhaustive()
    }
}

impl StateGauges {
    /// Starts (`Some`) or stops (`None`) exporting the gauges.
    pub fn set_sources(&self, sources: Option<Sources>) {
        if let Ok(mut guard) = self.sources.lock() {
            *guard = sources;
        }
    }

    /// Whether this replica leads, so that its gauges count.
    pub fn set_exported(&self, exported: bool) {
        self.exported
            .store(exported, std::sync::atomic::Ordering::SeqCst);
    }

    fn sources(&self) -> Option<Sources> {
        if !self.exported.load(std::sync::atomic::Ordering::SeqCst) {
            return None;
        }
        self.sources.lock().ok().and_then(|guard| guard.clone())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct InstanceLabels {
    account: String,
    region: String,
    ready: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct QuotaLabels {
    account: String,
    region: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct OldestDeletionLabels {
    account: String,
    object: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct AccountReadyLabels {
    account: String,
    ready: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct AccountRegionLabels {
    account: String,
    region: String,
}

/// The gauges' values at one moment; a pure function of the stores' contents.
#[derive(Debug, Default, PartialEq)]
pub struct Snapshot {
    instances: BTreeMap<InstanceLabels, i64>,
    quota_exceeded: BTreeMap<QuotaLabels, i64>,
    deleting: BTreeMap<AccountLabels, i64>,
    /// Per account: the oldest pending deletion (`namespace/name`) and its age in seconds.
    oldest_deletion: BTreeMap<String, (String, f64)>,
    accounts: BTreeMap<AccountReadyLabels, i64>,
    attempts: BTreeMap<AccountRegionLabels, i64>,
    budget: BTreeMap<AccountRegionLabels, i64>,
    aws_limit_reached: BTreeMap<AccountRegionLabels, f64>,
    replicas: ReplicaSnapshot,
}

fn condition_labels(
    condition: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
) -> (String, String) {
    condition.map_or_else(
        || ("Unknown".to_owned(), NOT_RECONCILED.to_owned()),
        |c| (c.status.clone(), c.reason.clone()),
    )
}

impl Snapshot {
    /// Computes the gauges from the objects and accounts, as of `now`.
    #[must_use]
    pub fn of(
        instances: &[Arc<ConnectInstance>],
        accounts: &[Arc<ConnectAccount>],
        default_region: &str,
        now: jiff::Timestamp,
    ) -> Self {
        let mut snapshot = Self::default();
        for obj in instances {
            let account = obj.spec.account_name().to_owned();
            let region = obj.region(default_region);
            let (ready, reason) = condition_labels(obj.condition(types::READY));
            *snapshot
                .instances
                .entry(InstanceLabels {
                    account: account.clone(),
                    region: region.clone(),
                    ready,
                    reason,
                })
                .or_default() += 1;
            if let Some(quota) = obj
                .condition(types::QUOTA_EXCEEDED)
                .filter(|c| c.status == "True")
            {
                *snapshot
                    .quota_exceeded
                    .entry(QuotaLabels {
                        account: account.clone(),
                        region,
                        reason: quota.reason.clone(),
                    })
                    .or_default() += 1;
            }
            let name = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
            snapshot.replicas.add(obj, &account, &name, now);
            // Pending on the operator: deletion requested and its finalizer still held (an
            // object held only by another controller's finalizer is not ours to report).
            let ours = obj.finalizers().iter().any(|f| f == FINALIZER);
            if let Some(since) = obj.metadata.deletion_timestamp.as_ref().filter(|_| ours) {
                *snapshot
                    .deleting
                    .entry(AccountLabels {
                        account: account.clone(),
                    })
                    .or_default() += 1;
                let age = now.duration_since(since.0).as_secs_f64().max(0.0);
                let oldest = snapshot
                    .oldest_deletion
                    .entry(account)
                    .or_insert_with(|| (name.clone(), age));
                // The oldest wins; equal ages go to the first name, so the series is stable.
                if age > oldest.1 || (age == oldest.1 && name < oldest.0) {
                    *oldest = (name, age);
                }
            }
        }
        for account in accounts {
            let name = account.name_any();
            let (ready, reason) = condition_labels(account.condition(types::READY));
            snapshot.accounts.insert(
                AccountReadyLabels {
                    account: name.clone(),
                    ready,
                    reason,
                },
                1,
            );
            let regions = account
                .status
                .as_ref()
                .map(|s| s.lifecycle_attempts.as_slice())
                .unwrap_or_default();
            for region in regions {
                let labels = AccountRegionLabels {
                    account: name.clone(),
                    region: region.region.clone(),
                };
                snapshot
                    .attempts
                    .insert(labels.clone(), i64::from(region.used));
                snapshot
                    .budget
                    .insert(labels.clone(), i64::from(region.budget));
                if let Some(at) = region
                    .aws_limit_reached_at
                    .as_deref()
                    .and_then(|at| at.parse::<jiff::Timestamp>().ok())
                {
                    snapshot
                        .aws_limit_reached
                        .insert(labels, at.as_millisecond() as f64 / 1000.0);
                }
            }
        }
        snapshot
    }
}

/// One gauge family from computed values: each labelled sample encoded as a constant,
/// nothing kept between scrapes.
pub(super) fn encode_gauges<L, N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, N)>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet,
    ConstGauge<N>: EncodeMetric,
{
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in values {
        ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Snapshot {
    fn encode(self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_gauges(
            encoder,
            "instances",
            "ConnectInstance objects by account, region and Ready condition (status and reason)",
            self.instances,
        )?;
        encode_gauges(
            encoder,
            "instances_quota_exceeded",
            "ConnectInstance objects whose QuotaExceeded condition is True, by its reason",
            self.quota_exceeded,
        )?;
        encode_gauges(
            encoder,
            "instances_deleting",
            "ConnectInstance objects being deleted (deletion requested, finalizer still held)",
            self.deleting,
        )?;
        encode_gauges(
            encoder,
            "oldest_pending_deletion_age_seconds",
            "Per account, how long the oldest pending deletion has waited, and which object it is",
            self.oldest_deletion
                .into_iter()
                .map(|(account, (object, age))| (OldestDeletionLabels { account, object }, age)),
        )?;
        encode_gauges(
            encoder,
            "accounts",
            "ConnectAccounts served, by Ready condition (status and reason); 1 per account",
            self.accounts,
        )?;
        encode_gauges(
            encoder,
            "lifecycle_attempts",
            "Instance create and delete attempts in the last 30 days, from the attempt ledger",
            self.attempts,
        )?;
        encode_gauges(
            encoder,
            "lifecycle_attempt_budget",
            "The account's budget of create and delete attempts in 30 days",
            self.budget,
        )?;
        encode_gauges(
            encoder,
            "lifecycle_attempt_limit_reached_timestamp_seconds",
            "When AWS last answered that its own 30-day attempt limit is reached (Unix time)",
            self.aws_limit_reached,
        )?;
        self.replicas.encode(encoder)
    }
}

impl Collector for StateGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(sources) = self.sources() else {
            return Ok(());
        };
        Snapshot::of(
            &sources.instances.state(),
            &sources.accounts.state(),
            &sources.default_region,
            jiff::Timestamp::now(),
        )
        .encode(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance(
        name: &str,
        spec: serde_json::Value,
        status: serde_json::Value,
    ) -> Arc<ConnectInstance> {
        let mut obj = json!({
            "apiVersion": "connect.operators.dev/v1alpha1",
            "kind": "ConnectInstance",
            "metadata": {"name": name, "namespace": "team-a", "uid": format!("uid-{name}")},
            "spec": spec,
        });
        if !status.is_null() {
            obj["status"] = status;
        }
        Arc::new(serde_json::from_value(obj).expect("a ConnectInstance"))
    }

    fn ready(status: &str, reason: &str) -> serde_json::Value {
        json!({"type": "Ready", "status": status, "reason": reason, "message": "",
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    fn spec(account: Option<&str>) -> serde_json::Value {
        let mut spec = json!({"identityManagementType": "CONNECT_MANAGED", "instanceAlias": "a",
                              "inboundCallsEnabled": true, "outboundCallsEnabled": true});
        if let Some(account) = account {
            spec["accountRef"] = json!({"name": account});
        }
        spec
    }

    #[test]
    fn counts_objects_by_account_region_and_reason_with_no_label_per_object() {
        let now: jiff::Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let mut deleting_old = (*instance(
            "old",
            spec(Some("prod")),
            json!({"conditions": [ready("False", "Deleting")]}),
        ))
        .clone();
        deleting_old.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
        deleting_old.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-06-01T10:00:00Z".parse().unwrap(),
            ));
        let mut deleting_new = deleting_old.clone();
        deleting_new.metadata.name = Some("new".into());
        deleting_new.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-06-01T11:59:00Z".parse().unwrap(),
            ));
        // Released by the operator, held by another controller's finalizer: not pending on us.
        let mut held_elsewhere = deleting_old.clone();
        held_elsewhere.metadata.name = Some("elsewhere".into());
        held_elsewhere.metadata.finalizers = Some(vec!["example.com/backup".into()]);
        held_elsewhere.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-06-01T08:00:00Z".parse().unwrap(),
            ));
        let instances = vec![
            Arc::new(held_elsewhere),
            instance(
                "a",
                spec(None),
                json!({"conditions": [ready("True", "Available")]}),
            ),
            instance(
                "b",
                spec(None),
                json!({"conditions": [ready("True", "Available")]}),
            ),
            instance("c", spec(None), serde_json::Value::Null),
            instance(
                "d",
                {
                    let mut s = spec(Some("prod"));
                    s["region"] = json!("eu-west-2");
                    s
                },
                json!({"conditions": [ready("False", "QuotaExceeded"),
                    {"type": "QuotaExceeded", "status": "True", "reason": "InstanceLimitExceeded",
                     "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
            ),
            Arc::new(deleting_new),
            Arc::new(deleting_old),
        ];
        let snapshot = Snapshot::of(&instances, &[], "us-east-1", now);
        let key = |account: &str, region: &str, ready: &str, reason: &str| InstanceLabels {
            account: account.into(),
            region: region.into(),
            ready: ready.into(),
            reason: reason.into(),
        };
        assert_eq!(
            snapshot.instances[&key("default", "us-east-1", "True", "Available")],
            2
        );
        assert_eq!(
            snapshot.instances[&key("default", "us-east-1", "Unknown", NOT_RECONCILED)],
            1
        );
        assert_eq!(
            snapshot.instances[&key("prod", "eu-west-2", "False", "QuotaExceeded")],
            1
        );
        // Every object counts by its Ready reason, the one held elsewhere included.
        assert_eq!(
            snapshot.instances[&key("prod", "us-east-1", "False", "Deleting")],
            3
        );
        assert_eq!(snapshot.instances.values().sum::<i64>(), 7);
        assert_eq!(
            snapshot.quota_exceeded[&QuotaLabels {
                account: "prod".into(),
                region: "eu-west-2".into(),
                reason: "InstanceLimitExceeded".into()
            }],
            1
        );
        assert_eq!(
            snapshot.deleting[&AccountLabels {
                account: "prod".into()
            }],
            2
        );
        assert_eq!(
            snapshot.oldest_deletion["prod"],
            ("team-a/old".to_owned(), 7200.0),
            "the oldest of the two pending deletions, aged from its deletionTimestamp"
        );
    }

    #[test]
    fn accounts_and_ledger_summaries_come_from_account_status() {
        let account: ConnectAccount = serde_json::from_value(json!({
            "apiVersion": "connect.operators.dev/v1alpha1",
            "kind": "ConnectAccount",
            "metadata": {"name": "prod"},
            "spec": {"namespaceSelector": {}, "lifecycleAttemptBudget": 10},
            "status": {
                "conditions": [ready("False", "AssumeRoleFailed")],
                "lifecycleAttempts": [
                    {"region": "us-east-1", "used": 9, "budget": 10,
                     "awsLimitReachedAt": "2026-06-01T10:00:00Z"},
                    {"region": "eu-west-2", "used": 1, "budget": 10}
                ]
            }
        }))
        .unwrap();
        let fresh: ConnectAccount = serde_json::from_value(json!({
            "apiVersion": "connect.operators.dev/v1alpha1",
            "kind": "ConnectAccount",
            "metadata": {"name": "new"},
            "spec": {"namespaceSelector": {}},
        }))
        .unwrap();
        let snapshot = Snapshot::of(
            &[],
            &[Arc::new(account), Arc::new(fresh)],
            "us-east-1",
            jiff::Timestamp::now(),
        );
        let mut text = String::new();
        {
            let mut registry = prometheus_client::registry::Registry::with_prefix("x");
            registry.register_collector(Box::new(Fixed(Mutex::new(Some(snapshot)))));
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        }
        for line in [
            r#"x_accounts{account="prod",ready="False",reason="AssumeRoleFailed"} 1"#,
            r#"x_accounts{account="new",ready="Unknown",reason="NotReconciled"} 1"#,
            r#"x_lifecycle_attempts{account="prod",region="us-east-1"} 9"#,
            r#"x_lifecycle_attempts{account="prod",region="eu-west-2"} 1"#,
            r#"x_lifecycle_attempt_budget{account="prod",region="us-east-1"} 10"#,
            r#"x_lifecycle_attempt_limit_reached_timestamp_seconds{account="prod",region="us-east-1"} 1780308000.0"#,
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
        assert!(
            !text.contains(r#"limit_reached_timestamp_seconds{account="prod",region="eu-west-2"}"#),
            "no series for a region where AWS never refused: {text}"
        );
    }

    /// Encodes one fixed snapshot, once.
    #[derive(Debug)]
    struct Fixed(Mutex<Option<Snapshot>>);

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            match self.0.lock().unwrap().take() {
                Some(snapshot) => snapshot.encode(&mut encoder),
                None => Ok(()),
            }
        }
    }

    #[test]
    fn a_follower_exports_no_state_gauges() {
        let metrics = crate::telemetry::Metrics::new();
        metrics.set_ready(true);
        let text = metrics.encode();
        assert!(text.contains("connect_operator_ready 1"), "{text}");
        assert!(text.contains("connect_operator_leader 0"), "{text}");
        assert!(!text.contains("connect_operator_instances"), "{text}");
        assert!(
            text.contains("connect_operator_build_info{version="),
            "{text}"
        );
    }
}
