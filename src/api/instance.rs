//! The `ConnectInstance` resource.
//!
//! Validation lives in the schema (OpenAPI constraints and CEL rules) so that the API server
//! rejects bad input at admission, before anything can reach AWS.
//!
//! One file: the spec, its status and the CRD they generate are one schema, read together
//! when a field or a CEL rule changes.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::configuration::{LexBotSpec, StorageConfigSpec};
use super::replica::{
    AppliedTrafficDistribution, ReplicaSpec, ReplicaStatus, TrafficDistributionSpec,
};

/// The finalizer that keeps a `ConnectInstance` until its Amazon Connect instance is deleted
/// (or released, with `deletionPolicy: Retain`).
pub const FINALIZER: &str = "connect.operators.dev/cleanup";

/// The AWS tag that marks an instance as created by one `ConnectInstance` (value: its UID).
pub const UID_TAG: &str = "connect.operators.dev/uid";

/// The annotation that pauses an object: `"true"` stops every AWS call for it.
pub const PAUSED_ANNOTATION: &str = "connect.operators.dev/paused";

/// The annotation that allows deleting the ConnectInstance CRD (and with it every object)
/// past the chart's admission policy.
pub const ALLOW_CRD_DELETION_ANNOTATION: &str = "connect.operators.dev/allow-crd-deletion";

