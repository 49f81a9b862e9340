//! Graceful shutdown: running attempts finish within the grace period; the rest are released
//! to the queue, not left leased until their lease expires.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::delivery::{app_with_endpoint, attempts, delivery_state};
use crate::helpers::TestApp;
use crate::receiver::{Receiver, Reply};

#[tokio::test]
async fn an_attempt_in_flight_finishes_and_is_recorded_before_exit() {
    let mut app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(|c| c.shutdown_timeout_secs = 10)
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.script("/s", [Reply::status(200).after(Duration::from_millis(800))]);
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/s").await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    receiver.wait_for("/s", 1).await;

    app.restart().await;
    // Recorded before the old server exited: success at once, and no second delivery.
    let (_, list) = app
        .get(&format!("/api/v1/app/{app_id}/msg/{msg_id}/endpoint"))
        .await;
    assert_eq!(list["data"][0]["statusText"], "success");
    assert_eq!(attempts(&app, &app_id, msg_id, 1).await.len(), 1);
    assert_eq!(receiver.requests("/s").len(), 1);
}

#[tokio::test]
async fn attempts_past_the_grace_period_are_released_for_prompt_redelivery() {
    let mut app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(|c| {
            c.shutdown_timeout_secs = 1;
            c.request_timeout_secs = 60;
        })
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.script("/hang", [Reply::status(200).after(Duration::from_secs(30))]);
    let (app_id, _) = app_with_endpoint(&app, &receiver, "/hang").await;
    let msg = app
        .create_message(&app_id, json!({"eventType": "a", "payload": {}}))
        .await;
    let msg_id = msg["id"].as_str().unwrap();
    receiver.wait_for("/hang", 1).await;

    let stopping = Instant::now();
    app.restart().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "the grace period bounds shutdown"
    );
    // Released, so delivered again at once rather than after the 90 s lease.
    receiver.wait_for("/hang", 2).await;
    delivery_state(&app, &app_id, msg_id, "success").await;
}
