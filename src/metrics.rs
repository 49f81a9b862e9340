//! Prometheus metrics: every metric's name, the registry they live in, and `GET /metrics`.
//!
//! Each node has its own recorder (`metrics-exporter-prometheus`, not installed as the
//! process's global one, so servers started side by side in one process, as the tests do,
//! keep their own figures). What changes per message or attempt is a handle registered here
//! at start and handed to the code that updates it (`api::measure`, `delivery::measure`,
//! `store::BatchMetrics`): an atomic update, no lookup by name and no lock. The gauges that
//! describe the store (the delivery queue, endpoints, connections) are read from it when
//! `/metrics` is scraped (see `store::stats` for what each query costs), so the hot path
//! pays nothing for them.
//!
//! Histograms are stored lock-free until a scrape (or the upkeep task, every few seconds)
//! folds them into their buckets.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

use crate::api::ApiMetrics;
use crate::api::error::ApiError;
use crate::api::measure::{HTTP_REQUEST_SECONDS, HTTP_REQUESTS};
use crate::delivery::clock::Clock;
use crate::delivery::measure::{ATTEMPT_CLASSES, DeliveryMetrics};
use crate::nodes::NodeMetrics;
use crate::retention::RetentionMetrics;
use crate::store::{BatchMetrics, Store, StoreMetrics};
use crate::telemetry::otlp::TraceMetrics;

/// Metric names, in one place.
pub mod names {
    pub const MESSAGES_ACCEPTED: &str = "hookd_messages_accepted_total";
    pub const ATTEMPTS: &str = "hookd_attempts_total";
    pub const ATTEMPT_SECONDS: &str = "hookd_attempt_duration_seconds";
    pub const FIRST_ATTEMPT_LATENCY: &str = "hookd_first_attempt_latency_seconds";
    pub const ATTEMPTS_IN_FLIGHT: &str = "hookd_attempts_in_flight";
    pub const DELIVERIES_PENDING: &str = "hookd_deliveries_pending";
    pub const DELIVERIES_DUE: &str = "hookd_deliveries_due";
    pub const DELIVERIES_SCHEDULED: &str = "hookd_deliveries_scheduled";
    pub const DELIVERIES_PARKED: &str = "hookd_deliveries_parked";
    pub const DELIVERIES_IN_FLIGHT: &str = "hookd_deliveries_in_flight";
    pub const OLDEST_DUE_AGE: &str = "hookd_oldest_due_delivery_age_seconds";
    pub const ENDPOINTS: &str = "hookd_endpoints";
    pub const STORE_UP: &str = "hookd_store_up";
    pub const STORE_BATCH_JOBS: &str = "hookd_store_batch_jobs";
    pub const STORE_COMMIT_SECONDS: &str = "hookd_store_commit_duration_seconds";
    pub const DB_CONNECTIONS: &str = "hookd_db_connections";
    pub const DB_CONNECTIONS_MAX: &str = "hookd_db_connections_max";
    pub const PAYLOADS_EXPIRED: &str = "hookd_payloads_expired_total";
    pub const MESSAGES_PRUNED: &str = "hookd_messages_pruned_total";
    pub const NODES_LIVE: &str = "hookd_nodes_live";
    pub const MONITOR_STALE: &str = "hookd_monitor_stale";
    pub const MONITOR_LAST_SEEN: &str = "hookd_monitor_last_seen_timestamp_seconds";
    pub const CLAIMS_TAKEN_OVER: &str = "hookd_claims_taken_over_total";
    pub const TRACE_SPANS_EXPORTED: &str = "hookd_trace_spans_exported_total";
    pub const TRACE_SPANS_DROPPED: &str = "hookd_trace_spans_dropped_total";
    pub use crate::api::measure::{HTTP_REQUEST_SECONDS, HTTP_REQUESTS};
}

use names::*;

/// Latencies of requests, attempts and commits: 1 ms to the longest request timeout.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// A message's wait for its first attempt: usually milliseconds, hours in a backlog.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0, 14400.0,
];
/// Jobs per group commit (at most 512 on SQLite, 256 on PostgreSQL).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// How often histograms are folded into their buckets between scrapes, so that memory
/// does not grow with the attempts made while nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

const METADATA: Metadata<'static> = Metadata::new("hookd::metrics", Level::INFO, None);

/// This node's metrics: the registry and the handles of what is updated as it happens.
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    messages_accepted: Counter,
    retention: RetentionMetrics,
    nodes: NodeMetrics,
    delivery: DeliveryMetrics,
    store: StoreMetrics,
    traces: TraceMetrics,
    scraped: ScrapedGauges,
}

