//! The chart's default `ConnectAccount`: rendered with the defaults (the operator's own
//! credentials, every namespace, budget 80, `helm.sh/resource-policy: keep`), changed or
//! turned off by the `defaultAccount` values, `accountSelector` reaching the Deployment;
//! `values.schema.json` accepting and refusing exactly the account values the CRD does
//! (both asked: helm, and the API server with a server-side dry run); and a real
//! `helm install`/`helm uninstall` leaving the account in place, adopted again by the same
//! release and refused to another.

use std::time::Instant;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use serde_json::{Value, json};

use test_kit::{TestNamespace, client, kubectl_with_input, random_suffix};

use super::helm::{Rendered, helm, kind_of, name_of, parse_yaml_stream, plane, render, render_raw};
use super::{FIELD_MANAGER, IMAGE_REPOSITORY, chart_dir, merged, release_name};

pub(super) const ACCOUNT: &str = "ConnectAccount";
pub(super) const ACCOUNT_FINALIZER: &str = "connect.operators.dev/account-in-use";

/// The cluster-scoped `connectaccounts`.
pub(super) fn account_api(client: &Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("connect.operators.dev", "v1alpha1", ACCOUNT),
        "connectaccounts",
    );
    Api::all_with(client.clone(), &resource)
}

fn base_values() -> Value {
    json!({
        "image": { "repository": IMAGE_REPOSITORY },
        "aws": { "region": "us-east-1" },
    })
}

fn env_of(rendered: &Rendered) -> std::collections::BTreeMap<String, String> {
    super::helm::rendered_env(rendered.one("Deployment"))
}

