//! The part of the decision table for an ACTIVE instance against the spec. Under `Manage`:
//! the UpdateInstanceAttribute, TagResource and UntagResource calls that bring it there
//! (only the differences, attributes first, each attribute write keyed by the generation
//! and the drift epoch), sent in one step with the configuration writes, and `Available`
//! once they succeeded, with an `Updated` event naming what changed. Under `ObserveOnly`:
//! nothing written, the differences reported as `Drifted`, an event for each change of
//! them. And the `Drifted` report itself, for people: the operator's own uid tag is not
//! part of the spec and never listed.

use kube::runtime::events::EventType;

use super::{
    Decision, Described, Failures, Inputs, Jitter, Then, Write, configuration, drift_epoch,
    record_observed, settled,
};
use crate::api::{AttributeType, UID_TAG};
use crate::aws::token;
use crate::conditions::State;
use crate::reconciler::plan::{self, TagChanges};

/// Under `Manage`: the attribute, tag and configuration writes that bring the instance to
/// the spec, `Updating` while they are sent; with none to send, the instance is
/// `Available` (or `ConfigurationFailed`, when AWS refused to list part of the
/// configuration).
pub(super) fn converge(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let observed = &described.instance;
    let id = &observed.id;
    let mut writes = convergence_writes(inputs, described);
    writes.extend(
        configuration::configuration_changes(inputs, described)
            .into_iter()
            .map(Write::Configure),
    );
    if writes.is_empty() {
        if described
            .configuration
            .as_ref()
            .is_some_and(|c| !c.refused.is_empty())
        {
            return configuration::configured(inputs, described, &[], &[]);
        }
        return converged(inputs, described);
    }
    let tag_writes = writes
        .iter()
        .map(|w| match w {
            Write::Tag(set) => set.len(),
            Write::Untag(keys) => keys.len(),
            _ => 0,
        })
        .sum::<usize>();
    let attribute_writes = writes
        .iter()
        .filter(|w| matches!(w, Write::UpdateAttribute { .. }))
        .count();
    let configuration_writes = writes
        .iter()
        .filter(|w| matches!(w, Write::Configure(_)))
        .count();
    let message = format!(
        "Applying {attribute_writes} attribute change(s), {tag_writes} tag change(s) and {configuration_writes} configuration change(s) to instance {id}"
    );
    Decision {
        writes,
        // Transient under Manage: the writes that follow clear it.
        drift: drift_report(inputs, described),
        ..Decision::new(inputs, Then::ObserveAgain)
            .state(State::Updating, message)
            .record(|s| record_observed(s, observed))
    }
}

/// The attribute and tag writes succeeded (or there were none): `Available`, with an
/// `Updated` event naming what the writes changed.
pub(super) fn converged(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let message = format!(
        "Instance {} is ACTIVE and matches the spec",
        described.instance.id
    );
    let changed = described_changes(inputs, described);
    let mut decision = Decision::new(inputs, settled(inputs, State::Available))
        .state(State::Available, message)
        .record(|s| {
            record_observed(s, &described.instance);
            configuration::record_configuration(inputs, s, described, &[]);
        })
        .failures(Failures::Reset);
    if !changed.is_empty() {
        decision = decision.event(
            EventType::Normal,
            "Updated",
            format!("Applied {}", changed.join(", ")),
        );
    }
    super::replica::after_converged(inputs, described, decision)
}

/// `ObserveOnly` and ACTIVE: report, never write. `Drifted` lists the differences and an
/// event marks each change of them.
pub(super) fn observed_only(inputs: &Inputs<'_>, described: &Described) -> Decision {
    let observed = &described.instance;
    let drift = drift_report(inputs, described);
    let before = inputs
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == crate::conditions::types::DRIFTED && c.status == "True")
        .map(|c| c.message.clone());
    let message = match &drift {
        None => format!(
            "Instance {} is ACTIVE and matches the spec (ObserveOnly: nothing is written)",
            observed.id
        ),
        Some(_) => format!(
            "Instance {} is ACTIVE; it differs from the spec (see Drifted). ObserveOnly: nothing is written",
            observed.id
        ),
    };
    let mut decision = Decision {
        drift: drift.clone(),
        ..Decision::new(
            inputs,
            Then::Requeue(
                plan::retry_after(&inputs.retry, State::Observed, 0),
                Jitter::Spread,
            ),
        )
        .state(State::Observed, message)
        .record(|s| record_observed(s, observed))
        .failures(Failures::Reset)
    };
    if drift != before {
        decision = match drift {
            Some(list) => decision.event(EventType::Warning, "DriftDetected", list),
            None => decision.event(
                EventType::Normal,
                "DriftResolved",
                "The instance matches the spec again",
            ),
        };
    }
    decision
}