/// Desired state of an Amazon Connect instance.
// The derive's repeated `printcolumn(type_ = ...)` keys look like duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "connect.operators.dev",
    version = "v1alpha1",
    kind = "ConnectInstance",
    plural = "connectinstances",
    shortname = "connectinst",
    category = "aws",
    category = "amazon-connect",
    namespaced,
    status = "ConnectInstanceStatus",
    doc = "An Amazon Connect instance managed declaratively: the operator creates it, keeps its attributes and tags converged, and deletes it (or releases it) when the object is deleted.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(name = "Alias", type_ = "string", json_path = ".spec.instanceAlias"),
    printcolumn(
        name = "Instance-ID",
        type_ = "string",
        json_path = ".status.instanceId"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".status.accountId",
        priority = 1
    ),
    printcolumn(
        name = "ARN",
        type_ = "string",
        json_path = ".status.arn",
        priority = 1
    ),
    printcolumn(
        name = "Access-URL",
        type_ = "string",
        json_path = ".status.instanceAccessUrl",
        priority = 1
    ),
    printcolumn(
        name = "Replica-Region",
        type_ = "string",
        json_path = ".status.replica.region",
        priority = 1
    ),
    printcolumn(
        name = "Replica-Status",
        type_ = "string",
        json_path = ".status.replica.status",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].message"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.identityManagementType != 'EXISTING_DIRECTORY' || has(self.directoryId)")
        .message("spec.directoryId is required when spec.identityManagementType is EXISTING_DIRECTORY")
        .field_path(".directoryId"),
    validation = Rule::new("self.identityManagementType == 'EXISTING_DIRECTORY' || !has(self.directoryId)")
        .message("spec.directoryId may only be set when spec.identityManagementType is EXISTING_DIRECTORY")
        .field_path(".directoryId"),
    validation = Rule::new("self.identityManagementType == 'EXISTING_DIRECTORY' || has(self.instanceAlias)")
        .message("spec.instanceAlias is required unless spec.identityManagementType is EXISTING_DIRECTORY")
        .field_path(".instanceAlias"),
    validation = Rule::new("has(self.instanceAlias) == has(oldSelf.instanceAlias) && (!has(self.instanceAlias) || self.instanceAlias == oldSelf.instanceAlias)")
        .message("spec.instanceAlias is immutable")
        .field_path(".instanceAlias"),
    validation = Rule::new("has(self.directoryId) == has(oldSelf.directoryId) && (!has(self.directoryId) || self.directoryId == oldSelf.directoryId)")
        .message("spec.directoryId is immutable")
        .field_path(".directoryId"),
    validation = Rule::new("has(self.region) == has(oldSelf.region) && (!has(self.region) || self.region == oldSelf.region)")
        .message("spec.region is immutable")
        .field_path(".region"),
    validation = Rule::new("has(self.instanceId) == has(oldSelf.instanceId) && (!has(self.instanceId) || self.instanceId == oldSelf.instanceId)")
        .message("spec.instanceId is immutable: it can be neither added, changed nor removed after creation")
        .field_path(".instanceId"),
    validation = Rule::new("(has(self.accountRef) ? self.accountRef.name : 'default') == (has(oldSelf.accountRef) ? oldSelf.accountRef.name : 'default')")
        .message("spec.accountRef is immutable: an instance stays in the account it was created or adopted in")
        .field_path(".accountRef"),
    validation = Rule::new("!has(self.instanceId) || has(self.deletionPolicy)")
        .message("spec.deletionPolicy must be set explicitly (Delete or Retain) when spec.instanceId adopts an existing instance")
        .field_path(".deletionPolicy"),
    validation = Rule::new("!has(self.managementPolicy) || self.managementPolicy != 'ObserveOnly' || has(self.instanceId)")
        .message("spec.managementPolicy ObserveOnly requires spec.instanceId: the instance to observe")
        .field_path(".managementPolicy"),
    validation = Rule::new("!has(self.managementPolicy) || self.managementPolicy != 'ObserveOnly' || (has(self.deletionPolicy) && self.deletionPolicy == 'Retain')")
        .message("spec.managementPolicy ObserveOnly requires spec.deletionPolicy Retain: an observed instance is never deleted")
        .field_path(".deletionPolicy"),
    validation = Rule::new("!has(self.replica) || self.identityManagementType == 'SAML'")
        .message("spec.replica requires spec.identityManagementType SAML: AWS replicates only SAML instances")
        .field_path(".replica"),
    validation = Rule::new("!has(self.replica) || !has(self.region) || (self.region + '>' + self.replica.region) in ['us-east-1>us-west-2', 'us-west-2>us-east-1', 'eu-central-1>eu-west-2', 'eu-west-2>eu-central-1', 'ap-northeast-1>ap-northeast-3']")
        .message("spec.replica.region must be the pair of spec.region: us-east-1 and us-west-2, eu-central-1 and eu-west-2, ap-northeast-1 to ap-northeast-3")
        .field_path(".replica.region"),
    validation = Rule::new("!has(self.replica) || !has(oldSelf.replica) || self.replica == oldSelf.replica")
        .message("spec.replica is immutable once set: remove it (which deletes the replica) before replicating elsewhere")
        .field_path(".replica"),
    validation = Rule::new("!has(self.trafficDistribution) || has(self.replica)")
        .message("spec.trafficDistribution requires spec.replica: traffic is split between the instance and its replica")
        .field_path(".trafficDistribution"),
    validation = Rule::new("!has(self.trafficDistribution) || !has(self.replica) || [has(self.trafficDistribution.telephony) ? self.trafficDistribution.telephony : {}, has(self.trafficDistribution.agents) ? self.trafficDistribution.agents : {}].all(m, m.all(k, k == self.replica.region || (has(self.region) ? k == self.region : true)))")
        .message("spec.trafficDistribution may name only the instance's region and spec.replica.region")
        .field_path(".trafficDistribution"),
    validation = Rule::new("!has(self.trafficDistribution) || !has(self.replica) || !has(self.trafficDistribution.signIn) || self.trafficDistribution.signIn.all(k, k == self.replica.region || (has(self.region) ? k == self.region : true))")
        .message("spec.trafficDistribution.signIn may name only the instance's region and spec.replica.region")
        .field_path(".trafficDistribution.signIn"),
)]
pub struct ConnectInstanceSpec {
    /// How users of the instance are identified: `CONNECT_MANAGED` (users stored in Amazon
    /// Connect), `SAML` (federation through an identity provider) or `EXISTING_DIRECTORY`
    /// (an AWS Directory Service directory, named by `directoryId`). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.identityManagementType is immutable"))]
    pub identity_management_type: IdentityManagementType,

