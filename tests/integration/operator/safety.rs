//! Safety controls: a paused object makes no AWS call at all (over several drift
//! intervals, while someone changes its instance), says so in `Paused`, keeps its `Ready`,
//! resumes at once when unpaused and keeps its finalizer when deleted while paused; a
//! protected object is never deleted by the operator (Stalled `DeletionProtected`, zero
//! DeleteInstance) and is deleted as soon as protection is lifted; with the chart's
//! admission policies applied, `kubectl delete` of a protected object and of the CRD is
//! denied with a message saying how to lift it, while unprotected objects delete normally.

use aws_sdk_connect::types::InstanceAttributeType;
use kube::api::DynamicObject;
use serde_json::{Value, json};

use test_kit::connect::{
    basic_spec, condition, create, describe, has_finalizer, is_true, manifest, wait_gone,
};
use test_kit::{DEADLINE, kubectl, kubectl_ok, kubectl_with_input, wait_until};

use super::{Scenario, set_attribute_behind_the_back, tally};

const PAUSED: &str = "connect.operators.dev/paused";

fn instance_id(object: &DynamicObject) -> String {
    object
        .data
        .pointer("/status/instanceId")
        .and_then(Value::as_str)
        .expect("instanceId in status")
        .to_owned()
}

async fn set_outbound_behind_the_back(s: &Scenario, id: &str, value: bool) {
    set_attribute_behind_the_back(s, id, InstanceAttributeType::OutboundCalls, value).await;
}

async fn annotate_paused(s: &Scenario, name: &str, paused: bool) {
    let value = if paused { json!("true") } else { Value::Null };
    s.merge_patch(
        name,
        json!({ "metadata": { "annotations": { PAUSED: value } } }),
    )
    .await;
}

