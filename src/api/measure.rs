//! What the API measures: messages accepted, and every request by route template, method
//! and status, with its latency.
//!
//! The route label is the template the router matched (`/api/v1/app/{app_id}/msg`), never
//! the path requested, and `unmatched` for requests no route took, so labels stay bounded
//! whatever clients send; so does the method (`other` beyond the usual ones). The messages
//! counter is a handle registered at start (one atomic add per message). A request's handles
//! sit in a table built at start, one slot per route template, method and usual status,
//! filled on first use: a request costs one map lookup and two atomic updates, no lock and
//! no allocation. Only a status outside the usual ones goes through the registry by name.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::Method;
use metrics::{Counter, Histogram, Key, Label, Level, Metadata, NoopRecorder, Recorder};

/// Names of the request metrics (the others are named where they are registered).
pub const HTTP_REQUESTS: &str = "hookd_http_requests_total";
pub const HTTP_REQUEST_SECONDS: &str = "hookd_http_request_duration_seconds";

/// The route label of requests no route took.
const UNMATCHED: &str = "unmatched";

const METADATA: Metadata<'static> = Metadata::new("hookd::api", Level::INFO, None);

/// Status codes whose series get a slot of their own per route and method (the ones hookd
/// answers); others are looked up in the registry by name.
const STATUSES: [u16; 24] = [
    200, 201, 202, 204, 304, 400, 401, 403, 404, 405, 408, 409, 410, 411, 413, 414, 415, 422, 429,
    431, 500, 502, 503, 504,
];
const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other",
];

/// The handles of one route and method, registered on first use.
#[derive(Default)]
struct Series {
    by_status: [OnceLock<Counter>; STATUSES.len()],
    duration: OnceLock<Histogram>,
}

#[derive(Clone)]
pub struct ApiMetrics {
    pub messages_accepted: Counter,
    /// Shared by every request: the middleware's state clones one `Arc` per request.
    pub(super) requests: Arc<RequestSeries>,
}

/// The request metrics' registry and the table of their handles.
pub(super) struct RequestSeries {
    recorder: Arc<dyn Recorder + Send + Sync>,
    /// The index of each known route template; its series are `series[index * METHODS.len()
    /// + method]`. Built once, read without a lock.
    routes: HashMap<Box<str>, usize>,
    series: Box<[Series]>,
}

impl ApiMetrics {
    /// `messages_accepted` registered already; request metrics registered in `recorder`,
    /// with a slot for each of `routes` (the router's templates) so that a request costs a
    /// map lookup and atomic updates once its series exist.
    pub fn new<'a>(
        messages_accepted: Counter,
        recorder: Arc<dyn Recorder + Send + Sync>,
        routes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut index = HashMap::new();
        for route in routes.into_iter().chain([UNMATCHED]) {
            let next = index.len();
            index.entry(Box::from(route)).or_insert(next);
        }
        let series = (0..index.len() * METHODS.len())
            .map(|_| Series::default())
            .collect();
        Self {
            messages_accepted,
            requests: Arc::new(RequestSeries {
                recorder,
                routes: index,
                series,
            }),
        }
    }

    pub fn noop() -> Self {
        Self::new(Counter::noop(), Arc::new(NoopRecorder), [])
    }
}

impl RequestSeries {
    /// Counts and times a request answered with `status`, under the route template it
    /// matched (`None`: no route took it).
    pub(super) fn record(
        &self,
        route: Option<&MatchedPath>,
        method: &Method,
        status: u16,
        started: Instant,
    ) {
        let route = route.map_or(UNMATCHED, MatchedPath::as_str);
        let seconds = started.elapsed().as_secs_f64();
        self.request(route, method_index(method), status, seconds);
    }

    fn request(&self, route: &str, method: usize, status: u16, seconds: f64) {
        let Some(route_index) = self.routes.get(route) else {
            // A route the router gained without telling us: the slow path, still bounded.
            self.counter(route, method, status).increment(1);
            self.histogram(route, method).record(seconds);
            return;
        };
        let series = &self.series[route_index * METHODS.len() + method];
        match STATUSES.iter().position(|s| *s == status) {
            Some(i) => series.by_status[i]
                .get_or_init(|| self.counter(route, method, status))
                .increment(1),
            None => self.counter(route, method, status).increment(1),
        }
        series
            .duration
            .get_or_init(|| self.histogram(route, method))
            .record(seconds);
    }

    fn counter(&self, route: &str, method: usize, status: u16) -> Counter {
        let key = Key::from_parts(
            HTTP_REQUESTS,
            vec![
                Label::new("route", route.to_owned()),
                Label::new("method", METHODS[method]),
                Label::new("status", status.to_string()),
            ],
        );
        self.recorder.register_counter(&key, &METADATA)
    }

    fn histogram(&self, route: &str, method: usize) -> Histogram {
        let key = Key::from_parts(
            HTTP_REQUEST_SECONDS,
            vec![
                Label::new("route", route.to_owned()),
                Label::new("method", METHODS[method]),
            ],
        );
        self.recorder.register_histogram(&key, &METADATA)
    }
}

/// The index in [`METHODS`] of a request's method.
fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}
