//! The `ConnectAttemptLedger` resource: the write-ahead record of instance create and delete
//! attempts of one account in one region, against AWS's 30-day limit.
//!
//! AWS has no API for the attempt count, so nothing can rebuild this from AWS: it is an
//! object of its own (not a status, which backup tools drop and the operator rewrites),
//! written only by the operator. The entries are kept as raw JSON so that a hand-edited or
//! corrupted entry is still seen (and counted) rather than failing the whole object.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The attempts of one `ConnectAccount` in one region.
// The derive's repeated `printcolumn(type_ = ...)` keys look like duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "connect.operators.dev",
    version = "v1alpha1",
    kind = "ConnectAttemptLedger",
    plural = "connectattemptledgers",
    shortname = "connectledger",
    category = "amazon-connect",
    doc = "The operator's write-ahead record of Amazon Connect instance create and delete attempts in one account and region (AWS limits them per 30 days). Written only by the operator; read it, never edit it.",
    printcolumn(name = "Account", type_ = "string", json_path = ".spec.account"),
    printcolumn(name = "Region", type_ = "string", json_path = ".spec.region"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAttemptLedgerSpec {
    /// The `ConnectAccount` the attempts were made through.
    pub account: String,
    /// The AWS region.
    pub region: String,
    /// One entry per attempt (a ClientToken is one attempt, however often it is sent):
    /// `time` (RFC 3339, first sent), `operation` (`CreateInstance` or `DeleteInstance`),
    /// `clientToken`, `object` (`namespace/name`), `uid`, `outcome` (`Pending`,
    /// `Accepted`, `NotAccepted`, `Unknown`).
    #[serde(default)]
    #[schemars(schema_with = "entries_schema")]
    pub entries: Vec<serde_json::Value>,
    /// When AWS last answered that its own 30-day limit is reached (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_limit_reached_at: Option<String>,
}

fn entries_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true
        }
    })
}

/// The name of the ledger of an account in a region.
#[must_use]
pub fn ledger_name(account: &str, region: &str) -> String {
    format!("{account}.{region}")
}