    /// The instance alias: the first label of the access URL
    /// (`https://<alias>.my.connect.aws`). Unique across AWS. 1–45 letters, digits and
    /// hyphens; must not start with `d-` or with/end in a hyphen. Required unless
    /// `identityManagementType` is `EXISTING_DIRECTORY`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 45),
        regex(pattern = r"^([\da-zA-Z]+)([-]*[\da-zA-Z])*$")
    )]
    #[x_kube(validation = Rule::new("!self.startsWith('d-')").message("spec.instanceAlias must not start with 'd-' (reserved for directory ids)"))]
    pub instance_alias: Option<String>,

    /// The AWS Directory Service directory (`d-` followed by 10 hex digits). Required when
    /// `identityManagementType` is `EXISTING_DIRECTORY`, not allowed otherwise. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^d-[0-9a-f]{10}$"))]
    pub directory_id: Option<String>,

    /// Whether the instance accepts inbound calls (instance attribute `INBOUND_CALLS`).
    pub inbound_calls_enabled: bool,

    /// Whether the instance can place outbound calls (instance attribute `OUTBOUND_CALLS`).
    pub outbound_calls_enabled: bool,

    /// The other instance attributes. An attribute left unset is not managed: the operator
    /// neither reads nor changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<InstanceAttributes>,

    /// AWS tags on the instance (at most 50; keys 1–128 characters, not starting with
    /// `aws:`; values up to 256 characters). Tags on the instance that are not listed here
    /// are removed, except `aws:` tags and the operator's own `connect.operators.dev/uid`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "tags_schema")]
    pub tags: BTreeMap<String, String>,

    /// Where the instance stores each kind of data (call recordings, chat transcripts,
    /// contact trace records, agent events, media streams, …), one entry per
    /// `resourceType`. Unset: not managed. When set, each listed type is converged to its
    /// entry; a type removed from the list is disassociated if the operator had been
    /// managing it (see `status.storageConfigs`); a type never listed is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["resourceType".into()]))]
    pub storage_configs: Option<Vec<StorageConfigSpec>>,

    /// The origins (`https://host[:port]`) allowed to embed the agent application, e.g. a
    /// CRM. Unset: not managed; set: exactly these (`[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 100),
        inner(
            regex(pattern = r"^https?://[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?(:[0-9]{1,5})?$"),
            length(max = 267)
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub approved_origins: Option<Vec<String>>,

    /// The Lambda functions (ARNs) flows of the instance may invoke, at most 50. Unset:
    /// not managed; set: exactly these (`[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 50),
        inner(
            regex(
                pattern = r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$"
            ),
            length(max = 140)
        )
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub lambda_functions: Option<Vec<String>>,

    /// The Lex V2 bots (by alias) flows of the instance may use, at most 100. Unset: not
    /// managed; set: exactly these (`[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["aliasArn".into()]))]
    pub lex_bots: Option<Vec<LexBotSpec>>,

    /// PEM public keys for signing the tokens of embedded applications, at most 2 (for
    /// rotation). Unset: not managed; set: exactly these (`[]`: none). Line breaks do not
    /// matter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2),
        inner(
            regex(
                pattern = r"^\s*-----BEGIN PUBLIC KEY-----[A-Za-z0-9+/=\s]+-----END PUBLIC KEY-----\s*$"
            ),
            length(min = 1, max = 1024)
        )
    )]
    pub security_keys: Option<Vec<String>>,

    /// The AWS region of the instance. Defaults to the operator's region. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d+$")
    )]
    pub region: Option<String>,

    /// What happens to the instance when this object is deleted: `Delete` (the default when
    /// unset) deletes it in AWS and waits until it is gone; `Retain` leaves it in AWS and
    /// only releases the object. May be changed at any time, also while the object is being
    /// deleted. Must be set explicitly with `instanceId`; must be `Retain` with
    /// `managementPolicy: ObserveOnly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// While true, nothing deletes the instance: the chart's admission policy refuses to
    /// delete this object, and the operator never sends DeleteInstance for it (a deletion
    /// that gets through waits, Stalled `DeletionProtected`, until this is false or
    /// `deletionPolicy` is `Retain`). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletion_protection: bool,

    /// Adopt this existing instance (its id, a UUID) instead of creating one. The instance's
    /// identity management type and alias must match the spec; an instance that carries
    /// another object's `connect.operators.dev/uid` tag is never taken over. Requires an
    /// explicit `deletionPolicy`. Immutable. `connect-operator import` writes a manifest
    /// with it for a live instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
    ))]
    pub instance_id: Option<String>,

    /// `Manage` (the default when unset): create or adopt the instance and keep it as the
    /// spec says. `ObserveOnly`: never write to AWS, whatever happens; the status mirrors
    /// the instance and `Drifted` lists how it differs from the spec. Requires `instanceId`
    /// and `deletionPolicy: Retain`. May be changed at any time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_policy: Option<ManagementPolicy>,

    /// A replica of the instance in its paired region (Amazon Connect Global Resiliency;
    /// `SAML` instances only, and the account must be allow-listed by AWS). The operator
    /// replicates once the instance is ACTIVE; Ready waits until the replica is complete.
    /// Immutable once set; removing it deletes the replica, once all traffic is back on
    /// the instance's own region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaSpec>,

    /// How telephony, agents and sign-in are split between the instance's region and the
    /// replica's (the default traffic distribution group). Requires `replica`. Unset: the
    /// split is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<TrafficDistributionSpec>,

    /// The `ConnectAccount` whose credentials, rate limits and attempt budget this instance
    /// uses. Defaults to the account named `default`. The account must select this object's
    /// namespace (its `spec.namespaceSelector`); otherwise nothing is sent to AWS. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_ref: Option<AccountRef>,
}

