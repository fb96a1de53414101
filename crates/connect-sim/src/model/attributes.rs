//! Instance attributes and tags: Update / Describe / ListInstanceAttributes and Tag /
//! Untag / ListTagsForResource.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Instance, Model, Reply, Settings};
use crate::errors::ApiError;
use crate::validate::{
    MAX_TAGS, decode_token, encode_token, normalise_attribute_value, parse_max_results,
    validate_attribute_type, validate_client_token, validate_tags,
};

/// Every `InstanceAttributeType` the Connect API knows, in the order `ListInstanceAttributes`
/// returns them. All of them are boolean-valued (`"true"` / `"false"`).
pub(crate) const ATTRIBUTE_TYPES: [&str; 14] = [
    "INBOUND_CALLS",
    "OUTBOUND_CALLS",
    "CONTACTFLOW_LOGS",
    "CONTACT_LENS",
    "AUTO_RESOLVE_BEST_VOICES",
    "USE_CUSTOM_TTS_VOICES",
    "EARLY_MEDIA",
    "MULTI_PARTY_CONFERENCE",
    "HIGH_VOLUME_OUTBOUND",
    "ENHANCED_CONTACT_MONITORING",
    "ENHANCED_CHAT_MONITORING",
    "MULTI_PARTY_CHAT_CONFERENCE",
    "MESSAGE_STREAMING",
    "AUTO_MUTE_AGENT_ON_HOLD",
];

/// Page size AWS allows (and uses when `maxResults` is absent).
pub(crate) const LIST_INSTANCE_ATTRIBUTES_MAX_RESULTS: usize = 7;

/// What an UpdateInstanceAttribute ClientToken was first used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct UpdateTokenRecord {
    instance_id: String,
    attribute_type: String,
    value: String,
}

impl Model {
    /// UpdateInstanceAttribute.
    pub(crate) fn update_instance_attribute(
        &mut self,
        settings: &Settings<'_>,
        id: &str,
        attribute_type: &str,
        value: Option<&str>,
        client_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        if self.find(id).is_none() {
            return Err(ApiError::instance_not_found(id));
        }
        validate_attribute_type(attribute_type, &settings.config.extra_attribute_types)?;
        let value = normalise_attribute_value(value)?;
        let record = UpdateTokenRecord {
            instance_id: id.to_owned(),
            attribute_type: attribute_type.to_owned(),
            value: value.clone(),
        };
        if let Some(token) = client_token {
            validate_client_token(token)?;
            if let Some(previous) = self.update_tokens.get(token) {
                if *previous != record {
                    return Err(ApiError::invalid_request(format!(
                        "ClientToken {token} was already used for an UpdateInstanceAttribute request with different parameters."
                    )));
                }
                return Ok(Reply {
                    body: None,
                    instance_id: Some(id.to_owned()),
                    replay: true,
                });
            }
        }
        if let Some(instance) = self.find_mut(id) {
            instance.attributes.insert(attribute_type.to_owned(), value);
        }
        if let Some(token) = client_token {
            self.update_tokens.insert(token.to_owned(), record);
        }
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// DescribeInstanceAttribute.
    pub(crate) fn describe_instance_attribute(
        &self,
        settings: &Settings<'_>,
        id: &str,
        attribute_type: &str,
    ) -> Result<Reply, ApiError> {
        let instance = self
            .find(id)
            .ok_or_else(|| ApiError::instance_not_found(id))?;
        validate_attribute_type(attribute_type, &settings.config.extra_attribute_types)?;
        let value = instance
            .attributes
            .get(attribute_type)
            .cloned()
            .unwrap_or_else(|| "false".to_owned());
        Ok(Reply::new(
            Some(json!({ "Attribute": { "AttributeType": attribute_type, "Value": value } })),
            Some(id.to_owned()),
        ))
    }

    /// ListInstanceAttributes: the 14 known types, then `extraAttributeTypes`.
    pub(crate) fn list_instance_attributes(
        &self,
        settings: &Settings<'_>,
        id: &str,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let instance = self
            .find(id)
            .ok_or_else(|| ApiError::instance_not_found(id))?;
        let page_size = parse_max_results(max_results, LIST_INSTANCE_ATTRIBUTES_MAX_RESULTS)
            .map_err(ApiError::invalid_parameter)?;
        let types: Vec<&str> = ATTRIBUTE_TYPES
            .iter()
            .copied()
            .chain(
                settings
                    .config
                    .extra_attribute_types
                    .iter()
                    .map(String::as_str),
            )
            .collect();
        let start = match next_token {
            None => 0,
            Some(token) => decode_token(token, "attributes")
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n < types.len())
                .ok_or_else(|| ApiError::invalid_parameter("The NextToken is not valid."))?,
        };
        let page: Vec<Value> = types
            .iter()
            .skip(start)
            .take(page_size)
            .map(|name| {
                let value = instance
                    .attributes
                    .get(*name)
                    .map_or("false", String::as_str);
                json!({ "AttributeType": name, "Value": value })
            })
            .collect();
        let mut body = json!({ "Attributes": page });
        let end = start + page_size;
        if end < types.len()
            && let Value::Object(map) = &mut body
        {
            map.insert(
                "NextToken".into(),
                json!(encode_token(end as u64, "attributes")),
            );
        }
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    fn find_by_arn_mut(&mut self, arn: &str) -> Result<&mut Instance, ApiError> {
        if !arn.starts_with("arn:") {
            return Err(ApiError::invalid_parameter(format!(
                "The resourceArn '{arn}' is not a valid ARN."
            )));
        }
        self.instances
            .iter_mut()
            .find(|i| i.arn == arn && i.visible())
            .ok_or_else(|| ApiError::resource_not_found(format!("Resource {arn} not found.")))
    }

    /// The instance id an ARN names, for the call log (even when the instance is unknown).
    pub(crate) fn instance_id_of_arn(arn: &str) -> Option<String> {
        arn.split_once(":instance/").map(|(_, id)| id.to_owned())
    }

    /// TagResource.
    pub(crate) fn tag_resource(
        &mut self,
        arn: &str,
        tags: Option<BTreeMap<String, String>>,
    ) -> Result<Reply, ApiError> {
        let instance = self.find_by_arn_mut(arn)?;
        let tags = tags
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::invalid_parameter("tags must contain at least one tag."))?;
        let new_keys = tags
            .keys()
            .filter(|k| !instance.tags.contains_key(*k))
            .count();
        validate_tags(&tags, instance.tags.len() + new_keys)
            .map_err(ApiError::invalid_parameter)?;
        instance.tags.extend(tags);
        Ok(Reply::new(None, Some(instance.id.clone())))
    }

