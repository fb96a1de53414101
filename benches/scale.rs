//! `cargo bench --bench scale`: measures the targets of DESIGN.md §5 against a real
//! kube-apiserver + etcd, the Connect simulator (`connect-sim`) and the operator binary,
//! and prints every figure next to the limit it is bounded by. Method and results:
//! `docs/benchmarks.md`.
//!
//! Nothing here is a timed assertion. The run exits non-zero only when it breaks (an object
//! never becomes Ready, a process dies) or a correctness target is violated: a duplicate
//! CreateInstance, an instance left behind, an object stuck with its finalizer.
//!
//! Scenarios, in the order they run:
//! - latency probes: single objects applied to an idle operator;
//! - creation throughput: N objects applied at once against a CreateInstance rate limit R;
//! - steady state: a window of about two drift intervals after everything is Ready;
//! - deletion: every object of the scenarios above deleted at once;
//! - memory: a fresh simulator and operator, M objects, RSS at rest (by default the
//!   operator restarts over M objects whose instances exist; `BENCH_MEM_MODE=create` lets
//!   it create them).
//!
//! All parameters come from `BENCH_*` environment variables (see [`Params::from_env`]).
//! Without `--bench` (`cargo test --all-targets`) it runs a small smoke version.

// A bench is a test program: a broken run ends in a panic with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

// The integration-test harness: control plane, simulator and operator processes that
// never outlive this process. Its test-only items are unused here.
#[allow(dead_code, unused_imports)]
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_operator::aws::token;
use connect_sim::ConfigPatch;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Event as KubeEvent;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use test_kit::connect;
use test_kit::simulator::SimInstance;
use test_kit::{OperatorOptions, OperatorProcess, SimCall, Simulator, TestNamespace};

/// "Tens of MiB for thousands of objects": read as below 100 MiB at 2,000 objects (the
/// smallest "thousands"); 5,000 objects are projected for information.
const MEMORY_LIMIT_MIB: f64 = 100.0;
const MEMORY_TARGET_OBJECTS: f64 = 2000.0;
const MEMORY_PROJECTED_OBJECTS: f64 = 5000.0;

// ---------------------------------------------------------------------------------------
// Parameters

#[derive(Clone, Debug)]
struct Params {
    /// Objects applied at once in the throughput scenario.
    n: usize,
    /// Single objects applied one after another to an idle operator.
    probes: usize,
    /// CreateInstance/DeleteInstance rate R (simulator and operator), per second.
    create_rate: f64,
    /// The simulator's burst for CreateInstance/DeleteInstance (AWS: 1).
    create_burst: u32,
    /// Rate of every other operation (simulator and operator), per second.
    api_rate: f64,
    /// The simulator's burst for every other operation.
    api_burst: u32,
    creation_delay: Duration,
    deletion_delay: Duration,
    /// The operator's first creation poll interval.
    poll: Duration,
    drift: Duration,
    steady_window: Duration,
    concurrency: u16,
    /// Objects of the memory scenario (0 skips it).
    m: usize,
    mem_create_rate: f64,
    mem_api_rate: f64,
    mem_concurrency: u16,
    mem_timeout: Duration,
    /// `restart` (the operator starts over M objects whose instances exist) or `create`
    /// (the operator creates the M instances).
    mem_mode: String,
    /// Pause between the operator's readiness and the first object.
    warmup: Duration,
    operator_log: String,
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
    fn from_env(full: bool) -> Self {
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
            m: env_parse("BENCH_M", pick(1000, 100)),
            mem_create_rate: env_parse("BENCH_MEM_CREATE_RATE", 50.0),
            mem_api_rate: env_parse("BENCH_MEM_API_RATE", 2000.0),
            mem_concurrency: env_parse("BENCH_MEM_CONCURRENCY", 8),
            mem_timeout: env_duration("BENCH_MEM_TIMEOUT", Duration::from_secs(420)),
            mem_mode: env_str("BENCH_MEM_MODE").unwrap_or_else(|| "restart".to_owned()),
            warmup: env_duration("BENCH_WARMUP", Duration::from_secs(pick(5, 2) as u64)),
            operator_log: env_str("BENCH_OPERATOR_LOG").unwrap_or_else(|| "info".to_owned()),
        }
    }

    fn print(&self) {
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
            ("BENCH_M", self.m.to_string()),
            (
                "BENCH_MEM_CREATE_RATE",
                format!("{}/s", self.mem_create_rate),
            ),
            ("BENCH_MEM_API_RATE", format!("{}/s", self.mem_api_rate)),
            ("BENCH_MEM_CONCURRENCY", self.mem_concurrency.to_string()),
            ("BENCH_MEM_TIMEOUT", fmt_dur(self.mem_timeout)),
            ("BENCH_MEM_MODE", self.mem_mode.clone()),
            ("BENCH_WARMUP", fmt_dur(self.warmup)),
            ("BENCH_OPERATOR_LOG", self.operator_log.clone()),
        ];
        for (name, value) in rows {
            println!("  {name:<24} {value}");
        }
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        println!("  (machine: {cpus} CPUs)");
    }
}

fn fmt_dur(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

// ---------------------------------------------------------------------------------------
// Figures and the summary table

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Ok,
    Miss,
    Info,
}

struct Figure {
    name: String,
    value: String,
    limit: String,
    ratio: Option<f64>,
    verdict: Verdict,
}

#[derive(Default)]
struct Report {
    figures: Vec<Figure>,
    /// Correctness violations and broken runs: each makes the exit status non-zero.
    failures: Vec<String>,
}

impl Report {
    fn add(
        &mut self,
        name: &str,
        value: impl Into<String>,
        limit: impl Into<String>,
        ratio: Option<f64>,
        verdict: Verdict,
    ) {
        let figure = Figure {
            name: name.to_owned(),
            value: value.into(),
            limit: limit.into(),
            ratio,
            verdict,
        };
        println!(
            "  => {}: {} (limit/target {}; ratio {}) {}",
            figure.name,
            figure.value,
            figure.limit,
            figure
                .ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
            verdict_word(figure.verdict)
        );
        self.figures.push(figure);
    }

    /// A count whose target is exactly `target` (a correctness target when `hard`).
    fn exact(&mut self, name: &str, value: usize, target: usize, hard: bool) {
        let ok = value == target;
        self.add(
            name,
            value.to_string(),
            format!("= {target}"),
            (target > 0).then(|| value as f64 / target as f64),
            if ok { Verdict::Ok } else { Verdict::Miss },
        );
        if hard && !ok {
            self.failures
                .push(format!("{name}: {value}, must be exactly {target}"));
        }
    }

    /// A count whose target is zero.
    fn zero(&mut self, name: &str, value: usize, hard: bool) {
        self.exact(name, value, 0, hard);
    }

    fn fail(&mut self, message: String) {
        println!("  !! {message}");
        self.failures.push(message);
    }