/// A reference to a cluster-scoped `ConnectAccount`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    /// The name of the `ConnectAccount`.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// The account an object names when its spec names none.
pub const DEFAULT_ACCOUNT: &str = "default";

/// Whether the operator writes to AWS for an object.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create or adopt the instance and converge it to the spec.
    #[default]
    Manage,
    /// Read the instance and report differences; never write to AWS.
    ObserveOnly,
}

/// How the users of an instance are identified.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IdentityManagementType {
    /// Users are stored and managed in Amazon Connect.
    ConnectManaged,
    /// Users are federated through a SAML 2.0 identity provider.
    Saml,
    /// Users come from an existing AWS Directory Service directory.
    ExistingDirectory,
}

impl IdentityManagementType {
    /// The value AWS uses for this type.
    #[must_use]
    pub fn as_aws_str(self) -> &'static str {
        match self {
            Self::ConnectManaged => "CONNECT_MANAGED",
            Self::Saml => "SAML",
            Self::ExistingDirectory => "EXISTING_DIRECTORY",
        }
    }
}

/// What deleting the object does to the Amazon Connect instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete the instance in AWS, and keep the object until AWS reports it gone.
    #[default]
    Delete,
    /// Leave the instance in AWS; deleting the object only releases it.
    Retain,
}

