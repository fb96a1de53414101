//! STS on the simulator's port: `AssumeRole` and `GetCallerIdentity` in the query protocol
//! (`POST /` with a form body `Action=…&Version=2011-06-15&…`, XML answers), as
//! `aws-sdk-sts`, `aws-config`'s `AssumeRoleProvider` and boto3 send them.
//!
//! Any role may be assumed unless the configuration refuses it (`refuseAssumeRole`) or
//! requires an ExternalId for it (`roleExternalIds`). The issued access key names the role's
//! account (see `auth.rs`), so calls signed with it act in that account.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::response::Response;

use super::auth::{Auth, Caller, issue_key};
use super::config::Operation;
use super::errors::{ApiError, ErrorKind};
use super::limits::ConnectionHandle;
use super::service::{Answer, Body, Call, Inner, Sim, fnv1a, sts_error_response};
use super::validate::is_account_id;

type SimState = State<Arc<Sim>>;
type Conn = ConnectInfo<ConnectionHandle>;

/// Default and bounds of `DurationSeconds`.
const DEFAULT_DURATION_SECONDS: u64 = 3600;
const MIN_DURATION_SECONDS: i64 = 900;
const MAX_DURATION_SECONDS: i64 = 43_200;
/// Sessions of a role assumed with role credentials last at most an hour.
const CHAINED_MAX_DURATION_SECONDS: i64 = 3600;

/// The IAM user every key the simulator did not issue belongs to (in the default account).
const DEFAULT_USER_NAME: &str = "connect-sim";

/// A parsed role ARN: `arn:<partition>:iam::<account>:role/<path/><name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RoleArn {
    pub(crate) partition: String,
    pub(crate) account_id: String,
    pub(crate) name: String,
}

