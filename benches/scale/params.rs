//! The benchmark's parameters: read from `BENCH_*` environment variables, with the
//! defaults of `cargo bench` or, without `--bench`, of the smoke run, and printed at start.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Params {
    /// Objects applied at once in the throughput scenario.
    pub n: usize,
    /// Single objects applied one after another to an idle operator.
    pub probes: usize,
    /// CreateInstance/DeleteInstance rate R (simulator and operator), per second.
    pub create_rate: f64,
    /// The simulator's burst for CreateInstance/DeleteInstance (AWS: 1).
    pub create_burst: u32,
    /// Rate of every other operation (simulator and operator), per second.
    pub api_rate: f64,
    /// The simulator's burst for every other operation.
    pub api_burst: u32,
    pub creation_delay: Duration,
    pub deletion_delay: Duration,
    /// The operator's first creation poll interval.
    pub poll: Duration,
    pub drift: Duration,
    pub steady_window: Duration,
    pub concurrency: u16,
    /// The numbers of objects M the memory scenario runs with, one fresh simulator,
    /// operator and namespace each (empty, or only 0: skipped).
    pub m: Vec<usize>,
    pub mem_create_rate: f64,
    pub mem_api_rate: f64,
    pub mem_concurrency: u16,
    pub mem_timeout: Duration,
    /// `restart` (the operator starts over M objects whose instances exist) or `create`
    /// (the operator creates the M instances).
    pub mem_mode: String,
    /// Objects of scenario 5, realistic creation times (0 skips it).
    pub real_n: usize,
    /// The simulator's creation delay in scenario 5 (Connect: 2 to 5 minutes).
    pub real_creation_delay: Duration,
    /// CreateInstance rate of scenario 5's creation phase, simulator limit and
    /// `--create-delete-rate` (its deletion phase runs at Connect's 0.1/s).
    pub real_create_rate: f64,
    /// Objects per account in scenario 6, several accounts (0 skips it).
    pub account_n: usize,
    /// The numbers of accounts K that scenario 6 runs with, one fresh simulator and
    /// operator each.
    pub account_counts: Vec<usize>,
    /// The scenarios to run, in their fixed order: `lifecycle` (the probes and scenarios
    /// 1, 2 and 4, which share their objects), `memory` (3), `realistic` (5), `accounts`
    /// (6).
    pub scenarios: Vec<String>,
    /// Pause between the operator's readiness and the first object.
    pub warmup: Duration,
    pub operator_log: String,
}

