//! Lint, schema and CRDs: `helm lint --strict` passes with every `ci/*.yaml` and fails on a
//! value of the wrong type; bad values fail `helm template` and `helm install
//! --dry-run=server` with the schema's or the chart's message; the chart's CRDs are
//! byte-identical to the generated `crds/`, and `hack/sync-chart-crds.sh --check` notices
//! when they drift.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use test_kit::{TestNamespace, client};

use super::helm::{helm, plane};
use super::{IMAGE_REPOSITORY, KUBE_VERSION, chart_dir, repo_root};

#[tokio::test]
async fn chart_lints_strictly_with_every_ci_values_file() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("charts/connect-operator/ci")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "ci/ has too few values files: {files:?}");
    let chart = chart_dir().display().to_string();
    for file in &files {
        let file = file.display().to_string();
        let run = helm(&[
            "lint",
            "--strict",
            &chart,
            "-f",
            &file,
            "--kube-version",
            KUBE_VERSION,
        ])
        .await;
        assert!(run.success, "helm lint --strict -f {file}:\n{}", run.text());
        assert!(
            run.stdout.contains("1 chart(s) linted, 0 chart(s) failed"),
            "{}",
            run.text()
        );
        // Templates render with these values too (lint does not fail on a `fail` call in
        // every helm version).
        let rendered = helm(&[
            "template",
            "ci",
            &chart,
            "-f",
            &file,
            "--kube-version",
            KUBE_VERSION,
        ])
        .await;
        assert!(
            rendered.success,
            "helm template -f {file}:\n{}",
            rendered.text()
        );
    }
    // Lint sees the values: a wrong type fails it.
    let image = format!("image.repository={IMAGE_REPOSITORY}");
    let bad = helm(&[
        "lint",
        "--strict",
        &chart,
        "--set",
        &image,
        "--set",
        "aws.region=us-east-1",
        "--set",
        "replicaCount=two",
        "--kube-version",
        KUBE_VERSION,
    ])
    .await;
    assert!(
        !bad.success,
        "helm lint accepted replicaCount=two:\n{}",
        bad.text()
    );
    assert!(bad.text().contains("/replicaCount"), "{}", bad.text());
}

#[tokio::test]
async fn chart_rejects_bad_values_with_a_clear_message() {
    let client = client().await;
    let namespace = TestNamespace::create(&client, "chart-values").await.name;
    let kubeconfig = plane().await.kubeconfig.display().to_string();
    let chart = chart_dir().display().to_string();
    let image = format!("image.repository={IMAGE_REPOSITORY}");
    let image = ["--set", image.as_str()];
    let region = [&image[..], &["--set", "aws.region=us-east-1"]].concat();
    let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        (
            "replicaCount=two",
            [&region[..], &["--set", "replicaCount=two"]].concat(),
            vec!["/replicaCount", "got string, want integer"],
        ),
        (
            "unknown log format",
            [&region[..], &["--set", "logging.format=xml"]].concat(),
            vec!["/logging/format", "value must be one of 'json', 'text'"],
        ),
        (
            "missing aws.region",
            image.to_vec(),
            vec!["aws.region is required"],
        ),
        (
            "malformed aws.region",
            [&image[..], &["--set", "aws.region=US East"]].concat(),
            vec!["/aws/region"],
        ),
        (
            "missing image.repository (the chart has no default image)",
            vec!["--set", "aws.region=us-east-1"],
            vec![
                "image.repository is required",
                "set image.repository to where you pushed the image built by `make image`",
            ],
        ),
        (
            "image.repository with a digest in it",
            [
                &region[..],
                &["--set", "image.repository=registry.example.com/op@sha256"],
            ]
            .concat(),
            vec!["/image/repository"],
        ),
        (
            "misspelt key",
            [&region[..], &["--set", "replicas=2"]].concat(),
            vec!["additional properties 'replicas' not allowed"],
        ),
        (
            "unknown nested key",
            [&region[..], &["--set", "aws.regoin=eu-west-2"]].concat(),
            vec!["/aws", "additional properties 'regoin' not allowed"],
        ),
        (
            "bad duration",
            [
                &region[..],
                &["--set", "reconcile.driftInterval=ten minutes"],
            ]
            .concat(),
            vec!["/reconcile/driftInterval"],
        ),
        (
            "two replicas without leader election",
            [
                &region[..],
                &[
                    "--set",
                    "replicaCount=2",
                    "--set",
                    "leaderElection.enabled=false",
                ],
            ]
            .concat(),
            vec!["leaderElection.enabled=false with replicaCount=2"],
        ),
        (
            "grace period not above the AWS timeout",
            [&region[..], &["--set", "terminationGracePeriodSeconds=30"]].concat(),
            vec!["terminationGracePeriodSeconds (30) must be greater than aws.timeout (30s)"],
        ),
        (
            "default account roleArn with an 11-digit account id",
            [
                &region[..],
                &[
                    "--set",
                    "defaultAccount.roleArn=arn:aws:iam::11112222333:role/connect-operator",
                ],
            ]
            .concat(),
            vec!["/defaultAccount/roleArn", "does not match pattern"],
        ),
        (
            "default account roleArn of a user",
            [
                &region[..],
                &[
                    "--set",
                    "defaultAccount.roleArn=arn:aws:iam::111122223333:user/connect-operator",
                ],
            ]
            .concat(),
            vec!["/defaultAccount/roleArn", "does not match pattern"],
        ),
        (
            "default account budget 0",
            [
                &region[..],
                &["--set", "defaultAccount.lifecycleAttemptBudget=0"],
            ]
            .concat(),
            vec![
                "/defaultAccount/lifecycleAttemptBudget",
                "minimum: got 0, want 1",
            ],
        ),
        (
            "default account budget 101",
            [
                &region[..],
                &["--set", "defaultAccount.lifecycleAttemptBudget=101"],
            ]
            .concat(),
            vec![
                "/defaultAccount/lifecycleAttemptBudget",
                "maximum: got 101, want 100",
            ],
        ),
        (
            "default account externalId without roleArn",
            [&region[..], &["--set", "defaultAccount.externalId=team-a"]].concat(),
            vec!["defaultAccount.externalId requires defaultAccount.roleArn"],
        ),
        (
            "default account namespaceSelector with an unknown operator",
            [
                &region[..],
                &[
                    "--set",
                    "defaultAccount.namespaceSelector.matchExpressions[0].key=team",
                    "--set",
                    "defaultAccount.namespaceSelector.matchExpressions[0].operator=Equals",
                ],
            ]
            .concat(),
            vec!["/defaultAccount/namespaceSelector/matchExpressions/0/operator"],
        ),
    ];
    let mut report = vec![];
    for (what, values, expected) in &cases {
        // helm template (client side) and helm install against the real API server.
        let template = helm(
            &[
                &["template", "bad", &chart, "--kube-version", KUBE_VERSION][..],
                values.as_slice(),
            ]
            .concat(),
        )
        .await;
        let install = helm(
            &[
                &[
                    "install",
                    "bad",
                    &chart,
                    "--dry-run=server",
                    "--kubeconfig",
                    &kubeconfig,
                    "--namespace",
                    &namespace,
                ][..],
                values.as_slice(),
            ]
            .concat(),
        )
        .await;
        for (command, run) in [("helm template", &template), ("helm install", &install)] {
            assert!(
                !run.success,
                "{command} accepted bad values ({what}): {values:?}"
            );
            for needle in expected {
                assert!(
                    run.stderr.contains(needle),
                    "{command} with {what} ({values:?}) failed without {needle:?}:\n{}",
                    run.text()
                );
            }
        }
        report.push(format!(
            "  {what}: {}",
            install.stderr.lines().collect::<Vec<_>>().join(" | ")
        ));
    }
    // Control: the same helm install with good values passes the same path. The shared
    // control plane already has a ConnectAccount/default that Helm did not create (which a
    // real install refuses to take over; accounts.rs), so the control names its own.
    let good = helm(&[
        "install",
        "good",
        &chart,
        "--dry-run=server",
        "--kubeconfig",
        &kubeconfig,
        "--namespace",
        &namespace,
        "--set",
        image[1],
        "--set",
        "aws.region=us-east-1",
        "--set",
        "defaultAccount.name=chart-values-control",
    ])
    .await;
    assert!(
        good.success,
        "helm install --dry-run=server with good values:\n{}",
        good.text()
    );
    eprintln!(
        "bad values rejected by helm install:\n{}",
        report.join("\n")
    );
}

