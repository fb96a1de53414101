//! Instance configuration in the `ConnectInstance` spec: storage configurations, approved
//! origins, Lambda functions, Lex V2 bots and security keys.
//!
//! Each field follows the semantics of `attributes` and `tags`: unset is not managed (never
//! read, never touched); a list that is set is the whole truth. Validation is in the schema
//! (patterns, limits, CEL), so a manifest AWS would refuse is refused at admission, naming
//! the field.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every storage resource type AWS has today (botocore's `InstanceStorageResourceType`):
/// what `connect-operator import` reads.
pub const STORAGE_RESOURCE_TYPES: [&str; 13] = [
    "CHAT_TRANSCRIPTS",
    "CALL_RECORDINGS",
    "SCHEDULED_REPORTS",
    "MEDIA_STREAMS",
    "CONTACT_TRACE_RECORDS",
    "AGENT_EVENTS",
    "REAL_TIME_CONTACT_ANALYSIS_SEGMENTS",
    "ATTACHMENTS",
    "CONTACT_EVALUATIONS",
    "SCREEN_RECORDINGS",
    "REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS",
    "REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS",
    "EMAIL_MESSAGES",
];

/// The resource types AWS documents a single storage type for, and that storage type's
/// field in [`StorageConfigSpec`]. Types not listed (a type AWS adds later, say) pass
/// admission with any one storage type and are AWS's to refuse.
pub const STORAGE_TYPE_RULES: [(&str, &str); 12] = [
    ("CALL_RECORDINGS", "s3"),
    ("CHAT_TRANSCRIPTS", "s3"),
    ("SCHEDULED_REPORTS", "s3"),
    ("ATTACHMENTS", "s3"),
    ("CONTACT_EVALUATIONS", "s3"),
    ("SCREEN_RECORDINGS", "s3"),
    ("EMAIL_MESSAGES", "s3"),
    ("MEDIA_STREAMS", "kinesisVideoStream"),
    ("AGENT_EVENTS", "kinesisStream"),
    ("REAL_TIME_CONTACT_ANALYSIS_SEGMENTS", "kinesisStream"),
    ("REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS", "kinesisStream"),
    ("REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS", "kinesisStream"),
];

/// Where Amazon Connect stores one kind of data. Exactly one of `s3`, `kinesisVideoStream`,
/// `kinesisStream` and `kinesisFirehose`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("[has(self.s3), has(self.kinesisVideoStream), has(self.kinesisStream), has(self.kinesisFirehose)].filter(x, x).size() == 1")
        .message("exactly one of s3, kinesisVideoStream, kinesisStream and kinesisFirehose must be set"),
    validation = Rule::new("!(self.resourceType in ['CALL_RECORDINGS', 'CHAT_TRANSCRIPTS', 'SCHEDULED_REPORTS', 'ATTACHMENTS', 'CONTACT_EVALUATIONS', 'SCREEN_RECORDINGS', 'EMAIL_MESSAGES']) || has(self.s3)")
        .message("this resourceType is stored in S3 only: set s3")
        .field_path(".s3"),
    validation = Rule::new("self.resourceType != 'MEDIA_STREAMS' || has(self.kinesisVideoStream)")
        .message("MEDIA_STREAMS is stored in Kinesis Video Streams only: set kinesisVideoStream")
        .field_path(".kinesisVideoStream"),
    validation = Rule::new("!(self.resourceType in ['AGENT_EVENTS', 'REAL_TIME_CONTACT_ANALYSIS_SEGMENTS', 'REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS', 'REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS']) || has(self.kinesisStream)")
        .message("this resourceType is streamed to Kinesis Data Streams only: set kinesisStream")
        .field_path(".kinesisStream"),
    validation = Rule::new("self.resourceType != 'CONTACT_TRACE_RECORDS' || has(self.kinesisStream) || has(self.kinesisFirehose)")
        .message("CONTACT_TRACE_RECORDS are streamed to Kinesis Data Streams or Kinesis Data Firehose: set kinesisStream or kinesisFirehose")
        .field_path(".kinesisFirehose"),
)]
pub struct StorageConfigSpec {
    /// The kind of data (AWS's `InstanceStorageResourceType`): `CALL_RECORDINGS`,
    /// `CHAT_TRANSCRIPTS`, `SCHEDULED_REPORTS`, `MEDIA_STREAMS`, `CONTACT_TRACE_RECORDS`,
    /// `AGENT_EVENTS`, `REAL_TIME_CONTACT_ANALYSIS_SEGMENTS`, `ATTACHMENTS`,
    /// `CONTACT_EVALUATIONS`, `SCREEN_RECORDINGS`,
    /// `REAL_TIME_CONTACT_ANALYSIS_CHAT_SEGMENTS`,
    /// `REAL_TIME_CONTACT_ANALYSIS_VOICE_SEGMENTS`, `EMAIL_MESSAGES`, or a type AWS adds
    /// later. One entry per type.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[A-Z][A-Z_]*$"))]
    pub resource_type: String,
    /// An S3 bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
    /// Kinesis Video Streams (media streams).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis_video_stream: Option<KinesisVideoStreamStorage>,
    /// A Kinesis data stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis_stream: Option<KinesisStreamStorage>,
    /// A Kinesis Data Firehose delivery stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kinesis_firehose: Option<KinesisFirehoseStorage>,
}