    /// UntagResource.
    pub(crate) fn untag_resource(&mut self, arn: &str, keys: &[String]) -> Result<Reply, ApiError> {
        let instance = self.find_by_arn_mut(arn)?;
        if keys.is_empty() {
            return Err(ApiError::invalid_parameter(
                "tagKeys must contain at least one key.",
            ));
        }
        if keys.len() > MAX_TAGS {
            return Err(ApiError::invalid_parameter(format!(
                "tagKeys must contain at most {MAX_TAGS} keys."
            )));
        }
        for key in keys {
            instance.tags.remove(key);
        }
        Ok(Reply::new(None, Some(instance.id.clone())))
    }

    /// ListTagsForResource.
    pub(crate) fn list_tags_for_resource(&mut self, arn: &str) -> Result<Reply, ApiError> {
        let instance = self.find_by_arn_mut(arn)?;
        Ok(Reply::new(
            Some(json!({ "tags": instance.tags })),
            Some(instance.id.clone()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::testing::{new_model, request, settings};
    use crate::config::SimConfig;

    #[test]
    fn extra_attribute_types_are_listed_after_the_known_ones_and_paged() {
        let config = SimConfig {
            extra_attribute_types: vec!["FUTURE_ONE".into(), "FUTURE_TWO".into()],
            ..SimConfig::default()
        };
        let settings = settings(&config);
        let mut model = new_model(9);
        let t0 = Instant::now();
        let id = model
            .create_instance(&settings, request("attrs", None), t0)
            .unwrap()
            .instance_id
            .unwrap();
        let mut listed = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let body = model
                .list_instance_attributes(&settings, &id, None, token.as_deref())
                .unwrap()
                .body
                .unwrap();
            for attribute in body["Attributes"].as_array().unwrap() {
                listed.push((
                    attribute["AttributeType"].as_str().unwrap().to_owned(),
                    attribute["Value"].as_str().unwrap().to_owned(),
                ));
            }
            match body["NextToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        assert_eq!(listed.len(), 16);
        assert_eq!(
            listed[14..],
            [
                ("FUTURE_ONE".to_owned(), "false".to_owned()),
                ("FUTURE_TWO".to_owned(), "false".to_owned())
            ]
        );
        let body = model
            .describe_instance_attribute(&settings, &id, "FUTURE_TWO")
            .unwrap()
            .body
            .unwrap();
        assert_eq!(body["Attribute"]["Value"], "false");
        let plain = SimConfig::default();
        assert!(
            model
                .describe_instance_attribute(&self::settings(&plain), &id, "FUTURE_TWO")
                .is_err(),
            "unknown without the knob"
        );
    }
}
