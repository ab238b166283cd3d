//! Metrics: the process-wide Prometheus recorder and the names of the metrics we record.
//!
//! [`prometheus`] installs a `metrics-exporter-prometheus` recorder the first time it is
//! called and returns the same [`PrometheusHandle`] ever after, so any number of API routers
//! (tests start several in one process) share one registry. `GET /metrics` renders it.
//!
//! Names follow Prometheus conventions: `mm_` prefix, counters end in `_total`, durations are
//! histograms in seconds.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use mm_common::model::{EventKind, GameSet};
use mm_common::{ProductId, ServerId};

/// Counter `{route, method, status}`: HTTP requests answered by the lobby API.
pub const HTTP_REQUESTS_TOTAL: &str = "mm_http_requests_total";
/// Histogram `{route, method}`: time to answer a lobby API request, in seconds.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "mm_http_request_duration_seconds";
/// Counter `{product}`: games created (recorded on a game server and in Redis).
pub const GAMES_CREATED_TOTAL: &str = "mm_games_created_total";
/// Counter `{server, op, outcome}`: calls to game servers' management APIs.
pub const GAME_SERVER_CALLS_TOTAL: &str = "mm_game_server_calls_total";

/// Counter `{product, kind}`: creates and joins refused by a per-player limit (`kind`:
/// [`LIMIT_REFUSAL_KINDS`]).
pub const LIMIT_REFUSALS_TOTAL: &str = "mm_limit_refusals_total";

/// Counter: requests refused because their client address sent too many failing requests.
pub const CLIENT_REFUSALS_TOTAL: &str = "mm_client_refusals_total";

/// The `kind`s of `mm_limit_refusals_total` (contract section 11).
pub const LIMIT_REFUSAL_KINDS: &[&str] = &[
    "create_rate_limited",
    "create_quota_exceeded",
    "join_rate_limited",
    "join_quota_exceeded",
];

/// Counter: commands and pipelines the store resent after a transient Redis failure (a
/// failover, a slot migration, a restart) within `redis.retry_budget_ms`.
pub const REDIS_RESENDS_TOTAL: &str = "mm_redis_resends_total";
/// Counter `{script}`: script calls the store sent for a kind of grouped write (joins, quick
/// joins, kept tickets, create admissions; each call carries every request of its product
/// waiting at that moment).
pub const STORE_GROUPED_CALLS_TOTAL: &str = "mm_store_grouped_calls_total";
/// Counter `{script}`: requests those calls carried; divided by the calls, the mean group.
/// The `script` labels of both are `Store::GROUPED_SCRIPTS`.
pub const STORE_GROUPED_REQUESTS_TOTAL: &str = "mm_store_grouped_requests_total";

/// Gauge: open games in this instance's in-memory view (the listing's source).
pub const VIEW_GAMES: &str = "mm_view_games";
/// Counter `{reason}`: full loads of one product into the view.
pub const VIEW_RESYNCS_TOTAL: &str = "mm_view_resyncs_total";
/// The `reason` labels of [`VIEW_RESYNCS_TOTAL`].
pub const VIEW_RESYNC_REASONS: &[&str] = &["start", "gap", "reset", "error"];

/// The kind of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Distribution of durations in seconds (rendered with [`DURATION_BUCKETS`]).
    Histogram,
}

