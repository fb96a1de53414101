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
//! poll would exceed the share of the account's read rate the polls may use together; a
//! listing keeps to four fifths of that share, the rest is left for the describes of the
//! instances whose status it found changed and for the lookups before creates.
//!
//! The last listing of each account and region is also offered to the lookups before
//! creates ([`Polls::recent_listing`]): objects applied together look at one listing
//! instead of listing the account each.
//!
//! Nothing here is needed for correctness: a process that forgets it (a restart, a new
//! leader) describes each instance once and joins the group again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::client::lock;
use crate::aws::{AwsError, ConnectClient, InstanceState, InstanceSummary, Target};

/// Entries of one ListInstances page.
const PAGE: usize = 10;

/// A listing taken this long before an object's due time still serves it (the objects due
/// together wake within milliseconds of each other, the first one lists).
const SLACK: Duration = Duration::from_millis(250);

/// A member that has not looked for this long has stopped following (its object was
/// deleted, or it is in an error backoff); it no longer counts.
const FORGOTTEN_AFTER: Duration = Duration::from_secs(120);

/// The part of the polls' read share a listing may use: the rest is left for what the
/// listing leads to (a DescribeInstance of each instance whose status changed) and for
/// the lookups before creates, so that together they stay within the share.
const LISTING_SHARE: f64 = 0.8;

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
    /// The last listing of each account and region, for the lookups before creates.
    recent: Mutex<HashMap<String, Arc<Recent>>>,
}

/// The last listing of one account and region.
#[derive(Default)]
struct Recent {
    listed: Mutex<Option<(Instant, Arc<Vec<InstanceSummary>>)>>,
    /// Held while one lookup lists, so that the others of the account and region wait for
    /// its listing instead of listing too.
    listing: tokio::sync::Mutex<()>,
}

impl Recent {
    fn within(&self, max_age: Duration) -> Option<Arc<Vec<InstanceSummary>>> {
        lock(&self.listed)
            .as_ref()
            .filter(|(at, _)| at.elapsed() <= max_age)
            .map(|(_, listed)| Arc::clone(listed))
    }
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
    fn schedule(
        &mut self,
        now: Instant,
        interval: impl FnOnce((usize, f64)) -> Duration,
    ) -> Instant {
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

    /// Reads one poll of the group costs, and the part of the share they may use: a
    /// listing leaves room for the describes it leads to, describing each instance is
    /// itself the look.
    fn cost(&self) -> (usize, f64) {
        if self.lists() {
            (self.pages.unwrap_or(1) + self.unshown(), LISTING_SHARE)
        } else {
            (self.members.len().max(1), 1.0)
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
            recent: Mutex::new(HashMap::new()),
        }
    }

    /// The interval between two polls that cost `reads`, allowed `part` of the share.
    fn interval_for(&self, (reads, part): (usize, f64)) -> Duration {
        super::plan::creation_poll_interval(self.interval, reads, self.reads_per_second * part)
    }

    /// The account's instances in `target`'s region from a listing at most `max_age` old
    /// (a poll's or another lookup's), or from a new one (one caller lists while the others
    /// of the account and region wait for its listing).
    ///
    /// # Errors
    /// The listing's failure.
    pub async fn recent_listing(
        &self,
        connect: &ConnectClient,
        target: &Target,
        max_age: Duration,
    ) -> Result<Arc<Vec<InstanceSummary>>, AwsError> {
        let recent = {
            let mut all = lock(&self.recent);
            // Listings nobody may use any more are dropped (they hold every instance of an
            // account and region).
            all.retain(|_, r| r.within(max_age).is_some() || Arc::strong_count(r) > 1);
            Arc::clone(all.entry(key(target)).or_default())
        };
        if let Some(listed) = recent.within(max_age) {
            return Ok(listed);
        }
        let _listing = recent.listing.lock().await;
        if let Some(listed) = recent.within(max_age) {
            return Ok(listed);
        }
        let listed = Arc::new(connect.list_instances(target).await?);
        *lock(&recent.listed) = Some((Instant::now(), Arc::clone(&listed)));
        Ok(listed)
    }

    /// Offers a poll's listing to the lookups, if one of them keeps the account's last.
    fn offer(&self, target: &Target, listed: &Arc<Vec<InstanceSummary>>) {
        if let Some(recent) = lock(&self.recent).get(&key(target)) {
            *lock(&recent.listed) = Some((Instant::now(), Arc::clone(listed)));
        }
    }

    fn group(&self, target: &Target) -> Option<Arc<Group>> {
        lock(&self.groups).get(&key(target)).cloned()
    }

    /// How long until the next poll of `target`'s account and region; one interval when
    /// none is scheduled (the next poll is set from now).
    #[must_use]
    pub fn next_poll(&self, target: &Target) -> Duration {
        let Some(group) = self.group(target) else {
            return self.interval_for((1, 1.0));
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
        let all = Arc::new(
            connect
                .list_instances(target)
                .await
                .inspect_err(|e| {
                    tracing::debug!(error = %e, "the shared poll could not list; describing instead");
                })
                .ok()?,
        );
        self.offer(target, &all);
        let pages = all.len().div_ceil(PAGE).max(1);
        let listed: Arc<HashMap<String, InstanceState>> = Arc::new(
            all.iter()
                .filter_map(|i| Some((i.id.clone(), i.state.clone()?)))
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
        assert_eq!(group(1, None, 0).cost().0, 1);
        // Two or more and no listing yet: one is tried.
        assert!(group(2, None, 0).lists());
        // 20 in flight among 25 instances (3 pages): 3 reads instead of 20.
        let twenty = group(20, Some(3), 0);
        assert!(twenty.lists());
        assert_eq!(twenty.cost().0, 3);
        // The listing does not show two of them yet: they are described too.
        assert_eq!(group(20, Some(3), 2).cost().0, 5);
        // Three in flight in an account of 80 instances (8 pages): describing is cheaper.
        let few = group(3, Some(8), 0);
        assert!(!few.lists());
        assert_eq!(few.cost().0, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_listing_leaves_a_fifth_of_the_share_for_the_describes_it_leads_to() {
        let polls = Polls::new(Duration::from_secs(2), 1.0);
        let east = target("us-east-1");
        for i in 0..20 {
            polls.follow(&east, &format!("uid-{i}"));
        }
        // 20 in flight in an account of 20 instances: a listing is two pages. At 1 read/s
        // they would fit every 2 s and leave nothing for the describes of the instances
        // found ACTIVE; at four fifths of the share the polls are 2.5 s apart.
        lock(&polls.group(&east).expect("a group").state).pages = Some(2);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(polls.next_poll(&east), Duration::from_millis(2500));
        // Describing each instance is the look itself: the whole share.
        let few = Polls::new(Duration::from_secs(1), 1.0);
        for i in 0..3 {
            few.follow(&east, &format!("uid-{i}"));
        }
        lock(&few.group(&east).expect("a group").state).pages = Some(8);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(few.next_poll(&east), Duration::from_secs(3));
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
