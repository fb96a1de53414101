//! Request validation as Connect does it (identity types, aliases, directory ids, tags,
//! ClientTokens, attribute names and values, required members and their lengths, ARNs),
//! the shapes of AWS identifiers (account ids, regions) and the pagination parameters and
//! tokens of the List operations. Pure functions, kept apart from the account model they
//! guard.

use std::collections::BTreeMap;

use super::errors::ApiError;
use super::model::{ATTRIBUTE_TYPES, CreateInstanceRequest};

pub(crate) const IDENTITY_MANAGEMENT_TYPES: [&str; 3] =
    ["SAML", "CONNECT_MANAGED", "EXISTING_DIRECTORY"];
pub(crate) const MAX_TAGS: usize = 50;
pub(crate) const MAX_CLIENT_TOKEN_LEN: usize = 500;

/// A CreateInstance request that passed validation.
pub(crate) struct ValidCreate {
    pub(crate) client_token: Option<String>,
    pub(crate) alias: String,
    pub(crate) identity_management_type: String,
    pub(crate) inbound: bool,
    pub(crate) outbound: bool,
    pub(crate) tags: BTreeMap<String, String>,
}

pub(crate) fn validate_create(request: CreateInstanceRequest) -> Result<ValidCreate, ApiError> {
    if let Some(token) = &request.client_token {
        validate_client_token(token)?;
    }
    let identity_management_type = request
        .identity_management_type
        .ok_or_else(|| ApiError::invalid_request("IdentityManagementType is required."))?;
    if !IDENTITY_MANAGEMENT_TYPES.contains(&identity_management_type.as_str()) {
        return Err(ApiError::invalid_request(format!(
            "IdentityManagementType '{identity_management_type}' is not valid; expected one of SAML, CONNECT_MANAGED, EXISTING_DIRECTORY."
        )));
    }
    let inbound = request
        .inbound_calls_enabled
        .ok_or_else(|| ApiError::invalid_request("InboundCallsEnabled is required."))?;
    let outbound = request
        .outbound_calls_enabled
        .ok_or_else(|| ApiError::invalid_request("OutboundCallsEnabled is required."))?;
    let existing_directory = identity_management_type == "EXISTING_DIRECTORY";
    match (&request.directory_id, existing_directory) {
        (None, true) => {
            return Err(ApiError::invalid_request(
                "DirectoryId is required when IdentityManagementType is EXISTING_DIRECTORY.",
            ));
        }
        (Some(_), false) => {
            return Err(ApiError::invalid_request(
                "DirectoryId can only be specified when IdentityManagementType is EXISTING_DIRECTORY.",
            ));
        }
        (Some(directory_id), true) => validate_directory_id(directory_id)?,
        (None, false) => {}
    }
    let alias = match (request.instance_alias, &request.directory_id) {
        (Some(alias), _) => alias,
        // An existing directory brings its own alias.
        (None, Some(directory_id)) => format!("dir{}", directory_id.trim_start_matches("d-")),
        (None, None) => {
            return Err(ApiError::invalid_request(
                "InstanceAlias is required unless IdentityManagementType is EXISTING_DIRECTORY.",
            ));
        }
    };
    validate_alias(&alias).map_err(ApiError::invalid_request)?;
    let tags = match request.tags {
        None => BTreeMap::new(),
        Some(tags) if tags.is_empty() => {
            return Err(ApiError::invalid_request(
                "Tags must contain at least one tag when specified.",
            ));
        }
        Some(tags) => {
            validate_tags(&tags, tags.len()).map_err(ApiError::invalid_request)?;
            tags
        }
    };
    Ok(ValidCreate {
        client_token: request.client_token,
        alias,
        identity_management_type,
        inbound,
        outbound,
        tags,
    })
}

pub(crate) fn validate_client_token(token: &str) -> Result<(), ApiError> {
    if token.len() > MAX_CLIENT_TOKEN_LEN {
        return Err(ApiError::invalid_request(format!(
            "ClientToken must be at most {MAX_CLIENT_TOKEN_LEN} characters."
        )));
    }
    Ok(())
}

/// `^(?!d-)([\da-zA-Z]+)([-]*[\da-zA-Z])*$`, 1–45 characters.
pub(crate) fn validate_alias(alias: &str) -> Result<(), String> {
    let chars_ok = alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let ends_ok = alias.starts_with(|c: char| c.is_ascii_alphanumeric())
        && alias.ends_with(|c: char| c.is_ascii_alphanumeric());
    if alias.is_empty() || alias.len() > 45 || !chars_ok || !ends_ok || alias.starts_with("d-") {
        return Err(format!(
            "InstanceAlias '{alias}' is not valid: use 1-45 letters, digits and inner hyphens, not starting with 'd-'."
        ));
    }
    Ok(())
}

/// `^d-[0-9a-f]{10}$`.
pub(crate) fn validate_directory_id(directory_id: &str) -> Result<(), ApiError> {
    let valid = directory_id.len() == 12
        && directory_id.starts_with("d-")
        && directory_id[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_request(format!(
            "DirectoryId '{directory_id}' is not valid; expected d- followed by 10 hexadecimal digits."
        )))
    }
}

