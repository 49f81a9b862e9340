//! Delivery control through the API: resend, recover, stats, send-example, the attempt log.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::delivery::{app_with_endpoint, attempts, delivery_state};
use crate::helpers::{TestApp, eventually};
use crate::receiver::{Receiver, Reply};

async fn delivered_message(
    app: &TestApp,
    receiver: &Receiver,
    path: &str,
) -> (String, String, String) {
    let (app_id, endpoint_id) = app_with_endpoint(app, receiver, path).await;
    let msg = app
        .create_message(
            &app_id,
            json!({"eventType": "order.created", "payload": {"n": 1}}),
        )
        .await;
    let msg_id = msg["id"].as_str().unwrap().to_owned();
    delivery_state(app, &app_id, &msg_id, "success").await;
    (app_id, endpoint_id, msg_id)
}

#[tokio::test]
async fn resend_delivers_again_as_a_manual_attempt() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, endpoint_id, msg_id) = delivered_message(&app, &receiver, "/r").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({}));
    let got = receiver.wait_for("/r", 2).await;
    assert_eq!(got[1].header("webhook-id"), msg_id);
    let log = attempts(&app, &app_id, &msg_id, 2).await;
    assert_eq!(
        log[0]["triggerType"], 1,
        "the newest attempt is the manual one"
    );
    assert_eq!(log[1]["triggerType"], 0);

    let (status, _) = app
        .post(
            &format!(
                "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/ep_01JAAAAAAAAAAAAAAAAAAAAAAA/resend"
            ),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn recover_requeues_failed_deliveries_since_a_time() {
    let app = TestApp::builder()
        .delivering_to_loopback()
        .with_config(|c| c.retry_schedule = vec![])
        .spawn()
        .await;
    let receiver = Receiver::start().await;
    receiver.default_reply("/flaky", Reply::status(500));
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/flaky").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let msg = app
            .create_message(&app_id, json!({"eventType": "a", "payload": {"n": n}}))
            .await;
        ids.push(msg["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        delivery_state(&app, &app_id, id, "fail").await;
    }
    receiver.default_reply("/flaky", Reply::status(200));
    let since = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).to_rfc3339();
    let (status, out) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(out["status"], "running");
    assert_eq!(out["task"], "endpoint.recover");
    let task = format!("/api/v1/background-task/{}", out["id"].as_str().unwrap());
    let done = eventually("the recovery to finish", || async {
        let (_, task) = app.get(&task).await;
        (task["status"] == "finished").then_some(task)
    })
    .await;
    assert_eq!(done["data"], json!({"messagesSent": 3}));
    for id in &ids {
        delivery_state(&app, &app_id, id, "success").await;
    }
    let (_, stats) = app
        .get(&format!(
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats"
        ))
        .await;
    let mut stats = stats;
    let health = stats.as_object_mut().unwrap().remove("health");
    assert_eq!(
        stats,
        json!({"success": 3, "pending": 0, "sending": 0, "fail": 0, "canceled": 0})
    );
    // The three failed attempts, then the three recovered ones.
    let health = health.expect("stats carry the endpoint's health");
    assert_eq!(health["windowAttempts"], 6, "{health}");
    assert_eq!(health["consecutiveFailures"], 0, "{health}");

    // Attempts, not deliveries: three failed, then three succeeded.
    let attempt_stats = format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}/attempt-stats");
    let (status, counted) = app.get(&attempt_stats).await;
    assert_eq!(status, StatusCode::OK, "{counted}");
    assert_eq!(
        (&counted["success"], &counted["fail"], &counted["canceled"]),
        (&json!(3), &json!(3), &json!(0)),
        "{counted}"
    );
    assert_eq!(counted["health"]["windowAttempts"], 6, "{counted}");
    // A range around the attempts counts them (its ends widened to whole hours, see the
    // unit tests); one that ended two hours ago counts none.
    let now = chrono::Utc::now();
    let this_hour = format!(
        "{attempt_stats}?since={}&until={}",
        (now - chrono::TimeDelta::minutes(10)).format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        now.format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    let (_, counted) = app.get(&this_hour).await;
    assert_eq!(
        (&counted["success"], &counted["fail"]),
        (&json!(3), &json!(3))
    );
    let long_ago = format!(
        "{attempt_stats}?until={}",
        (now - chrono::TimeDelta::hours(2)).format("%Y-%m-%dT%H:%M:%SZ")
    );
    let (_, counted) = app.get(&long_ago).await;
    assert_eq!(
        (&counted["success"], &counted["fail"]),
        (&json!(0), &json!(0))
    );
    let (status, error) = app.get(&format!("{attempt_stats}?since=yesterday")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
}

#[tokio::test]
async fn the_attempt_log_reads_by_message_endpoint_and_id() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    receiver.script(
        "/log",
        [Reply::status(201).body("thanks").header("x-receipt", "r1")],
    );
    let (app_id, endpoint_id, msg_id) = delivered_message(&app, &receiver, "/log").await;
    let log = attempts(&app, &app_id, &msg_id, 1).await;
    let attempt = &log[0];
    let attempt_id = attempt["id"].as_str().unwrap();
    assert!(attempt_id.starts_with("atmpt_"));
    assert_eq!(attempt["response"], "thanks");
    assert_eq!(attempt["responseHeaders"]["x-receipt"], "r1");
    assert!(attempt["responseDurationMs"].is_u64());

    let (status, one) = app
        .get(&format!(
            "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["id"], attempt["id"]);

    // Filters on the endpoint's log.
    let path = format!("/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}");
    let (_, ok) = app.get(&format!("{path}?status_code_class=200")).await;
    assert_eq!(ok["data"].as_array().unwrap().len(), 1);
    let (_, failed) = app.get(&format!("{path}?status=2")).await;
    assert_eq!(failed["data"], json!([]));
    let (status, _) = app.get(&format!("{path}?status_code_class=250")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Messages per endpoint, destinations per message.
    let (_, msgs) = app
        .get(&format!(
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg?status=0"
        ))
        .await;
    assert_eq!(msgs["data"][0]["id"], msg_id.as_str());
    assert_eq!(msgs["data"][0]["statusText"], "success");
    assert_eq!(msgs["data"][0]["payload"], json!({"n": 1}));
    let (_, dests) = app
        .get(&format!("/api/v1/app/{app_id}/msg/{msg_id}/endpoint"))
        .await;
    assert_eq!(dests["data"][0]["id"], endpoint_id.as_str());
    assert_eq!(dests["data"][0]["status"], 0);
    assert_eq!(dests["data"][0]["nextAttempt"], Value::Null);

    // Expunging keeps the attempt but drops what the endpoint answered.
    let (status, _) = app
        .delete(&format!(
            "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content"
        ))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, one) = app
        .get(&format!(
            "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}"
        ))
        .await;
    assert_eq!(one["response"], "");
    assert_eq!(one["responseStatusCode"], 201);

    let (status, _) = app
        .get(&format!(
            "/api/v1/app/{app_id}/msg/{msg_id}/attempt/atmpt_01JAAAAAAAAAAAAAAAAAAAAAAA"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn send_example_goes_to_that_endpoint_only() {
    let app = TestApp::builder().delivering_to_loopback().spawn().await;
    let receiver = Receiver::start().await;
    let (app_id, endpoint_id) = app_with_endpoint(&app, &receiver, "/target").await;
    app.create_endpoint(&app_id, json!({"url": receiver.url("/other")}))
        .await;
    app.post(
        "/api/v1/event-type",
        Some(json!({"name": "user.signup", "description": "d",
            "schemas": {"1": {"type": "object", "examples": [{"user": "ada"}]}}})),
    )
    .await;
    let (status, msg) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example"),
            Some(json!({"eventType": "user.signup"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(msg["payload"], json!({"user": "ada"}));
    let got = receiver.wait_for("/target", 1).await;
    assert_eq!(got[0].body, r#"{"user":"ada"}"#.as_bytes());

    let (status, _) = app
        .post(
            &format!("/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example"),
            Some(json!({"eventType": "user.signup", "payload": {"custom": true}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = receiver.wait_for("/target", 2).await;
    assert_eq!(got[1].body, r#"{"custom":true}"#.as_bytes());
    assert!(receiver.requests("/other").is_empty());
}
