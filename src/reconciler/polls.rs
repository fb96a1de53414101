//! One poll per account and region for the instances being created or deleted there.
//!
//! An object whose instance is being created (or whose DeleteInstance was accepted) looks
//! again at the group's next poll, not on a clock of its own, so all the objects of one
//! account and region look together. When several are in flight and one ListInstances
//! listing (pages of ten, every instance of the account and region) costs fewer reads than
//! one DescribeInstance each, the first object to look lists, and every object of the
//! group reads its instance's status from that listing: only an instance whose status
//! changed (or that the listing does not show yet, or no longer) is described. The
//! interval between polls is the configured one, stretched only when the reads of one
//! poll would exceed the share of the account's read rate the polls may use together.
//!
//! Nothing here is needed for correctness: a process that forgets it (a restart, a new
//! leader) describes each instance once and joins the group again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::{ConnectClient, InstanceState, Target};

/// Entries of one ListInstances page.
const PAGE: usize = 10;

/// A listing taken this long before an object's due time still serves it (the objects due
/// together wake within milliseconds of each other, the first one lists).
const SLACK: Duration = Duration::from_millis(250);

/// A member that has not looked for this long has stopped following (its object was
/// deleted, or it is in an error backoff); it no longer counts.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(120);

/// What an object waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Awaited {
    /// Its creation to settle: ACTIVE or CREATION_FAILED.
    Settled,
    /// Its instance to be gone (DeleteInstance was accepted).
    Gone,
}

/// What the group's poll says about an object's instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// Listed as it was: nothing to describe.
    Unchanged,
    /// Describe it: its status changed, the listing does not show it, or the group
    /// describes each instance (one creation in flight, or a listing costs more).
    Describe,
}

/// The shared polls of one leadership term.
pub struct Polls {
    interval: Duration,
    reads_per_second: f64,
    groups: Mutex<HashMap<String, Arc<Group>>>,
}

struct Group {
    state: Mutex<GroupState>,
    /// Held while one object lists for the group, so the others wait for its listing
    /// instead of listing too.
    listing: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct GroupState {
    members: HashMap<String, Member>,
    next_at: Option<Instant>,
    /// Pages of the last listing.
    pages: Option<usize>,
    listed: Option<(Instant, Arc<HashMap<String, InstanceState>>)>,
}

struct Member {
    /// The poll the member was told to come back for.
    due: Instant,
    /// When it last looked or was told when to look.
    seen: Instant,
    /// Whether the last listing showed its instance.
    shown: bool,
}

impl GroupState {
    fn expire(&mut self, now: Instant) {
        self.members
            .retain(|_, m| now.saturating_duration_since(m.seen) < FORGOTTEN_AFTER);
    }

    fn unshown(&self) -> usize {
        self.members.values().filter(|m| !m.shown).count()
    }

    /// Whether the group lists rather than describing each instance: with two or more in
    /// flight, when the last listing's pages plus the instances it did not show cost
    /// fewer reads than a DescribeInstance each (an unknown page count is tried once).
    fn lists(&self) -> bool {
        let n = self.members.len();
        n >= 2 && self.pages.is_none_or(|pages| pages + self.unshown() < n)
    }

    /// Reads one poll of the group costs.
    fn cost(&self) -> usize {
        if self.lists() {
            self.pages.unwrap_or(1) + self.unshown()
        } else {
            self.members.len().max(1)
        }
    }
}

impl Polls {
    /// Polls every `interval` at least, stretched so that one poll's reads stay within
    /// `reads_per_second` on average.
    #[must_use]
    pub fn new(interval: Duration, reads_per_second: f64) -> Self {
        Self {
            interval,
            reads_per_second,
            groups: Mutex::new(HashMap::new()),
        }
    }

    /// The interval between two polls that cost `cost` reads.
    #[must_use]
    pub fn interval_for(&self, cost: usize) -> Duration {
        super::plan::creation_poll_interval(self.interval, cost, self.reads_per_second)
    }