/// Optional instance attributes. Each one left unset is not managed by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceAttributes {
    /// Contact flow logs to CloudWatch (`CONTACTFLOW_LOGS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contactflow_logs: Option<bool>,
    /// Contact Lens analytics (`CONTACT_LENS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_lens: Option<bool>,
    /// Automatic selection of the best available voices (`AUTO_RESOLVE_BEST_VOICES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resolve_best_voices: Option<bool>,
    /// Custom text-to-speech voices (`USE_CUSTOM_TTS_VOICES`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_custom_tts_voices: Option<bool>,
    /// Early media for outbound calls (`EARLY_MEDIA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_media: Option<bool>,
    /// Multi-party calls and enhanced monitoring for voice (`MULTI_PARTY_CONFERENCE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_party_conference: Option<bool>,
    /// High volume outbound campaigns (`HIGH_VOLUME_OUTBOUND`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_volume_outbound: Option<bool>,
    /// Enhanced contact monitoring for voice (`ENHANCED_CONTACT_MONITORING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced_contact_monitoring: Option<bool>,
    /// Enhanced contact monitoring for chat (`ENHANCED_CHAT_MONITORING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced_chat_monitoring: Option<bool>,
    /// Multi-party chats (`MULTI_PARTY_CHAT_CONFERENCE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_party_chat_conference: Option<bool>,
    /// Message streaming (`MESSAGE_STREAMING`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_streaming: Option<bool>,
}

/// The 13 instance attribute types the operator manages, in AWS's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AttributeType {
    /// `INBOUND_CALLS`
    InboundCalls,
    /// `OUTBOUND_CALLS`
    OutboundCalls,
    /// `CONTACTFLOW_LOGS`
    ContactflowLogs,
    /// `CONTACT_LENS`
    ContactLens,
    /// `AUTO_RESOLVE_BEST_VOICES`
    AutoResolveBestVoices,
    /// `USE_CUSTOM_TTS_VOICES`
    UseCustomTtsVoices,
    /// `EARLY_MEDIA`
    EarlyMedia,
    /// `MULTI_PARTY_CONFERENCE`
    MultiPartyConference,
    /// `HIGH_VOLUME_OUTBOUND`
    HighVolumeOutbound,
    /// `ENHANCED_CONTACT_MONITORING`
    EnhancedContactMonitoring,
    /// `ENHANCED_CHAT_MONITORING`
    EnhancedChatMonitoring,
    /// `MULTI_PARTY_CHAT_CONFERENCE`
    MultiPartyChatConference,
    /// `MESSAGE_STREAMING`
    MessageStreaming,
}

impl AttributeType {
    /// Every managed attribute type.
    pub const ALL: [Self; 13] = [
        Self::InboundCalls,
        Self::OutboundCalls,
        Self::ContactflowLogs,
        Self::ContactLens,
        Self::AutoResolveBestVoices,
        Self::UseCustomTtsVoices,
        Self::EarlyMedia,
        Self::MultiPartyConference,
        Self::HighVolumeOutbound,
        Self::EnhancedContactMonitoring,
        Self::EnhancedChatMonitoring,
        Self::MultiPartyChatConference,
        Self::MessageStreaming,
    ];

    /// The name AWS uses for this attribute type.
    #[must_use]
    pub fn as_aws_str(self) -> &'static str {
        match self {
            Self::InboundCalls => "INBOUND_CALLS",
            Self::OutboundCalls => "OUTBOUND_CALLS",
            Self::ContactflowLogs => "CONTACTFLOW_LOGS",
            Self::ContactLens => "CONTACT_LENS",
            Self::AutoResolveBestVoices => "AUTO_RESOLVE_BEST_VOICES",
            Self::UseCustomTtsVoices => "USE_CUSTOM_TTS_VOICES",
            Self::EarlyMedia => "EARLY_MEDIA",
            Self::MultiPartyConference => "MULTI_PARTY_CONFERENCE",
            Self::HighVolumeOutbound => "HIGH_VOLUME_OUTBOUND",
            Self::EnhancedContactMonitoring => "ENHANCED_CONTACT_MONITORING",
            Self::EnhancedChatMonitoring => "ENHANCED_CHAT_MONITORING",
            Self::MultiPartyChatConference => "MULTI_PARTY_CHAT_CONFERENCE",
            Self::MessageStreaming => "MESSAGE_STREAMING",
        }
    }

    /// Parses AWS's name; `None` for attribute types the operator does not manage.
    #[must_use]
    pub fn from_aws_str(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_aws_str() == name)
    }
}