impl RoleArn {
    pub(crate) fn parse(arn: &str) -> Option<Self> {
        let rest = arn.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        let partition_ok = partition == "aws"
            || partition.strip_prefix("aws-").is_some_and(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
            });
        let rest = rest.strip_prefix("iam::")?;
        let (account_id, resource) = rest.split_once(':')?;
        let path_and_name = resource.strip_prefix("role/")?;
        let segments: Vec<&str> = path_and_name.split('/').collect();
        let name = *segments.last()?;
        let segments_ok = segments.iter().all(|segment| {
            !segment.is_empty() && segment.len() <= 64 && segment.chars().all(is_name_char)
        });
        (partition_ok && is_account_id(account_id) && segments_ok).then(|| Self {
            partition: partition.to_owned(),
            account_id: account_id.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// `[\w+=,.@-]`, the characters of role and session names.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// What is wrong with an ExternalId (2–1224 characters of `[\w+=,.@:/-]`), if anything.
pub(crate) fn external_id_violation(external_id: &str) -> Option<String> {
    let len = external_id.chars().count();
    if len < 2 {
        Some("Member must have length greater than or equal to 2".into())
    } else if len > 1224 {
        Some("Member must have length less than or equal to 1224".into())
    } else if !external_id
        .chars()
        .all(|c| is_name_char(c) || c == ':' || c == '/')
    {
        Some(r"Member must satisfy regular expression pattern: [\w+=,.@:\/-]*".into())
    } else {
        None
    }
}

/// What an issued access key was issued for.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    account_id: String,
    /// The secret and token issued with the key: kept only so that tests can make sure
    /// they never show up anywhere (logs, status).
    pub(crate) secret_access_key: String,
    pub(crate) session_token: String,
    pub(crate) role_arn: String,
    /// `AROA…:<session name>`.
    assumed_role_id: String,
    /// `arn:aws:sts::<account>:assumed-role/<role name>/<session name>`.
    arn: String,
}

/// The identity behind a caller, as GetCallerIdentity and AccessDenied messages name it.
struct Identity {
    arn: String,
    user_id: String,
    account_id: String,
}

fn identity(inner: &Inner, caller: &Caller) -> Identity {
    let account_id = caller.account_id.clone();
    if caller.issued {
        let key = caller.access_key_id.as_deref().unwrap_or_default();
        if let Some(session) = inner.sessions.get(key) {
            return Identity {
                arn: session.arn.clone(),
                user_id: session.assumed_role_id.clone(),
                account_id: session.account_id.clone(),
            };
        }
        // A key of the issued form this run did not issue (e.g. from before a restart): its
        // account is known, its role is not.
        return Identity {
            arn: format!("arn:aws:sts::{account_id}:assumed-role/unknown/{key}"),
            user_id: format!("{}:{key}", derived_id("AROA", "unknown")),
            account_id,
        };
    }
    Identity {
        arn: format!("arn:aws:iam::{account_id}:user/{DEFAULT_USER_NAME}"),
        user_id: derived_id("AIDA", &account_id),
        account_id,
    }
}

/// A stable AWS-style unique id (`AROA…`, `AIDA…`: prefix + 17 characters) for a name.
fn derived_id(prefix: &str, name: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = fastrand::Rng::with_seed(fnv1a(name.as_bytes()));
    let suffix: String = (0..17)
        .map(|_| char::from(ALPHABET[rng.usize(..ALPHABET.len())]))
        .collect();
    format!("{prefix}{suffix}")
}

fn first<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `POST /`: the form body carries `Action` and the parameters.
pub(crate) async fn handle_post(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    body: Bytes,
) -> Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    handle(&sim, &conn, auth, params).await
}

/// `GET /?Action=…`: the query string carries them.
pub(crate) async fn handle_get(
    State(sim): SimState,
    ConnectInfo(conn): Conn,
    auth: Auth,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    handle(&sim, &conn, auth, params).await
}

async fn handle(
    sim: &Sim,
    conn: &ConnectionHandle,
    auth: Auth,
    params: Vec<(String, String)>,
) -> Response {
    let operation = match first(&params, "Action") {
        Some("AssumeRole") => Operation::AssumeRole,
        Some("GetCallerIdentity") => Operation::GetCallerIdentity,
        // Not an operation the simulator serves: answered at once, not recorded.
        other => {
            let error = match other {
                None => ApiError::new(
                    ErrorKind::MissingAction,
                    "The request must contain the parameter Action.",
                ),
                Some(action) => ApiError::new(
                    ErrorKind::InvalidAction,
                    format!(
                        "Could not find operation {action} for version 2011-06-15 (the Connect \
                         simulator serves the STS actions AssumeRole and GetCallerIdentity)."
                    ),
                ),
            };
            let request_id = sim.lock().request_id();
            return sts_error_response(&error, &request_id);
        }
    };
    let role_arn = (operation == Operation::AssumeRole)
        .then(|| first(&params, "RoleArn").map(str::to_owned))
        .flatten();
    let call = Call::new(operation, auth).role(role_arn);
    sim.execute(conn, call, move |inner, caller, _now| match operation {
        Operation::AssumeRole => assume_role(inner, caller, &params),
        _ => Ok(get_caller_identity(inner, caller)),
    })
    .await
}

fn query_answer(action: &'static str, result: String) -> Answer {
    Answer {
        body: Body::Query { action, result },
        instance_id: None,
        replay: false,
    }
}

fn get_caller_identity(inner: &Inner, caller: &Caller) -> Answer {
    let who = identity(inner, caller);
    query_answer(
        "GetCallerIdentity",
        format!(
            "<Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account>",
            xml_escape(&who.arn),
            xml_escape(&who.user_id),
            who.account_id
        ),
    )
}

/// One broken constraint, in AWS's words.
fn violation(value: Option<&str>, field: &str, constraint: &str) -> String {
    match value {
        None => format!("Value null at '{field}' failed to satisfy constraint: {constraint}"),
        Some(value) => {
            format!("Value '{value}' at '{field}' failed to satisfy constraint: {constraint}")
        }
    }
}

fn validation_error(violations: &[String]) -> ApiError {
    let count = violations.len();
    let noun = if count == 1 { "error" } else { "errors" };
    ApiError::new(
        ErrorKind::Validation,
        format!(
            "{count} validation {noun} detected: {}",
            violations.join("; ")
        ),
    )
}

/// The checked parameters of an AssumeRole request.
struct AssumeRoleRequest<'a> {
    role_arn: &'a str,
    session_name: &'a str,
    external_id: Option<&'a str>,
    duration_seconds: Option<i64>,
}

