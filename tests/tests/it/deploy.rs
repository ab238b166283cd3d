//! The deployment files against the daemon: the Grafana dashboard and the Prometheus alert
//! rules may only name metrics the daemon exports, every metric the daemon's code records is
//! in its table of exported metrics, and a live daemon's `/metrics` shows them with help text
//! and histogram buckets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use matchmakerd::telemetry::{METRICS, MetricKind};
use mm_testkit::app::{TestApp, TestAppOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `mm_…` metric name in a text, with histogram series suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(found) = text[i..].find("mm_") {
        let start = i + found;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .map_or(text.len(), |n| start + n);
        if boundary {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(name);
            names.insert(base.to_string());
        }
        i = end;
    }
    names
}

fn exported() -> BTreeSet<String> {
    METRICS
        .iter()
        .map(|(name, _, _)| name.to_string())
        .collect()
}

#[test]
fn dashboard_and_alert_rules_name_only_exported_metrics() {
    let exported = exported();
    for file in [
        "deploy/grafana/matchmaker-dashboard.json",
        "deploy/prometheus/matchmaker-alerts.yml",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let named = metric_names(&text);
        assert!(named.len() >= 5, "{file} names too few metrics: {named:?}");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics the daemon does not export: {unknown:?}"
        );
    }
}

#[test]
fn every_metric_the_daemon_records_is_in_its_table() {
    let mut recorded = BTreeSet::new();
    let mut stack = vec![repo().join("daemon/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines().filter(|l| l.contains("\"mm_")) {
                    recorded.extend(metric_names(line));
                }
            }
        }
    }
    assert!(recorded.len() >= 10, "found only {recorded:?}");
    assert_eq!(
        recorded,
        exported(),
        "names in daemon/src vs telemetry::METRICS"
    );
}

#[tokio::test]
async fn a_live_daemon_exports_metrics_with_help_and_buckets() {
    let app = TestApp::spawn(TestAppOptions::default()).await.unwrap();
    let created = app.create_chess("alice", 2).await;
    assert_eq!(created.status, 201, "{created:?}");
    let metrics = mm_testkit::poll::until(
        "the consumer and the HTTP layer to record metrics",
        std::time::Duration::from_secs(10),
        || async {
            let text = app
                .http
                .get(app.url("/metrics"))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            (text.contains("mm_games_created_total") && text.contains("mm_games{")).then_some(text)
        },
    )
    .await;
    for (name, kind, _) in METRICS {
        if metrics.contains(&format!("{name}{{")) || metrics.contains(&format!("{name} ")) {
            assert!(
                metrics.contains(&format!("# HELP {name} ")),
                "{name} has no help text"
            );
        }
        if *kind == MetricKind::Histogram && metrics.contains(&format!("# TYPE {name} ")) {
            assert!(
                metrics.contains(&format!("# TYPE {name} histogram")),
                "{name} must be a histogram with buckets, not a summary"
            );
        }
    }
    assert!(metrics.contains("# TYPE mm_http_request_duration_seconds histogram"));
    assert!(metrics.contains("mm_http_request_duration_seconds_bucket{"));
    app.check_invariants().await.unwrap();
}
