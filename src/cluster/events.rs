//! The process's event recorder: `events.k8s.io/v1` Events, a repeat of the same event
//! within six minutes counted in the first one's series instead of a new Event.
//!
//! It does what kube-runtime's recorder does on the wire, but remembers each recent event
//! by a few strings (its key, name and series) instead of the whole Event held inline in a
//! table that never shrinks: with thousands of objects each reporting an event at start,
//! that table alone was over half of the operator's memory at rest.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use tokio::sync::Mutex;

/// How long a published event gathers its repeats.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// What makes two events the same: one Event object counts them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    warning: bool,
    action: String,
    reason: String,
    /// The regarded object: kind, namespace, name, uid.
    regarding: [Option<String>; 4],
}

/// A published event, remembered for its series.
#[derive(Debug)]
struct Recent {
    namespace: String,
    name: String,
    /// Occurrences so far (1 for the first).
    count: i32,
    last: Timestamp,
}

/// Publishes events from `controller` (this replica: `instance`).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    recent: std::sync::Arc<Mutex<HashMap<Key, Recent>>>,
}

impl Recorder {
    /// A recorder through `client`; `instance` defaults to the controller's name.
    #[must_use]
    pub fn new(client: Client, controller: String, instance: Option<String>) -> Self {
        let instance = instance.unwrap_or_else(|| controller.clone());
        Self {
            client,
            controller,
            instance,
            recent: std::sync::Arc::default(),
        }
    }

    /// Publishes one occurrence: a new Event, or the series of the same event published
    /// within the last six minutes. The Event lives in the regarded object's namespace
    /// (`default` for a cluster-scoped one).
    ///
    /// # Errors
    /// When the API server refuses or fails the write.
    pub async fn publish(
        &self,
        type_: EventType,
        reason: &str,
        note: String,
        action: &str,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            warning: matches!(type_, EventType::Warning),
            action: action.to_owned(),
            reason: reason.to_owned(),
            regarding: [
                regarding.kind.clone(),
                regarding.namespace.clone(),
                regarding.name.clone(),
                regarding.uid.clone(),
            ],
        };
        let repeat = {
            let mut recent = self.recent.lock().await;
            recent.retain(|_, r| r.last + SERIES_WINDOW > now);
            // Forgotten events give their room back (a table keeps its largest size
            // otherwise).
            if recent.capacity() > 4 * recent.len().max(16) {
                recent.shrink_to_fit();
            }
            recent
                .get(&key)
                .map(|seen| (seen.namespace.clone(), seen.name.clone(), seen.count + 1))
        };
        // The lock is not held across the call: two identical events published at the same
        // moment may both create an Event, which is harmless.
        if let Some((namespace, name, count)) = repeat {
            let series = serde_json::json!({
                "series": EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                }
            });
            Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                .await?;
            if let Some(seen) = self.recent.lock().await.get_mut(&key) {
                seen.count = seen.count.max(count);
                seen.last = now;
            }
            return Ok(());
        }
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(if key.warning { "Warning" } else { "Normal" }.to_owned()),
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..K8sEvent::default()
        };
        Api::<K8sEvent>::namespaced(self.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        self.recent.lock().await.insert(
            key,
            Recent {
                namespace,
                name,
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}