/// The constraints of botocore's model, reported the way AWS reports them.
fn validate_assume_role(params: &[(String, String)]) -> Result<AssumeRoleRequest<'_>, ApiError> {
    let mut violations = Vec::new();
    let role_arn = first(params, "RoleArn");
    match role_arn {
        None => violations.push(violation(None, "roleArn", "Member must not be null")),
        Some(arn) if arn.chars().count() < 20 => violations.push(violation(
            Some(arn),
            "roleArn",
            "Member must have length greater than or equal to 20",
        )),
        Some(arn) if arn.chars().count() > 2048 => violations.push(violation(
            Some(arn),
            "roleArn",
            "Member must have length less than or equal to 2048",
        )),
        Some(_) => {}
    }
    let session_name = first(params, "RoleSessionName");
    match session_name {
        None => violations.push(violation(
            None,
            "roleSessionName",
            "Member must not be null",
        )),
        Some(name) if name.chars().count() < 2 => violations.push(violation(
            Some(name),
            "roleSessionName",
            "Member must have length greater than or equal to 2",
        )),
        Some(name) if name.chars().count() > 64 => violations.push(violation(
            Some(name),
            "roleSessionName",
            "Member must have length less than or equal to 64",
        )),
        Some(name) if !name.chars().all(is_name_char) => violations.push(violation(
            Some(name),
            "roleSessionName",
            r"Member must satisfy regular expression pattern: [\w+=,.@-]*",
        )),
        Some(_) => {}
    }
    let external_id = first(params, "ExternalId");
    if let Some(id) = external_id
        && let Some(problem) = external_id_violation(id)
    {
        violations.push(violation(Some(id), "externalId", &problem));
    }
    let raw_duration = first(params, "DurationSeconds");
    let duration_seconds = match raw_duration.map(str::parse::<i64>) {
        None => None,
        Some(Ok(seconds)) => {
            if seconds < MIN_DURATION_SECONDS {
                violations.push(violation(
                    raw_duration,
                    "durationSeconds",
                    "Member must have value greater than or equal to 900",
                ));
            } else if seconds > MAX_DURATION_SECONDS {
                violations.push(violation(
                    raw_duration,
                    "durationSeconds",
                    "Member must have value less than or equal to 43200",
                ));
            }
            Some(seconds)
        }
        Some(Err(_)) => {
            violations.push(violation(
                raw_duration,
                "durationSeconds",
                "Member must be an integer",
            ));
            None
        }
    };
    if let Some(policy) = first(params, "Policy")
        && policy.chars().count() > 2048
    {
        violations.push(violation(
            Some("[policy]"),
            "policy",
            "Member must have length less than or equal to 2048",
        ));
    }
    match (role_arn, session_name) {
        (Some(role_arn), Some(session_name)) if violations.is_empty() => Ok(AssumeRoleRequest {
            role_arn,
            session_name,
            external_id,
            duration_seconds,
        }),
        _ => Err(validation_error(&violations)),
    }
}

