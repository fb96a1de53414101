//! Leader election through a `coordination.k8s.io/v1` Lease, with a holder that fences
//! itself on its own clock.
//!
//! The rules are client-go's, with the fence made explicit:
//! - A replica keeps, by its own monotonic clock, when it first saw the Lease's current
//!   record. Another holder's lease has expired only once this replica has seen the same
//!   record for the whole lease duration: no wall-clock time written by someone else is
//!   trusted, so clock skew between machines cannot make two leaders.
//! - The holder renews every retry period. Each successful renewal opens its fence until
//!   the moment the renewal was *sent* plus the renew deadline (shorter than the lease
//!   duration by the grace). Any other replica saw that renewal only after it was sent, so
//!   it waits at least until the send plus the whole duration: the holder has stopped
//!   writing a grace period before anyone may start.
//! - A holder that cannot renew in time loses its term when its fence closes, whatever the
//!   API server says later; it stops its controllers and starts over as a follower.
//! - Writes to the Lease are conditional on the `resourceVersion` read, so of two replicas
//!   taking over the same expired lease only one succeeds.
//!
//! Why not a lease crate: the one used before kept reporting "leader" through an API
//! server outage (its renewals had no deadline and its notion of expiry was the API
//! server's), so a new leader could start while the old one still wrote.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;

use crate::fence::Fence;
use crate::liveness::Liveness;

/// Field manager of the operator's writes to the Lease.
const LEASE_FIELD_MANAGER: &str = "connect-operator-lease";

/// How leader election is run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long the lease is valid without renewal: how long other replicas wait after
    /// they last saw it renewed.
    pub duration: Duration,
    /// How long after its last successful renewal was sent the holder stops writing, if it
    /// could not renew since. Less than `duration`: the difference is the grace that
    /// separates the old leader's last write from the new leader's first.
    pub renew_deadline: Duration,
    /// How often the holder renews and followers look at the Lease.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Checks the timing makes sense: `retry_period < renew_deadline < duration`.
    pub fn validate(&self) -> Result<(), String> {
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the lease retry period ({:?}) must be greater than zero and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.renew_deadline >= self.duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?}): the grace between them keeps the old leader's last write before the new leader's first",
                self.renew_deadline, self.duration
            ));
        }
        Ok(())
    }

    /// How long one call to the Lease may take: a renewal that hangs on a dead connection
    /// gives way to another attempt well before the renew deadline.
    fn call_timeout(&self) -> Duration {
        (self.renew_deadline / 3).max(Duration::from_millis(500))
    }
}

/// The Lease's record: who holds it and since when.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Record {
    holder: Option<String>,
    duration_seconds: Option<i32>,
    acquire_time: Option<MicroTime>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time,
            renew_time: spec.renew_time,
            transitions: spec.lease_transitions,
        }
    }
}

/// The record as this replica last saw it (`None`: the Lease did not exist), and when it
/// first saw it so (its own clock).
#[derive(Clone, Debug)]
struct Seen {
    record: Option<Record>,
    since: Instant,
}

/// What the rules say to do with the Lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// It is ours: renew it.
    Renew,
    /// It is free or expired by our own observation: take it.
    TakeOver,
    /// Someone else holds it; it may expire after this long.
    Wait(Duration),
}

/// The rules, as a pure function of what was seen, when, and whether this replica holds
/// the lease now (a term under way).
///
/// - Holding, and the record names this replica: renew.
/// - Released (no holder): take it at once; its holder stopped writing before releasing.
/// - Anything else waits until the same record (or the Lease's absence) has been seen for
///   the whole lease duration: another holder's record, a record naming this replica from
///   a term it already lost (or restored from a backup), and a Lease that vanished (deleted
///   by someone, while its holder may still be writing).
fn next(me: &str, seen: &Seen, our_duration: Duration, holding: bool, now: Instant) -> Next {
    let record = seen.record.as_ref();
    let holder = record.and_then(|r| r.holder.as_deref());
    if holding && holder == Some(me) {
        return Next::Renew;
    }
    if record.is_some() && holder.is_none() {
        return Next::TakeOver;
    }
    let duration = record
        .and_then(|r| r.duration_seconds)
        .and_then(|d| u64::try_from(d).ok())
        .filter(|d| *d > 0)
        .map_or(our_duration, Duration::from_secs);
    let expires = seen.since + duration;
    if now >= expires {
        if holder == Some(me) {
            Next::Renew
        } else {
            Next::TakeOver
        }
    } else {
        Next::Wait(expires - now)
    }
}

