//! What a load run measured: requests and errors per operation, latency histograms, and the
//! summary printed at the end (as a table or JSON).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Thread-safe recorder shared by every simulated player.
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<BTreeMap<&'static str, OpStats>>,
}

#[derive(Debug)]
struct OpStats {
    ok: u64,
    errors: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        Self {
            ok: 0,
            errors: BTreeMap::new(),
            // 1 µs .. 60 s at 3 significant digits.
            latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        }
    }
}

impl Recorder {
    /// Records one successful operation and its latency.
    pub fn ok(&self, op: &'static str, latency: Duration) {
        let mut inner = self.inner.lock().expect("recorder lock");
        let stats = inner.entry(op).or_default();
        stats.ok += 1;
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        stats
            .latency_us
            .record(micros)
            .expect("clamped into bounds");
    }

    /// Records one failed operation under an error code (`game_full`, `http_503`, `timeout`, …).
    pub fn error(&self, op: &'static str, code: impl Into<String>) {
        let mut inner = self.inner.lock().expect("recorder lock");
        *inner
            .entry(op)
            .or_default()
            .errors
            .entry(code.into())
            .or_default() += 1;
    }

    /// A snapshot summary.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let inner = self.inner.lock().expect("recorder lock");
        let operations = inner
            .iter()
            .map(|(op, stats)| {
                let q =
                    |quantile: f64| stats.latency_us.value_at_quantile(quantile) as f64 / 1000.0;
                let errors: u64 = stats.errors.values().sum();
                OpSummary {
                    operation: (*op).to_string(),
                    ok: stats.ok,
                    errors,
                    errors_by_code: stats.errors.clone(),
                    per_second: (stats.ok + errors) as f64 / elapsed.as_secs_f64().max(1e-9),
                    p50_ms: q(0.50),
                    p90_ms: q(0.90),
                    p99_ms: q(0.99),
                    p999_ms: q(0.999),
                    max_ms: stats.latency_us.max() as f64 / 1000.0,
                }
            })
            .collect();
        Summary {
            elapsed_secs: elapsed.as_secs_f64(),
            operations,
        }
    }
}

/// The figures of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Wall-clock duration of the run.
    pub elapsed_secs: f64,
    /// One entry per operation (create, join, list, connect, play, …).
    pub operations: Vec<OpSummary>,
}

/// The figures of one operation.
#[derive(Debug, Clone, Serialize)]
pub struct OpSummary {
    /// Operation name.
    pub operation: String,
    /// Successes.
    pub ok: u64,
    /// Failures.
    pub errors: u64,
    /// Failures by code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Attempts per second over the run.
    pub per_second: f64,
    /// Latency percentiles of successes, in milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest success.
    pub max_ms: f64,
}

impl Summary {
    /// The figures of one operation, if it ran.
    pub fn operation(&self, name: &str) -> Option<&OpSummary> {
        self.operations.iter().find(|op| op.operation == name)
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!("load run: {:.1} s\n", self.elapsed_secs);
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  errors by code",
            "operation", "ok", "errors", "per s", "p50 ms", "p99 ms", "p99.9 ms", "max ms"
        );
        for op in &self.operations {
            let codes: Vec<String> = op
                .errors_by_code
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect();
            let _ = writeln!(
                out,
                "{:<12} {:>8} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
                op.operation,
                op.ok,
                op.errors,
                op.per_second,
                op.p50_ms,
                op.p99_ms,
                op.p999_ms,
                op.max_ms,
                codes.join(" ")
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_and_percentiles() {
        let recorder = Recorder::default();
        for ms in 1..=100 {
            recorder.ok("create", Duration::from_millis(ms));
        }
        recorder.error("create", "http_503");
        recorder.error("create", "http_503");
        recorder.error("join", "game_full");
        let summary = recorder.summary(Duration::from_secs(2));
        let create = summary.operation("create").unwrap();
        assert_eq!((create.ok, create.errors), (100, 2));
        assert_eq!(create.errors_by_code["http_503"], 2);
        assert!((create.p50_ms - 50.0).abs() < 0.5, "{}", create.p50_ms);
        assert!((create.p99_ms - 99.0).abs() < 0.5, "{}", create.p99_ms);
        assert_eq!(create.per_second, 51.0);
        assert_eq!(summary.operation("join").unwrap().ok, 0);
        assert!(summary.table().contains("game_full=1"));
    }
}
