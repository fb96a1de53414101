//! The Grafana dashboard `dashboards/connect-operator.json` and the ConfigMap that
//! `templates/dashboard.yaml` renders for Grafana's dashboard sidecar: absent by default,
//! present with `metrics.dashboard.enabled` in the namespace and with the labels and
//! annotations the values give, its data the file itself. The file's structure is checked
//! as Grafana needs it (unique panel ids, the `${datasource}` Prometheus datasource on every
//! panel, rectangles that do not overlap), every query is scoped to the `$namespace` and
//! `$job` (and, for per-account metrics, `$account`) variables, and the topics the
//! dashboard promises each have a query.
//!
//! [`dashboard_exprs`] hands every query of the dashboard to the tests that compare it with
//! what a running operator exposes on `/metrics`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::helm::{Rendered, kind_of, name_of, render};
use super::{IMAGE_REPOSITORY, chart_dir, merged};

/// The dashboard's path inside the chart (the name `.Files.Get` reads).
const DASHBOARD_FILE: &str = "dashboards/connect-operator.json";

/// The data key of the rendered ConfigMap.
const DATA_KEY: &str = "connect-operator.json";

/// Width of Grafana's dashboard grid.
const GRID_COLUMNS: u64 = 24;

/// Every target's datasource: the dashboard's `datasource` variable, of type Prometheus.
fn prometheus_datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// The metrics that carry an `account` label, so that their selectors must also follow the
/// `$account` variable.
const PER_ACCOUNT_METRICS: &[&str] = &[
    "connect_operator_instances",
    "connect_operator_instances_quota_exceeded",
    "connect_operator_instances_deleting",
    "connect_operator_oldest_pending_deletion_age_seconds",
    "connect_operator_accounts",
    "connect_operator_lifecycle_attempts",
    "connect_operator_lifecycle_attempt_budget",
    "connect_operator_lifecycle_attempt_limit_reached_timestamp_seconds",
    "connect_operator_replicas",
    "connect_operator_oldest_incomplete_replica_age_seconds",
    "connect_operator_traffic_percent",
];

/// The series the dashboard must query at least once: object states, accounts, the 30-day
/// attempts and budget, pending deletions, Global Resiliency replicas and the traffic split,
/// AWS calls, the rate limiter and reconciles.
const REQUIRED_METRICS: &[&str] = &[
    "connect_operator_instances",
    "connect_operator_instances_deleting",
    "connect_operator_oldest_pending_deletion_age_seconds",
    "connect_operator_accounts",
    "connect_operator_lifecycle_attempts",
    "connect_operator_lifecycle_attempt_budget",
    "connect_operator_replicas",
    "connect_operator_oldest_incomplete_replica_age_seconds",
    "connect_operator_traffic_percent",
    "connect_operator_aws_calls_total",
    "connect_operator_rate_limiter_waits_total",
    "connect_operator_rate_limiter_wait_seconds_bucket",
    "connect_operator_reconcile_duration_seconds_bucket",
    "connect_operator_reconcile_failures_total",
];

fn dashboard_path() -> PathBuf {
    chart_dir().join(DASHBOARD_FILE)
}

fn dashboard_text() -> String {
    let path = dashboard_path();
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&dashboard_text())
        .unwrap_or_else(|error| panic!("{DASHBOARD_FILE} is not valid JSON: {error}"))
}

/// Every panel of the dashboard, those nested in collapsed rows included, rows too.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut panels = vec![];
    for panel in dashboard["panels"].as_array().expect("panels") {
        panels.push(panel);
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
    }
    panels
}

fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

fn title_of(panel: &Value) -> &str {
    panel["title"].as_str().unwrap_or("<untitled>")
}

fn targets_of(panel: &Value) -> &[Value] {
    panel["targets"].as_array().map_or(&[], Vec::as_slice)
}

/// The query of a templating variable: a string, or (as Grafana 10 and later save a
/// Prometheus query variable) an object whose `query` is that string.
fn variable_query(variable: &Value) -> Option<&str> {
    match &variable["query"] {
        Value::String(query) => Some(query),
        Value::Object(query) => query.get("query").and_then(Value::as_str),
        _ => None,
    }
}

