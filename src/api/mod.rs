//! The HTTP API: axum routers, DTOs, authentication, pagination, idempotency, error
//! mapping and the generated OpenAPI document.
//!
//! Request DTOs are parsed into domain types here, at the edge; handlers then call the
//! store. Every error response is JSON (see [`error`]), including those for unknown routes
//! and methods, because the Svix SDKs parse every error body.

mod applications;
mod attempts;
mod auth;
mod background_tasks;
mod endpoints;
mod entities;
mod environment;
pub mod error;
mod event_type_import;
mod event_types;
mod extract;
mod fields;
mod health;
mod idempotency;
mod ingest;
pub mod measure;
mod message_batch;
mod messages;
mod monitors;
mod openapi;
mod operational;
mod overview;
mod pagination;
pub mod payload_schemas;
mod replays;
mod scheduled;
pub mod scopes;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::Notify;

use crate::delivery::clock::Clock;
use crate::delivery::dispatcher::Dispatcher;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::{Authenticator, Caller, generate_token, hash_hex, hash_token, token_hint};
pub use environment::{Reload, ReloadError};
use error::{ApiError, ErrorCause};
pub use measure::ApiMetrics;
pub use tokens::{NamedToken, new_token};

use crate::store::Store;
use crate::telemetry::traces::Tracer;

/// Bytes a message request may carry beyond its payload (event type, ids, channels...).
const ENVELOPE_ALLOWANCE: usize = 64 * 1024;

/// What every handler can reach: [`ApiShared`] behind one `Arc`.
///
/// axum clones the state for every extractor and middleware that takes it, several times a
/// request. As a struct of twenty `Arc`s and metric handles, each clone and drop was twenty
/// atomic updates of counters every request thread shares, and the cache lines bouncing
/// between cores made it 6 % of hookd's CPU in (a) (`perf record`); now a clone is one.
#[derive(Clone)]
pub struct ApiState(Arc<ApiShared>);

