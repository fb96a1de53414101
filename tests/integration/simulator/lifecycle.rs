//! The instance lifecycle as the SDK sees it: CreateInstance then DescribeInstance reports
//! CREATION_IN_PROGRESS and then ACTIVE with the SDK's shapes; ListInstances paginates;
//! DeleteInstance with a client token keeps the instance until the deletion delay has passed
//! and then answers NotFound; CreateInstance with the same client token returns the same
//! instance and counts one lifecycle attempt.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::{DirectoryType, InstanceStatus};
use connect_sim::SimConfig;

use super::{
    TestResult, calls_of, control_get, create, fast_config, http_status, lifecycle_attempts, sdk,
    start, status_of, wait_for_status,
};

#[tokio::test]
async fn create_then_describe_reports_in_progress_then_active_with_sdk_shapes() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let before = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();

    let out = client
        .create_instance()
        .client_token("create-shapes")
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias("shapes")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(false)
        .tags("team", "support")
        .send()
        .await?;
    let id = out.id().ok_or("no Id")?;
    let arn = out.arn().ok_or("no Arn")?;
    assert_eq!(id.len(), 36, "instance ids are UUIDs: {id}");
    assert_eq!(
        arn,
        format!("arn:aws:connect:us-east-1:123456789012:instance/{id}")
    );

    let described = client.describe_instance().instance_id(id).send().await?;
    let instance = described.instance().ok_or("no Instance")?;
    assert_eq!(
        instance.instance_status(),
        Some(&InstanceStatus::CreationInProgress)
    );
    assert_eq!(instance.id(), Some(id));
    assert_eq!(instance.arn(), Some(arn));
    assert_eq!(instance.instance_alias(), Some("shapes"));
    assert_eq!(
        instance.identity_management_type(),
        Some(&DirectoryType::ConnectManaged)
    );
    assert_eq!(instance.inbound_calls_enabled(), Some(true));
    assert_eq!(instance.outbound_calls_enabled(), Some(false));
    assert_eq!(
        instance.instance_access_url(),
        Some("https://shapes.my.connect.aws")
    );
    assert!(
        instance.service_role().is_some_and(|r| r
            .starts_with("arn:aws:iam::123456789012:role/aws-service-role/connect.amazonaws.com/")),
        "service role: {:?}",
        instance.service_role()
    );
    let created = instance
        .created_time()
        .ok_or("no CreatedTime")?
        .as_secs_f64();
    assert!(
        (created - before).abs() < 60.0,
        "CreatedTime {created} is not now ({before})"
    );
    assert_eq!(
        instance
            .tags()
            .and_then(|t| t.get("team"))
            .map(String::as_str),
        Some("support")
    );
    assert!(instance.status_reason().is_none());

    wait_for_status(&client, id, InstanceStatus::Active).await?;
    // Connect accepts the instance ARN wherever an InstanceId goes.
    let by_arn = client.describe_instance().instance_id(arn).send().await?;
    assert_eq!(by_arn.instance().and_then(|i| i.id()), Some(id));
    Ok(())
}

#[tokio::test]
async fn list_instances_paginates_one_per_page_across_three_instances() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let mut created = Vec::new();
    for alias in ["page-one", "page-two", "page-three"] {
        created.push(create(&client, alias, None).await?.0);
    }

    let mut seen = Vec::new();
    let mut next_token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_instances()
            .max_results(1)
            .set_next_token(next_token.clone())
            .send()
            .await?;
        pages += 1;
        assert_eq!(page.instance_summary_list().len(), 1, "page {pages}");
        for summary in page.instance_summary_list() {
            seen.push(summary.id().ok_or("summary without Id")?.to_owned());
            assert!(
                summary.created_time().is_some(),
                "summary CreatedTime parses"
            );
            assert!(summary.instance_status().is_some());
            assert!(summary.instance_access_url().is_some());
        }
        next_token = page.next_token().map(str::to_owned);
        if next_token.is_none() || pages > 10 {
            break;
        }
    }
    assert_eq!(pages, 3, "three pages of one");
    assert_eq!(seen, created, "every instance once, in creation order");

    let all = client.list_instances().send().await?;
    assert_eq!(all.instance_summary_list().len(), 3);
    assert!(all.next_token().is_none(), "no NextToken on the last page");

    let bad = client.list_instances().next_token("bogus").send().await;
    let err = bad.err().ok_or("a bogus NextToken was accepted")?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    Ok(())
}

#[tokio::test]
async fn delete_with_client_token_keeps_instance_until_deletion_delay_then_not_found() -> TestResult
{
    let sim = start(SimConfig {
        deletion_delay: Duration::from_millis(800),
        ..fast_config()
    })
    .await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "doomed", None).await?;
    wait_for_status(&client, &id, InstanceStatus::Active).await?;
    assert_eq!(lifecycle_attempts(&sim).await?, 1);

    client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-doomed")
        .send()
        .await?;
    // Repeating the same token succeeds and is not a second attempt.
    client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-doomed")
        .send()
        .await?;
    assert_eq!(lifecycle_attempts(&sim).await?, 2, "create + one delete");
    assert_eq!(
        status_of(&client, &id).await?,
        InstanceStatus::Active,
        "still visible while deleting"
    );
    assert_eq!(
        control_get(&sim, "/_sim/instances").await?[0]["deleting"],
        true
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        match client.describe_instance().instance_id(&id).send().await {
            Err(err) => break err,
            Ok(_) if Instant::now() > deadline => return Err("instance never vanished".into()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    assert_eq!(http_status(&err), Some(404));
    // The token still answers success after the instance is gone (a retry after a lost reply).
    client
        .delete_instance()
        .instance_id(&id)
        .client_token("delete-doomed")
        .send()
        .await?;
    let other = client
        .delete_instance()
        .instance_id(&id)
        .client_token("another-token")
        .send()
        .await;
    assert!(
        other
            .err()
            .and_then(|e| e
                .into_service_error()
                .is_resource_not_found_exception()
                .then_some(()))
            .is_some()
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 2);

    let deletes = calls_of(&sim, "DeleteInstance").await?;
    assert_eq!(deletes.len(), 4);
    assert!(
        deletes[..3]
            .iter()
            .all(|c| c["clientToken"] == "delete-doomed" && c["status"] == 200)
    );
    assert_eq!(deletes[1]["replay"], true);
    assert_eq!(deletes[3]["status"], 404);
    Ok(())
}

#[tokio::test]
async fn create_with_same_client_token_returns_same_instance_and_counts_one_attempt() -> TestResult
{
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let first = create(&client, "idem", Some("token-idem")).await?;
    let second = create(&client, "idem", Some("token-idem")).await?;
    assert_eq!(first, second, "same Id and Arn");
    assert_eq!(
        control_get(&sim, "/_sim/instances")
            .await?
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 1);

    let creates = calls_of(&sim, "CreateInstance").await?;
    assert_eq!(creates.len(), 2);
    assert!(
        creates
            .iter()
            .all(|c| c["clientToken"] == "token-idem" && c["instanceId"] == first.0.as_str())
    );
    assert_eq!(creates[0]["replay"], false);
    assert_eq!(creates[1]["replay"], true);

    // Reusing the token for a different instance is an error, not a second instance.
    let reused = create(&client, "other-alias", Some("token-idem")).await;
    assert!(reused.is_err());
    assert_eq!(lifecycle_attempts(&sim).await?, 1);
    Ok(())
}
