//! ClientTokens: the one place they are derived.
//!
//! A token is a function of the object's UID and the purpose of the call, so that every retry
//! of the same intent — after a timeout, a crash or a restart of the operator — sends the same
//! token and AWS treats it as the same request. Tokens are SHA-256 based, hex encoded, and well
//! inside the 500-character limit of Connect's `ClientToken`.

use sha2::{Digest, Sha256};

use crate::api::AttributeType;

/// The longest ClientToken Amazon Connect accepts.
pub const MAX_TOKEN_LEN: usize = 500;

/// The token for CreateInstance on behalf of the object with this UID.
#[must_use]
pub fn create_token(uid: &str) -> String {
    derive(&["create-instance", uid])
}

/// The token for DeleteInstance on behalf of the object with this UID.
#[must_use]
pub fn delete_token(uid: &str) -> String {
    derive(&["delete-instance", uid])
}

/// The token for ReplicateInstance of the object with this UID into `region`: a retry,
/// after a crash too, is a replay of the same request.
#[must_use]
pub fn replicate_token(uid: &str, region: &str) -> String {
    derive(&["replicate-instance", uid, region])
}

/// The token for DeleteInstance of the object's replica in `region`.
#[must_use]
pub fn replica_delete_token(uid: &str, region: &str) -> String {
    derive(&["delete-replica", uid, region])
}

/// The token for setting one attribute to one value, for one generation of the spec, within
/// one drift epoch.
///
/// The generation makes a new intent (a spec change) a new request; the epoch makes a later
/// correction of drift (someone changed the attribute outside the operator) a new request
/// too, so AWS never answers it from its idempotency cache without applying it.
#[must_use]
pub fn attribute_token(
    uid: &str,
    attribute: AttributeType,
    value: bool,
    generation: i64,
    epoch: u64,
) -> String {
    derive(&[
        "update-instance-attribute",
        uid,
        attribute.as_aws_str(),
        if value { "true" } else { "false" },
        &generation.to_string(),
        &epoch.to_string(),
    ])
}

/// The token for one instance-configuration write (an Associate, Update or Disassociate
/// call) of one item, at one generation and one drift epoch: `operation` is AWS's operation
/// name, `item` names what is written (a resource type with its configuration, an origin,
/// a function ARN, a bot alias ARN, a key), canonically, so that the same intent gives the
/// same token and a different one another.
#[must_use]
pub fn configuration_token(
    uid: &str,
    operation: &str,
    item: &str,
    generation: i64,
    epoch: u64,
) -> String {
    derive(&[
        operation,
        uid,
        item,
        &generation.to_string(),
        &epoch.to_string(),
    ])
}

fn derive(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        // Length-prefixing keeps ("ab","c") and ("a","bc") distinct.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    format!("cop-{}", hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "6f1c1f7e-0a55-4d3b-9d55-5a8e4b0c9a11";

    #[test]
    fn tokens_are_stable_for_the_same_uid() {
        assert_eq!(create_token(UID), create_token(UID));
        assert_eq!(delete_token(UID), delete_token(UID));
        assert_eq!(
            attribute_token(UID, AttributeType::ContactLens, true, 3, 7),
            attribute_token(UID, AttributeType::ContactLens, true, 3, 7)
        );
    }

    #[test]
    fn tokens_differ_by_purpose_uid_and_intent() {
        let tokens = [
            create_token(UID),
            delete_token(UID),
            create_token("another-uid"),
            attribute_token(UID, AttributeType::ContactLens, true, 3, 7),
            attribute_token(UID, AttributeType::ContactLens, false, 3, 7),
            attribute_token(UID, AttributeType::EarlyMedia, true, 3, 7),
            attribute_token(UID, AttributeType::ContactLens, true, 4, 7),
            attribute_token(UID, AttributeType::ContactLens, true, 3, 8),
        ];
        let unique: std::collections::BTreeSet<_> = tokens.iter().collect();
        assert_eq!(unique.len(), tokens.len(), "{tokens:?}");
    }

    #[test]
    fn tokens_fit_connect_limits() {
        let long_uid = "x".repeat(2000);
        for token in [create_token(&long_uid), delete_token(UID)] {
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert_eq!(token.len(), 68);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            );
        }
    }
}
