//! Helpers of the model's tests: a model, the settings of a configuration, a CreateInstance
//! request, the error code of an outcome.

use super::{CreateInstanceRequest, Model, Reply, Settings};
use crate::config::SimConfig;
use crate::errors::ApiError;

pub(super) fn settings(config: &SimConfig) -> Settings<'_> {
    Settings::new(config, None)
}

pub(super) fn new_model(seed: u64) -> Model {
    Model::new("123456789012", "us-east-1", fastrand::Rng::with_seed(seed))
}

pub(super) fn request(alias: &str, token: Option<&str>) -> CreateInstanceRequest {
    CreateInstanceRequest {
        client_token: token.map(str::to_owned),
        identity_management_type: Some("CONNECT_MANAGED".into()),
        instance_alias: Some(alias.into()),
        directory_id: None,
        inbound_calls_enabled: Some(true),
        outbound_calls_enabled: Some(false),
        tags: None,
    }
}

pub(super) fn error_code(result: Result<Reply, ApiError>) -> Option<&'static str> {
    result.err().map(|e| e.kind.code())
}
