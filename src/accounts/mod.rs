//! Accounts: which `ConnectAccount` an object uses, whether its namespace may use it, and
//! the controller that verifies each account's credentials and keeps it while objects
//! refer to it.
//!
//! [`Directory`] holds the operator's view of accounts and namespaces (reflector stores,
//! synced before any reconcile runs) and answers, without I/O, how an object reaches AWS
//! ([`Resolution`]). Changes to either are turned into [`Wake`]s, so objects waiting on an
//! account recover by themselves when it appears or its selector changes.

pub mod controller;
pub mod ledger;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::core::{PartialObjectMeta, Selector, SelectorExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use crate::api::{ConnectAccount, ConnectInstance};
use crate::aws::{Access, Target};
use crate::cluster::Watches;
use crate::conditions::State;

/// Something that may let waiting objects move on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wake {
    /// A `ConnectAccount` appeared, changed or went away.
    Account(String),
    /// A namespace's labels changed.
    Namespace(String),
    /// One of our instances is gone from this account and region: capacity under the
    /// instance quota is free.
    CapacityFreed {
        /// The `ConnectAccount` the instance was deleted through.
        account: String,
        /// The AWS account id.
        account_id: String,
        /// The region.
        region: String,
    },
}

/// How an object reaches AWS, or why it may not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The account exists and selects the object's namespace.
    Usable {
        /// The account's name.
        name: String,
        /// The credentials.
        access: Access,
        /// The account id its credentials were verified to reach, when known.
        account_id: Option<String>,
        /// How many create and delete attempts in 30 days creates may use.
        budget: u32,
    },
    /// Nothing may be sent to AWS: the state to report and its message.
    Refused(State, String),
}

impl Resolution {
    /// Where the object's calls go in `region`. The rate limits are per AWS account; until
    /// the account is verified, its name stands in for the id.
    #[must_use]
    pub fn target(&self, region: &str) -> Option<Target> {
        match self {
            Self::Usable {
                name,
                access,
                account_id,
                ..
            } => Some(Target {
                access: access.clone(),
                account_id: account_id
                    .clone()
                    .unwrap_or_else(|| format!("account/{name}")),
                region: region.to_owned(),
            }),
            Self::Refused(..) => None,
        }
    }

    /// The refusal, if the object may not reach AWS.
    #[must_use]
    pub fn refusal(&self) -> Option<(State, &str)> {
        match self {
            Self::Usable { .. } => None,
            Self::Refused(state, message) => Some((*state, message.as_str())),
        }
    }
}

/// The status of an account's `Ready` condition.
fn ready_status(account: &ConnectAccount) -> Option<&str> {
    account
        .condition(crate::conditions::types::READY)
        .map(|c| c.status.as_str())
}

/// The credentials an account's spec names.
#[must_use]
pub fn access_of(account: &ConnectAccount) -> Access {
    Access {
        role_arn: account.spec.role_arn.clone(),
        external_id: account.spec.external_id.clone(),
    }
}

/// The generation of an account last verified, and when.
type Verified = (Option<i64>, std::time::Instant);

/// Where wakes go: to the instance controller of the current leadership term, if any. A
/// new term subscribes anew; wakes sent while no controller listens are dropped (a new
/// term lists every object anyway).
#[derive(Clone, Default)]
struct WakeHub {
    sender: Arc<Mutex<Option<mpsc::UnboundedSender<Wake>>>>,
}

impl WakeHub {
    fn send(&self, wake: Wake) {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(sender) = sender.as_ref() {
            let _ = sender.send(wake);
        }
    }

    fn subscribe(&self) -> mpsc::UnboundedReceiver<Wake> {
        let (sender, receiver) = mpsc::unbounded_channel();
        *self
            .sender
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(sender);
        receiver
    }
}

/// The operator's view of accounts and namespaces.
#[derive(Clone)]
pub struct Directory {
    accounts: Store<ConnectAccount>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    account_selector: Option<String>,
    wakes: WakeHub,
    /// Per account being deleted, the users last announced (so the event is not repeated).
    announced_users: Arc<Mutex<BTreeMap<String, String>>>,
    /// Per account, the generation last verified and when.
    verified: Arc<Mutex<BTreeMap<String, Verified>>>,
}

