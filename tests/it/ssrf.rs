//! Deliveries to internal addresses are refused unless their network is allowed.

use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually};
use crate::receiver::Receiver;

async fn first_attempt(app: &TestApp, app_id: &str, endpoint_id: &str) -> Value {
    eventually("an attempt", || async {
        let (_, list) = app
            .get(&format!(
                "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}"
            ))
            .await;
        list["data"].as_array().and_then(|d| d.first().cloned())
    })
    .await
}

#[tokio::test]
async fn loopback_is_refused_by_default_as_a_failed_attempt() {
    let app = TestApp::spawn().await;
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let app_id = app.create_app(json!({"name": "s"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for url in [
        format!("http://127.0.0.1:{port}/a"),
        format!("http://localhost:{port}/a"),
        format!("http://[::1]:{port}/a"),
        format!("http://[::ffff:127.0.0.1]:{port}/a"),
        format!("http://2130706433:{port}/a"),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.1.2.3/".to_owned(),
    ] {
        let endpoint = app.create_endpoint(&app_id, json!({"url": url})).await;
        let endpoint_id = endpoint["id"].as_str().unwrap();
        app.create_message(&app_id, json!({"eventType": "a", "payload": {}}))
            .await;
        let attempt = first_attempt(&app, &app_id, endpoint_id).await;
        assert_eq!(attempt["errorClass"], "ssrf_refused", "{url}: {attempt}");
        assert_eq!(attempt["responseStatusCode"], 0);
        assert!(
            attempt["error"].as_str().unwrap().contains("refus"),
            "{attempt}"
        );
        app.delete(&format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"))
            .await;
    }
    assert!(receiver.requests("/a").is_empty());
}

#[tokio::test]
async fn allowed_networks_let_deliveries_through() {
    let app = TestApp::builder()
        .with_config(|c| c.allowed_networks = vec!["127.0.0.1/32".into()])
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let app_id = app.create_app(json!({"name": "s"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.create_endpoint(&app_id, json!({"url": receiver.url("/ok")}))
        .await;
    app.create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    receiver.wait_for("/ok", 1).await;
}

#[tokio::test]
async fn https_only_refuses_http_endpoints_at_creation() {
    let app = TestApp::builder()
        .with_config(|c| c.https_only = true)
        .spawn()
        .await;
    let app_id = app.create_app(json!({"name": "s"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint"),
            Some(json!({"url": "http://example.com/hook"})),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["loc"], json!(["body", "url"]));
    app.create_endpoint(&app_id, json!({"url": "https://example.com/hook"}))
        .await;
}
