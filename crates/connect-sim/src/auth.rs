//! Who is calling: the access key and region of a request's SigV4 credential scope, and the
//! account the access key belongs to.
//!
//! Signatures are not verified. The credential scope
//! (`Credential=<AccessKeyId>/<date>/<region>/<service>/aws4_request`, in the
//! `Authorization` header or, presigned, in `X-Amz-Credential`) names the access key and the
//! region. The access key names the account: keys of the form the simulator's AssumeRole
//! issues, `ASIASIM` + the role's 12-digit account id + random characters, belong to that
//! account (self-describing, so they need no table and stay unambiguous); every other key
//! (`test`, `AKIA…`) belongs to the default account.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::config::SimConfig;
use super::errors::{ApiError, ErrorKind, Protocol};
use super::validate::is_account_id;

/// The prefix of every access key the simulator's AssumeRole issues.
pub const ISSUED_KEY_PREFIX: &str = "ASIASIM";

/// Random characters after the account id in an issued key (AWS's key alphabet).
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const ISSUED_KEY_RANDOM_LEN: usize = 9;

/// The account an access key issued by the simulator's AssumeRole belongs to; `None` for
/// every other key (those belong to the default account).
pub fn issued_key_account(access_key_id: &str) -> Option<&str> {
    let rest = access_key_id.strip_prefix(ISSUED_KEY_PREFIX)?;
    let account = rest.get(..12)?;
    (is_account_id(account) && rest.len() > 12).then_some(account)
}

/// A new access key of `account_id`, as AssumeRole issues it.
pub(crate) fn issue_key(account_id: &str, rng: &mut fastrand::Rng) -> String {
    let random: String = (0..ISSUED_KEY_RANDOM_LEN)
        .map(|_| char::from(KEY_ALPHABET[rng.usize(..KEY_ALPHABET.len())]))
        .collect();
    format!("{ISSUED_KEY_PREFIX}{account_id}{random}")
}

/// The credential a request was signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Credential {
    pub(crate) access_key_id: String,
    /// The region of the credential scope (SigV4a scopes name none).
    pub(crate) region: Option<String>,
}

/// A request's authentication as the extractor found it: `Ok(None)` when unsigned,
/// `Err(message)` when an `Authorization` header names no credential.
#[derive(Clone, Debug)]
pub(crate) struct Auth(pub(crate) Result<Option<Credential>, String>);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) {
            let parsed = value
                .to_str()
                .map_err(|_| "The Authorization header is not valid text.".to_owned())
                .and_then(parse_authorization);
            return Ok(Self(parsed.map(Some)));
        }
        let presigned = parts.uri.query().and_then(|query| {
            query.split('&').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                (name == "X-Amz-Credential").then(|| percent_decode(value))
            })
        });
        Ok(Self(Ok(presigned.and_then(|scope| parse_scope(&scope)))))
    }
}

/// `AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders=…,
/// Signature=…` (or SigV4a's `AWS4-ECDSA-P256-SHA256` with a scope without region).
fn parse_authorization(value: &str) -> Result<Credential, String> {
    let scope = value
        .split([',', ' '])
        .find_map(|part| part.trim().strip_prefix("Credential="))
        .filter(|scope| !scope.is_empty())
        .ok_or_else(|| {
            format!(
                "Authorization header requires 'Credential' parameter. Authorization header requires \
                 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
                 Authorization={value}"
            )
        })?;
    parse_scope(scope)
        .ok_or_else(|| format!("Credential should be scoped to a valid region, not '{scope}'."))
}

fn parse_scope(scope: &str) -> Option<Credential> {
    let parts: Vec<&str> = scope.split('/').collect();
    let access_key_id = (*parts.first()?).to_owned();
    if access_key_id.is_empty() {
        return None;
    }
    // KEY/DATE/REGION/SERVICE/aws4_request; SigV4a: KEY/DATE/SERVICE/aws4_request.
    let region = (parts.len() == 5)
        .then(|| parts[2].to_owned())
        .filter(|r| !r.is_empty());
    Some(Credential {
        access_key_id,
        region,
    })
}