/// The record this replica writes to hold the lease, given what it holds now.
fn claimed(me: &str, current: &Record, duration: Duration, now: jiff::Timestamp) -> Record {
    let ours = current.holder.as_deref() == Some(me);
    Record {
        holder: Some(me.to_owned()),
        duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if ours && current.acquire_time.is_some() {
            current.acquire_time.clone()
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        transitions: Some(
            current.transitions.unwrap_or(0) + i32::from(!ours && current.holder.is_some()),
        ),
    }
}

/// Why a term ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The lease could not be renewed before the renew deadline.
    Lost(String),
    /// A shutdown was asked for.
    Stopped,
}

/// A round's outcome.
enum Round {
    /// This replica holds the lease.
    Holding,
    /// Another holder (or an absence) must be waited out, for at most this long.
    Following(Duration),
    /// Someone wrote the Lease between this replica's read and write: look again at once.
    Conflict,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    fence: Arc<Fence>,
    liveness: Liveness,
    seen: Option<Seen>,
    holding: bool,
}

impl Elector {
    /// An elector for `settings.name` in `settings.namespace`; `fence` is opened while this
    /// replica holds the lease.
    #[must_use]
    pub fn new(
        client: Client,
        settings: LeaseSettings,
        fence: Arc<Fence>,
        liveness: Liveness,
    ) -> Self {
        Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            fence,
            liveness,
            seen: None,
            holding: false,
        }
    }

    /// Follows until this replica holds the lease (true), or until `stop` fires (false).
    pub async fn acquire(&mut self, stop: &mut watch::Receiver<bool>) -> bool {
        loop {
            if *stop.borrow_and_update() {
                return false;
            }
            let wait = match self.round().await {
                Ok(Round::Holding) => return true,
                Ok(Round::Following(wait)) => wait,
                Ok(Round::Conflict) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.settings.name, "could not read or take the Lease; trying again");
                    self.settings.retry_period
                }
            };
            self.liveness.lease_round();
            tokio::select! {
                () = tokio::time::sleep(wait.min(self.settings.retry_period)) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Renews the lease every retry period until the fence closes for want of a renewal
    /// (`Lost`) or `stop` fires (`Stopped`).
    pub async fn hold(&mut self, stop: &mut watch::Receiver<bool>) -> Ended {
        loop {
            self.liveness.lease_round();
            let Some(left) = self.fence.remaining(Instant::now()) else {
                return Ended::Stopped;
            };
            if left.is_zero() {
                self.holding = false;
                return Ended::Lost(format!(
                    "the Lease could not be renewed within the renew deadline ({:?})",
                    self.settings.renew_deadline
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.retry_period.min(left)) => {}
                _ = stop.changed() => {
                    if *stop.borrow() {
                        return Ended::Stopped;
                    }
                }
            }
            let left = self.fence.remaining(Instant::now()).unwrap_or_default();
            if left.is_zero() {
                continue;
            }
            // A renewal that answers after the fence closed cannot reopen it, so waiting
            // for it longer than the fence is open buys nothing.
            match tokio::time::timeout(left, self.round()).await {
                Ok(Ok(Round::Holding)) => {}
                // A renewal of ours that timed out may have been applied after all: the
                // next round reads what is there and decides.
                Ok(Ok(Round::Conflict)) => {}
                Ok(Ok(Round::Following(_))) => {
                    self.fence.close();
                    self.holding = false;
                    return Ended::Lost(format!(
                        "another replica holds the Lease now ({})",
                        self.holder().unwrap_or("nobody")
                    ));
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, left = ?self.fence.remaining(Instant::now()), "could not renew the Lease; trying again");
                }
                Err(_elapsed) => {}
            }
        }
    }

    /// Gives the lease up so that a follower takes over at once. The caller has stopped
    /// every writer (the fence is closed here first).
    pub async fn release(&mut self) {
        self.fence.close();
        if !self.holding {
            return;
        }
        self.holding = false;
        let timeout = self.settings.call_timeout();
        let Ok(Ok(Some(lease))) =
            tokio::time::timeout(timeout, self.api.get_opt(&self.settings.name)).await
        else {
            return;
        };
        if Record::of(&lease).holder.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        let now = MicroTime(jiff::Timestamp::now());
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": lease.resource_version() },
            "spec": {
                "holderIdentity": null,
                "leaseDurationSeconds": 1,
                "renewTime": now,
            },
        });
        let params = PatchParams {
            field_manager: Some(LEASE_FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        match tokio::time::timeout(
            timeout,
            self.api
                .patch(&self.settings.name, &params, &Patch::Merge(&patch)),
        )
        .await
        {
            Ok(Ok(_)) => tracing::info!(lease = %self.settings.name, "released the Lease"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the Lease; it expires by itself")
            }
            Err(_) => tracing::warn!("releasing the Lease timed out; it expires by itself"),
        }
    }

    /// Who holds the lease, as last seen.
    #[must_use]
    pub fn holder(&self) -> Option<&str> {
        self.seen.as_ref()?.record.as_ref()?.holder.as_deref()
    }

    /// Notes what a read found, keeping when it was first seen so.
    fn saw(&mut self, record: Option<Record>, at: Instant) -> Seen {
        if self.seen.as_ref().is_none_or(|seen| seen.record != record) {
            self.seen = Some(Seen { record, since: at });
        }
        self.seen.clone().unwrap_or(Seen {
            record: None,
            since: at,
        })
    }

    /// One round: read the Lease, then renew it, take it over, or wait, by the rules.
    async fn round(&mut self) -> Result<Round, kube::Error> {
        let timeout = self.settings.call_timeout();
        let name = self.settings.name.clone();
        let current = bounded(timeout, self.api.get_opt(&name)).await?;
        let read_at = Instant::now();
        let record = current.as_ref().map(Record::of);
        if self.holding
            && record.as_ref().and_then(|r| r.holder.as_deref())
                != Some(self.settings.identity.as_str())
        {
            // Deleted, or taken: whatever happened, this term is over.
            self.fence.close();
            self.holding = false;
        }
        let seen = self.saw(record.clone(), read_at);
        match next(
            &self.settings.identity,
            &seen,
            self.settings.duration,
            self.holding,
            Instant::now(),
        ) {
            Next::Wait(wait) => Ok(Round::Following(wait)),
            step @ (Next::Renew | Next::TakeOver) => {
                let Some(lease) = current else {
                    return self.create().await;
                };
                let record = record.unwrap_or_default();
                let claim = claimed(
                    &self.settings.identity,
                    &record,
                    self.settings.duration,
                    jiff::Timestamp::now(),
                );
                let patch = serde_json::json!({
                    "metadata": { "resourceVersion": lease.resource_version() },
                    "spec": spec_of(&claim),
                });
                let params = PatchParams {
                    field_manager: Some(LEASE_FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                };
                let sent = Instant::now();
                match bounded(
                    timeout,
                    self.api.patch(&name, &params, &Patch::Merge(&patch)),
                )
                .await
                {
                    Ok(written) => {
                        if step == Next::TakeOver || !self.holding {
                            tracing::info!(lease = %name, previous = ?record.holder, "took the Lease");
                        }
                        self.held(Record::of(&written), sent);
                        Ok(Round::Holding)
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(Round::Conflict),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Creates the Lease, held by this replica.
    async fn create(&mut self) -> Result<Round, kube::Error> {
        let claim = claimed(
            &self.settings.identity,
            &Record::default(),
            self.settings.duration,
            jiff::Timestamp::now(),
        );
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.settings.name.clone()),
                namespace: Some(self.settings.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(spec_of(&claim)),
        };
        let sent = Instant::now();
        match bounded(
            self.settings.call_timeout(),
            self.api.create(&PostParams::default(), &lease),
        )
        .await
        {
            Ok(written) => {
                tracing::info!(lease = %self.settings.name, "created and took the Lease");
                self.held(Record::of(&written), sent);
                Ok(Round::Holding)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Round::Conflict),
            Err(e) => Err(e),
        }
    }

    /// A write that makes this replica the holder succeeded; it was sent at `sent`.
    fn held(&mut self, record: Record, sent: Instant) {
        let until = sent + self.settings.renew_deadline;
        if self.holding {
            self.fence.extend(until, Instant::now());
        } else {
            self.fence.grant(until);
            self.holding = true;
        }
        self.seen = Some(Seen {
            record: Some(record),
            since: sent,
        });
    }
}

fn spec_of(record: &Record) -> LeaseSpec {
    LeaseSpec {
        holder_identity: record.holder.clone(),
        lease_duration_seconds: record.duration_seconds,
        acquire_time: record.acquire_time.clone(),
        renew_time: record.renew_time.clone(),
        lease_transitions: record.transitions,
        ..LeaseSpec::default()
    }
}

/// A Lease call bounded by `timeout` (below the client's own deadline: see
/// [`LeaseSettings::call_timeout`]).
async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, kube::Error> {
    tokio::time::timeout(timeout, call).await.map_err(|_| {
        kube::Error::Service(Box::new(crate::cluster::DeadlineExceeded {
            timeout,
            watch: false,
        }))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    /// What was seen: `None` for a Lease that did not exist, else its holder.
    fn seen(lease: Option<Option<&str>>, duration: Option<i32>, since: Instant) -> Seen {
        Seen {
            record: lease.map(|holder| Record {
                holder: holder.map(str::to_owned),
                duration_seconds: duration,
                ..Record::default()
            }),
            since,
        }
    }

    #[test]
    fn the_election_rules_row_by_row() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let (me, other) = (Some(Some("me")), Some(Some("other")));
        // (the Lease seen, its duration, holding, seen so for, what to do)
        type Row<'a> = (Option<Option<&'a str>>, Option<i32>, bool, Duration, Next);
        let rows: &[Row<'_>] = &[
            // Ours within a term: renew, whatever the time.
            (me, Some(15), true, s(0), Next::Renew),
            (me, Some(15), true, s(100), Next::Renew),
            // Released (no holder): take it at once.
            (Some(None), Some(1), false, s(0), Next::TakeOver),
            // Someone else's, seen unchanged for less than its duration: wait the rest.
            (other, Some(15), false, s(0), Next::Wait(s(15))),
            (other, Some(15), false, s(14), Next::Wait(s(1))),
            // ... for its whole duration: expired by our own observation.
            (other, Some(15), false, s(15), Next::TakeOver),
            (other, Some(15), false, s(60), Next::TakeOver),
            // Its own duration counts, not ours.
            (other, Some(30), false, s(20), Next::Wait(s(10))),
            // A record without a usable duration: ours.
            (other, None, false, s(10), Next::Wait(s(5))),
            (other, Some(0), false, s(15), Next::TakeOver),
            // Naming this replica from a term already lost (or restored from a backup): it
            // may hold it again only once it has expired like anyone's.
            (me, Some(15), false, s(3), Next::Wait(s(12))),
            (me, Some(15), false, s(15), Next::Renew),
            // No Lease at all: created only after it has been absent for a whole duration
            // (deleted under a holder that may still be writing).
            (None, None, false, s(0), Next::Wait(s(15))),
            (None, None, false, s(15), Next::TakeOver),
        ];
        for (lease, duration, holding, elapsed, want) in rows {
            let got = next(
                "me",
                &seen(*lease, *duration, t0),
                D,
                *holding,
                t0 + *elapsed,
            );
            assert_eq!(
                got, *want,
                "{lease:?} {duration:?} holding={holding} after {elapsed:?}"
            );
        }
    }

    #[test]
    fn a_claim_counts_transitions_only_when_the_holder_changes_and_keeps_its_acquire_time() {
        let now = jiff::Timestamp::now();
        let earlier = MicroTime(now - jiff::SignedDuration::from_secs(100));
        let ours = Record {
            holder: Some("me".into()),
            duration_seconds: Some(15),
            acquire_time: Some(earlier.clone()),
            renew_time: Some(earlier.clone()),
            transitions: Some(3),
        };
        let renewed = claimed("me", &ours, D, now);
        assert_eq!(renewed.transitions, Some(3));
        assert_eq!(renewed.acquire_time, Some(earlier.clone()));
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
        let theirs = Record {
            holder: Some("other".into()),
            ..ours.clone()
        };
        let taken = claimed("me", &theirs, D, now);
        assert_eq!(taken.holder.as_deref(), Some("me"));
        assert_eq!(taken.transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        assert_eq!(taken.duration_seconds, Some(15));
        let released = Record {
            holder: None,
            ..ours
        };
        assert_eq!(claimed("me", &released, D, now).transitions, Some(3));
    }

    #[test]
    fn timing_that_could_make_two_leaders_is_refused() {
        let settings = |duration: u64, deadline: u64, retry: u64| LeaseSettings {
            name: "l".into(),
            namespace: "n".into(),
            identity: "me".into(),
            duration: Duration::from_secs(duration),
            renew_deadline: Duration::from_secs(deadline),
            retry_period: Duration::from_secs(retry),
        };
        assert!(settings(15, 10, 2).validate().is_ok());
        assert!(settings(15, 15, 2).validate().is_err());
        assert!(settings(15, 20, 2).validate().is_err());
        assert!(settings(15, 10, 10).validate().is_err());
        assert!(settings(15, 10, 0).validate().is_err());
    }
}
