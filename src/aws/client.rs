//! A thin client over `aws-sdk-connect` (and STS, to verify an account's credentials):
//! every call goes to one [`Target`] (an account's credentials and a region), passes the
//! rate limiter of that account, region and operation, has a timeout (the SDK's operation
//! timeout), is counted in metrics, and fails with one classified [`AwsError`].
//!
//! Only a replica whose fence permits writes sends one: the check is made after the rate
//! limiter (a write may wait there for seconds) and again by an SDK interceptor the moment
//! before the request is transmitted (after credentials were resolved and the request
//! signed, which may take an STS round trip).
//!
//! An account reached through a role uses the SDK's `AssumeRoleProvider` on top of the
//! operator's own credentials; the SDK caches the assumed credentials and refreshes them
//! before they expire. Credentials never leave the SDK: nothing here logs or stores them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_connect::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_connect::types::{DirectoryType, InstanceAttributeType};
use aws_smithy_runtime_api::http::Response as HttpResponse;

pub use super::credentials::{Access, CredentialsFailure};
use super::error::{AwsError, ErrorKind, Operation};
pub use super::instance::{
    CreateInstanceRequest, InstanceState, InstanceSummary, ObservedInstance,
};
use super::ratelimit::{Admission, RateLimitSettings, RateLimits};
use crate::api::AttributeType;
use crate::fence::Fence;
use crate::telemetry::Metrics;

/// How the client reaches AWS.
#[derive(Clone, Debug)]
pub struct AwsSettings {
    /// The region for objects that name none.
    pub default_region: String,
    /// An endpoint override (the Connect simulator, a VPC endpoint).
    pub endpoint_url: Option<String>,
    /// The timeout of each call, retries included.
    pub call_timeout: Duration,
    /// The timeout of connecting to AWS (TCP and TLS). Under leader election it is kept
    /// within the lease's grace: a write checked against the fence may take this long
    /// before its bytes leave, and must still leave before another replica may lead.
    pub connect_timeout: Duration,
    /// Client-side rate limits.
    pub rate_limits: RateLimitSettings,
}

/// Where a call goes: whose credentials, which account (the key of its rate limits), which
/// region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The credentials.
    pub access: Access,
    /// The AWS account id those credentials reach.
    pub account_id: String,
    /// The region.
    pub region: String,
}

/// The Connect client shared by all reconciles.
pub struct ConnectClient {
    pub(super) base: SdkConfig,
    pub(super) default_region: String,
    pub(super) providers: Mutex<HashMap<Access, SharedCredentialsProvider>>,
    pub(super) clients: Mutex<HashMap<(Access, String), aws_sdk_connect::Client>>,
    limits: RateLimits,
    metrics: Arc<Metrics>,
    fence: Arc<Fence>,
    connect_timeout: Duration,
    /// Pages of the last ListInstanceAttributes listing (all of an instance's attributes;
    /// the same for every instance of a region, and it grows only when AWS adds types).
    attribute_pages: AtomicUsize,
    /// Turns between the two ways of reading attributes when they cost the same (counts
    /// the tied reads).
    attribute_turn: AtomicUsize,
}

/// How the managed attributes of an ACTIVE instance are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttributeReads {
    /// No call: only inbound and outbound calls are managed, and DescribeInstance shows
    /// them.
    None,
    /// One DescribeInstanceAttribute for each managed attribute.
    Each,
    /// ListInstanceAttributes, every page.
    List,
}

impl AttributeReads {
    /// The way that costs fewer calls for `others` managed attributes beyond inbound and
    /// outbound calls, with `pages` ListInstanceAttributes pages; when both cost the same,
    /// every other read (`turn`) describes, so that the reads of many instances turning
    /// ACTIVE together use the rate limits of two operations instead of one.
    #[must_use]
    pub fn cheapest(others: usize, pages: usize, turn: bool) -> Self {
        if others == 0 {
            Self::None
        } else if others < pages || (others == pages && turn) {
            Self::Each
        } else {
            Self::List
        }
    }
}

/// ListInstanceAttributes pages before the first listing: AWS's thirteen attribute types,
/// seven per page.
const ATTRIBUTE_PAGES: usize = 2;