fn percent_decode(value: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| Some(hex(*bytes.get(i + 1)?)? * 16 + hex(*bytes.get(i + 2)?)?))
            .flatten();
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The caller of one request, resolved against the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    /// `None` for an unsigned request (served only without `requireAuthentication`).
    pub(crate) access_key_id: Option<String>,
    pub(crate) account_id: String,
    pub(crate) region: String,
    /// The key was issued by AssumeRole (its account is the role's).
    pub(crate) issued: bool,
}

impl Auth {
    /// The caller, or the error AWS answers a request without (usable) authentication.
    pub(crate) fn caller(
        &self,
        config: &SimConfig,
        protocol: Protocol,
    ) -> Result<Caller, ApiError> {
        match &self.0 {
            Err(message) => Err(ApiError::new(
                ErrorKind::IncompleteSignature,
                message.clone(),
            )),
            Ok(None) if config.require_authentication => {
                Err(ApiError::missing_authentication(protocol))
            }
            Ok(None) => Ok(Caller {
                access_key_id: None,
                account_id: config.account_id.clone(),
                region: config.region.clone(),
                issued: false,
            }),
            Ok(Some(credential)) => {
                let issued = issued_key_account(&credential.access_key_id);
                Ok(Caller {
                    access_key_id: Some(credential.access_key_id.clone()),
                    account_id: issued.map_or_else(|| config.account_id.clone(), str::to_owned),
                    region: credential
                        .region
                        .clone()
                        .unwrap_or_else(|| config.region.clone()),
                    issued: issued.is_some(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_credential_scope_names_key_and_region() {
        let header = "AWS4-HMAC-SHA256 Credential=test/20260101/eu-west-2/connect/aws4_request, \
                      SignedHeaders=host;x-amz-date, Signature=abc";
        assert_eq!(
            parse_authorization(header),
            Ok(Credential {
                access_key_id: "test".into(),
                region: Some("eu-west-2".into())
            })
        );
        let sigv4a = "AWS4-ECDSA-P256-SHA256 Credential=AKIAX/20260101/sts/aws4_request, \
                      SignedHeaders=host, Signature=abc";
        assert_eq!(parse_authorization(sigv4a).map(|c| c.region), Ok(None));
        assert!(parse_authorization("Bearer abc").is_err());
    }

    #[test]
    fn issued_keys_name_their_account_and_other_keys_none() {
        let mut rng = fastrand::Rng::with_seed(1);
        let key = issue_key("222222222222", &mut rng);
        assert_eq!(key.len(), 28);
        assert!(key.starts_with("ASIASIM222222222222"));
        assert_eq!(issued_key_account(&key), Some("222222222222"));
        for other in [
            "test",
            "AKIAIOSFODNN7EXAMPLE",
            "ASIASIM12345",
            "ASIASIM222222222222",
        ] {
            assert_eq!(issued_key_account(other), None, "{other}");
        }
    }

    #[test]
    fn unsigned_requests_are_the_default_account_unless_authentication_is_required() {
        let mut config = SimConfig::default();
        let caller = Auth(Ok(None)).caller(&config, Protocol::RestJson).unwrap();
        assert_eq!(
            (caller.account_id.as_str(), caller.region.as_str()),
            ("123456789012", "us-east-1")
        );
        config.require_authentication = true;
        let err = Auth(Ok(None))
            .caller(&config, Protocol::RestJson)
            .unwrap_err();
        assert_eq!(
            err.kind.wire(Protocol::RestJson),
            (403, "MissingAuthenticationTokenException")
        );
        assert_eq!(
            err.kind.wire(Protocol::Query),
            (403, "MissingAuthenticationToken")
        );
    }

    #[test]
    fn presigned_scopes_are_percent_decoded() {
        assert_eq!(
            percent_decode("KEY%2F20260101%2Fap-south-1%2Fsts%2Faws4_request"),
            "KEY/20260101/ap-south-1/sts/aws4_request"
        );
    }
}
