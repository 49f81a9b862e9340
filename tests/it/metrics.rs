//! `GET /metrics` (Prometheus text) and `GET /api/v1/health/ready`: the figures move with
//! the traffic, labels stay bounded, the token and the separate listener are honoured, and
//! readiness notices a stuck queue.

use std::time::Duration;

use hookd::delivery::clock::ManualClock;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::delivery::app_with_endpoint;
use crate::helpers::{TestApp, eventually, send};
use crate::receiver::{Receiver, Reply};

/// The value of the sample `name{labels}` (labels as Prometheus writes them, in any order),
/// if the text has it.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let have: Vec<&str> = if series_labels.is_empty() {
                Vec::new()
            } else {
                series_labels.split(',').collect()
            };
            let want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            (have.len() == want.len() && want.iter().all(|w| have.contains(&w.as_str())))
                .then(|| value.parse().ok())
                .flatten()
        })
}

async fn scrape(app: &TestApp) -> String {
    scrape_at(app, &app.base_url(), None).await
}

async fn scrape_at(app: &TestApp, base: &str, token: Option<&str>) -> String {
    let mut request = app.client.get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("scrape failed");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_move_with_messages_attempts_and_requests() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/fail", Reply::status(503));
    let (ok_app, _) = app_with_endpoint(&app, &receiver, "/ok").await;
    let (fail_app, _) = app_with_endpoint(&app, &receiver, "/fail").await;
    let before = scrape(&app).await;
    assert_eq!(
        sample(&before, "hookd_messages_accepted_total", &[]),
        Some(0.0)
    );
    assert_eq!(
        sample(&before, "hookd_endpoints", &[("state", "enabled")]),
        Some(2.0)
    );

    for i in 0..3 {
        app.create_message(&ok_app, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    app.create_message(&fail_app, json!({"eventType": "a", "payload": {}}))
        .await;
    receiver.wait_for("/ok", 3).await;
    receiver.wait_for("/fail", 1).await;
    // Bad input and an unknown route are counted, not crashed on.
    let (status, _) = app
        .post(
            &format!("/api/v1/app/{ok_app}/msg"),
            Some(json!({"payload": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.get("/api/v1/no/such/route/msg_123").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let text = eventually("the attempts to be counted", || async {
        let text = scrape(&app).await;
        let ok = sample(
            &text,
            "hookd_attempts_total",
            &[("outcome", "success"), ("error_class", "none")],
        );
        let failed = sample(
            &text,
            "hookd_attempts_total",
            &[("outcome", "failure"), ("error_class", "http_5xx")],
        );
        (ok == Some(3.0) && failed >= Some(1.0)).then_some(text)
    })
    .await;
    assert_eq!(
        sample(&text, "hookd_messages_accepted_total", &[]),
        Some(4.0)
    );
    let msg_route = [("route", "/api/v1/app/{app_id}/msg"), ("method", "POST")];
    let with = |status: &'static str| {
        let mut labels = msg_route.to_vec();
        labels.push(("status", status));
        sample(&text, "hookd_http_requests_total", &labels)
    };
    assert_eq!(with("202"), Some(4.0));
    assert_eq!(with("422"), Some(1.0));
    assert_eq!(
        sample(
            &text,
            "hookd_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "hookd_http_request_duration_seconds_count",
            &msg_route
        ),
        Some(5.0)
    );
    assert!(sample(&text, "hookd_attempt_duration_seconds_count", &[]) >= Some(4.0));
    assert_eq!(
        sample(&text, "hookd_first_attempt_latency_seconds_count", &[]),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &text,
            "hookd_first_attempt_latency_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(4.0)
    );
    let writer = if app.database().is_some() {
        "pg_messages"
    } else {
        "sqlite"
    };
    let jobs = sample(&text, "hookd_store_batch_jobs_sum", &[("writer", writer)]);
    assert!(jobs >= Some(4.0), "{writer}: {jobs:?}");
    assert!(
        sample(
            &text,
            "hookd_store_commit_duration_seconds_count",
            &[("writer", writer)]
        ) >= Some(1.0)
    );
    assert!(sample(&text, "hookd_db_connections_max", &[]) >= Some(1.0));
    assert_eq!(sample(&text, "hookd_store_up", &[]), Some(1.0));
    assert_eq!(sample(&text, "hookd_attempts_in_flight", &[]), Some(0.0));
    // The failing delivery waits for its retry, once its attempt is recorded.
    let queue = eventually("the retry to be scheduled", || async {
        let text = scrape(&app).await;
        (sample(&text, "hookd_deliveries_scheduled", &[]) == Some(1.0)).then_some(text)
    })
    .await;
    assert_eq!(sample(&queue, "hookd_deliveries_pending", &[]), Some(1.0));
    assert_eq!(sample(&queue, "hookd_deliveries_due", &[]), Some(0.0));
    assert_eq!(sample(&queue, "hookd_deliveries_in_flight", &[]), Some(0.0));
    // No unbounded values in labels: ids and URLs never appear.
    for id in [ok_app.as_str(), fail_app.as_str(), "msg_123", "127.0.0.1"] {
        assert!(!text.contains(id), "{id} leaked into a label");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_token_is_required_when_set() {
    let app = TestApp::builder()
        .with_config(|c| c.metrics_token = "scrape-secret".into())
        .spawn()
        .await;
    let (status, body) = send(app.raw_request(Method::GET, "/metrics")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = send(
        app.raw_request(Method::GET, "/metrics")
            .bearer_auth("wrong"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The admin token is not the metrics token.
    let (status, _) = send(
        app.raw_request(Method::GET, "/metrics")
            .bearer_auth(&app.token),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let text = scrape_at(&app, &app.base_url(), Some("scrape-secret")).await;
    assert!(text.contains("# TYPE hookd_messages_accepted_total counter"));
    app.stop().await;
}

#[tokio::test]
async fn metrics_listen_serves_them_apart_from_the_api() {
    let app = TestApp::builder()
        .with_config(|c| c.metrics_listen = "127.0.0.1:0".into())
        .spawn()
        .await;
    let (status, _) = send(app.raw_request(Method::GET, "/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let at = app.metrics_addr().expect("a metrics listener");
    assert_ne!(at, app.addr);
    let text = scrape_at(&app, &format!("http://{at}"), None).await;
    assert!(text.contains("hookd_deliveries_due 0"), "{text}");
    // Only /metrics is there.
    let response = app
        .client
        .get(format!("http://{at}/api/v1/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[test]
fn a_bad_metrics_listen_address_is_refused_at_start() {
    let err = hookd::config::Config::load(
        None,
        [("HOOKD_METRICS_LISTEN".to_owned(), "localhost".to_owned())],
        &Default::default(),
    )
    .expect_err("refused");
    assert!(err.to_string().contains("metrics_listen"), "{err}");
}

#[tokio::test]
async fn ready_reports_the_store_and_the_queue() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/api/v1/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ready"], json!(true));
    assert_eq!(body["storeReachable"], json!(true));
    assert_eq!(body["oldestDueAgeSeconds"], json!(0.0));
    assert_eq!(body["maxLagSeconds"], json!(null));
    assert_eq!(body["reason"], json!(null));
    // A delivering node on PostgreSQL has a node id (and beats); on SQLite there is none.
    assert_eq!(
        body["nodeId"]
            .as_str()
            .is_some_and(|id| id.starts_with("node_")),
        app.database().is_some(),
        "{body}"
    );
    // No token needed, like /api/v1/health.
    let (status, _) = send(app.raw_request(Method::GET, "/api/v1/health/ready/")).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

/// A stuck queue: the only delivery slot is taken by an endpoint that does not answer, the
/// other deliveries wait, and the clock moves ten minutes on.
#[tokio::test]
async fn ready_fails_once_the_oldest_due_delivery_waits_longer_than_the_limit() {
    let clock = ManualClock::new(hookd::domain::time::now());
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_clock(clock.clone())
        .with_config(|c| {
            c.delivery_concurrency = 1;
            c.endpoint_concurrency = 1;
            c.request_timeout_secs = 60;
            c.ready_max_lag_secs = 120;
        })
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/hang", Reply::status(200).after(Duration::from_secs(60)));
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/hang").await;
    for i in 0..4 {
        app.create_message(&app_id, json!({"eventType": "a", "payload": {"i": i}}))
            .await;
    }
    receiver.wait_for("/hang", 1).await;
    let (status, body) = app.get("/api/v1/health/ready").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["maxLagSeconds"], json!(120));

    clock.advance(Duration::from_secs(600));
    let (status, body) = app.get("/api/v1/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], json!(false));
    assert_eq!(body["reason"], json!("queue_lagging"));
    assert_eq!(body["storeReachable"], json!(true));
    let age = body["oldestDueAgeSeconds"].as_f64().unwrap();
    assert!(age > 590.0, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("ready_max_lag_secs")
    );

    let text = scrape(&app).await;
    assert!(
        sample(&text, "hookd_oldest_due_delivery_age_seconds", &[]) > Some(590.0),
        "{text}"
    );
    assert!(
        sample(&text, "hookd_deliveries_due", &[]) >= Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "hookd_attempts_in_flight", &[]), Some(1.0));
    // The Svix health check does not look at the queue.
    let (status, _) = app.get("/api/v1/health").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.stop().await;
}

/// The store going away: readiness says so (503, `store_unreachable`), `hookd_store_up`
/// drops to 0 while the rest of /metrics still answers, and both recover with the store.
#[tokio::test]
async fn ready_and_metrics_report_an_unreachable_store() {
    let app = TestApp::builder().with_postgres().spawn().await;
    let database = app.database().unwrap();
    database.set_reachable(false).await.unwrap();

    let (status, body) = app.get("/api/v1/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["reason"], json!("store_unreachable"));
    assert_eq!(body["storeReachable"], json!(false));
    assert_eq!(body["oldestDueAgeSeconds"], json!(null));
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("the store did not answer")
    );
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "hookd_store_up", &[]), Some(0.0), "{text}");
    assert!(text.contains("hookd_messages_accepted_total 0"));

    database.set_reachable(true).await.unwrap();
    eventually("readiness to recover", || async {
        let (status, _) = app.get("/api/v1/health/ready").await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "hookd_store_up", &[]), Some(1.0));
    app.stop().await;
}
