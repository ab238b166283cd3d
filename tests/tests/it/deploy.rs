//! The deployment files against the daemon: the Grafana dashboard and the Prometheus alert
//! rules may only name metrics the daemon exports, every metric the daemon's code records is
//! in its table of exported metrics, and a live daemon's `/metrics` shows them with help text
//! and histogram buckets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use matchmakerd::telemetry::{METRICS, MetricKind};
use mm_testkit::RedisServer;
use mm_testkit::app::{TestApp, TestAppOptions};
use mm_testkit::daemon_process::{DaemonProcess, DaemonSpec};

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

/// The metric names the shipped alert rules and dashboard use.
fn deploy_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in ["deploy/prometheus", "deploy/grafana"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| e == "yml" || e == "yaml" || e == "json")
            {
                names.extend(metric_names(&std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    names
}

/// A daemon of one role with one registered (unreachable) game server, so its product and
/// server label values are known, and the lobby port on a free port without public metrics
/// (as in production).
fn daemon_of_role(role: &str, redis_url: &str) -> DaemonProcess {
    let mut spec = DaemonSpec::worker(&format!("fresh-{role}"), redis_url);
    spec.roles = role.into();
    spec.extra_toml = "[http]\nbind = \"127.0.0.1:0\"\npublic_metrics = false\n\n\
        [[game_servers]]\nid = \"gs-1\"\nproduct = \"chess\"\napi_url = \"http://127.0.0.1:9\"\n\
        max_games = 10\napi_key = \"k\"\n"
        .into();
    DaemonProcess::start(spec).expect("starting matchmakerd")
}

/// Contract section 11: every process, whatever its roles, serves `/metrics`, `/healthz` and
/// `/readyz` on its admin listener, and from its first scrape exports every metric the alert
/// rules and the dashboard name (counters at zero, histograms by their `_bucket` series).
#[tokio::test]
async fn a_fresh_daemon_of_each_role_exports_every_metric_the_deploy_files_name() {
    let redis = RedisServer::start().unwrap();
    let needed = deploy_metric_names();
    assert!(needed.contains("mm_events_lost_total"), "{needed:?}");
    let kinds: std::collections::HashMap<&str, MetricKind> = METRICS
        .iter()
        .map(|(name, kind, _)| (*name, *kind))
        .collect();
    let mut daemons: Vec<(&str, DaemonProcess)> = ["api", "worker", "curator"]
        .into_iter()
        .map(|role| (role, daemon_of_role(role, &redis.url())))
        .collect();
    for (role, daemon) in &mut daemons {
        // The very first scrape: nothing has happened yet.
        let (status, metrics) = daemon.admin_get("/metrics").await.unwrap();
        assert_eq!(status, 200, "{role}: {metrics}");
        let mut missing = Vec::new();
        for name in &needed {
            let series = match kinds.get(name.as_str()) {
                Some(MetricKind::Histogram) => format!("{name}_bucket{{"),
                _ => format!("{name}{{"),
            };
            if !metrics.contains(&series) {
                missing.push(name.clone());
            }
        }
        assert!(
            missing.is_empty(),
            "a fresh --roles {role} daemon does not export {missing:?}:\n{metrics}"
        );
        for line in metrics.lines().filter(|l| {
            l.starts_with("mm_events_lost_total{") || l.starts_with("mm_events_duplicate_total{")
        }) {
            assert!(line.ends_with(" 0"), "{role}: {line}");
        }
        assert!(
            metrics.contains(
                "mm_events_dead_lettered_total{product=\"chess\",reason=\"unknown_game\"} 0"
            ) || metrics.contains(
                "mm_events_dead_lettered_total{reason=\"unknown_game\",product=\"chess\"} 0"
            ),
            "{role}: labelled counters at zero for their known labels:\n{metrics}"
        );
        // The store's grouped-write counters, at zero for every script (they are refreshed
        // from the store every 5 s, whether or not the role sends that kind of write).
        for script in ["reserve_seat", "quick_join", "keep_ticket", "admit_create"] {
            for name in [
                "mm_store_grouped_calls_total",
                "mm_store_grouped_requests_total",
            ] {
                let series = format!("{name}{{script=\"{script}\"}} 0");
                assert!(metrics.contains(&series), "{role}: no {series}:\n{metrics}");
            }
        }
        let (status, health) = daemon.admin_get("/healthz").await.unwrap();
        assert_eq!((status, health.as_str()), (200, "{\"status\":\"ok\"}"));
        let (status, ready) = daemon.admin_get("/readyz").await.unwrap();
        assert_eq!(status, 200, "{role}: {ready}");
        let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
        assert_eq!(ready["roles"], *role);
        assert!(
            ready["checked"].as_str().unwrap().contains("PING"),
            "/readyz says what it checks: {ready}"
        );
        let (status, _) = daemon.admin_get("/v1/games?product=chess").await.unwrap();
        assert_eq!(status, 404, "the admin listener serves no lobby route");
    }
    // The lobby port of the api role does not serve /metrics when public_metrics is off.
    let api = &mut daemons[0].1;
    let public = api.api_addr().await;
    assert_ne!(public, api.admin_addr().await);
    let on_public = reqwest::get(format!("http://{public}/metrics"))
        .await
        .unwrap();
    assert_eq!(on_public.status(), 404);
    let ready = reqwest::get(format!("http://{public}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200, "probes still reach the lobby port");
}

/// Redis down: the admin `/readyz` of a worker-only process answers 503 `not_ready` and says
/// what it checked.
#[tokio::test]
async fn the_admin_readiness_of_a_worker_names_its_check_when_redis_is_down() {
    let mut redis = RedisServer::start().unwrap();
    let mut worker = daemon_of_role("worker", &redis.url());
    let (status, _) = worker.admin_get("/readyz").await.unwrap();
    assert_eq!(status, 200);
    let addr = worker.admin_addr().await;
    redis.kill();
    let (status, body) = mm_testkit::poll::until(
        "the admin /readyz to notice Redis is down",
        std::time::Duration::from_secs(20),
        || async move {
            let response = reqwest::get(format!("http://{addr}/readyz")).await.ok()?;
            let status = response.status().as_u16();
            let body = response.text().await.ok()?;
            (status == 503).then_some((status, body))
        },
    )
    .await;
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, problem["code"].as_str()), (503, Some("not_ready")));
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("roles worker") && detail.contains("PING"),
        "{detail}"
    );
}
