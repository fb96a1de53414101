//! Outside the Rust SDK: the independent boto3 check script passes against the simulator, and
//! the `connect-sim` binary prints its address, applies its flags and exits on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use connect_sim::SimConfig;
use serde_json::Value;

use super::{TestResult, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_check_script_passes_against_the_simulator() -> TestResult {
    // boto3 is the simulator's independent witness: without it this proves nothing, so it
    // fails rather than skips (`make test` and CI install it).
    let has_boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_boto3 {
        return Err(
            "`python3 -c 'import boto3'` fails: boto3 is the simulator's independent \
                    client and is required (`make python-deps`, or \
                    pip install -r tests/requirements.txt)"
                .into(),
        );
    }
    let sim = start(SimConfig::default()).await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sim_boto3_check.py");
    let url = sim.url();
    let output =
        tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(url).output())
            .await??;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "boto3 check failed:\n{stdout}\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    let passed: u32 = last
        .strip_suffix(" passed, 0 failed")
        .and_then(|n| n.parse().ok())
        .ok_or(format!("unexpected summary line {last:?}"))?;
    assert!(passed >= 80, "the script checked too little: {last}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_sim_binary_prints_its_address_applies_flags_and_exits_on_sigterm() -> TestResult {
    let mut child = Command::new(test_kit::paths::simulator_binary())
        .args([
            "--listen",
            "127.0.0.1:0",
            "--creation-delay",
            "150ms",
            "--instance-quota",
            "3",
        ])
        .args([
            "--rate-limit",
            "CreateInstance=none",
            "--fail-creation-alias-pattern",
            "^x",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await??;
    let url = line
        .trim()
        .strip_prefix("connect-sim listening on ")
        .ok_or(format!("unexpected first line {line:?}"))?
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let config: Value = reqwest::get(format!("{url}/_sim/config"))
        .await?
        .json()
        .await?;
    assert_eq!(config["creationDelayMs"], 150);
    assert_eq!(config["instanceQuota"], 3);
    assert_eq!(config["rateLimits"]["CreateInstance"], Value::Null);
    assert_eq!(config["failCreationAliasPattern"], "^x");

    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status()?;
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            child.kill()?;
            return Err("connect-sim did not exit on SIGTERM".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    Ok(())
}
