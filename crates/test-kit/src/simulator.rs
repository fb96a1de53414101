//! The Connect simulator as a process ([`Simulator`]) or on the test's own runtime
//! ([`InProcessSimulator`]), and [`SimClient`], a typed client of its `/_sim/*` control
//! endpoints that both share.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connect_sim::{ConfigPatch, ConfigView};
use serde::Deserialize;
use serde_json::Value;

use crate::process::{ManagedProcess, Spawn, first_line_then_drain, log_tail};

/// Where per-test logs go: `target/tmp/e2e/<test>/`, emptied at the start of the test and
/// kept after the run for inspection.
pub fn log_dir(test: &str) -> PathBuf {
    let dir = crate::paths::target_tmp_dir().join("e2e").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the log directory");
    dir
}

/// One Connect or STS request as the simulator recorded it.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimCall {
    pub seq: u64,
    /// `CreateInstance`, …, or the STS operations `AssumeRole` and `GetCallerIdentity`.
    pub operation: String,
    /// The account the call acted in: the caller's (named by its access key); for AssumeRole
    /// the role's.
    #[serde(default)]
    pub account_id: String,
    /// The region of the caller's SigV4 credential scope.
    #[serde(default)]
    pub region: String,
    /// The access key id the request was signed with: tells two callers of one account
    /// apart (two operator replicas with their own keys).
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// AssumeRole: the role asked for.
    #[serde(default)]
    pub role_arn: Option<String>,
    pub client_token: Option<String>,
    pub instance_id: Option<String>,
    /// The HTTP status of the outcome. For a dropped reply (`dropped`), the status the
    /// operation produced although the client never received it.
    pub status: u16,
    /// The AWS error code of the outcome (also for a dropped reply).
    pub error_type: Option<String>,
    /// The simulator closed the connection instead of answering: the outcome in `status` /
    /// `error_type` took effect, the client saw a connection error.
    #[serde(default)]
    pub dropped: bool,
    /// The answer repeated an earlier one for the same ClientToken, with no new effect.
    #[serde(default)]
    pub replay: bool,
    /// When the simulator received the call, in milliseconds since it started.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// When the request arrived (before any injected latency), in milliseconds since the
    /// Unix epoch (the machine's clock).
    #[serde(default)]
    pub unix_ms: u64,
}

impl SimCall {
    /// The client received a success answer (a dropped reply is not one, whatever the
    /// operation did: see [`SimCall::applied`]).
    pub fn succeeded(&self) -> bool {
        !self.dropped && self.applied()
    }

    /// The operation succeeded in the simulated account, whether or not its reply arrived.
    pub fn applied(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An instance held by the simulator.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimInstance {
    pub id: String,
    pub arn: String,
    /// The account that owns it.
    #[serde(default)]
    pub account_id: String,
    /// Its region.
    #[serde(default)]
    pub region: String,
    pub alias: Option<String>,
    pub identity_management_type: String,
    pub status: String,
    /// DeleteInstance was accepted; the instance vanishes after the deletion delay.
    #[serde(default)]
    pub deleting: bool,
    /// False while the visibility delay hides a new instance from the Connect API.
    #[serde(default = "visible_by_default")]
    pub visible: bool,
    pub status_reason: Option<Value>,
    pub inbound_calls_enabled: bool,
    pub outbound_calls_enabled: bool,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Its storage associations, in association order.
    #[serde(default)]
    pub storage_configs: Vec<SimStorageConfig>,
    #[serde(default)]
    pub approved_origins: Vec<String>,
    #[serde(default)]
    pub lambda_functions: Vec<String>,
    /// Lex V2 bot alias ARNs.
    #[serde(default)]
    pub lex_v2_bots: Vec<String>,
    /// As ListSecurityKeys shows them (`AssociationId`, `Key`, `CreationTime`).
    #[serde(default)]
    pub security_keys: Vec<Value>,
}

/// One storage association of an instance.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimStorageConfig {
    pub resource_type: String,
    /// As AWS echoes it (`AssociationId`, `StorageType`, the type's config).
    pub storage_config: Value,
}

fn visible_by_default() -> bool {
    true
}

/// One set of credentials the simulator's STS issued.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub role_arn: String,
}

/// Counters of the simulated accounts: totals over the accounts and regions asked for, and
/// each of them.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimState {
    pub lifecycle_attempts: u64,
    pub instance_count: u64,
    /// Per account and region: every one a call or an insert used, and the default one.
    #[serde(default)]
    pub accounts: Vec<SimAccountState>,
}

/// The counters of one account in one region.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimAccountState {
    pub account_id: String,
    pub region: String,
    pub lifecycle_attempts: u64,
    pub instance_count: u64,
}