/// Refuses a write at the last moment before it is transmitted when the fence would close
/// before the connection to AWS could be made.
#[derive(Debug)]
struct FenceInterceptor {
    fence: Arc<Fence>,
    margin: Duration,
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for FenceInterceptor {
    fn name(&self) -> &'static str {
        "connect-operator-fence"
    }

    fn read_before_transmit(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let write = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .is_none_or(|metadata| super::error::is_write_operation(metadata.name()));
        if write {
            self.fence.check_for(self.margin)?;
        }
        Ok(())
    }
}

impl ConnectClient {
    /// Loads credentials and settings from the environment (the standard AWS chain: env,
    /// profile, web identity for IRSA, container credentials for Pod Identity, IMDS).
    pub async fn from_env(settings: &AwsSettings, metrics: Arc<Metrics>) -> Self {
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(settings.call_timeout)
            .operation_attempt_timeout(settings.call_timeout)
            .connect_timeout(settings.connect_timeout)
            .build();
        // The SDK's own retries are off: every attempt must pass the rate limiter and be
        // counted, and the reconciler's per-object backoff decides when to try again.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.default_region.clone()))
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled());
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let base = loader.load().await;
        let mut client = Self::new(
            base,
            settings.default_region.clone(),
            settings.rate_limits,
            metrics,
        );
        client.connect_timeout = settings.connect_timeout;
        client
    }

    /// A client over an already loaded SDK configuration.
    #[must_use]
    pub fn new(
        base: SdkConfig,
        default_region: String,
        rate_limits: RateLimitSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            base,
            default_region,
            providers: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            limits: RateLimits::new(rate_limits),
            metrics,
            fence: Arc::new(Fence::open()),
            connect_timeout: Duration::from_secs(10),
            attribute_pages: AtomicUsize::new(ATTRIBUTE_PAGES),
            attribute_turn: AtomicUsize::new(0),
        }
    }

    /// Writes go out only while `fence` permits them (by default the fence is open: no
    /// leader election).
    #[must_use]
    pub fn with_fence(mut self, fence: Arc<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// The fence writes pass.
    #[must_use]
    pub fn fence(&self) -> &Arc<Fence> {
        &self.fence
    }

    /// The region used for objects that name none.
    #[must_use]
    pub fn default_region(&self) -> &str {
        &self.default_region
    }

    async fn client(&self, access: &Access, region: &str) -> aws_sdk_connect::Client {
        let key = (access.clone(), region.to_owned());
        if let Some(client) = lock(&self.clients).get(&key) {
            return client.clone();
        }
        let mut config =
            aws_sdk_connect::config::Builder::from(&self.base).region(Region::new(key.1.clone()));
        if access.role_arn.is_some() {
            config.set_credentials_provider(self.provider(access).await);
        }
        config.push_interceptor(
            aws_smithy_runtime_api::client::interceptors::SharedInterceptor::new(
                FenceInterceptor {
                    fence: Arc::clone(&self.fence),
                    margin: self.connect_timeout,
                },
            ),
        );
        let client = aws_sdk_connect::Client::from_conf(config.build());
        lock(&self.clients).entry(key).or_insert(client).clone()
    }

    pub(super) async fn call<T, E, F, Fut>(
        &self,
        target: &Target,
        operation: Operation,
        f: F,
    ) -> Result<T, AwsError>
    where
        F: FnOnce(aws_sdk_connect::Client) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let client = self.client(&target.access, &target.region).await;
        self.call_with(
            (target.account_id.as_str(), target.region.as_str()),
            operation,
            f(client),
        )
        .await
    }

    async fn admit(
        &self,
        account: &str,
        region: &str,
        operation: Operation,
        holder: &str,
    ) -> Result<(), AwsError> {
        match self
            .limits
            .acquire(account, region, operation, holder)
            .await
        {
            Admission::Admitted(waited) => {
                if !waited.is_zero() {
                    self.metrics.rate_limited(operation, waited);
                }
                Ok(())
            }
            Admission::RetryAfter(after) => {
                self.metrics.rate_limited(operation, Duration::ZERO);
                tracing::debug!(%operation, ?after, "rate limiter has no capacity; requeueing");
                Err(AwsError::rate_limited(operation, after))
            }
        }
    }

    /// Takes the rate limiter's slot for a CreateInstance or DeleteInstance to `target` for
    /// `holder` (the object's uid): the caller does so before writing the attempt to the
    /// ledger, so that an attempt the limiter would not send now costs no ledger write. A
    /// holder that cannot go now keeps its place in line: the error's `retry_after` is when
    /// its own slot comes. `create_instance` and `delete_instance` do not take a slot
    /// themselves.
    pub async fn lifecycle_slot(
        &self,
        target: &Target,
        operation: Operation,
        holder: &str,
    ) -> Result<(), AwsError> {
        self.admit(&target.account_id, &target.region, operation, holder)
            .await
    }

    /// One call through the limiter of (account, region, operation), counted and classified.
    pub(super) async fn call_with<T, E, Fut>(
        &self,
        (account, region): (&str, &str),
        operation: Operation,
        call: Fut,
    ) -> Result<T, AwsError>
    where
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        // CreateInstance and DeleteInstance took their slot before (`lifecycle_slot`); they
        // keep their period from the previous one as they leave.
        if operation.is_lifecycle() {
            self.limits.pace(account, region, operation).await;
        } else {
            self.admit(account, region, operation, "").await?;
        }
        // Not sent, so not counted as a call (as a rate-limited one is not).
        if operation.is_write() && self.fence.check_for(self.connect_timeout).is_err() {
            return Err(AwsError::not_leader(operation));
        }
        let result = call.await;
        match result {
            Ok(value) => {
                self.metrics.aws_call(operation, "success");
                Ok(value)
            }
            Err(err) => {
                let err = AwsError::from_sdk(operation, &err);
                self.metrics.aws_call(operation, err.kind.as_str());
                tracing::debug!(error = %err, "AWS call failed");
                Err(err)
            }
        }
    }

    /// CreateInstance; returns (id, arn). Take [`Self::lifecycle_slot`] first.
    pub async fn create_instance(
        &self,
        target: &Target,
        request: &CreateInstanceRequest,
    ) -> Result<(String, String), AwsError> {
        let out = self
            .call(target, Operation::CreateInstance, |c| {
                let mut b = c
                    .create_instance()
                    .client_token(&request.client_token)
                    .identity_management_type(DirectoryType::from(
                        request.identity_management_type.as_str(),
                    ))
                    .inbound_calls_enabled(request.inbound_calls_enabled)
                    .outbound_calls_enabled(request.outbound_calls_enabled)
                    .set_instance_alias(request.alias.clone())
                    .set_directory_id(request.directory_id.clone());
                for (k, v) in &request.tags {
                    b = b.tags(k, v);
                }
                b.send()
            })
            .await?;
        match (out.id(), out.arn()) {
            (Some(id), Some(arn)) => Ok((id.to_owned(), arn.to_owned())),
            _ => Err(malformed(
                Operation::CreateInstance,
                "the answer has no Id or Arn",
            )),
        }
    }

    /// DescribeInstance; `None` when the instance does not exist.
    pub async fn describe_instance(
        &self,
        target: &Target,
        instance_id: &str,
    ) -> Result<Option<ObservedInstance>, AwsError> {
        let out = match self
            .call(target, Operation::DescribeInstance, |c| {
                c.describe_instance().instance_id(instance_id).send()
            })
            .await
        {
            Ok(out) => out,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(instance) = out.instance() else {
            return Err(malformed(
                Operation::DescribeInstance,
                "the answer has no Instance",
            ));
        };
        let created = instance.created_time();
        Ok(Some(ObservedInstance {
            id: instance.id().unwrap_or(instance_id).to_owned(),
            arn: instance.arn().unwrap_or_default().to_owned(),
            alias: instance.instance_alias().map(str::to_owned),
            identity_management_type: instance
                .identity_management_type()
                .map(|t| t.as_str().to_owned()),
            state: instance
                .instance_status()
                .map_or(InstanceState::Unknown(String::new()), |s| {
                    InstanceState::from_aws(s.as_str())
                }),
            status_reason: instance
                .status_reason()
                .and_then(|r| r.message())
                .map(str::to_owned),
            access_url: instance.instance_access_url().map(str::to_owned),
            service_role: instance.service_role().map(str::to_owned),
            created_time: created
                .and_then(|t| t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()),
            created_epoch_seconds: created.map(aws_smithy_types::DateTime::secs),
            tags: instance
                .tags()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            inbound_calls_enabled: instance.inbound_calls_enabled(),
            outbound_calls_enabled: instance.outbound_calls_enabled(),
            replication: out
                .replication_configuration()
                .map(super::replica::observed_replication),
        }))
    }

    /// Every instance of the account in the region (ListInstances, all pages).
    pub async fn list_instances(&self, target: &Target) -> Result<Vec<InstanceSummary>, AwsError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .call(target, Operation::ListInstances, |c| {
                    c.list_instances()
                        .max_results(10)
                        .set_next_token(next.clone())
                        .send()
                })
                .await?;
            out.extend(page.instance_summary_list().iter().filter_map(|s| {
                Some(InstanceSummary {
                    id: s.id()?.to_owned(),
                    arn: s.arn()?.to_owned(),
                    alias: s.instance_alias().map(str::to_owned),
                    identity_management_type: s
                        .identity_management_type()
                        .map(|t| t.as_str().to_owned()),
                    state: s
                        .instance_status()
                        .map(|t| InstanceState::from_aws(t.as_str())),
                })
            }));
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// DeleteInstance with the UID-derived token. NotFound is reported as `Ok(false)`. Take
    /// [`Self::lifecycle_slot`] first.
    pub async fn delete_instance(
        &self,
        target: &Target,
        instance_id: &str,
        client_token: &str,
    ) -> Result<bool, AwsError> {
        match self
            .call(target, Operation::DeleteInstance, |c| {
                c.delete_instance()
                    .instance_id(instance_id)
                    .client_token(client_token)
                    .send()
            })
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The managed attributes' current values (ListInstanceAttributes, all pages).
    pub async fn list_attributes(
        &self,
        target: &Target,
        instance_id: &str,
    ) -> Result<BTreeMap<AttributeType, bool>, AwsError> {
        let mut out = BTreeMap::new();
        let mut next: Option<String> = None;
        let mut pages = 0;
        loop {
            pages += 1;
            let page = self
                .call(target, Operation::ListInstanceAttributes, |c| {
                    c.list_instance_attributes()
                        .instance_id(instance_id)
                        .set_next_token(next.clone())
                        .send()
                })
                .await?;
            for attribute in page.attributes() {
                let kind = attribute
                    .attribute_type()
                    .and_then(|t| AttributeType::from_aws_str(t.as_str()));
                if let (Some(kind), Some(value)) = (kind, attribute.value()) {
                    out.insert(kind, value.eq_ignore_ascii_case("true"));
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => {
                    self.attribute_pages.store(pages, Ordering::Relaxed);
                    return Ok(out);
                }
            }
        }
    }

    /// The current values of `wanted` on the ACTIVE instance `instance`, read the
    /// cheapest way ([`AttributeReads::cheapest`]): inbound and outbound calls from its
    /// DescribeInstance when it shows them, the others with one DescribeInstanceAttribute
    /// each or one ListInstanceAttributes listing.
    pub async fn managed_attributes(
        &self,
        target: &Target,
        instance: &ObservedInstance,
        wanted: impl IntoIterator<Item = AttributeType>,
    ) -> Result<BTreeMap<AttributeType, bool>, AwsError> {
        let mut out = BTreeMap::new();
        let mut others = Vec::new();
        for attribute in wanted {
            let shown = match attribute {
                AttributeType::InboundCalls => instance.inbound_calls_enabled,
                AttributeType::OutboundCalls => instance.outbound_calls_enabled,
                _ => None,
            };
            match shown {
                Some(value) => {
                    out.insert(attribute, value);
                }
                None => others.push(attribute),
            }
        }
        let pages = self.attribute_pages.load(Ordering::Relaxed);
        // The turn moves only on a tie, so that tied reads alternate strictly.
        let turn = others.len() == pages
            && self
                .attribute_turn
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(2);
        match AttributeReads::cheapest(others.len(), pages, turn) {
            AttributeReads::None => {}
            AttributeReads::Each => {
                for attribute in others {
                    if let Some(value) = self
                        .describe_attribute(target, &instance.id, attribute)
                        .await?
                    {
                        out.insert(attribute, value);
                    }
                }
            }
            AttributeReads::List => {
                let all = self.list_attributes(target, &instance.id).await?;
                out.extend(others.into_iter().filter_map(|a| Some((a, *all.get(&a)?))));
            }
        }
        Ok(out)
    }

    /// One attribute's current value (DescribeInstanceAttribute); `None` when AWS returns
    /// none.
    pub async fn describe_attribute(
        &self,
        target: &Target,
        instance_id: &str,
        attribute: AttributeType,
    ) -> Result<Option<bool>, AwsError> {
        let out = self
            .call(target, Operation::DescribeInstanceAttribute, |c| {
                c.describe_instance_attribute()
                    .instance_id(instance_id)
                    .attribute_type(InstanceAttributeType::from(attribute.as_aws_str()))
                    .send()
            })
            .await?;
        Ok(out
            .attribute()
            .and_then(|a| a.value())
            .map(|value| value.eq_ignore_ascii_case("true")))
    }

    /// UpdateInstanceAttribute.
    pub async fn update_attribute(
        &self,
        target: &Target,
        instance_id: &str,
        attribute: AttributeType,
        value: bool,
        client_token: &str,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::UpdateInstanceAttribute, |c| {
            c.update_instance_attribute()
                .instance_id(instance_id)
                .attribute_type(InstanceAttributeType::from(attribute.as_aws_str()))
                .value(if value { "true" } else { "false" })
                .client_token(client_token)
                .send()
        })
        .await
        .map(|_| ())
    }

    /// ListTagsForResource.
    pub async fn list_tags(
        &self,
        target: &Target,
        arn: &str,
    ) -> Result<BTreeMap<String, String>, AwsError> {
        let out = self
            .call(target, Operation::ListTagsForResource, |c| {
                c.list_tags_for_resource().resource_arn(arn).send()
            })
            .await?;
        Ok(out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    /// TagResource with every tag to add or change.
    pub async fn tag(
        &self,
        target: &Target,
        arn: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), AwsError> {
        self.call(target, Operation::TagResource, |c| {
            let mut b = c.tag_resource().resource_arn(arn);
            for (k, v) in tags {
                b = b.tags(k, v);
            }
            b.send()
        })
        .await
        .map(|_| ())
    }

    /// UntagResource with every key to remove.
    pub async fn untag(&self, target: &Target, arn: &str, keys: &[String]) -> Result<(), AwsError> {
        self.call(target, Operation::UntagResource, |c| {
            let mut b = c.untag_resource().resource_arn(arn);
            for k in keys {
                b = b.tag_keys(k);
            }
            b.send()
        })
        .await
        .map(|_| ())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn malformed(operation: Operation, message: &str) -> AwsError {
    AwsError {
        operation,
        kind: ErrorKind::Other,
        code: None,
        message: message.to_owned(),
        request_id: None,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::AttributeReads;

    #[test]
    fn attributes_are_read_the_way_that_costs_fewer_calls() {
        // Only inbound and outbound calls: DescribeInstance showed them.
        assert_eq!(AttributeReads::cheapest(0, 2, true), AttributeReads::None);
        assert_eq!(AttributeReads::cheapest(0, 2, false), AttributeReads::None);
        // Fewer attributes than pages: one describe each.
        assert_eq!(AttributeReads::cheapest(1, 2, false), AttributeReads::Each);
        assert_eq!(AttributeReads::cheapest(2, 3, false), AttributeReads::Each);
        // More attributes than pages: the listing.
        assert_eq!(AttributeReads::cheapest(3, 2, true), AttributeReads::List);
        assert_eq!(AttributeReads::cheapest(11, 2, true), AttributeReads::List);
        // A tie goes the way of the turn.
        assert_eq!(AttributeReads::cheapest(2, 2, true), AttributeReads::Each);
        assert_eq!(AttributeReads::cheapest(2, 2, false), AttributeReads::List);
        assert_eq!(AttributeReads::cheapest(1, 1, false), AttributeReads::List);
    }
}