#[tokio::test]
async fn paused_objects_make_no_aws_call_and_resume_when_unpaused() {
    let s = Scenario::start(
        "paused_objects_make_no_aws_call_and_resume_when_unpaused",
        &[],
        &[("drift-interval", "1s")],
    )
    .await;
    s.kubectl_apply(&manifest("quiet", basic_spec("quiet-e2e")))
        .await;
    let ready = s.wait_ready("quiet").await;
    let id = instance_id(&ready);
    let ready_before = condition(&ready, "Ready").expect("Ready");

    annotate_paused(&s, "quiet", true).await;
    let paused = s
        .wait_for("quiet", "Paused=True", |o| {
            is_true(o, "Paused", Some("PausedByAnnotation"))
        })
        .await;
    assert_eq!(
        condition(&paused, "Ready"),
        Some(ready_before),
        "Ready kept as it was"
    );
    set_outbound_behind_the_back(&s, &id, true).await;
    s.sim.clear_calls().await;
    // A spec change, which the operator does take up (proof that it is at work): not a
    // single AWS call.
    let reconciles = s.reconciles().await;
    s.merge_patch("quiet", json!({ "spec": { "tags": { "team": "paused" } } }))
        .await;
    s.wait_reconciles(
        reconciles,
        1.0,
        "the paused object's spec change reconciled",
    )
    .await;
    let calls = s.connect_calls().await;
    assert!(
        calls.is_empty(),
        "a paused object called AWS: {:?}",
        tally(&calls)
    );

    // Unpaused: it resumes at once and converges what changed meanwhile.
    annotate_paused(&s, "quiet", false).await;
    let object = s.wait_ready("quiet").await;
    assert!(!is_true(&object, "Paused", None), "{}", describe(&object));
    let instance = s.sim.instance(&id).await.expect("instance");
    assert_eq!(
        instance
            .attributes
            .get("OUTBOUND_CALLS")
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(
        instance.tags.get("team").map(String::as_str),
        Some("paused")
    );

    // Deleted while paused: the finalizer stays and an event says why; unpaused, it goes.
    annotate_paused(&s, "quiet", true).await;
    s.wait_for("quiet", "Paused=True", |o| is_true(o, "Paused", None))
        .await;
    let output = kubectl_with_input(
        &[
            "delete",
            "connectinstance",
            "quiet",
            "-n",
            &s.namespace,
            "--wait=false",
        ],
        None,
    )
    .await;
    assert!(output.success, "{output:?}");
    // The operator takes up the deletion (it says why it waits) and keeps the finalizer.
    let events = test_kit::wait_until("the DeletionPaused event", DEADLINE, || async {
        let events = s.event_summaries("quiet").await;
        if events.iter().any(|(_, r, _)| r == "DeletionPaused") {
            Ok(events)
        } else {
            Err(format!("{events:?}"))
        }
    })
    .await;
    let object = s.get("quiet").await;
    assert!(has_finalizer(&object), "{}", describe(&object));
    assert!(s.sim.calls_of("DeleteInstance").await.is_empty());
    assert!(
        events.iter().any(|(_, r, _)| r == "DeletionPaused"),
        "{events:?}"
    );
    annotate_paused(&s, "quiet", false).await;
    wait_gone(&s.api, "quiet", DEADLINE).await;
    assert_eq!(s.sim.calls_of("DeleteInstance").await.len(), 1);
}

#[tokio::test]
async fn an_object_paused_from_its_creation_is_released_under_retain_without_aws() {
    let s = Scenario::start(
        "an_object_paused_from_its_creation_is_released_under_retain_without_aws",
        &[],
        &[],
    )
    .await;
    // Paused before the operator ever saw it: its only status is the Paused condition.
    let mut object = manifest("never-started", basic_spec("never-started-e2e"));
    object["metadata"]["annotations"] = json!({ PAUSED: "true" });
    object["spec"]["deletionPolicy"] = json!("Retain");
    create(&s.api, &object).await.expect("create");
    let paused = s
        .wait_for("never-started", "Paused=True", |o| {
            is_true(o, "Paused", None)
        })
        .await;
    assert!(
        condition(&paused, "Ready").is_none(),
        "{}",
        describe(&paused)
    );
    // Releasing under Retain needs no AWS call, so pausing does not hold it; the status
    // written as it goes (without Paused) must still be one the schema accepts.
    kubectl_ok(&[
        "delete",
        "-n",
        &s.namespace,
        "connectinstance",
        "never-started",
        "--wait=false",
    ])
    .await;
    wait_gone(&s.api, "never-started", DEADLINE).await;
    assert!(
        s.connect_calls().await.is_empty(),
        "a Retain object called AWS"
    );
}

#[tokio::test]
async fn a_protected_object_is_never_deleted_by_the_operator_until_protection_is_lifted() {
    let s = Scenario::start(
        "a_protected_object_is_never_deleted_by_the_operator_until_protection_is_lifted",
        &[],
        // A protected deletion is looked at again each drift interval: short, so that the
        // proof of life below comes within seconds.
        &[("drift-interval", "2s")],
    )
    .await;
    s.kubectl_apply(&manifest("guarded", basic_spec("guarded-e2e")))
        .await;
    let ready = s.wait_ready("guarded").await;
    let id = instance_id(&ready);
    // Into deletion past any admission policy (as when the CRD itself is deleted, or on a
    // cluster without the policies): paused first so that the deletion waits, protected
    // while it is being deleted, then unpaused.
    annotate_paused(&s, "guarded", true).await;
    s.wait_for("guarded", "Paused=True", |o| is_true(o, "Paused", None))
        .await;
    let output = kubectl_with_input(
        &[
            "delete",
            "connectinstance",
            "guarded",
            "-n",
            &s.namespace,
            "--wait=false",
        ],
        None,
    )
    .await;
    assert!(output.success, "{output:?}");
    s.merge_patch("guarded", json!({ "spec": { "deletionProtection": true } }))
        .await;
    annotate_paused(&s, "guarded", false).await;
    let object = s
        .wait_for("guarded", "Stalled=True/DeletionProtected", |o| {
            is_true(o, "Stalled", Some("DeletionProtected"))
        })
        .await;
    let message = condition(&object, "Stalled")
        .map(|c| c.message)
        .unwrap_or_default();
    assert!(message.contains("deletionProtection to false"), "{message}");
    // It keeps looking at the pending deletion (proof that it is at work) and never deletes.
    let reconciles = s.reconciles().await;
    s.wait_reconciles(reconciles, 2.0, "the protected deletion looked at again")
        .await;
    assert!(has_finalizer(&s.get("guarded").await));
    assert!(s.sim.calls_of("DeleteInstance").await.is_empty());
    assert!(s.sim.instance(&id).await.is_some());

    // Lifted: deleted at once.
    s.merge_patch(
        "guarded",
        json!({ "spec": { "deletionProtection": false } }),
    )
    .await;
    wait_gone(&s.api, "guarded", DEADLINE).await;
    assert_eq!(s.sim.calls_of("DeleteInstance").await.len(), 1);
    assert!(s.sim.instance(&id).await.is_none());
}

/// The chart's deletion-protection policies, rendered by helm and applied to the shared
/// control plane, the one over ConnectInstances bound to `namespace` only.
async fn apply_chart_policies(namespace: &str) {
    let rendered = crate::chart::template_only(
        "templates/deletion-protection.yaml",
        &[
            ("aws.region", "us-east-1"),
            ("image.repository", "registry.example.com/connect-operator"),
        ],
    )
    .await;
    // The shared control plane serves every other test too, some of which delete protected
    // objects to see the operator hold them: the policy over ConnectInstances is bound to
    // this test's namespace only (the chart's binding matches every namespace). The CRD
    // policy stays cluster-wide; no test deletes the operator's CRDs.
    let rendered = rendered.replace(
        "  policyName: connect-operator-deletion-protection\n",
        &format!(
            "  policyName: connect-operator-deletion-protection\n  matchResources:\n    namespaceSelector:\n      matchLabels:\n        kubernetes.io/metadata.name: {namespace}\n"
        ),
    );
    assert!(
        rendered.contains(&format!("kubernetes.io/metadata.name: {namespace}")),
        "the binding was scoped to the test's namespace:\n{rendered}"
    );
    let output = kubectl_with_input(&["apply", "--server-side", "-f", "-"], Some(&rendered)).await;
    assert!(
        output.success,
        "applying the policies: {output:?}\n{rendered}"
    );
}

#[tokio::test]
async fn admission_policies_deny_deleting_protected_objects_and_the_crd() {
    let s = Scenario::start(
        "admission_policies_deny_deleting_protected_objects_and_the_crd",
        &[],
        &[],
    )
    .await;
    apply_chart_policies(&s.namespace).await;
    let mut protected = basic_spec("protected-e2e");
    protected["deletionProtection"] = json!(true);
    s.kubectl_apply(&manifest("protected", protected)).await;
    s.kubectl_apply(&manifest("plain", basic_spec("plain-e2e")))
        .await;
    s.wait_ready("protected").await;
    s.wait_ready("plain").await;

    // The policy takes effect within moments of being created.
    let denied = wait_until(
        "kubectl delete of a protected object denied",
        DEADLINE,
        || async {
            let output = kubectl(&[
                "delete",
                "connectinstance",
                "protected",
                "-n",
                &s.namespace,
                "--wait=false",
            ])
            .await;
            if output.success {
                Err("deleted!".to_owned())
            } else if output.stderr.contains("deletionProtection") {
                Ok(output.stderr)
            } else {
                Err(output.stderr)
            }
        },
    )
    .await;
    assert!(
        denied.contains("kubectl patch connectinstance protected"),
        "{denied}"
    );
    // What a namespace deletion does (delete every object in it) is denied the same way.
    let all = kubectl(&[
        "delete",
        "connectinstances",
        "--all",
        "-n",
        &s.namespace,
        "--wait=false",
    ])
    .await;
    assert!(!all.success, "{all:?}");
    assert!(all.stderr.contains("deletionProtection"), "{all:?}");
    let object = s.get("protected").await;
    assert!(
        object.metadata.deletion_timestamp.is_none(),
        "{}",
        describe(&object)
    );
    // The unprotected object went with --all, and is deleted normally.
    wait_gone(&s.api, "plain", DEADLINE).await;

    // Each of the operator's CRDs (server dry run: admission runs, nothing is deleted),
    // with a message that says what deleting it would destroy.
    for (crd, consequence) in [
        (
            "connectinstances.connect.operators.dev",
            "deletes every ConnectInstance",
        ),
        (
            "connectaccounts.connect.operators.dev",
            "deletes every ConnectAccount",
        ),
        (
            "connectattemptledgers.connect.operators.dev",
            "the only record of the instance creations and deletions",
        ),
    ] {
        let denied = kubectl(&["delete", "crd", crd, "--dry-run=server"]).await;
        assert!(!denied.success, "{crd}: {denied:?}");
        assert!(
            denied.stderr.contains(&format!(
                "kubectl annotate crd {crd} connect.operators.dev/allow-crd-deletion=true"
            )),
            "{crd}: {denied:?}"
        );
        assert!(denied.stderr.contains(consequence), "{crd}: {denied:?}");
    }
    // Another CRD is none of the policy's business: its deletion is admitted.
    let group = format!("{}.example.com", s.namespace);
    let foreign_crd = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.{group}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {{type: object}}}}\n"
    );
    let created = kubectl_with_input(&["apply", "-f", "-"], Some(&foreign_crd)).await;
    assert!(created.success, "{created:?}");
    let foreign = kubectl(&[
        "delete",
        "crd",
        &format!("widgets.{group}"),
        "--dry-run=server",
    ])
    .await;
    assert!(foreign.success, "{foreign:?}");

    let calls = s.connect_calls().await;
    let deletes: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "DeleteInstance")
        .collect();
    assert_eq!(
        deletes.len(),
        1,
        "only the unprotected one: {:?}",
        tally(&calls)
    );
    let protected_id = instance_id(&object);
    assert!(
        deletes
            .iter()
            .all(|c| c.instance_id.as_deref() != Some(protected_id.as_str())),
        "{deletes:?}"
    );

    // Lifting protection makes the delete go through.
    s.merge_patch(
        "protected",
        json!({ "spec": { "deletionProtection": false } }),
    )
    .await;
    let output = kubectl(&[
        "delete",
        "connectinstance",
        "protected",
        "-n",
        &s.namespace,
        "--wait=false",
    ])
    .await;
    assert!(output.success, "{output:?}");
    wait_gone(&s.api, "protected", DEADLINE).await;
}
