//! Operational webhooks: `/api/v1/operational-webhook/endpoint` with the SDK's shapes, the
//! internal application kept out of customers' sight, endpoint events delivered signed and
//! filtered by `eventTypes`, and the outbox drained into exactly one message per event,
//! with two nodes draining at once on PostgreSQL.
//!
//! Every check runs on SQLite and on PostgreSQL ([`on_both_backends!`]).

use std::collections::{BTreeMap, BTreeSet};

use hookd::domain::events::{EndpointRef, OperationalEvent};
use hookd::domain::{AppId, EndpointId, SigningSecret, Uid};
use hookd::signing;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::helpers::{TestApp, TestAppBuilder, assert_validation_error, on_both_backends};
use crate::receiver::{Received, Receiver};

const OPS: &str = "/api/v1/operational-webhook/endpoint";

on_both_backends!(
    operational_endpoints_have_the_sdk_shapes,
    the_internal_application_is_hidden,
    endpoint_changes_are_delivered_signed,
    event_types_filter_what_an_operational_endpoint_receives,
    outbox_rows_from_another_writer_become_one_message_each,
);

/// An operational endpoint delivering to `receiver` at `path`; returns its id and secret.
async fn subscribe(
    app: &TestApp,
    receiver: &Receiver,
    path: &str,
    body: Value,
) -> (String, String) {
    let mut body = body;
    body["url"] = json!(receiver.url(path));
    let (status, endpoint) = app.post(OPS, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{endpoint}");
    let id = endpoint["id"].as_str().unwrap().to_owned();
    let (status, secret) = app.get(&format!("{OPS}/{id}/secret")).await;
    assert_eq!(status, StatusCode::OK, "{secret}");
    (id, secret["key"].as_str().unwrap().to_owned())
}

/// The deliveries' bodies in message order (message ids increase with the outbox order),
/// each checked against its Standard Webhooks signature.
fn verified(received: &[Received], secret: &str) -> Vec<Value> {
    let secret = SigningSecret::parse(secret).unwrap();
    let mut by_id = BTreeMap::new();
    for delivery in received {
        let id = delivery.header("webhook-id");
        let timestamp: i64 = delivery.header("webhook-timestamp").parse().unwrap();
        let signature = delivery.header("webhook-signature");
        assert!(
            signing::verify(&secret, id, timestamp, &delivery.body, signature),
            "bad signature on {id}"
        );
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        by_id.insert(id.to_owned(), body);
    }
    by_id.into_values().collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

async fn operational_endpoints_have_the_sdk_shapes(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    let (status, empty) = app.get(OPS).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["done"], json!(true));

    let (status, created) = app
        .post(
            OPS,
            Some(json!({
                "url": "https://ops.example/hook", "uid": "pager", "description": "on call",
                "eventTypes": ["endpoint.disabled"], "throttleRate": 5,
                "metadata": {"team": "sre"}, "headers": {"X-Team": "sre"}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("ep_"), "{created}");
    for (field, value) in [
        ("uid", json!("pager")),
        ("url", json!("https://ops.example/hook")),
        ("description", json!("on call")),
        ("disabled", json!(false)),
        ("eventTypes", json!(["endpoint.disabled"])),
        ("throttleRate", json!(5)),
        ("metadata", json!({"team": "sre"})),
    ] {
        assert_eq!(created[field], value, "{field}: {created}");
    }
    assert!(created["createdAt"].is_string() && created["updatedAt"].is_string());
    // The customer endpoint's hookd fields are not part of this shape.
    assert!(created.get("signature").is_none(), "{created}");

    let (status, by_uid) = app.get(&format!("{OPS}/pager")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_uid, created);
    let listed = app.list_all(OPS).await;
    assert_eq!(listed, vec![created.clone()]);

    // PUT replaces the settings of an existing one (200) or creates one by uid (201).
    let (status, updated) = app
        .put(
            &format!("{OPS}/{id}"),
            Some(json!({"url": "https://ops.example/v2", "disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["url"], "https://ops.example/v2");
    assert_eq!(updated["disabled"], true);
    assert_eq!(updated["eventTypes"], Value::Null);
    assert_eq!(updated["uid"], "pager");
    let (status, upserted) = app
        .put(
            &format!("{OPS}/audit"),
            Some(json!({"url": "https://audit.example/"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{upserted}");
    assert_eq!(upserted["uid"], "audit");
    assert_eq!(app.list_all(OPS).await.len(), 2);

    let (status, headers) = app.get(&format!("{OPS}/pager/headers")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers,
        json!({"headers": {"X-Team": "sre"}, "sensitive": []})
    );
    let (status, _) = app
        .put(
            &format!("{OPS}/pager/headers"),
            Some(json!({"headers": {"Authorization": "Bearer x", "X-Env": "prod"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, headers) = app.get(&format!("{OPS}/pager/headers")).await;
    assert_eq!(
        headers,
        json!({"headers": {"X-Env": "prod"}, "sensitive": ["Authorization"]})
    );

    let (_, secret) = app.get(&format!("{OPS}/pager/secret")).await;
    let old = secret["key"].as_str().unwrap().to_owned();
    assert!(old.starts_with("whsec_"), "{secret}");
    let (status, body) = app
        .post(&format!("{OPS}/pager/secret/rotate"), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, secret) = app.get(&format!("{OPS}/pager/secret")).await;
    assert_ne!(secret["key"], json!(old));
    let chosen = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let (status, _) = app
        .post(
            &format!("{OPS}/pager/secret/rotate"),
            Some(json!({"key": chosen, "gracePeriodSeconds": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, secret) = app.get(&format!("{OPS}/pager/secret")).await;
    assert_eq!(secret["key"], chosen);
    assert_eq!(secret["publicKey"], json!(null));
    // Operational deliveries are Standard Webhooks, so an ed25519 secret signs them v1a.
    let whsk = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let (status, _) = app
        .post(
            &format!("{OPS}/pager/secret/rotate"),
            Some(json!({"key": whsk, "gracePeriodSeconds": 0})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, secret) = app.get(&format!("{OPS}/pager/secret")).await;
    assert_eq!(
        secret,
        json!({"key": whsk, "publicKey": "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="})
    );

    // Fields of other endpoint shapes are refused, not dropped.
    for (field, value) in [
        ("filterTypes", json!(["endpoint.created"])),
        ("rateLimit", json!(3)),
        ("channels", json!(["a"])),
        ("signature", json!({"scheme": "standard"})),
    ] {
        let mut body = json!({"url": "https://ops.example/x"});
        body[field] = value;
        let (status, error) = app.post(OPS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {error}");
        assert_validation_error(&error, &["body", field]);
        let (status, error) = app.put(&format!("{OPS}/pager"), Some(body)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {error}");
    }
    let (status, error) = app
        .post(
            OPS,
            Some(json!({"url": "https://ops.example/x", "throttleRate": 70000})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(app.list_all(OPS).await.len(), 2);

    let (status, _) = app.delete(&format!("{OPS}/pager")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("{OPS}/pager")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete(&format!("{OPS}/pager")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.list_all(OPS).await.len(), 1);
}

async fn the_internal_application_is_hidden(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    app.create_app(json!({"name": "Customer", "uid": "customer"}))
        .await;
    let (status, _) = app
        .post(OPS, Some(json!({"url": "https://ops.example/hook"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let apps = app.list_all("/api/v1/app").await;
    let uids: Vec<&Value> = apps.iter().map(|a| &a["uid"]).collect();
    assert_eq!(uids, [&json!("customer")]);

    for path in [
        "/api/v1/app/hookd-operational",
        "/api/v1/app/hookd-operational/endpoint",
        "/api/v1/app/hookd-operational/msg",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, _) = app
        .put(
            "/api/v1/app/hookd-operational",
            Some(json!({"name": "mine now"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/api/v1/app/hookd-operational").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            "/api/v1/app/hookd-operational/endpoint",
            Some(json!({"url": "https://evil.example/"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            "/api/v1/app/hookd-operational/msg",
            Some(json!({"eventType": "endpoint.created", "payload": {"forged": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Its uid cannot be taken by (or given to) an application.
    let (status, body) = app
        .post(
            "/api/v1/app",
            Some(json!({"name": "x", "uid": "hookd-operational"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "uid"]);
    let (status, body) = app
        .patch(
            "/api/v1/app/customer",
            Some(json!({"uid": "hookd-operational"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(app.list_all("/api/v1/app").await.len(), 1);
}

async fn endpoint_changes_are_delivered_signed(builder: TestAppBuilder) {
    let app = builder.delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (_, secret) = subscribe(&app, &receiver, "/ops", json!({})).await;
    let customer = app
        .create_app(json!({"name": "Customer", "uid": "customer"}))
        .await;
    let app_id = customer["id"].as_str().unwrap();
    let endpoint = app
        .create_endpoint(
            "customer",
            json!({"url": "https://customer.example/hook", "uid": "billing"}),
        )
        .await;
    let endpoint_id = endpoint["id"].as_str().unwrap();
    let path = "/api/v1/app/customer/endpoint/billing";
    let (status, _) = app
        .put(
            path,
            Some(json!({"url": "https://customer.example/v2", "disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Disabled already: an update, no second `endpoint.disabled`.
    let (status, _) = app
        .patch(
            path,
            Some(json!({"description": "still off", "disabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.patch(path, Some(json!({"disabled": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.delete(path).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let events = verified(&receiver.wait_for("/ops", 7).await, &secret);
    assert_eq!(
        types(&events),
        [
            "endpoint.created",
            "endpoint.updated",
            "endpoint.disabled",
            "endpoint.updated",
            "endpoint.updated",
            "endpoint.enabled",
            "endpoint.deleted",
        ]
    );
    let about = json!({
        "appId": app_id, "appUid": "customer", "endpointId": endpoint_id, "endpointUid": "billing"
    });
    for event in &events {
        let mut data = event["data"].clone();
        if event["type"] == "endpoint.disabled" {
            assert_eq!(data["trigger"], "manual", "{event}");
            assert_eq!(data["reason"], "manual", "{event}");
            assert_eq!(data["failSince"], Value::Null, "{event}");
            let object = data.as_object_mut().unwrap();
            for field in ["trigger", "reason", "failSince"] {
                object.remove(field);
            }
        }
        assert_eq!(data, about, "{event}");
    }

    // Deleting an application reports its endpoints deleted.
    let doomed = app
        .create_endpoint("customer", json!({"url": "https://customer.example/x"}))
        .await;
    let (status, _) = app.delete("/api/v1/app/customer").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let events = verified(&receiver.wait_for("/ops", 9).await, &secret);
    assert_eq!(
        types(&events[7..]),
        ["endpoint.created", "endpoint.deleted"]
    );
    assert_eq!(events[8]["data"]["endpointId"], doomed["id"]);
    assert_eq!(events[8]["data"]["endpointUid"], Value::Null);
}

async fn event_types_filter_what_an_operational_endpoint_receives(builder: TestAppBuilder) {
    let app = builder.delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (_, all_secret) = subscribe(&app, &receiver, "/all", json!({"eventTypes": []})).await;
    let (deletions, secret) = subscribe(
        &app,
        &receiver,
        "/deleted",
        json!({"eventTypes": ["endpoint.deleted"]}),
    )
    .await;
    // Changing operational endpoints reports nothing (no loops).
    let (status, _) = app
        .put(
            &format!("{OPS}/{deletions}"),
            Some(json!({"url": receiver.url("/deleted"), "eventTypes": ["endpoint.deleted"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.create_app(json!({"name": "Customer", "uid": "customer"}))
        .await;
    for round in 1..=2 {
        let endpoint = app
            .create_endpoint("customer", json!({"url": "https://customer.example/"}))
            .await;
        let id = endpoint["id"].as_str().unwrap();
        let (status, _) = app
            .delete(&format!("/api/v1/app/customer/endpoint/{id}"))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        // Each round's events are drained before the next round's are written, so once the
        // catch-all endpoint has this round's deletion, the filtered one has all it will get.
        let everything = verified(&receiver.wait_for("/all", 2 * round).await, &all_secret);
        assert_eq!(
            types(&everything),
            ["endpoint.created", "endpoint.deleted"].repeat(round)
        );
        let filtered = verified(&receiver.wait_for("/deleted", round).await, &secret);
        assert_eq!(types(&filtered), ["endpoint.deleted"].repeat(round));
    }
}

/// Rows another writer (the delivery engine, another node) puts in the outbox are sent once
/// each; on PostgreSQL two nodes drain the same outbox at once.
async fn outbox_rows_from_another_writer_become_one_message_each(builder: TestAppBuilder) {
    const EVENTS: usize = 300;
    let app = builder.delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (_, secret) = subscribe(&app, &receiver, "/ops", json!({})).await;
    let second = match app.database() {
        Some(_) => {
            let (url, token) = (app.config().database_url.clone(), app.token.clone());
            // The default backend, with the first node's database URL: no database of its own.
            let node = TestApp::builder()
                .delivering_to_loopback()
                .with_config(move |c| {
                    c.database_url = url;
                    c.admin_token = token;
                })
                .spawn()
                .await;
            Some(node)
        }
        None => None,
    };
    let customer = AppId::generate();
    let events: Vec<OperationalEvent> = (0..EVENTS)
        .map(|i| {
            OperationalEvent::EndpointCreated(EndpointRef {
                app_id: customer.clone(),
                app_uid: None,
                endpoint_id: EndpointId::generate(),
                endpoint_uid: Some(Uid::parse(&format!("ep-{i}")).unwrap()),
            })
        })
        .collect();
    let mut outbox = Outbox::open(&app).await;
    // In several commits, while the nodes drain.
    for chunk in events.chunks(EVENTS / 6) {
        outbox.write(chunk).await;
    }

    let received = verified(&receiver.wait_for("/ops", EVENTS).await, &secret);
    let uids: BTreeSet<&str> = received
        .iter()
        .map(|e| e["data"]["endpointUid"].as_str().unwrap())
        .collect();
    assert_eq!(uids.len(), EVENTS, "an event was delivered twice");
    let order: Vec<&str> = received
        .iter()
        .map(|e| e["data"]["endpointUid"].as_str().unwrap())
        .collect();
    let written: Vec<String> = (0..EVENTS).map(|i| format!("ep-{i}")).collect();
    assert_eq!(order, written, "messages are created in outbox order");
    // The last batch's rows are deleted just after its messages are written.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while outbox.count("SELECT count(*) FROM operational_event").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox was not emptied"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let messages = outbox
        .count(
            "SELECT count(*) FROM message WHERE app_id = \
             (SELECT id FROM application WHERE uid = 'hookd-operational')",
        )
        .await;
    assert_eq!(messages, EVENTS as i64, "one message per event");
    if let Some(node) = second {
        node.stop().await;
    }
}

/// A connection to a test server's database, standing in for another writer.
enum Outbox {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Outbox {
    async fn open(app: &TestApp) -> Outbox {
        match app.database() {
            Some(db) => Outbox::Postgres(sqlx::PgConnection::connect(&db.url).await.unwrap()),
            None => {
                let path = app.config().data_dir.join("hookd.db");
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .busy_timeout(std::time::Duration::from_secs(10));
                Outbox::Sqlite(
                    sqlx::SqliteConnection::connect_with(&options)
                        .await
                        .unwrap(),
                )
            }
        }
    }

    /// Writes the events in one transaction.
    async fn write(&mut self, events: &[OperationalEvent]) {
        let insert = "INSERT INTO operational_event (event_type, payload, created_at) \
                      VALUES ($1, $2, $3)";
        let at = chrono::Utc::now().timestamp_micros();
        match self {
            Outbox::Sqlite(conn) => {
                let mut tx = conn.begin().await.unwrap();
                for e in events {
                    sqlx::query(insert)
                        .bind(e.event_type())
                        .bind(e.payload())
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
            Outbox::Postgres(conn) => {
                let mut tx = conn.begin().await.unwrap();
                for e in events {
                    sqlx::query(insert)
                        .bind(e.event_type())
                        .bind(e.payload())
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                }
                tx.commit().await.unwrap();
            }
        }
    }

    async fn count(&mut self, query: &str) -> i64 {
        match self {
            Outbox::Sqlite(conn) => sqlx::query_scalar(query).fetch_one(conn).await.unwrap(),
            Outbox::Postgres(conn) => sqlx::query_scalar(query).fetch_one(conn).await.unwrap(),
        }
    }
}
