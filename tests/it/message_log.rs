//! Reading messages back: list with filters, get by id or eventId, expunge content.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error, encode, ids};

async fn app_with(uid: &str) -> TestApp {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "Owner", "uid": uid})).await;
    app
}

fn message(event_type: &str, channels: Option<&[&str]>) -> Value {
    let mut body = json!({"eventType": event_type, "payload": {"type": event_type}});
    if let Some(channels) = channels {
        body["channels"] = json!(channels);
    }
    body
}

/// The ids of `list_all(path)`.
async fn listed(app: &TestApp, path: &str) -> Vec<String> {
    ids(&app.list_all(path).await)
}

fn newest_first(messages: &[&Value]) -> Vec<String> {
    let mut ids: Vec<String> = messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    ids.reverse();
    ids
}

#[tokio::test]
async fn list_is_newest_first_unless_ascending() {
    let app = app_with("owner").await;
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(
            app.create_message("owner", message(&format!("t{i}"), None))
                .await,
        );
    }
    let (status, page) = app.get("/api/v1/app/owner/msg").await;
    assert_eq!(status, StatusCode::OK);
    let mut expected = sent.clone();
    expected.reverse();
    assert_eq!(page["data"], json!(expected));
    assert_eq!(page["done"], true);

    let (_, ascending) = app.get("/api/v1/app/owner/msg?order=ascending").await;
    assert_eq!(ascending["data"], json!(sent));
}

#[tokio::test]
async fn list_filters_by_event_types() {
    let app = app_with("owner").await;
    let a = app.create_message("owner", message("a.one", None)).await;
    let b = app.create_message("owner", message("b.two", None)).await;
    let c = app.create_message("owner", message("c.three", None)).await;

    let comma = format!(
        "/api/v1/app/owner/msg?event_types={}",
        encode("a.one,c.three")
    );
    assert_eq!(listed(&app, &comma).await, newest_first(&[&a, &c]));
    let repeated = "/api/v1/app/owner/msg?event_types=b.two&event_types=c.three";
    assert_eq!(listed(&app, repeated).await, newest_first(&[&b, &c]));
    let single = "/api/v1/app/owner/msg?event_types=b.two";
    assert_eq!(listed(&app, single).await, newest_first(&[&b]));
    let none = "/api/v1/app/owner/msg?event_types=unknown";
    assert!(listed(&app, none).await.is_empty());

    let (status, body) = app
        .get("/api/v1/app/owner/msg?event_types=bad%20type")
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["query", "event_types"]);
}

