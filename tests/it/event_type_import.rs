//! `POST /api/v1/event-type/import/openapi`: event types from an OpenAPI document's webhooks.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error};

const IMPORT: &str = "/api/v1/event-type/import/openapi";

fn spec() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Shop", "version": "1"},
        "webhooks": {
            "order.paid": {"post": {
                "description": "An order was paid",
                "x-svix-group-name": "order",
                "requestBody": {"content": {"application/json": {"schema":
                    {"$ref": "#/components/schemas/Order"}}}},
                "responses": {"200": {"description": "ok"}},
            }},
            "stock.changed": {"post": {
                "summary": "Stock moved",
                "deprecated": true,
                "requestBody": {"content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"sku": {"type": "string"}, "inStock": {"type": "boolean"}},
                    "required": ["sku"],
                }}}},
            }},
        },
        "components": {"schemas": {
            "Money": {"type": "number", "minimum": 0},
            "Order": {"type": "object",
                      "properties": {"id": {"type": "string"}, "total": {"$ref": "#/components/schemas/Money"}},
                      "required": ["id", "total"]},
        }},
    })
}

async fn names(app: &TestApp, include_archived: bool) -> Vec<String> {
    app.list_all(&format!(
        "/api/v1/event-type?include_archived={include_archived}"
    ))
    .await
    .iter()
    .map(|et| et["name"].as_str().unwrap().to_owned())
    .collect()
}

#[tokio::test]
async fn webhooks_become_event_types_idempotently_with_dry_run_and_replace_all() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .post(
            "/api/v1/event-type",
            Some(json!({"name": "legacy.event", "description": "old"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, out) = app
        .post(IMPORT, Some(json!({"spec": spec(), "dryRun": true})))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out["data"]["modified"],
        json!(["order.paid", "stock.changed"])
    );
    assert_eq!(out["data"]["to_modify"][1]["deprecated"], true);
    assert_eq!(out["data"]["to_modify"][1]["description"], "Stock moved");
    assert_eq!(
        names(&app, true).await,
        ["legacy.event"],
        "a dry run writes nothing"
    );

    let (status, out) = app.post(IMPORT, Some(json!({"spec": spec()}))).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out["data"]["modified"],
        json!(["order.paid", "stock.changed"])
    );
    assert!(out["data"].get("to_modify").is_none());
    let (_, paid) = app.get("/api/v1/event-type/order.paid").await;
    assert_eq!(paid["description"], "An order was paid");
    assert_eq!(paid["groupName"], "order");
    // References into the document are written out: the schema stands alone.
    assert_eq!(
        paid["schemas"]["1"]["properties"]["total"],
        json!({"type": "number", "minimum": 0})
    );

    // The stored schema works for validation.
    let (status, _) = app
        .patch(
            "/api/v1/event-type/order.paid",
            Some(json!({"validatePayloads": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let created = app.create_app(json!({"name": "shop"})).await;
    let app_id = created["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/app/{app_id}/msg"),
            Some(json!({"eventType": "order.paid", "payload": {"id": "o1", "total": -1}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "payload", "total"]);

    // Again: nothing to change.
    let (_, out) = app.post(IMPORT, Some(json!({"spec": spec()}))).await;
    assert_eq!(out["data"]["modified"], json!([]));

    // replaceAll archives what the document does not list; a later import unarchives.
    let (_, out) = app
        .post(IMPORT, Some(json!({"spec": spec(), "replaceAll": true})))
        .await;
    assert_eq!(out["data"]["modified"], json!(["legacy.event"]));
    assert_eq!(names(&app, false).await, ["order.paid", "stock.changed"]);
    let (status, _) = app.delete("/api/v1/event-type/stock.changed").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // specRaw as YAML.
    let raw = "openapi: 3.1.0\ninfo: {title: Shop, version: '1'}\nwebhooks:\n  stock.changed:\n    post:\n      summary: Stock moved\n      deprecated: true\n      requestBody:\n        content:\n          application/json:\n            schema:\n              type: object\n              properties: {sku: {type: string}, inStock: {type: boolean}}\n              required: [sku]\n";
    let (status, out) = app.post(IMPORT, Some(json!({"specRaw": raw}))).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["data"]["modified"], json!(["stock.changed"]));
    assert_eq!(names(&app, false).await, ["order.paid", "stock.changed"]);
}

#[tokio::test]
async fn a_bad_document_is_refused_whole_naming_each_webhook() {
    let app = TestApp::spawn().await;
    let mut bad = spec();
    bad["webhooks"]["not a name!"] = json!({"post": {}});
    bad["webhooks"]["order.refunded"] = json!({"post": {"requestBody": {"content": {
        "application/json": {"schema": {"type": "integer-ish"}}}}}});
    bad["webhooks"]["order.looped"] = json!({"post": {"requestBody": {"content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Loop"}}}}}});
    bad["components"]["schemas"]["Loop"] =
        json!({"properties": {"next": {"$ref": "#/components/schemas/Loop"}}});
    bad["webhooks"]["order.elsewhere"] = json!({"post": {"requestBody": {"content": {
        "application/json": {"schema": {"$ref": "https://example.com/order.json"}}}}}});
    let (status, body) = app.post(IMPORT, Some(json!({"spec": bad}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let mut locs: Vec<String> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["loc"][3].as_str().unwrap().to_owned())
        .collect();
    locs.sort_unstable();
    assert_eq!(
        locs,
        [
            "not a name!",
            "order.elsewhere",
            "order.looped",
            "order.refunded"
        ],
        "{body}"
    );
    assert!(names(&app, true).await.is_empty(), "nothing half-imported");

    for (input, field) in [
        (json!({"spec": spec(), "specRaw": "{}"}), "spec"),
        (json!({}), "spec"),
        (json!({"specRaw": "openapi: [unclosed"}), "specRaw"),
        (json!({"spec": {"openapi": "3.1.0"}}), "spec"),
    ] {
        let (status, body) = app.post(IMPORT, Some(input.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{input}: {body}");
        assert_validation_error(&body, &["body", field]);
    }
}