impl ConnectInstanceSpec {
    /// The name of the `ConnectAccount` in force: `default` unless the spec says otherwise.
    #[must_use]
    pub fn account_name(&self) -> &str {
        self.account_ref
            .as_ref()
            .map_or(DEFAULT_ACCOUNT, |r| r.name.as_str())
    }

    /// The deletion policy in force: `Delete` unless the spec says otherwise.
    #[must_use]
    pub fn effective_deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy.unwrap_or_default()
    }

    /// The management policy in force: `Manage` unless the spec says otherwise.
    #[must_use]
    pub fn effective_management_policy(&self) -> ManagementPolicy {
        self.management_policy.unwrap_or_default()
    }

    /// Whether the operator may write to AWS for this object.
    #[must_use]
    pub fn observe_only(&self) -> bool {
        self.effective_management_policy() == ManagementPolicy::ObserveOnly
    }

    /// The attribute values this spec asks for: inbound and outbound always, the others
    /// only where set.
    #[must_use]
    pub fn desired_attributes(&self) -> BTreeMap<AttributeType, bool> {
        let mut out = BTreeMap::from([
            (AttributeType::InboundCalls, self.inbound_calls_enabled),
            (AttributeType::OutboundCalls, self.outbound_calls_enabled),
        ]);
        if let Some(a) = &self.attributes {
            let optional = [
                (AttributeType::ContactflowLogs, a.contactflow_logs),
                (AttributeType::ContactLens, a.contact_lens),
                (
                    AttributeType::AutoResolveBestVoices,
                    a.auto_resolve_best_voices,
                ),
                (AttributeType::UseCustomTtsVoices, a.use_custom_tts_voices),
                (AttributeType::EarlyMedia, a.early_media),
                (
                    AttributeType::MultiPartyConference,
                    a.multi_party_conference,
                ),
                (AttributeType::HighVolumeOutbound, a.high_volume_outbound),
                (
                    AttributeType::EnhancedContactMonitoring,
                    a.enhanced_contact_monitoring,
                ),
                (
                    AttributeType::EnhancedChatMonitoring,
                    a.enhanced_chat_monitoring,
                ),
                (
                    AttributeType::MultiPartyChatConference,
                    a.multi_party_chat_conference,
                ),
                (AttributeType::MessageStreaming, a.message_streaming),
            ];
            out.extend(optional.into_iter().filter_map(|(t, v)| v.map(|v| (t, v))));
        }
        out
    }
}

/// Observed state, written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectInstanceStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Amazon Connect instance id, recorded as soon as CreateInstance answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// The instance ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The instance status AWS reports: `CREATION_IN_PROGRESS`, `ACTIVE` or `CREATION_FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_status: Option<String>,
    /// Why creation failed, as AWS reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// The URL agents and administrators sign in at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_access_url: Option<String>,
    /// The service-linked role the instance uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_role: Option<String>,
    /// When AWS created the instance (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_time: Option<String>,
    /// The AWS region the instance lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The AWS account the instance lives in (the id the `ConnectAccount`'s credentials
    /// verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// When CreateInstance first answered for this object (RFC 3339). Written once: within
    /// a grace period after it, an instance AWS does not show yet is "not visible yet"
    /// (AWS is eventually consistent), never "gone".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_requested_time: Option<String>,
    /// When DeleteInstance was first accepted for this object (RFC 3339). Written once, so
    /// that a restarted operator or a new leader polls the deletion instead of sending it
    /// again at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_requested_time: Option<String>,
    /// The storage configurations the operator manages: resource type → AWS's association
    /// id. A type is recorded when the operator associates it (or finds it associated
    /// while it is listed in the spec) and removed when it disassociates it; only recorded
    /// types are ever disassociated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_configs: BTreeMap<String, String>,
    /// The association ids of the security keys the operator manages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_keys: Vec<String>,
    /// The replica in the paired region, once ReplicateInstance answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaStatus>,
    /// The global sign-in endpoint of a replicated instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_sign_in_endpoint: Option<String>,
    /// The ARN of the default traffic distribution group AWS created with the replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution_group_arn: Option<String>,
    /// The traffic distribution last applied to the default group (or read from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<AppliedTrafficDistribution>,
    /// `Ready`, `Reconciling`, `Stalled` and `QuotaExceeded` (kstatus-compatible).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl ConnectInstanceStatus {
    /// The message of the condition of the given type, if present.
    #[must_use]
    pub fn condition_message(&self, type_: &str) -> Option<&str> {
        self.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| c.message.as_str())
    }
}