/// An S3 bucket and prefix, optionally encrypted with a KMS key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// The bucket's name.
    #[schemars(length(min = 1, max = 128))]
    pub bucket_name: String,
    /// The prefix (folder) in the bucket.
    #[schemars(length(min = 1, max = 128))]
    pub bucket_prefix: String,
    /// The KMS key (ARN, id or alias) objects are encrypted with; unset: the bucket's own
    /// encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub kms_key_arn: Option<String>,
}

/// Kinesis Video Streams for live media, always KMS-encrypted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KinesisVideoStreamStorage {
    /// The prefix of the video streams' names. AWS reports it back as
    /// `<prefix>-connect-<alias>-contact-`; either form is taken as the same.
    #[schemars(length(min = 1, max = 128))]
    pub prefix: String,
    /// How long the media is kept, in hours (0: not kept).
    #[schemars(range(min = 0, max = 87600))]
    pub retention_period_hours: i32,
    /// The KMS key (ARN, id or alias) the streams are encrypted with.
    #[schemars(length(min = 1, max = 128))]
    pub kms_key_arn: String,
}

/// A Kinesis data stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KinesisStreamStorage {
    /// The stream's ARN.
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/.+$"))]
    pub stream_arn: String,
}

/// A Kinesis Data Firehose delivery stream.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KinesisFirehoseStorage {
    /// The delivery stream's ARN.
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:firehose:[a-z0-9-]+:\d{12}:deliverystream/.+$"))]
    pub firehose_arn: String,
}

/// A Lex V2 bot, by the ARN of one of its aliases.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LexBotSpec {
    /// The bot alias's ARN (`arn:aws:lex:<region>:<account>:bot-alias/<botId>/<aliasId>`).
    #[schemars(
        length(min = 1, max = 100),
        regex(
            pattern = r"^arn:aws[a-z-]*:lex:[a-z0-9-]+:\d{12}:bot-alias/[0-9A-Za-z]+/[0-9A-Za-z]+$"
        )
    )]
    pub alias_arn: String,
}

/// A PEM public key with its line breaks removed and its base64 body on one line: two
/// spellings of one key compare equal this way (AWS re-wraps the keys it is given).
#[must_use]
pub fn canonical_key(pem: &str) -> String {
    pem.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The Kinesis Video Streams prefix a spec's `prefix` is compared as: AWS echoes `p` as
/// `p-connect-<alias>-contact-`.
#[must_use]
pub fn echoed_video_prefix(prefix: &str, alias: &str) -> String {
    let echo_suffix = format!("-connect-{alias}-contact-");
    if prefix.ends_with(&echo_suffix) {
        prefix.to_owned()
    } else {
        format!("{prefix}{echo_suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_key_in_two_spellings_is_one_key() {
        let wrapped = "-----BEGIN PUBLIC KEY-----\r\nAAAA\r\nBBBB\r\n-----END PUBLIC KEY-----\r\n";
        let flat = "-----BEGIN PUBLIC KEY-----\nAAAABBBB\n-----END PUBLIC KEY-----";
        assert_eq!(canonical_key(wrapped), canonical_key(flat));
        assert_ne!(canonical_key(flat), canonical_key(&flat.replace('B', "C")));
    }

    #[test]
    fn a_video_prefix_and_its_echo_compare_equal() {
        assert_eq!(
            echoed_video_prefix("media", "team"),
            "media-connect-team-contact-"
        );
        assert_eq!(
            echoed_video_prefix("media-connect-team-contact-", "team"),
            "media-connect-team-contact-"
        );
    }
}