/// Every metric the daemon exports: name, kind and the help text `/metrics` shows. The
/// deployment files (alert rules, dashboard) may name only these; a test checks that, and that
/// every `mm_…` name recorded in the daemon's code is listed here.
pub const METRICS: &[(&str, MetricKind, &str)] = &[
    (
        HTTP_REQUESTS_TOTAL,
        MetricKind::Counter,
        "Lobby API requests answered, by route template, method and status.",
    ),
    (
        HTTP_REQUEST_DURATION_SECONDS,
        MetricKind::Histogram,
        "Time to answer a lobby API request, by route template and method.",
    ),
    (
        GAMES_CREATED_TOTAL,
        MetricKind::Counter,
        "Games created on a game server and recorded, by product.",
    ),
    (
        LIMIT_REFUSALS_TOTAL,
        MetricKind::Counter,
        "Creates and joins refused by a per-player limit, by product and kind.",
    ),
    (
        CLIENT_REFUSALS_TOTAL,
        MetricKind::Counter,
        "Requests refused because their client address sent too many failing requests.",
    ),
    (
        GAME_SERVER_CALLS_TOTAL,
        MetricKind::Counter,
        "Calls to game servers' management APIs, by server, operation and outcome.",
    ),
    (
        REDIS_RESENDS_TOTAL,
        MetricKind::Counter,
        "Commands the store resent after a transient Redis failure (failover, slot migration, restart) within redis.retry_budget_ms.",
    ),
    (
        STORE_GROUPED_CALLS_TOTAL,
        MetricKind::Counter,
        "Script calls the store sent for a kind of grouped write (reserve_seat, quick_join, keep_ticket, admit_create), each carrying every request of its product waiting at that moment.",
    ),
    (
        STORE_GROUPED_REQUESTS_TOTAL,
        MetricKind::Counter,
        "Requests those grouped script calls carried: divided by the calls, the mean group size.",
    ),
    (
        VIEW_GAMES,
        MetricKind::Gauge,
        "Open games in this instance's in-memory view, from which listings are answered.",
    ),
    (
        VIEW_RESYNCS_TOTAL,
        MetricKind::Counter,
        "Full loads of one product into the view, by reason: start, gap (its feed was trimmed past the view), reset (the feed went back or vanished) or error (a read failed).",
    ),
    (
        "mm_events_applied_total",
        MetricKind::Counter,
        "Game-server events applied to the record, by product and type.",
    ),
    (
        "mm_events_stale_total",
        MetricKind::Counter,
        "Duplicate or out-of-date events acknowledged without change, by product and type.",
    ),
    (
        "mm_events_duplicate_total",
        MetricKind::Counter,
        "Stream entries that were already applied when delivered again, by product.",
    ),
    (
        "mm_events_dead_lettered_total",
        MetricKind::Counter,
        "Events copied to the dead-letter stream, by product and reason.",
    ),
    (
        "mm_events_lost_total",
        MetricKind::Counter,
        "Pending entries trimmed from a stream before they were applied, by product.",
    ),
    (
        "mm_event_apply_duration_seconds",
        MetricKind::Histogram,
        "Time of one apply script call: applying and acknowledging up to consumer.apply_batch_size events.",
    ),
    (
        "mm_consumer_lag",
        MetricKind::Gauge,
        "Entries of a product stream not yet delivered to the consumer group.",
    ),
    (
        "mm_consumers_removed_total",
        MetricKind::Counter,
        "Consumers of gone instances removed from the consumer group (idle, nothing pending), by product.",
    ),
    (
        "mm_consumer_pending",
        MetricKind::Gauge,
        "Entries delivered to the consumer group but not yet acknowledged.",
    ),
    (
        "mm_event_watermark_age_seconds",
        MetricKind::Gauge,
        "Age of a product's applied watermark: now minus the time of the oldest stream entry not yet acknowledged by the consumer group (0 when caught up).",
    ),
    (
        "mm_events_trimmed_total",
        MetricKind::Counter,
        "Acknowledged entries trimmed from a product stream behind the consumer group, by product.",
    ),
    (
        "mm_curation_skipped_total",
        MetricKind::Counter,
        "Curation passes that skipped a product because its applied watermark could not be read.",
    ),
    (
        "mm_games",
        MetricKind::Gauge,
        "Live games, by product and set (pending, lobby, active).",
    ),
    (
        "mm_curated_games_total",
        MetricKind::Counter,
        "Games the curator handled, by reason and outcome.",
    ),
    (
        "mm_curation_pass_duration_seconds",
        MetricKind::Histogram,
        "Time of one curation pass.",
    ),
    (
        "mm_reconcile_orphans_deleted_total",
        MetricKind::Counter,
        "Games deleted on their game server by reconciliation because no live record had them, by server.",
    ),
    (
        "mm_reconcile_lost_total",
        MetricKind::Counter,
        "Live games ended lost_on_server by reconciliation because their server no longer held them, by server.",
    ),
    (
        "mm_reconcile_pass_duration_seconds",
        MetricKind::Histogram,
        "Time of one reconciliation pass.",
    ),
    (
        "mm_endings_finished_total",
        MetricKind::Counter,
        "End steps interrupted between their mark and their end that the curator finished, by outcome.",
    ),
];

/// Histogram buckets of every duration (seconds): 100 µs to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the global recorder on first use.
///
/// If another recorder was installed globally before (by code outside this module), a
/// recorder that is not global is used instead and the metrics recorded through the
/// `metrics` macros go to that other recorder; this is logged once.
pub fn prometheus() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, kind, _) in METRICS {
                if *kind == MetricKind::Histogram {
                    builder = builder
                        .set_buckets_for_metric(
                            Matcher::Full((*name).to_string()),
                            DURATION_BUCKETS,
                        )
                        .expect("bucket list is not empty");
                }
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(err) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%err, "a global metrics recorder was already installed");
            }
            for (name, kind, help) in METRICS {
                match kind {
                    MetricKind::Counter => metrics::describe_counter!(*name, *help),
                    MetricKind::Gauge => metrics::describe_gauge!(*name, *help),
                    MetricKind::Histogram => {
                        metrics::describe_histogram!(*name, metrics::Unit::Seconds, *help)
                    }
                }
            }
            handle
        })
        .clone()
}

