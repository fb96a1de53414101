//! What both controllers write to report: an object's status, by server-side apply with the
//! operator's field manager, and events, through the process's one recorder.
//!
//! Both stop the moment the fence closes: a replica that may no longer lead writes nothing,
//! neither to AWS nor here, so that what users read was written by the leader. A status
//! write may carry the `resourceVersion` the decision was made from; the API server then
//! refuses it ([`ReportError::Stale`]) when the object changed since, so a decision made
//! from a cache that missed an update never overwrites what that update recorded.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::{Client, Resource};

use super::events::Recorder;
use crate::fence::{Fence, NotLeader};
use crate::telemetry::Metrics;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "connect-operator";

/// A status write that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The API server refused or failed (or did not answer in time).
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] kube::Error),
    /// The object changed since the version the status was computed from.
    #[error("the object changed since it was read; deciding again from its current version")]
    Stale,
    /// This replica may not write.
    #[error(transparent)]
    NotLeader(#[from] NotLeader),
}

/// Writes status and events.
#[derive(Clone)]
pub struct Reporter {
    recorder: Recorder,
    metrics: Arc<Metrics>,
    fence: Arc<Fence>,
}

impl Reporter {
    /// A reporter through `client`; events name this replica (`instance`) as their source.
    #[must_use]
    pub fn new(
        client: Client,
        metrics: Arc<Metrics>,
        fence: Arc<Fence>,
        instance: Option<String>,
    ) -> Self {
        Self {
            recorder: Recorder::new(client, FIELD_MANAGER.to_owned(), instance),
            metrics,
            fence,
        }
    }

    /// The fence every write passes.
    #[must_use]
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// Writes an object's status by server-side apply; with `resource_version`, only if the
    /// object is still at that version. Returns the object as written.
    pub async fn apply_status<K>(
        &self,
        api: &Api<K>,
        name: &str,
        status: &impl serde::Serialize,
        resource_version: Option<&str>,
    ) -> Result<K, ReportError>
    where
        K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.fence.check()?;
        let mut patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        if let Some(version) = resource_version {
            patch["metadata"] = serde_json::json!({ "resourceVersion": version });
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let written = api
            .patch_status(name, &params, &Patch::Apply(&patch))
            .await
            .map_err(|e| match e {
                kube::Error::Api(status) if status.code == 409 => ReportError::Stale,
                other => ReportError::Kube(other),
            })?;
        self.metrics.status_patched();
        Ok(written)
    }

    /// Publishes an event. A failure is logged, never fails the caller; nothing is published
    /// once the fence is closed.
    pub async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
        action: &str,
    ) {
        if self.fence.check().is_err() {
            tracing::debug!(reason, "not leading; event not published");
            return;
        }
        let note = truncate(note, 1024);
        if let Err(e) = self
            .recorder
            .publish(type_, reason, note, action, reference)
            .await
        {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 3);
        assert_eq!(cut, "é…");
    }
}
