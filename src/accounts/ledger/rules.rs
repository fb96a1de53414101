//! The counting rules of the attempt ledger (pure): which entries count against the 30-day
//! limit, when they expire, what a new attempt adds, and whether a create may go.
//!
//! Rules: one ClientToken (per operation) is one attempt, however often it is sent, as AWS
//! counts it. An entry counts unless AWS certainly did not accept the call (it answered
//! with an error, or the call was never sent); a pending entry (the process may have died
//! after writing it) and an unknown outcome (a timeout, a lost reply) count. An entry stops
//! counting 30 days after it was first sent and is pruned then. An entry that cannot be
//! read (a hand edit, corruption) always counts and is reported: a damaged ledger can only
//! make the operator more careful, never let it spend more.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

/// AWS's window for the create/delete attempt limit.
pub const WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// What is known of an attempt's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written before the call; the call may or may not have been sent.
    Pending,
    /// AWS accepted the call (or replayed an accepted one).
    Accepted,
    /// AWS certainly did not accept it: it answered with an error, or it was never sent.
    NotAccepted,
    /// Sent, but no answer arrived (timeout, lost reply): it may have been accepted.
    Unknown,
}

impl Outcome {
    /// The name in the ledger.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Accepted => "Accepted",
            Self::NotAccepted => "NotAccepted",
            Self::Unknown => "Unknown",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Accepted,
            Self::NotAccepted,
            Self::Unknown,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One attempt about to be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// `CreateInstance` or `DeleteInstance`.
    pub operation: &'static str,
    /// The ClientToken.
    pub client_token: String,
    /// `namespace/name` of the object.
    pub object: String,
    /// The object's UID.
    pub uid: String,
}

/// An entry as read from the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When the attempt was first sent (written).
    pub time: Timestamp,
    /// `CreateInstance` or `DeleteInstance`.
    pub operation: String,
    /// The ClientToken.
    pub client_token: String,
    /// What is known of the outcome.
    pub outcome: Outcome,
}

/// Reads one raw entry; `None` when it is malformed.
#[must_use]
pub fn parse(raw: &Value) -> Option<Entry> {
    let time = raw.get("time")?.as_str()?.parse::<Timestamp>().ok()?;
    let operation = raw.get("operation")?.as_str()?;
    if operation != "CreateInstance" && operation != "DeleteInstance" {
        return None;
    }
    let client_token = raw.get("clientToken")?.as_str()?;
    if client_token.is_empty() {
        return None;
    }
    let outcome = Outcome::parse(raw.get("outcome")?.as_str()?)?;
    Some(Entry {
        time,
        operation: operation.to_owned(),
        client_token: client_token.to_owned(),
        outcome,
    })
}

/// Whether `entries` hold an attempt of `operation` with `client_token`, in any outcome
/// (an entry otherwise unreadable counts when its token matches).
#[must_use]
pub fn has_attempt(entries: &[Value], operation: &str, client_token: &str) -> bool {
    entries.iter().any(|raw| {
        raw.get("clientToken").and_then(Value::as_str) == Some(client_token)
            && raw
                .get("operation")
                .and_then(Value::as_str)
                .is_none_or(|op| op == operation)
    })
}

/// When an entry stops counting.
#[must_use]
pub fn expires_at(entry: &Entry) -> Timestamp {
    entry
        .time
        .checked_add(jiff::SignedDuration::from_secs(
            WINDOW.as_secs().cast_signed(),
        ))
        .unwrap_or(Timestamp::MAX)
}

/// Whether an entry counts against the limit now.
#[must_use]
pub fn counts(entry: &Entry, now: Timestamp) -> bool {
    entry.outcome != Outcome::NotAccepted && expires_at(entry) > now
}

/// The ledger as the limit sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Attempts that count now (malformed entries included).
    pub used: u32,
    /// Entries that could not be read; each counts.
    pub malformed: u32,
    /// When the oldest counting (readable) attempt expires.
    pub oldest_expires_at: Option<Timestamp>,
}

/// Counts the entries.
#[must_use]
pub fn summarize(entries: &[Value], now: Timestamp) -> Summary {
    let mut summary = Summary::default();
    for raw in entries {
        match parse(raw) {
            None => {
                summary.malformed += 1;
                summary.used += 1;
            }
            Some(entry) if counts(&entry, now) => {
                summary.used += 1;
                let expiry = expires_at(&entry);
                if summary
                    .oldest_expires_at
                    .is_none_or(|oldest| expiry < oldest)
                {
                    summary.oldest_expires_at = Some(expiry);
                }
            }
            Some(_) => {}
        }
    }
    summary
}

