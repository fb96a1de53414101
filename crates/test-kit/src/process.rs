//! Child processes that never outlive the test binary.
//!
//! Rust does not run destructors of statics at exit, and a test binary can also die from
//! SIGKILL or an abort, so a `Drop` impl alone cannot promise that etcd, kube-apiserver, the
//! simulator or the operator stop with the tests. Every child is therefore started through a
//! tiny `sh` watchdog: the test process keeps the write end of the child's stdin pipe, and a
//! background subshell blocks reading the read end. When the test process goes away, however
//! it goes away, the kernel closes the write end, the read returns EOF and the watchdog sends
//! SIGTERM (then SIGKILL after a grace period) to the program. The program itself replaces
//! the shell with `exec`, so its pid is the pid we hold and can signal directly.
//! No `unsafe` (`prctl(PR_SET_PDEATHSIG)` would need it) and no helper binary.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Shell program of the watchdog; `$1` is the grace period in tenths of a second, then the
/// program and its arguments.
const WATCHDOG: &str = r#"
grace=$1; shift
exec 3<&0
(
  cat <&3 >/dev/null 2>&1
  kill -TERM "$$" 2>/dev/null || exit 0
  i=0
  while kill -0 "$$" 2>/dev/null && [ "$i" -lt "$grace" ]; do sleep 0.1; i=$((i+1)); done
  kill -KILL "$$" 2>/dev/null
) </dev/null >/dev/null 2>&1 &
exec "$@" 3<&- </dev/null
"#;

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local address").port()
}

/// How a [`ManagedProcess`] is started.
pub struct Spawn<'a> {
    /// Short name used in messages ("etcd", "operator").
    pub name: &'a str,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    pub envs: Vec<(OsString, OsString)>,
    /// Environment variables removed from the inherited environment.
    pub env_remove: Vec<&'a str>,
    /// stdout and stderr are appended to this file (stdout only when not captured).
    pub log: &'a Path,
    /// Keep stdout as a pipe for [`ManagedProcess::take_stdout`] instead of the log file.
    pub capture_stdout: bool,
    /// How long the program gets between SIGTERM and SIGKILL.
    pub grace: Duration,
}

/// A child process that is stopped when dropped and when the test binary exits.
pub struct ManagedProcess {
    name: String,
    child: Child,
    /// Our end of the watchdog pipe; dropping it asks the watchdog to terminate the child.
    lifeline: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    log: PathBuf,
    grace: Duration,
}

impl ManagedProcess {
    pub fn spawn(spec: Spawn<'_>) -> std::io::Result<Self> {
        let log = File::options().create(true).append(true).open(spec.log)?;
        let grace_tenths = spec.grace.as_millis().div_ceil(100).max(1);
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("connect-operator-test-watchdog")
            .arg(grace_tenths.to_string())
            .arg(spec.program)
            .args(&spec.args)
            .stdin(Stdio::piped())
            .stderr(Stdio::from(log.try_clone()?));
        if spec.capture_stdout {
            command.stdout(Stdio::piped());
        } else {
            command.stdout(Stdio::from(log));
        }
        for key in &spec.env_remove {
            command.env_remove(key);
        }
        command.envs(spec.envs);
        let mut child = command.spawn().map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "starting {} ({}): {error}",
                    spec.name,
                    spec.program.display()
                ),
            )
        })?;
        let lifeline = child.stdin.take();
        let stdout = child.stdout.take();
        Ok(Self {
            name: spec.name.to_owned(),
            child,
            lifeline,
            stdout,
            log: spec.log.to_owned(),
            grace: spec.grace,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The captured stdout (only with `capture_stdout`), once.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(error) => Some(format!("unknown ({error})")),
        }
    }

    /// SIGKILL, as a crash would: no graceful shutdown. True when the process was running
    /// and the kill is what ended it (it exited by SIGKILL); false when it had already
    /// exited.
    pub fn kill(&mut self) -> bool {
        let was_running = self.exited().is_none();
        let _ = self.child.kill();
        let status = self.child.wait();
        self.lifeline.take();
        was_running && status.is_ok_and(|status| killed_by_sigkill(&status))
    }

    /// SIGTERM through the watchdog, then SIGKILL after the grace period; waits for exit.
    pub fn stop(&mut self) {
        if self.exited().is_some() {
            self.lifeline.take();
            return;
        }
        self.lifeline.take();
        let deadline = Instant::now() + self.grace + Duration::from_secs(1);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not stop after SIGTERM; killing it", self.name);
        let _ = self.kill();
    }

    /// The last `lines` lines of the log file.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a process ended by SIGKILL.
fn killed_by_sigkill(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// The last `lines` lines of a file, or a note why it could not be read.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

/// Reads the first line of `stdout` (within `timeout`), then keeps copying the rest into
/// `log` on a thread so the child never blocks on a full pipe.
pub fn first_line_then_drain(
    stdout: ChildStdout,
    log: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let mut log = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|error| format!("opening {}: {error}", log.display()))?;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        let read = reader.read_line(&mut first);
        let _ = sender.send(read.map(|_| first.clone()));
        let _ = log.write_all(first.as_bytes());
        for line in reader.lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
        }
    });
    match receiver.recv_timeout(timeout) {
        Ok(Ok(line)) if !line.is_empty() => Ok(line.trim_end().to_owned()),
        Ok(Ok(_)) => Err("stdout closed before the first line".to_owned()),
        Ok(Err(error)) => Err(format!("reading stdout: {error}")),
        Err(_) => Err(format!("no stdout line within {timeout:?}")),
    }
}
