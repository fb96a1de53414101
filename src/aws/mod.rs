//! The AWS layer: the Connect client (with credentials per account) and what it reports
//! about instances, the one error classification, ClientToken derivation and client-side
//! rate limits.

pub mod client;
pub mod configuration;
pub mod credentials;
pub mod error;
pub mod instance;
pub mod ratelimit;
pub mod replica;
pub mod token;

pub use client::{
    Access, AttributeReads, AwsSettings, ConnectClient, CreateInstanceRequest, CredentialsFailure,
    InstanceState, InstanceSummary, ObservedInstance, Target,
};
pub use error::{AwsError, ErrorKind, Operation, classify};
pub use instance::{
    ObservedReplication, REPLICA_DELETING, REPLICA_DELETION_FAILED, REPLICATION_COMPLETE,
    REPLICATION_FAILED, TrafficGroup, TrafficSplit,
};
pub use ratelimit::RateLimitSettings;