impl ApiState {
    pub fn new(shared: ApiShared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiShared;

    fn deref(&self) -> &ApiShared {
        &self.0
    }
}

/// The parts of [`ApiState`].
pub struct ApiShared {
    pub store: Arc<dyn Store>,
    pub auth: Arc<Authenticator>,
    pub settings: Arc<ApiSettings>,
    /// Notified after a message is accepted with deliveries left pending, to wake the
    /// delivery engine.
    pub message_enqueued: Arc<Notify>,
    /// This node's dispatcher, if it delivers: it takes new deliveries directly.
    pub dispatcher: Option<Arc<Dispatcher>>,
    /// This node among the others sharing its PostgreSQL database, if it delivers there.
    pub node: Option<Arc<crate::nodes::NodeStatus>>,
    /// Notified after a background task is created, to wake this node's task runner.
    pub task_created: Arc<Notify>,
    /// Notified after a write that added operational events, to wake this node's drain
    /// (`crate::events`).
    pub events_written: Arc<Notify>,
    /// Notified after a snapshot fired entity events, to wake this node's drain
    /// (`crate::entities`).
    pub entities_written: Arc<Notify>,
    /// Applies entity snapshots, many to a transaction.
    pub snapshots: crate::entities::SnapshotWriter,
    /// The dispatcher's time, which readiness measures the queue's lag by.
    pub clock: Arc<dyn Clock>,
    pub metrics: ApiMetrics,
    /// Messages this node may be accepting at once (`max_pending_messages`); a message
    /// request that finds none left is answered 503 without waiting.
    pub message_permits: Arc<tokio::sync::Semaphore>,
    /// What `POST /api/v1/hookd/reload` runs: set when hookd was started with `--apply`.
    pub reload: Option<Arc<dyn Reload>>,
    /// The schemas payloads are checked against at ingest.
    pub payload_schemas: Arc<payload_schemas::PayloadSchemas>,
    /// Spans of accepted messages (off unless `otlp_endpoint` is set).
    pub traces: Tracer,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub max_payload_bytes: usize,
    /// Deepest nesting of arrays and objects in a payload (the payload object is depth 1).
    pub max_payload_depth: usize,
    /// How long a request body may take to arrive once the handler reads it.
    pub body_read_timeout: std::time::Duration,
    /// Refuse `http://` endpoint URLs.
    pub https_only: bool,
    /// How long payloads are kept when a message does not say; `None`: until expunged.
    pub payload_retention: Option<chrono::TimeDelta>,
    /// Readiness fails once the oldest due delivery has waited longer than this, in seconds.
    pub ready_max_lag_secs: Option<u64>,
    /// How far ahead a message's `deliverAt` may be.
    pub deliver_at_horizon: chrono::TimeDelta,
    /// How long a request may take, its body's arrival included (`api_request_timeout_secs`).
    pub request_timeout: std::time::Duration,
    /// `max_pending_messages`, the size of [`ApiState::message_permits`].
    pub max_pending_messages: usize,
    /// The largest batch ingest request body (`max_batch_bytes`).
    pub max_batch_bytes: usize,
    /// `max_request_timeout_secs`: retry policies' timeouts above it are refused.
    pub max_request_timeout: std::time::Duration,
    /// `public_url`, without a trailing slash: the base of the links hookd hands out.
    pub public_url: Option<String>,
}

/// The routes that need a token, with their documentation.
fn protected_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(applications::list, applications::create))
        .routes(routes!(
            applications::get,
            applications::update,
            applications::patch,
            applications::delete
        ))
        .routes(routes!(event_types::list, event_types::create))
        .routes(routes!(event_type_import::import))
        .routes(routes!(
            event_types::get,
            event_types::update,
            event_types::patch,
            event_types::delete
        ))
        .routes(routes!(
            event_types::get_retry_schedule,
            event_types::set_retry_schedule
        ))
        .routes(routes!(endpoints::list, endpoints::create))
        .routes(routes!(
            endpoints::get,
            endpoints::update,
            endpoints::patch,
            endpoints::delete
        ))
        .routes(routes!(
            endpoints::get_headers,
            endpoints::update_headers,
            endpoints::patch_headers
        ))
        .routes(routes!(endpoints::get_secret))
        .routes(routes!(endpoints::rotate_secret))
        .routes(routes!(messages::list, messages::create))
        .routes(routes!(message_batch::create))
        .routes(routes!(message_batch::precheck))
        .routes(routes!(scheduled::list))
        .routes(routes!(scheduled::cancel))
        .routes(routes!(messages::get))
        .routes(routes!(messages::expunge_content))
        .routes(routes!(background_tasks::bulk_expunge))
        .routes(routes!(background_tasks::expunge_all_contents))
        .routes(routes!(background_tasks::list))
        .routes(routes!(background_tasks::get))
        .routes(routes!(attempts::list_by_msg))
        .routes(routes!(attempts::list_by_endpoint))
        .routes(routes!(attempts::get))
        .routes(routes!(attempts::expunge_content))
        .routes(routes!(attempts::list_attempted_messages))
        .routes(routes!(attempts::list_attempted_destinations))
        .routes(routes!(attempts::resend))
        .routes(routes!(replays::recover))
        .routes(routes!(replays::bulk_replay))
        .routes(routes!(replays::replay_missing))
        .routes(routes!(replays::list_dead_letters))
        .routes(routes!(replays::requeue_dead_letters))
        .routes(routes!(attempts::stats))
        .routes(routes!(attempts::attempt_stats))
        .routes(routes!(attempts::send_example))
        .routes(routes!(operational::list, operational::create))
        .routes(routes!(
            operational::get,
            operational::upsert,
            operational::delete
        ))
        .routes(routes!(
            operational::get_headers,
            operational::update_headers
        ))
        .routes(routes!(operational::get_secret))
        .routes(routes!(operational::rotate_secret))
        .routes(routes!(environment::export))
        .routes(routes!(environment::import))
        .routes(routes!(environment::reload))
        .routes(routes!(overview::get))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::get, tokens::revoke))
        .routes(routes!(tokens::app_portal_access))
        .routes(routes!(tokens::expire_all))
        .routes(routes!(tokens::logout))
        .routes(routes!(tokens::whoami))
        .routes(routes!(monitors::list, monitors::create))
        .routes(routes!(monitors::get, monitors::update, monitors::delete))
        .routes(routes!(entities::list_types))
        .routes(routes!(
            entities::get_type,
            entities::put_type,
            entities::delete_type
        ))
        .routes(routes!(entities::get_entity, entities::put_snapshot))
        .routes(routes!(entities::list_history))
        .routes(routes!(ingest::list, ingest::create))
        .routes(routes!(
            ingest::get,
            ingest::upsert,
            ingest::patch,
            ingest::delete
        ))
        .routes(routes!(ingest::rotate_token))
        .routes(routes!(ingest::list_logs))
        .routes(routes!(ingest::list_endpoints, ingest::create_endpoint))
        .routes(routes!(
            ingest::get_endpoint,
            ingest::upsert_endpoint,
            ingest::delete_endpoint
        ))
        .routes(routes!(
            ingest::get_endpoint_headers,
            ingest::set_endpoint_headers
        ))
        .routes(routes!(ingest::get_endpoint_secret))
        .routes(routes!(ingest::rotate_endpoint_secret))
}

