//! The OTLP/HTTP exporter: spans from the [`Tracer`]'s bounded queue, in batches, posted as
//! JSON (`ExportTraceServiceRequest`, OTLP's JSON encoding) to `<otlp_endpoint>/v1/traces`.
//!
//! One task exports one batch at a time: up to [`MAX_BATCH`] spans, or whatever arrived
//! within [`BATCH_DELAY`] of a batch's first span, encoded on a blocking thread. A batch the collector refuses or does not
//! answer within [`EXPORT_TIMEOUT`] is dropped, not retried: while the collector is away the
//! queue fills and further spans are dropped at once (nothing on the hot path waits for the
//! collector). Every dropped span is counted in `hookd_trace_spans_dropped_total`, by reason.
//! At shutdown, [`Exporter::finish`] sends what is queued, within a bounded time.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use metrics::Counter;
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, SerializeStruct};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::traces::{Span, Status, Tracer, Value};

/// Spans waiting for export; past this they are dropped.
pub const QUEUE: usize = 4096;
/// The most spans in one export request.
pub const MAX_BATCH: usize = 512;
/// How long a batch waits for more spans before it is sent.
pub const BATCH_DELAY: Duration = Duration::from_secs(1);
/// The longest one export request may take.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The path spans are posted to, under the configured base URL.
const TRACES_PATH: &str = "v1/traces";

/// Where and how spans are exported, from the `otlp_*` options.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The full URL spans are posted to.
    pub url: url::Url,
    pub headers: HeaderMap,
    pub service_name: String,
    pub sample_ratio: f64,
}

/// The counters of the exporter (registered by the `metrics` module).
#[derive(Debug, Clone)]
pub struct TraceMetrics {
    pub exported: Counter,
    /// Spans that found the queue full.
    pub dropped_queue_full: Counter,
    /// Spans whose export failed (refused, unanswered, or rejected by the collector).
    pub dropped_export_failed: Counter,
}

impl TraceMetrics {
    pub fn noop() -> Self {
        Self {
            exported: Counter::noop(),
            dropped_queue_full: Counter::noop(),
            dropped_export_failed: Counter::noop(),
        }
    }
}