#[tokio::test]
async fn list_filters_by_channel() {
    let app = app_with("owner").await;
    let eu = app
        .create_message("owner", message("t", Some(&["eu", "vip"])))
        .await;
    let us = app
        .create_message("owner", message("t", Some(&["us"])))
        .await;
    app.create_message("owner", message("t", None)).await;
    let both = app
        .create_message("owner", message("t", Some(&["us", "eu"])))
        .await;

    let path = "/api/v1/app/owner/msg?channel=eu";
    assert_eq!(listed(&app, path).await, newest_first(&[&eu, &both]));
    let path = "/api/v1/app/owner/msg?channel=us";
    assert_eq!(listed(&app, path).await, newest_first(&[&us, &both]));
    assert!(
        listed(&app, "/api/v1/app/owner/msg?channel=none")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn list_filters_by_time_strictly_before_and_after() {
    let app = app_with("owner").await;
    let first = app.create_message("owner", message("t", None)).await;
    let second = app.create_message("owner", message("t", None)).await;
    let third = app.create_message("owner", message("t", None)).await;
    let at = |m: &Value| encode(m["timestamp"].as_str().unwrap());

    let path = format!("/api/v1/app/owner/msg?before={}", at(&second));
    assert_eq!(listed(&app, &path).await, newest_first(&[&first]));
    let path = format!("/api/v1/app/owner/msg?after={}", at(&second));
    assert_eq!(listed(&app, &path).await, newest_first(&[&third]));
    let path = format!(
        "/api/v1/app/owner/msg?after={}&before={}",
        at(&first),
        at(&third)
    );
    assert_eq!(listed(&app, &path).await, newest_first(&[&second]));

    // The SDK sends `+00:00` offsets and microseconds.
    let sdk_style = chrono::DateTime::parse_from_rfc3339(third["timestamp"].as_str().unwrap())
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string();
    let path = format!("/api/v1/app/owner/msg?before={}", encode(&sdk_style));
    assert_eq!(listed(&app, &path).await, newest_first(&[&first, &second]));
    // A naive datetime comes without an offset; it means UTC.
    let naive = sdk_style.trim_end_matches("+00:00");
    let path = format!("/api/v1/app/owner/msg?before={}", encode(naive));
    assert_eq!(listed(&app, &path).await, newest_first(&[&first, &second]));

    let (status, body) = app.get("/api/v1/app/owner/msg?before=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["query", "before"]);
}

#[tokio::test]
async fn with_content_false_lists_empty_payloads() {
    let app = app_with("owner").await;
    app.create_message("owner", message("t", None)).await;
    let (_, page) = app.get("/api/v1/app/owner/msg?with_content=false").await;
    assert_eq!(page["data"][0]["payload"], json!({}));
    let (_, page) = app.get("/api/v1/app/owner/msg").await;
    assert_eq!(page["data"][0]["payload"], json!({"type": "t"}));
}

#[tokio::test]
async fn get_finds_a_message_by_id_or_event_id() {
    let app = app_with("owner").await;
    app.create_app(json!({"name": "Other", "uid": "other"}))
        .await;
    let sent = app
        .create_message(
            "owner",
            json!({"eventType": "t", "eventId": "evt-42", "payload": {"k": "v"}}),
        )
        .await;
    let id = sent["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/app/owner/msg/{id}"),
        "/api/v1/app/owner/msg/evt-42".to_owned(),
    ] {
        let (status, found) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(found, sent, "{path}");
        let (_, bare) = app.get(&format!("{path}?with_content=false")).await;
        assert_eq!(bare["payload"], json!({}), "{path}");
    }
    for path in [
        "/api/v1/app/owner/msg/evt-unknown".to_owned(),
        "/api/v1/app/owner/msg/msg_01ARZ3NDEKTSV4RRFFQ69G5FAV".to_owned(),
        format!("/api/v1/app/other/msg/{id}"),
        "/api/v1/app/other/msg/evt-42".to_owned(),
        format!("/api/v1/app/nobody/msg/{id}"),
    ] {
        let (status, _) = app.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn expunged_content_reads_as_expired() {
    let app = app_with("owner").await;
    let sent = app
        .create_message(
            "owner",
            json!({"eventType": "t", "eventId": "e1", "payload": {"pii": "x"}}),
        )
        .await;
    let kept = app.create_message("owner", message("t", None)).await;
    let path = format!("/api/v1/app/owner/msg/{}", sent["id"].as_str().unwrap());

    let (status, body) = app.delete(&format!("{path}/content")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, json!(null));

    let (status, expunged) = app.get(&format!("{path}?with_content=true")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(expunged["payload"], json!({"expired": true}));
    assert_eq!(expunged["eventId"], "e1", "the record stays");
    let (_, bare) = app.get(&format!("{path}?with_content=false")).await;
    assert_eq!(bare["payload"], json!({}));
    let listed = app.list_all("/api/v1/app/owner/msg").await;
    assert_eq!(listed[0], kept);
    assert_eq!(listed[1]["payload"], json!({"expired": true}));

    // Expunging by eventId works too, and again is harmless.
    let (status, _) = app.delete("/api/v1/app/owner/msg/e1/content").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.delete("/api/v1/app/owner/msg/missing/content").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn listing_messages_of_an_unknown_application_is_404() {
    let app = TestApp::spawn().await;
    let (status, _) = app.get("/api/v1/app/nobody/msg").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