    fn print_summary(&self) {
        println!();
        println!("== summary ==");
        let width = |field: fn(&Figure) -> &str, header: usize| {
            self.figures
                .iter()
                .map(|f| field(f).len())
                .fold(header, usize::max)
        };
        let name_width = width(|f| f.name.as_str(), 6);
        let value_width = width(|f| f.value.as_str(), 5);
        let limit_width = width(|f| f.limit.as_str(), 13);
        println!(
            "| {:<name_width$} | {:>value_width$} | {:<limit_width$} | {:>6} |        |",
            "figure", "value", "limit/target", "ratio"
        );
        println!(
            "|{}|{}|{}|{}|--------|",
            "-".repeat(name_width + 2),
            "-".repeat(value_width + 2),
            "-".repeat(limit_width + 2),
            "-".repeat(8)
        );
        for f in &self.figures {
            let ratio = f
                .ratio
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
            println!(
                "| {:<name_width$} | {:>value_width$} | {:<limit_width$} | {:>6} | {:<6} |",
                f.name,
                f.value,
                f.limit,
                ratio,
                verdict_word(f.verdict)
            );
        }
        if self.failures.is_empty() {
            println!("\nno correctness violations; the run completed");
        } else {
            println!("\nFAILED ({}):", self.failures.len());
            for failure in &self.failures {
                println!("  - {failure}");
            }
        }
    }
}

fn verdict_word(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Ok => "ok",
        Verdict::Miss => "MISS",
        Verdict::Info => "info",
    }
}

/// Median, 95th percentile (nearest rank) and maximum.
#[derive(Clone, Copy, Debug, Default)]
struct Stats {
    count: usize,
    median: f64,
    p95: f64,
    max: f64,
}

fn stats(values: &[f64]) -> Stats {
    if values.is_empty() {
        return Stats::default();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |q: f64| {
        let index = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
        sorted[index]
    };
    Stats {
        count: sorted.len(),
        median: rank(0.5),
        p95: rank(0.95),
        max: sorted[sorted.len() - 1],
    }
}

impl Stats {
    fn text(&self) -> String {
        format!("{:.3}/{:.3}/{:.3} s", self.median, self.p95, self.max)
    }
}

// ---------------------------------------------------------------------------------------
// Time: one clock for the bench, the watch and the simulator's call log

/// Seconds since the bench started; the simulator's `elapsedMs` is mapped onto it.
#[derive(Clone, Copy)]
struct Clock {
    start: Instant,
}

impl Clock {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
}

// ---------------------------------------------------------------------------------------
// The simulator's call log and instances, with the fields the harness does not parse

type Call = SimCall;
type Instance = SimInstance;

/// Reads the simulator's log and maps its times onto the bench clock.
struct SimLog<'a> {
    sim: &'a Simulator,
    http: reqwest::Client,
    /// Bench time of the simulator's `elapsedMs = 0`.
    offset: f64,
}

impl<'a> SimLog<'a> {
    /// Synchronises the clocks with one unsigned ListInstances request (the simulator checks
    /// no signature): its `elapsedMs` against the middle of its round trip on our clock.
    async fn new(sim: &'a Simulator, clock: Clock) -> Self {
        let url = sim.url.as_str();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("HTTP client");
        let mut log = Self {
            sim,
            http,
            offset: 0.0,
        };
        let mut best: Option<(f64, f64)> = None;
        for _ in 0..3 {
            let sent = clock.now();
            let response = log
                .http
                .get(format!("{url}/instance?maxResults=1"))
                .send()
                .await
                .expect("clock-sync ListInstances");
            let received = clock.now();
            assert!(
                response.status().is_success(),
                "clock-sync ListInstances answered {}",
                response.status()
            );
            let calls = log.calls().await;
            let last = calls
                .iter()
                .rev()
                .find(|call| call.operation == "ListInstances")
                .expect("the clock-sync call is in the log");
            let rtt = received - sent;
            let offset = (sent + received) / 2.0 - last.elapsed_ms as f64 / 1000.0;
            if best.is_none_or(|(best_rtt, _)| rtt < best_rtt) {
                best = Some((rtt, offset));
            }
        }
        let (rtt, offset) = best.expect("three samples");
        log.offset = offset;
        println!(
            "  simulator clock synchronised (round trip {:.1} ms)",
            rtt * 1000.0
        );
        log
    }

    async fn calls(&self) -> Vec<Call> {
        self.sim.calls().await
    }

    async fn instances(&self) -> Vec<Instance> {
        self.sim.instances().await
    }

    fn time(&self, call: &Call) -> f64 {
        call.elapsed_ms as f64 / 1000.0 + self.offset
    }
}

/// Calls per operation, with throttled and failed ones, as one line per operation.
fn print_calls_by_operation(calls: &[&Call]) {
    let mut by_operation: BTreeMap<&str, (usize, usize, usize, usize)> = BTreeMap::new();
    for call in calls {
        let entry = by_operation.entry(&call.operation).or_default();
        entry.0 += 1;
        if call.status == 429 {
            entry.1 += 1;
        } else if !call.succeeded() {
            entry.2 += 1;
        }
        if call.replay {
            entry.3 += 1;
        }
    }
    println!("  calls by operation (total / 429 / other errors / token replays):");
    for (operation, (total, throttled, errors, replays)) in by_operation {
        println!("    {operation:<26} {total:>7} {throttled:>5} {errors:>5} {replays:>5}");
    }
}

// ---------------------------------------------------------------------------------------
// Watching the objects and the Events of one namespace

#[derive(Clone, Debug, Default)]
struct Tracked {
    uid: String,
    resource_version: String,
    ready_at: Option<f64>,
    gone_at: Option<f64>,
    instance_id: Option<String>,
}

#[derive(Default)]
struct WatchLog {
    objects: HashMap<String, Tracked>,
    /// (time, object name) of every new resourceVersion of an object: each is a write.
    object_writes: Vec<(f64, String)>,
    /// Times of every new resourceVersion of an Event in the namespace.
    event_writes: Vec<f64>,
    seen_event_versions: HashSet<(String, String)>,
}

impl WatchLog {
    fn saw_object(&mut self, object: &DynamicObject, at: f64) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let version = object.metadata.resource_version.clone().unwrap_or_default();
        let tracked = self.objects.entry(name.clone()).or_default();
        if tracked.resource_version == version {
            return;
        }
        tracked.resource_version = version;
        tracked.uid = object.metadata.uid.clone().unwrap_or_default();
        if tracked.ready_at.is_none() && connect::is_true(object, "Ready", None) {
            tracked.ready_at = Some(at);
        }
        if let Some(id) = connect::status_str(object, "instanceId") {
            tracked.instance_id = Some(id);
        }
        self.object_writes.push((at, name));
    }

    fn object_gone(&mut self, object: &DynamicObject, at: f64) {
        let name = object.metadata.name.clone().unwrap_or_default();
        let tracked = self.objects.entry(name.clone()).or_default();
        tracked.gone_at.get_or_insert(at);
        self.object_writes.push((at, name));
    }

    fn saw_event(&mut self, event: &KubeEvent, at: f64) {
        let key = (
            event.metadata.uid.clone().unwrap_or_default(),
            event.metadata.resource_version.clone().unwrap_or_default(),
        );
        if self.seen_event_versions.insert(key) {
            self.event_writes.push(at);
        }
    }
}