/// The gauges set from the store at each scrape.
struct ScrapedGauges {
    pending: Gauge,
    due: Gauge,
    scheduled: Gauge,
    parked: Gauge,
    in_flight: Gauge,
    oldest_due_age: Gauge,
    endpoints_enabled: Gauge,
    endpoints_disabled: Gauge,
    store_up: Gauge,
    connections_in_use: Gauge,
    connections_idle: Gauge,
    connections_max: Gauge,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(FIRST_ATTEMPT_LATENCY.into()),
                    LATENCY_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(STORE_BATCH_JOBS.into()), BATCH_BUCKETS)
            })
            .expect("bucket lists are not empty");
        let recorder = Arc::new(builder.build_recorder());
        let handle = recorder.handle();
        describe(&recorder);
        let r = &*recorder;
        let delivery = DeliveryMetrics {
            attempts: std::array::from_fn(|i| {
                let outcome = if i == 0 { "success" } else { "failure" };
                counter(
                    r,
                    ATTEMPTS,
                    &[("outcome", outcome), ("error_class", ATTEMPT_CLASSES[i])],
                )
            }),
            attempt_seconds: histogram(r, ATTEMPT_SECONDS, &[]),
            first_attempt_latency_seconds: histogram(r, FIRST_ATTEMPT_LATENCY, &[]),
            in_flight: gauge(r, ATTEMPTS_IN_FLIGHT, &[]),
        };
        let batch = |writer: &'static str| BatchMetrics {
            jobs: histogram(r, STORE_BATCH_JOBS, &[("writer", writer)]),
            commit_seconds: histogram(r, STORE_COMMIT_SECONDS, &[("writer", writer)]),
        };
        let store = StoreMetrics {
            sqlite_writer: batch("sqlite"),
            pg_ingest: batch("pg_messages"),
            pg_records: batch("pg_attempts"),
        };
        let scraped = ScrapedGauges {
            pending: gauge(r, DELIVERIES_PENDING, &[]),
            due: gauge(r, DELIVERIES_DUE, &[]),
            scheduled: gauge(r, DELIVERIES_SCHEDULED, &[]),
            parked: gauge(r, DELIVERIES_PARKED, &[]),
            in_flight: gauge(r, DELIVERIES_IN_FLIGHT, &[]),
            oldest_due_age: gauge(r, OLDEST_DUE_AGE, &[]),
            endpoints_enabled: gauge(r, ENDPOINTS, &[("state", "enabled")]),
            endpoints_disabled: gauge(r, ENDPOINTS, &[("state", "disabled")]),
            store_up: gauge(r, STORE_UP, &[]),
            connections_in_use: gauge(r, DB_CONNECTIONS, &[("state", "in_use")]),
            connections_idle: gauge(r, DB_CONNECTIONS, &[("state", "idle")]),
            connections_max: gauge(r, DB_CONNECTIONS_MAX, &[]),
        };
        let messages_accepted = counter(r, MESSAGES_ACCEPTED, &[]);
        let retention = RetentionMetrics {
            payloads_expired: counter(r, PAYLOADS_EXPIRED, &[]),
            messages_pruned: counter(r, MESSAGES_PRUNED, &[]),
        };
        let nodes = NodeMetrics {
            live: gauge(r, NODES_LIVE, &[]),
            claims_taken_over: counter(r, CLAIMS_TAKEN_OVER, &[]),
        };
        let traces = TraceMetrics {
            exported: counter(r, TRACE_SPANS_EXPORTED, &[]),
            dropped_queue_full: counter(r, TRACE_SPANS_DROPPED, &[("reason", "queue_full")]),
            dropped_export_failed: counter(r, TRACE_SPANS_DROPPED, &[("reason", "export_failed")]),
        };
        Arc::new(Self {
            recorder,
            handle,
            messages_accepted,
            retention,
            nodes,
            delivery,
            store,
            traces,
            scraped,
        })
    }

    /// The handles the API updates (its request metrics register in this node's registry).
    pub fn api(&self) -> ApiMetrics {
        let routes = crate::api::route_templates();
        ApiMetrics::new(
            self.messages_accepted.clone(),
            self.recorder.clone(),
            routes.iter().map(String::as_str),
        )
    }

    pub fn delivery(&self) -> DeliveryMetrics {
        self.delivery.clone()
    }

    pub fn store(&self) -> StoreMetrics {
        self.store.clone()
    }

    pub fn retention(&self) -> RetentionMetrics {
        self.retention.clone()
    }

    pub fn nodes(&self) -> NodeMetrics {
        self.nodes.clone()
    }

    pub fn traces(&self) -> TraceMetrics {
        self.traces.clone()
    }

    /// Reads the store's gauges at `now`, then renders every metric in the Prometheus text
    /// format. A store that does not answer leaves its gauges as last read, with
    /// `hookd_store_up` 0.
    pub async fn render(&self, store: &dyn Store, now: crate::domain::Timestamp) -> String {
        let g = &self.scraped;
        let usage = store.pool_usage();
        g.connections_in_use.set(usage.in_use as f64);
        g.connections_idle.set(usage.idle as f64);
        g.connections_max.set(usage.max as f64);
        let read = async {
            let queue = store.queue_stats(now).await?;
            let endpoints = store.endpoint_counts().await?;
            Ok::<_, crate::store::StoreError>((queue, endpoints))
        };
        match read.await {
            Ok((queue, endpoints)) => {
                g.store_up.set(1.0);
                g.pending.set(queue.pending() as f64);
                g.due.set(queue.due as f64);
                g.scheduled.set(queue.scheduled as f64);
                g.parked.set(queue.parked as f64);
                g.in_flight.set(queue.in_flight as f64);
                let age = queue.oldest_due.map_or(0.0, |due| {
                    (now - due).num_microseconds().unwrap_or(i64::MAX).max(0) as f64 / 1e6
                });
                g.oldest_due_age.set(age);
                g.endpoints_enabled.set(endpoints.enabled as f64);
                g.endpoints_disabled.set(endpoints.disabled as f64);
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the store's figures for /metrics failed");
                g.store_up.set(0.0);
            }
        }
        let mut text = self.handle.render();
        let first = crate::store::PageQuery {
            limit: MONITORS_SHOWN,
            cursor: crate::store::Cursor::Start,
            order: crate::store::Order::Ascending,
        };
        match store.list_monitors(&first).await {
            Ok(monitors) => render_monitors(&mut text, &monitors),
            Err(e) => tracing::warn!(error = %e, "reading the monitors for /metrics failed"),
        }
        text
    }

    /// Folds histograms into their buckets every few seconds until `shutdown`.
    pub async fn upkeep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => self.handle.run_upkeep(),
            }
        }
    }
}