impl Directory {
    /// Starts watching the accounts this operator serves (those matching
    /// `account_selector`, a label selector; all when `None`) and the namespaces (only
    /// that one when the operator watches one), and returns once both are listed.
    pub async fn start(
        client: Client,
        watches: &Watches,
        namespaces: &[String],
        account_selector: Option<String>,
    ) -> Result<Self, DirectoryError> {
        let wakes = WakeHub::default();
        let mut account_config = watches.config();
        if let Some(selector) = &account_selector {
            account_config = account_config.labels(selector);
        }
        let (accounts, writer) = reflector::store();
        let tx = wakes.clone();
        let seen = accounts.clone();
        let account_stream = watches
            .open(
                Api::<ConnectAccount>::all(client.clone()),
                account_config,
                "ConnectAccount (directory)",
            )
            // Only what objects depend on wakes them: the spec (selector, role, budget), the
            // verified account id, and the account's coming and going. The attempts summary
            // changes with every attempt and concerns no object.
            .inspect_ok(move |event| match event {
                watcher::Event::Apply(a) => {
                    let before = seen.get(&reflector::ObjectRef::from_obj(a));
                    let relevant = before.is_none_or(|b| {
                        b.metadata.generation != a.metadata.generation
                            || b.metadata.deletion_timestamp != a.metadata.deletion_timestamp
                            || b.status.as_ref().and_then(|s| s.account_id.as_ref())
                                != a.status.as_ref().and_then(|s| s.account_id.as_ref())
                            || ready_status(&b) != ready_status(a)
                    });
                    if relevant {
                        tx.send(Wake::Account(a.name_any()));
                    }
                }
                watcher::Event::Delete(a) => {
                    tx.send(Wake::Account(a.name_any()));
                }
                _ => {}
            })
            .modify(|a: &mut ConnectAccount| a.managed_fields_mut().clear())
            .reflect(writer)
            .for_each(move |event| {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "ConnectAccount watch failed; retrying");
                }
                futures::future::ready(())
            });
        let account_task = tokio::spawn(account_stream);

        let mut namespace_config = watches.config();
        if let [ns] = namespaces {
            namespace_config = namespace_config.fields(&format!("metadata.name={ns}"));
        }
        let (namespaces, writer) = reflector::store();
        let tx = wakes.clone();
        let seen = namespaces.clone();
        let namespace_stream = watches
            .open(
                Api::<PartialObjectMeta<Namespace>>::all(client),
                namespace_config,
                "Namespace",
            )
            // Only labels matter here; a change of anything else wakes nobody.
            .inspect_ok(move |event| {
                if let watcher::Event::Apply(ns) = event {
                    let before = seen.get(&reflector::ObjectRef::from_obj(ns));
                    if before.is_none_or(|b| b.labels() != ns.labels()) {
                        tx.send(Wake::Namespace(ns.name_any()));
                    }
                }
            })
            .modify(|ns: &mut PartialObjectMeta<Namespace>| {
                ns.managed_fields_mut().clear();
                ns.annotations_mut().clear();
            })
            .reflect(writer)
            .for_each(|event| {
                if let Err(e) = event {
                    tracing::warn!(error = %e, "namespace watch failed; retrying");
                }
                futures::future::ready(())
            });
        let namespace_task = tokio::spawn(namespace_stream);
        // The stores stay as they were if a watch task ends: that is a wedge /livez must
        // report, not a quiet loss of a probe.
        let liveness = watches.liveness().clone();
        tokio::spawn(async move {
            let which = tokio::select! {
                _ = account_task => "the ConnectAccount watch of the account directory ended",
                _ = namespace_task => "the namespace watch of the account directory ended",
            };
            tracing::error!(which, "a directory watch stopped");
            liveness.broken(which);
        });

        accounts
            .wait_until_ready()
            .await
            .map_err(|_| DirectoryError("the ConnectAccount watch stopped"))?;
        namespaces
            .wait_until_ready()
            .await
            .map_err(|_| DirectoryError("the namespace watch stopped"))?;
        Ok(Self {
            accounts,
            namespaces,
            account_selector,
            wakes,
            announced_users: Arc::default(),
            verified: Arc::default(),
        })
    }

    /// The accounts this operator serves.
    #[must_use]
    pub fn accounts(&self) -> &Store<ConnectAccount> {
        &self.accounts
    }

    /// The label selector of the accounts this operator serves (`None`: all).
    #[must_use]
    pub fn account_selector(&self) -> Option<&str> {
        self.account_selector.as_deref()
    }

    /// Whether an account's credentials are due for verification: never verified by this
    /// process, a new generation, or older than `interval`.
    #[must_use]
    pub fn verification_due(
        &self,
        account: &str,
        generation: Option<i64>,
        interval: std::time::Duration,
    ) -> bool {
        let verified = self
            .verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        verified
            .get(account)
            .is_none_or(|(g, at)| *g != generation || at.elapsed() >= interval)
    }

    /// Records a verification of an account's credentials (successful or not).
    pub fn verified(&self, account: &str, generation: Option<i64>) {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(account.to_owned(), (generation, std::time::Instant::now()));
    }

    /// Records which objects still use an account being deleted; true when that differs
    /// from what was last recorded (so it is worth an event).
    pub fn note_users(&self, account: &str, users: &str) -> bool {
        let mut announced = self
            .announced_users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        announced
            .insert(account.to_owned(), users.to_owned())
            .as_deref()
            != Some(users)
    }

    /// Announces something that may let waiting objects move on.
    pub fn wake(&self, wake: Wake) {
        self.wakes.send(wake);
    }

    /// The stream of wakes, for the instance controller of a new term; the previous
    /// term's stream ends.
    #[must_use]
    pub fn subscribe_wakes(&self) -> mpsc::UnboundedReceiver<Wake> {
        self.wakes.subscribe()
    }

    /// The account named `name`, if this operator serves it.
    #[must_use]
    pub fn account(&self, name: &str) -> Option<Arc<ConnectAccount>> {
        self.accounts
            .get(&reflector::ObjectRef::<ConnectAccount>::new(name))
    }

    /// How `obj` reaches AWS, or why it may not.
    #[must_use]
    pub fn resolve(&self, obj: &ConnectInstance) -> Resolution {
        let name = obj.spec.account_name();
        let namespace = obj.namespace().unwrap_or_default();
        let Some(account) = self.account(name) else {
            let mut message = format!(
                "ConnectAccount {name} does not exist; nothing is sent to AWS. Create it (or set spec.accountRef.name to an existing account; the field is immutable, so recreate the object)"
            );
            if let Some(selector) = &self.account_selector {
                let _ = write!(
                    message,
                    "; this operator serves only the accounts labelled {selector}"
                );
            }
            return Resolution::Refused(State::AccountNotFound, message);
        };
        let labels = self
            .namespaces
            .get(&reflector::ObjectRef::<PartialObjectMeta<Namespace>>::new(
                &namespace,
            ))
            .map(|ns| ns.labels().clone())
            .unwrap_or_default();
        if let Err(why) = selects(&account, &labels) {
            return Resolution::Refused(
                State::AccountNotAllowed,
                format!(
                    "ConnectAccount {name} may not be used from namespace {namespace}: {why}; nothing is sent to AWS"
                ),
            );
        }
        Resolution::Usable {
            name: name.to_owned(),
            access: access_of(&account),
            account_id: account.status.as_ref().and_then(|s| s.account_id.clone()),
            budget: account.budget(),
        }
    }
}