    fn group(&self, key: &str) -> Option<Arc<Group>> {
        lock(&self.groups).get(key).cloned()
    }

    /// How long until the next poll of the group `key` (an account and region); one
    /// interval when the group has none scheduled (the next poll is set from now).
    #[must_use]
    pub fn next_poll(&self, key: &str) -> Duration {
        let Some(group) = self.group(key) else {
            return self.interval_for(1);
        };
        let mut state = lock(&group.state);
        let now = Instant::now();
        match state.next_at {
            Some(at) if at > now => at - now,
            _ => {
                state.expire(now);
                let interval = self.interval_for(state.cost());
                state.next_at = Some(now + interval);
                interval
            }
        }
    }

    /// The object `uid` looks again at the next poll of group `key`.
    pub fn follow(&self, key: &str, uid: &str) {
        let group = lock(&self.groups)
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Group {
                    state: Mutex::new(GroupState::default()),
                    listing: tokio::sync::Mutex::new(()),
                })
            })
            .clone();
        let mut state = lock(&group.state);
        let now = Instant::now();
        let due = match state.next_at {
            Some(at) if at > now => at,
            _ => {
                let at = now + self.interval_for(state.cost());
                state.next_at = Some(at);
                at
            }
        };
        let member = state.members.entry(uid.to_owned()).or_insert(Member {
            due,
            seen: now,
            shown: true,
        });
        member.due = due;
        member.seen = now;
    }

    /// The object `uid` no longer polls (it settled, failed, or is gone).
    pub fn unfollow(&self, uid: &str) {
        let mut groups = lock(&self.groups);
        groups.retain(|_, group| {
            let mut state = lock(&group.state);
            state.members.remove(uid);
            !state.members.is_empty()
        });
    }

    /// How many objects follow a poll (for tests and the memory figures).
    #[must_use]
    pub fn following(&self) -> usize {
        lock(&self.groups)
            .values()
            .map(|g| lock(&g.state).members.len())
            .sum()
    }

    /// What the group's poll says about `instance_id`, awaited by the member `uid`: from
    /// the group's listing (taken now if none serves this poll yet), or `Describe` when the
    /// group describes each instance, the object does not follow the group, or the
    /// listing failed (the describe then reports what is wrong).
    pub async fn look(
        &self,
        connect: &ConnectClient,
        target: &Target,
        key: &str,
        uid: &str,
        instance_id: &str,
        awaited: Awaited,
    ) -> Look {
        let Some(group) = self.group(key) else {
            return Look::Describe;
        };
        let now = serves(&lock(&group.state), uid);
        let listed = match now {
            Serves::Describe => return Look::Describe,
            Serves::Listing(listed) => listed,
            Serves::NeedsListing => {
                let _listing = group.listing.lock().await;
                // Another member may have listed while this one waited.
                let again = serves(&lock(&group.state), uid);
                match again {
                    Serves::Describe => return Look::Describe,
                    Serves::Listing(listed) => listed,
                    Serves::NeedsListing => match connect.list_instances(target).await {
                        Ok(all) => {
                            let pages = all.len().div_ceil(PAGE).max(1);
                            let listed: Arc<HashMap<String, InstanceState>> = Arc::new(
                                all.into_iter()
                                    .filter_map(|i| Some((i.id, i.state?)))
                                    .collect(),
                            );
                            let mut state = lock(&group.state);
                            let now = Instant::now();
                            state.pages = Some(pages);
                            state.listed = Some((now, Arc::clone(&listed)));
                            state.next_at = Some(now + self.interval_for(state.cost()));
                            listed
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "the shared poll could not list; describing instead");
                            return Look::Describe;
                        }
                    },
                }
            }
        };
        let look = match (listed.get(instance_id), awaited) {
            (None, _) => Look::Describe,
            (Some(InstanceState::CreationInProgress), Awaited::Settled)
            | (Some(_), Awaited::Gone) => Look::Unchanged,
            (Some(_), Awaited::Settled) => Look::Describe,
        };
        if let Some(member) = lock(&group.state).members.get_mut(uid) {
            member.shown = listed.contains_key(instance_id);
            member.seen = Instant::now();
        }
        look
    }
}

