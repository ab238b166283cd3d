//! Metrics: the process-wide Prometheus recorder and the names of the metrics we record.
//!
//! [`prometheus`] installs a `metrics-exporter-prometheus` recorder the first time it is
//! called and returns the same [`PrometheusHandle`] ever after, so any number of API routers
//! (tests start several in one process) share one registry. `GET /metrics` renders it.
//!
//! Names follow Prometheus conventions: `mm_` prefix, counters end in `_total`, durations are
//! histograms in seconds.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter `{route, method, status}`: HTTP requests answered by the lobby API.
pub const HTTP_REQUESTS_TOTAL: &str = "mm_http_requests_total";
/// Histogram `{route, method}`: time to answer a lobby API request, in seconds.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "mm_http_request_duration_seconds";
/// Counter `{product}`: games created (recorded on a game server and in Redis).
pub const GAMES_CREATED_TOTAL: &str = "mm_games_created_total";
/// Counter `{server, op, outcome}`: calls to game servers' management APIs.
pub const GAME_SERVER_CALLS_TOTAL: &str = "mm_game_server_calls_total";

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
        GAME_SERVER_CALLS_TOTAL,
        MetricKind::Counter,
        "Calls to game servers' management APIs, by server, operation and outcome.",
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

/// Renders the Prometheus text exposition (running the recorder's upkeep first, so histogram
/// samples are drained and idle metrics are handled).
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
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
