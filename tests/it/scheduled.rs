//! Scheduled messages (`deliverAt`): stored at once, delivered at their time (driven by a
//! manual clock), across a restart; listed and cancellable until then; refused when the time
//! is not a date or too far ahead.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use hookd::delivery::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{app_with_endpoint, attempts, delivery_state};
use crate::helpers::{TestApp, assert_http_error, assert_validation_error, ids};
use crate::receiver::Receiver;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a timestamp").parse().unwrap()
}

/// A wall-clock time `by` from now, to the second (as a client would write it).
fn from_now(by: TimeDelta) -> DateTime<Utc> {
    let t = hookd::domain::time::now() + by;
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

#[tokio::test]
async fn a_scheduled_message_waits_for_its_time_across_a_restart() {
    // The dispatcher's clock starts a minute ahead of the wall clock (messages sent now are
    // due at once) and moves only when told to.
    let clock = ManualClock::new(hookd::domain::time::now() + TimeDelta::minutes(1));
    let mut app = TestApp::builder()
        .delivering_to_loopback()
        .with_clock(clock.clone())
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let deliver_at = from_now(TimeDelta::hours(1));
    let scheduled = app
        .create_message(
            &app_id,
            json!({"eventType": "later", "payload": {"n": 1}, "deliverAt": rfc3339(deliver_at)}),
        )
        .await;
    assert_eq!(time(&scheduled["deliverAt"]), deliver_at);
    let msg_id = scheduled["id"].as_str().unwrap().to_owned();
    let now = app
        .create_message(&app_id, json!({"eventType": "now", "payload": {"n": 2}}))
        .await;
    assert_eq!(now["deliverAt"], Value::Null);
    let got = receiver.wait_for("/r", 1).await;
    assert_eq!(
        &got[0].body[..],
        br#"{"n":2}"#,
        "the message without deliverAt went first"
    );
    let state = delivery_state(&app, &app_id, &msg_id, "pending").await;
    assert_eq!(time(&state["nextAttempt"]), deliver_at);

    app.restart().await;
    let (status, read) = app.get(&format!("/api/v1/app/{app_id}/msg/{msg_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(time(&read["deliverAt"]), deliver_at);

    clock.set(deliver_at - TimeDelta::seconds(1));
    // Anything wrongly due would go out within milliseconds of the clock moving.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.requests("/r").len(), 1, "nothing before deliverAt");

    clock.set(deliver_at);
    let got = receiver.wait_for("/r", 2).await;
    assert_eq!(&got[1].body[..], br#"{"n":1}"#);
    assert_eq!(got[1].header("webhook-id"), msg_id);
    let log = attempts(&app, &app_id, &msg_id, 1).await;
    assert_eq!(
        time(&log[0]["timestamp"]),
        deliver_at,
        "attempted at its time"
    );
    delivery_state(&app, &app_id, &msg_id, "success").await;
    app.stop().await;
}

#[tokio::test]
async fn a_deliver_at_in_the_past_delivers_now() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let past = from_now(-TimeDelta::hours(1));
    let msg = app
        .create_message(
            &app_id,
            json!({"eventType": "a", "payload": {}, "deliverAt": rfc3339(past)}),
        )
        .await;
    assert_eq!(time(&msg["deliverAt"]), past);
    receiver.wait_for("/r", 1).await;
    delivery_state(&app, &app_id, msg["id"].as_str().unwrap(), "success").await;
    let scheduled = app
        .list_all(&format!("/api/v1/app/{app_id}/msg/scheduled"))
        .await;
    assert!(scheduled.is_empty(), "{scheduled:?}");
}

#[tokio::test]
async fn a_deliver_at_that_is_not_a_date_or_too_far_ahead_is_refused() {
    let app = TestApp::builder()
        .with_config(|c| c.deliver_at_horizon_days = 30)
        .spawn()
        .await;
    app.create_app(json!({"name": "a", "uid": "a"})).await;
    for bad in [
        json!("tomorrow"),
        json!(""),
        json!(1700000000),
        json!(rfc3339(from_now(TimeDelta::days(31)))),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/app/a/msg",
                Some(json!({"eventType": "a", "payload": {}, "deliverAt": bad})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert_validation_error(&body, &["body", "deliverAt"]);
    }
    assert!(app.list_all("/api/v1/app/a/msg").await.is_empty());
    let within = from_now(TimeDelta::days(29));
    let msg = app
        .create_message(
            "a",
            json!({"eventType": "a", "payload": {}, "deliverAt": rfc3339(within)}),
        )
        .await;
    assert_eq!(time(&msg["deliverAt"]), within);
    // Without an offset, UTC; with one, converted.
    let naive = within.format("%Y-%m-%dT%H:%M:%S").to_string();
    let msg = app
        .create_message(
            "a",
            json!({"eventType": "a", "payload": {}, "deliverAt": naive}),
        )
        .await;
    assert_eq!(time(&msg["deliverAt"]), within);
}

#[tokio::test]
async fn scheduled_messages_are_listed_and_cancelled_before_they_go_out() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let later = rfc3339(from_now(TimeDelta::hours(2)));
    let first = app
        .create_message(
            &app_id,
            json!({"eventType": "a", "eventId": "e1", "payload": {}, "deliverAt": later}),
        )
        .await;
    let second = app
        .create_message(
            &app_id,
            json!({"eventType": "b", "payload": {}, "deliverAt": later}),
        )
        .await;
    let now = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    receiver.wait_for("/r", 1).await;
    let path = format!("/api/v1/app/{app_id}/msg/scheduled");
    let listed = app.list_all(&format!("{path}?limit=1")).await;
    assert_eq!(ids(&listed), ids(&[second.clone(), first.clone()]));
    let filtered = app.list_all(&format!("{path}?event_types=b")).await;
    assert_eq!(ids(&filtered), [second["id"].as_str().unwrap()]);
    assert_eq!(
        app.list_all(&format!("/api/v1/app/{app_id}/msg"))
            .await
            .len(),
        3
    );

    // By eventId, as the other message routes.
    let (status, body) = app
        .delete(&format!("/api/v1/app/{app_id}/msg/e1/schedule"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = app.get(&format!("/api/v1/app/{app_id}/msg/e1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        ids(&app.list_all(&path).await),
        [second["id"].as_str().unwrap()]
    );
    let (status, _) = app
        .delete(&format!("/api/v1/app/{app_id}/msg/e1/schedule"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Its eventId is free again: send it once more, for another time.
    app.create_message(
        &app_id,
        json!({"eventType": "a", "eventId": "e1", "payload": {}, "deliverAt": later}),
    )
    .await;

    // A message sent without deliverAt has no schedule to cancel.
    let (status, body) = app
        .delete(&format!(
            "/api/v1/app/{app_id}/msg/{}/schedule",
            now["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_http_error(&body, "conflict");
    assert_eq!(
        receiver.requests("/r").len(),
        1,
        "only the message sent now went out"
    );
}

#[tokio::test]
async fn a_scheduled_message_that_went_out_cannot_be_cancelled() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/r").await;
    let msg = app
        .create_message(
            &app_id,
            json!({"eventType": "a", "payload": {}, "deliverAt": rfc3339(from_now(-TimeDelta::seconds(5)))}),
        )
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    delivery_state(&app, &app_id, msg_id, "success").await;
    let (status, body) = app
        .delete(&format!("/api/v1/app/{app_id}/msg/{msg_id}/schedule"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_http_error(&body, "conflict");
    let (status, _) = app.get(&format!("/api/v1/app/{app_id}/msg/{msg_id}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_endpoint_disabled_and_enabled_again_keeps_the_schedule() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/r").await;
    let deliver_at = from_now(TimeDelta::hours(3));
    let msg = app
        .create_message(
            &app_id,
            json!({"eventType": "a", "payload": {}, "deliverAt": rfc3339(deliver_at)}),
        )
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    let endpoint = format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}");
    for disabled in [true, false] {
        let (status, body) = app
            .patch(&endpoint, Some(json!({"disabled": disabled})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let state = delivery_state(&app, &app_id, msg_id, "pending").await;
    assert_eq!(time(&state["nextAttempt"]), deliver_at);
    assert!(receiver.requests("/r").is_empty());
}