/// What the group's state offers a member now.
enum Serves {
    /// Not a member, or the group describes each instance.
    Describe,
    /// A listing taken for this poll.
    Listing(Arc<HashMap<String, InstanceState>>),
    /// The group lists, and no listing serves this poll yet.
    NeedsListing,
}

fn serves(state: &GroupState, uid: &str) -> Serves {
    let Some(member) = state.members.get(uid) else {
        return Serves::Describe;
    };
    if !state.lists() {
        return Serves::Describe;
    }
    match &state.listed {
        Some((at, listed)) if *at + SLACK >= member.due => Serves::Listing(Arc::clone(listed)),
        _ => Serves::NeedsListing,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(shown: bool) -> Member {
        let now = Instant::now();
        Member {
            due: now,
            seen: now,
            shown,
        }
    }

    fn group(n: usize, pages: Option<usize>, unshown: usize) -> GroupState {
        GroupState {
            members: (0..n)
                .map(|i| (format!("uid-{i}"), member(i >= unshown)))
                .collect(),
            pages,
            ..GroupState::default()
        }
    }

    #[test]
    fn the_group_lists_only_when_that_costs_fewer_reads() {
        // One creation: one DescribeInstance, never a listing.
        assert!(!group(1, None, 0).lists());
        assert_eq!(group(1, None, 0).cost(), 1);
        // Two or more and no listing yet: one is tried.
        assert!(group(2, None, 0).lists());
        // 20 in flight among 25 instances (3 pages): 3 reads instead of 20.
        let twenty = group(20, Some(3), 0);
        assert!(twenty.lists());
        assert_eq!(twenty.cost(), 3);
        // The listing does not show two of them yet: they are described too.
        assert_eq!(group(20, Some(3), 2).cost(), 5);
        // Three in flight in an account of 80 instances (8 pages): describing is cheaper.
        let few = group(3, Some(8), 0);
        assert!(!few.lists());
        assert_eq!(few.cost(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn objects_of_one_account_and_region_share_the_poll_and_its_interval() {
        let polls = Polls::new(Duration::from_secs(4), 1.0);
        // No group: one interval.
        assert_eq!(polls.next_poll("a/us-east-1"), Duration::from_secs(4));
        polls.follow("a/us-east-1", "one");
        tokio::time::advance(Duration::from_secs(1)).await;
        // A second object joins the same poll, 3 s from now, not 4 s from its own start.
        assert_eq!(polls.next_poll("a/us-east-1"), Duration::from_secs(3));
        polls.follow("a/us-east-1", "two");
        // Another region has its own.
        assert_eq!(polls.next_poll("a/eu-west-2"), Duration::from_secs(4));
        assert_eq!(polls.following(), 2);
        // After the poll, the next one is an interval later; with 12 described one by one
        // and 1 read/s for the polls, the interval stretches to 12 s.
        tokio::time::advance(Duration::from_secs(3)).await;
        {
            let group = polls.group("a/us-east-1").expect("a group");
            let mut state = lock(&group.state);
            state.pages = Some(20);
            for i in 0..10 {
                state.members.insert(format!("more-{i}"), member(true));
            }
        }
        assert_eq!(polls.next_poll("a/us-east-1"), Duration::from_secs(12));
        polls.unfollow("one");
        polls.unfollow("two");
        assert_eq!(polls.following(), 10);
        // Members that stopped looking are forgotten.
        tokio::time::advance(FORGOTTEN_AFTER + Duration::from_secs(12)).await;
        let _ = polls.next_poll("a/us-east-1");
        assert_eq!(polls.following(), 0);
    }
}
