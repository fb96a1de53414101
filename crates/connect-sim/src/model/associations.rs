//! What an instance is associated with besides storage: approved origins, Lambda functions,
//! Lex V2 bots and security keys (Associate / List / Disassociate of each).
//!
//! Origins, Lambda functions and Lex V2 bots are sets of names (an origin, a function ARN, a
//! bot alias ARN) that behave alike; one [`NameSet`] each says how it differs from the
//! others: its operations, how its messages name a member, its limit, whether its members
//! must exist, and its List answer. Each operation validates its own request first.
//!
//! Per-instance limits as AWS documents them answer ServiceQuotaExceededException: 50
//! Lambda functions, 100 Lex V2 bots, 2 security keys. Associating what is already
//! associated answers ResourceConflictException. A security key is stored as AWS echoes it:
//! its base64 body re-wrapped at 64 characters with `\n` line breaks.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Model, Reply, Settings, epoch_seconds, list_page};
use crate::errors::ApiError;
use crate::validate::{check_resource_arn, required};

#[cfg(test)]
mod tests;

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

/// A set of names an instance is associated with, each name at most once, in association
/// order: what tells one such set from another.
struct NameSet {
    /// The operations, as ClientToken records name them.
    associate: &'static str,
    disassociate: &'static str,
    /// What messages call a member, and how it relates to the instance ("approved for").
    noun: &'static str,
    relation: &'static str,
    /// The most names an instance may have, and what the message calls them.
    limit: Option<(usize, &'static str)>,
    /// Whether a name is a resource that must exist (see `missingResourcePattern`).
    must_exist: bool,
    /// The List answer: its member, the shape of one name in it, its page size and the kind
    /// of its tokens.
    list_member: &'static str,
    listed: fn(&str) -> Value,
    page_size: usize,
    token_kind: &'static str,
    /// Where an instance keeps the set.
    names: fn(&Associations) -> &[String],
    names_mut: fn(&mut Associations) -> &mut Vec<String>,
}

/// Approved origins: no limit, listed as strings.
const APPROVED_ORIGINS: NameSet = NameSet {
    associate: "AssociateApprovedOrigin",
    disassociate: "DisassociateApprovedOrigin",
    noun: "origin",
    relation: "approved for",
    limit: None,
    must_exist: false,
    list_member: "Origins",
    listed: |origin| json!(origin),
    page_size: LIST_ORIGINS_MAX_RESULTS,
    token_kind: "origins",
    names: |associations| &associations.origins,
    names_mut: |associations| &mut associations.origins,
};

/// Lambda function ARNs, listed as strings.
const LAMBDA_FUNCTIONS: NameSet = NameSet {
    associate: "AssociateLambdaFunction",
    disassociate: "DisassociateLambdaFunction",
    noun: "function",
    relation: "associated with",
    limit: Some((MAX_LAMBDA_FUNCTIONS, "Lambda functions")),
    must_exist: true,
    list_member: "LambdaFunctions",
    listed: |arn| json!(arn),
    page_size: LIST_LAMBDA_FUNCTIONS_MAX_RESULTS,
    token_kind: "functions",
    names: |associations| &associations.lambda_functions,
    names_mut: |associations| &mut associations.lambda_functions,
};

/// Lex V2 bot alias ARNs, listed as `LexBotConfig`s.
const LEX_V2_BOTS: NameSet = NameSet {
    associate: "AssociateBot",
    disassociate: "DisassociateBot",
    noun: "bot alias",
    relation: "associated with",
    limit: Some((MAX_LEX_V2_BOTS, "Amazon Lex V2 bots")),
    must_exist: true,
    list_member: "LexBots",
    listed: |arn| json!({ "LexV2Bot": { "AliasArn": arn } }),
    page_size: LIST_BOTS_MAX_RESULTS,
    token_kind: "bots",
    names: |associations| &associations.lex_v2_bots,
    names_mut: |associations| &mut associations.lex_v2_bots,
};

impl NameSet {
    /// The List answer of `names`.
    fn list(
        &self,
        id: &str,
        names: &[String],
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let listed: Vec<Value> = names.iter().map(|name| (self.listed)(name)).collect();
        let body = list_page(
            self.list_member,
            &listed,
            max_results,
            next_token,
            self.page_size,
            self.token_kind,
        )?;
        Ok(Reply::new(Some(body), Some(id.to_owned())))
    }
}

/// ServiceQuotaExceededException for an instance that has `max` of something already.
fn limit_reached(id: &str, max: usize, what: &str) -> ApiError {
    ApiError::service_quota_exceeded(format!(
        "The instance {id} already has the maximum of {max} {what}."
    ))
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
    /// Associates a validated `name` with instance `id`: a replay answers as the first call
    /// did; a name already in the set is a conflict.
    fn associate_name(
        &mut self,
        set: &NameSet,
        settings: &Settings<'_>,
        id: &str,
        name: String,
        token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        if let Some(reply) = self.replayed(token, set.associate, id, &name)? {
            return Ok(reply);
        }
        if set.must_exist {
            settings.check_referenced(&[name.as_str()])?;
        }
        let names = (set.names_mut)(&mut self.configurable_mut(id)?.associations);
        if names.contains(&name) {
            return Err(ApiError::resource_conflict(format!(
                "The {} {name} is already {} instance {id}.",
                set.noun, set.relation
            )));
        }
        if let Some((max, what)) = set.limit
            && names.len() >= max
        {
            return Err(limit_reached(id, max, what));
        }
        names.push(name.clone());
        self.remember(token, set.associate, id, name, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// Removes `name` from the set of instance `id`; a name not in it is not found.
    fn disassociate_name(
        &mut self,
        set: &NameSet,
        id: &str,
        name: String,
        token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        if let Some(reply) = self.replayed(token, set.disassociate, id, &name)? {
            return Ok(reply);
        }
        let names = (set.names_mut)(&mut self.configurable_mut(id)?.associations);
        let Some(index) = names.iter().position(|n| *n == name) else {
            return Err(ApiError::resource_not_found(format!(
                "The {} {name} is not {} instance {id}.",
                set.noun, set.relation
            )));
        };
        names.remove(index);
        self.remember(token, set.disassociate, id, name, None);
        Ok(Reply::new(None, Some(id.to_owned())))
    }

    /// One page of the set of instance `id`.
    fn list_names(
        &self,
        set: &NameSet,
        id: &str,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        let names = (set.names)(&self.configurable(id)?.associations);
        set.list(id, names, max_results, next_token)
    }

    /// AssociateApprovedOrigin.
    pub(crate) fn associate_approved_origin(
        &mut self,
        settings: &Settings<'_>,
        id: &str,
        request: AssociateRequest,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let origin = required("origin", request.origin.as_deref(), 267)?.to_owned();
        check_origin(&origin)?;
        let token = request.client_token.as_deref();
        self.associate_name(&APPROVED_ORIGINS, settings, id, origin, token)
    }

    /// ListApprovedOrigins.
    pub(crate) fn list_approved_origins(
        &self,
        id: &str,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        self.list_names(&APPROVED_ORIGINS, id, max_results, next_token)
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
        self.disassociate_name(&APPROVED_ORIGINS, id, origin, client_token)
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
        check_resource_arn("FunctionArn", &arn, "lambda", "function:")?;
        let token = request.client_token.as_deref();
        self.associate_name(&LAMBDA_FUNCTIONS, settings, id, arn, token)
    }

    /// ListLambdaFunctions.
    pub(crate) fn list_lambda_functions(
        &self,
        id: &str,
        max_results: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        self.list_names(&LAMBDA_FUNCTIONS, id, max_results, next_token)
    }

    /// DisassociateLambdaFunction: the ARN's format is not checked, an ARN that is not one
    /// is not associated.
    pub(crate) fn disassociate_lambda_function(
        &mut self,
        id: &str,
        function_arn: Option<&str>,
        client_token: Option<&str>,
    ) -> Result<Reply, ApiError> {
        self.configurable(id)?;
        let arn = required("functionArn", function_arn, 140)?.to_owned();
        self.disassociate_name(&LAMBDA_FUNCTIONS, id, arn, client_token)
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
        check_resource_arn("AliasArn", arn, "lex", "bot-alias/")?;
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
        self.associate_name(&LEX_V2_BOTS, settings, id, arn, token)
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
        let bots: &[String] = match lex_version {
            Some("V2") => (LEX_V2_BOTS.names)(&instance.associations),
            Some("V1") => &[],
            other => {
                return Err(ApiError::invalid_parameter(format!(
                    "1 validation error detected: Value '{}' at 'lexVersion' failed to satisfy constraint: \
                     Member must satisfy enum value set: [V1, V2]",
                    other.unwrap_or("null")
                )));
            }
        };
        LEX_V2_BOTS.list(id, bots, max_results, next_token)
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
        self.disassociate_name(&LEX_V2_BOTS, id, arn, token)
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
            return Err(limit_reached(id, MAX_SECURITY_KEYS, "security keys"));
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
        let body = list_page(
            "SecurityKeys",
            keys,
            max_results,
            next_token,
            LIST_SECURITY_KEYS_MAX_RESULTS,
            "keys",
        )?;
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
