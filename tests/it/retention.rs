//! Retention: payloads removed when they expire (`payloadRetentionPeriod`,
//! `payloadRetentionHours`, `payload_retention_days`), whole finished messages deleted after
//! `retention_days`, and the expunge routes, `expunge-all-contents` as a background task.
//!
//! The jobs read time from the server's clock: a `ManualClock` moved by hours or days stands
//! in for the wait. The store's side (batches, purge steps, task leases) is checked on both
//! backends by the conformance suite below.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use hookd::delivery::clock::ManualClock;
use hookd::domain::time::now;
use hookd::domain::{MessageId, MessageKey, TaskKind, TaskStatus};
use hookd::store::{Cursor, Order, PageQuery, Store, TaskFilter};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{app_with_endpoint, attempts, delivery_state};
use crate::helpers::{TestApp, assert_validation_error, eventually};
use crate::queue::{new_message, postgres, seed, sqlite};
use crate::receiver::{Receiver, Reply};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// A server whose clock runs a minute ahead of the wall clock (so new messages are due at
/// once) and then stands still until the test moves it.
async fn with_manual_clock(
    edit: impl FnOnce(&mut hookd::config::Config) + Send + 'static,
) -> (TestApp, ManualClock) {
    let clock = ManualClock::new(now() + TimeDelta::minutes(1));
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_clock(clock.clone())
        .with_config(edit)
        .spawn()
        .await;
    (app, clock)
}

async fn message(app: &TestApp, app_id: &str, body: Value) -> String {
    let msg = app.create_message(app_id, body).await;
    msg["id"].as_str().unwrap().to_owned()
}

async fn payload(app: &TestApp, app_id: &str, msg_id: &str) -> Value {
    let (status, msg) = app.get(&format!("/api/v1/app/{app_id}/msg/{msg_id}")).await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    msg["payload"].clone()
}

/// Waits until the message's payload reads as expunged.
async fn expired(app: &TestApp, app_id: &str, msg_id: &str) {
    eventually("the payload to expire", || async {
        (payload(app, app_id, msg_id).await == json!({"expired": true})).then_some(())
    })
    .await;
}

#[tokio::test]
async fn payloads_are_removed_when_their_retention_runs_out_and_attempts_stay() {
    let (app, clock) = with_manual_clock(|_| {}).await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let hourly = message(
        &app,
        &app_id,
        json!({"eventType": "a", "payload": {"pii": 1}, "payloadRetentionHours": 1}),
    )
    .await;
    let daily = message(
        &app,
        &app_id,
        json!({"eventType": "a", "payload": {"pii": 2}, "payloadRetentionPeriod": 1}),
    )
    .await;
    let kept = message(
        &app,
        &app_id,
        json!({"eventType": "a", "payload": {"pii": 3}}),
    )
    .await;
    receiver.wait_for("/r", 3).await;
    let attempts_before = attempts(&app, &app_id, &hourly, 1).await;

    clock.advance(2 * HOUR);
    expired(&app, &app_id, &hourly).await;
    // The same batch saw the others, not yet expired.
    assert_eq!(payload(&app, &app_id, &daily).await, json!({"pii": 2}));
    assert_eq!(payload(&app, &app_id, &kept).await, json!({"pii": 3}));
    assert_eq!(
        attempts(&app, &app_id, &hourly, 1).await,
        attempts_before,
        "the attempt log stays"
    );
    delivery_state(&app, &app_id, &hourly, "success").await;

    clock.advance(DAY);
    expired(&app, &app_id, &daily).await;
    assert_eq!(
        payload(&app, &app_id, &kept).await,
        json!({"pii": 3}),
        "without a retention (and no default) a payload is kept"
    );
}