/// Aborts the watch tasks when dropped.
struct Watch {
    log: Arc<Mutex<WatchLog>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Watch {
    fn start(client: &kube::Client, namespace: &str, clock: Clock) -> Self {
        let log = Arc::new(Mutex::new(WatchLog::default()));
        let objects = connect::api(client, namespace);
        let object_log = Arc::clone(&log);
        let object_task = tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(objects, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let at = clock.now();
                let mut log = object_log.lock().unwrap();
                match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                        log.saw_object(&object, at);
                    }
                    Ok(watcher::Event::Delete(object)) => log.object_gone(&object, at),
                    Ok(_) => {}
                    Err(error) => eprintln!("object watch: {error}"),
                }
            }
        });
        let events: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
        let event_log = Arc::clone(&log);
        let event_task = tokio::spawn(async move {
            let mut stream =
                std::pin::pin!(watcher(events, watcher::Config::default()).default_backoff());
            while let Some(event) = stream.next().await {
                let at = clock.now();
                match event {
                    Ok(watcher::Event::Apply(event) | watcher::Event::InitApply(event)) => {
                        event_log.lock().unwrap().saw_event(&event, at);
                    }
                    Ok(_) => {}
                    Err(error) => eprintln!("event watch: {error}"),
                }
            }
        });
        Self {
            log,
            tasks: vec![object_task, event_task],
        }
    }

    fn tracked(&self, name: &str) -> Tracked {
        self.log
            .lock()
            .unwrap()
            .objects
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Object writes and Event writes with `from <= time < to`.
    fn writes_between(&self, from: f64, to: f64) -> (Vec<String>, usize) {
        let log = self.log.lock().unwrap();
        let objects = log
            .object_writes
            .iter()
            .filter(|(at, _)| (from..to).contains(at))
            .map(|(_, name)| name.clone())
            .collect();
        let events = log
            .event_writes
            .iter()
            .filter(|at| (from..to).contains(*at))
            .count();
        (objects, events)
    }

    /// Waits until every named object has been seen Ready; `Err` lists the others.
    async fn wait_ready(&self, names: &[String], timeout: Duration) -> Result<(), Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing: Vec<String> = {
                let log = self.log.lock().unwrap();
                names
                    .iter()
                    .filter(|name| log.objects.get(*name).is_none_or(|t| t.ready_at.is_none()))
                    .cloned()
                    .collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(missing);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Objects

struct Applied {
    name: String,
    uid: String,
    /// Bench time just before the create request was sent.
    applied_at: f64,
}

fn manifest(name: &str, alias: &str) -> Value {
    connect::manifest(
        name,
        json!({
            "identityManagementType": "CONNECT_MANAGED",
            "instanceAlias": alias,
            "inboundCallsEnabled": true,
            "outboundCallsEnabled": true,
            // Both differ from a new instance's defaults: converging writes two attributes.
            "attributes": { "contactflowLogs": true, "contactLens": true },
            "tags": { "team": "benchmark", "cost-center": "42" },
        }),
    )
}

/// Creates the objects `prefix-0000 ...` through the API, `parallel` requests at a time.
async fn apply_objects(
    api: &Api<DynamicObject>,
    clock: Clock,
    prefix: &str,
    range: std::ops::Range<usize>,
    parallel: usize,
) -> Vec<Applied> {
    futures::stream::iter(range)
        .map(|i| async move {
            let name = format!("{prefix}-{i:04}");
            let alias = format!("{prefix}-{i:04}");
            let applied_at = clock.now();
            let object = connect::create(api, &manifest(&name, &alias))
                .await
                .unwrap_or_else(|error| panic!("creating {name}: {error}"));
            Applied {
                uid: connect::uid(&object),
                name,
                applied_at,
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await
}

async fn remaining_objects(api: &Api<DynamicObject>) -> Vec<DynamicObject> {
    api.list(&ListParams::default())
        .await
        .expect("listing objects")
        .items
}

fn describe_stuck(objects: &[DynamicObject]) -> String {
    objects
        .iter()
        .take(5)
        .map(|object| {
            format!(
                "{}: {}",
                object.metadata.name.as_deref().unwrap_or("?"),
                connect::describe(object)
            )
        })
        .collect::<Vec<_>>()
        .join("\n    ")
}

// ---------------------------------------------------------------------------------------
// Operator metrics and memory

/// Sum of every sample of a metric family (`name` or `name{...}`).
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let value = if rest.starts_with('{') {
                rest.split_once("} ")?.1
            } else {
                rest.strip_prefix(' ')?
            };
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// `(VmRSS, VmHWM)` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|error| panic!("reading /proc/{pid}/status: {error}"));
    let field = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------
// Setting up one simulator + operator pair

async fn start_simulator(
    dir: &Path,
    quota: usize,
    lifecycle: (f64, u32),
    others: Option<(f64, u32)>,
    creation_delay: Duration,
    deletion_delay: Duration,
) -> Simulator {
    let simulator = Simulator::start(dir, &[]);
    let operations = [
        "DescribeInstance",
        "ListInstances",
        "UpdateInstanceAttribute",
        "DescribeInstanceAttribute",
        "ListInstanceAttributes",
        "TagResource",
        "UntagResource",
        "ListTagsForResource",
    ];
    let mut rates = BTreeMap::new();
    let mut bursts = BTreeMap::new();
    for operation in ["CreateInstance", "DeleteInstance"] {
        rates.insert(operation.to_owned(), Some(lifecycle.0));
        bursts.insert(operation.to_owned(), lifecycle.1);
    }
    for operation in operations {
        match others {
            Some((rate, burst)) => {
                rates.insert(operation.to_owned(), Some(rate));
                bursts.insert(operation.to_owned(), burst);
            }
            None => {
                rates.insert(operation.to_owned(), None);
            }
        }
    }
    simulator
        .set_config(&ConfigPatch {
            creation_delay_ms: Some(creation_delay.as_millis() as u64),
            deletion_delay_ms: Some(deletion_delay.as_millis() as u64),
            instance_quota: Some(u32::try_from(quota).unwrap_or(u32::MAX)),
            lifecycle_attempt_limit: Some(1_000_000),
            rate_limits: Some(rates),
            rate_bursts: Some(bursts),
            ..ConfigPatch::default()
        })
        .await;
    simulator
}

async fn start_operator(
    dir: &Path,
    namespace: &str,
    simulator: &Simulator,
    flags: &[(&str, String)],
    log_level: &str,
) -> OperatorProcess {
    let mut options = OperatorOptions::new(namespace, &simulator.url);
    // The production defaults, not the harness's fast test values, for everything the
    // scenario does not set itself.
    for (name, value) in [
        ("error-backoff", "2s"),
        ("error-backoff-max", "5m"),
        ("aws-timeout", "30s"),
        ("quota-retry-interval", "2h"),
        ("access-denied-retry-interval", "5m"),
    ] {
        options = options.flag(name, value);
    }
    for (name, value) in flags {
        options = options.flag(name, value);
    }
    // Later entries win over the harness's debug default.
    options
        .envs
        .push(("RUST_LOG".to_owned(), log_level.to_owned()));
    OperatorProcess::start(dir, options).await
}

// ---------------------------------------------------------------------------------------
// Scenarios 1, 2 and 4: probes, throughput, steady state, deletion

async fn lifecycle_scenarios(params: &Params, clock: Clock, report: &mut Report) {
    let client = test_kit::client().await;
    let namespace = TestNamespace::create(&client, "bench").await;
    let dir = test_kit::simulator::log_dir("bench-scale-lifecycle");
    println!("  logs: {}", dir.display());
    let api = connect::api(&client, &namespace.name);
    let total = params.n + params.probes;
    let simulator = start_simulator(
        &dir,
        total + 10,
        (params.create_rate, params.create_burst),
        Some((params.api_rate, params.api_burst)),
        params.creation_delay,
        params.deletion_delay,
    )
    .await;
    let sim = SimLog::new(&simulator, clock).await;
    let sync_seq = sim.calls().await.iter().map(|c| c.seq).max().unwrap_or(0);
    let watch = Watch::start(&client, &namespace.name, clock);
    let operator = start_operator(
        &dir,
        &namespace.name,
        &simulator,
        &[
            ("create-delete-rate", params.create_rate.to_string()),
            ("api-rate", params.api_rate.to_string()),
            ("drift-interval", fmt_dur(params.drift)),
            ("creation-poll-interval", fmt_dur(params.poll)),
            ("concurrency", params.concurrency.to_string()),
        ],
        &params.operator_log,
    )
    .await;
    println!("  operator pid {:?}", operator.pid());
    // The first watch event after the operator's initial list comes late (see
    // docs/benchmarks.md); the probes measure an operator that is up and running.
    tokio::time::sleep(params.warmup).await;
    let poll = params.poll.as_secs_f64();
    let delay = params.creation_delay.as_secs_f64();
    let latency_limit = 1.0 + poll;

    // -- latency probes: one object at a time, idle operator ------------------------
    println!("\n== latency probes: {} single objects ==", params.probes);
    let mut probes: Vec<Applied> = Vec::new();
    for i in 0..params.probes {
        let applied = apply_objects(&api, clock, "probe", i..i + 1, 1).await;
        let names: Vec<String> = applied.iter().map(|a| a.name.clone()).collect();
        if let Err(missing) = watch
            .wait_ready(&names, params.creation_delay + Duration::from_secs(60))
            .await
        {
            let stuck = remaining_objects(&api).await;
            panic!(
                "probe {missing:?} never became Ready:\n    {}\n{}",
                describe_stuck(&stuck),
                operator.log_tail(40)
            );
        }
        probes.extend(applied);
        // Let the CreateInstance bucket refill, so the next probe never waits for it.
        tokio::time::sleep(Duration::from_secs_f64(1.5 / params.create_rate)).await;
    }
    let calls = sim.calls().await;
    let mut first_call = Vec::new();
    let mut apply_to_create = Vec::new();
    let mut active_to_ready = Vec::new();
    for probe in &probes {
        let tracked = watch.tracked(&probe.name);
        let create_token = token::create_token(&probe.uid);
        let instance_id = tracked.instance_id.clone();
        let first = calls
            .iter()
            .filter(|call| call.seq > sync_seq && sim.time(call) >= probe.applied_at - 0.002)
            .find(|call| {
                call.operation == "ListInstances"
                    || call.client_token.as_deref() == Some(create_token.as_str())
                    || (instance_id.is_some() && call.instance_id == instance_id)
            });
        let create = calls.iter().find(|call| {
            call.operation == "CreateInstance"
                && call.succeeded()
                && call.client_token.as_deref() == Some(create_token.as_str())
        });
        let mut line = format!("  {}:", probe.name);
        if let Some(first) = first {
            first_call.push(sim.time(first) - probe.applied_at);
            line += &format!(
                " first call {} after {:.3} s;",
                first.operation,
                sim.time(first) - probe.applied_at
            );
        }
        if let Some(create) = create {
            apply_to_create.push(sim.time(create) - probe.applied_at);
            line += &format!(
                " CreateInstance after {:.3} s;",
                sim.time(create) - probe.applied_at
            );
            if let Some(ready_at) = tracked.ready_at {
                active_to_ready.push(ready_at - (sim.time(create) + delay));
                line += &format!(
                    " Ready {:.3} s after ACTIVE",
                    ready_at - (sim.time(create) + delay)
                );
            }
        }
        println!("{line}");
    }
    let first_stats = stats(&first_call);
    println!(
        "  apply -> first AWS call, median/p95/max: {} ({} probes)",
        first_stats.text(),
        first_stats.count
    );
    println!(
        "  apply -> CreateInstance, median/p95/max: {}",
        stats(&apply_to_create).text()
    );
    let probe_ready = stats(&active_to_ready);
    println!(
        "  ACTIVE -> Ready seen, median/p95/max: {}",
        probe_ready.text()
    );
    if params.probes > 0 {
        report.add(
            "probe: apply -> first AWS call (p95)",
            format!("{:.3} s", first_stats.p95),
            format!("< 1 s + poll = {latency_limit:.1} s"),
            Some(first_stats.p95 / latency_limit),
            if first_stats.p95 < latency_limit {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
        report.add(
            "probe: ACTIVE -> Ready (p95)",
            format!("{:.3} s", probe_ready.p95),
            format!("< 1 s + poll = {latency_limit:.1} s"),
            Some(probe_ready.p95 / latency_limit),
            if probe_ready.p95 < latency_limit {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
    }

    // -- scenario 1: N objects at once ---------------------------------------------
    println!(
        "\n== scenario 1: creation throughput, {} objects applied at once, CreateInstance {}/s ==",
        params.n, params.create_rate
    );
    let metrics_before = operator.metrics().await;
    let seq_before = sim.calls().await.iter().map(|c| c.seq).max().unwrap_or(0);
    let t0 = clock.now();
    let bulk = apply_objects(&api, clock, "bulk", 0..params.n, 16).await;
    let applied_in = clock.now() - t0;
    println!("  applied {} objects in {applied_in:.2} s", bulk.len());
    let names: Vec<String> = bulk.iter().map(|a| a.name.clone()).collect();
    // A full bucket lets `burst` creates go at once; the rest come 1/R apart.
    let burst = params.create_burst.max(1) as usize;
    let ideal = (params.n.saturating_sub(burst)) as f64 / params.create_rate + delay;
    let timeout = Duration::from_secs_f64(ideal * 4.0 + 120.0);
    if let Err(missing) = watch.wait_ready(&names, timeout).await {
        let stuck: Vec<DynamicObject> = remaining_objects(&api)
            .await
            .into_iter()
            .filter(|o| missing.contains(o.metadata.name.as_ref().unwrap()))
            .collect();
        panic!(
            "{} of {} objects not Ready after {timeout:?}:\n    {}\n{}",
            missing.len(),
            params.n,
            describe_stuck(&stuck),
            operator.log_tail(40)
        );
    }
    let all_ready = bulk
        .iter()
        .filter_map(|a| watch.tracked(&a.name).ready_at)
        .fold(t0, f64::max);
    let metrics_after = operator.metrics().await;
    let calls = sim.calls().await;
    let window: Vec<&Call> = calls
        .iter()
        .filter(|call| call.seq > seq_before && sim.time(call) <= all_ready + 0.5)
        .collect();
    print_calls_by_operation(&window);

    let token_owner: HashMap<String, &Applied> = bulk
        .iter()
        .map(|a| (token::create_token(&a.uid), a))
        .collect();
    let creates: Vec<&Call> = calls
        .iter()
        .filter(|call| call.operation == "CreateInstance")
        .filter(|call| {
            call.client_token
                .as_ref()
                .is_some_and(|t| token_owner.contains_key(t))
        })
        .collect();
    let accepted: Vec<&&Call> = creates
        .iter()
        .filter(|c| c.succeeded() && !c.replay)
        .collect();
    let replays = creates.iter().filter(|c| c.succeeded() && c.replay).count();
    let throttled_creates = creates.iter().filter(|c| c.status == 429).count();
    let mut per_token: HashMap<&str, usize> = HashMap::new();
    for call in &accepted {
        *per_token
            .entry(call.client_token.as_deref().unwrap_or_default())
            .or_default() += 1;
    }
    let duplicated = per_token.values().filter(|count| **count > 1).count();
    let mut create_times: Vec<f64> = accepted.iter().map(|c| sim.time(c)).collect();
    create_times.sort_by(f64::total_cmp);
    let achieved = if create_times.len() >= 2 {
        (create_times.len() - 1) as f64
            / (create_times[create_times.len() - 1] - create_times[0]).max(1e-9)
    } else {
        0.0
    };
    let throttled_all = window.iter().filter(|c| c.status == 429).count();
    let lists = window
        .iter()
        .filter(|c| c.operation == "ListInstances")
        .count();
    println!(
        "  CreateInstance: {} calls, {} accepted, {} token replays, {} throttled (429)",
        creates.len(),
        accepted.len(),
        replays,
        throttled_creates
    );
    println!(
        "  first/last accepted CreateInstance at +{:.2}/+{:.2} s after the apply",
        create_times.first().map_or(0.0, |t| t - t0),
        create_times.last().map_or(0.0, |t| t - t0)
    );
    println!(
        "  client-side rate-limiter waits (operator /metrics): CreateInstance {}, ListInstances {}, all {}",
        metric_delta_labeled(
            &metrics_before,
            &metrics_after,
            "connect_operator_rate_limiter_waits_total",
            "CreateInstance"
        ),
        metric_delta_labeled(
            &metrics_before,
            &metrics_after,
            "connect_operator_rate_limiter_waits_total",
            "ListInstances"
        ),
        metric_sum(&metrics_after, "connect_operator_rate_limiter_waits_total")
            - metric_sum(&metrics_before, "connect_operator_rate_limiter_waits_total"),
    );
    println!(
        "  status patches during creation: {} ({:.1} per object)",
        metric_sum(&metrics_after, "connect_operator_status_patches_total")
            - metric_sum(&metrics_before, "connect_operator_status_patches_total"),
        (metric_sum(&metrics_after, "connect_operator_status_patches_total")
            - metric_sum(&metrics_before, "connect_operator_status_patches_total"))
            / params.n.max(1) as f64
    );

    let mut bulk_apply_to_create = Vec::new();
    let mut bulk_active_to_ready = Vec::new();
    let mut slowest: Option<(f64, &Applied, f64)> = None;
    for call in &accepted {
        let owner = token_owner[call.client_token.as_deref().unwrap_or_default()];
        bulk_apply_to_create.push(sim.time(call) - owner.applied_at);
        if let Some(ready_at) = watch.tracked(&owner.name).ready_at {
            let active_at = sim.time(call) + delay;
            bulk_active_to_ready.push(ready_at - active_at);
            if slowest.is_none_or(|(worst, _, _)| ready_at - active_at > worst) {
                slowest = Some((ready_at - active_at, owner, active_at));
            }
        }
    }
    if let Some((latency, owner, active_at)) = slowest {
        // Where the time went: this object's calls around ACTIVE.
        let id = watch.tracked(&owner.name).instance_id;
        let polls: Vec<String> = calls
            .iter()
            .filter(|c| c.operation == "DescribeInstance" && id.is_some() && c.instance_id == id)
            .map(|c| format!("{:+.2}", sim.time(c) - active_at))
            .take(8)
            .collect();
        println!(
            "  slowest ACTIVE -> Ready: {} {latency:.2} s; its DescribeInstance calls at [{}] s relative to ACTIVE",
            owner.name,
            polls.join(", ")
        );
    }
    let bulk_create_stats = stats(&bulk_apply_to_create);
    let bulk_ready_stats = stats(&bulk_active_to_ready);
    println!(
        "  apply -> CreateInstance, median/p95/max: {} (queued behind the rate limit: the k-th create cannot come before k/R)",
        bulk_create_stats.text()
    );
    println!(
        "  ACTIVE -> Ready seen, median/p95/max: {}",
        bulk_ready_stats.text()
    );

    report.add(
        "1: CreateInstance rate achieved",
        format!("{achieved:.3}/s"),
        format!("= R = {}/s", params.create_rate),
        Some(achieved / params.create_rate),
        if achieved >= 0.9 * params.create_rate {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    let took = all_ready - t0;
    report.add(
        "1: time to all Ready",
        format!("{took:.1} s"),
        format!(">= (N-b)/R + delay = {ideal:.1} s"),
        Some(took / ideal.max(1e-9)),
        Verdict::Info,
    );
    report.exact("1: CreateInstance accepted", accepted.len(), params.n, true);
    report.zero("1: objects with >1 accepted create", duplicated, true);
    report.add(
        "1: CreateInstance token replays",
        replays.to_string(),
        "0 expected",
        None,
        if replays == 0 {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.zero("1: 429 responses (all operations)", throttled_all, false);
    report.add(
        "1: ListInstances calls per object",
        format!("{:.1}", lists as f64 / params.n.max(1) as f64),
        format!(
            "pages of 10: >= {:.1}",
            min_list_pages(params.probes, params.n) as f64 / params.n.max(1) as f64
        ),
        Some(lists as f64 / min_list_pages(params.probes, params.n).max(1) as f64),
        Verdict::Info,
    );
    report.add(
        "1: apply -> CreateInstance, queued (p95)",
        format!("{:.3} s", bulk_create_stats.p95),
        format!("queue bound (N-b)/R = {:.1} s", ideal - delay),
        Some(bulk_create_stats.p95 / (ideal - delay).max(1e-9)),
        Verdict::Info,
    );
    report.add(
        "1: ACTIVE -> Ready under load (p95)",
        format!("{:.3} s", bulk_ready_stats.p95),
        format!("< 1 s + poll = {latency_limit:.1} s"),
        Some(bulk_ready_stats.p95 / latency_limit),
        if bulk_ready_stats.p95 < latency_limit {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    let sim_instances = sim.instances().await;
    let ours = sim_instances.len();
    if ours != total {
        report.fail(format!(
            "the simulator holds {ours} instances for {total} objects"
        ));
    }

    // -- scenario 2: steady state ---------------------------------------------------
    println!(
        "\n== scenario 2: steady state, {} Ready objects, drift interval {}, window {} ==",
        total,
        fmt_dur(params.drift),
        fmt_dur(params.steady_window)
    );
    // The last Ready writes must be in before the window opens.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let metrics_before = operator.metrics().await;
    let seq_before = sim.calls().await.iter().map(|c| c.seq).max().unwrap_or(0);
    let window_start = clock.now();
    tokio::time::sleep(params.steady_window).await;
    let window_end = clock.now();
    let metrics_after = operator.metrics().await;
    let calls = sim.calls().await;
    let (object_writes, event_writes) = watch.writes_between(window_start, window_end);
    let status_patches = metric_sum(&metrics_after, "connect_operator_status_patches_total")
        - metric_sum(&metrics_before, "connect_operator_status_patches_total");
    let reconciles = metric_sum(&metrics_after, "connect_operator_reconciles_total")
        - metric_sum(&metrics_before, "connect_operator_reconciles_total");
    let in_window: Vec<&Call> = calls
        .iter()
        .filter(|c| c.seq > seq_before && sim.time(c) < window_end)
        .collect();
    print_calls_by_operation(&in_window);
    let window_secs = window_end - window_start;
    let drift = params.drift.as_secs_f64();
    let intervals = window_secs / drift;
    let describes = in_window
        .iter()
        .filter(|c| c.operation == "DescribeInstance")
        .count();
    let per_instance_per_interval = describes as f64 / total.max(1) as f64 / intervals;
    let all_per_instance_per_interval = in_window.len() as f64 / total.max(1) as f64 / intervals;
    // The shortest gap between two DescribeInstance calls of one instance once it was Ready.
    let ready_since: HashMap<String, f64> = {
        let log = watch.log.lock().unwrap();
        log.objects
            .values()
            .filter_map(|t| Some((t.instance_id.clone()?, t.ready_at?)))
            .collect()
    };
    let mut by_instance: HashMap<&str, Vec<f64>> = HashMap::new();
    for call in calls.iter().filter(|c| c.operation == "DescribeInstance") {
        let Some(id) = call.instance_id.as_deref() else {
            continue;
        };
        if ready_since
            .get(id)
            .is_some_and(|ready| sim.time(call) > *ready)
        {
            by_instance.entry(id).or_default().push(sim.time(call));
        }
    }
    let min_gap = by_instance
        .values()
        .flat_map(|times| times.windows(2).map(|pair| pair[1] - pair[0]))
        .fold(f64::INFINITY, f64::min);
    println!(
        "  reconciles {reconciles}, status patches {status_patches}, object writes seen {}, Event writes seen {event_writes}",
        object_writes.len()
    );
    if !object_writes.is_empty() {
        let distinct: HashSet<&String> = object_writes.iter().collect();
        println!(
            "  objects written during the window: {} distinct, e.g. {:?}",
            distinct.len(),
            distinct.iter().take(5).collect::<Vec<_>>()
        );
    }
    println!(
        "  DescribeInstance: {describes} in {window_secs:.1} s = {per_instance_per_interval:.2} per instance per drift interval; shortest gap for one instance {:.1} s ({:.2} D)",
        min_gap,
        min_gap / drift
    );
    report.zero(
        "2: Kubernetes writes (objects + Events)",
        object_writes.len() + event_writes,
        false,
    );
    report.zero(
        "2: status patches (/metrics)",
        status_patches as usize,
        false,
    );
    report.add(
        "2: DescribeInstance / instance / drift interval",
        format!("{per_instance_per_interval:.2}"),
        "<= 1",
        Some(per_instance_per_interval),
        // ±20% jitter makes the mean 1.0 with sampling noise; 1.1 allows for that noise.
        if per_instance_per_interval <= 1.1 {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    if min_gap.is_finite() {
        report.add(
            "2: shortest DescribeInstance gap / drift interval",
            format!("{:.2}", min_gap / drift),
            ">= 0.8 (jitter floor)",
            Some(min_gap / drift / 0.8),
            if min_gap / drift >= 0.79 {
                Verdict::Ok
            } else {
                Verdict::Miss
            },
        );
    }
    report.add(
        "2: all AWS calls / instance / drift interval",
        format!("{all_per_instance_per_interval:.2}"),
        "info (Describe + attribute pages)",
        None,
        Verdict::Info,
    );

    // -- scenario 4: deletion --------------------------------------------------------
    println!("\n== scenario 4: deletion of all {total} objects at once ==");
    let seq_before = sim.calls().await.iter().map(|c| c.seq).max().unwrap_or(0);
    let everything: Vec<&Applied> = probes.iter().chain(bulk.iter()).collect();
    let t_delete = clock.now();
    futures::stream::iter(everything.iter())
        .map(|applied| {
            let api = api.clone();
            async move {
                api.delete(&applied.name, &DeleteParams::default())
                    .await
                    .unwrap_or_else(|error| panic!("deleting {}: {error}", applied.name));
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let ideal_delete = (total.saturating_sub(params.create_burst.max(1) as usize)) as f64
        / params.create_rate
        + params.deletion_delay.as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs_f64(ideal_delete * 4.0 + 120.0);
    let mut stuck = remaining_objects(&api).await;
    while !stuck.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        stuck = remaining_objects(&api).await;
    }
    let gone_at: Vec<f64> = everything
        .iter()
        .filter_map(|a| watch.tracked(&a.name).gone_at)
        .collect();
    let all_gone = gone_at.iter().copied().fold(t_delete, f64::max);
    let calls = sim.calls().await;
    let after: Vec<&Call> = calls.iter().filter(|c| c.seq > seq_before).collect();
    print_calls_by_operation(&after);
    let delete_owner: HashSet<String> = everything
        .iter()
        .map(|a| token::delete_token(&a.uid))
        .collect();
    let deletes: Vec<&&Call> = after
        .iter()
        .filter(|c| c.operation == "DeleteInstance")
        .collect();
    let accepted_deletes = deletes
        .iter()
        .filter(|c| c.succeeded() && !c.replay)
        .count();
    let foreign_tokens = deletes
        .iter()
        .filter(|c| {
            c.client_token
                .as_ref()
                .is_none_or(|t| !delete_owner.contains(t))
        })
        .count();
    let mut delete_times: Vec<f64> = deletes
        .iter()
        .filter(|c| c.succeeded() && !c.replay)
        .map(|c| sim.time(c))
        .collect();
    delete_times.sort_by(f64::total_cmp);
    let delete_rate = if delete_times.len() >= 2 {
        (delete_times.len() - 1) as f64
            / (delete_times[delete_times.len() - 1] - delete_times[0]).max(1e-9)
    } else {
        0.0
    };
    let throttled = after.iter().filter(|c| c.status == 429).count();
    let left = sim.instances().await;
    println!(
        "  DeleteInstance: {} calls, {accepted_deletes} accepted, {} throttled; {foreign_tokens} without a UID-derived token",
        deletes.len(),
        deletes.iter().filter(|c| c.status == 429).count()
    );
    for instance in left.iter().take(5) {
        println!(
            "  left behind: {} {:?} {} deleting={} tags={:?}",
            instance.id, instance.alias, instance.status, instance.deleting, instance.tags
        );
    }
    if stuck.is_empty() {
        report.add(
            "4: time until all objects gone",
            format!("{:.1} s", all_gone - t_delete),
            format!(">= (n-b)/R + delay = {ideal_delete:.1} s"),
            Some((all_gone - t_delete) / ideal_delete.max(1e-9)),
            Verdict::Info,
        );
    } else {
        println!("  stuck:\n    {}", describe_stuck(&stuck));
    }
    report.add(
        "4: DeleteInstance rate achieved",
        format!("{delete_rate:.3}/s"),
        format!("= R = {}/s", params.create_rate),
        Some(delete_rate / params.create_rate),
        if delete_rate >= 0.9 * params.create_rate {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.exact("4: DeleteInstance accepted", accepted_deletes, total, true);
    report.zero("4: instances left in the simulator", left.len(), true);
    report.zero("4: objects stuck with the finalizer", stuck.len(), true);
    report.zero("4: 429 responses (all operations)", throttled, false);
    report.zero("4: DeleteInstance without UID token", foreign_tokens, true);

    drop(watch);
    drop(operator);
    drop(simulator);
}

/// The fewest ListInstances pages the probes and N bulk creations need: one listing before
/// each create, of every instance existing then (pages of 10).
fn min_list_pages(existing: usize, n: usize) -> usize {
    (0..n).map(|k| (existing + k).div_ceil(10).max(1)).sum()
}

fn metric_delta_labeled(before: &str, after: &str, name: &str, operation: &str) -> f64 {
    let pick = |text: &str| {
        text.lines()
            .filter(|line| line.starts_with(name) && line.contains(&format!("\"{operation}\"")))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    pick(after) - pick(before)
}

// ---------------------------------------------------------------------------------------
// Scenario 3: memory

async fn memory_scenario(params: &Params, clock: Clock, report: &mut Report) {
    println!(
        "\n== scenario 3: memory with {} objects (fresh simulator and operator, mode {}) ==",
        params.m, params.mem_mode
    );
    let client = test_kit::client().await;
    let namespace = TestNamespace::create(&client, "bench-mem").await;
    let dir = test_kit::simulator::log_dir("bench-scale-memory");
    println!("  logs: {}", dir.display());
    let api = connect::api(&client, &namespace.name);
    let create_burst = params.mem_create_rate.ceil().max(1.0) as u32;
    let simulator = start_simulator(
        &dir,
        params.m + 10,
        (params.mem_create_rate, create_burst),
        None,
        Duration::from_secs(1),
        params.deletion_delay,
    )
    .await;
    let sim = SimLog::new(&simulator, clock).await;
    let sync_seq = sim.calls().await.iter().map(|c| c.seq).max().unwrap_or(0);
    let watch = Watch::start(&client, &namespace.name, clock);
    let flags = [
        ("create-delete-rate", params.mem_create_rate.to_string()),
        ("api-rate", params.mem_api_rate.to_string()),
        // Quiet once Ready: the figure is memory at rest.
        ("drift-interval", "10m".to_owned()),
        ("creation-poll-interval", fmt_dur(params.poll)),
        ("concurrency", params.mem_concurrency.to_string()),
    ];
    let restart = match params.mem_mode.as_str() {
        "restart" => true,
        "create" => false,
        other => panic!("BENCH_MEM_MODE={other:?}: expected restart or create"),
    };

    let (operator, baseline, objects, t0) = if restart {
        // The state an operator finds when it restarts: every object carries the id of the
        // instance created for it, and the instance carries the object's uid tag. A first
        // operator on an empty namespace gives the baseline; then the one measured starts
        // over the M objects.
        let empty = TestNamespace::create(&client, "bench-mem-empty").await;
        let probe_dir = dir.join("baseline");
        std::fs::create_dir_all(&probe_dir).expect("baseline log directory");
        let idle = start_operator(
            &probe_dir,
            &empty.name,
            &simulator,
            &flags,
            &params.operator_log,
        )
        .await;
        tokio::time::sleep(params.warmup).await;
        let (baseline, _) = memory_kib(idle.pid().expect("operator running"));
        drop(idle);
        println!("  RSS with 0 objects: {:.1} MiB", mib(baseline));

        let t_setup = clock.now();
        let objects = apply_objects(&api, clock, "mem", 0..params.m, 32).await;
        futures::stream::iter(objects.iter())
            .map(|object| {
                let api = api.clone();
                let simulator = &simulator;
                async move {
                    let instance = simulator
                        .insert_instance(
                            &object.name,
                            &[
                                ("team", "benchmark"),
                                ("cost-center", "42"),
                                (connect::UID_TAG, &object.uid),
                            ],
                        )
                        .await;
                    api.patch_status(
                        &object.name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(json!({
                            "status": {
                                "instanceId": instance.id,
                                "arn": instance.arn,
                                "region": "us-east-1",
                            }
                        })),
                    )
                    .await
                    .unwrap_or_else(|error| {
                        panic!("recording the instance of {}: {error}", object.name)
                    });
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<()>>()
            .await;
        println!(
            "  {} objects with their instances in place after {:.1} s; starting the operator over them",
            objects.len(),
            clock.now() - t_setup
        );
        let t0 = clock.now();
        let operator = start_operator(
            &dir,
            &namespace.name,
            &simulator,
            &flags,
            &params.operator_log,
        )
        .await;
        (operator, baseline, objects, t0)
    } else {
        let operator = start_operator(
            &dir,
            &namespace.name,
            &simulator,
            &flags,
            &params.operator_log,
        )
        .await;
        tokio::time::sleep(params.warmup).await;
        let (baseline, _) = memory_kib(operator.pid().expect("operator running"));
        println!("  RSS with 0 objects: {:.1} MiB", mib(baseline));
        let t0 = clock.now();
        let objects = apply_objects(&api, clock, "mem", 0..params.m, 32).await;
        println!(
            "  applied {} objects in {:.1} s",
            objects.len(),
            clock.now() - t0
        );
        (operator, baseline, objects, t0)
    };
    let pid = operator.pid().expect("operator running");
    let names: Vec<String> = objects.iter().map(|a| a.name.clone()).collect();
    let mut last_report = Instant::now();
    let deadline = Instant::now() + params.mem_timeout;
    loop {
        match watch.wait_ready(&names, Duration::from_secs(10)).await {
            Ok(()) => break,
            Err(missing) if Instant::now() < deadline => {
                if last_report.elapsed() > Duration::from_secs(30) {
                    let (rss, _) = memory_kib(pid);
                    println!(
                        "  ... {} of {} Ready after {:.0} s, RSS {:.1} MiB",
                        params.m - missing.len(),
                        params.m,
                        clock.now() - t0,
                        mib(rss)
                    );
                    last_report = Instant::now();
                }
            }
            Err(missing) => {
                let stuck: Vec<DynamicObject> = remaining_objects(&api)
                    .await
                    .into_iter()
                    .filter(|o| missing.contains(o.metadata.name.as_ref().unwrap()))
                    .collect();
                panic!(
                    "memory scenario: {} of {} objects not Ready after {:?} (raise BENCH_MEM_TIMEOUT or lower BENCH_M):\n    {}\n{}",
                    missing.len(),
                    params.m,
                    params.mem_timeout,
                    describe_stuck(&stuck),
                    operator.log_tail(40)
                );
            }
        }
    }
    let took = clock.now() - t0;
    println!("  all {} Ready after {took:.1} s", params.m);
    // At rest: give the allocator a moment after the burst of work.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut rss = 0;
    let mut hwm = 0;
    for _ in 0..3 {
        let (now_rss, now_hwm) = memory_kib(pid);
        rss = rss.max(now_rss);
        hwm = hwm.max(now_hwm);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let calls: Vec<Call> = sim
        .calls()
        .await
        .into_iter()
        .filter(|c| c.seq > sync_seq)
        .collect();
    let all: Vec<&Call> = calls.iter().collect();
    print_calls_by_operation(&all);
    let creates = calls
        .iter()
        .filter(|c| c.operation == "CreateInstance" && c.succeeded() && !c.replay)
        .count();
    let lists = calls
        .iter()
        .filter(|c| c.operation == "ListInstances")
        .count();
    let per_object_kib = rss.saturating_sub(baseline) as f64 / params.m.max(1) as f64;
    let projected = mib(baseline) + per_object_kib * MEMORY_PROJECTED_OBJECTS / 1024.0;
    println!(
        "  RSS {:.1} MiB (peak {:.1} MiB), {per_object_kib:.1} KiB per object above the {:.1} MiB baseline",
        mib(rss),
        mib(hwm),
        mib(baseline)
    );
    report.add(
        &format!("3: RSS with {} objects", params.m),
        format!("{:.1} MiB", mib(rss)),
        format!("< {MEMORY_LIMIT_MIB:.0} MiB (\"tens of MiB\")"),
        Some(mib(rss) / MEMORY_LIMIT_MIB),
        if mib(rss) < MEMORY_LIMIT_MIB {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.add(
        "3: peak RSS (VmHWM)",
        format!("{:.1} MiB", mib(hwm)),
        format!("< {MEMORY_LIMIT_MIB:.0} MiB"),
        Some(mib(hwm) / MEMORY_LIMIT_MIB),
        if mib(hwm) < MEMORY_LIMIT_MIB {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    let budget_kib = (MEMORY_LIMIT_MIB - mib(baseline)) * 1024.0 / MEMORY_TARGET_OBJECTS;
    report.add(
        "3: RSS per object above baseline",
        format!("{per_object_kib:.1} KiB"),
        format!("<= {budget_kib:.1} KiB ({MEMORY_LIMIT_MIB:.0} MiB at {MEMORY_TARGET_OBJECTS:.0})"),
        Some(per_object_kib / budget_kib),
        if per_object_kib <= budget_kib {
            Verdict::Ok
        } else {
            Verdict::Miss
        },
    );
    report.add(
        "3: RSS projected at 5,000 objects",
        format!("{projected:.0} MiB"),
        format!("< {MEMORY_LIMIT_MIB:.0} MiB"),
        Some(projected / MEMORY_LIMIT_MIB),
        Verdict::Info,
    );
    if restart {
        // Per object: one DescribeInstance, two ListInstanceAttributes pages and two
        // attribute writes, each operation behind its own limiter.
        let bound = 2.0 * params.m as f64 / params.mem_api_rate;
        report.add(
            "3: restart over M objects: time to all Ready",
            format!("{took:.1} s"),
            format!(">= 2M/api-rate = {bound:.1} s"),
            Some(took / bound.max(1e-9)),
            Verdict::Info,
        );
        report.zero("3: ListInstances calls after restart", lists, false);
        report.zero("3: CreateInstance accepted after restart", creates, true);
    } else {
        let bound = params.m as f64 / params.mem_create_rate;
        report.add(
            "3: time to all Ready",
            format!("{took:.1} s"),
            format!(">= M/rate = {bound:.1} s"),
            Some(took / bound.max(1e-9)),
            Verdict::Info,
        );
        report.add(
            "3: ListInstances calls per object",
            format!("{:.1}", lists as f64 / params.m.max(1) as f64),
            format!(
                "pages of 10: >= {:.1}",
                min_list_pages(0, params.m) as f64 / params.m.max(1) as f64
            ),
            Some(lists as f64 / min_list_pages(0, params.m).max(1) as f64),
            Verdict::Info,
        );
        report.exact("3: CreateInstance accepted", creates, params.m, true);
    }

    drop(watch);
    drop(operator);
    drop(simulator);
}

// ---------------------------------------------------------------------------------------

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this target without it.
    let full = std::env::args().any(|arg| arg == "--bench");
    let params = Params::from_env(full);
    println!("connect-operator scale benchmark (DESIGN.md §5)");
    if !full {
        println!(
            "smoke run (no --bench: `cargo test`); `cargo bench --bench scale` gives the figures"
        );
    }
    params.print();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let report = runtime.block_on(async {
        let clock = Clock {
            start: Instant::now(),
        };
        let mut report = Report::default();
        println!("\nstarting the local control plane ...");
        let control_plane = tokio::task::spawn_blocking(test_kit::control_plane)
            .await
            .expect("control plane");
        println!(
            "  kube-apiserver {} ready in {:.1?}",
            control_plane.server, control_plane.startup
        );
        lifecycle_scenarios(&params, clock, &mut report).await;
        if params.m > 0 {
            memory_scenario(&params, clock, &mut report).await;
        }
        report
    });
    report.print_summary();
    if !full {
        println!(
            "(smoke run in the test profile: the checks count, the figures do not; run `cargo bench --bench scale`)"
        );
    }
    println!("bench finished in {:.0} s", started.elapsed().as_secs_f64());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
