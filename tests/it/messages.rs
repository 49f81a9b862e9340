//! `POST /api/v1/app/{app_id}/msg`: message ingestion and its validation. Reading messages
//! back is in `message_log`.

use reqwest::{Method, StatusCode, header};
use serde_json::json;

use crate::helpers::{TestApp, assert_http_error, assert_validation_error, send};

async fn app_with(uid: &str) -> TestApp {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": uid})).await;
    app
}

#[tokio::test]
async fn create_returns_202_with_the_message() {
    let app = app_with("owner").await;
    let (status, message) = app
        .post(
            "/api/v1/app/owner/msg",
            Some(json!({
                "eventType": "user.signup",
                "eventId": "evt-1",
                "payload": {"user": {"id": 7}, "tags": ["a"]},
                "channels": ["eu", "vip"]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{message}");
    assert!(
        message["id"].as_str().unwrap().starts_with("msg_"),
        "{message}"
    );
    assert_eq!(message["eventType"], "user.signup");
    assert_eq!(message["eventId"], "evt-1");
    assert_eq!(
        message["payload"],
        json!({"user": {"id": 7}, "tags": ["a"]})
    );
    assert_eq!(message["channels"], json!(["eu", "vip"]));
    assert!(message["timestamp"].as_str().unwrap().ends_with('Z'));

    let (status, fetched) = app
        .get(&format!(
            "/api/v1/app/owner/msg/{}",
            message["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, message);
}

#[tokio::test]
async fn the_payload_is_kept_byte_for_byte() {
    let app = app_with("owner").await;
    let payload = r#"{"z": 1,   "a": {"n": 1.50, "s": "é\u00e9"}}"#;
    let body = format!(r#"{{"eventType": "t", "payload": {payload}}}"#);
    let request = app
        .raw_request(Method::POST, "/api/v1/app/owner/msg")
        .bearer_auth(&app.token)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body);
    let (status, message) = send(request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{message}");

    let path = format!("/api/v1/app/owner/msg/{}", message["id"].as_str().unwrap());
    let text = app
        .raw_request(Method::GET, &path)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(&format!(r#""payload":{payload}"#)),
        "payload not verbatim in {text}"
    );
}

#[tokio::test]
async fn with_content_false_answers_an_empty_payload_object() {
    let app = app_with("owner").await;
    let (status, message) = app
        .post(
            "/api/v1/app/owner/msg?with_content=false",
            Some(json!({"eventType": "t", "payload": {"secret": "data"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(message["payload"], json!({}));
    // The content was stored all the same.
    let id = message["id"].as_str().unwrap();
    let (_, full) = app.get(&format!("/api/v1/app/owner/msg/{id}")).await;
    assert_eq!(full["payload"], json!({"secret": "data"}));
}

#[tokio::test]
async fn a_repeated_event_id_is_a_conflict_within_one_application() {
    let app = app_with("owner").await;
    app.create_app(json!({"name": "Other", "uid": "other"}))
        .await;
    let body = json!({"eventType": "t", "eventId": "once", "payload": {}});
    let first = app.create_message("owner", body.clone()).await;
    let (status, error) = app.post("/api/v1/app/owner/msg", Some(body.clone())).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_http_error(&error, "conflict");
    assert_eq!(app.list_all("/api/v1/app/owner/msg").await, [first]);

    // Event ids are scoped to their application.
    app.create_message("other", body).await;
}

#[tokio::test]
async fn sdk_fields_hookd_cannot_honour_are_refused_not_dropped() {
    let app = app_with("owner").await;
    // Null is the SDK's "not set": accepted.
    let message = app
        .create_message(
            "owner",
            json!({"eventType": "t", "payload": {"a": 1}, "tags": null, "transformationsParams": null}),
        )
        .await;
    assert_eq!(message["payload"], json!({"a": 1}));
    for (field, value) in [
        ("tags", json!(["x"])),
        ("transformationsParams", json!({"rawPayload": "{}"})),
    ] {
        let mut body = json!({"eventType": "t", "payload": {"a": 1}});
        body[field] = value;
        let (status, error) = app.post("/api/v1/app/owner/msg", Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {error}");
        assert_validation_error(&error, &["body", field]);
    }
}

#[tokio::test]
async fn the_payload_must_be_a_json_object() {
    let app = app_with("owner").await;
    for payload in [
        json!([1]),
        json!("text"),
        json!(3),
        json!(null),
        json!(true),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/app/owner/msg",
                Some(json!({"eventType": "t", "payload": payload})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{payload}: {body}"
        );
        assert_validation_error(&body, &["body", "payload"]);
    }
    let (status, body) = app
        .post("/api/v1/app/owner/msg", Some(json!({"eventType": "t"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "payload"]);
    assert!(app.list_all("/api/v1/app/owner/msg").await.is_empty());
}

#[tokio::test]
async fn payloads_over_the_configured_limit_are_413() {
    let app = TestApp::builder()
        .with_config(|c| c.max_payload_bytes = 100)
        .spawn()
        .await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    // `{"p":"…"}` is 8 bytes plus the string.
    let sized = |len: usize| json!({"eventType": "t", "payload": {"p": "x".repeat(len - 8)}});

    app.create_message("owner", sized(100)).await;
    let (status, body) = app.post("/api/v1/app/owner/msg", Some(sized(101))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_http_error(&body, "payload_too_large");

    // Far past the limit the body itself is refused before it is parsed; still JSON.
    let (status, body) = app
        .post("/api/v1/app/owner/msg", Some(sized(200_000)))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_http_error(&body, "payload_too_large");
    assert_eq!(app.list_all("/api/v1/app/owner/msg").await.len(), 1);
}

#[tokio::test]
async fn invalid_event_types_event_ids_and_channels_are_refused() {
    let app = app_with("owner").await;
    let cases = [
        (
            json!({"eventType": "has space", "payload": {}}),
            "eventType",
        ),
        (
            json!({"eventType": "x".repeat(257), "payload": {}}),
            "eventType",
        ),
        (json!({"eventType": "", "payload": {}}), "eventType"),
        (json!({"eventType": 5, "payload": {}}), "eventType"),
        (json!({"payload": {}}), "eventType"),
        (
            json!({"eventType": "t", "eventId": "a/b", "payload": {}}),
            "eventId",
        ),
        (
            json!({"eventType": "t", "channels": ["1", "2", "3", "4", "5", "6"], "payload": {}}),
            "channels",
        ),
        (
            json!({"eventType": "t", "payloadRetentionPeriod": 0, "payload": {}}),
            "payloadRetentionPeriod",
        ),
        (
            json!({"eventType": "t", "payloadRetentionPeriod": 91, "payload": {}}),
            "payloadRetentionPeriod",
        ),
        (
            json!({"eventType": "t", "payloadRetentionPeriod": 1.5, "payload": {}}),
            "payloadRetentionPeriod",
        ),
        (
            json!({"eventType": "t", "payloadRetentionHours": 0, "payload": {}}),
            "payloadRetentionHours",
        ),
        (
            json!({"eventType": "t", "payloadRetentionHours": 2161, "payload": {}}),
            "payloadRetentionHours",
        ),
        (
            json!({"eventType": "t", "payloadRetentionHours": 2, "payloadRetentionPeriod": 2,
                   "payload": {}}),
            "payloadRetentionHours",
        ),
    ];
    for (input, field) in cases {
        let (status, body) = app.post("/api/v1/app/owner/msg", Some(input.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{input}: {body}");
        assert_validation_error(&body, &["body", field]);
    }
    let (status, body) = app
        .post(
            "/api/v1/app/owner/msg",
            Some(json!({"eventType": "t", "channels": ["ok", "not ok"], "payload": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "channels", "1"]);
    assert!(app.list_all("/api/v1/app/owner/msg").await.is_empty());
}

#[tokio::test]
async fn an_inline_application_is_created_for_an_unknown_uid() {
    let app = TestApp::spawn().await;
    let inline = json!({"name": "Inline", "metadata": {"src": "msg"}, "throttleRate": 2});
    let message = app
        .create_message(
            "fresh-uid",
            json!({"eventType": "t", "payload": {"n": 1}, "application": inline}),
        )
        .await;
    let (status, created) = app.get("/api/v1/app/fresh-uid").await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["uid"], "fresh-uid");
    assert_eq!(created["name"], "Inline");
    assert_eq!(created["metadata"], json!({"src": "msg"}));
    assert_eq!(created["throttleRate"], 2);
    assert_eq!(app.list_all("/api/v1/app/fresh-uid/msg").await, [message]);

    // Once it exists, the inline application is ignored.
    app.create_message(
        "fresh-uid",
        json!({"eventType": "t", "payload": {}, "application": {"name": "Renamed"}}),
    )
    .await;
    let (_, same) = app.get("/api/v1/app/fresh-uid").await;
    assert_eq!(same, created);
    assert_eq!(app.list_all("/api/v1/app").await.len(), 1);
}

#[tokio::test]
async fn an_inline_application_must_agree_with_the_path() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/app/path-uid/msg",
            Some(json!({
                "eventType": "t", "payload": {},
                "application": {"name": "X", "uid": "other-uid"}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "application", "uid"]);

    // An id cannot name an application to create.
    let (status, body) = app
        .post(
            "/api/v1/app/app_01ARZ3NDEKTSV4RRFFQ69G5FAV/msg",
            Some(json!({"eventType": "t", "payload": {}, "application": {"name": "X"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(app.list_all("/api/v1/app").await.is_empty());
}

#[tokio::test]
async fn messages_to_unknown_applications_are_404() {
    let app = TestApp::spawn().await;
    for path in [
        "/api/v1/app/nobody/msg",
        "/api/v1/app/app_01ARZ3NDEKTSV4RRFFQ69G5FAV/msg",
    ] {
        let (status, body) = app
            .post(path, Some(json!({"eventType": "t", "payload": {}})))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_http_error(&body, "not_found");
    }
    assert!(app.list_all("/api/v1/app").await.is_empty());
}

/// `{"d": [[…]]}` nested `depth` levels (the payload object is level 1), as message JSON.
fn deep_message(depth: usize) -> String {
    let (open, close) = ("[".repeat(depth - 1), "]".repeat(depth - 1));
    format!(r#"{{"eventType": "deep", "payload": {{"d": {open}{close}}}}}"#)
}

#[tokio::test]
async fn a_payload_nested_past_the_limit_is_422_naming_the_depth() {
    let app = app_with("owner").await;
    let post = |body: String| {
        let request = app
            .raw_request(Method::POST, "/api/v1/app/owner/msg")
            .bearer_auth(&app.token)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        send(request)
    };
    let (status, _) = post(deep_message(64)).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "64 levels is the default limit"
    );
    // 65 levels, and the issue's 500,000 (1 MB): refused, never stored or delivered.
    for depth in [65, 500_000] {
        let (status, error) = post(deep_message(depth)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{depth}: {error}");
        assert_validation_error(&error, &["body", "payload"]);
        let msg = error["detail"][0]["msg"].as_str().unwrap();
        assert!(msg.contains("deeper than 64 levels"), "{msg}");
    }
    assert_eq!(app.list_all("/api/v1/app/owner/msg").await.len(), 1);
}

#[tokio::test]
async fn the_nesting_limit_is_configurable() {
    let app = TestApp::builder()
        .with_config(|c| c.max_payload_depth = 3)
        .spawn()
        .await;
    app.create_app(json!({"name": "Owner", "uid": "owner"}))
        .await;
    app.create_message(
        "owner",
        json!({"eventType": "e", "payload": {"a": {"b": [1]}}}),
    )
    .await;
    let (status, error) = app
        .post(
            "/api/v1/app/owner/msg",
            Some(json!({"eventType": "e", "payload": {"a": {"b": [[1]]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("deeper than 3 levels")
    );
}
