//! STS on the simulator's port and state per account and region, driven with the real
//! `aws-sdk-sts` client and `aws-config`'s `AssumeRoleProvider`: the access key of the SigV4
//! credential scope names the account (static keys the default one, assumed-role keys the
//! role's), the scope's region the region; instances, quotas, attempt counters, rate-limit
//! buckets and ClientToken records are kept per account and region; roles can be refused or
//! require an ExternalId; the `/_sim/` views filter by account and region.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_connect::Client;
use aws_sdk_connect::config::Region;
use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::DirectoryType;
use aws_smithy_types::error::display::DisplayErrorContext;
use connect_sim::{AccountPatch, ConfigPatch, FaultsPatch, SimConfig, SimHandle};
use serde_json::Value;
use test_kit::simulator::{SimAccountState, SimClient};

use super::{TestResult, create, create_err, fast_config, http_status, start};

const DEFAULT_ACCOUNT: &str = "123456789012";
const ACCOUNT_A: &str = "222222222222";
const ACCOUNT_B: &str = "333333333333";
const ROLE_A: &str = "arn:aws:iam::222222222222:role/connect";
const ROLE_B: &str = "arn:aws:iam::333333333333:role/team/connect-operator";

fn static_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "static-test")
}

/// The real STS client with `credentials`, signing for `region`.
fn sts(sim: &SimHandle, credentials: Credentials, region: &str) -> aws_sdk_sts::Client {
    let config = aws_sdk_sts::Config::builder()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new(region.to_owned()))
        .endpoint_url(sim.url())
        .credentials_provider(credentials)
        .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_sts::Client::from_conf(config)
}

