//! The chart's alert rules (`templates/prometheusrule.yaml`): rendered as a user gets them,
//! checked and unit-tested with promtool (`tests/alerts/rules.test.yaml`: each alert fires
//! and does not fire on synthetic series), each with a severity, a runbook entry in
//! `docs/operations.md` and a summary built from the series' labels; and the values that
//! shape them. The running operator's `/metrics` is checked against the names they use in
//! `operator::observability`.
//!
//! promtool is `$PROMTOOL_BIN` or what `hack/build-binaries.sh` builds from the Go module
//! proxy (cached after the first build).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::helm::{Rendered, Run, go_built_tool, render, run_program};
use super::{IMAGE_REPOSITORY, repo_root};

/// The release and namespace the unit tests' expectations are written for.
const RELEASE: &str = "connect-operator";
const NAMESPACE: &str = "connect-system";

fn promtool() -> PathBuf {
    static PROMTOOL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PROMTOOL
        .get_or_init(|| go_built_tool("PROMTOOL_BIN", "promtool"))
        .clone()
        .unwrap_or_else(|error| panic!("promtool unavailable: {error}"))
}

async fn promtool_in(dir: &Path, args: &[&str]) -> Run {
    run_program(
        promtool(),
        args.iter().map(|arg| (*arg).to_owned()).collect(),
        None,
        Some(dir.to_owned()),
    )
    .await
}

/// `promtool check metrics`: Prometheus' lint of a `/metrics` text (names, units, help).
pub(crate) async fn promtool_check_metrics(text: &str) -> Run {
    run_program(
        promtool(),
        vec!["check".to_owned(), "metrics".to_owned()],
        Some(text.to_owned()),
        None,
    )
    .await
}

fn rule_values(extra: Value) -> Value {
    super::merged(
        json!({
            "image": { "repository": IMAGE_REPOSITORY },
            "aws": { "region": "us-east-1" },
            "metrics": { "prometheusRule": { "enabled": true } },
        }),
        extra,
    )
}

async fn rendered_rule(extra: Value) -> Value {
    let rendered: Rendered = render(RELEASE, NAMESPACE, &rule_values(extra), &[]).await;
    rendered.one("PrometheusRule").clone()
}

/// The rule groups of the PrometheusRule the chart renders with its defaults (a
/// Prometheus rules file's content).
pub(crate) async fn default_rule_groups() -> Value {
    rendered_rule(json!({})).await["spec"].clone()
}

/// Every alerting rule of the groups.
pub(crate) fn alerts(groups: &Value) -> Vec<&Value> {
    groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules"))
        .filter(|rule| rule.get("alert").is_some())
        .collect()
}

fn alert_names(groups: &Value) -> BTreeSet<String> {
    alerts(groups)
        .iter()
        .map(|rule| rule["alert"].as_str().expect("alert name").to_owned())
        .collect()
}

/// The rendered rules in a directory beside a copy of the unit tests.
fn rules_dir(groups: &Value) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("alert-rules-")
        .tempdir()
        .expect("temporary directory");
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml::to_string(groups).expect("rules YAML"),
    )
    .expect("writing rules.yaml");
    std::fs::copy(
        repo_root().join("tests/alerts/rules.test.yaml"),
        dir.path().join("rules.test.yaml"),
    )
    .expect("copying the unit tests");
    dir
}

#[tokio::test]
async fn promtool_checks_the_rendered_rules_and_their_unit_tests_pass() {
    let groups = default_rule_groups().await;
    assert_eq!(alerts(&groups).len(), 11, "{groups:#}");
    let dir = rules_dir(&groups);
    let check = promtool_in(dir.path(), &["check", "rules", "rules.yaml"]).await;
    assert!(check.success, "promtool check rules:\n{}", check.text());
    assert!(check.stdout.contains("11 rules found"), "{}", check.text());
    let test = promtool_in(dir.path(), &["test", "rules", "rules.test.yaml"]).await;
    assert!(test.success, "promtool test rules:\n{}", test.text());

    // The unit tests can fail: a rule whose threshold moved makes them fail.
    let broken = serde_json::to_string(&groups)
        .expect("rules JSON")
        .replace(">= 0.8 < 1", ">= 0.9 < 1");
    let broken: Value = serde_json::from_str(&broken).expect("rules JSON");
    assert_ne!(broken, groups, "the threshold was found and changed");
    let dir = rules_dir(&broken);
    let test = promtool_in(dir.path(), &["test", "rules", "rules.test.yaml"]).await;
    assert!(
        !test.success,
        "a changed threshold passed:\n{}",
        test.text()
    );
    assert!(
        test.text().contains("ConnectAttemptBudgetNearlySpent"),
        "{}",
        test.text()
    );
}

