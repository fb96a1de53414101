//! The AWS layer: the Connect client, the one error classification, ClientToken
//! derivation and client-side rate limits.

pub mod client;
pub mod error;
pub mod ratelimit;
pub mod token;

pub use client::{
    AwsSettings, ConnectClient, CreateInstanceRequest, InstanceState, InstanceSummary,
    ObservedInstance,
};
pub use error::{AwsError, ErrorKind, Operation, classify};
pub use ratelimit::RateLimitSettings;
