//! The `connect-operator run` binary as a process, watching one test namespace.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::process::{ManagedProcess, Spawn, free_port, log_tail};

/// How long [`OperatorProcess::wait_ready`] waits for `/readyz` before settling for `/livez`.
pub const READY_GRACE: Duration = Duration::from_secs(10);

/// How to run the operator for one test.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// The only namespace it watches, so parallel tests do not see each other's objects.
    pub namespace: String,
    /// The simulator's URL (`AWS_ENDPOINT_URL`).
    pub aws_endpoint_url: String,
    /// kubeconfig it uses (default: the shared control plane's admin kubeconfig).
    pub kubeconfig: Option<PathBuf>,
    /// Flags that replace the fast test defaults of [`OperatorOptions::default_flags`],
    /// as `--name=value` or `--name value` pairs; a flag given here wins.
    pub flags: Vec<(String, String)>,
    /// Extra environment variables.
    pub envs: Vec<(String, String)>,
    /// Namespaces watched besides `namespace` (tests that span several namespaces).
    pub more_namespaces: Vec<String>,
}

impl OperatorOptions {
    pub fn new(namespace: &str, aws_endpoint_url: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            aws_endpoint_url: aws_endpoint_url.to_owned(),
            kubeconfig: None,
            flags: vec![],
            envs: vec![],
            more_namespaces: vec![],
        }
    }

    /// Watches another namespace too.
    pub fn also_watch(mut self, namespace: &str) -> Self {
        self.more_namespaces.push(namespace.to_owned());
        self
    }

    /// Sets one flag (without the leading dashes), replacing the default.
    pub fn flag(mut self, name: &str, value: &str) -> Self {
        self.flags.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Intervals short enough for tests; rate limits high enough not to slow them down
    /// (tests that are about rate limits set their own).
    pub fn default_flags() -> Vec<(&'static str, &'static str)> {
        vec![
            ("region", "us-east-1"),
            ("drift-interval", "30s"),
            ("creation-poll-interval", "300ms"),
            ("quota-retry-interval", "3s"),
            ("concurrency", "4"),
            ("create-delete-rate", "5"),
            ("api-rate", "50"),
            ("aws-timeout", "5s"),
            ("error-backoff", "300ms"),
            ("error-backoff-max", "3s"),
            ("log-format", "text"),
        ]
    }
}

/// A running operator. Kills itself on drop and prints its log when the test failed.
pub struct OperatorProcess {
    options: OperatorOptions,
    log: PathBuf,
    /// `127.0.0.1:PORT` of `/metrics`, `/livez`, `/readyz`.
    pub metrics_addr: String,
    process: Option<ManagedProcess>,
    starts: u32,
    /// The static AWS secret access key it is given: distinctive, so that a test can make
    /// sure it never appears in the log.
    static_secret: String,
}

impl OperatorProcess {
    /// Starts the operator and waits until `/readyz` answers 200 (watch synced).
    pub async fn start(log_dir: &Path, options: OperatorOptions) -> Self {
        let mut operator = Self {
            options,
            log: log_dir.join("operator.log"),
            metrics_addr: String::new(),
            process: None,
            starts: 0,
            static_secret: format!(
                "StaticSecret{}{}",
                crate::random_suffix(12),
                crate::random_suffix(12)
            ),
        };
        operator.spawn().await;
        operator
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The static AWS secret access key the operator was given.
    pub fn static_secret(&self) -> &str {
        &self.static_secret
    }

    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// The OS pid of the running operator.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ManagedProcess::pid)
    }