/// The unit tests, per alert: whether some case expects it firing, and some not.
fn tested(unit_tests: &Value) -> std::collections::BTreeMap<String, (bool, bool)> {
    let mut seen = std::collections::BTreeMap::<String, (bool, bool)>::new();
    for case in unit_tests["tests"].as_array().expect("tests") {
        for check in case["alert_rule_test"].as_array().into_iter().flatten() {
            let name = check["alertname"].as_str().expect("alertname").to_owned();
            let fires = check["exp_alerts"]
                .as_array()
                .is_some_and(|alerts| !alerts.is_empty());
            let entry = seen.entry(name).or_default();
            if fires {
                entry.0 = true;
            } else {
                entry.1 = true;
            }
        }
    }
    seen
}

#[tokio::test]
async fn every_alert_is_tested_firing_and_not_firing() {
    let groups = default_rule_groups().await;
    let text = std::fs::read_to_string(repo_root().join("tests/alerts/rules.test.yaml"))
        .expect("the unit tests");
    let unit_tests: Value = serde_yaml::from_str(&text).expect("unit tests YAML");
    let seen = tested(&unit_tests);
    for name in alert_names(&groups) {
        assert_eq!(
            seen.get(&name).copied(),
            Some((true, true)),
            "{name}: (fires in some case, does not fire in some case)"
        );
    }
    assert!(
        seen.keys().all(|name| alert_names(&groups).contains(name)),
        "the unit tests name an alert the chart does not have: {:?}",
        seen.keys().collect::<Vec<_>>()
    );
}