/// Every PromQL query of the dashboard: each target's `expr`, then the query of each
/// variable of type `query` (the `datasource` variable's query names a plugin type, not
/// series, and is left out).
pub(crate) fn dashboard_exprs() -> Vec<String> {
    let dashboard = dashboard();
    let mut exprs: Vec<String> = all_panels(&dashboard)
        .into_iter()
        .flat_map(targets_of)
        .filter_map(|target| target["expr"].as_str())
        .map(str::to_owned)
        .collect();
    exprs.extend(
        dashboard["templating"]["list"]
            .as_array()
            .expect("templating.list")
            .iter()
            .filter(|variable| variable["type"] == "query")
            .filter_map(variable_query)
            .map(str::to_owned),
    );
    exprs
}

/// One series selector of a query: the metric name, its label matchers (the text between
/// the braces, if any) and the query text right after the selector.
#[derive(Debug)]
struct Selector<'a> {
    metric: &'a str,
    matchers: Option<&'a str>,
    rest: &'a str,
}

/// The selectors of the operator's metrics (`connect_operator_*`) in a query.
fn selectors(expr: &str) -> Vec<Selector<'_>> {
    const PREFIX: &str = "connect_operator_";
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut found = vec![];
    let mut from = 0;
    while let Some(offset) = expr[from..].find(PREFIX) {
        let start = from + offset;
        let end = expr[start..]
            .find(|c: char| !is_name_char(c))
            .map_or(expr.len(), |len| start + len);
        from = end;
        if expr[..start].chars().next_back().is_some_and(is_name_char) {
            continue;
        }
        let metric = &expr[start..end];
        let after = expr[end..].trim_start();
        let (matchers, rest) = match after.strip_prefix('{') {
            Some(inner) => {
                let close = closing_brace(inner)
                    .unwrap_or_else(|| panic!("unclosed selector of {metric} in {expr}"));
                (Some(&inner[..close]), &inner[close + 1..])
            }
            None => (None, after),
        };
        found.push(Selector {
            metric,
            matchers,
            rest,
        });
    }
    found
}

/// The position of the `}` that ends a selector's matchers (quoted values may hold one).
fn closing_brace(matchers: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, c) in matchers.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(index),
            _ => {}
        }
    }
    None
}

/// A panel's rectangle on the grid: (x, y, w, h).
fn grid_rect(panel: &Value) -> (u64, u64, u64, u64) {
    let grid = &panel["gridPos"];
    let field = |name: &str| {
        grid[name]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {:?}: gridPos.{name} missing", title_of(panel)))
    };
    (field("x"), field("y"), field("w"), field("h"))
}

/// Asserts that the panels' rectangles fit the grid and that no two overlap.
fn assert_no_overlap(panels: &[&Value], scope: &str) {
    let rects: Vec<_> = panels
        .iter()
        .map(|panel| (grid_rect(panel), *panel))
        .collect();
    for ((x, y, w, h), panel) in &rects {
        assert!(
            *w > 0 && *h > 0 && x + w <= GRID_COLUMNS,
            "{scope}: panel {:?} does not fit the {GRID_COLUMNS}-column grid: \
             x={x} y={y} w={w} h={h}",
            title_of(panel)
        );
    }
    for (index, ((ax, ay, aw, ah), a)) in rects.iter().enumerate() {
        for ((bx, by, bw, bh), b) in &rects[index + 1..] {
            let apart = ax + aw <= *bx || bx + bw <= *ax || ay + ah <= *by || by + bh <= *ay;
            assert!(
                apart,
                "{scope}: panels {:?} {:?} and {:?} {:?} overlap",
                title_of(a),
                a["gridPos"],
                title_of(b),
                b["gridPos"]
            );
        }
    }
}

fn base_values() -> Value {
    json!({
        "image": { "repository": IMAGE_REPOSITORY },
        "aws": { "region": "us-east-1" },
    })
}

/// The rendered dashboard ConfigMaps (`<fullname>-dashboard`).
fn dashboard_config_maps(rendered: &Rendered) -> Vec<&Value> {
    rendered
        .of_kind("ConfigMap")
        .into_iter()
        .filter(|doc| name_of(doc).ends_with("-dashboard"))
        .collect()
}