/// The URL spans are posted to: `base` with `/v1/traces` added to its path, unless its path
/// already ends so. Only `http` and `https` URLs with a host, no query and no fragment.
pub fn traces_url(base: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(base.trim())
        .map_err(|e| format!("{base:?} is not a URL ({e}); e.g. \"http://127.0.0.1:4318\""))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{base:?} must be an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:4318\""
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{base:?} must have no query or fragment"));
    }
    if !url.path().trim_end_matches('/').ends_with("/v1/traces") {
        let path = format!("{}/{TRACES_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    Ok(url)
}

/// `otlp_headers`: `name=value` pairs separated by commas, as OTEL_EXPORTER_OTLP_HEADERS
/// writes them (each taken as written: no percent-decoding).
pub fn parse_headers(text: &str) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(format!("{pair:?} is not name=value"));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of {name} is not a valid header value"))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// The running exporter, to flush at shutdown.
pub struct Exporter {
    flush: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts exporting: the [`Tracer`] to hand to the API and the dispatcher, and the task.
pub fn start(settings: TraceSettings, metrics: TraceMetrics) -> anyhow::Result<(Tracer, Exporter)> {
    let client = reqwest::Client::builder()
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(EXPORT_TIMEOUT)
        // The collector is the operator's: no proxy taken from the environment in between.
        .no_proxy()
        .user_agent(concat!("hookd/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (queue, spans) = mpsc::channel(QUEUE);
    let tracer = Tracer::new(
        queue,
        settings.sample_ratio,
        metrics.dropped_queue_full.clone(),
    );
    let flush = CancellationToken::new();
    let export = Export {
        client,
        resource: Arc::from(vec![
            ("service.name", Value::Str(settings.service_name.clone())),
            ("service.version", Value::Static(env!("CARGO_PKG_VERSION"))),
            // Tells this node's spans from other nodes' (and from this node's before a
            // restart).
            (
                "service.instance.id",
                Value::Str(ulid::Ulid::new().to_string()),
            ),
        ]),
        settings,
        metrics,
        failing: false,
    };
    let task = tokio::spawn(export.run(spans, flush.clone()));
    Ok((tracer, Exporter { flush, task }))
}

impl Exporter {
    /// Sends the spans still queued, giving up after `within`.
    pub async fn finish(self, within: Duration) {
        self.flush.cancel();
        let task = self.task;
        let abort = task.abort_handle();
        if tokio::time::timeout(within, task).await.is_err() {
            abort.abort();
            tracing::warn!(
                ?within,
                "spans still being exported at shutdown were dropped"
            );
        }
    }
}

struct Export {
    client: reqwest::Client,
    settings: TraceSettings,
    resource: Arc<[(&'static str, Value)]>,
    metrics: TraceMetrics,
    /// The last export failed: the next failure is logged at debug level only.
    failing: bool,
}

impl Export {
    async fn run(mut self, mut spans: mpsc::Receiver<Span>, flush: CancellationToken) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            // Wait for a first span, then for more until the batch is full or due.
            tokio::select! {
                got = spans.recv_many(&mut batch, MAX_BATCH) => {
                    if got == 0 {
                        return;
                    }
                }
                _ = flush.cancelled() => break,
            }
            let send_at = tokio::time::Instant::now() + BATCH_DELAY;
            let mut flushing = false;
            while batch.len() < MAX_BATCH {
                let room = MAX_BATCH - batch.len();
                tokio::select! {
                    got = spans.recv_many(&mut batch, room) => {
                        if got == 0 {
                            break;
                        }
                    }
                    _ = tokio::time::sleep_until(send_at) => break,
                    _ = flush.cancelled() => {
                        flushing = true;
                        break;
                    }
                }
            }
            self.export(&mut batch).await;
            if flushing {
                break;
            }
        }
        // Shutting down: whatever is queued now, then stop.
        loop {
            while batch.len() < MAX_BATCH {
                match spans.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            self.export(&mut batch).await;
        }
    }

    /// Posts `batch` and empties it.
    async fn export(&mut self, batch: &mut Vec<Span>) {
        let count = batch.len() as u64;
        // Encoding a full batch takes milliseconds: off the runtime's worker threads, which
        // serve requests and attempts.
        let spans = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH));
        let resource = self.resource.clone();
        let Ok(body) = tokio::task::spawn_blocking(move || encode(&resource, &spans)).await else {
            self.metrics.dropped_export_failed.increment(count);
            return;
        };
        let sent = self
            .client
            .post(self.settings.url.clone())
            .headers(self.settings.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let failure = match sent {
            Ok(response) if response.status().is_success() => {
                let rejected = rejected_spans(response).await.min(count);
                self.metrics.exported.increment(count - rejected);
                self.metrics.dropped_export_failed.increment(rejected);
                if rejected > 0 {
                    tracing::debug!(rejected, "the collector rejected some spans");
                }
                self.failing = false;
                return;
            }
            Ok(response) => format!("the collector answered {}", response.status()),
            Err(e) => e.to_string(),
        };
        self.metrics.dropped_export_failed.increment(count);
        if self.failing {
            tracing::debug!(error = %failure, spans = count, "exporting spans failed");
        } else {
            tracing::warn!(error = %failure, spans = count, url = %self.settings.url,
                "exporting spans failed; they are dropped (further failures are logged at debug level)");
        }
        self.failing = true;
    }
}

/// The `partialSuccess.rejectedSpans` of a collector's answer, 0 if it gives none.
async fn rejected_spans(response: reqwest::Response) -> u64 {
    let Ok(body) = response.bytes().await else {
        return 0;
    };
    let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return 0;
    };
    match &answer["partialSuccess"]["rejectedSpans"] {
        serde_json::Value::Number(n) => n.as_u64().unwrap_or(0),
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding: ids in hex, 64-bit integers as
/// strings, enums as numbers.
pub fn encode(resource: &[(&'static str, Value)], spans: &[Span]) -> Vec<u8> {
    let request = Request {
        resource_spans: [ResourceSpans {
            resource: Resource {
                attributes: Attributes(resource),
            },
            scope_spans: [ScopeSpans {
                scope: Scope {
                    name: "hookd",
                    version: env!("CARGO_PKG_VERSION"),
                },
                spans: Spans(spans),
            }],
        }],
    };
    serde_json::to_vec(&request).expect("spans always encode")
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    resource_spans: [ResourceSpans<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSpans<'a> {
    resource: Resource<'a>,
    scope_spans: [ScopeSpans<'a>; 1],
}

#[derive(Serialize)]
struct Resource<'a> {
    attributes: Attributes<'a>,
}

#[derive(Serialize)]
struct ScopeSpans<'a> {
    scope: Scope,
    spans: Spans<'a>,
}

#[derive(Serialize)]
struct Scope {
    name: &'static str,
    version: &'static str,
}

struct Spans<'a>(&'a [Span]);

impl Serialize for Spans<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for span in self.0 {
            seq.serialize_element(&EncodedSpan(span))?;
        }
        seq.end()
    }
}

struct EncodedSpan<'a>(&'a Span);

impl Serialize for EncodedSpan<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let span = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("traceId", &hex::encode(span.trace_id))?;
        map.serialize_entry("spanId", &hex::encode(span.span_id))?;
        if let Some(parent) = span.parent_span_id {
            map.serialize_entry("parentSpanId", &hex::encode(parent))?;
        }
        map.serialize_entry("name", span.name)?;
        map.serialize_entry("kind", &(span.kind as u8))?;
        map.serialize_entry("startTimeUnixNano", &span.start.to_string())?;
        map.serialize_entry("endTimeUnixNano", &span.end.to_string())?;
        map.serialize_entry("attributes", &Attributes(&span.attributes))?;
        map.serialize_entry("status", &EncodedStatus(&span.status))?;
        map.end()
    }
}

struct EncodedStatus<'a>(&'a Status);

