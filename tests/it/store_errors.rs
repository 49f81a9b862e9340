//! A store that cannot write answers 503 with `Retry-After` on every route that writes,
//! with or without `Idempotency-Key`, never 500; and a retry once it can write succeeds.
//! (The classification of each SQLite and PostgreSQL error class is unit-tested beside
//! `StoreError`; the status for each in `api::error`.)

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_http_error};

async fn attempt(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = app.raw_request(method, path).bearer_auth(&app.token);
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, retry_after, body)
}

#[tokio::test]
async fn every_write_answers_503_with_retry_after_while_postgres_refuses_writes() {
    let app = TestApp::builder().with_postgres().spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let endpoint = app
        .create_endpoint("owner", json!({"url": "https://example.com/hook"}))
        .await;
    let ep = format!(
        "/api/v1/app/owner/endpoint/{}",
        endpoint["id"].as_str().unwrap()
    );
    let (status, _) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "a.b", "description": "d"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    app.database().unwrap().set_read_only(true).await.unwrap();
    let writes = [
        (
            Method::POST,
            "/api/v1/app".to_owned(),
            json!({"name": "New"}),
        ),
        (
            Method::PUT,
            "/api/v1/app/owner".to_owned(),
            json!({"name": "Renamed"}),
        ),
        (
            Method::PATCH,
            "/api/v1/app/owner".to_owned(),
            json!({"name": "Patched"}),
        ),
        (
            Method::POST,
            "/api/v1/event-type".to_owned(),
            json!({"name": "c.d", "description": "d"}),
        ),
        (
            Method::PATCH,
            "/api/v1/event-type/a.b".to_owned(),
            json!({"description": "changed"}),
        ),
        (
            Method::POST,
            "/api/v1/app/owner/endpoint".to_owned(),
            json!({"url": "https://example.com/other"}),
        ),
        (Method::PATCH, ep.clone(), json!({"description": "changed"})),
        (
            Method::PUT,
            format!("{ep}/headers"),
            json!({"headers": {"x-a": "b"}}),
        ),
        (Method::POST, format!("{ep}/secret/rotate"), json!({})),
        (
            Method::POST,
            "/api/v1/app/owner/msg".to_owned(),
            json!({"eventType": "a.b", "payload": {"n": 1}}),
        ),
        (Method::DELETE, ep.clone(), Value::Null),
    ];
    for (i, (method, path, body)) in writes.iter().enumerate() {
        let body = (!body.is_null()).then_some(body);
        let key = format!("key-{i}");
        for key in [None, Some(key.as_str())] {
            let (status, retry_after, error) = attempt(&app, method.clone(), path, body, key).await;
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path} (key {key:?}): {error}"
            );
            assert_eq!(retry_after.as_deref(), Some("2"), "{method} {path}");
            assert_http_error(&error, "service_unavailable");
        }
    }

    app.database().unwrap().set_read_only(false).await.unwrap();
    // A 503 wrote nothing: the same request with the same key now runs, once.
    crate::helpers::eventually("the store to take writes again", || async {
        let message = json!({"eventType": "a.b", "payload": {"n": 1}});
        let (status, _, _) = attempt(
            &app,
            Method::POST,
            "/api/v1/app/owner/msg",
            Some(&message),
            Some("key-9"),
        )
        .await;
        (status == StatusCode::ACCEPTED).then_some(())
    })
    .await;
    // Reads go through the connections that serve requests, which the server ended with
    // the others: each answers 503 once before the pool opens a new one.
    for path in ["/api/v1/app/owner/msg", "/api/v1/app"] {
        let listed = crate::helpers::eventually("the store to serve reads again", || async {
            let (status, page) = app.get(&format!("{path}?limit=250")).await;
            (status == StatusCode::OK).then_some(page)
        })
        .await;
        assert_eq!(
            listed["data"].as_array().unwrap().len(),
            1,
            "{path}: {listed}"
        );
    }
}
