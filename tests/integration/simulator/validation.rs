//! Requests Connect refuses: a duplicate alias is an InvalidRequestException naming the alias;
//! invalid CreateInstance requests are rejected before anything is created or counted.

use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::DirectoryType;
use serde_json::json;

use super::{
    TestResult, control_get, control_send, create, create_err, fast_config, http_status,
    lifecycle_attempts, sdk, start,
};

#[tokio::test]
async fn duplicate_alias_is_rejected_with_invalid_request_naming_the_alias() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    create(&client, "taken", None).await?;
    let err = create_err(&client, "TAKEN").await?;
    assert_eq!(err.code(), Some("InvalidRequestException"));
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_request_exception())
    );
    assert_eq!(http_status(&err), Some(400));
    assert!(
        err.message().unwrap_or_default().contains("TAKEN"),
        "{:?}",
        err.message()
    );

    // Also against instances the operator did not create.
    let (status, _) = control_send(
        &sim,
        reqwest::Method::POST,
        "/_sim/instances",
        json!({ "alias": "foreign" }),
    )
    .await?;
    assert_eq!(status, 200);
    let err = create_err(&client, "foreign").await?;
    assert!(err.message().unwrap_or_default().contains("foreign"));
    assert_eq!(lifecycle_attempts(&sim).await?, 1);
    Ok(())
}

#[tokio::test]
async fn invalid_create_requests_are_rejected_before_anything_is_created() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let base = || {
        client
            .create_instance()
            .inbound_calls_enabled(true)
            .outbound_calls_enabled(true)
    };
    let attempts = [
        (
            "alias missing",
            base().identity_management_type(DirectoryType::ConnectManaged),
        ),
        (
            "alias pattern",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("-bad"),
        ),
        (
            "alias d- prefix",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("d-abc"),
        ),
        (
            "alias too long",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("a".repeat(46)),
        ),
        (
            "directory missing",
            base()
                .identity_management_type(DirectoryType::ExistingDirectory)
                .instance_alias("dir"),
        ),
        (
            "directory malformed",
            base()
                .identity_management_type(DirectoryType::ExistingDirectory)
                .directory_id("d-xyz"),
        ),
        (
            "directory with saml",
            base()
                .identity_management_type(DirectoryType::Saml)
                .instance_alias("s")
                .directory_id("d-0123456789"),
        ),
        (
            "aws: tag",
            base()
                .identity_management_type(DirectoryType::ConnectManaged)
                .instance_alias("t")
                .tags("aws:x", "y"),
        ),
        ("no identity type", base().instance_alias("no-type")),
    ];
    for (what, request) in attempts {
        let err = request
            .send()
            .await
            .err()
            .ok_or(format!("{what}: accepted"))?;
        assert_eq!(err.code(), Some("InvalidRequestException"), "{what}");
        assert_eq!(http_status(&err), Some(400), "{what}");
    }
    let missing_flags = client
        .create_instance()
        .identity_management_type(DirectoryType::ConnectManaged)
        .instance_alias("flags")
        .send()
        .await;
    assert_eq!(
        missing_flags
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref(),
        Some("InvalidRequestException")
    );
    assert_eq!(lifecycle_attempts(&sim).await?, 0);
    assert_eq!(control_get(&sim, "/_sim/state").await?["instanceCount"], 0);

    let directory = client
        .create_instance()
        .identity_management_type(DirectoryType::ExistingDirectory)
        .directory_id("d-0123456789")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .send()
        .await?;
    assert!(
        directory.id().is_some(),
        "EXISTING_DIRECTORY needs no alias"
    );
    Ok(())
}