impl Serialize for EncodedStatus<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // STATUS_CODE_OK is 1, STATUS_CODE_ERROR 2.
        match self.0 {
            Status::Ok => {
                let mut status = s.serialize_struct("Status", 1)?;
                status.serialize_field("code", &1)?;
                status.end()
            }
            Status::Error(message) => {
                let mut status = s.serialize_struct("Status", 2)?;
                status.serialize_field("code", &2)?;
                status.serialize_field("message", message)?;
                status.end()
            }
        }
    }
}

struct Attributes<'a>(&'a [(&'static str, Value)]);

impl Serialize for Attributes<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for (key, value) in self.0 {
            seq.serialize_element(&KeyValue { key, value })?;
        }
        seq.end()
    }
}

struct KeyValue<'a> {
    key: &'a str,
    value: &'a Value,
}

impl Serialize for KeyValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut kv = s.serialize_struct("KeyValue", 2)?;
        kv.serialize_field("key", self.key)?;
        kv.serialize_field("value", &AnyValue(self.value))?;
        kv.end()
    }
}

struct AnyValue<'a>(&'a Value);

impl Serialize for AnyValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Value::Str(v) => map.serialize_entry("stringValue", v)?,
            Value::Static(v) => map.serialize_entry("stringValue", v)?,
            // int64 is a string in OTLP's JSON encoding.
            Value::Int(v) => map.serialize_entry("intValue", &v.to_string())?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::traces::SpanKind;

    #[test]
    fn the_base_url_gets_the_traces_path() {
        let url = |s| traces_url(s).map(|u| u.to_string());
        assert_eq!(
            url("http://127.0.0.1:4318").unwrap(),
            "http://127.0.0.1:4318/v1/traces"
        );
        assert_eq!(
            url("https://otel.example.com/base/").unwrap(),
            "https://otel.example.com/base/v1/traces"
        );
        assert_eq!(
            url("http://c:4318/v1/traces").unwrap(),
            "http://c:4318/v1/traces"
        );
        assert!(url("127.0.0.1:4318").is_err());
        assert!(url("ftp://c/").is_err());
        assert!(url("http://c:4318/?a=b").is_err());
        assert!(url("not a url").is_err());
    }

    #[test]
    fn headers_are_name_value_pairs() {
        let h = parse_headers("authorization=Bearer a=b, x-tenant = ops").unwrap();
        assert_eq!(h["authorization"], "Bearer a=b");
        assert_eq!(h["x-tenant"], "ops");
        assert!(parse_headers("").unwrap().is_empty());
        assert!(parse_headers("novalue").is_err());
        assert!(parse_headers("bad name=x").is_err());
        assert!(parse_headers("x=a\u{1}b").is_err());
    }

    #[test]
    fn spans_encode_as_otlp_json() {
        let span = Span {
            trace_id: [0xab; 16],
            span_id: [1; 8],
            parent_span_id: Some([2; 8]),
            name: "message.attempt",
            kind: SpanKind::Client,
            start: 1_700_000_000_000_000_000,
            end: 1_700_000_000_000_000_500,
            attributes: vec![
                ("a", Value::Str("x\"y".into())),
                ("b", Value::Int(-3)),
                ("c", Value::Static("z")),
            ],
            status: Status::Error("the endpoint answered 500".into()),
        };
        let body = encode(&[("service.name", Value::Static("hookd"))], &[span]);
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let rs = &json["resourceSpans"][0];
        assert_eq!(
            rs["resource"]["attributes"][0],
            serde_json::json!({"key": "service.name", "value": {"stringValue": "hookd"}})
        );
        let s = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(s["traceId"], "ab".repeat(16));
        assert_eq!(s["spanId"], "0101010101010101");
        assert_eq!(s["parentSpanId"], "0202020202020202");
        assert_eq!(s["kind"], 3);
        assert_eq!(s["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(s["endTimeUnixNano"], "1700000000000000500");
        assert_eq!(s["attributes"][0]["value"]["stringValue"], "x\"y");
        assert_eq!(s["attributes"][1]["value"]["intValue"], "-3");
        assert_eq!(s["attributes"][2]["value"]["stringValue"], "z");
        assert_eq!(
            s["status"],
            serde_json::json!({"code": 2, "message": "the endpoint answered 500"})
        );
    }
}