/// Monitors shown in `/metrics` at most (the first by id).
const MONITORS_SHOWN: usize = 1000;

/// Each monitor's state and last message, read at the scrape (so a deleted monitor's series
/// go with it): `hookd_monitor_stale` and `hookd_monitor_last_seen_timestamp_seconds`,
/// labelled with the monitor's id and name.
fn render_monitors(text: &mut String, monitors: &[crate::domain::Monitor]) {
    use std::fmt::Write;
    if monitors.is_empty() {
        return;
    }
    let escape = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let label =
        |m: &crate::domain::Monitor| format!("monitor=\"{}\",name=\"{}\"", m.id, escape(&m.name));
    let _ = writeln!(
        text,
        "# HELP {MONITOR_STALE} 1 when the freshness monitor is stale (no message for longer than its maxSilence), 0 when ok.\n# TYPE {MONITOR_STALE} gauge"
    );
    for m in monitors {
        let stale = u8::from(m.state == crate::domain::MonitorState::Stale);
        let _ = writeln!(text, "{MONITOR_STALE}{{{}}} {stale}", label(m));
    }
    let _ = writeln!(
        text,
        "# HELP {MONITOR_LAST_SEEN} When the newest message the monitor watches was created (unix seconds; absent before the first).\n# TYPE {MONITOR_LAST_SEEN} gauge"
    );
    for m in monitors {
        if let Some(at) = m.last_seen_at {
            let secs = at.timestamp_micros() as f64 / 1e6;
            let _ = writeln!(text, "{MONITOR_LAST_SEEN}{{{}}} {secs}", label(m));
        }
    }
}

type Labels<'a> = &'a [(&'static str, &'static str)];

fn key(name: &'static str, labels: Labels) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::from_static_parts(k, v))
        .collect();
    Key::from_parts(name, labels)
}

fn counter(r: &PrometheusRecorder, name: &'static str, labels: Labels) -> Counter {
    r.register_counter(&key(name, labels), &METADATA)
}

/// A gauge, shown as 0 until first set.
fn gauge(r: &PrometheusRecorder, name: &'static str, labels: Labels) -> Gauge {
    let gauge = r.register_gauge(&key(name, labels), &METADATA);
    gauge.set(0.0);
    gauge
}

fn histogram(r: &PrometheusRecorder, name: &'static str, labels: Labels) -> Histogram {
    r.register_histogram(&key(name, labels), &METADATA)
}