/// How often [`run_upkeep`] drains the recorder.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the recorder's upkeep every [`UPKEEP_INTERVAL`] until `stop`. The recorder keeps every
/// histogram sample until an upkeep folds it into the buckets; without this task that only
/// happens when `/metrics` is scraped, so an unscraped daemon's memory grew with every
/// request and event batch (about 1 MiB per 100 s in the soak benchmark).
pub async fn run_upkeep(handle: PrometheusHandle, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// Renders the Prometheus text exposition (running the recorder's upkeep first, so histogram
/// samples are drained and idle metrics are handled).
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

/// The lobby routes with the status each answers on success: their request counters and
/// duration histograms are exported from start (a process without the `api` role exports them
/// at zero, so dashboards and alert rules find the series on every instance).
pub const LOBBY_ROUTE_SERIES: &[(&str, &str, &str)] = &[
    ("/v1/games", "POST", "201"),
    ("/v1/games", "GET", "200"),
    ("/v1/games/{id}", "GET", "200"),
    ("/v1/games/{id}", "DELETE", "204"),
    ("/v1/games/{id}/join", "POST", "200"),
    ("/v1/games/quick-join", "POST", "200"),
    ("/v1/games/{id}/rejoin", "POST", "200"),
];

/// `op` × `outcome` of `mm_game_server_calls_total` (contract section 11).
pub const GAME_SERVER_CALL_SERIES: &[(&str, &[&str])] = &[
    ("create_game", CALL_OUTCOMES),
    ("add_player", CALL_OUTCOMES),
    ("delete_game", CALL_OUTCOMES),
    ("list_games", CALL_OUTCOMES),
    ("health", &["ok", "error"]),
];
const CALL_OUTCOMES: &[&str] = &[
    "ok",
    "circuit_open",
    "timeout",
    "connect",
    "status",
    "decode",
];

/// The `reason` codes of `mm_events_dead_lettered_total` (contract section 4.4).
pub const DEAD_LETTER_REASONS: &[&str] = &[
    "missing_field",
    "unknown_type",
    "bad_id",
    "bad_timestamp",
    "bad_entry_id",
    "unknown_game",
    "server_mismatch",
    "creator_mismatch",
    "max_deliveries_exceeded",
];

/// The `outcome` labels of `mm_curated_games_total`.
pub const CURATION_OUTCOMES: &[&str] = &[
    "removed",
    "server_refused",
    "server_unreachable",
    "skipped_alive",
    "dry_run",
    "unknown_server",
    "skipped_invalid",
];

/// The `outcome` labels of `mm_endings_finished_total` (contract section 11).
pub const ENDING_OUTCOMES: &[&str] = &[
    "removed",
    "server_refused",
    "server_unreachable",
    "unknown_server",
    "gone",
    "remarked",
];

/// Registers every series whose labels are known at start, so a fresh process exports them
/// before anything happened (contract section 11): every counter (at zero, or unchanged if it
/// already counted) with its known label
/// values (`products` and `servers` are the configured ones), the histograms empty, and the
/// per-product gauges as `NaN` ("not measured yet") until the role that keeps them first
/// refreshes them. Without this, `mm_events_lost_total` and its kind would only appear after
/// their first increment, and an alert on them could never be checked on a healthy system.
pub fn register_known_series(products: &[ProductId], servers: &[ServerId]) {
    metrics::counter!(REDIS_RESENDS_TOTAL).increment(0);
    for script in mm_common::store::Store::GROUPED_SCRIPTS.iter().copied() {
        metrics::counter!(STORE_GROUPED_CALLS_TOTAL, "script" => script).increment(0);
        metrics::counter!(STORE_GROUPED_REQUESTS_TOTAL, "script" => script).increment(0);
    }
    for (route, method, status) in LOBBY_ROUTE_SERIES {
        metrics::counter!(HTTP_REQUESTS_TOTAL, "route" => *route, "method" => *method, "status" => *status)
            .increment(0);
        let _ = metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => *route, "method" => *method);
    }
    for server in servers {
        for (op, outcomes) in GAME_SERVER_CALL_SERIES {
            for outcome in *outcomes {
                metrics::counter!(GAME_SERVER_CALLS_TOTAL, "server" => server.to_string(), "op" => *op, "outcome" => *outcome)
                    .increment(0);
            }
        }
        for name in [
            "mm_reconcile_orphans_deleted_total",
            "mm_reconcile_lost_total",
        ] {
            metrics::counter!(name, "server" => server.to_string()).increment(0);
        }
    }
    // Gauges are set to NaN only the first time a product is seen in this process: tests run
    // several daemons in one process, and a later one must not blank the gauges of another.
    // (Counters are registered with `increment(0)`, which changes no value.)
    static GAUGES_REGISTERED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut gauges_registered = GAUGES_REGISTERED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for product in products {
        let product = product.to_string();
        metrics::counter!(GAMES_CREATED_TOTAL, "product" => product.clone()).increment(0);
        for kind in EventKind::ALL {
            for name in ["mm_events_applied_total", "mm_events_stale_total"] {
                metrics::counter!(name, "product" => product.clone(), "type" => kind.as_str())
                    .increment(0);
            }
        }
        metrics::counter!("mm_events_duplicate_total", "product" => product.clone()).increment(0);
        metrics::counter!("mm_events_lost_total", "product" => product.clone()).increment(0);
        metrics::counter!("mm_consumers_removed_total", "product" => product.clone()).increment(0);
        metrics::counter!("mm_events_trimmed_total", "product" => product.clone()).increment(0);
        metrics::counter!("mm_curation_skipped_total", "product" => product.clone()).increment(0);
        for kind in LIMIT_REFUSAL_KINDS {
            metrics::counter!(LIMIT_REFUSALS_TOTAL, "product" => product.clone(), "kind" => *kind)
                .increment(0);
        }
        for reason in DEAD_LETTER_REASONS {
            metrics::counter!("mm_events_dead_lettered_total", "product" => product.clone(), "reason" => *reason)
                .increment(0);
        }
        if !gauges_registered.insert(product.clone()) {
            continue;
        }
        for name in [
            "mm_consumer_lag",
            "mm_consumer_pending",
            "mm_event_watermark_age_seconds",
        ] {
            metrics::gauge!(name, "product" => product.clone()).set(f64::NAN);
        }
        for set in GameSet::ALL {
            metrics::gauge!("mm_games", "product" => product.clone(), "set" => set.as_str())
                .set(f64::NAN);
        }
    }
    for reason in GameSet::ALL.map(crate::curator::reason_for) {
        for outcome in CURATION_OUTCOMES {
            metrics::counter!("mm_curated_games_total", "reason" => reason, "outcome" => *outcome)
                .increment(0);
        }
    }
    metrics::counter!(CLIENT_REFUSALS_TOTAL).increment(0);
    for reason in VIEW_RESYNC_REASONS {
        metrics::counter!(VIEW_RESYNCS_TOTAL, "reason" => *reason).increment(0);
    }
    for outcome in ENDING_OUTCOMES {
        metrics::counter!("mm_endings_finished_total", "outcome" => *outcome).increment(0);
    }
    let _ = metrics::histogram!("mm_event_apply_duration_seconds");
    let _ = metrics::histogram!("mm_curation_pass_duration_seconds");
    let _ = metrics::histogram!("mm_reconcile_pass_duration_seconds");
}

