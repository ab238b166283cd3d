//! A closed-loop load driver: `concurrency` workers each run one operation after another
//! until a total count is reached or the time is up, recording every latency.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
}

impl Latency {
    /// The percentiles of a histogram of microseconds.
    pub fn of_micros(histogram: &Histogram<u64>) -> Latency {
        let q = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
        Latency {
            p50_ms: q(0.50),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
        }
    }
}

/// A histogram of 1 µs .. 60 s at 3 significant digits.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records one duration into a microsecond histogram (clamped into its bounds).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
    histogram.record(micros).expect("clamped into bounds");
}

/// What a driven run did.
#[derive(Debug, Clone)]
pub struct Driven {
    /// Successful operations.
    pub ok: u64,
    /// Failed operations by error code.
    pub errors: BTreeMap<String, u64>,
    /// Wall-clock time from the first start to the last finish.
    pub elapsed: Duration,
    /// Latencies of successes (µs).
    pub latency: Histogram<u64>,
}

impl Driven {
    /// No run yet: the start of a sum of rounds.
    pub fn empty() -> Driven {
        Driven {
            ok: 0,
            errors: BTreeMap::new(),
            elapsed: Duration::ZERO,
            latency: micros_histogram(),
        }
    }

    /// Adds another run of the same operation (one round of a paired comparison): counts
    /// and run times summed, latencies merged.
    pub fn absorb(&mut self, other: Driven) {
        self.ok += other.ok;
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
        self.elapsed += other.elapsed;
        self.latency
            .add(&other.latency)
            .expect("histograms of equal bounds add");
    }

    /// Successes per second.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Failures in total.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// `code=count` pairs, for notes.
    pub fn errors_text(&self) -> String {
        self.errors
            .iter()
            .map(|(code, count)| format!("{code}={count}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs `operation(i)` for i = 0, 1, … on `concurrency` workers until `total` operations
/// started or `duration` passed, whichever first. An operation returns `Err(code)` on failure.
pub async fn closed_loop<F, Fut>(
    concurrency: usize,
    total: u64,
    duration: Duration,
    operation: F,
) -> Driven
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let operation = Arc::new(operation);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let operation = Arc::clone(&operation);
        let next = Arc::clone(&next);
        workers.spawn(async move {
            let mut latency = micros_histogram();
            let mut ok = 0u64;
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total || Instant::now() >= deadline {
                    break;
                }
                let begun = Instant::now();
                match operation(index).await {
                    Ok(()) => {
                        ok += 1;
                        record(&mut latency, begun.elapsed());
                    }
                    Err(code) => *errors.entry(code).or_default() += 1,
                }
            }
            (ok, errors, latency)
        });
    }
    let mut driven = Driven::empty();
    while let Some(joined) = workers.join_next().await {
        let (ok, errors, latency) = match joined {
            Ok(result) => result,
            Err(err) => {
                *driven
                    .errors
                    .entry(format!("worker_panic: {err}"))
                    .or_default() += 1;
                continue;
            }
        };
        driven.ok += ok;
        for (code, count) in errors {
            *driven.errors.entry(code).or_default() += count;
        }
        driven
            .latency
            .add(&latency)
            .expect("histograms of equal bounds add");
    }
    driven.elapsed = started.elapsed();
    driven
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_loop_stops_at_the_total_and_counts_errors() {
        let driven = closed_loop(4, 100, Duration::from_secs(30), |i| async move {
            if i % 10 == 0 {
                Err("every_tenth".to_string())
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(driven.ok, 90);
        assert_eq!(driven.errors["every_tenth"], 10);
        assert_eq!(driven.latency.len(), 90);
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let mut histogram = micros_histogram();
        for ms in 1..=1000 {
            record(&mut histogram, Duration::from_millis(ms));
        }
        let latency = Latency::of_micros(&histogram);
        assert!((latency.p50_ms - 500.0).abs() < 1.0, "{latency:?}");
        assert!((latency.p99_ms - 990.0).abs() < 1.0, "{latency:?}");
        assert!((latency.p999_ms - 999.0).abs() < 1.5, "{latency:?}");
    }
}