    async fn spawn(&mut self) {
        self.starts += 1;
        let kubeconfig = match &self.options.kubeconfig {
            Some(path) => path.clone(),
            None => tokio::task::spawn_blocking(|| crate::control_plane().kubeconfig.clone())
                .await
                .expect("control plane"),
        };
        self.metrics_addr = format!("127.0.0.1:{}", free_port());
        let mut flags: Vec<(String, String)> = OperatorOptions::default_flags()
            .into_iter()
            .filter(|(name, _)| !self.options.flags.iter().any(|(given, _)| given == name))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect();
        flags.extend(self.options.flags.iter().cloned());
        let mut watched = vec![self.options.namespace.clone()];
        watched.extend(self.options.more_namespaces.iter().cloned());
        flags.push(("namespace".to_owned(), watched.join(",")));
        // Every test's operator serves the shared default account and the accounts its own
        // test creates, never another test's (their simulators differ).
        if !flags.iter().any(|(name, _)| name == "account-selector") {
            flags.push((
                "account-selector".to_owned(),
                format!(
                    "{} in (shared,{})",
                    crate::control_plane::ACCOUNT_SCOPE_LABEL,
                    self.options.namespace
                ),
            ));
        }
        flags.push((
            "aws-endpoint-url".to_owned(),
            self.options.aws_endpoint_url.clone(),
        ));
        flags.push(("metrics-addr".to_owned(), self.metrics_addr.clone()));
        let mut args: Vec<OsString> = vec!["run".into()];
        args.extend(
            flags
                .iter()
                .map(|(name, value)| OsString::from(format!("--{name}={value}"))),
        );
        let mut envs: Vec<(OsString, OsString)> = vec![
            ("KUBECONFIG".into(), kubeconfig.into()),
            (
                "AWS_ENDPOINT_URL".into(),
                self.options.aws_endpoint_url.clone().into(),
            ),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                self.static_secret.clone().into(),
            ),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
            // Plain log files (tracing-subscriber honours NO_COLOR).
            ("NO_COLOR".into(), "1".into()),
            (
                "RUST_LOG".into(),
                std::env::var("CONNECT_OPERATOR_TEST_LOG")
                    .unwrap_or_else(|_| "info,connect_operator=debug".to_owned())
                    .into(),
            ),
        ];
        envs.extend(
            self.options
                .envs
                .iter()
                .map(|(key, value)| (key.into(), value.into())),
        );
        {
            use std::io::Write;
            let mut log = std::fs::File::options()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("operator log");
            let _ = writeln!(
                log,
                "=== test harness: start #{} of connect-operator {}",
                self.starts,
                args.iter()
                    .map(|arg| arg.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let process = ManagedProcess::spawn(Spawn {
            name: "connect-operator",
            program: &crate::paths::operator_binary(),
            args,
            envs,
            // Nothing from the developer's own AWS or Kubernetes setup may leak in.
            env_remove: vec![
                "AWS_PROFILE",
                "AWS_SESSION_TOKEN",
                "AWS_CONFIG_FILE",
                "AWS_SHARED_CREDENTIALS_FILE",
                "AWS_ROLE_ARN",
                "AWS_WEB_IDENTITY_TOKEN_FILE",
                "CONNECT_OPERATOR_WATCH_NAMESPACE",
                "CONNECT_OPERATOR_LEADER_ELECTION",
                "POD_NAMESPACE",
                "POD_NAME",
            ],
            log: &self.log,
            capture_stdout: false,
            grace: Duration::from_secs(10),
        })
        .expect("starting connect-operator");
        self.process = Some(process);
        self.wait_ready().await;
    }

    /// Waits until `/readyz` answers 200; fails with the log if the process exits first.
    ///
    /// If `/readyz` stays unready for [`READY_GRACE`] while `/livez` answers, it goes on
    /// with a warning instead of failing every scenario: readiness itself is asserted by
    /// the scenarios (`assert_ready_endpoint`), so a readiness bug fails one test, not all.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let grace = Instant::now() + READY_GRACE;
        loop {
            if let Some(status) = self.process.as_mut().and_then(ManagedProcess::exited) {
                panic!(
                    "connect-operator exited ({status}) before it was ready:\n{}",
                    self.log_tail(60)
                );
            }
            if self.endpoint_ok("/readyz").await {
                return;
            }
            if Instant::now() > grace && self.endpoint_ok("/livez").await {
                eprintln!(
                    "WARNING: connect-operator /readyz not ready after {READY_GRACE:?} \
                     (but /livez is); going on"
                );
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "connect-operator not live at {} after 30 s:\n{}",
                    self.metrics_addr,
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether `GET <path>` on the metrics address answers 2xx.
    pub async fn endpoint_ok(&self, path: &str) -> bool {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("HTTP client");
        http.get(format!("http://{}{path}", self.metrics_addr))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success())
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics body")
    }

    /// SIGKILL: a crash, with no chance to clean up. True when a running operator was
    /// killed (not one that had already exited, or none).
    pub fn kill(&mut self) -> bool {
        self.process
            .take()
            .is_some_and(|mut process| process.kill())
    }

    /// How many times this operator was started (the first start included).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// SIGTERM and wait (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Starts it again with the same options (after [`Self::kill`] or [`Self::stop`]).
    pub async fn restart(&mut self) {
        let _ = self.kill();
        self.spawn().await;
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| process.exited().is_none())
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- connect-operator log ({}), last lines ---\n{}",
                self.log.display(),
                self.log_tail(120)
            );
        }
    }
}
