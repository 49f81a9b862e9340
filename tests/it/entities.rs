//! Change detection (README "Change detection"): entity types' rules, snapshots, the
//! messages rules fire (through the `entity_event` outbox), histories, and snapshots of one
//! key sent at once.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_validation_error, eventually};
use crate::receiver::Receiver;

const PRODUCT_RULES: &str = r#"{"description": "a product", "rules": [
    {"eventType": "price.changed", "field": "/price", "when": "threshold", "minPct": 1},
    {"eventType": "stock.changed", "field": "/stockStatus", "when": "transition",
     "from": "in_stock", "to": "out_of_stock"}
]}"#;

async fn app_id(app: &TestApp, uid: &str) -> String {
    app.create_app(json!({"name": uid, "uid": uid})).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn product_type(app: &TestApp, name: &str) {
    let rules: Value = serde_json::from_str(PRODUCT_RULES).unwrap();
    let (status, body) = app
        .put(&format!("/api/v1/entity-type/{name}"), Some(rules))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn snapshot(app: &TestApp, app_id: &str, ty: &str, key: &str, state: Value) -> Value {
    let (status, body) = app
        .put(
            &format!("/api/v1/app/{app_id}/entity/{ty}/{key}"),
            Some(state),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The application's messages of `event_type`, once there are `n`.
async fn messages(app: &TestApp, app_id: &str, event_type: &str, n: usize) -> Vec<Value> {
    let path = format!("/api/v1/app/{app_id}/msg?event_types={event_type}&limit=250");
    eventually(&format!("{n} {event_type} messages"), || async {
        let (_, list) = app.get(&path).await;
        let data = list["data"].as_array().unwrap().clone();
        (data.len() >= n).then_some(data)
    })
    .await
}

#[tokio::test]
async fn entity_types_are_created_read_listed_replaced_and_deleted() {
    let app = TestApp::spawn().await;
    product_type(&app, "product").await;
    let (status, got) = app.get("/api/v1/entity-type/product").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["name"], "product");
    assert_eq!(got["description"], "a product");
    assert_eq!(got["rules"][0]["minPct"], 1.0);
    assert_eq!(got["rules"][1]["from"], "in_stock");
    assert!(got["rules"][1].get("minPct").is_none(), "{got}");

    let (status, _) = app
        .put(
            "/api/v1/entity-type/order",
            Some(json!({"rules": [{"eventType": "order.created", "when": "created"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, page) = app.get("/api/v1/entity-type?limit=1").await;
    assert_eq!(page["data"][0]["name"], "order");
    assert_eq!(page["done"], false);
    let (_, next) = app
        .get(&format!(
            "/api/v1/entity-type?limit=1&iterator={}",
            page["iterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(next["data"][0]["name"], "product");

    // Replaced: same creation time, new rules.
    let (_, replaced) = app
        .put("/api/v1/entity-type/product", Some(json!({"rules": []})))
        .await;
    assert_eq!(replaced["rules"], json!([]));
    assert_eq!(replaced["createdAt"], got["createdAt"]);

    let (status, _) = app.delete("/api/v1/entity-type/product").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/entity-type/product").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.delete("/api/v1/entity-type/product").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_rules_and_states_are_422s_naming_the_field_and_store_nothing() {
    let app = TestApp::spawn().await;
    let rule = |extra: Value| {
        let mut r = json!({"eventType": "price.changed", "field": "/price", "when": "threshold", "minPct": 1});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        json!({"rules": [{"eventType": "a.b", "field": "/a", "when": "changed"}, r]})
    };
    let cases = [
        (rule(json!({"field": "price"})), "field"),
        (rule(json!({"field": "/a~2"})), "field"),
        (rule(json!({"minPct": -1})), "minPct"),
        (rule(json!({"minAbs": -0.5})), "minAbs"),
        (rule(json!({"eventType": "not valid"})), "eventType"),
        (rule(json!({"when": "sometimes"})), "when"),
        (rule(json!({"from": 1})), "from"),
        (rule(json!({"color": "red"})), "color"),
    ];
    for (body, field) in cases {
        let (status, err) = app
            .put("/api/v1/entity-type/product", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        let loc = err["detail"][0]["loc"].as_array().unwrap();
        assert_eq!(
            loc[..3],
            [json!("body"), json!("rules"), json!("1")],
            "{err}"
        );
        assert!(
            err.to_string().contains(field),
            "{body}: {err} does not name {field}"
        );
    }
    let (status, err) = app
        .put(
            "/api/v1/entity-type/product",
            Some(json!({"rules": [], "extra": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (status, _) = app.get("/api/v1/entity-type/product").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");

    let app_id = app_id(&app, "shop").await;
    for state in [json!([1, 2]), json!("x"), json!(3), Value::Null] {
        let (status, err) = app
            .put(
                &format!("/api/v1/app/{app_id}/entity/product/sku-1"),
                Some(state),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
        assert_validation_error(&err, &["body"]);
    }
    let (status, _) = app
        .get(&format!("/api/v1/app/{app_id}/entity/product/sku-1"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_price_change_fires_above_the_percentage_only() {
    let app = TestApp::spawn().await;
    product_type(&app, "product").await;
    let app_id = app_id(&app, "shop").await;
    let first = snapshot(
        &app,
        &app_id,
        "product",
        "sku-1",
        json!({"price": 100, "currency": "EUR"}),
    )
    .await;
    assert_eq!(first["version"], 1);
    assert_eq!(first["changed"], true);
    assert_eq!(first["events"], json!([]), "no created rule");

    let small = snapshot(
        &app,
        &app_id,
        "product",
        "sku-1",
        json!({"price": 100.5, "currency": "EUR"}),
    )
    .await;
    assert_eq!(small["version"], 2);
    assert_eq!(small["events"], json!([]));

    let big = snapshot(
        &app,
        &app_id,
        "product",
        "sku-1",
        json!({"price": 102.51, "currency": "EUR"}),
    )
    .await;
    assert_eq!(big["version"], 3);
    let events = big["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{big}");
    assert_eq!(events[0]["eventType"], "price.changed");
    assert_eq!(events[0]["old"], 100.5);
    assert_eq!(events[0]["new"], 102.51);
    assert!((events[0]["changePct"].as_f64().unwrap() - 2.0).abs() < 1e-9);

    let msgs = messages(&app, &app_id, "price.changed", 1).await;
    assert_eq!(msgs.len(), 1);
    let payload = &msgs[0]["payload"];
    assert_eq!(payload["key"], "sku-1");
    assert_eq!(payload["entityType"], "product");
    assert_eq!(payload["field"], "/price");
    assert_eq!(payload["old"], 100.5);
    assert_eq!(payload["new"], 102.51);
    assert_eq!(
        payload["entity"],
        json!({"price": 102.51, "currency": "EUR"})
    );
    assert_eq!(payload["observedAt"], big["observedAt"]);
    assert!(
        msgs[0]["eventId"]
            .as_str()
            .unwrap()
            .starts_with("hookd-ent-")
    );

    // 100 → 102: exactly 2 %.
    let (_, _) = app
        .put(
            "/api/v1/entity-type/product",
            Some(serde_json::from_str(PRODUCT_RULES).unwrap()),
        )
        .await;
    snapshot(&app, &app_id, "product", "sku-2", json!({"price": 100})).await;
    let two = snapshot(&app, &app_id, "product", "sku-2", json!({"price": 102})).await;
    assert_eq!(two["events"][0]["changePct"], 2.0);
}

#[tokio::test]
async fn a_stock_transition_fires_only_from_in_stock_to_out_of_stock() {
    let app = TestApp::spawn().await;
    product_type(&app, "product").await;
    let app_id = app_id(&app, "shop").await;
    let put = |s: &'static str| {
        snapshot(
            &app,
            &app_id,
            "product",
            "sku-1",
            json!({"price": 10, "stockStatus": s}),
        )
    };
    assert_eq!(put("in_stock").await["events"], json!([]));
    assert_eq!(put("low_stock").await["events"], json!([]));
    assert_eq!(put("in_stock").await["events"], json!([]));
    let out = put("out_of_stock").await;
    assert_eq!(out["events"][0]["eventType"], "stock.changed");
    assert_eq!(out["events"][0]["old"], "in_stock");
    assert_eq!(out["events"][0]["new"], "out_of_stock");
    assert_eq!(out["events"][0]["changePct"], Value::Null);
    assert_eq!(put("in_stock").await["events"], json!([]));
    let msgs = messages(&app, &app_id, "stock.changed", 1).await;
    assert_eq!(msgs.len(), 1);
}

#[tokio::test]
async fn the_same_state_twice_creates_nothing() {
    let app = TestApp::spawn().await;
    app.put(
        "/api/v1/entity-type/product",
        Some(json!({"rules": [{"eventType": "product.changed", "field": "", "when": "changed"}]})),
    )
    .await;
    let app_id = app_id(&app, "shop").await;
    let state = json!({"price": 1, "tags": ["a", "b"], "dims": {"w": 1, "h": 2}});
    snapshot(&app, &app_id, "product", "k", state.clone()).await;
    // Same value, keys in another order.
    let again = snapshot(
        &app,
        &app_id,
        "product",
        "k",
        json!({"dims": {"h": 2, "w": 1}, "tags": ["a", "b"], "price": 1}),
    )
    .await;
    assert_eq!(again["changed"], false);
    assert_eq!(again["version"], 1);
    assert_eq!(again["events"], json!([]));
    let (_, history) = app
        .get(&format!("/api/v1/app/{app_id}/entity/product/k/history"))
        .await;
    assert_eq!(history["data"].as_array().unwrap().len(), 1);
    let changed = snapshot(&app, &app_id, "product", "k", json!({"price": 2})).await;
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["events"].as_array().unwrap().len(), 1);
    messages(&app, &app_id, "product.changed", 1).await;
    let (_, all) = app.get(&format!("/api/v1/app/{app_id}/msg")).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "{all}");
}

#[tokio::test]
async fn a_created_event_only_when_a_rule_asks_for_it() {
    let app = TestApp::spawn().await;
    let app_id = app_id(&app, "shop").await;
    // No entity type at all: states are still kept.
    let first = snapshot(&app, &app_id, "plain", "k", json!({"a": 1})).await;
    assert_eq!(first["events"], json!([]));
    let (status, got) = app
        .get(&format!("/api/v1/app/{app_id}/entity/plain/k"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["state"], json!({"a": 1}));
    assert_eq!(got["version"], 1);

    app.put(
        "/api/v1/entity-type/order",
        Some(json!({"rules": [{"eventType": "order.created", "when": "created"}]})),
    )
    .await;
    let created = snapshot(&app, &app_id, "order", "o-1", json!({"total": 5})).await;
    assert_eq!(created["events"][0]["eventType"], "order.created");
    assert_eq!(created["events"][0]["old"], Value::Null);
    assert_eq!(created["events"][0]["new"], json!({"total": 5}));
    let second = snapshot(&app, &app_id, "order", "o-1", json!({"total": 6})).await;
    assert_eq!(second["events"], json!([]));
    let msgs = messages(&app, &app_id, "order.created", 1).await;
    assert_eq!(msgs[0]["payload"]["old"], Value::Null);
}

#[tokio::test]
async fn a_fired_event_is_delivered_to_an_endpoint_subscribed_to_it() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    product_type(&app, "product").await;
    let app_id = app_id(&app, "shop").await;
    app.create_endpoint(
        &app_id,
        json!({"url": receiver.url("/prices"), "eventTypes": ["price.changed"]}),
    )
    .await;
    snapshot(
        &app,
        &app_id,
        "product",
        "sku-1",
        json!({"price": 100, "stockStatus": "in_stock"}),
    )
    .await;
    snapshot(
        &app,
        &app_id,
        "product",
        "sku-1",
        json!({"price": 100, "stockStatus": "out_of_stock"}),
    )
    .await;
    snapshot(
        &app,
        &app_id,
        "product",
        "sku-1",
        json!({"price": 90, "stockStatus": "out_of_stock"}),
    )
    .await;
    let got = receiver.wait_for("/prices", 1).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["field"], "/price");
    assert_eq!(body["changePct"], -10.0);
    assert!(!got[0].header("webhook-id").is_empty());
    // The stock event became a message, but not one for this endpoint.
    messages(&app, &app_id, "stock.changed", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(receiver.requests("/prices").len(), 1);
}

#[tokio::test]
async fn concurrent_snapshots_of_one_key_apply_one_after_another() {
    let app = TestApp::spawn().await;
    app.put(
        "/api/v1/entity-type/product",
        Some(json!({"rules": [{"eventType": "price.changed", "field": "/price", "when": "changed"}]})),
    )
    .await;
    let app_id = app_id(&app, "shop").await;
    let sends = (1..=20).map(|i| {
        let app = &app;
        let app_id = &app_id;
        async move {
            let path = format!("/api/v1/app/{app_id}/entity/product/sku-1");
            let (status, body) = app.put(&path, Some(json!({"price": i}))).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    });
    let answers = futures::future::join_all(sends).await;
    let mut versions: Vec<i64> = answers
        .iter()
        .map(|a| a["version"].as_i64().unwrap())
        .collect();
    versions.sort();
    assert_eq!(
        versions,
        (1..=20).collect::<Vec<_>>(),
        "each snapshot its own version"
    );
    let (_, got) = app
        .get(&format!("/api/v1/app/{app_id}/entity/product/sku-1"))
        .await;
    assert_eq!(got["version"], 20);

    let history = app
        .list_all(&format!(
            "/api/v1/app/{app_id}/entity/product/sku-1/history"
        ))
        .await;
    assert_eq!(history.len(), 20);
    for (i, entry) in history.iter().enumerate() {
        assert_eq!(entry["version"], 20 - i as i64, "newest first");
    }
    // Each version's event goes from the previous version's price to its own, and no
    // version was observed before the one it follows.
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["observedAt"].as_str().unwrap()).unwrap()
    };
    for pair in history.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert!(at(newer) >= at(older), "{newer} {older}");
        assert_eq!(newer["events"][0]["old"], older["state"]["price"]);
        assert_eq!(newer["events"][0]["new"], newer["state"]["price"]);
    }
    assert_eq!(
        history[19]["events"],
        json!([]),
        "the first snapshot fires nothing"
    );
    let msgs = messages(&app, &app_id, "price.changed", 19).await;
    assert_eq!(msgs.len(), 19);
}

#[tokio::test]
async fn history_pages_newest_first_and_back() {
    let app = TestApp::spawn().await;
    let app_id = app_id(&app, "shop").await;
    for i in 1..=5 {
        snapshot(&app, &app_id, "product", "k", json!({"i": i})).await;
    }
    let base = format!("/api/v1/app/{app_id}/entity/product/k/history");
    let (_, first) = app.get(&format!("{base}?limit=2")).await;
    let versions = |page: &Value| -> Vec<i64> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(versions(&first), [5, 4]);
    assert_eq!(first["done"], false);
    let (_, second) = app
        .get(&format!(
            "{base}?limit=2&iterator={}",
            first["iterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(versions(&second), [3, 2]);
    let (_, third) = app
        .get(&format!(
            "{base}?limit=2&iterator={}",
            second["iterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(versions(&third), [1]);
    assert_eq!(third["done"], true);
    let (_, back) = app
        .get(&format!(
            "{base}?limit=2&iterator={}",
            second["prevIterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(versions(&back), [5, 4]);
    let (_, ascending) = app.get(&format!("{base}?order=ascending&limit=3")).await;
    assert_eq!(versions(&ascending), [1, 2, 3]);
    let (status, err) = app.get(&format!("{base}?iterator=abc")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_validation_error(&err, &["query", "iterator"]);
}

#[tokio::test]
async fn another_applications_entity_is_not_visible_and_goes_with_its_application() {
    let app = TestApp::spawn().await;
    let a = app_id(&app, "shop-a").await;
    let b = app_id(&app, "shop-b").await;
    snapshot(&app, &a, "product", "sku-1", json!({"price": 1})).await;
    for path in [
        format!("/api/v1/app/{b}/entity/product/sku-1"),
        format!("/api/v1/app/{b}/entity/product/sku-2"),
        "/api/v1/app/nobody/entity/product/sku-1".to_owned(),
    ] {
        let (status, _) = app.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, history) = app
        .get(&format!("/api/v1/app/{b}/entity/product/sku-1/history"))
        .await;
    assert_eq!(history["data"], json!([]));
    // By uid as by id.
    let (status, _) = app.get("/api/v1/app/shop-a/entity/product/sku-1").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .put(
            "/api/v1/app/nobody/entity/product/sku-1",
            Some(json!({"a": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = app.delete(&format!("/api/v1/app/{a}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let a2 = app_id(&app, "shop-a").await;
    let (status, _) = app
        .get(&format!("/api/v1/app/{a2}/entity/product/sku-1"))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "deleted with its application"
    );
}

// ---- The store's side, on both backends ----------------------------------------------

mod store {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use hookd::domain::time::now;
    use hookd::domain::{AppId, EntityKey, EntityTypeName};
    use hookd::store::{NewApplication, Snapshot, Store, StoreError};
    use serde_json::json;

    use crate::queue::{postgres, sqlite};

    conformance!(a_batch_applies_in_order_and_a_gone_application_fails_alone);

    fn snapshot(app: &AppId, key: &str, price: i64) -> Snapshot {
        Snapshot {
            app_id: app.clone(),
            entity_type: EntityTypeName::parse("product").unwrap(),
            key: EntityKey::parse(key).unwrap(),
            state: json!({"price": price}).as_object().unwrap().clone(),
            observed_at: now(),
        }
    }

    async fn a_batch_applies_in_order_and_a_gone_application_fails_alone(store: Arc<dyn Store>) {
        let mut apps = Vec::new();
        for name in ["kept", "gone"] {
            let app = store
                .insert_application(NewApplication {
                    uid: None,
                    name: name.into(),
                    rate_limit: None,
                    metadata: BTreeMap::new(),
                })
                .await
                .unwrap();
            apps.push(app.id);
        }
        store.delete_application(&apps[1]).await.unwrap();
        let batch = vec![
            snapshot(&apps[0], "b", 1),
            snapshot(&apps[1], "a", 1),
            snapshot(&apps[0], "a", 1),
            snapshot(&apps[0], "b", 2),
            snapshot(&apps[0], "b", 2),
        ];
        let results = store.apply_snapshots(batch).await.unwrap();
        let summary: Vec<_> = results
            .iter()
            .map(|r| match r {
                Ok(applied) => Some((applied.current.version, applied.changed)),
                Err(StoreError::NotFound) => None,
                Err(e) => panic!("{e}"),
            })
            .collect();
        assert_eq!(
            summary,
            [
                Some((1, true)),
                None,
                Some((1, true)),
                Some((2, true)),
                Some((2, false))
            ]
        );
        let b = store
            .get_entity(
                &apps[0],
                &EntityTypeName::parse("product").unwrap(),
                &EntityKey::parse("b").unwrap(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.state["price"], 2);
    }
}

#[tokio::test]
async fn a_state_is_held_to_the_payload_limits() {
    let app = TestApp::builder()
        .with_config(|c| {
            c.max_payload_bytes = 64;
            c.max_payload_depth = 3;
        })
        .spawn()
        .await;
    let id = app_id(&app, "shop").await;
    let path = format!("/api/v1/app/{id}/entity/product/p1");
    let (status, body) = app
        .put(&path, Some(json!({"description": "x".repeat(100)})))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_payload_bytes")
    );
    let (status, body) = app.put(&path, Some(json!({"a": {"b": {"c": {}}}}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("deeper"), "{body}");
    let (status, body) = app.put(&path, Some(json!([1, 2]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = app
        .put(&path, Some(json!({"price": 10, "n": {"m": 1}})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], 1);
    let (status, _) = app.get(&path).await;
    assert_eq!(status, StatusCode::OK);
}