/// How AWS differs from the spec, for people: each managed attribute with AWS's and the
/// spec's value, each tag to add, change or remove. The operator's own uid tag is not part
/// of the spec and never listed. `None` when they agree.
fn drift_report(inputs: &Inputs<'_>, described: &Described) -> Option<String> {
    let mut out = vec![];
    if let Some(observed) = &described.attributes {
        for (attribute, wanted) in inputs.spec.desired_attributes() {
            let actual = observed.get(&attribute);
            if actual != Some(&wanted) {
                let actual = actual.map_or_else(|| "unset".to_owned(), bool::to_string);
                out.push(format!(
                    "{}: AWS {actual}, spec {wanted}",
                    attribute.as_aws_str()
                ));
            }
        }
    }
    if let Some(observed) = &described.tags {
        for (key, wanted) in &inputs.spec.tags {
            match observed.get(key) {
                Some(actual) if actual == wanted => {}
                Some(actual) => out.push(format!("tag {key}: AWS {actual:?}, spec {wanted:?}")),
                None => out.push(format!("tag {key}: missing in AWS, spec {wanted:?}")),
            }
        }
        for (key, actual) in observed {
            if !inputs.spec.tags.contains_key(key) && !key.starts_with("aws:") && key != UID_TAG {
                out.push(format!("tag {key}: AWS {actual:?}, not in the spec"));
            }
        }
    }
    if let Some(observed) = &described.configuration {
        out.extend(configuration::configuration_drift(
            inputs.spec,
            described.instance.alias.as_deref().unwrap_or_default(),
            &inputs.status.storage_configs,
            observed,
        ));
    }
    (!out.is_empty()).then(|| out.join("; "))
}

/// The attribute and tag writes that bring an ACTIVE instance to the spec, in order:
/// attributes (each with its token), then TagResource, then UntagResource.
fn convergence_writes(inputs: &Inputs<'_>, described: &Described) -> Vec<Write> {
    let (attributes, tags) = differences(inputs, described);
    let epoch = drift_epoch(inputs.now_epoch_seconds, inputs.retry.drift_interval);
    let mut writes: Vec<Write> = attributes
        .into_iter()
        .map(|(attribute, value)| Write::UpdateAttribute {
            attribute,
            value,
            client_token: token::attribute_token(
                inputs.uid,
                attribute,
                value,
                inputs.generation,
                epoch,
            ),
        })
        .collect();
    if !tags.set.is_empty() {
        writes.push(Write::Tag(tags.set));
    }
    if !tags.remove.is_empty() {
        writes.push(Write::Untag(tags.remove));
    }
    writes
}

/// How the instance's attributes and tags differ from the spec: each attribute value to
/// write, and the tags to set and to remove.
fn differences(
    inputs: &Inputs<'_>,
    described: &Described,
) -> (Vec<(AttributeType, bool)>, TagChanges) {
    let attributes = described
        .attributes
        .as_ref()
        .map(|observed| plan::attribute_changes(&inputs.spec.desired_attributes(), observed))
        .unwrap_or_default();
    let tags = described
        .tags
        .as_ref()
        .map(|observed| plan::tag_changes(&inputs.spec.tags, inputs.uid, observed))
        .unwrap_or_default();
    (attributes, tags)
}

/// What the writes of the previous step changed, for the `Updated` event: the differences
/// between the spec and the instance as it was described before them.
fn described_changes(inputs: &Inputs<'_>, described: &Described) -> Vec<String> {
    let (attributes, tags) = differences(inputs, described);
    attributes
        .iter()
        .map(|(a, v)| format!("{}={v}", a.as_aws_str()))
        .chain(tags.set.keys().map(|k| format!("tag {k}")))
        .chain(tags.remove.iter().map(|k| format!("untag {k}")))
        .collect()
}
