//! What the bench reads from the operator process: Prometheus samples from its `/metrics`
//! text, and its resident memory (`VmRSS`, `VmHWM`) from `/proc/<pid>/status`.

/// Sum of every sample of a metric family (`name` or `name{...}`).
pub fn metric_sum(text: &str, name: &str) -> f64 {
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
pub fn memory_kib(pid: u32) -> (u64, u64) {
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

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Growth of a metric family's sum between two scrapes.
pub fn metric_delta(before: &str, after: &str, name: &str) -> f64 {
    metric_sum(after, name) - metric_sum(before, name)
}

/// Growth between two scrapes of the samples of `name` labelled with `operation`.
pub fn metric_delta_labeled(before: &str, after: &str, name: &str, operation: &str) -> f64 {
    let pick = |text: &str| {
        text.lines()
            .filter(|line| line.starts_with(name) && line.contains(&format!("\"{operation}\"")))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    pick(after) - pick(before)
}
