//! What a configuration step leaves behind: what status records of the storage
//! associations and security keys the operator manages (also those found in AWS before they
//! were recorded), and the decision after the writes (`Available`, or `ConfigurationFailed`
//! naming each item AWS refused, with its answer, retried with backoff).

use std::collections::{BTreeMap, BTreeSet};

use kube::runtime::events::EventType;

use super::{ConfigWrite, ObservedConfiguration};
use crate::api::{ConnectInstanceSpec, ConnectInstanceStatus, canonical_key};
use crate::aws::AwsError;
use crate::conditions::State;
use crate::reconciler::decide::{
    Decision, Described, Failures, Inputs, Jitter, Then, record_observed,
};
use crate::reconciler::plan;

/// What a configuration write that succeeded changed in what status records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A storage configuration of this type was associated under this id.
    StorageAssociated(String, String),
    /// The storage configuration of this type was disassociated.
    StorageDisassociated(String),
    /// A security key was associated under this id.
    KeyAssociated(String),
    /// The security key with this association id was disassociated.
    KeyDisassociated(String),
    /// Nothing status records.
    Other,
}

/// What status records after a step: storage resource type → association id for each
/// listed type AWS has (and each recorded type not yet disassociated), and the association
/// ids of the keys that are the spec's.
#[must_use]
pub fn recorded_after(
    spec: &ConnectInstanceSpec,
    recorded_storage: &BTreeMap<String, String>,
    observed: &ObservedConfiguration,
    applied: &[Applied],
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut storage = recorded_storage.clone();
    if let (Some(listed), Some(present)) = (&spec.storage_configs, &observed.storage) {
        for wanted in listed {
            let associations = present.get(&wanted.resource_type);
            let recorded = storage.get(&wanted.resource_type).cloned();
            let kept = associations.and_then(|list| {
                list.iter()
                    .find(|a| Some(&a.association_id) == recorded.as_ref())
                    .or_else(|| list.first())
            });
            match kept {
                Some(kept) => {
                    storage.insert(wanted.resource_type.clone(), kept.association_id.clone());
                }
                None => {
                    storage.remove(&wanted.resource_type);
                }
            }
        }
        // A recorded type that is not listed any more and that AWS no longer has is done.
        storage.retain(|resource_type, id| {
            listed.iter().any(|c| &c.resource_type == resource_type)
                || present
                    .get(resource_type)
                    .is_some_and(|list| list.iter().any(|a| &a.association_id == id))
        });
    }
    let mut keys: Vec<String> = match (&spec.security_keys, &observed.security_keys) {
        (Some(wanted), Some(present)) => {
            let wanted: BTreeSet<String> = wanted.iter().map(|k| canonical_key(k)).collect();
            present
                .iter()
                .filter(|k| wanted.contains(&canonical_key(&k.key)))
                .map(|k| k.association_id.clone())
                .collect()
        }
        _ => Vec::new(),
    };
    for change in applied {
        match change {
            Applied::StorageAssociated(resource_type, id) => {
                storage.insert(resource_type.clone(), id.clone());
            }
            Applied::StorageDisassociated(resource_type) => {
                storage.remove(resource_type);
            }
            Applied::KeyAssociated(id) => {
                if !keys.contains(id) {
                    keys.push(id.clone());
                }
            }
            Applied::KeyDisassociated(id) => keys.retain(|k| k != id),
            Applied::Other => {}
        }
    }
    (storage, keys)
}

/// Records the storage associations and security keys the operator manages.
pub(in crate::reconciler::decide) fn record_configuration(
    inputs: &Inputs<'_>,
    status: &mut ConnectInstanceStatus,
    described: &Described,
    applied: &[(ConfigWrite, Applied)],
) {
    let Some(observed) = &described.configuration else {
        return;
    };
    let applied: Vec<Applied> = applied.iter().map(|(_, a)| a.clone()).collect();
    let (storage, keys) = recorded_after(
        inputs.spec,
        &inputs.status.storage_configs,
        observed,
        &applied,
    );
    status.storage_configs = storage;
    if inputs.spec.security_keys.is_some() {
        status.security_keys = keys;
    }
}

/// After configuration writes: Ready once they all succeeded (the next look confirms);
/// otherwise `ConfigurationFailed`, naming each item with AWS's answer, retried with
/// backoff.
pub(in crate::reconciler::decide) fn configured(
    inputs: &Inputs<'_>,
    described: &Described,
    applied: &[(ConfigWrite, Applied)],
    failed: &[(ConfigWrite, AwsError)],
) -> Decision {
    let id = &described.instance.id;
    let done: Vec<String> = applied
        .iter()
        .map(|(write, _)| {
            let verb = if write.is_removal() {
                "removed"
            } else {
                "applied"
            };
            format!("{} {verb}", write.item(inputs.spec))
        })
        .collect();
    let record = |s: &mut ConnectInstanceStatus| {
        record_observed(s, &described.instance);
        record_configuration(inputs, s, described, applied);
    };
    let refused = described
        .configuration
        .as_ref()
        .map(|c| c.refused.as_slice())
        .unwrap_or_default();
    let mut decision = if failed.is_empty() && refused.is_empty() {
        Decision::new(inputs, Then::ObserveAgain)
            .state(
                State::Updating,
                format!("Configuration of instance {id} applied; checking it"),
            )
            .record(record)
    } else {
        let problems: Vec<String> = refused
            .iter()
            .map(|(item, e)| format!("{item}: {e}"))
            .chain(
                failed
                    .iter()
                    .map(|(write, e)| format!("{}: {}", write.item(inputs.spec), e)),
            )
            .collect();
        // The List calls before these writes found the instance, so a ResourceNotFound here
        // names the item's own resource (a bucket, a function), not a lagging instance.
        let message = format!(
            "{} of the configuration of instance {id} could not be applied (the rest was): {}",
            problems.len(),
            problems.join("; ")
        );
        Decision::new(
            inputs,
            Then::Requeue(
                plan::retry_after(&inputs.retry, State::ConfigurationFailed, inputs.failures),
                Jitter::Spread,
            ),
        )
        .state(State::ConfigurationFailed, message.clone())
        .record(record)
        .failures(Failures::Count)
        .event(EventType::Warning, "ConfigurationFailed", message)
    };
    if !done.is_empty() {
        decision = decision.event(
            EventType::Normal,
            "Configured",
            format!("Instance {id}: {}", done.join(", ")),
        );
    }
    decision
}
