//! What an instance is associated with besides storage: approved origins, Lambda functions,
//! Lex V2 bots and security keys (Associate / List / Disassociate of each).
//!
//! Per-instance limits as AWS documents them answer ServiceQuotaExceededException: 50
//! Lambda functions, 100 Lex V2 bots, 2 security keys. Associating what is already
//! associated answers ResourceConflictException. A security key is stored as AWS echoes it:
//! its base64 body re-wrapped at 64 characters with `\n` line breaks.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::storage::{page_of, with_next_token};
use super::{Model, Reply, Settings, epoch_seconds};
use crate::errors::ApiError;

/// Per-instance limits.
pub(crate) const MAX_LAMBDA_FUNCTIONS: usize = 50;
pub(crate) const MAX_LEX_V2_BOTS: usize = 100;
pub(crate) const MAX_SECURITY_KEYS: usize = 2;
/// Page sizes (and `maxResults` maxima).
pub(crate) const LIST_ORIGINS_MAX_RESULTS: usize = 25;
pub(crate) const LIST_LAMBDA_FUNCTIONS_MAX_RESULTS: usize = 25;
pub(crate) const LIST_BOTS_MAX_RESULTS: usize = 25;
pub(crate) const LIST_SECURITY_KEYS_MAX_RESULTS: usize = 2;

/// A security key of an instance.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SecurityKey {
    pub(crate) association_id: String,
    pub(crate) key: String,
    pub(crate) creation_time: f64,
}

/// The associations of one instance.
#[derive(Clone, Debug, Default)]
pub(crate) struct Associations {
    pub(crate) origins: Vec<String>,
    pub(crate) lambda_functions: Vec<String>,
    /// Lex V2 bot alias ARNs.
    pub(crate) lex_v2_bots: Vec<String>,
    pub(crate) security_keys: Vec<SecurityKey>,
}

/// `LexV2Bot` in AssociateBot and DisassociateBot.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LexV2Bot {
    pub(crate) alias_arn: Option<String>,
}

/// Body of AssociateBot and DisassociateBot.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct BotRequest {
    pub(crate) lex_bot: Option<serde_json::Value>,
    pub(crate) lex_v2_bot: Option<LexV2Bot>,
    pub(crate) client_token: Option<String>,
}

/// Body of the other Associate calls: whichever member the operation has.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AssociateRequest {
    pub(crate) origin: Option<String>,
    pub(crate) function_arn: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) client_token: Option<String>,
}

fn required<'a>(field: &str, value: Option<&'a str>, max: usize) -> Result<&'a str, ApiError> {
    match value {
        None => Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))),
        Some(v) if v.is_empty() || v.chars().count() > max => {
            Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value at '{field}' failed to satisfy constraint: \
                 Member must have length between 1 and {max}"
            )))
        }
        Some(v) => Ok(v),
    }
}

/// `https://host[:port]` or `http://host[:port]`, nothing after the authority.
fn check_origin(origin: &str) -> Result<(), ApiError> {
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let valid = authority.is_some_and(|a| {
        let (host, port) = a.rsplit_once(':').map_or((a, None), |(h, p)| (h, Some(p)));
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '*'))
            && port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok())
    });
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "The origin '{origin}' is not valid: expected http(s)://host[:port]."
        )))
    }
}

/// `arn:<partition>:<service>:<region>:<12 digits>:<resource prefix><rest>`.
fn check_arn(field: &str, arn: &str, service: &str, resource_prefix: &str) -> Result<(), ApiError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == service
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].len() > resource_prefix.len()
        && parts[5].starts_with(resource_prefix);
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "The {field} '{arn}' is not a valid {service} {} ARN.",
            resource_prefix.trim_end_matches([':', '/'])
        )))
    }
}

/// A PEM public key as AWS keeps it, or an error naming what is wrong.
fn normalised_key(pem: &str) -> Result<String, ApiError> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let body = pem
        .trim()
        .strip_prefix(BEGIN)
        .and_then(|rest| rest.strip_suffix(END))
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "The key is not a PEM public key (-----BEGIN PUBLIC KEY----- ... -----END PUBLIC KEY-----).",
            )
        })?;
    let base64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    if base64.is_empty()
        || !base64
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    {
        return Err(ApiError::invalid_parameter("The key's body is not base64."));
    }
    let lines: Vec<&str> = base64
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
        .collect();
    Ok(format!("{BEGIN}\n{}\n{END}", lines.join("\n")))
}