#[tokio::test]
async fn chart_default_account_renders_with_defaults_and_values_change_or_remove_it() {
    // Defaults: ConnectAccount/default, cluster-scoped, the operator's own credentials,
    // every namespace, budget 80, kept on uninstall, with the chart's labels.
    let release = release_name("acct");
    let rendered = render(&release, "connect-operator", &base_values(), &[]).await;
    let account = rendered.one(ACCOUNT);
    assert_eq!(account["apiVersion"], "connect.operators.dev/v1alpha1");
    assert_eq!(name_of(account), "default");
    assert!(
        account["metadata"].get("namespace").is_none(),
        "a ConnectAccount is cluster-scoped: {account}"
    );
    assert_eq!(
        account["metadata"]["annotations"],
        json!({ "helm.sh/resource-policy": "keep" })
    );
    let labels = &account["metadata"]["labels"];
    assert_eq!(labels["app.kubernetes.io/instance"], release.as_str());
    assert_eq!(labels["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(
        account["spec"],
        json!({ "namespaceSelector": {}, "lifecycleAttemptBudget": 80 })
    );
    assert!(
        !env_of(&rendered).contains_key("CONNECT_OPERATOR_ACCOUNT_SELECTOR"),
        "no accountSelector, no CONNECT_OPERATOR_ACCOUNT_SELECTOR"
    );

    // watchNamespace changes nothing about the account (still cluster-scoped, every
    // namespace).
    let watching = render(
        &release,
        "connect-operator",
        &merged(base_values(), json!({ "watchNamespace": "contact-centre" })),
        &[],
    )
    .await;
    assert_eq!(watching.one(ACCOUNT), account);

    // Every value changed.
    let selector = json!({
        "matchLabels": { "team": "a" },
        "matchExpressions": [
            { "key": "environment", "operator": "In", "values": ["production", "staging"] },
            { "key": "sandbox", "operator": "DoesNotExist" },
        ],
    });
    let changed = render(
        &release,
        "connect-operator",
        &merged(
            base_values(),
            json!({
                "accountSelector": "connect.operators.dev/operator in (payments)",
                "commonLabels": { "cost-centre": "4711" },
                "defaultAccount": {
                    "name": "payments",
                    "roleArn": "arn:aws:iam::111122223333:role/connect/operator-target",
                    "externalId": "payments-eu-west-2",
                    "namespaceSelector": selector,
                    "lifecycleAttemptBudget": 25,
                    "labels": { "connect.operators.dev/operator": "payments" },
                },
            }),
        ),
        &[],
    )
    .await;
    let account = changed.one(ACCOUNT);
    assert_eq!(name_of(account), "payments");
    assert_eq!(
        account["spec"],
        json!({
            "roleArn": "arn:aws:iam::111122223333:role/connect/operator-target",
            "externalId": "payments-eu-west-2",
            "namespaceSelector": selector,
            "lifecycleAttemptBudget": 25,
        })
    );
    let labels = &account["metadata"]["labels"];
    assert_eq!(labels["connect.operators.dev/operator"], "payments");
    assert_eq!(labels["cost-centre"], "4711");
    assert_eq!(
        account["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
    assert_eq!(
        env_of(&changed)["CONNECT_OPERATOR_ACCOUNT_SELECTOR"],
        "connect.operators.dev/operator in (payments)"
    );

    // Turned off: no account, the rest unchanged.
    let off = render(
        &release,
        "connect-operator",
        &merged(
            base_values(),
            json!({ "defaultAccount": { "create": false } }),
        ),
        &[],
    )
    .await;
    assert!(off.of_kind(ACCOUNT).is_empty(), "{:?}", off.kinds());
    let mut without_account = rendered.kinds();
    without_account.remove(ACCOUNT);
    assert_eq!(off.kinds(), without_account);

    // ci/accounts-values.yaml (linted by lint.rs) renders the account it describes.
    let ci = chart_dir()
        .join("ci/accounts-values.yaml")
        .display()
        .to_string();
    let from_ci = render(&release, "connect-operator", &json!({}), &["-f", &ci]).await;
    let account = from_ci.one(ACCOUNT);
    assert_eq!(name_of(account), "payments");
    assert_eq!(
        account["metadata"]["labels"]["connect.operators.dev/operator"],
        "payments"
    );
    assert_eq!(
        env_of(&from_ci)["CONNECT_OPERATOR_ACCOUNT_SELECTOR"],
        "connect.operators.dev/operator=payments"
    );
    eprintln!(
        "default account: rendered with the defaults, changed by every defaultAccount value, \
         absent with create=false, accountSelector in the env"
    );
}

/// One account of the agreement check: the values of `defaultAccount` (and the same spec as
/// a plain manifest).
struct AccountCase {
    what: &'static str,
    role_arn: &'static str,
    external_id: &'static str,
    budget: i64,
    namespace_selector: Value,
}

fn case(what: &'static str, role_arn: &'static str, external_id: &'static str) -> AccountCase {
    AccountCase {
        what,
        role_arn,
        external_id,
        budget: 80,
        namespace_selector: json!({}),
    }
}

/// A ConnectAccount manifest with the case's spec, written by hand (no chart).
fn plain_manifest(name: &str, case: &AccountCase) -> Value {
    let mut spec = json!({
        "namespaceSelector": case.namespace_selector,
        "lifecycleAttemptBudget": case.budget,
    });
    if !case.role_arn.is_empty() {
        spec["roleArn"] = json!(case.role_arn);
    }
    if !case.external_id.is_empty() {
        spec["externalId"] = json!(case.external_id);
    }
    json!({
        "apiVersion": "connect.operators.dev/v1alpha1",
        "kind": ACCOUNT,
        "metadata": { "name": name },
        "spec": spec,
    })
}

async fn dry_run_apply(yaml: &str) -> test_kit::KubectlOutput {
    kubectl_with_input(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            &format!("--field-manager={FIELD_MANAGER}"),
            "-f",
            "-",
        ],
        Some(yaml),
    )
    .await
}

/// values.schema.json (and the chart's own check) and the CRD agree on every account value:
/// what helm refuses the API server refuses too, and what helm renders the API server
/// accepts.
#[tokio::test]
async fn chart_account_values_are_refused_exactly_where_the_crd_refuses_them() {
    // The CRD must be served (the shared control plane installs crds/).
    let _ = client().await;
    let role = "arn:aws:iam::111122223333:role/connect-operator";
    let mut cases = vec![
        (case("the operator's own credentials", "", ""), true),
        (case("a role", role, ""), true),
        (case("a role and an external id", role, "team-a:eu/1"), true),
        (
            case(
                "a role with a path in aws-us-gov",
                "arn:aws-us-gov:iam::111122223333:role/team/connect.operator+x",
                "",
            ),
            true,
        ),
        (
            case(
                "a role in aws-cn",
                "arn:aws-cn:iam::111122223333:role/x",
                "",
            ),
            true,
        ),
        (
            case(
                "an 11-digit account id",
                "arn:aws:iam::11112222333:role/x",
                "",
            ),
            false,
        ),
        (
            case("a user, not a role", "arn:aws:iam::111122223333:user/x", ""),
            false,
        ),
        (
            case(
                "an STS ARN",
                "arn:aws:sts::111122223333:assumed-role/x/y",
                "",
            ),
            false,
        ),
        (
            case(
                "a role name with a space",
                "arn:aws:iam::111122223333:role/a b",
                "",
            ),
            false,
        ),
        (case("an external id without a role", "", "team-a"), false),
        (case("a one-character external id", role, "a"), false),
        (case("an external id with a space", role, "team a"), false),
    ];
    for (budget, accepted) in [(0, false), (1, true), (100, true), (101, false)] {
        let mut c = case("budget", "", "");
        c.budget = budget;
        cases.push((c, accepted));
    }
    for (what, selector, accepted) in [
        (
            "matchLabels and matchExpressions",
            json!({
                "matchLabels": { "team": "a" },
                "matchExpressions": [{ "key": "env", "operator": "NotIn", "values": ["dev"] }],
            }),
            true,
        ),
        (
            "Exists without values",
            json!({ "matchExpressions": [{ "key": "team", "operator": "Exists" }] }),
            true,
        ),
        (
            "In without values",
            json!({ "matchExpressions": [{ "key": "team", "operator": "In" }] }),
            false,
        ),
        (
            "Exists with values",
            json!({ "matchExpressions": [{ "key": "team", "operator": "Exists", "values": ["a"] }] }),
            false,
        ),
        (
            "an unknown operator",
            json!({ "matchExpressions": [{ "key": "team", "operator": "Equals", "values": ["a"] }] }),
            false,
        ),
    ] {
        let mut c = case(what, "", "");
        c.namespace_selector = selector;
        cases.push((c, accepted));
    }

    let started = Instant::now();
    let mut report = vec![];
    let mut wrong = vec![];
    for (case, expected) in &cases {
        // Dry runs only: the names need not be unique, but are (nothing shared).
        let name = format!("chart-values-{}", random_suffix(6));
        let values = merged(
            base_values(),
            json!({ "defaultAccount": {
                "name": name,
                "roleArn": case.role_arn,
                "externalId": case.external_id,
                "lifecycleAttemptBudget": case.budget,
                "namespaceSelector": case.namespace_selector,
            } }),
        );
        let chart = render_raw("acct", "connect-operator", &values, &[]).await;
        let server =
            dry_run_apply(&serde_yaml::to_string(&plain_manifest(&name, case)).expect("YAML"))
                .await;
        let label = format!("{} (budget {})", case.what, case.budget);
        if chart.success {
            // What the chart renders is what the API server gets.
            let docs = parse_yaml_stream(&chart.stdout);
            let rendered: Vec<&Value> = docs.iter().filter(|d| kind_of(d) == ACCOUNT).collect();
            assert_eq!(rendered.len(), 1, "{label}");
            let applied = dry_run_apply(&serde_yaml::to_string(rendered[0]).expect("YAML")).await;
            assert!(
                applied.success,
                "{label}: the API server refused the chart's account:\n{}{}",
                applied.stdout, applied.stderr
            );
        }
        if chart.success != *expected || server.success != *expected {
            wrong.push(format!(
                "{label}: expected {}, helm {} ({}), API server {} ({})",
                if *expected { "accepted" } else { "refused" },
                chart.success,
                chart.stderr.trim(),
                server.success,
                server.stderr.trim()
            ));
        }
        report.push(format!(
            "  {:<8} {label}: {}",
            if *expected { "accepted" } else { "refused" },
            if chart.success {
                String::new()
            } else {
                chart
                    .stderr
                    .lines()
                    .find(|line| line.contains("at '/") || line.contains("requires"))
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            }
        ));
    }
    assert!(
        wrong.is_empty(),
        "helm and the CRD disagree:\n{}",
        wrong.join("\n")
    );
    eprintln!(
        "{} account values: helm and the API server agree ({:.1?}):\n{}",
        cases.len(),
        started.elapsed(),
        report.join("\n")
    );
}

/// `helm install` creates the account with Helm's ownership; `helm uninstall` keeps it (the
/// resource policy) while removing the operator; the same release adopts it again on a new
/// install; another release may not take it; an account Helm did not create blocks the
/// install with Helm's message (what the chart README tells users to do about it).
#[tokio::test]
async fn chart_default_account_is_kept_on_uninstall_and_adopted_by_the_same_release_only() {
    let client = client().await;
    let namespace = TestNamespace::create(&client, "chart-keep").await.name;
    let kubeconfig = plane().await.kubeconfig.display().to_string();
    let chart = chart_dir().display().to_string();
    let accounts = account_api(&client);
    let account = format!("chart-keep-{}", random_suffix(6));
    let release = release_name("keep");
    let account_set = format!("defaultAccount.name={account}");
    let image_set = format!("image.repository={IMAGE_REPOSITORY}");
    let install = |release: String| {
        let (kubeconfig, chart, namespace) = (kubeconfig.clone(), chart.clone(), namespace.clone());
        let (account_set, image_set) = (account_set.clone(), image_set.clone());
        async move {
            helm(&[
                "install",
                &release,
                &chart,
                "--kubeconfig",
                &kubeconfig,
                "--namespace",
                &namespace,
                // The shared control plane has the CRDs; no admission policies for every
                // other test's objects.
                "--skip-crds",
                "--set",
                &image_set,
                "--set",
                "aws.region=us-east-1",
                "--set",
                &account_set,
                "--set",
                "deletionProtection.admissionPolicy=false",
            ])
            .await
        }
    };
    let uninstall = |release: String| {
        let (kubeconfig, namespace) = (kubeconfig.clone(), namespace.clone());
        async move {
            helm(&[
                "uninstall",
                &release,
                "--kubeconfig",
                &kubeconfig,
                "--namespace",
                &namespace,
            ])
            .await
        }
    };

    let installed = install(release.clone()).await;
    assert!(installed.success, "helm install:\n{}", installed.text());
    let created = accounts.get(&account).await.expect("the chart's account");
    let annotations = created.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");
    assert_eq!(annotations["meta.helm.sh/release-name"], release);
    assert_eq!(annotations["meta.helm.sh/release-namespace"], namespace);

    let removed = uninstall(release.clone()).await;
    assert!(removed.success, "helm uninstall:\n{}", removed.text());
    assert!(
        removed.text().contains("kept due to the resource policy")
            && removed.text().contains(&account),
        "helm uninstall does not report the kept account:\n{}",
        removed.text()
    );
    let kept = accounts
        .get_opt(&account)
        .await
        .expect("reading the account")
        .unwrap_or_else(|| panic!("helm uninstall deleted ConnectAccount/{account}"));
    assert_eq!(kept.metadata.uid, created.metadata.uid, "the same object");
    assert!(kept.metadata.deletion_timestamp.is_none());
    let deployment =
        test_kit::kubectl(&["get", "deployments", "-n", &namespace, "-o", "name"]).await;
    assert!(
        deployment.success && deployment.stdout.trim().is_empty(),
        "the operator itself is uninstalled: {deployment:?}"
    );

    // Another release may not take it over; the same release adopts it again.
    let other = install(release_name("keep-other")).await;
    assert!(!other.success, "another release took over the kept account");
    assert!(
        other
            .text()
            .contains(&format!("ConnectAccount \"{account}\" in namespace \"\" exists and cannot be imported into the current release")),
        "{}",
        other.text()
    );
    let again = install(release.clone()).await;
    assert!(
        again.success,
        "the same release does not adopt its kept account:\n{}",
        again.text()
    );
    assert!(uninstall(release.clone()).await.success);

    // An account of that name Helm did not create blocks the install, with Helm's message.
    accounts
        .delete(&account, &DeleteParams::default())
        .await
        .expect("deleting the kept account");
    test_kit::connect::wait_gone(&accounts, &account, test_kit::DEADLINE).await;
    let by_hand: DynamicObject =
        serde_json::from_value(plain_manifest(&account, &case("by hand", "", "")))
            .expect("an account");
    accounts
        .create(&PostParams::default(), &by_hand)
        .await
        .expect("creating the account by hand");
    let blocked = install(release.clone()).await;
    assert!(
        !blocked.success,
        "helm install took over an account it did not create"
    );
    assert!(
        blocked
            .text()
            .contains("exists and cannot be imported into the current release"),
        "{}",
        blocked.text()
    );
    accounts
        .delete(&account, &DeleteParams::default())
        .await
        .expect("deleting the account");
    eprintln!(
        "ConnectAccount/{account}: kept by helm uninstall, adopted by {release} again, refused \
         to another release and over an account created by hand"
    );
}
