//! The retry schedule, driven by a manual clock: no test here waits for wall-clock time.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hookd::delivery::clock::ManualClock;
use serde_json::{Value, json};

use crate::delivery::{app_with_endpoint, attempts, delivery_state};
use crate::helpers::TestApp;
use crate::receiver::{Receiver, Reply};

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a timestamp").parse().unwrap()
}

/// A server whose clock starts an hour ahead (so messages stamped with the wall clock are
/// due at once) and stands still until the test moves it.
async fn with_manual_clock(schedule: Vec<u64>) -> (TestApp, ManualClock, DateTime<Utc>) {
    let start = hookd::domain::time::now() + TimeDelta::hours(1);
    let clock = ManualClock::new(start);
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_clock(clock.clone())
        .with_config(move |c| {
            c.retry_schedule = schedule;
            c.retry_jitter = 0.0;
        })
        .spawn()
        .await;
    (app, clock, start)
}

#[tokio::test]
async fn failed_attempts_are_retried_on_schedule_until_accepted() {
    let (app, clock, start) = with_manual_clock(vec![60, 600]).await;
    let receiver = Receiver::start().await;
    receiver.script("/r", [Reply::status(500), Reply::status(503)]);
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let msg_id = msg["id"].as_str().unwrap();

    receiver.wait_for("/r", 1).await;
    let state = delivery_state(&app, &app_id, msg_id, "pending").await;
    assert_eq!(time(&state["nextAttempt"]), start + TimeDelta::seconds(60));

    clock.advance(Duration::from_secs(60));
    receiver.wait_for("/r", 2).await;
    attempts(&app, &app_id, msg_id, 2).await;
    let state = delivery_state(&app, &app_id, msg_id, "pending").await;
    assert_eq!(time(&state["nextAttempt"]), start + TimeDelta::seconds(660));

    clock.advance(Duration::from_secs(600));
    let got = receiver.wait_for("/r", 3).await;
    delivery_state(&app, &app_id, msg_id, "success").await;
    let log = attempts(&app, &app_id, msg_id, 3).await;
    let codes: Vec<_> = log
        .iter()
        .map(|a| a["responseStatusCode"].clone())
        .collect();
    assert_eq!(codes, [json!(200), json!(503), json!(500)], "newest first");
    let times: Vec<_> = log.iter().map(|a| time(&a["timestamp"])).collect();
    assert_eq!(times[2], start);
    assert_eq!(times[1], start + TimeDelta::seconds(60));
    assert_eq!(times[0], start + TimeDelta::seconds(660));
    // Every attempt carries the same webhook-id.
    assert!(got.iter().all(|r| r.header("webhook-id") == msg_id));
}

#[tokio::test]
async fn a_delivery_fails_once_the_schedule_is_exhausted() {
    let (app, clock, _) = with_manual_clock(vec![10]).await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/down", Reply::status(500));
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/down").await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    receiver.wait_for("/down", 1).await;
    delivery_state(&app, &app_id, msg_id, "pending").await;
    clock.advance(Duration::from_secs(10));
    receiver.wait_for("/down", 2).await;
    let state = delivery_state(&app, &app_id, msg_id, "fail").await;
    assert_eq!(state["nextAttempt"], Value::Null);

    let (_, stats) = app
        .get(&format!(
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"
        ))
        .await;
    assert_eq!(stats["fail"], 1);
    assert_eq!(stats["success"], 0);
}

#[tokio::test]
async fn retry_after_is_honoured_within_the_schedule_bounds() {
    let (app, _clock, start) = with_manual_clock(vec![5, 300]).await;
    let receiver = Receiver::start().await;
    receiver.script("/busy", [Reply::status(429).header("retry-after", "120")]);
    receiver.script(
        "/later",
        [Reply::status(503).header("retry-after", "86400")],
    );
    let app_id = app.create_app(json!({"name": "ra"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, expected) in [("/busy", 120), ("/later", 300)] {
        let ep = app
            .create_endpoint(
                &app_id,
                json!({"url": receiver.url(path), "eventTypes": [path.trim_start_matches('/')]}),
            )
            .await;
        assert!(ep["id"].is_string());
        let msg = app
            .create_message(
                &app_id,
                json!({"eventType": path.trim_start_matches('/'), "payload": {}}),
            )
            .await;
        let msg_id = msg["id"].as_str().unwrap();
        receiver.wait_for(path, 1).await;
        let state = delivery_state(&app, &app_id, msg_id, "pending").await;
        assert_eq!(
            time(&state["nextAttempt"]),
            start + TimeDelta::seconds(expected),
            "{path}"
        );
    }
}
