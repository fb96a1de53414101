//! A watch on the objects and the Events of one namespace, timestamped on the bench's
//! clock: when each object was first seen Ready and when it was gone, its instance id, and
//! every new resourceVersion (a Kubernetes write). The transitions are timed here rather
//! than from `lastTransitionTime`, which has a resolution of one second.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use test_kit::connect;

use crate::Clock;

#[derive(Clone, Debug, Default)]
pub struct Tracked {
    uid: String,
    resource_version: String,
    pub ready_at: Option<f64>,
    pub gone_at: Option<f64>,
    pub instance_id: Option<String>,
}

#[derive(Default)]
struct WatchLog {
    objects: HashMap<String, Tracked>,
    /// (time, object name) of every new resourceVersion of an object: each is a write.
    object_writes: Vec<(f64, String)>,
    /// Times of every new resourceVersion of an Event in the namespace.
    event_writes: Vec<f64>,
    seen_event_versions: HashSet<(String, String)>,
}

impl WatchLog {
    fn saw_object(&mut self, object: &DynamicObject, at: f64) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        let tracked = self.objects.entry(name.clone()).or_default();
        if tracked.resource_version == version {
            return;
        }
        tracked.resource_version = version;
        tracked.uid = object.metadata.uid.clone().unwrap_or_default();
        if tracked.ready_at.is_none() && connect::is_true(object, "Ready", None) {
            tracked.ready_at = Some(at);
        }
        if let Some(id) = connect::status_str(object, "instanceId") {
            tracked.instance_id = Some(id);
        }
        self.object_writes.push((at, name));
    }

    fn object_gone(&mut self, object: &DynamicObject, at: f64) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let tracked = self.objects.entry(name.clone()).or_default();
        tracked.gone_at.get_or_insert(at);
        self.object_writes.push((at, name));
    }

    fn saw_event(&mut self, event: &KubeEvent, at: f64) {
        let key = (
            event.metadata.uid.clone().unwrap_or_default(),
            event.metadata.resource_version.clone().unwrap_or_default(),
        );
        if self.seen_event_versions.insert(key) {
            self.event_writes.push(at);
        }
    }
}

/// Aborts the watch tasks when dropped.
pub struct Watch {
    log: Arc<Mutex<WatchLog>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Watch {
    pub fn start(client: &kube::Client, namespace: &str, clock: Clock) -> Self {
        let log = Arc::new(Mutex::new(WatchLog::default()));
        let objects = connect::api(client, namespace);
        let object_log = Arc::clone(&log);
        let object_task = tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(objects, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let at = clock.now();
                let mut log = object_log.lock().unwrap();
                match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                        log.saw_object(&object, at);
                    }
                    Ok(watcher::Event::Delete(object)) => log.object_gone(&object, at),
                    Ok(_) => {}
                    Err(error) => eprintln!("object watch: {error}"),
                }
            }
        });
        let events: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
        let event_log = Arc::clone(&log);
        let event_task = tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(events, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let at = clock.now();
                match event {
                    Ok(watcher::Event::Apply(event) | watcher::Event::InitApply(event)) => {
                        event_log.lock().unwrap().saw_event(&event, at);
                    }
                    Ok(_) => {}
                    Err(error) => eprintln!("event watch: {error}"),
                }
            }
        });
        Self {
            log,
            tasks: vec![object_task, event_task],
        }
    }

    pub fn tracked(&self, name: &str) -> Tracked {
        self.log
            .lock()
            .unwrap()
            .objects
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Instance id -> the time its object was first seen Ready, for every Ready object
    /// with a recorded instance id.
    pub fn ready_since_by_instance(&self) -> HashMap<String, f64> {
        let log = self.log.lock().unwrap();
        log.objects
            .values()
            .filter_map(|t| Some((t.instance_id.clone()?, t.ready_at?)))
            .collect()
    }

    /// Object writes and Event writes with `from <= time < to`.
    pub fn writes_between(&self, from: f64, to: f64) -> (Vec<String>, usize) {
        let log = self.log.lock().unwrap();
        let objects = log
            .object_writes
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, name)| name.clone())
            .collect();
        let events = log
            .event_writes
            .iter()
            .filter(|at| (from..to).contains(*at))
            .count();
        (objects, events)
    }

    /// Waits until every named object has been seen Ready; `Err` lists the others.
    pub async fn wait_ready(&self, names: &[String], timeout: Duration) -> Result<(), Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing: Vec<String> = {
                let log = self.log.lock().unwrap();
                names
                    .iter()
                    .filter(|name| log.objects.get(*name).is_none_or(|t| t.ready_at.is_none()))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(missing);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
