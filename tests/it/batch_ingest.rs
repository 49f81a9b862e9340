//! Batch ingest (`POST …/msg/batch`): up to 1,000 messages in one request and one
//! transaction, one result per item, all-or-nothing on request; and the SDK's
//! `precheck/active`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::app_with_endpoint;
use crate::helpers::{TestApp, assert_http_error, assert_validation_error};
use crate::receiver::Receiver;

fn message(event_id: &str) -> Value {
    json!({"eventType": "order.paid", "eventId": event_id, "payload": {"id": event_id}})
}

async fn messages(app: &TestApp, app_id: &str) -> Vec<Value> {
    app.list_all(&format!("/api/v1/app/{app_id}/msg")).await
}

#[tokio::test]
async fn a_batch_is_delivered_and_each_item_answers_for_itself() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/hook").await;
    // Stored before the batch: the batch's copy of this eventId is a 409.
    app.create_message(&app_id, message("taken")).await;

    let batch = json!({"messages": [
        message("a"),
        {"eventType": "bad type!", "payload": {}},
        message("taken"),
        message("b"),
        message("a"),
        {"eventType": "order.paid"},
    ]});
    let (status, body) = app
        .post(&format!("/api/v1/app/{app_id}/msg/batch"), Some(batch))
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let items = body["data"].as_array().unwrap();
    let statuses: Vec<u64> = items
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [202, 422, 409, 202, 409, 422], "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["refused"], 4);
    assert_eq!(items[0]["message"]["eventId"], "a");
    assert!(
        items[0]["message"]["id"]
            .as_str()
            .unwrap()
            .starts_with("msg_")
    );
    assert_eq!(
        items[0]["message"]["payload"],
        json!({}),
        "answers carry no payloads"
    );
    assert_validation_error(&items[1]["error"], &["body", "messages", "1", "eventType"]);
    assert_http_error(&items[2]["error"], "conflict");
    assert_validation_error(&items[5]["error"], &["body", "messages", "5", "payload"]);

    let stored: Vec<Value> = messages(&app, &app_id).await;
    let mut event_ids: Vec<&str> = stored
        .iter()
        .filter_map(|m| m["eventId"].as_str())
        .collect();
    event_ids.sort_unstable();
    assert_eq!(event_ids, ["a", "b", "taken"]);
    // Both accepted messages are delivered, signed, with their own payloads.
    let received = receiver.wait_for("/hook", 3).await;
    let mut bodies: Vec<String> = received
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    bodies.sort_unstable();
    assert_eq!(
        bodies,
        [r#"{"id":"a"}"#, r#"{"id":"b"}"#, r#"{"id":"taken"}"#]
    );
    assert!(
        received
            .iter()
            .all(|r| !r.header("webhook-signature").is_empty())
    );
}

#[tokio::test]
async fn an_atomic_batch_with_a_refused_item_writes_nothing() {
    let app = TestApp::spawn().await;
    let created = app.create_app(json!({"name": "atomic"})).await;
    let app_id = created["id"].as_str().unwrap();
    app.create_message(app_id, message("taken")).await;

    // Refused by the store (a repeated eventId): the other items are rolled back.
    let batch = json!({"atomic": true, "messages": [message("x"), message("taken"), message("y")]});
    let (status, body) = app
        .post(&format!("/api/v1/app/{app_id}/msg/batch"), Some(batch))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let statuses: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [424, 409, 424], "{body}");
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["data"][0]["error"]["code"], "batch_not_written");
    // The body is also a 422 body: one problem per refused message.
    assert_eq!(body["detail"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "messages", "1"]));
    assert_eq!(body["detail"][0]["type"], "conflict");

    // Refused by the checks (a bad item): nothing reaches the store.
    let batch =
        json!({"atomic": true, "messages": [message("x"), {"eventType": "t", "payload": []}]});
    let (status, body) = app
        .post(&format!("/api/v1/app/{app_id}/msg/batch"), Some(batch))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["data"][0]["status"], 424);
    assert_eq!(body["data"][1]["status"], 422);
    assert_validation_error(&body, &["body", "messages", "1", "payload"]);

    let stored = messages(&app, app_id).await;
    assert_eq!(stored.len(), 1, "only the message sent before: {stored:?}");

    // The same batch without the conflict is written whole.
    let batch = json!({"atomic": true, "messages": [message("x"), message("y")]});
    let (status, body) = app
        .post(&format!("/api/v1/app/{app_id}/msg/batch"), Some(batch))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(messages(&app, app_id).await.len(), 3);
}

