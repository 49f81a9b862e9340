//! Traces: with `otlp_endpoint` set, hookd exports a span per message accepted and per
//! delivery attempt to an OTLP/HTTP collector, here an in-process one that decodes what
//! it is sent. The spans of one message share its trace, the attempts being children of the
//! ingest span, on every node.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

use crate::delivery::{SECRET, app_with_endpoint, attempts};
use hookd::config::Role;

use crate::helpers::{TestApp, eventually};
use crate::metrics::{sample, scrape};
use crate::receiver::{Receiver, Reply};

/// An OTLP/HTTP collector: accepts `POST /v1/traces` in OTLP's JSON encoding and keeps
/// every span it is sent, with the resource it came with and the request's headers.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Value>>>,
    resources: Arc<Mutex<Vec<Value>>>,
    headers: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Collector {
    async fn start() -> (Collector, SocketAddr) {
        let collector = Collector::default();
        let router = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(collector.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        (collector, addr)
    }

    fn spans(&self) -> Vec<Value> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of a message (by its `hookd.message.id` attribute) once there are `n`.
    async fn spans_of(&self, msg_id: &str, n: usize) -> Vec<Value> {
        eventually("spans to be exported", || async {
            let of: Vec<Value> = self
                .spans()
                .into_iter()
                .filter(|s| attribute(s, "hookd.message.id") == json!(msg_id))
                .collect();
            (of.len() >= n).then_some(of)
        })
        .await
    }
}

async fn receive(
    State(collector): State<Collector>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    assert_eq!(headers["content-type"], "application/json");
    let request: Value = serde_json::from_slice(&body).expect("OTLP JSON");
    for resource_spans in request["resourceSpans"].as_array().expect("resourceSpans") {
        collector
            .resources
            .lock()
            .unwrap()
            .push(resource_spans["resource"].clone());
        for scope in resource_spans["scopeSpans"].as_array().expect("scopeSpans") {
            assert_eq!(scope["scope"]["name"], "hookd");
            // Each span is kept with the resource (the node) it came from.
            let spans = scope["spans"]
                .as_array()
                .expect("spans")
                .iter()
                .map(|span| {
                    let mut span = span.clone();
                    span["resource"] = resource_spans["resource"].clone();
                    span
                });
            collector.spans.lock().unwrap().extend(spans);
        }
    }
    collector.headers.lock().unwrap().push(headers);
    (StatusCode::OK, "{}")
}

/// An attribute's value, as a string, a number (OTLP's JSON writes int64 as a string) or
/// null when the span has none.
fn attribute(span: &Value, key: &str) -> Value {
    let Some(kv) = span["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|kv| kv["key"] == key))
    else {
        return Value::Null;
    };
    let value = &kv["value"];
    if let Some(s) = value["stringValue"].as_str() {
        return json!(s);
    }
    if let Some(i) = value["intValue"].as_str() {
        return json!(i.parse::<i64>().expect("an int64"));
    }
    value.clone()
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn is_hex_id(value: &Value, len: usize) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn a_message_and_its_attempts_share_one_trace() {
    let (collector, collector_addr) = Collector::start().await;
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| {
            c.otlp_endpoint = format!("http://{collector_addr}");
            c.otlp_headers = "authorization=Bearer collector-token".into();
            c.retry_schedule = vec![1];
            c.retry_jitter = 0.0;
        })
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.script("/flaky", [Reply::status(500)]);
    let (app_id, flaky) = app_with_endpoint(&app, &receiver, "/flaky").await;
    let steady = app
        .create_endpoint(
            &app_id,
            json!({"url": receiver.url("/steady?token=s3cret"), "secret": SECRET}),
        )
        .await;
    let steady = steady["id"].as_str().unwrap();
    let msg = app
        .create_message(
            &app_id,
            json!({"eventType": "order.paid", "eventId": "evt-1", "payload": {"n": 1}}),
        )
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    // The flaky endpoint fails once (500), then takes the retry a second later.
    receiver.wait_for("/flaky", 2).await;
    attempts(&app, &app_id, msg_id, 3).await;

    // One ingest span and three attempt spans.
    let spans = collector.spans_of(msg_id, 4).await;
    let ingest = named(&spans, "message.create");
    assert_eq!(ingest.len(), 1, "{spans:#?}");
    let ingest = ingest[0];
    assert!(is_hex_id(&ingest["traceId"], 32), "{ingest}");
    assert!(is_hex_id(&ingest["spanId"], 16), "{ingest}");
    assert!(
        ingest.get("parentSpanId").is_none(),
        "the ingest span is the root"
    );
    assert_eq!(ingest["kind"], 4, "PRODUCER");
    assert_eq!(ingest["status"]["code"], 1);
    assert_eq!(attribute(ingest, "hookd.app.id"), json!(app_id));
    assert_eq!(attribute(ingest, "hookd.event_type"), json!("order.paid"));
    assert_eq!(attribute(ingest, "hookd.message.event_id"), json!("evt-1"));
    assert_eq!(attribute(ingest, "hookd.message.deliveries"), json!(2));
    let start: u64 = ingest["startTimeUnixNano"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let end: u64 = ingest["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
    assert!(
        start > 1_600_000_000_000_000_000 && end >= start,
        "{ingest}"
    );

    let tries = named(&spans, "message.attempt");
    assert_eq!(tries.len(), 3, "{spans:#?}");
    let mut span_ids = Vec::new();
    for attempt in &tries {
        assert_eq!(
            attempt["traceId"], ingest["traceId"],
            "one trace per message"
        );
        assert_eq!(
            attempt["parentSpanId"], ingest["spanId"],
            "a child of the ingest span"
        );
        assert!(is_hex_id(&attempt["spanId"], 16));
        span_ids.push(attempt["spanId"].clone());
        assert_eq!(attempt["kind"], 3, "CLIENT");
        assert_eq!(attribute(attempt, "hookd.app.id"), json!(app_id));
        assert_eq!(attribute(attempt, "http.request.method"), json!("POST"));
        assert_eq!(attribute(attempt, "server.address"), json!("127.0.0.1"));
        assert!(
            attribute(attempt, "hookd.attempt.id")
                .as_str()
                .unwrap()
                .starts_with("atmpt_")
        );
    }
    span_ids.sort_by_key(|v| v.to_string());
    span_ids.dedup();
    assert_eq!(span_ids.len(), 3, "each attempt has its own span id");

    let of = |endpoint: &str| -> Vec<&Value> {
        let mut of: Vec<&Value> = tries
            .iter()
            .copied()
            .filter(|s| attribute(s, "hookd.endpoint.id") == json!(endpoint))
            .collect();
        of.sort_by_key(|s| attribute(s, "hookd.attempt.number").as_i64());
        of
    };
    let flaky_tries = of(&flaky);
    assert_eq!(flaky_tries.len(), 2);
    let failed = flaky_tries[0];
    assert_eq!(attribute(failed, "hookd.attempt.number"), json!(1));
    assert_eq!(attribute(failed, "http.response.status_code"), json!(500));
    assert_eq!(attribute(failed, "hookd.attempt.outcome"), json!("failure"));
    assert_eq!(attribute(failed, "error.type"), json!("http_5xx"));
    assert_eq!(attribute(failed, "hookd.delivery.next"), json!("retry"));
    assert_eq!(attribute(failed, "url.full"), json!(receiver.url("/flaky")));
    assert_eq!(failed["status"]["code"], 2, "ERROR");
    assert_eq!(failed["status"]["message"], "the endpoint answered 500");
    let retried = flaky_tries[1];
    assert_eq!(attribute(retried, "hookd.attempt.number"), json!(2));
    assert_eq!(attribute(retried, "http.response.status_code"), json!(200));
    assert_eq!(
        attribute(retried, "hookd.attempt.outcome"),
        json!("success")
    );
    assert_eq!(attribute(retried, "error.type"), Value::Null);
    assert_eq!(
        attribute(retried, "hookd.delivery.next"),
        json!("delivered")
    );
    assert_eq!(retried["status"]["code"], 1);

    let steady_tries = of(steady);
    assert_eq!(steady_tries.len(), 1);
    assert_eq!(
        attribute(steady_tries[0], "http.response.status_code"),
        json!(200)
    );
    assert_eq!(
        attribute(steady_tries[0], "url.full"),
        json!(receiver.url("/steady")),
        "the query string (which may hold a secret) is left out"
    );
    assert_eq!(
        attribute(steady_tries[0], "hookd.attempt.trigger"),
        json!("scheduled")
    );

    // The attempts' ids are the ones the API shows.
    let api_ids: Vec<Value> = attempts(&app, &app_id, msg_id, 3)
        .await
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    for attempt in &tries {
        assert!(api_ids.contains(&attribute(attempt, "hookd.attempt.id")));
    }

    // What every export carried: the resource and the configured headers.
    let resource = collector.resources.lock().unwrap()[0].clone();
    assert!(
        resource["attributes"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "service.name", "value": {"stringValue": "hookd"}})),
        "{resource}"
    );
    for headers in collector.headers.lock().unwrap().iter() {
        assert_eq!(headers["authorization"], "Bearer collector-token");
    }

    let text = scrape(&app).await;
    let exported = sample(&text, "hookd_trace_spans_exported_total", &[]).unwrap();
    assert!(exported >= 4.0, "{exported}");
    let dropped = [("reason", "queue_full")];
    assert_eq!(
        sample(&text, "hookd_trace_spans_dropped_total", &dropped),
        Some(0.0)
    );
    app.stop().await;
}

/// The resource attribute `key` of the node a span came from.
fn resource(span: &Value, key: &str) -> Value {
    attribute(&span["resource"], key)
}

/// Accepted by an API node, delivered by a worker node (on PostgreSQL): each exports its own
/// spans, and they still make one trace, derived from the message id on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_never_talk_make_one_trace() {
    let (collector, collector_addr) = Collector::start().await;
    let api = TestApp::builder()
        .with_postgres()
        .delivering_to_loopback()
        .with_config(move |c| {
            c.role = Role::Api;
            c.otlp_endpoint = format!("http://{collector_addr}");
        })
        .spawn()
        .await;
    let (url, token) = (api.config().database_url.clone(), api.token.clone());
    let worker = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| {
            c.database_url = url;
            c.admin_token = token;
            c.role = Role::Worker;
            c.otlp_endpoint = format!("http://{collector_addr}");
        })
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.script("/split", [Reply::status(503)]);
    let (app_id, endpoint_id) = app_with_endpoint(&api, &receiver, "/split").await;
    let msg = api
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    receiver.wait_for("/split", 1).await;

    let spans = collector.spans_of(msg_id, 2).await;
    let ingest = named(&spans, "message.create")[0];
    let attempt = named(&spans, "message.attempt")[0];
    assert_eq!(attempt["traceId"], ingest["traceId"]);
    assert_eq!(attempt["parentSpanId"], ingest["spanId"]);
    assert_eq!(attribute(attempt, "hookd.endpoint.id"), json!(endpoint_id));
    assert_eq!(attribute(attempt, "http.response.status_code"), json!(503));
    assert_eq!(attribute(attempt, "error.type"), json!("http_5xx"));
    assert_eq!(attempt["status"]["code"], 2);
    assert_eq!(resource(ingest, "service.name"), json!("hookd"));
    let (api_node, worker_node) = (
        resource(ingest, "service.instance.id"),
        resource(attempt, "service.instance.id"),
    );
    assert!(api_node.is_string() && worker_node.is_string());
    assert_ne!(api_node, worker_node, "exported by two nodes");
    worker.stop().await;
    api.stop().await;
}