/// A Connect client signing with `credentials` for `region`, without retries.
fn connect_with(
    sim: &SimHandle,
    credentials: impl ProvideCredentials + 'static,
    region: &str,
) -> Client {
    let config = aws_sdk_connect::Config::builder()
        .behavior_version(aws_sdk_connect::config::BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(sim.url())
        .credentials_provider(credentials)
        .retry_config(aws_sdk_connect::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// The way an operator assumes a role: `aws-config`'s `AssumeRoleProvider` on top of static
/// base credentials, both against the simulator.
async fn assume_role_provider(
    sim: &SimHandle,
    role_arn: &str,
    external_id: Option<&str>,
) -> AssumeRoleProvider {
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(sim.url())
        .credentials_provider(static_credentials())
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    let mut builder = AssumeRoleProvider::builder(role_arn).session_name("connect-operator");
    if let Some(external_id) = external_id {
        builder = builder.external_id(external_id);
    }
    builder.configure(&base).build().await
}

/// A Connect client acting as `role_arn` (through the AssumeRoleProvider).
async fn connect_as(sim: &SimHandle, role_arn: &str, external_id: Option<&str>) -> Client {
    connect_with(
        sim,
        assume_role_provider(sim, role_arn, external_id).await,
        "us-east-1",
    )
}

fn kit(sim: &SimHandle) -> SimClient {
    SimClient::new(&sim.url())
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn listed_ids(client: &Client) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let out = client.list_instances().send().await?;
    Ok(out
        .instance_summary_list()
        .iter()
        .filter_map(|s| s.id().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn get_caller_identity_with_static_keys_is_the_default_account() -> TestResult {
    let sim = start(fast_config()).await?;
    let out = sts(&sim, static_credentials(), "us-east-1")
        .get_caller_identity()
        .send()
        .await?;
    assert_eq!(out.account(), Some(DEFAULT_ACCOUNT));
    assert_eq!(
        out.arn(),
        Some("arn:aws:iam::123456789012:user/connect-sim")
    );
    assert!(
        out.user_id().is_some_and(|id| id.starts_with("AIDA")),
        "{out:?}"
    );
    // Another static key is the same default account.
    let other = Credentials::new("AKIAIOSFODNN7EXAMPLE", "secret", None, None, "other");
    let out = sts(&sim, other, "eu-west-1")
        .get_caller_identity()
        .send()
        .await?;
    assert_eq!(out.account(), Some(DEFAULT_ACCOUNT));

    let calls = kit(&sim).calls_of("GetCallerIdentity").await;
    let seen: Vec<(&str, &str, u16)> = calls
        .iter()
        .map(|c| (c.account_id.as_str(), c.region.as_str(), c.status))
        .collect();
    assert_eq!(
        seen,
        [
            (DEFAULT_ACCOUNT, "us-east-1", 200),
            (DEFAULT_ACCOUNT, "eu-west-1", 200)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn assume_role_with_external_id_issues_keys_of_the_roles_account() -> TestResult {
    let sim = start(fast_config()).await?;
    let out = sts(&sim, static_credentials(), "us-east-1")
        .assume_role()
        .role_arn(ROLE_B)
        .role_session_name("reconcile@cluster-1")
        .external_id("tenant-42")
        .duration_seconds(1800)
        .send()
        .await?;
    let credentials = out.credentials().ok_or("no Credentials")?;
    let key = credentials.access_key_id();
    assert!(key.starts_with("ASIASIM333333333333"), "{key}");
    assert_eq!(connect_sim::issued_key_account(key), Some(ACCOUNT_B));
    assert_eq!(credentials.secret_access_key().len(), 40);
    assert!(!credentials.session_token().is_empty());
    let expires_in = credentials.expiration().secs() - now_secs();
    assert!(
        (1790..=1810).contains(&expires_in),
        "Expiration is now + DurationSeconds: {expires_in}"
    );
    let user = out.assumed_role_user().ok_or("no AssumedRoleUser")?;
    // The path of the role is not part of the assumed-role ARN, as on AWS.
    assert_eq!(
        user.arn(),
        "arn:aws:sts::333333333333:assumed-role/connect-operator/reconcile@cluster-1"
    );
    let role_id = user.assumed_role_id();
    assert!(
        role_id.starts_with("AROA") && role_id.ends_with(":reconcile@cluster-1"),
        "{role_id}"
    );

    // The new keys are the role's session.
    let session = Credentials::new(
        key,
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        None,
        "assumed",
    );
    let me = sts(&sim, session, "us-east-1")
        .get_caller_identity()
        .send()
        .await?;
    assert_eq!(me.account(), Some(ACCOUNT_B));
    assert_eq!(me.arn(), Some(user.arn()));
    assert_eq!(me.user_id(), Some(role_id));

    // Without ExternalId, and with the default duration (one hour).
    let plain = sts(&sim, static_credentials(), "us-east-1")
        .assume_role()
        .role_arn(ROLE_A)
        .role_session_name("plain")
        .send()
        .await?;
    let expires_in = plain
        .credentials()
        .ok_or("no Credentials")?
        .expiration()
        .secs()
        - now_secs();
    assert!((3590..=3610).contains(&expires_in), "{expires_in}");

    let calls = kit(&sim).calls_of("AssumeRole").await;
    let seen: Vec<(&str, Option<&str>, u16)> = calls
        .iter()
        .map(|c| (c.account_id.as_str(), c.role_arn.as_deref(), c.status))
        .collect();
    assert_eq!(
        seen,
        [
            (ACCOUNT_B, Some(ROLE_B), 200),
            (ACCOUNT_A, Some(ROLE_A), 200)
        ],
        "AssumeRole is recorded in the role's account"
    );
    Ok(())
}

#[tokio::test]
async fn create_instance_with_assume_role_provider_credentials_lands_in_the_roles_account()
-> TestResult {
    let sim = start(fast_config()).await?;
    let as_role = connect_as(&sim, ROLE_A, Some("ext-a")).await;
    let (id, arn) = create(&as_role, "in-account-a", Some("token-a")).await?;
    assert_eq!(
        arn,
        format!("arn:aws:connect:us-east-1:{ACCOUNT_A}:instance/{id}")
    );

    let sim_kit = kit(&sim);
    let in_a = sim_kit.instances_in(ACCOUNT_A).await;
    assert_eq!(in_a.len(), 1);
    assert_eq!(
        (
            in_a[0].id.as_str(),
            in_a[0].account_id.as_str(),
            in_a[0].region.as_str()
        ),
        (id.as_str(), ACCOUNT_A, "us-east-1")
    );
    assert!(sim_kit.instances_in(DEFAULT_ACCOUNT).await.is_empty());

    // The role's account sees it; the default account does not.
    assert_eq!(listed_ids(&as_role).await?, std::slice::from_ref(&id));
    let default = connect_with(&sim, static_credentials(), "us-east-1");
    assert!(listed_ids(&default).await?.is_empty());
    let err = default
        .describe_instance()
        .instance_id(&id)
        .send()
        .await
        .err()
        .ok_or("the default account described account A's instance")?;
    assert_eq!(err.code(), Some("ResourceNotFoundException"));

    // One AssumeRole for several Connect calls: the provider's credentials are cached.
    let calls = sim_kit.calls_in(ACCOUNT_A).await;
    let operations: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(
        operations,
        ["AssumeRole", "CreateInstance", "ListInstances"]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.region == "us-east-1" && c.status == 200)
    );
    let state = sim_kit.state_of(ACCOUNT_A, "us-east-1").await;
    assert_eq!((state.instance_count, state.lifecycle_attempts), (1, 1));
    assert_eq!(
        sim_kit
            .state_of(DEFAULT_ACCOUNT, "us-east-1")
            .await
            .instance_count,
        0
    );
    Ok(())
}

#[tokio::test]
async fn instance_quota_and_attempt_limit_are_counted_per_account() -> TestResult {
    let sim = start(SimConfig {
        instance_quota: 1,
        lifecycle_attempt_limit: 3,
        ..fast_config()
    })
    .await?;
    let a = connect_as(&sim, ROLE_A, None).await;
    let b = connect_as(&sim, ROLE_B, None).await;
    let (first_a, _) = create(&a, "quota-a-1", None).await?;
    let err = create_err(&a, "quota-a-2").await?;
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));
    assert_eq!(http_status(&err), Some(402));
    // Account A's full quota does not concern B.
    create(&b, "quota-b-1", None).await?;

    // A per-account exception raises A's quota only.
    let view = kit(&sim)
        .set_config(&ConfigPatch {
            accounts: Some(
                [(
                    ACCOUNT_A.to_owned(),
                    Some(AccountPatch {
                        instance_quota: Some(Some(3)),
                        ..AccountPatch::default()
                    }),
                )]
                .into(),
            ),
            ..ConfigPatch::default()
        })
        .await;
    assert_eq!(view.accounts[ACCOUNT_A].instance_quota, Some(3));
    create(&a, "quota-a-2", None).await?;
    let err = create_err(&b, "quota-b-2").await?;
    assert_eq!(
        err.code(),
        Some("ServiceQuotaExceededException"),
        "B keeps 1"
    );

    // A's attempts (2 creates + 1 delete = limit 3) exhaust A's window, not B's.
    a.delete_instance().instance_id(&first_a).send().await?;
    let err = create_err(&a, "quota-a-3").await?;
    assert!(
        err.message()
            .is_some_and(|m| m.contains("excessive number of creation and deletion attempts")),
        "{err:?}"
    );
    let state = kit(&sim).state().await;
    let mut accounts = state.accounts.clone();
    accounts.retain(|a| a.account_id != DEFAULT_ACCOUNT);
    assert_eq!(
        accounts,
        [
            SimAccountState {
                account_id: ACCOUNT_A.into(),
                region: "us-east-1".into(),
                lifecycle_attempts: 3,
                instance_count: 2,
            },
            SimAccountState {
                account_id: ACCOUNT_B.into(),
                region: "us-east-1".into(),
                lifecycle_attempts: 1,
                instance_count: 1,
            },
        ]
    );
    assert_eq!(
        (state.lifecycle_attempts, state.instance_count),
        (4, 3),
        "totals"
    );
    Ok(())
}

#[tokio::test]
async fn rate_limit_buckets_are_per_account() -> TestResult {
    // Connect's default CreateInstance limit: 0.1/s, burst 1.
    let sim = start(SimConfig {
        rate_limits: SimConfig::default().rate_limits,
        ..fast_config()
    })
    .await?;
    let a = connect_as(&sim, ROLE_A, None).await;
    let b = connect_as(&sim, ROLE_B, None).await;
    create(&a, "rate-a-1", None).await?;
    let err = create_err(&a, "rate-a-2").await?;
    assert_eq!(err.code(), Some("ThrottlingException"));
    assert_eq!(http_status(&err), Some(429));
    // A is throttled; B's bucket is full.
    create(&b, "rate-b-1", None).await?;
    let default = connect_with(&sim, static_credentials(), "us-east-1");
    create(&default, "rate-default-1", None).await?;

    let creates = kit(&sim).calls_of("CreateInstance").await;
    let outcomes: Vec<(&str, Option<&str>)> = creates
        .iter()
        .map(|c| (c.account_id.as_str(), c.error_type.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (ACCOUNT_A, None),
            (ACCOUNT_A, Some("ThrottlingException")),
            (ACCOUNT_B, None),
            (DEFAULT_ACCOUNT, None)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn client_token_records_are_per_account_and_aliases_global() -> TestResult {
    let sim = start(fast_config()).await?;
    let a = connect_as(&sim, ROLE_A, None).await;
    let b = connect_as(&sim, ROLE_B, None).await;
    let (in_a, _) = create(&a, "token-a", Some("shared-token")).await?;
    // In one account the token with another alias is refused...
    let err = a
        .create_instance()
        .client_token("shared-token")
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias("token-b")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(false)
        .send()
        .await
        .err()
        .ok_or("account A accepted its token for other parameters")?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    // ...in another it is a new token: a second instance.
    let (in_b, _) = create(&b, "token-b", Some("shared-token")).await?;
    assert_ne!(in_a, in_b);
    let (replayed, _) = create(&a, "token-a", Some("shared-token")).await?;
    assert_eq!(replayed, in_a, "A's replay answers A's instance");
    assert_eq!(kit(&sim).instances().await.len(), 2);

    // Aliases are unique across AWS: B cannot take A's alias, in any region.
    let err = create_err(&b, "TOKEN-A").await?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    let default_eu = connect_with(&sim, static_credentials(), "eu-west-1");
    let err = create_err(&default_eu, "token-a").await?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    Ok(())
}

#[tokio::test]
async fn the_signing_region_separates_state() -> TestResult {
    let sim = start(SimConfig {
        instance_quota: 1,
        ..fast_config()
    })
    .await?;
    let us = connect_with(&sim, static_credentials(), "us-east-1");
    let eu = connect_with(&sim, static_credentials(), "eu-west-1");
    let (id, arn) = create(&eu, "in-eu", None).await?;
    assert_eq!(
        arn,
        format!("arn:aws:connect:eu-west-1:{DEFAULT_ACCOUNT}:instance/{id}")
    );
    assert!(listed_ids(&us).await?.is_empty());
    assert_eq!(listed_ids(&eu).await?, std::slice::from_ref(&id));
    // The quota of one region is not the other's.
    create(&us, "in-us", None).await?;
    let err = create_err(&eu, "in-eu-2").await?;
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));

    let sim_kit = kit(&sim);
    let in_eu = sim_kit
        .instances_in_region(DEFAULT_ACCOUNT, "eu-west-1")
        .await;
    assert_eq!(in_eu.len(), 1);
    assert_eq!(in_eu[0].id, id);
    assert_eq!(
        sim_kit
            .state_of(DEFAULT_ACCOUNT, "eu-west-1")
            .await
            .instance_count,
        1
    );
    assert_eq!(
        sim_kit
            .state_of(DEFAULT_ACCOUNT, "us-east-1")
            .await
            .instance_count,
        1
    );
    let eu_calls = sim_kit.calls_in_region(DEFAULT_ACCOUNT, "eu-west-1").await;
    assert!(
        eu_calls.iter().all(|c| c.region == "eu-west-1") && eu_calls.len() == 3,
        "{eu_calls:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_refused_role_fails_the_connect_call_and_recovers_when_the_refusal_is_lifted()
-> TestResult {
    let sim = start(fast_config()).await?;
    let sim_kit = kit(&sim);
    let view = sim_kit.refuse_assume_role(&[ROLE_A]).await;
    assert_eq!(view.refuse_assume_role, [ROLE_A]);

    // The STS answer itself, through aws-sdk-sts.
    let err = sts(&sim, static_credentials(), "us-east-1")
        .assume_role()
        .role_arn(ROLE_A)
        .role_session_name("refused")
        .send()
        .await
        .err()
        .ok_or("a refused role was assumed")?;
    assert_eq!(err.code(), Some("AccessDenied"));
    assert_eq!(http_status(&err), Some(403));
    assert_eq!(
        err.message(),
        Some(
            "User: arn:aws:iam::123456789012:user/connect-sim is not authorized to perform: \
             sts:AssumeRole on resource: arn:aws:iam::222222222222:role/connect"
        )
    );

    // What a Connect call shows when its AssumeRoleProvider is refused.
    let client = connect_as(&sim, ROLE_A, None).await;
    let err = client
        .list_instances()
        .send()
        .await
        .err()
        .ok_or("ListInstances succeeded with refused credentials")?;
    let display = err.to_string();
    let context = DisplayErrorContext(&err).to_string();
    println!("refused AssumeRole, Connect error Display: {display}");
    println!("refused AssumeRole, Connect error DisplayErrorContext: {context}");
    println!("refused AssumeRole, Connect error Debug: {err:?}");
    assert!(
        err.raw_response().is_none(),
        "no Connect request was sent: {err:?}"
    );
    assert!(err.as_service_error().is_none(), "{err:?}");
    assert!(
        context.contains("AccessDenied")
            && context.contains("not authorized to perform: sts:AssumeRole"),
        "{context}"
    );
    assert!(
        sim_kit.calls_of("ListInstances").await.is_empty(),
        "the Connect call never reached the simulator"
    );

    // Lifted: the same client gets credentials on its next call.
    let view = sim_kit.refuse_assume_role(&[]).await;
    assert!(view.refuse_assume_role.is_empty());
    client.list_instances().send().await?;
    let outcomes: Vec<(String, u16, Option<String>)> = sim_kit
        .calls_in(ACCOUNT_A)
        .await
        .into_iter()
        .map(|c| (c.operation, c.status, c.error_type))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("AssumeRole".into(), 403, Some("AccessDenied".into())),
            ("AssumeRole".into(), 403, Some("AccessDenied".into())),
            ("AssumeRole".into(), 200, None),
            ("ListInstances".into(), 200, None),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_role_requiring_an_external_id_refuses_a_missing_or_wrong_one() -> TestResult {
    let sim = start(fast_config()).await?;
    let sim_kit = kit(&sim);
    sim_kit
        .require_external_ids(&[(ROLE_B, "the-right-one")])
        .await;
    let client = sts(&sim, static_credentials(), "us-east-1");
    for external_id in [None, Some("the-wrong-one")] {
        let err = client
            .assume_role()
            .role_arn(ROLE_B)
            .role_session_name("ext")
            .set_external_id(external_id.map(str::to_owned))
            .send()
            .await
            .err()
            .ok_or(format!("assumed with ExternalId {external_id:?}"))?;
        assert_eq!(err.code(), Some("AccessDenied"), "{external_id:?}");
        assert_eq!(http_status(&err), Some(403));
    }
    client
        .assume_role()
        .role_arn(ROLE_B)
        .role_session_name("ext")
        .external_id("the-right-one")
        .send()
        .await?;
    // Other roles need none.
    client
        .assume_role()
        .role_arn(ROLE_A)
        .role_session_name("ext")
        .send()
        .await?;
    let connect = connect_as(&sim, ROLE_B, Some("the-right-one")).await;
    create(&connect, "ext-ok", None).await?;
    assert_eq!(sim_kit.instances_in(ACCOUNT_B).await.len(), 1);

    // Requirements lifted: a missing one is fine again.
    sim_kit.require_external_ids(&[]).await;
    client
        .assume_role()
        .role_arn(ROLE_B)
        .role_session_name("ext")
        .send()
        .await?;
    Ok(())
}

#[tokio::test]
async fn assume_role_validates_its_parameters_like_sts() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sts(&sim, static_credentials(), "us-east-1");
    let cases: [(&str, &str, Option<i32>, &str); 4] = [
        (
            ROLE_A,
            "x",
            None,
            "1 validation error detected: Value 'x' at 'roleSessionName' failed to satisfy \
             constraint: Member must have length greater than or equal to 2",
        ),
        (
            ROLE_A,
            "bad name!",
            Some(100),
            "2 validation errors detected: Value 'bad name!' at 'roleSessionName' failed to \
             satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*; \
             Value '100' at 'durationSeconds' failed to satisfy constraint: Member must have \
             value greater than or equal to 900",
        ),
        (
            ROLE_A,
            "ok-name",
            Some(43_201),
            "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy \
             constraint: Member must have value less than or equal to 43200",
        ),
        (
            "arn:aws:iam::12345:role/short-account",
            "ok-name",
            None,
            "arn:aws:iam::12345:role/short-account is invalid",
        ),
    ];
    for (role, session, duration, message) in cases {
        let err = client
            .assume_role()
            .role_arn(role)
            .role_session_name(session)
            .set_duration_seconds(duration)
            .send()
            .await
            .err()
            .ok_or(format!("{role} {session} {duration:?} was accepted"))?;
        assert_eq!(err.code(), Some("ValidationError"), "{err:?}");
        assert_eq!(http_status(&err), Some(400));
        assert_eq!(err.message(), Some(message));
    }
    let err = client
        .assume_role()
        .role_arn(ROLE_A)
        .role_session_name("policy")
        .policy("{not json")
        .send()
        .await
        .err()
        .ok_or("a malformed policy was accepted")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_malformed_policy_document_exception()),
        "{err:?}"
    );
    assert_eq!(http_status(&err), Some(400));

    // Role chaining: a session of at most one hour.
    let first = client
        .assume_role()
        .role_arn(ROLE_A)
        .role_session_name("first")
        .send()
        .await?;
    let creds = first.credentials().ok_or("no Credentials")?;
    let chained = sts(
        &sim,
        Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_owned()),
            None,
            "first",
        ),
        "us-east-1",
    );
    let err = chained
        .assume_role()
        .role_arn(ROLE_B)
        .role_session_name("second")
        .duration_seconds(7200)
        .send()
        .await
        .err()
        .ok_or("a chained session over one hour was granted")?;
    assert_eq!(err.code(), Some("ValidationError"));
    let out = chained
        .assume_role()
        .role_arn(ROLE_B)
        .role_session_name("second")
        .send()
        .await?;
    assert!(
        out.credentials()
            .is_some_and(|c| c.access_key_id().starts_with("ASIASIM333333333333"))
    );
    Ok(())
}

/// Sends `request` with no Authorization at all.
async fn unsigned(
    request: reqwest::RequestBuilder,
) -> Result<(u16, Option<String>, String), Box<dyn std::error::Error>> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let error_type = response
        .headers()
        .get("x-amzn-ErrorType")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((status, error_type, response.text().await?))
}

#[tokio::test]
async fn unsigned_requests_are_refused_only_when_authentication_is_required() -> TestResult {
    let sim = start(fast_config()).await?;
    let http = reqwest::Client::new();
    let list = || http.get(format!("{}/instance", sim.url()));
    let identity = || {
        http.post(format!("{}/", sim.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("Action=GetCallerIdentity&Version=2011-06-15")
    };
    // Default: served as the default account (the bench's clock sync sends unsigned calls).
    let (status, _, _) = unsigned(list()).await?;
    assert_eq!(status, 200);
    let (status, _, body) = unsigned(identity()).await?;
    assert_eq!(status, 200);
    assert!(body.contains("<Account>123456789012</Account>"), "{body}");

    kit(&sim)
        .set_config(&ConfigPatch {
            require_authentication: Some(true),
            ..ConfigPatch::default()
        })
        .await;
    let before = kit(&sim).calls().await.len();
    let (status, error_type, body) = unsigned(list()).await?;
    assert_eq!(
        (status, error_type.as_deref()),
        (403, Some("MissingAuthenticationTokenException"))
    );
    let body: Value = serde_json::from_str(&body)?;
    assert_eq!(body["Message"], "Missing Authentication Token");
    let (status, _, body) = unsigned(identity()).await?;
    assert_eq!(status, 403);
    assert!(
        body.contains("<Code>MissingAuthenticationToken</Code>")
            && body.contains("<Type>Sender</Type>"),
        "{body}"
    );
    // An Authorization header without a credential scope is incomplete.
    let (status, error_type, _) =
        unsigned(list().header("authorization", "AWS4-HMAC-SHA256 Signature=abc")).await?;
    assert_eq!(
        (status, error_type.as_deref()),
        (400, Some("IncompleteSignatureException"))
    );
    assert_eq!(
        kit(&sim).calls().await.len(),
        before,
        "refused at the door, not recorded"
    );
    // Signed requests are unaffected.
    let signed = connect_with(&sim, static_credentials(), "us-east-1");
    signed.list_instances().send().await?;
    Ok(())
}

#[tokio::test]
async fn sim_views_filter_by_account_and_region() -> TestResult {
    let sim = start(fast_config()).await?;
    let sim_kit = kit(&sim);
    let foreign = sim_kit
        .insert_instance_in(ACCOUNT_A, "ap-south-1", "foreign-a", &[("owner", "a")])
        .await;
    assert_eq!(
        (foreign.account_id.as_str(), foreign.region.as_str()),
        (ACCOUNT_A, "ap-south-1")
    );
    assert!(
        foreign
            .arn
            .starts_with("arn:aws:connect:ap-south-1:222222222222:instance/")
    );
    let default = sim_kit.insert_instance("foreign-default", &[]).await;
    assert_eq!(
        (default.account_id.as_str(), default.region.as_str()),
        (DEFAULT_ACCOUNT, "us-east-1")
    );
    let in_region = connect_with(
        &sim,
        assume_role_provider(&sim, ROLE_A, None).await,
        "ap-south-1",
    );
    assert_eq!(
        listed_ids(&in_region).await?,
        std::slice::from_ref(&foreign.id)
    );

    assert_eq!(sim_kit.instances().await.len(), 2);
    assert_eq!(sim_kit.instances_in(ACCOUNT_A).await.len(), 1);
    assert!(
        sim_kit
            .instances_in_region(ACCOUNT_A, "us-east-1")
            .await
            .is_empty()
    );
    let calls_a = sim_kit.calls_in(ACCOUNT_A).await;
    let seen: Vec<(&str, &str)> = calls_a
        .iter()
        .map(|c| (c.operation.as_str(), c.region.as_str()))
        .collect();
    // The provider's STS client signs for its own (us-east-1) region.
    assert_eq!(
        seen,
        [("AssumeRole", "us-east-1"), ("ListInstances", "ap-south-1")]
    );
    assert!(sim_kit.calls_in(DEFAULT_ACCOUNT).await.is_empty());
    let state = sim_kit.state_of(ACCOUNT_A, "ap-south-1").await;
    assert_eq!((state.instance_count, state.lifecycle_attempts), (1, 0));
    assert_eq!(state.accounts.len(), 1);
    assert_eq!(sim_kit.state().await.instance_count, 2);

    // Unknown filters and bad inserts are refused.
    let response = reqwest::get(format!("{}/_sim/instances?account=1", sim.url())).await?;
    assert_eq!(response.status().as_u16(), 400);
    let response = reqwest::Client::new()
        .post(format!("{}/_sim/instances", sim.url()))
        .json(&serde_json::json!({ "alias": "x-bad", "accountId": "12" }))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 400);
    Ok(())
}

#[tokio::test]
async fn sts_operations_are_faulted_only_when_named() -> TestResult {
    let sim = start(fast_config()).await?;
    let sim_kit = kit(&sim);
    let set_faults = |operations: Vec<String>| {
        let sim_kit = sim_kit.clone();
        async move {
            sim_kit
                .set_config(&ConfigPatch {
                    faults: Some(FaultsPatch {
                        server_error_ratio: Some(1.0),
                        operations: Some(operations),
                        ..FaultsPatch::default()
                    }),
                    ..ConfigPatch::default()
                })
                .await
        }
    };
    set_faults(vec![]).await;
    let client = sts(&sim, static_credentials(), "us-east-1");
    client.get_caller_identity().send().await?;
    let connect = connect_with(&sim, static_credentials(), "us-east-1");
    assert!(
        connect.list_instances().send().await.is_err(),
        "[] means every Connect operation"
    );

    set_faults(vec!["GetCallerIdentity".into()]).await;
    let err = client
        .get_caller_identity()
        .send()
        .await
        .err()
        .ok_or("the STS fault was not injected")?;
    assert_eq!(err.code(), Some("InternalFailure"));
    assert_eq!(http_status(&err), Some(500));
    connect.list_instances().send().await?;
    let last = sim_kit.calls_of("GetCallerIdentity").await;
    assert_eq!(last.last().map(|c| c.status), Some(500));
    Ok(())
}

#[tokio::test]
async fn connect_sim_binary_takes_the_sts_and_authentication_flags() -> TestResult {
    let logs = test_kit::simulator::log_dir("sim-sts-flags");
    let sim = test_kit::Simulator::start(
        &logs,
        &[
            "--require-authentication",
            "--refuse-assume-role",
            ROLE_A,
            "--role-external-id",
            &format!("{ROLE_B}=ext-b"),
        ],
    );
    let config = sim.config().await;
    assert!(config.require_authentication);
    assert_eq!(config.refuse_assume_role, [ROLE_A]);
    assert_eq!(
        config.role_external_ids.get(ROLE_B).map(String::as_str),
        Some("ext-b")
    );
    let response = reqwest::get(format!("{}/instance", sim.url)).await?;
    assert_eq!(response.status().as_u16(), 403, "unsigned is refused");
    Ok(())
}
