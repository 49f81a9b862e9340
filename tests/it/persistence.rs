//! What the API accepted survives a restart on the same data directory.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn accepted_messages_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let owner = app
        .create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let endpoint = app
        .create_endpoint(
            "owner",
            json!({"url": "https://example.com/hook", "uid": "ep"}),
        )
        .await;
    let (_, secret) = app.get("/api/v1/app/owner/endpoint/ep/secret").await;
    let (status, event_type) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "t", "description": "d"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Concurrent messages share group commits; each 202 must still mean "on disk".
    let bodies =
        (0..20).map(|i| json!({"eventType": "t", "eventId": format!("e{i}"), "payload": {"i": i}}));
    join_all(bodies.map(|b| app.create_message("owner", b))).await;
    let messages = app.list_all("/api/v1/app/owner/msg").await;
    assert_eq!(messages.len(), 20);
    let old_addr = app.addr;

    app.restart().await;
    assert_ne!(app.addr, old_addr, "a new server answers");

    assert_eq!(app.list_all("/api/v1/app/owner/msg").await, messages);
    assert_eq!(app.get("/api/v1/app/owner").await, (StatusCode::OK, owner));
    // Everything but `health`, which moves on as the deliveries to example.com fail here.
    let without_health = |mut e: serde_json::Value| {
        e.as_object_mut().unwrap().remove("health");
        e
    };
    let (status, read) = app.get("/api/v1/app/owner/endpoint/ep").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(without_health(read), without_health(endpoint));
    assert_eq!(
        app.get("/api/v1/app/owner/endpoint/ep/secret").await,
        (StatusCode::OK, secret)
    );
    assert_eq!(
        app.get("/api/v1/event-type/t").await,
        (StatusCode::OK, event_type)
    );
    let (status, by_event_id) = app.get("/api/v1/app/owner/msg/e7").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_event_id["payload"], json!({"i": 7}));
    app.stop().await;
}

#[tokio::test]
async fn idempotency_keys_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let post = |app: &TestApp| {
        app.raw_request(reqwest::Method::POST, "/api/v1/app")
            .bearer_auth(&app.token)
            .header("idempotency-key", "before-restart")
            .json(&json!({"name": "Once"}))
    };
    let first = crate::helpers::send(post(&app)).await;
    assert_eq!(first.0, StatusCode::CREATED);
    app.restart().await;
    assert_eq!(crate::helpers::send(post(&app)).await, first);
    assert_eq!(app.list_all("/api/v1/app").await, [first.1]);
}

#[tokio::test]
async fn stop_returns_and_a_stopped_server_refuses_connections() {
    let app = TestApp::spawn().await;
    let client = app.client.clone();
    let url = format!("{}/api/v1/health", app.base_url());
    assert!(client.get(&url).send().await.unwrap().status().is_success());
    app.stop().await;
    assert!(client.get(&url).send().await.is_err());
}
