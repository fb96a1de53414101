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

use crate::aws::client::lock;
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
    /// The next poll: the one scheduled, or one `interval` from now when none is ahead.
    fn schedule(&mut self, now: Instant, interval: impl FnOnce(usize) -> Duration) -> Instant {
        match self.next_at {
            Some(at) if at > now => at,
            _ => {
                self.expire(now);
                let at = now + interval(self.cost());
                self.next_at = Some(at);
                at
            }
        }
    }

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
    fn interval_for(&self, cost: usize) -> Duration {
        super::plan::creation_poll_interval(self.interval, cost, self.reads_per_second)
    }

    fn group(&self, target: &Target) -> Option<Arc<Group>> {
        lock(&self.groups).get(&key(target)).cloned()
    }

    /// How long until the next poll of `target`'s account and region; one interval when
    /// none is scheduled (the next poll is set from now).
    #[must_use]
    pub fn next_poll(&self, target: &Target) -> Duration {
        let Some(group) = self.group(target) else {
            return self.interval_for(1);
        };
        let now = Instant::now();
        lock(&group.state).schedule(now, |cost| self.interval_for(cost)) - now
    }

    /// The object `uid` looks again at the next poll of `target`'s account and region.
    pub fn follow(&self, target: &Target, uid: &str) {
        let group = lock(&self.groups)
            .entry(key(target))
            .or_insert_with(|| {
                Arc::new(Group {
                    state: Mutex::new(GroupState::default()),
                    listing: tokio::sync::Mutex::new(()),
                })
            })
            .clone();
        let mut state = lock(&group.state);
        let now = Instant::now();
        let due = state.schedule(now, |cost| self.interval_for(cost));
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

    /// A DescribeInstance of the member `uid`'s instance found it (`visible`) or not: the
    /// next listing will show it or not. Without this, a group that turned to describing
    /// because its last listing did not show most of its instances yet (they had just been
    /// created) would never list again.
    pub fn described(&self, target: &Target, uid: &str, visible: bool) {
        if let Some(group) = self.group(target)
            && let Some(member) = lock(&group.state).members.get_mut(uid)
        {
            member.shown = visible;
        }
    }

    /// How many objects follow a poll.
    #[cfg(test)]
    fn following(&self) -> usize {
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
        uid: &str,
        instance_id: &str,
        awaited: Awaited,
    ) -> Look {
        let Some(group) = self.group(target) else {
            return Look::Describe;
        };
        let Some(listed) = self.listing(&group, connect, target, uid).await else {
            return Look::Describe;
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

    /// The listing that serves `uid`'s poll: the one taken for it, or a new one (one
    /// member lists while the others wait for it); `None` when the group describes.
    async fn listing(
        &self,
        group: &Group,
        connect: &ConnectClient,
        target: &Target,
        uid: &str,
    ) -> Option<Arc<HashMap<String, InstanceState>>> {
        let first = serves(&lock(&group.state), uid);
        if let Serves::Listing(listed) = first {
            return listed;
        }
        let _listing = group.listing.lock().await;
        // Another member may have listed while this one waited.
        let again = serves(&lock(&group.state), uid);
        if let Serves::Listing(listed) = again {
            return listed;
        }
        let all = connect
            .list_instances(target)
            .await
            .inspect_err(|e| {
                tracing::debug!(error = %e, "the shared poll could not list; describing instead");
            })
            .ok()?;
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
        Some(listed)
    }
}

/// What the group's state offers a member now.
enum Serves {
    /// `None`: not a member, or the group describes each instance; or the listing taken
    /// for this poll.
    Listing(Option<Arc<HashMap<String, InstanceState>>>),
    /// The group lists, and no listing serves this poll yet.
    NeedsListing,
}

fn serves(state: &GroupState, uid: &str) -> Serves {
    let Some(member) = state.members.get(uid).filter(|_| state.lists()) else {
        return Serves::Listing(None);
    };
    match &state.listed {
        Some((at, listed)) if *at + SLACK >= member.due => {
            Serves::Listing(Some(Arc::clone(listed)))
        }
        _ => Serves::NeedsListing,
    }
}

/// The key of the shared poll an object's creation or deletion follows: one per account
/// and region (a ListInstances listing covers exactly that).
fn key(target: &Target) -> String {
    format!("{}/{}", target.account_id, target.region)
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

    fn target(region: &str) -> Target {
        Target {
            access: crate::aws::Access::default(),
            account_id: "123456789012".into(),
            region: region.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_that_describes_because_its_instances_were_not_listed_yet_lists_again() {
        let polls = Polls::new(Duration::from_secs(4), 1.0);
        let east = target("us-east-1");
        for i in 0..6 {
            polls.follow(&east, &format!("uid-{i}"));
        }
        let lists = || lock(&polls.group(&east).expect("a group").state).lists();
        assert!(lists(), "six in flight and no listing yet: one is tried");
        {
            // The first listing (one page) came right after the creates: it shows one.
            let group = polls.group(&east).expect("a group");
            let mut state = lock(&group.state);
            state.pages = Some(1);
            for i in 1..6 {
                state
                    .members
                    .get_mut(&format!("uid-{i}"))
                    .expect("member")
                    .shown = false;
            }
        }
        assert!(!lists(), "1 page + 5 unlisted costs more than 6 describes");
        // Their describes find them: the next listing will show them, so the group lists.
        for i in 1..5 {
            polls.described(&east, &format!("uid-{i}"), true);
        }
        assert!(lists(), "1 page + 1 unlisted is cheaper than 6 describes");
        // An object outside the group changes nothing.
        polls.described(&east, "stranger", false);
        assert!(lists());
    }

    #[tokio::test(start_paused = true)]
    async fn objects_of_one_account_and_region_share_the_poll_and_its_interval() {
        let polls = Polls::new(Duration::from_secs(4), 1.0);
        let (east, west) = (target("us-east-1"), target("eu-west-2"));
        // No group: one interval.
        assert_eq!(polls.next_poll(&east), Duration::from_secs(4));
        polls.follow(&east, "one");
        tokio::time::advance(Duration::from_secs(1)).await;
        // A second object joins the same poll, 3 s from now, not 4 s from its own start.
        assert_eq!(polls.next_poll(&east), Duration::from_secs(3));
        polls.follow(&east, "two");
        // Another region has its own.
        assert_eq!(polls.next_poll(&west), Duration::from_secs(4));
        assert_eq!(polls.following(), 2);
        // After the poll, the next one is an interval later; with 12 described one by one
        // and 1 read/s for the polls, the interval stretches to 12 s.
        tokio::time::advance(Duration::from_secs(3)).await;
        {
            let group = polls.group(&east).expect("a group");
            let mut state = lock(&group.state);
            state.pages = Some(20);
            for i in 0..10 {
                state.members.insert(format!("more-{i}"), member(true));
            }
        }
        assert_eq!(polls.next_poll(&east), Duration::from_secs(12));
        polls.unfollow("one");
        polls.unfollow("two");
        assert_eq!(polls.following(), 10);
        // Members that stopped looking are forgotten.
        tokio::time::advance(FORGOTTEN_AFTER + Duration::from_secs(12)).await;
        let _ = polls.next_poll(&east);
        assert_eq!(polls.following(), 0);
    }
}
