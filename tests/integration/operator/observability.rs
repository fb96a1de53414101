//! What the people on call see: the running operator's `/metrics` in a scenario with an
//! object in every state an alert is about (a ConnectAccount, a protected object whose
//! deletion waits, one waiting for the instance quota and then refused by AWS's attempt
//! limit, one whose status writes the API server refuses), checked twice:
//!
//! - the state gauges have the values the objects say, and the same after a restart;
//! - every metric the chart's alert rules and Grafana dashboard name is exported, with
//!   every label they select, group or template on.

use std::collections::{BTreeMap, BTreeSet};

use connect_sim::ConfigPatch;
use kube::api::DeleteParams;
use serde_json::{Value, json};

use test_kit::connect::{basic_spec, create, is_true, manifest};
use test_kit::{DEADLINE, kubectl_ok, kubectl_with_input, random_suffix};

use super::Scenario;
use super::accounts::{apply_account, wait_account};

/// Labels Prometheus adds when it scrapes (target labels), not the operator.
const TARGET_LABELS: &[&str] = &["job", "namespace", "pod", "instance", "service"];

/// The samples of a `/metrics` text: metric name → the label sets of its samples.
pub(super) fn samples(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (name, rest) = match line.find(['{', ' ']) {
            Some(at) => line.split_at(at),
            None => continue,
        };
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) {
            for pair in split_matchers(body.0) {
                if let Some((key, value)) = pair.split_once('=') {
                    labels.insert(
                        key.trim().to_owned(),
                        value.trim().trim_matches('"').to_owned(),
                    );
                }
            }
        }
        out.entry(name.to_owned()).or_default().push(labels);
    }
    out
}