#[tokio::test]
async fn dashboard_config_map_renders_only_when_enabled_with_the_sidecar_label_and_the_file() {
    let release = "dash";
    let namespace = "connect-operator";
    let expected_name = format!("{release}-connect-operator-dashboard");

    let default = render(release, namespace, &base_values(), &[]).await;
    let found = dashboard_config_maps(&default);
    assert!(
        found.is_empty(),
        "the dashboard ConfigMap must be off by default, rendered: {found:?}"
    );

    // Enabled with the defaults: the release's namespace, the sidecar's default label, no
    // annotations, the file as the data.
    let enabled = merged(
        base_values(),
        json!({ "metrics": { "dashboard": { "enabled": true } } }),
    );
    let rendered = render(release, namespace, &enabled, &[]).await;
    let found = dashboard_config_maps(&rendered);
    assert_eq!(found.len(), 1, "one dashboard ConfigMap, got {found:?}");
    let config_map = found[0];
    assert_eq!(kind_of(config_map), "ConfigMap");
    assert_eq!(name_of(config_map), expected_name);
    assert_eq!(
        config_map["metadata"]["namespace"], namespace,
        "by default the ConfigMap goes to the release's namespace: {}",
        config_map["metadata"]
    );
    let labels = &config_map["metadata"]["labels"];
    assert_eq!(
        labels["grafana_dashboard"], "1",
        "the Grafana sidecar's default label (a string) must be set: {labels}"
    );
    assert_eq!(
        labels["app.kubernetes.io/instance"], release,
        "the chart's labels must be set: {labels}"
    );
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm", "{labels}");
    assert!(
        config_map["metadata"].get("annotations").is_none(),
        "no annotations unless the values give some: {}",
        config_map["metadata"]
    );
    let data = config_map["data"].as_object().expect("ConfigMap data");
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        vec![DATA_KEY],
        "one data key, {DATA_KEY}"
    );
    let embedded = data[DATA_KEY].as_str().expect("the dashboard as a string");
    let parsed: Value = serde_json::from_str(embedded)
        .unwrap_or_else(|error| panic!("{DATA_KEY} in the ConfigMap is not JSON: {error}"));
    assert_eq!(
        parsed,
        dashboard(),
        "{DATA_KEY} in the ConfigMap differs from {DASHBOARD_FILE}"
    );
    assert_eq!(
        embedded.trim_end(),
        dashboard_text().trim_end(),
        "{DATA_KEY} should be the file's text as it is"
    );

    // Another namespace (where the sidecar looks), a folder annotation, and an extra label
    // that adds to the sidecar's label rather than replacing it.
    let placed = merged(
        base_values(),
        json!({ "metrics": { "dashboard": {
            "enabled": true,
            "namespace": "monitoring",
            "labels": { "team": "contact-centre" },
            "annotations": { "grafana_folder": "Amazon Connect" },
        } } }),
    );
    let rendered = render(release, namespace, &placed, &[]).await;
    let found = dashboard_config_maps(&rendered);
    assert_eq!(found.len(), 1, "one dashboard ConfigMap, got {found:?}");
    let metadata = &found[0]["metadata"];
    assert_eq!(metadata["name"], expected_name.as_str());
    assert_eq!(
        metadata["namespace"], "monitoring",
        "metrics.dashboard.namespace must place the ConfigMap: {metadata}"
    );
    assert_eq!(metadata["labels"]["team"], "contact-centre", "{metadata}");
    assert_eq!(
        metadata["labels"]["grafana_dashboard"], "1",
        "an extra label must not drop the sidecar's label: {metadata}"
    );
    assert_eq!(
        metadata["annotations"],
        json!({ "grafana_folder": "Amazon Connect" }),
        "metrics.dashboard.annotations must be set as given"
    );
}

