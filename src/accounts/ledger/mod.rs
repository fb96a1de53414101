//! The attempt ledgers: the pure counting rules ([`rules`]) and the ledger objects in the
//! API server, read, changed and written back with the object's
//! `resourceVersion` (optimistic concurrency: a concurrent writer makes the write fail with
//! a conflict, and the change is made again on what that writer left), so concurrent
//! reconciles, a restart or a new leader can neither lose nor double an entry.

use std::time::Duration;

use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};

pub mod rules;

use crate::api::{ConnectAttemptLedger, ConnectAttemptLedgerSpec, ledger_name};
pub use rules::{Admission, Attempt, Outcome, Summary};

/// How many times a write is tried again after a conflict.
const CONFLICT_RETRIES: usize = 20;

/// A ledger could not be read or written: the attempt is not made.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The API server refused or failed.
    #[error("attempt ledger {name}: {source}")]
    Kube {
        /// The ledger.
        name: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Other writers kept changing the ledger.
    #[error("attempt ledger {0}: too many concurrent writes; trying again later")]
    Contended(String),
}

/// Reads and writes the ledgers (every call bounded by the client's request deadline).
#[derive(Clone)]
pub struct Ledgers {
    client: Client,
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 409)
}

impl Ledgers {
    /// Ledgers through this client.
    #[must_use]
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self) -> Api<ConnectAttemptLedger> {
        Api::all(self.client.clone())
    }

    /// Applies `change` to the ledger of `account` in `region` (created if missing) and
    /// writes it back if it changed, retrying on conflicts. Returns what `change` returned.
    async fn update<T>(
        &self,
        account: &str,
        region: &str,
        mut change: impl FnMut(&mut ConnectAttemptLedgerSpec) -> (T, bool),
    ) -> Result<T, LedgerError> {
        let name = ledger_name(account, region);
        let kube = |source| LedgerError::Kube {
            name: name.clone(),
            source,
        };
        for attempt in 0..CONFLICT_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(5..50))).await;
            }
            let current = self.api().get_opt(&name).await.map_err(kube)?;
            let written = match current {
                None => {
                    let mut spec = ConnectAttemptLedgerSpec {
                        account: account.to_owned(),
                        region: region.to_owned(),
                        entries: vec![],
                        aws_limit_reached_at: None,
                    };
                    let (out, _) = change(&mut spec);
                    let mut ledger = ConnectAttemptLedger::new(&name, spec);
                    ledger.metadata = ObjectMeta {
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    };
                    self.api()
                        .create(&PostParams::default(), &ledger)
                        .await
                        .map(|_| out)
                }
                Some(mut ledger) => {
                    let (out, changed) = change(&mut ledger.spec);
                    if !changed {
                        return Ok(out);
                    }
                    ledger.managed_fields_mut().clear();
                    self.api()
                        .replace(&name, &PostParams::default(), &ledger)
                        .await
                        .map(|_| out)
                }
            };
            match written {
                Ok(out) => return Ok(out),
                // Someone wrote in between (or created it first): do it again on theirs.
                Err(e) if is_conflict(&e) => {}
                Err(e) => return Err(kube(e)),
            }
        }
        Err(LedgerError::Contended(name))
    }

    /// Write-ahead: records `attempt` before it is sent, or refuses a create the budget
    /// does not allow (nothing is written then).
    pub async fn record(
        &self,
        account: &str,
        region: &str,
        attempt: &Attempt,
        budget: u32,
    ) -> Result<Admission, LedgerError> {
        self.update(account, region, |spec| {
            let before = spec.entries.clone();
            let admission =
                rules::record(&mut spec.entries, attempt, budget, jiff::Timestamp::now());
            let changed = spec.entries != before;
            (admission, changed)
        })
        .await
    }

    /// Records what became of an attempt.
    pub async fn settle(
        &self,
        account: &str,
        region: &str,
        attempt: &Attempt,
        outcome: Outcome,
        aws_limit_reached: bool,
    ) -> Result<(), LedgerError> {
        self.update(account, region, |spec| {
            let mut changed = rules::settle(
                &mut spec.entries,
                attempt.operation,
                &attempt.client_token,
                outcome,
            );
            // Recorded once an hour at most: every refused retry would rewrite it.
            let now = jiff::Timestamp::now();
            let stale = spec
                .aws_limit_reached_at
                .as_deref()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_none_or(|t| now.duration_since(t) > jiff::SignedDuration::from_hours(1));
            if aws_limit_reached && stale {
                spec.aws_limit_reached_at = Some(now.to_string());
                changed = true;
            }
            ((), changed)
        })
        .await
    }

    /// Whether the ledger of `account` in `region` holds an attempt of `operation` with
    /// `client_token` (sent or about to be: entries are written ahead).
    pub async fn has_attempt(
        &self,
        account: &str,
        region: &str,
        operation: &str,
        client_token: &str,
    ) -> Result<bool, LedgerError> {
        let name = ledger_name(account, region);
        let ledger = self
            .api()
            .get_opt(&name)
            .await
            .map_err(|source| LedgerError::Kube { name, source })?;
        Ok(ledger.is_some_and(|l| rules::has_attempt(&l.spec.entries, operation, client_token)))
    }

    /// The ledgers of an account (few: one per region it is used in).
    pub async fn of_account(
        &self,
        account: &str,
    ) -> Result<Vec<ConnectAttemptLedger>, LedgerError> {
        self.api()
            .list(&kube::api::ListParams::default())
            .await
            .map(|list| {
                list.items
                    .into_iter()
                    .filter(|l| l.spec.account == account)
                    .collect()
            })
            .map_err(|source| LedgerError::Kube {
                name: format!("(ledgers of {account})"),
                source,
            })
    }
}