/// The `# HELP` line of each metric.
fn describe(r: &PrometheusRecorder) {
    let counters = [
        (
            MESSAGES_ACCEPTED,
            "Messages accepted (answered 202), durable in the store.",
        ),
        (
            ATTEMPTS,
            "Delivery attempts made by this node, by outcome and error class.",
        ),
        (
            HTTP_REQUESTS,
            "API requests answered, by route template, method and status.",
        ),
        (
            PAYLOADS_EXPIRED,
            "Payloads removed by this node's retention job because they expired.",
        ),
        (
            MESSAGES_PRUNED,
            "Messages deleted by this node's retention job (retention_days), with their attempts.",
        ),
        (
            CLAIMS_TAKEN_OVER,
            "Claims of nodes found dead (stale heartbeat) that this node gave back (PostgreSQL).",
        ),
        (
            TRACE_SPANS_EXPORTED,
            "Spans this node exported to the OTLP collector (otlp_endpoint).",
        ),
        (
            TRACE_SPANS_DROPPED,
            "Spans this node dropped: the export queue was full, or the export failed.",
        ),
    ];
    for (name, help) in counters {
        r.describe_counter(name.into(), None, help.into());
    }
    let gauges = [
        (
            ATTEMPTS_IN_FLIGHT,
            "Delivery attempts this node has in flight now.",
        ),
        (
            DELIVERIES_PENDING,
            "Deliveries waiting for an attempt (due, scheduled or parked), all nodes.",
        ),
        (
            DELIVERIES_DUE,
            "Deliveries due now and not yet claimed (or whose claim's lease ran out).",
        ),
        (
            DELIVERIES_SCHEDULED,
            "Deliveries waiting for a retry that is not due yet.",
        ),
        (
            DELIVERIES_PARKED,
            "Deliveries parked: their endpoint is disabled, or they wait behind a FIFO line's head.",
        ),
        (
            DELIVERIES_IN_FLIGHT,
            "Deliveries claimed under a running lease, all nodes.",
        ),
        (
            OLDEST_DUE_AGE,
            "How long the longest-waiting due delivery has waited (0 when none is due).",
        ),
        (ENDPOINTS, "Endpoints by state (enabled or disabled)."),
        (
            STORE_UP,
            "1 when the store answered this scrape's queries, 0 when it did not.",
        ),
        (
            DB_CONNECTIONS,
            "This node's database connections, in use or idle.",
        ),
        (
            DB_CONNECTIONS_MAX,
            "The most database connections this node opens.",
        ),
        (
            NODES_LIVE,
            "Delivering nodes with a fresh heartbeat, as this node last counted them (PostgreSQL; 0 on SQLite).",
        ),
    ];
    for (name, help) in gauges {
        r.describe_gauge(name.into(), None, help.into());
    }
    let histograms = [
        (
            ATTEMPT_SECONDS,
            Unit::Seconds,
            "How long delivery attempts took (connect, send, read the answer).",
        ),
        (
            FIRST_ATTEMPT_LATENCY,
            Unit::Seconds,
            "From a message's acceptance to the start of its first attempt, per delivery.",
        ),
        (
            STORE_BATCH_JOBS,
            Unit::Count,
            "Jobs (messages, attempt records, claims) written per group commit, by writer.",
        ),
        (
            STORE_COMMIT_SECONDS,
            Unit::Seconds,
            "How long a group commit took to write and commit, by writer.",
        ),
        (
            HTTP_REQUEST_SECONDS,
            Unit::Seconds,
            "How long API requests took, by route template and method.",
        ),
    ];
    for (name, unit, help) in histograms {
        r.describe_histogram(name.into(), Some(unit), help.into());
    }
}

/// `GET /metrics`, as a router of its own: merged into the API's router, or served on
/// `metrics_listen`.
pub fn router(
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    token: &str,
) -> Router {
    let token = (!token.is_empty()).then(|| Arc::<[u8]>::from(token.as_bytes()));
    Router::new()
        .route("/metrics", axum::routing::get(scrape))
        .with_state(Scrape {
            metrics,
            store,
            clock,
            token,
        })
}

#[derive(Clone)]
struct Scrape {
    metrics: Arc<Metrics>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    token: Option<Arc<[u8]>>,
}

async fn scrape(State(scrape): State<Scrape>, headers: HeaderMap) -> Response {
    if let Some(expected) = &scrape.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(given) = given else {
            return ApiError::Unauthorized(
                "metrics_token is set: send 'Authorization: Bearer <metrics_token>'",
            )
            .into_response();
        };
        if !bool::from(given.as_bytes().ct_eq(expected)) {
            return ApiError::Unauthorized("invalid metrics token").into_response();
        }
    }
    let text = scrape
        .metrics
        .render(&*scrape.store, scrape.clock.now())
        .await;
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
