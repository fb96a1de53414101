//! Tests of the harness itself: the control plane is what the other suites rely on
//! (RBAC on, service-account tokens issued, CRDs established), and child processes must
//! never outlive their owner.

use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ObjectMeta, PostParams};

use test_kit::process::{ManagedProcess, Spawn};
use test_kit::{TestNamespace, client, control_plane, kubectl, kubectl_ok, simulator::log_dir};

#[tokio::test]
async fn control_plane_enforces_rbac_and_issues_service_account_tokens() {
    let client = client().await;
    let namespace = TestNamespace::create(&client, "harness").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace.name);
    accounts
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some("probe".to_owned()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("creating a service account");

    let token = kubectl_ok(&["create", "token", "probe", "-n", &namespace.name]).await;
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    // The service account has no roles: RBAC must deny it; the admin may do anything.
    let denied = kubectl(&[
        "auth",
        "can-i",
        "list",
        "secrets",
        "-n",
        &namespace.name,
        "--token",
        token,
    ])
    .await;
    assert_eq!(denied.stdout.trim(), "no", "{denied:?}");
    let whoami = kubectl_ok(&[
        "auth",
        "whoami",
        "--token",
        token,
        "-o",
        "jsonpath={.status.userInfo.username}",
    ])
    .await;
    assert_eq!(
        whoami,
        format!("system:serviceaccount:{}:probe", namespace.name)
    );
    let admin = kubectl(&["auth", "can-i", "*", "*", "--all-namespaces"]).await;
    assert_eq!(admin.stdout.trim(), "yes", "{admin:?}");

    let control_plane = tokio::task::spawn_blocking(control_plane)
        .await
        .expect("control plane");
    for crd in &control_plane.crds {
        let established = kubectl_ok(&[
            "get",
            "crd",
            crd,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Established\")].status}",
        ])
        .await;
        assert_eq!(established, "True", "CRD {crd}");
    }
}

#[tokio::test]
async fn managed_process_is_terminated_when_its_owner_lets_go() {
    let dir = log_dir("managed_process_is_terminated_when_its_owner_lets_go");
    let process = ManagedProcess::spawn(Spawn {
        name: "sleep",
        program: std::path::Path::new("sleep"),
        args: vec!["300".into()],
        envs: vec![],
        env_remove: vec![],
        log: &dir.join("sleep.log"),
        capture_stdout: false,
        grace: Duration::from_secs(2),
    })
    .expect("spawning sleep");
    let pid = process.pid();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let is_our_sleep = || {
        std::fs::read_to_string(proc_dir.join("cmdline"))
            .is_ok_and(|cmdline| cmdline.split('\0').take(2).eq(["sleep", "300"]))
    };
    // The watchdog shell replaces itself with the program: the pid we hold is `sleep`.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !is_our_sleep() {
        assert!(
            std::time::Instant::now() < deadline,
            "pid {pid} never became `sleep 300`"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(process);
    // Dropping waits for the exit and reaps the child, so the pid is gone (or reused by an
    // unrelated process, which would not be our `sleep 300`).
    assert!(!is_our_sleep(), "sleep 300 survived its ManagedProcess");
}
