//! `GET /metrics` in the Prometheus text format, on a listener of its own (`--metrics-addr`).
//!
//! Counters and histograms come through the [`metrics`] facade (transitions from the core,
//! HTTP requests and event deliveries from here) into one process-wide recorder; levels that
//! live in the database (leases, context per project and tier, the event log's head) are read
//! at each scrape, so a deleted project's series disappear with it.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Histogram buckets, in seconds: from a fast status read to a large first snapshot.
const BUCKETS: &[f64] = &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

static RECORDER: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls return the same handle).
/// Fails if the application installed another recorder first.
pub fn install_recorder() -> Result<PrometheusHandle, String> {
    RECORDER
        .get_or_init(|| {
            let recorder =
                PrometheusBuilder::new().set_buckets(BUCKETS).map_err(|e| e.to_string())?.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder)
                .map_err(|_| "another metrics recorder is installed in this process".to_owned())?;
            Ok(handle)
        })
        .clone()
}

/// Counts every request by method, route template (never the raw path) and status, and
/// times it.
pub(crate) async fn record_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("codeframe_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("codeframe_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The router of the metrics listener: `GET /metrics` only, no token.
pub(crate) fn router(state: AppState, handle: PrometheusHandle) -> Router {
    Router::new().route("/metrics", get(scrape)).with_state((state, handle))
}

async fn scrape(State((state, handle)): State<(AppState, PrometheusHandle)>) -> Response {
    let mut body = handle.render();
    match state.service.gauges().await {
        Ok(g) => {
            let head = g.event_head;
            let lag = (head - state.hub.cursor()).max(0);
            gauge(
                &mut body,
                "codeframe_ws_subscribers",
                "WebSocket sessions subscribed to a project.",
                &[("", state.hub.subscribers() as f64)],
            );
            gauge(
                &mut body,
                "codeframe_event_log_head",
                "The newest seq of the event log.",
                &[("", head as f64)],
            );
            gauge(
                &mut body,
                "codeframe_event_log_lag",
                "Events committed that this server has not yet routed to its subscribers.",
                &[("", lag as f64)],
            );
            gauge(
                &mut body,
                "codeframe_leases_held",
                "Live run-gate leases, every project and process.",
                &[("", g.leases_held as f64)],
            );
            gauge(
                &mut body,
                "codeframe_transitions_in_flight",
                "Pauses, resumes, restores … running now.",
                &[("", g.transitions_in_flight as f64)],
            );
            gauge(
                &mut body,
                "codeframe_db_pool_connections",
                "Database connections of this server.",
                &[("state=\"open\"", f64::from(g.pool.open)), ("state=\"idle\"", f64::from(g.pool.idle))],
            );
            let labels = |p: codeframe_models::ProjectId, t: codeframe_models::Tier| {
                format!("project_id=\"{p}\",tier=\"{t}\"")
            };
            let items: Vec<(String, f64)> =
                g.context.iter().map(|(p, t, n, _)| (labels(*p, *t), *n as f64)).collect();
            let tokens: Vec<(String, f64)> =
                g.context.iter().map(|(p, t, _, n)| (labels(*p, *t), *n as f64)).collect();
            gauge(
                &mut body,
                "codeframe_context_items",
                "Active context items per project and tier.",
                &borrow(&items),
            );
            gauge(
                &mut body,
                "codeframe_context_tokens",
                "Active context tokens per project and tier.",
                &borrow(&tokens),
            );
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics: reading the database failed");
            (StatusCode::SERVICE_UNAVAILABLE, format!("database unavailable: {}", e.class().label()))
                .into_response()
        }
    }
}

fn borrow(v: &[(String, f64)]) -> Vec<(&str, f64)> {
    v.iter().map(|(l, n)| (l.as_str(), *n)).collect()
}

/// Appends one gauge family: `# HELP`, `# TYPE`, then a sample per label set.
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}