/// A running `connect-sim` process; stopped on drop (its log printed if the test failed).
pub struct Simulator {
    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL`.
    pub url: String,
    process: ManagedProcess,
    client: SimClient,
}

impl std::ops::Deref for Simulator {
    type Target = SimClient;

    fn deref(&self) -> &SimClient {
        &self.client
    }
}

/// A simulator on the calling test's tokio runtime (stopped when dropped), for tests that
/// drive the reconciler in-process. The SDK and this client still reach it over HTTP.
pub struct InProcessSimulator {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _handle: connect_sim::SimHandle,
    client: SimClient,
}

impl InProcessSimulator {
    /// Starts one on a free loopback port.
    pub async fn start(config: connect_sim::SimConfig) -> Self {
        let handle = connect_sim::spawn(config, ([127, 0, 0, 1], 0).into())
            .await
            .expect("starting the in-process simulator");
        let url = handle.url();
        Self {
            client: SimClient::new(&url),
            url,
            _handle: handle,
        }
    }
}

impl std::ops::Deref for InProcessSimulator {
    type Target = SimClient;

    fn deref(&self) -> &SimClient {
        &self.client
    }
}

/// A client of the simulator's `/_sim/` endpoints. Every failure fails the test.
#[derive(Clone)]
pub struct SimClient {
    url: String,
    http: reqwest::Client,
}

impl Simulator {
    /// Starts `connect-sim --listen 127.0.0.1:0 <args>`; logs go to `<log_dir>/simulator.log`.
    pub fn start(log_dir: &Path, args: &[&str]) -> Self {
        let log = log_dir.join("simulator.log");
        let mut all_args: Vec<OsString> = vec!["--listen".into(), "127.0.0.1:0".into()];
        all_args.extend(args.iter().map(OsString::from));
        let mut process = ManagedProcess::spawn(Spawn {
            name: "connect-sim",
            program: &crate::paths::simulator_binary(),
            args: all_args,
            envs: vec![],
            env_remove: vec![],
            log: &log,
            capture_stdout: true,
            grace: Duration::from_secs(3),
        })
        .expect("starting connect-sim");
        let stdout = process.take_stdout().expect("captured stdout");
        let line =
            first_line_then_drain(stdout, &log, Duration::from_secs(30)).unwrap_or_else(|error| {
                panic!(
                    "connect-sim did not announce its address: {error}\n{}",
                    log_tail(&log, 40)
                )
            });
        let url = line
            .strip_prefix("connect-sim listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from connect-sim: {line:?}"))
            .trim()
            .to_owned();
        Self {
            client: SimClient::new(&url),
            url,
            process,
        }
    }

    /// The last lines of the simulator's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

impl SimClient {
    /// A client of the simulator at `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("HTTP client"),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap_or_else(|error| panic!("GET {path}: {error}"));
        let status = response.status();
        let body = response.text().await.expect("response body");
        assert!(status.is_success(), "GET {path}: {status}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("GET {path}: {error}: {body}"))
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        let status = response.status();
        let text = response.text().await.expect("response body");
        assert!(status.is_success(), "{method} {path}: {status}: {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }

    /// Every Connect and STS request so far (`GET /_sim/calls`).
    pub async fn calls(&self) -> Vec<SimCall> {
        self.get("/_sim/calls").await
    }

    /// The calls that acted in `account_id`, in any region (`GET /_sim/calls?accountId=`).
    pub async fn calls_in(&self, account_id: &str) -> Vec<SimCall> {
        self.get(&format!("/_sim/calls{}", filter(Some(account_id), None)))
            .await
    }

    /// The calls that acted in `account_id` in `region`.
    pub async fn calls_in_region(&self, account_id: &str, region: &str) -> Vec<SimCall> {
        self.get(&format!(
            "/_sim/calls{}",
            filter(Some(account_id), Some(region))
        ))
        .await
    }

    /// The calls of one operation.
    pub async fn calls_of(&self, operation: &str) -> Vec<SimCall> {
        self.calls()
            .await
            .into_iter()
            .filter(|call| call.operation == operation)
            .collect()
    }

    /// Forgets the recorded calls (`DELETE /_sim/calls`).
    pub async fn clear_calls(&self) {
        self.send(reqwest::Method::DELETE, "/_sim/calls", None)
            .await;
    }

    /// Current instances (`GET /_sim/instances`).
    pub async fn instances(&self) -> Vec<SimInstance> {
        self.get("/_sim/instances").await
    }

    /// The instances of `account_id`, in any region (`GET /_sim/instances?accountId=`).
    pub async fn instances_in(&self, account_id: &str) -> Vec<SimInstance> {
        self.get(&format!(
            "/_sim/instances{}",
            filter(Some(account_id), None)
        ))
        .await
    }

    /// The instances of `account_id` in `region`.
    pub async fn instances_in_region(&self, account_id: &str, region: &str) -> Vec<SimInstance> {
        self.get(&format!(
            "/_sim/instances{}",
            filter(Some(account_id), Some(region))
        ))
        .await
    }

    /// The instance with this id (in any account and region), if the simulator still has it.
    pub async fn instance(&self, id: &str) -> Option<SimInstance> {
        self.instances()
            .await
            .into_iter()
            .find(|instance| instance.id == id)
    }

    /// Inserts an ACTIVE instance the operator did not create (`POST /_sim/instances`), in
    /// the default account and region.
    pub async fn insert_instance(&self, alias: &str, tags: &[(&str, &str)]) -> SimInstance {
        let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
        self.insert(serde_json::json!({ "alias": alias, "tags": tags }))
            .await
    }

    /// Inserts an ACTIVE instance nobody created through the API into `account_id` in
    /// `region`.
    pub async fn insert_instance_in(
        &self,
        account_id: &str,
        region: &str,
        alias: &str,
        tags: &[(&str, &str)],
    ) -> SimInstance {
        let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
        self.insert(serde_json::json!({
            "alias": alias,
            "tags": tags,
            "accountId": account_id,
            "region": region,
        }))
        .await
    }

    async fn insert(&self, body: Value) -> SimInstance {
        let value = self
            .send(reqwest::Method::POST, "/_sim/instances", Some(&body))
            .await;
        serde_json::from_value(value.clone())
            .unwrap_or_else(|error| panic!("POST /_sim/instances answered {value}: {error}"))
    }

    /// The current knobs (`GET /_sim/config`).
    pub async fn config(&self) -> ConfigView {
        self.get("/_sim/config").await
    }

    /// Merges `patch` into the knobs (`PUT /_sim/config`) and returns them as they are then.
    pub async fn set_config(&self, patch: &ConfigPatch) -> ConfigView {
        let body = serde_json::to_value(patch).expect("a config patch is JSON");
        let value = self
            .send(reqwest::Method::PUT, "/_sim/config", Some(&body))
            .await;
        serde_json::from_value(value.clone())
            .unwrap_or_else(|error| panic!("PUT /_sim/config answered {value}: {error}"))
    }

    /// Counters, summed over every account and region (`GET /_sim/state`).
    /// The credentials the simulator's STS issued (AssumeRole), secrets included.
    pub async fn issued_credentials(&self) -> Vec<IssuedCredentials> {
        self.get("/_sim/sessions").await
    }

    pub async fn state(&self) -> SimState {
        self.get("/_sim/state").await
    }

    /// The counters of `account_id` in `region`
    /// (`GET /_sim/state?accountId=&region=`).
    pub async fn state_of(&self, account_id: &str, region: &str) -> SimState {
        self.get(&format!(
            "/_sim/state{}",
            filter(Some(account_id), Some(region))
        ))
        .await
    }

    /// Makes AssumeRole refuse exactly these roles (AccessDenied); `&[]` allows every role
    /// again. Returns the configuration then.
    pub async fn refuse_assume_role(&self, role_arns: &[&str]) -> ConfigView {
        self.set_config(&ConfigPatch {
            refuse_assume_role: Some(role_arns.iter().map(|arn| (*arn).to_owned()).collect()),
            ..ConfigPatch::default()
        })
        .await
    }

    /// Makes AssumeRole of each role require its ExternalId (AccessDenied without it);
    /// replaces the previous requirements, `&[]` requires none.
    pub async fn require_external_ids(&self, role_external_ids: &[(&str, &str)]) -> ConfigView {
        self.set_config(&ConfigPatch {
            role_external_ids: Some(
                role_external_ids
                    .iter()
                    .map(|(arn, id)| ((*arn).to_owned(), (*id).to_owned()))
                    .collect(),
            ),
            ..ConfigPatch::default()
        })
        .await
    }
}

/// `?accountId=…&region=…` for the views.
fn filter(account_id: Option<&str>, region: Option<&str>) -> String {
    let pairs: Vec<String> = [("accountId", account_id), ("region", region)]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={}", encode(v))))
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

/// Percent-encodes a query value (account ids and regions need none; anything else stays safe).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- connect-sim log ({}), last lines ---\n{}",
                self.process.log_path().display(),
                self.process.log_tail(60)
            );
        }
    }
}