impl ConnectInstance {
    /// Whether the object carries `connect.operators.dev/paused: "true"`.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PAUSED_ANNOTATION))
            .is_some_and(|v| v == "true")
    }

    /// The condition of the given type, if present.
    #[must_use]
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
    }

    /// The object's AWS region: the one recorded at creation wins (the instance stays where
    /// it was created even if the operator's default changes), then the spec's, then the
    /// operator's default.
    #[must_use]
    pub fn region(&self, default_region: &str) -> String {
        self.status
            .as_ref()
            .and_then(|s| s.region.clone())
            .or_else(|| self.spec.region.clone())
            .unwrap_or_else(|| default_region.to_owned())
    }
}

fn tags_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 50,
        "additionalProperties": { "type": "string", "maxLength": 256 },
        "x-kubernetes-validations": [
            {
                "rule": "self.all(k, size(k) >= 1 && size(k) <= 128)",
                "message": "spec.tags keys must be 1 to 128 characters long"
            },
            {
                "rule": "self.all(k, !k.startsWith('aws:'))",
                "message": "spec.tags keys must not start with 'aws:' (reserved by AWS)"
            }
        ]
    })
}

pub(super) fn conditions_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let item = generator.subschema_for::<Condition>();
    schemars::json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crd_matches_the_generated_one() {
        // In file-name order, as `crds()` gives them.
        let committed = [
            include_str!("../../crds/connectaccounts.connect.operators.dev.yaml"),
            include_str!("../../crds/connectattemptledgers.connect.operators.dev.yaml"),
            include_str!("../../crds/connectinstances.connect.operators.dev.yaml"),
        ];
        let generated = super::super::crds();
        assert_eq!(generated.len(), committed.len());
        for ((file, crd), committed) in generated.iter().zip(committed) {
            let generated = serde_yaml::to_string(crd).unwrap_or_default();
            assert!(
                generated == committed,
                "crds/{file} is stale: run `cargo run -- crd --output-dir crds && hack/sync-chart-crds.sh`"
            );
            assert!(!committed.contains("nullable"));
        }
    }

    #[test]
    fn desired_attributes_cover_inbound_outbound_and_only_set_attributes() {
        let spec: ConnectInstanceSpec = serde_json::from_value(serde_json::json!({
            "identityManagementType": "CONNECT_MANAGED",
            "instanceAlias": "demo",
            "inboundCallsEnabled": true,
            "outboundCallsEnabled": false,
            "attributes": {"contactLens": true, "earlyMedia": false}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let desired = spec.desired_attributes();
        assert_eq!(
            desired.into_iter().collect::<Vec<_>>(),
            vec![
                (AttributeType::InboundCalls, true),
                (AttributeType::OutboundCalls, false),
                (AttributeType::ContactLens, true),
                (AttributeType::EarlyMedia, false),
            ]
        );
        // Unset policies are defaulted by the operator, not stored: what `kubectl get`
        // shows is what the user wrote.
        assert_eq!(spec.deletion_policy, None);
        assert_eq!(spec.effective_deletion_policy(), DeletionPolicy::Delete);
        assert_eq!(spec.effective_management_policy(), ManagementPolicy::Manage);
        assert!(!spec.deletion_protection);
        for t in AttributeType::ALL {
            assert_eq!(AttributeType::from_aws_str(t.as_aws_str()), Some(t));
        }
    }
}
