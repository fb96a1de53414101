//! Instance attributes and tags: attributes default like AWS and round-trip through
//! UpdateInstanceAttribute; every attribute type the SDK knows is served; tags given to
//! CreateInstance are listed and changed by TagResource and UntagResource.

use std::collections::{BTreeSet, HashMap};

use aws_sdk_connect::error::ProvideErrorMetadata;
use aws_sdk_connect::types::{DirectoryType, InstanceAttributeType};

use super::{TestResult, control_get, create, fast_config, sdk, start};

#[tokio::test]
async fn instance_attributes_default_like_aws_and_round_trip_through_update() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "attrs", None).await?;

    let attributes = client
        .list_instance_attributes()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?;
    let by_type: HashMap<String, String> = attributes
        .iter()
        .filter_map(|a| {
            Some((
                a.attribute_type()?.as_str().to_owned(),
                a.value()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(
        by_type.len(),
        14,
        "every attribute type is listed: {by_type:?}"
    );
    assert_eq!(by_type["INBOUND_CALLS"], "true", "from the create request");
    assert_eq!(
        by_type["OUTBOUND_CALLS"], "false",
        "from the create request"
    );
    assert_eq!(by_type["CONTACTFLOW_LOGS"], "false");
    assert!(by_type.values().all(|v| v == "true" || v == "false"));

    let first_page = client
        .list_instance_attributes()
        .instance_id(&id)
        .send()
        .await?;
    assert_eq!(first_page.attributes().len(), 7, "AWS's default page size");
    assert!(first_page.next_token().is_some());

    client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::ContactflowLogs)
        .value("true")
        .client_token("attr-token-1")
        .send()
        .await?;
    client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::OutboundCalls)
        .value("true")
        .send()
        .await?;
    let described = client
        .describe_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::ContactflowLogs)
        .send()
        .await?;
    let attribute = described.attribute().ok_or("no Attribute")?;
    assert_eq!(
        attribute.attribute_type(),
        Some(&InstanceAttributeType::ContactflowLogs)
    );
    assert_eq!(attribute.value(), Some("true"));
    let instance = client.describe_instance().instance_id(&id).send().await?;
    assert_eq!(
        instance.instance().and_then(|i| i.outbound_calls_enabled()),
        Some(true)
    );

    // The same ClientToken with other parameters is refused; with the same ones it replays.
    let mismatch = client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::ContactflowLogs)
        .value("false")
        .client_token("attr-token-1")
        .send()
        .await;
    assert_eq!(
        mismatch
            .err()
            .and_then(|e| e.code().map(str::to_owned))
            .as_deref(),
        Some("InvalidRequestException")
    );
    let bad_value = client
        .update_instance_attribute()
        .instance_id(&id)
        .attribute_type(InstanceAttributeType::EarlyMedia)
        .value("maybe")
        .send()
        .await;
    let err = bad_value.err().ok_or("a non-boolean value was accepted")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception())
    );

    let instances = control_get(&sim, "/_sim/instances").await?;
    assert_eq!(instances[0]["attributes"]["CONTACTFLOW_LOGS"], "true");
    assert_eq!(instances[0]["outboundCallsEnabled"], true);
    Ok(())
}

#[tokio::test]
async fn tags_from_create_are_listed_and_changed_by_tag_and_untag() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let out = client
        .create_instance()
        .identity_management_type(DirectoryType::Saml)
        .instance_alias("tagged")
        .inbound_calls_enabled(true)
        .outbound_calls_enabled(true)
        .tags("owner", "platform")
        .tags("cost-centre", "42")
        .send()
        .await?;
    let arn = out.arn().ok_or("no Arn")?;

    let tags_of = |arn: String| {
        let client = client.clone();
        async move {
            let out = client
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await?;
            let tags: HashMap<String, String> = out.tags().cloned().unwrap_or_default();
            Ok::<_, Box<dyn std::error::Error>>(tags)
        }
    };
    let tags = tags_of(arn.to_owned()).await?;
    assert_eq!(tags.len(), 2);
    assert_eq!(tags["owner"], "platform");

    client
        .tag_resource()
        .resource_arn(arn)
        .tags("env", "dev")
        .tags("owner", "sre")
        .send()
        .await?;
    let tags = tags_of(arn.to_owned()).await?;
    assert_eq!(tags.len(), 3);
    assert_eq!(tags["owner"], "sre", "TagResource overwrites values");

    client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("owner")
        .tag_keys("cost-centre")
        .send()
        .await?;
    let tags = tags_of(arn.to_owned()).await?;
    assert_eq!(tags, HashMap::from([("env".to_owned(), "dev".to_owned())]));

    let reserved = client
        .tag_resource()
        .resource_arn(arn)
        .tags("aws:owner", "x")
        .send()
        .await;
    let err = reserved.err().ok_or("an aws: tag key was accepted")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_parameter_exception())
    );
    let unknown = client
        .list_tags_for_resource()
        .resource_arn(
            "arn:aws:connect:us-east-1:123456789012:instance/00000000-0000-4000-8000-000000000000",
        )
        .send()
        .await;
    let err = unknown
        .err()
        .ok_or("tags of an unknown instance were listed")?;
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception())
    );
    Ok(())
}

#[tokio::test]
async fn every_attribute_type_the_sdk_knows_is_served() -> TestResult {
    let sim = start(fast_config()).await?;
    let client = sdk(&sim);
    let (id, _) = create(&client, "all-attrs", None).await?;
    let served: BTreeSet<String> = client
        .list_instance_attributes()
        .instance_id(&id)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await?
        .iter()
        .filter_map(|a| a.attribute_type().map(|t| t.as_str().to_owned()))
        .collect();
    let known: BTreeSet<String> = InstanceAttributeType::values()
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(
        served, known,
        "the simulator serves exactly the SDK's attribute types"
    );
    for name in &known {
        let out = client
            .describe_instance_attribute()
            .instance_id(&id)
            .attribute_type(InstanceAttributeType::from(name.as_str()))
            .send()
            .await?;
        let attribute = out.attribute().ok_or(format!("{name}: no Attribute"))?;
        assert_eq!(
            attribute
                .attribute_type()
                .map(InstanceAttributeType::as_str),
            Some(name.as_str())
        );
        let expected = if name == "INBOUND_CALLS" {
            "true"
        } else {
            "false"
        };
        assert_eq!(attribute.value(), Some(expected), "{name}");
    }
    Ok(())
}