/// Drops the readable entries older than the window; malformed ones stay (and count) until
/// a person removes them.
pub fn prune(entries: &mut Vec<Value>, now: Timestamp) -> usize {
    let before = entries.len();
    entries.retain(|raw| parse(raw).is_none_or(|entry| expires_at(&entry) > now));
    before - entries.len()
}

fn position(entries: &[Value], operation: &str, client_token: &str) -> Option<usize> {
    entries.iter().position(|raw| {
        raw.get("operation").and_then(Value::as_str) == Some(operation)
            && raw.get("clientToken").and_then(Value::as_str) == Some(client_token)
    })
}

/// Whether a create may be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go: the entry is in the ledger (new, or the same token's).
    Go,
    /// The budget is spent: nothing is written, nothing is sent.
    Refused(Summary),
}

/// Adds `attempt` to the entries (write-ahead), unless the same token is there already (the
/// same attempt, sent again: it becomes pending again if it had been marked not accepted).
/// A new create is refused when `budget` attempts already count; deletes never are.
pub fn record(
    entries: &mut Vec<Value>,
    attempt: &Attempt,
    budget: u32,
    now: Timestamp,
) -> Admission {
    prune(entries, now);
    if let Some(i) = position(entries, attempt.operation, &attempt.client_token) {
        if entries[i].get("outcome").and_then(Value::as_str) == Some(Outcome::NotAccepted.as_str())
        {
            if attempt.operation == "CreateInstance" {
                let summary = summarize(entries, now);
                if summary.used >= budget {
                    return Admission::Refused(summary);
                }
            }
            entries[i]["outcome"] = json!(Outcome::Pending.as_str());
        }
        return Admission::Go;
    }
    if attempt.operation == "CreateInstance" {
        let summary = summarize(entries, now);
        if summary.used >= budget {
            return Admission::Refused(summary);
        }
    }
    entries.push(json!({
        "time": now.to_string(),
        "operation": attempt.operation,
        "clientToken": attempt.client_token,
        "object": attempt.object,
        "uid": attempt.uid,
        "outcome": Outcome::Pending.as_str(),
    }));
    Admission::Go
}

