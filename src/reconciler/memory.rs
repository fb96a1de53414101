//! What the operator keeps in process memory about objects: only what may be lost.
//!
//! Facts that must survive a restart or a change of leader live in the object's status
//! (the instance id the moment CreateInstance answers, when DeleteInstance was accepted).
//! What stays here only saves AWS calls or shapes retry timing, so a new process starting
//! from nothing is merely a little less frugal. Every entry is dropped when its object goes
//! (the finalizer is released, or the watch reports the object deleted).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::decide::Described;

/// Per-object, process-local knowledge, keyed by UID.
#[derive(Debug, Default)]
pub struct Memory {
    entries: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug, Default)]
struct Entry {
    /// Consecutive failures, for exponential backoff; reset on progress.
    failures: u32,
    /// When a lookup last found no instance of the object's, so that a creation waiting
    /// for its CreateInstance slot does not list the whole account on every attempt.
    lookup_empty_at: Option<Instant>,
    /// When this process last sent an accepted DeleteInstance for the object.
    delete_sent_at: Option<Instant>,
    /// While the object waits for its DeleteInstance slot: what was described before the
    /// wait, and when.
    waiting_for_slot: Option<(Instant, Box<Described>)>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.failures == 0
            && self.lookup_empty_at.is_none()
            && self.delete_sent_at.is_none()
            && self.waiting_for_slot.is_none()
    }
}

impl Memory {
    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = entries.entry(uid.to_owned()).or_default();
        let result = f(entry);
        if entry.is_empty() {
            entries.remove(uid);
        }
        result
    }

    fn read<T>(&self, uid: &str, f: impl FnOnce(&Entry) -> T) -> Option<T> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(uid)
            .map(f)
    }

    /// The object's consecutive failures so far.
    #[must_use]
    pub fn failures(&self, uid: &str) -> u32 {
        self.read(uid, |e| e.failures).unwrap_or(0)
    }

    /// Counts one more failure; returns the count before it.
    pub fn count_failure(&self, uid: &str) -> u32 {
        self.with(uid, |e| {
            let before = e.failures;
            e.failures = e.failures.saturating_add(1);
            before
        })
    }

    /// Progress: the failure streak is over.
    pub fn reset_failures(&self, uid: &str) {
        self.with(uid, |e| e.failures = 0);
    }

    /// A lookup found nothing of the object's just now.
    pub fn lookup_found_nothing(&self, uid: &str) {
        self.with(uid, |e| e.lookup_empty_at = Some(Instant::now()));
    }

    /// Whether a lookup found nothing of the object's within `window`.
    #[must_use]
    pub fn lookup_empty_within(&self, uid: &str, window: Duration) -> bool {
        self.read(uid, |e| {
            e.lookup_empty_at.is_some_and(|at| at.elapsed() < window)
        })
        .unwrap_or(false)
    }

    /// The object has an instance now: the empty lookup no longer says anything.
    pub fn forget_lookup(&self, uid: &str) {
        self.with(uid, |e| e.lookup_empty_at = None);
    }

    /// DeleteInstance was just accepted.
    pub fn delete_sent(&self, uid: &str) {
        self.with(uid, |e| e.delete_sent_at = Some(Instant::now()));
    }

    /// How long ago this process last sent an accepted DeleteInstance for the object.
    #[must_use]
    pub fn delete_sent_ago(&self, uid: &str) -> Option<Duration> {
        self.read(uid, |e| e.delete_sent_at.map(|at| at.elapsed()))
            .flatten()
    }

    /// The object waits for its DeleteInstance slot, having described its instance as
    /// `described` (kept from the first refusal: a wait never makes the look newer).
    pub fn wait_for_slot(&self, uid: &str, described: Box<Described>) {
        self.with(uid, |e| {
            e.waiting_for_slot
                .get_or_insert_with(|| (Instant::now(), described));
        });
    }

    /// What was described before the object's wait for its slot, if it waits and that
    /// look is younger than `max_age`.
    #[must_use]
    pub fn waiting_for_slot(&self, uid: &str, max_age: Duration) -> Option<Box<Described>> {
        self.read(uid, |e| {
            e.waiting_for_slot
                .as_ref()
                .filter(|(at, _)| at.elapsed() < max_age)
                .map(|(_, described)| described.clone())
        })
        .flatten()
    }

    /// The object's slot came: the wait is over.
    pub fn slot_taken(&self, uid: &str) {
        self.with(uid, |e| e.waiting_for_slot = None);
    }

    /// The object is gone: forget everything about it.
    pub fn forget(&self, uid: &str) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(uid);
    }

    /// How many objects have an entry (for tests and the memory benchmark).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no object has an entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_vanish_when_empty_or_forgotten() {
        let memory = Memory::default();
        assert_eq!(memory.count_failure("a"), 0);
        assert_eq!(memory.count_failure("a"), 1);
        assert_eq!(memory.failures("a"), 2);
        memory.reset_failures("a");
        assert!(memory.is_empty(), "a reset leaves nothing behind");

        memory.lookup_found_nothing("b");
        memory.delete_sent("c");
        assert!(memory.lookup_empty_within("b", Duration::from_secs(60)));
        assert!(!memory.lookup_empty_within("b", Duration::ZERO));
        assert!(memory.delete_sent_ago("c").is_some());
        assert_eq!(memory.len(), 2);
        memory.forget_lookup("b");
        memory.forget("c");
        assert!(memory.is_empty());

        let described = |id: &str| {
            Box::new(Described {
                instance: crate::aws::ObservedInstance {
                    id: id.into(),
                    arn: String::new(),
                    alias: None,
                    identity_management_type: None,
                    state: crate::aws::InstanceState::Active,
                    status_reason: None,
                    access_url: None,
                    service_role: None,
                    created_time: None,
                    created_epoch_seconds: None,
                    tags: None,
                    inbound_calls_enabled: None,
                    outbound_calls_enabled: None,
                    replication: None,
                },
                attributes: None,
                tags: None,
                configuration: None,
                traffic: None,
            })
        };
        memory.wait_for_slot("d", described("first"));
        memory.wait_for_slot("d", described("second"));
        let kept = memory.waiting_for_slot("d", Duration::from_secs(60));
        assert_eq!(
            kept.map(|d| d.instance.id),
            Some("first".to_owned()),
            "the look before the wait is kept, not replaced by a later refusal"
        );
        assert!(
            memory.waiting_for_slot("d", Duration::ZERO).is_none(),
            "too old"
        );
        memory.slot_taken("d");
        assert!(memory.is_empty());
    }
}