#[tokio::test]
async fn each_message_of_a_batch_has_its_trace() {
    let (collector, collector_addr) = Collector::start().await;
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| c.otlp_endpoint = format!("http://{collector_addr}"))
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/batch").await;
    let batch = json!({"messages": [
        {"eventType": "a", "payload": {"n": 1}},
        {"eventType": "bad type!", "payload": {}},
        {"eventType": "a", "payload": {"n": 2}},
    ]});
    let (status, body) = app
        .post(&format!("/api/v1/app/{app_id}/msg/batch"), Some(batch))
        .await;
    assert_eq!(status.as_u16(), 207, "{body}");
    receiver.wait_for("/batch", 2).await;
    let ids: Vec<&str> = [0, 2]
        .iter()
        .map(|i| body["data"][i]["message"]["id"].as_str().unwrap())
        .collect();
    let mut traces = Vec::new();
    for id in &ids {
        let spans = collector.spans_of(id, 2).await;
        let ingest = named(&spans, "message.create")[0];
        let attempt = named(&spans, "message.attempt")[0];
        assert_eq!(attribute(ingest, "hookd.message.deliveries"), json!(1));
        assert_eq!(attempt["traceId"], ingest["traceId"]);
        assert_eq!(attempt["parentSpanId"], ingest["spanId"]);
        traces.push(ingest["traceId"].clone());
    }
    assert_ne!(traces[0], traces[1], "one trace per message, not per batch");
    app.stop().await;
    // The refused item made no span.
    let ingests = named(&collector.spans(), "message.create").len();
    assert_eq!(ingests, 2);
}