fn assume_role(
    inner: &mut Inner,
    caller: &Caller,
    params: &[(String, String)],
) -> Result<Answer, ApiError> {
    let request = validate_assume_role(params)?;
    let role = RoleArn::parse(request.role_arn).ok_or_else(|| {
        ApiError::new(
            ErrorKind::Validation,
            format!("{} is invalid", request.role_arn),
        )
    })?;
    if let Some(policy) = first(params, "Policy")
        && !serde_json::from_str::<serde_json::Value>(policy).is_ok_and(|v| v.is_object())
    {
        return Err(ApiError::new(
            ErrorKind::MalformedPolicyDocument,
            "Syntax errors in policy.",
        ));
    }
    if caller.issued
        && request
            .duration_seconds
            .is_some_and(|s| s > CHAINED_MAX_DURATION_SECONDS)
    {
        return Err(ApiError::new(
            ErrorKind::Validation,
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
        ));
    }
    let refused = inner
        .config
        .refuse_assume_role
        .iter()
        .any(|arn| arn == request.role_arn);
    let external_id_wrong = inner
        .config
        .role_external_ids
        .get(request.role_arn)
        .is_some_and(|required| request.external_id != Some(required.as_str()));
    if refused || external_id_wrong {
        let who = identity(inner, caller);
        return Err(ApiError::new(
            ErrorKind::AccessDenied,
            format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                who.arn, request.role_arn
            ),
        ));
    }

    let seconds = request
        .duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(DEFAULT_DURATION_SECONDS);
    let expiration = iso8601(SystemTime::now() + Duration::from_secs(seconds));
    let access_key_id = issue_key(&role.account_id, &mut inner.rng);
    let secret: String = (0..40).map(|_| inner.rng.alphanumeric()).collect();
    let token_tail: String = (0..180).map(|_| inner.rng.alphanumeric()).collect();
    let session_token = format!("SimSessionToken{token_tail}");
    let session = Session {
        account_id: role.account_id.clone(),
        secret_access_key: secret.clone(),
        session_token: session_token.clone(),
        role_arn: request.role_arn.to_owned(),
        assumed_role_id: format!(
            "{}:{}",
            derived_id("AROA", request.role_arn),
            request.session_name
        ),
        arn: format!(
            "arn:{}:sts::{}:assumed-role/{}/{}",
            role.partition, role.account_id, role.name, request.session_name
        ),
    };
    let result = format!(
        "<AssumedRoleUser><AssumedRoleId>{}</AssumedRoleId><Arn>{}</Arn></AssumedRoleUser>\
         <Credentials><AccessKeyId>{access_key_id}</AccessKeyId>\
         <SecretAccessKey>{secret}</SecretAccessKey>\
         <SessionToken>{session_token}</SessionToken>\
         <Expiration>{expiration}</Expiration></Credentials>",
        xml_escape(&session.assumed_role_id),
        xml_escape(&session.arn),
    );
    tracing::debug!(role = request.role_arn, key = %access_key_id, "assumed role");
    inner.sessions.insert(access_key_id, session);
    Ok(query_answer("AssumeRole", result))
}

/// Escapes text for an XML element.
pub(crate) fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-05-01T12:00:00Z`, as STS writes `Expiration`.
pub(crate) fn iso8601(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn role_arns_need_a_12_digit_account_and_a_role_name() {
        let role = RoleArn::parse("arn:aws:iam::222222222222:role/path/to/connect").unwrap();
        assert_eq!(role.account_id, "222222222222");
        assert_eq!(role.name, "connect");
        assert!(RoleArn::parse("arn:aws-cn:iam::222222222222:role/x").is_some());
        for bad in [
            "arn:aws:iam::2222:role/x",
            "arn:aws:iam::222222222222:user/x",
            "arn:aws:iam::222222222222:role/",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::222222222222:role/a b",
            "not-an-arn-at-all-really",
        ] {
            assert_eq!(RoleArn::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn validation_errors_are_counted_and_worded_like_aws() {
        let err = validate_assume_role(&params(&[
            ("RoleSessionName", "x"),
            ("DurationSeconds", "100"),
        ]))
        .err()
        .unwrap();
        assert_eq!(err.kind, ErrorKind::Validation);
        assert_eq!(
            err.message,
            "3 validation errors detected: \
             Value null at 'roleArn' failed to satisfy constraint: Member must not be null; \
             Value 'x' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2; \
             Value '100' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        );
        let err = validate_assume_role(&params(&[
            ("RoleArn", "arn:aws:iam::222222222222:role/x"),
            ("RoleSessionName", "has space"),
        ]))
        .err()
        .unwrap();
        assert!(
            err.message
                .starts_with("1 validation error detected: Value 'has space' at 'roleSessionName'")
        );
        assert!(
            validate_assume_role(&params(&[
                ("RoleArn", "arn:aws:iam::222222222222:role/x"),
                ("RoleSessionName", "ok-session@x.y"),
                ("DurationSeconds", "43200"),
                ("ExternalId", "tenant:42/a"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn expiration_is_written_as_utc_iso8601() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(1_772_366_645)),
            "2026-03-01T12:04:05Z"
        );
        assert_eq!(
            iso8601(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn derived_ids_are_stable_and_aws_shaped() {
        let id = derived_id("AROA", "arn:aws:iam::222222222222:role/x");
        assert_eq!(id, derived_id("AROA", "arn:aws:iam::222222222222:role/x"));
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("AROA"));
        assert_ne!(id, derived_id("AROA", "arn:aws:iam::222222222222:role/y"));
    }
}
