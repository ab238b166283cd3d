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

/// Histogram buckets of request durations (seconds): 1 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
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
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_string()),
                    DURATION_BUCKETS,
                )
                .expect("bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(err) = metrics::set_global_recorder(recorder) {
                tracing::warn!(%err, "a global metrics recorder was already installed");
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