/// Counts one game-server call.
pub fn game_server_call(server: &str, op: &'static str, outcome: &'static str) {
    metrics::counter!(
        GAME_SERVER_CALLS_TOTAL,
        "server" => server.to_string(),
        "op" => op,
        "outcome" => outcome,
    )
    .increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Contract section 11: every counter of the table is exported from start, so an alert or
    /// a dashboard built on any of them finds the series on a healthy, idle system.
    #[test]
    fn every_counter_of_the_table_is_exported_from_start() {
        let handle = prometheus();
        let product = ProductId::new("everycounter").unwrap();
        let server = ServerId::new("gs-everycounter").unwrap();
        register_known_series(
            std::slice::from_ref(&product),
            std::slice::from_ref(&server),
        );
        let text = render(&handle);
        let missing: Vec<&str> = METRICS
            .iter()
            .filter(|(_, kind, _)| *kind == MetricKind::Counter)
            .map(|(name, _, _)| *name)
            .filter(|name| {
                !text.lines().any(|line| {
                    line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
                })
            })
            .collect();
        assert!(
            missing.is_empty(),
            "counters not exported at start: {missing:?}"
        );
    }

    #[test]
    fn registering_the_known_series_exports_zeros_and_changes_no_counted_value() {
        let handle = prometheus();
        let product = ProductId::new("regtest").unwrap();
        metrics::counter!("mm_events_lost_total", "product" => "regtest").increment(3);
        register_known_series(std::slice::from_ref(&product), &[]);
        let first = render(&handle);
        assert!(
            first.contains("mm_consumer_lag{product=\"regtest\"} NaN"),
            "not measured yet: {first}"
        );
        metrics::gauge!("mm_consumer_lag", "product" => "regtest").set(7.0);
        // A second daemon in the same process registers again.
        register_known_series(std::slice::from_ref(&product), &[]);
        let text = render(&handle);
        assert!(
            text.contains("mm_events_lost_total{product=\"regtest\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("mm_events_duplicate_total{product=\"regtest\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("mm_games{product=\"regtest\",set=\"lobby\"} NaN"),
            "{text}"
        );
        assert!(
            text.contains("mm_consumer_lag{product=\"regtest\"} 7"),
            "a measured gauge is not blanked: {text}"
        );
    }
}