#[tokio::test]
async fn spans_still_queued_are_sent_at_shutdown() {
    let (collector, collector_addr) = Collector::start().await;
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| c.otlp_endpoint = format!("http://{collector_addr}/v1/traces"))
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let msg = app
            .create_message(&app_id, json!({"eventType": "a", "payload": {"n": n}}))
            .await;
        ids.push(msg["id"].as_str().unwrap().to_owned());
    }
    receiver.wait_for("/r", 5).await;
    for id in &ids {
        attempts(&app, &app_id, id, 1).await;
    }
    // Spans wait up to a second for their batch; stopping sends them at once.
    app.stop().await;
    let spans = collector.spans();
    for id in &ids {
        let of: Vec<_> = spans
            .iter()
            .filter(|s| attribute(s, "hookd.message.id") == json!(id))
            .collect();
        assert_eq!(
            of.len(),
            2,
            "the ingest and attempt spans of {id}: {spans:#?}"
        );
    }
}

#[tokio::test]
async fn traces_are_off_by_default_and_a_zero_sample_ratio_keeps_nothing() {
    let (collector, collector_addr) = Collector::start().await;
    let receiver = Receiver::start().await;
    let off = TestApp::builder().delivering_to_loopback().spawn().await;
    let unsampled = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| {
            c.otlp_endpoint = format!("http://{collector_addr}");
            c.otlp_sample_ratio = 0.0;
        })
        .spawn()
        .await;
    for (app, path) in [(&off, "/off"), (&unsampled, "/unsampled")] {
        let (app_id, _) = app_with_endpoint(app, &receiver, path).await;
        app.create_message(&app_id, json!({"eventType": "a", "payload": {}}))
            .await;
        receiver.wait_for(path, 1).await;
    }
    off.stop().await;
    unsampled.stop().await;
    assert!(collector.spans().is_empty(), "{:#?}", collector.spans());
}

#[tokio::test]
async fn an_unreachable_collector_drops_spans_and_delivery_goes_on() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| c.otlp_endpoint = format!("http://{addr}"))
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    receiver.wait_for("/r", 1).await;
    attempts(&app, &app_id, msg["id"].as_str().unwrap(), 1).await;
    let failed = [("reason", "export_failed")];
    eventually("the failed export to be counted", || async {
        let text = scrape(&app).await;
        let dropped = sample(&text, "hookd_trace_spans_dropped_total", &failed)?;
        (dropped >= 2.0).then_some(())
    })
    .await;
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "hookd_trace_spans_exported_total", &[]),
        Some(0.0)
    );
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("shutdown is not held up by the collector");
}

#[test]
fn a_bad_otlp_endpoint_is_refused_at_start() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut config = hookd::config::Config::defaults();
    config.listen = "127.0.0.1:0".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.data_dir = dir.path().to_owned();
    config.otlp_endpoint = "collector:4318".into();
    let err = runtime
        .block_on(hookd::app::Server::start(config))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("otlp_endpoint"), "{err}");
}
