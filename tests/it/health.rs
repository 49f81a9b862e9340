//! Endpoint health: counters, states and operational events as attempts are recorded,
//! auto-disable by count and by time, the `?health=` filter and the override fields. Each
//! test runs on SQLite and on PostgreSQL; the operational events are read where they are
//! stored (the outbox, or the internal application's messages once drained).

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hookd::delivery::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::delivery::{app_with_endpoint, attempts, delivery_state};
use crate::helpers::{Backend, TestApp, TestAppBuilder, assert_validation_error, eventually};
use crate::receiver::{Receiver, Reply};

macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Backend::Sqlite).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    streak_rate_state_and_events_follow_the_attempts,
    auto_disable_by_count_parks_deliveries_until_enabled,
    auto_disable_by_time_counts_from_the_first_failure,
    endpoints_are_listed_by_health,
    override_fields_round_trip,
);

fn builder(backend: Backend) -> TestAppBuilder {
    let builder = TestApp::builder().delivering_to_loopback();
    match backend {
        Backend::Sqlite => builder,
        Backend::Postgres => builder.with_postgres(),
    }
}

/// Subscribes an operational endpoint to every event, so that the drain turns the outbox's
/// rows into messages of the internal application instead of dropping them. Its deliveries
/// go nowhere (nothing listens on port 9); the tests read the events where they are stored.
async fn subscribe_operational(app: &TestApp) {
    let (status, body) = app
        .post(
            "/api/v1/operational-webhook/endpoint",
            Some(json!({"url": "http://127.0.0.1:9/ops"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// An outbox row: (id, event type, payload).
type Waiting = (i64, String, String);
/// An internal application's message: (eventId, event type, payload).
type Drained = (String, String, String);

/// The operational events written so far, in the order they were written, as (event type,
/// payload): those still in the outbox (`operational_event`) and those the drain already
/// made into messages of the internal application (eventId `hookd-op-<row id>`).
async fn outbox(app: &TestApp) -> Vec<(String, Value)> {
    let waiting = "SELECT id, event_type, payload FROM operational_event";
    let drained = "SELECT m.event_id, m.event_type, m.payload FROM message m \
         JOIN application a ON a.id = m.app_id WHERE a.uid = 'hookd-operational'";
    let (rows, messages): (Vec<Waiting>, Vec<Drained>) = match app.database() {
        Some(database) => {
            let mut conn = sqlx::PgConnection::connect(&database.url).await.unwrap();
            let messages = sqlx::query_as(drained).fetch_all(&mut conn).await.unwrap();
            let rows = sqlx::query_as(waiting).fetch_all(&mut conn).await.unwrap();
            (rows, messages)
        }
        None => {
            let path = app.config().data_dir.join("hookd.db");
            let url = format!("sqlite://{}", path.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let messages = sqlx::query_as(drained).fetch_all(&mut conn).await.unwrap();
            let rows = sqlx::query_as(waiting).fetch_all(&mut conn).await.unwrap();
            (rows, messages)
        }
    };
    // Read messages first: a row drained in between is then in both, and counted once.
    let mut events = std::collections::BTreeMap::new();
    for (event_id, kind, payload) in messages {
        let n: i64 = event_id
            .strip_prefix("hookd-op-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{event_id} is not an operational event's id"));
        events.insert(n, (kind, payload));
    }
    for (n, kind, payload) in rows {
        events.entry(n).or_insert((kind, payload));
    }
    events
        .into_values()
        .map(|(kind, payload)| {
            let payload: Value = serde_json::from_str(&payload).unwrap();
            assert_eq!(payload["type"], kind.as_str(), "{payload}");
            (kind, payload)
        })
        .collect()
}

fn of_type<'a>(events: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, p)| &p["data"])
        .collect()
}

async fn endpoint(app: &TestApp, app_id: &str, endpoint_id: &str) -> Value {
    let (status, endpoint) = app
        .get(&format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{endpoint}");
    endpoint
}

/// Sends a message and waits until its (only) delivery has failed for good.
async fn send_and_fail(app: &TestApp, app_id: &str) -> String {
    let msg = app
        .create_message(app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let id = msg["id"].as_str().unwrap().to_owned();
    delivery_state(app, app_id, &id, "fail").await;
    id
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a time"))
        .parse()
        .unwrap()
}

async fn streak_rate_state_and_events_follow_the_attempts(backend: Backend) {
    // No retries: each message is one attempt, and a failed one is exhausted.
    let app = builder(backend)
        .with_config(|c| c.retry_schedule = vec![])
        .spawn()
        .await;
    subscribe_operational(&app).await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/h", Reply::status(500));
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/h").await;
    let fresh = endpoint(&app, &app_id, &endpoint_id).await;
    assert_eq!(
        fresh["health"],
        json!({"state": "healthy", "consecutiveFailures": 0, "failingSince": null,
               "successRate": null, "windowAttempts": 0, "lastSuccessAt": null,
               "lastFailureAt": null})
    );

    let mut first_failure = None;
    for n in 1..=6u32 {
        send_and_fail(&app, &app_id).await;
        let health = endpoint(&app, &app_id, &endpoint_id).await["health"].clone();
        assert_eq!(health["consecutiveFailures"], n, "{health}");
        assert_eq!(health["windowAttempts"], n, "{health}");
        assert_eq!(health["successRate"], 0.0, "{health}");
        let since = time(&health["failingSince"]);
        assert_eq!(
            *first_failure.get_or_insert(since),
            since,
            "the streak began once"
        );
        assert!(health["lastSuccessAt"].is_null(), "{health}");
        // Below the first alert threshold (3) a failing endpoint is only degraded.
        let expected = if n < 3 { "degraded" } else { "failing" };
        assert_eq!(health["state"], expected, "after {n} failures: {health}");
    }
    // The default auto_disable_after_secs (5 days) is far off; nothing disables it.
    assert_eq!(
        endpoint(&app, &app_id, &endpoint_id).await["disabled"],
        false
    );

    receiver.default_reply("/h", Reply::status(200));
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    delivery_state(&app, &app_id, msg["id"].as_str().unwrap(), "success").await;
    let health = endpoint(&app, &app_id, &endpoint_id).await["health"].clone();
    assert_eq!(health["consecutiveFailures"], 0, "{health}");
    assert!(health["failingSince"].is_null(), "{health}");
    assert_eq!(health["windowAttempts"], 7, "{health}");
    let rate = health["successRate"].as_f64().unwrap();
    assert!((rate - 1.0 / 7.0).abs() < 1e-9, "{health}");
    assert_eq!(health["state"], "degraded", "{health}");
    assert!(time(&health["lastSuccessAt"]) > time(&health["lastFailureAt"]));

    let events = outbox(&app).await;
    let failing = of_type(&events, "message.attempt.failing");
    // Thresholds 3 and 5 were reached (10 was not), once each.
    assert_eq!(failing.len(), 2, "{events:?}");
    for data in &failing {
        assert_eq!(data["endpointId"], endpoint_id.as_str());
        assert_eq!(data["appId"], app_id.as_str());
        assert_eq!(data["lastAttempt"]["responseStatusCode"], 500);
        assert!(
            data["lastAttempt"]["id"]
                .as_str()
                .unwrap()
                .starts_with("atmpt_")
        );
    }
    assert_eq!(of_type(&events, "message.attempt.exhausted").len(), 6);
    let recovered = of_type(&events, "message.attempt.recovered");
    assert_eq!(recovered.len(), 1, "{events:?}");
    assert_eq!(recovered[0]["msgId"], msg["id"]);
    assert_eq!(recovered[0]["lastAttempt"]["responseStatusCode"], 200);
    let changes: Vec<(&str, &str)> = of_type(&events, "endpoint.health.changed")
        .iter()
        .map(|d| {
            (
                d["previous"].as_str().unwrap(),
                d["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("healthy", "degraded"),
            ("degraded", "failing"),
            ("failing", "degraded")
        ]
    );
    assert!(of_type(&events, "endpoint.disabled").is_empty());
}

async fn auto_disable_by_count_parks_deliveries_until_enabled(backend: Backend) {
    let start = hookd::domain::time::now() + TimeDelta::hours(1);
    let clock = ManualClock::new(start);
    let app = builder(backend)
        .with_clock(clock.clone())
        .with_config(|c| {
            c.retry_schedule = vec![60];
            c.retry_jitter = 0.0;
            c.failing_alert_at = vec![2];
        })
        .spawn()
        .await;
    subscribe_operational(&app).await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/d", Reply::status(500));
    let created = app.create_app(json!({"name": "auto"})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    // The global option is off (0); this endpoint's override turns it on.
    let ep = app
        .create_endpoint(
            &app_id,
            json!({"url": receiver.url("/d"), "autoDisableAfterFailures": 2}),
        )
        .await;
    let endpoint_id = ep["id"].as_str().unwrap().to_owned();

    let mut msgs = Vec::new();
    for n in 1..=2 {
        let msg = app
            .create_message(&app_id, json!({"eventType": "a", "payload": {"n": n}}))
            .await;
        let id = msg["id"].as_str().unwrap().to_owned();
        attempts(&app, &app_id, &id, 1).await;
        msgs.push(id);
    }
    let disabled = endpoint(&app, &app_id, &endpoint_id).await;
    assert_eq!(disabled["disabled"], true, "{disabled}");
    assert_eq!(disabled["health"]["state"], "disabled", "{disabled}");
    assert_eq!(disabled["health"]["consecutiveFailures"], 2, "{disabled}");
    // Both retries are parked: pending with no time, and the clock passing their time
    // does not send them.
    for id in &msgs {
        let state = delivery_state(&app, &app_id, id, "pending").await;
        assert!(state["nextAttempt"].is_null(), "{state}");
    }
    clock.advance(Duration::from_secs(120));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.requests("/d").len(),
        2,
        "a parked delivery was sent"
    );

    let events = outbox(&app).await;
    let disables = of_type(&events, "endpoint.disabled");
    assert_eq!(disables.len(), 1, "{events:?}");
    assert_eq!(disables[0]["trigger"], "automatic");
    assert_eq!(disables[0]["reason"], "consecutiveFailures");
    assert_eq!(disables[0]["endpointId"], endpoint_id.as_str());
    assert_eq!(time(&disables[0]["failSince"]), start);
    assert_eq!(of_type(&events, "message.attempt.failing").len(), 1);
    let changes = of_type(&events, "endpoint.health.changed");
    assert_eq!(changes.last().unwrap()["state"], "disabled", "{events:?}");

    // Enabled again, the parked deliveries go out at once and succeed.
    receiver.default_reply("/d", Reply::status(200));
    let (status, body) = app
        .patch(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}"),
            Some(json!({"disabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for id in &msgs {
        delivery_state(&app, &app_id, id, "success").await;
    }
    let health = endpoint(&app, &app_id, &endpoint_id).await["health"].clone();
    assert_eq!(health["consecutiveFailures"], 0, "{health}");
    let events = outbox(&app).await;
    assert_eq!(
        of_type(&events, "message.attempt.recovered").len(),
        1,
        "{events:?}"
    );
    assert_eq!(of_type(&events, "endpoint.disabled").len(), 1);
}

async fn auto_disable_by_time_counts_from_the_first_failure(backend: Backend) {
    let start = hookd::domain::time::now() + TimeDelta::hours(1);
    let clock = ManualClock::new(start);
    let app = builder(backend)
        .with_clock(clock.clone())
        .with_config(|c| {
            c.retry_schedule = vec![300, 300, 300];
            c.retry_jitter = 0.0;
            c.auto_disable_after_secs = 600;
        })
        .spawn()
        .await;
    subscribe_operational(&app).await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/t", Reply::status(500));
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/t").await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    attempts(&app, &app_id, msg_id, 1).await;
    clock.advance(Duration::from_secs(300));
    attempts(&app, &app_id, msg_id, 2).await;
    // 300 s of failing: not yet.
    let ep = endpoint(&app, &app_id, &endpoint_id).await;
    assert_eq!(ep["disabled"], false, "{ep}");
    assert_eq!(time(&ep["health"]["failingSince"]), start);
    clock.advance(Duration::from_secs(300));
    attempts(&app, &app_id, msg_id, 3).await;
    let ep = endpoint(&app, &app_id, &endpoint_id).await;
    assert_eq!(ep["disabled"], true, "600 s of failing: {ep}");
    assert_eq!(ep["health"]["state"], "disabled");
    let state = delivery_state(&app, &app_id, msg_id, "pending").await;
    assert!(state["nextAttempt"].is_null(), "parked: {state}");

    let events = outbox(&app).await;
    let disables = of_type(&events, "endpoint.disabled");
    assert_eq!(disables.len(), 1, "{events:?}");
    assert_eq!(disables[0]["reason"], "failingTooLong");
    assert_eq!(disables[0]["trigger"], "automatic");
    assert_eq!(time(&disables[0]["failSince"]), start);
}

async fn endpoints_are_listed_by_health(backend: Backend) {
    let app = builder(backend)
        .with_config(|c| c.retry_schedule = vec![])
        .spawn()
        .await;
    subscribe_operational(&app).await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/bad", Reply::status(500));
    let created = app.create_app(json!({"name": "filter"})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    let bad = id(app
        .create_endpoint(&app_id, json!({"url": receiver.url("/bad")}))
        .await);
    let off = id(app
        .create_endpoint(
            &app_id,
            json!({"url": receiver.url("/off"), "disabled": true}),
        )
        .await);
    // Subscribed to nothing that is sent: never attempted.
    let idle = id(app
        .create_endpoint(
            &app_id,
            json!({"url": receiver.url("/idle"), "eventTypes": ["never"]}),
        )
        .await);
    send_and_fail(&app, &app_id).await;

    let listed = |state: &'static str| {
        let app = &app;
        let app_id = app_id.clone();
        async move {
            let (status, page) = app
                .get(&format!("/api/v1/app/{app_id}/endpoint?health={state}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let ids: Vec<String> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    assert_eq!(e["health"]["state"], state, "{e}");
                    e["id"].as_str().unwrap().to_owned()
                })
                .collect();
            ids
        }
    };
    assert_eq!(listed("degraded").await, [bad]);
    assert_eq!(listed("disabled").await, [off]);
    assert_eq!(listed("healthy").await, [idle]);
    assert!(listed("failing").await.is_empty());
    let (status, body) = app
        .get(&format!("/api/v1/app/{app_id}/endpoint?health=sick"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["query", "health"]);
}

async fn override_fields_round_trip(backend: Backend) {
    let app = builder(backend).spawn().await;
    subscribe_operational(&app).await;
    let created = app.create_app(json!({"name": "overrides"})).await;
    let app_id = created["id"].as_str().unwrap().to_owned();
    let ep = app
        .create_endpoint(
            &app_id,
            json!({"url": "https://example.com/o", "autoDisableAfterFailures": 7,
                   "autoDisableAfterSecs": 3600}),
        )
        .await;
    assert_eq!(ep["autoDisableAfterFailures"], 7);
    assert_eq!(ep["autoDisableAfterSecs"], 3600);
    let path = format!(
        "/api/v1/app/{app_id}/endpoint/{}",
        ep["id"].as_str().unwrap()
    );

    // PUT without them (as the Svix SDKs send it) leaves them as they are.
    let (status, put) = app
        .put(&path, Some(json!({"url": "https://example.com/o2"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    assert_eq!(put["autoDisableAfterFailures"], 7);
    assert_eq!(put["autoDisableAfterSecs"], 3600);
    let (_, put) = app
        .put(
            &path,
            Some(json!({"url": "https://example.com/o2", "autoDisableAfterSecs": 0})),
        )
        .await;
    assert_eq!(put["autoDisableAfterSecs"], 0);

    // PATCH: null goes back to the server's option; absent leaves it.
    let (status, patched) = app
        .patch(&path, Some(json!({"autoDisableAfterFailures": null})))
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert!(patched["autoDisableAfterFailures"].is_null(), "{patched}");
    assert_eq!(patched["autoDisableAfterSecs"], 0);
    let (_, read) = app.get(&path).await;
    assert!(read["autoDisableAfterFailures"].is_null());
    assert_eq!(read["autoDisableAfterSecs"], 0);
    assert_eq!(read["health"]["state"], "healthy");

    for (field, bad) in [
        ("autoDisableAfterFailures", json!(-1)),
        ("autoDisableAfterSecs", json!("soon")),
        ("autoDisableAfterFailures", json!(1.5)),
    ] {
        let (status, body) = app.patch(&path, Some(json!({ field: bad }))).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={bad}: {body}"
        );
        assert_validation_error(&body, &["body", field]);
    }
}

/// Two nodes deliver to one failing endpoint at once, recording concurrently: each alert
/// threshold's event is written exactly once, and the streak counts every attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_write_each_threshold_once() {
    let first = TestApp::builder()
        .with_postgres()
        .delivering_to_loopback()
        .with_config(|c| c.retry_schedule = vec![])
        .spawn()
        .await;
    subscribe_operational(&first).await;
    let (url, token) = (first.config().database_url.clone(), first.token.clone());
    let second = TestApp::builder()
        .delivering_to_loopback()
        .with_config(move |c| {
            c.database_url = url;
            c.admin_token = token;
            c.retry_schedule = vec![];
            c.database_pool_max = 6;
        })
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    // Slow enough that both nodes' attempts overlap.
    receiver.default_reply("/both", Reply::status(500).after(Duration::from_millis(50)));
    let (app_id, endpoint_id) = app_with_endpoint(&first, &receiver, "/both").await;
    let sends = (0..24).map(|n| {
        let node = if n % 2 == 0 { &first } else { &second };
        let app_id = app_id.clone();
        async move {
            node.create_message(&app_id, json!({"eventType": "a", "payload": {"n": n}}))
                .await
        }
    });
    futures::future::join_all(sends).await;
    eventually("24 attempts recorded", || async {
        let (_, stats) = first
            .get(&format!(
                "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"
            ))
            .await;
        (stats["fail"] == 24).then_some(())
    })
    .await;
    let health = endpoint(&first, &app_id, &endpoint_id).await["health"].clone();
    assert_eq!(health["consecutiveFailures"], 24, "{health}");
    assert_eq!(health["windowAttempts"], 24, "{health}");
    assert_eq!(health["state"], "failing");
    let events = outbox(&first).await;
    assert_eq!(of_type(&events, "message.attempt.exhausted").len(), 24);
    let failing = of_type(&events, "message.attempt.failing");
    assert_eq!(
        failing.len(),
        3,
        "thresholds 3, 5 and 10, once each: {events:?}"
    );
    let mut attempts: Vec<&str> = failing
        .iter()
        .map(|d| d["lastAttempt"]["id"].as_str().unwrap())
        .collect();
    attempts.dedup();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        receiver.requests("/both").len(),
        24,
        "every message was attempted once"
    );
}
