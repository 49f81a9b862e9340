//! Freshness monitors: `/api/v1/monitor`, the state going stale after `maxSilence` without
//! a message and back to ok when one comes, `monitor.stale`/`monitor.recovered` delivered
//! once each to the operational webhook endpoints (also with several nodes checking at
//! once, on PostgreSQL), and `/metrics`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, TestAppBuilder, assert_validation_error, eventually, on_both_backends,
};
use crate::receiver::Receiver;

const MONITORS: &str = "/api/v1/monitor";
const OPS: &str = "/api/v1/operational-webhook/endpoint";

on_both_backends!(
    monitors_are_created_listed_changed_and_deleted,
    a_silent_event_type_goes_stale_and_recovers_once_each,
    a_missed_deadline_makes_a_monitor_stale,
);

async fn monitor(app: &TestApp, body: Value) -> Value {
    let (status, created) = app.post(MONITORS, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

async fn monitors_are_created_listed_changed_and_deleted(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    let scraper = app
        .create_app(json!({"name": "Scraper", "uid": "scraper"}))
        .await;
    let created = monitor(
        &app,
        json!({"name": "nightly run", "app": "scraper", "eventType": "run.completed",
               "maxSilence": 90000}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("mon_"));
    assert_eq!(created["app"], scraper["id"]);
    assert_eq!(created["state"], "ok");
    assert_eq!(created["lastSeenAt"], Value::Null);
    assert_eq!(created["maxSilence"], 90000);
    let created_at =
        chrono::DateTime::parse_from_rfc3339(created["createdAt"].as_str().unwrap()).unwrap();
    let due_at = chrono::DateTime::parse_from_rfc3339(created["dueAt"].as_str().unwrap()).unwrap();
    assert_eq!(due_at - created_at, chrono::TimeDelta::hours(25));

    let listed = app.list_all(MONITORS).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["deadline"], Value::Null);
    let (status, updated) = app
        .put(
            &format!("{MONITORS}/{id}"),
            Some(json!({"name": "nightly", "maxSilence": 3600, "description": "the 2 AM crawl"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["maxSilence"], 3600);
    assert_eq!(updated["description"], "the 2 AM crawl");
    let (status, body) = app
        .put(
            &format!("{MONITORS}/{id}"),
            Some(json!({"name": "n", "eventType": "other", "maxSilence": 60})),
        )
        .await;
    // The event type (and the application) cannot change.
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.to_string().contains("eventType"), "{body}");

    for (body, loc) in [
        (
            json!({"name": "x", "app": "scraper", "maxSilence": 0}),
            "maxSilence",
        ),
        (
            json!({"name": "x", "app": "scraper", "maxSilence": 1.5}),
            "maxSilence",
        ),
        (
            json!({"name": "", "app": "scraper", "maxSilence": 60}),
            "name",
        ),
        (
            json!({"name": "x", "app": "scraper", "maxSilence": 60, "eventType": "no spaces"}),
            "eventType",
        ),
        (
            json!({"name": "x", "app": "scraper", "maxSilence": 60, "cron": "0 2 * * *"}),
            "cron",
        ),
    ] {
        let (status, answer) = app.post(MONITORS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert!(answer.to_string().contains(loc), "{body}: {answer}");
    }
    for (body, loc) in [
        (json!({"name": "x", "app": "scraper"}), "maxSilence"),
        (
            json!({"name": "x", "app": "scraper", "maxSilence": 60, "deadline": "0 3 * * *"}),
            "deadline",
        ),
        (
            json!({"name": "x", "app": "scraper", "deadline": "at three"}),
            "deadline",
        ),
        (
            json!({"name": "x", "app": "scraper", "deadline": "0 0 30 2 *"}),
            "deadline",
        ),
    ] {
        let (status, answer) = app.post(MONITORS, Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_validation_error(&answer, &["body", loc]);
    }
    let daily = monitor(
        &app,
        json!({"name": "crawl", "app": "scraper", "deadline": "0 3 * * *"}),
    )
    .await;
    assert_eq!(daily["deadline"], "0 3 * * *");
    assert_eq!(daily["maxSilence"], Value::Null);
    assert!(
        daily["dueAt"].as_str().unwrap().ends_with("T03:00:00Z"),
        "{daily}"
    );
    let (status, _) = app
        .post(
            MONITORS,
            Some(json!({"name": "x", "app": "nowhere", "maxSilence": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = app.delete(&format!("{MONITORS}/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("{MONITORS}/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Deleting the application deletes its monitors.
    let other = monitor(
        &app,
        json!({"name": "any", "app": "scraper", "maxSilence": 60}),
    )
    .await;
    app.delete("/api/v1/app/scraper").await;
    let (status, _) = app
        .get(&format!("{MONITORS}/{}", other["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The `monitor.*` operational events `receiver` got at `path`, as (type, monitorId).
fn monitor_events(receiver: &Receiver, path: &str) -> Vec<(String, String)> {
    receiver
        .requests(path)
        .iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            let kind = body["type"].as_str()?.to_owned();
            kind.starts_with("monitor.").then(|| {
                (
                    kind,
                    body["data"]["monitorId"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect()
}

async fn a_silent_event_type_goes_stale_and_recovers_once_each(builder: TestAppBuilder) {
    let app = builder.delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (status, ops) = app
        .post(OPS, Some(json!({"url": receiver.url("/ops"), "eventTypes": ["monitor.stale", "monitor.recovered"]})))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ops}");
    app.create_app(json!({"name": "Scraper", "uid": "scraper"}))
        .await;
    let watched = monitor(
        &app,
        json!({"name": "runs", "app": "scraper", "eventType": "run.completed", "maxSilence": 2}),
    )
    .await;
    let id = watched["id"].as_str().unwrap().to_owned();
    let path = format!("{MONITORS}/{id}");
    // A message of another event type does not count.
    app.create_message(
        "scraper",
        json!({"eventType": "run.started", "payload": {}}),
    )
    .await;
    let stale = eventually("the monitor to go stale", || async {
        let m = app.get(&path).await.1;
        (m["state"] == "stale").then_some(m)
    })
    .await;
    assert_eq!(stale["lastSeenAt"], Value::Null);
    let since =
        chrono::DateTime::parse_from_rfc3339(stale["stateSince"].as_str().unwrap()).unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(stale["createdAt"].as_str().unwrap()).unwrap();
    let silence = (since - created).num_milliseconds();
    assert!((2000..4500).contains(&silence), "stale after {silence} ms");

    let sent = app
        .create_message(
            "scraper",
            json!({"eventType": "run.completed", "payload": {"rows": 10}}),
        )
        .await;
    let ok = eventually("the monitor to recover", || async {
        let m = app.get(&path).await.1;
        (m["state"] == "ok").then_some(m)
    })
    .await;
    assert_eq!(ok["lastSeenAt"], sent["timestamp"]);
    let events = eventually("both events delivered", || async {
        let events = monitor_events(&receiver, "/ops");
        (events.len() >= 2).then_some(events)
    })
    .await;
    // Later checks report nothing more until the next silence.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_now = monitor_events(&receiver, "/ops");
    assert_eq!(
        events_now[..2],
        [
            ("monitor.stale".to_owned(), id.clone()),
            ("monitor.recovered".to_owned(), id.clone())
        ],
        "{events:?} {ops}"
    );
    let body: Value = serde_json::from_slice(&receiver.requests("/ops")[0].body).unwrap();
    assert_eq!(body["data"]["name"], "runs");
    assert_eq!(body["data"]["appUid"], "scraper");
    assert_eq!(body["data"]["eventType"], "run.completed");
    assert_eq!(body["data"]["maxSilence"], 2);

    // /metrics shows it.
    let metrics = reqwest::get(format!("{}/metrics", app.base_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "hookd_monitor_stale{{monitor=\"{id}\",name=\"runs\"}} "
        )) && metrics.contains("hookd_monitor_last_seen_timestamp_seconds{"),
        "{metrics}"
    );
}

/// Several nodes checking the same monitors at once report each change once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_nodes_report_a_change_once() {
    let app = TestApp::builder()
        .with_postgres()
        .delivering_to_loopback()
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let (status, _) = app
        .post(OPS, Some(json!({"url": receiver.url("/ops")})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.create_app(json!({"name": "Scraper", "uid": "scraper"}))
        .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = monitor(
            &app,
            json!({"name": format!("m{i}"), "app": "scraper", "maxSilence": 1}),
        )
        .await;
        ids.push(m["id"].as_str().unwrap().to_owned());
    }
    // Three more "nodes" check as fast as they can while the server's own checker runs.
    let url = app.database().unwrap().url.clone();
    let mut checkers = Vec::new();
    for _ in 0..3 {
        let store: std::sync::Arc<dyn hookd::store::Store> = std::sync::Arc::new(
            hookd::store::postgres::PgStore::connect(
                &url,
                hookd::store::postgres::PoolSettings {
                    min_connections: 1,
                    max_connections: 2,
                    acquire_timeout: Duration::from_secs(5),
                },
            )
            .await
            .unwrap(),
        );
        checkers.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                hookd::monitors::check_due(&*store).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    for c in checkers {
        c.await.unwrap();
    }
    eventually("five monitor.stale events", || async {
        (monitor_events(&receiver, "/ops").len() >= 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut events = monitor_events(&receiver, "/ops");
    events.sort();
    let mut expected: Vec<(String, String)> = ids
        .iter()
        .map(|id| ("monitor.stale".to_owned(), id.clone()))
        .collect();
    expected.sort();
    assert_eq!(events, expected, "first seen: {events:?}");
}

async fn a_missed_deadline_makes_a_monitor_stale(builder: TestAppBuilder) {
    let app = builder.spawn().await;
    app.create_app(json!({"name": "Crawler", "uid": "crawler"}))
        .await;
    // A deadline every two seconds (six fields: seconds first).
    let m = monitor(
        &app,
        json!({"name": "crawl", "app": "crawler", "eventType": "crawl.done", "deadline": "*/2 * * * * *"}),
    )
    .await;
    let path = format!("{MONITORS}/{}", m["id"].as_str().unwrap());
    let stale = eventually("a missed deadline", || async {
        let m = app.get(&path).await.1;
        (m["state"] == "stale").then_some(m)
    })
    .await;
    let since =
        chrono::DateTime::parse_from_rfc3339(stale["stateSince"].as_str().unwrap()).unwrap();
    let created =
        chrono::DateTime::parse_from_rfc3339(stale["createdAt"].as_str().unwrap()).unwrap();
    // Not the first deadline after creation, the second (2 to 4 s later), seen within a second.
    let after = (since - created).num_milliseconds();
    assert!(
        (2000..5500).contains(&after),
        "stale {after} ms after creation"
    );
    app.create_message("crawler", json!({"eventType": "crawl.done", "payload": {}}))
        .await;
    eventually("the monitor to recover", || async {
        let m = app.get(&path).await.1;
        (m["state"] == "ok").then_some(())
    })
    .await;
}
