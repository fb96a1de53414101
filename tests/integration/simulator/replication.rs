//! Global Resiliency with the real SDK: ReplicateInstance, the ReplicationConfiguration of
//! DescribeInstance in both regions, the default traffic distribution group, Get/Update
//! TrafficDistribution, the refusals, deleting the replica and the source, and the attempt
//! counter of the replica region.

use std::time::{Duration, Instant};

use aws_sdk_connect::Client;
use aws_sdk_connect::config::retry::RetryConfig;
use aws_sdk_connect::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::{
    AgentConfig, DirectoryType, Distribution, InstanceReplicationStatus, InstanceStatus,
    ReplicationConfiguration, SignInConfig, SignInDistribution, TelephonyConfig,
    TrafficDistributionGroupStatus,
};
use connect_sim::{AccountPatch, ConfigPatch, SimConfig, SimHandle, SourceDeleteWithReplica};
use serde_json::json;

use super::{TestResult, calls_of, control_get, fast_config, http_status, put_config, start};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

type Error = Box<dyn std::error::Error>;

fn replication_config() -> SimConfig {
    SimConfig {
        replication_delay: Duration::from_millis(600),
        replica_deletion_delay: Duration::from_millis(400),
        ..fast_config()
    }
}

/// The real SDK client for `region`, without retries.
fn sdk_in(sim: &SimHandle, region: &str) -> Client {
    let config = aws_sdk_connect::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(sim.url())
        .credentials_provider(Credentials::new("test", "test", None, None, "static-test"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// Creates an instance and waits until it is ACTIVE.
async fn active_instance(client: &Client, alias: &str, saml: bool) -> Result<String, Error> {
    let kind = if saml {
        DirectoryType::Saml
    } else {
        DirectoryType::ConnectManaged
    };
    let out = client
        .create_instance()
        .identity_management_type(kind)
        .instance_alias(alias)
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .send()
        .await?;
    let id = out.id().ok_or("no Id")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = client.describe_instance().instance_id(&id).send().await?;
        if out.instance().and_then(|i| i.instance_status()) == Some(&InstanceStatus::Active) {
            return Ok(id);
        }
        if Instant::now() > deadline {
            return Err(format!("{alias} never became ACTIVE").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn replication_of(
    client: &Client,
    id: &str,
) -> Result<Option<ReplicationConfiguration>, Error> {
    let out = client.describe_instance().instance_id(id).send().await?;
    Ok(out.replication_configuration().cloned())
}

/// The one summary of the instance's ReplicationConfiguration in `client`'s region.
async fn summary_status(
    client: &Client,
    id: &str,
) -> Result<(String, InstanceReplicationStatus, String), Error> {
    let config = replication_of(client, id)
        .await?
        .ok_or("no ReplicationConfiguration")?;
    let [summary] = config.replication_status_summary_list() else {
        return Err(format!(
            "expected one summary: {:?}",
            config.replication_status_summary_list()
        )
        .into());
    };
    Ok((
        summary.region().unwrap_or_default().to_owned(),
        summary.replication_status().ok_or("no status")?.clone(),
        summary
            .replication_status_reason()
            .unwrap_or_default()
            .to_owned(),
    ))
}

async fn wait_replication(
    client: &Client,
    id: &str,
    wanted: InstanceReplicationStatus,
) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, status, _) = summary_status(client, id).await?;
        if status == wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("replication of {id} is {status:?}, never {wanted:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_gone(client: &Client, id: &str) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.describe_instance().instance_id(id).send().await {
            Err(err) if err.code() == Some("ResourceNotFoundException") => return Ok(()),
            Err(err) => return Err(err.into()),
            Ok(_) if Instant::now() > deadline => {
                return Err(format!("{id} never vanished").into());
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn attempts_in(sim: &SimHandle, region: &str) -> Result<u64, Error> {
    control_get(sim, &format!("/_sim/state?region={region}")).await?["lifecycleAttempts"]
        .as_u64()
        .ok_or_else(|| "lifecycleAttempts is not a number".into())
}

async fn replicate(
    client: &Client,
    id: &str,
    region: &str,
    alias: &str,
    token: Option<&str>,
) -> Result<
    aws_sdk_connect::operation::replicate_instance::ReplicateInstanceOutput,
    aws_sdk_connect::error::SdkError<
        aws_sdk_connect::operation::replicate_instance::ReplicateInstanceError,
        aws_sdk_connect::config::http::HttpResponse,
    >,
> {
    client
        .replicate_instance()
        .instance_id(id)
        .replica_region(region)
        .replica_alias(alias)
        .set_client_token(token.map(str::to_owned))
        .send()
        .await
}

/// The id of the default traffic distribution group of `instance`, listed in `client`'s
/// region.
async fn default_group(client: &Client, instance: &str) -> Result<(String, String), Error> {
    let out = client
        .list_traffic_distribution_groups()
        .instance_id(instance)
        .send()
        .await?;
    let group = out
        .traffic_distribution_group_summary_list()
        .iter()
        .find(|g| g.is_default())
        .ok_or("no default traffic distribution group")?;
    Ok((
        group.id().ok_or("no Id")?.to_owned(),
        group.arn().ok_or("no Arn")?.to_owned(),
    ))
}

fn split(east: u8, west: u8) -> Result<Vec<Distribution>, Error> {
    Ok(vec![
        Distribution::builder()
            .region(EAST)
            .percentage(i32::from(east))
            .build()?,
        Distribution::builder()
            .region(WEST)
            .percentage(i32::from(west))
            .build()?,
    ])
}

#[tokio::test]
async fn replicate_completes_in_both_regions_with_a_default_group_and_its_distribution()
-> TestResult {
    let sim = start(replication_config()).await?;
    let (east, west) = (sdk_in(&sim, EAST), sdk_in(&sim, WEST));
    let id = active_instance(&east, "gr-source", true).await?;
    assert!(
        replication_of(&east, &id).await?.is_none(),
        "no replica yet: no ReplicationConfiguration"
    );

    let out = replicate(&east, &id, WEST, "gr-replica", Some("rep-token-1")).await?;
    assert_eq!(
        out.id(),
        Some(id.as_str()),
        "the replica keeps the instance id"
    );
    assert_eq!(
        out.arn(),
        Some(format!("arn:aws:connect:{WEST}:123456789012:instance/{id}").as_str())
    );

    // In progress, seen from both regions: each lists the other region of the pair.
    let (region, status, _) = summary_status(&east, &id).await?;
    assert_eq!(
        (region.as_str(), status),
        (
            WEST,
            InstanceReplicationStatus::InstanceReplicationInProgress
        )
    );
    let (region, status, _) = summary_status(&west, &id).await?;
    assert_eq!(
        (region.as_str(), status),
        (
            EAST,
            InstanceReplicationStatus::InstanceReplicationInProgress
        )
    );
    let config = replication_of(&west, &id)
        .await?
        .ok_or("no configuration")?;
    assert_eq!(config.source_region(), Some(EAST));
    assert_eq!(
        config.global_sign_in_endpoint(),
        Some("https://gr-source.my.connect.aws/connect/global-sign-in")
    );
    let replica = west.describe_instance().instance_id(&id).send().await?;
    let replica = replica.instance().ok_or("no Instance")?;
    assert_eq!(
        replica.instance_status(),
        Some(&InstanceStatus::CreationInProgress)
    );
    assert_eq!(replica.instance_alias(), Some("gr-replica"));
    assert_eq!(
        replica.identity_management_type(),
        Some(&DirectoryType::Saml)
    );
    let listed = west.list_instances().send().await?;
    assert!(
        listed
            .instance_summary_list()
            .iter()
            .any(|i| i.id() == Some(id.as_str())),
        "the replica is listed in its region"
    );

    // The default group exists from the start, visible from both regions, not yet ACTIVE.
    let (group_id, group_arn) = default_group(&east, &id).await?;
    assert!(group_arn.starts_with(&format!(
        "arn:aws:connect:{EAST}:123456789012:traffic-distribution-group/"
    )));
    assert_eq!(default_group(&west, &id).await?.0, group_id);
    let described = west
        .describe_traffic_distribution_group()
        .traffic_distribution_group_id(&group_arn)
        .send()
        .await?;
    let group = described
        .traffic_distribution_group()
        .ok_or("no TrafficDistributionGroup")?;
    assert_eq!(
        group.status(),
        Some(&TrafficDistributionGroupStatus::CreationInProgress)
    );
    assert_eq!(
        group.instance_arn(),
        Some(format!("arn:aws:connect:{EAST}:123456789012:instance/{id}").as_str())
    );
    let err = east
        .update_traffic_distribution()
        .id(&group_id)
        .telephony_config(
            TelephonyConfig::builder()
                .set_distributions(Some(split(50, 50)?))
                .build()?,
        )
        .send()
        .await
        .err()
        .ok_or("an update while the replication runs succeeded")?;
    assert_eq!(err.code(), Some("ResourceConflictException"));
    assert_eq!(http_status(&err), Some(409));

    wait_replication(
        &east,
        &id,
        InstanceReplicationStatus::InstanceReplicationComplete,
    )
    .await?;
    let (_, status, _) = summary_status(&west, &id).await?;
    assert_eq!(
        status,
        InstanceReplicationStatus::InstanceReplicationComplete
    );
    let replica = west.describe_instance().instance_id(&id).send().await?;
    assert_eq!(
        replica.instance().and_then(|i| i.instance_status()),
        Some(&InstanceStatus::Active)
    );
    let described = east
        .describe_traffic_distribution_group()
        .traffic_distribution_group_id(&group_id)
        .send()
        .await?;
    let group = described.traffic_distribution_group().ok_or("no group")?;
    assert_eq!(
        group.status(),
        Some(&TrafficDistributionGroupStatus::Active)
    );
    assert!(group.is_default());

    // Defaults: telephony and agents all on the source, sign-in in both regions.
    let dist = east.get_traffic_distribution().id(&group_id).send().await?;
    assert_eq!(dist.id(), Some(group_id.as_str()));
    assert_eq!(dist.arn(), Some(group_arn.as_str()));
    let shares = |d: &[Distribution]| -> Vec<(String, i32)> {
        d.iter()
            .map(|d| (d.region().to_owned(), d.percentage()))
            .collect()
    };
    let telephony = dist.telephony_config().ok_or("no TelephonyConfig")?;
    assert_eq!(
        shares(telephony.distributions()),
        vec![(EAST.to_owned(), 100), (WEST.to_owned(), 0)]
    );
    let agents = dist.agent_config().ok_or("no AgentConfig")?;
    assert_eq!(
        shares(agents.distributions()),
        vec![(EAST.to_owned(), 100), (WEST.to_owned(), 0)]
    );
    let sign_in = dist.sign_in_config().ok_or("no SignInConfig")?;
    assert!(sign_in.distributions().iter().all(|d| d.enabled()));
    assert_eq!(sign_in.distributions().len(), 2);

    // Update from the replica region (by ARN), read back from the source region.
    west.update_traffic_distribution()
        .id(&group_arn)
        .telephony_config(
            TelephonyConfig::builder()
                .set_distributions(Some(split(30, 70)?))
                .build()?,
        )
        .agent_config(
            AgentConfig::builder()
                .set_distributions(Some(split(0, 100)?))
                .build()?,
        )
        .sign_in_config(
            SignInConfig::builder()
                .distributions(
                    SignInDistribution::builder()
                        .region(EAST)
                        .enabled(false)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await?;
    let dist = east.get_traffic_distribution().id(&group_id).send().await?;
    assert_eq!(
        shares(
            dist.telephony_config()
                .ok_or("no TelephonyConfig")?
                .distributions()
        ),
        vec![(EAST.to_owned(), 30), (WEST.to_owned(), 70)]
    );
    assert_eq!(
        shares(dist.agent_config().ok_or("no AgentConfig")?.distributions()),
        vec![(EAST.to_owned(), 0), (WEST.to_owned(), 100)]
    );
    let sign_in: Vec<(String, bool)> = dist
        .sign_in_config()
        .ok_or("no SignInConfig")?
        .distributions()
        .iter()
        .map(|d| (d.region().to_owned(), d.enabled()))
        .collect();
    assert_eq!(
        sign_in,
        vec![(EAST.to_owned(), false), (WEST.to_owned(), true)]
    );
    // The call log records which region each call was made in.
    let updates = calls_of(&sim, "UpdateTrafficDistribution").await?;
    let regions: Vec<(&str, u64)> = updates
        .iter()
        .map(|c| {
            (
                c["region"].as_str().unwrap_or(""),
                c["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(regions, vec![(EAST, 409), (WEST, 200)]);
    let replicates = calls_of(&sim, "ReplicateInstance").await?;
    assert_eq!(replicates[0]["region"], EAST);
    assert_eq!(replicates[0]["instanceId"], id.as_str());

    // /_sim/ shows the replica and the group.
    let view = control_get(&sim, "/_sim/replication").await?;
    assert_eq!(view["replications"][0]["replicaRegion"], WEST);
    assert_eq!(
        view["replications"][0]["status"],
        "INSTANCE_REPLICATION_COMPLETE"
    );
    assert_eq!(
        view["trafficDistributionGroups"][0]["id"],
        group_id.as_str()
    );
    let state = control_get(&sim, &format!("/_sim/state?region={WEST}")).await?;
    assert_eq!(
        (
            state["instanceCount"].as_u64(),
            state["replicaCount"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let state = control_get(&sim, &format!("/_sim/state?region={EAST}")).await?;
    assert_eq!(state["replicaCount"].as_u64(), Some(0));
    let instances = control_get(&sim, &format!("/_sim/instances?region={WEST}")).await?;
    assert_eq!(instances[0]["id"], id.as_str());
    assert_eq!(instances[0]["replicaOf"], EAST);
    Ok(())
}

#[tokio::test]
async fn replicate_tokens_replay_and_the_replica_counts_in_its_region() -> TestResult {
    let sim = start(replication_config()).await?;
    let east = sdk_in(&sim, EAST);
    let id = active_instance(&east, "tok-source", true).await?;
    assert_eq!(attempts_in(&sim, EAST).await?, 1);
    assert_eq!(attempts_in(&sim, WEST).await?, 0);
    let first = replicate(&east, &id, WEST, "tok-replica", Some("tok-1")).await?;
    assert_eq!(
        attempts_in(&sim, WEST).await?,
        1,
        "a creation attempt in the replica region"
    );
    assert_eq!(attempts_in(&sim, EAST).await?, 1);

    let again = replicate(&east, &id, WEST, "tok-replica", Some("tok-1")).await?;
    assert_eq!((again.id(), again.arn()), (first.id(), first.arn()));
    assert_eq!(attempts_in(&sim, WEST).await?, 1, "a replay counts nothing");
    let calls = calls_of(&sim, "ReplicateInstance").await?;
    assert_eq!(calls[1]["replay"], true);

    let err = replicate(&east, &id, WEST, "tok-other", Some("tok-1"))
        .await
        .err()
        .ok_or("the token with other parameters succeeded")?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(err.message().unwrap_or_default().contains("tok-1"));

    let err = replicate(&east, &id, WEST, "tok-other", Some("tok-2"))
        .await
        .err()
        .ok_or("a second replica succeeded")?;
    assert_eq!(err.code(), Some("ResourceConflictException"));
    assert_eq!(http_status(&err), Some(409));
    assert_eq!(attempts_in(&sim, WEST).await?, 1);

    // The replica region's attempt limit applies to replicas.
    let other = active_instance(&east, "tok-second", true).await?;
    put_config(&sim, json!({ "lifecycleAttemptLimit": 1 })).await?;
    let err = replicate(&east, &other, WEST, "tok-second-r", None)
        .await
        .err()
        .ok_or("a replica past the attempt limit succeeded")?;
    assert_eq!(err.code(), Some("ServiceQuotaExceededException"));
    assert!(
        err.message()
            .unwrap_or_default()
            .starts_with("Your account has been flagged")
    );
    Ok(())
}

#[tokio::test]
async fn replicate_refusals_carry_aws_codes() -> TestResult {
    let sim = start(SimConfig {
        creation_delay: Duration::from_millis(300),
        ..replication_config()
    })
    .await?;
    let east = sdk_in(&sim, EAST);
    let saml = active_instance(&east, "ref-saml", true).await?;
    let managed = active_instance(&east, "ref-managed", false).await?;

    let expect = |result: Result<_, _>, code: &str, needle: &str| -> TestResult {
        let err: aws_sdk_connect::error::SdkError<_, _> = match result {
            Ok(_) => return Err(format!("expected {code}, got success").into()),
            Err(err) => err,
        };
        let message = err.message().unwrap_or_default().to_owned();
        if err.code() != Some(code) || !message.contains(needle) {
            return Err(format!(
                "expected {code} with '{needle}', got {:?}: {message}",
                err.code()
            )
            .into());
        }
        Ok(())
    };
    expect(
        replicate(&east, &managed, WEST, "ref-r1", None).await,
        "InvalidRequestException",
        "SAML",
    )?;
    expect(
        replicate(&east, &saml, EAST, "ref-r2", None).await,
        "InvalidRequestException",
        "own Region",
    )?;
    expect(
        replicate(&east, &saml, "eu-west-2", "ref-r3", None).await,
        "InvalidRequestException",
        "us-east-1 -> us-west-2",
    )?;
    expect(
        replicate(&east, &saml, WEST, "-bad-", None).await,
        "InvalidRequestException",
        "ReplicaAlias",
    )?;
    expect(
        replicate(&east, &saml, WEST, "ref-managed", None).await,
        "InvalidRequestException",
        "ref-managed",
    )?;
    expect(
        replicate(
            &east,
            "00000000-0000-4000-8000-000000000000",
            WEST,
            "ref-r4",
            None,
        )
        .await,
        "ResourceNotFoundException",
        "not found",
    )?;
    // ap-northeast-1 -> ap-northeast-3 only, not back.
    let tokyo3 = sdk_in(&sim, "ap-northeast-3");
    let osaka = active_instance(&tokyo3, "ref-osaka", true).await?;
    expect(
        replicate(&tokyo3, &osaka, "ap-northeast-1", "ref-r5", None).await,
        "InvalidRequestException",
        "ap-northeast-1",
    )?;
    // Not ACTIVE yet.
    put_config(&sim, json!({ "creationDelayMs": 60_000 })).await?;
    let pending = east
        .create_instance()
        .identity_management_type(DirectoryType::Saml)
        .instance_alias("ref-pending")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .send()
        .await?;
    let pending = pending.id().ok_or("no Id")?;
    let result = replicate(&east, pending, WEST, "ref-r6", None).await;
    if let Err(err) = &result {
        assert_eq!(http_status(err), Some(409));
    }
    expect(result, "ResourceNotReadyException", "not ACTIVE")?;
    // None of them created anything in the replica region.
    assert_eq!(attempts_in(&sim, WEST).await?, 0);
    let view = control_get(&sim, "/_sim/replication").await?;
    assert_eq!(view["replications"], json!([]));
    Ok(())
}

#[tokio::test]
async fn accounts_not_allow_listed_are_denied_until_the_knob_allows_them() -> TestResult {
    let sim = start(replication_config()).await?;
    let east = sdk_in(&sim, EAST);
    let id = active_instance(&east, "allow-source", true).await?;
    put_config(
        &sim,
        json!({ "accounts": { "123456789012": { "replicationAllowed": false } } }),
    )
    .await?;
    let err = replicate(&east, &id, WEST, "allow-replica", None)
        .await
        .err()
        .ok_or("a refused account replicated")?;
    assert_eq!(err.code(), Some("AccessDeniedException"));
    assert_eq!(http_status(&err), Some(403));
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("not allow-listed")
    );
    // The default for every account.
    put_config(
        &sim,
        json!({ "replicationAllowed": false, "accounts": { "123456789012": null } }),
    )
    .await?;
    let err = replicate(&east, &id, WEST, "allow-replica", None)
        .await
        .err()
        .ok_or("a refused account replicated")?;
    assert_eq!(err.code(), Some("AccessDeniedException"));
    // An exception for this account allows it.
    put_config(
        &sim,
        json!({ "accounts": { "123456789012": { "replicationAllowed": true } } }),
    )
    .await?;
    replicate(&east, &id, WEST, "allow-replica", None).await?;
    assert_eq!(attempts_in(&sim, WEST).await?, 1);
    Ok(())
}

#[tokio::test]
async fn traffic_distribution_updates_are_validated() -> TestResult {
    let sim = start(replication_config()).await?;
    let (east, west) = (sdk_in(&sim, EAST), sdk_in(&sim, WEST));
    let id = active_instance(&east, "val-source", true).await?;
    replicate(&east, &id, WEST, "val-replica", None).await?;
    let err = east
        .create_traffic_distribution_group()
        .name("early")
        .instance_id(&id)
        .send()
        .await
        .err()
        .ok_or("a group before the replication completed")?;
    assert_eq!(err.code(), Some("ResourceNotReadyException"));
    wait_replication(
        &east,
        &id,
        InstanceReplicationStatus::InstanceReplicationComplete,
    )
    .await?;
    let (default_id, _) = default_group(&east, &id).await?;

    for (distributions, needle) in [
        (split(60, 30)?, "add up to 100"),
        (
            vec![
                Distribution::builder()
                    .region("eu-west-2")
                    .percentage(100)
                    .build()?,
            ],
            "eu-west-2",
        ),
        (split(101, 0)?, "0 to 100"),
    ] {
        let err = east
            .update_traffic_distribution()
            .id(&default_id)
            .telephony_config(
                TelephonyConfig::builder()
                    .set_distributions(Some(distributions))
                    .build()?,
            )
            .send()
            .await
            .err()
            .ok_or("an invalid distribution was accepted")?;
        assert_eq!(err.code(), Some("InvalidRequestException"));
        assert!(
            err.message().unwrap_or_default().contains(needle),
            "{needle}: {:?}",
            err.message()
        );
    }
    // Nothing changed.
    let dist = east
        .get_traffic_distribution()
        .id(&default_id)
        .send()
        .await?;
    assert_eq!(
        dist.telephony_config().ok_or("no config")?.distributions()[0].percentage(),
        100
    );

    // A further group: created in the source region, no SignInConfig, deletable.
    let created = east
        .create_traffic_distribution_group()
        .name("second")
        .description("the second group")
        .instance_id(&id)
        .client_token("tdg-token")
        .send()
        .await?;
    let second = created.id().ok_or("no Id")?.to_owned();
    let replay = east
        .create_traffic_distribution_group()
        .name("second")
        .description("the second group")
        .instance_id(&id)
        .client_token("tdg-token")
        .send()
        .await?;
    assert_eq!(replay.id(), Some(second.as_str()));
    let listed = west
        .list_traffic_distribution_groups()
        .max_results(1)
        .send()
        .await?;
    assert_eq!(listed.traffic_distribution_group_summary_list().len(), 1);
    let token = listed.next_token().ok_or("no NextToken")?.to_owned();
    let page2 = west
        .list_traffic_distribution_groups()
        .max_results(1)
        .next_token(token)
        .send()
        .await?;
    assert_eq!(page2.traffic_distribution_group_summary_list().len(), 1);
    assert!(page2.next_token().is_none());
    let err = east
        .update_traffic_distribution()
        .id(&second)
        .sign_in_config(
            SignInConfig::builder()
                .distributions(
                    SignInDistribution::builder()
                        .region(WEST)
                        .enabled(false)
                        .build()?,
                )
                .build()?,
        )
        .send()
        .await
        .err()
        .ok_or("SignInConfig on a non-default group was accepted")?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(err.message().unwrap_or_default().contains("default"));
    let dist = east.get_traffic_distribution().id(&second).send().await?;
    assert!(dist.sign_in_config().is_none());

    let err = east
        .delete_traffic_distribution_group()
        .traffic_distribution_group_id(&default_id)
        .send()
        .await
        .err()
        .ok_or("the default group was deleted")?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    east.delete_traffic_distribution_group()
        .traffic_distribution_group_id(&second)
        .send()
        .await?;
    let err = east
        .describe_traffic_distribution_group()
        .traffic_distribution_group_id(&second)
        .send()
        .await
        .err()
        .ok_or("a deleted group is still described")?;
    assert_eq!(err.code(), Some("ResourceNotFoundException"));
    Ok(())
}

#[tokio::test]
async fn deleting_the_replica_then_the_source() -> TestResult {
    let sim = start(replication_config()).await?;
    let (east, west) = (sdk_in(&sim, EAST), sdk_in(&sim, WEST));
    let id = active_instance(&east, "del-source", true).await?;
    replicate(&east, &id, WEST, "del-replica", None).await?;
    wait_replication(
        &east,
        &id,
        InstanceReplicationStatus::InstanceReplicationComplete,
    )
    .await?;

    // Refused by default while the replica exists, naming it; nothing counted.
    let err = east
        .delete_instance()
        .instance_id(&id)
        .send()
        .await
        .err()
        .ok_or("the source was deleted while it had a replica")?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(err.message().unwrap_or_default().contains(WEST));
    assert_eq!(attempts_in(&sim, EAST).await?, 1);

    west.delete_instance().instance_id(&id).send().await?;
    assert_eq!(
        attempts_in(&sim, WEST).await?,
        2,
        "creation and deletion of the replica"
    );
    let (region, status, _) = summary_status(&east, &id).await?;
    assert_eq!(
        (region.as_str(), status),
        (WEST, InstanceReplicationStatus::InstanceReplicaDeleting)
    );
    wait_gone(&west, &id).await?;
    assert!(
        replication_of(&east, &id).await?.is_none(),
        "the source's ReplicationConfiguration goes with the replica"
    );
    let groups = east.list_traffic_distribution_groups().send().await?;
    assert!(groups.traffic_distribution_group_summary_list().is_empty());

    east.delete_instance().instance_id(&id).send().await?;
    wait_gone(&east, &id).await?;
    assert_eq!(attempts_in(&sim, EAST).await?, 2);
    Ok(())
}

#[tokio::test]
async fn cascade_deletes_the_replica_and_its_group_with_the_source() -> TestResult {
    let sim = start(replication_config()).await?;
    let (east, west) = (sdk_in(&sim, EAST), sdk_in(&sim, WEST));
    put_config(&sim, json!({ "sourceDeleteWithReplica": "cascade" })).await?;
    let id = active_instance(&east, "cas-source", true).await?;
    replicate(&east, &id, WEST, "cas-replica", None).await?;
    wait_replication(
        &east,
        &id,
        InstanceReplicationStatus::InstanceReplicationComplete,
    )
    .await?;

    east.delete_instance().instance_id(&id).send().await?;
    let (_, status, _) = summary_status(&west, &id).await?;
    assert_eq!(status, InstanceReplicationStatus::InstanceReplicaDeleting);
    wait_gone(&east, &id).await?;
    wait_gone(&west, &id).await?;
    assert_eq!(attempts_in(&sim, EAST).await?, 2);
    assert_eq!(
        attempts_in(&sim, WEST).await?,
        2,
        "the replica's deletion counts there"
    );
    let view = control_get(&sim, "/_sim/replication").await?;
    assert_eq!(
        view,
        json!({ "replications": [], "trafficDistributionGroups": [] })
    );
    Ok(())
}

#[tokio::test]
async fn a_failing_replication_reports_its_reason() -> TestResult {
    let sim = start(replication_config()).await?;
    let east = sdk_in(&sim, EAST);
    put_config(&sim, json!({ "failReplicationAliasPattern": "^doomed" })).await?;
    let id = active_instance(&east, "fail-source", true).await?;
    replicate(&east, &id, WEST, "doomed-replica", None).await?;
    wait_replication(
        &east,
        &id,
        InstanceReplicationStatus::InstanceReplicationFailed,
    )
    .await?;
    let (_, _, reason) = summary_status(&east, &id).await?;
    assert!(reason.contains("failReplicationAliasPattern"), "{reason}");
    let (group_id, _) = default_group(&east, &id).await?;
    let group = east
        .describe_traffic_distribution_group()
        .traffic_distribution_group_id(&group_id)
        .send()
        .await?;
    assert_eq!(
        group.traffic_distribution_group().and_then(|g| g.status()),
        Some(&TrafficDistributionGroupStatus::CreationFailed)
    );
    Ok(())
}

#[tokio::test]
async fn connect_sim_binary_takes_the_replication_flags_and_the_kit_patches_them() -> TestResult {
    let defaults_dir = test_kit::simulator::log_dir("sim-replication-flags-off");
    let off = test_kit::Simulator::start(&defaults_dir, &[])
        .config()
        .await;
    assert_eq!(
        (
            off.replication_delay_ms,
            off.replica_deletion_delay_ms,
            off.replication_allowed,
            off.fail_replication_alias_pattern.clone(),
            off.source_delete_with_replica,
        ),
        (2000, 1000, true, None, SourceDeleteWithReplica::Refuse),
        "the defaults"
    );
    assert_eq!(off.rate_limits["ReplicateInstance"], Some(0.1));
    assert_eq!(off.rate_bursts["ReplicateInstance"], 1);
    assert_eq!(off.rate_limits["UpdateTrafficDistribution"], Some(2.0));
    assert_eq!(off.rate_bursts["ListTrafficDistributionGroups"], 5);

    let log_dir = test_kit::simulator::log_dir("sim-replication-flags");
    let sim = test_kit::Simulator::start(
        &log_dir,
        &[
            "--replication-delay",
            "5s",
            "--replica-deletion-delay",
            "3s",
            "--deny-replication",
            "--fail-replication-alias-pattern",
            "^doomed",
            "--source-delete-with-replica",
            "cascade",
        ],
    );
    let config = sim.config().await;
    assert_eq!(
        (
            config.replication_delay_ms,
            config.replica_deletion_delay_ms,
            config.replication_allowed,
            config.fail_replication_alias_pattern.as_deref(),
            config.source_delete_with_replica,
        ),
        (
            5000,
            3000,
            false,
            Some("^doomed"),
            SourceDeleteWithReplica::Cascade
        )
    );

    // The typed patch of the test kit, per account too.
    let config = sim
        .set_config(&ConfigPatch {
            replication_delay_ms: Some(100),
            replication_allowed: Some(true),
            fail_replication_alias_pattern: Some(None),
            source_delete_with_replica: Some(SourceDeleteWithReplica::Refuse),
            accounts: Some(
                [(
                    "111111111111".to_owned(),
                    Some(AccountPatch {
                        replication_allowed: Some(Some(false)),
                        ..AccountPatch::default()
                    }),
                )]
                .into(),
            ),
            ..ConfigPatch::default()
        })
        .await;
    assert_eq!(config.replication_delay_ms, 100);
    assert!(config.replication_allowed);
    assert_eq!(config.fail_replication_alias_pattern, None);
    assert_eq!(
        config.source_delete_with_replica,
        SourceDeleteWithReplica::Refuse
    );
    assert_eq!(
        config.accounts["111111111111"].replication_allowed,
        Some(false)
    );
    Ok(())
}