/// The route templates of the API's router, as `MatchedPath` gives them.
pub fn route_templates() -> Vec<String> {
    let mut routes: Vec<String> = openapi_document().paths.paths.into_keys().collect();
    routes.extend(["/api/v1/openapi.json".to_owned(), "/metrics".to_owned()]);
    routes.extend(crate::ui::ROUTES.iter().map(|r| (*r).to_owned()));
    routes
}

/// The OpenAPI document describing every route.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = protected_routes().split_for_parts();
    let (_, public) = public_routes().split_for_parts();
    doc.merge(public);
    utoipa::Modify::modify(&openapi::Conventions, &mut doc);
    doc
}

fn public_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(health::get))
        .routes(routes!(health::ping))
        .routes(routes!(health::ready))
        .routes(routes!(ingest::receive))
}

/// The largest request body accepted: the payload limit and room for the rest of a message.
pub fn body_limit(settings: &ApiSettings) -> usize {
    settings.max_payload_bytes + ENVELOPE_ALLOWANCE
}

/// What the server runs: a router behind a layer that trims trailing slashes, so that
/// `/api/v1/app/` is `/api/v1/app`, as on the Svix server. The layer wraps the router
/// rather than being one of its layers, because those run after the route is chosen.
pub type ApiService = NormalizePath<Router>;

fn trailing_slash_tolerant(router: Router) -> ApiService {
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// The API's router; `metrics`, when given, answers `GET /metrics` beside it.
pub fn router(state: ApiState, metrics: Option<Router>) -> ApiService {
    let document = openapi_document();
    let json = Arc::new(document.to_pretty_json().unwrap_or_else(|_| "{}".into()));
    let body_limit = body_limit(&state.settings);

    let (protected, _) = protected_routes().split_for_parts();
    let protected = protected
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let (public, _) = public_routes().split_for_parts();

    let router = Router::new()
        .merge(protected)
        .merge(public)
        // The admin UI's static files: public, like health (its data comes from the API).
        .merge(crate::ui::router())
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let json = json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(error::HttpErrorOut {
                    code: "method_not_allowed".into(),
                    detail: "this route does not accept that method".into(),
                }),
            )
        });
    let edge = Arc::new(Edge {
        requests: state.metrics.requests.clone(),
        timeout: state.settings.request_timeout,
    });
    let router = with_metrics_route(router, metrics)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(edge, observe))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("request handler panicked")).into_response()
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    trailing_slash_tolerant(router)
}

/// The router of a worker-only node: the health routes (and `GET /metrics` when given), and
/// JSON 404s for everything else.
pub fn health_router(state: ApiState, metrics: Option<Router>) -> ApiService {
    let (public, _) = public_routes().split_for_parts();
    let router = public.fallback(|| async {
        ApiError::NotFound(
            "this node only delivers (role = \"worker\"); send API requests to an api node".into(),
        )
    });
    let edge = Arc::new(Edge {
        requests: state.metrics.requests.clone(),
        timeout: state.settings.request_timeout,
    });
    let router = with_metrics_route(router, metrics)
        .layer(middleware::from_fn_with_state(edge, observe))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    trailing_slash_tolerant(router)
}

fn with_metrics_route(router: Router<ApiState>, metrics: Option<Router>) -> Router<ApiState> {
    match metrics {
        Some(metrics) => router.route_service("/metrics", metrics),
        None => router,
    }
}

/// A router of its own (the metrics listener's), as tolerant of a trailing slash as the API.
pub fn standalone(router: Router) -> ApiService {
    trailing_slash_tolerant(router)
}

/// What the edge middleware needs.
struct Edge {
    requests: Arc<measure::RequestSeries>,
    /// `api_request_timeout_secs`.
    timeout: std::time::Duration,
}

/// Bounds every request's time (`api_request_timeout_secs`: 504 once it has passed),
/// measures every request (see [`measure`]) and logs every 5xx once, with its cause, at
/// the edge. One middleware for all three: each layer costs a boxed future and a clone of
/// the routes it wraps per request.
///
/// A request cut off by the timeout is dropped where it waits. A write already handed to
/// the store may still commit (SQLite's writer, a PostgreSQL statement in flight), which
/// is why the answer is 504 "may or may not have been applied", never 503.
async fn observe(State(edge): State<Arc<Edge>>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = match tokio::time::timeout(edge.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout(edge.timeout.as_secs()).into_response(),
    };
    let requests = &edge.requests;
    requests.record(route.as_ref(), &method, response.status().as_u16(), started);
    if response.status().is_server_error() {
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .map(|c| c.0.as_str().to_owned())
            .unwrap_or_default();
        tracing::error!(%method, %path, status = response.status().as_u16(), %cause, "request failed");
    }
    response
}
