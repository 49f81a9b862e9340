//! `/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret` and `/secret/rotate`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error};

const SECRET: &str = "/api/v1/app/owner/endpoint/ep/secret";
const ROTATE: &str = "/api/v1/app/owner/endpoint/ep/secret/rotate";

/// A `whsec_` secret of `len` bytes, all `byte`.
fn secret_of(len: usize, byte: u8) -> String {
    format!("whsec_{}", STANDARD.encode(vec![byte; len]))
}

/// An app `owner` with an endpoint `ep`, created with `secret` when given.
async fn endpoint_with(secret: Option<&str>) -> TestApp {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let mut body = json!({"url": "https://example.com/hook", "uid": "ep"});
    if let Some(secret) = secret {
        body["secret"] = json!(secret);
    }
    app.create_endpoint("owner", body).await;
    app
}

async fn current_secret(app: &TestApp) -> String {
    let (status, body) = app.get(SECRET).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["key"].as_str().expect("key").to_owned()
}

async fn rotate(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.post(ROTATE, Some(body)).await
}

#[tokio::test]
async fn a_generated_secret_is_whsec_and_32_bytes() {
    let app = endpoint_with(None).await;
    let key = current_secret(&app).await;
    let raw = key.strip_prefix("whsec_").expect("whsec_ prefix");
    assert_eq!(STANDARD.decode(raw).unwrap().len(), 32);
    assert_eq!(current_secret(&app).await, key, "the secret is stable");

    let other = endpoint_with(None).await;
    assert_ne!(current_secret(&other).await, key);
}

#[tokio::test]
async fn a_null_secret_is_generated() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    app.create_endpoint(
        "owner",
        json!({"url": "https://example.com/hook", "uid": "ep", "secret": null}),
    )
    .await;
    let key = current_secret(&app).await;
    assert_eq!(STANDARD.decode(&key["whsec_".len()..]).unwrap().len(), 32);
}

#[tokio::test]
async fn a_given_secret_is_returned_exactly() {
    for len in [24, 32, 64] {
        let secret = secret_of(len, 7);
        let app = endpoint_with(Some(&secret)).await;
        assert_eq!(current_secret(&app).await, secret);
    }
}

#[tokio::test]
async fn invalid_secrets_are_refused() {
    let app = endpoint_with(None).await;
    for secret in [
        "whsec_not base64!".to_owned(),
        secret_of(23, 1),
        secret_of(76, 1),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/app/owner/endpoint",
                Some(json!({"url": "https://x.example", "secret": secret})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{secret}: {body}");
        assert_validation_error(&body, &["body", "secret"]);
    }
    assert_eq!(app.list_all("/api/v1/app/owner/endpoint").await.len(), 1);
}

#[tokio::test]
async fn rotating_to_a_given_key_returns_and_stores_it() {
    let app = endpoint_with(Some(&secret_of(32, 1))).await;
    let new = secret_of(32, 2);
    let (status, body) = rotate(&app, json!({"key": new})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The SDK parses this body; OSS's empty 204 crashes it.
    assert_eq!(body, json!({"key": new, "publicKey": null}));
    assert_eq!(current_secret(&app).await, new);
}

#[tokio::test]
async fn rotating_without_a_key_generates_a_new_one() {
    let app = endpoint_with(None).await;
    let old = current_secret(&app).await;
    let (status, body) = rotate(&app, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["key"].as_str().unwrap();
    assert!(new.starts_with("whsec_"));
    assert_ne!(new, old);
    assert_eq!(current_secret(&app).await, new);
}

#[tokio::test]
async fn grace_periods_up_to_seven_days_are_accepted() {
    let app = endpoint_with(None).await;
    for grace in [0, 60, 604_800] {
        let (status, body) = rotate(&app, json!({"gracePeriodSeconds": grace})).await;
        assert_eq!(status, StatusCode::OK, "grace {grace}: {body}");
        assert_eq!(current_secret(&app).await, body["key"].as_str().unwrap());
    }
}

#[tokio::test]
async fn invalid_rotations_are_refused_and_change_nothing() {
    let app = endpoint_with(None).await;
    let before = current_secret(&app).await;

    let (status, body) = rotate(&app, json!({"gracePeriodSeconds": 604_801})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "gracePeriodSeconds"]);

    let (status, body) = rotate(&app, json!({"gracePeriodSeconds": -1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "gracePeriodSeconds"]);

    let (status, body) = rotate(&app, json!({"key": "whsec_tooshort"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "key"]);

    assert_eq!(current_secret(&app).await, before);
}

#[tokio::test]
async fn secrets_of_unknown_endpoints_are_404() {
    let app = endpoint_with(None).await;
    let (status, _) = app.get("/api/v1/app/owner/endpoint/missing/secret").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            "/api/v1/app/owner/endpoint/missing/secret/rotate",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            "/api/v1/app/nope/endpoint/ep/secret/rotate",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
