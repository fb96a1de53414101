//! The `connect.operators.dev/v1alpha1` API: `ConnectInstance` (namespaced, one Amazon
//! Connect instance), `ConnectAccount` (cluster-scoped, the AWS account it lives in) and
//! `ConnectAttemptLedger` (cluster-scoped, the operator's record of an account's create and
//! delete attempts in one region).
//!
//! Validation lives in the schemas (OpenAPI constraints and CEL rules) so that the API
//! server rejects bad input at admission, before anything can reach AWS.

mod account;
mod configuration;
mod instance;
mod ledger;
mod replica;

pub use account::*;
pub use configuration::*;
pub use instance::*;
pub use ledger::*;
pub use replica::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray,
};

/// The CustomResourceDefinitions as installed, each with the file name `crds/` holds it
/// under.
///
/// `nullable` is removed from the schemas: without it the API server prunes an explicit
/// `null` instead of storing it, so `has(self.field)` in the CEL rules means "set to a value"
/// and a `null` cannot slip past the immutability rules.
#[must_use]
pub fn crds() -> Vec<(String, CustomResourceDefinition)> {
    use kube::CustomResourceExt;
    let mut crds: Vec<(String, CustomResourceDefinition)> = [
        ConnectInstance::crd(),
        ConnectAccount::crd(),
        ConnectAttemptLedger::crd(),
    ]
    .into_iter()
    .map(|mut crd| {
        for version in &mut crd.spec.versions {
            if let Some(schema) = version
                .schema
                .as_mut()
                .and_then(|s| s.open_api_v3_schema.as_mut())
            {
                strip_nullable(schema);
            }
        }
        let file = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
        (file, crd)
    })
    .collect();
    // In file-name order: the order `crds/` lists them in, and `crd` prints them.
    crds.sort_by(|a, b| a.0.cmp(&b.0));
    crds
}

fn strip_nullable(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_nullable(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        strip_nullable(items);
    }
}
