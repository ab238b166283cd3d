//! Running `wrk` against one URL and reading its figures back.
//!
//! wrk's own report rounds percentiles and varies in format; a small Lua `done()` hook
//! prints one JSON line instead (marked `MM_BENCH_WRK`), which is what gets parsed.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::driver::Latency;

/// The Lua hook: prints the summary and latency percentiles (µs) as one JSON line.
const DONE_SCRIPT: &str = r#"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MM_BENCH_WRK {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"#;

/// One wrk run's load shape.
#[derive(Debug, Clone)]
pub struct WrkLoad {
    /// Threads (`-t`).
    pub threads: u32,
    /// Open connections (`-c`).
    pub connections: u32,
    /// Duration (`-d`).
    pub duration: Duration,
    /// Extra request headers, `Name: value`.
    pub headers: Vec<String>,
}

/// What wrk measured.
#[derive(Debug, Clone, Deserialize)]
pub struct WrkResult {
    /// Completed requests.
    pub requests: u64,
    /// Run time, µs.
    pub duration_us: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Socket connect errors.
    pub connect_errors: u64,
    /// Read errors.
    pub read_errors: u64,
    /// Write errors.
    pub write_errors: u64,
    /// Non-2xx/3xx answers.
    pub status_errors: u64,
    /// Request timeouts.
    pub timeouts: u64,
    /// Median latency, µs.
    pub p50_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// 99.9th percentile, µs.
    pub p999_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
}

impl WrkResult {
    /// Requests per second.
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6).max(1e-9)
    }

    /// Latency percentiles.
    pub fn latency(&self) -> Latency {
        Latency {
            p50_ms: self.p50_us as f64 / 1000.0,
            p99_ms: self.p99_us as f64 / 1000.0,
            p999_ms: self.p999_us as f64 / 1000.0,
        }
    }

    /// Several runs against one URL (the rounds of a paired comparison) as one: counts and
    /// run times summed; each latency percentile the median of the runs' (percentiles of
    /// separate runs cannot be merged exactly; wrk gives no histogram), the slowest the
    /// slowest.
    pub fn combine(runs: &[WrkResult]) -> Option<WrkResult> {
        let median = |pick: fn(&WrkResult) -> u64| {
            let mut values: Vec<u64> = runs.iter().map(pick).collect();
            values.sort_unstable();
            values[values.len() / 2]
        };
        let sum = |pick: fn(&WrkResult) -> u64| runs.iter().map(pick).sum::<u64>();
        (!runs.is_empty()).then(|| WrkResult {
            requests: sum(|r| r.requests),
            duration_us: sum(|r| r.duration_us),
            bytes: sum(|r| r.bytes),
            connect_errors: sum(|r| r.connect_errors),
            read_errors: sum(|r| r.read_errors),
            write_errors: sum(|r| r.write_errors),
            status_errors: sum(|r| r.status_errors),
            timeouts: sum(|r| r.timeouts),
            p50_us: median(|r| r.p50_us),
            p99_us: median(|r| r.p99_us),
            p999_us: median(|r| r.p999_us),
            max_us: runs.iter().map(|r| r.max_us).max().unwrap_or(0),
        })
    }

    /// Errors of any kind.
    pub fn errors(&self) -> u64 {
        self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.status_errors
            + self.timeouts
    }
}

/// Runs wrk against `url` and parses its JSON line. `work_dir` receives the Lua script.
pub async fn run(work_dir: &Path, url: &str, load: &WrkLoad) -> anyhow::Result<WrkResult> {
    let script = work_dir.join("mm-bench-done.lua");
    std::fs::write(&script, DONE_SCRIPT).context("writing the wrk Lua script")?;
    let mut command = tokio::process::Command::new("wrk");
    command
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", load.duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(&script);
    for header in &load.headers {
        command.arg("-H").arg(header);
    }
    command.arg(url).kill_on_drop(true);
    let limit = load.duration + Duration::from_secs(30);
    let output = tokio::time::timeout(limit, command.output())
        .await
        .with_context(|| format!("wrk did not finish within {limit:?}"))?
        .context("running wrk (install it with `apt-get install wrk`)")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse(&stdout).with_context(|| {
        format!(
            "wrk against {url}: {}\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Finds and parses the `MM_BENCH_WRK` line of wrk's output.
pub fn parse(stdout: &str) -> anyhow::Result<WrkResult> {
    let Some(json) = stdout
        .lines()
        .find_map(|line| line.strip_prefix("MM_BENCH_WRK "))
    else {
        bail!("wrk printed no MM_BENCH_WRK line");
    };
    serde_json::from_str(json).context("parsing wrk's MM_BENCH_WRK line")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_done_line_among_wrks_report() {
        let stdout = "Running 1s test @ http://127.0.0.1:1/\n  2 threads and 4 connections\n\
            MM_BENCH_WRK {\"requests\":2000,\"duration_us\":1000000,\"bytes\":1,\"connect_errors\":0,\
            \"read_errors\":0,\"write_errors\":0,\"status_errors\":3,\"timeouts\":0,\"p50_us\":1500,\
            \"p99_us\":9000,\"p999_us\":12000,\"max_us\":20000}\n";
        let result = parse(stdout).unwrap();
        assert_eq!(result.per_second(), 2000.0);
        assert_eq!(result.errors(), 3);
        assert_eq!(result.latency().p99_ms, 9.0);
    }

    #[test]
    fn rounds_combine_into_one_run() {
        let line = |requests: u64, p99: u64| {
            format!(
                "MM_BENCH_WRK {{\"requests\":{requests},\"duration_us\":1000000,\"bytes\":10,\
                 \"connect_errors\":0,\"read_errors\":0,\"write_errors\":0,\"status_errors\":1,\
                 \"timeouts\":0,\"p50_us\":100,\"p99_us\":{p99},\"p999_us\":900,\"max_us\":{p99}}}"
            )
        };
        let runs: Vec<WrkResult> = [(1000, 5), (3000, 9), (2000, 7)]
            .iter()
            .map(|(requests, p99)| parse(&line(*requests, *p99)).unwrap())
            .collect();
        let combined = WrkResult::combine(&runs).unwrap();
        assert_eq!(combined.per_second(), 2000.0, "6,000 requests in 3 s");
        assert_eq!(combined.errors(), 3);
        assert_eq!(combined.p99_us, 7, "the median round's p99");
        assert_eq!(combined.max_us, 9);
        assert!(WrkResult::combine(&[]).is_none());
    }

    #[test]
    fn a_run_without_the_line_is_an_error() {
        assert!(parse("unable to connect to 127.0.0.1:1\n").is_err());
    }
}
