//! JSON Schema validation at ingest: schemas checked when an event type is saved, payloads
//! checked against the latest version when the event type (or the server) asks for it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error};

fn order_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {
                "type": "object",
                "properties": {"price": {"type": "number"}},
                "required": ["price"],
            }},
        },
        "required": ["items"],
    })
}

async fn app_id(app: &TestApp) -> String {
    let created = app.create_app(json!({"name": "validation"})).await;
    created["id"].as_str().unwrap().to_owned()
}

async fn send(
    app: &TestApp,
    app_id: &str,
    event_type: &str,
    payload: Value,
) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/app/{app_id}/msg"),
        Some(json!({"eventType": event_type, "payload": payload})),
    )
    .await
}

#[tokio::test]
async fn a_schema_that_is_not_json_schema_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    for schemas in [
        json!({"1": {"type": "number-ish"}}),
        json!({"1": {"type": "object"}, "2": {"required": "price"}}),
        json!({"1": {"$ref": "https://example.com/order.json"}}),
        json!({"1": []}),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/event-type",
                Some(json!({"name": "order.placed", "description": "d", "schemas": schemas})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{schemas}: {body}"
        );
        let version = schemas
            .as_object()
            .unwrap()
            .keys()
            .next_back()
            .unwrap()
            .clone();
        assert_validation_error(&body, &["body", "schemas", &version]);
    }
    let (status, _) = app.get("/api/v1/event-type/order.placed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn payloads_are_checked_once_the_event_type_asks_and_errors_point_into_them() {
    let app = TestApp::spawn().await;
    let app_id = app_id(&app).await;
    let (status, et) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "order.placed", "description": "d", "schemas": {"1": order_schema()}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{et}");
    assert_eq!(et["validatePayloads"], false);
    let bad = json!({"items": [{"price": 1}, {"price": "12.50"}]});

    // Not asked: accepted as before.
    let (status, _) = send(&app, &app_id, "order.placed", bad.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, et) = app
        .patch(
            "/api/v1/event-type/order.placed",
            Some(json!({"validatePayloads": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(et["validatePayloads"], true);

    // The change applies to the next message.
    let (status, body) = send(&app, &app_id, "order.placed", bad.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "payload", "items", "1", "price"]);
    let msg = body["detail"][0]["msg"].as_str().unwrap();
    assert!(msg.contains("payload/items/1/price"), "{msg}");
    assert!(msg.contains("order.placed"), "{msg}");
    let (status, body) = send(&app, &app_id, "order.placed", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "payload"]);

    let (status, _) = send(
        &app,
        &app_id,
        "order.placed",
        json!({"items": [{"price": 3}]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Other event types, and unregistered ones, are not checked.
    let (status, _) = send(&app, &app_id, "order.unknown", bad.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        app.list_all(&format!("/api/v1/app/{app_id}/msg"))
            .await
            .len(),
        3
    );

    // A newer version replaces the check; the latest numbered version is the one used.
    let (status, _) = app
        .patch(
            "/api/v1/event-type/order.placed",
            Some(json!({"schemas": {"1": order_schema(), "2": {"type": "object", "required": ["orderId"]}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        &app,
        &app_id,
        "order.placed",
        json!({"items": [{"price": 3}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = send(&app, &app_id, "order.placed", json!({"orderId": "o1"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // In a batch, the bad item is refused on its own.
    let (status, body) = app
        .post(
            &format!("/api/v1/app/{app_id}/msg/batch"),
            Some(json!({"messages": [
                {"eventType": "order.placed", "payload": {"orderId": "o2"}},
                {"eventType": "order.placed", "payload": {"items": []}},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["data"][0]["status"], 202);
    assert_eq!(body["data"][1]["status"], 422);
    assert_validation_error(
        &body["data"][1]["error"],
        &["body", "messages", "1", "payload"],
    );
}

#[tokio::test]
async fn the_server_option_checks_every_event_type_with_a_schema() {
    let app = TestApp::builder()
        .with_config(|c| c.validate_payloads = true)
        .spawn()
        .await;
    let app_id = app_id(&app).await;
    let (status, _) = app
        .put(
            "/api/v1/event-type/order.placed",
            Some(json!({"description": "d", "schemas": {"1": order_schema()}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = send(&app, &app_id, "order.placed", json!({"items": "none"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "payload", "items"]);
    // Without a schema there is nothing to check against.
    let (status, _) = app
        .put(
            "/api/v1/event-type/order.placed",
            Some(json!({"description": "d"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&app, &app_id, "order.placed", json!({"items": "none"})).await;
    assert_eq!(status, StatusCode::ACCEPTED);
}