/// Records the outcome of the attempt with this token. An accepted or unknown outcome is
/// never downgraded to "not accepted" by a later answer for the same token (the later
/// answer may be a refusal of a replay; the first acceptance still counts).
pub fn settle(
    entries: &mut [Value],
    operation: &str,
    client_token: &str,
    outcome: Outcome,
) -> bool {
    let Some(i) = position(entries, operation, client_token) else {
        return false;
    };
    let current = entries[i]
        .get("outcome")
        .and_then(Value::as_str)
        .and_then(Outcome::parse);
    let next = match (current, outcome) {
        (Some(Outcome::Accepted), _) => Outcome::Accepted,
        (Some(Outcome::Unknown), Outcome::NotAccepted) => Outcome::Unknown,
        (_, o) => o,
    };
    if current == Some(next) {
        return false;
    }
    entries[i]["outcome"] = json!(next.as_str());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap_or_default()
    }

    fn create(token: &str) -> Attempt {
        Attempt {
            operation: "CreateInstance",
            client_token: token.into(),
            object: "ns/name".into(),
            uid: "uid".into(),
        }
    }

    fn delete(token: &str) -> Attempt {
        Attempt {
            operation: "DeleteInstance",
            ..create(token)
        }
    }

    const DAY: i64 = 86_400;

    #[test]
    fn an_attempt_is_found_by_operation_and_token_in_any_outcome() {
        let mut entries = vec![];
        assert!(!has_attempt(&entries, "CreateInstance", "t1"));
        let _ = record(&mut entries, &create("t1"), 5, at(0));
        let _ = record(&mut entries, &delete("t2"), 5, at(1));
        assert!(has_attempt(&entries, "CreateInstance", "t1"));
        assert!(!has_attempt(&entries, "CreateInstance", "t2"));
        assert!(!has_attempt(&entries, "DeleteInstance", "t1"));
        // Refused by AWS: still an attempt that was made.
        let _ = settle(&mut entries, "CreateInstance", "t1", Outcome::NotAccepted);
        assert!(has_attempt(&entries, "CreateInstance", "t1"));
        // An entry whose operation cannot be read counts when its token matches.
        entries.push(json!({"clientToken": "t3"}));
        assert!(has_attempt(&entries, "CreateInstance", "t3"));
    }

    #[test]
    fn the_same_token_is_one_attempt_however_often_it_is_sent() {
        let mut entries = vec![];
        assert_eq!(record(&mut entries, &create("t1"), 5, at(0)), Admission::Go);
        assert_eq!(
            record(&mut entries, &create("t1"), 5, at(10)),
            Admission::Go
        );
        settle(&mut entries, "CreateInstance", "t1", Outcome::Accepted);
        assert_eq!(
            record(&mut entries, &create("t1"), 5, at(20)),
            Admission::Go
        );
        assert_eq!(entries.len(), 1);
        assert_eq!(summarize(&entries, at(30)).used, 1);
        // The delete of the same object is another attempt.
        record(&mut entries, &delete("t1"), 5, at(40));
        assert_eq!(summarize(&entries, at(50)).used, 2);
    }

    #[test]
    fn pending_and_unknown_count_not_accepted_does_not() {
        let mut entries = vec![];
        record(&mut entries, &create("pending"), 9, at(0));
        record(&mut entries, &create("unknown"), 9, at(0));
        record(&mut entries, &create("refused"), 9, at(0));
        record(&mut entries, &create("accepted"), 9, at(0));
        settle(&mut entries, "CreateInstance", "unknown", Outcome::Unknown);
        settle(
            &mut entries,
            "CreateInstance",
            "refused",
            Outcome::NotAccepted,
        );
        settle(
            &mut entries,
            "CreateInstance",
            "accepted",
            Outcome::Accepted,
        );
        assert_eq!(summarize(&entries, at(1)).used, 3);
        // A later refusal never takes back an acceptance or an unknown outcome.
        settle(
            &mut entries,
            "CreateInstance",
            "accepted",
            Outcome::NotAccepted,
        );
        settle(
            &mut entries,
            "CreateInstance",
            "unknown",
            Outcome::NotAccepted,
        );
        assert_eq!(summarize(&entries, at(1)).used, 3);
        // Sent again after a refusal: pending again, so it counts.
        record(&mut entries, &create("refused"), 9, at(2));
        assert_eq!(summarize(&entries, at(3)).used, 4);
    }

    #[test]
    fn creates_stop_at_the_budget_deletes_never_do() {
        let mut entries = vec![];
        for i in 0..3 {
            assert_eq!(
                record(&mut entries, &create(&format!("c{i}")), 3, at(i)),
                Admission::Go
            );
        }
        let Admission::Refused(summary) = record(&mut entries, &create("c3"), 3, at(5)) else {
            panic!("a fourth create within a budget of 3");
        };
        assert_eq!(
            (summary.used, summary.oldest_expires_at),
            (3, Some(at(30 * DAY)))
        );
        assert_eq!(entries.len(), 3, "a refusal writes nothing");
        // The tokens already in the ledger may still be sent (they are the same attempts).
        assert_eq!(record(&mut entries, &create("c1"), 3, at(6)), Admission::Go);
        assert_eq!(record(&mut entries, &delete("d0"), 3, at(7)), Admission::Go);
        assert_eq!(summarize(&entries, at(8)).used, 4);
        // A create marked not accepted, sent again while the budget is spent, is refused.
        settle(&mut entries, "CreateInstance", "c2", Outcome::NotAccepted);
        record(&mut entries, &delete("d1"), 3, at(9));
        assert!(matches!(
            record(&mut entries, &create("c2"), 3, at(10)),
            Admission::Refused(_)
        ));
    }

    #[test]
    fn attempts_expire_after_thirty_days_and_are_pruned() {
        let mut entries = vec![];
        record(&mut entries, &create("old"), 1, at(0));
        assert!(matches!(
            record(&mut entries, &create("new"), 1, at(DAY)),
            Admission::Refused(_)
        ));
        assert_eq!(summarize(&entries, at(30 * DAY - 1)).used, 1);
        assert_eq!(summarize(&entries, at(30 * DAY)).used, 0);
        assert_eq!(
            record(&mut entries, &create("new"), 1, at(30 * DAY)),
            Admission::Go
        );
        assert_eq!(entries.len(), 1, "the expired entry was pruned");
        assert_eq!(entries[0]["clientToken"], "new");
    }

    #[test]
    fn malformed_entries_count_and_are_never_pruned() {
        let mut entries = vec![
            json!({"time": "yesterday", "operation": "CreateInstance", "clientToken": "x", "outcome": "Accepted"}),
            json!({"operation": "CreateInstance"}),
            json!({"time": "2026-01-01T00:00:00Z", "operation": "CreateInstance", "clientToken": "y", "outcome": "Maybe"}),
            json!("not even an object"),
        ];
        let summary = summarize(&entries, at(0));
        assert_eq!((summary.used, summary.malformed), (4, 4));
        assert_eq!(prune(&mut entries, at(365 * DAY)), 0);
        assert!(matches!(
            record(&mut entries, &create("z"), 4, at(0)),
            Admission::Refused(_)
        ));
    }
}