/// GitHub's anchor for a Markdown heading: lower case, spaces to dashes, punctuation gone.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn every_alert_has_a_severity_a_runbook_entry_and_a_summary_from_labels() {
    let groups = default_rule_groups().await;
    let runbook = std::fs::read_to_string(repo_root().join("docs/operations.md"))
        .expect("docs/operations.md");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .map(anchor)
        .collect();
    for rule in alerts(&groups) {
        let name = rule["alert"].as_str().expect("alert name");
        let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
        assert!(
            ["warning", "critical"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        let url = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no runbook_url"));
        let (page, fragment) = url
            .split_once('#')
            .unwrap_or_else(|| panic!("{name}: {url} has no #anchor"));
        assert!(page.ends_with("/docs/operations.md"), "{name}: {url}");
        assert_eq!(fragment, name.to_lowercase(), "{name}: {url}");
        assert!(
            anchors.contains(fragment),
            "{name}: docs/operations.md has no heading `### {name}` (anchors: {anchors:?})"
        );
        let summary = rule["annotations"]["summary"].as_str().unwrap_or_default();
        let expr = rule["expr"].as_str().unwrap_or_default();
        // Alerts grouped by account or object name it in the summary; the operator-wide
        // ones name the operator's namespace.
        for label in ["account", "object", "region"] {
            if expr.contains(&format!("by ({label}")) || expr.contains(&format!(", {label})")) {
                assert!(
                    summary.contains(&format!("$labels.{label}")),
                    "{name}: the summary does not name the {label}: {summary}"
                );
            }
        }
        if !expr.contains("by (account") {
            assert!(summary.contains(NAMESPACE), "{name}: {summary}");
        }
    }
}

#[tokio::test]
async fn rules_are_off_by_default_and_shaped_by_values() {
    let default = render(
        RELEASE,
        NAMESPACE,
        &json!({ "image": { "repository": IMAGE_REPOSITORY }, "aws": { "region": "us-east-1" } }),
        &[],
    )
    .await;
    assert!(
        default.of_kind("PrometheusRule").is_empty(),
        "{:?}",
        default.kinds()
    );

    let shaped = rendered_rule(json!({
        "metrics": { "prometheusRule": {
            "enabled": true,
            "namespace": "monitoring",
            "labels": { "release": "kube-prometheus-stack" },
            "selector": "job=\"connect\"",
            "additionalLabels": { "team": "platform", "severity": "page" },
            "disabled": ["ConnectOperatorNoLeader"],
            "pendingDeletionThresholdSeconds": 7200,
            "replicaIncompleteThresholdSeconds": 10800,
            "runbookBaseUrl": "https://wiki.example.com/connect/docs/operations.md",
        } }
    }))
    .await;
    assert_eq!(shaped["metadata"]["namespace"], "monitoring");
    assert_eq!(
        shaped["metadata"]["labels"]["release"],
        "kube-prometheus-stack"
    );
    let names = alert_names(&shaped["spec"]);
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(!names.contains("ConnectOperatorNoLeader"), "{names:?}");
    for rule in alerts(&shaped["spec"]) {
        let expr = rule["expr"].as_str().expect("expr");
        assert!(expr.contains("{job=\"connect\""), "{expr}");
        assert!(!expr.contains("connect-system"), "{expr}");
        assert_eq!(rule["labels"]["team"], "platform", "{rule}");
        // The alert's own severity wins over a user label of that name (no duplicate key).
        assert!(
            ["warning", "critical"]
                .contains(&rule["labels"]["severity"].as_str().unwrap_or_default()),
            "{rule}"
        );
        assert!(
            rule["annotations"]["runbook_url"]
                .as_str()
                .is_some_and(|url| url.starts_with("https://wiki.example.com/")),
            "{rule}"
        );
    }
    let pending = alerts(&shaped["spec"])
        .into_iter()
        .find(|rule| rule["alert"] == "ConnectInstanceDeletionPending")
        .expect("the deletion alert");
    assert!(
        pending["expr"]
            .as_str()
            .is_some_and(|e| e.contains("> 7200")),
        "{pending}"
    );

    let replica = alerts(&shaped["spec"])
        .into_iter()
        .find(|rule| rule["alert"] == "ConnectReplicaNotComplete")
        .expect("the replica alert");
    assert!(
        replica["expr"]
            .as_str()
            .is_some_and(|e| e.contains("> 10800")),
        "{replica}"
    );

    // promtool accepts what the values made.
    let dir = rules_dir(&shaped["spec"]);
    let check = promtool_in(dir.path(), &["check", "rules", "rules.yaml"]).await;
    assert!(check.success, "{}", check.text());

    // An alert disabled by name is left out, and a group left with no alert goes too.
    let without_replicas = rendered_rule(json!({
        "metrics": { "prometheusRule": { "disabled": ["ConnectReplicaNotComplete"] } }
    }))
    .await;
    let names = alert_names(&without_replicas["spec"]);
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(!names.contains("ConnectReplicaNotComplete"), "{names:?}");
    let groups: Vec<&str> = without_replicas["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|group| group["name"].as_str())
        .collect();
    assert!(!groups.contains(&"connect-operator.replicas"), "{groups:?}");

    // With every alert disabled there is no PrometheusRule at all.
    let every: Vec<String> = alert_names(&default_rule_groups().await)
        .into_iter()
        .collect();
    assert_eq!(every.len(), 11, "{every:?}");
    let none = render(
        RELEASE,
        NAMESPACE,
        &rule_values(json!({ "metrics": { "prometheusRule": { "disabled": every } } })),
        &[],
    )
    .await;
    assert!(
        none.of_kind("PrometheusRule").is_empty(),
        "{:?}",
        none.kinds()
    );

    // A misspelt alert name in `disabled` is refused, naming the choices.
    let run = super::helm::render_raw(
        RELEASE,
        NAMESPACE,
        &rule_values(json!({ "metrics": { "prometheusRule": { "disabled": ["NoSuchAlert"] } } })),
        &[],
    )
    .await;
    assert!(!run.success, "{}", run.text());
    assert!(
        run.text().contains("ConnectOperatorNoLeader"),
        "{}",
        run.text()
    );
}

#[tokio::test]
async fn rules_render_the_same_from_the_values_of_a_release_installed_before_them() {
    // `helm upgrade --reuse-values` of a release installed from a chart without these keys
    // gives the templates none of them; `null` removes a default the same way.
    let keys = [
        "namespace",
        "labels",
        "annotations",
        "selector",
        "runbookBaseUrl",
        "additionalLabels",
        "disabled",
        "attemptBudgetWarningRatio",
        "awsAttemptLimitWindowSeconds",
        "instanceQuotaFor",
        "pendingDeletionThresholdSeconds",
        "replicaIncompleteThresholdSeconds",
        "accessDeniedFor",
        "reconcileFailureRatio",
        "reconcileFailureFor",
        "operatorDownFor",
    ];
    let mut old = serde_json::Map::new();
    old.insert("enabled".into(), json!(true));
    for key in keys {
        old.insert(key.into(), Value::Null);
    }
    let from_old = rendered_rule(json!({ "metrics": {
        "prometheusRule": Value::Object(old),
        "dashboard": null,
    } }))
    .await;
    assert_eq!(from_old["spec"], default_rule_groups().await);
}