#[test]
fn dashboard_is_a_grafana_model_whose_queries_follow_the_variables() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "connect-operator");
    assert_eq!(dashboard["title"], "Connect operator");
    assert_eq!(dashboard["schemaVersion"], 39);
    assert_eq!(
        dashboard["tags"],
        json!(["connect-operator", "amazon-connect"])
    );
    assert!(
        dashboard["id"].is_null(),
        "a provisioned dashboard carries no database id: {}",
        dashboard["id"]
    );

    // The variables: the Prometheus datasource, then namespace, job and account queries.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list");
    let variable = |name: &str| {
        variables
            .iter()
            .find(|variable| variable["name"] == name)
            .unwrap_or_else(|| panic!("no templating variable {name:?}"))
    };
    let datasource = variable("datasource");
    assert_eq!(datasource["type"], "datasource", "{datasource}");
    assert_eq!(datasource["query"], "prometheus", "{datasource}");
    for name in ["namespace", "job", "account"] {
        let query_variable = variable(name);
        assert_eq!(query_variable["type"], "query", "{query_variable}");
        assert_eq!(
            query_variable["datasource"],
            prometheus_datasource(),
            "variable {name} must query the ${{datasource}} Prometheus"
        );
        let query = variable_query(query_variable)
            .unwrap_or_else(|| panic!("variable {name} has no query: {query_variable}"));
        assert!(
            query.starts_with("label_values(") && query.contains("connect_operator_"),
            "variable {name} must list label values of an operator metric: {query}"
        );
    }
    assert_eq!(variable("account")["multi"], true);
    assert_eq!(variable("account")["includeAll"], true);

    let panels = all_panels(&dashboard);
    let mut ids = BTreeSet::new();
    for panel in &panels {
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("panel {:?} has no numeric id", title_of(panel)));
        assert!(
            ids.insert(id),
            "panel id {id} ({:?}) is used twice",
            title_of(panel)
        );
    }

    let mut queried = 0;
    for panel in panels.iter().filter(|panel| !is_row(panel)) {
        let title = title_of(panel);
        assert_eq!(
            panel["datasource"],
            prometheus_datasource(),
            "panel {title:?} must use the ${{datasource}} Prometheus datasource"
        );
        assert!(
            panel["description"]
                .as_str()
                .is_some_and(|text| !text.trim().is_empty()),
            "panel {title:?} needs a description"
        );
        let targets = targets_of(panel);
        assert!(!targets.is_empty(), "panel {title:?} has no targets");
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let ref_id = target["refId"].as_str().unwrap_or_default();
            assert!(
                !ref_id.is_empty() && ref_ids.insert(ref_id),
                "panel {title:?}: every target needs its own refId, got {target}"
            );
            assert!(
                target["legendFormat"].is_string(),
                "panel {title:?} target {ref_id}: legendFormat missing"
            );
            if let Some(own) = target.get("datasource") {
                assert_eq!(
                    *own,
                    prometheus_datasource(),
                    "panel {title:?} target {ref_id}: datasource"
                );
            }
            let expr = target["expr"].as_str().unwrap_or_default();
            assert!(
                !expr.trim().is_empty(),
                "panel {title:?} target {ref_id}: empty expr"
            );
            let found = selectors(expr);
            assert!(
                !found.is_empty(),
                "panel {title:?} target {ref_id} queries no connect_operator_ metric: {expr}"
            );
            for selector in &found {
                let matchers = selector.matchers.unwrap_or_default();
                for scope in [r#"namespace=~"$namespace""#, r#"job=~"$job""#] {
                    assert!(
                        matchers.contains(scope),
                        "panel {title:?} target {ref_id}: the selector of {} lacks {scope}: \
                         {expr}",
                        selector.metric
                    );
                }
                if PER_ACCOUNT_METRICS.contains(&selector.metric) {
                    assert!(
                        matchers.contains(r#"account=~"$account""#),
                        "panel {title:?} target {ref_id}: the selector of {} lacks \
                         account=~\"$account\": {expr}",
                        selector.metric
                    );
                }
                // Counters and histogram buckets only make sense as rates.
                if selector.metric.ends_with("_total") || selector.metric.ends_with("_bucket") {
                    assert!(
                        selector.rest.starts_with("[$__rate_interval])")
                            && expr.contains(&format!("rate({}{{", selector.metric)),
                        "panel {title:?} target {ref_id}: {} must be read through \
                         rate(...[$__rate_interval]): {expr}",
                        selector.metric
                    );
                }
                if selector.metric.ends_with("_bucket") {
                    assert!(
                        expr.starts_with("histogram_quantile(") && expr.contains("by (le"),
                        "panel {title:?} target {ref_id}: {} must be summed by le into \
                         histogram_quantile: {expr}",
                        selector.metric
                    );
                }
            }
            queried += 1;
        }
    }
    assert!(queried > 0, "the dashboard has no queries");

    // Rows are containers: they query nothing. Top-level panels (rows and what expanded
    // rows hold) share the grid; the panels inside a collapsed row share it among
    // themselves.
    for row in panels.iter().filter(|panel| is_row(panel)) {
        assert!(
            targets_of(row).is_empty(),
            "row {:?} must not have targets",
            title_of(row)
        );
    }
    let top: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    assert_no_overlap(&top, "dashboard");
    for row in top.iter().filter(|panel| is_row(panel)) {
        let nested: Vec<&Value> = row["panels"]
            .as_array()
            .map(|nested| nested.iter().collect())
            .unwrap_or_default();
        assert_no_overlap(&nested, &format!("row {:?}", title_of(row)));
    }
}