/// Splits `a="x",b=~"y,z"` at the commas outside quotes.
fn split_matchers(body: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in body.chars() {
        match c {
            '\\' if quoted && !escaped => {
                escaped = true;
                current.push(c);
                continue;
            }
            '"' if !escaped => quoted = !quoted,
            ',' if !quoted => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        escaped = false;
        current.push(c);
    }
    if !current.trim().is_empty() {
        parts.push(current);
    }
    parts
}

/// What one PromQL expression asks of the metrics: per metric name, the labels its
/// selectors match on; and the labels it groups, joins or reads by (`by`, `without`, `on`,
/// `ignoring`, `group_left`, `group_right`, `label_values(…, label)`).
#[derive(Debug, Default)]
struct Uses {
    selectors: BTreeMap<String, BTreeSet<String>>,
    grouping: BTreeSet<String>,
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn uses_of(expr: &str) -> Uses {
    let mut uses = Uses::default();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            // Skip string literals (label values).
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if !is_ident(chars[i]) || (i > 0 && is_ident(chars[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && is_ident(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut j = i;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let next = chars.get(j).copied();
        if word.starts_with("connect_operator_") {
            let labels = uses.selectors.entry(word).or_default();
            if next == Some('{') {
                let end = chars[j..]
                    .iter()
                    .position(|&c| c == '}')
                    .map_or(chars.len(), |p| j + p);
                let body: String = chars[j + 1..end].iter().collect();
                for matcher in split_matchers(&body) {
                    let name: String = matcher
                        .trim()
                        .chars()
                        .take_while(|&c| is_ident(c))
                        .collect();
                    if !name.is_empty() {
                        labels.insert(name);
                    }
                }
                i = end;
            }
        } else if matches!(
            word.as_str(),
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) && next == Some('(')
        {
            let end = chars[j..]
                .iter()
                .position(|&c| c == ')')
                .map_or(chars.len(), |p| j + p);
            let body: String = chars[j + 1..end].iter().collect();
            uses.grouping.extend(
                body.split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
            i = end;
        } else if word == "label_values" && next == Some('(') {
            let end = chars[j..]
                .iter()
                .position(|&c| c == ')')
                .map_or(chars.len(), |p| j + p);
            let body: String = chars[j + 1..end].iter().collect();
            if let Some((_, label)) = body.rsplit_once(',') {
                uses.grouping.insert(label.trim().to_owned());
            }
            // The selector inside is read by the next iterations.
            i = j + 1;
        }
    }
    uses
}

/// The `$labels.X` an alert's annotations template on.
fn templated_labels(text: &str) -> BTreeSet<String> {
    text.split("$labels.")
        .skip(1)
        .map(|rest| rest.chars().take_while(|&c| is_ident(c)).collect())
        .collect()
}

/// Every problem of `expr` (and the labels its annotations use) against the scrape.
fn problems_of(
    origin: &str,
    expr: &str,
    templated: &BTreeSet<String>,
    scraped: &BTreeMap<String, Vec<BTreeMap<String, String>>>,
) -> Vec<String> {
    let uses = uses_of(expr);
    let mut problems = Vec::new();
    if uses.selectors.is_empty() {
        problems.push(format!(
            "{origin}: names no connect_operator_ metric: {expr}"
        ));
    }
    let mut available: BTreeSet<&str> = BTreeSet::new();
    for (metric, labels) in &uses.selectors {
        let Some(series) = scraped.get(metric) else {
            problems.push(format!("{origin}: {metric} is not exported"));
            continue;
        };
        let wanted: Vec<&String> = labels
            .iter()
            .filter(|l| !TARGET_LABELS.contains(&l.as_str()))
            .collect();
        if !series
            .iter()
            .any(|sample| wanted.iter().all(|l| sample.contains_key(*l)))
        {
            problems.push(format!(
                "{origin}: no sample of {metric} has the labels {wanted:?} (samples: {series:?})"
            ));
        }
        available.extend(series.iter().flat_map(|s| s.keys().map(String::as_str)));
    }
    for label in uses.grouping.iter().chain(templated) {
        if !TARGET_LABELS.contains(&label.as_str()) && !available.contains(label.as_str()) {
            problems.push(format!(
                "{origin}: uses the label {label}, which none of {:?} has",
                uses.selectors.keys().collect::<Vec<_>>()
            ));
        }
    }
    problems
}

/// The gauges of replicas and their traffic, exported only while an object has a replica:
/// their coverage is proven by the replica tests.
pub(super) const REPLICA_METRICS: [&str; 3] = [
    "connect_operator_replicas",
    "connect_operator_oldest_incomplete_replica_age_seconds",
    "connect_operator_traffic_percent",
];

/// What the chart's alert rules and dashboard queries name that `scraped` lacks (a metric,
/// or a label they select, group or template on), for the rules and queries that name a
/// metric `selected` accepts.
pub(super) async fn uncovered(
    scraped: &BTreeMap<String, Vec<BTreeMap<String, String>>>,
    selected: impl Fn(&str) -> bool,
) -> Vec<String> {
    let chosen = |expr: &str| uses_of(expr).selectors.keys().any(|m| selected(m));
    let groups = crate::chart::alerts::default_rule_groups().await;
    let mut problems = Vec::new();
    let rules = crate::chart::alerts::alerts(&groups);
    assert!(!rules.is_empty());
    let mut checked = 0;
    for rule in rules {
        let expr = rule["expr"].as_str().unwrap_or_default();
        if !chosen(expr) {
            continue;
        }
        checked += 1;
        let name = rule["alert"].as_str().unwrap_or_default();
        let annotations = serde_json::to_string(&rule["annotations"]).unwrap_or_default();
        problems.extend(problems_of(
            &format!("alert {name}"),
            expr,
            &templated_labels(&annotations),
            scraped,
        ));
    }
    let queries = crate::chart::dashboard::dashboard_exprs();
    assert!(queries.len() > 10, "{queries:?}");
    for query in queries.iter().filter(|q| chosen(q)) {
        checked += 1;
        problems.extend(problems_of("dashboard", query, &BTreeSet::new(), scraped));
    }
    assert!(checked > 0, "no rule or query names the selected metrics");
    problems
}

/// A ValidatingAdmissionPolicy (and its binding) that refuses status writes of the
/// ConnectInstances labelled `connect-test/refuse-status` in one namespace: the operator's
/// status write fails as an API server would fail it.
fn refuse_status_policy(name: &str, namespace: &str) -> String {
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: {name}
spec:
  failurePolicy: Fail
  matchConstraints:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: {namespace}
    resourceRules:
      - apiGroups: ["connect.operators.dev"]
        apiVersions: ["*"]
        operations: ["UPDATE"]
        resources: ["connectinstances/status"]
      # A probe: a labelled ConfigMap refused at creation shows the policy is in force.
      - apiGroups: [""]
        apiVersions: ["v1"]
        operations: ["CREATE"]
        resources: ["configmaps"]
  validations:
    - expression: "!has(object.metadata.labels) || !('connect-test/refuse-status' in object.metadata.labels)"
      message: status writes of this object are refused by the test
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: {name}
spec:
  policyName: {name}
  validationActions: ["Deny"]
"#
    )
}

#[tokio::test]
async fn metrics_tell_every_state_and_cover_what_the_alerts_and_dashboard_use() {
    let mut s = Scenario::start(
        "metrics_tell_every_state_and_cover_what_the_alerts_and_dashboard_use",
        &["--creation-delay", "300ms", "--instance-quota", "1"],
        // One create or delete per 5 s: the second create waits for the limiter.
        &[
            ("quota-retry-interval", "2s"),
            ("create-delete-rate", "0.2"),
        ],
    )
    .await;
    let account = format!("observed-{}", random_suffix(5));
    apply_account(&s, &account, json!({"namespaceSelector": {}})).await;
    wait_account(&s, &account, "Ready=True", |a| {
        is_true(a, "Ready", Some("CredentialsVerified"))
    })
    .await;
    let spec = |alias: &str| {
        let mut spec = basic_spec(&format!("{alias}-{}", random_suffix(5)));
        spec["accountRef"] = json!({"name": account});
        spec
    };

    // A protected instance: Ready, then deleted, which waits.
    let mut protected = spec("protected");
    protected["deletionProtection"] = json!(true);
    create(&s.api, &manifest("protected", protected))
        .await
        .expect("create protected");
    s.wait_ready("protected").await;
    // The account's only instance slot is taken: this one waits for the quota.
    create(&s.api, &manifest("waiting", spec("waiting")))
        .await
        .expect("create waiting");
    s.wait_for("waiting", "QuotaExceeded=True/InstanceLimitExceeded", |o| {
        is_true(o, "QuotaExceeded", Some("InstanceLimitExceeded"))
    })
    .await;
    let labels = format!("account=\"{account}\",region=\"us-east-1\"");
    s.metrics_with(&[format!(
        "connect_operator_instances_quota_exceeded{{{labels},reason=\"InstanceLimitExceeded\"}} 1"
    )])
    .await;
    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        "protected",
        "--wait=false",
    ])
    .await;
    s.wait_for("protected", "Ready=False/DeletionProtected", |o| {
        o.metadata.deletion_timestamp.is_some()
            && test_kit::connect::condition(o, "Ready")
                .is_some_and(|c| c.reason == "DeletionProtected")
    })
    .await;
    // Quota raised, and AWS's 30-day attempt limit down to the one attempt spent: the next
    // create is refused by that limit.
    s.sim
        .set_config(&ConfigPatch {
            instance_quota: Some(5),
            lifecycle_attempt_limit: Some(1),
            ..ConfigPatch::default()
        })
        .await;
    s.wait_for(
        "waiting",
        "QuotaExceeded=True/LifecycleAttemptLimitExceeded",
        |o| is_true(o, "QuotaExceeded", Some("LifecycleAttemptLimitExceeded")),
    )
    .await;
    // AWS's answer is recorded in the ledger (awsLimitReachedAt), shown in the account's
    // status and announced on the account.
    let before_refusal = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5);
    let recorded = test_kit::wait_until(
        "awsLimitReachedAt in the ledger and the account's status",
        DEADLINE,
        || async {
            let ledger = super::ledger::ledgers(&s.client)
                .get(&format!("{account}.us-east-1"))
                .await
                .map_err(|e| e.to_string())?;
            let at = ledger
                .data
                .pointer("/spec/awsLimitReachedAt")
                .and_then(Value::as_str)
                .ok_or("no spec.awsLimitReachedAt in the ledger")?
                .to_owned();
            let shown = super::ledger::accounts(&s.client)
                .get(&account)
                .await
                .map_err(|e| e.to_string())?;
            let in_status = shown
                .data
                .pointer("/status/lifecycleAttempts/0/awsLimitReachedAt")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if in_status.as_deref() == Some(at.as_str()) {
                Ok(at)
            } else {
                Err(format!("ledger {at}, account status {in_status:?}"))
            }
        },
    )
    .await;
    let recorded: jiff::Timestamp = recorded.parse().expect("an RFC 3339 time");
    assert!(recorded > before_refusal, "{recorded}");
    let announced = test_kit::wait_until(
        "the account's LifecycleAttemptLimitExceeded event",
        DEADLINE,
        || async {
            let events = test_kit::connect::event_summaries(
                &test_kit::connect::cluster_events(&s.client, "ConnectAccount", &account).await,
            );
            events
                .into_iter()
                .find(|(_, reason, _)| reason == "LifecycleAttemptLimitExceeded")
                .ok_or_else(|| "no such event yet".to_owned())
        },
    )
    .await;
    assert_eq!(announced.0, "Warning");
    assert!(announced.2.contains("30-day"), "{announced:?}");

    // An object whose status writes the API server refuses: reconciles fail.
    let policy = format!("refuse-status-{}", s.namespace);
    let applied = kubectl_with_input(
        &["apply", "-f", "-"],
        Some(&refuse_status_policy(&policy, &s.namespace)),
    )
    .await;
    assert!(applied.success, "{applied:?}");
    // The API server enforces a new policy once its informer has seen it: wait until a
    // labelled ConfigMap (a server-side dry run) is refused.
    let probe = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\n  namespace: {}\n  labels:\n    connect-test/refuse-status: \"true\"\n",
        s.namespace
    );
    test_kit::wait_until(
        "the status-refusing policy to be in force",
        DEADLINE,
        || async {
            let run =
                kubectl_with_input(&["create", "--dry-run=server", "-f", "-"], Some(&probe)).await;
            if run.stderr.contains("refused by the test") {
                Ok(())
            } else {
                Err(format!(
                    "a labelled ConfigMap is not refused by the policy: {run:?}"
                ))
            }
        },
    )
    .await;
    let mut refused = manifest("refused", spec("refused"));
    refused["metadata"]["labels"] = json!({"connect-test/refuse-status": "true"});
    refused["metadata"]["annotations"] = json!({"connect.operators.dev/paused": "true"});
    create(&s.api, &refused).await.expect("create refused");

    let expected = vec![
        "connect_operator_ready 1".to_owned(),
        "connect_operator_leader 1".to_owned(),
        format!(
            "connect_operator_accounts{{account=\"{account}\",ready=\"True\",reason=\"CredentialsVerified\"}} 1"
        ),
        format!(
            "connect_operator_instances{{{labels},ready=\"False\",reason=\"DeletionProtected\"}} 1"
        ),
        format!(
            "connect_operator_instances{{{labels},ready=\"False\",reason=\"QuotaExceeded\"}} 1"
        ),
        format!(
            "connect_operator_instances{{{labels},ready=\"Unknown\",reason=\"NotReconciled\"}} 1"
        ),
        format!(
            "connect_operator_instances_quota_exceeded{{{labels},reason=\"LifecycleAttemptLimitExceeded\"}} 1"
        ),
        format!("connect_operator_instances_deleting{{account=\"{account}\"}} 1"),
        format!(
            "connect_operator_oldest_pending_deletion_age_seconds{{account=\"{account}\",object=\"{}/protected\"}}",
            s.namespace
        ),
        format!("connect_operator_lifecycle_attempts{{{labels}}} 1"),
        format!("connect_operator_lifecycle_attempt_budget{{{labels}}} 80"),
        format!("connect_operator_lifecycle_attempt_limit_reached_timestamp_seconds{{{labels}}}"),
        "connect_operator_reconcile_failures_total{category=\"kube_api\"}".to_owned(),
    ];
    let text = s.metrics_with(&expected).await;
    let scraped = samples(&text);
    // Three objects of this account, each counted once.
    let ours: f64 = text
        .lines()
        .filter(|l| {
            l.starts_with("connect_operator_instances{")
                && l.contains(&format!("account=\"{account}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        (ours - 3.0).abs() < f64::EPSILON,
        "{ours} objects counted:\n{text}"
    );
    // No gauge has a label per object, but the one that names the oldest pending deletion.
    for (name, series) in &scraped {
        if name != "connect_operator_oldest_pending_deletion_age_seconds" {
            assert!(
                series.iter().all(|labels| !labels.contains_key("object")
                    && !labels.values().any(|v| v.contains("protected"))),
                "{name} has a label per object: {series:?}"
            );
        }
    }

    // Prometheus' own lint of the names, types and help texts (of the classic text format,
    // what a client that does not ask for OpenMetrics gets).
    let lint = crate::chart::alerts::promtool_check_metrics(&text).await;
    assert!(lint.success, "promtool check metrics:\n{}", lint.text());
    // Prometheus asks for OpenMetrics and gets it, with the same samples.
    let open_metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", s.operator.metrics_addr))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .expect("GET /metrics");
    assert!(
        open_metrics.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        open_metrics.headers()
    );
    let open_metrics = open_metrics.text().await.expect("metrics body");
    assert!(open_metrics.trim_end().ends_with("# EOF"), "{open_metrics}");
    assert_eq!(
        samples(&open_metrics).keys().collect::<BTreeSet<_>>(),
        scraped.keys().collect::<BTreeSet<_>>()
    );

    // Everything the alert rules and the dashboard name is there, with their labels (the
    // replicas' gauges are proven where an object has a replica).
    let problems = uncovered(&scraped, |metric| !REPLICA_METRICS.contains(&metric)).await;
    assert!(problems.is_empty(), "{problems:#?}\n{text}");

    // The same after a restart: the gauges come from the objects, not from memory.
    s.operator.restart().await;
    // (The failure counter starts again from zero in the new process.)
    s.metrics_with(&expected[..expected.len() - 1]).await;

    // Let go: the policy goes, and the objects are released without touching AWS again.
    kubectl_ok(&["delete", "validatingadmissionpolicybinding", &policy]).await;
    kubectl_ok(&["delete", "validatingadmissionpolicy", &policy]).await;
    for name in ["protected", "waiting", "refused"] {
        s.merge_patch(
            name,
            json!({"spec": {"deletionPolicy": "Retain"},
                   "metadata": {"annotations": {"connect.operators.dev/paused": null}}}),
        )
        .await;
        let _ = s.api.delete(name, &DeleteParams::default()).await;
    }
    for name in ["protected", "waiting", "refused"] {
        test_kit::connect::wait_gone(&s.api, name, DEADLINE).await;
    }
}

#[test]
fn the_expression_reader_finds_metrics_selectors_and_groupings() {
    let uses = uses_of(
        r#"sum by (category) (rate(connect_operator_reconcile_failures_total{job="a",x=~"b,c"}[5m]))
           / ignoring (category) group_left () sum(rate(connect_operator_reconciles_total[5m]))"#,
    );
    assert_eq!(
        uses.selectors.keys().collect::<Vec<_>>(),
        [
            "connect_operator_reconcile_failures_total",
            "connect_operator_reconciles_total"
        ]
    );
    assert_eq!(
        uses.selectors["connect_operator_reconcile_failures_total"],
        ["job", "x"].into_iter().map(str::to_owned).collect()
    );
    assert_eq!(
        uses.grouping,
        ["category"].into_iter().map(str::to_owned).collect()
    );
    let uses = uses_of(r#"label_values(connect_operator_ready{namespace=~"$namespace"}, job)"#);
    assert!(uses.selectors.contains_key("connect_operator_ready"));
    assert!(uses.grouping.contains("job"));

    // It can fail: a label no sample has is reported.
    let scraped = samples("connect_operator_accounts{account=\"a\",ready=\"True\"} 1\n");
    let problems = problems_of(
        "t",
        r#"max by (account, reason) (connect_operator_accounts{ready="True"})"#,
        &BTreeSet::new(),
        &scraped,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("reason"), "{problems:?}");
    let problems = problems_of("t", "connect_operator_missing", &BTreeSet::new(), &scraped);
    assert!(problems[0].contains("not exported"), "{problems:?}");
}
