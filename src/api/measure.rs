//! What the API measures: messages accepted, and every request by route template, method
//! and status, with its latency.
//!
//! The route label is the template the router matched (`/api/v1/app/{app_id}/msg`), never
//! the path requested, and `unmatched` for requests no route took, so labels stay bounded
//! whatever clients send; so does the method (`other` beyond the usual ones). The messages
//! counter is a handle registered at start (one atomic add per message); a request's handles
//! are looked up in the recorder's registry by route, method and status.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Key, Label, Level, Metadata, NoopRecorder, Recorder};

/// Names of the request metrics (the others are named where they are registered).
pub const HTTP_REQUESTS: &str = "hookd_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "hookd_http_request_duration_seconds";

const METADATA: Metadata<'static> = Metadata::new("hookd::api", Level::INFO, None);

#[derive(Clone)]
pub struct ApiMetrics {
    pub messages_accepted: Counter,
    recorder: Arc<dyn Recorder + Send + Sync>,
}

impl ApiMetrics {
    /// `messages_accepted` registered already; request metrics registered in `recorder`.
    pub fn new(messages_accepted: Counter, recorder: Arc<dyn Recorder + Send + Sync>) -> Self {
        Self {
            messages_accepted,
            recorder,
        }
    }

    pub fn noop() -> Self {
        Self::new(Counter::noop(), Arc::new(NoopRecorder))
    }

    fn request(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        let route = Label::new("route", route.to_owned());
        let method = Label::new("method", method);
        let counted = Key::from_parts(
            HTTP_REQUESTS,
            vec![
                route.clone(),
                method.clone(),
                Label::new("status", status.to_string()),
            ],
        );
        self.recorder
            .register_counter(&counted, &METADATA)
            .increment(1);
        let timed = Key::from_parts(HTTP_REQUEST_SECONDS, vec![route, method]);
        self.recorder
            .register_histogram(&timed, &METADATA)
            .record(seconds);
    }
}

/// Middleware: counts and times each request under its route template.
pub async fn measure_requests(
    State(metrics): State<ApiMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    metrics.request(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