#[tokio::test]
async fn a_thousand_messages_go_in_one_request_and_a_thousand_and_one_are_refused() {
    let app = TestApp::spawn().await;
    let created = app.create_app(json!({"name": "big"})).await;
    let app_id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/app/{app_id}/msg/batch");

    let too_many: Vec<Value> = (0..1001).map(|i| message(&format!("m{i}"))).collect();
    let (status, body) = app.post(&path, Some(json!({"messages": too_many}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "messages"]);
    let (status, body) = app.post(&path, Some(json!({"messages": []}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "messages"]);
    let (status, body) = app
        .post(
            &path,
            Some(json!({"messages": [message("z")], "atomc": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(messages(&app, app_id).await.is_empty());

    let thousand: Vec<Value> = (0..1000).map(|i| message(&format!("m{i}"))).collect();
    let (status, body) = app.post(&path, Some(json!({"messages": thousand}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["accepted"], 1000);
    assert_eq!(messages(&app, app_id).await.len(), 1000);
}

#[tokio::test]
async fn an_idempotency_key_covers_the_whole_batch_and_unknown_applications_are_404() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/app/nobody/msg/batch",
            Some(json!({"messages": [message("a")]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // An item's inline application creates it, for the whole batch (also for the items
    // before it).
    let batch = json!({"messages": [
        {"eventType": "t", "payload": {}},
        {"eventType": "t", "payload": {}, "application": {"name": "Born"}},
    ]});
    let send = || {
        app.raw_request(reqwest::Method::POST, "/api/v1/app/born/msg/batch")
            .bearer_auth(&app.token)
            .header("idempotency-key", "batch-1")
            .json(&batch)
    };
    let (first_status, first) = crate::helpers::send(send()).await;
    assert_eq!(first_status, StatusCode::ACCEPTED, "{first}");
    let (again_status, again) = crate::helpers::send(send()).await;
    assert_eq!(again_status, StatusCode::ACCEPTED);
    assert_eq!(first, again, "the stored answer, not a second batch");
    assert_eq!(messages(&app, "born").await.len(), 2);
}

#[tokio::test]
async fn precheck_says_whether_an_enabled_endpoint_would_get_the_message() {
    let app = TestApp::spawn().await;
    let created = app.create_app(json!({"name": "precheck"})).await;
    let app_id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/app/{app_id}/msg/precheck/active");
    let check = |body: Value| {
        let path = path.clone();
        let app = &app;
        async move {
            let (status, out) = app.post(&path, Some(body)).await;
            assert_eq!(status, StatusCode::OK, "{out}");
            out["active"].as_bool().unwrap()
        }
    };

    assert!(
        !check(json!({"eventType": "order.paid"})).await,
        "no endpoints"
    );
    let endpoint = app
        .create_endpoint(
            app_id,
            json!({"url": "https://example.com/hook", "eventTypes": ["order.paid"], "channels": ["eu"]}),
        )
        .await;
    assert!(check(json!({"eventType": "order.paid", "channels": ["eu", "us"]})).await);
    assert!(
        !check(json!({"eventType": "order.paid"})).await,
        "no channel"
    );
    assert!(!check(json!({"eventType": "order.refunded", "channels": ["eu"]})).await);
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let (status, _) = app
        .patch(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !check(json!({"eventType": "order.paid", "channels": ["eu"]})).await,
        "disabled"
    );

    let (status, body) = app
        .post(&path, Some(json!({"eventType": "no spaces"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation_error(&body, &["body", "eventType"]);
    let (status, _) = app
        .post(
            "/api/v1/app/nobody/msg/precheck/active",
            Some(json!({"eventType": "t"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        messages(&app, app_id).await.is_empty(),
        "a precheck writes nothing"
    );
}
