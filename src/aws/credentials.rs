//! Credentials per account: the operator's own, or an IAM role assumed on top of them with
//! the SDK's `AssumeRoleProvider` (which the SDK's identity cache keeps and refreshes), and
//! the verification of an account (obtain the credentials, then STS GetCallerIdentity).
//! Credentials never leave the SDK: nothing here logs or stores them.

use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::client::{ConnectClient, lock, malformed};
use super::error::{AwsError, ErrorKind, Operation, error_chain};

/// How an account is reached: the operator's own credentials, or a role assumed on top of
/// them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Access {
    /// The role to assume; `None`: the operator's own credentials.
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for.
    pub external_id: Option<String>,
}

/// Why an account's credentials could not be verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsFailure {
    /// STS AssumeRole of the account's role failed (refused, or STS unreachable).
    AssumeRoleFailed(String),
    /// The operator's own credentials could not be loaded.
    NoCredentials(String),
    /// GetCallerIdentity failed.
    Call(AwsError),
}

impl ConnectClient {
    /// The credentials provider of an account: the operator's own, or the role's on top.
    pub(super) async fn provider(&self, access: &Access) -> Option<SharedCredentialsProvider> {
        let Some(role_arn) = &access.role_arn else {
            return self.base.credentials_provider();
        };
        if let Some(provider) = lock(&self.providers).get(access) {
            return Some(provider.clone());
        }
        let mut builder = AssumeRoleProvider::builder(role_arn.clone())
            .session_name("connect-operator")
            .configure(&self.base);
        if let Some(external_id) = &access.external_id {
            builder = builder.external_id(external_id.clone());
        }
        let provider = SharedCredentialsProvider::new(builder.build().await);
        // Two reconciles may build one at the same moment; the first stored wins.
        Some(
            lock(&self.providers)
                .entry(access.clone())
                .or_insert(provider)
                .clone(),
        )
    }

    /// Forgets the cached credentials and clients of an access (its account changed or is
    /// gone), so that the next call assumes the role afresh.
    pub fn forget(&self, access: &Access) {
        lock(&self.providers).remove(access);
        lock(&self.clients).retain(|(a, _), _| a != access);
    }

    /// Verifies an account's credentials: obtains them (assuming the role, if any), then
    /// asks STS GetCallerIdentity which account they reach. Returns the account id.
    pub async fn verify(&self, access: &Access) -> Result<String, CredentialsFailure> {
        let provider = self.provider(access).await.ok_or_else(|| {
            CredentialsFailure::NoCredentials("no AWS credentials are configured".to_owned())
        })?;
        // Obtained explicitly first so that a refused AssumeRole is told apart from a
        // refused GetCallerIdentity. The credentials themselves go no further than the SDK.
        if let Err(e) = provider.provide_credentials().await {
            return Err(match (&access.role_arn, sts_refusal(&e)) {
                // STS answered, and refused: the role's trust or the operator's permission.
                (Some(_), Some(refusal)) => CredentialsFailure::AssumeRoleFailed(refusal),
                // STS could not be reached (or answered nothing usable): passing, retried.
                (Some(_), None) => CredentialsFailure::Call(AwsError {
                    operation: Operation::AssumeRole,
                    kind: ErrorKind::Transient,
                    code: None,
                    message: error_chain(&e),
                    request_id: None,
                    retry_after: None,
                }),
                (None, _) => CredentialsFailure::NoCredentials(error_chain(&e)),
            });
        }
        let config = aws_sdk_sts::config::Builder::from(&self.base)
            .credentials_provider(provider)
            .build();
        let sts = aws_sdk_sts::Client::from_conf(config);
        let region = self.default_region.clone();
        let out = self
            .call_with(
                (access.role_arn.as_deref().unwrap_or("own"), region.as_str()),
                Operation::GetCallerIdentity,
                sts.get_caller_identity().send(),
            )
            .await
            .map_err(CredentialsFailure::Call)?;
        out.account()
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                CredentialsFailure::Call(malformed(
                    Operation::GetCallerIdentity,
                    "the answer has no Account",
                ))
            })
    }
}

/// STS's own refusal inside a credentials provider's failure: its code and message.
fn sts_refusal(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(SdkError::ServiceError(service)) =
            e.downcast_ref::<SdkError<AssumeRoleError, HttpResponse>>()
        {
            let inner = service.err();
            let code = inner.code().unwrap_or("an error");
            let message = inner.message().unwrap_or_default();
            let request = err_request_id(service.raw());
            return Some(format!("STS answered {code}: {message}{request}"));
        }
        current = e.source();
    }
    None
}

fn err_request_id(raw: &HttpResponse) -> String {
    raw.headers()
        .get("x-amzn-requestid")
        .map(|id| format!(" (request id {id})"))
        .unwrap_or_default()
}