#[test]
fn dashboard_covers_states_accounts_attempts_deletions_aws_rate_limiter_and_reconciles() {
    let exprs = dashboard_exprs();
    let queried: BTreeSet<&str> = exprs
        .iter()
        .flat_map(|expr| selectors(expr))
        .map(|selector| selector.metric)
        .collect();
    let missing: Vec<&&str> = REQUIRED_METRICS
        .iter()
        .filter(|metric| !queried.contains(**metric))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries none of {missing:?}; it queries {queried:?}"
    );

    // The variables' queries are among the expressions handed to the /metrics comparison.
    for variable in [
        "label_values(connect_operator_ready, namespace)",
        r#"label_values(connect_operator_ready{namespace=~"$namespace"}, job)"#,
    ] {
        assert!(
            exprs.iter().any(|expr| expr == variable),
            "dashboard_exprs lacks the variable query {variable}"
        );
    }

    // Errors by outcome leave successes out; object states are summed by Ready and reason.
    assert!(
        exprs
            .iter()
            .any(|expr| expr.contains("connect_operator_aws_calls_total{")
                && expr.contains(r#"outcome!="success""#)
                && expr.contains("by (operation, outcome)")),
        "no AWS error rate by operation and outcome"
    );
    assert!(
        exprs
            .iter()
            .any(|expr| expr.starts_with("sum by (ready, reason) (connect_operator_instances{")),
        "no sum by (ready, reason) of connect_operator_instances"
    );

    // The traffic split: one line per object, channel and region, named after all three.
    let dashboard = dashboard();
    let split: Vec<&Value> = all_panels(&dashboard)
        .into_iter()
        .flat_map(targets_of)
        .filter(|target| {
            target["expr"]
                .as_str()
                .is_some_and(|expr| expr.contains("connect_operator_traffic_percent{"))
        })
        .collect();
    assert!(
        !split.is_empty(),
        "no query of connect_operator_traffic_percent"
    );
    for target in split {
        let expr = target["expr"].as_str().unwrap_or_default();
        assert!(
            expr.starts_with("max by (object, channel, region) ("),
            "the split is read per object, channel and region (max across replicas): {expr}"
        );
        assert_eq!(
            target["legendFormat"], "{{object}} {{channel}} → {{region}}",
            "{target}"
        );
    }
}

#[test]
fn selectors_are_found_with_their_matchers() {
    let expr = r#"sum by (le) (rate(connect_operator_a_bucket{job=~"$job", x="}"}[5m])) / connect_operator_b and not_connect_operator_c"#;
    let found = selectors(expr);
    let summary: Vec<(&str, Option<&str>)> = found
        .iter()
        .map(|selector| (selector.metric, selector.matchers))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("connect_operator_a_bucket", Some(r#"job=~"$job", x="}""#)),
            ("connect_operator_b", None),
        ]
    );
    assert!(found[0].rest.starts_with("[5m]"), "{:?}", found[0].rest);
}