#[tokio::test]
async fn ingest_log_entries_go_after_thirty_days() {
    let (app, clock) = with_manual_clock(|_| {}).await;
    let (status, source) = app
        .post(
            "/ingest/api/v1/source",
            Some(json!({"name": "any", "type": "generic-webhook"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let url = source["ingestUrl"].as_str().unwrap();
    let status = app
        .client
        .post(url)
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
    let log = format!(
        "/ingest/api/v1/source/{}/log",
        source["id"].as_str().unwrap()
    );
    assert_eq!(app.list_all(&log).await.len(), 1);
    clock.advance(29 * DAY);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.list_all(&log).await.len(), 1, "kept for 30 days");
    clock.advance(2 * DAY);
    eventually("the log entry to go", || async {
        app.list_all(&log).await.is_empty().then_some(())
    })
    .await;
}

/// The value of an unlabelled counter on this node's `/metrics` page.
async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app
        .raw_request(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not on /metrics"))
}

#[tokio::test]
async fn the_default_payload_retention_applies_to_messages_that_give_none() {
    let (app, clock) = with_manual_clock(|c| c.payload_retention_days = 2).await;
    app.create_app(json!({"name": "a", "uid": "a"})).await;
    let default = message(&app, "a", json!({"eventType": "a", "payload": {"x": 1}})).await;
    let longer = message(
        &app,
        "a",
        json!({"eventType": "a", "payload": {"x": 2}, "payloadRetentionPeriod": 5}),
    )
    .await;
    assert_eq!(counter(&app, "hookd_payloads_expired_total").await, 0.0);
    clock.advance(3 * DAY);
    expired(&app, "a", &default).await;
    assert_eq!(payload(&app, "a", &longer).await, json!({"x": 2}));
    assert_eq!(counter(&app, "hookd_payloads_expired_total").await, 1.0);
}

#[tokio::test]
async fn retention_days_deletes_finished_messages_and_keeps_pending_ones() {
    // A failed attempt is retried only after ten days: past the retention, still pending.
    let (app, clock) = with_manual_clock(|c| {
        c.retention_days = 1;
        c.retry_schedule = vec![10 * 86_400];
        c.retry_jitter = 0.0;
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/fail", Reply::status(500));
    app.create_app(json!({"name": "a", "uid": "a"})).await;
    let mut endpoints = Vec::new();
    for (path, event_type) in [("/ok", "ok"), ("/fail", "fail")] {
        let endpoint = app
            .create_endpoint(
                "a",
                json!({"url": receiver.url(path), "eventTypes": [event_type]}),
            )
            .await;
        endpoints.push(endpoint["id"].as_str().unwrap().to_owned());
    }
    let delivered = message(&app, "a", json!({"eventType": "ok", "payload": {}})).await;
    let pending = message(&app, "a", json!({"eventType": "fail", "payload": {}})).await;
    delivery_state(&app, "a", &delivered, "success").await;
    attempts(&app, "a", &pending, 1).await;
    delivery_state(&app, "a", &pending, "pending").await;

    clock.advance(2 * DAY);
    eventually("the delivered message to be deleted", || async {
        let (status, _) = app.get(&format!("/api/v1/app/a/msg/{delivered}")).await;
        (status == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let (status, _) = app
        .get(&format!("/api/v1/app/a/attempt/msg/{delivered}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let ok_attempts = app
        .list_all(&format!("/api/v1/app/a/attempt/endpoint/{}", endpoints[0]))
        .await;
    assert_eq!(
        ok_attempts,
        Vec::<Value>::new(),
        "its attempts went with it"
    );
    assert_eq!(payload(&app, "a", &pending).await, json!({}));
    assert_eq!(attempts(&app, "a", &pending, 1).await.len(), 1);
    assert_eq!(counter(&app, "hookd_messages_pruned_total").await, 1.0);
}

#[tokio::test]
async fn expunge_all_contents_runs_as_a_background_task() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "a", "uid": "a"})).await;
    app.create_app(json!({"name": "b", "uid": "b"})).await;
    let mut purged = Vec::new();
    for i in 0..3 {
        purged.push(message(&app, "a", json!({"eventType": "t", "payload": {"i": i}})).await);
    }
    let other = message(&app, "b", json!({"eventType": "t", "payload": {"i": 9}})).await;

    let (status, started) = app
        .post("/api/v1/app/a/msg/expunge-all-contents", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let id = started["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("qtask_"), "{started}");
    assert_eq!(started["task"], "application.purge_content");
    assert!(started["updatedAt"].is_string(), "{started}");

    let done = eventually("the task to finish", || async {
        let (status, task) = app.get(&format!("/api/v1/background-task/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{task}");
        (task["status"] == "finished").then_some(task)
    })
    .await;
    assert_eq!(done["data"], json!({"messagesPurged": 3}));
    assert_eq!(done["task"], "application.purge_content");
    for msg in &purged {
        assert_eq!(payload(&app, "a", msg).await, json!({"expired": true}));
    }
    assert_eq!(payload(&app, "b", &other).await, json!({"i": 9}));

    let listed = app.list_all("/api/v1/background-task").await;
    assert_eq!(listed, std::slice::from_ref(&done));
    let finished = app
        .list_all("/api/v1/background-task?status=finished&task=application.purge_content")
        .await;
    assert_eq!(finished, [done]);
    for query in ["status=running", "task=endpoint.replay"] {
        let (status, page) = app.get(&format!("/api/v1/background-task?{query}")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page["data"], json!([]), "{query}");
    }
    for (query, field) in [("status=done", "status"), ("task=purge", "task")] {
        let (status, body) = app.get(&format!("/api/v1/background-task?{query}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_validation_error(&body, &["query", field]);
    }
    for missing in ["qtask_01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope"] {
        let (status, _) = app.get(&format!("/api/v1/background-task/{missing}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = app
        .post("/api/v1/app/nobody/msg/expunge-all-contents", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bulk_expunge_answers_for_each_id() {
    let app = TestApp::spawn().await;
    app.create_app(json!({"name": "a", "uid": "a"})).await;
    let by_id = message(&app, "a", json!({"eventType": "t", "payload": {"n": 1}})).await;
    let by_event_id = message(
        &app,
        "a",
        json!({"eventType": "t", "eventId": "e1", "payload": {"n": 2}}),
    )
    .await;
    let kept = message(&app, "a", json!({"eventType": "t", "payload": {"n": 3}})).await;
    let unknown = MessageId::generate().to_string();

    let (status, body) = app
        .post(
            "/api/v1/app/a/msg/bulk-expunge",
            Some(json!({"ids": [by_id, "e1", unknown, "e2"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"results": {
            by_id.clone(): "expunged", "e1": "expunged", unknown: "not-found", "e2": "not-found"
        }})
    );
    assert_eq!(payload(&app, "a", &by_id).await, json!({"expired": true}));
    assert_eq!(
        payload(&app, "a", &by_event_id).await,
        json!({"expired": true})
    );
    assert_eq!(payload(&app, "a", &kept).await, json!({"n": 3}));

    let (status, body) = app
        .post("/api/v1/app/a/msg/bulk-expunge", Some(json!({})))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"results": {}})));
    let (status, body) = app
        .post(
            "/api/v1/app/a/msg/bulk-expunge",
            Some(json!({"ids": [kept, "not/an/id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_validation_error(&body, &["body", "ids", "1"]);
    assert_eq!(
        payload(&app, "a", &kept).await,
        json!({"n": 3}),
        "a refused request changes nothing"
    );
    let (status, _) = app
        .post(
            "/api/v1/app/nobody/msg/bulk-expunge",
            Some(json!({"ids": []})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ---- The store's side, on both backends ----------------------------------------------

conformance!(
    expired_payloads_are_removed_in_batches,
    purging_an_application_goes_step_by_step,
    one_holder_runs_a_task_until_its_lease_runs_out,
);

async fn expired_payloads_are_removed_in_batches(store: Arc<dyn Store>) {
    let endpoint = seed(store.as_ref(), 1).await;
    let app = endpoint.app_id.clone();
    let mut expiring = Vec::new();
    for _ in 0..3 {
        let mut new = new_message(&app, r#"{"a":1}"#, None);
        new.payload_retention = Some(TimeDelta::hours(1));
        expiring.push(store.enqueue_message(new).await.unwrap().message.id);
    }
    let t = now();
    assert_eq!(store.expire_payloads(t, 10).await.unwrap(), Some(0));
    let later = t + TimeDelta::hours(2);
    assert_eq!(store.expire_payloads(later, 2).await.unwrap(), Some(2));
    assert_eq!(store.expire_payloads(later, 2).await.unwrap(), Some(1));
    assert_eq!(store.expire_payloads(later, 2).await.unwrap(), Some(0));
    for id in &expiring {
        let msg = store
            .get_message(&app, &MessageKey::Id(id.clone()))
            .await
            .unwrap()
            .expect("the message stays");
        assert_eq!(msg.payload, None);
    }
    let all = store
        .list_messages(&app, &Default::default(), &page())
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(
        all.iter().filter(|m| m.payload.is_some()).count(),
        1,
        "the message without a retention keeps its payload"
    );
}

fn page() -> PageQuery {
    PageQuery {
        limit: 50,
        cursor: Cursor::Start,
        order: Order::Ascending,
    }
}

async fn purging_an_application_goes_step_by_step(store: Arc<dyn Store>) {
    let endpoint = seed(store.as_ref(), 5).await;
    let app = endpoint.app_id.clone();
    let other = seed(store.as_ref(), 1).await.app_id;
    let ids: Vec<MessageId> = store
        .list_messages(&app, &Default::default(), &page())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    store.expunge_message_content(&app, &ids[2]).await.unwrap();

    let mut steps = Vec::new();
    let mut after = None;
    loop {
        let step = store.purge_payloads(&app, after.as_ref(), 2).await.unwrap();
        steps.push(step.purged);
        match step.last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    assert_eq!(
        steps,
        [2, 1, 1, 0],
        "an expunged payload is not counted again"
    );
    let left = store
        .list_messages(&app, &Default::default(), &page())
        .await
        .unwrap();
    assert!(left.iter().all(|m| m.payload.is_none()));
    let others = store
        .list_messages(&other, &Default::default(), &page())
        .await
        .unwrap();
    assert!(
        others[0].payload.is_some(),
        "another application is untouched"
    );
}

async fn one_holder_runs_a_task_until_its_lease_runs_out(store: Arc<dyn Store>) {
    let app = seed(store.as_ref(), 0).await.app_id;
    let task = store
        .insert_task(TaskKind::PurgeContent, Some(&app), Default::default(), None)
        .await
        .unwrap();
    assert_eq!(task.status, TaskStatus::Running);
    let t = now();
    let lease = t + TimeDelta::seconds(60);
    let mut claimed = store
        .claim_task(t, lease)
        .await
        .unwrap()
        .expect("claimable");
    assert_eq!(claimed.id, task.id);
    assert_eq!(store.claim_task(t, lease).await.unwrap(), None, "held");

    // Its holder died: another node takes it over once the lease has run out.
    let later = lease + TimeDelta::seconds(1);
    let new_lease = later + TimeDelta::seconds(60);
    let mut taken = store
        .claim_task(later, new_lease)
        .await
        .unwrap()
        .expect("taken over");
    claimed.cursor = Some("stale".into());
    claimed.lease_until = later;
    assert!(
        !store.save_task(&claimed, lease).await.unwrap(),
        "the old holder can no longer save"
    );
    taken.status = TaskStatus::Finished;
    taken.updated_at = later;
    taken.data.insert("messagesPurged".into(), json!(7));
    assert!(store.save_task(&taken, new_lease).await.unwrap());
    assert_eq!(
        store
            .claim_task(later + TimeDelta::days(1), later)
            .await
            .unwrap(),
        None
    );

    let stored = store.get_task(&task.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Finished);
    assert_eq!(stored.cursor, None);
    assert_eq!(stored.data.get("messagesPurged"), Some(&json!(7)));
    let running = TaskFilter {
        status: Some(TaskStatus::Running),
        kind: None,
    };
    assert!(
        store
            .list_tasks(&running, &page())
            .await
            .unwrap()
            .is_empty()
    );
    let finished = TaskFilter {
        status: Some(TaskStatus::Finished),
        kind: Some(TaskKind::PurgeContent),
    };
    assert_eq!(
        store.list_tasks(&finished, &page()).await.unwrap(),
        [stored]
    );
    assert_eq!(
        store.prune_tasks(later).await.unwrap(),
        0,
        "finished after `later`"
    );
    assert_eq!(
        store.prune_tasks(later + TimeDelta::days(1)).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn a_task_whose_runner_died_is_resumed_once_its_lease_runs_out() {
    let (mut app, clock) = with_manual_clock(|_| {}).await;
    app.create_app(json!({"name": "a", "uid": "a"})).await;
    let first = message(&app, "a", json!({"eventType": "t", "payload": {"n": 1}})).await;
    message(&app, "a", json!({"eventType": "t", "payload": {"n": 2}})).await;
    let (_, found) = app.get("/api/v1/app/a").await;
    let app_id = hookd::domain::AppId::parse(found["id"].as_str().unwrap()).unwrap();

    // A node claimed a purge task and died before its first step.
    let other_node = hookd::app::open_store(app.config()).await.unwrap();
    let task = other_node
        .insert_task(
            TaskKind::PurgeContent,
            Some(&app_id),
            hookd::tasks::initial_data(TaskKind::PurgeContent),
            None,
        )
        .await
        .unwrap();
    let held_until = clock_now(&clock) + TimeDelta::seconds(60);
    let claimed = other_node
        .claim_task(clock_now(&clock), held_until)
        .await
        .unwrap();
    assert_eq!(claimed.map(|t| t.id), Some(task.id.clone()));
    drop(other_node);

    app.restart().await;
    let path = format!("/api/v1/background-task/{}", task.id);
    let (_, still) = app.get(&path).await;
    assert_eq!(still["status"], "running", "the lease still holds: {still}");
    assert_eq!(payload(&app, "a", &first).await, json!({"n": 1}));

    clock.advance(Duration::from_secs(120));
    let done = eventually("the task to be resumed and finish", || async {
        let (_, task) = app.get(&path).await;
        (task["status"] == "finished").then_some(task)
    })
    .await;
    assert_eq!(done["data"], json!({"messagesPurged": 2}));
    assert_eq!(payload(&app, "a", &first).await, json!({"expired": true}));
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<chrono::Utc> {
    use hookd::delivery::clock::Clock;
    clock.now()
}