/// Whether the account's namespace selector selects a namespace with these labels.
fn selects(account: &ConnectAccount, labels: &BTreeMap<String, String>) -> Result<(), String> {
    let selector = Selector::try_from(account.spec.namespace_selector.clone())
        .map_err(|e| format!("its spec.namespaceSelector is invalid ({e})"))?;
    if selector.matches(labels) {
        Ok(())
    } else {
        Err(format!(
            "its spec.namespaceSelector ({}) does not select the namespace",
            describe_selector(&selector)
        ))
    }
}

fn describe_selector(selector: &Selector) -> String {
    let text = selector.to_string();
    if text.is_empty() {
        "every namespace".to_owned()
    } else {
        text
    }
}

/// A watch the directory needs stopped before it was listed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DirectoryError(&'static str);

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    fn account(selector: LabelSelector) -> ConnectAccount {
        ConnectAccount::new(
            "team-a",
            crate::api::ConnectAccountSpec {
                role_arn: None,
                external_id: None,
                namespace_selector: selector,
                lifecycle_attempt_budget: 80,
            },
        )
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_empty_selector_selects_every_namespace_and_labels_narrow_it() {
        assert_eq!(
            selects(&account(LabelSelector::default()), &labels(&[])),
            Ok(())
        );
        let team = account(LabelSelector {
            match_labels: Some(labels(&[("team", "a")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "env".into(),
                operator: "In".into(),
                values: Some(vec!["dev".into(), "prod".into()]),
            }]),
        });
        assert_eq!(
            selects(&team, &labels(&[("team", "a"), ("env", "dev")])),
            Ok(())
        );
        let refused = selects(&team, &labels(&[("team", "b"), ("env", "dev")]));
        assert!(
            refused
                .as_ref()
                .is_err_and(|m| m.contains("team=a") && m.contains("does not select")),
            "{refused:?}"
        );
        assert!(selects(&team, &labels(&[("team", "a")])).is_err());
    }
}
