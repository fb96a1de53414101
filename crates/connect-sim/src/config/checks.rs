//! Checks of the settings that can be invalid, shared by
//! [`SimConfig::validate`](super::SimConfig::validate) at start-up and
//! [`SimConfig::apply`](super::SimConfig::apply) at `PUT /_sim/config`: account ids, regions,
//! role ARNs and their ExternalIds, extra attribute types and fault ratios. Each error names
//! the offending key.

use crate::validate::{is_account_id, is_region};

pub(super) fn check_account_id(field: &str, value: &str) -> Result<(), String> {
    if is_account_id(value) {
        Ok(())
    } else {
        Err(format!("{field}: '{value}' is not a 12-digit account id"))
    }
}

pub(super) fn check_region(field: &str, value: &str) -> Result<(), String> {
    if is_region(value) {
        Ok(())
    } else {
        Err(format!("{field}: '{value}' is not a region name"))
    }
}

pub(super) fn check_role_arn(field: &str, arn: &str) -> Result<(), String> {
    match crate::sts::RoleArn::parse(arn) {
        Some(_) => Ok(()),
        None => Err(format!(
            "{field}: '{arn}' is not a role ARN (arn:aws:iam::<12 digits>:role/<name>)"
        )),
    }
}

pub(super) fn check_external_id(arn: &str, external_id: &str) -> Result<(), String> {
    match crate::sts::external_id_violation(external_id) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "roleExternalIds: the ExternalId for {arn} is not valid: {problem}"
        )),
    }
}

/// Extra attribute types must look like AWS's enum values (`UPPER_CASE`), be new to the
/// simulator's list and appear once.
pub(super) fn check_extra_attribute_types(types: &[String]) -> Result<(), String> {
    for (n, name) in types.iter().enumerate() {
        let well_formed = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(format!(
                "extraAttributeTypes: '{name}' is not an attribute type name (A-Z, 0-9, _; starting with a letter; at most 64)"
            ));
        }
        if crate::model::ATTRIBUTE_TYPES.contains(&name.as_str()) {
            return Err(format!(
                "extraAttributeTypes: '{name}' is one of the attribute types the simulator always serves"
            ));
        }
        if types[..n].contains(name) {
            return Err(format!("extraAttributeTypes: '{name}' is listed twice"));
        }
    }
    Ok(())
}

pub(super) fn check_ratio(field: &str, ratio: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(format!("{field} must be between 0 and 1"))
    }
}