fn env_str(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn env_parse<T: std::str::FromStr>(name: &str, default: T) -> T {
    match env_str(name) {
        Some(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not valid")),
        None => default,
    }
}

fn env_duration(name: &str, default: Duration) -> Duration {
    match env_str(name) {
        Some(value) => humantime::parse_duration(value.trim())
            .unwrap_or_else(|error| panic!("{name}={value:?}: {error}")),
        None => default,
    }
}

impl Params {
    /// `full`: the figures of `cargo bench`; otherwise (`cargo test --all-targets` runs this
    /// target too, in the debug profile) a small smoke run of every scenario and check.
    pub fn from_env(full: bool) -> Self {
        let pick =
            |full_value: usize, smoke_value: usize| if full { full_value } else { smoke_value };
        let create_rate: f64 = env_parse("BENCH_CREATE_RATE", 2.0);
        // Connect's own quotas are 0.1/s for CreateInstance and 2/s for the rest: keep
        // that 1:20 ratio by default, so that reads are not the bottleneck they would not
        // be on AWS.
        let api_rate: f64 = env_parse("BENCH_API_RATE", create_rate * 20.0);
        let drift = env_duration(
            "BENCH_DRIFT_INTERVAL",
            Duration::from_secs(pick(20, 5) as u64),
        );
        Self {
            n: env_parse("BENCH_N", pick(60, 8)),
            probes: env_parse("BENCH_PROBES", pick(5, 2)),
            create_rate,
            create_burst: env_parse("BENCH_CREATE_BURST", 1),
            api_rate,
            api_burst: env_parse("BENCH_API_BURST", api_rate.ceil().max(1.0) as u32),
            creation_delay: env_duration("BENCH_CREATION_DELAY", Duration::from_secs(2)),
            deletion_delay: env_duration("BENCH_DELETION_DELAY", Duration::from_secs(1)),
            poll: env_duration("BENCH_POLL_INTERVAL", Duration::from_secs(1)),
            drift,
            steady_window: env_duration("BENCH_STEADY_WINDOW", drift * 2),
            concurrency: env_parse("BENCH_CONCURRENCY", 4),
            m: counts_from_env("BENCH_M", if full { &[2000, 5000] } else { &[100] }, 0),
            mem_create_rate: env_parse("BENCH_MEM_CREATE_RATE", 50.0),
            mem_api_rate: env_parse("BENCH_MEM_API_RATE", 2000.0),
            mem_concurrency: env_parse("BENCH_MEM_CONCURRENCY", 8),
            mem_timeout: env_duration("BENCH_MEM_TIMEOUT", Duration::from_secs(420)),
            mem_mode: env_str("BENCH_MEM_MODE").unwrap_or_else(|| "restart".to_owned()),
            real_n: env_parse("BENCH_REAL_N", pick(20, 3)),
            real_creation_delay: env_duration(
                "BENCH_REAL_CREATION_DELAY",
                Duration::from_secs(pick(150, 10) as u64),
            ),
            real_create_rate: env_parse("BENCH_REAL_CREATE_RATE", 1.0),
            account_n: env_parse("BENCH_ACCOUNT_OBJECTS", pick(12, 3)),
            account_counts: counts_from_env("BENCH_ACCOUNTS", &[1, 2, 4], 1),
            scenarios: scenarios_from_env(),
            warmup: env_duration("BENCH_WARMUP", Duration::from_secs(pick(5, 2) as u64)),
            operator_log: env_str("BENCH_OPERATOR_LOG").unwrap_or_else(|| "info".to_owned()),
        }
    }

    /// Whether scenario (group) `name` is selected by `BENCH_SCENARIOS`.
    pub fn runs(&self, name: &str) -> bool {
        self.scenarios.iter().any(|s| s == name)
    }

    /// The latency target of apply -> first AWS call and of ACTIVE -> Ready: 1 s plus one
    /// creation poll interval (the operator sees ACTIVE at its next poll, at most one
    /// interval after the transition).
    pub fn latency_limit(&self) -> f64 {
        1.0 + self.poll.as_secs_f64()
    }

    pub fn print(&self) {
        println!("parameters (BENCH_* environment variables):");
        let rows: Vec<(&str, String)> = vec![
            ("BENCH_N", self.n.to_string()),
            ("BENCH_PROBES", self.probes.to_string()),
            ("BENCH_CREATE_RATE", format!("{}/s", self.create_rate)),
            ("BENCH_CREATE_BURST", self.create_burst.to_string()),
            ("BENCH_API_RATE", format!("{}/s", self.api_rate)),
            ("BENCH_API_BURST", self.api_burst.to_string()),
            ("BENCH_CREATION_DELAY", fmt_dur(self.creation_delay)),
            ("BENCH_DELETION_DELAY", fmt_dur(self.deletion_delay)),
            ("BENCH_POLL_INTERVAL", fmt_dur(self.poll)),
            ("BENCH_DRIFT_INTERVAL", fmt_dur(self.drift)),
            ("BENCH_STEADY_WINDOW", fmt_dur(self.steady_window)),
            ("BENCH_CONCURRENCY", self.concurrency.to_string()),
            ("BENCH_M", join(&self.m)),
            (
                "BENCH_MEM_CREATE_RATE",
                format!("{}/s", self.mem_create_rate),
            ),
            ("BENCH_MEM_API_RATE", format!("{}/s", self.mem_api_rate)),
            ("BENCH_MEM_CONCURRENCY", self.mem_concurrency.to_string()),
            ("BENCH_MEM_TIMEOUT", fmt_dur(self.mem_timeout)),
            ("BENCH_MEM_MODE", self.mem_mode.clone()),
            ("BENCH_REAL_N", self.real_n.to_string()),
            (
                "BENCH_REAL_CREATION_DELAY",
                fmt_dur(self.real_creation_delay),
            ),
            (
                "BENCH_REAL_CREATE_RATE",
                format!("{}/s", self.real_create_rate),
            ),
            ("BENCH_ACCOUNT_OBJECTS", self.account_n.to_string()),
            ("BENCH_ACCOUNTS", join(&self.account_counts)),
            ("BENCH_SCENARIOS", self.scenarios.join(",")),
            ("BENCH_WARMUP", fmt_dur(self.warmup)),
            ("BENCH_OPERATOR_LOG", self.operator_log.clone()),
        ];
        for (name, value) in rows {
            println!("  {name:<26} {value}");
        }
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        println!("  (machine: {cpus} CPUs)");
    }
}

/// The scenarios `BENCH_SCENARIOS` can select, in the order they run.
pub const SCENARIOS: [&str; 4] = ["lifecycle", "memory", "realistic", "accounts"];

/// A comma-separated list of numbers, each at least `min` (`BENCH_ACCOUNTS`: the numbers
/// of accounts of scenario 6, default 1,2,4; `BENCH_M`: the numbers of objects of the
/// memory scenario, default 2000,5000 or 100 in the smoke run).
fn counts_from_env(name: &str, default: &[usize], min: usize) -> Vec<usize> {
    let Some(value) = env_str(name) else {
        return default.to_vec();
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<usize>() {
            Ok(k) if k >= min => k,
            _ => panic!("{name}={value:?}: {s:?} is not a number >= {min}"),
        })
        .collect()
}

fn join(counts: &[usize]) -> String {
    counts
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `BENCH_SCENARIOS`: a comma-separated subset of [`SCENARIOS`] (default: all); they
/// always run in the order of [`SCENARIOS`].
fn scenarios_from_env() -> Vec<String> {
    let Some(value) = env_str("BENCH_SCENARIOS") else {
        return SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    };
    let asked: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if asked == ["all"] {
        return SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    }
    for name in &asked {
        assert!(
            SCENARIOS.contains(name),
            "BENCH_SCENARIOS={value:?}: unknown scenario {name:?} (expected a comma-separated subset of {})",
            SCENARIOS.join(", ")
        );
    }
    SCENARIOS
        .iter()
        .filter(|s| asked.contains(s))
        .map(|s| (*s).to_owned())
        .collect()
}

pub fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
