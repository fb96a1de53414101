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
    /// The region whose creation the object is waiting for, while it is being created.
    creating_in: Option<String>,
}

impl Entry {
    fn is_empty(&self) -> bool {
        self.failures == 0
            && self.lookup_empty_at.is_none()
            && self.delete_sent_at.is_none()
            && self.creating_in.is_none()
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

    /// Whether the object's instance is being created (in `region`) or not (`None`).
    pub fn set_creating(&self, uid: &str, region: Option<&str>) {
        self.with(uid, |e| e.creating_in = region.map(str::to_owned));
    }

    /// How many objects' instances are being created in `region` (those this process
    /// follows), at least one: the asking object is one of them.
    #[must_use]
    pub fn creations_in(&self, region: &str) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|e| e.creating_in.as_deref() == Some(region))
            .count()
            .max(1)
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

        memory.set_creating("d", Some("us-east-1"));
        memory.set_creating("e", Some("us-east-1"));
        memory.set_creating("f", Some("eu-west-2"));
        assert_eq!(memory.creations_in("us-east-1"), 2);
        assert_eq!(
            memory.creations_in("ap-south-1"),
            1,
            "the asker counts itself"
        );
        memory.set_creating("d", None);
        memory.forget("e");
        memory.forget("f");
        assert!(memory.is_empty());
    }
}