/// Tag map rules: at most 50 tags on the resource afterwards (`total_after`), keys 1–128
/// characters not starting with `aws:`, values at most 256 characters.
pub(crate) fn validate_tags(
    tags: &BTreeMap<String, String>,
    total_after: usize,
) -> Result<(), String> {
    if total_after > MAX_TAGS {
        return Err(format!("A resource can have at most {MAX_TAGS} tags."));
    }
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(format!("Tag key '{key}' must be 1-128 characters."));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(format!(
                "Tag key '{key}' must not start with 'aws:', which is reserved."
            ));
        }
        if value.chars().count() > 256 {
            return Err(format!(
                "The value of tag '{key}' must be at most 256 characters."
            ));
        }
    }
    Ok(())
}

/// A known attribute type, or one of the configured `extraAttributeTypes`.
pub(crate) fn validate_attribute_type(
    attribute_type: &str,
    extra: &[String],
) -> Result<(), ApiError> {
    if ATTRIBUTE_TYPES.contains(&attribute_type) || extra.iter().any(|t| t == attribute_type) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "AttributeType '{attribute_type}' is not a valid instance attribute type."
        )))
    }
}

pub(crate) fn normalise_attribute_value(value: Option<&str>) -> Result<String, ApiError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        Some("true") => Ok("true".to_owned()),
        Some("false") => Ok("false".to_owned()),
        Some(other) => Err(ApiError::invalid_parameter(format!(
            "Value '{other}' is not valid for this attribute; expected true or false."
        ))),
        None => Err(ApiError::invalid_parameter("Value is required.")),
    }
}

/// A 12-digit AWS account id.
pub(crate) fn is_account_id(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// A region name as it appears in ARNs and credential scopes (`us-east-1`).
pub(crate) fn is_region(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A request member that must be present and 1 to `max` characters long, with the messages
/// of AWS's validation errors.
pub(crate) fn required<'a>(
    field: &str,
    value: Option<&'a str>,
    max: usize,
) -> Result<&'a str, ApiError> {
    let Some(value) = value else {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        )));
    };
    check_length(field, value, max)?;
    Ok(value)
}

/// A request member of 1 to `max` characters.
pub(crate) fn check_length(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: \
             Member must have length between 1 and {max}"
        )));
    }
    Ok(())
}

/// The six parts of `arn:<partition>:<service>:<region>:<account>:<resource>`; the resource
/// keeps any further colons.
fn arn_parts(arn: &str) -> Option<[&str; 6]> {
    arn.splitn(6, ':').collect::<Vec<_>>().try_into().ok()
}

/// An ARN of `service` with a resource, as the stream and Firehose ARNs of storage
/// configurations are checked (partition, region and account are not looked at).
pub(crate) fn check_service_arn(field: &str, arn: &str, service: &str) -> Result<(), ApiError> {
    let valid = arn_parts(arn).is_some_and(|[prefix, _, arn_service, _, _, resource]| {
        prefix == "arn" && arn_service == service && !resource.is_empty()
    });
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "The {field} '{arn}' is not a valid {service} ARN."
        )))
    }
}

/// `arn:aws<partition suffix>:<service>:<region>:<12 digits>:<resource prefix><rest>`, as
/// Lambda function and Lex V2 bot alias ARNs are checked.
pub(crate) fn check_resource_arn(
    field: &str,
    arn: &str,
    service: &str,
    resource_prefix: &str,
) -> Result<(), ApiError> {
    let valid = arn_parts(arn).is_some_and(
        |[prefix, partition, arn_service, region, account, resource]| {
            prefix == "arn"
                && partition.starts_with("aws")
                && arn_service == service
                && !region.is_empty()
                && is_account_id(account)
                && resource.len() > resource_prefix.len()
                && resource.starts_with(resource_prefix)
        },
    );
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "The {field} '{arn}' is not a valid {service} {} ARN.",
            resource_prefix.trim_end_matches([':', '/'])
        )))
    }
}

pub(crate) fn parse_max_results(raw: Option<&str>, max: usize) -> Result<usize, String> {
    match raw {
        None => Ok(max),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "maxResults must be an integer between 1 and {max}."
            )),
        },
    }
}

/// Pagination tokens are opaque to clients; they carry a position and what they page.
pub(crate) fn encode_token(position: u64, kind: &str) -> String {
    format!("sim-{kind}-{position:016x}")
}

pub(crate) fn decode_token(token: &str, kind: &str) -> Option<u64> {
    let hex = token
        .strip_prefix("sim-")?
        .strip_prefix(kind)?
        .strip_prefix('-')?;
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_validation_matches_the_aws_pattern() {
        for ok in ["a", "abc-def", "a--b", "A1", "x".repeat(45).as_str()] {
            assert!(validate_alias(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "d-abc",
            "a_b",
            "a b",
            "x".repeat(46).as_str(),
        ] {
            assert!(validate_alias(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pagination_tokens_round_trip_and_reject_foreign_tokens() {
        assert_eq!(
            decode_token(&encode_token(42, "instances"), "instances"),
            Some(42)
        );
        assert_eq!(
            decode_token(&encode_token(42, "instances"), "attributes"),
            None
        );
        assert_eq!(decode_token("garbage", "instances"), None);
    }
}
