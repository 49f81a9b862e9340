//! `/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers`: custom delivery headers.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error};

const PATH: &str = "/api/v1/app/owner/endpoint/ep/headers";

/// An app `owner` with an endpoint `ep` created with `headers` (if any).
async fn endpoint_with(headers: Option<Value>) -> TestApp {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    let mut body = json!({"url": "https://example.com/hook", "uid": "ep"});
    if let Some(headers) = headers {
        body["headers"] = headers;
    }
    app.create_endpoint("owner", body).await;
    app
}

async fn headers(app: &TestApp) -> Value {
    let (status, body) = app.get(PATH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_new_endpoint_has_no_headers() {
    let app = endpoint_with(None).await;
    assert_eq!(headers(&app).await, json!({"headers": {}, "sensitive": []}));
}

#[tokio::test]
async fn headers_given_at_creation_are_kept() {
    let app = endpoint_with(Some(json!({"X-Tenant": "t1"}))).await;
    assert_eq!(
        headers(&app).await,
        json!({"headers": {"X-Tenant": "t1"}, "sensitive": []})
    );
}

#[tokio::test]
async fn put_replaces_every_header() {
    let app = endpoint_with(Some(json!({"X-Old": "1", "X-Keep": "2"}))).await;
    let (status, body) = app
        .put(
            PATH,
            Some(json!({"headers": {"X-Keep": "3", "X-New": "4"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, json!(null));
    assert_eq!(
        headers(&app).await["headers"],
        json!({"X-Keep": "3", "X-New": "4"})
    );

    let (status, _) = app.put(PATH, Some(json!({"headers": {}}))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(headers(&app).await["headers"], json!({}));
}

#[tokio::test]
async fn patch_sets_and_removes_by_null_and_by_delete_headers() {
    let app = endpoint_with(Some(json!({
        "X-Change": "old", "X-Null": "1", "X-Listed": "2", "X-Untouched": "3"
    })))
    .await;
    let (status, body) = app
        .patch(
            PATH,
            Some(json!({
                "headers": {"X-Change": "new", "X-Null": null, "X-Added": "a"},
                "deleteHeaders": ["x-listed"]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        headers(&app).await["headers"],
        json!({"X-Added": "a", "X-Change": "new", "X-Untouched": "3"})
    );

    // `deleteHeaders` alone, as the SDK sends it.
    let (status, _) = app
        .patch(
            PATH,
            Some(json!({"deleteHeaders": ["X-Added", "X-Absent"]})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        headers(&app).await["headers"],
        json!({"X-Change": "new", "X-Untouched": "3"})
    );

    // Header names are case-insensitive: this replaces X-Change rather than adding to it.
    let (status, _) = app
        .patch(PATH, Some(json!({"headers": {"x-change": "lower"}})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        headers(&app).await["headers"],
        json!({"X-Untouched": "3", "x-change": "lower"})
    );
}

#[tokio::test]
async fn credential_headers_are_stored_but_not_shown() {
    let app = endpoint_with(Some(json!({"Authorization": "Bearer s3cret"}))).await;
    let (status, _) = app
        .patch(
            PATH,
            Some(json!({"headers": {"X-Api-Key": "k3y", "X-Plain": "p"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let shown = headers(&app).await;
    assert_eq!(shown["headers"], json!({"X-Plain": "p"}));
    let mut sensitive: Vec<&str> = shown["sensitive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    sensitive.sort();
    assert_eq!(sensitive, ["Authorization", "X-Api-Key"]);
    assert!(!shown.to_string().contains("s3cret"));
    assert!(!shown.to_string().contains("k3y"));
}

#[tokio::test]
async fn reserved_and_malformed_headers_are_refused() {
    let app = endpoint_with(Some(json!({"X-Before": "1"}))).await;
    for bad in [
        json!({"Webhook-Signature": "v1,forged"}),
        json!({"content-type": "text/plain"}),
        json!({"bad name": "x"}),
        json!({"X-Line": "a\nb"}),
    ] {
        let (status, body) = app.put(PATH, Some(json!({"headers": bad}))).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "PUT {bad}: {body}"
        );
        assert_validation_error(&body, &["body", "headers"]);
        let (status, body) = app.patch(PATH, Some(json!({"headers": bad}))).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "PATCH {bad}: {body}"
        );
        assert_validation_error(&body, &["body", "headers"]);
    }
    assert_eq!(headers(&app).await["headers"], json!({"X-Before": "1"}));

    let (status, body) = app
        .post(
            "/api/v1/app/owner/endpoint",
            Some(json!({"url": "https://x.example", "headers": {"Svix-Id": "x"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "headers"]);
}

#[tokio::test]
async fn headers_of_unknown_endpoints_are_404() {
    let app = endpoint_with(None).await;
    let path = "/api/v1/app/owner/endpoint/missing/headers";
    let (status, _) = app.get(path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.put(path, Some(json!({"headers": {}}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.patch(path, Some(json!({"headers": {}}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