#[test]
fn chart_crds_are_identical_to_generated_crds() {
    let root = repo_root();
    let check = Command::new("bash")
        .arg(root.join("hack/sync-chart-crds.sh"))
        .arg("--check")
        .output()
        .expect("running hack/sync-chart-crds.sh --check");
    assert!(
        check.status.success(),
        "chart CRDs drifted from crds/:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );

    // The same, byte for byte, in Rust.
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| name.ends_with(".yaml"))
            .collect()
    };
    let generated = root.join("crds");
    let charted = chart_dir().join("crds");
    assert!(!names(&generated).is_empty(), "no CRDs in crds/");
    assert_eq!(names(&generated), names(&charted));
    for name in names(&generated) {
        assert!(
            std::fs::read(generated.join(&name)).expect("crds/")
                == std::fs::read(charted.join(&name)).expect("chart crds/"),
            "{name} differs"
        );
    }

    // The check notices drift: a copy of the layout with one changed byte fails it.
    let scratch = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir_all(scratch.path().join("hack")).expect("hack/");
    std::fs::create_dir_all(scratch.path().join("crds")).expect("crds/");
    std::fs::create_dir_all(scratch.path().join("charts/connect-operator/crds")).expect("chart");
    std::fs::copy(
        root.join("hack/sync-chart-crds.sh"),
        scratch.path().join("hack/sync-chart-crds.sh"),
    )
    .expect("copying the script");
    for name in names(&generated) {
        let text = std::fs::read_to_string(generated.join(&name)).expect("CRD");
        std::fs::write(scratch.path().join("crds").join(&name), &text).expect("copy");
        std::fs::write(
            scratch
                .path()
                .join("charts/connect-operator/crds")
                .join(&name),
            text.replacen("ConnectInstance", "ConnectInstanse", 1),
        )
        .expect("drifted copy");
    }
    let drifted = Command::new("bash")
        .arg(scratch.path().join("hack/sync-chart-crds.sh"))
        .arg("--check")
        .output()
        .expect("running the copied script");
    assert!(!drifted.status.success(), "--check missed a drifted CRD");
    assert!(
        String::from_utf8_lossy(&drifted.stderr).contains("differs from crds/"),
        "{}",
        String::from_utf8_lossy(&drifted.stderr)
    );
}