impl Model {
    /// AssociateApprovedOrigin.
    pub(crate) fn associate_approved_origin(
        &mut self,
        id: &str,
        request: AssociateRequest,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let origin = required("origin", request.origin.as_deref(), 267)?.to_owned();
        check_origin(&origin)?;
        let token = request.client_token.as_deref();
        if let Some(reply) = self.replayed(token, "AssociateApprovedOrigin", id, &origin)? {
            return Ok(reply);
        }
        let instance = self.configurable_mut(id)?;
        if instance.associations.origins.contains(&origin) {
            return Err(ApiError::resource_conflict(format!(
                "The origin {origin} is already approved for instance {id}."
            )));
        }
        instance.associations.origins.push(origin.clone());
        self.remember(token, "AssociateApprovedOrigin", id, origin, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// ListApprovedOrigins.
    pub(crate) fn list_approved_origins(
        &self,
        id: &str,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let origins = &self.configurable(id)?.associations.origins;
        let (page, next) = page_of(
            origins,
            max_results,
            next_token,
            LIST_ORIGINS_MAX_RESULTS,
            "origins",
        )?;
        let mut body = json!({ "Origins": page });
        with_next_token(&mut body, next, "origins");
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    /// DisassociateApprovedOrigin.
    pub(crate) fn disassociate_approved_origin(
        &mut self,
        id: &str,
        origin: Option<&str>,
        client_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let origin = required("origin", origin, 267)?.to_owned();
        if let Some(reply) =
            self.replayed(client_token, "DisassociateApprovedOrigin", id, &origin)?
        {
            return Ok(reply);
        }
        let instance = self.configurable_mut(id)?;
        let Some(index) = instance
            .associations
            .origins
            .iter()
            .position(|o| *o == origin)
        else {
            return Err(ApiError::resource_not_found(format!(
                "The origin {origin} is not approved for instance {id}."
            )));
        };
        instance.associations.origins.remove(index);
        self.remember(client_token, "DisassociateApprovedOrigin", id, origin, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// AssociateLambdaFunction.
    pub(crate) fn associate_lambda_function(
        &mut self,
        settings: &Settings<'_>,
        id: &str,
        request: AssociateRequest,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let arn = required("functionArn", request.function_arn.as_deref(), 140)?.to_owned();
        check_arn("FunctionArn", &arn, "lambda", "function:")?;
        let token = request.client_token.as_deref();
        if let Some(reply) = self.replayed(token, "AssociateLambdaFunction", id, &arn)? {
            return Ok(reply);
        }
        settings.check_referenced(&[arn.as_str()])?;
        let functions = &mut self.configurable_mut(id)?.associations.lambda_functions;
        if functions.contains(&arn) {
            return Err(ApiError::resource_conflict(format!(
                "The function {arn} is already associated with instance {id}."
            )));
        }
        if functions.len() >= MAX_LAMBDA_FUNCTIONS {
            return Err(ApiError::service_quota_exceeded(format!(
                "The instance {id} already has the maximum of {MAX_LAMBDA_FUNCTIONS} Lambda functions."
            )));
        }
        functions.push(arn.clone());
        self.remember(token, "AssociateLambdaFunction", id, arn, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// ListLambdaFunctions.
    pub(crate) fn list_lambda_functions(
        &self,
        id: &str,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let functions = &self.configurable(id)?.associations.lambda_functions;
        let (page, next) = page_of(
            functions,
            max_results,
            next_token,
            LIST_LAMBDA_FUNCTIONS_MAX_RESULTS,
            "functions",
        )?;
        let mut body = json!({ "LambdaFunctions": page });
        with_next_token(&mut body, next, "functions");
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    /// DisassociateLambdaFunction.
    pub(crate) fn disassociate_lambda_function(
        &mut self,
        id: &str,
        function_arn: Option<&str>,
        client_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let arn = required("functionArn", function_arn, 140)?.to_owned();
        if let Some(reply) = self.replayed(client_token, "DisassociateLambdaFunction", id, &arn)? {
            return Ok(reply);
        }
        let functions = &mut self.configurable_mut(id)?.associations.lambda_functions;
        let Some(index) = functions.iter().position(|f| *f == arn) else {
            return Err(ApiError::resource_not_found(format!(
                "The function {arn} is not associated with instance {id}."
            )));
        };
        functions.remove(index);
        self.remember(client_token, "DisassociateLambdaFunction", id, arn, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// The Lex V2 alias ARN of an AssociateBot / DisassociateBot request; Lex V1 bots are
    /// refused (Lex V1 reached its end of support).
    fn lex_v2_alias(request: &BotRequest) -> Result<String, ApiError> {
        if request.lex_bot.is_some() {
            return Err(ApiError::invalid_request(
                "Amazon Lex V1 bots can no longer be associated: Amazon Lex V1 reached its end of support. Use LexV2Bot.",
            ));
        }
        let arn = required(
            "lexV2Bot.aliasArn",
            request
                .lex_v2_bot
                .as_ref()
                .and_then(|b| b.alias_arn.as_deref()),
            100,
        )?;
        check_arn("AliasArn", arn, "lex", "bot-alias/")?;
        Ok(arn.to_owned())
    }

    /// AssociateBot (Lex V2).
    pub(crate) fn associate_bot(
        &mut self,
        settings: &Settings<'_>,
        id: &str,
        request: BotRequest,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let arn = Self::lex_v2_alias(&request)?;
        let token = request.client_token.as_deref();
        if let Some(reply) = self.replayed(token, "AssociateBot", id, &arn)? {
            return Ok(reply);
        }
        settings.check_referenced(&[arn.as_str()])?;
        let bots = &mut self.configurable_mut(id)?.associations.lex_v2_bots;
        if bots.contains(&arn) {
            return Err(ApiError::resource_conflict(format!(
                "The bot alias {arn} is already associated with instance {id}."
            )));
        }
        if bots.len() >= MAX_LEX_V2_BOTS {
            return Err(ApiError::service_quota_exceeded(format!(
                "The instance {id} already has the maximum of {MAX_LEX_V2_BOTS} Amazon Lex V2 bots."
            )));
        }
        bots.push(arn.clone());
        self.remember(token, "AssociateBot", id, arn, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// ListBots: Lex V2 bots for `lexVersion=V2`; none for `V1`.
    pub(crate) fn list_bots(
        &self,
        id: &str,
        lex_version: Option<&str>,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let instance = self.configurable(id)?;
        let bots: Vec<serde_json::Value> = match lex_version {
            Some("V2") => instance
                .associations
                .lex_v2_bots
                .iter()
                .map(|arn| json!({ "LexV2Bot": { "AliasArn": arn } }))
                .collect(),
            Some("V1") => Vec::new(),
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "1 validation error detected: Value '{}' at 'lexVersion' failed to satisfy constraint: \
                     Member must satisfy enum value set: [V1, V2]",
                    other.unwrap_or("null")
                )));
            }
        };
        let (page, next) = page_of(
            &bots,
            max_results,
            next_token,
            LIST_BOTS_MAX_RESULTS,
            "bots",
        )?;
        let mut body = json!({ "LexBots": page });
        with_next_token(&mut body, next, "bots");
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    /// DisassociateBot (Lex V2).
    pub(crate) fn disassociate_bot(
        &mut self,
        id: &str,
        request: BotRequest,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let arn = Self::lex_v2_alias(&request)?;
        let token = request.client_token.as_deref();
        if let Some(reply) = self.replayed(token, "DisassociateBot", id, &arn)? {
            return Ok(reply);
        }
        let bots = &mut self.configurable_mut(id)?.associations.lex_v2_bots;
        let Some(index) = bots.iter().position(|b| *b == arn) else {
            return Err(ApiError::resource_not_found(format!(
                "The bot alias {arn} is not associated with instance {id}."
            )));
        };
        bots.remove(index);
        self.remember(token, "DisassociateBot", id, arn, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// AssociateSecurityKey.
    pub(crate) fn associate_security_key(
        &mut self,
        id: &str,
        request: AssociateRequest,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let key = normalised_key(required("key", request.key.as_deref(), 1024)?)?;
        let token = request.client_token.as_deref();
        if let Some(reply) = self.replayed(token, "AssociateSecurityKey", id, &key)? {
            return Ok(reply);
        }
        let keys = &self.configurable(id)?.associations.security_keys;
        if keys.iter().any(|k| k.key == key) {
            return Err(ApiError::resource_conflict(format!(
                "The key is already associated with instance {id}."
            )));
        }
        if keys.len() >= MAX_SECURITY_KEYS {
            return Err(ApiError::service_quota_exceeded(format!(
                "The instance {id} already has the maximum of {MAX_SECURITY_KEYS} security keys."
            )));
        }
        let association_id = self.association_id();
        self.configurable_mut(id)?
            .associations
            .security_keys
            .push(SecurityKey {
                association_id: association_id.clone(),
                key: key.clone(),
                creation_time: epoch_seconds(std::time::SystemTime::now()),
            });
        let body = json!({ "AssociationId": association_id });
        self.remember(token, "AssociateSecurityKey", id, key, Some(body.clone()));
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    /// ListSecurityKeys.
    pub(crate) fn list_security_keys(
        &self,
        id: &str,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let keys = &self.configurable(id)?.associations.security_keys;
        let (page, next) = page_of(
            keys,
            max_results,
            next_token,
            LIST_SECURITY_KEYS_MAX_RESULTS,
            "keys",
        )?;
        let mut body = json!({ "SecurityKeys": page });
        with_next_token(&mut body, next, "keys");
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }

    /// DisassociateSecurityKey.
    pub(crate) fn disassociate_security_key(
        &mut self,
        id: &str,
        association_id: &str,
        client_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        if let Some(reply) =
            self.replayed(client_token, "DisassociateSecurityKey", id, association_id)?
        {
            return Ok(reply);
        }
        let keys = &mut self.configurable_mut(id)?.associations.security_keys;
        let Some(index) = keys.iter().position(|k| k.association_id == association_id) else {
            return Err(ApiError::resource_not_found(format!(
                "Association {association_id} was not found for instance {id}."
            )));
        };
        keys.remove(index);
        self.remember(
            client_token,
            "DisassociateSecurityKey",
            id,
            association_id.to_owned(),
            None,
        );
        Ok(Reply::new(None, Some(id.to_owned())))
    }
}
